"""§V claims: convergence of MACRO on the synthetic problems of ``reference.problems`` (MATH §8,
reconstructed from the standard analysis; CLAIMS.md §V).

Runs use ``reference.optimizers.MACRO`` through ``reference.conditions.run``; the inequality,
the bound and the constants are recomputed here from MATH §8 (L_R = L + G_max/R on M_F and
L + G_max/r_min on OB_row, MATH §8.1), not taken from ``reference.conditions``. The long
stochastic runs of V-3 use a lean loop of the same variant-A update (MATH §7.1), checked against
the reference step function at the start of the claim.
"""

from __future__ import annotations

import numpy as np

from manifold_oracle.reference import FrobeniusSphere, Oblique, SpectralSphere, Stiefel

from .._common import U64, new_figure
from ..shipped import macro_direction
from ..registry import Budget, ClaimResult, ControlResult, register

NEEDS = ("manifold_oracle.reference.optimizers", "manifold_oracle.reference.problems", "manifold_oracle.reference.conditions")


def _L_R(problem) -> float:
    """Pullback smoothness L_R = β_R²L + 2αG_max with α = 1/(2R), β_R = 1 (MATH §8.1)."""
    M = problem.manifold
    r = float(np.min(M.radius))
    return float(problem.lipschitz + problem.gradient_bound / r)


def _problems(rng: np.random.Generator, m: int, n: int) -> dict:
    from manifold_oracle.reference.problems import ProjectionProblem, RayleighFrobenius

    return {
        "Q1 Rayleigh M_F": RayleighFrobenius.random(rng, m, n, radius=2.0),
        "Q2 projection M_F": ProjectionProblem(FrobeniusSphere(2.0), rng.standard_normal((m, n))),
        "Q2 projection OB_row": ProjectionProblem(Oblique(1.0, axis="rows"), rng.standard_normal((m, n))),
    }


# ------------------------------------------------------------------------------------------ V-1
@register("V-1", "Sufficient decrease: with β = 0 and exact gradients, f(W_{t+1}) ≤ f(W_t) − ηs‖grad f_t‖_* + "
          "(L_R/2)η²s²k", "derived for variant A (MATH §8.3)", "V", needs=NEEDS)
def v1(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.conditions import run
    from manifold_oracle.reference.optimizers import MACRO

    rng = np.random.default_rng(seed)
    m, n = 8, 6
    k = min(m, n)
    T = budget.pick(150, 1500)
    worst, details, curves = 0.0, {}, {}
    ctrl_worst = 0.0
    for name, P in _problems(rng, m, n).items():
        LR = _L_R(P)
        eta = 1.0 / (LR * k)
        W0 = P.manifold.random_point(rng, (m, n))
        tr = run(P, MACRO(manifold=P.manifold, lr=eta, beta=0.0), W0, T)
        f, g = tr.loss, tr.grad_nuclear
        slack = f[:-1] - eta * g[:-1] + 0.5 * LR * eta**2 * k - f[1:]
        # rounding of two loss values and of the nuclear norm (CLAIMS V-1: ≥ −c·u·|f|, c = 100)
        tol = 100 * U64 * (np.abs(f[:-1]) + np.abs(f[1:]) + eta * g[:-1])
        worst = max(worst, float(np.max(-slack / tol)))
        details[f"{name}: min slack, f increases (plateau)"] = (float(slack.min()),
                                                                int(np.sum(f[1:] > f[:-1] + tol)))
        curves[name] = slack
        if "projection" in name:  # control: the retraction curvature dropped, L_R → L, larger step
            eta_c = 10.0 / (LR * k)
            trc = run(P, MACRO(manifold=P.manifold, lr=eta_c, beta=0.0), W0, T)
            fc, gc = trc.loss, trc.grad_nuclear
            sc = fc[:-1] - eta_c * gc[:-1] + 0.5 * P.lipschitz * eta_c**2 * k - fc[1:]
            tc = 100 * U64 * (np.abs(fc[:-1]) + np.abs(fc[1:]) + eta_c * gc[:-1])
            ctrl_worst = max(ctrl_worst, float(np.max(-sc / tc)))
    fig, (ax,) = new_figure()
    for name, s in curves.items():
        ax.semilogy(np.maximum(s, 1e-18), lw=0.8, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("slack of the one-step inequality")
    ax.legend(fontsize=7)
    ax.set_title("V-1 sufficient decrease at ηs = 1/(L_R k)", fontsize=9)
    return ClaimResult("V-1", worst, "max over steps of −slack/tol (≤ 1 means slack ≥ −tol)", 0.0,
                       "slack ≥ 0 at every step", 1.0, "tol = 100·u·(|f_t| + |f_{t+1}| + ηs‖g‖_*) (CLAIMS V-1)",
                       worst <= 1.0,
                       ControlResult("L_R replaced by the Euclidean L (retraction curvature dropped), ηs = 10/(L_R k)",
                                     ctrl_worst, ctrl_worst <= 1.0,
                                     {"note": "the CLAIMS control (ηs ≫ 1/(L_R k)) does not violate the inequality on "
                                              "M_F/OB, since (A1′) holds globally there; f increases at the plateau "
                                              "in both regimes"}),
                       details, fig)


# ------------------------------------------------------------------------------------------ V-2
@register("V-2", "Deterministic rate: min_{t<T}‖grad f‖_* ≤ √(2L_R k(f_0 − f*)/T) at ηs = √(2(f_0 − f*)/(L_R kT)); "
          "log–log slope ≤ −1/2", "derived (MATH §8.4)", "V", needs=NEEDS)
def v2(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.conditions import run
    from manifold_oracle.reference.optimizers import MACRO

    rng = np.random.default_rng(seed)
    m, n = 8, 6
    k = min(m, n)
    Ts = np.array(budget.pick((40, 126, 400, 1265), (100, 1000, 10000)))
    probs = dict(list(_problems(rng, m, n).items())[:2])
    fig, axes = new_figure(2)
    ok, details, slopes, ctrl_ok, ctrl_ratio = True, {}, [], True, 0.0
    for ax, (name, P) in zip(axes, probs.items()):
        LR = _L_R(P)
        W0 = P.manifold.random_point(rng, (m, n))
        fgap = float(P.loss(W0) - P.optimal_value)
        vals, bnds, cvals = [], [], []
        eta0 = float(np.sqrt(2 * fgap / (LR * k * Ts[0])))
        for T in Ts:
            eta = float(np.sqrt(2 * fgap / (LR * k * T)))
            vals.append(float(np.min(run(P, MACRO(manifold=P.manifold, lr=eta, beta=0.0), W0, int(T)).grad_nuclear[:T])))
            bnds.append(float(np.sqrt(2 * LR * k * fgap / T)))
        vals, bnds = np.array(vals), np.array(bnds)
        slope = float(np.polyfit(np.log(Ts), np.log(vals), 1)[0])
        slopes.append(slope)
        margin = 100 * U64 * bnds
        ok &= bool(np.all(vals <= bnds + margin)) and slope <= -0.4
        details[f"{name}: min grad / bound per T"] = list(vals / bnds)
        details[f"{name}: slope"] = slope
        ax.loglog(Ts, vals, "o-", label="min ‖grad f‖_*")
        ax.loglog(Ts, bnds, "k--", label="bound √(2L_R k Δf/T)")
        ax.set_xlabel("horizon T (steps)")
        ax.set_ylabel("min_{t<T} ‖grad f(W_t)‖_*")
        ax.set_title(f"V-2 {name}", fontsize=9)
        if "projection" not in name:
            ax.legend(fontsize=7)
            continue
        # control (on Q2 only, to save time): ηs held at its T₀ value as T grows
        cvals = np.array([vals[0]] + [float(np.min(run(P, MACRO(manifold=P.manifold, lr=eta0, beta=0.0), W0,
                                                       int(T)).grad_nuclear[:T])) for T in Ts[1:]])
        ctrl_ratio = max(ctrl_ratio, float(np.max(cvals / bnds)))
        cslope = float(np.polyfit(np.log(Ts), np.log(cvals), 1)[0])
        ctrl_ok &= bool(np.all(cvals <= bnds + margin)) and cslope <= -0.4
        details[f"{name}: control (fixed ηs) min grad / bound"] = list(cvals / bnds)
        ax.loglog(Ts, cvals, "s:", color="C3", label="fixed ηs (control)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return ClaimResult("V-2", float(max(slopes)), "worst log–log slope of min_{t<T}‖grad f‖_*", -0.5,
                       "bound holds for every T; slope ≤ −1/2", -0.4,
                       "CLAIMS V-2: bound with a c·u margin; slope ≤ −0.4", ok,
                       ControlResult("ηs held at its T₀ value as T grows (max min-grad/bound)", ctrl_ratio, ctrl_ok),
                       details, fig)


# ------------------------------------------------------------------------------------------ V-3
def _macro_stationarity(P, W0: np.ndarray, T: int, eta: float, beta: float,
                        rng: np.random.Generator) -> np.ndarray:
    """The shipped reference MACRO (variant A, M_F, exact msign, ambient EMA, s = 1) on Q1 with
    stochastic gradients ∇f + N (i.i.d. entries of variance σ²/(mn)); returns ‖grad f(W_t)‖_* for t < T."""
    from ..shipped import macro_class, macro_run

    out = np.empty(T)

    def grad(W: np.ndarray, t: int) -> np.ndarray:
        g = P.gradient(W)
        out[t] = np.linalg.svd(P.manifold.project_tangent(W, g), compute_uv=False).sum()
        return g + rng.standard_normal(W.shape) * (P.noise / np.sqrt(W.size))

    macro_run(macro_class()(manifold=P.manifold, lr=eta, beta=beta), W0, grad, T)
    return out


@register("V-3", "Stochastic rate: with ηs = cT^{−3/4} and 1 − β = T^{−1/2}, (1/T)Σ_t E‖grad f_t‖_* = O(T^{−1/4})",
          "reconstructed template (Cutkosky and Mehta, arXiv 2002.03305); MATH §8.4", "V", needs=NEEDS)
def v3(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.problems import RayleighFrobenius

    rng = np.random.default_rng(seed)
    m, n = 6, 4
    P = RayleighFrobenius.random(rng, m, n, radius=1.0).with_noise(1.0)
    W0 = P.manifold.random_point(rng, (m, n))
    Ts = np.array(budget.pick((100, 316, 1000, 3162), (100, 1000, 10000, 100000)))
    seeds = budget.pick(2, 4)

    def avg(T: int, sched: bool) -> float:
        per = []
        # the control's plateau is an average over T steps already: one seed suffices
        for sd in range(seeds if sched else 1):
            r = np.random.default_rng(1000 * seed + sd)
            eta, beta = (0.5 * T ** -0.75, 1 - T ** -0.5) if sched else (0.05, 0.9)
            per.append(float(np.mean(_macro_stationarity(P, W0, int(T), eta, beta, r))))
        return float(np.mean(per))

    vals = np.array([avg(int(T), True) for T in Ts])
    cvals = np.array([avg(int(T), False) for T in Ts])
    slope = float(np.polyfit(np.log(Ts), np.log(vals), 1)[0])
    cslope = float(np.polyfit(np.log(Ts), np.log(cvals), 1)[0])
    fig, (ax,) = new_figure()
    ax.loglog(Ts, vals, "o-", label=f"ηs = 0.5T^(-3/4), 1−β = T^(-1/2): slope {slope:.3f}")
    ax.loglog(Ts, vals[0] * (Ts / Ts[0]) ** -0.25, "k--", lw=0.8, label="T^(-1/4)")
    ax.loglog(Ts, cvals, "s:", color="C3", label=f"constant η, β = 0.9 (control): slope {cslope:.3f}")
    ax.set_xlabel("T")
    ax.set_ylabel("(1/T)Σ‖grad f_t‖_*, seed average")
    ax.legend(fontsize=7)
    ax.set_title("V-3 stochastic rate on Q1 (σ = 1)", fontsize=9)
    ok = abs(slope + 0.25) <= 0.1
    return ClaimResult("V-3", slope, "log–log slope of the seed-averaged stationarity", -0.25, "slope −1/4",
                       0.1, "CLAIMS §0.2 rate law: ±0.1 over ≥ 1.5 decades of T", ok,
                       ControlResult("constant η = 0.05 and β = 0.9 (noise floor)", cslope, abs(cslope + 0.25) <= 0.1),
                       {"T": list(Ts), "values": list(vals), "control values": list(cvals), "seeds": seeds}, fig)


# ------------------------------------------------------------------------------------------ V-4
@register("V-4", "On Q1 and Q2, f(W_T) − f* → 0 and the limit satisfies the first-order conditions of MATH §8.2",
          "derived", "V", needs=NEEDS)
def v4(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.conditions import run
    from manifold_oracle.reference.optimizers import MACRO
    from manifold_oracle.reference.problems import ProjectionProblem

    rng = np.random.default_rng(seed)
    m, n = 8, 6
    T = budget.pick(600, 10000)
    half = T // 2
    gamma = float(np.exp(np.log(1e-10) / (T - half)))  # η = 0.1, then decays by 10¹⁰ over the 2nd half
    probs = _problems(rng, m, n)
    C = rng.standard_normal((m, n))
    probs["Q2 projection St"] = ProjectionProblem(Stiefel(1.0), C)
    U, s, Vt = np.linalg.svd(rng.standard_normal((m, n)), full_matrices=False)
    s = np.concatenate([[3.0], np.linspace(0.9, 0.5, n - 1)])  # only σ₁(C) > R: optimum mclip(C; 1), gap 0.1
    probs["Q2 projection M_S"] = ProjectionProblem(SpectralSphere(1.0), (U * s) @ Vt)
    worst, details, curves, ctrl = 0.0, {}, {}, 0.0
    for name, P in probs.items():
        W0 = P.manifold.random_point(rng, (m, n))
        lr = lambda t, g=gamma: 0.1 * g ** max(0, t - half)  # noqa: E731
        tr = run(P, MACRO(manifold=P.manifold, lr=lr, beta=0.0), W0, T)
        gap = (tr.loss[-1] - P.optimal_value) / max(1.0, abs(P.optimal_value))
        res = float(P.optimality_residual(tr.final))
        worst = max(worst, gap, res)
        details[f"{name}: relative f − f*, optimality residual"] = (float(gap), res)
        curves[name] = (tr.loss - P.optimal_value) / max(1.0, abs(P.optimal_value))
        if name == "Q1 Rayleigh M_F":  # control: constant step (no decay) stalls at an O(η) floor
            trc = run(P, MACRO(manifold=P.manifold, lr=0.02, beta=0.0), W0, T)
            ctrl = max((trc.loss[-1] - P.optimal_value) / max(1.0, abs(P.optimal_value)),
                       float(P.optimality_residual(trc.final)))
    fig, (ax,) = new_figure()
    for name, c in curves.items():
        ax.semilogy(np.maximum(c, 1e-18), lw=0.8, label=name)
    ax.axhline(1e-8, color="k", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("(f − f*)/max(1, |f*|)")
    ax.legend(fontsize=7)
    ax.set_title("V-4 convergence with geometric step decay", fontsize=9)
    return ClaimResult("V-4", worst, "max of relative f − f* and optimality residual at the end", 0.0, "→ 0",
                       1e-8, "CLAIMS V-4: 1e-8 relative at the end of the run (float64)", worst <= 1e-8,
                       ControlResult("constant ηs = 0.02 on Q1 (O(η) floor)", float(ctrl), bool(ctrl <= 1e-8)),
                       details, fig)


# ------------------------------------------------------------------------------------------ V-5
@register("V-5", "Feasibility is preserved to rounding over long runs", "derived", "V", needs=NEEDS)
def v5(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.optimizers import MACRO

    rng = np.random.default_rng(seed)
    m, n = 12, 8
    T = budget.pick(300, 10000)
    cases = {"frobenius": FrobeniusSphere(np.sqrt(m)), "spectral": SpectralSphere(1.0),
             "oblique_rows": Oblique(1.0, axis="rows"), "oblique_cols": Oblique(1.0, axis="cols"),
             "stiefel": Stiefel(1.0)}
    worst, details, traces = 0.0, {}, {}
    ctrl = 0.0
    for kind, M in cases.items():
        opt = MACRO(manifold=M, lr=0.05, beta=0.9)
        W = M.random_point(rng, (m, n))
        st = opt.init_state(W)
        Wc = W.copy()
        Mc = np.zeros_like(W)
        tr, trc = [], []
        for _ in range(T):
            G = rng.standard_normal((m, n))
            W, st, _ = opt.step(W, G, st)
            tr.append(float(M.violation(W)))
            if kind == "frobenius":  # control: the same tangent step without retraction
                Mc = 0.9 * Mc + 0.1 * G
                # the shipped MACRO direction at the normalised point, applied without retraction
                D = macro_direction(M, M.radius * Wc / np.linalg.norm(Wc), Mc, "A")
                Wc = Wc - 0.05 * D
                trc.append(float(M.violation(Wc)))
        worst = max(worst, max(tr))
        details[f"{kind}: max feasibility residual"] = max(tr)
        traces[kind] = tr
        if trc:
            ctrl = max(trc)
            traces["no retraction (control)"] = trc
    fig, (ax,) = new_figure()
    for k_, t_ in traces.items():
        ax.semilogy(np.maximum(t_, 1e-18), lw=0.8, label=k_)
    ax.axhline(1e-12, color="k", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("c_M(W_t)")
    ax.legend(fontsize=7)
    ax.set_title("V-5 feasibility over a long run (float64 reference)", fontsize=9)
    return ClaimResult("V-5", worst, "max feasibility residual over the run and manifolds", 0.0, "rounding level",
                       1e-12, "CLAIMS V-5: ≤ 1e-12 in float64", worst <= 1e-12,
                       ControlResult("the same tangent steps on M_F without retraction", ctrl, ctrl <= 1e-12),
                       details, fig)
