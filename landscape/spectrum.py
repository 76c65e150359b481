"""Spectral estimates of a curvature operator: Hutchinson trace, SLQ density, per-block extremes.

- :func:`hessian_trace`: Hutchinson's estimator of tr M → :class:`TraceEstimate`;
- :func:`spectral_density`: stochastic Lanczos quadrature (SLQ) → :class:`SpectralDensity`;
- :func:`per_block_extremes`: extreme eigenvalues of each layer's diagonal block → :class:`BlockExtremes`.

The first two take an operator (``hessian_trace(op, n_samples=...)``) or an objective and a point
(``hessian_trace(obj, theta, ...)``, the operator chosen by :func:`landscape.operators.make_operator`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .eigs import extreme_eigs
from .errors import NonFiniteError
from .linalg import lanczos
from .operators import check_curvature, is_operator
from .results import JsonResult
from .tolerances import default_solver_tol

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


def _rademacher(dim: int, gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class TraceEstimate(JsonResult):
    """Hutchinson estimate of tr M: ``estimate`` ± ``stderr`` from ``n_samples`` Rademacher probes.

    Attributes:
        estimate: the mean of the samples vᵀMv (curvature units × dim).
        stderr: its standard error (inf for one sample).
        n_samples: the number of probes.
        samples: every vᵀMv, in order.

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> t = hessian_trace(DiagonalOperator(torch.tensor([1.0, 2.0], dtype=torch.float64)), n_samples=2)
        >>> t.estimate, t.stderr, t.samples
        (3.0, 0.0, [3.0, 3.0])
    """

    estimate: float
    stderr: float
    n_samples: int
    samples: list[float]


def _operator(source: Any, theta: torch.Tensor | None, operator: Any, curvature: str, what: str) -> Any:
    """The operator to work on: ``source`` when it is one, ``operator`` when given, else the
    objective's ``curvature`` matrix at ``theta`` (after a loss evaluation that names a batch holding NaN)."""
    if is_operator(source):
        if theta is not None or operator is not None:
            raise TypeError(f"{what}(op, ...) takes the operator alone: pass the other arguments by keyword")
        return source
    if operator is not None:
        return operator
    check_curvature(curvature)
    source.loss(theta)  # NaN anywhere (data, theta) -> NonFiniteError naming the batch, before any product
    return source.curvature_operator(theta, curvature)


def _space(source: Any) -> tuple[int, torch.dtype, torch.device]:
    return int(source.dim), source.dtype, source.device


def _finite_sample(value: float, what: str, i: int) -> float:
    if not math.isfinite(value):
        raise NonFiniteError(f"{what} sample {i} is {value}")
    return value


def hessian_trace(source: Any, theta: torch.Tensor | None = None, n_samples: int = 100, seed: int = 0,
                  operator: Any = None, *, curvature: str = "hessian") -> TraceEstimate:
    """Hutchinson's estimator E[vᵀMv] with Rademacher v (exact when M is diagonal).

    Identical on every rank of a distributed objective (same seeded probes, all-reduced products).

    Args:
        source: a curvature operator, or an :class:`landscape.Objective` (with ``theta``).
        theta: with an objective, the point (dim,); leave it out with an operator.
        n_samples: Rademacher probes (≥ 1), each one operator product.
        seed: seeds the probes (drawn on the CPU).
        operator: with an objective, a prepared operator to use.
        curvature: with an objective, ``"hessian"`` (default), ``"ggn"`` or ``"ef"``.

    Returns:
        :class:`TraceEstimate`.

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> hessian_trace(DiagonalOperator(torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)), n_samples=3).estimate
        2.5
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    op = _operator(source, theta, operator, curvature, "hessian_trace")
    dim, dtype, device = _space(source)
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n_samples):
        v = _rademacher(dim, gen, dtype, device)
        samples.append(_finite_sample(float(torch.dot(v, op.matvec(v))), "Hutchinson", i))
    s = torch.tensor(samples, dtype=torch.float64)
    stderr = float(s.std(unbiased=True) / math.sqrt(n_samples)) if n_samples > 1 else float("inf")
    return TraceEstimate(estimate=float(s.mean()), stderr=stderr, n_samples=n_samples, samples=samples)


@dataclass(frozen=True)
class SpectralDensity(JsonResult):
    """SLQ estimate of a curvature matrix's eigenvalue density.

    Attributes:
        grid: (n_grid,) float64 eigenvalue axis (curvature units).
        density: (n_grid,) float64 on ``grid``, integrating to ≈ 1 (multiply by ``dim`` for an
            eigenvalue count density).
        nodes, weights: (n_runs, n_steps) float64 Gauss quadrature nodes (Ritz values) and weights
            of each run (padded nodes of an early breakdown have weight 0).
        sigma: the Gaussian broadening width (curvature units).
        dim: the operator's dimension.

    Example: see :func:`spectral_density`.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    dim: int

    def mass_between(self, lo: float, hi: float) -> float:
        """Fraction of eigenvalues in [lo, hi] according to the quadrature (no broadening).

        Args:
            lo, hi: the interval (curvature units).

        Returns:
            The fraction in [0, 1], averaged over the runs.
        """
        mask = (self.nodes >= lo) & (self.nodes <= hi)
        return float((self.weights * mask).sum(1).mean())

    def moment(self, p: int) -> float:
        """Estimate of tr(Mᵖ)/dim.

        Args:
            p: the power (p = 1: the mean eigenvalue).

        Returns:
            The quadrature estimate, averaged over the runs.
        """
        return float((self.weights * self.nodes ** p).sum(1).mean())


def spectral_density(source: Any, theta: torch.Tensor | None = None, n_runs: int = 10, n_steps: int = 80,
                     seed: int = 0, *, n_grid: int = 1000, sigma: float | None = None,
                     reorth: str = "full", operator: Any = None, curvature: str = "hessian") -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``n_runs`` Rademacher starts of ``n_steps`` steps each.

    Args:
        source: a curvature operator, or an :class:`landscape.Objective` (with ``theta``).
        theta: with an objective, the point (dim,); leave it out with an operator.
        n_runs: Rademacher start vectors.
        n_steps: Lanczos steps per run (at most dim), each one operator product.
        seed: seeds the starts (and breakdown restarts).
        n_grid: points of the density grid.
        sigma: Gaussian broadening (default 1% of the estimated spectral range).
        reorth: ``"full"`` reorthogonalisation (default) or ``"none"`` (the plain recurrence).
        operator: with an objective, a prepared operator to use.
        curvature: with an objective, ``"hessian"`` (default), ``"ggn"`` or ``"ef"``.

    Returns:
        :class:`SpectralDensity`.

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> sd = spectral_density(DiagonalOperator(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)), n_runs=2)
        >>> round(sd.moment(1), 12), round(sd.mass_between(0.5, 2.5), 6)
        (2.5, 0.5)
    """
    if n_runs < 1 or n_steps < 1:
        raise ValueError(f"n_runs and n_steps must be positive, got {n_runs}, {n_steps}")
    op = _operator(source, theta, operator, curvature, "spectral_density")
    dim, dtype, device = _space(source)
    gen = torch.Generator().manual_seed(seed)
    steps = min(n_steps, dim)
    nodes = torch.zeros(n_runs, steps, dtype=torch.float64)
    weights = torch.zeros(n_runs, steps, dtype=torch.float64)
    for r in range(n_runs):
        v = _rademacher(dim, gen, dtype, device)
        run = lanczos(op.matvec, v, steps, reorth=reorth, generator=gen)
        T = run.tridiagonal()
        if not bool(torch.isfinite(T).all()):
            raise NonFiniteError(f"SLQ run {r}: the Lanczos tridiagonal matrix is non-finite")
        vals, S = torch.linalg.eigh(T)
        m = vals.numel()
        nodes[r, :m] = vals
        weights[r, :m] = S[0, :] ** 2  # padded nodes (early breakdown) keep weight 0
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    if sigma is None:
        sigma = 0.01 * span
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid, dtype=torch.float64)
    kern = torch.exp(-0.5 * ((grid[:, None, None] - nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = (kern * weights[None]).sum(-1).mean(-1)
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma, dim=dim)


@dataclass(frozen=True)
class BlockExtremes(JsonResult):
    """Extreme eigenvalues of the diagonal blocks of a curvature matrix (one block per layer).

    ``blocks``: one dict per block, in parameter order, with ``block`` (module path, or the name
    given), ``params`` (parameter names), ``dim``, ``smallest``/``largest`` (float), ``converged``
    (bool, both ends met ``tol`` relative to the block's spectral scale), ``n_hvp``.
    The block of a layer is the curvature of the loss as a function of that layer's parameters alone,
    the others fixed (PyHessian-style per-layer spectra). ``curvature``: the matrix;
    ``tol``: the eigensolver's relative tolerance.

    Example: see :func:`per_block_extremes`.
    """

    blocks: list[dict]
    curvature: str
    tol: float


def _layer_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def per_block_extremes(obj: "Objective", theta: torch.Tensor, blocks: dict[str, list[str]] | None = None, *,
                       curvature: str = "hessian", tol: float | None = None, max_iter: int | None = None,
                       seed: int = 0) -> BlockExtremes:
    """Smallest and largest eigenvalue of each diagonal block of the Hessian (or ``"ggn"``/``"ef"``).

    ``blocks``: ``{label: [parameter names or glob patterns]}``; default: one block per module owning
    parameters (``"fc1"`` holds ``fc1.weight`` and ``fc1.bias``). Each block is evaluated through
    :meth:`Objective.restrict` (the other parameters fixed at ``theta``) with
    :func:`landscape.extreme_eigs`.

    Args:
        obj: a model objective.
        theta: the point, shape ``(dim,)``.
        blocks: ``{label: [parameter names or glob patterns]}`` (default: one block per module).
        curvature: ``"hessian"`` (default), ``"ggn"`` or ``"ef"``.
        tol: relative residual tolerance of each block's eigensolver (default by dtype).
        max_iter: Lanczos steps per block (default 400).
        seed: seeds each block's eigensolver.

    Returns:
        :class:`BlockExtremes`, one entry per block in parameter order.

    Example:
        >>> import torch, landscape as ls
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).double()
        >>> X, Y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> [(b["block"], b["dim"]) for b in per_block_extremes(obj, obj.initial_point()).blocks]
        [('0', 6), ('2', 3)]
    """
    theta = obj.check_theta(theta).detach()
    if blocks is None:
        blocks = {}
        for name in obj.param_names:
            blocks.setdefault(_layer_of(name), []).append(name)
    used_tol = tol if tol is not None else default_solver_tol(obj.dtype)
    out = []
    full = obj.spec.unflatten(theta)
    for label, patterns in blocks.items():
        sub = obj.restrict(list(patterns), theta)
        t_sub = sub.flatten_params({n: full[n] for n in sub.param_names})
        op = sub.curvature_operator(t_sub, curvature)
        if sub.dim == 1:
            v = torch.ones(1, dtype=sub.dtype, device=sub.device)
            lam = float(op.matvec(v)[0])
            lo = hi = lam
            conv, n_hvp = True, 1
        else:
            r = extreme_eigs(op, k=1, which="both", tol=tol, max_iter=max_iter, seed=seed)
            lo, hi = float(r.values[0]), float(r.values[-1])
            conv, n_hvp = bool(r.converged.all()), int(r.n_hvp)
        out.append({"block": label, "params": list(sub.param_names), "dim": sub.dim, "smallest": lo,
                    "largest": hi, "converged": conv, "n_hvp": n_hvp})
    return BlockExtremes(blocks=out, curvature=curvature, tol=used_tol)
