"""A small Qwen3-like byte-level decoder for constrained-training experiments.

Architecture (per block): causal multi-head attention with rotary position embeddings (RoPE,
rotate-half convention of Llama/Qwen), optional grouped KV heads, per-head QK-norm, and a SwiGLU
MLP ``down(silu(gate(x)) * up(x))``. Every linear map is bias-free and stored in the package's
one layout, ``weight.shape == (d_out, d_in)`` (MATH.md §1.1), which is also ``nn.Linear``'s.

Normalisation variants (``ModelConfig.norm``):

* ``"learnable"`` — standard pre-norm: ``h ← h + m·Attn(N₁(h)); h ← h + m·MLP(N₂(h))`` with
  learnable RMSNorm gains γ (MATH.md §10.1), a learnable final norm, and learnable QK-norm gains.
* ``"parameter_free"`` — the constrained-training variant of MATH.md §10.1 / MACRO paper Fig. 3:
  every learnable RMSNorm is removed; a parameter-free RMSNorm (γ = 1) is kept *after attention*
  and QK-norm is kept (parameter-free). Where exactly "after the attention block" sits is not
  public, so it is a switch (``post_attn_norm``, reconstructed):

  - ``"stream"`` (default): ``h ← N(h + m·Attn(h)); h ← h + m·MLP(h)`` — the residual stream is
    renormalised after the attention residual add, so the MLP input has RMS exactly 1 (the
    paper's stated purpose, "an input scale ‖vec(X)‖_RMS = Θ(1) for each layer").
  - ``"branch"``: ``h ← h + m·N(Attn(h)); h ← h + m·MLP(h)`` — only the attention branch output
    is normalised.

  A parameter-free final norm before the LM head is off by default (the paper names only the
  post-attention norm) and can be switched on with ``final_norm=True``.
* ``"none"`` — no RMSNorm in the blocks; QK-norm is governed by ``qk_norm`` alone
  (parameter-free).

Depth-μP (MATH.md §10.3, HyperP): with ``depth_mup=True`` every residual branch is multiplied by
m = 1/√(2L); otherwise m = 1.

Initialisation: token embedding N(0, 1) (input RMS 1), hidden linears N(0, 1/d_in) (so
E‖W‖²_F = d_out, the radius convention R = √d_out of MATH.md §4.9), LM head N(0, 1/d).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from manifold_oracle.reference.errors import InvalidInputError

__all__ = [
    "ModelConfig",
    "PRESETS",
    "NORM_VARIANTS",
    "RMSNorm",
    "RotaryEmbedding",
    "Attention",
    "SwiGLU",
    "Block",
    "Decoder",
    "make_config",
]

#: Normalisation variants of the model (see module docstring).
NORM_VARIANTS: tuple[str, ...] = ("learnable", "parameter_free", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of :class:`Decoder`.

    ``ffn`` is the SwiGLU hidden width; ``kv_heads`` (default: ``heads``) enables grouped-query
    attention; ``max_seq_len`` bounds the RoPE table.
    """

    vocab_size: int = 256
    width: int = 128
    depth: int = 2
    heads: int = 4
    kv_heads: int | None = None
    ffn: int = 384
    max_seq_len: int = 512
    norm: str = "learnable"
    qk_norm: bool = True
    post_attn_norm: str = "stream"
    final_norm: bool | None = None
    depth_mup: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("vocab_size", "width", "depth", "heads", "ffn", "max_seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"ModelConfig.{name} must be a positive int, got {v!r}")
        if self.norm not in NORM_VARIANTS:
            raise InvalidInputError(f"ModelConfig.norm must be one of {NORM_VARIANTS}, got {self.norm!r}")
        if self.post_attn_norm not in ("stream", "branch"):
            raise InvalidInputError(
                f"ModelConfig.post_attn_norm must be 'stream' or 'branch', got {self.post_attn_norm!r}")
        if self.width % self.heads:
            raise InvalidInputError(f"width {self.width} is not divisible by heads {self.heads}")
        if (self.width // self.heads) % 2:
            raise InvalidInputError(f"head_dim {self.width // self.heads} must be even for RoPE")
        kv = self.n_kv_heads
        if kv < 1 or self.heads % kv:
            raise InvalidInputError(f"heads {self.heads} is not a multiple of kv_heads {kv}")
        if not (self.norm_eps > 0 and self.rope_theta > 0):
            raise InvalidInputError("norm_eps and rope_theta must be positive")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def n_kv_heads(self) -> int:
        return self.heads if self.kv_heads is None else int(self.kv_heads)

    @property
    def use_final_norm(self) -> bool:
        """Final norm before the LM head: learnable variant yes; otherwise ``final_norm`` (default off)."""
        if self.final_norm is not None:
            return bool(self.final_norm)
        return self.norm == "learnable"

    def to_dict(self) -> dict:
        return asdict(self)


#: Named sizes. "tiny" is the smallest (≈ 0.49M parameters, 2 layers).
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(width=128, depth=2, heads=4, ffn=384),
    "small": ModelConfig(width=256, depth=4, heads=4, ffn=768),
    "base": ModelConfig(width=512, depth=8, heads=8, ffn=1536),
}


def make_config(preset: str = "tiny", **overrides: object) -> ModelConfig:
    """A preset with overrides (``None`` values are ignored); ``ffn`` defaults to 3·width when
    the width is overridden without an explicit ``ffn``."""
    if preset not in PRESETS:
        raise InvalidInputError(f"unknown model preset {preset!r}; choose from {sorted(PRESETS)}")
    kw = {k: v for k, v in overrides.items() if v is not None}
    if "width" in kw and "ffn" not in kw:
        kw["ffn"] = 3 * int(kw["width"])  # type: ignore[arg-type]
    return replace(PRESETS[preset], **kw)  # type: ignore[arg-type]


class RMSNorm(nn.Module):
    """RMSNorm(h) = γ ⊙ h / sqrt(mean(h²) + eps) over the last dim (MATH.md §10.1).

    ``learnable=False`` is the parameter-free form (γ ≡ 1): the module then has no parameters.
    """

    def __init__(self, dim: int, *, learnable: bool, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.learnable = learnable
        self.weight = nn.Parameter(torch.ones(dim)) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return y * self.weight if self.weight is not None else y

    def extra_repr(self) -> str:
        return f"{self.dim}, learnable={self.learnable}, eps={self.eps}"


class RotaryEmbedding(nn.Module):
    """RoPE tables (rotate-half convention): θ_j = base^(−2j/d), j < d/2; computed in float64.

    The tables are non-persistent buffers, so they never enter ``state_dict`` or an optimizer.
    """

    def __init__(self, head_dim: int, max_seq_len: int, base: float) -> None:
        super().__init__()
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        ang = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv)
        ang = torch.cat([ang, ang], dim=-1)  # (T, head_dim)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, T, head_dim) → rotated x (same shape/dtype)."""
        T = x.shape[-2]
        if T > self.cos.shape[0]:
            raise InvalidInputError(f"sequence length {T} exceeds max_seq_len {self.cos.shape[0]}")
        cos = self.cos[:T].to(x.dtype)
        sin = self.sin[:T].to(x.dtype)
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * cos + rot * sin


class Attention(nn.Module):
    """Causal attention with RoPE and per-head QK-norm; projections q, k, v, o (bias-free)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, hd = cfg.width, cfg.head_dim
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.n_kv_heads, hd
        self.q = nn.Linear(d, cfg.heads * hd, bias=False)
        self.k = nn.Linear(d, self.kv_heads * hd, bias=False)
        self.v = nn.Linear(d, self.kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.heads * hd, d, bias=False)
        learn = cfg.norm == "learnable"
        self.q_norm = RMSNorm(hd, learnable=learn, eps=cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(hd, learnable=learn, eps=cfg.norm_eps) if cfg.qk_norm else None
        self.rope = RotaryEmbedding(hd, cfg.max_seq_len, cfg.rope_theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.heads, self.head_dim)
        k = self.k(x).view(B, T, self.kv_heads, self.head_dim)
        v = self.v(x).view(B, T, self.kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        q, k = self.rope(q), self.rope(k)
        if self.kv_heads != self.heads:
            rep = self.heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, self.heads * self.head_dim))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) ⊙ up(x)) (MATH.md §10.4)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.width, cfg.ffn, bias=False)
        self.up = nn.Linear(cfg.width, cfg.ffn, bias=False)
        self.down = nn.Linear(cfg.ffn, cfg.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """One decoder block; the norm placement follows ``cfg.norm`` (module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.variant = cfg.norm
        self.post_attn_mode = cfg.post_attn_norm
        self.mult = 1.0 / math.sqrt(2 * cfg.depth) if cfg.depth_mup else 1.0
        self.attn = Attention(cfg)
        self.mlp = SwiGLU(cfg)
        if cfg.norm == "learnable":
            self.attn_norm: RMSNorm | None = RMSNorm(cfg.width, learnable=True, eps=cfg.norm_eps)
            self.mlp_norm: RMSNorm | None = RMSNorm(cfg.width, learnable=True, eps=cfg.norm_eps)
            self.post_attn_norm: RMSNorm | None = None
        elif cfg.norm == "parameter_free":
            self.attn_norm = self.mlp_norm = None
            self.post_attn_norm = RMSNorm(cfg.width, learnable=False, eps=cfg.norm_eps)
        else:
            self.attn_norm = self.mlp_norm = self.post_attn_norm = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = self.mult
        if self.attn_norm is not None and self.mlp_norm is not None:  # learnable pre-norm
            h = h + m * self.attn(self.attn_norm(h))
            return h + m * self.mlp(self.mlp_norm(h))
        if self.post_attn_norm is not None:  # parameter-free variant
            if self.post_attn_mode == "stream":
                h = self.post_attn_norm(h + m * self.attn(h))
            else:
                h = h + m * self.post_attn_norm(self.attn(h))
            return h + m * self.mlp(h)
        h = h + m * self.attn(h)
        return h + m * self.mlp(h)


class Decoder(nn.Module):
    """Byte-level decoder: tokens (B, T) int64 → logits (B, T, vocab_size)."""

    def __init__(self, cfg: ModelConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final_norm = (RMSNorm(cfg.width, learnable=cfg.norm == "learnable", eps=cfg.norm_eps)
                           if cfg.use_final_norm else None)
        self.lm_head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise as documented in the module docstring, from ``generator`` if given."""
        self.embed.weight.normal_(0.0, 1.0, generator=generator)
        for _, p in self.hidden_matrices():
            p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]), generator=generator)
        self.lm_head.weight.normal_(0.0, 1.0 / math.sqrt(self.cfg.width), generator=generator)
        for mod in self.modules():
            if isinstance(mod, RMSNorm) and mod.weight is not None:
                mod.weight.fill_(1.0)

    def hidden_matrices(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The 2-D hidden weights (q, k, v, o, gate, up, down of every block), in (d_out, d_in).

        These are the matrices that Muon orthogonalises and MACRO constrains; the embedding,
        LM head and norm gains are the "rest" (AdamW).
        """
        for name, p in self.named_parameters():
            if name.startswith("blocks.") and p.ndim == 2:
                yield name, p

    def other_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter that is not a hidden matrix (embedding, LM head, gains)."""
        hidden = {id(p) for _, p in self.hidden_matrices()}
        for name, p in self.named_parameters():
            if id(p) not in hidden:
                yield name, p

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise InvalidInputError(
                f"tokens must be an int64/int32 tensor of shape (B, T), got {tuple(tokens.shape)} {tokens.dtype}")
        h = self.embed(tokens)
        for blk in self.blocks:
            h = blk(h)
        if self.final_norm is not None:
            h = self.final_norm(h)
        return self.lm_head(h)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy (nats) in float32 or wider."""
        logits = self(tokens)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
