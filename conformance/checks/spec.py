"""Spec conformance: the target computes what its declared profile says (CONVENTIONS.md §12.1).

For a Newton–Schulz-type orthogonaliser the expected output is the exact singular-value map of
the declared schedule applied to the input after the declared cast (MATH.md §3.2, §3.4; CLAIMS
P-4); for an exact msign it is ``reference.msign``; for a polar factor the defining properties
of MATH.md §2.3 (entries are not unique on rank-deficient input, CLAIMS P-3).
"""

from __future__ import annotations

import numpy as np

import manifold_oracle.reference as R
from .. import tolerances as T
from ..cases import matrix_cases
from ..expected import orthogonalise, return_dtype_for, round_to
from . import Case, Context, Measurement, register
from ._util import kappa, rank_rtol_for, boolean, call, input_dtype, require_ns_or_exact, run_msign, spec2, tensor, to_numpy
from ..adapters import as_output


def _ns_cases(ctx: Context) -> list[Case]:
    cases = matrix_cases(ctx, "spec.ns")
    if ctx.profile.schedule == "exact" and input_dtype(ctx.profile) != "float64":
        # an exact msign of σ/σ₁ = 1e-6 held in fp32 is ill-posed (below the rank threshold)
        cases = [c for c in cases if "tiny" not in c.label]
    return cases


@register("spec.orthogonaliser.output", "spec",
          "The orthogonaliser's output equals the declared map U·φ(Σ/(s·N_ε))·Vᵀ of the cast input "
          "(exact msign for schedule='exact') in spectral norm, within the compute dtype's bound.",
          requires={"msign"}, cases=_ns_cases, applies=require_ns_or_exact,
          catches=("wrong NS coefficient", "bf16 where profile says fp32", "wrong safety/eps form"))
def orth_output(ctx: Context, case: Case) -> Measurement:
    dtype = input_dtype(ctx.profile)
    out, _, g = run_msign(ctx, case.arrays["G"], dtype)
    exp = orthogonalise(ctx.profile, g, dtype)
    tol = T.orth_tolerance(ctx.profile, g, exp, dtype)
    if _declares_polar(ctx):
        err, parts = _polar_defect(out, exp) if np.all(np.isfinite(out)) else (float("inf"), {})
        return Measurement("max(‖(O − msign G)·PR‖₂, ‖isometry defect‖₂)", err, tol, err <= tol.bound,
                           {"input_dtype": dtype, "exact_form": "polar", **parts})
    err = spec2(out - exp) if np.all(np.isfinite(out)) else float("inf")
    return Measurement("‖O − O*‖₂", err, tol, err <= tol.bound, {"input_dtype": dtype})


def _declares_polar(ctx: Context) -> bool:
    """The profile declares an exact polar factor (``exact_form='polar'``): on rank-deficient input
    any isometry completion on the null space is correct (MATH §2.3), so only the row-space part
    and the isometry are determined."""
    return ctx.profile.schedule == "exact" and ctx.profile.exact_form == "polar"


def _polar_defect(out: np.ndarray, ms: np.ndarray) -> tuple[float, dict[str, float]]:
    """(max(‖(O − M)·MᵀM‖₂, ‖OᵀO − I‖₂ or ‖OOᵀ − I‖₂), parts) for M = msign of the cast input:
    a polar factor equals M on the row space (MᵀM = V_rV_rᵀ) and is a full isometry (MATH §2.3)."""
    mT = np.swapaxes(ms, -1, -2)
    oT = np.swapaxes(out, -1, -2)
    m, n = out.shape[-2:]
    gram = oT @ out if m >= n else out @ oT
    e_range = spec2((out - ms) @ mT @ ms)
    e_iso = spec2(gram - np.eye(min(m, n)))
    return max(e_range, e_iso), {"row_space_error": e_range, "isometry_defect": e_iso}


@register("spec.orthogonaliser.singular_values", "spec",
          "Sorted output singular values equal the sorted |φ(σᵢ/(s·N_ε))| of the declared schedule "
          "(Weyl: the same spectral-norm bound applies).",
          requires={"msign"}, cases=_ns_cases, applies=require_ns_or_exact,
          catches=("wrong NS coefficient", "wrong step count or extension rule"))
def orth_singular_values(ctx: Context, case: Case) -> Measurement:
    dtype = input_dtype(ctx.profile)
    out, _, g = run_msign(ctx, case.arrays["G"], dtype)
    exp = orthogonalise(ctx.profile, g, dtype)
    if not np.all(np.isfinite(out)):
        return Measurement("max |σ(O) − σ(O*)|", float("inf"), T.orth_tolerance(ctx.profile, g, exp, dtype), False)
    so = np.sort(np.linalg.svd(out, compute_uv=False), axis=-1)
    # a declared polar factor is a full isometry: every singular value is 1 (MATH §2.3)
    se = (np.ones_like(so) if _declares_polar(ctx) else np.sort(np.linalg.svd(exp, compute_uv=False), axis=-1))
    err = float(np.max(np.abs(so - se)))
    tol = T.orth_tolerance(ctx.profile, g, exp, dtype)
    return Measurement("max |σ(O) − σ(O*)|", err, tol, err <= tol.bound,
                       {"sigma_out_max": float(so.max()), "sigma_expected_max": float(se.max())})


def _dtype_cases(ctx: Context) -> list[Case]:
    rng = ctx.rng("spec.dtype")
    return [Case(f"{dt} input", {"G": rng.standard_normal((6, 4))}, {"dtype": dt})
            for dt in ctx.profile.param_dtypes + (("float64",) if ctx.profile.compute_dtype == "float64" else ())]


@register("spec.orthogonaliser.return_dtype", "spec",
          "The output dtype is the declared return dtype and the shape is preserved.",
          requires={"msign"}, cases=_dtype_cases, applies=require_ns_or_exact,
          catches=("undeclared dtype promotion",))
def orth_dtype(ctx: Context, case: Case) -> Measurement:
    dt = case.params["dtype"]
    G = round_to(case.arrays["G"], dt)
    out = as_output(call(ctx, "msign", tensor(G, dt)))
    want = return_dtype_for(ctx.profile, dt)
    got = str(out.dtype).replace("torch.", "")
    return boolean("dtype/shape mismatch", got == want and tuple(out.shape) == G.shape,
                   f"dtype == {want} and shape == {G.shape}", "profile return_dtype (CONVENTIONS §1)",
                   got_dtype=got, got_shape=list(out.shape))


def _zero_cases(ctx: Context) -> list[Case]:
    return [Case(f"zero {s}", {"G": np.zeros(s)}) for s in ((5, 3), (3, 5), (4, 4))]


@register("spec.orthogonaliser.zero_input", "spec",
          "A zero input behaves as the profile's zero_policy declares (msign(0) = 0 for eps forms, "
          "MATH §2.2; NaN or a raised error for eps_form='none').",
          requires={"msign"}, cases=_zero_cases, applies=require_ns_or_exact,
          catches=("undocumented NaN on zero gradients",))
def orth_zero(ctx: Context, case: Case) -> Measurement:
    pol = ctx.profile.zero_policy
    dtype = input_dtype(ctx.profile)
    try:
        out, _, _ = run_msign(ctx, case.arrays["G"], dtype)
    except Exception as exc:  # noqa: BLE001 - the policy decides whether raising is correct
        return boolean("zero-input behaviour", pol == "raise", f"zero_policy={pol}",
                       "profile zero_policy", raised=f"{type(exc).__name__}: {exc}")
    if pol == "zero":
        ok = bool(np.all(out == 0))
    elif pol == "nan":
        ok = bool(np.any(np.isnan(out)))
    elif pol == "identity":
        ok = bool(np.all(np.isfinite(out)))
    else:
        ok = False
    return boolean("zero-input behaviour", ok, f"zero_policy={pol}", "profile zero_policy; MATH §2.2–2.3",
                   max_abs=float(np.nanmax(np.abs(out))) if out.size else 0.0)


# ----------------------------------------------------------------------------- polar factor
def _polar_cases(ctx: Context) -> list[Case]:
    return matrix_cases(ctx, "spec.polar")


def _polar(ctx: Context, X: np.ndarray) -> np.ndarray:
    dt = input_dtype(ctx.profile)
    return to_numpy(as_output(call(ctx, "polar_factor", tensor(X, dt))))


@register("spec.polar.isometry", "spec",
          "polar_factor(X) is a full isometry: UᵀU = I (tall) or UUᵀ = I (wide) (MATH §2.3).",
          requires={"polar_factor"}, cases=_polar_cases, catches=("not an isometry",))
def polar_isometry(ctx: Context, case: Case) -> Measurement:
    X = case.arrays["G"]
    U = _polar(ctx, X)
    m, n = X.shape[-2:]
    gram = U.T @ U if m >= n else U @ U.T
    err = spec2(gram - np.eye(gram.shape[0]))
    tol = T.exact_identity(input_dtype(ctx.profile), max(m, n))
    return Measurement("‖UᵀU − I‖₂", err, tol, err <= tol.bound)


@register("spec.polar.reconstruction", "spec",
          "X = U·H with H = UᵀX symmetric positive semidefinite (MATH §2.3; CLAIMS P-3).",
          requires={"polar_factor"}, cases=_polar_cases, catches=("wrong factor (e.g. U·V instead of U·Vᵀ)",))
def polar_reconstruction(ctx: Context, case: Case) -> Measurement:
    X = case.arrays["G"]
    U = _polar(ctx, X)
    m, n = X.shape[-2:]
    scale = max(spec2(X), np.finfo(float).tiny)
    if m >= n:
        H = U.T @ X
        rec = U @ H
    else:  # right polar of a wide matrix: X = U H with H = UᵀX (n×n), U has orthonormal rows
        H = U.T @ X
        rec = U @ H
    asym = spec2(H - H.T) / scale
    neg = max(0.0, -float(np.min(np.linalg.eigvalsh(0.5 * (H + H.T))))) / scale
    err = max(spec2(rec - X) / scale, asym, neg)
    tol = T.exact_identity(input_dtype(ctx.profile), max(m, n))
    return Measurement("max(‖UH − X‖₂, ‖H − Hᵀ‖₂, −λ_min(H))/‖X‖₂", err, tol, err <= tol.bound,
                       {"asymmetry": asym, "negative_eigenvalue": neg})


@register("spec.polar.agrees_with_msign_on_range", "spec",
          "On the row space of X the polar factor equals msign(X): ‖(U − msign X)·msign(X)ᵀmsign(X)‖ = 0 "
          "(MATH §2.3; CLAIMS P-3).", requires={"polar_factor"}, cases=_polar_cases)
def polar_range(ctx: Context, case: Case) -> Measurement:
    X = case.arrays["G"]
    U = _polar(ctx, X)
    dt = input_dtype(ctx.profile)
    S = R.msign(X, rank_rtol=rank_rtol_for(dt))
    _, kap = kappa(X, dt)
    err = spec2((U - S) @ S.T @ S)
    tol = T.exact_identity(dt, max(X.shape), scale=kap)
    return Measurement("‖(U − msign X)·PR‖₂", err, tol, err <= tol.bound)


@register("spec.polar.zero_input", "spec",
          "polar_factor(0) follows the declared zero_policy (scipy returns a full isometry, "
          "MATH §2.3; CLAIMS P-3).", requires={"polar_factor"}, cases=_zero_cases)
def polar_zero(ctx: Context, case: Case) -> Measurement:
    pol = ctx.profile.zero_policy
    try:
        U = _polar(ctx, case.arrays["G"])
    except Exception as exc:  # noqa: BLE001
        return boolean("zero-input behaviour", pol == "raise", f"zero_policy={pol}", "profile zero_policy",
                       raised=f"{type(exc).__name__}: {exc}")
    m, n = U.shape
    if pol == "identity":
        gram = U.T @ U if m >= n else U @ U.T
        ok = spec2(gram - np.eye(gram.shape[0])) <= 1e-12
    elif pol == "zero":
        ok = bool(np.all(U == 0))
    elif pol == "nan":
        ok = bool(np.any(np.isnan(U)))
    else:
        ok = False
    return boolean("zero-input behaviour", ok, f"zero_policy={pol}", "profile zero_policy; MATH §2.3")
