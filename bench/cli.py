"""``manifold-oracle bench {exact,gpu}``: benchmark scripts that write Markdown tables to docs/."""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from manifold_oracle.reference.errors import OracleError

BENCHES = {
    "exact": ("manifold_oracle.bench.exact", "exact steepest-descent solvers: time and accuracy per manifold × method × size"),
    "reference": ("manifold_oracle.bench.reference_figures", "float64 reference optimizers: invariants over 1,000 steps, stationarity rates"),
    "gpu": ("manifold_oracle.bench.gpu", "gpu_impl: msign vs matmul bound, MACRO step vs torch.optim.Muon, training throughput"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv or [])
    if not args or args[0] in ("-h", "--help") or args[0] not in BENCHES:
        print("usage: manifold-oracle bench {%s} [options]" % ",".join(BENCHES))
        for k, (_, h) in BENCHES.items():
            print(f"  {k:6s} {h}")
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        module = importlib.import_module(BENCHES[args[0]][0])
    except ModuleNotFoundError as exc:
        print(f"manifold-oracle bench {args[0]}: not available ({exc})", file=sys.stderr)
        return 2
    try:
        return int(module.main(args[1:]) or 0)
    except OracleError as exc:  # e.g. no docs/ to write to outside a source checkout
        print(f"manifold-oracle bench {args[0]}: {exc}", file=sys.stderr)
        return 2
