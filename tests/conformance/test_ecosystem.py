"""Issue 13: the third-party built-in targets, their standalone reproductions, the matrix and the
CLI as a user meets it (selection errors, profiles, verdict line, repro exit codes, hypothesis
cache, train's overwrite refusal).

Tests of a third-party target skip with a reason when its package is not installed (the
``thirdparty`` extra installs them); everything else runs everywhere.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from manifold_oracle.conformance.matrix import REPRO_DIR, build_matrix, render_markdown, repro_scripts

def _needs(target: str) -> None:
    """Skip (with the reason) when the target's package is not installed."""
    from manifold_oracle.conformance.adapters import resolve_target
    from manifold_oracle.reference.errors import NotAvailableError

    try:
        resolve_target(target)
    except NotAvailableError as exc:
        pytest.skip(f"{target} not available here (pip install -e '.[thirdparty]'): {exc}")


# -------------------------------------------------------------- conventions, by measurement
#: per target: checks that confirm the declared conventions (must pass) and the defects the
#: issue reports (must fail); quick mode, float32
CONVENTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ptopt_muon": (("spec.orthogonaliser.output", "optimizer.rule.step", "optimizer.rule.trajectory"),
                   ("safety.no_mutation.gradient",)),
    "ptopt_adamuon": (("spec.orthogonaliser.output",), ()),
    "ptopt_normuon": (("spec.orthogonaliser.output",), ("safety.no_mutation.gradient",)),
    "ptopt_scion": (("spec.orthogonaliser.output", "optimizer.step.descent"), ()),
    "ptopt_spectral_sphere": (("spec.orthogonaliser.output",),
                              ("safety.no_mutation.gradient", "optimizer.run.feasibility")),
    "heavyball_muon": (("spec.orthogonaliser.output", "optimizer.step.descent"), ()),
    "heavyball_scion": (("spec.orthogonaliser.output",), ("optimizer.run.lr_zero",)),
    "heavyball_muon_svd": ((), ("spec.orthogonaliser.output",)),
    "optax_muon": (("spec.orthogonaliser.output", "optimizer.rule.step"), ()),
}


@pytest.mark.parametrize("target", sorted(CONVENTIONS))
def test_declared_conventions_hold_and_reported_defects_fail(target: str, tmp_path: Path) -> None:
    _needs(target)
    from manifold_oracle.conformance.runner import run

    ok, bad = CONVENTIONS[target]
    report = run(target, select=list(ok + bad), seed=0, out_dir=tmp_path)
    status = {r.id: r.status for r in report.results}
    for cid in ok:
        assert status[cid] == "pass", (cid, [(r.id, r.status, r.figure, r.measured, r.reason)
                                             for r in report.results if r.id == cid])
    for cid in bad:
        assert status[cid] == "fail", (cid, status[cid])


def test_missing_package_is_not_available_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from manifold_oracle.conformance.conform_cli import main

    monkeypatch.setitem(sys.modules, "heavyball", None)  # import heavyball → ImportError
    assert main(["--target", "heavyball_muon", "--no-progress"]) == 2
    assert "not available" in capsys.readouterr().err


# ------------------------------------------------------------------ standalone reproductions
def _repro_ids() -> list[str]:
    return [p.name for p in repro_scripts()]


@pytest.mark.parametrize("name", [n for n in _repro_ids() if "__distributed." not in n])
def test_standalone_repro_exits_nonzero_while_the_defect_is_present(name: str) -> None:
    # (the distributed family's reproductions launch ranks: their tests live with that family)
    path = REPRO_DIR / name
    _needs(name.split("__", 1)[0])
    src = path.read_text()
    assert "manifold_oracle" not in src  # standalone: the package, torch and numpy only
    cp = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert cp.stdout.strip()  # prints its measured figure


def test_every_repro_names_a_builtin_target_and_a_registered_check() -> None:
    from manifold_oracle.conformance.adapters import BUILTIN_TARGETS
    from manifold_oracle.conformance.checks import all_checks

    ids = {c.id for c in all_checks()}
    for p in repro_scripts():
        target, check = p.stem.split("__", 1)
        assert target in BUILTIN_TARGETS and check in ids, p.name


# ----------------------------------------------------------------------------------- matrix
def test_matrix_rows_cells_and_not_available(tmp_path: Path) -> None:
    doc = build_matrix(["scipy_polar", "no_such_module_xyz:Adapter"], progress=False, run_repros=False)
    rows = {r["target"]: r for r in doc["targets"]}
    assert rows["scipy_polar"]["verdict"] == "conforms" and rows["scipy_polar"]["package"] == "scipy"
    assert rows["scipy_polar"]["families"]["spec"]["pass"] == 4
    assert not rows["no_such_module_xyz:Adapter"]["available"]
    md = render_markdown(doc)
    assert "| `scipy_polar` | scipy |" in md and "not available" in md and "None found." in md
    json.dumps(doc)  # the JSON twin is serialisable


def test_matrix_cli_writes_both_files(tmp_path: Path) -> None:
    from manifold_oracle.conformance.matrix import main

    md = tmp_path / "m.md"
    assert main(["--targets", "scipy_polar", "--md", str(md), "--no-progress", "--skip-repros"]) == 0
    assert md.read_text().startswith("# Conformance matrix")
    assert json.loads(md.with_suffix(".json").read_text())["targets"][0]["target"] == "scipy_polar"
    assert main(["--targets", "scipy_polr", "--md", str(md)]) == 2


# --------------------------------------------------------------------------------- the CLI
def test_unknown_selection_exits_2_with_closest_names(capsys: pytest.CaptureFixture[str]) -> None:
    from manifold_oracle.conformance.conform_cli import main

    assert main(["--target", "scipy_polar", "--select", "spec.polar.isometri", "--no-progress"]) == 2
    assert "did you mean spec.polar.isometry" in capsys.readouterr().err
    assert main(["--target", "scipy_polar", "--select", "nosuch", "--no-progress"]) == 2
    assert main(["--target", "scipy_polar", "--deselect", "safty", "--no-progress"]) == 2
    assert "safety" in capsys.readouterr().err


def test_profiles_command(capsys: pytest.CaptureFixture[str]) -> None:
    from manifold_oracle.conformance.profiles import FIELD_CHOICES, PROFILES
    from manifold_oracle.conformance.profiles_cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PROFILES)
    assert main(["heavyball_muon"]) == 0
    assert "nesterov_form            'grad_plus_ema'" in capsys.readouterr().out
    assert main(["--fields"]) == 0
    out = capsys.readouterr().out
    assert all(" | ".join(map(str, v)) in out for v in FIELD_CHOICES.values())
    assert main(["ptopt_muonn"]) == 2
    assert "did you mean ptopt_muon" in capsys.readouterr().err


BROKEN = '''
from manifold_oracle.conformance.adapters import Adapter


class Broken(Adapter):
    name = "broken-polar"
    profile = "scipy_polar"
    capabilities = frozenset({"polar_factor"})

    def polar_factor(self, X):
        return X.clone() * 2
'''


def test_console_verdict_legend_groups_and_repro_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from manifold_oracle.conformance import repro
    from manifold_oracle.conformance.conform_cli import main

    (tmp_path / "broken_mod.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["--target", "broken_mod:Broken", "--select", "spec.polar", "--no-progress",
                 "--repro-dir", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("VERDICT: broken-polar DOES NOT CONFORM")
    assert "by shape (square/tall/wide) / dtype / condition, worst first" in out
    npz = sorted((tmp_path / "r" / "repro").glob("*.npz"))
    assert npz
    assert repro.main([str(npz[0])]) == 1  # non-zero while the defect is present
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(npz[0].with_suffix(".py")), run_name="__main__")
    assert exc.value.code == 1
    assert not (tmp_path / ".hypothesis").exists()  # hypothesis keeps its files in the cache folder
    # a conforming target: the verdict line and the grade legend
    assert main(["--target", "scipy_polar", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("VERDICT: scipy.linalg.polar CONFORMS")


def test_grade_legend_is_printed_with_grades() -> None:
    from manifold_oracle.conformance.checks.quality import GRADES
    from manifold_oracle.conformance.report import grade_legend

    text = grade_legend()
    assert all(f"{g} ≤ {b:g}" in text for b, g in GRADES) and "E above" in text


def test_train_refuses_to_overwrite_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from manifold_oracle.gpu_impl.train import main, refuse_overwrite

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("{}\n")
    assert main(["--out", str(run_dir), "--steps", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert refuse_overwrite(["--out", str(run_dir), "--overwrite"]) is None
    assert refuse_overwrite([f"--out={tmp_path / 'fresh'}"]) is None
