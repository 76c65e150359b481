"""Adapters for the benchmark's peers — PyHessian, curvlinops + SciPy ``eigsh``, hessian-eigenthings
v1 — each optional (None when not installed, ``{"error"}`` when it fails) and imported only when run."""
from __future__ import annotations

import copy
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from .problems import BenchProblem
from .reference import rel_residuals
from .timing import loadavg, time_call


def bench_pyhessian(problem: BenchProblem, *, tol: float = 1e-3, max_iter: int = 100, repeats: int = 1,
                    seed: int = 0) -> dict[str, Any] | None:
    """PyHessian's ``hessian(...).eigenvalues(top_n=5)`` on the single full batch.

    Args:
        problem: the benchmark problem.
        tol: PyHessian's own tolerance (it has no residual control).
        max_iter: its iteration cap.
        repeats: timed runs.
        seed: the global seed during its run.

    Returns:
        Times, its HVPs (counted), the top-5 eigenvalues and vectors (``"_vectors"``); ``{"error"}``
        when it fails; None when PyHessian is not installed.
    """
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
    """curvlinops ``HessianLinearOperator(...).to_scipy()`` + SciPy ``eigsh``.

    Args:
        problem: the benchmark problem.
        tol: ARPACK's tolerance.
        repeats: timed runs.
        seed: seed of the start vector.
        k_top: largest eigenpairs ('LA').
        smallest: also λ_min ('SA').

    Returns:
        Times, HVPs (counted), eigenvalues (ascending) and vectors (``"_vectors"``); ``{"error"}``
        when it fails; None when curvlinops is not installed.
    """
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


def bench_eigenthings(problem: BenchProblem, *, target: float, scale: float, steps: tuple[int, ...] | None = None,
                      seed: int = 0) -> dict[str, Any] | None:
    """hessian-eigenthings v1 ``lanczos`` (full reorthogonalisation) for the top-5 ('LA') and λ_min
    ('SA'): its Lanczos has a fixed number of steps (default 2k, too few), so the step count is
    raised along ``steps`` (default: ×1.5 from 20 / 30 / 40 steps for targets ≥ 1e-2 / ≥ 1e-3 / below,
    up to 200) until the measured residuals are ≤ ``target``·``scale``; the time is that of the first
    sufficient run (the search is not timed).

    Args:
        problem: the benchmark problem.
        target: the residual target relative to ``scale``.
        scale: |λ_max|.
        steps: the step counts to try.
        seed: its seed.

    Returns:
        Time, HVPs, steps and residual of the first sufficient run (``reached``) or of the last
        one tried, every try; ``{"error"}`` when it fails; None when the package is not installed.
    """
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
                          "loadavg": loadavg()})
            if float(rr.max()) <= target:
                vals = sorted(torch.cat([low.eigenvalues, top.eigenvalues]).double().tolist())
                return {"time_s": elapsed, "n_hvp": counter["n"], "max_iter": m, "max_rel_residual": float(rr.max()),
                        "values": vals, "reached": True, "tried": tried}
    except Exception as exc:  # noqa: BLE001 - a peer that cannot run is recorded, not fatal
        return {"error": f"{type(exc).__name__}: {exc}", "tried": tried}
    last = tried[-1]
    return {"time_s": last["time_s"], "n_hvp": last["n_hvp"], "max_iter": last["max_iter"],
            "max_rel_residual": last["max_rel_residual"], "reached": False, "tried": tried}
