"""Reference optimizer steps (MATH.md §7, §9): pure float64 functions, one frozen dataclass per
method with ``init_state(W)`` and ``step(W, G, state, *, compare_exact=False)``.

The public names are re-exported by :mod:`reference.optimizers` and :mod:`reference`.
"""

from ._base import (
    MANIFOLD_KINDS,
    MOMENTUM_FORMS,
    SCALE_RULES,
    Diagnostics,
    State,
    apply_msign,
    frobenius_angle,
    shape_scale,
    tangent_noise_floor,
    update_momentum,
)
from .macro import MACRO, RADIUS_RULES, REPROJECT_VARIANTS
from .muon import MUON_PROFILES, Muon, MuonH
from .simple import AdamW, Mano, RiemannianSGD
from .spectral import SSO, MuonBall, power_iteration, sso_lambda
from .stiefel import SPEL, ManifoldMuon, dual_ascent

__all__ = [
    "State", "Diagnostics", "apply_msign", "frobenius_angle", "shape_scale", "tangent_noise_floor",
    "update_momentum",
    "MANIFOLD_KINDS", "MOMENTUM_FORMS", "SCALE_RULES", "RADIUS_RULES", "REPROJECT_VARIANTS",
    "MACRO", "Muon", "MUON_PROFILES", "MuonH", "SSO", "MuonBall", "power_iteration", "sso_lambda",
    "ManifoldMuon", "dual_ascent", "SPEL", "Mano", "AdamW", "RiemannianSGD",
]
