"""Meta-tests of the defects the blind audit found missed (audit_findings items 2, 3, 5, 6, 7): each
planted defect fails the check meant to catch it in fp32 and in bf16 Newton–Schulz, while the optimizer
it derives from passes; the correct optimizers of the audit zoo pass over 5 seeds; an iterate leaving
the manifold and a target crashing on a declared shape are FAILs with figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import audit_zoo as A
from manifold_oracle.conformance.runner import run


@pytest.mark.parametrize("defect", list(A.AUDIT_DEFECTS) + list(A.AUDIT_GEOMETRY_DEFECTS), ids=lambda c: c.__name__)
def test_audit_defect_is_caught(defect: type) -> None:
    check_id, base = {**A.AUDIT_DEFECTS, **A.AUDIT_GEOMETRY_DEFECTS}[defect]
    bad = {r.id: r for r in run(defect, mode="quick", seed=0, select=[check_id]).results}[check_id]
    assert bad.status == "fail", (defect.__name__, bad.status, bad.reason, bad.measured, bad.tolerance)
    assert bad.worst_case and "(" in bad.worst_case, bad.worst_case
    good = {r.id: r for r in run(base, mode="quick", seed=0, select=[check_id]).results}[check_id]
    assert good.status == "pass", (base.__name__, good.status, good.reason, good.measured)


def test_audit_defects_are_planted_in_both_precisions() -> None:
    names = {c.__name__ for c in A.AUDIT_DEFECTS}
    for stem in {n[:-2] for n in names}:
        assert {f"{stem}32", f"{stem}16"} <= names, stem


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("adapter", A.AUDIT_CORRECT, ids=lambda c: c.__name__)
def test_audit_correct_optimizers_pass(adapter: type, seed: int) -> None:
    report = run(adapter, mode="quick", seed=seed,
                 select=["optimizer.rule.step", "optimizer.run.off_manifold_start", "optimizer.run.feasibility",
                         "optimizer.run.vector_params"])
    st = {r.id: (r.status, r.reason, r.measured) for r in report.results}
    assert all(v[0] in ("pass", "not_applicable") for v in st.values()), st
    assert sum(v[0] == "pass" for v in st.values()) >= 2, st


def test_iterate_leaving_the_manifold_is_a_fail_naming_the_step() -> None:
    """A MACRO that skips its retraction: the trajectory checks report FAIL (not ERROR with the
    reference's OffManifoldError), naming the step and the violation c_M(W_t)."""
    import conformance_zoo as Z

    sel = ["optimizer.rule.trajectory", "optimizer.step.trajectory", "training.transformer_steps"]
    for r in run(Z.MacroRetractionSkipped, mode="quick", seed=0, select=sel).results:
        assert r.status == "fail", (r.id, r.status, r.reason)
        if "left the manifold" in r.figure:
            assert "step" in r.figure and r.measured > r.tolerance["bound"], (r.id, r.figure)


@pytest.mark.parametrize("target", ["gpu_impl", "torch_muon", "kj_muon", "ptopt_muon", "heavyball_muon"])
def test_builtin_vector_params_declarations_hold(target: str) -> None:
    """Each built-in profile's vector_params (read from the package's source: refuse, adamw, ns,
    sgd) is what the package does with a bias in a matrix's group."""
    r = run(target, mode="quick", seed=0, select=["optimizer.run.vector_params"]).results[0]
    assert r.status == "pass", (target, r.status, r.reason, r.measured, r.details)


def test_kj_muon_4d_crash_is_a_fail_with_figures() -> None:
    """muon-optimizer's SingleDeviceMuon adds the flattened (out, rest) update to the 4-D parameter
    (RuntimeError): a FAIL of optimizer.rule.tensor_params against the declared step's bound, with
    the error in the figure, not a bound of 0."""
    r = run("kj_muon", mode="quick", seed=0, select=["optimizer.rule.tensor_params"]).results[0]
    assert r.status == "fail" and r.measured == float("inf"), (r.status, r.measured)
    assert r.tolerance["bound"] > 0 and r.details["raised"] and "raised" in r.figure, (r.tolerance, r.figure)
    assert r.details["expected_step_norm"] > 0


def test_declared_adam_eps_sharpens_the_vector_check() -> None:
    """vector_params='adamw': with the declared adam_eps the 1-D parameter's first Adam step is judged
    by rounding alone, so ε added before the bias correction (32× the declared ε on the first step)
    fails; with adam_eps undeclared the same optimizer passes the loose model and the JSON says the
    check ran at reduced power."""
    sel = ["optimizer.run.vector_params"]
    bad = A.VectorAdamEpsInside32
    declared = run(bad, mode="quick", seed=0, select=sel).results[0]
    assert declared.status == "fail" and declared.tolerance["bound"] < declared.measured, declared.measured
    loose = run(bad, bad.profile.with_options(name="audit_zoo_adam_undeclared", adam_eps=None), mode="quick",
                seed=0, select=sel).results[0]
    assert loose.status == "pass" and "adam_eps" in loose.details["reduced_power"], (loose.status, loose.details)


@pytest.mark.parametrize("bits", [32, 16])
def test_declared_adam_lr_catches_a_missing_bias_correction(bits: int) -> None:
    """Audit 4: Adam without its bias correction scales every entry's first step by
    (1 − β₁)/√(1 − β₂) ≈ 3.2, which leaves the spread of the step size unchanged; with the declared
    adam_lr ('lr': the optimizer's own) the median step size is judged too (measured 2.16 = 3.16 − 1).
    With neither adam_lr nor adam_eps declared it passes (before: caught only through ε's share of
    the spread, 4.5e-6 against 1.9e-6, and not at all with ε = 0); the correct optimizer passes."""
    sel = ["optimizer.run.vector_params"]
    bad = getattr(A, f"VectorAdamNoBiasCorrection{bits}")
    r = run(bad, mode="quick", seed=0, select=sel).results[0]
    assert r.status == "fail" and r.measured > 2.0, (r.status, r.measured)
    loose = run(bad, bad.profile.with_options(name="audit_zoo_adam_undeclared", adam_lr=None, adam_eps=None), mode="quick",
                seed=0, select=sel).results[0]
    assert loose.status == "pass", (loose.status, loose.measured)
    good = run(getattr(A, f"GoodVectorAdam{bits}"), mode="quick", seed=0, select=sel).results[0]
    assert good.status == "pass", (good.measured, good.tolerance)


@pytest.mark.parametrize("seed", range(5))
def test_normalise_then_cast_declared_conforms(seed: int) -> None:
    """Audit 2 false failure: a correct Muon normalising in fp32 before its bf16 cast, declared
    normalise_then_cast, failed safety.extreme_scale/scale_invariance (1.42×: the declared map
    renormalised the cast input) and training (6e-3 against 1e-6). Every check passes now."""
    sel = ["safety.extreme_scale", "safety.scale_invariance", "training.transformer_steps",
           "spec.orthogonaliser.output", "optimizer.step.one"]
    st = {r.id: (r.status, r.measured, r.reason) for r in
          run(A.GoodMuonNormaliseThenCast16, mode="full", seed=seed, select=sel).results}
    assert all(v[0] == "pass" for v in st.values()) and len(st) == len(sel), st


def test_eps_form_differing_from_the_declared_one_is_caught_near_eps() -> None:
    """Audit 2 defect eps_plus in fp32: declared clamp, computed ‖G‖_F + ε. The extreme-scale cases
    at ‖G‖_F ∈ {0.3, 1, 3}·ε see it (at 1e-30 and 1e30 both forms give the same map)."""
    from manifold_oracle.conformance.report import failure_text

    r = run(A.EpsPlusMuon32, mode="quick", seed=0, select=["safety.extreme_scale"]).results[0]
    assert r.status == "fail" and "ε" in r.worst_case, (r.status, r.worst_case, r.measured)
    # the console groups the failing cases by their scale (they differ by nothing else)
    assert "‖G‖_F = 1ε: 1 of 1 fail" in failure_text(r), failure_text(r)
    good = run(A.Z.GoodMuon32, mode="quick", seed=0, select=["safety.extreme_scale"]).results[0]
    assert good.status == "pass", (good.measured, good.worst_case)


_EPS_MISS = ("known miss (audit 2): in bf16 the eps_plus defect moves O by 0.43 in spectral norm at ‖G‖_F = ε, "
             "inside twice the bf16 orthogonaliser bound (0.80). A Frobenius-norm check against the Higham–Mary "
             "model caught it (2–3× its bound) but also failed HeavyBall, whose (aI + bS + cS²)·X operation order "
             "rounds more than the model's a·X + (bS + cS²)·X")
_TYPO_MISS = ("known miss (audit 2): a 1 % coefficient typo (2.0351 for 2.0315) is inside the bf16 spectral bound "
              "of spec.orthogonaliser.output (the correct routine uses about half of it); it moves the output's "
              "Frobenius norm by 0.4–0.8 %, about 1–2 standard deviations of the bf16 rounding model; caught in fp32")


@pytest.mark.parametrize("defect", [
    pytest.param(A.EpsPlusMuon16, marks=pytest.mark.xfail(strict=True, reason=_EPS_MISS), id="eps_plus"),
    pytest.param(A.CoefficientTypoMuon16, marks=pytest.mark.xfail(strict=True, reason=_TYPO_MISS), id="coeff_typo"),
])
def test_bf16_routine_defects_of_audit2(defect: type) -> None:
    """The two bf16 Newton–Schulz defects of audit 2 that the harness still misses (strict: a catch
    would turn this into a failure, and the xfail would be removed)."""
    r = run(defect, mode="full", seed=0, select=["spec.orthogonaliser.output", "safety.extreme_scale"]).results
    assert any(x.status == "fail" for x in r), [(x.id, x.measured) for x in r]


def test_coefficient_typo_in_fp32_is_caught() -> None:
    r = run(A.CoefficientTypoMuon32, mode="quick", seed=0, select=["spec.orthogonaliser.output"]).results[0]
    assert r.status == "fail", (r.measured, r.tolerance)


def test_declared_map_does_not_renormalise_a_normalised_input() -> None:
    """expected.orthogonalise after the caller's normalisation (normalise_then_cast; whole-tensor
    Frobenius) applies φ to the singular values of X₀ as given. Golden values from closed forms:
    below ε the clamp makes X₀ = fl_bf16(G/ε) tiny, where φ is linear to 1e-40 relative, so
    O = φ′(0)·X₀ with φ′(0) = a₁⋯a₅ (the renormalising map gave ‖O‖₂ ≈ 1); a whole-tensor
    normalised slice with ‖X₀ᵢ‖_F < 1 gives Uᵢ·φ(Σᵢ)·Vᵢᵀ, φ by Horner's rule on numpy's SVD
    (error ≈ k·u₆₄·‖·‖)."""
    import numpy as np

    from manifold_oracle.conformance import expected as E
    from manifold_oracle.reference.schedules import get_schedule, polynomial_map

    G = np.random.default_rng(7).standard_normal((9, 6))
    G *= 1e-30 / np.linalg.norm(G)
    G = E.round_to(G, "float32")
    slope = float(np.prod([a for a, _, _ in get_schedule("keller_jordan").coefficients_for(5)]))
    X0 = E.round_to(G / 1e-7, "bfloat16")
    O = E.orthogonalise(A.MUON_NTC16_PROFILE, G, "float32")
    assert np.linalg.norm(O - slope * X0) <= 1e-12 * np.linalg.norm(slope * X0), np.linalg.norm(O)

    whole = A.Z.MUON32_PROFILE.with_options(name="whole_tensor_probe", normalisation="frobenius_whole_tensor")
    B = E.round_to(np.random.default_rng(8).standard_normal((3, 7, 5)), "float32")
    Y = B / np.linalg.norm(B)  # ‖B‖_F ≫ ε: N = ‖B‖_F, safety 1
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    gold = (U * polynomial_map("keller_jordan", s, 5)[..., None, :]) @ Vt
    got = E.orthogonalise(whole, B, "float32")
    assert np.abs(got - gold).max() <= 64 * 2.0**-53 * np.abs(gold).max(), np.abs(got - gold).max()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_correct_stiefel_macro_conforms_on_cancelled_casts(seed: int) -> None:
    """Audit 3's false failure: a correct bf16 MACRO on the Stiefel manifold failed
    optimizer.rule.step at seed 0 (7.1e-4 against 4.9e-5) because an entry of X = P_W(M) that the
    projection cancels to 1 % of |U| was judged certain to cast like ours; the allowance is now per
    entry, (|U| + |U − X|)/|X|, and the at most 4 ambiguous entries are replayed through the
    target's orthogonaliser, ×2 (rules.flip_term): seed 0 now measures 7.1e-4 against 3.2e-3."""
    r = run(A.GoodMacroStiefel16, mode="full", seed=seed,
            select=["optimizer.rule.step", "optimizer.rule.trajectory", "optimizer.step.one"])
    bad = [(x.id, x.status, x.measured, x.tolerance and x.tolerance["bound"]) for x in r.results
           if x.status != "pass"]
    assert not bad and len(r.results) == 3, bad


def test_measured_bounds_are_the_same_in_every_process() -> None:
    """The random streams of the measured model terms (rules.case_rng) are seeded without Python's
    per-process salted ``hash`` of strings (audit 3: the reorder term's bound changed from run to
    run): the same input gives the same draws under two PYTHONHASHSEEDs."""
    code = ("import numpy as np; from manifold_oracle.conformance.checks.rules import case_rng; "
            "X = np.arange(12.0).reshape(3, 4) / 7; print(repr(case_rng('reorder', X).standard_normal(3).tolist()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": s}, check=True).stdout for s in ("1", "2")}
    assert len(outs) == 1 and outs.pop().startswith("["), outs


def test_extreme_scale_failure_names_the_overflowing_normaliser() -> None:
    """A normaliser whose ‖G‖²_F overflows gives an all-zero output at ‖G‖_F = 1e20 and beyond: the
    failure's figure says so and names the usual cause (audit 3: the bare '∞' left the user
    searching); the same routine with a scaled norm passes."""
    r = run(A.SquaredNormMuon32, mode="quick", seed=0, select=["safety.extreme_scale"]).results[0]
    assert r.status == "fail" and "all zero at ‖G‖_F = 1e+20" in r.figure and "overflowing" in r.figure, r.figure
    assert run(A.Z.GoodMuon32, mode="quick", seed=0, select=["safety.extreme_scale"]).results[0].status == "pass"


@pytest.mark.parametrize("bad_cls, good_cls", [("NormNotSquared16", "GoodUnitMacroBall16"),
                                               ("NormNotSquared32", "GoodUnitMacroBall32")])
def test_projection_off_the_manifold_is_checked_from_an_unnormalised_start(bad_cls: str, good_cls: str) -> None:
    """Audit 3's miss: a MACRO projector dividing by ‖W‖_F instead of ‖W‖²_F agrees with the spec's
    on the unit sphere and differs from an un-normalised start (22 % of the first update on the
    oblique manifold). optimizer.rule.step now has a case starting at half the radius, where the
    declared step takes the spec's projector (expected.macro_point): the defect fails there and
    only there, in bf16 and fp32 NS, while the correct optimizer (weights as given) passes every
    case over 5 seeds."""
    bad = run(getattr(A, bad_cls), mode="quick", seed=0, select=["optimizer.rule.step"]).results[0]
    assert bad.status == "fail" and "off the manifold" in bad.worst_case, (bad.status, bad.worst_case)
    failing = [c["case"] for c in bad.cases if not c["passed"]]
    assert failing and all("off the manifold" in c for c in failing), failing
    for seed in range(5):
        good = run(getattr(A, good_cls), mode="quick", seed=seed, select=["optimizer.rule.step"]).results[0]
        assert good.status == "pass", (seed, good.measured, good.tolerance)
