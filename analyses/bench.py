"""``landscape bench``: benchmark of the curvature engine on a fixed MLP problem.

The problem (fixed, seeded): an MLP 64-256-256-10 with ReLU activations at its seeded
initialisation, CrossEntropy loss, 2000 synthetic examples (standard-normal inputs, labels
from a seeded random teacher network 64-32-10 with tanh), float32 by default. It measures

* Hessian-vector product time / gradient time on the full data, for the cached
  ``obj.hvp_operator(theta).matvec`` (the path Lanczos uses) and the stateless ``obj.hvp``;
* accuracy against time for the top-5 eigenpairs + λ_min at residual targets 1e-2, 1e-3, 1e-4
  (‖Hv − λv‖/|λ_max|, recomputed with one operator for every method): :func:`landscape.extreme_eigs`,
  a textbook deflated power iteration (implemented here), curvlinops' ``HessianLinearOperator`` +
  SciPy ``eigsh``, hessian-eigenthings v1's ``lanczos`` (steps raised until the target is met) and
  PyHessian's top-5 (its own tol; it has no residual control), plus PyHessian's defaults against ours
  at the residual they achieve; peers that are not installed give null;
* ``cancellation_stats`` by the outer-product path (:mod:`landscape.fast_stats`) against vmap;
* per-example gradients (``obj.per_example_grads``, vmap) against a Python loop at batch 512;
* optionally ``torch.compile`` of the HVP (``--compile``) and MLPs from 1e5 to 1e7 parameters
  (``--scaling``: gradient, HVP and ``extreme_eigs(k=1, which="both")`` time and peak memory, each
  size in a fresh process; at ~1M also λ_max against curvlinops + eigsh and float32 against float64).

Peers install without replacing torch: ``pip install --no-deps PyHessian==0.1 hessian-eigenthings
curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 einops einconv opt-einsum linear_operator
unfoldNd`` (BackPACK's torchvision requirement is not needed for the Hessian operator).
Every measurement records ``os.getloadavg()``; Times are medians of repeats after a warm-up, all at one fixed ``torch.set_num_threads``.
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

import landscape as ls
from landscape.linalg import random_unit
from landscape.results import JsonResult

TARGETS = {"hvp_over_grad": 2.0, "eigs_n_hvp": 70, "eigs_speedup_vs_pyhessian_same_accuracy": 2.0,
           "eigs_speedup_vs_curvlinops": 5.0, "eigs_speedup_vs_power": 10.0, "cancellation_speedup_vs_vmap": 5.0,
           "per_example_speedup_vs_loop": 10.0, "scaling_peak_mem_vectors_1e7": 40.0,
           "lambda_max_1m_speedup_vs_curvlinops": 2.0}

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
        "curvlinops": _version("curvlinops-for-pytorch"), "hessian_eigenthings": _version("hessian-eigenthings"),
        "torch_build": torch_build(), "torch_interop_threads": torch.get_num_interop_threads(),
    }


def torch_build() -> str:
    """A one-line summary of the torch build: git revision, CUDA, BLAS, parallel backend, CPU ISA."""
    cfg = torch.__config__.show()
    import re
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    blas = m.group(1) if m else "?"
    par = torch.__config__.parallel_info().splitlines()
    backend = next((ln.split(":", 1)[1].strip() for ln in par if ln.startswith("ATen parallel backend")), "?")
    isa = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return (f"git {torch.version.git_version[:10]}, cuda {torch.version.cuda}, BLAS {blas}, "
            f"parallel {backend}, CPU capability {isa}, mkldnn {torch.backends.mkldnn.is_available()}")


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


def bench_ours(problem: BenchProblem, tol: float, repeats: int, warmup: int = 1, k: Any = (1, 5),
               which: str = "both") -> dict[str, Any]:
    """``extreme_eigs(k=(1, 5), which="both")`` (or the given k/which), timed from scratch
    (operator build included)."""
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


def bench_curvlinops(problem: BenchProblem, *, tol: float, repeats: int = 1, seed: int = 0, k_top: int = 5,
                     smallest: bool = True) -> dict[str, Any] | None:
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
        top_vals, top_vecs = eigsh(H, k=k_top, which="LA", tol=tol, v0=v0)
        if smallest:
            low_vals, low_vecs = eigsh(H, k=1, which="SA", tol=tol, v0=v0)
            top_vals, top_vecs = np.concatenate([low_vals, top_vals]), np.concatenate([low_vecs, top_vecs], axis=1)
        out["values"], out["vectors"] = top_vals, top_vecs

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


def bench_eigenthings(problem: BenchProblem, *, target: float, scale: float, steps: tuple[int, ...] | None = None,
                      seed: int = 0) -> dict[str, Any] | None:
    """hessian-eigenthings v1 ``lanczos`` (full reorthogonalisation) for the top-5 ('LA') and λ_min
    ('SA'): its Lanczos has a fixed number of steps (default 2k, too few), so the step count is
    raised along ``steps`` (default: ×1.5 from 20 / 30 / 40 steps for targets ≥ 1e-2 / ≥ 1e-3 / below,
    up to 200) until the measured residuals are ≤ ``target``·``scale``; the time is that of the first
    sufficient run (the search is not timed). None if the package is absent."""
    if steps is None:
        m, grid = (20 if target >= 1e-2 else 30 if target >= 1e-3 else 40), []
        while m <= 200:
            grid.append(m)
            m = int(m * 1.5)
        steps = tuple(grid)
    try:
        from hessian_eigenthings import HessianOperator as HEOp
        from hessian_eigenthings import lanczos as he_lanczos
        from hessian_eigenthings.loss_fns import supervised_loss
    except ImportError:
        return None
    op_ref = problem.obj.hvp_operator(problem.theta)
    model = copy.deepcopy(problem.model)
    counter = {"n": 0}

    def make_op():
        inner = HEOp(model, [(problem.inputs, problem.targets)], supervised_loss(problem.loss_fn))

        class Counted:
            size, device, dtype = inner.size, inner.device, inner.dtype

            def matvec(self, v: torch.Tensor) -> torch.Tensor:
                counter["n"] += 1
                return inner.matvec(v)

        return Counted()

    tried = []
    try:
        for m in steps:
            counter["n"] = 0
            t0 = time.perf_counter()
            op = make_op()
            top = he_lanczos(op, k=5, max_iter=m, which="LA", seed=seed, reorthogonalize=True, tol=target)
            low = he_lanczos(op, k=1, max_iter=m, which="SA", seed=seed, reorthogonalize=True, tol=target)
            elapsed = time.perf_counter() - t0
            V = torch.cat([low.eigenvectors, top.eigenvectors], dim=0).T
            _, rr = rel_residuals(op_ref, V, scale)
            tried.append({"max_iter": m, "time_s": elapsed, "n_hvp": counter["n"], "max_rel_residual": float(rr.max()),
                          "loadavg": _loadavg()})
            if float(rr.max()) <= target:
                vals = sorted(torch.cat([low.eigenvalues, top.eigenvalues]).double().tolist())
                return {"time_s": elapsed, "n_hvp": counter["n"], "max_iter": m, "max_rel_residual": float(rr.max()),
                        "values": vals, "reached": True, "tried": tried}
    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}", "tried": tried}
    last = tried[-1]
    return {"time_s": last["time_s"], "n_hvp": last["n_hvp"], "max_iter": last["max_iter"],
            "max_rel_residual": last["max_rel_residual"], "reached": False, "tried": tried}


ACCURACY_TARGETS = (1e-2, 1e-3, 1e-4)


def bench_accuracy(problem: BenchProblem, *, targets: tuple[float, ...] = ACCURACY_TARGETS, peers: bool = True,
                   power_max_iter: int = 2500, same_accuracy_repeats: int = 5,
                   progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Accuracy against time for top-5 + λ_min: at each residual target, every method's time,
    products and measured max residual ‖Hv − λv‖/|λ_max| (recomputed here with our operator, the
    same for all). PyHessian computes the top-5 only and has no residual control: it is run at its
    own tol ∈ targets and at its defaults; ``pyhessian_same_accuracy`` times ours (top-5 only) at
    the residual PyHessian's defaults achieve, both round-robin ``same_accuracy_repeats`` times
    (medians). Each measurement carries the load average."""
    out: dict[str, Any] = {"targets": list(targets), "ours": [], "power": [], "curvlinops": [], "hessian_eigenthings": [],
                           "pyhessian": []}
    out["reference_tol"] = min(targets) / 10
    ref = ls.extreme_eigs(problem.obj, problem.theta, k=(1, 6), tol=out["reference_tol"])
    scale = float(ref.values.abs().max())
    out["lambda_max"] = scale
    ref_top = sorted(ref.values.double().tolist())
    out["gap_5th_6th_rel"] = (ref_top[-5] - ref_top[-6]) / scale
    op = problem.obj.hvp_operator(problem.theta)

    def measured(vectors: torch.Tensor) -> float:
        return float(rel_residuals(op, vectors, scale)[1].max())

    top5 = ref_top[-5:]

    def value_error(values: list[float]) -> float:
        """max |λ_i − λ_i(ref)| / |λ_max| over the top-5, both sorted: a residual r only puts *an*
        eigenvalue within r of each value, so at a loose residual a pair can be the 6th one."""
        return max(abs(a - b) for a, b in zip(sorted(values)[-5:], top5)) / scale

    for t in targets:  # interleaved by target: load drift hits every method alike
        progress(f"accuracy {t:g}: ours")
        o = bench_ours(problem, t, repeats=1, warmup=0)
        out["ours"].append({"target": t, "time_s": o["time_s"], "n_hvp": o["n_hvp"], "values": o["values"],
                            "max_rel_residual": measured(o["_result"].vectors), "loadavg": _loadavg()})
        progress(f"accuracy {t:g}: power")
        pw = bench_power(problem, t, power_max_iter)
        out["power"].append({"target": t, "time_s": pw["time_s"], "n_hvp": pw["n_hvp"], "values": pw["values"],
                             "max_rel_residual": pw["max_rel_residual"] * abs(pw["values"][-1]) / scale,
                             "converged": pw["all_converged"], "loadavg": _loadavg()})
        if not peers:
            continue
        progress(f"accuracy {t:g}: curvlinops")
        c = bench_curvlinops(problem, tol=t)
        if c is not None and "error" not in c:
            out["curvlinops"].append({"target": t, "time_s": c["time_s"], "n_hvp": c["n_hvp"],
                                      "max_rel_residual": measured(c["_vectors"]), "loadavg": _loadavg()})
        progress(f"accuracy {t:g}: hessian-eigenthings")
        h = bench_eigenthings(problem, target=t, scale=scale)
        if h is not None and "error" not in h:
            out["hessian_eigenthings"].append({"target": t, **{k: v for k, v in h.items()}, "loadavg": _loadavg()})
        progress(f"accuracy {t:g}: pyhessian")
        ph = bench_pyhessian(problem, tol=t)
        if ph is not None and "error" not in ph:
            out["pyhessian"].append({"target": t, "pyhessian_tol": t, "time_s": ph["time_s"], "n_hvp": ph["n_hvp"],
                                     "max_rel_residual": measured(ph["_vectors"]), "loadavg": _loadavg()})
    if peers:
        progress("pyhessian defaults vs ours at the same accuracy")
        ph = bench_pyhessian(problem)
        if ph is not None and "error" not in ph:
            r_ph = measured(ph["_vectors"])
            tol_same = max(min(r_ph, 0.5), 1e-12)
            o = bench_ours(problem, tol_same, repeats=1, warmup=0, k=5, which="largest")
            r_o = measured(o["_result"].vectors)
            # One run each is at the mercy of a load blip on a shared 2-core machine: time both
            # round-robin, same_accuracy_repeats times each (after the runs above, so both are warm),
            # and compare medians.
            times = time_interleaved({
                "pyhessian": lambda: bench_pyhessian(problem),
                "ours": lambda: ls.extreme_eigs(problem.obj, problem.theta, k=5, which="largest", tol=tol_same),
            }, repeats=same_accuracy_repeats, warmup=0)
            t_ph, t_o = statistics.median(times["pyhessian"]), statistics.median(times["ours"])
            out["pyhessian_same_accuracy"] = {
                "pyhessian_default_time_s": t_ph, "pyhessian_default_times_s": times["pyhessian"],
                "pyhessian_default_n_hvp": ph["n_hvp"],
                "pyhessian_default_max_rel_residual": r_ph, "ours_top5_time_s": t_o,
                "ours_top5_times_s": times["ours"],
                "ours_top5_n_hvp": o["n_hvp"], "ours_top5_max_rel_residual": r_o,
                "pyhessian_default_max_rel_value_error": value_error(ph["values"]),
                "ours_top5_max_rel_value_error": value_error(o["values"]),
                "speedup": t_ph / t_o, "n_hvp_ratio": ph["n_hvp"] / max(o["n_hvp"], 1),
                "repeats": same_accuracy_repeats, "loadavg": _loadavg()}
    return out


def plot_accuracy(acc: dict[str, Any], path: str | os.PathLike) -> str:
    """Log-log plot of measured residual against time, one line per method; returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = {"ours": "ours (extreme_eigs)", "curvlinops": "curvlinops + eigsh", "power": "deflated power",
              "hessian_eigenthings": "hessian-eigenthings v1 lanczos", "pyhessian": "PyHessian (top-5 only)"}
    for key, label in labels.items():
        pts = [(p["time_s"], p["max_rel_residual"]) for p in acc.get(key, []) if p.get("max_rel_residual")]
        if pts:
            ax.loglog(*zip(*pts), marker="o", label=label)
    for t in acc["targets"]:
        ax.axhline(t, color="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("wall time (s), operator build included")
    ax.set_ylabel("max residual ‖Hv − λv‖ / |λ_max| (measured)")
    ax.set_title("top-5 + λ_min on the bench MLP: accuracy against time", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def bench_cancellation(problem: BenchProblem, repeats: int = 3, chunk_size: int = 250) -> dict[str, Any]:
    """``cancellation_stats`` by the outer-product path against the per-example (vmap) path
    (chunks of ``chunk_size`` examples), interleaved, with the largest relative difference."""
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
            "max_rel_diff": diff, "repeats": repeats, "loadavg": _loadavg()}


def make_cnn_problem(n_examples: int = 2000, *, dtype: torch.dtype = torch.float32, seed: int = 0) -> BenchProblem:
    """Seeded small CNN on 16×16 three-channel images: Conv2d(3, 16, 3, padding 1) + ReLU +
    Conv2d(16, 32, 3, stride 2) + ReLU + Linear(32·7·7, 10), CrossEntropy (dim 20 778); standard
    normal images, labels the argmax of a random linear teacher. Nothing is trained."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_examples, 3, 16, 16, generator=gen, dtype=torch.float64)
    y = (x.flatten(1) @ torch.randn(3 * 16 * 16, 10, generator=gen, dtype=torch.float64)).argmax(dim=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10)).to(dtype).eval()
    x = x.to(dtype)
    loss_fn = nn.CrossEntropyLoss()
    obj = ls.Objective.from_module(model, loss_fn, (x, y))
    desc = (f"CNN conv3x3(3->16, pad 1)-ReLU-conv3x3(16->32, stride 2)-ReLU-linear(1568->10), CrossEntropy, "
            f"{n_examples} synthetic 3x16x16 images, seed={seed}, {str(dtype).replace('torch.', '')}, dim={obj.dim}")
    return BenchProblem(model=model, loss_fn=loss_fn, inputs=x, targets=y, obj=obj,
                        theta=obj.initial_point(), description=desc)


def bench_cancellation_cnn(n_examples: int = 2000, *, dtype: torch.dtype = torch.float32, repeats: int = 3,
                           chunk_size: int = 250) -> dict[str, Any]:
    """:func:`bench_cancellation` on :func:`make_cnn_problem` (conv layers by unfold + bmm)."""
    problem = make_cnn_problem(n_examples, dtype=dtype)
    return {**bench_cancellation(problem, repeats=repeats, chunk_size=chunk_size), "problem": problem.description}


def bench_compile(problem: BenchProblem, repeats: int = 10) -> dict[str, Any]:
    """``torch.compile`` of the stateless HVP (torch.func vjp-of-grad) against the cached operator:
    compile time, per-product medians (interleaved) and agreement."""
    from torch.func import grad, vjp
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
            "helps": med["compiled"] < 0.9 * med["cached"], "loadavg": _loadavg()}


# ---------------------------------------------------------------------------- scaling
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
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def scaling_case(width: int, n_examples: int = 128, *, dtype: torch.dtype = torch.float32, tol: float = 1e-4,
                 repeats: int = 7, reference: bool = False, curvlinops: bool = False) -> dict[str, Any]:
    """One scaling point. The memory figure is the process's peak RSS during ``extreme_eigs(k=1,
    which="both")`` minus its RSS just before, the peak reset first where Linux allows
    (``eigs_peak_mem_exact``); otherwise an upper bound when an earlier peak was higher (run it in a
    fresh process then). ``reference``: also float64 eigenvalues of the same problem;
    ``curvlinops``: also λ_max by ours and by curvlinops + eigsh (side by side)."""
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
    load = _loadavg()
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
        out["lambda_max_loadavg"] = _loadavg()
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
    (``million_width``) also runs the float64 reference and the curvlinops λ_max comparison."""
    import json
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for w in widths:
        progress(f"scaling width {w}")
        extra = w == million_width
        code = ("import json, torch; from analyses.bench import scaling_case; "
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
    """Log-log plot of gradient, HVP and eigensolver time against dimension, and peak memory in vectors."""
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


# ---------------------------------------------------------------------------- the result
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


def _at(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
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
    smallest scaling sizes)."""
    problem = make_problem(n_examples, sizes, dtype=dtype)
    reps = {"hvp": 5 if quick else 15, "pe": 1 if quick else 3, "canc": 1 if quick else 3}
    # Per pair. At 1e-4 the bench MLP's top pair has λ2/λ1 ≈ 0.9948, so power needs ~ln(1e-4)/ln(0.9948)
    # ≈ 1 800 products for it alone: 2 500 lets the full bench converge (≈ 4 000 products in all);
    # when it does not, power_converged is False and eigs_speedup_vs_power is a lower bound.
    power_max_iter = power_max_iter or (40 if quick else 2500)
    targets = tuple(sorted({1e-2, tol}, reverse=True)) if quick else tuple(sorted(set(ACCURACY_TARGETS) | {tol}, reverse=True))
    show = (lambda msg: print(f"[bench] {msg} (load {_loadavg()})", file=sys.stderr, flush=True)) \
        if progress is not False else (lambda msg: None)
    load_before = _loadavg()
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
    ours = _at(acc["ours"], tol)
    assert ours is not None

    def speedup(key: str) -> float | None:
        p = _at(acc.get(key, []), tol)
        if p is None or (key == "hessian_eigenthings" and not p.get("reached", True)):
            return None
        return p["time_s"] / ours["time_s"]

    power = _at(acc["power"], tol)
    same = acc.get("pyhessian_same_accuracy")
    ph_default_ratio = None if same is None else same["pyhessian_default_time_s"] / ours["time_s"]
    agreement: dict[str, Any] = {
        "hvp_cached_vs_stateless_rel_diff": res["hvp"]["hvp_cached_vs_stateless_rel_diff"],
        "per_example_vs_loop_max_rel_diff": res["per_example"]["max_rel_diff_vs_loop"],
        "cancellation_fast_vs_vmap_max_rel_diff": res["cancellation"]["max_rel_diff"],
        "cancellation_cnn_fast_vs_vmap_max_rel_diff": res["cancellation_cnn"]["max_rel_diff"],
        "power_max_rel_eig_diff": None if power is None else _max_rel_diff(ours["values"], power["values"],
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


# ---------------------------------------------------------------------------- printing / CLI
def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def format_table(r: BenchResult) -> str:
    """The human-readable table of times and ratios."""
    t, d, m = r.timings, r.details, r.machine
    ms = lambda s: _fmt(None if s is None else 1e3 * s, ".1f")  # noqa: E731
    lines = [
        f"landscape bench{' --quick' if r.quick else ''}: {r.problem}",
        f"torch {m['torch']} ({m.get('torch_build')}), {m['torch_threads']} threads, "
        f"{m.get('torch_interop_threads')} interop threads, {m['cpu_count']} CPUs, {m['processor']}",
        f"load average before {m.get('loadavg_before')} -> after {m.get('loadavg_1_5_15')}: a shared machine "
        "inflates times; read the ratios (measured side by side)",
        "",
        f"HVP / gradient (full data, median of {d['hvp']['repeats']}, interleaved)",
        f"  gradient obj.grad                    {ms(t['grad_s']):>8s} ms   (plain loss.backward {ms(t['grad_plain_autograd_s'])} ms)",
        f"  cached hvp_operator(theta).matvec    {ms(t['hvp_cached_s']):>8s} ms   ratio {_fmt(r.hvp_over_grad)}"
        f"  (target <= {TARGETS['hvp_over_grad']:.1f})",
        f"  stateless obj.hvp                    {ms(t['hvp_stateless_s']):>8s} ms   ratio {_fmt(r.hvp_stateless_over_grad)}",
        "",
        "top-5 + λ_min: accuracy against time (residual measured with one operator for all; time incl. setup)",
        f"  {'method':<34s} " + "  ".join(f"{'res<=' + format(tg, 'g'):>24s}" for tg in r.accuracy["targets"]),
    ]
    names = {"ours": "ours extreme_eigs", "curvlinops": "curvlinops + scipy eigsh", "power": "deflated power iteration",
             "hessian_eigenthings": "hessian-eigenthings lanczos", "pyhessian": "PyHessian top-5 (its tol=target)"}
    for key, label in names.items():
        pts = r.accuracy.get(key) or []
        if not pts:
            lines.append(f"  {label:<34s} not installed / not run")
            continue
        cells = []
        for tg in r.accuracy["targets"]:
            p = _at(pts, tg)
            cells.append("-" if p is None else f"{p['time_s']:6.2f}s {p['n_hvp']:4d}HVP {p['max_rel_residual']:.0e}")
        lines.append(f"  {label:<34s} " + "  ".join(f"{c:>24s}" for c in cells))
    same = r.accuracy.get("pyhessian_same_accuracy")
    lines += [
        "",
        f"at residual {r.tol:g}: ours {t['eigs_ours_s']:.2f} s, {r.eigs_n_hvp} HVPs (target <= {TARGETS['eigs_n_hvp']}), "
        f"max residual {r.eigs_max_rel_residual:.1e}·|λmax|",
        f"  speedup vs curvlinops+eigsh x{_fmt(r.eigs_speedup_vs_curvlinops)} (target >= {TARGETS['eigs_speedup_vs_curvlinops']:.0f}), "
        f"vs power x{_fmt(r.eigs_speedup_vs_power)} (target >= {TARGETS['eigs_speedup_vs_power']:.0f})"
        + ("" if r.power_converged else " [power NOT converged: lower bound]")
        + f", vs hessian-eigenthings x{_fmt(r.eigs_speedup_vs_hessian_eigenthings)}",
    ]
    if same:
        lines.append(f"  PyHessian defaults: {same['pyhessian_default_time_s']:.2f} s, {same['pyhessian_default_n_hvp']} HVPs, "
                     f"residual {same['pyhessian_default_max_rel_residual']:.1e}; ours top-5 at that residual "
                     f"{same['ours_top5_time_s']:.2f} s, {same['ours_top5_n_hvp']} HVPs (residual "
                     f"{same['ours_top5_max_rel_residual']:.1e}): x{same['speedup']:.2f} in time, "
                     f"x{same['n_hvp_ratio']:.2f} in HVPs "
                     f"(target >= {TARGETS['eigs_speedup_vs_pyhessian_same_accuracy']:.0f})")
        if "ours_top5_max_rel_value_error" in same:
            lines.append(f"    top-5 eigenvalue error against a {r.accuracy['reference_tol']:g}-residual reference, "
                         f"/|λmax|: PyHessian {same['pyhessian_default_max_rel_value_error']:.1e}, ours "
                         f"{same['ours_top5_max_rel_value_error']:.1e} (a residual r puts *an* eigenvalue within r "
                         f"of each value; the 5th and 6th are {r.accuracy['gap_5th_6th_rel']:.1e}·|λmax| apart)")
    c = d["cancellation"]
    lines += [
        "",
        f"cancellation_stats, {c['n_examples']} examples: outer products {ms(c['median_s']['fast'])} ms, "
        f"vmap {ms(c['median_s']['vmap'])} ms: x{_fmt(r.cancellation_speedup_vs_vmap)} "
        f"(target >= {TARGETS['cancellation_speedup_vs_vmap']:.0f}), max rel diff {c['max_rel_diff']:.1e}",
        f"cancellation_stats on a small CNN, {d['cancellation_cnn']['n_examples']} examples: unfold + bmm "
        f"{ms(d['cancellation_cnn']['median_s']['fast'])} ms, vmap {ms(d['cancellation_cnn']['median_s']['vmap'])} ms: "
        f"x{_fmt(r.cancellation_speedup_vs_vmap_cnn)}, max rel diff {d['cancellation_cnn']['max_rel_diff']:.1e}",
        f"per-example gradients, batch {d['per_example']['batch']}: vmap {ms(t['per_example_vmap_s'])} ms, "
        f"loop {ms(t['per_example_loop_s'])} ms: x{_fmt(r.per_example_speedup_vs_loop)}",
    ]
    if r.compile:
        cp = r.compile
        lines.append("torch.compile HVP: " + (f"failed: {cp['error']}" if "error" in cp else
                     f"compile {cp['compile_s']:.1f} s, compiled/cached per product x{cp['compiled_over_cached']:.2f}"
                     f" ({'helps' if cp['helps'] else 'does not help'} here)"))
    if r.scaling:
        lines += ["", "scaling (MLP 64-w-w-10, 128 examples, float32; extreme_eigs(k=1, which='both'), tol 1e-4)",
                  f"  {'dim':>10s} {'grad s':>8s} {'hvp s':>8s} {'hvp ns/param':>12s} {'eigs s':>8s} {'HVPs':>5s} "
                  f"{'conv':>5s} {'peak MiB':>9s} {'vectors':>8s}  load"]
        for sc in r.scaling:
            if "error" in sc:
                lines.append(f"  width {sc['width']}: failed: {sc['error']}")
                continue
            lines.append(f"  {sc['dim']:>10d} {sc['grad_s']:8.3f} {sc['hvp_s']:8.3f} {1e9 * sc['hvp_s'] / sc['dim']:12.2f} "
                         f"{sc['eigs_s']:8.2f} {sc['eigs_n_hvp']:5d} {str(sc['eigs_converged']):>5s} "
                         f"{sc['eigs_peak_mem_bytes'] / 2**20:9.1f} {sc['eigs_peak_mem_vectors']:8.1f}  {sc['loadavg']}")
            if "lambda_max_speedup_vs_curvlinops" in sc or "float32_vs_float64_max_rel_diff" in sc:
                lines.append(f"    ~1M: λ_max ours {sc.get('lambda_max_ours_s', float('nan')):.2f} s vs curvlinops+eigsh "
                             f"{sc.get('lambda_max_curvlinops_s', float('nan')):.2f} s: "
                             f"x{_fmt(sc.get('lambda_max_speedup_vs_curvlinops'))}; float32 vs float64 eigenvalues "
                             f"max rel diff {_fmt(sc.get('float32_vs_float64_max_rel_diff'), '.1e')}")
    if r.figures:
        lines += ["", "figures: " + ", ".join(r.figures)]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Values are parsed as strings and validated in run(), before any work, into one-line errors.
    parser.add_argument("--quick", action="store_true", help="fewer repeats, capped baseline, two accuracy targets")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON (untracked: it holds timings)")
    parser.add_argument("--dtype", default="float32", help="problem dtype: float32 (default) or float64")
    parser.add_argument("--threads", default=None, help="torch threads (default: all CPU cores)")
    parser.add_argument("--tol", default="1e-4", help="relative residual of the headline numbers (default 1e-4)")
    parser.add_argument("--no-peers", action="store_true", help="skip PyHessian, curvlinops, hessian-eigenthings")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the HVP (slow to compile)")
    parser.add_argument("--scaling", action="store_true", help="also measure MLPs from 1e5 to 1e7 parameters")
    parser.add_argument("--figures", metavar="DIR", default="runs/bench",
                        help="folder for the accuracy/scaling plots; they hold timings, so the default runs/bench is untracked")


def _validate(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """Checked options, or a one-line error naming the bad one."""
    if args.dtype not in _DTYPES:
        return {}, f"--dtype must be one of {sorted(_DTYPES)}, got {args.dtype!r}"
    try:
        tol = float(args.tol)
    except ValueError:
        return {}, f"--tol must be a number, got {args.tol!r}"
    if not (0 < tol < 1):
        return {}, f"--tol must lie in (0, 1), got {args.tol}"
    threads = None
    if args.threads is not None:
        try:
            threads = int(args.threads)
        except ValueError:
            return {}, f"--threads must be a positive integer, got {args.threads!r}"
        if threads < 1:
            return {}, f"--threads must be a positive integer, got {args.threads}"
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(parent):
            return {}, f"--json: folder {parent} does not exist"
        if os.path.isdir(args.json):
            return {}, f"--json: {args.json} is a folder, not a file"
    if args.figures and os.path.exists(args.figures) and not os.path.isdir(args.figures):
        return {}, f"--figures: {args.figures} exists and is not a folder"
    return {"tol": tol, "threads": threads or os.cpu_count() or 1, "dtype": _DTYPES[args.dtype]}, None


def run(args: argparse.Namespace) -> int:
    opts, err = _validate(args)
    if err:
        print(f"landscape bench: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(opts["threads"])
    print(f"[bench] torch {torch.__version__} ({torch_build()}), {torch.get_num_threads()} threads, "
          f"load {_loadavg()}", file=sys.stderr)
    result = run_bench(quick=args.quick, dtype=opts["dtype"], tol=opts["tol"], peers=not args.no_peers,
                       compile=args.compile, scaling=args.scaling, figures_dir=args.figures or None)
    print(format_table(result))
    if args.json:
        path = result.save_json(args.json)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from analyses.cli import main

    raise SystemExit(main(["bench", *sys.argv[1:]]))
