"""Quality against the exact answer: reported and graded, never a failure (CONVENTIONS §12.1).

Most Newton–Schulz routines are designed not to converge (KJ's band is [0.68, 1.13]), so their
distance to the true msign is a *quality* figure, not a conformance verdict. Grades (on the
spectral-norm distance to msign): A ≤ 1e-6, B ≤ 1e-3, C ≤ 0.05, D ≤ 0.35, E otherwise.
"""

from __future__ import annotations

import numpy as np

import manifold_oracle.reference as R
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


def _dir_applies(ctx: Context) -> str | None:
    p = ctx.profile
    if not p.manifolds:
        return "profile declares no manifold"
    if p.manifolds[0].kind not in ("frobenius_sphere", "spectral_sphere", "oblique", "stiefel"):
        return f"no exact tangent steepest solver for {p.manifolds[0].kind}"
    return None


def _dir_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("quality.dir")
    decl = ctx.profile.manifolds[0]
    man = decl.reference()
    out = []
    for shp in decl.shapes[:2]:
        for i in range(3 if ctx.full else 1):
            out.append(Case(f"{decl.name} {shp} #{i}", {"W": man.random_point(rng, shp),
                                                      "G": rng.standard_normal(shp)}))
    return out


@register("quality.direction.suboptimality", "quality",
          "Efficiency of the first-step direction against the exact tangent steepest direction in "
          "the spectral norm (CLAIMS M-4): ρ = (⟨G, D⟩/‖D‖₂)/OPT_T with OPT_T from "
          "reference.steepest; the figure is 1 − ρ (0 = optimal).",
          requires={"direction"}, cases=_dir_cases, applies=_dir_applies, graded=True)
def direction_suboptimality(ctx: Context, case: Case) -> Measurement:
    from manifold_oracle.reference.steepest import steepest_direction

    from ..expected import round_to
    from ._util import call, tensor, to_numpy
    from ..adapters import as_output

    decl = ctx.profile.manifolds[0]
    man = decl.reference(point_tol=1e-4)
    dt = ctx.profile.param_dtypes[0]
    W, G = round_to(case.arrays["W"], dt), round_to(case.arrays["G"], dt)
    if not man.contains(W, 1e-8):
        W = man.project_point(W)
    D = to_numpy(as_output(call(ctx, "direction", tensor(W, dt), tensor(G, dt), None)[0]))
    res = steepest_direction(decl.reference(point_tol=1e-4), W, G, norm="spectral")
    opt = float(res.value)
    d2 = float(np.linalg.norm(D, 2))
    rho = float(np.sum(G * D)) / d2 / opt if d2 > 0 and opt > 0 else 0.0
    gap = 1.0 - rho
    return Measurement("1 − ρ (ρ = ⟨G, D⟩/‖D‖₂ / OPT_T)", gap, _INFO, True,
                       {"rho": rho, "OPT_T": opt, "D_spectral": d2, "steepest_method": res.method,
                        "steepest_status": res.status}, grade=grade(max(gap, 0.0)))
