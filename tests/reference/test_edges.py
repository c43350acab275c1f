"""The reference's edges (issue 11 item 6): extreme magnitudes, nonsense constants, the Stiefel fast
path on non-square inputs and solve_exact's acceptance rule.

Magnitudes. Finite float64 input at any magnitude, from the subnormals (2⁻¹⁰⁷⁴) to the largest
finite float (≈ 2¹⁰²⁴), must give the scale-invariant answer. Expected values are 30-digit mpmath
(``reference.precise``, whose exponent range is unbounded) on the *same float64 input*, under the
error models of tests/reference/test_precise_vs_float64.py (u = 2⁻⁵³, C = 16, n = max(m, n)).
Inputs are a spectrum-controlled matrix normalised to max|xᵢⱼ| ∈ [½, 1) and multiplied by 2ᵉ, which
is exact unless the entries become subnormal (then the float64 input itself is what mpmath sees).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifold_oracle.reference as R
from manifold_oracle.reference import precise
from manifold_oracle.reference.conditions import Trajectory
from manifold_oracle.reference.errors import InvalidInputError, OracleError, SolverError
from manifold_oracle.reference.exact import SCS_CERTIFIABLE_EPS, solve_exact
from manifold_oracle.reference.generators import matrices, shapes

U = 2.0**-53
C = 16.0
TINY = 2.0**-1074  # smallest subnormal: the absolute rounding unit of any float64 output
#: exponents e of max|x| = 2ᵉ⁻¹…2ᵉ: top of the range, ordinary, subnormal (-1030 … -1062)
EXPONENTS = [1024, 1000, 600, -600, -1000, -1030, -1062]


def _at(X: np.ndarray, e: int) -> np.ndarray:
    """X scaled exactly so that max|x| ∈ [2^(e−1), 2^e) (rounded only where it becomes subnormal)."""
    _, ex = math.frexp(float(np.max(np.abs(X))))
    return np.ldexp(np.ldexp(X, -ex), e)


def _rel(got: np.ndarray, exp: np.ndarray) -> float:
    m = float(np.max(np.abs(exp))) or 1.0  # compare in units of max|exp| (no overflow in the norm)
    return float(np.linalg.norm(got / m - exp / m) / np.linalg.norm(exp / m))


def _kappa(X: np.ndarray) -> float:
    s = [float(v) for v in precise.singular_values(X, dps=30)]
    return s[0] / s[-1]


def _f64(x) -> np.ndarray:
    return np.asarray(precise.to_float64(x), dtype=np.float64)


@settings(database=None, max_examples=12, deadline=None)
@given(matrices(shapes(max_side=5), max_cond=1e3, rank_deficient=False), st.sampled_from(EXPONENTS))
def test_msign_and_polar_factor_at_any_magnitude(X: np.ndarray, e: int) -> None:
    Y = _at(X, e)
    n = max(Y.shape)
    # refined msign: O(k·u) + O((κ·u)²) relative, κ of the float64 input itself (linalg docstring)
    bound = C * U * n + C * (_kappa(Y) * U) ** 2
    assert _rel(R.msign(Y), _f64(precise.msign(Y, dps=30))) <= bound
    assert _rel(R.polar_factor(Y), _f64(precise.polar_factor(Y, dps=30))) <= bound


@pytest.mark.parametrize("e", [1000, -1000, 600, -600])
def test_msign_is_exactly_scale_invariant(e: int, rng: np.random.Generator) -> None:
    """Power-of-two scaling is exact in the normal range, so the answer is bit-for-bit the same."""
    X = R.random_matrix(rng, (6, 4), cond=100.0)
    Y = np.ldexp(X, e - math.frexp(float(np.max(np.abs(X))))[1])
    assert np.array_equal(R.msign(Y), R.msign(X))
    assert np.array_equal(R.polar_factor(Y), R.polar_factor(X))
    assert np.array_equal(R.ns_apply("polar_express", Y), R.ns_apply("polar_express", X))


@settings(database=None, max_examples=12, deadline=None)
@given(matrices(shapes(max_side=5), max_cond=1e3, rank_deficient=False), st.sampled_from(EXPONENTS))
def test_norms_at_any_magnitude(X: np.ndarray, e: int) -> None:
    # norms of ≤ 25 entries below 2^1020 stay below 5·2^1020 < 2^1024 (overflowing norms: next test)
    Y = _at(X, min(e, 1020))
    n = max(Y.shape)
    s = _f64(precise.singular_values(Y, dps=30))
    # Weyl: |δσᵢ| ≤ C·u·n·σ₁, plus one rounding of a (possibly subnormal) output, ≤ TINY
    sv_tol = C * U * n * s[0] + TINY
    assert np.max(np.abs(R.singular_values(Y) - s)) <= sv_tol
    assert abs(R.spectral_norm(Y) - s[0]) <= sv_tol
    assert abs(R.top_singular_triplet(Y).sigma - s[0]) <= sv_tol
    assert abs(R.nuclear_norm(Y) - float(np.sum(s))) <= len(s) * sv_tol
    # ‖Y‖_F: a sum of mn scaled squares, relative error ≤ (mn + 2)·u, plus the output rounding
    fro = float(precise.frobenius_norm(Y, dps=30))
    assert abs(R.frobenius_norm(Y) - fro) <= (Y.size + 2) * U * fro + TINY
    # stable rank Σσᵢ²/σ₁² (computed on the scaled σ, never subnormal): each σᵢ/σ₁ carries ≤ C·u·n,
    # so the error is ≤ 2·C·u·n·k·srank
    sr = float(precise.stable_rank(Y, dps=30))
    assert abs(R.stable_rank(Y) - sr) <= 2 * C * U * n * len(s) * sr
    # mclip at τ = σ₁/2: absolute error of the SVD reconstruction C·u·n·σ₁ (+ subnormal rounding)
    tau = float(s[0]) / 2
    exp = _f64(precise.mclip(Y, tau, dps=30))
    assert np.max(np.abs(R.mclip(Y, tau) - exp)) <= C * U * n * s[0] + TINY


@settings(database=None, max_examples=10, deadline=None)
@given(matrices(shapes(max_side=5), max_cond=1e3, rank_deficient=False), st.sampled_from(EXPONENTS),
       st.sampled_from(["polar_express", "modula_ns6", "classical", "keller_jordan", "polar_express_eo"]))
def test_ns_apply_at_any_magnitude(X: np.ndarray, e: int, name: str) -> None:
    Y = _at(X, e)
    exp = _f64(precise.ns_apply(name, Y, dps=30))
    got = R.ns_apply(name, Y)
    assert np.all(np.isfinite(got))
    sch = R.get_schedule(name)
    fro = float(precise.frobenius_norm(Y, dps=30))
    if sch.eps_form != "none" and sch.eps > 1e6 * fro:
        # ε dominates: F(Y) ≈ φ'(0)·Y/(s·ε), a rounded product (2u relative) then the (possibly
        # subnormal) output rounding; linearisation error (σ/ε)² ≤ 1e-12 relative
        assert np.all(np.abs(got - exp) <= 1e-12 * np.abs(exp) + 2 * U * np.abs(exp) + TINY)
        return
    # as test_precise_vs_float64: SVD backward error C·u·n·‖Y‖₂ amplified by the divided
    # differences of φ̃ (≤ ∏ⱼ max_{|y|≤1.3}|pⱼ′(y)|), relative to ‖F(Y)‖
    y = np.linspace(0.0, 1.3, 1301)
    amp = 1.0
    for a, b, c in sch.coefficients_for(None):
        amp *= float(np.max(np.abs(a + 3 * b * y**2 + 5 * c * y**4)))
    assert _rel(got, exp) <= C * U * max(Y.shape) * amp / float(np.linalg.norm(exp))


def test_eps_free_schedules_on_subnormal_input_are_finite(rng: np.random.Generator) -> None:
    """Before: all-NaN (‖X‖_F² underflowed to 0). The eps-free map is scale invariant."""
    X = R.random_matrix(rng, (5, 4), cond=10.0)
    Y = _at(X, -1062)  # entries ≲ 2⁻¹⁰⁶²: subnormal
    for name in ("polar_express", "modula_ns6", "classical", "polar_express_stable"):
        exp = _f64(precise.ns_apply(name, Y, dps=30))
        assert _rel(R.ns_apply(name, Y), exp) <= 1e-12  # C·u·n·amp with amp ≤ 1e2 (test above)


def test_results_beyond_the_float64_range_raise() -> None:
    big = np.diag([1.5e308] * 4)
    with pytest.raises(InvalidInputError, match="overflows"):
        R.nuclear_norm(big)  # exact value 6e308
    with pytest.raises(InvalidInputError, match="overflows"):
        R.frobenius_norm(np.full((4, 4), 1.5e308))
    with pytest.raises(InvalidInputError, match="overflows"):
        R.inner(np.full((2, 2), 1e300), np.full((2, 2), 1e300))
    # but everything whose answer is representable is computed
    assert R.spectral_norm(big) == 1.5e308
    assert np.array_equal(R.msign(big), np.eye(4))
    assert np.array_equal(R.sym(np.full((2, 2), 1.5e308)), np.full((2, 2), 1.5e308))


# ------------------------------------------------------------------ optimizers at extreme magnitudes
@pytest.mark.parametrize("kind", ["frobenius_sphere", "spectral_sphere", "stiefel", "oblique_rows"])
@pytest.mark.parametrize("e", [997, -1000])
def test_macro_step_is_scale_equivariant(kind: str, e: int, rng: np.random.Generator) -> None:
    """MACRO with s = R on M(2ᵉ) at W·2ᵉ, G·2ᵉ is 2ᵉ × the step on M(1) (every retraction is
    homogeneous). Error model: both runs round alike up to the exact power-of-two scaling; allow
    C·u·n relative (measured: 0, bit-for-bit)."""
    from manifold_oracle.reference.kinds import manifold_from_kind

    X = rng.standard_normal((5, 4))
    G = rng.standard_normal((5, 4))
    m1 = manifold_from_kind(kind, 1.0)
    W1 = X / np.linalg.svd(X, compute_uv=False)[0] if kind == "spectral_sphere" else m1.project_point(X)
    opt1 = R.MACRO(manifold=m1, lr=0.1, beta=0.0, scale="radius")
    ref, _, _ = opt1.step(W1, G, opt1.init_state(W1))
    mk = manifold_from_kind(kind, 2.0**e)
    opt = R.MACRO(manifold=mk, lr=0.1, beta=0.0, scale="radius")
    Wn, _, diag = opt.step(np.ldexp(W1, e), np.ldexp(G, e), opt.init_state(np.ldexp(W1, e)))
    assert _rel(np.ldexp(Wn, -e), ref) <= C * U * 5
    assert m1.contains(np.ldexp(Wn, -e))  # (the manifolds' own sums of squares are not range-safe)
    assert diag.step_scale == pytest.approx(0.1 * 2.0**e, rel=1e-15)


def test_optimizer_steps_with_huge_gradients(rng: np.random.Generator) -> None:
    """Before: MACRO said "rank_tol … got inf", Muon raised numpy's LinAlgError (issue 11)."""
    X = rng.standard_normal((5, 4))
    G = rng.standard_normal((5, 4))
    W = X / np.linalg.norm(X)
    for scale in (1e302, 1.5e308 / np.max(np.abs(G)), 1e-310):
        opt = R.MACRO(lr=0.1, beta=0.0)
        got = opt.step(W, G * scale, opt.init_state(W))[0]
        ref = opt.step(W, _at(G * scale, 0), opt.init_state(W))[0]  # the same direction at unit size
        assert _rel(got, ref) <= C * U * 5  # msign is scale invariant; C·u·n for the retraction
        muon = R.Muon(lr=0.1)
        d = muon.step(W, G * scale, muon.init_state(W))[2]
        U_in = np.asarray(d.lmo_input)
        assert _rel(d.direction, _f64(precise.msign(U_in, dps=30))) <= C * U * 5 + C * (_kappa(U_in) * U) ** 2


# ------------------------------------------------------------------------------ nonsense constants
def _trajectory(loss: list[float]) -> Trajectory:
    T = len(loss) - 1
    return Trajectory(np.array(loss), np.ones(T + 1), np.ones(T + 1), np.full(T, 0.01), (None,) * T, None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_descent_monitor_flags_non_finite_losses(bad: float) -> None:
    rep = R.descent_monitor(_trajectory([1.0, bad, 0.9]), 1.0, 1)
    assert rep.flagged and rep.nonfinite == (0, 1)
    assert not R.descent_monitor(_trajectory([1.0, 0.99, 0.98]), 1.0, 1).flagged


@pytest.mark.parametrize("L_R,k", [(np.nan, 1), (-1.0, 1), (np.inf, 1), (1.0, 0), (1.0, -2), (1.0, 1.5)])
def test_descent_monitor_refuses_bad_constants(L_R: float, k: float) -> None:
    with pytest.raises(InvalidInputError):
        R.descent_monitor(_trajectory([1.0, 0.99]), L_R, k)


BASE = dict(L=1.0, G_max=1.0, alpha=0.5, k=2, f_gap=1.0)


@pytest.mark.parametrize("field,value", [("L", np.nan), ("L", -1.0), ("G_max", np.inf), ("alpha", -0.5),
                                         ("k", 0), ("k", 2.5), ("f_gap", np.nan), ("sigma", -1.0),
                                         ("beta_R", np.nan), ("gap", -0.1), ("ell_P", np.nan)])
def test_problem_constants_refuse_nonsense(field: str, value: float) -> None:
    with pytest.raises(InvalidInputError):
        R.ProblemConstants(**{**BASE, field: value})


@pytest.mark.parametrize("kwargs", [dict(lr=0.0), dict(lr=np.nan), dict(lr=-0.1), dict(lr=[0.0, 0.0]),
                                    dict(lr=0.01, beta=np.nan), dict(lr=0.01, T=0),
                                    dict(lr=0.01, epsilon=np.nan), dict(lr=0.01, epsilon=0.0),
                                    dict(lr=0.01, scale=-1.0), dict(lr=0.01, gap_tol=0.0)])
def test_check_hyperparameters_refuses_nonsense(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        R.check_hyperparameters(R.ProblemConstants(**BASE), **{"T": 10, **kwargs})


def test_check_hyperparameters_zero_smoothness_does_not_divide_by_zero() -> None:
    rep = R.check_hyperparameters(R.ProblemConstants(L=0.0, G_max=0.0, alpha=0.0, k=1, f_gap=1.0), lr=0.1, T=5)
    assert rep.holds and rep.bounds["optimal_step"] == np.inf


@pytest.mark.parametrize("make", [lambda: R.Muon(lr=np.nan), lambda: R.Muon(weight_decay=np.nan),
                                  lambda: R.AdamW(lr=np.inf), lambda: R.AdamW(betas=0.9),
                                  lambda: R.SSO(lr=-1.0), lambda: R.MuonH(eps=np.nan),
                                  lambda: R.MACRO(power_steps="x"), lambda: R.Oblique(radius="x"),
                                  lambda: R.Oblique(radius=[1.0, -1.0]), lambda: R.SpectralSphere(gap_tol=np.nan),
                                  lambda: R.get_schedule("classical").with_options(steps=10**9),
                                  lambda: R.ns_apply("classical", np.eye(2), steps=-1)])
def test_constructors_refuse_nonsense(make) -> None:
    with pytest.raises(InvalidInputError):
        make()


def test_certify_refuses_nan_multiplier_and_non_results(rng: np.random.Generator) -> None:
    M = R.FrobeniusSphere()
    W = M.random_point(rng, (4, 3))
    G = rng.standard_normal((4, 3))
    res = R.steepest_direction(M, W, G)
    with pytest.raises(SolverError, match="multiplier"):
        R.certify(M, W, G, dataclasses.replace(res, multiplier=np.asarray(np.nan)))
    with pytest.raises(InvalidInputError):
        R.certify(M, W, G, "not a result")
    with pytest.raises(InvalidInputError):
        R.certify(M, W, G, res, gap_tol=np.nan)


@pytest.mark.parametrize("man", [R.Euclidean(), R.FrobeniusSphere(), R.SpectralSphere(), R.Oblique(),
                                 R.Stiefel(), R.Sphere()], ids=repr)
def test_random_point_shapes(man, rng: np.random.Generator) -> None:
    point = (4,) if isinstance(man, R.Sphere) else (5, 3)
    for bad in [(-1,) + point, (0,) * len(point), (), "ab", (2.5,) + point]:
        with pytest.raises(InvalidInputError):
            man.random_point(rng, bad)
    with pytest.raises(InvalidInputError):
        man.random_point(None, point)
    assert man.random_point(rng, (0,) + point).shape == (0,) + point  # an empty batch is allowed


# ------------------------------------------------------------ Stiefel fast path, solve_exact rule
@pytest.mark.parametrize("shape", [(7, 4), (4, 7)])
def test_su_lyapunov_at_a_kink_hands_over_to_cvxpy_and_says_so(shape, rng: np.random.Generator) -> None:
    """n < m < 2n with 2n − m odd: the optimum is at a kink (measured on every random instance,
    steepest module docstring), where Su's fixed point is undefined."""
    M = R.Stiefel()
    W = M.random_point(rng, shape)
    G = rng.standard_normal(shape)
    with pytest.raises(SolverError):
        R.steepest_direction(M, W, G, method="su_lyapunov")
    res = R.steepest_direction(M, W, G)  # auto: the fast Stiefel solver fails too, and says why
    assert res.method == "cvxpy" and "kink" in res.notes and "cvxpy level" in res.notes
    cert = R.certify(M, W, G, res)  # the default certificate (MATH §6.9: gap ≤ 1e-6)
    # independent evidence of the kink: Z* = G + 𝓛*(S*) from cvxpy's multiplier is singular to
    # the solver's accuracy (σ_min/σ₁ ≤ 1e-6; Clarabel's multipliers carry ~1e-8 error)
    from manifold_oracle.reference.steepest import adjoint

    s = np.linalg.svd(G + adjoint(M, W, res.multiplier), compute_uv=False)
    assert s[-1] <= 1e-6 * s[0] and abs(cert.gap) <= 1e-6


def test_su_lyapunov_converges_away_from_kinks(rng: np.random.Generator) -> None:
    M = R.Stiefel()
    for shape in [(6, 4), (9, 4), (3, 7)]:
        W = M.random_point(rng, shape)
        G = rng.standard_normal(shape)
        res = R.steepest_direction(M, W, G, method="su_lyapunov")
        assert res.status == "optimal" and "tangency" in res.notes
        # the stopping rule caps the tangency residual at 1e-10; the gap is of that order
        R.certify(M, W, G, res, gap_tol=1e-10, tangency_tol=1e-10)


def test_solve_exact_never_accepts_a_loose_scs_eps(rng: np.random.Generator) -> None:
    """MATH §6.9 item 4: SCS answers are accepted only at eps ≤ 1e-9. Before: eps = 1e-3 was
    returned as "optimal" on this instance (its raw figures passed)."""
    M = R.FrobeniusSphere(1.0)
    rng7 = np.random.default_rng(7)
    W = M.random_point(rng7, (4, 3))
    G = rng7.standard_normal((4, 3))
    with pytest.raises(SolverError) as info:
        solve_exact(M, W, G, solver="SCS", eps=1e-3)
    assert info.value.status == "loose_eps" and info.value.figures["eps"] == 1e-3
    # the loose answer passed every certificate here: the rule, not the figures, rejects it
    assert abs(info.value.figures["final_gap"]) <= 1e-6
    res = solve_exact(M, W, G, solver="SCS", eps=SCS_CERTIFIABLE_EPS)
    assert res.status == "optimal" and abs(res.gap) <= 1e-6
    # where the loose answer fails a certificate, the certificate's own error is raised
    S = R.Stiefel()
    Ws = S.random_point(rng7, (5, 3))
    with pytest.raises(SolverError) as info:
        solve_exact(S, Ws, rng7.standard_normal((5, 3)), solver="SCS", eps=1e-3)
    assert isinstance(info.value, OracleError)
