"""The optimizer conventions, each defined once (float64; MATH.md §7.1, §7.3, §9.1; CONVENTIONS.md §4–§6).

* shape scales s(d_out, d_in) by name (:func:`shape_scale`, :data:`SCALE_RULES`, aliases
  :data:`SCALE_ALIASES`; an unknown name raises :class:`InvalidInputError`, never 1.0);
* momentum buffers and Nesterov inputs (:func:`momentum_buffer`, :func:`nesterov_input`, and the
  combined optimizer forms of :func:`update_momentum`);
* weight-decay couplings (:func:`apply_weight_decay`, :func:`decay_factor`);
* the MACRO direction (:func:`macro_direction`, variants A/B/C of MATH.md §7.1).

The torch twins live in ``gpu_impl.optim.conventions`` and are tested against these; the
conformance harness maps a declared Profile onto these functions instead of re-deriving them.
Everything works on arrays of shape ``(..., m, n)`` in the (d_out, d_in) layout.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from .._validate import as_float64, check_finite, count, positive_scalar, same_shape
from ..errors import InvalidInputError

F64 = NDArray[np.float64]

__all__ = [
    "SCALE_RULES",
    "SCALE_ALIASES",
    "canonical_scale_rule",
    "shape_scale",
    "MOMENTUM_FORMS",
    "BUFFER_FORMS",
    "NESTEROV_FORMS",
    "momentum_buffer",
    "nesterov_input",
    "update_momentum",
    "WEIGHT_DECAY_COUPLINGS",
    "decay_factor",
    "apply_weight_decay",
    "MACRO_VARIANTS",
    "macro_direction",
]

# ------------------------------------------------------------------------------------------------
# shape scales
# ------------------------------------------------------------------------------------------------

#: named shape-scale rules s(d_out, d_in) (MATH.md §7.3, §9.1); "radius" is resolved by MACRO
SCALE_RULES = ("one", "radius", "kj", "moonlight", "spectral_mup", "eo_spectral")
#: accepted aliases: EO's own name ``spectral`` (√max(d_out, d_in), no 0.2) and the profile
#: spellings of s = 1
SCALE_ALIASES: dict[str, str] = {"spectral": "eo_spectral", "none": "one", "unit": "one"}


def canonical_scale_rule(rule: str) -> str:
    """The canonical name of a scale rule (an alias is accepted); unknown → InvalidInputError."""
    if isinstance(rule, str):
        name = SCALE_ALIASES.get(rule, rule)
        if name in SCALE_RULES:
            return name
    raise InvalidInputError(f"unknown scale rule {rule!r}; known: {SCALE_RULES} "
                            f"(aliases {sorted(SCALE_ALIASES)}) or a number")


def shape_scale(rule: str | float, shape: tuple[int, ...], radius: float | None = None, *,
                layout: str = "torch") -> float:
    """Scale factor s(d_out, d_in) by name (MATH.md §7.3, §9.1; CONVENTIONS.md §6).

    ``one`` 1; ``radius`` R (needs ``radius``); ``kj`` √max(1, d_out/d_in); ``moonlight``
    0.2·√max(d_out, d_in); ``spectral_mup`` √(d_out/d_in); ``eo_spectral`` (alias ``spectral``)
    √max(d_out, d_in). A number is returned as is (must be finite and > 0). ``layout``:
    ``"torch"`` (d_out, d_in) = the last two axes, ``"flax"`` (d_in, d_out).
    """
    if layout not in ("torch", "flax"):
        raise InvalidInputError(f"layout must be 'torch' or 'flax', got {layout!r}")
    if len(shape) < 2 or int(shape[-2]) < 1 or int(shape[-1]) < 1:
        raise InvalidInputError(f"shape_scale needs a matrix shape, got {tuple(shape)!r}")
    m, n = int(shape[-2]), int(shape[-1])
    if layout == "flax":
        m, n = n, m
    if isinstance(rule, (int, float, np.integer, np.floating)) and not isinstance(rule, (bool, np.bool_)):
        s = float(rule)
        if not math.isfinite(s) or s <= 0:
            raise InvalidInputError(f"scale must be finite and > 0, got {rule!r}")
        return s
    name = canonical_scale_rule(rule)
    if name == "one":
        return 1.0
    if name == "radius":
        if radius is None:
            raise InvalidInputError("scale rule 'radius' needs a scalar radius")
        return positive_scalar(radius, "radius")
    if name == "kj":
        return math.sqrt(max(1.0, m / n))
    if name == "moonlight":
        return 0.2 * math.sqrt(max(m, n))
    if name == "spectral_mup":
        return math.sqrt(m / n)
    return math.sqrt(max(m, n))  # eo_spectral


# ------------------------------------------------------------------------------------------------
# momentum and Nesterov
# ------------------------------------------------------------------------------------------------

#: the optimizers' combined forms (buffer + orthogonaliser input); "projected_ema" is MACRO-only
MOMENTUM_FORMS = ("ema", "accumulate", "projected_ema", "nesterov_ema", "nesterov_accumulate")
#: buffer updates M_t(M_{t−1}, G_t)
BUFFER_FORMS = ("ema", "bias_corrected_ema", "accumulate", "none")
#: orthogonaliser inputs U_t(M_t, G_t)
NESTEROV_FORMS = ("ema", "accumulate", "grad_plus_ema", "bias_corrected", "none")


def check_beta(beta: float, name: str = "beta") -> float:
    """``beta`` as a float in [0, 1) (InvalidInputError otherwise)."""
    try:
        b = float(beta)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{name} must be a real number in [0, 1), got {beta!r}") from exc
    if not (0.0 <= b < 1.0):
        raise InvalidInputError(f"{name} must be in [0, 1), got {beta!r}")
    return b


def _checked(beta: float, M: Any, G: Any) -> tuple[float, F64, F64]:
    """β ∈ [0, 1) and finite float64 arrays M, G of one shape (InvalidInputError otherwise)."""
    m, g = as_float64(M, "M"), as_float64(G, "G")
    same_shape(m, g, ("M", "G"))
    check_finite(m, "M")
    check_finite(g, "G")
    return check_beta(beta), m, g


def momentum_buffer(form: str, beta: float, M: Any, G: Any) -> Any:
    """M_t: ``ema`` / ``bias_corrected_ema`` βM + (1 − β)G; ``accumulate`` βM + G; ``none`` G.

    β ∈ [0, 1); M, G finite of one shape (else :class:`InvalidInputError`)."""
    return _momentum_buffer(form, *_checked(beta, M, G))


def _momentum_buffer(form: str, beta: float, M: Any, G: Any) -> Any:
    """The body of :func:`momentum_buffer` (inputs checked there)."""
    if form in ("ema", "bias_corrected_ema"):
        return beta * M + (1.0 - beta) * G
    if form == "accumulate":
        return beta * M + G
    if form == "none":
        return G.copy()
    raise InvalidInputError(f"unknown momentum buffer form {form!r}; known: {BUFFER_FORMS}")


def nesterov_input(form: str, beta: float, M: Any, G: Any, *, t: int = 1,
                   buffer_form: str = "ema") -> Any:
    """U_t from the updated buffer M = M_t (t the 1-based step).

    ``ema`` (1 − β)G + βM; ``accumulate`` G + βM; ``grad_plus_ema`` G + M (HeavyBall's
    nesterov_ema); ``bias_corrected`` βM/(1 − β^{t+1}) + (1 − β)G/(1 − β^t) (optax); ``none`` M,
    or M/(1 − β^t) after a ``bias_corrected_ema`` buffer. β ∈ [0, 1); M, G finite of one shape.
    """
    beta, M, G = _checked(beta, M, G)
    return _nesterov_input(form, beta, M, G, t=count(t, "t"), buffer_form=buffer_form)


def _nesterov_input(form: str, beta: float, M: Any, G: Any, *, t: int = 1,
                    buffer_form: str = "ema") -> Any:
    if form == "ema":
        return (1.0 - beta) * G + beta * M
    if form == "accumulate":
        return G + beta * M
    if form == "grad_plus_ema":
        return G + M
    if form == "bias_corrected":
        return beta * M / (1.0 - beta ** (t + 1)) + (1.0 - beta) * G / (1.0 - beta**t)
    if form == "none":
        return M / (1.0 - beta**t) if buffer_form == "bias_corrected_ema" else M
    raise InvalidInputError(f"unknown Nesterov form {form!r}; known: {NESTEROV_FORMS}")


def update_momentum(form: str, beta: float, M: F64, G: F64) -> tuple[F64, F64]:
    """(M_t, U_t) for an optimizer's combined form (the new buffer and the input to orthogonalise).

    ema M = βM + (1 − β)G, U = M; accumulate M = βM + G, U = M; nesterov_ema U = (1 − β)G + βM;
    nesterov_accumulate U = G + βM (M already updated), MATH.md §9.1. ``projected_ema`` is
    MACRO's tangent EMA and is formed by MACRO itself. β ∈ [0, 1); M, G finite of one shape.
    """
    return _update_momentum(form, *_checked(beta, M, G))


def _update_momentum(form: str, beta: float, M: F64, G: F64) -> tuple[F64, F64]:
    """The body of :func:`update_momentum` (inputs checked there)."""
    if form not in MOMENTUM_FORMS or form == "projected_ema":
        raise InvalidInputError(f"unknown momentum form {form!r}; known: "
                                f"{tuple(f for f in MOMENTUM_FORMS if f != 'projected_ema')}")
    buffer = "accumulate" if form.endswith("accumulate") else "ema"
    Mn = _momentum_buffer(buffer, beta, M, G)
    U = _nesterov_input(buffer, beta, Mn, G) if form.startswith("nesterov_") else Mn
    return Mn, U


# ------------------------------------------------------------------------------------------------
# weight decay
# ------------------------------------------------------------------------------------------------

#: how weight decay λ enters a step W ← W − η·D (CONVENTIONS.md §5)
WEIGHT_DECAY_COUPLINGS = ("none", "decoupled_raw_lr", "decoupled_adjusted_lr", "added_to_update",
                          "before_radius")


def decay_factor(coupling: str, lr: float, weight_decay: float, scale: float = 1.0) -> float:
    """The factor c with W′ = c·W for the decoupled couplings: ``decoupled_raw_lr`` and
    ``before_radius`` 1 − ηλ, ``decoupled_adjusted_lr`` 1 − η·s·λ; 1 for ``none`` and
    ``added_to_update`` (there the decay is part of the update, see :func:`apply_weight_decay`)."""
    if coupling not in WEIGHT_DECAY_COUPLINGS:
        raise InvalidInputError(f"unknown weight-decay coupling {coupling!r}; known: {WEIGHT_DECAY_COUPLINGS}")
    if coupling in ("decoupled_raw_lr", "before_radius"):
        return 1.0 - lr * weight_decay
    if coupling == "decoupled_adjusted_lr":
        return 1.0 - lr * scale * weight_decay
    return 1.0


def apply_weight_decay(coupling: str, W: Any, D: Any, lr: float, weight_decay: float,
                       scale: float = 1.0) -> Any:
    """W_{t+1} = c·W − η·D (decoupled couplings, c = :func:`decay_factor`) or W − η(D + λW)
    (``added_to_update``); ``scale`` is the shape scale used by ``decoupled_adjusted_lr``."""
    if coupling == "added_to_update":
        return W - lr * (D + weight_decay * W)
    return decay_factor(coupling, lr, weight_decay, scale) * W - lr * D


# ------------------------------------------------------------------------------------------------
# MACRO direction
# ------------------------------------------------------------------------------------------------

#: A: P(msign(P U)) (default); B: msign(P U); C: msign(U)
MACRO_VARIANTS = ("A", "B", "C")


def macro_direction(U: Any, project: Callable[[Any], Any], orthogonalise: Callable[[Any], Any],
                    variant: str = "A", *, tangent_input: Any = None) -> Any:
    """MACRO's direction D from the momentum input U (MATH.md §7.1).

    ``project`` is P_W, ``orthogonalise`` the msign (exact or a schedule). With X = P_W(U)
    (or ``tangent_input`` when the caller has it already: projected momentum, or X with its
    rounding noise zeroed): variant ``A`` (default) D = P_W(orth(X)); ``B`` D = orth(X);
    ``C`` D = orth(U) (no projection).
    """
    if variant not in MACRO_VARIANTS:
        raise InvalidInputError(f"unknown MACRO variant {variant!r}; known: {MACRO_VARIANTS}")
    if variant == "C":
        return orthogonalise(U)
    X = project(U) if tangent_input is None else tangent_input
    O = orthogonalise(X)
    return project(O) if variant == "A" else O
