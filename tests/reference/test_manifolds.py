"""Geometry of the reference manifolds (MATH.md §4; CLAIMS.md G-5, G-6, G-7).

Tolerances: projections and retractions are a few flops per entry on O(1) data, so identities
hold to ``c·u·n_eff·scale`` with c = 100 (CLAIMS.md §0.2). Taylor-slope fits use
t ∈ [1e-3, 1e-1] with every error ≥ 1e3·u·scale, and accept |slope − p| ≤ 0.05 with e(t)/t^p
varying by at most 10 % (CLAIMS.md §0.2).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifold_oracle.reference import (
    DegenerateGeometryError,
    Euclidean,
    FrobeniusSphere,
    InvalidInputError,
    Oblique,
    OffManifoldError,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
    matrix_with_spectrum,
    singular_values,
)
from manifold_oracle.reference.generators import manifold_points, points_and_tangents, shapes

U = 2.0**-53

MANIFOLDS = [
    FrobeniusSphere(1.0),
    FrobeniusSphere(3.5),
    SpectralSphere(1.0),
    SpectralSphere(0.25),
    Oblique(1.0, "rows"),
    Oblique(2.0, "cols"),
    Stiefel(1.0),
    Stiefel(0.5),
    Orthogonal(),
    Sphere(2.0),
    Euclidean(),
]
IDS = [repr(m) for m in MANIFOLDS]


def tol(W: np.ndarray, scale: float = 1.0) -> float:
    return 100 * U * max(W.shape[-2:] if W.ndim >= 2 else W.shape) * scale


def _shape(man, data):
    kind = "square" if isinstance(man, Orthogonal) else "any"
    return data.draw(shapes(min_side=2, max_side=7, kind=kind))


@pytest.mark.parametrize("man", MANIFOLDS, ids=IDS)
@given(data=st.data())
def test_projection_is_an_orthogonal_projector(man, data):
    shp = _shape(man, data)
    W = data.draw(manifold_points(man, shp))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    G, H = rng.standard_normal(W.shape), rng.standard_normal(W.shape)
    P = man.project_tangent(W, G)
    s = np.linalg.norm(G)
    assert np.linalg.norm(man.project_tangent(W, P) - P) <= tol(W, s)  # idempotent
    assert abs(np.sum(P * H) - np.sum(G * man.project_tangent(W, H))) <= tol(W, s * np.linalg.norm(H))  # self-adjoint
    # normalised residual × ‖P‖ is the absolute normal component: bounded by rounding of ‖G‖
    assert man.tangent_violation(W, P) * np.linalg.norm(P) <= tol(W, s)
    if W.ndim == 2 and not isinstance(man, Euclidean):
        N = man.normal_basis(W)
        p = N.shape[0]
        gram = np.einsum("imn,jmn->ij", N, N)
        assert np.linalg.norm(gram - np.eye(p)) <= tol(W, p)  # orthonormal basis
        for n in N:
            assert np.linalg.norm(man.project_tangent(W, n)) <= tol(W)  # P kills the normal space
        # G = P G + Σ ⟨G, nᵢ⟩ nᵢ
        recon = P + np.einsum("i,imn->mn", np.einsum("imn,mn->i", N, G), N)
        assert np.linalg.norm(recon - G) <= tol(W, s * p)


@pytest.mark.parametrize("man", MANIFOLDS, ids=IDS)
@given(data=st.data())
def test_retractions_land_on_the_manifold(man, data):
    shp = _shape(man, data)
    W, xi = data.draw(points_and_tangents(man, shp, scale_exp=(-6, 0)))
    for method in man.retractions:
        if method == "exp" or isinstance(man, Euclidean):
            Y = man.retract(W, 0.3 * xi, method)
        else:
            Y = man.retract(W, 0.3 * xi, method)
        assert man.violation(Y) <= tol(W, 10.0)
        assert np.array_equal(man.retract(W, np.zeros_like(W), method), man.retract(W, 0 * xi, method))
        assert np.linalg.norm(man.retract(W, np.zeros_like(W), method) - W) <= tol(W, np.linalg.norm(W))


def _slope(ts: np.ndarray, es: np.ndarray, p: float) -> None:
    slope = np.polyfit(np.log(ts), np.log(es), 1)[0]
    ratio = es / ts**p
    assert abs(slope - p) <= 0.05, f"slope {slope:.4f}, expected {p}"
    assert ratio.max() / ratio.min() <= 1.10, f"e/t^{p} varies by {ratio.max() / ratio.min():.3f}"


# (manifold, method, shape, order of the tangent part of the deviation: 3 = second-order retraction)
ORDERS = [
    (FrobeniusSphere(2.0), "rescale", (6, 4), 3),
    (FrobeniusSphere(2.0), "exp", (6, 4), 3),
    (SpectralSphere(1.0), "projection", (6, 4), 3),
    (SpectralSphere(1.0), "rescale", (6, 4), 2),  # first order only (MATH.md §4.4)
    (Oblique(1.0, "rows"), "normalize", (6, 4), 3),
    (Oblique(1.0, "cols"), "normalize", (4, 6), 3),
    (Stiefel(1.0), "polar", (6, 4), 3),
    (Stiefel(1.0), "qr", (6, 4), 2),  # first order only (MATH.md §4.6)
    (Stiefel(1.5), "polar", (3, 5), 3),
    (Sphere(1.0), "projection", (7,), 3),
]


@pytest.mark.parametrize("man,method,shape,order", ORDERS, ids=[f"{m!r}-{meth}" for m, meth, _, _ in ORDERS])
def test_retraction_order_by_taylor_slope(rng, man, method, shape, order):
    W = man.random_point(rng, shape)
    xi = man.random_tangent(rng, W)
    ts = np.geomspace(1e-3, 1e-1, 9)
    dev = [man.retract(W, t * xi, method) - W - t * xi for t in ts]
    e_all = np.array([np.linalg.norm(d) for d in dev])
    e_tan = np.array([np.linalg.norm(man.project_tangent(W, d)) for d in dev])
    assert e_all.min() >= 1e3 * U and e_tan.min() >= 1e3 * U
    _slope(ts, e_all, 2.0)  # every retraction: R_W(tξ) = W + tξ + O(t²)
    _slope(ts, e_tan, float(order))


def test_frobenius_retraction_error_closed_form(rng):
    """‖R_W(ξ) − (W + ξ)‖_F = √(R² + ‖ξ‖²) − R for tangent ξ (G-6)."""
    man = FrobeniusSphere(1.7)
    W = man.random_point(rng, (5, 3))
    for scale in [1e-4, 1e-2, 1.0, 10.0]:
        xi = man.random_tangent(rng, W) * scale
        err = np.linalg.norm(man.retract(W, xi) - (W + xi))
        exact = scale**2 / (np.sqrt(1.7**2 + scale**2) + 1.7)  # stable form of √(R²+s²) − R
        assert err == pytest.approx(exact, rel=1e-12, abs=tol(W, 1.7))
        assert err <= scale**2 / (2 * 1.7) * (1 + 1e-12)


def test_frobenius_exp_is_a_geodesic(rng):
    man = FrobeniusSphere(2.0)
    W = man.random_point(rng, (4, 4))
    xi = man.random_tangent(rng, W) * 0.7
    Y = man.retract(W, xi, "exp")
    angle = np.arccos(np.clip(np.sum(W * Y) / 4.0, -1, 1))
    assert angle == pytest.approx(0.7 / 2.0, rel=1e-12)


def test_stiefel_closed_form_retraction(rng):
    """(W − ηΦ)/√(1 + η²) is exactly on St when ΦᵀΦ = I and WᵀΦ is skew (G-7)."""
    man = Stiefel()
    W = man.random_point(rng, (8, 3))
    A = rng.standard_normal((3, 3))
    Phi = W @ (A - A.T) / 2
    Phi = man.project_tangent(W, rng.standard_normal((8, 3)))
    from manifold_oracle.reference import msign

    Phi = msign(Phi)  # unit singular values; still tangent? re-check below
    if man.tangent_violation(W, Phi) > 1e-12:
        # msign of a tangent vector need not be tangent on St; use the O(n)-type tangent instead
        Q = np.linalg.qr(np.hstack([W, rng.standard_normal((8, 3))]))[0][:, 3:6]
        Phi = Q  # WᵀQ = 0 is skew, QᵀQ = I
    eta = 0.37
    Y = (W - eta * Phi) / np.sqrt(1 + eta**2)
    assert man.violation(Y) <= tol(W)
    assert np.linalg.norm(man.retract(W, -eta * Phi, "polar") - Y) <= tol(W, 10)


def test_spectral_sphere_degenerate_gap_raises_and_strict_mode(rng):
    s = np.array([1.0, 1.0, 0.5, 0.2])
    W = matrix_with_spectrum(rng, s, (6, 4))
    with pytest.raises(DegenerateGeometryError) as info:
        SpectralSphere(1.0).project_tangent(W, rng.standard_normal((6, 4)))
    assert info.value.value < info.value.threshold
    strict = SpectralSphere(1.0, degenerate="strict")
    G = rng.standard_normal((6, 4))
    P = strict.project_tangent(W, G)
    U1, V1 = strict.normal_frame(W)
    assert U1.shape == (6, 2)
    core = U1.T @ P @ V1
    assert np.linalg.norm(core + core.T) <= tol(W, np.linalg.norm(G))
    assert np.linalg.norm(strict.project_tangent(W, P) - P) <= tol(W, np.linalg.norm(G))
    assert strict.normal_basis(W).shape == (3, 6, 4)  # q(q+1)/2 conditions


def test_spectral_tangent_step_never_ends_inside_the_ball(rng):
    """σ₁(W + ξ) ≥ R for tangent ξ (G-12)."""
    man = SpectralSphere(1.3)
    for _ in range(20):
        W = man.random_point(rng, (5, 4))
        xi = man.random_tangent(rng, W) * rng.uniform(0.01, 3)
        assert singular_values(W + xi)[0] >= 1.3 * (1 - 4 * U)


def test_oblique_axis_is_respected(rng):
    rows, cols = Oblique(1.0, "rows"), Oblique(1.0, "cols")
    W = rows.random_point(rng, (5, 3))
    assert np.allclose(np.linalg.norm(W, axis=1), 1.0, atol=tol(W))
    assert not cols.contains(W)  # a row-oblique point is not column-oblique
    Wc = cols.random_point(rng, (5, 3))
    assert np.allclose(np.linalg.norm(Wc, axis=0), 1.0, atol=tol(W))
    per_row = Oblique(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), "rows").random_point(rng, (5, 3))
    assert np.allclose(np.linalg.norm(per_row, axis=1), [1, 2, 3, 4, 5], rtol=tol(W))
    with pytest.raises(InvalidInputError):
        Oblique(np.ones(4), "rows").random_point(rng, (5, 3))


def test_orthogonal_component_is_kept_by_small_steps(rng):
    man = Orthogonal()
    W = man.random_point(rng, (5, 5))
    if man.component(W) > 0:
        W = W @ np.diag([-1.0, 1, 1, 1, 1])
    xi = man.random_tangent(rng, W) * 0.5
    for method in man.retractions:
        assert man.component(man.retract(W, xi, method)) == -1.0
    A = rng.standard_normal((5, 5))
    G = rng.standard_normal((5, 5))
    assert np.allclose(man.project_tangent(W, G), W @ (W.T @ G - G.T @ W) / 2, atol=tol(W, 5))


def test_off_manifold_point_raises_with_figures(rng):
    man = FrobeniusSphere(1.0)
    W = man.random_point(rng, (4, 3)) * (1 + 1e-6)
    with pytest.raises(OffManifoldError) as info:
        man.project_tangent(W, W)
    assert info.value.violation == pytest.approx(1e-6, rel=1e-6)
    assert info.value.tolerance == man.point_tol
    assert FrobeniusSphere(1.0, point_tol=1e-5).contains(W)


@pytest.mark.parametrize("man", MANIFOLDS, ids=IDS)
def test_batched_equals_per_slice(rng, man):
    shape = (3, 4) if isinstance(man, Sphere) else ((3, 4, 4) if isinstance(man, Orthogonal) else (3, 5, 4))
    W = man.random_point(rng, shape)
    G = rng.standard_normal(shape)
    P = man.project_tangent(W, G)
    Y = man.retract(W, 0.1 * P)
    for i in range(3):
        assert np.allclose(P[i], man.project_tangent(W[i], G[i]), atol=tol(W, 5), rtol=0)
        assert np.allclose(Y[i], man.retract(W[i], 0.1 * P[i]), atol=tol(W, 5), rtol=0)
    assert np.shape(man.violation(W)) == (3,)
