"""Fixtures shared by the torch tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The torch tests run many tiny ops; with -n 2 on 2 cores, one intra-op thread per worker
    avoids thread-pool oversubscription (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
