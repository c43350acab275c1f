"""Source-paper claims beyond CLAIMS.md: QK-norm bounds the pre-softmax logits (A-9) and layer
Lipschitz bounds compose across a constrained stack (A-10).

A-9 reads the logits of the shipped decoder's attention (``gpu_impl.model.Attention``) through a
forward hook on its RoPE module; A-10 composes matrices produced by the shipped reference MACRO on
the spectral sphere.
"""

from __future__ import annotations

import numpy as np

from .._common import new_figure
from ..registry import Budget, ClaimResult, ControlResult, register


def _max_logit(qk_norm: bool, c: float, seed: int) -> tuple[float, float]:
    """(max |qᵀk|/√d_head, √d_head) of one shipped Attention layer whose q, k weights are scaled by c."""
    import torch

    from manifold_oracle.gpu_impl.model import Attention, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig(width=64, heads=4, ffn=192, norm="parameter_free", qk_norm=qk_norm)
    att = Attention(cfg).double()
    with torch.no_grad():
        att.q.weight.mul_(c)
        att.k.weight.mul_(c)
    seen: list[torch.Tensor] = []
    hook = att.rope.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        att(torch.randn(2, 32, 64, dtype=torch.float64))
    finally:
        hook.remove()
    q, k = seen  # RoPE is applied to q, then to k (B, H, T, hd)
    hd = q.shape[-1]
    logits = q @ k.transpose(-1, -2) / hd ** 0.5
    return float(logits.abs().max()), float(hd ** 0.5)


@register("A-9", "QK-norm bounds the pre-softmax logits: with parameter-free RMSNorm on q and k (RoPE is a "
          "rotation) |qᵀk|/√d_head ≤ √d_head whatever the weight scale; without it the logits grow like c²",
          "MACRO paper (arXiv 2605.04418) Fig. 3 caption ('QK-norm to stabilize the pre-softmax logits'); "
          "derived; not in CLAIMS.md", "A", needs=("torch", "manifold_oracle.gpu_impl.model"))
def a9(seed: int, budget: Budget) -> ClaimResult:
    scales = np.array([0.1, 1.0, 10.0, 100.0])
    with_n = np.array([_max_logit(True, float(c), seed)[0] for c in scales])
    bound = _max_logit(True, 1.0, seed)[1]
    without = np.array([_max_logit(False, float(c), seed)[0] for c in scales])
    # tolerance: the bound is exact in exact arithmetic; RMSNorm's eps only lowers the norm and the
    # float64 products add ≲ c·u·d_head relative (c = 100)
    tol = 100 * 2.0 ** -53 * 16
    ok = bool(np.all(with_n <= bound * (1 + tol)))
    slope = float(np.polyfit(np.log(scales), np.log(without), 1)[0])
    fig, (ax,) = new_figure()
    ax.loglog(scales, with_n, "o-", label="with QK-norm (shipped Attention)")
    ax.loglog(scales, without, "s--", color="C3", label=f"without QK-norm (control): slope {slope:.2f}")
    ax.axhline(bound, color="k", ls="--", lw=0.8, label="bound √d_head")
    ax.set_xlabel("scale c of W_q and W_k")
    ax.set_ylabel("max |qᵀk|/√d_head")
    ax.legend(fontsize=7)
    ax.set_title("A-9 QK-norm bounds the pre-softmax logits", fontsize=9)
    return ClaimResult("A-9", float(with_n.max() / bound), "max logit / √d_head with QK-norm over c", 1.0,
                       "≤ 1 for every weight scale", tol, "exact bound; float64 rounding c·u·d_head", ok,
                       ControlResult("no QK-norm: max logit / √d_head at the largest c", float(without[-1] / bound),
                                     bool(without.max() <= bound * (1 + tol)), {"log–log slope in c": slope}),
                       {"with QK-norm": list(with_n), "without": list(without)}, fig)


@register("A-10", "Lipschitz bounds compose: a ReLU stack of spectral-sphere layers (‖W_l‖₂ = R_l) has Jacobian "
          "norm ≤ Π R_l everywhere; unconstrained weights exceed it", "Newhouse et al. 'Training transformers with enforced Lipschitz constants' (arXiv "
          "2507.13338), cited by the MACRO paper; derived; not in CLAIMS.md", "A")
def a10(seed: int, budget: Budget) -> ClaimResult:
    from manifold_oracle.reference.optim import Muon

    from ..shipped import macro_class, macro_run

    rng = np.random.default_rng(seed)
    dims = (24, 32, 32, 16, 8)
    steps = budget.pick(10, 50)
    Ws, Wu = [], []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        W0 = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
        grad = lambda W, t: rng.standard_normal(W.shape)  # noqa: E731
        Ws.append(macro_run(macro_class()(manifold="spectral", radius="mup", lr=0.1), W0, grad, steps)[0])
        Wu.append(macro_run(Muon(profile="keller_jordan", lr=0.3, weight_decay=0.0, scale="one"), W0, grad, steps)[0])
    bound = float(np.prod([np.sqrt(W.shape[0] / W.shape[1]) for W in Ws]))  # Π R_l, R = √(d_out/d_in)

    def jac_norms(layers: list[np.ndarray]) -> np.ndarray:
        out = []
        for _ in range(budget.pick(200, 2000)):
            x = rng.standard_normal(dims[0])
            J = np.eye(dims[0])
            h = x
            for i, W in enumerate(layers):
                z = W @ h
                J = W @ J
                if i < len(layers) - 1:  # ReLU: 1-Lipschitz, Jacobian diag(z > 0)
                    mask = (z > 0).astype(float)
                    J = mask[:, None] * J
                    h = np.maximum(z, 0.0)
            out.append(float(np.linalg.norm(J, 2)))
        return np.array(out)

    js, ju = jac_norms(Ws), jac_norms(Wu)
    tol = 100 * 2.0 ** -53 * max(dims) * len(Ws)  # float64 products of L matrices
    ok = bool(js.max() <= bound * (1 + tol))
    fig, (ax,) = new_figure()
    ax.hist(js / bound, bins=30, alpha=0.6, label="spectral-sphere stack (shipped MACRO-S)")
    ax.hist(ju / bound, bins=30, alpha=0.6, color="C3", label="unconstrained Muon stack (control)")
    ax.axvline(1.0, color="k", ls="--", lw=0.8, label="bound Π R_l")
    ax.set_xlabel("‖Jacobian‖₂ / Π R_l at random inputs")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    ax.set_title("A-10 composed Lipschitz bound", fontsize=9)
    return ClaimResult("A-10", float(js.max() / bound), "max ‖J(x)‖₂ / Π R_l over random x", 1.0, "≤ 1",
                       tol, "exact bound; float64 products c·u·n·L", ok,
                       ControlResult("unconstrained Muon weights: max ‖J‖₂ / the same bound", float(ju.max() / bound),
                                     bool(ju.max() <= bound * (1 + tol))),
                       {"Π R_l": bound, "median ‖J‖₂/bound (sphere)": float(np.median(js / bound))}, fig)
