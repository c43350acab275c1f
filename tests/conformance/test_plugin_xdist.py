"""The plugin under pytest-xdist (``-n 2``, as the CI recipe runs it): every worker's results
reach the controller, whose JSON report is complete (profile included) and schema-valid."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

pytest.importorskip("xdist", reason="pytest-xdist runs the -n 2 session")


def test_json_report_under_xdist_is_complete_and_valid(pytester: pytest.Pytester) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the report schema")
    from manifold_oracle.conformance.checks import all_checks
    from manifold_oracle.conformance.report import report_schema
    from manifold_oracle.conformance.runner import select_checks

    pytester.makepyfile(test_user="def test_user_own():\n    assert True\n")
    path = pytester.path / "out" / "oracle.json"
    junit = pytester.path / "out" / "junit.xml"
    r = pytester.runpytest_subprocess("-n", "2", "-q", "-p", "no:cacheprovider", "--oracle-target=scipy_polar",
                                      "--oracle-select=spec", f"--oracle-json={path}", f"--junitxml={junit}")
    expected = [c.id for c in select_checks(all_checks(), ["spec"], (), "quick")]
    assert r.ret == 0, r.stdout.str()
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, report_schema())
    assert doc["profile"]["name"] == "scipy_polar" and doc["adapter"] == "scipy.linalg.polar"
    assert [c["id"] for c in doc["checks"]] == expected  # every check, in registry order
    assert doc["summary"]["counts"].get("pass", 0) == 4
    assert 'classname="manifold-oracle.spec"' in junit.read_text()
