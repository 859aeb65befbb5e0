"""Shared helpers for benchmarks: timing, GEMM peak, result files tagged with the commit."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timeit(fn: Callable[[], object], *, warmup: int = 20, repeats: int = 5, number: int = 100) -> float:
    """Median over ``repeats`` of the mean seconds per call over ``number`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    times.sort()
    return times[len(times) // 2]


def gemm_peak_flops(n: int = 2048, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Measured FLOP/s of a large square ``torch.mm`` in ``dtype`` (the machine's practical GEMM peak)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    number = 10 if device == "cpu" else 100

    def mm() -> None:
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()

    return 2 * n**3 / timeit(mm, warmup=3, repeats=5, number=number)


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "commit": commit(), "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
