"""``optimizer.rule.update_norm``: the Frobenius norm of one step, judged by a probabilistic model.

Where the target does not expose its orthogonaliser (no ``msign`` capability, or a stochastic
rounding on an input it computes with rounding), ``optimizer.rule.step`` cannot replay it and
falls back to the orthogonaliser's worst-case forward-error model (``tolerances.step_tolerance``),
which for a bf16 Newton–Schulz is O(1): a step 10 % too large or an inverted shape scale passes.
This check restores that power for the rules muon, macro (Frobenius and spectral sphere) and
muonh with a declared Newton–Schulz schedule.

**Statistic.** One step of a fresh optimizer (weight decay 0, harness lr 1/32, momentum 3/4,
dyadic gradients with a flat or a decaying spectrum, shapes with k = min(m, n) ≥ 32) and
s_t = ‖W₁ − W₀‖_F, W₀ as the target holds it. The entrywise error of a bf16 Newton–Schulz output
is 4–6 %, but its rounding errors are nearly orthogonal to the output (they average out in
⟨O, E⟩), so ‖O‖_F — and with it s_t — is known to ~1e-3, while a 10 % step or an inverted shape
scale moves s_t by ≥ 10 %.

**Model** (Higham & Mary, "A new approach to probabilistic rounding error analysis", SIAM J. Sci.
Comput. 41(5), 2019): every rounding error is a random variable, independent of the others, of
mean zero and |δ| ≤ u. :func:`perturbed_orthogonaliser` runs the declared schedule in float64 with
every operation's result multiplied entrywise by (1 + δ), δ ~ U(−u_c, u_c) i.i.d. (u_c = unit
roundoff of the declared compute dtype; a stochastic-rounding cast: U(−2u_c, 2u_c), its error
reaches one ulp): the squared norm of the (already cast) input, its square root, the ε and safety
operations, the normalised input itself, and per iteration A = XXᵀ, A², b·A, c·A², their sum B,
B·X, a·X and the new X (a fused addmm rounds fewer times: see the bound's centre). Reductions
(the norm: within the pairwise bound; every entry of a product: a recursive sum, errors relative
to |a|ᵀ|b|) accumulate in float32 for bf16/fp16 (torch's opmath, cuBLAS's default) or in the
compute dtype. The
orthogonaliser's input is perturbed the same way where the target computes it with rounding
(:func:`perturbed_input`: a momentum not representable in the parameter dtype, MACRO's
projection). N = 32 samples O_i are fed as ``orth`` into the declared rule in float64
(``expected.step``), each W₁ᵢ is stored in the parameter dtype as the target stores it (round to
nearest: with bf16 parameters the update is about one ulp of W, and the store's effect on the
norm is real and is in the samples), and s_i = ‖W₁ᵢ − W₀‖_F. Assumptions: the independence
model (a systematic rounding bias of the target is second order, O(u²) per entry); the target
runs the declared schedule; the gradients are dyadic on a fine grid (``GRID``: a coarse grid made
torch's float32 norm 115u low on every seed — rounding of exact partial sums is not random).

**Bound.** |s_t − c| ≤ ½|mean(s_i) − s_decl| + λ·c_N·sd(s_i) + r with c the midpoint of the
samples' mean and s_decl (the declared map's step, no rounding): the rounding noise's energy adds
to ‖O‖² (second order, but amplified by ∏aⱼ in the small singular directions: the samples' mean
is 1–4 % above s_decl at κ = 1000 in bf16), and an implementation that rounds less than the model
(a fused addmm, a normaliser kept in float32) sits between the two. λ = 5 (a Gaussian two-sided
tail of 5.7e-7 per case), c_N = √((N − 1)/χ²_{0.001, N−1}) the 99.9 % upper confidence factor of a
sample standard deviation from N samples (1.59 for N = 32), and r the worst-case rounding of the
rule's own arithmetic in the parameter dtype other than the final store (``rules.RULE_BUDGET``:
the scalars and products of the update, reductions of the step and the retraction; the decay
terms vanish with weight decay 0): the triangle inequality moves s by at most the Frobenius norm
of that rounding.

The norm is blind to sign errors (a sign flip on some entries keeps ‖O‖_F): those need the replay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import manifold_oracle.reference as R

from .. import expected as E
from .. import tolerances as T
from ..tolerances import Tolerance
from . import Case, Context, Measurement, register
from .rules import (BETA_A, LR_A, RULE_BUDGET, one_step, can_replay, exact_rule_input, hyper, manifold_of,
                    off_manifold, return_roundoff, start_point)

#: Monte Carlo samples of the probabilistic rounding model
N_SAMPLES = 32
#: standard deviations of the bound (two-sided Gaussian tail 5.7e-7 per case)
LAMBDA = 5.0
#: shapes (k = min(m, n) ≥ 32, where ‖O‖_F averages over ≥ 32 singular directions)
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((64, 32), (128, 128), (32, 256))
FULL_SHAPES: tuple[tuple[int, int], ...] = QUICK_SHAPES + ((256, 64), (48, 96), (40, 40))
#: gradient condition numbers, cycled over the shapes (1: i.i.d. entries)
KAPPAS: tuple[float, ...] = (100.0, 1.0, 1000.0)


def _acc_dtype(dtype: str) -> str:
    """The dtype a reduction in ``dtype`` accumulates in: float32 for bf16/fp16 (torch's CPU
    opmath, cuBLAS's default for bf16/fp16 GEMMs), the dtype itself otherwise."""
    return "float32" if dtype in ("bfloat16", "float16") else dtype


def perturbed_orthogonaliser(profile: Any, X: np.ndarray, input_dtype: str, rng: np.random.Generator) -> np.ndarray:
    """The declared Newton–Schulz orthogonaliser on X (float64, (N, m, n) or (m, n): one sample per
    leading index) under the probabilistic rounding model of the module docstring. Returns float64
    samples of the same shape.

    Every operation's result y becomes y·(1 + δ), δ ~ U(−u, u) i.i.d. (u of the dtype it rounds
    in). A reduction accumulates in the accumulation dtype (``_acc_dtype``) and then rounds once to
    its output dtype. Each entry of a matrix product aᵀb (n terms) is a recursive sum, as BLAS
    kernels accumulate: partial sum j is rounded with an error δ_j·S_j, |S_j| ≤ (j/n)·|a|ᵀ|b| for
    terms of one size, so the error has sd ≤ u_acc·(|a|ᵀ|b|)·√(Σ_j j²/n²/3) ≈ u_acc·√n/3·|a|ᵀ|b|
    (drawn as a Gaussian; Higham & Mary's inner-product model is relative to |a|ᵀ|b|, not to the
    value: a small off-diagonal entry of XXᵀ carries the error of its large terms). The squared
    norm is one scalar whose error moves every singular value together (nothing averages it out):
    its accumulation error is drawn uniformly over the pairwise bound ±⌈log₂ mn⌉·u_acc (Higham eq.
    4.6; torch's float32 norm of 16384 entries measured 1.7u rms, this draws 8u rms). Checked: on
    zoo and gpu_impl fp32 Newton–Schulz (36 cases each) the output norms sit at 0.5 model sd rms."""
    p = profile
    x = np.asarray(X, dtype=np.float64)
    single = x.ndim == 2
    x = x[None] if single else x
    cdt = E.compute_dtype_for(p, input_dtype)
    sch = p.ns_schedule()

    def rnd(y: np.ndarray, dt: str, k: float = 1.0) -> np.ndarray:  # one rounding (k = 2: one ulp)
        u = k * T.unit_roundoff(dt)
        return y * (1.0 + rng.uniform(-u, u, size=y.shape))

    def red(a: np.ndarray, b: np.ndarray | None, dt: str) -> np.ndarray:  # a @ b (b None: Σ a²), result in dt
        ua = T.unit_roundoff(_acc_dtype(dt))
        if b is None:
            y = np.sum(a * a, axis=(-2, -1), keepdims=True)
            L = float(np.ceil(np.log2(max(a.shape[-2] * a.shape[-1], 2))))
            return rnd(y * (1.0 + rng.uniform(-L * ua, L * ua, size=y.shape)), dt)
        y, mag = a @ b, np.abs(a) @ np.abs(b)
        return rnd(y + mag * rng.normal(0.0, ua * np.sqrt(a.shape[-1]) / 3.0, size=y.shape), dt)

    def normalised(y: np.ndarray, dt: str) -> np.ndarray:  # y/(s·N_ε(‖y‖_F)): sum, sqrt, ε, s, division
        fro = rnd(np.sqrt(red(y, None, dt)), dt)
        N = np.asarray(R.normaliser(fro, sch.eps, sch.eps_form))
        N = rnd(N, dt) if sch.eps_form == "+eps" else N
        N = rnd(sch.safety * N, dt) if sch.safety != 1.0 else N
        return rnd(y / N, dt)

    if p.cast_point in ("cast_then_normalise", "none"):
        y = normalised(E.round_to(x, cdt), cdt)  # the cast itself is deterministic: the target casts the same values
    else:  # normalise in the input dtype, then cast (a stochastic rounding's error reaches one ulp: 2u)
        y = rnd(normalised(x, input_dtype), cdt, 2.0 if p.cast_point == "stochastic_rounding" else 1.0)
    m, n = y.shape[-2:]
    rule = p.transpose_rule
    flip = (rule == "tall" and m > n) or (rule == "wide" and m < n) or rule == "right_multiply"
    if flip:  # X(aI + bXᵀX + c(XᵀX)²) is the left-multiplied form on Xᵀ
        y = np.swapaxes(y, -1, -2)
    for a, b, c in sch.coefficients_for(p.steps):
        A = red(y, np.swapaxes(y, -1, -2), cdt)
        B = rnd(b * A, cdt)
        if c != 0.0:
            B = rnd(B + rnd(c * red(A, A, cdt), cdt), cdt)
        y = rnd(rnd(a * y, cdt) + red(B, y, cdt), cdt)
    if flip:
        y = np.swapaxes(y, -1, -2)
    rdt = E.return_dtype_for(p, input_dtype)
    if rdt in T.UNIT_ROUNDOFF and T.unit_roundoff(rdt) > T.unit_roundoff(cdt):  # returned in a coarser dtype
        y = rnd(y, rdt)
    return y[0] if single else y


def perturbed_input(p: Any, U: np.ndarray, X: np.ndarray, dt: str, exact: bool,
                    rng: np.random.Generator, n: int) -> np.ndarray:
    """N samples of the orthogonaliser's input as the target computes it in the parameter dtype
    ``dt`` (same model). The momentum U: exact (dyadic gradients, momenta 3/4, representable in
    ``dt``) → U itself; otherwise U∘(1 + δ₁)(1 + δ₂), δ ~ U(−u_p, u_p), the buffer update and the
    Nesterov blend (and δ₃ for a form with a division, bias correction). MACRO's projection
    X = U − N(U) adds (U − (1 + δ_s)·N(U))∘(1 + δ_e): δ_s ~ U(−(⌈log₂mn⌉ + 2)u_p, (⌈log₂mn⌉ + 2)u_p)
    the scalar coefficient of N (a reduction ⟨U, W⟩ within its pairwise bound, a norm or radius
    and a division; one scalar: drawn over its whole bound, as the norm in
    :func:`perturbed_orthogonaliser`) and δ_e ~ U(−2u_p, 2u_p) the product and the difference."""
    u = T.unit_roundoff(dt)
    shape = (n,) + U.shape
    Us = np.repeat(U[None], n, axis=0)
    if not exact:
        for _ in range(2 if exact_rule_input(p) else 3):
            Us = Us * (1.0 + rng.uniform(-u, u, size=shape))
    if p.rule != "macro":
        return Us
    L = float(np.ceil(np.log2(max(X.size, 2)))) + 2.0
    ds = rng.uniform(-L * u, L * u, size=(n, 1, 1))
    return (Us - (1.0 + ds) * (U - X)[None]) * (1.0 + rng.uniform(-2 * u, 2 * u, size=shape))


def rule_rounding(p: Any, W: np.ndarray, W1: np.ndarray, dt: str) -> tuple[float, str]:
    """r: worst-case rounding of the rule's own arithmetic in the parameter dtype, except the final
    store (modelled exactly in the samples) and the decay (exact with weight decay 0):
    (u + u_ret)·a_Δ·‖ΔW‖ + (a_W⁺ − 1)·u·‖W⁺‖ + ⌈log₂mn⌉·u·(r_Δ‖ΔW‖ + r_W⁺‖W⁺‖) with the
    coefficients of ``rules.RULE_BUDGET``."""
    (_, ad, an), (rd, rn) = RULE_BUDGET[p.rule]
    u = T.unit_roundoff(dt)
    ur = return_roundoff(p, dt)
    L = float(np.ceil(np.log2(max(W.size, 2))))
    nd, nn = float(np.linalg.norm(W1 - W)), float(np.linalg.norm(W1))
    r = (u + ur) * ad * nd + (an - 1.0) * u * nn + L * u * (rd * nd + rn * nn)
    return r, (f"(u + u_ret)·{ad:g}‖ΔW‖ + {an - 1:g}·u‖W⁺‖ + ⌈log₂mn⌉·u·({rd:g}‖ΔW‖ + {rn:g}‖W⁺‖), "
               f"u={u:.3e}, u_ret={ur:.3e}")


def _exact_input(p: Any, dt: str, Mt: np.ndarray, U: np.ndarray) -> bool:
    """The target computes the momentum U exactly: a declared momentum form exact in dyadic
    arithmetic (``rules.exact_rule_input``), and the momentum and the input
    representable in the parameter dtype (bf16 holds only 8 significant bits). MACRO's projection
    is modelled separately (``perturbed_input``)."""
    return exact_rule_input(p) and all(np.array_equal(E.round_to(Y, dt), Y) for Y in (Mt, U))


def _applies(ctx: Context) -> str | None:
    p = ctx.profile
    if p.rule not in ("muon", "macro", "muonh"):
        return "defined for the rules muon, macro (Frobenius and spectral sphere) and muonh"
    if p.rule == "macro" and (not p.manifolds
                              or p.manifolds[0].canonical_kind not in ("frobenius_sphere", "spectral_sphere")):
        return "defined for MACRO on the Frobenius and the spectral sphere"
    if not p.has_ns:
        return "needs a declared Newton–Schulz schedule (an exact or no orthogonaliser has no rounding model here)"
    if can_replay(ctx, seeded_exact_input=exact_rule_input(p) and p.rule == "muon"):
        return ("the target's orthogonaliser is replayed (msign capability): optimizer.rule.step judges the "
                "step within parameter rounding, which has this check's power and more")
    return None


#: grid of the gradients' entries: fine enough that their squares and products have ~40
#: significant bits (a grid of 1/16, rules.dyadic's, makes a float32 reduction's rounding
#: systematic — ties and exact partial sums: torch's float32 ‖G‖_F of a 128×128 matrix on that
#: grid comes out 115u low on every seed, outside the independence model), coarse enough that
#: the momenta 3/4 and 1/2 and the Nesterov blends (×7/16, ×7/4) stay exact in float32 (|k| < 2^19)
GRID = 2.0**-16


def gradient(rng: np.random.Generator, shp: tuple[int, int], kappa: float) -> np.ndarray:
    """A dyadic gradient (entries k·2⁻¹⁶, |k| < 2¹⁹, RMS entry 1): singular values σ_j ∝
    κ^{−j/(k−1)} (a decaying spectrum, as real gradients have) or, κ = 1, i.i.d. Gaussian
    entries (a flat Marchenko–Pastur spectrum)."""
    from manifold_oracle.reference.generators import matrix_with_spectrum

    k = min(shp)
    S = rng.standard_normal(shp) if kappa == 1.0 else matrix_with_spectrum(rng, np.logspace(0.0, -np.log10(kappa), k), shp)
    S *= np.sqrt(S.size) / np.linalg.norm(S)
    return np.clip(np.round(S / GRID), -(2**19 - 1), 2**19 - 1) * GRID


def _cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("rule.update_norm")
    dts = tuple(ctx.profile.param_dtypes) if ctx.full else tuple(ctx.profile.param_dtypes)[:1]
    out = []
    for dt in dts:
        for i, shp in enumerate(FULL_SHAPES if ctx.full else QUICK_SHAPES):
            kap = KAPPAS[i % len(KAPPAS)]
            out.append(Case(f"shape {shp}, {dt}, gradient κ = {kap:g}",
                            {"W": start_point(ctx, rng, shp), "G": gradient(rng, shp, kap)},
                            {"dtype": dt, "kappa": kap}))
    return out


def _fresh_step(ctx: Context, case: Case) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    """(hyperparameters, G, W₀, W₁): one step of a fresh target optimizer on the case's (W, G),
    weight decay 0."""
    G = case.arrays["G"]
    hyp = {**hyper(ctx, LR_A, BETA_A, 0.0), "weight_decay": 0.0}
    W0, W1 = one_step(ctx, case.arrays["W"], G, case.params["dtype"], **hyp)
    return hyp, G, W0, W1


def model_steps(ctx: Context, case: Case, W0: np.ndarray, G: np.ndarray, hyp: dict[str, Any],
                man: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """(N_SAMPLES model steps W₁ᵢ stored in the parameter dtype, the declared map's W₁ in float64):
    one step of the declared rule from ``W0`` (weight decay 0) with the orthogonaliser replaced by
    :func:`perturbed_orthogonaliser` samples (module docstring). Deterministic per (seed, case):
    computed once per context, case and W₀ (``update_norm`` and ``equivariance`` share them)."""
    cache = ctx.scratch.setdefault("rule.update_norm.mc", {})
    key = (case.label, W0.dtype.str, W0.shape, W0.tobytes())
    if key not in cache:
        cache[key] = _model_steps(ctx, case, W0, G, hyp, man)
    return cache[key]


def _model_steps(ctx: Context, case: Case, W0: np.ndarray, G: np.ndarray, hyp: dict[str, Any],
                 man: Any) -> tuple[list[np.ndarray], np.ndarray]:
    p, dt = ctx.profile, case.params["dtype"]
    Gr = E.round_to(G, dt)
    Mt, U = E.momentum_step(p, None, Gr, hyp["momentum"], 1)
    return sample_steps(p, W0, None, Gr, 1, {**hyp, "weight_decay": 0.0}, dt, man, _exact_input(p, dt, Mt, U),
                        ctx.rng(f"rule.update_norm.mc {case.label}"))


def sample_steps(p: Any, W: np.ndarray, M: np.ndarray | None, G: np.ndarray, t: int, hyp: dict[str, Any],
                 dt: str, man: Any, exact: bool, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """(N_SAMPLES model steps stored in the parameter dtype ``dt``, the declared map's step in
    float64): step ``t`` of the declared rule from (W, M) with gradient G (hyperparameters ``hyp``:
    lr, momentum, weight_decay), the orthogonaliser replaced by :func:`perturbed_orthogonaliser`
    samples of :func:`perturbed_input` (``exact``: the momentum input is computed exactly)."""
    _, U = E.momentum_step(p, M, G, hyp["momentum"], t)
    X = E.orth_input(p, W, U, manifold=man)
    Os = perturbed_orthogonaliser(p, perturbed_input(p, U, X, dt, exact, rng, N_SAMPLES), dt, rng)

    def step_with(O: np.ndarray | None) -> np.ndarray:
        orth = None if O is None else (lambda Z, O=O: O)
        return E.step(p, W, G, M, lr=hyp["lr"], weight_decay=hyp.get("weight_decay", 0.0), t=t,
                      beta=hyp["momentum"], input_dtype=dt, manifold=man, orth=orth)[0]

    return [E.round_to(step_with(O), dt) for O in Os], step_with(None)


def pair_bound(p: Any, W: np.ndarray, steps: list[np.ndarray], W_decl: np.ndarray,
               dt: str) -> tuple[float, np.ndarray, float, str]:
    """(bound, q, r, formula of r) on the difference of two runs that round the orthogonaliser
    differently (another summation order or batch): the model ``steps`` in disjoint pairs give
    i.i.d. draws q_j = ‖ΔW_i − ΔW_i'‖_F; bound = mean(q) + λ·c_{N/2}·sd(q) + 2r, r each run's own
    parameter rounding (:func:`rule_rounding`)."""
    q = np.array([float(np.linalg.norm(steps[2 * j] - steps[2 * j + 1])) for j in range(len(steps) // 2)])
    r, rform = rule_rounding(p, W, W_decl, dt)
    return float(np.mean(q)) + LAMBDA * T.sd_confidence_factor(q.size) * float(np.std(q, ddof=1)) + 2.0 * r, q, r, rform


@register("optimizer.rule.update_norm", "optimizer",
          "Without the orthogonaliser's replay (no msign capability): the Frobenius norm of one step "
          "of a fresh optimizer (weight decay 0, dyadic gradients, k ≥ 32) agrees with the declared "
          "rule under the probabilistic rounding model of the declared Newton–Schulz (Higham–Mary; "
          "32 float64 samples with every operation perturbed by its dtype's rounding): "
          "|s_t − c| ≤ ½|mean − s_declared| + 5·c_N·sd + parameter rounding, c the midpoint of the samples' "
          "mean and the declared map's step. The power the replay gives otherwise (rules muon, macro on "
          "the Frobenius/spectral sphere, muonh).",
          requires={"optimizer"}, cases=_cases, applies=_applies,
          catches=("step 10 % too large", "inverted shape scale", "shape scale applied twice",
                   "lr scaled by a wrong constant"))
def update_norm(ctx: Context, case: Case) -> Measurement:
    p, dt = ctx.profile, case.params["dtype"]
    hyp, G, W0, W1 = _fresh_step(ctx, case)
    man = manifold_of(ctx)
    off = off_manifold(man if p.rule == "macro" else None, W0, 1)
    if off is not None:
        return off
    finite = bool(np.all(np.isfinite(W1)))
    s_t = float(np.linalg.norm(W1 - W0)) if finite else float("inf")
    W1s, W_decl = model_steps(ctx, case, W0, G, hyp, man)
    s = np.array([float(np.linalg.norm(W1i - W0)) for W1i in W1s])
    s_decl = float(np.linalg.norm(E.round_to(W_decl, dt) - W0))
    mean, sd = float(np.mean(s)), float(np.std(s, ddof=1))
    cN = T.sd_confidence_factor(N_SAMPLES)
    r, rform = rule_rounding(p, W0, W_decl, dt)
    # the rounding noise's energy adds to ‖O‖²: the model's mean sits above the declared map's
    # value by a second-order bias (1 % at κ = 1000 in bf16, where the iteration amplifies the noise
    # in the small singular directions by ∏aⱼ). An implementation that rounds fewer times than the
    # model (a fused addmm, a normaliser kept in float32) has less of it: the expected value lies
    # between the declared map (no rounding) and the model's mean, and the bound is centred there
    centre, half = 0.5 * (mean + s_decl), 0.5 * abs(mean - s_decl)
    bound = half + LAMBDA * cN * sd + r
    err = abs(s_t - centre) if finite else float("inf")
    tol = Tolerance(bound, f"½|mean − s_decl| + λ·c_N·sd + r = {half:.3e} + {LAMBDA:g}·{cN:.3f}·{sd:.3e} + {r:.3e} "
                    f"(N={N_SAMPLES} samples); r = {rform}",
                    "conformance.checks.update_norm: probabilistic rounding model of the declared Newton–Schulz "
                    "(Higham & Mary, SIAM J. Sci. Comput. 2019), Monte Carlo in float64", dt)
    tight = bound / err if 0 < err < float("inf") else None
    return Measurement("|‖W₁ − W₀‖_F − centre| (centre: midpoint of the model's mean and the declared map's step)",
                       err, tol, err <= bound,
                       {"s_target": s_t, "model_mean": mean, "model_sd": sd, "s_declared_map": s_decl,
                        "ratio_to_mean": s_t / mean if mean else None, "rule_rounding": r, "tightness": tight,
                        "z": (s_t - mean) / sd if sd > 0 and finite else None,
                        "shape": list(W0.shape), "dtype": dt, "gradient_kappa": case.params["kappa"],
                        "samples": N_SAMPLES})


# ------------------------------------------------------------------------ signed-permutation equivariance
def signed_permutation(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(row order, row signs, column order, column signs) of a random signed permutation pair."""
    m, n = shape
    return rng.permutation(m), rng.choice((-1.0, 1.0), m), rng.permutation(n), rng.choice((-1.0, 1.0), n)


def apply_signed(A: np.ndarray, P: np.ndarray, sp: np.ndarray, Q: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """S_r·Π_r·A·Π_cᵀ·S_c (exact in floating point: a reordering and sign changes)."""
    return sp[:, None] * A[np.ix_(P, Q)] * sq[None, :]


def undo_signed(B: np.ndarray, P: np.ndarray, sp: np.ndarray, Q: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """The inverse of :func:`apply_signed`."""
    out = np.empty_like(B)
    out[np.ix_(P, Q)] = sp[:, None] * B * sq[None, :]
    return out


@register("optimizer.rule.equivariance", "optimizer",
          "Without the orthogonaliser's replay (no msign capability): one step commutes with signed "
          "permutations of rows and columns (W, G ↦ S_rΠ_r·W·Π_cᵀS_c: exact in floating point; the rules "
          "muon, macro on the Frobenius/spectral sphere and muonh are equivariant, and so is msign). The "
          "two runs may round differently only through the order of their sums, so their difference is "
          "bounded by that of two independent rounding realisations of the probabilistic model "
          "(optimizer.rule.update_norm's samples, in disjoint pairs): mean + 5·c_N·sd + parameter rounding.",
          requires={"optimizer"}, cases=_cases, applies=_applies,
          catches=("sign flips on fixed entries", "entries or rows skipped at fixed positions",
                   "a step that depends on the position of an entry"))
def equivariance(ctx: Context, case: Case) -> Measurement:
    p, dt = ctx.profile, case.params["dtype"]
    W = case.arrays["W"]
    perm = signed_permutation(ctx.rng(f"rule.equivariance {case.label}"), W.shape)
    hyp, G, W0, W1 = _fresh_step(ctx, case)
    V0, V1 = one_step(ctx, apply_signed(W, *perm), apply_signed(G, *perm), dt, **hyp)
    man = manifold_of(ctx)
    for start in (W0, V0):
        off = off_manifold(man if p.rule == "macro" else None, start, 1)
        if off is not None:
            return off
    finite = bool(np.all(np.isfinite(W1)) and np.all(np.isfinite(V1)))
    d = float(np.linalg.norm((W1 - W0) - undo_signed(V1 - V0, *perm))) if finite else float("inf")
    # model: the two runs are at most two independent rounding realisations of the declared
    # Newton–Schulz (a different summation order decorrelates some of the roundings; identical
    # orders give d = 0). The N model samples in N/2 disjoint pairs give N/2 i.i.d. draws q_j of
    # ‖ΔW_i − ΔW_i'‖_F; bound = mean(q) + λ·c_{N/2}·sd(q) + 2r (each run's own parameter rounding, r as
    # in update_norm)
    W1s, W_decl = model_steps(ctx, case, W0, G, hyp, man)
    bound, q, r, rform = pair_bound(p, W0, W1s, W_decl, dt)
    cN = T.sd_confidence_factor(q.size)
    tol = Tolerance(bound, f"mean(q) + λ·c_N·sd(q) + 2r = {np.mean(q):.3e} + {LAMBDA:g}·{cN:.3f}·{np.std(q, ddof=1):.3e} "
                    f"+ 2·{r:.3e} (q: {q.size} disjoint pairs of model samples); r = {rform}",
                    "conformance.checks.update_norm: probabilistic rounding model of the declared Newton–Schulz "
                    "(Higham & Mary, SIAM J. Sci. Comput. 2019), Monte Carlo in float64", dt)
    step = float(np.linalg.norm(W1 - W0)) if finite else float("inf")
    return Measurement("‖ΔW(W, G) − S⁻¹·ΔW(S·W, S·G)‖_F (S a signed row and column permutation)",
                       d, tol, d <= bound,
                       {"relative_to_step": d / step if step and finite else None, "model_pair_mean": float(np.mean(q)),
                        "shape": list(W.shape), "dtype": dt, "gradient_kappa": case.params["kappa"]})
