"""Optimizer steps: one step and a multi-step trajectory against the declared profile's float64
model (``conformance.expected``), tangency of directions, descent. The sharp rule checks
(orthogonaliser replayed, self-consistency) are in ``checks.rules``; runs as training code drives
them (resume, grad None, zero/NaN gradients, feasibility along a run for every constrained rule,
off-manifold start and radius source) in ``checks.runs``.

Run in float64 where the target supports it (``Profile.param_dtypes``) and in its working dtype
otherwise (CLAIMS X-1). Tolerance per step (spectral norm): lr·s·(2 × the orthogonaliser bound of
``spec``: the fp32 momentum is rounded again at the low-precision cast, one more input
perturbation of the same size) + rounding of the parameter update in the parameter dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import expected as E
from .. import tolerances as T
from ..adapters import as_output, to_numpy
from ..tolerances import Tolerance
from . import Case, Context, Measurement, register
from ._util import call, tensor
from .rules import (N_INPUT, can_replay, chi2_prediction, input_term, off_manifold, power_note, replay_orth,
                    return_roundoff, sso_noise, step_bound, theta_of)

LR = 0.05
WD = 0.1


def _has_rule(ctx: Context) -> str | None:
    if ctx.profile.rule == "sso":
        return "sso (retract-then-step, λ solved through the orthogonaliser) is judged by optimizer.rule.*"
    return None if ctx.profile.rule != "none" else "profile declares no optimizer rule"


def _manifold(ctx: Context) -> Any:
    return ctx.profile.manifolds[0].reference(point_tol=1e-4) if ctx.profile.rule in ("macro",) else None


def _shapes(ctx: Context) -> tuple[tuple[int, int], ...]:
    if ctx.profile.manifolds and ctx.profile.rule == "macro":
        return tuple(ctx.profile.manifolds[0].shapes)
    return ((12, 8), (8, 12))


def _dtypes(ctx: Context) -> tuple[str, ...]:
    d = tuple(ctx.profile.param_dtypes)
    return d if ctx.full else d[:1]


def _start_point(ctx: Context, rng: np.random.Generator, shp: tuple[int, int]) -> np.ndarray:
    man = _manifold(ctx)
    if man is not None:
        return man.random_point(rng, shp)
    if ctx.profile.rule == "muonh":
        return rng.standard_normal(shp) / np.sqrt(shp[1])
    return rng.standard_normal(shp) / np.sqrt(shp[1])


def _traj_cases(ctx: Context, salt: str, steps: int, repeats: int = 1) -> list[Case]:
    """``repeats`` draws per shape and dtype: a correct low-precision step's figure is a rounding
    residual (a random variable) whose worst over several draws is what the bound is compared with."""
    rng = ctx.rng(salt)
    out = []
    for dt in _dtypes(ctx):
        for shp in _shapes(ctx):
            for i in range(repeats):
                W = _start_point(ctx, rng, shp)
                Gs = np.stack([rng.standard_normal(shp) for _ in range(steps)])
                out.append(Case(f"{shp} {dt} {steps} step(s)" + (f" #{i + 1}" if repeats > 1 else ""),
                                {"W": W, "Gs": Gs}, {"dtype": dt}))
    return out


def _make(ctx: Context, W: np.ndarray, dt: str, **hyper: Any) -> tuple[Any, torch.nn.Parameter]:
    p = torch.nn.Parameter(tensor(W, dt))
    opt = call(ctx, "optimizer", [p], **hyper)
    return opt, p


def _run_optimizer(ctx: Context, case: Case, wd: float) -> Measurement:
    """The declared hyperparameters (profile momentum, lr 0.05) on Gaussian gradients, each step
    from the target's current weights with the harness's own float64 momentum; the expected step
    replays the target's orthogonaliser where it exposes one (``checks.rules``)."""
    p = ctx.profile
    dt = case.params["dtype"]
    W0 = E.round_to(case.arrays["W"], dt)
    opt, prm = _make(ctx, W0, dt, lr=LR, momentum=p.momentum, weight_decay=wd)
    replay = can_replay(ctx)
    orth = replay_orth(ctx, dt) if replay else None
    man = _manifold(ctx)
    M = None
    worst, worst_tol, per_step = -1.0, None, []
    for t, G in enumerate(case.arrays["Gs"], start=1):
        g = E.round_to(G, dt)
        Wcur = to_numpy(prm.data)
        off = off_manifold(man, Wcur, t)
        if off is not None:
            return off
        prm.grad = tensor(g, dt)
        opt.step()
        _, U = E.momentum_step(p, M, g, p.momentum, t)
        X = E.orth_input(p, Wcur, U, manifold=man)
        Wexp, M = E.step(p, Wcur, g, M, lr=LR, weight_decay=wd, t=t, input_dtype=dt, manifold=man, orth=orth)
        got = to_numpy(prm.data)
        err = float(np.linalg.norm(got - Wexp)) if np.all(np.isfinite(got)) else float("inf")
        tol, n_amb = step_bound(ctx, Wcur, Wexp, U, X, dt, LR, replay)
        per_step.append({"step": t, "error": err, "bound": tol.bound, "ambiguous_casts": n_amb})
        if worst_tol is None or err / tol.bound > worst / worst_tol.bound:
            worst, worst_tol = err, tol
    assert worst_tol is not None
    return Measurement("‖W_t − W_t*‖_F (worst step)", worst, worst_tol, worst <= worst_tol.bound,
                       {"per_step": per_step, "weight_decay": wd, "replay": replay, **power_note(ctx, replay)})


@register("optimizer.step.one", "optimizer",
          "One optimizer step (with weight decay 0.1 where the profile couples it) equals the "
          "declared rule's float64 step from the same inputs (CLAIMS X-1).",
          requires={"optimizer"}, cases=lambda c: _traj_cases(c, "opt.one", 1, 3), applies=_has_rule,
          catches=("sign error", "wrong shape scaling", "wrong weight-decay coupling", "wrong NS coefficient"))
def step_one(ctx: Context, case: Case) -> Measurement:
    wd = WD if ctx.profile.weight_decay_coupling != "none" else 0.0
    return _run_optimizer(ctx, case, wd)


@register("optimizer.step.trajectory", "optimizer",
          "A 5-step trajectory with recorded gradients follows the declared rule (momentum form, "
          "Nesterov form and state handling included) step by step (CLAIMS X-1).",
          requires={"optimizer"}, cases=lambda c: _traj_cases(c, "opt.traj", 5), applies=_has_rule,
          catches=("momentum buffer normalised in place", "wrong momentum form", "state corruption"))
def step_trajectory(ctx: Context, case: Case) -> Measurement:
    return _run_optimizer(ctx, case, 0.0)


@register("optimizer.step.descent", "optimizer",
          "The first step moves against the gradient: ⟨G, W₁ − W₀⟩ < 0 (no weight decay); the "
          "figure is cos∠(G, W₁ − W₀), which must be ≤ −0.01.",
          requires={"optimizer"}, cases=lambda c: _traj_cases(c, "opt.desc", 1), applies=_has_rule,
          catches=("sign error",))
def step_descent(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    W0 = E.round_to(case.arrays["W"], dt)
    opt, prm = _make(ctx, W0, dt, lr=LR, momentum=ctx.profile.momentum, weight_decay=0.0)
    G = E.round_to(case.arrays["Gs"][0], dt)
    prm.grad = tensor(G, dt)
    opt.step()
    dW = to_numpy(prm.data) - W0
    c = float(np.sum(G * dW) / (np.linalg.norm(G) * max(np.linalg.norm(dW), 1e-300)))
    # the figure is shifted so that "measured ≤ bound" reads cos ≤ −0.01
    return Measurement("cos∠(G, W₁ − W₀) + 1", c + 1.0,
                       Tolerance(0.99, "cos ≤ −0.01 (i.e. cos + 1 ≤ 0.99)",
                                 "first-order descent of a normalised-gradient step (MATH §7.2, §9.2)"),
                       c <= -0.01, {"cosine": c, "fixed_threshold": True})


# ----------------------------------------------------------------------------------- direction
def _dir_cases(ctx: Context, salt: str, steps: int, repeats: int = 1) -> list[Case]:
    return _traj_cases(ctx, salt, steps, repeats)


def _run_direction(ctx: Context, case: Case) -> Measurement:
    """Directions with carried state against the declared rule, the target's orthogonaliser
    replayed where it exposes one. Bound: the direction's rounding in the parameter dtype,
    u·(4 + rd·⌈log₂mn⌉)·‖D‖_F (s·P(O): products, a projection with one reduction), plus
    ``rules.input_term``; without replay 2·s·√k·(orthogonaliser bound)·t as before."""
    p = ctx.profile
    dt = case.params["dtype"]
    W = E.round_to(case.arrays["W"], dt)
    replay = can_replay(ctx)
    orth = replay_orth(ctx, dt) if replay else None
    man = _manifold(ctx)
    state, M = None, None
    worst, worst_tol, rows = -1.0, None, []
    for t, G in enumerate(case.arrays["Gs"], start=1):
        g = E.round_to(G, dt)
        Dt, state = call(ctx, "direction", tensor(W, dt), tensor(g, dt), state)
        D = to_numpy(as_output(Dt))
        _, U = E.momentum_step(p, M, g, p.momentum, t)
        X = E.orth_input(p, W, U, manifold=man)
        Dexp, M = E.direction(p, W, g, M, t=t, input_dtype=dt, manifold=man, orth=orth)
        err = float(np.linalg.norm(D - Dexp)) if np.all(np.isfinite(D)) else float("inf")
        s = p.scale * E.shape_scale(p, W.shape)
        k = min(W.shape[-2:])
        if replay and orth is not None:
            # D = s·(O − c·W) with O replayed: roundings u·(‖O‖ + 2‖cW‖ + 2‖P(O)‖)·s and the inner
            # product's ⌈log₂mn⌉·u·s·‖cW‖ (for muon: D = s·O, one product)
            m, n = W.shape[-2:]
            L = float(np.ceil(np.log2(max(m * n, 2))))
            O = orth(X)
            nO, nN = float(np.linalg.norm(O)), float(np.linalg.norm(O - Dexp / s))
            extra, fextra, _ = input_term(ctx, U, X, dt, s)
            u = T.unit_roundoff(dt)
            u += return_roundoff(p, dt)  # D formed in a coarser declared return dtype
            b = u * s * (nO + 2 * nN + 2 * float(np.linalg.norm(Dexp)) / s) + L * u * s * nN + extra
            tol = Tolerance(b, f"u·s·(‖O‖ + 2‖cW‖ + 2‖P(O)‖) + ⌈log₂mn⌉·u·s·‖cW‖{fextra}",
                            "conformance.checks.rules replay model", dt)
        else:
            to = T.orth_tolerance(ctx.profile, X, E.orthogonalise(p, X, dt), dt)
            proj = 2.0 if p.rule == "macro" else 1.0
            tol = Tolerance(2.0 * proj * s * to.bound * t * np.sqrt(k), f"2·proj·s·√k·[{to.formula}]·t",
                            to.provenance, to.dtype)
        rows.append({"step": t, "error": err, "bound": tol.bound})
        if worst_tol is None or err / tol.bound > worst / worst_tol.bound:
            worst, worst_tol = err, tol
    assert worst_tol is not None
    return Measurement("‖D_t − D_t*‖_F (worst step)", worst, worst_tol, worst <= worst_tol.bound,
                       {"per_step": rows, "replay": replay, **power_note(ctx, replay)})


@register("optimizer.direction.one_step", "optimizer",
          "The update direction of one step equals the declared rule's direction (MATH §7.1 / §9).",
          requires={"direction"}, cases=lambda c: _dir_cases(c, "dir.one", 1, 3), applies=_has_rule,
          catches=("re-projection dropped", "sign error", "wrong shape scaling", "wrong NS coefficient"))
def direction_one(ctx: Context, case: Case) -> Measurement:
    return _run_direction(ctx, case)


@register("optimizer.direction.trajectory", "optimizer",
          "Directions over 4 steps with carried state follow the declared momentum/Nesterov form.",
          requires={"direction"}, cases=lambda c: _dir_cases(c, "dir.traj", 4), applies=_has_rule,
          catches=("momentum buffer normalised in place", "wrong momentum form"))
def direction_trajectory(ctx: Context, case: Case) -> Measurement:
    return _run_direction(ctx, case)


def _tangent_applies(ctx: Context) -> str | None:
    if not ctx.profile.direction_tangent:
        return "profile does not declare tangent directions"
    if not ctx.profile.manifolds:
        return "profile declares no manifold"
    return None


def _tangent_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("dir.tan.adv")
    man = ctx.profile.manifolds[0].reference()
    shapes = tuple(ctx.profile.manifolds[0].shapes)
    dt = _dtypes(ctx)[0]
    cases = []
    # three random gradients per shape: the figure of a correct low-precision implementation is a
    # rounding residual (a random variable), the worst of several is what the bound is compared with
    for shp in shapes:
        for i in range(3):
            W = man.random_point(rng, shp)
            cases.append(Case(f"{shp} {dt} random gradient #{i + 1}",
                              {"W": W, "Gs": rng.standard_normal(shp)[None]}, {"dtype": dt}))
    for shp in shapes:
        W = man.random_point(rng, shp)
        # adversarial: the gradient is dominated by its normal component (large multiplier λ*)
        N = man.normal_component(W, rng.standard_normal(shp))
        G = 50.0 * N / max(np.linalg.norm(N), 1e-300) + 0.1 * man.random_tangent(rng, W)
        cases.append(Case(f"{shp} normal-dominated gradient", {"W": W, "Gs": G[None]},
                          {"dtype": _dtypes(ctx)[0]}))
    return cases


@register("optimizer.direction.tangency", "optimizer",
          "The declared-tangent direction lies in T_W M: v_M(W, D) ≈ 0 (CLAIMS M-1, M-9).",
          requires={"direction"}, cases=_tangent_cases, applies=_tangent_applies,
          catches=("re-projection dropped", "missing tangent projection", "silent λ = 0 fallback"))
def direction_tangency(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    decl = ctx.profile.manifolds[0]
    man = decl.reference(point_tol=1e-4)
    W = E.round_to(case.arrays["W"], dt)
    if not man.contains(W, 1e-6):
        W = man.project_point(W)
    G = E.round_to(case.arrays["Gs"][0], dt)
    Dt, _ = call(ctx, "direction", tensor(W, dt), tensor(G, dt), None)
    D = to_numpy(as_output(Dt))
    v = float(np.max(man.tangent_violation(W, D))) if np.all(np.isfinite(D)) else float("inf")
    scale = 1.0
    if decl.kind == "spectral_sphere":
        s = np.linalg.svd(W, compute_uv=False)
        scale = float(s[0] / (s[0] - s[1]))
    # float64: the CLAIMS §0.2 exact-identity bound (covers SVD msign and a bisection for λ run
    # to adjacent floats); lower precision: rounding of the projection in the parameter dtype
    p = ctx.profile
    if dt != "float64" and p.rule == "macro" and decl.kind in ("frobenius_sphere", "oblique"):
        # MACRO's final projection D = s·P_W(O) on a sphere (Frobenius: one vector; oblique: one
        # per row/column): the probabilistic rounding model of that projection in the parameter
        # dtype (tolerances.projection_tangency), O the target's own orthogonaliser output where
        # it exposes one (else the declared map's: O enters the model only through magnitudes)
        _, U = E.momentum_step(p, None, G, p.momentum, 1)
        X = E.orth_input(p, W, U, manifold=man)
        O = replay_orth(ctx, dt)(X) if can_replay(ctx) else E.orthogonalise(p, X, dt)
        flip = decl.kind == "oblique" and decl.axis == "cols"
        vw, vo = (W.T, O.T) if flip else (W, O)
        if decl.kind == "frobenius_sphere":
            vw, vo = vw.reshape(1, -1), vo.reshape(1, -1)
        s = p.scale * E.shape_scale(p, W.shape)
        t_proj = T.projection_tangency(dt, vw, vo, scaled=s != 1.0)
        return Measurement("v_M(W, D)", v, t_proj, v <= t_proj.bound)
    if dt == "float64" and p.rule != "macro" and decl.kind == "spectral_sphere" and p.schedule is not None:
        # tangency through a multiplier solve (SSO-type): the target forms X = M̂ + λΘ, and for a
        # gradient dominated by its normal component λ cancels most of M̂ (M̂ ≈ −λΘ): the sum's
        # rounding, u·(‖M̂‖_F + |λ|·‖Θ‖_F), is relative to ‖X‖_F, so the exact identity's relative
        # budget grows by (1 + |λ*|)/‖X‖_F (λ* the declared multiplier, ‖M̂‖_F = ‖Θ‖_F = 1). In
        # fp32/bf16 the orthogonaliser term below dominates (gpu_impl_sso: the normal-dominated case
        # measures 4e-5 ≈ u·(1 + |λ*|)/‖X‖_F, within that term)
        Uw, _, Vw = np.linalg.svd(W, full_matrices=False)
        lam = E.sso_multiplier(p, W, G)
        nx = float(np.linalg.norm(G / np.linalg.norm(G) + lam * np.outer(Uw[:, 0], Vw[0])))
        scale *= max(1.0, (1.0 + abs(lam)) / max(nx, 1e-300))
    tol = (T.exact_identity(dt, max(W.shape), scale=scale) if dt == "float64"
           else T.rounding(dt, 4 * max(W.shape), scale=scale))
    if p.rule != "macro" and p.has_ns:
        nd = max(float(np.linalg.norm(D)), 1e-300)
        if p.rule == "sso" and p.theta_source == "exact" and can_replay(ctx) and decl.kind == "spectral_sphere":
            # the target solves h_t(λ) = ⟨Θ, O_t(fl(M̂ + λΘ))⟩ = 0 to τ = 1e-8 or to its bisection's
            # last bracket, on its own orthogonaliser O_t and its own rounding of the input
            # X = M̂ + λΘ; D = O_t(fl(X)), so v·‖D‖_F = |⟨Θ, D⟩| ≤ τ + the jump of h_t across the
            # last bracket, which is its noise: the orthogonaliser's error seen through Θ (ν_h,
            # rules.sso_noise, ×3) plus the response of h_t to the rounding of X, whose terms M̂ and
            # λΘ cancel for a normal-dominated gradient (the rounding is relative to
            # |M̂| + |λ||Θ|, not to X): 64 draws of the input's probabilistic model (entrywise sd
            # ROUND_SD·u/√3·√(M̂² + (λΘ)² + X²): the sum, the product λΘ, the stored X), bounded
            # with the same scaled chi-square prediction as rules.input_term (×2: both ends of
            # the last bracket)
            Th = theta_of(W)
            Mh = G / max(float(np.linalg.norm(G)), 1e-300)
            lam = E.sso_multiplier(p, W, G)
            Xr = Mh + lam * Th
            orth = replay_orth(ctx, dt)
            nu_h = sso_noise(ctx, p, W, Xr, dt)
            sd = T.ROUND_SD * T.unit_roundoff(dt) / np.sqrt(3.0) * np.sqrt(Mh**2 + (lam * Th) ** 2 + Xr**2)
            rng = ctx.rng(f"direction.tangency sso {case.label}")  # reproducible across processes
            h0 = float(np.sum(Th * orth(Xr)))
            e2 = np.array([(float(np.sum(Th * orth(Xr + sd * rng.standard_normal(Xr.shape)))) - h0) ** 2
                           for _ in range(N_INPUT)])
            nu_in, d = chi2_prediction(e2)
            extra = 1e-8 + 3.0 * nu_h + 2.0 * nu_in
            tol = Tolerance(tol.bound + extra / nd,
                            f"{tol.formula} + (τ + 3ν_h + 2ν_in)/‖D‖_F (τ = 1e-8, ν_h = {nu_h:.2e}, ν_in = {nu_in:.2e}, "
                            f"d = {d:.3g}: the target's h near the root and its response to the input's rounding)",
                            f"{tol.provenance}; the multiplier solve on the target's own orthogonaliser", dt)
        else:
            # |⟨Θ, E⟩| ≤ ‖E‖₂ for the NS error E (‖Θ‖_* = 1), relative to ‖D‖_F
            t_ns = T.orth_tolerance(ctx.profile, G, E.orthogonalise(p, G, dt), dt)
            tol = Tolerance(tol.bound + t_ns.bound / nd, f"{tol.formula} + [{t_ns.formula}]/‖D‖_F",
                            f"{tol.provenance}; NS error through the multiplier solve", dt)
    return Measurement("v_M(W, D)", v, tol, v <= tol.bound)


# the sharp rule checks and the real-code run checks live in their own modules (same family)
from . import rules as _rules  # noqa: E402,F401
from . import runs as _runs  # noqa: E402,F401
from . import update_norm as _update_norm  # noqa: E402,F401
