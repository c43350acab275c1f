"""Newton–CG on the reduced Stiefel dual (reference.stiefel_dual; issue 16 item 3).

What is checked, and against what (never against the code under test):

* the reduction Z(S) = [TᵀG + S; B̃] has the Gram matrix of G + TS (so the same singular values);
* the analytic Hessian-vector product equals central differences of the analytic gradient, and the
  gradient equals central differences of f (for the nuclear norm and for its smoothing f_μ);
* the Gram-matrix evaluation agrees with the SVD evaluation to its error model ε·κ²;
* answers are certified by :func:`certify` (independent float64 primal/dual/tangency), lie inside
  cvxpy's certified primal–dual interval and with ``su_lyapunov`` to 1e-12 where both converge;
* at a kink (n < m < 2n, 2n − m odd) it raises, and only there (cvxpy's multiplier shows the kink);
* the Newton iteration count does not grow with n (m = 2n, n = 16…128);
* the float32 CG (Hessian products in float32 while the forcing is loose) stays within its rounding
  model of the float64 product, and its direction meets the forcing measured in float64;
* the solve is exactly scale-covariant (S*(c·G) = c·S*(G), internal power-of-two scaling);
* ``bench exact`` reports Newton/CG iterations, evaluations and the ratio to one SVD per size.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifold_oracle.reference import SolverError, Stiefel
from manifold_oracle.reference.generators import manifold_points, matrices
from manifold_oracle.reference.steepest import METHODS, adjoint, certify, steepest_direction
from manifold_oracle.reference.stiefel_dual import SINGLE_FORCING, _Point, reduce_stiefel, stiefel_newton

U = 2.0**-53
U32 = 2.0**-24
#: (larger side 3…12, smaller side 2…11 below it, tall?) for the non-square Stiefel draws
NON_SQUARE = st.tuples(st.integers(3, 12), st.integers(2, 11), st.booleans()).filter(lambda c: c[1] < c[0])


def _tall(rng: np.random.Generator, m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    T = np.linalg.qr(rng.standard_normal((m, n)))[0]
    return T, rng.standard_normal((m, n))


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def test_registered_and_auto_on_non_square_stiefel(rng: np.random.Generator) -> None:
    assert METHODS["stiefel_newton"].exact and not METHODS["stiefel_newton"].baseline
    M = Stiefel()
    for shape in [(12, 5), (5, 12), (200, 5)]:  # tall, wide, m ≫ n
        W = M.random_point(rng, shape)
        G = rng.standard_normal(shape)
        r = steepest_direction(M, W, G)
        assert r.method == "stiefel_newton" and r.status == "optimal"
        # error model: msign(Z) is tangent to ~64·n·u·κ(Z) (κ ≲ 1e2 here) and the gap follows
        certify(M, W, G, r, gap_tol=1e-12, tangency_tol=1e-12)


@pytest.mark.parametrize("shape", [(9, 4), (40, 6), (16, 8)])
def test_reduction_keeps_the_gram_matrix(shape, rng: np.random.Generator) -> None:
    T, G = _tall(rng, *shape)
    n = shape[1]
    A, B, Bt = reduce_stiefel(T, G)
    S = _sym(rng.standard_normal((n, n)))
    Z_full = G + T @ S
    Z = np.vstack([A + S, Bt])
    # both Gram matrices carry ~m·u·‖Z‖₂² rounding (products of two float64 matrices)
    scale = np.linalg.norm(Z_full, 2) ** 2
    assert np.abs(Z.T @ Z - Z_full.T @ Z_full).max() <= 8 * shape[0] * U * scale
    assert np.abs(T.T @ B).max() <= 8 * shape[0] * U * np.linalg.norm(G, 2)
    s_full = np.linalg.svd(Z_full, compute_uv=False)
    np.testing.assert_allclose(np.linalg.svd(Z, compute_uv=False), s_full, rtol=0,
                               atol=8 * shape[0] * U * s_full[0])


@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_gradient_and_hessian_match_central_differences(mu: float, rng: np.random.Generator) -> None:
    """Central differences with h = 1e-6: truncation O(h²·‖∇³f‖) ≈ 1e-12·κ² and rounding
    O(u·‖∇f‖/h) ≈ 1e-10 relative; measured 5e-10 (Hessian) and 1e-9 (gradient, f ≈ 10): bound 1e-7."""
    n, m = 6, 9
    T, G = _tall(rng, m, n)
    A, _, Bt = reduce_stiefel(T, G)
    C = Bt.T @ Bt
    S = _sym(rng.standard_normal((n, n)))
    D = _sym(rng.standard_normal((n, n)))
    h = 1e-6
    p = _Point(A, Bt, C, S, True, mu)
    dS = p.V @ D @ p.V.T
    pp = _Point(A, Bt, C, S + h * dS, True, mu)
    pm = _Point(A, Bt, C, S - h * dS, True, mu)
    fd_grad = (pp.f - pm.f) / (2 * h)
    assert abs(fd_grad - float(np.sum(p.g * D))) <= 1e-7 * max(1.0, abs(fd_grad))
    fd_hess = (pp.V @ pp.g @ pp.V.T - pm.V @ pm.g @ pm.V.T) / (2 * h)
    an = p.V @ p.hvp(D) @ p.V.T
    assert np.linalg.norm(fd_hess - an) <= 1e-7 * np.linalg.norm(an)
    # with μ = 0 the gradient is the tangency residual of msign(G + TS), computed independently
    if mu == 0:
        Uz, _, Vt = np.linalg.svd(G + T @ S, full_matrices=False)
        g_direct = _sym(T.T @ (Uz @ Vt))
        assert np.linalg.norm(p.V @ p.g @ p.V.T - g_direct) <= 64 * n * U * p.kappa


def test_gram_evaluation_agrees_with_svd(rng: np.random.Generator) -> None:
    n, m = 12, 24
    T, G = _tall(rng, m, n)
    A, _, Bt = reduce_stiefel(T, G)
    C = Bt.T @ Bt
    S = -_sym(A)
    e = _Point(A, Bt, C, S, True)
    g = _Point(A, Bt, C, S, False)
    # eigh of ZᵀZ: eigenvalue errors ~n·u·σ₁², so σᵢ (and P = (A+S)VΣ⁻¹) to ~n·u·κ² relative
    tol = 64 * n * U * e.kappa**2
    assert abs(e.f - g.f) <= tol * e.f
    assert np.linalg.norm(e.V @ e.g @ e.V.T - g.V @ g.g @ g.V.T) <= tol * np.sqrt(n)


@pytest.mark.parametrize("scale", [1.0, 2.0])
@settings(max_examples=12)
@given(data=st.data())
def test_agrees_with_cvxpy_or_raises_only_at_a_kink(scale: float, data) -> None:
    M = Stiefel(scale)
    big, small, tall = data.draw(NON_SQUARE)
    shape = (big, small) if tall else (small, big)
    W = data.draw(manifold_points(M, shape))
    G = data.draw(matrices(shape, max_cond=1e3, min_scale_exp=-2, max_scale_exp=2))
    ref = steepest_direction(M, W, G, method="cvxpy")
    try:
        r = steepest_direction(M, W, G, method="stiefel_newton")
    except SolverError as exc:
        assert exc.status in ("rank_deficient", "stalled")
        # evidence of a kink, independent of the solver: the shapes where random instances have
        # their minimiser at a kink (n < m < 2n, 2n − m odd; steepest module docstring), or
        # cvxpy's Z* = G + 𝓛*(S*) singular to its accuracy (multipliers to ~1e-8)
        lo, hi = min(shape), max(shape)
        s = np.linalg.svd(G + adjoint(M, W, ref.multiplier), compute_uv=False)
        kink_shape = lo < hi < 2 * lo and (2 * lo - hi) % 2 == 1
        assert kink_shape or s[-1] <= 1e-6 * s[0], "stiefel_newton failed away from a kink"
        a = steepest_direction(M, W, G)
        assert a.method == "cvxpy" and "stiefel_newton" in a.notes
        return
    # error model: tangency floor 64·n·u·κ(Z) (the solver stops there); the gap is second order
    cert = certify(M, W, G, r, gap_tol=1e-12, tangency_tol=1e-10)
    assert cert.passed
    # weak duality: every feasible primal value ≤ every dual value. cvxpy's interval [p, d] is the
    # wider one (gap ~1e-9); ours must sit inside it, up to the feasibility rounding of cvxpy's
    # projected direction and of the dual SVD (~1e-12 relative to ‖G‖_*)
    slack = 1e-12 * float(np.linalg.svd(G, compute_uv=False).sum())
    assert ref.value - slack <= r.value <= r.dual_value + slack <= ref.dual_value + 2 * slack


@pytest.mark.parametrize("shape", [(30, 12), (64, 32), (100, 6), (12, 40)])
def test_agrees_with_su_lyapunov(shape, rng: np.random.Generator) -> None:
    M = Stiefel()
    W = M.random_point(rng, shape)
    G = rng.standard_normal(shape)
    a = steepest_direction(M, W, G, method="stiefel_newton")
    b = steepest_direction(M, W, G, method="su_lyapunov")
    # both certified to ~1e-13 (module docstrings); ⟨G, Φ⟩ carries ~k·u·‖G‖_F‖Φ‖_F rounding
    assert abs(a.value - b.value) <= 1e-12 * b.value
    assert abs(a.gap) <= 1e-12 and a.tangency <= 1e-12


def test_smoothing_path_finishes_where_plain_newton_stalls() -> None:
    """8×5 (2n − m even: the minimiser is smooth) instances whose plain Newton iteration stalls in a
    kink valley (measured: seeds 4, 5, 10 of the first 11) are finished by the smoothing path."""
    used = 0
    for seed in range(11):
        rng = np.random.default_rng(seed)
        W, G = _tall(rng, 8, 5)
        S, rep, _ = stiefel_newton(W, G)
        used += rep.smoothing_stages > 0
        r = steepest_direction(Stiefel(), W, G, method="stiefel_newton")
        certify(Stiefel(), W, G, r, gap_tol=1e-12, tangency_tol=1e-10)
    assert used >= 1


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 4)])
def test_kink_raises_typed_error(shape, rng: np.random.Generator) -> None:
    M = Stiefel()
    W = M.random_point(rng, shape)
    G = rng.standard_normal(shape)
    with pytest.raises(SolverError) as info:
        steepest_direction(M, W, G, method="stiefel_newton")
    assert info.value.status in ("rank_deficient", "stalled")


def test_newton_iterations_do_not_grow_with_n() -> None:
    """m = 2n (the issue's n×n/2 shapes transposed): measured 9–13 Newton iterations at every n."""
    its = []
    for n in (16, 32, 64, 128):
        T, G = _tall(np.random.default_rng(n), 2 * n, n)
        S, rep, hist = stiefel_newton(T, G)
        its.append(rep.newton_iterations)
        assert rep.tangency <= 64 * n * U * max(rep.kappa, 1.0)
        assert rep.smoothing_stages == 0 and hist[-1] == rep.tangency
    assert max(its) <= 20, its


def _points_along_a_run(n: int, seed: int) -> list[_Point]:
    """The start point and the Newton iterate after a few steps (res ~1e-3) of one m = 2n instance."""
    T, G = _tall(np.random.default_rng(seed), 2 * n, n)
    A, _, Bt = reduce_stiefel(T, G)
    C = Bt.T @ Bt
    S_mid, _, _ = stiefel_newton(T, G, tol=1e-3)
    return [_Point(A, Bt, C, -_sym(A), True), _Point(A, Bt, C, S_mid, True)]


@pytest.mark.parametrize("n", [8, 48])
def test_float32_hessian_product_within_its_rounding_model(n: int, rng: np.random.Generator) -> None:
    """Rounding model of hvp in float32: X = R·D and Rᵀ·M each carry ~√n·u₃₂·‖R‖_F·‖·‖_F
    (random-rounding model of an n-term dot product; the worst case has n for √n), the elementwise
    factors (½c⁻ ≤ 1/(σᵢ+σⱼ), 1/r) are ≤ max(1/r) and ‖R‖₂ ≤ 1, so
    ‖H₃₂(D) − H(D)‖_F ≤ 4·√n·u₃₂·‖R‖_F·max(1/r)·‖D‖_F (D's own rounding to float32 inside).
    Measured tightness (bound ÷ error): ~50 at n = 8, ~250–450 at n = 48."""
    for pt in _points_along_a_run(n, n):
        D = _sym(rng.standard_normal((n, n)))
        exact = pt.hvp(D)
        single = pt.hvp(D.astype(np.float32))
        assert single.dtype == np.float32 and exact.dtype == np.float64
        err = float(np.linalg.norm(single.astype(np.float64) - exact))
        bound = 4 * np.sqrt(n) * U32 * float(np.linalg.norm(pt.R)) * float(pt.inv_r.max()) * float(np.linalg.norm(D))
        assert err <= bound, (err, bound)


@pytest.mark.parametrize("n", [8, 48])
def test_float32_cg_direction_meets_the_forcing_in_float64(n: int) -> None:
    """The CG stops when its recurrence residual is ≤ η·‖∇f‖; in float32 (η ≥ SINGLE_FORCING,
    κ(Z) ≤ SINGLE_KAPPA) the true float64 residual ‖∇f + H·D‖ drifts from it by the accumulated
    product rounding (previous test), which the float32 switch is designed to keep below ~½·η·‖∇f‖:
    measured ≤ 0.99·η·‖∇f‖ in total here and along the 512×256 run, so 1.5·η·‖∇f‖ is the bound."""
    for pt in _points_along_a_run(n, n + 1):
        assert pt.kappa <= 1e3  # the float32 path is the one exercised
        for eta in (0.5, 1e-2, SINGLE_FORCING):
            D, k = pt.newton_direction(eta, 20 * n + 50)
            true = float(np.linalg.norm(pt.g + pt.hvp(D)))
            assert D.dtype == np.float64 and true <= 1.5 * eta * pt.gnorm, (eta, k, true / pt.gnorm)
            assert float(np.vdot(pt.g, D)) < 0  # a descent direction


@pytest.mark.parametrize("c", [2.0**-600, 1e-30, 3.7, 2.0**500])
def test_scale_covariant(c: float, rng: np.random.Generator) -> None:
    """f(c·S; c·G) = c·f(S; G): the solver works at max|G| ∈ [½, 1) (exact power-of-two scaling),
    so for c a power of two S*(c·G) = c·S*(G) bit for bit, even where float32 or the Gram matrix
    would under/overflow unscaled. Otherwise c·G carries u relative rounding and both solves stop
    at the tangency floor, so S differs by ≲ 64·n·u·κ(Z) relative (measured 1.8e-15: tightness ~10³,
    the worst case of the floor)."""
    T, G = _tall(rng, 24, 12)
    S1, rep1, _ = stiefel_newton(T, G)
    Sc, repc, _ = stiefel_newton(T, c * G)
    assert np.all(np.isfinite(Sc))
    if np.frexp(c)[0] == 0.5:
        assert np.array_equal(Sc, c * S1)
    else:
        assert np.linalg.norm(Sc / c - S1) <= 64 * 12 * U * rep1.kappa * np.linalg.norm(S1)
    assert repc.tangency <= 64 * 12 * U * max(repc.kappa, 1.0)


def test_bench_reports_stiefel_scaling() -> None:
    """``bench exact``'s Stiefel scaling rows carry the solver's own counts (from the result's extras)
    and the markdown table shows them with the ratio to one SVD; the certificate is recomputed."""
    from manifold_oracle.bench.exact import growth_exponent, stiefel_scaling, to_markdown

    rows, notes = stiefel_scaling([8, 16], seed=3, repeats=2, log=lambda s: None)
    assert not notes and [r.shape for r in rows] == [(8, 4), (16, 8)]
    for r in rows:
        assert r.newton >= 1 and r.cg >= r.newton and r.evaluations >= r.newton
        assert r.ratio_lo <= r.ratio <= r.ratio_hi and r.seconds > 0 and r.svd_seconds > 0
        assert r.gap <= 1e-12 and r.tangency <= 1e-12  # certify(), independent of the solver
    md = to_markdown([], [], ["--sizes", "8,16"], 1.0, rows)
    assert "| 16 | 16×8 |" in md and "Stiefel exact solver scaling" in md
    assert np.isnan(growth_exponent(rows))  # no size ≥ 64
