"""Planted defects from the blind audit of the harness (/tmp/audit, audit_findings items 2, 3, 5):
realistic bugs the harness missed, each a small change to a working optimizer, in fp32 and bf16
Newton–Schulz. Kept apart from ``conformance_zoo`` so that the two zoos can grow independently.
"""

from __future__ import annotations

import dataclasses

from typing import Any

import torch

import conformance_zoo as Z
from manifold_oracle.conformance.adapters import Adapter
from manifold_oracle.conformance.adapters.gpu_impl import GpuImplAdapter
from manifold_oracle.conformance.profiles import ManifoldDecl, get_profile


# ---------------------------------------------------------------- Muon batching a group by numel
class NumelBatchedMuon(Z.Muon2):
    """Muon whose orthogonaliser views every update as the first shape seen with its numel in the
    step (a stacking cache keyed by numel, as a batched Newton–Schulz over "same-size" matrices
    does): a (12, 8) and an (8, 12) parameter of one group are orthogonalised in one shape."""

    @torch.no_grad()
    def step(self) -> None:
        self._first: dict[int, torch.Size] = {}
        super().step()

    def _orth(self, U: torch.Tensor) -> torch.Tensor:
        fs = self._first.setdefault(U.numel(), U.shape)
        return super()._orth(U.reshape(fs)).reshape(U.shape)


class BatchByNumel32(Z.GoodMuon32):
    name = "audit zoo: Muon (fp32 NS) batching a group by numel"

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return NumelBatchedMuon(params, lr, momentum, weight_decay, ns_dtype=self.ns_dtype)


class BatchByNumel16(BatchByNumel32):
    name = "audit zoo: Muon (bf16 NS) batching a group by numel"
    profile = Z.MUON16_PROFILE
    ns_dtype = torch.bfloat16


# ---------------------------------------------------------------- Muon with 1-D parameters (biases) in its groups
class VectorMuon(Z.Muon2):
    """Muon whose 1-D parameters take the rule's momentum and EMA-Nesterov update U without
    orthogonalisation, W ← W − lr·U (declared vector_params='sgd'). Bug 'ns_1d': the bias is sent
    through Newton–Schulz as a 1×n matrix (U/‖U‖ up to the iteration's band), the audit's defect."""

    def _vector_step(self, g: dict, p: torch.Tensor) -> None:
        buf = self._buffer(p)
        buf.lerp_(p.grad, 1 - g["momentum"])
        U = p.grad.lerp(buf, g["momentum"])
        if self.bug == "ns_1d":
            U = Z.ns(U[None], dtype=self.ns_dtype)[0]
        p.mul_(1 - g["lr"] * g["weight_decay"])
        p.add_(U, alpha=-g["lr"])

    @torch.no_grad()
    def step(self) -> None:
        held = []
        for g in self.param_groups:
            for p in g["params"]:
                if p.ndim != 1 or p.grad is None:
                    continue
                self._vector_step(g, p)
                held.append((p, p.grad))
                p.grad = None  # the matrix rule below skips it
        super().step()
        for p, grad in held:
            p.grad = grad


class GoodVectorMuon32(Z.GoodMuon32):
    name = "audit zoo: Muon (fp32 NS), 1-D parameters by momentum SGD"
    profile = Z.MUON32_PROFILE.with_options(name="audit_zoo_muon_sgd_fp32", vector_params="sgd")

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return VectorMuon(params, lr, momentum, weight_decay, ns_dtype=self.ns_dtype, bug=self.bug)


class GoodVectorMuon16(GoodVectorMuon32):
    name = "audit zoo: Muon (bf16 NS), 1-D parameters by momentum SGD"
    profile = Z.MUON16_PROFILE.with_options(name="audit_zoo_muon_sgd_bf16", vector_params="sgd")
    ns_dtype = torch.bfloat16


class VectorThroughNS32(GoodVectorMuon32):
    bug = "ns_1d"


class VectorThroughNS16(GoodVectorMuon16):
    bug = "ns_1d"


# ---------------------------------------------------------------- Muon with an Adam rule for 1-D parameters
class AdamVectorMuon(VectorMuon):
    """Muon whose 1-D parameters take an Adam step (β = (0.9, 0.999), ε = 1e-8, torch form: ε added
    to the bias-corrected √v̂; declared vector_params='adamw', adam_eps=1e-8). Bug 'eps_inside':
    Kingma & Ba's "efficient" form, ε added to √v before the bias correction (first step
    −a·G/(|G| + ε/√(1 − β₂)), ε effectively 32× the declared one)."""

    def _vector_step(self, g: dict, p: torch.Tensor) -> None:
        b1, b2, eps = 0.9, 0.999, 1e-8
        st = self.state[p]
        if "exp_avg" not in st:
            st["exp_avg"], st["exp_avg_sq"], st["t"] = torch.zeros_like(p), torch.zeros_like(p), 0
        st["t"] += 1
        m, v, t = st["exp_avg"], st["exp_avg_sq"], st["t"]
        m.lerp_(p.grad, 1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        if self.bug == "eps_inside":
            denom = v.sqrt().add_(eps)
            step = g["lr"] * (1 - b2**t) ** 0.5 / (1 - b1**t)
        elif self.bug == "no_bias_correction":  # first step ×(1 − β₁)/√(1 − β₂) ≈ 3.2 on every entry
            denom = v.sqrt().add_(eps)
            step = g["lr"]
        else:
            denom = (v.sqrt() / (1 - b2**t) ** 0.5).add_(eps)
            step = g["lr"] / (1 - b1**t)
        p.addcdiv_(m, denom, value=-step)


class GoodVectorAdam32(Z.GoodMuon32):
    name = "audit zoo: Muon (fp32 NS), 1-D parameters by Adam (ε = 1e-8 on √v̂)"
    profile = Z.MUON32_PROFILE.with_options(name="audit_zoo_muon_adam_fp32", vector_params="adamw", adam_eps=1e-8,
                                            adam_lr="lr")

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return AdamVectorMuon(params, lr, momentum, weight_decay, ns_dtype=self.ns_dtype, bug=self.bug)


class GoodVectorAdam16(GoodVectorAdam32):
    name = "audit zoo: Muon (bf16 NS), 1-D parameters by Adam (ε = 1e-8 on √v̂)"
    profile = Z.MUON16_PROFILE.with_options(name="audit_zoo_muon_adam_bf16", vector_params="adamw", adam_eps=1e-8,
                                            adam_lr="lr")
    ns_dtype = torch.bfloat16


class VectorAdamEpsInside32(GoodVectorAdam32):
    bug = "eps_inside"


class VectorAdamEpsInside16(GoodVectorAdam16):
    bug = "eps_inside"


class VectorAdamNoBiasCorrection32(GoodVectorAdam32):
    """Adam without the bias correction (audit 4): every entry's first step 3.2× too large, the
    same factor on all of them (caught through the declared adam_lr, not the spread)."""

    bug = "no_bias_correction"


class VectorAdamNoBiasCorrection16(GoodVectorAdam16):
    bug = "no_bias_correction"


# ---------------------------------------------------------------- MACRO retracting by clipping to the ball
class MacroBall(torch.optim.Optimizer):
    """MACRO variant A on the Frobenius sphere of radius R (EMA momentum, D = P_W(NS(P_W(M))),
    W ← R_W(−lr·D)); the weights are taken as given (no move onto the sphere at construction).
    Correct: the retraction rescales, R·Y/‖Y‖_F. Bug 'clip': W / max(1, ‖Y‖_F/R), which agrees with
    rescaling on and outside the sphere but leaves a point inside the ball where it is."""

    def __init__(self, params: Any, lr: float, momentum: float, radius: float, *,
                 ns_dtype: torch.dtype, bug: str = "") -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.radius, self.ns_dtype, self.bug = radius, ns_dtype, bug

    @torch.no_grad()
    def step(self) -> None:
        for g, p, M in Z.ema_params(self):
            W = p.detach()
            P = lambda Z_: Z_ - (Z_ * W).sum() / (W * W).sum() * W  # noqa: E731
            D = P(Z.ns(P(M), dtype=self.ns_dtype))
            Y = W - g["lr"] * D
            n = torch.linalg.norm(Y)
            p.copy_(Y / torch.clamp(n / self.radius, min=1.0) if self.bug == "clip" else self.radius * Y / n)


MACRO32_PROFILE = Z.MACRO16_PROFILE.with_options(
    name="audit_zoo_macro_fp32", compute_dtype="float32",
    description="MACRO variant A on the Frobenius sphere R = 1.5, KJ×5 NS in fp32, fp32 params")


class GoodMacroBall32(Adapter):
    name = "audit zoo: MACRO (fp32 NS), weights as given"
    profile = MACRO32_PROFILE
    capabilities = frozenset({"msign", "optimizer"})
    ns_dtype = torch.float32
    bug = ""

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return Z.ns(G, dtype=self.ns_dtype)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroBall(params, lr, momentum, 1.5, ns_dtype=self.ns_dtype, bug=self.bug)


class GoodMacroBall16(GoodMacroBall32):
    name = "audit zoo: MACRO (bf16 NS), weights as given"
    profile = Z.MACRO16_PROFILE
    ns_dtype = torch.bfloat16


class RetractClip32(GoodMacroBall32):
    bug = "clip"


class RetractClip16(GoodMacroBall16):
    bug = "clip"


class RetractClipGeometry(Z.GoodMACRO):
    """The geometry capability with the same clipping retraction on the Frobenius sphere (float64:
    the geometry has no Newton–Schulz precision)."""

    def retract(self, manifold: str, W: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        if manifold != "frobenius":
            return super().retract(manifold, W, A)
        Y = W + A
        return Y / torch.clamp(torch.linalg.norm(Y) / self._radius(manifold), min=1.0)


# ---------------------------------------------------------------- audit 2: normalise in fp32, then cast to bf16
def ns_normalise_then_cast(G: torch.Tensor) -> torch.Tensor:
    """KJ×5 NS in bf16 whose input is normalised in fp32, G/max(‖G‖_F, 1e-7), and then rounded to
    bf16 (to nearest): pytorch_optimizer's SSO order, declared ``cast_point="normalise_then_cast"``."""
    return Z.ns(G, dtype=torch.bfloat16, normalise_first=True)


class NormaliseThenCastMuon(Z.Muon2):
    """Muon whose orthogonaliser is :func:`ns_normalise_then_cast`."""

    def _orth(self, U: torch.Tensor) -> torch.Tensor:
        return ns_normalise_then_cast(U)


MUON_NTC16_PROFILE = Z.MUON16_PROFILE.with_options(
    name="audit_zoo_muon_bf16_ntc", cast_point="normalise_then_cast",
    description="Muon: G/max(‖G‖_F, 1e-7) in fp32, cast to bf16, KJ×5 NS in bf16")


class GoodMuonNormaliseThenCast16(Z.GoodMuon16):
    """A correct Muon that normalises before the bf16 cast and declares it (audit 2: the declared
    map renormalised the cast input, so below ε it expected O(1) where the clamp gives ≈ 0)."""

    name = "audit zoo: Muon (bf16 NS), normalised in fp32 then cast"
    profile = MUON_NTC16_PROFILE

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return ns_normalise_then_cast(G)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return NormaliseThenCastMuon(params, lr, momentum, weight_decay, ns_dtype=torch.bfloat16)


class EpsPlusMuon32(Z.GoodMuon32):
    """Declares the clamp max(‖G‖_F, ε) and computes ‖G‖_F + ε (audit 2 defect ``eps_plus``): the
    same map at ordinary scales, 31 % of the update at ‖G‖_F ≈ ε."""

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return Z.ns(G, dtype=self.ns_dtype, eps_form="+eps")


class EpsPlusMuon16(EpsPlusMuon32):
    profile = Z.MUON16_PROFILE
    ns_dtype = torch.bfloat16


TYPO_KJ = (3.4445, -4.7750, 2.0351)  # Keller Jordan's c = 2.0315 with two digits swapped


class CoefficientTypoMuon32(Z.GoodMuon32):
    """Audit 2 defect coeff_typo: the declared Keller Jordan schedule with c typed 2.0351 (about 1 %
    of the output)."""

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return Z.ns(G, coeffs=TYPO_KJ, dtype=self.ns_dtype)


class CoefficientTypoMuon16(CoefficientTypoMuon32):
    profile = Z.MUON16_PROFILE
    ns_dtype = torch.bfloat16


#: planted defect → (the check meant to catch it, the correct optimizer it derives from)
AUDIT_DEFECTS: dict[type, tuple[str, type]] = {
    BatchByNumel32: ("optimizer.rule.step", Z.GoodMuon32),
    BatchByNumel16: ("optimizer.rule.step", Z.GoodMuon16),
    RetractClip32: ("optimizer.run.off_manifold_start", GoodMacroBall32),
    RetractClip16: ("optimizer.run.off_manifold_start", GoodMacroBall16),
    VectorThroughNS32: ("optimizer.run.vector_params", GoodVectorMuon32),
    VectorThroughNS16: ("optimizer.run.vector_params", GoodVectorMuon16),
    VectorAdamEpsInside32: ("optimizer.run.vector_params", GoodVectorAdam32),
    VectorAdamEpsInside16: ("optimizer.run.vector_params", GoodVectorAdam16),
}
#: planted defects with no Newton–Schulz precision (geometry capabilities, float64)
AUDIT_GEOMETRY_DEFECTS: dict[type, tuple[str, type]] = {
    RetractClipGeometry: ("geometry.retraction.feasibility", Z.GoodMACRO),
}
#: correct optimizers added by this zoo (no false failure over 5 seeds)
AUDIT_CORRECT: tuple[type, ...] = (GoodMacroBall32, GoodMacroBall16, GoodVectorMuon32, GoodVectorMuon16,
                                   GoodVectorAdam32, GoodVectorAdam16)


# ---------------------------------------------------------------- MACRO on the Stiefel manifold (audit 3)
class MacroStiefel(torch.optim.Optimizer):
    """MACRO variant A on St(n, k) (scale 1): EMA momentum, P_W(Z) = Z − W·sym(WᵀZ) on the tall
    orientation, D = P_W(NS(P_W(M))) with KJ×5 NS in bf16, W ← polar(W − lr·D) (float64 SVD)."""

    def __init__(self, params: Any, lr: float, momentum: float) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self) -> None:
        for g, p, M in Z.ema_params(self):
            wide = p.shape[0] < p.shape[1]
            W = p.detach().mT if wide else p.detach()

            def P(Z_: torch.Tensor) -> torch.Tensor:
                Zt = Z_.mT if wide else Z_
                S = W.mT @ Zt
                return Zt - W @ ((S + S.mT) / 2)

            X = P(M)
            D = P(Z.ns(X.mT if wide else X, dtype=torch.bfloat16))
            U, _, Vh = torch.linalg.svd((W - g["lr"] * D).double(), full_matrices=False)
            Wn = (U @ Vh).to(p.dtype)
            p.copy_(Wn.mT if wide else Wn)


STIEFEL16_PROFILE = Z.MACRO16_PROFILE.with_options(
    name="audit_zoo_macro_stiefel_bf16", description="MACRO variant A on the Stiefel manifold (scale 1), "
    "KJ×5 NS in bf16, polar retraction, fp32 params",
    manifolds=(ManifoldDecl("stiefel", "stiefel", radius=1.0, retraction="polar", retraction_order=2,
                            dtype="float32", shapes=((7, 3), (3, 7), (5, 5))),))


class GoodMacroStiefel16(Adapter):
    """A correct bf16 MACRO on the Stiefel manifold: audit 3 found it failing optimizer.rule.step in
    2 of 12 runs (one cast of its projected input, cancelled to 1 % of |U|, counted as certain)."""

    name = "audit zoo: MACRO-Stiefel (bf16 NS)"
    profile = STIEFEL16_PROFILE
    capabilities = frozenset({"msign", "optimizer"})

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return Z.ns(G, dtype=torch.bfloat16)

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroStiefel(params, lr, momentum)


class SquaredNormMuon32(Z.GoodMuon32):
    """Muon whose NS normalises by √(Σ G²) summed in the input dtype (no scaling by the largest
    entry): ‖G‖²_F overflows fp32 from ‖G‖_F ≈ 1.8e19, the output is then G/∞ = 0 (audit 3's
    first adapter did the same in bf16)."""

    name = "audit zoo: Muon, fp32 NS, ‖G‖² summed in fp32"

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        X = G.to(torch.float32)
        n = torch.sqrt((X * X).sum(dim=(-2, -1), keepdim=True))
        return Z.ns(X / n.clamp(min=1e-7), dtype=torch.float32).to(G.dtype)


# ---------------------------------------------------------------- an off-manifold projection defect (audit 3)
class MacroBallNormNotSquared(MacroBall):
    """MACRO on the Frobenius sphere whose projector divides ⟨Z, W⟩ by ‖W‖_F instead of ‖W‖²_F:
    identical on the sphere of radius 1, wrong from un-normalised weights (audit 3 planted it on
    the column-oblique manifold: 22 % of the first update)."""

    @torch.no_grad()
    def step(self) -> None:
        for g, p, M in Z.ema_params(self):
            W = p.detach()
            P = lambda Z_: Z_ - (Z_ * W).sum() / torch.linalg.norm(W) * W  # noqa: E731
            D = P(Z.ns(P(M), dtype=self.ns_dtype))
            Y = W - g["lr"] * D
            p.copy_(self.radius * Y / torch.linalg.norm(Y))


UNIT_MACRO16_PROFILE = Z.MACRO16_PROFILE.with_options(
    name="audit_zoo_macro_unit_bf16", description="MACRO variant A on the Frobenius sphere R = 1, KJ×5 NS "
    "in bf16, fp32 params, weights as given",
    manifolds=tuple(dataclasses.replace(d, radius=1.0) for d in Z.MACRO16_PROFILE.manifolds))


class GoodUnitMacroBall16(GoodMacroBall16):
    name = "audit zoo: MACRO (bf16 NS) on the unit sphere, weights as given"
    profile = UNIT_MACRO16_PROFILE

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroBall(params, lr, momentum, 1.0, ns_dtype=self.ns_dtype, bug=self.bug)


class NormNotSquared16(GoodUnitMacroBall16):
    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroBallNormNotSquared(params, lr, momentum, 1.0, ns_dtype=self.ns_dtype)


class GoodUnitMacroBall32(GoodUnitMacroBall16):
    name = "audit zoo: MACRO (fp32 NS) on the unit sphere, weights as given"
    profile = UNIT_MACRO16_PROFILE.with_options(name="audit_zoo_macro_unit_fp32", compute_dtype="float32")
    ns_dtype = torch.float32


class NormNotSquared32(GoodUnitMacroBall32):
    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return MacroBallNormNotSquared(params, lr, momentum, 1.0, ns_dtype=self.ns_dtype)


# ---------------------------------------------------------------- Muon losing a conv filter's momentum (audit 4)
class ConvBufferLostMuon(Z.Muon2):
    """Muon whose >2-D parameters get a fresh zero momentum buffer at every step (a buffer keyed by the
    flattened view, rebuilt each call): correct at step 1, 82 % off a conv filter's update from step 2."""

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        if p.ndim > 2:
            self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return super()._buffer(p)


class ConvBufferLost32(Z.GoodMuon32):
    name = "audit zoo: Muon (fp32 NS) re-zeroing a >2-D parameter's momentum every step"

    def optimizer(self, params: list, lr: float, momentum: float, weight_decay: float = 0.0) -> Any:
        return ConvBufferLostMuon(params, lr, momentum, weight_decay, ns_dtype=self.ns_dtype)


class ConvBufferLost16(ConvBufferLost32):
    name = "audit zoo: Muon (bf16 NS) re-zeroing a >2-D parameter's momentum every step"
    profile = Z.MUON16_PROFILE
    ns_dtype = torch.bfloat16


# ---------------------------------------------------------------- gpu_impl MACRO with prenormalize=True (audit 4, FF3)
class GpuPrenormDeclared(GpuImplAdapter):
    """The built-in gpu_impl MACRO (Frobenius sphere, bf16 KJ×5) run with its documented
    ``prenormalize=True`` and declaring it (Profile.prenormalize)."""

    name = "audit zoo: gpu_impl MACRO, prenormalize=True declared"
    profile = get_profile("gpu_impl").with_options(name="audit_zoo_gpu_impl_prenorm", prenormalize=True)


class GpuPrenormUndeclared(GpuImplAdapter):
    """gpu_impl MACRO run with ``prenormalize=True`` while its profile declares False: in bf16 the
    Newton–Schulz input P(U/‖U‖) rounds differently from P(U) (exact arithmetic: the same step)."""

    name = "audit zoo: gpu_impl MACRO, prenormalize=True run, False declared"

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        opt = super().optimizer(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)
        for g in opt.param_groups:
            g["prenormalize"] = True
        return opt


# ---------------------------------------------------------------- row-oblique MACRO with radius 'init' (audit 4, missed 2)
class GpuObliqueInit(GpuImplAdapter):
    """gpu_impl MACRO on the row-oblique manifold with radius='init' (each row keeps its own starting
    norm, as gpu_impl and reference.optim.MACRO document), declared radius_source='init'."""

    name = "audit zoo: gpu_impl MACRO, oblique rows, radius='init'"
    profile = get_profile("gpu_impl_oblique").with_options(name="audit_zoo_gpu_impl_oblique_init",
                                                           radius_source="init")


class GpuObliqueInitGlobal(GpuObliqueInit):
    """The defect: one radius ‖W₀‖_F/√m for every row (the mean-square row norm), so rows that start
    longer or shorter than it are moved to it at the first step."""

    name = "audit zoo: gpu_impl MACRO, oblique rows, one 'init' radius for all rows"

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        W0 = params[0].detach()
        p = self.get_profile()
        inner = GpuImplAdapter()
        R = float(torch.linalg.vector_norm(W0.double())) / W0.shape[0] ** 0.5
        inner.profile = p.with_options(radius_source="declared",
                                       manifolds=(dataclasses.replace(p.manifolds[0], radius=R),) + p.manifolds[1:])
        return inner.optimizer(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra)


# ---------------------------------------------------------------- SSO in bf16 and fp32 (audit 4, FF1 and missed 1)
#: Polar Express (EO list), 5 steps (the SSO code's schedule; reference.schedules 'polar_express_eo')
_PE = ((8.2051, -22.9019, 16.4607), (4.0664, -2.8612, 0.5184), (3.9096, -2.8234, 0.5250),
       (3.2856, -2.4153, 0.4853), (2.2779, -1.6198, 0.3985))


def pe_msign(G: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """PE×5 on a 2-D G in compute dtype ``dt``: cast, X/max(‖X‖_F, 1e-15) (fp32 norm), tall
    inputs transposed; returned in G's dtype."""
    X = G.to(dt).float()
    amax = X.abs().max().clamp_min(1e-30)  # ‖X‖_F scaled by max|X|: no overflow at ‖G‖_F = 1e30
    X = (X / (amax * torch.linalg.vector_norm(X / amax)).clamp_min(1e-15)).to(dt)
    tall = X.shape[0] > X.shape[1]
    X = X.mT if tall else X
    for a, b, c in _PE:
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if tall else X).to(G.dtype)


def sso_bisect(h: Any) -> float:
    """SSO's bracket-and-bisect on h (bracket from 0, step 1e-3, ≤ 10 doublings, |h| ≤ 1e-8 in ≤ 100
    bisections, the best point, λ = 0 on a bracket failure), written as an implementation would."""
    h0 = h(0.0)
    if abs(h0) <= 1e-8:
        return 0.0
    sgn = -1.0 if h0 > 0 else 1.0
    step, near, far = 1e-3, 0.0, sgn * 1e-3
    hfar = h(far)
    for _ in range(10):
        if (hfar > 0) != (h0 > 0) or hfar == 0:
            break
        near, step = far, 2.0 * step
        far = sgn * step
        hfar = h(far)
    else:
        if (hfar > 0) == (h0 > 0) and hfar != 0:
            return 0.0
    lo, hi = (near, far) if sgn > 0 else (far, near)
    best, hb = (far, hfar) if abs(hfar) < abs(h0) else (0.0, h0)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        hm = h(mid)
        if abs(hm) < abs(hb):
            best, hb = mid, hm
        if abs(hm) <= 1e-8:
            break
        lo, hi = (mid, hi) if hm < 0 else (lo, mid)
    return best


class SSOOptimizer(torch.optim.Optimizer):
    """A user's SSO (MATH §9.4): EMA momentum, retract W ← R·W/σ₁(W), Θ = u₁v₁ᵀ exact (float64 SVD),
    λ by :func:`sso_bisect` on its own orthogonaliser, W ← W − lr·0.2·√max(m, n)·Φ. ``sigma_power``:
    the defect — σ₁ of the retraction by 10 fp32 power steps from v₀ = 1 (the exact pair declared)."""

    def __init__(self, params: Any, lr: float, momentum: float, dt: torch.dtype, sigma_power: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.dt, self.sigma_power = dt, sigma_power

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            for p in (q for q in g["params"] if q.grad is not None):
                M = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                M.lerp_(p.grad, 1 - g["momentum"])
                U, S, Vh = torch.linalg.svd(p.double(), full_matrices=False)
                s1 = S[0]
                if self.sigma_power:
                    v = torch.ones(p.shape[1]) / p.shape[1] ** 0.5
                    for _ in range(10):
                        v = p.mT @ (p @ v)
                        v = v / v.norm()
                    s1 = (p @ v).norm().double()
                W = (p.double() / s1).float()
                Th = torch.outer(U[:, 0], Vh[0]).float()
                Mh = M / torch.linalg.vector_norm(M).clamp_min(1e-8)
                lam = sso_bisect(lambda x: float((Th * pe_msign(Mh + x * Th, self.dt)).sum()))
                Phi = pe_msign(Mh + lam * Th, self.dt)
                p.copy_(W - g["lr"] * 0.2 * max(p.shape) ** 0.5 * Phi)


class GoodSSO16(Adapter):
    """Correct SSO with bf16 PE×5 (audit 4 FF1: it failed rule.step at 1.6e4× before the fix)."""

    name = "audit zoo: SSO, bf16 PE×5"
    dt = torch.bfloat16
    sigma_power = False
    profile = get_profile("gpu_impl_sso").with_options(
        name="audit_zoo_sso_bf16", compute_dtype="bfloat16", nan_policy="propagate", vector_params="unsupported",
        mutation=("momentum_buffer",))
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("torch",)

    def msign(self, G: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.msign(g) for g in G]) if G.ndim > 2 else pe_msign(G, self.dt)

    def optimizer(self, params: Any, lr: float = 0.02, momentum: float = 0.9, weight_decay: float = 0.0) -> Any:
        return SSOOptimizer(params, lr, momentum, self.dt, self.sigma_power)

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        return opt.state[p].get("momentum_buffer")


class GoodSSO32(GoodSSO16):
    name = "audit zoo: SSO, fp32 PE×5"
    dt = torch.float32
    profile = GoodSSO16.profile.with_options(name="audit_zoo_sso_fp32", compute_dtype="float32")


class SigmaPowerSSO32(GoodSSO32):
    """Defect (audit 4 missed 1): the retraction's σ₁ by 10 power steps while the exact pair is declared."""

    name = "audit zoo: SSO, fp32 PE×5, power-iteration σ₁"
    sigma_power = True


class SigmaPowerSSO16(GoodSSO16):
    name = "audit zoo: SSO, bf16 PE×5, power-iteration σ₁"
    sigma_power = True
