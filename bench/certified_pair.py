"""The spectral sphere's top pair along a training run: bound against the exact pair (issue 16).

``manifold-oracle bench gpu`` calls :func:`bench_pair_accuracy` for its section "Θ along a
training run": `train`'s macro-spectral (preset, batch and sequence length as the throughput
benchmark) is run for ``steps`` steps per Θ source with MACRO's ``diagnostics="full"`` (the eager
step; the fused step computes the same pair), and per window of steps it reports, over all hidden
matrices and steps:

* ``pair_angle``: max(sin∠(û, u₁), sin∠(v̂, v₁)) of the pair used against the float64 SVD of W;
* ``pair_bound`` (certified Θ): the certificate's bound, and the largest angle ÷ bound (≤ 1 is a
  valid bound; the certificate rests on the capture hypothesis H_k of
  ``gpu_impl.manifolds.pair_certificate``, so this is a check, not a tautology);
* ``fallback``: share of the pairs taken from the SVD because no Krylov tier met the bound;
* ``tangency_exact``: |u₁ᵀDv₁|/‖D‖_F with the exact pair, the normal component of the direction;
* ``feasibility``: c_S(W') = |σ₁(W') − R|/R after the step, exact σ₁;
* the relative gap (σ₁ − σ₂)/σ₁ of the exact spectrum (median, min), which shrinks as training
  flattens the top of the spectrum.
"""

from __future__ import annotations

import statistics
from typing import Sequence

import torch

__all__ = ["bench_pair_accuracy", "render_pair_accuracy"]


def bench_pair_accuracy(device: torch.device, *, preset: str, batch: int, seq_len: int, steps: int,
                        windows: Sequence[int], thetas: Sequence[str] = ("certified", "exact", "power"),
                        seed: int = 1) -> list[dict[str, object]]:
    """One row per (Θ source, window of steps ``(lo, hi]`` with hi in ``windows``)."""
    from manifold_oracle.gpu_impl.data import load_corpus, sample_batch
    from manifold_oracle.gpu_impl.train import TrainConfig, build_model, build_optimizer, lm_loss

    corpus = load_corpus(max_bytes=1 << 20)
    rows: list[dict[str, object]] = []
    for theta in thetas:
        torch.manual_seed(seed)
        cfg = TrainConfig(optimizer="macro-spectral", preset=preset, batch=batch, seq_len=seq_len, out=None,
                          progress=False, theta=theta)
        model = build_model(cfg, device, torch.float32)
        bundle = build_optimizer(cfg, model)
        opt = bundle.optimizers[0]
        opt.diagnostics_mode = "full"  # type: ignore[attr-defined]
        hidden = {id(p) for p in opt.param_groups[0]["params"]}
        gen = torch.Generator().manual_seed(seed)
        per_step: list[list[dict[str, float]]] = []
        for _ in range(steps):
            x, y = sample_batch(corpus.train, batch, seq_len, gen)
            bundle.zero_grad()
            lm_loss(model(x.to(device)), y.to(device)).backward()
            bundle.step()
            recs = [r for r in opt.diagnostics()["params"]  # type: ignore[attr-defined]
                    if id(opt.param_groups[r["group"]]["params"][r["index"]]) in hidden]
            per_step.append([{k: v for k, v in r.items() if isinstance(v, float)} for r in recs])
        lo = 0
        for hi in windows:
            recs = [r for s in per_step[lo:hi] for r in s]
            if not recs:
                continue
            angle = [r["pair_angle"] for r in recs]
            row: dict[str, object] = {
                "theta": theta, "steps": f"{lo + 1}–{hi}", "pairs": len(recs),
                "angle_max": max(angle), "angle_median": statistics.median(angle),
                "tangency_max": max(r["tangency_exact"] for r in recs),
                "feasibility_max": max(r["feasibility"] for r in recs),
                "gap_median": statistics.median(r["gap_exact"] for r in recs),
                "gap_min": min(r["gap_exact"] for r in recs),
            }
            if theta == "certified":
                row["bound_max"] = max(r["pair_bound"] for r in recs)
                row["ratio_max"] = max(r["pair_angle"] / r["pair_bound"] for r in recs if r["pair_bound"] > 0)
                row["fallback"] = sum(r["pair_fallback"] for r in recs) / len(recs)
            rows.append(row)
            lo = hi
    return rows


def render_pair_accuracy(rows: list[dict[str, object]]) -> list[str]:
    """Markdown table of :func:`bench_pair_accuracy`'s rows."""
    def e(x: object) -> str:
        return "–" if x is None else f"{float(x):.1e}"  # type: ignore[arg-type]

    out = ["| Θ | steps | pairs | max angle to exact | median angle | max bound | max angle ÷ bound | "
           "SVD fallback | max tangency (exact Θ) | max c_S(W') | gap median / min |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fb = r.get("fallback")
        out.append(f"| {r['theta']} | {r['steps']} | {r['pairs']} | {e(r['angle_max'])} | {e(r['angle_median'])} | "
                   f"{e(r.get('bound_max'))} | {'–' if r.get('ratio_max') is None else format(r['ratio_max'], '.3f')} | "
                   f"{'–' if fb is None else format(fb, '.1%')} | {e(r['tangency_max'])} | {e(r['feasibility_max'])} | "
                   f"{e(r['gap_median'])} / {e(r['gap_min'])} |")
    return out
