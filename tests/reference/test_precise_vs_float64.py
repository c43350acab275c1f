"""float64 reference vs reference.precise (50 digits) on freshly generated inputs.

The golden corpus fixes its inputs; these property tests draw new ones from
``reference.generators`` (spectrum-controlled: κ ≤ 1e6, rank-deficient with ``RANK_RTOL``,
repeated σ, scales 1e-30…1e30) and compare the float64 output with the 50-digit value of the
same float64 input, under the error models stated next to each check
(u = 2⁻⁵³, n = max(m, n), C = 16 as in test_golden_float64.py).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from manifold_oracle.reference import linalg, precise
from manifold_oracle.reference.generators import RANK_RTOL, matrices, points_and_tangents, shapes
from manifold_oracle.reference.manifolds import (
    Euclidean,
    FrobeniusSphere,
    Manifold,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)
from manifold_oracle.reference.schedules import ns_apply

U = 2.0**-53
C = 16.0


def _rel(got: np.ndarray, exp: np.ndarray) -> float:
    ne = float(np.linalg.norm(exp))
    d = float(np.linalg.norm(np.asarray(got) - exp))
    return d / ne if ne > 0 else d


def _kappa_r(X: np.ndarray, rank_rtol: float) -> tuple[float, int]:
    s = [float(v) for v in precise.singular_values(X, dps=30)]
    if s[0] == 0:
        return 1.0, 0
    kept = [v for v in s if v > rank_rtol * s[0]]
    return s[0] / kept[-1], len(kept)


@given(matrices(shapes(max_side=8), max_cond=1e6))
def test_msign_matches_precise(X: np.ndarray) -> None:
    exp = np.asarray(precise.to_float64(precise.msign(X, rank_rtol=RANK_RTOL)))
    got = linalg.msign(X, rank_rtol=RANK_RTOL)
    kappa, r = _kappa_r(X, RANK_RTOL)
    if r == 0:
        assert not np.any(got)
        return
    n = max(X.shape)
    # refined msign: O(k·u) + O((κ_r·u)²) relative (reference.linalg docstring)
    bound = C * U * n + C * (kappa * U) ** 2
    assert _rel(got, exp) <= bound, f"κ_r={kappa:.1e}"


@given(matrices(shapes(max_side=7), max_cond=1e6, rank_deficient=False))
def test_polar_factor_and_norms_match_precise(X: np.ndarray) -> None:
    exp = np.asarray(precise.to_float64(precise.polar_factor(X)))
    kappa, _ = _kappa_r(X, 0.0)
    n = max(X.shape)
    assert _rel(linalg.polar_factor(X), exp) <= C * U * n + C * (kappa * U) ** 2
    # singular values: Weyl, |δσᵢ| ≤ C·u·n·σ₁
    s_exp = np.asarray(precise.to_float64(precise.singular_values(X)))
    assert np.max(np.abs(linalg.singular_values(X) - s_exp)) <= C * U * n * s_exp[0]
    nuc = float(precise.nuclear_norm(X))
    assert abs(linalg.nuclear_norm(X) - nuc) <= C * U * n * len(s_exp) * s_exp[0]


@settings(max_examples=20)
@given(matrices(shapes(max_side=6), max_cond=1e3, rank_deficient=False, min_scale_exp=-6, max_scale_exp=6),
       st.sampled_from(["keller_jordan", "you_jiacheng_5", "polar_express_dion", "classical"]))
def test_ns_apply_matches_precise(X: np.ndarray, name: str) -> None:
    exp = np.asarray(precise.to_float64(precise.ns_apply(name, X)))
    # amplification of the SVD backward error C·u·n·‖X‖₂ through X ↦ U φ̃(Σ) Vᵀ is at most
    # σ₁·max divided difference of φ̃ ≤ ∏ⱼ max_{|y|≤1.3} |pⱼ′(y)| (the iterates stay below 1.3)
    from manifold_oracle.reference.schedules import get_schedule

    y = np.linspace(0.0, 1.3, 1301)
    amp = 1.0
    for a, b, c in get_schedule(name).coefficients_for(None):
        amp *= float(np.max(np.abs(a + 3 * b * y**2 + 5 * c * y**4)))
    n = max(X.shape)
    bound = C * U * n * amp / max(float(np.linalg.norm(exp)), 1e-300)
    assert _rel(ns_apply(name, X), exp) <= bound


MANIFOLDS: list[tuple[Manifold, st.SearchStrategy]] = [
    (Euclidean(), shapes(min_side=2, max_side=6)),
    (Sphere(2.0), shapes(min_side=2, max_side=3)),
    (FrobeniusSphere(1e-30), shapes(min_side=2, max_side=6)),
    (FrobeniusSphere(3.0), shapes(min_side=2, max_side=6)),
    (SpectralSphere(1e30), shapes(min_side=2, max_side=6)),
    (SpectralSphere(1.0), shapes(min_side=2, max_side=6)),
    (Oblique(0.5, axis="rows"), shapes(min_side=2, max_side=6)),
    (Oblique(2.0, axis="cols"), shapes(min_side=2, max_side=6)),
    (Stiefel(1.0), shapes(min_side=2, max_side=6)),
    (Stiefel(1e-30), shapes(min_side=2, max_side=6)),
    (Orthogonal(), shapes(min_side=2, max_side=6, kind="square")),
]


def _scale_of(man: Manifold) -> float:
    return float(getattr(man, "radius", getattr(man, "scale", 1.0))) if np.ndim(getattr(man, "radius", 1.0)) == 0 else 1.0


@settings(max_examples=12)
@given(st.data())
def test_manifold_operations_match_precise(data: st.DataObject) -> None:
    for man, shp in MANIFOLDS:
        W, xi = data.draw(points_and_tangents(man, shp), label=repr(man))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        s = _scale_of(man)
        G = rng.standard_normal(W.shape) * s
        n = max(W.shape)
        gap_factor = 1.0
        if isinstance(man, SpectralSphere):
            sv = np.linalg.svd(W, compute_uv=False)  # only sizes the tolerance (gap ≥ 1e-2 by construction)
            gap_factor = 1.0 + 2.0 * sv[0] / (sv[0] - (sv[1] if len(sv) > 1 else 0.0))
        # projection: backward-stable formula, relative to ‖P G‖, plus the frame's 1/gap (Wedin)
        pe = np.asarray(precise.to_float64(precise.project_tangent(man, W, G)))
        if np.linalg.norm(pe) > 0:
            bound = C * U * n * np.linalg.norm(G) / np.linalg.norm(pe) * gap_factor
            assert _rel(man.project_tangent(W, G), pe) <= bound, repr(man)
        # every retraction with a step of 0.3·scale (‖A‖ < scale: all retractions defined)
        A = 0.3 * s * xi
        Y = W + A
        for method in man.retractions:
            re = np.asarray(precise.to_float64(precise.retract(man, W, A, method)))
            bound = C * U * n * np.linalg.norm(Y) / np.linalg.norm(re)
            if isinstance(man, SpectralSphere) and method == "projection":
                sy = np.linalg.svd(Y, compute_uv=False)
                bound *= 1.0 + 2.0 * sy[0] / (sy[0] - (sy[1] if len(sy) > 1 else 0.0))
            if isinstance(man, Stiefel) and method == "qr":
                bound *= 1.3 / 0.7  # κ₂(W + A) ≤ (1 + 0.3)/(1 − 0.3) for ‖A‖₂ ≤ 0.3·s
            assert _rel(man.retract(W, A, method), re) <= bound, (repr(man), method)
        # tangency of a generic vector: ⟨·,·⟩ sums lose 1/v relative accuracy
        ve = float(precise.tangent_violation(man, W, G))
        if ve > 0:
            bound = C * U * n / ve * gap_factor
            assert abs(man.tangent_violation(W, G) - ve) <= bound * ve, repr(man)


def test_precise_is_deterministic_and_independent_of_global_precision() -> None:
    X = np.random.default_rng(0).standard_normal((5, 4))
    a = precise.msign(X)
    with mp.workdps(200):  # a caller's context must not change the answer
        b = precise.msign(X)
    with mp.workdps(15):
        c = precise.msign(X)
    assert a == b == c
