"""Geometry-capability adapters for the meta-tests of conformance/checks/geometry.py (issue 12
items 4, 6): one correct implementation (the torch twins of ``gpu_impl.geodesics``, computing in
the dtype of the input: float64, float32, bfloat16) and defective copies planting one realistic
defect each. ``GEO_DEFECTS`` maps each defective adapter to the check meant to catch it.
Audit 5b additions: float32-declared retractions (``GoodRetraction``: Stiefel polar / QR / Cayley,
spectral rescale, oblique) with ``RETR_DEFECTS`` for geometry.retraction.value, an exp clamped at
π·r, a log refusing valid input near the cut locus, and gpu_impl with a spectral-sphere transport
at X or a misdeclared spectral retraction order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from manifold_oracle.conformance.adapters import Adapter
from manifold_oracle.conformance.adapters.gpu_impl import GpuImplAdapter
from manifold_oracle.conformance.profiles import ManifoldDecl, Profile, get_profile
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


class ExpClampPi(GoodGeometry):
    """exp that clamps the geodesic length to π·r ("never past the antipode")."""

    def exp(self, manifold: str, X: torch.Tensor, A: torch.Tensor) -> Any:
        x, a = self._v(manifold, X), self._v(manifold, A)
        n = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
        a = torch.where(n > torch.pi, a * (torch.pi / n), a)  # unit radius: length = ‖a‖
        return self._back(manifold, G.sphere_exp(x, a), X)


class LogRefusesNearCut(GoodGeometry):
    """log that refuses a whole band θ > π − 0.05 near the cut locus, not only the antipode."""

    def log(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> Any:
        if bool((G.sphere_angle(self._v(manifold, X), self._v(manifold, Y)) > torch.pi - 0.05).any()):
            raise ValueError("log: points too close to antipodal")
        return super().log(manifold, X, Y)


#: planted defect → the check meant to catch it
GEO_DEFECTS: dict[type, str] = {
    ArccosClampDist: "geometry.dist",
    ProductDistSummed: "geometry.dist",
    ArccosLogNaN: "geometry.log",
    ExpIsRetraction: "geometry.exp",
    ProjectNoZeroGuard: "geometry.project_point",
    RgradWrongAxis: "geometry.riemannian_gradient",
    TransportNotTangent: "geometry.transport",
    ExpClampPi: "geometry.exp",  # audit 5b: caught by the ‖A‖ = 1.5·π·r case
}


# ------------------------------------------------------------------ retractions (audit 5b)
# float32-declared retractions (geometry.retraction.order is N/A there: only retraction.value
# compares R_W(ξ) with the reference), on tall, wide and square shapes.
RETR_PROFILE = Profile(
    name="zoo_retraction", description="torch retractions, fp32 declared: Stiefel polar / qr / Cayley, "
    "spectral rescale, column-oblique", compute_dtype="float32", return_dtype="input",
    manifolds=(ManifoldDecl("st_polar", "stiefel", retraction="polar", dtype="float32",
                            shapes=((7, 3), (3, 7), (5, 5))),
               ManifoldDecl("st_qr", "stiefel", retraction="qr", retraction_order=1, dtype="float32"),
               ManifoldDecl("st_cayley", "stiefel", radius=1.5, retraction="cayley", retraction_order=1,
                            dtype="float32", shapes=((7, 3), (3, 7))),
               ManifoldDecl("spectral", "spectral_sphere", retraction="rescale", retraction_order=1,
                            dtype="float32"),
               ManifoldDecl("oblique_cols", "oblique", axis="cols", radius=0.5, retraction="normalize",
                            dtype="float32")),
)


def _decl(profile: Profile, name: str) -> ManifoldDecl:
    return next(d for d in profile.manifolds if d.name == name)


class GoodRetraction(Adapter):
    """Correct: gpu_impl.manifolds' retractions (polar, sign-fixed QR, rescale, normalize) and a
    torch Cayley retraction (Wen–Yin, embedded metric) in the input dtype."""

    name = "zoo: correct retractions (fp32)"
    profile = RETR_PROFILE
    capabilities = frozenset({"retract"})
    #: the ½ of the Cayley transform (I − hK)⁻¹(I + hK)
    half = 0.5

    def cayley(self, W: torch.Tensor, A: torch.Tensor, s: float) -> torch.Tensor:
        wide = W.shape[-2] < W.shape[-1]
        t, a = (W.mT, A.mT) if wide else (W, A)
        t, a = t / s, a / s
        pa = a - 0.5 * t @ (t.mT @ a)
        K = pa @ t.mT - t @ pa.mT
        eye = torch.eye(t.shape[-2], dtype=t.dtype)
        out = s * torch.linalg.solve(eye - self.half * K, (eye + self.half * K) @ t)
        return out.mT if wide else out

    def qr(self, W: torch.Tensor, A: torch.Tensor, s: float) -> torch.Tensor:
        from manifold_oracle.gpu_impl.manifolds import Stiefel

        return Stiefel(s).retract(W, A, "qr")

    def retract(self, manifold: str, W: torch.Tensor, A: torch.Tensor) -> Any:
        from manifold_oracle.gpu_impl.manifolds import make_manifold

        d = _decl(self.get_profile(), manifold)
        if d.retraction == "cayley":
            return self.cayley(W, A, d.radius)
        if d.retraction == "qr":
            return self.qr(W, A, d.radius)
        return make_manifold(d.canonical_kind, d.radius).retract(W, A, d.retraction)


class CayleyNoHalf(GoodRetraction):
    """Cayley retraction with the ½ missing: (I − K)⁻¹(I + K)W, a step twice as long."""

    half = 1.0


class QRWideNoSignFix(GoodRetraction):
    """QR retraction whose sign fix diag(R) > 0 is applied on the tall path only: a wide W goes
    through Wᵀ without it (jumps to a column-sign-flipped point when a pivot is negative)."""

    def qr(self, W: torch.Tensor, A: torch.Tensor, s: float) -> torch.Tensor:
        if W.shape[-2] >= W.shape[-1]:
            return super().qr(W, A, s)
        Q, _ = torch.linalg.qr((W + A).mT)
        return s * Q.mT


class QRDeclaredPolar(GoodRetraction):
    """The sign-fixed QR retraction (first order) under a declaration of the polar one."""

    def retract(self, manifold: str, W: torch.Tensor, A: torch.Tensor) -> Any:
        if manifold == "st_polar":
            return self.qr(W, A, 1.0)
        return super().retract(manifold, W, A)


#: planted retraction defect → the manifold declaration whose cases must fail retraction.value
RETR_DEFECTS: dict[type, str] = {CayleyNoHalf: "st_cayley", QRWideNoSignFix: "st_qr", QRDeclaredPolar: "st_polar"}


# gpu_impl (the built-in target) with one planted change: the spectral sphere's transport, or its
# declared retraction order
def _gpu_spectral(**changes: Any) -> Profile:
    base = get_profile("gpu_impl")
    mans = tuple(dataclasses.replace(d, **changes) if d.kind == "spectral_sphere" else d for d in base.manifolds)
    return dataclasses.replace(base, name="zoo_gpu_impl_spectral_mod", manifolds=mans)


class SpectralTransportAtX(GpuImplAdapter):
    """gpu_impl whose spectral-sphere transport projects at X instead of Y (not tangent at Y)."""

    def transport(self, manifold: str, X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        if _decl(self.get_profile(), manifold).kind == "spectral_sphere":
            return self._man(manifold).project_tangent(X, A)
        return super().transport(manifold, X, Y, A)


class SpectralOrderMisdeclared(GpuImplAdapter):
    """gpu_impl's (first-order) spectral rescale retraction declared second order."""

    profile = _gpu_spectral(retraction_order=2)
