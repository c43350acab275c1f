"""Distributed family: the target's sharded optimizer under FSDP2 on N gloo ranks (2 and 4).

Capability ``sharded_optimizer(params, mesh, **hyper)`` (hyper: lr, momentum, weight_decay):
``params`` is a list mixing DTensors sharded by ``torch.distributed.fsdp.fully_shard`` on the
1-D ``mesh`` (``Shard(0)``, ``torch.chunk`` rows) and plain replicated tensors; it returns an
object with ``step()``. The harness launches the target in fresh processes
(:func:`gpu_impl.distributed.run_ranks`: one timeout per launch, all ranks' process groups
killed when one fails), on 1, 2 and 4 ranks, with fixed seeded gradients on two small sets
(set "edge"): 33×8 (uneven: 17/16 rows on 2 ranks), 16×16 kept replicated (a plain tensor
outside ``fully_shard``), 1×16 (one row: the other ranks hold none), 3×5 (fewer rows than 4
ranks) and a 33-entry bias; set "even": 32×8, 16×16 replicated, 24×16 and a 32-entry bias.
The biases (1-D, sharded by ``fully_shard`` like FSDP2 shards them) are in the sets only when the
profile declares how 1-D parameters are stepped (``vector_params`` adamw, sgd, ns or skip).

Launch settings (the same in quick and full mode): the profile's lr; momentum β = 3/4 and
gradients in multiples of 1/16 (``fixed_gradients(dyadic=True)``), so the momentum recursion is
exact in float32 and a sharded target feeds its orthogonaliser bit-identical input; the
profile's weight decay when its coupling is not "none" (else 0); 3 steps. After every step each
rank gathers the whole weights. The 1-rank launch is "the same target in one process"; the
reference is the declared rule of the profile (``conformance.expected.step``), with the
declared orthogonaliser's exact map (``whole_matrix_msign``) or, when the adapter declares
``msign``, with that orthogonaliser replayed on the float64 input (``replay``).

Sharded weights are compared after ``full_tensor()``, which is the same on every rank by
construction: ranks drifting apart are seen through the replicated weight only.

Set ``MO_DISTRIBUTED_WORLDS`` (e.g. ``"2"``) to restrict the world sizes (default ``"2,4"``;
a shard-boundary bug that only 4 ranks expose then passes) and ``MO_DISTRIBUTED_SETS``
(``"edge"``, ``"even"``; default both) the matrix sets.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from manifold_oracle.gpu_impl.distributed import launch_failure, run_ranks
from manifold_oracle.gpu_impl.fsdp import chunk_rows, fixed_gradients

from .. import expected as E
from .. import tolerances as T
from ..tolerances import Tolerance, unit_roundoff
from . import Case, Context, Measurement, register

#: matrix sets: "edge" (uneven, one-row and fewer-rows-than-ranks weights)
#: and "even" (rows a multiple of 4, every rank holds the same number of rows, all sharded): a
#: target that crashes on the edge set still gets its figures on the even one.
#: and "even" (rows a multiple of 4, every rank holds the same number of rows): a target that
#: crashes on the edge set still gets its figures on the even one. Each set has one replicated
#: weight (index 1, outside ``fully_shard``) and ends with a 1-D bias (see :func:`_shapes`).
SETS: dict[str, list[tuple[int, ...]]] = {"edge": [(33, 8), (16, 16), (1, 16), (3, 5), (33,)],
                                          "even": [(32, 8), (16, 16), (24, 16), (32,)]}
REPLICATED: dict[str, list[int]] = {"edge": [1], "even": [1]}
STEPS = 3
#: momentum of the launch: with gradients in multiples of 1/16, β = 3/4 keeps the EMA (and
#: Nesterov) recursion exact in float32 over the 3 steps (at most 2 + 2·3 more significant bits)
BETA = 0.75
#: vector_params conventions under which a 1-D parameter is stepped (the others make no claim
#: or refuse one: the sets then carry no bias)
VECTOR_STEPPED = ("adamw", "sgd", "ns", "skip")
#: per launch (seconds); ``MO_DISTRIBUTED_TIMEOUT`` overrides it on a very loaded machine
TIMEOUT_S = float(os.environ.get("MO_DISTRIBUTED_TIMEOUT", "300"))


def adapter_factory(params: list[torch.Tensor], mesh: Any, *, target: str, profile: str | None = None,
                    **hyper: Any) -> Any:
    """Rank-side factory: resolve ``target`` (with ``profile``) in this process and call its
    ``sharded_optimizer``."""
    from ..adapters import resolve_target

    return resolve_target(target, profile).sharded_optimizer(params, mesh, **hyper)


def _worlds() -> tuple[int, ...]:
    return tuple(int(x) for x in os.environ.get("MO_DISTRIBUTED_WORLDS", "2,4").split(",") if x.strip())


def _sets() -> tuple[str, ...]:
    return tuple(x.strip() for x in os.environ.get("MO_DISTRIBUTED_SETS", "edge,even").split(",") if x.strip())


def _dtype(ctx: Context) -> str:
    return ctx.profile.param_dtypes[0]


def _target_name(ctx: Context) -> str:
    """``module:Class`` of the adapter, importable by the rank processes."""
    cls = type(ctx.adapter)
    return f"{cls.__module__}:{cls.__qualname__}"


def _profile_name(ctx: Context) -> str | None:
    """The profile's registered name (None when the adapter declares an unregistered Profile)."""
    from ..profiles import get_profile

    try:
        return get_profile(ctx.profile.name).name
    except Exception:  # noqa: BLE001 - an inline Profile: the adapter declares it again in the rank
        return None


def _shapes(ctx: Context, which: str) -> list[tuple[int, ...]]:
    """The set's shapes for this profile: without the trailing bias unless the profile declares a
    convention that steps 1-D parameters (``VECTOR_STEPPED``)."""
    return [s for s in SETS[which] if len(s) == 2 or ctx.profile.vector_params in VECTOR_STEPPED]


def _weight_decay(ctx: Context) -> float:
    """The launch's weight decay: the profile's, unless its coupling is "none"."""
    p = ctx.profile
    return float(p.weight_decay) if p.weight_decay_coupling != "none" else 0.0


def _gradients(ctx: Context, which: str) -> list[list[torch.Tensor]]:
    """The launch's per-step whole gradients (dyadic, in the parameter dtype)."""
    return fixed_gradients(_shapes(ctx, which), STEPS, ctx.seed, getattr(torch, _dtype(ctx)), dyadic=True)[1]


def _launch(ctx: Context, world: int, which: str) -> dict[str, Any]:
    """Outcomes of the ``world``-rank launch on matrix set ``which`` (cached per context)."""
    cache = ctx.scratch.setdefault("distributed", {})
    if (world, which) not in cache:
        p = ctx.profile
        hyper = dict(target=_target_name(ctx), profile=_profile_name(ctx), lr=p.lr, momentum=BETA,
                     weight_decay=_weight_decay(ctx))
        payload = dict(factory="manifold_oracle.conformance.checks.distributed:adapter_factory", hyper=hyper,
                       shapes=_shapes(ctx, which), replicated=REPLICATED[which], steps=STEPS, seed=ctx.seed,
                       dtype=_dtype(ctx), dyadic=True)
        outs = run_ranks("manifold_oracle.gpu_impl.fsdp:sharded_fixed_run", world, payload, timeout=TIMEOUT_S)
        cache[world, which] = {"failure": launch_failure(outs), "outs": outs}
    return cache[world, which]


def _cases(ctx: Context) -> list[Case]:
    wd = _weight_decay(ctx)
    return [Case(f"{w} ranks, {which} shapes, {STEPS} steps, {_dtype(ctx)}, β {BETA}, weight decay {wd:g}", {},
                 {"world": w, "set": which}) for which in _sets() for w in _worlds()]


def _crash(world: int, figure: str, launch: dict[str, Any]) -> Measurement:
    figure = f"{figure} crashed ({launch['failure']})"
    return Measurement(figure, float("inf"), Tolerance(0.0, "the launch must complete", "harness"), False,
                       {"crash": launch["failure"], "world": world})


def _histories(ctx: Context, case: Case, *, single: bool = True
               ) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """(P-rank launch, 1-rank launch (only when ``single``; else the P-rank one again)) or the
    crash message of the first that failed."""
    world, which = case.params["world"], case.params["set"]
    many = _launch(ctx, world, which)
    if many["failure"]:
        return f"{world} ranks: {many['failure']}"
    if not single:
        return many, many
    one = _launch(ctx, 1, which)
    if one["failure"]:
        return f"1 rank: {one['failure']}"
    return many, one


def _gathered(ctx: Context, case: Case) -> list[Any] | Measurement:
    """Every rank's gathered history (``history[t][i]``) of the case's P-rank launch, or the
    failing measurement of its crash."""
    got = _histories(ctx, case, single=False)
    if isinstance(got, str):
        return _crash(case.params["world"], "launch", {"failure": got})
    return [o.result["history"] for o in got[0]["outs"]]


def _step_tol(ctx: Context) -> tuple[float, str, str]:
    cd = ctx.profile.compute_dtype
    cd = _dtype(ctx) if cd == "input" else cd
    u = unit_roundoff(cd)
    # two runs of the same rule whose msign inputs differ only in rounding: each of the ≤ 5
    # Newton–Schulz products rounds to the compute dtype (relative u on O(1) entries), in both
    # runs (2u), over K steps, relative to the largest single-process step: K·2·5·u (+ the
    # parameter dtype's own rounding of the update, 2·u_param)
    bound = STEPS * 2 * 5 * u + 2 * unit_roundoff(_dtype(ctx))
    return bound, f"K·10·u({cd}) + 2·u({_dtype(ctx)}), K = {STEPS}", "msign rounding in two runs"


@register("distributed.fsdp.matches_single_process", "distributed",
          "Sharded by FSDP2 on N gloo ranks (uneven shards, a 1-row weight, a weight with fewer rows "
          "than ranks, a replicated weight, a sharded bias where the profile steps 1-D parameters), the "
          "target's weights after each step equal its 1-process run, relative to the step size; no shard "
          "row (bias entry) is lost or duplicated; no rank crashes or hangs.",
          requires={"sharded_optimizer"}, cases=_cases, quick=True,
          catches=("per-shard orthogonalisation", "lost or duplicated shard rows", "uneven-shard crash",
                   "a dying or hanging worker", "a bias shard stepped by a rank-dependent rule"))
def matches_single_process(ctx: Context, case: Case) -> Measurement:
    world = case.params["world"]
    got = _histories(ctx, case)
    if isinstance(got, str):
        return _crash(world, "launch", {"failure": got})
    many, one = got
    shapes = _shapes(ctx, case.params["set"])
    h_p = many["outs"][0].result["history"]
    h_1 = one["outs"][0].result["history"]
    worst, lost, dup = 0.0, [], []
    for i in range(len(shapes)):
        for t in range(1, STEPS + 1):
            step = float((h_1[t][i] - h_1[t - 1][i]).abs().max())
            err = float((h_p[t][i] - h_1[t][i]).abs().max())
            worst = max(worst, err / step if step > 0 else (0.0 if err == 0 else float("inf")))
        moved_p = (h_p[-1][i] - h_p[0][i]).abs().reshape(shapes[i][0], -1).amax(dim=1)
        moved_1 = (h_1[-1][i] - h_1[0][i]).abs().reshape(shapes[i][0], -1).amax(dim=1)
        what = "row" if len(shapes[i]) == 2 else "entry"
        lost += [f"{shapes[i]} {what} {r}" for r in range(shapes[i][0]) if moved_p[r] == 0 and moved_1[r] > 0]
        W, W1 = h_p[-1][i], h_1[-1][i]
        for r in range(shapes[i][0] if len(shapes[i]) == 2 else 0):  # duplicated rows (matrices)
            for q in range(r):
                if torch.equal(W[r], W[q]) and not torch.equal(W1[r], W1[q]):
                    dup.append(f"{shapes[i]} rows {q},{r}")
    bound, formula, prov = _step_tol(ctx)
    passed = worst <= bound and not lost and not dup
    return Measurement("max |W_P − W_1| / max |ΔW_1| over steps and matrices", worst,
                       Tolerance(bound, formula, prov), passed,
                       {"world": world, "lost_rows": lost[:10], "duplicated_rows": dup[:10]})


@register("distributed.fsdp.whole_matrix_msign", "distributed",
          "The first sharded step is the declared rule with the orthogonaliser on the whole matrix: it is closer to "
          "the float64 reference step (whole-matrix msign) than to the same step with msign applied per "
          "row shard.",
          requires={"sharded_optimizer"}, cases=_cases, quick=True,
          applies=lambda ctx: None if ctx.profile.rule != "none" else "profile declares no optimizer rule",
          catches=("per-shard orthogonalisation",))
def whole_matrix_msign(ctx: Context, case: Case) -> Measurement:
    world = case.params["world"]
    hs = _gathered(ctx, case)
    if isinstance(hs, Measurement):
        return hs
    h_p = hs[0]
    grads = _gradients(ctx, case.params["set"])
    i = 0  # the 33×8 (32×8) matrix: every world size splits it into several row shards
    W0, G = h_p[0][i].numpy(), grads[0][i].to(torch.float64).numpy()
    spans = [chunk_rows(G.shape[0], world, r) for r in range(world)]

    p = ctx.profile

    def whole(X: np.ndarray) -> np.ndarray:  # the declared orthogonaliser, exact arithmetic
        return E.orthogonalise(p, X, _dtype(ctx))

    def per_shard(X: np.ndarray) -> np.ndarray:
        return np.vstack([whole(X[lo:hi]) for lo, hi in spans if hi > lo])

    wd = _weight_decay(ctx)
    W_full, _ = E.step(p, W0, G, None, lr=p.lr, weight_decay=wd, beta=BETA, orth=whole)
    W_shard, _ = E.step(p, W0, G, None, lr=p.lr, weight_decay=wd, beta=BETA, orth=per_shard)
    d_ref = W_full - W0
    d_got = h_p[1][i].numpy() - W0
    scale = float(np.linalg.norm(d_ref))
    e_full = float(np.linalg.norm(d_got - d_ref)) / scale
    e_shard = float(np.linalg.norm(d_got - (W_shard - W0))) / scale
    # whole-matrix NS-type msigns land 0.01–0.04 from the exact step, per-shard ones ~0.5: the
    # midpoint criterion separates them with a wide margin on either side
    bound = 0.5 * e_shard
    return Measurement("‖ΔW₁ − ΔW₁(reference, whole-matrix msign)‖_F / ‖ΔW₁(reference)‖_F", e_full,
                       Tolerance(bound, "½·(same distance to the reference step with per-shard msign)",
                                 "closer to the whole-matrix step than to the per-shard one"),
                       e_full <= bound, {"world": world, "per_shard_distance": e_shard})


@register("distributed.fsdp.rank_agreement", "distributed",
          "Every rank holds the same weights after every step (the gathered sharded weights and the "
          "replicated weight are bit-identical across ranks).",
          requires={"sharded_optimizer"}, cases=_cases, quick=True, catches=("ranks drifting apart",))
def rank_agreement(ctx: Context, case: Case) -> Measurement:
    world = case.params["world"]
    hs = _gathered(ctx, case)
    if isinstance(hs, Measurement):
        return hs
    shapes = _shapes(ctx, case.params["set"])
    worst, where = 0.0, None
    for r, h in enumerate(hs[1:], start=1):
        for t, (a_t, b_t) in enumerate(zip(hs[0], h)):
            for i, (a, b) in enumerate(zip(a_t, b_t)):
                d = float((a - b).abs().max())
                if d > worst:
                    worst, where = d, f"rank {r} vs 0, step {t}, {shapes[i]}"
    return Measurement("max |W_rank − W_0| over ranks, steps, matrices", worst,
                       Tolerance(0.0, "0 (bitwise)", "every rank applies the same deterministic update"),
                       worst == 0.0, {"world": world, "worst_at": where})


# -- the declared rule replayed on every gathered step (adapters with ``msign``) -------------------

def _replay_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule not in ("muon", "macro"):
        return "the replay's rounding model covers the muon and macro rules"
    if p.cast_point == "stochastic_rounding":
        return "a stochastically rounding orthogonaliser cannot be replayed bit for bit in another process"
    if E.reference_momentum_form(p) is None and p.momentum_form != "none":
        return "the declared momentum form is not exact in dyadic arithmetic (e.g. bias correction divides)"
    return None


def _input_fallback(ctx: Context, U: np.ndarray, X: np.ndarray, s: float) -> tuple[float, int]:
    """(bound on max|Δ(lr·s·O)|/lr, #ambiguous casts) for an orthogonaliser input X that the target
    computes with rounding (macro: the projection's reductions; muon: exact, so (0, 0)).

    Entry by entry the target's X agrees with ours to rel = 2·(2 + ⌈log₂mn⌉)·u·(|U| + |U − X|)/|X|
    (momentum blend and projection scalar, the projection's reduction, in both computations; as in
    ``optimizer.rule.*``); cast to a coarser compute dtype, both give the same bits unless an entry
    sits that close to a rounding midpoint (``tolerances.cast_ambiguity``). Then, or without a
    cast, the two orthogonaliser outputs differ by up to twice its error bound (‖·‖₂, so ≤ √k·that
    in Frobenius norm and entrywise), through the projection (factor 2): s·2·2·√k·orth_bound."""
    p = ctx.profile
    if p.rule != "macro":
        return 0.0, 0
    dt = _dtype(ctx)
    m, n = X.shape
    L = float(np.ceil(np.log2(max(m * n, 2))))
    u = unit_roundoff(dt)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (2.0 + L) * u * np.where(X != 0, (np.abs(U) + np.abs(U - X)) / np.abs(X), 0.0)
        if p.prenormalize:  # U/max(‖U‖_F, 1e-8): the norm's reduction, the root, the division
            rel = rel + (L + 2.0) * u * np.where(X != 0, np.abs(U) / np.abs(X), 0.0)
    cdt = E.compute_dtype_for(p, dt)
    n_amb = int(np.count_nonzero(T.cast_ambiguity(X, cdt, 2.0 * rel))) if cdt != dt else X.size
    if not n_amb:
        return 0.0, 0
    o = T.orth_tolerance(p, X, E.orthogonalise(p, X, dt), dt)
    return s * 2.0 * 2.0 * o.bound * float(np.sqrt(min(m, n))), n_amb


@register("distributed.fsdp.replay", "distributed",
          "Every gathered sharded step W_t → W_{t+1} (rank 0, every matrix, 2 and 4 ranks) is the declared "
          "rule with the target's own orthogonaliser (msign) replayed on the float64 input, up to the "
          "parameter dtype's rounding of the rule's arithmetic.",
          requires={"sharded_optimizer", "msign"}, cases=_cases, quick=True, applies=_replay_applies,
          catches=("padding rows fed to the orthogonaliser", "ranks orthogonalising in different dtypes",
                   "weight decay applied twice", "a local shape scale", "momentum on one rank only",
                   "local inner products or norms in a constrained rule"))
def replay(ctx: Context, case: Case) -> Measurement:
    world = case.params["world"]
    hs = _gathered(ctx, case)
    if isinstance(hs, Measurement):
        return hs
    from .rules import RULE_BUDGET, replay_orth, return_roundoff
    from .runs import radius_target

    p, dt = ctx.profile, _dtype(ctx)
    h = hs[0]
    shapes = _shapes(ctx, case.params["set"])
    grads = _gradients(ctx, case.params["set"])
    wd, u, u_ret = _weight_decay(ctx), unit_roundoff(dt), return_roundoff(p, dt)
    (cW, cD, cN), (rD, rN) = RULE_BUDGET[p.rule]
    target_orth = replay_orth(ctx, dt)
    worst: tuple[float, float, float, str] = (-1.0, 0.0, 0.0, "")  # (ratio, figure, bound, where)
    top, n_fallback = 0.0, 0
    for i, shp in enumerate(shapes):
        if len(shp) != 2:
            continue  # biases: matches_single_process and rank_agreement
        L = float(np.ceil(np.log2(max(shp[0] * shp[1], 2))))
        s = (p.scale if p.rule == "macro" else 1.0) * E.shape_scale(p, shp)
        man = radius_target(ctx, h[0][i].numpy()) if p.rule == "macro" else None  # radius_source
        M = None
        for t in range(STEPS):
            W_t, G = h[t][i].numpy(), grads[t][i].to(torch.float64).numpy()
            seen: list[np.ndarray] = []

            def orth(X: np.ndarray) -> np.ndarray:
                seen.append(X)
                return target_orth(X)

            M_prev = M
            W_exp, M = E.step(p, W_t, G, M, lr=p.lr, weight_decay=wd, t=t + 1, beta=BETA, input_dtype=dt,
                              manifold=man, orth=orth)
            _, U = E.momentum_step(p, M_prev, G, BETA, t + 1)
            d = float(np.abs(W_exp - W_t).max())
            err = float(np.abs(h[t + 1][i].numpy() - W_exp).max())
            # error model, entrywise (|fl(x) − x| ≤ u|x| per op, Higham Thm 2.2; a reduction over mn
            # terms: a common relative error ≤ ⌈log₂mn⌉·u, Higham eq. 4.6): the target's rule
            # arithmetic in the parameter dtype, on the same W_t and the same orthogonaliser output,
            # with the per-op counts of ``rules.RULE_BUDGET`` — muon: W·(1 − lr·λ) and the scalar
            # (2 on |W_t|), lr·s and lr·s·O (2 on |ΔW|), the sum (1 on |W_{t+1}|); macro: P(O) and
            # lr·s·D (4 on |ΔW|, the reduction ⟨O, W⟩ L on |ΔW|), W − lr·s·D and the rescale
            # (3 on |W_{t+1}|, the norm's reduction halved by the root L/2) — plus the update formed
            # in the orthogonaliser's return dtype (``update_dtype='return'``) and, for an input the
            # target computes with rounding, :func:`_input_fallback`. Measured on correct targets:
            # 1.3–2.5·u·max|W|/max|ΔW|; the model gives ≈ 3 (muon) to 7.5 (macro, 33×8) of it.
            fb, n_amb = _input_fallback(ctx, U, seen[0], s) if seen else (0.0, 0)
            n_fallback += bool(n_amb)
            b_abs = (u * (cW * float(np.abs(W_t).max()) + (cD + rD * L) * d
                          + (cN + rN * L) * float(np.abs(W_exp).max())) + u_ret * d + p.lr * fb)
            fig, bnd = err / max(d, 1e-300), b_abs / max(d, 1e-300)
            top = max(top, fig)
            if fig / bnd > worst[0]:
                worst = (fig / bnd, fig, bnd, f"step {t + 1}, {shp}")
    _, fig, bnd, where = worst
    formula = ("u·(c_W·max|W_t| + (c_D + r_D·L)·max|ΔW*| + (c_N + r_N·L)·max|W*|)/max|ΔW*| "
               f"(rules.RULE_BUDGET[{p.rule!r}], L = ⌈log₂mn⌉, u = u({dt}))")
    details: dict[str, Any] = {"world": world, "worst_at": where, "largest_figure": top,
                               "weight_decay": wd, "beta": BETA}
    if n_fallback:
        details["ambiguous_input_steps"] = n_fallback
        formula += " + orthogonaliser bound on the steps whose computed input is ambiguous"
    return Measurement("max |W_{t+1} − W*_{t+1}| / max |ΔW*| (worst step relative to its bound)", fig,
                       Tolerance(bnd, formula, "rule arithmetic rounded in the parameter dtype"), fig <= bnd,
                       details)


# -- feasibility along the sharded run (constrained rules) ------------------------------------------

@register("distributed.fsdp.feasibility", "distributed",
          "A constrained (MACRO) rule keeps every gathered sharded weight on its manifold after every step "
          "(rank 0's history), to the rounding of one retraction in the parameter dtype.",
          requires={"sharded_optimizer"}, cases=_cases, quick=True,
          applies=lambda ctx: None if ctx.profile.rule == "macro" and ctx.profile.manifolds
          else "needs a constrained (macro) rule with a declared manifold",
          catches=("a norm all-reduced in a low-precision dtype", "local norms in the retraction"))
def feasibility(ctx: Context, case: Case) -> Measurement:
    from .runs import radius_target, feasibility_bound

    hs = _gathered(ctx, case)
    if isinstance(hs, Measurement):
        return hs
    h = hs[0]
    shapes = _shapes(ctx, case.params["set"])
    worst: tuple[float, float, float, str, str] = (-1.0, 0.0, 0.0, "", "")
    for i, shp in enumerate(shapes):
        if len(shp) != 2:
            continue
        man = radius_target(ctx, h[0][i].numpy())
        # one retraction's rounding in the parameter dtype plus the float64 measurement
        # (``runs.feasibility_bound``): the retraction is recomputed every step, so its error does
        # not accumulate along the history
        tol = feasibility_bound(ctx, h[0][i].numpy(), ctx.profile.lr, _dtype(ctx), man)
        for t in range(STEPS + 1):
            v = float(np.max(man.violation(h[t][i].numpy())))
            if v / tol.bound > worst[0]:
                worst = (v / tol.bound, v, tol.bound, tol.formula, f"step {t}, {shp}")
    _, v, b, formula, where = worst
    return Measurement("max c_M(W_t) over steps and matrices (|‖W_t‖ − R| on a sphere)", v,
                       Tolerance(b, formula, "rounding of one retraction (runs.feasibility_bound)"), v <= b,
                       {"world": case.params["world"], "worst_at": where})
