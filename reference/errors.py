"""The one exception hierarchy of manifold-oracle.

Every package (``reference``, ``gpu_impl``, ``conformance``, ``theory_checks``) raises these
and only these for bad input or failed numerics. Each class also derives from the closest
builtin (``ValueError``, ``ArithmeticError``, ``RuntimeError``) so that generic handlers keep
working.

    OracleError
    ├── InvalidInputError        NaN/Inf, wrong rank/shape/dtype, empty matrix, bad option
    ├── OffManifoldError         a point is not on its manifold (carries violation, tolerance)
    ├── DegenerateGeometryError  spectral gap or rank below its threshold
    ├── SolverError              a solver did not certify its answer (status, figures)
    └── NotAvailableError        an optional dependency or capability is missing
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OracleError",
    "InvalidInputError",
    "OffManifoldError",
    "DegenerateGeometryError",
    "SolverError",
    "NotAvailableError",
]


class OracleError(Exception):
    """Base class of every error raised by manifold-oracle."""


class InvalidInputError(OracleError, ValueError):
    """The input is malformed: non-finite entries, wrong rank/shape/dtype, empty, bad option."""


class OffManifoldError(OracleError, ValueError):
    """A point that must lie on a manifold does not.

    Attributes
    ----------
    manifold : str
        ``repr`` of the manifold.
    violation : float
        The measured feasibility residual (the manifold's ``violation``).
    tolerance : float
        The tolerance it was compared with.
    """

    def __init__(self, manifold: str, violation: float, tolerance: float, what: str = "point"):
        self.manifold = manifold
        self.violation = float(violation)
        self.tolerance = float(tolerance)
        super().__init__(
            f"{what} is not on {manifold}: violation {self.violation:.3e} > tolerance "
            f"{self.tolerance:.3e}"
        )


class DegenerateGeometryError(OracleError, ArithmeticError):
    """The geometry is degenerate at this point (e.g. repeated top singular value).

    Attributes
    ----------
    quantity : str
        What was measured (e.g. ``"relative spectral gap (s1-s2)/s1"``).
    value : float
        The measured value.
    threshold : float
        The threshold it fell below.
    """

    def __init__(self, quantity: str, value: float, threshold: float, hint: str = ""):
        self.quantity = quantity
        self.value = float(value)
        self.threshold = float(threshold)
        msg = f"degenerate geometry: {quantity} = {self.value:.3e} < threshold {self.threshold:.3e}"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class SolverError(OracleError, RuntimeError):
    """A numerical solver failed to produce a certified answer.

    Attributes
    ----------
    status : str
        Solver status string (e.g. ``"optimal_inaccurate"``, ``"max_iterations"``).
    figures : dict
        The measured certificate figures (gap, residuals, iterations, ...).
    """

    def __init__(self, message: str, status: str = "", figures: dict[str, Any] | None = None):
        self.status = status
        self.figures = dict(figures or {})
        extra = ", ".join(f"{k}={v:.3e}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.figures.items())
        super().__init__(message + (f" [status={status}]" if status else "")
                         + (f" ({extra})" if extra else ""))


class NotAvailableError(OracleError, ImportError):
    """An optional dependency or a capability is not available here."""
