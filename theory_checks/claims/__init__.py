"""Claim families; importing this package registers every claim (one module per family)."""

from . import (  # noqa: F401
    activation,
    convergence,
    equilibrium,
    geometry,
    implementation,
    macro,
    primitives,
    scale_vectors,
    training,
)
