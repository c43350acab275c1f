"""Geometry: tangency of projections, feasibility, order and values of retractions, axis
correctness, membership (MATH.md §4; CLAIMS G-5; CONVENTIONS.md §12.5, §12.7).

Every manifold the profile declares (``Profile.manifolds``) is checked against the reference
manifold with the same kind, axis and radius. Tolerances: exact-identity bound of the declared
dtype, scaled by 1/gap on the spectral sphere (projector regularity, MATH §4.4).
"""

from __future__ import annotations

from typing import Any, Iterator

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


def _shape_points(ctx: Context, salt: str) -> Iterator[tuple[Any, Any, tuple[int, int], np.ndarray,
                                                            np.random.Generator]]:
    """(decl, reference manifold, shape, random point, generator) for every declared manifold and
    shape; the caller draws its tangent vectors from the same generator, after the point."""
    rng = ctx.rng(salt)
    for d in _decls(ctx):
        man = d.reference()
        for shp in d.shapes:
            yield d, man, shp, man.random_point(rng, shp), rng


def _retr_cases(ctx: Context) -> list[Case]:
    out = []
    for d, man, shp, W, rng in _shape_points(ctx, "geo.retr"):
        xi = man.random_tangent(rng, W)
        for t in (1e-3, 0.1, 0.5) if ctx.full else (0.1, 0.5):
            out.append(Case(f"{d.name} {shp} t={t}", {"W": W, "A": t * xi}, {"manifold": d.name, "t": t}))
        # a non-tangent ξ with W + ξ inside the ball (every declared retraction normalises W + ξ):
        # clipping to the ball, W/max(1, ‖W‖/R), agrees with rescaling for tangent ξ only
        out.append(Case(f"{d.name} {shp} non-tangent ξ = −W/2 + 0.1·tangent (W + ξ inside the ball)",
                        {"W": W, "A": -0.5 * W + 0.1 * xi}, {"manifold": d.name, "t": 0.5}))
    return out


@register("geometry.retraction.feasibility", "geometry",
          "retract(W, ξ) lies on the declared manifold (radius and axis included) for tangent ξ and "
          "for a non-tangent ξ that takes W + ξ inside the ball.",
          requires={"retract"}, cases=_retr_cases, applies=_applies,
          catches=("retraction skipped", "retraction at the wrong radius", "rows/cols swapped",
                   "retraction by clipping to the ball instead of rescaling"))
def retraction_feasibility(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    man = d.reference()
    Y = _call_man(ctx, "retract", d, case.arrays["W"], case.arrays["A"])
    v = float(np.max(man.violation(Y))) if np.all(np.isfinite(Y)) else float("inf")
    tol = T.exact_identity(d.dtype, max(Y.shape), scale=np.sqrt(min(Y.shape)))
    return Measurement("c_M(R_W(ξ))", v, tol, v <= tol.bound, {"manifold": d.name})


def _flip_first(W: np.ndarray) -> np.ndarray:
    """W with the first column of its tall form negated (tall: W·diag(−1, 1, …); wide:
    diag(−1, 1, …)·W), an isometry of every declared manifold. Applied to W and ξ together it
    negates the first column of W + ξ, so a Householder QR (R₁₁ = −sign(y₁₁)·‖y₁‖) returns R₁₁
    of opposite signs at the two points: a QR retraction without the diag(R) > 0 fix is wrong
    at one of them, whatever the seed."""
    out = W.copy()
    if W.shape[-2] >= W.shape[-1]:
        out[..., :, 0] *= -1.0
    else:
        out[..., 0, :] *= -1.0
    return out


def _value_cases(ctx: Context) -> list[Case]:
    out = []
    for d, man, shp, W0, rng in _shape_points(ctx, "geo.retr.value"):
        xi0 = man.random_tangent(rng, W0)
        for label, W, xi in (("W", W0, xi0), ("W·diag(−1, 1, …)", _flip_first(W0), _flip_first(xi0))):
            for t in (1e-3, 0.1, 0.5, 1.0) if ctx.full else (0.1, 0.5):
                out.append(Case(f"{d.name} {shp} {d.dtype} {label} ‖ξ‖={t:g}·r",
                                {"W": W, "A": t * d.radius * xi}, {"manifold": d.name, "t": t}))
    return out


def _reference_retraction(d: Any, man: Any, W: np.ndarray, A: np.ndarray) -> np.ndarray:
    """The float64 reference retraction the declaration names (N/A for "other")."""
    from ..profiles import OTHER_RETRACTION

    if d.retraction == OTHER_RETRACTION:
        raise NotApplicable(f"{d.name!r} declares retraction={OTHER_RETRACTION!r}: the reference has no formula "
                            "to compare values with (feasibility and order are still checked)")
    if d.retraction == "cayley":
        return man.cayley(W, A)
    return man.retract(W, A, d.retraction)


@register("geometry.retraction.value", "geometry",
          "retract(W, ξ) equals the reference retraction the declaration names (ManifoldDecl."
          "retraction: rescale/normalize/projection/polar/qr/cayley) for tangent ξ of sizes "
          "0.1·r, 0.5·r (full: also 1e-3·r, r), on every declared shape, at (W, ξ) and at (W, ξ) "
          "with the first column of their tall form negated, in the declared dtype.",
          requires={"retract"}, cases=_value_cases, applies=_applies,
          catches=("QR retraction without the sign fix (also on the wide path only)",
                   "a first-order retraction declared polar", "Cayley retraction with the ½ missing",
                   "retraction other than the declared one, in float32 too"))
def retraction_value(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    man = d.reference()
    W, A = case.arrays["W"], case.arrays["A"]
    want = _reference_retraction(d, man, W, A)
    got = _call_man(ctx, "retract", d, W, A)
    err = _err(got, want)
    # Error model: the exact-identity bound c·u·n_eff·scale (c = 100, n_eff = the larger side) of
    # the declared dtype with scale = ‖W‖_F + ‖ξ‖_F ≥ ‖W + ξ‖_F, the size of the matrix every
    # declared retraction normalises; the rounding of W and ξ to the dtype (u·scale) is inside
    # it. At a tangent ξ each declared map is well conditioned in W + ξ: σ_min(W + ξ) ≥ s on
    # Stiefel ((W + ξ)ᵀ(W + ξ) = s²I + ξᵀξ: polar and QR factors), ‖W + ξ‖ ≥ R on the spheres
    # (normalisation 1-Lipschitz), σ₁(W + ξ) ≥ R on the spectral sphere (clip = projection onto a
    # convex ball; rescale Lipschitz ≤ 1 + √min(m, n)), I − ½K with K skew has σ_min ≥ 1
    # (Cayley); c = 100 absorbs these constants (measured, seeds 0–4: correct fp64 retractions —
    # gpu_impl, geoopt, pymanopt, audit 5b's torch one — ≤ 0.05 of the bound, fp32 ≤ 0.01).
    tol = T.exact_identity(d.dtype, max(W.shape), scale=float(np.linalg.norm(W) + np.linalg.norm(A)))
    return Measurement("‖R_W(ξ) − R*_W(ξ)‖_F", err, tol, err <= tol.bound,
                       {"manifold": d.name, "retraction": d.retraction})


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


def _order_t_scale(d: Any, W: np.ndarray, xi: np.ndarray) -> float:
    """Factor on the t-range of the slope fit: 1, except on the spectral sphere, where σ₁(W + tξ)
    has Taylor coefficients ∝ ‖ξ‖^k/(σ₁ − σ₂)^{k−1}: once t‖ξ‖ approaches the gap the t³ terms
    bend the log-log fit (audit 5b: gap 0.025 → slope 1.908 for the reference's OWN rescale on
    t ∈ [1e-3, 1e-1]), so t is scaled by min(1, (σ₁ − σ₂)/‖ξ‖_F) — with random_point's relative
    gap ≥ 1e-2 the smallest t is ≥ 1e-5·R, where e(t) ≥ t²‖ξ‖²/(2R) stays far above the floor."""
    if d.kind != "spectral_sphere":
        return 1.0
    s = np.linalg.svd(W, compute_uv=False)
    gap = float(s[0] - s[1]) if s.size > 1 else float(s[0])
    return min(1.0, gap / max(float(np.linalg.norm(xi)), 1e-300))


@register("geometry.retraction.order", "geometry",
          "Taylor slopes of the retraction (CLAIMS G-5): ‖R(tξ) − W − tξ‖ = O(t²) (slope 2) and the "
          "tangent part is O(t^{order+1}) for the declared order, t ∈ [1e-3, 1e-1] (× min(1, "
          "(σ₁ − σ₂)/‖ξ‖_F) on the spectral sphere).",
          requires={"retract"}, cases=_order_cases, applies=_applies,
          catches=("retraction skipped", "first-order retraction declared second order"))
def retraction_order(ctx: Context, case: Case) -> Measurement:
    d = _decl(ctx, case)
    if d.dtype != "float64":
        raise NotApplicable("Taylor slopes need float64 (e(t) ≥ 10³·u·scale down to t = 1e-3)")
    man = d.reference()
    W, xi = case.arrays["W"], case.arrays["xi"]
    ts = np.geomspace(1e-3, 1e-1, 7) * _order_t_scale(d, W, xi)
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
                        "declared_order": d.retraction_order, "t_max": float(ts[-1])})


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


# ------------------------------------------------------------------ geodesic capabilities
# dist, log, exp, project_point, riemannian_gradient, transport (issue 12 item 4).
#
# Cases: every declared manifold × every shape × the dtypes float64, the declared ``dtype`` and
# ``extra_dtypes``; inputs are rounded to the dtype *before* the case is stored (the repro holds
# exactly what the target saw). The truth is the reference evaluated in float64 on the rounded
# inputs moved onto the manifold (X* = P_M(X̃), A* = P_{X*}(Ã)).
#
# Error model (one for every capability; written once here): a backward-stable evaluation in
# dtype d returns the exact value at inputs perturbed by O(u_d) per entry, and the operations are
# Lipschitz-1 in each argument in the embedded metric (dist, exp, transport, projection onto a
# sphere) or have the stated condition number κ (log: max(1, θ/sin θ) per sphere; polar factor:
# σ₁/σ_n). So
#     |out − out*| ≤ κ·(e_in + C·u_d·(R + √N·|out*|)),   C = 8,
# where e_in = ‖X̃ − X*‖_F + ‖Ỹ − Y*‖_F (+ ‖Ã − A*‖_F) is the measured distance of the inputs
# the target saw from the ones the truth uses, R = ‖X*‖_F (the rounding of a normalisation or of
# cos θ·X is relative to the point, not to the result: this is what lets a tiny distance be
# judged RELATIVE to its own size once u·R ≪ θ), and N = entries per sphere/matrix (the
# accumulation of one norm or inner product). C = 8 covers the few roundings of a norm, an
# atan2 and a scaling (measured: correct fp32/bf16/fp64 implementations stay ≤ C/3, see
# tests/conformance/test_geometry_meta.py). A NaN/Inf output where the truth is finite is ∞.

GEO_C = 8.0

_SPHERICAL = ("frobenius_sphere", "oblique", "sphere")
_SPECTRAL_CAPS = ("riemannian_gradient", "project_point")


def _geo_dtypes(d: Any) -> tuple[str, ...]:
    out: list[str] = []
    for dt in ("float64", d.dtype) + tuple(d.extra_dtypes):
        if dt not in out:
            out.append(dt)
    return tuple(out)


def _round(x: np.ndarray, dt: str) -> np.ndarray:
    return to_numpy(tensor(x, dt))


def _group_size(d: Any, shape: tuple[int, ...]) -> int:
    """Entries per sphere (oblique: per row/column) or per matrix; Stiefel: (larger side)²."""
    if d.kind == "stiefel":
        return int(max(shape[-2:]) ** 2)
    if d.kind == "oblique":
        return int(shape[-1] if (d.axis or "rows") == "rows" else shape[-2])
    return int(np.prod(shape[-2:]))


def _geo_tol(d: Any, dt: str, R: float, value: float, e_in: float, kappa: float = 1.0,
             n: int = 1) -> Tolerance:
    u = T.unit_roundoff(dt)
    c = GEO_C
    if d.kind == "stiefel":
        # Stiefel/O(n) operations go through expm, a Schur form or an SVD of a (2p)×(2p) block:
        # the project's exact-algorithm model (c = 100, n_eff = the larger side) replaces the
        # few-roundings constant
        c, n = T.EXACT_CONSTANT, max(n, 1)
    b = kappa * (e_in + c * u * (R + np.sqrt(n) * value))
    return Tolerance(float(b), f"κ·(e_in + {c:g}·u·(R + √N·|out*|)) with κ={kappa:.3g}, e_in={e_in:.3g}, "
                     f"u={u:.3e}, R={R:.3g}, N={n}, |out*|={value:.3g}",
                     "backward-stable evaluation, Lipschitz/condition number of the operation "
                     "(conformance/checks/geometry.py, geodesic error model)", dt)


def _setup(ctx: Context, case: Case, cap: str) -> tuple[Any, str]:
    """(declaration, dtype) of a geometry case; N/A if the declaration lists ``cap`` unsupported."""
    d = _decl(ctx, case)
    if cap in d.unsupported:
        raise NotApplicable(f"the profile declares that {d.name!r} does not provide {cap!r}")
    return d, case.params["dtype"]


def _onto(man: Any, X: np.ndarray) -> np.ndarray:
    return man.project_point(X)


def _ref_or_na(fn: Any, *args: Any) -> Any:
    from manifold_oracle.reference.errors import NotAvailableError

    try:
        return fn(*args)
    except NotAvailableError as exc:
        raise NotApplicable(f"the reference has no closed form here: {exc}") from None


def _geo_applies(cap: str) -> Any:
    def applies(ctx: Context) -> str | None:
        if not _decls(ctx):
            return "profile declares no manifold"
        if all(cap in d.unsupported for d in _decls(ctx)):
            return f"the profile declares {cap!r} unsupported on every manifold"
        return None
    return applies


def _geo_iter(ctx: Context, cap: str) -> Any:
    """(decl, reference manifold, dtype, shape) for every declared manifold offering ``cap``
    (the spectral sphere has no closed-form geodesics: only its projection, gradient and — when
    declared "projection" — its vector transport P_Y(A) are checked), every checked dtype and
    shape."""
    for d in _decls(ctx):
        spectral_ok = cap in _SPECTRAL_CAPS or (cap == "transport" and d.transport == "projection")
        if cap in d.unsupported or (d.kind == "spectral_sphere" and not spectral_ok):
            continue
        man = d.reference()
        for dt in _geo_dtypes(d):
            for shp in d.shapes:
                yield d, man, dt, shp


def _err(got: np.ndarray, want: np.ndarray) -> float:
    """‖got − want‖_F, ∞ when the target returned a NaN/Inf."""
    return float(np.linalg.norm(got - want)) if np.all(np.isfinite(got)) else float("inf")


def _pair_cases(ctx: Context, salt: str, cap: str) -> list[Case]:
    """(X, Y) pairs: coincident, nearby (geodesic distance 1e-6, 1e-3), moderate (0.7·R/√rows)
    and — on spheres and oblique — antipodal and near-antipodal (every sphere at angle π − δ,
    δ = 1e-2, 1e-5: Y = exp_X((1 − δ/π)·half turn), drawn from a second generator so the other
    pairs stay those of earlier versions)."""
    rng = ctx.rng(salt)
    rng_near = ctx.rng(salt + ".near")
    out = []
    for d, man, dt, shp in _geo_iter(ctx, cap):
        X = man.random_point(rng, shp)
        xi = man.random_tangent(rng, X)
        pairs = [("coincident", X)]
        for t in (1e-6, 1e-3, 0.7):
            pairs.append((f"nearby {t:g}" if t < 0.1 else f"apart {t:g}", man.exp(X, t * xi)))
        if d.kind in _SPHERICAL:
            pairs.append(("antipodal", -X))
            half = _half_turn(d, X, man.random_tangent(rng_near, X), rng_near)
            # only where the dtype resolves δ (δ ≥ 100·u): in bf16/fp16 the rounded pair IS the
            # antipode (−x + δ·z rounds to −x entrywise), which the "antipodal" case already covers
            for delta in (d_ for d_ in (1e-2, 1e-5) if d_ >= 100.0 * T.unit_roundoff(dt)):
                pairs.append((f"near-antipodal π−{delta:g}", man.exp(X, (1.0 - delta / np.pi) * half)))
        Xr = _round(X, dt)
        for label, Y in pairs:
            Yr = Xr.copy() if label == "coincident" else _round(Y, dt)
            out.append(Case(f"{d.name} {shp} {dt} {label}", {"X": Xr, "Y": Yr},
                            {"manifold": d.name, "dtype": dt, "kind": label}))
    return out


def _call_geo(ctx: Context, cap: str, d: Any, dt: str, *arrays: np.ndarray) -> np.ndarray:
    return to_numpy(as_output(call(ctx, cap, d.name, *[tensor(a, dt) for a in arrays])))


def _truth_points(d: Any, case: Case) -> tuple[Any, np.ndarray, np.ndarray, float]:
    man = d.reference(point_tol=1e-1)
    X, Y = case.arrays["X"], case.arrays["Y"]
    Xs, Ys = _onto(man, X), _onto(man, Y)
    if case.params["kind"] == "antipodal":
        Ys = -Xs
    e_in = float(np.linalg.norm(X - Xs) + np.linalg.norm(Y - Ys))
    return man, Xs, Ys, e_in


@register("geometry.dist", "geometry",
          "dist(X, Y) equals the geodesic distance of the reference (2·atan2 form, float64) for "
          "coincident, nearby (1e-6, 1e-3), distant, antipodal and near-antipodal (π − 1e-2, "
          "π − 1e-5 where the dtype resolves it) points, in float64 and in the "
          "declared dtypes, accurate RELATIVE to a small distance (geodesic error model).",
          requires={"dist"}, cases=lambda c: _pair_cases(c, "geo.dist", "dist"), applies=_geo_applies("dist"),
          catches=("arccos of a clamped inner product (clamp floor)", "NaN at the antipode",
                   "per-row distances not combined as a product metric"))
def geo_dist(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "dist")
    man, Xs, Ys, e_in = _truth_points(d, case)
    want = float(_ref_or_na(man.dist, Xs, Ys))
    got = _call_geo(ctx, "dist", d, dt, case.arrays["X"], case.arrays["Y"])
    val = float(np.sum(got)) if got.size == 1 else float("nan")
    err = abs(val - want) if np.isfinite(val) else float("inf")
    tol = _geo_tol(d, dt, float(np.linalg.norm(Xs)), want, e_in, n=_group_size(d, Xs.shape))
    return Measurement("|dist − dist*|", err, tol, err <= tol.bound,
                       {"dist": val, "dist_true": want, "manifold": d.name})


def _log_kappa(d: Any, man: Any, Xs: np.ndarray, Ys: np.ndarray) -> float:
    if d.kind not in _SPHERICAL:
        return 1.0
    from manifold_oracle.reference.geodesics import sphere_angle

    rows = Xs if (d.kind != "oblique" or (d.axis or "rows") == "rows") else Xs.T
    rows_y = Ys if (d.kind != "oblique" or (d.axis or "rows") == "rows") else Ys.T
    if d.kind == "frobenius_sphere":
        rows, rows_y = Xs.reshape(1, -1), Ys.reshape(1, -1)
    th = np.max(sphere_angle(rows, rows_y))
    return float(max(1.0, th / max(np.sin(th), 1e-300)))


def _refusal(exc: Exception) -> bool:
    """A clear refusal: the reference's typed errors or the usual Python numeric exceptions."""
    from manifold_oracle.reference.errors import OracleError

    return isinstance(exc, (OracleError, ValueError, ArithmeticError, NotImplementedError, RuntimeError))


@register("geometry.log", "geometry",
          "log(X, Y) equals the reference logarithm (the minimising geodesic's initial velocity) for "
          "coincident (exactly 0), nearby, distant and near-antipodal (π − 1e-2, π − 1e-5) points; at "
          "the antipode (log not unique) a clear error or a tangent vector of length π·r is "
          "accepted, a NaN is not.",
          requires={"log"}, cases=lambda c: _pair_cases(c, "geo.log", "log"), applies=_geo_applies("log"),
          catches=("NaN at coincident points (arccos(1 + δ))", "NaN or garbage at the antipode",
                   "log not tangent", "refusal of valid input near the cut locus"))
def geo_log(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "log")
    man, Xs, Ys, e_in = _truth_points(d, case)
    R = float(np.linalg.norm(Xs))
    n = _group_size(d, Xs.shape)
    if case.params["kind"] == "antipodal":
        want_len = float(_ref_or_na(man.dist, Xs, Ys))
        try:
            got = _call_geo(ctx, "log", d, dt, case.arrays["X"], case.arrays["Y"])
        except Exception as exc:  # noqa: BLE001 - a clear refusal is one accepted answer
            if _refusal(exc):
                return boolean("antipode: neither a refusal nor a tangent vector of length π·r", True,
                               "refusal or tangent of length π·r", "MATH §4 (cut locus)",
                               raised=f"{type(exc).__name__}: {exc}")
            raise
        if not np.all(np.isfinite(got)):
            err = float("inf")
        else:
            err = abs(float(np.linalg.norm(got)) - want_len) + float(np.linalg.norm(man.project_tangent(Xs, got) - got))
        tol = _geo_tol(d, dt, R, want_len, e_in, n=n)
        return Measurement("antipode: |‖log‖ − π·r| + ‖normal part‖", err, tol, err <= tol.bound)
    want = _ref_or_na(man.log, Xs, Ys)
    got = _call_geo(ctx, "log", d, dt, case.arrays["X"], case.arrays["Y"])
    err = _err(got, want)
    tol = _geo_tol(d, dt, R, float(np.linalg.norm(want)), e_in, kappa=_log_kappa(d, man, Xs, Ys), n=n)
    return Measurement("‖log − log*‖_F", err, tol, err <= tol.bound, {"manifold": d.name})


def _tangent_cases(ctx: Context, salt: str, cap: str, lengths: tuple[float, ...]) -> list[Case]:
    rng = ctx.rng(salt)
    out = []
    for d, man, dt, shp in _geo_iter(ctx, cap):
        X = man.random_point(rng, shp)
        xi = man.random_tangent(rng, X)
        uniform = None
        for t in lengths:
            if t < 0 and d.kind not in _SPHERICAL:
                continue
            if t < 0:  # t < 0 encodes "length |t|·π·R" (t = −1 reaches the antipode on a sphere)
                if uniform is None:
                    uniform = _half_turn(d, X, xi, rng)
                A = -t * uniform
            else:
                A = t * xi
            label = ("zero" if t == 0 else "to the antipode" if t == -1 else f"‖A‖={-t:g}·π·r" if t < 0
                     else f"‖A‖={t:g}")
            out.append(Case(f"{d.name} {shp} {dt} {label}", {"X": _round(X, dt), "A": _round(A, dt)},
                            {"manifold": d.name, "dtype": dt, "kind": label}))
    return out


def _half_turn(d: Any, X: np.ndarray, xi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tangent vector at X that reaches the antipode at time 1: length π·R along the unit ``xi``
    on a single sphere; on oblique, length π·r on EVERY row/column (``_oblique_uniform``, one draw)."""
    if d.kind == "oblique":
        return np.pi * float(np.sqrt(_count(d, X))) * float(np.max(d.radius)) * _oblique_uniform(d, X, rng)
    return np.pi * float(np.linalg.norm(X)) * xi


def _count(d: Any, X: np.ndarray) -> int:
    return int(X.shape[-2] if (d.axis or "rows") == "rows" else X.shape[-1])


def _oblique_uniform(d: Any, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tangent vector with the same norm on every row/column (so ‖A‖ = π·√count sends every
    row to its antipode), unit Frobenius norm per row/column divided by √count."""
    rows = X if (d.axis or "rows") == "rows" else X.T
    Z = rng.standard_normal(rows.shape)
    Z = Z - np.sum(Z * rows, axis=1, keepdims=True) / np.sum(rows * rows, axis=1, keepdims=True) * rows
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True) / np.sqrt(rows.shape[0])
    return Z if (d.axis or "rows") == "rows" else Z.T


def _truth_tangent(d: Any, case: Case) -> tuple[Any, np.ndarray, np.ndarray, float]:
    man = d.reference(point_tol=1e-1)
    X, A = case.arrays["X"], case.arrays["A"]
    Xs = _onto(man, X)
    As = man.project_tangent(Xs, A)
    return man, Xs, As, float(np.linalg.norm(X - Xs) + np.linalg.norm(A - As))


@register("geometry.exp", "geometry",
          "exp(X, A) equals the reference exponential map (float64) for A = 0 (exactly X), tiny "
          "(1e-6, 1e-3), moderate, antipode-reaching (‖A‖ = π·r) and past-the-antipode (1.5·π·r) "
          "tangent vectors, in float64 and the declared dtypes.", requires={"exp"},
          cases=lambda c: _tangent_cases(c, "geo.exp", "exp", (0.0, 1e-6, 1e-3, 0.7, -1.0, -1.5)),
          applies=_geo_applies("exp"), catches=("0/0 at A = 0", "sin(t)/t with t in the wrong units",
                                                "geodesic length clamped to π·r"))
def geo_exp(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "exp")
    man, Xs, As, e_in = _truth_tangent(d, case)
    want = _ref_or_na(man.exp, Xs, As)
    got = _call_geo(ctx, "exp", d, dt, case.arrays["X"], case.arrays["A"])
    err = _err(got, want)
    tol = _geo_tol(d, dt, float(np.linalg.norm(Xs)), float(np.linalg.norm(As)), e_in,
                   n=_group_size(d, Xs.shape))
    return Measurement("‖exp − exp*‖_F", err, tol, err <= tol.bound, {"manifold": d.name})


def _rgrad_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.rgrad")
    out = []
    for d, man, dt, shp in _geo_iter(ctx, "riemannian_gradient"):
        X = man.random_point(rng, shp)
        for scale in (0.0, 1.0, 1e3):  # ambient G: tangent and normal parts of equal size
            G = scale * rng.standard_normal(shp)
            out.append(Case(f"{d.name} {shp} {dt} ‖G‖~{scale:g}", {"X": _round(X, dt), "G": _round(G, dt)},
                            {"manifold": d.name, "dtype": dt, "kind": "zero" if scale == 0 else "ambient"}))
    return out


@register("geometry.riemannian_gradient", "geometry",
          "riemannian_gradient(W, G) equals the reference Riemannian gradient of the embedded "
          "metric, P_W(G), for random and zero G, in float64 and the declared dtypes.",
          requires={"riemannian_gradient"}, cases=_rgrad_cases, applies=_geo_applies("riemannian_gradient"),
          catches=("Euclidean gradient returned unprojected", "rows/cols swapped"))
def geo_rgrad(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "riemannian_gradient")
    man = d.reference(point_tol=1e-1)
    X, G = case.arrays["X"], case.arrays["G"]
    Xs = _onto(man, X)
    want = man.project_tangent(Xs, G)
    got = _call_geo(ctx, "riemannian_gradient", d, dt, X, G)
    err = _err(got, want)
    # P_W is Lipschitz in W with constant 2‖G‖/r per unit of ‖W − W*‖
    nG = float(np.linalg.norm(G))
    e_in = 2.0 * float(np.linalg.norm(X - Xs)) * nG / max(float(np.linalg.norm(Xs)), 1e-300)
    # spectral sphere: the projector Θ = u₁v₁ᵀ moves by 1/gap per unit perturbation (MATH §4.4)
    tol = _geo_tol(d, dt, nG, float(np.linalg.norm(want)), e_in, kappa=_gap_scale(d, Xs),
                   n=_group_size(d, Xs.shape))
    return Measurement("‖rgrad − P_W(G)‖_F", err, tol, err <= tol.bound, {"manifold": d.name})


def _point_proj_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.projx")
    out = []
    for d, _, dt, shp in _geo_iter(ctx, "project_point"):
        for scale in (1.0, 1e-3, 1e3):
            Y = _round(scale * rng.standard_normal(shp), dt)
            out.append(Case(f"{d.name} {shp} {dt} ‖Y‖~{scale:g}", {"Y": Y},
                            {"manifold": d.name, "dtype": dt, "kind": "ambient"}))
        out.append(Case(f"{d.name} {shp} {dt} zero", {"Y": np.zeros(shp)},
                        {"manifold": d.name, "dtype": dt, "kind": "zero"}))
        if d.kind == "oblique":
            Y = _round(rng.standard_normal(shp), dt)
            if (d.axis or "rows") == "rows":
                Y[0] = 0.0
            else:
                Y[:, 0] = 0.0
            out.append(Case(f"{d.name} {shp} {dt} one zero {d.axis[:-1] if d.axis else 'row'}",
                            {"Y": Y}, {"manifold": d.name, "dtype": dt, "kind": "zero"}))
    return out


@register("geometry.project_point", "geometry",
          "project_point(Y) equals the reference metric projection onto the manifold (nearest point; "
          "polar factor on Stiefel) for ambient Y at scales 1e-3…1e3; at a zero input (row/column), "
          "where every point is nearest or none is, a clear error or a feasible output is accepted, "
          "a NaN is not.", requires={"project_point"}, cases=_point_proj_cases,
          applies=_geo_applies("project_point"),
          catches=("NaN from normalising a zero vector (no zero guard)", "rows/cols swapped"))
def geo_project_point(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "project_point")
    man = d.reference(point_tol=1e-1)
    Y = case.arrays["Y"]
    if case.params["kind"] == "zero":
        try:
            got = _call_geo(ctx, "project_point", d, dt, Y)
        except Exception as exc:  # noqa: BLE001 - a clear refusal is an accepted answer
            if _refusal(exc):
                return boolean("degenerate input: neither a refusal nor a feasible point", True,
                               "refusal or feasible output", "MATH §4 (projection of 0)",
                               raised=f"{type(exc).__name__}: {exc}")
            raise
        v = float(np.max(man.violation(got))) if np.all(np.isfinite(got)) else float("inf")
        tol = _geo_tol(d, dt, 1.0, 1.0, 0.0, n=_group_size(d, Y.shape))
        return Measurement("degenerate input: c_M(output) (∞ for NaN/Inf)", v, tol, v <= tol.bound)
    want = man.project_point(Y)
    got = _call_geo(ctx, "project_point", d, dt, Y)
    err = _err(got, want)
    kappa = _gap_scale(d, Y)  # spectral sphere: the top pair is conditioned by 1/gap
    if d.kind == "stiefel":
        s = np.linalg.svd(Y, compute_uv=False)
        kappa = float(s[0] / max(s[-1], 1e-300))
    elif d.kind == "oblique":
        rows = Y if (d.axis or "rows") == "rows" else Y.T
        nr = np.linalg.norm(rows, axis=1)
        kappa = float(np.max(nr) / max(np.min(nr), 1e-300))
    R = float(np.linalg.norm(want))
    tol = _geo_tol(d, dt, R, R, 0.0, kappa=kappa, n=_group_size(d, Y.shape))
    return Measurement("‖P_M(Y) − P_M*(Y)‖_F", err, tol, err <= tol.bound, {"manifold": d.name})


def _transport_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("geo.transp")
    rng_spec = ctx.rng("geo.transp.spectral")  # own generator: the other manifolds' cases unchanged
    out = []
    for d, man, dt, shp in _geo_iter(ctx, "transport"):
        spectral = d.kind == "spectral_sphere"
        r = rng_spec if spectral else rng
        X = man.random_point(r, shp)
        xi, A = man.random_tangent(r, X), man.random_tangent(r, X)
        # Y along the geodesic; the spectral sphere has none: its default retraction (rescale)
        move = man.retract if spectral else man.exp
        for label, Y, a in (("coincident", X, A), ("nearby 1e-3", move(X, 1e-3 * xi), A),
                            ("apart 0.7", move(X, 0.7 * xi), A), ("zero vector", move(X, 0.7 * xi), 0 * A)):
            out.append(Case(f"{d.name} {shp} {dt} {label}",
                            {"X": _round(X, dt), "Y": _round(Y, dt), "A": _round(a, dt)},
                            {"manifold": d.name, "dtype": dt, "kind": label}))
    return out


@register("geometry.transport", "geometry",
          "transport(X, Y, A) equals the declared vector transport of the reference (ManifoldDecl."
          "transport: projection P_Y(A) or parallel transport) and lies in T_Y M; zero goes to zero.",
          requires={"transport"}, cases=_transport_cases, applies=_geo_applies("transport"),
          catches=("transport not tangent at Y (projection at X), spectral sphere included",
                   "parallel/projection confused"))
def geo_transport(ctx: Context, case: Case) -> Measurement:
    d, dt = _setup(ctx, case, "transport")
    man = d.reference(point_tol=1e-1)
    X, Y, A = case.arrays["X"], case.arrays["Y"], case.arrays["A"]
    Xs, Ys = _onto(man, X), _onto(man, Y)
    As = man.project_tangent(Xs, A)
    want = _ref_or_na(man.transport, Xs, Ys, As, d.transport)
    got = _call_geo(ctx, "transport", d, dt, X, Y, A)
    err = _err(got, want)
    nA = float(np.linalg.norm(A))
    R = float(np.linalg.norm(Xs))
    e_in = float(np.linalg.norm(A - As)) + (float(np.linalg.norm(X - Xs) + np.linalg.norm(Y - Ys)) * nA
                                            / max(R, 1e-300))
    # spectral sphere: P_Y moves by 1/gap(Y) per unit perturbation of Y or A's rounding (MATH §4.4)
    tol = _geo_tol(d, dt, nA, float(np.linalg.norm(want)), e_in, kappa=_gap_scale(d, Ys),
                   n=_group_size(d, Xs.shape))
    return Measurement("‖T(A) − T*(A)‖_F", err, tol, err <= tol.bound, {"manifold": d.name})
