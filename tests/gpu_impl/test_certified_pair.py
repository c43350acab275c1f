"""The certified top singular pair of the spectral sphere (``theta="certified"``; issue 16 item 1).

The a-posteriori bound ρ/(ĝ − ρ) (gpu_impl.manifolds.SpectralSphere.pair_bound) must dominate the
pair's actual angle to the exact pair (float64 SVD, computed here independently of the code under
test), on fresh and warm-started iterations in float32 and float64; matrices whose bound cannot be
met get the exact pair (``fallback``); MACRO reports the bound in its diagnostics.
"""

from __future__ import annotations

import math

import pytest
import torch

from manifold_oracle.gpu_impl.manifolds import SpectralSphere
from manifold_oracle.gpu_impl.optim import MACRO
from manifold_oracle.reference.errors import InvalidInputError


def _sin(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sin∠(a, b) of unit vectors, as ‖a − (aᵀb)b‖ (no 1 − cos² cancellation)."""
    a, b = a.double(), b.double()
    return torch.linalg.vector_norm(a - (a * b).sum(-1, keepdim=True) * b, dim=-1)


def _exact_error(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    U, s, Vh = torch.linalg.svd(W.double())
    err = torch.maximum(_sin(u, U[..., :, 0]), _sin(v, Vh[..., 0, :]))
    return err, (s[..., 0] - s[..., 1]) / s[..., 0]


def _with_gap(gen: torch.Generator, shape: tuple[int, ...], gap: float, dtype: torch.dtype) -> torch.Tensor:
    """Random matrices with σ = (1, 1 − gap, then a decaying tail), float64 SVD factors."""
    *batch, m, n = shape
    k = min(m, n)
    U = torch.linalg.qr(torch.randn(*batch, m, k, generator=gen, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(*batch, n, k, generator=gen, dtype=torch.float64)).Q
    s = torch.cat([torch.tensor([1.0, 1.0 - gap]), (1.0 - gap) * torch.linspace(0.95, 0.1, k - 2)]).to(torch.float64)
    return ((U * s) @ V.mT).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bound_dominates_the_error_along_a_warm_started_sequence(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    man = SpectralSphere(1.0, theta="certified", power_steps=2)
    W = _with_gap(gen, (4, 40, 24), 0.05, dtype)
    state: dict[str, torch.Tensor] = {}
    u = torch.finfo(dtype).eps / 2
    worst = 0.0
    for t in range(12):
        pair = man.top_pair(W, state, steps=0 if t else None)
        err, gap = _exact_error(W, pair.u, pair.v)
        assert pair.bound is not None and pair.fallback is not None
        # Wedin on the computed residual; the residual itself carries ~√n·u rounding (relative), so
        # the bound may be exceeded by that over the gap
        slack = 8 * math.sqrt(40) * u / gap
        assert bool((err <= pair.bound.double() + slack).all()), (t, err, pair.bound)
        worst = max(worst, float((err / (pair.bound.double() + slack)).max()))
        tol = math.sqrt(torch.finfo(dtype).eps)
        assert bool(((pair.bound <= tol) | pair.fallback).all())  # met, or the exact pair was used
        W = W + 0.01 * _with_gap(gen, (4, 40, 24), 0.3, dtype)  # a small step: the warm start helps
    assert worst < 1.0


def test_repeated_top_singular_value_falls_back_to_the_exact_pair() -> None:
    gen = torch.Generator().manual_seed(1)
    W = _with_gap(gen, (2, 20, 12), 0.0, torch.float64)  # σ₁ = σ₂: no gap, no certificate
    pair = SpectralSphere(1.0, theta="certified").top_pair(W)
    assert bool(pair.fallback.all())
    s = torch.linalg.svdvals(W)
    torch.testing.assert_close(pair.sigma, s[..., 0], rtol=0, atol=1e-14)
    assert bool(torch.isinf(pair.bound).all())  # the gap is 0: the bound says nothing, honestly


def test_well_separated_pair_is_certified_without_fallback() -> None:
    gen = torch.Generator().manual_seed(2)
    W = _with_gap(gen, (3, 30, 20), 0.5, torch.float64)
    # the residual's rounding floor is ~√n·u/gap ≈ 1e-14 in float64: 1e-10 is reachable in a few steps
    man = SpectralSphere(1.0, theta="certified", cert_tol=1e-10)
    pair = man.top_pair(W)
    assert not bool(pair.fallback.any()) and bool((pair.bound <= 1e-10).all())
    err, _ = _exact_error(W, pair.u, pair.v)
    assert bool((err <= pair.bound + 1e-14).all())


def test_options_are_validated() -> None:
    with pytest.raises(InvalidInputError):
        SpectralSphere(1.0, theta="certified", block=1)
    with pytest.raises(InvalidInputError):
        SpectralSphere(1.0, theta="certified", cert_max_steps=-1)
    with pytest.raises(InvalidInputError):
        SpectralSphere(1.0, theta="certified", cert_tol=0.0)


def test_macro_reports_the_bound_and_stays_on_the_sphere() -> None:
    gen = torch.Generator().manual_seed(3)
    ps = [torch.nn.Parameter(_with_gap(gen, (24, 16), 0.2, torch.float64)) for _ in range(2)]
    opt = MACRO(ps, manifold="spectral", theta="certified", msign="exact", lr=0.02, diagnostics=True)
    for _ in range(5):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        opt.step()
    recs = opt.diagnostics()["params"]
    assert all("pair_bound" in r and "pair_fallback" in r for r in recs)
    for r, p in zip(recs, ps):
        assert float(r["pair_bound"]) <= math.sqrt(2.0**-52) or float(r["pair_fallback"]) == 1.0
        # rescale retraction by the certified σ̂₁(Y): σ̂₁ ≥ σ₁(1 − sin²θ), so feasibility ≤ bound²
        # (float64: ≤ 1.5e-8² ≈ 2e-16) plus rounding
        R = float(opt.state[p]["radius"])
        assert abs(float(torch.linalg.matrix_norm(p.detach(), ord=2)) - R) <= 1e-13 * R
