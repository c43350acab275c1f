"""Geometry: tangency of projections, feasibility and order of retractions, axis correctness,
membership (MATH.md §4; CLAIMS G-5; CONVENTIONS.md §12.5, §12.7).

Every manifold the profile declares (``Profile.manifolds``) is checked against the reference
manifold with the same kind, axis and radius. Tolerances: exact-identity bound of the declared
dtype, scaled by 1/gap on the spectral sphere (projector regularity, MATH §4.4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tolerances as T
from ..adapters import as_output, to_numpy
from ..tolerances import Tolerance
from . import Case, Context, Measurement, NotApplicable, register
from ._util import boolean, call, fit_slope, tensor


def _decls(ctx: Context) -> tuple[Any, ...]:
    return tuple(ctx.profile.manifolds)


def _applies(ctx: Context) -> str | None:
    return None if _decls(ctx) else "profile declares no manifold"


def _decl(ctx: Context, case: Case) -> Any:
    for d in _decls(ctx):
        if d.name == case.params["manifold"]:
            return d
    raise NotApplicable(f"manifold {case.params['manifold']!r} not declared")


def _point_cases(ctx: Context, salt: str, n_per: int | None = None) -> list[Case]:
    rng = ctx.rng(salt)
    n = n_per or (4 if ctx.full else 2)
    out = []
    for d in _decls(ctx):
        man = d.reference()
        for shp in d.shapes:
            for i in range(n):
                W = man.random_point(rng, shp)
                G = rng.standard_normal(shp)
                out.append(Case(f"{d.name} {shp} #{i}", {"W": W, "G": G}, {"manifold": d.name}))
    return out


def _gap_scale(decl: Any, W: np.ndarray) -> float:
    if decl.kind != "spectral_sphere":
        return 1.0
    s = np.linalg.svd(W, compute_uv=False)
    return float(s[0] / max(s[0] - s[1], 1e-300)) if s.size > 1 else 1.0


def _call_man(ctx: Context, cap: str, decl: Any, *arrays: np.ndarray) -> np.ndarray:
    ts = [tensor(a, decl.dtype) for a in arrays]
    return to_numpy(as_output(call(ctx, cap, decl.name, *ts)))


@register("geometry.projection.tangent", "geometry",
          "project_tangent(W, G) lies in T_W M of the declared manifold: v_M(W, P(G)) ≈ 0 (MATH §4).",
          requires={"project_tangent"}, cases=lambda c: _point_cases(c, "geo.tan"), applies=_applies,
          catches=("missing tangent projection", "bottom singular pair", "rows/cols swapped"))
def projection_tangent(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    man = d.reference()
    W, G = case.arrays["W"], case.arrays["G"]
    P = _call_man(ctx, "project_tangent", d, W, G)
    v = float(np.max(man.tangent_violation(W, P)))
    tol = T.exact_identity(d.dtype, max(W.shape), scale=_gap_scale(d, W))
    return Measurement("v_M(W, P_W G)", v, tol, v <= tol.bound, {"manifold": d.name})


@register("geometry.projection.orthogonal", "geometry",
          "project_tangent equals the orthogonal (Frobenius) projector of the reference: "
          "‖P(G) − P_ref(G)‖_F/‖G‖_F ≈ 0 (MATH §4.0).", requires={"project_tangent"},
          cases=lambda c: _point_cases(c, "geo.orth"), applies=_applies,
          catches=("oblique instead of orthogonal projector", "missing tangent projection"))
def projection_orthogonal(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    man = d.reference()
    W, G = case.arrays["W"], case.arrays["G"]
    P = _call_man(ctx, "project_tangent", d, W, G)
    err = float(np.linalg.norm(P - man.project_tangent(W, G)) / np.linalg.norm(G))
    tol = T.exact_identity(d.dtype, max(W.shape), scale=_gap_scale(d, W))
    return Measurement("‖P(G) − P_ref(G)‖_F/‖G‖_F", err, tol, err <= tol.bound)


def _retr_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.retr")
    out = []
    for d in _decls(ctx):
        man = d.reference()
        for shp in d.shapes:
            W = man.random_point(rng, shp)
            xi = man.random_tangent(rng, W)
            for t in (1e-3, 0.1, 0.5) if ctx.full else (0.1, 0.5):
                out.append(Case(f"{d.name} {shp} t={t}", {"W": W, "A": t * xi}, {"manifold": d.name, "t": t}))
    return out


@register("geometry.retraction.feasibility", "geometry",
          "retract(W, ξ) lies on the declared manifold (radius and axis included) for tangent ξ.",
          requires={"retract"}, cases=_retr_cases, applies=_applies,
          catches=("retraction skipped", "retraction at the wrong radius", "rows/cols swapped"))
def retraction_feasibility(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    man = d.reference()
    Y = _call_man(ctx, "retract", d, case.arrays["W"], case.arrays["A"])
    v = float(np.max(man.violation(Y))) if np.all(np.isfinite(Y)) else float("inf")
    tol = T.exact_identity(d.dtype, max(Y.shape), scale=np.sqrt(min(Y.shape)))
    return Measurement("c_M(R_W(ξ))", v, tol, v <= tol.bound, {"manifold": d.name})


def _order_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.order")
    out = []
    for d in _decls(ctx):
        man = d.reference()
        shp = d.shapes[0]
        W = man.random_point(rng, shp)
        xi = man.random_tangent(rng, W)
        out.append(Case(f"{d.name} {shp}", {"W": W, "xi": xi}, {"manifold": d.name}))
    return out


@register("geometry.retraction.order", "geometry",
          "Taylor slopes of the retraction (CLAIMS G-5): ‖R(tξ) − W − tξ‖ = O(t²) (slope 2) and the "
          "tangent part is O(t^{order+1}) for the declared order, t ∈ [1e-3, 1e-1].",
          requires={"retract"}, cases=_order_cases, applies=_applies,
          catches=("retraction skipped", "first-order retraction declared second order"))
def retraction_order(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    if d.dtype != "float64":
        raise NotApplicable("Taylor slopes need float64 (e(t) ≥ 10³·u·scale down to t = 1e-3)")
    man = d.reference()
    W, xi = case.arrays["W"], case.arrays["xi"]
    ts = np.geomspace(1e-3, 1e-1, 7)
    dist, tang = [], []
    for t in ts:
        Y = _call_man(ctx, "retract", d, W, t * xi)
        E = Y - W - t * xi
        dist.append(np.linalg.norm(E))
        tang.append(np.linalg.norm(man.project_tangent(W, E)))
    dist_a, tang_a = np.array(dist), np.array(tang)
    floor = 1e3 * 2.0**-53 * np.linalg.norm(W)
    if np.any(dist_a <= floor):
        s_dist = float("nan")
    else:
        s_dist = fit_slope(ts, dist_a)
    want_tan = d.retraction_order + 1
    keep = tang_a > floor
    s_tan = fit_slope(ts[keep], tang_a[keep]) if keep.sum() >= 3 else float(want_tan)
    dev = max(abs(s_dist - 2.0) if np.isfinite(s_dist) else float("inf"),
              abs(s_tan - want_tan) if keep.sum() >= 3 else 0.0)
    # a retraction that is exact on this instance (e ≡ rounding) has no measurable slope:
    # the tangent part is then below the floor, which is consistent with any order ≥ declared
    tol = T.slope(2.0, 0.05)
    tol = Tolerance(0.05, f"|slope_dist − 2| ≤ 0.05 and |slope_tangent − {want_tan}| ≤ 0.05",
                    tol.provenance)
    return Measurement("max slope deviation", dev, tol, dev <= 0.05,
                       {"slope_distance": s_dist, "slope_tangent_part": s_tan,
                        "declared_order": d.retraction_order})


def _membership_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.member")
    out = []
    for d in _decls(ctx):
        man = d.reference()
        for shp in d.shapes:
            W = man.random_point(rng, shp)
            out.append(Case(f"{d.name} {shp} on", {"W": W}, {"manifold": d.name, "expect": True}))
            out.append(Case(f"{d.name} {shp} scaled ×1.01", {"W": 1.01 * W}, {"manifold": d.name, "expect": False}))
            if d.kind == "oblique":
                other = "cols" if d.axis == "rows" else "rows"
                from manifold_oracle.reference import Oblique

                V = Oblique(d.radius, axis=other).random_point(rng, shp)
                exp = bool(man.contains(V, 1e-6))
                out.append(Case(f"{d.name} {shp} unit {other}", {"W": V}, {"manifold": d.name, "expect": exp}))
    return out


@register("geometry.membership", "geometry",
          "contains(W) agrees with the reference membership test: true on the manifold, false for a "
          "1% radius error and for points normalised along the other axis.",
          requires={"contains"}, cases=_membership_cases, applies=_applies,
          catches=("rows/cols swapped", "membership at the wrong radius"))
def membership(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    got = bool(call(ctx, "contains", d.name, tensor(case.arrays["W"], d.dtype), 1e-6))
    want = bool(case.params["expect"])
    return boolean("membership disagreement", got == want, f"contains(W) == {want}",
                   "reference manifold violation(W) ≤ 1e-6", got=got)


def _component_applies(ctx: Context) -> str | None:
    if not any(d.kind == "stiefel" and any(s[0] == s[1] for s in d.shapes) for d in _decls(ctx)):
        return "no square Stiefel (O(n)) shape declared"
    return None


def _component_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.component")
    out = []
    for d in _decls(ctx):
        if d.kind != "stiefel":
            continue
        man = d.reference()
        for shp in d.shapes:
            if shp[0] != shp[1]:
                continue
            for i in range(4 if ctx.full else 2):
                W = man.random_point(rng, shp)
                if i % 2:  # both components of O(n): flip the sign of one column
                    W[:, 0] *= -1.0
                xi = 0.1 * man.random_tangent(rng, W)
                out.append(Case(f"{d.name} {shp} det={np.sign(np.linalg.det(W)):+.0f}", {"W": W, "A": xi},
                                {"manifold": d.name}))
    return out


@register("geometry.retraction.component", "geometry",
          "On square Stiefel = O(n) a retraction with ‖ξ‖₂ < 1 stays in the component of W: "
          "det R_W(ξ) has the sign of det W (MATH §4.7; pymanopt issue #301).",
          requires={"retract"}, cases=_component_cases, applies=_component_applies,
          catches=("seed-dependent O(n) component",))
def retraction_component(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    W = case.arrays["W"]
    Y = _call_man(ctx, "retract", d, W, case.arrays["A"])
    same = np.sign(np.linalg.det(Y)) == np.sign(np.linalg.det(W))
    return boolean("component changed", bool(same), "sign det R_W(ξ) == sign det W", "MATH §4.7",
                   det_W=float(np.linalg.det(W)), det_R=float(np.linalg.det(Y)))
