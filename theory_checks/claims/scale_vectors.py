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


def _gain_fit(placement: str, s_star: float, lam: float, steps: int, seed: int, decay_on: str = "gain") -> float:
    """Final loss of a toy with a gain γ and decoupled WD λ on γ only (float64 torch, full-batch Adam).

    ``output``: y = γ ⊙ n(Wx), target s*·n(W*x) (the norm after the layer: only γ can set the
    scale). ``input``: y = W(γ ⊙ n(x)), target s*·W*n(x) (W can absorb any scale).
    ``decay_on="weight"`` moves the decay from γ to W (the control)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d, T = 8, 256
    X = torch.randn(T, d, dtype=torch.float64, generator=g)
    Ws = torch.randn(d, d, dtype=torch.float64, generator=g) / d ** 0.5

    def n(h: torch.Tensor) -> torch.Tensor:
        return h / torch.sqrt(torch.mean(h * h, dim=-1, keepdim=True))

    Y = s_star * (n(X @ Ws.T) if placement == "output" else n(X) @ Ws.T)
    W = torch.nn.Parameter(torch.randn(d, d, dtype=torch.float64, generator=g) / d ** 0.5)
    gam = torch.nn.Parameter(torch.ones(d, dtype=torch.float64))
    wd_w, wd_g = (lam, 0.0) if decay_on == "weight" else (0.0, lam)
    opt = torch.optim.AdamW([{"params": [W], "weight_decay": wd_w}, {"params": [gam], "weight_decay": wd_g}],
                            lr=0.02, betas=(0.9, 0.99))
    for _ in range(steps):
        out = gam * n(X @ W.T) if placement == "output" else (gam * n(X)) @ W.T
        loss = torch.mean(torch.sum((out - Y) ** 2, dim=1)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


@register("S-3", "Weight decay on gains: with an Output-Norm the WD on γ raises the loss floor (increasing in λ) "
          "when the target needs a scale s* ≠ 1; with an Input-Norm W compensates and the floor stays flat",
          "arXiv 2605.26895 abstract ('weight decay is beneficial for the former but harmful for the latter'); "
          "formalisation reconstructed (CLAIMS S-3)", "S", needs=("torch",))
def s3(seed: int, budget: Budget) -> ClaimResult:
    """Decoupled WD (torch AdamW) on the gain only. Verdict (CLAIMS S-3): Spearman ρ of the final
    loss against λ > 0.8 for the Output-Norm toy at every s* ∈ {0.5, 2, 5}; "flat" for the
    Input-Norm toy stated as: its loss rise over the λ grid is below 10% of the Output-Norm rise
    (reconstructed). Control: the Output-Norm toy with WD on W instead of γ (W's scale is
    normalised away, so WD cannot bias the output scale): its loss must not rise."""
    from scipy.stats import spearmanr

    steps = budget.pick(600, 3000)
    lams = (0.0, 0.1, 0.3, 1.0, 3.0)
    rows, ok, curves = {}, True, {}
    for s_star in budget.pick((2.0,), (0.5, 2.0, 5.0)):
        out = np.array([_gain_fit("output", s_star, lam, steps, seed) for lam in lams])
        inp = np.array([_gain_fit("input", s_star, lam, steps, seed) for lam in lams])
        rho = float(spearmanr(lams, out)[0])
        rise_o, rise_i = float(out.max() - out[0]), float(inp.max() - inp[0])
        ok &= rho > 0.8 and rise_i <= 0.1 * rise_o
        rows[f"s* = {s_star}"] = {"Output-Norm ρ": rho, "Output-Norm rise": rise_o, "Input-Norm rise": rise_i}
        curves[s_star] = (out, inp)
    # control: Output-Norm, WD on W instead of γ (γ free): no scale bias, no rise
    ctrl_losses = np.array([_gain_fit("output", 2.0, lam, steps, seed, decay_on="weight") for lam in lams])
    c_rho = float(spearmanr(lams, ctrl_losses)[0]) if np.ptp(ctrl_losses) > 0 else 0.0
    c_rise = float(ctrl_losses.max() - ctrl_losses[0])
    ref_rise = rows[next(iter(rows))]["Output-Norm rise"]
    ctrl_pass = c_rho > 0.8 and c_rise > 0.1 * ref_rise
    fig, (ax,) = new_figure()
    lx = np.array(lams) + 0.03
    for s_star, (out, inp) in curves.items():
        ax.plot(lx, out, "o-", label=f"Output-Norm, s* = {s_star}")
        ax.plot(lx, inp, "s--", label=f"Input-Norm, s* = {s_star}")
    ax.plot(lx, ctrl_losses, "^:", color="C3", label="Output-Norm, WD on W instead (control)")
    ax.set_xscale("log")
    ax.set_xlabel("weight decay λ on the gain (+0.03 for the log axis)")
    ax.set_ylabel("final training loss")
    ax.legend(fontsize=6)
    ax.set_title("S-3 WD on Input- vs Output-Norm gains", fontsize=9)
    worst_rho = min(r["Output-Norm ρ"] for r in rows.values())
    return ClaimResult("S-3", worst_rho, "min Spearman ρ(λ, final loss), Output-Norm", None,
                       "ρ > 0.8 (Output-Norm); Input-Norm rise < 10% of the Output-Norm rise", 0.8,
                       "CLAIMS S-3: Spearman ρ > 0.8; 'flat' as the 10% rule (reconstructed)", bool(ok),
                       ControlResult("Output-Norm with WD on W (not γ): rising?", c_rho, bool(ctrl_pass),
                                     {"rise": c_rise}),
                       rows, fig)

