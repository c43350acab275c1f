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
       eps_form: str = "clamp") -> torch.Tensor:
    """Out-of-place quintic NS, batched, per-matrix normalisation, transpose if tall."""
    X = G.to(dtype)
    tall = X.shape[-2] > X.shape[-1]
    if tall:
        X = X.mT
    n = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    X = X / (n.clamp(min=eps) if eps_form == "clamp" else n + eps)
    a, b, c = coeffs
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    if tall:
        X = X.mT
    return X.to(G.dtype)


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
            for _ in range(200):
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
    WeightDecayShrinksRadius: ("optimizer.step.feasibility", GoodMACRO),
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
