"""Typed errors for the gaps found by the typed-error audit (rows of /tmp/typed_audit/REPORT_FULL.md).

Each test feeds the input that used to return NaN / a wrong number / a raw numpy or Python
exception and checks the typed error of ``reference.errors``; the row number is in the name.
"""

from __future__ import annotations

import numpy as np
import pytest

from manifold_oracle.reference.errors import (
    DegenerateGeometryError,
    InvalidInputError,
    OffManifoldError,
)

RNG = np.random.default_rng(0)
X43 = RNG.standard_normal((4, 3))
Q43 = np.linalg.qr(X43)[0]  # 4×3 with orthonormal columns
NAN43 = X43.copy()
NAN43[1, 2] = np.nan


# ---- row 6: SSO / MuonBall initial_point of W0 = 0 -------------------------------------------

@pytest.mark.parametrize("cls", ["SSO", "MuonBall"])
def test_row6_sso_initial_point_zero(cls: str) -> None:
    from manifold_oracle.reference.optim import spectral
    opt = getattr(spectral, cls)()
    with pytest.raises(InvalidInputError, match="W0 = 0"):
        opt.initial_point(np.zeros((4, 3)))
    with pytest.raises(InvalidInputError, match="W0"):
        getattr(spectral, cls)(radius_mode="initialize").init_state(np.zeros((4, 3)))


# ---- row 7: estimate_lipschitz -------------------------------------------------------------

def test_row7_estimate_lipschitz() -> None:
    from manifold_oracle.reference.conditions import estimate_lipschitz
    rng = np.random.default_rng(1)
    with pytest.raises(InvalidInputError, match="gradient"):
        estimate_lipschitz(lambda w: np.full_like(w, np.nan), [X43], rng)
    for h in (0.0, float("nan"), -1.0):
        with pytest.raises(InvalidInputError, match="h must"):
            estimate_lipschitz(lambda w: 2 * w, [X43], rng, h=h)
    with pytest.raises(InvalidInputError, match="at least one point"):
        estimate_lipschitz(lambda w: 2 * w, [], rng)
    with pytest.raises(InvalidInputError, match="power_steps"):
        estimate_lipschitz(lambda w: 2 * w, [X43], rng, power_steps=0)
    # still right on a good input: ∇f = 2W has L = 2 exactly (power iteration on 2I)
    assert estimate_lipschitz(lambda w: 2 * w, [X43], rng) == pytest.approx(2.0, rel=1e-9)


# ---- rows 8, 9: dual_norm / primal_norm ----------------------------------------------------

@pytest.mark.parametrize("name", ["dual_norm", "primal_norm"])
def test_rows8_9_norms(name: str) -> None:
    from manifold_oracle.reference import steepest
    fn = getattr(steepest, name)
    with pytest.raises(InvalidInputError, match="norm must be one of"):
        fn(X43, "bogus")
    with pytest.raises(InvalidInputError, match="non-finite"):
        fn(NAN43, "spectral")
    with pytest.raises(InvalidInputError, match="empty"):
        fn(np.zeros((0, 3)), "frobenius")


# ---- row 10: steepest_direction options ----------------------------------------------------

@pytest.mark.parametrize("kw", [{"bogus_option": 1}, {"tol": float("nan")}, {"max_iters": -1},
                                {"alpha": 0.0}, {"steps": 2.5}])
def test_row10_steepest_options(kw: dict) -> None:
    from manifold_oracle.reference import Stiefel, steepest_direction
    with pytest.raises(InvalidInputError):
        steepest_direction(Stiefel(1.0), Q43, X43, norm="spectral", **kw)


# ---- row 11: sso_lambda constants ----------------------------------------------------------

@pytest.mark.parametrize("kw", [{"on_bracket_failure": "bogus"}, {"tol": float("nan")}, {"tol": -1.0},
                                {"max_iter": 0}, {"max_iter": -1}, {"bracket_step": 0.0},
                                {"max_expansions": -1}])
def test_row11_sso_lambda_constants(kw: dict) -> None:
    from manifold_oracle.reference.optim.spectral import sso_lambda
    U, _, Vt = np.linalg.svd(Q43, full_matrices=False)
    with pytest.raises(InvalidInputError):
        sso_lambda(X43 / np.linalg.norm(X43), np.outer(U[:, 0], Vt[0]), **kw)


def test_row11_sso_lambda_max_iter_is_a_status() -> None:
    """Documented contract: hitting max_iter returns the best λ with status 'max_iter'."""
    from manifold_oracle.reference.optim.spectral import sso_lambda
    Theta = np.zeros((3, 3))
    Theta[0, 0] = 1.0
    lam, info = sso_lambda(RNG.standard_normal((3, 3)), Theta, tol=1e-300, max_iter=1, max_expansions=None)
    assert info["status"] == "max_iter" and info["iterations"] == 1 and np.isfinite(lam)


# ---- row 12: power_iteration ---------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"v0": np.zeros(3)}, {"v0": np.array([1.0, np.nan, 0.0])},
                                {"v0": np.ones(4)}, {"steps": -1}, {"steps": 0}])
def test_row12_power_iteration(kw: dict) -> None:
    from manifold_oracle.reference.optim.spectral import power_iteration
    args = {"steps": 5, **kw}
    with pytest.raises(InvalidInputError):
        power_iteration(X43, **args)


# ---- row 13: optim.stiefel.dual_ascent ----------------------------------------------------

@pytest.mark.parametrize("kw", [{"steps": 0}, {"steps": -1}, {"alpha": 0.0}, {"alpha": -1.0},
                                {"tol": float("nan")}, {"tol": float("inf")}, {"tol": -1.0}])
def test_row13_dual_ascent_constants(kw: dict) -> None:
    from manifold_oracle.reference.optim.stiefel import dual_ascent
    with pytest.raises(InvalidInputError):
        dual_ascent(Q43, X43, **kw)


def test_row13_dual_ascent_point_and_budget() -> None:
    from manifold_oracle.reference.optim.stiefel import dual_ascent
    with pytest.raises(OffManifoldError):
        dual_ascent(2 * Q43, X43)
    with pytest.raises(InvalidInputError):
        dual_ascent(Q43, NAN43)
    with pytest.raises(InvalidInputError, match="tall"):
        dual_ascent(Q43.T, X43.T)
    # the fixed budget of the source code is a reported status, not an error (documented)
    _, info = dual_ascent(Q43, X43, steps=1, tol=1e-300)
    assert info["iterations"] == 1 and info["converged"] is False


# ---- row 14: stiefel_newton ----------------------------------------------------------------

@pytest.mark.parametrize("case", ["G-nan", "S0-nan", "S0-shape", "off", "tol-nan", "tol-neg", "wide"])
def test_row14_stiefel_newton(case: str) -> None:
    from manifold_oracle.reference.stiefel_dual import stiefel_newton
    T, G, kw = Q43, X43, {}
    if case == "G-nan":
        G = NAN43
    elif case == "S0-nan":
        kw["S0"] = np.full((3, 3), np.nan)
    elif case == "S0-shape":
        kw["S0"] = np.zeros((2, 2))
    elif case == "off":
        T = 2 * Q43
    elif case == "tol-nan":
        kw["tol"] = float("nan")
    elif case == "tol-neg":
        kw["tol"] = -1.0
    else:
        T, G = Q43.T, X43.T
    with pytest.raises(OffManifoldError if case == "off" else InvalidInputError):
        stiefel_newton(T, G, **kw)


# ---- rows 39, 40: fit_rate -----------------------------------------------------------------

def test_row39_40_fit_rate() -> None:
    from manifold_oracle.reference.conditions import fit_rate
    with pytest.raises(InvalidInputError, match="non-finite"):
        fit_rate([1.0, 2.0, 4.0], [1.0, np.nan, 0.25])
    with pytest.raises(DegenerateGeometryError, match="all Ts equal"):
        fit_rate([3.0, 3.0, 3.0], [1.0, 0.5, 0.25])
    assert fit_rate([1.0, 2.0, 4.0], [1.0, 0.5, 0.25]) == pytest.approx(-1.0, rel=1e-12)


# ---- row 43 (part): relative_gap -----------------------------------------------------------

def test_row43_relative_gap_nan() -> None:
    from manifold_oracle.reference.subproblem import relative_gap
    with pytest.raises(InvalidInputError, match="NaN"):
        relative_gap(float("nan"), 1.0)
    with pytest.raises(InvalidInputError, match="NaN"):
        relative_gap(1.0, float("nan"))
    assert relative_gap(2.0, -np.inf) == np.inf  # no primal value yet (the oblique baseline's start)


# ---- rows 15–19: reference.geodesics -------------------------------------------------------

_X3, _Y3, _A3 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.3, 0.4])
_O3 = np.linalg.qr(RNG.standard_normal((3, 3)))[0]
_S3 = RNG.standard_normal((3, 3))
_S3 = _S3 - _S3.T  # skew: tangent at I scaled by O


def _geo_calls(bad: np.ndarray | None = None) -> list:
    from manifold_oracle.reference import geodesics as GEO
    v = _X3 if bad is None else bad
    return [lambda: GEO.vnorm(v), lambda: GEO.sphere_angle(v, _Y3), lambda: GEO.sphere_log(_X3, v),
            lambda: GEO.sphere_exp(v, _A3, 1.0), lambda: GEO.sphere_parallel(_X3, _Y3, v)]


@pytest.mark.parametrize("i", range(5))
@pytest.mark.parametrize("bad", ["nan", "inf", "empty", "shape", "complex"])
def test_rows15_17_sphere_geodesics(i: int, bad: str) -> None:
    arr = {"nan": np.array([np.nan, 0.0, 1.0]), "inf": np.array([np.inf, 0.0, 0.0]),
           "empty": np.zeros(0), "shape": np.ones(4), "complex": _X3.astype(complex)}[bad]
    if bad == "shape" and i == 0:
        arr = np.float64(1.0)  # vnorm takes any length: a scalar is its wrong shape
    with pytest.raises(InvalidInputError):
        _geo_calls(arr)[i]()


@pytest.mark.parametrize("fn", ["orthogonal_log", "orthogonal_exp", "stiefel_exp"])
@pytest.mark.parametrize("bad", ["nan", "inf", "s0", "snan", "sneg", "shape", "empty", "vector"])
def test_rows15_19_matrix_geodesics(fn: str, bad: str) -> None:
    from manifold_oracle.reference import geodesics as GEO
    X, Y = _O3, (_O3 @ _S3 if fn != "orthogonal_log" else np.linalg.qr(RNG.standard_normal((3, 3)))[0])
    s = 1.0
    if bad in ("nan", "inf"):
        Y = Y.copy()
        Y[0, 0] = np.nan if bad == "nan" else np.inf
    elif bad in ("s0", "snan", "sneg"):
        s = {"s0": 0.0, "snan": float("nan"), "sneg": -1.0}[bad]
    elif bad == "shape":
        Y = np.ones((3, 2))
    elif bad == "empty":
        X, Y = np.zeros((0, 0)), np.zeros((0, 0))
    else:
        Y = np.ones(3)
    with pytest.raises(InvalidInputError):
        getattr(GEO, fn)(X, Y, s)


def test_rows17_19_geodesic_shape_rules() -> None:
    from manifold_oracle.reference import geodesics as GEO
    with pytest.raises(InvalidInputError, match="square"):
        GEO.orthogonal_exp(Q43, Q43)
    with pytest.raises(InvalidInputError, match="tall"):
        GEO.stiefel_exp(Q43.T, Q43.T)
    for r in (-1.0, 0.0, float("nan"), np.array([1.0, -1.0])):
        with pytest.raises(InvalidInputError, match="r must"):
            GEO.sphere_exp(np.stack([_X3, _Y3]), np.stack([_A3, _A3]), r)
    with pytest.raises(InvalidInputError, match="x = 0"):
        GEO.sphere_log(np.zeros(3), _Y3)


# ---- rows 41, 42: momentum conventions -----------------------------------------------------

@pytest.mark.parametrize("fn", ["momentum_buffer", "nesterov_input", "update_momentum"])
@pytest.mark.parametrize("bad", ["beta-nan", "beta-inf", "beta-neg", "beta-one", "G-nan", "M-inf", "shape"])
def test_rows41_42_momentum(fn: str, bad: str) -> None:
    from manifold_oracle.reference import optim
    beta, M, G = 0.9, np.zeros((4, 3)), X43
    if bad.startswith("beta"):
        beta = {"beta-nan": float("nan"), "beta-inf": float("inf"), "beta-neg": -0.1, "beta-one": 1.0}[bad]
    elif bad == "G-nan":
        G = NAN43
    elif bad == "M-inf":
        M = np.full((4, 3), np.inf)
    else:
        M = np.zeros((3, 4))
    with pytest.raises(InvalidInputError):
        getattr(optim, fn)("ema", beta, M, G)


def test_row41_nesterov_step_index() -> None:
    from manifold_oracle.reference.optim import nesterov_input
    for t in (0, -1, 1.5):
        with pytest.raises(InvalidInputError, match="t must"):
            nesterov_input("bias_corrected", 0.9, X43, X43, t=t)


# ---- rows 43–45: shape_scale, frobenius_angle, tangent_noise_floor --------------------------

def test_row43_shape_scale_radius() -> None:
    from manifold_oracle.reference.optim import shape_scale
    for r in (float("nan"), float("inf"), -1.0, 0.0):
        with pytest.raises(InvalidInputError, match="radius"):
            shape_scale("radius", (4, 3), r)


def test_rows43_45_frobenius_angle() -> None:
    from manifold_oracle.reference.optim import frobenius_angle
    with pytest.raises(InvalidInputError, match="non-finite"):
        frobenius_angle(X43, NAN43)
    with pytest.raises(InvalidInputError, match="non-finite"):
        frobenius_angle(NAN43, X43)
    with pytest.raises(InvalidInputError, match="same shape"):
        frobenius_angle(X43, X43.T)
    assert frobenius_angle(X43, -X43) == pytest.approx(np.pi, rel=1e-15)


def test_rows43_44_tangent_noise_floor() -> None:
    from manifold_oracle.reference.optim import tangent_noise_floor
    with pytest.raises(InvalidInputError, match="non-finite"):
        tangent_noise_floor(NAN43)
    with pytest.raises(InvalidInputError, match="shape"):
        tangent_noise_floor(np.ones(3))


# ---- rows 46, 47: frobenius_bound / retraction_constants ----------------------------------

@pytest.mark.parametrize("cls", ["SpectralSphere", "Stiefel", "Oblique"])
@pytest.mark.parametrize("shape", [(-1, 3), (3,), (3, "x")])
def test_rows46_47_frobenius_bound(cls: str, shape: tuple) -> None:
    import manifold_oracle.reference as R
    with pytest.raises(InvalidInputError, match="shape"):
        getattr(R, cls)().frobenius_bound(shape)


def test_row46_stiefel_retraction_constants() -> None:
    from manifold_oracle.reference import Stiefel
    for b in (float("nan"), -1.0, float("inf")):
        with pytest.raises(InvalidInputError, match="step_bound"):
            Stiefel(2.0).retraction_constants(b)
    assert Stiefel(2.0).retraction_constants(1.0) == (0.25, 1.25)  # α = 1/(2s), β = 1 + b/(2s)


# ---- rows 48–52: schedules, linalg, golden, generators, serialization ---------------------

def test_row48_ns_singular_value_map_empty() -> None:
    from manifold_oracle.reference.schedules import ns_singular_value_map
    with pytest.raises(InvalidInputError, match="empty"):
        ns_singular_value_map("keller_jordan", np.zeros(0))


def test_row49_rank_threshold_nan() -> None:
    from manifold_oracle.reference.linalg import rank_threshold
    with pytest.raises(InvalidInputError, match="non-finite"):
        rank_threshold(np.array([1.0, np.nan, 0.1]), (4, 3))


@pytest.mark.parametrize("record", [{"bogus": 1}, {"shape": [2], "dtype": "float64", "hex": ["zz", "0x1p0"]},
                                    {"shape": [3], "dtype": "int64", "data": [1, 2]}, {"shape": None}])
def test_row50_decode_value(record: dict) -> None:
    from manifold_oracle.reference.golden import decode_value
    with pytest.raises(InvalidInputError, match="golden"):
        decode_value(record)


def test_row51_signed_permutation() -> None:
    from manifold_oracle.reference.generators import signed_permutation
    for n in (-1, 0, 2.5, "3"):
        with pytest.raises(InvalidInputError, match="n must"):
            signed_permutation(np.random.default_rng(0), n)


def test_row52_encode_float() -> None:
    from manifold_oracle.reference.serialization import encode_float
    for x in ("abc", "1.5", b"1", None, [1.0]):
        with pytest.raises(InvalidInputError):
            encode_float(x)
    assert encode_float(np.float32(0.5)) == 0.5 and encode_float(float("nan")) is None
