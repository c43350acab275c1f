"""float64 reference against the golden corpus (expected values: mpmath at 50 digits).

Every case is checked twice:

1. against its **error model** (below, per operation), which bounds the normwise relative
   error ‖f64 − golden‖/‖golden‖ by (unit roundoff) × (problem size) × (conditioning of the
   operation at this input). The conditioning is computed from the exact singular values of the
   input (reference.precise at 30 digits), never from the float64 code under test;
2. against the issue's requirement: ≤ 1e-13 relative on every golden case (condition numbers up
   to 1e6).

The per-operation maxima are printed by ``test_report_max_relative_error_per_operation``
(run with ``-s`` to see the table).
"""

from __future__ import annotations

import math
from typing import Any

import mpmath as mp
import numpy as np
import pytest

from manifold_oracle.reference import golden, precise
from manifold_oracle.reference.golden import GoldenCase, manifold_from_spec, run_float64
from manifold_oracle.reference.manifolds import SpectralSphere, Stiefel

U = 2.0**-53  # float64 unit roundoff
#: constant of every error model: c·u·n·(conditioning). LAPACK's SVD/QR backward error is a
#: modest multiple of u·n (Demmel–Kahan, Higham ch. 19); 16 covers that and the few extra
#: roundings of each formula. Fixed a priori, not fitted.
C = 16.0
#: the issue's requirement (issue 2): float64 vs mpmath ≤ 1e-13 relative on the golden cases
ISSUE_CAP = 1e-13

CORPUS = golden.load_golden()
CASES = {c.id: c for c in CORPUS.cases}

#: cases whose float64 error is larger than ISSUE_CAP for a known reason (strict: an XPASS fails,
#: so the entry must be removed once the float64 code is improved)
KNOWN_OVER_CAP: dict[str, str] = {}  # every golden case meets the cap (ns_apply is refined)


def _rel(got: Any, exp: Any) -> float:
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(exp, dtype=np.float64)
    assert g.shape == e.shape, f"shape {g.shape} != expected {e.shape}"
    ne = float(np.linalg.norm(e))
    diff = float(np.linalg.norm(g - e))
    if ne == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / ne


def _sv(X: np.ndarray) -> list:
    """Exact singular values of the stored input (mpmath, 30 digits)."""
    return precise.singular_values(X, dps=30)


def _f(x: Any) -> float:
    return float(x)


def _n_eff(case: GoldenCase) -> int:
    for v in case.inputs.values():
        if isinstance(v, np.ndarray):
            return max(v.shape)
    return 1


def _ns_step_bound(schedule: Any, xs: list) -> list[float]:
    """Relative forward-error bound of φ = p_K∘…∘p₁ at each x (Horner, float64).

    Step j evaluates y·(a + y²(b + c y²)) with relative error ≤ 6u·(|a|+|b|y²+|c|y⁴)/|a+by²+cy⁴|;
    an earlier relative error δ is multiplied by the step's relative condition number
    |y p′(y)/p(y)|. The input x carries its own relative error (counted in the caller).
    """
    out = []
    with mp.workdps(30):
        coeffs = [tuple(mp.mpf(float(c)) for c in t) for t in schedule.coefficients_for(None)]
        for x in xs:
            y = mp.mpf(x)
            err = mp.mpf(0)
            cond_total = mp.mpf(1)
            for a, b, c in coeffs:
                y2 = y * y
                q = a + y2 * (b + c * y2)
                if y == 0 or q == 0:
                    err, y = mp.mpf(0), y * q
                    continue
                cond = abs(a + 3 * b * y2 + 5 * c * y2 * y2) / abs(q)
                local = 6 * U * (abs(a) + abs(b) * y2 + abs(c) * y2 * y2) / abs(q)
                err = err * cond + local
                cond_total *= cond
                y = y * q
            out.append((float(err), float(cond_total)))
    return out


def error_model(case: GoldenCase) -> tuple[float, str]:
    """(bound on the normwise relative error of the float64 reference, explanation)."""
    op, inp, p = case.op, case.inputs, case.params
    n = _n_eff(case)
    if op in ("msign", "polar_factor"):
        X = inp["X"]
        s = _sv(X)
        if _f(s[0]) == 0.0:
            return 0.0, "msign(0) = 0 exactly"
        if op == "msign" and "rank_rtol" in p:
            r = sum(1 for v in s if _f(v) > p["rank_rtol"] * _f(s[0]))
        else:
            r = len(s)
        kappa = _f(s[0]) / _f(s[r - 1])
        # refined msign: O(k·u) + O((κ_r·u)²) (reference.linalg docstring); relative to ‖·‖_F = √r
        return C * U * n + C * (kappa * U) ** 2, f"C·u·n + C·(κ_r u)², κ_r={kappa:.1e}"
    if op == "mclip":
        # mclip is the projection onto a convex set (1-Lipschitz in ‖·‖_F): SVD backward error
        # C·u·n·‖X‖₂ per singular value, relative to the output's Frobenius norm
        X = inp["X"]
        out_norm = float(np.linalg.norm(case.expected["out"]))
        fro = float(np.linalg.norm(X))
        return C * U * n * fro / out_norm, "C·u·n·‖X‖_F/‖out‖_F"
    if op == "norms":
        # singular values are perfectly conditioned (Weyl): |δσᵢ| ≤ C·u·n·σ₁
        return C * U * n * max(1, min(inp["X"].shape)), "C·u·n·k (nuclear norm sums k errors)"
    if op == "polynomial_map":
        sch = golden.schedule_from_params(p)
        b = _ns_step_bound(sch, list(inp["x"]))
        e = np.asarray(case.expected["out"])
        num = math.sqrt(sum((err * abs(v)) ** 2 for (err, _), v in zip(b, e)))
        return 2 * num / float(np.linalg.norm(e)), "Horner error propagated by the step condition numbers"
    if op == "ns_singular_value_map":
        sch = golden.schedule_from_params(p)
        sig = inp["sigma"]
        e = np.asarray(case.expected["out"])
        with mp.workdps(30):
            fro = mp.sqrt(mp.fsum(mp.mpf(float(v)) ** 2 for v in sig))
            N = precise._normaliser(fro, mp.mpf(float(sch.eps)), sch.eps_form)
            xs = [mp.mpf(float(v)) / (mp.mpf(float(sch.safety)) * N) for v in sig]
        b = _ns_step_bound(sch, xs)
        # the normalised input x carries ≤ (k + 4)·u relative error (scaled ‖σ‖₂ and the divide)
        num = math.sqrt(sum(((err + (len(sig) + 4) * U * cond) * abs(v)) ** 2
                            for (err, cond), v in zip(b, e)))
        return 2 * num / float(np.linalg.norm(e)), "normalisation + Horner, propagated by step conditions"
    if op == "ns_apply":
        sch = golden.schedule_from_params(p)
        X = inp["X"]
        s = _sv(X)
        with mp.workdps(30):
            phi = precise.ns_singular_value_map(sch, s, dps=30)
            k = len(s)
            # Fréchet derivative of X ↦ U φ̃(Σ) Vᵀ: divided differences of φ̃ (Higham, Functions
            # of Matrices, §8): (φ̃ᵢ ± φ̃ⱼ)/(σᵢ ± σⱼ) and φ̃ᵢ/σᵢ for the rectangular part
            L = mp.mpf(0)
            for i in range(k):
                for j in range(k):
                    if s[i] + s[j] > 0:
                        L = max(L, (phi[i] + phi[j]) / (s[i] + s[j]))
            # |φ̃ᵢ − φ̃ⱼ|/|σᵢ − σⱼ| ≤ max |φ̃′| = max |φ′(x)|/(s·N) over x ∈ [0, x₁] (dense grid)
            fro = mp.sqrt(mp.fsum(v * v for v in s))
            scale = mp.mpf(float(sch.safety)) * precise._normaliser(fro, mp.mpf(float(sch.eps)), sch.eps_form)
            x1 = s[0] / scale
            coeffs = [tuple(mp.mpf(float(c)) for c in t) for t in sch.coefficients_for(None)]
            dmax = max(abs(precise._phi_and_derivative(coeffs, x1 * t / 256)[1]) for t in range(257))
            L = max(L, dmax / scale)
            amp = float(L * s[0])
        out_norm = float(np.linalg.norm(case.expected["out"]))
        return C * U * n * amp / out_norm, f"C·u·n·σ₁·max divided difference of φ̃ = C·u·n·{amp:.1e}"
    if op == "schedule_band":
        sch = golden.schedule_from_params(p)
        grid = list(np.geomspace(p["lower"], 1.0, 200) / sch.safety)
        b = _ns_step_bound(sch, grid)
        # the extremum value is insensitive to its location (φ′ = 0), so only evaluation error
        return 2 * max(err for err, _ in b) + 1e-15, "Horner error at the extremum (+ polishing 1e-15)"
    man = manifold_from_spec(p["manifold"])
    W = inp["W"]
    gap_factor = 1.0
    if isinstance(man, SpectralSphere):
        s = _sv(W)
        q = sum(1 for v in s if _f(v) >= _f(s[0]) * (1 - man.gap_tol)) if man.degenerate == "strict" else 1
        nxt = _f(s[q]) if q < len(s) else 0.0
        # Wedin: the top singular subspace moves by ≲ u·n·σ₁/(σ_q − σ_{q+1})
        gap_factor = 1.0 + 2.0 * _f(s[0]) / (_f(s[q - 1]) - nxt)
    if op == "project_tangent":
        G = inp["G"]
        out_norm = float(np.linalg.norm(case.expected["out"]))
        return (C * U * n * float(np.linalg.norm(G)) / out_norm * gap_factor,
                "C·u·n·‖G‖/‖P_W G‖·(1 + 2/gap)")
    if op == "tangent_violation":
        v = float(case.expected["out"])
        # ⟨A, W⟩-type sums lose |A||W|/|⟨A,W⟩| = 1/v relative accuracy
        return C * U * n / v * gap_factor, "C·u·n/v·(1 + 2/gap)"
    if op == "retract":
        A = inp["A"]
        Y = W + A
        out_norm = float(np.linalg.norm(case.expected["out"]))
        base = C * U * n * float(np.linalg.norm(Y)) / out_norm
        meth = p["method"]
        if isinstance(man, Stiefel):
            sy = _sv(Y)
            kappa = _f(sy[0]) / _f(sy[-1])
            if meth == "qr":  # Householder QR: forward error of Q ~ u·n·κ₂(Y)
                return C * U * n * kappa, f"C·u·n·κ(Y), κ={kappa:.2f}"
            return C * U * n + C * (kappa * U) ** 2, "refined polar: C·u·n + C·(κu)²"
        if isinstance(man, SpectralSphere) and meth == "projection":
            sy = _sv(Y)
            gy = 1.0 + 2.0 * _f(sy[0]) / (_f(sy[0]) - _f(sy[1]))
            return base * gy, "C·u·n·‖Y‖/‖out‖·(1 + 2/gap(Y))"
        return base, "C·u·n·‖W + A‖/‖out‖"
    raise AssertionError(f"no error model for op {op!r}")


def _measure(case: GoldenCase) -> dict[str, float]:
    got = run_float64(case)
    assert set(got) == set(case.expected), f"{case.id}: keys {sorted(got)} != {sorted(case.expected)}"
    return {k: _rel(got[k], case.expected[k]) for k in case.expected}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_float64_within_error_model(case_id: str) -> None:
    case = CASES[case_id]
    errs = _measure(case)
    bound, why = error_model(case)
    for key, err in errs.items():
        if key == "numerical_rank":
            assert err == 0.0, f"{case_id}: numerical rank differs"
            continue
        assert err <= bound, f"{case_id} [{key}]: relative error {err:.3e} > model bound {bound:.3e} ({why})"


@pytest.mark.parametrize(
    "case_id",
    [pytest.param(cid, marks=pytest.mark.xfail(strict=True, reason=KNOWN_OVER_CAP[cid]))
     if cid in KNOWN_OVER_CAP else cid for cid in sorted(CASES)],
)
def test_float64_within_issue_cap(case_id: str) -> None:
    errs = _measure(CASES[case_id])
    worst = max(errs.values())
    assert worst <= ISSUE_CAP, f"{case_id}: relative error {worst:.3e} > {ISSUE_CAP:.0e}"


def test_error_models_have_power() -> None:
    """Negative control: the unrefined msign (error ~κ·u) violates the msign model at κ = 1e6."""
    case = CASES["msign/16x16/cond1e+06"]
    from manifold_oracle.reference.linalg import msign

    err = _rel(msign(case.inputs["X"], refine=False), case.expected["out"])
    bound, _ = error_model(case)
    assert err > bound, f"plain SVD msign error {err:.2e} unexpectedly within the refined bound {bound:.2e}"


def test_report_max_relative_error_per_operation(capsys: pytest.CaptureFixture[str]) -> None:
    """Table of the largest float64-vs-golden relative error per operation (printed)."""
    worst: dict[str, tuple[float, str, float]] = {}
    for cid, case in CASES.items():
        bound, _ = error_model(case)
        for key, err in _measure(case).items():
            name = case.op if key == "out" else f"{case.op}.{key}"
            if name not in worst or err > worst[name][0]:
                worst[name] = (err, cid, bound)
    lines = [f"{'operation':34s} {'max rel err':>11s} {'model bound':>11s}  case"]
    for name in sorted(worst):
        err, cid, bound = worst[name]
        lines.append(f"{name:34s} {err:11.2e} {bound:11.2e}  {cid}")
    with capsys.disabled():
        print("\nfloat64 vs golden (mpmath 50 digits), " + f"{len(CASES)} cases\n" + "\n".join(lines))
    assert len(worst) >= 11
