"""The linear tangent constraint 𝓛 of one manifold point (MATH §6.1), float64.

T_W M = ker 𝓛 for every manifold of :mod:`reference.manifolds`. A manifold builds the constraint
of a point with ``Manifold.tangent_constraint(w)`` (``w`` the 2-D working form of one validated
point; the vector sphere is a 1×n row). The constraint knows its multiplier y, the adjoint 𝓛*(y),
the multiplier of the Frobenius-norm LMO, the normalised tangency residual of a direction and its
cvxpy form; the steepest-descent solvers (:mod:`reference.steepest`, :mod:`reference.exact`) work
on this interface only. Families (the structure of 𝓛, not a manifold name):

=================  ====================  ============================  =============================
family             multiplier shape      𝓛*(y)                         used by
=================  ====================  ============================  =============================
``none``           ``(0,)``              0                             Euclidean
``unit_normal``    ``()``                y·Θ (unit normal Θ)           Sphere, FrobeniusSphere,
                                                                       SpectralSphere (simple σ₁)
``normal_frame``   ``(q, q)`` symmetric  U₁·Y·V₁ᵀ                      SpectralSphere strict, mult. q
``normals``        ``(m,)`` / ``(n,)``   diag(μ)·W / W·diag(μ)         Oblique rows / cols
``gram``           ``(k, k)`` symmetric  W·S (tall) / S·W (wide)       Stiefel, Orthogonal
=================  ====================  ============================  =============================

This module imports numpy only (it is below :mod:`reference.manifolds` in the layering).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

__all__ = [
    "TangentConstraint",
    "NoConstraint",
    "UnitNormalConstraint",
    "NormalFrameConstraint",
    "NormalsConstraint",
    "GramConstraint",
]

CvxpyForm = tuple[list[Any], Callable[[], F64]]


def _sym(a: F64) -> F64:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _upper(n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    return np.triu_indices(n)


def _sym_from_upper(nu: F64, n: int) -> F64:
    """The symmetric n×n matrix S(ν) whose A ↦ (M + Mᵀ)_{i≤j} adjoint entries are ν."""
    iu, ju = _upper(n)
    S = np.zeros((n, n))
    np.add.at(S, (iu, ju), nu)
    np.add.at(S, (ju, iu), nu)
    return S


class TangentConstraint(ABC):
    """𝓛 at one point ``w`` (2-D working form, float64); subclasses give one family each."""

    family: str = ""
    #: True iff 𝓛 has a single scalar multiplier (the 1-D dual solvers apply)
    one_multiplier: bool = False

    def __init__(self, w: F64) -> None:
        self.w = w

    @property
    def shape(self) -> tuple[int, int]:
        return self.w.shape  # type: ignore[return-value]

    @abstractmethod
    def multiplier_shape(self) -> tuple[int, ...]:
        """Shape of the multiplier y (() for one scalar)."""

    @abstractmethod
    def adjoint(self, y: F64) -> F64:
        """𝓛*(y) as an m×n matrix (y already of :meth:`multiplier_shape`)."""

    @abstractmethod
    def normal_multiplier(self, G: F64) -> F64:
        """y with G + 𝓛*(y) = P_W(G) (the multiplier of the Frobenius-norm LMO, MATH §6.2)."""

    @abstractmethod
    def residual(self, A: F64) -> float:
        """‖𝓛(A)‖ normalised as the manifold's tangency residual, for A ≠ 0 (divided by ‖A‖_F)."""

    def tangency(self, A: F64) -> float:
        """Normalised tangency residual of A (0 for A = 0)."""
        na = float(np.linalg.norm(A))
        return 0.0 if na == 0.0 else self.residual(A) / na

    @abstractmethod
    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        """(equality constraints 𝓛(A) = 0, a function mapping their dual values to y, our sign)."""


class NoConstraint(TangentConstraint):
    """T_W = everything (Euclidean)."""

    family = "none"

    def multiplier_shape(self) -> tuple[int, ...]:
        return (0,)

    def adjoint(self, y: F64) -> F64:
        return np.zeros(self.shape)

    def normal_multiplier(self, G: F64) -> F64:
        return np.zeros((0,))

    def residual(self, A: F64) -> float:
        return 0.0

    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        return [], lambda: np.zeros((0,))


class UnitNormalConstraint(TangentConstraint):
    """One unit normal Θ: T_W = {A : ⟨Θ, A⟩ = 0}. ``frame`` (U₁, V₁) when Θ = u₁v₁ᵀ."""

    family = "unit_normal"
    one_multiplier = True

    def __init__(self, w: F64, theta: F64, frame: tuple[F64, F64] | None = None) -> None:
        super().__init__(w)
        self.theta = theta
        if frame is not None:
            self.U1, self.V1 = frame

    def multiplier_shape(self) -> tuple[int, ...]:
        return ()

    def adjoint(self, y: F64) -> F64:
        return float(y) * self.theta

    def normal_multiplier(self, G: F64) -> F64:
        return np.asarray(-float(np.sum(G * self.theta)))

    def residual(self, A: F64) -> float:
        return float(abs(np.sum(A * self.theta)))

    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        c = cp.sum(cp.multiply(self.theta, A)) == 0
        return [c], lambda: np.asarray(-float(np.asarray(c.dual_value).reshape(())))


class NormalFrameConstraint(TangentConstraint):
    """Strict tangent space of a repeated σ₁: sym(U₁ᵀAV₁) = 0 (MATH §4.4), q = U₁.shape[1]."""

    family = "normal_frame"

    def __init__(self, w: F64, U1: F64, V1: F64) -> None:
        super().__init__(w)
        self.U1, self.V1 = U1, V1
        self.q = U1.shape[-1]

    def multiplier_shape(self) -> tuple[int, ...]:
        return (self.q, self.q)

    def adjoint(self, y: F64) -> F64:
        return self.U1 @ y @ self.V1.T

    def normal_multiplier(self, G: F64) -> F64:
        return -_sym(self.U1.T @ G @ self.V1)

    def residual(self, A: F64) -> float:
        return float(np.linalg.norm(_sym(self.U1.T @ A @ self.V1)))

    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        q = self.q
        M = self.U1.T @ A @ self.V1
        iu, ju = _upper(q)
        c = (M + M.T)[iu, ju] == 0
        return [c], lambda: -_sym_from_upper(np.asarray(c.dual_value, dtype=np.float64).ravel(), q)


class NormalsConstraint(TangentConstraint):
    """One normal per row (``axis="rows"``: ⟨aᵢ, wᵢ⟩ = 0) or per column (``"cols"``).

    The residual divides each row's |⟨aᵢ, wᵢ⟩|/‖wᵢ‖ by ‖A‖_F rather than by ‖aᵢ‖: a row of A at
    rounding level (a row of G parallel to wᵢ) would otherwise score O(1).
    """

    family = "normals"

    def __init__(self, w: F64, axis: str) -> None:
        super().__init__(w)
        self.axis = axis
        self._ax = 1 if axis == "rows" else 0

    def multiplier_shape(self) -> tuple[int, ...]:
        return (self.shape[0] if self.axis == "rows" else self.shape[1],)

    def adjoint(self, y: F64) -> F64:
        return y[:, None] * self.w if self.axis == "rows" else self.w * y[None, :]

    def normal_multiplier(self, G: F64) -> F64:
        ax = self._ax
        return -np.sum(G * self.w, axis=ax) / np.sum(self.w * self.w, axis=ax)

    def residual(self, A: F64) -> float:
        ax = self._ax
        per = np.abs(np.sum(A * self.w, axis=ax)) / np.sqrt(np.sum(self.w * self.w, axis=ax))
        return float(np.max(per))

    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        c = cp.sum(cp.multiply(A, self.w), axis=self._ax) == 0
        return [c], lambda: -np.asarray(c.dual_value, dtype=np.float64).ravel()


class GramConstraint(TangentConstraint):
    """Scaled Stiefel: sym(WᵀA) = 0 (tall, m ≥ n) or sym(AWᵀ) = 0 (wide), WᵀW = s²I."""

    family = "gram"

    def __init__(self, w: F64, scale: float) -> None:
        super().__init__(w)
        self.scale = float(scale)
        self.wide = w.shape[0] < w.shape[1]

    def _gram(self, A: Any) -> Any:
        return (A @ self.w.T) if self.wide else (self.w.T @ A)

    def multiplier_shape(self) -> tuple[int, ...]:
        return (min(self.shape),) * 2

    def adjoint(self, y: F64) -> F64:
        return y @ self.w if self.wide else self.w @ y

    def normal_multiplier(self, G: F64) -> F64:
        return -_sym(self._gram(G)) / self.scale**2

    def residual(self, A: F64) -> float:
        return float(np.linalg.norm(_sym(self._gram(A)))) / self.scale

    def cvxpy_constraints(self, cp: Any, A: Any) -> CvxpyForm:
        # the adjoint of A ↦ (WᵀA + AᵀW)_{i≤j} is ν ↦ W·S(ν) (tall), S(ν)·W (wide)
        M = self._gram(A)
        p = M.shape[0]
        iu, ju = _upper(p)
        c = (M + M.T)[iu, ju] == 0
        return [c], lambda: -_sym_from_upper(np.asarray(c.dual_value, dtype=np.float64).ravel(), p)
