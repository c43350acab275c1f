"""Packaging: what a wheel installs and whether it runs outside the source checkout.

* the wheel's top level is only ``manifold_oracle/`` and its dist-info, with the schemas and the
  golden corpus inside the package;
* installed into a fresh venv (``--system-site-packages`` so torch and friends are reused,
  ``pip install --no-deps``), ``manifold-oracle conform --json`` and ``manifold-oracle theory
  --json`` run from an unrelated directory and their reports validate against the shipped schemas;
* a user project with its own ``reference``, ``conformance`` and ``bench`` packages runs the CLI
  and the pytest plugin without a name clash.

The wheel is built from a copy of the sources, so the shared checkout gets no ``build/`` churn.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema  # the [test] extra: an independent validator of the shipped schemas
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "gpu_impl", "conformance", "theory_checks", "bench")
#: package data every installed CLI needs (relative to site-packages)
DATA = ("manifold_oracle/conformance/schemas/report_schema.json",
        "manifold_oracle/theory_checks/schemas/theory_schema.json",
        "manifold_oracle/reference/data/golden_v1.json",
        "manifold_oracle/reference/data/golden_v1.json.sha256")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode in ok, f"{cmd} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in ("manifold_oracle", *PACKAGES):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
          str(src)], cwd=src)
    (whl,) = out.glob("manifold_oracle-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; the interpreter's pip (a system package) installs it."""
    env_dir = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], cwd=env_dir)
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=env_dir)
    return env_dir


def _site_packages(venv: Path) -> Path:
    (sp,) = venv.glob("lib/python3*/site-packages")
    return sp


def test_shipped_report_schema_knows_every_check_family() -> None:
    """A new check family must be added to the shipped schema, or every full report is invalid."""
    from manifold_oracle.conformance.checks import all_checks
    from manifold_oracle.conformance.report import report_schema

    check = report_schema()["$defs"]["check"]["properties"]
    families = {c.family for c in all_checks()}
    assert families == set(check["family"]["enum"])
    for fam in families:
        jsonschema.validate(f"{fam}.x", check["id"])


def test_wheel_top_level_is_one_namespace_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert top == {"manifold_oracle", f"{wheel.name.split('-py3')[0]}.dist-info"}, sorted(top)
    for pkg in PACKAGES:
        assert f"manifold_oracle/{pkg}/__init__.py" in names, pkg
    for path in DATA:
        assert path in names, path
    assert not any(n.startswith("manifold_oracle/docs/") for n in names)
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "manifold-oracle = manifold_oracle.conformance.cli:main" in eps
    assert "manifold_oracle.conformance.plugin = manifold_oracle.conformance.plugin" in eps


def test_wheel_install_runs_conform_and_theory_json(venv: Path, tmp_path: Path) -> None:
    py, cli = venv / "bin" / "python", venv / "bin" / "manifold-oracle"
    sp = _site_packages(venv)
    where = _run([str(py), "-c", "import manifold_oracle.conformance as c, manifold_oracle.theory_checks.schema as s;"
                  "print(c.__file__); print(s.SCHEMA_PATH)"], cwd=tmp_path).stdout.split()
    for path in where:  # the installed copy, not the editable checkout
        assert Path(path).resolve().is_relative_to(sp.resolve()), (path, sp)
    # exit 1 (a check failed) is a verdict on the code, not on the packaging: the installed wheel must
    # give exactly the verdicts of the source checkout, and no check may fail to run (status error)
    wheel_rc = _run([str(cli), "conform", "--json", "conform.json", "--no-progress"], cwd=tmp_path, ok=(0, 1))
    (tmp_path / "checkout").mkdir()
    src_rc = _run([sys.executable, "-c", "import sys; from manifold_oracle.conformance.cli import main; "
                   "sys.exit(main())", "conform", "--json", "conform.json", "--no-progress"],
                  cwd=tmp_path / "checkout", ok=(0, 1))
    verdicts = [{c["id"]: c["status"] for c in json.loads((d / "conform.json").read_text())["checks"]}
                for d in (tmp_path, tmp_path / "checkout")]
    assert verdicts[0] == verdicts[1] and wheel_rc.returncode == src_rc.returncode
    assert "error" not in verdicts[0].values(), verdicts[0]
    _run([str(cli), "theory", "--claim", "G-3", "S-2", "--json", "theory.json"], cwd=tmp_path)
    for report, schema in (("conform.json", DATA[0]), ("theory.json", DATA[1])):
        doc = json.loads((tmp_path / report).read_text(encoding="utf-8"))
        jsonschema.validate(doc, json.loads((sp / schema).read_text(encoding="utf-8")))
    assert [c["id"] for c in json.loads((tmp_path / "theory.json").read_text())["claims"]] == ["G-3", "S-2"]
    # a benchmark has no docs/ to write into outside a checkout: a typed error, exit 2, nothing written
    proc = _run([str(cli), "bench", "exact", "--quick"], cwd=tmp_path, ok=(2,))
    assert "NotAvailableError" not in proc.stderr and "pass --out FILE" in proc.stderr
    assert not (sp / "manifold_oracle" / "docs").exists() and not (tmp_path / "docs").exists()


def test_user_project_with_clashing_package_names(venv: Path, tmp_path: Path) -> None:
    """Its own ``reference``, ``conformance`` and ``bench`` shadow nothing of ours (cwd on sys.path)."""
    for pkg in ("reference", "conformance", "bench"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(f'WHO = "user {pkg}"\n')
    (tmp_path / "test_user.py").write_text(
        "import bench, conformance, reference\n\n\n"
        "def test_own_packages() -> None:\n"
        "    assert (reference.WHO, conformance.WHO, bench.WHO) == "
        "('user reference', 'user conformance', 'user bench')\n")
    py, cli = venv / "bin" / "python", venv / "bin" / "manifold-oracle"
    out = _run([str(cli), "conform", "--quick", "--no-progress", "--select", "spec"], cwd=tmp_path).stdout
    assert " pass" in out and "spec.orthogonaliser" in out  # exit 0: every selected check passed
    # python -m puts the project first on sys.path. The plugin is loaded by its entry point and named
    # again with -p: the two must not register it twice (the entry point is named like the module)
    proc = _run([str(py), "-m", "pytest", "--oracle-target=gpu_impl", "-v", "-p", "no:cacheprovider",
                 "--oracle-select", "spec", "-p", "manifold_oracle.conformance.plugin"], cwd=tmp_path)
    assert "test_user.py::test_own_packages PASSED" in proc.stdout, proc.stdout[-3000:]
    passed = [ln for ln in proc.stdout.splitlines() if "manifold-oracle" in ln and "PASSED" in ln]
    assert len(passed) >= 2, proc.stdout[-3000:]
