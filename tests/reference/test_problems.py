"""Synthetic problems with known answers (CLAIMS.md §0.3).

Gradients are checked against central finite differences (error model: h²·|f'''| + u·|f|/h with
h = 1e-5 gives ≲ 1e-8 relative); optimal values against closed forms computed here with numpy's
eigvalsh/svd; f(W) ≥ f* on random feasible points; the Riemannian gradient vanishes at the
optimum (to c·u·‖∇f‖).
"""

from __future__ import annotations

import numpy as np
import pytest

from manifold_oracle.reference import (
    DegenerateGeometryError,
    FrobeniusSphere,
    InvalidInputError,
    Oblique,
    SpectralSphere,
    Stiefel,
)
from manifold_oracle.reference.problems import (
    MatrixSensing,
    Procrustes,
    ProjectionProblem,
    RayleighFrobenius,
    RayleighStiefel,
    TwoLayerNet,
)


def _fd_check(f, grad, W: np.ndarray, rng: np.random.Generator, h: float = 1e-5) -> float:
    """max over 3 random directions of |⟨∇f, E⟩ − (f(W + hE) − f(W − hE))/(2h)| / scale."""
    g = grad(W)
    worst = 0.0
    for _ in range(3):
        E = rng.standard_normal(W.shape)
        E /= np.linalg.norm(E)
        fd = (f(W + h * E) - f(W - h * E)) / (2 * h)
        worst = max(worst, abs(np.sum(g * E) - fd) / max(1.0, np.linalg.norm(g)))
    return worst


def _mid_gap(C: np.ndarray) -> float:
    s = np.linalg.svd(C, compute_uv=False)
    return float(0.5 * (s[0] + s[1]))


def _problems(rng: np.random.Generator):
    C = rng.standard_normal((7, 5))
    return [
        RayleighFrobenius.random(rng, 6, 4, radius=1.7),
        RayleighStiefel.random(rng, 7, 3, scale=1.2),
        Procrustes.random(rng, 5),
        Procrustes.random(rng, 6, 3),
        ProjectionProblem(FrobeniusSphere(2.0), C),
        ProjectionProblem(Oblique(1.0, axis="cols"), C),
        ProjectionProblem(Stiefel(1.0), C),
        ProjectionProblem(SpectralSphere(_mid_gap(C)), C),  # σ₂(C) < R < σ₁(C): a gapped optimum
        MatrixSensing.random(rng, 4, 3, rank=1, radius=1.5),
    ]


def test_gradients_match_finite_differences(rng: np.random.Generator) -> None:
    for P in _problems(rng):
        W = P.initial_point(rng)
        assert _fd_check(P.loss, P.gradient, W, rng) <= 1e-7, type(P).__name__


def test_optimal_values_closed_forms(rng: np.random.Generator) -> None:
    """f* from the closed forms of CLAIMS §0.3, recomputed here; f(optimum) = f*; f ≥ f* elsewhere."""
    for P in _problems(rng):
        name = type(P).__name__
        if isinstance(P, RayleighFrobenius):
            lam = np.linalg.eigvalsh(P.C)
            expected = -0.5 * 1.7**2 * lam[-1]
            assert P.lipschitz == pytest.approx(lam[-1], rel=1e-14)
        elif isinstance(P, RayleighStiefel):
            lam = np.linalg.eigvalsh(P.C)
            expected = -0.5 * 1.2**2 * np.sum(lam[-3:])
        elif isinstance(P, Procrustes):
            M = P.A.T @ P.B
            s = np.linalg.svd(M, compute_uv=False)
            Uu, _, Vt = np.linalg.svd(M, full_matrices=False)
            Wstar = Uu @ Vt
            expected = 0.5 * np.sum((P.A @ Wstar - P.B) ** 2)
            assert expected == pytest.approx(
                0.5 * (np.sum((P.A @ Wstar) ** 2) + np.sum(P.B**2)) - np.sum(s), rel=1e-13)
        elif isinstance(P, ProjectionProblem):
            C = P.C
            man = P.manifold
            if isinstance(man, FrobeniusSphere):
                Wstar = 2.0 * C / np.linalg.norm(C)
            elif isinstance(man, Oblique):
                Wstar = C / np.linalg.norm(C, axis=0, keepdims=True)
            elif isinstance(man, Stiefel):
                Uu, _, Vt = np.linalg.svd(C, full_matrices=False)
                Wstar = Uu @ Vt
            else:
                Uu, s, Vt = np.linalg.svd(C, full_matrices=False)
                Wstar = (Uu * np.minimum(s, _mid_gap(C))) @ Vt
            expected = 0.5 * np.sum((Wstar - C) ** 2)
            np.testing.assert_allclose(P.optimum(), Wstar, rtol=0, atol=1e-13)
        else:
            expected = 0.0
        assert P.optimal_value == pytest.approx(expected, rel=1e-12, abs=1e-14), name
        assert abs(P.loss(P.optimum()) - expected) <= 1e-12 * max(1.0, abs(expected)), name
        for _ in range(20):
            assert P.loss(P.initial_point(rng)) >= expected - 1e-12 * max(1.0, abs(expected)), name
        # first-order optimality (MATH §8.2): P_W ∇f = 0 at the optimum
        assert P.optimality_residual(P.optimum()) <= 1e-12, name


def test_constants_are_bounds(rng: np.random.Generator) -> None:
    """L bounds ‖∇f(W) − ∇f(W')‖/‖W − W'‖ and G_max bounds ‖∇f‖_F on the manifold (sampled)."""
    for P in _problems(rng):
        for _ in range(20):
            W, V = P.initial_point(rng), P.initial_point(rng)
            r = np.linalg.norm(P.gradient(W) - P.gradient(V)) / np.linalg.norm(W - V)
            assert r <= P.lipschitz * (1 + 1e-12)
            assert np.linalg.norm(P.gradient(W)) <= P.gradient_bound * (1 + 1e-12)


def test_stochastic_mode(rng: np.random.Generator) -> None:
    """E‖N‖²_F = σ² (Monte Carlo, ±4 standard errors), seeded reproducibility, mean ∇f."""
    P = RayleighFrobenius.random(rng, 5, 4).with_noise(0.3)
    W = P.initial_point(rng)
    g = P.gradient(W)
    samples = np.array([np.sum((P.stochastic_gradient(W, rng) - g) ** 2) for _ in range(4000)])
    se = samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - 0.09) <= 4 * se
    a = P.stochastic_gradient(W, np.random.default_rng(7))
    b = P.stochastic_gradient(W, np.random.default_rng(7))
    assert np.array_equal(a, b)
    base = RayleighFrobenius(P.C, 4)
    assert base.noise == 0.0 and np.array_equal(base.stochastic_gradient(W, rng), g)


def test_two_layer_net(rng: np.random.Generator) -> None:
    net = TwoLayerNet.random(rng)
    Ws = net.initial_point(rng)
    for i in range(2):
        def f(Wi, i=i):
            ws = list(Ws)
            ws[i] = Wi
            return net.loss(tuple(ws))

        def g(Wi, i=i):
            ws = list(Ws)
            ws[i] = Wi
            return net.gradient(tuple(ws))[i]

        assert _fd_check(f, g, Ws[i], rng) <= 1e-7
    assert net.loss(net.optimum()) == 0.0
    assert all(np.linalg.norm(r) <= 1e-15 for r in net.riemannian_gradient(net.optimum()))
    noisy = net.with_noise(0.5)
    gs = noisy.stochastic_gradient(Ws, np.random.default_rng(1))
    assert all(np.linalg.norm(a - b) > 0 for a, b in zip(gs, net.gradient(Ws)))


def test_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(DegenerateGeometryError):
        RayleighFrobenius(np.eye(3), 2)
    with pytest.raises(InvalidInputError):
        RayleighFrobenius(rng.standard_normal((3, 3)), 2)
    with pytest.raises(InvalidInputError):
        RayleighStiefel(np.diag([3.0, 2.0, 1.0]), 3)
    with pytest.raises(InvalidInputError):
        Procrustes(rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))  # tall, AᵀA ≠ a²I
    P = RayleighFrobenius.random(rng, 4, 3)
    with pytest.raises(InvalidInputError):
        P.loss(np.ones((3, 4)))
    with pytest.raises(InvalidInputError):
        P.with_noise(-1.0)
    with pytest.raises(InvalidInputError):
        MatrixSensing(np.ones((3, 2, 2)), np.ones((3, 3)))
