"""Manifold Muon and SPEL on the Stiefel manifold (MATH.md §9.5, §9.6).

Wide matrices (d_out < d_in) are handled on their transpose, as in the source code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_matrix, choice, count, nonnegative_scalar, positive_scalar
from ..errors import InvalidInputError
from ..linalg import msign
from ..manifolds import Stiefel
from ._base import (
    validate_fields,
    F64,
    LR,
    Backend,
    Diagnostics,
    State,
    apply_msign,
    build_diagnostics,
    check_backend,
    check_beta,
    check_pair,
    check_state,
    resolve_lr,
)
from .conventions import momentum_buffer, apply_weight_decay

__all__ = ["ManifoldMuon", "SPEL", "dual_ascent"]


def dual_ascent(W: F64, G: F64, *, alpha: float = 0.01, steps: int = 100, tol: float = 1e-6,
                backend: Backend = "exact", ns_steps: int | None = None) -> tuple[F64, dict[str, Any]]:
    """Manifold-Muon dual ascent (MATH.md §6.6 item 2) on a tall W with WᵀW = I.

    Λ₀ = −¼(WᵀG + GᵀW); Aⱼ = msign(G + 2WΛⱼ); Hⱼ = WᵀAⱼ + AⱼᵀW; stop when ‖Hⱼ‖_F/n < tol,
    else Λⱼ₊₁ = Λⱼ − α(1 − j/J)Hⱼ. Returns the last A and {iterations, residual, converged}
    (the fixed budget J = ``steps`` of the source code: not converging is reported, not raised).
    Raises :class:`InvalidInputError` for bad constants or input, :class:`OffManifoldError` if
    W is not tall with orthonormal columns (default tolerance of :class:`Stiefel`).
    """
    w, g = check_pair(W, G)
    if w.ndim != 2 or w.shape[0] < w.shape[1]:
        raise InvalidInputError(f"dual_ascent needs one tall W (m >= n), got shape {w.shape}")
    Stiefel(1.0).check_point(w)
    return _dual_ascent(w, g, alpha=positive_scalar(alpha, "alpha"), steps=count(steps, "steps"),
                        tol=nonnegative_scalar(tol, "tol"), backend=backend, ns_steps=ns_steps)


def _dual_ascent(W: F64, G: F64, *, alpha: float, steps: int, tol: float,
                 backend: Backend, ns_steps: int | None) -> tuple[F64, dict[str, Any]]:
    """:func:`dual_ascent` without the checks (the Manifold Muon step: its W drifts under NS)."""
    n = W.shape[1]
    Lam = -0.25 * (W.T @ G + G.T @ W)
    A = np.zeros_like(G)
    res = np.inf
    j = 0
    exact = isinstance(backend, str) and backend == "exact"
    for j in range(int(steps)):
        Z = G + 2.0 * W @ Lam
        # exact backend: the plain SVD product (error ~u·κ; the iteration is a baseline whose
        # own residual is orders of magnitude larger)
        A = msign(Z, refine=False) if exact else apply_msign(Z, backend, ns_steps)
        H = W.T @ A + A.T @ W
        res = float(np.linalg.norm(H)) / n
        if res < tol:
            break
        Lam = Lam - alpha * (1.0 - j / steps) * H
    return A, {"iterations": j + 1, "residual": res, "converged": bool(res < tol)}


@dataclass(frozen=True)
class ManifoldMuon:
    """Manifold Muon (thinking-machines-lab/manifolds; MATH.md §9.5), unit Stiefel, no momentum.

    ``solver="dual_ascent"`` (the code: α, J = ``steps``, ``tol``) or ``"exact"`` (the exact tangent
    LMO from ``reference.steepest.steepest_direction``). The retraction is W⁺ = msign(W − ηA) with
    the same ``msign_backend`` (the code: bf16 Polar Express, modelled by ``polar_express_stable``
    with 10 steps; the exact default uses the exact polar factor).
    """

    lr: LR = 0.1
    alpha: float = 0.01
    steps: int = 100
    tol: float = 1e-6
    solver: str = "dual_ascent"
    msign_backend: Backend = "exact"
    ns_steps: int | None = None

    def __post_init__(self) -> None:
        validate_fields(self)
        choice(self.solver, ("dual_ascent", "exact"), "solver")
        positive_scalar(self.alpha, "alpha")
        positive_scalar(self.tol, "tol")
        if int(self.steps) < 1:
            raise InvalidInputError("steps must be >= 1")
        check_backend(self.msign_backend)

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> "ManifoldMuon":
        """``"thinky"``: the code's defaults (dual ascent, Polar Express stable list, 10 steps,
        applied exactly); ``"exact"``: the exact tangent LMO and the exact polar retraction."""
        choice(name, ("thinky", "exact"), "profile")
        base: dict[str, Any] = (dict(msign_backend="polar_express_stable", ns_steps=10)
                                if name == "thinky" else dict(solver="exact"))
        base.update(overrides)
        return cls(**base)

    @staticmethod
    def initial_point(W0: ArrayLike) -> F64:
        """msign(W₀) (the training driver's projection of the initial weights)."""
        return Stiefel(1.0).project_point(W0)

    def init_state(self, W: ArrayLike) -> State:
        as_matrix(W, "W", batched=False)
        return State(0, {})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        if w.ndim != 2:
            raise InvalidInputError(f"ManifoldMuon steps one matrix at a time, got shape {w.shape}")
        check_state(state, w, ())
        exact = isinstance(self.msign_backend, str) and self.msign_backend == "exact"
        man = Stiefel(1.0) if exact else Stiefel(1.0, point_tol=1e300)  # NS retraction drifts
        man.check_point(w)
        eta = resolve_lr(self.lr, state.t)
        wide = w.shape[0] < w.shape[1]
        wt, gt = (w.T, g.T) if wide else (w, g)
        if self.solver == "exact":
            from ..steepest import steepest_direction  # lazy: written in parallel (issue 3)

            A = np.asarray(steepest_direction(man, wt, gt, norm="spectral").direction, dtype=np.float64)
            info: dict[str, Any] = {"iterations": 0, "converged": True}
        else:
            A, info = _dual_ascent(wt, gt, alpha=self.alpha, steps=self.steps, tol=self.tol,
                                   backend=self.msign_backend, ns_steps=self.ns_steps)
        W_pre_t = wt - eta * A
        if exact:
            W_next_t = man.project_point(W_pre_t)
        else:
            W_next_t = apply_msign(W_pre_t, self.msign_backend, self.ns_steps)
        D = A.T if wide else A
        W_pre = W_pre_t.T if wide else W_pre_t
        W_next = W_next_t.T if wide else W_next_t
        X = man.project_tangent(w, g)
        diag = build_diagnostics(man, w, X, D, W_pre, W_next, eta, compare_exact=compare_exact,
                                 extras={"lr": eta, **info})
        return W_next, state.replace(t=state.t + 1), diag


@dataclass(frozen=True)
class SPEL:
    """SPEL (MATH.md §9.6): m ← βm + (1 − β)g; θ⁺ = s·msign((1 − ηλ)θ − η·msign(P_T m)).

    ``project=True`` (paper/MCSD form, P_T(G) = G − θ·sym(θᵀG)/s²); ``project=False`` is the
    Emerging-Optimizers form at the pinned version, msign(θ − η·msign(m)) (``profile="eo"`` also
    sets λ = 0.1 and the ``you_jiacheng_5`` "quintic" schedule, applied exactly). This is MACRO
    variant B with the metric projection (polar) as retraction. ``scale`` s is the Stiefel scale.
    """

    lr: LR = 0.02
    beta: float = 0.95
    project: bool = True
    weight_decay: float = 0.0
    scale: float = 1.0
    msign_backend: Backend = "exact"
    ns_steps: int | None = None

    def __post_init__(self) -> None:
        validate_fields(self)
        check_beta(self.beta)
        positive_scalar(self.scale, "scale")
        if self.weight_decay < 0:
            raise InvalidInputError("weight_decay must be >= 0")
        check_backend(self.msign_backend)

    @classmethod
    def profile(cls, name: str, **overrides: Any) -> "SPEL":
        """Named profiles: ``"paper"`` (defaults) and ``"eo"`` (no projection, λ = 0.1, quintic)."""
        choice(name, ("paper", "eo"), "profile")
        base: dict[str, Any] = {} if name == "paper" else dict(project=False, weight_decay=0.1,
                                                                msign_backend="you_jiacheng_5")
        base.update(overrides)
        return cls(**base)

    def init_state(self, W: ArrayLike) -> State:
        return State(0, {"momentum": np.zeros_like(as_matrix(W, "W"))})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        check_state(state, w, ("momentum",))
        exact = isinstance(self.msign_backend, str) and self.msign_backend == "exact"
        # with an NS backend the retraction is approximate and W drifts off St (as in the code);
        # the projector formula is then applied at the current W without the membership check
        man = Stiefel(self.scale) if exact else Stiefel(self.scale, point_tol=1e300)
        man.check_point(w)
        eta = resolve_lr(self.lr, state.t)
        Mn = momentum_buffer("ema", self.beta, state["momentum"], g)
        X = man.project_tangent(w, Mn)
        D = apply_msign(X if self.project else Mn, self.msign_backend, self.ns_steps)
        W_pre = apply_weight_decay("decoupled_raw_lr", w, D, eta, self.weight_decay)
        W_next = man.project_point(W_pre) if exact else \
            self.scale * apply_msign(W_pre, self.msign_backend, self.ns_steps)
        diag = build_diagnostics(man, w, X, D, W_pre, W_next, eta, compare_exact=compare_exact,
                                 extras={"lr": eta, "weight_decay": self.weight_decay,
                                         "project": self.project})
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag
