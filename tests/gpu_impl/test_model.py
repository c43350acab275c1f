"""The small Qwen3-like decoder: shapes, parameter counts, causality, RoPE, norm variants."""

from __future__ import annotations

import math

import pytest
import torch

from manifold_oracle.gpu_impl.model import (NORM_VARIANTS, PRESETS, Block, Decoder, ModelConfig, RMSNorm,
                            RotaryEmbedding, make_config)
from manifold_oracle.reference.errors import InvalidInputError

# fp64 rounding unit; the model's forward passes in the checks below are a few dozen dependent
# float64 operations on O(1) values, so identities that hold exactly in real arithmetic are
# checked to 1e3·u ≈ 1.1e-13 (growth factor 1e3 covers the ≤ ~100-term dot products × depth).
U64 = 2.0 ** -53
TOL64 = 1e3 * U64


def _model(norm: str, seed: int = 0, **kw: object) -> Decoder:
    cfg = make_config("tiny", norm=norm, **kw)
    return Decoder(cfg, generator=torch.Generator().manual_seed(seed)).double()


def _expected_param_count(cfg: ModelConfig) -> int:
    """Closed form: embedding + head V·d each; per block q,o: d·H·hd; k,v: d·KV·hd;
    SwiGLU 3·d·ffn; learnable gains: 2 pre-norms of d, QK-norm 2·hd, final norm d."""
    d, hd, V = cfg.width, cfg.head_dim, cfg.vocab_size
    per = 2 * d * cfg.heads * hd + 2 * d * cfg.n_kv_heads * hd + 3 * d * cfg.ffn
    gains = 0
    if cfg.norm == "learnable":
        per += 2 * d + (2 * hd if cfg.qk_norm else 0)
        gains = d
    return 2 * V * d + cfg.depth * per + gains


@pytest.mark.parametrize("norm", NORM_VARIANTS)
def test_shapes_and_parameter_count(norm: str) -> None:
    m = _model(norm)
    x = torch.randint(0, 256, (3, 17), generator=torch.Generator().manual_seed(1))
    assert m(x).shape == (3, 17, 256)
    assert m.num_parameters() == _expected_param_count(m.cfg)
    # 14 hidden matrices for 2 blocks (q, k, v, o, gate, up, down), all in (d_out, d_in)
    hidden = dict(m.hidden_matrices())
    assert len(hidden) == 7 * 2
    assert hidden["blocks.0.attn.q.weight"].shape == (128, 128)
    assert hidden["blocks.0.mlp.up.weight"].shape == (384, 128)
    assert hidden["blocks.0.mlp.down.weight"].shape == (128, 384)


def test_tiny_preset_is_about_half_a_million_parameters() -> None:
    n = Decoder(PRESETS["tiny"]).num_parameters()
    assert PRESETS["tiny"].depth == 2
    assert 0.45e6 <= n <= 0.55e6, n


@pytest.mark.parametrize("norm", NORM_VARIANTS)
def test_causality(norm: str) -> None:
    """Changing token j leaves logits at positions < j bit-identical and changes position j."""
    m = _model(norm).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (2, 24), generator=g)
    j = 13
    x2 = x.clone()
    x2[:, j] = (x2[:, j] + 1) % 256
    with torch.no_grad():
        a, b = m(x), m(x2)
    assert torch.equal(a[:, :j], b[:, :j])
    assert (a[:, j] - b[:, j]).abs().max() > 1e-6


def test_parameter_free_variant_has_no_norm_parameters() -> None:
    m = _model("parameter_free")
    names = {n for n, _ in m.named_parameters()}
    hidden = {n for n, _ in m.hidden_matrices()}
    assert names - hidden == {"embed.weight", "lm_head.weight"}
    norms = [mod for mod in m.modules() if isinstance(mod, RMSNorm)]
    # one post-attention norm per block + QK-norm (q and k) per block; no final norm by default
    assert len(norms) == 3 * m.cfg.depth
    assert all(len(list(mod.parameters())) == 0 and mod.weight is None for mod in norms)
    assert m.final_norm is None


def test_learnable_variant_has_gains_everywhere() -> None:
    m = _model("learnable")
    gains = {n for n, p in m.named_parameters() if p.ndim == 1}
    expected = {"final_norm.weight"} | {
        f"blocks.{i}.{s}.weight" for i in range(2)
        for s in ("attn_norm", "mlp_norm", "attn.q_norm", "attn.k_norm")}
    assert gains == expected


def test_none_variant_keeps_only_qk_norm_and_can_drop_it() -> None:
    m = _model("none")
    assert sum(isinstance(mod, RMSNorm) for mod in m.modules()) == 2 * m.cfg.depth
    m2 = _model("none", qk_norm=False)
    assert not any(isinstance(mod, RMSNorm) for mod in m2.modules())


def test_rmsnorm_parameter_free_closed_form() -> None:
    """y = h/sqrt(mean h² + ε) ⇒ RMS(y)² = ms/(ms + ε) exactly (independent closed form)."""
    g = torch.Generator().manual_seed(3)
    h = torch.randn(5, 7, 64, generator=g, dtype=torch.float64) * 3.0
    eps = 1e-6
    y = RMSNorm(64, learnable=False, eps=eps)(h)
    ms = h.pow(2).mean(-1)
    assert torch.allclose(y.pow(2).mean(-1), ms / (ms + eps), rtol=TOL64, atol=0)
    # learnable gains multiply elementwise
    n = RMSNorm(64, learnable=True, eps=eps).double()
    with torch.no_grad():
        n.weight.copy_(torch.linspace(0.5, 2.0, 64, dtype=torch.float64))
    assert torch.allclose(n(h), y * n.weight, rtol=TOL64, atol=0)


def test_rope_is_a_rotation_with_relative_positions() -> None:
    """RoPE preserves norms and ⟨R_i q, R_j k⟩ depends only on i − j (fp64)."""
    rope = RotaryEmbedding(32, 64, 10000.0)
    g = torch.Generator().manual_seed(4)
    q = torch.randn(32, generator=g, dtype=torch.float64)
    k = torch.randn(32, generator=g, dtype=torch.float64)
    Q = rope(q.expand(1, 1, 64, 32))[0, 0]
    K = rope(k.expand(1, 1, 64, 32))[0, 0]
    assert torch.allclose(Q.norm(dim=-1), q.norm().expand(64), rtol=TOL64)
    assert torch.equal(Q[0], q)  # position 0: identity rotation (cos 0 = 1, sin 0 = 0)
    for i, j, s in [(5, 2, 17), (30, 30, 9), (3, 11, 40)]:
        assert math.isclose(float(Q[i] @ K[j]), float(Q[i + s] @ K[j + s]), rel_tol=1e-12, abs_tol=1e-12)
    # the lowest frequency pair rotates by θ = 1 rad per position (base^0 = 1)
    e0 = torch.zeros(32, dtype=torch.float64)
    e0[0] = 1.0
    r = rope(e0.expand(1, 1, 3, 32))[0, 0]
    assert math.isclose(float(r[2, 0]), math.cos(2.0), abs_tol=TOL64)
    assert math.isclose(float(r[2, 16]), math.sin(2.0), abs_tol=TOL64)


def _zero(block: Block, which: str) -> None:
    with torch.no_grad():
        (block.mlp.down if which == "mlp" else block.attn.o).weight.zero_()


def test_post_attention_norm_placements() -> None:
    """parameter_free/stream: with the MLP branch zeroed, every token of the block output has RMS
    sqrt(ms/(ms+ε)) ≈ 1; branch: the increment (out − h) has that RMS instead."""
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, 9, 128, generator=g, dtype=torch.float64) * 2.5
    for mode in ("stream", "branch"):
        blk = Block(make_config("tiny", norm="parameter_free", post_attn_norm=mode)).double()
        _zero(blk, "mlp")
        with torch.no_grad():
            out = blk(h)
        z = out if mode == "stream" else out - h
        rms = z.pow(2).mean(-1).sqrt()
        # ε = 1e-6 against ms = O(1): RMS = 1 − O(ε/2)
        assert torch.allclose(rms, torch.ones_like(rms), atol=1e-6), (mode, rms)


def test_depth_mup_multiplier() -> None:
    """The residual increment is multiplied by exactly 1/sqrt(2L) (L = 2 → 1/2)."""
    g = torch.Generator().manual_seed(6)
    h = torch.randn(2, 9, 128, generator=g, dtype=torch.float64)
    cfg = make_config("tiny", norm="none")
    b1 = Block(cfg).double()
    b2 = Block(make_config("tiny", norm="none", depth_mup=True)).double()
    b2.load_state_dict(b1.state_dict())
    for b in (b1, b2):
        _zero(b, "mlp")
    with torch.no_grad():
        d1, d2 = b1(h) - h, b2(h) - h
    assert torch.allclose(d2, d1 / math.sqrt(2 * cfg.depth), rtol=1e-12, atol=TOL64)


def test_initialisation_is_seeded_and_scaled() -> None:
    a, b, c = _model("learnable", 7), _model("learnable", 7), _model("learnable", 8)
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(p, q), n
        if p.ndim == 2:
            assert not torch.equal(p, r), n
    # hidden entries N(0, 1/d_in): E‖W‖²_F = d_out; 128·384 samples → relative sd sqrt(2/N) ≈ 0.7 %
    W = dict(a.hidden_matrices())["blocks.0.mlp.up.weight"]
    assert abs(float(W.detach().pow(2).sum()) / W.shape[0] - 1.0) < 6 * math.sqrt(2 / W.numel())


@pytest.mark.parametrize("kw", [dict(norm="rms"), dict(width=130, heads=4), dict(heads=3),
                                dict(post_attn_norm="after"), dict(kv_heads=3), dict(depth=0)])
def test_bad_config_raises(kw: dict) -> None:
    with pytest.raises(InvalidInputError):
        make_config("tiny", **kw)


def test_bad_tokens_raise() -> None:
    m = _model("none")
    with pytest.raises(InvalidInputError):
        m(torch.zeros(2, 3, 4, dtype=torch.int64))
    with pytest.raises(InvalidInputError):
        m(torch.zeros(1, 600, dtype=torch.int64))  # longer than max_seq_len 512


def test_grouped_query_attention_runs() -> None:
    m = Decoder(make_config("tiny", kv_heads=2)).double()
    assert dict(m.hidden_matrices())["blocks.0.attn.k.weight"].shape == (64, 128)
    assert m(torch.zeros(1, 5, dtype=torch.int64)).shape == (1, 5, 256)
