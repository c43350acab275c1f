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
* ``sso``: W_r = R·W/σ₁(W) (retract), Φ = orth(M̂ + λΘ) with λ the root of ⟨Θ, Φ(λ)⟩ = 0
  (``reference.optim.sso_lambda``), D = s·Φ, W ← W_r − lr·D (MATH.md §9.4).

Every convention is the reference's (``reference.optim``: ``shape_scale``, ``momentum_buffer``,
``nesterov_input``, ``apply_weight_decay``/``decay_factor``, ``macro_direction``, ``sso_lambda``; the
reference manifolds' projections and retractions); an unknown convention name raises
``InvalidInputError``. The orthogonaliser is injectable (``orth=``) so that the harness can judge
the rule with the target's own orthogonaliser.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import manifold_oracle.reference as R
import manifold_oracle.reference.optim as RO
from manifold_oracle.reference.errors import InvalidInputError

from .profiles import Profile

__all__ = ["round_to", "orthogonalise", "shape_scale", "momentum_update", "nesterov_input",
           "momentum_step", "orth_input", "sso_multiplier", "sso_input", "sso_degenerate", "direction", "step", "compute_dtype_for",
           "return_dtype_for", "reference_momentum_form"]


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
            return _iterate(sch, x / (sch.safety * N)) if N > 0 else x * 0.0
        return R.ns_apply(sch, x)
    # normalise then cast (stochastic rounding is modelled as round-to-nearest; the tolerance
    # model covers the extra half-ulp)
    return _iterate(sch, round_to(normalised_input(profile, g), cdt))


def normalised_input(profile: Profile, G: np.ndarray) -> np.ndarray:
    """The iteration's input X₀ = G/(s·N_ε(‖G‖_F)) of every matrix of ``G`` (..., m, n) under the
    declared normalisation (per matrix), in float64 and not rounded to the compute dtype (a zero
    matrix stays 0)."""
    g = np.asarray(G, dtype=np.float64)
    sch = profile.ns_schedule()
    fro = np.sqrt(np.sum(g * g, axis=(-2, -1), keepdims=True))
    N = np.asarray(R.normaliser(fro, sch.eps, sch.eps_form))
    return g / (sch.safety * np.where(N > 0, N, 1.0))


def _iterate(sch: Any, y: np.ndarray) -> np.ndarray:
    """The iteration's exact output U·φ(Σ)·Vᵀ on its input X₀ = ``y`` as given: no second
    normalisation (the caller normalised, whole-tensor or before the cast). Through
    ``ns_apply`` with the normaliser max(‖y‖_F, 1), which is 1 because ‖y‖_F ≤ 1 whenever the
    caller divided by s·N_ε ≥ ‖g‖_F (a ‖y‖_F just above 1 from the cast's rounding is divided by
    itself, a change of ≤ u of the cast's dtype). A slice below ε keeps its small size: with
    the clamp or +eps normaliser the output is ≈ φ′(0)·G/(s·ε), not O(1). Zero slices map to 0."""
    return R.ns_apply(sch, y, safety=1.0, eps=1.0, eps_form="clamp")


Orth = Callable[[np.ndarray], np.ndarray]


def shape_scale(profile: Profile, shape: tuple[int, ...]) -> float:
    """The declared shape scale (CONVENTIONS.md §6) for a weight of ``shape``:
    ``reference.optim.shape_scale`` in the declared weight layout (an unknown name raises
    :class:`InvalidInputError`, never 1.0)."""
    return float(RO.shape_scale(profile.shape_scale, tuple(shape), layout=profile.weight_layout))


def reference_momentum_form(profile: Profile) -> str | None:
    """The reference's combined optimizer form (``reference.optim.update_momentum``) of the
    declared momentum/Nesterov pair, or None when it is not one of them (bias-corrected, G + M_t,
    no momentum): then the recurrence involves divisions and is not exact in dyadic arithmetic."""
    return {("ema", "none"): "ema", ("ema", "ema"): "nesterov_ema", ("accumulate", "none"): "accumulate",
            ("accumulate", "accumulate"): "nesterov_accumulate"}.get((profile.momentum_form, profile.nesterov_form))


def momentum_update(profile: Profile, M: np.ndarray | None, G: np.ndarray, beta: float) -> np.ndarray:
    """M_t from M_{t−1} (None = zeros): ``reference.optim.momentum_buffer`` of the declared form."""
    return RO.momentum_buffer(profile.momentum_form, float(beta), np.zeros_like(G) if M is None else M, G)


def nesterov_input(profile: Profile, M: np.ndarray, G: np.ndarray, beta: float, t: int) -> np.ndarray:
    """U_t from the updated buffer (t = 1-based step): ``reference.optim.nesterov_input``."""
    return RO.nesterov_input(profile.nesterov_form, float(beta), M, G, t=t, buffer_form=profile.momentum_form)


def momentum_step(profile: Profile, M: np.ndarray | None, G: np.ndarray, beta: float,
                  t: int) -> tuple[np.ndarray, np.ndarray]:
    """(M_t, U_t): the new momentum and the orthogonaliser's input, t = 1-based step (macro with
    ``prenormalize``: U_t/max(‖U_t‖_F, 1e-8), before the projection, as ``reference.optim.MACRO``)."""
    Mt = momentum_update(profile, M, G, beta)
    U = nesterov_input(profile, Mt, G, beta, t)
    if profile.rule == "macro" and profile.prenormalize:
        U = U / max(float(np.linalg.norm(U)), 1e-8)
    return Mt, U


def _man(profile: Profile, manifold: Any) -> Any:
    return manifold if manifold is not None else profile.manifolds[0].reference(point_tol=1e-4)


#: manifolds whose projector is the same at any scale of W (per sphere: P_W(G) = G − (⟨G, w⟩/‖w‖²)·w,
#: MATH.md §4.3, §4.5) and retractions that are the metric projection of W + ξ (§4.3: rescale)
_SCALE_FREE = {"frobenius_sphere": ("rescale", "projection"), "oblique": ("normalize", "projection")}


def scale_free(profile: Profile) -> bool:
    """The declared MACRO manifold's projector is the same at any scale of W and its retraction is
    the metric projection of W + ξ (``_SCALE_FREE``): a step from weights off it is defined
    (:func:`macro_point`)."""
    decl = profile.manifolds[0] if profile.manifolds else None
    return decl is not None and decl.retraction in _SCALE_FREE.get(decl.kind, ())


def macro_point(profile: Profile, W: np.ndarray, manifold: Any = None) -> np.ndarray:
    """Where the declared MACRO rule takes its tangent projections for weights W: W itself, or,
    for weights off a manifold of ``_SCALE_FREE`` (an un-normalised start), their metric
    projection, at which the spec's projector (homogeneous of degree 0 in each sphere's w) takes
    the same value; :func:`step` then retracts W − lr·D itself. Other manifolds: W (the
    reference refuses a point off them)."""
    man = _man(profile, manifold)
    return W if not scale_free(profile) or man.contains(W) else man.project_point(W)


def orth_input(profile: Profile, W: np.ndarray, U: np.ndarray, *, manifold: Any = None,
               lam: float = 0.0) -> np.ndarray:
    """The matrix the declared rule orthogonalises: U (muon, muonh), P_W(U) (macro),
    M̂ + λΘ with M̂ = U/max(‖U‖_F, 1e-8) (sso, Θ = u₁v₁ᵀ of W)."""
    if profile.rule in ("muon", "muonh"):
        return U
    if profile.rule == "macro":
        return _man(profile, manifold).project_tangent(macro_point(profile, W, manifold), U)
    if profile.rule == "sso":
        Uu, _, Vh = np.linalg.svd(W, full_matrices=False)
        return U / max(float(np.linalg.norm(U)), 1e-8) + lam * np.outer(Uu[:, 0], Vh[0])
    raise InvalidInputError(f"profile {profile.name!r} declares no optimizer rule")


def sso_multiplier(profile: Profile, W: np.ndarray, U: np.ndarray, input_dtype: str = "float64",
                   orth: Orth | None = None) -> float:
    """λ of the declared SSO rule: the root of h(λ) = ⟨Θ, O(M̂ + λΘ)⟩ by the reference's
    ``reference.optim.sso_lambda``.

    ``orth`` None: O is the declared orthogonaliser's exact map (or msign), solved to 1e-11 with an
    unbounded bracket; bracket failures raise (the declared rule has a root: h is monotone).
    ``orth`` given (the target's own orthogonaliser, replayed): the declared bracket-and-bisect on
    h_t(λ) = ⟨Θ, O_t(M̂ + λΘ)⟩ — SSO's defaults, which the profiles' descriptions declare: bracket
    from 0 with step 1e-3, ≤ 10 doublings, |h| ≤ τ = 1e-8 in ≤ 100 bisections, the best point,
    λ = 0 on a bracket failure. In a low compute dtype h_t is a step function (the input's cast
    changes as λ moves) and the target's λ lands anywhere near a jump across 0; replaying its
    bisection lands where it lands."""
    Uu, _, Vh = np.linalg.svd(W, full_matrices=False)
    Th = np.outer(Uu[:, 0], Vh[0])
    Mh = U / max(float(np.linalg.norm(U)), 1e-8)
    if orth is not None:
        lam, _ = RO.sso_lambda(Mh, Th, on_bracket_failure="zero", orth=orth)
        return float(lam)
    backend: Any = "exact" if profile.schedule == "exact" else profile.ns_schedule()
    lam, _ = RO.sso_lambda(Mh, Th, tol=1e-11, max_iter=200, max_expansions=60, backend=backend)
    return float(lam)


def sso_input(profile: Profile, W: np.ndarray, U: np.ndarray, manifold: Any = None,
              orth: Orth | None = None) -> tuple[np.ndarray, float]:
    """(M̂ + λΘ, λ): the orthogonaliser's input of the declared SSO step from W (retracted first);
    λ as :func:`sso_multiplier` (``orth``: the target's orthogonaliser, its bisection replayed)."""
    Wr = _man(profile, manifold).radius * W / float(np.linalg.norm(W, 2))
    lam = sso_multiplier(profile, Wr, U, orth=orth)
    return orth_input(profile, Wr, U, lam=lam), lam


def sso_degenerate(X: np.ndarray, rtol: float = 1e-8) -> bool:
    """True when the SSO root λ* sits where M̂ + λΘ loses rank (σ_min/σ_max ≤ rtol): there h(λ)
    jumps across 0 and the tangent LMO is set-valued (any completion of msign on the lost
    direction is a solution), so no single expected step exists. Generic for square matrices:
    det(M̂ + λΘ) is affine in λ."""
    s = np.linalg.svd(X, compute_uv=False)
    return bool(s.size and s[0] > 0 and s[-1] <= rtol * s[0])


def direction(profile: Profile, W: np.ndarray, G: np.ndarray, M: np.ndarray | None, *, t: int = 1,
              beta: float | None = None, input_dtype: str = "float64",
              manifold: Any = None, orth: Orth | None = None,
              lam: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, M_t): the declared direction and the new momentum, float64 (``lam``: a precomputed
    SSO multiplier of this step, from :func:`sso_input`).

    ``orth`` maps the orthogonaliser's input to its output (default: the declared map of
    :func:`orthogonalise` on the input held in ``input_dtype``); the harness passes the target's
    own orthogonaliser to judge the rule apart from the orthogonaliser's rounding."""
    beta = profile.momentum if beta is None else beta
    Mt, U = momentum_step(profile, M, G, beta, t)
    o = orth if orth is not None else (lambda X: orthogonalise(profile, X, input_dtype))
    if profile.rule in ("muon", "muonh"):
        return (shape_scale(profile, W.shape) if profile.rule == "muon" else 1.0) * o(U), Mt
    if profile.rule == "macro":
        man = _man(profile, manifold)
        Wp = macro_point(profile, W, manifold)
        D = RO.macro_direction(U, lambda Z: man.project_tangent(Wp, Z), o, "A")
        return profile.scale * shape_scale(profile, W.shape) * D, Mt
    if profile.rule == "sso":
        lam = sso_multiplier(profile, W, U, input_dtype) if lam is None else lam
        return profile.scale * shape_scale(profile, W.shape) * o(orth_input(profile, W, U, lam=lam)), Mt
    raise InvalidInputError(f"profile {profile.name!r} declares no optimizer rule")


def step(profile: Profile, W: np.ndarray, G: np.ndarray, M: np.ndarray | None, *, lr: float,
         weight_decay: float = 0.0, t: int = 1, beta: float | None = None,
         input_dtype: str = "float64", manifold: Any = None,
         orth: Orth | None = None, lam: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W_{t+1}, M_t) of one declared step from W_t, float64 (``orth`` as in :func:`direction`).

    sso is retract-then-step: W_r = R·W/σ₁(W) (R of ``manifolds[0]``, or σ₁ of the starting
    weights for ``radius_source='init'``: pass ``manifold``), W_{t+1} = W_r − lr·s·Φ."""
    if profile.rule == "sso":
        man = _man(profile, manifold)
        W = man.radius * W / float(np.linalg.norm(W, 2))
    D, Mt = direction(profile, W, G, M, t=t, beta=beta, input_dtype=input_dtype, manifold=manifold, orth=orth,
                      lam=lam)
    c = profile.weight_decay_coupling
    wd = weight_decay
    if profile.rule == "muon":
        return RO.apply_weight_decay(c, W, D, lr, wd, shape_scale(profile, W.shape)), Mt
    if profile.rule == "macro":
        man = _man(profile, manifold)
        if macro_point(profile, W, manifold) is not W:  # off a _SCALE_FREE manifold: R(W − lr·D)
            return man.project_point(W - lr * D), Mt
        return man.retract(W, -lr * D, method=profile.manifolds[0].retraction), Mt
    if profile.rule == "sso":
        return W - lr * D, Mt
    if profile.rule == "muonh":
        Wp = RO.decay_factor(c, lr, wd) * W
        r = float(np.linalg.norm(Wp))
        q = max(float(np.linalg.norm(D)), 1e-8)
        X = Wp - lr * (r / q) * D
        return X * r / max(float(np.linalg.norm(X)), 1e-8), Mt
    raise InvalidInputError(f"profile {profile.name!r} declares no optimizer rule")
