"""MACRO as a pure float64 step (MATH.md §7; everything beyond the paper's public statements is
reconstructed, and each reconstructed choice is a named option).

Default (variant A), per matrix W_t ∈ M:

    M_t = βM_{t−1} + (1 − β)G_t,  X_t = P_{W_t}(M_t),  D_t = P_{W_t}(msign X_t),
    W_{t+1} = R_{W_t}(−η_t·s·D_t).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from .._scaling import fro, pow2_exponent
from .._validate import as_matrix, choice, positive_scalar
from ..errors import InvalidInputError
from ..kinds import get_kind, kind_of, kind_params, manifold_from_kind, mup_radius
from ..manifolds import Euclidean, Manifold, SpectralSphere
from ._base import (
    validate_fields,
    F64,
    LR,
    MOMENTUM_FORMS,
    Backend,
    Diagnostics,
    State,
    apply_msign,
    build_diagnostics,
    check_backend,
    check_beta,
    check_pair,
    check_state,
    optimizer_kind,
    optimizer_manifold,
    resolve_lr,
    shape_scale,
    tangent_noise_floor,
)
from .conventions import update_momentum, macro_direction
from .spectral import power_iteration

__all__ = ["MACRO", "REPROJECT_VARIANTS", "RADIUS_RULES"]

#: A: P(msign(PM)) (default); B: msign(PM); C: msign(M); D: exact tangent LMO Φ*(PM)
REPROJECT_VARIANTS = ("A", "B", "C", "D")
#: "init" (radius of W₀), "mup" (MATH.md §4.9 table), or an explicit positive number
RADIUS_RULES = ("init", "mup")
#: W with max|wᵢⱼ| outside [2⁻⁴⁸⁰, 2⁴⁸⁰] is stepped at a power-of-two rescaled copy (the manifolds'
#: sums of squares are exact-range safe inside: n·2⁹⁶⁰ < 2¹⁰²⁴ and 2⁻⁹⁶⁰ is a normal number)
_SAFE_EXPONENT = 480


def _fro(x: F64) -> F64:
    return fro(x, None)  # power-of-two scaled: no overflow in the sum (reference._scaling)


def _common(values: F64, what: str) -> float:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size and np.max(np.abs(v - v[0])) > 1e-12 * abs(v[0]):
        raise InvalidInputError(f"radius rule 'init' needs one {what} across the batch; "
                                "pass an explicit radius")
    return float(v[0])


def _rescaled_manifold(man: Manifold, e: int) -> Manifold:
    """The manifold of the same kind with its size (radius, Stiefel scale) multiplied by 2⁻ᵉ."""
    kind = kind_of(man)
    size = get_kind(kind).size_param
    if size is None:
        raise InvalidInputError(f"{man!r}: a matrix with entries of magnitude 2^{e} is not a point of a "
                                "manifold without a size parameter")
    params = kind_params(man)
    scaled = np.ldexp(np.asarray(params[size], dtype=np.float64), -e)
    params[size] = float(scaled) if scaled.ndim == 0 else scaled
    return manifold_from_kind(kind, **params)


@dataclass(frozen=True)
class MACRO:
    """MACRO hyperparameters (MATH.md §7.1, §7.3). All options by name:

    * ``manifold``: a kind of :mod:`reference.kinds` (``frobenius_sphere`` alias ``frobenius``,
      ``spectral_sphere`` alias ``spectral``, ``oblique_rows``, ``oblique_cols``, ``stiefel``,
      ``euclidean``) whose radius follows ``radius``, or a :class:`Manifold` instance (then
      ``radius`` is ignored).
    * ``radius``: ``"init"`` (‖W₀‖_F, σ₁(W₀), row/column norms of W₀, or the RMS singular value
      √(‖W₀‖²_F/k) on Stiefel), ``"mup"`` (c·√d_out on M_F; c·√(d_out/d_in) on M_S, OB_col and St;
      c on OB_row; c = ``radius_scale``) or an explicit number.
    * ``reproject``: ``"A"`` P(msign X) (default), ``"B"`` msign X, ``"C"`` msign M (no projection),
      ``"D"`` the exact tangent LMO of MATH.md §6 (``reference.steepest.steepest_direction``).
      Singular values of X below its rounding level τ = max(m, n)·ε·‖M‖_F are treated as zero
      (msign's rank threshold is τ; X ≡ 0 if ‖X‖_F ≤ τ, reported in ``extras``).
    * ``momentum``: ``ema`` (default), ``accumulate``, ``projected_ema``
      (X_t = βP_t(X_{t−1}) + (1 − β)P_t(G_t)), ``nesterov_ema``, ``nesterov_accumulate``.
    * ``prenormalize``: divide the momentum input by max(‖·‖_F, 1e-8) (SSO style).
    * ``scale`` s: ``one`` (default), ``radius``, ``kj``, ``moonlight``, ``spectral_mup`` or a number.
    * ``retraction``: a name from ``manifold.retractions`` (default: the manifold's first).
    * ``msign_backend``: ``"exact"`` or a schedule name/:class:`Schedule` applied exactly
      (``ns_steps`` overrides its step count).
    * ``theta_source`` (spectral sphere, single matrices): ``"exact"`` (SVD) or ``"power"``:
      Θ̂ = ûv̂ᵀ from ``power_steps`` bilateral power-iteration steps warm-started from the previous
      step's v (all-ones at t = 0); the projector uses Θ̂ and the rescaling retraction divides by
      the power estimate σ̂(W + ξ), so feasibility and tangency (measured against the exact Θ) are
      approximate, as in an implementation (MATH.md §7.1, §7.3).
    """

    manifold: str | Manifold = "frobenius"
    lr: LR = 0.02
    beta: float = 0.95
    reproject: str = "A"
    momentum: str = "ema"
    prenormalize: bool = False
    scale: str | float = "one"
    radius: str | float = "init"
    radius_scale: float = 1.0
    retraction: str | None = None
    msign_backend: Backend = "exact"
    ns_steps: int | None = None
    gap_tol: float = 1e-6
    theta_source: str = "exact"
    power_steps: int = 10

    def __post_init__(self) -> None:
        validate_fields(self)
        choice(self.theta_source, ("exact", "power"), "theta_source")
        if int(self.power_steps) < 1:
            raise InvalidInputError("power_steps must be >= 1")
        if isinstance(self.manifold, str):
            optimizer_kind(self.manifold)
        elif not isinstance(self.manifold, Manifold):
            raise InvalidInputError(f"manifold must be a kind name or a Manifold, got {self.manifold!r}")
        choice(self.reproject, REPROJECT_VARIANTS, "reproject")
        choice(self.momentum, MOMENTUM_FORMS, "momentum")
        check_beta(self.beta)
        if isinstance(self.radius, str):
            choice(self.radius, RADIUS_RULES, "radius")
        else:
            positive_scalar(self.radius, "radius")
        positive_scalar(self.radius_scale, "radius_scale")
        positive_scalar(self.gap_tol, "gap_tol")
        check_backend(self.msign_backend)
        if not callable(self.lr):
            resolve_lr(self.lr, 0)

    # -- geometry ------------------------------------------------------------------------------
    def resolve_radius(self, W0: ArrayLike) -> float | F64 | None:
        """The radius the rule gives for the initial weights ``W0`` (None for a Manifold/Euclidean)."""
        if isinstance(self.manifold, Manifold):
            return None
        kind = optimizer_kind(self.manifold)
        if kind == "euclidean":
            return None
        w = as_matrix(W0, "W0")
        m, n = w.shape[-2:]
        if not isinstance(self.radius, str):
            return float(self.radius)
        c = float(self.radius_scale)
        if self.radius == "mup":
            return c * mup_radius(kind, m, n)
        if kind == "frobenius_sphere":
            return _common(_fro(w), "Frobenius norm")
        if kind == "spectral_sphere":
            return _common(np.linalg.svd(w, compute_uv=False)[..., 0], "spectral norm")
        if kind == "stiefel":
            return _common(np.sqrt(np.sum(w * w, axis=(-2, -1)) / min(m, n)), "RMS singular value")
        norms = np.sqrt(np.sum(w * w, axis=-1 if kind == "oblique_rows" else -2))
        per = norms.reshape((-1, norms.shape[-1]))
        if np.any(np.abs(per - per[0]) > 1e-12 * np.abs(per[0])):
            raise InvalidInputError("radius rule 'init' needs equal norms across the batch")
        if np.any(per[0] == 0):
            raise InvalidInputError("radius rule 'init': a zero row/column has no radius")
        return per[0].copy() if np.ptp(per[0]) > 0 else float(per[0][0])

    def manifold_for(self, radius: float | F64 | None) -> Manifold:
        """The manifold instance for a resolved radius."""
        if isinstance(self.manifold, Manifold):
            return self.manifold
        return optimizer_manifold(self.manifold, 1.0 if radius is None else radius, self.gap_tol)

    def initial_point(self, W0: ArrayLike) -> F64:
        """``W0`` mapped onto the manifold of the resolved radius: the metric projection, except on
        the spectral sphere, where it is the rescaling R·W₀/σ₁(W₀) (CLAIMS.md §0.1; the metric
        projection mclip would make every σᵢ > R equal to R, a degenerate point)."""
        w = as_matrix(W0, "W0")
        man = self.manifold_for(self.resolve_radius(w))
        e = int(np.max(pow2_exponent(w))) if w.size else 0
        if abs(e) > _SAFE_EXPONENT and not isinstance(man, Euclidean):
            # homogeneous maps: the point of M(R) for W₀ is 2ᵉ × the point of M(R·2⁻ᵉ) for W₀·2⁻ᵉ
            man, w = _rescaled_manifold(man, e), np.ldexp(w, -e)
        else:
            e = 0
        if isinstance(man, SpectralSphere):
            s1 = np.linalg.svd(w, compute_uv=False)[..., 0]
            if np.any(s1 == 0):
                raise InvalidInputError("W0 = 0 has no direction")
            return np.ldexp(man.radius * w / s1[..., None, None], e)
        return np.ldexp(man.project_point(w), e)

    def init_state(self, W: ArrayLike) -> State:
        """State at t = 0: zero momentum and the resolved radius (from ``W`` for rule "init")."""
        w = as_matrix(W, "W")
        return State(0, {"momentum": np.zeros_like(w), "radius": self.resolve_radius(w)})

    def _scale(self, man: Manifold, shape: tuple[int, ...]) -> float:
        rad = None
        if self.scale == "radius":
            rad = getattr(man, "radius", getattr(man, "scale", None))
            if rad is None or np.ndim(rad) != 0:
                raise InvalidInputError(f"scale rule 'radius' needs a scalar radius on {man!r}")
        return shape_scale(self.scale, shape, rad)

    def _orthogonaliser(self, tau: F64) -> Callable[[F64], F64]:
        """The msign of the backend; the rank threshold τ applies to the tangent input X (variants
        A, B), not to the ambient U of variant C."""
        rank_tol = None if self.reproject == "C" else tau
        return lambda Z: apply_msign(Z, self.msign_backend, self.ns_steps, rank_tol)

    # -- the step ------------------------------------------------------------------------------
    def step(self, W: ArrayLike, G: ArrayLike, state: State, *,
             compare_exact: bool = False) -> tuple[F64, State, Diagnostics]:
        """One MACRO step. Returns (W_{t+1}, state_{t+1}, diagnostics); inputs are not modified.

        Raises :class:`OffManifoldError` if W is not on the manifold (``point_tol``) and
        :class:`DegenerateGeometryError` on the spectral sphere when the gap is below ``gap_tol``.
        """
        w, g = check_pair(W, G)
        check_state(state, w, ("momentum",))
        man = self.manifold_for(state["radius"])
        e = int(np.max(pow2_exponent(w))) if w.size else 0
        if abs(e) > _SAFE_EXPONENT and not isinstance(man, Euclidean):
            return self._rescaled_step(man, w, g, state, compare_exact, e)
        if self.theta_source == "power" and isinstance(man, SpectralSphere):
            return self._power_step(man, w, g, state, compare_exact)
        man.check_point(w)
        eta = resolve_lr(self.lr, state.t)
        b = float(self.beta)
        if self.momentum == "projected_ema":
            Mn = b * man.project_tangent(w, state["momentum"]) + (1.0 - b) * man.project_tangent(w, g)
            U = Mn
        else:
            Mn, U = update_momentum(self.momentum, b, state["momentum"], g)
        if self.prenormalize:
            U = U / np.maximum(_fro(U), 1e-8)[..., None, None]
        X = man.project_tangent(w, U)
        tau = tangent_noise_floor(U)
        zeroed = _fro(X) <= tau
        if np.any(zeroed):  # X is rounding noise (e.g. a trivial tangent space): exactly 0
            X = np.where(zeroed[..., None, None], 0.0, X)
        if self.reproject == "D":
            D = self._exact_direction(man, w, X)
        else:
            D = macro_direction(U, lambda Z: man.project_tangent(w, Z), self._orthogonaliser(tau),
                                self.reproject, tangent_input=X)
        s = self._scale(man, w.shape)
        A = -(eta * s) * D
        W_pre = w + A
        W_next = W_pre.copy() if isinstance(man, Euclidean) else man.retract(w, A, self.retraction)
        diag = build_diagnostics(man, w, X, D, W_pre, W_next, eta * s, compare_exact=compare_exact,
                                 extras={"lr": eta, "scale": s, "variant": self.reproject,
                                         "tangent_input_zeroed": bool(np.any(zeroed))})
        return W_next, state.replace(t=state.t + 1, momentum=Mn), diag

    def _power_step(self, man: SpectralSphere, w: F64, g: F64, state: State,
                    compare_exact: bool) -> tuple[F64, State, Diagnostics]:
        """Spectral-sphere step with a warm-started power-iteration Θ̂ (``theta_source="power"``)."""
        if w.ndim != 2:
            raise InvalidInputError("theta_source='power' steps one matrix at a time")
        if self.retraction not in (None, "rescale"):
            raise InvalidInputError("theta_source='power' uses the rescaling retraction")
        if self.reproject in ("D",) or self.momentum == "projected_ema":
            raise InvalidInputError("theta_source='power' supports variants A-C with ambient momentum")
        eta = resolve_lr(self.lr, state.t)
        _, u, v = power_iteration(w, self.power_steps, state.buffers.get("power_v"))
        Th = np.outer(u, v)

        def proj(A: F64) -> F64:
            return A - float(np.sum(A * Th)) * Th

        Mn, U = update_momentum(self.momentum, float(self.beta), state["momentum"], g)
        if self.prenormalize:
            U = U / max(float(_fro(U)), 1e-8)
        X = proj(U)
        tau = tangent_noise_floor(U)
        if _fro(X) <= tau:
            X = np.zeros_like(X)
        D = macro_direction(U, proj, self._orthogonaliser(tau), self.reproject, tangent_input=X)
        s = self._scale(man, w.shape)
        W_pre = w - (eta * s) * D
        sig_pre, _, v_pre = power_iteration(W_pre, self.power_steps, v)
        W_next = man.radius * W_pre / sig_pre
        s_w = np.linalg.svd(w, compute_uv=False)
        tm = SpectralSphere(float(s_w[0]), gap_tol=1e-300)  # exact tangent space at W
        Xe = tm.project_tangent(w, U)
        diag = build_diagnostics(man, w, Xe, D, W_pre, W_next, eta * s, tangent_manifold=tm,
                                 compare_exact=compare_exact,
                                 extras={"lr": eta, "scale": s, "variant": self.reproject,
                                         "theta_error": float(np.linalg.norm(Th - tm.normal_basis(w)[0])),
                                         "sigma_estimate_pre": sig_pre})
        return W_next, state.replace(t=state.t + 1, momentum=Mn, power_v=v_pre), diag

    def _rescaled_step(self, man: Manifold, w: F64, g: F64, state: State, compare_exact: bool,
                       e: int) -> tuple[F64, State, Diagnostics]:
        """The step for W with entries ~2ᵉ, |e| > _SAFE_EXPONENT, where the manifold's sums of squares
        would overflow or underflow: every retraction here is homogeneous, R_{cW}(cA) on M(cR) equals
        c·R_W(A) on M(R), so the step is taken at W·2⁻ᵉ on the manifold of size R·2⁻ᵉ with the step
        factor η·s·2⁻ᵉ, and the result is scaled back exactly (powers of two)."""
        s = self._scale(man, w.shape)
        with np.errstate(over="ignore", under="ignore"):
            s_scaled = float(np.ldexp(s, -e))
        if not (np.isfinite(s_scaled) and s_scaled > 0):
            raise InvalidInputError(f"MACRO.step: the step scale s = {s:.3e} is not representable relative to "
                                    f"W of magnitude 2^{e} (s·2^{-e} = {s_scaled!r})")
        sub = replace(self, manifold=_rescaled_manifold(man, e), scale=s_scaled)
        W_next, new_state, diag = sub.step(np.ldexp(w, -e), g, state, compare_exact=compare_exact)
        extras = dict(diag.extras, scale=s, rescaled_by=f"2^{e}")
        diag = replace(diag, step_scale=float(resolve_lr(self.lr, state.t) * s),
                       extras=MappingProxyType(extras))
        return np.ldexp(W_next, e), new_state, diag

    @staticmethod
    def _exact_direction(man: Manifold, w: F64, X: F64) -> F64:
        from ..steepest import steepest_direction  # lazy: written in parallel (issue 3)

        w2 = w.reshape((-1,) + w.shape[-2:])
        x2 = X.reshape(w2.shape)
        out = np.stack([np.asarray(steepest_direction(man, w2[i], x2[i], norm="spectral").direction,
                                   dtype=np.float64) for i in range(w2.shape[0])])
        return out.reshape(w.shape)

