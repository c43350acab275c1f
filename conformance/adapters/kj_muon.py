"""Adapter for Keller Jordan's Muon (PyPI ``muon-optimizer`` 0.1.0, module ``muon``).

Capabilities: ``msign`` (``muon.zeropower_via_newtonschulz5(G, steps=5)``) and ``optimizer``
(``muon.SingleDeviceMuon``; ``muon.Muon`` needs torch.distributed). Profile ``kj_muon``
(CONVENTIONS.md §4.1). The PyPI package ``muon`` (an omics framework) installs a module of the
same name; it is detected and reported as not available.
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class KJMuonAdapter(Adapter):
    """KellerJordan/Muon SingleDeviceMuon and zeropower_via_newtonschulz5."""

    name = "muon-optimizer (KellerJordan/Muon)"
    profile = "kj_muon"
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("muon",)

    def check_available(self) -> None:
        super().check_available()
        import muon

        from manifold_oracle.reference.errors import NotAvailableError

        if not (hasattr(muon, "zeropower_via_newtonschulz5") and hasattr(muon, "SingleDeviceMuon")):
            raise NotAvailableError("the importable 'muon' module is not muon-optimizer (PyPI 'muon' is an "
                                    "unrelated omics package; pip install muon-optimizer)")

    def msign(self, G: Any) -> Any:
        import muon

        return muon.zeropower_via_newtonschulz5(G, steps=5)

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0) -> Any:
        import muon

        return muon.SingleDeviceMuon(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
