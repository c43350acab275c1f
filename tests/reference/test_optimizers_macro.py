"""MACRO reference step (MATH.md §7; CLAIMS.md M-1…M-8).

Tolerance model (CLAIMS.md §0.2): exact float64 identities hold to c·u·n_eff·scale with
u = 2⁻⁵³, c = 100, n_eff = max(m, n) ≤ 8 here, i.e. ≤ 1e-13 relative; the issue's targets
(tangency ≤ 1e-13, alignment ≤ 1e-12) sit at or above that bound. Expected values are computed
in this file from closed forms with numpy's SVD, never by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from manifold_oracle.reference import (
    DegenerateGeometryError,
    Euclidean,
    FrobeniusSphere,
    InvalidInputError,
    OffManifoldError,
    Oblique,
    SpectralSphere,
    Stiefel,
)
from manifold_oracle.reference.generators import matrices, shapes
from manifold_oracle.reference.optimizers import MACRO, State

U = 2.0**-53
KINDS = ("frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel")
SHAPES = ((6, 4), (4, 7))


def _msign(X: np.ndarray) -> np.ndarray:
    """Independent msign: the plain SVD product (full-rank random inputs)."""
    Uu, s, Vt = np.linalg.svd(X, full_matrices=False)
    return Uu @ Vt


def _nuc(X: np.ndarray) -> float:
    return float(np.sum(np.linalg.svd(X, compute_uv=False)))


def _normal_part(kind: str, W: np.ndarray, A: np.ndarray) -> float:
    """‖normal component of A‖_F/‖A‖_F from the definitions of MATH.md §4 (independent code)."""
    if kind == "frobenius":
        c = np.sum(A * W) / np.sum(W * W)
        N = c * W
    elif kind == "spectral":
        Uu, s, Vt = np.linalg.svd(W)
        Th = np.outer(Uu[:, 0], Vt[0])
        N = np.sum(A * Th) * Th
    elif kind == "oblique_rows":
        N = (np.sum(A * W, axis=1) / np.sum(W * W, axis=1))[:, None] * W
    elif kind == "oblique_cols":
        N = W * (np.sum(A * W, axis=0) / np.sum(W * W, axis=0))[None, :]
    else:
        T = W if W.shape[0] >= W.shape[1] else W.T
        At = A if W.shape[0] >= W.shape[1] else A.T
        s2 = np.sum(T * T) / T.shape[1]
        S = T.T @ At
        Nt = T @ (0.5 * (S + S.T)) / s2
        N = Nt if W.shape[0] >= W.shape[1] else Nt.T
    return float(np.linalg.norm(N) / np.linalg.norm(A))


def _start(kind: str, shape: tuple[int, int], rng: np.random.Generator, **kw) -> tuple[MACRO, np.ndarray, State]:
    opt = MACRO(kind, lr=kw.pop("lr", 0.05), radius=kw.pop("radius", 1.3), **kw)
    W = opt.initial_point(rng.standard_normal(shape))
    return opt, W, opt.init_state(W)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_variant_a_tangent_and_aligned(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> None:
    """M-1, M-2: D = P(msign(PM)) is tangent (≤ 1e-13) and ⟨D, X⟩ = ‖X‖_* (≤ 1e-12)."""
    opt, W, st = _start(kind, shape, rng, beta=0.0)
    for _ in range(5):
        G = rng.standard_normal(shape)
        Wn, st2, d = opt.step(W, G, st)
        assert d.tangency <= 1e-13
        assert d.alignment <= 1e-12
        # independent recomputation from the recorded D and X
        D, X = d.direction, d.lmo_input
        assert _normal_part(kind, W, D) <= 1e-13
        assert abs(np.sum(D * X) - _nuc(X)) <= 1e-12 * _nuc(X)
        W, st = Wn, st2


@pytest.mark.parametrize("kind", KINDS)
def test_variant_a_direction_matches_formula(kind: str, rng: np.random.Generator) -> None:
    """The first step with β = 0 equals R_W(−η·P(msign(P G))) computed here from the definitions."""
    shape = (6, 4)
    opt, W, st = _start(kind, shape, rng, beta=0.0, lr=0.07)
    G = rng.standard_normal(shape)
    X = G - _normal_vec(kind, W, G)
    Ms = _msign(X)
    D = Ms - _normal_vec(kind, W, Ms)
    expected = _retract(kind, W - 0.07 * D, 1.3)
    Wn, _, d = opt.step(W, G, st)
    np.testing.assert_allclose(Wn, expected, rtol=0, atol=1e-13 * np.linalg.norm(W))
    # alignment identity with the independently formed D and X: ⟨D, X⟩ = ‖X‖_*
    assert abs(np.sum(D * X) - _nuc(X)) <= 1e-12 * _nuc(X)
    assert abs(d.direction_frobenius - np.linalg.norm(D)) <= 1e-13 * np.linalg.norm(D)


def _retract(kind: str, Y: np.ndarray, r: float) -> np.ndarray:
    """The default retraction of each kind, from its definition (MATH.md §4)."""
    if kind == "frobenius":
        return r * Y / np.linalg.norm(Y)
    if kind == "spectral":
        return r * Y / np.linalg.svd(Y, compute_uv=False)[0]
    if kind == "oblique_rows":
        return r * Y / np.linalg.norm(Y, axis=1, keepdims=True)
    if kind == "oblique_cols":
        return r * Y / np.linalg.norm(Y, axis=0, keepdims=True)
    return r * _msign(Y)


def _normal_vec(kind: str, W: np.ndarray, A: np.ndarray) -> np.ndarray:
    if kind == "frobenius":
        return np.sum(A * W) / np.sum(W * W) * W
    if kind == "spectral":
        Uu, s, Vt = np.linalg.svd(W)
        Th = np.outer(Uu[:, 0], Vt[0])
        return np.sum(A * Th) * Th
    if kind == "oblique_rows":
        return (np.sum(A * W, axis=1) / np.sum(W * W, axis=1))[:, None] * W
    if kind == "oblique_cols":
        return W * (np.sum(A * W, axis=0) / np.sum(W * W, axis=0))[None, :]
    s2 = np.sum(W * W) / min(W.shape)
    if W.shape[0] >= W.shape[1]:
        S = W.T @ A
        return W @ (0.5 * (S + S.T)) / s2
    S = W @ A.T
    return ((0.5 * (S + S.T)) @ W) / s2


@pytest.mark.parametrize("kind", KINDS)
def test_variant_b_and_c_not_tangent(kind: str, rng: np.random.Generator) -> None:
    """M-1 negative control: without re-projection D = msign(PM) has a normal component, and the
    reported tangency equals the normal fraction computed here; C is neither tangent nor aligned."""
    shape = (6, 4)
    _, W, _ = _start(kind, shape, rng)
    G = rng.standard_normal(shape)
    measured = {}
    for v in ("B", "C"):
        opt = MACRO(kind, lr=0.05, radius=1.3, beta=0.0, reproject=v)
        st = opt.init_state(W)
        _, _, d = opt.step(W, G, st)
        X = G - _normal_vec(kind, W, G)
        D = _msign(X) if v == "B" else _msign(G)
        frac = _normal_part(kind, W, D)
        measured[v] = (d.tangency, frac, d.alignment)
        assert frac > 1e-3  # a genuine normal component
        if kind in ("frobenius", "spectral"):  # one normal direction: v_M is the normal fraction
            assert abs(d.tangency - frac) <= 1e-12
        else:
            assert d.tangency > 1e-3
    assert measured["B"][2] <= 1e-12  # B keeps the alignment
    assert measured["C"][2] > 1e-6  # C does not
    print(f"{kind}: normal fraction of D, B = {measured['B'][1]:.3e}, C = {measured['C'][1]:.3e}")


@pytest.mark.parametrize("kind,shape", [(k, SHAPES[i % 2]) for i, k in enumerate(KINDS)] + [("euclidean", (5, 3))])
def test_feasibility_over_1000_steps(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> None:
    """M-1/V-5: W stays on its manifold to 1e-14 over 1,000 float64 steps (β = 0.9, η = 0.05)."""
    opt, W, st = _start(kind, shape, rng, beta=0.9)
    worst = worst_tan = 0.0
    for _ in range(1000):
        W, st, d = opt.step(W, rng.standard_normal(shape), st)
        worst = max(worst, d.feasibility)
        worst_tan = max(worst_tan, d.tangency)
    man = opt.manifold_for(st["radius"])
    assert worst <= 1e-14 and man.violation(W) <= 1e-14
    assert worst_tan <= 1e-13
    print(f"{kind} {shape}: max feasibility {worst:.2e}, max tangency {worst_tan:.2e}")


def test_ns_backend_tangent_but_not_aligned(rng: np.random.Generator) -> None:
    """M-1/M-2: tangency of A is backend-independent; with an NS schedule the alignment equals
    Σφ(σᵢ/N)σᵢ (the schedule's exact map, evaluated here with Horner's rule)."""
    shape = (6, 4)
    for kind in KINDS:
        opt = MACRO(kind, lr=0.05, radius=1.3, beta=0.0, msign_backend="keller_jordan")
        W = opt.initial_point(rng.standard_normal(shape))
        G = rng.standard_normal(shape)
        _, _, d = opt.step(W, G, opt.init_state(W))
        assert d.tangency <= 1e-13
        X = G - _normal_vec(kind, W, G)
        s = np.linalg.svd(X, compute_uv=False)
        y = s / (np.sqrt(np.sum(s * s)) + 1e-7)
        for _ in range(5):
            y = y * (3.4445 + y * y * (-4.7750 + 2.0315 * y * y))
        expected = abs(np.sum(y * s) - np.sum(s)) / np.sum(s)
        assert abs(d.alignment - expected) <= 1e-12
        assert d.alignment > 1e-4


def test_rotation_identity_frobenius(rng: np.random.Generator) -> None:
    """M-7 / G-8: tan θ = η·s·‖D‖_F/R and ‖W⁺ − W‖_F/‖W‖_F = 2 sin(θ/2), every step."""
    R, eta = 2.0, 0.03
    opt = MACRO("frobenius", lr=eta, radius=R, scale="kj", beta=0.5)
    shape = (8, 3)
    s = np.sqrt(8 / 3)
    W = opt.initial_point(rng.standard_normal(shape))
    st = opt.init_state(W)
    for _ in range(50):
        Wn, st, d = opt.step(W, rng.standard_normal(shape), st)
        # θ from the tangent and normal components of W⁺ (accurate near 0, CLAIMS G-8)
        par = np.sum(Wn * W) / R
        perp = np.linalg.norm(Wn - par * W / R)
        tan_measured = perp / par
        tan_formula = eta * s * d.direction_frobenius / R
        assert abs(tan_measured - tan_formula) <= 1e-14 * 10 * tan_formula
        theta = np.arctan(tan_formula)
        rel = np.linalg.norm(Wn - W) / np.linalg.norm(W)
        assert abs(rel - 2 * np.sin(theta / 2)) <= 1e-13 * rel
        assert abs(d.angle - theta) <= 1e-13 * theta
        W = Wn


def test_pre_retraction_violation_and_shrink(rng: np.random.Generator) -> None:
    """M-8: c_F(W − ηsD) = √(1 + η²s²‖D‖²_F/R²) − 1 for variant A; the shrink equals cos θ."""
    R, eta = 1.5, 0.02
    opt = MACRO("frobenius", lr=eta, radius=R, beta=0.0)
    W = opt.initial_point(rng.standard_normal((5, 5)))
    _, _, d = opt.step(W, rng.standard_normal((5, 5)), opt.init_state(W))
    q = eta * d.direction_frobenius / R
    assert abs(d.pre_retraction_violation - (np.sqrt(1 + q * q) - 1)) <= 1e-12 * q * q
    assert abs(d.retraction_shrink - 1 / np.sqrt(1 + q * q)) <= 1e-15 * 10


def test_a_vs_b_first_order(rng: np.random.Generator) -> None:
    """M-5: ‖R(−ηD_A) − R(−ηD_B)‖ is O(η²) on M_F and Θ(η) on M_S (log–log slopes ±0.05)."""
    for kind, order in (("frobenius", 2.0), ("spectral", 1.0)):
        _, W, _ = _start(kind, (6, 4), rng)
        G = rng.standard_normal((6, 4))
        etas = np.array([1e-3, 1e-2 / 3, 1e-2, 1e-1 / 3])
        diffs = []
        for eta in etas:
            outs = []
            for v in ("A", "B"):
                o = MACRO(kind, lr=float(eta), radius=1.3, beta=0.0, reproject=v)
                outs.append(o.step(W, G, o.init_state(W))[0])
            diffs.append(np.linalg.norm(outs[0] - outs[1]))
        slope = np.polyfit(np.log(etas), np.log(diffs), 1)[0]
        assert abs(slope - order) <= 0.05, (kind, slope)


def test_momentum_forms(rng: np.random.Generator) -> None:
    """M-6: (b) EMA/accumulate and the two Nesterov forms give identical steps under exact msign;
    (a) projected-EMA storage differs from ambient EMA after ≥ 2 steps on a moving W."""
    shape = (6, 4)
    W0 = FrobeniusSphere(1.0).random_point(rng, shape)
    Gs = [rng.standard_normal(shape) for _ in range(20)]

    def traj(form: str) -> np.ndarray:
        o = MACRO("frobenius", lr=0.05, radius=1.0, beta=0.9, momentum=form)
        W, st = W0, o.init_state(W0)
        for G in Gs:
            W, st, _ = o.step(W, G, st)
        return W

    ema, acc = traj("ema"), traj("accumulate")
    assert np.linalg.norm(ema - acc) <= 1e-12
    assert np.linalg.norm(traj("nesterov_ema") - traj("nesterov_accumulate")) <= 1e-12
    assert np.linalg.norm(traj("projected_ema") - ema) > 1e-6


def test_exact_variant_d_and_sandwich(rng: np.random.Generator) -> None:
    """M-4: ‖X‖_*/‖D_A‖₂ ≤ OPT_T(X) ≤ ‖X‖_*; variant D attains OPT_T (suboptimality ratio 1)."""
    for kind in ("frobenius", "spectral", "stiefel"):
        _, W, _ = _start(kind, (6, 4), rng)
        G = rng.standard_normal((6, 4))
        oa = MACRO(kind, lr=0.05, radius=1.3, beta=0.0)
        _, _, da = oa.step(W, G, oa.init_state(W), compare_exact=True)
        od = MACRO(kind, lr=0.05, radius=1.3, beta=0.0, reproject="D")
        _, _, dd = od.step(W, G, od.init_state(W), compare_exact=True)
        X = G - _normal_vec(kind, W, G)
        nx = _nuc(X)
        opt_t = da.exact_value
        assert nx / da.direction_spectral <= opt_t * (1 + 1e-9) and opt_t <= nx * (1 + 1e-12)
        assert abs(da.suboptimality - nx / da.direction_spectral / opt_t) <= 1e-12
        assert abs(dd.suboptimality - 1.0) <= 1e-9 and dd.tangency <= 1e-12


def test_radius_and_scale_rules(rng: np.random.Generator) -> None:
    """Radius rules of MATH.md §4.9 and scale rules of §7.3, against their formulas."""
    W0 = rng.standard_normal((8, 2))
    assert MACRO("frobenius").resolve_radius(W0) == pytest.approx(np.linalg.norm(W0), rel=1e-15)
    assert MACRO("spectral").resolve_radius(W0) == pytest.approx(np.linalg.svd(W0)[1][0], rel=1e-15)
    assert MACRO("frobenius", radius="mup", radius_scale=2.0).resolve_radius(W0) == pytest.approx(2 * np.sqrt(8))
    assert MACRO("stiefel", radius="mup").resolve_radius(W0) == pytest.approx(2.0)
    assert MACRO("oblique_cols", radius="mup").resolve_radius(W0) == pytest.approx(2.0)
    assert MACRO("oblique_rows", radius=0.5).resolve_radius(W0) == 0.5
    for rule, s in (("kj", 2.0), ("moonlight", 0.2 * np.sqrt(8)), ("spectral_mup", 2.0), ("radius", 3.0)):
        o = MACRO("frobenius", lr=0.01, radius=3.0, scale=rule, beta=0.0)
        W = o.initial_point(W0)
        _, _, d = o.step(W, rng.standard_normal((8, 2)), o.init_state(W))
        assert d.step_scale == pytest.approx(0.01 * s, rel=1e-15)


def test_retraction_options_and_gap(rng: np.random.Generator) -> None:
    """Spectral sphere: rescale and projection retractions both land on M_S; the gap is reported
    and a degenerate point raises DegenerateGeometryError."""
    for method in ("rescale", "projection"):
        o = MACRO("spectral", lr=0.05, radius=1.0, beta=0.0, retraction=method)
        W = SpectralSphere(1.0).random_point(rng, (5, 4))
        Wn, _, d = o.step(W, rng.standard_normal((5, 4)), o.init_state(W))
        assert abs(np.linalg.svd(Wn, compute_uv=False)[0] - 1.0) <= 1e-15 * 10
        s = np.linalg.svd(W, compute_uv=False)
        assert d.spectral_gap == pytest.approx((s[0] - s[1]) / s[0], rel=1e-14)
    Wd = np.diag([1.0, 1.0, 0.5])
    o = MACRO("spectral", lr=0.05, radius=1.0)
    with pytest.raises(DegenerateGeometryError):
        o.step(Wd, rng.standard_normal((3, 3)), o.init_state(Wd))


def test_no_mutation_and_readonly_state(rng: np.random.Generator) -> None:
    """X-3: inputs and the previous state are unchanged; state buffers are read-only."""
    o = MACRO("stiefel", lr=0.05, radius=1.0, momentum="nesterov_ema")
    W = Stiefel().random_point(rng, (6, 3))
    G = rng.standard_normal((6, 3))
    st = o.init_state(W)
    W1, st1, _ = o.step(W, G, st)
    Wc, Gc = W.copy(), G.copy()
    o.step(W1, G, st1)
    assert np.array_equal(W, Wc) and np.array_equal(G, Gc)
    assert np.all(st["momentum"] == 0) and st.t == 0 and st1.t == 1
    with pytest.raises(ValueError):
        st1["momentum"][0, 0] = 1.0


def test_bad_input(rng: np.random.Generator) -> None:
    o = MACRO("frobenius", lr=0.05, radius=1.0)
    W = FrobeniusSphere(1.0).random_point(rng, (4, 3))
    st = o.init_state(W)
    with pytest.raises(OffManifoldError):
        o.step(2 * W, W, st)
    with pytest.raises(InvalidInputError):
        o.step(W, np.full((4, 3), np.nan), st)
    with pytest.raises(InvalidInputError):
        o.step(W, np.ones((3, 4)), st)
    with pytest.raises(InvalidInputError):
        MACRO("frobenius", reproject="E")
    with pytest.raises(InvalidInputError):
        MACRO("frobenius", beta=1.0)
    with pytest.raises(InvalidInputError):
        MACRO("frobenius", msign_backend="no_such_schedule")
    with pytest.raises(InvalidInputError):
        MACRO("frobenius", lr=lambda t: -1.0).step(W, W, st)
    with pytest.raises(InvalidInputError):
        o.step(W, W, {"momentum": np.zeros((4, 3))})  # type: ignore[arg-type]


def test_batched_matches_single(rng: np.random.Generator) -> None:
    """A batch of matrices steps like each matrix alone (explicit radius)."""
    o = MACRO("oblique_rows", lr=0.05, radius=1.0, beta=0.5)
    Wb = Oblique(1.0).random_point(rng, (3, 5, 4))
    Gb = rng.standard_normal((3, 5, 4))
    Wn, _, d = o.step(Wb, Gb, o.init_state(Wb))
    assert np.shape(d.tangency) == (3,)
    for i in range(3):
        Wi, _, _ = o.step(Wb[i], Gb[i], o.init_state(Wb[i]))
        np.testing.assert_allclose(Wn[i], Wi, rtol=0, atol=1e-15)
    # the Euclidean kind reduces to exact Muon with s = 1
    e = MACRO("euclidean", lr=0.1, beta=0.0)
    W = rng.standard_normal((4, 3))
    G = rng.standard_normal((4, 3))
    np.testing.assert_allclose(e.step(W, G, e.init_state(W))[0], W - 0.1 * _msign(G), atol=1e-15)
    assert isinstance(e.manifold_for(None), Euclidean)


@st.composite
def _macro_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    shape = draw(shapes(min_side=1, max_side=8))
    G = draw(matrices(shape, max_cond=1e6, min_scale_exp=-10, max_scale_exp=10))
    seed = draw(st.integers(0, 2**32 - 1))
    return kind, shape, G, seed


@given(_macro_cases())
def test_variant_a_properties_hypothesis(case) -> None:
    """M-1/M-2 over drawn shapes (1…8, tall/wide/square), gradient spectra (κ ≤ 1e6, rank
    deficient, repeated values, scale 1e±10) and manifolds: tangency ≤ 1e-13, alignment ≤ 1e-12
    (error model: ≤ √k·c·u·n_eff ≈ 2.5e-13 relative before normalisation, see the module doc)."""
    kind, shape, G, seed = case
    rng = np.random.default_rng(seed)
    opt = MACRO(kind, lr=0.05, radius=1.0, beta=0.0)
    W = opt.initial_point(rng.standard_normal(shape))
    if kind == "spectral" and min(shape) > 1:
        s = np.linalg.svd(W, compute_uv=False)
        assume((s[0] - s[1]) / s[0] > 1e-3)
    _, _, d = opt.step(W, G, opt.init_state(W))
    assert d.tangency <= 1e-13
    assert d.alignment <= 1e-12
    X = d.lmo_input
    if np.any(X != 0):
        assert abs(np.sum(d.direction * X) - _nuc(X)) <= 1e-12 * _nuc(X)


def test_power_iteration_theta(rng: np.random.Generator) -> None:
    """MATH §7.3 'Θ source': with a gap of 1/2, 60 warm-started power steps reproduce the exact-Θ
    MACRO step (error ≲ (σ₂/σ₁)^{2k} ≈ 1e-36, i.e. rounding); one power step leaves a measurable
    feasibility and tangency error (the approximate retraction of MATH §4.0)."""
    Q1, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    Q2, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    W = Q1[:, :4] @ np.diag([1.0, 0.5, 0.4, 0.1]) @ Q2.T
    Gs = [rng.standard_normal((6, 4)) for _ in range(5)]
    ex = MACRO("spectral", lr=0.01, radius=1.0, beta=0.5)
    pw = MACRO("spectral", lr=0.01, radius=1.0, beta=0.5, theta_source="power", power_steps=60)
    p1 = MACRO("spectral", lr=0.01, radius=1.0, beta=0.5, theta_source="power", power_steps=1)
    We = Wp = W1 = W
    se, sp, s1 = ex.init_state(W), pw.init_state(W), p1.init_state(W)
    for G in Gs:
        We, se, _ = ex.step(We, G, se)
        Wp, sp, dp = pw.step(Wp, G, sp)
        W1, s1, d1 = p1.step(W1, G, s1)
        assert np.linalg.norm(Wp - We) <= 1e-13
        assert dp.tangency <= 1e-13 and dp.feasibility <= 1e-14
    assert d1.feasibility > 1e-6 and d1.tangency > 1e-6
