"""muon-fsdp2 0.3.0 aborts on uneven shards (33 rows on 2 ranks) and raises NameError on a plain tensor.

Standalone: needs only muon-fsdp2 and torch. Launches itself on 2 gloo processes per case
(torch.distributed.run, 240 s timeout): "uneven" (a fully_shard-ed 33×8 weight: gloo aborts
with "Received data size doesn't match expected size"), "plain" (an unsharded 32×8 weight:
"NameError: name 'muon_update' is not defined"); a 32×8 sharded weight runs. Exit status 1 while
either defect is present.
"""
import os
import re
import socket
import subprocess
import sys

import torch
import torch.distributed as dist


def lowest_rank_error(lines: list[str]) -> str:
    """The last error line of the lowest rank that reported one (ranks print in racy order)."""
    by_rank: dict[int, str] = {}
    for ln in lines:
        m = re.match(r"\[rank(\d+)\]:\s*(.*)", ln.strip())
        if m:
            by_rank[int(m.group(1))] = m.group(2)
    return by_rank[min(by_rank)] if by_rank else (lines[-1].strip() if lines else "")


if "RANK" not in os.environ:  # launcher
    bad = 0
    for case in ("uneven", "plain"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_addr", "127.0.0.1", "--master_port", str(port), __file__, case],
                            capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
        err = [ln for ln in cp.stderr.splitlines() if ("Error" in ln or "doesn't match" in ln)
               and "ChildFailedError" not in ln]
        last = lowest_rank_error(err)
        print(f"{case}: exit {cp.returncode}" + (f": {last}" if err else ""))
        bad |= cp.returncode != 0
    sys.exit(1 if bad else 0)

from muon_fsdp2 import Muon  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402

case = sys.argv[1]
dist.init_process_group("gloo")
torch.manual_seed(0)
lin = torch.nn.Linear(8, 33 if case == "uneven" else 32, bias=False)
if case != "plain":
    fully_shard(lin)
lin(torch.randn(4, 8)).sum().backward()
try:
    Muon([{"params": list(lin.parameters()), "use_muon": True, "lr": 0.02, "momentum": 0.95,
           "weight_decay": 0.0}]).step()
finally:
    dist.destroy_process_group()
# A finished rank ends without the interpreter's teardown: during it, a gloo worker thread still
# releasing the last collective's work can abort the process (SIGABRT, a few % of launches under
# load; see manifold_oracle.gpu_impl.distributed.exit_rank), which would read as the defect.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
