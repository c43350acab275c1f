"""gpu_impl.optim (MACRO, MuonH, SSO, MuonBall) against reference.optimizers and the step contract.

Expected values: the pure float64 reference steps (``reference.optimizers``), MATH.md §9.8 written
out in numpy for AdamW, and closed forms (MATH §7.2 item 7). The torch runs use the exact
(SVD) msign and the exact Θ, so the only differences are rounding: msign from a backward-stable
SVD is accurate to ~κ·u (κ of the tangent momentum ≲ 1e2 for the Gaussian rectangular and small
square gradients used), giving ≲ 1e-13 relative after two steps — inside the required 1e-12.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import manifold_oracle.reference.optimizers as RO
from manifold_oracle.gpu_impl.optim import MACRO, SSO, MuonBall, MuonH
from manifold_oracle.reference.errors import DegenerateGeometryError, InvalidInputError

SHAPES = [(24, 16), (24, 16), (16, 40), (12, 12)]
U32 = 2.0**-24


def _params(rng: np.random.Generator, shapes, dtype=torch.float64, scale: float = 0.25):
    return [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s) * scale).to(dtype)) for s in shapes]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _step_both(opt, ref, ps, Ws, rng: np.random.Generator, steps: int):
    """Run the torch optimizer and the float64 reference on the same gradients; return the
    reference weights and states after ``steps`` steps."""
    Ws = list(Ws)
    sts = [ref.init_state(w) for w in Ws]
    for _ in range(steps):
        Gs = [rng.standard_normal(w.shape) for w in Ws]
        for p, g in zip(ps, Gs):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        for i in range(len(Ws)):
            Ws[i], sts[i], _ = ref.step(Ws[i], Gs[i], sts[i])
    return Ws, sts


@pytest.mark.parametrize("manifold", ["frobenius", "spectral", "oblique_rows", "oblique_cols", "stiefel", "euclidean"])
def test_macro_fp64_matches_reference(manifold: str, rng: np.random.Generator) -> None:
    """Two MACRO steps, every momentum form × variant A/B/C, weights and momentum to 1e-12."""
    for form in ["ema", "accumulate", "nesterov_ema", "nesterov_accumulate", "projected_ema"]:
        for variant in "ABC":
            W0 = [rng.standard_normal(s) / 4 for s in SHAPES]
            ps = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in W0]
            opt = MACRO(ps, lr=0.05, manifold=manifold, momentum_form=form, reproject=variant,
                        msign="exact", theta="exact", scale="kj")
            ref = RO.MACRO(manifold=manifold, lr=0.05, momentum=form, reproject=variant, scale="kj")
            Ws = [ref.initial_point(w) for w in W0]
            for p, w in zip(ps, Ws):  # construction retraction = the reference's initial point
                assert _rel(p.detach().numpy(), w) <= 1e-14
            Ws, sts = _step_both(opt, ref, ps, Ws, rng, steps=2)
            for p, w, st in zip(ps, Ws, sts):
                assert _rel(p.detach().numpy(), w) <= 1e-12, (form, variant)
                assert _rel(opt.state[p]["momentum"].numpy(), st["momentum"]) <= 1e-12, (form, variant)


@pytest.mark.parametrize("scale", ["one", "radius", "moonlight", "spectral_mup"])
@pytest.mark.parametrize("radius", ["init", "mup", 0.8])
def test_macro_scale_and_radius_rules(scale: str, radius, rng: np.random.Generator) -> None:
    W0 = [rng.standard_normal(s) / 4 for s in SHAPES]
    ps = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in W0]
    opt = MACRO(ps, lr=0.03, manifold="spectral", scale=scale, radius=radius, radius_scale=1.3,
                msign="exact", theta="exact", prenormalize=True)
    ref = RO.MACRO(manifold="spectral", lr=0.03, scale=scale, radius=radius, radius_scale=1.3, prenormalize=True)
    Ws = [ref.initial_point(w) for w in W0]
    sts = [ref.init_state(w) for w in Ws]
    Gs = [rng.standard_normal(s) for s in SHAPES]
    for p, g in zip(ps, Gs):
        p.grad = torch.from_numpy(g.copy())
    opt.step()
    for i, p in enumerate(ps):
        Wn, _, _ = ref.step(Ws[i], Gs[i], sts[i])
        assert _rel(p.detach().numpy(), Wn) <= 1e-12


def test_adamw_part_matches_formula(rng: np.random.Generator) -> None:
    """Non-matrix params and ``manifold=None`` groups follow MATH §9.8 (torch form)."""
    w2 = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((5, 3))))
    b = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(7)))
    emb = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((6, 4))))
    opt = MACRO([{"params": [w2, b]}, {"params": [emb], "manifold": None}], msign="exact",
                adamw_lr=0.01, adamw_betas=(0.8, 0.9), adamw_eps=1e-6, adamw_wd=0.1)
    for p in (b, emb):
        x = p.detach().numpy().copy()
        m = np.zeros_like(x)
        v = np.zeros_like(x)
        grads = [rng.standard_normal(x.shape) for _ in range(3)]
        for t, g in enumerate(grads, start=1):
            m = 0.8 * m + 0.2 * g
            v = 0.9 * v + 0.1 * g * g
            x = (1 - 0.01 * 0.1) * x - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
        p._expected, p._grads = x, grads  # type: ignore[attr-defined]
    for t in range(3):
        w2.grad = torch.from_numpy(rng.standard_normal((5, 3)))
        b.grad = torch.from_numpy(b._grads[t])  # type: ignore[attr-defined]
        emb.grad = torch.from_numpy(emb._grads[t])  # type: ignore[attr-defined]
        opt.step()
    for p in (b, emb):
        assert _rel(p.detach().numpy(), p._expected) <= 1e-12  # type: ignore[attr-defined]


def test_baselines_fp64_match_reference(rng: np.random.Generator) -> None:
    cases = [
        (lambda ps: MuonH(ps, lr=0.05, msign="exact", weight_decay=0.1), RO.MuonH(lr=0.05, weight_decay=0.1), False),
        # theta="power": SSO's code (v₀ = 1, 10 steps), the reference's sigma_source="power"
        (lambda ps: SSO(ps, lr=0.05, msign="exact", retract_eps=0.0, theta="power"),
         RO.SSO(lr=0.05, sigma_source="power", on_bracket_failure="zero"), True),
        (lambda ps: MuonBall(ps, lr=0.05, msign="exact", retract_eps=0.0, theta="power"),
         RO.MuonBall(lr=0.05, sigma_source="power"), True),
        # theta="exact": Θ and σ₁ from the SVD, the reference's sigma_source="exact"
        (lambda ps: SSO(ps, lr=0.05, msign="exact", retract_eps=0.0, theta="exact"),
         RO.SSO(lr=0.05, sigma_source="exact", on_bracket_failure="zero"), True),
    ]
    shapes = SHAPES[:3]
    for make, ref, on_sphere in cases:
        W0 = [rng.standard_normal(s) / 4 for s in shapes]
        ps = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in W0]
        opt = make(ps)
        Ws = [ref.initial_point(w) if on_sphere else w for w in W0]
        Ws, sts = _step_both(opt, ref, ps, Ws, rng, steps=3)
        for p, w, st in zip(ps, Ws, sts):
            assert _rel(p.detach().numpy(), w) <= 1e-12, type(ref).__name__
            assert _rel(opt.state[p]["momentum"].numpy(), st["momentum"]) <= 1e-12


def test_sso_lambda_makes_step_tangent(rng: np.random.Generator) -> None:
    """SSO's λ makes ⟨Θ, Φ⟩ = h(λ) ≈ 0: |h| ≤ tol after the bisection (exact msign)."""
    ps = _params(rng, [(20, 12), (20, 12)])
    opt = SSO(ps, lr=0.02, msign="exact", bisect_tol=1e-10, diagnostics=True)
    for p in ps:
        p.grad = torch.randn_like(p)
    opt.step()
    d = opt.diagnostics()["params"]
    assert len(d) == 2
    assert all(r["tangency"] <= 1e-9 and r["bracket_failed"] == 0.0 for r in d)


def test_100_fp32_steps_stay_on_manifold(rng: np.random.Generator) -> None:
    """Feasibility after every step, measured exactly in float64.

    Rescaling retractions (Frobenius, oblique): ‖W_new‖ = R up to the norm's accumulation and one
    multiply, ≤ (N + 2)·u₃₂ relative with N = entries summed (worst case). Stiefel: the float64
    polar factor rounded to float32 has ‖WᵀW/s² − I‖_F ≤ 2√k·u₃₂·(1 + u₃₂) ≤ 3√k·u₃₂. Spectral
    (power iteration, 2 warm steps): R·σ₁(Y)/σ̂ − 1 ≤ ρ²/(2(1 − (σ₂/R)²)) (Kato–Temple for YᵀY,
    ρ = the retraction's relative residual, reported per step) plus (mn + 2)·u₃₂ rounding.
    """
    torch.manual_seed(0)
    for manifold in ["frobenius", "oblique_rows", "oblique_cols", "stiefel", "spectral"]:
        ps = _params(rng, SHAPES, torch.float32)
        opt = MACRO(ps, lr=0.02, manifold=manifold, radius="mup", diagnostics=True)
        for t in range(100):
            for p in ps:
                p.grad = torch.randn_like(p)
            opt.step()
            diag = {(r["index"]): r for r in opt.diagnostics()["params"]}
            for i, p in enumerate(ps):
                W = p.detach().double()
                m, n = W.shape
                R = float(opt.state[p]["radius"])
                if manifold == "frobenius":
                    viol, tol = abs(float(W.norm()) - R) / R, (m * n + 2) * U32
                elif manifold.startswith("oblique"):
                    norms = W.norm(dim=1 if manifold == "oblique_rows" else 0)
                    cnt = n if manifold == "oblique_rows" else m
                    viol, tol = float(((norms - R).abs() / R).max()), (cnt + 2) * U32
                elif manifold == "stiefel":
                    T = W if m >= n else W.T
                    k = min(m, n)
                    viol = float((T.T @ T / R**2 - torch.eye(k, dtype=torch.float64)).norm())
                    tol = 3 * np.sqrt(k) * U32
                else:
                    s = torch.linalg.svdvals(W)
                    viol = abs(float(s[0]) - R) / R
                    rho = diag[i]["retraction_residual"]
                    tol = rho**2 / (2 * (1 - (float(s[1]) / R) ** 2)) + (m * n + 2) * U32
                assert viol <= tol, (manifold, t, i, viol, tol)


def _snapshot_resume(make, ps, steps: int, rng: np.random.Generator) -> None:
    grads = [[torch.from_numpy(rng.standard_normal(tuple(p.shape))).to(p.dtype) for p in ps] for _ in range(steps + 1)]
    opt = make(ps)
    for t in range(steps):
        for p, g in zip(ps, grads[t]):
            p.grad = g.clone()
        opt.step()
    saved_w = [p.detach().clone() for p in ps]
    saved = copy.deepcopy(opt.state_dict())
    for p, g in zip(ps, grads[steps]):
        p.grad = g.clone()
    opt.step()
    expected = [p.detach().clone() for p in ps]
    # resume: fresh parameters and optimizer, load the state, restore the weights, same gradient
    qs = [torch.nn.Parameter(w.clone()) for w in saved_w]
    opt2 = make(qs)
    opt2.load_state_dict(saved)
    with torch.no_grad():
        for q, w in zip(qs, saved_w):
            q.copy_(w)
    for q, g in zip(qs, grads[steps]):
        q.grad = g.clone()
    opt2.step()
    for q, e in zip(qs, expected):
        assert torch.equal(q.detach(), e)


@pytest.mark.parametrize("kind", ["frobenius", "spectral", "oblique_rows", "stiefel", "muonh", "sso", "muonball"])
def test_state_dict_round_trip_reproduces_next_step(kind: str, rng: np.random.Generator) -> None:
    makers = {
        "muonh": lambda ps: MuonH(ps, lr=0.02),
        "sso": lambda ps: SSO(ps, lr=0.02, bisect_max_iter=20, warm_start=True),
        "muonball": lambda ps: MuonBall(ps, lr=0.02),
    }
    make = makers.get(kind, lambda ps: MACRO(ps, lr=0.02, manifold=kind, momentum_form="nesterov_ema"))
    ps = _params(rng, [(16, 8), (16, 8), (8, 24)], torch.float32) + [torch.nn.Parameter(torch.randn(5))]
    _snapshot_resume(make, ps, 3, rng)


def test_step_never_mutates_grad_or_aliases_state(rng: np.random.Generator) -> None:
    ps = _params(rng, [(10, 6), (10, 6), (6, 9)], torch.float32) + [torch.nn.Parameter(torch.randn(4))]
    for make in (lambda q: MACRO(q, manifold="spectral"), lambda q: MuonH(q), lambda q: SSO(q, bisect_max_iter=5)):
        opt = make(ps)
        for _ in range(2):
            grads = [torch.randn_like(p) for p in ps]
            for p, g in zip(ps, grads):
                p.grad = g
            before = [g.clone() for g in grads]
            opt.step()
            for p, g, b in zip(ps, grads, before):
                assert p.grad is g and torch.equal(g, b)
            gptr = {g.untyped_storage().data_ptr() for g in grads} | {p.untyped_storage().data_ptr() for p in ps}
            for st in opt.state.values():
                for v in st.values():
                    if isinstance(v, torch.Tensor) and v.numel() > 1:
                        assert v.untyped_storage().data_ptr() not in gptr


def _state_clone(opt) -> list[dict]:
    return [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in st.items()} for st in opt.state.values()]


def _same_state(a: list[dict], b: list[dict]) -> bool:
    return all(all(torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k] for k in x)
               for x, y in zip(a, b))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_raises_before_touching_anything(bad: float, rng: np.random.Generator) -> None:
    ps = _params(rng, [(8, 5), (8, 5)], torch.float32) + [torch.nn.Parameter(torch.randn(3))]
    for which in (1, 2):  # a matrix gradient, then the AdamW parameter's gradient
        opt = MACRO(ps, manifold="frobenius")
        for p in ps:
            p.grad = torch.randn_like(p)
        opt.step()
        w_before = [p.detach().clone() for p in ps]
        st_before = _state_clone(opt)
        for p in ps:
            p.grad = torch.randn_like(p)
        ps[which].grad[0, ...] = bad
        with pytest.raises(InvalidInputError):
            opt.step()
        assert all(torch.equal(p.detach(), w) for p, w in zip(ps, w_before))
        assert _same_state(st_before, _state_clone(opt))
        # skip policy: nothing changes, the skip is reported
        opt.nonfinite = "skip"
        opt.step()
        assert all(torch.equal(p.detach(), w) for p, w in zip(ps, w_before))
        assert opt.skipped_steps == 1 and opt.diagnostics()["skipped"] is True


def test_works_under_no_grad_and_construction_retracts(rng: np.random.Generator) -> None:
    with torch.no_grad():
        ps = _params(rng, [(12, 8), (8, 20)], torch.float64)
        opt = MACRO([{"params": [ps[0]], "manifold": "frobenius", "radius": "mup"},
                     {"params": [ps[1]], "manifold": "stiefel", "radius": "mup"}], msign="exact")
        assert abs(float(ps[0].detach().norm()) - np.sqrt(12)) <= 1e-13  # R = √d_out
        W = ps[1].detach()
        s2 = 8 / 20  # Stiefel scale √(d_out/d_in); wide: WWᵀ = s²I
        assert float((W @ W.T / s2 - torch.eye(8, dtype=torch.float64)).norm()) <= 1e-13
        for p in ps:
            p.grad = torch.randn_like(p)
        opt.step()
    assert abs(float(ps[0].detach().norm()) - np.sqrt(12)) <= 1e-13


def test_diagnostics_tangency_feasibility_and_angle(rng: np.random.Generator) -> None:
    """Variant A is tangent to rounding, B is not (MATH §7.4); on M_F tan θ = η·s·‖D‖_F/R (§7.2)."""
    for variant, tangent in (("A", True), ("B", False)):
        ps = _params(rng, [(14, 9), (14, 9)])
        opt = MACRO(ps, lr=0.07, manifold="frobenius", reproject=variant, msign="exact", diagnostics="full")
        for _ in range(2):
            for p in ps:
                p.grad = torch.randn_like(p)
            opt.step()
        for r in opt.diagnostics()["params"]:
            R = float(opt.state[ps[r["index"]]]["radius"])
            assert r["feasibility"] <= 1e-15 * 14 * 9
            if tangent:
                assert r["tangency"] <= 1e-14
                assert abs(np.tan(r["angle"]) - 0.07 * r["d_fro"] / R) <= 1e-12
                assert r["alignment_error"] <= 1e-12  # ⟨D, X⟩ = ‖X‖_* (MATH §7.2 item 2)
            else:
                assert r["tangency"] >= 1e-6


def test_gap_guard_raise_is_transactional(rng: np.random.Generator) -> None:
    ps = _params(rng, [(6, 4)])
    opt = MACRO(ps, manifold="spectral", theta="exact", gap_policy="raise", msign="exact")
    with torch.no_grad():  # move W to a point with a repeated σ₁ (still on the sphere)
        R = float(opt.state[ps[0]]["radius"])
        ps[0].copy_(torch.diag(torch.tensor([R, R, 0.5 * R, 0.1], dtype=torch.float64)).repeat(2, 1)[:6] / np.sqrt(2))
    w = ps[0].detach().clone()
    st = _state_clone(opt)
    ps[0].grad = torch.randn_like(ps[0])
    with pytest.raises(DegenerateGeometryError):
        opt.step()
    assert torch.equal(ps[0].detach(), w) and _same_state(st, _state_clone(opt))


def test_bad_options_raise() -> None:
    p = [torch.nn.Parameter(torch.randn(4, 3))]
    for kw in (dict(manifold="hyperbolic"), dict(reproject="Z"), dict(momentum_form="adam"),
               dict(retraction="qr"), dict(gap_policy="ignore"), dict(scale="huge"), dict(radius=-1.0),
               dict(momentum=1.0), dict(msign="nope"), dict(ns_dtype="int8"), dict(theta="guess"),
               dict(manifold="oblique_rows", scale="radius")):
        with pytest.raises(InvalidInputError):
            MACRO(p, **kw)
    with pytest.raises(InvalidInputError):
        MACRO(p, nonfinite="ignore")
    with pytest.raises(InvalidInputError):
        SSO(p, radius_mode="bogus")
    with pytest.raises(InvalidInputError):
        SSO(p, theta="bogus")


def test_spectral_stale_basis_is_refreshed_after_external_write(rng: np.random.Generator) -> None:
    """Weights written outside step() are detected through the version counters and the cached
    basis is refreshed (``power_steps`` steps), so the top pair used at W is accurate; pretending
    the write came from the optimizer (control) leaves the stale basis, with a large residual.
    Residual expectation: width-8 iteration, 12 steps, σ₉/σ₁ ≈ 0.4 for a Gaussian 20×12 matrix:
    ≈ 0.4^{24} ≈ 3e-10 relative; the stale basis belongs to an unrelated matrix: residual O(1)."""
    g = rng.standard_normal((20, 12))
    for pretend in (False, True):
        ps = _params(rng, [(20, 12)])
        opt = MACRO(ps, manifold="spectral", msign="exact", theta="power", power_steps=12, diagnostics=True)
        R = float(opt.state[ps[0]]["radius"])
        with torch.no_grad():
            new = torch.from_numpy(g)
            ps[0].copy_(new * (R / float(torch.linalg.svdvals(new)[0])))
        if pretend:
            opt._written[id(ps[0])] = ps[0]._version
        ps[0].grad = torch.randn_like(ps[0])
        opt.step()
        res = opt.diagnostics()["params"][0]["power_residual"]
        assert (res >= 1e-2) if pretend else (res <= 1e-6), (pretend, res)


def test_certified_pair_survives_a_hidden_external_write(rng: np.random.Generator) -> None:
    """The default Θ (``theta="certified"``) does not trust the version counters: with the same
    external write hidden from the optimizer (the control above), the certificate of the stale
    basis on the new W fails and the escalation finds the pair; its bound and its true angle
    (float64 SVD, independent) are both small."""
    g = rng.standard_normal((20, 12))
    ps = _params(rng, [(20, 12)])
    opt = MACRO(ps, manifold="spectral", msign="exact", diagnostics="full")
    R = float(opt.state[ps[0]]["radius"])
    with torch.no_grad():
        new = torch.from_numpy(g)
        ps[0].copy_(new * (R / float(torch.linalg.svdvals(new)[0])))
    opt._written[id(ps[0])] = ps[0]._version  # pretend the write came from the optimizer
    ps[0].grad = torch.randn_like(ps[0])
    opt.step()
    rec = opt.diagnostics()["params"][0]
    assert rec["pair_bound"] <= 2.0**-26  # √ε₆₄ (float64 weights)
    assert rec["pair_angle"] <= rec["pair_bound"]  # pair_angle: the diagnostics' float64 SVD of W


def test_fused_certified_step_survives_a_hidden_external_write(rng: np.random.Generator) -> None:
    """The same hidden write on the fused step (the default, no diagnostics): the pair the step
    projects with (captured where it is used) is within its bound of the exact pair of the new W
    (float64 SVD), not the stale one (which is O(1) away)."""
    g = rng.standard_normal((20, 12))
    ps = _params(rng, [(20, 12)])
    opt = MACRO(ps, manifold="spectral", msign="exact")
    assert opt._fusable()
    R = float(opt.state[ps[0]]["radius"])
    ps[0].grad = torch.randn_like(ps[0])
    opt.step()  # caches the Ritz basis of this step's W'
    with torch.no_grad():
        new = torch.from_numpy(g)
        ps[0].copy_(new * (R / float(torch.linalg.svdvals(new)[0])))
    opt._written[id(ps[0])] = ps[0]._version  # pretend the write came from the optimizer
    W = ps[0].detach().clone()
    used = []
    spectral_y = opt._spectral_y

    def spy(group, gi, bucket, a, Ws, pairs, gap_flags):  # type: ignore[no-untyped-def]
        used.extend(pairs)
        return spectral_y(group, gi, bucket, a, Ws, pairs, gap_flags)

    opt._spectral_y = spy  # type: ignore[method-assign]
    ps[0].grad = torch.randn_like(ps[0])
    opt.step()
    (pair,) = used
    U, _, Vh = torch.linalg.svd(W)
    ang = max(float(torch.linalg.vector_norm(pair.v - (pair.v @ Vh[0]) * Vh[0])),
              float(torch.linalg.vector_norm(pair.u - (pair.u @ U[:, 0]) * U[:, 0])))
    assert float(pair.bound) <= 2.0**-26 and ang <= float(pair.bound), (ang, pair.bound)


@pytest.mark.parametrize("schedule", ["keller_jordan", "polar_express_stable", "polar_express_dion"])
def test_macro_ns_policy_matches_reference_schedule(schedule: str, rng: np.random.Generator) -> None:
    """MACRO with a declared NS schedule computed in float64 vs the reference applying the same
    schedule exactly (U·φ(Σ/(sN))·Vᵀ). The difference is the NS iteration's own rounding:
    ≲ 1e-13 absolute per msign in float64 (test_torch_msign model), times lr·s = 0.05, against
    weights of norm ≈ 1: 1e-12 relative holds with margin (it would not for a wrong schedule, step
    count, safety factor or eps, whose effects are ≥ 1e-8)."""
    W0 = [rng.standard_normal(s) / 4 for s in SHAPES]
    ps = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in W0]
    opt = MACRO(ps, lr=0.05, manifold="frobenius", msign=schedule, ns_dtype="fp64")
    ref = RO.MACRO(manifold="frobenius", lr=0.05, msign_backend=schedule)
    Ws = [ref.initial_point(w) for w in W0]
    sts = [ref.init_state(w) for w in Ws]
    for _ in range(2):
        Gs = [rng.standard_normal(s) for s in SHAPES]
        for p, g in zip(ps, Gs):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        for i in range(len(SHAPES)):
            Ws[i], sts[i], _ = ref.step(Ws[i], Gs[i], sts[i])
    for p, w in zip(ps, Ws):
        assert _rel(p.detach().numpy(), w) <= 1e-12
