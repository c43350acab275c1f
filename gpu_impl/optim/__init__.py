"""Torch optimizers: MACRO (MATH.md §7) and the baselines MuonH (§9.3), SSO and MuonBall (§9.4).

Plain Muon is ``torch.optim.Muon``. All optimizers route non-2-D parameters (and groups with
``manifold=None`` for MACRO) to an internal AdamW, and share the transactional step protocol of
:mod:`gpu_impl.optim._base` (non-finite gradients raise ``reference.errors.InvalidInputError``
before any weight or state is touched, or are skipped and reported with ``nonfinite="skip"``).
"""

from ._base import SCALE_RULES, MatrixOptimizer, ns_dtype_used, resolve_auto_ns_dtype, shape_scale
from .baselines import SSO, MuonBall, MuonH
from .macro import MACRO, MACRO_MANIFOLDS, MOMENTUM_FORMS, REPROJECT_VARIANTS, RETRACTIONS, msign_policy_of

__all__ = [
    "MACRO",
    "MuonH",
    "SSO",
    "MuonBall",
    "MatrixOptimizer",
    "shape_scale",
    "SCALE_RULES",
    "MOMENTUM_FORMS",
    "REPROJECT_VARIANTS",
    "MACRO_MANIFOLDS",
    "RETRACTIONS",
    "msign_policy_of",
    "resolve_auto_ns_dtype",
    "ns_dtype_used",
]
