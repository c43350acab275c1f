"""Sharp optimizer-rule checks: the update rule judged apart from the orthogonaliser's rounding.

A bf16 Newton–Schulz output is only known to ~5 % (its spectral-norm bound is O(1) on generic
input), so comparing a bf16 optimizer's step with the float64 declared map cannot see a step 10 %
too large. These checks separate the two (issue 12 item 1):

* **replay** — where the target exposes its orthogonaliser (``msign`` capability; the profile
  declares that the optimizer uses it), the expected step is the declared rule
  (``conformance.expected``) with the *target's own* orthogonaliser applied to the float64 input
  of the rule. What remains is the rule's arithmetic in the parameter dtype, so the bound is a
  rounding bound (``tolerances.param_rounding``) and a doubled step, a sign flip on a few
  entries, an inverted shape scale, a wrong weight-decay coupling, a missing Nesterov term or an
  ignored per-group hyperparameter fail in bf16 as they do in fp32. The gradients are dyadic
  (multiples of 1/16) and the momenta 3/4 and 1/2, so the momentum recurrences are exact in fp32
  and the orthogonaliser sees bit-identical input; where the rule computes its input with
  reductions (MACRO's projection) an input entry may sit on a rounding midpoint of the cast, and
  such a case falls back to the orthogonaliser's own bound (``details['ambiguous_casts']``).
  Without ``msign`` the declared map and ``tolerances.step_tolerance`` are used.
* **self-consistency** — lr linearity (step(2·lr) − W = 2·(step(lr) − W)), the weight-decay part
  isolated by a zero-gradient step and by the difference of two steps that differ only in
  weight decay, shape-scale ratios between G and Gᵀ: the orthogonaliser's output cancels, only
  parameter rounding remains (no msign capability needed).

Figures are Frobenius norms (the rounding model is entrywise); tightness = bound ÷ measured.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Any, Callable

import numpy as np
import torch

from manifold_oracle.reference.linalg import top_singular_triplet

from .. import expected as E
from .. import tolerances as T
from ..adapters import as_output, to_numpy
from ..tolerances import Tolerance
from . import Case, Context, Measurement, NotApplicable, register
from ._util import call, tensor

#: harness-chosen hyperparameters: dyadic, so that the momentum recurrences are exact in fp32
LR_A, LR_B = 2.0**-5, 2.0**-4
BETA_A, BETA_B = 0.75, 0.5
WD_A, WD_B = 0.125, 0.25

#: rounding budget of one step of each rule in the parameter dtype, as coefficients of
#: (‖W‖_F, ‖ΔW‖_F, ‖W_next‖_F) for elementwise roundings (|fl(y) − y| ≤ u|y| per op, Higham
#: Thm 2.2) and of (‖ΔW‖_F, ‖W_next‖_F) for roundings of a reduction over the mn entries (pairwise
#: summation as in torch/numpy: relative error ≤ ⌈log₂ mn⌉·u, Higham eq. 4.6):
#: muon   — W·(1 − lr·λ) and the scalar (1 − lr·λ) [2‖W‖], lr·s and lr·s·O [2‖ΔW‖], the sum [‖W_next‖];
#: macro  — P(O) and lr·s·D [4‖ΔW‖ incl. scalars], W − lr·s·D and the rescale [3‖W_next‖];
#:          reductions ⟨O, W⟩ (scales the normal part, ≤ ‖ΔW‖) and the norm ‖Y‖ (radial; a square
#:          root halves the sum's relative error: ½‖W_next‖);
#: muonh  — decay [‖W‖], (r/q)·lr and its product [2‖ΔW‖], Y and the rescale [3‖W_next‖];
#:          norms r, q (step size, ½ + ½: ‖ΔW‖) and r, ‖Y‖ (radial, ½ + ½: ‖W_next‖);
#: sso    — retraction rescale [‖W‖], lr·s·Φ [2‖ΔW‖], the sum [‖W_next‖]; σ₁ (radial) [½‖W_next‖];
#:          ‖M‖ for M̂ (enters Φ through its input, ‖ΔW‖).
RULE_BUDGET: dict[str, tuple[tuple[float, float, float], tuple[float, float]]] = {
    "muon": ((2.0, 2.0, 1.0), (0.0, 0.0)),
    "macro": ((0.0, 4.0, 3.0), (1.0, 0.5)),
    "muonh": ((1.0, 2.0, 3.0), (1.0, 1.0)),
    "sso": ((1.0, 2.0, 1.0), (1.0, 0.5)),
}

Orth = Callable[[np.ndarray], np.ndarray]

#: draws of the input's rounding model in ``input_term``
N_INPUT = 64


def _rule_applies(ctx: Context) -> str | None:
    return None if ctx.profile.rule != "none" else "profile declares no optimizer rule"


def _muon_like(ctx: Context) -> str | None:
    if ctx.profile.rule not in ("muon",):
        return "needs an unconstrained rule (muon): the step is affine in lr and weight decay"
    return None


def dyadic(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian-like gradient with entries k/16, |k| ≤ 64, never all zero."""
    G = np.clip(np.round(rng.standard_normal(shape) * 16.0), -64, 64) / 16.0
    if not np.any(G):
        G.flat[0] = 1.0
    return G


def shapes_for(ctx: Context) -> tuple[tuple[int, int], ...]:
    """Shapes where implementations switch paths: 1×n, n×1, square, tall, wide, a side ≥ 64
    (and ≥ 256 in full mode). Constrained rules add their declared shapes."""
    base: tuple[tuple[int, int], ...] = ((12, 8), (8, 12), (1, 16), (16, 1), (10, 10), (64, 24))
    if ctx.full:
        base += ((256, 32), (32, 96))
    p = ctx.profile
    if p.rule == "sso" and not ctx.full:
        # each expected SSO step solves for λ through the exact map (~10² evaluations): quick mode
        # keeps the vector and square shapes
        base = ((1, 16), (16, 1), (10, 10))
    if p.rule in ("macro", "sso") and p.manifolds:
        extra = tuple(tuple(s) for s in p.manifolds[0].shapes if tuple(s) not in base)
        base = extra + base
        if p.manifolds[0].kind == "stiefel":  # St(m, n) needs both sides ≥ 1 and the declared shapes
            base = tuple(s for s in base if min(s) >= 1)
    return base


def start_point(ctx: Context, rng: np.random.Generator, shp: tuple[int, int]) -> np.ndarray:
    """A starting point: on the declared manifold for constrained rules (spectral sphere: σ₂/σ₁
    ≤ 0.3, so that a power-iteration σ₁ agrees to ρ^{2k} ≤ 1e-10 for k ≥ 10 steps)."""
    p = ctx.profile
    if p.rule in ("macro", "sso") and p.manifolds:
        decl = p.manifolds[0]
        if decl.kind == "spectral_sphere":
            from manifold_oracle.reference.generators import matrix_with_spectrum

            k = min(shp)
            s = np.concatenate([[1.0], np.linspace(0.3, 0.1, k - 1)]) if k > 1 else np.array([1.0])
            return decl.radius * matrix_with_spectrum(rng, s, shp)
        return decl.reference().random_point(rng, shp)
    return rng.standard_normal(shp) / np.sqrt(shp[1])


#: σ₂/σ₁ of the SSO start that rule.step adds when Θ is declared exact (a trained or random-init
#: matrix's top gap): there a 10-step power iteration from v₀ = 1 is off by ~0.95^20 ≈ 0.36 in its
#: Rayleigh quotient's convergence factor, i.e. NOT the exact pair the profile declares
SSO_GAP_RATIO = 0.95


def sso_gap_cases(ctx: Context, rng: np.random.Generator, shapes: tuple[tuple[int, int], ...], dt: str,
                  steps: int) -> list[Case]:
    """rule.step's case for ``theta_source='exact'`` SSO: two parameters of the first shape with
    both sides ≥ 2, on the sphere with σ₂/σ₁ = ``SSO_GAP_RATIO`` (the other starts compress σ₂/σ₁
    ≤ 0.3 so that a power-iteration pair agrees, which leaves a power σ₁ or Θ declared exact unseen:
    audit 4, 2.6× the update on Gaussian matrices). Other profiles: no case."""
    p = ctx.profile
    shp = next((s for s in shapes if min(s) >= 2), None)
    if p.rule != "sso" or p.theta_source != "exact" or not p.manifolds or shp is None:
        return []
    from manifold_oracle.reference.generators import matrix_with_spectrum

    k = min(shp)
    sv = np.concatenate([[1.0, SSO_GAP_RATIO], np.linspace(0.3, 0.1, k - 2)])
    arrays: dict[str, np.ndarray] = {}
    for name in ("a0", "a1"):
        arrays[f"W_{name}"] = p.manifolds[0].radius * matrix_with_spectrum(rng, sv, shp)
        arrays[f"G_{name}"] = np.stack([dyadic(rng, shp) for _ in range(steps)])
    return [Case(f"shape {shp} ×2 params, {dt}, {steps} step(s), σ₂/σ₁ = {SSO_GAP_RATIO:g} (exact Θ declared)",
                 arrays, {"dtype": dt, "steps": steps, "groups": 1})]


def manifold_of(ctx: Context) -> Any:
    p = ctx.profile
    return p.manifolds[0].reference(point_tol=1e-3) if p.rule in ("macro", "sso") and p.manifolds else None


def off_manifold(man: Any, W: np.ndarray, step: int, param: str = "") -> Measurement | None:
    """A failing measurement when the target's iterate ``W`` (the start of step ``step``) lies
    farther from ``man`` than its point tolerance, else None (``man`` None: no check; sso's
    iterates are legitimately off the sphere, it retracts before the step). The expected step of
    a step-then-retract rule (macro) is only defined on the manifold (the reference would raise
    OffManifoldError): an iterate that left it is the target's defect, reported as a FAIL naming
    the step and the figure."""
    if man is None:
        return None
    v = float(np.max(man.violation(W))) if np.all(np.isfinite(W)) else float("inf")
    if v <= man.point_tol:
        return None
    tol = Tolerance(man.point_tol, f"point tolerance of {man!r} (iterates held in fp32/bf16)",
                    "CLAIMS X-2, V-5 (feasibility): the rule keeps W_t on the manifold")
    where = f"step {step}" + (f", parameter {param}" if param else "")
    return Measurement(f"c_M(W) at the start of {where} (the iterate left the manifold)", v, tol, False,
                       {"worst": {"step": step, "param": param, "shape": list(W.shape), "violation": v},
                        "left_manifold_at_step": step})


def can_replay(ctx: Context, seeded_exact_input: bool = False) -> bool:
    """Whether the target's own orthogonaliser can stand in for the declared map in the expected step.

    A stochastic-rounding orthogonaliser draws its rounding from torch's global RNG: it replays bit
    for bit only when the RNG is seeded identically before the target's step and before the replay,
    the draws happen in the same order (one orthogonaliser call per parameter, in group order) and
    the target computes bit-identical input (``seeded_exact_input``: dyadic gradients and momenta,
    no reduction; any input difference could change a stochastic rounding, which no bound covers).
    Otherwise the declared map with its error model is used (``tolerances.step_tolerance``)."""
    p = ctx.profile
    if p.cast_point == "stochastic_rounding" and not seeded_exact_input:
        return False
    return ("msign" in ctx.adapter.capabilities and p.schedule is not None
            and p.rule in ("muon", "macro", "muonh", "sso"))


def power_note(ctx: Context, replay: bool) -> dict[str, str]:
    """``{"reduced_power": why}`` when a step check could not replay the target's orthogonaliser (so
    its bound is the orthogonaliser's forward-error model and rule defects smaller than that — a
    10 % step, a missing Nesterov term in bf16 — can pass), else {}. Shown in the JSON and the
    console (issue 12 item 1: say when a check runs at reduced power, and how to restore it)."""
    if replay:
        return {}
    p = ctx.profile
    if "msign" not in ctx.adapter.capabilities:
        why = ("the target declares no 'msign' capability: the expected step is the declared map and the "
               "bound is the orthogonaliser's error model, which in bf16 can exceed the step itself (a "
               "direction or step-size error below it passes these checks); declare msign (the "
               "orthogonaliser the optimizer uses) for the bit replay")
    elif p.cast_point == "stochastic_rounding":
        why = ("stochastic rounding on an input the target computes with rounding: no seeded replay is "
               "possible, the bound is the orthogonaliser's error model")
    else:
        why = "the profile's rule or schedule admits no replay: the bound is the orthogonaliser's error model"
    if p.rule in ("muon", "macro", "muonh") and p.has_ns:
        why += ("; optimizer.rule.update_norm restores part of the power (the step's Frobenius norm against a "
                "probabilistic rounding model: a 10 % step or an inverted shape scale fails; in bf16 it resolves "
                "the step size to about 1 %, audit 5) and optimizer.rule.equivariance the position-dependent "
                "ones (a sign flip on fixed entries); optimizer.rule.gradient_scale, run.* and the feasibility "
                "checks are exact or rounding-tight with or without msign")
    return {"reduced_power": why}


def exact_rule_input(p: Any) -> bool:
    """The rule computes the orthogonaliser's input exactly from dyadic gradients and momenta 3/4,
    1/2 (no division, no reduction): the combined EMA/accumulate forms of
    ``expected.reference_momentum_form``, no momentum, or HeavyBall's U = G + M_t."""
    return (E.reference_momentum_form(p) is not None or p.momentum_form == "none"
            or (p.momentum_form == "ema" and p.nesterov_form == "grad_plus_ema"))


def replay_orth(ctx: Context, dt: str) -> Orth:
    """The target's own orthogonaliser on a float64 input held in the parameter dtype ``dt``."""
    def orth(X: np.ndarray) -> np.ndarray:
        return to_numpy(as_output(call(ctx, "msign", tensor(X, dt))))
    return orth


def return_roundoff(p: Any, dt: str) -> float:
    """u of the orthogonaliser's declared return dtype when the profile declares that the update
    s·O is formed in it (``update_dtype='return'``, e.g. KJ's bf16 ``update *= scale``) and it is
    coarser than the parameter dtype, else 0."""
    if p.update_dtype != "return":
        return 0.0
    rdt = E.return_dtype_for(p, dt)
    ur = T.unit_roundoff(rdt) if rdt in T.UNIT_ROUNDOFF else 0.0
    return ur if ur > T.unit_roundoff(dt) else 0.0


def input_term(ctx: Context, U: np.ndarray, X: np.ndarray, dt: str, scale: float,
               exact_input: bool = False) -> tuple[float, str, int]:
    """(bound, formula, #ambiguous casts): what the difference between the target's computation of
    the orthogonaliser's input X and ours can do to ``scale``·O, in Frobenius norm.

    Cast to a lower compute dtype: the target computes X in the parameter dtype (momentum and
    Nesterov blend: 2 roundings; a projection adds a reduction), so its entries agree with ours to
    2·(2 + rd·⌈log₂mn⌉)·u·(|U| + |U − X|), entry by entry (a projection that cancels most of an
    entry of U leaves that entry's rounding relative to |U|, not to |X|); an entry that close to a
    rounding midpoint of the cast may round the other way (``tolerances.cast_ambiguity``). The
    target's cast input is then ours with some of those entries one ulp over: with at most
    ``FLIP_REPLAY`` of them, every such input is replayed through the target's own orthogonaliser
    (deterministic: its output on that input is what the target computes) and the largest change
    of O is the term (plus ``reorder_term``); with more, the two orthogonaliser runs may round
    differently throughout: proj·2·√k·(orthogonaliser bound). No cast: the input difference
    passes through the exact map with its trajectory gain G over the normaliser ‖X‖_F.
    ``exact_input``: dyadic gradients and momenta, no reduction: X is computed exactly."""
    p = ctx.profile
    m, n = X.shape[-2:]
    k = min(m, n)
    rd = RULE_BUDGET[p.rule][1][0]
    L = float(np.ceil(np.log2(max(m * n, 2))))
    u = T.unit_roundoff(dt)
    proj = 2.0 if p.rule == "macro" else 1.0
    if exact_input and rd == 0:
        return 0.0, "", 0
    # X = U − c·W (projection) carries the rounding of c·W relative to X; sso's X = M̂ + λΘ is O(1)
    # in every term (M̂ normalised, |λ|·Θ ≤ ‖X‖ near the root)
    if p.rule == "sso":
        rel_in: float | np.ndarray = (2.0 + rd * L) * u * 2.0
    else:  # per entry: (|U| + |U − X|)/|X| (an exactly zero entry of X is cast exactly)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_in = (2.0 + rd * L) * u * np.where(X != 0, (np.abs(U) + np.abs(U - X)) / np.abs(X), 0.0)
            if p.prenormalize:  # U/max(‖U‖_F, 1e-8) in dt: the norm's reduction, the square root, the division
                rel_in = rel_in + (L + 2.0) * u * np.where(X != 0, np.abs(U) / np.abs(X), 0.0)
    if p.rule == "sso" and p.theta_source != "exact" and p.schedule is not None:
        # sso with a top pair Θ the profile does not declare exact: the target's Θ (e.g. SSO's
        # 10-step power iteration, σ₂/σ₁ ≈ 0.6 on a trained matrix) differs from the harness's exact
        # one by more than rounding, and every later bisection decision with it (measured: ‖ΔΦ‖_F ≈
        # 4e-3 on the full-mode transformer): proj·2·√k·(orthogonaliser bound), as after an
        # ambiguous cast. With the exact Θ declared, the measured model below plus step_bound's λ
        # term (the root moves by the orthogonaliser's noise over h′) apply. Before the cast branch:
        # a bf16-compute target with an undeclared Θ is covered by this model, not by the cast's.
        o = T.orth_tolerance(p, X, E.orthogonalise(p, X, dt), dt)
        return (scale * proj * 2.0 * o.bound * np.sqrt(k),
                f" + lr·s·{proj:g}·2·√k·[{o.formula}] (sso: Θ not declared exact)", 0)
    if E.compute_dtype_for(p, dt) != dt:
        ntc = p.cast_point == "normalise_then_cast" and p.has_ns
        if ntc:
            # the cast rounds X/(s·N_ε(‖X‖_F)) as the target computed it in dt: its entries also
            # carry the norm's reduction (⌈log₂mn⌉·u), the product s·N and the division
            amb = T.cast_ambiguity(E.normalised_input(p, X), E.compute_dtype_for(p, dt),
                                   2.0 * (rel_in + (L + 2.0) * u))
        else:
            amb = T.cast_ambiguity(X, E.compute_dtype_for(p, dt), 2.0 * rel_in)
        n_amb = int(np.count_nonzero(amb))
        if not n_amb:
            return reorder_term(ctx, X, dt, scale * proj)
        # replayable (cast of X itself): each ambiguous entry has two candidates, fl(X) and the
        # neighbour across the midpoint (an uncertainty of half an ulp or more could reach further)
        if (n_amb <= FLIP_REPLAY and not ntc
                and bool(np.all(2.0 * rel_in * np.abs(X) < 0.5 * amb, where=amb > 0))):
            return flip_term(ctx, X, amb, dt, scale * proj)
        o = T.orth_tolerance(p, X, E.orthogonalise(p, X, dt), dt)
        return (scale * proj * 2.0 * o.bound * np.sqrt(k),
                f" + lr·s·{proj:g}·2·√k·[{o.formula}] ({n_amb} ambiguous casts)", n_amb)
    if p.schedule is None:
        return 0.0, "", 0
    # no cast: the target computes X in the parameter dtype and its orthogonaliser, run on X + δ,
    # rounds differently inside the iteration than the replay on fl(X). Measured on the target's own
    # orthogonaliser rather than bounded by twice its worst-case forward error (10²× what a correct
    # fp32 step shows): e_i = O_t(X + δ_i) − O_t(X) for N_INPUT draws δ_i of the probabilistic
    # rounding model of the input (Higham & Mary 2019; per-op sd ROUND_SD·u/√3, T.ROUND_SD):
    # entrywise Gaussian with variance (ROUND_SD·u/√3)²·(2U² + rd·(U − X)² + (1 + rd)·X²) (momentum
    # and Nesterov blend: 2 roundings of U; a projection's product c·W and subtraction; the target's
    # and the replay's last rounding of X) plus, for a projection, a common relative error
    # g·⌈log₂mn⌉·u of its normal part U − X (the reduction's error, at its worst-case size as sd).
    # The linear response and the changed internal roundings both show in e_i; ‖e‖² is modelled as a
    # scaled chi-square with d effective degrees of freedom (Satterthwaite 1946: a Gaussian vector
    # spread over d directions), d = 2·mean²/var of the ‖e_i‖² (the variance at its 99.9 % upper
    # chi-square confidence, N − 1 dof; d ≥ 1, the rank-one worst case), the mean at its 99.9 % upper
    # confidence with N·d dof, and ‖e‖ ≤ ν = √(mean_up·χ²_d(1 − p)/d) with p = 5.7e-7 (the two-sided
    # 5σ Gaussian tail, PROB_LAMBDA; d = 1 gives λ·rms). (sso: X = M̂ + λΘ, the terms M̂ = U/‖U‖ and
    # λΘ = X − M̂ in place of U and U − X)
    base = U / max(float(np.linalg.norm(U)), 1e-8) if p.rule == "sso" else U
    sd = T.ROUND_SD * u / np.sqrt(3.0) * np.sqrt(2.0 * base**2 + rd * (base - X) ** 2 + (1.0 + rd) * X**2)
    orth = replay_orth(ctx, dt)
    o0 = orth(X)
    srng = case_rng("input", X)
    e2 = [float(np.linalg.norm(orth(X + sd * srng.standard_normal(X.shape)
                                    + rd * L * u * srng.standard_normal() * (base - X)) - o0)) ** 2
          for _ in range(N_INPUT)]
    nu, d = chi2_prediction(np.asarray(e2))
    return (scale * proj * nu,
            f" + lr·s·{proj:g}·ν (ν = {nu:.2e}: 1 − 5.7e-7 prediction bound of the target's orthogonaliser's response to "
            f"the input's rounding model, {N_INPUT} draws, d = {d:.3g} effective dof)", 0)


#: at most this many ambiguous casts are replayed (2^k − 1 inputs) by :func:`flip_term`
FLIP_REPLAY = 4


def flip_term(ctx: Context, X: np.ndarray, amb: np.ndarray, dt: str, scale: float) -> tuple[float, str, int]:
    """(bound, formula, #ambiguous casts) for a cast input whose ``amb`` entries (the one-ulp flip
    size, ``tolerances.cast_ambiguity``; at most ``FLIP_REPLAY`` of them) may round the other way
    in the target: every nonempty subset of them flipped is replayed through the target's own
    orthogonaliser, and 2·``scale``·max‖O(flipped) − O‖_F plus :func:`reorder_term` bounds what the
    target's rounding of the cast can change. Its orthogonaliser is a deterministic function of
    its input and the flips are the only inputs it can have besides ours, so the maximum alone is
    attained when the target takes the worst flip (torch.optim.Muon's transformer step measured
    at 1.00 of it); the factor 2 covers the step running the orthogonaliser in another layout or
    batch than the replay (bf16 GEMMs measured bit-identical across those, not guaranteed)."""
    cd = E.compute_dtype_for(ctx.profile, dt)
    Xc = E.round_to(X, cd)
    orth = replay_orth(ctx, dt)
    o0 = orth(Xc)
    idx = list(zip(*np.nonzero(amb)))
    # the other neighbour of fl(X), across the midpoint X lies near (X ≠ fl(X): an exactly
    # representable X is half an ulp from any midpoint, and the caller replays only smaller
    # uncertainties)
    step = {i: float(np.sign(X[i] - Xc[i])) * float(amb[i]) for i in idx}
    worst = 0.0
    for r in range(1, len(idx) + 1):
        for sub in itertools.combinations(idx, r):
            Xa = Xc.copy()
            for i in sub:
                Xa[i] += step[i]
            worst = max(worst, float(np.linalg.norm(orth(Xa) - o0)))
    b0, f0, _ = reorder_term(ctx, X, dt, scale)
    return (2.0 * scale * worst + b0, f" + 2·lr·s·proj·max‖O(flips) − O‖_F ({len(idx)} ambiguous casts, every "
                                f"combination replayed on the target's orthogonaliser: {worst:.2e}){f0}", len(idx))


def reorder_term(ctx: Context, X: np.ndarray, dt: str, scale: float) -> tuple[float, str, int]:
    """(bound, formula, 0): the target's orthogonaliser and the replay see the same input in the
    compute dtype but may sum in another order inside (a bucket of matrices in one batched GEMM,
    whose blocking differs from one matrix's: measured on CPU fp32 ``baddbmm`` at 128×128, batch 8
    against batch 1, a relative difference of 2e-7). A compute dtype that accumulates in a wider
    dtype and rounds each output once (bf16/fp16 with float32 accumulation) gives the same output
    for every order except for entries within ~n·u_acc of a rounding midpoint, taken as negligible
    (bf16 ``bmm``/``baddbmm`` at batch 8 and 1 and ``mm``: bit-identical at 4×6…256×512): 0. Otherwise
    (fp32/fp64 compute) each of the K steps' products may round differently at u_c: each such
    perturbation is modelled by one of the compute input's rounding size, whose response ν (the
    target's orthogonaliser on N_INPUT draws of sd ROUND_SD·u_c/√3·|X|, ``chi2_prediction``) passes
    through all K steps, an upper bound for a later step's; independent across steps: √K·ν."""
    from ..tolerances import UNIT_ROUNDOFF

    p = ctx.profile
    cd = E.compute_dtype_for(p, dt)
    if cd in ("bfloat16", "float16") or p.schedule is None or cd not in UNIT_ROUNDOFF:
        return 0.0, "", 0
    K = len(p.ns_schedule().coefficients_for(p.steps))
    uc = T.unit_roundoff(cd)
    Xc = E.round_to(X, cd)
    orth = replay_orth(ctx, dt)
    o0 = orth(Xc)
    srng = case_rng("reorder", X)
    sd = T.ROUND_SD * uc / np.sqrt(3.0) * np.abs(Xc)
    e2 = np.array([float(np.linalg.norm(orth(E.round_to(Xc + sd * srng.standard_normal(X.shape), cd)) - o0)) ** 2
                   for _ in range(N_INPUT)])
    nu, d = chi2_prediction(e2)
    b = scale * np.sqrt(K) * nu
    return (b, f" + lr·s·proj·√K·ν (ν = {nu:.2e}: response of the target's orthogonaliser to a {cd} rounding of its "
               f"input, {N_INPUT} draws, d = {d:.3g}; K = {K} steps may each sum in another order)", 0)


def case_rng(tag: str, X: np.ndarray) -> np.random.Generator:
    """The random stream of a measured model term for input ``X``: seeded from ``tag``, X's shape
    and the bits of Σ|X| through numpy's SeedSequence, the same in every process (Python's
    ``hash`` of a string is salted per process, so a bound seeded from it changed from run to run)."""
    key = np.frombuffer(np.float64(np.sum(np.abs(X))).tobytes(), dtype=np.uint32)
    return np.random.default_rng([zlib.crc32(tag.encode()), *X.shape, *map(int, key)])


def chi2_prediction(e2: np.ndarray) -> tuple[float, float]:
    """(ν, d): bound on √(a new draw) of a scaled chi-square variable from samples ``e2`` of it
    (``input_term``: Satterthwaite's effective dof d from the samples' variance at its 99.9 %
    confidence, the mean at its 99.9 % confidence, the 1 − 5.7e-7 quantile)."""
    from scipy.stats import chi2, norm


    n = e2.size
    m = float(np.mean(e2))
    if m == 0.0:
        return 0.0, float("inf")
    v = float(np.var(e2, ddof=1)) * T.sd_confidence_factor(n) ** 2
    d = max(1.0, 2.0 * m * m / v) if v > 0 else 1e6
    m_up = m * n * d / float(chi2.ppf(0.001, n * d))
    q = float(chi2.isf(2.0 * norm.sf(T.PROB_LAMBDA), d)) / d
    return float(np.sqrt(m_up * q)), d


def step_bound(ctx: Context, W: np.ndarray, Wexp: np.ndarray, U: np.ndarray, X: np.ndarray, dt: str,
               lr: float, replay: bool, exact_input: bool = False) -> tuple[Tolerance, int]:
    """Bound on ‖W_target − W_expected‖_F after one step from the same W (teacher forcing).

    Replay: the rounding budget ``RULE_BUDGET`` in the parameter dtype; if an entry of the
    orthogonaliser's input may round differently in the target (``tolerances.cast_ambiguity``:
    the rule computes that input with reductions), plus lr·s·proj·2·√k·(orthogonaliser bound),
    the two runs' internal roundings being then unrelated; ``exact_input``: the target computes X
    exactly (dyadic gradients and momenta, no reduction), so no entry is ambiguous. Without replay:
    ``tolerances.step_tolerance`` (spectral; ×√k for the Frobenius figure)."""
    p = ctx.profile
    m, n = W.shape[-2:]
    k = min(m, n)
    if not replay:
        t = T.step_tolerance(p, W, X, dt, lr)  # X: the orthogonaliser's own input (its κ sets the bound)
        b, formula = t.bound * np.sqrt(k), f"√k·[{t.formula}]"
        if p.rule == "sso":
            # λ is a root found to |h| ≤ τ = 1e-8 (SSO's code and reference.optim.SSO), with h seen
            # through the target's orthogonaliser (|h_target − h| ≤ ‖E‖₂, E its error): Φ moves by
            # (τ + ‖E‖₂)·‖dΦ/dλ‖_F/|h′(λ*)| (first order; derivatives by central differences of the
            # declared map)
            o = T.orth_tolerance(p, X, E.orthogonalise(p, X, dt), dt)
            ratio = _sso_sensitivity(p, W, X, dt)
            s = p.scale * E.shape_scale(p, W.shape)
            b += lr * s * (1e-8 + o.bound) * ratio
            formula += f" + lr·s·(1e-8 + [{o.formula}])·‖dΦ/dλ‖_F/|h′| (= {ratio:.3g}; the λ solve)"
        return Tolerance(float(b), formula, t.provenance, dt), 0
    (aw, ad, an), (rd, rn) = RULE_BUDGET[p.rule]
    nw, nd, nn = (float(np.linalg.norm(W)), float(np.linalg.norm(Wexp - W)), float(np.linalg.norm(Wexp)))
    u = T.unit_roundoff(dt)
    L = float(np.ceil(np.log2(max(m * n, 2))))
    ur = return_roundoff(p, dt)
    b = (u + ur) * ad * nd + u * (aw * nw + an * nn) + L * u * (rd * nd + rn * nn)
    formula = (f"u·({aw:g}‖W‖ + {ad:g}‖ΔW‖ + {an:g}‖W⁺‖) + ⌈log₂mn⌉·u·({rd:g}‖ΔW‖ + {rn:g}‖W⁺‖)"
               + (f" + {ad:g}·u_ret·‖ΔW‖ (the update formed in the return dtype, u_ret={ur:.3e})" if ur else "")
               + f", u={u:.3e}, ‖W‖={nw:.3g}, ‖ΔW‖={nd:.3g}")
    if p.rule == "macro":
        fb, ff = frame_rounding(manifold_of(ctx), W, u, nd, nn)
        b += fb
        formula += ff
    if p.rule == "macro" and not ur and p.manifolds and p.manifolds[0].canonical_kind == "frobenius_sphere":
        # the Frobenius MACRO step as one probabilistic rounding model, eager or fused form
        # (tolerances.macro_frobenius_step_rounding) in place of the worst-case budget, the target's
        # O replayed; R = ‖W⁺‖ of the expected step
        a = lr * p.scale * E.shape_scale(p, W.shape)
        tm = T.macro_frobenius_step_rounding(dt, W, replay_orth(ctx, dt)(X), a, nn)
        b, formula = tm.bound, f"{tm.formula}, ‖W‖={nw:.3g}, ‖ΔW‖={nd:.3g}"
    if p.rule == "muonh" and not ur:
        # the whole MuonH step as one probabilistic rounding model (tolerances.muonh_step_rounding)
        # in place of the worst-case budget, the target's O replayed; the decay factor is
        # ‖W⁺‖/‖W‖ of the expected step (MuonH keeps the decayed radius)
        decay = nn / max(nw, 1e-300)
        tm = T.muonh_step_rounding(dt, W, replay_orth(ctx, dt)(X), lr, 1.0 if abs(decay - 1.0) < 1e-12 else decay)
        b, formula = tm.bound, f"{tm.formula}, ‖W‖={nw:.3g}, ‖ΔW‖={nd:.3g}"
    # muonh steps by lr·(r/q)·O, q = ‖O‖_F ≥ 0.6·√k (the schedules' band keeps every retained
    # singular value ≥ 0.6): s ≤ ‖W‖_F/(0.6·√k)
    s = p.scale * E.shape_scale(p, W.shape) if p.rule != "muonh" else nw / (0.6 * np.sqrt(k))
    extra, fextra, n_amb = input_term(ctx, U, X, dt, lr * s, exact_input)
    b += extra
    formula += fextra
    if p.rule == "sso" and E.compute_dtype_for(p, dt) != dt:
        # cast to a lower compute dtype: h_t is constant between changes of the input's cast, and the
        # replayed bisection (``E.sso_input`` with O_t) evaluates it on the same cast inputs, so it
        # takes the target's decisions and lands on its λ_t (the declared bisection in float64 scalar
        # arithmetic; an input entry at a rounding midpoint is input_term's ambiguous cast). The first-
        # order λ term below does not describe a step function (audit 4: a bisection ending elsewhere
        # differs by the whole orthogonaliser's noise) and would only hide defects: none is added.
        formula += " (λ: the target's bisection replayed on its cast input)"
    elif p.rule == "sso":
        # the target solves λ on h_t(λ) = ⟨Θ, O_t(M̂ + λΘ)⟩ (its orthogonaliser O_t) to |h_t| ≤ τ = 1e-8
        # (SSO's code; reference.optim.SSO), the harness replays O_t at the root of the same bisection
        # on the replayed O_t (``E.sso_input``; λ_t itself when both take the same decisions; a noisy
        # fp32 h_t and other λ arithmetic may decide otherwise: both roots satisfy |h(λ)| ≤ τ + ν with
        # ν = max|h_t − h| measured on 5 points around the root (×3)), so Φ moves by
        # lr·s·√2·(τ + 3ν)·‖dΦ/dλ‖_F/|h′(λ*)| (first order)
        ratio = _sso_sensitivity(p, W, X, dt)
        nu = sso_noise(ctx, p, W, X, dt)
        b += lr * s * np.sqrt(2.0) * (1e-8 + 3.0 * nu) * ratio
        formula += f" + lr·s·√2·(1e-8 + 3ν)·‖dΦ/dλ‖_F/|h′| (ν = {nu:.2e}, ratio {ratio:.3g}; the λ solve)"
    return Tolerance(float(b), formula, "conformance.checks.rules replay model (rounding of the rule in the "
                     "parameter dtype; the target's orthogonaliser replayed)", dt), n_amb


def frame_rounding(man: Any, W: np.ndarray, u: float, nd: float, nn: float) -> tuple[float, str]:
    """What a MACRO step on a manifold whose geometry is not norm-based adds to ``RULE_BUDGET``
    (which models the Frobenius sphere's and the oblique manifold's norms): (bound, formula).

    Spectral sphere: the retraction rescales by σ̂₁ (``tolerances.retraction_roundoff``, in place
    of the norm's ⌈log₂mn⌉/2·u and 3u already budgeted), and the tangent projection uses the
    computed top pair (u₁, v₁), whose angle to the exact pair is ≤ p(m, n)·u·σ₁/(σ₁ − σ₂)
    (a backward-stable SVD, p = mn as in ``retraction_roundoff``; Davis–Kahan), moving P(D) by
    ≤ 2·angle·‖D‖_F.
    Stiefel: the polar/QR retraction (``retraction_roundoff``) and P(D) = D − T·sym(TᵀD), an m-term
    and a k-term product of |T| (‖|T|‖₂ ≤ ‖T‖_F = √k·scale) with |D|: ≤ (m + k)·u·k·‖D‖_F."""
    from manifold_oracle.reference import SpectralSphere, Stiefel

    if not isinstance(man, (SpectralSphere, Stiefel)):
        return 0.0, ""
    m, n = W.shape[-2:]
    L = float(np.ceil(np.log2(max(m * n, 2))))
    rho, frho = T.retraction_roundoff(man, W.shape, u)
    radial = max(rho - (3.0 + L / 2.0) * u, 0.0) * nn
    if isinstance(man, SpectralSphere):
        sv = np.linalg.svd(W, compute_uv=False)
        gap = max(float(sv[0] - (sv[1] if sv.size > 1 else 0.0)), float(sv[0]) * 1e-12)
        proj = 2.0 * m * n * u * float(sv[0]) / gap * nd
        fp = f"2·mn·u·σ₁/(σ₁ − σ₂)·‖ΔW‖ (σ₁/gap = {float(sv[0]) / gap:.3g})"
    else:
        k = min(m, n)
        proj = (max(m, n) + k) * u * k * nd
        fp = "(m + k)·u·k·‖ΔW‖ (the projection's products)"
    return radial + proj, f" + [{frho}]·‖W⁺‖ in place of the norm's budget + {fp}"


def theta_of(W: np.ndarray) -> np.ndarray:
    """Θ = u₁v₁ᵀ of W (float64, ``reference.linalg.top_singular_triplet``)."""
    t = top_singular_triplet(W)
    return np.outer(t.u, t.v)


def sso_noise(ctx: Context, p: Any, W: np.ndarray, X: np.ndarray, dt: str) -> float:
    """max |⟨Θ, O_t(X + δΘ) − map(X + δΘ)⟩| over δ ∈ {0, ±1e-3, ±1e-2}·‖X‖_F: the target
    orthogonaliser's error as seen by h near the root."""
    Th = theta_of(W)
    orth = replay_orth(ctx, dt)
    nx = float(np.linalg.norm(X))
    return max(abs(float(np.sum(Th * (orth(Z) - E.orthogonalise(p, Z, dt)))))
               for Z in (X + d * nx * Th for d in (0.0, 1e-3, -1e-3, 1e-2, -1e-2)))


def _sso_sensitivity(p: Any, W: np.ndarray, X: np.ndarray, dt: str) -> float:
    """‖dΦ/dλ‖_F / |dh/dλ| at the declared root (X = M̂ + λ*Θ), Θ = u₁v₁ᵀ of the retracted W:
    central differences of the declared map WITHOUT its input cast (computed in float64; ``dt``
    unused): the cast to a bf16 compute dtype rounds the ±1e-6·‖X‖ probe away (dΦ = 0, ratio 0,
    and the λ-solve terms vanished), and the derivative is a property of the exact map anyway."""
    Th = theta_of(W)
    q = p.with_options(compute_dtype="float64")
    d = 1e-6 * max(float(np.linalg.norm(X)), 1e-300)
    Pp, Pm = E.orthogonalise(q, X + d * Th, "float64"), E.orthogonalise(q, X - d * Th, "float64")
    dPhi = (Pp - Pm) / (2 * d)
    dh = float(np.sum(Th * dPhi))
    return float(np.linalg.norm(dPhi)) / max(abs(dh), 1e-12)


def hyper(ctx: Context, lr: float, beta: float, wd: float) -> dict[str, Any]:
    """Constructor/group hyperparameters (weight decay only where the profile couples one)."""
    wd = wd if ctx.profile.weight_decay_coupling != "none" else 0.0
    return {"lr": lr, "momentum": beta, "weight_decay": wd}


# ----------------------------------------------------------------------------------- scenarios
def _scenario_cases(ctx: Context, salt: str, steps: int, groups: int) -> list[Case]:
    rng = ctx.rng(salt)
    dts = case_dtypes(ctx)
    shapes = shapes_for(ctx)
    out: list[Case] = []
    pairs = ([(s, s) for s in shapes] if groups == 1
             else [(shapes[i], shapes[(i + 1) % len(shapes)]) for i in range(0, len(shapes), 2)])
    if not ctx.full:
        pairs = pairs[: (len(pairs) if groups == 1 else 2)]
    for dt in dts:
        for sa, sb in pairs:
            arrays: dict[str, np.ndarray] = {}
            # group A: two parameters of one shape; group B: one parameter (groups == 2)
            specs = [("a0", sa), ("a1", sa)] + ([("b0", sb)] if groups == 2 else [])
            for name, shp in specs:
                arrays[f"W_{name}"] = start_point(ctx, rng, shp)
                arrays[f"G_{name}"] = np.stack([dyadic(rng, shp) for _ in range(steps)])
            label = f"shape {sa}" + (f" + group B {sb}" if groups == 2 else " ×2 params") + f", {dt}, {steps} step(s)"
            out.append(Case(label, arrays, {"dtype": dt, "steps": steps, "groups": groups}))
        # MACRO on a sphere-type manifold from weights at half the radius (an un-normalised start):
        # on the manifold ⟨G, w⟩/‖w‖² and ⟨G, w⟩/‖w‖ (or /R²) agree, off it only the spec's
        # projector (MATH §4.3, §4.5) gives the declared step (expected.macro_point); a target that
        # moves its weights onto the manifold at construction makes this an on-manifold case
        if groups == 1 and ctx.profile.rule == "macro" and E.scale_free(ctx.profile):
            shp = pairs[0][0]
            arrays = {}
            for name in ("a0", "a1"):
                arrays[f"W_{name}"] = 0.5 * start_point(ctx, rng, shp)
                arrays[f"G_{name}"] = np.stack([dyadic(rng, shp) for _ in range(steps)])
            out.append(Case(f"shape {shp} ×2 params, {dt}, {steps} step(s), start ×0.5 off the manifold", arrays,
                            {"dtype": dt, "steps": steps, "groups": groups, "off_start": True}))
        if groups == 1 and steps == 1:
            out += sso_gap_cases(ctx, rng, shapes, dt, steps)
        # one group holding a matrix and its transposed shape (same numel): an implementation that
        # batches the parameters of a group by numel (views one as the other's shape) fails here
        mixed = next((s for s in shapes if s[0] != s[1] and (s[1], s[0]) in shapes), None)
        if groups == 1 and mixed is not None:
            arrays = {}
            for name, shp in (("a0", mixed), ("a1", (mixed[1], mixed[0]))):
                arrays[f"W_{name}"] = start_point(ctx, rng, shp)
                arrays[f"G_{name}"] = np.stack([dyadic(rng, shp) for _ in range(steps)])
            out.append(Case(f"shapes {mixed} + {(mixed[1], mixed[0])} in one group, {dt}, {steps} step(s)",
                            arrays, {"dtype": dt, "steps": steps, "groups": groups}))
    return out


def schedule(ctx: Context, t: int, groups: int) -> list[dict[str, Any]]:
    """Per-group hyperparameters at step t (1-based), changed between steps as a scheduler does:
    group A halves its lr after step 2; group B switches momentum 1/2 → 3/4 after step 1."""
    a = hyper(ctx, LR_A * (0.5 if t > 2 else 1.0), BETA_A, WD_A)
    if groups == 1:
        return [a]
    return [a, hyper(ctx, LR_B, BETA_B if t <= 1 else BETA_A, WD_B)]


def _build(ctx: Context, case: Case, dt: str) -> tuple[Any, dict[str, torch.nn.Parameter], list[list[str]]]:
    names = sorted(k[2:] for k in case.arrays if k.startswith("W_"))
    prm = {n: torch.nn.Parameter(tensor(E.round_to(case.arrays[f"W_{n}"], dt), dt)) for n in names}
    groups = [[n for n in names if n.startswith("a")], [n for n in names if n.startswith("b")]]
    groups = [g for g in groups if g]
    h0 = schedule(ctx, 1, len(groups))
    pg = [{"params": [prm[n] for n in g], **ctx.adapter.group_hyper(**h0[i])} for i, g in enumerate(groups)]
    opt = call(ctx, "optimizer", pg, **h0[0])
    return opt, prm, groups


def run_scenario(ctx: Context, case: Case) -> Measurement:
    """Run the scenario's steps on the target and compare every parameter with the declared rule
    from the target's current weights (teacher forcing) and the harness's own float64 momentum."""
    p = ctx.profile
    dt = case.params["dtype"]
    opt, prm, groups = _build(ctx, case, dt)
    exact = exact_rule_input(p) and p.rule == "muon"
    replay = can_replay(ctx, seeded_exact_input=exact)
    orth = replay_orth(ctx, dt) if replay else None
    man = manifold_of(ctx)
    if case.params.get("off_start") and p.radius_source == "init":
        # radius 'init': the iterates keep the manifold through the starting weights, here half the
        # declared radius (every row and column of the start equally scaled): the case is a step on
        # a manifold of radius ≠ 1, where ⟨G, w⟩/‖w‖² and ⟨G, w⟩/‖w‖ still differ (audit 4: the
        # declared radius here failed gpu_impl's own radius='init' by 1.7e6×)
        decl = p.manifolds[0]
        man = dataclasses.replace(decl, radius=0.5 * decl.radius).reference(point_tol=1e-3)
    M: dict[str, np.ndarray | None] = {n: None for n in prm}
    worst, worst_tol, rows, amb_total, degenerate = -1.0, None, [], 0, 0
    for t in range(1, case.params["steps"] + 1):
        hyp = schedule(ctx, t, len(groups))
        for gi, g in enumerate(opt.param_groups[: len(groups)]):
            g.update(ctx.adapter.group_hyper(**hyp[gi]))
        Wcur = {n: to_numpy(x.data) for n, x in prm.items()}
        for n in ([] if t == 1 and case.params.get("off_start") else prm):  # that case starts off on purpose
            off = off_manifold(man if p.rule == "macro" else None, Wcur[n], t, n)  # sso: retract-then-step
            if off is not None:
                return off
        for n, x in prm.items():
            x.grad = tensor(case.arrays[f"G_{n}"][t - 1], dt)
        # the same RNG state before the target's step and before the replay (stochastic rounding
        # draws once per parameter, in group order, as the replay below does)
        torch.manual_seed(ctx.seed * 1000 + t)
        opt.step()
        torch.manual_seed(ctx.seed * 1000 + t)
        for gi, names in enumerate(groups):
            h = hyp[gi]
            for n in names:
                G = E.round_to(case.arrays[f"G_{n}"][t - 1], dt)
                Mt, U = E.momentum_step(p, M[n], G, h["momentum"], t)
                # the orthogonaliser's input (sso: M̂ + λΘ at the declared λ; its conditioning sets
                # the bound: at a jump of h(λ) the tangent LMO is ill-conditioned)
                lam = None
                if p.rule == "sso":
                    X, lam = E.sso_input(p, Wcur[n], U, manifold=man, orth=orth)  # λ: the target's bisection replayed
                else:
                    X = E.orth_input(p, Wcur[n], U, manifold=man)
                if p.rule == "sso" and E.sso_degenerate(X):
                    degenerate += 1
                    M[n] = Mt  # the momentum still follows the declared recurrence
                    continue
                Wexp, M[n] = E.step(p, Wcur[n], G, M[n], lr=h["lr"], weight_decay=h["weight_decay"], t=t,
                                    beta=h["momentum"], input_dtype=dt, manifold=man, orth=orth, lam=lam)
                got = to_numpy(prm[n].data)
                err = float(np.linalg.norm(got - Wexp)) if np.all(np.isfinite(got)) else float("inf")
                tol, n_amb = step_bound(ctx, Wcur[n], Wexp, U, X, dt, h["lr"], replay, exact_input=exact)
                amb_total += n_amb
                sv = np.linalg.svd(X, compute_uv=False)
                kap = float(sv[0] / sv[-1]) if sv.size and sv[-1] > 0 else float("inf")
                rows.append({"step": t, "param": n, "shape": list(Wcur[n].shape), "dtype": dt, "group": gi,
                             "lr": h["lr"], "momentum": h["momentum"], "kappa_input": kap,
                             "error": err, "bound": tol.bound})
                if worst_tol is None or err / tol.bound > worst / worst_tol.bound:
                    worst, worst_tol = err, tol
    if worst_tol is None:
        raise NotApplicable("every step hit a degenerate SSO root (M̂ + λ*Θ singular: set-valued LMO)")
    w = max(rows, key=lambda r: r["error"] / r["bound"])
    return Measurement("‖W_t − W_t*‖_F (worst parameter and step)", worst, worst_tol, worst <= worst_tol.bound,
                       {"replay": replay, "worst": w, "ambiguous_casts": amb_total, "degenerate_sso_roots": degenerate,
                        "per_step": rows[-6:], **power_note(ctx, replay)})


@register("optimizer.rule.step", "optimizer",
          "One step of every parameter (two of one shape in one group; shapes 1×n, n×1, square, tall, "
          "wide, a side ≥ 64, ≥ 256 in full mode) equals the declared rule with the target's own "
          "orthogonaliser replayed, within the parameter dtype's rounding (weight decay 1/8 where "
          "coupled).", requires={"optimizer"}, cases=lambda c: _scenario_cases(c, "rule.one", 1, 1),
          applies=_rule_applies,
          catches=("step 10 % too large", "sign flips on some entries", "inverted shape scale",
                   "weight decay after the update or coupled as L2", "missing Nesterov term",
                   "a code path taken only for 1-row matrices or a side ≥ 64"))
def rule_step(ctx: Context, case: Case) -> Measurement:
    return run_scenario(ctx, case)


@register("optimizer.rule.trajectory", "optimizer",
          "Four steps with two parameter groups (different lr, momentum and weight decay, changed "
          "between steps as a scheduler does; two parameters of one shape in group A) follow the "
          "declared rule per group, momentum recurrence and Nesterov form included.",
          requires={"optimizer"}, cases=lambda c: _scenario_cases(c, "rule.traj", 4, 2),
          applies=_rule_applies,
          catches=("per-group lr or momentum ignored", "scheduler changes ignored", "wrong momentum form",
                   "missing Nesterov term", "state shared between parameters of one shape"))
def rule_trajectory(ctx: Context, case: Case) -> Measurement:
    return run_scenario(ctx, case)


# ----------------------------------------------------------------------------------- self-consistency
def case_dtypes(ctx: Context) -> tuple[str, ...]:
    """The parameter dtypes a check's cases run in: every declared one in full mode, the first in quick."""
    d = tuple(ctx.profile.param_dtypes)
    return d if ctx.full else d[:1]


def _sc_cases(ctx: Context, salt: str) -> list[Case]:
    rng = ctx.rng(salt)
    dts = case_dtypes(ctx)
    shapes = ((12, 8), (64, 24), (1, 16)) if not ctx.full else ((12, 8), (64, 24), (1, 16), (16, 1), (256, 32))
    return [Case(f"shape {s}, {dt}", {"W": start_point(ctx, rng, s), "G": dyadic(rng, s)}, {"dtype": dt})
            for dt in dts for s in shapes]


def one_step(ctx: Context, W: np.ndarray, G: np.ndarray | None, dt: str, **hyper: Any) -> tuple[np.ndarray, np.ndarray]:
    """(W before the step as the target holds it, W after one step) from a fresh optimizer (torch's
    RNG seeded: a stochastic-rounding orthogonaliser repeats its rounding)."""
    torch.manual_seed(ctx.seed)
    x = torch.nn.Parameter(tensor(E.round_to(W, dt), dt))
    opt = call(ctx, "optimizer", [x], **hyper)
    W0 = to_numpy(x.data)
    x.grad = tensor(np.zeros_like(W) if G is None else G, dt)
    opt.step()
    return W0, to_numpy(x.data)


@register("optimizer.rule.lr_linearity", "optimizer",
          "The update is linear in lr: step(2·lr) − W = 2·(step(lr) − W) from the same state and "
          "gradient (weight decay included), within the parameter dtype's rounding.",
          requires={"optimizer"}, cases=lambda c: _sc_cases(c, "rule.lin"), applies=_muon_like,
          catches=("lr applied twice or squared", "lr ignored (a constant used)", "lr-dependent scaling"))
def lr_linearity(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    W, G = case.arrays["W"], case.arrays["G"]
    W0, W1 = one_step(ctx, W, G, dt, **hyper(ctx, LR_A, BETA_A, WD_A))
    _, W2 = one_step(ctx, W, G, dt, **hyper(ctx, 2 * LR_A, BETA_A, WD_A))
    d1, d2 = W1 - W0, W2 - W0
    err = float(np.linalg.norm(d2 - 2 * d1)) if np.all(np.isfinite(W2 + W1)) else float("inf")
    # W1, W2 each carry ≤ 3 roundings of size u_p·|W| (decay, update, sum): |δ(d2 − 2d1)| ≤ 3u_p·(|W2| + 2|W1|)
    u = T.unit_roundoff(dt)
    b = 3.0 * u * (float(np.linalg.norm(W2)) + 2.0 * float(np.linalg.norm(W1)))
    tol = Tolerance(b, "3·u_p·(‖W(2lr)‖_F + 2‖W(lr)‖_F)", "elementwise rounding of two steps (Higham Thm 2.2)", dt)
    return Measurement("‖Δ(2lr) − 2Δ(lr)‖_F", err, tol, err <= b,
                       {"relative": err / max(float(np.linalg.norm(d1)), 1e-300)})


#: exponents k of the gradient scalings 2^k·G tried by optimizer.rule.gradient_scale
GRADIENT_SCALES: tuple[int, ...] = (-24, -12, 12, 24)


def _gscale_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule not in ("muon", "macro", "muonh", "sso"):
        return "profile declares no msign rule"
    if p.eps_form == "+eps":
        return "the declared ‖X‖_F + ε normaliser is not homogeneous in G (ε enters at every scale)"
    return None


def _gscale_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("rule.gscale")
    p = ctx.profile
    dts = case_dtypes(ctx)
    shapes: tuple[tuple[int, ...], ...] = ((12, 8), (64, 24), (1, 16))
    if p.rule in ("macro", "sso") and p.manifolds:
        shapes = tuple(tuple(sh) for sh in p.manifolds[0].shapes)[:2]
    return [Case(f"shape {sh}, {dt}", {"W": start_point(ctx, rng, sh), "G": dyadic(rng, sh)}, {"dtype": dt})  # type: ignore[arg-type]
            for dt in dts for sh in shapes]


def gradient_scales(ctx: Context, G: np.ndarray, dt: str) -> list[int]:
    """The k of GRADIENT_SCALES at which the declared step from 2^k·G is the step from G exactly:
    ‖U‖_F ≥ 2¹⁰·ε (the clamp max(‖·‖, ε) inactive; U the first momentum, ≥ (1 − β)²·‖G‖ for
    the EMA and Nesterov forms), within the profile's promised ``scale_range``, and every entry,
    its square sum and the momentum normal in the parameter and compute dtypes."""
    p = ctx.profile
    nz = np.abs(G[G != 0])
    lo_g, hi_g, fro = float(nz.min()), float(nz.max()), float(np.linalg.norm(G))
    shrink = (1.0 - BETA_A) ** 2
    out = []
    for k in GRADIENT_SCALES:
        c = 2.0**k
        ok = fro * c * shrink >= 2.0**10 * (p.eps if p.eps_form == "clamp" else 0.0)
        if p.scale_range is not None:
            ok &= p.scale_range[0] <= fro * c <= p.scale_range[1]
        for d in {dt, E.compute_dtype_for(p, dt)}:
            fi = torch.finfo(getattr(torch, d))  # smallest normal, largest finite
            ok &= lo_g * c * shrink >= 2.0**8 * fi.tiny and (hi_g * c) ** 2 * G.size <= fi.max / 2.0**8
        if ok:
            out.append(k)
    return out


@register("optimizer.rule.gradient_scale", "optimizer",
          "One step from fresh state on G and on 2^k·G (k = ±12, ±24 where the declared ε clamp stays "
          "inactive and every value normal) gives bit-identical weights: the declared rules are "
          "homogeneous of degree 0 in G and a power-of-two scaling commutes with every rounding, so any "
          "difference is a scale-dependent term the profile does not declare (ε inside a square root, an "
          "undeclared ‖X‖ + ε, an absolute threshold).", requires={"optimizer"}, cases=_gscale_cases,
          applies=_gscale_applies, catches=("ε inside the norm's square root", "an undeclared ‖X‖_F + ε",
                                            "an absolute threshold on the gradient or momentum"))
def gradient_scale(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    W, G = case.arrays["W"], case.arrays["G"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    ks = gradient_scales(ctx, G, dt)
    if not ks:
        raise NotApplicable("no power-of-two scaling keeps the ε clamp inactive and the values normal "
                            "within the promised scale range")
    _, W1 = one_step(ctx, W, G, dt, **hyp)
    diffs = {}
    for k in ks:
        _, Wk = one_step(ctx, W, np.ldexp(G, k), dt, **hyp)
        diffs[f"2^{k}"] = float(np.max(np.abs(Wk - W1))) if np.all(np.isfinite(Wk)) else float("inf")
    worst = max(diffs.values())
    return Measurement("max |W₁(2^k·G) − W₁(G)|", worst, T.bitwise(), worst == 0.0,
                       {"per_scale": diffs, "relative": worst / max(float(np.max(np.abs(W1 - W))), 1e-300)})


def _wd_applies(ctx: Context) -> str | None:
    if ctx.profile.rule != "muon":
        return "weight-decay isolation is defined for the unconstrained rule (muon)"
    if ctx.profile.weight_decay_coupling == "none":
        return "profile declares no weight decay"
    return None


@register("optimizer.rule.weight_decay", "optimizer",
          "The weight-decay part, isolated: a zero-gradient step from zero momentum gives exactly the "
          "declared decay of W, and two steps that differ only in weight decay differ by the declared "
          "decay of W (decoupled: −lr·λ·W; adjusted: −lr·s·λ·W), within parameter rounding.",
          requires={"optimizer"}, cases=lambda c: _sc_cases(c, "rule.wd"), applies=_wd_applies,
          catches=("weight decay coupled as L2 (added to the gradient)", "weight decay applied after the update",
                   "weight decay scaled by the shape scale", "NaN from a zero gradient"))
def weight_decay(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    W, G = case.arrays["W"], case.arrays["G"]
    hyp = hyper(ctx, LR_B, BETA_A, 1.0)  # λ = 1 and lr = 1/16: the decay is 6 % of W
    W0, Wz = one_step(ctx, W, None, dt, **hyp)
    _, Wd = one_step(ctx, W, G, dt, **hyp)
    _, Wn = one_step(ctx, W, G, dt, **{**hyp, "weight_decay": 0.0})
    c = p.weight_decay_coupling
    f = E.shape_scale(p, W.shape) if c == "decoupled_adjusted_lr" else 1.0
    decay = -hyp["lr"] * hyp["weight_decay"] * f * W0
    finite = bool(np.all(np.isfinite(Wz)) and np.all(np.isfinite(Wd)) and np.all(np.isfinite(Wn)))
    e_zero = float(np.linalg.norm((Wz - W0) - decay)) if finite else float("inf")
    e_diff = float(np.linalg.norm((Wd - Wn) - decay)) if finite else float("inf")
    u = T.unit_roundoff(dt)
    nf = lambda x: float(np.linalg.norm(x))  # noqa: E731
    # W_zero = fl(fl(1 − lr·λ)·W₀): the scalar and the product, u·(‖W₀‖ + ‖W_zero‖);
    # W_wd = fl(fl(c·W₀) − fl(a·O)), W_nowd = fl(W₀ − fl(a·O)), a·O = lr·s·O ≈ W_nowd − W₀:
    # u·(2‖W₀‖ + 2‖a·O‖ + ‖W_wd‖ + ‖W_nowd‖)
    b_zero = u * (nf(W0) + nf(Wz))
    b_diff = u * (2 * nf(W0) + 2 * nf(Wn - W0) + nf(Wd) + nf(Wn))
    ratio = max(e_zero / b_zero, e_diff / b_diff) if finite else float("inf")
    tol = Tolerance(1.0, "each error ÷ its rounding bound: u·(‖W₀‖ + ‖W_zero‖) and u·(2‖W₀‖ + 2‖lr·s·O‖ + "
                    "‖W_wd‖ + ‖W_nowd‖)", "elementwise rounding (Higham Thm 2.2); CONVENTIONS §7 "
                    "weight-decay couplings", dt)
    return Measurement("max(e_zero/b_zero, e_diff/b_diff)", ratio, tol, ratio <= 1.0,
                       {"zero_gradient_error": e_zero, "difference_error": e_diff, "bound_zero": b_zero,
                        "bound_difference": b_diff, "decay_norm": nf(decay)})


def _transpose_applies(ctx: Context) -> str | None:
    if ctx.profile.rule != "muon":
        return "shape-scale ratios are checked on the unconstrained rule (muon)"
    if ctx.profile.transpose_rule not in ("tall", "wide") or ctx.profile.cast_point == "stochastic_rounding":
        return "the declared transpose rule (or a stochastic rounding) does not make O(Gᵀ) = O(G)ᵀ bit-exact"
    return None


@register("optimizer.rule.shape_scale_ratio", "optimizer",
          "For G and Gᵀ (shapes m×n and n×m, declared transpose rule tall/wide: the orthogonaliser's "
          "outputs are bit-exact transposes), the two updates are in the ratio s(m, n)/s(n, m) of "
          "the declared shape scale, within parameter rounding.",
          requires={"optimizer"}, cases=lambda c: _sc_cases(c, "rule.ratio"), applies=_transpose_applies,
          catches=("inverted shape scale", "shape scale from the wrong axis", "shape scale missing"))
def shape_scale_ratio(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    G = case.arrays["G"]
    m, n = G.shape
    if m == n:
        raise NotApplicable("square: the ratio is 1 by symmetry")
    hyp = {**hyper(ctx, LR_A, BETA_A, 0.0), "weight_decay": 0.0}
    W = case.arrays["W"]
    W0, W1 = one_step(ctx, W, G, dt, **hyp)
    V0, V1 = one_step(ctx, W.T.copy(), G.T.copy(), dt, **hyp)
    ratio = E.shape_scale(p, (m, n)) / E.shape_scale(p, (n, m))
    d, e = W1 - W0, (V1 - V0).T
    err = float(np.linalg.norm(d - ratio * e)) if np.all(np.isfinite(d + e)) else float("inf")
    u = T.unit_roundoff(dt)
    # each update is fl(W₀ − fl(fl(lr·s)·O)) − W₀: u·(‖W₁‖ + 2‖ΔW‖) (sum, product, scalar), plus
    # 2·u_ret·‖ΔW‖ when s·O is formed in a coarser declared return dtype
    ur = return_roundoff(p, dt)
    b = u * (float(np.linalg.norm(W1)) + 2 * float(np.linalg.norm(d))
             + ratio * (float(np.linalg.norm(V1)) + 2 * float(np.linalg.norm(e))))
    b += 2 * ur * (float(np.linalg.norm(d)) + ratio * float(np.linalg.norm(e)))
    tol = Tolerance(b, "u·(‖W₁‖ + 2‖Δ‖) + r·u·(‖V₁‖ + 2‖Δᵀ‖) + 2·u_ret·(‖Δ‖ + r‖Δᵀ‖)",
                    "elementwise rounding (Higham Thm 2.2); CONVENTIONS §6", dt)
    measured = float(np.sum(d * e) / max(np.sum(e * e), 1e-300))
    details: dict[str, Any] = {"declared_ratio": ratio, "measured_ratio": measured}
    if err > b and abs(measured / ratio - 1.0) < 0.01:
        details["hint"] = ("the scales agree but the two updates are not transposes: an orthogonaliser that does "
                           "not transpose to a fixed orientation (O(Gᵀ) ≠ O(G)ᵀ in floating point) must declare "
                           "transpose_rule='none', where this check does not apply")
    return Measurement("‖Δ(G) − r·Δ(Gᵀ)ᵀ‖_F", err, tol, err <= b, details)


# ------------------------------------------------------------------------ transposition (sphere rules)
#: (m, n) with m·n a perfect square: W = R/√(mn)·(random signs) is on the Frobenius sphere exactly
_SIGN_SHAPES: tuple[tuple[int, int], ...] = ((16, 4), (32, 8))


def _short_dyadic(x: float, bits: int = 8) -> bool:
    """x = k·2^e with |k| < 2^bits (its square and small sums of it are exact in fp32)."""
    if x == 0 or not np.isfinite(x):
        return False
    k = np.ldexp(np.frexp(abs(x))[0], bits)
    return bool(k == np.floor(k))


def _transpose_eq_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule == "macro":
        if not p.manifolds or p.manifolds[0].kind != "frobenius_sphere":
            return "transposition is checked for MACRO on the Frobenius sphere (oblique and Stiefel are not symmetric)"
        if not _short_dyadic(p.manifolds[0].radius / 16.0):
            return "the declared radius is not a short dyadic number: no exactly representable sign-pattern point"
    elif p.rule != "muonh":
        return "transposition of a sphere rule (macro on the Frobenius sphere, muonh); muon: optimizer.rule.shape_scale_ratio"
    if p.transpose_rule not in ("tall", "wide") or p.cast_point == "stochastic_rounding":
        return "the declared transpose rule (or a stochastic rounding) does not make O(Xᵀ) = O(X)ᵀ bit-exact"
    if p.prenormalize or (p.rule == "macro" and p.radius_source != "declared"):
        return "prenormalisation or an init radius adds reductions before the orthogonaliser"
    return None


def _transpose_eq_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("rule.transpose")
    p = ctx.profile
    dts = case_dtypes(ctx)
    R = p.manifolds[0].radius if p.rule == "macro" else 1.0
    out = []
    for dt in dts:
        for shp in _SIGN_SHAPES:
            c = R / float(np.sqrt(shp[0] * shp[1]))
            S = rng.choice((-1.0, 1.0), size=shp)
            # G ⟂ W exactly (⟨G, S⟩ = 0 by pairs of entries): the projection's coefficient ⟨U, W⟩ is
            # exactly 0 in any summation order, so X = U is dyadic and its norm exact in any order
            h, s_flat = dyadic(rng, (S.size // 2,)), S.reshape(-1)
            half = S.size // 2
            G = np.concatenate([h, -h * s_flat[:half] * s_flat[half:]]).reshape(shp)
            out.append(Case(f"shape {shp} and its transpose, {dt}", {"W": c * S, "G": G}, {"dtype": dt}))
    return out


@register("optimizer.rule.transpose", "optimizer",
          "MACRO on the Frobenius sphere and MuonH are symmetric under transposition: one step from "
          "(Wᵀ, Gᵀ) (lr scaled by s(m, n)/s(n, m)) is the transpose of the step from (W, G). W = R/√(mn)·"
          "(random signs) and a dyadic G ⟂ W make the orthogonaliser's input an exact transpose (every inner "
          "product and norm exact), so the declared tall/wide rule gives bit-exact transposed outputs and the steps "
          "differ only by the order of the later reductions (⟨O, W⟩, ‖Y‖_F), within parameter rounding.",
          requires={"optimizer"}, cases=_transpose_eq_cases, applies=_transpose_eq_applies,
          catches=("row- or column-wise normalisation mixed into a sphere rule",
                   "a per-row ε or scale", "an axis-dependent projection or retraction"))
def transpose_equivariance(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    W, G = case.arrays["W"], case.arrays["G"]
    m, n = W.shape
    hyp = {**hyper(ctx, LR_A, BETA_A, 0.0), "weight_decay": 0.0}
    ratio = E.shape_scale(p, (m, n)) / E.shape_scale(p, (n, m))
    _, W1 = one_step(ctx, W, G, dt, **hyp)
    _, V1 = one_step(ctx, W.T.copy(), G.T.copy(), dt, **{**hyp, "lr": hyp["lr"] * ratio})
    err = float(np.linalg.norm(W1 - V1.T)) if np.all(np.isfinite(W1)) and np.all(np.isfinite(V1)) else float("inf")
    # both runs compute the same X exactly; after the orthogonaliser each takes ⟨O, W⟩ (MACRO's
    # re-projection) and the retraction's ‖Y‖_F (MuonH also q = ‖D‖) in a different summation
    # order: ⌈log₂mn⌉·u relative each (Higham eq. 4.6), on the normal part (≤ ‖ΔW‖) and the
    # rescale (‖W₁‖); plus the elementwise ops of each step (update, sum, rescale: 3u·‖W₁‖) and
    # the lr·ratio rounding (u·‖ΔW‖), for both runs
    L = float(np.ceil(np.log2(m * n)))
    u = T.unit_roundoff(dt)
    step = float(np.linalg.norm(W1 - E.round_to(W, dt)))
    nrm = float(np.linalg.norm(W1))
    b = 2.0 * u * ((2.0 * L + 3.0) * nrm + (2.0 * L + 1.0) * step)
    tol = Tolerance(b, "2·u·((2⌈log₂mn⌉ + 3)·‖W₁‖ + (2⌈log₂mn⌉ + 1)·‖ΔW‖)",
                    "two reductions in another order and the step's elementwise roundings (Higham Thm 2.2, eq. 4.6)", dt)
    return Measurement("‖W₁(W, G) − W₁(Wᵀ, Gᵀ)ᵀ‖_F", err, tol, err <= b,
                       {"relative_to_step": err / max(step, 1e-300), "lr_ratio": ratio})


# ------------------------------------------------------------------------ 3-D / 4-D parameters
def _tensor_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule != "muon":
        return "3-D/4-D parameters are checked for the unconstrained rule (muon)"
    if p.tensor_params == "unsupported":
        return "profile claims no support for parameters with more than 2 dimensions (Profile.tensor_params)"
    return None


def _tensor_cases(ctx: Context) -> list[Case]:
    """3-D and 4-D shapes whose (shape[0], −1) view is tall and wide, and one (16, 2, 2, 2) whose
    view's shape scale differs from that of its last two axes (a scale taken from the wrong axes
    shows). 4-D only for ``flatten_4d``."""
    rng = ctx.rng("rule.tensor")
    p = ctx.profile
    shapes: tuple[tuple[int, ...], ...] = ((16, 2, 2, 2), (4, 3, 2, 2))
    if p.tensor_params != "flatten_4d":
        shapes += ((6, 4, 3),)
    if ctx.full:
        shapes += ((8, 3, 3, 3),) + (((20, 3, 2),) if p.tensor_params != "flatten_4d" else ())
    dts = case_dtypes(ctx)
    out = []
    for dt in dts:
        for s in shapes:
            W = rng.standard_normal(s) / np.sqrt(int(np.prod(s[1:])))
            out.append(Case(f"shape {s}, {dt}", {"W": W, "G": dyadic(rng, s)}, {"dtype": dt}))
    return out


@register("optimizer.rule.tensor_params", "optimizer",
          "A parameter with more than 2 dimensions is treated as the profile declares "
          "(Profile.tensor_params): 'flatten'/'flatten_4d' — two steps (G₁, then G₂ from the target's W₁ "
          "with the declared momentum of step 1) each equal the declared rule on the (shape[0], −1) view "
          "(shape scale of the view; the target's orthogonaliser replayed on the view), within the "
          "parameter dtype's rounding; 'refuse' — a clear error, never a silent step.",
          requires={"optimizer"}, cases=_tensor_cases, applies=_tensor_applies,
          catches=("shape scale from the last two axes of a conv filter", "3-D parameter orthogonalised as a "
                   "batch of matrices", "a >2-D parameter's momentum lost or re-zeroed between steps",
                   "a >2-D parameter silently stepped by an optimizer declared to refuse it"))
def tensor_params(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    W, G = case.arrays["W"], case.arrays["G"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    declared = Tolerance(0.0, f"declared tensor_params={p.tensor_params!r}: a step (flatten) or an error (refuse)",
                         "Profile.tensor_params (CONVENTIONS §1)", dt)
    if p.tensor_params == "refuse":
        try:
            W0, W1 = one_step(ctx, W, G, dt, **hyp)
        except Exception as exc:  # noqa: BLE001 - a clear refusal is the declared behaviour
            return Measurement("stepped without an error (1) / refused (0)", 0.0, declared, True,
                               {"raised": f"{type(exc).__name__}: {exc}"})
        return Measurement("stepped without an error (1) / refused (0)", 1.0, declared, False,
                           {"moved": float(np.linalg.norm(W1 - W0))})
    m = W.shape[0]
    raised = None
    Gs = (G, _second_gradient(G))
    try:
        W0, Ws, states = _tensor_steps(ctx, W, Gs, dt, **hyp)
    except Exception as exc:  # noqa: BLE001 - the profile declares that the step supports this shape
        # a defect of the target (e.g. a flattened update added to the unflattened parameter): judged
        # against the declared step and its bound below, with the error as the measured figure ∞
        raised = f"{type(exc).__name__}: {exc}"
        W0 = E.round_to(W, dt)
        Ws, states = [np.full_like(W0, np.nan)] * 2, [torch.get_rng_state()] * 2
    exact = exact_rule_input(p)
    replay = can_replay(ctx, seeded_exact_input=exact)
    orth = replay_orth(ctx, dt) if replay else None
    # step 1 from zero momentum at W₀, then step 2 with G₂ from the TARGET's W₁ (teacher forcing) and the
    # declared momentum of step 1: a >2-D parameter's momentum lost or re-zeroed between steps shows
    start, M, steps = W0.reshape(m, -1), None, []
    for t, (Gt, Wt, st) in enumerate(zip(Gs, Ws, states), start=1):
        Gv = E.round_to(Gt, dt).reshape(m, -1)
        _, U = E.momentum_step(p, M, Gv, hyp["momentum"], t)
        torch.set_rng_state(st)  # the RNG state of the target's step t: a stochastic rounding repeats
        Wexp, M = E.step(p, start, Gv, M, lr=hyp["lr"], weight_decay=hyp["weight_decay"], t=t,
                         beta=hyp["momentum"], input_dtype=dt, orth=orth)
        got = Wt.reshape(m, -1)
        err = float(np.linalg.norm(got - Wexp)) if np.all(np.isfinite(got)) else float("inf")
        # the bound of optimizer.rule.step on the (shape[0], −1) view (the same rounding model)
        tol, _ = step_bound(ctx, start, Wexp, U, U, dt, hyp["lr"], replay, exact_input=exact)
        steps.append((err, tol, Wexp, start))
        if not np.all(np.isfinite(got)):
            break
        start = got
    k = max(range(len(steps)), key=lambda i: steps[i][0] / max(steps[i][1].bound, 1e-300))
    err, tol, Wexp, start = steps[k]
    figure = f"‖W_t − W_t*‖_F on the (shape[0], −1) view, worst of steps 1–2 (here t = {k + 1})" + (
        f" (∞: step() raised on a shape the profile declares supported — {raised})" if raised else "")
    return Measurement(figure, err, tol, err <= tol.bound and all(e <= b.bound for e, b, _, _ in steps),
                       {"view": [m, int(start.shape[1])], "declared": p.tensor_params, "replay": replay,
                        "raised": raised, "worst_step": k + 1,
                        "ratio_per_step": [e / max(b.bound, 1e-300) for e, b, _, _ in steps],
                        "expected_step_norm": float(np.linalg.norm(Wexp - start)),
                        "shape_scale_view": E.shape_scale(p, start.shape), **power_note(ctx, replay)})


def _second_gradient(G: np.ndarray) -> np.ndarray:
    """The gradient of the tensor check's second step: −G rolled by one along axis 0 (dyadic like G,
    not parallel to it, so the declared momentum M₂ = f(M₁, G₂) differs from a fresh one)."""
    return -np.roll(G, 1, axis=0)


def _tensor_steps(ctx: Context, W: np.ndarray, Gs: tuple[np.ndarray, ...], dt: str,
                  **hyper: Any) -> tuple[np.ndarray, list[np.ndarray], list[torch.Tensor]]:
    """(W₀ as the target holds it, [W_t after step t], [torch's RNG state before step t]) of one fresh
    optimizer stepped with the gradients ``Gs`` in turn (torch's RNG seeded first, as :func:`one_step`)."""
    torch.manual_seed(ctx.seed)
    x = torch.nn.Parameter(tensor(E.round_to(W, dt), dt))
    opt = call(ctx, "optimizer", [x], **hyper)
    W0, Ws, states = to_numpy(x.data), [], []
    for G in Gs:
        x.grad = tensor(G, dt)
        states.append(torch.get_rng_state())
        opt.step()
        Ws.append(to_numpy(x.data))
    return W0, Ws, states


# --------------------------------------------------------------- momentum self-consistency (no msign)
def _momentum_pair(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(A, B, G_C): two dyadic gradients (entries 7k/16, k ∈ [−8, 8]) and the gradient G_C whose
    fresh first step has, under the declared momentum/Nesterov rule, exactly 2^e times the
    orthogonaliser input of the second step of A then B; None when no such exact G_C exists."""
    from fractions import Fraction

    p = ctx.profile
    if not exact_rule_input(p):
        return None
    rng = ctx.rng("rule.momself")
    shp = (12, 8)
    _, U1 = E.momentum_step(p, None, np.ones(shp), BETA_A, 1)
    c = float(U1[0, 0])
    if not np.all(U1 == c) or c <= 0:
        return None
    odd = Fraction(c).numerator  # c = odd/2^k: entries that are multiples of odd/16 make U2/c dyadic
    A, B = (odd * np.clip(np.round(rng.standard_normal(shp) * 3), -8, 8) / 16 for _ in range(2))
    _, U2 = E.momentum_step(p, E.momentum_update(p, None, A, BETA_A), B, BETA_A, 2)
    GC = U2 / c
    e = float(np.floor(np.log2(max(float(np.abs(GC).max()), 1e-300))))
    GC = np.ldexp(GC, -int(e))
    exact = np.array_equal(GC.astype(np.float32).astype(np.float64), GC) and np.array_equal(np.ldexp(c * GC, int(e)), U2)
    return (A, B, GC) if exact else None


def _momself_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule != "muon":
        return "momentum self-consistency is defined for the unconstrained rule (muon)"
    if p.momentum_form == "none":
        return "profile declares no momentum"
    if _momentum_pair(ctx) is None:
        return "the declared momentum form is not exact in dyadic arithmetic (e.g. bias correction divides)"
    return None


@register("optimizer.rule.momentum_self", "optimizer",
          "Without replaying the orthogonaliser: the second step of gradients A then B (group momentum "
          "3/4, set on the group after construction with a different default) equals the first step "
          "of a fresh optimizer on the gradient G_C whose orthogonaliser input the declared momentum/"
          "Nesterov rule makes exactly 2^e times the second step's (the orthogonaliser then sees "
          "bit-identical normalised input), within parameter rounding.",
          requires={"optimizer"}, cases=lambda c: [Case(f"shape (12, 8), {d}", {}, {"dtype": d})
                                                   for d in tuple(c.profile.param_dtypes)[:1]],
          applies=_momself_applies,
          catches=("missing Nesterov term", "Nesterov from the buffer before its update", "wrong momentum form",
                   "per-group momentum ignored (constructor default used)"))
def momentum_self(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    pair = _momentum_pair(ctx)
    assert pair is not None
    A, B, GC = pair
    W = ctx.rng("rule.momself.W").standard_normal(A.shape) / np.sqrt(A.shape[1])
    hyp = {**hyper(ctx, LR_A, BETA_A, 0.0), "weight_decay": 0.0}

    def run_steps(grads: list[np.ndarray]) -> list[np.ndarray]:
        torch.manual_seed(ctx.seed)
        x = torch.nn.Parameter(tensor(E.round_to(W, dt), dt))
        opt = call(ctx, "optimizer", [x], **{**hyp, "momentum": BETA_B})  # default differs from the group's
        for g in opt.param_groups:
            g.update(ctx.adapter.group_hyper(**hyp))
        out = [to_numpy(x.data)]
        for G in grads:
            x.grad = tensor(G, dt)
            torch.manual_seed(ctx.seed)  # the compared steps draw the same stochastic rounding
            opt.step()
            out.append(to_numpy(x.data))
        return out

    _, WB1, WB2 = run_steps([A, B])
    WC0, WC1 = run_steps([GC])
    dB, dC = WB2 - WB1, WC1 - WC0
    err = float(np.linalg.norm(dB - dC)) if np.all(np.isfinite(dB + dC)) else float("inf")
    # each increment is fl(W + fl(−lr·s·O)) − W with bit-identical O (and s·O, whatever dtype forms
    # it): u·(‖W⁺‖ + 2‖Δ‖) per run (sum, product, scalar; Higham Thm 2.2)
    u = T.unit_roundoff(dt)
    nf = lambda x: float(np.linalg.norm(x))  # noqa: E731
    b = u * (nf(WB2) + nf(WC1) + 2 * nf(dB) + 2 * nf(dC))
    tol = Tolerance(b, "u·(‖W_B2‖ + ‖W_C1‖ + 2‖Δ_B‖ + 2‖Δ_C‖)",
                    "elementwise rounding (Higham Thm 2.2); CONVENTIONS §5 momentum/Nesterov forms", dt)
    return Measurement("‖Δ_B(step 2) − Δ_C(step 1)‖_F", err, tol, err <= b,
                       {"relative": err / max(nf(dC), 1e-300)})
