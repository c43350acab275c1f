"""Adapter for ``torch.optim.Muon`` (PyTorch ≥ 2.9), written as a user would write one.

Capabilities: ``msign`` (torch's Newton–Schulz routine with the optimizer's default coefficients,
5 steps, eps 1e-7, reached through the public ``torch.optim.Muon`` only: one step from W = 0 with
lr 1, no momentum, no weight decay returns −NS(G)) and ``optimizer`` (``torch.optim.Muon``;
``nesterov`` can be toggled). Profile ``torch_muon`` (CONVENTIONS.md §4.2).
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class TorchMuonAdapter(Adapter):
    """torch.optim.Muon and its Newton–Schulz routine."""

    name = "torch.optim.Muon"
    profile = "torch_muon"
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("torch.optim",)
    nesterov_toggle = True

    def check_available(self) -> None:
        super().check_available()
        import torch

        from manifold_oracle.reference.errors import NotAvailableError

        if not hasattr(torch.optim, "Muon"):
            raise NotAvailableError(f"torch {torch.__version__} has no torch.optim.Muon (needs >= 2.9)")

    def msign(self, G: Any) -> Any:
        """torch's NS(G) through the public optimizer: p = 0, p.grad = G, one step with lr 1,
        momentum 0 (the buffer lerp(0, G, 1) is G), no weight decay gives p = −NS(G) exactly
        (negation and 0 + x are exact; the bfloat16 values come back unchanged). A tall G is fed transposed: torch's NS transposes tall
        inputs itself (so NS(G) = NS(Gᵀ)ᵀ in the same operations) and its learning-rate
        adjustment √max(1, rows/cols) is then exactly 1."""
        import torch

        tall = G.size(-2) > G.size(-1)
        p = torch.zeros_like(G.mT if tall else G, requires_grad=True)
        p.grad = (G.mT if tall else G).detach().clone()
        torch.optim.Muon([p], lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False).step()
        out = (-p.detach()).to(torch.bfloat16)  # exact: torch's NS computes and returns bfloat16
        return out.mT if tall else out

    def optimizer(self, params: list, lr: float = 1e-3, momentum: float = 0.95, weight_decay: float = 0.1,
                  nesterov: bool = True) -> Any:
        import torch

        return torch.optim.Muon(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
