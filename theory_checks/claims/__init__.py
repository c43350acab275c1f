"""Claim families; importing this package registers every claim (one module per family)."""

from . import activation, convergence, equilibrium, geometry, implementation, macro, primitives, scale_vectors  # noqa: F401
