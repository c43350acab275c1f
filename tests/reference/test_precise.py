"""reference.precise against closed forms, its own identities at 50 digits, precision
self-consistency (dps 50 vs 60), correct rounding, and typed errors."""

from __future__ import annotations

from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest

from manifold_oracle.reference import precise as P
from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError, OffManifoldError
from manifold_oracle.reference.manifolds import (
    Euclidean,
    FrobeniusSphere,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)
from manifold_oracle.reference.schedules import get_schedule

TOL50 = mp.mpf(10) ** -45  # CLAIMS.md §0.2: mpmath at d digits → 10^-(d-5)·scale


def _maxabs(A, B) -> "mp.mpf":
    with mp.workdps(60):
        if isinstance(A, list):
            return max(abs(a - b) for a, b in zip(A, B))
        if isinstance(A, mp.matrix):
            return max(abs(A[i, j] - B[i, j]) for i in range(A.rows) for j in range(A.cols))
        return abs(A - B)


def _mp(rows) -> mp.matrix:
    with mp.workdps(60):
        return mp.matrix(rows)


def _haar(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _with_spectrum(rng: np.random.Generator, s, m: int, n: int) -> np.ndarray:
    k = min(m, n)
    return (_haar(rng, m)[:, :k] * np.asarray(s)) @ _haar(rng, n)[:, :k].T


# -- closed forms ---------------------------------------------------------------------------
def test_singular_values_closed_form() -> None:
    X = np.array([[3.0, 0.0], [4.0, 5.0]])  # XᵀX = [[25, 20], [20, 25]] → σ² = 45, 5
    with mp.workdps(60):  # expected values built at 60 digits (outside, mpmath uses 15)
        s1, s2 = 3 * mp.sqrt(5), mp.sqrt(5)
        nuc, fro, srank = s1 + s2, mp.sqrt(50), mp.mpf(50) / 45
    assert _maxabs(P.singular_values(X), [s1, s2]) < TOL50
    assert _maxabs(P.nuclear_norm(X), nuc) < TOL50
    assert _maxabs(P.frobenius_norm(X), fro) < TOL50
    assert _maxabs(P.stable_rank(X), srank) < TOL50
    t = P.top_singular_triplet(X)
    with mp.workdps(60):
        assert _maxabs(t.gap, mp.mpf(2) / 3) < TOL50
    # u₁ is the top eigenvector of XXᵀ = [[9, 12], [12, 41]]: u ∝ (1, 3) (eigenvalue 45)
    with mp.workdps(60):
        u = [1 / mp.sqrt(10), 3 / mp.sqrt(10)]
    assert _maxabs(t.u, u) < TOL50


def test_msign_polar_closed_forms() -> None:
    D = np.diag([3.0, -2.0, 0.0])
    assert _maxabs(P.msign(D), _mp([[1, 0, 0], [0, -1, 0], [0, 0, 0]])) == 0
    assert P.numerical_rank(D) == 2
    # 2×2 polar factor: (A + sign(det A)·cof(A))/√|det(A + sign(det A)·cof(A))|
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    with mp.workdps(60):
        B = _mp([[1 - 4, 2 + 3], [3 + 2, 4 - 1]])  # det A = -2: A − cof(A)
        Q = B / mp.sqrt(abs(mp.det(B)))
    assert _maxabs(P.polar_factor(A), Q) < TOL50
    assert _maxabs(P.msign(A), Q) < TOL50
    # rank-one: msign(x yᵀ) = x yᵀ/(‖x‖‖y‖)
    X = np.outer([1.0, 2.0, 2.0], [3.0, 4.0])
    with mp.workdps(60):
        M = _mp([[mp.mpf(a * b) / 15 for b in (3, 4)] for a in (1, 2, 2)])
    assert _maxabs(P.msign(X), M) < TOL50
    assert _maxabs(P.msign(X.T), M.T) < TOL50
    assert _maxabs(P.msign(np.zeros((3, 2))), mp.zeros(3, 2)) == 0


def test_rank_threshold_follows_the_working_precision() -> None:
    X = np.diag([1.0, 1e-40])  # 1e-40 ≫ τ = 2·ε(50) ≈ 5e-51, but ≪ any float64 threshold
    assert P.numerical_rank(X) == 2
    assert P.numerical_rank(X, rank_rtol=1e-30) == 1
    assert P.numerical_rank(X, rank_tol=1e-39) == 1
    assert P.numerical_rank(X, dps=30) == 1  # ε(30) ≈ 1e-30
    with pytest.raises(InvalidInputError):
        P.msign(X, 1e-3, rank_rtol=1e-3)


def test_mclip_closed_form() -> None:
    Q = _haar(np.random.default_rng(1), 4)
    X = Q @ np.diag([4.0, 2.0, 1.0, 0.5])  # exact product not needed: compare with the formula
    got = P.mclip(X, 1.5)
    U, s, Vt = P.svd(X)
    with mp.workdps(65):
        ref = U * mp.diag([min(v, mp.mpf(1.5)) for v in s]) * Vt
    assert _maxabs(got, ref) < TOL50
    # msign-only identity (MATH.md §2.4): ½{W + τ·msign W − (τI − W·msign(W)ᵀ)·msign(τ·msign W − W)}
    with mp.workdps(65):
        Xm, M, t = P.to_mpmath(X), P.msign(X, dps=65), mp.mpf(1.5)
        inner = P.msign(t * M - Xm, dps=65)
        ident = (Xm + t * M - (t * mp.eye(4) - Xm * M.T) * inner) / 2
    assert _maxabs(got, ident) < TOL50


def test_polynomial_map_against_exact_rationals() -> None:
    """φ at x = 1/2 with the float coefficients as exact fractions (no mpmath involved)."""
    for name in ("keller_jordan", "you_jiacheng_5", "modula_ns6", "classical"):
        sch = get_schedule(name)
        y = Fraction(1, 2)
        for a, b, c in sch.coefficients_for(None):
            y = y * (Fraction(a) + y * y * (Fraction(b) + Fraction(c) * y * y))
        got = P.polynomial_map(name, 0.5)
        with mp.workdps(60):
            exact = mp.mpf(y.numerator) / y.denominator
            assert abs(got - exact) <= TOL50 * abs(exact)


def test_schedule_bands_match_conventions_table() -> None:
    """CONVENTIONS.md §9 (4 decimals) and the tiny-σ images."""
    cases = [("keller_jordan", None, None, 0.1, 0.6818, 1.1344),
             ("you_jiacheng_5", 6, "cycle", 0.1, 0.0642, 0.1649),
             ("classical", 10, None, 0.001, 0.4987, 1.0000),
             ("modula_ns6", None, None, 0.1, 0.9956, 0.9993)]
    for name, steps, ext, lower, lo, hi in cases:
        sch = get_schedule(name).with_options(**{k: v for k, v in (("steps", steps), ("extension", ext)) if v})
        b = P.schedule_band(sch, lower, points=401)
        assert abs(float(b[0]) - lo) <= 1e-4 and abs(float(b[1]) - hi) <= 1e-4, (name, b)
    assert abs(float(P.polynomial_map("keller_jordan", 1e-6)) - 4.8e-4) < 0.05e-4
    assert abs(float(P.polynomial_map("classical", 1e-6)) - 2.3e-5) < 0.05e-5


def test_ns_map_normalisation_and_eps_forms() -> None:
    s = [3.0, 4.0]  # ‖σ‖₂ = 5
    got = P.ns_singular_value_map("classical", s, steps=1)
    with mp.workdps(60):
        p = lambda x: x * (mp.mpf(15) / 8 - mp.mpf(10) / 8 * x**2 + mp.mpf(3) / 8 * x**4)  # noqa: E731
        assert _maxabs(got, [p(mp.mpf(3) / 5), p(mp.mpf(4) / 5)]) < TOL50
        eps = mp.mpf(1e-7)  # the float64 value, exact
        got_eps = P.ns_singular_value_map("keller_jordan", s, steps=1)
        a, b, c = (mp.mpf(v) for v in (3.4445, -4.7750, 2.0315))
        q = lambda x: x * (a + b * x**2 + c * x**4)  # noqa: E731
        assert _maxabs(got_eps, [q(3 / (5 + eps)), q(4 / (5 + eps))]) < TOL50
    assert P.ns_singular_value_map("keller_jordan", [0.0, 0.0]) == [0, 0]
    with pytest.raises(InvalidInputError):
        P.ns_singular_value_map("classical", [0.0, 0.0])  # eps_form none: 0/0
    X = np.diag([3.0, 4.0])
    with mp.workdps(60):
        assert _maxabs(P.ns_apply("classical", X, steps=1), mp.diag([p(mp.mpf(3) / 5), p(mp.mpf(4) / 5)])) < TOL50


# -- manifolds: closed forms ----------------------------------------------------------------
def test_spectral_sphere_closed_forms() -> None:
    S = SpectralSphere(2.0)
    W = np.diag([2.0, 1.0, 0.5])
    G = np.arange(9.0).reshape(3, 3)
    expect = G.copy()
    expect[0, 0] = 0.0  # Θ = e₁e₁ᵀ
    assert _maxabs(P.project_tangent(S, W, G), _mp(expect.tolist())) < TOL50
    assert _maxabs(P.tangent_violation(S, W, G), mp.mpf(0)) < TOL50  # G₀₀ = 0 already
    # raise branch of the metric projection: Y = W − 0.5W has σ₁ = 1 < R
    assert _maxabs(P.retract(S, W, -0.5 * W, "projection"), _mp(np.diag([2.0, 0.5, 0.25]).tolist())) < TOL50
    # clip branch: Y = diag(3, 1, .5) → diag(2, 1, .5); rescale → diag(2, 2/3, 1/3)
    A = np.diag([1.0, 0.0, 0.0])
    assert _maxabs(P.retract(S, W, A, "projection"), _mp(np.diag([2.0, 1.0, 0.5]).tolist())) < TOL50
    with mp.workdps(60):
        assert _maxabs(P.retract(S, W, A, "rescale"), mp.diag([2, mp.mpf(2) / 3, mp.mpf(1) / 3])) < TOL50
    with pytest.raises(DegenerateGeometryError):
        P.project_tangent(S, np.diag([2.0, 2.0, 1.0]), G)
    strict = SpectralSphere(2.0, degenerate="strict")
    out = P.project_tangent(strict, np.diag([2.0, 2.0, 1.0]), G)
    expect = G.copy()
    expect[:2, :2] = 0.5 * (G[:2, :2] - G[:2, :2].T)  # G − U₁ sym(U₁ᵀGV₁) V₁ᵀ
    assert _maxabs(out, _mp(expect.tolist())) < TOL50


def test_frobenius_sphere_closed_forms() -> None:
    F = FrobeniusSphere(3.0)
    W = np.diag([3.0, 0.0])
    xi = np.array([[0.0, 4.0], [0.0, 0.0]])  # tangent, ‖ξ‖ = 4
    with mp.workdps(60):
        # MATH.md §4.3: ‖R_W(ξ) − (W + ξ)‖_F = √(R² + ‖ξ‖²) − R = 2
        r = P.retract(F, W, xi, "rescale")
        assert abs(P.frobenius_norm(r - P.to_mpmath(W + xi)) - 2) < TOL50
        e = P.retract(F, W, xi, "exp")  # W cos(4/3) + 3 sin(4/3) ξ/4
        assert _maxabs(e, _mp([[3 * mp.cos(mp.mpf(4) / 3), 3 * mp.sin(mp.mpf(4) / 3)], [0, 0]])) < TOL50
    with pytest.raises(OffManifoldError):
        P.retract(F, W, np.array([[1.0, 0.0], [0.0, 0.0]]), "exp")  # not tangent


def test_stiefel_oblique_sphere_closed_forms() -> None:
    St = Stiefel(2.0)
    W = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    G = np.array([[1.0, 2.0], [5.0, 3.0], [7.0, 8.0]])
    expect = G.copy()
    expect[:2] = np.array([[0.0, -1.5], [1.5, 0.0]])  # top block → skew part, bottom kept
    assert _maxabs(P.project_tangent(St, W, G), _mp(expect.tolist())) < TOL50
    assert _maxabs(P.project_tangent(St, W.T, G.T), _mp(expect.T.tolist())) < TOL50  # wide
    # QR of [[2, 1], [0, 2], [0, 0]] + 0: columns → Gram–Schmidt by hand
    A = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    with mp.workdps(60):
        q2 = [1 / mp.sqrt(5), 2 / mp.sqrt(5), 0]
        q2 = [v - q2[0] * 1 * (1 if i == 0 else 0) for i, v in enumerate(q2)]
        q2 = [v / mp.sqrt(sum(t * t for t in q2)) for v in q2]
        Q = mp.matrix([[2, 2 * q2[0]], [0, 2 * q2[1]], [0, 2 * q2[2]]])
    assert _maxabs(P.retract(St, W, A, "qr"), Q) < TOL50
    Ob = Oblique([1.0, 2.0], axis="rows")
    Wo = np.array([[0.6, 0.8], [2.0, 0.0]])
    Go = np.array([[1.0, 1.0], [3.0, 5.0]])
    with mp.workdps(60):
        exp_o = mp.matrix([[1 - 1.4 * 0.6, 1 - 1.4 * 0.8], [0, 5]])
    assert _maxabs(P.project_tangent(Ob, Wo, Go), exp_o) < 1e-15  # the 0.6/0.8/1.4 decimals are inexact
    assert P.tangent_violation(Ob, Wo, np.array([[0.8, -0.6], [0.0, 1.0]])) == 0
    V = Sphere(5.0)
    v = P.retract(V, np.array([3.0, 4.0]), np.array([4.0, -3.0]), "projection")
    with mp.workdps(60):
        assert _maxabs(v, [5 * mp.mpf(7) / mp.sqrt(50), 5 * mp.mpf(1) / mp.sqrt(50)]) < TOL50
    assert isinstance(v, list) and P.to_float64(v).shape == (2,)


# -- identities at 50 digits for every manifold ---------------------------------------------
MANIFOLDS = [
    (Euclidean(), (4, 3)),
    (Sphere(1.5), (5,)),
    (FrobeniusSphere(2.0), (5, 3)),
    (SpectralSphere(1.0), (3, 5)),
    (Oblique(0.5, axis="cols"), (4, 3)),
    (Stiefel(0.5), (5, 3)),
    (Stiefel(1.0), (3, 5)),
    (Orthogonal(), (4, 4)),
]


@pytest.mark.parametrize("man,shape", MANIFOLDS, ids=lambda x: repr(x) if not isinstance(x, tuple) else str(x))
def test_projection_idempotent_self_adjoint_and_retractions_on_manifold(man, shape) -> None:
    rng = np.random.default_rng(11)
    # W on M to ~1e-80 (an mpmath point): the identities below hold exactly only on M, and a
    # float64 point is off M by ~1e-16
    W = P.project_point(man, man.random_point(rng, shape), dps=80)
    G, H = rng.standard_normal(shape), rng.standard_normal(shape)
    with mp.workdps(60):
        PG = P.project_tangent(man, W, G)
        PGm = mp.matrix(PG) if isinstance(PG, list) else PG
        PPG = P.project_tangent(man, W, PGm)
        assert _maxabs(PPG, PG) < TOL50 * 10
        assert P.tangent_violation(man, W, PGm) < TOL50 * 10
        # self-adjoint: ⟨P G, H⟩ = ⟨G, P H⟩
        PH = P.project_tangent(man, W, H)
        a = mp.fsum(x * y for x, y in zip(_flat(PG), H.ravel()))
        b = mp.fsum(x * y for x, y in zip(G.ravel(), _flat(PH)))
        assert abs(a - b) < TOL50 * 10
        xi = mp.matrix(PG) if isinstance(PG, list) else PG
        for method in man.retractions:
            R = P.retract(man, W, xi * mp.mpf("0.1"), method)
            assert P.violation(man, R if not isinstance(R, list) else mp.matrix(R)) < TOL50 * 10


def _flat(M) -> list:
    if isinstance(M, list):
        return M
    return [M[i, j] for i in range(M.rows) for j in range(M.cols)]


# -- precision self-consistency ---------------------------------------------------------------
def test_dps50_and_dps60_agree() -> None:
    rng = np.random.default_rng(5)
    X = _with_spectrum(rng, np.geomspace(1.0, 1e-6, 6), 8, 6)  # κ = 1e6
    assert _maxabs(P.msign(X, dps=50), P.msign(X, dps=60)) < TOL50
    assert _maxabs(P.polar_factor(X.T, dps=50), P.polar_factor(X.T, dps=60)) < TOL50
    S = SpectralSphere(1.0)
    W = S.random_point(rng, (6, 5))
    G = rng.standard_normal((6, 5))
    assert _maxabs(P.project_tangent(S, W, G, dps=50), P.project_tangent(S, W, G, dps=60)) < TOL50
    # both runs carry 15 guard digits, so even the φ-amplified NS map agrees to ~1e-51
    assert _maxabs(P.ns_apply("polar_express", X, dps=50), P.ns_apply("polar_express", X, dps=60)) < TOL50


def test_lower_precision_differs_detectably() -> None:
    """Negative control: dps 20 vs 60 do NOT agree to 1e-45 (the comparison above has power)."""
    rng = np.random.default_rng(5)
    X = _with_spectrum(rng, np.geomspace(1.0, 1e-6, 6), 8, 6)
    assert _maxabs(P.msign(X, dps=20), P.msign(X, dps=60)) > TOL50


def test_global_precision_and_inputs_untouched() -> None:
    before = (mp.mp.dps, mp.mp.prec)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((4, 3))
    keep = X.copy()
    Xm = P.to_mpmath(X)
    keep_m = Xm.copy()
    P.msign(X, dps=80)
    P.msign(Xm, dps=30)
    P.retract(Stiefel(1.0), np.linalg.qr(X)[0], 0.1 * X, "qr")
    assert (mp.mp.dps, mp.mp.prec) == before
    assert np.array_equal(X, keep) and Xm == keep_m
    assert P.msign(X, dps=80)[0, 0].context.prec == mp.mp.prec  # results are plain mpf values


# -- rounding to float64 ----------------------------------------------------------------------
def test_to_float64_rounds_correctly() -> None:
    with mp.workprec(200):
        one = mp.mpf(1)
        h = mp.mpf(2) ** -53
        assert P.to_float64(one + h) == 1.0  # tie → even
        assert P.to_float64(one + 3 * h) == 1.0 + 2.0**-51  # tie → even (up)
        assert P.to_float64(one + h + mp.mpf(2) ** -120) == 1.0 + 2.0**-52  # above the tie
        assert P.to_float64(-(one + h + mp.mpf(2) ** -120)) == -(1.0 + 2.0**-52)
        t = mp.mpf(2) ** -1074
        assert P.to_float64(t * mp.mpf("2.5")) == 2 * 5e-324  # subnormal tie → even
        assert P.to_float64(t * mp.mpf("3.5")) == 4 * 5e-324
        assert P.to_float64(t * mp.mpf("0.49")) == 0.0
        assert P.to_float64(mp.mpf(2) ** -1022 * (1 - mp.mpf(2) ** -60)) == 2.0**-1022  # rounds up to normal
        with pytest.raises(InvalidInputError):
            P.to_float64(mp.mpf(2) ** 1024)
    x = np.array([[0.1, -2.5e-300], [1e300, 5e-324]])
    assert P.to_float64(P.to_mpmath(x)).tobytes() == x.tobytes()  # exact round trip
    assert P.to_float64([mp.mpf(1), mp.mpf(2)]).shape == (2,)
    assert isinstance(P.to_float64(mp.mpf(1)), float)


# -- typed errors -------------------------------------------------------------------------------
def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(InvalidInputError):
        P.msign(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidInputError):
        P.msign(np.array([[1.0, np.inf]]))
    with pytest.raises(InvalidInputError):
        P.msign(np.zeros((2, 2, 2)))  # batches are not supported: one matrix per call
    with pytest.raises(InvalidInputError):
        P.msign(np.zeros((0, 3)))
    with pytest.raises(InvalidInputError):
        P.msign(np.ones(3))
    with pytest.raises(InvalidInputError):
        P.msign(np.eye(2), dps=5)
    with pytest.raises(InvalidInputError):
        P.mclip(np.eye(2), -1.0)
    with pytest.raises(InvalidInputError):
        P.stable_rank(np.zeros((2, 2)))
    with pytest.raises(OffManifoldError):
        P.project_tangent(FrobeniusSphere(1.0), 2 * np.eye(2) / np.sqrt(2), np.eye(2))
    with pytest.raises(InvalidInputError):
        P.retract(Stiefel(1.0), np.eye(2), np.zeros((2, 2)), "exp")
    with pytest.raises(InvalidInputError):
        P.project_tangent(Orthogonal(), np.eye(3)[:, :2], np.zeros((3, 2)))
    with pytest.raises(InvalidInputError):
        P.project_tangent(Oblique([1.0, 1.0, 1.0]), np.eye(2), np.zeros((2, 2)))
    with pytest.raises(DegenerateGeometryError):
        P.retract(Stiefel(1.0), np.eye(2), -np.eye(2), "polar")
    with pytest.raises(DegenerateGeometryError):
        P.retract(Oblique(1.0), np.eye(2), -np.eye(2))
