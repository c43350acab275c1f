"""``manifold-oracle matrix``: every built-in target in ``--full`` mode, one table.

    manifold-oracle matrix [--targets NAME ...] [--seed N] [--md PATH] [--json PATH]
                           [--no-progress] [--skip-repros]

Writes ``docs/conformance_matrix.md`` and its JSON twin ``docs/conformance_matrix.json``: a row
per target (package and version; a target whose package is missing is listed as not available
with the reason), a column per check family (pass/fail counts and the worst margin
bound ÷ measured of that family), then every defect found: one sentence, the standalone
reproduction (``conformance/repros/<target>__<check>.py``: needs only the target's package,
torch and numpy, exits 1 while the defect is present — what goes into an upstream bug report)
and the one-line ``manifold-oracle`` command that re-checks it. Each standalone reproduction of
an installed package is run too: one that still exits non-zero is a defect even where no
harness check covers it yet. The output has no timestamps, so regenerating it on the same
versions gives the same file up to the measured figures.

Exit codes: 0 the matrix was written (defects are content, not an error), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_matrix", "REPRO_DIR", "repro_scripts", "render_markdown"]

#: the standalone reproductions shipped with the package
REPRO_DIR = Path(__file__).resolve().parent / "repros"


@dataclass
class Row:
    """One target of the matrix."""

    target: str
    adapter: str = ""
    package: str = ""
    version: str | None = None
    available: bool = True
    reason: str | None = None
    verdict: str = ""
    families: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0


def repro_scripts(target: str | None = None) -> list[Path]:
    """Standalone reproductions (``<target>__<check>.py``), optionally of one target."""
    out = sorted(REPRO_DIR.glob("*__*.py"))
    return [p for p in out if target is None or p.name.split("__", 1)[0] == target]


def _repro_check(path: Path) -> str:
    return path.stem.split("__", 1)[1]


def _summary_line(path: Path) -> str:
    """First docstring line of a repro script (its one-sentence description)."""
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())


def run_repro(path: Path, timeout: float = 300.0) -> tuple[int, str]:
    """(exit code, last output line) of a standalone reproduction (124 on timeout)."""
    try:
        cp = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout,
                            env=_env())
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    lines = [ln for ln in (cp.stdout or "").splitlines() if ln.strip()]
    err = [ln for ln in (cp.stderr or "").splitlines() if ln.strip()]
    return cp.returncode, (lines[-1] if lines else (err[-1] if err else ""))


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _package_of(adapter: Any) -> tuple[str, str | None]:
    """(distribution name, version) of the package an adapter wraps (its first ``requires``
    module; manifold-oracle itself for adapters of our own code)."""
    mods = list(getattr(adapter, "requires", ()) or ())
    top = mods[0].split(".")[0] if mods else ""
    dists = metadata.packages_distributions().get(top, []) if top else []
    dist = dists[0] if dists else "manifold-oracle"
    try:
        return dist, metadata.version(dist)
    except metadata.PackageNotFoundError:
        return dist, None


def _cell(results: list[Any]) -> dict[str, Any]:
    c = {"pass": 0, "fail": 0, "error": 0, "other": 0, "worst_margin": None}
    worst = math.inf
    for r in results:
        if r.status in ("pass", "fail", "error"):
            c[r.status] += 1
            if r.status == "error":
                worst = 0.0
            elif r.margin is not None:
                worst = min(worst, float(r.margin))
        else:
            c["other"] += 1
    c["worst_margin"] = None if worst is math.inf else worst
    return c


def build_matrix(targets: Sequence[str], *, seed: int = 0, progress: bool = True,
                 run_repros: bool = True) -> dict[str, Any]:
    """Run every target in full mode; return the JSON document of the matrix."""
    from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

    from .adapters import resolve_target
    from .checks import FAMILIES
    from .runner import run

    rows: list[Row] = []
    defects: list[dict[str, Any]] = []
    bar = None
    it: Any = list(targets)
    if progress:
        from tqdm import tqdm

        bar = tqdm(it, desc="matrix", unit="target")
        it = bar
    tmp = Path(tempfile.mkdtemp(prefix="oracle-matrix-"))
    for name in it:
        if bar is not None:
            bar.set_postfix_str(name)
        row = Row(name)
        try:
            adapter = resolve_target(name)
        except (NotAvailableError, InvalidInputError) as exc:
            row.available, row.reason, row.verdict = False, str(exc), "not available"
            rows.append(row)
            continue
        row.adapter = adapter.name
        row.package, row.version = _package_of(adapter)
        t0 = time.perf_counter()
        try:
            report = run(name, mode="full", seed=seed, out_dir=tmp / name, progress=False)
        except (NotAvailableError, InvalidInputError) as exc:
            row.available, row.reason, row.verdict = False, str(exc), "not available"
            rows.append(row)
            continue
        row.duration_s = time.perf_counter() - t0
        row.verdict = "conforms" if report.ok else "does not conform"
        for fam in FAMILIES:
            rs = [r for r in report.results if r.family == fam]
            if rs:
                row.families[fam] = _cell(rs)
        rows.append(row)
        scripts = {_repro_check(p): p for p in repro_scripts(name)}
        for r in report.results:
            if r.status not in ("fail", "error"):
                continue
            d = _defect(name, row, r.id, seed)
            d["sentence"] = (_summary_line(scripts[r.id]) if r.id in scripts else _sentence(r))
            d["figure"] = (f"{r.figure} = {r.measured:.3g} > bound {r.tolerance['bound']:.3g}"
                           if r.figure is not None and r.tolerance and isinstance(r.measured, (int, float))
                           else (r.reason or "").splitlines()[0][:200])
            d["worst_case"] = r.worst_case
            if r.id in scripts:
                d.update(_repro_fields(scripts.pop(r.id), run_repros))
            defects.append(d)
        for check, path in scripts.items():  # reproductions no failing check covers in this run
            d = _defect(name, row, check, seed)
            d.update(_repro_fields(path, run_repros))
            d["sentence"] = _summary_line(path)
            d["figure"] = d.get("repro_output", "")
            d["worst_case"] = None
            d["found_by"] = "standalone reproduction (no failing harness check in this run)"
            if not run_repros or d.get("repro_exit") not in (0,):
                defects.append(d)
    if bar is not None:
        bar.close()
    from .info import collect

    env = collect()
    return {
        "tool": "manifold-oracle matrix",
        "mode": "full",
        "seed": seed,
        "python": env["python"],
        "torch": env["torch"].get("version"),
        "families": list(FAMILIES),
        "targets": [row.__dict__ for row in rows],
        "defects": defects,
    }


def _defect(name: str, row: Row, check: str, seed: int) -> dict[str, Any]:
    return {"target": name, "package": row.package, "version": row.version, "check": check,
            "recheck": f"manifold-oracle conform --target {name} --full --seed {seed} --select {check}",
            "found_by": "harness check", "repro": None}


def _repro_fields(path: Path, run_it: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"repro": f"conformance/repros/{path.name}",
                           "repro_source": path.read_text(encoding="utf-8")}
    if run_it:
        code, line = run_repro(path)
        out["repro_exit"], out["repro_output"] = code, line
    return out


def _sentence(r: Any) -> str:
    """One sentence from the check's statement (its first clause)."""
    first = r.statement.split(". ")[0].split(" (")[0].rstrip(".")
    return f"fails: {first[:200]}."


def _fmt_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "–"
    wm = c.get("worst_margin")
    m = "–" if wm is None else ("0" if wm == 0 else (f"{wm:.2g}" if wm != math.inf else "∞"))
    bad = c["fail"] + c["error"]
    s = f"{c['pass']}✓ {bad}✗" + (f" ({c['error']} err)" if c["error"] else "")
    return f"{s}, m={m}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The Markdown of the matrix document."""
    fams = doc["families"]
    out = ["# Conformance matrix", "",
           "Generated by `manifold-oracle matrix` (every built-in target, `--full` mode, seed "
           f"{doc['seed']}; Python {doc['python']}, torch {doc['torch']}). Regenerate with one command: "
           "`manifold-oracle matrix` (install the extras first: `pip install \"torch==2.13.0\" -e \".[thirdparty,distributed]\"`).",
           "",
           "Cells: `passed✓ failed✗, m=worst margin` (bound ÷ measured over the family's pass/fail checks; "
           "< 1 fails, 0 for an error or a violated yes/no property; – nothing applicable). Graded, "
           "not-applicable and waived checks are not counted; the JSON twin "
           "`docs/conformance_matrix.json` has every figure.", ""]
    out.append("| target | package | version | verdict | " + " | ".join(fams) + " |")
    out.append("|" + "---|" * (4 + len(fams)))
    for r in doc["targets"]:
        if not r["available"]:
            out.append(f"| `{r['target']}` | – | – | not available | " + " | ".join("–" for _ in fams) + " |")
            continue
        cells = " | ".join(_fmt_cell(r["families"].get(f)) for f in fams)
        out.append(f"| `{r['target']}` | {r['package']} | {r['version'] or '?'} | {r['verdict']} | {cells} |")
    na = [r for r in doc["targets"] if not r["available"]]
    if na:
        out += ["", "## Not available here", ""]
        out += [f"- `{r['target']}`: {r['reason']}" for r in na]
    out += ["", "## Defects", "",
            "Per target: the defects with a standalone reproduction first (one sentence, the measured "
            "figure, the script a user pastes into an upstream bug report — it exits 1 while the defect is "
            "present — and the command that re-checks it), then every other failing check, one line each.", ""]
    if not doc["defects"]:
        out.append("None found.")
    by_target: dict[str, list[dict[str, Any]]] = {}
    for d in doc["defects"]:
        by_target.setdefault(d["target"], []).append(d)
    for tgt, ds in by_target.items():
        out += [f"### `{tgt}` ({ds[0]['package']} {ds[0]['version'] or ''})", ""]
        for d in sorted(ds, key=lambda d: d.get("repro") is None):
            if d.get("repro"):
                state = ""
                if "repro_exit" in d:
                    state = f" — exits {d['repro_exit']} here" + (f": `{d['repro_output']}`" if d.get("repro_output") else "")
                out += [f"**`{d['check']}`** — {d['sentence']}", ""]
                if d.get("figure") and d["found_by"] == "harness check":
                    out.append(f"- measured: {d['figure']}" + (f" (worst case: {d['worst_case']})" if d.get("worst_case") else ""))
                if d["found_by"] != "harness check":
                    out.append(f"- found by: {d['found_by']}")
                out.append(f"- re-check: `{d['recheck']}`")
                out.append(f"- standalone reproduction: `{d['repro']}`{state}")
                out += ["", "```python", d["repro_source"].rstrip(), "```", ""]
            else:
                wc = f" (worst case: {d['worst_case']})" if d.get("worst_case") else ""
                out.append(f"- `{d['check']}` — {d['sentence']} Measured: {d.get('figure') or '-'}{wc}. "
                           f"Re-check: `{d['recheck']}`")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from .adapters import BUILTIN_TARGETS

    ap = argparse.ArgumentParser(prog="manifold-oracle matrix", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--targets", nargs="+", default=None, metavar="NAME",
                    help="built-in targets to run (default: all of them)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--md", default="docs/conformance_matrix.md", metavar="PATH")
    ap.add_argument("--json", default=None, metavar="PATH", help="default: the --md path with .json")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--skip-repros", action="store_true", help="do not run the standalone reproductions")
    try:
        ns = ap.parse_args(list(argv if argv is not None else sys.argv[1:]))
    except SystemExit as exc:
        return int(exc.code or 0)
    targets = ns.targets or list(BUILTIN_TARGETS)
    unknown = [t for t in targets if t not in BUILTIN_TARGETS]
    if unknown:
        import difflib

        for t in unknown:
            close = difflib.get_close_matches(t, list(BUILTIN_TARGETS), n=4, cutoff=0.5)
            print(f"manifold-oracle matrix: unknown target {t!r}"
                  + (f"; did you mean {', '.join(close)}?" if close else ""), file=sys.stderr)
        return 2
    doc = build_matrix(targets, seed=ns.seed, progress=not ns.no_progress, run_repros=not ns.skip_repros)
    md = Path(ns.md)
    js = Path(ns.json) if ns.json else md.with_suffix(".json")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(render_markdown(doc), encoding="utf-8")
    js.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    n_ok = sum(1 for r in doc["targets"] if r["verdict"] == "conforms")
    n_na = sum(1 for r in doc["targets"] if not r["available"])
    print(f"matrix: {len(doc['targets'])} targets ({n_ok} conform, {n_na} not available), "
          f"{len(doc['defects'])} defects → {md}, {js}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
