"""Audit 5 of the user route (CLI ``conform``, pytest plugin, JUnit, repro, waivers): each test
failed before its fix. Cheap on purpose: argument handling returns before any check runs, the
runs select one or two sub-second checks, the plugin sessions run in-process (``pytester``)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from manifold_oracle.conformance.conform_cli import build_parser, main
from manifold_oracle.conformance.profiles import get_profile
from manifold_oracle.conformance.report import write_junit
from manifold_oracle.conformance.repro import rerun_case
from manifold_oracle.conformance.runner import CheckResult, Report, read_waiver_file

pytest_plugins = ["pytester"]
# geoopt 0.5.1 decorates functions with torch.jit.script at import (deprecated in torch 2.13)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "conformance.md"

BAD_TARGETS = '''
from manifold_oracle.conformance.adapters import Adapter


class RaisesAtConstruction(Adapter):
    name = "raises-at-construction"
    profile = "scipy_polar"
    capabilities = frozenset({"polar_factor"})

    def __init__(self):
        raise RuntimeError("boom at construction")
'''


@pytest.fixture
def bad_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module whose adapter raises at construction and one raising at import, importable."""
    (tmp_path / "ua5_bad_ctor.py").write_text(BAD_TARGETS)
    (tmp_path / "ua5_bad_import.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------------ CLI
def test_repeated_select_and_deselect_accumulate() -> None:
    """`--select A --select B` used to keep only B (argparse nargs='+' without extend)."""
    ns = build_parser().parse_args(["--select", "spec", "safety.determinism", "--select", "optimizer",
                                    "--deselect", "spec.polar", "--deselect", "quality"])
    assert ns.select == ["spec", "safety.determinism", "optimizer"]
    assert ns.deselect == ["spec.polar", "quality"]


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--select", "spec", "--deselect", "spec"]],
                         ids=["negative-seed", "selection-leaves-nothing"])
def test_unusable_arguments_exit_2_before_running(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A negative seed raised inside numpy (every check an error, exit 1); a selection left empty
    by --deselect ran nothing and exited 0."""
    assert main(["--target", "scipy_polar", "--no-progress", *argv]) == 2
    assert re.search(r"seed|no check to run", capsys.readouterr().err)


@pytest.mark.parametrize("target, said", [("ua5_bad_ctor:RaisesAtConstruction", "boom at construction"),
                                          ("ua5_bad_import:Anything", "boom at import")])
@pytest.mark.parametrize("extra", [[], ["--list"]], ids=["run", "list"])
def test_target_raising_at_import_or_construction_exits_2(bad_modules: Path, target: str, said: str,
                                                          extra: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """These escaped as a traceback with exit 1 (read by CI as "a check failed")."""
    assert main(["--target", target, "--select", "spec.polar.zero_input", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert "raised while being imported or constructed" in err and said in err


def test_module_in_cwd_not_importable_gets_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ua5_not_on_path.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert main(["--target", "ua5_not_on_path:A", "--list"]) == 2
    assert "PYTHONPATH=." in capsys.readouterr().err


# ----------------------------------------------------------------------------------- JUnit
def test_junit_waived_message_once_and_control_characters_escaped(tmp_path: Path) -> None:
    """The waived message read "waived: waived: …"; an ANSI escape in what a target raised made
    the file unparseable XML (CI drops the whole report)."""
    waived = CheckResult("spec.polar.isometry", "spec", "s", "waived",
                         reason="waived: known (ticket 7) (was fail: x = 1)")
    error = CheckResult("spec.polar.zero_input", "spec", "s", "error", reason="RuntimeError: \x1b[31mboom\x00",
                        details={"traceback": "Traceback …\x1b[0m"})
    rep = Report("t", "a", get_profile("scipy_polar"), "quick", 0, [waived, error], {}, "", 0.0)
    path = tmp_path / "j.xml"
    write_junit(rep, path)
    cases = {tc.get("name"): tc for tc in ET.parse(path).getroot().iter("testcase")}
    assert cases["spec.polar.isometry"].find("skipped").get("message") == waived.reason
    err = cases["spec.polar.zero_input"].find("error")
    assert "\\x1b[31mboom\\x00" in err.get("message") and "\\x1b[0m" in err.text


# ----------------------------------------------------------------------------------- repro
def test_rerun_case_on_the_fixed_adapter_uses_its_own_profile(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs example misdeclares its shape scale; the fixed adapter (right profile) still
    failed the re-run because the recorded profile was forced onto it."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    assert main(["--target", "my_muon_oracle:MyMuonAdapterWrongProfile", "--select",
                 "optimizer.rule.shape_scale_ratio", "--repro-dir", str(tmp_path), "--no-progress"]) == 1
    npz = tmp_path / "repro" / "optimizer.rule.shape_scale_ratio.npz"
    assert not rerun_case(npz).passed
    assert rerun_case(npz, target="my_muon_oracle:MyMuonAdapter").passed
    assert not rerun_case(npz, target="my_muon_oracle:MyMuonAdapter", profile="recorded").passed


def test_repro_snippet_reruns_from_another_directory_without_pythonpath(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target imported through PYTHONPATH: its saved snippet raised NotAvailableError when run
    from another directory (or CI step) without that PYTHONPATH."""
    examples = str(ROOT / "docs" / "examples")
    monkeypatch.syspath_prepend(examples)
    assert main(["--target", "my_muon_oracle:MyMuonAdapterWrongProfile", "--select",
                 "optimizer.rule.shape_scale_ratio", "--repro-dir", str(tmp_path), "--no-progress"]) == 1
    code = (tmp_path / "repro" / "optimizer.rule.shape_scale_ratio.py").read_text()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p).resolve() != Path(examples).resolve()])
    monkeypatch.delitem(sys.modules, "my_muon_oracle")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:  # the snippet exits 1 while the check fails
        exec(compile(code, "snippet", "exec"), {})
    assert exc.value.code == 1


# --------------------------------------------------------------------------------- waivers
def test_docs_waiver_example_keeps_every_reason_whole(tmp_path: Path) -> None:
    """The documented example "upstream issue #45, fixed in 0.3" was read as "upstream issue"."""
    block = DOCS.read_text().split("Format, one waiver per line:", 1)[1].split("```", 2)[1]
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines
    path = tmp_path / "waive.txt"
    path.write_text(block)
    got = read_waiver_file(path)
    assert got == {ln.split(None, 1)[0]: ln.split(None, 1)[1].strip() for ln in lines}


# ---------------------------------------------------------------------------------- plugin
def test_fixture_takes_one_id_as_a_string_and_refuses_an_empty_selection(manifold_oracle) -> None:
    """select="spec.polar.zero_input" was read as four one-letter patterns (InvalidInputError on
    's'); a selection emptied by deselect returned an empty report that passed the test."""
    from manifold_oracle.reference.errors import InvalidInputError

    report = manifold_oracle("scipy_polar", select="spec.polar.zero_input")
    assert [r.id for r in report.results] == ["spec.polar.zero_input"] and report.counts.get("pass") == 1
    with pytest.raises(InvalidInputError, match="no check to run"):
        manifold_oracle("scipy_polar", select=["spec"], deselect=["spec"])


@pytest.fixture
def tdir(pytester: pytest.Pytester) -> pytest.Pytester:
    import manifold_oracle.conformance.conform_cli  # noqa: F401 - loaded once, outside the inner sessions
    from manifold_oracle.conformance.checks import all_checks
    from manifold_oracle.conformance.info import collect

    all_checks()
    collect()
    pytester.makepyfile(ua5_bad_ctor=BAD_TARGETS)
    pytester.syspathinsert()
    pytester.makepyfile(test_user="def test_user_own():\n    assert True\n")
    return pytester


def test_plugin_repeated_select_accumulates(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("--collect-only", "-q", "--oracle-target=scipy_polar",
                       "--oracle-select=spec.polar.isometry", "--oracle-select=spec.polar.zero_input")
    out = r.stdout.str()
    assert "spec::spec.polar.isometry" in out and "spec::spec.polar.zero_input" in out, out


@pytest.mark.parametrize("args, ret, said", [
    (["--oracle-json=o.json", "--oracle-select=spec"], 4, "without --oracle-target"),
    (["--oracle-target="], 4, "--oracle-target is empty"),
    (["--oracle-target=ua5_bad_ctor:RaisesAtConstruction"], 2, "boom at construction"),
    (["--oracle-target=scipy_polar", "--oracle-seed=-1"], 4, "seed"),
    (["--oracle-target=scipy_polar", "--oracle-select=spec", "--oracle-deselect=spec"], 2, "no check to run"),
    (["--oracle-target=scipy_polar", "--oracle-json=."], 4, "cannot write --oracle-json"),
], ids=["options-without-target", "empty-target", "raising-target", "negative-seed", "empty-selection",
        "json-path-is-a-directory"])
def test_plugin_never_passes_silently(tdir: pytest.Pytester, args: list[str], ret: int, said: str) -> None:
    """Each of these used to pass the session with no oracle check run (or crash: INTERNALERROR,
    exit 3, for the raising target; every item failing for the seed; a traceback after the whole
    run for an --oracle-json that cannot be written)."""
    r = tdir.runpytest("-q", *args)
    assert r.ret == ret, (r.ret, r.stdout.str(), r.stderr.str())
    assert said in r.stdout.str() + r.stderr.str()


def test_plugin_options_in_addopts_stay_inert_without_target(tdir: pytest.Pytester) -> None:
    tdir.makeini("[pytest]\naddopts = --oracle-mode=full --oracle-json=o.json\n")
    tdir.runpytest("-q").assert_outcomes(passed=1)


def test_a_run_that_checks_nothing_exits_2() -> None:
    """Every selected check not applicable (geometry on a Muon target): nothing was judged, and a CI
    job must not read that as a pass — exit code 2, the verdict says so."""
    from manifold_oracle.conformance.report import verdict_line
    from manifold_oracle.conformance.runner import run

    rep = run("torch_muon", select=["geometry"], seed=0)
    assert rep.results and all(r.status == "not_applicable" for r in rep.results)
    assert rep.ok and not rep.checked and rep.exit_code == 2
    assert "nothing was checked" in verdict_line(rep)


def test_waiver_reason_keeps_a_hash_and_whole_line_comments_are_skipped(tmp_path) -> None:
    from manifold_oracle.conformance.runner import read_waiver_file

    f = tmp_path / "waivers.txt"
    f.write_text("# a comment line\n   # an indented comment\nsafety.extreme_scale  upstream issue #45, fixed in 0.3\n")
    assert read_waiver_file(f) == {"safety.extreme_scale": "upstream issue #45, fixed in 0.3"}


def test_json_summary_says_whether_anything_was_checked(tmp_path) -> None:
    """The JSON summary carries ``checked`` and the exit code 2 of a run that judged nothing, and
    still validates against its schema (1.2.0)."""
    import json

    import jsonschema

    from manifold_oracle.conformance.report import write_json
    from manifold_oracle.conformance.runner import run

    schema = json.loads((ROOT / "conformance" / "schemas" / "report_schema.json").read_text())
    for select, checked, code in ((["geometry"], False, 2), (["optimizer.run.determinism"], True, 0)):
        path = tmp_path / f"{select[0]}.json"
        write_json(run("torch_muon", select=select, seed=0), path)
        doc = json.loads(path.read_text())
        jsonschema.validate(doc, schema)
        assert doc["summary"]["checked"] is checked and doc["summary"]["exit_code"] == code, doc["summary"]


def test_a_check_that_passes_now_loses_its_stale_repro(tmp_path) -> None:
    """A repro left by an earlier failing run of a check that passes now is removed (CI artifacts
    must not show a failure that is gone); a repro of a check this run did not run stays."""
    from manifold_oracle.conformance.runner import run

    repro_dir = tmp_path / "repro"
    repro_dir.mkdir()
    stale, other = repro_dir / "optimizer.run.determinism.npz", repro_dir / "safety.transpose.npz"
    for f in (stale, other, stale.with_suffix(".py")):
        f.write_bytes(b"old")
    rep = run("torch_muon", select=["optimizer.run.determinism"], seed=0, out_dir=tmp_path)
    assert rep.results[0].status == "pass"
    assert not stale.exists() and not stale.with_suffix(".py").exists() and other.exists()
