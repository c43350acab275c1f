"""cvxpy formulations of the steepest-descent subproblem with float64 certificates (MATH §6.9).

Primal (spectral norm): maximise ⟨G, A⟩ s.t. σ_max(A) ≤ 1 (cvxpy canonicalises it to the LMI
[[I, A], [Aᵀ, I]] ⪰ 0; ``lmi=True`` writes the LMI explicitly) and 𝓛(A) = 0 as linear equalities:

* norm spheres: ⟨Θ, A⟩ = 0 (one equality);
* spectral sphere, repeated σ₁ (strict): the upper triangle *with* the diagonal of
  U₁ᵀAV₁ + V₁ᵀAᵀU₁ (q(q+1)/2 equalities);
* oblique: diag(AWᵀ) = 0 (rows) or diag(WᵀA) = 0 (columns);
* Stiefel: the upper triangle with the diagonal of WᵀA + AᵀW (tall) or AWᵀ + WAᵀ (wide), written
  once — Clarabel fails at its first iteration on the full symmetric matrix equality.

The Frobenius-norm variant replaces the LMI with the second-order cone ‖A‖_F ≤ 1.

Solver choice: Clarabel when max(m, n) ≤ ``CLARABEL_MAX_SIDE`` (it is memory bound: ~3.5 GB at
64×64), with its 1e-8 gap/feasibility tolerances (measured: tighter ones, or tol_ktratio 1e-8, end
as optimal_inaccurate) and static regularisation 1e-6 on Stiefel; SCS otherwise with
eps_abs = eps_rel = ``eps`` ≤ 1e-9 (never cvxpy's default 1e-4). A status other than exactly
``"optimal"`` raises :class:`SolverError` with the figures; so do a raw duality gap, a raw
feasibility or a raw tangency residual beyond its threshold. Nothing falls back silently.

Multipliers. cvxpy's dual value ν of an equality constraint of ``Maximize(⟨G, A⟩)`` enters as
G − 𝓛*(ν) ∈ ∂‖·‖^†; the reference's convention is ‖G + 𝓛*(y)‖^†, so y = −ν (fixed by the unit
test on the commuting closed form λ* = −g₁ in tests/reference/test_steepest_exact.py). For the
upper-triangle equalities, ν_ij (i ≤ j) maps to the symmetric S = Σ ν_ij (E_ij + E_ji).

The returned direction is the better certified one of (a) the recovered Φ_rec = msign(G + 𝓛*(y))
(plus the kink completion of MATH §6.4 item 6 on the spheres; certificate 6), accepted only when
it is tangent to 1e-12 and its value is within the gap tolerance of the dual value, and (b) the
solver's Â polished in float64: projected exactly onto T_W and scaled into the unit ball, which
changes its value by no more than its raw residuals. ``extras`` reports the raw figures.
"""

from __future__ import annotations

import contextlib

import time
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import count, positive_scalar
from .errors import InvalidInputError, NotAvailableError, SolverError
from .linalg import msign
from .manifolds import Manifold
from .subproblem import (
    NORMS,
    SteepestResult,
    TangentGeometry,
    as_gradient,
    build_result,
    degenerate_completion,
    dual_norm,
    primal_norm,
    relative_gap,
)

F64 = NDArray[np.float64]

__all__ = ["solve_exact", "CLARABEL_MAX_SIDE", "SCS_CERTIFIABLE_EPS", "DEFAULT_GAP_TOL", "DEFAULT_FEAS_TOL",
           "DEFAULT_TANGENCY_TOL"]

#: Clarabel is used up to this max(m, n) (memory bound beyond); SCS above.
CLARABEL_MAX_SIDE = 16
#: relative gap (d − p)/max(1, |d|) accepted (MATH §6.9 item 4; CLAIMS §0.2)
DEFAULT_GAP_TOL = 1e-6
#: independent feasibility σ₁(Â) − 1 accepted for the raw solver output (CLAIMS §0.2)
DEFAULT_FEAS_TOL = 1e-7
#: largest SCS eps_abs = eps_rel whose answers can be accepted (MATH §6.9 item 4)
SCS_CERTIFIABLE_EPS = 1e-9
#: raw tangency residual of Â accepted (normalised, as the manifold's tangent_violation)
DEFAULT_TANGENCY_TOL = 1e-7


def _cvxpy() -> Any:
    try:
        import cvxpy as cp
    except ImportError as exc:  # pragma: no cover - cvxpy is a declared dependency
        raise NotAvailableError("cvxpy is required for method='cvxpy'") from exc
    return cp


def _polish(geo: TangentGeometry, A: F64, norm: str) -> F64:
    """Exact tangent projection, then scale into the unit ball (float64)."""
    P = geo.project(A)
    s = primal_norm(P, norm)
    return P / s if s > 1.0 else P


def _recover(geo: TangentGeometry, G: F64, y: F64, norm: str) -> F64:
    """Φ_rec from the multipliers (certificate 6): the dual-norm subgradient of G + 𝓛*(y)."""
    Z = G + geo.adjoint(y)
    if norm == "frobenius":
        nz = float(np.linalg.norm(Z))
        return Z / nz if nz > 0 else np.zeros_like(Z)
    Phi = msign(Z)
    if geo.one_multiplier and geo.tangency(Phi) > 1e-12:
        # Φ_rec is only a candidate: if the completion fails, the uncompleted msign is kept and
        # is then rejected by its own tangency certificate below.
        with contextlib.suppress(SolverError):
            Phi, _ = degenerate_completion(Z, geo.constraint.theta)
    return Phi


def solve_exact(manifold: Manifold, W: ArrayLike, G: ArrayLike, norm: str = "spectral", *,
                solver: str | None = None, eps: float = 1e-9, max_iters: int | None = None,
                time_limit: float | None = None, lmi: bool = False,
                gap_tol: float = DEFAULT_GAP_TOL, feas_tol: float = DEFAULT_FEAS_TOL,
                tangency_tol: float = DEFAULT_TANGENCY_TOL, verbose: bool = False,
                _t0: float | None = None) -> SteepestResult:
    """Certified cvxpy solution of the steepest-descent subproblem (MATH §6.9).

    ``solver``: ``"CLARABEL"``, ``"SCS"`` or None (Clarabel if max(m, n) ≤ CLARABEL_MAX_SIDE).
    ``eps`` is SCS's eps_abs = eps_rel; Clarabel ignores it (it always uses 1e-8). Acceptance rule:
    an answer is returned only if the status is exactly "optimal", the raw float64 certificates
    (gap ≤ ``gap_tol``, ‖Â‖ − 1 ≤ ``feas_tol``, tangency ≤ ``tangency_tol``) and the final gap pass,
    **and**, for SCS, eps ≤ ``SCS_CERTIFIABLE_EPS`` (1e-9, MATH §6.9 item 4). A looser eps is
    allowed only so that the certificate can be shown to reject its answers (CLAIMS L-11): such a
    run always raises :class:`SolverError` — with the failed certificate's message and figures, or,
    when the loose answer happens to pass every certificate, with status ``"loose_eps"`` and the
    figures (it is still not accepted). ``max_iters``/``time_limit`` are passed to the solver;
    hitting either gives a non-optimal status and :class:`SolverError`.
    """
    t0 = time.perf_counter() if _t0 is None else _t0
    cp = _cvxpy()
    if not isinstance(norm, str) or norm not in NORMS:
        raise InvalidInputError(f"norm must be one of {NORMS}, got {norm!r}")
    geo = TangentGeometry(manifold, W)
    g = as_gradient(geo, G)
    m, n = geo.shape
    name = solver.upper() if isinstance(solver, str) else ("CLARABEL" if max(m, n) <= CLARABEL_MAX_SIDE else "SCS")
    if name not in ("CLARABEL", "SCS"):
        raise InvalidInputError(f"solver must be 'CLARABEL' or 'SCS', got {solver!r}")
    eps = positive_scalar(eps, "eps")
    gap_tol, feas_tol, tangency_tol = (positive_scalar(v, k) for v, k in (
        (gap_tol, "gap_tol"), (feas_tol, "feas_tol"), (tangency_tol, "tangency_tol")))
    if max_iters is not None:
        max_iters = count(max_iters, "max_iters")
    if time_limit is not None:
        time_limit = positive_scalar(time_limit, "time_limit")

    # scale G to unit spectral norm for the solver (conditioning); undo in float64 afterwards
    gscale = float(np.linalg.svd(g, compute_uv=False)[0])
    if gscale == 0.0:
        y0 = np.zeros(geo.multiplier_shape())
        return build_result(geo, g, np.zeros_like(g), y0, norm, "cvxpy", name, "optimal", 0, t0,
                       notes="zero gradient")
    gs = g / gscale

    A = cp.Variable((m, n))
    if norm == "spectral":
        if lmi:
            ball = cp.bmat([[np.eye(m), A], [A.T, np.eye(n)]]) >> 0
        else:
            ball = cp.sigma_max(A) <= 1
    else:
        ball = cp.norm(A, "fro") <= 1
    eqs, get_y = geo.constraint.cvxpy_constraints(cp, A)
    prob = cp.Problem(cp.Maximize(cp.sum(cp.multiply(gs, A))), [ball] + eqs)

    kwargs: dict[str, Any] = {}
    if name == "SCS":
        kwargs.update(eps_abs=eps, eps_rel=eps, max_iters=int(max_iters or 200000))
        if time_limit is not None:
            kwargs["time_limit_secs"] = float(time_limit)
    else:
        tight = 1e-8  # Clarabel's default: tighter gap/KKT tolerances stall it as optimal_inaccurate
        kwargs.update(tol_gap_abs=tight, tol_gap_rel=tight, tol_feas=tight,
                      max_iter=int(max_iters or 200))
        if geo.family == "gram":
            kwargs["static_regularization_constant"] = 1e-6
        if time_limit is not None:
            kwargs["time_limit"] = float(time_limit)
    try:
        with warnings.catch_warnings():
            # cvxpy warns "Solution may be inaccurate" for optimal_inaccurate; the status check
            # below turns that into a SolverError, so the warning would only be noise
            warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
            prob.solve(solver=name, verbose=verbose, **kwargs)
    except cp.error.SolverError as exc:
        raise SolverError(f"cvxpy/{name} failed: {exc}", "solver_error",
                          {"m": m, "n": n, "seconds": time.perf_counter() - t0}) from exc
    stats = prob.solver_stats
    iters = int(getattr(stats, "num_iters", 0) or 0)
    figures: dict[str, Any] = {"m": m, "n": n, "iterations": iters, "seconds": time.perf_counter() - t0,
                               "objective": (float(prob.value) * gscale
                                             if prob.value is not None and np.isfinite(prob.value) else float("nan"))}
    if prob.status != "optimal":
        raise SolverError(f"cvxpy/{name}: status is not 'optimal' (no inaccurate answer is accepted)",
                          str(prob.status), figures)
    A_raw = np.asarray(A.value, dtype=np.float64)
    y = np.asarray(get_y(), dtype=np.float64).reshape(geo.multiplier_shape()) * gscale

    # raw certificates (MATH §6.9 items 2–5), in float64, independent of the solver's own report
    p_raw = float(np.sum(g * A_raw))
    d = dual_norm(g + geo.adjoint(y), norm)
    gap_raw = relative_gap(d, p_raw)
    feas_raw = primal_norm(A_raw, norm) - 1.0
    tang_raw = geo.tangency(A_raw)
    figures.update(primal=p_raw, dual=d, gap=gap_raw, feasibility=feas_raw, tangency=tang_raw)
    if not abs(gap_raw) <= gap_tol:
        raise SolverError(f"cvxpy/{name}: duality gap above tolerance {gap_tol:.1e}", "optimal", figures)
    if not feas_raw <= feas_tol:
        raise SolverError(f"cvxpy/{name}: ‖Â‖ − 1 above tolerance {feas_tol:.1e}", "optimal", figures)
    if not tang_raw <= tangency_tol:
        raise SolverError(f"cvxpy/{name}: tangency residual above tolerance {tangency_tol:.1e}",
                          "optimal", figures)

    # candidates for the returned direction
    A_pol = _polish(geo, A_raw, norm)
    p_pol = float(np.sum(g * A_pol))
    Phi = _recover(geo, g, y, norm)
    p_rec = float(np.sum(g * Phi))
    rec_ok = (geo.tangency(Phi) <= 1e-12 and primal_norm(Phi, norm) <= 1 + 1e-12
              and abs(relative_gap(d, p_rec)) <= gap_tol)
    use_rec = rec_ok and p_rec >= p_pol
    direction = Phi if use_rec else A_pol
    notes = ("direction recovered from the multipliers (certificate 6)" if use_rec
             else "direction: solver output projected onto T_W and scaled into the ball")
    extras = {"raw_value": p_raw, "raw_gap": gap_raw, "raw_feasibility": feas_raw, "raw_tangency": tang_raw,
              "recovered_value": p_rec, "recovered_ok": bool(rec_ok), "polished_value": p_pol,
              "solver_objective": figures["objective"], "gradient_scale": gscale}
    res = build_result(geo, g, direction, y, norm, "cvxpy", name, "optimal", iters, t0, notes=notes, extras=extras)
    if not abs(res.gap) <= gap_tol:
        raise SolverError(f"cvxpy/{name}: final certificate failed", "optimal",
                          {**figures, "final_gap": res.gap})
    if name == "SCS" and eps > SCS_CERTIFIABLE_EPS:
        raise SolverError(f"cvxpy/SCS at eps = {eps:.1e} > {SCS_CERTIFIABLE_EPS:.0e} is not certifiable "
                          "(MATH §6.9 item 4): this answer passed the float64 certificates, but a loose "
                          "eps is run only to show the certificate rejecting answers, never accepted",
                          "loose_eps", {**figures, "final_gap": res.gap, "eps": eps})
    return res
