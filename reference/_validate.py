"""Input validation shared by the reference (private).

All public reference functions accept array-likes, convert them to float64 *without* writing
into the caller's memory, and raise :class:`~reference.errors.InvalidInputError` on malformed
input. Empty batches are allowed; a matrix with a zero-length side is not.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InvalidInputError

F64 = NDArray[np.float64]


def as_float64(x: ArrayLike, name: str = "input") -> F64:
    """Return ``x`` as a float64 ndarray (a new array if a cast or copy is needed).

    Complex, object and string inputs are rejected. The result may share memory with ``x``
    when ``x`` is already float64; callers must never write into it.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - numpy's own message is kept
            raise InvalidInputError(f"{name}: cannot convert to an array ({exc})") from exc
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name}: complex input is not supported (dtype {arr.dtype})")
    if arr.dtype.kind not in "fiub":
        raise InvalidInputError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    return arr


def check_finite(arr: F64, name: str = "input") -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidInputError(f"{name}: {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or Inf)")


def as_matrix(x: ArrayLike, name: str = "X", *, batched: bool = True) -> F64:
    """Validate a (batch of) real finite matrices of shape ``(..., m, n)`` with m, n >= 1."""
    arr = as_float64(x, name)
    if arr.ndim < 2:
        raise InvalidInputError(f"{name}: expected a matrix of shape (..., m, n), got shape {arr.shape}")
    if not batched and arr.ndim != 2:
        raise InvalidInputError(f"{name}: expected a 2-D matrix, got shape {arr.shape}")
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise InvalidInputError(f"{name}: empty matrix of shape {arr.shape} (m and n must be >= 1)")
    check_finite(arr, name)
    return arr


def as_vector(x: ArrayLike, name: str = "x") -> F64:
    """Validate a (batch of) real finite vectors of shape ``(..., n)`` with n >= 1."""
    arr = as_float64(x, name)
    if arr.ndim < 1:
        raise InvalidInputError(f"{name}: expected a vector of shape (..., n), got a scalar")
    if arr.shape[-1] == 0:
        raise InvalidInputError(f"{name}: empty vector")
    check_finite(arr, name)
    return arr


def same_shape(a: F64, b: F64, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise InvalidInputError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")


def positive_scalar(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{name} must be a real number, got {value!r}") from exc
    if not np.isfinite(v) or v <= 0:
        raise InvalidInputError(f"{name} must be finite and > 0, got {value!r}")
    return v


def nonnegative_scalar(value: float, name: str) -> float:
    """``value`` as a float, refusing NaN, ±Inf, negative values and non-numbers (InvalidInputError)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{name} must be a real number, got {value!r}") from exc
    if not np.isfinite(v) or v < 0:
        raise InvalidInputError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def count(value: int, name: str, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``; refuses floats with a fraction, bools, NaN and strings."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, (float, np.floating)) and not (np.isfinite(value) and value == int(value)):
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def flag(value: object, name: str) -> bool:
    """A boolean option (bool or numpy bool); anything else raises InvalidInputError."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def shape_tuple(shape: object, name: str = "shape", min_ndim: int = 0) -> tuple[int, ...]:
    """A shape as a tuple of ints ≥ 0 with at least ``min_ndim`` axes (InvalidInputError otherwise)."""
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InvalidInputError(f"{name} must be a sequence of non-negative integers, got {shape!r}") from exc
    out = tuple(count(d, f"{name} entry", 0) for d in dims)
    if len(out) < min_ndim:
        raise InvalidInputError(f"{name} needs at least {min_ndim} axes, got {shape!r}")
    if math.prod(out) > MAX_ELEMENTS:
        raise InvalidInputError(f"{name} {out} has more than {MAX_ELEMENTS:.0e} elements")
    return out


#: largest array (in elements) a shape argument may ask for (2³¹ float64 values = 16 GiB)
MAX_ELEMENTS = 2**31


def choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"{name} must be one of {allowed}, got {value!r}")
    return value
