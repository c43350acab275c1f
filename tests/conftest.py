"""Shared test configuration: hypothesis profiles and seeded RNG fixtures.

Profiles: ``ci`` (default; derandomised so CI is reproducible, no deadline because CI machines
are shared) and ``dev`` (random exploration, more examples): ``pytest --hypothesis-profile=dev``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed per test (reproducible, independent of order)."""
    return np.random.default_rng(20261125)
