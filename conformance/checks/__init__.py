"""Check registry and the records a check produces.

A :class:`Check` has an id (``family.topic.name``), a statement, the capabilities it needs, a
case generator and an evaluator. ``evaluate(ctx, case)`` returns a :class:`Measurement` (the
measured figure, its tolerance with provenance, pass/fail). The runner evaluates every case and
keeps the worst one (smallest margin) as the check's result; for a failure, that case's inputs
are saved for the reproduction.

Families (one module each): ``spec`` (the target computes what its profile declares),
``quality`` (graded distance to the exact answer; never fails), ``geometry``, ``optimizer``,
``safety``, ``training``, ``distributed`` (FSDP2 on several gloo ranks).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..tolerances import Tolerance

__all__ = ["Case", "Measurement", "Check", "Context", "REGISTRY", "register", "all_checks",
           "NotApplicable", "Declared", "FAMILIES"]

FAMILIES: tuple[str, ...] = ("spec", "quality", "geometry", "optimizer", "safety", "training", "distributed")


class NotApplicable(Exception):
    """Raised by a check's ``applies``/``cases`` when the profile or adapter makes it moot."""


class Declared(Exception):
    """Raised by an evaluator when a failure is documented by the profile (reported as xfail)."""


@dataclass
class Case:
    """One input of a check: arrays (saved to .npz for repro) and JSON-able parameters."""

    label: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measurement:
    """The result of one case: figure, value, tolerance, verdict and extra figures."""

    figure: str
    value: float
    tolerance: Tolerance
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    grade: str | None = None

    @property
    def margin(self) -> float:
        """bound / measured (∞ when measured is 0; < 1 on failure)."""
        if not np.isfinite(self.value):
            return 0.0
        if self.value == 0:
            return float("inf")
        return float(self.tolerance.bound / abs(self.value))


@dataclass
class Context:
    """What a check sees: the adapter, its profile, the seed and mode, and a scratch dict."""

    adapter: Any
    profile: Any
    seed: int = 0
    mode: str = "quick"
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.mode == "full"

    def rng(self, salt: str) -> np.random.Generator:
        """A generator determined by (seed, salt): independent of check order."""
        h = np.frombuffer(salt.encode(), dtype=np.uint8).astype(np.uint64)
        mix = int((h * np.arange(1, h.size + 1, dtype=np.uint64)).sum() % np.uint64(2**31))
        return np.random.default_rng([int(self.seed), mix])


@dataclass
class Check:
    """One registered check."""

    id: str
    family: str
    statement: str
    requires: frozenset[str]
    cases: Callable[[Context], Iterable[Case]]
    evaluate: Callable[[Context, Case], Measurement]
    applies: Callable[[Context], str | None] = lambda ctx: None
    quick: bool = True
    graded: bool = False
    catches: tuple[str, ...] = ()


REGISTRY: dict[str, Check] = {}


def register(id: str, family: str, statement: str, *, requires: Iterable[str],
             cases: Callable[[Context], Iterable[Case]], applies: Callable[[Context], str | None] | None = None,
             quick: bool = True, graded: bool = False, catches: tuple[str, ...] = ()) -> Callable:
    """Decorator registering ``evaluate(ctx, case) -> Measurement`` as check ``id``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def deco(fn: Callable[[Context, Case], Measurement]) -> Callable[[Context, Case], Measurement]:
        if id in REGISTRY:
            raise ValueError(f"check {id!r} registered twice")
        REGISTRY[id] = Check(id, family, statement, frozenset(requires), cases, fn,
                             applies or (lambda ctx: None), quick, graded, catches)
        return fn

    return deco


_LOADED = False


def all_checks() -> list[Check]:
    """Every registered check, in family order then registration order."""
    global _LOADED
    if not _LOADED:
        for fam in FAMILIES:
            importlib.import_module(f"{__name__}.{fam}")
        _LOADED = True
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(REGISTRY.values(), key=lambda c: order[c.family])
