"""Torch twins of the optimizer conventions (gpu_impl.optim.conventions) against the reference.

Tolerance: torch's ``lerp`` evaluates a + w(b − a) (≤ 3 roundings of size |M| + |G|) while the
reference evaluates βa + (1 − β)b (≤ 3 more), so |Δ| ≤ 8u·(|M| + |G|) per entry, u the unit
roundoff of the twin's dtype (2⁻⁵³, 2⁻²⁴; float32-representable inputs), times 1/(1 − βᵗ) for the
bias-corrected forms. Measured worst over 60 000 entries: 2.6u (float64), 1.8u (float32), i.e.
tightness 3.1 and 4.5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from manifold_oracle.gpu_impl.optim import conventions as T
from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.optim import conventions as R

torch.set_num_threads(1)


@pytest.mark.parametrize("dtype,u", [(torch.float64, 2.0**-53), (torch.float32, 2.0**-24)])
def test_momentum_twins_match_the_reference(dtype: torch.dtype, u: float) -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((3, 5, 4)).astype(np.float32).astype(np.float64)
    G = rng.standard_normal((3, 5, 4)).astype(np.float32).astype(np.float64)
    Mt, Gt = torch.tensor(M, dtype=dtype), torch.tensor(G, dtype=dtype)
    bound = 8 * u * (np.abs(M) + np.abs(G))
    for beta in (0.0, 0.9, 0.95):
        for form in R.BUFFER_FORMS:
            want = R.momentum_buffer(form, beta, M, G)
            got = T.momentum_buffer(form, beta, Mt, Gt).double().numpy()
            assert np.all(np.abs(got - want) <= bound), (form, beta)
        for form in R.NESTEROV_FORMS:
            for t in (1, 3):
                want = R.nesterov_input(form, beta, M, G, t=t, buffer_form="bias_corrected_ema")
                got = T.nesterov_input(form, beta, Mt, Gt, t=t, buffer_form="bias_corrected_ema").double().numpy()
                scale = 1.0 / (1.0 - beta ** t) if form in ("bias_corrected", "none") and beta else 1.0
                assert np.all(np.abs(got - want) <= bound * scale), (form, beta, t)
        for form in ("ema", "accumulate", "nesterov_ema", "nesterov_accumulate"):
            wm, wu = R.update_momentum(form, beta, M, G)
            gm, gu = T.update_momentum(form, beta, Mt, Gt)
            assert np.all(np.abs(gm.double().numpy() - wm) <= bound), form
            assert np.all(np.abs(gu.double().numpy() - wu) <= bound), form


def test_twins_refuse_unknown_forms_and_share_the_scalar_rules() -> None:
    x = torch.zeros(2, 2)
    with pytest.raises(InvalidInputError):
        T.momentum_buffer("adam", 0.9, x, x)
    with pytest.raises(InvalidInputError):
        T.nesterov_input("adam", 0.9, x, x)
    with pytest.raises(InvalidInputError):
        T.update_momentum("adam", 0.9, x, x)
    # scalar conventions have one home: the twin is the reference function
    assert T.shape_scale("kj", 8, 2) == R.shape_scale("kj", (8, 2)) == 2.0
    assert T.macro_direction is R.macro_direction
    with pytest.raises(InvalidInputError):
        T.shape_scale("spectral_muP", 4, 4)
