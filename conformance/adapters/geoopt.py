"""Adapter for geoopt 0.5.1 manifolds: ``Sphere`` (acts on the last dimension, so a matrix is
row-oblique) and ``EuclideanStiefel`` (projection u − x·sym(xᵀu), QR retraction with the sign
fix: first order). Capabilities: ``project_tangent``, ``retract``, ``contains``. Profile
``geoopt`` (CONVENTIONS.md §4.14).
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class GeooptAdapter(Adapter):
    """geoopt.Sphere and geoopt.EuclideanStiefel on float64 tensors."""

    name = "geoopt"
    profile = "geoopt"
    capabilities = frozenset({"project_tangent", "retract", "contains"})
    requires = ("geoopt",)

    def _man(self, name: str) -> Any:
        import geoopt

        return {"Sphere": geoopt.Sphere, "Stiefel": geoopt.EuclideanStiefel}[name]()

    def project_tangent(self, manifold: str, W: Any, G: Any) -> Any:
        return self._man(manifold).proju(W, G)

    def retract(self, manifold: str, W: Any, A: Any) -> Any:
        return self._man(manifold).retr(W, A)

    def contains(self, manifold: str, W: Any, atol: float) -> bool:
        ok, _ = self._man(manifold).check_point_on_manifold(W, explain=True, atol=atol, rtol=0.0)
        return bool(ok)
