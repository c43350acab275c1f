"""Geodesic distance, log, exp and transport of the reference manifolds (reference.geodesics).

Golden values are computed with mpmath at 50 digits from the same float64 inputs (so the input
rounding is not part of the error). Error model: the formulas are a few flops per entry plus one
norm, so dist/log/exp are accurate to c·n·u *relative to the result* (c = 8, n = entries per
sphere), including tiny distances; the orthogonal log goes through a Schur form (absolute error
c·n·u, c = 50, on Ω of norm O(1)).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from manifold_oracle.reference import (
    DegenerateGeometryError,
    Euclidean,
    FrobeniusSphere,
    NotAvailableError,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)

U = 2.0**-53


@pytest.fixture(autouse=True)
def _mp50() -> object:
    """50 significant digits for this module's mpmath goldens (the global context is restored)."""
    with mp.workdps(50):
        yield


def _pair_at_angle(rng: np.random.Generator, n: int, theta: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Two points of the radius-r sphere in Rⁿ at angle θ (up to the rounding of a rotation)."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = np.zeros(n)
    b = np.zeros(n)
    a[0] = r
    b[0], b[1] = r * np.cos(theta), r * np.sin(theta)
    return Q @ a, Q @ b


def _mp_angle(x: np.ndarray, y: np.ndarray) -> mp.mpf:
    X = [mp.mpf(float(v)) for v in x]
    Y = [mp.mpf(float(v)) for v in y]
    ip = mp.fsum(a * b for a, b in zip(X, Y))
    nx = mp.sqrt(mp.fsum(a * a for a in X))
    ny = mp.sqrt(mp.fsum(b * b for b in Y))
    return mp.acos(ip / (nx * ny))


THETAS = [0.0, 1e-12, 1e-8, 1e-6, 1e-3, 0.5, 2.0, np.pi - 1e-6, np.pi - 1e-3]


@pytest.mark.parametrize("theta", THETAS)
def test_sphere_dist_log_exp_vs_mpmath(theta: float) -> None:
    rng = np.random.default_rng(int(theta * 1e6) % 1000)
    r, n = 1.7, 6
    S = Sphere(r)
    x, y = _pair_at_angle(rng, n, theta, r)
    want = r * _mp_angle(x, y) if theta > 0 else mp.mpf(0)
    got = S.dist(x, y)
    # the float64 inputs lie on the sphere only to ~u: for ‖x‖ ≠ ‖y‖ the chord form differs from
    # the angle between the directions by at most r·δ²/θ, δ = |‖x‖ − ‖y‖|/r (exactly 0 for θ = 0)
    delta = float(abs(mp.norm([mp.mpf(float(v)) for v in x]) - mp.norm([mp.mpf(float(v)) for v in y]))) / r
    radial = r * delta**2 / theta if theta > 0 else 0.0
    assert abs(mp.mpf(got) - want) <= 8 * n * U * want + radial, (got, want)
    # log: r·θ·P_x(y)/‖P_x(y)‖ in mpmath
    X = [mp.mpf(float(v)) for v in x]
    Y = [mp.mpf(float(v)) for v in y]
    c = mp.fsum(a * b for a, b in zip(X, Y)) / mp.fsum(a * a for a in X)
    P = [b - c * a for a, b in zip(X, Y)]
    nP = mp.sqrt(mp.fsum(p * p for p in P))
    L = S.log(x, y)
    if theta == 0:
        assert np.all(L == 0)
        return
    th = _mp_angle(x, y)
    Lw = np.array([float(r * th * p / nP) for p in P])
    assert np.linalg.norm(L - Lw) <= 8 * n * U * np.linalg.norm(Lw) * (1 + theta / max(np.sin(theta), 1e-300)) + radial
    # exp inverts log (exp computed in mpmath from the float64 log)
    E = S.exp(x, L)
    nL = mp.sqrt(mp.fsum(mp.mpf(float(v)) ** 2 for v in L))
    Ew = np.array([float(a * mp.cos(nL / r) + r * mp.sin(nL / r) * mp.mpf(float(v)) / nL) for a, v in zip(X, L)])
    assert np.linalg.norm(E - Ew) <= 8 * n * U * r


def test_sphere_antipode() -> None:
    S = FrobeniusSphere(2.0)
    x = S.random_point(np.random.default_rng(1), (4, 3))
    assert S.dist(x, -x) == pytest.approx(2.0 * np.pi, rel=4 * U)
    with pytest.raises(DegenerateGeometryError):
        S.log(x, -x)
    with pytest.raises(DegenerateGeometryError):
        S.transport(x, -x, S.random_tangent(np.random.default_rng(2), x), method="parallel")


@pytest.mark.parametrize("axis", ["rows", "cols"])
def test_oblique_is_the_product_of_spheres(axis: str) -> None:
    rng = np.random.default_rng(3)
    M = Oblique(np.array([1.0, 2.0, 0.5, 1.5]) if axis == "rows" else 1.3, axis=axis)
    x = M.random_point(rng, (4, 5) if axis == "rows" else (5, 4))
    xi = 0.3 * M.random_tangent(rng, x)
    y = M.exp(x, xi)
    rows = (lambda a: a) if axis == "rows" else (lambda a: a.T)
    radii = np.broadcast_to(np.asarray(M.radius, dtype=float), (4,))
    per = [float(rr * _mp_angle(a, b)) for rr, a, b in zip(radii, rows(x), rows(y))]
    assert M.dist(x, y) == pytest.approx(np.linalg.norm(per), rel=40 * U)
    assert np.linalg.norm(M.log(x, y) - xi) <= 40 * U * np.linalg.norm(xi)
    assert M.dist(x, x) == 0.0 and np.all(M.log(x, x) == 0)
    assert M.dist(x, -x) == pytest.approx(np.pi * np.linalg.norm(radii), rel=8 * U)


def _skew(rng: np.random.Generator, n: int, norm: float) -> np.ndarray:
    A = rng.standard_normal((n, n))
    A = A - A.T
    return norm * A / np.linalg.norm(A)


@pytest.mark.parametrize("norm", [1e-6, 1e-3, 0.8, 2.5])
def test_orthogonal_log_dist_vs_mpmath_expm(norm: float) -> None:
    rng = np.random.default_rng(int(norm * 1e3) + 7)
    n = 4
    O = Orthogonal()
    X = O.random_point(rng, (n, n))
    Om = _skew(rng, n, norm)
    if norm > 1:  # keep every rotation angle below π (the principal log is then Ω itself)
        ev = np.abs(np.linalg.eigvals(Om).imag).max()
        Om *= min(1.0, 2.8 / ev)
    Y = np.array((mp.matrix(X.tolist()) * mp.expm(mp.matrix(Om.tolist()))).tolist(), dtype=float)
    L = O.log(X, Y)
    assert np.linalg.norm(X.T @ L - Om) <= 50 * n * U
    assert O.dist(X, Y) == pytest.approx(np.linalg.norm(Om), abs=50 * n * U)
    Ew = np.array((mp.matrix(X.tolist()) * mp.expm(mp.matrix(Om.tolist()))).tolist(), dtype=float)
    assert np.linalg.norm(O.exp(X, X @ Om) - Ew) <= 50 * n * U


def test_orthogonal_components_and_cut_locus() -> None:
    O = Orthogonal()
    X = O.random_point(np.random.default_rng(5), (3, 3))
    Y = X.copy()
    Y[:, 0] *= -1  # other component
    with pytest.raises(DegenerateGeometryError):
        O.dist(X, Y)
    with pytest.raises(DegenerateGeometryError):  # rotation by π in a plane: cut locus
        O.log(X, X @ np.diag([-1.0, -1.0, 1.0]))


@pytest.mark.parametrize("shape", [(6, 3), (3, 6)])
def test_stiefel_exp_solves_the_geodesic_equation(shape: tuple[int, int]) -> None:
    """Embedded-metric geodesics of St(m, n) satisfy Ÿ + Y·ẎᵀẎ = 0 (tall orientation); checked by
    central differences (h = 1e-3: truncation O(h²) ≈ 1e-6 on O(1) terms, rounding u/h² ≈ 1e-10)."""
    rng = np.random.default_rng(11)
    M = Stiefel(1.5)
    X = M.random_point(rng, shape)
    xi = 0.9 * M.random_tangent(rng, X)
    h, t = 1e-3, 0.4
    Ys = [M.exp(X, s * xi) for s in (t - h, t, t + h)]
    tall = (lambda a: a) if shape[0] >= shape[1] else (lambda a: a.T)
    Ym, Y0, Yp = (tall(a) for a in Ys)
    acc = (Yp - 2 * Y0 + Ym) / h**2
    vel = (Yp - Ym) / (2 * h)
    res = acc + Y0 @ (vel.T @ vel) / 1.5**2
    assert np.linalg.norm(res) <= 1e-5
    assert np.linalg.norm((tall(M.exp(X, h * xi)) - tall(X)) / h - tall(xi)) <= 2 * h
    assert float(M.violation(Y0)) <= 100 * U * 6
    with pytest.raises(NotAvailableError):
        M.dist(X, Y0.T if shape[0] < shape[1] else Y0)


def test_parallel_transport_is_an_isometry_along_the_geodesic() -> None:
    rng = np.random.default_rng(13)
    for M, shp in ((FrobeniusSphere(1.3), (4, 3)), (Oblique(1.0, "cols"), (5, 3)), (Sphere(2.0), (6,))):
        x = M.random_point(rng, shp)
        y = M.exp(x, 1.1 * M.random_tangent(rng, x))
        a, b = M.random_tangent(rng, x), M.random_tangent(rng, x)
        Pa, Pb = M.transport(x, y, a, "parallel"), M.transport(x, y, b, "parallel")
        assert abs(np.sum(Pa * Pb) - np.sum(a * b)) <= 50 * U
        assert np.max(M.tangent_violation(y, Pa)) <= 50 * U
        # the geodesic's own velocity is transported to minus the reverse log
        assert np.linalg.norm(M.transport(x, y, M.log(x, y), "parallel") + M.log(y, x)) <= 100 * U
        assert np.linalg.norm(M.transport(x, y, a) - M.project_tangent(y, a)) == 0.0


def test_no_closed_form_is_a_typed_refusal() -> None:
    S = SpectralSphere(1.0)
    x = S.random_point(np.random.default_rng(17), (4, 3))
    for op in (lambda: S.dist(x, x), lambda: S.log(x, x), lambda: S.exp(x, 0 * x)):
        with pytest.raises(NotAvailableError):
            op()
    E = Euclidean()
    assert E.dist(x, 2 * x) == pytest.approx(np.linalg.norm(x))
