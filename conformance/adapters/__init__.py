"""Targets and the adapter protocol.

A *target* is named ``module:attribute``. The attribute is an :class:`Adapter` subclass, an
instance of one, or a zero-argument callable returning one. The short names of the built-in
adapters (``gpu_impl``, ``gpu_impl_muonh``, ``gpu_impl_sso``, ``torch_muon``, ``kj_muon``, ``scipy_polar``, ``geoopt``,
``pymanopt``)
are accepted too.

An adapter declares

* ``name`` — shown in reports;
* ``profile`` — a profile name of ``conformance.profiles`` or a ``Profile`` (its conventions);
* ``capabilities`` — a subset of :data:`CAPABILITIES`;
* ``requires`` — importable modules it needs (a missing one makes the target *not available*,
  exit code 2, never a pass);

and implements the methods of the capabilities it declares. Numeric methods receive CPU torch
tensors (dtype as the check asks) and return a torch tensor (or anything ``torch.as_tensor``
accepts). Manifold methods take the manifold's declared ``name`` (``ManifoldDecl.name``) first.

    msign(G) -> O                         orthogonaliser (NS-type or exact), shape (..., m, n); for an
                                          optimizer target, the routine its step calls (same compute
                                          dtype): the step checks replay it (checks.rules)
    polar_factor(X) -> U                  full isometry polar factor
    project_tangent(manifold, W, G) -> P_W(G)
    retract(manifold, W, A) -> R_W(A)
    contains(manifold, W, atol) -> bool   membership test
    direction(W, G, state) -> (D, state)  the update direction of one step (see expected.py for
                                          the convention per profile rule); state=None at step 0
    optimizer(params, **hyper) -> torch.optim.Optimizer-like (hyper: lr, momentum, weight_decay)
    momentum_buffer(opt, p) -> tensor     optional: where the optimizer keeps its momentum
    sharded_optimizer(params, mesh, **hyper) -> object with step(): the optimizer on FSDP2 DTensors
                                          (Shard(0) on the 1-D mesh) mixed with plain replicated
                                          tensors; called on every rank (checks/distributed.py)

Geometry capabilities (embedded metric; ``ManifoldDecl.unsupported`` lists the ones a manifold
lacks, ``ManifoldDecl.transport`` names the declared vector transport):

    dist(manifold, X, Y) -> scalar        geodesic distance (product metric on oblique)
    log(manifold, X, Y) -> T_X M          logarithm; at the cut locus raise a clear error
    exp(manifold, X, A) -> point          exponential map
    project_point(manifold, Y) -> point   metric projection onto the manifold
    riemannian_gradient(manifold, W, G)   Riemannian gradient of the Euclidean gradient G
    transport(manifold, X, Y, A) -> T_Y M vector transport of A ∈ T_X M
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

from ..profiles import Profile, get_profile

__all__ = ["Adapter", "CAPABILITIES", "BUILTIN_TARGETS", "resolve_target", "to_numpy", "to_torch"]

CAPABILITIES: tuple[str, ...] = ("msign", "polar_factor", "project_tangent", "retract", "contains",
                                 "direction", "optimizer", "dist", "log", "exp", "project_point",
                                 "riemannian_gradient", "transport", "sharded_optimizer")

#: short names of the built-in adapters → ``module:attribute``
BUILTIN_TARGETS: dict[str, str] = {
    "gpu_impl": "manifold_oracle.conformance.adapters.gpu_impl:GpuImplAdapter",
    "gpu_impl_spectral": "manifold_oracle.conformance.adapters.gpu_impl:GpuImplSpectralAdapter",
    "gpu_impl_muonh": "manifold_oracle.conformance.adapters.gpu_impl:GpuImplMuonHAdapter",
    "gpu_impl_sso": "manifold_oracle.conformance.adapters.gpu_impl:GpuImplSSOAdapter",
    "torch_muon": "manifold_oracle.conformance.adapters.torch_muon:TorchMuonAdapter",
    "kj_muon": "manifold_oracle.conformance.adapters.kj_muon:KJMuonAdapter",
    "scipy_polar": "manifold_oracle.conformance.adapters.scipy_polar:ScipyPolarAdapter",
    "geoopt": "manifold_oracle.conformance.adapters.geoopt:GeooptAdapter",
    "pymanopt": "manifold_oracle.conformance.adapters.pymanopt:PymanoptAdapter",
    # third-party optimizers (extra "thirdparty"): pytorch_optimizer, HeavyBall, optax
    "ptopt_muon": "manifold_oracle.conformance.adapters.ptopt:PtoptMuonAdapter",
    "ptopt_adamuon": "manifold_oracle.conformance.adapters.ptopt:PtoptAdaMuonAdapter",
    "ptopt_normuon": "manifold_oracle.conformance.adapters.ptopt:PtoptNorMuonAdapter",
    "ptopt_scion": "manifold_oracle.conformance.adapters.ptopt:PtoptScionAdapter",
    "ptopt_spectral_sphere": "manifold_oracle.conformance.adapters.ptopt:PtoptSpectralSphereAdapter",
    "heavyball_muon": "manifold_oracle.conformance.adapters.heavyball:HeavyballMuonAdapter",
    "heavyball_muon_svd": "manifold_oracle.conformance.adapters.heavyball:HeavyballMuonSVDAdapter",
    "heavyball_scion": "manifold_oracle.conformance.adapters.heavyball:HeavyballScionAdapter",
    "optax_muon": "manifold_oracle.conformance.adapters.optax:OptaxMuonAdapter",
    # distributed (FSDP2) targets, extra "distributed"
    "gpu_impl_fsdp2": "manifold_oracle.conformance.adapters.distributed:GpuImplFsdp2Adapter",
    "torch_muon_fsdp2": "manifold_oracle.conformance.adapters.distributed:TorchMuonFsdp2Adapter",
    "ptopt_distributed_muon": "manifold_oracle.conformance.adapters.distributed:PtoptDistributedMuonAdapter",
    "muon_fsdp2": "manifold_oracle.conformance.adapters.distributed:MuonFsdp2Adapter",
    "dtensor_muon": "manifold_oracle.conformance.adapters.distributed:DtensorMuonAdapter",
}


class Adapter:
    """Base class of every adapter (the protocol is the module docstring)."""

    name: str = "unnamed"
    profile: str | Profile = ""
    capabilities: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()

    def check_available(self) -> None:
        """Raise :class:`NotAvailableError` if a required package is missing."""
        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except Exception as exc:  # ImportError or a broken install
                raise NotAvailableError(f"target {self.name!r} needs {mod!r}, which is not "
                                        f"importable here ({type(exc).__name__}: {exc})") from exc

    def get_profile(self) -> Profile:
        return get_profile(self.profile)

    def group_hyper(self, lr: float, momentum: float, weight_decay: float) -> dict[str, Any]:
        """The param-group keys of the target for (lr, EMA factor β, weight decay): what a check
        writes into ``opt.param_groups[i]`` (override where the package names β differently)."""
        return {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}

    def momentum_buffer(self, opt: Any, p: Any) -> Any:
        """The momentum buffer of parameter ``p`` in ``opt`` (common state keys)."""
        st = opt.state[p]
        for key in ("momentum_buffer", "exp_avg", "momentum", "buf"):
            if key in st:
                return st[key]
        return None

    def __repr__(self) -> str:
        return f"<adapter {self.name} profile={getattr(self.profile, 'name', self.profile)}>"


def resolve_target(spec: str | Adapter | type, profile: str | Profile | None = None) -> Adapter:
    """Resolve ``module:attr`` (or a short built-in name) to an adapter instance.

    Raises :class:`NotAvailableError` (module not importable, dependency missing) or
    :class:`InvalidInputError` (malformed spec, attribute is not an adapter).
    """
    if isinstance(spec, Adapter):
        adapter = spec
    elif isinstance(spec, type) and issubclass(spec, Adapter):
        adapter = spec()
    else:
        text = str(spec)
        text = BUILTIN_TARGETS.get(text, text)
        if ":" not in text:
            raise InvalidInputError(f"target {spec!r} must be 'module:attribute' or one of "
                                    f"{sorted(BUILTIN_TARGETS)}")
        mod_name, attr = text.split(":", 1)
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise NotAvailableError(f"target module {mod_name!r} is not importable: {exc}") from exc
        try:
            obj: Any = module
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidInputError(f"target {text!r}: no attribute {attr!r} in {mod_name}") from exc
        if isinstance(obj, type) and issubclass(obj, Adapter):
            adapter = obj()
        elif isinstance(obj, Adapter):
            adapter = obj
        elif callable(obj):
            try:
                adapter = obj()
            except TypeError as exc:  # e.g. a plain function msign(G): not an adapter factory
                raise InvalidInputError(f"target {text!r} is not an Adapter (calling it with no arguments to "
                                        f"build one raised TypeError: {exc}); see docs/conformance.md for "
                                        "the protocol") from None
        else:
            adapter = obj
        if not isinstance(adapter, Adapter):
            raise InvalidInputError(f"target {text!r} is not an Adapter (got {type(adapter).__name__}); "
                                    "see docs/conformance.md for the protocol")
    adapter.check_available()
    if profile is not None:
        adapter.profile = get_profile(profile)
    unknown = set(adapter.capabilities) - set(CAPABILITIES)
    if unknown:
        raise InvalidInputError(f"adapter {adapter.name!r} declares unknown capabilities {sorted(unknown)}")
    get_profile(adapter.profile)  # validate early
    return adapter


def to_numpy(x: Any) -> Any:
    """float64 numpy copy of a tensor/array (bf16 is widened exactly)."""
    import numpy as np

    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().to("cpu", torch.float64).numpy().copy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.array(x, dtype=np.float64)


def to_torch(x: Any, dtype: Any = None) -> Any:
    """A fresh CPU torch tensor (float64 by default) from an array or tensor."""
    import numpy as np
    import torch

    dtype = torch.float64 if dtype is None else dtype
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").clone().to(dtype)
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=dtype)


def as_output(y: Any) -> Any:
    """Normalise an adapter's return value to a torch tensor (no copy when already one)."""
    import torch

    if isinstance(y, torch.Tensor):
        return y
    return torch.as_tensor(y)


Factory = Callable[[], Adapter]
