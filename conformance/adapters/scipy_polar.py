"""Adapter for ``scipy.linalg.polar`` (right polar decomposition a = u·p), float64.

Capability: ``polar_factor`` only (it is a full isometry, not msign: polar(0) = I, MATH §2.3).
Profile ``scipy_polar``.
"""

from __future__ import annotations

from typing import Any

from . import Adapter


class ScipyPolarAdapter(Adapter):
    """scipy.linalg.polar(X)[0]."""

    name = "scipy.linalg.polar"
    profile = "scipy_polar"
    capabilities = frozenset({"polar_factor"})
    requires = ("scipy.linalg",)

    def polar_factor(self, X: Any) -> Any:
        import numpy as np
        import scipy.linalg

        x = X.detach().cpu().numpy() if hasattr(X, "detach") else np.asarray(X)
        return scipy.linalg.polar(np.asarray(x, dtype=np.float64), side="right")[0]
