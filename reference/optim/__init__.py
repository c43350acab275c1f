"""Reference optimizer steps (MATH.md §7, §9): pure float64 functions, one frozen dataclass per
method with ``init_state(W)`` and ``step(W, G, state, *, compare_exact=False)``.

The public names are re-exported by :mod:`reference.optimizers` and :mod:`reference`.
"""

from ._base import (
    MANIFOLD_KINDS,
    MOMENTUM_FORMS,
    SCALE_RULES,
    Diagnostics,
    optimizer_kind,
    optimizer_manifold,
    State,
    apply_msign,
    frobenius_angle,
    shape_scale,
    tangent_noise_floor,
    update_momentum,
)
from .conventions import (
    BUFFER_FORMS,
    MACRO_VARIANTS,
    NESTEROV_FORMS,
    SCALE_ALIASES,
    WEIGHT_DECAY_COUPLINGS,
    apply_weight_decay,
    canonical_scale_rule,
    decay_factor,
    macro_direction,
    momentum_buffer,
    nesterov_input,
)
from .macro import MACRO, RADIUS_RULES, REPROJECT_VARIANTS
from .muon import MUON_PROFILES, Muon, MuonH
from .simple import AdamW, Mano, RiemannianSGD
from .spectral import SSO, MuonBall, power_iteration, sso_lambda
from .stiefel import SPEL, ManifoldMuon, dual_ascent

__all__ = [
    "State", "Diagnostics", "apply_msign", "frobenius_angle", "shape_scale", "tangent_noise_floor",
    "update_momentum",
    "momentum_buffer", "nesterov_input", "BUFFER_FORMS", "NESTEROV_FORMS", "SCALE_ALIASES",
    "canonical_scale_rule", "WEIGHT_DECAY_COUPLINGS", "decay_factor", "apply_weight_decay",
    "MACRO_VARIANTS", "macro_direction", "optimizer_kind", "optimizer_manifold",
    "MANIFOLD_KINDS", "MOMENTUM_FORMS", "SCALE_RULES", "RADIUS_RULES", "REPROJECT_VARIANTS",
    "MACRO", "Muon", "MUON_PROFILES", "MuonH", "SSO", "MuonBall", "power_iteration", "sso_lambda",
    "ManifoldMuon", "dual_ascent", "SPEL", "Mano", "AdamW", "RiemannianSGD",
]
