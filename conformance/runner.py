"""Run checks against an adapter and collect :class:`CheckResult` records into a :class:`Report`.

One check = one result: every case is evaluated, the worst case (smallest margin bound/measured,
failures first) is kept with its figures; a failing or erroring case gets a reproduction
(``conformance.repro``). Statuses: ``pass``, ``fail``, ``error`` (the target raised), ``xfail``
(a failure documented by the profile), ``waived`` (a failure of a check the user waived with a
reason: ``--waive FILE``; never a pass, listed in every report), ``graded`` (quality checks, never a failure) and ``not_applicable`` (with the
reason: capability not declared, profile makes it moot).
"""

from __future__ import annotations

import fnmatch
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.serialization import JsonRecord, to_jsonable

from .adapters import Adapter, resolve_target
from .checks import Case, Check, Context, Declared, Measurement, NotApplicable, all_checks
from .profiles import Profile

__all__ = ["CheckResult", "Report", "run", "run_check", "select_checks", "read_xfail_file", "read_waiver_file",
           "resolve", "target_name", "SCHEMA_VERSION", "precision_state"]

#: version of the JSON report schema (conformance/schemas/report_schema.json)
SCHEMA_VERSION = "1.2.0"

FAILING = ("fail", "error")


@dataclass
class CheckResult(JsonRecord):
    """The outcome of one check (serialised into the JSON report by ``JsonRecord.to_dict``: the
    one encoding of ``reference.serialization``: a non-finite float is ``null``)."""

    id: str
    family: str
    statement: str
    status: str
    figure: str | None = None
    measured: float | None = None
    tolerance: dict[str, Any] | None = None
    margin: float | None = None
    #: bound ÷ measured of the worst case when the check passes: how tight the bound is on this
    #: (correct) implementation; ∞ for exact (bit-equality) checks; None unless status is pass
    tightness: float | None = None
    grade: str | None = None
    n_cases: int = 0
    worst_case: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    repro: dict[str, Any] | None = None
    duration_s: float = 0.0
    catches: list[str] = field(default_factory=list)
    # not serialised (a private field): the worst case itself, for the repro writer
    _case: Case | None = field(default=None, repr=False)


@dataclass
class Report:
    """A whole run: target, profile, environment and every check result."""

    target: str
    adapter: str
    profile: Profile
    mode: str
    seed: int
    results: list[CheckResult]
    environment: dict[str, Any]
    started: str
    duration_s: float
    xfail_unmatched: list[str] = field(default_factory=list)
    #: every waiver of the run: {"check": id or pattern, "reason", "waived": ids whose failure it
    #: waived, "matched": ids it matched in this run}
    waivers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c

    @property
    def ok(self) -> bool:
        return not any(r.status in FAILING for r in self.results)

    @property
    def checked(self) -> bool:
        """A check was judged: it passed, failed, erred, or failed under a waiver/xfail (quality
        grades judge nothing; a run whose every selected check is not applicable or graded
        checked nothing)."""
        return any(r.status in ("pass", "fail", "error", "waived", "xfail", "xpass") for r in self.results)

    @property
    def exit_code(self) -> int:
        """1 when a check failed or erred; 2 when nothing was checked (every selected check not
        applicable: a CI job must not read that as a pass); else 0."""
        return 1 if not self.ok else 0 if self.checked else 2

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "schema_version": SCHEMA_VERSION,
            "tool": "manifold-oracle conform",
            "target": self.target,
            "adapter": self.adapter,
            "profile": self.profile.to_dict(),
            "mode": self.mode,
            "seed": self.seed,
            "started": self.started,
            "duration_s": self.duration_s,
            "environment": self.environment,
            "summary": {"counts": self.counts, "ok": self.ok, "checked": self.checked, "exit_code": self.exit_code},
            "xfail_unmatched": self.xfail_unmatched,
            "waivers": self.waivers,
            "checks": [r.to_dict() for r in self.results],
        })


def target_name(adapter: Adapter, spec: Any = None) -> str:
    """The ``module:attr`` name of a target (the spec as given, else the adapter's class)."""
    if isinstance(spec, str):
        return spec
    cls = type(adapter)
    return f"{cls.__module__}:{cls.__qualname__}"


def select_checks(checks: Sequence[Check], select: Iterable[str] = (), deselect: Iterable[str] = (),
                  mode: str = "quick") -> list[Check]:
    """Filter by id patterns (fnmatch, or a prefix such as ``spec`` or ``safety.no_mutation``)."""
    sel, desel = list(select), list(deselect)

    def match(cid: str, pats: list[str]) -> bool:
        return any(fnmatch.fnmatch(cid, p) or cid == p or cid.startswith(p.rstrip(".") + ".") for p in pats)

    out = []
    for c in checks:
        if sel and not match(c.id, sel):
            continue
        if desel and match(c.id, desel):
            continue
        if mode == "quick" and not c.quick and not sel:
            continue
        out.append(c)
    return out


def read_waiver_file(path: str | Path) -> dict[str, str]:
    """Read a waiver file: one ``check-id  reason`` per line (the reason is mandatory and may
    contain ``#``, as in "upstream issue #45"; a line whose first non-blank character is ``#`` is a
    comment; blank lines are ignored). The id is an exact check id or an fnmatch
    pattern; it must name at least one registered check. Raises :class:`InvalidInputError` on a
    missing reason, an unknown id or a duplicate, and on a file that cannot be read (the CLI exits 2)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"waiver file {str(path)!r} cannot be read: {exc}") from None
    known = [c.id for c in all_checks()]
    out: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        cid = parts[0]
        if len(parts) < 2 or not parts[1].strip():
            raise InvalidInputError(f"{path}:{no}: waiver of {cid!r} has no reason (format: 'check-id reason')")
        if not any(fnmatch.fnmatch(k, cid) or k == cid for k in known):
            raise InvalidInputError(f"{path}:{no}: {cid!r} names no check (see manifold-oracle conform --list)")
        if cid in out:
            raise InvalidInputError(f"{path}:{no}: {cid!r} is waived twice")
        out[cid] = parts[1].strip()
    return out


#: the former xfail file is the waiver file (one mechanism): same format and rules
read_xfail_file = read_waiver_file


def apply_waivers(r: CheckResult, waivers: dict[str, str], log: list[dict[str, Any]]) -> None:
    """Turn a failing result into ``waived`` when a waiver names its id; record the use in ``log``."""
    for entry in log:
        pat = entry["check"]
        if fnmatch.fnmatch(r.id, pat) or r.id == pat:
            entry["matched"].append(r.id)
            if r.status in FAILING:
                entry["waived"].append(r.id)
                r.details = {**r.details, "waived_status": r.status}
                r.status, r.reason = "waived", (f"waived: {waivers[pat]} (was {r.status}: "
                                                f"{r.reason or (f'{r.figure} = {r.measured}' if r.figure else '')})")


def waiver_log(waivers: dict[str, str]) -> list[dict[str, Any]]:
    """The report's record of each waiver (filled in by :func:`apply_waivers`)."""
    return [{"check": k, "reason": v, "matched": [], "waived": []} for k, v in waivers.items()]


def run_check(ctx: Context, check: Check) -> CheckResult:
    """Evaluate every case of ``check`` and keep the worst (see module docstring)."""
    t0 = time.perf_counter()
    res = CheckResult(check.id, check.family, check.statement, "not_applicable", catches=list(check.catches))
    missing = set(check.requires) - set(ctx.adapter.capabilities)
    if missing:
        res.reason = f"target does not declare capability {', '.join(sorted(missing))}"
        return res
    try:
        why = check.applies(ctx)
        if why:
            res.reason = why
            return res
        cases = list(check.cases(ctx))
    except NotApplicable as exc:
        res.reason = str(exc)
        return res
    measured: list[tuple[Case, Measurement]] = []
    declared: list[tuple[Case, str]] = []
    errors: list[tuple[Case, str]] = []
    na_reasons: list[str] = []
    for case in cases:
        try:
            m = check.evaluate(ctx, case)
        except NotApplicable as exc:
            na_reasons.append(str(exc))
            continue
        except Declared as exc:
            declared.append((case, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - the target raised: an error result, with repro
            errors.append((case, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"))
            continue
        measured.append((case, m))
        res.cases.append({"case": case.label, "measured": m.value, "bound": m.tolerance.bound,
                          "passed": m.passed, "grade": m.grade})
    res.n_cases = len(measured) + len(declared) + len(errors)
    res.duration_s = time.perf_counter() - t0
    if errors:
        case, msg = errors[0]
        res.status, res.reason, res.worst_case, res._case = "error", msg.splitlines()[0], case.label, case
        res.details = {"traceback": msg, "n_errors": len(errors)}
        return res
    if not measured and not declared:
        res.reason = "; ".join(sorted(set(na_reasons))) or "no applicable case"
        return res
    failing = [(c, m) for c, m in measured if not m.passed]
    if failing:
        case, m = min(failing, key=lambda cm: cm[1].margin)
        res.status = "fail"
    elif declared:
        case, why = declared[0]
        res.status, res.reason, res.worst_case, res._case = "xfail", why, case.label, case
        return res
    else:
        case, m = min(measured, key=lambda cm: cm[1].margin)
        res.status = "graded" if check.graded else "pass"
    if check.graded:
        order = "ABCDE"
        case, m = max(measured, key=lambda cm: order.index(cm[1].grade or "A"))
        res.status = "graded"
    res.figure, res.measured, res.tolerance = m.figure, m.value, m.tolerance.to_dict()
    res.margin, res.grade, res.worst_case, res.details = m.margin, m.grade, case.label, dict(m.details)
    if res.status == "pass" and not m.details.get("fixed_threshold"):
        # tightness = bound ÷ measured of an error-model bound; a fixed threshold (a sign property
        # such as optimizer.step.descent's cos ≤ −0.01) has no error model: None
        res.tightness = m.margin
    res._case = case
    return res


def run(target: str | Adapter | type, profile: str | Profile | None = None, *, mode: str = "quick",
        select: Iterable[str] = (), deselect: Iterable[str] = (), seed: int = 0,
        xfail: dict[str, str] | None = None, out_dir: str | Path | None = None,
        progress: bool = False, waivers: dict[str, str] | None = None) -> Report:
    """Resolve ``target``, run the selected checks and return the report.

    Raises ``NotAvailableError``/``InvalidInputError`` when the target cannot be resolved (the
    CLI maps these to exit code 2). Reproductions of failures are written under ``out_dir``.
    ``waivers`` (:func:`read_waiver_file`; ``xfail`` is its former name) turn the named checks'
    failures into ``waived`` results (exit 0), each listed with its reason in every report.
    """
    from . import repro
    from .info import collect

    adapter = resolve_target(target, profile)
    prof = adapter.get_profile()
    ctx = Context(adapter, prof, seed=int(seed), mode=mode)
    checks = select_checks(all_checks(), select, deselect, mode)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    results: list[CheckResult] = []
    iterator: Iterable[Check] = checks
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(checks, desc=f"conform {adapter.name}", unit="check", leave=False)
        iterator = bar
    xf = dict(xfail or {})
    xf.update(waivers or {})
    wlog = waiver_log(xf)
    for chk in iterator:
        if bar is not None:
            bar.set_postfix_str(chk.id)
        r = run_check(ctx, chk)
        apply_waivers(r, xf, wlog)
        results.append(r)
    if bar is not None:
        bar.close()
    env = collect()
    env["precision_state"] = precision_state()
    report = Report(target_name(adapter, target), adapter.name, prof, mode, int(seed), results, env,
                    started, time.perf_counter() - t0, sorted(w["check"] for w in wlog if not w["matched"]),
                    wlog)
    if out_dir is not None:
        for r in results:
            if r.status in FAILING and r._case is not None:
                r.repro = repro.write(Path(out_dir), report, r)
            else:  # this run's verdict replaces an earlier run's reproduction of the same check
                repro.discard(Path(out_dir), r.id)
    return report


def precision_state() -> dict[str, Any]:
    """Precision settings that change results (CONVENTIONS §12.11)."""
    import os

    import torch

    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "allow_tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "torch_compile_disabled": os.environ.get("TORCH_COMPILE_DISABLE", "") not in ("", "0"),
        "default_dtype": str(torch.get_default_dtype()),
        "num_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "device": "cpu",
    }
