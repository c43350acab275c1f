"""CLI, JSON schema, report and verdict logic of ``manifold-oracle theory``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.theory_checks import cli
from manifold_oracle.theory_checks.catalog import run_claim
from manifold_oracle.theory_checks.registry import REGISTRY, Budget, ClaimResult, ControlResult, register
from manifold_oracle.theory_checks.schema import load_schema, validate, validation_errors

FAST = ["G-3", "S-2", "A-4"]  # well under a second each


def test_cli_writes_valid_json_plots_and_report(tmp_path: Path, capsys) -> None:
    js, plots, rep = tmp_path / "out.json", tmp_path / "plots", tmp_path / "report.md"
    code = cli.main(["--claim", *FAST, "--quick", "--json", str(js), "--plots", str(plots),
                     "--report", str(rep)])
    assert code == 0
    out = capsys.readouterr().out
    for cid in FAST:
        assert cid in out
    assert "verdict" in out and "title" in out and "3 PASS" in out
    doc = json.loads(js.read_text())
    validate(doc)
    assert [c["id"] for c in doc["claims"]] == ["G-3", "A-4", "S-2"]  # CLAIMS.md order
    for c in doc["claims"]:
        png = Path(c["plot"])
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    text = rep.read_text()
    assert "| claim | title | measured |" in text and "**Reproduces.**" in text
    for cid in FAST:
        assert f"![{cid}](plots/{cid}.png)" in text


def test_json_matches_jsonschema_when_available(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="optional cross-check of the built-in validator")
    js = tmp_path / "o.json"
    assert cli.main(["--claim", "G-3", "--json", str(js), "--plots", str(tmp_path)]) == 0
    jsonschema.validate(json.loads(js.read_text()), load_schema())


def test_validator_rejects_bad_documents(tmp_path: Path) -> None:
    js = tmp_path / "o.json"
    assert cli.main(["--claim", "S-2", "--json", str(js), "--plots", str(tmp_path)]) == 0
    doc = json.loads(js.read_text())
    schema = load_schema()
    assert validation_errors(doc, schema) == []
    bad = json.loads(json.dumps(doc))
    del bad["claims"][0]["tolerance"]
    assert any("tolerance" in e for e in validation_errors(bad, schema))
    bad = json.loads(json.dumps(doc))
    bad["claims"][0]["verdict"] = "MAYBE"
    assert any("MAYBE" in e for e in validation_errors(bad, schema))
    bad = json.loads(json.dumps(doc))
    bad["claims"][0]["passed"] = 1
    assert validation_errors(bad, schema)
    bad = json.loads(json.dumps(doc))
    bad["extra"] = 1
    with pytest.raises(InvalidInputError):
        validate(bad)


def test_cli_exit_codes(capsys) -> None:
    assert cli.main(["--claim", "Z-99"]) == 2
    assert cli.main(["--bogus"]) == 2
    assert cli.main(["--quick", "--full"]) == 2
    assert cli.main(["--list"]) == 0
    assert "G-1" in capsys.readouterr().out


def _fake(passed: bool, control_passes: bool | None):
    def run(seed: int, budget: Budget) -> ClaimResult:
        ctrl = None if control_passes is None else ControlResult("ctrl", 1.0, control_passes)
        return ClaimResult("X-0", 1.0, "m", 1.0, "1", 0.1, "test", passed, ctrl)
    return run


@pytest.mark.parametrize("passed, control, verdict, code", [
    (True, False, "PASS", 0), (True, True, "VACUOUS", 1), (False, False, "FAIL", 1), (True, None, "PASS", 0)])
def test_verdicts_and_exit_codes(passed, control, verdict, code, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default plots folder runs/theory/plots goes here
    cid = "X-99"
    register(cid, "fake", "test", "X")(_fake(passed, control))
    try:
        assert run_claim(cid).verdict == verdict
        assert cli.main(["--claim", cid]) == code
    finally:
        del REGISTRY[cid]


@pytest.mark.parametrize("decision, verdict", [("inconclusive", "INCONCLUSIVE"), ("observation", "OBSERVED")])
def test_undecided_verdicts_exit_zero_and_plots_go_to_the_default_folder(decision, verdict, tmp_path,
                                                                          monkeypatch, capsys) -> None:
    from manifold_oracle.theory_checks._common import new_figure

    monkeypatch.chdir(tmp_path)
    cid = "X-97"

    def run(seed: int, budget: Budget) -> ClaimResult:
        fig, _ = new_figure()
        return ClaimResult("X-97", 1.0, "m", None, "law", 0.1, "test", False, None, {}, fig, decision=decision)

    register(cid, "fake claim title", "test", "X")(run)
    try:
        assert run_claim(cid).verdict == verdict
        js = tmp_path / "o.json"
        assert cli.main(["--claim", cid, "--json", str(js)]) == 0
        assert (tmp_path / cli.DEFAULT_PLOTS / "X-97.png").exists()
        assert verdict in capsys.readouterr().out
        validate(json.loads(js.read_text()))
    finally:
        del REGISTRY[cid]


def test_raising_claim_is_an_error_verdict(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cid = "X-98"

    def boom(seed: int, budget: Budget) -> ClaimResult:
        raise RuntimeError("boom")

    register(cid, "fake", "test", "X")(boom)
    try:
        res = run_claim(cid)
        assert res.verdict == "ERROR" and "boom" in res.error
        assert cli.main(["--claim", cid]) == 1
        with pytest.raises(RuntimeError):
            run_claim(cid, catch=False)
    finally:
        del REGISTRY[cid]


def test_duplicate_registration_and_bad_budget() -> None:
    with pytest.raises(InvalidInputError):
        register("G-1", "dup", "x", "G")(_fake(True, False))
    with pytest.raises(InvalidInputError):
        Budget("huge")
