"""Bad input raises the package's typed errors, and no function writes into its inputs."""

from __future__ import annotations

import numpy as np
import pytest

import manifold_oracle.reference as R
from manifold_oracle.reference import (
    DegenerateGeometryError,
    InvalidInputError,
    OffManifoldError,
    OracleError,
)

LINALG = [
    R.frobenius_norm, R.spectral_norm, R.nuclear_norm, R.singular_values, R.stable_rank,
    R.numerical_rank, R.top_singular_triplet, R.msign, R.polar_factor,
    lambda X: R.mclip(X, 1.0), lambda X: R.ns_apply("keller_jordan", X),
]
BAD = {
    "nan": np.array([[1.0, np.nan], [0.0, 1.0]]),
    "inf": np.array([[1.0, np.inf], [0.0, 1.0]]),
    "-inf": np.array([[1.0, 0.0], [-np.inf, 1.0]]),
    "vector": np.ones(3),
    "scalar": np.float64(2.0),
    "empty_rows": np.zeros((0, 3)),
    "empty_cols": np.zeros((3, 0)),
    "complex": np.ones((2, 2), dtype=complex),
    "strings": np.array([["a", "b"], ["c", "d"]]),
}


@pytest.mark.parametrize("fn", LINALG, ids=lambda f: getattr(f, "__name__", "lambda"))
@pytest.mark.parametrize("case", sorted(BAD))
def test_linalg_rejects_bad_input(fn, case):
    with pytest.raises(InvalidInputError):
        fn(BAD[case])


def test_errors_are_one_hierarchy():
    for cls in (R.InvalidInputError, R.OffManifoldError, R.DegenerateGeometryError, R.SolverError,
                R.NotAvailableError):
        assert issubclass(cls, OracleError)
    assert issubclass(InvalidInputError, ValueError)


def test_rank_options_are_validated():
    X = np.eye(3)
    with pytest.raises(InvalidInputError):
        R.msign(X, rank_tol=1e-3, rank_rtol=1e-3)
    with pytest.raises(InvalidInputError):
        R.msign(X, rank_tol=-1.0)
    with pytest.raises(InvalidInputError):
        R.mclip(X, 0.0)


MANIFOLDS = [R.FrobeniusSphere(1.0), R.SpectralSphere(1.0), R.Oblique(1.0, "rows"), R.Oblique(1.0, "cols"),
             R.Stiefel(1.0), R.Orthogonal()]


@pytest.mark.parametrize("man", MANIFOLDS, ids=repr)
def test_manifold_methods_reject_bad_input(rng, man):
    W = man.random_point(rng, (4, 4))
    G = rng.standard_normal((4, 4))
    with pytest.raises(InvalidInputError):
        man.project_tangent(W, BAD["nan"].repeat(2, 0).repeat(2, 1))
    with pytest.raises(InvalidInputError):
        man.project_tangent(W, G[:3])  # shape mismatch
    with pytest.raises(InvalidInputError):
        man.retract(W, G, method="no-such-retraction")
    with pytest.raises(OffManifoldError) as info:
        man.project_tangent(2.5 * W, G)  # every manifold here has a scale
    assert info.value.violation > info.value.tolerance
    with pytest.raises(OffManifoldError):
        man.retract(W + 1e-3 * G, G)
    with pytest.raises(InvalidInputError):
        man.violation(np.ones(4))


def test_degenerate_geometry_errors(rng):
    with pytest.raises(DegenerateGeometryError):
        R.SpectralSphere(1.0).project_tangent(np.eye(3), np.ones((3, 3)))  # σ₁ = σ₂ = σ₃
    with pytest.raises(DegenerateGeometryError):
        W = R.Oblique(1.0, "rows").random_point(rng, (3, 2))
        R.Oblique(1.0, "rows").retract(W, -np.vstack([W[:1], np.zeros((2, 2))]))  # zeroes a row
    with pytest.raises(DegenerateGeometryError):
        W = R.FrobeniusSphere(1.0).random_point(rng, (3, 2))
        R.FrobeniusSphere(1.0).retract(W, -W)
    with pytest.raises(DegenerateGeometryError):
        W = R.Stiefel().random_point(rng, (4, 2))
        R.Stiefel().retract(W, -W, "polar")
    with pytest.raises(InvalidInputError):
        R.SpectralSphere(1.0, degenerate="maybe")


def _calls(rng):
    """Every public function/method with float64 inputs that it must not modify."""
    X = R.random_matrix(rng, (5, 4), cond=10.0)
    out = [(f, (X.copy(),)) for f in LINALG]
    out.append((R.inner, (X.copy(), X.copy() + 1)))
    out.append((lambda s: R.ns_singular_value_map("keller_jordan", s), (np.array([3.0, 1.0, 0.5]),)))
    for man in MANIFOLDS + [R.Euclidean()]:
        shape = (4, 4) if isinstance(man, R.Orthogonal) else (5, 4)
        W = man.random_point(rng, shape)
        G = rng.standard_normal(shape)
        for name in ("violation", "contains", "check_point", "normal_basis"):
            out.append((getattr(man, name), (W.copy(),)))
        for name in ("project_tangent", "normal_component", "tangent_violation", "retract"):
            out.append((getattr(man, name), (W.copy(), 0.1 * G)))
        out.append((man.inner, (W.copy(), G.copy(), G.copy())))
        out.append((man.project_point, (W + 0.1 * G,)))
    return out


def test_no_function_mutates_its_inputs(rng):
    for fn, args in _calls(rng):
        before = [a.copy() for a in args]
        flags = [a.flags.writeable for a in args]
        fn(*args)
        for a, b, f in zip(args, before, flags):
            assert np.array_equal(a, b), f"{fn} modified its input"
            assert a.flags.writeable == f


def test_read_only_inputs_are_accepted(rng):
    X = R.random_matrix(rng, (5, 4))
    X.setflags(write=False)
    R.msign(X)
    R.polar_factor(X)
    man = R.FrobeniusSphere(1.0)
    W = man.random_point(rng, (5, 4))
    W.setflags(write=False)
    man.retract(W, man.project_tangent(W, X))
