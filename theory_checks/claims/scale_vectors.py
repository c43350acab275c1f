"""§S claims: scale vectors (gains) in pre-norm layers."""

from __future__ import annotations

import numpy as np

from .._common import T_GRID, loglog_panel, new_figure, slope_check
from ..registry import Budget, ClaimResult, ControlResult, register


def _n(h: np.ndarray) -> np.ndarray:
    """Parameter-free RMSNorm over the last axis."""
    return h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True))


@register("S-1", "No expressivity gain in Pre-Norm: W(γ ⊙ n(h)) = (W·diag γ)·n(h); f(h; cW, γ/c) = f(h; W, γ)",
          "arXiv 2605.26895 abstract; Wen part 1 (symmetry); derived (MATH §10.6)", "S")
def s1(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    d_out, d_in, T = 24, 32, budget.pick(64, 512)
    W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    gam = rng.uniform(0.2, 3.0, d_in)
    h = rng.standard_normal((T, d_in)) * rng.uniform(0.1, 10, (T, 1))
    ref = _n(h) @ (W * gam[None, :]).T
    worst = float(np.linalg.norm((gam * _n(h)) @ W.T - ref) / np.linalg.norm(ref))
    for c in (1e-3, 1.0, 1e3):
        out = ((gam / c) * _n(h)) @ (c * W).T
        worst = max(worst, float(np.linalg.norm(out - ref) / np.linalg.norm(ref)))
    # CLAIMS S-1: 1e-15 relative (the two sides differ by the order of a few roundings per entry)
    tol = 1e-15
    # control: gain after a nonlinearity (not absorbable): W·relu(γ ⊙ n(h)) vs relu-free absorption
    gam_s = gam * np.where(rng.random(d_in) < 0.5, -1.0, 1.0)
    ctrl_out = np.maximum(gam_s * _n(h), 0.0) @ W.T
    absorbed = np.maximum(_n(h), 0.0) @ (W * gam_s[None, :]).T
    cerr = float(np.linalg.norm(ctrl_out - absorbed) / np.linalg.norm(ctrl_out))
    fig, (ax,) = new_figure()
    ax.bar([0, 1], np.log10([max(worst, 1e-18), cerr]), color=["C0", "C3"])
    ax.axhline(np.log10(tol), color="k", ls="--", lw=0.8)
    ax.set_xticks([0, 1], ["pre-norm absorption / symmetry", "gain after relu (control)"], fontsize=7)
    ax.set_ylabel("log10 relative difference")
    ax.set_title("S-1 scale vectors are absorbed by the next linear map", fontsize=9)
    return ClaimResult("S-1", worst, "max relative difference (absorption and c ∈ {1e-3, 1, 1e3})", 0.0, "0",
                       tol, "CLAIMS S-1: 1e-15 relative (a few roundings of a dot product)", worst <= tol,
                       ControlResult("gain placed after a nonlinearity (relu, signed γ)", cerr, cerr <= tol), {}, fig)


@register("S-2", "One GD step on (W, γ) changes P = W·diag γ by −η[G_P diag(γ²) + W diag(diag(WᵀG_P))] + O(η²)",
          "arXiv 2605.26895 abstract ('self-amplifying preconditioning'); derived (MATH §10.6)", "S")
def s2(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    d_out, d_in = budget.pick((12, 9), (48, 36))
    W = rng.standard_normal((d_out, d_in))
    gam = rng.uniform(0.3, 2.0, d_in)
    GP = rng.standard_normal((d_out, d_in))
    P = W * gam
    gW = GP * gam  # ∇_W = G_P·diag(γ)
    gg = np.sum(W * GP, axis=0)  # ∇_γ = diag(WᵀG_P)
    dP = -(GP * gam**2 + W * gg[None, :])
    dP_c = -(GP + W * gg[None, :])  # control: the γ² factor dropped
    e, ec = [], []
    for eta in T_GRID:
        Pn = (W - eta * gW) * (gam - eta * gg)
        e.append(np.linalg.norm(Pn - P - eta * dP))
        ec.append(np.linalg.norm(Pn - P - eta * dP_c))
    ok, fit = slope_check(T_GRID, np.array(e), 2.0)
    okc, fitc = slope_check(T_GRID, np.array(ec), 2.0)
    fig, (ax,) = new_figure()
    loglog_panel(ax, T_GRID, {"formula": np.array(e), "without γ² (control)": np.array(ec)}, "S-2 first-order preconditioning",
                 "η", ref_orders=(1.0, 2.0))
    return ClaimResult("S-2", fit.slope, "log-log slope of ‖P_new − P − ΔP‖", 2.0, "slope 2", 0.05,
                       "CLAIMS §0.2 Taylor test ±0.05", ok, ControlResult("formula without the γ² factor", fitc.slope, okc),
                       {"e/η² spread": fit.ratio_spread}, fig)
