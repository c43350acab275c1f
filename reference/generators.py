"""Spectrum-controlled test matrices and hypothesis strategies (public: import them in your tests).

Matrices are built as ``X = Q₁·diag(σ)·Q₂ᵀ`` with Haar-random orthogonal factors (QR of a
Gaussian matrix with the sign fix), never by filtering random matrices (CLAIMS.md §0.1;
CONVENTIONS.md §12.9). The spectrum σ is chosen through parameters: condition number, rank,
multiplicity of σ₁, clustering and overall scale (1e-30 … 1e30).

Rank deficiency. In float64 the product Q₁·diag(σ)·Q₂ᵀ is only *numerically* rank deficient:
the "zero" singular values become rounding noise of size ~u·σ₁. Pass ``rank_rtol=RANK_RTOL``
(1e-10) to ``msign`` and friends for such matrices: every retained σ is ≥ σ₁/MAX_COND (1e-6 σ₁),
at least 10⁴ above that threshold, and the noise (≲ 1e-14 σ₁ for sides ≤ 1024) is 10⁴ below it,
so the rank is unambiguous (MATH.md §2.1). ``exact_zeros=True`` instead builds an exactly
rank-deficient matrix (a block with zero rows and columns, moved by signed permutations, which
are exact in floating point).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
from hypothesis import strategies as st
from numpy.typing import ArrayLike, NDArray

from ._validate import as_float64, choice, count, flag, positive_scalar, shape_tuple
from .errors import InvalidInputError
from .manifolds import Manifold

F64 = NDArray[np.float64]
SpectrumKind = Literal["geometric", "linear", "random", "clustered"]

#: relative rank threshold to use with the rank-deficient matrices made here (see module doc)
RANK_RTOL = 1e-10
#: largest condition number (of the retained part) the generators produce
MAX_COND = 1e6

__all__ = [
    "RANK_RTOL",
    "MAX_COND",
    "haar_orthogonal",
    "spectrum",
    "matrix_with_spectrum",
    "random_matrix",
    "signed_permutation",
    "shapes",
    "spectra",
    "matrices",
    "manifold_points",
    "points_and_tangents",
]


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def haar_orthogonal(rng: np.random.Generator, n: int, batch: Sequence[int] = ()) -> F64:
    """Haar-distributed orthogonal matrices, shape ``(*batch, n, n)`` (QR with sign fix)."""
    n = count(n, "n")
    shape = shape_tuple(shape_tuple(batch, "batch") + (n, n), "shape")
    z = _check_rng(rng).standard_normal(shape)
    q, r = np.linalg.qr(z)
    d = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    d = np.where(d == 0, 1.0, d)
    return q * d[..., None, :]


def signed_permutation(rng: np.random.Generator, n: int) -> F64:
    """A random signed permutation matrix (exactly orthogonal in floating point), n >= 1."""
    n = count(n, "n")
    p = np.zeros((n, n))
    p[np.arange(n), rng.permutation(n)] = rng.choice([-1.0, 1.0], size=n)
    return p


def spectrum(
    k: int,
    *,
    cond: float = 1.0,
    rank: int | None = None,
    scale: float = 1.0,
    kind: SpectrumKind = "geometric",
    multiplicity: int = 1,
    cluster_width: float = 1e-3,
    rng: np.random.Generator | None = None,
) -> F64:
    """A non-increasing spectrum of length ``k``: σ₁ = ``scale``, σ_r = scale/cond, zeros after r.

    ``kind``: ``geometric`` (log-spaced), ``linear``, ``random`` (log-uniform interior, needs
    ``rng``) or ``clustered`` (all retained values within a relative ``cluster_width`` of σ₁ —
    ``cond`` is ignored). ``multiplicity`` q makes σ₁ = … = σ_q exactly (a repeated top value).
    """
    (k,) = shape_tuple((count(k, "k"),), "k")
    r = k if rank is None else count(rank, "rank", 0)
    multiplicity = count(multiplicity, "multiplicity")
    cond, scale = positive_scalar(cond, "cond"), positive_scalar(scale, "scale")
    if not 0 <= r <= k:
        raise InvalidInputError(f"need 0 <= rank <= k, got k={k}, rank={rank}")
    if not 1.0 <= cond <= 1e16:
        raise InvalidInputError(f"cond must be in [1, 1e16], got {cond}")
    if not (1 <= multiplicity <= max(r, 1)):
        raise InvalidInputError(f"multiplicity must be in [1, rank], got {multiplicity}")
    s = np.zeros(k)
    if r == 0:
        return s
    choice(kind, ("geometric", "linear", "random", "clustered"), "kind")
    if kind == "geometric":
        core = np.geomspace(1.0, 1.0 / cond, r)
    elif kind == "linear":
        core = np.linspace(1.0, 1.0 / cond, r)
    elif kind == "random":
        if rng is None:
            raise InvalidInputError("kind='random' needs rng")
        _check_rng(rng)
        inner = np.sort(rng.uniform(-np.log10(cond), 0.0, max(r - 2, 0)))[::-1]
        core = np.concatenate([[1.0], 10.0**inner, [1.0 / cond]])[:r] if r > 1 else np.array([1.0])
    elif kind == "clustered":
        core = 1.0 - cluster_width * np.linspace(0.0, 1.0, r)
    else:
        raise InvalidInputError(f"unknown spectrum kind {kind!r}")
    core[:multiplicity] = 1.0
    s[:r] = np.sort(core)[::-1] * scale
    return s


def matrix_with_spectrum(rng: np.random.Generator, sigma: ArrayLike, shape: Sequence[int],
                         *, exact_zeros: bool = False) -> F64:
    """``Q₁·diag(σ)·Q₂ᵀ`` of shape ``(..., m, n)`` with singular values ``sigma`` (length k).

    ``sigma`` of shape ``(k,)`` or ``(..., k)`` (broadcast over the batch); k = min(m, n).
    ``exact_zeros=True`` puts the zero singular values in exactly zero rows/columns (signed
    permutations only), so the result is exactly rank deficient; the non-zero block still uses
    Haar factors.
    """
    _check_rng(rng)
    shape = shape_tuple(shape, "shape")
    if len(shape) < 2 or min(shape[-2:]) < 1:
        raise InvalidInputError(f"shape must be (..., m, n) with m, n >= 1, got {shape}")
    *batch, m, n = shape
    k = min(m, n)
    exact_zeros = flag(exact_zeros, "exact_zeros")
    s = as_float64(sigma, "sigma")
    if s.ndim < 1 or s.shape[-1] != k or s.shape[:-1] not in ((), tuple(batch)):
        raise InvalidInputError(f"sigma has shape {s.shape}, expected (k,) or (*batch, k) with k = "
                                f"min(m, n) = {k}")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise InvalidInputError("sigma must be finite and >= 0")
    s = np.broadcast_to(s, tuple(batch) + (k,))
    if not exact_zeros:
        q1 = haar_orthogonal(rng, m, batch)[..., :, :k]
        q2 = haar_orthogonal(rng, n, batch)[..., :, :k]
        return (q1 * s[..., None, :]) @ np.swapaxes(q2, -1, -2)
    out = np.zeros(tuple(batch) + (m, n))
    for idx in np.ndindex(*batch) if batch else [()]:
        sv = s[idx]
        r = int(np.count_nonzero(sv))
        block = np.zeros((m, n))
        if r:
            block[:r, :r] = matrix_with_spectrum(rng, sv[:r], (r, r))
        out[idx] = signed_permutation(rng, m) @ block @ signed_permutation(rng, n)
    return out


def random_matrix(
    rng: np.random.Generator,
    shape: Sequence[int],
    *,
    cond: float = 1.0,
    rank: int | None = None,
    scale: float = 1.0,
    kind: SpectrumKind = "geometric",
    multiplicity: int = 1,
    exact_zeros: bool = False,
) -> F64:
    """A matrix of ``shape`` with the spectrum of :func:`spectrum` (σ₁ = scale)."""
    shape = shape_tuple(shape, "shape", 2)
    k = min(shape[-1], shape[-2])
    s = spectrum(k, cond=cond, rank=rank, scale=scale, kind=kind, multiplicity=multiplicity, rng=rng)
    return matrix_with_spectrum(rng, s, shape, exact_zeros=exact_zeros)


# --------------------------------------------------------------------------------- strategies
@st.composite
def shapes(draw: Any, *, min_side: int = 1, max_side: int = 8, batch_dims: int = 0, max_batch: int = 3,
           kind: Literal["any", "tall", "wide", "square"] = "any") -> tuple[int, ...]:
    """Matrix shapes ``(*batch, m, n)``; ``kind`` restricts to tall (m ≥ n), wide or square."""
    m = draw(st.integers(min_side, max_side))
    if kind == "square":
        n = m
    elif kind == "tall":
        n = draw(st.integers(min_side, m))
    elif kind == "wide":
        n = draw(st.integers(m, max(m, max_side)))
    else:
        n = draw(st.integers(min_side, max_side))
    batch = tuple(draw(st.integers(1, max_batch)) for _ in range(batch_dims))
    return batch + (m, n)


@st.composite
def spectra(draw: Any, k: int, *, max_cond: float = MAX_COND, rank_deficient: bool = True,
            repeated: bool = True, min_scale_exp: int = -30, max_scale_exp: int = 30) -> F64:
    """Spectra of length k drawn through their parameters (cond, rank, multiplicity, scale, kind)."""
    cond = 10.0 ** draw(st.floats(0.0, float(np.log10(max_cond))))
    rank = draw(st.integers(1, k)) if (rank_deficient and k > 1) else k
    mult = draw(st.integers(1, rank)) if (repeated and rank > 1) else 1
    scale = 10.0 ** draw(st.integers(min_scale_exp, max_scale_exp))
    kind = draw(st.sampled_from(["geometric", "linear", "random", "clustered"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return spectrum(k, cond=cond, rank=rank, scale=scale, kind=kind, multiplicity=mult,
                    rng=np.random.default_rng(seed))


@st.composite
def matrices(draw: Any, shape: tuple[int, ...] | Any = None, *, max_cond: float = MAX_COND,
             rank_deficient: bool = True, repeated: bool = True, min_scale_exp: int = -30,
             max_scale_exp: int = 30) -> F64:
    """Spectrum-controlled matrices. ``shape`` is a tuple, a strategy of tuples, or None (any ≤ 8×8).

    The spectrum is the same across a batch; the orthogonal factors differ per slice.
    """
    if shape is None:
        shape = shapes()
    shp = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    k = min(shp[-2:])
    sig = draw(spectra(k, max_cond=max_cond, rank_deficient=rank_deficient, repeated=repeated,
                       min_scale_exp=min_scale_exp, max_scale_exp=max_scale_exp))
    seed = draw(st.integers(0, 2**32 - 1))
    return matrix_with_spectrum(np.random.default_rng(seed), sig, shp)


def _point_shape_ok(manifold: Manifold, shp: tuple[int, ...]) -> tuple[int, ...]:
    if manifold.point_ndim == 1:
        return shp[:-2] + (shp[-1] * shp[-2],)
    return shp


@st.composite
def manifold_points(draw: Any, manifold: Manifold, shape: tuple[int, ...] | Any = None) -> F64:
    """Random points of ``manifold`` (its own ``random_point`` from a drawn seed)."""
    if shape is None:
        shape = shapes(kind="square") if manifold.square_only else shapes()
    shp = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    return manifold.random_point(np.random.default_rng([seed, 0]), _point_shape_ok(manifold, shp))


@st.composite
def points_and_tangents(draw: Any, manifold: Manifold, shape: tuple[int, ...] | Any = None,
                        *, scale_exp: tuple[int, int] = (0, 0)) -> tuple[F64, F64]:
    """(W, ξ): a point and a tangent vector at it with ‖ξ‖_F = 10^e, e drawn from ``scale_exp``."""
    W = draw(manifold_points(manifold, shape))
    seed = draw(st.integers(0, 2**32 - 1))
    e = draw(st.integers(*scale_exp))
    xi = manifold.random_tangent(np.random.default_rng([seed, 1]), W) * 10.0**e  # own stream
    return W, xi

