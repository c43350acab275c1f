"""Adapter for pymanopt 2.2.1 manifolds (numpy, float64): ``Sphere(m, n)`` (Frobenius sphere of
the whole array), ``Oblique(m, n)`` (unit **columns**), ``Stiefel(n, p)`` with the ``qr`` (first
order) and ``polar`` (second order) retractions. Capabilities: ``project_tangent``, ``retract``.
pymanopt 2.2.1 has no membership test. Profile ``pymanopt`` (CONVENTIONS.md §4.14).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Adapter


class PymanoptAdapter(Adapter):
    """pymanopt.manifolds.{Sphere, Oblique, Stiefel} on numpy float64 arrays."""

    name = "pymanopt"
    profile = "pymanopt"
    capabilities = frozenset({"project_tangent", "retract"})
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

    def project_tangent(self, manifold: str, W: Any, G: Any) -> Any:
        w = self._np(W)
        return self._man(manifold, w.shape).projection(w, self._np(G))

    def retract(self, manifold: str, W: Any, A: Any) -> Any:
        w = self._np(W)
        return self._man(manifold, w.shape).retraction(w, self._np(A))
