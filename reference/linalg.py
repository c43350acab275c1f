"""Float64 linear algebra of the reference: norms, msign, polar factor, top singular triplet.

Conventions (MATH.md §1–2):

* Matrices are ``(..., m, n)`` float64 arrays (array-likes are accepted and never written to);
  every function is batched over the leading dimensions. ``m = d_out`` rows, ``n = d_in`` columns.
* ``‖·‖_*`` is the **nuclear** norm everywhere.
* The numerical rank uses the threshold ``τ(X) = max(m, n)·ε_mach·σ₁(X)`` (numpy's
  ``matrix_rank`` convention) unless the caller passes ``rank_tol`` (absolute) or ``rank_rtol``
  (relative to σ₁).
* ``msign(X) = U_r V_rᵀ`` is the partial isometry: zero singular values map to zero and
  ``msign(0) = 0``. ``polar_factor(X)`` is the full isometry ``U_{:,1:k} V_{:,1:k}ᵀ`` of the thin SVD
  and matches ``scipy.linalg.polar`` (``polar_factor([[0]]) == [[1]]``). They agree iff X has full
  rank ``k = min(m, n)``.

Accuracy. LAPACK's SVD is backward stable, so ``U_r V_rᵀ`` formed from it is accurate only to
about ``u·κ_r`` (κ_r = σ₁/σ_r): the polar factor's absolute condition number is ~1/σ_r. With
``refine=True`` (the default) ``msign`` applies one Newton correction of the rank-r polar factor
whose residuals are computed in double-double (``reference._accurate``): with
``T = U_rᵀ X V_r`` (≈ diagonal), ``Ω_ij = (T_ij − T_ji)/(T_ii + T_jj)``,

    msign(X) ≈ U_r (I + Ω) V_rᵀ + (I − U_rU_rᵀ) X V_r T_d⁻¹ V_rᵀ + U_r T_d⁻¹ U_rᵀ X (I − V_rV_rᵀ),

(T_d = diag T), the first-order expansion of msign around the computed SVD. The neglected terms
are O((κ_r u)²) and the residuals carry O(κ_r u²) error, so the refined result has error
``O(k·u) + O((κ_r·u)²)``: about 1e-15 relative for κ_r ≤ 1e6 (measured against mpmath at 50
digits in tests/reference/test_precise_vs_float64.py). Denominators are sums σ_i + σ_j, never
differences, so repeated and clustered singular values are handled.

Range. Every function scales each matrix by an exact power of two chosen from max|xᵢⱼ| before
forming sums, SVDs or double-double splittings, and undoes it exactly (``reference._scaling``), so
finite input at any magnitude, from the smallest subnormal 2⁻¹⁰⁷⁴ to the largest finite float64,
gets the scale-invariant answer (bit-for-bit the unscaled one on ordinary input). A result that is
not representable (a norm or inner product above 1.8e308) raises :class:`InvalidInputError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _accurate as acc
from ._scaling import fro, pow2_scale, pow2_unscale
from ._validate import as_float64, as_matrix, check_finite, flag, nonnegative_scalar, positive_scalar, shape_tuple
from .errors import InvalidInputError

F64 = NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)  # ε_mach = 2u = 2⁻⁵²

__all__ = [
    "frobenius_norm",
    "spectral_norm",
    "nuclear_norm",
    "singular_values",
    "stable_rank",
    "numerical_rank",
    "rank_threshold",
    "SingularTriplet",
    "top_singular_triplet",
    "msign",
    "polar_factor",
    "mclip",
    "sym",
    "skew",
    "inner",
]


def _scalar_or_array(a: F64) -> F64 | float:
    return float(a) if np.ndim(a) == 0 else a


def inner(A: ArrayLike, B: ArrayLike) -> F64 | float:
    """Frobenius inner product ⟨A, B⟩ = tr(AᵀB) over the last two axes, shape ``(...)``."""
    a = as_matrix(A, "A")
    b = as_matrix(B, "B")
    if a.shape[-2:] != b.shape[-2:]:
        raise InvalidInputError(f"A and B must have equal matrix shapes, got {a.shape} and {b.shape}")
    (a_s, ea), (b_s, eb) = pow2_scale(a), pow2_scale(b)
    return _scalar_or_array(pow2_unscale(np.sum(a_s * b_s, axis=(-2, -1)), ea + eb, "⟨A, B⟩"))


def frobenius_norm(X: ArrayLike) -> F64 | float:
    """‖X‖_F over the last two axes, overflow-safe (power-of-two scaling). Shape ``(...)``."""
    return _scalar_or_array(fro(as_matrix(X)))


def singular_values(X: ArrayLike) -> F64:
    """σ₁ ≥ … ≥ σ_k ≥ 0 of each matrix, shape ``(..., k)``."""
    s, e = _scaled_singular_values(as_matrix(X))
    return pow2_unscale(s, e[..., None], "a singular value")


def _scaled_singular_values(x: F64) -> tuple[F64, NDArray[np.int64]]:
    """Singular values of x·2⁻ᵉ and e (see :mod:`reference._scaling`)."""
    xs, e = pow2_scale(x)
    return np.linalg.svd(xs, compute_uv=False), e


def spectral_norm(X: ArrayLike) -> F64 | float:
    """‖X‖₂ = σ₁(X), shape ``(...)``."""
    return _scalar_or_array(singular_values(X)[..., 0])


def nuclear_norm(X: ArrayLike) -> F64 | float:
    """‖X‖_* = Σ σᵢ(X) (nuclear norm), shape ``(...)``."""
    s, e = _scaled_singular_values(as_matrix(X))
    return _scalar_or_array(pow2_unscale(np.sum(s, axis=-1), e, "the nuclear norm"))


def stable_rank(X: ArrayLike) -> F64 | float:
    """srank(X) = ‖X‖_F²/‖X‖₂² ∈ [1, rank]; raises for X = 0 (undefined)."""
    s, _ = _scaled_singular_values(as_matrix(X))
    s1 = s[..., 0]
    if np.any(s1 == 0):
        raise InvalidInputError("stable_rank is undefined for the zero matrix")
    return _scalar_or_array(np.sum((s / s1[..., None]) ** 2, axis=-1))


def rank_threshold(
    sigma: F64, shape: tuple[int, int], rank_tol: float | None = None, rank_rtol: float | None = None
) -> F64:
    """Rank threshold τ for singular values ``sigma`` (shape ``(..., k)``) of ``shape``-matrices.

    Default ``τ = max(m, n)·ε_mach·σ₁``; ``rank_tol`` gives an absolute τ, ``rank_rtol`` a τ
    relative to σ₁. Passing both raises.
    """
    if rank_tol is not None and rank_rtol is not None:
        raise InvalidInputError("pass at most one of rank_tol (absolute) and rank_rtol (relative)")
    sigma = as_float64(sigma, "sigma")
    if sigma.ndim < 1 or sigma.shape[-1] == 0:
        raise InvalidInputError(f"sigma must have shape (..., k) with k >= 1, got {sigma.shape}")
    check_finite(sigma, "sigma")
    shp = shape_tuple(shape, "shape", 2)
    s1 = sigma[..., 0]
    if rank_tol is not None:
        return np.full(s1.shape, nonnegative_scalar(rank_tol, "rank_tol"))
    if rank_rtol is not None:
        return nonnegative_scalar(rank_rtol, "rank_rtol") * s1
    return max(shp) * EPS * s1


def numerical_rank(X: ArrayLike, rank_tol: float | None = None, rank_rtol: float | None = None) -> NDArray[np.int64] | int:
    """r = #{i : σᵢ > τ}; see :func:`rank_threshold`. Shape ``(...)``."""
    x = as_matrix(X)
    s, e = _scaled_singular_values(x)
    tau = _scaled_threshold(s, e, x.shape[-2:], rank_tol, rank_rtol)
    r = np.sum(s > tau[..., None], axis=-1)
    return int(r) if r.ndim == 0 else r


def _scaled_threshold(s: F64, e: NDArray[np.int64], shape: tuple[int, ...], rank_tol: float | None,
                      rank_rtol: float | None) -> F64:
    """τ for the singular values ``s`` of x·2⁻ᵉ: an absolute ``rank_tol`` is scaled by 2⁻ᵉ too."""
    tau = rank_threshold(s, shape, rank_tol, rank_rtol)
    if rank_tol is None:
        return tau
    with np.errstate(over="ignore"):  # τ·2⁻ᵉ = inf: every σ is below it (rank 0), as it should be
        return np.ldexp(tau, -e)


@dataclass(frozen=True)
class SingularTriplet:
    """Top singular triplet of a (batch of) matrices.

    ``sigma`` (...), ``u`` (..., m), ``v`` (..., n), ``sigma2`` (...) = σ₂ (0 if k = 1) and the
    relative gap ``gap = (σ₁ − σ₂)/σ₁`` (0 for the zero matrix, 1 if k = 1). Sign convention:
    the entry of ``u`` of largest magnitude (first on ties) is positive, so ``u`` and ``v`` are
    deterministic; ``u vᵀ`` is sign-invariant anyway.
    """

    sigma: F64 | float
    u: F64
    v: F64
    sigma2: F64 | float
    gap: F64 | float


def top_singular_triplet(X: ArrayLike) -> SingularTriplet:
    """(σ₁, u₁, v₁) with the relative spectral gap (σ₁ − σ₂)/σ₁. Batched."""
    xs, e = pow2_scale(as_matrix(X))
    U, s, Vt = np.linalg.svd(xs, full_matrices=False)
    u = U[..., :, 0]
    v = Vt[..., 0, :]
    idx = np.argmax(np.abs(u), axis=-1)
    sign = np.sign(np.take_along_axis(u, idx[..., None], axis=-1))
    sign = np.where(sign == 0, 1.0, sign)
    u = u * sign
    v = v * sign
    s1 = s[..., 0]
    s2 = s[..., 1] if s.shape[-1] > 1 else np.zeros_like(s1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(s1 > 0, (s1 - s2) / np.where(s1 > 0, s1, 1.0), 0.0)
    if s.shape[-1] == 1:
        gap = np.where(s1 > 0, 1.0, 0.0)
    sig1, sig2 = pow2_unscale(s1, e, "σ₁"), np.ldexp(s2, e)
    return SingularTriplet(_scalar_or_array(sig1), u, v, _scalar_or_array(sig2), _scalar_or_array(gap))


def _refined_partial_isometry(x: F64, U: F64, s: F64, Vt: F64, r: int) -> F64:
    """One double-double Newton correction of U_r V_rᵀ (see module docstring). 2-D only."""
    m, n = x.shape
    Ur = U[:, :r]
    Vr = Vt[:r, :].T
    Ph, Pl = acc.matmul_dd(x, Vr)  # X V_r            (m, r)
    Th, Tl = acc.matmul_f_by_dd(Ur.T, Ph, Pl)  # U_rᵀ X V_r   (r, r)
    T = Th + Tl
    d = np.diag(T).copy()
    if np.any(d <= 0):  # the SVD returned a non-positive retained value: cannot refine
        return Ur @ Vr.T
    denom = d[:, None] + d[None, :]
    Omega = (T - T.T) / denom
    np.fill_diagonal(Omega, 0.0)
    core = Vr.T + Omega @ Vr.T  # (I + Ω) V_rᵀ
    out = Ur @ core
    if r < m:  # left leakage (I − U_rU_rᵀ) X V_r
        UTh, UTl = acc.matmul_f_by_dd(Ur, Th, Tl)
        NLh, NLl = acc.sub_dd(Ph, Pl, UTh, UTl)
        out = out + ((NLh + NLl) / d[None, :]) @ Vr.T
    if r < n:  # right leakage U_rᵀ X (I − V_rV_rᵀ)
        Qh, Ql = acc.matmul_dd(Ur.T, x)
        TVh, TVl = acc.matmul_dd_by_f(Th, Tl, Vr.T)
        NRh, NRl = acc.sub_dd(Qh, Ql, TVh, TVl)
        out = out + Ur @ ((NRh + NRl) / d[:, None])
    return out


def _msign_impl(X: F64, rank_tol: float | None, rank_rtol: float | None, refine: bool, complete: bool) -> F64:
    x, e = pow2_scale(X)  # msign(2ᵏX) = msign(X): work at max|x| ∈ [½, 1)
    U, s, Vt = np.linalg.svd(x, full_matrices=False)
    k = s.shape[-1]
    tau = _scaled_threshold(s, e, x.shape[-2:], rank_tol, rank_rtol)
    ranks = np.sum(s > tau[..., None], axis=-1)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-2]):
        r = int(ranks[idx])
        if complete and r < k:
            # Non-unique completion: the SVD's own bases (scipy.linalg.polar's choice).
            out[idx] = U[idx] @ Vt[idx]
        elif r == 0:
            out[idx] = 0.0
        elif refine:
            out[idx] = _refined_partial_isometry(x[idx], U[idx], s[idx], Vt[idx], r)
        else:
            out[idx] = U[idx][:, :r] @ Vt[idx][:r, :]
    return out


def msign(
    X: ArrayLike,
    rank_tol: float | None = None,
    *,
    rank_rtol: float | None = None,
    refine: bool = True,
) -> F64:
    """Matrix sign ``msign(X) = U_r V_rᵀ`` (partial isometry), shape ``(..., m, n)`` float64.

    Zero singular values (σ ≤ τ, see :func:`rank_threshold`) map to zero; ``msign(0) = 0``.
    ``refine=True`` applies the double-double correction described in the module docstring
    (error O(k·u) + O((κ_r u)²)); ``refine=False`` returns the plain SVD product (error ~κ_r·u).
    """
    x = as_matrix(X)
    return _msign_impl(x, rank_tol, rank_rtol, flag(refine, "refine"), complete=False)


def polar_factor(X: ArrayLike, *, refine: bool = True) -> F64:
    """Unitary polar factor ``U_p`` with ``X = U_p H``, ``H = (XᵀX)^{1/2}``; shape ``(..., m, n)``.

    Full isometry: orthonormal columns if m ≥ n, orthonormal rows if m < n. Unique (and equal to
    ``msign(X)``, refined) iff X has full rank k; on rank-deficient input it is the SVD completion
    ``U_{:,1:k} V_{:,1:k}ᵀ``, which depends on the SVD's null-space bases and matches
    ``scipy.linalg.polar`` (``polar_factor(0)`` is a full isometry, e.g. ``[[1]]`` for 1×1).
    """
    x = as_matrix(X)
    return _msign_impl(x, None, None, flag(refine, "refine"), complete=True)


def mclip(X: ArrayLike, tau: float) -> F64:
    """Spectral clip ``U·min(Σ, τ)·Vᵀ``: the Frobenius-nearest point of the ball ‖·‖₂ ≤ τ.

    Computed as ``X − U·max(Σ − τ, 0)·Vᵀ`` so that matrices already inside the ball are
    returned unchanged (bit for bit). Batched; τ > 0.
    """
    x = as_matrix(X)
    t = positive_scalar(tau, "tau")
    xs, e = pow2_scale(x)
    U, s, Vt = np.linalg.svd(xs, full_matrices=False)
    with np.errstate(over="ignore"):  # τ·2⁻ᵉ = inf: τ far above σ₁, nothing to clip
        excess = np.maximum(s - np.ldexp(t, -e)[..., None], 0.0)
    if not np.any(excess):
        return x.copy()
    return x - np.ldexp((U * excess[..., None, :]) @ Vt, e[..., None, None])


def sym(A: ArrayLike) -> F64:
    """sym(A) = (A + Aᵀ)/2 over the last two (equal) axes."""
    a = as_matrix(A, "A")
    if a.shape[-1] != a.shape[-2]:
        raise InvalidInputError(f"sym needs square matrices, got shape {a.shape}")
    a_s, e = pow2_scale(a)
    return np.ldexp(0.5 * (a_s + np.swapaxes(a_s, -1, -2)), e[..., None, None])


def skew(A: ArrayLike) -> F64:
    """skew(A) = (A − Aᵀ)/2 over the last two (equal) axes."""
    a = as_matrix(A, "A")
    if a.shape[-1] != a.shape[-2]:
        raise InvalidInputError(f"skew needs square matrices, got shape {a.shape}")
    a_s, e = pow2_scale(a)
    return np.ldexp(0.5 * (a_s - np.swapaxes(a_s, -1, -2)), e[..., None, None])
