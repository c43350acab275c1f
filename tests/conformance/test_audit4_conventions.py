"""Audit round 4 (/tmp/audit4/REPORT.md): conventions the harness could not check or declare.

* Missed 3: a >2-D parameter's momentum re-zeroed at every step is correct at step 1 only;
  ``optimizer.rule.tensor_params`` takes a second step (G₂ from the target's W₁, the declared momentum
  of step 1), so the defect fails while the correct Muons pass.
* FF3: MACRO's documented ``prenormalize`` (U/max(‖U‖_F, 1e-8) before the projection) is declarable
  (Profile.prenormalize): gpu_impl run and declared with it conforms; run with it and declared
  without, it fails (in bf16 the Newton–Schulz input rounds differently).
* Missed 2: on an oblique manifold radius 'init' keeps each row's (column's) own starting norm (the
  convention gpu_impl and reference.optim.MACRO document); ``optimizer.run.feasibility`` starts one
  case with row norms spread ×0.5–1.5, so one radius for all rows fails.
"""

from __future__ import annotations

import pytest

import audit_zoo as A
import conformance_zoo as Z
from manifold_oracle.conformance.profiles import get_profile
from manifold_oracle.conformance.runner import run
from manifold_oracle.reference.errors import InvalidInputError

TENSOR = "optimizer.rule.tensor_params"


def _result(adapter: type, check: str, seed: int = 0, mode: str = "quick") -> object:
    return {r.id: r for r in run(adapter, mode=mode, seed=seed, select=[check]).results}[check]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("good,bad", [(Z.GoodMuon32, A.ConvBufferLost32), (Z.GoodMuon16, A.ConvBufferLost16)],
                         ids=["fp32", "bf16"])
def test_conv_momentum_rezeroed_fails_tensor_params(good: type, bad: type, seed: int) -> None:
    r = _result(bad, TENSOR, seed)
    assert r.status == "fail", (r.status, r.reason, r.measured, r.tolerance)
    # caught on the second step (step 1 starts from zero momentum in both), far above the bound
    assert r.details["worst_step"] == 2 and r.measured > 1e3 * r.tolerance["bound"], r.details
    g = _result(good, TENSOR, seed)
    assert g.status == "pass", (g.status, g.reason, g.measured, g.tolerance)
    assert len(g.details["ratio_per_step"]) == 2, g.details


PRENORM_CHECKS = ["optimizer.rule.step", "optimizer.rule.trajectory", "optimizer.step.one",
                  "optimizer.direction.one_step", "optimizer.run.zero_gradient"]


def test_prenormalize_declared_conforms_and_undeclared_fails() -> None:
    good = {r.id: r for r in run(A.GpuPrenormDeclared, mode="quick", seed=0, select=PRENORM_CHECKS).results}
    assert all(r.status == "pass" for r in good.values()), {k: (r.status, r.reason, r.measured) for k, r in good.items()}
    assert set(good) == set(PRENORM_CHECKS)
    bad = {r.id: r for r in run(A.GpuPrenormUndeclared, mode="quick", seed=0, select=PRENORM_CHECKS[:3]).results}
    for r in bad.values():
        # bf16 rounding of P(U/‖U‖) vs P(U): ~10⁴× the replay bound (audit 4: 4e3–6e4×)
        assert r.status == "fail" and r.measured > 100 * r.tolerance["bound"], (r.id, r.status, r.measured)


def test_prenormalize_field_is_validated() -> None:
    p = get_profile("gpu_impl")
    assert p.prenormalize is False and p.with_options(prenormalize=True).prenormalize is True
    with pytest.raises(InvalidInputError, match="prenormalize"):
        p.with_options(prenormalize=1)
    with pytest.raises(InvalidInputError, match="prenormalize"):
        get_profile("torch_muon").with_options(prenormalize=True)


@pytest.mark.parametrize("seed", range(3))
def test_oblique_init_radius_is_per_row(seed: int) -> None:
    check = "optimizer.run.feasibility"
    good = _result(A.GpuObliqueInit, check, seed)
    assert good.status == "pass", (good.status, good.reason, good.measured, good.tolerance)
    bad = _result(A.GpuObliqueInitGlobal, check, seed)
    assert bad.status == "fail" and "norms spread" in bad.worst_case, (bad.status, bad.worst_case, bad.measured)
    # rows started at 0.5–1.5× are moved to one radius: violations of order 1 (relative), not rounding
    assert bad.measured > 1e4 * bad.tolerance["bound"], (bad.measured, bad.tolerance)
