"""pytorch_optimizer 4.1.0 Muon overwrites p.grad during step() (Nesterov blend written in place).

Standalone: needs only pytorch_optimizer and torch. Exit status 1 while the defect is present.
"""
import sys

import torch
from pytorch_optimizer import Muon

torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(8, 5))
opt = Muon([{"params": [p], "use_muon": True}], lr=0.05)  # defaults: nesterov=True
p.grad = torch.randn(8, 5)
before = p.grad.clone()
opt.step()
change = (p.grad - before).abs().max().item()
print(f"max |p.grad after step - p.grad before| = {change:.3e} (expected 0: step() must not modify p.grad)")
sys.exit(1 if change != 0 else 0)
