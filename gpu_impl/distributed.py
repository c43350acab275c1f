"""Data-parallel (DDP) training helpers: process-group set-up and a spawn launcher.

DDP keeps a full replica of every parameter on every rank and all-reduces (averages) the
gradients before the optimizer step, so any per-matrix optimizer (MACRO, Muon, …) runs
unchanged: every rank applies the same deterministic update to the same averaged gradient.
The sharded (FSDP2/DTensor) design is in docs/distributed.md.

:func:`spawn_training` launches ``world_size`` processes with ``torch.multiprocessing.spawn``
(``MASTER_ADDR=127.0.0.1``, a free TCP port), runs :func:`gpu_impl.train.run_training` on each
rank with the same :class:`~gpu_impl.train.TrainConfig`, and returns every rank's final
``state_dict`` and its records.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

__all__ = ["free_port", "init_process_group", "spawn_training"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_process_group(rank: int, world_size: int, port: int, backend: str = "gloo") -> None:
    """Initialise the default process group over TCP on 127.0.0.1:``port``."""
    if not dist.is_available():
        raise NotAvailableError("torch.distributed is not available in this torch build")
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)


def _worker(rank: int, world_size: int, port: int, cfg_dict: dict[str, Any], outdir: str,
            backend: str, threads: int) -> None:
    from manifold_oracle.gpu_impl.train import TrainConfig, run_training

    torch.set_num_threads(threads)
    init_process_group(rank, world_size, port, backend)
    try:
        res = run_training(TrainConfig(**cfg_dict), rank=rank, world_size=world_size)
        torch.save({"state_dict": res.state_dict, "records": res.records},
                   Path(outdir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def spawn_training(cfg: Any, world_size: int = 2, *, backend: str = "gloo",
                   threads_per_rank: int = 1) -> list[dict[str, Any]]:
    """Run ``cfg`` (a :class:`~gpu_impl.train.TrainConfig`) on ``world_size`` spawned ranks.

    Returns one ``{"state_dict", "records"}`` per rank, in rank order. ``cfg.out`` is honoured
    by rank 0 only; ``cfg.progress`` is ignored on other ranks.
    """
    if world_size < 1:
        raise InvalidInputError(f"world_size must be >= 1, got {world_size}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="mo_ddp_") as tmp:
        mp.spawn(_worker, args=(world_size, free_port(), asdict(cfg), tmp, backend, threads_per_rank),
                 nprocs=world_size, join=True)
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
