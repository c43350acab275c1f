"""``MACRO(torch.optim.Optimizer)``: msign-aligned constrained Riemannian optimizer (MATH.md §7).

Per constrained matrix W (variant A, the default, MATH.md §7.1)::

    M  ← momentum(M, G)                 (form: ema | accumulate | nesterov_ema |
                                         nesterov_accumulate | projected_ema, MATH §7.3)
    X  = P_W(U)                         (U = the momentum input of the form)
    D  = P_W(msign(X))                  (A; B: D = msign(X); C: D = msign(U))
    W  ← R_W(−lr·s·D)                   (retraction of the manifold)

Parameter-group options (defaults in the signature):

* ``manifold``: ``"frobenius"``, ``"spectral"``, ``"oblique_rows"``, ``"oblique_cols"``,
  ``"stiefel"``, ``"euclidean"`` (P = I, no retraction: Muon with MACRO's options) or ``None``
  (the group goes to the internal AdamW). Parameters that are not 2-D always go to AdamW.
* ``radius``: ``"init"`` (the norm at construction: ‖W₀‖_F; σ₁(W₀); each row's (column's) own
  norm for oblique, so W₀ is already feasible; the RMS singular value ‖W₀‖_F/√min(m, n) for
  Stiefel — the conventions of ``reference.optimizers.MACRO``),
  ``"mup"`` (MATH.md §4.9 times ``radius_scale``: √d_out; √(d_out/d_in); 1; √(d_out/d_in);
  √(d_out/d_in)) or a positive float.
* ``prenormalize``: divide the momentum input by max(‖U‖_F, 1e-8) before the projection
  (SSO style; default False).
* ``scale`` s: ``"one"`` | ``"radius"`` | ``"kj"`` √max(1, d_out/d_in) | ``"moonlight"``
  0.2√max(d_out, d_in) | ``"spectral_mup"`` √(d_out/d_in) | ``"eo_spectral"`` (alias
  ``"spectral"``) √max(d_out, d_in) (``reference.optim.shape_scale``).
* ``retraction``: ``None`` (the manifold's default: rescale / rescale / normalize / polar) or a
  name of the manifold's ``retractions``.
* ``msign``: a schedule name of ``reference.SCHEDULES`` (default ``"keller_jordan"``, 5 steps),
  a ``Schedule``, ``"exact"`` (float64 SVD, refined) or a :class:`gpu_impl.msign.MsignPolicy`;
  with a name, ``ns_steps`` (``None`` = the schedule's) and ``ns_dtype`` (compute dtype; default
  ``"auto"``: bf16 on CUDA and AMX CPUs, float32 on other CPUs (``gpu_impl.msign.native_ns_dtype``),
  stored in the group as the concrete name it resolved to; ``"bfloat16"`` gives the numerics of
  ``torch.optim.Muon``; ``None`` = the parameter dtype) complete it.
* spectral sphere: ``theta`` (``"certified"`` (default) a warm-started iteration (a
  Chebyshev-filtered cycle of adaptive degree, else block Krylov, ``cert_iteration``) stopped by
  a-posteriori bounds on the pair's angle (≤ √ε) and on σ̂₁(Y) (≤ ε), with Krylov and float64
  cycles and then the exact pair where they cannot be met (``gpu_impl.manifolds.SpectralSphere``,
  ``pair_certificate``; Y's pair is certified for the rescale and its Ritz basis is re-certified
  on W = fl(c·Y) as the next step's Θ, in one stacked call per shape up to transposition; diagnostics
  ``pair_bound``, ``pair_fallback``), ``"exact"`` SVD, or ``"power"`` warm-started power
  iteration cached per parameter, uncertified: after ~100 training steps the top of the
  spectrum is flat and its pair is off by up to 0.3 in angle (docs/bench_gpu.md §4)),
  ``cert_tol`` (certified pair's angle tolerance; ``None`` = √ε of the weights' dtype, 3.5e-4
  in float32: measured true angles ≤ 4.8e-6 and a normal component ≤ 1.0e-7 of ‖D‖_F over a
  300-step run, against 1.6e-8 with the exact pair, docs/bench_gpu.md §4; 1e-5 brought it to
  2.7e-8 at about twice the pair's cost on the ``tiny`` model with the Krylov iteration),
  ``cert_iteration`` (``"chebyshev"`` (default) or ``"krylov"``: the first cycle of a
  warm-started certified pair, ``gpu_impl.manifolds.CERT_ITERATIONS``; the filter halves the
  pair's cost in steady-state training, Krylov is the robust choice for spectra that continue
  evenly below the 8-vector block),
  ``power_steps`` (``theta="power"``: steps on the retraction input Y, default 3; none on W at
  the start of a step when W is the retraction output of the previous step, else
  ``power_steps``), ``power_block`` (width of the subspace iteration with
  Rayleigh–Ritz finish, default 8: with a flat top spectrum — what the spectral sphere drifts to
  under noisy gradients — width 2 loses track of σ₁; width 8 with 3 steps kept 100 noisy fp32
  steps (lr 0.02, R = √(d_out/d_in), shapes up to 96×32) within 4e-4 of the sphere, width 2
  drifted to 5e-2; more steps or ``theta="exact"`` buy accuracy), ``gap_tol``,
  ``gap_policy`` (``"report"`` (default: the estimated gap goes to the diagnostics) |
  ``"raise"`` (DegenerateGeometryError before any weight is touched) | ``"off"``).
* AdamW part: ``adamw_lr``, ``adamw_betas``, ``adamw_eps``, ``adamw_wd`` (torch's defaults).

Resuming: construct the optimizer, ``load_state_dict``, then restore the weights; the step after
is then bit-identical to the uninterrupted run (the saved concrete ``ns_dtype`` is used, whatever
``"auto"`` picks on the resuming machine; set ``group["ns_dtype"]`` after loading to change it) (constructing on restored weights is fine too,
but the construction retraction may change them at rounding level).

Construction (documented side effect): every constrained matrix is moved onto its manifold in
place — rescaled by R/‖W‖_F (Frobenius), R/σ₁ with the exact σ₁ (spectral; the exact SVD also
seeds the cached singular vectors), row/column-normalised (oblique) or replaced by R·msign(W)
via the float64 SVD (Stiefel). No weight decay is applied to constrained matrices.

Optimizer-level options: ``nonfinite`` (``"raise"`` | ``"skip"``) and ``diagnostics``
(``False``; ``True``/``"cheap"``: tangency of D, feasibility (not for the spectral sphere, whose
exact σ₁ needs an SVD), rotation angle, ‖D‖_F, relative update, spectral gap estimate and
power residual; ``"full"`` adds the exact spectral feasibility, ‖D‖₂, the alignment error
|⟨D, X⟩ − ‖X‖_*|/‖X‖_* and, on the spectral sphere, ``pair_angle`` (the Θ pair used against
the exact one), ``tangency_exact`` (|u₁ᵀDv₁|/‖D‖_F with the exact pair) and ``gap_exact``
((σ₁ − σ₂)/σ₁) through SVDs). Read them with :meth:`diagnostics` (one sync).
The step protocol (transactional, one sync) is described in ``gpu_impl.optim._base``.
``fused`` (``True`` default | ``"compile"`` | ``False``): on the Frobenius and spectral spheres
(rescale retraction, no prenormalisation, scale rule not ``"radius"``, no diagnostics) the step
runs per matrix with in-place ops and Newton–Schulz in a reused per-bucket workspace
(``gpu_impl.msign.NSWorkspace``: one bmm chain below ``NS_LOOP_FROM``, per-matrix mm from it;
memory 2·B·m·n (+ 2·B·m'² below NS_LOOP_FROM) entries of the NS dtype per bucket,
m' = min(m, n); the Frobenius step with ``fused=True`` keeps B·m·n more of the parameter
dtype there, where it builds X — normalised for the whole bucket at once — and then Ŷ).
``"compile"``:
momentum, projection and normalisation (and the Frobenius scales and commit, the spectral
retraction input) as torch.compile'd functions — fewer passes over memory (Frobenius: on
chunks of ``COMPILE_CHUNK`` matrices per call, ‖X‖² accumulated in float32 on CPU with an
eager float64 redo on overflow); compiles once per process and graph variant (a few seconds
each), needs a C++ compiler on CPU. Everything else,
and ``fused=False``, takes the readable stacked reference step. All agree to rounding
(tests/gpu_impl/test_fused_step.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

import torch
from torch import Tensor

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.schedules import Schedule

from manifold_oracle.reference.kinds import mup_radius
from manifold_oracle.reference.optim import optimizer_kind

from ..manifolds import (
    CERT_ITERATIONS,
    MANIFOLD_NAMES,
    PAIR_STATE,
    THETA_SOURCES,
    TORCH_KINDS,
    SpectralSphere,
    TopPair,
    TorchManifold,
    check_count,
    frobenius_project,
    make_manifold,
    spectral_project,
)
from ..msign import MsignPolicy, NSWorkspace, ns_normaliser, resolve_dtype
from ._base import (Bucket, MatrixOptimizer, check_initial_matrix, check_step_options, checked_number, finite_sum,
                    read_flags)
from .conventions import canonical_scale_rule, macro_direction, shape_scale, update_momentum

__all__ = ["MACRO", "MOMENTUM_FORMS", "REPROJECT_VARIANTS", "MACRO_MANIFOLDS", "RETRACTIONS", "msign_policy_of"]

MOMENTUM_FORMS = ("ema", "accumulate", "nesterov_ema", "nesterov_accumulate", "projected_ema")
REPROJECT_VARIANTS = ("A", "B", "C")
#: the names accepted for ``manifold`` (aliases of ``reference.kinds``; the canonical names too)
MACRO_MANIFOLDS = MANIFOLD_NAMES + (None,)
#: retractions per manifold name, from the torch classes (first = default)
RETRACTIONS: dict[str, tuple[str, ...]] = {n: TORCH_KINDS[optimizer_kind(n)].retractions for n in MANIFOLD_NAMES}


def _kind(group: dict[str, Any]) -> str | None:
    """The canonical kind (``reference.kinds``) of a group's manifold name, None for AdamW groups."""
    name = group["manifold"]
    return None if name is None else optimizer_kind(name)


_POLICY_CACHE: dict[tuple, MsignPolicy] = {}


def msign_policy_of(group: dict[str, Any]) -> MsignPolicy:
    """The :class:`MsignPolicy` of a parameter group (``msign``, ``ns_steps``, ``ns_dtype``)."""
    m = group.get("msign")
    if isinstance(m, MsignPolicy):
        return m
    if isinstance(m, (str, Schedule)):
        key = (m, group.get("ns_steps"), group.get("ns_dtype"))
        pol = _POLICY_CACHE.get(key)
        if pol is None:
            pol = MsignPolicy(schedule=m, steps=group.get("ns_steps"), compute_dtype=group.get("ns_dtype"))
            if len(_POLICY_CACHE) < 256:
                _POLICY_CACHE[key] = pol
        return pol
    raise InvalidInputError(f"msign must be a schedule name, 'exact', a Schedule or a MsignPolicy, got {m!r}")


def _retraction_pair(man: TorchManifold, Y: Tensor, state: dict[str, Tensor], with_residual: bool) -> Any:
    """Top pair of the retraction input Y (σ̂₁ rescales it onto the spectral sphere). A non-finite
    Y (from a non-finite gradient or a divergent msign) makes ``top_pair`` refuse it
    (InvalidInputError); the pair is then NaN, which the step's finiteness flags turn into its
    typed refusal (nothing written)."""
    try:
        return man.top_pair(Y, state, with_gap=False, with_residual=with_residual,  # type: ignore[attr-defined]
                            certify="both")  # σ̂₁ now, the cached pair at the next step (W = cY)
    except InvalidInputError:
        nan = torch.full(Y.shape[:-2], float("nan"), dtype=Y.dtype, device=Y.device)
        return TopPair(nan, nan, nan, residual=nan if with_residual else None)


def _sin_angle(a: Tensor, b: Tensor) -> Tensor:
    """sin∠(a, b) (..., float64) for a vector ``a`` and a unit float64 ``b`` (no 1 − cos² cancellation)."""
    a = a.to(torch.float64)
    a = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    return torch.linalg.vector_norm(a - (a * b).sum(-1, keepdim=True) * b, dim=-1)


def _stacked_top_pairs(man: TorchManifold, Ws: list[Tensor], states: list[dict[str, Tensor]],
                       retraction: bool = False, **kw: Any) -> list[Any]:
    """Top pairs of matrices on ``man`` (``man.top_pair(W, state, **kw)``; the pair does not depend
    on the radius, so one manifold serves a group; ``retraction``: of retraction inputs,
    per :func:`_retraction_pair`), in the input order. With ``theta="certified"`` the matrices of
    one shape up to transposition ((m, n) and (n, m): the certified pair works on the taller
    orientation, so their cached bases match) are taken in one stacked call (the certificate
    and the Krylov cycles cost mostly per-call overhead at these sizes); the states' entries
    are stacked and handed back per matrix as own tensors, (u, v) swapped back for the wide ones."""
    def one(W: Tensor, st: dict[str, Tensor]) -> Any:
        return _retraction_pair(man, W, st, False) if retraction else man.top_pair(W, st, **kw)  # type: ignore[attr-defined]

    if getattr(man, "theta_source", None) != "certified":
        return [one(W, st) for W, st in zip(Ws, states)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, W in enumerate(Ws):
        groups.setdefault((max(W.shape[-2:]), min(W.shape[-2:])), []).append(i)
    out: list[Any] = [None] * len(Ws)
    for idx in groups.values():
        sts = [states[i] for i in idx]
        keys = set(sts[0])
        if len(idx) == 1 or any(set(st) != keys or any(st[k].shape != sts[0][k].shape for k in keys) for st in sts):
            for i in idx:
                out[i] = one(Ws[i], states[i])
            continue
        wide = [Ws[i].shape[-2] < Ws[i].shape[-1] for i in idx]
        stacked = {k: torch.stack([st[k] for st in sts]) for k in keys}
        # all wide: stack as they are and take the transposed view (a transposing copy of a
        # 512×2048 stack costs 4× a plain one; the products read the view's layout as it is)
        pair = one(torch.stack([Ws[i] for i in idx]).mT if all(wide) else
                   torch.stack([Ws[i].mT if w else Ws[i] for i, w in zip(idx, wide)]), stacked)
        for st, *rows in zip(sts, *(v.unbind(0) for v in stacked.values())):
            st.clear()
            st.update({k: v.clone() for k, v in zip(stacked, rows)})  # own tensors, not views of the stack
        fields = {f.name: getattr(pair, f.name) for f in dataclasses.fields(pair)}
        per = {k: v.unbind(0) for k, v in fields.items() if isinstance(v, Tensor) and v.ndim}  # one op a field
        for j, (i, w) in enumerate(zip(idx, wide)):
            q = TopPair(**{k: per[k][j] if k in per else v for k, v in fields.items()})
            if w:
                q.u, q.v = q.v, q.u
            out[i] = q
    return out


def _normalised_into(X: Tensor, slot: Tensor, safety: float, eps: float, eps_form: str,
                     acc: torch.dtype = torch.float64, xx: Tensor | None = None) -> Tensor:
    """slot ← X/(s·N_ε(‖X‖_F)) in the slot's (compute) dtype, cast point "before" (the normaliser
    is rounded to the compute dtype), ‖X‖²_F accumulated in ``acc`` unless given as ``xx``
    (compiled: inductor keeps X in float32 before the division, one rounding less than
    :meth:`NSWorkspace.load`). Returns ‖X‖²_F (``acc``); with ``acc`` float32 it overflows (inf)
    once ‖X‖_F ≳ 1.8e19: the caller checks."""
    if xx is None:
        xx = (X * X).sum(dtype=acc)
    d = safety * ns_normaliser(torch.sqrt(xx), eps, eps_form)
    slot.copy_(X.to(slot.dtype) / d.to(slot.dtype))
    return xx


def _frobenius_pre(M: Tensor, G: Tensor, W: Tensor, slot: Tensor, beta: float, form: str, variant: str,
                   safety: float, eps: float, eps_form: str, acc: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """The Frobenius step up to Newton–Schulz for one matrix (``fused="compile"``): momentum,
    ‖W‖²_F, X = P_W(U) (U for variant C) normalised into ``slot`` (an (m, n) view of an
    :class:`NSWorkspace` stack), ‖X‖²_F accumulated in ``acc``. Returns (new momentum state,
    ‖W‖²_F, ‖X‖²_F). Compiled: one pass over M, G, W (momentum and both inner products), one for
    ‖X‖, one writing the slot (a float64 ‖X‖ costs 1.2× the whole function on CPU, issue 16)."""
    M_new, U = update_momentum(form, beta, M, G)
    ww = (W * W).sum()
    if variant == "C" and form != "projected_ema":
        return M_new, ww, _normalised_into(U, slot, safety, eps, eps_form, acc)
    uw = (U * W).sum()
    X = U - (uw / ww) * W
    if acc == torch.float32:
        # ‖X‖² = ‖U‖² − ⟨U, W⟩²/‖W‖² from the first pass's sums (no pass over X before the slot is
        # written: −1 of 3 passes); its rounding is ≈ 3u·‖U‖²/‖X‖² relative, so a matrix whose
        # normal component takes more than half of ‖U‖² is returned as NaN: the caller normalises
        # it eagerly (with the float32 overflow, in the same check)
        uu = (U * U).sum(dtype=acc)
        cut = (uw / ww) * uw
        xx = torch.where(cut <= 0.5 * uu, uu - cut, torch.full_like(uu, float("nan")))
        xx = _normalised_into(X, slot, safety, eps, eps_form, acc, xx)
    else:
        xx = _normalised_into(X, slot, safety, eps, eps_form, acc)
    return (X if form == "projected_ema" else M_new), ww, xx


def _spectral_pre(M: Tensor, G: Tensor, u: Tensor, v: Tensor, slot: Tensor, beta: float, form: str,
                  variant: str, safety: float, eps: float, eps_form: str) -> Tensor:
    """The spectral-sphere step up to Newton–Schulz for one matrix (``fused="compile"``): momentum,
    X = U − (uᵀUv)·u vᵀ (U for variant C) normalised into ``slot``. Returns the new momentum
    state. Compiled: one pass over M, G (momentum and uᵀUv), one for ‖X‖, one writing the slot."""
    M_new, U = update_momentum(form, beta, M, G)
    if not (variant == "C" and form != "projected_ema"):
        uv = u[:, None] * v[None, :]
        U = U - (U * uv).sum() * uv
    _normalised_into(U, slot, safety, eps, eps_form)
    return U if form == "projected_ema" else M_new


def _spectral_y(W: Tensor, O: Tensor, u: Tensor, v: Tensor, a: float, variant: str) -> Tensor:
    """The retraction input Y = W − a·O (+ a·(uᵀOv)·u vᵀ for variant A) of one matrix
    (``fused="compile"``), O (compute dtype) cast on the fly: one pass for uᵀOv, one writing Y."""
    o = O.to(W.dtype)
    Y = W - a * o
    if variant == "A":
        uv = u[:, None] * v[None, :]
        Y = Y + (a * (o * uv).sum()) * uv
    return Y


def _frobenius_scales(W: Tensor, O: Tensor, ww: Tensor, R: Tensor, a: float, variant: str) -> Tensor:
    """(s, s·k) of the Frobenius commit W' = s·O + s·k·W (``fused="compile"``): d = ⟨O, W⟩/‖W‖²
    (0 for variants B/C), k = −(1 + a·d)/a, s = −R/‖Ŷ‖ with Ŷ = O + k·W and
    ‖Ŷ‖² = ‖O‖² + 2k·⟨O, W⟩ + k²·‖W‖² (error ≲ 3u·(‖O‖² + 2|k⟨O, W⟩| + k²‖W‖²)/‖Ŷ‖²); O (the NS
    output, compute dtype) is cast on the fly: one pass over O and W."""
    o = O.to(W.dtype)
    ow, oo = (o * W).sum(), (o * o).sum()
    d = ow / ww if variant == "A" else torch.zeros_like(ww)
    k = (1.0 + a * d) / -a
    s = -R / torch.sqrt(oo + 2.0 * k * ow + k * k * ww)
    return torch.stack([s, s * k])


def _commit(Ws: list[Tensor], Os: list[Tensor], scales: list[Tensor]) -> None:
    """W ← s·O + s·k·W in place for each matrix, ``scales`` = the (s, s·k) of
    :func:`_frobenius_scales` (one pass per matrix when compiled)."""
    for W, O, sc in zip(Ws, Os, scales):
        W.copy_(W * sc[1] + O.to(W.dtype) * sc[0])


def _frobenius_pre_many(Ms: list[Tensor], Gs: list[Tensor], Ws: list[Tensor], slots: list[Tensor],
                        *args: Any) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`_frobenius_pre` of several matrices (one compiled call)."""
    return [_frobenius_pre(M, G, W, slot, *args) for M, G, W, slot in zip(Ms, Gs, Ws, slots)]


def _frobenius_scales_many(Ws: list[Tensor], Os: list[Tensor], wws: list[Tensor], Rs: list[Tensor],
                           a: float, variant: str) -> list[Tensor]:
    """:func:`_frobenius_scales` of several matrices (one compiled call)."""
    return [_frobenius_scales(W, O, ww, R, a, variant) for W, O, ww, R in zip(Ws, Os, wws, Rs)]


#: matrices per compiled call of the Frobenius ``fused="compile"`` step: a bucket runs in chunks
#: of this many, then one by one (two graph variants per function, whatever the bucket sizes).
#: Each call of a torch.compile'd function costs ~0.1 ms of guards and wrappers on CPU: chunks of 4
#: took 0.75× the time of per-matrix calls on 12×512² (AMX CPU, one thread, interleaved, issue 16)
COMPILE_CHUNK = 4


def _chunks(n: int) -> list[slice]:
    """Slices of ``range(n)``: chunks of :data:`COMPILE_CHUNK`, then single matrices."""
    full = n - n % COMPILE_CHUNK
    return [slice(i, i + COMPILE_CHUNK) for i in range(0, full, COMPILE_CHUNK)] + [slice(i, i + 1) for i in range(full, n)]


_compiled_pre = torch.compile(_frobenius_pre_many, dynamic=True)
_compiled_scales = torch.compile(_frobenius_scales_many, dynamic=True)
_compiled_spectral_pre = torch.compile(_spectral_pre, dynamic=True)
_compiled_spectral_y = torch.compile(_spectral_y, dynamic=True)
_compiled_commit = torch.compile(_commit, dynamic=True)


def _frobenius_projector(W: Tensor, w: Tensor, ww: Tensor, out: Tensor | None = None) -> Any:
    """Z ↦ Z − (⟨Z, W⟩/‖W‖²)·W (a new tensor, or written into ``out``); ``w`` = W flattened,
    ``ww`` = ‖W‖²_F."""
    def P(Z: Tensor) -> Tensor:
        return torch.addcmul(Z, W, torch.dot(Z.reshape(-1), w) / ww, value=-1.0, out=out)
    return P


def _spectral_projector(u: Tensor, v: Tensor) -> Any:
    """Z ↦ Z − (uᵀZv)·u vᵀ (``gpu_impl.manifolds.spectral_project``)."""
    def P(Z: Tensor) -> Tensor:
        return spectral_project(Z, u, v)
    return P


def _fro(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=(-2, -1))


class MACRO(MatrixOptimizer):
    """MACRO (MATH.md §7) for 2-D parameters; AdamW for the rest. See the module docstring."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.02,
        momentum: float = 0.95,
        *,
        manifold: str | None = "frobenius",
        radius: str | float = "init",
        radius_scale: float = 1.0,
        momentum_form: str = "ema",
        reproject: str = "A",
        prenormalize: bool = False,
        scale: str = "one",
        retraction: str | None = None,
        msign: str | Schedule | MsignPolicy = "keller_jordan",
        ns_steps: int | None = None,
        ns_dtype: str | torch.dtype | None = "auto",
        theta: str = "certified",
        cert_tol: float | None = None,
        cert_iteration: str = "chebyshev",
        power_steps: int = 3,
        power_block: int = 8,
        gap_tol: float = 1e-6,
        gap_policy: str = "report",
        adamw_lr: float = 1e-3,
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
        adamw_wd: float = 0.01,
        nonfinite: str = "raise",
        diagnostics: bool | str = False,
        fused: bool | str = True,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, manifold=manifold, radius=radius,
                        radius_scale=radius_scale, momentum_form=momentum_form, reproject=reproject,
                        prenormalize=prenormalize,
                        scale=scale, retraction=retraction, msign=msign, ns_steps=ns_steps,
                        ns_dtype=ns_dtype, theta=theta, cert_tol=cert_tol, cert_iteration=cert_iteration,
                        power_steps=power_steps, gap_tol=gap_tol,
                        power_block=power_block, gap_policy=gap_policy, adamw_lr=adamw_lr,
                        adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps, adamw_wd=adamw_wd)
        if fused not in (True, False, "compile") or not isinstance(fused, (bool, str)):
            raise InvalidInputError(f"fused must be True, False or 'compile', got {fused!r}")
        #: use the fused in-place step where it applies (see :meth:`step`); False = eager reference
        self.fused = fused
        super().__init__(params, defaults, nonfinite=nonfinite, diagnostics=diagnostics)

    # -- options -------------------------------------------------------------------------------
    def _group_constrained(self, group: dict[str, Any]) -> bool:
        return group["manifold"] is not None

    def _check_group(self, group: dict[str, Any]) -> None:
        def bad(msg: str) -> None:
            raise InvalidInputError(msg)

        if group["manifold"] is not None and not isinstance(group["manifold"], str):
            bad(f"manifold must be one of {MACRO_MANIFOLDS}, got {group['manifold']!r}")
        kind = _kind(group)  # InvalidInputError for an unknown name
        if not (float(group["lr"]) >= 0):
            bad(f"lr must be >= 0, got {group['lr']!r}")
        if not (0 <= float(group["momentum"]) < 1):
            bad(f"momentum must be in [0, 1), got {group['momentum']!r}")
        if group["momentum_form"] not in MOMENTUM_FORMS:
            bad(f"momentum_form must be one of {MOMENTUM_FORMS}, got {group['momentum_form']!r}")
        if group["reproject"] not in REPROJECT_VARIANTS:
            bad(f"reproject must be one of {REPROJECT_VARIANTS}, got {group['reproject']!r}")
        canonical_scale_rule(group["scale"])  # InvalidInputError for an unknown name
        if (group["scale"] == "radius" and group["radius"] == "init"
                and kind in ("oblique_rows", "oblique_cols")):
            bad("scale 'radius' needs one radius per matrix; radius 'init' on an oblique manifold "
                "gives one per row/column: pass a number or 'mup'")
        r = group["radius"]
        if isinstance(r, str):
            if r not in ("init", "mup"):
                bad(f"radius must be 'init', 'mup' or a positive float, got {r!r}")
        elif not (isinstance(r, (int, float)) and 0 < float(r) < float("inf")):
            bad(f"radius must be 'init', 'mup' or a positive float, got {r!r}")
        checked_number(group["radius_scale"], "radius_scale", low_open=True)
        name = group["manifold"]
        if kind is not None and group["retraction"] is not None \
                and group["retraction"] not in TORCH_KINDS[kind].retractions:
            bad(f"retraction {group['retraction']!r} is not one of {TORCH_KINDS[kind].retractions} for {name}")
        if kind == "frobenius_sphere" and group["retraction"] == "exp" and group["reproject"] != "A":
            bad("the exponential map needs a tangent step: use reproject='A' with retraction='exp'")
        if group["theta"] not in THETA_SOURCES:
            bad(f"theta must be one of {THETA_SOURCES}, got {group['theta']!r}")
        if group["gap_policy"] not in ("raise", "report", "off"):
            bad(f"gap_policy must be 'raise', 'report' or 'off', got {group['gap_policy']!r}")
        tol = group.setdefault("cert_tol", None)  # state dicts saved before the option: the default
        if tol is not None and not (isinstance(tol, (int, float)) and 0 < float(tol) < 1):
            bad(f"cert_tol must be None or in (0, 1), got {tol!r}")
        if group.setdefault("cert_iteration", "chebyshev") not in CERT_ITERATIONS:
            bad(f"cert_iteration must be one of {CERT_ITERATIONS}, got {group['cert_iteration']!r}")
        check_count(group["power_steps"], "power_steps", 1)
        check_count(group["power_block"], "power_block (the second Ritz value estimates σ₂)", 2)
        checked_number(group["gap_tol"], "gap_tol", low_open=True)
        if group["ns_dtype"] is not None:
            resolve_dtype(group["ns_dtype"], torch.float32)
        msign_policy_of(group)

    def _manifold(self, group: dict[str, Any], radius: Tensor | float) -> TorchManifold:
        name = group["manifold"]
        if _kind(group) == "spectral_sphere":
            return SpectralSphere(radius, theta=group["theta"], power_steps=group["power_steps"],
                                  block=group["power_block"], gap_tol=group["gap_tol"],
                                  cert_tol=group.get("cert_tol"),
                                  cert_iteration=group.get("cert_iteration", "chebyshev"),
                                  gap_policy="off" if group["gap_policy"] == "off" else "report",
                                  check_radius=False)  # radii from the state (validated at construction): no sync
        return make_manifold(name, radius, check_radius=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state; the saved spectral bases are trusted for the next step (see ``step``)."""
        super().load_state_dict(state_dict)
        self._written.clear()

    # -- construction --------------------------------------------------------------------------
    def _init_matrix(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        name = group["manifold"]
        kind = _kind(group)
        W = p.detach()
        m, n = W.shape
        if kind != "euclidean":
            check_initial_matrix(W, f"MACRO on the {name} manifold")
        r = group["radius"]
        W64 = W.to(torch.float64)
        if kind == "spectral_sphere":
            U, s, Vh = torch.linalg.svd(W64, full_matrices=False)
            s1 = float(s[0])
            if s1 == 0:
                raise InvalidInputError("cannot place a zero matrix on the spectral sphere")
            gap = (s1 - float(s[1])) / s1 if s.numel() > 1 else 1.0
            if group["gap_policy"] == "raise" and gap < group["gap_tol"]:
                from manifold_oracle.reference.errors import DegenerateGeometryError
                raise DegenerateGeometryError("relative spectral gap (σ₁−σ₂)/σ₁ at construction", gap,
                                              group["gap_tol"], "perturb the initialisation or use gap_policy='report'")
            R = s1 if r == "init" else (mup_radius(kind, m, n) * group["radius_scale"] if r == "mup" else float(r))
            W.copy_(W64 * (R / s1))
            state["basis"] = Vh[: min(int(group["power_block"]), m, n), :].to(W.dtype).clone()
            self._written[id(p)] = p._version
        elif kind == "euclidean":
            R = 1.0
        else:
            fro = float(_fro(W64))
            if fro == 0:
                raise InvalidInputError(f"cannot place a zero matrix on the {name} manifold")
            if r == "init" and kind in ("oblique_rows", "oblique_cols"):
                norms = torch.linalg.vector_norm(W64, dim=1 if kind == "oblique_rows" else 0)
                if bool((norms == 0).any()):
                    raise InvalidInputError(f"radius 'init' on {name}: a zero row/column has no radius")
                R = norms  # per-row (per-column) radii: W₀ is already on the manifold
            elif r == "init":
                R = fro / math.sqrt(1 if kind == "frobenius_sphere" else min(m, n))
            else:
                R = mup_radius(kind, m, n) * group["radius_scale"] if r == "mup" else float(r)
            man = make_manifold(name, R)
            W.copy_(man.project_point(W64))
        state["radius"] = torch.as_tensor(R, dtype=W.dtype, device=W.device).clone()
        state["momentum"] = torch.zeros_like(W, memory_format=torch.preserve_format)

    # -- fused step (Frobenius and spectral sphere) ---------------------------------------------
    def _fusable(self) -> bool:
        """True when every constrained group can take the fused step (see :meth:`step`)."""
        if not self.fused or self.diagnostics_mode is not None:
            return False
        for group in self.param_groups:
            kind = _kind(group)
            if kind is None:
                continue
            if (kind not in ("frobenius_sphere", "spectral_sphere")
                    or (group["retraction"] or "rescale") != "rescale"
                    or group["prenormalize"] or canonical_scale_rule(group["scale"]) == "radius"
                    or not float(group["lr"]) > 0):
                return False
        return True

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One step. With ``fused=True`` (default) and every constrained group on the Frobenius
        or spectral sphere (``rescale`` retraction, no prenormalisation, a scale rule other than
        ``"radius"``, lr > 0, no diagnostics), the fused step runs; otherwise the eager reference
        step of ``gpu_impl.optim._base`` (stacked buckets, out of place). Same formulas, per matrix
        (no stacking of W, G, M; the NS inputs are normalised into the bucket's NSWorkspace and
        iterated there), a = lr·s::

            M' = momentum(M, G)  (new tensor; U its input)      X = P_W(U),  O = msign(X)
            Frobenius: d = ⟨O, W⟩/‖W‖²_F (variant A; 0 for B/C), Ŷ = O + k·W in place in O with
                       k = −(1 + a·d)/a, so Y = W − a·P_W(O) = −a·Ŷ;  W' = −R·Ŷ/‖Ŷ‖_F
            spectral:  Y = W − a·O + a·(uᵀOv)·u vᵀ (variant A);  W' = R·Y/σ̂₁(Y)

        ‖W‖²_F is computed every step (a resumed run takes the same arithmetic). Transactional like the eager step:
        nothing is written until every scale factor is finite; a non-finite gradient always makes
        it non-finite (it makes ⟨U, W⟩ or uᵀUv, hence X, non-finite, and NS spreads NaN through its
        products), so the gradients are inspected only to name the error.
        """
        for group in self.param_groups:  # a scheduler may have written them since the last step
            check_step_options(group)  # (before _fusable reads them; the reference step checks again)
        if not self._fusable():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work: list[tuple[Tensor, Tensor, Tensor, dict[str, Any]]] = []
        others: list[tuple[dict[str, Any], list[Tensor]]] = []
        flags: list[Tensor] = []
        gap_flags: list[tuple[Tensor, float]] = []
        for gi, group in enumerate(self.param_groups):
            buckets, rest = self._buckets(group)
            if rest:
                others.append((group, rest))
                flags.extend(torch.isfinite(finite_sum(p.grad)) for p in rest)  # type: ignore[arg-type]
            if not buckets:
                continue
            if _kind(group) == "frobenius_sphere":
                per_bucket = [self._fused_frobenius(group, gi, b, float(group["lr"]) * shape_scale(group["scale"], *b.shape),
                                                    gap_flags) for b in buckets]
            else:
                per_bucket = self._fused_spectral(group, gi, buckets, gap_flags)
            for b, fused in zip(buckets, per_bucket):
                flags.append(torch.isfinite(torch.stack([t[3] for t in fused])).all())  # one flag per bucket
                for p, st, Y, scale, new in fused:
                    work.append((p.detach(), Y, scale, {"st": st, "new": new, "p": p, "bucket": id(b)}))
        gap_ok_flags = [(g >= tol).all() for g, tol in gap_flags]
        status = read_flags(flags + gap_ok_flags)  # the one sync of the step
        if not all(status):
            grads_ok = all(bool(torch.isfinite(finite_sum(p.grad)).item())  # type: ignore[arg-type]
                           for group in self.param_groups for p in group["params"] if p.grad is not None)
            upd_ok = all(status[:len(flags)])
            if grads_ok and upd_ok:
                self._raise_gap(gap_flags)
            self._refuse(grads_ok)
            return loss
        chunked: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {}
        for W, Y, scale, rec in work:
            if scale.ndim:  # fused="compile", Frobenius: W' = s·O + s·k·W in one pass, in chunks
                chunked.setdefault(rec["bucket"], []).append((W, Y, scale))
            else:
                torch.mul(Y, scale, out=W)
        for items in chunked.values():
            for sl in _chunks(len(items)):
                _compiled_commit(*(list(t) for t in zip(*items[sl])))
        for W, Y, scale, rec in work:
            rec["st"].update(rec["new"])
            rec["st"]["step"] = rec["st"].get("step", 0) + 1
            self._written[id(rec["p"])] = rec["p"]._version
        for group, rest in others:
            self._adamw(group, rest)
        self._diag = {"skipped": False, "params": []}
        return loss

    def _fused_momentum(self, group: dict[str, Any], p: Tensor, st: dict[str, Any],
                        P: Any) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(U, X = P_W(U) or U for variant C, new state) of one matrix; nothing written."""
        form = group["momentum_form"]
        M_new, U = update_momentum(form, float(group["momentum"]), st["momentum"], p.grad)  # type: ignore[arg-type]
        X = U if group["reproject"] == "C" and form != "projected_ema" else P(U)
        return U, X, {"momentum": X if form == "projected_ema" else M_new}

    def _workspace(self, gi: int, group: dict[str, Any], bucket: Bucket) -> NSWorkspace | None:
        """The reusable Newton–Schulz workspace of a bucket (``None`` for the exact msign). Kept
        on the optimizer (not in its state), rebuilt when the group's msign policy changes."""
        policy = msign_policy_of(group)
        if policy.is_exact:
            return None
        cache: dict[tuple, tuple[MsignPolicy, NSWorkspace]] = self.__dict__.setdefault("_ns_workspaces", {})
        p0 = bucket.params[0]
        key = (gi, len(bucket.params), bucket.shape, p0.dtype, p0.device)
        hit = cache.get(key)
        if hit is None or hit[0] is not policy:
            hit = cache[key] = (policy, NSWorkspace(policy, len(bucket.params), *bucket.shape, p0.dtype, p0.device))
        return hit[1]

    def _fused_frobenius(self, group: dict[str, Any], gi: int, bucket: Bucket, a: float,
                         gap_flags: list[tuple[Tensor, float]]) -> list[tuple[Any, ...]]:
        """(p, state, Y, scale, new state) per matrix of a Frobenius bucket; nothing written."""
        policy = msign_policy_of(group)
        ws = self._workspace(gi, group, bucket)
        params, states = bucket.params, bucket.states
        Ws = [p.detach() for p in params]
        # ‖W‖²_F is computed every step, never assumed to be R² for a weight this optimizer wrote:
        # a resumed run (fresh optimizer, loaded state, restored weights) must take the same
        # arithmetic as the uninterrupted one, bit for bit (optimizer.run.resume, CLAIMS X-3)
        if self.fused == "compile" and ws is not None and ws.cast == "before":
            # ‖X‖² in float32 on CPU (a float64 reduction costs ~13× there), float64 elsewhere; a
            # float32 overflow (‖X‖_F ≳ 1.8e19), or a normal component above half of ‖U‖² (whose
            # ‖X‖² the compiled pass does not take from ‖U‖² − ⟨U, W⟩²/‖W‖²: NaN), is caught below
            # and that matrix normalised eagerly
            acc = torch.float32 if ws.Z.device.type == "cpu" and ws.acc == torch.float32 else torch.float64
            args = (float(group["momentum"]), group["momentum_form"], group["reproject"], ws.safety, ws.eps,
                    ws.eps_form, acc)
            res = [r for sl in _chunks(len(params)) for r in _compiled_pre(
                [st["momentum"] for st in states[sl]], [p.grad for p in params[sl]], Ws[sl],
                [ws.slot(i) for i in range(len(params))[sl]], *args)]
            news = [{"momentum": r[0]} for r in res]
            wws = [r[1] for r in res]
            if acc == torch.float32 and not bool(torch.isfinite(torch.stack([r[2] for r in res])).all()):
                for i, r in enumerate(res):  # the eager normalisation (float64 fallback of the norm)
                    if not bool(torch.isfinite(r[2])):
                        W = Ws[i]
                        _, X, news[i] = self._fused_momentum(group, params[i], states[i],
                                                             _frobenius_projector(W, W.reshape(-1), wws[i]))
                        ws.load(i, X)
            ws.run()
            Os = [ws.out(i) for i in range(len(params))]
        else:
            # fused=True with NS: the workspace's reused (B, m, n) stack in W's dtype holds X (loaded
            # in one batched call when every X is there) and then Ŷ
            Ys = None if ws is None else ws.input_stack()
            wws, news, Os = [], [], []
            stacked = Ys is not None
            for i, (p, st, W) in enumerate(zip(params, states, Ws)):
                w = W.reshape(-1)
                wws.append(torch.dot(w, w))
                x_out = Ys[i] if Ys is not None and group["momentum_form"] != "projected_ema" else None
                _, X, new = self._fused_momentum(group, p, st, _frobenius_projector(W, w, wws[i], x_out))
                news.append(new)
                if ws is None:  # the exact msign: O in W's dtype
                    Os.append(policy(X, check_finite=False))
                elif X is not x_out:  # variant C, projected EMA: X is not in the stack
                    ws.load(i, X)
                    stacked = False
            if ws is not None:
                if stacked:
                    ws.load_all(Ys)  # type: ignore[arg-type]  # one copy, norm and division
                ws.run()  # one bmm chain (or per-matrix mm) in reused buffers
                Os = list(Ys.copy_(ws.out_all()).unbind(0))  # type: ignore[union-attr]  # W's dtype, one pass
        if self.fused == "compile":  # the scales in compiled passes over O and W (the commit: step())
            scales = [s for sl in _chunks(len(params)) for s in _compiled_scales(
                Ws[sl], Os[sl], wws[sl], [st["radius"] for st in states[sl]], a, group["reproject"])]
            return list(zip(params, states, Os, scales, news))
        for O, W, ww in zip(Os, Ws, wws):  # Ŷ = O + k·W in place in O
            d = torch.dot(O.reshape(-1), W.reshape(-1)) / ww if group["reproject"] == "A" else torch.zeros_like(ww)
            O.addcmul_(W, (1.0 + a * d) / -a)
        nrm = (torch.linalg.vector_norm(Ys, dim=(-2, -1)).unbind(0) if ws is not None  # one batched norm
               else [torch.linalg.vector_norm(O) for O in Os])
        return [(p, st, O, st["radius"] / -n, new) for p, st, O, n, new in zip(params, states, Os, nrm, news)]

    def _fused_spectral(self, group: dict[str, Any], gi: int, buckets: list[Bucket],
                        gap_flags: list[tuple[Tensor, float]]) -> list[list[tuple[Any, ...]]]:
        """(p, state, Y, scale, new state) per matrix of every bucket of a spectral group; nothing
        written. The top pairs at W and at Y are taken for all buckets together
        (:func:`_stacked_top_pairs`: one certified call per shape up to transposition)."""
        params = [p for bk in buckets for p in bk.params]
        states = [st for bk in buckets for st in bk.states]
        Ws = [p.detach() for p in params]
        man = self._manifold(group, states[0]["radius"])  # the pairs do not depend on the radius
        tmps: list[dict[str, Tensor]] = [{k: st[k] for k in PAIR_STATE if k in st} for st in states]
        # the cached basis is the Ritz basis of Y_{t-1} and W_t = c·Y_{t-1} unless the weights were
        # written outside step() since (version counters): then no iteration (certified: a check)
        fresh = all(tmps) and all(self._written.get(id(p), p._version) == p._version for p in params)
        pairs = _stacked_top_pairs(man, Ws, tmps, steps=0 if fresh else None, with_residual=False)
        pre: list[tuple[Any, ...]] = []
        Ys: list[Tensor] = []
        k = 0
        for bk in buckets:
            a = float(group["lr"]) * shape_scale(group["scale"], *bk.shape)
            sl = slice(k, k + len(bk.params))
            k = sl.stop
            rows, Yb = self._spectral_y(group, gi, bk, a, Ws[sl], pairs[sl], gap_flags)
            pre += [(*r, tmp) for r, tmp in zip(rows, tmps[sl])]
            Ys += Yb
        sigmas = [q.sigma for q in _stacked_top_pairs(man, Ys, tmps, retraction=True)]
        out: list[list[tuple[Any, ...]]] = []
        k = 0
        for bk in buckets:
            part = []
            for (p, st, new, tmp), Y, sigma in zip(pre[k:k + len(bk.params)], Ys[k:], sigmas[k:]):
                new.update(tmp)
                part.append((p, st, Y, st["radius"] / sigma, new))
            out.append(part)
            k += len(bk.params)
        return out

    def _spectral_y(self, group: dict[str, Any], gi: int, bucket: Bucket, a: float, Ws: list[Tensor],
                    pairs: list[Any], gap_flags: list[tuple[Tensor, float]]) -> tuple[list[tuple[Any, ...]], list[Tensor]]:
        """Momentum, Newton–Schulz (in the bucket's workspace) and the retraction input
        Y = W − a·O + a·(uᵀOv)·u vᵀ of one bucket, given the pairs at W: ((p, state, new state)
        per matrix, the Ys); nothing written."""
        policy = msign_policy_of(group)
        ws = self._workspace(gi, group, bucket)
        compiled = self.fused == "compile" and ws is not None and ws.cast == "before"
        rows, Os = [], []
        for i, (p, st, pair) in enumerate(zip(bucket.params, bucket.states, pairs)):
            if group["gap_policy"] == "raise":
                gap_flags.append((pair.gap, float(group["gap_tol"])))
            O = None
            if compiled:
                new = {"momentum": _compiled_spectral_pre(
                    st["momentum"], p.grad, pair.u, pair.v, ws.slot(i),  # type: ignore[union-attr]
                    float(group["momentum"]), group["momentum_form"], group["reproject"],
                    ws.safety, ws.eps, ws.eps_form)}  # type: ignore[union-attr]
            else:
                _, X, new = self._fused_momentum(group, p, st, _spectral_projector(pair.u, pair.v))
                if ws is None:
                    O = policy(X, check_finite=False)
                else:
                    ws.load(i, X)
            rows.append((p, st, new))
            Os.append(O)
        if ws is not None:
            ws.run()
        Ys = []
        for i, (W, pair, O) in enumerate(zip(Ws, pairs, Os)):
            if compiled:  # Y = W − a·O + a·(uᵀOv)·u vᵀ in one compiled function
                Ys.append(_compiled_spectral_y(W, ws.out(i), pair.u, pair.v, a,  # type: ignore[union-attr]
                                               group["reproject"]))
                continue
            if O is None:
                O = torch.empty_like(W).copy_(ws.out(i))  # type: ignore[union-attr]
            Y = torch.add(W, O, alpha=-a)
            if group["reproject"] == "A":
                u, v = pair.u, pair.v
                Y.addr_(u * (a * ((u @ O) @ v)), v)
            Ys.append(Y)
        return rows, Ys

    # -- step ----------------------------------------------------------------------------------
    def _bucket_update(self, bucket: Bucket, group: dict[str, Any], flags: list[tuple[Tensor, float]],
                       diag: list[dict[str, Any]] | None) -> tuple[Tensor, dict[str, Tensor]]:
        kind = _kind(group)
        W = bucket.weights()
        G = bucket.grads()
        M = bucket.stack_state("momentum")
        R = bucket.stack_state("radius")
        beta = float(group["momentum"])
        form = group["momentum_form"]
        retraction = group["retraction"] or TORCH_KINDS[kind].retractions[0]
        man = self._manifold(group, R)
        st: dict[str, Tensor] = {}
        pair = None
        if kind == "frobenius_sphere":
            ww = (W * W).sum(dim=(-2, -1))

            def P(Z: Tensor) -> Tensor:
                return frobenius_project(Z, W, ww)
        elif kind == "spectral_sphere":
            for key in PAIR_STATE:
                cached = bucket.stack_state(key)
                if cached is not None:
                    st[key] = cached
            # The cached basis is the Ritz basis of the previous retraction input Y_{t-1} (or the
            # exact one from construction), and W_t = c·Y_{t-1} unless the weights were written
            # outside step() since (seen through the tensors' version counters): then the
            # Rayleigh–Ritz finish alone gives Θ at W_t; otherwise ``power_steps`` steps are run.
            # After load_state_dict the saved basis is trusted (restore weights and state together).
            fresh = "basis" in st and all(self._written.get(id(p), p._version) == p._version for p in bucket.params)
            pair = man.top_pair(W, st, steps=0 if fresh else None,  # type: ignore[attr-defined]
                                with_residual=diag is not None)
            if group["gap_policy"] == "raise":
                flags.append((pair.gap, float(group["gap_tol"])))
            u, v = pair.u, pair.v

            def P(Z: Tensor) -> Tensor:
                return spectral_project(Z, u, v)
        elif kind == "euclidean":
            def P(Z: Tensor) -> Tensor:
                return Z
        else:
            def P(Z: Tensor) -> Tensor:
                return man.project_tangent(W, Z)

        # momentum (out of place: M is a stacked copy or a view of the state, never written)
        M_new, U = update_momentum(form, beta, M, G)
        if form == "projected_ema":
            M_new = U = P(M_new)
        if group["prenormalize"]:
            U = U / torch.linalg.vector_norm(U, dim=(-2, -1), keepdim=True).clamp_min(1e-8)
        policy = msign_policy_of(group)
        variant = group["reproject"]
        X = U if variant == "C" or form == "projected_ema" else P(U)
        D = macro_direction(U, P, lambda Z: policy(Z, check_finite=False), variant, tangent_input=X)
        m, n = bucket.shape
        lr = float(group["lr"])
        if canonical_scale_rule(group["scale"]) == "radius":
            Y = torch.addcmul(W, D, (R * -lr)[:, None, None])
        else:
            Y = torch.add(W, D, alpha=-lr * shape_scale(group["scale"], m, n))
        if kind == "euclidean":
            W_new = Y
        elif kind == "frobenius_sphere" and retraction in ("rescale", "projection"):
            W_new = Y * (R / torch.linalg.vector_norm(Y, dim=(-2, -1)))[:, None, None]
        elif kind == "spectral_sphere" and retraction == "rescale":
            pY = _retraction_pair(man, Y, st, diag is not None)
            W_new = Y * (R / pY.sigma)[:, None, None]
            if pair is not None:
                pair.retraction_residual = pY.residual  # type: ignore[attr-defined]
        else:
            try:
                W_new = man.retract(W, Y - W, retraction)
            except InvalidInputError:  # a non-finite Y (the Stiefel SVD refuses it): NaN, which the
                W_new = torch.full_like(W, float("nan"))  # step's finiteness flags turn into its typed refusal
        new_state = {"momentum": M_new, **st}
        if diag is not None:
            diag.append(self._diagnose(group, bucket, man, W, W_new, X, D, pair))
        return W_new, new_state

    def _diagnose(self, group: dict[str, Any], bucket: Bucket, man: TorchManifold, W: Tensor, W_new: Tensor,
                  X: Tensor, D: Tensor, pair: Any) -> dict[str, Any]:
        name = group["manifold"]
        rec: dict[str, Any] = {
            "group": next(i for i, g in enumerate(self.param_groups) if g is group),
            "index": self._param_index(group, bucket),
            "shape": bucket.shape,
            "manifold": name,
        }
        kw = {"frame": pair} if pair is not None else {}
        nw = _fro(W)
        rec["tangency"] = man.tangent_violation(W, D, **kw)
        if _kind(group) != "spectral_sphere" or self.diagnostics_mode == "full":
            rec["feasibility"] = man.violation(W_new)
        Wh = W / nw[:, None, None]
        Wnh = W_new / _fro(W_new)[:, None, None]
        rec["angle"] = 2.0 * torch.asin((_fro(Wnh - Wh) / 2.0).clamp(max=1.0))
        rec["d_fro"] = _fro(D)
        rec["update_rel"] = _fro(W_new - W) / nw
        if pair is not None:
            if pair.gap is not None:
                rec["gap"] = pair.gap
            if pair.residual is not None:
                rec["power_residual"] = pair.residual
            if getattr(pair, "bound", None) is not None:  # theta="certified"
                rec["pair_bound"] = pair.bound
                rec["pair_fallback"] = pair.fallback.to(pair.bound.dtype)
            if getattr(pair, "retraction_residual", None) is not None:
                rec["retraction_residual"] = pair.retraction_residual
        if self.diagnostics_mode == "full":
            if pair is not None:  # the pair used against the exact one (float64 SVD of W)
                U, S, Vh = torch.linalg.svd(W.to(torch.float64), full_matrices=False)
                u1, v1 = U[..., :, 0], Vh[..., 0, :]
                if S.shape[-1] > 1:
                    rec["gap_exact"] = (S[..., 0] - S[..., 1]) / S[..., 0]
                rec["pair_angle"] = torch.maximum(_sin_angle(pair.u, u1), _sin_angle(pair.v, v1))
                D64 = D.to(torch.float64)
                rec["tangency_exact"] = ((u1.unsqueeze(-2) @ D64).squeeze(-2) * v1).sum(-1).abs() / _fro(D64)
            rec["d_spectral"] = torch.linalg.matrix_norm(D.to(torch.float64), ord=2)
            nuc = torch.linalg.matrix_norm(X.to(torch.float64), ord="nuc")
            al = (D.to(torch.float64) * X.to(torch.float64)).sum(dim=(-2, -1))
            rec["alignment_error"] = (al - nuc).abs() / torch.where(nuc > 0, nuc, torch.ones_like(nuc))
        return rec
