"""§X claims: the torch implementation (``gpu_impl.optim``) against the float64 reference.

X-1 compares steps under the same declared options, X-2 measures invariants over long fp32 runs,
X-3 checks that a step never writes into its gradient input. Tolerances follow CLAIMS §0.2's
low-precision model (c·u_dtype·growth), stated next to each check.
"""

from __future__ import annotations

import numpy as np

from .._common import new_figure
from ..registry import Budget, ClaimResult, ControlResult, register

U32 = 2.0 ** -24
NEEDS = ("torch", "manifold_oracle.gpu_impl.optim")
KINDS = ("frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _torch_vs_ref(kind: str, dtype, rng: np.random.Generator, steps: int, *, torch_scale: str = "kj",
                  ref_scale: str = "kj") -> float:
    """Max relative weight difference over ``steps`` steps of gpu_impl MACRO (exact msign, exact
    Θ) against reference MACRO on the same gradients."""
    import torch

    from manifold_oracle.gpu_impl.optim import MACRO as TorchMACRO
    from manifold_oracle.reference.optim import MACRO

    W0 = rng.standard_normal((12, 8)) / 4
    p = torch.nn.Parameter(torch.from_numpy(W0.copy()).to(dtype))
    opt = TorchMACRO([p], lr=0.05, manifold=kind, msign="exact", theta="exact", scale=torch_scale,
                     ns_dtype=None)
    ref = MACRO(manifold=kind, lr=0.05, scale=ref_scale)
    W = ref.initial_point(W0)
    st = ref.init_state(W)
    worst = 0.0
    for _ in range(steps):
        G = rng.standard_normal(W.shape)
        p.grad = torch.from_numpy(G.copy()).to(dtype)
        opt.step()
        W, st, _ = ref.step(W, G, st)
        worst = max(worst, _rel(p.detach().double().numpy(), W))
    return worst


@register("X-1", "One-step agreement: each step of the torch MACRO matches the float64 reference under the same "
          "declared options (fp64 ≤ 1e-12; fp32 at the fp32 rounding model)", "package requirement (CLAIMS X-1)",
          "X", needs=NEEDS)
def x1(seed: int, budget: Budget) -> ClaimResult:
    rng = np.random.default_rng(seed)
    steps = budget.pick(3, 20)
    import torch

    e64 = {k: _torch_vs_ref(k, torch.float64, rng, steps) for k in KINDS}
    e32 = {k: _torch_vs_ref(k, torch.float32, rng, steps) for k in KINDS}
    # fp32: the input is rounded (u₃₂) and every step adds O(n_eff·u₃₂) (products, SVD of a
    # 12×8 matrix, retraction): bound c·u₃₂·n_eff·steps with c = 10, n_eff = 12
    tol32 = 10 * U32 * 12 * steps
    ok = max(e64.values()) <= 1e-12 and max(e32.values()) <= tol32
    # control: a mis-declared shape scale (torch runs "one", the reference is declared "kj")
    ctrl = _torch_vs_ref("frobenius", torch.float64, rng, steps, torch_scale="one")
    fig, (ax,) = new_figure()
    x = np.arange(len(KINDS))
    ax.bar(x - 0.2, np.log10(np.maximum(list(e64.values()), 1e-18)), 0.4, label="fp64")
    ax.bar(x + 0.2, np.log10(np.maximum(list(e32.values()), 1e-18)), 0.4, label="fp32")
    ax.axhline(-12, color="C0", ls="--", lw=0.8, label="fp64 tolerance 1e-12")
    ax.axhline(np.log10(tol32), color="C1", ls="--", lw=0.8, label=f"fp32 tolerance {tol32:.1e}")
    ax.axhline(np.log10(ctrl), color="C3", lw=0.8, label="mis-declared scale (control)")
    ax.set_xticks(x, KINDS, fontsize=7, rotation=15)
    ax.set_ylabel("log10 max ‖W_torch − W_ref‖/‖W_ref‖")
    ax.legend(fontsize=6)
    ax.set_title(f"X-1 torch MACRO vs reference, {steps} steps", fontsize=9)
    return ClaimResult("X-1", max(e64.values()), "max relative weight difference, fp64", 0.0,
                       "fp64 ≤ 1e-12; fp32 within c·u₃₂·n_eff·steps", 1e-12,
                       "CLAIMS X-1 / §0.2 dtype model (c = 10, n_eff = 12)", bool(ok),
                       ControlResult("scale 'one' run, reference declared 'kj' (fp64)", ctrl, bool(ctrl <= 1e-12)),
                       {"fp64": e64, "fp32": e32, "fp32 tolerance": tol32}, fig)


@register("X-2", "Invariants over many fp32 steps: ‖W‖_F (M_F), row/column norms (OB), WᵀW = I (St), σ₁ (M_S) are "
          "re-projected each step and stay at fp32 rounding, not drifting with t", "package requirement (CLAIMS X-2)",
          "X", needs=NEEDS)
def x2(seed: int, budget: Budget) -> ClaimResult:
    import torch

    from manifold_oracle.gpu_impl.optim import MACRO as TorchMACRO

    torch.manual_seed(seed)
    steps = budget.pick(200, 10000)
    shape = (16, 12)
    traces, worst = {}, 0.0
    for kind in ("frobenius", "oblique_rows", "stiefel", "spectral"):
        p = torch.nn.Parameter(torch.randn(shape) / 4)
        opt = TorchMACRO([p], lr=0.02, manifold=kind, radius="mup", theta="exact", ns_dtype="bfloat16")
        R = float(opt.state[p]["radius"])
        tr = []
        for _ in range(steps):
            p.grad = torch.randn_like(p)
            opt.step()
            W = p.detach().double()
            if kind == "frobenius":
                v = abs(float(W.norm()) - R) / R
            elif kind == "oblique_rows":
                v = float(((W.norm(dim=1) - R).abs() / R).max())
            elif kind == "stiefel":
                v = float((W.T @ W / R**2 - torch.eye(shape[1], dtype=torch.float64)).norm())
            else:
                v = abs(float(torch.linalg.svdvals(W)[0]) - R) / R
            tr.append(v)
        traces[kind] = np.array(tr)
        worst = max(worst, float(np.max(tr)))
    # tolerance: re-projection every step leaves one step's rounding, not an accumulation:
    # (mn + 2)·u₃₂ (the sum of squares of mn entries and one multiply), independent of t
    tol = (shape[0] * shape[1] + 2) * U32
    # control: an unconstrained torch.optim.Muon run from the same start drifts in ‖W‖_F
    p = torch.nn.Parameter(torch.randn(shape) / 4)
    R0 = float(p.detach().norm())
    mu = torch.optim.Muon([p], lr=0.02, adjust_lr_fn="original")
    ctr = []
    for _ in range(steps):
        p.grad = torch.randn_like(p)
        mu.step()
        ctr.append(abs(float(p.detach().double().norm()) - R0) / R0)
    ctrl = float(max(ctr))
    fig, (ax,) = new_figure(width=6)
    for k, tr in traces.items():
        ax.semilogy(np.maximum(tr, 1e-12), lw=0.7, label=f"torch MACRO fp32, {k}")
    ax.semilogy(ctr, lw=0.7, color="C3", label="torch.optim.Muon ‖W‖_F drift (control)")
    ax.axhline(tol, color="k", ls="--", lw=0.8, label="(mn + 2)·u₃₂")
    ax.set_xlabel("step t")
    ax.set_ylabel("feasibility residual (relative)")
    ax.legend(fontsize=6)
    ax.set_title(f"X-2 invariants over {steps} fp32 steps", fontsize=9)
    return ClaimResult("X-2", worst, "max feasibility residual over the run and manifolds", 0.0,
                       "rounding level at every step (re-projected)", tol,
                       "(mn + 2)·u₃₂ per step, no growth with t (CLAIMS §0.2)", worst <= tol,
                       ControlResult("unconstrained torch.optim.Muon: relative drift of ‖W‖_F", ctrl, bool(ctrl <= tol)),
                       {k: float(v.max()) for k, v in traces.items()}, fig)


def _kj_style_nesterov_inplace(p, beta: float = 0.95) -> None:
    """A step written like Keller Jordan's reference muon_update: the Nesterov blend is written
    into the gradient in place (``grad.lerp_(momentum, beta)``) — the documented aliasing case."""
    import torch

    st = getattr(p, "_kj_momentum", None)
    if st is None:
        st = torch.zeros_like(p.grad)
        p._kj_momentum = st
    st.lerp_(p.grad, 1 - beta)
    p.grad.lerp_(st, beta)  # in-place write into the gradient
    with torch.no_grad():
        p.add_(p.grad, alpha=-0.01)


@register("X-3", "No mutation of inputs: a torch MACRO/MuonH/SSO step leaves its gradient (bf16, fp16, fp32, fp64; "
          "Nesterov on and off) bit-identical and keeps no alias of it in its state",
          "CONVENTIONS.md §10 (aliasing and in-place behaviours in public code)", "X", needs=NEEDS)
def x3(seed: int, budget: Budget) -> ClaimResult:
    import torch

    from manifold_oracle.gpu_impl.optim import MACRO as TorchMACRO
    from manifold_oracle.gpu_impl.optim import SSO as TorchSSO
    from manifold_oracle.gpu_impl.optim import MuonH as TorchMuonH

    torch.manual_seed(seed)
    changed, cases = 0, 0
    unsupported: set[str] = set()
    opt = None
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        for make in (lambda q: TorchMACRO(q, manifold="spectral", momentum_form="nesterov_ema", ns_dtype="bfloat16"),
                     lambda q: TorchMACRO(q, manifold="frobenius", momentum_form="ema", ns_dtype="bfloat16"),
                     lambda q: TorchMuonH(q, ns_dtype="bfloat16"),
                     lambda q: TorchSSO(q, bisect_max_iter=5, ns_dtype="bfloat16")):
            ps = [torch.nn.Parameter(torch.randn(10, 6).to(dtype))]
            for it in range(2):
                g = torch.randn(10, 6).to(dtype)
                ps[0].grad = g
                before = g.clone()
                try:
                    opt = make(ps) if it == 0 else opt
                    opt.step()
                except Exception as exc:  # noqa: BLE001  (a refused dtype is reported, not a mutation)
                    unsupported.add(f"{dtype}: {type(exc).__name__}")
                    if not torch.equal(g, before):
                        changed += 1
                    break
                cases += 1
                alias = any(isinstance(v, torch.Tensor) and v.numel() > 1 and
                            v.untyped_storage().data_ptr() == g.untyped_storage().data_ptr()
                            for st in opt.state.values() for v in st.values())
                changed += int(not (ps[0].grad is g and torch.equal(g, before)) or alias)
    # control: the KJ-style in-place Nesterov write into grad
    q = torch.nn.Parameter(torch.randn(10, 6))
    q.grad = torch.randn(10, 6)
    before = q.grad.clone()
    _kj_style_nesterov_inplace(q)
    ctrl_changed = 0 if torch.equal(q.grad, before) else 1
    fig, (ax,) = new_figure()
    ax.bar([0, 1], [changed, ctrl_changed], color=["C0", "C3"])
    ax.set_xticks([0, 1], [f"gpu_impl steps ({cases} cases)", "KJ-style in-place Nesterov (control)"], fontsize=7)
    ax.set_ylabel("steps that modified or aliased the gradient")
    ax.set_title("X-3 no mutation of inputs", fontsize=9)
    return ClaimResult("X-3", float(changed), "steps that changed or aliased their gradient input", 0.0,
                       "0 (bit equality)", 0.0, "CLAIMS X-3: bit equality", changed == 0 and cases > 0,
                       ControlResult("KJ-style in-place Nesterov write into grad", float(ctrl_changed),
                                     ctrl_changed == 0), {"cases": cases, "refused (dtype, error)": sorted(unsupported)}, fig)
