"""Typed errors of gpu_impl on bad input (findings of the typed-error audit, rows named per test).

Every test feeds one kind of bad input (NaN/Inf, nonsense constant, wrong shape, a group option
rewritten after construction) and asserts the project's typed error (``reference.errors``) or
the documented NaN propagation, and that nothing was written (weights and state unchanged).
No numerical golden values are involved: the expectations are the error types and NaN-ness.
"""

from __future__ import annotations

import math

import pytest
import torch

from manifold_oracle.gpu_impl import manifolds as TM
from manifold_oracle.gpu_impl.msign import MsignPolicy, native_ns_dtype
from manifold_oracle.gpu_impl.optim import MACRO, SSO, MuonBall, MuonH
from manifold_oracle.gpu_impl.optim.macro import msign_policy_of
from manifold_oracle.reference.errors import InvalidInputError

NAN, INF = float("nan"), float("inf")


def _W(m: int = 4, n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _param(m: int = 4, n: int = 3, seed: int = 0) -> torch.nn.Parameter:
    return torch.nn.Parameter(_W(m, n, seed))


def _points() -> list[tuple[TM.TorchManifold, torch.Tensor, dict]]:
    """(manifold, a point W (2, 4, 3) on it, extra kwargs of tangent_violation) per kind."""
    g = torch.Generator().manual_seed(1)
    out = []
    for name in ("euclidean", "frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel"):
        man = TM.make_manifold(name, 1.5)
        W = man.random_point((2, 4, 3), generator=g, dtype=torch.float64) if name != "euclidean" \
            else torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
        kw = {"frame": man.top_pair(W)} if name == "spectral" else {}
        out.append((man, W, kw))
    return out


# -- row 1: tangent_violation propagates NaN --------------------------------------------------
def test_tangent_violation_propagates_nan_row1() -> None:
    """A direction with a NaN (or Inf) entry is not "perfectly tangent": its residual is NaN
    (no sync, no error: the value is for diagnostics); a zero direction stays 0."""
    for man, W, kw in _points():
        A = torch.randn_like(W)
        A[0, 1, 2] = NAN
        A[1, 0, 0] = INF
        tv = man.tangent_violation(W, A, **kw)
        assert bool(torch.isnan(tv).all()), (man, tv)
        tv0 = man.tangent_violation(W, torch.zeros_like(W), **kw)
        assert bool((tv0 == 0).all()), (man, tv0)


# -- row 2: Euclidean contains / check_point --------------------------------------------------
def test_euclidean_nonfinite_point_row2() -> None:
    man = TM.Euclidean()
    W = _W()
    assert man.contains(W)
    man.check_point(W)
    W[1, 1] = NAN
    assert not man.contains(W)
    assert bool(torch.isnan(man.violation(W)))
    with pytest.raises(InvalidInputError, match="non-finite"):
        man.check_point(W)
    W[1, 1] = INF
    assert not man.contains(W)


def test_check_point_names_nonfinite_input_row2() -> None:
    """Every manifold: a NaN point is InvalidInputError (not 'off the manifold by NaN')."""
    for man, W, _ in _points():
        W = W.clone()
        W[0, 0, 0] = NAN
        with pytest.raises(InvalidInputError, match="non-finite"):
            man.check_point(W)


# -- rows 3, 30, 32: constructor constants ----------------------------------------------------
ALL_OPTS = [
    (MACRO, {"manifold": "frobenius"}),
    (MACRO, {"manifold": "spectral"}),
    (MACRO, {"manifold": "stiefel"}),
    (MuonH, {}),
    (SSO, {}),
    (MuonBall, {}),
]


@pytest.mark.parametrize("bad", [
    {"adamw_lr": INF}, {"adamw_wd": INF}, {"adamw_eps": INF}, {"adamw_eps": NAN},   # row 3
    {"lr": INF},                                                                    # row 30
    {"lr": "abc"}, {"adamw_lr": "abc"}, {"adamw_betas": (0.9,)}, {"adamw_betas": (0.9, "x")},
    {"momentum": "abc"}, {"momentum": INF},                                         # row 32
])
@pytest.mark.parametrize("cls,kw", ALL_OPTS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_nonsense_constants_rows3_30_32(cls, kw, bad) -> None:
    ps = [_param(), torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))]
    with pytest.raises(InvalidInputError):
        cls(ps, **kw, **bad)


@pytest.mark.parametrize("bad", [{"power_steps": NAN}, {"power_steps": "x"}, {"power_block": NAN},
                                 {"gap_tol": "x"}, {"radius_scale": "x"}])
def test_macro_nonsense_constants_row32(bad) -> None:
    with pytest.raises(InvalidInputError):
        MACRO([_param()], manifold="spectral", **bad)


def test_adamw_inf_lr_no_longer_corrupts_1d_param_row3() -> None:
    """Before the fix adamw_lr=inf was accepted and the 1-D parameter became non-finite."""
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="adamw_lr"):
        MACRO([_param(), b], adamw_lr=INF)


# -- rows 4, 31: Stiefel non-finite gradient; options rewritten after construction --------------
@pytest.mark.parametrize("msign", ["exact", "keller_jordan"])
@pytest.mark.parametrize("manifold,retraction", [("stiefel", None), ("stiefel", "qr"), ("oblique_rows", None),
                                                 ("frobenius", None)])
def test_nonfinite_grad_typed_refusal_row4(manifold: str, retraction: str | None, msign: str) -> None:
    p = _param()
    opt = MACRO([p], manifold=manifold, msign=msign, retraction=retraction)
    W0, st0 = p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)}
    for bad in (NAN, INF):
        p.grad = _W(seed=2)
        p.grad[0, 0] = bad
        with pytest.raises(InvalidInputError, match="non-finite gradient"):
            opt.step()
        assert torch.equal(p.detach(), W0)
        assert all(torch.equal(opt.state[p][k], v) for k, v in st0.items())
    opt.nonfinite = "skip"
    opt.step()
    assert opt.skipped_steps == 1 and opt.diagnostics()["skipped"]
    assert torch.equal(p.detach(), W0)


@pytest.mark.parametrize("key,value", [("lr", -1.0), ("lr", NAN), ("lr", INF), ("lr", "abc"),
                                       ("momentum", 1.5), ("adamw_lr", -1.0), ("adamw_eps", 0.0)])
@pytest.mark.parametrize("cls,kw", ALL_OPTS + [(MACRO, {"manifold": "frobenius", "fused": False})],
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_group_option_rewritten_after_construction_rows4_31(cls, kw, key, value) -> None:
    """An LR scheduler writes param_groups[i]['lr']: step() re-validates it (host-side) and
    refuses a nonsense value before touching anything."""
    p = _param()
    opt = cls([p], **kw)
    W0 = p.detach().clone()
    opt.param_groups[0][key] = value
    p.grad = _W(seed=3)
    with pytest.raises(InvalidInputError, match=key):
        opt.step()
    assert torch.equal(p.detach(), W0)


# -- row 5: construction on a NaN / empty matrix ----------------------------------------------
@pytest.mark.parametrize("cls,kw", ALL_OPTS[:3] + [(MACRO, {"manifold": "oblique_cols"}), (SSO, {}), (MuonBall, {})],
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_construction_nonfinite_or_empty_param_row5(cls, kw) -> None:
    bad = _W()
    bad[2, 1] = NAN
    for t in (bad, torch.empty(0, 3, dtype=torch.float64)):
        p = torch.nn.Parameter(t.clone())
        with pytest.raises(InvalidInputError):
            cls([p], **kw)


# -- row 24: SVD-based methods on NaN input -----------------------------------------------------
def test_svd_methods_nonfinite_input_row24() -> None:
    W = _W().unsqueeze(0).repeat(2, 1, 1)
    W[1, 0, 0] = NAN
    sph = TM.SpectralSphere(1.0, theta="exact")
    for f in (sph.violation, sph.project_point, TM.Stiefel(1.0).project_point):
        with pytest.raises(InvalidInputError, match="non-finite"):
            f(W)


# -- row 26: SpectralSphere integer options ---------------------------------------------------
@pytest.mark.parametrize("bad", [{"power_steps": NAN}, {"power_steps": "3"}, {"block": NAN}, {"block": 2.5},
                                 {"cert_block": NAN}, {"cert_depth": INF}, {"cert_degree": "x"}])
def test_spectral_sphere_integer_options_row26(bad) -> None:
    with pytest.raises(InvalidInputError):
        TM.SpectralSphere(1.0, **bad)


# -- row 28: ritz_products shapes ---------------------------------------------------------------
def test_ritz_products_unbatched_row28() -> None:
    W = _W(6, 4)
    X = torch.linalg.qr(_W(4, 2))[0].mT.contiguous()
    with pytest.raises(InvalidInputError, match="ritz_products"):
        TM.ritz_products(W, X)
    with pytest.raises(InvalidInputError, match="ritz_products"):
        TM.ritz_products(W[None], X[None, :, :3])


# -- row 29: SSO / MuonBall constants ---------------------------------------------------------
@pytest.mark.parametrize("bad", [{"radius_scale": -1.0}, {"radius_scale": NAN}, {"retract_alpha": NAN},
                                 {"retract_alpha": -1.0}, {"retract_alpha": "abc"}, {"retract_eps": INF},
                                 {"power_steps": NAN}, {"bisect_max_iter": "x"}, {"bisect_tol": INF}])
@pytest.mark.parametrize("cls", [SSO, MuonBall])
def test_sso_constants_row29(cls, bad) -> None:
    with pytest.raises(InvalidInputError):
        cls([_param()], **bad)


# -- rows 33, 55: msign policy ------------------------------------------------------------------
def test_msign_policy_of_empty_group_row33() -> None:
    with pytest.raises(InvalidInputError, match="msign"):
        msign_policy_of({})


def test_msign_constants_row55() -> None:
    for steps in (NAN, "x", -1, 2.5):
        with pytest.raises(InvalidInputError, match="steps"):
            MsignPolicy(steps=steps)
    with pytest.raises(InvalidInputError, match="device_type"):
        native_ns_dtype("bogus")
    assert native_ns_dtype("cpu")[0] in (torch.float32, torch.bfloat16)
    assert not math.isnan(MsignPolicy(steps=0).resolved_schedule.steps)  # steps=0 accepted, as the reference


# -- row 25: per-matrix tensor radii ------------------------------------------------------------
@pytest.mark.parametrize("cls", [TM.FrobeniusSphere, TM.SpectralSphere, TM.Oblique, TM.Stiefel])
def test_tensor_radius_values_checked_row25(cls) -> None:
    for bad in ([1.0, NAN], [1.0, INF], [1.0, -2.0], [0.0, 1.0]):
        with pytest.raises(InvalidInputError):
            cls(torch.tensor(bad, dtype=torch.float64))
    ok = cls(torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert ok is not None
    # the optimizers' hot path (their own validated radii): no read, documented opt-out
    cls(torch.tensor([1.0, NAN], dtype=torch.float64), check_radius=False)
    with pytest.raises(InvalidInputError):
        TM.make_manifold(cls.name if cls is not TM.Oblique else "oblique_rows", torch.tensor([NAN]))
    TM.make_manifold("euclidean", 1.0, check_radius=False)


# -- row 4: the exact msign inside a step (check_finite=False) ----------------------------------
def test_msign_exact_nonfinite_input_row4() -> None:
    """check_finite=True: InvalidInputError; check_finite=False (the optimizers, which flag
    non-finite gradients themselves): NaN out, as Newton–Schulz, never a raw torch error."""
    from manifold_oracle.gpu_impl.msign import msign_exact

    X = _W().unsqueeze(0).repeat(2, 1, 1)
    X[1, 2, 0] = NAN
    with pytest.raises(InvalidInputError):
        msign_exact(X)
    out = msign_exact(X, check_finite=False)
    assert out.shape == X.shape and bool(torch.isnan(out).all())


# -- rows 21, 22: gpu_impl.geodesics shapes, kinds, constants (no sync) -------------------------
def test_geodesics_bad_arguments_rows21_22() -> None:
    from manifold_oracle.gpu_impl import geodesics as G

    X = _W()
    with pytest.raises(InvalidInputError):
        G.as_spheres(X, "bogus")
    with pytest.raises(InvalidInputError):
        G.as_spheres(X, "oblique", axis="bogus")
    with pytest.raises(InvalidInputError):
        G.as_spheres(X, "stiefel")
    with pytest.raises(InvalidInputError):
        G.from_spheres(X, X, "frobenius_sphere", axis="diag")
    with pytest.raises(InvalidInputError):
        G.from_spheres(X[:2], X, "frobenius_sphere")
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    for f in (lambda: G.sphere_angle(x, y[:2]), lambda: G.sphere_log(x, y[None]),
              lambda: G.sphere_exp(x, y[:2]), lambda: G.sphere_parallel(x, y, y[:2]),
              lambda: G.sphere_rgrad(x, torch.ones(3, dtype=torch.int64)), lambda: G.sphere_project(x[:0]),
              lambda: G.sphere_exp(x, y, NAN), lambda: G.sphere_exp(x, y, -1.0), lambda: G.sphere_project(x, "a"),
              lambda: G.stiefel_exp(X, X[:3]), lambda: G.stiefel_exp(x, y), lambda: G.stiefel_exp(X, X, 0.0)):
        with pytest.raises(InvalidInputError):
            f()
    # valid calls still work: the Frobenius view round-trips, the alias 'frobenius' is the same view
    V = G.as_spheres(X, "frobenius")
    assert V.shape == (1, 12) and torch.equal(G.from_spheres(V, X, "frobenius_sphere"), X)
    assert torch.equal(G.as_spheres(X, "oblique", axis="cols"), X.mT)


# -- row 23: gpu manifolds, shapes and dtypes (host-side checks) ----------------------------------
def test_manifold_methods_bad_shapes_dtypes_row23() -> None:
    bads = [torch.ones(3, dtype=torch.float64), torch.ones(4, 3, dtype=torch.int64),
            torch.ones(4, 3, dtype=torch.complex128), torch.ones(0, 3, dtype=torch.float64), [[1.0, 2.0]]]
    for man, W, _ in _points():
        W0 = W[0]
        for bad in bads:
            for f in (lambda: man.violation(bad), lambda: man.contains(bad), lambda: man.project_point(bad),
                      lambda: man.project_tangent(W0, bad), lambda: man.tangent_violation(W0, bad),
                      lambda: man.retract(W0, bad), lambda: man.normal_component(bad, W0)):
                with pytest.raises(InvalidInputError):
                    f()
        with pytest.raises(InvalidInputError, match="one shape"):
            man.project_tangent(W0, W0.mT)
