"""Expected outputs of a declared profile, computed from the exact mathematics (float64).

This is the profile model: the target computes, this module computes what the declared
conventions say it should compute, using only the reference (``reference.ns_apply`` for a
Newton–Schulz schedule's exact singular-value map, ``reference.msign`` for an exact msign, the
reference manifolds for projections and retractions). Low-precision casts are modelled by
rounding the input to the declared dtype at the declared cast point (MATH.md §3.4); the rounding
*inside* the iteration is what the tolerance model bounds.

Direction conventions per ``Profile.rule`` (the value returned by an adapter's ``direction``):

* ``muon``:  D = shape_scale · orth(U) with U the Nesterov input (or the momentum); the step is
  W ← W − lr·D plus the declared weight-decay coupling.
* ``macro``: X = P_W(U), D = s · P_W(orth(X)) (MATH.md §7.1 variant A); W ← R_W(−lr·D).
* ``muonh``: D = orth(U) (only its direction matters); W ← r·N(W′ − lr·r·N(D)),
  W′ = (1 − lr·λ)W, r = ‖W′‖_F (MATH.md §9.3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import manifold_oracle.reference as R
from manifold_oracle.reference.errors import InvalidInputError

from .profiles import Profile

__all__ = ["round_to", "orthogonalise", "shape_scale", "momentum_update", "nesterov_input",
           "direction", "step", "compute_dtype_for"]


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (round-to-nearest-even, as torch casts) and widen back."""
    if dtype in ("float64", "input"):
        return np.asarray(x, dtype=np.float64).copy()
    import torch

    t = torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)
    return t.to(getattr(torch, dtype)).to(torch.float64).numpy().copy()


def compute_dtype_for(profile: Profile, input_dtype: str) -> str:
    """The dtype the orthogonaliser computes in for an input of ``input_dtype``."""
    return input_dtype if profile.compute_dtype == "input" else profile.compute_dtype


def return_dtype_for(profile: Profile, input_dtype: str) -> str:
    """The dtype the orthogonaliser returns for an input of ``input_dtype``."""
    rd = profile.return_dtype
    if rd == "input":
        return input_dtype
    if rd == "compute":
        return compute_dtype_for(profile, input_dtype)
    return rd


def _initial_x(profile: Profile, g: np.ndarray) -> np.ndarray:
    """Normalised singular values entering step 1 (for the tolerance model)."""
    s = np.linalg.svd(g, compute_uv=False)
    fro = float(np.sqrt(np.sum(s**2)))
    N = float(R.normaliser(fro, profile.eps, profile.eps_form)) if profile.has_ns else fro
    N = N if N > 0 else 1.0
    return s / (profile.safety * N)


def orthogonalise(profile: Profile, G: np.ndarray, input_dtype: str = "float64") -> np.ndarray:
    """Expected output of the declared orthogonaliser on ``G`` (float64 values, shape (..., m, n)).

    ``input_dtype`` is the dtype the target receives ``G`` in (``G`` holds exactly representable
    values of it). Batched inputs use per-matrix or whole-tensor normalisation as declared.
    """
    g = np.asarray(G, dtype=np.float64)
    cdt = compute_dtype_for(profile, input_dtype)
    if profile.schedule == "exact":
        return R.msign(round_to(g, cdt), rank_rtol=1e-10 if cdt == "float64" else 1e-5)
    if not profile.has_ns:
        raise InvalidInputError(f"profile {profile.name!r} declares no orthogonaliser")
    sch = profile.ns_schedule()
    if profile.cast_point in ("cast_then_normalise", "none"):
        x = round_to(g, cdt)
        if profile.normalisation == "frobenius_whole_tensor" and x.ndim > 2:
            fro = float(np.sqrt(np.sum(x * x)))
            N = float(R.normaliser(fro, sch.eps, sch.eps_form))
            y = x / (sch.safety * N)
            return R.ns_apply(sch, y, safety=1.0, eps=0.0, eps_form="none") if np.any(y) else y * 0.0
        return R.ns_apply(sch, x)
    # normalise then cast (stochastic rounding is modelled as round-to-nearest; the tolerance
    # model covers the extra half-ulp)
    fro = np.sqrt(np.sum(g * g, axis=(-2, -1), keepdims=True))
    N = np.asarray(R.normaliser(fro, sch.eps, sch.eps_form))
    y = round_to(g / (sch.safety * N), cdt)
    return R.ns_apply(sch, y, safety=1.0, eps=0.0, eps_form="none")


def shape_scale(profile: Profile, shape: tuple[int, ...]) -> float:
    """The declared shape scale (CONVENTIONS.md §6) for a weight of ``shape``."""
    if profile.weight_layout == "flax":
        d_in, d_out = shape[-2], shape[-1]
    else:
        d_out, d_in = shape[-2], shape[-1]
    s = profile.shape_scale
    if s == "kj":
        return math.sqrt(max(1.0, d_out / d_in))
    if s == "moonlight":
        return 0.2 * math.sqrt(max(d_out, d_in))
    if s == "spectral_mup":
        return math.sqrt(d_out / d_in)
    if s == "spectral":
        return math.sqrt(max(d_out, d_in))
    return 1.0


def momentum_update(profile: Profile, M: np.ndarray | None, G: np.ndarray, beta: float) -> np.ndarray:
    """M_t from M_{t−1} (None = zeros) per the declared momentum form (MATH.md §9.1)."""
    m = np.zeros_like(G) if M is None else M
    f = profile.momentum_form
    if f in ("ema", "bias_corrected_ema"):
        return beta * m + (1.0 - beta) * G
    if f == "accumulate":
        return beta * m + G
    return G.copy()


def nesterov_input(profile: Profile, M: np.ndarray, G: np.ndarray, beta: float, t: int) -> np.ndarray:
    """The orthogonaliser's input U_t (Nesterov form or the momentum), t = 1-based step."""
    f = profile.nesterov_form
    if f == "ema":
        return (1.0 - beta) * G + beta * M
    if f == "accumulate":
        return G + beta * M
    if f == "bias_corrected":
        return beta * M / (1.0 - beta ** (t + 1)) + (1.0 - beta) * G / (1.0 - beta**t)
    if profile.momentum_form == "bias_corrected_ema":
        return M / (1.0 - beta**t)
    return M


def direction(profile: Profile, W: np.ndarray, G: np.ndarray, M: np.ndarray | None, *, t: int = 1,
              beta: float | None = None, input_dtype: str = "float64",
              manifold: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, M_t): the declared direction and the new momentum, float64."""
    beta = profile.momentum if beta is None else beta
    Mt = momentum_update(profile, M, G, beta)
    U = nesterov_input(profile, Mt, G, beta, t)
    if profile.rule == "muon" or profile.rule == "muonh":
        O = orthogonalise(profile, U, input_dtype)
        return (shape_scale(profile, W.shape) if profile.rule == "muon" else 1.0) * O, Mt
    if profile.rule == "macro":
        man = manifold if manifold is not None else profile.manifolds[0].reference(point_tol=1e-4)
        X = man.project_tangent(W, U)
        O = orthogonalise(profile, X, input_dtype)
        D = man.project_tangent(W, O)
        return profile.scale * shape_scale(profile, W.shape) * D, Mt
    raise InvalidInputError(f"profile {profile.name!r} declares no optimizer rule")


def step(profile: Profile, W: np.ndarray, G: np.ndarray, M: np.ndarray | None, *, lr: float,
         weight_decay: float = 0.0, t: int = 1, beta: float | None = None,
         input_dtype: str = "float64", manifold: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(W_{t+1}, M_t) of one declared step from W_t, float64."""
    D, Mt = direction(profile, W, G, M, t=t, beta=beta, input_dtype=input_dtype, manifold=manifold)
    c = profile.weight_decay_coupling
    wd = weight_decay
    if profile.rule == "muon":
        if c == "decoupled_raw_lr":
            return (1.0 - lr * wd) * W - lr * D, Mt
        if c == "decoupled_adjusted_lr":
            return (1.0 - lr * shape_scale(profile, W.shape) * wd) * W - lr * D, Mt
        if c == "added_to_update":
            return W - lr * (D + wd * W), Mt
        return W - lr * D, Mt
    if profile.rule == "macro":
        man = manifold if manifold is not None else profile.manifolds[0].reference(point_tol=1e-4)
        decl = profile.manifolds[0]
        return man.retract(W, -lr * D, method=decl.retraction), Mt
    if profile.rule == "muonh":
        Wp = (1.0 - lr * wd) * W if c == "before_radius" else W
        r = float(np.linalg.norm(Wp))
        q = max(float(np.linalg.norm(D)), 1e-8)
        X = Wp - lr * (r / q) * D
        return X * r / max(float(np.linalg.norm(X)), 1e-8), Mt
    raise InvalidInputError(f"profile {profile.name!r} declares no optimizer rule")
