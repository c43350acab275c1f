"""Torch twins of the optimizer conventions of ``reference.optim.conventions`` (tested against them).

Momentum buffers and Nesterov inputs are tensor arithmetic and get torch forms here (``lerp`` /
``add`` with ``alpha``: one fused kernel each, no temporaries). The conventions that are not
tensor arithmetic have one home, the reference, and are re-exported: shape scales (a float of the
shape) and the MACRO direction (a composition of the caller's projection and orthogonaliser,
dtype-agnostic). Names, forms and errors are the reference's.
"""

from __future__ import annotations

from torch import Tensor

from manifold_oracle.reference.errors import InvalidInputError
from manifold_oracle.reference.optim import (
    BUFFER_FORMS,
    MACRO_VARIANTS,
    MOMENTUM_FORMS,
    NESTEROV_FORMS,
    SCALE_ALIASES,
    SCALE_RULES,
    WEIGHT_DECAY_COUPLINGS,
    canonical_scale_rule,
    decay_factor,
    macro_direction,
)
from manifold_oracle.reference.optim import shape_scale as _reference_shape_scale

#: re-exported from the reference (one home); the torch functions below complete the set
_SHARED = ("SCALE_RULES", "SCALE_ALIASES", "canonical_scale_rule", "MOMENTUM_FORMS", "BUFFER_FORMS",
           "NESTEROV_FORMS", "WEIGHT_DECAY_COUPLINGS", "decay_factor", "MACRO_VARIANTS", "macro_direction")
__all__ = [*_SHARED, "shape_scale", "momentum_buffer", "nesterov_input", "update_momentum"]


def shape_scale(rule: str | float, d_out: int, d_in: int, radius: float | None = None) -> float:
    """``reference.optim.shape_scale(rule, (d_out, d_in), radius)`` (the one definition)."""
    return _reference_shape_scale(rule, (d_out, d_in), radius)


def momentum_buffer(form: str, beta: float, M: Tensor, G: Tensor) -> Tensor:
    """M_t (out of place): ``ema``/``bias_corrected_ema`` lerp(M, G, 1 − β) = βM + (1 − β)G;
    ``accumulate`` G + βM; ``none`` G."""
    if form in ("ema", "bias_corrected_ema"):
        return M.lerp(G, 1.0 - beta)
    if form == "accumulate":
        return G.add(M, alpha=beta)
    if form == "none":
        return G.clone()
    raise InvalidInputError(f"unknown momentum buffer form {form!r}; known: {BUFFER_FORMS}")


def nesterov_input(form: str, beta: float, M: Tensor, G: Tensor, *, t: int = 1,
                   buffer_form: str = "ema") -> Tensor:
    """U_t from the updated buffer M (see ``reference.optim.nesterov_input``)."""
    if form == "ema":
        return G.lerp(M, beta)
    if form == "accumulate":
        return G.add(M, alpha=beta)
    if form == "grad_plus_ema":
        return G + M
    if form == "bias_corrected":
        return M * (beta / (1.0 - beta ** (t + 1))) + G * ((1.0 - beta) / (1.0 - beta**t))
    if form == "none":
        return M / (1.0 - beta**t) if buffer_form == "bias_corrected_ema" else M
    raise InvalidInputError(f"unknown Nesterov form {form!r}; known: {NESTEROV_FORMS}")


def update_momentum(form: str, beta: float, M: Tensor, G: Tensor) -> tuple[Tensor, Tensor]:
    """(M_t, U_t) for an optimizer's combined form; ``projected_ema`` returns the ambient EMA as
    both (MACRO projects it, P is linear)."""
    if form not in MOMENTUM_FORMS:
        raise InvalidInputError(f"unknown momentum form {form!r}; known: {MOMENTUM_FORMS}")
    buffer = "accumulate" if form.endswith("accumulate") else "ema"
    Mn = momentum_buffer(buffer, beta, M, G)
    U = nesterov_input(buffer, beta, Mn, G) if form.startswith("nesterov_") else Mn
    return Mn, U
