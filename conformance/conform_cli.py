"""``manifold-oracle conform``: check an implementation against the reference.

    manifold-oracle conform [--target module:attr] [--profile NAME] [--quick|--full]
                            [--select ID ...] [--deselect ID ...] [--seed N]
                            [--json PATH] [--junit PATH] [--waive FILE] [-v]

Exit codes: 0 every check passed (waived/xfail/graded/not-applicable allowed, at least one judged), 1 a
check failed or the target raised during a check, 2 the harness could not run or checked nothing (a
target not importable or raising at import or construction, bad arguments, a selection leaving no
check or only not-applicable ones, missing dependency).
``--select``/``--deselect`` accumulate: several ids after one flag, or the flag repeated.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .adapters import BUILTIN_TARGETS
from .selection import seed_arg

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="manifold-oracle conform", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="gpu_impl",
                   help="module:attribute of an adapter, or a built-in name: "
                        f"{', '.join(sorted(BUILTIN_TARGETS))} (`manifold-oracle profiles` lists the "
                        "profiles); default gpu_impl")
    p.add_argument("--profile", default=None, help="override the adapter's declared profile (`manifold-oracle "
                   "profiles` lists them; a name "
                   "of conformance.profiles)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small case set (default; < 60 s on 2 cores)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="every case")
    p.set_defaults(mode="quick")
    p.add_argument("--select", nargs="+", action="extend", default=[], metavar="ID",
                   help="check ids or patterns to run (several after one flag, or the flag repeated)")
    p.add_argument("--deselect", nargs="+", action="extend", default=[], metavar="ID",
                   help="check ids or patterns to skip (several after one flag, or the flag repeated)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of every generated case (an integer ≥ 0; default 0)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the JSON report here")
    p.add_argument("--junit", default=None, metavar="PATH", help="write JUnit XML here")
    p.add_argument("--waive", "--xfail-file", dest="waive", default=None, metavar="FILE",
                   help="waiver file: lines 'check-id reason' (reason mandatory; unknown ids are an "
                        "error); a waived failure is reported WAIVED with its reason, exit 0. "
                        "--xfail-file is the former name of the same option")
    p.add_argument("--repro-dir", default=None, metavar="DIR",
                   help="where failing inputs go (default: next to --json, else ./conform-repro)")
    p.add_argument("--list", action="store_true", help="list every check and exit (--target, --profile, --waive "
                   "are still validated)")
    p.add_argument("-v", "--verbose", action="store_true", help="also show not-applicable checks")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load_target(spec: str, profile: str | None) -> tuple[object | None, str | None]:
    """(adapter, None), or (None, why) when ``spec`` cannot be loaded: not importable, a bad
    profile, or a target raising at import or construction (a bad target, never a check result)."""
    from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

    from .adapters import resolve_target

    try:
        return resolve_target(spec, profile), None
    except NotAvailableError as exc:
        return None, f"not available: {exc}"
    except InvalidInputError as exc:
        return None, f"unusable: {exc}"
    except Exception as exc:  # noqa: BLE001 - the user's module or adapter raised while loading
        return None, f"raised while being imported or constructed: {type(exc).__name__}: {exc}"


def unwritable(path: str, is_dir: bool = False) -> str | None:
    """Why ``path`` (a file, or a directory if ``is_dir``) cannot be written, None if it can.
    Nothing is created: the nearest existing ancestor must be a writable directory."""
    p = Path(path)
    if p.exists():
        if p.is_dir() != is_dir:
            return "it is a directory" if p.is_dir() else "it is not a directory"
        return None if os.access(p, os.W_OK) else "permission denied"
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"directory {str(parent)!r} is not writable"


def _bad_target(spec: str, why: str) -> int:
    """Print why ``--target`` cannot be used (with a sys.path hint for a module in the current
    directory, which a console script does not import from) and return exit code 2."""
    top = spec.split(":", 1)[0].split(".")[0]
    if "is not importable" in why and (Path(top + ".py").exists() or Path(top).is_dir()):
        why += (f" ({top!r} is in the current directory, which the `manifold-oracle` command does not "
                "import from: install your package, or run with PYTHONPATH=.)")
    print(f"manifold-oracle conform: target {spec!r} {why}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

    parser = build_parser()
    try:
        ns = parser.parse_args(list(argv if argv is not None else sys.argv[1:]))
    except SystemExit as exc:  # argparse: --help exits 0, bad arguments exit 2
        return int(exc.code or 0)
    from .checks import all_checks
    from . import report as rep
    from .runner import read_waiver_file, run, select_checks

    try:
        waivers = read_waiver_file(ns.waive) if ns.waive else None
    except (OSError, InvalidInputError) as exc:
        print(f"manifold-oracle conform: bad --waive file: {exc}", file=sys.stderr)
        return 2
    for opt, path, is_dir in (("--json", ns.json, False), ("--junit", ns.junit, False),
                              ("--repro-dir", ns.repro_dir, True)):
        why = unwritable(path, is_dir) if path else None
        if why:  # checked before the run, not after it
            print(f"manifold-oracle conform: cannot write {opt} {path!r}: {why}", file=sys.stderr)
            return 2
    if ns.list:  # the listing is independent of the target, but a bad --target/--profile is still an error
        why = load_target(ns.target, ns.profile)[1]
        if why:
            return _bad_target(ns.target, why)
        for c in all_checks():
            print(f"{c.id:45s} [{', '.join(sorted(c.requires))}] {c.statement}")
        return 0
    from .selection import validate_selection

    ids = [c.id for c in all_checks()]
    try:
        validate_selection(ns.select, ids, "--select")
        validate_selection(ns.deselect, ids, "--deselect")
    except InvalidInputError as exc:
        print(f"manifold-oracle conform: {exc}", file=sys.stderr)
        return 2
    if not select_checks(all_checks(), ns.select, ns.deselect, ns.mode):
        print("manifold-oracle conform: --select/--deselect leave no check to run (nothing would be "
              "checked; `manifold-oracle conform --list` lists the ids)", file=sys.stderr)
        return 2
    why = load_target(ns.target, ns.profile)[1]
    if why:  # before the run: a target raising at import or construction is a bad target (exit 2)
        return _bad_target(ns.target, why)
    out_dir = Path(ns.repro_dir) if ns.repro_dir else (Path(ns.json).parent if ns.json else Path("conform-repro"))
    try:
        report = run(ns.target, ns.profile, mode=ns.mode, select=ns.select, deselect=ns.deselect,
                     seed=ns.seed, waivers=waivers, out_dir=out_dir, progress=not ns.no_progress)
    except NotAvailableError as exc:
        print(f"manifold-oracle conform: target {ns.target!r} not available: {exc}", file=sys.stderr)
        return 2
    except InvalidInputError as exc:
        print(f"manifold-oracle conform: cannot run: {exc}", file=sys.stderr)
        return 2
    rep.console_table(report, sys.stdout, verbose=ns.verbose)
    if ns.json:
        rep.write_json(report, ns.json)
        print(f"JSON report: {ns.json}")
    if ns.junit:
        rep.write_junit(report, ns.junit)
        print(f"JUnit XML: {ns.junit}")
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
