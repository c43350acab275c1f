"""Certificates, Stiefel solvers, repeated σ₁ and bad input (MATH §6.6, 6.8, 6.9; CLAIMS L-6, L-8, L-9, L-11).

Expected values: cvxpy (an independent solver, certified), closed forms written here, and the
published figures of Su's adversarial example (blog Su 11221: optimum ≈ 90, heuristics ≈ 70/80).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from manifold_oracle.reference import (
    DegenerateGeometryError,
    Euclidean,
    FrobeniusSphere,
    InvalidInputError,
    Oblique,
    OffManifoldError,
    OracleError,
    Orthogonal,
    SolverError,
    SpectralSphere,
    Sphere,
    Stiefel,
    msign,
    polar_factor,
)
from manifold_oracle.reference.generators import random_matrix
from manifold_oracle.reference.steepest import METHODS, SteepestResult, certify, steepest_direction

# Su's adversarial 8×4 Stiefel instance (blog Su 11221, "Test Case 1"), printed there to 8 digits.
# WᵀW = I holds only to ~1e-6 in the printed digits, so the test uses its polar factor
# (‖polar(W₀) − W₀‖_F ≈ 6e-7, which moves the optimum by O(1e-6)·‖G‖ — far below the 90 vs 70/80
# separation being tested).
SU_W0 = np.array([
    [0.69453734, -0.26590866, -0.44721806, 0.2753041],
    [-0.11738148, -0.5588003, -0.17580748, 0.3218624],
    [-0.4515288, -0.23489913, -0.26683152, -0.25739142],
    [0.02392521, 0.02664689, 0.48423648, 0.6193399],
    [0.45194831, -0.25206333, 0.27654836, -0.60242337],
    [0.21197332, -0.09174792, 0.24521762, -0.08484317],
    [-0.15496767, -0.26446804, -0.34942415, -0.01877318],
    [-0.16181251, -0.6474956, 0.45243263, -0.01776086]])
SU_G = np.array([
    [-17.85745, -10.758921, -2.9583392, 6.245008],
    [-28.883093, 19.772121, 8.086545, -21.564013],
    [-1.6274693, -14.96859, 3.4465332, 3.1070817],
    [-7.8890743, 1.5304767, -8.949573, 9.579629],
    [2.246596, 14.46572, 12.8451, -2.7370298],
    [-0.9496974, 6.9879804, 2.849277, 1.1148484],
    [-8.115278, -18.054405, -0.19287404, 7.0389237],
    [-15.062008, -15.02901, 2.9083247, 21.706533]])


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def _leloy_v1(G: np.ndarray, W: np.ndarray, steps: int = 100) -> np.ndarray:
    """Cesista's alternating projection msign ∘ proj_W, written from MATH §6.6 (heuristic v1)."""
    phi = G
    for _ in range(steps):
        phi = msign(phi - W @ _sym(W.T @ phi))
    return phi


def _leloy_v2(G: np.ndarray, W: np.ndarray, steps: int = 100) -> float:
    """Cesista's greedy fill + line search over τ (heuristic v2, simplified as in Su 11221)."""
    m, n = G.shape
    best = 0.0
    for tau in np.linspace(0, 1, steps + 2)[1:-1]:
        b = 0.5 * (W.T @ G - G.T @ W)
        b = b * tau / max(np.linalg.norm(b, 2), 1e-8)
        r = np.linalg.cholesky(np.eye(n) - b.T @ b)
        c = msign((np.eye(m) - W @ W.T) @ G @ r) @ r
        phi = W @ b + c
        best = max(best, float(np.sum(phi * G)))
    return best


# ---------------------------------------------------------------- L-8 adversarial example


def test_su_adversarial_stiefel_example() -> None:
    W = polar_factor(SU_W0)
    assert np.linalg.norm(W - SU_W0) < 1e-6
    M = Stiefel()
    r = steepest_direction(M, W, SU_G)
    assert r.method == "stiefel_newton"  # auto on non-square Stiefel (issue 16)
    ref = steepest_direction(M, W, SU_G, method="cvxpy")
    assert 89.5 < r.value < 90.5  # "roughly 90" (Su 11221)
    assert abs(r.value - ref.value) <= 1e-6 * ref.value
    # error model: msign(Z) at κ(Z) ≈ 270 (Z = G + WS*) is tangent to ~64·n·u·κ ≈ 2e-11
    cert = certify(M, W, SU_G, r, tangency_tol=64 * 4 * 2.0**-53 * 300, gap_tol=1e-10)
    assert abs(cert.dual - cert.primal) <= 1e-10 * cert.dual
    # negative control: the heuristics are strictly suboptimal (≈ 70 and ≈ 80)
    v1 = float(np.sum(_leloy_v1(SU_G, W) * SU_G))
    v2 = _leloy_v2(SU_G, W)
    assert v1 < r.value - 5 and v2 < r.value - 5
    assert 65 < v1 < 75 and 75 < v2 < 85


def test_dual_ascent_published_defaults_not_converged() -> None:
    """Manifold-Muon dual ascent with α = 0.01, J = 100, tol = 1e-6 is reported as not converged."""
    W = polar_factor(SU_W0)
    r = steepest_direction(Stiefel(), W, SU_G, method="dual_ascent")
    assert r.status == "not_converged"
    assert r.iterations == 100 and len(r.history) == 100
    assert r.history[-1] > 1e-6 and r.tangency > 1e-6
    with pytest.raises(SolverError):
        certify(Stiefel(), W, SU_G, r)


def test_dual_ascent_converges_with_a_larger_step(rng: np.random.Generator) -> None:
    """L-8: with α = 0.1 and enough steps dual ascent converges to the exact optimum (within 1e-6)."""
    M = Stiefel()
    W = M.random_point(rng, (30, 12))
    G = rng.standard_normal((30, 12))
    exact = steepest_direction(M, W, G)
    r = steepest_direction(M, W, G, method="dual_ascent", alpha=0.1, steps=3000)
    assert r.status == "converged"
    assert r.history[-1] < 1e-6
    assert abs(r.value - exact.value) <= 1e-6 * exact.value
    # the per-iteration tangency history of the default run decreases but stays above tol
    d = steepest_direction(M, W, G, method="dual_ascent")
    assert d.status == "not_converged" and d.history[-1] < d.history[0]


def test_first_dual_ascent_iterate_is_alternating_projection(rng: np.random.Generator) -> None:
    """L-9: Λ₀ = −¼(WᵀG + GᵀW) gives G + 2WΛ₀ = P_W G, so A₀ = msign(P_W G)."""
    M = Stiefel()
    W = M.random_point(rng, (9, 4))
    G = rng.standard_normal((9, 4))
    r = steepest_direction(M, W, G, method="dual_ascent", steps=1, tol=0.0)
    np.testing.assert_allclose(r.direction, msign(M.project_tangent(W, G)), atol=1e-12)


# ---------------------------------------------------------------- certificates have power (L-11)


@pytest.mark.parametrize("manifold,shape", [
    (FrobeniusSphere(), (6, 4)), (SpectralSphere(), (5, 7)), (Stiefel(), (8, 3)),
    (Oblique(axis="rows"), (5, 5)), (Orthogonal(), (6, 6)), (Euclidean(), (4, 6)),
])
def test_certificate_rejects_perturbed_directions(manifold, shape, rng: np.random.Generator) -> None:
    W = manifold.random_point(rng, shape)
    G = rng.standard_normal(shape)
    r = steepest_direction(manifold, W, G)
    pd_tol = 1e-6 if r.method == "cvxpy" else 1e-10  # cvxpy: certificate level (MATH §6.9)
    cert = certify(manifold, W, G, r, gap_tol=pd_tol, tangency_tol=1e-12)
    assert cert.passed and abs(cert.gap) <= pd_tol
    # scaled above the ball: infeasible (and the weak-duality bound is violated)
    big = dataclasses.replace(r, direction=1.01 * r.direction)
    with pytest.raises(SolverError, match="feasibility"):
        certify(manifold, W, G, big)
    c = certify(manifold, W, G, big, raise_on_failure=False)
    assert c.gap < -1e-3
    # off the tangent space (not for Euclidean, whose tangent space is everything)
    if not isinstance(manifold, Euclidean):
        N = manifold.normal_basis(W)[0]
        off = r.direction + 1e-4 * N
        off = off / np.linalg.svd(off, compute_uv=False)[0]
        with pytest.raises(SolverError, match="tangency"):
            certify(manifold, W, G, dataclasses.replace(r, direction=off))
    # a wrong multiplier: the dual value is an upper bound that is no longer tight
    if r.multiplier.size:
        bad = dataclasses.replace(r, multiplier=r.multiplier + 0.3 * np.sign(r.multiplier + 1e-300))
        with pytest.raises(SolverError, match="gap"):
            certify(manifold, W, G, bad, gap_tol=1e-6)


def test_cvxpy_failure_raises_solver_error(rng: np.random.Generator) -> None:
    M = SpectralSphere()
    W = M.random_point(rng, (10, 8))
    G = rng.standard_normal((10, 8))
    for solver in ("CLARABEL", "SCS"):
        with pytest.raises(SolverError) as exc:
            steepest_direction(M, W, G, method="cvxpy", solver=solver, max_iters=2)
        assert exc.value.status != "optimal" or "gap" in str(exc.value)


def test_scs_default_eps_is_rejected(rng: np.random.Generator) -> None:
    """L-11: SCS at cvxpy's default eps (1e-4) is rejected on at least one instance; 1e-9 passes."""
    rejected = 0
    for k in range(4):
        M = [SpectralSphere(), Stiefel()][k % 2]
        shape = (24, 24) if k % 2 == 0 else (24, 12)
        W = M.random_point(rng, shape)
        G = rng.standard_normal(shape)
        try:
            steepest_direction(M, W, G, method="cvxpy", solver="SCS", eps=1e-4, gap_tol=1e-9)
        except SolverError as exc:
            # a loose eps is never accepted ("loose_eps"); count only the certificate's rejections
            rejected += exc.status != "loose_eps"
        steepest_direction(M, W, G, method="cvxpy", solver="SCS", eps=1e-9)
    assert rejected >= 1


def test_fast_solver_failure_raises_solver_error() -> None:
    W = polar_factor(SU_W0)
    with pytest.raises(SolverError):
        steepest_direction(Stiefel(), W, SU_G, method="su_lyapunov", max_iters=2)
    rng = np.random.default_rng(5)
    M = FrobeniusSphere()
    Wf = M.random_point(rng, (7, 4))
    with pytest.raises(SolverError):
        steepest_direction(M, Wf, rng.standard_normal((7, 4)), method="su_qinv_free", max_iters=1)


# ---------------------------------------------------------------- repeated σ₁ (L-6)


def _repeated_top(rng: np.random.Generator, m: int, n: int, q: int, gap: float = 0.0) -> np.ndarray:
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    k = min(m, n)
    s = np.linspace(0.6, 0.1, k)
    s[:q] = 1.0
    if gap:
        s[1:q] = 1.0 - gap
    return (U[:, :k] * s) @ V[:, :k].T


def test_repeated_sigma1_raises_by_default(rng: np.random.Generator) -> None:
    W = _repeated_top(rng, 6, 5, 2)
    with pytest.raises(DegenerateGeometryError):
        steepest_direction(SpectralSphere(), W, rng.standard_normal((6, 5)))


@pytest.mark.parametrize("q", [2, 3])
def test_repeated_sigma1_strict_and_su_variant(q: int, rng: np.random.Generator) -> None:
    M = SpectralSphere(degenerate="strict")
    W = _repeated_top(rng, 7, 5, q)
    G = rng.standard_normal((7, 5))
    r = steepest_direction(M, W, G)
    assert r.method == "cvxpy" and r.multiplier.shape == (q, q)
    np.testing.assert_allclose(r.multiplier, r.multiplier.T, atol=1e-12)
    U1, V1 = M.normal_frame(W)
    C = U1.T @ r.direction @ V1
    assert np.linalg.norm(_sym(C)) <= 1e-7  # strict tangent space at cvxpy accuracy (L-6)
    certify(M, W, G, r)
    su = steepest_direction(M, W, G, method="su_two_multiplier")
    assert su.status == "degenerate"
    Cs = U1.T @ su.direction @ V1
    assert np.max(np.abs(np.diag(Cs))) <= 1e-10  # Su imposes only the diagonal in its basis
    assert np.max(np.linalg.eigvalsh(_sym(Cs))) > 1e-6  # so λ_max(sym(U₁ᵀΦV₁)) ≠ 0 in general
    assert su.value >= r.value - 1e-9  # a larger feasible set
    with pytest.raises(SolverError, match="tangency"):
        certify(M, W, G, su)
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G, method="brent")


def test_repeated_sigma1_negative_control_with_a_gap(rng: np.random.Generator) -> None:
    """L-6 control: at gap 1e-2 the single-multiplier solvers and cvxpy agree."""
    M = SpectralSphere()
    W = _repeated_top(rng, 7, 5, 2, gap=1e-2)
    G = rng.standard_normal((7, 5))
    a = steepest_direction(M, W, G)
    b = steepest_direction(M, W, G, method="cvxpy")
    assert abs(a.value - b.value) <= 1e-6 * b.value


# ---------------------------------------------------------------- degenerate and bad input


@pytest.mark.parametrize("manifold,shape", [
    (Euclidean(), (4, 3)), (FrobeniusSphere(), (4, 3)), (SpectralSphere(), (3, 5)), (Stiefel(), (6, 3)),
    (Orthogonal(), (4, 4)), (Oblique(axis="cols"), (3, 4)), (Sphere(), (5,)),
])
@pytest.mark.parametrize("norm", ["spectral", "frobenius"])
def test_zero_gradient(manifold, shape, norm: str, rng: np.random.Generator) -> None:
    W = manifold.random_point(rng, shape)
    G = np.zeros(shape)
    r = steepest_direction(manifold, W, G, norm=norm)
    assert r.value == 0.0 and r.dual_value == 0.0 and r.gap == 0.0
    assert np.all(r.direction == 0.0) and r.direction.shape == tuple(shape)
    assert np.all(np.isfinite(r.multiplier))
    c = steepest_direction(manifold, W, G, norm=norm, method="cvxpy")
    assert c.value == 0.0 and np.all(c.direction == 0.0)


def test_purely_normal_gradient_gives_zero(rng: np.random.Generator) -> None:
    M = Stiefel()
    W = M.random_point(rng, (6, 3))
    S = _sym(rng.standard_normal((3, 3)))
    G = W @ S  # normal to the tangent space
    r = steepest_direction(M, W, G)
    assert np.all(r.direction == 0.0) and r.value == 0.0
    assert r.dual_value <= 1e-13 * np.linalg.norm(G)


@pytest.mark.parametrize("manifold", [FrobeniusSphere(), SpectralSphere(), Stiefel()], ids=repr)
def test_rank_deficient_gradient(manifold, rng: np.random.Generator) -> None:
    W = manifold.random_point(rng, (8, 5))
    G = random_matrix(rng, (8, 5), rank=2, exact_zeros=True)
    r = steepest_direction(manifold, W, G)
    ref = steepest_direction(manifold, W, G, method="cvxpy")
    assert abs(r.value - ref.value) <= 1e-6 * ref.value
    if r.method == "cvxpy":  # Stiefel at a kink: auto hands the instance to cvxpy and says so
        assert isinstance(manifold, Stiefel) and "rank_deficient" in r.notes
        certify(manifold, W, G, r)
        with pytest.raises(SolverError):
            steepest_direction(manifold, W, G, method="su_lyapunov")
    else:
        cert = certify(manifold, W, G, r, gap_tol=1e-10)
        assert abs(cert.dual - cert.primal) <= 1e-10 * cert.dual


def test_off_manifold_and_bad_input(rng: np.random.Generator) -> None:
    M = FrobeniusSphere()
    W = M.random_point(rng, (4, 3))
    G = rng.standard_normal((4, 3))
    with pytest.raises(OffManifoldError):
        steepest_direction(M, 1.01 * W, G)
    with pytest.raises(OffManifoldError):
        steepest_direction(Stiefel(), rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))
    with pytest.raises(OffManifoldError):
        steepest_direction(Orthogonal(), polar_factor(SU_W0)[:4] * 2, np.ones((4, 4)))
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G[:3])
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, np.full((4, 3), np.nan))
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G, norm="nuclear")
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G, method="newton")
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G, method="su_lyapunov")  # not a Stiefel point
    with pytest.raises(InvalidInputError):
        steepest_direction(M, np.stack([W, W]), np.stack([G, G]))  # one point at a time
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W, G, method="projection")  # spectral norm, min(m, n) > 1


def test_inputs_not_mutated(rng: np.random.Generator) -> None:
    M = SpectralSphere()
    W = M.random_point(rng, (5, 4))
    G = rng.standard_normal((5, 4))
    W0, G0 = W.copy(), G.copy()
    for method in ("brent", "bisection", "su_fixed_point", "su_qinv_free", "cvxpy", "commuting"):
        try:
            steepest_direction(M, W, G, method=method, **({"max_iters": 200} if method.startswith("su") else {}))
        except OracleError:
            pass  # failures are fine here (this test is about the inputs only)
    assert np.array_equal(W, W0) and np.array_equal(G, G0)


def test_registry_and_result_fields(rng: np.random.Generator) -> None:
    assert {"auto", "cvxpy", "msign", "projection", "orthogonal", "commuting", "bisection", "brent",
            "su_fixed_point", "su_qinv_free", "su_lyapunov", "dual_ascent", "dual_subgradient",
            "su_two_multiplier"} <= set(METHODS)
    assert METHODS["dual_ascent"].baseline and not METHODS["dual_ascent"].exact
    r = steepest_direction(Stiefel(), Stiefel().random_point(rng, (5, 2)), rng.standard_normal((5, 2)))
    assert isinstance(r, SteepestResult)
    for f in ("direction", "value", "multiplier", "dual_value", "gap", "method", "solver", "status",
              "iterations", "seconds", "tangency", "feasibility"):
        assert hasattr(r, f)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 0.0  # type: ignore[misc]
    assert r.seconds >= 0 and r.iterations >= 1 and r.status == "optimal"


@pytest.mark.parametrize("manifold,shape", [(SpectralSphere(), (6, 4)), (Stiefel(), (7, 3)),
                                            (Oblique(axis="cols"), (4, 6))])
def test_lmi_and_sigma_max_formulations_agree(manifold, shape, rng: np.random.Generator) -> None:
    """MATH §6.9: σ_max(A) ≤ 1 and the explicit LMI [[I, A], [Aᵀ, I]] ⪰ 0 give the same optimum."""
    W = manifold.random_point(rng, shape)
    G = rng.standard_normal(shape)
    a = steepest_direction(manifold, W, G, method="cvxpy")
    b = steepest_direction(manifold, W, G, method="cvxpy", lmi=True)
    c = steepest_direction(manifold, W, G, method="cvxpy", solver="SCS")
    assert abs(a.value - b.value) <= 1e-6 * a.value
    assert abs(a.value - c.value) <= 1e-6 * a.value
    assert a.solver == "CLARABEL" and c.solver == "SCS"
