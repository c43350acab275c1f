"""``manifold-oracle bench gpu``: speed ratios of gpu_impl, each measured against its baseline in the same run.

Three benchmarks (issue 5, item 7), written as Markdown tables to ``docs/bench_gpu.md``:

1. **msign vs its matmul-only lower bound.** ``gpu_impl.msign.newton_schulz`` (KJ schedule,
   5 steps, batched over stacked equal-shape matrices) against the three GEMMs per step of the
   same iteration (``A = XXᵀ``, ``A·A``, ``P·X``) alone, on preallocated buffers in the compute
   dtype — no normalisation, casts, transposes or additions. Target: ratio ≤ 1.15.
2. **One optimizer step.** ``gpu_impl.optim.MACRO`` (Frobenius and spectral sphere, default
   options: variant A, power-iteration Θ, the same KJ/bf16 msign as torch) against
   ``torch.optim.Muon`` on the identical parameter set — the hidden matrices of the small model,
   float32, with fixed gradients; the fused (default), ``fused="compile"`` and eager
   (``fused=False``) steps. Targets (issue 16): ≤ 1.05× (Frobenius), ≤ 1.15× (spectral).
   ``--step-presets`` also accepts ``12x512²+4x512x2048`` (issue 16's parameter list).
   Before it, the **accuracy per time** table (:func:`bench_accuracy`): schedule × NS compute
   dtype, relative error to the float64 polar factor against time relative to KJ-bf16, and the
   measured reason for the ``ns_dtype="auto"`` choice (:func:`dtype_verdict`).
3. **Training throughput** (tokens/s, forward + backward + step, no diagnostics) of the "tiny"
   model for MACRO-Frobenius/-spectral, Muon (+AdamW for the rest) and AdamW. Target: MACRO within
   5 % of Muon.

Timing: ``time.perf_counter`` (with ``torch.cuda.synchronize`` on CUDA), warm-up first, then the
contenders are measured in interleaved rounds (A, B, A, B, …) so that machine drift hits both.
Each ratio is the median over rounds of the paired ratio (contender's block time ÷ the
baseline's block time of the same round, so drift between rounds cancels), with the spread
[min–max] of the paired ratios and the ratio of the best block times alongside; absolute times
are medians.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from manifold_oracle.bench import checkout_docs_path
from manifold_oracle.bench.certified_pair import bench_pair_accuracy, render_pair_accuracy

__all__ = ["main", "machine_info", "bench_msign", "bench_accuracy", "bench_optimizer_step", "bench_throughput"]


# --------------------------------------------------------------------------------------------
# timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: clocks of the timed blocks: ``"wall"`` (``time.perf_counter``, the default) or ``"thread"``
#: (``time.thread_time``: CPU seconds of the calling thread — with one torch thread on CPU the
#: kernels run in it, so time spent descheduled on an oversubscribed machine is not counted;
#: CPU only, since CUDA kernels do not run in the thread)
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


def _time_once(fn: Callable[[], object], device: torch.device, inner: int,
               clock: Callable[[], float] = time.perf_counter) -> float:
    _sync(device)
    t = clock()
    for _ in range(inner):
        fn()
    _sync(device)
    return (clock() - t) / inner


def _calibrate(fn: Callable[[], object], device: torch.device, target_s: float) -> int:
    """Inner repetitions so that one timed block takes about ``target_s`` seconds."""
    t0 = time.perf_counter()
    n = 0
    while n < 10 or time.perf_counter() - t0 < 0.25:  # warm-up: oneDNN/cuBLAS kernel selection
        fn()
        n += 1
    t = _time_once(fn, device, 3)
    return max(1, int(target_s / max(t, 1e-6)))


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, *, rounds: int,
                target_s: float, clock: str = "wall") -> dict[str, list[float]]:
    """Per-call seconds of each function, measured in ``rounds`` interleaved blocks on ``clock``
    (a name of :data:`CLOCKS`; ``"thread"`` only on CPU)."""
    if clock not in CLOCKS or (clock == "thread" and device.type != "cpu"):
        from manifold_oracle.reference.errors import InvalidInputError
        raise InvalidInputError(f"clock must be one of {sorted(CLOCKS)} ('thread' on CPU only), got {clock!r}")
    inner = {k: _calibrate(f, device, target_s) for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            times[k].append(_time_once(f, device, inner[k], CLOCKS[clock]))
    return times


def _med(x: list[float]) -> float:
    return statistics.median(x)


def _ratio_cell(num: list[float], den: list[float]) -> tuple[float, str]:
    """Median of the per-round paired ratios num[i]/den[i] (interleaved rounds), its spread
    [min–max] and the ratio of the best (minimum) block times, as a table cell."""
    paired = [a / b for a, b in zip(num, den)]
    r = _med(paired)
    return r, f"{r:.3f} [{min(paired):.3f}–{max(paired):.3f}] (best {min(num) / min(den):.3f})"


# --------------------------------------------------------------------------------------------
# machine


def machine_info(device: torch.device) -> dict[str, str]:
    """CPU model, cores, torch/Python versions, threads, BLAS backends; GPU name if used."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        fl = next((ln for ln in out.splitlines() if ln.startswith("Flags")), "")
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in fl.split())
    except (OSError, subprocess.SubprocessError):
        pass
    info = {
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu,
        "logical CPUs": str(os.cpu_count()),
        "SIMD flags": flags or "unknown",
        "torch threads": str(torch.get_num_threads()),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "oneDNN (mkldnn)": str(torch.backends.mkldnn.is_available()),
        "device": str(device),
    }
    if device.type == "cuda":
        info["GPU"] = torch.cuda.get_device_name(device)
    return info


# --------------------------------------------------------------------------------------------
# 1. msign vs the matmul-only bound


def _matmul_bound(X: torch.Tensor, steps: int) -> Callable[[], None]:
    """The GEMMs of ``steps`` NS steps on a wide (B, m, n) X, into preallocated buffers."""
    B, m, n = X.shape
    A = torch.empty(B, m, m, dtype=X.dtype, device=X.device)
    P = torch.empty_like(A)
    Y = torch.empty_like(X)

    def run() -> None:
        for _ in range(steps):
            torch.bmm(X, X.mT, out=A)
            torch.bmm(A, A, out=P)
            torch.bmm(P, X, out=Y)
    return run


def bench_msign(device: torch.device, *, rounds: int, target_s: float,
                quick: bool) -> list[dict[str, object]]:
    from manifold_oracle.gpu_impl.msign import newton_schulz

    cases = [(14, 128, 128), (8, 128, 384), (4, 256, 768), (1, 1024, 1024)]
    if quick:
        cases = cases[:2]
    rows = []
    g = torch.Generator().manual_seed(0)
    for dt in ("bfloat16", "float32"):
        cdt = getattr(torch, dt)
        for B, m, n in cases:
            X = torch.randn(B, m, n, generator=g).to(device)  # fp32 input, like a gradient
            Xc = X.to(cdt) / X.to(cdt).norm(dim=(-2, -1), keepdim=True)
            times = interleaved({
                "msign": lambda: newton_schulz(X, "keller_jordan", compute_dtype=cdt, check_finite=False),
                "bound": _matmul_bound(Xc, 5),
            }, device, rounds=rounds, target_s=target_s)
            r, cell = _ratio_cell(times["msign"], times["bound"])
            rows.append({"dtype": dt, "shape": f"{B}×{m}×{n}", "msign_ms": 1e3 * _med(times["msign"]),
                         "bound_ms": 1e3 * _med(times["bound"]), "ratio": r, "cell": cell})
    return rows


#: schedules of the accuracy-per-time table (each with its own default step count)
ACCURACY_SCHEDULES = ("keller_jordan", "polar_express", "polar_express_stable", "classical")


def bench_accuracy(device: torch.device, *, rounds: int, target_s: float,
                   quick: bool) -> list[dict[str, object]]:
    """Accuracy per time of msign: schedule × compute dtype on a few sizes.

    Input: a float32 Gaussian matrix scaled like a gradient (entries N(0, 1/n)), fp32 in and out.
    Error: ‖NS(X) − polar(X)‖_F / ‖polar(X)‖_F with polar(X) = U Vᵀ from the float64 SVD
    (``reference.linalg.polar_factor``, refined). Time: interleaved against the baseline in the
    same run, ``keller_jordan`` in bf16 (torch.optim.Muon's numerics); ratio < 1 is faster."""
    from manifold_oracle.gpu_impl.msign import MsignPolicy
    from manifold_oracle.reference.linalg import polar_factor

    sizes = [(256, 256), (512, 512), (512, 2048)] if not quick else [(128, 128)]
    rows = []
    g = torch.Generator().manual_seed(3)
    for m, n in sizes:
        X = (torch.randn(m, n, generator=g) / n**0.5).to(device)
        ref = torch.from_numpy(polar_factor(X.double().cpu().numpy()))
        pols = {(sch, dt): MsignPolicy(schedule=sch, compute_dtype=dt)
                for sch in ACCURACY_SCHEDULES for dt in ("bfloat16", "float32")}
        fns = {k: (lambda pol=pol: pol(X, check_finite=False)) for k, pol in pols.items()}
        times = interleaved(fns, device, rounds=rounds, target_s=target_s)  # type: ignore[arg-type]
        base = times[("keller_jordan", "bfloat16")]
        for (sch, dt), pol in pols.items():
            out = pol(X, check_finite=False).double().cpu()
            err = float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref))
            r, cell = _ratio_cell(times[(sch, dt)], base)
            rows.append({"shape": f"{m}×{n}", "schedule": sch, "dtype": dt,
                         "steps": pol.resolved_schedule.steps if pol.resolved_schedule else 0,  # type: ignore[union-attr]
                         "ms": 1e3 * _med(times[(sch, dt)]), "ratio": r, "cell": cell, "rel_err": err})
    return rows


def dtype_verdict(acc: list[dict[str, object]], device: torch.device) -> list[str]:
    """Sentences for the docs: the measured bf16/fp32 time ratio per schedule at the largest size,
    and whether the ``ns_dtype="auto"`` choice of this device is the faster one."""
    from manifold_oracle.gpu_impl.msign import native_ns_dtype

    largest = acc[-1]["shape"]
    by = {(r["schedule"], r["dtype"]): r for r in acc if r["shape"] == largest}
    lines = []
    faster = []
    for sch in ACCURACY_SCHEDULES:
        b, f = by[(sch, "bfloat16")], by[(sch, "float32")]
        q = float(b["ms"]) / float(f["ms"])  # type: ignore[arg-type]
        faster.append("bfloat16" if q < 1 else "float32")
        lines.append(f"* `{sch}` at {largest}: bf16 {float(b['ms']):.2f} ms vs fp32 {float(f['ms']):.2f} ms "
                     f"(bf16/fp32 = {q:.2f}); error to the polar factor {float(b['rel_err']):.3g} (bf16) vs "
                     f"{float(f['rel_err']):.3g} (fp32).")
    dt, reason = native_ns_dtype(device.type)
    name = str(dt).replace("torch.", "")
    agree = all(x == name for x in faster)
    lines.append(f"* `ns_dtype=\"auto\"` on this device resolves to **{name}** ({reason}); the measured "
                 f"faster dtype is {'the same for every schedule' if agree else ', '.join(faster) + ' (per schedule above)'}"
                 + ("." if agree else ": the hardware rule and this measurement disagree here."))
    return lines


# --------------------------------------------------------------------------------------------
# 2. one optimizer step


#: the parameter list of issue 16 (not a model preset): 12×512² + 4×512×2048, float32
ISSUE16_SET = "12x512²+4x512x2048"
#: the step table's row of the certified pair's float64 floor (:func:`_certificate_floor`)
FLOOR = "certificate float64 floor (one call)"


def _hidden_params(preset: str, device: torch.device, seed: int) -> tuple[list[torch.nn.Parameter], list[torch.Tensor]]:
    from manifold_oracle.gpu_impl.model import Decoder, make_config

    g = torch.Generator().manual_seed(seed + 1)
    if preset == ISSUE16_SET:
        shapes = [(512, 512)] * 12 + [(512, 2048)] * 4
        ps = [torch.nn.Parameter((torch.randn(s, generator=g) / s[1] ** 0.5).to(device)) for s in shapes]
    else:
        model = Decoder(make_config(preset), generator=torch.Generator().manual_seed(seed)).to(device)
        ps = [p for _, p in model.hidden_matrices()]
    grads = [(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5).to(device) for p in ps]
    return ps, grads


def _clone_with_grads(ps: list[torch.nn.Parameter], grads: list[torch.Tensor]) -> list[torch.nn.Parameter]:
    out = []
    for p, gr in zip(ps, grads):
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = gr.clone()
        out.append(q)
    return out


def _certificate_floor(ps: Sequence[torch.Tensor], block: int = 8) -> Callable[[], None]:
    """The float64 work no certified pair call on ``ps`` can skip: ``pair_certificate``'s
    products (``gpu_impl.manifolds.ritz_products``: W to float64, W·Xᵀ and (W·Xᵀ)ᵀ·W with a
    ``block``-row basis X, ‖W‖_F) on the matrices stacked per shape up to transposition as the
    optimizer stacks them (stacked outside the timed call); no Ritz problem, bounds or
    iteration. A lower bound on one certified call, as the GEMMs are on Newton–Schulz."""
    from manifold_oracle.gpu_impl.manifolds import ritz_products

    groups: dict[tuple[int, int], list[torch.Tensor]] = {}
    for p in ps:
        W = p.detach().mT if p.shape[-2] < p.shape[-1] else p.detach()
        groups.setdefault(tuple(W.shape), []).append(W)
    g = torch.Generator().manual_seed(0)
    stacks = [torch.stack(Ws) for Ws in groups.values()]
    bases = [torch.linalg.qr(torch.randn(W.shape[0], W.shape[-1], block, generator=g, dtype=torch.float64)).Q.mT
             .to(W.device) for W in stacks]

    def run() -> None:
        for W, X in zip(stacks, bases):
            ritz_products(W, X)
    return run


def bench_optimizer_step(device: torch.device, *, rounds: int, target_s: float, presets: Sequence[str],
                         fused_modes: Sequence[bool | str] = (True, "compile", False),
                         thetas: Sequence[str] = ("exact", "power"),
                         clock: str = "wall") -> list[dict[str, object]]:
    from manifold_oracle.gpu_impl.optim import MACRO

    rows = []
    for preset in presets:
        ps, grads = _hidden_params(preset, device, 0)
        opts: dict[str, torch.optim.Optimizer] = {
            "muon": torch.optim.Muon(_clone_with_grads(ps, grads), lr=0.02, weight_decay=0.0,
                                     adjust_lr_fn="original"),
        }
        # fused=True (default: in-place eager ops), fused="compile" (torch.compile'd passes) and
        # fused=False (the readable stacked reference step)
        for man in ("frobenius", "spectral"):
            for fused in fused_modes:
                key = man if fused is True else f"{man} (fused={fused})"
                opts[key] = MACRO([{"params": _clone_with_grads(ps, grads), "manifold": man}], lr=0.02,
                                  gap_policy="report", fused=fused, ns_dtype="bfloat16")  # Muon's NS dtype
        # the exact-SVD and the uncertified power-iteration Θ (the default is the certified pair)
        for theta in thetas:
            opts[f"spectral (theta={theta})"] = MACRO([{"params": _clone_with_grads(ps, grads), "manifold": "spectral"}],
                                                      lr=0.02, theta=theta, gap_policy="report", ns_dtype="bfloat16")
        fns: dict[str, Callable[[], object]] = {k: o.step for k, o in opts.items()}
        fns[FLOOR] = _certificate_floor(ps)
        with torch.no_grad():
            times = interleaved(fns, device, rounds=rounds, target_s=target_s, clock=clock)
        for man in (k for k in fns if k != "muon"):
            r, cell = _ratio_cell(times[man], times["muon"])
            rows.append({"preset": preset, "manifold": man, "n_matrices": len(ps),
                         "n_params": sum(p.numel() for p in ps),
                         "macro_ms": 1e3 * _med(times[man]), "muon_ms": 1e3 * _med(times["muon"]),
                         "ratio": r, "cell": cell})
    return rows


# --------------------------------------------------------------------------------------------
# 3. training throughput


def bench_throughput(device: torch.device, *, rounds: int, target_s: float, preset: str,
                     batch: int, seq_len: int, warmup_steps: int = 0) -> list[dict[str, object]]:
    """Training steps per optimizer, timed in interleaved rounds after ``warmup_steps`` untimed
    steps each (MACRO on the spectral sphere flattens the top of the spectrum within ~100 steps,
    which is what the certified Θ then costs: the steady state, not the first steps)."""
    from manifold_oracle.gpu_impl.data import load_corpus, sample_batch
    from manifold_oracle.gpu_impl.train import TrainConfig, lm_loss, build_model, build_optimizer

    corpus = load_corpus(max_bytes=1 << 20)
    # macro-spectral with the train default Θ (theta="certified"), plus the exact and power Θ as extra rows
    names = ("macro-frobenius", "macro-spectral", "macro-spectral (theta=exact)", "macro-spectral (theta=power)",
             "muon", "adamw")
    steps: dict[str, Callable[[], None]] = {}
    for name in names:
        theta = name.split("theta=")[1].rstrip(")") if "theta=" in name else TrainConfig.theta
        cfg = TrainConfig(optimizer=name.split(" ")[0], preset=preset, batch=batch, seq_len=seq_len, out=None,
                          progress=False, theta=theta)
        model = build_model(cfg, device, torch.float32)
        bundle = build_optimizer(cfg, model)
        gen = torch.Generator().manual_seed(1)

        def step(model: torch.nn.Module = model, bundle: object = bundle, gen: torch.Generator = gen) -> None:
            x, y = sample_batch(corpus.train, batch, seq_len, gen)
            x, y = x.to(device), y.to(device)
            bundle.zero_grad()  # type: ignore[attr-defined]
            lm_loss(model(x), y).backward()
            bundle.step()  # type: ignore[attr-defined]
        steps[name] = step
    for name, step in steps.items():
        for _ in range(warmup_steps):
            step()
    times = interleaved(steps, device, rounds=rounds, target_s=target_s)
    tok = batch * seq_len
    rows = []
    for name in names:
        r, cell = _ratio_cell(times[name], times["muon"])
        rows.append({"optimizer": name, "ms_per_step": 1e3 * _med(times[name]),
                     "tokens_per_s": tok / _med(times[name]), "ratio": r, "cell": cell})
    return rows


# --------------------------------------------------------------------------------------------
# report


def floor_estimates(st: Sequence[dict]) -> list[str]:
    """One line per preset and fused mode (``True``, ``"compile"``) of the step table: the Frobenius
    ratio + 2 × the certificate floor's ratio, against the spectral row measured (section 2's
    closing text)."""
    by = {(r["preset"], r["manifold"]): r["ratio"] for r in st}
    out = []
    for preset in dict.fromkeys(r["preset"] for r in st):
        floor = by.get((preset, FLOOR))
        for mode in ("", " (fused=compile)"):
            fro, spec = by.get((preset, "frobenius" + mode)), by.get((preset, "spectral" + mode))
            if fro is None or floor is None:
                continue
            est = fro + 2.0 * floor
            out.append(f"* {preset}{mode}: {fro:.3f} + 2 × {floor:.3f} = {est:.3f}"
                       + (f" (measured {spec:.3f})" if spec is not None else "")
                       + ("; above the 1.15 target before any iteration" if est > 1.15 else ""))
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _verdict(ratio: float, target: float) -> str:
    return "meets" if ratio <= target else "misses"


def render(info: dict[str, str], ms: list[dict], st: list[dict], tp: list[dict], args: argparse.Namespace,
           acc: list[dict] | None = None, device: torch.device | None = None,
           pair: list[dict] | None = None) -> str:
    acc = acc or []
    pair = pair or []
    lines = [
        "# gpu_impl benchmarks",
        "",
        "Generated by `manifold-oracle bench gpu" + (" " + " ".join(args.argv) if args.argv else "")
        + "` (bench/gpu.py); do not edit by hand.",
        "",
        "Every ratio is measured against its baseline in the same run, over interleaved rounds: the",
        "median of the per-round paired ratios, its spread [min–max] over the rounds and, in",
        "parentheses, the ratio of the best block times. Absolute times are medians.",
        "A ratio below 1 means faster than the baseline.",
        "",
        "## Machine",
        "",
        _table(("", ""), list(info.items())),
        "",
        "## 1. Batched msign vs the matmul-only lower bound",
        "",
        "`newton_schulz(X, \"keller_jordan\", compute_dtype=…)` (5 quintic steps, fp32 input cast to the",
        "compute dtype, Frobenius normalisation, batched over the leading dim) against the three GEMMs",
        "per step alone (`bmm(X, Xᵀ)`, `bmm(A, A)`, `bmm(P, X)`, preallocated outputs). Target ≤ 1.15.",
        "",
        _table(("compute dtype", "batch×m×n", "msign (ms)", "GEMMs only (ms)", "ratio", "target 1.15"),
               [(r["dtype"], r["shape"], f"{r['msign_ms']:.3f}", f"{r['bound_ms']:.3f}", r["cell"],
                 _verdict(r["ratio"], 1.15)) for r in ms]),
        "",
        "## 1b. Accuracy per time: schedule × Newton–Schulz compute dtype",
        "",
        "One fp32 Gaussian matrix (entries N(0, 1/n)) per size, fp32 in and out; error = ‖NS(X) −",
        "polar(X)‖_F/‖polar(X)‖_F against the float64 SVD polar factor (refined); time ratio against",
        "`keller_jordan` in bf16 (torch.optim.Muon's numerics) in the same interleaved run.",
        "",
        _table(("size", "schedule", "steps", "dtype", "ms", "time ratio vs KJ-bf16", "rel. error to polar"),
               [(r["shape"], r["schedule"], r["steps"], r["dtype"], f"{r['ms']:.3f}", r["cell"],
                 f"{r['rel_err']:.3g}") for r in acc]),
        "",
        "Default Newton–Schulz dtype: `ns_dtype=\"auto\"`, the default of every gpu_impl optimizer and",
        "of `train --msign-dtype`, is bf16 on CUDA and on CPUs with AMX and fp32 on other CPUs, where",
        "bf16 matmuls are emulated (measured there: bf16 took 1.9× the fp32 time at 1024², issue 16).",
        "It is chosen once per process and shown by `manifold-oracle info`; `MANIFOLD_ORACLE_NS_DTYPE`",
        "or an explicit `ns_dtype` overrides it, and the optimizers store the concrete dtype in their",
        "parameter groups (state dict, diagnostics). Measured in this run:",
        "",
        *(dtype_verdict(acc, device) if acc and device is not None else []),
        "",
        "## 2. One optimizer step: MACRO vs torch.optim.Muon",
        "",
        "The hidden matrices of the model preset (q, k, v, o, gate, up, down per block), float32,",
        "fixed gradients, `step()` only. MACRO with its defaults (variant A, ambient EMA momentum,",
        "KJ 5-step msign, certified Θ on the spectral sphere) except the NS dtype, pinned to bf16",
        "as in torch.optim.Muon (`ns_dtype=\"auto\"` would be fp32 on a CPU without AMX).",
        "Rows: the fused step (default `fused=True`, in-place ops, NS in a reused per-bucket workspace),",
        "`fused=compile`",
        "(torch.compile'd passes) and `fused=False` (the readable stacked reference step).",
        "Targets (issue 16): ≤ 1.05 (Frobenius), ≤ 1.15 (spectral), at equal NS dtype (bf16 KJ).",
        f"Clock: {getattr(args, 'step_clock', 'wall')} (`--step-clock`; `thread` = CPU time of the calling thread).",
        "",
        _table(("preset", "manifold", "matrices", "parameters", "MACRO (ms)", "Muon (ms)", "ratio", "verdict"),
               [(r["preset"], r["manifold"], r["n_matrices"], r["n_params"], f"{r['macro_ms']:.3f}",
                 f"{r['muon_ms']:.3f}", r["cell"],
                 "n/a (not the default)" if "theta=" in r["manifold"] else
                 "lower bound (see below)" if r["manifold"] == FLOOR else
                 _verdict(r["ratio"], 1.05 if r["manifold"].startswith("frobenius") else 1.15)) for r in st]),
        "",
        "`spectral` is MACRO's default Θ (`theta=\"certified\"`: the certified pair of section 4);",
        "`spectral (theta=exact)` takes Θ and σ₁ from the SVD; `spectral (theta=power)` is the",
        "uncertified warm-started power iteration (3 steps per call). The gradients are fixed: the",
        "same step repeated flattens the top of the spectrum over the timed steps, so the certified Θ",
        "needs its adaptive filter degree at its cap (64) plus a Krylov cycle on the 512-wide matrices;",
        "section 3 times a training run.",
        "",
        f"`{FLOOR}` is not a step: it times the float64 work that no certified pair call can skip",
        "(`pair_certificate`'s products: every matrix to float64, its two skinny products with an",
        "8-row basis and ‖W‖_F, on the stacks the optimizer forms). The default spectral step takes two such calls (Θ at W, σ₁ and the",
        "next basis at the retraction input Y), so twice this row's ratio is a lower bound on what the",
        "certified pair adds to Newton–Schulz and momentum, whatever the iteration; the ≤ 1.15 target",
        "leaves 0.15. With the Frobenius row of the same mode standing in for the rest of the step (the",
        "same passes, another projection), the estimate of the cheapest certified spectral step is:",
        "",
        *floor_estimates(st),
        "",
        "## 3. Training throughput",
        "",
        f"Model preset `{args.preset}`, batch {args.batch} × {args.seq_len} tokens, float32, one step = "
        "forward + backward + optimizer step (no diagnostics, no validation), timed after "
        f"{getattr(args, 'warmup_steps', 0)} untimed steps per optimizer (the steady state of section 4).",
        "Muon = torch.optim.Muon on the hidden matrices + AdamW on the rest; MACRO = gpu_impl.optim.MACRO",
        "(internal AdamW for the rest). Target: MACRO within 5 % of Muon (time ratio ≤ 1.05). The MACRO",
        "rows run `train`'s defaults, so their NS dtype is `--msign-dtype auto` (section 1's choice);",
        "torch.optim.Muon always computes in bf16.",
        "`macro-spectral` uses the `train` default Θ (`theta=\"certified\"`: a warm-started",
        "Chebyshev-filtered cycle of adaptive degree, then block Krylov cycles, float64 cycles and the",
        "SVD only where the a-posteriori bounds are not met yet); the",
        "`theta=exact` (SVD every step) and `theta=power` (fixed steps, no certificate) rows are for comparison.",
        "",
        _table(("optimizer", "ms/step", "tokens/s", "time ratio vs Muon", "target 1.05"),
               [(r["optimizer"], f"{r['ms_per_step']:.2f}", f"{r['tokens_per_s']:.0f}", r["cell"],
                 ("n/a (not the default Θ)" if "theta=" in r["optimizer"] else _verdict(r["ratio"], 1.05))
                 if r["optimizer"].startswith("macro") else "")
                for r in tp]),
        "",
    ]
    if pair:
        lines += [
            "## 4. Θ along a training run",
            "",
            f"`train`'s macro-spectral (preset `{args.preset}`, batch {args.batch} × {args.seq_len}, float32) for "
            f"{args.pair_steps} steps per Θ source, MACRO's `diagnostics=\"full\"` (bench/certified_pair.py). "
            "Over every hidden matrix and step of each window: the angle of the pair used to the exact one "
            "(max(sin∠(û, u₁), sin∠(v̂, v₁)), float64 SVD), the certified bound and the largest angle ÷ bound "
            "(≤ 1: the bound held; it rests on the capture hypothesis H_k of `gpu_impl.manifolds.pair_certificate`), "
            "the share of SVD fallbacks, the normal component of the direction |u₁ᵀDv₁|/‖D‖_F with the exact "
            "pair, the feasibility c_S(W') (float64 σ₁) and the exact relative gap (σ₁ − σ₂)/σ₁.",
            "",
            *render_pair_accuracy(pair),
            "",
            "MACRO on the spectral sphere flattens the top of the spectrum: the relative gap falls from "
            "≈ 2·10⁻² to ≈ 10⁻³ within 100 steps and the top vector turns by O(1) between steps. The "
            "certificate is taken on a block of 8 Ritz vectors, so such a cluster is certified through "
            "the gap to the k-th Ritz value instead of σ₁ − σ₂ (see the SVD-fallback column; the block "
            "comes from the warm-started Chebyshev filter of MATH.md §4.4); the "
            "fixed-step power iteration (`--theta power`) is then off by up to the angles in its rows.",
            "",
        ]
    lines += [
        "## Notes",
        "",
        "* The machine is shared: the 1-minute load average at the start of the run is in the machine",
        "  table. With more runnable processes than cores, OpenMP's spinning threads can slow small",
        "  kernels by orders of magnitude. The interleaved rounds expose both contenders to the same",
        "  load, but the absolute times are only indicative.",
        "* `manifold-oracle train` defaults to the certified Θ (angle bound ≤ √ε, σ₁ to ε, the exact",
        "  SVD only where the bound cannot be met); `--theta power` is the fast, uncertified mode",
        "  (MATH.md §4.0), whose error section 4 measures.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write the Markdown report; 0 on success, 2 if it cannot run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="manifold-oracle bench gpu", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="Markdown output (default: docs/bench_gpu.md of the source checkout)")
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--target-ms", type=float, default=60.0, help="length of one timed block")
    p.add_argument("--preset", default="tiny", help="model preset for the throughput benchmark")
    p.add_argument("--step-presets", default="tiny,small", help="presets for the optimizer-step benchmark")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 is steadier on a loaded machine")
    p.add_argument("--quick", action="store_true", help="fewer shapes and rounds (smoke run)")
    p.add_argument("--warmup-steps", type=int, default=None,
                   help="untimed training steps per optimizer before the throughput rounds (default 200, 10 with --quick)")
    p.add_argument("--pair-steps", type=int, default=None,
                   help="training steps of the Θ-accuracy section (default 300, 30 with --quick; 0 skips it)")
    p.add_argument("--step-clock", choices=sorted(CLOCKS), default="wall",
                   help="clock of the optimizer-step benchmark: wall, or thread (CPU time of the calling "
                        "thread, CPU with --threads 1 only: robust to an oversubscribed machine)")
    args = p.parse_args(argv)
    args.argv = argv
    if args.warmup_steps is None:
        args.warmup_steps = 10 if args.quick else 200
    if args.pair_steps is None:
        args.pair_steps = 30 if args.quick else 300
    if args.warmup_steps < 0 or args.pair_steps < 0:
        print("manifold-oracle bench gpu: --warmup-steps and --pair-steps must be >= 0", file=sys.stderr)
        return 2
    args.out = str(args.out or checkout_docs_path("bench_gpu.md"))  # NotAvailableError outside a checkout
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print("manifold-oracle bench gpu: CUDA requested but not available", file=sys.stderr)
            return 2
    if args.threads is not None:
        if args.threads < 1:
            print("manifold-oracle bench gpu: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.step_clock == "thread" and (args.threads != 1 or device.type != "cpu"):
        print("manifold-oracle bench gpu: --step-clock thread needs --threads 1 on CPU", file=sys.stderr)
        return 2
    rounds = 3 if args.quick else args.rounds
    target = args.target_ms / 1e3
    info = machine_info(device)
    print("machine:", info["CPU"], "|", info["device"], "| torch", info["torch"], file=sys.stderr)
    ms = bench_msign(device, rounds=rounds, target_s=target, quick=args.quick)
    for r in ms:
        print(f"msign {r['dtype']:9s} {r['shape']:14s} ratio {r['cell']}", file=sys.stderr)
    acc = bench_accuracy(device, rounds=rounds, target_s=target, quick=args.quick)
    for r in acc:
        print(f"acc   {r['shape']:9s} {r['schedule']:20s} {r['dtype']:9s} err {r['rel_err']:.3g}  "
              f"time/KJ-bf16 {r['cell']}", file=sys.stderr)
    st = bench_optimizer_step(device, rounds=rounds, target_s=target,
                              presets=[s for s in args.step_presets.split(",") if s], clock=args.step_clock)
    for r in st:
        print(f"step  {r['preset']:6s} {r['manifold']:10s} MACRO/Muon {r['cell']}", file=sys.stderr)
    tp = bench_throughput(device, rounds=rounds, target_s=max(target, 0.1), preset=args.preset,
                          batch=args.batch, seq_len=args.seq_len, warmup_steps=args.warmup_steps)
    for r in tp:
        print(f"train {r['optimizer']:16s} {r['tokens_per_s']:8.0f} tokens/s  time/Muon {r['cell']}",
              file=sys.stderr)
    pair: list[dict] = []
    if args.pair_steps > 0:
        windows = [w for w in (50, 100, 200, 300, 500, 1000) if w < args.pair_steps] + [args.pair_steps]
        pair = bench_pair_accuracy(device, preset=args.preset, batch=args.batch, seq_len=args.seq_len,
                                   steps=args.pair_steps, windows=windows)
        for r in pair:
            print(f"pair  {r['theta']:9s} steps {r['steps']:9s} max angle {r['angle_max']:.2e}", file=sys.stderr)
    text = render(info, ms, st, tp, args, acc, device, pair)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
