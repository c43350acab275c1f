"""Shared pieces of the steepest-descent subproblem (MATH §6.1), imported by both solvers.

:mod:`reference.steepest` (closed forms, 1-D duals, Stiefel iterations, certificates) and
:mod:`reference.exact` (the cvxpy formulation) both work on a :class:`TangentGeometry` (one point W
and the linear constraint 𝓛 its manifold gives, ``Manifold.tangent_constraint``), return a
:class:`SteepestResult` assembled by :func:`build_result`, and measure with :func:`primal_norm`,
:func:`dual_norm` and :func:`relative_gap`. This module sits below both (no import cycle).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_float64, as_matrix, as_vector
from .constraints import TangentConstraint
from .errors import InvalidInputError, SolverError
from .kinds import kind_of
from .linalg import msign
from .manifolds import Manifold

F64 = NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)

__all__ = [
    "NORMS",
    "SteepestResult",
    "TangentGeometry",
    "as_gradient",
    "build_result",
    "check_norm",
    "primal_norm",
    "dual_norm",
    "relative_gap",
    "degenerate_completion",
]

NORMS: tuple[str, ...] = ("spectral", "frobenius")


@dataclass(frozen=True)
class SteepestResult:
    """Solution of the steepest-descent subproblem (MATH §6.1), all float64.

    ``direction`` Φ (shape of W), feasible up to rounding for exact methods; ``value`` ⟨G, Φ⟩;
    ``multiplier`` y (shape per manifold, see the module docstring); ``dual_value``
    ‖G + 𝓛*(y)‖^† by SVD; ``gap`` = (dual_value − value)/max(1, |dual_value|) (MATH §6.9 item 4);
    ``tangency`` the manifold's normalised tangency residual of Φ; ``feasibility`` ‖Φ‖ − 1 in the
    chosen norm (≤ 0 inside the ball); ``history`` per-iteration residuals where the method has one
    (tangency ‖sym(WᵀΦ)‖_F/‖Φ‖_F for su_lyapunov, ‖H‖_F/n for dual ascent, |h(λ)| per evaluation for
    bisection/brent, |Δλ| per step for Su's 1-D iterations, the relative gap for the subgradient
    baseline); ``extras`` solver-specific figures (cvxpy: the raw certificate figures); ``status`` is ``"optimal"`` for certified exact answers,
    ``"optimal_degenerate"`` after the kink completion of MATH §6.4 item 6, ``"converged"`` /
    ``"not_converged"`` for baselines, ``"degenerate"`` for Su's basis-dependent multi-multiplier.
    """

    direction: F64
    value: float
    multiplier: F64
    dual_value: float
    gap: float
    method: str
    solver: str
    status: str
    iterations: int
    seconds: float
    norm: str = "spectral"
    tangency: float = 0.0
    feasibility: float = 0.0
    history: tuple[float, ...] = ()
    notes: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


class TangentGeometry:
    """One point W of a manifold in its 2-D working form and the constraint 𝓛 with T_W = ker 𝓛.

    ``kind`` is the manifold's canonical kind (:func:`reference.kinds.kind_of`); ``constraint``
    the :class:`~reference.constraints.TangentConstraint` built by the manifold (its family, not the
    manifold's name, decides which solver applies). The vector sphere is handled as a 1×n row.
    """

    def __init__(self, manifold: Manifold, W: ArrayLike) -> None:
        if not isinstance(manifold, Manifold):
            raise InvalidInputError(f"manifold must be a reference.manifolds.Manifold, got {type(manifold)!r}")
        self.manifold = manifold
        self.kind = kind_of(manifold) if _registered(manifold) else type(manifold).__name__
        if manifold.point_ndim == 1:
            w = as_vector(W, "W")
            if w.ndim != 1:
                raise InvalidInputError(f"steepest_direction takes one point; got shape {w.shape}")
            manifold.check_point(w)
            self.out_shape: tuple[int, ...] = w.shape
            self.w = w[None, :]
        else:
            w = as_matrix(W, "W")
            if w.ndim != 2:
                raise InvalidInputError(f"steepest_direction takes one matrix W (2-D); got shape {w.shape}")
            manifold.check_point(w)
            self.out_shape = w.shape
            self.w = w
        self.constraint: TangentConstraint = manifold.tangent_constraint(self.w)

    @property
    def shape(self) -> tuple[int, int]:
        return self.w.shape  # type: ignore[return-value]

    @property
    def family(self) -> str:
        return self.constraint.family

    @property
    def one_multiplier(self) -> bool:
        return self.constraint.one_multiplier

    def multiplier_shape(self) -> tuple[int, ...]:
        return self.constraint.multiplier_shape()

    def adjoint(self, y: F64) -> F64:
        """𝓛*(y) as an m×n matrix (conventions in :mod:`reference.constraints`)."""
        y = np.asarray(y, dtype=np.float64)
        if y.shape != self.multiplier_shape():
            raise InvalidInputError(f"multiplier of shape {y.shape}, expected {self.multiplier_shape()} "
                                    f"for {self.manifold!r}")
        return self.constraint.adjoint(y)

    def project(self, G: F64) -> F64:
        """P_W(G) (the manifold's orthogonal tangent projector) on the working form."""
        return self.manifold.project_tangent(self.w.reshape(self.out_shape),
                                             G.reshape(self.out_shape)).reshape(self.shape)

    def normal_multiplier(self, G: F64) -> F64:
        """y with G + 𝓛*(y) = P_W(G) (the multiplier of the Frobenius-norm LMO, MATH §6.2)."""
        return self.constraint.normal_multiplier(G)

    def tangency(self, A: F64) -> float:
        """Normalised tangency residual of A (0 for A = 0); see ``TangentConstraint.residual``."""
        return self.constraint.tangency(A)

    def to_output(self, A: F64) -> F64:
        return A.reshape(self.out_shape)


def _registered(manifold: Manifold) -> bool:
    try:
        kind_of(manifold)
    except InvalidInputError:
        return False
    return True


def _sv(X: F64) -> F64:
    return np.linalg.svd(X, compute_uv=False)


def _norm_input(X: ArrayLike, norm: str, name: str) -> F64:
    """X as a finite float64 matrix (a vector is one row) after checking ``norm``."""
    check_norm(norm)
    x = as_float64(X, name)
    return as_matrix(x[None, :] if x.ndim == 1 else x, name, batched=False)


def primal_norm(A: F64, norm: str) -> float:
    """‖A‖₂ (spectral) or ‖A‖_F (frobenius) in float64."""
    a = _norm_input(A, norm, "A")
    return float(_sv(a)[0]) if norm == "spectral" else float(np.linalg.norm(a))


def dual_norm(Z: F64, norm: str) -> float:
    """‖Z‖_* (spectral problem) or ‖Z‖_F (frobenius problem), by SVD in float64."""
    z = _norm_input(Z, norm, "Z")
    return float(np.sum(_sv(z))) if norm == "spectral" else float(np.linalg.norm(z))


def check_norm(norm: str) -> str:
    if not isinstance(norm, str) or norm not in NORMS:
        raise InvalidInputError(f"norm must be one of {NORMS}, got {norm!r}")
    return norm


def relative_gap(d: float, p: float) -> float:
    """(d − p)/max(1, |d|), the gap of MATH §6.9 item 4 (±Inf allowed: no bound yet; NaN refused)."""
    if np.isnan(d) or np.isnan(p):
        raise InvalidInputError(f"relative_gap: NaN value (d = {d!r}, p = {p!r})")
    return (d - p) / max(1.0, abs(d))


def as_gradient(geo: TangentGeometry, G: ArrayLike) -> F64:
    """G validated against W and brought to the 2-D working form."""
    if geo.manifold.point_ndim == 1:
        g = as_vector(G, "G")
        if g.shape != geo.out_shape:
            raise InvalidInputError(f"G has shape {g.shape}, W has {geo.out_shape}")
        return g[None, :]
    g = as_matrix(G, "G")
    if g.shape != geo.shape:
        raise InvalidInputError(f"G has shape {g.shape}, W has {geo.shape}")
    return g


def build_result(geo: TangentGeometry, G: F64, A: F64, y: F64, norm: str, method: str, solver: str, status: str,
            iterations: int, t0: float, history: tuple[float, ...] = (), notes: str = "",
            extras: dict[str, Any] | None = None) -> SteepestResult:
    """The :class:`SteepestResult` of direction A and multiplier y (value, dual value by SVD, gap)."""
    y = np.asarray(y, dtype=np.float64).reshape(geo.multiplier_shape())
    p = float(np.sum(G * A))
    d = dual_norm(G + geo.adjoint(y), norm)
    return SteepestResult(
        direction=geo.to_output(A), value=p, multiplier=y, dual_value=d, gap=relative_gap(d, p),
        method=method, solver=solver, status=status, iterations=int(iterations),
        seconds=time.perf_counter() - t0, norm=norm, tangency=geo.tangency(A),
        feasibility=primal_norm(A, norm) - 1.0, history=tuple(float(h) for h in history), notes=notes,
        extras=dict(extras or {}))


def degenerate_completion(Z: ArrayLike, Theta: ArrayLike, *, max_rtol: float = 1e-6) -> tuple[F64, int]:
    """Tangent optimal direction at a kink of h (MATH §6.4 item 6).

    With Z = G + λ*Θ = U_rΣ_rV_rᵀ of numerical rank r < k: f_r = ⟨Θ, U_rV_rᵀ⟩, B = U₀ᵀΘV₀ and
    Φ* = U_rV_rᵀ − (f_r/‖B‖_*)·U₀·msign(B)·V₀ᵀ, valid when |f_r| ≤ ‖B‖_*. The rank threshold is
    the smallest of τ_j = 10^j·k·ε·σ₁ (j = 0, 1, …, up to ``max_rtol``·σ₁) for which the
    completion is feasible; the value lost is Σ of the dropped σᵢ ≤ (k − r)·τ_j. Returns (Φ*, r);
    raises :class:`SolverError` if no threshold gives a feasible completion (λ is not a kink).
    """
    z = as_matrix(Z, "Z")
    th = as_matrix(Theta, "Theta")
    m, n = z.shape
    k = min(m, n)
    U, s, Vt = np.linalg.svd(z, full_matrices=True)
    s1 = s[0] if s.size else 0.0
    tried = []
    j = 0
    while True:
        tau = (10.0 ** j) * k * EPS * s1
        if tau > max_rtol * s1 and j > 0:
            break
        j += 1
        r = int(np.sum(s > tau))
        if tried and tried[-1][0] == r:
            continue
        if r >= k:
            tried.append((r, np.inf))
            continue
        Ur, Vr = U[:, :r], Vt[:r, :].T
        U0, V0 = U[:, r:], Vt[r:, :].T
        base = Ur @ Vr.T
        fr = float(np.sum(th * base))
        B = U0.T @ th @ V0
        nB = float(np.sum(_sv(B))) if B.size else 0.0
        tried.append((r, abs(fr) / nB if nB > 0 else np.inf))
        if nB > 0 and abs(fr) <= nB * (1 + 16 * EPS * k):
            coef = max(-1.0, min(1.0, fr / nB))
            return base - coef * (U0 @ msign(B) @ V0.T), r
        if nB == 0 and fr == 0:
            return base, r
    raise SolverError("degenerate completion impossible: no rank threshold gives |f_r| ≤ ‖B‖_* "
                      "(λ is not at a kink of h)", "completion_failed",
                      {"tried (rank, |f_r|/‖B‖_*)": str(tried)})
