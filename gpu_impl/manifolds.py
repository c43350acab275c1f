"""Matrix manifolds in torch, mirroring ``reference.manifolds`` (MATH.md §4), batched, device-agnostic.

Same method names and formulas as the reference: ``violation``, ``contains``, ``check_point``,
``project_tangent`` (= ``riemannian_gradient``), ``normal_component``, ``tangent_violation``,
``retract(W, A, method=None)`` with the ``retractions`` tuple (first = default),
``project_point`` and ``random_point``. Differences from the reference, all deliberate:

* Points are **not** validated against ``point_tol`` on every call (that would need a device sync
  per call); use ``check_point`` explicitly. Inputs are never modified.
* Radii may be a float or a tensor of per-matrix radii of shape ``(...)`` (the batch shape), so a
  stack of parameters with different radii is handled in one call. A tensor radius is checked
  (finite, > 0) at construction with one device sync; ``check_radius=False`` skips the read
  (the optimizers, which build manifolds from their own validated radii on every step). ``Oblique`` also accepts
  per-row/per-column radii of shape ``(..., count)``.
* The spectral sphere needs the top singular pair (u₁, v₁) of W. It comes from an explicit
  ``frame=(u, v)`` argument, or is computed by :meth:`SpectralSphere.top_pair`: the certified
  pair (``theta="certified"``, the default: a warm-started block Krylov iteration stopped by
  a-posteriori bounds, :func:`pair_certificate`; the cached vectors live in a ``state`` dict
  that the caller owns, e.g. the optimizer's per-parameter state), a fixed-step warm-started
  subspace iteration (``theta="power"``, uncertified) or the exact SVD (``theta="exact"``). The
  second Ritz value estimates σ₂ (exact σ₂ with ``theta="exact"``); per
  ``gap_policy`` the spectral-gap guard raises :class:`DegenerateGeometryError` (``"raise"``),
  only reports the gap (``"report"``, the default) or skips the estimate (``"off"``).
* Degenerate inputs of a retraction (a zero matrix, row or column) produce a zero normaliser;
  ``retract`` does not check for it (no sync); :meth:`violation` of the result is then NaN.

Power-iteration accuracy (MATH.md §4.4): after k warm steps the angle of the right iterate to v₁
shrinks by (σ₂/σ₁)^{2k} per call, and σ̂ = uᵀWv underestimates σ₁ by O(angle²·σ₁). The
residual ``‖Wᵀû − σ̂v̂‖`` (reported in :class:`TopPair` relative to σ̂; ``Wv̂ = σ̂û`` holds by
construction) bounds sin∠(v̂, v₁) by ‖Wᵀû − σ̂v̂‖/(σ̂ − σ₂) (Wedin). Both Ritz values are lower bounds of σ₁ and σ₂ (interlacing), so
the estimated gap can be larger or smaller than the true one by the estimation error.
``theta="certified"`` bounds the gap from below with the Ritz values and residuals
(:func:`pair_certificate`, under the capture hypothesis stated there); ``theta="exact"`` has it
exactly.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

from dataclasses import dataclass
from typing import Any, MutableMapping, Sequence

import torch
from torch import Tensor

from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError, OffManifoldError, SolverError
from manifold_oracle.reference.kinds import get_kind


__all__ = [
    "TorchManifold",
    "Euclidean",
    "FrobeniusSphere",
    "SpectralSphere",
    "Oblique",
    "Stiefel",
    "TopPair",
    "pair_certificate",
    "ritz_products",
    "make_manifold",
    "frobenius_project",
    "spectral_project",
    "MANIFOLD_NAMES",
    "TORCH_KINDS",
    "CERT_ITERATIONS",
    "PAIR_STATE",
    "check_count",
]

DEFAULT_POINT_TOL = 1e-8
#: sources of the spectral sphere's top pair (``SpectralSphere(theta=...)``)
THETA_SOURCES = ("power", "exact", "certified")
#: the first iteration of a warm-started certified pair (SpectralSphere ``cert_iteration``)
CERT_ITERATIONS = ("chebyshev", "krylov")
#: the per-matrix state ``SpectralSphere.top_pair`` keeps between calls: the Ritz basis (all Θ
#: sources but "exact") and the certified pair's adaptive Chebyshev degree
PAIR_STATE = ("basis", "degree")
Radius = float | Tensor


def _mdot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=(-2, -1))


def _fro(a: Tensor) -> Tensor:
    return torch.linalg.vector_norm(a, dim=(-2, -1))


def _sym(a: Tensor) -> Tensor:
    return 0.5 * (a + a.mT)


def _bcast(r: Radius, like: Tensor) -> Tensor | float:
    """Radius as a float or a tensor broadcastable to ``(..., 1, 1)``."""
    if isinstance(r, Tensor):
        return r.to(like.dtype)[..., None, None]
    return r


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer option ≥ ``minimum`` as an int (integral floats accepted, as the reference's
    counts); bools, fractions, NaN, ±Inf and non-numbers raise :class:`InvalidInputError`."""
    if type(value) is int and value >= minimum:  # the common case, fast (per-step constructors)
        return value
    try:
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and float(value) == int(value) and int(value) >= minimum)
    except (ValueError, OverflowError):  # NaN, ±Inf
        ok = False
    if not ok:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _matrices(*xs: Tensor) -> None:
    """Real floating tensors of shape (..., m, n), m, n >= 1, all with one (m, n); batch axes may
    broadcast (InvalidInputError otherwise; host-side, no device sync)."""
    for x in xs:
        if not isinstance(x, Tensor) or x.is_complex() or not x.is_floating_point() or x.ndim < 2 \
                or 0 in x.shape[-2:]:
            raise InvalidInputError("expected real floating tensors of shape (..., m, n) with m, n >= 1, got "
                                    f"{[(tuple(getattr(t, 'shape', ())), getattr(t, 'dtype', type(t))) for t in xs]}")
    if any(x.shape[-2:] != xs[0].shape[-2:] for x in xs[1:]):
        raise InvalidInputError(f"the matrices must have one shape (m, n), got {[tuple(x.shape) for x in xs]}")


def _check_radius(r: Radius, name: str = "radius", check_values: bool = True) -> Radius:
    """Validate a radius: a float, or a real floating tensor whose entries are read (one device
    sync) unless ``check_values=False`` (dtype only: for callers on a hot path passing radii
    they produced and validated themselves, e.g. the optimizers' per-step stacked radii)."""
    if isinstance(r, Tensor):
        if r.is_complex() or not r.is_floating_point():
            raise InvalidInputError(f"{name} must be a real floating tensor")
        if check_values and r.numel() and not bool(((r > 0) & (r < float("inf"))).all()):
            raise InvalidInputError(f"{name} must be finite and > 0 in every entry, got {r!r}")
        return r
    try:
        v = float(r)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a positive number or tensor, got {r!r}") from None
    if not (v > 0 and v < float("inf")):
        raise InvalidInputError(f"{name} must be finite and > 0, got {r!r}")
    return v


def _linalg_failure(X: Tensor, what: str, e: Exception) -> InvalidInputError | SolverError:
    """The typed error for a failed SVD of ``X`` (raised by torch on CPU, e.g. for NaN input):
    :class:`InvalidInputError` when X has NaN/Inf entries, else :class:`SolverError`."""
    if not bool(torch.isfinite(X).all()):
        return InvalidInputError(f"{what}: the input of shape {tuple(X.shape)} has non-finite entries (NaN or Inf)")
    return SolverError(f"{what}: {e}")


class TorchManifold(ABC):
    """Common interface (see the module docstring). Subclasses implement one geometry."""

    retractions: tuple[str, ...] = ("projection",)
    name: str = "manifold"

    def __init__(self, point_tol: float = DEFAULT_POINT_TOL) -> None:
        self.point_tol = float(_check_radius(point_tol, "point_tol"))

    # -- public API ----------------------------------------------------------------------------
    @abstractmethod
    def violation(self, W: Tensor) -> Tensor:
        """Feasibility residual c_M(W) per matrix, shape ``(...)`` (exact; may use an SVD)."""

    def contains(self, W: Tensor, atol: float | None = None) -> bool:
        tol = self.point_tol if atol is None else float(atol)
        return bool((self.violation(W) <= tol).all())

    def check_point(self, W: Tensor, atol: float | None = None) -> None:
        """Raise :class:`OffManifoldError` unless every matrix has violation ≤ ``atol``."""
        tol = self.point_tol if atol is None else float(atol)
        v = self.violation(W)
        worst = float(v.max()) if v.numel() else 0.0
        if not worst <= tol:
            if not bool(torch.isfinite(W).all()):
                raise InvalidInputError(f"{self!r}.check_point: W has non-finite entries (NaN or Inf)")
            raise OffManifoldError(repr(self), worst, tol)

    @abstractmethod
    def project_tangent(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        """P_W(G), the orthogonal (Frobenius) projection onto T_W M."""

    def riemannian_gradient(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        return self.project_tangent(W, G, **kw)

    def normal_component(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        return G - self.project_tangent(W, G, **kw)

    @abstractmethod
    def tangent_violation(self, W: Tensor, A: Tensor, **kw: Any) -> Tensor:
        """Normalised tangency residual v_M(W, A) ∈ [0, 1] (0 for A = 0), shape ``(...)``."""

    def retract(self, W: Tensor, A: Tensor, method: str | None = None, **kw: Any) -> Tensor:
        """R_W(A) with the named retraction (default ``retractions[0]``)."""
        _matrices(W, A)
        name = self.retractions[0] if method is None else method
        if name not in self.retractions:
            raise InvalidInputError(f"{self!r}: unknown retraction {name!r}; known: {self.retractions}")
        return self._retract(W, A, name, **kw)

    @abstractmethod
    def project_point(self, Y: Tensor) -> Tensor:
        """Metric projection of an ambient ``Y`` onto M (nearest point in ‖·‖_F)."""

    def random_point(self, shape: Sequence[int], *, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
        """A random point of ``shape`` (leading axes are a batch): Gaussian, then projected."""
        g = torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device=device)
        return self.project_point(g).to(dtype)

    @abstractmethod
    def _retract(self, W: Tensor, A: Tensor, method: str, **kw: Any) -> Tensor:
        """The named retraction on validated input (``method`` ∈ ``retractions``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euclidean(TorchManifold):
    """R^{m×n}: P = I, R_W(ξ) = W + ξ, zero residuals (MATH.md §4.1)."""

    name = "euclidean"
    kind = "euclidean"

    def violation(self, W: Tensor) -> Tensor:
        """0 per matrix; NaN for a matrix with a NaN or Inf entry (not a point of R^{m×n})."""
        _matrices(W)
        return (W * 0).sum(dim=(-2, -1))

    def project_tangent(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        _matrices(W, G)
        return G.clone()

    def tangent_violation(self, W: Tensor, A: Tensor, **kw: Any) -> Tensor:
        """0 per matrix; NaN where W or A has a NaN or Inf entry (propagated, never "tangent")."""
        _matrices(W, A)
        return (W * 0 + A * 0).sum(dim=(-2, -1))

    def _retract(self, W: Tensor, A: Tensor, method: str, **kw: Any) -> Tensor:
        return W + A

    def project_point(self, Y: Tensor) -> Tensor:
        _matrices(Y)
        return Y.clone()


def frobenius_project(G: Tensor, W: Tensor, ww: Tensor | None = None) -> Tensor:
    """G − (⟨G, W⟩/‖W‖²_F)·W (divides by ‖W‖²_F, as the reference); ``ww`` = ‖W‖²_F if known."""
    ww = _mdot(W, W) if ww is None else ww
    c = _mdot(G, W) / ww
    return torch.addcmul(G, W, c[..., None, None], value=-1.0)


class FrobeniusSphere(TorchManifold):
    """M_F(R): ``P_W(G) = G − (⟨G, W⟩/‖W‖²_F)W``; retraction ``"rescale"`` R(W+ξ)/‖W+ξ‖_F
    (= ``"projection"``, the metric projection) or ``"exp"`` (geodesic; ξ must be tangent)."""

    retractions = ("rescale", "projection", "exp")
    name = "frobenius"
    kind = "frobenius_sphere"

    def __init__(self, radius: Radius = 1.0, point_tol: float = DEFAULT_POINT_TOL, *,
                 check_radius: bool = True) -> None:
        super().__init__(point_tol)
        self.radius = _check_radius(radius, check_values=check_radius)

    def __repr__(self) -> str:
        return f"FrobeniusSphere(radius={self.radius!r})"

    def violation(self, W: Tensor) -> Tensor:
        _matrices(W)
        r = _bcast(self.radius, W)
        r = r[..., 0, 0] if isinstance(r, Tensor) else r
        return (_fro(W) - r).abs() / r

    def project_tangent(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        _matrices(W, G)
        return frobenius_project(G, W)

    def tangent_violation(self, W: Tensor, A: Tensor, **kw: Any) -> Tensor:
        _matrices(W, A)
        na = _fro(A)
        safe = torch.where(na > 0, na, torch.ones_like(na))
        return torch.where(na == 0, torch.zeros_like(na), _mdot(A, W).abs() / (safe * _fro(W)))  # NaN stays NaN

    def _retract(self, W: Tensor, A: Tensor, method: str, **kw: Any) -> Tensor:
        if method == "exp":
            t = _fro(A)
            safe = torch.where(t > 0, t, torch.ones_like(t))[..., None, None]
            r = _bcast(self.radius, W)
            th = t[..., None, None] / r
            return W * torch.cos(th) + r * torch.sin(th) * A / safe
        return self._rescale(W + A)

    def _rescale(self, Y: Tensor) -> Tensor:
        """R·Y/‖Y‖_F with no zero check (the retraction's hot path: no device sync)."""
        return Y * (_bcast(self.radius, Y) / _fro(Y)[..., None, None])

    def project_point(self, Y: Tensor) -> Tensor:
        """Metric projection R·Y/‖Y‖_F; raises :class:`DegenerateGeometryError` for Y = 0 (every
        point is nearest: no projection), never a NaN."""
        _matrices(Y)
        if bool(torch.any(_fro(Y) == 0)):
            raise DegenerateGeometryError("‖Y‖_F", 0.0, 0.0, "project_point(0) on the Frobenius sphere: "
                                          "every point is nearest")
        return self._rescale(Y)


def _uAv(A: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """uᵀAv per matrix, shape ``(...)`` (row form: (uᵀA)·v)."""
    return ((u.unsqueeze(-2) @ A).squeeze(-2) * v).sum(-1)


def spectral_project(G: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """G − (uᵀGv)·u vᵀ, the spectral-sphere tangent projector with Θ = u vᵀ (one pass over G)."""
    c = _uAv(G, u, v)
    return torch.addcmul(G, (c.unsqueeze(-1) * u).unsqueeze(-1), v.unsqueeze(-2), value=-1.0)


@dataclass
class TopPair:
    """Top singular pair of a batch of matrices: ``sigma`` (...), ``u`` (..., m), ``v`` (..., n);
    ``sigma2`` (...) (estimate, or exact with ``theta="exact"``; ``None`` when not computed),
    ``gap = (σ₁ − σ₂)/σ₁`` and the power-iteration ``residual`` ‖Wv − σu‖/σ (0 for exact).
    ``theta="certified"`` adds (see :func:`pair_certificate`) ``bound`` (..., float64: bound on
    max(sin∠(u, u₁), sin∠(v, v₁)); ∞ where θ₁ is not separated), ``sigma_bound`` (...,
    float64: bound on |σ − σ₁|/σ), ``refined`` (..., bool: the float64 tier was used),
    ``fallback`` (..., bool: the exact SVD vectors were used because no tier met the bound),
    ``block`` (..., int: the k of the capture hypothesis H_k the bounds rest on) and ``steps``
    (block products with WᵀW made by the call: ``cert_degree`` for a Chebyshev cycle,
    ``cert_depth`` per Krylov cycle, both tiers)."""

    sigma: Tensor
    u: Tensor
    v: Tensor
    sigma2: Tensor | None = None
    gap: Tensor | None = None
    residual: Tensor | None = None
    retraction_residual: Tensor | None = None
    bound: Tensor | None = None
    fallback: Tensor | None = None
    steps: int = 0
    sigma_bound: Tensor | None = None
    refined: Tensor | None = None
    block: Tensor | None = None

    @property
    def theta(self) -> Tensor:
        """Θ = u vᵀ, shape ``(..., m, n)``."""
        return self.u.unsqueeze(-1) * self.v.unsqueeze(-2)


def _unit(x: Tensor) -> Tensor:
    n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / torch.where(n > 0, n, torch.ones_like(n))


def _orth_rows(X: Tensor) -> Tensor:
    """Orthonormalise the rows of ``X`` (..., b, n) (QR of Xᵀ)."""
    return torch.linalg.qr(X.mT).Q.mT


def _default_start(n: int, like: Tensor, batch: torch.Size) -> Tensor:
    """v₀ = 1/√n (all ones, the SSO convention), broadcast over the batch."""
    return torch.full((*batch, n), n ** -0.5, dtype=like.dtype, device=like.device)


def _second_start(n: int, like: Tensor, batch: torch.Size, j: int = 1) -> Tensor:
    """Fixed deterministic start vectors j = 1, 2, … (cosine ramps; not ⟂ to generic vectors)."""
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    v = torch.cos(2.399963229728653 * j * i + 0.5 * j)  # golden-angle ramps
    return _unit(v).expand(*batch, n).clone()


#: float64 entries of W converted at a time by :func:`pair_certificate` (2 MiB, a block of rows of
#: every matrix of the stack): the block's two products run while it is in cache, and a float64
#: copy of a large stack is never made (12×512² + 4×512×2048: 22.5 instead of 32.6 ms against
#: two matrices at a time, and 37 ms for the whole stack at once; issue 16)
CERT_CHUNK = 1 << 18


def ritz_products(W: Tensor, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(Zt, P, ‖W‖²_F) in float64 for W (B, m, n) of any real floating dtype (any strides) and
    orthonormal rows X (B, k, n) in float64: Zt = W·Xᵀ (B, m, k) (columns W xⱼ), P = Ztᵀ·W
    (B, k, n) (rows (WᵀW xⱼ)ᵀ) and ‖W‖²_F (B,). W is converted to float64 (exactly) a block of
    rows of all B matrices at a time, ``CERT_CHUNK`` entries; P and ‖W‖²_F sum over the blocks
    (another summation order of the same products: the rounding model of
    :func:`pair_certificate` holds for any order)."""
    f64 = torch.float64
    if W.ndim != 3 or X.ndim != 3 or X.shape[0] != W.shape[0] or X.shape[-1] != W.shape[-1]:
        raise InvalidInputError(f"ritz_products needs W (B, m, n) and X (B, k, n), got {tuple(W.shape)} "
                                f"and {tuple(X.shape)}")
    B, m, n = W.shape
    rows = max(1, CERT_CHUNK // max(1, B * n))
    if rows >= m:
        W64 = W.to(f64)
        Zt = W64 @ X.mT  # W·Xᵀ is the fast layout for a skinny product; X·Wᵀ is ~1.5× slower
        return Zt, Zt.mT @ W64, torch.linalg.vector_norm(W64, dim=(-2, -1)).square()
    Zt = W.new_empty((B, m, X.shape[-2]), dtype=f64)
    P = W.new_zeros((B, X.shape[-2], n), dtype=f64)
    ww = W.new_zeros((B,), dtype=f64)
    for r in range(0, m, rows):
        W64 = W[:, r:r + rows].to(f64)
        Z = torch.matmul(W64, X.mT, out=Zt[:, r:r + rows])
        P.baddbmm_(Z.mT, W64)
        ww += torch.linalg.vector_norm(W64, dim=(-2, -1)).square()
    return Zt, P, ww


def pair_certificate(W: Tensor, R: Tensor, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
    """The certified top singular triplet (σ̂, û, v̂) of W from approximate top right singular
    vectors: Rayleigh–Ritz in float64 on span(R), then a-posteriori bounds for the vectors as
    returned (rounded to ``dtype``).

    ``W`` (..., m, n) is W in any real floating dtype (converted to float64 exactly, a chunk of
    ``CERT_CHUNK`` entries at a time); ``R`` (..., K, n) spans the approximate top-K right
    singular subspace (rows, any dtype, 1 ≤ K ≤ n; K ≥ 2 unless min(m, n) = 1). With A = WᵀW,
    X the Ritz vectors of A on span(R) (Ritz values θ₁ ≥ … ≥ θ_K, all products in float64, a
    rounding term (m + n + 4)·u₆₄·‖W‖_F² added to every residual) and, for the top-k block
    X_k = [x₁ … x_k], E_k = ‖A X_k − X_k diag(θ)‖_F ≥ ‖X_k⊥ᵀ A X_k‖₂:

    * **Hypothesis H_k** (capture): no unit vector orthogonal to X_k has a Rayleigh quotient of A
      above θ_k, i.e. the iteration has not missed a singular value among the top k. It is not
      verified (that needs a factorisation as costly as the SVD); tests check the bounds against
      the exact pair and show the hypothesis is needed. Each matrix uses the k ∈ {2…K} with the
      smallest angle bound, reported as ``block``. A one-row or one-column W (rank ≤ 1: λ₂(A) = 0)
      needs no hypothesis.
    * **Angle.** Under H_k, sin∠(x₁, v₁) ≤ min of (a) Davis–Kahan for one vector (Parlett, The
      Symmetric Eigenvalue Problem, Thm 11.7.1) η₁/(θ₁ − λ₂⁺), η₁ = ‖Ax₁ − θ₁x₁‖ and
      λ₂⁺ = θ₂ + E_k ≥ λ₂(A) (Weyl, A minus its off-diagonal blocks); (b) the subspace form:
      sin∠(v₁, span X_k) ≤ E_k/(θ₁ − θ_k) (from (λ₁ − A₂₂)w = B X_kᵀ c for the component w of
      v₁ outside X_k, λ₁ ≥ θ₁ and A₂₂ ⪯ θ_k by H_k) times √(1 + E_k²/(θ₁ − θ₂)²) (Saad, Numerical
      Methods for Large Eigenvalue Problems, 2nd ed., Thm 4.6, with δ ≥ θ₁ − θ₂ since λ₁ ≥ θ₁),
      plus ‖X_kᵀ(AX_k − X_k diag θ)‖₂/δ ≤ 2·rnd/δ for the computed x₁ being a Ritz vector only up
      to rounding (Saad's factor assumes an exact one; a rounding-sized perturbation turns x₁
      inside a cluster by up to that much).
      (b) needs only the separation of θ₁ from θ_k, so a cluster at the top (σ₁ ≈ σ₂, as MACRO
      on the spectral sphere produces after ~100 steps) is certified through the larger block
      gap, quadratically in E_k. Then v̂ = fl(x₁) and û = fl(Wx₁/‖Wx₁‖): since Ww ⟂ u₁ for
      w ⟂ v₁, tan∠(Wx₁, u₁) ≤ tan∠(x₁, v₁); the roundings are measured and added.
    * **σ₁.** θ₁ ≤ σ₁² (interlacing) and, under H_k, σ₁² ≤ the least of Kato–Temple
      θ₁ + η₁²/(θ₁ − λ₂⁺) and the top eigenvalue of [[θ₁, E_k], [E_k, θ_k]] (a majorant of A in
      the X_k, X_k⊥ splitting); both are quadratic in the residuals. σ̂ = √θ₁ rounded to ``dtype``.

    Returns float64 tensors of shape (...): ``angle`` (≥ max(sin∠(û, u₁), sin∠(v̂, v₁)); ∞
    where θ₁ is not separated), ``sigma_err`` (≥ |σ̂ − σ₁|/σ̂), ``sigma`` (σ̂), ``sigma2``
    (√θ₂), ``delta`` (σ̂ − √λ₂⁺, the certified gap), ``residual`` (‖Wᵀû − σ̂v̂‖/σ̂ for the
    float64 Ritz pair, diagnostics), ``block``
    (k); and in ``dtype`` (default R's): ``u`` (..., m), ``v`` (..., n) and ``basis``
    (..., K, n), the Ritz vectors as rows, top first.

    Example::

        >>> W = torch.randn(40, 24, dtype=torch.float64)
        >>> R = torch.linalg.svd(W)[2][:4]             # exact top-4 right vectors
        >>> c = pair_certificate(W, R)
        >>> bool(c["angle"] < 1e-11), bool(c["sigma_err"] < 1e-12)  # float64 rounding level
        (True, True)
    """
    if not W.dtype.is_floating_point or W.is_complex() or W.ndim < 2:
        raise InvalidInputError(f"pair_certificate needs a real floating W with shape (..., m, n), got {W.dtype} "
                                f"{tuple(W.shape)}")
    batch, (m, n) = W.shape[:-2], W.shape[-2:]
    if R.ndim != W.ndim or R.shape[:-2] != batch or R.shape[-1] != n or not 1 <= R.shape[-2] <= n:
        raise InvalidInputError(f"R must have shape (..., K, n) with 1 <= K <= n = {n} and W's batch shape "
                                f"{tuple(batch)}, got {tuple(R.shape)}")
    if R.shape[-2] < 2 and min(m, n) > 1:
        raise InvalidInputError("R needs K >= 2 rows (the second Ritz value bounds σ₂) unless W has one row or column")
    f64 = torch.float64
    dt = R.dtype if dtype is None else dtype
    X = _orth_rows(R.to(f64).reshape(-1, *R.shape[-2:]))
    Zt, P, ww = ritz_products(W.reshape(-1, m, n), X)
    if not bool(torch.isfinite(ww).all() & torch.isfinite(X).all()):  # one sync; ‖W‖²_F is finite iff W is
        raise InvalidInputError("pair_certificate: W or R has non-finite entries (NaN or Inf)")
    theta, Q = torch.linalg.eigh(Zt.mT @ Zt)
    theta, Q = theta.flip(-1), Q.flip(-1)  # Ritz values, descending
    X, Z = Q.mT @ X, (Zt @ Q).mT  # Z: rows (W xⱼ)ᵀ
    rnd = ((m + n + 4) * (torch.finfo(f64).eps / 2)) * ww
    # ‖A xⱼ − θⱼ xⱼ‖ with A X_newᵀ = (Qᵀ P)ᵀ; the rotation by the orthogonal K×K Q adds ≤ K^{3/2}·u₆₄·θ₁,
    # inside the 4·rnd margin of E (rnd ≥ (m + n + 4)·u₆₄·θ₁)
    res = torch.linalg.vector_norm(Q.mT @ P - theta[..., None] * X, dim=-1)
    E = res.square().cumsum(-1).sqrt() + 4.0 * rnd[..., None]  # E_k, k = 1…K
    eta = res[..., 0] + 2.0 * rnd
    th1 = theta[..., 0]
    inf = float("inf")

    def over(num: Tensor, den: Tensor) -> Tensor:  # num/den, ∞ where den ≤ 0 (not separated)
        return (num / den).masked_fill(den <= 0, inf)

    # computed Ritz values carry ≤ rnd each (H formed and diagonalised in float64): certified
    # separations subtract 2·rnd, so an exactly repeated σ₁ gives ∞, never a rounding-sized gap
    if min(m, n) == 1:  # rank ≤ 1: λ₂(A) = 0 exactly, no hypothesis
        lam2 = torch.zeros_like(th1)
        sin_v = over(eta, th1 - 2.0 * rnd)
        k_best = torch.ones_like(th1, dtype=torch.long)
        hi2 = th1 + rnd + sin_v * eta
    else:
        th2, thk, Ek = theta[..., 1:2], theta[..., 1:], E[..., 1:]  # k = 2…K along the last axis
        lam2k = th2 + Ek
        top = (th1 - 2.0 * rnd)[..., None]
        dk = over(eta[..., None], top - lam2k)
        # + ‖X_kᵀ(A X_k − X_k diag θ)‖/δ ≤ 2·rnd/δ: the computed x₁ is a Ritz vector up to rounding,
        # which turns it within span X_k by up to that much when θ₁ ≈ θ₂ (Saad's factor assumes exact ones)
        bk = (over(Ek, top - thk) * over(Ek, top - th2).square().add(1.0).sqrt()
              + over(2.0 * rnd[..., None], top - th2))
        sin_v, j = torch.minimum(dk, bk).min(-1)
        pick = j.unsqueeze(-1)
        k_best = j + 2
        lam2 = lam2k.gather(-1, pick).squeeze(-1)
        Eb, thb = Ek.gather(-1, pick).squeeze(-1), thk.gather(-1, pick).squeeze(-1)
        half = 0.5 * (th1 - thb)
        kato = th1 + over(eta, top[..., 0] - lam2) * eta
        hi2 = torch.minimum(kato, th1 - half + torch.hypot(half, Eb)) + rnd  # + θ₁'s own rounding
    w1 = Z[..., 0, :]
    v, u = X[..., 0, :].to(dt), _unit(w1).to(dt)
    # v̂ = fl(x₁), û = fl(w₁/‖w₁‖): ‖â/‖â‖ − a‖ ≤ 2u for a rounding to nearest of a unit vector a,
    # plus the float64 normalisation (≤ (n + m + 4)·u₆₄)
    chord = 2.0 * (torch.finfo(dt).eps / 2 if dt != f64 else 0.0) + (m + n + 4) * torch.finfo(f64).eps
    tan_v = (sin_v / (1.0 - sin_v.square()).sqrt()).masked_fill(sin_v >= 1, inf)
    angle = torch.maximum(sin_v, tan_v) + chord
    s = th1.clamp_min(0).sqrt().to(dt).to(f64)
    lo = (th1 - 2.0 * rnd).clamp_min(0).sqrt()
    err = (torch.maximum(hi2.sqrt() - s, s - lo) / s).masked_fill(s <= 0, inf)
    # ‖Wᵀû − σ̂v̂‖ for the float64 Ritz pair: Wᵀ(w₁/‖w₁‖) = (Ax₁)/√θ₁ = (r₁ + θ₁x₁)/√θ₁, r₁ ⟂ x₁
    r1 = th1.clamp_min(0).sqrt()
    residual = torch.hypot(res[..., 0] / r1, r1 - s) / s
    out = {"angle": angle, "sigma_err": err, "sigma": s,
           "sigma2": theta[..., 1].clamp_min(0).sqrt() if theta.shape[-1] > 1 else torch.zeros_like(s),
           "delta": s - lam2.clamp_min(0).sqrt(), "block": k_best, "residual": residual,
           "u": u, "v": v, "basis": X.to(dt)}
    return {k: x.reshape(tuple(batch) + tuple(x.shape[1:])) for k, x in out.items()}


class SpectralSphere(TorchManifold):
    """M_S(R) = {‖W‖₂ = R} (MATH.md §4.4), ``P_W(G) = G − ⟨G, Θ⟩Θ`` with Θ = u₁v₁ᵀ.

    Options: ``theta`` ``"certified"`` (default: a warm-started iteration stopped by the
    a-posteriori bounds of :func:`pair_certificate`), ``"exact"`` (SVD) or ``"power"``
    (warm-started bilateral subspace iteration of width ``block``, ``power_steps`` steps per
    call, Rayleigh–Ritz finish; uncertified: its error grows as the top of the spectrum flattens):

    * ``top_pair(..., certify="pair")`` (Θ for the tangent projection) needs the angle bound
      ≤ ``cert_tol`` (default √ε of W's dtype, 3.5e-4 in float32: the direction's normal
      component |⟨D, u₁v₁ᵀ⟩| ≤ 2 sin θ·‖D‖₂ is linear in the angle; feasibility does not depend
      on it, see ``"sigma"``); ``certify="sigma"`` (σ₁ for the rescale retraction) needs the σ̂₁
      bound ≤ ``sigma_tol`` (default ε of W's dtype: a float32 σ̂₁ carries ε/2 by itself and the
      rescale rounds to a few ε; the bound is quadratic in the residuals, so it is met long
      before the angle's); ``certify="both"`` needs both, for a Y whose Ritz vectors are reused at
      the next call on W = fl(c·Y) (``steps=0``: that call certifies the cached basis on W
      itself, without iterating unless the bound fails).
    * The iteration is a block Krylov method with Rayleigh–Ritz: one cycle builds
      K = [V, (WᵀW)V, …, (WᵀW)^d V] (V the ``cert_block`` = b cached Ritz vectors,
      d = ``cert_depth``, block Lanczos with full reorthogonalisation) and takes the Ritz vectors
      on span K; the top ones converge like a Chebyshev polynomial, ≈ exp(−2d√γ) per cycle with
      γ = (σ₁² − σ_{b+1}²)/σ_{b+1}², instead of (σ_{b+1}/σ₁)^{2d} for d subspace steps. The
      certificate is taken on the top b Ritz vectors, so a top cluster (σ₁ ≈ σ₂) is certified
      through the gap to θ_k, k ≤ b, instead of σ₁ − σ₂: MACRO's spectral-sphere weights reach
      relative gaps σ₁ − σ₂ ≈ 10⁻⁴ with σ₅/σ₁ ≈ 0.98 after ~100 training steps, and their top
      vector turns by O(1) between steps; b = 8 certifies them in one cycle. ``steps=0`` first
      checks the cached vectors without iterating.
    * ``cert_iteration="chebyshev"`` (default) replaces the first Krylov cycle of a warm-started
      call by one Chebyshev-filtered subspace iteration on the cached block, cut at its smallest
      Ritz value (:meth:`_chebyshev_block`): the same exp(2d√γ) gain on the top of the spectrum,
      with one product with the Gram matrix WᵀW per degree (two with W for n ≥ 2·d·b) and no
      b(d+1)-dimensional projected eigenproblem. Its degree adapts per matrix (kept in
      ``state["degree"]``, see ``PAIR_STATE``): ``cert_degree`` (default 16) at first, doubled
      after a cycle that missed the tolerance, ×3/4 after one that met it a hundredfold, within
      [cert_degree/2, 4·cert_degree]; a stacked call uses the largest of its matrices' degrees.
      On the `tiny` model in steady state degree 16 certifies every pair in one cycle and the
      retraction's pair call costs 4.5 ms instead of 9.4 ms (Krylov). Cold starts, warm starts
      that do not locate the top of the spectrum (θ₁ > 2θ_b, or θ_b = 0), and the escalation
      cycles use the Krylov cycle; ``"krylov"`` uses it always.
    * Escalation per matrix: up to ``cert_cycles`` cycles in W's dtype (while the bound contracts
      fast enough to reach the tolerance), then up to ``cert_refine_cycles`` cycles in float64
      from the same basis (``refined``; removes the float32 residual floor ≈ u·√n that tiny gaps
      cannot certify through), then the exact SVD pair (``fallback``).

    The bounds rest on the capture hypothesis H_k of :func:`pair_certificate` (k reported as
    ``TopPair.block``); tests check them against the exact pair. ``gap_tol`` and
    ``gap_policy`` (``"raise"`` | ``"report"`` (default) | ``"off"``) for the spectral-gap guard,
    whose σ₂ is the second Ritz value (``block`` ≥ 2; ``block=1`` is SSO's single-vector
    iteration and gives no σ₂, so it cannot be combined with ``gap_policy="raise"``).
    Retractions: ``"rescale"`` R(W+ξ)/σ₁(W+ξ) (σ₁ by ``theta``; first order) and
    ``"projection"`` (metric projection through an exact SVD; second order).
    """

    retractions = ("rescale", "projection")
    name = "spectral"
    kind = "spectral_sphere"

    def __init__(self, radius: Radius = 1.0, *, theta: str = "certified", power_steps: int = 4,
                 block: int = 8, gap_tol: float = 1e-6, gap_policy: str = "report",
                 point_tol: float = DEFAULT_POINT_TOL, cert_tol: float | None = None,
                 sigma_tol: float | None = None, cert_block: int = 8, cert_depth: int = 8, cert_cycles: int = 3,
                 cert_refine_cycles: int = 3, cert_iteration: str = "chebyshev", cert_degree: int = 16,
                 check_radius: bool = True) -> None:
        super().__init__(point_tol)
        self.radius = _check_radius(radius, check_values=check_radius)
        if theta not in THETA_SOURCES:
            raise InvalidInputError(f"theta must be one of {THETA_SOURCES}, got {theta!r}")
        if cert_tol is not None:
            cert_tol = float(_check_radius(cert_tol, "cert_tol"))
        if sigma_tol is not None:
            sigma_tol = float(_check_radius(sigma_tol, "sigma_tol"))
        if cert_iteration not in CERT_ITERATIONS:
            raise InvalidInputError(f"cert_iteration must be one of {CERT_ITERATIONS}, got {cert_iteration!r}")
        self.cert_iteration = cert_iteration
        for name, val, low in (("cert_block", cert_block, 2), ("cert_depth", cert_depth, 1), ("cert_cycles", cert_cycles, 0),
                               ("cert_degree", cert_degree, 2),
                               ("cert_refine_cycles", cert_refine_cycles, 0)):
            check_count(val, name, low)
        self.cert_tol = cert_tol
        self.sigma_tol = sigma_tol
        self.cert_block = int(cert_block)
        self.cert_depth = int(cert_depth)
        self.cert_degree = int(cert_degree)
        self.cert_cycles = int(cert_cycles)
        self.cert_refine_cycles = int(cert_refine_cycles)
        if gap_policy not in ("raise", "report", "off"):
            raise InvalidInputError(f"gap_policy must be 'raise', 'report' or 'off', got {gap_policy!r}")
        check_count(power_steps, "power_steps", 1)
        check_count(block, "block (1: single-vector power iteration)", 1)
        if int(block) == 1 and gap_policy == "raise":
            raise InvalidInputError("block=1 gives no σ₂ estimate: use block=2 (or theta='exact') with gap_policy='raise'")
        self.theta_source = theta
        self.power_steps = int(power_steps)
        self.gap_tol = float(_check_radius(gap_tol, "gap_tol"))
        self.gap_policy = gap_policy
        self.block = int(block)

    def __repr__(self) -> str:
        return (f"SpectralSphere(radius={self.radius!r}, theta={self.theta_source!r}, "
                f"power_steps={self.power_steps}, gap_tol={self.gap_tol!r}, gap_policy={self.gap_policy!r})")

    # -- top singular pair ---------------------------------------------------------------------
    def top_pair(self, W: Tensor, state: MutableMapping[str, Tensor] | None = None, *,
                 steps: int | None = None, with_gap: bool | None = None, with_residual: bool = True,
                 certify: str = "pair") -> TopPair:
        """(σ₁, u₁, v₁) of every matrix of ``W`` (..., m, n), plus σ₂/gap when ``with_gap``
        (default: ``gap_policy != "off"``). ``certify`` (used by ``theta="certified"``): ``"pair"``
        (the vectors are used: angle bound ≤ ``cert_tol``), ``"sigma"`` (only σ₁ is used:
        σ̂₁ bound ≤ ``sigma_tol``) or ``"both"`` (σ₁ is used now and the vectors, cached in
        ``state``, at the next call on a rescaled W, as in MACRO's rescale retraction). With ``theta="power"``, ``state`` (optional) holds
        the warm-start basis ``"basis"`` (..., block, n) (orthonormal rows); it is replaced
        (never written in place) by the new Ritz vectors. ``steps=0`` (block ≥ 2) is the
        Rayleigh–Ritz finish on the cached basis alone. Raises :class:`DegenerateGeometryError` if the gap is below
        ``gap_tol`` and ``gap_policy="raise"`` (one device sync)."""
        _matrices(W)
        with_gap = (self.gap_policy != "off") if with_gap is None else with_gap
        if certify not in ("pair", "sigma", "both"):
            raise InvalidInputError(f"certify must be 'pair', 'sigma' or 'both', got {certify!r}")
        try:
            if self.theta_source == "exact":
                pair = self._exact_pair(W)
            elif self.theta_source == "certified":
                pair = self._certified_pair(W, state, self.power_steps if steps is None else int(steps), certify)
            else:
                pair = self._power_pair(W, state, self.power_steps if steps is None else int(steps), with_gap,
                                        with_residual)
        except torch.linalg.LinAlgError as e:  # a QR, eigh or SVD of the iteration failed
            if not bool(torch.isfinite(W).all()):
                raise InvalidInputError("top_pair: W has non-finite entries (NaN or Inf)") from e
            raise SolverError(f"top_pair ({self.theta_source}): {e}") from e
        if with_gap and self.gap_policy == "raise":
            self.check_gap(pair)
        return pair

    def check_gap(self, pair: TopPair) -> None:
        """Raise :class:`DegenerateGeometryError` when any gap is below ``gap_tol``."""
        if pair.gap is None or pair.gap.numel() == 0:
            return
        g = float(pair.gap.min())
        if not g >= self.gap_tol:
            raise DegenerateGeometryError(
                "relative spectral gap (σ₁−σ₂)/σ₁" + (" (power-iteration estimate)" if self.theta_source == "power" else ""),
                g, self.gap_tol, "the spectral sphere is not smooth here (repeated σ₁); "
                "use gap_policy='report' to continue, or theta='exact' to certify the gap")

    def _exact_pair(self, W: Tensor, svd: tuple[Tensor, Tensor, Tensor] | None = None) -> TopPair:
        """The exact pair from the float64 SVD of W (``svd``: that SVD, when already computed)."""
        U, s, Vh = torch.linalg.svd(W.to(torch.float64), full_matrices=False) if svd is None else svd
        u, v = U[..., :, 0], Vh[..., 0, :]
        idx = u.abs().argmax(dim=-1, keepdim=True)
        sgn = torch.sign(torch.gather(u, -1, idx))
        sgn = torch.where(sgn == 0, torch.ones_like(sgn), sgn)
        u, v = u * sgn, v * sgn
        s1 = s[..., 0]
        s2 = s[..., 1] if s.shape[-1] > 1 else torch.zeros_like(s1)
        safe = torch.where(s1 > 0, s1, torch.ones_like(s1))
        gap = torch.where(s1 > 0, (s1 - s2) / safe, torch.zeros_like(s1))
        if s.shape[-1] == 1:
            gap = torch.where(s1 > 0, torch.ones_like(s1), torch.zeros_like(s1))
        dt = W.dtype
        return TopPair(s1.to(dt), u.to(dt), v.to(dt), s2.to(dt), gap.to(dt), torch.zeros_like(s1).to(dt))

    def _excess(self, F: dict[str, Tensor], dtype: torch.dtype, certify: str) -> Tensor:
        """Bound ÷ tolerance per matrix for ``certify`` ("pair": angle ≤ ``cert_tol``, default √ε of
        ``dtype``; "sigma": σ̂₁ relative error ≤ ``sigma_tol``, default ε; "both"); ≤ 1 is met."""
        eps = torch.finfo(dtype).eps
        a = F["bound"] / (self.cert_tol if self.cert_tol is not None else math.sqrt(eps))
        s = F["sigma_bound"] / (self.sigma_tol if self.sigma_tol is not None else eps)
        return a if certify == "pair" else s if certify == "sigma" else torch.maximum(a, s)

    def _certified_pair(self, W: Tensor, state: MutableMapping[str, Tensor] | None, steps: int,
                        certify: str) -> TopPair:
        """Warm-started block Krylov cycles with the escalation of the class docstring: W's dtype,
        then float64, then the SVD, each tier on the matrices the previous one left above the
        tolerance only. ``steps=0``: the first check is the certificate of the cached basis
        itself (no iteration). One device sync per check. A wide W (m < n) is handled as Wᵀ (the
        Krylov vectors and the cached basis live on the shorter side) and (u, v) swapped back."""
        if W.shape[-2] < W.shape[-1]:
            p = self._certified_pair(W.mT, state, steps, certify)
            p.u, p.v = p.v, p.u
            return p
        batch, (m, n) = W.shape[:-2], W.shape[-2:]
        state = {} if state is None else state
        Wf, basis, warm = self._start(W, state)  # Wf holds W exactly; the certificates take it to float64
        b = basis.shape[-2]
        if not warm:
            steps = max(steps, 1)
        products = 0  # block products with WᵀW (diagnostics: TopPair.steps)
        filtered = False
        lo_deg, hi_deg = self._degree_range()
        degrees = state.get("degree")
        if not (isinstance(degrees, Tensor) and degrees.shape == batch):
            degrees = torch.full(batch, self.cert_degree, dtype=torch.int64, device=W.device)
        degrees = degrees.reshape(-1).clamp(lo_deg, hi_deg)
        if steps:
            # one degree per stacked call: the largest the matrices' own adaptation asks for
            degree = int(degrees.max()) if degrees.numel() else self.cert_degree
            basis, products, filtered = self._cycle(Wf, basis, warm, degree)
        F = self._pack(pair_certificate(Wf, basis, W.dtype))
        B = Wf.shape[0]
        refined = torch.zeros(B, dtype=torch.bool, device=W.device)
        fallback = torch.zeros(B, dtype=torch.bool, device=W.device)
        cycles = 0 if steps == 0 else 1
        escalated = 0
        excess = self._excess(F, W.dtype, certify)
        if filtered:
            # adapt each matrix's filter degree to what its spectrum needs: ×2 after a miss (the
            # escalation then runs Krylov cycles), ×3/4 when the bound met the tolerance a
            # hundredfold (its residual would grow by ≈ T_d/T_{3d/4}, the bound at most by its square)
            degrees = torch.where(~(excess <= 1), 2 * degree, torch.where(excess <= 1e-2, (3 * degree) // 4, degree))
            degrees = degrees.clamp(lo_deg, hi_deg)
        for tier, budget in ((1, self.cert_cycles - cycles), (2, self.cert_refine_cycles)):
            idx = (~(excess <= 1)).nonzero().squeeze(-1)
            done = 0
            while idx.numel() and done < budget:
                Wi = Wf[idx].to(torch.float64) if tier == 2 else Wf[idx]
                R = self._krylov_block(Wi, F["basis"][idx].to(Wi.dtype), self.cert_depth)
                G = self._pack(pair_certificate(Wi, R, W.dtype))
                for k in F:  # F's tensors are this call's own (fresh from _pack): written in place
                    F[k][idx] = G[k]
                if tier == 2:
                    refined[idx] = True
                done += 1
                old, new = excess[idx], self._excess(G, W.dtype, certify)
                excess[idx] = new
                # keep the matrices whose bound, contracting at its last rate, meets tol within budget
                rate = (new / old).clamp(max=1.0).nan_to_num(nan=1.0)
                idx = idx[~(new <= 1) & (new * rate ** (budget - done) <= 1)]
            cycles += done
            escalated += done
        bad = (~(excess <= 1)).nonzero().squeeze(-1)
        if bad.numel():
            # tier 3: the exact top-b right singular vectors (float64 SVD), certified like the others
            Wb = Wf[bad].to(torch.float64)
            Vh = torch.linalg.svd(Wb, full_matrices=False)[2]
            G = self._pack(pair_certificate(Wb, Vh[:, :b, :], W.dtype))
            for k in F:
                F[k][bad] = G[k].to(F[k].dtype)
            fallback[bad] = True
        state["basis"] = F["basis"].reshape(*batch, b, n)
        state["degree"] = degrees.reshape(batch)

        def shaped(x: Tensor) -> Tensor:
            return x.reshape(tuple(batch) + tuple(x.shape[1:]))

        return TopPair(shaped(F["sigma"]), shaped(F["u"]), shaped(F["v"]), shaped(F["sigma2"]), shaped(F["gap"]),
                       shaped(F["residual"]), bound=shaped(F["bound"]), fallback=shaped(fallback),
                       steps=products + escalated * self.cert_depth, sigma_bound=shaped(F["sigma_bound"]), refined=shaped(refined),
                       block=shaped(F["block"]))

    def _start(self, W: Tensor, state: MutableMapping[str, Tensor]) -> tuple[Tensor, Tensor, bool]:
        """(W as a (B, m, n) stack in the cycles' dtype, the start block (B, b, n), warm): the
        cycles run in W's dtype, float32 for half precision (no half QR/eigh kernels); the start
        is the cached ``state["basis"]`` when it fits (warm), else fixed deterministic vectors."""
        batch, (m, n) = W.shape[:-2], W.shape[-2:]
        Wf = W.reshape(-1, m, n) if W.dtype in (torch.float32, torch.float64) else W.reshape(-1, m, n).float()
        b = min(self.cert_block, m, n)
        basis = state.get("basis")
        if basis is not None and basis.shape[:-2] == batch and basis.shape[-1] == n and basis.shape[-2] >= b:
            return Wf, basis.reshape(-1, *basis.shape[-2:])[:, :b, :].to(Wf.dtype), True
        start = torch.stack([_default_start(n, Wf, Wf.shape[:1])]
                            + [_second_start(n, Wf, Wf.shape[:1], j) for j in range(1, b)], dim=-2)
        return Wf, start, False

    @staticmethod
    def _pack(c: dict[str, Tensor]) -> dict[str, Tensor]:
        """:func:`pair_certificate`'s output as the escalation's per-matrix record (σ, σ₂, gap and
        residual in the vectors' dtype; the bounds in float64)."""
        dt = c["u"].dtype
        sigma, s2 = c["sigma"], c["sigma2"]
        safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
        gap = torch.where(sigma > 0, (sigma - s2) / safe, torch.zeros_like(sigma))
        return {"sigma": sigma.to(dt), "u": c["u"], "v": c["v"], "sigma2": s2.to(dt), "gap": gap.to(dt),
                "residual": c["residual"].to(dt), "basis": c["basis"], "bound": c["angle"],
                "sigma_bound": c["sigma_err"], "block": c["block"]}

    def _chebyshev_block(self, W: Tensor, basis: Tensor, degree: int) -> Tensor | None:
        """One Chebyshev-filtered subspace iteration (Zhou & Saad, J. Comput. Phys. 219 (2006)) on
        A = WᵀW (W: (B, m, n)) from a warm ``basis`` (B, b, n): the filtered block (B, b, n), rows
        spanning T_d(2A/c − I)·span(basis) (not normalised: the certificate orthonormalises), in
        W's dtype; ``None`` (the caller runs a Krylov cycle) when the warm
        start does not locate the spectrum well enough for a fixed filter (θ₁ > 2θ_b, or θ_b = 0,
        on any matrix).

        With θ₁ ≥ … ≥ θ_b the Ritz values of A on span(basis), the filter is the degree-
        ``degree`` Chebyshev polynomial T_d(2λ/c − 1) with c = θ_b ≤ λ_b (interlacing): it
        is bounded by 1 on [0, c] and grows like exp(d·arccosh(2λ/c − 1)) above, so the top of
        the spectrum gains T_d(2λ₁/c − 1) over everything below the cut, the same exp(2d√γ) rate
        as a depth-d block Krylov cycle but with no growing basis to orthogonalise and no
        b(d + 1)-sized projected eigenproblem. The recurrence Y_{j+1} = 2·Y_j·(2A/c − I) − Y_{j−1}
        runs on the Gram matrix A formed once when n < 2·d·b (one product per degree instead of
        two; else the two products with W per degree are cheaper than forming A), and every
        ``4`` degrees the block is re-orthonormalised (Y_j = Rᵀ Q: Y_j ← Q, Y_{j−1} ← R⁻ᵀ Y_{j−1},
        which leaves the recurrence unchanged) so that no direction of the top b is lost to
        rounding: over 4 degrees the spread of gains is at most T₄(3) = 577 when θ₁ ≤ 2θ_b.
        The Gram matrix's rounding (≈ u·√m·‖W‖₂²) limits only the convergence floor, not the
        certificate, which is taken on W in float64."""
        Q = _orth_rows(basis)
        b, n = Q.shape[-2:]
        d = int(degree)
        # the Gram matrix costs m·n² once, the products with W 2·b·m·n per degree: form it when
        # n < 2·d·b (the tiny and small models' matrices), else apply A as (X·Wᵀ)·W
        gram = torch.bmm(W.mT, W) if n < 2 * d * b else None

        def times_a(X: Tensor) -> Tensor:  # X·A for rows X
            return torch.bmm(X, gram) if gram is not None else torch.bmm(torch.bmm(X, W.mT), W)

        QA = times_a(Q)
        ritz = torch.linalg.eigvalsh(torch.bmm(QA, Q.mT))  # ascending: θ_b … θ₁
        lo, hi = ritz[..., 0], ritz[..., -1]
        if not bool(((hi <= 2.0 * lo) & (lo > 0)).all()):  # also refuses rank(W) < b (θ_b = 0) and NaN
            return None
        s = (2.0 / lo)[:, None, None]
        prev, cur = Q, QA.mul_(s).sub_(Q)  # Y₀ = Q, Y₁ = Q·(2A/c − I)
        if gram is not None:
            Bm = gram.mul_(s)  # 2A/c − I, in place of the Gram matrix
            Bm.diagonal(dim1=-2, dim2=-1).sub_(1.0)
        for j in range(2, d + 1):
            if gram is not None:
                prev, cur = cur, torch.baddbmm(prev, cur, Bm, beta=-1.0, alpha=2.0)
            else:  # Y_{j+1} = (4/c)·Y_j·A − 2·Y_j − Y_{j−1}
                prev, cur = cur, times_a(cur).mul_(2.0 * s).sub_(cur, alpha=2.0).sub_(prev)
            if j % 4 == 0 and j < d:
                Qj, R = torch.linalg.qr(cur.mT)  # Y_jᵀ = Q R
                prev = torch.linalg.solve_triangular(R.mT, prev, upper=False)
                cur = Qj.mT
        # a block that lost rank on the way (R singular: non-finite rows) is replaced by the warm
        # start, whose certificate then sends the matrix to the Krylov escalation
        return torch.where(torch.isfinite(cur).all(dim=-1).all(dim=-1)[:, None, None], cur, Q)

    def _cycle(self, W: Tensor, basis: Tensor, warm: bool, degree: int) -> tuple[Tensor, int, bool]:
        """The first cycle of a call (class docstring): the Chebyshev filter of degree ``degree``
        (the matrices' adaptive degree) when ``warm`` and it applies, else a Krylov cycle. Returns
        the block (B, b, n), its products with WᵀW and whether it was the Chebyshev filter."""
        if warm and self.cert_iteration == "chebyshev":
            R = self._chebyshev_block(W, basis, degree)
            if R is not None:
                return R, degree, True
        return self._krylov_block(W, basis, self.cert_depth), self.cert_depth, False

    def _degree_range(self) -> tuple[int, int]:
        """The adaptive Chebyshev degree's range: [max(2, cert_degree/2), 4·cert_degree]."""
        return max(2, self.cert_degree // 2), 4 * self.cert_degree

    @staticmethod
    def _krylov_block(W: Tensor, basis: Tensor, depth: int) -> Tensor:
        """The top b Ritz vectors (B, b, n) of one block Krylov cycle of depth ``depth`` on W
        (B, m, n) from ``basis`` (B, b, n) rows (class docstring). The cycle builds
        K = orth[V, AV, …, A^d V] with A = WᵀW (rows; block Lanczos with full
        reorthogonalisation, two classical Gram–Schmidt passes, then QR) and takes the Ritz
        vectors of A on span K from the eigenvectors of the Gram matrix K A Kᵀ = Z Zᵀ (Z = K Wᵀ);
        when b(d + 1) ≥ n, K is the whole space and the eigenvectors of WᵀW are taken directly."""
        b, n = basis.shape[-2:]
        if b * (depth + 1) >= n:
            # K would be the whole space: its Rayleigh–Ritz is the eigendecomposition of WᵀW
            R = torch.linalg.eigh(W.mT @ W)[1].flip(-1)[..., :, :b].mT
        else:
            Bn, m = W.shape[0], W.shape[-2]
            s = b * (depth + 1)
            K = W.new_empty(Bn, s, n)  # rows: the orthonormal Krylov basis, block by block
            Z = W.new_empty(Bn, s, m)  # rows of W Kᵀ
            Wt = W.mT
            K[:, :b] = _orth_rows(basis)
            Z[:, :b] = torch.bmm(K[:, :b], Wt)
            for j in range(1, depth + 1):
                Y = torch.bmm(Z[:, (j - 1) * b:j * b], W)  # (A Qⱼ₋₁)ᵀ
                Kj = K[:, :j * b]
                for _ in range(2):  # classical Gram–Schmidt, twice ("twice is enough")
                    Y = torch.baddbmm(Y, torch.bmm(Y, Kj.mT), Kj, alpha=-1.0)
                K[:, j * b:(j + 1) * b] = _orth_rows(Y)
                Z[:, j * b:(j + 1) * b] = torch.bmm(K[:, j * b:(j + 1) * b], Wt)
            # breakdown (span K invariant: rank(W) < s, or an exact warm start): the new blocks are
            # rounding noise inside span K and K loses orthonormality; re-orthonormalise those K
            dev = (torch.bmm(K, K.mT) - torch.eye(s, dtype=K.dtype, device=K.device)).abs().amax(dim=(-2, -1))
            bad = (dev > 1e-3).nonzero().squeeze(-1)
            if bad.numel():
                K[bad] = _orth_rows(K[bad])
                Z[bad] = torch.bmm(K[bad], Wt[bad])
            E = torch.linalg.eigh(torch.bmm(Z, Z.mT))[1]
            R = torch.bmm(E.flip(-1)[..., :, :b].mT, K)  # top b Ritz vectors (rows)
        return R

    def _power_pair(self, W: Tensor, state: MutableMapping[str, Tensor] | None, steps: int,
                    with_gap: bool, with_residual: bool = True) -> TopPair:
        """Bilateral subspace iteration of width ``block`` with a Rayleigh–Ritz finish.

        Width 1 is the SSO power iteration (u ← Wv/‖·‖, v ← Wᵀu/‖·‖, σ̂ = uᵀWv). Width b ≥ 2
        iterates a b-column basis, orthonormalised by QR, and takes the SVD of the b×b Ritz
        matrix ``T = Uᵀ W V``: its first two singular values estimate σ₁ and σ₂ (both are lower
        bounds, by interlacing), and the top vector converges like (σ_{b+1}/σ₁)^{2k} instead of
        (σ₂/σ₁)^{2k}, so a near-repeated σ₁ is resolved instead of mis-tracked."""
        batch, (m, n) = W.shape[:-2], W.shape[-2:]
        b = min(self.block, m, n)
        # row form: Vt (..., b, n) has orthonormal rows; products are taken as Vt·Wᵀ = (WV)ᵀ and
        # Ut·W = (WᵀU)ᵀ, which are the fast layouts for a row-major W
        Vt = state.get("basis") if state is not None else None
        V_fresh = Vt is None or Vt.shape != (*batch, b, n)
        if V_fresh:
            Vt = torch.stack([_default_start(n, W, batch)] + [_second_start(n, W, batch, j) for j in range(1, b)], dim=-2)
        Vt = Vt.to(W.dtype)
        Wt = W.mT
        if b == 1:
            # SSO's sequence: u ← Wv/‖Wv‖, v ← Wᵀu/‖Wᵀu‖ (k times), σ̂ = uᵀWv with the last pair
            v = _unit(Vt[..., 0, :])
            for _ in range(max(1, steps)):  # at least one step defines u
                u = _unit((v.unsqueeze(-2) @ Wt).squeeze(-2))
                v = _unit((u.unsqueeze(-2) @ W).squeeze(-2))
            sigma = ((u.unsqueeze(-2) @ W).squeeze(-2) * v).sum(-1)
            safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
            pair = TopPair(sigma, u, v)
            basis = v.unsqueeze(-2)
        else:
            # one orthonormalisation per step (of V only): the left factor Vᵀ·Wᵀ is not normalised,
            # which grows columns by at most σ₁/σ_b per step — harmless for a few steps
            if steps > 0 or V_fresh:
                Vt = _orth_rows(Vt)
            for _ in range(steps):
                Vt = _orth_rows((Vt @ Wt) @ W)
            Q, T = torch.linalg.qr((Vt @ Wt).mT)  # W V = Q T, T = Qᵀ W V (b×b, upper triangular)
            Pl, S, Qh = torch.linalg.svd(T)
            u = (Q @ Pl[..., :, :1]).squeeze(-1)
            basis = Qh @ Vt  # Ritz vectors as rows; row 0 is the top one
            v = basis[..., 0, :]
            sigma = S[..., 0]
            safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
            pair = TopPair(sigma, u, v)
            if with_gap:
                pair.sigma2 = S[..., 1]
                pair.gap = torch.where(sigma > 0, (sigma - S[..., 1]) / safe, torch.zeros_like(sigma))
        if b == 1 and with_gap and min(m, n) == 1:
            # k = 1: no σ₂ (gap 1 by definition); a single vector gives no σ₂ estimate otherwise
            pair.sigma2 = torch.zeros_like(sigma)
            pair.gap = torch.where(sigma > 0, torch.ones_like(sigma), torch.zeros_like(sigma))
        if with_residual:
            # residual of the left relation ‖Wᵀu − σv‖/σ (a posteriori accuracy of the pair)
            pair.residual = torch.linalg.vector_norm((u.unsqueeze(-2) @ W).squeeze(-2) - sigma[..., None] * v,
                                                     dim=-1) / safe
        if state is not None:
            state["basis"] = basis
        return pair

    def _frame(self, W: Tensor, frame: tuple[Tensor, Tensor] | TopPair | None,
               state: MutableMapping[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        if frame is None:
            p = self.top_pair(W, state)
            return p.u, p.v
        if isinstance(frame, TopPair):
            return frame.u, frame.v
        return frame

    # -- geometry ------------------------------------------------------------------------------
    def violation(self, W: Tensor) -> Tensor:
        """|σ₁(W) − R|/R with σ₁ from a float64 SVD (a float32 one carries ≈ u‖W‖_F/σ₁ ≈ 10⁻⁶ by
        itself), returned in W's dtype."""
        _matrices(W)
        try:
            s1 = torch.linalg.matrix_norm(W.to(torch.float64), ord=2)
        except torch.linalg.LinAlgError as e:
            raise _linalg_failure(W, "SpectralSphere.violation", e) from e
        r = _bcast(self.radius, W)
        r = r[..., 0, 0].to(torch.float64) if isinstance(r, Tensor) else r
        return ((s1 - r).abs() / r).to(W.dtype)

    def project_tangent(self, W: Tensor, G: Tensor, frame: tuple[Tensor, Tensor] | TopPair | None = None,
                        state: MutableMapping[str, Tensor] | None = None) -> Tensor:
        _matrices(W, G)
        u, v = self._frame(W, frame, state)
        return spectral_project(G, u, v)

    def tangent_violation(self, W: Tensor, A: Tensor, frame: tuple[Tensor, Tensor] | TopPair | None = None,
                          state: MutableMapping[str, Tensor] | None = None) -> Tensor:
        _matrices(W, A)
        u, v = self._frame(W, frame, state)
        c = _uAv(A, u, v).abs()
        na = _fro(A)
        safe = torch.where(na > 0, na, torch.ones_like(na))
        return torch.where(na == 0, torch.zeros_like(na), c / safe)  # NaN stays NaN

    def _retract(self, W: Tensor, A: Tensor, method: str, state: MutableMapping[str, Tensor] | None = None,
                 **kw: Any) -> Tensor:
        Y = W + A
        if method == "projection":
            return self.project_point(Y)
        s1 = self.top_pair(Y, state, with_gap=False, certify="sigma").sigma
        return Y * (_bcast(self.radius, Y) / s1[..., None, None])

    def project_point(self, Y: Tensor) -> Tensor:
        """Metric projection (exact SVD): mclip(Y; R) if σ₁(Y) ≥ R, else raise σ₁ to R."""
        _matrices(Y)
        try:
            U, s, Vh = torch.linalg.svd(Y, full_matrices=False)
        except torch.linalg.LinAlgError as e:
            raise _linalg_failure(Y, "SpectralSphere.project_point", e) from e
        r = torch.as_tensor(self.radius, dtype=s.dtype, device=s.device)
        r = r[..., None] if r.ndim else r  # (..., 1) or scalar
        s1 = s[..., :1]
        clipped = torch.minimum(s, r.expand_as(s))
        raised = torch.cat([r.expand_as(s1), s[..., 1:]], dim=-1)
        snew = torch.where(s1 >= r, clipped, raised)
        return (U * snew.unsqueeze(-2)) @ Vh

    def random_point(self, shape: Sequence[int], *, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                     min_gap: float = 1e-2) -> Tensor:
        """Random point with relative spectral gap ≥ ``min_gap`` (as the reference)."""
        g = torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device=device)
        U, s, Vh = torch.linalg.svd(g, full_matrices=False)
        r = self.radius[..., None] if isinstance(self.radius, Tensor) else self.radius
        s = r * s / s[..., :1]
        s = torch.minimum(s, r * (1.0 - min_gap) * torch.ones_like(s))
        s[..., 0] = (r * torch.ones_like(s))[..., 0]
        return ((U * s.unsqueeze(-2)) @ Vh).to(dtype)


class Oblique(TorchManifold):
    """Row- (``axis="rows"``) or column-oblique manifold (MATH.md §4.5); radius a float, a tensor
    of per-matrix radii ``(...)`` broadcast as ``(..., 1)``, or per-row/column radii ``(..., count)``.
    Retraction ``"normalize"`` (= ``"projection"``, the metric projection)."""

    retractions = ("normalize", "projection")

    def __init__(self, radius: Radius = 1.0, axis: str = "rows", point_tol: float = DEFAULT_POINT_TOL, *,
                 check_radius: bool = True) -> None:
        super().__init__(point_tol)
        if axis not in ("rows", "cols"):
            raise InvalidInputError(f"axis must be 'rows' or 'cols', got {axis!r}")
        self.axis = axis
        self.radius = _check_radius(radius, check_values=check_radius)
        self.name = self.kind = "oblique_" + axis

    def __repr__(self) -> str:
        return f"Oblique(radius={self.radius!r}, axis={self.axis!r})"

    def _rows(self, x: Tensor) -> Tensor:
        return x if self.axis == "rows" else x.mT

    def _r(self, like: Tensor) -> Tensor | float:
        """Radius broadcastable to the row norms ``(..., count)``."""
        r = self.radius
        if not isinstance(r, Tensor):
            return r
        r = r.to(like.dtype)
        return r if (r.ndim >= 1 and r.shape[-1] == like.shape[-2] and r.ndim == like.ndim - 1) else r[..., None]

    def violation(self, W: Tensor) -> Tensor:
        _matrices(W)
        wr = self._rows(W)
        r = self._r(wr)
        return ((torch.linalg.vector_norm(wr, dim=-1) - r).abs() / r).amax(dim=-1)

    def project_tangent(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        _matrices(W, G)
        wr, gr = self._rows(W), self._rows(G)
        mu = (gr * wr).sum(-1) / (wr * wr).sum(-1)
        return self._rows(gr - mu[..., None] * wr)

    def tangent_violation(self, W: Tensor, A: Tensor, **kw: Any) -> Tensor:
        _matrices(W, A)
        wr, ar = self._rows(W), self._rows(A)
        na = torch.linalg.vector_norm(ar, dim=-1)
        safe = torch.where(na > 0, na, torch.ones_like(na))
        per = torch.where(na == 0, torch.zeros_like(na),  # NaN stays NaN
                          (ar * wr).sum(-1).abs() / (safe * torch.linalg.vector_norm(wr, dim=-1)))
        return per.amax(dim=-1)

    def _retract(self, W: Tensor, A: Tensor, method: str, **kw: Any) -> Tensor:
        return self._normalise(W + A)

    def _normalise(self, Y: Tensor) -> Tensor:
        """Each row (column) scaled to the radius, no zero check (the retraction's hot path)."""
        yr = self._rows(Y)
        n = torch.linalg.vector_norm(yr, dim=-1)
        return self._rows(yr * (self._r(yr) / n)[..., None])

    def project_point(self, Y: Tensor) -> Tensor:
        """Metric projection row- (column-)wise; raises :class:`DegenerateGeometryError` when a row
        (column) is 0 (every point of that sphere is nearest), never a NaN."""
        _matrices(Y)
        if bool(torch.any(torch.linalg.vector_norm(self._rows(Y), dim=-1) == 0)):
            raise DegenerateGeometryError(f"min {self.axis[:-1]} norm of Y", 0.0, 0.0,
                                          f"project_point on the oblique manifold: a zero {self.axis[:-1]} "
                                          "has no unique nearest point")
        return self._normalise(Y)


class Stiefel(TorchManifold):
    """Scaled Stiefel St(m, n; s): WᵀW = s²I (tall) or WWᵀ = s²I (wide) (MATH.md §4.6).

    Projector ``G − W·sym(WᵀG)/s²`` (on the tall orientation). Retractions ``"polar"``
    (s·msign(W + ξ) through the exact float64 SVD; the metric projection) and ``"qr"`` (Q factor
    with diag(R) > 0, first order). ``scale`` is a float or per-matrix tensor ``(...)``.
    """

    retractions = ("polar", "qr")
    name = "stiefel"
    kind = "stiefel"

    def __init__(self, scale: Radius = 1.0, point_tol: float = DEFAULT_POINT_TOL, *,
                 check_radius: bool = True) -> None:
        super().__init__(point_tol)
        self.scale = _check_radius(scale, "scale", check_values=check_radius)

    def __repr__(self) -> str:
        return f"Stiefel(scale={self.scale!r})"

    @staticmethod
    def _tall(x: Tensor) -> tuple[Tensor, bool]:
        wide = x.shape[-2] < x.shape[-1]
        return (x.mT if wide else x), wide

    def violation(self, W: Tensor) -> Tensor:
        _matrices(W)
        t, _ = self._tall(W)
        s = _bcast(self.scale, W)
        gram = t.mT @ t / s**2 - torch.eye(t.shape[-1], dtype=W.dtype, device=W.device)
        return _fro(gram)

    def project_tangent(self, W: Tensor, G: Tensor, **kw: Any) -> Tensor:
        _matrices(W, G)
        t, wide = self._tall(W)
        gt = G.mT if wide else G
        p = gt - t @ _sym(t.mT @ gt) / _bcast(self.scale, W) ** 2
        return p.mT if wide else p

    def tangent_violation(self, W: Tensor, A: Tensor, **kw: Any) -> Tensor:
        _matrices(W, A)
        t, wide = self._tall(W)
        at = A.mT if wide else A
        na = _fro(A)
        safe = torch.where(na > 0, na, torch.ones_like(na))
        s = self.scale if not isinstance(self.scale, Tensor) else self.scale.to(W.dtype)
        return torch.where(na == 0, torch.zeros_like(na), _fro(_sym(t.mT @ at)) / (s * safe))  # NaN stays NaN

    def _retract(self, W: Tensor, A: Tensor, method: str, **kw: Any) -> Tensor:
        Y = W + A
        if method == "qr":
            t, wide = self._tall(Y)
            Q, R = torch.linalg.qr(t)
            d = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
            d = torch.where(d == 0, torch.ones_like(d), d)
            out = _bcast(self.scale, Y) * (Q * d.unsqueeze(-2))
            return out.mT if wide else out
        return self.project_point(Y)

    def project_point(self, Y: Tensor) -> Tensor:
        """s·msign(Y) through the float64 SVD; a Y with NaN/Inf entries raises InvalidInputError
        (on CPU, where torch's SVD fails on it; on CUDA the result is NaN)."""
        _matrices(Y)
        try:
            U, _, Vh = torch.linalg.svd(Y.to(torch.float64), full_matrices=False)
        except torch.linalg.LinAlgError as e:
            raise _linalg_failure(Y, "Stiefel.project_point", e) from e
        return (_bcast(self.scale, Y) * (U @ Vh).to(Y.dtype))


#: the torch twin of each canonical kind of ``reference.kinds`` that has one
TORCH_KINDS: dict[str, type[TorchManifold]] = {
    "euclidean": Euclidean,
    "frobenius_sphere": FrobeniusSphere,
    "spectral_sphere": SpectralSphere,
    "oblique_rows": Oblique,
    "oblique_cols": Oblique,
    "stiefel": Stiefel,
}
#: the optimizers' names (aliases of ``reference.kinds``; the canonical names are accepted too)
MANIFOLD_NAMES = ("euclidean", "frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel")


def make_manifold(name: str, radius: Radius = 1.0, **options: Any) -> TorchManifold:
    """The torch twin of a manifold kind (a name or alias of ``reference.kinds``) with radius/scale
    (unused for euclidean); ``options`` go to the constructor (e.g. the spectral sphere's;
    ``check_radius`` is dropped for euclidean)."""
    kind = get_kind(name)
    cls = TORCH_KINDS.get(kind.name)
    if cls is None:
        raise InvalidInputError(f"manifold kind {name!r} has no torch twin; known: {tuple(TORCH_KINDS)}")
    if kind.size_param is None:
        options.pop("check_radius", None)
    args = () if kind.size_param is None else (radius,)
    return cls(*args, **dict(kind.fixed), **options)
