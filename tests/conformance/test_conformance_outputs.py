"""The harness's outputs and entry points: CLI exit codes, JSON (schema), JUnit XML, repro files
and snippets, xfail files, target resolution, and the pytest plugin (inert without a target)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import conformance_zoo as Z
from manifold_oracle.conformance.adapters import Adapter, resolve_target
from manifold_oracle.conformance.conform_cli import main
from manifold_oracle.conformance.report import report_schema
from manifold_oracle.conformance.repro import rerun_case
from manifold_oracle.conformance.runner import SCHEMA_VERSION, run
from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

# geoopt 0.5.1 decorates functions with torch.jit.script at import (deprecated in torch 2.13)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCHEMA = report_schema()  # the shipped package data


def _structural(doc: dict) -> None:
    """Required keys of the schema, checked without a validator library."""
    for k in SCHEMA["required"]:
        assert k in doc, k
    assert doc["schema_version"] == SCHEMA_VERSION
    req = SCHEMA["$defs"]["check"]["required"]
    for c in doc["checks"]:
        for k in req:
            assert k in c, (c.get("id"), k)
    for k in SCHEMA["properties"]["profile"]["required"]:
        assert k in doc["profile"], k


def test_cli_pass_exit_0_with_json_and_junit(tmp_path: Path) -> None:
    js, ju = tmp_path / "r.json", tmp_path / "r.xml"
    code = main(["--target", "conformance_zoo:GoodNS", "--json", str(js), "--junit", str(ju), "--no-progress"])
    assert code == 0
    doc = json.loads(js.read_text())
    _structural(doc)
    assert doc["summary"]["ok"] is True and doc["summary"]["exit_code"] == 0
    assert doc["environment"]["precision_state"]["float32_matmul_precision"]
    suite = ET.parse(ju).getroot()
    assert int(suite.get("failures")) == 0 and int(suite.get("tests")) == len(doc["checks"])


def test_report_validates_against_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the report schema")
    js = tmp_path / "r.json"
    assert main(["--target", "conformance_zoo:SignError", "--json", str(js), "--no-progress",
                 "--select", "optimizer", "safety"]) == 1
    jsonschema.validate(json.loads(js.read_text()), SCHEMA)


def test_cli_failure_exit_1_writes_repro_that_reproduces(tmp_path: Path) -> None:
    js, ju = tmp_path / "r.json", tmp_path / "r.xml"
    code = main(["--target", "conformance_zoo:WrongNSCoefficient", "--json", str(js), "--junit", str(ju),
                 "--select", "spec.orthogonaliser.output", "--no-progress"])
    assert code == 1
    doc = json.loads(js.read_text())
    (chk,) = [c for c in doc["checks"] if c["id"] == "spec.orthogonaliser.output"]
    assert chk["status"] == "fail" and chk["repro"] is not None
    npz = Path(chk["repro"]["inputs"])
    assert npz.exists() and npz.parent.parent == tmp_path
    with np.load(npz) as z:
        assert "G" in z.files and "__meta__" in z.files
    m = rerun_case(npz)
    assert not m.passed and np.isclose(m.value, chk["measured"], rtol=1e-12)
    # the snippet is valid Python naming the saved file
    compile(chk["repro"]["snippet"], "<snippet>", "exec")
    assert str(npz) in chk["repro"]["snippet"]
    # the repro of the correct adapter on the same inputs passes
    assert rerun_case(npz, target=Z.GoodNS).passed
    suite = ET.parse(ju).getroot()
    assert int(suite.get("failures")) == 1
    fail = [tc for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert fail[0].get("name") == "spec.orthogonaliser.output"


def test_cli_exit_2_when_target_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", "no_such_module_xyz:Adapter", "--no-progress"]) == 2
    assert main(["--target", "no-colon-here", "--no-progress"]) == 2
    assert main(["--target", "conformance_zoo:NOT_THERE", "--no-progress"]) == 2
    assert main(["--target", "test_conformance_outputs:MissingDependency", "--no-progress"]) == 2
    assert main(["--bogus-option"]) == 2
    err = capsys.readouterr().err
    assert "not available" in err


class MissingDependency(Adapter):
    name = "needs a package that is not installed"
    profile = "scipy_polar"
    capabilities = frozenset({"polar_factor"})
    requires = ("no_such_package_for_oracle_tests",)


def test_missing_dependency_is_not_available_never_a_pass() -> None:
    with pytest.raises(NotAvailableError):
        resolve_target(MissingDependency)
    with pytest.raises(InvalidInputError):
        resolve_target("conformance_zoo:KJ")  # not an adapter


def test_waiver_file_reports_waived_with_reason_everywhere(tmp_path: Path) -> None:
    """--waive (the former --xfail-file): a waived failure is WAIVED (exit 0), never PASS, and the
    console, JSON and JUnit reports list the waiver with its reason."""
    wf = tmp_path / "waive.txt"
    wf.write_text("# our CI accepts this until upstream fixes it\n"
                  "safety.no_mutation.gradient  writes the Nesterov blend into grad (upstream issue 12)\n")
    js, ju = tmp_path / "r.json", tmp_path / "j.xml"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["--target", "conformance_zoo:GradientMutated", "--waive", str(wf), "--json", str(js),
                     "--junit", str(ju), "--select", "safety.no_mutation", "--no-progress"])
    assert code == 0
    doc = json.loads(js.read_text())
    st = {c["id"]: c for c in doc["checks"]}
    assert st["safety.no_mutation.gradient"]["status"] == "waived"
    assert "upstream issue 12" in st["safety.no_mutation.gradient"]["reason"]
    assert doc["waivers"] == [{"check": "safety.no_mutation.gradient",
                               "reason": "writes the Nesterov blend into grad (upstream issue 12)",
                               "matched": ["safety.no_mutation.gradient"], "waived": ["safety.no_mutation.gradient"]}]
    out = buf.getvalue()
    assert "WAIVED  safety.no_mutation.gradient" in out and "upstream issue 12" in out.split("waivers")[-1]
    xml = ju.read_text()
    assert "waiver:safety.no_mutation.gradient" in xml and 'message="waived: writes the Nesterov' in xml
    # without the waiver the same target fails
    assert main(["--target", "conformance_zoo:GradientMutated", "--select", "safety.no_mutation.gradient",
                 "--no-progress"]) == 1


@pytest.mark.parametrize("text", ["safety.no_mutation.gradient\n",             # no reason
                                  "spec.no_such_check  stale entry\n",         # unknown id
                                  "safety.x*  a pattern matching nothing\n"])
def test_bad_waiver_file_is_a_usage_error(tmp_path: Path, text: str) -> None:
    wf = tmp_path / "waive.txt"
    wf.write_text(text)
    assert main(["--target", "conformance_zoo:GoodNS", "--waive", str(wf), "--select", "safety.determinism",
                 "--no-progress"]) == 2


def test_list_and_select_deselect() -> None:
    assert main(["--list"]) == 0
    r = run(Z.GoodNS, select=["safety"], deselect=["safety.determinism"])
    ids = {x.id for x in r.results}
    assert ids and all(i.startswith("safety.") for i in ids) and "safety.determinism" not in ids


def test_third_party_adapters_resolve_or_report_not_available() -> None:
    """Every built-in adapter either resolves or raises NotAvailableError (never passes silently)."""
    from manifold_oracle.conformance.adapters import BUILTIN_TARGETS

    for name in BUILTIN_TARGETS:
        try:
            a = resolve_target(name)
        except NotAvailableError:
            continue
        assert a.capabilities, name


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": f"{HERE}:{ROOT}"})


def test_plugin_is_inert_without_target(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_user():\n    assert True\n")
    out = _pytest(str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout and "manifold-oracle" not in out.stdout


def test_plugin_one_item_per_check_with_reports(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_user():\n    assert True\n")
    js, ju = tmp_path / "o" / "r.json", tmp_path / "o" / "j.xml"
    out = _pytest(str(tmp_path), "--oracle-target=conformance_zoo:NaNHidden", "--oracle-select", "safety",
                  f"--oracle-json={js}", f"--junitxml={ju}", "-rs", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "safety.nan_propagation" in out.stdout and "1 failed" in out.stdout
    doc = json.loads(js.read_text())
    _structural(doc)
    st = {c["id"]: c["status"] for c in doc["checks"]}
    assert st["safety.nan_propagation"] == "fail" and doc["summary"]["exit_code"] == 1
    cases = {tc.get("name"): tc for tc in ET.parse(ju).getroot().iter("testcase")}
    assert "safety.nan_propagation" in cases and "test_user" in cases
    assert cases["safety.nan_propagation"].find("failure") is not None
    props = {p.get("name"): p.get("value") for p in cases["safety.nan_propagation"].iter("property")}
    assert props["status"] == "fail" and "bound" in props


def test_plugin_waiver_is_listed_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_user():\n    assert True\n")
    wf = tmp_path / "waive.txt"
    wf.write_text("safety.nan_propagation  our wrapper sanitises NaN on purpose (ticket 7)\n")
    js, ju = tmp_path / "o" / "r.json", tmp_path / "o" / "j.xml"
    out = _pytest(str(tmp_path), "--oracle-target=conformance_zoo:NaNHidden", "--oracle-select",
                  "safety.nan_propagation", f"--oracle-waive={wf}", f"--oracle-json={js}", f"--junitxml={ju}",
                  "-rx", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 xfailed" in out.stdout and "waived: our wrapper sanitises NaN on purpose (ticket 7)" in out.stdout
    doc = json.loads(js.read_text())
    _structural(doc)
    assert {c["id"]: c["status"] for c in doc["checks"]}["safety.nan_propagation"] == "waived"
    assert doc["waivers"][0]["reason"] == "our wrapper sanitises NaN on purpose (ticket 7)"
    assert doc["waivers"][0]["waived"] == ["safety.nan_propagation"]
    skipped = [tc.find("skipped") for tc in ET.parse(ju).getroot().iter("testcase")
               if tc.get("name") == "safety.nan_propagation"][0]
    assert skipped is not None and "ticket 7" in skipped.get("message", "")


def test_plugin_unavailable_target_exits_2(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_user():\n    assert True\n")
    out = _pytest(str(tmp_path), "--oracle-target=no_such_module_xyz:A", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
