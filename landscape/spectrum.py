"""Stochastic spectral estimates: Hutchinson trace and stochastic Lanczos quadrature (SLQ)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .lanczos import lanczos
from .results import JsonResult

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


def _rademacher(dim: int, gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).to(device=device, dtype=dtype)


@dataclass
class TraceEstimate(JsonResult):
    """Hutchinson estimate of tr H: ``estimate`` ± ``stderr`` from ``n_samples`` Rademacher probes."""

    estimate: float
    stderr: float
    n_samples: int
    samples: list[float]


def hessian_trace(obj: "Objective", theta: torch.Tensor, n_samples: int = 100, seed: int = 0,
                  operator=None) -> TraceEstimate:
    """Hutchinson's estimator E[vᵀHv] with Rademacher v (exact when H is diagonal)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    op = operator if operator is not None else obj.hvp_operator(theta)
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n_samples):
        v = _rademacher(obj.dim, gen, obj.dtype, obj.device)
        samples.append(float(torch.dot(v, op.matvec(v))))
    s = torch.tensor(samples, dtype=torch.float64)
    stderr = float(s.std(unbiased=True) / math.sqrt(n_samples)) if n_samples > 1 else float("inf")
    return TraceEstimate(estimate=float(s.mean()), stderr=stderr, n_samples=n_samples, samples=samples)


@dataclass
class SpectralDensity(JsonResult):
    """SLQ estimate of the Hessian's eigenvalue density.

    ``density`` (n_grid,) on ``grid`` (n_grid,) integrates to ≈ 1 (multiply by ``dim`` for an
    eigenvalue count density). ``nodes``/``weights`` (n_runs, n_steps) are the Gauss quadrature
    nodes (Ritz values) and weights of each run; ``sigma`` is the Gaussian broadening width.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    dim: int

    def mass_between(self, lo: float, hi: float) -> float:
        """Fraction of eigenvalues in [lo, hi] according to the quadrature (no broadening)."""
        mask = (self.nodes >= lo) & (self.nodes <= hi)
        return float((self.weights * mask).sum(1).mean())

    def moment(self, p: int) -> float:
        """Estimate of tr(Hᵖ)/dim."""
        return float((self.weights * self.nodes ** p).sum(1).mean())


def spectral_density(obj: "Objective", theta: torch.Tensor, n_runs: int = 10, n_steps: int = 80,
                     seed: int = 0, *, n_grid: int = 1000, sigma: float | None = None,
                     reorth: str = "full", operator=None) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``n_runs`` Rademacher starts of ``n_steps`` steps each.

    ``sigma`` defaults to 1% of the estimated spectral range.
    """
    if n_runs < 1 or n_steps < 1:
        raise ValueError(f"n_runs and n_steps must be positive, got {n_runs}, {n_steps}")
    op = operator if operator is not None else obj.hvp_operator(theta)
    gen = torch.Generator().manual_seed(seed)
    steps = min(n_steps, obj.dim)
    nodes = torch.zeros(n_runs, steps, dtype=torch.float64)
    weights = torch.zeros(n_runs, steps, dtype=torch.float64)
    for r in range(n_runs):
        v = _rademacher(obj.dim, gen, obj.dtype, obj.device)
        run = lanczos(op.matvec, v, steps, reorth=reorth, generator=gen)
        vals, S = torch.linalg.eigh(run.tridiagonal())
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
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma, dim=obj.dim)
