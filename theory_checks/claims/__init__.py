"""Claim families; importing this package registers every claim (one module per family)."""

from . import activation, equilibrium, geometry, implementation, primitives, scale_vectors  # noqa: F401
