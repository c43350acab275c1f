"""``manifold-oracle info``: versions of every dependency, precision settings and devices."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from typing import Any, Sequence

DEPENDENCIES = ("numpy", "scipy", "mpmath", "torch", "cvxpy", "clarabel", "scs", "hypothesis",
                "matplotlib", "tqdm", "pytest", "pytest-xdist", "geoopt", "pymanopt",
                "muon-optimizer", "pytorch_optimizer", "heavyball", "optax", "jax")


def collect() -> dict[str, Any]:
    """Environment record used by ``info`` and by every report (JSON-serialisable)."""
    import mpmath
    import numpy as np

    versions: dict[str, str | None] = {}
    for dist in DEPENDENCIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    f64 = np.finfo(np.float64)
    record: dict[str, Any] = {
        "manifold_oracle": versions.get("manifold-oracle") or _own_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "versions": versions,
        "float64": {"eps": float(f64.eps), "unit_roundoff": float(f64.eps) / 2, "tiny": float(f64.tiny)},
        "mpmath": {"backend": mpmath.libmp.BACKEND, "default_dps": 50},
        "blas": _blas(),
        "torch": _torch(),
    }
    return record


def _own_version() -> str:
    try:
        return metadata.version("manifold-oracle")
    except metadata.PackageNotFoundError:
        from manifold_oracle.reference import __version__

        return __version__


def _blas() -> dict[str, Any]:
    try:
        from threadpoolctl import threadpool_info

        return {"threadpools": [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                                for d in threadpool_info()]}
    except Exception:
        return {"threadpools": "threadpoolctl not installed"}


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # torch is a dependency, but report rather than crash
        return {"available": False, "error": str(exc)}
    info: dict[str, Any] = {
        "available": True,
        "version": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "devices": ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())],
        "num_threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "allow_tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "default_dtype": str(torch.get_default_dtype()),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    try:  # the hardware choice behind ns_dtype="auto" (gpu_impl.msign.native_ns_dtype)
        from manifold_oracle.gpu_impl.msign import native_ns_dtype

        info["ns_dtype_auto"] = {d: dict(zip(("dtype", "reason"), (str(native_ns_dtype(d)[0]), native_ns_dtype(d)[1])))
                                 for d in ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}
    except Exception as exc:  # report rather than crash (info must always print)
        info["ns_dtype_auto"] = {"error": str(exc)}
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manifold-oracle info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    ns = parser.parse_args(list(argv or []))
    rec = collect()
    if ns.json:
        print(json.dumps(rec, indent=2))
        return 0
    print(f"manifold-oracle {rec['manifold_oracle']}  (Python {rec['python']}, {rec['platform']})")
    print("dependencies:")
    for k, v in rec["versions"].items():
        print(f"  {k:16s} {v or 'not installed'}")
    f = rec["float64"]
    print(f"float64: eps={f['eps']:.3e} u={f['unit_roundoff']:.3e}; mpmath backend={rec['mpmath']['backend']}, "
          f"default dps={rec['mpmath']['default_dps']}")
    t = rec["torch"]
    if t.get("available"):
        print(f"torch {t['version']}: devices {', '.join(t['devices'])}; threads {t['num_threads']}; "
              f"fp32 matmul precision {t['float32_matmul_precision']}; TF32 matmul {t['allow_tf32_matmul']}")
        for dev, choice in t.get("ns_dtype_auto", {}).items():
            if isinstance(choice, dict):
                print(f"Newton–Schulz dtype 'auto' on {dev}: {choice['dtype']} ({choice['reason']})")
    else:
        print(f"torch: not available ({t.get('error')})")
    return 0
