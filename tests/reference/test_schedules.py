"""Newton–Schulz schedules as data and their exact singular-value maps (MATH.md §3; CLAIMS P-4, P-5).

Expected bands are CONVENTIONS.md §9's published table (4 decimals), independent of this code.
"""

from __future__ import annotations

import numpy as np
import pytest

from manifold_oracle.reference import (
    SCHEDULES,
    InvalidInputError,
    get_schedule,
    ns_apply,
    ns_singular_value_map,
    polynomial_map,
    random_matrix,
    schedule_band,
    singular_values,
)

# (schedule, overrides, l) -> (band min, band max) from CONVENTIONS.md §9
TABLE = [
    ("keller_jordan", {}, 0.1, (0.6818, 1.1344)),
    ("keller_jordan", {}, 0.001, (0.4705, 1.2024)),
    ("you_jiacheng_5", {}, 0.1, (0.9778, 1.0318)),
    ("you_jiacheng_5", {}, 0.001, (0.4750, 1.1450)),
    ("you_jiacheng_5", {"steps": 6, "extension": "cycle"}, 0.1, (0.0642, 0.1649)),
    ("you_jiacheng_5", {"steps": 6, "extension": "cycle"}, 0.001, (0.0268, 1.2731)),
    ("polar_express_dion", {}, 0.1, (0.8589, 1.1411)),
    ("polar_express_dion", {}, 0.001, (0.8466, 1.1411)),
    ("polar_express_stable", {"steps": 5}, 0.1, (0.8703, 1.1236)),
    ("polar_express_stable", {"steps": 5}, 0.001, (0.8401, 1.1236)),
    ("polar_express_stable", {"steps": 10}, 0.001, (1.0000, 1.0000)),
    ("polar_express_eo", {"steps": 5}, 0.1, (0.8704, 1.1236)),
    ("polar_express_eo", {"steps": 5}, 0.001, (0.8462, 1.1236)),
    ("modula_ns6", {}, 0.1, (0.9956, 0.9993)),
    ("modula_ns6", {}, 0.001, (0.8663, 0.9993)),
    ("classical", {}, 0.1, (0.9958, 1.0000)),
    ("classical", {}, 0.01, (0.2285, 1.0000)),
    ("classical", {}, 0.001, (0.0232, 1.0000)),
    ("classical", {"steps": 10}, 0.001, (0.4987, 1.0000)),
]

# "tiny 1e-6 ↦" column of the same table (2 significant digits)
TINY = [
    ("keller_jordan", {}, 4.8e-4),
    ("you_jiacheng_5", {}, 4.9e-4),
    ("you_jiacheng_5", {"steps": 6, "extension": "cycle"}, 2.0e-3),
    ("polar_express_dion", {}, 9.7e-4),
    ("polar_express_stable", {"steps": 5}, 9.7e-4),
    ("polar_express_stable", {"steps": 10}, 2.2e-2),
    ("polar_express_eo", {"steps": 5}, 9.8e-4),
    ("modula_ns6", {}, 1.1e-3),
    ("classical", {}, 2.3e-5),
    ("classical", {"steps": 10}, 5.4e-4),
]


@pytest.mark.parametrize("name,over,lower,expected", TABLE)
def test_band_matches_published_table(name, over, lower, expected):
    sch = get_schedule(name).with_options(**over)
    lo, hi = schedule_band(sch, lower)
    # table values are rounded to 4 decimals (±5e-5) and the grid is polished: allow 1e-4
    assert lo == pytest.approx(expected[0], abs=1e-4)
    assert hi == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize("name,over,expected", TINY)
def test_tiny_singular_value_image(name, over, expected):
    sch = get_schedule(name).with_options(**over)
    y = polynomial_map(sch, np.array([1e-6 / sch.safety]))[0]
    assert y == pytest.approx(expected, rel=0.05)  # 2 significant digits in the table


def test_stable_polar_express_is_the_rounded_eo_list():
    """EO's list is the stable list to 4 decimals (CONVENTIONS.md §3): two data sources agree.

    Measured: EO's first a = 8.2051 while the stable a = 8.205160…, i.e. EO truncates (or derives
    it slightly differently) rather than rounds; the largest deviation is 6.0e-5, within one unit
    of the 4th decimal (1e-4) but not within half a unit.
    """
    st = np.array(SCHEDULES["polar_express_stable"].coefficients)
    eo = np.array(SCHEDULES["polar_express_eo"].coefficients)
    assert np.max(np.abs(st - eo)) <= 1e-4
    assert np.max(np.abs(st - eo)) > 5e-5  # documents that it is not plain rounding


def test_classical_polynomial_fixes_one_to_third_order():
    a, b, c = SCHEDULES["classical"].coefficients[0]
    assert a + b + c == 1.0
    assert a + 3 * b + 5 * c == 0.0
    assert 6 * b + 20 * c == 0.0


def test_extension_rules():
    sch = SCHEDULES["you_jiacheng_5"]
    assert sch.with_options(extension="cycle").coefficients_for(7)[5:] == sch.coefficients[:2]
    assert sch.coefficients_for(7)[5:] == (sch.coefficients[-1],) * 2
    assert sch.coefficients_for(0) == ()


def _ns_iterate(X: np.ndarray, sch, N: float) -> np.ndarray:
    """The matrix iteration itself (an independent code path from the SVD map)."""
    Y = X / (sch.safety * N)
    for a, b, c in sch.coefficients_for():
        A = Y @ Y.T
        Y = a * Y + (b * A + c * A @ A) @ Y
    return Y


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("shape", [(12, 7), (7, 12)])
def test_ns_apply_equals_the_matrix_iteration(rng, name, shape):
    sch = SCHEDULES[name]
    X = random_matrix(rng, shape, cond=100.0, scale=3.0)
    fro = np.linalg.norm(X)
    N = {"+eps": fro + sch.eps, "clamp": max(fro, sch.eps), "none": fro}[sch.eps_form]
    ref = _ns_iterate(X, sch, N)
    # error model: K steps, each rounding ~n·u relative, amplified by ∏ max|p_j'| ≤ ∏ a_j
    growth = np.prod([abs(a) for a, _, _ in sch.coefficients_for()])
    tol = 10 * sch.steps * max(shape) * 2.0**-53 * growth
    assert np.linalg.norm(ns_apply(sch, X) - ref) / np.linalg.norm(ref) <= tol


def test_ns_map_eps_forms():
    s = np.array([1e-9, 0.0])
    kj = SCHEDULES["keller_jordan"]
    plus = ns_singular_value_map(kj, s)
    clamp = ns_singular_value_map(kj, s, eps_form="clamp")
    x_plus = 1e-9 / (1e-9 + 1e-7)
    assert plus[0] == pytest.approx(polynomial_map(kj, [x_plus])[0], rel=1e-14)
    assert clamp[0] == pytest.approx(polynomial_map(kj, [1e-9 / 1e-7])[0], rel=1e-14)
    assert plus[1] == 0.0
    with pytest.raises(InvalidInputError):
        ns_singular_value_map("modula_ns6", np.zeros(3))  # no eps: the routine would return NaN


def test_ns_map_scale_invariance_breaks_below_eps():
    """Negative control (P-2): with +eps normalisation the output collapses when ‖G‖_F ≲ eps."""
    s = np.geomspace(1, 1e-2, 8)
    big = ns_singular_value_map("keller_jordan", s)
    small = ns_singular_value_map("keller_jordan", s * 1e-9)
    # above eps the map is scale invariant up to the relative perturbation ε/‖G‖_F, amplified by
    # at most max|φ'| ≤ ∏ a_j (= 3.4445⁵ for KJ)
    fro = np.linalg.norm(s)  # the unscaled input carries the larger eps perturbation
    tol = 3.4445**5 * 1e-7 / fro
    assert np.max(np.abs(big - ns_singular_value_map("keller_jordan", s * 1e6))) <= tol
    assert np.max(np.abs(big - small)) > 0.1


def test_ns_apply_singular_values(rng):
    X = random_matrix(rng, (10, 6), cond=1e3)
    out = singular_values(ns_apply("polar_express_dion", X))
    exp = np.sort(ns_singular_value_map("polar_express_dion", singular_values(X)))[::-1]
    assert np.max(np.abs(out - exp)) <= 100 * 10 * 2.0**-53 * 1.2


def test_unknown_and_bad_schedules():
    with pytest.raises(InvalidInputError):
        get_schedule("nope")
    with pytest.raises(InvalidInputError):
        SCHEDULES["classical"].with_options(extension="bounce")
    with pytest.raises(InvalidInputError):
        SCHEDULES["classical"].with_options(safety=0.5)
