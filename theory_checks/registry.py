"""Registry of numerically checked theory claims (CLAIMS.md ids).

A claim is a :class:`Claim` (id, statement, source, ``run(seed, budget) -> ClaimResult``).
Its result carries the measured quantity, the expected value or law, the tolerance with its
justification (CLAIMS.md §0.2 tolerance model), the verdict and a matplotlib figure.

Negative controls. Where CLAIMS.md lists one, the *same* check function is applied to the
control configuration and must FAIL there (``ControlResult.check_passed is False``); otherwise
the claim's verdict is ``"VACUOUS"``. Verdicts: ``PASS`` (check passes, control — if any —
fails), ``FAIL`` (check fails), ``VACUOUS`` (check passes but so does its control), ``ERROR``
(the run raised), ``INCONCLUSIVE`` (the budget cannot decide: e.g. the quick budget of an experiment
whose decision needs the full one; never flips to the opposite verdict of the other budget) and
``OBSERVED`` (a measured value reported without a verdict, where no threshold can be derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.serialization import encode_float, to_jsonable

BudgetName = Literal["quick", "full"]
Verdict = Literal["PASS", "FAIL", "VACUOUS", "ERROR", "INCONCLUSIVE", "OBSERVED"]
Decision = Literal["verdict", "inconclusive", "observation"]
#: every verdict, in report order; the first four decide the exit code
VERDICTS: tuple[str, ...] = ("PASS", "FAIL", "VACUOUS", "ERROR", "INCONCLUSIVE", "OBSERVED")

__all__ = [
    "Budget",
    "VERDICTS",
    "ControlResult",
    "ClaimResult",
    "Claim",
    "REGISTRY",
    "register",
]


@dataclass(frozen=True)
class Budget:
    """Run size: ``quick`` (CI, every claim in well under 3 min on 2 cores) or ``full``."""

    name: BudgetName = "quick"

    def __post_init__(self) -> None:
        if self.name not in ("quick", "full"):
            raise InvalidInputError(f"budget must be 'quick' or 'full', got {self.name!r}")

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` under the quick budget, ``full`` otherwise."""
        return quick if self.quick else full


@dataclass
class ControlResult:
    """The negative control: the same check applied where it must fail."""

    description: str
    measured: float
    check_passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "measured": _num(self.measured),
                "check_passed": bool(self.check_passed), "details": to_jsonable(self.details)}


@dataclass
class ClaimResult:
    """Outcome of one claim run.

    ``measured``/``expected`` are scalars (``expected`` may be ``None`` when the law is a bound
    stated in ``expected_text``); ``tolerance`` is the numeric bound used by the check and
    ``tolerance_note`` its justification. ``details`` holds further scalar figures.
    """

    claim_id: str
    measured: float
    measured_label: str
    expected: float | None
    expected_text: str
    tolerance: float
    tolerance_note: str
    passed: bool
    control: ControlResult | None = None
    details: dict[str, Any] = field(default_factory=dict)
    figure: Any = None  # matplotlib.figure.Figure (not serialised)
    statement: str = ""
    source: str = ""
    seed: int = 0
    budget: str = "quick"
    runtime_s: float = 0.0
    error: str | None = None
    decision: Decision = "verdict"  # "inconclusive" / "observation": no PASS/FAIL is claimed

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return "ERROR"
        if self.decision == "observation":
            return "OBSERVED"
        if self.decision == "inconclusive":
            return "INCONCLUSIVE"
        if not self.passed:
            return "FAIL"
        if self.control is not None and self.control.check_passed:
            return "VACUOUS"
        return "PASS"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.claim_id,
            "statement": self.statement,
            "source": self.source,
            "measured": _num(self.measured),
            "measured_label": self.measured_label,
            "expected": None if self.expected is None else _num(self.expected),
            "expected_text": self.expected_text,
            "tolerance": _num(self.tolerance),
            "tolerance_note": self.tolerance_note,
            "passed": bool(self.passed),
            "verdict": self.verdict,
            "control": None if self.control is None else self.control.to_json(),
            "details": to_jsonable(self.details),
            "seed": int(self.seed),
            "budget": self.budget,
            "runtime_s": float(self.runtime_s),
            "error": self.error,
        }


RunFn = Callable[[int, Budget], ClaimResult]


@dataclass(frozen=True)
class Claim:
    """One registered claim: CLAIMS.md id, statement, source, family and its ``run``."""

    id: str
    statement: str
    source: str
    family: str
    run: RunFn
    has_control: bool = True
    needs: tuple[str, ...] = ()  # optional modules the claim imports (reported when missing)


REGISTRY: dict[str, Claim] = {}


def register(id: str, statement: str, source: str, family: str, *, has_control: bool = True,
             needs: tuple[str, ...] = ()) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``run(seed, budget) -> ClaimResult`` under a CLAIMS.md id."""

    def deco(fn: RunFn) -> RunFn:
        if id in REGISTRY:
            raise InvalidInputError(f"claim {id!r} registered twice")
        REGISTRY[id] = Claim(id, statement, source, family, fn, has_control, needs)
        return fn

    return deco


def _num(x: Any) -> float | str | None:
    """A JSON number in the one encoding of ``reference.serialization`` (a non-finite float is
    ``None``); ``None`` for a missing or non-numeric value too."""
    try:
        return encode_float(x)
    except (TypeError, ValueError):
        return None
