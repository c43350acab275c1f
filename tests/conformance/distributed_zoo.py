"""Planted distributed defects for the ``distributed`` check family (meta-tests).

Each is a ``sharded_optimizer`` adapter a user could plausibly write wrongly:

* :class:`PerShardMuon` — Muon that orthogonalises each rank's local row shard (``to_local()``)
  instead of the whole matrix (the classic FSDP mistake);
* :class:`RankDivergentMACRO` — the correct sharded MACRO, except that every rank perturbs its
  copy of the replicated weight by a rank-dependent amount (as a rank-dependent seed would);
* :class:`DyingMACRO` — rank 1 is killed by SIGKILL during the second step.

Audit 5c (defects the family used to pass; each is one flag of :class:`_ShardedMuon`, a correct
gather-then-orthogonalise Muon with the ``torch_muon`` rule, or one wrapper of the correct
sharded MACRO):

* :class:`ShardedMuon` — the correct one (local EMA + Nesterov, padded all-gather, torch's
  Newton–Schulz on the whole matrix through the adapter's ``msign``, √max(1, m/n) of the
  global shape, decoupled weight decay on the local rows);
* :class:`PaddingInNS` — the padded zero rows stay in the matrix fed to NS and its shape scale;
* :class:`RankNSDtype` — ranks > 0 run NS in float32, rank 0 in bfloat16;
* :class:`WDTwice` — decoupled weight decay applied twice;
* :class:`RankZeroBias` — sharded MACRO whose biases are stepped on rank 0 only (DDP habit);
* :class:`Bf16NormMACRO` — sharded MACRO re-normalised from per-rank squared norms sent as bf16.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from manifold_oracle.conformance.adapters.distributed import GpuImplFsdp2Adapter, TorchMuonFsdp2Adapter
from manifold_oracle.conformance.adapters.torch_muon import TorchMuonAdapter
from manifold_oracle.gpu_impl.fsdp import chunk_rows


class _PerShardStep:
    def __init__(self, params: list, **hyper: Any) -> None:
        self.params = params
        self.proxies = [torch.nn.Parameter(p.to_local() if isinstance(p, DTensor) else p.detach(),
                                           requires_grad=False) for p in params]
        live = [q for q in self.proxies if q.shape[0] > 0]
        self.inner = torch.optim.Muon(live, **hyper)

    def step(self) -> None:
        for p, q in zip(self.params, self.proxies):
            q.grad = p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad
        self.inner.step()


class PerShardMuon(TorchMuonFsdp2Adapter):
    """torch.optim.Muon applied to each local row shard (wrong: per-shard orthogonalisation)."""

    name = "planted: per-shard Muon"

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 1e-3, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        return _PerShardStep(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


class _Perturbed:
    def __init__(self, inner: Any, params: list, kill_at: int | None = None) -> None:
        self.inner, self.params, self.kill_at, self.t = inner, params, kill_at, 0

    def step(self) -> None:
        self.t += 1
        if self.kill_at is not None and self.t == self.kill_at and dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        self.inner.step()
        if self.kill_at is None:
            with torch.no_grad():
                for p in self.params:
                    if not isinstance(p, DTensor):
                        p.add_(1e-6 * dist.get_rank())


class RankDivergentMACRO(GpuImplFsdp2Adapter):
    """Correct sharded MACRO, but the replicated weight drifts by 1e-6·rank per step."""

    name = "planted: rank-divergent MACRO"

    def sharded_optimizer(self, params: list, mesh: Any, **hyper: Any) -> Any:
        return _Perturbed(super().sharded_optimizer(params, mesh, **hyper), params)


class DyingMACRO(GpuImplFsdp2Adapter):
    """Correct sharded MACRO whose rank 1 dies (SIGKILL) in the second step."""

    name = "planted: dying rank"

    def sharded_optimizer(self, params: list, mesh: Any, **hyper: Any) -> Any:
        return _Perturbed(super().sharded_optimizer(params, mesh, **hyper), params, kill_at=2)


def _ns_float32(G: torch.Tensor) -> torch.Tensor:
    """Keller Jordan's 5-step Newton–Schulz in float32 (torch's coefficients, tall inputs transposed)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = G.size(0) > G.size(1)
    X = (G.mT if tall else G).float()
    X = X / (X.norm() + 1e-7)
    for _ in range(5):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if tall else X


class _ShardedMuon:
    """Muon on FSDP2 rows: momentum and Nesterov on the local shard, padded all-gather, msign of
    the whole matrix on every rank, own rows back (``defect``: one of the planted flags)."""

    def __init__(self, msign: Any, params: list, lr: float, momentum: float, weight_decay: float,
                 defect: str | None) -> None:
        self.msign, self.params, self.defect = msign, params, defect
        self.lr, self.beta, self.wd = lr, momentum, weight_decay
        self.bufs = [torch.zeros_like(p.to_local() if isinstance(p, DTensor) else p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        rank, world = dist.get_rank(), dist.get_world_size()
        for p, buf in zip(self.params, self.bufs):
            sharded = isinstance(p, DTensor)
            g = p.grad.to_local() if sharded else p.grad
            buf.lerp_(g, 1 - self.beta)
            upd = g.lerp(buf, self.beta)
            m, n = p.shape
            lo, hi = chunk_rows(m, world, rank) if sharded else (0, m)
            if sharded:
                c = -(-m // world)
                pad = upd.new_zeros(c, n)
                pad[: upd.shape[0]] = upd
                out = upd.new_empty(world * c, n)
                dist.all_gather_into_tensor(out, pad)
                if self.defect == "padding_in_ns":
                    upd, lo, hi = out, rank * c, rank * c + (hi - lo)
                else:
                    upd = torch.cat([out[r * c: r * c + (b - a)]
                                     for r, (a, b) in enumerate(chunk_rows(m, world, q) for q in range(world))])
            O = _ns_float32(upd) if (self.defect == "rank_ns_dtype" and rank > 0) else self.msign(upd)
            w = p.to_local() if sharded else p
            w.mul_(1 - self.lr * self.wd)
            if self.defect == "wd_twice":  # once in the gathered path, once more on the shard
                w.mul_(1 - self.lr * self.wd)
            w.add_(O[lo:hi], alpha=-self.lr * math.sqrt(max(1.0, upd.shape[0] / n)))


class ShardedMuon(TorchMuonAdapter):
    """Correct sharded Muon (``torch_muon`` rule), declaring ``msign`` for the replay."""

    name = "zoo: sharded Muon (correct)"
    capabilities = frozenset({"sharded_optimizer", "msign"})
    defect: str | None = None

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 1e-3, momentum: float = 0.95,
                          weight_decay: float = 0.1) -> Any:
        return _ShardedMuon(self.msign, params, lr, momentum, weight_decay, self.defect)


class PaddingInNS(ShardedMuon):
    """The padded zero rows of the all-gather stay in NS's input and its shape scale (34×8, 36×8)."""

    name, defect = "planted: padding rows in NS", "padding_in_ns"


class RankNSDtype(ShardedMuon):
    """Ranks > 0 orthogonalise in float32, rank 0 in bfloat16."""

    name, defect = "planted: rank-dependent NS dtype", "rank_ns_dtype"


class WDTwice(ShardedMuon):
    """Decoupled weight decay applied in the gathered path and again on the shard."""

    name, defect = "planted: weight decay twice", "wd_twice"


class _AfterStep:
    """The correct sharded MACRO followed by ``post(params)`` after each step."""

    def __init__(self, inner: Any, params: list, post: Any) -> None:
        self.inner, self.params, self.post = inner, params, post

    def step(self) -> None:
        keep = [p.to_local().clone() if isinstance(p, DTensor) else None for p in self.params]
        self.inner.step()
        with torch.no_grad():
            self.post(self.params, keep)


def _bias_on_rank0_only(params: list, before: list) -> None:
    if dist.get_rank() > 0:  # the biases are thought replicated: rank 0's update is "the" update
        for p, old in zip(params, before):
            if p.ndim == 1 and old is not None:
                p.to_local().copy_(old)


def _renormalise_bf16(params: list, before: list) -> None:
    for p in params:
        if p.ndim == 2:
            w = p.to_local() if isinstance(p, DTensor) else p
            # each rank's partial ‖W‖² sent as bf16 (compressed communication), summed in float32
            sq = (w.double() ** 2).sum().to(torch.bfloat16).float().reshape(1)
            if isinstance(p, DTensor):
                dist.all_reduce(sq)
            w.mul_(1.0 / float(sq.double().sqrt()))


class RankZeroBias(GpuImplFsdp2Adapter):
    """Correct sharded MACRO, but the biases' shards are stepped on rank 0 only."""

    name = "planted: biases stepped on rank 0 only"

    def sharded_optimizer(self, params: list, mesh: Any, **hyper: Any) -> Any:
        return _AfterStep(super().sharded_optimizer(params, mesh, **hyper), params, _bias_on_rank0_only)


class Bf16NormMACRO(GpuImplFsdp2Adapter):
    """Correct sharded MACRO re-normalised (R = 1) after each step from per-rank squared norms rounded
    to bfloat16 for the all-reduce."""

    name = "planted: bf16 norm all-reduce"

    def sharded_optimizer(self, params: list, mesh: Any, **hyper: Any) -> Any:
        return _AfterStep(super().sharded_optimizer(params, mesh, **hyper), params, _renormalise_bf16)


def hang_on_recv(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``run_ranks`` target that deadlocks: rank 0 waits for a message its peer never sends."""
    if dist.get_rank() == 0:
        dist.recv(torch.zeros(1), src=1)
    else:
        dist.barrier()
    return {}
