"""Adapter for geoopt 0.5.1 manifolds: ``Sphere`` (acts on the last dimension, so a matrix is
row-oblique) and ``EuclideanStiefel`` (projection u − x·sym(xᵀu), QR retraction with the sign
fix: first order). Capabilities: ``project_tangent``, ``retract``, ``contains`` and the geometry
capabilities ``dist``, ``log``, ``exp``, ``project_point``, ``riemannian_gradient`` (geoopt's
``egrad2rgrad``) and ``transport`` (geoopt's ``transp``: projection). geoopt computes in the
dtype of its input: the profile declares float32 (geoopt's default) as an extra geometry dtype.
Profile ``geoopt`` (CONVENTIONS.md §4.14).

Written as a user would write it: each capability calls the geoopt method of the same meaning.
The one convention mapped here: on a matrix, ``geoopt.Sphere.dist`` returns one distance per row
(a batch of spheres), combined into the product-manifold distance √Σ dᵢ². ``EuclideanStiefel``
has no ``dist``/``logmap`` (geoopt raises NotImplementedError): declared unsupported.
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class GeooptAdapter(Adapter):
    """geoopt.Sphere and geoopt.EuclideanStiefel on torch tensors (float64 and float32)."""

    name = "geoopt"
    profile = "geoopt"
    capabilities = frozenset({"project_tangent", "retract", "contains", "dist", "log", "exp",
                              "project_point", "riemannian_gradient", "transport"})
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

    def dist(self, manifold: str, X: Any, Y: Any) -> Any:
        d = self._man(manifold).dist(X, Y)
        return d.norm() if d.ndim else d  # per-row distances → product metric

    def log(self, manifold: str, X: Any, Y: Any) -> Any:
        return self._man(manifold).logmap(X, Y)

    def exp(self, manifold: str, X: Any, A: Any) -> Any:
        return self._man(manifold).expmap(X, A)

    def project_point(self, manifold: str, Y: Any) -> Any:
        return self._man(manifold).projx(Y)

    def riemannian_gradient(self, manifold: str, W: Any, G: Any) -> Any:
        return self._man(manifold).egrad2rgrad(W, G)

    def transport(self, manifold: str, X: Any, Y: Any, A: Any) -> Any:
        return self._man(manifold).transp(X, Y, A)
