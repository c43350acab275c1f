"""Adapter for ``torch.optim.Muon`` (PyTorch ≥ 2.9), written as a user would write one.

Capabilities: ``msign`` (torch's Newton–Schulz routine ``torch.optim._muon.
_zeropower_via_newtonschulz`` with the optimizer's default coefficients, 5 steps, eps 1e-7) and
``optimizer`` (``torch.optim.Muon``; ``nesterov`` can be toggled). Profile ``torch_muon``
(CONVENTIONS.md §4.2).
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class TorchMuonAdapter(Adapter):
    """torch.optim.Muon and its Newton–Schulz routine."""

    name = "torch.optim.Muon"
    profile = "torch_muon"
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("torch.optim._muon",)
    nesterov_toggle = True

    def check_available(self) -> None:
        super().check_available()
        import torch

        from manifold_oracle.reference.errors import NotAvailableError

        if not hasattr(torch.optim, "Muon"):
            raise NotAvailableError(f"torch {torch.__version__} has no torch.optim.Muon (needs >= 2.9)")

    def msign(self, G: Any) -> Any:
        from torch.optim import _muon

        return _muon._zeropower_via_newtonschulz(G, (_muon.DEFAULT_A, _muon.DEFAULT_B, _muon.DEFAULT_C),
                                                 _muon.DEFAULT_NS_STEPS, _muon.EPS)

    def optimizer(self, params: list, lr: float = 1e-3, momentum: float = 0.95, weight_decay: float = 0.1,
                  nesterov: bool = True) -> Any:
        import torch

        return torch.optim.Muon(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
