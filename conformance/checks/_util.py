"""Helpers shared by the check modules (calling adapters, norms, small measurements)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..adapters import as_output, to_numpy
from ..expected import round_to
from ..tolerances import Tolerance, kappa, rank_rtol_for, spec2  # noqa: F401 (re-exported to the check families)
from . import Case, Context, Measurement, NotApplicable


def tdtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def input_dtype(profile: Any) -> str:
    """The dtype the harness feeds an orthogonaliser: float64 for float64 profiles, else the
    first declared parameter dtype."""
    if profile.compute_dtype == "float64":
        return "float64"
    return profile.param_dtypes[0] if profile.param_dtypes else "float32"


def tensor(x: np.ndarray, dtype: str) -> torch.Tensor:
    """A fresh CPU tensor of ``dtype`` holding ``x`` (rounded)."""
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64).to(tdtype(dtype)).clone()


def call(ctx: Context, capability: str, *args: Any, **kwargs: Any) -> Any:
    """Call an adapter capability (raises NotApplicable if the adapter lacks it)."""
    if capability not in ctx.adapter.capabilities:
        raise NotApplicable(f"adapter does not declare {capability!r}")
    return getattr(ctx.adapter, capability)(*args, **kwargs)


def run_msign(ctx: Context, G: np.ndarray, dtype: str) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """(output as float64, raw output tensor, the exactly representable input used)."""
    g = round_to(G, dtype)
    out = as_output(call(ctx, "msign", tensor(g, dtype)))
    return to_numpy(out), out, g


def fro(x: np.ndarray) -> float:
    return float(np.linalg.norm(x))


def boolean(figure: str, ok: bool, statement: str, provenance: str, **details: Any) -> Measurement:
    """A yes/no measurement: value 0 (as declared) or 1 (violated)."""
    return Measurement(figure, 0.0 if ok else 1.0, Tolerance(0.0, statement, provenance), bool(ok), dict(details))


def fit_slope(ts: np.ndarray, es: np.ndarray) -> float:
    """Least-squares slope of log e against log t."""
    lt, le = np.log(ts), np.log(es)
    A = np.vstack([lt, np.ones_like(lt)]).T
    return float(np.linalg.lstsq(A, le, rcond=None)[0][0])


def require_ns_or_exact(ctx: Context) -> str | None:
    p = ctx.profile
    if p.schedule is None:
        return "profile declares no orthogonaliser (schedule=None)"
    return None


__all__ = ["tdtype", "input_dtype", "tensor", "call", "run_msign", "spec2", "fro", "boolean",
           "fit_slope", "require_ns_or_exact", "rank_rtol_for", "kappa", "Case", "NotApplicable"]
