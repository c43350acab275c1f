"""Cases: golden corpus, seeded hypothesis strategies and adversarial spectrum-controlled matrices.

All generators are deterministic functions of a ``numpy.random.Generator`` (or a seed), so a
run is reproducible from its seed and a single case from its saved arrays.

* :func:`adversarial_matrices` — spectrum-controlled (Q₁·diag(σ)·Q₂ᵀ, ``reference.generators``):
  well conditioned, κ = 10³, rank deficient with exact zeros, repeated σ₁, tiny normalised
  singular values (σ/‖G‖_F down to 10⁻⁶), tall/wide/square/vectors (CLAIMS §0.1; CONVENTIONS
  §12.8–9).
* :func:`hypothesis_matrices` — examples of ``reference.generators.matrices`` drawn with a fixed
  hypothesis seed (derandomisable: the same seed gives the same examples).
* :func:`golden_matrices` — input matrices of the golden corpus (``reference.golden``), by case id.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifold_oracle.reference import generators as gen

from .checks import Case

__all__ = ["adversarial_matrices", "hypothesis_matrices", "golden_matrices", "matrix_cases",
           "draw_examples"]


def adversarial_matrices(rng: np.random.Generator, full: bool = False) -> list[Case]:
    """Spectrum-controlled adversarial matrices (unit σ₁ unless stated)."""
    out: list[Case] = []
    shapes = [(8, 8), (12, 7), (7, 12)] + ([(32, 20), (20, 32), (1, 9), (9, 1), (48, 48)] if full else [(1, 6)])

    def add(label: str, X: np.ndarray) -> None:
        out.append(Case(label, {"G": X}))

    for shp in shapes:
        k = min(shp)
        add(f"well-conditioned κ=3 {shp}", gen.random_matrix(rng, shp, cond=3.0))
        if k >= 3:
            add(f"ill-conditioned κ=1e3 {shp}", gen.random_matrix(rng, shp, cond=1e3))
            add(f"rank-deficient r={k // 2} exact zeros {shp}",
                gen.random_matrix(rng, shp, cond=10.0, rank=max(1, k // 2), exact_zeros=True))
            add(f"repeated σ₁ (q=2) {shp}", gen.random_matrix(rng, shp, cond=5.0, multiplicity=2))
        if full and k >= 4:
            s = np.concatenate([[1.0, 0.5], np.geomspace(1e-3, 1e-6, k - 2)])
            add(f"tiny normalised σ (1e-3…1e-6) {shp}", gen.matrix_with_spectrum(rng, s, shp))
            add(f"clustered {shp}", gen.random_matrix(rng, shp, kind="clustered"))
    return out


def draw_examples(strategy: Any, n: int, seed: int) -> list[Any]:
    """``n`` examples of a hypothesis strategy, deterministic in ``seed``."""
    _hypothesis_home()
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    got: list[Any] = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hseed(int(seed))
    @given(strategy)
    def _collect(x: Any) -> None:
        got.append(x)

    _collect()
    return got[:n]


def hypothesis_matrices(seed: int, n: int, max_side: int = 12) -> list[Case]:
    """Seeded examples of ``reference.generators.matrices`` (moderate scales, κ ≤ 10³)."""
    strat = gen.matrices(gen.shapes(min_side=1, max_side=max_side), max_cond=1e3,
                         min_scale_exp=-3, max_scale_exp=3)
    return [Case(f"hypothesis #{i} {x.shape}", {"G": x}) for i, x in enumerate(draw_examples(strat, n, seed))]


def golden_matrices(limit: int = 8) -> list[Case]:
    """Input matrices of the golden corpus (``reference.golden.load_golden``), named by case id.

    The corpus ships with the package and its checksum is verified on load: a corrupted corpus
    raises :class:`reference.golden.GoldenChecksumError` here rather than silently dropping the
    golden cases from a run.
    """
    from manifold_oracle.reference.golden import load_golden

    out: list[Case] = []
    for case in load_golden().cases:
        if case.op not in ("msign", "polar_factor", "ns_apply", "mclip"):
            continue
        X = np.asarray(case.inputs["X"], dtype=np.float64)
        if X.ndim == 2 and max(X.shape) <= 64 and np.all(np.isfinite(X)) and np.any(X):
            out.append(Case(f"golden {case.id}", {"G": X}))
        if len(out) >= limit:
            break
    return out


def matrix_cases(ctx: Any, salt: str) -> list[Case]:
    """The standard matrix set of a check: adversarial + hypothesis (+ golden in full mode)."""
    rng = ctx.rng(salt)
    cases = adversarial_matrices(rng, ctx.full)
    cases += hypothesis_matrices(int(rng.integers(2**31)), 12 if ctx.full else 3)
    if ctx.full:
        cases += golden_matrices()
    return cases


def _hypothesis_home() -> None:
    """Keep hypothesis's files in the user's cache folder ($XDG_CACHE_HOME or ~/.cache, under
    manifold-oracle/hypothesis), never a ``.hypothesis/`` in the working directory."""
    import os
    from pathlib import Path

    from hypothesis.configuration import set_hypothesis_home_dir

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    set_hypothesis_home_dir(str(Path(base) / "manifold-oracle" / "hypothesis"))
