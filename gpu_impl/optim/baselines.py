"""Baselines in torch: MuonH (ArchScale form, MATH.md §9.3), SSO and MuonBall (MATH.md §9.4).

Both use the transactional step of :mod:`gpu_impl.optim._base` and route non-2-D parameters to
the internal AdamW. ``ns_dtype`` defaults to ``"auto"`` (bf16 on CUDA and AMX CPUs, float32 on
other CPUs; stored in the group as the concrete name, as in :class:`gpu_impl.optim.MACRO`).

**MuonH** (per matrix; ArchScale ``muonh`` path)::

    M ← μM + G;  U = μM + G (nesterov) or M;  O = NS(U)   (you_jiacheng_5; ``ns_dtype="auto"``)
    X ← (1 − ηλ)X;  r = ‖X‖_F;  q = ‖O‖_F
    X ← X − η·(r/max(q, 1e-8))·O;   X ← X·r/max(‖X‖_F, 1e-8)

No construction retraction (the radius is the current norm, so R = ‖W₀‖_F when λ = 0).

**SSO** (spectral sphere optimizer; retract-then-step)::

    M ← βM + (1 − β)G;  M̂ = M/max(‖M‖_F, 1e-8)
    (σ, u, v) = top singular pair of W: ``theta="certified"`` (default) the certified pair of
                ``gpu_impl.manifolds.SpectralSphere`` (warm-started Chebyshev/Krylov, a-posteriori
                bounds, the SVD only where they fail), ``"exact"`` the SVD, ``"power"`` SSO's code:
                a bilateral power iteration (v₀ = 1 each step, or warm-started; ``power_steps``),
                whose error grows with the flat top spectra that training produces
    hard:    W ← (R/(σ + ε))·W (ε = retract_eps, the code's 1e-8; skipped when σ + ε = R)
    dynamic: W ← W(1 + α·lr·b), b = −sign(σ − R)
    λ = root of h(λ) = ⟨uvᵀ, msign(M̂ + λuvᵀ)⟩   (bracket from 0, step 1e-3, doubling, ≤ 10
        expansions; bisection to |h| ≤ tol, ≤ max_iter; best point; per matrix, batched)
    W ← W − lr·s·msign(M̂ + λuvᵀ)

If the bracket is not found within the expansions, SSO's code uses λ = 0 silently; here
``on_bracket_failure="zero"`` (default, SSO's behaviour) records it in ``state["bracket_failures"]``
(a counter tensor) and in the diagnostics, and ``"raise"`` raises :class:`reference.errors.SolverError`.
Construction: W₀ ← R·W₀/σ₁(W₀) with the exact σ₁; R from ``radius_mode`` (``"spectral_mup"``
c·√(d_out/d_in), ``"identity"`` c, ``"initialize"`` c·σ₁(W₀), or a number). β defaults to 0.9 as in
``reference.optimizers.SSO``. **MuonBall** is SSO with λ ≡ 0.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import Tensor

from manifold_oracle.reference.errors import InvalidInputError, SolverError
from manifold_oracle.reference.schedules import Schedule

from ..manifolds import PAIR_STATE, THETA_SOURCES, SpectralSphere, check_count
from ..msign import MsignPolicy, resolve_dtype
from ._base import Bucket, MatrixOptimizer, check_initial_matrix, checked_number
from .conventions import decay_factor, momentum_buffer, shape_scale, update_momentum
from .macro import msign_policy_of

__all__ = ["MuonH", "SSO", "MuonBall", "SSO_SCALE_MODES"]

SSO_SCALE_MODES = {"align_adamw_rms": "moonlight", "spectral_mup": "spectral_mup", "shape_scaling": "kj"}


def _fro(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=(-2, -1))


class MuonH(MatrixOptimizer):
    """MuonH / Hyperball in the ArchScale form (module docstring; MATH.md §9.3)."""

    def __init__(self, params: Iterable, lr: float = 0.02, momentum: float = 0.95, *,
                 nesterov: bool = True, weight_decay: float = 0.0,
                 msign: str | Schedule | MsignPolicy = "you_jiacheng_5", ns_steps: int | None = None,
                 ns_dtype: str | torch.dtype | None = "auto",
                 adamw_lr: float = 1e-3, adamw_betas: tuple[float, float] = (0.9, 0.999),
                 adamw_eps: float = 1e-8, adamw_wd: float = 0.01,
                 nonfinite: str = "raise", diagnostics: bool | str = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                        msign=msign, ns_steps=ns_steps, ns_dtype=ns_dtype, adamw_lr=adamw_lr,
                        adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps, adamw_wd=adamw_wd)
        super().__init__(params, defaults, nonfinite=nonfinite, diagnostics=diagnostics)

    def _check_group(self, group: dict[str, Any]) -> None:
        if not float(group["lr"]) >= 0 or not 0 <= float(group["momentum"]) < 1 or not float(group["weight_decay"]) >= 0:
            raise InvalidInputError("MuonH needs lr >= 0, 0 <= momentum < 1, weight_decay >= 0")
        if group["ns_dtype"] is not None:
            resolve_dtype(group["ns_dtype"], torch.float32)
        msign_policy_of(group)

    def _init_matrix(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _bucket_update(self, bucket: Bucket, group: dict[str, Any], flags: list, diag: list | None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        W = bucket.weights()
        G = bucket.grads()
        M = bucket.stack_state("momentum")
        mu, lr, wd = float(group["momentum"]), float(group["lr"]), float(group["weight_decay"])
        M_new, U = update_momentum("nesterov_accumulate" if group["nesterov"] else "accumulate", mu, M, G)
        O = msign_policy_of(group)(U, check_finite=False)
        X = W * decay_factor("before_radius", lr, wd) if wd else W
        r = _fro(X)[:, None, None]
        q = _fro(O)[:, None, None]
        Y = X - lr * (r / q.clamp_min(1e-8)) * O
        W_new = Y * (r / _fro(Y)[:, None, None].clamp_min(1e-8))
        if diag is not None:
            nw = _fro(W)
            diag.append({"group": next(i for i, g in enumerate(self.param_groups) if g is group),
                         "index": self._param_index(group, bucket), "shape": bucket.shape, "manifold": "frobenius",
                         "tangency": (O * W).sum(dim=(-2, -1)).abs() / (q[:, 0, 0] * nw),
                         "feasibility": (_fro(W_new) - r[:, 0, 0]).abs() / r[:, 0, 0],
                         "angle": 2.0 * torch.asin((_fro(W_new / _fro(W_new)[:, None, None] - W / nw[:, None, None]) / 2).clamp(max=1.0)),
                         "update_rel": _fro(W_new - W) / nw})
        return W_new, {"momentum": M_new}


class SSO(MatrixOptimizer):
    """Spectral Sphere Optimizer (module docstring; MATH.md §9.4)."""

    solve_lambda = True

    def __init__(self, params: Iterable, lr: float = 0.02, momentum: float = 0.9, *,
                 radius_mode: str | float = "spectral_mup", radius_scale: float = 1.0,
                 scale_mode: str = "align_adamw_rms", retract_mode: str = "hard", retract_alpha: float = 0.05,
                 retract_eps: float = 1e-8,
                 power_steps: int = 10, warm_start: bool = False, theta: str = "certified",
                 msign: str | Schedule | MsignPolicy = "polar_express_eo", ns_steps: int | None = 5,
                 ns_dtype: str | torch.dtype | None = "auto",
                 bisect_tol: float = 1e-8, bisect_max_iter: int = 100, bracket_step: float = 1e-3,
                 bracket_expansions: int = 10, on_bracket_failure: str = "zero",
                 adamw_lr: float = 1e-3, adamw_betas: tuple[float, float] = (0.9, 0.999),
                 adamw_eps: float = 1e-8, adamw_wd: float = 0.01,
                 nonfinite: str = "raise", diagnostics: bool | str = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, radius_mode=radius_mode, radius_scale=radius_scale,
                        scale_mode=scale_mode, retract_mode=retract_mode, retract_alpha=retract_alpha,
                        retract_eps=retract_eps,
                        power_steps=power_steps, warm_start=warm_start, theta=theta, msign=msign,
                        ns_steps=ns_steps, ns_dtype=ns_dtype, bisect_tol=bisect_tol, bisect_max_iter=bisect_max_iter,
                        bracket_step=bracket_step, bracket_expansions=bracket_expansions,
                        on_bracket_failure=on_bracket_failure, adamw_lr=adamw_lr,
                        adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps, adamw_wd=adamw_wd)
        super().__init__(params, defaults, nonfinite=nonfinite, diagnostics=diagnostics)

    def _check_group(self, group: dict[str, Any]) -> None:
        if not float(group["lr"]) >= 0 or not 0 <= float(group["momentum"]) < 1:
            raise InvalidInputError("SSO needs lr >= 0 and 0 <= momentum < 1")
        rm = group["radius_mode"]
        if not (rm in ("spectral_mup", "identity", "initialize") or (isinstance(rm, (int, float)) and rm > 0)):
            raise InvalidInputError("radius_mode must be 'spectral_mup', 'identity', 'initialize' or a positive "
                                    f"float, got {rm!r}")
        checked_number(group["retract_eps"], "retract_eps")
        checked_number(group["radius_scale"], "radius_scale", low_open=True)
        checked_number(group["retract_alpha"], "retract_alpha")
        if group["scale_mode"] not in SSO_SCALE_MODES:
            raise InvalidInputError(f"scale_mode must be one of {tuple(SSO_SCALE_MODES)}, got {group['scale_mode']!r}")
        if group["retract_mode"] not in ("hard", "dynamic"):
            raise InvalidInputError(f"retract_mode must be 'hard' or 'dynamic', got {group['retract_mode']!r}")
        if group["on_bracket_failure"] not in ("zero", "raise"):
            raise InvalidInputError("on_bracket_failure must be 'zero' or 'raise'")
        if group.setdefault("theta", "power") not in THETA_SOURCES:
            raise InvalidInputError(f"theta must be one of {THETA_SOURCES}, got {group['theta']!r}")
        for key, low in (("power_steps", 1), ("bisect_max_iter", 1), ("bracket_expansions", 0)):
            check_count(group[key], key, low)
        checked_number(group["bisect_tol"], "bisect_tol", low_open=True)
        checked_number(group["bracket_step"], "bracket_step", low_open=True)
        if group["ns_dtype"] is not None:
            resolve_dtype(group["ns_dtype"], torch.float32)
        msign_policy_of(group)

    def _radius(self, group: dict[str, Any], m: int, n: int, s1: float) -> float:
        rm = group["radius_mode"]
        if rm == "spectral_mup":
            return float(group["radius_scale"]) * math.sqrt(m / n)
        if rm == "identity":
            return float(group["radius_scale"])
        if rm == "initialize":
            return float(group["radius_scale"]) * s1
        return float(rm)

    def _init_matrix(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        W = p.detach()
        check_initial_matrix(W, type(self).__name__)
        s1 = float(torch.linalg.matrix_norm(W.to(torch.float64), ord=2))
        if s1 == 0:
            raise InvalidInputError("cannot place a zero matrix on the spectral sphere")
        R = self._radius(group, W.shape[0], W.shape[1], s1)
        W.copy_(W.to(torch.float64) * (R / s1))
        state["radius"] = torch.tensor(R, dtype=W.dtype, device=W.device)
        state["momentum"] = torch.zeros_like(W, memory_format=torch.preserve_format)
        state["bracket_failures"] = torch.zeros((), dtype=torch.int64, device=W.device)

    def _solve_lambda(self, Mh: Tensor, Theta: Tensor, group: dict[str, Any], policy: MsignPolicy
                      ) -> tuple[Tensor, Tensor]:
        """Per-matrix root of h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩, batched; the same bracket-and-bisect
        sequence as ``reference.optimizers.sso_lambda`` (bracket [previous, current] expansion
        point; best point; stop at |h| ≤ tol). Returns (λ (B,), bracket_failed (B,) bool).
        Two-loop method: one device sync per iteration."""
        dt = Mh.dtype

        def h(lam: Tensor) -> Tensor:
            return (Theta * policy(Mh + lam[:, None, None] * Theta, check_finite=False)).sum(dim=(-2, -1))

        tol = float(group["bisect_tol"])
        zero = torch.zeros(Mh.shape[0], dtype=dt, device=Mh.device)
        h0 = h(zero)
        done = h0.abs() <= tol
        sign = torch.where(h0 > 0, -torch.ones_like(h0), torch.ones_like(h0))
        step = float(group["bracket_step"])
        near, far = zero, sign * step
        hfar = h(far)
        need = ~done & (torch.sign(hfar) == torch.sign(h0)) & (hfar != 0)
        failed = torch.zeros_like(done)
        expansions = 0
        while bool(need.any()):
            if expansions >= int(group["bracket_expansions"]):
                failed = need
                break
            near = torch.where(need, far, near)
            step *= 2.0
            far = torch.where(need, sign * step, far)
            hfar = torch.where(need, h(far), hfar)
            expansions += 1
            need = need & (torch.sign(hfar) == torch.sign(h0)) & (hfar != 0)
        lo = torch.where(sign > 0, near, far)
        hi = torch.where(sign > 0, far, near)
        closer = hfar.abs() < h0.abs()
        best = torch.where(closer, far, zero)
        hbest = torch.where(closer, hfar.abs(), h0.abs())
        active = ~done & ~failed
        for _ in range(int(group["bisect_max_iter"])):
            if not bool(active.any()):
                break
            mid = 0.5 * (lo + hi)
            hm = h(mid)
            better = active & (hm.abs() < hbest)
            best = torch.where(better, mid, best)
            hbest = torch.where(better, hm.abs(), hbest)
            conv = hm.abs() <= tol
            go = active & ~conv
            lo = torch.where(go & (hm < 0), mid, lo)
            hi = torch.where(go & ~(hm < 0), mid, hi)
            active = go
        lam = torch.where(done | failed, zero, best)
        return lam, failed

    def _bucket_update(self, bucket: Bucket, group: dict[str, Any], flags: list, diag: list | None
                       ) -> tuple[Tensor, dict[str, Tensor]]:
        W = bucket.weights()
        G = bucket.grads()
        M = bucket.stack_state("momentum")
        R = bucket.stack_state("radius")
        beta, lr = float(group["momentum"]), float(group["lr"])
        M_new = momentum_buffer("ema", beta, M, G)
        Mh = M_new / _fro(M_new)[:, None, None].clamp_min(1e-8)
        theta = group.get("theta", "power")  # state dicts saved before the option: SSO's power iteration
        sph = SpectralSphere(R, theta=theta, power_steps=int(group["power_steps"]), gap_policy="off",
                             check_radius=False,  # R: the state's radii, validated at construction (no sync)
                             **({"block": 1} if theta == "power" else {}))
        st: dict[str, Tensor] = {}
        if group["warm_start"]:
            for key in PAIR_STATE:  # the cached Ritz basis (and the certified pair's filter degree)
                v = bucket.stack_state(key)
                if v is not None:
                    st[key] = v
        pair = sph.top_pair(W, st, with_gap=False)
        sigma = pair.sigma
        if group["retract_mode"] == "hard":
            den = sigma + float(group["retract_eps"])
            W = torch.where((den == R)[:, None, None], W, W * (R / den)[:, None, None])
        else:
            b = -torch.sign(sigma - R)
            W = W * (1.0 + float(group["retract_alpha"]) * lr * b)[:, None, None]
        Theta = pair.theta
        policy = msign_policy_of(group)
        failed = torch.zeros(W.shape[0], dtype=torch.bool, device=W.device)
        if self.solve_lambda:
            lam, failed = self._solve_lambda(Mh, Theta.to(Mh.dtype), group, policy)
            if group["on_bracket_failure"] == "raise" and bool(failed.any()):
                raise SolverError("SSO: no sign change of h(λ) within the bracket expansions",
                                  status="bracket_failed", figures={"matrices": int(failed.sum())})
        else:
            lam = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device)
        Phi = policy(Mh + lam[:, None, None] * Theta, check_finite=False)
        m, n = bucket.shape
        s = shape_scale(SSO_SCALE_MODES[group["scale_mode"]], m, n)
        W_new = W - (lr * s) * Phi
        new_state: dict[str, Tensor] = {"momentum": M_new, "lambda": lam}
        if group["warm_start"]:
            new_state.update({k: st[k] for k in PAIR_STATE if k in st})
        bf = bucket.stack_state("bracket_failures")
        if bf is not None:
            new_state["bracket_failures"] = bf + failed.to(bf.dtype)
        if diag is not None:
            nw = _fro(W)
            diag.append({"group": next(i for i, g in enumerate(self.param_groups) if g is group),
                         "index": self._param_index(group, bucket), "shape": bucket.shape, "manifold": "spectral",
                         "tangency": (Theta * Phi).sum(dim=(-2, -1)).abs() / _fro(Phi),
                         "feasibility_before_step": (sigma - R).abs() / R,
                         "lambda": lam, "bracket_failed": failed.to(W.dtype),
                         "angle": 2.0 * torch.asin((_fro(W_new / _fro(W_new)[:, None, None] - W / nw[:, None, None]) / 2).clamp(max=1.0)),
                         "update_rel": _fro(W_new - W) / nw})
        return W_new, new_state


class MuonBall(SSO):
    """MuonBall: SSO with λ ≡ 0 (MATH.md §9.4)."""

    solve_lambda = False
