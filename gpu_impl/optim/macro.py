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
* ``msign``: a schedule name of ``reference.SCHEDULES`` (default ``"keller_jordan"``, 5 steps,
  bf16 compute: the numerics of ``torch.optim.Muon``), a ``Schedule``, ``"exact"`` (float64 SVD,
  refined) or a :class:`gpu_impl.msign.MsignPolicy`; with a name, ``ns_steps`` (``None`` = the
  schedule's) and ``ns_dtype`` (compute dtype; ``None`` = the parameter dtype) complete it.
* spectral sphere: ``theta`` (``"power"`` warm-started power iteration cached per parameter,
  ``"certified"`` the same iteration continued until an a-posteriori bound on the pair's angle is
  met, else the exact pair (``gpu_impl.manifolds.SpectralSphere``; diagnostics ``pair_bound``,
  ``pair_fallback``), or ``"exact"`` SVD), ``power_steps`` (steps on the retraction input Y, default 3; none on W at
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
is then bit-identical to the uninterrupted run (constructing on restored weights is fine too,
but the construction retraction may change them at rounding level).

Construction (documented side effect): every constrained matrix is moved onto its manifold in
place — rescaled by R/‖W‖_F (Frobenius), R/σ₁ with the exact σ₁ (spectral; the exact SVD also
seeds the cached singular vectors), row/column-normalised (oblique) or replaced by R·msign(W)
via the float64 SVD (Stiefel). No weight decay is applied to constrained matrices.

Optimizer-level options: ``nonfinite`` (``"raise"`` | ``"skip"``) and ``diagnostics``
(``False``; ``True``/``"cheap"``: tangency of D, feasibility (not for the spectral sphere, whose
exact σ₁ needs an SVD), rotation angle, ‖D‖_F, relative update, spectral gap estimate and
power residual; ``"full"`` adds the exact spectral feasibility, ‖D‖₂ and the alignment error
|⟨D, X⟩ − ‖X‖_*|/‖X‖_* through SVDs). Read them with :meth:`diagnostics` (one sync).
The step protocol (transactional, one sync) is described in ``gpu_impl.optim._base``.
``fused`` (``True`` default | ``"compile"`` | ``False``): on the Frobenius and spectral spheres
(rescale retraction, no prenormalisation, scale rule not ``"radius"``, no diagnostics) the step
runs per matrix with in-place ops (``"compile"``: the Frobenius tail as torch.compile'd passes;
compiles once per process, needs a C++ compiler on CPU); everything else, and ``fused=False``,
takes the readable stacked reference step. Both agree to rounding (tests/gpu_impl/test_fused_step.py).
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
    MANIFOLD_NAMES,
    THETA_SOURCES,
    TORCH_KINDS,
    SpectralSphere,
    TopPair,
    TorchManifold,
    frobenius_project,
    make_manifold,
    spectral_project,
)
from ..msign import MsignPolicy, resolve_dtype
from ._base import Bucket, MatrixOptimizer, finite_sum, read_flags
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
    m = group["msign"]
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


def _low_out(policy: MsignPolicy) -> MsignPolicy:
    """``policy`` with its output left in the compute dtype (no cast back); cached on the policy."""
    low = policy.__dict__.get("_low_out")
    if low is None:
        low = dataclasses.replace(policy, out_dtype=policy.compute_dtype)
        object.__setattr__(policy, "_low_out", low)
    return low


def _retraction_pair(man: TorchManifold, Y: Tensor, state: dict[str, Tensor], with_residual: bool) -> Any:
    """Top pair of the retraction input Y (σ̂₁ rescales it onto the spectral sphere). A non-finite
    Y (from a non-finite gradient or a divergent msign) makes the Ritz SVD raise; the pair is then
    NaN, which the step's finiteness flags turn into its typed refusal (nothing written)."""
    try:
        return man.top_pair(Y, state, with_gap=False, with_residual=with_residual)  # type: ignore[attr-defined]
    except torch.linalg.LinAlgError:
        nan = torch.full(Y.shape[:-2], float("nan"), dtype=Y.dtype, device=Y.device)
        return TopPair(nan, nan, nan, residual=nan if with_residual else None)


def _dots(W: Tensor, O: Tensor) -> tuple[Tensor, Tensor]:
    """(⟨O, W⟩, ‖O‖²_F) in W's dtype, O cast on the fly (one pass when compiled)."""
    o = O.to(W.dtype)
    return (o * W).sum(), (o * o).sum()


def _commit(W: Tensor, O: Tensor, s: Tensor, sk: Tensor) -> None:
    """W ← s·O + s·k·W in place (one pass when compiled)."""
    W.copy_(W * sk + O.to(W.dtype) * s)


_compiled_dots = torch.compile(_dots, dynamic=True)
_compiled_commit = torch.compile(_commit, dynamic=True)


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
        ns_dtype: str | torch.dtype | None = "bfloat16",
        theta: str = "power",
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
                        ns_dtype=ns_dtype, theta=theta, power_steps=power_steps, gap_tol=gap_tol,
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
        if not (0 < float(group["radius_scale"]) < float("inf")):
            bad("radius_scale must be positive")
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
        if int(group["power_steps"]) < 1:
            bad("power_steps must be >= 1")
        if int(group["power_block"]) < 2:
            bad("power_block must be >= 2 (the second Ritz value estimates σ₂)")
        if not float(group["gap_tol"]) > 0:
            bad("gap_tol must be > 0")
        if group["ns_dtype"] is not None:
            resolve_dtype(group["ns_dtype"], torch.float32)
        msign_policy_of(group)

    def _manifold(self, group: dict[str, Any], radius: Tensor | float) -> TorchManifold:
        name = group["manifold"]
        if _kind(group) == "spectral_sphere":
            return SpectralSphere(radius, theta=group["theta"], power_steps=group["power_steps"],
                                  block=group["power_block"], gap_tol=group["gap_tol"],
                                  gap_policy="off" if group["gap_policy"] == "off" else "report")
        return make_manifold(name, radius)

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
        (no stacking; msign per matrix as torch.optim.Muon does), a = lr·s::

            M' = momentum(M, G)  (new tensor; U its input)      X = P_W(U),  O = msign(X)
            Frobenius: d = ⟨O, W⟩/‖W‖²_F (variant A; 0 for B/C), Ŷ = O + k·W in place in O with
                       k = −(1 + a·d)/a, so Y = W − a·P_W(O) = −a·Ŷ;  W' = −R·Ŷ/‖Ŷ‖_F
            spectral:  Y = W − a·O + a·(uᵀOv)·u vᵀ (variant A);  W' = R·Y/σ̂₁(Y)

        ‖W‖²_F is computed every step (a resumed run takes the same arithmetic). Transactional like the eager step:
        nothing is written until every scale factor is finite; a non-finite gradient always makes
        it non-finite (it makes ⟨U, W⟩ or uᵀUv, hence X, non-finite, and NS spreads NaN through its
        products), so the gradients are inspected only to name the error.
        """
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
        for group in self.param_groups:
            buckets, rest = self._buckets(group)
            if rest:
                others.append((group, rest))
                flags.extend(torch.isfinite(finite_sum(p.grad)) for p in rest)  # type: ignore[arg-type]
            if not buckets:
                continue
            kind = _kind(group)
            for b in buckets:
                a = float(group["lr"]) * shape_scale(group["scale"], *b.shape)
                for p, st in zip(b.params, b.states):
                    fresh = self._written.get(id(p), p._version) == p._version
                    if kind == "frobenius_sphere":
                        Y, scale, new = self._fused_frobenius(group, p, st, a)
                    else:
                        Y, scale, new = self._fused_spectral(group, p, st, a, fresh, gap_flags)
                    flags.append(torch.isfinite(scale).all())
                    work.append((p.detach(), Y, scale, {"st": st, "new": new, "p": p}))
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
        for W, Y, scale, rec in work:
            if scale.ndim:  # fused="compile", Frobenius: W' = s·O + s·k·W in one pass
                _compiled_commit(W, Y, scale[0], scale[1])
            else:
                torch.mul(Y, scale, out=W)
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

    def _fused_frobenius(self, group: dict[str, Any], p: Tensor, st: dict[str, Any],
                         a: float) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        W = p.detach()
        w = W.reshape(-1)
        R = st["radius"]
        # ‖W‖²_F is computed every step, never assumed to be R² for a weight this optimizer wrote:
        # a resumed run (fresh optimizer, loaded state, restored weights) must take the same
        # arithmetic as the uninterrupted one, bit for bit (optimizer.run.resume, CLAIMS X-3)
        ww = torch.dot(w, w)

        def P(Z: Tensor) -> Tensor:
            return torch.addcmul(Z, W, torch.dot(Z.reshape(-1), w) / ww, value=-1.0)

        _, X, new = self._fused_momentum(group, p, st, P)
        policy = msign_policy_of(group)
        if self.fused == "compile":
            # msign left in its compute dtype; ⟨O, W⟩, ‖O‖² and the commit W' = s·O + s·k·W are
            # one compiled pass each (the cast to W's dtype happens inside them), and
            # ‖Ŷ‖² = ‖O‖² + 2k·⟨O, W⟩ + k²·‖W‖² (error ≲ 3u·(‖O‖² + 2|k⟨O, W⟩| + k²‖W‖²)/‖Ŷ‖²)
            O = _low_out(policy)(X, check_finite=False)
            ow, oo = _compiled_dots(W, O)
            d = ow / ww if group["reproject"] == "A" else torch.zeros_like(ww)
            k = (1.0 + a * d) / -a
            nrm = torch.sqrt(oo + 2.0 * k * ow + k * k * ww)
            return O, torch.stack([-R / nrm, -R * k / nrm]), new
        O = policy(X, check_finite=False)
        d = torch.dot(O.reshape(-1), w) / ww if group["reproject"] == "A" else torch.zeros_like(ww)
        O.addcmul_(W, (1.0 + a * d) / -a)
        return O, R / -torch.linalg.vector_norm(O), new

    def _fused_spectral(self, group: dict[str, Any], p: Tensor, st: dict[str, Any], a: float, fresh: bool,
                        gap_flags: list[tuple[Tensor, float]]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        W = p.detach()
        man = self._manifold(group, st["radius"])
        tmp: dict[str, Tensor] = {"basis": st["basis"]} if "basis" in st else {}
        pair = man.top_pair(W, tmp, steps=0 if fresh and tmp else None,  # type: ignore[attr-defined]
                            with_residual=False)
        if group["gap_policy"] == "raise":
            gap_flags.append((pair.gap, float(group["gap_tol"])))
        u, v = pair.u, pair.v

        def P(Z: Tensor) -> Tensor:
            return spectral_project(Z, u, v)

        _, X, new = self._fused_momentum(group, p, st, P)
        O = msign_policy_of(group)(X, check_finite=False)
        Y = torch.add(W, O, alpha=-a)
        if group["reproject"] == "A":
            Y.addr_(u * (a * ((u @ O) @ v)), v)
        sigma = _retraction_pair(man, Y, tmp, False).sigma
        new.update(tmp)
        return Y, st["radius"] / sigma, new

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
            basis = bucket.stack_state("basis")
            if basis is not None:
                st["basis"] = basis
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
            W_new = man.retract(W, Y - W, retraction)
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
            rec["d_spectral"] = torch.linalg.matrix_norm(D.to(torch.float64), ord=2)
            nuc = torch.linalg.matrix_norm(X.to(torch.float64), ord="nuc")
            al = (D.to(torch.float64) * X.to(torch.float64)).sum(dim=(-2, -1))
            rec["alignment_error"] = (al - nuc).abs() / torch.where(nuc > 0, nuc, torch.ones_like(nuc))
        return rec
