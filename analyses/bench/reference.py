"""The benchmark's textbook reference eigensolver (deflated power iteration) and the residuals every
method is measured with."""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import landscape as ls
from landscape.linalg import random_unit
from landscape.results import JsonResult

from .problems import BenchProblem
from .timing import time_call


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
        """The result without its vectors.

        Returns:
            The JSON-able fields, without the vectors.
        """
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
    found, or after ``max_iter`` products.

    Args:
        matvec: v ↦ Hv on (dim,) vectors.
        dim: the dimension.
        k: top eigenpairs wanted.
        smallest: also find λ_min.
        tol: the residual target, relative to |λ_dom|, in (0, 1).
        max_iter: products per pair at most.
        seed: seed of the start vectors.
        dtype: the vectors' dtype.
        device: the vectors' device.
        max_extra: negative eigenvalues met on the way (deflated and dropped) at most.

    Returns:
        :class:`PowerResult`: ``values`` the top ``k`` descending, then λ_min.

    Raises:
        ValueError: ``k``, ``tol`` or ``max_iter`` out of range.
        RuntimeError: fewer than ``k`` non-negative eigenvalues found.
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


def bench_power(problem: BenchProblem, tol: float, max_iter: int, repeats: int = 1) -> dict[str, Any]:
    """Time the deflated power-iteration baseline on the cached operator (operator build included).

    Args:
        problem: the benchmark problem.
        tol: residual target relative to |λ_dom|.
        max_iter: products per pair at most.
        repeats: timed runs.

    Returns:
        Times, eigenvalues (ascending), products, iterations per pair, the top-5 time, the max
        relative residual and whether every pair converged.
    """
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


def rel_residuals(op: ls.HessianOperator, vectors: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals of approximate eigenvectors, measured with one operator for every method.

    Args:
        op: the Hessian operator at the problem's point.
        vectors: approximate eigenvectors as columns (dim, m); normalised here.
        scale: the residuals' unit (|λ_max|).

    Returns:
        ``(Rayleigh quotients (m,), ‖Hv − λv‖/scale (m,))``, float64 on the CPU.
    """
    V = vectors.to(dtype=op.dtype, device=op.device)
    V = V / torch.linalg.vector_norm(V, dim=0, keepdim=True)
    HV = torch.stack([op.matvec(V[:, i]) for i in range(V.shape[1])], dim=1)
    lam = (V * HV).sum(0)
    res = torch.linalg.vector_norm(HV - V * lam, dim=0) / scale
    return lam.double().cpu(), res.double().cpu()


def max_rel_diff(a: Any, b: Any, scale: float) -> float:
    """Args:
        a: eigenvalues of one method.
        b: eigenvalues of another.
        scale: the unit (|λ_max|).

    Returns:
        max |a_i − b_i| / scale over the common length, both sorted descending.
    """
    a = np.sort(np.asarray(a, dtype=np.float64))[::-1]
    b = np.sort(np.asarray(b, dtype=np.float64))[::-1]
    m = min(len(a), len(b))
    return float(np.max(np.abs(a[:m] - b[:m])) / scale)
