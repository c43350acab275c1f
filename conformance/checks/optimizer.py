"""Optimizer steps: one step and a multi-step trajectory against the declared profile's float64
model (``conformance.expected``), tangency of directions, feasibility along a run, descent.

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
from ._util import call, spec2, tensor
from .spec import _orth_tolerance

LR = 0.05
WD = 0.1


def _has_rule(ctx: Context) -> str | None:
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


def _traj_cases(ctx: Context, salt: str, steps: int) -> list[Case]:
    rng = ctx.rng(salt)
    out = []
    for dt in _dtypes(ctx):
        for shp in _shapes(ctx):
            W = _start_point(ctx, rng, shp)
            Gs = np.stack([rng.standard_normal(shp) for _ in range(steps)])
            out.append(Case(f"{shp} {dt} {steps} step(s)", {"W": W, "Gs": Gs}, {"dtype": dt}))
    return out


def _step_tol(ctx: Context, W: np.ndarray, U: np.ndarray, dt: str, lr: float) -> Tolerance:
    """Bound on ‖W_target − W_expected‖₂ after one step (see module docstring)."""
    p = ctx.profile
    if p.has_ns or p.schedule == "exact":
        o = E.orthogonalise(p, U, dt)
        t_orth = _orth_tolerance(ctx, U, o, dt)
        orth_b = 2.0 * t_orth.bound
        desc = t_orth.formula
    else:
        orth_b, desc = 0.0, "no orthogonaliser"
    s = p.scale * E.shape_scale(p, W.shape)
    proj = 2.0 if p.rule == "macro" else 1.0  # ‖P(E)‖ ≤ ‖E‖ twice (inner and outer projection)
    if p.rule == "muonh":  # only the direction of O matters: relative step lr·‖W‖_F
        s = float(np.linalg.norm(W)) / max(float(np.linalg.norm(E.orthogonalise(p, U, dt))), 1e-300)
    upd = lr * s * proj * orth_b
    r = T.rounding(dt, 16, scale=float(np.linalg.norm(W)))
    return Tolerance(upd + r.bound, f"lr·s·{proj:g}·2·[{desc}] + {r.formula}",
                     "conformance.checks.optimizer step model (CLAIMS X-1 dtype model)", dt)


def _make(ctx: Context, W: np.ndarray, dt: str, **hyper: Any) -> tuple[Any, torch.nn.Parameter]:
    p = torch.nn.Parameter(tensor(W, dt))
    opt = call(ctx, "optimizer", [p], **hyper)
    return opt, p


def _run_optimizer(ctx: Context, case: Case, wd: float) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    W0 = E.round_to(case.arrays["W"], dt)
    Gs = case.arrays["Gs"]
    opt, prm = _make(ctx, W0, dt, lr=LR, momentum=p.momentum, weight_decay=wd)
    Wexp, M = W0.copy(), None
    worst, worst_tol, per_step = -1.0, None, []
    for t, G in enumerate(Gs, start=1):
        g = E.round_to(G, dt)
        prm.grad = tensor(g, dt)
        Wcur = Wexp.copy()
        Mt = E.momentum_update(p, M, g, p.momentum)
        U = E.nesterov_input(p, Mt, g, p.momentum, t)
        if p.rule == "macro":
            U = _manifold(ctx).project_tangent(Wcur, U)
        Wexp, M = E.step(p, Wcur, g, M, lr=LR, weight_decay=wd, t=t, input_dtype=dt, manifold=_manifold(ctx))
        opt.step()
        got = to_numpy(prm.data)
        err = spec2(got - Wexp) if np.all(np.isfinite(got)) else float("inf")
        tol = _step_tol(ctx, Wcur, U, dt, LR)
        bound = tol.bound * t  # errors of earlier steps carry over (each step is 1-Lipschitz in W up to O(lr))
        per_step.append({"step": t, "error": err, "bound": bound})
        if worst_tol is None or err / bound > worst / worst_tol.bound:
            worst, worst_tol = err, Tolerance(bound, f"t·({tol.formula})", tol.provenance, dt)
        Wexp = Wexp  # the expected trajectory continues from its own iterate
    assert worst_tol is not None
    return Measurement("‖W_t − W_t*‖₂ (worst step)", worst, worst_tol, worst <= worst_tol.bound,
                       {"per_step": per_step, "weight_decay": wd})


@register("optimizer.step.one", "optimizer",
          "One optimizer step (with weight decay 0.1 where the profile couples it) equals the "
          "declared rule's float64 step from the same inputs (CLAIMS X-1).",
          requires={"optimizer"}, cases=lambda c: _traj_cases(c, "opt.one", 1), applies=_has_rule,
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


def _manifold_rule(ctx: Context) -> str | None:
    if ctx.profile.rule not in ("macro", "muonh"):
        return "profile declares no manifold-constrained rule"
    return None


@register("optimizer.step.feasibility", "optimizer",
          "Along a 6-step run the iterate stays on the declared manifold (radius preserved; "
          "MuonH: ‖W_t‖_F = ‖W_0‖_F) (CLAIMS X-2, V-5; CONVENTIONS §12.5).",
          requires={"optimizer"}, cases=lambda c: _traj_cases(c, "opt.feas", 6), applies=_manifold_rule,
          catches=("weight decay shrinking the radius", "retraction skipped", "wrong radius"))
def step_feasibility(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    W0 = E.round_to(case.arrays["W"], dt)
    opt, prm = _make(ctx, W0, dt, lr=LR, momentum=ctx.profile.momentum, weight_decay=0.0)
    if ctx.profile.rule == "macro":
        man = _manifold(ctx)
    else:
        from manifold_oracle.reference import FrobeniusSphere

        man = FrobeniusSphere(float(np.linalg.norm(W0)))
    worst = 0.0
    for G in case.arrays["Gs"]:
        prm.grad = tensor(E.round_to(G, dt), dt)
        opt.step()
        Y = to_numpy(prm.data)
        v = float(np.max(man.violation(Y))) if np.all(np.isfinite(Y)) else float("inf")
        worst = max(worst, v)
    n_steps = len(case.arrays["Gs"])
    tol = T.rounding(dt, 8 * n_steps * max(W0.shape) ** 0.5, scale=1.0)
    return Measurement("max_t c_M(W_t)", worst, tol, worst <= tol.bound, {"steps": n_steps})


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
                       c <= -0.01, {"cosine": c})


# ----------------------------------------------------------------------------------- direction
def _dir_cases(ctx: Context, salt: str, steps: int) -> list[Case]:
    return _traj_cases(ctx, salt, steps)


def _run_direction(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    W = E.round_to(case.arrays["W"], dt)
    state, M = None, None
    worst, worst_tol, rows = -1.0, None, []
    for t, G in enumerate(case.arrays["Gs"], start=1):
        g = E.round_to(G, dt)
        Dt, state = call(ctx, "direction", tensor(W, dt), tensor(g, dt), state)
        D = to_numpy(as_output(Dt))
        Mt = E.momentum_update(p, M, g, p.momentum)
        U = E.nesterov_input(p, Mt, g, p.momentum, t)
        if p.rule == "macro":
            U = _manifold(ctx).project_tangent(W, U)
        Dexp, M = E.direction(p, W, g, M, t=t, input_dtype=dt, manifold=_manifold(ctx))
        err = spec2(D - Dexp) if np.all(np.isfinite(D)) else float("inf")
        o = E.orthogonalise(p, U, dt)
        to = _orth_tolerance(ctx, U, o, dt)
        s = p.scale * E.shape_scale(p, W.shape) * (2.0 if p.rule == "macro" else 1.0)
        tol = Tolerance(2.0 * s * to.bound * t, f"2·s·[{to.formula}]·t", to.provenance, to.dtype)
        rows.append({"step": t, "error": err, "bound": tol.bound})
        if worst_tol is None or err / tol.bound > worst / worst_tol.bound:
            worst, worst_tol = err, tol
    assert worst_tol is not None
    return Measurement("‖D_t − D_t*‖₂ (worst step)", worst, worst_tol, worst <= worst_tol.bound,
                       {"per_step": rows})


@register("optimizer.direction.one_step", "optimizer",
          "The update direction of one step equals the declared rule's direction (MATH §7.1 / §9).",
          requires={"direction"}, cases=lambda c: _dir_cases(c, "dir.one", 1), applies=_has_rule,
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
    for shp in shapes:
        W = man.random_point(rng, shp)
        cases.append(Case(f"{shp} {dt} random gradient", {"W": W, "Gs": rng.standard_normal(shp)[None]},
                          {"dtype": dt}))
    for shp in shapes[:1]:
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
    tol = (T.exact_identity(dt, max(W.shape), scale=scale) if dt == "float64"
           else T.rounding(dt, 4 * max(W.shape), scale=scale))
    p = ctx.profile
    if p.rule != "macro" and p.has_ns:
        # tangency obtained by solving for a multiplier through the NS map (SSO-type), not by a
        # final projection: |⟨Θ, E⟩| ≤ ‖E‖₂ for the NS error E (‖Θ‖_* = 1), relative to ‖D‖_F
        t_ns = _orth_tolerance(ctx, G, E.orthogonalise(p, G, dt), dt)
        nd = max(float(np.linalg.norm(D)), 1e-300)
        tol = Tolerance(tol.bound + t_ns.bound / nd, f"{tol.formula} + [{t_ns.formula}]/‖D‖_F",
                        f"{tol.provenance}; NS error through the multiplier solve", dt)
    return Measurement("v_M(W, D)", v, tol, v <= tol.bound)
