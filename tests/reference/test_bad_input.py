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


# ------------------------------------------------- the whole public API, walked with bad inputs
# Every public callable of ``manifold_oracle.reference`` (functions and constructors), every public
# method of every manifold and the optimizers' init_state/step/initial_point are called with good
# arguments in which ONE argument is replaced by a bad value. Anything raised must be an
# OracleError subclass, and the good array arguments must come back unmodified.
import inspect  # noqa: E402
import types  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_BAD_VALUES: dict[str, object] = {
    "nan": np.full((5, 4), np.nan),
    "inf": np.full((5, 4), np.inf),
    "one_nan": np.where(np.eye(5, 4) > 0, np.nan, 1.0),
    "vector": np.ones(4),
    "3d": np.ones((2, 5, 4)),
    "wrong_shape": np.ones((3, 2)),
    "empty": np.zeros((0, 4)),
    "complex": np.ones((5, 4), dtype=complex),
    "object": np.array([[1.0, "a"], [None, 2.0]], dtype=object),
    "ragged": [[1.0, 2.0], [3.0]],
    "string": "x",
    "none": None,
    "negative": -1,
    "negative_float": -1.5,
    "zero": 0,
    "nan_scalar": float("nan"),
    "inf_scalar": float("inf"),
    "huge_int": 10**400,
    "bool": True,
    "negative_shape": (-1, 3),
    "empty_shape": (0, 3),
}
#: result records and exceptions are plain containers (no validation by design)
_CONTAINERS = {"Certificate", "Diagnostics", "GoldenCase", "GoldenCorpus", "SingularTriplet",
               "SteepestResult", "State", "Manifold"}


def _good_values(rng: np.random.Generator) -> dict[str, object]:
    X = rng.standard_normal((5, 4))
    return {"X": X, "A": X.copy(), "B": X + 1.0, "C": X @ X.T, "W": X.copy(), "G": X.copy(),
            "W_true": X.copy(), "W1_true": X.copy(), "W2_true": X[:, :2].T.copy(), "x": np.array([0.5, 0.2]),
            "sigma": np.array([3.0, 1.0, 0.5]), "fro": 2.0, "eps": 1e-7, "eps_form": "+eps",
            "schedule": "keller_jordan", "tau": 1.0, "lower": 0.1, "shape": (5, 4), "rng": rng, "n": 3,
            "k": 3, "p": 2, "batch": (), "L_R": 1.0, "radius": 1.0, "scale": 1.0, "lr": 0.1,
            "path": None, "steps": 2, "points": 101,
            "manifold": R.FrobeniusSphere(1.0), "constants": R.ProblemConstants(L=1.0, G_max=1.0, alpha=0.5, k=2),
            "coefficients": ((1.5, -0.5, 0.0),), "name": "s", "quantity": "q", "value": 1.0, "threshold": 1.0}


def _public_callables() -> list[tuple[str, object]]:
    out = []
    for name in sorted(n for n in dir(R) if not n.startswith("_")):
        obj = getattr(R, name)
        if isinstance(obj, types.ModuleType) or not callable(obj) or name in _CONTAINERS:
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue
        out.append((name, obj))
    return out


def _walk(name: str, fn, good: dict, bad_items: list[tuple[str, object]]) -> list[str]:
    """Call ``fn`` once per (parameter, bad value); return the descriptions of untyped failures."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - every public callable has a signature
        return [f"{name}: no signature"]
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
              and not p.name.startswith("_")]
    base = {p.name: good.get(p.name, p.default if p.default is not p.empty else good["X"]) for p in params}
    failures = []
    for pname in base:
        for label, bad in bad_items:
            kwargs = dict(base, **{pname: bad})
            args = [kwargs.pop(p.name) for p in params if p.kind == p.POSITIONAL_ONLY]
            before = {k: v.copy() for k, v in kwargs.items() if isinstance(v, np.ndarray)}
            try:
                fn(*args, **kwargs)
            except OracleError:
                pass
            except Exception as exc:  # noqa: BLE001 - the property under test
                failures.append(f"{name}({pname}={label}): {type(exc).__name__}: {str(exc)[:80]}")
            for k, v in before.items():
                if not np.array_equal(kwargs[k], v, equal_nan=v.dtype.kind == "f"):
                    failures.append(f"{name}({pname}={label}) modified argument {k}")
    return failures


_SLOW = {"schedule_band", "solve_exact", "steepest_direction", "load_golden"}


@pytest.mark.parametrize("name,fn", _public_callables(), ids=[n for n, _ in _public_callables()])
def test_public_function_raises_only_oracle_errors(name, fn, rng):
    bad = sorted(_BAD_VALUES.items())
    if name in _SLOW:  # each call solves or scans: a representative subset of the bad values
        bad = [(k, v) for k, v in bad if k in ("nan", "inf", "vector", "wrong_shape", "string", "negative",
                                               "nan_scalar", "none")]
    failures = _walk(name, fn, _good_values(rng), bad)
    assert not failures, "\n".join(failures)


_MANIFOLD_INSTANCES = [R.Euclidean(), R.Sphere(1.0), R.FrobeniusSphere(1.0), R.SpectralSphere(1.0),
                       R.Oblique(1.0, "rows"), R.Oblique(1.0, "cols"), R.Stiefel(1.0), R.Orthogonal()]


#: per-kind hooks of the manifold table that the reference calls with already-validated
#: arguments (a validated float64 point, a shape from as_matrix); not walked here
_KIND_HOOKS = {"tangent_constraint", "retraction_constants", "frobenius_bound", "projector_lipschitz"}


@pytest.mark.parametrize("man", _MANIFOLD_INSTANCES, ids=repr)
def test_manifold_methods_raise_only_oracle_errors(man, rng):
    shape = (4,) if isinstance(man, R.Sphere) else (4, 4) if isinstance(man, R.Orthogonal) else (5, 4)
    W = man.random_point(rng, shape)
    good = dict(_good_values(rng), W=W, Y=W + 0.1, A=man.project_tangent(W, np.ones(shape)),
                B=man.project_tangent(W, np.arange(np.prod(shape), dtype=float).reshape(shape)),
                G=np.ones(shape), V=W.copy(), shape=shape, atol=1e-8, t=0.1, Wp=W.copy())
    failures = []
    for mname in sorted(n for n in dir(man) if not n.startswith("_")):
        meth = getattr(man, mname)
        if not inspect.ismethod(meth) or mname in _KIND_HOOKS:
            continue
        failures += _walk(f"{man!r}.{mname}", meth, good, sorted(_BAD_VALUES.items()))
    assert not failures, "\n".join(failures)


_OPTIMIZERS = [R.MACRO(), R.MACRO(manifold="spectral"), R.Muon(), R.MuonH(), R.AdamW(), R.Mano(), R.SSO(),
               R.MuonBall(), R.SPEL(), R.ManifoldMuon(), R.RiemannianSGD(R.FrobeniusSphere(1.0))]


@pytest.mark.parametrize("opt", _OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_optimizer_steps_raise_only_oracle_errors(opt, rng):
    X = rng.standard_normal((5, 4))
    if isinstance(opt, (R.SPEL, R.ManifoldMuon)):
        W = R.polar_factor(X)
    elif isinstance(opt, R.RiemannianSGD):
        W = X / np.linalg.norm(X)
    else:
        W = opt.initial_point(X) if hasattr(opt, "initial_point") else X
    state = opt.init_state(W)
    good = dict(_good_values(rng), W=W, G=rng.standard_normal((5, 4)), W0=X, state=state)
    failures = []
    for mname in ("init_state", "step", "initial_point", "resolve_radius"):
        if hasattr(opt, mname):
            failures += _walk(f"{type(opt).__name__}.{mname}", getattr(opt, mname), good,
                              sorted(_BAD_VALUES.items()))
    failures += _walk(f"{type(opt).__name__}.step(state)", lambda state: opt.step(W, good["G"], state),
                      good, [("string", "x"), ("none", None), ("other_state", R.State(0, {}))])
    assert not failures, "\n".join(failures)


@settings(database=None, max_examples=60, deadline=None)
@given(data=st.data())
def test_random_bad_arrays_give_typed_errors(data):
    """Random float64 arrays of random rank with NaN/±Inf/subnormal/huge entries: every array
    function either returns finite output or raises an OracleError; the input is not modified."""
    arr = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                               elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
    fn = data.draw(st.sampled_from(LINALG + [R.sym, R.skew, lambda X: R.inner(X, X),
                                             lambda X: R.ns_apply("polar_express", X)]))
    before = arr.copy()
    try:
        out = fn(arr)
    except OracleError:
        pass
    else:
        assert np.all(np.isfinite(np.asarray(getattr(out, "sigma", out), dtype=np.float64)))
    assert np.array_equal(arr, before, equal_nan=True)
