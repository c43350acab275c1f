"""The catalogue of registered claims: listing, lookup and running (CLAIMS.md ids).

Importing this module imports every claim family (:mod:`theory_checks.claims`), which registers
its claims with :func:`theory_checks.registry.register`; the claim modules import only the
registry, so the registry never imports them back.
"""

from __future__ import annotations

import time
import traceback

from manifold_oracle.reference.errors import InvalidInputError

from . import claims  # noqa: F401  (importing registers every family)
from .registry import REGISTRY, Budget, Claim, ClaimResult

__all__ = ["claim_ids", "get_claim", "run_claim"]


def claim_ids() -> list[str]:
    """All registered ids in CLAIMS.md order (family, then number)."""
    return sorted(REGISTRY, key=_sort_key)


def _sort_key(cid: str) -> tuple[int, str, int, str]:
    order = "PGLMVARSIXT"
    head, _, tail = cid.partition("-")
    num = "".join(ch for ch in tail if ch.isdigit())
    return (order.find(head[0]) if head and head[0] in order else 99, head,
            int(num) if num else 0, tail)


def get_claim(cid: str) -> Claim:
    if cid not in REGISTRY:
        raise InvalidInputError(f"unknown claim {cid!r}; known: {', '.join(claim_ids())}")
    return REGISTRY[cid]


def run_claim(cid: str, seed: int = 0, budget: Budget | str = "quick", *,
              catch: bool = True) -> ClaimResult:
    """Run one claim, filling statement/source/seed/budget/runtime; errors become ``ERROR``."""
    claim = get_claim(cid)
    b = budget if isinstance(budget, Budget) else Budget(budget)
    t0 = time.perf_counter()
    try:
        res = claim.run(seed, b)
    except Exception as exc:  # reported as an ERROR verdict, with the traceback
        if not catch:
            raise
        res = ClaimResult(cid, float("nan"), "", None, "", float("nan"), "", False,
                          error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")
    res.claim_id = cid
    res.statement = claim.statement
    res.source = claim.source
    res.seed = seed
    res.budget = b.name
    res.runtime_s = time.perf_counter() - t0
    return res
