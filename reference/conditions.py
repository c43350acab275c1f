"""MACRO convergence conditions as executable checks (MATH.md §8; reconstructed from the standard
analysis — Cutkosky and Mehta 2020, Boumal, Absil and Cartis 2016 — not quoted from the paper).

* :func:`check_hyperparameters` — which conditions of §8 hold for given constants and a schedule,
  with the violated inequality and its numbers.
* Estimators: :func:`estimate_lipschitz` (sampling + power iteration on gradient differences),
  :func:`estimate_retraction_constant` (log–log fit of ‖R_W(tξ) − W − tξ‖_F),
  :func:`retraction_constants` (closed forms where MATH.md gives them), :func:`spectral_gaps`.
* Run monitors: :func:`run` (a deterministic or stochastic run recording f, ‖grad f‖_* and
  ‖grad f‖_F), :func:`descent_monitor` (the one-step inequality of §8.3 at every step),
  :func:`fit_rate` and :func:`deterministic_rate` (the stationarity decay against the −1/2 law of
  §8.4), :func:`stochastic_rate` (the −1/4 law).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_matrix, as_vector, count, nonnegative_scalar, positive_scalar
from .errors import DegenerateGeometryError, InvalidInputError
from .manifolds import Manifold

F64 = NDArray[np.float64]
U64 = float(np.finfo(np.float64).eps) / 2  # unit roundoff u = 2⁻⁵³

__all__ = [
    "ProblemConstants",
    "ConditionResult",
    "ConditionReport",
    "check_hyperparameters",
    "retraction_constants",
    "estimate_lipschitz",
    "RetractionFit",
    "estimate_retraction_constant",
    "spectral_gaps",
    "Trajectory",
    "run",
    "DescentReport",
    "descent_monitor",
    "RateFit",
    "fit_rate",
    "deterministic_rate",
    "stochastic_rate",
    "PREDICTED_RATES",
]

#: log–log slopes of the stationarity measure predicted by MATH.md §8.4
PREDICTED_RATES = {"deterministic": -0.5, "stochastic": -0.25}


# ---------------------------------------------------------------------------------------------
# constants and the hyperparameter check
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProblemConstants:
    """Constants of MATH.md §8.1 for one problem (true values or estimates).

    ``L`` ambient Lipschitz constant of ∇f (A1); ``G_max`` bound on ‖∇f‖_F (A1); ``alpha`` and
    ``beta_R`` the retraction constants ‖R_W(ξ) − W − ξ‖_F ≤ α‖ξ‖²_F, ‖R_W(ξ) − W‖_F ≤ β_R‖ξ‖_F;
    ``k`` the bound ‖D‖²_F ≤ k (min(m, n)); ``f_gap`` f(W₀) − f*; ``sigma`` the gradient noise (A3);
    ``gap`` a uniform spectral gap (σ₁ − σ₂)/σ₁ along the run (A5, M_S); ``ell_P`` the projector
    Lipschitz constant (A4).
    """

    L: float
    G_max: float
    alpha: float
    k: int
    beta_R: float = 1.0
    f_gap: float | None = None
    sigma: float = 0.0
    gap: float | None = None
    ell_P: float | None = None

    def __post_init__(self) -> None:
        # NaN, ±Inf and negative constants are refused: no condition may be certified from them
        for name in ("L", "G_max", "alpha", "beta_R", "sigma"):
            object.__setattr__(self, name, nonnegative_scalar(getattr(self, name), name))
        object.__setattr__(self, "k", count(self.k, "k"))
        for name in ("f_gap", "gap"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, nonnegative_scalar(getattr(self, name), name))
        if self.ell_P is not None:  # +inf is allowed: it is what "projector_regularity" reports
            v = float(self.ell_P) if isinstance(self.ell_P, (int, float, np.number)) else np.nan
            if np.isnan(v) or v < 0:
                raise InvalidInputError(f"ell_P must be >= 0 (or +inf), got {self.ell_P!r}")

    @property
    def L_R(self) -> float:
        """Pullback smoothness constant L_R = β_R²·L + 2α·G_max (A1′, MATH.md §8.1)."""
        return self.beta_R**2 * self.L + 2.0 * self.alpha * self.G_max

    @classmethod
    def from_problem(cls, problem: Any, W0: ArrayLike | None = None, *, step_bound: float = 0.0,
                     sigma: float | None = None) -> "ProblemConstants":
        """Constants of a :mod:`reference.problems` problem (L, G_max known in closed form), the
        retraction constants of its manifold (:func:`retraction_constants`; ``step_bound`` is the
        largest step norm ‖ξ‖_F ≤ ηs√k, used by the Stiefel bound on β_R) and f(W₀) − f*."""
        alpha, beta_R = retraction_constants(problem.manifold, step_bound)
        f_gap = None if W0 is None else float(problem.loss(W0) - problem.optimal_value)
        ell = problem.manifold.projector_lipschitz()
        return cls(L=float(problem.lipschitz), G_max=float(problem.gradient_bound), alpha=alpha,
                   beta_R=beta_R, k=int(min(problem.shape)), f_gap=f_gap,
                   sigma=float(problem.noise if sigma is None else sigma), ell_P=ell)


def retraction_constants(manifold: Manifold, step_bound: float = 0.0) -> tuple[float, float]:
    """(α, β_R) for the default retraction of ``manifold`` and steps ‖ξ‖_F ≤ ``step_bound``.

    Frobenius sphere (rescale): (1/(2R), 1) [MATH.md §8.1]. Oblique (normalise): (1/(2r_min), 1),
    row by row. Stiefel (polar, tangent ξ): ‖E‖_F ≤ ½‖ξᵀξ‖_F/s ≤ ‖ξ‖²_F/(2s) [derived: the
    singular values of W + ξ are (s² + λᵢ(ξᵀξ))^{1/2}], so α = 1/(2s), β_R = 1 + step_bound/(2s)
    (the triangle inequality; sampling finds β_R ≤ 1, as on spheres, but that is not proved here).
    Euclidean: (0, 1). The spectral sphere has no closed form (α ∝ 1/gap): raises
    :class:`NotAvailableError`; use :func:`estimate_retraction_constant`.
    """
    if not isinstance(manifold, Manifold):
        raise InvalidInputError(f"no retraction constants for {manifold!r}")
    return manifold.retraction_constants(step_bound)  # each manifold owns its constants


@dataclass(frozen=True)
class ConditionResult:
    """One condition: ``holds`` is True, False or None (not decidable from the inputs)."""

    name: str
    holds: bool | None
    inequality: str
    lhs: float | None = None
    rhs: float | None = None
    source: str = ""
    note: str = ""

    def __str__(self) -> str:
        mark = {True: "holds", False: "FAILS", None: "unknown"}[self.holds]
        nums = "" if self.lhs is None else f": {self.lhs:.6g} vs {self.rhs:.6g}"
        return f"[{mark}] {self.name}: {self.inequality}{nums}" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class ConditionReport:
    """The results of :func:`check_hyperparameters`, plus the bounds it evaluated."""

    conditions: tuple[ConditionResult, ...]
    bounds: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """True iff no condition fails (unknown ones do not count as failures)."""
        return all(c.holds is not False for c in self.conditions)

    @property
    def failures(self) -> tuple[ConditionResult, ...]:
        return tuple(c for c in self.conditions if c.holds is False)

    def __getitem__(self, name: str) -> ConditionResult:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self.conditions)


def check_hyperparameters(
    constants: ProblemConstants,
    *,
    lr: float | Callable[[int], float] | Sequence[float],
    scale: float = 1.0,
    beta: float = 0.0,
    T: int | None = None,
    manifold: str = "frobenius",
    variant: str = "A",
    momentum: str = "ema",
    epsilon: float | None = None,
    gap_tol: float = 1e-6,
) -> ConditionReport:
    """Which conditions of MATH.md §8 hold for these constants and this schedule.

    ``lr`` is η (constant), a callable t → η_t, or the sequence (η_0, …, η_{T−1}); ``scale`` is s.
    Conditions (each reported with its inequality and numbers):

    * ``momentum_range`` 0 ≤ β < 1;
    * ``sufficient_decrease`` max_t η_t·s ≤ 1/(L_R·k) (§8.5 item 5; the step-size condition under
      which the §8.3 inequality certifies decrease);
    * ``tangent_variant`` the analysis covers variants A and D (tangent directions);
    * ``deterministic_momentum`` β = 0 for the deterministic bound (σ = 0 only);
    * ``spectral_gap`` γ ≥ gap_tol on the spectral sphere (A5);
    * ``projector_regularity`` ℓ_P finite for projected momentum (A4);
    * ``noise_averaging`` β > 0 when σ > 0 (otherwise the bound has the floor 2√k·σ);
    * ``stationarity_target`` the §8.4 bound ≤ ε (when ``epsilon``, ``T`` and f_gap are given).
    """
    c = constants
    if not isinstance(c, ProblemConstants):
        raise InvalidInputError(f"constants must be a ProblemConstants, got {type(c).__name__}")
    for value, name in ((manifold, "manifold"), (variant, "variant"), (momentum, "momentum")):
        if not isinstance(value, str):
            raise InvalidInputError(f"{name} must be a string, got {value!r}")
    T = None if T is None else count(T, "T")
    T_eff = T if T is not None else (len(lr) if isinstance(lr, Sequence) else None)
    try:
        if isinstance(lr, Sequence) and not isinstance(lr, str):
            etas = np.asarray(lr, dtype=np.float64)
        elif callable(lr):
            if T_eff is None:
                raise InvalidInputError("a callable lr needs T")
            etas = np.array([float(lr(t)) for t in range(T_eff)])
        else:
            etas = np.array([float(lr)])  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"lr must be a number, a callable or a sequence of numbers, got {lr!r}") from exc
    # a zero learning rate (every η_t = 0) makes no step and divides the §8.4 bound by zero
    if etas.ndim != 1 or etas.size == 0 or not np.all(np.isfinite(etas)) or np.any(etas < 0) \
            or not np.max(etas) > 0:
        raise InvalidInputError("learning rates must be finite and >= 0, and not all zero")
    s = positive_scalar(scale, "scale")
    try:  # out-of-range finite β is reported by "momentum_range" below
        beta = float(beta) if not isinstance(beta, (bool, np.bool_)) else np.nan
    except (TypeError, ValueError, OverflowError):
        beta = np.nan
    if not np.isfinite(beta):
        raise InvalidInputError(f"beta must be a finite number, got {beta!r}")
    gap_tol = positive_scalar(gap_tol, "gap_tol")
    if epsilon is not None:
        epsilon = positive_scalar(epsilon, "epsilon")
    LR_ = c.L_R
    out: list[ConditionResult] = []
    out.append(ConditionResult("momentum_range", bool(0.0 <= beta < 1.0), "0 ≤ β < 1", float(beta), 1.0,
                               "MATH.md §9.1"))
    thr = 1.0 / (LR_ * c.k) if LR_ > 0 else np.inf
    step_max = float(np.max(etas)) * s
    out.append(ConditionResult(
        "sufficient_decrease", bool(step_max <= thr), "max_t η_t·s ≤ 1/(L_R·k)", step_max, float(thr),
        "MATH.md §8.3, §8.5 item 5", f"L_R = β_R²L + 2αG_max = {LR_:.6g}, k = {c.k}"))
    out.append(ConditionResult("tangent_variant", variant in ("A", "D"), "variant ∈ {A, D}",
                               note=f"variant {variant!r}", source="MATH.md §8.3 (derived for variant A)"))
    if c.sigma == 0:
        out.append(ConditionResult("deterministic_momentum", bool(beta == 0.0),
                                   "β = 0 (deterministic bound of §8.3–8.4)", float(beta), 0.0, "MATH.md §8.3"))
    if manifold == "spectral":
        if c.gap is None:
            out.append(ConditionResult("spectral_gap", None, "min_t g(W_t) ≥ gap_tol", None, gap_tol,
                                       "MATH.md §8.1 (A5)", "no gap given; estimate with spectral_gaps"))
        else:
            out.append(ConditionResult("spectral_gap", bool(c.gap >= gap_tol), "min_t g(W_t) ≥ gap_tol",
                                       float(c.gap), float(gap_tol), "MATH.md §8.1 (A5)"))
    if momentum == "projected_ema":
        ok = None if c.ell_P is None else bool(np.isfinite(c.ell_P))
        out.append(ConditionResult("projector_regularity", ok, "ℓ_P < ∞", c.ell_P, np.inf,
                                   "MATH.md §8.1 (A4)"))
    if c.sigma > 0:
        out.append(ConditionResult("noise_averaging", bool(beta > 0), "β > 0 when σ > 0", float(beta), 0.0,
                                   "MATH.md §8.4", "with β = 0 the bound keeps the floor 2√k·σ"))
    bounds: dict[str, float] = {"L_R": LR_, "step_threshold": float(thr)}
    if T_eff is not None and c.f_gap is not None:
        eta_s = float(np.mean(etas)) * s
        det = c.f_gap / (eta_s * T_eff) + LR_ * eta_s * c.k / 2.0
        bounds.update(deterministic_bound=det,
                      optimal_step=float(np.sqrt(2.0 * c.f_gap / (LR_ * c.k * T_eff))) if LR_ > 0 else np.inf,
                      optimal_bound=float(np.sqrt(2.0 * LR_ * c.k * c.f_gap / T_eff)))
        total = det
        if c.sigma > 0 or beta > 0:
            noise = np.sqrt((1.0 - beta) / (1.0 + beta)) * c.sigma
            drift = beta * c.L * c.beta_R * eta_s * np.sqrt(c.k) / (1.0 - beta)
            total = det + 2.0 * np.sqrt(c.k) * (noise + drift)
            bounds.update(stochastic_bound=float(total), noise_term=float(2 * np.sqrt(c.k) * noise))
        if epsilon is not None:
            out.append(ConditionResult("stationarity_target", bool(total <= epsilon),
                                       "bound of §8.4 ≤ ε", float(total), float(epsilon), "MATH.md §8.4",
                                       "the initial-momentum term is omitted (M_0 = ∇f_0 assumed)"))
    return ConditionReport(tuple(out), bounds)


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
def estimate_lipschitz(gradient: Callable[[F64], F64], points: Iterable[ArrayLike],
                       rng: np.random.Generator, *, power_steps: int = 30, h: float = 1e-3) -> float:
    """Sampled lower estimate of the Lipschitz constant of ``gradient`` in ‖·‖_F.

    At each point W a random unit direction Δ is refined by power iteration on gradient
    differences, Δ ← (∇f(W + hΔ) − ∇f(W))/h normalised, and the largest ratio
    ‖∇f(W + hΔ) − ∇f(W)‖_F/h over points and iterations is returned. For a quadratic f this is
    power iteration on the Hessian and converges to ‖∇²f‖₂ = L; in general it is a lower bound.
    """
    h = positive_scalar(h, "h")
    steps = count(power_steps, "power_steps")
    best, seen = 0.0, 0
    for W in points:
        w = as_matrix(W, "W")
        seen += 1
        g0 = as_matrix(gradient(w), "gradient(W)")
        d = rng.standard_normal(w.shape)
        d /= np.linalg.norm(d)
        for _ in range(steps):
            diff = (as_matrix(gradient(w + h * d), "gradient(W + hΔ)") - g0) / h
            r = float(np.linalg.norm(diff))
            best = max(best, r)
            if r == 0:
                break
            d = diff / r
    if seen == 0:
        raise InvalidInputError("estimate_lipschitz needs at least one point, got none")
    return best


@dataclass(frozen=True)
class RetractionFit:
    """Log–log fit of e(t) = ‖R_W(tξ) − W − tξ‖_F: ``order`` (slope), ``alpha`` (max of
    e(t)/(t‖ξ‖_F)² over the fitted range), the data and the spread of e/t^order."""

    order: float
    alpha: float
    ts: F64
    errors: F64
    spread: float


def estimate_retraction_constant(manifold: Manifold, W: ArrayLike, xi: ArrayLike, *,
                                 method: str | None = None,
                                 ts: ArrayLike | None = None) -> RetractionFit:
    """Fit the retraction deviation of ``manifold`` at W along the tangent ``xi`` (MATH.md §8.1).

    ``ts`` defaults to 9 log-spaced values in [1e-3, 1e-1] (CLAIMS.md §0.2); points with
    e(t) < 10³·u·‖W‖_F are dropped (rounding floor). Raises if fewer than 3 points remain.
    """
    w = as_matrix(W, "W")
    x = as_matrix(xi, "xi")
    t = np.geomspace(1e-3, 1e-1, 9) if ts is None else np.asarray(ts, dtype=np.float64)
    nx = float(np.linalg.norm(x))
    if nx == 0:
        raise InvalidInputError("xi must be non-zero")
    e = np.array([float(np.linalg.norm(manifold.retract(w, ti * x, method) - w - ti * x)) for ti in t])
    keep = e >= 1e3 * U64 * float(np.linalg.norm(w))
    if np.sum(keep) < 3:
        raise InvalidInputError("fewer than 3 deviations above the rounding floor; use larger ts")
    tk, ek = t[keep], e[keep]
    slope = float(np.polyfit(np.log(tk), np.log(ek), 1)[0])
    ratio = ek / tk**slope
    return RetractionFit(slope, float(np.max(ek / (tk * nx) ** 2)), t, e,
                         float(np.max(ratio) / np.min(ratio) - 1.0))


def spectral_gaps(iterates: Iterable[ArrayLike]) -> F64:
    """Relative spectral gap g(W_t) = (σ₁ − σ₂)/σ₁ of each iterate (MATH.md §4.4, §8.5 item 7)."""
    out = []
    for W in iterates:
        s = np.linalg.svd(as_matrix(W, "W"), compute_uv=False)
        s2 = s[..., 1] if s.shape[-1] > 1 else np.zeros_like(s[..., 0])
        out.append(np.min((s[..., 0] - s2) / s[..., 0]))
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# runs and monitors
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    """A recorded run: arrays over t = 0 … T (``loss``, ``grad_nuclear`` ‖grad f‖_*,
    ``grad_frobenius`` ‖grad f‖_F, summed over blocks for product problems), per-step
    ``step_scales`` (η_t·s) and ``diagnostics``, the final point, and the iterates if kept."""

    loss: F64
    grad_nuclear: F64
    grad_frobenius: F64
    step_scales: F64
    diagnostics: tuple[Any, ...]
    final: Any
    iterates: tuple[Any, ...] = ()


def _stationarity(problem: Any, W: Any) -> tuple[float, float]:
    rg = problem.riemannian_gradient(W)
    blocks = rg if isinstance(rg, tuple) else (rg,)
    nuc = sum(float(np.sum(np.linalg.svd(b, compute_uv=False))) for b in blocks)
    fro = float(np.sqrt(sum(float(np.sum(b * b)) for b in blocks)))
    return nuc, fro


def run(problem: Any, optimizer: Any, W0: Any, steps: int, *, rng: np.random.Generator | None = None,
        compare_exact: bool = False, keep_iterates: bool = False,
        keep_directions: bool = False) -> Trajectory:
    """Run ``optimizer`` (or a tuple of optimizers, one per block of a product problem) for
    ``steps`` steps from ``W0``. Gradients are exact unless ``problem.noise > 0``, in which case
    ``rng`` (required) draws the stochastic gradients. The recorded diagnostics drop their
    ``direction``/``lmo_input`` matrices unless ``keep_directions`` (memory grows with T·mn)."""
    multi = isinstance(W0, tuple)
    opts = tuple(optimizer) if multi else (optimizer,)
    Ws = list(W0) if multi else [W0]
    if len(opts) != len(Ws):
        raise InvalidInputError("one optimizer per block is required")
    if getattr(problem, "noise", 0.0) > 0 and rng is None:
        raise InvalidInputError("a stochastic problem needs rng")
    states = [o.init_state(w) for o, w in zip(opts, Ws)]
    cur = lambda: tuple(Ws) if multi else Ws[0]  # noqa: E731
    loss, nuc, fro, scales, diags, its = [], [], [], [], [], []
    for t in range(int(steps) + 1):
        W = cur()
        loss.append(float(problem.loss(W)))
        a, b = _stationarity(problem, W)
        nuc.append(a)
        fro.append(b)
        if keep_iterates:
            its.append(W)
        if t == steps:
            break
        G = problem.stochastic_gradient(W, rng) if getattr(problem, "noise", 0.0) > 0 \
            else problem.gradient(W)
        Gs = list(G) if multi else [G]
        step_d = []
        for i, o in enumerate(opts):
            Ws[i], states[i], d = o.step(Ws[i], Gs[i], states[i], compare_exact=compare_exact)
            step_d.append(d if keep_directions else replace(d, direction=None, lmo_input=None))
        scales.append(step_d[0].step_scale)
        diags.append(tuple(step_d) if multi else step_d[0])
    return Trajectory(np.array(loss), np.array(nuc), np.array(fro), np.array(scales), tuple(diags),
                      cur(), tuple(its))


@dataclass(frozen=True)
class DescentReport:
    """Per-step result of :func:`descent_monitor`.

    ``slack_t = f_t − η_ts‖grad f_t‖_* + (L_R/2)(η_ts)²k − f_{t+1}``; ``violations`` the steps with
    slack < −tol_t; ``increases`` the steps with f_{t+1} > f_t + tol_t; ``uncertified`` the steps
    with η_t·s > 1/(L_R·k). ``flagged`` is True iff the inequality fails somewhere, or f increases
    at a step whose size violates the sufficient-decrease condition.
    """

    slack: F64
    tolerance: F64
    violations: tuple[int, ...]
    increases: tuple[int, ...]
    uncertified: tuple[int, ...]
    nonfinite: tuple[int, ...] = ()

    @property
    def flagged(self) -> bool:
        return (bool(self.violations) or bool(self.nonfinite)
                or bool(set(self.increases) & set(self.uncertified)))


def descent_monitor(trajectory: Trajectory, L_R: float, k: int, *, c: float = 100.0) -> DescentReport:
    """Check the one-step inequality of MATH.md §8.3 (β = 0, exact gradients) at every step.

    Tolerance per step: c·u·(|f_t| + |f_{t+1}| + η_ts‖grad f_t‖_*) with c = 100 (CLAIMS.md §0.2,
    V-1: rounding of the two loss evaluations and of the nuclear norm). A step whose loss, gradient
    norm or step size is NaN or ±Inf is listed in ``nonfinite`` and flags the run (a diverged run
    is never certified). ``L_R`` must be finite and ≥ 0, ``k`` an integer ≥ 1.
    """
    if not isinstance(trajectory, Trajectory):
        raise InvalidInputError(f"trajectory must be a Trajectory, got {type(trajectory).__name__}")
    L_R = nonnegative_scalar(L_R, "L_R")
    k = count(k, "k")
    c = positive_scalar(c, "c")
    f, g, st = (np.asarray(a, dtype=np.float64) for a in
                (trajectory.loss, trajectory.grad_nuclear, trajectory.step_scales))
    T = st.size
    if f.shape != (T + 1,) or g.shape != (T + 1,):
        raise InvalidInputError(f"trajectory: {T} step sizes need {T + 1} losses and gradient norms, "
                                f"got {f.shape} and {g.shape}")
    bad = ~(np.isfinite(f[:T]) & np.isfinite(f[1:T + 1]) & np.isfinite(g[:T]) & np.isfinite(st))
    nonfinite = tuple(int(i) for i in np.nonzero(bad)[0])
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite steps are reported above
        slack = f[:T] - st * g[:T] + 0.5 * L_R * st**2 * k - f[1:T + 1]
        tol = c * U64 * (np.abs(f[:T]) + np.abs(f[1:T + 1]) + st * g[:T])
        viol = tuple(int(i) for i in np.nonzero(slack < -tol)[0])
        inc = tuple(int(i) for i in np.nonzero(f[1:T + 1] > f[:T] + tol)[0])
    unc = tuple(int(i) for i in np.nonzero(st * (L_R * k) > 1.0)[0])  # η_ts > 1/(L_R·k), no division
    return DescentReport(slack, tol, viol, inc, unc, nonfinite)


@dataclass(frozen=True)
class RateFit:
    """A fitted log–log slope of a stationarity measure against T, next to the predicted one."""

    Ts: F64
    values: F64
    slope: float
    predicted: float
    bounds: F64 | None = None


def fit_rate(Ts: ArrayLike, values: ArrayLike) -> float:
    """Least-squares slope of log(values) against log(Ts)."""
    t = as_vector(Ts, "Ts")
    v = as_vector(values, "values")
    if t.size < 2 or t.shape != v.shape or np.any(t <= 0) or np.any(v <= 0):
        raise InvalidInputError("fit_rate needs >= 2 positive (T, value) pairs of equal length")
    lt = np.log(t)
    if np.ptp(lt) == 0:
        raise DegenerateGeometryError("spread of log(Ts)", 0.0, 0.0, f"all Ts equal ({t.flat[0]!r}): no slope")
    return float(np.polyfit(lt, np.log(v), 1)[0])


def deterministic_rate(problem: Any, make_optimizer: Callable[[float], Any], W0: Any,
                       Ts: Sequence[int], constants: ProblemConstants) -> RateFit:
    """V-2: for each T run with ηs = √(2(f₀ − f*)/(L_R·k·T)) (``make_optimizer(ηs)`` builds the
    optimizer) and record min_{t<T} ‖grad f(W_t)‖_* against the bound √(2L_R·k·(f₀ − f*)/T)."""
    if constants.f_gap is None:
        raise InvalidInputError("constants.f_gap (f(W₀) − f*) is required")
    vals, bnds = [], []
    for T in Ts:
        eta_s = float(np.sqrt(2.0 * constants.f_gap / (constants.L_R * constants.k * T)))
        tr = run(problem, make_optimizer(eta_s), W0, int(T))
        vals.append(float(np.min(tr.grad_nuclear[:T])))
        bnds.append(float(np.sqrt(2.0 * constants.L_R * constants.k * constants.f_gap / T)))
    return RateFit(np.asarray(Ts, float), np.array(vals), fit_rate(Ts, vals),
                   PREDICTED_RATES["deterministic"], np.array(bnds))


def stochastic_rate(problem: Any, make_optimizer: Callable[[int], Any], W0: Any, Ts: Sequence[int],
                    seeds: Sequence[int]) -> RateFit:
    """V-3: seed-averaged (1/T)Σ_{t<T}‖grad f_t‖_* for each T; ``make_optimizer(T)`` should use
    ηs ∝ T^{−3/4} and 1 − β ∝ T^{−1/2} (MATH.md §8.4)."""
    vals = []
    for T in Ts:
        per = [float(np.mean(run(problem, make_optimizer(int(T)), W0, int(T),
                                 rng=np.random.default_rng(sd)).grad_nuclear[:T])) for sd in seeds]
        vals.append(float(np.mean(per)))
    return RateFit(np.asarray(Ts, float), np.array(vals), fit_rate(Ts, vals), PREDICTED_RATES["stochastic"])
