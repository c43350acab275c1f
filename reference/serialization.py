"""The one JSON encoding of results (conformance reports, theory reports).

JSON has no NaN or Infinity, and ``json.dumps`` would otherwise write the non-standard tokens
``NaN``/``Infinity``. The project's convention, used by every report it writes:

* a finite float is a JSON number (Python's shortest round-trip repr, so float64 values survive);
* a non-finite float (NaN, +∞, −∞) is ``null`` — the one value both report schemas allow for
  every numeric field (the conformance schema's ``number_or_special``, the theory schema's
  ``["number", "null"]``). ``null`` therefore reads "no finite value"; where the kind of
  non-finite value matters, the record says it in words (a check's ``reason``/``worst_case``, a
  claim's ``error``), and :func:`encode_float` is the single place to change if a schema ever
  admits more;
* numpy scalars and arrays become numbers and (nested) lists, tuples become lists, mapping keys
  become strings, anything else its ``str``.

The golden corpus keeps its own exact encoding (``float.hex``,
:func:`reference.golden.encode_value`), which only holds finite values. :class:`JsonRecord` is the shared base of result records: a dataclass whose ``to_dict``
applies this encoding to every public field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

from .errors import InvalidInputError

__all__ = ["encode_float", "decode_float", "to_jsonable", "record_dict", "dumps", "JsonRecord"]


def encode_float(x: Any) -> float | None:
    """A float as a JSON value: the number if finite, else ``None`` (JSON ``null``); a string or
    anything else that is not a real number raises :class:`InvalidInputError`."""
    if isinstance(x, (str, bytes)):
        raise InvalidInputError(f"not a number: {x!r}")
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"not a real number: {x!r}") from exc
    return v if math.isfinite(v) else None


def decode_float(v: Any) -> float:
    """A JSON number of a report as a float: ``null`` (no finite value) reads as NaN."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidInputError(f"not an encoded float: {v!r}")
    return float(v)


def to_jsonable(obj: Any) -> Any:
    """``obj`` with the project's JSON encoding applied recursively (see the module docstring)."""
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return encode_float(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return record_dict(obj)
    return str(obj)


def record_dict(obj: Any) -> dict[str, Any]:
    """The public fields (names not starting with ``_``) of a dataclass instance, encoded."""
    return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if not f.name.startswith("_")}


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` (``allow_nan=False``: a stray NaN is an error)."""
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(to_jsonable(obj), allow_nan=False, **kwargs)


class JsonRecord:
    """Mixin for result dataclasses: ``to_dict()`` encodes every public field (see above)."""

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)
