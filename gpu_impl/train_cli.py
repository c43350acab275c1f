"""``manifold-oracle train``: one process (:mod:`gpu_impl.train`) or ``--nproc N`` processes with
FSDP2 (:mod:`gpu_impl.train_fsdp`, which also takes ``--checkpoint-dir``, ``--checkpoint-every``
and ``--resume``).

Exit codes: 0 success, 1 the run diverged, 2 could not run (including an existing, non-empty
``--out`` without ``--overwrite``).
"""

from __future__ import annotations

import sys
from typing import Sequence

from .train import main as main_single_process
from .train import refuse_overwrite

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``manifold-oracle train ARGS`` to the one-process or the FSDP2 trainer."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--nproc" or a.startswith("--nproc=") for a in args):
        return main_single_process(args)
    if not any(a in ("-h", "--help") for a in args):
        refusal = refuse_overwrite(args)
        if refusal:
            print(refusal, file=sys.stderr)
            return 2
    from .train_fsdp import main_nproc

    return main_nproc([a for a in args if a != "--overwrite"])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
