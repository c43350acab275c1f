"""§T learning-rate transfer: LR sweeps of the small decoder (``gpu_impl.train``) over width and depth.

Sources: the MACRO paper (arXiv 2605.04418) sweeps the learning rate over four widths and reports
that the optimum transfers; HyperP (arXiv 2603.28743, abstract) states that one base LR transfers
across width, depth and tokens, with Depth-μP (residual multiplier 1/√(2L)) still needed over
depth. Neither states a numeric criterion; the one used here is stated in each claim:

    transfer ⇔ the optimal LR on a factor-2 grid moves by at most ONE grid step across an 8× range.

Decision with its uncertainty. For each size the set of *plausible optima* is every grid LR whose
mean final validation loss is within 2·SE of the best (SE from the spread over seeds); an optimum
on the edge of the grid also admits the next grid point beyond it. The drift is then an interval
[min, max] over the plausible optima of all sizes: transfer is decided (PASS) when max ≤ 1, non-
transfer when min ≥ 2, and otherwise — or with a single seed, where no SE exists (the quick budget) —
the claim is INCONCLUSIVE and reports the measured optima.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .._common import new_figure
from ..registry import Budget, ClaimResult, ControlResult, register

#: optimizer label → (gpu_impl.train optimizer, centre of the LR grid = the package default)
OPTIMIZERS: dict[str, tuple[str, float]] = {
    "MACRO-Frobenius": ("macro-frobenius", 0.05),
    "MACRO-spectral": ("macro-spectral", 0.05),
    "Muon": ("muon", 0.02),
    "AdamW (no μP)": ("adamw", 3e-3),
}
CONTROL = "AdamW (no μP)"


def _plan(budget: Budget) -> dict[str, Any]:
    """Sizes, grid and seeds per budget (quick: minutes on 2 cores; full: the real experiment)."""
    return budget.pick(
        dict(widths=(8, 16, 32, 64), depth=1, depths=(1, 2, 4, 8), depth_width=16, grid=(-1, 0, 1, 2, 3),
             steps=40, batch=8, seq_len=32, seeds=1),
        dict(widths=(32, 64, 128, 256), depth=2, depths=(2, 4, 8, 16), depth_width=64,
             grid=(-3, -2, -1, 0, 1, 2, 3), steps=400, batch=16, seq_len=64, seeds=2))


def _final_loss(opt: str, lr: float, width: int, depth: int, depth_mup: bool, seed: int,
                plan: dict[str, Any]) -> float:
    import torch

    from manifold_oracle.gpu_impl.train import TrainConfig, run_training

    torch.set_num_threads(1)
    cfg = TrainConfig(optimizer=opt, width=width, depth=depth, heads=max(1, width // 16), lr=lr,
                      depth_mup=depth_mup, steps=plan["steps"], batch=plan["batch"], seq_len=plan["seq_len"],
                      seed=seed, out=None, progress=False, threads=1, val_every=plan["steps"],
                      msign_dtype="bfloat16",  # pinned: "auto" would differ by machine
                      val_batches=4, diag_every=10 ** 9, device="cpu")
    res = run_training(cfg)
    v = float(res.summary.get("final_val_loss", float("nan")))
    return v if np.isfinite(v) else float("inf")


@lru_cache(maxsize=8)
def _sweep(opt: str, base_lr: float, sizes: tuple[tuple[int, int, bool], ...], seed: int,
           budget_name: str) -> np.ndarray:
    """Final validation loss, shape (len(sizes), len(grid), seeds); sizes are (width, depth, depth_mup)."""
    plan = _plan(Budget(budget_name))
    grid = plan["grid"]
    out = np.empty((len(sizes), len(grid), plan["seeds"]))
    for i, (w, d, mup) in enumerate(sizes):
        for j, g in enumerate(grid):
            for k in range(plan["seeds"]):
                out[i, j, k] = _final_loss(opt, base_lr * 2.0 ** g, w, d, mup, seed + k, plan)
    return out


def _plausible(loss: np.ndarray) -> list[set[int]]:
    """Per size, the grid indices within 2·SE of the best mean (edges extended by one point)."""
    n_grid, seeds = loss.shape[1], loss.shape[2]
    sets = []
    for li in loss:
        mean = li.mean(axis=1)
        best = int(np.argmin(mean))
        if seeds > 1:
            finite = np.isfinite(li).all(axis=1)
            se = float(np.sqrt(np.mean(li[finite].var(axis=1, ddof=1)) / seeds)) if finite.any() else 0.0
            s = {j for j in range(n_grid) if np.isfinite(mean[j]) and mean[j] - mean[best] <= 2 * se * np.sqrt(2)}
        else:
            s = {best}
        if 0 in s:
            s.add(-1)
        if n_grid - 1 in s:
            s.add(n_grid)
        sets.append(s)
    return sets


def _drift(sets: list[set[int]]) -> tuple[int, int]:
    """(min, max) over choices of one plausible optimum per size of max − min index."""
    lo_max = max(min(s) for s in sets)
    hi_min = min(max(s) for s in sets)
    min_drift = max(0, lo_max - hi_min)
    max_drift = max(max(s) for s in sets) - min(min(s) for s in sets)
    return min_drift, max_drift


def _decide(loss: np.ndarray) -> tuple[str, tuple[int, int], list[int]]:
    """("transfers" | "does not transfer" | "undecided", drift interval, best index per size)."""
    best = [int(np.argmin(li.mean(axis=1))) for li in loss]
    if loss.shape[2] < 2:
        return "undecided", (0, max(best) - min(best)), best
    lo, hi = _drift(_plausible(loss))
    return ("transfers" if hi <= 1 else "does not transfer" if lo >= 2 else "undecided"), (lo, hi), best


def _plot(ax, loss: np.ndarray, grid_lrs: np.ndarray, labels: list[str], title: str) -> None:
    for i, lab in enumerate(labels):
        m = loss[i].mean(axis=1)
        ax.plot(grid_lrs, np.where(np.isfinite(m), m, np.nan), "o-", ms=3, label=lab)
        b = int(np.nanargmin(np.where(np.isfinite(m), m, np.nan)))
        ax.plot(grid_lrs[b], m[b], "k*", ms=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("learning rate of the hidden matrices")
    ax.set_ylabel("final validation loss (nats/byte)")
    ax.set_title(title + " (★ = optimum)", fontsize=8)
    ax.legend(fontsize=6)


@register("T-3", "Learning-rate transfer across width: the optimal LR of MACRO-Frobenius and MACRO-spectral moves "
          "by ≤ 1 grid step (factor 2) across an 8× width range; AdamW without μP scaling does not transfer",
          "MACRO paper (arXiv 2605.04418) LR sweep over four widths; HyperP (arXiv 2603.28743) abstract "
          "('one base LR transfers across width'); numeric criterion stated here", "T",
          needs=("manifold_oracle.gpu_impl.train",))
def t3(seed: int, budget: Budget) -> ClaimResult:
    plan = _plan(budget)
    sizes = tuple((w, plan["depth"], False) for w in plan["widths"])
    decisions, table, losses = {}, {}, {}
    for label, (opt, base) in OPTIMIZERS.items():
        loss = _sweep(opt, base, sizes, seed, budget.name)
        losses[label] = loss
        dec, drift, best = _decide(loss)
        decisions[label] = (dec, drift)
        table[label] = {f"width {w}": float(base * 2.0 ** plan["grid"][b]) for w, b in zip(plan["widths"], best)}
    fig, axes = new_figure(len(OPTIMIZERS), width=3.6, height=3.2)
    for ax, (label, (_, base)) in zip(axes, OPTIMIZERS.items()):
        _plot(ax, losses[label], base * 2.0 ** np.array(plan["grid"], dtype=float),
              [f"width {w}" for w in plan["widths"]], f"{label}: {decisions[label][0]}")
    fig.suptitle(f"T-3 LR sweep over width, depth {plan['depth']}, {plan['steps']} steps, {plan['seeds']} seed(s)",
                 fontsize=9)
    fig.tight_layout()
    macro = [decisions["MACRO-Frobenius"][0], decisions["MACRO-spectral"][0]]
    ctrl = decisions[CONTROL][0]
    passed = all(d == "transfers" for d in macro)
    decided = all(d != "undecided" for d in macro)
    drift_max = max(decisions["MACRO-Frobenius"][1][1], decisions["MACRO-spectral"][1][1])
    return ClaimResult(
        "T-3", float(drift_max), "drift of the optimal LR across widths, MACRO-F/S (grid steps, upper end)", 1.0,
        "≤ 1 grid step (factor 2) across the 8× width range", 1.0,
        "criterion stated by this claim; optimum uncertainty 2·SE over seeds (module docstring); a single seed "
        "cannot decide", passed,
        ControlResult("AdamW without μP: its transfer decision (must not be 'transfers')",
                      float(decisions[CONTROL][1][1]), ctrl == "transfers", {"decision": ctrl}),
        {"optimal LR per width": table,
         "decision and drift interval (grid steps)": {k: [v[0], *v[1]] for k, v in decisions.items()},
         "widths": list(plan["widths"]), "grid (log2 of LR/default)": list(plan["grid"]), "seeds": plan["seeds"],
         "steps": plan["steps"]},
        fig, decision="verdict" if decided else "inconclusive")


@register("T-4", "Learning-rate transfer across depth needs Depth-μP: with the residual multiplier 1/√(2L) the "
          "optimal LR of MACRO-Frobenius moves by ≤ 1 grid step across an 8× depth range; without it, it drifts",
          "HyperP (arXiv 2603.28743) abstract ('Depth-μP remains necessary'); ArchScale residual multiplier; "
          "numeric criterion stated here (T-3)", "T", needs=("manifold_oracle.gpu_impl.train",))
def t4(seed: int, budget: Budget) -> ClaimResult:
    plan = _plan(budget)
    opt, base = OPTIMIZERS["MACRO-Frobenius"]
    res = {}
    for mup in (True, False):
        sizes = tuple((plan["depth_width"], d, mup) for d in plan["depths"])
        loss = _sweep(opt, base, sizes, seed, budget.name)
        dec, drift, best = _decide(loss)
        res[mup] = (loss, dec, drift, {f"depth {d}": float(base * 2.0 ** plan["grid"][b])
                                       for d, b in zip(plan["depths"], best)})
    fig, axes = new_figure(2, width=4.2, height=3.3)
    grid_lrs = base * 2.0 ** np.array(plan["grid"], dtype=float)
    for ax, mup in zip(axes, (True, False)):
        _plot(ax, res[mup][0], grid_lrs, [f"depth {d}" for d in plan["depths"]],
              f"MACRO-F {'with' if mup else 'without'} Depth-μP: {res[mup][1]}")
    fig.suptitle(f"T-4 LR sweep over depth, width {plan['depth_width']}, {plan['steps']} steps, "
                 f"{plan['seeds']} seed(s)", fontsize=9)
    fig.tight_layout()
    dec = res[True][1]
    return ClaimResult(
        "T-4", float(res[True][2][1]), "drift of MACRO-F's optimal LR across depths with Depth-μP (grid steps)", 1.0,
        "≤ 1 grid step across the 8× depth range (with 1/√(2L)); the drift without it is the control", 1.0,
        "criterion of T-3; optimum uncertainty 2·SE over seeds", dec == "transfers",
        ControlResult("MACRO-F without Depth-μP: its transfer decision (must not be 'transfers')",
                      float(res[False][2][1]), res[False][1] == "transfers", {"decision": res[False][1]}),
        {"optimal LR per depth, with Depth-μP": res[True][3], "optimal LR per depth, without": res[False][3],
         "decisions": {"with": [res[True][1], *res[True][2]], "without": [res[False][1], *res[False][2]]},
         "seeds": plan["seeds"], "steps": plan["steps"]},
        fig, decision="inconclusive" if dec == "undecided" else "verdict")
