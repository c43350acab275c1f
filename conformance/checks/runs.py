"""Optimizer runs as real training code drives them (issue 12 item 2): resuming from a state
dict, determinism, lr = 0, parameters without a gradient, step(closure), add_param_group, all-zero and non-finite gradients, a
start off the manifold and the declared radius source, feasibility along a run for every
constrained rule.

Every check builds its optimizer through the adapter's ``optimizer`` capability and reads
weights only (a target may set ``p.grad`` to None after a step; nothing here reads it back).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from .. import expected as E
from .. import tolerances as T
from ..adapters import to_numpy
from ..tolerances import Tolerance
from . import Case, Context, Measurement, NotApplicable, register
from ._util import boolean, call, tensor
from .rules import (BETA_A, BETA_B, LR_A, LR_B, WD_A, WD_B, case_dtypes, dyadic, hyper, run_scenario,
                    start_point)

CONSTRAINED = ("macro", "muonh", "sso")


def _rule(ctx: Context) -> str | None:
    return None if ctx.profile.rule != "none" else "profile declares no optimizer rule"


def _constrained(ctx: Context) -> str | None:
    if ctx.profile.rule not in CONSTRAINED:
        return "profile declares no manifold-constrained rule"
    return None


def _cases(ctx: Context, salt: str, steps: int, shapes: tuple[tuple[int, int], ...] = ((12, 8), (8, 12))) -> list[Case]:
    rng = ctx.rng(salt)
    if ctx.profile.rule in ("macro", "sso") and ctx.profile.manifolds:
        shapes = tuple(tuple(s) for s in ctx.profile.manifolds[0].shapes)[:2]
    return [Case(f"shape {s}, {dt}, {steps} step(s)",
                 {"W": start_point(ctx, rng, s), "Gs": np.stack([dyadic(rng, s) for _ in range(steps)])},
                 {"dtype": dt}) for dt in case_dtypes(ctx) for s in shapes]


def _fresh(ctx: Context, Ws: list[np.ndarray], dt: str, **hyper: Any) -> tuple[Any, list[torch.nn.Parameter]]:
    """A fresh optimizer on fresh parameters; torch's RNG is seeded so that runs compared bit for
    bit repeat a stochastic rounding (CONVENTIONS §12.11: fixed seed ⇒ same result)."""
    torch.manual_seed(ctx.seed)
    ps = [torch.nn.Parameter(tensor(E.round_to(W, dt), dt)) for W in Ws]
    return call(ctx, "optimizer", ps, **hyper), ps


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    d = np.abs(a - b)
    d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
    return float(np.nanmax(np.where(np.isnan(d), np.inf, d))) if d.size else 0.0


def _run(opt: Any, ps: list[torch.nn.Parameter], Gs: np.ndarray, dt: str, t0: int, t1: int) -> None:
    for t in range(t0, t1):
        ps[0].grad = tensor(Gs[t], dt)
        opt.step()


# ----------------------------------------------------------------------------------- resume
@register("optimizer.run.resume", "optimizer",
          "state_dict() after 2 steps → a fresh optimizer → load_state_dict() → 2 more steps gives "
          "bit-identically the weights of the uninterrupted 4-step run (the weights are restored "
          "after loading, as a checkpoint does).", requires={"optimizer"},
          cases=lambda c: _cases(c, "run.resume", 4), applies=_rule,
          catches=("momentum kept outside optimizer.state", "state not restored by load_state_dict",
                   "step counter lost on resume"))
def resume(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    W, Gs = case.arrays["W"], case.arrays["Gs"]
    opt, ps = _fresh(ctx, [W], dt, **hyp)
    _run(opt, ps, Gs, dt, 0, 4)
    ref = to_numpy(ps[0].data)
    opt, ps = _fresh(ctx, [W], dt, **hyp)
    _run(opt, ps, Gs, dt, 0, 2)
    sd = opt.state_dict()
    w_mid = ps[0].detach().clone()
    rng_state = torch.get_rng_state()  # a checkpoint keeps the RNG state (stochastic rounding)
    opt2, ps2 = _fresh(ctx, [to_numpy(w_mid)], dt, **hyp)
    opt2.load_state_dict(sd)
    torch.set_rng_state(rng_state)
    with torch.no_grad():
        ps2[0].copy_(w_mid)
    _run(opt2, ps2, Gs, dt, 2, 4)
    got = to_numpy(ps2[0].data)
    d = _maxdiff(got, ref)
    return Measurement("max |W_resumed − W_uninterrupted|", d, T.bitwise(), d == 0.0,
                       {"state_entries": len(sd.get("state", {}))})


def _momentum(ctx: Context) -> str | None:
    if ctx.profile.rule == "none" or ctx.profile.momentum_form == "none":
        return "profile declares no momentum"
    return None


def _tensors(x: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) state structure: dicts, lists and tuples."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


@register("optimizer.run.state_in_state_dict", "optimizer",
          "After a step, the momentum of every parameter is in optimizer.state (and state_dict()): "
          "a tensor of the parameter's shape equal to the declared first momentum "
          "(within parameter rounding).", requires={"optimizer"},
          cases=lambda c: _cases(c, "run.state", 1), applies=_momentum,
          catches=("momentum kept outside optimizer.state (lost on checkpoint)",))
def state_in_state_dict(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, 0.0)
    opt, ps = _fresh(ctx, [case.arrays["W"]], dt, **hyp)
    G = E.round_to(case.arrays["Gs"][0], dt)
    ps[0].grad = tensor(G, dt)
    opt.step()
    st = opt.state_dict().get("state", {})
    M1 = E.momentum_update(p, None, G, BETA_A)
    best = float("inf")
    for v in _tensors(st):
        if tuple(v.shape) == tuple(G.shape):
            best = min(best, float(np.linalg.norm(to_numpy(v) - M1)))
    tol = T.param_rounding(dt, 2, float(np.linalg.norm(M1)))
    return Measurement("min over state tensors ‖S − M₁*‖_F", best, tol, best <= tol.bound,
                       {"n_state_entries": len(st)})


# ----------------------------------------------------------------------------------- determinism, lr = 0
@register("optimizer.run.determinism", "optimizer",
          "Two fresh optimizer instances on the same weights and gradients give bit-identical "
          "weights after 3 steps.", requires={"optimizer"}, cases=lambda c: _cases(c, "run.det", 3),
          applies=_rule, catches=("state shared between instances (class-level buffers)", "hidden randomness"))
def determinism(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    outs = []
    for _ in range(2):
        opt, ps = _fresh(ctx, [case.arrays["W"]], dt, **hyp)
        _run(opt, ps, case.arrays["Gs"], dt, 0, 3)
        outs.append(to_numpy(ps[0].data))
    d = _maxdiff(outs[0], outs[1])
    return Measurement("max |W_run1 − W_run2|", d, T.bitwise(), d == 0.0)


@register("optimizer.run.lr_zero", "optimizer",
          "With lr = 0 two steps leave the weights unchanged (bit-exact for unconstrained rules; "
          "constrained rules may re-retract an on-manifold point: rounding of the retraction).",
          requires={"optimizer"}, cases=lambda c: _cases(c, "run.lr0", 2), applies=_rule,
          catches=("a step taken with lr = 0 (lr ignored, or a constant used)",))
def lr_zero(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    opt, ps = _fresh(ctx, [case.arrays["W"]], dt, **hyper(ctx, 0.0, BETA_A, WD_A))
    W0 = to_numpy(ps[0].data)
    _run(opt, ps, case.arrays["Gs"], dt, 0, 2)
    W2 = to_numpy(ps[0].data)
    d = float(np.linalg.norm(W2 - W0)) if np.all(np.isfinite(W2)) else float("inf")
    tol = _reretraction(ctx, W0, dt, 2)
    return Measurement("‖W₂ − W₀‖_F (lr = 0)", d, tol, d <= tol.bound)


def _reretraction(ctx: Context, W0: np.ndarray, dt: str, k: int) -> Tolerance:
    """What ``k`` retractions of a feasible point W₀ may change (constrained rules; bit-exact
    otherwise): each a norm (⌈log₂N⌉·u relative, N the entries it sums: the whole matrix, or one
    row/column on the oblique manifold) and a rescale (u)."""
    if ctx.profile.rule not in CONSTRAINED:
        return T.bitwise()
    m, n = W0.shape
    decl = ctx.profile.manifolds[0] if ctx.profile.manifolds else None
    N = m * n if decl is None or decl.kind != "oblique" else (n if (decl.axis or "rows") == "rows" else m)
    return T.param_rounding(dt, k * (1 + np.ceil(np.log2(max(N, 2)))), float(np.linalg.norm(W0)))


# ----------------------------------------------------------------------------------- grad None
@register("optimizer.run.grad_none", "optimizer",
          "A parameter whose grad is None is skipped and left bit-identical, and does not change "
          "the step of the others (equal to a run without it); a target that sets grad to None "
          "after a step is handled.", requires={"optimizer"}, cases=lambda c: _cases(c, "run.none", 2),
          applies=_rule, catches=("crash or update on grad None", "a skipped parameter changes the others"))
def grad_none(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    W, Gs = case.arrays["W"], case.arrays["Gs"]
    other = start_point(ctx, np.random.default_rng(7), W.shape)
    opt, (a, b) = _fresh(ctx, [W, other], dt, **hyp)
    B0 = to_numpy(b.data)
    a.grad = tensor(Gs[0], dt)
    try:
        opt.step()
    except Exception as exc:  # noqa: BLE001 - the defect this check names: say so, not a traceback
        return boolean("step() raised with a parameter whose grad is None", False,
                       "parameters with grad None are skipped", "torch.optim.Optimizer convention",
                       raised=f"{type(exc).__name__}: {exc}")
    Bt = to_numpy(b.data)
    solo, (s,) = _fresh(ctx, [W], dt, **hyp)
    s.grad = tensor(Gs[0], dt)
    solo.step()
    d_skip = _maxdiff(Bt, B0)
    d_other = _maxdiff(to_numpy(a.data), to_numpy(s.data))
    ok = d_skip == 0.0 and d_other == 0.0
    return Measurement("max(|W_skipped − W₀|, |W_other − W_solo|)", max(d_skip, d_other), T.bitwise(), ok,
                       {"skipped_param_change": d_skip, "other_param_vs_solo": d_other})


# ----------------------------------------------------------------------------------- step(closure)
@register("optimizer.run.closure", "optimizer",
          "step(closure) keeps torch.optim's contract: the closure is called exactly once, with "
          "gradient mode enabled (its backward() computes p.grad), before the update; step returns "
          "the closure's loss; and the weights equal those of step() after the same gradient was "
          "set by hand (bit-identical). Not applicable to a step() that takes no closure argument.",
          requires={"optimizer"}, cases=lambda c: _cases(c, "run.closure", 1), applies=_rule,
          catches=("closure called under torch.no_grad (backward fails or p.grad stays stale)",
                   "closure ignored or called after the update", "loss not returned"))
def closure(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, WD_A)
    W, G = case.arrays["W"], case.arrays["Gs"][0]
    opt, (p,) = _fresh(ctx, [W], dt, **hyp)
    try:
        params = inspect.signature(opt.step).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented step: no signature to read
        params = {}
    if "closure" not in params and not any(q.kind in (q.VAR_POSITIONAL, q.VAR_KEYWORD) for q in params.values()):
        raise NotApplicable("the target's step() takes no closure argument")
    Gt = tensor(G, dt)
    grad_modes: list[bool] = []
    losses: list[torch.Tensor] = []

    def closure_fn() -> torch.Tensor:
        # what a training loop's closure does: clear the gradient, evaluate, backward. The loss
        # ⟨p, G⟩ has gradient exactly G (the product's backward multiplies G by ones).
        grad_modes.append(torch.is_grad_enabled())
        p.grad = None
        loss = (p * Gt).sum()
        loss.backward()
        losses.append(loss)
        return loss

    try:
        ret = opt.step(closure_fn)
    except Exception as exc:  # noqa: BLE001 - a closure run without gradients raises in backward(): the defect
        return boolean("step(closure) raised", False, "the closure runs once with gradients enabled",
                       "torch.optim.Optimizer.step contract", raised=f"{type(exc).__name__}: {exc}",
                       calls=len(grad_modes), grad_enabled=grad_modes)
    Wc = to_numpy(p.data)
    ref, (q,) = _fresh(ctx, [W], dt, **hyp)
    q.grad = tensor(G, dt)
    ref.step()
    d = _maxdiff(Wc, to_numpy(q.data))
    # the loss object itself, an equal tensor, or its value as a number (torch annotates step -> float | None)
    returned = bool(losses) and (ret is losses[-1] or (isinstance(ret, torch.Tensor) and ret.shape == losses[-1].shape
                                                      and bool(torch.equal(ret.detach(), losses[-1].detach())))
                                 or (isinstance(ret, (int, float)) and not isinstance(ret, bool)
                                     and float(ret) == float(losses[-1].detach())))
    once = grad_modes == [True]
    details = {"calls": len(grad_modes), "grad_enabled": grad_modes, "loss_returned": returned,
               "max_abs_diff_vs_step": d}
    if not (once and returned):
        what = ("closure not called" if not grad_modes else f"closure called {len(grad_modes)} times" if len(grad_modes) != 1
                else "closure called with gradients disabled" if not grad_modes[0] else "step did not return the loss")
        return boolean(f"step(closure): {what}", False, "the closure runs once with gradients enabled and its "
                       "loss is returned", "torch.optim.Optimizer.step contract", **details)
    return Measurement("max |W(step(closure)) − W(step() with the same gradient)|", d, T.bitwise(), d == 0.0, details)


def _realisations_bound(ctx: Context, W0: np.ndarray, Gs: np.ndarray, dt: str, hyp: dict[str, Any],
                        salt: str) -> float:
    """Frobenius bound on how much the last of ``len(Gs)`` declared steps from ``W0`` may differ
    between two runs that round the orthogonaliser differently on the same input (another batch,
    another blocking): as optimizer.rule.equivariance, the N samples of the probabilistic rounding
    model of the declared orthogonaliser in disjoint pairs (update_norm.sample_steps and
    pair_bound, Higham & Mary). The earlier steps are rolled forward in float64 with the declared rule. 0 for sso
    (its multiplier solve is not replayable with a fixed output; bit identity is asked there); an
    exact msign: the exact-identity bound 100·u·n of its compute dtype on lr·s·√k."""
    from .update_norm import pair_bound, sample_steps

    p = ctx.profile
    if p.rule == "sso" or p.schedule is None:
        return 0.0
    lr, wd, beta = hyp["lr"], hyp.get("weight_decay", 0.0), hyp["momentum"]
    if not p.has_ns:  # an exact msign (SVD): another blocking moves it by the exact-identity bound
        k = min(W0.shape)
        s = (p.scale if p.rule == "macro" else 1.0) * E.shape_scale(p, W0.shape) if p.rule != "muonh" else \
            float(np.linalg.norm(W0)) / np.sqrt(k)
        return T.exact_identity(E.compute_dtype_for(p, dt), max(W0.shape),
                                scale=lr * s * (2.0 if p.rule == "macro" else 1.0) * np.sqrt(k)).bound
    man = radius_target(ctx, W0) if p.rule == "macro" and p.manifolds else None
    W, M = E.round_to(W0, dt), None
    for t, G in enumerate(Gs[:-1], 1):
        W, M = E.step(p, W, G, M, lr=lr, weight_decay=wd, t=t, beta=beta, input_dtype=dt, manifold=man)
    steps, W_decl = sample_steps(p, W, M, Gs[-1], len(Gs), hyp, dt, man, False, ctx.rng(salt))
    return pair_bound(p, W, steps, W_decl, dt)[0]


# ----------------------------------------------------------------------------------- add_param_group
@register("optimizer.run.add_param_group", "optimizer",
          "A parameter group added after a step (add_param_group, with its own lr, momentum and weight "
          "decay; a shape the first group does not have) is stepped by its own hyperparameters from "
          "fresh state: after one more step it equals a fresh optimizer's first step on it, and the "
          "first group equals its run without the added group (the added group bit-identical but for one "
          "retraction's rounding where a fresh optimizer places its parameters on the manifold at "
          "construction; the first group within two rounding realisations of the declared orthogonaliser, "
          "for optimizers that batch every matrix of a step; the fresh reference's defaults are the added "
          "group's own; torch's RNG is re-seeded before the compared steps).",
          requires={"optimizer"}, cases=lambda c: _cases(c, "run.addgroup", 2), applies=_rule,
          catches=("per-parameter state or buckets built only in __init__ (an added group skipped or crashing)",
                   "an added group stepped with the defaults instead of its own hyperparameters",
                   "an optimizer-wide step counter used as the added parameters' step"))
def add_param_group(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    ha, hb = hyper(ctx, LR_A, BETA_A, WD_A), hyper(ctx, LR_B, BETA_B, WD_B)
    W, Gs = case.arrays["W"], case.arrays["Gs"]
    rng = ctx.rng(f"run.addgroup.added {case.label}")
    shape_b = (W.shape[0] + 3, W.shape[1] + 1)  # neither W's shape nor its transpose: no shared batch
    Wb, Gb = start_point(ctx, rng, shape_b), dyadic(rng, shape_b)

    def combined(first_steps: bool) -> tuple[np.ndarray, np.ndarray]:
        opt, (a,) = _fresh(ctx, [W], dt, **ha)
        _run(opt, [a], Gs, dt, 0, 1)
        b = torch.nn.Parameter(tensor(E.round_to(Wb, dt), dt))
        opt.add_param_group({"params": [b], **ctx.adapter.group_hyper(**hb)})
        a.grad, b.grad = tensor(Gs[1], dt) if first_steps else None, tensor(Gb, dt)
        torch.manual_seed(ctx.seed + 1)
        opt.step()
        return to_numpy(a.data), to_numpy(b.data)

    # the references: the added group's parameter in a fresh optimizer, the first group's alone
    sb = torch.nn.Parameter(tensor(E.round_to(Wb, dt), dt))
    torch.manual_seed(ctx.seed)
    # the fresh reference's defaults are the added group's own: an optimizer that reads its
    # defaults instead of the group's values steps the added group differently from it
    fresh = call(ctx, "optimizer", [{"params": [sb], **ctx.adapter.group_hyper(**hb)}], **hb)
    if not hasattr(fresh, "add_param_group"):
        raise NotApplicable("the target's optimizer has no add_param_group")
    sb.grad = tensor(Gb, dt)
    torch.manual_seed(ctx.seed + 1)
    rng0 = torch.get_rng_state()
    fresh.step()
    draws = not torch.equal(torch.get_rng_state(), rng0)  # a stochastic rounding, declared or not
    solo, (sa,) = _fresh(ctx, [W], dt, **ha)
    _run(solo, [sa], Gs, dt, 0, 1)
    sa.grad = tensor(Gs[1], dt)
    torch.manual_seed(ctx.seed + 1)
    solo.step()
    try:
        # both groups step; a target that draws random numbers (re-seeded before the compared
        # step) is compared on the added group in a second run where the first group has no
        # gradient, so that the added group draws first, as in the fresh optimizer
        Wa, Wb_added = combined(True)
        if draws:
            Wb_added = combined(False)[1]
    except Exception as exc:  # noqa: BLE001 - the defect this check names: say so, not a traceback
        return boolean("add_param_group, then step(), raised", False, "an added group is stepped like the others",
                       "torch.optim.Optimizer.add_param_group", raised=f"{type(exc).__name__}: {exc}")
    Wsa, Wsb = to_numpy(sa.data), to_numpy(sb.data)
    moved = _maxdiff(Wb_added, E.round_to(Wb, dt)) > 0.0
    # Bit-identical is the rule. The first group: an implementation that batches every matrix of a
    # step (zero padding to a common shape) runs its orthogonaliser on another batch once a group is
    # added, and may round it differently (audit 5e: 1 fp32 ulp): it may differ by what two rounding
    # realisations of the declared orthogonaliser differ (_realisations_bound, the model of
    # optimizer.rule.equivariance). The added group (the largest shape, never padded): bit-identical
    # but for one retraction's rounding where a fresh constrained optimizer places its parameters on
    # the manifold at construction, and at least 2·u·‖W‖_F (a batched kernel may round it an ulp
    # apart when the batch around it changes). A skipped group, the defaults' hyperparameters or
    # state initialised otherwise move the step by O(1).
    b_a = _realisations_bound(ctx, W, Gs[:2], dt, ha, f"run.addgroup.first {case.label}")
    b_b = max(_reretraction(ctx, Wb, dt, 1).bound, 2.0 * T.unit_roundoff(dt) * float(np.linalg.norm(Wsb)))
    if ctx.profile.cast_point == "stochastic_rounding":
        # a declared stochastic rounding may draw from a generator of the optimizer's own (advanced by
        # the first step in one run, not in the fresh reference): two realisations of the rounding
        b_b += _realisations_bound(ctx, Wb, Gb[None], dt, hb, f"run.addgroup.added.sr {case.label}")
    d_a = float(np.linalg.norm(Wa - Wsa)) if np.all(np.isfinite(Wa)) else float("inf")
    d_b = float(np.linalg.norm(Wb_added - Wsb)) if np.all(np.isfinite(Wb_added)) else float("inf")
    ratio = max(d_a / b_a if b_a > 0 else (0.0 if d_a == 0 else float("inf")),
                d_b / b_b if b_b > 0 else (0.0 if d_b == 0 else float("inf")))
    tol = Tolerance(1.0, "‖W − W_ref‖_F ÷ bound per group: first mean(q) + λ·c_N·sd(q) + 2r, added max(one retraction's rounding, 2·u·‖W‖_F)",
                    "two rounding realisations of the declared orthogonaliser (probabilistic model of "
                    "optimizer.rule.equivariance, Higham & Mary 2019)", dt)
    ok = moved and ratio <= 1.0
    return Measurement("max over the two groups of ‖W − W_reference‖_F ÷ bound", ratio if moved else float("inf"),
                       tol, ok, {"added_group_vs_fresh": d_b, "bound_added": b_b, "first_group_vs_solo": d_a,
                                 "bound_first": b_a, "added_group_moved": moved,
                                 "bit_identical": d_a == 0.0 and d_b == 0.0})


# ----------------------------------------------------------------------------------- zero / non-finite gradients
def _zero_cases(ctx: Context) -> list[Case]:
    out = []
    for c in _cases(ctx, "run.zero", 3):
        Gs = c.arrays["Gs"].copy()
        Gs[1] = 0.0
        first = Gs.copy()
        first[0] = 0.0
        for lab, g in (("zero gradient at step 2", Gs), ("zero gradient at step 1", first)):
            W = c.arrays["W"]
            out.append(Case(f"{c.label}, {lab}", {"W_a0": W, "G_a0": g}, {**c.params, "steps": 3, "groups": 1}))
    return out


@register("optimizer.run.zero_gradient", "optimizer",
          "An all-zero gradient (at step 1, from zero momentum, and at step 2) gives finite weights "
          "equal to the declared rule (msign(0) = 0: no NaN, no division by zero).",
          requires={"optimizer"}, cases=_zero_cases, applies=_rule,
          catches=("NaN weights from an all-zero gradient", "division by ‖G‖ without eps"))
def zero_gradient(ctx: Context, case: Case) -> Measurement:
    return run_scenario(ctx, case)


def _nf_cases(ctx: Context) -> list[Case]:
    out = []
    for c in _cases(ctx, "run.nan", 1):
        for kind, val in (("NaN", np.nan), ("Inf", np.inf)):
            G = c.arrays["Gs"][0].copy()
            G.flat[G.size // 2] = val
            out.append(Case(f"{c.label}, one {kind} entry", {"W": c.arrays["W"], "G": G},
                            {**c.params, "kind": kind}))
    return out


@register("safety.nonfinite_gradient", "safety",
          "A NaN or Inf gradient is handled as the profile's nan_policy declares: 'propagate' — the "
          "weights become non-finite or a clear error is raised; 'raise' — an error is raised and "
          "the weights are bit-unchanged; 'nan_to_num' — finite weights are declared. Never finite "
          "weights after a non-finite gradient unless declared.", requires={"optimizer"},
          cases=_nf_cases, applies=_rule,
          catches=("NaN gradient silently producing finite weights", "weights changed before raising"))
def nonfinite_gradient(ctx: Context, case: Case) -> Measurement:
    pol = ctx.profile.nan_policy
    dt = case.params["dtype"]
    opt, (x,) = _fresh(ctx, [case.arrays["W"]], dt, **hyper(ctx, LR_A, BETA_A, WD_A))
    W0 = to_numpy(x.data)
    x.grad = tensor(case.arrays["G"], dt)
    raised = None
    try:
        opt.step()
    except Exception as exc:  # noqa: BLE001 - raising is a declared behaviour here
        raised = f"{type(exc).__name__}: {exc}"
    W1 = to_numpy(x.data)
    finite = bool(np.all(np.isfinite(W1)))
    unchanged = _bits_equal(W0, W1)
    if pol == "raise":
        ok, what = raised is not None and unchanged, "an error raised and the weights bit-unchanged"
    elif pol == "nan_to_num":
        ok, what = raised is None and finite, "finite weights (declared nan_to_num)"
    else:
        ok, what = raised is not None or not finite, "non-finite weights or a clear error"
    return boolean(f"{case.params['kind']} gradient handled as nan_policy={pol!r}", ok, what,
                   "CONVENTIONS §10 #18, §12.8; Profile.nan_policy", raised=raised,
                   weights_finite=finite, weights_unchanged=unchanged)


# ----------------------------------------------------------------------------------- constrained rules
def radius_target(ctx: Context, W0: np.ndarray) -> Any:
    """The manifold the iterates must lie on: the declared one, or (radius_source='init') the
    one through the starting weights (Frobenius norm, σ₁; oblique: each row's (column's) own norm,
    so W₀ is already on it — the 'init' convention gpu_impl and reference.optim.MACRO document)."""
    p = ctx.profile
    from manifold_oracle.reference import FrobeniusSphere, Oblique, SpectralSphere

    if p.rule == "muonh":
        return FrobeniusSphere(float(np.linalg.norm(W0)) if p.radius_source == "init" else p.manifolds[0].radius
                               if p.manifolds else float(np.linalg.norm(W0)))
    decl = p.manifolds[0]
    if p.radius_source == "declared":
        return decl.reference(point_tol=1e-3)
    if decl.kind == "frobenius_sphere":
        return FrobeniusSphere(float(np.linalg.norm(W0)))
    if decl.kind == "spectral_sphere":
        return SpectralSphere(float(np.linalg.norm(W0, 2)))
    if decl.kind == "oblique":
        ax = -1 if (decl.axis or "rows") == "rows" else -2
        return Oblique(np.linalg.norm(W0, axis=ax), axis=decl.axis or "rows")
    raise NotApplicable(f"radius_source='init' is not defined for {decl.kind}")


def feasibility_bound(ctx: Context, W: np.ndarray, lr: float, dt: str, man: Any,
                      U: np.ndarray | None = None) -> Tolerance:
    """Feasibility model of one step: retract-then-step rules (sso) are off by the first- and
    second-order terms of a step E = −lr·s·Φ from the retracted W_r (‖E‖₂ ≤ 1.2·lr·s):
    σ₁(W_r + E) − R ≤ |⟨Θ, E⟩| + ‖E‖₂²/(σ₁ − σ₂)(W_r) (Weyl + the gap of the RETRACTED W_r,
    R·(σ₁ − σ₂)/σ₁ of W: an off-manifold start ×1.7 inflated W's own gap by 1.7) and
    ⟨Θ, E⟩ = −lr·s·h_t(λ_t) (:func:`sso_first_order`, from the step's orthogonaliser input
    ``U``, the harness's momentum); the others only by rounding of the
    retraction. Per norm-and-rescale: the norm's relative error ≤ ⌈log₂mn⌉·u/2 + u/2 (pairwise
    sum of squares, square root), the scalar and the product 2u, the stored entries u: (L/2 + 4)·u;
    muonh rescales with two norms (r and ‖Y‖): (L + 5)·u. The spectral sphere's σ₁ and the Stiefel
    polar factor carry their own models (``tolerances.retraction_roundoff``), and the harness's float64
    evaluation of c_M adds ``tolerances.violation_roundoff``."""
    m, n = W.shape[-2:]
    L = float(np.ceil(np.log2(max(m * n, 2))))
    u = T.unit_roundoff(dt)
    if ctx.profile.rule == "muonh":
        b, formula = (L + 5.0) * u, f"(⌈log₂mn⌉ + 5)·u = {(L + 5.0) * u:.3e}"
    else:  # the manifold's own retraction (norm, σ₁ or polar factor) and the harness's measurement
        b, formula = T.retraction_roundoff(man, W.shape, u)
    nu, fnu = T.violation_roundoff(man, W.shape)
    b += nu
    formula += f" + {fnu} (measured in float64)"
    if ctx.profile.rule == "sso":
        s = ctx.profile.scale * E.shape_scale(ctx.profile, W.shape)
        R = float(getattr(man, "radius", 1.0))
        sv = np.linalg.svd(W, compute_uv=False)
        gap = max(R * float(sv[0] - (sv[1] if sv.size > 1 else 0.0)) / float(sv[0]), 1e-12)
        e = 1.2 * lr * s
        b += e * e / gap / R
        formula += f" + (1.2·lr·s)²/(σ₁ − σ₂)(W_r)/R (second order of a tangent step; gap {gap:.3g})"
        f1, ff1 = sso_first_order(ctx, W, U, dt, man)
        b += lr * s * f1 / R
        formula += f" + lr·s·{ff1}/R (first order: the λ solve's residual ⟨Θ, Φ⟩)"
    return Tolerance(b, formula, "CLAIMS X-2, V-5 (feasibility); MATH §9.4 retract-then-step", dt)


#: draws of the orthogonaliser's error seen through Θ in :func:`sso_first_order`
N_THETA = 16


def sso_first_order(ctx: Context, W: np.ndarray, U: np.ndarray | None, dt: str, man: Any) -> tuple[float, str]:
    """(bound, formula) on |⟨Θ, Φ_t⟩| after the target's λ solve (sso, Θ = u₁v₁ᵀ of W).

    The target bisects h_t(λ) = ⟨Θ, O_t(M̂ + λΘ)⟩ = h(λ) + e(λ), h the declared map without its
    input cast (continuous, increasing) and e its orthogonaliser's error seen through Θ (rounding
    inside the iteration and the cast of the input; h_t is a step function in bf16). It stops at
    |h_t| ≤ τ = 1e-8 or ends on two neighbouring λ with h_t of opposite signs and returns the one of
    smaller |h_t|: at most half the jump, ≤ max|e| near the root. e is measured on the target's
    own orthogonaliser (replayed) at N_THETA points λ_r + δ, δ uniform in ±2e-3·‖X‖_F (several
    bf16 cast patterns of X; the root zone |h| ≤ max|e| of the bf16 PE×5 target is ±3e-3 wide)
    around the root λ_r of the replayed bisection (X = M̂ + λ_rΘ, ``U`` the step's momentum), its
    bound ε the 1 − 5.7e-7 prediction bound of |e| (``rules.chi2_prediction``); without a replay
    (or without ``U``) ε = the orthogonaliser's worst-case ‖E‖₂ ≥ |⟨Θ, E⟩| at X (or at W). The
    target's own evaluation of h (Θ stored and ⟨Θ, Φ⟩ summed in the parameter dtype) adds
    (⌈log₂mn⌉ + 1)·u·1.2·√k."""
    from .rules import can_replay, case_rng, chi2_prediction, replay_orth, theta_of

    p = ctx.profile
    m, n = W.shape[-2:]
    L = float(np.ceil(np.log2(max(m * n, 2))))
    h_round = (L + 1.0) * T.unit_roundoff(dt) * 1.2 * np.sqrt(min(m, n))
    replay = U is not None and can_replay(ctx)
    orth = replay_orth(ctx, dt) if replay else None
    X = W if U is None else E.sso_input(p, W, U, manifold=man, orth=orth)[0]
    if orth is not None:
        Th = theta_of(W)
        q = p.with_options(compute_dtype="float64")
        nx = float(np.linalg.norm(X))
        rng = case_rng("sso.theta", X)
        e2 = np.array([float(np.sum(Th * (orth(Z) - E.orthogonalise(q, Z, "float64")))) ** 2
                       for Z in (X + d * nx * Th for d in rng.uniform(-2e-3, 2e-3, N_THETA))])
        eps, _ = chi2_prediction(e2)
        what = f"ε = {eps:.2e}: |⟨Θ, O_t − map⟩| near the root, {N_THETA} draws"
    else:
        o = T.orth_tolerance(p, X, E.orthogonalise(p, X, dt), dt)
        eps, what = o.bound, f"ε = ‖E‖₂ ≤ [{o.formula}]"
    return 1e-8 + eps + h_round, f"(τ + ε + (⌈log₂mn⌉ + 1)·u·1.2·√k) ({what})"


def _feas_cases(ctx: Context, salt: str, off: float) -> list[Case]:
    rng = ctx.rng(salt)
    steps = 12 if ctx.full else 6
    shapes = tuple(tuple(s) for s in ctx.profile.manifolds[0].shapes)[:2] if ctx.profile.manifolds else ((12, 8), (8, 12))
    out = []
    for dt in case_dtypes(ctx):
        for s in shapes:
            W = start_point(ctx, rng, s) * off
            out.append(Case(f"shape {s}, {dt}, {steps} steps" + (f", start ×{off:g} off the manifold" if off != 1 else ""),
                            {"W": W, "Gs": np.stack([dyadic(rng, s) for _ in range(steps)])}, {"dtype": dt}))
    decl = ctx.profile.manifolds[0] if ctx.profile.manifolds else None
    if off == 1 and ctx.profile.radius_source == "init" and decl is not None and decl.kind == "oblique":
        # 'init' on an oblique manifold keeps each row's (column's) own starting norm: a start whose
        # norms spread ×0.5–1.5 (a raw init) shows one radius taken for all of them
        ax = 1 if (decl.axis or "rows") == "rows" else 0
        for dt in case_dtypes(ctx):
            s = shapes[0]
            W = start_point(ctx, rng, s) * np.expand_dims(np.linspace(0.5, 1.5, s[1 - ax]), ax)
            out.append(Case(f"shape {s}, {dt}, {steps} steps, {'row' if ax else 'column'} norms spread ×0.5–1.5",
                            {"W": W, "Gs": np.stack([dyadic(rng, s) for _ in range(steps)])}, {"dtype": dt}))
    return out


def _feasibility(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    W0 = case.arrays["W"]
    man = radius_target(ctx, E.round_to(W0, dt))
    opt, (x,) = _fresh(ctx, [W0], dt, **hyper(ctx, LR_A, BETA_A, 0.0))
    worst, worst_tol, rows = -1.0, None, []
    M, U = None, None
    for t, G in enumerate(case.arrays["Gs"], start=1):
        Wt = to_numpy(x.data)
        x.grad = tensor(G, dt)
        opt.step()
        Y = to_numpy(x.data)
        v = float(np.max(man.violation(Y))) if np.all(np.isfinite(Y)) else float("inf")
        if ctx.profile.rule == "sso":  # the step's orthogonaliser input (first-order term of the bound)
            M, U = E.momentum_step(ctx.profile, M, E.round_to(G, dt), BETA_A, t)
        tol = feasibility_bound(ctx, Wt if np.all(np.isfinite(Wt)) else Y, LR_A, dt, man, U=U)
        rows.append({"step": t, "violation": v, "bound": tol.bound})
        if worst_tol is None or v / tol.bound > worst / worst_tol.bound:
            worst, worst_tol = v, tol
    assert worst_tol is not None
    return Measurement("max_t c_M(W_t)", worst, worst_tol, worst <= worst_tol.bound,
                       {"per_step": rows, "radius": getattr(man, "radius", None),
                        "radius_source": ctx.profile.radius_source})


@register("optimizer.run.feasibility", "optimizer",
          "Along a run (6 steps; 12 in full mode) every iterate lies on the declared manifold "
          "(macro: after the retraction; muonh: ‖W_t‖_F = R; sso: σ_max(W_t) = R up to the second "
          "order of one tangent step: retract-then-step must not drift) (CLAIMS X-2, V-5).",
          requires={"optimizer"}, cases=lambda c: _feas_cases(c, "run.feas", 1.0), applies=_constrained,
          catches=("retraction skipped (drift along the run)", "weight decay shrinking the radius", "wrong radius"))
def feasibility(ctx: Context, case: Case) -> Measurement:
    return _feasibility(ctx, case)


@register("optimizer.run.off_manifold_start", "optimizer",
          "Started off the manifold (weights ×1.7, outside; and ×0.5, inside the ball, where a "
          "retraction by clipping W / max(1, ‖W‖/R) leaves the point where it is), the iterates lie on "
          "the manifold of the declared radius source (Profile.radius_source: 'declared' — the declared "
          "radius whatever the start; 'init' — the radius of the starting weights) after the first step.",
          requires={"optimizer"},
          cases=lambda c: _feas_cases(c, "run.off", 1.7) + _feas_cases(c, "run.off.inside", 0.5),
          applies=_constrained,
          catches=("radius taken from wherever the weights start", "an off-manifold start left off",
                   "retraction by clipping to the ball instead of rescaling onto the sphere"))
def off_manifold_start(ctx: Context, case: Case) -> Measurement:
    return _feasibility(ctx, case)


# ----------------------------------------------------------------------------------- 1-D parameters
def _vector_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule == "none":
        return "profile declares no optimizer rule"
    if p.vector_params == "unsupported":
        return "profile makes no claim about 1-D parameters (vector_params='unsupported')"
    if p.vector_params == "ns" and p.rule != "muon":
        return "vector_params='ns' is checked for the unconstrained rule (muon) only"
    return None


def _vector_cases(ctx: Context) -> list[Case]:
    out = []
    for c in _cases(ctx, "run.vector", 1):
        n = c.arrays["W"].shape[0] + 4
        rng = ctx.rng(f"run.vector.{c.label}")
        out.append(Case(f"{c.label} + a 1-D parameter ({n},) starting at 0 in the same group",
                        {**c.arrays, "g": dyadic(rng, (n,))}, c.params))
    return out


def _adam_spread(db: np.ndarray, g: np.ndarray, dt: str, eps: float | None,
                 a_decl: float | None = None) -> tuple[float, Tolerance]:
    """Relative spread of the step size a_i = −Δb_i·(|G_i| + ε)/G_i over the entries with G ≠ 0
    (a sign flip counts as 2): Adam's first step from zero moments is −a·G/(|G| + ε), the same a
    for every entry. ``eps`` the declared ε (``Profile.adam_eps``), None when undeclared;
    ``a_decl`` the declared a (``Profile.adam_lr``): then also |median a/a_decl − 1| (a step
    scaled as a whole, e.g. without Adam's bias correction: ×(1 − β₁)/√(1 − β₂) = 3.2)."""
    nz = g != 0
    a = -db[nz] * (np.abs(g[nz]) + (eps or 0.0)) / g[nz]
    c = float(np.median(a)) if a.size else 0.0
    if not np.all(np.isfinite(db)) or c <= 0.0:
        return float("inf"), T.bitwise()
    spread = float(np.max(np.abs(a / c - 1.0)))
    if a_decl is not None:
        # the median's own rounding (≤ 8u, below) plus the scalars common to every entry (lr over
        # the bias correction, √ of the second one: ≤ 4u) stay inside the same bound
        spread = max(spread, abs(c / a_decl - 1.0))
    u = T.unit_roundoff(dt)
    if eps is not None:
        # declared ε: a_i = a·(1 + θ_i) with θ_i the rounding of entry i's own operations, |θ_i| ≤ 8u
        # (m = (1 − β₁)G: 1; v = (1 − β₂)G²: 2, halved by the square root, which rounds once more:
        # 2; the bias-correction division and + ε: 2; m/denom and the product with the step size: 2;
        # the store in the parameter dtype: 1); the scalars (lr, bias corrections) are common to all
        # entries and cancel in a_i/c; |a_i/c − 1| ≤ |θ_i| + |θ_median| ≤ 16u (Higham Thm 2.2)
        return spread, Tolerance(16.0 * u, f"2·8·u = 16·{u:.3e} (declared ε = {eps:g}"
                                 + (f", declared a = {a_decl:g})" if a_decl is not None else ")"),
                                 "Adam first step −a·G/(|G| + ε) from zero moments (Kingma & Ba, Alg. 1); "
                                 "elementwise rounding (Higham Thm 2.2)", dt)
    # ε undeclared: relative spread ≤ ε_eff/min|G| with ε_eff ≤ 1e-6 (torch/optax ε = 1e-8,
    # ÷ √(1 − β₂) ≤ 32 for β₂ ≤ 0.999) and |G| ≥ 1/16 (dyadic); rounding of m̂/(√v̂ + ε)·a and the
    # store: 6 ops on each of two entries → 12·u
    b = 1e-6 * 16.0 + 12.0 * u
    return spread, Tolerance(b, f"ε_eff/min|G| + 12·u = 1e-6·16 + 12·{u:.3e} (ε undeclared)",
                             "Adam first step −a·G/(|G| + ε) from zero moments (Kingma & Ba, Alg. 1)", dt)


@register("optimizer.run.vector_params", "optimizer",
          "A 1-D parameter (a bias starting at 0) in the group of a matrix is handled as the profile's "
          "vector_params declares (refuse: an error, the vector unchanged; skip: untouched; sgd: "
          "W − lr·U, the rule's momentum/Nesterov update unorthogonalised; ns: the rule on the (n, 1) "
          "view; adamw: a sign-like first step −a·G/(|G| + ε)), and the matrix's step equals the step "
          "without the vector (bit-identical).", requires={"optimizer"}, cases=_vector_cases,
          applies=_vector_applies,
          catches=("a bias sent through Newton–Schulz as a 1×n matrix", "a vector stepped by the wrong rule",
                   "a vector in the group changes the matrix's step"))
def vector_params(ctx: Context, case: Case) -> Measurement:
    from .rules import can_replay, exact_rule_input, replay_orth, step_bound

    p = ctx.profile
    pol = p.vector_params
    dt = case.params["dtype"]
    hyp = hyper(ctx, LR_A, BETA_A, 0.0)
    W, G, g = case.arrays["W"], case.arrays["Gs"][0], case.arrays["g"]
    b0 = np.zeros_like(g)
    raised, x = None, None
    try:
        opt, (x, b) = _fresh(ctx, [W, b0], dt, **hyp)
        x.grad, b.grad = tensor(G, dt), tensor(g, dt)
        opt.step()
    except Exception as exc:  # noqa: BLE001 - raising is the declared behaviour for 'refuse'
        raised = f"{type(exc).__name__}: {exc}"
    if pol == "refuse" or raised is not None:
        unchanged = raised is not None and (x is None or _bits_equal(to_numpy(b.data), b0))
        return boolean(f"1-D parameter handled as vector_params={pol!r}", pol == "refuse" and unchanged,
                       "an error raised and the vector unchanged" if pol == "refuse" else "no error",
                       "CONVENTIONS §1 vector_params", raised=raised)
    solo, (s,) = _fresh(ctx, [W], dt, **hyp)
    s.grad = tensor(G, dt)
    solo.step()
    d_mat = _maxdiff(to_numpy(x.data), to_numpy(s.data))
    db = to_numpy(b.data).astype(np.float64) - b0
    gd = E.round_to(g, dt)
    if pol == "skip":
        err, tol = float(np.abs(db).max()), T.bitwise()
    elif pol == "adamw":
        a_decl = None if p.adam_lr is None else float(hyp["lr"]) if p.adam_lr == "lr" else float(p.adam_lr)
        err, tol = _adam_spread(db, gd, dt, p.adam_eps, a_decl)
    elif pol == "sgd":
        _, U = E.momentum_step(p, None, gd, BETA_A, 1)
        exp = -LR_A * U
        err = float(np.linalg.norm(db - exp)) if np.all(np.isfinite(db)) else float("inf")
        # U from dyadic G and β = 3/4 (2 roundings in the blend), lr·U (1), the sum with 0 (exact)
        tol = T.param_rounding(dt, 3, float(np.linalg.norm(exp)))
    else:  # ns: the rule on the (n, 1) view
        exact = exact_rule_input(p)
        replay = can_replay(ctx, seeded_exact_input=exact)
        Wv, Gv = b0[:, None], gd[:, None]
        _, U = E.momentum_step(p, None, Gv, BETA_A, 1)
        X = E.orth_input(p, Wv, U, manifold=None)
        Wexp, _ = E.step(p, Wv, Gv, None, lr=LR_A, weight_decay=0.0, t=1, beta=BETA_A, input_dtype=dt,
                         orth=replay_orth(ctx, dt) if replay else None)
        db_exp = Wexp[:, 0] - b0
        err = float(np.linalg.norm(db - db_exp)) if np.all(np.isfinite(db)) else float("inf")
        tol, _ = step_bound(ctx, Wv, Wexp, U, X, dt, LR_A, replay, exact_input=exact)
    ok = err <= tol.bound and d_mat == 0.0
    note = ({"reduced_power": "vector_params='adamw' without a declared adam_eps: the step-size spread is "
             "judged against the loose bound ε_eff/min|G| (ε_eff ≤ 1e-6); declare Profile.adam_eps for "
             "the rounding-only bound"} if pol == "adamw" and p.adam_eps is None else {})
    return Measurement(f"1-D parameter vs vector_params={pol!r}", err, tol, ok,
                       {"matrix_vs_solo": d_mat, "vector_step_norm": float(np.linalg.norm(db)), **note})
