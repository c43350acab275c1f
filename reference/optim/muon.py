"""Muon with the convention profiles of CONVENTIONS.md §4–§8, and MuonH/Hyperball (MATH.md §9.2–9.3).

Exact Muon: O = msign(U); the step is W ← (1 − η_wd·λ)W − η·s·O with η_wd the raw learning
rate. A profile fixes the momentum form, Nesterov default, shape scale, WD default and NS schedule;
``msign_backend="profile"`` applies that schedule exactly (:func:`reference.ns_apply`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._scaling import fro
from .._validate import as_matrix, choice, flag
from ..errors import InvalidInputError
from ..manifolds import Euclidean, FrobeniusSphere
from ..schedules import get_schedule
from ._base import (
    validate_fields,
    F64,
    LR,
    Backend,
    Diagnostics,
    State,
    apply_msign,
    as_scalar,
    build_diagnostics,
    check_backend,
    check_beta,
    check_pair,
    check_state,
    exact_comparison,
    resolve_lr,
    shape_scale,
    spectral_norm,
)
from .conventions import update_momentum, apply_weight_decay, decay_factor

__all__ = ["Muon", "MuonH", "MUON_PROFILES"]

#: Convention profiles (CONVENTIONS.md §4.1–4.4, §5, §7, §8). ``schedule`` is the NS schedule used
#: by ``msign_backend="profile"``; ``accumulate`` selects M ← βM + G instead of the EMA.
MUON_PROFILES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "keller_jordan": MappingProxyType(dict(
        accumulate=False, nesterov=True, scale="kj", lr=0.02, weight_decay=0.0, beta=0.95,
        schedule=get_schedule("keller_jordan"),
        source="KellerJordan/Muon muon.py (CONVENTIONS.md §4.1)")),
    "torch": MappingProxyType(dict(
        accumulate=False, nesterov=True, scale="kj", lr=1e-3, weight_decay=0.1, beta=0.95,
        schedule=get_schedule("keller_jordan").with_options(eps_form="clamp", name="torch_muon"),
        source="torch.optim.Muon, adjust_lr_fn None/'original' (CONVENTIONS.md §4.2); "
               "scale='moonlight' gives 'match_rms_adamw'")),
    "moonlight": MappingProxyType(dict(
        accumulate=True, nesterov=True, scale="moonlight", lr=1e-3, weight_decay=0.1, beta=0.95,
        schedule=get_schedule("keller_jordan"),
        source="MoonshotAI/Moonlight examples/toy_train.py (CONVENTIONS.md §4.3)")),
    "dion": MappingProxyType(dict(
        accumulate=True, nesterov=False, scale="spectral_mup", lr=0.01, weight_decay=0.01, beta=0.95,
        schedule=get_schedule("polar_express_dion"),
        source="microsoft/dion dion.Muon defaults, adjust_lr 'spectral_norm', Polar Express "
               "(CONVENTIONS.md §4.4)")),
})


def _fro(x: F64) -> F64:
    return fro(x, None)  # power-of-two scaled: no overflow in the sum (reference._scaling)


@dataclass(frozen=True)
class Muon:
    """Muon under a named convention profile (MATH.md §9.2; CONVENTIONS.md §4–§8).

    Fields left as None take the profile's value (``MUON_PROFILES``). ``msign_backend`` is
    ``"exact"`` (default), ``"profile"`` (the profile's schedule, applied exactly) or a schedule.
    Matrices in a batch are orthogonalised independently (no flattening of 3-D weights).
    """

    profile: str = "keller_jordan"
    lr: LR | None = None
    beta: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    scale: str | float | None = None
    msign_backend: Backend = "exact"
    ns_steps: int | None = None

    def __post_init__(self) -> None:
        validate_fields(self)
        choice(self.profile, tuple(MUON_PROFILES), "profile")
        check_beta(self.config["beta"])
        if self.config["weight_decay"] < 0:
            raise InvalidInputError("weight_decay must be >= 0")
        if not (isinstance(self.msign_backend, str) and self.msign_backend == "profile"):
            check_backend(self.msign_backend)

    @property
    def config(self) -> dict[str, Any]:
        """The resolved hyperparameters (profile defaults overridden by the fields that are set)."""
        cfg = dict(MUON_PROFILES[self.profile])
        for k in ("lr", "beta", "nesterov", "weight_decay", "scale"):
            v = getattr(self, k)
            if v is not None:
                cfg[k] = v
        return cfg

    def init_state(self, W: ArrayLike) -> State:
        return State(0, {"momentum": np.zeros_like(as_matrix(W, "W"))})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        """W ← (1 − η·λ)W − η·s·O, O = msign(U) (or the schedule's exact output)."""
        w, g = check_pair(W, G)
        check_state(state, w, ("momentum",))
        cfg = self.config
        eta = resolve_lr(cfg["lr"], state.t)
        form = ("nesterov_" if cfg["nesterov"] else "") + ("accumulate" if cfg["accumulate"] else "ema")
        Mn, U = update_momentum(form, float(cfg["beta"]), state["momentum"], g)
        backend = cfg["schedule"] if self.msign_backend == "profile" else self.msign_backend
        O = apply_msign(U, backend, self.ns_steps)
        s = shape_scale(cfg["scale"], w.shape)
        lam = float(cfg["weight_decay"])
        W_next = apply_weight_decay("decoupled_raw_lr", w, s * O, eta, lam)
        diag = build_diagnostics(None, w, U, O, W_next, W_next, eta * s, compare_exact=compare_exact,
                                 extras={"lr": eta, "scale": s, "weight_decay": lam, "momentum_form": form})
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag


@dataclass(frozen=True)
class MuonH:
    """MuonH / Hyperball (MATH.md §9.3).

    ``form="archscale"`` (default) is the microsoft/ArchScale code sequence, per matrix:
    M ← μM + G; U ← μM + G (Nesterov) or M; O = msign(U); X ← (1 − ηλ)W; r ← ‖X‖_F; q ← ‖O‖_F;
    X ← X − η·(r/max(q, eps))·O; W⁺ = X·r/max(‖X‖_F, eps). No shape scaling; the radius shrinks by
    (1 − ηλ) per step when λ > 0. ``form="paper"`` is W⁺ = R·N((1 − ηλ)W − η·R·N(O)) with the fixed
    R = ‖W₀‖_F stored by :meth:`init_state`. The ArchScale code uses the ``you_jiacheng_5``
    schedule (``msign_backend="you_jiacheng_5"``); the default here is the exact msign.
    """

    lr: LR = 0.02
    momentum: float = 0.95
    nesterov: bool = True
    weight_decay: float = 0.0
    form: str = "archscale"
    msign_backend: Backend = "exact"
    ns_steps: int | None = None
    eps: float = 1e-8

    def __post_init__(self) -> None:
        validate_fields(self)
        check_beta(self.momentum, "momentum")
        choice(self.form, ("archscale", "paper"), "form")
        check_backend(self.msign_backend)
        if self.weight_decay < 0 or self.eps < 0:
            raise InvalidInputError("weight_decay and eps must be >= 0")

    def init_state(self, W: ArrayLike) -> State:
        w = as_matrix(W, "W")
        R = _fro(w)
        if np.any(R == 0):
            raise InvalidInputError("MuonH needs W with a non-zero Frobenius norm")
        return State(0, {"momentum": np.zeros_like(w), "radius": R})

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        w, g = check_pair(W, G)
        check_state(state, w, ("momentum",))
        eta = resolve_lr(self.lr, state.t)
        mu, lam = float(self.momentum), float(self.weight_decay)
        Mn, U = update_momentum("nesterov_accumulate" if self.nesterov else "accumulate", mu,
                                 state["momentum"], g)
        O = apply_msign(U, self.msign_backend, self.ns_steps)
        q = _fro(O)
        Xd = decay_factor("before_radius", eta, lam) * w
        if self.form == "archscale":
            r = _fro(Xd)
            c = eta * r / np.maximum(q, self.eps)
            W_pre = Xd - c[..., None, None] * O
            W_next = W_pre * (r / np.maximum(_fro(W_pre), self.eps))[..., None, None]
        else:
            r = np.asarray(state["radius"], dtype=np.float64)
            c = eta * r / q
            W_pre = Xd - c[..., None, None] * O
            W_next = r[..., None, None] * W_pre / _fro(W_pre)[..., None, None]
        r0 = _fro(w)
        D = O
        X = U - (np.sum(U * w, axis=(-2, -1)) / r0**2)[..., None, None] * w
        base = build_diagnostics(None, w, X, D, W_pre, W_next, float(np.max(c)),
                                 tangent_manifold=Euclidean(),
                                 extras={"lr": eta, "radius": as_scalar(r), "weight_decay": lam,
                                         "form": self.form})
        nD = _fro(D)
        tang = np.where(nD > 0, np.abs(np.sum(D * w, axis=(-2, -1))) / (np.where(nD > 0, nD, 1.0) * r0), 0.0)
        exact_value = subopt = None
        if flag(compare_exact, "compare_exact"):
            exact_value, subopt = exact_comparison(FrobeniusSphere(1.0), w / r0[..., None, None],
                                                    X, D, spectral_norm(D))
        diag = replace(base, feasibility=as_scalar(np.abs(_fro(W_next) - r) / r), tangency=as_scalar(tang),
                       pre_retraction_violation=as_scalar(np.abs(_fro(W_pre) - r) / r),
                       exact_value=exact_value, suboptimality=subopt)
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag
