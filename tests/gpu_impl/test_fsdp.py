"""FSDP2: gpu_impl MACRO/MuonH/SSO/MuonBall through ``ShardedOptimizer`` on 2 and 4 gloo ranks.

Each launch runs its ranks as subprocesses (``run_ranks``: one timeout per launch, every rank's
process group killed on failure). Parameters: an uneven 33×8 (17/16 rows on 2 ranks), a 1-row
1×16, a 3×5 smaller than 4 ranks (one rank holds no row), an even 16×16 kept replicated (a plain
tensor outside ``fully_shard``), a 40×24 and a 1-D vector (AdamW). Fixed gradients from a seeded
generator; the whole weights after every step are compared with the same optimizer in one
process (no torch.distributed).

Error model of the comparison: gathering and scattering are copies, and the whole-matrix update
is the same code on the same bits. The only admissible difference is the GEMM summation order
when equal-shape matrices are batched differently (owners split buckets): per Newton–Schulz
product a relative γ_n ≈ n·u, amplified by at most a⁵ ≈ 486 over the 5 KJ steps (a = p'(0) =
3.4445), times an update size ≤ lr·‖D‖_max ≤ lr, summed over K steps:
tol = K·lr·a⁵·5·n_max·u. float64 (u = 2⁻⁵³): 3·0.05·486·5·40·1.1e-16 ≈ 1.6e-12; bf16 weights
with a bf16 msign: a different rounding flips at most one bf16 ulp of a weight per step:
tol = K·2⁻⁷·max|W| (u_bf16 = 2⁻⁸, 2 ulp). Measured: 0 in every case (bit-identical), so the
tightness is ∞; a per-shard msign or a lost shard row moves the weights by ~lr = 5e-2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from manifold_oracle.gpu_impl import optim
from manifold_oracle.gpu_impl.distributed import launch_failure, run_ranks
from manifold_oracle.gpu_impl.fsdp import chunk_rows, fixed_gradients

HERE = Path(__file__).parent
SHAPES = [(33, 8), (1, 16), (3, 5), (16, 16), (40, 24), (7,)]
REPLICATED = [3]
K, LR, SEED = 3, 0.05, 11
A5, NMAX = 3.4445**5, 40
TOL64 = K * LR * A5 * 5 * NMAX * 2.0**-53
FACTORY = "manifold_oracle.gpu_impl.fsdp:gpu_impl_factory"

RUNS_2 = [
    dict(optimizer="MACRO", lr=LR, ns_dtype=None, owner_min_numel=300),  # both gather modes
    dict(optimizer="MACRO", lr=LR, ns_dtype=None, manifold="spectral", theta="power", mode="owner"),
    dict(optimizer="MACRO", lr=LR, ns_dtype=None, manifold="spectral", mode="owner"),  # certified Θ (default)
    dict(optimizer="MuonH", lr=LR, ns_dtype=None, mode="allgather"),
    dict(optimizer="SSO", lr=LR, ns_dtype=None, owner_min_numel=300),
    dict(optimizer="MuonBall", lr=LR, ns_dtype=None, mode="owner"),
    dict(optimizer="MACRO", lr=LR, ns_dtype="bfloat16", owner_min_numel=300, _dtype="bfloat16"),
]
RUNS_4 = [dict(optimizer="MACRO", lr=LR, ns_dtype=None, owner_min_numel=300),
          dict(optimizer="MuonH", lr=LR, ns_dtype=None, mode="owner")]


@pytest.fixture
def targets_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def _payload(hyper: dict[str, Any]) -> dict[str, Any]:
    h = dict(hyper)
    dtype = h.pop("_dtype", "float64")
    return dict(factory=FACTORY, hyper=h, shapes=SHAPES, replicated=REPLICATED, steps=K, seed=SEED, dtype=dtype)


def _single(hyper: dict[str, Any]) -> list[list[torch.Tensor]]:
    h = dict(hyper)
    dtype = getattr(torch, h.pop("_dtype", "float64"))
    name = h.pop("optimizer")
    for k in ("mode", "owner_min_numel"):
        h.pop(k, None)
    w0, grads = fixed_gradients(SHAPES, K, SEED, dtype)
    ps = [torch.nn.Parameter(w.clone()) for w in w0]
    opt = getattr(optim, name)(ps, **h)
    hist = [[p.detach().double().clone() for p in ps]]
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g.clone()
        opt.step()
        hist.append([p.detach().double().clone() for p in ps])
    return hist


def _compare(world: int, hypers: list[dict[str, Any]], runs: list[dict[str, Any]], outs: list[Any]) -> None:
    for hyper, run in zip(hypers, runs):
        single = _single(hyper)
        bf16 = hyper.get("_dtype") == "bfloat16"
        for t, (got, want) in enumerate(zip(run["history"], single)):
            for i, (a, b) in enumerate(zip(got, want)):
                tol = K * 2.0**-7 * float(b.abs().max()) if bf16 else TOL64
                err = float((a - b).abs().max())
                assert err <= tol, (world, hyper, t, SHAPES[i], err, tol)
        moved = max(float((a - b).abs().max()) for a, b in zip(single[-1], single[0]))
        assert moved > 1e-3, hyper  # the runs really moved
    # every rank holds the same whole weights (replicated parameters included) and its own rows
    for r, out in enumerate(outs):
        got_runs = out["runs"]
        for run0, run_r in zip(runs, got_runs):
            assert all(torch.equal(a, b) for h0, hr in zip(run0["history"], run_r["history"]) for a, b in zip(h0, hr))
        rows = got_runs[0]["rows"]
        for i, s in enumerate(SHAPES):
            lo, hi = (0, s[0]) if i in REPLICATED else chunk_rows(s[0], world, r)
            assert rows[i] == hi - lo, (r, i, rows[i])


@pytest.mark.slow
def test_fsdp_two_ranks_equal_single_process() -> None:
    outs = run_ranks("manifold_oracle.gpu_impl.fsdp:sharded_fixed_run", 2,
                     {"runs": [_payload(h) for h in RUNS_2]}, timeout=900)
    assert launch_failure(outs) is None, launch_failure(outs)
    res = [o.result for o in outs]
    _compare(2, RUNS_2, res[0]["runs"], res)


@pytest.mark.slow
def test_fsdp_four_ranks_equal_single_process_and_errors(targets_on_path: None) -> None:
    payload = {"runs": [_payload(h) for h in RUNS_4]}
    outs = run_ranks("fsdp_targets:four", 4, payload, timeout=900)
    assert launch_failure(outs) is None, launch_failure(outs)
    res = [o.result for o in outs]
    _compare(4, RUNS_4, res[0]["runs"], res)
    for o in res:
        e = o["errors"]
        # a NaN in one rank's shard: every rank raises (or skips); no weight changed anywhere
        assert e["raise"] == "InvalidInputError" and e["raise_unchanged"], e
        assert e["skip"] == "skipped" and e["skip_unchanged"], e
        assert "1-D device meshes" in e["mesh2d"] and "Shard(dim=1)" in e["shard1"], e
        assert "mode must be one of" in e["mode"]
        n = e["ns_dtype"]  # default "auto": concrete in the group and the state dict; loading replaces it
        assert n[0] == n[1] == n[2] in ("bfloat16", "float32") and n[3] == "float64", n


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_dying_rank_is_reported_and_no_process_left(targets_on_path: None) -> None:
    # generous timeout: the launch ends as soon as rank 1 dies (rank 0 is then killed, not timed out)
    outs = run_ranks("fsdp_targets:die_on_rank1", 2, {}, timeout=900)
    msg = launch_failure(outs)
    assert msg is not None and "rank 1 died from SIGKILL" in msg, msg
    assert outs[0].killed_by_launcher and outs[0].signal == "SIGKILL" and not outs[0].timed_out
    assert all(_gone(o.pid) for o in outs)


@pytest.mark.slow
def test_hanging_ranks_time_out_and_are_killed(targets_on_path: None) -> None:
    outs = run_ranks("fsdp_targets:hang", 2, {}, timeout=5)
    msg = launch_failure(outs)
    assert msg is not None and "timed out" in msg, msg
    assert all(o.timed_out and o.signal == "SIGKILL" for o in outs)
    assert all(_gone(o.pid) for o in outs)


def test_exit_rank_flushes_and_keeps_the_status() -> None:
    # exit_rank skips the interpreter's teardown (os._exit): what a rank printed without a newline
    # must still reach the pipe, and the status must be the one asked for
    import subprocess
    import sys

    code = ("import sys; from manifold_oracle.gpu_impl.distributed import exit_rank; "
            "print('summary', end=''); print('warn', end='', file=sys.stderr); exit_rank(3)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block-buffered pipes
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert (cp.returncode, cp.stdout, cp.stderr) == (3, "summary", "warn")
