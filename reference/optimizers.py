"""MACRO and the baselines as pure float64 step functions (MATH.md §7, §9).

The implementation lives in the subpackage :mod:`reference.optim` (one module per family); this
module re-exports its public names so that ``from manifold_oracle.reference.optimizers import MACRO`` works.
"""

from .optim import *  # noqa: F401,F403
from .optim import __all__  # noqa: F401
