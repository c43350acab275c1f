"""pytorch_optimizer 4.1.0 SpectralSphere never retracts to its spectral sphere: starting from
‖W₀‖₂ = 1 the spectral norm drifts step after step (the SSO update Φ is tangent, but the step
W − lr·Φ leaves the sphere at second order and nothing maps it back).

Standalone: needs only pytorch_optimizer and torch. Exit status 1 while the defect is present.
"""
import sys

import torch
from pytorch_optimizer import SpectralSphere

torch.manual_seed(0)
W = torch.randn(12, 8)
W = W / torch.linalg.matrix_norm(W, ord=2)  # on the spectral sphere of radius 1
p = torch.nn.Parameter(W.clone())
opt = SpectralSphere([p], lr=0.05, weight_decay=0.0)
drift = 0.0
for _ in range(6):
    p.grad = torch.randn(12, 8)
    opt.step()
    drift = max(drift, abs(torch.linalg.matrix_norm(p.data.double(), ord=2).item() - 1.0))
# fp32 rounding of a retracted iterate keeps | ‖W‖₂ − 1 | below ~1e-6
print(f"max_t | ‖W_t‖₂ − 1 | over 6 steps = {drift:.3e} (a retracted iterate stays within 1e-5)")
sys.exit(1 if drift > 1e-5 else 0)
