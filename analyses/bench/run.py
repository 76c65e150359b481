"""``landscape bench``'s driver: every measurement on the fixed problem, gathered in :class:`BenchResult`."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from landscape.results import JsonResult

from .accuracy import ACCURACY_TARGETS, bench_accuracy, plot_accuracy
from .measures import bench_cancellation, bench_cancellation_cnn, bench_compile, bench_hvp, bench_per_example
from .problems import make_problem
from .reference import max_rel_diff
from .scaling import SCALING_QUICK_WIDTHS, SCALING_WIDTHS, plot_scaling, run_scaling
from .timing import loadavg, machine_info

TARGETS = {"hvp_over_grad": 2.0, "eigs_n_hvp": 70, "eigs_speedup_vs_pyhessian_same_accuracy": 2.0,
           "eigs_speedup_vs_curvlinops": 5.0, "eigs_speedup_vs_power": 10.0, "cancellation_speedup_vs_vmap": 5.0,
           "per_example_speedup_vs_loop": 10.0, "scaling_peak_mem_vectors_1e7": 40.0,
           "lambda_max_1m_speedup_vs_curvlinops": 2.0}


@dataclass
class BenchResult(JsonResult):
    """Everything ``landscape bench`` measured. Ratios > 1 mean ours is faster (speedups);
    ``hvp_over_grad`` is a cost ratio (lower is better). Peers that are not installed are None.
    Headline numbers are at residual ``tol`` (default 1e-4·|λ_max|), top-5 + λ_min.
    ``eigs_speedup_vs_power`` is a lower bound when ``power_converged`` is False (the power
    baseline hit its iteration cap before the residual target; its time is then a lower bound).
    ``pyhessian_same_accuracy.n_hvp_ratio`` (in ``accuracy``) is the deterministic product-count
    ratio behind ``eigs_speedup_vs_pyhessian_same_accuracy``."""

    hvp_over_grad: float
    hvp_stateless_over_grad: float
    eigs_n_hvp: int
    eigs_max_rel_residual: float
    eigs_speedup_vs_power: float | None
    eigs_speedup_vs_pyhessian: float | None
    eigs_speedup_vs_pyhessian_same_accuracy: float | None
    eigs_speedup_vs_curvlinops: float | None
    eigs_speedup_vs_hessian_eigenthings: float | None
    cancellation_speedup_vs_vmap: float
    per_example_speedup_vs_loop: float
    cancellation_speedup_vs_vmap_cnn: float | None = None
    power_converged: bool = True
    problem: str = ""
    quick: bool = False
    tol: float = 1e-4
    timings: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    compile: dict[str, Any] | None = None
    scaling: list[dict[str, Any]] | None = None
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))
    machine: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


def _strip(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if not str(k).startswith("_")}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def at_target(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """Args:
        points: one method's accuracy points.
        target: a residual target.

    Returns:
        The point measured at ``target``, None when there is none.
    """
    return next((p for p in points if p["target"] == target), None)


def run_bench(
    *,
    quick: bool = False,
    dtype: torch.dtype = torch.float32,
    tol: float = 1e-4,
    n_examples: int = 2000,
    sizes: tuple[int, ...] = (64, 256, 256, 10),
    per_example_batch: int = 512,
    peers: bool = True,
    power_max_iter: int | None = None,
    progress: bool | None = None,
    compile: bool = False,
    scaling: bool = False,
    scaling_widths: tuple[int, ...] | None = None,
    figures_dir: str | os.PathLike | None = None,
) -> BenchResult:
    """Run every measurement and return a :class:`BenchResult` (``--quick``: fewer repeats, a
    tighter iteration cap on the power baseline, accuracy targets 1e-2 and ``tol`` only, and the two
    smallest scaling sizes).

    Args:
        quick: the reduced run.
        dtype: the problem's dtype.
        tol: residual target of the headline numbers (relative to |λ_max|).
        n_examples: examples of the MLP.
        sizes: its layer widths.
        per_example_batch: examples of the per-example gradient timing.
        peers: also the peers where installed.
        power_max_iter: the power baseline's cap per pair (default 40 quick, 2 500).
        progress: progress lines on stderr (None/True on).
        compile: also ``torch.compile`` of the HVP.
        scaling: also the scaling cases.
        scaling_widths: their widths (default by ``quick``).
        figures_dir: folder of the accuracy / scaling plots (None: none).

    Returns:
        :class:`BenchResult`.
    """
    problem = make_problem(n_examples, sizes, dtype=dtype)
    reps = {"hvp": 5 if quick else 15, "pe": 1 if quick else 3, "canc": 1 if quick else 3}
    # Per pair. At 1e-4 the bench MLP's top pair has λ2/λ1 ≈ 0.9948, so power needs ~ln(1e-4)/ln(0.9948)
    # ≈ 1 800 products for it alone: 2 500 lets the full bench converge (≈ 4 000 products in all);
    # when it does not, power_converged is False and eigs_speedup_vs_power is a lower bound.
    power_max_iter = power_max_iter or (40 if quick else 2500)
    targets = tuple(sorted({1e-2, tol}, reverse=True)) if quick else tuple(sorted(set(ACCURACY_TARGETS) | {tol}, reverse=True))
    show = (lambda msg: print(f"[bench] {msg} (load {loadavg()})", file=sys.stderr, flush=True)) \
        if progress is not False else (lambda msg: None)
    load_before = loadavg()
    res: dict[str, Any] = {}
    show("hvp / grad")
    res["hvp"] = bench_hvp(problem, repeats=reps["hvp"])
    res["accuracy"] = bench_accuracy(problem, targets=targets, peers=peers, power_max_iter=power_max_iter, progress=show)
    show("cancellation statistics: outer products vs vmap")
    res["cancellation"] = bench_cancellation(problem, repeats=reps["canc"])
    show("cancellation statistics on a small CNN: unfold + bmm vs vmap")
    res["cancellation_cnn"] = bench_cancellation_cnn(n_examples, dtype=dtype, repeats=reps["canc"])
    show("per-example gradients")
    res["per_example"] = bench_per_example(problem, per_example_batch, repeats=reps["pe"])
    if compile:
        show("torch.compile HVP")
        res["compile"] = bench_compile(problem)
    scale_cases = None
    if scaling:
        widths = scaling_widths or (SCALING_QUICK_WIDTHS if quick else SCALING_WIDTHS)
        scale_cases = run_scaling(widths, threads=torch.get_num_threads(), progress=show,
                                  million_width=1000 if 1000 in widths else -1)

    acc = res["accuracy"]
    ours = at_target(acc["ours"], tol)
    assert ours is not None

    def speedup(key: str) -> float | None:
        p = at_target(acc.get(key, []), tol)
        if p is None or (key == "hessian_eigenthings" and not p.get("reached", True)):
            return None
        return p["time_s"] / ours["time_s"]

    power = at_target(acc["power"], tol)
    same = acc.get("pyhessian_same_accuracy")
    ph_default_ratio = None if same is None else same["pyhessian_default_time_s"] / ours["time_s"]
    agreement: dict[str, Any] = {
        "hvp_cached_vs_stateless_rel_diff": res["hvp"]["hvp_cached_vs_stateless_rel_diff"],
        "per_example_vs_loop_max_rel_diff": res["per_example"]["max_rel_diff_vs_loop"],
        "cancellation_fast_vs_vmap_max_rel_diff": res["cancellation"]["max_rel_diff"],
        "cancellation_cnn_fast_vs_vmap_max_rel_diff": res["cancellation_cnn"]["max_rel_diff"],
        "power_max_rel_eig_diff": None if power is None else max_rel_diff(ours["values"], power["values"],
                                                                           acc["lambda_max"]),
    }
    timings = {
        "grad_s": res["hvp"]["median_s"]["grad"], "grad_plain_autograd_s": res["hvp"]["median_s"]["grad_plain_autograd"],
        "hvp_cached_s": res["hvp"]["median_s"]["hvp_cached"], "hvp_stateless_s": res["hvp"]["median_s"]["hvp_stateless"],
        "hvp_operator_build_s": res["hvp"]["operator_build_s"],
        "eigs_ours_s": ours["time_s"], "eigs_power_s": None if power is None else power["time_s"],
        "cancellation_fast_s": res["cancellation"]["median_s"]["fast"],
        "cancellation_vmap_s": res["cancellation"]["median_s"]["vmap"],
        "per_example_vmap_s": res["per_example"]["median_s"]["vmap"],
        "per_example_loop_s": res["per_example"]["median_s"]["loop"],
    }
    figures = []
    if figures_dir is not None:
        os.makedirs(figures_dir, exist_ok=True)
        figures.append(plot_accuracy(acc, os.path.join(figures_dir, "bench_accuracy.png")))
        if scale_cases and any("error" not in c for c in scale_cases):
            figures.append(plot_scaling(scale_cases, os.path.join(figures_dir, "bench_scaling.png")))
    return BenchResult(
        hvp_over_grad=res["hvp"]["hvp_over_grad"],
        hvp_stateless_over_grad=res["hvp"]["hvp_stateless_over_grad"],
        eigs_n_hvp=int(ours["n_hvp"]), eigs_max_rel_residual=float(ours["max_rel_residual"]),
        eigs_speedup_vs_power=None if power is None else power["time_s"] / ours["time_s"],
        eigs_speedup_vs_pyhessian=ph_default_ratio,
        eigs_speedup_vs_pyhessian_same_accuracy=None if same is None else same["speedup"],
        eigs_speedup_vs_curvlinops=speedup("curvlinops"),
        eigs_speedup_vs_hessian_eigenthings=speedup("hessian_eigenthings"),
        cancellation_speedup_vs_vmap=res["cancellation"]["speedup"],
        per_example_speedup_vs_loop=res["per_example"]["speedup"],
        cancellation_speedup_vs_vmap_cnn=res["cancellation_cnn"]["speedup"],
        power_converged=True if power is None else bool(power["converged"]),
        problem=problem.description, quick=quick, tol=tol, timings=timings, agreement=agreement,
        accuracy=_strip(acc), details=_strip({k: v for k, v in res.items() if k != "accuracy"}),
        compile=_strip(res.get("compile")), scaling=scale_cases,
        machine={**machine_info(), "loadavg_before": load_before}, figures=figures,
    )
