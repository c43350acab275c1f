"""Closed-form Riemannian geodesics of the reference manifolds (MATH.md §4), float64.

The manifold classes of :mod:`reference.manifolds` expose these as ``dist``, ``log``, ``exp`` and
``transport``; this module holds the formulas (numpy, batched over leading axes). Metric: the
embedded (Frobenius) metric everywhere.

* Sphere of radius r (a vector on the last axis; the Frobenius sphere is the sphere of the
  flattened matrix; the oblique manifold is the product of the row/column spheres):
  the angle θ = 2·atan2(‖x − y‖, ‖x + y‖) — accurate to a few ulps *relative to θ* for every
  θ ∈ [0, π] (arccos of the inner product loses half the digits near 0 and near π);
  log_x(y) = r·θ·u/‖u‖ with u = P_x(y − x) (y − x is exact for nearby points, so u is accurate
  to O(ε) relative); exp_x(ξ) = cos(t/r)·x + r·sin(t/r)·ξ/t, t = ‖ξ‖; parallel transport of
  ξ ∈ T_x along the minimising geodesic to y: ξ − 2⟨y, ξ⟩/‖x + y‖²·(x + y).
  At the antipode (y = −x) the minimising geodesic is not unique: ``log`` and the parallel
  transport raise :class:`DegenerateGeometryError`; ``dist`` = π·r is well defined.
* Orthogonal group O(n) (square Stiefel, scale s): exp_X(ξ) = X·expm(XᵀΞ/s²) … scaled, and the
  principal real logarithm Ω = log(XᵀY/s²) from the real Schur form of the orthogonal matrix
  XᵀY/s² (2×2 rotation blocks, angle atan2 of the block; exact for normal matrices).
  dist = s·‖Ω‖_F, log_X(Y) = X·Ω. Undefined (raise) when X and Y lie in different components
  (det XᵀY < 0) or on the cut locus (an eigenvalue −1 of XᵀY).
* Stiefel St(m, n), m > n, embedded metric: exp by the closed form of Edelman, Arias & Smith
  (1998, §2.2.2): X(t) = [X, Ξ]·expm(t[[A, −S], [I, A]])·[I; 0]·expm(−tA), A = XᵀΞ, S = ΞᵀΞ.
  The log and the distance have no closed form (they need an iterative solver): not provided.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from ._validate import as_float64, as_matrix, as_vector, positive_scalar, same_shape
from .errors import DegenerateGeometryError, InvalidInputError

F64 = NDArray[np.float64]

__all__ = ["vnorm", "sphere_angle", "sphere_log", "sphere_exp", "sphere_parallel", "orthogonal_log",
           "orthogonal_exp", "stiefel_exp"]


def _vectors(names: str, *xs: F64, convert: Any = as_vector) -> list[F64]:
    """Finite float64 vectors (last axis; matrices with ``convert=as_matrix``) of one shape."""
    keys = names.split()
    out = [convert(x, n) for x, n in zip(xs, keys)]
    for a, n in zip(out[1:], keys[1:]):
        same_shape(out[0], a, (keys[0], n))
    return out


def _matrices(names: str, *xs: F64, square: bool) -> list[F64]:
    """Finite float64 matrices of one shape, square (O(n)) or tall (Stiefel)."""
    out = _vectors(names, *xs, convert=as_matrix)
    m, k = out[0].shape[-2:]
    if (m != k) if square else (m < k):
        raise InvalidInputError(f"expected {'square' if square else 'tall (m >= n)'} matrices, got shape "
                                f"{out[0].shape}")
    return out


def vnorm(x: F64) -> F64:
    """Euclidean norm over the last axis, overflow/underflow safe, shape ``x.shape[:-1]``."""
    x = as_vector(x, "x")
    scale = np.max(np.abs(x), axis=-1)
    safe = np.where(scale > 0, scale, 1.0)
    return np.sqrt(np.sum((x / safe[..., None]) ** 2, axis=-1)) * safe


def sphere_angle(x: F64, y: F64) -> F64:
    """Angle θ ∈ [0, π] between x and y (last axis) as 2·atan2(‖x − y‖, ‖x + y‖).

    Exact angle for ‖x‖ = ‖y‖; relative accuracy O(ε) for every θ, including θ → 0 and θ → π.
    """
    x, y = _vectors("x y", x, y)
    return 2.0 * np.arctan2(vnorm(x - y), vnorm(x + y))


def sphere_log(x: F64, y: F64) -> F64:
    """log_x(y) on the sphere of radius ‖x‖ (last axis): r·θ·u/‖u‖ with u = P_x(y − x); 0 at y = x.

    Raises :class:`DegenerateGeometryError` at the antipode (u = 0 while θ > 0).
    """
    x, y = _vectors("x y", x, y)
    if np.any(np.sum(x * x, axis=-1) == 0):
        raise InvalidInputError("sphere_log: x = 0 is not on a sphere")
    d = y - x
    u = d - (np.sum(x * d, axis=-1) / np.sum(x * x, axis=-1))[..., None] * x
    th = sphere_angle(x, y)
    nu = vnorm(u)
    bad = (nu == 0) & (th > 0)
    if np.any(bad):
        raise DegenerateGeometryError("‖P_x(y − x)‖ at y ≠ x", 0.0, 0.0,
                                      "y is the antipode of x: the minimising geodesic (and the log) "
                                      "is not unique")
    r = vnorm(x)
    factor = np.where(nu > 0, r * th / np.where(nu > 0, nu, 1.0), 0.0)
    return u * factor[..., None]


def sphere_exp(x: F64, a: F64, r: F64 | float) -> F64:
    """exp_x(a) = cos(t/r)·x + r·sin(t/r)·a/t (t = ‖a‖, last axis); x where t = 0. r > 0, finite."""
    x, a = _vectors("x a", x, a)
    if np.ndim(r):
        ra = as_float64(r, "r")
        if not np.all(np.isfinite(ra) & (ra > 0)):
            raise InvalidInputError(f"r must be finite and > 0, got {r!r}")
    else:
        r = positive_scalar(r, "r")
    t = vnorm(a)
    safe = np.where(t > 0, t, 1.0)
    th = (t / r)[..., None] if np.ndim(r) else (t / float(r))[..., None]
    rr = np.asarray(r, dtype=np.float64)[..., None] if np.ndim(r) else float(r)
    return x * np.cos(th) + rr * np.sin(th) * a / safe[..., None]


def sphere_parallel(x: F64, y: F64, a: F64) -> F64:
    """Parallel transport of a ∈ T_x to T_y along the minimising geodesic (last axis):
    a − 2⟨y, a⟩/‖x + y‖²·(x + y). Raises at the antipode (‖x + y‖ = 0)."""
    x, y, a = _vectors("x y a", x, y, a)
    s = vnorm(x + y)
    if np.any(s == 0):
        raise DegenerateGeometryError("‖x + y‖", 0.0, 0.0, "parallel transport to the antipode is not unique")
    c = 2.0 * np.sum(y * a, axis=-1) / s**2
    return a - c[..., None] * (x + y)


def _log_orthogonal_single(q: F64) -> F64:
    """Principal real logarithm of one orthogonal matrix (det +1, no eigenvalue −1): skew Ω."""
    n = q.shape[-1]
    t, z = sla.schur(q, output="real")
    lam = np.zeros((n, n))
    i = 0
    while i < n:
        if i + 1 < n and t[i + 1, i] != 0.0:
            c = 0.5 * (t[i, i] + t[i + 1, i + 1])
            s = 0.5 * (t[i + 1, i] - t[i, i + 1])
            th = np.arctan2(s, c)
            lam[i, i + 1], lam[i + 1, i] = -th, th
            i += 2
        else:
            if t[i, i] < 0:
                raise DegenerateGeometryError(
                    "real eigenvalue of XᵀY", float(t[i, i]), 0.0,
                    "XᵀY has an eigenvalue −1: X and Y are in different components of O(n) or on the "
                    "cut locus (rotation by π), so no unique minimising geodesic joins them")
            i += 1
    om = z @ lam @ z.T
    return 0.5 * (om - om.T)


def orthogonal_log(x: F64, y: F64, s: float = 1.0) -> F64:
    """Ω = principal log(XᵀY/s²), skew, batched (square X, Y with XᵀX = s²I)."""
    x, y = _matrices("X Y", x, y, square=True)
    s = positive_scalar(s, "s")
    q = np.swapaxes(x, -1, -2) @ y / s**2
    out = np.empty_like(q)
    for idx in np.ndindex(q.shape[:-2]):
        out[idx] = _log_orthogonal_single(q[idx])
    return out


def orthogonal_exp(x: F64, a: F64, s: float = 1.0) -> F64:
    """exp_X(ξ) = X·expm(skew(XᵀΞ)/s²) on the scaled orthogonal group (square, batched)."""
    x, a = _matrices("X xi", x, a, square=True)
    s = positive_scalar(s, "s")
    m = np.swapaxes(x, -1, -2) @ a / s**2
    return x @ sla.expm(0.5 * (m - np.swapaxes(m, -1, -2)))


def stiefel_exp(x: F64, a: F64, s: float = 1.0) -> F64:
    """Embedded-metric geodesic exp on tall St(m, n; s) (Edelman–Arias–Smith closed form)."""
    x, a = _matrices("X xi", x, a, square=False)
    s = positive_scalar(s, "s")
    X, D = x / s, a / s
    n = X.shape[-1]
    A = np.swapaxes(X, -1, -2) @ D
    S = np.swapaxes(D, -1, -2) @ D
    eye = np.broadcast_to(np.eye(n), A.shape)
    blk = np.concatenate([np.concatenate([A, -S], axis=-1), np.concatenate([eye, A], axis=-1)], axis=-2)
    E = sla.expm(blk)[..., :, :n]
    return s * (np.concatenate([X, D], axis=-1) @ E @ sla.expm(-A))
