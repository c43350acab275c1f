"""Properties of the float64 linalg reference (MATH.md §2; CLAIMS.md P-1, P-2, P-3, P-6).

Tolerance model (CLAIMS.md §0.2): an exact identity evaluated in float64 holds to
``c·u·n_eff·scale`` with u = 2⁻⁵³, c = 100, n_eff = max(m, n) and ``scale`` the natural magnitude
of the quantity compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from manifold_oracle.reference import (
    RANK_RTOL,
    frobenius_norm,
    mclip,
    msign,
    nuclear_norm,
    numerical_rank,
    polar_factor,
    random_matrix,
    singular_values,
    spectral_norm,
    stable_rank,
    top_singular_triplet,
)
from manifold_oracle.reference.generators import haar_orthogonal, matrices, shapes

U = 2.0**-53


def bound(x: np.ndarray, scale: float = 1.0) -> float:
    return 100 * U * max(x.shape[-2:]) * scale


@given(matrices())
def test_msign_identities(X):
    """‖msign X‖₂ = 1, ‖msign X‖_F² = rank, ⟨msign X, X⟩ = ‖X‖_* (P-1)."""
    Phi = msign(X, rank_rtol=RANK_RTOL)
    r = numerical_rank(X, rank_rtol=RANK_RTOL)
    assert abs(spectral_norm(Phi) - 1.0) <= bound(X)
    assert abs(frobenius_norm(Phi) ** 2 - r) <= bound(X, r)
    nuc = float(np.sum(singular_values(X)[:r]))
    assert abs(np.sum(Phi * X) - nuc) <= bound(X, nuc)


@given(matrices(), st.integers(0, 2**32 - 1))
def test_msign_beats_random_feasible_directions(X, seed):
    """msign X maximises ⟨X, Φ⟩ over ‖Φ‖₂ ≤ 1: no random contraction does better (P-1)."""
    rng = np.random.default_rng(seed)
    best = np.sum(msign(X, rank_rtol=RANK_RTOL) * X)
    for _ in range(20):
        Y = rng.standard_normal(X.shape)
        Phi = Y / spectral_norm(Y)
        assert np.sum(X * Phi) <= best + bound(X, nuclear_norm(X))


@given(matrices(), st.integers(0, 2**32 - 1))
def test_msign_invariances(X, seed):
    """Transpose, orthogonal equivariance, oddness, idempotence (P-2)."""
    rng = np.random.default_rng(seed)
    m, n = X.shape
    Phi = msign(X, rank_rtol=RANK_RTOL)
    tol = bound(X, np.sqrt(min(m, n)))
    assert np.linalg.norm(msign(X.T, rank_rtol=RANK_RTOL) - Phi.T) <= tol
    assert np.linalg.norm(msign(-X, rank_rtol=RANK_RTOL) + Phi) <= tol
    Q, P = haar_orthogonal(rng, m), haar_orthogonal(rng, n)
    # Forming Q·X·P rounds the input by ~n·u·‖X‖; msign's absolute condition number is 1/σ_r,
    # so this (unlike transpose and negation, which are exact) is bounded by κ_r·tol.
    s = singular_values(X)
    r = numerical_rank(X, rank_rtol=RANK_RTOL)
    kappa = s[0] / s[r - 1]
    assert np.linalg.norm(msign(Q @ X @ P, rank_rtol=RANK_RTOL) - Q @ Phi @ P) <= 10 * kappa * tol
    assert np.linalg.norm(msign(Phi, rank_rtol=RANK_RTOL) - Phi) <= tol


@pytest.mark.parametrize("exp", [-30, -12, -6, 0, 6, 12, 30])
def test_msign_scale_invariance(rng, exp):
    """msign(cX) = msign(X) for c from 1e-30 to 1e30 (P-2): no eps anywhere in the reference."""
    X = random_matrix(rng, (9, 6), cond=1e4)
    Y = msign(X * 10.0**exp)
    assert np.linalg.norm(Y - msign(X)) <= bound(X, np.sqrt(6))


def test_msign_batched_equals_per_slice(rng):
    X = random_matrix(rng, (3, 2, 7, 5), cond=1e3)
    Y = msign(X)
    for idx in np.ndindex(3, 2):
        assert np.linalg.norm(Y[idx] - msign(X[idx])) <= bound(X, np.sqrt(5))


def test_msign_skew_in_skew_out(rng):
    A = rng.standard_normal((7, 7))
    S = A - A.T
    Phi = msign(S)
    assert np.linalg.norm(Phi + Phi.T) <= bound(S, np.sqrt(7))


def test_msign_zero_and_polar_zero():
    """msign(0) = 0; polar_factor(0) is a full isometry like scipy's (P-3)."""
    for shape in [(1, 1), (3, 2), (2, 3)]:
        Z = np.zeros(shape)
        assert np.all(msign(Z) == 0)
        Up = polar_factor(Z)
        k = min(shape)
        gram = Up.T @ Up if shape[0] >= shape[1] else Up @ Up.T
        assert np.allclose(gram, np.eye(k), atol=bound(Z))
    assert np.array_equal(polar_factor(np.zeros((1, 1))), scipy.linalg.polar(np.zeros((1, 1)))[0])


@pytest.mark.parametrize("shape", [(8, 8), (9, 5), (5, 9)])
def test_polar_matches_scipy_full_rank(rng, shape):
    X = random_matrix(rng, shape, cond=1e3)
    Up = polar_factor(X)
    ref, _ = scipy.linalg.polar(X)
    # scipy's unrefined SVD product has error ~κ·u; compare at that level
    assert np.linalg.norm(Up - ref) <= 1e3 * bound(X, np.sqrt(min(shape)))
    assert np.linalg.norm(Up - msign(X)) <= bound(X, np.sqrt(min(shape)))


@given(matrices(shapes(min_side=2)), st.booleans())
def test_polar_vs_msign_on_rank_deficient(X, exact):
    """polar_factor is a full isometry, X = U_p·H with H ⪰ 0, and it agrees with msign on the range."""
    m, n = X.shape
    Up = polar_factor(X)
    Phi = msign(X, rank_rtol=RANK_RTOL)
    k = min(m, n)
    gram = Up.T @ Up if m >= n else Up @ Up.T
    assert np.linalg.norm(gram - np.eye(k)) <= bound(X, np.sqrt(k))
    proj = Phi.T @ Phi  # projector onto the row space of X
    assert np.linalg.norm((Up - Phi) @ proj) <= 1e2 * bound(X, np.sqrt(k))
    sx = spectral_norm(X)
    if m >= n:
        H = Up.T @ X
        assert np.linalg.norm(H - H.T) <= bound(X, sx * np.sqrt(k))
        assert np.min(np.linalg.eigvalsh(0.5 * (H + H.T))) >= -bound(X, sx)
        assert np.linalg.norm(Up @ H - X) <= bound(X, sx * np.sqrt(k))


def test_polar_rank_deficient_negative_control(rng):
    """‖polar_factor X‖_F² = k ≠ r on rank-deficient X: the msign identity must fail (P-1 control)."""
    X = random_matrix(rng, (6, 4), rank=2, exact_zeros=True)
    assert abs(frobenius_norm(polar_factor(X)) ** 2 - 2) > 1.0
    assert abs(frobenius_norm(msign(X)) ** 2 - 2) <= bound(X, 2)


def test_default_rank_threshold_is_numpy_convention(rng):
    X = random_matrix(rng, (10, 6), rank=3, exact_zeros=True)
    assert numerical_rank(X) == np.linalg.matrix_rank(X) == 3


def test_top_singular_triplet(rng):
    X = random_matrix(rng, (7, 4), cond=10.0, scale=3.0)
    t = top_singular_triplet(X)
    assert abs(t.sigma - 3.0) <= bound(X, 3.0)
    assert np.linalg.norm(X @ t.v - t.sigma * t.u) <= bound(X, 3.0)
    assert t.u[np.argmax(np.abs(t.u))] > 0  # documented sign convention
    s = singular_values(X)
    assert abs(t.gap - (s[0] - s[1]) / s[0]) <= bound(X)
    tb = top_singular_triplet(np.stack([X, -X]))
    assert np.allclose(np.outer(tb.u[0], tb.v[0]), np.outer(tb.u[1], -tb.v[1]), atol=bound(X))


def test_stable_rank_and_norm_chain(rng):
    X = random_matrix(rng, (8, 5), cond=50.0, rank=4, kind="random")
    s2, sf, sn = spectral_norm(X), frobenius_norm(X), nuclear_norm(X)
    r = 4
    assert s2 <= sf <= sn <= np.sqrt(r) * sf * (1 + 1e-15) <= r * s2 * (1 + 1e-15)
    assert 1.0 <= stable_rank(X) <= r + 1e-12


def test_frobenius_norm_overflow_safe():
    X = np.full((3, 3), 1e200)
    assert frobenius_norm(X) == pytest.approx(3e200, rel=1e-15)
    assert frobenius_norm(np.full((2, 2), 1e-200)) == pytest.approx(2e-200, rel=1e-15)


@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (6, 6)])
def test_mclip_against_msign_identity(rng, shape):
    """mclip(W; τ) = ½{W + τ·msign W − (τI − W·msign(W)ᵀ)·msign(τ·msign W − W)} (P-6)."""
    s = np.array([3.0, 2.0, 1.5, 1.0, 0.5][: min(shape)] + [0.25] * (min(shape) - 5))[: min(shape)]
    W = __import__("reference").matrix_with_spectrum(rng, s, shape)
    tau = 1.5  # one singular value exactly at τ
    S = msign(W)
    m = shape[0]
    ident = 0.5 * (W + tau * S - (tau * np.eye(m) - W @ S.T) @ msign(tau * S - W))
    assert np.linalg.norm(mclip(W, tau) - ident) <= bound(W, 3.0 * np.sqrt(min(shape)))
    assert np.allclose(singular_values(mclip(W, tau)), np.minimum(s, tau), atol=bound(W, 3.0))


def test_mclip_leaves_inside_points_unchanged(rng):
    W = random_matrix(rng, (5, 4), scale=0.9)
    assert np.array_equal(mclip(W, 1.0), W)
