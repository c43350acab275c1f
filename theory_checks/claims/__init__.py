"""Claim families; importing this package registers every claim (one module per family)."""

from . import geometry  # noqa: F401
