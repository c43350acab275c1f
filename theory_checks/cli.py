"""``manifold-oracle theory``: run the registered claims, print a table, write JSON/PNGs/Markdown.

    manifold-oracle theory [--claim ID ...] [--quick|--full] [--json PATH] [--plots DIR]
                           [--report PATH] [--seed N] [--list]

Plots go to ``--plots DIR`` (default ``runs/theory/plots``, or ``theory_plots/`` next to ``--report``).

Exit codes: 0 no claim FAILed, was VACUOUS or raised (PASS, INCONCLUSIVE and OBSERVED are fine);
1 a claim FAILed, was VACUOUS (its negative control passed) or raised (ERROR); 2 the command could not run (bad arguments, unknown claim id).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm  # noqa: E402

from manifold_oracle.reference.errors import InvalidInputError

from . import report as rep
from .catalog import claim_ids, get_claim, run_claim
from .registry import Budget
from .schema import validate


#: where the plots go when neither --plots nor --report says otherwise
DEFAULT_PLOTS = Path("runs") / "theory" / "plots"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="manifold-oracle theory",
                                description="Reproduce the theory claims of CLAIMS.md numerically.")
    p.add_argument("--claim", action="append", nargs="+", metavar="ID",
                   help="claim id(s) to run (repeatable); default: all")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="budget", action="store_const", const="quick",
                   help="reduced budget (default; every claim in < 3 min on 2 cores)")
    g.add_argument("--full", dest="budget", action="store_const", const="full",
                   help="the paper-reader reproduction (larger sizes, more steps and seeds)")
    p.add_argument("--json", type=Path, help="write the JSON report (validated against the shipped theory_schema.json)")
    p.add_argument("--plots", type=Path,
                   help=f"directory for one PNG per claim (default {DEFAULT_PLOTS}, or theory_plots/ next to --report)")
    p.add_argument("--report", type=Path, help="write a Markdown report embedding the plots")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--list", action="store_true", help="list the registered claims and exit")
    p.set_defaults(budget="quick")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help → 0, bad arguments → 2
        return 0 if exc.code == 0 else 2
    ids = claim_ids()
    if args.list:
        for cid in ids:
            c = get_claim(cid)
            print(f"{cid:6s} [{c.family}] {c.statement}")
        return 0
    if args.claim:
        wanted = [c for group in args.claim for c in group]
        unknown = [c for c in wanted if c not in ids]
        if unknown:
            print(f"manifold-oracle theory: unknown claim id(s) {unknown}; try --list", file=sys.stderr)
            return 2
        ids = [c for c in ids if c in set(wanted)]
    budget = Budget(args.budget)
    plots_dir = args.plots
    if plots_dir is None and args.report is not None:
        plots_dir = args.report.resolve().parent / "theory_plots"
    if plots_dir is None:
        plots_dir = DEFAULT_PLOTS
    t0, c0 = time.perf_counter(), time.process_time()
    results, plots = [], {}
    bar = tqdm(ids, desc=f"theory ({budget.name})", unit="claim", file=sys.stderr, dynamic_ncols=True)
    for cid in bar:
        bar.set_postfix_str(cid)
        r = run_claim(cid, args.seed, budget)
        results.append(r)
        plots[cid] = rep.save_plot(r, plots_dir)
        if r.figure is not None:  # save_plot closes it; a claim without figure leaves nothing
            plt.close(r.figure)
            r.figure = None
    bar.close()
    runtime = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(rep.format_table(results))
    print(f"\nplots: {plots_dir}")
    counts = rep.summary_counts(results)
    print(f"\n{rep.counts_line(counts)} in {runtime:.1f} s wall, {cpu:.1f} s CPU ({budget.name})")
    for r in results:
        if r.error:
            print(f"\n{r.claim_id} ERROR:\n{r.error}", file=sys.stderr)
    doc = rep.build_json(results, budget.name, args.seed, plots, runtime)
    try:
        validate(doc)
    except InvalidInputError as exc:
        print(f"manifold-oracle theory: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    if args.report is not None:
        cmd = "manifold-oracle theory " + " ".join(sys.argv[1:] if argv is None else argv)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(rep.markdown_report(results, budget.name, args.seed, plots, args.report,
                                                   runtime, cmd.strip()), encoding="utf-8")
    return 0 if counts["FAIL"] + counts["VACUOUS"] + counts["ERROR"] == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
