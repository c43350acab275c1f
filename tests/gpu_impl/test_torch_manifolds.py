"""gpu_impl.manifolds against reference.manifolds (MATH.md §4) and the golden corpus.

Error models. Every operation here is a few inner products of length ≤ mn plus elementwise work,
on well-conditioned data (points on the manifold, spectral gap ≥ 1e-2 for M_S): in float64 the
relative error is ≤ γ_{mn} ≈ mn·u ≤ 1e-13 for the sizes used, so the required 1e-12 holds with a
margin. In float32 the same model gives 4·mn·u₃₂ (worst-case accumulation, factor 4 for the
chained operations); for the spectral sphere the exact Θ computed in float32 has an extra error
u₃₂·‖W‖₂/(σ₁ − σ₂) (Wedin), so its bound is divided by the relative gap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import manifold_oracle.reference as R
from manifold_oracle.gpu_impl.manifolds import (
    Euclidean,
    FrobeniusSphere,
    Oblique,
    SpectralSphere,
    Stiefel,
    TopPair,
    make_manifold,
)
from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError, OffManifoldError
from manifold_oracle.reference.generators import matrix_with_spectrum
from manifold_oracle.reference.golden import load_golden, manifold_from_spec

U32 = 2.0**-24


def _pairs():
    """(torch manifold, reference manifold, shape) covering every geometry and orientation."""
    return [
        (FrobeniusSphere(1.7), R.FrobeniusSphere(1.7), (3, 7, 5)),
        (SpectralSphere(2.0, theta="exact"), R.SpectralSphere(2.0), (3, 7, 5)),
        (SpectralSphere(0.5, theta="exact"), R.SpectralSphere(0.5), (4, 9)),
        (Oblique(1.3, "rows"), R.Oblique(1.3, "rows"), (3, 6, 8)),
        (Oblique(0.7, "cols"), R.Oblique(0.7, "cols"), (3, 6, 8)),
        (Oblique(torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64), "rows"),
         R.Oblique(np.array([0.5, 1.0, 1.5, 2.0]), "rows"), (4, 6)),
        (Stiefel(0.8), R.Stiefel(0.8), (3, 9, 4)),
        (Stiefel(1.3), R.Stiefel(1.3), (3, 4, 9)),
        (Euclidean(), R.Euclidean(), (2, 3, 4)),
    ]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("idx", range(len(_pairs())))
def test_fp64_matches_reference(idx: int, rng: np.random.Generator) -> None:
    tm, rm, shape = _pairs()[idx]
    W = rm.random_point(rng, shape)
    G = rng.standard_normal(shape)
    tW, tG = torch.from_numpy(W.copy()), torch.from_numpy(G.copy())
    P = tm.project_tangent(tW, tG).numpy()
    assert _rel(P, rm.project_tangent(W, G)) <= 1e-12
    assert _rel(tm.normal_component(tW, tG).numpy(), rm.normal_component(W, G)) <= 1e-12
    tv = tm.tangent_violation(tW, tG).numpy()
    assert np.all(np.abs(tv - rm.tangent_violation(W, G)) <= 1e-12)
    A = 0.1 * rm.project_tangent(W, G)
    for method in tm.retractions:
        out = tm.retract(tW, torch.from_numpy(A), method).numpy()
        assert _rel(out, rm.retract(W, A, method)) <= 1e-12, method
    Y = W + 0.3 * G
    if not isinstance(rm, R.SpectralSphere):  # projection of a generic Y onto M_S is degenerate
        assert _rel(tm.project_point(torch.from_numpy(Y)).numpy(), rm.project_point(Y)) <= 1e-12
        assert np.all(np.abs(tm.violation(torch.from_numpy(Y)).numpy() - rm.violation(Y)) <= 1e-12)
    assert torch.equal(tW, torch.from_numpy(W)) and torch.equal(tG, torch.from_numpy(G))  # not mutated


@pytest.mark.parametrize("idx", range(len(_pairs())))
def test_fp32_matches_reference(idx: int, rng: np.random.Generator) -> None:
    tm, rm, shape = _pairs()[idx]
    W = rm.random_point(rng, shape)
    G = rng.standard_normal(shape)
    m, n = shape[-2:]
    tol = 4 * m * n * U32
    if isinstance(rm, R.SpectralSphere):
        s = np.linalg.svd(W, compute_uv=False)
        tol /= float(np.min((s[..., 0] - s[..., 1]) / s[..., 0]))
    tW, tG = torch.from_numpy(W).float(), torch.from_numpy(G).float()
    assert _rel(tm.project_tangent(tW, tG).double().numpy(), rm.project_tangent(W, G)) <= tol
    A = 0.1 * rm.project_tangent(W, G)
    for method in tm.retractions:
        out = tm.retract(tW, torch.from_numpy(A).float(), method).double().numpy()
        assert _rel(out, rm.retract(W, A, method)) <= tol, method


def _torch_manifold_from_spec(spec: dict) -> object:
    kw = dict(spec.get("kwargs", {}))
    cls = spec["class"]
    if cls == "FrobeniusSphere":
        return FrobeniusSphere(kw["radius"])
    if cls == "SpectralSphere":
        return SpectralSphere(kw["radius"], theta="exact", gap_tol=kw.get("gap_tol", 1e-6), gap_policy="raise")
    if cls == "Oblique":
        r = kw["radius"]
        return Oblique(torch.tensor(r, dtype=torch.float64) if isinstance(r, list) else r, kw["axis"])
    if cls == "Stiefel":
        return Stiefel(kw["scale"])
    if cls == "Orthogonal":
        return Stiefel(1.0)
    if cls == "Euclidean":
        return Euclidean()
    raise AssertionError(f"unexpected class {cls}")


def test_golden_corpus_manifold_ops() -> None:
    """project_tangent / retract / tangent_violation golden cases, 1e-12 relative.

    The vector sphere ``Sphere`` (points are vectors) is not part of gpu_impl (matrix parameters
    only); its cases are counted and excluded explicitly. The spectral sphere's "strict" tangent
    space at a repeated σ₁ is not implemented in torch: those cases must raise
    DegenerateGeometryError (the documented policy) instead of returning a projection."""
    cases = [c for c in load_golden().cases if c.op in ("project_tangent", "retract", "tangent_violation")]
    vector = [c for c in cases if c.params["manifold"]["class"] == "Sphere"]
    cases = [c for c in cases if c.params["manifold"]["class"] != "Sphere"]
    assert len(cases) >= 30 and len(vector) <= 3
    strict = 0
    for c in cases:
        tm = _torch_manifold_from_spec(c.params["manifold"])
        W = torch.from_numpy(np.asarray(c.inputs["W"], dtype=np.float64))
        if c.params["manifold"].get("kwargs", {}).get("degenerate") == "strict":
            strict += 1
            with pytest.raises(DegenerateGeometryError):
                tm.project_tangent(W, torch.from_numpy(np.asarray(c.inputs["G"], dtype=np.float64)))
            continue
        exp = np.asarray(c.expected["out"], dtype=np.float64)
        if c.op == "project_tangent":
            out = tm.project_tangent(W, torch.from_numpy(np.asarray(c.inputs["G"], dtype=np.float64))).numpy()
        elif c.op == "retract":
            out = tm.retract(W, torch.from_numpy(np.asarray(c.inputs["A"], dtype=np.float64)), c.params["method"]).numpy()
        else:
            out = tm.tangent_violation(W, torch.from_numpy(np.asarray(c.inputs["A"], dtype=np.float64))).numpy()
            assert np.all(np.abs(out - exp) <= 1e-12), c.id
            continue
        assert np.linalg.norm(out - exp) <= 1e-12 * np.linalg.norm(exp), c.id
    assert strict >= 1


# -- spectral sphere: power iteration and the gap guard -------------------------------------------

def _spectral_matrix(rng: np.random.Generator, shape: tuple[int, ...], sigma: list[float]) -> np.ndarray:
    k = min(shape[-2:])
    s = np.array(sigma + [sigma[-1] * 0.9**i for i in range(1, k - len(sigma) + 1)])
    return matrix_with_spectrum(rng, s, shape)


def test_power_iteration_converges_to_exact_pair(rng: np.random.Generator) -> None:
    W = _spectral_matrix(rng, (3, 12, 8), [2.0, 1.6])  # σ₂/σ₁ = 0.8
    tW = torch.from_numpy(W)
    sph = SpectralSphere(2.0, theta="power", power_steps=60, block=2)
    st: dict[str, torch.Tensor] = {}
    p = sph.top_pair(tW, st)
    ex = sph_exact = SpectralSphere(2.0, theta="exact").top_pair(tW)
    assert isinstance(p, TopPair) and sph_exact is ex
    # width-2 iteration: the top Ritz vector's angle decays like (σ₃/σ₁)^{2k} = 0.72^{120} ≈ 1e-17
    # (rounding level); the second like (σ₃/σ₂)^{2k} = 0.9^{120} ≈ 3e-6, and a Ritz value's error is
    # the square of the angle times σ: ≈ 1.6·1e-11
    assert np.all(np.abs(p.sigma.numpy() - 2.0) <= 1e-13)
    assert np.all(np.abs(p.sigma2.numpy() - 1.6) <= 1e-10)
    th, the = p.theta.numpy(), ex.theta.numpy()
    assert np.linalg.norm(th - the) <= 1e-10
    assert st["basis"].shape == (3, 2, 8)


def test_power_pair_a_posteriori_bound(rng: np.random.Generator) -> None:
    """Wedin: sin∠(v̂, v₁) ≤ ‖Wᵀû − σ̂v̂‖/(σ̂ − σ₂) (the right residual is 0 by construction)."""
    W = _spectral_matrix(rng, (4, 10, 14), [1.0, 0.9, 0.85])
    tW = torch.from_numpy(W)
    for steps in (1, 2, 4):
        p = SpectralSphere(1.0, theta="power", power_steps=steps).top_pair(tW)
        Uu, s, Vt = np.linalg.svd(W)
        v1 = Vt[:, 0, :]
        cos = np.abs(np.sum(v1 * p.v.numpy(), axis=-1))
        sin = np.sqrt(np.maximum(0.0, 1 - cos**2))
        res = p.residual.numpy() * p.sigma.numpy()
        den = p.sigma.numpy() - s[:, 1]
        ok = den > 0
        assert np.all(sin[ok] <= res[ok] / den[ok] * (1 + 1e-8) + 1e-14)
        # Ritz values are lower bounds (interlacing), up to rounding
        assert np.all(p.sigma.numpy() <= s[:, 0] * (1 + 1e-14))
        assert np.all(p.sigma2.numpy() <= s[:, 1] * (1 + 1e-14))


def test_warm_start_state_is_replaced_not_mutated(rng: np.random.Generator) -> None:
    W = torch.from_numpy(_spectral_matrix(rng, (2, 6, 5), [1.0, 0.5]))
    sph = SpectralSphere(1.0, theta="power", power_steps=2)
    st: dict[str, torch.Tensor] = {}
    sph.top_pair(W, st)
    old = st["basis"]
    old_copy = old.clone()
    sph.top_pair(W, st)
    assert st["basis"] is not old and torch.equal(old, old_copy)


def test_gap_guard() -> None:
    W = torch.diag(torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64))  # repeated σ₁
    for theta in ("exact", "power"):
        with pytest.raises(DegenerateGeometryError):
            # power: the e₃ component decays like 0.5^{2k}; 30 steps resolve σ̂₁ = σ̂₂ = 1 exactly
            SpectralSphere(1.0, theta=theta, gap_policy="raise", power_steps=30).top_pair(W)
        p = SpectralSphere(1.0, theta=theta, gap_policy="report", power_steps=30).top_pair(W)
        assert float(p.gap) <= 1e-12
    with pytest.raises(DegenerateGeometryError):
        SpectralSphere(1.0, theta="exact", gap_policy="raise").project_tangent(W, torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(InvalidInputError):
        SpectralSphere(1.0, theta="power", block=1, gap_policy="raise")


def test_spectral_projector_with_frame_is_exactly_tangent(rng: np.random.Generator) -> None:
    W = torch.from_numpy(_spectral_matrix(rng, (5, 8, 6), [1.0, 0.7]))
    G = torch.from_numpy(rng.standard_normal((5, 8, 6)))
    sph = SpectralSphere(1.0, theta="power", power_steps=2)
    p = sph.top_pair(W)
    X = sph.project_tangent(W, G, frame=p)
    # ⟨Θ̂, P(G)⟩ = 0 to rounding for the frame used (u₆₄·‖G‖_F·few)
    assert float(sph.tangent_violation(W, X, frame=p).max()) <= 1e-14


def test_check_point_and_random_points(rng: np.random.Generator) -> None:
    g = torch.Generator().manual_seed(0)
    for name in ("frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel"):
        man = make_manifold(name, 1.5)
        W = man.random_point((3, 7, 4), generator=g, dtype=torch.float64)
        man.check_point(W, 1e-13)
        with pytest.raises(OffManifoldError):
            man.check_point(1.01 * W, 1e-6)
    with pytest.raises(InvalidInputError):
        make_manifold("hyperbolic")
    with pytest.raises(InvalidInputError):
        FrobeniusSphere(-1.0)
    with pytest.raises(InvalidInputError):
        FrobeniusSphere(1.0).retract(torch.ones(2, 2), torch.ones(2, 2), "qr")
