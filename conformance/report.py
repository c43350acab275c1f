"""Outputs of a run: console table, JSON report (versioned schema ``conformance/schemas/report_schema.json``,
shipped as package data; :func:`report_schema` loads it) and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

from .runner import Report

__all__ = ["console_table", "write_json", "write_junit", "fmt", "report_schema"]

_MARK = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "xfail": "XFAIL", "xpass": "XPASS",
         "graded": "GRADE", "not_applicable": "N/A", "waived": "WAIVED"}


def report_schema() -> dict[str, Any]:
    """The JSON report schema (package data ``manifold_oracle/conformance/schemas/report_schema.json``)."""
    text = (files("manifold_oracle.conformance") / "schemas" / "report_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


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
        if r.status in ("not_applicable", "xfail", "xpass", "error", "waived") and r.reason:
            extra = r.reason.splitlines()[0][:110]
        if r.grade:
            extra = f"grade {r.grade}; {extra}"
        bound = r.tolerance.get("bound") if r.tolerance else None
        stream.write(f"{_MARK[r.status]:6s}  {r.id:{w}s}  {fmt(r.measured):>9s}  {fmt(bound):>9s}  "
                     f"{fmt(r.margin):>8s}  {extra}\n")
    c = report.counts
    na = c.get("not_applicable", 0)
    parts = [f"{c.get(k, 0)} {k}" for k in ("pass", "fail", "error", "waived", "xfail", "xpass", "graded") if c.get(k)]
    stream.write(f"{', '.join(parts) or 'nothing run'}; {na} not applicable"
                 f"{' (shown with -v)' if na and not verbose else ''}; {report.duration_s:.1f} s\n")
    reduced = [r for r in report.results if r.status == "pass" and (r.details or {}).get("reduced_power")]
    if reduced:
        why = sorted({r.details["reduced_power"] for r in reduced})
        stream.write(f"reduced power ({len(reduced)} passing step checks judged with a loose model: "
                     f"{', '.join(r.id for r in reduced)}): {' | '.join(why)}\n")
    for r in report.results:
        if r.status in ("fail", "error"):
            stream.write("\n" + failure_text(r, indent="  ") + "\n")
    if report.waivers:
        stream.write("\nwaivers (user's waiver file; a waived failure is not a pass):\n")
        for w in report.waivers:
            state = (f"waived {', '.join(w['waived'])}" if w["waived"] else
                     ("not needed: passed" if w["matched"] else "not run in this selection"))
            stream.write(f"  {w['check']}: {w['reason']} [{state}]\n")
    if any(r.grade for r in report.results):
        stream.write(f"\n{grade_legend()}\n")
    stream.write(verdict_line(report) + "\n")


def grade_legend() -> str:
    """What the quality grades mean (quality checks grade a figure, they never fail)."""
    from .checks.quality import GRADES

    bands = ", ".join(f"{g} ≤ {b:g}" for b, g in GRADES)
    return (f"grades of the quality checks (the check's figure, e.g. ‖O − msign G‖₂; graded, never a "
            f"failure): {bands}, E above")


def verdict_line(report: Report) -> str:
    """The one closing line: CONFORMS / DOES NOT CONFORM with the counts that decide it."""
    c = report.counts
    bad = c.get("fail", 0) + c.get("error", 0)
    if bad:
        ids = ", ".join(r.id for r in report.results if r.status in ("fail", "error"))
        return (f"VERDICT: {report.adapter} DOES NOT CONFORM to profile {report.profile.name} "
                f"({c.get('fail', 0)} failed, {c.get('error', 0)} errored: {ids})")
    if not report.checked:
        return (f"VERDICT: nothing was checked for {report.adapter} (no applicable check passed or "
                "failed; see -v for the not-applicable reasons; exit code 2)")
    extra = "".join(f", {c[k]} {k}" for k in ("waived", "xfail") if c.get(k))
    return (f"VERDICT: {report.adapter} CONFORMS to profile {report.profile.name} "
            f"({c.get('pass', 0)} passed{extra})")


def _case_key(label: str) -> tuple[str, str, str]:
    """(shape class, dtype, condition) parsed from a case label ("-" where the label has none).

    Shapes are classed square / tall / wide (a single m×n would split every hypothesis example
    into its own group); the condition is κ=…, cond…, rank-deficient, clustered, … as labelled,
    or the scale ‖G‖_F = … of the scale checks (their cases differ by nothing else)."""
    import re

    m = re.search(r"\((\d+),\s*(\d+)\)|(\d+)[×x](\d+)", label)
    if m:
        a, b = (int(m.group(1)), int(m.group(2))) if m.group(1) else (int(m.group(3)), int(m.group(4)))
        shape = "square" if a == b else ("tall" if a > b else "wide")
    else:
        shape = "-"
    dtype = re.search(r"bfloat16|float16|float32|float64|bf16|fp16|fp32|fp64", label)
    kappa = re.search(r"κ\s*=\s*[0-9.e+\-]+|cond\s*[0-9.e+\-]+|rank[- ]deficient|ill-conditioned|"
                      r"well-conditioned|clustered|repeated|zero|‖G‖_F\s*=\s*\S+", label)
    return (shape, dtype.group(0) if dtype else "-", kappa.group(0) if kappa else "-")


def failing_case_groups(r: Any) -> list[dict[str, Any]]:
    """The cases of a result grouped by (shape class, dtype, condition): groups with a failing
    case only, worst group first (smallest bound/measured margin), with failing/total counts
    and the shapes that fail."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in r.cases:
        key = _case_key(str(c.get("case", "")))
        g = groups.setdefault(key, {"shape": key[0], "dtype": key[1], "condition": key[2], "n": 0, "total": 0,
                                    "worst_margin": float("inf"), "worst_case": None, "labels": []})
        g["total"] += 1
        if c.get("passed", True):
            continue
        try:
            m, b = float(c.get("measured")), float(c.get("bound"))
            margin = 0.0 if m != m else (float("inf") if m == 0 else b / abs(m))
        except (TypeError, ValueError):
            margin = 0.0
        g["n"] += 1
        g["labels"].append(str(c.get("case")))
        if margin < g["worst_margin"]:
            g["worst_margin"], g["worst_case"] = margin, c.get("case")
    return sorted((g for g in groups.values() if g["n"]), key=lambda g: g["worst_margin"])


def failure_text(r: Any, indent: str = "") -> str:
    """The explanation of one failing/erroring result: figure, bound, failing cases grouped by
    shape, dtype and condition number (worst first) and the re-run snippet."""
    lines = [f"{_MARK[r.status]} {r.id}: {r.statement}"]
    if r.figure is not None:
        tol = r.tolerance or {}
        lines.append(f"{indent}{r.figure} = {fmt(r.measured)} > bound {fmt(tol.get('bound'))} "
                     f"[{tol.get('formula', '')}; {tol.get('provenance', '')}]")
    if r.reason:
        lines.append(f"{indent}{r.reason.splitlines()[0]}")
    details = r.details or {}
    for key in ("raised", "hint"):  # what the target raised (a boolean check's failure), and a check's hint
        if details.get(key):
            lines.append(f"{indent}{key}: {str(details[key]).splitlines()[0][:300]}")
    lines.append(f"{indent}worst case: {r.worst_case}")
    groups = failing_case_groups(r)
    if groups:
        n_fail = sum(g["n"] for g in groups)
        lines.append(f"{indent}{n_fail} of {len(r.cases)} cases fail; by shape (square/tall/wide) / dtype / condition, worst first:")
        for g in groups[:12]:
            lines.append(f"{indent}  {g['shape']:>6s} {g['dtype']:>8s} {g['condition']:>16s}: {g['n']} of "
                         f"{g['total']} fail, worst margin {fmt(g['worst_margin'])} ({g['worst_case']})")
        if len(groups) > 12:
            lines.append(f"{indent}  ... {len(groups) - 12} more groups in the JSON report")
    if r.repro:
        lines.append(f"{indent}inputs: {r.repro['inputs']}")
        lines.append(f"{indent}re-run (exits 1 while the check fails):")
        lines += [f"{indent}  {line}" for line in r.repro["snippet"].splitlines()]
    return "\n".join(lines)


def write_json(report: Report, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")


def write_junit(report: Report, path: str | Path) -> None:
    """JUnit XML: one testcase per check (N/A and xfail as skipped with their reason)."""
    c = report.counts
    suite = ET.Element("testsuite", {
        "name": f"manifold-oracle conform {report.target}",
        "tests": str(len(report.results)),
        "failures": str(c.get("fail", 0)),
        "errors": str(c.get("error", 0)),
        "skipped": str(c.get("not_applicable", 0) + c.get("xfail", 0) + c.get("waived", 0)),
        "time": f"{report.duration_s:.3f}",
        "timestamp": report.started,
    })
    props = ET.SubElement(suite, "properties")
    for k, v in (("target", report.target), ("profile", report.profile.name), ("mode", report.mode),
                 ("seed", str(report.seed))):
        ET.SubElement(props, "property", {"name": k, "value": v})
    for w in report.waivers:
        ET.SubElement(props, "property", {"name": f"waiver:{w['check']}",
                                          "value": f"{w['reason']} (waived: {', '.join(w['waived']) or 'none'})"})
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
        elif r.status == "waived":  # the reason reads "waived: <the waiver's reason> (was …)"
            ET.SubElement(tc, "skipped", {"message": r.reason or "waived"})
        elif r.status in ("not_applicable", "xfail"):
            ET.SubElement(tc, "skipped", {"message": f"{r.status}: {r.reason}"})
        else:
            out = ET.SubElement(tc, "system-out")
            out.text = text + (f"\ngrade: {r.grade}" if r.grade else "")
    for el in suite.iter():  # a target's message may hold characters XML 1.0 cannot carry (ANSI escapes)
        el.text = _xml_safe(el.text)
        for k, v in el.attrib.items():
            el.set(k, _xml_safe(v))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _xml_safe(text: str | None) -> str | None:
    """``text`` with the characters XML 1.0 forbids (C0 controls but tab/newline/CR, lone
    surrogates, U+FFFE/U+FFFF) written as ``\\xNN``/``\\uNNNN`` escapes."""
    import re

    if text is None:
        return None
    return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]",
                  lambda m: m.group(0).encode("unicode_escape", "backslashreplace").decode("ascii"), text)
