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

__all__ = ["write", "discard", "load_case", "rerun_case", "snippet"]


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
    root = _import_root(report.target)
    if root:
        meta["import_root"] = root
    np.savez(path, __meta__=np.array(json.dumps(meta, default=str)), **case.arrays)
    code = snippet(path, root)
    (out_dir / f"{_safe(result.id)}.py").write_text(code, encoding="utf-8")
    return {"inputs": str(path), "snippet": code}


def discard(out_dir: Path, check_id: str) -> None:
    """Remove the reproduction of ``check_id`` that an earlier run left in ``out_dir``/repro (the
    check ran again and did not fail: a stale ``.npz`` would show a failure that is gone). Files of
    checks this run did not run are left alone."""
    for suffix in (".npz", ".py"):
        (Path(out_dir) / "repro" / f"{_safe(check_id)}{suffix}").unlink(missing_ok=True)


def _import_root(target: Any) -> str | None:
    """The sys.path entry the target's module was imported from, when it is a user's module
    found through the working directory or PYTHONPATH (None for installed packages and built-in
    targets): the snippet adds it, so it re-runs from any directory and environment."""
    import sys
    import sysconfig

    if not isinstance(target, str) or ":" not in target or target.startswith("manifold_oracle."):
        return None
    mod_name = target.split(":", 1)[0]
    file = getattr(sys.modules.get(mod_name), "__file__", None)
    if not file:
        return None
    file_path = Path(file).resolve()
    depth = mod_name.count(".") + (1 if file_path.name == "__init__.py" else 0)
    root = file_path.parents[depth]
    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib", "stdlib")}
    return None if root in installed else str(root)


def snippet(path: str | Path, import_root: str | None = None) -> str:
    """The copy-pasteable re-run snippet for a saved case (``import_root``: a directory the
    target's module needs on sys.path)."""
    path_line = f"sys.path.insert(0, {import_root!r})  # where the target's module was imported from\n"
    return ("import sys\n" + (path_line if import_root else "") +
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


def _recorded_profile(prof: Any) -> Any:
    """The profile saved in a case's metadata: a registered name, or every field as a dict."""
    from .profiles import ManifoldDecl, Profile

    if not isinstance(prof, dict):
        return prof
    prof = dict(prof)
    prof["manifolds"] = tuple(ManifoldDecl(**{**m, "shapes": tuple(tuple(s) for s in m["shapes"])})
                              for m in prof.get("manifolds", ()))
    for k in ("coefficients",):
        if prof.get(k) is not None:
            prof[k] = tuple(tuple(t) for t in prof[k])
    for k in ("param_dtypes", "mutation", "precision_dependencies", "notes", "scale_range"):
        if prof.get(k) is not None:
            prof[k] = tuple(prof[k])
    return Profile(**prof)


def rerun_case(path: str | Path, target: Any = None, profile: Any = None) -> Measurement:
    """Re-run the saved check on the saved case.

    Without ``target``: the recorded target under the recorded profile. With ``target`` (an
    adapter, its class or ``module:attr``, e.g. the fixed version): that adapter under its own
    declared profile, so a fix of the declaration is seen too; ``profile`` overrides either (a
    name, a :class:`~conformance.profiles.Profile`, or ``"recorded"`` for the saved one)."""
    from .adapters import resolve_target

    meta, case = load_case(path)
    if profile == "recorded" or (profile is None and target is None):
        profile = _recorded_profile(meta["profile"])
    adapter = resolve_target(target if target is not None else meta["target"], profile)
    ctx = Context(adapter, adapter.get_profile(), seed=int(meta["seed"]), mode=meta["mode"])
    check = {c.id: c for c in all_checks()}[meta["check"]]
    return check.evaluate(ctx, case)


def main(argv: list[str] | None = None) -> int:
    """``python -m manifold_oracle.conformance.repro CASE.npz``: re-run one saved case; exit 0 if it
    passes now, 1 while it still fails, 2 if it cannot run."""
    import sys

    from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m manifold_oracle.conformance.repro CASE.npz", file=sys.stderr)
        return 2
    try:
        root = load_case(args[0])[0].get("import_root")
        if root and root not in sys.path:
            sys.path.insert(0, root)  # where the target's module was imported from (as the snippet)
        m = rerun_case(args[0])
    except OSError as exc:
        print(f"cannot read {args[0]}: {exc}", file=sys.stderr)
        return 2
    except (NotAvailableError, InvalidInputError) as exc:  # the recorded target cannot be loaded
        print(f"cannot re-run {args[0]}: {exc}", file=sys.stderr)
        return 2
    print(m.figure, m.value, "bound", m.tolerance.bound, "passed", m.passed)
    return 0 if m.passed else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
