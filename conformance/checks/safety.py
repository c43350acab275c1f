"""Safety: no mutation or aliasing of inputs/gradients/state, NaN/Inf and zero handling, scale
invariance, batched = per-slice, transpose equivariance, determinism, device preservation
(CLAIMS P-2, X-3; CONVENTIONS.md §10 entries 1–3, 5, 7, 18; §12.3, §12.4).

A profile declares conventions, never defects: a write into an input or ``p.grad`` and a silent
wrong output at any finite scale are failures whatever the profile says (a user accepts one with
a waiver file). The NaN policy is a convention: ``nan_policy='nan_to_num'`` is reported as an
expected failure with that reason, never as a pass.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from .. import expected as E
from .. import tolerances as T
from ..adapters import as_output, to_numpy
from ..tolerances import Tolerance
from . import Case, Context, Declared, Measurement, NotApplicable, register
from ._util import boolean, call, input_dtype, require_ns_or_exact, spec2, tensor

ALL_DTYPES = ("bfloat16", "float16", "float32", "float64")


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().clone()
    return t.view(torch.int16) if t.element_size() == 2 else (t.view(torch.int32) if t.element_size() == 4
                                                             else t.view(torch.int64))


def _changed(before: torch.Tensor, after: torch.Tensor) -> bool:
    return not torch.equal(_bits(before), _bits(after))


def _mut_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("safety.mut")
    dts = ALL_DTYPES if ctx.full else ("bfloat16", "float32")
    return [Case(f"{dt} {shp}", {"G": rng.standard_normal(shp)}, {"dtype": dt})
            for dt in dts for shp in ((6, 4), (4, 6))]


@register("safety.no_mutation.msign", "safety",
          "The orthogonaliser does not modify its input (bf16/fp16/fp32/fp64 inputs; bit equality; "
          "CLAIMS X-3).", requires={"msign"}, cases=_mut_cases, applies=require_ns_or_exact,
          catches=("in-place normalisation of the input",))
def no_mutation_msign(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    g = tensor(case.arrays["G"], dt)
    before = g.clone()
    try:
        call(ctx, "msign", g)
    except NotApplicable:
        raise
    except Exception as exc:  # noqa: BLE001 - rejecting a dtype is allowed; mutation is not
        return boolean("input changed", not _changed(before, g), "input bits unchanged", "CLAIMS X-3",
                       raised=f"{type(exc).__name__}: {exc}")
    return boolean("input changed", not _changed(before, g), "input bits unchanged", "CLAIMS X-3")


def _shares_memory(a: Any, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


@register("safety.no_aliasing.msign", "safety",
          "The orthogonaliser's output does not share memory with its input (a caller that updates "
          "one must not change the other; CONVENTIONS §10 #1–2).", requires={"msign"}, cases=_mut_cases,
          applies=require_ns_or_exact, catches=("output aliases the input",))
def no_aliasing_msign(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    g = tensor(case.arrays["G"], dt)
    try:
        out = call(ctx, "msign", g)
    except NotApplicable:
        raise
    except Exception as exc:  # noqa: BLE001 - rejecting a dtype is allowed
        return boolean("output aliases input", True, "no shared storage", "CLAIMS X-3",
                       raised=f"{type(exc).__name__}: {exc}")
    return boolean("output aliases input", not _shares_memory(out, g), "no shared storage", "CLAIMS X-3")


def _opt_dtypes(ctx: Context) -> tuple[str, ...]:
    return tuple(ctx.profile.param_dtypes)


def _opt_mut_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("safety.optmut")
    out = []
    shp = ((ctx.profile.manifolds[0].shapes[0]) if ctx.profile.rule == "macro" else (8, 5))
    for dt in _opt_dtypes(ctx):
        for nest in _nesterov_variants(ctx):
            W = _point(ctx, rng, shp)
            out.append(Case(f"{dt} nesterov={nest}", {"W": W, "G": rng.standard_normal(shp)},
                            {"dtype": dt, "nesterov": nest}))
    return out


def _nesterov_variants(ctx: Context) -> tuple[Any, ...]:
    return (True, False) if getattr(ctx.adapter, "nesterov_toggle", False) else (None,)


def _point(ctx: Context, rng: np.random.Generator, shp: tuple[int, int]) -> np.ndarray:
    if ctx.profile.rule == "macro":
        return ctx.profile.manifolds[0].reference().random_point(rng, shp)
    return rng.standard_normal(shp) / np.sqrt(shp[1])


def _make_opt(ctx: Context, W: np.ndarray, dt: str, nesterov: Any) -> tuple[Any, torch.nn.Parameter]:
    p = torch.nn.Parameter(tensor(W, dt))
    hyper: dict[str, Any] = {"lr": 0.05, "momentum": ctx.profile.momentum, "weight_decay": 0.0}
    if nesterov is not None:
        hyper["nesterov"] = nesterov
    return call(ctx, "optimizer", [p], **hyper), p


@register("safety.no_mutation.gradient", "safety",
          "An optimizer step does not modify p.grad (bit equality; nesterov on and off where the "
          "target can toggle it; CLAIMS X-3; CONVENTIONS §10 #3).",
          requires={"optimizer"}, cases=_opt_mut_cases, catches=("gradient mutated",))
def no_mutation_gradient(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    opt, p = _make_opt(ctx, case.arrays["W"], dt, case.params["nesterov"])
    g = tensor(case.arrays["G"], dt)
    p.grad = g
    before = g.clone()
    opt.step()
    # the tensor handed in is compared (a target may set p.grad to None or replace it after a step)
    changed = _changed(before, g) or (p.grad is not None and p.grad is not g and _changed(before, p.grad))
    # writing into p.grad is a defect whatever the profile says (issue 12 item 5: profiles declare
    # conventions, never bugs); a user who accepts it waives this check id (--waive)
    return boolean("gradient changed", not changed, "p.grad bits unchanged after step()", "CLAIMS X-3")


@register("safety.no_aliasing.state", "safety",
          "After a step the optimizer state (momentum buffer) shares memory neither with p.grad nor "
          "with the parameter (CONVENTIONS §10 #1–3).", requires={"optimizer"}, cases=_opt_mut_cases,
          applies=lambda c: None if c.profile.momentum_form != "none" else "profile declares no momentum",
          catches=("state aliases the gradient",))
def no_aliasing_state(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    opt, p = _make_opt(ctx, case.arrays["W"], dt, case.params["nesterov"])
    g = tensor(case.arrays["G"], dt)
    p.grad = g
    opt.step()
    buf = ctx.adapter.momentum_buffer(opt, p)
    if buf is None:
        raise NotApplicable("the adapter exposes no momentum buffer (momentum_buffer() returned None)")
    alias = _shares_memory(buf, g) or _shares_memory(buf, p.data) or (
        p.grad is not None and _shares_memory(buf, p.grad))
    return boolean("state aliases grad or parameter", not alias, "no shared storage", "CLAIMS X-3")


def _momentum_applies(ctx: Context) -> str | None:
    if ctx.profile.momentum_form == "none":
        return "profile declares no momentum"
    return None


@register("safety.state_integrity", "safety",
          "After one and two steps the momentum buffer equals the declared recursion "
          "(EMA: βM + (1−β)G; accumulate: βM + G) — no in-place normalisation or aliasing of the "
          "state (CONVENTIONS §10 #1, #2; CLAIMS X-3).", requires={"optimizer"}, cases=_opt_mut_cases,
          applies=_momentum_applies, catches=("momentum buffer normalised in place", "bf16 aliasing"))
def state_integrity(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    opt, p = _make_opt(ctx, case.arrays["W"], dt, case.params["nesterov"])
    rng = np.random.default_rng(zlib.crc32(case.label.encode()) + ctx.seed)
    G1 = E.round_to(case.arrays["G"], dt)
    G2 = E.round_to(rng.standard_normal(G1.shape), dt)
    M = None
    worst, tol_b = 0.0, 0.0
    for G in (G1, G2):
        p.grad = tensor(G, dt)
        opt.step()
        buf = ctx.adapter.momentum_buffer(opt, p)
        if buf is None:
            raise NotApplicable("the adapter exposes no momentum buffer (momentum_buffer() returned None)")
        M = E.momentum_update(ctx.profile, M, G, ctx.profile.momentum)
        got = to_numpy(buf)
        err = float(np.linalg.norm(got - M)) if np.all(np.isfinite(got)) else float("inf")
        tb = T.rounding(dt, 4, scale=float(np.linalg.norm(M))).bound
        if err / tb > worst / max(tol_b, 1e-300) or tol_b == 0.0:
            worst, tol_b = err, tb
    tol = Tolerance(tol_b, "max(4·u·n_ops, assert_close rtol)·‖M‖_F", "CLAIMS X-3; MATH §9.1 momentum forms", dt)
    return Measurement("‖buffer − M_t*‖_F", worst, tol, worst <= tol_b)


def _nan_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("safety.nan")
    G = rng.standard_normal((6, 4))
    Gn = G.copy()
    Gn[2, 1] = np.nan
    Gi = G.copy()
    Gi[0, 3] = np.inf
    return [Case("NaN entry", {"G": Gn}, {"kind": "nan"}), Case("Inf entry", {"G": Gi}, {"kind": "inf"})]


@register("safety.nan_propagation", "safety",
          "A NaN or Inf in the input never comes back as a finite output: the output contains a "
          "NaN/Inf or a clear error is raised (CONVENTIONS §10 #18; §12.8).",
          requires={"msign"}, cases=_nan_cases, applies=require_ns_or_exact,
          catches=("NaN hidden by nan_to_num",))
def nan_propagation(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    g = torch.tensor(case.arrays["G"], dtype=torch.float64).to(getattr(torch, dt))
    try:
        out = to_numpy(as_output(call(ctx, "msign", g)))
    except NotApplicable:
        raise
    except Exception as exc:  # noqa: BLE001 - raising is the documented alternative
        return boolean("non-finite input came back finite", True, "output non-finite or error raised",
                       "CONVENTIONS §12.8", raised=f"{type(exc).__name__}: {exc}")
    hidden = bool(np.all(np.isfinite(out)))
    if hidden and ctx.profile.nan_policy == "nan_to_num":
        raise Declared("documented by the profile: nan_policy='nan_to_num' hides non-finite inputs")
    return boolean("non-finite input came back finite", not hidden, "output non-finite or error raised",
                   "CONVENTIONS §12.8 (nan_to_num must not hide a NaN input)")


def _unit_g(ctx: Context, salt: str) -> np.ndarray:
    """A well-conditioned (κ = 1.5) 9×6 matrix with ‖G‖_F = 1: the scale checks test the
    normaliser, so the case keeps the orthogonaliser's own rounding small."""
    from manifold_oracle.reference.generators import random_matrix

    G = random_matrix(ctx.rng(salt), (9, 6), cond=1.5)
    return G / np.linalg.norm(G)


def _representable(c: float, G: np.ndarray, dt: str) -> bool:
    """Entries of c·G are normal numbers of ``dt`` with room to spare (the test is of the
    routine, not of the input format)."""
    info = np.finfo(np.float32) if dt in ("float32", "bfloat16", "float16") else np.finfo(np.float64)
    if dt == "float16":
        info = np.finfo(np.float16)
    small = float(np.min(np.abs(G[G != 0]))) * c
    return small > float(info.tiny) * 1e3 and float(np.max(np.abs(G))) * c < float(info.max) / 1e3


def _scale_cases(ctx: Context) -> list[Case]:
    G = _unit_g(ctx, "safety.scale")
    exps = range(-12, 13, 2) if ctx.full else range(-12, 13, 4)
    lo, hi = ctx.profile.scale_range or (0.0, float("inf"))  # None: the dtype's whole finite range
    dt = input_dtype(ctx.profile)
    return [Case(f"‖G‖_F = 1e{e}", {"G": G}, {"scale": 10.0**e}) for e in exps
            if lo <= 10.0**e <= hi and _representable(10.0**e, G, dt)]


def _bound2(ctx: Context, G: np.ndarray, dt: str) -> Tolerance:
    t = T.orth_tolerance(ctx.profile, G, E.orthogonalise(ctx.profile, G, dt), dt)
    return Tolerance(2 * t.bound, f"2·[{t.formula}]", t.provenance, t.dtype)


@register("safety.scale_invariance", "safety",
          "O(cG) = O(G) for every ‖cG‖_F ∈ [1e-12, 1e12] in the profile's promised range (scale_range; "
          "default None: the input dtype's whole finite range) where the declared map itself is invariant (the eps term "
          "changes the exact map by less than half the bound), within twice the orthogonaliser "
          "bound (CLAIMS P-2).", requires={"msign"}, cases=_scale_cases, applies=require_ns_or_exact,
          catches=("eps floor breaking scale invariance", "overflow in the normaliser"))
def scale_invariance(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    G = E.round_to(case.arrays["G"], dt)
    c = case.params["scale"]
    Gc = E.round_to(c * G, dt)
    tol = _bound2(ctx, G, dt)
    declared_change = spec2(E.orthogonalise(ctx.profile, Gc, dt) - E.orthogonalise(ctx.profile, G, dt))
    if declared_change > 0.5 * tol.bound:
        raise NotApplicable(f"the declared map is not scale invariant at ‖G‖_F = {c:g} (eps term changes it "
                            f"by {declared_change:.2e}); see safety.extreme_scale")
    base = to_numpy(as_output(call(ctx, "msign", tensor(G, dt))))
    out = to_numpy(as_output(call(ctx, "msign", tensor(Gc, dt))))
    err = spec2(out - base) if np.all(np.isfinite(out)) else float("inf")
    return Measurement("‖O(cG) − O(G)‖₂", err, tol, err <= tol.bound, {"scale": c})


def _extreme_cases(ctx: Context) -> list[Case]:
    G = _unit_g(ctx, "safety.extreme")
    dt = input_dtype(ctx.profile)
    exps = (-30, -25, -20, -15, 15, 20, 25, 30) if ctx.full else (-30, -20, 20, 30)
    scales = [(f"1e{e}", 10.0**e) for e in exps]
    p = ctx.profile
    if p.has_ns and p.eps_form != "none" and p.eps > 0:
        # around the declared ε, where "+eps" and "clamp" differ most (at ‖G‖_F = ε the input
        # is G/(2ε) against G/ε) and far below/above it they are the same linear map or invariant
        scales += [(f"{k:g}ε", k * p.eps) for k in (0.3, 1.0, 3.0)]
    return [Case(f"‖G‖_F = {name}", {"G": G}, {"scale": c}) for name, c in scales if _representable(c, G, dt)]


@register("safety.extreme_scale", "safety",
          "At extreme scales ‖G‖_F ∈ [1e-30, 1e30] (representable in the input dtype), and at 0.3, 1 "
          "and 3 times the declared ε, the output follows the declared map of cG, eps term included (no overflow/underflow of the "
          "normaliser, no silent zero: a silent all-zero output for a finite nonzero input is a failure "
          "at every scale; the declared eps behaviour near zero is part of the declared map).", requires={"msign"}, cases=_extreme_cases,
          applies=require_ns_or_exact, catches=("overflow in the normaliser", "silent zero output"))
def extreme_scale(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    c = case.params["scale"]
    Gc = E.round_to(c * case.arrays["G"], dt)
    exp = E.orthogonalise(ctx.profile, Gc, dt)
    tol = _bound2(ctx, E.round_to(case.arrays["G"], dt), dt)
    try:
        out = to_numpy(as_output(call(ctx, "msign", tensor(Gc, dt))))
    except NotApplicable:
        raise
    except Exception as exc:  # noqa: BLE001 - a clear error is acceptable, a silent wrong value is not
        return boolean("silent wrong output", True, "a raised error is acceptable", "CONVENTIONS §12.8",
                       raised=f"{type(exc).__name__}: {exc}")
    err = spec2(out - exp) if np.all(np.isfinite(out)) else float("inf")
    # an exactly zero output where the declared map is not small cannot come from rounding (each
    # step is a product of nonzero iterates); it is a silent failure even when the low-precision
    # bound is loose, so it is reported as ∞
    silent_zero = bool(np.all(out == 0)) and float(np.linalg.norm(exp)) >= 0.5
    if silent_zero:
        err = float("inf")
    figure = "‖O(cG) − O*(cG)‖₂ (∞ for a silent all-zero output)"
    if silent_zero:  # name the usual cause (audit 3: a norm taken in bf16 overflowed at 1e20)
        figure += (f": all zero at ‖G‖_F = {c:.0e}, typically ‖G‖_F or ‖G‖²_F overflowing the normaliser's "
                   "dtype (G/∞ = 0) or flushing to zero")
    elif not np.all(np.isfinite(out)):
        figure += (f": non-finite output at ‖G‖_F = {c:.0e}, typically the normaliser overflowing to ∞ or "
                   "underflowing to 0 before the division")
    # no scale is exempt: the whole finite range of the dtype is promised (issue 12 item 5)
    return Measurement(figure, err, tol, err <= tol.bound,
                       {"scale": c, "output_fro": float(np.linalg.norm(out)),
                        "declared_fro": float(np.linalg.norm(exp)), "silent_zero": silent_zero})


def _batched_applies(ctx: Context) -> str | None:
    r = require_ns_or_exact(ctx)
    if r:
        return r
    if ctx.profile.ndim_handling != "batched":
        return f"profile declares ndim_handling={ctx.profile.ndim_handling!r}"
    return None


@register("safety.batched", "safety",
          "Batched application equals per-slice application (CLAIMS P-2), within twice the bound.",
          requires={"msign"}, cases=lambda c: [Case("batch of 3 (5×4)", {"G": c.rng("safety.batch").standard_normal((3, 5, 4))})],
          applies=_batched_applies)
def batched(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    G = E.round_to(case.arrays["G"], dt)
    whole = to_numpy(as_output(call(ctx, "msign", tensor(G, dt))))
    per = np.stack([to_numpy(as_output(call(ctx, "msign", tensor(G[i], dt)))) for i in range(G.shape[0])])
    err = spec2(whole - per)
    t = T.orth_tolerance(ctx.profile, G[0], E.orthogonalise(ctx.profile, G[0], dt), dt)
    tol = Tolerance(2 * t.bound, f"2·[{t.formula}]", t.provenance, t.dtype)
    return Measurement("max_i ‖O[i] − O(G[i])‖₂", err, tol, err <= tol.bound)


@register("safety.transpose", "safety",
          "O(Gᵀ) = O(G)ᵀ (CLAIMS P-2), within twice the bound.", requires={"msign"},
          cases=lambda c: [Case(f"{s}", {"G": c.rng('safety.T').standard_normal(s)}) for s in ((7, 4), (4, 7))],
          applies=require_ns_or_exact, catches=("rows/cols confusion in the transpose rule",))
def transpose(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    G = E.round_to(case.arrays["G"], dt)
    a = to_numpy(as_output(call(ctx, "msign", tensor(G, dt))))
    b = to_numpy(as_output(call(ctx, "msign", tensor(G.T.copy(), dt))))
    err = spec2(a - b.T)
    t = T.orth_tolerance(ctx.profile, G, E.orthogonalise(ctx.profile, G, dt), dt)
    tol = Tolerance(2 * t.bound, f"2·[{t.formula}]", t.provenance, t.dtype)
    return Measurement("‖O(Gᵀ) − O(G)ᵀ‖₂", err, tol, err <= tol.bound)


@register("safety.determinism", "safety",
          "Two calls on the same input give bit-identical outputs on the same device and dtype "
          "(no hidden randomness; stochastic rounding must be seeded), and the device is preserved.",
          requires={"msign"}, cases=lambda c: [Case("6×4", {"G": c.rng("safety.det").standard_normal((6, 4))})],
          applies=require_ns_or_exact)
def determinism(ctx: Context, case: Case) -> Measurement:
    dt = input_dtype(ctx.profile)
    g = tensor(case.arrays["G"], dt)
    torch.manual_seed(ctx.seed)
    a = as_output(call(ctx, "msign", g.clone()))
    torch.manual_seed(ctx.seed)
    b = as_output(call(ctx, "msign", g.clone()))
    same = torch.equal(_bits(a), _bits(b)) and a.device == g.device
    return boolean("outputs differ or device changed", same, "bit equality; device == input device",
                   "CONVENTIONS §12.11 (precision state recorded; fixed seed ⇒ same result)")
