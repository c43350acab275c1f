"""optimizer.rule.step's off-manifold start (weights at half the radius) under radius_source='init'
(audit 4, FF2): the iterates keep the manifold through the start, so the expected step is taken on
the sphere of half the declared radius, not retracted to the declared one."""

from __future__ import annotations

from typing import Any

import pytest

from manifold_oracle.conformance.runner import run
from manifold_oracle.conformance.adapters.gpu_impl import GpuImplAdapter
from manifold_oracle.conformance.profiles import get_profile


class GpuImplRadiusInit(GpuImplAdapter):
    """gpu_impl MACRO with its default radius='init' (the norm at construction), honestly declared."""

    name = "gpu_impl MACRO radius='init'"
    profile = get_profile("gpu_impl").with_options(name="gpu_impl_radius_init", radius_source="init")

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  **extra: Any) -> Any:
        from manifold_oracle.gpu_impl.optim import MACRO

        p = self.get_profile()
        decl = p.manifolds[0]
        assert p.shape_scale == "none" and p.schedule == "keller_jordan"  # the profile this adapter mirrors
        return MACRO(params, lr=lr, momentum=momentum, manifold=decl.name, radius="init",
                     momentum_form=p.momentum_form, scale="one", retraction=decl.retraction,
                     msign=p.ns_schedule(), ns_steps=p.steps, ns_dtype=p.compute_dtype)


class GpuImplRadiusInitDeclaredOne(GpuImplRadiusInit):
    """Negative control: the same optimizer declared with the fixed radius (radius_source='declared')."""

    profile = get_profile("gpu_impl")


@pytest.mark.parametrize("seed", [0, 1])
def test_radius_init_declared_conforms_from_an_off_manifold_start(seed: int) -> None:
    r = {x.id: x for x in run(GpuImplRadiusInit, mode="quick", seed=seed, select=["optimizer.rule.step"]).results}
    res = r["optimizer.rule.step"]
    assert res.status == "pass", (res.measured, res.tolerance, res.worst_case)


def test_radius_init_run_declared_fixed_fails_the_off_start_case() -> None:
    res = run(GpuImplRadiusInitDeclaredOne, mode="quick", seed=0, select=["optimizer.rule.step"]).results[0]
    assert res.status == "fail" and "×0.5" in res.worst_case, (res.status, res.worst_case)
