"""pytest plugin of manifold-oracle (registered through the ``pytest11`` entry point).

It does nothing unless a target is named. With ``--oracle-target=pkg.mod:attr`` (or a built-in
name) the conformance checks run inside the user's own test session, one pytest item per
check (node ids ``manifold-oracle::<check id>``), next to the user's tests:

    pytest --oracle-target=mypkg.adapters:MyMuon [--oracle-profile NAME] [--oracle-mode quick|full]
           [--oracle-seed N] [--oracle-select ID ...] [--oracle-deselect ID ...]
           [--oracle-json PATH] [--oracle-xfail-file PATH] [--junitxml PATH] [-n auto]

A failing check fails its item (the message carries the figure, the bound and its provenance,
and a re-run snippet whose inputs are saved next to ``--oracle-json``); a not-applicable check
is skipped with its reason; a failure documented by the profile or the xfail file is an xfail.
JUnit XML comes from pytest's ``--junitxml`` (each item carries its figures as properties); the
JSON report (same schema as ``manifold-oracle conform --json``) is written by the controlling
process, so it also works under pytest-xdist. An unavailable target stops the session with exit
code 2 (never a pass).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

_KEY = "oracle_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("manifold-oracle", "manifold-oracle conformance")
    group.addoption("--oracle-target", default=None, metavar="MODULE:ATTR",
                    help="implementation to check against the manifold-oracle reference")
    group.addoption("--oracle-profile", default=None, metavar="NAME",
                    help="declared convention profile of the target (default: the adapter's)")
    group.addoption("--oracle-mode", default="quick", choices=("quick", "full"),
                    help="case set: quick (default) or full")
    group.addoption("--oracle-seed", default=0, type=int, help="seed of the generated cases")
    group.addoption("--oracle-select", nargs="+", default=[], metavar="ID", help="check ids/patterns to run")
    group.addoption("--oracle-deselect", nargs="+", default=[], metavar="ID", help="check ids/patterns to skip")
    group.addoption("--oracle-json", default=None, metavar="PATH", help="write the JSON report here")
    group.addoption("--oracle-xfail-file", default=None, metavar="PATH",
                    help="lines 'check-id reason' of expected failures")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--oracle-target", default=None))


class OracleCheckFailed(Exception):
    """A conformance check failed (the message carries figures and the repro)."""


class OracleItem(pytest.Item):
    """One conformance check as a pytest item."""

    def __init__(self, *, check: Any, state: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check
        self.state = state

    def runtest(self) -> None:
        from .runner import FAILING, run_check

        ctx = self.state["ctx"]
        res = run_check(ctx, self.check)
        for pat, why in self.state["xfail"].items():
            import fnmatch

            if fnmatch.fnmatch(res.id, pat) or res.id == pat:
                if res.status in FAILING:
                    res.status, res.reason = "xfail", f"xfail file: {why}"
        if res.status in FAILING and res._case is not None and self.state["out_dir"] is not None:
            from . import repro

            res.repro = repro.write(self.state["out_dir"], self.state["report_stub"], res)
        d = res.to_dict()
        self.user_properties.append((_KEY, json.dumps(d)))
        for k in ("status", "figure", "measured", "margin", "grade", "worst_case"):
            if d.get(k) is not None:
                self.user_properties.append((k, str(d[k])))
        if d.get("tolerance"):
            self.user_properties.append(("bound", str(d["tolerance"]["bound"])))
            self.user_properties.append(("tolerance_provenance", d["tolerance"]["provenance"]))
        if res.status == "not_applicable":
            pytest.skip(f"not applicable: {res.reason}")
        if res.status == "xfail":
            pytest.xfail(res.reason or "documented failure")
        if res.status in FAILING:
            tol = res.tolerance or {}
            msg = [f"{res.id}: {res.statement}",
                   f"{res.figure} = {res.measured} > bound {tol.get('bound')} "
                   f"[{tol.get('formula', '')}; {tol.get('provenance', '')}]" if res.figure else (res.reason or ""),
                   f"worst case: {res.worst_case}"]
            if res.repro:
                msg += [f"inputs: {res.repro['inputs']}", "re-run:", res.repro["snippet"]]
            raise OracleCheckFailed("\n".join(msg))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, OracleCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"manifold-oracle::{self.check.id}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not _enabled(config):
        return
    from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

    from .adapters import resolve_target
    from .checks import Context, all_checks
    from .runner import read_xfail_file, select_checks, target_name

    target = config.getoption("--oracle-target")
    try:
        adapter = resolve_target(target, config.getoption("--oracle-profile"))
    except (NotAvailableError, InvalidInputError) as exc:
        pytest.exit(f"manifold-oracle: target {target!r} not available: {exc}", returncode=2)
    prof = adapter.get_profile()
    mode = config.getoption("--oracle-mode")
    seed = int(config.getoption("--oracle-seed"))
    xf_path = config.getoption("--oracle-xfail-file")
    xfail = read_xfail_file(xf_path) if xf_path else {}
    json_path = config.getoption("--oracle-json")
    out_dir = Path(json_path).parent if json_path else None

    class _Stub:  # what repro.write needs from a report
        pass

    stub = _Stub()
    stub.target, stub.profile, stub.seed, stub.mode = target_name(adapter, target), prof, seed, mode  # type: ignore[attr-defined]
    state = {"ctx": Context(adapter, prof, seed=seed, mode=mode), "xfail": xfail, "out_dir": out_dir,
             "report_stub": stub}
    config._oracle_meta = {"target": stub.target, "adapter": adapter.name, "profile": prof,  # type: ignore[attr-defined]
                           "mode": mode, "seed": seed, "xfail": xfail}
    checks = select_checks(all_checks(), config.getoption("--oracle-select"),
                           config.getoption("--oracle-deselect"), mode)
    for chk in checks:
        items.append(OracleItem.from_parent(session, name=f"manifold-oracle::{chk.id}", check=chk, state=state))


def pytest_configure(config: pytest.Config) -> None:
    if _enabled(config):
        config._oracle_results = []  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    for k, v in getattr(report, "user_properties", ()):
        if k == _KEY:
            _RESULTS.append(json.loads(v))


_RESULTS: list[dict[str, Any]] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _enabled(config) or hasattr(config, "workerinput"):
        return
    path = config.getoption("--oracle-json")
    if not path:
        return
    import time

    from .info import collect
    from .runner import SCHEMA_VERSION, _jsonable, _precision_state

    meta = getattr(config, "_oracle_meta", None)
    results = list(_RESULTS)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    ok = not any(r["status"] in ("fail", "error") for r in results)
    env = collect()
    env["precision_state"] = _precision_state()
    prof = meta["profile"].to_dict() if meta else {}
    doc = {"schema_version": SCHEMA_VERSION, "tool": "manifold-oracle pytest plugin",
           "target": meta["target"] if meta else config.getoption("--oracle-target"),
           "adapter": meta["adapter"] if meta else "", "profile": prof,
           "mode": config.getoption("--oracle-mode"), "seed": int(config.getoption("--oracle-seed")),
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "duration_s": 0.0, "environment": env,
           "summary": {"counts": counts, "ok": ok, "exit_code": 0 if ok else 1},
           "xfail_unmatched": [], "checks": results}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_jsonable(doc), indent=2, ensure_ascii=False))
