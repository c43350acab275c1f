"""``manifold-oracle bench exact``: time and accuracy of the exact steepest-descent solvers.

For each manifold × method × size it solves one random instance (seeded), and records the wall
time, the relative objective deviation from the reference value of that instance (the
best certified value among the exact methods run on it), the relative duality gap and the
tangency residual, all recomputed by :func:`reference.steepest.certify` in float64. cvxpy is
timed up to ``--timeout-cvxpy`` seconds per solve; once a solve exceeds it (or fails), cvxpy is
not run at larger sizes of that manifold. Fast solvers also run at 256 and 512 (``--fast-sizes``).
The Stiefel scaling section times ``stiefel_newton`` at every size (shape n×n/2) against one float64
SVD of the same G: ``--repeats`` interleaved (SVD, solve, SVD) triples, median ratio and spread, with
its Newton and CG iterations and SVD/eigh evaluations, and the growth exponent over n ≥ 64.

Writes a Markdown table to ``--out`` (default ``docs/bench_exact.md`` of the source checkout). Exit code 0 on success, 1
if an exact solver failed its certificate, 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from manifold_oracle.bench import checkout_docs_path
from manifold_oracle.reference import (
    Euclidean,
    FrobeniusSphere,
    Manifold,
    Oblique,
    OracleError,
    Orthogonal,
    SpectralSphere,
    Stiefel,
)
from manifold_oracle.reference.steepest import certify, steepest_direction


BASELINES = ("dual_ascent", "dual_subgradient")


@dataclass
class Row:
    manifold: str
    shape: tuple[int, int]
    method: str
    solver: str
    seconds: float
    value: float
    dev: float
    gap: float
    tangency: float
    status: str
    iterations: int
    raw: float = float("nan")  # cvxpy: the solver's own objective ⟨G, Â⟩ before polishing/recovery
    raw_dev: float = float("nan")


def _cases() -> list[tuple[str, Manifold, Callable[[int], tuple[int, int]], list[str]]]:
    """(label, manifold, size → shape, fast methods) for the spectral-norm problem."""
    return [
        ("Euclidean", Euclidean(), lambda n: (n, n), ["msign"]),
        ("FrobeniusSphere", FrobeniusSphere(), lambda n: (n, n // 2), ["brent", "bisection", "su_fixed_point", "su_qinv_free"]),
        ("SpectralSphere", SpectralSphere(), lambda n: (n, n // 2), ["brent", "bisection", "su_fixed_point", "su_qinv_free"]),
        ("Oblique rows", Oblique(axis="rows"), lambda n: (n, n // 2), ["dual_subgradient"]),
        ("Oblique cols", Oblique(axis="cols"), lambda n: (n // 2, n), ["dual_subgradient"]),
        ("Stiefel", Stiefel(), lambda n: (n, n // 2), ["stiefel_newton", "su_lyapunov", "dual_ascent"]),
        ("Orthogonal", Orthogonal(), lambda n: (n, n), ["orthogonal"]),
    ]


def _solve(manifold: Manifold, W: np.ndarray, G: np.ndarray, method: str, **kw: Any) -> Row | str:
    t0 = time.perf_counter()
    try:
        r = steepest_direction(manifold, W, G, method=method, **kw)
    except OracleError as exc:
        return f"{type(exc).__name__}: {str(exc)[:90]}"
    dt = time.perf_counter() - t0
    cert = certify(manifold, W, G, r, raise_on_failure=False)
    return Row("", W.shape, method, r.solver, dt, r.value, float("nan"), abs(cert.dual - cert.primal) / max(abs(cert.dual), 1e-300),
               cert.tangency, r.status, r.iterations, float(r.extras.get("raw_value", float("nan"))))


@dataclass
class Scaling:
    """One size of the Stiefel scaling table: medians over interleaved (SVD, solve, SVD) triples."""

    shape: tuple[int, int]
    newton: int
    cg: int
    evaluations: int
    seconds: float
    svd_seconds: float
    ratio: float  # median of solve time / mean of the two neighbouring SVD times
    ratio_lo: float
    ratio_hi: float
    gap: float
    tangency: float


def stiefel_scaling(sizes: Sequence[int], seed: int, repeats: int,
                    log: Callable[[str], None]) -> tuple[list[Scaling], list[str]]:
    """Time ``stiefel_newton`` (via ``steepest_direction``, certificate figures included) at shape
    n×n/2 for each n against one float64 ``np.linalg.svd`` of the same G, interleaved: the instance
    is the one :func:`run` solves at that size."""
    out: list[Scaling] = []
    notes: list[str] = []
    M = Stiefel()
    for n in sorted(set(sizes)):
        shape = (n, n // 2)
        if shape[1] < 2:
            continue
        rng = np.random.default_rng([seed, n])
        W = M.random_point(rng, shape)
        G = rng.standard_normal(shape)
        svd_t: list[float] = []
        ratios: list[float] = []
        times: list[float] = []
        r = None
        try:
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                np.linalg.svd(G, full_matrices=False)
                t1 = time.perf_counter()
                r = steepest_direction(M, W, G, method="stiefel_newton")
                t2 = time.perf_counter()
                np.linalg.svd(G, full_matrices=False)
                t3 = time.perf_counter()
                one = 0.5 * ((t1 - t0) + (t3 - t2))
                svd_t.append(one)
                times.append(t2 - t1)
                ratios.append((t2 - t1) / one)
        except OracleError as exc:
            notes.append(f"Stiefel scaling {shape} stiefel_newton: {type(exc).__name__}: {str(exc)[:90]}")
            log(f"  scaling {str(shape):11s} FAILED {exc}")
            continue
        assert r is not None
        cert = certify(M, W, G, r, raise_on_failure=False)
        e = r.extras
        row = Scaling(shape, int(e["newton_iterations"]), int(e["cg_iterations"]), int(e["evaluations"]),
                      float(np.median(times)), float(np.median(svd_t)), float(np.median(ratios)),
                      min(ratios), max(ratios), abs(cert.dual - cert.primal) / max(abs(cert.dual), 1e-300),
                      cert.tangency)
        out.append(row)
        log(f"  scaling {str(shape):11s} newton {row.newton:3d} cg {row.cg:5d} evals {row.evaluations:3d} "
            f"{row.seconds:8.4f} s  x{row.ratio:6.1f} one SVD [{row.ratio_lo:.1f}, {row.ratio_hi:.1f}]")
    return out, notes


def growth_exponent(rows: Sequence[Scaling], n_min: int = 64) -> float:
    """Least-squares slope of log(median seconds) against log(n) over the sizes n ≥ ``n_min``."""
    pts = [(r.shape[0], r.seconds) for r in rows if r.shape[0] >= n_min]
    if len(pts) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def run(sizes: Sequence[int], fast_sizes: Sequence[int], timeout: float, seed: int,
        log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for label, M, shape_of, fast in _cases():
        cvx_alive = True
        for size in sorted(set(sizes) | set(fast_sizes)):
            shape = shape_of(size)
            if min(shape) < 1:
                continue
            rng = np.random.default_rng([seed, size])
            W = M.random_point(rng, shape)
            G = rng.standard_normal(shape)
            results: list[Row] = []
            methods = list(fast) if size in fast_sizes or size in sizes else []
            if size not in sizes:
                methods = [m for m in methods if m not in ("dual_ascent", "dual_subgradient")]
            for method in methods:
                if method == "bisection" and size > 256:
                    continue
                out = _solve(M, W, G, method)
                if isinstance(out, str):
                    notes.append(f"{label} {shape} {method}: {out}")
                    log(f"  {label:16s} {str(shape):11s} {method:15s} FAILED {out}")
                    continue
                results.append(out)
            if cvx_alive and size in sizes:
                out = _solve(M, W, G, "cvxpy", time_limit=timeout)
                if isinstance(out, str):
                    notes.append(f"{label} {shape} cvxpy: {out} — cvxpy not run at larger sizes")
                    log(f"  {label:16s} {str(shape):11s} cvxpy           FAILED {out}")
                    cvx_alive = False
                else:
                    results.append(out)
                    if out.seconds > timeout:
                        cvx_alive = False
                        notes.append(f"{label}: cvxpy took {out.seconds:.1f} s at {shape} (> {timeout:.0f} s); "
                                     "not run at larger sizes")
            exact = [r for r in results if r.method not in BASELINES and r.tangency <= 1e-8]
            ref = max((r.value for r in exact), default=float("nan"))
            for r in results:
                r.manifold = label
                r.dev = abs(r.value - ref) / abs(ref) if ref == ref and ref != 0 else float("nan")
                r.raw_dev = abs(r.raw - ref) / abs(ref) if ref == ref and ref != 0 else float("nan")
                rows.append(r)
                log(f"  {label:16s} {str(shape):11s} {r.method:15s} {r.solver:18s} {r.seconds:9.4f} s  "
                    f"dev {r.dev:8.1e}  gap {r.gap:8.1e}  tang {r.tangency:8.1e}  {r.status}")
    return rows, notes


def _largest(rows: list[Row], label: str, method: str, limit: float) -> str:
    ok = [r for r in rows if r.manifold == label and r.method == method and r.seconds <= limit]
    return "—" if not ok else "×".join(map(str, max(ok, key=lambda r: r.shape[0] * r.shape[1]).shape))


def to_markdown(rows: list[Row], notes: list[str], argv: Sequence[str], seconds: float,
                scaling: Sequence[Scaling] = ()) -> str:
    lines = [
        "# Exact steepest-descent solvers: time and accuracy",
        "",
        "Generated by `manifold-oracle bench exact " + " ".join(argv) + "` (bench/exact.py); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, total {seconds:.0f} s; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"load average at the end {os.getloadavg()[0]:.1f} (the machine is shared: times are indicative).",
        "",
        "Spectral-norm problem max ⟨G, A⟩ s.t. ‖A‖₂ ≤ 1, A ∈ T_W M (MATH §6), one seeded random instance "
        "per size (W = the manifold's `random_point`, G Gaussian). `dev` = |value − ref|/ref with ref the "
        "best certified exact value of the instance; `raw dev` (cvxpy only) is the same for the solver's own "
        "Â before the float64 polish/recovery of MATH §6.9 item 6; `gap` = |dual − primal|/dual and `tangency` from "
        "`certify` (float64, independent of the solver). `dual_ascent` is the Manifold-Muon baseline "
        "with its published defaults (α = 0.01, J = 100, tol = 1e-6) and `dual_subgradient` the oblique "
        "dual (sub)gradient baseline (2000 steps); they are not exact solvers. Fast solvers run single "
        "threaded in numpy/LAPACK on a shared 2-core machine, so times are indicative.",
        "",
        "| manifold | shape | method | solver | seconds | dev | raw dev | gap | tangency | status | iters |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.manifold} | {r.shape[0]}×{r.shape[1]} | {r.method} | {r.solver} | {r.seconds:.4f} | "
                     f"{r.dev:.1e} | {'' if r.raw != r.raw else f'{r.raw_dev:.1e}'} | {r.gap:.1e} | {r.tangency:.1e} | "
                     f"{r.status} | {r.iterations} |")
    lines += ["", "## Largest size handled within 10 s and 60 s (of the sizes run)", "",
              "| manifold | method | ≤ 10 s | ≤ 60 s |", "|---|---|---|---|"]
    seen = []
    for r in rows:
        key = (r.manifold, r.method)
        if key not in seen:
            seen.append(key)
            lines.append(f"| {r.manifold} | {r.method} | {_largest(rows, *key, 10.0)} | {_largest(rows, *key, 60.0)} |")
    lines += ["", "## Largest disagreement with cvxpy (relative objective, same instance)", "",
              "Against the certified cvxpy value returned by `steepest_direction(method='cvxpy')` and "
              "against the solver's raw objective ⟨G, Â⟩.", "",
              "| method | max vs certified cvxpy | max vs raw solver Â | cases |", "|---|---:|---:|---:|"]
    by_inst: dict[tuple[str, tuple[int, int]], dict[str, float]] = {}
    for r in rows:
        by_inst.setdefault((r.manifold, r.shape), {})[r.method] = r.value
        if r.method == "cvxpy":
            by_inst[(r.manifold, r.shape)]["cvxpy_raw"] = r.raw
    worst: dict[str, list[tuple[float, float]]] = {}
    for vals in by_inst.values():
        if "cvxpy" not in vals:
            continue
        for m, v in vals.items():
            if m not in ("cvxpy", "cvxpy_raw"):
                worst.setdefault(m, []).append((abs(v - vals["cvxpy"]) / abs(vals["cvxpy"]),
                                                abs(v - vals["cvxpy_raw"]) / abs(vals["cvxpy_raw"])))
    for m, devs in worst.items():
        lines.append(f"| {m} | {max(d[0] for d in devs):.1e} | {max(d[1] for d in devs):.1e} | {len(devs)} |")
    if scaling:
        lyap = {r.shape: r.seconds for r in rows if r.manifold == "Stiefel" and r.method == "su_lyapunov"}
        lines += ["", "## Stiefel exact solver scaling (stiefel_newton, shape n×n/2)", "",
                  "Seconds of `steepest_direction(method='stiefel_newton')` (Newton–CG on the reduced dual, "
                  "then msign(G + WS) and the certificate figures) against one float64 `np.linalg.svd` of "
                  "the same G, measured interleaved (SVD, solve, SVD) in the same process: median over the "
                  "repeats and [min, max] of the per-repeat ratio. `evals` counts the SVD/eigh evaluations of "
                  "the reduced 2n×n matrix (line-search trials included). `su_lyapunov` (the baseline) is the "
                  "single timed run of the table above, divided by the median SVD time.", "",
                  "| n | shape | Newton its | CG its | evals | seconds | one SVD (s) | × one SVD | spread | gap | "
                  "tangency | su_lyapunov × one SVD |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in scaling:
            base = lyap.get(r.shape)
            lines.append(f"| {r.shape[0]} | {r.shape[0]}×{r.shape[1]} | {r.newton} | {r.cg} | {r.evaluations} | "
                         f"{r.seconds:.4f} | {r.svd_seconds:.2e} | {r.ratio:.1f} | [{r.ratio_lo:.1f}, {r.ratio_hi:.1f}] | "
                         f"{r.gap:.1e} | {r.tangency:.1e} | {'—' if base is None else f'{base / r.svd_seconds:.0f}'} |")
        lines += ["", f"Growth exponent of the median seconds over n ≥ 64: {growth_exponent(scaling):.2f} "
                      "(least squares on log–log)."]
    if notes:
        lines += ["", "## Notes and failures", ""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="manifold-oracle bench exact", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,16,32,64,128", help="sizes n for every method incl. cvxpy")
    ap.add_argument("--fast-sizes", default="256,512", help="extra sizes for the fast solvers only")
    ap.add_argument("--timeout-cvxpy", type=float, default=60.0, help="seconds per cvxpy solve")
    ap.add_argument("--out", default=None, help="Markdown output (default: docs/bench_exact.md of the source checkout)")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--repeats", type=int, default=5,
                    help="interleaved (SVD, solve, SVD) repeats per size of the Stiefel scaling table (0: skip it)")
    ap.add_argument("--quick", action="store_true", help="sizes 4,8,16 and fast sizes 64 (smoke run)")
    args = ap.parse_args(list(argv or []))
    args.out = str(args.out or checkout_docs_path("bench_exact.md"))  # NotAvailableError outside a checkout
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        fast = [int(s) for s in args.fast_sizes.split(",") if s]
    except ValueError:
        print("--sizes/--fast-sizes must be comma-separated integers", file=sys.stderr)
        return 2
    if args.quick:
        sizes, fast = [4, 8, 16], [64]
    if any(s < 2 for s in sizes + fast):
        print("sizes must be >= 2", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows, notes = run(sizes, fast, args.timeout_cvxpy, args.seed, lambda s: print(s, flush=True))
    scaling: list[Scaling] = []
    if args.repeats > 0:
        scaling, more = stiefel_scaling(sorted(set(sizes) | set(fast)), args.seed, args.repeats,
                                        lambda s: print(s, flush=True))
        notes += more
    md = to_markdown(rows, notes, list(argv or []), time.perf_counter() - t0, scaling)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(md)
    print(f"wrote {args.out}")
    bad = [r for r in rows if r.method not in BASELINES and (r.tangency > 1e-8 or r.gap > 1e-6)]
    bad += [r for r in scaling if r.tangency > 1e-8 or r.gap > 1e-6]
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
