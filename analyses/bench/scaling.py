"""Scaling: gradient, HVP and ``extreme_eigs`` time and peak memory on MLPs from 1e5 to 1e7
parameters, each size in a fresh process."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import landscape as ls

from .measures import bench_ours
from .peers import bench_curvlinops
from .problems import make_problem
from .timing import loadavg, time_interleaved


SCALING_WIDTHS = (280, 560, 1000, 1800, 3125)   # MLP 64-w-w-10: dim ≈ 1.0e5, 3.6e5, 1.1e6, 3.4e6, 1.0e7
SCALING_QUICK_WIDTHS = (280, 1000)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the process's peak resident set size (Linux ≥ 4.0: ``5`` to /proc/self/clear_refs), so
    that the next peak reading covers only what follows; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """Peak resident set size since the process started or since :func:`_reset_peak_rss`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def scaling_case(width: int, n_examples: int = 128, *, dtype: torch.dtype = torch.float32, tol: float = 1e-4,
                 repeats: int = 7, reference: bool = False, curvlinops: bool = False) -> dict[str, Any]:
    """One scaling point. The memory figure is the process's peak RSS during ``extreme_eigs(k=1,
    which="both")`` minus its RSS just before, the peak reset first where Linux allows
    (``eigs_peak_mem_exact``); otherwise an upper bound when an earlier peak was higher (run it in a
    fresh process then).

    Args:
        width: the MLP 64-w-w-10's hidden width.
        n_examples: examples.
        dtype: the problem's dtype.
        tol: the eigensolver's residual target.
        repeats: timed rounds of gradient and HVP.
        reference: also float64 eigenvalues of the same problem.
        curvlinops: also λ_max by ours and by curvlinops + eigsh (side by side).

    Returns:
        Dimension, times, HVPs, convergence, eigenvalues, residual, peak memory (bytes and
        parameter vectors) and the load average (+ the optional comparisons).
    """
    problem = make_problem(n_examples, (64, width, width, 10), dtype=dtype)
    obj, theta = problem.obj, problem.theta
    vec_bytes = obj.dim * torch.finfo(dtype).bits // 8
    reset = _reset_peak_rss()
    rss0 = _rss_bytes()
    peak0 = _peak_rss_bytes()
    t0 = time.perf_counter()
    r = ls.extreme_eigs(obj, theta, k=1, which="both", tol=tol)
    eigs_s = time.perf_counter() - t0
    peak = max(_peak_rss_bytes(), peak0) - rss0
    load = loadavg()
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(obj.dim, generator=gen, dtype=torch.float64).to(dtype)
    op = obj.hvp_operator(theta)
    raw = time_interleaved({"grad": lambda: obj.grad(theta), "hvp": lambda: op.matvec(v)}, repeats=repeats, warmup=2)
    out: dict[str, Any] = {
        "dim": obj.dim, "width": width, "n_examples": n_examples, "dtype": str(dtype).replace("torch.", ""),
        "grad_s": statistics.median(raw["grad"]), "hvp_s": statistics.median(raw["hvp"]), "eigs_s": eigs_s,
        "eigs_n_hvp": r.n_hvp, "eigs_converged": r.all_converged, "eigs_values": r.values.double().tolist(),
        "eigs_max_rel_residual": float(r.residuals.max() / r.scale), "eigs_max_basis": r.max_basis,
        "eigs_peak_mem_bytes": int(peak), "eigs_peak_mem_vectors": peak / vec_bytes,
        "eigs_peak_mem_exact": reset, "loadavg": load,
    }
    if curvlinops:
        o = bench_ours(problem, tol, repeats=1, warmup=0, k=1, which="largest")
        c = bench_curvlinops(problem, tol=tol, k_top=1, smallest=False)
        out["lambda_max_ours_s"] = o["time_s"]
        out["lambda_max_ours_n_hvp"] = o["n_hvp"]
        out["lambda_max_ours_converged"] = o["all_converged"]
        if c is not None and "error" not in c:
            out["lambda_max_curvlinops_s"] = c["time_s"]
            out["lambda_max_curvlinops_n_hvp"] = c["n_hvp"]
            out["lambda_max_speedup_vs_curvlinops"] = c["time_s"] / o["time_s"]
            out["lambda_max_curvlinops_value"] = c["values"][-1]
        out["lambda_max_ours_value"] = o["values"][-1]
        out["lambda_max_loadavg"] = loadavg()
    if reference:
        p64 = make_problem(n_examples, (64, width, width, 10), dtype=torch.float64)
        r64 = ls.extreme_eigs(p64.obj, p64.theta, k=1, which="both", tol=1e-8)
        sc = float(r64.values.abs().max())
        out["float64_values"] = r64.values.tolist()
        out["float32_vs_float64_max_rel_diff"] = float((r.values.double() - r64.values).abs().max() / sc)
    return out


def run_scaling(widths: tuple[int, ...] = SCALING_WIDTHS, *, n_examples: int = 128, threads: int | None = None,
                million_width: int = 1000, progress: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Every scaling case in a fresh subprocess (so peak memory is per case); the ~1M case
    (``million_width``) also runs the float64 reference and the curvlinops λ_max comparison.

    Args:
        widths: hidden widths of the MLPs 64-w-w-10.
        n_examples: examples.
        threads: torch threads of each case (default: this process's).
        million_width: the width of the ~1M case.
        progress: receives a line per case.

    Returns:
        One :func:`scaling_case` dict per width (``{"width", "error"}`` for a failed case).
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = []
    for w in widths:
        progress(f"scaling width {w}")
        extra = w == million_width
        code = ("import json, torch; from analyses.bench.scaling import scaling_case; "
                f"torch.set_num_threads({threads or torch.get_num_threads()}); "
                f"print('@@' + json.dumps(scaling_case({w}, {n_examples}, reference={extra}, curvlinops={extra})))")
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), None)
        if proc.returncode != 0 or line is None:
            out.append({"width": w, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]})
            continue
        out.append(json.loads(line[2:]))
    return out


def plot_scaling(cases: list[dict[str, Any]], path: str | os.PathLike) -> str:
    """Log-log plot of gradient, HVP and eigensolver time against dimension, and peak memory in vectors.

    Args:
        cases: :func:`run_scaling`'s result (failed cases skipped).
        path: the PNG to write (folders created).

    Returns:
        The path, as a string.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ok = [c for c in cases if "error" not in c]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 4.0))
    d = [c["dim"] for c in ok]
    for key, label in (("grad_s", "gradient"), ("hvp_s", "HVP"), ("eigs_s", "extreme_eigs(k=1, both)")):
        ax.loglog(d, [c[key] for c in ok], marker="o", label=label)
    ax.set_xlabel("parameters")
    ax.set_ylabel("wall time (s)")
    ax.legend(fontsize=8)
    ax.set_title("time against size (float32)", fontsize=10)
    bx.semilogx(d, [c["eigs_peak_mem_vectors"] for c in ok], marker="o")
    bx.axhline(40, color="r", lw=0.8, ls="--", label="target at 10⁷ parameters: 40 vectors")
    bx.set_xlabel("parameters")
    bx.set_ylabel("peak memory of extreme_eigs (parameter vectors)")
    bx.legend(fontsize=8)
    bx.set_title("peak memory during extreme_eigs\n(smaller cases keep a larger basis: ≤ 2²³ numbers)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
