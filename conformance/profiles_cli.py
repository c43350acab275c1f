"""``manifold-oracle profiles``: the built-in convention profiles.

    manifold-oracle profiles              list every profile (name, rule, orthogonaliser, description)
    manifold-oracle profiles NAME ...     show every field of the named profiles
    manifold-oracle profiles --fields     every Profile field with its allowed values and default
    manifold-oracle profiles NAME --json  the profile as JSON (what reports embed)

Exit codes: 0 success, 2 unknown profile name (the closest names are listed).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import MISSING, fields
from typing import Sequence

__all__ = ["main"]


def _orth(p: object) -> str:
    sched = getattr(p, "schedule")
    if sched is None:
        return "-"
    if sched == "exact":
        return "exact (SVD)"
    return f"{sched}×{getattr(p, 'steps')} {getattr(p, 'compute_dtype')}"


def main(argv: Sequence[str] | None = None) -> int:
    from .profiles import FIELD_CHOICES, PROFILES, Profile

    ap = argparse.ArgumentParser(prog="manifold-oracle profiles", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("names", nargs="*", metavar="NAME", help="profiles to show in full")
    ap.add_argument("--fields", action="store_true", help="every field with its allowed values")
    ap.add_argument("--json", action="store_true", help="print the named profiles as JSON")
    try:
        ns = ap.parse_args(list(argv if argv is not None else sys.argv[1:]))
    except SystemExit as exc:
        return int(exc.code or 0)
    if ns.fields:
        print("Profile fields (enumerated fields list their allowed values; others their type):")
        for f in fields(Profile):
            allowed = FIELD_CHOICES.get(f.name)
            default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
            kind = " | ".join(map(str, allowed)) if allowed else str(f.type)
            print(f"  {f.name:24s} {kind}" + ("   (required)" if default is MISSING else f"   (default {default!r})"))
        return 0
    unknown = [n for n in ns.names if n not in PROFILES]
    if unknown:
        for n in unknown:
            close = difflib.get_close_matches(n, list(PROFILES), n=5, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            print(f"manifold-oracle profiles: unknown profile {n!r}{hint}", file=sys.stderr)
        return 2
    if ns.names:
        docs = [PROFILES[n].to_dict() for n in ns.names]
        if ns.json:
            print(json.dumps(docs if len(docs) > 1 else docs[0], indent=2, default=str, ensure_ascii=False))
            return 0
        for d in docs:
            print(f"profile {d['name']}")
            for k, v in d.items():
                if k == "name":
                    continue
                allowed = FIELD_CHOICES.get(k)
                print(f"  {k:24s} {v!r}" + (f"   [{' | '.join(map(str, allowed))}]" if allowed else ""))
            print()
        return 0
    w = max(len(n) for n in PROFILES)
    print(f"{'profile':{w}s}  {'rule':6s}  {'orthogonaliser':28s}  description")
    for n in sorted(PROFILES):
        p = PROFILES[n]
        print(f"{n:{w}s}  {p.rule:6s}  {_orth(p):28s}  {p.description}")
    print(f"\n{len(PROFILES)} profiles; `manifold-oracle profiles NAME` shows one, `--fields` every field's "
          "allowed values")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
