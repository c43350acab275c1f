"""Adapter for pymanopt 2.2.1 manifolds (numpy, float64): ``Sphere(m, n)`` (Frobenius sphere of
the whole array), ``Oblique(m, n)`` (unit **columns**), ``Stiefel(n, p)`` with the ``qr`` (first
order) and ``polar`` (second order) retractions. Capabilities: ``project_tangent``, ``retract``
and the geometry capabilities ``dist``, ``log``, ``exp``, ``riemannian_gradient``
(``euclidean_to_riemannian_gradient``) and ``transport`` (projection). pymanopt 2.2.1 has no
membership test and no public projection onto the manifold (``project_point`` is not declared);
its Stiefel has no ``dist``/``log`` (NotImplementedError): declared unsupported. Profile
``pymanopt`` (CONVENTIONS.md §4.14).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Adapter


class PymanoptAdapter(Adapter):
    """pymanopt.manifolds.{Sphere, Oblique, Stiefel} on numpy float64 arrays."""

    name = "pymanopt"
    profile = "pymanopt"
    capabilities = frozenset({"project_tangent", "retract", "dist", "log", "exp", "riemannian_gradient",
                              "transport"})
    requires = ("pymanopt.manifolds",)

    def _man(self, name: str, shape: tuple[int, int]) -> Any:
        import pymanopt.manifolds as M

        m, n = shape
        if name == "Sphere":
            return M.Sphere(m, n)
        if name == "Oblique":
            return M.Oblique(m, n)
        if name == "Stiefel(qr)":
            return M.Stiefel(m, n, retraction="qr")
        if name == "Stiefel(polar)":
            return M.Stiefel(m, n, retraction="polar")
        raise KeyError(name)

    @staticmethod
    def _np(x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().astype(np.float64) if hasattr(x, "detach") else np.asarray(x, np.float64)

    def _run(self, manifold: str, method: str, W: Any, *rest: Any) -> Any:
        w = self._np(W)
        return getattr(self._man(manifold, w.shape), method)(w, *(self._np(r) for r in rest))

    def project_tangent(self, manifold: str, W: Any, G: Any) -> Any:
        return self._run(manifold, "projection", W, G)

    def retract(self, manifold: str, W: Any, A: Any) -> Any:
        return self._run(manifold, "retraction", W, A)

    def dist(self, manifold: str, X: Any, Y: Any) -> Any:
        return np.asarray(self._run(manifold, "dist", X, Y))

    def log(self, manifold: str, X: Any, Y: Any) -> Any:
        return self._run(manifold, "log", X, Y)

    def exp(self, manifold: str, X: Any, A: Any) -> Any:
        return self._run(manifold, "exp", X, A)

    def riemannian_gradient(self, manifold: str, W: Any, G: Any) -> Any:
        return self._run(manifold, "euclidean_to_riemannian_gradient", W, G)

    def transport(self, manifold: str, X: Any, Y: Any, A: Any) -> Any:
        return self._run(manifold, "transport", X, Y, A)
