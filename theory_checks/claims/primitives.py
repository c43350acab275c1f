"""§P claims: msign identities (P-1), schedule bands (P-5), msign-only identities (P-6)."""

from __future__ import annotations

import numpy as np

from reference import mclip, msign, nuclear_norm, polar_factor, schedule_band
from reference.schedules import get_schedule

from .._common import exact_tol, new_figure, with_spectrum
from ..registry import Budget, ClaimResult, ControlResult, register

# CONVENTIONS.md §9 (mpmath values rounded to 4 decimals):
# (label, schedule name, options, steps, lower bound l, band lo, band hi)
BAND_TABLE: list[tuple[str, str, dict, int, float, float, float]] = [
    ("KJ ×5, [0.1,1]", "keller_jordan", {}, 5, 0.1, 0.6818, 1.1344),
    ("KJ ×5, [0.001,1]", "keller_jordan", {}, 5, 0.001, 0.4705, 1.2024),
    ("KJ ×60 (attractor), [0.1,1]", "keller_jordan", {}, 60, 0.1, 0.6819, 1.1343),
    ("YJ5 ×5, [0.1,1]", "you_jiacheng_5", {}, 5, 0.1, 0.9778, 1.0318),
    ("YJ5 ×5, [0.001,1]", "you_jiacheng_5", {}, 5, 0.001, 0.4750, 1.1450),
    ("YJ5 cycled ×6, [0.1,1]", "you_jiacheng_5", {"extension": "cycle"}, 6, 0.1, 0.0642, 0.1649),
    ("YJ5 cycled ×6, [0.001,1]", "you_jiacheng_5", {"extension": "cycle"}, 6, 0.001, 0.0268, 1.2731),
    ("dion PE (1.02) ×5, [0.1,1]", "polar_express_dion", {}, 5, 0.1, 0.8589, 1.1411),
    ("dion PE (1.02) ×5, [0.001,1]", "polar_express_dion", {}, 5, 0.001, 0.8466, 1.1411),
    ("stable PE (1.01) ×5, [0.1,1]", "polar_express_stable", {}, 5, 0.1, 0.8703, 1.1236),
    ("stable PE (1.01) ×10, [0.001,1]", "polar_express_stable", {}, 10, 0.001, 1.0000, 1.0000),
    ("EO PE first 5, [0.1,1]", "polar_express_eo", {}, 5, 0.1, 0.8704, 1.1236),
    ("Modula NS6 ×6, [0.1,1]", "modula_ns6", {}, 6, 0.1, 0.9956, 0.9993),
    ("Modula NS6 ×6, [0.001,1]", "modula_ns6", {}, 6, 0.001, 0.8663, 0.9993),
    ("classical ×5, [0.1,1]", "classical", {}, 5, 0.1, 0.9958, 1.0000),
    ("classical ×5, [0.01,1]", "classical", {}, 5, 0.01, 0.2285, 1.0000),
    ("classical ×5, [0.001,1]", "classical", {}, 5, 0.001, 0.0232, 1.0000),
    ("classical ×10, [0.001,1]", "classical", {}, 10, 0.001, 0.4987, 1.0000),
]


def _band(name: str, opts: dict, steps: int, lower: float) -> tuple[float, float]:
    sch = get_schedule(name).with_options(**opts) if opts else name
    return schedule_band(sch, lower, steps=steps)


@register("P-5", "Singular-value bands of the declared NS schedules equal CONVENTIONS.md §9",
          "derived from the published coefficients (CONVENTIONS.md §9)", "P")
def p5(seed: int, budget: Budget) -> ClaimResult:
    rows = BAND_TABLE if not budget.quick else BAND_TABLE[::1]
    errs, labels, meas = [], [], []
    for label, name, opts, steps, lo_x, lo, hi in rows:
        a, b = _band(name, opts, steps, lo_x)
        errs.append(max(abs(a - lo), abs(b - hi)))
        labels.append(label)
        meas.append((a, b, lo, hi))
    tol = 1e-4
    # control: the cycled YJ5 extension judged against the YJ5 row (extension assumed harmless)
    a, b = _band("you_jiacheng_5", {"extension": "cycle"}, 6, 0.1)
    cerr = max(abs(a - 0.9778), abs(b - 1.0318))
    fig, (ax,) = new_figure(width=7)
    y = np.arange(len(rows))
    for i, (a_, b_, lo, hi) in enumerate(meas):
        ax.plot([a_, b_], [i, i], "-", lw=4, color="C0", alpha=0.6)
        ax.plot([lo, hi], [i, i], "|", color="k", ms=10)
    ax.set_yticks(y, labels, fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("band [min φ, max φ] (bars) vs table (ticks)")
    ax.set_title("P-5 Newton–Schulz singular-value bands", fontsize=9)
    fig.tight_layout()
    worst = float(max(errs))
    return ClaimResult("P-5", worst, "max |band − table| over the rows", 0.0, "the tabulated bands",
                       tol, "CLAIMS P-5: 1e-4 absolute (4-decimal table rounding + grid)", worst <= tol,
                       ControlResult("YJ5 cycled to 6 steps checked against the YJ5 row", cerr, cerr <= tol),
                       {lab: e for lab, e in zip(labels, errs)}, fig)


def _mclip_identity(W: np.ndarray, tau: float, sign_fn=msign) -> np.ndarray:
    """½{W + τ·msign W − (τI − W·msign(W)ᵀ)·msign(τ·msign W − W)} (MATH §2.4)."""
    P = sign_fn(W)
    return 0.5 * (W + tau * P - (tau * np.eye(W.shape[0]) - W @ P.T) @ sign_fn(tau * P - W))


@register("P-6", "msign-only identities: mclip(W;τ), proj_psd, eig_stepfun, eig_clip equal their SVD/eig "
          "definitions", "Su 11729; Cesista (MATH §2.4)", "P")
def p6(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    errs: dict[str, float] = {}
    tau = 1.0
    reps = budget.pick(3, 20)
    for shape in ((7, 5), (5, 7), (6, 6)):
        k = min(shape)
        for _ in range(reps):
            s = np.sort(rng.uniform(0.2, 2.5, k))[::-1]
            s[k // 2] = tau  # a singular value exactly at τ
            W = with_spectrum(rng, s, shape)
            e = float(np.linalg.norm(_mclip_identity(W, tau) - mclip(W, tau)))
            errs[f"mclip {shape}"] = max(errs.get(f"mclip {shape}", 0.0), e / exact_tol(max(shape), np.linalg.norm(W)))
    n = 6
    for _ in range(reps):
        lam = np.concatenate([rng.uniform(-2, -0.1, 3), rng.uniform(0.1, 2, 3)])
        Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
        S = (Q * lam) @ Q.T
        S = 0.5 * (S + S.T)
        tol = exact_tol(n, np.abs(lam).sum())
        psd = (Q * np.maximum(lam, 0)) @ Q.T
        errs["proj_psd"] = max(errs.get("proj_psd", 0.0), np.linalg.norm(0.5 * (S + S @ msign(S)) - psd) / tol)
        alpha = 0.05
        step = (Q * (lam > alpha)) @ Q.T
        errs["eig_stepfun"] = max(errs.get("eig_stepfun", 0.0),
                                  np.linalg.norm(0.5 * (np.eye(n) + msign(S - alpha * np.eye(n))) - step) / tol)
        a, b = -0.5, 0.7
        A, B = a * np.eye(n) - S, b * np.eye(n) - S
        clip = 0.5 * ((a + b) * np.eye(n) + A @ msign(A) - B @ msign(B))
        errs["eig_clip"] = max(errs.get("eig_clip", 0.0), np.linalg.norm(clip - (Q * np.clip(lam, a, b)) @ Q.T) / tol)
    measured = float(max(errs.values()))
    # control: polar_factor in place of msign on a rank-deficient tall W
    ctrl = {}
    for shape in ((7, 5), (5, 7), (6, 6)):
        s = np.array([3.0, 2.0, 1.0, 0.5, 0.0, 0.0][: min(shape)])
        W = with_spectrum(rng, s[s > 0], shape)
        ctrl[str(shape)] = float(np.linalg.norm(_mclip_identity(W, tau, polar_factor) - mclip(W, tau))
                                 / exact_tol(max(shape), np.linalg.norm(W)))
    c = ctrl["(7, 5)"]
    fig, (ax,) = new_figure(width=6)
    names = list(errs) + [f"control polar {k}" for k in ctrl]
    vals = list(errs.values()) + list(ctrl.values())
    ax.bar(range(len(vals)), np.log10(np.maximum(vals, 1e-3)), color=["C0"] * len(errs) + ["C3"] * len(ctrl))
    ax.axhline(0, ls="--", color="k", lw=0.8)
    ax.set_xticks(range(len(vals)), names, rotation=35, fontsize=6, ha="right")
    ax.set_ylabel("log10 (error / c·u·n·scale)")
    ax.set_title("P-6 msign-only identities (dashed: tolerance)", fontsize=9)
    fig.tight_layout()
    return ClaimResult("P-6", measured, "max error / (c·u·n·‖W‖_F)", 0.0, "0 (identities)", 1.0,
                       "CLAIMS §0.2 exact bound c·u·max(m,n)·scale (ratio ≤ 1)", measured <= 1.0,
                       ControlResult("polar_factor in place of msign, rank-deficient tall 7×5 W", c, c <= 1.0,
                                     {"wide 5×7 and square 6×6 (identity survives there)": ctrl}),
                       errs, fig)


@register("P-1", "msign identities: ‖msign X‖₂ = 1, ‖msign X‖²_F = rank X, ⟨msign X, X⟩ = ‖X‖_*, "
          "msign maximises ⟨X, Φ⟩ over ‖Φ‖₂ ≤ 1", "standard (MATH §2.2)", "P")
def p1(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    worst, gaps, rows = 0.0, [], []
    reps = budget.pick(6, 40)
    for i in range(reps):
        shape = [(9, 6), (6, 9), (8, 8)][i % 3]
        k = min(shape)
        r = k if i % 2 == 0 else k - 2
        scale = 10.0 ** rng.uniform(-12, 12)
        s = scale * np.sort(rng.uniform(0.1, 1, r))[::-1]
        X = with_spectrum(rng, s, shape)
        P = msign(X, rank_rtol=1e-10)
        tol1 = exact_tol(max(shape), 1.0)
        e = max(abs(np.linalg.norm(P, 2) - 1) / tol1, abs(np.sum(P * P) - r) / exact_tol(max(shape), r),
                abs(np.sum(P * X) - s.sum()) / exact_tol(max(shape), s.sum()))
        worst = max(worst, e)
        for _ in range(20):  # random feasible competitors: contractions
            Phi = rng.standard_normal(shape)
            Phi /= np.linalg.norm(Phi, 2)
            gaps.append((np.sum(P * X) - np.sum(Phi * X)) / s.sum())
        rows.append((r, np.sum(P * P)))
    gap_min = float(min(gaps))
    ok = worst <= 1.0 and gap_min >= -exact_tol(9, 1.0)
    # control: polar_factor on rank-deficient X has ‖·‖²_F = k ≠ r
    X = with_spectrum(rng, np.array([3.0, 2.0, 1.0]), (9, 6))
    Pp = polar_factor(X)
    c = abs(np.sum(Pp * Pp) - 3) / exact_tol(9, 3)
    fig, (ax,) = new_figure()
    ax.hist(gaps, bins=30)
    ax.set_xlabel("(⟨X, msign X⟩ − ⟨X, Φ⟩)/‖X‖_*")
    ax.set_title("P-1 msign beats random feasible Φ", fontsize=9)
    return ClaimResult("P-1", worst, "max identity error / (c·u·n·scale)", 0.0, "0; gaps ≥ 0", 1.0,
                       "CLAIMS §0.2 exact bound (ratio ≤ 1)", ok,
                       ControlResult("polar_factor on rank-3 9×6 X: ‖·‖²_F − r", float(c), bool(c <= 1.0)),
                       {"min normalised gap to random Φ": gap_min}, fig)
