"""Outputs of a run: console table, JSON report (versioned schema ``docs/report_schema.json``)
and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TextIO

from .runner import Report

__all__ = ["console_table", "write_json", "write_junit", "fmt"]

_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "xfail": "XFAIL", "xpass": "XPASS",
         "graded": "GRADE", "not_applicable": "N/A"}


def fmt(x: Any) -> str:
    """Compact number formatting for the table."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.2e}"


def console_table(report: Report, stream: TextIO, verbose: bool = False) -> None:
    """Print one line per check, then the summary (and the repro path of each failure)."""
    w = max([len(r.id) for r in report.results] + [10])
    stream.write(f"manifold-oracle conform: target {report.target} (adapter {report.adapter}), "
                 f"profile {report.profile.name}, mode {report.mode}, seed {report.seed}\n")
    stream.write(f"{'status':6s}  {'check':{w}s}  {'measured':>9s}  {'bound':>9s}  {'margin':>8s}  worst case / reason\n")
    for r in report.results:
        if r.status == "not_applicable" and not verbose:
            continue
        extra = r.worst_case or ""
        if r.status in ("not_applicable", "xfail", "xpass", "error") and r.reason:
            extra = r.reason.splitlines()[0][:110]
        if r.grade:
            extra = f"grade {r.grade}; {extra}"
        bound = r.tolerance.get("bound") if r.tolerance else None
        stream.write(f"{_MARK[r.status]:6s}  {r.id:{w}s}  {fmt(r.measured):>9s}  {fmt(bound):>9s}  "
                     f"{fmt(r.margin):>8s}  {extra}\n")
    c = report.counts
    na = c.get("not_applicable", 0)
    parts = [f"{c.get(k, 0)} {k}" for k in ("pass", "fail", "error", "xfail", "xpass", "graded") if c.get(k)]
    stream.write(f"{', '.join(parts) or 'nothing run'}; {na} not applicable"
                 f"{' (shown with -v)' if na and not verbose else ''}; {report.duration_s:.1f} s\n")
    for r in report.results:
        if r.status in ("fail", "error"):
            stream.write(f"\n{_MARK[r.status]} {r.id}: {r.statement}\n")
            if r.figure is not None:
                tol = r.tolerance or {}
                stream.write(f"  {r.figure} = {fmt(r.measured)} > bound {fmt(tol.get('bound'))} "
                             f"[{tol.get('formula', '')}; {tol.get('provenance', '')}]\n")
            if r.reason:
                stream.write(f"  {r.reason.splitlines()[0]}\n")
            stream.write(f"  case: {r.worst_case}\n")
            if r.repro:
                stream.write(f"  inputs: {r.repro['inputs']}\n  re-run:\n")
                for line in r.repro["snippet"].splitlines():
                    stream.write(f"    {line}\n")
    if report.xfail_unmatched:
        stream.write(f"xfail entries matching no check: {', '.join(report.xfail_unmatched)}\n")


def write_json(report: Report, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))


def write_junit(report: Report, path: str | Path) -> None:
    """JUnit XML: one testcase per check (N/A and xfail as skipped with their reason)."""
    c = report.counts
    suite = ET.Element("testsuite", {
        "name": f"manifold-oracle conform {report.target}",
        "tests": str(len(report.results)),
        "failures": str(c.get("fail", 0)),
        "errors": str(c.get("error", 0)),
        "skipped": str(c.get("not_applicable", 0) + c.get("xfail", 0)),
        "time": f"{report.duration_s:.3f}",
        "timestamp": report.started,
    })
    props = ET.SubElement(suite, "properties")
    for k, v in (("target", report.target), ("profile", report.profile.name), ("mode", report.mode),
                 ("seed", str(report.seed))):
        ET.SubElement(props, "property", {"name": k, "value": v})
    for r in report.results:
        tc = ET.SubElement(suite, "testcase", {"classname": f"conform.{r.family}", "name": r.id,
                                               "time": f"{r.duration_s:.3f}"})
        tol = r.tolerance or {}
        text = (f"{r.statement}\nfigure: {r.figure} = {fmt(r.measured)}; bound {fmt(tol.get('bound'))}"
                f" ({tol.get('formula', '')}; {tol.get('provenance', '')}); worst case: {r.worst_case}")
        if r.repro:
            text += f"\ninputs: {r.repro['inputs']}\nre-run:\n{r.repro['snippet']}"
        if r.status == "fail":
            el = ET.SubElement(tc, "failure", {"message": f"{r.figure} = {fmt(r.measured)} > {fmt(tol.get('bound'))}"})
            el.text = text
        elif r.status == "error":
            el = ET.SubElement(tc, "error", {"message": (r.reason or "")[:200]})
            el.text = text + "\n" + str(r.details.get("traceback", ""))
        elif r.status in ("not_applicable", "xfail"):
            ET.SubElement(tc, "skipped", {"message": f"{r.status}: {r.reason}"})
        else:
            out = ET.SubElement(tc, "system-out")
            out.text = text + (f"\ngrade: {r.grade}" if r.grade else "")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
