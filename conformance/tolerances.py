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
           "initial_x", "orth_tolerance", "step_tolerance", "param_rounding", "cast_ambiguity", "spec2", "rank_rtol_for", "kappa",
           "PROB_LAMBDA", "ROUND_SD", "pairwise_partial_sums", "projection_tangency", "muonh_step_rounding",
           "macro_frobenius_step_rounding",
           "retraction_roundoff", "violation_roundoff", "sd_confidence_factor"]

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


#: λ of the probabilistic rounding model (:func:`projection_tangency`): a bound of λ standard deviations
PROB_LAMBDA = 5.0
#: sd of the relative error of one round-to-nearest operation ÷ (u/√3): the absolute error is uniform
#: on ±ulp/2, so δ = 2u·U(−½, ½)/m for a significand m ∈ [1, 2); with m log-uniform (Hamming, "On the
#: distribution of numbers", Bell Syst. Tech. J. 49, 1970) E[1/m²] = 3/(8 ln 2), sd = (u/√3)·0.736
ROUND_SD = float(np.sqrt(3.0 / (8.0 * np.log(2.0))))
#: vector lanes of torch's CPU float reduction (AVX2: 8 floats) and the largest sum the norm model covers
NORM_LANES, NORM_MODEL_MAX = 8, 2**15


def pairwise_partial_sums(x: np.ndarray) -> np.ndarray:
    """The intermediate sums of a pairwise (tree) summation of ``x`` along its last axis (the
    values each addition rounds; torch and numpy reduce in blocked pairwise order), shape (..., n−1)."""
    v = np.asarray(x, dtype=np.float64)
    out = []
    while v.shape[-1] > 1:
        n2 = v.shape[-1] // 2
        s = v[..., 0:2 * n2:2] + v[..., 1:2 * n2:2]
        out.append(s)
        v = np.concatenate([s, v[..., 2 * n2:]], axis=-1)
    return np.concatenate(out, axis=-1) if out else np.zeros(v.shape[:-1] + (0,))


def projection_tangency(dtype: Any, W: np.ndarray, O: np.ndarray, scaled: bool = False,
                        lam: float = PROB_LAMBDA) -> Tolerance:
    """Bound on the normalised tangency residual |⟨D, W⟩|/(‖D‖‖W‖) of D = O − (⟨O, W⟩/‖W‖²)·W
    computed in ``dtype`` (a sphere's tangent projection; ``W``, ``O`` of shape (..., n): one
    sphere per row, the bound is the largest over the rows; ``scaled``: D is then multiplied by a
    scale s ≠ 1, one more rounding per entry).

    Error model (first order; the probabilistic rounding model of Higham & Mary, SIAM J. Sci.
    Comput. 41(5), 2019: the relative rounding errors δ_k of the operations are independent, mean
    zero, uniform in [−u, u], so of standard deviation u/√3). The computed D̂ satisfies
    ⟨D̂, W⟩ = −e₁ + c·e₂ − c·‖W‖²·δ_div + Σ_ij δ_ij·(|D_ij| + |c·W_ij|)·W_ij, with c = ⟨O, W⟩/‖W‖²,
    e₁ the rounding of ⟨O, W⟩ (its products O_ij·W_ij and the partial sums of a pairwise
    summation, :func:`pairwise_partial_sums`), e₂ that of ‖W‖² (the same with W_ij²), δ_div the
    division and the last sum the product c·W_ij and the subtraction (addcmul). It is a linear
    form Σ_k δ_k·t_k in the δ's, of standard deviation (u/√3)·‖t‖₂; the bound is λ = 5 standard
    deviations of it (a normal tail 6·10⁻⁷) divided by ‖D‖‖W‖.
    Calibration (recorded, not tuned to a defect): torch fp32 ``frobenius_project`` on 6 shapes
    (6×4 … 64×24) × 400 cases (random and normal-dominated O): the largest residual was 4.0
    standard deviations, the median 0.5."""
    u = unit_roundoff(dtype)
    w = np.asarray(W, dtype=np.float64)
    o = np.asarray(O, dtype=np.float64)
    ww = np.sum(w * w, axis=-1)
    c = np.sum(o * w, axis=-1) / np.where(ww > 0, ww, 1.0)
    d = o - c[..., None] * w
    p, q = o * w, w * w
    t2 = (np.sum(p**2, -1) + np.sum(pairwise_partial_sums(p) ** 2, -1)
          + c**2 * (np.sum(q**2, -1) + np.sum(pairwise_partial_sums(q) ** 2, -1) + ww**2)
          + np.sum(((np.abs(d) + np.abs(c[..., None] * w)) * w) ** 2, -1)
          + (np.sum((d * w) ** 2, -1) if scaled else 0.0))
    den = np.linalg.norm(d, axis=-1) * np.sqrt(ww)
    b = float(np.max(lam * (u / np.sqrt(3.0)) * np.sqrt(t2) / np.where(den > 0, den, np.inf)))
    return Tolerance(b, f"λ·(u/√3)·‖t‖₂/(‖D‖‖W‖), λ={lam:g}, u={u:.3e} (t: the roundings of ⟨O, W⟩, ‖W‖², "
                     "c·W and the subtraction)", "probabilistic rounding model (Higham & Mary 2019) of the "
                     "sphere tangent projection O − (⟨O, W⟩/‖W‖²)·W", torch_dtype_name(dtype))


def _norm_sum_sq(x: np.ndarray) -> float:
    """Variance factor of the relative error of ‖x‖ computed by torch in float32 (÷ u²/3): Σ_k s_k²
    over the values the sum of squares rounds (the squares, then the partial sums), ÷ (2·Σx²)² (the
    square root halves the sum's relative error). The accumulation is modelled as torch's CPU
    reduction does it: ``NORM_LANES`` vector lanes, each a recursive sum of every 8th square, then
    a pairwise sum of the lanes. Calibrated (recorded, not tuned to a defect): torch 2.13 fp32
    ``vector_norm`` on 12×8 … 32×256 and 128×128, 100 cases each: rms 0.7–0.8 model sd, largest
    2.1 sd. Beyond ``NORM_MODEL_MAX`` entries long same-sign sums round with a bias (512×512:
    mean −2.3 sd): there the factor is the worst-case pairwise bound's, (⌈log₂n⌉/2)²·3/λ²."""
    q = np.asarray(x, dtype=np.float64).reshape(-1) ** 2
    ss = float(np.sum(q))
    if ss == 0.0:
        return 0.0
    if q.size > NORM_MODEL_MAX:
        return (np.ceil(np.log2(q.size)) / 2.0) ** 2 * 3.0 / PROB_LAMBDA**2
    lanes = np.concatenate([q, np.zeros((-q.size) % NORM_LANES)]).reshape(-1, NORM_LANES).T
    parts = float(np.sum(np.cumsum(lanes, axis=1)[:, 1:] ** 2))
    tree = float(np.sum(pairwise_partial_sums(lanes.sum(axis=1)) ** 2))
    return (float(np.sum(q**2)) + parts + tree) / (2.0 * ss) ** 2


def muonh_step_rounding(dtype: Any, W: np.ndarray, O: np.ndarray, lr: float, decay: float = 1.0,
                        lam: float = PROB_LAMBDA) -> Tolerance:
    """Bound on ‖Ŵ⁺ − W⁺‖_F for one MuonH step X = decay·W, r = ‖X‖, q = ‖O‖, Y = X − lr·(r/q)·O,
    W⁺ = Y·(r/‖Y‖) computed in ``dtype`` from the same W and orthogonaliser output O (O replayed:
    its own rounding is not part of this model).

    Probabilistic rounding model (Higham & Mary 2019, as :func:`projection_tangency`): every
    operation's relative error δ_k is independent, mean zero, uniform in [−u, u] (sd u/√3); to
    first order Ŵ⁺ − W⁺ = Σ_k δ_k·t_k with t_k the response of W⁺ to that operation (c = r/‖Y‖,
    ŷ = Y/‖Y‖, P⊥ = I − ŷŷᵀ, dW⁺ = (dr/r)·W⁺ + c·P⊥·dY − (d‖Y‖/‖Y‖)·W⁺):
    the scalar decay (rounded to ``dtype``) scales W⁺ [t = W⁺]; ‖X‖ (squares, pairwise partial
    sums, root) moves r in W⁺ and in the step size [v = W⁺ − c·a·P⊥O, a = lr·r/q]; ‖O‖, r/q and
    lr·(r/q) move the step size [c·a·P⊥O]; entrywise X_ij (with its effect on r), a·O_ij, the
    subtraction Y_ij [c·(·)_ij·P⊥e_ij]; ‖Y‖ and r/‖Y‖ [W⁺]; the final product [W⁺_ij·e_ij]. The
    error is a sum of independent mean-zero vectors with E‖e‖² = ``ROUND_SD``²·(u²/3)·Σ‖t_k‖² (round
    to nearest on log-uniform significands); the bound is λ = 5 of its root (a Gaussian vector's
    norm exceeds λ·√E‖e‖² with at most the 1-D normal tail, 6e-7). Calibration (recorded, not tuned
    to a defect): the torch fp32 arithmetic of gpu_impl's MuonH on 6 shapes (3×5 … 128×128, 32×256)
    × 150 cases (lr 0.02–0.05, weight decay 0 and 0.1): largest 3.2 sd, medians 0.65–0.9."""
    u = unit_roundoff(dtype)
    X = decay * np.asarray(W, dtype=np.float64)
    O = np.asarray(O, dtype=np.float64)
    r, q = float(np.linalg.norm(X)), max(float(np.linalg.norm(O)), 1e-8)  # the rule's clamp
    a = lr * r / q
    Y = X - a * O
    ny = max(float(np.linalg.norm(Y)), 1e-8)
    c, yh = r / ny, Y / ny
    Wn = c * Y
    nw2 = float(np.sum(Wn**2))
    perp = a * (O - yh * float(np.sum(yh * O)))  # a·P⊥O
    v = Wn - c * perp  # response of W⁺ to a relative change of r
    s_step = float(np.sum((c * perp) ** 2))
    t2 = (nw2 if decay != 1.0 else 0.0)  # the decay scalar
    t2 += float(np.sum(v**2)) * (_norm_sum_sq(X) + 1.0)  # ‖X‖: sum of squares and root
    t2 += s_step * (_norm_sum_sq(O) + 1.0 + 2.0)  # ‖O‖ (sum, root), r/q, lr·(r/q)
    one_m = 1.0 - yh**2  # ‖P⊥e_ij‖²
    if decay != 1.0:  # X_ij = decay·W_ij: A_ij·v + c·X_ij·P⊥e_ij, A_ij = X_ij²/r²
        A = X**2 / max(r * r, 1e-300)
        t2 += float(np.sum(A**2 * float(np.sum(v**2)) + 2.0 * A * c * X * (v - yh * float(np.sum(yh * v)))
                           + (c * X) ** 2 * one_m))
    t2 += float(np.sum((c * a * O) ** 2 * one_m)) + float(np.sum((c * Y) ** 2 * one_m))  # a·O_ij, Y_ij
    t2 += nw2 * (_norm_sum_sq(Y) + 1.0 + 1.0)  # ‖Y‖ (sum, root), r/‖Y‖
    t2 += nw2  # the final product, Σ_ij W⁺_ij²
    b = lam * ROUND_SD * (u / np.sqrt(3.0)) * np.sqrt(t2)
    return Tolerance(float(b), f"λ·0.736·(u/√3)·‖t‖₂ = {lam:g}·0.736·(u/√3)·{np.sqrt(t2):.3g}, u={u:.3e} (t: the responses "
                     "of W⁺ to each rounding of the MuonH step)", "probabilistic rounding model (Higham & Mary "
                     "2019) of the MuonH step decay·W → r, q, Y = X − lr·(r/q)·O, W⁺ = Y·r/‖Y‖",
                     torch_dtype_name(dtype))


def macro_frobenius_step_rounding(dtype: Any, W: np.ndarray, O: np.ndarray, a: float, radius: float,
                                  lam: float = PROB_LAMBDA) -> Tolerance:
    """Bound on ‖Ŵ⁺ − W⁺‖_F for one MACRO step on the Frobenius sphere, c = ⟨O, W⟩/‖W‖²,
    Y = W − a·(O − c·W), W⁺ = R·Y/‖Y‖ (a = lr·s), computed in ``dtype`` from the same W and O (O
    replayed), in either of its two usual forms: eager (D = O − c·W, Y = W − a·D, rescale) or fused
    (Ŷ = O + k·W with k = −(1 + a·c)/a by one addcmul, W⁺ = (R/−‖Ŷ‖)·Ŷ). The bound is the larger
    of the two forms' models.

    Probabilistic rounding model as :func:`muonh_step_rounding` (first order, independent δ_k of
    sd ``ROUND_SD``·u/√3, C = R/‖Y‖, ŷ = Y/‖Y‖, P⊥ = I − ŷŷᵀ, dW⁺ = C·P⊥·dY − (d‖Y‖/‖Y‖)·W⁺):
    both forms: ⟨O, W⟩ (absolute error from the products and partial sums, :func:`_sum_sq_terms`)
    and ‖W‖², the division [c moves Y by a·dc·W]; ‖Y‖ (sum, root) and R/‖Y‖ [W⁺]; the final product
    [W⁺_ij·e_ij]. Eager: c·W_ij, D_ij, a·D_ij and Y_ij entrywise [C·(·)·P⊥e_ij]. Fused: a·c, 1 + a·c
    and the division by −a [k moves Y by (1 + a·c)·δ·W], k·W_ij and the sum Ŷ_ij [C·a·(·)·P⊥e_ij].
    Bound λ·ROUND_SD·(u/√3)·‖t‖₂, λ = 5."""
    u = unit_roundoff(dtype)
    W = np.asarray(W, dtype=np.float64)
    O = np.asarray(O, dtype=np.float64)
    ww = max(float(np.sum(W * W)), 1e-300)
    c = float(np.sum(O * W)) / ww
    D = O - c * W
    Y = W - a * D
    ny = max(float(np.linalg.norm(Y)), 1e-300)
    C, yh = radius / ny, Y / ny
    Wn = C * Y
    nw2 = float(np.sum(Wn**2))
    one_m = 1.0 - yh**2  # ‖P⊥e_ij‖²
    pw = W - yh * float(np.sum(yh * W))  # P⊥W
    npw2 = float(np.sum(pw**2))
    # common: ⟨O, W⟩ (absolute), ‖W‖² and the division (relative on c); ‖Y‖, R/‖Y‖, the product
    dot_abs2 = _sum_sq_terms(O * W)
    common = ((C * a) ** 2 * npw2 * (dot_abs2 / ww**2 + c * c * (4.0 * _norm_sum_sq(W) + 1.0))
              + nw2 * (_norm_sum_sq(Y) + 1.0 + 1.0) + nw2)
    # eager: + one more radial rounding (a rescale written as (Y/‖Y‖)·R or R·Y then /‖Y‖)
    eager = C * C * float(np.sum(((a * c * W) ** 2 + 2.0 * (a * D) ** 2 + Y**2) * one_m)) + nw2
    fused = ((C * (1.0 + a * c)) ** 2 * npw2 * 2.0 + (C * a * c) ** 2 * npw2
             + C * C * float(np.sum(((1.0 + a * c) ** 2 * W**2 + Y**2) * one_m)))
    t2 = common + max(eager, fused)
    b = lam * ROUND_SD * (u / np.sqrt(3.0)) * np.sqrt(t2)
    return Tolerance(float(b), f"λ·0.736·(u/√3)·‖t‖₂ = {lam:g}·0.736·(u/√3)·{np.sqrt(t2):.3g}, u={u:.3e} (t: the "
                     "responses of W⁺ to each rounding of the MACRO Frobenius step, eager or fused form)",
                     "probabilistic rounding model (Higham & Mary 2019) of the MACRO step W⁺ = R·Y/‖Y‖, "
                     "Y = W − a·(O − ⟨O, W⟩/‖W‖²·W)", torch_dtype_name(dtype))


def _sum_sq_terms(x: np.ndarray) -> float:
    """Σ_k s_k² over the values a sum of the entries of ``x`` rounds (the terms, the lanes' partial
    sums and the lanes' pairwise tree, as :func:`_norm_sum_sq`): the variance of its absolute
    error ÷ (u²/3)."""
    q = np.asarray(x, dtype=np.float64).reshape(-1)
    lanes = np.concatenate([q, np.zeros((-q.size) % NORM_LANES)]).reshape(-1, NORM_LANES).T
    return (float(np.sum(q**2)) + float(np.sum(np.cumsum(lanes, axis=1)[:, 1:] ** 2))
            + float(np.sum(pairwise_partial_sums(lanes.sum(axis=1)) ** 2)))


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


# -- rounding of a manifold's retraction (feasibility and the radial part of a constrained step) --


def retraction_roundoff(man: Any, shape: Sequence[int], u: float) -> tuple[float, str]:
    """(ρ, formula): a retraction onto ``man`` computed with unit roundoff ``u`` returns a point
    within ρ·‖W⁺‖_F of the exact retraction of the same input, and c_M of the result is ≤ ρ plus
    what :func:`violation_roundoff` adds when the harness measures it.

    * norm-based (Frobenius sphere, oblique, Euclidean): a pairwise sum of squares and a square root
      (⌈log₂mn⌉·u, halved by the root), the scalar R/‖Y‖, the product and the stored entries (Higham
      Thm 2.2, eq. 4.6): (⌈log₂mn⌉/2 + 4)·u;
    * spectral sphere: the rescale R/σ̂₁ with σ̂₁ from an SVD (or a Rayleigh–Ritz value of a
      converged top pair), whose relative error is ≤ p(m, n)·u (LAPACK's singular-value error
      bound, Anderson et al., LAPACK Users' Guide §4.9; its "modestly growing" p(m, n) is taken as
      m·n, the γ̃_{mn} of Householder bidiagonalisation, Higham Thm 19.4), plus the scalar, the
      product and the store: (mn + 3)·u;
    * Stiefel: the polar factor (or QR factor) of a matrix with singular values near the scale
      (the polar factor's condition number is then ~1): backward-stable SVD/QR (backward error
      p(m, n)·u, p = mn as above), each orthogonal factor orthonormal to p·u, and the product
      U·Vᵀ: 3·mn·u relative in Frobenius norm (‖Q‖_F = √k·scale on both sides). Measured on
      torch's float64 SVD polar factor at 3×7: 33u (bound 63u).
    """
    from manifold_oracle.reference import SpectralSphere, Stiefel

    m, n = int(shape[-2]), int(shape[-1])
    if isinstance(man, Stiefel):
        p = m * n
        return 3.0 * p * u, f"3·mn·u = 3·{p}·{u:.3e} (polar/QR retraction)"
    if isinstance(man, SpectralSphere):
        p = m * n
        return (p + 3.0) * u, f"(mn + 3)·u = ({p} + 3)·{u:.3e} (σ₁ from an SVD, rescale)"
    L = float(np.ceil(np.log2(max(m * n, 2))))
    return (L / 2.0 + 4.0) * u, f"(⌈log₂mn⌉/2 + 4)·u = ({L:g}/2 + 4)·{u:.3e} (norm and rescale)"


def violation_roundoff(man: Any, shape: Sequence[int]) -> tuple[float, str]:
    """(ν, formula): error of the harness's own float64 evaluation of c_M(W) (``violation``) at a
    point near the manifold. Norm-based: the norm (⌈log₂mn⌉/2 + 1)·u; spectral sphere: σ₁ from
    LAPACK, p(m, n)·u with p = mn (see :func:`retraction_roundoff`); Stiefel
    ‖TᵀT − I‖_F/scale²: each of the k² Gram entries is an m-term dot product of unit columns,
    |error| ≤ γ_m ≈ m·u (Higham eq. 3.5), so ≤ k·m·u in Frobenius norm (tall orientation)."""
    from manifold_oracle.reference import SpectralSphere, Stiefel

    u = UNIT_ROUNDOFF["float64"]
    m, n = int(shape[-2]), int(shape[-1])
    if isinstance(man, Stiefel):
        k, mt = min(m, n), max(m, n)
        return k * mt * u, f"k·m·u₆₄ = {k}·{mt}·u₆₄ (Gram TᵀT − I)"
    if isinstance(man, SpectralSphere):
        return m * n * u, f"mn·u₆₄ = {m * n}·u₆₄ (σ₁ from LAPACK)"
    L = float(np.ceil(np.log2(max(m * n, 2))))
    return (L / 2.0 + 1.0) * u, f"(⌈log₂mn⌉/2 + 1)·u₆₄ (the norm)"


def sd_confidence_factor(n: int, level: float = 0.999) -> float:
    """c_N = √((N − 1)/χ²_{1−level, N−1}): σ ≤ c_N·sd with probability ``level`` for a sample
    standard deviation sd of N Gaussian samples (the χ² distribution of (N − 1)·sd²/σ²)."""
    from scipy.stats import chi2

    return float(np.sqrt((n - 1) / chi2.ppf(1.0 - level, n - 1)))
