"""Byte-level training data that needs no download.

The default corpus is the Python standard library's own ``*.py`` sources (the running
interpreter's ``sysconfig`` stdlib directory, ``site-packages`` and ``__pycache__`` excluded),
read in sorted relative-path order. The split is **by file**: file number i (0-based, in that
order) is held out for validation iff ``i % val_every == val_every - 1`` (default every 10th
file). Files are added in order until the train part reaches ``max_bytes`` (0 = no cap), so the
corpus is a deterministic function of (Python installation, options); its SHA-256 is recorded.

A user-named text file is split by position instead: the last ``1/val_every`` of its bytes is
the validation part.

Batches are random windows drawn with an explicit ``torch.Generator`` (never the global RNG):
``x = data[i : i+T]``, ``y = data[i+1 : i+T+1]`` as int64 tokens in [0, 256).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from manifold_oracle.reference.errors import InvalidInputError

__all__ = ["ByteCorpus", "stdlib_source_files", "load_corpus", "sample_batch", "fixed_batches"]

#: Default cap on the training bytes of the stdlib corpus (8 MiB: ~0.2 s to read).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ByteCorpus:
    """A byte corpus: ``train`` and ``val`` are 1-D uint8 tensors; ``source`` describes it."""

    train: torch.Tensor
    val: torch.Tensor
    source: str
    n_train_files: int
    n_val_files: int
    sha256: str

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "train_bytes": int(self.train.numel()),
            "val_bytes": int(self.val.numel()),
            "n_train_files": self.n_train_files,
            "n_val_files": self.n_val_files,
            "sha256": self.sha256,
        }


@functools.lru_cache(maxsize=4)
def stdlib_source_files() -> tuple[Path, list[Path]]:
    """(stdlib root, ``*.py`` files under it sorted by relative POSIX path), excluding
    ``site-packages`` and ``__pycache__`` directories. Cached per process."""
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise InvalidInputError(f"the standard-library directory {root} does not exist")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "__pycache__")]
        found.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    files = sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise InvalidInputError(f"no *.py files found under {root}")
    return root, files


def _to_tensor(buf: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(buf), dtype=torch.uint8).clone() if buf else torch.empty(0, dtype=torch.uint8)


def load_corpus(path: str | Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
                val_every: int = 10) -> ByteCorpus:
    """Load the embedded stdlib corpus (``path=None``) or the named text file (module docstring).

    The stdlib corpus is cached per process (its tensors are shared: treat them as read-only).
    """
    if path is None:
        return _stdlib_corpus(int(max_bytes), int(val_every))
    return _load(path, max_bytes, val_every)


@functools.lru_cache(maxsize=4)
def _stdlib_corpus(max_bytes: int, val_every: int) -> ByteCorpus:
    return _load(None, max_bytes, val_every)


def _load(path: str | Path | None, max_bytes: int, val_every: int) -> ByteCorpus:
    if val_every < 2:
        raise InvalidInputError(f"val_every must be >= 2, got {val_every}")
    if max_bytes < 0:
        raise InvalidInputError(f"max_bytes must be >= 0, got {max_bytes}")
    h = hashlib.sha256()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"corpus file {p} does not exist")
        data = p.read_bytes()
        if max_bytes:
            data = data[: max_bytes + max_bytes // (val_every - 1)]
        cut = len(data) - len(data) // val_every
        train, val = data[:cut], data[cut:]
        h.update(data)
        src, ntr, nva = str(p), 1, 1
    else:
        root, files = stdlib_source_files()
        tr_parts: list[bytes] = []
        va_parts: list[bytes] = []
        ntr = nva = 0
        n_tr_bytes = 0
        for i, f in enumerate(files):
            if max_bytes and n_tr_bytes >= max_bytes:
                break
            b = f.read_bytes()
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + b)
            if i % val_every == val_every - 1:
                va_parts.append(b)
                nva += 1
            else:
                tr_parts.append(b)
                n_tr_bytes += len(b)
                ntr += 1
        train, val = b"".join(tr_parts), b"".join(va_parts)
        src = f"python-stdlib:{root}"
    tr_t, va_t = _to_tensor(train), _to_tensor(val)
    return ByteCorpus(tr_t, va_t, src, ntr, nva, h.hexdigest())


def sample_batch(data: torch.Tensor, batch: int, seq_len: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random windows of ``seq_len`` + 1 bytes → (x, y), each int64 (batch, seq_len)."""
    if batch < 1 or seq_len < 1:
        raise InvalidInputError(f"batch and seq_len must be >= 1, got {batch}, {seq_len}")
    n = data.numel() - seq_len - 1
    if n < 1:
        raise InvalidInputError(f"corpus of {data.numel()} bytes is too short for seq_len {seq_len}")
    starts = torch.randint(0, n + 1, (batch,), generator=generator)
    idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]
    win = data[idx].long()
    return win[:, :-1].contiguous(), win[:, 1:].contiguous()


def fixed_batches(data: torch.Tensor, n_batches: int, batch: int, seq_len: int,
                  seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed list of batches (e.g. the validation set), drawn from its own seeded generator."""
    g = torch.Generator().manual_seed(int(seed))
    return [sample_batch(data, batch, seq_len, g) for _ in range(n_batches)]
