"""Double-double ("twice working precision") matrix products built on float64 BLAS (private).

The refinement step of :func:`reference.linalg.msign` needs residuals such as
``(I - U Uᵀ) X V`` to about ``u²·‖X‖`` absolute accuracy, far below float64 rounding.
``matmul_dd`` computes ``A @ B`` as an unevaluated sum ``hi + lo`` using the error-free splitting
of Ozaki, Ogita, Oishi and Rump (Numer. Algorithms 59, 2012): each row of ``A`` and column of
``B`` is cut into slices of at most ``53 - β`` significant bits on a common exponent grid, with
``β = ⌈(53 + log₂ p)/2⌉`` for inner dimension ``p``, so that every slice product ``A_s @ B_t`` is
computed *exactly* by the float64 BLAS whatever its summation order. Slice products with
``s + t < K`` are accumulated with TwoSum; the discarded tail is below ``2⁻¹¹⁰·p·|A||B|``
(row-/column-wise), i.e. the result is as accurate as a product carried out in ~106-bit
arithmetic and then rounded to ``hi + lo``.

Valid for all finite inputs: ``A`` and ``B`` are first scaled by exact powers of two so that
max|entry| ∈ [½, 1) (the splitting constant 2^(e+β) then cannot overflow, and subnormal entries
are lifted into the normal range), and ``hi``, ``lo`` are scaled back exactly. A product whose
exact value exceeds the float64 range comes back as ±inf; ``lo`` can underflow when the product
is near the bottom of the range (it then carries less than the full second word).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._scaling import pow2_exponent

F64 = NDArray[np.float64]

_TARGET_BITS = 110  # bits below the row/column maximum that the slices must cover


def two_sum(a: F64, b: F64) -> tuple[F64, F64]:
    """Knuth's TwoSum: ``a + b = s + e`` exactly, ``s = fl(a + b)``."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _slices(A: F64, axis: int, beta: int, count: int) -> list[F64]:
    """Cut ``A`` into ``count`` slices along rows (axis=-1) or columns (axis=-2)."""
    out: list[F64] = []
    R = np.array(A, dtype=np.float64, copy=True)
    for _ in range(count):
        mu = np.max(np.abs(R), axis=axis, keepdims=True)
        _, ex = np.frexp(mu)  # mu = f·2^ex with f in [0.5, 1): 2^ex > mu
        sigma = np.where(mu > 0, np.ldexp(1.0, ex + beta), 0.0)
        S = (R + sigma) - sigma
        out.append(S)
        R = R - S
        if not np.any(R):
            break
    return out


def matmul_dd(A: F64, B: F64) -> tuple[F64, F64]:
    """Return ``(hi, lo)`` with ``hi + lo ≈ A @ B`` to ~2⁻¹⁰⁶ relative to ``|A|·|B|``.

    Shapes follow ``numpy.matmul`` (batched over leading dimensions).
    """
    p = A.shape[-1]
    if p == 0:
        z = np.zeros(np.broadcast_shapes(A.shape[:-1], (1,))[:-1] + (A.shape[-2], B.shape[-1]))
        return z, z.copy()
    ea, eb = pow2_exponent(A), pow2_exponent(B)
    if np.any(ea) or np.any(eb):  # exact power-of-two scaling (see module docstring)
        hi, lo = matmul_dd(np.ldexp(A, -ea[..., None, None]), np.ldexp(B, -eb[..., None, None]))
        e = (ea + eb)[..., None, None]
        with np.errstate(over="ignore"):
            return np.ldexp(hi, e), np.ldexp(lo, e)
    beta = math.ceil((53 + math.log2(max(p, 1))) / 2)
    bits = 53 - beta
    count = math.ceil(_TARGET_BITS / bits) + 1
    As = _slices(A, -1, beta, count)
    Bs = _slices(B, -2, beta, count)
    hi: F64 | None = None
    lo: F64 | None = None
    for level in range(count):
        for s in range(level + 1):
            t = level - s
            if s >= len(As) or t >= len(Bs):
                continue
            prod = As[s] @ Bs[t]  # exact by construction of the slices
            if hi is None:
                hi = prod
                lo = np.zeros_like(prod)
            else:
                hi, e = two_sum(hi, prod)
                lo = lo + e
    assert hi is not None and lo is not None
    return _renormalise(hi, lo)


def _renormalise(hi: F64, lo: F64) -> tuple[F64, F64]:
    s = hi + lo
    return s, lo - (s - hi)


def matmul_dd_by_f(Ah: F64, Al: F64, B: F64) -> tuple[F64, F64]:
    """``(Ah + Al) @ B`` for a double-double left factor and a float64 right factor."""
    hi, lo = matmul_dd(Ah, B)
    return _renormalise(hi, lo + Al @ B)


def matmul_f_by_dd(A: F64, Bh: F64, Bl: F64) -> tuple[F64, F64]:
    """``A @ (Bh + Bl)`` for a float64 left factor and a double-double right factor."""
    hi, lo = matmul_dd(A, Bh)
    return _renormalise(hi, lo + A @ Bl)


def sub_dd(ah: F64, al: F64, bh: F64, bl: F64) -> tuple[F64, F64]:
    """``(ah + al) - (bh + bl)`` in double-double."""
    s, e = two_sum(ah, -bh)
    return _renormalise(s, e + (al - bl))
