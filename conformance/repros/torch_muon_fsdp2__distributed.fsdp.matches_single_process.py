"""torch.optim.Muon (torch 2.13) fails on an FSDP2-sharded weight with fewer rows than ranks (1×16 on 2 ranks).

Standalone: needs only torch. Launches itself on 2 gloo processes (torch.distributed.run, 240 s
timeout). The step raises "aten.add_.Tensor: in-place operations that require placement changes
are not supported" on the rank that holds no row; a 2×16 weight runs. Exit status 1 while the
defect is present.
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                         "127.0.0.1", "--master_port", str(port), __file__], capture_output=True, text=True,
                        timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = [ln for ln in cp.stderr.splitlines() if "Error" in ln and "ChildFailedError" not in ln]
    last = lowest_rank_error(err)
    print(f"1x16 weight on 2 ranks: exit {cp.returncode}" + (f": {last}" if err else ""))
    sys.exit(1 if cp.returncode else 0)

from torch.distributed.fsdp import fully_shard  # noqa: E402

dist.init_process_group("gloo")
torch.manual_seed(0)
lin = torch.nn.Linear(16, 1, bias=False)
fully_shard(lin)
lin(torch.randn(4, 16)).sum().backward()
try:
    torch.optim.Muon(lin.parameters(), lr=0.02).step()
finally:
    dist.destroy_process_group()
# A finished rank ends without the interpreter's teardown: during it, a gloo worker thread still
# releasing the last collective's work can abort the process (SIGABRT, a few % of launches under
# load; see manifold_oracle.gpu_impl.distributed.exit_rank), which would read as the defect.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
