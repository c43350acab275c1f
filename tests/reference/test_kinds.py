"""The table of manifold kinds (reference.kinds) and the per-point tangent constraints.

The constraint checks are independent of the solver code that uses them: the multiplier of the
Frobenius LMO must reproduce the manifold's own projector (G + 𝓛*(y) = P_W G), 𝓛* must be the
adjoint of the constraint map (⟨𝓛*(y), A⟩ = 0 for every tangent A), and the tangency residual of
a projected vector must be at rounding level. Tolerances: these are O(1)-conditioned float64
sums of a few products of unit-norm factors, so 64·u·(m+n) covers them with room (u = 2⁻⁵³).
"""

from __future__ import annotations

import numpy as np
import pytest

import manifold_oracle.reference as R
from manifold_oracle.conformance.profiles import PROFILES, ManifoldDecl
from manifold_oracle.gpu_impl.manifolds import MANIFOLD_NAMES, TORCH_KINDS, make_manifold
from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.golden import manifold_from_spec, manifold_spec
from manifold_oracle.reference.kinds import (
    KINDS,
    canonical_kind,
    get_kind,
    kind_names,
    kind_of,
    kind_params,
    manifold_from_kind,
    mup_radius,
)
from manifold_oracle.reference.subproblem import TangentGeometry

U64 = 2.0**-53

#: one instance per canonical kind, with non-default parameters where the kind has any
INSTANCES = {
    "euclidean": R.Euclidean(),
    "sphere": R.Sphere(2.0),
    "frobenius_sphere": R.FrobeniusSphere(1.5),
    "spectral_sphere": R.SpectralSphere(0.7),
    "oblique_rows": R.Oblique(1.3, axis="rows"),
    "oblique_cols": R.Oblique(np.array([1.0, 2.0, 0.5, 1.5]), axis="cols"),
    "stiefel": R.Stiefel(2.0),
    "orthogonal": R.Orthogonal(),
}


def test_every_kind_has_an_instance_and_round_trips() -> None:
    assert set(INSTANCES) == set(KINDS)
    for name, man in INSTANCES.items():
        assert kind_of(man) == name
        again = get_kind(name).build(**kind_params(man))
        assert type(again) is type(man) and repr(again) == repr(man)
        assert manifold_spec(manifold_from_spec(manifold_spec(man))) == manifold_spec(man)


def test_aliases_and_unknown_names() -> None:
    assert canonical_kind("frobenius") == "frobenius_sphere"
    assert canonical_kind("spectral") == "spectral_sphere"
    assert canonical_kind("oblique") == "oblique_rows"
    assert canonical_kind("oblique", axis="cols") == "oblique_cols"
    assert canonical_kind("Stiefel") == "stiefel"
    assert isinstance(manifold_from_kind("spectral", 2.0, gap_tol=1e-3), R.SpectralSphere)
    assert manifold_from_kind("stiefel", 3.0).scale == 3.0
    with pytest.raises(InvalidInputError, match="known:.*frobenius_sphere"):
        canonical_kind("hyperbolic")
    with pytest.raises(InvalidInputError):
        canonical_kind("oblique", axis="diag")
    with pytest.raises(InvalidInputError):
        canonical_kind("oblique_rows", axis="cols")  # contradicts the kind
    with pytest.raises(InvalidInputError):
        manifold_from_kind("frobenius", 1.0, gap_tol=1e-3)  # not a parameter of the kind
    with pytest.raises(InvalidInputError):
        kind_of(object())  # type: ignore[arg-type]
    assert len(set(kind_names())) == len(kind_names())


def test_gpu_and_conformance_use_the_table() -> None:
    for name in MANIFOLD_NAMES + tuple(TORCH_KINDS):
        tm = make_manifold(name, 1.5)
        assert tm.kind == canonical_kind(name)
        ref = manifold_from_kind(name, 1.5)
        assert type(tm).__name__ == type(ref).__name__
    for kind in set(KINDS) - set(TORCH_KINDS):
        with pytest.raises(InvalidInputError, match="no torch twin"):
            make_manifold(kind)
    for prof in PROFILES.values():
        for d in prof.manifolds:
            assert kind_of(d.reference()) == d.canonical_kind
    with pytest.raises(InvalidInputError):
        ManifoldDecl("x", "klein_bottle").reference()


def _cases() -> list[tuple[str, tuple[int, int]]]:
    """Every kind × shape that is a point shape (O(n): square only)."""
    return [(k, s) for k in sorted(KINDS) for s in ((6, 4), (4, 6), (4, 4))
            if not (INSTANCES[k].square_only and s[0] != s[1])]


@pytest.mark.parametrize("name,shape", _cases())
def test_tangent_constraint_is_consistent_with_the_projector(name: str, shape: tuple[int, int]) -> None:
    man = INSTANCES[name]
    if name == "oblique_cols":  # one radius per column of this shape
        man = R.Oblique(np.linspace(0.5, 2.0, shape[1]), axis="cols")
    rng = np.random.default_rng(sorted(KINDS).index(name))
    pshape = (shape[0] * shape[1],) if man.point_ndim == 1 else shape
    W = man.random_point(rng, pshape)
    geo = TangentGeometry(man, W)
    G = rng.standard_normal(geo.shape)
    tol = 64 * U64 * sum(shape)
    P = geo.project(G)
    y = geo.normal_multiplier(G)
    assert y.shape == geo.multiplier_shape()
    # the multiplier of the Frobenius LMO reproduces the manifold's projector
    assert np.linalg.norm(G + geo.adjoint(y) - P) <= tol * np.linalg.norm(G)
    # 𝓛* is the adjoint of 𝓛: its range is orthogonal to every tangent vector
    z = rng.standard_normal(geo.multiplier_shape())
    if geo.multiplier_shape() and len(geo.multiplier_shape()) == 2:
        z = 0.5 * (z + z.T)  # symmetric multipliers
    A = geo.project(rng.standard_normal(geo.shape))
    assert abs(np.sum(geo.adjoint(z) * A)) <= tol * np.linalg.norm(z) * np.linalg.norm(A) * 4
    assert geo.tangency(P) <= tol
    assert geo.tangency(np.zeros(geo.shape)) == 0.0
    # a normal vector scores O(1) (the residual can fail)
    if geo.family != "none":
        N = G - P
        assert geo.tangency(N) >= 0.1


def test_strict_spectral_frame_and_retraction_constants() -> None:
    man = R.SpectralSphere(1.0, degenerate="strict")
    W = np.diag([1.0, 1.0, 0.5])
    geo = TangentGeometry(man, W)
    assert geo.family == "normal_frame" and geo.multiplier_shape() == (2, 2)
    assert R.FrobeniusSphere(2.0).retraction_constants() == (0.25, 1.0)
    assert R.Stiefel(2.0).retraction_constants(1.0) == (0.25, 1.25)
    assert R.FrobeniusSphere(4.0).projector_lipschitz() == 0.5
    assert R.Oblique(np.array([3.0, 4.0])).frobenius_bound((2, 7)) == 5.0
    with pytest.raises(InvalidInputError):
        R.Euclidean().frobenius_bound((3, 3))


def test_mup_radius_table() -> None:
    # MATH.md §4.9 by hand for (d_out, d_in) = (16, 4)
    assert mup_radius("frobenius", 16, 4) == 4.0
    assert mup_radius("spectral_sphere", 16, 4) == mup_radius("stiefel", 16, 4) == 2.0
    assert mup_radius("oblique", 16, 4) == 1.0 and mup_radius("oblique_cols", 16, 4) == 2.0
    for name in ("sphere", "euclidean", "orthogonal"):
        with pytest.raises(InvalidInputError):
            mup_radius(name, 16, 4)
