"""mpmath reference at a chosen precision: the certifier of the float64 code (MATH.md §1–4).

The same operations as :mod:`reference.linalg`, :mod:`reference.schedules` and the manifold
methods of :mod:`reference.manifolds`, computed in mpmath at ``dps`` decimal digits (default 50)
for single matrices up to about 32×32. Cost is dominated by mpmath's SVD at dps + 15 digits:
msign takes ~0.15 s (CPU) at 16×16 and ~1.1 s at 32×32 with mpmath's pure-Python backend;
with ``gmpy2`` installed (mpmath picks it up automatically; results are bit-identical) 0.12 s
and 0.75 s.

Conventions

* Inputs are numpy float64 arrays (their values are taken as *exact* binary numbers), array-likes
  of floats, or mpmath matrices/numbers (also exact). One matrix per call: ``(m, n)``, no batch
  axes (vectors ``(n,)`` for :class:`~reference.manifolds.Sphere` and singular-value lists).
* Outputs are ``mpmath.matrix`` (matrices), ``list[mpf]`` (vectors) or ``mpf`` (scalars), rounded
  to ``dps`` digits. :func:`to_float64` rounds them correctly (round to nearest, ties to even,
  subnormals included) to numpy float64.
* Internally every computation runs at ``dps + GUARD_DPS`` digits inside ``mpmath.workdps``
  contexts; the global mpmath precision is never changed. Do your own arithmetic on the
  results inside ``mpmath.workdps(dps)`` too: outside it mpmath computes at its global
  precision (15 digits by default), although the returned numbers carry ``dps`` digits.
  Accuracy: singular vectors (hence msign, polar factor, projections on the spectral sphere)
  lose ~log₁₀ κ digits (κ = σ₁/σ_r, or 1/gap), which the guard digits absorb for κ ≤ 1e15:
  results are then correct to about 10^-dps relative (checked: dps 50 vs 60 agree to 1e-51 at
  κ = 1e6).
* Rank threshold: ``τ = max(m, n)·ε_mach(dps)·σ₁`` with ε_mach(dps) the machine epsilon of the
  ``dps``-digit mpmath context (MATH.md §2.1), or ``rank_tol`` (absolute) / ``rank_rtol``
  (relative to σ₁). Note that a float64 matrix built as Q₁ΣQ₂ᵀ with "zero" singular values has
  rounding-noise singular values ~1e-16·σ₁, which are genuine (nonzero) singular values of the
  exact input: pass an explicit ``rank_rtol`` for such inputs.
* Manifold operations are functions of the reference manifold object:
  ``project_tangent(manifold, W, G)``, ``retract(manifold, W, A, method)``, … They dispatch on
  the manifold's class and read its attributes (radius, axis, scale, gap_tol, degenerate,
  point_tol) and validate points exactly like the float64 methods (OffManifoldError,
  DegenerateGeometryError).

Nothing here imports torch, and no input is modified.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import mpmath as mp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_matrix, as_vector
from .errors import DegenerateGeometryError, InvalidInputError, OffManifoldError
from .linalg import SingularTriplet
from .manifolds import (
    Euclidean,
    FrobeniusSphere,
    Manifold,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)
from .schedules import Schedule, get_schedule

__all__ = [
    "DEFAULT_DPS",
    "GUARD_DPS",
    "eps_mach",
    "to_mpmath",
    "to_float64",
    "frobenius_norm",
    "spectral_norm",
    "nuclear_norm",
    "singular_values",
    "svd",
    "top_singular_triplet",
    "stable_rank",
    "rank_threshold",
    "numerical_rank",
    "msign",
    "polar_factor",
    "mclip",
    "sym",
    "skew",
    "inner",
    "polynomial_map",
    "ns_singular_value_map",
    "ns_apply",
    "schedule_band",
    "violation",
    "project_tangent",
    "riemannian_gradient",
    "normal_component",
    "tangent_violation",
    "retract",
    "project_point",
    "normal_frame",
    "manifold_inner",
]

DEFAULT_DPS = 50
#: extra decimal digits carried internally (absorbs the ~κ loss of singular vectors for κ ≤ 1e10)
GUARD_DPS = 15
#: tangency tolerance of the exponential map (same as the float64 reference)
EXP_TANGENT_TOL = 1e-8

MPMatrix = Any  # mpmath.matrix (no public type)
Scalar = Union[float, int, "mp.mpf"]
MatrixLike = Union[ArrayLike, MPMatrix]
F64 = NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# precision, conversion
# ---------------------------------------------------------------------------------------------
def _check_dps(dps: int) -> int:
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or not 15 <= int(dps) <= 10000:
        raise InvalidInputError(f"dps must be an integer in [15, 10000], got {dps!r}")
    return int(dps)


def _work(dps: int) -> Any:
    """The internal working-precision context: dps + GUARD_DPS digits."""
    return mp.workdps(_check_dps(dps) + GUARD_DPS)


def eps_mach(dps: int = DEFAULT_DPS) -> "mp.mpf":
    """ε_mach of the ``dps``-digit mpmath context (2^(1−prec)); the analogue of 2u in float64."""
    with mp.workdps(_check_dps(dps)):
        return +mp.eps


def _mpf_exact(x: Any, name: str) -> "mp.mpf":
    """An exact mpf copy of a real scalar (float, int, numpy scalar or mpf)."""
    if isinstance(x, mp.mpf):
        v = x
    elif isinstance(x, (bool, np.bool_)):
        raise InvalidInputError(f"{name}: expected a real number, got a bool")
    elif isinstance(x, (int, np.integer)):
        v = mp.mpf(int(x))
    elif isinstance(x, (float, np.floating)):
        v = mp.mpf(float(x))
    else:
        raise InvalidInputError(f"{name}: expected a real number, got {type(x).__name__}")
    if not mp.isfinite(v):
        raise InvalidInputError(f"{name}: non-finite value {v}")
    return v


def _is_mp_matrix(x: Any) -> bool:
    return isinstance(x, mp.matrix)


def _mat(X: MatrixLike, name: str = "X") -> MPMatrix:
    """Validated exact mpmath copy of one matrix (m, n ≥ 1, finite)."""
    if _is_mp_matrix(X):
        if X.rows < 1 or X.cols < 1:
            raise InvalidInputError(f"{name}: empty matrix of shape ({X.rows}, {X.cols})")
        out = mp.matrix(X.rows, X.cols)
        for i in range(X.rows):
            for j in range(X.cols):
                v = X[i, j]
                if isinstance(v, mp.mpc):
                    raise InvalidInputError(f"{name}: complex entries are not supported")
                out[i, j] = _mpf_exact(v, name)
        return out
    arr = as_matrix(X, name, batched=False)
    m, n = arr.shape
    out = mp.matrix(m, n)
    for i in range(m):
        for j in range(n):
            out[i, j] = mp.mpf(float(arr[i, j]))
    return out


def _vec(x: Any, name: str = "x") -> list:
    """Validated exact list of mpf from a 1-D array-like, list of mpf or an n×1 / 1×n mp.matrix."""
    if _is_mp_matrix(x):
        if x.rows != 1 and x.cols != 1:
            raise InvalidInputError(f"{name}: expected a vector, got a {x.rows}×{x.cols} matrix")
        vals = [x[i] for i in range(len(x))]
        if not vals:
            raise InvalidInputError(f"{name}: empty vector")
        return [_mpf_exact(v, name) for v in vals]
    if isinstance(x, (list, tuple)) and any(isinstance(v, mp.mpf) for v in x):
        if not x:
            raise InvalidInputError(f"{name}: empty vector")
        return [_mpf_exact(v, name) for v in x]
    arr = as_vector(x, name)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name}: expected a single vector of shape (n,), got {arr.shape}")
    return [mp.mpf(float(v)) for v in arr]


def to_mpmath(X: MatrixLike) -> MPMatrix:
    """Exact ``mpmath.matrix`` copy of a float64 matrix (validated: finite, 2-D, non-empty)."""
    return _mat(X)


def _round_float(x: Any) -> float:
    """Correctly rounded float64 of a real mpf (nearest, ties to even; subnormals; overflow raises)."""
    v = x if isinstance(x, mp.mpf) else mp.mpf(x)
    if not mp.isfinite(v):
        raise InvalidInputError(f"cannot round non-finite value {v} to float64")
    if v == 0:
        return 0.0
    sign, man, exp, _ = v._mpf_
    if exp + man.bit_length() <= -1022:
        # subnormal range: round once on the 2^-1074 grid, ties to even (exact integer arithmetic)
        shift = -(exp + 1074)
        if shift <= 0:
            q = man << -shift
        else:
            q = man >> shift
            rem = man - (q << shift)
            half = 1 << (shift - 1)
            if rem > half or (rem == half and q & 1):
                q += 1
        return math.ldexp(-q if sign else q, -1074)
    try:
        return mp.libmp.to_float(v._mpf_, strict=True, rnd=mp.libmp.round_nearest)
    except OverflowError:
        raise InvalidInputError(f"value {mp.nstr(v, 5)} overflows float64") from None


def to_float64(x: Any) -> F64 | float:
    """Round an mpmath result correctly to float64.

    ``mpmath.matrix`` → 2-D array; list/tuple of numbers → 1-D array; mpf/number → float;
    a :class:`~reference.linalg.SingularTriplet` with mp fields → one with float64 fields.
    """
    if isinstance(x, SingularTriplet):
        return SingularTriplet(to_float64(x.sigma), to_float64(x.u), to_float64(x.v),
                               to_float64(x.sigma2), to_float64(x.gap))
    if _is_mp_matrix(x):
        out = np.empty((x.rows, x.cols), dtype=np.float64)
        for i in range(x.rows):
            for j in range(x.cols):
                out[i, j] = _round_float(x[i, j])
        return out
    if isinstance(x, (list, tuple)):
        return np.array([_round_float(v) for v in x], dtype=np.float64)
    if isinstance(x, (mp.mpf, int, float, np.floating, np.integer)):
        return _round_float(x)
    raise InvalidInputError(f"to_float64: unsupported type {type(x).__name__}")


def _rounded(x: Any, dps: int) -> Any:
    """Round an internal (guard-precision) result to ``dps`` digits; same structure."""
    with mp.workdps(dps):
        if _is_mp_matrix(x):
            out = mp.matrix(x.rows, x.cols)
            for i in range(x.rows):
                for j in range(x.cols):
                    out[i, j] = +x[i, j]
            return out
        if isinstance(x, list):
            return [+v for v in x]
        return +x


# ---------------------------------------------------------------------------------------------
# small matrix helpers (call inside a working-precision context)
# ---------------------------------------------------------------------------------------------
def _T(A: MPMatrix) -> MPMatrix:
    return A.T


def _dot(A: MPMatrix, B: MPMatrix) -> "mp.mpf":
    return mp.fsum(A[i, j] * B[i, j] for i in range(A.rows) for j in range(A.cols))


def _fro(A: MPMatrix) -> "mp.mpf":
    return mp.sqrt(_dot(A, A))


def _diag_mul(U: MPMatrix, d: Sequence[Any], Vt: MPMatrix) -> MPMatrix:
    """U·diag(d)·Vt for U (m×k), Vt (k×n)."""
    m, k, n = U.rows, len(d), Vt.cols
    out = mp.matrix(m, n)
    for i in range(m):
        for j in range(n):
            out[i, j] = mp.fsum(U[i, l] * d[l] * Vt[l, j] for l in range(k) if d[l] != 0)
    return out


def _cols(U: MPMatrix, r: int) -> MPMatrix:
    out = mp.matrix(U.rows, r)
    for i in range(U.rows):
        for j in range(r):
            out[i, j] = U[i, j]
    return out


def _rows(V: MPMatrix, r: int) -> MPMatrix:
    out = mp.matrix(r, V.cols)
    for i in range(r):
        for j in range(V.cols):
            out[i, j] = V[i, j]
    return out


def _sym_m(A: MPMatrix) -> MPMatrix:
    return (A + A.T) / 2


def _svd_work(A: MPMatrix) -> tuple[MPMatrix, list, MPMatrix]:
    """Thin SVD (U m×k, s list of k descending, Vt k×n) at the current precision."""
    m, n = A.rows, A.cols
    if m < n:
        U2, s, Vt2 = _svd_work(A.T)
        return Vt2.T, s, U2.T
    U, S, V = mp.svd_r(A, full_matrices=False, compute_uv=True)
    k = n
    sv = [S[i] for i in range(k)]
    order = sorted(range(k), key=lambda i: -sv[i])
    if order != list(range(k)):
        U = mp.matrix([[U[i, j] for j in order] for i in range(m)]) if m > 0 else U
        V = mp.matrix([[V[i, j] for j in range(n)] for i in order])
        sv = [sv[i] for i in order]
    return U, sv, V


def _svd_vals_work(A: MPMatrix) -> list:
    M = A.T if A.rows < A.cols else A
    S = mp.svd_r(M, compute_uv=False)
    return sorted((S[i] for i in range(len(S))), reverse=True)


# ---------------------------------------------------------------------------------------------
# norms and SVD (reference.linalg)
# ---------------------------------------------------------------------------------------------
def inner(A: MatrixLike, B: MatrixLike, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """⟨A, B⟩ = tr(AᵀB)."""
    a, b = _mat(A, "A"), _mat(B, "B")
    if (a.rows, a.cols) != (b.rows, b.cols):
        raise InvalidInputError(f"A and B must have equal shapes, got {(a.rows, a.cols)} and {(b.rows, b.cols)}")
    with _work(dps):
        return _rounded(_dot(a, b), dps)


def frobenius_norm(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """‖X‖_F."""
    x = _mat(X)
    with _work(dps):
        return _rounded(_fro(x), dps)


def singular_values(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> list:
    """σ₁ ≥ … ≥ σ_k ≥ 0 (k = min(m, n)) as a list of mpf."""
    x = _mat(X)
    with _work(dps):
        return _rounded(_svd_vals_work(x), dps)


def svd(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> tuple[MPMatrix, list, MPMatrix]:
    """Thin SVD ``(U (m×k), s (list, descending), Vt (k×n))`` with X = U·diag(s)·Vt."""
    x = _mat(X)
    with _work(dps):
        U, s, Vt = _svd_work(x)
        return _rounded(U, dps), _rounded(s, dps), _rounded(Vt, dps)


def spectral_norm(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """‖X‖₂ = σ₁(X)."""
    return singular_values(X, dps=dps)[0]


def nuclear_norm(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """‖X‖_* = Σ σᵢ (nuclear norm)."""
    x = _mat(X)
    with _work(dps):
        return _rounded(mp.fsum(_svd_vals_work(x)), dps)


def stable_rank(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """srank(X) = ‖X‖_F²/‖X‖₂²; raises InvalidInputError for X = 0."""
    x = _mat(X)
    with _work(dps):
        s = _svd_vals_work(x)
        if s[0] == 0:
            raise InvalidInputError("stable_rank is undefined for the zero matrix")
        return _rounded(_dot(x, x) / s[0] ** 2, dps)


def rank_threshold(sigma: Sequence[Any], shape: tuple[int, int], rank_tol: float | None = None,
                   rank_rtol: float | None = None, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """τ: ``max(m, n)·ε_mach(dps)·σ₁`` by default, ``rank_tol`` (absolute) or ``rank_rtol·σ₁``."""
    if rank_tol is not None and rank_rtol is not None:
        raise InvalidInputError("pass at most one of rank_tol (absolute) and rank_rtol (relative)")
    exact = isinstance(sigma, list) and bool(sigma) and all(isinstance(v, mp.mpf) for v in sigma)
    s1 = (sigma if exact else _vec(sigma, "sigma"))[0]
    if rank_tol is not None:
        t = _mpf_exact(rank_tol, "rank_tol")
        if t < 0:
            raise InvalidInputError(f"rank_tol must be >= 0, got {rank_tol!r}")
        return t
    if rank_rtol is not None:
        t = _mpf_exact(rank_rtol, "rank_rtol")
        if t < 0:
            raise InvalidInputError(f"rank_rtol must be >= 0, got {rank_rtol!r}")
        with _work(dps):
            return t * s1
    e = eps_mach(dps)
    with _work(dps):
        return max(shape) * e * s1


def _rank(s: list, shape: tuple[int, int], rank_tol: float | None, rank_rtol: float | None, dps: int) -> int:
    tau = rank_threshold(s, shape, rank_tol, rank_rtol, dps=dps)
    return sum(1 for v in s if v > tau)


def numerical_rank(X: MatrixLike, rank_tol: float | None = None, rank_rtol: float | None = None,
                   *, dps: int = DEFAULT_DPS) -> int:
    """r = #{i : σᵢ > τ} (see :func:`rank_threshold`)."""
    x = _mat(X)
    with _work(dps):
        s = _svd_vals_work(x)
        return _rank(s, (x.rows, x.cols), rank_tol, rank_rtol, dps)


def top_singular_triplet(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> SingularTriplet:
    """(σ₁, u₁, v₁, σ₂, gap) with u, v as lists of mpf; sign: the largest-|·| entry of u is > 0."""
    x = _mat(X)
    with _work(dps):
        U, s, Vt = _svd_work(x)
        u = [U[i, 0] for i in range(U.rows)]
        v = [Vt[0, j] for j in range(Vt.cols)]
        big = max(abs(t) for t in u)
        i0 = next(i for i, t in enumerate(u) if abs(t) == big)
        if u[i0] < 0:
            u = [-t for t in u]
            v = [-t for t in v]
        s1 = s[0]
        s2 = s[1] if len(s) > 1 else mp.mpf(0)
        if len(s) == 1:
            gap = mp.mpf(1) if s1 > 0 else mp.mpf(0)
        else:
            gap = (s1 - s2) / s1 if s1 > 0 else mp.mpf(0)
        return SingularTriplet(_rounded(s1, dps), _rounded(u, dps), _rounded(v, dps),
                               _rounded(s2, dps), _rounded(gap, dps))


def _msign_work(x: MPMatrix, rank_tol: float | None, rank_rtol: float | None, dps: int,
                complete: bool) -> MPMatrix:
    U, s, Vt = _svd_work(x)
    k = len(s)
    r = k if complete else _rank(s, (x.rows, x.cols), rank_tol, rank_rtol, dps)
    if r == 0:
        return mp.zeros(x.rows, x.cols)
    return _cols(U, r) * _rows(Vt, r)


def msign(X: MatrixLike, rank_tol: float | None = None, *, rank_rtol: float | None = None,
          dps: int = DEFAULT_DPS) -> MPMatrix:
    """``msign(X) = U_r V_rᵀ`` (partial isometry); σ ≤ τ map to zero, ``msign(0) = 0``."""
    x = _mat(X)
    with _work(dps):
        return _rounded(_msign_work(x, rank_tol, rank_rtol, dps, complete=False), dps)


def polar_factor(X: MatrixLike, *, dps: int = DEFAULT_DPS) -> MPMatrix:
    """Full isometry ``U_{:,1:k} V_{:,1:k}ᵀ`` of the thin SVD (unique iff rank X = k).

    On rank-deficient input the completion depends on mpmath's null-space bases (compare only
    properties there, MATH.md §2.3).
    """
    x = _mat(X)
    with _work(dps):
        return _rounded(_msign_work(x, None, None, dps, complete=True), dps)


def _mclip_work(x: MPMatrix, t: Any) -> MPMatrix:
    U, s, Vt = _svd_work(x)
    excess = [max(v - t, 0) for v in s]
    if not any(excess):
        return x.copy()
    return x - _diag_mul(U, excess, Vt)


def mclip(X: MatrixLike, tau: Scalar, *, dps: int = DEFAULT_DPS) -> MPMatrix:
    """Spectral clip ``U·min(Σ, τ)·Vᵀ = X − U·max(Σ − τ, 0)·Vᵀ`` (τ > 0)."""
    x = _mat(X)
    t = _mpf_exact(tau, "tau")
    if t <= 0:
        raise InvalidInputError(f"tau must be > 0, got {tau!r}")
    with _work(dps):
        return _rounded(_mclip_work(x, t), dps)


def sym(A: MatrixLike, *, dps: int = DEFAULT_DPS) -> MPMatrix:
    """(A + Aᵀ)/2 for square A."""
    a = _mat(A, "A")
    if a.rows != a.cols:
        raise InvalidInputError(f"sym needs a square matrix, got {(a.rows, a.cols)}")
    with _work(dps):
        return _rounded(_sym_m(a), dps)


def skew(A: MatrixLike, *, dps: int = DEFAULT_DPS) -> MPMatrix:
    """(A − Aᵀ)/2 for square A."""
    a = _mat(A, "A")
    if a.rows != a.cols:
        raise InvalidInputError(f"skew needs a square matrix, got {(a.rows, a.cols)}")
    with _work(dps):
        return _rounded((a - a.T) / 2, dps)


# ---------------------------------------------------------------------------------------------
# Newton–Schulz schedules (reference.schedules)
# ---------------------------------------------------------------------------------------------
def _resolve(schedule: str | Schedule, steps: int | None, extension: str | None, safety: float | None,
             eps: float | None, eps_form: str | None) -> Schedule:
    sch = get_schedule(schedule)
    changes = {k: v for k, v in dict(steps=steps, extension=extension, safety=safety, eps=eps,
                                     eps_form=eps_form).items() if v is not None}
    return sch.with_options(**changes) if changes else sch


def _coeffs(sch: Schedule, steps: int | None) -> list[tuple[Any, Any, Any]]:
    return [tuple(mp.mpf(float(c)) for c in t) for t in sch.coefficients_for(steps)]


def _phi(coeffs: list, x: Any) -> Any:
    y = x
    for a, b, c in coeffs:
        y2 = y * y
        y = y * (a + y2 * (b + c * y2))
    return y


def _phi_and_derivative(coeffs: list, x: Any) -> tuple[Any, Any]:
    y, d = x, mp.mpf(1)
    for a, b, c in coeffs:
        y2 = y * y
        d = d * (a + y2 * (3 * b + 5 * c * y2))
        y = y * (a + y2 * (b + c * y2))
    return y, d


def polynomial_map(schedule: str | Schedule, x: Any, steps: int | None = None, *,
                   dps: int = DEFAULT_DPS) -> Any:
    """φ(x) = p_K ∘ … ∘ p₁(x) with the float64 coefficients taken as exact.

    ``x`` a scalar → mpf; a 1-D array-like / list → list of mpf.
    """
    sch = get_schedule(schedule)
    scalar = np.ndim(x) == 0 and not isinstance(x, (list, tuple)) and not _is_mp_matrix(x)
    xs = [_mpf_exact(x, "x")] if scalar else _vec(x, "x")
    with _work(dps):
        cs = _coeffs(sch, steps)
        out = [_phi(cs, v) for v in xs]
        res = _rounded(out, dps)
    return res[0] if scalar else res


def _normaliser(fro: Any, eps: Any, eps_form: str) -> Any:
    if eps_form == "+eps":
        return fro + eps
    if eps_form == "clamp":
        return max(fro, eps)
    if eps_form == "none":
        return fro
    raise InvalidInputError(f"unknown eps_form {eps_form!r}")


def _sv_map_work(sch: Schedule, s: list) -> list:
    fro = mp.sqrt(mp.fsum(v * v for v in s))
    N = _normaliser(fro, mp.mpf(float(sch.eps)), sch.eps_form)
    if N == 0:
        raise InvalidInputError(
            f"schedule {sch.name!r} with eps_form={sch.eps_form!r}: zero input divides by zero "
            "(the implementation would return NaN)")
    cs = _coeffs(sch, None)
    scale = mp.mpf(float(sch.safety)) * N
    return [_phi(cs, v / scale) for v in s]


def ns_singular_value_map(schedule: str | Schedule, sigma: Any, *, steps: int | None = None,
                          extension: str | None = None, safety: float | None = None,
                          eps: float | None = None, eps_form: str | None = None,
                          dps: int = DEFAULT_DPS) -> list:
    """φ(σᵢ/(s·N_ε(‖σ‖₂))) for all singular values ``sigma`` of one matrix (list of mpf)."""
    sch = _resolve(schedule, steps, extension, safety, eps, eps_form)
    s = _vec(sigma, "sigma")
    if any(v < 0 for v in s):
        raise InvalidInputError("singular values must be >= 0")
    with _work(dps):
        return _rounded(_sv_map_work(sch, s), dps)


def ns_apply(schedule: str | Schedule, X: MatrixLike, *, steps: int | None = None,
             extension: str | None = None, safety: float | None = None, eps: float | None = None,
             eps_form: str | None = None, dps: int = DEFAULT_DPS) -> MPMatrix:
    """The exact output ``U·diag(φ(σᵢ/(s·N_ε)))·Vᵀ`` of the declared schedule on X."""
    sch = _resolve(schedule, steps, extension, safety, eps, eps_form)
    x = _mat(X)
    with _work(dps):
        U, s, Vt = _svd_work(x)
        phi = _sv_map_work(sch, s)
        return _rounded(_diag_mul(U, phi, Vt), dps)


def schedule_band(schedule: str | Schedule, lower: float, *, upper: float = 1.0, steps: int | None = None,
                  safety: float | None = None, points: int = 2001,
                  dps: int = DEFAULT_DPS) -> tuple["mp.mpf", "mp.mpf"]:
    """[min, max] of φ(x/s) over x ∈ [lower, upper] (CONVENTIONS.md §9) at mp precision.

    Grid of ``points`` log-spaced plus ``points`` linear nodes; every interior local extremum of
    the grid values is polished by bisection on φ′ (chain rule) to full precision.
    """
    sch = _resolve(schedule, steps, None, safety, None, None)
    lo_, up_ = _mpf_exact(lower, "lower"), _mpf_exact(upper, "upper")
    if not (0 < lo_ < up_):
        raise InvalidInputError(f"need 0 < lower < upper, got {lower}, {upper}")
    if points < 3:
        raise InvalidInputError(f"points must be >= 3, got {points}")
    with _work(dps):
        cs = _coeffs(sch, None)
        s = mp.mpf(float(sch.safety))
        ratio = (up_ / lo_) ** (mp.mpf(1) / (points - 1))
        grid = sorted(set([lo_ * ratio ** i for i in range(points - 1)] + [up_]
                          + [lo_ + (up_ - lo_) * i / (points - 1) for i in range(points)]))
        vals = [_phi(cs, g / s) for g in grid]
        best = [min(vals), max(vals)]
        # a cell's interior extremum differs from its node value by at most ~ the largest jump
        # between neighbouring nodes; local extrema farther than 2 jumps from the best node
        # value cannot win and are not polished
        jump = max(abs(vals[i + 1] - vals[i]) for i in range(len(vals) - 1))
        for i in range(1, len(grid) - 1):
            is_min = vals[i] <= vals[i - 1] and vals[i] <= vals[i + 1] and vals[i] <= best[0] + 2 * jump
            is_max = vals[i] >= vals[i - 1] and vals[i] >= vals[i + 1] and vals[i] >= best[1] - 2 * jump
            if not (is_min or is_max):
                continue
            a, b = grid[i - 1], grid[i + 1]
            da = _phi_and_derivative(cs, a / s)[1]
            db = _phi_and_derivative(cs, b / s)[1]
            if da * db > 0:  # no sign change of φ′ in the bracket (flat or double extremum)
                continue
            # φ′(x*) = 0, so an x error δ changes φ by O(δ²): half the bits of x suffice
            for _ in range(mp.mp.prec // 2 + 20):
                c = (a + b) / 2
                dc = _phi_and_derivative(cs, c / s)[1]
                if dc == 0:
                    a = b = c
                    break
                if (dc > 0) == (da > 0):
                    a, da = c, dc
                else:
                    b = c
            v = _phi(cs, ((a + b) / 2) / s)
            best[0] = min(best[0], v)
            best[1] = max(best[1], v)
        return _rounded(best[0], dps), _rounded(best[1], dps)


# ---------------------------------------------------------------------------------------------
# manifolds (reference.manifolds), one function per operation
# ---------------------------------------------------------------------------------------------
_KNOWN = (Euclidean, Sphere, FrobeniusSphere, SpectralSphere, Oblique, Stiefel)


def _kind(manifold: Manifold) -> type:
    for cls in (Orthogonal,) + _KNOWN:
        if type(manifold) is cls:
            return cls
    for cls in (Orthogonal,) + _KNOWN:  # subclasses: nearest known base
        if isinstance(manifold, cls):
            return cls
    raise InvalidInputError(f"precise: unsupported manifold {manifold!r}")


def _point_array(manifold: Manifold, W: Any, name: str) -> MPMatrix:
    """Exact mp copy of a point-shaped array (vectors become n×1 columns) with shape checks."""
    kind = _kind(manifold)
    if kind is Sphere:
        v = _vec(W, name)
        return mp.matrix(v)
    w = _mat(W, name)
    if kind is Orthogonal and w.rows != w.cols:
        raise InvalidInputError(f"Orthogonal needs square matrices, got {(w.rows, w.cols)}")
    if kind is Oblique and np.ndim(manifold.radius) == 1:
        count = w.rows if manifold.axis == "rows" else w.cols
        if count != np.size(manifold.radius):
            raise InvalidInputError(f"{manifold!r}: {np.size(manifold.radius)} radii for {count} {manifold.axis}")
    return w


def _out(manifold: Manifold, M: Any, dps: int) -> Any:
    r = _rounded(M, dps)
    if _is_mp_matrix(r) and _kind(manifold) is Sphere:
        return [r[i] for i in range(r.rows)]
    return r


def _oblique_rows(manifold: Oblique, x: MPMatrix) -> MPMatrix:
    return x if manifold.axis == "rows" else x.T


def _oblique_radii(manifold: Oblique, count: int) -> list:
    r = manifold.radius
    if np.ndim(r) == 0:
        return [mp.mpf(float(r))] * count
    return [mp.mpf(float(v)) for v in np.asarray(r)]


def _row(x: MPMatrix, i: int) -> list:
    return [x[i, j] for j in range(x.cols)]


def _norm_list(v: list) -> Any:
    return mp.sqrt(mp.fsum(t * t for t in v))


def _stiefel_tall(x: MPMatrix) -> tuple[MPMatrix, bool]:
    wide = x.rows < x.cols
    return (x.T if wide else x), wide


def _violation_work(manifold: Manifold, w: MPMatrix, dps: int) -> Any:
    kind = _kind(manifold)
    if kind is Euclidean:
        return mp.mpf(0)
    if kind in (Sphere, FrobeniusSphere):
        R = mp.mpf(manifold.radius)
        return abs(_fro(w) - R) / R
    if kind is SpectralSphere:
        R = mp.mpf(manifold.radius)
        return abs(_svd_vals_work(w)[0] - R) / R
    if kind is Oblique:
        wr = _oblique_rows(manifold, w)
        rad = _oblique_radii(manifold, wr.rows)
        return max(abs(_norm_list(_row(wr, i)) - rad[i]) / rad[i] for i in range(wr.rows))
    # Stiefel / Orthogonal
    t, _ = _stiefel_tall(w)
    s2 = mp.mpf(manifold.scale) ** 2
    gram = t.T * t / s2 - mp.eye(t.cols)
    return _fro(gram)


def _checked_point(manifold: Manifold, W: Any, dps: int, name: str = "W") -> MPMatrix:
    w = _point_array(manifold, W, name)
    v = _violation_work(manifold, w, dps)
    tol = mp.mpf(float(manifold.point_tol))
    if not v <= tol:
        raise OffManifoldError(repr(manifold), float(v), float(tol), name)
    return w


def _pair(manifold: Manifold, W: Any, G: Any, gname: str, dps: int) -> tuple[MPMatrix, MPMatrix]:
    w = _checked_point(manifold, W, dps)
    g = _point_array(manifold, G, gname)
    if (w.rows, w.cols) != (g.rows, g.cols):
        raise InvalidInputError(f"W and {gname} must have the same shape, got {(w.rows, w.cols)} and {(g.rows, g.cols)}")
    return w, g


def violation(manifold: Manifold, W: Any, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """Feasibility residual c_M(W) (MATH.md §4) of one point (no tolerance check)."""
    w = _point_array(manifold, W, "W")
    with _work(dps):
        return _rounded(_violation_work(manifold, w, dps), dps)


def _spectral_frame(manifold: SpectralSphere, w: MPMatrix) -> tuple[MPMatrix, MPMatrix]:
    """(U₁ m×q, V₁ n×q) with the gap check of SpectralSphere._frame."""
    U, s, Vt = _svd_work(w)
    s1 = s[0]
    s2 = s[1] if len(s) > 1 else mp.mpf(0)
    gap = (s1 - s2) / s1 if s1 > 0 else mp.mpf(0)
    gap_tol = mp.mpf(float(manifold.gap_tol))
    q = 1
    if gap < gap_tol:
        if manifold.degenerate == "raise":
            raise DegenerateGeometryError(
                "relative spectral gap (σ₁−σ₂)/σ₁", float(gap), float(gap_tol),
                "the spectral sphere is not smooth here; use degenerate='strict' for the strict "
                "tangent space of a repeated σ₁")
        q = sum(1 for v in s if v >= s1 * (1 - gap_tol))
    return _cols(U, q), _rows(Vt, q).T


def normal_frame(manifold: SpectralSphere, W: Any, *, dps: int = DEFAULT_DPS) -> tuple[MPMatrix, MPMatrix]:
    """(U₁, V₁) of a spectral-sphere point (q columns; q > 1 only for degenerate='strict')."""
    if _kind(manifold) is not SpectralSphere:
        raise InvalidInputError(f"normal_frame is defined for SpectralSphere, got {manifold!r}")
    with _work(dps):
        w = _checked_point(manifold, W, dps)
        U1, V1 = _spectral_frame(manifold, w)
        return _rounded(U1, dps), _rounded(V1, dps)


def _project_work(manifold: Manifold, w: MPMatrix, g: MPMatrix) -> MPMatrix:
    kind = _kind(manifold)
    if kind is Euclidean:
        return g.copy()
    if kind in (Sphere, FrobeniusSphere):
        return g - w * (_dot(g, w) / _dot(w, w))
    if kind is SpectralSphere:
        U1, V1 = _spectral_frame(manifold, w)
        return g - U1 * _sym_m(U1.T * g * V1) * V1.T
    if kind is Oblique:
        wr, gr = _oblique_rows(manifold, w), _oblique_rows(manifold, g)
        out = mp.matrix(wr.rows, wr.cols)
        for i in range(wr.rows):
            wi, gi = _row(wr, i), _row(gr, i)
            mu = mp.fsum(a * b for a, b in zip(gi, wi)) / mp.fsum(a * a for a in wi)
            for j in range(wr.cols):
                out[i, j] = gi[j] - mu * wi[j]
        return _oblique_rows(manifold, out)
    t, wide = _stiefel_tall(w)
    gt = g.T if wide else g
    p = gt - t * _sym_m(t.T * gt) / mp.mpf(manifold.scale) ** 2
    return p.T if wide else p


def project_tangent(manifold: Manifold, W: Any, G: Any, *, dps: int = DEFAULT_DPS) -> Any:
    """P_W(G), the orthogonal projection onto T_W M (= the Riemannian gradient map)."""
    with _work(dps):
        w, g = _pair(manifold, W, G, "G", dps)
        return _out(manifold, _project_work(manifold, w, g), dps)


riemannian_gradient = project_tangent


def normal_component(manifold: Manifold, W: Any, G: Any, *, dps: int = DEFAULT_DPS) -> Any:
    """G − P_W(G)."""
    with _work(dps):
        w, g = _pair(manifold, W, G, "G", dps)
        return _out(manifold, g - _project_work(manifold, w, g), dps)


def _tangent_violation_work(manifold: Manifold, w: MPMatrix, a: MPMatrix) -> Any:
    kind = _kind(manifold)
    if kind is Euclidean:
        return mp.mpf(0)
    if kind is Oblique:
        wr, ar = _oblique_rows(manifold, w), _oblique_rows(manifold, a)
        per = [mp.mpf(0)]
        for i in range(wr.rows):
            wi, ai = _row(wr, i), _row(ar, i)
            na = _norm_list(ai)
            if na > 0:
                per.append(abs(mp.fsum(x * y for x, y in zip(ai, wi))) / (na * _norm_list(wi)))
        return max(per)
    na = _fro(a)
    if na == 0:
        return mp.mpf(0)
    if kind in (Sphere, FrobeniusSphere):
        return abs(_dot(a, w)) / (na * _fro(w))
    if kind is SpectralSphere:
        U1, V1 = _spectral_frame(manifold, w)
        return _fro(_sym_m(U1.T * a * V1)) / na
    t, wide = _stiefel_tall(w)
    at = a.T if wide else a
    return _fro(_sym_m(t.T * at)) / (mp.mpf(manifold.scale) * na)


def tangent_violation(manifold: Manifold, W: Any, A: Any, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """Normalised tangency residual v_M(W, A) ∈ [0, 1] (0 for A = 0)."""
    with _work(dps):
        w, a = _pair(manifold, W, A, "A", dps)
        return _rounded(_tangent_violation_work(manifold, w, a), dps)


def _project_point_work(manifold: Manifold, y: MPMatrix, dps: int) -> MPMatrix:
    kind = _kind(manifold)
    if kind is Euclidean:
        return y.copy()
    if kind in (Sphere, FrobeniusSphere):
        n = _fro(y)
        if n == 0:
            raise DegenerateGeometryError("‖W + ξ‖_F", 0.0, 0.0, "rescaling is undefined at 0")
        return y * (mp.mpf(manifold.radius) / n)
    if kind is SpectralSphere:
        R = mp.mpf(manifold.radius)
        U, s, Vt = _svd_work(y)
        if s[0] == 0:
            raise DegenerateGeometryError("σ₁(Y)", 0.0, 0.0, "the projection of 0 is not unique")
        if s[0] >= R:
            return _mclip_work(y, R)
        return y + (R - s[0]) * (_cols(U, 1) * _rows(Vt, 1))
    if kind is Oblique:
        yr = _oblique_rows(manifold, y)
        rad = _oblique_radii(manifold, yr.rows)
        out = mp.matrix(yr.rows, yr.cols)
        for i in range(yr.rows):
            yi = _row(yr, i)
            n = _norm_list(yi)
            if n == 0:
                raise DegenerateGeometryError(f"smallest {manifold.axis[:-1]} norm", 0.0, 0.0,
                                              "normalising a zero row/column is undefined")
            for j in range(yr.cols):
                out[i, j] = yi[j] * (rad[i] / n)
        return _oblique_rows(manifold, out)
    # Stiefel / Orthogonal: s·polar_factor(Y), full rank required
    s = _svd_vals_work(y)
    thr = max(y.rows, y.cols) * eps_mach(dps)
    ratio = s[-1] / s[0] if s[0] > 0 else mp.mpf(0)
    if ratio <= thr:
        raise DegenerateGeometryError("σ_min/σ_max of W + ξ", float(ratio), float(thr),
                                      "the polar retraction needs full rank")
    return _msign_work(y, None, None, dps, complete=True) * mp.mpf(manifold.scale)


def _qr_positive(t: MPMatrix) -> MPMatrix:
    """Q of the thin QR of a tall full-rank matrix with diag(R) > 0 (modified Gram–Schmidt, twice)."""
    m, n = t.rows, t.cols
    Q = mp.matrix(m, n)
    for j in range(n):
        v = [t[i, j] for i in range(m)]
        for _ in range(2):  # re-orthogonalise once ("twice is enough")
            for k in range(j):
                c = mp.fsum(Q[i, k] * v[i] for i in range(m))
                v = [v[i] - c * Q[i, k] for i in range(m)]
        nv = _norm_list(v)
        if nv == 0:
            raise DegenerateGeometryError("|diag(R)| of W + ξ", 0.0, 0.0, "W + ξ is rank deficient")
        for i in range(m):
            Q[i, j] = v[i] / nv
    return Q


def _retract_work(manifold: Manifold, w: MPMatrix, a: MPMatrix, name: str, dps: int) -> MPMatrix:
    kind = _kind(manifold)
    y = w + a
    if name == "exp" and kind in (Sphere, FrobeniusSphere):
        v = _tangent_violation_work(manifold, w, a)
        if not v <= EXP_TANGENT_TOL:
            raise OffManifoldError(f"the tangent space of {manifold!r}", float(v), EXP_TANGENT_TOL, "vector")
        t = _fro(a)
        R = mp.mpf(manifold.radius)
        if t == 0:
            return w.copy()
        return w * mp.cos(t / R) + a * (R * mp.sin(t / R) / t)
    if kind is SpectralSphere and name == "rescale":
        s1 = _svd_vals_work(y)[0]
        if s1 == 0:
            raise DegenerateGeometryError("σ₁(W + ξ)", 0.0, 0.0, "rescaling is undefined at 0")
        return y * (mp.mpf(manifold.radius) / s1)
    if kind in (Stiefel, Orthogonal) and name == "qr":
        t, wide = _stiefel_tall(y)
        Q = _qr_positive(t) * mp.mpf(manifold.scale)
        return Q.T if wide else Q
    return _project_point_work(manifold, y, dps)


def retract(manifold: Manifold, W: Any, A: Any, method: str | None = None, *,
            dps: int = DEFAULT_DPS) -> Any:
    """R_W(A) with the named retraction (default ``manifold.retractions[0]``), as in the float64 class."""
    name = manifold.retractions[0] if method is None else method
    if name not in manifold.retractions:
        raise InvalidInputError(f"{manifold!r}: unknown retraction {name!r}; known: {manifold.retractions}")
    with _work(dps):
        w, a = _pair(manifold, W, A, "A", dps)
        return _out(manifold, _retract_work(manifold, w, a, name, dps), dps)


def project_point(manifold: Manifold, Y: Any, *, dps: int = DEFAULT_DPS) -> Any:
    """Metric projection of an ambient Y onto M (nearest point in ‖·‖_F)."""
    y = _point_array(manifold, Y, "Y")
    with _work(dps):
        return _out(manifold, _project_point_work(manifold, y, dps), dps)


def manifold_inner(manifold: Manifold, W: Any, A: Any, B: Any, *, dps: int = DEFAULT_DPS) -> "mp.mpf":
    """Riemannian metric at W: the Frobenius inner product ⟨A, B⟩ (W is validated)."""
    with _work(dps):
        _, a = _pair(manifold, W, A, "A", dps)
        b = _point_array(manifold, B, "B")
        if (a.rows, a.cols) != (b.rows, b.cols):
            raise InvalidInputError("A and B must have the same shape")
        return _rounded(_dot(a, b), dps)
