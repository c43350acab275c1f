"""Adapter for our own torch implementation (``gpu_impl``), written as a user would write one.

Capabilities: ``msign`` (``gpu_impl.msign.newton_schulz`` / ``msign_exact`` with the profile's
schedule and compute dtype), the manifold operations of ``gpu_impl.manifolds`` for every
manifold the profile declares (spectral sphere with its shipped default Θ, the certified top
pair), ``direction`` (MACRO variant A composed from those primitives: D = s·P_W(msign(P_W(U)))),
and ``optimizer`` (``gpu_impl.optim.MACRO`` configured from the profile). Default profile
``gpu_impl``; the others (``gpu_impl_exact``, ``gpu_impl_spectral``, ``gpu_impl_spectral_bf16``,
``gpu_impl_oblique``, ``gpu_impl_stiefel``, ``gpu_impl_fp32ns``) are selected with ``--profile``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..profiles import Profile
from . import Adapter

_SCALE = {"none": "one", "kj": "kj", "moonlight": "moonlight", "spectral_mup": "spectral_mup"}


class GpuImplAdapter(Adapter):
    """gpu_impl: msign, manifolds and the MACRO optimizer."""

    name = "gpu_impl"
    profile: str | Profile = "gpu_impl"
    # project_point of a zero matrix (row, column) raises DegenerateGeometryError (the guard is in
    # gpu_impl.manifolds' project_point, not on the retraction's hot path)
    capabilities = frozenset({"msign", "project_tangent", "retract", "contains", "direction", "optimizer",
                              "dist", "log", "exp", "riemannian_gradient", "transport", "project_point"})
    requires = ("manifold_oracle.gpu_impl.msign", "manifold_oracle.gpu_impl.manifolds", "manifold_oracle.gpu_impl.optim")

    # ---------------------------------------------------------------- orthogonaliser
    def msign(self, G: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.msign import msign_exact, newton_schulz

        p = self.get_profile()
        if p.schedule == "exact":
            return msign_exact(G, rank_rtol=1e-10 if G.dtype == torch.float64 else 1e-5)
        return newton_schulz(G, p.ns_schedule(), compute_dtype=None if p.compute_dtype == "input" else p.compute_dtype,
                             cast="before" if p.cast_point != "normalise_then_cast" else "after")

    # ---------------------------------------------------------------- manifolds
    def _man(self, name: str) -> Any:
        from manifold_oracle.gpu_impl.manifolds import SpectralSphere, make_manifold

        decl = next(d for d in self.get_profile().manifolds if d.name == name)
        if decl.canonical_kind == "spectral_sphere":
            return SpectralSphere(decl.radius)  # the shipped default Θ: the certified top pair
        return make_manifold(decl.canonical_kind, decl.radius)

    def project_tangent(self, manifold: str, W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        return self._man(manifold).project_tangent(W, G)

    def retract(self, manifold: str, W: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return self._man(manifold).retract(W, A)

    def contains(self, manifold: str, W: torch.Tensor, atol: float) -> bool:
        return bool(self._man(manifold).contains(W, atol))

    # ---------------------------------------------------------------- geometry (gpu_impl.geodesics)
    def _spheres(self, manifold: str, X: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.geodesics import as_spheres

        d = next(d for d in self.get_profile().manifolds if d.name == manifold)
        return as_spheres(X, d.kind, d.axis or "rows")

    def _unspheres(self, manifold: str, V: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.geodesics import from_spheres

        d = next(d for d in self.get_profile().manifolds if d.name == manifold)
        return from_spheres(V, like, d.kind, d.axis or "rows")

    def dist(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.geodesics import sphere_angle

        r = next(d for d in self.get_profile().manifolds if d.name == manifold).radius
        return r * torch.linalg.vector_norm(sphere_angle(self._spheres(manifold, X), self._spheres(manifold, Y)))

    def log(self, manifold: str, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.geodesics import sphere_log

        return self._unspheres(manifold, sphere_log(self._spheres(manifold, X), self._spheres(manifold, Y)), X)

    def exp(self, manifold: str, X: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        from manifold_oracle.gpu_impl.geodesics import sphere_exp, stiefel_exp

        d = next(d for d in self.get_profile().manifolds if d.name == manifold)
        if d.kind == "stiefel":
            return stiefel_exp(X, A, d.radius)
        return self._unspheres(manifold, sphere_exp(self._spheres(manifold, X), self._spheres(manifold, A),
                                                    d.radius), X)

    def project_point(self, manifold: str, Y: torch.Tensor) -> torch.Tensor:
        return self._man(manifold).project_point(Y)

    def riemannian_gradient(self, manifold: str, W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        return self._man(manifold).riemannian_gradient(W, G)

    def transport(self, manifold: str, X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return self._man(manifold).project_tangent(Y, A)  # declared transport: projection

    # ---------------------------------------------------------------- optimizer
    def direction(self, W: torch.Tensor, G: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        from manifold_oracle.gpu_impl.optim import shape_scale

        p = self.get_profile()
        man = self._man(p.manifolds[0].name)
        beta = p.momentum
        M = torch.zeros_like(G) if state is None else state["momentum"]
        M_new = torch.lerp(M, G, 1.0 - beta) if p.momentum_form == "ema" else torch.add(G, M, alpha=beta)
        # MACRO's prenormalize: U/max(‖U‖_F, 1e-8) before the projection (the state keeps M_new)
        U = (M_new / torch.linalg.vector_norm(M_new, dim=(-2, -1), keepdim=True).clamp_min(1e-8)
             if p.prenormalize else M_new)
        X = man.project_tangent(W, U)
        D = man.project_tangent(W, self.msign(X))
        s = p.scale * shape_scale(_SCALE[p.shape_scale], *W.shape[-2:])
        return s * D, {"momentum": M_new}

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        from manifold_oracle.gpu_impl.optim import MACRO

        p = self.get_profile()
        decl = p.manifolds[0]
        # radius_source='init': MACRO's radius='init' (‖W₀‖_F, σ₁(W₀), each row's/column's own norm)
        kw: dict[str, Any] = dict(manifold=decl.name, radius="init" if p.radius_source == "init" else decl.radius,
                                  momentum_form=p.momentum_form,
                                  scale=_SCALE[p.shape_scale], retraction=decl.retraction,
                                  prenormalize=p.prenormalize)
        if p.schedule == "exact":
            kw["msign"] = "exact"
        else:
            kw.update(msign=p.ns_schedule(), ns_steps=p.steps,
                      ns_dtype=None if p.compute_dtype == "input" else p.compute_dtype)
        # the spectral sphere's Θ is MACRO's default, the certified top pair (as shipped)
        return MACRO(params, lr=lr, momentum=momentum, **kw)

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        return opt.state[p].get("momentum")


class GpuImplSpectralAdapter(GpuImplAdapter):
    """gpu_impl MACRO on the spectral sphere with its shipped defaults (profile
    ``gpu_impl_spectral_bf16``): the certified top pair Θ and KJ×5 Newton–Schulz in bf16, float32
    parameters."""

    name = "gpu_impl spectral"
    profile: str | Profile = "gpu_impl_spectral_bf16"


class GpuImplMuonHAdapter(GpuImplAdapter):
    """gpu_impl.optim.MuonH (ArchScale form, MATH.md §9.3) with its Newton–Schulz routine."""

    name = "gpu_impl MuonH"
    profile: str | Profile = "gpu_impl_muonh"
    capabilities = frozenset({"msign", "optimizer"})

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        from manifold_oracle.gpu_impl.optim import MuonH

        p = self.get_profile()
        return MuonH(params, lr=lr, momentum=momentum, nesterov=p.nesterov_form != "none",
                     weight_decay=weight_decay, msign=p.ns_schedule(), ns_steps=p.steps,
                     ns_dtype=None if p.compute_dtype == "input" else p.compute_dtype)


class GpuImplSSOAdapter(GpuImplAdapter):
    """gpu_impl.optim.SSO: the optimizer, and the first-step direction of its λ solver (exact Θ).

    direction(W, G, None) = msign(M̂ + λΘ) with M̂ = G/‖G‖_F (first step from zero momentum),
    Θ = u₁v₁ᵀ of W and λ from ``SSO._solve_lambda`` with the optimizer's defaults.
    """

    name = "gpu_impl SSO"
    profile: str | Profile = "gpu_impl_sso"
    capabilities = frozenset({"msign", "direction", "optimizer"})

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.9, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        """gpu_impl.optim.SSO with the declared radius (a number: the profile's radius source is
        'declared'), scale (align_adamw_rms = moonlight), orthogonaliser and the exact top pair Θ
        (``theta="exact"``, as the harness's expected step; SSO's default power iteration is not a
        declared convention)."""
        from manifold_oracle.gpu_impl.optim import SSO

        p = self.get_profile()
        return SSO(params, lr=lr, momentum=momentum, radius_mode=float(p.manifolds[0].radius),
                   scale_mode="align_adamw_rms", msign=p.schedule, ns_steps=p.steps, theta="exact",
                   ns_dtype=None if p.compute_dtype == "input" else p.compute_dtype)

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        return opt.state[p].get("momentum")

    def direction(self, W: torch.Tensor, G: torch.Tensor, state: dict | None) -> tuple[torch.Tensor, dict]:
        from manifold_oracle.gpu_impl.msign import MsignPolicy
        from manifold_oracle.gpu_impl.optim import SSO

        p = self.get_profile()
        policy = MsignPolicy(schedule=p.schedule, steps=p.steps, compute_dtype=p.compute_dtype)
        prm = torch.nn.Parameter(W.detach().clone())
        opt = SSO([prm], msign=policy)
        group = opt.param_groups[0]
        U, s, Vh = torch.linalg.svd(W.to(torch.float64), full_matrices=False)
        Theta = torch.outer(U[:, 0], Vh[0]).to(W.dtype)
        Mh = G / torch.linalg.vector_norm(G).clamp_min(1e-8)
        lam, failed = opt._solve_lambda(Mh[None], Theta[None], group, policy)
        Phi = policy(Mh + lam[0] * Theta)
        return Phi, {"lambda": float(lam[0]), "bracket_failed": bool(failed[0])}
