"""Shared machinery of the claim checks: tolerance model, slope fits, generators, figures.

Tolerance model (CLAIMS.md §0.2):

* exact identities in float64: ``|lhs − rhs| ≤ c·u·n_eff·scale`` with u = 2⁻⁵³, c = 100,
  n_eff = max(m, n) (:func:`exact_tol`);
* Taylor-slope tests: fit log e(t) on log t over t ∈ [1e-3, 1e-1], dropping points with
  e(t) < 10³·u·scale; slope within ±0.05 of the order (±0.02 where stated) and e(t)/t^p varying
  by ≤ 10 % (:func:`slope_check`);
* Monte Carlo: within ±4 standard errors plus a stated model-bias allowance (:func:`mc_check`);
* rate laws: log–log slope within ±0.1 over ≥ 1.5 decades.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

F64 = NDArray[np.float64]
U64 = 2.0 ** -53  # float64 unit roundoff
C_EXACT = 100.0  # the constant c of the exact-identity bound

__all__ = [
    "U64",
    "exact_tol",
    "SlopeFit",
    "fit_slope",
    "slope_check",
    "mc_check",
    "T_GRID",
    "haar",
    "with_spectrum",
    "unit",
    "new_figure",
    "loglog_panel",
]

#: the Taylor grid of CLAIMS.md §0.2: t ∈ [1e-3, 1e-1], 9 points per 2 decades
T_GRID: F64 = np.logspace(-3, -1, 9)


def exact_tol(n_eff: int, scale: float, c: float = C_EXACT) -> float:
    """c·u·n_eff·scale (CLAIMS.md §0.2, exact identities in float64)."""
    return float(c * U64 * max(int(n_eff), 1) * float(scale))


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit of log e on log t, plus the spread of e/t^p (p = expected order)."""

    slope: float
    intercept: float
    ratio_spread: float  # max(e/t^p)/min(e/t^p) − 1 over the kept points
    kept: int


def fit_slope(t: F64, e: F64, order: float, floor: float = 0.0) -> SlopeFit:
    """Fit over the points with e > floor (the 10³·u·scale rounding floor)."""
    t = np.asarray(t, dtype=float)
    e = np.asarray(e, dtype=float)
    keep = (e > floor) & np.isfinite(e) & (t > 0)
    if keep.sum() < 3:
        return SlopeFit(float("nan"), float("nan"), float("inf"), int(keep.sum()))
    lt, le = np.log(t[keep]), np.log(e[keep])
    slope, icpt = np.polyfit(lt, le, 1)
    r = e[keep] / t[keep] ** order
    return SlopeFit(float(slope), float(icpt), float(r.max() / r.min() - 1.0), int(keep.sum()))


def slope_check(t: F64, e: F64, order: float, tol: float = 0.05, floor: float = 0.0,
                spread_tol: float | None = 0.10) -> tuple[bool, SlopeFit]:
    """Slope within ±tol of ``order`` and (if ``spread_tol``) e/t^order varying by ≤ spread_tol."""
    fit = fit_slope(t, e, order, floor)
    ok = bool(np.isfinite(fit.slope) and abs(fit.slope - order) <= tol)
    if spread_tol is not None:
        ok = ok and fit.ratio_spread <= spread_tol
    return ok, fit


def mc_check(estimate: float, stderr: float, expected: float, bias_allow: float = 0.0,
             k: float = 4.0) -> tuple[bool, float]:
    """|estimate − expected| ≤ k·stderr + bias_allow·|expected|; returns (ok, bound)."""
    bound = k * float(stderr) + bias_allow * abs(float(expected))
    return bool(abs(float(estimate) - float(expected)) <= bound), float(bound)


def haar(rng: np.random.Generator, n: int) -> F64:
    """Haar-random orthogonal n×n (QR of a Gaussian with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))[None, :]


def with_spectrum(rng: np.random.Generator, sigma: F64, shape: tuple[int, int]) -> F64:
    """Q₁·diag(σ)·Q₂ᵀ with Haar factors (CLAIMS.md §0.1); len(σ) ≤ min(shape)."""
    m, n = shape
    k = len(sigma)
    q1 = haar(rng, m)[:, :k]
    q2 = haar(rng, n)[:, :k]
    return (q1 * np.asarray(sigma, dtype=float)[None, :]) @ q2.T


def unit(x: F64) -> F64:
    """x/‖x‖_F."""
    return x / np.linalg.norm(x)


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, list]:
    """A figure with ``ncols`` axes (Agg backend, never shown)."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def loglog_panel(ax, t: F64, curves: dict[str, F64], title: str, xlabel: str = "t",
                 ylabel: str = "error", ref_orders: tuple[float, ...] = ()) -> None:
    """Log–log curves plus dashed reference slopes through the first curve's last point."""
    first = None
    for label, e in curves.items():
        e = np.asarray(e, dtype=float)
        pos = e > 0
        ax.loglog(np.asarray(t)[pos], e[pos], "o-", ms=3, label=label)
        if first is None:
            first = e
    if first is not None and ref_orders:
        t = np.asarray(t, dtype=float)
        for p, ls in zip(ref_orders, ("--", ":", "-.", (0, (1, 3)))):
            ax.loglog(t, first[-1] * (t / t[-1]) ** p, ls=ls, lw=0.8, color="gray", label=f"reference slope {p:g}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
