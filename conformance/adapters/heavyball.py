"""Adapters for HeavyBall 3.2.1 (PyPI ``heavyball``), run eagerly (``heavyball.utils.compile_mode =
None``: torch.compile of its fused steps needs a C++ toolchain and minutes per shape on CPU).

Targets (profiles of the same names; conventions read from the installed source, confirmed by
measurement):

* ``heavyball_muon`` — ``heavyball.Muon`` (defaults: ``nesterov=True``): EMA momentum
  M ← βM + (1 − β)G (β = ``betas[0]``, not debiased), orthogonaliser input G + M (the
  ``nesterov_ema`` chain step, "equivalent to Grokfast"), ``zeropower_via_newtonschulz5``
  (You Jiacheng's 5-step schedule; ‖·‖_F clamped at 1e-7 in the input dtype, then stochastic
  rounding to bf16), the update scaled by √max(1, out/in) (``scale_mode="scale"``), then
  p ← (1 − lr·λ)p − lr·D.
* ``heavyball_scion`` — ``heavyball.Scion``: debiased EMA momentum (``exp_avg``), LMO
  ``scale·√(out/in)·msign(M̂)`` for matrices, p ← (1 − lr·λ)p − lr·D.

``heavyball.utils.zeroth_power_mode`` selects the orthogonaliser (``newtonschulz`` default,
``svd``, ``qr``, ``thinky_polar_express``). HeavyBall clears ``p.grad`` after ``step()`` by default
(README: "Pass ``consume_grad=False`` if your training loop needs gradients to remain attached");
the harness reads gradients after a step, so the adapters pass ``consume_grad=False`` as that
documentation says, and the checks still see any in-place change of the gradient's values.
:class:`HeavyballMuonSVDAdapter` (target
``heavyball_muon_svd``) declares the exact msign a user gets by asking for ``svd``.
"""

from __future__ import annotations

from typing import Any

from . import Adapter


def _hb(mode: str | None = None) -> Any:
    """The heavyball module, eager (and with the requested zeroth-power mode)."""
    import heavyball
    import heavyball.utils

    heavyball.utils.compile_mode = None
    if mode is not None:
        heavyball.utils.zeroth_power_mode = mode
    return heavyball


class _HeavyballBase(Adapter):
    requires = ("heavyball",)
    capabilities = frozenset({"msign", "optimizer"})
    zeroth_power_mode = "newtonschulz"

    def msign(self, G: Any) -> Any:
        hb = _hb(self.zeroth_power_mode)
        return hb.utils.inplace_orthogonal_(G.clone(), mode=self.zeroth_power_mode)

    def group_hyper(self, lr: float, momentum: float, weight_decay: float) -> dict[str, Any]:
        return {"lr": lr, "betas": (momentum, 0.99), "weight_decay": weight_decay}

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        st = opt.state.get(p, {})
        found = _find_tensor(st, p)
        return found


def _find_tensor(st: Any, p: Any) -> Any:
    """heavyball keeps state in nested dicts keyed by chain step; the first same-shape tensor."""
    import torch

    if isinstance(st, torch.Tensor):
        return st if st.shape == p.shape else None
    if isinstance(st, dict):
        for v in st.values():
            t = _find_tensor(v, p)
            if t is not None:
                return t
    if isinstance(st, (list, tuple)):
        for v in st:
            t = _find_tensor(v, p)
            if t is not None:
                return t
    return None


class HeavyballMuonAdapter(_HeavyballBase):
    """heavyball.Muon (eager), Newton–Schulz orthogonaliser."""

    name = "heavyball.Muon"
    profile = "heavyball_muon"
    #: the heavyball class (Muon and Scion take the same constructor arguments used here)
    cls_name = "Muon"

    def optimizer(self, params: list, lr: float = 0.0025, momentum: float = 0.9, weight_decay: float = 0.0) -> Any:
        hb = _hb(self.zeroth_power_mode)
        return getattr(hb, self.cls_name)(list(params), lr=lr, betas=(momentum, 0.99), weight_decay=weight_decay,
                                          consume_grad=False)


class HeavyballMuonSVDAdapter(HeavyballMuonAdapter):
    """heavyball.Muon with ``heavyball.utils.zeroth_power_mode = "svd"`` (declared: exact msign)."""

    name = "heavyball.Muon (zeroth_power_mode=svd)"
    profile = "heavyball_muon_svd"
    zeroth_power_mode = "svd"


class HeavyballScionAdapter(HeavyballMuonAdapter):
    """heavyball.Scion (eager), spectral LMO for matrices."""

    name = "heavyball.Scion"
    profile = "heavyball_scion"
    cls_name = "Scion"
