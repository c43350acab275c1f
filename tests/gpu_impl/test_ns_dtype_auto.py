"""``ns_dtype="auto"``: the Newton–Schulz compute dtype chosen by the hardware (issue 16 item 4)."""

from __future__ import annotations

import pytest
import torch

from manifold_oracle.gpu_impl import msign as gm
from manifold_oracle.reference.errors import InvalidInputError


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(gm, "_NATIVE", {})  # the choice is cached per process: start clean
    monkeypatch.delenv(gm.NS_DTYPE_ENV, raising=False)
    return monkeypatch


def _amx_from_cpuinfo() -> bool:
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return False
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return "amx_bf16" in flags.split()


def test_auto_is_bf16_exactly_on_amx_cpus_and_cuda(fresh: pytest.MonkeyPatch) -> None:
    dt, reason = gm.native_ns_dtype("cpu")
    assert dt == (torch.bfloat16 if _amx_from_cpuinfo() else torch.float32) and reason
    assert gm.native_ns_dtype("cuda")[0] == torch.bfloat16


def test_environment_overrides_the_choice(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv(gm.NS_DTYPE_ENV, "fp64")
    assert gm.native_ns_dtype("cpu") == (torch.float64, f"{gm.NS_DTYPE_ENV}=fp64")
    fresh.setattr(gm, "_NATIVE", {})
    fresh.setenv(gm.NS_DTYPE_ENV, "auto")
    with pytest.raises(InvalidInputError):
        gm.native_ns_dtype("cpu")


def test_auto_policy_equals_the_explicit_dtype(fresh: pytest.MonkeyPatch) -> None:
    X = torch.randn(48, 20, generator=torch.Generator().manual_seed(0))
    native = gm.native_ns_dtype("cpu")[0]
    a = gm.MsignPolicy(compute_dtype="auto")(X)
    b = gm.MsignPolicy(compute_dtype=native)(X)
    assert torch.equal(a, b)
    assert torch.equal(gm.newton_schulz(X, compute_dtype="auto"), gm.newton_schulz(X, compute_dtype=native))


def test_info_shows_the_choice() -> None:
    from manifold_oracle.conformance.info import collect

    rec = collect()["torch"]["ns_dtype_auto"]
    assert rec["cpu"]["dtype"] in ("torch.bfloat16", "torch.float32") and rec["cpu"]["reason"]
