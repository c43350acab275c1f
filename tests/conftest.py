"""Shared test configuration: hypothesis profiles and seeded RNG fixtures.

Profiles: ``ci`` (default; derandomised so CI is reproducible, no deadline because CI machines
are shared) and ``dev`` (random exploration, more examples): ``pytest --hypothesis-profile=dev``.
"""

from __future__ import annotations

import os
import sys

# Two xdist workers share 2 cores: a multi-threaded BLAS in each oversubscribes them (a 50×80 SVD
# measured 15× slower). Must be set before numpy loads its BLAS; record whether that held.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
BLAS_THREADS_PINNED_BEFORE_IMPORT = "numpy" not in sys.modules

import numpy as np  # noqa: E402
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


def pytest_report_header(config: pytest.Config) -> str:
    return (f"manifold-oracle: BLAS threads pinned to 1 before numpy import: "
            f"{BLAS_THREADS_PINNED_BEFORE_IMPORT}")
