"""Tolerances from error models (CLAIMS.md §0.2; CONVENTIONS.md §12.10).

Every tolerance is a :class:`Tolerance`: the bound, the formula that produced it and where the
formula comes from. The report records bound, measured value and margin (bound / measured).

Models:

* :func:`exact_identity` — exact identities evaluated in a dtype with an exact (SVD) algorithm:
  ``c·u·n_eff·scale`` with c = 100 (CLAIMS §0.2; u = unit roundoff of the dtype).
* :func:`newton_schulz` — a declared polynomial schedule run in a low-precision dtype: the
  normwise forward error of K steps of X ← p_j(X) is bounded by Σ_j δ_j·∏_{l>j} L_l, where
  δ_j ≈ u·√n_eff·(|a_j| + |b_j|·X_j² + |c_j|·X_j⁴)·X_j is the rounding of step j (relative to
  the largest *term* of the polynomial, not to its value: the Polar Express first step adds terms
  of size 8, 23 and 16 to produce a value near 1; X_j = the largest normalised singular value
  entering step j) and L_l is the local Lipschitz constant of p_l along the singular-value
  trajectory (max(|p_l′(x_i)|, |p_l(x_i)/x_i|), which bound the Fréchet derivative of an odd
  matrix polynomial). An error component in singular direction i is amplified by the later
  steps along *that* singular value's trajectory, so G = max_i Σ_j w_j·∏_{l>j} L_{l,i}
  (:func:`trajectory_gain`, w_j = δ_j/(u·√n_eff)), plus X₀·∏_l L_{l,i} for the rounding of the
  normalised input itself. Bound = ``c_dtype·u·√n_eff·G``.
  Calibration (kept honest, done once and recorded here): 5 schedules (KJ, YJ5, EO Polar
  Express, dion Polar Express, Modula NS6) × fp32/fp16/bf16 × 120 spectrum-controlled cases
  (geometric, linear, clustered and random spectra; 1…48 per side, κ ≤ 10³, half of them rank
  deficient; torch.optim.Muon's and muon-optimizer's own bf16 routines for two thirds of the KJ
  bf16 cases) gave worst measured/(u·√n·G): fp32 0.132, fp16 0.068, bf16 0.071 (all on clustered
  spectra). c = 0.4 (fp32, fp16, fp64) and c = 0.22 (bf16) leave a ≥ 3.0× margin. The input cast is
  modelled exactly (the reference maps the *cast* input), so it is not part of this budget. The
  model stays worst case in the small singular directions: on ill-conditioned or rank-deficient
  input a bf16 bound is O(1), because bf16 rounding noise in the null space really is amplified
  by ∏ aⱼ (MATH §3.2).
* torch.testing.assert_close defaults are floors (fp32 1.3e-6, bf16 1.6e-2, fp16 1e-3,
  fp64 1e-7 relative; CLAIMS §0.2), so no bound is tighter than the dtype's own default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Tolerance", "UNIT_ROUNDOFF", "unit_roundoff", "exact_identity", "newton_schulz",
           "trajectory_gain", "rounding", "slope", "bitwise", "ASSERT_CLOSE_RTOL", "torch_dtype_name",
           "initial_x", "orth_tolerance", "step_tolerance", "param_rounding", "cast_ambiguity", "spec2", "rank_rtol_for", "kappa"]

#: unit roundoff u = 2^-p of each dtype name (p = significand bits incl. the implicit one)
UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}

#: torch.testing.assert_close default rtol per dtype (floors of the model; CLAIMS §0.2)
ASSERT_CLOSE_RTOL: dict[str, float] = {
    "float64": 1e-7, "float32": 1.3e-6, "float16": 1e-3, "bfloat16": 1.6e-2,
}

#: constant of the Newton–Schulz model per compute dtype (see the module docstring for the calibration)
NS_CONSTANT: dict[str, float] = {"bfloat16": 0.22, "float16": 0.4, "float32": 0.4, "float64": 0.4}
#: constant of the exact-identity model (CLAIMS §0.2)
EXACT_CONSTANT = 100.0


@dataclass(frozen=True)
class Tolerance:
    """A bound with its formula and provenance (JSON-serialisable through :meth:`to_dict`)."""

    bound: float
    formula: str
    provenance: str
    dtype: str = "float64"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def torch_dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32 / np.float32 / 'float32'."""
    s = str(dtype)
    return s.replace("torch.", "")


def unit_roundoff(dtype: Any) -> float:
    """u of a dtype name, torch dtype or numpy dtype."""
    name = torch_dtype_name(dtype)
    if name not in UNIT_ROUNDOFF:
        raise KeyError(f"no unit roundoff known for dtype {dtype!r}")
    return UNIT_ROUNDOFF[name]


def exact_identity(dtype: Any, n_eff: int, scale: float = 1.0, c: float = EXACT_CONSTANT) -> Tolerance:
    """Exact identity computed by an exact algorithm in ``dtype``: c·u·n_eff·scale."""
    u = unit_roundoff(dtype)
    b = c * u * max(int(n_eff), 1) * float(scale)
    return Tolerance(b, f"{c:g}·u·n_eff·scale = {c:g}·{u:.3e}·{n_eff}·{scale:.3e}",
                     "CLAIMS.md §0.2 exact-identity bound", torch_dtype_name(dtype))


def rounding(dtype: Any, n_ops: float, scale: float = 1.0, c: float = 4.0) -> Tolerance:
    """A few elementwise/reduction roundings in ``dtype``: c·u·n_ops·scale, floored by assert_close."""
    name = torch_dtype_name(dtype)
    u = unit_roundoff(name)
    b = max(c * u * float(n_ops), ASSERT_CLOSE_RTOL.get(name, 0.0) if name != "float64" else 0.0) * scale
    return Tolerance(b, f"max({c:g}·u·n_ops, assert_close rtol)·scale with u={u:.3e}, n_ops={n_ops:g}, "
                     f"scale={scale:.3e}", "CLAIMS.md §0.2 (rounding of a short op sequence; torch floor)", name)


def trajectory_gain(coefficients: Sequence[tuple[float, float, float]], x0: np.ndarray) -> float:
    """G = max_i [X₀·∏_l L_{l,i} + Σ_j w_j·∏_{l>j} L_{l,i}] along each singular value's own
    trajectory from ``x0`` (the first term is the rounding of the normalised input itself).

    w_j = (|a_j| + |b_j|·X_j² + |c_j|·X_j⁴)·X_j with X_j the largest value entering step j (the
    size of the terms step j rounds); L_{l,i} = max(|p_l′(x_i)|, |p_l(x_i)/x_i|) at the iterate
    entering step l (x = 0 gives p′(0) = a). See the module docstring.
    """
    x = np.abs(np.asarray(x0, dtype=np.float64).ravel())
    if x.size == 0:
        return 1.0
    Ls, ws = [], []
    for a, b, c in coefficients:
        X = float(x.max())
        ws.append((abs(a) + abs(b) * X**2 + abs(c) * X**4) * X)
        d = np.abs(a + 3 * b * x**2 + 5 * c * x**4)
        q = np.abs(a + b * x**2 + c * x**4)
        Ls.append(np.maximum(d, q))
        x = np.abs(x * (a + x**2 * (b + c * x**2)))
    K = len(Ls)
    # j = 0: the normalised input X₀ is itself rounded to the compute dtype (normalise-then-cast,
    # or a normaliser computed in the compute dtype): a perturbation of size X₀ amplified by all K steps
    G = float(np.max(np.abs(np.asarray(x0, dtype=np.float64)))) * np.prod(np.array(Ls), axis=0)
    for j in range(K):
        G = G + ws[j] * (np.prod(np.array(Ls[j + 1:]), axis=0) if j + 1 < K else 1.0)
    return max(float(np.max(G)), 1.0)


def newton_schulz(dtype: Any, n_eff: int, coefficients: Sequence[tuple[float, float, float]],
                  x0: np.ndarray, c: float | None = None) -> Tolerance:
    """Spectral-norm bound on ‖NS_dtype(G) − exact map(cast G)‖₂ (see module docstring)."""
    name = torch_dtype_name(dtype)
    u = unit_roundoff(name)
    c = NS_CONSTANT.get(name, 0.4) if c is None else c
    G = trajectory_gain(coefficients, x0)
    b = max(c * u * np.sqrt(max(int(n_eff), 1)) * G, ASSERT_CLOSE_RTOL.get(name, 0.0))
    return Tolerance(float(b), f"max({c:g}·u·√n_eff·G, assert_close rtol) with u={u:.3e}, "
                     f"n_eff={n_eff}, G={G:.3g} (K={len(coefficients)} steps)",
                     "conformance.tolerances Newton–Schulz forward-error model (CLAIMS §0.2 low "
                     "precision: c·u_dtype·g(K, κ)); c calibrated with ≥ 3.0× margin", name)


def slope(expected: float, tol: float = 0.05) -> Tolerance:
    """A fitted log–log slope must lie within ±tol of ``expected`` (CLAIMS §0.2 Taylor tests)."""
    return Tolerance(tol, f"|slope − {expected:g}| ≤ {tol:g}", "CLAIMS.md §0.2 Taylor-slope tests")


def bitwise() -> Tolerance:
    """Bit equality (no-mutation and determinism checks; CLAIMS X-3)."""
    return Tolerance(0.0, "bit equality", "CLAIMS.md X-3 (checksums before and after)")


# ----------------------------------------------------------------------------- shared by the check families
def initial_x(profile: Any, g: np.ndarray) -> np.ndarray:
    """Normalised singular values entering Newton–Schulz step 1 (input of :func:`trajectory_gain`)."""
    import manifold_oracle.reference as R

    s = np.linalg.svd(g, compute_uv=False)
    fro = float(np.sqrt(np.sum(s**2)))
    N = float(R.normaliser(fro, profile.eps, profile.eps_form)) if profile.has_ns else fro
    N = N if N > 0 else 1.0
    return s / (profile.safety * N)


def orth_tolerance(profile: Any, g: np.ndarray, expected: np.ndarray, dtype: str) -> Tolerance:
    """Bound on ‖O − O*‖₂ of the declared orthogonaliser for an input held in ``dtype``: the exact
    identity bound (schedule 'exact') or :func:`newton_schulz` in the compute dtype, plus the
    return cast when the declared return dtype differs from the compute dtype."""
    from .expected import compute_dtype_for, return_dtype_for, round_to

    cdt = compute_dtype_for(profile, dtype)
    rdt = return_dtype_for(profile, dtype)
    n_eff = max(g.shape[-2:])
    if profile.schedule == "exact":
        _, kap = kappa(round_to(g, cdt), cdt)
        tol = exact_identity(cdt, n_eff, scale=kap)
    else:
        x0 = initial_x(profile, round_to(g, cdt))
        tol = newton_schulz(cdt, n_eff, profile.ns_schedule().coefficients_for(profile.steps), x0)
    if rdt != cdt and rdt != "float64":
        extra = 2 * unit_roundoff(rdt) * max(spec2(expected), 1.0) * np.sqrt(n_eff)
        tol = Tolerance(tol.bound + extra, tol.formula + f" + 2·u_{rdt}·√n_eff·‖O*‖₂ (return cast)",
                        tol.provenance, tol.dtype)
    return tol


def step_tolerance(profile: Any, W: np.ndarray, U: np.ndarray, dt: str, lr: float) -> Tolerance:
    """Bound on ‖W_target − W_expected‖₂ after one step against the declared map (no replay):
    lr·s·proj·2·(orthogonaliser bound) + rounding of the update in the parameter dtype. The 2:
    the target's own momentum differs from the float64 one by its rounding, one more input
    perturbation of the orthogonaliser's size; proj = 2 for MACRO (‖P(E)‖ ≤ ‖E‖, inner and
    outer projection)."""
    from .expected import orthogonalise, shape_scale

    p = profile
    if p.has_ns or p.schedule == "exact":
        t_orth = orth_tolerance(p, U, orthogonalise(p, U, dt), dt)
        orth_b, desc = 2.0 * t_orth.bound, t_orth.formula
    else:
        orth_b, desc = 0.0, "no orthogonaliser"
    s = p.scale * shape_scale(p, W.shape)
    proj = 2.0 if p.rule == "macro" else 1.0
    if p.rule == "muonh":  # only the direction of O matters: relative step lr·‖W‖_F
        s = float(np.linalg.norm(W)) / max(float(np.linalg.norm(orthogonalise(p, U, dt))), 1e-300)
    upd = lr * s * proj * orth_b
    r = rounding(dt, 16, scale=float(np.linalg.norm(W)))
    return Tolerance(upd + r.bound, f"lr·s·{proj:g}·2·[{desc}] + {r.formula}",
                     "conformance.tolerances.step_tolerance (CLAIMS X-1 dtype model)", dt)


def param_rounding(dtype: Any, n_ops: float, scale: float) -> Tolerance:
    """Rounding of a short elementwise op sequence on a parameter held in ``dtype`` (no
    assert_close floor): n_ops·u·scale, with ``scale`` a Frobenius norm of the values rounded.

    Error model: every op rounds each entry once, |fl(x) − x| ≤ u·|x|, so a sequence of n_ops
    ops on values bounded entrywise by |y| leaves ‖δ‖₂ ≤ ‖δ‖_F ≤ n_ops·u·‖y‖_F."""
    u = unit_roundoff(dtype)
    b = float(n_ops) * u * float(scale)
    return Tolerance(b, f"n_ops·u·‖y‖_F = {n_ops:g}·{u:.3e}·{scale:.3e}",
                     "elementwise rounding |fl(x) − x| ≤ u|x| per op (Higham, Thm 2.2)", torch_dtype_name(dtype))


def cast_ambiguity(x: np.ndarray, cast_dtype: str, rel: float) -> np.ndarray:
    """Entries of ``x`` whose rounding to ``cast_dtype`` may differ between two computations of
    ``x`` that agree to ``rel``·|x| (a value within rel·|x| of a rounding midpoint can round either
    way): returns the size of the possible one-ulp flip per entry (0 where the cast is certain)."""
    if cast_dtype in ("float64", "input"):
        return np.zeros_like(x)
    u = unit_roundoff(cast_dtype)
    a = np.abs(np.asarray(x, dtype=np.float64))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    ulp = 2.0 * u * 2.0**e  # spacing of cast_dtype numbers in [2^e, 2^{e+1})
    frac = a / ulp - np.floor(a / ulp)  # position between two representable numbers
    near_mid = np.abs(frac - 0.5) * ulp <= rel * a
    return np.where(near_mid & (a > 0), ulp, 0.0)


# -- shared figures of the check families (spectral norm, rank threshold, condition number) --


def spec2(x: np.ndarray) -> float:
    """Spectral norm (max over a batch)."""
    if x.size == 0:
        return 0.0
    return float(np.max(np.linalg.norm(x, 2, axis=(-2, -1))))


def rank_rtol_for(dtype: str) -> float:
    """Relative rank threshold for inputs held in ``dtype``: 1e-10 in float64 (the generators'
    RANK_RTOL), 1e-5 otherwise (fp32/bf16 rounding of exact zeros stays below ~1e-6·σ₁, retained
    values are ≥ 1e-3·σ₁ in the harness's cases)."""
    return 1e-10 if dtype == "float64" else 1e-5


def kappa(x: np.ndarray, dtype: str = "float64") -> tuple[int, float]:
    """(numerical rank, σ₁/σ_r of the retained part) with :func:`rank_rtol_for`."""
    s = np.linalg.svd(x, compute_uv=False)
    if s.size == 0 or s[0] == 0:
        return 0, 1.0
    keep = s[s > rank_rtol_for(dtype) * s[0]]
    return int(keep.size), float(keep[0] / keep[-1])
