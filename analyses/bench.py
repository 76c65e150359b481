"""``landscape bench``: benchmark of the curvature engine on a fixed MLP problem.

The problem (fixed, seeded): an MLP 64-256-256-10 with ReLU activations at its seeded
initialisation, CrossEntropy loss, 2000 synthetic examples (standard-normal inputs, labels
from a seeded random teacher network 64-32-10 with tanh), float32 by default. It measures

* Hessian-vector product time / gradient time on the full data, for the cached
  ``obj.hvp_operator(theta).matvec`` (the path Lanczos uses) and the stateless ``obj.hvp``;
* time to the top-5 eigenpairs + λ_min with residual ‖Hv − λv‖ ≤ tol·|λ_max| (tol = 1e-4) by
  :func:`landscape.extreme_eigs`, against a textbook deflated power iteration (implemented
  here), PyHessian's top-5 (``pyhessian``) and curvlinops' ``HessianLinearOperator`` with SciPy
  ``eigsh`` (``curvlinops-for-pytorch``) when those are installed (null otherwise);
* per-example gradients (``obj.per_example_grads``, vmap) against a Python loop of autograd
  calls at batch 512.

Times are medians of repeats after a warm-up, all at one fixed ``torch.set_num_threads``.
Timings are wall-clock on a possibly shared machine: read ratios, not absolute numbers.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import landscape as ls
from landscape.lanczos import random_unit
from landscape.results import JsonResult

TARGETS = {"hvp_over_grad": 2.0, "eigs_speedup_vs_pyhessian": 5.0, "per_example_speedup_vs_loop": 10.0}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------- the fixed problem
@dataclass
class BenchProblem:
    """The benchmark's model, data and objective (``theta`` is the seeded initial point)."""

    model: nn.Module
    loss_fn: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    obj: ls.Objective
    theta: torch.Tensor
    description: str


def make_problem(
    n_examples: int = 2000,
    sizes: tuple[int, ...] = (64, 256, 256, 10),
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> BenchProblem:
    """Seeded MLP ``sizes`` (ReLU) + CrossEntropy on ``n_examples`` synthetic examples.

    Inputs are standard normal, shape ``(n_examples, sizes[0])``; labels (``sizes[-1]`` classes)
    are the argmax of a random tanh teacher network with 32 hidden units. Nothing is trained.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes}")
    if n_examples < 1:
        raise ValueError(f"n_examples must be positive, got {n_examples}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_examples, sizes[0], generator=gen, dtype=torch.float64)
    w1 = torch.randn(sizes[0], 32, generator=gen, dtype=torch.float64) / math.sqrt(sizes[0])
    w2 = torch.randn(32, sizes[-1], generator=gen, dtype=torch.float64) / math.sqrt(32)
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers).to(dtype).eval()
    x = x.to(dtype)
    loss_fn = nn.CrossEntropyLoss()
    obj = ls.Objective.from_module(model, loss_fn, (x, y))
    desc = (f"MLP {'-'.join(map(str, sizes))} (ReLU), CrossEntropy, {n_examples} synthetic examples "
            f"(teacher labels), seeded init (seed={seed}), {str(dtype).replace('torch.', '')}, dim={obj.dim}")
    return BenchProblem(model=model, loss_fn=loss_fn, inputs=x, targets=y, obj=obj,
                        theta=obj.initial_point(), description=desc)


# ---------------------------------------------------------------------------- timing
def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1,
              cpu_times: list[float] | None = None) -> tuple[float, list[float]]:
    """Median wall time (s) of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls;
    the process CPU times of the timed calls are appended to ``cpu_times`` when given."""
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
    """Round-robin timing of several callables, so that load drift hits each alike."""
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


# ---------------------------------------------------------------------------- power-iteration baseline
@dataclass
class PowerResult(JsonResult):
    """Output of :func:`deflated_power_iteration`: ``values`` in the order found (top-k
    descending, then λ_min), ``vectors`` (dim, m), explicit ``residuals`` ‖Hv − λv‖,
    ``converged`` flags, matrix-vector products ``n_matvec`` and iterations per pair."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    n_matvec: int
    iterations: list[int] = field(default_factory=list)
    pair_times_s: list[float] = field(default_factory=list)
    top_k_time_s: float = 0.0

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("vectors")
        return d


def deflated_power_iteration(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    k: int = 5,
    *,
    smallest: bool = True,
    tol: float = 1e-4,
    max_iter: int = 2000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    max_extra: int = 10,
) -> PowerResult:
    """Textbook baseline: top-``k`` eigenpairs by power iteration with deflation, then λ_min.

    Each pair iterates ``v ← P H v / ‖P H v‖`` with ``P`` the projector orthogonal to every pair
    already found (deflation), so it converges to the remaining eigenvalue of largest |λ|. A
    negative one found on the way is the most negative eigenvalue, λ_min, (later negative ones
    are deflated and dropped; at most ``max_extra`` such); if λ_min was not met, it is found last
    by power iteration on the shifted operator ``H − λ_max I``. A pair stops when its explicit
    residual ‖Hv − λv‖ (λ = vᵀHv) is ≤ ``tol``·|λ_dom|, λ_dom the first (largest-|λ|) eigenvalue
    found, or after ``max_iter`` products. ``values`` holds the top ``k`` descending, then λ_min.
    """
    if k < 1 or k > dim - (1 if smallest else 0):
        raise ValueError(f"k must be in [1, {dim - 1 if smallest else dim}], got {k}")
    if not (0 < tol < 1) or max_iter < 1:
        raise ValueError(f"need 0 < tol < 1 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
    gen = torch.Generator().manual_seed(seed)
    found: list[torch.Tensor] = []  # every vector found, for deflation
    iterations: list[int] = []
    pair_times: list[float] = []
    n_matvec = 0
    scale: float | None = None

    def project(x: torch.Tensor) -> torch.Tensor:
        if found:
            basis = torch.stack(found)
            for _ in range(2):
                x = x - basis.T @ (basis @ x)
        return x

    def iterate(shift: float, deflate: bool) -> tuple[float, torch.Tensor, float, bool]:
        nonlocal n_matvec
        t0 = time.perf_counter()
        v = random_unit(dim, gen, dtype, device)
        if deflate:
            v = project(v)
            v = v / torch.linalg.vector_norm(v)
        lam, res, ok, it = 0.0, math.inf, False, 0
        for it in range(1, max_iter + 1):
            hv = matvec(v)
            n_matvec += 1
            lam = float(torch.dot(v, hv))
            res = float(torch.linalg.vector_norm(hv - lam * v))
            if res <= tol * (scale if scale is not None else abs(lam)):
                ok = True
                break
            w = hv - shift * v
            if deflate:
                w = project(w)
            nw = torch.linalg.vector_norm(w)
            if float(nw) == 0.0:
                break
            v = w / nw
        found.append(v)
        iterations.append(it)
        pair_times.append(time.perf_counter() - t0)
        return lam, v, res, ok

    tops: list[tuple[float, torch.Tensor, float, bool]] = []
    low: tuple[float, torch.Tensor, float, bool] | None = None
    extra = 0
    while len(tops) < k and extra <= max_extra and len(found) < dim:
        pair = iterate(0.0, deflate=True)
        if scale is None:
            scale = abs(pair[0])
        if pair[0] >= 0:
            tops.append(pair)
        else:
            extra += 1
            if smallest and low is None:
                low = pair
    if len(tops) < k:
        raise RuntimeError(f"power iteration found only {len(tops)} non-negative eigenvalues of the {k} asked for")
    top_time = sum(pair_times)
    if smallest and low is None:
        low = iterate(tops[0][0], deflate=False)
    pairs = tops + ([low] if low is not None else [])
    return PowerResult(values=torch.tensor([p[0] for p in pairs], dtype=torch.float64),
                       vectors=torch.stack([p[1] for p in pairs], dim=1),
                       residuals=torch.tensor([p[2] for p in pairs], dtype=torch.float64),
                       converged=torch.tensor([p[3] for p in pairs]), n_matvec=n_matvec,
                       iterations=iterations, pair_times_s=pair_times, top_k_time_s=top_time)


# ---------------------------------------------------------------------------- helpers
def rel_residuals(op: ls.HessianOperator, vectors: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rayleigh quotients and ‖Hv − λv‖/scale of the unit-normalised columns of ``vectors`` (dim, m)."""
    V = vectors.to(dtype=op.dtype, device=op.device)
    V = V / torch.linalg.vector_norm(V, dim=0, keepdim=True)
    HV = torch.stack([op.matvec(V[:, i]) for i in range(V.shape[1])], dim=1)
    lam = (V * HV).sum(0)
    res = torch.linalg.vector_norm(HV - V * lam, dim=0) / scale
    return lam.double().cpu(), res.double().cpu()


def _max_rel_diff(a: Any, b: Any, scale: float) -> float:
    a = np.sort(np.asarray(a, dtype=np.float64))[::-1]
    b = np.sort(np.asarray(b, dtype=np.float64))[::-1]
    m = min(len(a), len(b))
    return float(np.max(np.abs(a[:m] - b[:m])) / scale)


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 - not installed or no metadata
        return None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """Machine, Python and library versions, and the torch thread count in use."""
    import scipy
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "loadavg_1_5_15": _loadavg(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "pyhessian": _version("pyhessian"),
        "curvlinops": _version("curvlinops-for-pytorch"),
    }


# ---------------------------------------------------------------------------- the measurements
def bench_hvp(problem: BenchProblem, repeats: int = 10) -> dict[str, Any]:
    """Median times (s) of gradient, cached HVP, stateless HVP and a plain ``loss.backward()``."""
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


def bench_ours(problem: BenchProblem, tol: float, repeats: int, warmup: int = 1) -> dict[str, Any]:
    """``extreme_eigs(k=(1, 5), which="both")``, timed from scratch (operator build included)."""
    obj, theta = problem.obj, problem.theta
    results: list[ls.EigResult] = []

    def run() -> None:
        results.append(ls.extreme_eigs(obj, theta, k=(1, 5), which="both", tol=tol))

    cpu: list[float] = []
    t, times = time_call(run, repeats=repeats, warmup=warmup, cpu_times=cpu)
    r = results[-1]
    lam_max = float(r.values.abs().max())
    rel = r.residuals.double() / lam_max
    return {"time_s": t, "times_s": times, "cpu_s": statistics.median(cpu), "values": r.values.double().tolist(), "n_hvp": r.n_hvp,
            "n_iter": r.n_iter, "rel_residuals": rel.tolist(), "max_rel_residual": float(rel.max()),
            "all_converged": r.all_converged, "lambda_max": lam_max, "_result": r}


def bench_power(problem: BenchProblem, tol: float, max_iter: int, repeats: int = 1) -> dict[str, Any]:
    """The deflated power-iteration baseline on the cached operator (operator build included)."""
    obj, theta = problem.obj, problem.theta
    results: list[PowerResult] = []

    def run() -> None:
        op = obj.hvp_operator(theta)
        results.append(deflated_power_iteration(op.matvec, obj.dim, 5, smallest=True, tol=tol,
                                                max_iter=max_iter, seed=0, dtype=obj.dtype, device=obj.device))

    cpu: list[float] = []
    t, times = time_call(run, repeats=repeats, warmup=0, cpu_times=cpu)
    r = results[-1]
    scale = abs(float(r.values[0]))
    return {"time_s": t, "times_s": times, "cpu_s": statistics.median(cpu), "values": sorted(r.values.tolist()), "n_hvp": r.n_matvec,
            "iterations": r.iterations, "pair_times_s": r.pair_times_s,
            "top5_time_s": r.top_k_time_s, "max_rel_residual": float(r.residuals.max() / scale),
            "all_converged": bool(r.converged.all()), "max_iter_per_pair": max_iter}


def bench_pyhessian(problem: BenchProblem, *, tol: float = 1e-3, max_iter: int = 100, repeats: int = 1,
                    seed: int = 0) -> dict[str, Any] | None:
    """PyHessian's ``hessian(...).eigenvalues(top_n=5)`` on the single full batch; None if absent."""
    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        return None
    ph_module = sys.modules["pyhessian.hessian"]  # the module (the package re-exports the class as .hessian)

    out: dict[str, Any] = {"n_hvp": 0}
    original = ph_module.hessian_vector_product

    def counted(*a: Any, **kw: Any) -> Any:
        out["n_hvp"] += 1
        return original(*a, **kw)

    def run() -> None:
        out["n_hvp"] = 0
        model = copy.deepcopy(problem.model)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            h = PyHessian(model, problem.loss_fn, data=(problem.inputs, problem.targets), cuda=False)
            vals, vecs = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=5)
        for p in model.parameters():  # break the create_graph reference cycle
            p.grad = None
        out["values"], out["vectors"] = vals, vecs

    cpu: list[float] = []
    ph_module.hessian_vector_product = counted  # count its HVPs (negligible overhead)
    try:
        t, times = time_call(run, repeats=repeats, warmup=0, cpu_times=cpu)
    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        ph_module.hessian_vector_product = original
    V = torch.stack([torch.cat([t_.reshape(-1) for t_ in vec]) for vec in out["vectors"]], dim=1)
    return {"time_s": t, "times_s": times, "cpu_s": statistics.median(cpu), "n_hvp": out["n_hvp"],
            "values": sorted(float(x) for x in out["values"]),
            "tol": tol, "max_iter": max_iter, "_vectors": V}


def bench_curvlinops(problem: BenchProblem, *, tol: float, repeats: int = 1, seed: int = 0) -> dict[str, Any] | None:
    """curvlinops ``HessianLinearOperator(...).to_scipy()`` + SciPy ``eigsh``: top-5 ('LA') and
    λ_min ('SA'), both with ARPACK tolerance ``tol``; None if curvlinops is absent."""
    try:
        from curvlinops import HessianLinearOperator
    except ImportError:
        return None
    from scipy.sparse.linalg import LinearOperator, eigsh

    out: dict[str, Any] = {"n_hvp": 0}
    v0 = np.random.default_rng(seed).standard_normal(problem.obj.dim)

    def run() -> None:
        model = copy.deepcopy(problem.model)
        params = [p for p in model.parameters() if p.requires_grad]
        Hs = HessianLinearOperator(model, problem.loss_fn, params, [(problem.inputs, problem.targets)],
                                   check_deterministic=False, num_data=problem.inputs.shape[0]).to_scipy()
        out["n_hvp"] = 0

        def mv(x: np.ndarray) -> np.ndarray:
            out["n_hvp"] += 1
            return Hs.matvec(x)

        H = LinearOperator(Hs.shape, matvec=mv, rmatvec=mv, dtype=Hs.dtype)  # counts products
        top_vals, top_vecs = eigsh(H, k=5, which="LA", tol=tol, v0=v0)
        low_vals, low_vecs = eigsh(H, k=1, which="SA", tol=tol, v0=v0)
        out["values"] = np.concatenate([low_vals, top_vals])
        out["vectors"] = np.concatenate([low_vecs, top_vecs], axis=1)

    cpu: list[float] = []
    try:
        t, times = time_call(run, repeats=repeats, warmup=0, cpu_times=cpu)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"time_s": t, "times_s": times, "cpu_s": statistics.median(cpu), "n_hvp": out["n_hvp"],
            "values": sorted(out["values"].tolist()), "tol": tol,
            "_vectors": torch.as_tensor(out["vectors"])}


def bench_per_example(problem: BenchProblem, batch: int = 512, repeats: int = 3) -> dict[str, Any]:
    """``obj.per_example_grads`` (vmap) vs a Python loop of ``torch.autograd.grad`` per example."""
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


# ---------------------------------------------------------------------------- the result
@dataclass
class BenchResult(JsonResult):
    """Everything ``landscape bench`` measured. Ratios > 1 mean ours is faster (speedups);
    ``hvp_over_grad`` is a cost ratio (lower is better). Peers that are not installed are None."""

    hvp_over_grad: float
    hvp_stateless_over_grad: float
    eigs_speedup_vs_power: float
    eigs_speedup_vs_pyhessian: float | None
    eigs_speedup_vs_curvlinops: float | None
    per_example_speedup_vs_loop: float
    eigs_max_rel_residual: float
    eigs_speedup_vs_pyhessian_tol: float | None = None
    power_converged: bool = True
    problem: str = ""
    quick: bool = False
    tol: float = 1e-4
    timings: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))
    machine: dict[str, Any] = field(default_factory=dict)


def _strip(d: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if d is None else {k: v for k, v in d.items() if not k.startswith("_")}


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
) -> BenchResult:
    """Run every measurement and return a :class:`BenchResult` (``--quick``: fewer repeats and
    a tighter iteration cap on the power-iteration baseline)."""
    problem = make_problem(n_examples, sizes, dtype=dtype)
    reps = {"hvp": 5 if quick else 15, "ours": 1 if quick else 3, "peer": 1, "pe": 1 if quick else 3}
    power_max_iter = power_max_iter or (40 if quick else 600)
    load_before = _loadavg()
    stages = ["hvp / grad", "extreme_eigs (ours)", "power iteration", "pyhessian", "pyhessian tol",
              "curvlinops", "per-example grads"]
    if quick:
        stages.remove("pyhessian tol")
    bar = tqdm(stages, desc="bench", disable=(not progress) if progress is not None else None,
               file=sys.stderr, leave=False)
    res: dict[str, Any] = {}
    for i, stage in enumerate(bar):
        bar.set_postfix_str(stage)
        if bar.disable and progress is not False:  # no TTY: plain progress lines instead of a bar
            print(f"[bench] {i + 1}/{len(stages)} {stage} ...", file=sys.stderr, flush=True)
        if stage == "hvp / grad":
            res["hvp"] = bench_hvp(problem, repeats=reps["hvp"])
        elif stage == "extreme_eigs (ours)":
            res["ours"] = bench_ours(problem, tol, reps["ours"], warmup=0 if quick else 1)
        elif stage == "power iteration":
            res["power"] = bench_power(problem, tol, power_max_iter, repeats=1)
        elif stage == "pyhessian":
            res["pyhessian"] = bench_pyhessian(problem, repeats=reps["peer"]) if peers else None
        elif stage == "pyhessian tol":
            res["pyhessian_tol"] = bench_pyhessian(problem, tol=tol, repeats=reps["peer"]) if peers else None
        elif stage == "curvlinops":
            res["curvlinops"] = bench_curvlinops(problem, tol=tol, repeats=reps["peer"]) if peers else None
        elif stage == "per-example grads":
            res["per_example"] = bench_per_example(problem, per_example_batch, repeats=reps["pe"])
    bar.close()

    ours = res["ours"]
    lam_max = ours["lambda_max"]
    op = problem.obj.hvp_operator(problem.theta)
    agreement: dict[str, Any] = {
        "power_max_rel_eig_diff": _max_rel_diff(ours["values"], res["power"]["values"], lam_max),
        "hvp_cached_vs_stateless_rel_diff": res["hvp"]["hvp_cached_vs_stateless_rel_diff"],
        "per_example_vs_loop_max_rel_diff": res["per_example"]["max_rel_diff_vs_loop"],
    }
    speedups: dict[str, float | None] = {}
    for name in ("pyhessian", "pyhessian_tol", "curvlinops"):
        peer = res.get(name)
        if peer is None or "error" in peer:
            speedups[name] = None
            continue
        _, rr = rel_residuals(op, peer.pop("_vectors"), lam_max)
        peer["max_rel_residual"] = float(rr.max())
        ours_vals = ours["values"][1:] if name.startswith("pyhessian") else ours["values"]
        agreement[f"{name}_max_rel_eig_diff"] = _max_rel_diff(ours_vals, peer["values"], lam_max)
        speedups[name] = peer["time_s"] / ours["time_s"]

    timings = {
        "grad_s": res["hvp"]["median_s"]["grad"], "grad_plain_autograd_s": res["hvp"]["median_s"]["grad_plain_autograd"],
        "hvp_cached_s": res["hvp"]["median_s"]["hvp_cached"], "hvp_stateless_s": res["hvp"]["median_s"]["hvp_stateless"],
        "hvp_operator_build_s": res["hvp"]["operator_build_s"],
        "eigs_ours_s": ours["time_s"], "eigs_power_s": res["power"]["time_s"],
        "eigs_power_top5_s": res["power"]["top5_time_s"],
        "eigs_cpu_s": {k: (v or {}).get("cpu_s") for k, v in res.items() if k in ("ours", "power", "pyhessian",
                                                                                  "pyhessian_tol", "curvlinops")},
        "eigs_n_hvp": {k: (v or {}).get("n_hvp") for k, v in res.items() if k in ("ours", "power", "pyhessian",
                                                                                  "pyhessian_tol", "curvlinops")},
        "eigs_pyhessian_s": None if speedups["pyhessian"] is None else res["pyhessian"]["time_s"],
        "eigs_pyhessian_tol_s": None if speedups.get("pyhessian_tol") is None else res["pyhessian_tol"]["time_s"],
        "eigs_curvlinops_s": None if speedups["curvlinops"] is None else res["curvlinops"]["time_s"],
        "per_example_vmap_s": res["per_example"]["median_s"]["vmap"],
        "per_example_loop_s": res["per_example"]["median_s"]["loop"],
    }
    details = {k: _strip(v) for k, v in res.items()}
    return BenchResult(
        hvp_over_grad=res["hvp"]["hvp_over_grad"],
        hvp_stateless_over_grad=res["hvp"]["hvp_stateless_over_grad"],
        eigs_speedup_vs_power=res["power"]["time_s"] / ours["time_s"],
        eigs_speedup_vs_pyhessian=speedups["pyhessian"],
        eigs_speedup_vs_curvlinops=speedups["curvlinops"],
        per_example_speedup_vs_loop=res["per_example"]["speedup"],
        eigs_max_rel_residual=ours["max_rel_residual"],
        eigs_speedup_vs_pyhessian_tol=speedups.get("pyhessian_tol"),
        power_converged=res["power"]["all_converged"],
        problem=problem.description, quick=quick, tol=tol, timings=timings, agreement=agreement,
        details=details, machine={**machine_info(), "loadavg_before": load_before},
    )


# ---------------------------------------------------------------------------- printing / CLI
def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def format_table(r: BenchResult) -> str:
    """The human-readable table of times and ratios."""
    t, d = r.timings, r.details
    ms = lambda s: _fmt(None if s is None else 1e3 * s, ".1f")  # noqa: E731
    sec = lambda s: _fmt(s, ".2f")  # noqa: E731

    def peer_line(name: str, key: str, label: str, ratio: float | None) -> str:
        p = d.get(key)
        if p is None:
            return f"  {label:<44s} not installed"
        if "error" in p:
            return f"  {label:<44s} failed: {p['error'][:60]}"
        return (f"  {label:<44s} {sec(p['time_s']):>8s} s   ours x{_fmt(ratio)} faster, {p.get('n_hvp')} HVPs,"
                f" CPU-time ratio x{_fmt(p['cpu_s'] / d['ours']['cpu_s'])}"
                f"   (their max residual {_fmt(p.get('max_rel_residual'), '.1e')}·|λmax|)")

    lines = [
        f"landscape bench{' --quick' if r.quick else ''}: {r.problem}",
        f"torch {r.machine['torch']}, {r.machine['torch_threads']} threads "
        f"({r.machine['cpu_count']} CPUs), {r.machine['processor']}, load average {r.machine.get('loadavg_before')}"
        " -> " + str(r.machine.get("loadavg_1_5_15")),
        "",
        "HVP / gradient (full data, median of %d)" % d["hvp"]["repeats"],
        f"  gradient obj.grad                            {ms(t['grad_s']):>8s} ms   "
        f"(plain loss.backward {ms(t['grad_plain_autograd_s'])} ms)",
        f"  cached hvp_operator(theta).matvec            {ms(t['hvp_cached_s']):>8s} ms   "
        f"ratio {_fmt(r.hvp_over_grad)}  (target <= {TARGETS['hvp_over_grad']:.1f})",
        f"  stateless obj.hvp                            {ms(t['hvp_stateless_s']):>8s} ms   "
        f"ratio {_fmt(r.hvp_stateless_over_grad)}",
        f"  operator build (first-order graph)           {ms(t['hvp_operator_build_s']):>8s} ms",
        "",
        f"top-5 + λ_min, residual <= {r.tol:g}·|λmax|",
        f"  ours: extreme_eigs(k=(1,5), which='both')   {sec(t['eigs_ours_s']):>8s} s   "
        f"{d['ours']['n_hvp']} HVPs, max residual {r.eigs_max_rel_residual:.1e}·|λmax|",
        f"  deflated power iteration (baseline)          {sec(t['eigs_power_s']):>8s} s   "
        f"ours x{_fmt(r.eigs_speedup_vs_power)} faster, {d['power']['n_hvp']} HVPs, "
        f"CPU-time ratio x{_fmt(d['power']['cpu_s'] / d['ours']['cpu_s'])}"
        + ("" if r.power_converged else f", NOT converged in {d['power']['max_iter_per_pair']} it/pair (lower bound)"),
        f"    of which top-5 only (PyHessian's algorithm) {sec(t['eigs_power_top5_s']):>8s} s   "
        f"ours x{_fmt(t['eigs_power_top5_s'] / t['eigs_ours_s'])} faster",
        peer_line("pyhessian", "pyhessian", "PyHessian top-5 (defaults tol=1e-3, 100 it)", r.eigs_speedup_vs_pyhessian),
    ]
    if "pyhessian_tol" in d:
        lines.append(peer_line("pyhessian", "pyhessian_tol", f"PyHessian top-5 (tol={r.tol:g}, 100 it)",
                               r.eigs_speedup_vs_pyhessian_tol))
    lines += [
        peer_line("curvlinops", "curvlinops", "curvlinops + scipy eigsh (top-5 + λ_min)", r.eigs_speedup_vs_curvlinops),
        f"  target: ours <= 1/{TARGETS['eigs_speedup_vs_pyhessian']:.0f} of PyHessian's top-5 time",
        f"  eigenvalues (ours): {', '.join(f'{v:.5g}' for v in d['ours']['values'])}",
        "  agreement (max |Δλ|/|λmax|): " + ", ".join(
            f"{k.replace('_max_rel_eig_diff', '')} {v:.1e}" for k, v in r.agreement.items() if k.endswith("eig_diff")),
        "",
        f"per-example gradients, batch {d['per_example']['batch']}",
        f"  vmap obj.per_example_grads                   {ms(t['per_example_vmap_s']):>8s} ms",
        f"  Python loop of autograd.grad                 {ms(t['per_example_loop_s']):>8s} ms   "
        f"speedup x{_fmt(r.per_example_speedup_vs_loop)}  (target >= {TARGETS['per_example_speedup_vs_loop']:.0f})",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer repeats, capped baseline (< 30 s)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="problem dtype (default float32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPU cores)")
    parser.add_argument("--tol", type=float, default=1e-4, help="relative residual for the eigenpairs (default 1e-4)")
    parser.add_argument("--no-peers", action="store_true", help="skip PyHessian and curvlinops even if installed")


def run(args: argparse.Namespace) -> int:
    threads = args.threads or os.cpu_count() or 1
    if threads < 1:
        raise SystemExit(f"--threads must be positive, got {threads}")
    torch.set_num_threads(threads)
    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    result = run_bench(quick=args.quick, dtype=_DTYPES[args.dtype], tol=args.tol, peers=not args.no_peers)
    print(format_table(result))
    if args.json:
        path = result.save_json(args.json)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["bench", *sys.argv[1:]]))
