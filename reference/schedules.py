"""Newton–Schulz-type polynomial schedules as data, and their exact singular-value maps.

A schedule (MATH.md §3) is a list of odd polynomials ``p_j(x) = a_j x + b_j x³ + c_j x⁵``, a
default step count K, an extension rule for K > len (``"repeat_last"`` or ``"cycle"``) and the
input normalisation its source uses: ``X₀ = G / (s·N_ε(G))`` with safety factor ``s`` and
``N_ε`` one of ``"+eps"`` (‖G‖_F + ε), ``"clamp"`` (max(‖G‖_F, ε)) or ``"none"`` (‖G‖_F).

Because odd polynomials commute with the SVD, the routine maps ``G = UΣVᵀ`` to
``U·diag(φ(σᵢ/(s·N_ε(G))))·Vᵀ`` with ``φ = p_K ∘ … ∘ p₁`` in exact arithmetic. That map is the
oracle for every NS implementation (:func:`ns_singular_value_map`, :func:`ns_apply`).

The coefficient values are the published ones listed in CONVENTIONS.md §3, each with its source.
``gpu_impl`` imports the same objects, so there is one copy of the data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._scaling import pow2_scale
from ._validate import (
    as_float64,
    as_matrix,
    as_vector,
    check_finite,
    choice,
    count,
    flag,
    nonnegative_scalar,
    positive_scalar,
)
from .errors import InvalidInputError

F64 = NDArray[np.float64]
Coefficients = tuple[tuple[float, float, float], ...]
Extension = Literal["repeat_last", "cycle"]
EpsForm = Literal["+eps", "clamp", "none"]

__all__ = [
    "Schedule",
    "SCHEDULES",
    "get_schedule",
    "polynomial_map",
    "ns_singular_value_map",
    "ns_apply",
    "schedule_band",
    "normaliser",
]


@dataclass(frozen=True)
class Schedule:
    """A Newton–Schulz-type schedule with the normalisation its source uses.

    Attributes: ``name``; ``coefficients`` ((a, b, c) per step); ``steps`` (default K);
    ``extension`` (rule for K > len); ``safety`` (input factor s ≥ 1); ``eps`` and ``eps_form``
    (the normaliser N_ε); ``source`` (where the numbers come from).
    """

    name: str
    coefficients: Coefficients
    steps: int
    extension: Extension = "repeat_last"
    safety: float = 1.0
    eps: float = 0.0
    eps_form: EpsForm = "none"
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidInputError(f"schedule name must be a string, got {self.name!r}")
        arr = as_float64(self.coefficients, f"schedule {self.name!r}: coefficients")
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != 3:
            raise InvalidInputError(f"schedule {self.name!r}: coefficients must be a non-empty list of "
                                    f"(a, b, c) tuples, got shape {arr.shape}")
        check_finite(arr, f"schedule {self.name!r}: coefficients")
        coeffs = tuple(tuple(float(c) for c in row) for row in arr)
        object.__setattr__(self, "coefficients", coeffs)
        object.__setattr__(self, "steps", _steps(self.steps, f"schedule {self.name!r}: steps"))
        choice(self.extension, ("repeat_last", "cycle"), f"schedule {self.name!r}: extension")
        choice(self.eps_form, ("+eps", "clamp", "none"), f"schedule {self.name!r}: eps_form")
        safety = positive_scalar(self.safety, f"schedule {self.name!r}: safety")
        if safety < 1.0:
            raise InvalidInputError(f"schedule {self.name!r}: safety must be >= 1, got {self.safety}")
        object.__setattr__(self, "safety", safety)
        object.__setattr__(self, "eps", nonnegative_scalar(self.eps, f"schedule {self.name!r}: eps"))

    def coefficients_for(self, steps: int | None = None) -> Coefficients:
        """The (a, b, c) tuple of each of ``steps`` (default ``self.steps``) steps."""
        k = self.steps if steps is None else _steps(steps, "steps")
        n = len(self.coefficients)
        if self.extension == "cycle":
            return tuple(self.coefficients[j % n] for j in range(k))
        return tuple(self.coefficients[min(j, n - 1)] for j in range(k))

    def with_options(self, **changes: object) -> "Schedule":
        """A copy with fields replaced (e.g. ``steps=10, extension="cycle"``)."""
        try:
            return replace(self, **changes)  # type: ignore[arg-type]
        except TypeError as exc:  # an unknown field name
            raise InvalidInputError(f"schedule options: {exc}") from exc


#: largest step count accepted (published schedules use ≤ 10; this only bounds nonsense input)
MAX_STEPS = 10_000


def _steps(value: object, name: str) -> int:
    k = count(value, name, 0)  # type: ignore[arg-type]
    if k > MAX_STEPS:
        raise InvalidInputError(f"{name} must be <= {MAX_STEPS}, got {value!r}")
    return k


def _stable(coeffs: Coefficients, factor: float) -> Coefficients:
    """Polar Express "stable" form: (a/f, b/f³, c/f⁵) on all but the last tuple."""
    head = tuple((a / factor, b / factor**3, c / factor**5) for a, b, c in coeffs[:-1])
    return head + (coeffs[-1],)


_KJ: Coefficients = ((3.4445, -4.7750, 2.0315),)
_YJ5: Coefficients = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
_PE_PAPER: Coefficients = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_EO_PE: Coefficients = (
    (8.2051, -22.9019, 16.4607),
    (4.0664, -2.8612, 0.5184),
    (3.9096, -2.8234, 0.5250),
    (3.2856, -2.4153, 0.4853),
    (2.2779, -1.6198, 0.3985),
    (1.8726, -1.2307, 0.3585),
    (1.8564, -1.2132, 0.3568),
    (1.8750, -1.2500, 0.3750),
)
_DION_PE: Coefficients = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
_MODULA_NS6: Coefficients = tuple(
    (a / 1024.0, b / 1024.0, c / 1024.0)
    for a, b, c in (
        (3955, -8306, 5008),
        (3735, -6681, 3463),
        (3799, -6499, 3211),
        (4019, -6385, 2906),
        (2677, -3029, 1162),
        (2172, -1833, 682),
    )
)
_CLASSICAL: Coefficients = ((15 / 8, -10 / 8, 3 / 8),)

_ALL = (
    Schedule("keller_jordan", _KJ, 5, "repeat_last", 1.0, 1e-7, "+eps",
             "KellerJordan/Muon muon.py zeropower_via_newtonschulz5 (also torch.optim.Muon, "
             "Moonlight, optax); CONVENTIONS.md §3"),
    Schedule("you_jiacheng_5", _YJ5, 5, "repeat_last", 1.0, 1e-7, "+eps",
             "YouJiacheng 5-step 'quintic' (dion NS5, HeavyBall, Emerging-Optimizers 'quintic', "
             "ArchScale MuonH); CONVENTIONS.md §3"),
    Schedule("polar_express", _PE_PAPER, 8, "repeat_last", 1.0, 0.0, "none",
             "Polar Express paper list, arXiv 2505.16932 v3; CONVENTIONS.md §3"),
    Schedule("polar_express_stable", _stable(_PE_PAPER, 1.01), 8, "repeat_last", 1.01, 0.0, "none",
             "Polar Express 'stable' form: first seven tuples divided as (a/1.01, b/1.01³, c/1.01⁵), "
             "input divided by 1.01·‖X‖_F (thinking-machines-lab/manifolds msign); CONVENTIONS.md §3, §4.6"),
    Schedule("polar_express_eo", _EO_PE, 8, "repeat_last", 1.0, 1e-15, "clamp",
             "Emerging-Optimizers 'polar_express' (stable list rounded to 4 decimals; SSO msign list), "
             "F.normalize clamp eps; CONVENTIONS.md §3, §4.8"),
    Schedule("polar_express_dion", _DION_PE, 5, "repeat_last", 1.02, 1e-6, "+eps",
             "microsoft/dion polar_express, input X/(1.02·‖X‖_F + ε); CONVENTIONS.md §3, §4.4"),
    Schedule("modula_ns6", _MODULA_NS6, 6, "repeat_last", 1.0, 0.0, "none",
             "Modula orthogonalize NS6 (integers/1024), no eps; CONVENTIONS.md §3, §4.13"),
    Schedule("classical", _CLASSICAL, 5, "repeat_last", 1.0, 0.0, "none",
             "classical quintic Newton–Schulz (15/8, −10/8, 3/8): p(1)=1, p'(1)=p''(1)=0; "
             "limit polynomial of Polar Express; CONVENTIONS.md §3"),
)

#: The named schedules, read-only. Keys are the ``Schedule.name`` values.
SCHEDULES: Mapping[str, Schedule] = MappingProxyType({s.name: s for s in _ALL})


def get_schedule(schedule: str | Schedule) -> Schedule:
    """Resolve a schedule name (or pass a :class:`Schedule` through)."""
    if isinstance(schedule, Schedule):
        return schedule
    try:
        return SCHEDULES[schedule]
    except (KeyError, TypeError):
        raise InvalidInputError(f"unknown schedule {schedule!r}; known: {sorted(SCHEDULES)}") from None


def _resolve(schedule: str | Schedule, steps, extension, safety, eps, eps_form) -> Schedule:
    sch = get_schedule(schedule)
    changes = {k: v for k, v in dict(steps=steps, extension=extension, safety=safety, eps=eps,
                                     eps_form=eps_form).items() if v is not None}
    return sch.with_options(**changes) if changes else sch


def polynomial_map(schedule: str | Schedule, x: ArrayLike, steps: int | None = None) -> F64:
    """φ(x) = p_K ∘ … ∘ p₁ (x) on already-normalised values ``x`` (any shape), float64.

    Evaluated by Horner's rule; this is exact up to float64 rounding of each step (the map is
    a contraction near its fixed band, so the error stays at a few ulp for x ∈ [0, 1]).
    """
    sch = get_schedule(schedule)
    y = as_float64(x, "x").copy()
    check_finite(y, "x")
    for a, b, c in sch.coefficients_for(steps):
        y2 = y * y
        y = y * (a + y2 * (b + c * y2))
    return y


def normaliser(fro: F64 | float, eps: float, eps_form: EpsForm) -> F64 | float:
    """N_ε(G) from ‖G‖_F: ``+eps`` → ‖G‖_F + ε, ``clamp`` → max(‖G‖_F, ε), ``none`` → ‖G‖_F."""
    choice(eps_form, ("+eps", "clamp", "none"), "eps_form")
    f = as_float64(fro, "fro")
    check_finite(f, "fro")
    if np.any(f < 0):
        raise InvalidInputError("fro (a Frobenius norm) must be >= 0")
    return _normaliser(f if f.ndim else float(f), nonnegative_scalar(eps, "eps"), eps_form)


def _normaliser(fro: F64 | float, eps: F64 | float, eps_form: str) -> F64 | float:
    if eps_form == "+eps":
        return fro + eps
    if eps_form == "clamp":
        return np.maximum(fro, eps)
    if eps_form == "none":
        return fro
    raise InvalidInputError(f"unknown eps_form {eps_form!r}")


def ns_singular_value_map(
    schedule: str | Schedule,
    sigma: ArrayLike,
    *,
    steps: int | None = None,
    extension: Extension | None = None,
    safety: float | None = None,
    eps: float | None = None,
    eps_form: EpsForm | None = None,
) -> F64:
    """Output singular values of the NS routine for a matrix with singular values ``sigma``.

    ``sigma`` has shape ``(..., k)`` (all singular values of each matrix, any order). The map
    is ``φ(σᵢ/(s·N_ε(‖σ‖₂)))`` (‖σ‖₂ = ‖G‖_F); keyword arguments override the schedule's own
    steps/extension/safety/eps/eps_form. For ``eps_form="none"`` and σ = 0 the routine divides by
    zero; this raises :class:`InvalidInputError` rather than returning NaN.
    """
    sch = _resolve(schedule, steps, extension, safety, eps, eps_form)
    s = as_vector(sigma, "sigma")  # shape (..., k), k >= 1, finite
    if np.any(s < 0):
        raise InvalidInputError("singular values must be >= 0")
    ss, e = pow2_scale(s, (-1,))
    x, _ = _normalised(sch, ss, e)
    return polynomial_map(sch, x)


def _normalised(sch: Schedule, ss: F64, e: NDArray[np.int64]) -> tuple[F64, F64]:
    """(σᵢ/(s·N_ε(‖σ‖₂)), c) from the scaled singular values ``ss`` = σ·2⁻ᵉ (shape ``(..., k)``).

    ``c`` = s·N_ε·2⁻ᵉ (shape ``(..., 1)``) is the normaliser in the scaled units; it is inf where
    ε·2⁻ᵉ overflows (ε exceeds ‖σ‖₂ by more than the float64 range), and those ratios, all below
    2⁻¹⁰²⁴, are computed as (σᵢ·2⁻ᵉ/(s·ε))·2ᵉ. Raises for a zero input with ``eps_form="none"``.
    """
    scale = np.max(ss, axis=-1, keepdims=True)
    safe = np.where(scale > 0, scale, 1.0)
    fro = np.sqrt(np.sum((ss / safe) ** 2, axis=-1, keepdims=True)) * safe
    with np.errstate(over="ignore"):
        eps_s = np.ldexp(sch.eps, -e)[..., None]
    N = _normaliser(fro, eps_s, sch.eps_form)
    if np.any(np.asarray(N) == 0):
        raise InvalidInputError(
            f"schedule {sch.name!r} with eps_form={sch.eps_form!r}: zero input divides by zero "
            "(the implementation would return NaN)")
    c = sch.safety * N
    if np.all(np.isfinite(c)):
        return ss / c, c
    with np.errstate(under="ignore"):
        tiny = np.ldexp(ss / (sch.safety * sch.eps), e[..., None])
    return np.where(np.isfinite(c), ss / np.where(np.isfinite(c), c, 1.0), tiny), c


def ns_apply(
    schedule: str | Schedule,
    X: ArrayLike,
    *,
    steps: int | None = None,
    extension: Extension | None = None,
    safety: float | None = None,
    eps: float | None = None,
    eps_form: EpsForm | None = None,
    refine: bool = True,
) -> F64:
    """Apply the schedule to ``X`` (shape ``(..., m, n)``) *exactly* through the SVD, in float64.

    Returns ``F(X) = U·diag(h(σᵢ))·Vᵀ`` with ``h(σ) = φ(σ/(s·N_ε(‖X‖_F)))`` — what an ideal
    implementation of the declared schedule computes with no rounding inside the iteration.
    Per-matrix normalisation.

    Accuracy: the plain SVD product has error ≈ u·n·σ₁·max_ij|[h; σᵢ, ±σⱼ]| (the Fréchet
    conditioning of F, up to ~1e4 for small normalised σ). ``refine=True`` (default) adds the
    first-order correction around the computed SVD with double-double residuals, as
    :func:`reference.linalg.msign` does: with T = UᵀXV (≈ diagonal) and E its off-diagonal part,

        F(X) ≈ U·[diag h(T_ii) + A∘sym(E) + B∘skew(E)]·Vᵀ + (I − UUᵀ)XV·diag(h(T_jj)/T_jj)·Vᵀ,

    A_ij = [h; T_ii, T_jj], B_ij = [h; T_ii, −T_jj] (divided differences, evaluated by the exact
    chain rule through the odd polynomials, so there is no cancellation). The result is accurate
    to O(k·u) + O((κu)²) (measured against mpmath in tests/reference/test_golden_float64.py).
    """
    sch = _resolve(schedule, steps, extension, safety, eps, eps_form)
    refine = flag(refine, "refine")
    x, e = pow2_scale(as_matrix(X))  # exact power-of-two scaling; the normaliser is scaled with it
    U, s, Vt = np.linalg.svd(x, full_matrices=False)
    ratio, c = _normalised(sch, s, e)
    phi = polynomial_map(sch, ratio)
    if not refine and np.all(np.isfinite(c)):
        return (U * phi[..., None, :]) @ Vt
    # ε exceeds ‖X‖_F by more than the float64 range (c = inf): every σᵢ/c < 2⁻¹⁰²⁴, where φ is
    # linear to working precision (φ(t) = φ'(0)·t·(1 + O(t²))): F(X) = φ'(0)·X/(s·ε), one rounding
    slope = float(np.prod([a for a, _, _ in sch.coefficients_for()]))
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-2]):
        ci = float(np.ravel(c[idx])[0])
        if not np.isfinite(ci):
            with np.errstate(under="ignore"):
                out[idx] = np.ldexp(x[idx] * (slope / (sch.safety * sch.eps)), e[idx])
        elif refine:
            out[idx] = _refined_spectral_map(sch, x[idx], U[idx], Vt[idx], ci)
        else:
            out[idx] = (U[idx] * phi[idx][None, :]) @ Vt[idx]
    return out


def _divided_difference(sch: Schedule, x: F64, y: F64) -> F64:
    """[φ; x, y] = (φ(x) − φ(y))/(x − y) (φ'(x) when x = y), exact chain rule, no cancellation."""
    dd = np.ones(np.broadcast_shapes(np.shape(x), np.shape(y)))
    for a, b, c in sch.coefficients_for():
        x2, y2, xy = x * x, y * y, x * y
        dd = dd * (a + b * (x2 + xy + y2) + c * (x2 * x2 + x2 * xy + x2 * y2 + xy * y2 + y2 * y2))
        x = x * (a + x2 * (b + c * x2))
        y = y * (a + y2 * (b + c * y2))
    return dd


def _refined_spectral_map(sch: Schedule, x: F64, U: F64, Vt: F64, c: float) -> F64:
    """One double-double first-order correction of U·h(Σ)·Vᵀ (2-D; see :func:`ns_apply`)."""
    from . import _accurate as acc

    wide = x.shape[0] < x.shape[1]
    if wide:  # work with the tall orientation: F(Xᵀ) = F(X)ᵀ
        x, U, Vt = x.T, Vt.T, U.T
    V = Vt.T
    Ph, Pl = acc.matmul_dd(x, V)  # X V  (m, k)
    Th, Tl = acc.matmul_f_by_dd(U.T, Ph, Pl)  # Uᵀ X V  (k, k)
    T = Th + Tl
    d = np.diag(T).copy()
    xn = d / c
    h = polynomial_map(sch, xn)
    A = _divided_difference(sch, xn[:, None], xn[None, :]) / c  # [h; σᵢ, σⱼ]
    B = _divided_difference(sch, xn[:, None], -xn[None, :]) / c  # [h; σᵢ, −σⱼ]
    E = T - np.diag(d)
    core = A * (0.5 * (E + E.T)) + B * (0.5 * (E - E.T))
    core[np.diag_indices_from(core)] = h
    out = U @ core @ Vt
    if x.shape[0] > x.shape[1]:  # left leakage (I − UUᵀ) X V, scaled by h(σ)/σ = [h; σ, −σ]
        UTh, UTl = acc.matmul_f_by_dd(U, Th, Tl)
        NLh, NLl = acc.sub_dd(Ph, Pl, UTh, UTl)
        g = _divided_difference(sch, xn, -xn) / c
        out = out + ((NLh + NLl) * g[None, :]) @ Vt
    return out.T if wide else out


def schedule_band(
    schedule: str | Schedule,
    lower: float,
    *,
    upper: float = 1.0,
    steps: int | None = None,
    safety: float | None = None,
    points: int = 20001,
) -> tuple[float, float]:
    """[min, max] of φ(x/s) over x ∈ [lower, upper] (CONVENTIONS.md §9), float64.

    Dense log-plus-linear grid of ``points`` nodes, then each interior extremum is polished by
    golden-section search on its bracketing cell. ``safety`` defaults to the schedule's own.
    """
    sch = _resolve(schedule, steps, None, safety, None, None)
    lower, upper = positive_scalar(lower, "lower"), positive_scalar(upper, "upper")
    points = count(points, "points", 3)
    if not (0 < lower < upper):
        raise InvalidInputError(f"need 0 < lower < upper, got {lower}, {upper}")
    grid = np.unique(np.concatenate([np.geomspace(lower, upper, points // 2),
                                     np.linspace(lower, upper, points - points // 2)]))
    vals = polynomial_map(sch, grid / sch.safety)
    lo, hi = _polish(sch, grid, vals, np.argmin(vals), -1.0), _polish(sch, grid, vals, np.argmax(vals), 1.0)
    return float(min(lo, vals.min())), float(max(hi, vals.max()))


def _polish(sch: Schedule, grid: F64, vals: F64, i: int, sign: float) -> float:
    if i == 0 or i == len(grid) - 1:
        return float(vals[i])
    a, b = grid[i - 1], grid[i + 1]
    f = lambda t: sign * float(polynomial_map(sch, np.array([t / sch.safety]))[0])  # noqa: E731
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return sign * max(fc, fd, sign * float(vals[i]))
