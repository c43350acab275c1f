"""Meta-tests of the ``distributed`` check family (2 gloo ranks, the "edge" matrix set; each launch
has a timeout).

A correct target (gpu_impl MACRO through ``ShardedOptimizer``) passes every check; a per-shard
orthogonaliser fails ``whole_matrix_msign`` and ``matches_single_process``; a rank-divergent
optimizer fails ``rank_agreement``; a rank killed by SIGKILL fails with its signal, not a hang.
"""

from __future__ import annotations

import pytest

import distributed_zoo as Z
from manifold_oracle.conformance.runner import run

CHECKS = ["distributed.fsdp.matches_single_process", "distributed.fsdp.whole_matrix_msign",
          "distributed.fsdp.rank_agreement"]


@pytest.fixture(autouse=True)
def _two_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MO_DISTRIBUTED_WORLDS", "2")
    monkeypatch.setenv("MO_DISTRIBUTED_SETS", "edge")


def _results(target: object, checks: list[str] = CHECKS) -> dict:
    return {r.id: r for r in run(target, mode="quick", seed=0, select=checks).results}


@pytest.mark.slow
def test_correct_sharded_target_passes() -> None:
    res = _results("gpu_impl_fsdp2")
    assert [res[c].status for c in CHECKS] == ["pass"] * 3, [(c, res[c].status, res[c].reason) for c in CHECKS]


@pytest.mark.slow
def test_per_shard_orthogonalisation_fails() -> None:
    res = _results(Z.PerShardMuon)
    for c in ("distributed.fsdp.whole_matrix_msign", "distributed.fsdp.matches_single_process"):
        assert res[c].status == "fail", (c, res[c].status, res[c].measured)
        assert res[c].measured > res[c].tolerance["bound"]
    # ranks still agree: the defect is the orthogonalisation, not a drift
    assert res["distributed.fsdp.rank_agreement"].status == "pass"


@pytest.mark.slow
def test_rank_divergence_fails() -> None:
    res = _results(Z.RankDivergentMACRO, CHECKS[1:])  # neither needs the 1-process launch
    r = res["distributed.fsdp.rank_agreement"]
    assert r.status == "fail" and r.measured > 0, (r.status, r.measured)
    assert res["distributed.fsdp.whole_matrix_msign"].status == "pass"


@pytest.mark.slow
def test_dying_rank_fails_with_its_signal() -> None:
    res = _results(Z.DyingMACRO)
    for c in CHECKS:  # the 2-rank launch fails first: the 1-process launch is not attempted
        assert res[c].status == "fail", (c, res[c].status)
    text = str(res[CHECKS[0]].details.get("crash"))
    assert "rank 1 died from SIGKILL" in text, text
