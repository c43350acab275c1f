"""Baseline update rules (MATH.md §9; CONVENTIONS.md §4–§8; CLAIMS.md G-10, G-11, I-1…I-4, I-10).

Tolerance model (CLAIMS.md §0.2): identities between two float64 evaluations of the same exact
formula differ by a few ulps per step, c·u·n_eff ≤ 100·2⁻⁵³·8 ≈ 1e-13; the issue's 1e-12 for the
MATH.md identities is above that bound. Expected values are computed here from the formulas
(independent SVD-based msign), never by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from manifold_oracle.reference import FrobeniusSphere, InvalidInputError, OffManifoldError, SolverError, Stiefel
from manifold_oracle.reference.optimizers import (
    SPEL,
    SSO,
    AdamW,
    ManifoldMuon,
    Mano,
    Muon,
    MuonBall,
    MuonH,
    RiemannianSGD,
    power_iteration,
    sso_lambda,
)


def _msign(X: np.ndarray) -> np.ndarray:
    Uu, s, Vt = np.linalg.svd(X, full_matrices=False)
    return Uu @ Vt


def _N(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X)


def _run(opt, W, Gs):
    st = opt.init_state(W)
    out, diags = [], []
    for G in Gs:
        W, st, d = opt.step(W, G, st)
        out.append(W)
        diags.append(d)
    return out, diags


# ----------------------------------------------------------------------------- Muon profiles
def test_muon_kj_matches_formula(rng: np.random.Generator) -> None:
    """MATH §9.2 exact Muon: M ← βM + (1 − β)G; U = (1 − β)G + βM; W ← W − η√max(1, m/n)·msign(U)."""
    W = rng.standard_normal((8, 4))
    Gs = [rng.standard_normal((8, 4)) for _ in range(5)]
    outs, _ = _run(Muon("keller_jordan"), W, Gs)
    M = np.zeros_like(W)
    Wx = W.copy()
    for G, got in zip(Gs, outs):
        M = 0.95 * M + 0.05 * G
        U = 0.05 * G + 0.95 * M
        Wx = Wx - 0.02 * np.sqrt(2.0) * _msign(U)
        np.testing.assert_allclose(got, Wx, rtol=0, atol=1e-13)


@pytest.mark.parametrize("shape", [(8, 8), (16, 4), (4, 16), (1, 9)])
def test_moonlight_rms_and_kj_norm(shape: tuple[int, int], rng: np.random.Generator) -> None:
    """I-1: Moonlight's update 0.2·√max(m, n)·msign(G) has RMS exactly 0.2 (full rank);
    I-2: KJ's √max(1, m/n)·msign(G) has ‖·‖_F = √m."""
    m, n = shape
    W = rng.standard_normal(shape)
    G = rng.standard_normal(shape)
    for prof, expect in (("moonlight", lambda u: np.sqrt(np.mean(u * u)) - 0.2),
                         ("keller_jordan", lambda u: np.linalg.norm(u) - np.sqrt(m))):
        opt = Muon(prof, lr=1.0, weight_decay=0.0)
        Wn, _, d = opt.step(W, G, opt.init_state(W))
        upd = W - Wn
        assert abs(expect(upd)) <= 1e-13


def test_muon_profiles_differ_as_documented(rng: np.random.Generator) -> None:
    """CONVENTIONS §5–§8: under exact msign the profiles differ only by scale and WD: KJ = torch
    (same EMA, Nesterov, scale) at equal λ; Moonlight (accumulate) has KJ's direction; dion
    (no Nesterov, √(m/n)) differs from KJ on wide matrices; WD uses the raw learning rate."""
    W = rng.standard_normal((3, 6))
    Gs = [rng.standard_normal((3, 6)) for _ in range(4)]
    kj, _ = _run(Muon("keller_jordan", lr=0.01, weight_decay=0.1), W, Gs)
    th, _ = _run(Muon("torch", lr=0.01, weight_decay=0.1), W, Gs)
    np.testing.assert_allclose(kj[-1], th[-1], rtol=0, atol=1e-13)
    # Moonlight: accumulate + Nesterov: same directions as KJ (exact msign removes 1 − β); scale 0.2·√6
    ml, dml = _run(Muon("moonlight", lr=0.01, weight_decay=0.0), W, Gs)
    kj0, dkj = _run(Muon("keller_jordan", lr=0.01, weight_decay=0.0), W, Gs)
    for a, b in zip(dml, dkj):
        np.testing.assert_allclose(a.direction, b.direction, rtol=0, atol=1e-13)
        assert a.step_scale == pytest.approx(0.01 * 0.2 * np.sqrt(6), rel=1e-15)
        assert b.step_scale == pytest.approx(0.01, rel=1e-15)  # √max(1, 3/6) = 1
    dn, ddn = _run(Muon("dion", lr=0.01, weight_decay=0.0), W, Gs)
    assert ddn[0].step_scale == pytest.approx(0.01 * np.sqrt(0.5), rel=1e-15)
    assert np.linalg.norm(dn[-1] - kj0[-1]) > 1e-4
    # WD with the raw lr: W ← (1 − ηλ)W − η·s·O
    opt = Muon("moonlight", lr=0.02, weight_decay=0.1, nesterov=False)
    Wn, _, d = opt.step(W, Gs[0], opt.init_state(W))
    np.testing.assert_allclose(Wn, (1 - 0.002) * W - 0.02 * 0.2 * np.sqrt(6) * _msign(Gs[0]), atol=1e-14)


def test_muon_profile_backend_is_ns_map(rng: np.random.Generator) -> None:
    """msign_backend="profile": the KJ schedule applied exactly, singular values φ(σ/(‖G‖_F + 1e-7))."""
    W = rng.standard_normal((5, 3))
    G = rng.standard_normal((5, 3))
    opt = Muon("keller_jordan", lr=1.0, nesterov=False, beta=0.0, msign_backend="profile")
    Wn, _, _ = opt.step(W, G, opt.init_state(W))
    Uu, s, Vt = np.linalg.svd(G, full_matrices=False)
    y = s / (np.linalg.norm(G) + 1e-7)
    for _ in range(5):
        y = y * (3.4445 + y * y * (-4.7750 + 2.0315 * y * y))
    np.testing.assert_allclose(W - Wn, np.sqrt(5 / 3) * (Uu * y) @ Vt, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------- MuonH
def test_muonh_code_equals_paper_rule(rng: np.random.Generator) -> None:
    """G-10: the ArchScale sequence equals R·N(W − ηR·N(O)) with R = ‖W‖_F (λ = 0), and ‖W_t‖_F
    does not drift (≤ 1e-12 relative over 1,000 steps)."""
    shape = (6, 4)
    W = rng.standard_normal(shape)
    R = np.linalg.norm(W)
    opt = MuonH(lr=0.03)
    st = opt.init_state(W)
    M = np.zeros(shape)
    worst = 0.0
    for t in range(1000):
        G = rng.standard_normal(shape)
        Wn, st, d = opt.step(W, G, st)
        M = 0.95 * M + G
        O = _msign(0.95 * M + G)
        expected = np.linalg.norm(W) * _N(W - 0.03 * np.linalg.norm(W) * _N(O))
        if t < 50:
            assert np.linalg.norm(Wn - expected) <= 1e-12 * np.linalg.norm(W)
        worst = max(worst, abs(np.linalg.norm(Wn) - R) / R)
        W = Wn
    assert worst <= 1e-12
    print(f"MuonH radius drift over 1000 steps: {worst:.2e}")


def test_muonh_weight_decay_as_coded(rng: np.random.Generator) -> None:
    """G-11: with λ > 0 the direction W_t/‖W_t‖ equals that of λ = 0 and ‖W_t‖ = (1 − ηλ)^t‖W₀‖."""
    shape = (5, 5)
    W = rng.standard_normal(shape)
    Gs = [rng.standard_normal(shape) for _ in range(40)]
    eta, lam = 0.02, 0.1
    a, _ = _run(MuonH(lr=eta, weight_decay=lam), W, Gs)
    b, _ = _run(MuonH(lr=eta, weight_decay=0.0), W, Gs)
    for t, (x, y) in enumerate(zip(a, b), start=1):
        assert np.linalg.norm(_N(x) - _N(y)) <= 1e-12
        assert abs(np.linalg.norm(x) / np.linalg.norm(W) - (1 - eta * lam) ** t) <= 1e-12
    # negative control: the paper rule (fixed R) keeps the radius
    c, _ = _run(MuonH(lr=eta, weight_decay=lam, form="paper"), W, Gs)
    assert abs(np.linalg.norm(c[-1]) - np.linalg.norm(W)) <= 1e-12 * np.linalg.norm(W)


def test_weight_decay_is_lr_rescale(rng: np.random.Generator) -> None:
    """MATH §5.2: with a degree-0 homogeneous retraction, decoupled WD equals the LR η/(1 − ηλ):
    the sphere rescaling (MuonH paper rule) and the polar retraction (SPEL)."""
    eta, lam = 0.03, 0.2
    shape = (6, 3)
    W = rng.standard_normal(shape)
    Gs = [rng.standard_normal(shape) for _ in range(10)]
    a, _ = _run(MuonH(lr=eta, weight_decay=lam, form="paper"), W, Gs)
    b, _ = _run(MuonH(lr=eta / (1 - eta * lam), weight_decay=0.0, form="paper"), W, Gs)
    for x, y in zip(a, b):
        assert np.linalg.norm(x - y) <= 1e-12 * np.linalg.norm(W)
    Ws = Stiefel().random_point(rng, shape)
    a, _ = _run(SPEL(lr=eta, weight_decay=lam), Ws, Gs)
    b, _ = _run(SPEL(lr=eta / (1 - eta * lam)), Ws, Gs)
    for x, y in zip(a, b):
        assert np.linalg.norm(x - y) <= 1e-12


# ----------------------------------------------------------------------------- SSO / MuonBall
def _sso_start(rng, shape=(6, 4)):
    opt = SSO(lr=0.02, radius_mode="identity", radius_scale=1.5)
    W = opt.initial_point(rng.standard_normal(shape))
    return opt, W


def test_sso_lambda_root_and_exact_lmo(rng: np.random.Generator) -> None:
    """MATH §9.4/§6.4: h(λ) = ⟨Θ, msign(M̂ + λΘ)⟩ is non-decreasing and λ is its root; the
    resulting Φ attains the exact tangent LMO value min_λ‖M̂ + λΘ‖_* (checked on a grid)."""
    M = rng.standard_normal((6, 4))
    Mh = M / np.linalg.norm(M)
    W = rng.standard_normal((6, 4))
    Uu, s, Vt = np.linalg.svd(W)
    Th = np.outer(Uu[:, 0], Vt[0])
    lam, info = sso_lambda(Mh, Th, tol=1e-12)
    assert info["status"] == "converged"
    grid = np.linspace(lam - 0.5, lam + 0.5, 201)
    h = [np.sum(Th * _msign(Mh + g * Th)) for g in grid]
    assert np.all(np.diff(h) >= -1e-14)
    nuc = lambda x: np.sum(np.linalg.svd(x, compute_uv=False))  # noqa: E731
    assert nuc(Mh + lam * Th) <= min(nuc(Mh + g * Th) for g in grid) + 1e-12
    Phi = _msign(Mh + lam * Th)
    assert abs(np.sum(Th * Phi)) <= 1e-12


def test_sso_retract_then_step(rng: np.random.Generator) -> None:
    """I-10: with hard retraction and exact σ, ‖W_t‖₂ = R at the start of every step (≤ 1e-14);
    after the step |σ₁ − R|/R is O(η²) (slope 2 ± 0.05); Φ is tangent to the solver tolerance."""
    opt, W = _sso_start(rng)
    st = opt.init_state(W)
    worst = 0.0
    for _ in range(1000):
        W, st, d = opt.step(W, rng.standard_normal(W.shape), st)
        worst = max(worst, d.extras["feasibility_at_start"])
        assert d.tangency <= 1e-7
    assert worst <= 1e-14
    print(f"SSO feasibility at start over 1000 steps: {worst:.2e}")
    _, W0 = _sso_start(rng)
    G = rng.standard_normal(W0.shape)
    etas = np.array([1e-3, 3e-3, 1e-2, 3e-2])
    post = []
    for eta in etas:
        o = SSO(lr=float(eta), radius_mode="identity", radius_scale=1.5, tol=1e-13)
        post.append(o.step(W0, G, o.init_state(W0))[2].feasibility)
    slope = np.polyfit(np.log(etas), np.log(post), 1)[0]
    assert abs(slope - 2.0) <= 0.05


def test_muonball_is_sso_with_zero_lambda(rng: np.random.Generator) -> None:
    """MATH §9.4: MuonBall = SSO with λ ≡ 0; both equal (R/σ)W − η·s·msign(M̂) from the formula."""
    opt, W = _sso_start(rng)
    Gs = [rng.standard_normal(W.shape) for _ in range(30)]
    a, _ = _run(MuonBall(lr=0.02, radius_mode="identity", radius_scale=1.5), W, Gs)
    b, _ = _run(SSO(lr=0.02, radius_mode="identity", radius_scale=1.5, lambda_solver="zero"), W, Gs)
    for x, y in zip(a, b):
        assert np.linalg.norm(x - y) <= 1e-12
    M = np.zeros_like(W)
    Wx = W.copy()
    s = 0.2 * np.sqrt(6)
    for G, got in zip(Gs[:5], a[:5]):
        M = 0.9 * M + 0.1 * G
        Wx = 1.5 * Wx / np.linalg.svd(Wx, compute_uv=False)[0]
        Wx = Wx - 0.02 * s * _msign(M / np.linalg.norm(M))
        assert np.linalg.norm(got - Wx) <= 1e-12
    c, _ = _run(SSO(lr=0.02, radius_mode="identity", radius_scale=1.5), W, Gs)
    assert np.linalg.norm(c[-1] - a[-1]) > 1e-6  # the bisection matters


def test_sso_options(rng: np.random.Generator) -> None:
    """Power-iteration σ with v₀ = 1 matches the SVD on a gapped matrix; v₀ ⟂ v₁ never finds σ₁
    (CLAIMS I-10 negative control); dynamic retraction moves σ toward R by the factor 1 ± αη."""
    Q1, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    Q2, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    W = Q1[:, :4] @ np.diag([2.0, 1.0, 0.5, 0.2]) @ Q2.T
    sig, u, v = power_iteration(W, 40)
    assert abs(sig - 2.0) <= 1e-12
    v1 = Q2[:, 0]
    v0 = np.ones(4) - (np.ones(4) @ v1) * v1
    # 10 steps (the code default): the rounding-level v₁ component grows like 4^k, to ~1e-10
    sig_bad, _, _ = power_iteration(W, 10, v0=v0)
    assert abs(sig_bad - 1.0) <= 1e-6
    o = SSO(lr=0.1, radius_mode="identity", radius_scale=1.0, retract_mode="dynamic", beta=0.0)
    G = rng.standard_normal(W.shape)
    _, _, d = o.step(W, G, o.init_state(W))
    Wr = W * (1 - 0.05 * 0.1)
    assert d.extras["feasibility_at_start"] == pytest.approx(abs(2.0 * (1 - 0.005) - 1.0), rel=1e-13)
    del Wr
    with pytest.raises(SolverError):
        sso_lambda(np.eye(3)[:, :2] * 1e3, np.eye(3)[:, :2] * 0 + np.outer([1, 0, 0], [1, 0]),
                   max_expansions=0)


# ----------------------------------------------------------------------------- Stiefel methods
def test_manifold_muon(rng: np.random.Generator) -> None:
    """MATH §9.5: the exact variant takes a tangent step and stays on St to 1e-14 over 1,000
    steps; dual ascent with J = 1 returns the one-step alternating projection msign(P_W G) (L-9)."""
    W = Stiefel().random_point(rng, (7, 4))
    G = rng.standard_normal((7, 4))
    o1 = ManifoldMuon(lr=0.1, steps=1)
    Wn, _, d = o1.step(W, G, o1.init_state(W))
    S = W.T @ G
    PG = G - W @ (0.5 * (S + S.T))
    np.testing.assert_allclose(d.direction, _msign(PG), rtol=0, atol=1e-13)
    np.testing.assert_allclose(Wn, _msign(W - 0.1 * _msign(PG)), rtol=0, atol=1e-13)
    W = Stiefel().random_point(rng, (6, 4))  # see the report: steepest's su_lyapunov fails at 7×4
    oe = ManifoldMuon(lr=0.05, solver="exact")
    st = oe.init_state(W)
    worst = 0.0
    for _ in range(20):
        W, st, d = oe.step(W, rng.standard_normal(W.shape), st)
        assert d.tangency <= 1e-9
        worst = max(worst, d.feasibility)
    od = ManifoldMuon(lr=0.05, steps=10)  # J = 10 keeps the 980-step run cheap; feasibility is the point
    st = od.init_state(W)
    for _ in range(980):
        W, st, d = od.step(W, rng.standard_normal(W.shape), st)
        worst = max(worst, d.feasibility)
    assert worst <= 1e-14
    print(f"ManifoldMuon feasibility over 1000 steps: {worst:.2e}")
    # the code's defaults (α = 0.01, J = 100, tol 1e-6) do not converge on a generic instance (L-8):
    # the step reports it instead of assuming it
    th = ManifoldMuon.profile("thinky")
    _, _, d = th.step(W, rng.standard_normal(W.shape), th.init_state(W))
    assert d.extras["converged"] is False and d.extras["residual"] > 1e-6
    assert d.extras["iterations"] == 100


def test_spel_is_variant_b_with_polar(rng: np.random.Generator) -> None:
    """MATH §9.6: θ⁺ = msign(θ − η·msign(P_T m)); the EO profile (no projection) is not tangent."""
    W = Stiefel().random_point(rng, (6, 4))
    G = rng.standard_normal((6, 4))
    o = SPEL(lr=0.05, beta=0.0)
    Wn, _, d = o.step(W, G, o.init_state(W))
    S = W.T @ G
    D = _msign(G - W @ (0.5 * (S + S.T)))
    np.testing.assert_allclose(Wn, _msign(W - 0.05 * D), rtol=0, atol=1e-13)
    assert d.tangency > 1e-3 and d.alignment <= 1e-12
    eo = SPEL.profile("eo", lr=0.05, beta=0.0, msign_backend="exact")
    Wn2, _, d2 = eo.step(W, G, eo.init_state(W))
    np.testing.assert_allclose(Wn2, _msign(0.995 * W - 0.05 * _msign(G)), rtol=0, atol=1e-13)
    st = o.init_state(W)
    worst = 0.0
    for _ in range(1000):
        W, st, d = o.step(W, rng.standard_normal(W.shape), st)
        worst = max(worst, d.feasibility)
    assert worst <= 1e-14
    print(f"SPEL feasibility over 1000 steps: {worst:.2e}")


# ----------------------------------------------------------------------------- Mano, AdamW, RSGD
def test_mano_rms_and_tangency(rng: np.random.Generator) -> None:
    """I-3: with θ̂ the update has RMS exactly 0.2 and is tangent along axis k (both parities);
    the raw-θ profile is not tangent when ‖θ‖_{2,k} ≠ 1."""
    W = 3.0 * rng.standard_normal((5, 8))
    Gs = [rng.standard_normal((5, 8)) for _ in range(2)]
    for proj, tangent in (("normalized", True), ("raw", False)):
        o = Mano(lr=0.01, weight_decay=0.0, projection=proj)
        st = o.init_state(W)
        Wt = W
        for t, G in enumerate(Gs):
            Wn, st, d = o.step(Wt, G, st)
            k = t % 2
            upd = d.direction
            # W⁺ = W − η·D (λ = 0); rounding of the subtraction ≲ u·|W|
            assert np.max(np.abs(Wt - 0.01 * upd - Wn)) <= 4 * 2.0**-53 * np.max(np.abs(Wt))
            assert abs(np.sqrt(np.mean(upd * upd)) - 0.2) <= 1e-14
            That = Wt / np.linalg.norm(Wt, axis=k, keepdims=True)
            inner = np.abs(np.sum(upd * That, axis=k)) / np.linalg.norm(upd, axis=k)
            if tangent:
                assert np.max(inner) <= 1e-14
            else:
                assert np.max(inner) > 1e-3
            Wt = Wn


def test_adamw_torch_form(rng: np.random.Generator) -> None:
    """MATH §9.8: first step m̂ = g, v̂ = g², so W₁ = (1 − ηλ)W − η·g/(|g| + ε); the original
    (Loshchilov–Hutter) profile decays by the schedule multiplier only."""
    W = rng.standard_normal((4, 3))
    G = rng.standard_normal((4, 3))
    o = AdamW(lr=0.01, weight_decay=0.1)
    W1, st, _ = o.step(W, G, o.init_state(W))
    np.testing.assert_allclose(W1, (1 - 0.001) * W - 0.01 * G / (np.abs(G) + 1e-8), rtol=0, atol=1e-15)
    G2 = rng.standard_normal((4, 3))
    W2, _, _ = o.step(W1, G2, st)
    m = 0.9 * 0.1 * G + 0.1 * G2
    v = 0.999 * 0.001 * G * G + 0.001 * G2 * G2
    upd = (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(W2, (1 - 0.001) * W1 - 0.01 * upd, rtol=0, atol=1e-14)
    lo = AdamW(lr=lambda t: 0.01 * 0.5**t, weight_decay=0.1, decay_form="original")
    st = lo.init_state(W)
    _, st, _ = lo.step(W, G, st)
    _, _, d = lo.step(W1, G2, st)
    assert d.extras["decay_factor"] == pytest.approx(1 - 0.5 * 0.1, rel=1e-15)


def test_riemannian_sgd(rng: np.random.Generator) -> None:
    """W⁺ = R(W − η·P_W G)/‖·‖_F on M_F; tangent; feasible to 1e-14 over 1,000 steps."""
    man = FrobeniusSphere(2.0)
    W = man.random_point(rng, (5, 4))
    G = rng.standard_normal((5, 4))
    o = RiemannianSGD(man, lr=0.1)
    Wn, _, d = o.step(W, G, o.init_state(W))
    PG = G - np.sum(G * W) / np.sum(W * W) * W
    np.testing.assert_allclose(Wn, 2.0 * _N(W - 0.1 * PG), rtol=0, atol=1e-14)
    st = o.init_state(W)
    worst = 0.0
    for _ in range(1000):
        W, st, d = o.step(W, rng.standard_normal(W.shape), st)
        worst = max(worst, d.feasibility)
        assert d.tangency <= 1e-13
    assert worst <= 1e-14


def test_baseline_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidInputError):
        Muon("no_such_profile")
    with pytest.raises(InvalidInputError):
        MuonH(form="other")
    with pytest.raises(InvalidInputError):
        SSO(radius_mode="other")
    with pytest.raises(InvalidInputError):
        MuonBall(lambda_solver="bisection")
    with pytest.raises(InvalidInputError):
        Mano(projection="other")
    W = rng.standard_normal((5, 3))
    o = ManifoldMuon()
    with pytest.raises(OffManifoldError):
        o.step(W, W, o.init_state(W))
    with pytest.raises(InvalidInputError):
        MuonH().init_state(np.zeros((3, 3)))
    Wc, Gc = W.copy(), W.copy() + 1
    G = Gc.copy()
    for opt in (Muon(), MuonH(), AdamW(), Mano()):
        opt.step(W, G, opt.init_state(W))
    assert np.array_equal(W, Wc) and np.array_equal(G, Gc)
