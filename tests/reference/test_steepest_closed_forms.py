"""Closed forms of the steepest-descent subproblem (MATH §6.2, 6.3, 6.4 item 5, 6.7; CLAIMS L-1, L-4, L-7).

Expected values come from independent formulas evaluated here (msign of a projected gradient,
weighted medians by brute force, Σ|gᵢ + λwᵢ| on a grid) and from cvxpy; never from the solver
under test. Tolerance model (CLAIMS §0.2): exact identities in float64 hold to c·u·n_eff·scale
with u = 2⁻⁵³, c = 100, n_eff = max(m, n) — for n ≤ 16 that is ≈ 2e-13·scale, so 1e-12
relative is used for "closed form vs closed form"; cvxpy agreement is at the certificate level
(relative gap ≤ 1e-6, MATH §6.9), and in practice ~1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifold_oracle.reference import (
    DegenerateGeometryError,
    Euclidean,
    FrobeniusSphere,
    InvalidInputError,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
    msign,
    nuclear_norm,
)
from manifold_oracle.reference.generators import haar_orthogonal, manifold_points, matrices, random_matrix
from manifold_oracle.reference.steepest import certify, steepest_direction, weighted_median

U = 2.0**-53
CLOSED = 1e-12  # closed form vs closed form (100·u·n_eff for n_eff ≤ 45)
CVX = 1e-6  # cvxpy objective agreement (MATH §6.9 certificate 4)

ALL_MANIFOLDS = [
    Euclidean(), FrobeniusSphere(1.7), SpectralSphere(0.8), Oblique(1.3, axis="rows"),
    Oblique(0.6, axis="cols"), Stiefel(), Stiefel(1.5), Orthogonal(),
]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


# ---------------------------------------------------------------- L-1: Frobenius-norm LMO


@pytest.mark.parametrize("manifold", ALL_MANIFOLDS, ids=repr)
@settings(max_examples=12)
@given(data=st.data())
def test_frobenius_lmo_closed_form_matches_cvxpy_soc(manifold, data) -> None:
    """Φ* = P_WG/‖P_WG‖_F with value ‖P_WG‖_F equals the cvxpy SOC optimum (CLAIMS L-1)."""
    shape = (8, 8) if isinstance(manifold, Orthogonal) else data.draw(st.sampled_from([(7, 4), (4, 7), (6, 6)]))
    if isinstance(manifold, Stiefel) and not isinstance(manifold, Orthogonal) and shape[0] == shape[1]:
        shape = (7, 4)
    W = data.draw(manifold_points(manifold, shape))
    G = data.draw(matrices(shape, min_scale_exp=-3, max_scale_exp=3))
    P = manifold.project_tangent(W, G)
    expected = float(np.linalg.norm(P))  # independent: the foundation's projector
    r = steepest_direction(manifold, W, G, norm="frobenius")
    assert r.method == "projection"
    assert _rel(r.value, expected) <= CLOSED
    np.testing.assert_allclose(r.direction, P / expected, rtol=0, atol=CLOSED)
    c = steepest_direction(manifold, W, G, norm="frobenius", method="cvxpy")
    assert c.status == "optimal"
    assert _rel(c.value, expected) <= CVX
    assert c.tangency <= 1e-8 and r.tangency <= 1e-8
    cert = certify(manifold, W, G, r, gap_tol=1e-10)
    assert abs(cert.primal - cert.dual) <= CLOSED * cert.dual


def test_frobenius_lmo_negative_control_oblique_projection(rng: np.random.Generator) -> None:
    """L-1 negative control: projecting along W (not orthogonally) on M_S loses value."""
    M = SpectralSphere()
    W = M.random_point(rng, (6, 5))
    G = rng.standard_normal((6, 5))
    r = steepest_direction(M, W, G, norm="frobenius")
    # along W: G − cW with ⟨Θ, G − cW⟩ = 0, then normalised; tangent but not the orthogonal projection
    U1, V1 = M.normal_frame(W)
    th = U1 @ V1.T
    c = np.sum(th * G) / np.sum(th * W)
    D = G - c * W
    D /= np.linalg.norm(D)
    assert abs(np.sum(th * D)) <= 1e-12
    assert np.sum(G * D) < r.value - 1e-3


# ---------------------------------------------------------------- §6.3 Euclidean


@settings(max_examples=20)
@given(G=matrices(st.sampled_from([(5, 3), (3, 5), (6, 6), (1, 4)]), min_scale_exp=-3, max_scale_exp=3))
def test_euclidean_msign_matches_cvxpy(G) -> None:
    W = np.zeros_like(G)
    r = steepest_direction(Euclidean(), W, G)
    assert r.method in ("msign", "projection")
    expected = float(np.sum(np.linalg.svd(G, compute_uv=False)))
    assert _rel(r.value, expected) <= CLOSED
    c = steepest_direction(Euclidean(), W, G, method="cvxpy")
    assert _rel(c.value, expected) <= CVX
    certify(Euclidean(), W, G, r, gap_tol=1e-10)


# ---------------------------------------------------------------- L-7: square orthogonal


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9, 12])
def test_orthogonal_closed_form(n: int, rng: np.random.Generator) -> None:
    W = haar_orthogonal(rng, n)
    G = rng.standard_normal((n, n))
    r = steepest_direction(Orthogonal(), W, G)
    assert r.method == "orthogonal"
    X = W.T @ G
    K = 0.5 * (X - X.T)
    # value ‖skew(WᵀG)‖_* = ‖G − W sym(WᵀG)‖_* (two independent expressions)
    v1 = nuclear_norm(K)
    v2 = nuclear_norm(G - W @ (0.5 * (X + X.T)))
    assert _rel(v1, v2) <= CLOSED
    assert _rel(r.value, v1) <= CLOSED
    # Φ* = msign(P_W G) (Su) = W·msign(skew(WᵀG)) (Bernstein)
    np.testing.assert_allclose(r.direction, msign(G - W @ (0.5 * (X + X.T))), atol=CLOSED)
    sym = W.T @ r.direction
    assert np.linalg.norm(sym + sym.T) <= 1e-14 * n  # tangency at rounding (CLAIMS L-7: 1e-14)
    c = steepest_direction(Orthogonal(), W, G, method="cvxpy")
    assert _rel(c.value, r.value) <= CVX
    if n % 2 == 1:
        assert "odd n" in r.notes
        assert np.linalg.matrix_rank(r.direction, tol=1e-10) == n - 1
    cert = certify(Orthogonal(), W, G, r, gap_tol=1e-12)
    assert cert.passed


def test_orthogonal_scaled_square_stiefel(rng: np.random.Generator) -> None:
    """Square Stiefel with scale s: the closed form divides by s, the multiplier by s²."""
    M = Stiefel(2.5)
    W = M.random_point(rng, (6, 6))
    G = rng.standard_normal((6, 6))
    r = steepest_direction(M, W, G)
    assert r.method == "orthogonal"
    P = M.project_tangent(W, G)
    np.testing.assert_allclose(r.direction, msign(P), atol=CLOSED)
    c = steepest_direction(M, W, G, method="cvxpy")
    assert _rel(c.value, r.value) <= CVX


# ---------------------------------------------------------------- L-4: commuting closed forms


def _brute_weighted_median(v: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Minimisers of Σ wᵢ|x − vᵢ| by evaluating at every data point (piecewise linear)."""
    f = np.array([np.sum(w * np.abs(x - v)) for x in v])
    best = f.min()
    argmins = v[np.abs(f - best) <= 1e-12 * max(best, 1.0)]
    return float(argmins.min()), float(argmins.max())


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(-20, 20), st.integers(1, 5)), min_size=1, max_size=9))
def test_weighted_median_brute_force(pairs) -> None:
    v = np.array([float(a) for a, _ in pairs])
    w = np.array([float(b) for _, b in pairs])
    lo, hi = weighted_median(v, w)
    blo, bhi = _brute_weighted_median(v, w)
    assert (lo, hi) == (blo, bhi)


def test_weighted_median_rejects_bad_weights() -> None:
    with pytest.raises(InvalidInputError):
        weighted_median([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(InvalidInputError):
        weighted_median([], [])


@pytest.mark.parametrize("pattern", ["unique", "interval", "kink"])
def test_commuting_frobenius_sphere(pattern: str, rng: np.random.Generator) -> None:
    """M_F with shared singular bases: λ*_W = weighted median of −gᵢ/wᵢ (CLAIMS L-4a)."""
    m, n = 7, 5
    Q1 = haar_orthogonal(rng, m)[:, :n]
    Q2 = haar_orthogonal(rng, n)
    if pattern == "unique":
        w = np.array([3.0, 2.0, 1.5, 1.0, 0.5])
        g = np.array([2.0, -1.0, 4.0, -3.0, 0.7])
    elif pattern == "interval":  # weights split exactly in half: any λ in an interval is optimal
        w = np.array([2.0, 2.0, 1.0, 1.0, 2.0])
        g = np.array([-2.0, 4.0, -1.0, 3.0, 6.0])
    else:  # median attained at a data point: G + λ*W singular (kink), completion needed
        w = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
        g = np.array([1.0, -2.0, 3.0, 0.5, -1.5])
    W0 = (Q1 * w) @ Q2.T
    R = float(np.linalg.norm(w))
    M = FrobeniusSphere(R)
    G = (Q1 * g) @ Q2.T
    lo, hi = _brute_weighted_median(-g / w, w)
    f = lambda lam: float(np.sum(np.abs(g + lam * w)))  # ‖G + λW‖_* in the shared basis
    expected = f(lo)
    r = steepest_direction(M, W0, G, method="commuting")
    lam_w = float(r.multiplier) / R  # the multiplier is in units of Θ = W/R
    assert lo - 1e-12 <= lam_w <= hi + 1e-12
    assert _rel(r.value, expected) <= CLOSED
    assert _rel(r.dual_value, expected) <= CLOSED
    assert r.tangency <= 1e-14
    if pattern == "kink":
        assert r.status == "optimal_degenerate"
    for method in ("brent", "bisection", "cvxpy"):
        s = steepest_direction(M, W0, G, method=method)
        tol = CVX if method == "cvxpy" else CLOSED
        assert _rel(s.value, expected) <= tol, method
    # negative control: a non-commuting G is refused, not silently solved
    with pytest.raises(InvalidInputError):
        steepest_direction(M, W0, G + 0.1 * rng.standard_normal(G.shape), method="commuting")


def test_commuting_spectral_sphere_and_cvxpy_multiplier_sign(rng: np.random.Generator) -> None:
    """M_S with (u₁, v₁) a singular pair of G: λ* = −g₁, Φ* = Σ_{i≥2} sign(gᵢ)aᵢbᵢᵀ (CLAIMS L-4b).

    This instance also fixes the sign convention of cvxpy's dual values (MATH §6.9 item 3): the
    recovered multiplier must be −g₁, not +g₁.
    """
    m, n = 6, 4
    Q1 = haar_orthogonal(rng, m)[:, :n]
    Q2 = haar_orthogonal(rng, n)
    s = np.array([1.0, 0.6, 0.4, 0.2])
    W = (Q1 * s) @ Q2.T
    g = np.array([2.5, -1.2, 0.8, 3.1])  # g₁ on (u₁, v₁); the others on orthogonal pairs
    G = (Q1 * g) @ Q2.T
    M = SpectralSphere()
    expected_dir = (Q1[:, 1:] * np.sign(g[1:])) @ Q2[:, 1:].T
    expected_val = float(np.sum(np.abs(g[1:])))
    r = steepest_direction(M, W, G, method="commuting")
    assert abs(float(r.multiplier) + g[0]) <= CLOSED * abs(g[0])
    np.testing.assert_allclose(r.direction, expected_dir, atol=CLOSED)
    assert _rel(r.value, expected_val) <= CLOSED
    for method in ("brent", "bisection", "su_qinv_free"):
        t = steepest_direction(M, W, G, method=method)
        assert _rel(t.value, expected_val) <= CLOSED, method
        assert abs(float(t.multiplier) + g[0]) <= 1e-10 * abs(g[0]), method
    # G + λ*Θ has rank 3 < 4 here: Su's fixed point needs Q⁻¹ and must report it (CLAIMS L-3 control)
    with pytest.raises(DegenerateGeometryError):
        steepest_direction(M, W, G, method="su_fixed_point")
    c = steepest_direction(M, W, G, method="cvxpy")
    assert abs(float(c.multiplier) + g[0]) <= 1e-6 * abs(g[0])  # sign convention: y = −ν
    assert _rel(c.value, expected_val) <= CVX
    # negative control (L-4): the polar factor puts weight on u₁v₁ᵀ, so it is not tangent
    from manifold_oracle.reference import polar_factor

    Gt = G - g[0] * np.outer(Q1[:, 0], Q2[:, 0])  # = G + λ*Θ, rank 3 < 4
    bad = polar_factor(Gt)
    assert M.tangent_violation(W, bad) > 1e-3


def test_cvxpy_multiplier_sign_frobenius_sphere(rng: np.random.Generator) -> None:
    """Frobenius-norm problem on M_F: y* = −⟨G, Θ⟩ exactly; cvxpy's recovered y must match."""
    M = FrobeniusSphere(2.0)
    W = M.random_point(rng, (5, 4))
    G = rng.standard_normal((5, 4)) + 3.0 * W
    expected = -float(np.sum(G * W)) / float(np.linalg.norm(W))
    c = steepest_direction(M, W, G, norm="frobenius", method="cvxpy")
    assert abs(float(c.multiplier) - expected) <= 1e-6 * abs(expected)


def test_vector_sphere_closed_form(rng: np.random.Generator) -> None:
    M = Sphere(2.0)
    w = M.random_point(rng, (9,))
    g = rng.standard_normal(9)
    p = g - (g @ w) / (w @ w) * w
    for norm in ("spectral", "frobenius"):
        r = steepest_direction(M, w, g, norm=norm)
        assert r.direction.shape == (9,)
        np.testing.assert_allclose(r.direction, p / np.linalg.norm(p), atol=CLOSED)
        c = steepest_direction(M, w, g, norm=norm, method="cvxpy")
        assert _rel(c.value, float(np.linalg.norm(p))) <= CVX
        assert certify(M, w, g, r, gap_tol=1e-12).passed


def test_random_matrix_generator_rank_deficient_gradient(rng: np.random.Generator) -> None:
    """Rank-deficient G on the Frobenius sphere: exact solvers still certify primal = dual."""
    M = FrobeniusSphere()
    W = M.random_point(rng, (8, 6))
    G = random_matrix(rng, (8, 6), rank=2, exact_zeros=True)
    r = steepest_direction(M, W, G)
    c = steepest_direction(M, W, G, method="cvxpy")
    assert _rel(r.value, c.value) <= CVX
    cert = certify(M, W, G, r, gap_tol=1e-10)
    assert abs(cert.dual - cert.primal) <= 1e-10 * cert.dual
