"""Adapters for pytorch_optimizer 4.1.0 (PyPI ``pytorch_optimizer``), written as a user would.

Targets (profiles of the same names in ``conformance.profiles``, conventions read from the
installed source and confirmed by measurement):

* ``ptopt_muon`` — ``Muon`` (one ``use_muon=True`` group): EMA momentum ``buf.lerp_(g, 1−β)``,
  Nesterov ``g.lerp_(buf, β)``, KJ quintic ×5 in bf16 (``zero_power_via_newton_schulz_5``:
  cast, then ‖·‖_F clamped at 1e-7), tall inputs transposed, lr·√max(1, out/in), decoupled
  weight decay p ← (1 − lr·λ)p.
* ``ptopt_adamuon`` / ``ptopt_normuon`` — ``AdaMuon`` / ``NorMuon``: the same orthogonaliser,
  followed by element-wise (AdaMuon) or neuron-wise (NorMuon) second-moment normalisation that
  no reference rule models: their profiles declare rule ``none`` (msign and safety checks only).
* ``ptopt_scion`` — ``SCION`` with ``norm_type=LMONorm.SPECTRAL`` (its documented example):
  ``d.lerp_(g, α)`` with α = 1 − β (the package's ``momentum`` is the weight of the new
  gradient), update ``scale·√(out/in)·msign(d)``, no Nesterov, decoupled weight decay.
* ``ptopt_spectral_sphere`` — ``SpectralSphere``: Polar Express (4-digit coefficients) in bf16
  after a fp32 ‖·‖_F normalisation; update Φ = msign(M̂ + λΘ), Θ = u₁v₁ᵀ of W by bf16 power
  iteration; declared on the spectral sphere of radius ‖W₀‖₂ (the class name and its
  references), which the step never retracts to.

The adapter's ``momentum`` argument is always the EMA factor β of CONVENTIONS §5.
"""

from __future__ import annotations

from typing import Any

from . import Adapter


def _groups(params: Any, **extra: Any) -> list[dict[str, Any]]:
    """Param groups (dicts kept, a plain list becomes one group) with ``extra`` keys added."""
    params = list(params)
    if params and isinstance(params[0], dict):
        return [{**g, **extra} for g in params]
    return [{"params": params, **extra}]


class _PtoptBase(Adapter):
    requires = ("pytorch_optimizer",)
    capabilities = frozenset({"msign", "optimizer"})

    def msign(self, G: Any) -> Any:
        from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

        return zero_power_via_newton_schulz_5(G, num_steps=5, weights="original")

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        st = opt.state[p]
        for key in ("momentum_buffer", "m", "d"):
            if key in st:
                return st[key]
        return None


class PtoptMuonAdapter(_PtoptBase):
    """pytorch_optimizer.Muon, one Muon group."""

    name = "pytorch_optimizer.Muon"
    profile = "ptopt_muon"

    def group_hyper(self, lr: float, momentum: float, weight_decay: float) -> dict[str, Any]:
        # a group routed to the Muon rule carries use_muon=True (as the constructor's groups do)
        return {**super().group_hyper(lr, momentum, weight_decay), "use_muon": True}
    nesterov_toggle = True
    #: the pytorch_optimizer class (Muon and NorMuon share the constructor arguments used here)
    cls_name = "Muon"

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  nesterov: bool = True) -> Any:
        import pytorch_optimizer

        cls = getattr(pytorch_optimizer, self.cls_name)
        return cls(_groups(params, use_muon=True), lr=lr, momentum=momentum, weight_decay=weight_decay,
                   nesterov=nesterov)


class PtoptAdaMuonAdapter(_PtoptBase):
    """pytorch_optimizer.AdaMuon, one Muon group (betas = (β, 0.95 default))."""

    name = "pytorch_optimizer.AdaMuon"
    profile = "ptopt_adamuon"

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.9, weight_decay: float = 0.0) -> Any:
        from pytorch_optimizer import AdaMuon

        return AdaMuon(_groups(params, use_muon=True), lr=lr, betas=(momentum, 0.95), weight_decay=weight_decay)

    def group_hyper(self, lr: float, momentum: float, weight_decay: float) -> dict[str, Any]:
        return {"lr": lr, "betas": (momentum, 0.95), "weight_decay": weight_decay, "use_muon": True}


class PtoptNorMuonAdapter(PtoptMuonAdapter):
    """pytorch_optimizer.NorMuon, one Muon group."""

    name = "pytorch_optimizer.NorMuon"
    profile = "ptopt_normuon"
    cls_name = "NorMuon"


class PtoptScionAdapter(_PtoptBase):
    """pytorch_optimizer.SCION with the spectral LMO (its ``momentum`` is 1 − β)."""

    name = "pytorch_optimizer.SCION"
    profile = "ptopt_scion"

    def optimizer(self, params: list, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0) -> Any:
        from pytorch_optimizer import SCION
        from pytorch_optimizer.optimizer.scion import LMONorm

        return SCION(_groups(params, norm_type=LMONorm.SPECTRAL), lr=lr,
                     momentum=1.0 - momentum, norm_type=LMONorm.SPECTRAL, weight_decay=weight_decay)

    def group_hyper(self, lr: float, momentum: float, weight_decay: float) -> dict[str, Any]:
        return {"lr": lr, "momentum": 1.0 - momentum, "weight_decay": weight_decay}


class PtoptSpectralSphereAdapter(Adapter):
    """pytorch_optimizer.SpectralSphere and its Polar Express ``msign``."""

    name = "pytorch_optimizer.SpectralSphere"
    profile = "ptopt_spectral_sphere"
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("pytorch_optimizer",)
    nesterov_toggle = True

    def msign(self, G: Any) -> Any:
        from pytorch_optimizer.optimizer.sso import msign

        return msign(G, steps=5)

    def optimizer(self, params: list, lr: float = 3e-4, momentum: float = 0.9, weight_decay: float = 0.0,
                  nesterov: bool = True) -> Any:
        from pytorch_optimizer import SpectralSphere

        return SpectralSphere(list(params), lr=lr, momentum=momentum, weight_decay=weight_decay,
                              nesterov=nesterov)
