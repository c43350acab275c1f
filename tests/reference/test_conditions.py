"""MACRO convergence conditions as executable checks (MATH.md §8; CLAIMS.md V-1, V-2, V-4).

Constants used as expected values are recomputed here from the problem data (eigvalsh, svd);
L_R = L + G_max/R on M_F (MATH §8.1). Tolerances: the descent slack is compared with
c·u·(|f_t| + |f_{t+1}| + ηs‖grad f‖_*) (CLAIMS V-1); convergence to 1e-8 relative (V-4).
"""

from __future__ import annotations

import numpy as np
import pytest

from manifold_oracle.reference import FrobeniusSphere, InvalidInputError, SpectralSphere, Stiefel
from manifold_oracle.reference.conditions import (
    ProblemConstants,
    check_hyperparameters,
    descent_monitor,
    deterministic_rate,
    estimate_lipschitz,
    estimate_retraction_constant,
    retraction_constants,
    run,
    spectral_gaps,
)
from manifold_oracle.reference.errors import NotAvailableError
from manifold_oracle.reference.optimizers import MACRO
from manifold_oracle.reference.problems import MatrixSensing, Procrustes, ProjectionProblem, RayleighFrobenius


def _rayleigh(rng: np.random.Generator) -> tuple[RayleighFrobenius, np.ndarray, ProblemConstants]:
    P = RayleighFrobenius.random(rng, 6, 4, radius=1.0)
    W0 = P.initial_point(rng)
    return P, W0, ProblemConstants.from_problem(P, W0)


def test_constants_from_problem(rng: np.random.Generator) -> None:
    P, W0, c = _rayleigh(rng)
    lam1 = np.linalg.eigvalsh(P.C)[-1]
    assert c.L == pytest.approx(lam1, rel=1e-14)
    assert c.L_R == pytest.approx(lam1 + lam1 * 1.0 / 1.0, rel=1e-14)  # L + G_max/R, G_max = λ₁R
    assert c.k == 4
    assert c.f_gap == pytest.approx(-0.5 * np.sum(W0 * (P.C @ W0)) + 0.5 * lam1, rel=1e-12)
    assert retraction_constants(FrobeniusSphere(2.0)) == (0.25, 1.0)
    with pytest.raises(NotAvailableError):
        retraction_constants(SpectralSphere(1.0))


def test_check_hyperparameters_reports_failing_inequality(rng: np.random.Generator) -> None:
    """A step above 1/(L_R·k) fails 'sufficient_decrease' with its numbers; a small one holds."""
    P, W0, c = _rayleigh(rng)
    thr = 1.0 / (2.0 * np.linalg.eigvalsh(P.C)[-1] * 4)
    good = check_hyperparameters(c, lr=0.5 * thr, T=100)
    assert good.holds and not good.failures
    bad = check_hyperparameters(c, lr=1.0, scale=2.0, T=100)
    assert not bad.holds
    (f,) = bad.failures
    assert f.name == "sufficient_decrease"
    assert "1/(L_R·k)" in f.inequality
    assert f.lhs == 2.0 and f.rhs == pytest.approx(thr, rel=1e-14)
    assert "FAILS" in str(f)
    # momentum, spectral gap, projected momentum and noise conditions
    r = check_hyperparameters(ProblemConstants(1.0, 1.0, 0.5, 3, sigma=0.5, gap=1e-9), lr=0.01,
                              beta=0.0, manifold="spectral", momentum="projected_ema", T=10)
    names = {x.name for x in r.failures}
    assert names == {"spectral_gap", "noise_averaging"}
    assert r["projector_regularity"].holds is None
    bounds = check_hyperparameters(ProblemConstants(2.0, 1.0, 0.5, 4, f_gap=3.0), lr=0.01, T=50).bounds
    assert bounds["deterministic_bound"] == pytest.approx(3.0 / (0.01 * 50) + 3.0 * 0.01 * 4 / 2)
    assert bounds["optimal_step"] == pytest.approx(np.sqrt(2 * 3.0 / (3.0 * 4 * 50)))
    cs = ProblemConstants(2.0, 1.0, 0.5, 4, f_gap=3.0, sigma=0.3)
    rs = check_hyperparameters(cs, lr=0.01, beta=0.9, T=50, epsilon=1.0)
    det = 3.0 / (0.01 * 50) + 3.0 * 0.01 * 4 / 2
    tot = det + 2 * 2 * (np.sqrt(0.1 / 1.9) * 0.3 + 0.9 * 2.0 * 1.0 * 0.01 * 2 / 0.1)
    assert rs.bounds["stochastic_bound"] == pytest.approx(tot, rel=1e-14)
    assert rs["stationarity_target"].holds is False and rs["stationarity_target"].lhs == pytest.approx(tot)
    with pytest.raises(InvalidInputError):
        check_hyperparameters(c, lr=lambda t: 0.1)


@pytest.mark.parametrize("which", ["rayleigh", "projection"])
def test_descent_monitor(which: str, rng: np.random.Generator) -> None:
    """V-1: with β = 0 and ηs ≤ 1/(L_R·k) the §8.3 inequality holds at every step; ηs ≫ that
    makes f increase at uncertified steps and the monitor flags the run; an understated L_R makes
    the inequality itself fail."""
    if which == "rayleigh":
        P, W0, c = _rayleigh(rng)
    else:
        P = ProjectionProblem(FrobeniusSphere(1.0), rng.standard_normal((6, 4)))
        W0 = P.initial_point(rng)
        c = ProblemConstants.from_problem(P, W0)
    thr = 1.0 / (c.L_R * c.k)
    ok = descent_monitor(run(P, MACRO("frobenius", lr=thr, beta=0.0, radius=1.0), W0, 300), c.L_R, c.k)
    assert not ok.flagged and not ok.violations and not ok.uncertified
    assert np.min(ok.slack + ok.tolerance) >= 0
    big = run(P, MACRO("frobenius", lr=20 * thr, beta=0.0, radius=1.0), W0, 300)
    rep = descent_monitor(big, c.L_R, c.k)
    assert rep.flagged and rep.increases and len(rep.uncertified) == 300
    assert not check_hyperparameters(c, lr=20 * thr).holds
    assert descent_monitor(big, c.L_R / 50, c.k).violations


def test_convergence_to_known_optimum(rng: np.random.Generator) -> None:
    """V-4: deterministic MACRO (β = 0, η_t = 0.1·0.99^t) reaches f* to 1e-8 relative within a
    budget of 1,200 steps on Rayleigh (M_F) and Procrustes (O(6)); the limit satisfies the
    first-order condition and, for Procrustes, is the unique minimiser msign(AᵀB) up to the
    oscillation of a normalised method at the final step, η_T·‖D‖_F ≤ 0.1·0.99^1200·√6 ≈ 1.4e-6."""
    lr = lambda t: 0.1 * 0.99**t  # noqa: E731
    P, W0, _ = _rayleigh(rng)
    tr = run(P, MACRO("frobenius", lr=lr, beta=0.0, radius=1.0), W0, 1200)
    lam1 = np.linalg.eigvalsh(P.C)[-1]
    assert (tr.loss[-1] - (-0.5 * lam1)) / (0.5 * lam1) <= 1e-8
    assert P.optimality_residual(tr.final) <= 1e-4
    Q = Procrustes.random(rng, 6)
    V0 = Q.initial_point(rng)
    tq = run(Q, MACRO("stiefel", lr=lr, beta=0.0, radius=1.0), V0, 1200)
    Uu, s, Vt = np.linalg.svd(Q.A.T @ Q.B)
    fstar = 0.5 * (np.sum(Q.A**2) + np.sum(Q.B**2)) - np.sum(s)
    assert (tq.loss[-1] - fstar) / abs(fstar) <= 1e-8
    assert np.linalg.norm(tq.final - Uu @ Vt) <= 1e-5
    print(f"Rayleigh gap {(tr.loss[-1] + 0.5 * lam1) / (0.5 * lam1):.2e}, "
          f"Procrustes gap {(tq.loss[-1] - fstar) / abs(fstar):.2e}")


def test_deterministic_rate(rng: np.random.Generator) -> None:
    """V-2: min_{t<T}‖grad f‖_* ≤ √(2L_R·k·(f₀ − f*)/T) at the prescribed ηs for every T, with a
    log–log slope ≤ −0.4 (predicted −1/2) over T ∈ {30, …, 1000} (1.5 decades)."""
    P, W0, c = _rayleigh(rng)
    Ts = [30, 100, 300, 1000]
    fit = deterministic_rate(P, lambda es: MACRO("frobenius", lr=es, beta=0.0, radius=1.0), W0, Ts, c)
    assert np.all(fit.values <= fit.bounds)
    assert fit.slope <= -0.4 and fit.predicted == -0.5
    print(f"Rayleigh M_F deterministic slope {fit.slope:.3f} (predicted -0.5)")


def test_estimators(rng: np.random.Generator) -> None:
    """Sampled L ≤ true L and within 1e-6 of it for quadratics; retraction fits have slope 2 ± 0.05
    with α ≈ 1/(2R) on M_F; spectral gaps match the SVD."""
    P, W0, _ = _rayleigh(rng)
    lam1 = np.linalg.eigvalsh(P.C)[-1]
    est = estimate_lipschitz(P.gradient, [P.initial_point(rng) for _ in range(3)], rng, power_steps=80)
    assert lam1 * (1 - 1e-6) <= est <= lam1 * (1 + 1e-9)
    S = MatrixSensing.random(rng, 3, 3)
    L_true = np.linalg.svd(S.A.reshape(S.N, -1), compute_uv=False)[0] ** 2 / S.N
    est = estimate_lipschitz(S.gradient, [S.initial_point(rng)], rng, power_steps=200)
    assert L_true * (1 - 1e-4) <= est <= L_true * (1 + 1e-9)
    man = FrobeniusSphere(2.0)
    W = man.random_point(rng, (5, 3))
    fit = estimate_retraction_constant(man, W, man.random_tangent(rng, W))
    assert abs(fit.order - 2.0) <= 0.05 and fit.alpha == pytest.approx(0.25, rel=1e-5)
    st = Stiefel(1.0)
    Ws = st.random_point(rng, (6, 3))
    fs = estimate_retraction_constant(st, Ws, st.random_tangent(rng, Ws))
    assert abs(fs.order - 2.0) <= 0.05 and fs.alpha <= 0.5 * (1 + 1e-6)
    sp = SpectralSphere(1.0)
    Wp = sp.random_point(rng, (5, 4), min_gap=0.1)
    fp = estimate_retraction_constant(sp, Wp, sp.random_tangent(rng, Wp))
    assert abs(fp.order - 2.0) <= 0.05
    o = MACRO("spectral", lr=0.05, radius=1.0, beta=0.5)
    tr = run(ProjectionProblem(sp, 2 * Wp), o, sp.random_point(rng, (5, 4), min_gap=0.1), 30,
             keep_iterates=True)
    gaps = spectral_gaps(tr.iterates)
    s = np.linalg.svd(tr.iterates[7], compute_uv=False)
    assert gaps[7] == pytest.approx((s[0] - s[1]) / s[0], rel=1e-14)
    assert np.min(gaps) >= 1e-6
    np.testing.assert_allclose(gaps[:-1], [d.spectral_gap for d in tr.diagnostics], rtol=1e-14)


def test_run_product_and_stochastic(rng: np.random.Generator) -> None:
    """run() drives one optimizer per block of the two-layer net (both blocks stay on their
    manifolds, the loss decreases); stochastic runs need an rng and are reproducible per seed."""
    from manifold_oracle.reference.problems import TwoLayerNet

    net = TwoLayerNet.random(rng, d=5, h=4, c=2, N=32)
    Ws = net.initial_point(rng)
    opts = (MACRO("oblique_rows", lr=0.05, beta=0.0, radius=1.0),
            MACRO("frobenius", lr=0.05, beta=0.0, radius=1.0))
    tr = run(net, opts, Ws, 200)
    assert tr.loss[-1] < 0.5 * tr.loss[0]
    for man, W in zip(net.manifolds, tr.final):
        assert man.violation(W) <= 1e-14
    assert all(len(d) == 2 for d in tr.diagnostics)
    P = RayleighFrobenius.random(rng, 5, 3).with_noise(0.2)
    W0 = P.initial_point(rng)
    o = MACRO("frobenius", lr=0.01, beta=0.9, radius=1.0)
    with pytest.raises(InvalidInputError):
        run(P, o, W0, 5)
    a = run(P, o, W0, 20, rng=np.random.default_rng(3))
    b = run(P, o, W0, 20, rng=np.random.default_rng(3))
    c = run(P, o, W0, 20, rng=np.random.default_rng(4))
    assert np.array_equal(a.loss, b.loss) and not np.array_equal(a.loss, c.loss)
    # recorded stationarity measures are ‖P_W∇f‖_* and ‖P_W∇f‖_F (recomputed here)
    W = a.final
    g = -P.C @ W
    rg = g - np.sum(g * W) / np.sum(W * W) * W
    assert a.grad_nuclear[-1] == pytest.approx(np.sum(np.linalg.svd(rg, compute_uv=False)), rel=1e-13)
    assert a.grad_frobenius[-1] == pytest.approx(np.linalg.norm(rg), rel=1e-13)
