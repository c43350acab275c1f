"""Per-step cost of FSDP2 MACRO (gpu_impl.fsdp.ShardedOptimizer, 2 gloo ranks) against single-process
MACRO on CPU, and the bytes each collective moves per step.

Run: python docs/measure_fsdp_overhead.py [pairs] [steps]

Model: the "tiny" preset decoder of gpu_impl.model in float32, batch 8 × 64 tokens, MACRO on the
Frobenius sphere (KJ×5 msign in bf16) on the hidden matrices, internal AdamW on the rest. A
"step" is forward + backward + optimizer step. Launches are interleaved (1 process, 2 processes,
1, 2, ...); each launch times ``steps`` steps after 3 warm-up steps and reports its median step time;
the ratio is taken per pair and summarised by its median and range. Bytes: every call of the
torch.distributed collectives is intercepted on rank 0 and the bytes of the tensors it sends are
summed per collective (FSDP2's own all-gathers and reduce-scatters, and ShardedOptimizer's).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import torch


def _count_collectives(counter: dict[str, list[int]]) -> None:
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    def wrap(name: str, nbytes: Any) -> None:
        orig = getattr(c10d, name)

        def f(*a: Any, **k: Any) -> Any:
            counter[name][0] += 1
            counter[name][1] += int(nbytes(*a, **k))
            return orig(*a, **k)

        setattr(c10d, name, f)
        setattr(dist, name, f)

    def tb(t: torch.Tensor) -> int:
        return t.numel() * t.element_size()

    def second(*a: Any, **k: Any) -> int:  # the input tensor, positional or by keyword
        t = a[1] if len(a) > 1 else next(v for key, v in k.items() if key in ("input", "input_tensor"))
        return tb(t)

    wrap("all_gather_into_tensor", second)
    wrap("all_gather_single", second)  # FSDP2's parameter all-gathers
    wrap("reduce_scatter_single", second)  # FSDP2's gradient reduce-scatters
    wrap("all_to_all_single", second)
    wrap("all_reduce", lambda t, *a, **k: tb(t))
    wrap("all_gather", lambda lst, t, *a, **k: tb(t))


def rank_run(payload: dict[str, Any]) -> dict[str, Any]:
    import torch.distributed as dist

    from manifold_oracle.gpu_impl.data import load_corpus, sample_batch
    from manifold_oracle.gpu_impl.optim import MACRO
    from manifold_oracle.gpu_impl.train import TrainConfig, build_model, lm_loss

    cfg = TrainConfig(**payload["cfg"])
    sharded = payload["sharded"]
    counter: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    world, rank = dist.get_world_size(), dist.get_rank()
    corpus = load_corpus(None, max_bytes=cfg.max_corpus_bytes)
    model = build_model(cfg, torch.device("cpu"), torch.float32)
    hidden_ids = {id(p) for _, p in model.hidden_matrices()}
    groups = [{"params": [p for p in model.parameters() if id(p) in hidden_ids], "manifold": "frobenius"},
              {"params": [p for p in model.parameters() if id(p) not in hidden_ids], "manifold": None}]
    kw = dict(lr=0.01, momentum=0.95, adamw_lr=3e-3, adamw_betas=(0.9, 0.95))
    if sharded:
        from torch.distributed.device_mesh import init_device_mesh

        from manifold_oracle.gpu_impl.fsdp import ShardedOptimizer
        from manifold_oracle.gpu_impl.train_fsdp import _shard_model

        mesh = init_device_mesh("cpu", (world,))
        _shard_model(model, mesh)
        hid = dict(model.hidden_matrices())
        groups = [{"params": list(hid.values()), "manifold": "frobenius"},
                  {"params": [p for p in model.parameters() if id(p) not in {id(q) for q in hid.values()}],
                   "manifold": None}]
        opt: Any = ShardedOptimizer(MACRO, groups, mode=payload.get("mode", "auto"), **kw)
    else:
        opt = MACRO(groups, **kw)
    gen = torch.Generator().manual_seed(1)
    local = cfg.batch // world
    times = []
    for step in range(payload["warmup"] + payload["steps"]):
        if step == payload["warmup"] and rank == 0 and sharded:
            _count_collectives(counter)
        x, y = sample_batch(corpus.train, cfg.batch, cfg.seq_len, gen)
        x, y = x[rank * local:(rank + 1) * local], y[rank * local:(rank + 1) * local]
        t0 = time.perf_counter()
        opt.zero_grad()
        lm_loss(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters())
    n_hidden = sum(p.numel() for p in dict(model.hidden_matrices()).values())
    return {"median_s": statistics.median(times[payload["warmup"]:]), "n_params": n_params, "n_hidden": n_hidden,
            "collectives": {k: [c / payload["steps"], b / payload["steps"]] for k, (c, b) in counter.items()}}


def main() -> None:
    from manifold_oracle.gpu_impl.distributed import launch_failure, run_ranks
    from manifold_oracle.gpu_impl.train import TrainConfig

    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    cfg = TrainConfig(batch=8, seq_len=64, out=None, progress=False, threads=1)
    ratios, singles, shards, last = [], [], [], None
    for _ in range(pairs):
        res = {}
        for sharded, world in ((False, 1), (True, 2)):
            outs = run_ranks("measure_fsdp_overhead:rank_run", world,
                             {"cfg": asdict(cfg), "sharded": sharded, "warmup": 3, "steps": steps}, timeout=900)
            if launch_failure(outs):
                raise SystemExit(launch_failure(outs))
            res[sharded] = outs[0].result
        singles.append(res[False]["median_s"])
        shards.append(res[True]["median_s"])
        ratios.append(res[True]["median_s"] / res[False]["median_s"])
        last = res[True]
    assert last is not None
    print(json.dumps({"pairs": pairs, "steps": steps, "single_median_s": statistics.median(singles),
                      "fsdp2_median_s": statistics.median(shards), "ratio_median": statistics.median(ratios),
                      "ratio_min": min(ratios), "ratio_max": max(ratios), "n_params": last["n_params"],
                      "n_hidden": last["n_hidden"],
                      "collectives_rank0_per_step": {k: {"calls": c, "bytes": b, "bytes_per_param": b / last["n_params"]}
                                                     for k, (c, b) in last["collectives"].items()}}, indent=1))


if __name__ == "__main__":
    main()
