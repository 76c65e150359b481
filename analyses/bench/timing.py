"""Timing on a possibly shared machine (medians, round-robin), load averages and what the machine is."""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
import scipy
import torch


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1,
              cpu_times: list[float] | None = None) -> tuple[float, list[float]]:
    """Time a call.

    Args:
        fn: the call.
        repeats: timed calls (≥ 1).
        warmup: untimed calls first.
        cpu_times: when given, the process CPU times (s) of the timed calls are appended to it.

    Returns:
        ``(median wall time (s), every timed call's wall time (s))``.

    Raises:
        ValueError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
    return statistics.median(times), times


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Round-robin timing of several callables, so that load drift hits each alike.

    Args:
        fns: name → call.
        repeats: timed rounds.
        warmup: untimed rounds first.

    Returns:
        name → wall times (s) of its timed calls.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def version_of(dist: str) -> str | None:
    """Args:
        dist: a distribution name (``"curvlinops-for-pytorch"``).

    Returns:
        Its installed version, None when it is not installed.
    """
    try:
        return version(dist)
    except Exception:  # noqa: BLE001 - not installed or no metadata
        return None


def loadavg() -> list[float] | None:
    """Returns:
        The 1, 5 and 15 minute load averages (2 decimals), None where the OS has none.
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Machine, Python and library versions, and the torch thread count in use.

    Returns:
        A JSON-able dict (platform, CPU, load average, torch threads, versions, torch build).
    """
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "loadavg_1_5_15": loadavg(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "pyhessian": version_of("pyhessian"),
        "curvlinops": version_of("curvlinops-for-pytorch"), "hessian_eigenthings": version_of("hessian-eigenthings"),
        "torch_build": torch_build(), "torch_interop_threads": torch.get_num_interop_threads(),
    }


def torch_build() -> str:
    """Returns:
        A one-line summary of the torch build: git revision, CUDA, BLAS, parallel backend, CPU ISA.
    """
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    blas = m.group(1) if m else "?"
    par = torch.__config__.parallel_info().splitlines()
    backend = next((ln.split(":", 1)[1].strip() for ln in par if ln.startswith("ATen parallel backend")), "?")
    isa = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return (f"git {torch.version.git_version[:10]}, cuda {torch.version.cuda}, BLAS {blas}, "
            f"parallel {backend}, CPU capability {isa}, mkldnn {torch.backends.mkldnn.is_available()}")
