"""The worked example of docs/conformance.md runs as documented."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_docs_worked_example_passes_and_misdeclared_profile_fails() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import my_muon_oracle as ex

        from manifold_oracle.conformance.runner import run

        good = run(ex.MyMuonAdapter, mode="quick", seed=0)
        assert good.exit_code == 0, [(r.id, r.status, r.reason) for r in good.results if r.status in ("fail", "error")]
        # the example's overflow-safe norm keeps the whole finite fp32 range (issue 12 item 5)
        assert {r.id: r.status for r in good.results}["safety.extreme_scale"] == "pass"
        bad = run(ex.MyMuonAdapterWrongProfile, mode="quick", seed=0, select=["optimizer.step.one"])
        assert bad.exit_code == 1 and bad.results[0].status == "fail"
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("my_muon_oracle", None)
