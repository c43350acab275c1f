"""Power-of-two scaling for finite input at any magnitude (private).

Every float64 routine of the reference that forms sums of squares, products or double-double
splittings first scales each matrix by an exact power of two 2⁻ᵉ chosen from max|xᵢⱼ|
(``max|x|·2⁻ᵉ ∈ [½, 1)``), computes, and undoes the scaling exactly. Multiplying by a power of
two is exact unless the result leaves the normal range, so on ordinary input the results are
bit-for-bit those of the unscaled computation, and on input near the top of the float64 range
(entries ~1e308) or in the subnormal range (down to 2⁻¹⁰⁷⁴ ≈ 4.9e-324) nothing overflows or
underflows in an intermediate. A *result* that is not representable (e.g. ‖X‖_F > 1.8e308)
raises :class:`InvalidInputError` instead of returning inf.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidInputError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = ["pow2_exponent", "pow2_scale", "pow2_unscale", "fro"]


def pow2_exponent(x: F64, axes: tuple[int, ...] = (-2, -1)) -> I64:
    """e with max|x| over ``axes`` in [2^(e−1), 2^e) (e = 0 for an all-zero block); shape of the
    remaining axes."""
    mx = np.max(np.abs(x), axis=axes) if x.size else np.zeros(np.delete(x.shape, axes))
    return np.frexp(mx)[1].astype(np.int64)


def pow2_scale(x: F64, axes: tuple[int, ...] = (-2, -1)) -> tuple[F64, I64]:
    """(x·2⁻ᵉ, e) per block over ``axes`` (a new array; ``x`` is not written)."""
    e = pow2_exponent(x, axes)
    return np.ldexp(x, -np.expand_dims(e, axes)), e


def pow2_unscale(v: Any, e: Any, what: str) -> F64:
    """v·2ᵉ, raising :class:`InvalidInputError` when the exact value exceeds the float64 range."""
    with np.errstate(over="ignore"):
        out = np.ldexp(v, e)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(f"{what} overflows float64 (its exact value exceeds "
                                f"{np.finfo(np.float64).max:.4e})")
    return out


def fro(x: F64, what: str | None = "the Frobenius norm") -> F64:
    """‖x‖_F over the last two axes without overflow or underflow in the sum (no validation).

    A norm above the float64 range raises (naming ``what``), or is +inf when ``what`` is None."""
    xs, e = pow2_scale(x)
    v = np.sqrt(np.sum(xs * xs, axis=(-2, -1)))
    if what is None:
        with np.errstate(over="ignore"):
            return np.ldexp(v, e)
    return pow2_unscale(v, e, what)
