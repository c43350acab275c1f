"""pytest plugin of manifold-oracle (registered through the ``pytest11`` entry point).

It does nothing unless a target is named. With ``--oracle-target=pkg.mod:attr`` (or a built-in
name) the conformance checks run inside the user's own test session, one pytest item per
check, next to the user's tests:

    pytest --oracle-target=mypkg.adapters:MyMuon [--oracle-profile NAME] [--oracle-mode quick|full]
           [--oracle-seed N] [--oracle-select ID ...] [--oracle-deselect ID ...]
           [--oracle-json PATH] [--oracle-waive FILE] [--junitxml PATH] [-n auto]

Items behave like pytest items: node ids ``manifold-oracle/<family>::<check id>`` (e.g.
``manifold-oracle/safety::safety.determinism``) can be given on the command line (a
``manifold-oracle[/family]`` argument selects the oracle items only), ``-k``, ``-m oracle``
(the registered ``oracle`` marker), ``--lf``/``--ff`` and ``--collect-only`` work, and the
JUnit classname is ``manifold-oracle.<family>``. A failing check fails its item (figure, bound
and provenance, the failing cases grouped, a re-run snippet); a not-applicable check is skipped
with its reason; a failure documented by the profile is an xfail, a failure waived by the user's
``--oracle-waive`` file an xfail "waived: <reason> (was …)" (status ``waived`` in the JSON). The JSON
report (same schema as ``manifold-oracle conform --json``) is written by the controlling
process from every worker's results, so it is complete under pytest-xdist. An unavailable
target or a selection matching no check stops the session with exit code 2 (never a pass).

Users' own tests can call the harness through the ``manifold_oracle`` fixture:

    def test_my_muon(manifold_oracle):
        manifold_oracle(MyAdapter(), select=["spec", "safety"])   # fails the test on a failure
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

_KEY = "oracle_result"
#: first component of every oracle node id (an argument starting with it selects oracle items)
ROOT = "manifold-oracle"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("manifold-oracle", "manifold-oracle conformance")
    group.addoption("--oracle-target", default=None, metavar="MODULE:ATTR",
                    help="implementation to check against the manifold-oracle reference")
    group.addoption("--oracle-profile", default=None, metavar="NAME",
                    help="declared convention profile of the target (default: the adapter's)")
    group.addoption("--oracle-mode", default="quick", choices=("quick", "full"),
                    help="case set: quick (default) or full")
    group.addoption("--oracle-seed", default=0, type=_seed, help="seed of the generated cases (an integer ≥ 0)")
    group.addoption("--oracle-select", nargs="+", action="extend", default=[], metavar="ID",
                    help="check ids/patterns to run (repeat the option for more: --oracle-select=a --oracle-select=b)")
    group.addoption("--oracle-deselect", nargs="+", action="extend", default=[], metavar="ID",
                    help="check ids/patterns to skip (repeatable)")
    group.addoption("--oracle-json", default=None, metavar="PATH", help="write the JSON report here")
    group.addoption("--oracle-waive", "--oracle-xfail-file", dest="oracle_waive", default=None, metavar="FILE",
                    help="waiver file: lines 'check-id reason' (reason mandatory, unknown ids are an "
                         "error); a waived failure is an xfail 'waived: reason' and 'waived' in the JSON")


def _seed(text: str) -> int:
    """``--oracle-seed``: an integer ≥ 0 (imported lazily: the plugin loads in every session)."""
    from .selection import seed_arg

    return seed_arg(text)


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--oracle-target", default=None))


def _refuse_options_without_target(config: pytest.Config) -> None:
    """An empty ``--oracle-target=`` (an unset CI variable) or ``--oracle-*`` options on the
    command line without a target would run no check and pass: a usage error instead (options
    from ``addopts`` stay inert, so a project can keep them there and name the target in CI)."""
    if config.getoption("--oracle-target", default=None) is not None:
        raise pytest.UsageError("manifold-oracle: --oracle-target is empty; name an adapter "
                                "(module:attr or a built-in name), or drop the option")
    given = sorted({str(a).split("=", 1)[0] for a in config.invocation_params.args
                    if str(a).startswith("--oracle-")})
    if given:
        raise pytest.UsageError(f"manifold-oracle: {', '.join(given)} given without --oracle-target: no "
                                "check would run; add --oracle-target=module:attr")


# ------------------------------------------------------------------------------ configuration
class _Meta:
    """What every process of the session knows about the oracle run (resolved once)."""

    def __init__(self, config: pytest.Config) -> None:
        from manifold_oracle.reference.errors import InvalidInputError

        from .checks import all_checks
        from .conform_cli import load_target, unwritable
        from .runner import read_waiver_file, select_checks, target_name
        from .selection import validate_selection

        target = config.getoption("--oracle-target")
        adapter, why = load_target(target, config.getoption("--oracle-profile"))
        if why:  # not importable, a bad profile, or raising at import or construction: exit 2
            pytest.exit(f"manifold-oracle: target {target!r} {why}", returncode=2)
        self.adapter = adapter
        self.profile = self.adapter.get_profile()
        self.target = target_name(self.adapter, target)
        self.mode = config.getoption("--oracle-mode")
        self.seed = int(config.getoption("--oracle-seed"))
        xf_path = config.getoption("oracle_waive")
        try:
            self.xfail = read_waiver_file(xf_path) if xf_path else {}
        except (OSError, InvalidInputError) as exc:
            raise pytest.UsageError(f"manifold-oracle: bad --oracle-waive file: {exc}") from exc
        json_path = config.getoption("--oracle-json")
        why = unwritable(json_path) if json_path else None
        if why:  # checked before the run, not after it (as `conform --json`)
            raise pytest.UsageError(f"manifold-oracle: cannot write --oracle-json {json_path!r}: {why}")
        self.out_dir = Path(json_path).parent if json_path else None
        ids = [c.id for c in all_checks()]
        sel, desel = list(config.getoption("--oracle-select")), list(config.getoption("--oracle-deselect"))
        try:
            validate_selection(sel, ids, "--oracle-select")
            validate_selection(desel, ids, "--oracle-deselect")
        except InvalidInputError as exc:
            pytest.exit(f"manifold-oracle: {exc}", returncode=2)
        self.checks = select_checks(all_checks(), sel, desel, self.mode)
        if not self.checks:
            pytest.exit("manifold-oracle: --oracle-select/--oracle-deselect leave no check to run", returncode=2)
        self._ctx: Any = None

    @property
    def ctx(self) -> Any:
        if self._ctx is None:
            from .checks import Context

            self._ctx = Context(self.adapter, self.profile, seed=self.seed, mode=self.mode)
        return self._ctx


def _split_oracle_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(other args, oracle node-id selections) of the command-line arguments."""
    rest, picks = [], []
    for a in args:
        (picks if a == ROOT or a.startswith(ROOT + "/") or a.startswith(ROOT + "::") else rest).append(a)
    return rest, picks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "oracle: a manifold-oracle conformance check (pytest plugin item)")
    if not _enabled(config):
        if not hasattr(config, "workerinput"):
            _refuse_options_without_target(config)
        return
    # ``manifold-oracle/<family>::<id>`` arguments name items that exist only in this plugin:
    # take them out of the file arguments and keep them as node-id filters
    rest, picks = _split_oracle_args(list(config.args))
    if picks:
        config.args[:] = rest
    config._oracle_picks = picks  # type: ignore[attr-defined]
    config._oracle_only = bool(picks) and not rest  # type: ignore[attr-defined]
    config._oracle_results = []  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Resolve the target and the selection once per process (an unavailable target or a
    selection matching no check ends the session with exit code 2)."""
    if _enabled(session.config):
        session.config._oracle_meta = _Meta(session.config)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------- items
class OracleCheckFailed(Exception):
    """A conformance check failed (the message carries figures and the repro)."""


class OracleFamily(pytest.Collector):
    """The virtual collector ``manifold-oracle/<family>`` holding that family's checks."""

    def collect(self) -> list[pytest.Item]:  # items are created by the plugin, not collected
        return []


class OracleItem(pytest.Item):
    """One conformance check as a pytest item."""

    def __init__(self, *, check: Any, meta: _Meta, **kw: Any) -> None:
        super().__init__(**kw)
        self.check = check
        self.meta = meta
        self.add_marker("oracle")

    def runtest(self) -> None:
        from .runner import FAILING, apply_waivers, run_check, waiver_log

        meta = self.meta
        res = run_check(meta.ctx, self.check)
        apply_waivers(res, meta.xfail, waiver_log(meta.xfail))
        if meta.out_dir is not None:
            from . import repro

            if res.status in FAILING and res._case is not None:
                res.repro = repro.write(meta.out_dir, _report_stub(meta), res)
            else:  # an earlier session's reproduction of this check is stale now
                repro.discard(meta.out_dir, res.id)
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
        if res.status in ("xfail", "waived"):  # reported as xfail: never a pass
            pytest.xfail(res.reason or "documented failure")
        if res.status in FAILING:
            from .report import failure_text

            raise OracleCheckFailed(failure_text(res))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, OracleCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{ROOT}/{self.check.family}::{self.check.id}"


def _report_stub(meta: _Meta) -> Any:
    """What ``repro.write`` reads from a report."""
    from types import SimpleNamespace

    return SimpleNamespace(target=meta.target, profile=meta.profile, seed=meta.seed, mode=meta.mode)


def _picked(nodeid: str, picks: list[str]) -> bool:
    return any(nodeid == p or nodeid.startswith(p.rstrip("/") + "/") or nodeid.startswith(p + "::")
               or (p == ROOT) for p in picks)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not _enabled(config):
        return
    meta: _Meta = config._oracle_meta  # type: ignore[attr-defined]
    picks: list[str] = config._oracle_picks  # type: ignore[attr-defined]
    if config._oracle_only:  # type: ignore[attr-defined]
        items[:] = []  # only oracle node ids were named: no user test files
    families: dict[str, OracleFamily] = {}
    root = Path(str(config.rootpath)) / ROOT
    new = []
    for chk in meta.checks:
        fam = families.get(chk.family)
        if fam is None:
            fam = families[chk.family] = OracleFamily.from_parent(
                session, name=f"{ROOT}/{chk.family}", nodeid=f"{ROOT}/{chk.family}", path=root / chk.family)
        item = OracleItem.from_parent(fam, name=chk.id, check=chk, meta=meta)
        if picks and not _picked(item.nodeid, picks):
            continue
        new.append(item)
    # report the virtual collectors as collected (terminal counts, --collect-only, lastfailed)
    for fam in families.values():
        mine = [it for it in new if it.parent is fam]
        config.hook.pytest_collectreport(report=pytest.CollectReport(fam.nodeid, "passed", None, mine))
    if picks and not new:
        pytest.exit(f"manifold-oracle: {' '.join(picks)} names no oracle item; node ids look like "
                    f"{ROOT}/safety::safety.determinism", returncode=2)
    items.extend(new)


# ------------------------------------------------------------------------- results and JSON
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    for k, v in getattr(report, "user_properties", ()):
        if k == _KEY:
            _RESULTS.append(json.loads(v))


#: results received in this process (the controller receives every worker's reports)
_RESULTS: list[dict[str, Any]] = []


def _result_from_dict(d: dict[str, Any]) -> Any:
    from dataclasses import fields

    from .runner import CheckResult

    names = {f.name for f in fields(CheckResult) if not f.name.startswith("_")}
    return CheckResult(**{k: v for k, v in d.items() if k in names})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _enabled(config) or hasattr(config, "workerinput"):
        return
    path = config.getoption("--oracle-json")
    meta: _Meta | None = getattr(config, "_oracle_meta", None)
    if not path or meta is None:
        return
    import fnmatch
    import time

    from .info import collect
    from .runner import Report, precision_state

    order = {c.id: i for i, c in enumerate(meta.checks)}
    seen: dict[str, dict[str, Any]] = {}
    for r in _RESULTS:
        seen[r["id"]] = r
    results = [_result_from_dict(d) for d in sorted(seen.values(), key=lambda d: order.get(d["id"], 1 << 30))]
    env = collect()
    env["precision_state"] = precision_state()
    used = {p for p in meta.xfail for r in results if fnmatch.fnmatch(r.id, p) or r.id == p}
    wlog = [{"check": p, "reason": why, "matched": [r.id for r in results if fnmatch.fnmatch(r.id, p) or r.id == p],
             "waived": [r.id for r in results if (fnmatch.fnmatch(r.id, p) or r.id == p) and r.status == "waived"]}
            for p, why in meta.xfail.items()]
    report = Report(meta.target, meta.adapter.name, meta.profile, meta.mode, meta.seed, results, env,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"), float(sum(r.duration_s for r in results)),
                    sorted(set(meta.xfail) - used), wlog)
    doc = report.to_dict()
    doc["tool"] = "manifold-oracle pytest plugin"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------------------------- fixture
@pytest.fixture
def manifold_oracle(tmp_path: Path) -> Callable[..., Any]:
    """Run the harness on an adapter from a user's own test.

    ``manifold_oracle(target, *, profile=None, select=(), deselect=(), mode="quick", seed=0,
    check=True)`` returns the :class:`~conformance.runner.Report`; with ``check=True`` a failing
    or erroring check fails the calling test with the console summary (repro files under the
    test's ``tmp_path``). A target that is not available raises ``NotAvailableError``; a
    selection leaving no check raises ``InvalidInputError``; one id may be given as a string.
    """

    def run_oracle(target: Any, *, profile: Any = None, select: Any = (), deselect: Any = (),
                   mode: str = "quick", seed: int = 0, check: bool = True) -> Any:
        import io

        from manifold_oracle.reference.errors import InvalidInputError

        from . import report as rep
        from .checks import all_checks
        from .runner import run, select_checks
        from .selection import validate_selection

        ids = [c.id for c in all_checks()]
        # one id as a plain string is one id (list("spec") would be four one-letter patterns)
        select, deselect = ([s] if isinstance(s, str) else list(s) for s in (select, deselect))
        validate_selection(select, ids, "select")
        validate_selection(deselect, ids, "deselect")
        if not select_checks(all_checks(), select, deselect, mode):
            raise InvalidInputError("manifold_oracle: select/deselect leave no check to run")
        report = run(target, profile, mode=mode, select=select, deselect=deselect, seed=seed,
                     out_dir=tmp_path)
        if check and not report.ok:
            buf = io.StringIO()
            rep.console_table(report, buf)
            pytest.fail(f"manifold-oracle: {report.target} fails its declared profile\n{buf.getvalue()}",
                        pytrace=False)
        return report

    return run_oracle
