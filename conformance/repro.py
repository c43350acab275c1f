"""Reproductions of failures: the exact inputs as ``.npz`` next to the report, plus a
copy-pasteable Python snippet that re-runs that one check on that one case.

The ``.npz`` holds the case arrays and a JSON ``__meta__`` entry (target, profile, check id,
case label and parameters, seed, mode). :func:`rerun_case` loads it and evaluates the check
again, returning the :class:`~conformance.checks.Measurement` (or raising what the target raises).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .checks import Case, Context, Measurement, all_checks

__all__ = ["write", "load_case", "rerun_case", "snippet"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _profile_ref(profile: Any) -> Any:
    from .profiles import PROFILES_REGISTRY

    if profile.name in PROFILES_REGISTRY and PROFILES_REGISTRY[profile.name] == profile:
        return profile.name
    return profile.to_dict()


def write(out_dir: Path, report: Any, result: Any) -> dict[str, Any]:
    """Save the worst failing case of ``result`` and return {'inputs', 'snippet'}."""
    out_dir = Path(out_dir) / "repro"
    out_dir.mkdir(parents=True, exist_ok=True)
    case: Case = result._case
    path = out_dir / f"{_safe(result.id)}.npz"
    meta = {"target": report.target, "profile": _profile_ref(report.profile), "check": result.id,
            "label": case.label, "params": case.params, "seed": report.seed, "mode": report.mode}
    np.savez(path, __meta__=np.array(json.dumps(meta, default=str)), **case.arrays)
    code = snippet(path)
    (out_dir / f"{_safe(result.id)}.py").write_text(code)
    return {"inputs": str(path), "snippet": code}


def snippet(path: str | Path) -> str:
    """The copy-pasteable re-run snippet for a saved case."""
    return ("import sys\n"
            "from manifold_oracle.conformance.repro import rerun_case\n"
            f"m = rerun_case({str(Path(path).resolve())!r})\n"
            "print(m.figure, m.value, 'bound', m.tolerance.bound, 'passed', m.passed)\n"
            "sys.exit(0 if m.passed else 1)  # non-zero while the defect is present\n")


def load_case(path: str | Path) -> tuple[dict[str, Any], Case]:
    """(metadata, case) from a saved ``.npz``."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k].copy() for k in z.files if k != "__meta__"}
    return meta, Case(meta["label"], arrays, dict(meta["params"]))


def rerun_case(path: str | Path, target: Any = None) -> Measurement:
    """Re-run the saved check on the saved case (``target`` overrides the recorded one)."""
    from .adapters import resolve_target
    from .profiles import Profile, ManifoldDecl

    meta, case = load_case(path)
    prof = meta["profile"]
    if isinstance(prof, dict):
        prof = dict(prof)
        prof["manifolds"] = tuple(ManifoldDecl(**{**m, "shapes": tuple(tuple(s) for s in m["shapes"])})
                                  for m in prof.get("manifolds", ()))
        for k in ("coefficients",):
            if prof.get(k) is not None:
                prof[k] = tuple(tuple(t) for t in prof[k])
        for k in ("param_dtypes", "mutation", "precision_dependencies", "notes", "scale_range"):
            if prof.get(k) is not None:
                prof[k] = tuple(prof[k])
        prof = Profile(**prof)
    adapter = resolve_target(target if target is not None else meta["target"], prof)
    ctx = Context(adapter, adapter.get_profile(), seed=int(meta["seed"]), mode=meta["mode"])
    check = {c.id: c for c in all_checks()}[meta["check"]]
    return check.evaluate(ctx, case)


def main(argv: list[str] | None = None) -> int:
    """``python -m manifold_oracle.conformance.repro CASE.npz``: re-run one saved case; exit 0 if it
    passes now, 1 while it still fails, 2 if it cannot run."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m manifold_oracle.conformance.repro CASE.npz", file=sys.stderr)
        return 2
    try:
        m = rerun_case(args[0])
    except OSError as exc:
        print(f"cannot read {args[0]}: {exc}", file=sys.stderr)
        return 2
    print(m.figure, m.value, "bound", m.tolerance.bound, "passed", m.passed)
    return 0 if m.passed else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
