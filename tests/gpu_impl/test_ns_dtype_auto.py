"""``ns_dtype="auto"``: the Newton–Schulz compute dtype chosen by the hardware (issue 16 item 4).

Both branches of the choice (a CPU with AMX → bf16, one without → float32) are tested by
monkeypatching the detection (:func:`gpu_impl.msign.cpu_has_amx_bf16`) and the environment
override, never by depending on the machine the tests run on. The per-process cache is emptied
by the ``fresh`` fixture before each test and restored after it.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from manifold_oracle.gpu_impl import msign as gm
from manifold_oracle.gpu_impl.optim import MACRO, SSO, MuonBall, MuonH
from manifold_oracle.reference.errors import InvalidInputError

BRANCHES = [(True, "bfloat16"), (False, "float32")]  # (CPU has AMX, the concrete "auto" dtype)

MAKERS: dict[str, Callable[..., Any]] = {
    "macro": lambda ps, **kw: MACRO(ps, lr=0.02, **kw),
    "macro_spectral": lambda ps, **kw: MACRO(ps, lr=0.02, manifold="spectral", **kw),
    "muonh": lambda ps, **kw: MuonH(ps, lr=0.02, **kw),
    "sso": lambda ps, **kw: SSO(ps, lr=0.02, bisect_max_iter=20, **kw),
    "muonball": lambda ps, **kw: MuonBall(ps, lr=0.02, **kw),
}


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(gm, "_NATIVE", {})  # the choice is cached per process: start clean
    monkeypatch.delenv(gm.NS_DTYPE_ENV, raising=False)
    return monkeypatch


def _machine(mp: pytest.MonkeyPatch, amx: bool) -> None:
    """Simulate a CPU with (without) AMX: a fresh cache and the detection patched."""
    mp.setattr(gm, "_NATIVE", {})
    mp.setattr(gm, "cpu_has_amx_bf16", lambda: amx)


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in ((16, 8), (16, 8), (8, 24))]


def _grads(ps: list[torch.nn.Parameter], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g) for p in ps]


def _steps(opt: Any, ps: list[torch.nn.Parameter], seeds: range) -> None:
    for s in seeds:
        for p, gr in zip(ps, _grads(ps, s)):
            p.grad = gr
        opt.step()


def _amx_from_cpuinfo() -> bool:
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return False
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return "amx_bf16" in flags.split()


# ------------------------------------------------------------------------------ the choice


def test_auto_is_bf16_exactly_on_amx_cpus_and_cuda(fresh: pytest.MonkeyPatch) -> None:
    dt, reason = gm.native_ns_dtype("cpu")
    assert dt == (torch.bfloat16 if _amx_from_cpuinfo() else torch.float32) and reason
    assert gm.native_ns_dtype("cuda")[0] == torch.bfloat16


@pytest.mark.parametrize(("amx", "name"), BRANCHES)
def test_both_branches_and_the_choice_is_made_once(fresh: pytest.MonkeyPatch, amx: bool, name: str) -> None:
    calls: list[int] = []

    def detect() -> bool:
        calls.append(1)
        return amx

    fresh.setattr(gm, "cpu_has_amx_bf16", detect)
    dt, reason = gm.native_ns_dtype("cpu")
    assert str(dt) == f"torch.{name}" and ("AMX" in reason)
    assert gm.concrete_ns_dtype("auto") == name and gm.concrete_ns_dtype("fp64") == "float64"
    assert gm.concrete_ns_dtype(None) is None
    fresh.setattr(gm, "cpu_has_amx_bf16", lambda: not amx)  # the hardware "changes": cached choice stays
    for _ in range(3):
        assert gm.native_ns_dtype("cpu")[0] == dt and gm.resolve_dtype("auto", torch.float64) == dt
    assert len(calls) == 1


def test_environment_overrides_the_choice(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv(gm.NS_DTYPE_ENV, "fp64")
    assert gm.native_ns_dtype("cpu") == (torch.float64, f"{gm.NS_DTYPE_ENV}=fp64")
    fresh.setattr(gm, "_NATIVE", {})
    fresh.setenv(gm.NS_DTYPE_ENV, "auto")
    with pytest.raises(InvalidInputError):
        gm.native_ns_dtype("cpu")
    fresh.setattr(gm, "_NATIVE", {})
    fresh.setenv(gm.NS_DTYPE_ENV, "int8")
    with pytest.raises(InvalidInputError):
        gm.native_ns_dtype("cpu")


def test_auto_policy_equals_the_explicit_dtype(fresh: pytest.MonkeyPatch) -> None:
    X = torch.randn(48, 20, generator=torch.Generator().manual_seed(0))
    for amx, _ in BRANCHES:
        _machine(fresh, amx)
        native = gm.native_ns_dtype("cpu")[0]
        a = gm.MsignPolicy(compute_dtype="auto")(X)
        b = gm.MsignPolicy(compute_dtype=native)(X)
        assert torch.equal(a, b) and torch.equal(gm.MsignPolicy()(X), b)  # "auto" is the policy default
        assert torch.equal(gm.newton_schulz(X, compute_dtype="auto"), gm.newton_schulz(X, compute_dtype=native))


def test_info_shows_the_choice() -> None:
    from manifold_oracle.conformance.info import collect

    rec = collect()["torch"]["ns_dtype_auto"]
    assert rec["cpu"]["dtype"] in ("torch.bfloat16", "torch.float32") and rec["cpu"]["reason"]


# ------------------------------------------------------------------------------ the optimizers


@pytest.mark.parametrize(("amx", "name"), BRANCHES)
@pytest.mark.parametrize("kind", list(MAKERS))
def test_optimizer_default_is_auto_recorded_concretely(fresh: pytest.MonkeyPatch, kind: str, amx: bool,
                                                       name: str) -> None:
    """Default ``ns_dtype`` = the machine's concrete choice, in the groups, the state dict and the
    diagnostics; the steps equal those of the explicit dtype bit for bit."""
    _machine(fresh, amx)
    a, b = _params(), _params()
    oa = MAKERS[kind](a, diagnostics=True)
    ob = MAKERS[kind](b, diagnostics=True, ns_dtype=name)
    assert all(g["ns_dtype"] == name for g in oa.param_groups)
    assert [g["ns_dtype"] for g in oa.state_dict()["param_groups"]] == [name]
    _steps(oa, a, range(2))
    _steps(ob, b, range(2))
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(a, b))
    diag = oa.diagnostics()["params"]
    assert len(diag) == 3 and {r["ns_dtype"] for r in diag} == {name}


def test_environment_override_reaches_the_optimizers(fresh: pytest.MonkeyPatch) -> None:
    _machine(fresh, True)
    fresh.setenv(gm.NS_DTYPE_ENV, "float64")
    for make in MAKERS.values():
        assert make(_params()).param_groups[0]["ns_dtype"] == "float64"


def test_what_the_diagnostics_report_for_other_msign_choices(fresh: pytest.MonkeyPatch) -> None:
    _machine(fresh, False)
    for kw, want in ((dict(msign="exact"), "float64"), (dict(ns_dtype=None), "float32"),
                     (dict(msign=gm.MsignPolicy(compute_dtype="fp16")), "float16")):
        ps = _params()
        opt = MACRO(ps, diagnostics=True, fused=False, **kw)
        _steps(opt, ps, range(1))
        assert {r["ns_dtype"] for r in opt.diagnostics()["params"]} == {want}, kw


@pytest.mark.parametrize(("amx", "name"), BRANCHES)
def test_an_auto_msign_policy_is_made_concrete(fresh: pytest.MonkeyPatch, amx: bool, name: str) -> None:
    _machine(fresh, amx)
    opt = MACRO(_params(), msign=gm.MsignPolicy(schedule="polar_express", compute_dtype="auto"))
    pol = opt.param_groups[0]["msign"]
    assert isinstance(pol, gm.MsignPolicy) and pol.compute_dtype == name and pol.schedule == "polar_express"


def test_auto_on_devices_that_choose_differently_is_refused(fresh: pytest.MonkeyPatch) -> None:
    """One group, two device types whose choices differ (CPU with AMX: bf16; 'meta': float32)."""
    _machine(fresh, True)
    ps = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.empty(4, 3, device="meta"))]
    with pytest.raises(InvalidInputError, match="resolves differently"):
        MACRO(ps)


@pytest.mark.parametrize("kind", ["macro", "macro_spectral", "sso"])
def test_resume_on_another_machine_keeps_the_stored_dtype(fresh: pytest.MonkeyPatch, kind: str) -> None:
    """Saved without AMX (float32), resumed on an AMX machine (whose "auto" is bf16): the stored
    float32 wins, and the resumed steps equal the uninterrupted float32 run bit for bit; setting
    ``group["ns_dtype"]`` after loading overrides it (equal to a bf16 continuation)."""
    make = MAKERS[kind]
    _machine(fresh, False)
    ref = _params()
    o_ref = make(ref)
    _steps(o_ref, ref, range(4))
    a = _params()
    oa = make(a)
    _steps(oa, a, range(2))
    sd, w2 = oa.state_dict(), [p.detach().clone() for p in a]
    # the bf16 continuation from the same step-2 state (the override's expected result)
    b = [torch.nn.Parameter(w.clone()) for w in w2]
    ob = make(b)
    ob.load_state_dict(sd)
    for g in ob.param_groups:
        g["ns_dtype"] = "bfloat16"
    with torch.no_grad():
        for p, w in zip(b, w2):
            p.copy_(w)
    _steps(ob, b, range(2, 4))

    _machine(fresh, True)  # "another machine"
    for override in (None, "bfloat16"):
        c = [torch.nn.Parameter(w.clone()) for w in w2]
        oc = make(c)
        assert oc.param_groups[0]["ns_dtype"] == "bfloat16"  # a new run here would use bf16
        oc.load_state_dict(sd)
        assert oc.param_groups[0]["ns_dtype"] == "float32"
        if override:
            for g in oc.param_groups:
                g["ns_dtype"] = override
        with torch.no_grad():
            for p, w in zip(c, w2):
                p.copy_(w)
        _steps(oc, c, range(2, 4))
        want = b if override else ref
        assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(c, want)), override
    # the two continuations differ (the test can tell bf16 from float32)
    assert any(not torch.equal(p.detach(), q.detach()) for p, q in zip(ref, b))


def test_a_saved_auto_is_resolved_on_load(fresh: pytest.MonkeyPatch) -> None:
    _machine(fresh, False)
    opt = MACRO(_params())
    sd = opt.state_dict()
    sd["param_groups"][0]["ns_dtype"] = "auto"
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["ns_dtype"] == "float32"


# ------------------------------------------------------------------------------ train


@pytest.mark.parametrize(("amx", "name"), BRANCHES)
def test_train_default_is_auto_and_recorded(fresh: pytest.MonkeyPatch, amx: bool, name: str) -> None:
    from manifold_oracle.gpu_impl.train import (TrainConfig, build_model, build_optimizer, config_from_args,
                                                ns_dtype_in_use)

    _machine(fresh, amx)
    assert TrainConfig().msign_dtype == "auto" and config_from_args([]).msign_dtype == "auto"
    for opt_name, want in (("macro-frobenius", name), ("muonh", name), ("macro-spectral", name),
                           ("muon", None), ("adamw", None)):
        cfg = TrainConfig(optimizer=opt_name, preset="tiny", out=None, progress=False)
        bundle = build_optimizer(cfg, build_model(cfg, torch.device("cpu"), torch.float32))
        assert ns_dtype_in_use(bundle.optimizers) == want, opt_name
    cfg = config_from_args(["--optimizer", "macro-frobenius", "--model", "tiny", "--msign-dtype", "float64"])
    bundle = build_optimizer(cfg, build_model(cfg, torch.device("cpu"), torch.float32))
    assert ns_dtype_in_use(bundle.optimizers) == "float64"
