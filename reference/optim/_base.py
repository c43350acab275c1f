"""Shared pieces of the reference optimizers (MATH.md §7, §9.1): state, diagnostics, rules.

Conventions for every optimizer of :mod:`reference.optim`:

* float64, matrices in the (d_out, d_in) layout, batched over leading axes where the manifold is;
* a frozen hyperparameter dataclass with ``init_state(W) -> State`` and a pure
  ``step(W, G, state, *, compare_exact=False) -> (W_next, State, Diagnostics)``;
* inputs are never written to; the arrays held by a :class:`State` are read-only.

``lr`` may be a float or a callable ``t -> η_t`` of the 0-based step index t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validate import as_matrix, same_shape
from ..errors import InvalidInputError
from ..linalg import msign
from ..manifolds import Euclidean, FrobeniusSphere, Manifold, Oblique, SpectralSphere, Stiefel
from ..schedules import Schedule, get_schedule, ns_apply

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
]

#: named shape-scale rules s(d_out, d_in) (MATH.md §7.3, §9.1); "radius" is resolved by MACRO
SCALE_RULES = ("one", "radius", "kj", "moonlight", "spectral_mup", "eo_spectral")

#: ambient momentum forms (MATH.md §7.3, §9.1); "projected_ema" is MACRO-only
MOMENTUM_FORMS = ("ema", "accumulate", "projected_ema", "nesterov_ema", "nesterov_accumulate")


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


def _sc(a: Any) -> Any:
    a = np.asarray(a, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def _fro(x: F64) -> F64:
    return np.sqrt(np.sum(x * x, axis=(-2, -1)))


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
    v = float(lr(t)) if callable(lr) else float(lr)
    if not np.isfinite(v) or v < 0:
        raise InvalidInputError(f"learning rate at step {t} must be finite and >= 0, got {v!r}")
    return v


def check_beta(beta: float, name: str = "beta") -> float:
    b = float(beta)
    if not (0.0 <= b < 1.0):
        raise InvalidInputError(f"{name} must be in [0, 1), got {beta!r}")
    return b


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
    msign does not turn rounding noise into unit singular values.
    """
    return max(U.shape[-2:]) * float(np.finfo(np.float64).eps) * _fro(U)


def check_backend(backend: Backend) -> None:
    if isinstance(backend, str) and backend == "exact":
        return
    get_schedule(backend)  # raises InvalidInputError for an unknown name


def shape_scale(rule: str | float, shape: tuple[int, ...], radius: float | None = None) -> float:
    """Scale factor s(d_out, d_in) by name (MATH.md §7.3, §9.1; CONVENTIONS.md §6).

    ``one`` 1; ``radius`` R (needs ``radius``); ``kj`` √max(1, d_out/d_in); ``moonlight``
    0.2·√max(d_out, d_in); ``spectral_mup`` √(d_out/d_in); ``eo_spectral`` √max(d_out, d_in).
    A number is returned as is (must be > 0).
    """
    m, n = int(shape[-2]), int(shape[-1])
    if not isinstance(rule, str):
        s = float(rule)
        if not np.isfinite(s) or s <= 0:
            raise InvalidInputError(f"scale must be > 0, got {rule!r}")
        return s
    if rule == "one":
        return 1.0
    if rule == "radius":
        if radius is None:
            raise InvalidInputError("scale rule 'radius' needs a scalar radius")
        return float(radius)
    if rule == "kj":
        return float(np.sqrt(max(1.0, m / n)))
    if rule == "moonlight":
        return 0.2 * float(np.sqrt(max(m, n)))
    if rule == "spectral_mup":
        return float(np.sqrt(m / n))
    if rule == "eo_spectral":
        return float(np.sqrt(max(m, n)))
    raise InvalidInputError(f"unknown scale rule {rule!r}; known: {SCALE_RULES} or a number")


def update_momentum(form: str, beta: float, M: F64, G: F64) -> tuple[F64, F64]:
    """(M_t, U_t) for an ambient momentum form: the new buffer and the input to orthogonalise.

    ema M = βM + (1 − β)G, U = M; accumulate M = βM + G, U = M; nesterov_ema U = (1 − β)G + βM;
    nesterov_accumulate U = G + βM (M already updated), MATH.md §9.1.
    """
    if form in ("ema", "nesterov_ema"):
        Mn = beta * M + (1.0 - beta) * G
        U = Mn if form == "ema" else (1.0 - beta) * G + beta * Mn
    elif form in ("accumulate", "nesterov_accumulate"):
        Mn = beta * M + G
        U = Mn if form == "accumulate" else G + beta * Mn
    else:
        raise InvalidInputError(f"unknown momentum form {form!r}; known: {MOMENTUM_FORMS}")
    return Mn, U


def frobenius_angle(W: F64, Wn: F64) -> F64:
    """Angle between W and Wn in the Frobenius inner product, atan2(‖Wn⊥‖, ⟨Wn, Ŵ⟩)."""
    nw = _fro(W)
    safe = np.where(nw > 0, nw, 1.0)
    What = W / safe[..., None, None]
    par = _dot(Wn, What)
    perp = Wn - par[..., None, None] * What
    return np.arctan2(_fro(perp), par)


def _nuclear(x: F64) -> F64:
    return np.sum(np.linalg.svd(x, compute_uv=False), axis=-1)


def _spectral(x: F64) -> F64:
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
    tm = tangent_manifold if tangent_manifold is not None else manifold
    if tm is None:
        tm = Euclidean()
    nX = _nuclear(X)
    ali = np.where(nX > 0, np.abs(_dot(D, X) - nX) / np.where(nX > 0, nX, 1.0), 0.0)
    nW = _fro(W)
    dS = _spectral(D)
    gap = None
    if isinstance(tm, SpectralSphere):
        s = np.linalg.svd(W, compute_uv=False)
        s2 = s[..., 1] if s.shape[-1] > 1 else np.zeros_like(s[..., 0])
        gap = _sc((s[..., 0] - s2) / s[..., 0])
    exact_value = subopt = None
    if compare_exact:
        exact_value, subopt = _exact_comparison(tm, W, X, D, dS)
    npre = _fro(W_pre)
    return Diagnostics(
        feasibility=None if manifold is None else _sc(manifold.violation(W_next)),
        tangency=_sc(tm.tangent_violation(W, D)),
        alignment=_sc(ali),
        direction_spectral=_sc(dS),
        direction_frobenius=_sc(_fro(D)),
        angle=_sc(frobenius_angle(W, W_next)),
        relative_update=_sc(_fro(W_next - W) / np.where(nW > 0, nW, 1.0)),
        pre_retraction_violation=None if manifold is None else _sc(manifold.violation(W_pre)),
        retraction_shrink=_sc(_fro(W_next) / np.where(npre > 0, npre, 1.0)),
        step_scale=float(step_scale),
        spectral_gap=gap,
        direction=_readonly(D),
        lmo_input=_readonly(X),
        exact_value=exact_value,
        suboptimality=subopt,
        extras=MappingProxyType(dict(extras or {})),
    )


def _exact_comparison(tm: Manifold, W: F64, X: F64, D: F64, dS: F64) -> tuple[Any, Any]:
    """OPT_T(X) from ``reference.steepest.steepest_direction`` and (⟨X, D⟩/‖D‖₂)/OPT_T(X)."""
    from ..steepest import steepest_direction  # lazy: written in parallel (issue 3)

    w2 = W.reshape((-1,) + W.shape[-2:])
    x2 = X.reshape(w2.shape)
    vals = np.array([float(steepest_direction(tm, w2[i], x2[i], norm="spectral").value)
                     for i in range(w2.shape[0])]).reshape(W.shape[:-2])
    num = _dot(D, X) / np.where(dS > 0, dS, 1.0)
    ratio = np.where(vals > 0, num / np.where(vals > 0, vals, 1.0), 1.0)
    return _sc(vals), _sc(ratio)


def manifold_from_kind(kind: str, radius: Any, gap_tol: float = 1e-6) -> Manifold:
    """Build a manifold by kind name: frobenius, spectral, oblique_rows, oblique_cols, stiefel,
    euclidean (radius = R, R, r, c, s, unused)."""
    if kind == "frobenius":
        return FrobeniusSphere(radius)
    if kind == "spectral":
        return SpectralSphere(radius, gap_tol=gap_tol)
    if kind == "oblique_rows":
        return Oblique(radius, axis="rows")
    if kind == "oblique_cols":
        return Oblique(radius, axis="cols")
    if kind == "stiefel":
        return Stiefel(radius)
    if kind == "euclidean":
        return Euclidean()
    raise InvalidInputError(f"unknown manifold kind {kind!r}; known: {MANIFOLD_KINDS}")


MANIFOLD_KINDS = ("frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel", "euclidean")
