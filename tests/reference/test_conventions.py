"""The optimizer conventions of reference.optim.conventions: one definition each.

Expected values are written out by hand from MATH.md §7.1, §9.1 and CONVENTIONS.md §5–§6 (not
computed with the code under test); integers and powers of two keep them exact in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.optim import (
    MACRO,
    apply_weight_decay,
    canonical_scale_rule,
    decay_factor,
    macro_direction,
    momentum_buffer,
    nesterov_input,
    shape_scale,
    update_momentum,
)


def test_shape_scales_by_hand() -> None:
    # (d_out, d_in) = (8, 2): kj √4 = 2, moonlight 0.2·√8, spectral_mup √4 = 2, EO √8
    assert shape_scale("one", (8, 2)) == 1.0
    assert shape_scale("kj", (8, 2)) == 2.0
    assert shape_scale("kj", (2, 8)) == 1.0
    assert shape_scale("moonlight", (8, 2)) == 0.2 * math.sqrt(8)
    assert shape_scale("spectral_mup", (2, 8)) == 0.5
    assert shape_scale("eo_spectral", (2, 8)) == math.sqrt(8)
    assert shape_scale("spectral", (2, 8)) == math.sqrt(8)  # EO's name: the same rule
    assert shape_scale("none", (3, 5)) == shape_scale("unit", (3, 5)) == 1.0
    assert shape_scale("radius", (3, 5), radius=1.5) == 1.5
    assert shape_scale(0.25, (3, 5)) == 0.25
    # layout: flax stores (d_in, d_out)
    assert shape_scale("spectral_mup", (2, 8), layout="flax") == 2.0
    assert shape_scale("kj", (3, 4, 8, 2)) == 2.0  # leading axes are a batch


@pytest.mark.parametrize("bad", ["spectral_muP", "", "rms", None])
def test_unknown_scale_is_an_error_never_one(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="unknown scale rule"):
        shape_scale(bad, (4, 4))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        canonical_scale_rule(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        shape_scale("radius", (4, 4))  # radius missing
    with pytest.raises(InvalidInputError):
        shape_scale(-1.0, (4, 4))


def test_momentum_forms_by_hand() -> None:
    M, G, b = np.array([[4.0]]), np.array([[2.0]]), 0.5
    assert momentum_buffer("ema", b, M, G)[0, 0] == 3.0                 # ½·4 + ½·2
    assert momentum_buffer("accumulate", b, M, G)[0, 0] == 4.0          # ½·4 + 2
    assert momentum_buffer("none", b, M, G)[0, 0] == 2.0
    Mn = np.array([[3.0]])
    assert nesterov_input("ema", b, Mn, G)[0, 0] == 2.5                 # ½·2 + ½·3
    assert nesterov_input("accumulate", b, Mn, G)[0, 0] == 3.5          # 2 + ½·3
    assert nesterov_input("grad_plus_ema", b, Mn, G)[0, 0] == 5.0       # 2 + 3
    # bias corrected at t = 1: β·M/(1 − β²) + (1 − β)·G/(1 − β) = ½·3/¾ + 2 = 4
    assert nesterov_input("bias_corrected", b, Mn, G, t=1)[0, 0] == 4.0
    assert nesterov_input("none", b, Mn, G, t=1, buffer_form="bias_corrected_ema")[0, 0] == 6.0
    assert nesterov_input("none", b, Mn, G)[0, 0] == 3.0
    for form, (m_want, u_want) in {"ema": (3.0, 3.0), "accumulate": (4.0, 4.0),
                                   "nesterov_ema": (3.0, 2.5), "nesterov_accumulate": (4.0, 4.0)}.items():
        Mt, U = update_momentum(form, b, M, G)
        assert (Mt[0, 0], U[0, 0]) == (m_want, u_want), form
    for bad in ("projected_ema", "adam"):
        with pytest.raises(InvalidInputError):
            update_momentum(bad, b, M, G)
    with pytest.raises(InvalidInputError):
        momentum_buffer("adam", b, M, G)
    with pytest.raises(InvalidInputError):
        nesterov_input("adam", b, M, G)


def test_weight_decay_couplings_by_hand() -> None:
    W, D = np.array([[8.0]]), np.array([[1.0]])
    lr, wd = 0.5, 0.25
    assert apply_weight_decay("none", W, D, lr, wd)[0, 0] == 7.5
    assert apply_weight_decay("decoupled_raw_lr", W, D, lr, wd)[0, 0] == 7.0 - 0.5      # (1 − ⅛)·8 − ½
    assert apply_weight_decay("decoupled_adjusted_lr", W, D, lr, wd, scale=2.0)[0, 0] == 6.0 - 0.5
    assert apply_weight_decay("added_to_update", W, D, lr, wd)[0, 0] == 8.0 - 0.5 * 3.0
    assert decay_factor("before_radius", lr, wd) == 0.875
    with pytest.raises(InvalidInputError):
        decay_factor("coupled", lr, wd)


def test_macro_direction_variants() -> None:
    # P = projection onto the first column's complement, orth = sign: every variant is distinct
    def P(Z: np.ndarray) -> np.ndarray:
        out = Z.copy()
        out[:, 0] = 0.0
        return out

    U = np.array([[1.0, -2.0], [3.0, 0.5]])
    np.testing.assert_array_equal(macro_direction(U, P, np.sign, "A"), [[0.0, -1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(macro_direction(U, P, lambda Z: Z + 1.0, "A"), [[0.0, -1.0], [0.0, 1.5]])
    np.testing.assert_array_equal(macro_direction(U, P, lambda Z: Z + 1.0, "B"), [[1.0, -1.0], [1.0, 1.5]])
    np.testing.assert_array_equal(macro_direction(U, P, np.sign, "C"), np.sign(U))
    with pytest.raises(InvalidInputError):
        macro_direction(U, P, np.sign, "D")


def test_shipped_macro_uses_the_reprojection() -> None:
    """The optimizer's variant A direction is tangent; B's is not (so dropping the re-projection
    from the shipped step is visible)."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((5, 3))
    W /= np.linalg.norm(W)
    G = rng.standard_normal((5, 3))
    for variant, tangent in (("A", True), ("B", False)):
        opt = MACRO(manifold="frobenius", reproject=variant, beta=0.0)
        _, _, diag = opt.step(W, G, opt.init_state(W))
        assert (diag.tangency <= 1e-14) == tangent, variant
