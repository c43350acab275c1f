"""Shared machinery of the matrix optimizers: routing, bucketing, the transactional step, AdamW.

Every optimizer here follows one step protocol (documented policy):

1. **Compute** (nothing is written): for every bucket of equal-shape matrices the new weights and
   the new state tensors are computed out of place from stacked copies of the parameters,
   gradients and state. Validity flags (finite gradients, finite new weights, spectral gap) are
   collected as device tensors.
2. **One sync**: the flags are read once (a single ``.item()``-type transfer per step).
3. **Commit or refuse**: if every flag is good, the new weights are copied into the parameters
   (``torch._foreach_copy_``) and the new state tensors replace the old ones (new tensors, never
   aliases of ``.grad``), then the internal AdamW updates the other parameters. Otherwise, with
   ``nonfinite="raise"`` (default) an :class:`InvalidInputError` (non-finite gradient),
   :class:`SolverError` (non-finite update from a finite gradient, e.g. a divergent low-precision
   schedule) or :class:`DegenerateGeometryError` (spectral gap below ``gap_tol``) is raised with
   no weight or state touched; with ``nonfinite="skip"`` a non-finite step is skipped as a whole
   and reported in :meth:`diagnostics` (``"skipped": True``) and in ``skipped_steps``.

The numeric options a scheduler may rewrite (``lr``, ``momentum``, ``weight_decay``, the
``adamw_*``) are re-validated at the start of every step (:func:`check_step_options`,
host-side): a nonsense value raises :class:`InvalidInputError` before anything is computed.

``.grad`` is never written. Parameters that are not 2-D, or that sit in a group with
``manifold=None``, go to the internal AdamW (``torch.optim.adamw.adamw``, torch form MATH §9.8)
with the group's ``adamw_lr``, ``adamw_betas``, ``adamw_eps`` and ``adamw_wd``.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod

from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.adamw import adamw as _adamw_functional

from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError, SolverError

from ..msign import AUTO, MsignPolicy, concrete_ns_dtype
from .conventions import SCALE_RULES, shape_scale

__all__ = ["MatrixOptimizer", "shape_scale", "SCALE_RULES", "Bucket", "finite_sum", "read_flags",
           "resolve_auto_ns_dtype", "ns_dtype_used", "checked_number", "check_step_options",
           "check_initial_matrix"]


ADAMW_DEFAULTS: dict[str, Any] = dict(adamw_lr=1e-3, adamw_betas=(0.9, 0.999), adamw_eps=1e-8, adamw_wd=0.01)


def finite_sum(x: Tensor) -> Tensor:
    """Sum of all entries, accumulated in at least float32: finite iff every entry is finite
    (barring an overflow of the sum itself beyond the float32/float64 range, which is treated as
    non-finite too). Far cheaper than ``isfinite(x).all()`` on CPU."""
    return x.sum(dtype=torch.float32) if x.dtype in (torch.float16, torch.bfloat16) else x.sum()


def checked_number(value: Any, name: str, low: float = 0.0, high: float = math.inf, *,
                   low_open: bool = False) -> float:
    """``float(value)`` for a real number in [low, high) ((low, high) with ``low_open``; finite:
    ``high`` is excluded); NaN, ±Inf, values out of range, bools and non-numbers raise
    :class:`InvalidInputError` naming the option and the value (host-side, no device sync
    for Python numbers)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise InvalidInputError(f"{name} must be a real number, got {value!r}") from None
    if isinstance(value, bool) or not ((v > low) if low_open else (v >= low)) or not v < high:
        raise InvalidInputError(f"{name} must be a finite number in {'(' if low_open else '['}{low:g}, {high:g}), "
                                f"got {value!r}")
    return v


def check_step_options(group: dict[str, Any]) -> None:
    """Validate the numeric options of a parameter group that an LR / momentum / weight-decay
    scheduler may rewrite between steps: ``lr``, ``momentum`` and ``weight_decay`` (when the
    group has them) and the internal AdamW's ``adamw_lr``, ``adamw_betas``, ``adamw_eps``,
    ``adamw_wd``. Run at construction and at the start of every step (host-side Python)."""
    checked_number(group["lr"], "lr")
    if "momentum" in group:
        checked_number(group["momentum"], "momentum", 0.0, 1.0)
    if "weight_decay" in group:
        checked_number(group["weight_decay"], "weight_decay")
    checked_number(group["adamw_lr"], "adamw_lr")
    betas = group["adamw_betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise InvalidInputError(f"adamw_betas must be a pair (beta1, beta2), got {betas!r}")
    checked_number(betas[0], "adamw_betas[0]", 0.0, 1.0)
    checked_number(betas[1], "adamw_betas[1]", 0.0, 1.0)
    checked_number(group["adamw_eps"], "adamw_eps", low_open=True)
    checked_number(group["adamw_wd"], "adamw_wd")


def check_initial_matrix(W: Tensor, where: str) -> None:
    """Refuse a matrix parameter that cannot be placed on its manifold at construction: empty, or
    with NaN/Inf entries (:class:`InvalidInputError`; one sync, construction only)."""
    if W.numel() == 0:
        raise InvalidInputError(f"{where}: an empty matrix of shape {tuple(W.shape)} has no point on the manifold")
    if not bool(torch.isfinite(W).all()):
        raise InvalidInputError(f"{where}: the parameter of shape {tuple(W.shape)} has non-finite entries (NaN or Inf)")


def read_flags(flags: list[Tensor]) -> list[bool]:
    """Read 0-d boolean tensors with one transfer per device."""
    if not flags:
        return []
    by_dev: dict[torch.device, list[int]] = {}
    for i, f in enumerate(flags):
        by_dev.setdefault(f.device, []).append(i)
    out: list[bool] = [True] * len(flags)
    for idx in by_dev.values():
        vals = torch.stack([flags[i].reshape(()).to(torch.bool) for i in idx]).tolist()
        for i, v in zip(idx, vals):
            out[i] = bool(v)
    return out


class Bucket:
    """Equal-(shape, dtype, device) matrices of one group: the params, their grads and states."""

    def __init__(self, params: list[Tensor], states: list[dict[str, Any]]) -> None:
        self.params = params
        self.states = states
        self.shape = tuple(params[0].shape)

    def stack(self, tensors: list[Tensor]) -> Tensor:
        """Stacked copy (B, m, n); a single tensor becomes a (1, m, n) view (never written)."""
        return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)

    def stack_state(self, key: str) -> Tensor | None:
        vals = [s.get(key) for s in self.states]
        if any(v is None for v in vals):
            return None
        return self.stack(vals)

    def grads(self) -> Tensor:
        return self.stack([p.grad for p in self.params])  # type: ignore[misc]

    def weights(self) -> Tensor:
        return self.stack([p.detach() for p in self.params])


def _is_auto(dtype: Any) -> bool:
    return isinstance(dtype, str) and dtype.lower() == AUTO


def resolve_auto_ns_dtype(group: dict[str, Any]) -> None:
    """Replace ``ns_dtype="auto"`` (and an ``MsignPolicy`` with ``compute_dtype="auto"``) in a
    parameter group by the concrete dtype name :func:`gpu_impl.msign.native_ns_dtype` chose for
    the device type of the group's parameters (once per process). The group, hence the state dict
    and the diagnostics, then names the dtype actually used; a resumed state dict keeps it."""
    ns, pol = group.get("ns_dtype"), group.get("msign")
    pol_auto = isinstance(pol, MsignPolicy) and _is_auto(pol.compute_dtype)
    if not (_is_auto(ns) or pol_auto):
        return
    kinds = sorted({p.device.type for p in group["params"]}) or ["cpu"]
    names = {concrete_ns_dtype(AUTO, k) for k in kinds}
    if len(names) > 1:
        raise InvalidInputError(f"ns_dtype='auto' resolves differently on the devices {kinds} of one parameter "
                                f"group ({sorted(names)}): pass an explicit ns_dtype or one group per device")
    name = names.pop()
    if _is_auto(ns):
        group["ns_dtype"] = name
    if pol_auto:
        group["msign"] = dataclasses.replace(pol, compute_dtype=name)


def ns_dtype_used(group: dict[str, Any], param_dtype: torch.dtype) -> str:
    """Name of the dtype the group's msign computes in for a parameter of ``param_dtype``
    (``"float64"`` for the exact SVD path; the parameter dtype when ``ns_dtype`` is ``None``)."""
    pol = group.get("msign")
    if pol == "exact" or (isinstance(pol, MsignPolicy) and pol.is_exact):
        return "float64"
    d = pol.compute_dtype if isinstance(pol, MsignPolicy) else group.get("ns_dtype")
    return concrete_ns_dtype(d, "cpu") or str(param_dtype).removeprefix("torch.")


class MatrixOptimizer(Optimizer, ABC):
    """Base class: matrices → subclass rule (per bucket); the rest → AdamW; transactional step.

    Subclasses implement ``_check_group(group)`` (validate/normalise options),
    ``_init_matrix(p, state, group)`` (construction-time state and retraction) and
    ``_bucket_update(bucket, group, flags, diag) -> (new_weights (B, m, n), new_state dict)``.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any], *, nonfinite: str = "raise",
                 diagnostics: bool | str = False) -> None:
        if nonfinite not in ("raise", "skip"):
            raise InvalidInputError(f"nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        if diagnostics not in (False, True, "cheap", "full"):
            raise InvalidInputError(f"diagnostics must be False, True/'cheap' or 'full', got {diagnostics!r}")
        self.nonfinite = nonfinite
        self.diagnostics_mode: str | None = None if diagnostics is False else ("cheap" if diagnostics is True else diagnostics)
        self.skipped_steps = 0
        self._diag: dict[str, Any] = {}
        #: version counter of each matrix parameter right after this optimizer wrote it
        self._written: dict[int, int] = {}
        super().__init__(params, {**ADAMW_DEFAULTS, **defaults})

    # -- groups --------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            if p.is_complex():
                raise InvalidInputError("complex parameters are not supported")
        check_step_options(group)
        resolve_auto_ns_dtype(group)
        self._check_group(group)
        with torch.no_grad():
            for p in group["params"]:
                if self._is_matrix(p, group):
                    self._init_matrix(p, self.state[p], group)

    def _is_matrix(self, p: Tensor, group: dict[str, Any]) -> bool:
        return p.ndim == 2 and self._group_constrained(group)

    def _group_constrained(self, group: dict[str, Any]) -> bool:
        return True

    @abstractmethod
    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate one parameter group's options (raise InvalidInputError)."""

    @abstractmethod
    def _init_matrix(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Initialise one matrix's state (and place it on its manifold)."""

    @abstractmethod
    def _bucket_update(self, bucket: Bucket, group: dict[str, Any], flags: list[tuple[Tensor, float]],
                       diag: list[dict[str, Any]] | None) -> tuple[Tensor, dict[str, Tensor]]:
        """New weights and state of one bucket of equal-shape matrices, computed out of place."""

    # -- step ----------------------------------------------------------------------------------
    def _buckets(self, group: dict[str, Any]) -> tuple[list[Bucket], list[Tensor]]:
        keyed: dict[tuple, tuple[list[Tensor], list[dict[str, Any]]]] = {}
        others: list[Tensor] = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise InvalidInputError("sparse gradients are not supported")
            if self._is_matrix(p, group):
                ps, ss = keyed.setdefault((tuple(p.shape), p.dtype, p.device), ([], []))
                ps.append(p)
                ss.append(self.state[p])
            else:
                others.append(p)
        return [Bucket(ps, ss) for ps, ss in keyed.values()], others

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One transactional step (see the module docstring). Returns the closure's loss."""
        for group in self.param_groups:  # a scheduler may have written them since the last step
            check_step_options(group)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans: list[tuple[dict[str, Any], list[tuple[Bucket, Tensor, dict[str, Tensor]]], list[Tensor]]] = []
        grad_flags: list[Tensor] = []
        upd_flags: list[Tensor] = []
        gap_flags: list[tuple[Tensor, float]] = []
        diag: list[dict[str, Any]] | None = [] if self.diagnostics_mode else None
        all_grads: list[Tensor] = []
        for group in self.param_groups:
            buckets, others = self._buckets(group)
            work = []
            for b in buckets:
                all_grads.extend(p.grad for p in b.params)  # type: ignore[misc]
                gflags: list[tuple[Tensor, float]] = []
                new_w, new_state = self._bucket_update(b, group, gflags, diag)
                gap_flags.extend(gflags)
                upd_flags.append(torch.isfinite(finite_sum(new_w)))
                work.append((b, new_w, new_state))
            all_grads.extend(p.grad for p in others)  # type: ignore[misc]
            plans.append((group, work, others))
        grad_flags.extend(torch.isfinite(finite_sum(g)) for g in all_grads)
        gap_ok_flags = [(g >= tol).all() for g, tol in gap_flags]
        status = read_flags(grad_flags + upd_flags + gap_ok_flags)  # the one sync of the step
        ng, nu = len(grad_flags), len(upd_flags)
        grads_ok, upd_ok, gap_ok = all(status[:ng]), all(status[ng:ng + nu]), all(status[ng + nu:])
        if grads_ok and not gap_ok:
            self._raise_gap(gap_flags)
        if not (grads_ok and upd_ok):
            self._refuse(grads_ok)
            return loss
        # commit
        for group, work, others in plans:
            for b, new_w, new_state in work:
                torch._foreach_copy_([p.detach() for p in b.params], list(new_w.unbind(0)))
                for p in b.params:
                    self._written[id(p)] = p._version
                for key, val in new_state.items():
                    for st, v in zip(b.states, val.unbind(0)):
                        st[key] = v
                for st in b.states:
                    st["step"] = st.get("step", 0) + 1
            if others:
                self._adamw(group, others)
        self._diag = {"skipped": False, "params": diag or []}
        return loss

    def _refuse(self, grads_ok: bool) -> None:
        """A non-finite step, nothing written: count it (``nonfinite="skip"``) or raise."""
        self._diag = {"skipped": True, "params": []}
        if self.nonfinite == "skip":
            self.skipped_steps += 1
            return
        if not grads_ok:
            raise InvalidInputError(
                "non-finite gradient (NaN or Inf) in " + self._where_nonfinite()
                + "; no weight or state was changed (use nonfinite='skip' to skip such steps)")
        raise SolverError("the update is non-finite although every gradient is finite (e.g. a "
                          "low-precision msign schedule diverged); no weight or state was changed",
                          status="nonfinite_update")

    def _where_nonfinite(self) -> str:
        bad = []
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    bad.append(f"group {gi} param {pi} {tuple(p.shape)}")
        return ", ".join(bad) or "a gradient"

    def _raise_gap(self, gap_flags: list[tuple[Tensor, float]]) -> None:
        worst = min(((float(g.min()), tol) for g, tol in gap_flags if g.numel() and not bool((g >= tol).all())),
                    default=(float("nan"), float("nan")))
        raise DegenerateGeometryError(
            "relative spectral gap (σ₁−σ₂)/σ₁ on the spectral sphere (power-iteration estimate unless "
            "theta='exact')", worst[0], worst[1],
            "no weight or state was changed; use gap_policy='report' to continue, theta='exact' "
            "to certify the gap")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's rule: the saved groups' options replace the constructor's, so a resumed run
        computes msign in the concrete ``ns_dtype`` stored at save time (also on a machine whose
        ``"auto"`` would choose another). Override it by setting ``group["ns_dtype"]`` after
        loading; an ``"auto"`` in the saved groups is resolved here, on this machine."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            resolve_auto_ns_dtype(group)

    # -- AdamW ---------------------------------------------------------------------------------
    def _adamw(self, group: dict[str, Any], params: list[Tensor]) -> None:
        grads, m1, m2, steps = [], [], [], []
        for p in params:
            st = self.state[p]
            if "exp_avg" not in st:
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["adam_step"] = torch.tensor(0.0, dtype=torch.float32)
            grads.append(p.grad)
            m1.append(st["exp_avg"])
            m2.append(st["exp_avg_sq"])
            steps.append(st["adam_step"])
        b1, b2 = group["adamw_betas"]
        _adamw_functional([p.detach() for p in params], grads, m1, m2, [], steps, foreach=None,
                          amsgrad=False, beta1=b1, beta2=b2, lr=group["adamw_lr"],
                          weight_decay=group["adamw_wd"], eps=group["adamw_eps"], maximize=False)

    # -- diagnostics ---------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, Any]:
        """Figures of the last step as Python floats (one sync here, none during ``step``).

        ``{"skipped": bool, "params": [{"group", "index", "shape", "manifold", "ns_dtype",
        <figures>}]}`` (``ns_dtype``: the dtype msign computed in, :func:`ns_dtype_used`);
        empty unless the optimizer was built with ``diagnostics=True`` (or ``"full"``).
        """
        out = []
        for rec in self._diag.get("params", []):
            vals = {k: v for k, v in rec.items() if not isinstance(v, Tensor)}
            tens = {k: v for k, v in rec.items() if isinstance(v, Tensor)}
            if tens:
                keys = list(tens)
                stacked = torch.stack([tens[k].to(torch.float64).reshape(-1).cpu() for k in keys])
                cols = stacked.T.tolist()
                for j, pi in enumerate(vals["index"]):
                    extra = {}
                    if "group" in vals and "ns_dtype" not in vals:
                        g = self.param_groups[vals["group"]]
                        extra["ns_dtype"] = ns_dtype_used(g, g["params"][pi].dtype)
                    out.append({**{k: v for k, v in vals.items() if k != "index"}, "index": pi, **extra,
                                **{k: cols[j][i] for i, k in enumerate(keys)}})
        return {"skipped": bool(self._diag.get("skipped", False)), "params": out}

    def _param_index(self, group: dict[str, Any], bucket: Bucket) -> list[int]:
        ids = {id(p): i for i, p in enumerate(group["params"])}
        return [ids[id(p)] for p in bucket.params]
