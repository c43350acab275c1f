"""The pytest plugin behaves like pytest items (issue 13 item 3), run through ``pytester``.

The target is a small adapter written in the test's own directory (as a user would): a polar
factor from torch's SVD that conforms, and a broken one (returns X) that must fail. The checks of
the ``scipy_polar`` profile run in well under a second, so each inner session is cheap.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]


def _preload() -> None:
    """Import what an inner session imports: pytester restores sys.modules after each in-process
    run, and numpy/scipy extension modules cannot be loaded twice in one process."""
    import scipy.linalg  # noqa: F401

    import manifold_oracle.conformance.matrix  # noqa: F401
    import manifold_oracle.conformance.report  # noqa: F401
    from manifold_oracle.conformance.checks import all_checks
    from manifold_oracle.conformance.info import collect

    all_checks()
    collect()


_preload()

ADAPTER = '''
import torch
from manifold_oracle.conformance.adapters import Adapter


class Good(Adapter):
    name = "svd-polar"
    profile = "scipy_polar"
    capabilities = frozenset({"polar_factor"})

    def polar_factor(self, X):
        U, _, Vh = torch.linalg.svd(X.double(), full_matrices=False)
        return U @ Vh


class Bad(Good):
    name = "broken-polar"

    def polar_factor(self, X):
        return X.clone() * 2
'''

N_POLAR = 4  # spec.polar.{isometry, reconstruction, agrees_with_msign_on_range, zero_input}


@pytest.fixture
def tdir(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(myadapters=ADAPTER)
    pytester.syspathinsert()
    pytester.makepyfile(test_user="def test_user_own():\n    assert 1 + 1 == 2\n")
    return pytester


def test_collect_only_counts_items_with_selectable_node_ids(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("--collect-only", "-q", "--oracle-target=myadapters:Good", "--oracle-select=spec.polar")
    r.assert_outcomes()
    out = r.stdout.str()
    assert "manifold-oracle/spec::spec.polar.isometry" in out
    assert f"{N_POLAR + 1} tests collected" in out  # the user's test and the 4 checks


def test_node_id_on_the_command_line_selects_one_check(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("-q", "--oracle-target=myadapters:Good", "manifold-oracle/spec::spec.polar.isometry")
    r.assert_outcomes(passed=1)
    r = tdir.runpytest("-q", "--oracle-target=myadapters:Good", "--oracle-select=spec.polar",
                       "manifold-oracle/spec", "test_user.py")
    r.assert_outcomes(passed=N_POLAR + 1)


def test_k_and_marker(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("-q", "--strict-markers", "--oracle-target=myadapters:Good", "--oracle-select",
                       "spec.polar", "-k", "isometry or reconstruction")
    r.assert_outcomes(passed=2, deselected=N_POLAR - 2 + 1)
    r = tdir.runpytest("-q", "--strict-markers", "--oracle-target=myadapters:Good", "--oracle-select",
                       "spec.polar", "-m", "oracle")
    r.assert_outcomes(passed=N_POLAR, deselected=1)
    r = tdir.runpytest("--markers")
    assert "@pytest.mark.oracle" in r.stdout.str()


def test_last_failed_reruns_only_the_failures(tdir: pytest.Pytester) -> None:
    args = ["-q", "-p", "cacheprovider", "--oracle-target=myadapters:Bad", "--oracle-select=spec.polar"]
    first = tdir.runpytest(*args)
    outcomes = first.parseoutcomes()
    n_failed = outcomes.get("failed", 0)
    assert 0 < n_failed < N_POLAR + 1, outcomes  # the broken factor fails some checks, the user test passes
    again = tdir.runpytest(*args, "--lf")
    again.assert_outcomes(failed=n_failed, deselected=N_POLAR + 1 - n_failed)
    ff = tdir.runpytest(*args, "--ff")
    lines = [ln for ln in ff.stdout.lines if "FAILED" in ln]
    assert len(lines) == n_failed


def test_failure_message_and_junit_names(tdir: pytest.Pytester) -> None:
    junit = tdir.path / "out.xml"
    r = tdir.runpytest("-q", "--oracle-target=myadapters:Bad", "--oracle-select=spec.polar.isometry",
                       f"--junitxml={junit}")
    r.assert_outcomes(failed=1, passed=1)
    out = r.stdout.str()
    assert "spec.polar.isometry" in out and "bound" in out
    xml = junit.read_text()
    assert 'classname="manifold-oracle.spec"' in xml and 'name="spec.polar.isometry"' in xml
    assert 'classname=".manifold-oracle' not in xml


def test_unknown_selection_is_a_usage_error_with_suggestions(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("--oracle-target=myadapters:Good", "--oracle-select=spec.polar.isometri")
    assert r.ret == 2  # as `conform`: the harness could not run
    assert "did you mean spec.polar.isometry" in r.stderr.str()
    r = tdir.runpytest("--oracle-target=myadapters:Good", "--oracle-select=nosuch.check")
    assert r.ret == 2 and "matches no check" in r.stderr.str()


def test_unavailable_target_stops_the_session(tdir: pytest.Pytester) -> None:
    r = tdir.runpytest("--oracle-target=no_such_module_xyz:Adapter")
    assert r.ret == 2 and "not available" in r.stderr.str()


def test_json_report_is_complete_and_schema_valid(tdir: pytest.Pytester) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the report schema")
    from manifold_oracle.conformance.report import report_schema

    path = tdir.path / "rep" / "oracle.json"
    r = tdir.runpytest("-q", "--oracle-target=myadapters:Bad", "--oracle-select=spec.polar",
                       f"--oracle-json={path}")
    assert r.ret == 1
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, report_schema())
    assert doc["profile"]["name"] == "scipy_polar"
    assert sorted(c["id"] for c in doc["checks"]) == sorted(
        ["spec.polar.isometry", "spec.polar.reconstruction", "spec.polar.agrees_with_msign_on_range",
         "spec.polar.zero_input"])
    assert doc["summary"]["ok"] is False and doc["summary"]["exit_code"] == 1


def test_fixture_in_users_own_tests(tdir: pytest.Pytester) -> None:
    tdir.makepyfile(test_fixture='''
from myadapters import Bad, Good


def test_good(manifold_oracle):
    report = manifold_oracle(Good(), select=["spec.polar"])
    assert report.ok and report.counts["pass"] == 4


def test_bad(manifold_oracle):
    manifold_oracle(Bad(), select=["spec.polar"])
''')
    r = tdir.runpytest("-q", "test_fixture.py")
    r.assert_outcomes(passed=1, failed=1)
    assert "DOES NOT CONFORM" in r.stdout.str()
