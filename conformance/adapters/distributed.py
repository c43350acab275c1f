"""Distributed targets: optimizers on FSDP2-sharded parameters (capability ``sharded_optimizer``).

``sharded_optimizer(params, mesh, lr, momentum, weight_decay)`` receives DTensors sharded by
``fully_shard`` on the 1-D ``mesh`` mixed with plain replicated tensors (see
``conformance/checks/distributed.py``) and returns an object with ``step()``. Each adapter is
written as a user of the package would write it, with the package's documented defaults
otherwise. Extra ``distributed`` in pyproject.toml installs the third-party packages.

* ``gpu_impl_fsdp2`` — ``gpu_impl.fsdp.ShardedOptimizer`` around the ``gpu_impl`` MACRO of
  profile ``gpu_impl`` (exactly the single-process adapter's optimizer);
* ``torch_muon_fsdp2`` — ``torch.optim.Muon`` directly on the DTensors;
* ``ptopt_distributed_muon`` — ``pytorch_optimizer.DistributedMuon`` (4.1.0);
* ``muon_fsdp2`` — ``muon_fsdp2.Muon`` (0.3.0; ``rms_scale`` at its default True);
* ``dtensor_muon`` — ``dtensor_muon`` (0.1.0): needs triton and CUDA, so on a CPU-only machine it
  is reported as not available with that reason.
"""

from __future__ import annotations

from typing import Any

from manifold_oracle.reference.errors import NotAvailableError

from ..profiles import Profile, get_profile
from . import Adapter
from .gpu_impl import GpuImplAdapter
from .torch_muon import TorchMuonAdapter


def _muon_profile(name: str, description: str, source: str, *, lr: float = 0.02, shape_scale: str = "none",
                  scale: float = 1.0) -> Profile:
    """A Muon-rule profile for a distributed target (bf16 KJ Newton–Schulz, Nesterov)."""
    base = get_profile("torch_muon")
    from dataclasses import replace

    return replace(base, name=name, description=description, source=source, lr=lr, shape_scale=shape_scale,
                   scale=scale, param_dtypes=("float32",))


class GpuImplFsdp2Adapter(GpuImplAdapter):
    """gpu_impl MACRO through ``gpu_impl.fsdp.ShardedOptimizer`` (gather, whole-matrix step, re-shard)."""

    name = "gpu_impl FSDP2"
    #: msign: the orthogonaliser ShardedOptimizer's wrapped MACRO applies to each gathered matrix
    #: (the distributed family replays it on every sharded step)
    capabilities = frozenset({"sharded_optimizer", "msign"})
    requires = GpuImplAdapter.requires + ("manifold_oracle.gpu_impl.fsdp",)

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 0.02, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        from manifold_oracle.gpu_impl.fsdp import ShardedOptimizer

        return ShardedOptimizer(lambda groups: self.optimizer(groups, lr=lr, momentum=momentum), params)


class TorchMuonFsdp2Adapter(TorchMuonAdapter):
    """``torch.optim.Muon`` stepping the FSDP2 DTensors directly (DTensor ops gather as needed)."""

    name = "torch.optim.Muon on FSDP2"
    capabilities = frozenset({"sharded_optimizer"})

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 1e-3, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        return self.optimizer(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class PtoptDistributedMuonAdapter(Adapter):
    """``pytorch_optimizer.DistributedMuon`` (4.1.0) on the FSDP2 parameters."""

    name = "pytorch_optimizer DistributedMuon"
    profile = _muon_profile("ptopt_distributed_muon", "pytorch_optimizer 4.1.0 DistributedMuon (KJ NS, bf16, "
                            "Nesterov, no shape adjustment by default)", "pytorch_optimizer/optimizer/muon/"
                            "distributed_muon.py")
    capabilities = frozenset({"sharded_optimizer"})
    requires = ("pytorch_optimizer",)

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 0.02, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        from pytorch_optimizer import DistributedMuon

        return DistributedMuon([{"params": params, "use_muon": True}], lr=lr, momentum=momentum,
                               weight_decay=weight_decay)


class MuonFsdp2Adapter(Adapter):
    """``muon_fsdp2.Muon`` (0.3.0): gathers each DTensor, orthogonalises, re-shards."""

    name = "muon-fsdp2"
    profile = _muon_profile("muon_fsdp2", "muon-fsdp2 0.3.0 (KJ NS in bf16, Nesterov, rms_scale: "
                            "0.2·√max(m, n))", "muon_fsdp2.py", shape_scale="moonlight")
    capabilities = frozenset({"sharded_optimizer"})
    requires = ("muon_fsdp2",)

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 0.02, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        from muon_fsdp2 import Muon

        return Muon([{"params": params, "use_muon": True, "lr": lr, "momentum": momentum,
                      "weight_decay": weight_decay}])


class DtensorMuonAdapter(Adapter):
    """``dtensor_muon`` (0.1.0). Its import needs triton (not a declared dependency) and its default
    path a CUDA kernel, so it is not available on a CPU-only machine."""

    name = "dtensor-muon"
    profile = _muon_profile("dtensor_muon", "dtensor-muon 0.1.0 (NS on DTensors)", "dtensor_muon/optim")
    capabilities = frozenset({"sharded_optimizer"})
    requires = ("dtensor_muon",)

    def check_available(self) -> None:
        import importlib.util

        import torch

        if importlib.util.find_spec("triton") is None or not torch.cuda.is_available():
            raise NotAvailableError("dtensor_muon needs triton/CUDA: its import requires triton (not a declared "
                                    "dependency) and its default orthogonaliser calls a CUDA-only kernel; this "
                                    "machine has " + ("no triton" if importlib.util.find_spec("triton") is None
                                                      else "no CUDA device"))
        super().check_available()

    def sharded_optimizer(self, params: list, mesh: Any, lr: float = 0.02, momentum: float = 0.95,
                          weight_decay: float = 0.0) -> Any:
        from dtensor_muon import Muon  # type: ignore[import-not-found]

        return Muon(params, lr=lr, momentum=momentum, wd=weight_decay)
