"""optax 0.2.8 optax.contrib.muon's orthogonalize_via_newton_schulz returns an all-zero matrix for
a finite float32 input with ‖G‖_F = 1e20: the Frobenius norm overflows float32 and x/(‖x‖ + eps)
becomes 0 instead of an orthogonal update.

Standalone: needs only optax (with jax) and numpy. Exit status 1 while the defect is present.
"""
import sys

import jax.numpy as jnp
import numpy as np
from optax.contrib._muon import orthogonalize_via_newton_schulz

rng = np.random.default_rng(0)
G = rng.standard_normal((8, 5))
G = (G * (1e20 / np.linalg.norm(G))).astype(np.float32)  # finite float32 entries
O = np.asarray(orthogonalize_via_newton_schulz(jnp.asarray(G), jnp.asarray((3.4445, -4.7750, 2.0315),
                                                                           dtype=jnp.float32), 5))
top = float(np.linalg.norm(O.astype(np.float64), 2))
print(f"‖G‖_F = 1e20: ‖O‖₂ = {top:.3e} (an orthogonalised update has ‖O‖₂ ≈ 1; 0 is a silent zero update)")
sys.exit(1 if not (0.5 < top < 1.5) else 0)
