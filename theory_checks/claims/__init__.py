"""Claim families; importing this package registers every claim (one module per family)."""

from . import (  # noqa: F401
    activation,
    bounds,
    convergence,
    equilibrium,
    geometry,
    implementation,
    lipschitz,
    macro,
    momentum,
    primitives,
    scale_vectors,
    steepest,
    torch_impl,
    training,
    transfer,
)
