"""heavyball 3.2.1: with heavyball.utils.zeroth_power_mode = "svd" the orthogonaliser silently
uses Newton–Schulz (bf16, You Jiacheng's 5 steps) for every non-square matrix; only square
inputs get the requested SVD polar factor U Vᵀ.

Standalone: needs only heavyball, torch and numpy. Exit status 1 while the defect is present.
"""
import sys

import heavyball
import heavyball.utils
import numpy as np
import torch

heavyball.utils.compile_mode = None
heavyball.utils.zeroth_power_mode = "svd"
torch.manual_seed(0)
worst = {}
for shape in [(8, 4), (4, 8), (6, 6)]:
    G = torch.randn(*shape)
    O = heavyball.utils.inplace_orthogonal_(G.clone(), mode="svd")
    U, _, Vt = np.linalg.svd(G.double().numpy(), full_matrices=False)
    worst[shape] = float(np.linalg.norm(O.double().numpy() - U @ Vt, 2))
    print(f"{shape}: ‖O − U Vᵀ‖₂ = {worst[shape]:.3e}")
# an fp32 SVD polar factor of a well-conditioned Gaussian matrix is within ~1e-5 of the float64 one
bad = {s: e for s, e in worst.items() if e > 1e-4}
print("non-square shapes not orthogonalised by SVD:" if bad else "every shape matches the SVD polar factor", bad or "")
sys.exit(1 if bad else 0)
