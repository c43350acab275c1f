"""heavyball 3.2.1 Scion replaces the weights on its first step, even with lr = 0 and a zero
gradient: the parameter is re-initialised to an orthogonal matrix scaled by √(fan_out/fan_in)
(every singular value of an 8×4 weight becomes √2), silently discarding the user's weights.

Standalone: needs only heavyball and torch. Exit status 1 while the defect is present.
"""
import sys

import heavyball
import heavyball.utils
import torch

heavyball.utils.compile_mode = None  # eager (no torch.compile toolchain needed)
torch.manual_seed(0)
W0 = torch.randn(8, 4) / 2
p = torch.nn.Parameter(W0.clone())
opt = heavyball.Scion([p], lr=0.0)
p.grad = torch.zeros_like(p)
opt.step()
change = (p.data - W0).abs().max().item()
sv = torch.linalg.svdvals(p.data.double()).tolist()
print(f"lr=0, zero gradient: max |W1 - W0| = {change:.3e} (expected 0); singular values now {[round(s, 6) for s in sv]}")
sys.exit(1 if change != 0 else 0)
