"""Mano (MATH.md §9.7), AdamW with decoupled weight decay (§9.8) and Riemannian SGD."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_matrix, choice, positive_scalar
from ..errors import InvalidInputError
from ..manifolds import Euclidean, Manifold, Oblique
from ._base import (
    validate_fields,
    F64,
    LR,
    Diagnostics,
    State,
    build_diagnostics,
    check_beta,
    check_pair,
    check_state,
    resolve_lr,
)

__all__ = ["Mano", "AdamW", "RiemannianSGD"]


@dataclass(frozen=True)
class Mano:
    """Mano (MATH.md §9.7), rotating oblique manifold, no retraction (soft constraint).

    At step t (0-based, as the code's ``group["steps"]``) the reduction axis is k = t mod 2
    (k = 0: one norm per column; k = 1: one norm per row), n_k the size of axis k:

        m ← μm + g;  u = g + μm (Nesterov) or m
        θ̂ = θ ⊘ ‖θ‖_{2,k};  v = u − θ̂ ⊙ ⟨u, θ̂⟩_k;  v̂ = v ⊘ max(‖v‖_{2,k}, eps)
        θ ← (1 − ηλ)θ − η·0.2·√n_k·v̂

    ``projection="normalized"`` (θ̂, the README and the reference default) or ``"raw"`` (the
    repository's mano.py projects with the raw θ). Diagnostics use the oblique manifold through W
    along axis k: ``feasibility`` is the relative change of those norms.
    """

    lr: LR = 1e-3
    momentum: float = 0.95
    nesterov: bool = False
    weight_decay: float = 0.1
    projection: str = "normalized"
    eps: float = 1e-8

    def __post_init__(self) -> None:
        validate_fields(self)
        check_beta(self.momentum, "momentum")
        choice(self.projection, ("normalized", "raw"), "projection")
        if self.weight_decay < 0:
            raise InvalidInputError("weight_decay must be >= 0")

    def init_state(self, W: ArrayLike) -> State:
        return State(0, {"momentum": np.zeros_like(as_matrix(W, "W", batched=False))})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        if w.ndim != 2:
            raise InvalidInputError(f"Mano steps one matrix at a time, got shape {w.shape}")
        check_state(state, w, ("momentum",))
        eta = resolve_lr(self.lr, state.t)
        k = state.t % 2
        mu = float(self.momentum)
        Mn = mu * state["momentum"] + g
        U = g + mu * Mn if self.nesterov else Mn
        norms = np.linalg.norm(w, axis=k, keepdims=True)
        if np.any(norms == 0):
            raise InvalidInputError(f"Mano: a zero {'column' if k == 0 else 'row'} of W has no direction")
        basis = w / norms if self.projection == "normalized" else w
        V = U - basis * np.sum(U * basis, axis=k, keepdims=True)
        Vhat = V / np.maximum(np.linalg.norm(V, axis=k, keepdims=True), self.eps)
        c = 0.2 * float(np.sqrt(w.shape[k]))
        D = c * Vhat
        W_next = (1.0 - eta * self.weight_decay) * w - eta * D
        ob = Oblique(norms.ravel(), axis="cols" if k == 0 else "rows")
        diag = build_diagnostics(ob, w, ob.project_tangent(w, U), D, W_next, W_next, eta,
                                 compare_exact=compare_exact,
                                 extras={"lr": eta, "axis": k, "update_rms": float(np.sqrt(np.mean(D * D))),
                                         "projection": self.projection})
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag


@dataclass(frozen=True)
class AdamW:
    """AdamW (MATH.md §9.8), torch form by default:

        m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  m̂ = m/(1 − β₁^t);  v̂ = v/(1 − β₂^t)
        W ← (1 − η_t·λ)W − η_t·m̂/(√v̂ + ε)          (t counted from 1)

    ``decay_form="original"`` (Loshchilov and Hutter) multiplies λ by the schedule multiplier
    η_t/η_0 only: W ← (1 − (η_t/η_0)·λ)W − η_t·m̂/(√v̂ + ε).
    """

    lr: LR = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    decay_form: str = "torch"

    def __post_init__(self) -> None:
        validate_fields(self)
        check_beta(self.betas[0], "beta1")
        check_beta(self.betas[1], "beta2")
        positive_scalar(self.eps, "eps")
        choice(self.decay_form, ("torch", "original"), "decay_form")
        if self.weight_decay < 0:
            raise InvalidInputError("weight_decay must be >= 0")

    def init_state(self, W: ArrayLike) -> State:
        w = as_matrix(W, "W")
        return State(0, {"exp_avg": np.zeros_like(w), "exp_avg_sq": np.zeros_like(w)})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        check_state(state, w, ("exp_avg", "exp_avg_sq"))
        eta = resolve_lr(self.lr, state.t)
        b1, b2 = float(self.betas[0]), float(self.betas[1])
        t = state.t + 1
        m = b1 * state["exp_avg"] + (1.0 - b1) * g
        v = b2 * state["exp_avg_sq"] + (1.0 - b2) * g * g
        D = (m / (1.0 - b1**t)) / (np.sqrt(v / (1.0 - b2**t)) + self.eps)
        if self.decay_form == "torch":
            decay = eta * self.weight_decay
        else:
            eta0 = resolve_lr(self.lr, 0)
            decay = (eta / eta0 if eta0 > 0 else 0.0) * self.weight_decay
        W_next = (1.0 - decay) * w - eta * D
        diag = build_diagnostics(None, w, g, D, W_next, W_next, eta, compare_exact=compare_exact,
                                 extras={"lr": eta, "decay_factor": 1.0 - decay})
        return W_next, state.replace(t=t, exp_avg=m, exp_avg_sq=v), diag


@dataclass(frozen=True)
class RiemannianSGD:
    """Plain Riemannian SGD: W⁺ = R_W(−η·grad f(W)), grad f = P_W(G) (MATH.md §4.0, §6.2)."""

    manifold: Manifold
    lr: LR = 0.01
    retraction: str | None = None

    def __post_init__(self) -> None:
        validate_fields(self)
        if not isinstance(self.manifold, Manifold):
            raise InvalidInputError(f"manifold must be a Manifold, got {self.manifold!r}")

    def init_state(self, W: ArrayLike) -> State:
        as_matrix(W, "W")
        return State(0, {})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        check_state(state, w, ())
        eta = resolve_lr(self.lr, state.t)
        D = self.manifold.project_tangent(w, g)
        A = -eta * D
        W_pre = w + A
        W_next = W_pre.copy() if isinstance(self.manifold, Euclidean) else \
            self.manifold.retract(w, A, self.retraction)
        diag = build_diagnostics(self.manifold, w, D, D, W_pre, W_next, eta,
                                 compare_exact=compare_exact, extras={"lr": eta})
        return W_next, state.replace(t=state.t + 1), diag
