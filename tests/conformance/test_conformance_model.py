"""The harness's profile model (conformance.expected) against the independent float64 reference
optimizers (reference.optimizers) and the tolerance model's basic properties."""

from __future__ import annotations

import numpy as np
import pytest

import manifold_oracle.conformance.expected as E
from manifold_oracle.conformance import tolerances as T
from manifold_oracle.conformance.profiles import PROFILES, ManifoldDecl, get_profile
from manifold_oracle.reference import ns_apply
from manifold_oracle.reference.optimizers import MACRO, Muon


@pytest.mark.parametrize("kind,decl", [
    ("frobenius", ManifoldDecl("f", "frobenius_sphere", radius=1.7, retraction="rescale")),
    ("oblique_rows", ManifoldDecl("o", "oblique", axis="rows", radius=1.0, retraction="normalize")),
])
def test_macro_model_equals_reference_macro(rng: np.random.Generator, kind: str, decl: ManifoldDecl) -> None:
    prof = get_profile("gpu_impl_exact").with_options(manifolds=(decl,))
    man = decl.reference()
    W = man.random_point(rng, (7, 5))
    ref = MACRO(manifold=kind, lr=0.05, beta=0.95, radius=decl.radius, msign_backend="exact")
    st = ref.init_state(W)
    Wm, Wr, M = W.copy(), W.copy(), None
    for t in range(1, 4):
        G = rng.standard_normal(W.shape)
        Wm, M = E.step(prof, Wm, G, M, lr=0.05, t=t, input_dtype="float64", manifold=man)
        Wr, st, _ = ref.step(Wr, G, st)
        assert np.linalg.norm(Wm - Wr) <= 1e-13 * np.linalg.norm(Wr)


@pytest.mark.parametrize("name,ref_profile", [("kj_muon", "keller_jordan"), ("torch_muon", "torch"),
                                               ("moonlight", "moonlight")])
def test_muon_model_equals_reference_muon(rng: np.random.Generator, name: str, ref_profile: str) -> None:
    # no cast: compare the float64 models of the same declared schedule
    prof = get_profile(name).with_options(compute_dtype="float64")
    ref = Muon(ref_profile, lr=0.03, weight_decay=0.1, msign_backend="profile")
    W = rng.standard_normal((9, 6)) / 3
    st = ref.init_state(W) if hasattr(ref, "init_state") else None
    Wm, Wr, M = W.copy(), W.copy(), None
    for t in range(1, 4):
        G = rng.standard_normal(W.shape)
        Wm, M = E.step(prof, Wm, G, M, lr=0.03, weight_decay=0.1, t=t, input_dtype="float64")
        Wr, st, _ = ref.step(Wr, G, st)
        assert np.linalg.norm(Wm - Wr) <= 1e-12 * np.linalg.norm(Wr), (name, t)


def test_cast_is_modelled_by_rounding_the_input(rng: np.random.Generator) -> None:
    prof = get_profile("torch_muon")
    G = rng.standard_normal((6, 4))
    exp = E.orthogonalise(prof, G, "float32")
    Gb = E.round_to(G, "bfloat16")
    assert not np.array_equal(Gb, G)
    assert np.allclose(exp, ns_apply(prof.ns_schedule(), Gb), rtol=0, atol=1e-15)


def test_shape_scales_match_conventions_table() -> None:
    p = get_profile("kj_muon")
    assert E.shape_scale(p, (12, 3)) == pytest.approx(2.0)
    assert E.shape_scale(p, (3, 12)) == 1.0
    m = get_profile("moonlight")
    assert E.shape_scale(m, (16, 4)) == pytest.approx(0.8)
    o = get_profile("optax_muon")  # flax layout: (d_in, d_out)
    assert E.shape_scale(o, (3, 12)) == pytest.approx(2.0)


def test_tolerance_model_properties() -> None:
    kj = get_profile("kj_muon").ns_schedule().coefficients_for(5)
    well = np.full(4, 0.5)
    ill = np.array([0.9, 0.3, 1e-3, 1e-6])
    g_well, g_ill = T.trajectory_gain(kj, well), T.trajectory_gain(kj, ill)
    assert 1.0 <= g_well < g_ill  # tiny singular values are amplified by ≈ ∏ a_j
    assert g_ill >= 3.4445**4  # the x = 1e-6 trajectory is amplified by ≈ a⁴ after step 1
    b32 = T.newton_schulz("float32", 8, kj, well).bound
    b16 = T.newton_schulz("bfloat16", 8, kj, well).bound
    ratio = (T.NS_CONSTANT["bfloat16"] / T.NS_CONSTANT["float32"]) * 2.0**16
    assert b16 == pytest.approx(max(ratio * b32, T.ASSERT_CLOSE_RTOL["bfloat16"]), rel=1e-12)
    t = T.exact_identity("float64", 10, 2.0)
    assert t.bound == pytest.approx(100 * 2.0**-53 * 10 * 2.0) and "CLAIMS" in t.provenance


def test_every_profile_declares_every_convention_field() -> None:
    fields = ("schedule", "steps", "extension", "normalisation", "eps_form", "eps", "safety", "cast_point",
              "compute_dtype", "return_dtype", "transpose_rule", "weight_layout", "ndim_handling",
              "momentum_form", "nesterov_form", "shape_scale", "weight_decay_coupling", "mutation",
              "precision_dependencies", "nan_policy", "zero_policy", "routing")
    for name, p in PROFILES.items():
        d = p.to_dict()
        for f in fields:
            assert f in d, (name, f)
        if p.has_ns:
            assert p.ns_schedule().coefficients_for(p.steps)


@pytest.mark.parametrize("name", ["ptopt_spectral_sphere", "gpu_impl_sso"])
def test_sso_model_zero_gradient_gives_zero_direction(name: str) -> None:
    """SSO with a zero gradient from zero momentum (explicit coefficients or a named schedule): the
    model gives a zero direction (msign(0) = 0, λ irrelevant) and the step is the retraction alone."""
    p = PROFILES[name]
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 4))
    Z = np.zeros_like(W)
    D, M = E.direction(p, W / np.linalg.norm(W, 2), Z, None, t=1, input_dtype="float32")
    assert not np.any(D) and not np.any(M)
    W1, _ = E.step(p, W, Z, None, lr=0.05, t=1, input_dtype="float32")
    np.testing.assert_allclose(W1, p.manifolds[0].radius * W / np.linalg.norm(W, 2), rtol=0, atol=1e-15)
