"""Worked example for docs/conformance.md: a user's own Muon and its conformance adapter.

``MyMuon`` stands for "your optimizer": EMA momentum with EMA-Nesterov, Keller Jordan's
coefficients for 5 steps computed in fp32 after a max(‖X‖_F, 1e-7) normalisation, update scale
√max(1, d_out/d_in), decoupled weight decay with the raw learning rate. ``MyMuonAdapter`` is
everything the harness needs. Run it with

    PYTHONPATH=docs/examples manifold-oracle conform --target my_muon_oracle:MyMuonAdapter --full

``MyMuonAdapterWrongProfile`` declares Moonlight's 0.2·√max(A, B) update scale, which the code
does not use, to show what a mis-declared field looks like in the report.
"""

from __future__ import annotations

import torch

from manifold_oracle.conformance.adapters import Adapter
from manifold_oracle.conformance.profiles import get_profile

KJ = (3.4445, -4.7750, 2.0315)


def orthogonalize(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Quintic Newton–Schulz in fp32 (out of place), transposing tall inputs."""
    X = G.to(torch.float32)
    tall = X.shape[-2] > X.shape[-1]
    if tall:
        X = X.mT
    # ‖X‖_F without overflow: scale by the largest entry first (‖X‖_F² overflows fp32 from ~1.8e19)
    m = X.abs().amax(dim=(-2, -1), keepdim=True)
    m = torch.where(m > 0, m, torch.ones_like(m))
    X = X / (m * torch.linalg.vector_norm(X / m, dim=(-2, -1), keepdim=True)).clamp(min=eps)
    a, b, c = KJ
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if tall else X).to(G.dtype)


class MyMuon(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                 nesterov: bool = True) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:  # the closure runs its backward(): gradients on, before the update
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p)
                buf = st["momentum_buffer"]
                buf.lerp_(p.grad, 1 - g["momentum"])
                U = p.grad.lerp(buf, g["momentum"]) if g["nesterov"] else buf
                O = orthogonalize(U)
                A, B = p.shape
                p.mul_(1 - g["lr"] * g["weight_decay"])
                p.add_(O, alpha=-g["lr"] * max(1.0, A / B) ** 0.5)
        return loss


PROFILE = get_profile("torch_muon").with_options(
    name="my_muon",
    description="MyMuon: KJ×5 NS in fp32 (clamp 1e-7), EMA + EMA-Nesterov, sqrt(max(1, A/B)), raw-lr WD",
    compute_dtype="float32",      # torch.optim.Muon computes in bfloat16
    return_dtype="input",         # ... and returns bfloat16
    param_dtypes=("float32",),    # the dtypes the harness feeds parameters and gradients in
    weight_decay=0.0,
)


class MyMuonAdapter(Adapter):
    name = "MyMuon (docs example)"
    profile = PROFILE
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("torch",)
    nesterov_toggle = True  # optimizer() accepts nesterov=; safety checks run with it on and off

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return orthogonalize(G)

    def optimizer(self, params, lr=0.02, momentum=0.95, weight_decay=0.0, nesterov=True):
        return MyMuon(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


class MyMuonAdapterWrongProfile(MyMuonAdapter):
    """The same code under a profile that does not describe it (Moonlight's update scale)."""

    profile = PROFILE.with_options(name="my_muon_misdeclared", shape_scale="moonlight")
