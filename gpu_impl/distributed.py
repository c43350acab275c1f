"""Data-parallel (DDP) training helpers: process-group set-up and a spawn launcher.

DDP keeps a full replica of every parameter on every rank and all-reduces (averages) the
gradients before the optimizer step, so any per-matrix optimizer (MACRO, Muon, …) runs
unchanged: every rank applies the same deterministic update to the same averaged gradient.
Sharded parameters (FSDP2/DTensor) are handled by :mod:`gpu_impl.fsdp`.

:func:`spawn_training` launches ``world_size`` processes with ``torch.multiprocessing.spawn``
(``MASTER_ADDR=127.0.0.1``, a free TCP port), runs :func:`gpu_impl.train.run_training` on each
rank with the same :class:`~gpu_impl.train.TrainConfig`, and returns every rank's final
``state_dict`` and its records.

:func:`run_ranks` is the robust launcher used by the tests and the conformance harness: one
subprocess per rank (each in its own session / process group), a global timeout, and on any
failure (non-zero exit, signal, timeout) every remaining rank's process group is killed, so no
process is left behind and a dying worker is reported with its signal and last stderr lines.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from manifold_oracle.reference.errors import InvalidInputError, NotAvailableError

__all__ = ["free_port", "init_process_group", "spawn_training", "RankOutcome", "run_ranks", "launch_failure",
           "exit_rank"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exit_rank(code: int = 0) -> NoReturn:
    """End this rank's process with exit status ``code`` now, skipping the interpreter's teardown.

    Call it last, once the process group is destroyed and every output is written and closed.
    With torch 2.13 on CPU, a finished rank aborted in 2 of 88 launches under load
    (``terminate called without an active exception``, SIGABRT). The core dump shows why:
    a gloo worker thread (``ProcessGroupGloo::runLoop``) was still releasing the last barrier's
    work object, which holds FSDP's all-gather work and its tensors, while the main thread was in
    ``Py_FinalizeEx``. Dropping a tensor's Python object needs the GIL, and a thread that asks
    for the GIL during finalization is made to exit. That forced exit unwinds through a
    ``noexcept`` destructor, and the C++ runtime terminates the process. The run itself had
    finished correctly, but the launcher reported a failed rank (pytorch/pytorch PR #179291
    describes the same race). ``destroy_process_group`` does not join those threads while a
    device mesh still holds the group. This function flushes stdout and stderr and calls
    ``os._exit``. The process skips finalization, and with it atexit handlers and the flushing
    of files that are still open."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(int(code))


def init_process_group(rank: int, world_size: int, port: int, backend: str = "gloo") -> None:
    """Initialise the default process group over TCP on 127.0.0.1:``port``."""
    if not dist.is_available():
        raise NotAvailableError("torch.distributed is not available in this torch build")
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)


def _worker(rank: int, world_size: int, port: int, cfg_dict: dict[str, Any], outdir: str,
            backend: str, threads: int) -> None:
    from manifold_oracle.gpu_impl.train import TrainConfig, run_training

    torch.set_num_threads(threads)
    init_process_group(rank, world_size, port, backend)
    try:
        res = run_training(TrainConfig(**cfg_dict), rank=rank, world_size=world_size)
        torch.save({"state_dict": res.state_dict, "records": res.records},
                   Path(outdir) / f"rank{rank}.pt")
        dist.barrier()  # no rank tears its process group down while a peer still talks to it
    finally:
        dist.destroy_process_group()
    exit_rank(0)  # the results are saved: no C++ teardown that could turn success into SIGABRT


def spawn_training(cfg: Any, world_size: int = 2, *, backend: str = "gloo",
                   threads_per_rank: int = 1) -> list[dict[str, Any]]:
    """Run ``cfg`` (a :class:`~gpu_impl.train.TrainConfig`) on ``world_size`` spawned ranks.

    Returns one ``{"state_dict", "records"}`` per rank, in rank order. ``cfg.out`` is honoured
    by rank 0 only; ``cfg.progress`` is ignored on other ranks.
    """
    if world_size < 1:
        raise InvalidInputError(f"world_size must be >= 1, got {world_size}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="mo_ddp_") as tmp:
        mp.spawn(_worker, args=(world_size, free_port(), asdict(cfg), tmp, backend, threads_per_rank),
                 nprocs=world_size, join=True)
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


@dataclass
class RankOutcome:
    """How one rank of :func:`run_ranks` ended: ``result`` is the target's return value (or None)."""

    rank: int
    returncode: int | None       # None: killed by the launcher after the timeout
    signal: str | None           # e.g. "SIGKILL" when the process died from a signal
    stderr_tail: str
    result: Any = None
    timed_out: bool = False
    killed_by_launcher: bool = False
    ended_s: float = float("inf")  # seconds after the launch when the launcher saw the exit
    pid: int = -1

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _secondary(stderr: str) -> bool:
    """A failure that only reports a peer's death (gloo/NCCL connection closed)."""
    cause = _cause(stderr)  # the error line, not faulthandler's dump that may follow it
    return any(k in cause for k in ("Connection closed by peer", "Connection reset by peer",
                                    "remote worker crashing"))


#: lines faulthandler writes when a rank dies on a signal (module list, thread headers, frames)
_FAULTHANDLER = ("Extension modules:", "Fatal Python error", "Thread 0x", "Current thread 0x", "  File ",
                 "Timeout (", "Stack (most recent call first)", "<no Python frame>")
#: the header of faulthandler's deadline dump (``dump_traceback_later`` in :func:`_rank_main`)
HANG_MARK = "Timeout ("


def _frame(line: str) -> str:
    """``  File "/a/b/c.py", line 12 in fn`` → ``fn (c.py:12)``."""
    try:
        path, rest = line.strip()[len('File "'):].split('", line ', 1)
        lineno, fn = rest.split(" in ", 1)
        return f"{fn.strip()} ({Path(path).name}:{lineno.strip()})"
    except ValueError:
        return line.strip()


def _waiting_at(stderr: str) -> str | None:
    """Where the main thread of a hung rank waits: its innermost frames from the faulthandler dump
    written after :data:`HANG_MARK` (the thread whose stack reaches ``_rank_main``), or None."""
    if HANG_MARK not in stderr:
        return None
    blocks: list[list[str]] = []
    for line in stderr.split(HANG_MARK, 1)[1].splitlines():
        if line.startswith(("Thread 0x", "Current thread 0x")):
            blocks.append([])
        elif line.startswith("  File ") and blocks:
            blocks[-1].append(line)
    main = next((b for b in blocks if any(" in _rank_main" in f for f in b)), None)
    if not main:
        return None
    inner = main[:next(i for i, f in enumerate(main) if " in _rank_main" in f)]  # innermost first
    return "waiting in " + " ← ".join(_frame(f) for f in inner[:4])


def _cause(stderr: str) -> str:
    """The line of a rank's stderr that names the cause: a C++ exception's ``what():`` text, else
    the last ``...Error: ...`` / ``...Exception: ...`` line, else the last line that faulthandler did
    not write (its module list and stack dumps follow the cause and hide it)."""
    before_dump = stderr.split(HANG_MARK, 1)[0]
    # without torch's "[rank0]: " prefix of a rank's traceback lines
    lines = [re.sub(r"^\[rank\d+\]: ?", "", ln) for ln in before_dump.splitlines() if ln.strip()]
    own = [ln for ln in lines if not ln.startswith(_FAULTHANDLER) and not ln.startswith("    ")]
    for ln in reversed(own):
        if "what():" in ln:
            return ln.split("what():", 1)[1].strip()
    for ln in reversed(own):
        head = ln.split(":", 1)[0]
        if ":" in ln and " " not in head.strip() and head.strip().endswith(("Error", "Exception", "Exit",
                                                                           "Interrupt")):
            return ln.strip()
    return own[-1].strip() if own else ""


def launch_failure(outcomes: list[RankOutcome]) -> str | None:
    """One line describing the first failed rank (signal / exit code / timeout + message), or None.

    The message is the cause found in that rank's stderr (:func:`_cause`); for a rank that timed
    out, where its main thread was waiting at the deadline (:func:`_waiting_at`)."""
    bad = [o for o in outcomes if not o.ok]
    if not bad:
        return None
    # the root cause is the rank that failed first (the others then lose their peer)
    first = min(bad, key=lambda o: (o.killed_by_launcher, _secondary(o.stderr_tail), o.ended_s, o.rank))
    how = ("timed out" if first.timed_out else f"died from {first.signal}" if first.signal
           else f"exited with code {first.returncode}")
    msg = (_waiting_at(first.stderr_tail) if first.timed_out else None) or _cause(first.stderr_tail)
    return f"rank {first.rank} {how}: {msg[:300]}"


def run_ranks(target: str, world_size: int, payload: dict[str, Any] | None = None, *, timeout: float = 120.0,
              backend: str = "gloo", threads: int = 1) -> list[RankOutcome]:
    """Run ``target`` ("package.module:function", called as ``fn(payload)`` after
    ``init_process_group``) in ``world_size`` fresh processes; return one outcome per rank.

    Every rank is a ``python -m manifold_oracle.gpu_impl.distributed`` subprocess in its own
    session. The launch has one deadline (``timeout`` seconds); when any rank fails or the deadline
    passes, the process groups of all ranks still running are killed (SIGKILL) and reaped.
    """
    if world_size < 1:
        raise InvalidInputError(f"world_size must be >= 1, got {world_size}")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mo_ranks_") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"target": target, "payload": payload or {}, "port": port,
                                    "world_size": world_size, "backend": backend, "threads": threads,
                                    "timeout": timeout, "deadline": time.time() + timeout, "out": tmp}))
        # the ranks import what this process can import (targets defined next to a test, say)
        path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        procs, errs = [], []
        for r in range(world_size):
            err = open(Path(tmp) / f"rank{r}.err", "w+b")
            errs.append(err)
            procs.append(subprocess.Popen([sys.executable, "-m", "manifold_oracle.gpu_impl.distributed",
                                           str(spec), str(r)], stdout=subprocess.DEVNULL, stderr=err,
                                          env=env, start_new_session=True))
        start = time.monotonic()
        deadline = start + timeout
        ended = [float("inf")] * world_size
        timed_out = killed = False
        while None in [p.poll() for p in procs]:  # poll every rank (not any(): it stops at the first)
            for r, p in enumerate(procs):
                if p.returncode is not None and ended[r] == float("inf"):
                    ended[r] = time.monotonic() - start
            failed = any(p.returncode not in (None, 0) for p in procs)
            if failed or time.monotonic() > deadline:
                timed_out = not failed
                killed = True
                break
            time.sleep(0.05)
        was_running = [p.poll() is None for p in procs]
        for r, p in enumerate(procs):
            if p.returncode is not None and ended[r] == float("inf"):
                ended[r] = time.monotonic() - start
        if killed:
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # children the rank may have left in its group
        out = []
        for r, (p, err) in enumerate(zip(procs, errs)):
            err.seek(0)
            tail = err.read()[-16000:].decode(errors="replace")  # a hang's stack dump of every thread
            err.close()
            res_path = Path(tmp) / f"rank{r}.pt"
            result = torch.load(res_path, weights_only=False) if (p.returncode == 0 and res_path.exists()) else None
            sig = signal.Signals(-p.returncode).name if p.returncode is not None and p.returncode < 0 else None
            out.append(RankOutcome(r, p.returncode, sig, tail, result, timed_out=timed_out and was_running[r],
                                   killed_by_launcher=was_running[r], ended_s=ended[r], pid=p.pid))
        return out


def _rank_main(spec_path: str, rank: int) -> None:
    faulthandler.enable(all_threads=True)  # a rank dying on a signal reports its Python stacks
    spec = json.loads(Path(spec_path).read_text())
    # a rank still running shortly before the launcher's deadline prints where it waits (every
    # thread's Python stack) before the launcher kills it: a hang is reported with its location
    left = float(spec.get("deadline", float("inf"))) - time.time()
    if left < float("inf"):
        margin = min(5.0, 0.1 * float(spec["timeout"]))
        faulthandler.dump_traceback_later(max(left - margin, 0.1), exit=False)  # header "Timeout (h:mm:ss)!"
    torch.set_num_threads(int(spec["threads"]))
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(spec["world_size"]), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]))
    dist.init_process_group(backend=spec["backend"], rank=rank, world_size=int(spec["world_size"]),
                            timeout=timedelta(seconds=float(spec["timeout"])))
    try:
        mod, fn = spec["target"].split(":")
        result = getattr(importlib.import_module(mod), fn)(spec["payload"])
        torch.save(result, Path(spec["out"]) / f"rank{rank}.pt")
        dist.barrier()  # no rank tears its process group down while a peer still talks to it
    finally:
        dist.destroy_process_group()
    exit_rank(0)  # the result is saved: no C++ teardown that could turn success into SIGABRT


if __name__ == "__main__":
    _rank_main(sys.argv[1], int(sys.argv[2]))
