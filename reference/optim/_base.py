"""Shared pieces of the reference optimizers (MATH.md §7, §9.1): state, diagnostics, rules.

Conventions for every optimizer of :mod:`reference.optim`:

* float64, matrices in the (d_out, d_in) layout, batched over leading axes where the manifold is;
* a frozen hyperparameter dataclass with ``init_state(W) -> State`` and a pure
  ``step(W, G, state, *, compare_exact=False) -> (W_next, State, Diagnostics)``;
* inputs are never written to; the arrays held by a :class:`State` are read-only.

``lr`` may be a float or a callable ``t -> η_t`` of the 0-based step index t.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._scaling import fro, pow2_scale
from .._validate import as_float64, as_matrix, count, flag, nonnegative_scalar, same_shape
from ..errors import InvalidInputError
from ..linalg import msign
from ..kinds import KINDS, canonical_kind, manifold_from_kind
from ..manifolds import Euclidean, Manifold, SpectralSphere
from ..schedules import Schedule, get_schedule, ns_apply
from .conventions import MOMENTUM_FORMS, SCALE_RULES, check_beta, shape_scale, update_momentum

F64 = NDArray[np.float64]
LR = Union[float, Callable[[int], float]]
Backend = Union[str, Schedule]

__all__ = [
    "State",
    "Diagnostics",
    "apply_msign",
    "tangent_noise_floor",
    "shape_scale",
    "SCALE_RULES",
    "MOMENTUM_FORMS",
    "resolve_lr",
    "update_momentum",
    "build_diagnostics",
    "as_scalar",
    "spectral_norm",
    "exact_comparison",
]


def _readonly(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        a = a.copy()
        a.setflags(write=False)
    return a


@dataclass(frozen=True)
class State:
    """Optimizer state: the 0-based step count ``t`` and named read-only buffers."""

    t: int
    buffers: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buffers",
                           MappingProxyType({k: _readonly(v) for k, v in dict(self.buffers).items()}))

    def __getitem__(self, key: str) -> Any:
        return self.buffers[key]

    def replace(self, t: int | None = None, **buffers: Any) -> "State":
        """A new state with ``t`` and the given buffers replaced."""
        new = dict(self.buffers)
        new.update(buffers)
        return State(self.t if t is None else t, new)


@dataclass(frozen=True)
class Diagnostics:
    """Per-step diagnostics (MATH.md §7.4). Scalars for one matrix, arrays ``(...)`` for a batch.

    ``direction`` D is the method's un-scaled direction and ``step_scale`` the factor c with
    ``W_pre = W' − c·D`` (W' = W after any decay); ``lmo_input`` X is the tangent (or, for
    unconstrained methods, ambient) matrix the method orthogonalises.

    * ``feasibility`` c_M(W_next) (None for unconstrained methods);
    * ``tangency`` v_M(W, D); ``alignment`` |⟨D, X⟩ − ‖X‖_*|/‖X‖_* (0 when X = 0);
    * ``direction_spectral`` ‖D‖₂, ``direction_frobenius`` ‖D‖_F;
    * ``angle`` the Frobenius angle between W and W_next (atan2 form, accurate near 0);
    * ``relative_update`` ‖W_next − W‖_F/‖W‖_F;
    * ``pre_retraction_violation`` c_M(W_pre); ``retraction_shrink`` ‖W_next‖_F/‖W_pre‖_F;
    * ``spectral_gap`` (σ₁ − σ₂)/σ₁ of W on the spectral sphere (None elsewhere);
    * ``direction`` D and ``lmo_input`` X themselves (read-only copies);
    * ``exact_value`` OPT_T(X) and ``suboptimality`` (⟨X, D⟩/‖D‖₂)/OPT_T(X) when requested;
    * ``extras``: method-specific figures (e.g. SSO's λ and bisection status).
    """

    feasibility: Any
    tangency: Any
    alignment: Any
    direction_spectral: Any
    direction_frobenius: Any
    angle: Any
    relative_update: Any
    pre_retraction_violation: Any
    retraction_shrink: Any
    step_scale: float
    spectral_gap: Any = None
    direction: Any = None
    lmo_input: Any = None
    exact_value: Any = None
    suboptimality: Any = None
    extras: Mapping[str, Any] = field(default_factory=dict)


def as_scalar(a: Any) -> Any:
    """A 0-d value as a Python float, anything else as a float64 array (diagnostics fields)."""
    a = np.asarray(a, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def _fro(x: F64) -> F64:
    return fro(x, None)  # power-of-two scaled: no overflow in the sum (reference._scaling)


def _dot(a: F64, b: F64) -> F64:
    return np.sum(a * b, axis=(-2, -1))


def check_pair(W: ArrayLike, G: ArrayLike) -> tuple[F64, F64]:
    """Validate W and G as float64 matrices of equal shape (never writes into them)."""
    w = as_matrix(W, "W")
    g = as_matrix(G, "G")
    same_shape(w, g, ("W", "G"))
    return w, g


def check_state(state: State, w: F64, keys: tuple[str, ...]) -> None:
    if not isinstance(state, State):
        raise InvalidInputError(f"state must be a State (from init_state), got {type(state).__name__}")
    for k in keys:
        if k not in state.buffers:
            raise InvalidInputError(f"state has no buffer {k!r}; create it with init_state(W)")
        b = state.buffers[k]
        if isinstance(b, np.ndarray) and b.shape != w.shape:
            raise InvalidInputError(f"state buffer {k!r} has shape {b.shape}, W has shape {w.shape}")


def resolve_lr(lr: LR, t: int) -> float:
    """η_t from a float or a callable of the 0-based step index; must be finite and ≥ 0."""
    try:
        v = float(lr(t)) if callable(lr) else float(lr)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"learning rate at step {t} must be a real number, got {lr!r}") from exc
    if not np.isfinite(v) or v < 0:
        raise InvalidInputError(f"learning rate at step {t} must be finite and >= 0, got {v!r}")
    return v


#: hyperparameter fields checked by :func:`validate_fields` (None means "not set" and is skipped)
_NONNEGATIVE_FIELDS = ("weight_decay", "eps", "norm_eps", "retract_eps", "retract_alpha", "bracket_step")
_COUNT_FIELDS = {"power_steps": 1, "steps": 1, "max_iter": 1, "ns_steps": 0, "max_expansions": 0}


def validate_fields(opt: Any) -> None:
    """Refuse NaN, ±Inf, negative and non-numeric constants of an optimizer dataclass.

    ``lr`` (a number: finite and ≥ 0; a callable is checked at each step), the non-negative
    constants listed in ``_NONNEGATIVE_FIELDS`` and the counts of ``_COUNT_FIELDS`` (integers ≥
    their minimum), whichever of them ``opt`` has. Raises :class:`InvalidInputError`.
    """
    for f in dataclasses.fields(opt):  # None only where None is the field's own default ("not set")
        if getattr(opt, f.name) is None and f.default is not None:
            raise InvalidInputError(f"{type(opt).__name__}.{f.name} must be set, got None")
    lr = getattr(opt, "lr", None)
    if lr is not None and not callable(lr):
        resolve_lr(lr, 0)
    betas = getattr(opt, "betas", None)
    if betas is not None and (not isinstance(betas, (tuple, list)) or len(betas) != 2):
        raise InvalidInputError(f"betas must be a pair (β₁, β₂), got {betas!r}")
    for name in _NONNEGATIVE_FIELDS:
        v = getattr(opt, name, None)
        if v is not None:
            nonnegative_scalar(v, name)
    for name, minimum in _COUNT_FIELDS.items():
        v = getattr(opt, name, None)
        if v is not None:
            count(v, name, minimum)


def apply_msign(X: F64, backend: Backend = "exact", steps: int | None = None,
                rank_tol: F64 | float | None = None) -> F64:
    """msign(X) for ``backend="exact"`` (refined SVD), else the named NS schedule applied exactly.

    With a schedule, the output is ``U·φ(Σ/(s·N_ε))·Vᵀ`` (:func:`reference.ns_apply`), i.e. what an
    implementation of that schedule computes without rounding inside the iteration. ``rank_tol``
    (exact backend only; a scalar or one value per matrix) is msign's absolute rank threshold.
    """
    if isinstance(backend, str) and backend == "exact":
        if rank_tol is None:
            return msign(X)
        tol = np.broadcast_to(np.asarray(rank_tol, dtype=np.float64), X.shape[:-2])
        out = np.empty_like(X)
        for idx in np.ndindex(X.shape[:-2]):
            out[idx] = msign(X[idx], rank_tol=float(tol[idx]))
        return out
    return ns_apply(get_schedule(backend), X, steps=steps)


def tangent_noise_floor(U: F64) -> F64:
    """Rounding level τ = max(m, n)·ε_mach·‖U‖_F of a projection P(U), per matrix.

    Singular values of X = P(U) below τ are indistinguishable from rounding (e.g. a trivial tangent
    space, or a gradient that is normal to working precision); MACRO treats them as zero, so that
    msign does not turn rounding noise into unit singular values. U must be finite, ``(..., m, n)``.
    """
    U = as_float64(U, "U")
    if U.ndim < 2:
        raise InvalidInputError(f"U: expected a matrix of shape (..., m, n), got shape {U.shape}")
    us, e = pow2_scale(U)  # τ is representable even where ‖U‖_F is not (entries ~1e308)
    with np.errstate(over="ignore", under="ignore"):
        tau = np.ldexp(max(U.shape[-2:]) * float(np.finfo(np.float64).eps)
                       * np.sqrt(np.sum(us * us, axis=(-2, -1))), e)
    if not np.all(np.isfinite(tau)):  # one value per matrix: no extra pass over U
        raise InvalidInputError("U: non-finite entries (NaN or Inf)")
    return tau


def check_backend(backend: Backend) -> None:
    if isinstance(backend, str) and backend == "exact":
        return
    get_schedule(backend)  # raises InvalidInputError for an unknown name


def frobenius_angle(W: F64, Wn: F64) -> F64:
    """Angle between W and Wn in the Frobenius inner product, atan2(‖Wn⊥‖, ⟨Wn, Ŵ⟩).

    W, Wn finite of one shape ``(..., m, n)`` (else :class:`InvalidInputError`)."""
    W, Wn = as_float64(W, "W"), as_float64(Wn, "Wn")
    same_shape(W, Wn, ("W", "Wn"))
    if W.ndim < 2:
        raise InvalidInputError(f"W: expected a matrix of shape (..., m, n), got shape {W.shape}")
    nw = _fro(W)
    safe = np.where(nw > 0, nw, 1.0)
    What = W / safe[..., None, None]
    par = _dot(Wn, What)
    perp = Wn - par[..., None, None] * What
    ang = np.arctan2(_fro(perp), par)
    if np.any(np.isnan(ang)):  # one value per matrix: no extra pass over the data
        raise InvalidInputError("frobenius_angle: W or Wn has non-finite entries (NaN or Inf)")
    return ang


def _nuclear(x: F64) -> F64:
    return np.sum(np.linalg.svd(x, compute_uv=False), axis=-1)


def spectral_norm(x: F64) -> F64:
    """σ₁ per matrix, shape ``(...)`` (SVD, float64)."""
    return np.linalg.svd(x, compute_uv=False)[..., 0]


def build_diagnostics(
    manifold: Manifold | None,
    W: F64,
    X: F64,
    D: F64,
    W_pre: F64,
    W_next: F64,
    step_scale: float,
    *,
    tangent_manifold: Manifold | None = None,
    compare_exact: bool = False,
    extras: Mapping[str, Any] | None = None,
) -> Diagnostics:
    """Compute the :class:`Diagnostics` of one step (see its docstring for the definitions).

    ``manifold`` is the constraint set of W_next (None: unconstrained); ``tangent_manifold`` the
    manifold whose tangent space at W is used for ``tangency`` and the exact comparison
    (default ``manifold``; Euclidean if both are None).
    """
    compare_exact = flag(compare_exact, "compare_exact")
    tm = tangent_manifold if tangent_manifold is not None else manifold
    if tm is None:
        tm = Euclidean()
    Xs, _ = pow2_scale(X)  # the alignment is scale invariant: no overflow for X up to 1.8e308
    nX = _nuclear(Xs)
    ali = np.where(nX > 0, np.abs(_dot(D, Xs) - nX) / np.where(nX > 0, nX, 1.0), 0.0)
    nW = _fro(W)
    dS = spectral_norm(D)
    gap = None
    if isinstance(tm, SpectralSphere):
        s = np.linalg.svd(W, compute_uv=False)
        s2 = s[..., 1] if s.shape[-1] > 1 else np.zeros_like(s[..., 0])
        gap = as_scalar((s[..., 0] - s2) / s[..., 0])
    exact_value = subopt = None
    if compare_exact:
        exact_value, subopt = exact_comparison(tm, W, X, D, dS)
    npre = _fro(W_pre)
    return Diagnostics(
        feasibility=None if manifold is None else as_scalar(manifold.violation(W_next)),
        tangency=as_scalar(tm.tangent_violation(W, D)),
        alignment=as_scalar(ali),
        direction_spectral=as_scalar(dS),
        direction_frobenius=as_scalar(_fro(D)),
        angle=as_scalar(frobenius_angle(W, W_next)),
        relative_update=as_scalar(_fro(W_next - W) / np.where(nW > 0, nW, 1.0)),
        pre_retraction_violation=None if manifold is None else as_scalar(manifold.violation(W_pre)),
        retraction_shrink=as_scalar(_fro(W_next) / np.where(npre > 0, npre, 1.0)),
        step_scale=float(step_scale),
        spectral_gap=gap,
        direction=_readonly(D),
        lmo_input=_readonly(X),
        exact_value=exact_value,
        suboptimality=subopt,
        extras=MappingProxyType(dict(extras or {})),
    )


def exact_comparison(tm: Manifold, W: F64, X: F64, D: F64, dS: F64) -> tuple[Any, Any]:
    """OPT_T(X) from ``reference.steepest.steepest_direction`` and (⟨X, D⟩/‖D‖₂)/OPT_T(X)."""
    from ..steepest import steepest_direction  # lazy: written in parallel (issue 3)

    w2 = W.reshape((-1,) + W.shape[-2:])
    x2 = X.reshape(w2.shape)
    vals = np.array([float(steepest_direction(tm, w2[i], x2[i], norm="spectral").value)
                     for i in range(w2.shape[0])]).reshape(W.shape[:-2])
    num = _dot(D, X) / np.where(dS > 0, dS, 1.0)
    ratio = np.where(vals > 0, num / np.where(vals > 0, vals, 1.0), 1.0)
    return as_scalar(vals), as_scalar(ratio)


#: the manifold kinds an optimizer's ``manifold`` name may give (canonical names of
#: :mod:`reference.kinds`; their aliases, e.g. ``frobenius``/``spectral``, are accepted too)
MANIFOLD_KINDS = ("frobenius_sphere", "spectral_sphere", "oblique_rows", "oblique_cols", "stiefel", "euclidean")


def optimizer_kind(name: str) -> str:
    """The canonical kind of an optimizer's manifold name (an alias is accepted); must be one of
    :data:`MANIFOLD_KINDS`, else :class:`InvalidInputError`."""
    kind = canonical_kind(name)
    if kind not in MANIFOLD_KINDS:
        raise InvalidInputError(f"manifold kind {name!r} is not supported by the optimizers; "
                                f"known: {MANIFOLD_KINDS} (aliases: frobenius, spectral)")
    return kind


def optimizer_manifold(name: str, radius: Any, gap_tol: float = 1e-6) -> Manifold:
    """The manifold of an optimizer by kind name with radius (R, R, r, c, s; unused for euclidean);
    ``gap_tol`` applies to the spectral sphere."""
    kind = optimizer_kind(name)
    extra = {"gap_tol": gap_tol} if "gap_tol" in KINDS[kind].params else {}
    return manifold_from_kind(kind, radius, **extra)
