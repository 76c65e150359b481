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


def _operator(obj: "Objective", theta: torch.Tensor, operator, curvature: str):
    if operator is not None:
        return operator
    if curvature not in ("hessian", "ggn", "ef"):
        raise ValueError(f"curvature must be 'hessian', 'ggn' or 'ef', got {curvature!r}")
    obj.loss(theta)  # NaN anywhere (data, theta) -> NonFiniteError naming the batch, before any product
    return obj.curvature_operator(theta, curvature)


def _finite_sample(value: float, what: str, i: int) -> float:
    if not math.isfinite(value):
        from .objective import NonFiniteError
        raise NonFiniteError(f"{what} sample {i} is {value}")
    return value


def hessian_trace(obj: "Objective", theta: torch.Tensor, n_samples: int = 100, seed: int = 0,
                  operator=None, *, curvature: str = "hessian") -> TraceEstimate:
    """Hutchinson's estimator E[vᵀMv] with Rademacher v (exact when M is diagonal), M the Hessian or
    ``curvature="ggn"`` / ``"ef"`` (see :mod:`landscape.curvature`). Identical on every rank of a
    distributed objective (same seeded probes, all-reduced products)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    op = _operator(obj, theta, operator, curvature)
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n_samples):
        v = _rademacher(obj.dim, gen, obj.dtype, obj.device)
        samples.append(_finite_sample(float(torch.dot(v, op.matvec(v))), "Hutchinson", i))
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
                     reorth: str = "full", operator=None, curvature: str = "hessian") -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``n_runs`` Rademacher starts of ``n_steps`` steps each, of
    the Hessian or ``curvature="ggn"`` / ``"ef"``.

    ``sigma`` defaults to 1% of the estimated spectral range.
    """
    if n_runs < 1 or n_steps < 1:
        raise ValueError(f"n_runs and n_steps must be positive, got {n_runs}, {n_steps}")
    op = _operator(obj, theta, operator, curvature)
    gen = torch.Generator().manual_seed(seed)
    steps = min(n_steps, obj.dim)
    nodes = torch.zeros(n_runs, steps, dtype=torch.float64)
    weights = torch.zeros(n_runs, steps, dtype=torch.float64)
    for r in range(n_runs):
        v = _rademacher(obj.dim, gen, obj.dtype, obj.device)
        run = lanczos(op.matvec, v, steps, reorth=reorth, generator=gen)
        T = run.tridiagonal()
        if not bool(torch.isfinite(T).all()):
            from .objective import NonFiniteError
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
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma, dim=obj.dim)


@dataclass
class BlockExtremes(JsonResult):
    """Extreme eigenvalues of the diagonal blocks of a curvature matrix (one block per layer).

    ``blocks``: one dict per block, in parameter order, with ``block`` (module path, or the name
    given), ``params`` (parameter names), ``dim``, ``smallest``/``largest`` (float), ``converged``
    (bool, both ends met ``tol`` relative to the block's spectral scale), ``n_hvp``.
    The block of a layer is the curvature of the loss as a function of that layer's parameters alone,
    the others fixed (PyHessian-style per-layer spectra).
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
    :func:`landscape.lanczos.extreme_eigs`.
    """
    from .lanczos import extreme_eigs

    theta = obj.check_theta(theta).detach()
    if blocks is None:
        blocks = {}
        for name in obj.param_names:
            blocks.setdefault(_layer_of(name), []).append(name)
    used_tol = tol if tol is not None else (1e-8 if obj.dtype == torch.float64 else 1e-4)
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
            r = extreme_eigs(sub, t_sub, 1, "both", tol=tol, max_iter=max_iter, seed=seed, operator=op)
            lo, hi = float(r.values[0]), float(r.values[-1])
            conv, n_hvp = bool(r.converged.all()), int(r.n_hvp)
        out.append({"block": label, "params": list(sub.param_names), "dim": sub.dim, "smallest": lo,
                    "largest": hi, "converged": conv, "n_hvp": n_hvp})
    return BlockExtremes(blocks=out, curvature=curvature, tol=used_tol)
