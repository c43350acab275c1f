"""DDP: 2 CPU processes on gloo hold identical weights and match the single-process run.

Both runs train the "tiny" model in float64 with a float64 Newton–Schulz msign (``msign_dtype=
"param"``): MACRO on the Frobenius sphere for the hidden matrices, its internal AdamW for the
embedding and LM head. Each rank draws the same global batch and keeps its half; DDP averages the
gradients, so the 2-rank run is the single-process run on the same global batch up to the
rounding of the gradient reduction.

Tolerance of the single-process comparison (error model, float64, u = 2⁻⁵³):

* gradient: the same per-token terms summed in a different order (two half-batch means averaged
  vs one full mean over N = batch·seq_len tokens): |δg| ≤ γ_N·Σ|terms| ≈ N·u·g_max entrywise,
  with g_max ≤ 1 here (cross-entropy gradients of O(1) logits);
* MACRO part: the step is lr·P(msign(P(M))) with a 5-step KJ polynomial; the polynomial's
  slope is at most p'(0) = a = 3.4445 per step on the normalised input, so a relative input
  perturbation grows by ≤ a⁵ ≈ 486 per optimizer step: |δW| ≤ lr·a⁵·N·u per step;
* AdamW part: m̂/(√v̂ + ε) has slope ≤ 1/ε in g, so |δW| ≤ lr_adam·N·u·g_max/ε per step;
* after K steps the differences add up (first-order, the Lipschitz growth of the training
  dynamics over a few steps is ≤ e^{K·lr·L} ≈ 1 at these learning rates; a factor 4 covers it).

tol = 4·K·N·u·(lr·a⁵ + lr_adam/ε). With K = 4, N = 8·32 = 256, lr = 0.05, lr_adam = 3e-3,
ε = 1e-8: tol ≈ 4·4·256·1.1e-16·(24.3 + 3e5) ≈ 1.4e-7. A DDP bug (no averaging: doubled
gradients, or ranks on different data) changes the weights by ~lr = 1e-2 and fails by 5 orders
of magnitude.
"""

from __future__ import annotations

import pytest
import torch

from manifold_oracle.gpu_impl.distributed import spawn_training
from manifold_oracle.gpu_impl.train import TrainConfig, build_model, run_training

K, B, T = 4, 8, 32
LR, LR_ADAM, EPS_ADAM = 0.05, 3e-3, 1e-8
U64 = 2.0 ** -53
A_KJ = 3.4445
TOL = 4 * K * (B * T) * U64 * (LR * A_KJ**5 + LR_ADAM / EPS_ADAM)


def _cfg() -> TrainConfig:
    return TrainConfig(optimizer="macro-frobenius", steps=K, batch=B, seq_len=T, lr=LR, adam_lr=LR_ADAM,
                       dtype="float64", msign_dtype="param", seed=3, val_every=K, val_batches=1,
                       diag_every=K, max_corpus_bytes=200_000, out=None, progress=False, threads=1)


@pytest.mark.slow
def test_ddp_two_ranks_identical_and_match_single_process() -> None:
    ranks = spawn_training(_cfg(), world_size=2)
    single = run_training(_cfg())
    s0, s1 = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert set(s0) == set(single.state_dict) and len(s0) > 10
    worst = 0.0
    for k, w in single.state_dict.items():
        assert w.dtype == torch.float64
        # all ranks hold bit-identical weights (same all-reduced buffer, deterministic step)
        assert torch.equal(s0[k], s1[k]), k
        worst = max(worst, float((s0[k] - w).abs().max()))
    assert worst <= TOL, (worst, TOL)
    # the runs really moved (the comparison is not between two untouched initialisations)
    init = build_model(_cfg(), torch.device("cpu"), torch.float64).state_dict()
    moved = max(float((single.state_dict[k] - init[k]).abs().max()) for k in init)
    assert moved > 1e3 * TOL
    # logged global-batch training losses agree (rank 0 all-reduces the loss)
    l_ddp = [r["train_loss"] for r in ranks[0]["records"] if "train_loss" in r]
    l_one = [r["train_loss"] for r in single.records if "train_loss" in r]
    assert len(l_ddp) == len(l_one) == K
    assert max(abs(a - b) for a, b in zip(l_ddp, l_one)) <= 1e-9
