"""Planted distributed defects for the ``distributed`` check family (meta-tests).

Each is a ``sharded_optimizer`` adapter a user could plausibly write wrongly:

* :class:`PerShardMuon` — Muon that orthogonalises each rank's local row shard (``to_local()``)
  instead of the whole matrix (the classic FSDP mistake);
* :class:`RankDivergentMACRO` — the correct sharded MACRO, except that every rank perturbs its
  copy of the replicated weight by a rank-dependent amount (as a rank-dependent seed would);
* :class:`DyingMACRO` — rank 1 is killed by SIGKILL during the second step.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from manifold_oracle.conformance.adapters.distributed import GpuImplFsdp2Adapter, TorchMuonFsdp2Adapter


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
