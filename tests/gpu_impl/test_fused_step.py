"""The fused MACRO step (``fused=True``, default; ``fused="compile"``) against the eager reference
step (``fused=False``), on the Frobenius and the spectral sphere.

Both compute the formulas of MATH.md §7.1 in a different order: the fused step normalises each
matrix into a reused Newton–Schulz workspace (``gpu_impl.msign.NSWorkspace``: one bmm chain per
bucket below ``NS_LOOP_FROM``, per-matrix mm from it), merges the tangent projection of
O = msign(X) with the step and drops the positive factor a = lr·s before the Frobenius rescale
(``"compile"``: momentum, projection and normalisation in one compiled function, ‖Ŷ‖ from ‖O‖²,
⟨O, W⟩ and ‖W‖²).

Error model (float64, u = 2⁻⁵³), per step, relative to R:
* Frobenius: every entry of W' is a rescaled sum of O(1) terms, each rounded a bounded number of
  times (≤ 4 in either path, plus ≤ 2 in the rescale); the per-matrix and the batched GEMMs of NS
  sum in the same order on CPU, and a change of the summation order would add ≤ γ_n per product
  carried into W' with weight a·‖O‖/R. Bound 16u·(1 + a·‖O‖_F/R) + a‖O‖_F/R·n·u (n = the
  larger dimension).
* spectral: the top pair (u, v) of the power iteration is the same iteration on the same data;
  its rounding is amplified by 1/gap (Wedin), and σ̂₁(Y) sets the rescale: bound
  16u·n·(1 + a·‖O‖_F/(R·gap)), gap = (σ₁ − σ₂)/σ₁ of W₀ from a float64 SVD (the gap stays
  within a factor 2 over these few steps).
Momentum is computed by the same kernel on the same inputs (bit-identical), except for the
projected EMA, whose projection rounds (relative ≤ 4u·√(mn)).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import manifold_oracle.gpu_impl.msign as msign_mod
import manifold_oracle.gpu_impl.optim.macro as macro_mod
from manifold_oracle.gpu_impl.msign import MsignPolicy, NSWorkspace
from manifold_oracle.gpu_impl.optim import MACRO
from manifold_oracle.reference.errors import InvalidInputError

U64 = 2.0**-53
SHAPES = [(16, 16), (16, 16), (12, 40), (40, 12)]


def _pair(man: str, shapes: list[tuple[int, int]], fused: bool | str, dtype: torch.dtype = torch.float64,
          **kw: object) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter], MACRO, MACRO]:
    g = torch.Generator().manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in shapes]
    a.append(torch.nn.Parameter(torch.randn(5, generator=g, dtype=dtype)))  # a vector → internal AdamW
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    fo = MACRO([{"params": a, "manifold": man}], fused=fused, **kw)  # type: ignore[arg-type]
    eo = MACRO([{"params": b, "manifold": man}], fused=False, **kw)  # type: ignore[arg-type]
    return a, b, fo, eo


def _run_and_compare(man: str, fused: bool | str, form: str, variant: str, theta: str = "power",
                     shapes: list[tuple[int, int]] = SHAPES, **extra: object) -> float:
    lr = 0.05
    a, b, fo, eo = _pair(man, shapes, fused, lr=lr, momentum_form=form, reproject=variant, ns_dtype="float64",
                         scale="kj", theta=theta, **extra)
    gaps = []
    for p in a[:-1]:
        s = torch.linalg.svdvals(p.detach())
        gaps.append(float((s[0] - s[1]) / s[0]))
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for _ in range(4):
        for p, q in zip(a, b):
            gr = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.grad, q.grad = gr.clone(), gr.clone()
        fo.step()
        eo.step()
        for p, q, gap in zip(a[:-1], b[:-1], gaps):
            m, n = p.shape
            R = float(fo.state[p]["radius"])
            ao = lr * math.sqrt(max(1.0, m / n)) * math.sqrt(min(m, n)) * 1.5 / R  # a·‖O‖_F/R, σ(O) ≤ 1.5 (KJ)
            if man == "frobenius":
                bound = 16 * U64 * (1 + ao) + ao * max(m, n) * U64
            else:
                bound = 16 * U64 * max(m, n) * (1 + ao / (gap / 2))
            err = float(torch.linalg.vector_norm(p.detach() - q.detach())) / R
            assert err <= bound, (man, form, variant, err, bound)
            worst = max(worst, err / bound)
            mf, me = fo.state[p]["momentum"], eo.state[q]["momentum"]
            if form == "projected_ema":
                assert float((mf - me).norm()) <= 4 * U64 * math.sqrt(m * n) * float(me.norm())
            elif fused == "compile":
                # a compiled kernel evaluates β·M + (1−β)·G in its own order: ≤ 3 roundings of
                # β|M| + (1−β)|G| ≤ |M'| + 2|G| per entry (either side), hence in norm
                gr_norm = float(p.grad.norm())  # type: ignore[union-attr]
                assert float((mf - me).norm()) <= 6 * U64 * (float(me.norm()) + 2 * gr_norm)
            else:
                assert torch.equal(mf, me)
            assert mf._base is None  # a fresh tensor per matrix: the fused step ran, not the eager one
        assert torch.equal(a[-1], b[-1])  # AdamW part: the same code
    return worst


@pytest.mark.parametrize("man", ["frobenius", "spectral"])
@pytest.mark.parametrize("form,variant", [("ema", "A"), ("nesterov_ema", "A"), ("projected_ema", "A"),
                                          ("accumulate", "B"), ("ema", "C")])
def test_fused_matches_eager_float64(man: str, form: str, variant: str) -> None:
    # tightness (bound ÷ measured), measured: Frobenius 4.5–8; spectral 17–80 (the n/gap factor of
    # the Wedin term is a worst case; variant C on the spectral sphere is bit-identical)
    assert _run_and_compare(man, True, form, variant) < 1.0


@pytest.mark.parametrize("man,form,variant", [("frobenius", "ema", "A"), ("frobenius", "nesterov_ema", "A"),
                                              ("frobenius", "projected_ema", "A"), ("frobenius", "ema", "C"),
                                              ("spectral", "ema", "A"), ("spectral", "projected_ema", "A")])
def test_fused_compile_matches_eager_float64(man: str, form: str, variant: str) -> None:
    """``fused="compile"`` (compiled momentum/projection/normalisation function; Frobenius:
    compiled scales with the analytic ‖Ŷ‖ and compiled commit; spectral: compiled retraction
    input Y): same bounds; the analytic norm adds ≤ 3u·(1 + 2a‖O‖/R)² relative, inside the 16u
    term for a‖O‖/R ≤ 1, and the reductions (‖X‖ in float64, ⟨U, W⟩, uᵀUv, uᵀOv) differ from the
    eager ones by summation order only (tightness measured: Frobenius 3.2)."""
    assert _run_and_compare(man, "compile", form, variant) < 1.0


def test_fused_compile_exact_msign_matches_eager_float64() -> None:
    """``fused="compile"`` with ``msign="exact"`` (no NS workspace: the float64 polar factor, kept
    in W's dtype) — the same bound as the NS path."""
    assert _run_and_compare("frobenius", "compile", "ema", "A", msign="exact") < 1.0


@pytest.mark.parametrize("man", ["frobenius", "spectral"])
def test_fused_per_matrix_ns_path_matches_eager(man: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets with min(m, n) ≥ NS_LOOP_FROM iterate matrix by matrix (mm) instead of one bmm chain:
    forced here on small shapes (the same bound as above)."""
    monkeypatch.setattr(msign_mod, "NS_LOOP_FROM", 1)
    assert _run_and_compare(man, True, "ema", "A") < 1.0


@pytest.mark.parametrize("cd,u", [("bfloat16", 2.0**-8), ("float32", 2.0**-24), ("float64", U64)])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("cast", ["before", "after"])
def test_ns_workspace_matches_newton_schulz(cd: str, u: float, batched: bool, cast: str) -> None:
    """NSWorkspace (normalise into a reused stack, iterate in place, bmm chain or per-matrix mm)
    against ``MsignPolicy.__call__`` (one allocating call per matrix). Same normalisation; the
    GEMMs may sum in another order (bmm vs addmm; a tall input iterated with the Gram matrix XᵀX
    on the right instead of transposed): each of the 3 products of a step then differs by
    ≤ γ_k·|A||B| with k ≤ max(m, n), and the NS map does not amplify it near its fixed points, so
    ‖ΔO‖_F/‖O‖_F ≤ steps·max(m, n)·u of the compute dtype. Measured: 0 for wide and square inputs
    and in bf16; ≤ 0.08 of the bound for tall inputs in float32/float64."""
    for sch in ("keller_jordan", "polar_express"):
        pol = MsignPolicy(schedule=sch, compute_dtype=cd, out_dtype=cd, cast=cast)
        steps = pol.resolved_schedule.steps  # type: ignore[union-attr]
        for B, m, n in [(3, 24, 40), (2, 40, 24), (2, 32, 32)]:
            g = torch.Generator().manual_seed(B * m + n)
            xs = [torch.randn(m, n, generator=g) for _ in range(B)]
            ws = NSWorkspace(pol, B, m, n, torch.float32, torch.device("cpu"), batched=batched)
            for i, x in enumerate(xs):
                ws.load(i, x)
            ws.run()
            for i, x in enumerate(xs):
                ref = pol(x, check_finite=False).double()
                rel = float(torch.linalg.vector_norm(ws.out(i).double() - ref) / torch.linalg.vector_norm(ref))
                assert ws.out(i).shape == (m, n) and ws.out(i).dtype == ws.cd
                assert rel <= steps * max(m, n) * u, (sch, cd, batched, cast, (B, m, n), rel)


def test_ns_workspace_refuses_the_exact_policy() -> None:
    with pytest.raises(InvalidInputError, match="Newton"):
        NSWorkspace(MsignPolicy(schedule="exact"), 1, 4, 4, torch.float32, torch.device("cpu"))


def test_fused_spectral_theta_exact() -> None:
    assert _run_and_compare("spectral", True, "ema", "A", theta="exact") < 1.0  # tightness ≈ 28


@pytest.mark.parametrize("man", ["frobenius", "spectral"])
def test_fused_float32_default_numerics_stay_feasible(man: str) -> None:
    """fp32 weights, bf16 KJ msign (pinned: torch.optim.Muon's numerics): the fused and eager steps differ by bf16 rounding
    of batched vs per-matrix GEMMs, but both land on the sphere to fp32 rounding: |‖W'‖ − R|/R ≤
    4·u32·√(mn) (Frobenius: a norm and a scaling). On the spectral sphere both rescale by the same
    3-step power iteration's σ̂₁, whose error dominates: the fused step's exact violation (float64
    SVD) must stay within 4× the eager reference's plus 1e-6 (≈ 16·u32, the rescale's rounding)."""
    a, b, fo, eo = _pair(man, [(32, 32), (32, 64)], True, dtype=torch.float32, lr=0.02, ns_dtype="bfloat16")
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        for p, q in zip(a, b):
            gr = torch.randn(p.shape, generator=g)
            p.grad, q.grad = gr.clone(), gr.clone()
        fo.step()
        eo.step()
    for p, q in zip(a[:-1], b[:-1]):
        R = float(fo.state[p]["radius"])
        if man == "frobenius":
            viol = abs(float(p.detach().double().norm()) - R) / R
            assert viol <= 4 * 2.0**-24 * math.sqrt(p.numel())
        else:
            vf = abs(float(torch.linalg.matrix_norm(p.detach().double(), ord=2)) - R) / R
            ve = abs(float(torch.linalg.matrix_norm(q.detach().double(), ord=2)) - R) / R
            assert vf <= 4 * ve + 1e-6, (vf, ve)


@pytest.mark.parametrize("nonfinite", ["raise", "skip"])
@pytest.mark.parametrize("man,fused", [("frobenius", True), ("spectral", True), ("frobenius", "compile"),
                                       ("spectral", "compile")])
def test_fused_nonfinite_gradient_touches_nothing(nonfinite: str, man: str, fused: bool | str) -> None:
    a, _, fo, _ = _pair(man, [(8, 8), (8, 8)], fused, nonfinite=nonfinite)
    for p in a:
        p.grad = torch.ones_like(p)
    fo.step()
    before = [p.detach().clone() for p in a]
    state = [{k: v.clone() for k, v in fo.state[p].items() if isinstance(v, torch.Tensor)} for p in a[:-1]]
    a[1].grad[2, 3] = float("nan")
    if nonfinite == "raise":
        with pytest.raises(InvalidInputError, match="non-finite gradient"):
            fo.step()
    else:
        fo.step()
        assert fo.skipped_steps == 1 and fo.diagnostics()["skipped"]
    assert all(torch.equal(p.detach(), w) for p, w in zip(a, before))
    for p, st in zip(a[:-1], state):
        assert all(torch.equal(fo.state[p][k], v) for k, v in st.items())


def test_fused_falls_back_to_eager_where_it_does_not_apply() -> None:
    """Diagnostics, other manifolds, the exp retraction: the eager step runs (stacked state views)."""
    a, _, fo, _ = _pair("frobenius", [(8, 8), (8, 8)], True, retraction="exp")
    for p in a:
        p.grad = torch.ones_like(p)
    fo.step()
    assert fo.state[a[0]]["momentum"]._base is not None


def test_fused_flag_validated() -> None:
    with pytest.raises(InvalidInputError, match="fused"):
        MACRO([torch.nn.Parameter(torch.randn(4, 4))], fused="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="fused"):
        MACRO([torch.nn.Parameter(torch.randn(4, 4))], fused=1)  # type: ignore[arg-type]


def test_fused_spectral_gap_raise_touches_nothing() -> None:
    """gap_policy="raise": a gap estimate below gap_tol refuses the whole step (typed error)."""
    from manifold_oracle.reference.errors import DegenerateGeometryError

    g = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(8, 8, generator=g)) for _ in range(2)]
    opt = MACRO([{"params": ps, "manifold": "spectral"}], gap_policy="raise", theta="certified")
    for p in ps:
        p.grad = torch.randn(8, 8, generator=g)
    opt.step()  # the gaps of these matrices (≈ 0.1–0.3) pass the default gap_tol 1e-6
    opt.param_groups[0]["gap_tol"] = 0.99
    before = [p.detach().clone() for p in ps]
    mom = [opt.state[p]["momentum"].clone() for p in ps]
    with pytest.raises(DegenerateGeometryError, match="no weight or state was changed"):
        opt.step()
    assert all(torch.equal(p.detach(), b) for p, b in zip(ps, before))
    assert all(torch.equal(opt.state[p]["momentum"], m) for p, m in zip(ps, mom))


@pytest.mark.parametrize("man,fused", [("frobenius", True), ("frobenius", "compile"), ("spectral", True),
                                       ("spectral", "compile")])
def test_fused_resume_is_bit_identical(man: str, fused: bool | str) -> None:
    """Resume protocol of the module docstring (construct, load_state_dict, restore the weights):
    the next fused step equals the uninterrupted run's bit for bit (the NS workspace is scratch,
    not state)."""
    a, _, fo, _ = _pair(man, SHAPES, fused, ns_dtype="float64")
    g = torch.Generator().manual_seed(5)
    grads = [[torch.randn(p.shape, generator=g, dtype=p.dtype) for p in a] for _ in range(3)]
    for step in grads[:2]:
        for p, gr in zip(a, step):
            p.grad = gr.clone()
        fo.step()
    saved_state = copy.deepcopy(fo.state_dict())
    saved_w = [p.detach().clone() for p in a]
    b = [torch.nn.Parameter(w.clone()) for w in saved_w]
    fb = MACRO([{"params": b, "manifold": man}], fused=fused, ns_dtype="float64")
    fb.load_state_dict(saved_state)
    with torch.no_grad():
        for q, w in zip(b, saved_w):
            q.copy_(w)
    for p, q, gr in zip(a, b, grads[2]):
        p.grad, q.grad = gr.clone(), gr.clone()
    fo.step()
    fb.step()
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(a, b))


@pytest.mark.parametrize("fused", [True, "compile"])
def test_fused_frobenius_chunked_buckets_match_eager(fused: bool | str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets of several equal-shape matrices: fused=True normalises a whole bucket in one
    ``NSWorkspace.load_all`` (X built in the workspace's input stack), ``"compile"`` calls its
    compiled functions on chunks of ``COMPILE_CHUNK`` matrices and the remainder one by one
    (forced to chunks of 2 here: 5 wide + 3 tall matrices = chunks of 2 and single calls) — the
    same bound as above (tightness measured: 6.8 fused=True, 5.2 "compile")."""
    monkeypatch.setattr(macro_mod, "COMPILE_CHUNK", 2)
    assert _run_and_compare("frobenius", fused, "ema", "A", shapes=[(12, 20)] * 5 + [(20, 12)] * 3) < 1.0


@pytest.mark.parametrize("cast", ["before", "after"])
@pytest.mark.parametrize("shape", [(3, 24, 40), (2, 40, 24)])
def test_ns_workspace_load_all_equals_load(cast: str, shape: tuple[int, int, int]) -> None:
    """``load_all`` (one copy, batched norm, one division) writes the same slot values as ``load``
    per matrix: the same elementwise operations and per-matrix norms (bitwise equal)."""
    B, m, n = shape
    pol = MsignPolicy(schedule="keller_jordan", compute_dtype="bfloat16", cast=cast)
    g = torch.Generator().manual_seed(7)
    X = torch.randn(B, m, n, generator=g) * torch.logspace(-3, 3, B)[:, None, None]
    one = NSWorkspace(pol, B, m, n, torch.float32, torch.device("cpu"))
    many = NSWorkspace(pol, B, m, n, torch.float32, torch.device("cpu"))
    for i in range(B):
        one.load(i, X[i])
    stack = many.input_stack()
    assert stack.shape == (B, m, n) and stack.dtype == torch.float32 and many.input_stack() is stack
    stack.copy_(X)
    many.load_all(stack)
    assert torch.equal(one.Z, many.Z)
    one.run()
    many.run()
    assert torch.equal(one.out_all(), many.out_all()) and many.out_all().shape == (B, m, n)


def test_fused_compile_float32_norm_overflow_falls_back() -> None:
    """fused="compile" accumulates ‖X‖² in float32 on CPU; a gradient of 2⁷⁰ times the usual size
    makes it overflow (‖X‖² ≈ 2¹⁴⁰ > 3.4e38), and that matrix is normalised again eagerly (float64
    fallback of the norm, as fused=True does). Scaling by a power of two is exact, so both paths
    see the same Newton–Schulz input and output; they differ only in the rounding of the
    Frobenius rescale (fp32, the module's Frobenius bound with u = 2⁻²⁴). Without the fallback
    the slot would hold X/inf = 0, hence O = 0 and no update: ‖ΔW‖/R ≈ a‖O‖/R ≫ the bound."""
    lr = 0.05
    a, b, fo, eo = _pair("frobenius", [(16, 16), (16, 16), (12, 40)], "compile", dtype=torch.float32, lr=lr,
                         ns_dtype="bfloat16")
    eo.fused = True
    g = torch.Generator().manual_seed(3)
    for p, q in zip(a, b):
        gr = torch.randn(p.shape, generator=g) * 2.0**70
        p.grad, q.grad = gr.clone(), gr.clone()
    fo.step()
    eo.step()
    u32 = 2.0**-24
    for p, q in zip(a[:-1], b[:-1]):
        m, n = p.shape
        R = float(fo.state[p]["radius"])
        ao = lr * math.sqrt(min(m, n)) * 1.5 / R  # a·‖O‖_F/R, σ(O) ≤ 1.5 (KJ), scale "one"
        err = float(torch.linalg.vector_norm(p.detach().double() - q.detach().double())) / R
        assert err <= 16 * u32 * (1 + ao) + ao * max(m, n) * u32, err


def test_fused_compile_normal_dominated_input_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """fused="compile" takes ‖X‖² = ‖U‖² − ⟨U, W⟩²/‖W‖² from its first pass (float32 on CPU), whose
    rounding is ≈ 3u·‖U‖²/‖X‖² relative. For a gradient that is W plus a 1e-3 tangent part
    (‖U‖²/‖X‖² ≈ 10⁶) that would be an error of order 0.1 in the normaliser; the normal component
    above half of ‖U‖² is detected and that matrix normalised eagerly. Checked on what Newton–
    Schulz receives: every slot has ‖X/(s·N_ε(‖X‖))‖_F = 1/s up to the bf16 rounding of its
    entries (relative ≤ u_bf16 = 2⁻⁸, a worst case: the generic slots measure 8e-5) and the float32
    normaliser. With the cancelled ‖X‖² used as is, the normal-dominated slot measured a relative
    deviation of 3.4e-2 against the bound 3.9e-3."""
    lr = 0.05
    a, b, fo, eo = _pair("frobenius", [(16, 16), (16, 16), (12, 40)], "compile", dtype=torch.float32, lr=lr,
                         ns_dtype="bfloat16")
    g = torch.Generator().manual_seed(4)
    for k, p in enumerate(a):
        gr = torch.randn(p.shape, generator=g)
        if k == 0:
            gr = p.detach() / torch.linalg.vector_norm(p.detach()) + 1e-3 * gr / torch.linalg.vector_norm(gr)
        p.grad = gr
    norms: list[torch.Tensor] = []
    run = NSWorkspace.run

    def spy(self: NSWorkspace) -> None:
        norms.append(torch.linalg.vector_norm(self.Z.double(), dim=(-2, -1)) * self.safety)
        run(self)

    monkeypatch.setattr(NSWorkspace, "run", spy)
    fo.step()
    dev = torch.cat(norms).sub(1.0).abs()
    assert dev.numel() == 3 and float(dev.max()) <= 2.0**-8 + 4 * 2.0**-24, dev
