"""SSO and MuonBall on the spectral sphere (MATH.md §9.4), retract-then-step.

Per matrix and step:

    M_t = βM_{t−1} + (1 − β)G_t;   M̂_t = M_t/max(‖M_t‖_F, 1e-8)
    (σ, u, v) = top singular triplet of W_t (exact SVD, or bilateral power iteration from v₀ = 1)
    retract: W_t ← (R/σ)·W_t ("hard") or W_t ← W_t(1 + α·η·b), b = −sign(σ − R) ("dynamic")
    Θ = uvᵀ;  λ = root of h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩ (SSO) or λ = 0 (MuonBall)
    W_{t+1} = W_t − η·s·msign(M̂ + λΘ)

W_{t+1} is off the sphere by O(η²) until the next retraction: ``Diagnostics.feasibility`` is
c_S(W_{t+1}) and ``extras["feasibility_at_start"]`` the residual of the retracted W_t. The other
diagnostics (tangency against the exact Θ, angle, relative update) refer to the retracted W_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_matrix, as_vector, choice, count, nonnegative_scalar, positive_scalar
from ..errors import InvalidInputError, SolverError
from ..linalg import msign
from ..manifolds import SpectralSphere
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
    shape_scale,
)
from .conventions import momentum_buffer

__all__ = ["SSO", "MuonBall", "power_iteration", "sso_lambda"]

_SCALE_MODES = {"align_adamw_rms": "moonlight", "spectral_mup": "spectral_mup", "shape_scaling": "kj"}


def power_iteration(W: ArrayLike, steps: int, v0: ArrayLike | None = None) -> tuple[float, F64, F64]:
    """Bilateral power iteration on one matrix: u ← Wv/‖Wv‖, v ← Wᵀu/‖Wᵀu‖, σ̂ = uᵀWv.

    Starts from ``v0`` (default the all-ones vector, as in the SSO code). Returns (σ̂, u, v).
    Raises :class:`DegenerateGeometryError`-free :class:`InvalidInputError` if an iterate is 0.
    """
    w = as_matrix(W, "W", batched=False)
    steps = count(steps, "steps")
    v = np.ones(w.shape[1]) if v0 is None else as_vector(v0, "v0")
    if v.shape != (w.shape[1],):
        raise InvalidInputError(f"v0 must have shape ({w.shape[1]},) for W of shape {w.shape}, got {v.shape}")
    if not np.any(v):
        raise InvalidInputError("power iteration: v0 = 0 has no direction")
    v = v / np.linalg.norm(v)
    u = w @ v
    for _ in range(steps):
        u = w @ v
        nu = np.linalg.norm(u)
        if nu == 0:
            raise InvalidInputError("power iteration: W·v = 0 (v₀ is in the null space of W)")
        u = u / nu
        v = w.T @ u
        nv = np.linalg.norm(v)
        if nv == 0:
            raise InvalidInputError("power iteration: Wᵀ·u = 0")
        v = v / nv
    return float(u @ w @ v), u, v


def sso_lambda(Mhat: F64, Theta: F64, *, tol: float = 1e-8, max_iter: int = 100,
               bracket_step: float = 1e-3, max_expansions: int | None = 10,
               on_bracket_failure: str = "raise", backend: Backend = "exact",
               ns_steps: int | None = None,
               orth: Callable[[F64], F64] | None = None) -> tuple[float, dict[str, Any]]:
    """Root of h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩ by SSO's bracket-and-bisect (MATH.md §9.4).

    Bracket from 0 with step ``bracket_step``, doubling, at most ``max_expansions`` expansions
    (None: unbounded); then bisect to |h| ≤ ``tol`` in at most ``max_iter`` iterations and return
    the best point (h is evaluated with the unrefined SVD msign for the exact backend; its error
    ~u·κ is far below ``tol``). On a bracketing failure ``on_bracket_failure="zero"`` returns λ = 0 (the code's
    behaviour; reported in the info dict) and ``"raise"`` raises :class:`SolverError`.
    ``orth`` (float64 (m, n) → float64 (m, n)), when given, is the orthogonaliser inside h in place
    of ``backend`` (e.g. an implementation's own, replayed to find the root it finds).
    """
    tol = nonnegative_scalar(tol, "tol")
    max_iter = count(max_iter, "max_iter")
    bracket_step = positive_scalar(bracket_step, "bracket_step")
    if max_expansions is not None:
        count(max_expansions, "max_expansions", 0)
    choice(on_bracket_failure, ("raise", "zero"), "on_bracket_failure")
    exact = isinstance(backend, str) and backend == "exact"

    def h(lam: float) -> float:
        # exact backend: the plain SVD product U_rV_rᵀ (error ~u·κ, far below tol) for speed
        Z = Mhat + lam * Theta
        if orth is not None:
            S = orth(Z)
        else:
            S = msign(Z, refine=False) if exact else apply_msign(Z, backend, ns_steps)
        return float(np.sum(Theta * S))

    info: dict[str, Any] = {"status": "", "iterations": 0, "expansions": 0}
    h0 = h(0.0)
    if abs(h0) <= tol:
        info.update(status="converged", h=h0)
        return 0.0, info
    sign = -1.0 if h0 > 0 else 1.0  # h is non-decreasing: the root is on the side of -h0
    step, near, far, hfar = bracket_step, 0.0, sign * bracket_step, h(sign * bracket_step)
    while np.sign(hfar) == np.sign(h0) and hfar != 0:
        if max_expansions is not None and info["expansions"] >= max_expansions:
            info.update(status="bracket_failed", h=h0, last_bracket=far)
            if on_bracket_failure == "zero":
                return 0.0, info
            raise SolverError("SSO λ bracketing failed", "bracket_failed",
                              {"h(0)": h0, "last_bracket": far, "h(last)": hfar})
        near = far
        step *= 2.0
        far = sign * step
        hfar = h(far)
        info["expansions"] += 1
    lo, hi = (near, far) if sign > 0 else (far, near)
    best, hbest = (far, hfar) if abs(hfar) < abs(h0) else (0.0, h0)
    status = "max_iter"
    for i in range(int(max_iter)):
        mid = 0.5 * (lo + hi)
        hm = h(mid)
        info["iterations"] = i + 1
        if abs(hm) < abs(hbest):
            best, hbest = mid, hm
        if abs(hm) <= tol:
            status = "converged"
            break
        if hm < 0:
            lo = mid
        else:
            hi = mid
    info.update(status=status, h=hbest)
    return best, info


@dataclass(frozen=True)
class SSO:
    """Spectral Sphere Optimizer (MATH.md §9.4; CONVENTIONS.md §4.7). Options by name:

    * ``radius_mode``: ``spectral_mup`` R = c·√(d_out/d_in) (default), ``identity`` R = c,
      ``initialize`` R = c·σ₁(W₀) (c = ``radius_scale``);
    * ``scale_mode``: ``align_adamw_rms`` 0.2·√max(d_out, d_in) (code default), ``spectral_mup``
      √(d_out/d_in), ``shape_scaling`` √max(1, d_out/d_in), or a number;
    * ``retract_mode``: ``hard`` W ← R·W/(σ + ``retract_eps``) (code eps 1e-8; default 0), skipped
      when σ + eps = R; ``dynamic`` W ← W(1 + α·η·b);
    * ``sigma_source``: ``exact`` (SVD) or ``power`` (``power_steps`` bilateral steps from v₀ = 1);
    * ``lambda_solver``: ``bisection`` (default) or ``zero`` (MuonBall); bisection options as in
      :func:`sso_lambda`;
    * ``msign_backend``: ``exact`` or a schedule applied exactly (the code: ``polar_express_eo``,
      5 steps), used both inside h(λ) and for Φ.

    β defaults to 0.9 (MATH.md does not fix it; pytorch_optimizer's SpectralSphere uses 0.9).
    """

    lr: LR = 0.02
    beta: float = 0.9
    radius_mode: str = "spectral_mup"
    radius_scale: float = 1.0
    scale_mode: str | float = "align_adamw_rms"
    retract_mode: str = "hard"
    retract_alpha: float = 0.05
    retract_eps: float = 0.0
    sigma_source: str = "exact"
    power_steps: int = 10
    lambda_solver: str = "bisection"
    tol: float = 1e-8
    max_iter: int = 100
    bracket_step: float = 1e-3
    max_expansions: int | None = 10
    on_bracket_failure: str = "raise"
    msign_backend: Backend = "exact"
    ns_steps: int | None = None
    norm_eps: float = 1e-8

    def __post_init__(self) -> None:
        validate_fields(self)
        check_beta(self.beta)
        choice(self.radius_mode, ("spectral_mup", "identity", "initialize"), "radius_mode")
        if isinstance(self.scale_mode, str):
            choice(self.scale_mode, tuple(_SCALE_MODES), "scale_mode")
        choice(self.retract_mode, ("hard", "dynamic"), "retract_mode")
        choice(self.sigma_source, ("exact", "power"), "sigma_source")
        choice(self.lambda_solver, ("bisection", "zero"), "lambda_solver")
        choice(self.on_bracket_failure, ("raise", "zero"), "on_bracket_failure")
        positive_scalar(self.radius_scale, "radius_scale")
        positive_scalar(self.tol, "tol")
        positive_scalar(self.bracket_step, "bracket_step")
        check_backend(self.msign_backend)

    def resolve_radius(self, W0: ArrayLike) -> float:
        w = as_matrix(W0, "W0", batched=False)
        m, n = w.shape
        c = float(self.radius_scale)
        if self.radius_mode == "spectral_mup":
            return c * float(np.sqrt(m / n))
        if self.radius_mode == "identity":
            return c
        s1 = float(np.linalg.svd(w, compute_uv=False)[0])
        if s1 == 0:
            raise InvalidInputError("radius_mode='initialize' needs W0 != 0 (σ₁(W0) = 0 gives R = 0)")
        return c * s1

    def initial_point(self, W0: ArrayLike) -> F64:
        """W₀ ← R·W₀/‖W₀‖₂ (the code's initialisation)."""
        w = as_matrix(W0, "W0", batched=False)
        s1 = float(np.linalg.svd(w, compute_uv=False)[0])
        if s1 == 0:
            raise InvalidInputError("W0 = 0 has no direction")
        return self.resolve_radius(w) * w / s1

    def init_state(self, W: ArrayLike) -> State:
        """Zero momentum and the radius R of ``radius_mode`` (single matrices only)."""
        w = as_matrix(W, "W", batched=False)
        return State(0, {"momentum": np.zeros_like(w), "radius": self.resolve_radius(w)})

    def _top(self, w: F64) -> tuple[float, F64, F64]:
        if self.sigma_source == "power":
            return power_iteration(w, self.power_steps)
        U, s, Vt = np.linalg.svd(w, full_matrices=False)
        return float(s[0]), U[:, 0], Vt[0]

    def _retract(self, w: F64, sigma: float, R: float, eta: float) -> F64:
        if self.retract_mode == "hard":
            den = sigma + self.retract_eps
            if den == R:
                return w.copy()
            if den <= 0:
                raise InvalidInputError("SSO hard retraction: σ₁(W) + eps <= 0")
            return (R / den) * w
        b = -float(np.sign(sigma - R))
        return w * (1.0 + self.retract_alpha * eta * b)

    def _lambda(self, Mhat: F64, Theta: F64) -> tuple[float, dict[str, Any]]:
        if self.lambda_solver == "zero":
            return 0.0, {"status": "fixed_zero", "iterations": 0}
        return sso_lambda(Mhat, Theta, tol=self.tol, max_iter=self.max_iter,
                          bracket_step=self.bracket_step, max_expansions=self.max_expansions,
                          on_bracket_failure=self.on_bracket_failure, backend=self.msign_backend,
                          ns_steps=self.ns_steps)

    def _phi(self, Mhat: F64, Theta: F64, lam: float) -> F64:
        return apply_msign(Mhat + lam * Theta, self.msign_backend, self.ns_steps)

    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        """One retract-then-step update of a single matrix."""
        w, g = check_pair(W, G)
        if w.ndim != 2:
            raise InvalidInputError(f"{type(self).__name__} steps one matrix at a time, got shape {w.shape}")
        check_state(state, w, ("momentum",))
        eta = resolve_lr(self.lr, state.t)
        R = float(state["radius"])
        Mn = momentum_buffer("ema", self.beta, state["momentum"], g)
        Mhat = Mn / max(float(np.linalg.norm(Mn)), self.norm_eps)
        sigma, u, v = self._top(w)
        Wr = self._retract(w, sigma, R, eta)
        Theta = np.outer(u, v)
        lam, info = self._lambda(Mhat, Theta)
        Phi = self._phi(Mhat, Theta, lam)
        s = shape_scale(_SCALE_MODES.get(self.scale_mode, self.scale_mode)  # type: ignore[arg-type]
                        if isinstance(self.scale_mode, str) else self.scale_mode, w.shape)
        W_next = Wr - (eta * s) * Phi
        s_exact = np.linalg.svd(Wr, compute_uv=False)
        tm = SpectralSphere(float(s_exact[0]), gap_tol=1e-300)  # tangent space at the retracted point
        X = tm.project_tangent(Wr, Mhat)
        extras = {"lr": eta, "scale": s, "lambda": lam, "sigma_estimate": sigma,
                  "feasibility_at_start": abs(float(s_exact[0]) - R) / R, **info}
        diag = build_diagnostics(SpectralSphere(R, gap_tol=1e-300), Wr, X, Phi,
                                 W_next, W_next, eta * s, tangent_manifold=tm,
                                 compare_exact=compare_exact, extras=extras)
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag


@dataclass(frozen=True)
class MuonBall(SSO):
    """MuonBall (MATH.md §9.4): SSO's retraction and scale with Φ = msign(M̂) (λ ≡ 0)."""

    lambda_solver: str = "zero"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda_solver != "zero":
            raise InvalidInputError("MuonBall fixes λ = 0 (lambda_solver='zero'); use SSO for the bisection")

    def _phi(self, Mhat: F64, Theta: F64, lam: float) -> F64:
        return apply_msign(Mhat, self.msign_backend, self.ns_steps)
