"""The console entry point: --version, info, and unknown commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from manifold_oracle.conformance.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manifold_oracle.conformance.cli", *args], capture_output=True, text=True, timeout=300)


def test_version():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("manifold-oracle ")


def test_info_json_lists_every_dependency():
    p = run("info", "--json")
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    for dep in ("numpy", "scipy", "mpmath", "torch", "cvxpy", "clarabel", "scs", "hypothesis"):
        assert rec["versions"][dep], dep
    assert rec["float64"]["unit_roundoff"] == 2.0**-53
    assert "cpu" in rec["torch"]["devices"]


def test_unknown_command_exits_2(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:  # argparse reports the bad choice
        main(["frobnicate"])
    assert info.value.code == 2
