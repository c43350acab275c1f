"""``bench gpu``'s accuracy-per-time table: its error column against the float64 reference.

The golden value of each row is the same error computed for an ideal implementation of the
schedule: ``reference.ns_apply`` (the schedule's map applied through the float64 SVD) against
``reference.linalg.polar_factor``. The measured error differs from it by the rounding inside the
iteration, relative to ‖polar‖_F: each step rounds every entry (relative u) and the iterate's
singular values stay ≤ 1.5, so the error added is ≲ 3u·√steps (Frobenius, errors of the steps
independent); fp32 (u = 2⁻²⁴): 3u·√8 = 5e-7, observed ≤ 4e-8 (bound ÷ measured ≈ 13); bf16
(u = 2⁻⁸): 3u·√8 = 0.033, observed ≤ 0.009 (polar_express, ≈ 3.7).
"""

from __future__ import annotations

import numpy as np
import torch

from manifold_oracle.bench.gpu import ACCURACY_SCHEDULES, bench_accuracy, dtype_verdict
from manifold_oracle.reference import ns_apply
from manifold_oracle.reference.linalg import polar_factor


def test_accuracy_rows_match_the_reference_error() -> None:
    rows = bench_accuracy(torch.device("cpu"), rounds=1, target_s=1e-4, quick=True)
    assert {(r["schedule"], r["dtype"]) for r in rows} == {(s, d) for s in ACCURACY_SCHEDULES
                                                           for d in ("bfloat16", "float32")}
    # the bench's input, rebuilt independently (seed 3, quick size 128×128, N(0, 1/n) entries)
    X = (torch.randn(128, 128, generator=torch.Generator().manual_seed(3)) / 128**0.5).double().numpy()
    P = polar_factor(X)
    for r in rows:
        ideal = float(np.linalg.norm(ns_apply(r["schedule"], X) - P) / np.linalg.norm(P))
        u = 2.0**-24 if r["dtype"] == "float32" else 2.0**-8
        tol = 3 * u * r["steps"] ** 0.5
        assert abs(r["rel_err"] - ideal) <= tol, (r["schedule"], r["dtype"], r["rel_err"], ideal)
        assert r["ms"] > 0 and r["ratio"] > 0
    lines = dtype_verdict(rows, torch.device("cpu"))
    assert len(lines) == len(ACCURACY_SCHEDULES) + 1 and "ns_dtype=\"auto\"" in lines[-1]


def test_floor_estimate_adds_two_certificate_floors_to_the_frobenius_step() -> None:
    """Section 2's estimate of the cheapest certified spectral step: Frobenius + 2 floors per mode,
    flagged only above the 1.15 target."""
    from manifold_oracle.bench.gpu import FLOOR, floor_estimates

    st = [{"preset": "p", "manifold": "frobenius", "ratio": 1.0}, {"preset": "p", "manifold": FLOOR, "ratio": 0.1},
          {"preset": "p", "manifold": "spectral", "ratio": 2.0},
          {"preset": "p", "manifold": "frobenius (fused=compile)", "ratio": 0.9},
          {"preset": "q", "manifold": "frobenius", "ratio": 0.5}, {"preset": "q", "manifold": FLOOR, "ratio": 0.1}]
    lines = floor_estimates(st)
    assert lines[0] == "* p: 1.000 + 2 × 0.100 = 1.200 (measured 2.000); above the 1.15 target before any iteration"
    assert lines[1] == "* p (fused=compile): 0.900 + 2 × 0.100 = 1.100"
    assert lines[2] == "* q: 0.500 + 2 × 0.100 = 0.700" and len(lines) == 3
