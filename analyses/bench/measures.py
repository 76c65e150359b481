"""The benchmark's measurements of our engine: HVP against gradient, ``extreme_eigs``, per-example
gradients, cancellation statistics and ``torch.compile``."""
from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any

import torch
from torch.func import grad, vjp

import landscape as ls

from .problems import BenchProblem, make_cnn_problem
from .timing import loadavg, time_call, time_interleaved


def bench_hvp(problem: BenchProblem, repeats: int = 10) -> dict[str, Any]:
    """HVP cost against the gradient's.

    Args:
        problem: the benchmark problem.
        repeats: timed rounds (interleaved).

    Returns:
        Median times (s) of gradient, cached HVP, stateless HVP and a plain ``loss.backward()``,
        the operator's build time, their ratios and the cached-vs-stateless agreement.
    """
    obj, theta = problem.obj, problem.theta
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(obj.dim, generator=gen, dtype=torch.float64).to(obj.dtype)
    op = obj.hvp_operator(theta)
    model = copy.deepcopy(problem.model)
    x, y = problem.inputs, problem.targets

    def plain_grad() -> None:
        model.zero_grad(set_to_none=True)
        problem.loss_fn(model(x), y).backward()

    raw = time_interleaved({
        "grad": lambda: obj.grad(theta),
        "hvp_cached": lambda: op.matvec(v),
        "hvp_stateless": lambda: obj.hvp(theta, v),
        "grad_plain_autograd": plain_grad,
    }, repeats=repeats, warmup=2)
    med = {k: statistics.median(t) for k, t in raw.items()}
    build, _ = time_call(lambda: obj.hvp_operator(theta), repeats=max(3, repeats // 3), warmup=1)
    # Correctness: the cached and stateless products agree.
    diff = float(torch.linalg.vector_norm(op.matvec(v) - obj.hvp(theta, v)) / torch.linalg.vector_norm(obj.hvp(theta, v)))
    return {"median_s": med, "operator_build_s": build, "hvp_cached_vs_stateless_rel_diff": diff,
            "hvp_over_grad": med["hvp_cached"] / med["grad"],
            "hvp_stateless_over_grad": med["hvp_stateless"] / med["grad"],
            "hvp_over_plain_autograd_grad": med["hvp_cached"] / med["grad_plain_autograd"],
            "repeats": repeats}


def bench_ours(problem: BenchProblem, tol: float, repeats: int, warmup: int = 1, k: Any = (1, 5),
               which: str = "both") -> dict[str, Any]:
    """Time :func:`landscape.extreme_eigs` from scratch (operator build included).

    Args:
        problem: the benchmark problem.
        tol: the residual target.
        repeats: timed runs.
        warmup: untimed runs first.
        k: eigenpairs (``(1, 5)``: one smallest, five largest).
        which: ``"both"``, ``"largest"`` or ``"smallest"``.

    Returns:
        Times, eigenvalues, HVPs, iterations, relative residuals, convergence, λ_max and the last
        result (under ``"_result"``).
    """
    obj, theta = problem.obj, problem.theta
    results: list[ls.EigResult] = []

    def run() -> None:
        results.append(ls.extreme_eigs(obj, theta, k=k, which=which, tol=tol))

    cpu: list[float] = []
    t, times = time_call(run, repeats=repeats, warmup=warmup, cpu_times=cpu)
    r = results[-1]
    lam_max = float(r.values.abs().max())
    rel = r.residuals.double() / lam_max
    return {"time_s": t, "times_s": times, "cpu_s": statistics.median(cpu), "values": r.values.double().tolist(), "n_hvp": r.n_hvp,
            "n_iter": r.n_iter, "rel_residuals": rel.tolist(), "max_rel_residual": float(rel.max()),
            "all_converged": r.all_converged, "lambda_max": lam_max, "_result": r}


def bench_per_example(problem: BenchProblem, batch: int = 512, repeats: int = 3) -> dict[str, Any]:
    """``obj.per_example_grads`` (vmap) against a Python loop of ``torch.autograd.grad`` per example.

    Args:
        problem: the benchmark problem.
        batch: examples (the first ``batch``).
        repeats: timed rounds (interleaved).

    Returns:
        Median times, the speed-up and the largest relative difference.
    """
    x, y = problem.inputs[:batch], problem.targets[:batch]
    obj = ls.Objective.from_module(problem.model, problem.loss_fn, (x, y))
    theta = obj.initial_point()
    model = copy.deepcopy(problem.model)
    params = [p for p in model.parameters() if p.requires_grad]
    out_loop = torch.empty(x.shape[0], obj.dim, dtype=obj.dtype)

    def loop() -> torch.Tensor:
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(problem.loss_fn(model(x[i:i + 1]), y[i:i + 1]), params)
            out_loop[i] = torch.cat([g.reshape(-1) for g in grads])
        return out_loop

    raw = time_interleaved({"vmap": lambda: obj.per_example_grads(theta), "loop": loop},
                           repeats=repeats, warmup=1)
    med = {k: statistics.median(t) for k, t in raw.items()}
    G = obj.per_example_grads(theta)
    L = loop()
    diff = float((G - L).abs().max() / L.abs().max())
    return {"batch": x.shape[0], "median_s": med, "speedup": med["loop"] / med["vmap"], "max_rel_diff_vs_loop": diff}


def bench_cancellation(problem: BenchProblem, repeats: int = 3, chunk_size: int = 250) -> dict[str, Any]:
    """``cancellation_stats`` by the outer-product path against the per-example (vmap) path.

    Args:
        problem: the benchmark problem.
        repeats: timed rounds (interleaved).
        chunk_size: examples per vmap chunk.

    Returns:
        Median times, the speed-up, the largest relative difference and the load average.
    """
    obj, theta = problem.obj, problem.theta
    raw = time_interleaved({"fast": lambda: ls.cancellation_stats(obj, theta, fast=True),
                            "vmap": lambda: ls.cancellation_stats(obj, theta, chunk_size, fast=False)},
                           repeats=repeats, warmup=1)
    med = {k: statistics.median(v) for k, v in raw.items()}
    a = ls.cancellation_stats(obj, theta, fast=True).to_dict()
    b = ls.cancellation_stats(obj, theta, chunk_size, fast=False).to_dict()
    keys = [k for k, v in b.items() if isinstance(v, float) and v and math.isfinite(v)]
    diff = max(abs(a[k] - b[k]) / abs(b[k]) for k in keys)
    return {"n_examples": int(problem.inputs.shape[0]), "median_s": med, "speedup": med["vmap"] / med["fast"],
            "max_rel_diff": diff, "repeats": repeats, "loadavg": loadavg()}


def bench_cancellation_cnn(n_examples: int = 2000, *, dtype: torch.dtype = torch.float32, repeats: int = 3,
                           chunk_size: int = 250) -> dict[str, Any]:
    """:func:`bench_cancellation` on :func:`~analyses.bench.problems.make_cnn_problem` (conv layers
    by unfold + bmm).

    Args:
        n_examples: images.
        dtype: the problem's dtype.
        repeats: timed rounds.
        chunk_size: examples per vmap chunk.

    Returns:
        :func:`bench_cancellation`'s dict and the problem's description.
    """
    problem = make_cnn_problem(n_examples, dtype=dtype)
    return {**bench_cancellation(problem, repeats=repeats, chunk_size=chunk_size), "problem": problem.description}


def bench_compile(problem: BenchProblem, repeats: int = 10) -> dict[str, Any]:
    """``torch.compile`` of the stateless HVP (torch.func vjp-of-grad) against the cached operator.

    Args:
        problem: the benchmark problem.
        repeats: timed rounds (interleaved).

    Returns:
        Compile time, per-product medians, the ratio, agreement and whether it helps; or
        ``{"error"}`` when compiling fails.
    """
    obj, theta = problem.obj, problem.theta
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(obj.dtype)
    op = obj.hvp_operator(theta)

    def hvp(x: torch.Tensor) -> torch.Tensor:
        return vjp(grad(obj.loss_tensor), theta)[1](x)[0]

    t0 = time.perf_counter()
    try:
        compiled = torch.compile(hvp)
        first = compiled(v)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    compile_s = time.perf_counter() - t0
    raw = time_interleaved({"cached": lambda: op.matvec(v), "compiled": lambda: compiled(v), "eager_func": lambda: hvp(v)},
                           repeats=repeats, warmup=2)
    med = {k: statistics.median(x) for k, x in raw.items()}
    ref = op.matvec(v)
    return {"compile_s": compile_s, "median_s": med, "compiled_over_cached": med["compiled"] / med["cached"],
            "rel_diff": float(torch.linalg.vector_norm(first - ref) / torch.linalg.vector_norm(ref)),
            "helps": med["compiled"] < 0.9 * med["cached"], "loadavg": loadavg()}
