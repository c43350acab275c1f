"""pytest plugin of manifold-oracle (registered through the ``pytest11`` entry point).

It only adds options until a target is named: ``pytest --oracle-target=pkg.mod:attr`` makes the
conformance suite run inside the user's own test session (see docs/conformance.md).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("manifold-oracle", "manifold-oracle conformance")
    group.addoption("--oracle-target", default=None, metavar="MODULE:ATTR",
                    help="implementation to check against the manifold-oracle reference")
    group.addoption("--oracle-profile", default=None, metavar="NAME",
                    help="declared convention profile of the target")
