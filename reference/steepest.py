"""Steepest unit step in a norm, tangent to a manifold: exact solvers and certificates (MATH §6).

The subproblem (MATH §6.1), for W ∈ M with linear tangent space T_W = ker 𝓛:

    (P)  maximise ⟨G, A⟩  s.t.  ‖A‖ ≤ 1,  A ∈ T_W M          (Φ* = argmax; the step is −ηΦ*)
    (D)  minimise over y:  ‖G + 𝓛*(y)‖^†                       (spectral ↔ nuclear, Frobenius self-dual)

:func:`steepest_direction` returns a :class:`SteepestResult` holding the direction, the primal value,
the multiplier y, the dual value ‖G + 𝓛*(y)‖^† (recomputed by SVD in float64), the gap and solver
figures. :func:`certify` re-checks a result independently of the solver that produced it and raises
:class:`SolverError` when a certificate fails.

Multiplier conventions (the dual value is always ‖G + 𝓛*(y)‖^†, see :func:`adjoint`):

===============================  =====================  ===========================================
manifold                         multiplier shape       𝓛*(y)
===============================  =====================  ===========================================
Euclidean                        ``(0,)``               0
Sphere (vector, as 1×n)          ``()``                 λ·w/‖w‖₂
FrobeniusSphere                  ``()``                 λ·Θ, Θ = W/‖W‖_F (unit normal)
SpectralSphere (simple σ₁)       ``()``                 λ·Θ, Θ = u₁v₁ᵀ
SpectralSphere strict, mult. q   ``(q, q)`` symmetric   U₁·Y·V₁ᵀ, (U₁, V₁) = ``normal_frame(W)``
Oblique rows / cols              ``(m,)`` / ``(n,)``    diag(μ)·W / W·diag(μ)
Stiefel, Orthogonal (tall m≥n)   ``(n, n)`` symmetric   W·S
Stiefel (wide m<n)               ``(m, m)`` symmetric   S·W
===============================  =====================  ===========================================

What is exact where (MATH §6.10), and what ``method="auto"`` picks:

* Frobenius norm, every manifold: ``projection`` Φ* = P_WG/‖P_WG‖_F (closed form).
* Spectral norm, Euclidean: ``msign``. Any manifold with min(m, n) = 1: ‖·‖₂ = ‖·‖_F, so
  ``projection`` is exact (this covers the vector sphere and single-row/column oblique points).
* Norm spheres (one multiplier): the 1-D dual is solved to machine precision by ``brent`` (auto) or
  ``bisection``, with the kink completion of MATH §6.4 item 6; ``su_fixed_point`` and
  ``su_qinv_free`` are exact when they converge and raise otherwise; ``commuting`` is the closed
  form for G sharing W's singular bases.
* Spectral sphere with a repeated σ₁ (``degenerate="strict"``): the q(q+1)/2 multipliers Y are
  found by cvxpy (auto); ``su_two_multiplier`` is Su's basis-dependent variant (a baseline: it only
  imposes diag(U₁ᵀΦV₁) = 0).
* Oblique, spectral norm: **no closed form**. The multipliers decouple per row/column only for the
  Frobenius norm. Exact here: the cvxpy SDP with its certificate (auto), and the dual value
  ‖G + diag(μ)W‖_* of *any* μ as an upper bound; ``dual_subgradient`` is a baseline whose gap is
  reported, not assumed.
* Square Stiefel / O(n): ``orthogonal`` W·msign(skew(WᵀG)) (closed form; for odd n Φ* is rank
  deficient). Non-square Stiefel: ``stiefel_newton`` (auto; Newton–CG on the reduced dual
  min_S ‖[TᵀG + S; B̃]‖_*, :mod:`reference.stiefel_dual`, with a smoothing continuation where a
  damped step stalls in a kink valley; Newton iterations independent of n; certified gap
  ≤ 1e-14 typical) and ``su_lyapunov`` (Anderson-accelerated Su fixed point, the baseline it
  replaces: iterations grow ~linearly with n), both exact (certified gap ≤ 2e-11 measured,
  1e-15…1e-13 typical) where G + WS* has full rank; at a kink they raise, and auto (also when the
  fast answer's certificate fails: gap > 1e-10, tangency > 1e-8) hands the instance to cvxpy,
  saying so in the result, whose certified gap is then the cvxpy level
  (~1e-9…1e-8), not ~1e-12. Measured (8 random instances per shape, tall orientation m > n):
  the optimum is at a kink on every instance with n < m < 2n and 2n − m odd (5×4, 7×4, 7×5, 7×6,
  9×5 and their transposes; the analogue of odd square n, where skew(WᵀG) is singular), and on
  none with m ≥ 2n or 2n − m even (6×4, 8×4, 14×8, 12×5, 7×3, 16×3, 30×12). ``dual_ascent`` is the
  Manifold-Muon baseline.

Method names are listed in :data:`METHODS`. Exact methods raise
:class:`SolverError` when they do not converge; the *baselines* (``dual_ascent``,
``dual_subgradient``, ``su_two_multiplier``) return their last iterate with an honest ``status``
and a per-iteration ``history`` instead, and :func:`certify` rejects them when they are not optimal.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from ._validate import as_matrix, count, nonnegative_scalar, positive_scalar
from .errors import DegenerateGeometryError, InvalidInputError, SolverError
from .linalg import msign
from .manifolds import Manifold
from .stiefel_dual import stiefel_newton
from .subproblem import (
    EPS,
    NORMS,
    SteepestResult,
    TangentGeometry,
    as_gradient,
    build_result,
    check_norm,
    degenerate_completion,
    dual_norm,
    primal_norm,
    relative_gap,
)

F64 = NDArray[np.float64]

__all__ = [
    "MethodInfo",
    "METHODS",
    "NORMS",
    "SteepestResult",
    "Certificate",
    "steepest_direction",
    "certify",
    "adjoint",
    "dual_norm",
    "primal_norm",
    "nuclear_h",
    "degenerate_completion",
    "weighted_median",
]

@dataclass(frozen=True)
class MethodInfo:
    """Registry entry: what a method solves and whether it is exact.

    ``manifolds``: the canonical kinds (:mod:`reference.kinds`) it applies to; ``("*",)`` = every
    kind whose class builds a tangent constraint."""

    name: str
    description: str
    norms: tuple[str, ...]
    manifolds: tuple[str, ...]
    exact: bool
    baseline: bool = False


#: ``manifolds`` entry meaning "every manifold kind whose class gives a tangent constraint"
_ALL = ("*",)

#: Public registry of method names (the strings accepted by ``steepest_direction(method=...)``).
METHODS: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo("auto", "exact fast solver where one exists (MATH §6.10), cvxpy otherwise; on non-square "
               "Stiefel, an instance where stiefel_newton fails (kink: G + WS singular) or whose "
               "certificate fails is handed to cvxpy and the result says so (method='cvxpy', notes)",
               NORMS, _ALL, True),
    MethodInfo("msign", "closed form Φ* = msign(G), value ‖G‖_* (MATH §6.3)",
               ("spectral",), ("euclidean",), True),
    MethodInfo("projection", "closed form P_W G/‖P_W G‖_F (MATH §6.2); for the spectral norm only when "
               "min(m, n) = 1 (then ‖·‖₂ = ‖·‖_F)", NORMS, _ALL, True),
    MethodInfo("orthogonal", "closed form W·msign(skew(WᵀG)) on square Stiefel/O(n) (MATH §6.7)",
               ("spectral",), ("stiefel", "orthogonal"), True),
    MethodInfo("commuting", "commuting closed form on norm spheres: weighted median (M_F) or λ* = −g₁ "
               "(M_S) (MATH §6.4 item 5); raises if G does not commute with W",
               ("spectral",), ("frobenius_sphere", "spectral_sphere"), True),
    MethodInfo("bisection", "bracketed bisection on h(λ) = ⟨Θ, msign(G + λΘ)⟩, no expansion cap, no λ = 0 "
               "fallback, degenerate completion at a kink (MATH §6.4 items 1, 6)",
               ("spectral",), ("sphere", "frobenius_sphere", "spectral_sphere"), True),
    MethodInfo("brent", "same bracket as bisection, then Brent's method on h (fewer SVDs)",
               ("spectral",), ("sphere", "frobenius_sphere", "spectral_sphere"), True),
    MethodInfo("su_fixed_point", "Su's fixed point λ ← −tr(ΘᵀGQ⁻¹)/tr(ΘᵀΘQ⁻¹) (MATH §6.4 item 2); "
               "raises DegenerateGeometryError when G + λΘ loses column rank and SolverError when it "
               "does not converge (measured: a few % of small square instances)",
               ("spectral",), ("sphere", "frobenius_sphere", "spectral_sphere"), True),
    MethodInfo("su_qinv_free", "Su's Q⁻¹-free iteration (MATH §6.4 item 3); not guaranteed to converge "
               "(measured: it cycles on ~10-17% of random 5×4/4×5 instances): raises SolverError then",
               ("spectral",), ("sphere", "frobenius_sphere", "spectral_sphere"), True),
    MethodInfo("su_two_multiplier", "Su's multi-multiplier variant for a repeated σ₁: imposes only "
               "diag(U₁ᵀΦV₁) = 0 in the SVD basis (basis dependent; MATH §4.4, §6.8). Baseline.",
               ("spectral",), ("spectral_sphere",), False, True),
    MethodInfo("su_lyapunov", "Su's Lyapunov fixed point on (scaled) Stiefel (MATH §6.6 item 1): exact "
               "(gap ≤ 2e-11) where G + WS* has full rank; raises at a kink, which random non-square "
               "instances with n < m < 2n and 2n − m odd always hit (auto then uses cvxpy, ~1e-9)",
               ("spectral",), ("stiefel", "orthogonal"), True),
    MethodInfo("stiefel_newton", "Newton–CG on the reduced Stiefel dual min_S ‖[TᵀG + S; B̃]‖_* "
               "(reference.stiefel_dual; MATH §6.6): exact (certified like su_lyapunov) where G + WS* "
               "has full rank, Newton iterations independent of n; raises at a kink (auto then uses "
               "cvxpy)", ("spectral",), ("stiefel", "orthogonal"), True),
    MethodInfo("dual_ascent", "Manifold-Muon dual ascent, defaults α = 0.01, J = 100, tol = 1e-6 "
               "(MATH §6.6 item 2). Baseline: convergence reported, not assumed.",
               ("spectral",), ("stiefel", "orthogonal"), False, True),
    MethodInfo("dual_subgradient", "diminishing-step subgradient descent on the oblique dual μ "
               "(MATH §6.5). Baseline: gap reported, not assumed.",
               ("spectral",), ("oblique_rows", "oblique_cols"), False, True),
    MethodInfo("cvxpy", "SDP/SOCP with Clarabel (small) or SCS eps ≤ 1e-9 (MATH §6.9), certified",
               NORMS, _ALL, True),
)}


@dataclass(frozen=True)
class Certificate:
    """Float64 re-check of a :class:`SteepestResult` (MATH §6.9 items 2–5), independent of the solver.

    ``feasibility`` = ‖A‖ − 1 (norm of the problem), ``tangency`` = manifold tangency residual,
    ``primal`` = ⟨G, A⟩, ``dual`` = ‖G + 𝓛*(y)‖^† by SVD, ``gap`` = (dual − primal)/max(1, |dual|).
    ``failures`` lists the violated checks (empty iff ``passed``).
    """

    primal: float
    dual: float
    gap: float
    feasibility: float
    tangency: float
    passed: bool
    failures: tuple[str, ...]
    tolerances: dict[str, float]


# ------------------------------------------------------------------------------------------------
# geometry: normals and adjoints
# ------------------------------------------------------------------------------------------------


def _sv(X: F64) -> F64:
    return np.linalg.svd(X, compute_uv=False)


def adjoint(manifold: Manifold, W: ArrayLike, y: ArrayLike) -> F64:
    """𝓛*(y) at W for ``manifold`` (shape of W); conventions in the module docstring."""
    g = TangentGeometry(manifold, W)
    return g.to_output(g.adjoint(np.asarray(y, dtype=np.float64)))


# ------------------------------------------------------------------------------------------------
# certificate
# ------------------------------------------------------------------------------------------------


def certify(manifold: Manifold, W: ArrayLike, G: ArrayLike, result: SteepestResult, norm: str | None = None,
            *, feas_tol: float = 1e-7, tangency_tol: float = 1e-8, gap_tol: float = 1e-6,
            raise_on_failure: bool = True) -> Certificate:
    """Independent float64 certificate of ``result`` (MATH §6.9 items 2–5).

    Recomputes ‖A‖ (SVD), the tangency residual, p = ⟨G, A⟩, d = ‖G + 𝓛*(y)‖^† from
    ``result.multiplier`` and the relative gap (d − p)/max(1, |d|). Checks ‖A‖ ≤ 1 + ``feas_tol``
    (CLAIMS §0.2: 1e-7), tangency ≤ ``tangency_tol`` and −``gap_tol`` ≤ gap ≤ ``gap_tol`` (a gap
    below −gap_tol violates weak duality, so A cannot be feasible). Raises :class:`SolverError`
    with the figures on failure unless ``raise_on_failure=False``.
    """
    if not isinstance(result, SteepestResult):
        raise InvalidInputError(f"result must be a SteepestResult, got {type(result).__name__}")
    feas_tol, tangency_tol, gap_tol = (nonnegative_scalar(v, n) for v, n in (
        (feas_tol, "feas_tol"), (tangency_tol, "tangency_tol"), (gap_tol, "gap_tol")))
    nrm = check_norm(norm if norm is not None else result.norm)
    geo = TangentGeometry(manifold, W)
    g = as_gradient(geo, G)
    try:
        A = np.asarray(result.direction, dtype=np.float64).reshape(geo.shape)
        y = np.asarray(result.multiplier, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"result: direction/multiplier do not fit W of shape {geo.shape} ({exc})") from exc
    if not np.all(np.isfinite(A)):
        raise SolverError("certificate: the direction has non-finite entries", result.status)
    if not np.all(np.isfinite(y)):
        raise SolverError("certificate: the multiplier has non-finite entries (no dual bound)", result.status)
    feas = primal_norm(A, nrm) - 1.0
    tang = geo.tangency(A)
    p = float(np.sum(g * A))
    d = dual_norm(g + geo.adjoint(y), nrm)
    gap = relative_gap(d, p)
    fails = []
    if not feas <= feas_tol:
        fails.append(f"feasibility ‖A‖−1 = {feas:.3e} > {feas_tol:.1e}")
    if not tang <= tangency_tol:
        fails.append(f"tangency {tang:.3e} > {tangency_tol:.1e}")
    if not gap <= gap_tol:
        fails.append(f"duality gap {gap:.3e} > {gap_tol:.1e}")
    if not gap >= -gap_tol:
        fails.append(f"negative gap {gap:.3e} < −{gap_tol:.1e} (weak duality violated: A infeasible)")
    cert = Certificate(p, d, gap, feas, tang, not fails, tuple(fails),
                       {"feas_tol": feas_tol, "tangency_tol": tangency_tol, "gap_tol": gap_tol})
    if fails and raise_on_failure:
        raise SolverError(f"certificate failed for method {result.method!r}: " + "; ".join(fails),
                          result.status, {"primal": p, "dual": d, "gap": gap, "feasibility": feas,
                                          "tangency": tang})
    return cert


# ------------------------------------------------------------------------------------------------
# result assembly
# ------------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------------


def _projection(geo: TangentGeometry, G: F64) -> tuple[F64, F64]:
    """Φ* = P_W G/‖P_W G‖_F and the multiplier with G + 𝓛*(y) = P_W G (MATH §6.2)."""
    P = geo.project(G)
    nP = float(np.linalg.norm(P))
    return (P / nP if nP > 0 else np.zeros_like(P)), geo.normal_multiplier(G)


def _orthogonal(geo: TangentGeometry, G: F64) -> tuple[F64, F64, str]:
    """Square (scaled) orthogonal: Φ* = W·msign(skew(WᵀG))/s (MATH §6.7), S = −sym(WᵀG)/s²."""
    m, n = geo.shape
    if geo.family != "gram" or m != n:
        raise InvalidInputError("method 'orthogonal' needs a square Stiefel/Orthogonal point")
    s = geo.constraint.scale
    X = geo.w.T @ G
    K = 0.5 * (X - X.T)
    Phi = geo.w @ msign(K) / s
    note = ""
    if n % 2 == 1:
        note = ("odd n: skew(WᵀG) has rank ≤ n−1, so Φ* is rank deficient and the retraction "
                "(W − ηΦ)/√(1+η²) is not exact (MATH §6.7)")
    return Phi, -0.5 * (X + X.T) / s**2, note


def weighted_median(values: ArrayLike, weights: ArrayLike) -> tuple[float, float]:
    """Interval [lo, hi] of weighted medians: minimisers of Σ wᵢ|x − vᵢ| (wᵢ > 0).

    lo = hi when the median is unique; otherwise every point of [lo, hi] minimises.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if v.size == 0 or v.size != w.size or np.any(w <= 0) or not np.all(np.isfinite(v)):
        raise InvalidInputError("weighted_median needs equal-length finite values and positive weights")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    total = float(np.sum(w))
    cum = np.cumsum(w)
    k = int(np.searchsorted(cum, 0.5 * total - 1e-15 * total))
    # cum[k] ≥ total/2: if exactly half (within rounding) every point of [v_k, v_{k+1}] minimises
    if k + 1 < v.size and abs(cum[k] - 0.5 * total) <= 8 * EPS * total:
        return float(v[k]), float(v[k + 1])
    return float(v[k]), float(v[k])


def _commuting(geo: TangentGeometry, G: F64, tol: float) -> tuple[F64, F64, str]:
    """Commuting closed forms on the norm spheres (MATH §6.4 item 5)."""
    if geo.kind == "frobenius_sphere":
        U, w, Vt = np.linalg.svd(geo.w, full_matrices=False)
        V = Vt.T
        # W's singular bases are arbitrary inside a cluster of equal wᵢ: rotate them jointly so that
        # G's block becomes diagonal (possible iff the block is symmetric; for wᵢ = 0 any SVD does)
        k = w.size
        start = 0
        while start < k:
            stop = start + 1
            while stop < k and w[start] - w[stop] <= 1e-12 * w[0]:
                stop += 1
            if stop - start > 1:
                sl = slice(start, stop)
                C = U[:, sl].T @ G @ V[:, sl]
                if w[start] <= 1e-12 * w[0]:
                    P, _, Qt = np.linalg.svd(C)
                    U[:, sl], V[:, sl] = U[:, sl] @ P, V[:, sl] @ Qt.T
                else:
                    _, P = np.linalg.eigh(0.5 * (C + C.T))
                    U[:, sl], V[:, sl] = U[:, sl] @ P, V[:, sl] @ P
            start = stop
        Vt = V.T
        g = np.einsum("ik,ij,jk->k", U, G, V)  # diag(Uᵀ G V)
        nG = float(np.linalg.norm(G))
        resid = float(np.linalg.norm(G - (U * g) @ Vt))
        if not resid <= tol * max(nG, np.finfo(float).tiny):
            raise InvalidInputError(f"method 'commuting': G does not share W's singular bases "
                                    f"(‖G − U·diag(UᵀGV)·Vᵀ‖_F/‖G‖_F = {resid / nG:.2e} > {tol:.1e})")
        pos = w > 0
        R = float(np.linalg.norm(w))
        lo, hi = weighted_median(-g[pos] / w[pos], w[pos])
        lam_w = 0.5 * (lo + hi)
        r = g + lam_w * w
        s = np.sign(r)
        # kink: terms with gᵢ + λwᵢ = 0 (up to rounding) take a common value c ∈ [−1, 1] restoring
        # tangency Σ wᵢ sᵢ = 0 (the completion of MATH §6.4 item 6 in the shared basis)
        scale_i = 8 * EPS * (np.abs(g) + abs(lam_w) * w)
        zero = (np.abs(r) <= scale_i) & pos
        note = ""
        if lo == hi and np.any(zero):
            s[zero] = 0.0
            c = -float(np.sum(w * s)) / float(np.sum(w[zero]))
            s[zero] = np.clip(c, -1.0, 1.0)
            note = "kink: weighted median attained at a data point; completed on the tied terms"
        s[(~pos) & (np.abs(g) == 0)] = 0.0
        Phi = (U * s) @ Vt
        return Phi, np.asarray(R * lam_w), note
    if geo.kind == "spectral_sphere":
        u = geo.constraint.U1[:, 0]
        v = geo.constraint.V1[:, 0]
        g1 = float(u @ G @ v)
        r1 = np.linalg.norm(G @ v - g1 * u)
        r2 = np.linalg.norm(G.T @ u - g1 * v)
        if not max(r1, r2) <= tol * max(np.linalg.norm(G), np.finfo(float).tiny):
            raise InvalidInputError("method 'commuting': (u₁, v₁) of W is not a singular pair of G "
                                    f"(residual {max(r1, r2):.2e})")
        return msign(G - g1 * geo.constraint.theta), np.asarray(-g1), ""
    raise InvalidInputError("method 'commuting' applies to FrobeniusSphere and SpectralSphere only")


# ------------------------------------------------------------------------------------------------
# one-dimensional dual on the norm spheres (MATH §6.4)
# ------------------------------------------------------------------------------------------------


def nuclear_h(G: ArrayLike, Theta: ArrayLike, lam: float) -> float:
    """h(λ) = ⟨Θ, msign(G + λΘ)⟩, the derivative of λ ↦ ‖G + λΘ‖_* where it exists (MATH §6.4)."""
    g = as_matrix(G, "G")
    th = as_matrix(Theta, "Theta")
    return float(np.sum(th * msign(g + float(lam) * th)))


def _htol_eff(htol: float, s: F64) -> float:
    """Tangency floor of msign(Z) at condition number κ(Z): max(htol, 16·k·ε·κ), at most 1e-10."""
    kappa = float(s[0] / s[-1]) if s[-1] > 0 else np.inf
    return max(htol, min(16 * s.size * EPS * kappa, 1e-10))


def _finish_1d(geo: TangentGeometry, G: F64, lam: float, htol: float) -> tuple[F64, str, str]:
    """Φ = msign(G + λΘ), with the kink completion when |⟨Θ, Φ⟩| exceeds the tangency floor."""
    th = geo.constraint.theta
    Z = G + lam * th
    Phi = msign(Z)
    if abs(float(np.sum(th * Phi))) <= _htol_eff(htol, _sv(Z)):
        return Phi, "optimal", ""
    Phi, r = degenerate_completion(Z, th)
    return Phi, "optimal_degenerate", (f"kink: G + λ*Θ has numerical rank {r} < {min(G.shape)}; "
                                       "direction completed in its kernel (MATH §6.4 item 6)")


def _bracket(h: Callable[[float], float], lam0: float, h0: float, delta: float,
             history: list[float]) -> tuple[float, float, float, float, int]:
    """Bracket a sign change of the non-decreasing h around lam0 by doubling, without a cap."""
    evals = 0
    if h0 > 0:
        hi, hhi = lam0, h0
        step = delta
        while True:
            lo = lam0 - step
            if not np.isfinite(lo):
                raise SolverError("bracketing of h(λ) left the finite range", "bracket_failed",
                                  {"lambda0": lam0, "step": step})
            hlo = h(lo)
            evals += 1
            history.append(abs(hlo))
            if hlo <= 0:
                return lo, hi, hlo, hhi, evals
            hi, hhi = lo, hlo
            step *= 2.0
    lo, hlo = lam0, h0
    step = delta
    while True:
        hi = lam0 + step
        if not np.isfinite(hi):
            raise SolverError("bracketing of h(λ) left the finite range", "bracket_failed",
                              {"lambda0": lam0, "step": step})
        hhi = h(hi)
        evals += 1
        history.append(abs(hhi))
        if hhi >= 0:
            return lo, hi, hlo, hhi, evals
        lo, hlo = hi, hhi
        step *= 2.0


def _solve_1d(geo: TangentGeometry, G: F64, method: str, opts: dict[str, Any]) -> tuple[F64, float, str, int, list[float], str]:
    th = geo.constraint.theta
    k = min(G.shape)
    htol = float(opts.get("htol", 16 * k * EPS))
    max_iters = int(opts.get("max_iters", 1000))
    lam0 = -float(np.sum(th * G)) / float(np.sum(th * th))
    history: list[float] = []

    def h(lam: float) -> float:
        return float(np.sum(th * msign(G + lam * th, refine=False)))

    if method in ("bisection", "brent"):
        h0 = h(lam0)
        history.append(abs(h0))
        evals = 1
        if abs(h0) <= htol:
            lam = lam0
        else:
            delta = float(_sv(G)[0])  # λ's natural scale; G ≠ 0 here
            lo, hi, hlo, hhi, e = _bracket(h, lam0, h0, delta, history)
            evals += e
            if hlo == 0:
                lam = lo
            elif hhi == 0:
                lam = hi
            elif method == "brent":
                xtol = 4 * EPS * max(abs(lo), abs(hi), delta) * 1e-3
                lam, rr = brentq(h, lo, hi, xtol=xtol, rtol=4 * EPS, maxiter=max_iters,
                                 full_output=True, disp=False)
                evals += rr.function_calls
                if not rr.converged:
                    raise SolverError("Brent's method on h(λ) did not converge", "max_iterations",
                                      {"iterations": rr.iterations, "lo": lo, "hi": hi})
            else:
                it = 0
                while True:
                    mid = 0.5 * (lo + hi)
                    if mid <= lo or mid >= hi:
                        break
                    hm = h(mid)
                    evals += 1
                    history.append(abs(hm))
                    if abs(hm) <= htol:
                        lo = hi = mid
                        break
                    if hm < 0:
                        lo = mid
                    else:
                        hi = mid
                    it += 1
                    if it > max_iters:
                        raise SolverError("bisection on h(λ) exceeded max_iters", "max_iterations",
                                          {"iterations": it, "width": hi - lo})
                lam = 0.5 * (lo + hi)
        Phi, status, note = _finish_1d(geo, G, lam, htol)
        return Phi, lam, status, evals, history, note

    # Su's fixed point needs Q⁻¹, so it works on the tall orientation (transposed problem for wide
    # G); the Q⁻¹-free iteration uses G as given, n_c = its number of columns (MATH §6.4 item 3;
    # measured: on wide G its transposed form can cycle while the as-given form converges)
    tall = G.shape[0] >= G.shape[1] or method == "su_qinv_free"
    Gt, Tt = (G, th) if tall else (G.T, th.T)
    nc = Gt.shape[1]
    ThG = float(np.sum(Tt * Gt))
    ThTh = float(np.sum(Tt * Tt))
    lam = lam0
    scale = float(np.linalg.norm(G))
    max_iters = int(opts.get("max_iters", 20000))
    stalled = 0
    for it in range(1, max_iters + 1):
        Z = Gt + lam * Tt
        U, s, Vt = np.linalg.svd(Z, full_matrices=False)
        full = s.size == min(Z.shape) and s[-1] > max(Z.shape) * EPS * s[0]
        if full and abs(float(np.sum(Tt * (U @ Vt)))) <= _htol_eff(htol, s):
            Phi, status, note = _finish_1d(geo, G, lam, htol)
            return Phi, lam, status, it - 1, history, note
        if method == "su_fixed_point":
            if not full:
                raise DegenerateGeometryError(
                    "σ_min(G + λΘ)/σ₁ in Su's fixed point", s[-1] / s[0] if s[0] > 0 else 0.0,
                    max(Z.shape) * EPS, "Q⁻¹ is undefined: G + λΘ lost column rank (a kink); "
                    "use method='brent' (bracketing with the degenerate completion)")
            V = Vt.T
            a = np.sum((V.T @ (Tt.T @ Gt) @ V).diagonal() / s)
            b = np.sum((V.T @ (Tt.T @ Tt) @ V).diagonal() / s)
            new = -a / b
        else:  # su_qinv_free
            Phi = msign(Z, refine=False)
            q = Z.T @ Phi
            x = Tt.T @ Phi
            new = (float(np.sum(x * q)) - np.trace(x) * np.trace(q) / nc - ThG) / ThTh
        history.append(abs(new - lam))
        if not np.isfinite(new):
            raise SolverError(f"{method}: non-finite multiplier", "diverged", {"iteration": it})
        stalled = stalled + 1 if abs(new - lam) <= 4 * EPS * max(abs(new), scale) else 0
        lam = float(new)
        if stalled >= 3:  # the iteration no longer moves λ: accept it if the certificate holds
            Phi, status, note = _finish_1d(geo, G, lam, htol)
            return Phi, lam, status, it, history, note
    raise SolverError(f"{method} did not converge in {max_iters} iterations", "max_iterations",
                      {"iterations": max_iters, "last_step": history[-1] if history else float("nan"),
                       "lambda": lam})


# ------------------------------------------------------------------------------------------------
# Stiefel (MATH §6.6)
# ------------------------------------------------------------------------------------------------


def _stiefel_tall(geo: TangentGeometry, G: F64) -> tuple[F64, F64, bool]:
    """(T, Gt, wide): T = W/s in tall orientation (orthonormal columns), Gt = G or Gᵀ."""
    if geo.constraint.wide:
        return geo.w.T / geo.constraint.scale, G.T, True
    return geo.w / geo.constraint.scale, G, False


def _sym(a: F64) -> F64:
    return 0.5 * (a + a.T)


def _lyapunov_map(T: F64, Gt: F64, TtG: F64, S: F64) -> tuple[F64, float, float, F64]:
    """One step of Su's fixed point: (S_next, tangency residual, κ(Z), Φ) at Z = Gt + T·S."""
    Z = Gt + T @ S
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    Phi = U @ Vt
    res = float(np.linalg.norm(_sym(T.T @ Phi))) / max(float(np.linalg.norm(Phi)), np.finfo(float).tiny)
    V = Vt.T
    Q = (V * s) @ Vt
    R = _sym(Q @ TtG)
    denom = s[:, None] + s[None, :]
    # Su: where σᵢ + σⱼ = 0 the numerator vanishes too; a tiny positive denominator is used
    denom = np.where(denom > 0, denom, max(float(s[0]), 1.0) * EPS)
    S_next = _sym(-2.0 * V @ ((V.T @ R @ V) / denom) @ V.T)
    kappa = float(s[0] / s[-1]) if s[-1] > 0 else np.inf
    return S_next, res, kappa, Phi


def _su_lyapunov(geo: TangentGeometry, G: F64, opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str]:
    """:func:`_su_lyapunov_run`; when the Anderson-accelerated run ends without a tangent answer
    (stalled, not tangent, iteration cap), Su's plain iteration is run once before raising: the
    extrapolation can stall at a residual floor (measured ~2e-10 on a regular 4×3 instance) that the
    plain contraction passes (there: 87 iterations, gap 8e-13). A rank-deficient iterate (a kink)
    raises at once."""
    if str(opts.get("accelerate", "anderson")) != "anderson":
        return _su_lyapunov_run(geo, G, opts)
    try:
        return _su_lyapunov_run(geo, G, opts)
    except SolverError as exc:
        if exc.status == "rank_deficient":
            raise
        first = exc
    try:
        A, S, its, hist, note = _su_lyapunov_run(geo, G, {**opts, "accelerate": "none"})
    except SolverError:
        raise first from None
    return A, S, its, hist, f"Anderson run {first.status}, plain iteration converged; " + note


def _su_lyapunov_run(geo: TangentGeometry, G: F64, opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str]:
    """Su's Lyapunov fixed point (MATH §6.6 item 1), optionally Anderson-accelerated.

    S ← −2·V·[(Vᵀ·sym(Q TᵀG)·V) ⊘ (σᵢ + σⱼ)]·Vᵀ with Z = G + T·S = UΣVᵀ, Q = VΣVᵀ, T = W/s,
    from S₀ = −sym(TᵀG). ``accelerate="anderson"`` (default; memory ``anderson_memory`` = 10)
    extrapolates the fixed-point map over the last iterates (type-II Anderson mixing, restarted
    when the residual grows); ``accelerate="none"`` is Su's plain iteration. Stops when the
    tangency residual ‖sym(TᵀΦ)‖_F/‖Φ‖_F ≤ max(``tol``, 64·n·ε·κ(Z)) (rounding floor of msign at
    condition number κ, capped at 1e-10); raises :class:`SolverError` after ``max_iters`` or when
    G + WS stays numerically singular (κ > 1/(1000ε) for 20 iterations: the optimum is at a kink,
    for which no Stiefel completion is implemented) or the residual stalls (no 10× improvement in
    ``stall_window`` = 300 iterations, what an approach to a kink looks like: measured on every
    random instance with n < m < 2n and 2n − m odd, see the module docstring; also seen near kinks
    with a numerically rank-deficient G, whose optimal multiplier is not unique). Where it converges
    the certified gap is small (measured over 8 instances per shape: ≤ 2e-11 at 8×4, ≤ 7e-12 at
    6×4, ≤ 5e-14 on 7×3 … 30×12).
    """
    T, Gt, wide = _stiefel_tall(geo, G)
    n = T.shape[1]
    tol = float(opts.get("tol", 64 * n * EPS))
    max_iters = int(opts.get("max_iters", 3000))
    accel = str(opts.get("accelerate", "anderson"))
    if accel not in ("anderson", "none"):
        raise InvalidInputError(f"accelerate must be 'anderson' or 'none', got {accel!r}")
    mem = int(opts.get("anderson_memory", 10))
    S = opts.get("S0")
    S = -_sym(T.T @ Gt) if S is None else np.array(S, dtype=np.float64)
    TtG = T.T @ Gt
    iu = np.triu_indices(n)
    history: list[float] = []
    xs: list[F64] = []
    fs: list[F64] = []
    best = np.inf
    it = 0
    converged = False
    best_S, best_res, extra, singular = S, np.inf, 0, 0
    for it in range(1, max_iters + 1):
        S_next, res, kappa, _ = _lyapunov_map(T, Gt, TtG, S)
        history.append(res)
        if res < best_res:
            best_S, best_res = S, res
        if kappa > 1.0 / (1e3 * EPS):
            singular += 1
            if singular >= 20:
                raise SolverError("su_lyapunov: G + WS is numerically rank deficient along the iteration "
                                  "(the optimum is at a kink, where msign(G + WS) is not the answer); "
                                  "use method='cvxpy'", "rank_deficient",
                                  {"iterations": it, "kappa": kappa, "tangency": res})
        else:
            singular = 0
        window = int(opts.get("stall_window", 300))
        if not converged and it > window and min(history[-window:]) > 0.1 * min(history[:-window]):
            raise SolverError(f"su_lyapunov stalled: the tangency residual did not improve 10× in "
                              f"{window} iterations", "stalled",
                              {"iterations": it, "tangency": res, "best": min(history), "kappa": kappa})
        if converged or res <= max(tol, min(64 * n * EPS * kappa, 1e-10)):
            # polish: a few more steps, keeping the iterate with the smallest residual
            converged = True
            extra += 1
            if extra > int(opts.get("polish_steps", 4)) or res == 0.0:
                break
        if accel == "none":
            S = S_next
            continue
        if res > 1e3 * best:  # safeguard: restart the Anderson memory
            xs.clear()
            fs.clear()
        best = min(best, res)
        x = S[iu]
        f = S_next[iu] - x
        xs.append(x)
        fs.append(f)
        if len(xs) > mem + 1:
            xs.pop(0)
            fs.pop(0)
        if len(xs) > 1:
            dF = np.diff(np.array(fs), axis=0).T
            dX = np.diff(np.array(xs), axis=0).T
            gam = np.linalg.lstsq(dF, f, rcond=None)[0]
            xn = x + f - (dX + dF) @ gam
        else:
            xn = x + f
        S = np.zeros((n, n))
        S[iu] = xn
        S = S + S.T - np.diag(np.diag(S))
    if not converged:
        raise SolverError(f"su_lyapunov did not reach tangency {tol:.1e} in {max_iters} iterations",
                          "max_iterations", {"iterations": max_iters, "tangency": history[-1]})
    S = best_S
    Phi = msign(Gt + T @ S)
    res = float(np.linalg.norm(_sym(T.T @ Phi))) / max(float(np.linalg.norm(Phi)), np.finfo(float).tiny)
    if not res <= max(tol, min(64 * n * EPS * kappa, 1e-10)):
        raise SolverError("su_lyapunov: msign(G + WS) is not tangent at the fixed point (G + WS is "
                          "rank deficient there); use method='cvxpy'", "not_tangent",
                          {"tangency": res, "iterations": it})
    S_out = S / geo.constraint.scale  # G + W·S_out = Gt + T·S (T = W/s)
    note = f"accelerate={accel}; κ(G + WS) = {kappa:.3e}; tangency {res:.1e}"
    return (Phi.T if wide else Phi), S_out, it, history, note


#: relative duality gap below which method="auto" accepts a fast Stiefel answer (measured |gap| ≤ 2e-14
#: on converged instances up to 512×256; tests/reference/test_stiefel_newton.py requires ≤ 1e-12;
#: cvxpy reaches ~1e-9)
_STIEFEL_GAP_TOL = 1e-10


def _stiefel_newton(geo: TangentGeometry, G: F64,
                    opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str, dict[str, Any]]:
    """Newton–CG on the reduced dual (:func:`reference.stiefel_dual.stiefel_newton`), then
    Φ = msign(G + T·S*) (unrefined: see the comment below) and the same tangency acceptance as
    :func:`_su_lyapunov`.
    Options: ``tol``, ``max_iters`` (Newton), ``max_cg``, ``S0`` (tall orientation, T = W/s).
    The last element is the result's ``extras``: Newton and CG iterations, SVD/eigh evaluations,
    smoothing stages and κ(G + WS) (:class:`reference.stiefel_dual.NewtonReport`)."""
    T, Gt, wide = _stiefel_tall(geo, G)
    n = T.shape[1]
    tol = float(opts.get("tol", 64 * n * EPS))
    S, rep, history = stiefel_newton(T, Gt, tol=tol, max_iters=int(opts.get("max_iters", 100)),
                                     max_cg=opts.get("max_cg"), S0=opts.get("S0"),
                                     point_tol=geo.manifold.point_tol)
    # unrefined msign: its error ~√n·u·κ(Z) (measured ≤ 6e-14 up to 512×256) is below the dual
    # solve's own tangency floor 64·n·u·κ (measured 8e-13 there), so the double-double refinement
    # (~10 SVDs' time at 512×256) would not change the certificate (measured: same gap/tangency)
    Phi = msign(Gt + T @ S, refine=False)
    res = float(np.linalg.norm(_sym(T.T @ Phi))) / max(float(np.linalg.norm(Phi)), np.finfo(float).tiny)
    if not res <= max(tol, min(64 * n * EPS * rep.kappa, 1e-10)):
        raise SolverError("stiefel_newton: msign(G + WS) is not tangent at the dual optimum (G + WS is "
                          "rank deficient there); use method='cvxpy'", "not_tangent",
                          {"tangency": res, "iterations": rep.newton_iterations, "kappa": rep.kappa})
    note = (f"Newton iterations {rep.newton_iterations}, CG iterations {rep.cg_iterations}, "
            f"SVD/eigh evaluations {rep.svds}; κ(G + WS) = {rep.kappa:.3e}; tangency {res:.1e}")
    extras = {"newton_iterations": rep.newton_iterations, "cg_iterations": rep.cg_iterations,
              "evaluations": rep.svds, "smoothing_stages": rep.smoothing_stages, "kappa": rep.kappa}
    return (Phi.T if wide else Phi), S / geo.constraint.scale, rep.newton_iterations, history, note, extras


def _dual_ascent(geo: TangentGeometry, G: F64, opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str]:
    """Manifold-Muon dual ascent (thinking-machines-lab/manifolds; MATH §6.6 item 2). Baseline."""
    T, Gt, wide = _stiefel_tall(geo, G)
    n = T.shape[1]
    alpha = float(opts.get("alpha", 0.01))
    J = int(opts.get("steps", opts.get("max_iters", 100)))
    tol = float(opts.get("tol", 1e-6))
    Lam = -0.25 * (T.T @ Gt + Gt.T @ T)
    history: list[float] = []
    A = msign(Gt + 2 * T @ Lam)
    status = "not_converged"
    it = 0
    for j in range(J):
        A = msign(Gt + 2 * T @ Lam)
        H = T.T @ A + A.T @ T
        r = float(np.linalg.norm(H)) / np.sqrt(n * n)
        history.append(r)
        it = j + 1
        if r < tol:
            status = "converged"
            break
        Lam = Lam - alpha * (1.0 - j / J) * H
    S_out = 2.0 * Lam / geo.constraint.scale
    note = (f"dual ascent α={alpha}, J={J}, tol={tol}: final ‖H‖_F/n = {history[-1]:.3e} "
            f"({status})")
    return (A.T if wide else A), S_out, it, history, note + "|" + status


# ------------------------------------------------------------------------------------------------
# oblique baseline (MATH §6.5)
# ------------------------------------------------------------------------------------------------


def _dual_subgradient(geo: TangentGeometry, G: F64, opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str]:
    rows = geo.constraint.axis == "rows"
    w = geo.w if rows else geo.w.T
    g = G if rows else G.T
    mu = -np.sum(g * w, axis=1) / np.sum(w * w, axis=1)
    max_iters = int(opts.get("max_iters", 2000))
    tol = float(opts.get("tol", 1e-10))
    alpha = float(opts.get("alpha", 0.1)) * float(_sv(g)[0]) / float(np.max(np.sum(w * w, axis=1)))
    best_d, best_mu = np.inf, mu.copy()
    best_p, best_A = -np.inf, np.zeros_like(g)
    history: list[float] = []
    status = "not_converged"
    it = 0
    for j in range(max_iters):
        Z = g + mu[:, None] * w
        Phi = msign(Z, refine=False)
        d = float(np.sum(_sv(Z)))
        if d < best_d:
            best_d, best_mu = d, mu.copy()
        P = Phi - (np.sum(Phi * w, axis=1) / np.sum(w * w, axis=1))[:, None] * w
        sp = float(_sv(P)[0])
        if sp > 0:
            P = P / max(1.0, sp)
            p = float(np.sum(g * P))
            if p > best_p:
                best_p, best_A = p, P
        gap = relative_gap(best_d, best_p)
        history.append(gap)
        it = j + 1
        if gap <= tol:
            status = "converged"
            break
        sub = np.sum(w * Phi, axis=1)
        mu = mu - alpha / np.sqrt(j + 1.0) * sub
    A = best_A if rows else best_A.T
    return A, best_mu, it, history, f"dual subgradient: best gap {history[-1]:.3e}|{status}"


# ------------------------------------------------------------------------------------------------
# strict repeated σ₁: Su's basis-dependent multi-multiplier variant (MATH §6.8). Baseline.
# ------------------------------------------------------------------------------------------------


def _su_two_multiplier(geo: TangentGeometry, G: F64, opts: dict[str, Any]) -> tuple[F64, F64, int, list[float], str]:
    """Su's multi-multiplier fixed point for a repeated σ₁ (MATH §6.8; blog Su 11241). Baseline.

    Θᵢ = uᵢvᵢᵀ (i = 1…q, the SVD basis of ``normal_frame``); each step solves the q×q linear system
    Σⱼ tr(ΘᵢᵀΘⱼQ⁻¹)·λⱼ = −tr(ΘᵢᵀG·Q⁻¹), Q = (ZᵀZ)^{1/2}, Z = G + Σλⱼ Θⱼ (tall orientation). At
    the fixed point ⟨Θᵢ, Φ⟩ = 0, i.e. diag(U₁ᵀΦV₁) = 0 in this basis only.
    """
    U1, V1 = geo.constraint.U1, geo.constraint.V1
    q = U1.shape[1]
    tall = G.shape[0] >= G.shape[1]
    thetas = [np.outer(U1[:, i], V1[:, i]) for i in range(q)]
    Gt = G if tall else G.T
    Tt = [t if tall else t.T for t in thetas]
    lam = np.array([-float(np.sum(t * G)) for t in thetas])
    max_iters = int(opts.get("max_iters", 1000))
    history: list[float] = []
    it = 0
    scale = float(np.linalg.norm(G))
    for it in range(1, max_iters + 1):
        Z = Gt + sum(l * t for l, t in zip(lam, Tt))
        _, s, Vt = np.linalg.svd(Z, full_matrices=False)
        if not s[-1] > max(Z.shape) * EPS * s[0]:
            raise DegenerateGeometryError("σ_min(G + Σλᵢ Θᵢ)/σ₁ in Su's fixed point",
                                          s[-1] / s[0] if s[0] > 0 else 0.0, max(Z.shape) * EPS,
                                          "Q⁻¹ is undefined; use method='cvxpy' (strict)")
        V = Vt.T
        Qinv = (V / s) @ Vt
        A = np.array([[float(np.sum((ti.T @ tj) * Qinv)) for tj in Tt] for ti in Tt])
        b = np.array([-float(np.sum((ti.T @ Gt) * Qinv)) for ti in Tt])
        new = np.linalg.solve(A, b)
        step = float(np.max(np.abs(new - lam)))
        history.append(step)
        lam = new
        if step <= 4 * EPS * max(float(np.max(np.abs(lam))), scale):
            break
    else:
        raise SolverError("su_two_multiplier did not converge", "max_iterations",
                          {"iterations": max_iters, "last_step": history[-1]})
    Phi = msign(G + sum(l * t for l, t in zip(lam, thetas)))
    return Phi, np.diag(lam), it, history, ("Su's multi-multiplier variant: diag(U₁ᵀΦV₁) = 0 in the SVD "
                                            "basis only; not the strict tangent space (basis dependent)")


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def _auto(geo: TangentGeometry, norm: str) -> str:
    if norm == "frobenius":
        return "projection"
    m, n = geo.shape
    if geo.family == "none":
        return "msign"
    if min(m, n) == 1:
        return "projection"
    if geo.one_multiplier:
        return "brent"
    if geo.family == "gram":
        return "orthogonal" if m == n else "stiefel_newton"
    return "cvxpy"


def _allowed(geo: TangentGeometry, method: str, norm: str) -> None:
    info = METHODS[method]
    if norm not in info.norms:
        raise InvalidInputError(f"method {method!r} solves the {'/'.join(info.norms)} norm problem, "
                                f"not {norm!r}")
    if "*" not in info.manifolds and geo.kind not in info.manifolds:
        raise InvalidInputError(f"method {method!r} does not apply to {geo.manifold!r}; "
                                f"it handles {info.manifolds}")
    if method == "projection" and norm == "spectral" and min(geo.shape) != 1:
        raise InvalidInputError("method 'projection' is exact for the spectral norm only when "
                                "min(m, n) = 1; use method='auto'")
    if method in ("bisection", "brent", "su_fixed_point", "su_qinv_free", "commuting") and not geo.one_multiplier:
        raise InvalidInputError(f"method {method!r} needs a single multiplier (simple σ₁); this point "
                                f"has multiplier shape {geo.multiplier_shape()}: use 'cvxpy' or "
                                "'su_two_multiplier'")
    if method == "su_two_multiplier" and geo.family != "normal_frame":
        raise InvalidInputError("method 'su_two_multiplier' is for a repeated σ₁ "
                                "(SpectralSphere(degenerate='strict') at a point with σ₁ = σ₂)")


#: every option a method reads (steepest_direction refuses other names); those with a numeric check
#: (a tolerance 0 is allowed: it runs the iteration budget)
_POSITIVE_OPTIONS = ("alpha",)
_NONNEGATIVE_OPTIONS = ("htol", "tol", "commute_tol")
_COUNT_OPTIONS = {"max_iters": 1, "steps": 1, "anderson_memory": 1, "stall_window": 1, "polish_steps": 0}
_OPTIONS = frozenset((*_POSITIVE_OPTIONS, *_NONNEGATIVE_OPTIONS, *_COUNT_OPTIONS, "max_cg", "S0", "accelerate",
                      "solver", "eps", "time_limit", "lmi", "gap_tol", "feas_tol", "tangency_tol", "verbose"))


def _check_options(options: dict[str, Any]) -> None:
    """Refuse unknown option names and NaN/Inf/non-positive tolerances or bad counts."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidInputError(f"unknown option(s) {unknown}; known: {sorted(_OPTIONS)}")
    for k in _POSITIVE_OPTIONS:
        if k in options:
            positive_scalar(options[k], k)
    for k, minimum in _COUNT_OPTIONS.items():
        if k in options:
            count(options[k], k, minimum)
    for k in _NONNEGATIVE_OPTIONS:
        if k in options:
            nonnegative_scalar(options[k], k)
    if options.get("max_cg") is not None:
        count(options["max_cg"], "max_cg")


def steepest_direction(manifold: Manifold, W: ArrayLike, G: ArrayLike, norm: str = "spectral",
                       method: str = "auto", **options: Any) -> SteepestResult:
    """Solve max ⟨G, A⟩ s.t. ‖A‖ ≤ 1, A ∈ T_W M (MATH §6) for one point W (2-D; 1-D for Sphere).

    ``norm`` ∈ :data:`NORMS`; ``method`` ∈ :data:`METHODS`. Options by method: ``max_iters``,
    ``htol`` (1-D solvers), ``tol``/``S0`` (su_lyapunov, stiefel_newton; ``max_cg`` too), ``alpha``/``steps``/``tol`` (dual_ascent),
    ``alpha``/``tol`` (dual_subgradient), ``commute_tol`` (commuting) and the cvxpy options of
    :func:`reference.exact.solve_exact` (``solver``, ``eps``, ``max_iters``, ``time_limit``, ``lmi``,
    ``gap_tol``, ``feas_tol``, ``tangency_tol``). Raises :class:`OffManifoldError` if W is not on
    the manifold, :class:`InvalidInputError` for bad input or an inapplicable method,
    :class:`DegenerateGeometryError` for a degenerate point (e.g. σ₁ = σ₂ with
    ``degenerate="raise"``) and :class:`SolverError` when an exact method fails. Inputs are not
    modified.
    """
    t0 = time.perf_counter()
    nrm = check_norm(norm)
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    _check_options(options)
    geo = TangentGeometry(manifold, W)
    G2 = as_gradient(geo, G)
    chosen = _auto(geo, nrm) if method == "auto" else method
    _allowed(geo, chosen, nrm)

    if chosen == "cvxpy":
        from .exact import solve_exact
        return solve_exact(manifold, W, G, norm=nrm, _t0=t0, **options)

    # zero (or purely normal) gradient, every method: the optimum is 0, attained by A = 0
    nG = float(np.linalg.norm(G2))
    if nG == 0.0 or (geo.family != "none" and
                     float(np.linalg.norm(geo.project(G2))) <= 16 * max(G2.shape) * EPS * nG):
        y = geo.normal_multiplier(G2) if nG > 0 else np.zeros(geo.multiplier_shape())
        note = "zero gradient" if nG == 0 else "G is normal to the manifold (P_W G ≈ 0): optimum 0"
        return build_result(geo, G2, np.zeros_like(G2), y, nrm, chosen, "closed_form", "optimal", 0, t0,
                       notes=note)

    if chosen == "projection":
        A, y = _projection(geo, G2)
        return build_result(geo, G2, A, y, nrm, chosen, "closed_form", "optimal", 0, t0)
    if chosen == "msign":
        return build_result(geo, G2, msign(G2), np.zeros((0,)), nrm, chosen, "closed_form", "optimal", 0, t0)
    if chosen == "orthogonal":
        A, y, note = _orthogonal(geo, G2)
        return build_result(geo, G2, A, y, nrm, chosen, "closed_form", "optimal", 0, t0, notes=note)
    if chosen == "commuting":
        A, y, note = _commuting(geo, G2, float(options.get("commute_tol", 1e-12)))
        status = "optimal_degenerate" if note else "optimal"
        return build_result(geo, G2, A, y, nrm, chosen, "closed_form", status, 0, t0, notes=note)
    if chosen in ("bisection", "brent", "su_fixed_point", "su_qinv_free"):
        A, lam, status, its, hist, note = _solve_1d(geo, G2, chosen, options)
        return build_result(geo, G2, A, np.asarray(lam), nrm, chosen, "manifold_oracle.reference.steepest", status, its, t0,
                       history=tuple(hist), notes=note)
    if chosen in ("su_lyapunov", "stiefel_newton"):
        try:
            extras: dict[str, Any] | None = None
            if chosen == "su_lyapunov":
                A, S, its, hist, note = _su_lyapunov(geo, G2, options)
            else:
                A, S, its, hist, note, extras = _stiefel_newton(geo, G2, options)
            res = build_result(geo, G2, A, S, nrm, chosen, "manifold_oracle.reference.steepest", "optimal", its,
                               t0, history=tuple(hist), notes=note, extras=extras)
            if method != "auto":
                return res
            # auto accepts the fast answer only with its certificate (figures from build_result,
            # the checks of certify() with the exact solvers' gap level)
            bad = [f"{k} {v:.1e}" for k, v, lim in (("feasibility", res.feasibility, 1e-7),
                                                    ("tangency", res.tangency, 1e-8),
                                                    ("|gap|", abs(res.gap), _STIEFEL_GAP_TOL)) if not v <= lim]
            if not bad:
                return res
            reason, kappa = "failed its certificate (" + ", ".join(bad) + ")", float("nan")
        except SolverError as exc:
            if method != "auto":
                raise
            reason, kappa = f"reported {exc.status}", exc.figures.get("kappa", float("nan"))
        # documented, reported switch (not silent): the fast solvers are undefined at a kink
        # (G + WS singular) and can stall near one, so "auto" solves this instance with the
        # certified cvxpy formulation instead; the result's method and notes say so
        from .exact import solve_exact
        res = solve_exact(manifold, W, G, norm=nrm, _t0=t0)
        return dataclasses.replace(
            res, notes=f"auto: {chosen} {reason} (κ(G + WS) = {kappa:.1e}; the optimum is at or near "
                       f"a kink, where the dual is not differentiable); solved by cvxpy with certified gap "
                       f"{res.gap:.1e} (the cvxpy level, not the ~1e-12 of the fast solver). " + res.notes)
    if chosen in ("dual_ascent", "dual_subgradient", "su_two_multiplier"):
        fn = {"dual_ascent": _dual_ascent, "dual_subgradient": _dual_subgradient,
              "su_two_multiplier": _su_two_multiplier}[chosen]
        A, y, its, hist, note = fn(geo, G2, options)
        if chosen == "su_two_multiplier":
            status = "degenerate"
        else:
            note, status = note.rsplit("|", 1)
        return build_result(geo, G2, A, y, nrm, chosen, "manifold_oracle.reference.steepest", status, its, t0,
                       history=tuple(hist), notes=note)
    raise InvalidInputError(f"method {chosen!r} is not implemented for {manifold!r}")  # pragma: no cover
