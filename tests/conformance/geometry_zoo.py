"""Geometry-capability adapters for the meta-tests of conformance/checks/geometry.py (issue 12
items 4, 6): one correct implementation (the torch twins of ``gpu_impl.geodesics``, computing in
the dtype of the input: float64, float32, bfloat16) and defective copies planting one realistic
defect each. ``GEO_DEFECTS`` maps each defective adapter to the check meant to catch it.
"""

from __future__ import annotations

from typing import Any

import torch

from manifold_oracle.conformance.adapters import Adapter
from manifold_oracle.conformance.profiles import ManifoldDecl, Profile
from manifold_oracle.gpu_impl import geodesics as G

GEO_PROFILE = Profile(
    name="zoo_geometry", description="torch sphere-family geometry in the input dtype (fp32 declared, "
    "bf16 and float64 also checked)", compute_dtype="float32", return_dtype="input",
    manifolds=(ManifoldDecl("frobenius", "frobenius_sphere", radius=1.0, retraction="rescale", dtype="float32",
                            extra_dtypes=("bfloat16",)),
               ManifoldDecl("oblique_rows", "oblique", axis="rows", radius=1.0, retraction="normalize",
                            dtype="float32", extra_dtypes=("bfloat16",)),
               ManifoldDecl("oblique_cols", "oblique", axis="cols", radius=1.0, retraction="normalize",
                            dtype="float32", extra_dtypes=("bfloat16",), shapes=((5, 3),))),
)
_KIND = {d.name: (d.kind, d.axis or "rows") for d in GEO_PROFILE.manifolds}


class GoodGeometry(Adapter):
    """Correct: gpu_impl.geodesics on the declared sphere views."""

    name = "zoo: correct sphere-family geometry"
    profile = GEO_PROFILE
    capabilities = frozenset({"dist", "log", "exp", "project_point", "riemannian_gradient", "transport"})

    def _v(self, manifold: str, X: torch.Tensor) -> torch.Tensor:
        kind, axis = _KIND[manifold]
        return G.as_spheres(X, kind, axis)

    def _back(self, manifold: str, V: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        kind, axis = _KIND[manifold]
        return G.from_spheres(V, like, kind, axis)

    def dist(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        return torch.linalg.vector_norm(G.sphere_angle(self._v(manifold, X), self._v(manifold, Y)))

    def log(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_log(self._v(manifold, X), self._v(manifold, Y)), X)

    def exp(self, manifold: str, X: torch.Tensor, A: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_exp(self._v(manifold, X), self._v(manifold, A)), X)

    def project_point(self, manifold: str, Y: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_project(self._v(manifold, Y)), Y)

    def riemannian_gradient(self, manifold: str, W: torch.Tensor, Gr: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_rgrad(self._v(manifold, W), self._v(manifold, Gr)), W)

    def transport(self, manifold: str, X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_rgrad(self._v(manifold, Y), self._v(manifold, A)), A)


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


class ArccosClampDist(GoodGeometry):
    """dist = arccos of the inner product clamped to [−1 + 1e-7, 1 − 1e-7] (geoopt's form)."""

    def dist(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        x, y = self._v(manifold, X), self._v(manifold, Y)
        return torch.linalg.vector_norm(torch.acos(_inner(x, y).clamp(-1 + 1e-7, 1 - 1e-7)))


class ProductDistSummed(GoodGeometry):
    """Oblique distance as Σ θᵢ instead of the product metric √Σ θᵢ²."""

    def dist(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        return G.sphere_angle(self._v(manifold, X), self._v(manifold, Y)).sum()


class ArccosLogNaN(GoodGeometry):
    """log with θ = arccos⟨x, y⟩ (no clamp) and u·θ/‖u‖: NaN at coincident points."""

    def log(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        x, y = self._v(manifold, X), self._v(manifold, Y)
        u = G.sphere_rgrad(x, y - x)
        th = torch.acos(_inner(x, y))
        return self._back(manifold, u * (th / torch.linalg.vector_norm(u, dim=-1)).unsqueeze(-1), X)


class ExpIsRetraction(GoodGeometry):
    """exp implemented as the normalising retraction (x + ξ)/‖x + ξ‖."""

    def exp(self, manifold: str, X: torch.Tensor, A: torch.Tensor) -> Any:
        x, a = self._v(manifold, X), self._v(manifold, A)
        return self._back(manifold, (x + a) / torch.linalg.vector_norm(x + a, dim=-1, keepdim=True), X)


class ProjectNoZeroGuard(GoodGeometry):
    """Projection y/‖y‖ without a zero guard: NaN for a zero input (geoopt's projx)."""

    def project_point(self, manifold: str, Y: torch.Tensor) -> Any:
        y = self._v(manifold, Y)
        return self._back(manifold, y / torch.linalg.vector_norm(y, dim=-1, keepdim=True), Y)


class RgradWrongAxis(GoodGeometry):
    """Riemannian gradient projected row-wise whatever the declared axis (rows/cols swapped)."""

    def riemannian_gradient(self, manifold: str, W: torch.Tensor, Gr: torch.Tensor) -> Any:
        if _KIND[manifold][0] == "oblique":
            return G.sphere_rgrad(W, Gr)
        return super().riemannian_gradient(manifold, W, Gr)


class TransportNotTangent(GoodGeometry):
    """Transport that projects onto T_X instead of T_Y (returns the vector unchanged)."""

    def transport(self, manifold: str, X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor) -> Any:
        return self._back(manifold, G.sphere_rgrad(self._v(manifold, X), self._v(manifold, A)), A)


#: planted defect → the check meant to catch it
GEO_DEFECTS: dict[type, str] = {
    ArccosClampDist: "geometry.dist",
    ProductDistSummed: "geometry.dist",
    ArccosLogNaN: "geometry.log",
    ExpIsRetraction: "geometry.exp",
    ProjectNoZeroGuard: "geometry.project_point",
    RgradWrongAxis: "geometry.riemannian_gradient",
    TransportNotTangent: "geometry.transport",
}
