"""Batched msign in torch: Newton–Schulz-type iterations and an exact SVD path (MATH.md §2–3).

Conventions (the same as ``reference``):

* Matrices are ``(..., m, n)`` tensors, batched over the leading dimensions; every matrix is
  normalised by its own Frobenius norm (never the whole tensor).
* The schedules are the :class:`reference.schedules.Schedule` objects themselves (one copy of the
  data): coefficients, default steps, extension rule, safety factor ``s``, ``eps`` and
  ``eps_form``. Keyword arguments override the schedule's own options.
* The routine (MATH.md §3.1) is ``X₀ = X/(s·N_ε(X))``, then per step
  ``X ← aX + (bA + cA²)X`` with ``A = XXᵀ``. Tall inputs are transposed (``transpose=True``) so
  the Gram matrix is the smaller one; this changes cost and rounding only.
* Cast point (MATH.md §3.4): ``cast="before"`` rounds the input to ``compute_dtype`` and then
  normalises (KJ, torch.optim.Muon); ``cast="after"`` normalises in at least float32 and then
  rounds (HeavyBall). The norm itself is always accumulated in float32 (float64 when either the
  input or the compute dtype is float64).
* Zero input: with ``eps_form="none"`` (or ε = 0) a zero matrix would divide by zero; here its
  normaliser is replaced by 1, so the output is exactly 0 — the msign(0) = 0 convention and the
  limit of the exact map — instead of NaN. No other input is affected.
* ``msign_exact`` is the exact path through ``torch.linalg.svd`` in float64: ``U_r V_rᵀ`` with the
  rank threshold ``τ = max(m, n)·ε_mach·σ₁`` (or ``rank_tol`` absolute / ``rank_rtol`` relative),
  so msign(0) = 0, refined by default with the reference's double-double Newton correction
  (error O(k·u) + O((κ_r·u)²), ~1e-15 up to κ_r = 1e6); ``refine=False`` gives the plain SVD
  product (~κ_r·u₆₄).
* Return dtype: the input dtype unless ``out_dtype`` is given.
* Compute dtype ``"auto"``: the fastest dtype the device computes natively, chosen once per
  process by :func:`native_ns_dtype` (bf16 on CUDA and on CPUs with AMX, float32 otherwise;
  override with the environment variable ``MANIFOLD_ORACLE_NS_DTYPE``); ``manifold-oracle info``
  shows the choice and its reason. It is the default of :class:`MsignPolicy`, of every
  optimizer's ``ns_dtype`` and of ``train --msign-dtype``; the optimizers store the concrete
  dtype it resolved to (:func:`concrete_ns_dtype`). Pass ``"bfloat16"`` for torch.optim.Muon's
  numerics on any device.

Non-finite input raises :class:`reference.errors.InvalidInputError` when ``check_finite=True``
(the default for the public functions; this costs one device sync, so the optimizers check their
gradients themselves once per step and call the internals with ``check_finite=False``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from manifold_oracle.reference.errors import InvalidInputError, SolverError
from manifold_oracle.reference.schedules import SCHEDULES, Schedule, get_schedule

__all__ = [
    "DTYPES",
    "resolve_dtype",
    "native_ns_dtype",
    "concrete_ns_dtype",
    "cpu_has_amx_bf16",
    "ns_normaliser",
    "AUTO",
    "NS_DTYPE_ENV",
    "MsignPolicy",
    "newton_schulz",
    "msign_exact",
    "msign",
    "msign_many",
    "EXACT",
]

#: the name of the exact (SVD) msign policy
EXACT = "exact"

#: accepted dtype names
DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "fp64": torch.float64, "float64": torch.float64, "double": torch.float64,
}

Cast = Literal["before", "after"]


#: dtype name meaning "the fastest Newton–Schulz dtype this hardware computes natively"
AUTO = "auto"
#: environment variable that overrides the hardware choice of ``"auto"`` (a name of :data:`DTYPES`)
NS_DTYPE_ENV = "MANIFOLD_ORACLE_NS_DTYPE"


def cpu_has_amx_bf16() -> bool:
    """True when the CPU advertises AMX bf16 tiles (Linux ``/proc/cpuinfo`` flag ``amx_bf16``)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


_NATIVE: dict[str, tuple[torch.dtype, str]] = {}


def native_ns_dtype(device_type: str = "cpu") -> tuple[torch.dtype, str]:
    """(dtype, reason) of ``"auto"`` on a device type, chosen once per process.

    bf16 on CUDA and on CPUs with AMX (bf16 matmul in hardware tiles); float32 on other CPUs,
    where bf16 matmuls are emulated: measured there (2-core Xeon with avx512_bf16, no AMX, torch
    2.13, one thread) bf16 Newton–Schulz took 1.9× the float32 time at 1024² (issue 16). The
    environment variable ``MANIFOLD_ORACLE_NS_DTYPE`` overrides the choice."""
    if device_type not in _NATIVE:
        try:
            known = isinstance(device_type, str) and torch.device(device_type).type == device_type
        except (RuntimeError, TypeError, ValueError):
            known = False
        if not known:
            raise InvalidInputError(f"device_type must be a torch device type ('cpu', 'cuda', ...), got {device_type!r}")
        env = os.environ.get(NS_DTYPE_ENV)
        if env:
            if env.lower() == AUTO:
                raise InvalidInputError(f"{NS_DTYPE_ENV} must name a dtype, not {AUTO!r}")
            _NATIVE[device_type] = (resolve_dtype(env, torch.float32), f"{NS_DTYPE_ENV}={env}")
        elif device_type == "cuda":
            _NATIVE[device_type] = (torch.bfloat16, "CUDA device: bf16 tensor cores")
        elif device_type == "cpu" and cpu_has_amx_bf16():
            _NATIVE[device_type] = (torch.bfloat16, "CPU with AMX (amx_bf16): bf16 matmul in hardware")
        else:
            _NATIVE[device_type] = (torch.float32, f"{device_type} without AMX: bf16 matmul is emulated "
                                                   "(measured 1.9× slower than float32)")
    return _NATIVE[device_type]


def resolve_dtype(dtype: str | torch.dtype | None, default: torch.dtype, device_type: str = "cpu") -> torch.dtype:
    """A floating torch dtype from a name (``"bf16"``, ``"fp32"``, …, or ``"auto"``: see
    :func:`native_ns_dtype` for ``device_type``), a dtype, or ``None`` (→ ``default``)."""
    if dtype is None:
        return default
    if isinstance(dtype, str) and dtype.lower() == AUTO:
        return native_ns_dtype(device_type)[0]
    if isinstance(dtype, torch.dtype):
        d = dtype
    else:
        try:
            d = DTYPES[str(dtype).lower()]
        except KeyError:
            raise InvalidInputError(f"unknown dtype {dtype!r}; known: {sorted(DTYPES) + [AUTO]}") from None
    if d not in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be bf16, fp16, fp32 or fp64, got {d}")
    return d


def concrete_ns_dtype(dtype: str | torch.dtype | None, device_type: str = "cpu") -> str | None:
    """The canonical name (``"bfloat16"``, ``"float32"``, …) of a compute dtype, ``"auto"``
    resolved for ``device_type`` by :func:`native_ns_dtype`; ``None`` (the input dtype) stays
    ``None``. What the optimizers store in their groups, so a state dict names the dtype used."""
    if dtype is None:
        return None
    return str(resolve_dtype(dtype, torch.float32, device_type)).removeprefix("torch.")


def _acc_dtype(*dtypes: torch.dtype) -> torch.dtype:
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _check_matrix(X: Tensor, name: str, check_finite: bool) -> None:
    if not isinstance(X, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.is_complex() or not X.is_floating_point():
        raise InvalidInputError(f"{name} must be a real floating tensor, got dtype {X.dtype}")
    if X.ndim < 2 or X.shape[-1] == 0 or X.shape[-2] == 0:
        raise InvalidInputError(f"{name} must have shape (..., m, n) with m, n >= 1, got {tuple(X.shape)}")
    if check_finite and not bool(torch.isfinite(X).all()):
        raise InvalidInputError(f"{name}: non-finite entries (NaN or Inf)")


def ns_normaliser(fro: Tensor, eps: float, eps_form: str) -> Tensor:
    """The divisor N_ε(‖X‖_F) of the Newton–Schulz input (``reference.schedules.normaliser``'s torch
    twin): ``"+eps"`` ‖X‖_F + ε, ``"clamp"`` max(‖X‖_F, ε), ``"none"`` ‖X‖_F; 1 where it is 0, so
    that msign(0) = 0. ``fro``: any shape, any float dtype (returned in it)."""
    if eps_form == "+eps":
        n = fro + eps
    elif eps_form == "clamp":
        n = fro.clamp_min(eps)
    elif eps_form == "none":
        n = fro
    else:
        raise InvalidInputError(f"unknown eps_form {eps_form!r}")
    # zero matrix → normaliser 1 → output exactly 0 (msign(0) = 0) instead of NaN
    return torch.where(n == 0, torch.ones_like(n), n)


def _ns_iterate(X: Tensor, coeffs: Sequence[tuple[float, float, float]]) -> Tensor:
    """The quintic/cubic steps on a wide-or-square ``X`` of shape (m, n) or (B, m, n)."""
    if X.ndim == 2:
        for a, b, c in coeffs:
            A = X @ X.mT
            if c == 0.0:
                X = torch.addmm(X, A, X, beta=a, alpha=b)
            else:
                P = torch.addmm(A, A, A, beta=b, alpha=c)
                X = torch.addmm(X, P, X, beta=a)
        return X
    for a, b, c in coeffs:
        A = torch.bmm(X, X.mT)
        if c == 0.0:
            X = torch.baddbmm(X, A, X, beta=a, alpha=b)
        else:
            P = torch.baddbmm(A, A, A, beta=b, alpha=c)
            X = torch.baddbmm(X, P, X, beta=a)
    return X


def newton_schulz(
    X: Tensor,
    schedule: str | Schedule = "keller_jordan",
    *,
    steps: int | None = None,
    extension: str | None = None,
    safety: float | None = None,
    eps: float | None = None,
    eps_form: str | None = None,
    compute_dtype: str | torch.dtype | None = None,
    out_dtype: str | torch.dtype | None = None,
    cast: Cast = "before",
    transpose: bool = True,
    check_finite: bool = True,
) -> Tensor:
    """Newton–Schulz-type approximation of msign(X) with a declared schedule, batched.

    ``X``: ``(..., m, n)`` real tensor (never modified). ``compute_dtype`` defaults to the input
    dtype; ``out_dtype`` defaults to the input dtype. Returns ``(..., m, n)``. In exact arithmetic
    the output is ``U·φ(Σ/(s·N_ε))·Vᵀ`` (``reference.ns_apply``).
    """
    _check_matrix(X, "X", check_finite)
    sch = _resolve_schedule(schedule, steps, extension, safety, eps, eps_form)
    if cast not in ("before", "after"):
        raise InvalidInputError(f"cast must be 'before' or 'after', got {cast!r}")
    return _ns(X, sch.coefficients_for(), sch.safety, sch.eps, sch.eps_form,
               resolve_dtype(compute_dtype, X.dtype, X.device.type), resolve_dtype(out_dtype, X.dtype),
               cast, transpose)


def _resolve_schedule(schedule: str | Schedule, steps: int | None, extension: str | None,
                      safety: float | None, eps: float | None, eps_form: str | None) -> Schedule:
    sch = get_schedule(schedule)
    changes = {k: v for k, v in dict(steps=steps, extension=extension, safety=safety, eps=eps,
                                     eps_form=eps_form).items() if v is not None}
    return sch.with_options(**changes) if changes else sch


def _fro_norm(Y: Tensor) -> Tensor:
    """‖Y‖_F per matrix of a (..., m, n) tensor, shape (..., 1, 1), float64, overflow-safe.

    Squaring in fp32/bf16 overflows once ‖Y‖_F ≳ 1.8e19 and NS would then return 0, so the norm
    must not be taken in the low dtype alone. On CUDA it is accumulated in float64 (one pass, no
    sync). On CPU a float64 reduction costs ~13× a float32 one (measured 2.1 vs 0.16 ms on a
    512×2048 fp32 matrix, issue 16), so the norm is accumulated in float32 (torch's opmath for
    bf16/fp16) and recomputed in float64 only when a norm came out non-finite (overflow, or a
    NaN/Inf entry, which gives the same non-finite result either way); the read of that flag is
    free on CPU. Relative difference to the float64 norm: float32 summation rounding, ≲ 1e-6,
    far below the bf16/fp32 rounding of the normalised input that follows.
    """
    if Y.device.type != "cpu" or Y.dtype == torch.float64:
        return torch.linalg.vector_norm(Y, dim=(-2, -1), keepdim=True, dtype=torch.float64)
    fro = torch.linalg.vector_norm(Y, dim=(-2, -1), keepdim=True, dtype=torch.float32)
    if not math.isfinite(float(fro.sum(dtype=torch.float64))):  # norms are ≥ 0: finite sum iff all finite
        return torch.linalg.vector_norm(Y, dim=(-2, -1), keepdim=True, dtype=torch.float64)
    return fro.to(torch.float64)


def _ns(X: Tensor, coeffs: Sequence[tuple[float, float, float]], safety: float, eps: float, eps_form: str,
        cd: torch.dtype, od: torch.dtype, cast: str, transpose: bool) -> Tensor:
    """The NS routine on a validated tensor with resolved options (see :func:`newton_schulz`)."""
    *batch, m, n = X.shape
    tall = transpose and m > n
    Y = X.mT if tall else X
    if Y.ndim > 3:
        Y = Y.reshape(-1, *Y.shape[-2:])
    acc = _acc_dtype(X.dtype, cd)
    if cast == "before":
        Yc = Y.to(cd)
        # the norm of the input itself when it is at least as precise as the compute dtype (a
        # fp32 reduction reads 4 bytes/entry fast; a bf16 one with fp32 output is ~6× slower on CPU)
        fro = _fro_norm(Y if Y.element_size() >= Yc.element_size() else Yc)
        Z = Yc / (safety * ns_normaliser(fro, eps, eps_form)).to(cd)
    else:
        Ya = Y.to(acc)
        fro = _fro_norm(Ya)
        Z = (Ya / (safety * ns_normaliser(fro, eps, eps_form)).to(acc)).to(cd)
    Z = _ns_iterate(Z, coeffs)
    if tall:
        Z = Z.mT
    if len(batch) > 1:
        Z = Z.reshape(*batch, m, n)
    # one pass for the cast and the transpose back (no copy when already contiguous in ``od``)
    return Z.to(od, memory_format=torch.contiguous_format)


def msign_exact(
    X: Tensor,
    rank_tol: float | None = None,
    *,
    rank_rtol: float | None = None,
    refine: bool = True,
    out_dtype: str | torch.dtype | None = None,
    check_finite: bool = True,
) -> Tensor:
    """Exact ``msign(X) = U_r V_rᵀ`` via ``torch.linalg.svd`` in float64, batched.

    Rank: ``σᵢ > τ`` with ``τ = max(m, n)·ε_mach·σ₁`` (float64 ε_mach), or an absolute
    ``rank_tol`` / relative ``rank_rtol`` (at most one). msign(0) = 0. ``refine=True`` (default,
    as ``reference.msign``) applies one Newton correction of the rank-r polar factor with
    double-double residuals (the reference's algorithm, on torch ops): error O(k·u) + O((κ_r·u)²)
    instead of the plain SVD product's ~κ_r·u. Returns ``out_dtype`` (default: the input dtype).
    """
    _check_matrix(X, "X", check_finite)
    if rank_tol is not None and rank_rtol is not None:
        raise InvalidInputError("pass at most one of rank_tol (absolute) and rank_rtol (relative)")
    od = resolve_dtype(out_dtype, X.dtype)
    x = X.to(torch.float64)
    try:
        U, s, Vh = torch.linalg.svd(x, full_matrices=False)
    except torch.linalg.LinAlgError as e:  # torch's CPU SVD refuses non-finite input
        if not bool(torch.isfinite(x).all()):  # only reachable with check_finite=False: NaN in, NaN
            return torch.full_like(x, float("nan"), dtype=od)  # out (as Newton–Schulz); callers' flags refuse it
        raise SolverError(f"msign_exact: the float64 SVD failed: {e}", status="svd_failed") from e
    s1 = s[..., :1]
    if rank_tol is not None:
        if not (rank_tol >= 0 and rank_tol < float("inf")):
            raise InvalidInputError(f"rank_tol must be finite and >= 0, got {rank_tol!r}")
        tau = torch.full_like(s1, float(rank_tol))
    elif rank_rtol is not None:
        if not (rank_rtol >= 0 and rank_rtol < float("inf")):
            raise InvalidInputError(f"rank_rtol must be finite and >= 0, got {rank_rtol!r}")
        tau = float(rank_rtol) * s1
    else:
        tau = max(X.shape[-2:]) * torch.finfo(torch.float64).eps * s1
    keep = s > tau
    if not refine:
        return ((U * keep.to(torch.float64).unsqueeze(-2)) @ Vh).to(od)
    xs = x.reshape(-1, *x.shape[-2:])
    Us, Vhs = U.reshape(-1, *U.shape[-2:]), Vh.reshape(-1, *Vh.shape[-2:])
    ranks = keep.reshape(-1, keep.shape[-1]).sum(-1).tolist()
    out = torch.zeros_like(xs)
    for i, r in enumerate(ranks):
        if r > 0:
            out[i] = _refined_partial_isometry(xs[i], Us[i], Vhs[i], int(r))
    return out.reshape(x.shape).to(od)


# -- double-double products (Ozaki–Ogita–Oishi–Rump splitting), as reference._accurate --------
_TARGET_BITS = 110


def _two_sum(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _slices(A: Tensor, dim: int, beta: int, count: int) -> list[Tensor]:
    out: list[Tensor] = []
    R = A.clone()
    for _ in range(count):
        mu = R.abs().amax(dim=dim, keepdim=True)
        _, ex = torch.frexp(mu)
        sigma = torch.where(mu > 0, torch.ldexp(torch.ones_like(mu), ex + beta), torch.zeros_like(mu))
        S = (R + sigma) - sigma
        out.append(S)
        R = R - S
        if not bool(R.any()):
            break
    return out


def _renorm(hi: Tensor, lo: Tensor) -> tuple[Tensor, Tensor]:
    s = hi + lo
    return s, lo - (s - hi)


def _mm_dd(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """(hi, lo) with hi + lo ≈ A @ B to ~2⁻¹⁰⁶ relative to |A|·|B| (float64, 2-D)."""
    p = A.shape[-1]
    beta = math.ceil((53 + math.log2(max(p, 1))) / 2)
    count = math.ceil(_TARGET_BITS / (53 - beta)) + 1
    As, Bs = _slices(A, -1, beta, count), _slices(B, -2, beta, count)
    hi = lo = None
    for level in range(count):
        for si in range(level + 1):
            ti = level - si
            if si >= len(As) or ti >= len(Bs):
                continue
            prod = As[si] @ Bs[ti]  # exact: every slice product fits in 53 bits
            if hi is None:
                hi, lo = prod, torch.zeros_like(prod)
            else:
                hi, e = _two_sum(hi, prod)
                lo = lo + e
    assert hi is not None and lo is not None
    return _renorm(hi, lo)


def _refined_partial_isometry(x: Tensor, U: Tensor, Vh: Tensor, r: int) -> Tensor:
    """One double-double Newton correction of U_r V_rᵀ (reference.linalg's formula). 2-D."""
    m, n = x.shape
    Ur, Vr = U[:, :r], Vh[:r, :].mT
    Ph, Pl = _mm_dd(x, Vr)                       # X V_r
    Th, Tl = _mm_dd(Ur.mT, Ph)                   # U_rᵀ X V_r  (f × dd)
    Th, Tl = _renorm(Th, Tl + Ur.mT @ Pl)
    T = Th + Tl
    d = torch.diagonal(T).clone()
    if bool((d <= 0).any()):
        return Ur @ Vr.mT
    Omega = (T - T.mT) / (d[:, None] + d[None, :])
    Omega.fill_diagonal_(0.0)
    out = Ur @ (Vr.mT + Omega @ Vr.mT)
    if r < m:                                    # left leakage (I − U_rU_rᵀ) X V_r
        UTh, UTl = _mm_dd(Ur, Th)
        UTh, UTl = _renorm(UTh, UTl + Ur @ Tl)
        s_, e_ = _two_sum(Ph, -UTh)
        NLh, NLl = _renorm(s_, e_ + (Pl - UTl))
        out = out + ((NLh + NLl) / d[None, :]) @ Vr.mT
    if r < n:                                    # right leakage U_rᵀ X (I − V_rV_rᵀ)
        Qh, Ql = _mm_dd(Ur.mT, x)
        TVh, TVl = _mm_dd(Th, Vr.mT)
        TVh, TVl = _renorm(TVh, TVl + Tl @ Vr.mT)
        s_, e_ = _two_sum(Qh, -TVh)
        NRh, NRl = _renorm(s_, e_ + (Ql - TVl))
        out = out + Ur @ ((NRh + NRl) / d[:, None])
    return out


@dataclass(frozen=True)
class MsignPolicy:
    """How an optimizer computes msign: a declared NS schedule or ``"exact"``.

    ``schedule``: a name of ``reference.SCHEDULES``, a :class:`Schedule`, or ``"exact"``.
    ``steps``/``extension``/``safety``/``eps``/``eps_form``: overrides of the schedule's own
    options (``None`` keeps them). ``compute_dtype`` (default ``"auto"``: :func:`native_ns_dtype`
    per call's device; ``None`` = the input dtype), ``out_dtype``
    (``None`` = the input dtype), ``cast`` and ``transpose`` as in :func:`newton_schulz`;
    ``rank_tol``/``rank_rtol``/``refine`` for the exact path.
    """

    schedule: str | Schedule = "keller_jordan"
    steps: int | None = None
    compute_dtype: str | torch.dtype | None = AUTO
    out_dtype: str | torch.dtype | None = None
    cast: Cast = "before"
    transpose: bool = True
    extension: str | None = None
    safety: float | None = None
    eps: float | None = None
    eps_form: str | None = None
    rank_tol: float | None = None
    rank_rtol: float | None = None
    refine: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.schedule, Schedule) or self.schedule == EXACT or self.schedule in SCHEDULES):
            raise InvalidInputError(f"unknown msign schedule {self.schedule!r}; known: "
                                    f"{sorted(SCHEDULES) + [EXACT]}")
        if self.steps is not None:  # the rule of reference.schedules: an integer 0 <= steps <= MAX_STEPS
            try:  # (0: the normalised input), checked for the exact policy too, which ignores it
                get_schedule("keller_jordan").with_options(steps=self.steps)
            except InvalidInputError:
                raise InvalidInputError(f"steps must be an integer >= 0, got {self.steps!r}") from None
        if self.cast not in ("before", "after"):
            raise InvalidInputError(f"cast must be 'before' or 'after', got {self.cast!r}")
        if self.compute_dtype is not None:
            resolve_dtype(self.compute_dtype, torch.float32)
        if self.out_dtype is not None:
            resolve_dtype(self.out_dtype, torch.float32)
        if not self.is_exact:
            sch = _resolve_schedule(self.schedule, self.steps, self.extension, self.safety, self.eps,
                                    self.eps_form)
            object.__setattr__(self, "_resolved", sch)
            object.__setattr__(self, "_coeffs", sch.coefficients_for())

    @property
    def is_exact(self) -> bool:
        return isinstance(self.schedule, str) and self.schedule == EXACT

    @property
    def resolved_schedule(self) -> Schedule | None:
        """The schedule with every override applied (``None`` for the exact policy)."""
        return None if self.is_exact else self._resolved  # type: ignore[attr-defined]

    def __call__(self, X: Tensor, *, check_finite: bool = True) -> Tensor:
        if self.is_exact:
            return msign_exact(X, self.rank_tol, rank_rtol=self.rank_rtol, refine=self.refine,
                               out_dtype=self.out_dtype, check_finite=check_finite)
        _check_matrix(X, "X", check_finite)
        sch: Schedule = self._resolved  # type: ignore[attr-defined]
        return _ns(X, self._coeffs, sch.safety, sch.eps, sch.eps_form,  # type: ignore[attr-defined]
                   resolve_dtype(self.compute_dtype, X.dtype, X.device.type),
                   resolve_dtype(self.out_dtype, X.dtype), self.cast, self.transpose)


def as_policy(policy: MsignPolicy | str | Schedule | None) -> MsignPolicy:
    """``None`` → the default policy (KJ, 5 steps, ``"auto"`` dtype); a name/Schedule → that schedule."""
    if policy is None:
        return MsignPolicy()
    if isinstance(policy, MsignPolicy):
        return policy
    if isinstance(policy, (str, Schedule)):
        return MsignPolicy(schedule=policy)
    raise InvalidInputError(f"msign policy must be a MsignPolicy, a schedule name or 'exact', got {policy!r}")


def msign(X: Tensor, policy: MsignPolicy | str | Schedule | None = None, *,
          check_finite: bool = True) -> Tensor:
    """msign of a ``(..., m, n)`` tensor under ``policy`` (see :class:`MsignPolicy`)."""
    return as_policy(policy)(X, check_finite=check_finite)


def msign_many(tensors: Sequence[Tensor], policy: MsignPolicy | str | Schedule | None = None, *,
               check_finite: bool = True) -> list[Tensor]:
    """msign of every tensor in a list; tensors of equal (shape, dtype, device) are stacked and
    orthogonalised in one batched call. Returns new tensors in input order."""
    pol = as_policy(policy)
    out: list[Tensor | None] = [None] * len(tensors)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        _check_matrix(t, f"tensors[{i}]", False)
        groups.setdefault((tuple(t.shape), t.dtype, t.device), []).append(i)
    for idx in groups.values():
        if len(idx) == 1:
            out[idx[0]] = pol(tensors[idx[0]], check_finite=check_finite)
            continue
        res = pol(torch.stack([tensors[i] for i in idx]), check_finite=check_finite)
        for j, i in enumerate(idx):
            out[i] = res[j]
    return out  # type: ignore[return-value]


#: smallest Gram size min(m, n) from which :class:`NSWorkspace` iterates a stack matrix by matrix
#: (``mm``) instead of as one ``bmm`` chain. Measured on CPU (AMX bf16, torch 2.13, one thread,
#: interleaved; KJ 5 steps, bmm time ÷ per-matrix mm time, both into preallocated buffers):
#: 8×128² 0.31, 8×128×512 0.54, 12×256² 0.68, 8×256×768 0.77, 6×384² 0.85, 4×384×1536 0.96,
#: 12×512² 1.34, 4×512×2048 1.12, 2×1024² 1.06. Both orders give bit-identical results there.
NS_LOOP_FROM = 512


def _ns_steps_into(X: Tensor, Y: Tensor, A: Tensor, P: Tensor, coeffs: Sequence[tuple[float, float, float]],
                   mm: Any, addmm: Any, right: bool = False) -> Tensor:
    """The NS steps of :func:`_ns_iterate` in preallocated buffers: X ↔ Y ping-pong, Gram A and
    polynomial P (``(m, m)``); ``mm``/``addmm`` are ``torch.mm``/``torch.addmm`` for one matrix or
    ``torch.bmm``/``torch.baddbmm`` for a stack. ``right``: the transposed iteration of a tall X
    without transposing it, A = XᵀX (``(n, n)``), X ← aX + X·(bA + cA²) (the same products,
    transposed). Returns the buffer holding the result."""
    for a, b, c in coeffs:
        if right:
            mm(X.mT, X, out=A)
        else:
            mm(X, X.mT, out=A)
        if c != 0.0:
            addmm(A, A, A, beta=b, alpha=c, out=P)
        Q, beta, alpha = (A, a, b) if c == 0.0 else (P, a, 1.0)
        if right:
            addmm(X, X, Q, beta=beta, alpha=alpha, out=Y)
        else:
            addmm(X, Q, X, beta=beta, alpha=alpha, out=Y)
        X, Y = Y, X
    return X


class NSWorkspace:
    """Newton–Schulz on a stack of ``B`` equal-shape matrices in reusable buffers (the fused step
    of ``gpu_impl.optim.MACRO``), with the numerics of :func:`newton_schulz` under a policy.

    ``load(i, X)`` normalises matrix ``i`` (``(m, n)``, never modified) into slot ``i`` of a
    ``(B, m, n)`` stack in the compute dtype (``load_all`` a whole ``(B, m, n)`` stack at once),
    with the policy's cast point, float32/float64 norm and normaliser — the same operations as
    :func:`newton_schulz`, so the slot holds the same values. ``run()`` iterates the schedule on
    the stack into preallocated Gram/product buffers (ping-pong, no allocation): as one ``bmm``
    chain when min(m, n) < :data:`NS_LOOP_FROM`, else per matrix with ``mm``; a tall X (when the
    policy transposes) with the Gram matrix XᵀX on the right — the transposed iteration without
    transposing copies, which cost 5× a plain copy (8×768×256 bf16, issue 16). ``out(i)``
    (``out_all()``) is msign(X_i) as an ``(m, n)`` view in the compute dtype, valid until the
    next ``load``. Memory: 2·B·m·n entries of the compute dtype, plus 2·B·m'² (bmm chain) or
    2·m'² (per matrix), m' = min(m, n); ``input_stack()`` adds B·m·n of the input dtype.
    Non-finite input is not checked (the result is then non-finite; callers flag it).
    """

    def __init__(self, policy: MsignPolicy, B: int, m: int, n: int, in_dtype: torch.dtype,
                 device: torch.device, batched: bool | None = None) -> None:
        if policy.is_exact:
            raise InvalidInputError("NSWorkspace needs a Newton–Schulz policy, not the exact SVD")
        sch: Schedule = policy.resolved_schedule  # type: ignore[assignment]
        self.coeffs: Sequence[tuple[float, float, float]] = policy._coeffs  # type: ignore[attr-defined]
        self.safety, self.eps, self.eps_form = sch.safety, sch.eps, sch.eps_form
        self.cast = policy.cast
        self.cd = resolve_dtype(policy.compute_dtype, in_dtype, device.type)
        self.acc = _acc_dtype(in_dtype, self.cd)
        #: a tall X (when the policy transposes) is iterated with the Gram matrix on the right
        self.tall = policy.transpose and m > n
        k = n if self.tall else m
        #: one bmm chain (True) or per-matrix mm (False); ``None``: by :data:`NS_LOOP_FROM`
        self.batched = min(m, n) < NS_LOOP_FROM if batched is None else bool(batched)
        kw = dict(dtype=self.cd, device=device)
        self.Z = torch.empty(B, m, n, **kw)  # type: ignore[arg-type]
        self.Y = torch.empty(B, m, n, **kw)  # type: ignore[arg-type]
        G = B if self.batched else 1  # per-matrix iteration shares one Gram/product pair
        self.A = torch.empty(G, k, k, **kw)  # type: ignore[arg-type]
        self.P = torch.empty(G, k, k, **kw)  # type: ignore[arg-type]
        self._res = self.Z
        self._shape, self._in_dtype = (B, m, n), in_dtype
        self._stack: Tensor | None = None

    def input_stack(self) -> Tensor:
        """A reused ``(B, m, n)`` buffer in the input dtype, allocated at the first call (the fused
        Frobenius step builds X and then Ŷ in it: a fresh buffer of this size each step is mapped
        from the OS and page-faulted again on CPU). Scratch: never read by the workspace."""
        if self._stack is None:
            self._stack = self.Z.new_empty(self._shape, dtype=self._in_dtype)
        return self._stack

    def load(self, i: int, X: Tensor) -> None:
        """Normalise ``X`` (``(m, n)``) into slot ``i`` (as :func:`_ns` does)."""
        self._load(self.Z[i], X)

    def load_all(self, X: Tensor) -> None:
        """Normalise a ``(B, m, n)`` stack into every slot: the values of :meth:`load` per matrix,
        in one copy, one batched norm and one division for the bucket (as :func:`_ns` on a stack)."""
        self._load(self.Z, X)

    def _load(self, slot: Tensor, Y: Tensor) -> None:
        if self.cast == "before":
            slot.copy_(Y)
            fro = _fro_norm(Y if Y.element_size() >= slot.element_size() else slot)
            slot.div_((self.safety * ns_normaliser(fro, self.eps, self.eps_form)).to(self.cd))
        else:
            Ya = Y.to(self.acc)
            fro = _fro_norm(Ya)
            torch.div(Ya, (self.safety * ns_normaliser(fro, self.eps, self.eps_form)).to(self.acc), out=slot)

    def slot(self, i: int) -> Tensor:
        """Input slot ``i`` as an ``(m, n)`` view in the compute dtype, for a caller that writes the
        normalised input itself (the values of :meth:`load`, up to rounding)."""
        return self.Z[i]

    def run(self) -> None:
        """The schedule's steps on every loaded slot (see the class docstring)."""
        if self.batched:
            self._res = _ns_steps_into(self.Z, self.Y, self.A, self.P, self.coeffs, torch.bmm, torch.baddbmm,
                                       self.tall)
            return
        for i in range(self.Z.shape[0]):
            _ns_steps_into(self.Z[i], self.Y[i], self.A[0], self.P[0], self.coeffs, torch.mm, torch.addmm, self.tall)
        self._res = self.Y if len(self.coeffs) % 2 else self.Z

    def out(self, i: int) -> Tensor:
        """msign of the matrix loaded into slot ``i``, ``(m, n)``, compute dtype (a view)."""
        return self._res[i]

    def out_all(self) -> Tensor:
        """Every slot's msign as a ``(B, m, n)`` view in the compute dtype."""
        return self._res
