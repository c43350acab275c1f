"""Torch twins of ``reference.geodesics`` (sphere family; the Stiefel exp), in the dtype of the input.

Every function acts on the **last axis** (one sphere per vector). The Frobenius sphere is the
sphere of the flattened matrix (:func:`as_spheres`), the oblique manifold the product of its
row (``axis="rows"``) or column spheres. Formulas (MATH.md §4; see the reference module for the
error analysis): θ = 2·atan2(‖x − y‖, ‖x + y‖); log_x(y) = r·θ·u/‖u‖, u = P_x(y − x), 0 at
y = x; exp_x(ξ) = cos(t/r)·x + r·sin(t/r)·ξ/t, x at ξ = 0; parallel transport
ξ − 2⟨y, ξ⟩/‖x + y‖²·(x + y); metric projection r·y/‖y‖. Degenerate inputs raise the
reference's typed errors: the antipode for log/parallel transport, a zero vector for the
projection (:class:`DegenerateGeometryError`). The checks need a device sync, so these are
for validation and tooling, not for an optimizer's hot loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError
from manifold_oracle.reference.kinds import get_kind

__all__ = ["as_spheres", "from_spheres", "sphere_angle", "sphere_log", "sphere_exp", "sphere_parallel",
           "sphere_project", "sphere_rgrad", "stiefel_exp"]


#: the kinds (``reference.kinds`` names or aliases) whose points are stacks of sphere vectors
SPHERE_VIEW_KINDS = ("frobenius_sphere", "oblique_rows", "oblique_cols", "sphere")


def _flattened(X: Tensor, kind: str, axis: str) -> bool:
    """Validate the view arguments (InvalidInputError); True for the Frobenius sphere's view."""
    if not isinstance(X, Tensor) or X.ndim < 2:
        raise InvalidInputError(f"expected a tensor of shape (..., m, n), got {getattr(X, 'shape', type(X))!r}")
    if axis not in ("rows", "cols"):
        raise InvalidInputError(f"axis must be 'rows' or 'cols', got {axis!r}")
    name = get_kind(kind).name  # InvalidInputError for an unknown kind
    if name not in SPHERE_VIEW_KINDS:
        raise InvalidInputError(f"kind {kind!r} has no sphere-vector view; known: {SPHERE_VIEW_KINDS}")
    return name == "frobenius_sphere"


def _vectors(*xs: Tensor) -> None:
    """Same-shape real floating tensors of shape (..., n), n ≥ 1 (InvalidInputError; no sync)."""
    for x in xs:
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1 or x.shape[-1] == 0:
            raise InvalidInputError("expected real floating tensors of shape (..., n) with n >= 1, got "
                                    f"{[(tuple(getattr(t, 'shape', ())), getattr(t, 'dtype', type(t))) for t in xs]}")
    if any(x.shape != xs[0].shape for x in xs):
        raise InvalidInputError(f"the vectors must have one shape, got {[tuple(x.shape) for x in xs]}")


def _radius(r: float | Tensor, name: str) -> None:
    """A Python-number radius must be finite and > 0 (InvalidInputError); a tensor's values are
    not read (no device sync)."""
    if isinstance(r, Tensor):
        return
    try:
        ok = 0 < float(r) < float("inf")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(f"{name} must be finite and > 0, got {r!r}")


def as_spheres(X: Tensor, kind: str, axis: str = "rows") -> Tensor:
    """View a matrix (..., m, n) as a stack of sphere vectors: (..., 1, m·n) for the Frobenius
    sphere, rows (..., m, n) or columns (..., n, m) for the oblique manifold."""
    if _flattened(X, kind, axis):
        return X.reshape(X.shape[:-2] + (1, -1))
    return X if axis == "rows" else X.mT


def from_spheres(V: Tensor, like: Tensor, kind: str, axis: str = "rows") -> Tensor:
    """Inverse of :func:`as_spheres`."""
    if _flattened(like, kind, axis):
        if not isinstance(V, Tensor) or V.numel() != like.numel():
            raise InvalidInputError(f"from_spheres: V {tuple(getattr(V, 'shape', ()))} does not hold a matrix of "
                                    f"shape {tuple(like.shape)}")
        return V.reshape(like.shape)
    return V if axis == "rows" else V.mT


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _norm(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


def sphere_angle(x: Tensor, y: Tensor) -> Tensor:
    """θ = 2·atan2(‖x − y‖, ‖x + y‖) per vector: accurate relative to θ, also near 0 and π."""
    _vectors(x, y)
    return 2.0 * torch.atan2(_norm(x - y), _norm(x + y))


def sphere_log(x: Tensor, y: Tensor) -> Tensor:
    """log_x(y) per vector; exactly 0 at y = x; raises at the antipode (log not unique)."""
    _vectors(x, y)
    d = y - x
    u = d - (_dot(x, d) / _dot(x, x)).unsqueeze(-1) * x
    th = sphere_angle(x, y)
    nu = _norm(u)
    if bool(((nu == 0) & (th > 0)).any()):
        raise DegenerateGeometryError("‖P_x(y − x)‖ at y ≠ x", 0.0, 0.0, "y is the antipode of x: log not unique")
    factor = torch.where(nu > 0, _norm(x) * th / torch.where(nu > 0, nu, torch.ones_like(nu)), torch.zeros_like(nu))
    return u * factor.unsqueeze(-1)


def sphere_exp(x: Tensor, a: Tensor, r: float | Tensor = 1.0) -> Tensor:
    """exp_x(a) per vector on the sphere of radius r; x where a = 0."""
    _vectors(x, a)
    _radius(r, "sphere_exp: the radius r")
    t = _norm(a).unsqueeze(-1)
    safe = torch.where(t > 0, t, torch.ones_like(t))
    return x * torch.cos(t / r) + r * torch.sin(t / r) * a / safe


def sphere_parallel(x: Tensor, y: Tensor, a: Tensor) -> Tensor:
    """Parallel transport of a ∈ T_x to T_y along the minimising geodesic; raises at the antipode."""
    _vectors(x, y, a)
    s = _norm(x + y)
    if bool((s == 0).any()):
        raise DegenerateGeometryError("‖x + y‖", 0.0, 0.0, "parallel transport to the antipode is not unique")
    return a - (2.0 * _dot(y, a) / s**2).unsqueeze(-1) * (x + y)


def sphere_project(y: Tensor, r: float | Tensor = 1.0) -> Tensor:
    """Metric projection r·y/‖y‖ per vector; raises on a zero vector (every point is nearest)."""
    _vectors(y)
    _radius(r, "sphere_project: the radius r")
    n = _norm(y)
    if bool((n == 0).any()):
        raise DegenerateGeometryError("norm of the vector to project", 0.0, 0.0,
                                      "the projection of 0 onto the sphere is not unique")
    return r * y / n.unsqueeze(-1)


def sphere_rgrad(x: Tensor, g: Tensor) -> Tensor:
    """Riemannian gradient of the embedded metric: P_x(g) = g − (⟨x, g⟩/‖x‖²)·x per vector."""
    _vectors(x, g)
    return g - (_dot(x, g) / _dot(x, x)).unsqueeze(-1) * x


def stiefel_exp(X: Tensor, A: Tensor, s: float = 1.0) -> Tensor:
    """Embedded-metric geodesic exp on St(m, n; s), closed form of Edelman, Arias & Smith (1998):
    [X, Ξ]·expm([[XᵀΞ, −ΞᵀΞ], [I, XᵀΞ]])·[I; 0]·expm(−XᵀΞ) on X/s, Ξ/s; wide inputs are transposed."""
    _vectors(X, A)
    if X.ndim < 2 or X.shape[-2] == 0:
        raise InvalidInputError(f"stiefel_exp needs X and A of shape (..., m, n), got {tuple(X.shape)}")
    _radius(s, "stiefel_exp: the scale s")
    wide = X.shape[-2] < X.shape[-1]
    if wide:
        X, A = X.mT, A.mT
    Xs, D = X / s, A / s
    n = Xs.shape[-1]
    M = Xs.mT @ D
    S = D.mT @ D
    eye = torch.eye(n, dtype=X.dtype, device=X.device).expand_as(M)
    blk = torch.cat([torch.cat([M, -S], dim=-1), torch.cat([eye, M], dim=-1)], dim=-2)
    E = torch.linalg.matrix_exp(blk)[..., :, :n]
    out = s * (torch.cat([Xs, D], dim=-1) @ E @ torch.linalg.matrix_exp(-M))
    return out.mT if wide else out
