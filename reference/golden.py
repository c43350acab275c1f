"""The golden corpus: float64 inputs and 50-digit expected outputs of the reference operations.

The corpus is a versioned JSON file shipped in ``reference/data/`` together with a
``.sha256`` checksum file (``sha256sum`` format). It is regenerated deterministically by
``python -m manifold_oracle.reference.data.make_golden`` (expected values from :mod:`manifold_oracle.reference.precise` at
50 digits, the float64 inputs taken as exact). Tests and the conformance harness read it with
:func:`load_golden`, which verifies the checksum first.

Schema (``schema_version`` 1)::

    {"schema": "manifold-oracle/golden", "schema_version": 1, "dps": 50, "mpmath_version": ...,
     "seed": <base seed>, "float_encoding": "float.hex", "created_by": "...",
     "cases": [{"id", "op", "params", "inputs", "expected", "meta"}, ...]}

* arrays are ``{"dtype": "float64", "shape": [...], "hex": [float.hex of each entry, C order]}``
  (exact round trip); integers ``{"dtype": "int64", "shape": [], "data": [r]}``;
* ``expected`` values are the 50-digit results rounded correctly to float64;
* ``params`` hold plain JSON values (numbers written by Python's shortest round-trip repr);
  a manifold is ``{"class": "SpectralSphere", "kwargs": {...}}`` (see :func:`manifold_from_spec`);
* ``meta`` records how the case was made: dps, mpmath version, the case's generator seed and
  the construction parameters (condition number, rank, scale, tags).

Operations (``op`` → inputs → expected):

=========================  ==================  ================================================
op                         inputs              expected (params)
=========================  ==================  ================================================
msign                      X                   out (rank_tol / rank_rtol optional)
polar_factor               X                   out (full-rank X only: unique)
mclip                      X                   out (tau)
norms                      X                   frobenius_norm, spectral_norm, nuclear_norm,
                                               singular_values, stable_rank, numerical_rank
polynomial_map             x                   out (schedule, steps)
ns_singular_value_map      sigma               out (schedule, steps, extension)
ns_apply                   X                   out (schedule, steps, extension)
schedule_band              —                   out = [lo, hi] (schedule, lower, steps, extension)
project_tangent            W, G                out (manifold)
retract                    W, A                out (manifold, method)
tangent_violation          W, A                out (manifold)
=========================  ==================  ================================================

:func:`run_float64` evaluates a case with the float64 reference, :func:`run_precise` with
:mod:`manifold_oracle.reference.precise` (this is how the expected values are made).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from . import linalg, precise, schedules
from ._validate import flag
from .errors import InvalidInputError, OracleError
from .kinds import get_kind, kind_params
from .manifolds import Manifold

__all__ = [
    "GOLDEN_SCHEMA",
    "GOLDEN_SCHEMA_VERSION",
    "GOLDEN_FILENAME",
    "GoldenChecksumError",
    "GoldenCase",
    "GoldenCorpus",
    "golden_path",
    "load_golden",
    "sha256_of",
    "encode_value",
    "decode_value",
    "manifold_from_spec",
    "manifold_spec",
    "schedule_from_params",
    "run_float64",
    "run_precise",
    "OPS",
]

GOLDEN_SCHEMA = "manifold-oracle/golden"
GOLDEN_SCHEMA_VERSION = 1
GOLDEN_FILENAME = "golden_v1.json"

F64 = NDArray[np.float64]


class GoldenChecksumError(OracleError):
    """The corpus file does not match its ``.sha256`` checksum (corrupted or edited by hand)."""


@dataclass(frozen=True)
class GoldenCase:
    """One case: ``inputs``/``expected`` map names to float64 arrays, floats or ints."""

    id: str
    op: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Any]
    expected: Mapping[str, Any]
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class GoldenCorpus:
    """The loaded corpus: header fields (``header``) and the list of cases."""

    header: Mapping[str, Any]
    cases: tuple[GoldenCase, ...] = field(default_factory=tuple)

    def by_id(self, case_id: str) -> GoldenCase:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise InvalidInputError(f"no golden case with id {case_id!r}")

    def ops(self) -> dict[str, int]:
        """Case count per operation."""
        out: dict[str, int] = {}
        for c in self.cases:
            out[c.op] = out.get(c.op, 0) + 1
        return out


def golden_path() -> Path:
    """Path of the shipped corpus file (``reference/data/golden_v1.json``)."""
    return Path(__file__).resolve().parent / "data" / GOLDEN_FILENAME


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# value encoding
# ---------------------------------------------------------------------------------------------
def encode_value(x: Any) -> dict[str, Any]:
    """Encode a float64 array / float / int exactly (floats as ``float.hex``)."""
    if isinstance(x, (bool, np.bool_)):
        raise InvalidInputError("booleans are not golden values")
    if isinstance(x, (int, np.integer)):
        return {"dtype": "int64", "shape": [], "data": [int(x)]}
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("golden values must be finite")
    return {"dtype": "float64", "shape": list(arr.shape), "hex": [float(v).hex() for v in arr.ravel()]}


def decode_value(d: Mapping[str, Any]) -> Any:
    """Inverse of :func:`encode_value` (0-d values become Python float/int); a malformed record
    raises :class:`InvalidInputError`."""
    try:
        shape = tuple(int(s) for s in d["shape"])
        if d["dtype"] == "int64":
            vals = np.array(d["data"], dtype=np.int64).reshape(shape)
            return int(vals) if shape == () else vals
        if d["dtype"] != "float64":
            raise InvalidInputError(f"unknown golden dtype {d['dtype']!r}")
        vals = np.array([float.fromhex(h) for h in d["hex"]], dtype=np.float64).reshape(shape)
    except InvalidInputError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"malformed golden value {d!r} ({type(exc).__name__}: {exc})") from exc
    return float(vals) if shape == () else vals


# ---------------------------------------------------------------------------------------------
# manifolds as JSON
# ---------------------------------------------------------------------------------------------
def manifold_from_spec(spec: Mapping[str, Any]) -> Manifold:
    """Instantiate ``{"class": name, "kwargs": {...}}`` (a list ``radius`` becomes an array).

    ``name`` is the class name, an alias of the kind table (:mod:`reference.kinds`)."""
    try:
        name = spec["class"]
        kwargs = dict(spec.get("kwargs", {}))
    except (KeyError, TypeError, AttributeError):
        raise InvalidInputError(f"unknown manifold spec {spec!r}") from None
    if isinstance(kwargs.get("radius"), list):
        kwargs["radius"] = np.array(kwargs["radius"], dtype=np.float64)
    axis = kwargs.pop("axis", None) if name == "Oblique" else None
    try:
        kind = get_kind(name, axis)
    except InvalidInputError:
        raise InvalidInputError(f"unknown manifold spec {spec!r}") from None
    if kind.cls.__name__ != name:
        raise InvalidInputError(f"unknown manifold spec {spec!r}: 'class' must be a class name")
    return kind.build(**kwargs)


def manifold_spec(manifold: Manifold) -> dict[str, Any]:
    """The JSON spec of a reference manifold (inverse of :func:`manifold_from_spec`)."""
    kw = kind_params(manifold)  # raises InvalidInputError for an unregistered class or subclass
    return {"class": type(manifold).__name__, "kwargs": kw}


# ---------------------------------------------------------------------------------------------
# evaluating a case
# ---------------------------------------------------------------------------------------------
def schedule_from_params(params: Mapping[str, Any]) -> schedules.Schedule:
    """The named schedule of a case with its ``steps``/``extension``/… overrides applied."""
    sch = schedules.get_schedule(params["schedule"])
    changes = {k: params[k] for k in ("steps", "extension", "safety", "eps", "eps_form") if k in params}
    return sch.with_options(**changes) if changes else sch


def _rank_kw(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in ("rank_tol", "rank_rtol") if k in params}


def _f64_ops() -> dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]]:
    def norms(p: Mapping[str, Any], i: Mapping[str, Any]) -> dict[str, Any]:
        X = i["X"]
        return {"frobenius_norm": linalg.frobenius_norm(X), "spectral_norm": linalg.spectral_norm(X),
                "nuclear_norm": linalg.nuclear_norm(X), "singular_values": linalg.singular_values(X),
                "stable_rank": linalg.stable_rank(X),
                "numerical_rank": linalg.numerical_rank(X, **_rank_kw(p))}

    def band(p: Mapping[str, Any], i: Mapping[str, Any]) -> dict[str, Any]:
        lo, hi = schedules.schedule_band(schedule_from_params(p), p["lower"])
        return {"out": np.array([lo, hi])}

    return {
        "msign": lambda p, i: {"out": linalg.msign(i["X"], **_rank_kw(p))},
        "polar_factor": lambda p, i: {"out": linalg.polar_factor(i["X"])},
        "mclip": lambda p, i: {"out": linalg.mclip(i["X"], p["tau"])},
        "norms": norms,
        "polynomial_map": lambda p, i: {"out": schedules.polynomial_map(schedule_from_params(p), i["x"])},
        "ns_singular_value_map": lambda p, i: {"out": schedules.ns_singular_value_map(schedule_from_params(p), i["sigma"])},
        "ns_apply": lambda p, i: {"out": schedules.ns_apply(schedule_from_params(p), i["X"])},
        "schedule_band": band,
        "project_tangent": lambda p, i: {
            "out": manifold_from_spec(p["manifold"]).project_tangent(i["W"], i["G"])},
        "retract": lambda p, i: {
            "out": manifold_from_spec(p["manifold"]).retract(i["W"], i["A"], p["method"])},
        "tangent_violation": lambda p, i: {
            "out": manifold_from_spec(p["manifold"]).tangent_violation(i["W"], i["A"])},
    }


def _precise_ops(dps: int) -> dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]]:
    P = precise

    def norms(p: Mapping[str, Any], i: Mapping[str, Any]) -> dict[str, Any]:
        X = i["X"]
        return {"frobenius_norm": P.frobenius_norm(X, dps=dps), "spectral_norm": P.spectral_norm(X, dps=dps),
                "nuclear_norm": P.nuclear_norm(X, dps=dps), "singular_values": P.singular_values(X, dps=dps),
                "stable_rank": P.stable_rank(X, dps=dps),
                "numerical_rank": P.numerical_rank(X, dps=dps, **_rank_kw(p))}

    def band(p: Mapping[str, Any], i: Mapping[str, Any]) -> dict[str, Any]:
        lo, hi = P.schedule_band(schedule_from_params(p), p["lower"], dps=dps)
        return {"out": [lo, hi]}

    return {
        "msign": lambda p, i: {"out": P.msign(i["X"], dps=dps, **_rank_kw(p))},
        "polar_factor": lambda p, i: {"out": P.polar_factor(i["X"], dps=dps)},
        "mclip": lambda p, i: {"out": P.mclip(i["X"], p["tau"], dps=dps)},
        "norms": norms,
        "polynomial_map": lambda p, i: {"out": P.polynomial_map(schedule_from_params(p), list(i["x"]), dps=dps)},
        "ns_singular_value_map": lambda p, i: {"out": P.ns_singular_value_map(schedule_from_params(p), i["sigma"], dps=dps)},
        "ns_apply": lambda p, i: {"out": P.ns_apply(schedule_from_params(p), i["X"], dps=dps)},
        "schedule_band": band,
        "project_tangent": lambda p, i: {
            "out": P.project_tangent(manifold_from_spec(p["manifold"]), i["W"], i["G"], dps=dps)},
        "retract": lambda p, i: {
            "out": P.retract(manifold_from_spec(p["manifold"]), i["W"], i["A"], p["method"], dps=dps)},
        "tangent_violation": lambda p, i: {
            "out": P.tangent_violation(manifold_from_spec(p["manifold"]), i["W"], i["A"], dps=dps)},
    }


#: the operations a golden case may name
OPS: tuple[str, ...] = tuple(_f64_ops())


def run_float64(case: GoldenCase) -> dict[str, Any]:
    """Evaluate ``case`` with the float64 reference; same keys as ``case.expected``."""
    ops = _f64_ops()
    if case.op not in ops:
        raise InvalidInputError(f"unknown golden op {case.op!r}")
    return ops[case.op](case.params, case.inputs)


def run_precise(case: GoldenCase | Mapping[str, Any], dps: int = precise.DEFAULT_DPS) -> dict[str, Any]:
    """Evaluate a case (or ``{"op", "params", "inputs"}``) with :mod:`manifold_oracle.reference.precise`.

    Returns mpmath values (matrices, lists of mpf, mpf, int) keyed like ``expected``.
    """
    op = case.op if isinstance(case, GoldenCase) else case["op"]
    params = case.params if isinstance(case, GoldenCase) else case["params"]
    inputs = case.inputs if isinstance(case, GoldenCase) else case["inputs"]
    ops = _precise_ops(dps)
    if op not in ops:
        raise InvalidInputError(f"unknown golden op {op!r}")
    return ops[op](params, inputs)


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def _read_checksum(path: Path) -> str:
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise GoldenChecksumError(f"checksum file {sidecar} is missing")
    text = sidecar.read_text(encoding="ascii").split()
    if not text or len(text[0]) != 64:
        raise GoldenChecksumError(f"checksum file {sidecar} is malformed")
    return text[0].lower()


def load_golden(path: str | Path | None = None, *, verify: bool = True) -> GoldenCorpus:
    """Load the corpus (default: the shipped file) after verifying its SHA-256 checksum.

    Raises :class:`GoldenChecksumError` if the file does not match ``<file>.sha256`` (or the
    checksum file is missing) and :class:`InvalidInputError` for an unknown schema version.
    """
    if path is not None and not isinstance(path, (str, Path)):
        raise InvalidInputError(f"path must be a str or Path, got {type(path).__name__}")
    verify = flag(verify, "verify")
    p = golden_path() if path is None else Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the golden corpus {p}: {exc}") from exc
    if verify:
        want = _read_checksum(p)
        got = hashlib.sha256(raw).hexdigest()
        if got != want:
            raise GoldenChecksumError(f"{p.name}: SHA-256 {got} does not match the recorded {want}")
    doc = json.loads(raw.decode("utf-8"))
    if doc.get("schema") != GOLDEN_SCHEMA or doc.get("schema_version") != GOLDEN_SCHEMA_VERSION:
        raise InvalidInputError(
            f"{p.name}: unsupported schema {doc.get('schema')!r} v{doc.get('schema_version')!r} "
            f"(this reader knows {GOLDEN_SCHEMA!r} v{GOLDEN_SCHEMA_VERSION})")
    cases = tuple(
        GoldenCase(
            id=c["id"], op=c["op"], params=c["params"],
            inputs={k: decode_value(v) for k, v in c["inputs"].items()},
            expected={k: decode_value(v) for k, v in c["expected"].items()},
            meta=c["meta"],
        )
        for c in doc["cases"]
    )
    header = {k: v for k, v in doc.items() if k != "cases"}
    return GoldenCorpus(header=header, cases=cases)
