"""The probabilistic rounding models behind the step bounds: ``tolerances.muonh_step_rounding``
(the MuonH step), ``tolerances.macro_frobenius_step_rounding`` (the Frobenius MACRO step) and ``checks.rules.chi2_prediction`` (the input term's prediction bound).

Golden values: float64 evaluations of the same formulas (numpy); the measured figures are torch
float32 runs of the arithmetic. Each test also plants a defect the bound must not absorb."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manifold_oracle.conformance import tolerances as T
from manifold_oracle.conformance.checks.rules import chi2_prediction


def _muonh_fp32(W: np.ndarray, O: np.ndarray, lr: float, wd: float, lr_scale: float = 1.0) -> np.ndarray:
    """One MuonH step in torch float32, operation by operation as gpu_impl.optim.baselines.MuonH
    writes it (``lr_scale`` ≠ 1 plants a wrong step size)."""
    w, o = torch.tensor(W, dtype=torch.float32), torch.tensor(O, dtype=torch.float32)
    x = w * (1.0 - lr * wd) if wd else w
    r, q = torch.linalg.vector_norm(x), torch.linalg.vector_norm(o)
    y = x - (lr * lr_scale) * (r / q.clamp_min(1e-8)) * o
    return (y * (r / torch.linalg.vector_norm(y).clamp_min(1e-8))).double().numpy()


def _muonh_exact(W: np.ndarray, O: np.ndarray, lr: float, wd: float) -> np.ndarray:
    x = (1.0 - lr * wd) * W
    r = np.linalg.norm(x)
    y = x - lr * r / np.linalg.norm(O) * O
    return y * r / np.linalg.norm(y)


@pytest.mark.parametrize("shape", [(12, 8), (8, 12), (64, 32)])
def test_muonh_step_rounding_covers_fp32_and_is_tight(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    ratios, planted = [], []
    for i in range(40):
        W = np.float32(rng.standard_normal(shape) / np.sqrt(shape[1]) * rng.uniform(0.3, 3.0)).astype(np.float64)
        Uo, _, Vh = np.linalg.svd(rng.standard_normal(shape), full_matrices=False)
        O = np.float32(Uo @ Vh * (1.0 + 0.05 * rng.standard_normal(shape))).astype(np.float64)
        lr, wd = (0.02, 0.05)[i % 2], (0.0, 0.1)[(i // 2) % 2]
        exact = _muonh_exact(W, O, lr, wd)
        tol = T.muonh_step_rounding("float32", W, O, lr, 1.0 - lr * wd)
        ratios.append(float(np.linalg.norm(_muonh_fp32(W, O, lr, wd) - exact)) / tol.bound)
        planted.append(float(np.linalg.norm(_muonh_fp32(W, O, lr, wd, lr_scale=1.01) - exact)) / tol.bound)
    # no false failure; the median correct figure within 20× of the bound (a bound of λ = 5 model sd)
    assert max(ratios) <= 1.0, max(ratios)
    assert np.median(ratios) >= 1 / 20, np.median(ratios)
    # a step 1 % too large fails every case
    assert min(planted) > 1.0, min(planted)


def _macro_fp32(W: np.ndarray, O: np.ndarray, a: float, R: float, fused: bool, a_scale: float = 1.0) -> np.ndarray:
    """One Frobenius MACRO step in torch float32 in the eager form (D = O − c·W, Y = W − a·D,
    rescale) or the fused form of gpu_impl.optim.macro (Ŷ = O + k·W by addcmul, (R/−‖Ŷ‖)·Ŷ)."""
    w, o = torch.tensor(W, dtype=torch.float32), torch.tensor(O, dtype=torch.float32)
    a = a * a_scale
    c = torch.dot(o.reshape(-1), w.reshape(-1)) / torch.dot(w.reshape(-1), w.reshape(-1))
    if fused:
        y = o.clone().addcmul_(w, (1.0 + a * c) / -a)
        return (y * (R / -torch.linalg.vector_norm(y))).double().numpy()
    y = w - a * torch.addcmul(o, w, c, value=-1.0)
    return (y * (R / torch.linalg.vector_norm(y))).double().numpy()


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("shape", [(12, 8), (4, 6), (64, 24)])
def test_macro_frobenius_step_rounding_covers_both_forms(shape: tuple[int, int], fused: bool) -> None:
    rng = np.random.default_rng(11)
    ratios, planted = [], []
    for i in range(40):
        R, a = (1.0, 2.0)[i % 2], (0.02, 0.05)[(i // 2) % 2]
        W = rng.standard_normal(shape)
        W = np.float32(W / np.linalg.norm(W) * R).astype(np.float64)
        Uo, _, Vh = np.linalg.svd(rng.standard_normal(shape), full_matrices=False)
        O = np.float32(Uo @ Vh * (1.0 + 0.05 * rng.standard_normal(shape))).astype(np.float64)
        c = np.sum(O * W) / np.sum(W * W)
        Y = W - a * (O - c * W)
        exact = R * Y / np.linalg.norm(Y)
        tol = T.macro_frobenius_step_rounding("float32", W, O, a, R)
        ratios.append(float(np.linalg.norm(_macro_fp32(W, O, a, R, fused) - exact)) / tol.bound)
        planted.append(float(np.linalg.norm(_macro_fp32(W, O, a, R, fused, a_scale=1.01) - exact)) / tol.bound)
    assert max(ratios) <= 1.0, max(ratios)
    assert np.median(ratios) >= 1 / 20, np.median(ratios)
    assert min(planted) > 1.0, min(planted)


def test_chi2_prediction_covers_new_draws() -> None:
    """Samples of a scaled chi-square (d = 1, 4, 40): the bound from 32 samples covers a new draw
    in every one of 2000 trials, and collapses to about λ·rms (never below) for d = 1."""
    rng = np.random.default_rng(3)
    for d in (1, 4, 40):
        misses = 0
        for _ in range(2000):
            e2 = rng.chisquare(d, size=32) / d * 2.5e-7
            nu, _ = chi2_prediction(e2)
            misses += rng.chisquare(d) / d * 2.5e-7 > nu**2
        assert misses == 0, (d, misses)
    e2 = rng.chisquare(1, size=32)
    nu, dof = chi2_prediction(e2)
    assert dof < 2.0
    assert nu >= T.PROB_LAMBDA * np.sqrt(np.mean(e2)) * 0.99
    # a response 10× the sampled one is outside the bound for a concentrated (d = 40) response
    e2 = rng.chisquare(40, size=32) / 40
    assert 100.0 > chi2_prediction(e2)[0] ** 2
