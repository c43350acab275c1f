"""Full training step: the small transformer of ``gpu_impl.model`` with the target optimizer,
against the declared rule computed from the same float64 gradients (issue 6; CLAIMS X-1).

The model runs in float64; its hidden matrices (q, k, v, o, gate, up, down) are handed to the
target optimizer in the parameter dtype, with gradients rounded to that dtype. Each step is
checked with teacher forcing on the weights (the expected step starts from the target's current
weights) and an independent expected momentum, so a corrupted optimizer state still shows while
rounding differences do not compound. For a manifold rule the initial matrices are projected
onto the declared manifold first. Where the target exposes its orthogonaliser, the expected
step replays it (``checks.rules``): the bound is the rule's rounding in the parameter dtype (plus
the orthogonaliser's bound for a matrix whose cast input may round differently).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from .. import expected as E
from ..adapters import to_numpy
from . import Case, Context, Measurement, NotApplicable, register
from ._util import call, tensor
from .optimizer import LR
from .rules import can_replay, manifold_of, off_manifold, power_note, replay_orth, step_bound


def _applies(ctx: Context) -> str | None:
    if ctx.profile.rule == "none":
        return "profile declares no optimizer rule"
    try:
        importlib.import_module("manifold_oracle.gpu_impl.model")
    except ImportError as exc:
        return f"gpu_impl.model not importable: {exc}"
    return None


def _cases(ctx: Context) -> list[Case]:
    steps = 3 if ctx.full else 2
    return [Case(f"tiny decoder, {steps} steps, {dt}", {}, {"steps": steps, "dtype": dt})
            for dt in (ctx.profile.param_dtypes if ctx.full else ctx.profile.param_dtypes[:1])]


def _model(seed: int) -> Any:
    from manifold_oracle.gpu_impl.model import Decoder, make_config

    cfg = make_config("tiny", width=32, depth=1, heads=2, ffn=48, vocab_size=64, max_seq_len=32)
    gen = torch.Generator().manual_seed(seed)
    return Decoder(cfg, generator=gen).double()


@register("training.transformer_steps", "training",
          "A few optimizer steps on the hidden matrices of the small transformer (gpu_impl.model) "
          "equal the declared rule applied to the same float64 gradients, per matrix and step.",
          requires={"optimizer"}, cases=_cases, applies=_applies, quick=True,
          catches=("any optimizer-step defect on real gradients",))
def transformer_steps(ctx: Context, case: Case) -> Measurement:
    p = ctx.profile
    dt = case.params["dtype"]
    model = _model(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    tokens = torch.randint(0, 64, (2, 17), generator=gen)
    x, y = tokens[:, :-1], tokens[:, 1:]
    names = [n for n, _ in model.hidden_matrices()]
    mats = dict(model.hidden_matrices())
    decl_man = manifold_of(ctx)
    with torch.no_grad():
        for n in names:
            W = mats[n].detach().numpy()
            if decl_man is not None:
                if p.manifolds[0].kind == "spectral_sphere":
                    # rescale onto the sphere with σ₂/σ₁ ≤ 0.5 (singular values above half of σ₁ are
                    # compressed): a power-iteration σ₁ of an implementation then agrees to ≤ 0.5^{2k}
                    Uw, sw, Vw = np.linalg.svd(W, full_matrices=False)
                    sw = np.concatenate([sw[:1], np.minimum(sw[1:], 0.5 * sw[0])])
                    W = p.manifolds[0].radius * (Uw * sw) @ Vw / sw[0]
                else:
                    W = decl_man.project_point(W)
            mats[n].copy_(torch.tensor(E.round_to(W, dt)))
    params = [torch.nn.Parameter(tensor(mats[n].detach().numpy(), dt)) for n in names]
    opt = call(ctx, "optimizer", params, lr=LR, momentum=p.momentum, weight_decay=0.0)
    replay = can_replay(ctx)
    orth = replay_orth(ctx, dt) if replay else None
    Ms: dict[str, Any] = {n: None for n in names}
    worst, worst_tol, rows = -1.0, None, []
    for t in range(1, case.params["steps"] + 1):
        model.zero_grad(set_to_none=True)
        loss = model.loss(x, y)
        loss.backward()
        grads = {n: E.round_to(mats[n].grad.detach().numpy(), dt) for n in names}
        Wcur = {n: to_numpy(prm.data) for n, prm in zip(names, params)}
        for n in names:
            off = off_manifold(decl_man if p.rule == "macro" else None, Wcur[n], t, n)  # sso retracts first
            if off is not None:
                return off
        for n, prm in zip(names, params):
            prm.grad = tensor(grads[n], dt)
        opt.step()
        for n, prm in zip(names, params):
            Mt, U = E.momentum_step(p, Ms[n], grads[n], p.momentum, t)
            lam = None
            if p.rule == "sso":
                X, lam = E.sso_input(p, Wcur[n], U, manifold=decl_man, orth=orth)  # the target's bisection replayed
                if E.sso_degenerate(X):  # set-valued tangent LMO: no single expected step
                    Ms[n] = Mt
                    continue
            else:
                X = E.orth_input(p, Wcur[n], U, manifold=decl_man)
            Wexp, Ms[n] = E.step(p, Wcur[n], grads[n], Ms[n], lr=LR, weight_decay=0.0, t=t,
                                 input_dtype=dt, manifold=decl_man, orth=orth, lam=lam)
            got = to_numpy(prm.data)
            err = float(np.linalg.norm(got - Wexp)) if np.all(np.isfinite(got)) else float("inf")
            tol, n_amb = step_bound(ctx, Wcur[n], Wexp, U, X, dt, LR, replay)
            rows.append({"step": t, "matrix": n, "error": err, "bound": tol.bound, "ambiguous_casts": n_amb,
                         "loss": float(loss.detach())})
            if worst_tol is None or err / tol.bound > worst / worst_tol.bound:
                worst, worst_tol = err, tol
        with torch.no_grad():
            for n, prm in zip(names, params):
                mats[n].copy_(prm.data.to(torch.float64))
    if worst_tol is None:
        raise NotApplicable("the model has no hidden matrices")
    return Measurement("‖W_t − W_t*‖_F (worst matrix and step)", worst, worst_tol,
                       worst <= worst_tol.bound, {"per_step": rows[-len(names):], "n_matrices": len(names),
                                                  "replay": replay, **power_note(ctx, replay)})
