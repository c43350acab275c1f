"""``manifold-oracle train --nproc``: FSDP2 training on 2 gloo processes, checkpoint, resume at 1 and 4.

The run (tiny preset, float64, float64 msign, MACRO on the Frobenius sphere, K = 4 steps) is
launched through the CLI with a distributed checkpoint every 2 steps. Then the step-2 checkpoint
is resumed at 1 and at 4 processes (``run_ranks``, one timeout per launch).

Tolerance (error model of tests/gpu_impl/test_ddp.py, float64, u = 2⁻⁵³): runs on different
numbers of ranks differ only in the summation order of the gradient reduction (N = batch·seq_len
tokens: |δg| ≤ N·u·g_max, g_max ≤ 1), amplified per step by at most lr·a⁵ in MACRO (a = 3.4445,
5 KJ steps) and lr_adam/ε in AdamW: tol = 4·K·N·u·(lr·a⁵ + lr_adam/ε) ≈ 1.4e-7. The AdamW
1/ε slope is the worst case (entries whose second moment is ~0); the measured differences are
~4e-16 (see the report). A lost optimizer state, a wrong step counter or a different batch changes
the weights by ~lr·(1 − β) ≥ 2.5e-3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from manifold_oracle.gpu_impl.distributed import launch_failure, run_ranks
from manifold_oracle.gpu_impl.train import TrainConfig, run_training

K, B, T = 4, 8, 32
LR, LR_ADAM, EPS_ADAM = 0.05, 3e-3, 1e-8
TOL = 4 * K * (B * T) * 2.0**-53 * (LR * 3.4445**5 + LR_ADAM / EPS_ADAM)
ARGS = ["--optimizer", "macro-frobenius", "--steps", str(K), "--batch", str(B), "--seq-len", str(T),
        "--lr", str(LR), "--adam-lr", str(LR_ADAM), "--dtype", "float64", "--msign-dtype", "param",
        "--seed", "3", "--val-every", "2", "--val-batches", "1", "--max-corpus-bytes", "200000",
        "--threads", "1", "--no-progress"]


def _cfg(out: str | None = None) -> TrainConfig:
    return TrainConfig(optimizer="macro-frobenius", steps=K, batch=B, seq_len=T, lr=LR, adam_lr=LR_ADAM,
                       dtype="float64", msign_dtype="param", seed=3, val_every=2, val_batches=1,
                       max_corpus_bytes=200_000, out=out, progress=False, threads=1)


def _load_model(ckpt: Path, tmp: Path) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(str(ckpt), str(tmp / "flat.pt"))
    flat = torch.load(tmp / "flat.pt", weights_only=False)
    return {k[len("model."):]: v for k, v in flat.items() if k.startswith("model.")}


@pytest.mark.slow
def test_train_nproc_checkpoint_resumes_at_1_and_4(tmp_path: Path) -> None:
    out, ck = tmp_path / "run", tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "manifold_oracle.conformance.cli", "train", "--nproc", "2", *ARGS, "--out", str(out),
           "--checkpoint-dir", str(ck), "--checkpoint-every", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:  # never leave the launcher's group (torchrun, workers) behind
        os.killpg(proc.pid, signal.SIGTERM)  # torchrun stops its workers on SIGTERM
        try:
            proc.communicate(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert "on 2 processes (FSDP2)" in stdout
    # outputs written once (rank 0): one record per step plus the initial validation
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == list(range(K + 1))
    assert json.loads((out / "config.json").read_text())["resolved"]["world_size"] == 2
    assert sorted(p.name for p in ck.iterdir()) == ["step_2", "step_4"]
    final2 = _load_model(ck / "step_4", tmp_path)
    # the checkpoint names the run's msign dtype ("param": the float64 parameter dtype)
    assert torch.load(tmp_path / "flat.pt", weights_only=False)["ns_dtype"] == "param"
    single = run_training(_cfg())
    init = {k: v.clone() for k, v in single.state_dict.items()}
    worst_single = max(float((final2[k] - single.state_dict[k]).abs().max()) for k in init)
    assert worst_single <= TOL, (worst_single, TOL)
    l1 = [r["train_loss"] for r in single.records if "train_loss" in r]
    assert max(abs(a - b) for a, b in zip([r["train_loss"] for r in recs if "train_loss" in r], l1)) <= 1e-9
    for world in (1, 4):
        # at 1 process the resumed run asks for --msign-dtype auto: the checkpoint's dtype must win
        # (bf16 or fp32 Newton–Schulz would move the weights by ≫ TOL)
        cfg = asdict(_cfg()) | ({"msign_dtype": "auto"} if world == 1 else {})
        outs = run_ranks("manifold_oracle.gpu_impl.train_fsdp:rank_entry", world,
                         {"cfg": cfg, "resume": str(ck / "step_2")}, timeout=900)
        assert launch_failure(outs) is None, launch_failure(outs)
        res = outs[0].result
        assert [r["step"] for r in res["records"]] == [3, 4]  # continues at step 3
        worst = max(float((res["state_dict"][k] - final2[k]).abs().max()) for k in final2)
        assert worst <= TOL, (world, worst, TOL)
        # every rank ends with the same whole weights
        for o in outs[1:]:
            assert all(torch.equal(o.result["state_dict"][k], res["state_dict"][k]) for k in final2)


def test_train_nproc_refuses_other_optimizers() -> None:
    from manifold_oracle.gpu_impl.train_fsdp import main_nproc

    assert main_nproc(["--nproc", "2", *ARGS[2:], "--optimizer", "muon"]) == 2
    assert main_nproc(["--nproc", "3", *ARGS]) == 2  # batch 8 not divisible by 3
