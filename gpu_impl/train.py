"""``manifold-oracle train``: train the small decoder of :mod:`gpu_impl.model` with a chosen optimizer.

Outputs in ``--out DIR``:

* ``config.json`` — every option, the model size, the corpus description (with its SHA-256),
  the parameter → optimizer/manifold assignment and the torch/device information;
* ``metrics.jsonl`` — one JSON object per step (schema below) plus one ``step = 0`` record with
  the initial validation loss;
* ``curves.png`` — the curves (matplotlib, Agg backend);
* ``summary.json`` — end values (last train loss, mean of the last 10, last validation loss),
  wall time and tokens/s.

Per-step record (``metrics.jsonl``)::

    {"step": t, "lr": η_t, "train_loss": ℓ_t, "grad_norm": ‖∇‖_F (all parameters, before the
     step), "tokens": tokens seen, "time_s": wall time, "val_loss": (every --val-every steps),
     "matrices": {name: {"feasibility": c_M(W_{t+1}) (constrained matrices only, MATH.md §4),
                         "rotation_angle": ∠(W_t, W_{t+1}) in radians (MATH.md §5.3/§5.4),
                         "tangency": v_M of the step direction, "d_fro": ‖D‖_F,
                         "update_rel": ‖W_{t+1} − W_t‖_F/‖W_t‖_F, "gap", "power_residual",
                         "pair_bound", "pair_fallback" (theta="certified": the angle bound of Θ's
                         pair and 1 where the exact pair was used) (these from the gpu_impl
                         optimizer's own diagnostics, when present)}},
     "activation_rms": {"block{i}.attn"|"block{i}.mlp"|"block{i}": RMS of that module's output}}

The per-matrix and activation entries are written every ``--diag-every`` steps (default 1).
Feasibility and rotation angle are computed here in float64, independently of the optimizer;
for SSO (retract-then-step) the logged feasibility is that of W_{t+1} before the next step's
retraction, so it is O(η²), not rounding-level.

Optimizers: ``macro-frobenius``, ``macro-spectral``, ``macro-oblique`` (row-oblique) —
``gpu_impl.optim.MACRO`` (MATH.md §7, variant A, ambient EMA momentum 0.95, radius ``--radius``
(default "init": the norm at construction), scale ``--scale`` (default 1), KJ 5-step msign in
``--msign-dtype`` (default "auto": bf16 on CUDA and AMX CPUs, float32 on other CPUs, chosen once per
process by ``gpu_impl.msign.native_ns_dtype``; ``config.json`` records the concrete dtype under
``resolved.ns_dtype``), on the spectral sphere Θ from ``--theta`` (default "certified":
a warm-started Chebyshev-filtered/block Krylov iteration stopped by a-posteriori bounds — pair angle ≤ √ε, σ₁ for the
rescale to ε of the dtype (``gpu_impl.manifolds.pair_certificate``) — with float64 cycles, then the
exact SVD pair, where they cannot be met; "exact" is the SVD every step; "power"
the fixed-step iteration, whose accuracy is limited by the spectral gap)) on the hidden matrices, its internal AdamW on embedding and LM head; ``muon``
(``torch.optim.Muon``, KJ "original" LR adjustment, on the hidden matrices + ``torch.optim.AdamW``
for the rest); ``muonh`` (MATH.md §9.3) and ``sso`` (MATH.md §9.4) from ``gpu_impl.optim`` on the
hidden matrices + ``torch.optim.AdamW`` for the rest; ``adamw`` (everything on
``torch.optim.AdamW``). The AdamW part always uses β = (0.9, 0.95), ε = 1e-8, ``--adam-lr`` and
``--weight-decay`` (default 0). The default normalisation is ``parameter_free`` for macro-* and
``learnable`` otherwise (``--norm``).

Determinism: on CPU the run calls ``torch.use_deterministic_algorithms(True)`` (restored
afterwards), the model is initialised from ``torch.Generator(seed)``, the training batches come
from ``torch.Generator(seed + 1)`` and the validation windows from a fixed seed shared by all runs,
so two runs with the same options produce identical metrics.

Data parallel: :func:`run_training` with ``world_size > 1`` (process group already initialised,
see :mod:`gpu_impl.distributed`) wraps the model in DDP; every rank draws the same global batch
and keeps its contiguous slice of ``batch // world_size`` rows. ``manifold-oracle train --nproc N``
runs MACRO on N local processes with FSDP2 and distributed checkpoints (:mod:`gpu_impl.train_fsdp`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from manifold_oracle.reference.errors import InvalidInputError, OracleError
from manifold_oracle.gpu_impl.data import DEFAULT_MAX_BYTES, ByteCorpus, fixed_batches, load_corpus, sample_batch
from manifold_oracle.gpu_impl.model import NORM_VARIANTS, PRESETS, Decoder, make_config
from manifold_oracle.gpu_impl.manifolds import THETA_SOURCES

__all__ = [
    "lm_loss",
    "lr_factor",
    "msign_dtype_of",
    "ns_dtype_in_use",
    "OPTIMIZERS",
    "DEFAULT_LR",
    "TrainConfig",
    "TrainResult",
    "OptimizerBundle",
    "build_optimizer",
    "build_model",
    "run_training",
    "main",
]

#: Optimizer names accepted by ``--optimizer``.
OPTIMIZERS: tuple[str, ...] = (
    "macro-frobenius", "macro-spectral", "macro-oblique", "muon", "muonh", "sso", "adamw")

#: Default learning rate of the hidden matrices per optimizer (``--lr``); AdamW-handled parameters
#: use ``--adam-lr``. MACRO, Muon and AdamW values are the best of a 200-step sweep on the "tiny"
#: preset (batch 8 × 64, seed 0; validation loss): MACRO-F {0.005, 0.01, 0.02, 0.05, 0.1} →
#: {2.079, 1.974, 1.992, 2.203, 2.483}; MACRO-S {0.01, 0.02, 0.05, 0.1} → {1.961, 1.983, 2.172,
#: 2.329}; Muon {0.01, 0.02, 0.05} → {1.961, 1.936, 1.999}; AdamW {1e-3, 3e-3, 1e-2} → {2.097,
#: 2.005, 2.097}. 0.01 for MACRO is also the MACRO paper's η (Fig. 6). MuonH and SSO: their
#: codes' defaults, not swept.
DEFAULT_LR: dict[str, float] = {
    "macro-frobenius": 0.01,
    "macro-spectral": 0.01,
    "macro-oblique": 0.01,
    "muon": 0.02,
    "muonh": 0.02,
    "sso": 0.02,
    "adamw": 3e-3,
}

#: Manifold of the hidden matrices for each optimizer (None: unconstrained).
MANIFOLD_OF: dict[str, str | None] = {
    "macro-frobenius": "frobenius",
    "macro-spectral": "spectral",
    "macro-oblique": "oblique_rows",
    "muon": None,
    "muonh": "frobenius",
    "sso": "spectral",
    "adamw": None,
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

#: Seed of the validation windows: shared by every run, so runs are compared on the same bytes.
VAL_SEED = 20261125


@dataclass
class TrainConfig:
    """Every option of a training run (the CLI maps 1:1 onto these fields)."""

    optimizer: str = "macro-frobenius"
    preset: str = "tiny"
    width: int | None = None
    depth: int | None = None
    heads: int | None = None
    norm: str | None = None
    post_attn_norm: str = "stream"
    final_norm: bool | None = None
    depth_mup: bool = False
    steps: int = 200
    batch: int = 8
    seq_len: int = 64
    lr: float | None = None
    adam_lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: int = 0
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    val_every: int = 10
    val_batches: int = 4
    diag_every: int = 1
    corpus: str | None = None
    max_corpus_bytes: int = DEFAULT_MAX_BYTES
    out: str | None = "runs/train"
    progress: bool = True
    threads: int | None = None
    radius: str = "init"
    scale: str = "one"
    msign_dtype: str = "auto"
    theta: str = "certified"
    power_steps: int = 3

    def resolved_norm(self) -> str:
        """Default norm: parameter-free for the constrained optimizers, learnable otherwise."""
        if self.norm is not None:
            return self.norm
        return "parameter_free" if self.optimizer.startswith("macro") else "learnable"

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.optimizer]

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"unknown dtype {self.dtype!r}; choose from {sorted(DTYPES)}")
        if self.schedule not in ("constant", "linear"):
            raise InvalidInputError(f"schedule must be 'constant' or 'linear', got {self.schedule!r}")
        if self.msign_dtype not in ("bfloat16", "float32", "float64", "param", "auto"):
            raise InvalidInputError(f"msign_dtype must be bfloat16, float32, float64, param or auto, got {self.msign_dtype!r}")
        if self.radius not in ("init", "mup"):
            try:
                ok = float(self.radius) > 0
            except ValueError:
                ok = False
            if not ok:
                raise InvalidInputError(f"radius must be 'init', 'mup' or a positive number, got {self.radius!r}")
        if self.theta not in THETA_SOURCES:
            raise InvalidInputError(f"theta must be one of {THETA_SOURCES}, got {self.theta!r}")
        if self.power_steps < 1:
            raise InvalidInputError("--power-steps must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise InvalidInputError("--threads must be >= 1")
        for name in ("steps", "batch", "seq_len", "val_every", "val_batches", "diag_every"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1")
        if self.warmup < 0:
            raise InvalidInputError("--warmup must be >= 0")
        if not (self.resolved_lr() > 0 and self.adam_lr > 0):
            raise InvalidInputError("learning rates must be positive")


@dataclass
class TrainResult:
    """What a run returns: the records (as written to JSONL) and the final model state."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(repr=False)


# --------------------------------------------------------------------------------------------
# optimizers


class OptimizerBundle:
    """One or more torch optimizers driven together, plus the manifold of every hidden matrix.

    ``manifolds`` maps a hidden-matrix name to ``(kind, radius)`` for the constrained ones
    (``kind`` as in MACRO's ``manifold=`` option); ``diagnostics()`` returns the per-matrix
    tangency reported by the optimizer when it provides one.
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer],
                 manifolds: dict[str, tuple[str, torch.Tensor | float]],
                 diagnostics: Callable[[], dict[str, dict[str, float]]] | None = None,
                 diag_switch: Callable[[bool], None] | None = None) -> None:
        self.optimizers = optimizers
        self.manifolds = manifolds
        self._diagnostics = diagnostics
        self._diag_switch = diag_switch
        self.base_lrs = [[float(g["lr"]) for g in o.param_groups] for o in optimizers]

    def set_lr_factor(self, factor: float) -> None:
        for o, lrs in zip(self.optimizers, self.base_lrs):
            for g, lr0 in zip(o.param_groups, lrs):
                g["lr"] = lr0 * factor

    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def diagnostics(self) -> dict[str, dict[str, float]]:
        return self._diagnostics() if self._diagnostics is not None else {}

    def want_diagnostics(self, on: bool) -> None:
        """Ask the optimizer to compute its per-step diagnostics during the next step(s)."""
        if self._diag_switch is not None:
            self._diag_switch(on)


def build_model(cfg: TrainConfig, device: torch.device, dtype: torch.dtype) -> Decoder:
    """The decoder of the run, initialised from ``torch.Generator(cfg.seed)`` on CPU, then moved."""
    mcfg = make_config(cfg.preset, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                       norm=cfg.resolved_norm(), depth_mup=cfg.depth_mup or None,
                       post_attn_norm=cfg.post_attn_norm, final_norm=cfg.final_norm,
                       max_seq_len=max(cfg.seq_len, PRESETS[cfg.preset].max_seq_len))
    model = Decoder(mcfg, generator=torch.Generator().manual_seed(int(cfg.seed)))
    return model.to(device=device, dtype=dtype)


def build_optimizer(cfg: TrainConfig, model: Decoder) -> OptimizerBundle:
    """The optimizer(s) of ``cfg.optimizer`` on ``model`` (hidden matrices vs the rest)."""
    name = cfg.optimizer
    lr = cfg.resolved_lr()
    hidden = list(model.hidden_matrices())
    rest = list(model.other_parameters())
    hidden_p = [p for _, p in hidden]
    rest_p = [p for _, p in rest]
    adam_kw = dict(lr=cfg.adam_lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=cfg.weight_decay)
    if name == "adamw":
        opt = torch.optim.AdamW(
            [{"params": hidden_p, "lr": lr}, {"params": rest_p}], **adam_kw)  # type: ignore[arg-type]
        return OptimizerBundle([opt], {})
    if name == "muon":
        muon = torch.optim.Muon(hidden_p, lr=lr, weight_decay=cfg.weight_decay, momentum=0.95,
                                nesterov=True, adjust_lr_fn="original")
        adam = torch.optim.AdamW(rest_p, **adam_kw)  # type: ignore[arg-type]
        return OptimizerBundle([muon, adam], {})
    return _build_constrained(cfg, model, hidden, rest, lr, adam_kw)


def _build_constrained(cfg: TrainConfig, model: Decoder, hidden: list[tuple[str, nn.Parameter]],
                       rest: list[tuple[str, nn.Parameter]], lr: float,
                       adam_kw: dict[str, Any]) -> OptimizerBundle:
    """MACRO / MuonH / SSO from :mod:`gpu_impl.optim` (hidden matrices; internal AdamW for the rest)."""
    from manifold_oracle.gpu_impl import optim as go

    hidden_p = [p for _, p in hidden]
    rest_p = [p for _, p in rest]
    common = dict(adamw_lr=adam_kw["lr"], adamw_betas=adam_kw["betas"], adamw_eps=adam_kw["eps"],
                  adamw_wd=adam_kw["weight_decay"], ns_dtype=msign_dtype_of(cfg), diagnostics=False)
    kind = MANIFOLD_OF[cfg.optimizer]
    assert kind is not None
    # the MuonH radius is the norm at construction (λ = 0): measure it before any step
    r0 = {n: torch.linalg.matrix_norm(p.detach().double()) for n, p in hidden}
    opt: torch.optim.Optimizer
    if cfg.optimizer.startswith("macro"):
        radius: str | float = cfg.radius if cfg.radius in ("init", "mup") else float(cfg.radius)
        extra = dict(theta=cfg.theta, power_steps=cfg.power_steps) if kind == "spectral" else {}
        opt = go.MACRO([{"params": hidden_p, "manifold": kind}, {"params": rest_p, "manifold": None}],
                       lr=lr, momentum=0.95, radius=radius, scale=cfg.scale, **extra, **common)
    elif cfg.optimizer == "muonh":
        opt = go.MuonH(hidden_p, lr=lr, momentum=0.95, **common)
    else:
        opt = go.SSO(hidden_p, lr=lr, momentum=0.95, **common)
    # MuonH/SSO treat every 2-D parameter as a matrix: embedding and LM head go to torch's AdamW
    extra_opts: list[torch.optim.Optimizer] = (
        [] if cfg.optimizer.startswith("macro") else [torch.optim.AdamW(rest_p, **adam_kw)])
    state = opt.state
    manifolds = {n: (kind, state[p]["radius"].detach().clone() if "radius" in state[p] else r0[n])
                 for n, p in hidden}
    by_id = {id(p): n for n, p in hidden}
    names = {(gi, pi): by_id.get(id(p)) for gi, g in enumerate(opt.param_groups)
             for pi, p in enumerate(g["params"])}

    def diagnostics() -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for rec in opt.diagnostics()["params"]:  # type: ignore[attr-defined]
            n = names.get((rec["group"], rec["index"]))
            if n is not None:
                out[n] = {k: float(rec[k]) for k in DIAG_KEYS if k in rec}
        return out

    return OptimizerBundle([opt, *extra_opts], manifolds, diagnostics, diag_switch=_diag_switch(opt))


def _diag_switch(opt: torch.optim.Optimizer) -> Callable[[bool], None]:
    """Turn the optimizer's in-step diagnostics on for the steps that log them (they cost time)."""
    def switch(on: bool) -> None:
        opt.diagnostics_mode = "cheap" if on else None  # type: ignore[attr-defined]
    return switch


#: Figures taken from the optimizer's own diagnostics (gpu_impl.optim); the feasibility and the
#: rotation angle are computed here independently (float64, exact σ₁).
DIAG_KEYS = ("tangency", "d_fro", "update_rel", "gap", "power_residual", "pair_bound", "pair_fallback")


def ns_dtype_in_use(optimizers: Sequence[Any]) -> str | None:
    """The concrete msign compute dtype the gpu_impl optimizers of a run resolved (``"auto"``
    replaced by the hardware's choice; ``None`` when no optimizer has one, e.g. adamw/muon)."""
    return next((g["ns_dtype"] for o in optimizers for g in o.param_groups if g.get("ns_dtype") is not None), None)


def msign_dtype_of(cfg: TrainConfig) -> str | None:
    """The msign compute dtype of a run (None: the parameter dtype)."""
    return None if cfg.msign_dtype == "param" else cfg.msign_dtype


# --------------------------------------------------------------------------------------------
# diagnostics


def matrix_figures(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor],
                   manifolds: dict[str, tuple[str, torch.Tensor | float]]) -> dict[str, dict[str, float]]:
    """Per-matrix rotation angle ∠(W_t, W_{t+1}) and, for constrained matrices, the feasibility
    c_M(W_{t+1}) of MATH.md §4 — both in float64, batched over equal shapes (one sync).

    The angle is atan2(‖W₁ − ⟨W₁, Ŵ₀⟩Ŵ₀‖_F, ⟨W₁, Ŵ₀⟩) (accurate for small angles); the
    feasibility uses :mod:`gpu_impl.manifolds` (exact σ₁ on the spectral sphere).
    """
    from manifold_oracle.gpu_impl.manifolds import make_manifold

    groups: dict[tuple, list[str]] = {}
    for k, w in after.items():
        kind = manifolds[k][0] if k in manifolds else None
        groups.setdefault((kind, tuple(w.shape)), []).append(k)
    out: dict[str, dict[str, float]] = {}
    for (kind, _), names in groups.items():
        W0 = torch.stack([before[k] for k in names]).double()
        W1 = torch.stack([after[k].detach() for k in names]).double()
        n0 = torch.linalg.vector_norm(W0, dim=(-2, -1), keepdim=True)
        W0h = W0 / n0
        c = (W1 * W0h).sum(dim=(-2, -1), keepdim=True)
        sin = torch.linalg.vector_norm(W1 - c * W0h, dim=(-2, -1))
        cols = [torch.atan2(sin, c[..., 0, 0])]
        if kind is not None:
            rad = [manifolds[k][1] for k in names]
            # 0-d radii (spheres) stack to (B,); per-row/column radii (oblique) to (B, count)
            r = torch.stack([torch.as_tensor(x, dtype=torch.float64) for x in rad]).to(W1.device)
            cols.append(make_manifold(kind, r).violation(W1))
        vals = torch.stack(cols, dim=1).cpu().tolist()
        for k, v in zip(names, vals):
            out[k] = {"rotation_angle": v[0]}
            if kind is not None:
                out[k]["feasibility"] = v[1]
    return out


@contextlib.contextmanager
def activation_rms_hooks(model: Decoder) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks recording the RMS of each block's attention, MLP and block output.

    Yields a dict that every forward pass overwrites: name → 0-d float tensor.
    """
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            with torch.no_grad():
                store[name] = out.detach().float().pow(2).mean().sqrt()
        return hook

    for i, blk in enumerate(model.blocks):
        handles.append(blk.attn.register_forward_hook(make(f"block{i}.attn")))
        handles.append(blk.mlp.register_forward_hook(make(f"block{i}.mlp")))
        handles.append(blk.register_forward_hook(make(f"block{i}")))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _grad_norm(params: list[nn.Parameter]) -> float:
    gs = [p.grad.detach().double().flatten() for p in params if p.grad is not None]
    if not gs:
        return 0.0
    return float(torch.linalg.vector_norm(torch.cat(gs)))


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Warmup (linear from 1/warmup) then constant or linear decay to 0.1 (HyperP-style)."""
    if cfg.warmup and step <= cfg.warmup:
        return step / cfg.warmup
    if cfg.schedule == "linear":
        span = max(1, cfg.steps - cfg.warmup)
        frac = (step - cfg.warmup) / span
        return 1.0 - 0.9 * min(1.0, max(0.0, frac))
    return 1.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInputError(f"bad device {name!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device cuda requested but CUDA is not available")
    return dev


# --------------------------------------------------------------------------------------------
# the run


def run_training(cfg: TrainConfig, *, rank: int = 0, world_size: int = 1,
                 corpus: ByteCorpus | None = None) -> TrainResult:
    """Train per ``cfg``; write the outputs (rank 0, when ``cfg.out``) and return the records.

    With ``world_size > 1`` the default process group must be initialised; gradients are
    averaged by DDP, so the run is the single-process run on the same global batch.
    """
    cfg.validate()
    if cfg.batch % world_size:
        raise InvalidInputError(f"batch {cfg.batch} is not divisible by world_size {world_size}")
    device = resolve_device(cfg.device)
    if world_size > 1 and cfg.device == "auto" and device.type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
    dtype = DTYPES[cfg.dtype]
    param_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if dtype == torch.bfloat16 else contextlib.nullcontext())

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    try:
        return _run(cfg, rank, world_size, corpus, device, param_dtype, autocast)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        if cfg.threads is not None:
            torch.set_num_threads(prev_threads)


def _run(cfg: TrainConfig, rank: int, world_size: int, corpus: ByteCorpus | None,
         device: torch.device, param_dtype: torch.dtype, autocast: Any) -> TrainResult:
    if corpus is None:
        corpus = load_corpus(cfg.corpus, max_bytes=cfg.max_corpus_bytes)
    model = build_model(cfg, device, param_dtype)
    bundle = build_optimizer(cfg, model)
    net: nn.Module = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    hidden = dict(model.hidden_matrices())
    all_params = list(model.parameters())

    train_gen = torch.Generator().manual_seed(int(cfg.seed) + 1)
    val_set = fixed_batches(corpus.val, cfg.val_batches, cfg.batch, cfg.seq_len, VAL_SEED)
    local = cfg.batch // world_size
    lo, hi = rank * local, (rank + 1) * local

    out = Path(cfg.out) if (cfg.out and rank == 0) else None
    jsonl = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": asdict(cfg),
            "resolved": {"norm": cfg.resolved_norm(), "lr": cfg.resolved_lr(),
                         "device": str(device), "param_dtype": str(param_dtype),
                         "world_size": world_size, "ns_dtype": ns_dtype_in_use(bundle.optimizers)},
            "model": model.cfg.to_dict() | {"num_parameters": model.num_parameters()},
            "corpus": corpus.describe(),
            "manifolds": {k: {"kind": v[0], "radius": _as_json(v[1])} for k, v in bundle.manifolds.items()},
            "optimizers": [type(o).__name__ for o in bundle.optimizers],
            "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor(),
        }
        (out / "config.json").write_text(json.dumps(meta, indent=2))
        jsonl = (out / "metrics.jsonl").open("w")

    def evaluate() -> float:
        model.eval()
        tot = 0.0
        with torch.no_grad(), autocast:
            for x, y in val_set:
                tot += float(lm_loss(model(x.to(device)), y.to(device)))
        model.train()
        return tot / len(val_set)

    records: list[dict[str, Any]] = []

    def emit(rec: dict[str, Any]) -> None:
        records.append(rec)
        if jsonl is not None:
            jsonl.write(json.dumps(rec) + "\n")
            jsonl.flush()

    emit({"step": 0, "val_loss": evaluate(), "tokens": 0, "time_s": 0.0})
    bar = None
    if cfg.progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=cfg.optimizer, unit="step", file=sys.stderr, leave=False)
    t0 = time.perf_counter()
    failed = False
    with activation_rms_hooks(model) as act:
        for step in range(1, cfg.steps + 1):
            factor = lr_factor(cfg, step)
            bundle.set_lr_factor(factor)
            x, y = sample_batch(corpus.train, cfg.batch, cfg.seq_len, train_gen)
            x, y = x[lo:hi].to(device), y[lo:hi].to(device)
            diag = step % cfg.diag_every == 0 or step == cfg.steps
            before = {k: p.detach().clone() for k, p in hidden.items()} if diag else {}
            bundle.want_diagnostics(diag)
            bundle.zero_grad()
            with autocast:
                loss = lm_loss(net(x), y)
            loss.backward()
            gnorm = _grad_norm(all_params)
            # DDP averages the gradients; the logged loss is the global-batch mean.
            loss_val = loss.detach().double()
            if world_size > 1:
                import torch.distributed as dist

                dist.all_reduce(loss_val)
                loss_val /= world_size
            lv = float(loss_val)
            if not math.isfinite(lv) or not math.isfinite(gnorm):
                emit({"step": step, "train_loss": lv, "grad_norm": gnorm, "error": "non-finite loss or gradient"})
                failed = True
                break
            bundle.step()
            rec: dict[str, Any] = {
                "step": step,
                "lr": bundle.optimizers[0].param_groups[0]["lr"],
                "train_loss": lv,
                "grad_norm": gnorm,
                "tokens": step * cfg.batch * cfg.seq_len,
                "time_s": time.perf_counter() - t0,
            }
            if step % cfg.val_every == 0 or step == cfg.steps:
                rec["val_loss"] = evaluate()
            if diag:
                tang = bundle.diagnostics()
                mats = matrix_figures(before, hidden, bundle.manifolds)
                for k, m in mats.items():
                    m.update(tang.get(k, {}))
                rec["matrices"] = {k: mats[k] for k in hidden}
                rec["activation_rms"] = {k: float(v) for k, v in act.items()}
            emit(rec)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{lv:.3f}", val=f"{rec.get('val_loss', float('nan')):.3f}")
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    if jsonl is not None:
        jsonl.close()
    train_losses = [r["train_loss"] for r in records if "train_loss" in r]
    val = [r for r in records if "val_loss" in r]
    done = len(train_losses)
    summary = {
        "optimizer": cfg.optimizer,
        "norm": cfg.resolved_norm(),
        "steps": done,
        "failed": failed,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_train_loss_mean10": (sum(train_losses[-10:]) / len(train_losses[-10:])) if train_losses else None,
        "initial_val_loss": val[0]["val_loss"],
        "final_val_loss": val[-1]["val_loss"],
        "wall_time_s": wall,
        "tokens_per_s": done * cfg.batch * cfg.seq_len / wall if wall > 0 else None,
        "num_parameters": model.num_parameters(),
    }
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        plot_curves(records, out / "curves.png", title=f"{cfg.optimizer} ({cfg.resolved_norm()} norm)")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(records, summary, state)


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy of logits ``(..., V)`` against ``y`` ``(...)`` (fp32 for half inputs)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _as_json(v: torch.Tensor | float) -> float | list[float]:
    if isinstance(v, torch.Tensor):
        return float(v) if v.numel() == 1 else [float(a) for a in v.flatten().tolist()]
    return float(v)


# --------------------------------------------------------------------------------------------
# plots


def _plot_max_residual(a: Any, diag: list[dict[str, Any]], key: str, title: str, empty: str) -> None:
    """Semilog plot of the per-step maximum of ``key`` over the matrices (NaN-free steps only)."""
    pts = [(r["step"], max((m[key] for m in r["matrices"].values() if m.get(key) is not None),
                           default=float("nan"))) for r in diag]
    pts = [(s, v) for s, v in pts if v == v]
    if pts:
        a.semilogy([s for s, _ in pts], [max(v, 1e-18) for _, v in pts], lw=0.8)
        a.set(title=title)
    else:
        a.text(0.5, 0.5, empty, ha="center", va="center", transform=a.transAxes)
        a.set(title=key)
    a.set(xlabel="step")


def plot_curves(records: list[dict[str, Any]], path: Path, *, title: str = "") -> None:
    """Write a 2×3 figure of the run's curves to ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r for r in records if "train_loss" in r]
    vals = [r for r in records if "val_loss" in r]
    diag = [r for r in steps if "matrices" in r]
    fig, ax = plt.subplots(2, 3, figsize=(14, 7.5))
    a = ax[0, 0]
    a.plot([r["step"] for r in steps], [r["train_loss"] for r in steps], lw=0.8, label="train")
    a.plot([r["step"] for r in vals], [r["val_loss"] for r in vals], "o-", ms=3, label="validation")
    a.set(xlabel="step", ylabel="loss (nats/byte)", title="loss")
    a.legend()
    a = ax[0, 1]
    a.plot([r["step"] for r in steps], [r["grad_norm"] for r in steps], lw=0.8)
    a.set(xlabel="step", ylabel="‖∇‖_F", title="global gradient norm", yscale="log")
    a = ax[0, 2]
    if diag:
        names = list(diag[0]["matrices"])
        for n in names:
            a.plot([r["step"] for r in diag], [r["matrices"][n]["rotation_angle"] for r in diag], lw=0.6,
                   label=n)
        a.legend(fontsize=5, ncol=2 if len(names) > 8 else 1, title="matrix", title_fontsize=6)
    a.set(xlabel="step", ylabel="θ_t (rad)", title="per-matrix rotation angle")
    a = ax[1, 0]
    _plot_max_residual(a, diag, "feasibility", "max feasibility residual c_M", "unconstrained run")
    _plot_max_residual(ax[1, 1], diag, "tangency", "max tangency residual v_M", "no tangency diagnostics")
    a = ax[1, 2]
    if diag:
        for n in diag[0]["activation_rms"]:
            if "." not in n:
                a.plot([r["step"] for r in diag], [r["activation_rms"][n] for r in diag], lw=0.8, label=n)
        a.legend(fontsize=7)
    a.set(xlabel="step", ylabel="RMS", title="block output RMS")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="manifold-oracle train",
                                description="Train the small byte-level decoder with a chosen optimizer.")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--model", dest="preset", choices=sorted(PRESETS), default=d.preset,
                   help="size preset (tiny ≈ 0.49M parameters, 2 layers)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--norm", choices=NORM_VARIANTS, default=None,
                   help="default: parameter_free for macro-*, learnable otherwise")
    p.add_argument("--post-attn-norm", default=d.post_attn_norm, choices=("stream", "branch"),
                   help="parameter_free variant: where the post-attention RMSNorm sits (gpu_impl.model)")
    p.add_argument("--final-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="RMSNorm before the LM head (default: only in the learnable variant)")
    p.add_argument("--depth-mup", action="store_true", help="residual multiplier 1/sqrt(2L)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument("--lr", type=float, default=None, help=f"hidden-matrix LR (defaults: {DEFAULT_LR})")
    p.add_argument("--adam-lr", type=float, default=d.adam_lr, help="LR of the AdamW-handled parameters")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="decoupled WD of the AdamW-handled parameters (and of the hidden matrices under "
                        "muon/adamw); constrained matrices never decay")
    p.add_argument("--schedule", choices=("constant", "linear"), default=d.schedule)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto (cuda if available), cpu, cuda, cuda:1 …")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype,
                   help="float32/float64: parameters and compute; bfloat16: fp32 parameters + bf16 autocast")
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--val-batches", type=int, default=d.val_batches)
    p.add_argument("--diag-every", type=int, default=d.diag_every)
    p.add_argument("--corpus", default=None, help="a text file (default: the embedded stdlib corpus)")
    p.add_argument("--max-corpus-bytes", type=int, default=d.max_corpus_bytes, help="0 = no cap")
    p.add_argument("--out", default=d.out, help="output directory (an existing non-empty one is refused "
                   "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing non-empty --out directory (its files are replaced)")
    p.add_argument("--radius", default=d.radius,
                   help="MACRO radius rule: init (norm at construction), mup (MATH.md §4.9) or a number")
    p.add_argument("--scale", default=d.scale, choices=("one", "radius", "kj", "moonlight", "spectral_mup"),
                   help="MACRO step scale s (MATH.md §7.3)")
    p.add_argument("--msign-dtype", default=d.msign_dtype, choices=("bfloat16", "float32", "float64", "param", "auto"),
                   help="compute dtype of the Newton–Schulz msign (gpu_impl optimizers); param = parameter dtype; "
                        "auto (default) = the hardware's native one, chosen once per process (bf16 on "
                        "CUDA/AMX CPUs, else float32, where bf16 matmul is emulated; see `manifold-oracle info`; "
                        "MANIFOLD_ORACLE_NS_DTYPE overrides)")
    p.add_argument("--theta", default=d.theta, choices=THETA_SOURCES,
                   help="macro-spectral top singular pair: certified (default: warm-started Chebyshev/block Krylov "
                        "iteration until its a-posteriori bounds hold (angle <= sqrt(eps), sigma_1 <= eps), "
                        "float64 cycles and then the exact pair where they cannot; feasibility as tight as exact), "
                        "exact (SVD every step) or power (fixed steps, no certificate; measured c_S <= 1.1e-4 "
                        "over 300 tiny-model steps)")
    p.add_argument("--power-steps", type=int, default=d.power_steps,
                   help="power-iteration steps per call with --theta power")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the run (default: torch's; use 1 on a busy machine)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def config_from_args(argv: Sequence[str]) -> TrainConfig:
    ns = vars(_parser().parse_args(list(argv)))
    ns.pop("overwrite", None)  # a CLI safeguard, not part of the run's configuration
    return TrainConfig(**ns)


def refuse_overwrite(args: list[str]) -> str | None:
    """The message refusing an existing non-empty ``--out`` directory (None if allowed)."""
    if "--overwrite" in args:
        return None
    out: str | None = TrainConfig().out
    for i, a in enumerate(args):
        if a == "--out" and i + 1 < len(args):
            out = args[i + 1]
        elif a.startswith("--out="):
            out = a.split("=", 1)[1]
    if out and Path(out).is_dir() and any(Path(out).iterdir()):
        return (f"manifold-oracle train: output directory {out!r} already holds a run; pass --overwrite to "
                "replace it or choose another --out")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """One-process training (``manifold-oracle train`` without ``--nproc``; the command itself is
    :mod:`gpu_impl.train_cli`): 0 success, 1 the run diverged, 2 could not run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("-h", "--help") for a in args):
        refusal = refuse_overwrite(args)
        if refusal:
            print(refusal, file=sys.stderr)
            return 2
    try:
        cfg = config_from_args(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        res = run_training(cfg)
    except OracleError as exc:
        print(f"manifold-oracle train: {exc}", file=sys.stderr)
        return 2
    s = res.summary
    print(f"{cfg.optimizer}: {s['steps']} steps, train loss {s['final_train_loss']:.4f} "
          f"(mean of last 10: {s['final_train_loss_mean10']:.4f}), val loss "
          f"{s['initial_val_loss']:.4f} -> {s['final_val_loss']:.4f}, {s['tokens_per_s']:.0f} tokens/s"
          + (f"; outputs in {cfg.out}" if cfg.out else ""))
    return 1 if s["failed"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
