"""The gpu_impl matrix optimizers on FSDP2 / DTensor parameters: gather, step whole matrices, re-shard.

:class:`ShardedOptimizer` wraps one of :mod:`gpu_impl.optim` (``MACRO``, ``MuonH``, ``SSO``,
``MuonBall``) for parameters sharded by ``torch.distributed.fsdp.fully_shard`` (DTensors with
placement ``Shard(0)`` on a 1-D mesh), replicated DTensors (``Replicate()``) and plain tensors.
It holds no formula of its own: every update is computed by the wrapped optimizer on whole
matrices, so the sharded run is the single-process run (one home per formula).

Scheme (per step, a fixed number of collectives whatever the number of matrices):

1. **Agree** (one ``all_reduce`` of a short float64 vector): the number of non-finite local
   gradient shards, and per sharded matrix a "stale" flag (its local shard was written by
   someone else since this optimizer last wrote it, e.g. a checkpoint load).
2. **Gather** whole gradients (and whole weights of stale matrices) to the ranks that compute
   them. Matrix ``W ∈ R^{m×n}`` is split by ``torch.chunk`` rows (FSDP2's rule: ``c = ⌈m/P⌉``
   rows per rank, the last ranks may hold fewer or none); every shard is padded to ``c`` rows
   on the wire. The mode is chosen per matrix by size (``mode="auto"``):

   * ``"allgather"`` for ``m·n < owner_min_numel`` (default 16384, a 128×128 matrix): one
     ``all_gather_into_tensor`` for all such matrices; every rank computes the update
     (redundant compute, no scatter; latency-bound small matrices);
   * ``"owner"`` otherwise: matrices are assigned to owner ranks greedily by msign cost
     ``m·n·min(m, n)`` (largest first, to the least loaded rank); one ``all_to_all_single``
     carries every shard to its owner, the owner computes, one ``all_to_all_single`` returns
     the new rows. Optimizer state of such a matrix lives on its owner only (ZeRO-1-like).

3. **Step**: the wrapped optimizer steps the whole matrices the rank holds ("shadows", full
   ``m×n`` parameters, persistent so that warm-started state such as the spectral power basis
   behaves as in one process). Its status is agreed by one ``all_reduce``; if any rank failed,
   no weight is written anywhere, the matrix state is rolled back (the wrapped optimizers replace
   state tensors, never write them in place, so a shallow copy restores it), and every rank
   raises (the failing rank its own error, the others a :class:`SolverError` naming it).
4. **Write back** the new rows into each rank's shard; then the AdamW-routed parameters
   (non-2-D, or in a group the optimizer leaves unconstrained) are updated elementwise on their
   local shards by a second instance of the wrapped optimizer.

Communication is in the parameter dtype (float64 runs are exact to rounding). Collectives use
the DTensors' mesh group (plain tensors: the default group) on whatever device the tensors live
(gloo on CPU, NCCL on GPU, no device is hard-coded). Unsupported layouts (2-D meshes, ``Shard(1)``,
parameters on different meshes) raise :class:`NotAvailableError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.tensor import DTensor, Replicate, Shard

from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError, SolverError

from .optim import MatrixOptimizer, resolve_auto_ns_dtype

__all__ = ["ShardedOptimizer", "MODES", "chunk_rows"]

MODES = ("auto", "allgather", "owner")


def chunk_rows(m: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of an ``m``-row tensor held by ``rank`` under ``torch.chunk`` sharding."""
    c = -(-m // world)
    return min(rank * c, m), min((rank + 1) * c, m)


@dataclass
class _Slot:
    """One 2-D parameter the wrapped optimizer treats as a matrix."""

    param: Tensor                 # the user's parameter (DTensor or plain)
    group: int                    # user group index
    sharded: bool                 # Shard(0) DTensor (else replicated: every rank has it whole)
    mode: str = "allgather"       # allgather | owner (sharded only)
    owner: int = -1
    shadow: Tensor | None = None  # the whole matrix on the ranks that compute it
    version: int = -1             # local shard version right after our last write
    rows: tuple[int, int] = (0, 0)
    shape: tuple[int, int] = (0, 0)

    def local(self) -> Tensor:
        return self.param.to_local() if isinstance(self.param, DTensor) else self.param


@dataclass
class _Other:
    """A parameter routed to AdamW: updated on its local shard through a persistent proxy."""

    param: Tensor
    group: int
    proxy: Tensor = field(default=None)  # type: ignore[assignment]


def _local(t: Tensor) -> Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


class ShardedOptimizer:
    """``optimizer_cls`` (a :class:`gpu_impl.optim.MatrixOptimizer`) on FSDP2-sharded parameters.

    ``ShardedOptimizer(MACRO, model.parameters(), lr=..., manifold=...)``: the same arguments as
    the wrapped class, plus ``mode`` (``"auto"`` | ``"allgather"`` | ``"owner"``),
    ``owner_min_numel`` and ``nonfinite`` (applied across ranks). Instead of a class, a factory
    ``f(param_groups) -> MatrixOptimizer`` may be passed (no ``**hyper`` then; group keys given to
    this wrapper are forwarded in every group). Must be constructed, stepped and checkpointed on every rank in the
    same order (collective calls). ``param_groups`` holds the user-facing groups (change ``lr``
    there). See the module docstring for the scheme.
    """

    def __init__(self, optimizer: type[MatrixOptimizer] | Callable[[list[dict[str, Any]]], MatrixOptimizer],
                 params: Iterable, *, mode: str = "auto", owner_min_numel: int = 16384,
                 nonfinite: str = "raise", **hyper: Any) -> None:
        if isinstance(optimizer, type):
            if not issubclass(optimizer, MatrixOptimizer):
                raise InvalidInputError(f"optimizer must be a gpu_impl MatrixOptimizer class or a factory, got {optimizer!r}")
            cls = optimizer
            self.factory: Callable[[list[dict[str, Any]]], MatrixOptimizer] = lambda groups: cls(groups, **hyper)
        elif callable(optimizer):
            self.factory = optimizer
        else:
            raise InvalidInputError(f"optimizer must be a gpu_impl MatrixOptimizer class or a factory, got {optimizer!r}")
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
        if nonfinite not in ("raise", "skip"):
            raise InvalidInputError(f"nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        if not dist.is_available() or not dist.is_initialized():
            raise NotAvailableError("ShardedOptimizer needs an initialised torch.distributed process group")
        self.mode, self.nonfinite = mode, nonfinite
        self.skipped_steps = 0
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = [{**g, "params": list(g["params"])} for g in groups]
        self._pg = self._process_group()
        self.world = dist.get_world_size(self._pg)
        self.rank = dist.get_rank(self._pg)
        self.slots: list[_Slot] = []
        self.others: list[_Other] = []
        for gi, g in enumerate(self.param_groups):
            constrained = self._routes_matrices(g)
            for p in g["params"]:
                if p.ndim == 2 and constrained:
                    self.slots.append(self._slot(p, gi, mode, owner_min_numel))
                else:
                    self.others.append(_Other(p, gi))
        self._assign_owners()
        # whole weights to the computing ranks, then the wrapped optimizer (its construction may
        # move the matrices onto their manifold), then the rows back to every shard
        self._gather(weights=True, stale=[True] * len(self.slots))
        for s in self.slots:
            if not s.sharded:  # replicated: the shadow aliases the (local) parameter itself
                s.shadow = torch.nn.Parameter(s.local().detach(), requires_grad=False)
        self.inner = self._make_inner([s.shadow for s in self.slots if self._holds(s)],  # type: ignore[misc]
                                      [s.group for s in self.slots if self._holds(s)])
        self._write_back()
        for o in self.others:
            o.proxy = torch.nn.Parameter(_local(o.param).detach(), requires_grad=False)
        self.adamw = self._make_inner([o.proxy for o in self.others], [o.group for o in self.others])

    # -- layout ----------------------------------------------------------------------------------
    def _process_group(self) -> Any:
        meshes = {id(p.device_mesh): p.device_mesh for g in self.param_groups for p in g["params"]
                  if isinstance(p, DTensor)}
        if len(meshes) > 1:
            raise NotAvailableError("parameters on different device meshes are not supported")
        if not meshes:
            return dist.group.WORLD
        mesh = next(iter(meshes.values()))
        if mesh.ndim != 1:
            raise NotAvailableError(f"only 1-D device meshes are supported (FSDP2 fully_shard); got a "
                                    f"{mesh.ndim}-D mesh {tuple(mesh.shape)} (HSDP / tensor parallel)")
        return mesh.get_group()

    def _routes_matrices(self, group: dict[str, Any]) -> bool:
        """The wrapped optimizer's own routing of a 2-D parameter in ``group``, asked of a 2×2 probe
        (diag(2, 1): nonzero, with a spectral gap, so every manifold accepts it); fills ``group``
        with the wrapped optimizer's defaults. The probe sits on the group's device type, so
        ``ns_dtype="auto"`` resolves (once, to a concrete name kept in the group) for that device."""
        dev = _local(group["params"][0]).device if group["params"] else torch.device("cpu")
        probe = torch.nn.Parameter(torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64, device=dev)))
        opt = self.factory([{**{k: v for k, v in group.items() if k != "params"}, "params": [probe]}])
        for k, v in opt.param_groups[0].items():  # the user-facing group shows every option
            if k != "params":
                group.setdefault(k, v)
        resolve_auto_ns_dtype(group)  # an "auto" given in the group itself
        return bool(opt._is_matrix(probe, opt.param_groups[0]))

    def _slot(self, p: Tensor, gi: int, mode: str, owner_min_numel: int) -> _Slot:
        m, n = p.shape
        if not isinstance(p, DTensor):
            return _Slot(p, gi, sharded=False, shape=(m, n), rows=(0, m))
        pl = p.placements[0]
        if isinstance(pl, Replicate):
            return _Slot(p, gi, sharded=False, shape=(m, n), rows=(0, m))
        if not (isinstance(pl, Shard) and pl.dim == 0):
            raise NotAvailableError(f"placement {pl!r} is not supported (Shard(0) as fully_shard makes it, "
                                    "or Replicate())")
        rows = chunk_rows(m, self.world, self.rank)
        if tuple(p.to_local().shape) != (rows[1] - rows[0], n):
            raise NotAvailableError(f"local shard {tuple(p.to_local().shape)} of a {m}x{n} matrix does not "
                                    f"follow torch.chunk row sharding ({rows}) on {self.world} ranks")
        pick = mode if mode != "auto" else ("allgather" if m * n < owner_min_numel else "owner")
        return _Slot(p, gi, sharded=True, mode=pick, rows=rows, shape=(m, n))

    def _assign_owners(self) -> None:
        load = [0.0] * self.world
        owned = [s for s in self.slots if s.sharded and s.mode == "owner"]
        for s in sorted(owned, key=lambda s: -s.shape[0] * s.shape[1] * min(s.shape)):
            r = min(range(self.world), key=lambda i: (load[i], i))
            s.owner = r
            load[r] += s.shape[0] * s.shape[1] * min(s.shape)

    def _holds(self, s: _Slot) -> bool:
        return (not s.sharded) or s.mode == "allgather" or s.owner == self.rank

    def _make_inner(self, params: list[Tensor], groups: list[int]) -> MatrixOptimizer | None:
        if not params:
            return None
        by_group: dict[int, list[Tensor]] = {}
        for p, g in zip(params, groups):
            by_group.setdefault(g, []).append(p)
        self._inner_groups = getattr(self, "_inner_groups", {})
        opt = self.factory([{**{k: v for k, v in self.param_groups[g].items() if k != "params"}, "params": ps}
                            for g, ps in by_group.items()])
        self._inner_groups[id(opt)] = list(by_group)
        return opt

    # -- collectives -------------------------------------------------------------------------------
    def _pad(self, s: _Slot, t: Tensor) -> Tensor:
        c = -(-s.shape[0] // self.world)
        out = t.new_zeros((c, s.shape[1]))
        out[: t.shape[0]] = t
        return out.reshape(-1)

    def _unpad(self, s: _Slot, blocks: list[Tensor]) -> Tensor:
        """Whole (m, n) matrix from the P padded row blocks (flattened), in rank order."""
        c = -(-s.shape[0] // self.world)
        parts = []
        for r, b in enumerate(blocks):
            lo, hi = chunk_rows(s.shape[0], self.world, r)
            parts.append(b.reshape(c, s.shape[1])[: hi - lo])
        return torch.cat(parts)

    def _gather(self, *, weights: bool, stale: list[bool]) -> None:
        """Whole gradients (``weights=False``) or whole weights of stale slots to the computing ranks."""
        take = [s for s, st in zip(self.slots, stale) if s.sharded and (st or not weights)]
        if not take:
            return

        def src(s: _Slot) -> Tensor:
            return _local(s.param.grad if not weights else s.param).detach()

        def put(s: _Slot, full: Tensor) -> None:
            if s.shadow is None:
                s.shadow = torch.nn.Parameter(full.clone(), requires_grad=False)
            elif weights:
                s.shadow.detach().copy_(full)
            else:
                s.shadow.grad = full

        ag = [s for s in take if s.mode == "allgather"]
        if ag:
            buf = torch.cat([self._pad(s, src(s)) for s in ag])
            out = buf.new_empty(self.world * buf.numel())
            dist.all_gather_into_tensor(out, buf, group=self._pg)
            per_rank = out.view(self.world, -1)
            off = 0
            for s in ag:
                k = -(-s.shape[0] // self.world) * s.shape[1]
                put(s, self._unpad(s, [per_rank[r, off:off + k] for r in range(self.world)]))
                off += k
        ow = [s for s in take if s.mode == "owner"]
        if ow:
            send = [[self._pad(s, src(s)) for s in ow if s.owner == r] for r in range(self.world)]
            ins = [sum(int(t.numel()) for t in lst) for lst in send]
            mine = [s for s in ow if s.owner == self.rank]
            k_mine = sum(-(-s.shape[0] // self.world) * s.shape[1] for s in mine)
            ref = src(ow[0])
            buf = torch.cat([t for lst in send for t in lst]) if sum(ins) else ref.new_empty(0)
            out = ref.new_empty(self.world * k_mine)
            dist.all_to_all_single(out, buf, [k_mine] * self.world, ins, group=self._pg)
            per_rank = out.view(self.world, k_mine) if k_mine else None
            off = 0
            for s in mine:
                k = -(-s.shape[0] // self.world) * s.shape[1]
                assert per_rank is not None
                put(s, self._unpad(s, [per_rank[r, off:off + k] for r in range(self.world)]))
                off += k

    def _write_back(self) -> None:
        """New rows of every sharded slot into the local shards (owner slots: one all_to_all)."""
        with torch.no_grad():
            for s in self.slots:
                if s.sharded and s.mode == "allgather":
                    assert s.shadow is not None
                    s.local().copy_(s.shadow.detach()[s.rows[0]:s.rows[1]])
            ow = [s for s in self.slots if s.sharded and s.mode == "owner"]
            if ow:
                mine = [s for s in ow if s.owner == self.rank]
                send: list[Tensor] = []
                for r in range(self.world):
                    for s in mine:
                        lo, hi = chunk_rows(s.shape[0], self.world, r)
                        assert s.shadow is not None
                        send.append(self._pad(s, s.shadow.detach()[lo:hi]))
                k_mine = sum(-(-s.shape[0] // self.world) * s.shape[1] for s in mine)
                recv = [sum(-(-s.shape[0] // self.world) * s.shape[1] for s in ow if s.owner == r)
                        for r in range(self.world)]
                ref = ow[0].local()
                buf = torch.cat(send) if send else ref.new_empty(0)
                out = ref.new_empty(sum(recv))
                dist.all_to_all_single(out, buf, recv, [k_mine] * self.world, group=self._pg)
                off = 0
                for r in range(self.world):
                    for s in (s for s in ow if s.owner == r):
                        k = -(-s.shape[0] // self.world) * s.shape[1]
                        rows = s.rows[1] - s.rows[0]
                        s.local().copy_(out[off:off + k].view(-1, s.shape[1])[:rows])
                        off += k
            for s in self.slots:
                s.version = s.local()._version

    # -- step ----------------------------------------------------------------------------------------
    def _sync_hyper(self, opt: MatrixOptimizer | None) -> None:
        if opt is None:
            return
        for ig, ug in zip(opt.param_groups, self._inner_groups[id(opt)]):
            for k, v in self.param_groups[ug].items():
                if k != "params":
                    ig[k] = v

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One step on every rank (collective). Raises on every rank, or on none."""
        slots = [s for s in self.slots if s.param.grad is not None]
        if len(slots) != len(self.slots) and any(s.sharded for s in self.slots):
            raise InvalidInputError("every sharded matrix needs a gradient on every step (None found)")
        local_bad = sum(int(not bool(torch.isfinite(_local(p.grad)).all()))
                        for g in self.param_groups for p in g["params"] if p.grad is not None)
        stale = [float(s.sharded and s.local()._version != s.version) for s in self.slots]
        agree = torch.tensor([float(local_bad), *stale], dtype=torch.float64,
                             device=self._device())
        dist.all_reduce(agree, group=self._pg)
        if agree[0] > 0:
            if self.nonfinite == "skip":
                self.skipped_steps += 1
                return
            raise InvalidInputError(f"non-finite gradient (NaN or Inf) on {int(agree[0])} shard(s); no weight "
                                    "or state was changed on any rank")
        self._gather(weights=True, stale=[bool(x) for x in agree[1:].tolist()])
        self._gather(weights=False, stale=[True] * len(self.slots))
        for s in self.slots:
            if not s.sharded:
                assert s.shadow is not None
                loc = s.local()
                if s.shadow.data_ptr() != loc.data_ptr():
                    s.shadow.data = loc.detach()
                s.shadow.grad = None if s.param.grad is None else _local(s.param.grad)
        snapshot = {id(p): dict(st) for p, st in self.inner.state.items()} if self.inner is not None else {}
        err: BaseException | None = None
        try:
            self._sync_hyper(self.inner)
            if self.inner is not None:
                self.inner.step()
        except Exception as e:  # noqa: BLE001 - re-raised below on this rank after the agreement
            err = e
        codes = torch.zeros(self.world, dtype=torch.float64, device=self._device())
        codes[self.rank] = 0.0 if err is None else 1.0
        dist.all_reduce(codes, group=self._pg)
        if codes.sum() > 0:
            if self.inner is not None:
                for p in list(self.inner.state):
                    if id(p) in snapshot:
                        self.inner.state[p] = snapshot[id(p)]
            for s in self.slots:
                s.version = -1  # shadows may have advanced: re-gather the untouched shards next step
            if err is not None:
                raise err
            bad = [r for r, c in enumerate(codes.tolist()) if c]
            raise SolverError(f"the optimizer step failed on rank(s) {bad}; no weight was changed on any rank",
                              status="remote_failure")
        self._write_back()
        for s in self.slots:
            if s.shadow is not None:
                s.shadow.grad = None
        if self.adamw is not None:
            for o in self.others:
                loc = _local(o.param)
                if o.proxy.data_ptr() != loc.data_ptr() or o.proxy.shape != loc.shape:
                    o.proxy.data = loc.detach()
                o.proxy.grad = None if o.param.grad is None else _local(o.param.grad)
            self._sync_hyper(self.adamw)
            self.adamw.step()
            for o in self.others:
                o.proxy.grad = None

    def _device(self) -> torch.device:
        if self.slots:
            return self.slots[0].local().device
        return _local(self.others[0].param).device if self.others else torch.device("cpu")

    # -- state -----------------------------------------------------------------------------------------
    def _holder(self, s: _Slot) -> int:
        return s.owner if (s.sharded and s.mode == "owner") else 0

    def state_dict(self) -> dict[str, Any]:
        """World-size-independent state for ``torch.distributed.checkpoint`` (collective).

        ``{"state": {"<i>": {key: value}}, "param_groups": [...]}`` with ``i`` the parameter's
        position in ``param_groups`` order. A state tensor with the shape of its (whole) parameter
        becomes a ``Shard(0)`` DTensor on the parameter's mesh; other tensors are replicated."""
        state: dict[str, Any] = {}
        inner_state = self.inner.state if self.inner is not None else {}
        idx = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        for s in self.slots:
            key = s.shadow
            obj = [None]
            if self.rank == self._holder(s) or not s.sharded:
                st = inner_state.get(key, {}) if key is not None else {}
                obj = [{k: (("T", tuple(v.shape), str(v.dtype).removeprefix("torch.")) if isinstance(v, Tensor) else v)
                        for k, v in st.items()}]
            if s.sharded:
                dist.broadcast_object_list(obj, src=dist.get_global_rank(self._pg, self._holder(s)), group=self._pg)
            out: dict[str, Any] = {}
            for k, v in (obj[0] or {}).items():
                if not (isinstance(v, tuple) and len(v) == 3 and v[0] == "T"):
                    out[k] = v
                    continue
                if s.sharded:
                    t = (inner_state[key][k].detach().clone() if self.rank == self._holder(s)
                         else torch.empty(v[1], dtype=getattr(torch, v[2]), device=self._device()))
                    dist.broadcast(t, src=dist.get_global_rank(self._pg, self._holder(s)), group=self._pg)
                else:
                    t = inner_state[key][k].detach().clone()
                    t = _local(t)
                out[k] = self._as_sharded(s.param, t) if tuple(t.shape) == s.shape and s.sharded else t
            state[str(idx[id(s.param)])] = out
        adam_state = self.adamw.state if self.adamw is not None else {}
        for o in self.others:
            out = {}
            for k, v in adam_state.get(o.proxy, {}).items():
                same = isinstance(v, Tensor) and isinstance(o.param, DTensor) and v.shape == o.proxy.shape and v.ndim > 0
                out[k] = DTensor.from_local(v, o.param.device_mesh, o.param.placements, shape=o.param.shape,
                                            stride=o.param.stride()) if same else v
            state[str(idx[id(o.param)])] = out
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    @staticmethod
    def _as_sharded(p: DTensor, full: Tensor) -> DTensor:
        lo, hi = chunk_rows(full.shape[0], p.device_mesh.size(), p.device_mesh.get_local_rank())
        return DTensor.from_local(full[lo:hi].contiguous(), p.device_mesh, [Shard(0)], shape=p.shape,
                                  stride=p.stride())

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (possibly saved at another world size; collective)."""
        for g, saved in zip(self.param_groups, sd["param_groups"]):
            g.update({k: v for k, v in saved.items() if k != "params"})
            resolve_auto_ns_dtype(g)  # the saved concrete ns_dtype wins (MatrixOptimizer.load_state_dict)
        idx = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        for inner, items in ((self.inner, [(s.shadow, s) for s in self.slots]),
                             (self.adamw, [(o.proxy, o) for o in self.others])):
            new: dict[int, dict[str, Any]] = {}
            for key, s in items:
                st = sd["state"].get(str(idx[id(s.param)]), {})
                vals = {k: (v.full_tensor() if isinstance(v, DTensor) and isinstance(s, _Slot) else
                            (v.to_local() if isinstance(v, DTensor) else v)) for k, v in st.items()}
                if key is not None and inner is not None and (not isinstance(s, _Slot) or self._holds(s)):
                    new[id(key)] = vals
            if inner is not None:
                order = [p for g in inner.param_groups for p in g["params"]]
                inner.load_state_dict({"state": {i: new.get(id(p), {}) for i, p in enumerate(order)},
                                       "param_groups": inner.state_dict()["param_groups"]})
        for s in self.slots:
            s.version = -1  # re-gather the weights at the next step


# -- fixed-gradient runs (the tests and the conformance ``distributed`` family) --------------------

def fixed_gradients(shapes: list[tuple[int, ...]], steps: int, seed: int, dtype: torch.dtype,
                    dyadic: bool = False) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Whole initial weights and per-step whole gradients, from ``torch.Generator(seed)`` (CPU,
    float64, then cast): the same numbers on every rank and at every world size. ``dyadic``: the
    gradients are rounded to multiples of 1/16 (exact in bf16 for |g| < 16, so a momentum
    recursion with β = 3/4 stays exact in float32 over a few steps)."""
    gen = torch.Generator().manual_seed(int(seed))
    w0 = [torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    grads = [[torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(steps)]
    if dyadic:
        grads = [[torch.round(16.0 * g) / 16.0 for g in gs] for gs in grads]
    return w0, [[g.to(dtype) for g in gs] for gs in grads]


def sharded_fixed_run(payload: dict[str, Any]) -> dict[str, Any]:
    """One rank of a fixed-gradient run (target of :func:`gpu_impl.distributed.run_ranks`).

    ``payload``: ``runs`` (a list of such payloads, run one after the other; returns the list), or
    ``factory`` ("module:function", called as ``factory(params, mesh, **hyper)`` and
    returning an object with ``step()``), ``hyper``, ``shapes`` (2-D weights or 1-D biases),
    ``replicated`` (indices kept as plain replicated tensors, outside ``fully_shard``), ``steps``,
    ``seed``, ``dtype``, ``dyadic`` (gradients in multiples of 1/16, :func:`fixed_gradients`).
    Every parameter except the replicated ones is sharded by ``fully_shard`` on a 1-D mesh of all
    ranks. Returns the whole weights after every step (``history[t][i]``, CPU float64 copies; the
    initial ones at t = 0, after the factory's construction) and this rank's local row counts.
    """
    import importlib

    if "runs" in payload:
        return {"runs": [sharded_fixed_run(p) for p in payload["runs"]]}
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    world = dist.get_world_size()
    dtype = getattr(torch, payload.get("dtype", "float64"))
    shapes = [tuple(s) for s in payload["shapes"]]
    replicated = set(payload.get("replicated", ()))
    device = torch.device(payload.get("device", "cpu"))
    w0, grads = fixed_gradients(shapes, int(payload["steps"]), int(payload["seed"]), dtype,
                                dyadic=bool(payload.get("dyadic", False)))
    mesh = init_device_mesh(device.type, (world,))
    sharded = torch.nn.Module()
    plain = torch.nn.Module()
    for i, w in enumerate(w0):
        setattr(plain if i in replicated else sharded, f"w{i}", torch.nn.Parameter(w.clone().to(device)))
    if any(i not in replicated for i in range(len(shapes))):
        fully_shard(sharded, mesh=mesh)
    params = [getattr(plain if i in replicated else sharded, f"w{i}") for i in range(len(shapes))]
    mod, fn = payload["factory"].split(":")
    opt = getattr(importlib.import_module(mod), fn)(params, mesh, **payload.get("hyper", {}))

    def whole() -> list[Tensor]:
        return [(p.full_tensor() if isinstance(p, DTensor) else p).detach().to("cpu", torch.float64).clone()
                for p in params]

    history = [whole()]
    for gs in grads:
        for p, g in zip(params, gs):
            g = g.to(device)
            if isinstance(p, DTensor):
                lo, hi = chunk_rows(g.shape[0], world, dist.get_rank())
                p.grad = DTensor.from_local(g[lo:hi].contiguous(), p.device_mesh, p.placements,
                                            shape=p.shape, stride=p.stride())
            else:
                p.grad = g.clone()
        opt.step()
        for p in params:
            p.grad = None
        history.append(whole())
    rows = [int(_local(p).shape[0]) for p in params]
    return {"history": history, "rows": rows, "rank": dist.get_rank()}


def gpu_impl_factory(params: list[Tensor], mesh: Any, *, optimizer: str = "MACRO", **hyper: Any) -> ShardedOptimizer:
    """``ShardedOptimizer`` of ``gpu_impl.optim.<optimizer>`` (the built-in distributed target)."""
    from . import optim

    return ShardedOptimizer(getattr(optim, optimizer), params, **hyper)
