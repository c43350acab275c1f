"""Quality against the exact answer: reported and graded, never a failure (CONVENTIONS §12.1).

Most Newton–Schulz routines are designed not to converge (KJ's band is [0.68, 1.13]), so their
distance to the true msign is a *quality* figure, not a conformance verdict. Grades (on the
spectral-norm distance to msign): A ≤ 1e-6, B ≤ 1e-3, C ≤ 0.05, D ≤ 0.35, E otherwise.
"""

from __future__ import annotations

import numpy as np

import reference as R

from ..cases import matrix_cases
from ..tolerances import Tolerance
from . import Case, Context, Measurement, register
from ._util import rank_rtol_for, input_dtype, require_ns_or_exact, run_msign, spec2

GRADES = ((1e-6, "A"), (1e-3, "B"), (5e-2, "C"), (0.35, "D"))


def grade(x: float) -> str:
    for bound, g in GRADES:
        if x <= bound:
            return g
    return "E"


_INFO = Tolerance(float("inf"), "graded, not a pass/fail bound (A ≤ 1e-6, B ≤ 1e-3, C ≤ 0.05, D ≤ 0.35)",
                  "CONVENTIONS.md §12.1 (quality reported separately from spec conformance)")


def _cases(ctx: Context) -> list[Case]:
    return [c for c in matrix_cases(ctx, "quality") if "rank-deficient" not in c.label
            and "tiny" not in c.label]


@register("quality.msign.distance", "quality",
          "Distance of the orthogonaliser's output to the exact msign of the input, ‖O − msign G‖₂.",
          requires={"msign"}, cases=_cases, applies=require_ns_or_exact, graded=True)
def msign_distance(ctx: Context, case: Case) -> Measurement:
    out, _, g = run_msign(ctx, case.arrays["G"], input_dtype(ctx.profile))
    d = spec2(out - R.msign(g, rank_rtol=rank_rtol_for(input_dtype(ctx.profile)))) if np.all(np.isfinite(out)) else float("inf")
    return Measurement("‖O − msign G‖₂", d, _INFO, True, grade=grade(d))


@register("quality.msign.band", "quality",
          "Band [min σᵢ, max σᵢ] of the output on the range of G (CONVENTIONS §9); the figure is "
          "max |σᵢ − 1|.", requires={"msign"}, cases=_cases, applies=require_ns_or_exact, graded=True)
def msign_band(ctx: Context, case: Case) -> Measurement:
    out, _, g = run_msign(ctx, case.arrays["G"], input_dtype(ctx.profile))
    rt = rank_rtol_for(input_dtype(ctx.profile))
    S = R.msign(g, rank_rtol=rt)
    # singular values of O restricted to the row space of G: svd of O·Sᵀ·S
    s = np.linalg.svd(out @ S.T @ S, compute_uv=False)
    r = int(R.numerical_rank(g, rank_rtol=rt))
    s = s[:r]
    dev = float(np.max(np.abs(s - 1.0))) if s.size else 0.0
    return Measurement("max |σᵢ(O) − 1| on range", dev, _INFO, True,
                       {"band_min": float(s.min()) if s.size else None,
                        "band_max": float(s.max()) if s.size else None}, grade=grade(dev))


@register("quality.msign.orthogonality", "quality",
          "Orthogonality error of the output on the range, diagonal and off-diagonal parts of "
          "VᵀOᵀOV − I reported separately (CLAIMS §0.2).", requires={"msign"}, cases=_cases,
          applies=require_ns_or_exact, graded=True)
def msign_orthogonality(ctx: Context, case: Case) -> Measurement:
    out, _, g = run_msign(ctx, case.arrays["G"], input_dtype(ctx.profile))
    _, s, Vt = np.linalg.svd(g, full_matrices=False)
    r = int(R.numerical_rank(g, rank_rtol=rank_rtol_for(input_dtype(ctx.profile))))
    V = Vt[:r].T
    E = V.T @ out.T @ out @ V - np.eye(r)
    diag = float(np.max(np.abs(np.diag(E)))) if r else 0.0
    off = float(np.max(np.abs(E - np.diag(np.diag(E))))) if r > 1 else 0.0
    worst = max(diag, off)
    return Measurement("max(diag, off-diag) of VᵀOᵀOV − I", worst, _INFO, True,
                       {"diagonal": diag, "off_diagonal": off}, grade=grade(worst))
