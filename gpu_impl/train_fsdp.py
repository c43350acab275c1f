"""``manifold-oracle train --nproc N``: the training run of :mod:`gpu_impl.train` on N processes with FSDP2.

The launcher (:func:`main_nproc`) starts ``python -m torch.distributed.run --nproc_per_node N``
(``--standalone`` on this machine; for several nodes run ``torchrun`` yourself, see
docs/distributed.md) with this module as the entry point. Each rank:

* builds the same model (same seed), shards every decoder block and then the root with
  ``fully_shard`` on a 1-D mesh of all ranks (gloo on CPU, NCCL on CUDA);
* steps MACRO (``--optimizer macro-*``) through :class:`gpu_impl.fsdp.ShardedOptimizer`: whole-
  matrix msign, internal AdamW on the local shards of the other parameters;
* draws the same global batch from ``torch.Generator(seed + 1)`` and keeps its contiguous
  ``batch / N`` rows (FSDP2 averages the gradients), so the run is the single-process run on the
  same global batch up to the rounding of the gradient reduction;
* writes nothing unless it is rank 0: ``config.json``, ``metrics.jsonl`` (step, lr, train_loss
  (global mean), grad_norm (global), tokens, time_s, val_loss) and ``summary.json``; the
  per-matrix diagnostics of the single-process run are not computed here.

Checkpoints (``--checkpoint-dir DIR``, every ``--checkpoint-every K`` steps and at the end) are
``torch.distributed.checkpoint`` directories ``DIR/step_<t>`` holding the sharded model, the
optimizer state of :meth:`ShardedOptimizer.state_dict` (whole-matrix state as ``Shard(0)``
DTensors), the step and the batch generator state; they are world-size independent:
``--resume DIR/step_<t>`` continues at any number of processes (1 included). The checkpoint also
names the concrete msign compute dtype of the run (``ns_dtype``): a resumed run with
``--msign-dtype auto`` (the default) keeps it, even on a machine whose "auto" would choose
another; an explicit ``--msign-dtype`` overrides it.

Only MACRO runs with ``--nproc`` (``muon``, ``muonh``, ``sso`` and ``adamw`` split the
parameters over two torch optimizers whose sharded checkpointing is not implemented here): any
other optimizer is refused with a clear error.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist

from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError, OracleError

from .distributed import exit_rank, free_port
from .fsdp import ShardedOptimizer
from .data import load_corpus
from .train import (DTYPES, MANIFOLD_OF, VAL_SEED, TrainConfig, lr_factor, msign_dtype_of, build_model,
                    config_from_args, lm_loss, ns_dtype_in_use, resolve_device)

__all__ = ["main_nproc", "run_fsdp_training", "rank_entry"]


def _fsdp_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--nproc", type=int, default=None)
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--checkpoint-every", type=int, default=0)
    ap.add_argument("--resume", default=None)
    return ap


def _check(cfg: TrainConfig, nproc: int) -> None:
    cfg.validate()
    if nproc < 1:
        raise InvalidInputError(f"--nproc must be >= 1, got {nproc}")
    if not cfg.optimizer.startswith("macro"):
        raise InvalidInputError(f"--nproc supports the MACRO optimizers (macro-*), not {cfg.optimizer!r}")
    if cfg.batch % nproc:
        raise InvalidInputError(f"batch {cfg.batch} is not divisible by --nproc {nproc}")


def main_nproc(argv: Sequence[str]) -> int:
    """Launch ``train`` on ``--nproc`` local processes through ``torch.distributed.run``."""
    own, rest = _fsdp_parser().parse_known_args(list(argv))
    try:
        cfg = config_from_args(rest)
        _check(cfg, int(own.nproc))
    except SystemExit as exc:
        return int(exc.code or 0)
    except OracleError as exc:
        print(f"manifold-oracle train: {exc}", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(own.nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "manifold_oracle.gpu_impl.train_fsdp", *rest]
    for flag, val in (("--checkpoint-dir", own.checkpoint_dir), ("--checkpoint-every", own.checkpoint_every),
                      ("--resume", own.resume)):
        if val:
            cmd += [flag, str(val)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(cfg.threads or 1))}
    # torchrun stays in this process group: Ctrl-C or a SIGTERM to the group reaches it, and it
    # stops its workers
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        return 130


def _shard_model(model: torch.nn.Module, mesh: Any) -> None:
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:  # type: ignore[attr-defined]
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _full(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu().clone()


def _grad_norm(params: list[torch.Tensor]) -> float:
    from torch.distributed.tensor import DTensor

    sq = torch.zeros((), dtype=torch.float64)
    for p in params:
        if p.grad is not None:
            g = p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad
            sq += g.detach().double().pow(2).sum().cpu()
    dist.all_reduce(sq)  # every parameter here is sharded: the squares add over ranks
    return float(sq.sqrt())


def _ckpt_state(model: torch.nn.Module, opt: ShardedOptimizer, step: int, gen: torch.Generator) -> dict[str, Any]:
    """Flat checkpoint dictionary (keys ``model.*``, ``optim.<i>.<key>``, ``step``, ``train_gen``,
    ``ns_dtype`` (the concrete msign dtype, ``"param"`` for the parameter dtype)); the other
    hyperparameters are not saved: the resumed run takes them from its command line."""
    sd: dict[str, Any] = {f"model.{k}": v for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for i, st in osd["state"].items():
        for k, v in st.items():
            sd[f"optim.{i}.{k}"] = v
    sd["step"] = step
    sd["train_gen"] = gen.get_state()
    sd["ns_dtype"] = ns_dtype_in_use([opt]) or "param"
    return sd


def _load_checkpoint(path: str, model: torch.nn.Module, opt: ShardedOptimizer, gen: torch.Generator,
                     keep_ns_dtype: bool = True) -> int:
    """Load a checkpoint saved at any world size; returns its step. ``keep_ns_dtype``: the run
    continues in the checkpoint's msign dtype (when it names one), else in the current one."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    from torch.distributed.tensor import DTensor, Shard

    from .fsdp import chunk_rows

    meta = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    params = [p for g in opt.param_groups for p in g["params"]]
    template: dict[str, Any] = {f"model.{k}": v for k, v in model.state_dict().items()}
    for key, md in meta.items():
        if key.startswith("model."):
            continue
        if not isinstance(md, TensorStorageMetadata):
            template[key] = None
            continue
        size, dtype = tuple(md.size), md.properties.dtype
        if key.startswith("optim."):
            p = params[int(key.split(".")[1])]
            if isinstance(p, DTensor) and size == tuple(p.shape) and len(size) > 0:
                lo, hi = chunk_rows(size[0], p.device_mesh.size(), p.device_mesh.get_local_rank())
                local = torch.empty((hi - lo, *size[1:]), dtype=dtype, device=p.to_local().device)
                template[key] = DTensor.from_local(local, p.device_mesh, [Shard(0)], shape=p.shape, stride=p.stride())
                continue
        template[key] = torch.empty(size, dtype=dtype)
    dcp.load(template, checkpoint_id=path)
    state: dict[str, dict[str, Any]] = {}
    for key, v in template.items():
        if key.startswith("optim."):
            _, i, k = key.split(".", 2)
            state.setdefault(i, {})[k] = v
    # hyperparameters come from the command line of the resumed run, not from the checkpoint,
    # except the concrete msign dtype under --msign-dtype auto
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    saved = template.get("ns_dtype")
    if keep_ns_dtype and isinstance(saved, str):
        for g in groups:
            g["ns_dtype"] = None if saved == "param" else saved
    opt.load_state_dict({"state": state, "param_groups": groups})
    gen.set_state(template["train_gen"])
    return int(template["step"])


def run_fsdp_training(cfg: TrainConfig, *, checkpoint_dir: str | None = None, checkpoint_every: int = 0,
                      resume: str | None = None) -> dict[str, Any]:
    """One rank of the FSDP2 run (process group initialised). Returns ``{"records", "summary",
    "state_dict"}`` with the whole final weights (CPU) on every rank."""
    from torch.distributed.device_mesh import init_device_mesh

    world, rank = dist.get_world_size(), dist.get_rank()
    _check(cfg, world)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dtype = DTYPES[cfg.dtype]
    if dtype == torch.bfloat16:
        raise InvalidInputError("--nproc runs in float32 or float64 (bf16 autocast is not wired for FSDP2 here)")
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    corpus = load_corpus(cfg.corpus, max_bytes=cfg.max_corpus_bytes)
    model = build_model(cfg, device, dtype)
    mesh = init_device_mesh(device.type, (world,))
    _shard_model(model, mesh)
    hidden_ids = {id(p) for _, p in model.hidden_matrices()}
    hidden = [p for p in model.parameters() if id(p) in hidden_ids]
    rest = [p for p in model.parameters() if id(p) not in hidden_ids]
    kind = MANIFOLD_OF[cfg.optimizer]
    radius: str | float = cfg.radius if cfg.radius in ("init", "mup") else float(cfg.radius)
    extra = dict(theta=cfg.theta, power_steps=cfg.power_steps) if kind == "spectral" else {}
    from .optim import MACRO

    opt = ShardedOptimizer(MACRO, [{"params": hidden, "manifold": kind}, {"params": rest, "manifold": None}],
                           lr=cfg.resolved_lr(), momentum=0.95, radius=radius, scale=cfg.scale,
                           adamw_lr=cfg.adam_lr, adamw_betas=(0.9, 0.95), adamw_eps=1e-8,
                           adamw_wd=cfg.weight_decay, ns_dtype=msign_dtype_of(cfg), **extra)
    base_lr = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
    start = 0
    if resume:
        start = _load_checkpoint(resume, model, opt, gen, keep_ns_dtype=cfg.msign_dtype == "auto")
    from .data import fixed_batches, sample_batch

    val_set = fixed_batches(corpus.val, cfg.val_batches, cfg.batch, cfg.seq_len, VAL_SEED)
    local = cfg.batch // world
    lo, hi = rank * local, (rank + 1) * local
    out = Path(cfg.out) if (cfg.out and rank == 0) else None
    jsonl = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({
            "config": asdict(cfg), "resolved": {"lr": cfg.resolved_lr(), "device": str(device),
                                                "world_size": world, "fsdp2": True, "resumed_from": resume,
                                                "start_step": start, "ns_dtype": ns_dtype_in_use([opt])},
            "model": model.cfg.to_dict(), "corpus": corpus.describe(), "torch": torch.__version__}, indent=2))
        jsonl = (out / "metrics.jsonl").open("a" if resume else "w")

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            # every rank evaluates its slice of each validation batch; the mean is all-reduced
            tot = torch.zeros((), dtype=torch.float64)
            for x, y in val_set:
                tot += lm_loss(model(x[lo:hi].to(device)), y[lo:hi].to(device)).detach().double().cpu()
            dist.all_reduce(tot)
        model.train()
        return float(tot) / (world * len(val_set))

    records: list[dict[str, Any]] = []

    def emit(rec: dict[str, Any]) -> None:
        records.append(rec)
        if jsonl is not None:
            jsonl.write(json.dumps(rec) + "\n")
            jsonl.flush()

    def save(step: int) -> None:
        import torch.distributed.checkpoint as dcp

        assert checkpoint_dir is not None
        dcp.save(_ckpt_state(model, opt, step, gen), checkpoint_id=str(Path(checkpoint_dir) / f"step_{step}"))

    if start == 0:
        emit({"step": 0, "val_loss": evaluate(), "tokens": 0, "time_s": 0.0})
    t0 = time.perf_counter()
    failed = False
    for step in range(start + 1, cfg.steps + 1):
        f = lr_factor(cfg, step)
        for g, lr0 in zip(opt.param_groups, base_lr):
            g["lr"] = lr0 * f
        x, y = sample_batch(corpus.train, cfg.batch, cfg.seq_len, gen)
        x, y = x[lo:hi].to(device), y[lo:hi].to(device)
        opt.zero_grad()
        loss = lm_loss(model(x), y)
        loss.backward()
        lv_t = loss.detach().double().cpu()
        dist.all_reduce(lv_t)
        lv = float(lv_t) / world
        gnorm = _grad_norm(list(model.parameters()))
        if not (math.isfinite(lv) and math.isfinite(gnorm)):
            emit({"step": step, "train_loss": lv, "grad_norm": gnorm, "error": "non-finite loss or gradient"})
            failed = True
            break
        opt.step()
        rec = {"step": step, "lr": opt.param_groups[0]["lr"], "train_loss": lv, "grad_norm": gnorm,
               "tokens": step * cfg.batch * cfg.seq_len, "time_s": time.perf_counter() - t0}
        if step % cfg.val_every == 0 or step == cfg.steps:
            rec["val_loss"] = evaluate()
        emit(rec)
        if checkpoint_dir and ((checkpoint_every and step % checkpoint_every == 0) or step == cfg.steps):
            save(step)
    wall = time.perf_counter() - t0
    if jsonl is not None:
        jsonl.close()
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    summary = {"optimizer": cfg.optimizer, "world_size": world, "steps": (start + len(losses)), "failed": failed,
               "final_train_loss": losses[-1] if losses else None,
               "final_val_loss": vals[-1] if vals else None, "wall_time_s": wall}
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    state = {k: _full(v) for k, v in model.state_dict().items()}
    return {"records": records, "summary": summary, "state_dict": state}


def rank_entry(payload: dict[str, Any]) -> dict[str, Any]:
    """Target of :func:`gpu_impl.distributed.run_ranks` (tests): ``payload = {"cfg": {...},
    "checkpoint_dir", "checkpoint_every", "resume"}``."""
    return run_fsdp_training(TrainConfig(**payload["cfg"]), checkpoint_dir=payload.get("checkpoint_dir"),
                             checkpoint_every=int(payload.get("checkpoint_every", 0)), resume=payload.get("resume"))


def _worker_main(argv: Sequence[str]) -> int:
    # a rank that dies on a signal (SIGABRT from C++, SIGSEGV) prints every thread's Python stack
    faulthandler.enable(all_threads=True)
    own, rest = _fsdp_parser().parse_known_args(list(argv))
    cfg = config_from_args(rest)
    device = resolve_device(cfg.device)
    if not dist.is_available():
        raise NotAvailableError("torch.distributed is not available in this torch build")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        res = run_fsdp_training(cfg, checkpoint_dir=own.checkpoint_dir, checkpoint_every=own.checkpoint_every,
                                resume=own.resume)
        # every rank done before any tears its process group down: a gloo pair torn down while a
        # peer's checkpoint or metrics collective is in flight aborted a rank once under load
        # ("terminate called without an active exception", exit −6)
        dist.barrier()
    except OracleError as exc:
        print(f"manifold-oracle train (rank {dist.get_rank()}): {exc}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    s = res["summary"]
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{cfg.optimizer} on {s['world_size']} processes (FSDP2): {s['steps']} steps, train loss "
              f"{s['final_train_loss']:.4f}, val loss {s['final_val_loss']:.4f}"
              + (f"; outputs in {cfg.out}" if cfg.out else ""))
    return 1 if s["failed"] else 0


if __name__ == "__main__":  # pragma: no cover
    # outputs are closed and the process group destroyed: skip the teardown (see exit_rank)
    exit_rank(_worker_main(sys.argv[1:]))
