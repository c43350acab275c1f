"""Adapters for the harness's meta-tests: correct ones, and defective ones planting one
realistic defect each (issue 6; CONVENTIONS.md §10).

The correct adapters are small, independent torch implementations of their declared profiles
(fp32 Newton–Schulz, float64 MACRO with exact msign, fp32 Muon, float64 SSO-style exact tangent
direction on the spectral sphere). Each defective adapter subclasses a correct one and changes
exactly one thing; ``DEFECTS`` maps it to the check id meant to catch it.
"""

from __future__ import annotations

from typing import Any

import torch

from manifold_oracle.conformance.adapters import Adapter
from manifold_oracle.conformance.profiles import ManifoldDecl, Profile

KJ = (3.4445, -4.7750, 2.0315)

NS_PROFILE = Profile(
    name="zoo_ns", description="fp32 KJ×5 Newton–Schulz, clamp eps 1e-7, batched",
    schedule="keller_jordan", steps=5, eps_form="clamp", eps=1e-7, cast_point="cast_then_normalise",
    compute_dtype="float32", return_dtype="input", ndim_handling="batched", param_dtypes=("float32",),
    nan_policy="propagate", zero_policy="zero", scale_range=(1e-6, 1e12))

MANIFOLDS = (ManifoldDecl("frobenius", "frobenius_sphere", radius=1.5, retraction="rescale", retraction_order=2),
             ManifoldDecl("oblique_rows", "oblique", axis="rows", radius=1.0, retraction="normalize",
                          retraction_order=2),
             ManifoldDecl("spectral", "spectral_sphere", radius=2.0, retraction="projection", retraction_order=2))

MACRO_PROFILE = Profile(
    name="zoo_macro", description="float64 MACRO variant A, exact msign, Frobenius sphere R = 1.5",
    schedule="exact", compute_dtype="float64", return_dtype="input", ndim_handling="2d_only",
    rule="macro", momentum_form="ema", momentum=0.9, nesterov_form="none", shape_scale="none",
    scale=1.0, param_dtypes=("float64",), manifolds=MANIFOLDS, direction_tangent=True,
    mutation=("momentum_buffer",), nan_policy="propagate", zero_policy="zero", scale_range=(1e-30, 1e30))

MUON_PROFILE = Profile(
    name="zoo_muon", description="fp32 Muon: KJ×5 NS in fp32, EMA + EMA-Nesterov, √max(1, A/B), raw-lr WD",
    schedule="keller_jordan", steps=5, eps_form="clamp", eps=1e-7, compute_dtype="float32",
    return_dtype="input", rule="muon", momentum_form="ema", momentum=0.95, nesterov_form="ema",
    shape_scale="kj", weight_decay_coupling="decoupled_raw_lr", weight_decay=0.0, lr=0.02,
    param_dtypes=("float32",), mutation=("momentum_buffer",), scale_range=(1e-6, 1e12))

SSO_PROFILE = Profile(
    name="zoo_sso", description="float64 exact tangent spectral LMO on the spectral sphere (SSO-style λ)",
    schedule="exact", compute_dtype="float64", return_dtype="input", param_dtypes=("float64",),
    manifolds=(ManifoldDecl("spectral", "spectral_sphere", radius=1.0, retraction="projection"),),
    direction_tangent=True)


# ------------------------------------------------------------------------------ building blocks
def ns(G: torch.Tensor, coeffs=KJ, steps: int = 5, eps: float = 1e-7, dtype=torch.float32,
       eps_form: str = "clamp", normalise_first: bool = False) -> torch.Tensor:
    """Out-of-place quintic NS, batched, per-matrix normalisation, transpose if tall;
    ``normalise_first``: normalise in float32, then cast to ``dtype`` (normalise_then_cast)."""
    X = G.to(torch.float32 if normalise_first else dtype)
    tall = X.shape[-2] > X.shape[-1]
    if tall:
        X = X.mT
    # ‖X‖_F without overflow (‖X‖_F² overflows fp32 from ‖X‖_F ≈ 1.8e19): scale by the largest entry
    m = X.abs().amax(dim=(-2, -1), keepdim=True)
    m = torch.where(m > 0, m, torch.ones_like(m))
    n = m * torch.linalg.vector_norm(X / m, dim=(-2, -1), keepdim=True)
    if eps_form == "sqrt":  # a defect's normaliser: ε inside the square root, √(‖X‖²_F + ε)
        X = (X / torch.sqrt(n * n + eps)).to(dtype)
    else:
        X = (X / (n.clamp(min=eps) if eps_form == "clamp" else n + eps)).to(dtype)
    a, b, c = coeffs
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    if tall:
        X = X.mT
    return X.to(G.dtype)


def ns_stochastic(G: torch.Tensor) -> torch.Tensor:
    """KJ×5 NS in bf16 after G/max(‖G‖_F, 1e-7) in fp32 and a stochastic rounding to bf16 (torch's
    global RNG, HeavyBall's scheme: add uniform 16-bit noise to the fp32 bits, truncate)."""
    X = G.to(torch.float32)
    X = X / torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    bits = X.view(torch.int32)
    X = (bits + torch.randint_like(bits, 0, 1 << 16)).bitwise_and(-65536).view(torch.float32).bfloat16()
    tall = X.shape[-2] > X.shape[-1]
    X = X.mT if tall else X
    a, b, c = KJ
    for _ in range(5):  # no second normalisation: the rounded unit-norm input is iterated as it is
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if tall else X).to(G.dtype)


def msign64(X: torch.Tensor) -> torch.Tensor:
    U, s, Vh = torch.linalg.svd(X.to(torch.float64), full_matrices=False)
    keep = (s > 1e-10 * s[..., :1]).to(torch.float64)
    return ((U * keep.unsqueeze(-2)) @ Vh).to(X.dtype)


def _fro(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)


# ------------------------------------------------------------------------------ correct adapters
class GoodNS(Adapter):
    name = "zoo: fp32 Newton–Schulz"
    profile = NS_PROFILE
    capabilities = frozenset({"msign"})

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns(G)


class MacroOpt(torch.optim.Optimizer):
    """float64 MACRO variant A on the Frobenius sphere (exact msign), EMA momentum."""

    def __init__(self, params: list, lr: float, momentum: float, radius: float, wd_on_sphere: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.radius, self.wd_on_sphere = radius, wd_on_sphere

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p)
                M = st["momentum_buffer"]
                M.mul_(g["momentum"]).add_(p.grad, alpha=1 - g["momentum"])
                W = p.detach()
                P = lambda Z: Z - (Z * W).sum() / (W * W).sum() * W  # noqa: E731
                D = P(msign64(P(M)))
                Y = W - g["lr"] * D
                p.copy_(self.radius * Y / torch.linalg.norm(Y))
                if self.wd_on_sphere:
                    p.mul_(1 - g["lr"] * self.wd_on_sphere)


class GoodMACRO(Adapter):
    name = "zoo: float64 MACRO"
    profile = MACRO_PROFILE
    capabilities = frozenset({"msign", "project_tangent", "retract", "contains", "direction", "optimizer"})

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return msign64(G)

    def _radius(self, name: str) -> float:
        return next(d.radius for d in MANIFOLDS if d.name == name)

    def top_pair(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        U, s, Vh = torch.linalg.svd(W, full_matrices=False)
        return U[:, 0], Vh[0]

    def project_tangent(self, manifold: str, W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        if manifold == "frobenius":
            return G - (G * W).sum() / (W * W).sum() * W
        if manifold == "oblique_rows":
            return G - ((G * W).sum(-1, keepdim=True) / (W * W).sum(-1, keepdim=True)) * W
        u, v = self.top_pair(W)
        T = torch.outer(u, v)
        return G - (G * T).sum() * T

    def retract(self, manifold: str, W: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        R = self._radius(manifold)
        Y = W + A
        if manifold == "frobenius":
            return R * Y / torch.linalg.norm(Y)
        if manifold == "oblique_rows":
            return R * Y / torch.linalg.vector_norm(Y, dim=-1, keepdim=True)
        U, s, Vh = torch.linalg.svd(Y, full_matrices=False)
        return (U * s.clamp(max=R)) @ Vh if s[0] >= R else Y + (R - s[0]) * torch.outer(U[:, 0], Vh[0])

    def contains(self, manifold: str, W: torch.Tensor, atol: float) -> bool:
        R = self._radius(manifold)
        if manifold == "frobenius":
            return bool(abs(float(torch.linalg.norm(W)) - R) / R <= atol)
        if manifold == "oblique_rows":
            return bool(float((torch.linalg.vector_norm(W, dim=-1) - R).abs().max()) / R <= atol)
        return bool(abs(float(torch.linalg.matrix_norm(W, ord=2)) - R) / R <= atol)

    def direction(self, W: torch.Tensor, G: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        b = MACRO_PROFILE.momentum
        M = (torch.zeros_like(G) if state is None else state["m"]) * b + (1 - b) * G
        P = lambda Z: self.project_tangent("frobenius", W, Z)  # noqa: E731
        return P(msign64(P(M))), {"m": M}

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroOpt(params, lr, momentum, self._radius("frobenius"))


class MuonOpt(torch.optim.Optimizer):
    """fp32 Muon: EMA momentum, EMA-Nesterov, fp32 KJ NS, √max(1, A/B), decoupled raw-lr WD."""

    def __init__(self, params: list, lr: float, momentum: float, weight_decay: float, *, sign: float = 1.0,
                 scale_rule: str = "kj", normalise_buffer: bool = False, write_grad: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.sign, self.scale_rule = sign, scale_rule
        self.normalise_buffer, self.write_grad = normalise_buffer, write_grad

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p)
                buf, b = st["momentum_buffer"], g["momentum"]
                buf.lerp_(p.grad, 1 - b)
                U = p.grad.lerp_(buf, b) if self.write_grad else p.grad.lerp(buf, b)
                O = ns(U)
                if self.normalise_buffer:
                    buf.div_(torch.linalg.norm(buf))
                A, B = p.shape
                s = (max(1.0, A / B) ** 0.5) if self.scale_rule == "kj" else 0.2 * max(A, B) ** 0.5
                p.mul_(1 - g["lr"] * g["weight_decay"])
                p.add_(O, alpha=-self.sign * g["lr"] * s)


class GoodMuon(Adapter):
    name = "zoo: fp32 Muon"
    profile = MUON_PROFILE
    capabilities = frozenset({"msign", "optimizer"})
    opt_kwargs: dict[str, Any] = {}

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns(G)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MuonOpt(params, lr, momentum, weight_decay, **self.opt_kwargs)


class GoodSSO(Adapter):
    """Exact tangent spectral LMO on M_S: Φ = msign(M̂ + λΘ) with ⟨Θ, Φ⟩ = 0 (MATH §6.4, §9.4)."""

    name = "zoo: SSO-style direction"
    profile = SSO_PROFILE
    capabilities = frozenset({"direction"})
    max_expansions = 60

    def direction(self, W: torch.Tensor, G: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        U, s, Vh = torch.linalg.svd(W, full_matrices=False)
        T = torch.outer(U[:, 0], Vh[0])
        Mh = G / torch.linalg.norm(G)
        h = lambda lam: float((T * msign64(Mh + lam * T)).sum())  # noqa: E731
        lo, hi, step = 0.0, 0.0, 1e-3
        h0 = h(0.0)
        sgn = -1.0 if h0 > 0 else 1.0
        found = h0 == 0.0
        for _ in range(self.max_expansions):
            if found:
                break
            hi = sgn * step
            if h(hi) * h0 <= 0:
                found = True
                break
            lo, step = hi, step * 2
        lam = 0.0
        if found and h0 != 0.0:
            a, b = lo, hi
            for _ in range(80):
                mid = 0.5 * (a + b)
                if h(mid) * h0 > 0:
                    a = mid
                else:
                    b = mid
            lam = 0.5 * (a + b)
        return msign64(Mh + lam * T), {}


# ------------------------------------------------------------------------------ defective adapters
class MissingTangentProjection(GoodMACRO):
    def project_tangent(self, manifold, W, G):
        return G.clone() if manifold == "frobenius" else super().project_tangent(manifold, W, G)


class ReprojectionDropped(GoodMACRO):
    def direction(self, W, G, state):
        b = MACRO_PROFILE.momentum
        M = (torch.zeros_like(G) if state is None else state["m"]) * b + (1 - b) * G
        return msign64(self.project_tangent("frobenius", W, M)), {"m": M}


class RetractionSkipped(GoodMACRO):
    def retract(self, manifold, W, A):
        return W + A if manifold == "frobenius" else super().retract(manifold, W, A)


class RetractionWrongRadius(GoodMACRO):
    def retract(self, manifold, W, A):
        Y = super().retract(manifold, W, A)
        return Y * (1.0 / self._radius(manifold)) if manifold == "frobenius" else Y


class ObliqueAxisSwapped(GoodMACRO):
    def project_tangent(self, manifold, W, G):
        if manifold == "oblique_rows":
            return G - W * ((G * W).sum(-2, keepdim=True) / (W * W).sum(-2, keepdim=True))
        return super().project_tangent(manifold, W, G)

    def retract(self, manifold, W, A):
        if manifold == "oblique_rows":
            Y = W + A
            return Y / torch.linalg.vector_norm(Y, dim=-2, keepdim=True)
        return super().retract(manifold, W, A)


class WrongNSCoefficient(GoodNS):
    def msign(self, G):
        return ns(G, coeffs=(3.4445, -4.7750, 2.0))


class EpsFloor(GoodNS):
    def msign(self, G):
        return ns(G, eps=1e-3, eps_form="+eps")


class MomentumNormalisedInPlace(GoodMuon):
    opt_kwargs = {"normalise_buffer": True}


class GradientMutated(GoodMuon):
    opt_kwargs = {"write_grad": True}


class BottomSingularPair(GoodMACRO):
    def top_pair(self, W):
        U, s, Vh = torch.linalg.svd(W, full_matrices=False)
        return U[:, -1], Vh[-1]


class WeightDecayShrinksRadius(GoodMACRO):
    def optimizer(self, params, lr, momentum, weight_decay=0.0):
        return MacroOpt(params, lr, momentum, self._radius("frobenius"), wd_on_sphere=0.1)


class SignError(GoodMuon):
    opt_kwargs = {"sign": -1.0}


class NaNHidden(GoodNS):
    def msign(self, G):
        return torch.nan_to_num(ns(G), nan=0.0, posinf=0.0, neginf=0.0)


class Bf16InsteadOfFp32(GoodNS):
    def msign(self, G):
        return ns(G, dtype=torch.bfloat16)


class WrongShapeScaling(GoodMuon):
    opt_kwargs = {"scale_rule": "moonlight"}


class SilentLambdaZero(GoodSSO):
    max_expansions = 3


class InputMutatedInPlace(GoodNS):
    def msign(self, G):
        out = ns(G)
        G.mul_(2.0)
        return out


#: defective adapter → (the check meant to catch it, the correct adapter it derives from)
DEFECTS: dict[type, tuple[str, type]] = {
    MissingTangentProjection: ("geometry.projection.tangent", GoodMACRO),
    ReprojectionDropped: ("optimizer.direction.tangency", GoodMACRO),
    RetractionSkipped: ("geometry.retraction.feasibility", GoodMACRO),
    RetractionWrongRadius: ("geometry.retraction.feasibility", GoodMACRO),
    ObliqueAxisSwapped: ("geometry.projection.tangent", GoodMACRO),
    WrongNSCoefficient: ("spec.orthogonaliser.output", GoodNS),
    EpsFloor: ("safety.scale_invariance", GoodNS),
    MomentumNormalisedInPlace: ("safety.state_integrity", GoodMuon),
    GradientMutated: ("safety.no_mutation.gradient", GoodMuon),
    BottomSingularPair: ("geometry.projection.tangent", GoodMACRO),
    WeightDecayShrinksRadius: ("optimizer.run.feasibility", GoodMACRO),
    SignError: ("optimizer.step.descent", GoodMuon),
    NaNHidden: ("safety.nan_propagation", GoodNS),
    Bf16InsteadOfFp32: ("spec.orthogonaliser.output", GoodNS),
    WrongShapeScaling: ("optimizer.step.one", GoodMuon),
    SilentLambdaZero: ("optimizer.direction.tangency", GoodSSO),
    InputMutatedInPlace: ("safety.no_mutation.msign", GoodNS),
}

CORRECT: tuple[type, ...] = (GoodNS, GoodMACRO, GoodMuon, GoodSSO)


class OutputAliasesInput(GoodNS):
    """Returns the input tensor itself, rescaled in place (zero-step routine that forgot to copy)."""

    def msign(self, G):
        O = ns(G)
        return G.copy_(O)


class StateAliasesGradient(GoodMuon):
    """Keeps p.grad itself as the momentum buffer after the first step."""

    def optimizer(self, params, lr, momentum, weight_decay=0.0):
        opt = MuonOpt(params, lr, momentum, weight_decay)
        step = opt.step

        def aliased_step() -> None:
            step()
            for g in opt.param_groups:
                for p in g["params"]:
                    buf = opt.state[p]["momentum_buffer"]
                    p.grad.copy_(buf)
                    opt.state[p]["momentum_buffer"] = p.grad

        opt.step = aliased_step  # type: ignore[method-assign]
        return opt


DEFECTS[OutputAliasesInput] = ("safety.no_aliasing.msign", GoodNS)
DEFECTS[StateAliasesGradient] = ("safety.no_aliasing.state", GoodMuon)


# ================================================================================ step / run zoo (issue 12)
# Correct optimizers in fp32 and bf16 Newton–Schulz, and realistic broken copies: each defect is a
# small change to a working Muon, MACRO or SSO optimizer, named after what a user would get wrong.
def _muon_profile(name: str, ns_dtype: str, dtypes: tuple[str, ...]) -> Profile:
    return Profile(
        name=name, description=f"Muon: KJ×5 NS in {ns_dtype}, EMA + EMA-Nesterov, √max(1, A/B), raw-lr WD",
        schedule="keller_jordan", steps=5, eps_form="clamp", eps=1e-7, compute_dtype=ns_dtype,
        return_dtype="input", rule="muon", momentum_form="ema", momentum=0.95, nesterov_form="ema",
        shape_scale="kj", weight_decay_coupling="decoupled_raw_lr", weight_decay=0.1, lr=0.02,
        param_dtypes=dtypes, mutation=("momentum_buffer",), nan_policy="propagate", scale_range=(1e-6, 1e12),
        tensor_params="flatten")


MUON32_PROFILE = _muon_profile("zoo_muon_fp32", "float32", ("float32", "float64"))
MUON16_PROFILE = _muon_profile("zoo_muon_bf16", "bfloat16", ("float32", "bfloat16"))


class Muon2(torch.optim.Optimizer):
    """A plain per-parameter Muon (torch.optim.Muon's arithmetic) with one optional bug."""

    def __init__(self, params: Any, lr: float, momentum: float, weight_decay: float = 0.0, *,
                 ns_dtype: torch.dtype = torch.float32, bug: str = "", stochastic: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self.ns_dtype, self.bug, self.stochastic = ns_dtype, bug, stochastic
        self.release_grad = False
        self._outside: dict[int, torch.Tensor] = {}
        # "hyper_cached_at_init": the groups' hyperparameters read once here; a group added later
        # falls back to the constructor's defaults
        self._cached = [(g["lr"], g["momentum"], g["weight_decay"]) for g in self.param_groups]

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        if self.bug == "momentum_outside_state":  # kept on the optimizer object: lost by state_dict()
            return self._outside.setdefault(id(p), torch.zeros_like(p))
        if self.bug == "state_keyed_by_shape":  # one buffer per shape: parameters of one shape share it
            return self.state.setdefault(tuple(p.shape), {}).setdefault("momentum_buffer", torch.zeros_like(p))
        st = self.state[p]
        if "momentum_buffer" not in st:
            st["momentum_buffer"] = torch.zeros_like(p)
        return st["momentum_buffer"]

    def _orth(self, U: torch.Tensor) -> torch.Tensor:
        A, B = U.shape
        if self.bug == "no_eps":  # normalises by ‖U‖ with no floor: 0/0 for a zero gradient
            X = U.to(self.ns_dtype)
            X = X / torch.linalg.norm(X)
            return ns(X * 1.0, dtype=self.ns_dtype, eps=0.0)
        if self.bug == "row_vector_path" and min(A, B) == 1:  # "a vector's msign is U/‖U‖"
            return U / torch.linalg.norm(U).clamp_min(1e-7)
        if self.bug == "big_matrix_fast_path" and max(A, B) >= 64:  # 3 NS steps "are enough" for big ones
            return ns(U, steps=3, dtype=self.ns_dtype)
        if self.bug == "eps_in_sqrt":  # U/√(‖U‖² + 1e-7) in place of the declared max(‖U‖, 1e-7)
            return ns(U, dtype=self.ns_dtype, eps_form="sqrt")
        return ns_stochastic(U) if self.stochastic else ns(U, dtype=self.ns_dtype)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None and self.bug == "closure_no_grad":  # under step's no_grad: backward() raises
            loss = closure()
        elif closure is not None and self.bug != "closure_after_update":
            with torch.enable_grad():
                loss = closure()
        self._update()
        if closure is not None and self.bug == "closure_after_update":  # the update used the stale p.grad
            with torch.enable_grad():
                loss = closure()
        return None if self.bug == "closure_loss_dropped" else loss

    def _update(self) -> None:
        for i, g in enumerate(self.param_groups):
            lr = self.defaults["lr"] if self.bug == "ignore_group_lr" else g["lr"]
            b = self.defaults["momentum"] if self.bug == "ignore_group_momentum" else g["momentum"]
            wd = g["weight_decay"]
            if self.bug == "hyper_cached_at_init":
                d = self.defaults
                lr, b, wd = self._cached[i] if i < len(self._cached) else (d["lr"], d["momentum"], d["weight_decay"])
            if self.bug == "lr_floor":
                lr = max(lr, 1e-3)
            for p in g["params"]:
                if p.grad is None and self.bug != "grad_none_crash":
                    continue
                G = p.grad.detach()
                if self.bug == "nan_to_num":
                    G = torch.nan_to_num(G)
                if self.bug == "wd_as_l2":
                    G = G + wd * p
                buf = self._buffer(p)
                stale = G.lerp(buf, b)  # "nesterov_stale_buffer": blended with the buffer before its update
                buf.lerp_(G, 1 - b)
                U = buf.clone() if self.bug == "no_nesterov" else G.lerp(buf, b)
                if self.bug == "nesterov_stale_buffer":
                    U = stale
                # a 3-D/4-D parameter is stepped as its (shape[0], −1) view (tensor_params='flatten')
                U2 = U.reshape(U.shape[0], -1)
                O = self._orth(U2).reshape(U.shape)
                A, B = U2.shape
                if self.bug == "kernel_axes_scale":  # KJ-style: the scale from the last two axes of a conv filter
                    A, B = p.shape[-2:]
                s = max(1.0, A / B) ** 0.5
                if self.bug == "inverted_scale":
                    s = max(1.0, B / A) ** 0.5
                if self.bug == "ten_percent":  # "match RMS" constant off by 10 %
                    s *= 1.1
                if self.bug == "sign_flip_1_64":  # a strided in-place op on a flattened view
                    O = O.clone()
                    O.view(-1)[::64].neg_()
                if self.bug != "wd_after_update" and self.bug != "wd_as_l2":
                    p.mul_(1 - lr * wd)
                p.add_(O.to(p.dtype), alpha=-lr * s)
                if self.bug == "wd_after_update":
                    p.mul_(1 - lr * wd)
                if self.release_grad:  # frees the gradient after use (not a defect)
                    p.grad = None


class GoodMuon32(Adapter):
    name = "zoo: Muon, fp32 Newton–Schulz"
    profile = MUON32_PROFILE
    capabilities = frozenset({"msign", "optimizer"})
    bug = ""
    ns_dtype = torch.float32

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns(G, dtype=self.ns_dtype)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return Muon2(params, lr, momentum, weight_decay, ns_dtype=self.ns_dtype, bug=self.bug)

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        return opt.state[p].get("momentum_buffer")


class GoodMuon16(GoodMuon32):
    name = "zoo: Muon, bf16 Newton–Schulz"
    profile = MUON16_PROFILE
    ns_dtype = torch.bfloat16


class GradReleasingMuon16(GoodMuon16):
    """A correct Muon that sets p.grad = None after each step (as zero_grad(set_to_none) would)."""

    name = "zoo: Muon (bf16 NS) releasing p.grad after the step"

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        opt = super().optimizer(params, lr, momentum, weight_decay)
        opt.release_grad = True
        return opt


def _muon_defect(bug: str) -> tuple[type, type]:
    """(fp32 and bf16 Newton–Schulz) adapters carrying ``bug``."""
    return (type(f"{bug}_fp32", (GoodMuon32,), {"bug": bug}),
            type(f"{bug}_bf16", (GoodMuon16,), {"bug": bug}))


#: Muon bug → the check meant to catch it (both precisions must fail it)
MUON_BUGS: dict[str, str] = {
    "ten_percent": "optimizer.rule.step",
    "sign_flip_1_64": "optimizer.rule.step",
    "inverted_scale": "optimizer.rule.shape_scale_ratio",
    "wd_after_update": "optimizer.rule.weight_decay",
    "wd_as_l2": "optimizer.rule.weight_decay",
    "no_nesterov": "optimizer.rule.trajectory",
    "ignore_group_lr": "optimizer.rule.trajectory",
    "ignore_group_momentum": "optimizer.rule.trajectory",
    "state_keyed_by_shape": "optimizer.rule.step",
    "row_vector_path": "optimizer.rule.step",
    "big_matrix_fast_path": "optimizer.rule.step",
    "momentum_outside_state": "optimizer.run.resume",
    "no_eps": "optimizer.run.zero_gradient",
    "nan_to_num": "safety.nonfinite_gradient",
    "lr_floor": "optimizer.run.lr_zero",
    "grad_none_crash": "optimizer.run.grad_none",
    "closure_no_grad": "optimizer.run.closure",
    "closure_after_update": "optimizer.run.closure",
    "closure_loss_dropped": "optimizer.run.closure",
    "hyper_cached_at_init": "optimizer.run.add_param_group",
    "eps_in_sqrt": "optimizer.rule.gradient_scale",
    "kernel_axes_scale": "optimizer.rule.tensor_params",
}
STEP_DEFECTS: dict[type, tuple[str, type]] = {}
for _bug, _check in MUON_BUGS.items():
    _a32, _a16 = _muon_defect(_bug)
    STEP_DEFECTS[_a32] = (_check, GoodMuon32)
    STEP_DEFECTS[_a16] = (_check, GoodMuon16)


# ---------------------------------------------------------------- MACRO with bf16 NS and SSO
MACRO16_PROFILE = MACRO_PROFILE.with_options(
    name="zoo_macro_bf16", description="MACRO variant A on the Frobenius sphere R = 1.5, KJ×5 NS in bf16, fp32 params",
    schedule="keller_jordan", steps=5, eps_form="clamp", eps=1e-7, compute_dtype="bfloat16",
    param_dtypes=("float32",), nan_policy="propagate", scale_range=(1e-6, 1e12))


def ema_params(opt: torch.optim.Optimizer) -> Any:
    """(group, parameter, momentum) for every parameter with a gradient, after the EMA update
    M ← βM + (1 − β)G of its ``momentum_buffer``."""
    for g in opt.param_groups:
        for p in g["params"]:
            if p.grad is None:
                continue
            M = opt.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
            M.lerp_(p.grad, 1 - g["momentum"])
            yield g, p, M


class MacroNS(torch.optim.Optimizer):
    """MACRO variant A on the Frobenius sphere with a bf16 Newton–Schulz; optional bug."""

    def __init__(self, params: Any, lr: float, momentum: float, radius: float, bug: str = "",
                 ns_dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.radius, self.bug, self.ns_dtype = radius, bug, ns_dtype
        for g in self.param_groups:
            for p in g["params"]:
                self._place(p)

    @torch.no_grad()
    def _place(self, p: torch.Tensor) -> None:
        """Construction (and the first step of a parameter added later) moves W onto the sphere of
        the declared radius (or, buggy: keeps its own)."""
        st = self.state[p]
        st["radius"] = float(torch.linalg.norm(p.detach())) if self.bug == "radius_from_init" else self.radius
        p.mul_(st["radius"] / torch.linalg.norm(p))

    @torch.no_grad()
    def step(self) -> None:
        for g, p, M in ema_params(self):
            st = self.state[p]
            if "radius" not in st:
                self._place(p)
            W = p.detach()
            P = lambda Z: Z - (Z * W).sum() / (W * W).sum() * W  # noqa: E731
            # "row_prenorm": each row of the momentum scaled to unit norm first (a NorMuon-style habit)
            X = P(M / torch.linalg.vector_norm(M, dim=1, keepdim=True).clamp_min(1e-12) if self.bug == "row_prenorm" else M)
            D = ns(X, dtype=self.ns_dtype) if self.bug == "reprojection_dropped" else P(ns(X, dtype=self.ns_dtype))
            Y = W - g["lr"] * D
            if self.bug != "retraction_skipped":
                Y = st["radius"] * Y / torch.linalg.norm(Y)
            p.copy_(Y)


class GoodMacro16(Adapter):
    name = "zoo: MACRO, bf16 Newton–Schulz"
    profile = MACRO16_PROFILE
    capabilities = frozenset({"msign", "optimizer"})
    bug = ""

    ns_dtype = torch.bfloat16

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns(G, dtype=self.ns_dtype)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroNS(params, lr, momentum, 1.5, bug=self.bug, ns_dtype=self.ns_dtype)


class GoodMacro32(GoodMacro16):
    name = "zoo: MACRO, fp32 Newton–Schulz"
    profile = MACRO16_PROFILE.with_options(name="zoo_macro_fp32", compute_dtype="float32",
                                           description="MACRO variant A on the Frobenius sphere R = 1.5, KJ×5 NS in fp32, fp32 params")
    ns_dtype = torch.float32


SSO_OPT_PROFILE = Profile(
    name="zoo_sso_opt", description="float64 SSO: exact msign, exact σ₁, λ by bisection, hard retraction to R = 1",
    schedule="exact", compute_dtype="float64", return_dtype="input", param_dtypes=("float64",),
    rule="sso", momentum_form="ema", momentum=0.9, nesterov_form="none", shape_scale="moonlight",
    manifolds=(ManifoldDecl("spectral", "spectral_sphere", radius=1.0, retraction="projection"),),
    direction_tangent=True, nan_policy="propagate")


class SSOOpt(torch.optim.Optimizer):
    """float64 SSO (retract-then-step, MATH §9.4) with an optional bug."""

    def __init__(self, params: Any, lr: float, momentum: float, bug: str = "") -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.bug, self.solver = bug, GoodSSO()
        for g in self.param_groups:
            for p in g["params"]:
                with torch.no_grad():
                    p.mul_(1.0 / torch.linalg.matrix_norm(p, ord=2))

    @torch.no_grad()
    def step(self) -> None:
        for g, p, M in ema_params(self):
            W = p.detach()
            if self.bug != "never_retracts":
                W = W / torch.linalg.matrix_norm(W, ord=2)
            Phi = torch.zeros_like(W) if bool(torch.all(M == 0)) else self.solver.direction(W, M, None)[0]
            s = 0.2 * max(W.shape) ** 0.5
            p.copy_(W - g["lr"] * s * Phi)


class GoodSSOOpt(Adapter):
    name = "zoo: float64 SSO optimizer"
    profile = SSO_OPT_PROFILE
    capabilities = frozenset({"optimizer"})
    bug = ""

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return SSOOpt(params, lr, momentum, bug=self.bug)


class RadiusFromInit(GoodMacro16):
    bug = "radius_from_init"


class MacroRetractionSkipped(GoodMacro16):
    bug = "retraction_skipped"


class MacroReprojectionDropped(GoodMacro16):
    bug = "reprojection_dropped"


class MacroRowPrenorm(GoodMacro16):
    bug = "row_prenorm"


class MacroRowPrenorm32(GoodMacro32):
    bug = "row_prenorm"


class SSONeverRetracts(GoodSSOOpt):
    bug = "never_retracts"


STEP_DEFECTS.update({
    RadiusFromInit: ("optimizer.run.off_manifold_start", GoodMacro16),
    MacroRetractionSkipped: ("optimizer.run.feasibility", GoodMacro16),
    MacroReprojectionDropped: ("optimizer.rule.step", GoodMacro16),
    MacroRowPrenorm: ("optimizer.rule.transpose", GoodMacro16),
    MacroRowPrenorm32: ("optimizer.rule.transpose", GoodMacro32),
    SSONeverRetracts: ("optimizer.run.feasibility", GoodSSOOpt),
})

#: correct optimizers of the step zoo (no false failures over 5 seeds, fp32 and bf16)
STEP_CORRECT: tuple[type, ...] = (GoodMuon32, GoodMuon16, GoodMacro32, GoodMacro16, GoodSSOOpt)


# ---------------------------------------------------------------- exact polar factor (exact_form='polar')
POLAR_PROFILE = Profile(
    name="zoo_polar", description="fp32 polar factor U Vᵀ of a full SVD (HeavyBall 'svd' mode, done right)",
    schedule="exact", exact_form="polar", compute_dtype="float32", return_dtype="input", transpose_rule="none",
    ndim_handling="batched", param_dtypes=("float32",), nan_policy="propagate", zero_policy="identity")


class GoodPolar(Adapter):
    """The polar factor of every matrix from a full SVD in fp32: on rank-deficient input the null
    space is completed to a full isometry (a legitimate difference from msign, MATH §2.3)."""

    name = "zoo: fp32 SVD polar factor"
    profile = POLAR_PROFILE
    capabilities = frozenset({"msign"})

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        U, _, Vh = torch.linalg.svd(G.to(torch.float32), full_matrices=False)
        return (U @ Vh).to(G.dtype)


class PolarNSForNonSquare(GoodPolar):
    """HeavyBall 3.2.1's substitution: the requested SVD for square matrices only, fp32 Newton–Schulz
    (You Jiacheng's 5 steps) silently for every non-square one."""

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        if G.shape[-2] == G.shape[-1]:
            return super().msign(G)
        return ns(G, coeffs=(3.4445, -4.7750, 2.0315))


DEFECTS[PolarNSForNonSquare] = ("spec.orthogonaliser.output", GoodPolar)


# ---------------------------------------------------------------- stochastic rounding (seeded replay)
MUON_SR_PROFILE = MUON16_PROFILE.with_options(
    name="zoo_muon_sr", description="Muon: KJ×5 NS in bf16 after a stochastic rounding (torch RNG)",
    cast_point="stochastic_rounding", param_dtypes=("float32",))


class GoodMuonSR(GoodMuon16):
    """A correct Muon whose orthogonaliser rounds stochastically to bf16 (torch's global RNG)."""

    name = "zoo: Muon, stochastic-rounding bf16 Newton–Schulz"
    profile = MUON_SR_PROFILE

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns_stochastic(G)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return Muon2(params, lr, momentum, weight_decay, bug=self.bug, stochastic=True)


class TenPercentSR(GoodMuonSR):
    bug = "ten_percent"


class SignFlipSR(GoodMuonSR):
    bug = "sign_flip_1_64"


STEP_DEFECTS.update({TenPercentSR: ("optimizer.rule.step", GoodMuonSR),
                     SignFlipSR: ("optimizer.rule.step", GoodMuonSR)})
STEP_CORRECT += (GoodMuonSR,)


# ---------------------------------------------------------------- bf16 Muon without the msign capability
class Muon16NoMsign(GoodMuon16):
    """A correct bf16 Muon whose adapter does not expose its orthogonaliser (no replay possible)."""

    name = "zoo: Muon, bf16 NS, no msign capability"
    capabilities = frozenset({"optimizer"})


#: momentum/Nesterov bugs caught without the orthogonaliser's replay (optimizer.rule.momentum_self)
for _bug in ("no_nesterov", "ignore_group_momentum", "nesterov_stale_buffer"):
    STEP_DEFECTS[type(f"{_bug}_bf16_no_msign", (Muon16NoMsign,), {"bug": _bug})] = (
        "optimizer.rule.momentum_self", Muon16NoMsign)
STEP_CORRECT += (Muon16NoMsign,)
