"""The shipped optimizers as the claims use them: every MACRO quantity a claim measures comes from
``manifold_oracle.reference.optim.MACRO`` (float64 reference), never from a local copy of MATH §7.

* :func:`macro_step` — one shipped MACRO step from ``W`` with gradient ``G`` (β = 0, so the momentum
  is G itself) and its :class:`Diagnostics`: ``direction`` D, ``lmo_input`` X = P_W(G), W_next.
* :func:`macro_direction` — D of that step (variant A, B or C, any msign backend).
* :func:`macro_run` — a shipped MACRO run on a gradient oracle, returning the per-step diagnostics.

Looking the class up at call time (``optim.MACRO``) lets ``theory_checks.break_the_code`` swap in a
deliberately broken MACRO and show which claims then FAIL.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

__all__ = ["macro_class", "macro_step", "macro_direction", "macro_run"]


def macro_class() -> type:
    """The shipped MACRO class (looked up at call time)."""
    from manifold_oracle.reference import optim

    return optim.MACRO


def macro_step(manifold: Any, W: F64, G: F64, *, variant: str = "A", backend: str = "exact",
               lr: float = 0.0, scale: str | float = "one", retraction: str | None = None) -> tuple[F64, Any]:
    """One shipped MACRO step with β = 0 (M₀ = G): returns (W_next, Diagnostics).

    ``manifold`` is a reference :class:`Manifold` instance (its radius is used as is).
    ``lr = 0`` gives the direction without moving.
    """
    opt = macro_class()(manifold=manifold, lr=lr, beta=0.0, reproject=variant, msign_backend=backend,
                        scale=scale, retraction=retraction)
    W_next, _, diag = opt.step(W, G, opt.init_state(W))
    return W_next, diag


def macro_direction(manifold: Any, W: F64, G: F64, variant: str = "A", backend: str = "exact") -> F64:
    """The shipped MACRO direction D of variant ``variant`` at W for momentum G (β = 0)."""
    return np.asarray(macro_step(manifold, W, G, variant=variant, backend=backend)[1].direction)


def macro_run(opt: Any, W0: F64, grad: Callable[[F64, int], F64], steps: int) -> tuple[F64, list[Any], list[F64]]:
    """Run a shipped optimizer ``opt`` (``init_state``/``step``) for ``steps`` steps.

    ``grad(W, t)`` is the (possibly stochastic) gradient oracle. Returns (W_T, diagnostics per step,
    iterates W_0 … W_T).
    """
    W = opt.initial_point(W0) if hasattr(opt, "initial_point") else np.array(W0, dtype=np.float64)
    st = opt.init_state(W)
    diags, Ws = [], [W]
    for t in range(steps):
        W, st, d = opt.step(W, grad(W, t), st)
        diags.append(d)
        Ws.append(W)
    return W, diags, Ws
