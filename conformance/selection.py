"""Validation of check selections (``--select``/``--deselect``, ``--oracle-select``): a pattern
that matches no registered check id or family is an error naming the closest ones, never a
silent "nothing run"."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
from typing import Iterable, Sequence

from manifold_oracle.reference.errors import InvalidInputError

__all__ = ["validate_selection", "known_names", "seed_arg"]


def known_names(check_ids: Sequence[str]) -> list[str]:
    """Every selectable name: check ids, families and every dotted prefix of an id."""
    names: set[str] = set()
    for cid in check_ids:
        parts = cid.split(".")
        for k in range(1, len(parts) + 1):
            names.add(".".join(parts[:k]))
    return sorted(names)


def _matches(pattern: str, check_ids: Sequence[str]) -> bool:
    pat = pattern.rstrip(".")
    return any(fnmatch.fnmatch(c, pattern) or c == pat or c.startswith(pat + ".") for c in check_ids)


def validate_selection(patterns: Iterable[str], check_ids: Sequence[str], option: str = "--select") -> None:
    """Raise :class:`InvalidInputError` for a pattern matching no check (closest names listed)."""
    names = known_names(check_ids)
    for pat in patterns:
        if _matches(pat, check_ids):
            continue
        close = difflib.get_close_matches(pat, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        families = sorted({c.split(".")[0] for c in check_ids})
        raise InvalidInputError(f"{option} {pat!r} matches no check id or family{hint} (families: "
                                f"{', '.join(families)}; `manifold-oracle conform --list` lists the ids)")


def seed_arg(text: str) -> int:
    """argparse type of ``--seed``/``--oracle-seed``: an integer ≥ 0 (numpy seeds are non-negative)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: an integer ≥ 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: an integer ≥ 0")
    return value
