"""Benchmarks (``manifold-oracle bench``) that write Markdown tables into the checkout's ``docs/``.

The tables are part of the repository, so the default output path is the ``docs/`` folder of the
source checkout; an installed wheel has no such folder and then needs ``--out FILE``.
"""

from __future__ import annotations

from pathlib import Path

from manifold_oracle.reference.errors import NotAvailableError

__all__ = ["checkout_docs_path"]


def checkout_docs_path(name: str) -> Path:
    """``docs/<name>`` of the source checkout this package runs from.

    Raises ``NotAvailableError`` when the package is not run from a source checkout (e.g. from
    an installed wheel), instead of writing into site-packages or into the caller's directory.
    """
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "docs").is_dir():
        return root / "docs" / name
    raise NotAvailableError(f"not run from a source checkout (no pyproject.toml and docs/ next to {root}), "
                            f"so there is no docs/{name} to write: pass --out FILE")
