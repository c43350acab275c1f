"""The console entry point ``manifold-oracle``: info / conform / theory / train / bench.

Each subcommand lives in its own package and is imported lazily, so ``manifold-oracle info``
does not import torch and a broken optional part cannot break the others. A subcommand module
exposes ``main(argv: list[str]) -> int``. Exit codes: 0 success, 1 a check failed, 2 the command
could not run (bad arguments, missing dependency).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: subcommand -> (module, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("manifold_oracle.conformance.info", "versions of every dependency, precision settings, devices"),
    "conform": ("manifold_oracle.conformance.conform_cli", "check an implementation against the reference"),
    "profiles": ("manifold_oracle.conformance.profiles_cli", "list the convention profiles, show one, and every field's allowed values"),
    "matrix": ("manifold_oracle.conformance.matrix", "run every installed target in --full mode: docs/conformance_matrix.md + JSON"),
    "theory": ("manifold_oracle.theory_checks.cli", "reproduce the theory claims numerically"),
    "train": ("manifold_oracle.gpu_impl.train_cli", "train the small transformer with a chosen optimizer"),
    "bench": ("manifold_oracle.bench.cli", "benchmarks (exact solvers, gpu_impl), tables into docs/"),
}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("manifold-oracle")
    except Exception:  # not installed as a distribution (running from a source tree)
        from manifold_oracle.reference import __version__

        return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="manifold-oracle",
        description="Numerical reference and conformance harness for manifold-constrained optimizers.",
    )
    parser.add_argument("--version", action="version", version=f"manifold-oracle {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not args:
        parser.print_help()
        return 2
    if args[0] not in COMMANDS:
        parser.parse_args(args)  # prints usage / --version / --help and exits
        return 2
    module_name = COMMANDS[args[0]][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"manifold-oracle {args[0]}: not available ({exc})", file=sys.stderr)
        return 2
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
