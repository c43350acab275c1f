"""pytorch_optimizer 4.1.0 zero_power_via_newton_schulz_5 (the orthogonaliser of Muon, AdaMuon,
NorMuon and SCION) returns an all-zero matrix for a finite float32 input with ‖G‖_F = 1e20: the
squared norm overflows float32 and G/‖G‖_F becomes 0 instead of an orthogonal update.

Standalone: needs only pytorch_optimizer and torch. Exit status 1 while the defect is present.
"""
import sys

import torch
from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

torch.manual_seed(0)
G = torch.randn(8, 5)
G = G * (1e20 / G.norm())  # finite float32 entries (|g| ~ 1e19 < 3.4e38)
O = zero_power_via_newton_schulz_5(G, num_steps=5)
top = torch.linalg.matrix_norm(O.double(), ord=2).item()
print(f"‖G‖_F = 1e20: ‖O‖₂ = {top:.3e} (an orthogonalised update has ‖O‖₂ ≈ 1; 0 is a silent zero update)")
sys.exit(1 if not (0.5 < top < 1.5) else 0)
