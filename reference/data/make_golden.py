"""Regenerate the golden corpus deterministically: ``python -m manifold_oracle.reference.data.make_golden``.

Every case is built from its own seed, ``np.random.default_rng([BASE_SEED, h(id)])`` with
``h`` the first 8 bytes of SHA-256 of the case id, so adding a case never changes another.
Only Gaussian draws come from numpy; every further construction (Haar factors by Gram–Schmidt,
Q₁·diag(σ)·Q₂ᵀ products, normalisations, tangent projections) runs in mpmath at
``BUILD_DPS`` digits and is rounded correctly to float64, so the stored inputs do not depend on
the BLAS/LAPACK build. Expected outputs are :func:`reference.golden.run_precise` at ``DPS`` = 50
digits on the stored float64 inputs (taken as exact), rounded correctly to float64.

Rank-deficient inputs (MATH.md §2.1): retained singular values are ≥ σ₁/1e6 and the ones set to
zero become float64 rounding noise (~1e-16·σ₁); the cases pass ``rank_rtol = 1e-10`` and the
builder asserts (on the exact singular values of the stored input) that every retained σ is
≥ 1e3·τ and every discarded σ ≤ τ/1e3.

Options: ``--out PATH`` (default: the shipped file), ``--check`` (regenerate in memory and exit 1
if the shipped file differs), ``--only ID`` (repeatable; print those cases' JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import mpmath as mp
import numpy as np

from .. import precise
from ..golden import (
    GOLDEN_SCHEMA,
    GOLDEN_SCHEMA_VERSION,
    encode_value,
    golden_path,
    manifold_spec,
    run_precise,
)
from ..manifolds import (
    Euclidean,
    FrobeniusSphere,
    Manifold,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)

BASE_SEED = 20261125
DPS = 50
BUILD_DPS = 70
RANK_RTOL = 1e-10
#: required separation (factor) of retained/discarded singular values from the rank threshold
RANK_MARGIN = 1e3

Params = dict[str, Any]
Inputs = dict[str, Any]
Meta = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# deterministic constructions (mpmath at BUILD_DPS, rounded once to float64)
# ---------------------------------------------------------------------------------------------
def case_seed(case_id: str) -> int:
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "little")


def case_rng(case_id: str) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, case_seed(case_id)])


def _mpm(a: np.ndarray) -> Any:
    return mp.matrix(np.asarray(a, dtype=np.float64).tolist())


def _haar(rng: np.random.Generator, n: int, k: int) -> Any:
    """First k columns of a Haar orthogonal n×n matrix (Gram–Schmidt of a Gaussian, diag R > 0)."""
    return precise._qr_positive(_mpm(rng.standard_normal((n, n))))[:, :k] if k < n else \
        precise._qr_positive(_mpm(rng.standard_normal((n, n))))


def _round(M: Any) -> np.ndarray:
    return np.asarray(precise.to_float64(M))


def with_spectrum(rng: np.random.Generator, sigma: Sequence[float], m: int, n: int) -> np.ndarray:
    """float64 rounding of Q₁·diag(σ)·Q₂ᵀ (m×n, k = min(m, n) values σ)."""
    k = min(m, n)
    if len(sigma) != k:
        raise ValueError("need k singular values")
    with mp.workdps(BUILD_DPS):
        Q1 = _haar(rng, m, k)
        Q2 = _haar(rng, n, k)
        s = [mp.mpf(float(v)) for v in sigma]
        X = precise._diag_mul(Q1, s, Q2.T)
        return _round(X)


def spectrum(k: int, cond: float = 1.0, rank: int | None = None, scale: float = 1.0,
             top_multiplicity: int = 1, repeat_middle: bool = False) -> list[float]:
    """Geometric spectrum from ``scale`` down to ``scale/cond`` over the first ``rank`` values."""
    r = k if rank is None else rank
    if r == 1:
        vals = [1.0]
    else:
        q = top_multiplicity
        free = r - q + 1
        vals = [1.0] * (q - 1) + [float(cond) ** (-i / max(free - 1, 1)) for i in range(free)]
    if repeat_middle and r >= 4:
        mid = r // 2
        vals[mid] = vals[mid - 1]
    return [scale * v for v in vals] + [0.0] * (k - r)


def _gauss(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """A Gaussian matrix times ``scale``, rounded once (scale is applied in mpmath)."""
    z = rng.standard_normal(shape)
    if scale == 1.0:
        return z
    with mp.workdps(BUILD_DPS):
        return np.array([precise.to_float64(mp.mpf(float(v)) * mp.mpf(scale)) for v in z.ravel()]).reshape(shape)


def point_on(man: Manifold, rng: np.random.Generator, shape: tuple[int, ...], gap: float = 0.3) -> np.ndarray:
    """A float64 point of ``man`` (rounded from an exact construction)."""
    if isinstance(man, SpectralSphere):
        m, n = shape
        k = min(m, n)
        s = [man.radius] + [man.radius * (1 - gap) * 0.5 ** i for i in range(k - 1)]
        return with_spectrum(rng, s, m, n)
    if isinstance(man, Orthogonal):
        with mp.workdps(BUILD_DPS):
            return _round(_haar(rng, shape[0], shape[0]))
    if isinstance(man, Stiefel):
        m, n = shape
        k = min(m, n)
        with mp.workdps(BUILD_DPS):
            Q1 = _haar(rng, m, k)
            Q2 = _haar(rng, n, k)
            return _round(Q1 * Q2.T * mp.mpf(man.scale))
    z = rng.standard_normal(shape)
    with mp.workdps(BUILD_DPS):
        if isinstance(man, Euclidean):
            return z
        pt = precise.project_point(man, z, dps=BUILD_DPS)
    return np.asarray(precise.to_float64(pt))


def tangent_at(man: Manifold, rng: np.random.Generator, W: np.ndarray, size: float) -> np.ndarray:
    """float64 rounding of size·P_W(G)/‖P_W(G)‖_F for a Gaussian G."""
    G = rng.standard_normal(W.shape)
    with mp.workdps(BUILD_DPS):
        P = precise.project_tangent(man, W, G, dps=BUILD_DPS)
        vals = P if isinstance(P, list) else [P[i, j] for i in range(P.rows) for j in range(P.cols)]
        nrm = mp.sqrt(mp.fsum(v * v for v in vals))
        c = mp.mpf(size) / nrm
        return np.array([precise.to_float64(v * c) for v in vals]).reshape(W.shape)


def check_rank_separation(X: np.ndarray, rank: int, rank_rtol: float) -> None:
    """Assert the stored X has ``rank`` singular values ≥ 1e3·τ and the rest ≤ τ/1e3."""
    s = precise.singular_values(X, dps=30)
    with mp.workdps(30):
        tau = mp.mpf(rank_rtol) * s[0]
        kept, dropped = s[:rank], s[rank:]
        if kept and min(kept) < RANK_MARGIN * tau:
            raise AssertionError(f"retained σ {mp.nstr(min(kept), 3)} too close to τ {mp.nstr(tau, 3)}")
        if dropped and max(dropped) * RANK_MARGIN > tau:
            raise AssertionError(f"discarded σ {mp.nstr(max(dropped), 3)} too close to τ {mp.nstr(tau, 3)}")


# ---------------------------------------------------------------------------------------------
# case specifications
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSpec:
    """``make(rng) -> (params, inputs, meta)``; expected values are computed from ``inputs``."""

    id: str
    op: str
    make: Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]


def _matrix_case(m: int, n: int, cond: float = 1.0, rank: int | None = None, scale: float = 1.0,
                 top_multiplicity: int = 1, repeat_middle: bool = False, rank_rtol: float | None = None,
                 extra: Params | None = None) -> Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]:
    def make(rng: np.random.Generator) -> tuple[Params, Inputs, Meta]:
        k = min(m, n)
        s = spectrum(k, cond, rank, scale, top_multiplicity, repeat_middle)
        X = with_spectrum(rng, s, m, n)
        params: Params = dict(extra or {})
        if rank_rtol is not None:
            params["rank_rtol"] = rank_rtol
            check_rank_separation(X, k if rank is None else rank, rank_rtol)
        meta = {"shape": [m, n], "cond": cond, "rank": k if rank is None else rank, "scale": scale,
                "top_multiplicity": top_multiplicity, "repeat_middle": repeat_middle}
        return params, {"X": X}, meta
    return make


def _zero_case(m: int, n: int) -> Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]:
    def make(rng: np.random.Generator) -> tuple[Params, Inputs, Meta]:
        return {}, {"X": np.zeros((m, n))}, {"shape": [m, n], "rank": 0, "tags": ["zero"]}
    return make


def _skew_case(n: int) -> Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]:
    def make(rng: np.random.Generator) -> tuple[Params, Inputs, Meta]:
        A = rng.standard_normal((n, n))
        S = 0.5 * (A - A.T)  # exactly skew: fl(a - b) = -fl(b - a), and halving is exact
        params: Params = {}
        rank = n - (n % 2)
        if n % 2:
            params["rank_rtol"] = RANK_RTOL
            check_rank_separation(S, rank, RANK_RTOL)
        return params, {"X": S}, {"shape": [n, n], "rank": rank, "tags": ["skew", "paired σ"]}
    return make


def _manifold_case(man: Manifold, shape: tuple[int, ...], what: str, size: float = 0.1,
                   method: str | None = None, ambient: str = "tangent", gap: float = 0.3,
                   repeat_top: int = 1, g_scale: float = 1.0) -> Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]:
    """what: project_tangent (W, G), retract (W, A), tangent_violation (W, A generic)."""
    def make(rng: np.random.Generator) -> tuple[Params, Inputs, Meta]:
        if repeat_top > 1:
            m, n = shape
            k = min(m, n)
            R = man.radius  # type: ignore[attr-defined]
            s = [R] * repeat_top + [R * (1 - gap) * 0.5 ** i for i in range(k - repeat_top)]
            W = with_spectrum(rng, s, m, n)
        else:
            W = point_on(man, rng, shape, gap)
        params: Params = {"manifold": manifold_spec(man)}
        meta: Meta = {"shape": list(shape), "step_size": size, "ambient": ambient}
        if what == "project_tangent":
            G = _gauss(rng, shape, g_scale)
            return params, {"W": W, "G": G}, meta
        if what == "tangent_violation":
            A = _gauss(rng, shape, g_scale)
            return params, {"W": W, "A": A}, meta
        params["method"] = method if method is not None else man.retractions[0]
        if ambient == "tangent":
            A = tangent_at(man, rng, W, size)
        elif ambient == "shrink":  # A = -c·W (not tangent): the spectral projection raises σ₁
            A = np.asarray(-size * W)
        else:  # generic ambient step of Frobenius size `size`
            G = rng.standard_normal(shape)
            with mp.workdps(BUILD_DPS):
                Gm = [mp.mpf(float(v)) for v in G.ravel()]
                c = mp.mpf(size) / mp.sqrt(mp.fsum(v * v for v in Gm))
                A = np.array([precise.to_float64(v * c) for v in Gm]).reshape(shape)
        return params, {"W": W, "A": A}, meta
    return make


def _schedule_case(kind: str, schedule: str, steps: int | None = None, extension: str | None = None,
                   lower: float = 0.1, n_values: int = 12, cond: float = 1e3, m: int = 8, n: int = 6,
                   zeros: int = 0) -> Callable[[np.random.Generator], tuple[Params, Inputs, Meta]]:
    def make(rng: np.random.Generator) -> tuple[Params, Inputs, Meta]:
        params: Params = {"schedule": schedule}
        if steps is not None:
            params["steps"] = steps
        if extension is not None:
            params["extension"] = extension
        meta: Meta = {"cond": cond}
        if kind == "polynomial_map":
            x = np.concatenate([[0.0, 1e-6, 1e-3], np.sort(rng.uniform(0.0, 1.0, n_values)), [1.0]])
            return params, {"x": x}, meta
        if kind == "ns_singular_value_map":
            s = np.sort(np.exp(rng.uniform(np.log(1.0 / cond), 0.0, n_values)))[::-1]
            s = np.concatenate([s, np.zeros(zeros)])
            return params, {"sigma": s}, meta
        if kind == "ns_apply":
            X = with_spectrum(rng, spectrum(min(m, n), cond), m, n)
            meta["shape"] = [m, n]
            return params, {"X": X}, meta
        params["lower"] = lower
        return params, {}, meta
    return make


def case_specs() -> list[CaseSpec]:
    """The corpus, in file order."""
    S: list[CaseSpec] = []
    add = lambda cid, op, make: S.append(CaseSpec(cid, op, make))  # noqa: E731

    # --- msign: shapes × conditioning × rank × multiplicity × scale -------------------------
    for m, n in ((8, 8), (12, 5), (5, 12), (16, 16)):
        for cond in (1.0, 1e2, 1e4, 1e6):
            add(f"msign/{m}x{n}/cond{cond:.0e}", "msign", _matrix_case(m, n, cond))
    add("msign/8x8/rank3", "msign", _matrix_case(8, 8, 1e3, rank=3, rank_rtol=RANK_RTOL))
    add("msign/10x6/rank2", "msign", _matrix_case(10, 6, 10.0, rank=2, rank_rtol=RANK_RTOL))
    add("msign/7x12/rank5/cond1e6", "msign", _matrix_case(7, 12, 1e6, rank=5, rank_rtol=RANK_RTOL))
    add("msign/16x16/rank12/cond1e5", "msign", _matrix_case(16, 16, 1e5, rank=12, rank_rtol=RANK_RTOL))
    add("msign/8x8/top-multiplicity3", "msign", _matrix_case(8, 8, 1e2, top_multiplicity=3))
    add("msign/9x6/repeated-middle", "msign", _matrix_case(9, 6, 1e3, repeat_middle=True))
    add("msign/6x6/identity-spectrum", "msign", _matrix_case(6, 6, 1.0, top_multiplicity=6))
    add("msign/8x6/scale1e-30/cond1e4", "msign", _matrix_case(8, 6, 1e4, scale=1e-30))
    add("msign/6x8/scale1e30/cond1e4", "msign", _matrix_case(6, 8, 1e4, scale=1e30))
    add("msign/9x9/rank4/scale1e-30", "msign", _matrix_case(9, 9, 1e2, rank=4, scale=1e-30, rank_rtol=RANK_RTOL))
    add("msign/1x7", "msign", _matrix_case(1, 7))
    add("msign/7x1/scale1e30", "msign", _matrix_case(7, 1, scale=1e30))
    add("msign/5x5/zero", "msign", _zero_case(5, 5))
    add("msign/6x6/skew", "msign", _skew_case(6))
    add("msign/7x7/skew-odd", "msign", _skew_case(7))

    # --- polar factor (full rank only: unique) ----------------------------------------------
    add("polar_factor/8x8/cond1e6", "polar_factor", _matrix_case(8, 8, 1e6))
    add("polar_factor/12x6/cond1e3", "polar_factor", _matrix_case(12, 6, 1e3))
    add("polar_factor/6x12/cond1e5", "polar_factor", _matrix_case(6, 12, 1e5))
    add("polar_factor/10x10/scale1e30", "polar_factor", _matrix_case(10, 10, 1e2, scale=1e30))
    add("polar_factor/7x4/scale1e-30", "polar_factor", _matrix_case(7, 4, 1e4, scale=1e-30))

    # --- mclip ---------------------------------------------------------------------------------
    add("mclip/8x8/tau-mid", "mclip", _matrix_case(8, 8, 1e2, extra={"tau": 0.05}))
    add("mclip/10x6/tau-mid", "mclip", _matrix_case(10, 6, 1e3, scale=3.0, extra={"tau": 0.5}))
    add("mclip/5x9/tau-above", "mclip", _matrix_case(5, 9, 10.0, extra={"tau": 2.0}))
    add("mclip/9x9/scale1e30", "mclip", _matrix_case(9, 9, 1e4, scale=1e30, extra={"tau": 1e28}))

    # --- norms -----------------------------------------------------------------------------------
    add("norms/12x7/cond1e6", "norms", _matrix_case(12, 7, 1e6))
    add("norms/6x10/rank3", "norms", _matrix_case(6, 10, 1e2, rank=3, rank_rtol=RANK_RTOL,
                                                   extra={}))
    add("norms/8x8/scale1e-30", "norms", _matrix_case(8, 8, 1e3, scale=1e-30))

    # --- Newton–Schulz maps -------------------------------------------------------------------
    for name in ("keller_jordan", "you_jiacheng_5", "polar_express", "polar_express_stable",
                 "polar_express_eo", "polar_express_dion", "modula_ns6", "classical"):
        add(f"ns_singular_value_map/{name}", "ns_singular_value_map",
            _schedule_case("ns_singular_value_map", name, cond=1e4, zeros=2))
    add("ns_singular_value_map/you_jiacheng_5/cycle6", "ns_singular_value_map",
        _schedule_case("ns_singular_value_map", "you_jiacheng_5", steps=6, extension="cycle", cond=1e2))
    add("ns_singular_value_map/keller_jordan/steps10/cond1e6", "ns_singular_value_map",
        _schedule_case("ns_singular_value_map", "keller_jordan", steps=10, cond=1e6))
    add("polynomial_map/keller_jordan", "polynomial_map", _schedule_case("polynomial_map", "keller_jordan"))
    add("polynomial_map/polar_express", "polynomial_map", _schedule_case("polynomial_map", "polar_express"))
    add("polynomial_map/classical/steps10", "polynomial_map",
        _schedule_case("polynomial_map", "classical", steps=10))
    add("ns_apply/keller_jordan/8x6", "ns_apply", _schedule_case("ns_apply", "keller_jordan", cond=1e2))
    add("ns_apply/polar_express_dion/6x10", "ns_apply",
        _schedule_case("ns_apply", "polar_express_dion", cond=1e3, m=6, n=10))
    add("ns_apply/classical/steps10/9x9", "ns_apply",
        _schedule_case("ns_apply", "classical", steps=10, cond=10.0, m=9, n=9))
    add("ns_apply/polar_express/12x8/cond1e6", "ns_apply",
        _schedule_case("ns_apply", "polar_express", cond=1e6, m=12, n=8))
    add("schedule_band/keller_jordan/0.1", "schedule_band", _schedule_case("schedule_band", "keller_jordan"))
    add("schedule_band/keller_jordan/0.001", "schedule_band",
        _schedule_case("schedule_band", "keller_jordan", lower=1e-3))
    add("schedule_band/you_jiacheng_5/cycle6/0.1", "schedule_band",
        _schedule_case("schedule_band", "you_jiacheng_5", steps=6, extension="cycle"))
    add("schedule_band/classical/0.01", "schedule_band", _schedule_case("schedule_band", "classical", lower=1e-2))

    # --- manifolds: projections, retractions, tangency ---------------------------------------
    E = Euclidean()
    add("project_tangent/Euclidean/6x4", "project_tangent", _manifold_case(E, (6, 4), "project_tangent"))
    add("retract/Euclidean/4x6", "retract", _manifold_case(E, (4, 6), "retract", ambient="ambient"))

    V = Sphere(2.0)
    add("project_tangent/Sphere/9", "project_tangent", _manifold_case(V, (9,), "project_tangent"))
    add("retract/Sphere/projection/9", "retract", _manifold_case(V, (9,), "retract", 0.3, "projection"))
    add("retract/Sphere/exp/9", "retract", _manifold_case(V, (9,), "retract", 1.5, "exp"))

    F1, Fbig, Ftiny = FrobeniusSphere(1.0), FrobeniusSphere(1e30), FrobeniusSphere(1e-30)
    add("project_tangent/FrobeniusSphere/8x8", "project_tangent", _manifold_case(F1, (8, 8), "project_tangent"))
    add("project_tangent/FrobeniusSphere/R1e30/12x5", "project_tangent",
        _manifold_case(Fbig, (12, 5), "project_tangent", g_scale=1e30))
    add("retract/FrobeniusSphere/rescale/7x9", "retract", _manifold_case(F1, (7, 9), "retract", 0.2, "rescale"))
    add("retract/FrobeniusSphere/projection/ambient/9x7", "retract",
        _manifold_case(F1, (9, 7), "retract", 0.5, "projection", ambient="ambient"))
    add("retract/FrobeniusSphere/exp/6x6", "retract", _manifold_case(F1, (6, 6), "retract", 0.8, "exp"))
    add("retract/FrobeniusSphere/R1e-30/rescale/5x8", "retract",
        _manifold_case(Ftiny, (5, 8), "retract", 1e-31, "rescale"))
    add("tangent_violation/FrobeniusSphere/8x5", "tangent_violation",
        _manifold_case(F1, (8, 5), "tangent_violation"))

    Ssp, Sbig, Stiny = SpectralSphere(1.0), SpectralSphere(1e30), SpectralSphere(1e-30)
    Sstrict = SpectralSphere(2.0, degenerate="strict")
    add("project_tangent/SpectralSphere/8x8", "project_tangent", _manifold_case(Ssp, (8, 8), "project_tangent"))
    add("project_tangent/SpectralSphere/12x6/gap0.01", "project_tangent",
        _manifold_case(Ssp, (12, 6), "project_tangent", gap=0.01))
    add("project_tangent/SpectralSphere/R1e-30/5x9", "project_tangent",
        _manifold_case(Stiny, (5, 9), "project_tangent", g_scale=1e-30))
    add("project_tangent/SpectralSphere/strict-q2/7x7", "project_tangent",
        _manifold_case(Sstrict, (7, 7), "project_tangent", repeat_top=2))
    add("project_tangent/SpectralSphere/strict-q3/9x6", "project_tangent",
        _manifold_case(Sstrict, (9, 6), "project_tangent", repeat_top=3))
    add("retract/SpectralSphere/rescale/8x8", "retract", _manifold_case(Ssp, (8, 8), "retract", 0.2, "rescale"))
    add("retract/SpectralSphere/rescale/R1e30/6x10", "retract",
        _manifold_case(Sbig, (6, 10), "retract", 3e29, "rescale"))
    add("retract/SpectralSphere/projection/8x8", "retract",
        _manifold_case(Ssp, (8, 8), "retract", 0.2, "projection"))
    add("retract/SpectralSphere/projection/10x6", "retract",
        _manifold_case(Ssp, (10, 6), "retract", 0.5, "projection", gap=0.05))
    add("retract/SpectralSphere/projection/raise-sigma1/6x9", "retract",
        _manifold_case(Ssp, (6, 9), "retract", 0.4, "projection", ambient="shrink"))
    add("retract/SpectralSphere/projection/ambient/7x7", "retract",
        _manifold_case(Ssp, (7, 7), "retract", 0.3, "projection", ambient="ambient"))
    add("tangent_violation/SpectralSphere/9x6", "tangent_violation",
        _manifold_case(Ssp, (9, 6), "tangent_violation"))

    Orow, Ocol = Oblique(0.5, "rows"), Oblique([1.0, 2.0, 0.25, 3.0, 1.5], "cols")
    add("project_tangent/Oblique/rows/6x8", "project_tangent", _manifold_case(Orow, (6, 8), "project_tangent"))
    add("project_tangent/Oblique/cols-radii/9x5", "project_tangent",
        _manifold_case(Ocol, (9, 5), "project_tangent"))
    add("retract/Oblique/normalize/rows/8x6", "retract", _manifold_case(Orow, (8, 6), "retract", 0.3, "normalize"))
    add("retract/Oblique/normalize/cols-radii/7x5", "retract",
        _manifold_case(Ocol, (7, 5), "retract", 0.5, "normalize"))
    add("retract/Oblique/projection/rows/ambient/5x7", "retract",
        _manifold_case(Orow, (5, 7), "retract", 0.2, "projection", ambient="ambient"))
    add("tangent_violation/Oblique/cols-radii/6x5", "tangent_violation",
        _manifold_case(Ocol, (6, 5), "tangent_violation"))

    St1, Sts, Stbig = Stiefel(1.0), Stiefel(0.5), Stiefel(1e30)
    add("project_tangent/Stiefel/12x5", "project_tangent", _manifold_case(St1, (12, 5), "project_tangent"))
    add("project_tangent/Stiefel/s0.5/5x12", "project_tangent", _manifold_case(Sts, (5, 12), "project_tangent"))
    add("project_tangent/Stiefel/s1e30/10x4", "project_tangent",
        _manifold_case(Stbig, (10, 4), "project_tangent", g_scale=1e30))
    add("retract/Stiefel/polar/12x5", "retract", _manifold_case(St1, (12, 5), "retract", 0.3, "polar"))
    add("retract/Stiefel/polar/s0.5/6x11", "retract", _manifold_case(Sts, (6, 11), "retract", 0.2, "polar"))
    add("retract/Stiefel/polar/ambient/10x6", "retract",
        _manifold_case(St1, (10, 6), "retract", 0.5, "polar", ambient="ambient"))
    add("retract/Stiefel/qr/12x5", "retract", _manifold_case(St1, (12, 5), "retract", 0.3, "qr"))
    add("retract/Stiefel/qr/s0.5/5x9", "retract", _manifold_case(Sts, (5, 9), "retract", 0.2, "qr"))
    add("tangent_violation/Stiefel/11x4", "tangent_violation",
        _manifold_case(St1, (11, 4), "tangent_violation"))

    O = Orthogonal()
    add("project_tangent/Orthogonal/7x7", "project_tangent", _manifold_case(O, (7, 7), "project_tangent"))
    add("retract/Orthogonal/polar/8x8", "retract", _manifold_case(O, (8, 8), "retract", 0.5, "polar"))
    add("retract/Orthogonal/qr/6x6", "retract", _manifold_case(O, (6, 6), "retract", 0.5, "qr"))
    return S


# ---------------------------------------------------------------------------------------------
# building and writing
# ---------------------------------------------------------------------------------------------
def _encode_expected(v: Any) -> dict[str, Any]:
    if isinstance(v, int):
        return encode_value(v)
    return encode_value(precise.to_float64(v))


def build_case(spec: CaseSpec) -> dict[str, Any]:
    """The JSON-ready dict of one case (deterministic)."""
    rng = case_rng(spec.id)
    params, inputs, meta = spec.make(rng)
    expected = run_precise({"op": spec.op, "params": params, "inputs": inputs}, dps=DPS)
    full_meta = {"dps": DPS, "mpmath_version": mp.__version__, "seed": [BASE_SEED, case_seed(spec.id)],
                 "made_by": "reference.precise at 50 digits on the float64 inputs taken as exact; "
                            "expected rounded to nearest float64", **meta}
    return {"id": spec.id, "op": spec.op, "params": params,
            "inputs": {k: encode_value(v) for k, v in inputs.items()},
            "expected": {k: _encode_expected(v) for k, v in expected.items()},
            "meta": full_meta}


def header() -> dict[str, Any]:
    return {"schema": GOLDEN_SCHEMA, "schema_version": GOLDEN_SCHEMA_VERSION, "dps": DPS,
            "mpmath_version": mp.__version__, "seed": BASE_SEED, "float_encoding": "float.hex",
            "created_by": "python -m manifold_oracle.reference.data.make_golden"}


def dumps(cases: list[dict[str, Any]]) -> str:
    """Deterministic text: the header, then one case per line."""
    head = json.dumps(header(), sort_keys=True, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(c, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for c in cases)
    return head + ', "cases": [\n' + body + "\n]}\n"


def write(path: Path, text: str) -> str:
    data = text.encode("utf-8")
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n", encoding="ascii")
    return digest


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m manifold_oracle.reference.data.make_golden", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="output path (default: the shipped corpus)")
    ap.add_argument("--check", action="store_true", help="regenerate in memory; exit 1 if the shipped file differs")
    ap.add_argument("--only", action="append", default=None, help="print only the case(s) with this id")
    args = ap.parse_args(argv)
    specs = case_specs()
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        print("duplicate case ids", file=sys.stderr)
        return 2
    if args.only:
        for s in specs:
            if s.id in args.only:
                print(json.dumps(build_case(s), sort_keys=True))
        return 0
    t0 = time.perf_counter()
    cases = [build_case(s) for s in specs]
    text = dumps(cases)
    dt = time.perf_counter() - t0
    target = args.out if args.out is not None else golden_path()
    if args.check:
        same = target.is_file() and target.read_text(encoding="utf-8") == text
        print(f"{len(cases)} cases regenerated in {dt:.1f} s: {'identical' if same else 'DIFFERENT'} to {target}")
        return 0 if same else 1
    digest = write(target, text)
    print(f"wrote {target} ({len(text.encode()) / 1024:.0f} KiB, {len(cases)} cases, sha256 {digest[:16]}…) "
          f"in {dt:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
