"""Rank targets for tests/gpu_impl/test_fsdp.py (run in subprocesses by ``run_ranks``)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from manifold_oracle.gpu_impl import optim
from manifold_oracle.gpu_impl.fsdp import ShardedOptimizer, chunk_rows, sharded_fixed_run
from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError, OracleError


def die_on_rank1(payload: dict[str, Any]) -> None:
    """Rank 1 kills itself (SIGKILL); rank 0 sleeps outside any collective, so only the launcher
    can end it."""
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def hang(payload: dict[str, Any]) -> None:
    time.sleep(600)


def errors(payload: dict[str, Any]) -> dict[str, Any]:
    """Agreement on failures and clear errors for unsupported layouts (4 ranks)."""
    from torch.distributed.device_mesh import init_device_mesh

    out: dict[str, Any] = {}
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    full = torch.randn(9, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for policy in ("raise", "skip"):
        p = torch.nn.Parameter(distribute_tensor(full.clone(), mesh, [Shard(0)]))
        opt = ShardedOptimizer(optim.MACRO, [p], lr=0.1, ns_dtype=None, nonfinite=policy, mode="owner")
        before = p.full_tensor().clone()
        g = torch.randn(9, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        lo, hi = chunk_rows(9, world, rank)
        loc = g[lo:hi].clone()
        if rank == 1:
            loc[0, 0] = float("nan")  # a NaN in one rank's shard only
        p.grad = DTensor.from_local(loc, mesh, [Shard(0)], shape=p.shape, stride=p.stride())
        try:
            opt.step()
            out[policy] = "stepped" if opt.skipped_steps == 0 else "skipped"
        except OracleError as e:
            out[policy] = type(e).__name__
        out[policy + "_unchanged"] = bool(torch.equal(p.full_tensor(), before))
    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2))
        p2 = torch.nn.Parameter(distribute_tensor(full.clone(), mesh2, [Shard(0), Shard(0)]))
        try:
            ShardedOptimizer(optim.MACRO, [p2])
            out["mesh2d"] = "accepted"
        except NotAvailableError as e:
            out["mesh2d"] = str(e)
    p3 = torch.nn.Parameter(distribute_tensor(full.clone(), mesh, [Shard(1)]))
    try:
        ShardedOptimizer(optim.MACRO, [p3])
        out["shard1"] = "accepted"
    except NotAvailableError as e:
        out["shard1"] = str(e)
    try:
        ShardedOptimizer(optim.MACRO, [p3], mode="bogus")
    except InvalidInputError as e:
        out["mode"] = str(e)
    # ns_dtype "auto" (the default): the user-facing group and the state dict name the concrete
    # dtype; a loaded state dict's dtype replaces it
    from manifold_oracle.gpu_impl.msign import concrete_ns_dtype

    p4 = torch.nn.Parameter(distribute_tensor(full.clone(), mesh, [Shard(0)]))
    opt4 = ShardedOptimizer(optim.MACRO, [p4], lr=0.1)
    sd = opt4.state_dict()
    seen = [opt4.param_groups[0]["ns_dtype"], sd["param_groups"][0]["ns_dtype"], concrete_ns_dtype("auto")]
    sd["param_groups"][0]["ns_dtype"] = "float64"
    opt4.load_state_dict(sd)
    out["ns_dtype"] = seen + [opt4.param_groups[0]["ns_dtype"]]
    return out


def fixed(payload: dict[str, Any]) -> dict[str, Any]:
    return sharded_fixed_run(payload)


def four(payload: dict[str, Any]) -> dict[str, Any]:
    return {"errors": errors(payload), **sharded_fixed_run(payload)}
