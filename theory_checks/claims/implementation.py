"""§I claims: implementation identities (Moonlight RMS scale, decoupled WD as an implicit norm ball)."""

from __future__ import annotations

import mpmath as mp
import numpy as np

from reference import msign, ns_apply
from reference.schedules import get_schedule

from .._common import exact_tol, new_figure, with_spectrum
from ..registry import Budget, ClaimResult, ControlResult, register


def _rms(X: np.ndarray) -> float:
    return float(np.linalg.norm(X) / np.sqrt(X.size))


def _mp_phi(coeffs: list[tuple[float, float, float]], x: float) -> float:
    """Composed odd quintics at 40 digits (independent of reference.schedules' evaluator)."""
    with mp.workdps(40):
        y = mp.mpf(x)
        for a, b, c in coeffs:
            y = a * y + b * y**3 + c * y**5
        return float(y)


@register("I-1", "Moonlight scale: 0.2·√max(m,n)·msign(G) has RMS 0.2 for full-rank G, 0.2√(r/k) for rank r, "
          "0.2(Σφᵢ²/k)^{1/2} for an NS output", "Moonlight (arXiv 2502.16982; examples/toy_train.py); derived", "I")
def i1(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    shapes = budget.pick([(8, 8), (64, 32), (32, 128), (128, 256)],
                         [(8, 8), (64, 32), (32, 128), (256, 512), (1024, 1024), (1024, 4096)])
    errs, smax = {}, {}
    for m, n in shapes:
        k = min(m, n)
        G = rng.standard_normal((m, n))
        O = 0.2 * np.sqrt(max(m, n)) * msign(G)
        errs[f"full {m}×{n}"] = abs(_rms(O) - 0.2) / exact_tol(max(m, n), 0.2)
        smax[f"{m}×{n}"] = float(np.linalg.norm(O, 2))
        if k <= 256:
            r = k // 2
            Gr = with_spectrum(rng, rng.uniform(0.5, 2.0, r), (m, n))
            Or = 0.2 * np.sqrt(max(m, n)) * msign(Gr, rank_rtol=1e-10)
            errs[f"rank {r} {m}×{n}"] = abs(_rms(Or) - 0.2 * np.sqrt(r / k)) / exact_tol(max(m, n), 0.2)
            sch = get_schedule("keller_jordan")
            s = np.linalg.svd(G, compute_uv=False)
            N = np.linalg.norm(G) + sch.eps
            phi = np.array([_mp_phi(list(sch.coefficients_for(5)), si / N) for si in s])
            On = 0.2 * np.sqrt(max(m, n)) * ns_apply("keller_jordan", G, steps=5)
            errs[f"NS KJ×5 {m}×{n}"] = abs(_rms(On) - 0.2 * np.sqrt(np.sum(phi**2) / k)) / exact_tol(max(m, n), 0.2)
    worst = float(max(errs.values()))
    # control: the full-rank law (RMS 0.2) applied to a rank-deficient G
    m, n = 64, 32
    Gr = with_spectrum(rng, rng.uniform(0.5, 2.0, 8), (m, n))
    c = abs(_rms(0.2 * np.sqrt(max(m, n)) * msign(Gr, rank_rtol=1e-10)) - 0.2) / exact_tol(max(m, n), 0.2)
    fig, (ax,) = new_figure(width=6)
    ax.bar(range(len(errs)), np.log10(np.maximum(list(errs.values()), 1e-4)))
    ax.axhline(0, color="k", ls="--", lw=0.8)
    ax.set_xticks(range(len(errs)), list(errs), rotation=35, fontsize=6, ha="right")
    ax.set_ylabel("log10 (|RMS − law| / c·u·n·0.2)")
    ax.set_title("I-1 Moonlight RMS 0.2 (dashed: tolerance)", fontsize=9)
    fig.tight_layout()
    return ClaimResult("I-1", worst, "max |RMS − law| / (c·u·n·0.2)", 0.0, "RMS 0.2 (full rank), 0.2√(r/k), NS law",
                       1.0, "CLAIMS §0.2 exact bound (ratio ≤ 1)", worst <= 1.0,
                       ControlResult("rank-8 G judged by the full-rank law 0.2", float(c), bool(c <= 1.0)),
                       {**errs, "Moonlight #22: σ₁ of the scaled update = 0.2√max(m,n)": smax}, fig)


@register("I-5", "Decoupled WD is an implicit norm ball: W_{t+1} = (1−ηλ)W_t + A_t, ‖A_t‖ ≤ η ⇒ "
          "‖W_t‖ ≤ max(‖W_0‖, 1/λ); Muon with scale s: ‖W_t‖₂ ≤ max(‖W_0‖₂, s/λ)",
          "Cesista Prop. 3 (Finsler dual ascent); Su 11729", "I")
def i5(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    m, n = 16, 24
    steps = budget.pick(400, 20000)
    eta, lam = 0.05, 0.5
    s = np.sqrt(max(1.0, m / n))
    slack = 1e-12
    out, traces = {}, {}
    for mode in ("aligned", "random"):
        for w0s in (0.1, 10.0):
            W = w0s * msign(rng.standard_normal((m, n)))  # ‖W_0‖₂ = w0s
            b = max(np.linalg.norm(W, 2), s / lam)
            mx, tr = 0.0, []
            for _ in range(steps):
                A = eta * s * (msign(W) if mode == "aligned" else msign(rng.standard_normal((m, n))))
                W = (1 - eta * lam) * W + A
                nv = np.linalg.norm(W, 2)
                mx = max(mx, nv)
                tr.append(nv)
            out[f"{mode}, ‖W0‖₂={w0s}: max‖W‖₂/bound"] = mx / b
            traces[f"{mode}, ‖W0‖₂={w0s}"] = tr
    worst = float(max(out.values()))
    # control: coupled L2 inside Adam normalisation with an adversarial (growth) gradient
    W = 0.1 * rng.standard_normal((m, n))
    mm, vv = np.zeros((m, n)), np.zeros((m, n))
    cmax = 0.0
    for t in range(1, steps + 1):
        g = -np.sign(W) * 10.0 + lam * W  # loss pushing |W| up; L2 added to the gradient
        mm = 0.9 * mm + 0.1 * g
        vv = 0.999 * vv + 0.001 * g * g
        W = W - eta * (mm / (1 - 0.9**t)) / (np.sqrt(vv / (1 - 0.999**t)) + 1e-8)
        cmax = max(cmax, float(np.linalg.norm(W, 2)))
    cratio = cmax / max(0.1 * np.sqrt(m * n), s / lam)
    fig, (ax,) = new_figure()
    for k, tr in traces.items():
        ax.plot(tr, lw=0.8, label=k)
    ax.axhline(s / lam, color="k", ls="--", lw=0.8, label="s/λ")
    ax.set_xlabel("step")
    ax.set_ylabel("‖W_t‖₂")
    ax.set_yscale("log")
    ax.legend(fontsize=6)
    ax.set_title("I-5 decoupled WD as an implicit spectral ball", fontsize=9)
    return ClaimResult("I-5", worst, "max_t ‖W_t‖₂ / max(‖W_0‖₂, s/λ)", 1.0, "≤ 1", 1.0 + slack,
                       "CLAIMS I-5: 1e-12 slack", worst <= 1.0 + slack,
                       ControlResult("coupled L2 before Adam normalisation, growth gradient", cratio, cratio <= 1.0 + slack),
                       out, fig)
