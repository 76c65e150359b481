"""Spectral estimates of a curvature operator: Hutchinson trace, SLQ density, per-block extremes.

- :func:`hessian_trace`: Hutchinson's estimator of tr M → :class:`TraceEstimate`;
- :func:`spectral_density`: stochastic Lanczos quadrature (SLQ) → :class:`SpectralDensity` (smoothed per
  node from the Ritz values' own spacing and residuals; :meth:`SpectralDensity.negative_mass` says how
  much of the spectrum lies below zero and how sure that is; ``.plot`` / ``.to_html`` draw it);
- :func:`per_block_extremes`: extreme eigenvalues of each layer's diagonal block → :class:`BlockExtremes`.

Results that did not converge say so with one :class:`landscape.ConvergenceWarning` per call
(``warn=False`` or the ``warnings`` filters silence it; the numbers are the same either way).

The first two take an operator (``hessian_trace(op, n_samples=...)``) or an objective and a point
(``hessian_trace(obj, theta, ...)``, the operator chosen by :func:`landscape.operators.make_operator`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .eigs import extreme_eigs, unconverged_message
from .errors import ConvergenceWarning, NonFiniteError
from .linalg import lanczos
from .operators import check_curvature, is_operator
from .render_density import density_png, write_density_html
from .results import JsonResult
from .tolerances import default_solver_tol, roundoff_allowance

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


#: a trace estimate is resolved when |estimate| > TRACE_Z·stderr (its normal 95 % interval excludes 0)
TRACE_Z = 1.96


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
                  operator: Any = None, *, curvature: str = "hessian", warn: bool = True) -> TraceEstimate:
    """Hutchinson's estimator E[vᵀMv] with Rademacher v (exact when M is diagonal).

    Identical on every rank of a distributed objective (same seeded probes, all-reduced products).
    Not converged, with one :class:`landscape.ConvergenceWarning`, when the estimate has no
    significant digit: its normal 95 % interval ``estimate ± 1.96·stderr`` contains 0 (the sign is
    not resolved; always so with one probe, whose standard error is unknown). The standard error
    falls as 1/√n_samples.

    Args:
        source: a curvature operator, or an :class:`landscape.Objective` (with ``theta``).
        theta: with an objective, the point (dim,); leave it out with an operator.
        n_samples: Rademacher probes (≥ 1), each one operator product.
        seed: seeds the probes (drawn on the CPU).
        operator: with an objective, a prepared operator to use.
        curvature: with an objective, ``"hessian"`` (default), ``"ggn"`` or ``"ef"``.
        warn: warn when the estimate has no significant digit (above); ``False`` silences it.

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
    est = TraceEstimate(estimate=float(s.mean()), stderr=stderr, n_samples=n_samples, samples=samples)
    if warn and not abs(est.estimate) > TRACE_Z * est.stderr:
        warnings.warn(f"hessian_trace: the estimate {est.estimate:.4g} ± {est.stderr:.2g} (standard error over "
                      f"{n_samples} Rademacher probes) has no significant digit: its 95 % interval ±{TRACE_Z}·stderr "
                      "contains 0; raise n_samples (the standard error falls as 1/√n_samples)",
                      ConvergenceWarning, stacklevel=2)
    return est


@dataclass(frozen=True)
class NegativeMass(JsonResult):
    """How much of a spectral density lies below a threshold, and what each number means.

    Attributes:
        threshold: eigenvalues below it count (default −``SpectralDensity.roundoff``: below zero by
            more than round-off).
        ritz: the quadrature's estimate: the Gauss weight on Ritz values below ``threshold``,
            averaged over the runs (the fraction of eigenvalues there, up to quadrature resolution).
        lower, upper: Gauss-quadrature bounds on that fraction (Chebyshev-Markov-Stieltjes
            inequalities, averaged over the runs): ``ritz`` less the weight of the last node below
            the threshold, ``ritz`` plus the weight of the first node above it. Exact per run; the
            runs' average estimates the spectrum's with ``stderr``.
        stderr: standard error of ``ritz`` over the runs (nan for one run).
        smoothed: the smoothed curve's mass below ``threshold`` (``density`` integrated).
        leakage: ``smoothed − ritz``: what the smoothing moved across the threshold.
        n_runs: the runs averaged.
        label: how the threshold reads ("0 (beyond round-off 2e-14)" for the default).
        most_negative: the smallest weighted Ritz value of any run (how negative the curvature gets).
        scale: the largest |Ritz value| (≈ ‖M‖), to read ``most_negative`` against.

    Example: see :meth:`SpectralDensity.negative_mass`.
    """

    threshold: float
    ritz: float
    lower: float
    upper: float
    stderr: float
    smoothed: float
    leakage: float
    n_runs: int
    label: str = ""
    most_negative: float = 0.0
    scale: float = 0.0

    def describe(self) -> str:
        """One sentence: the quadrature's share below the threshold, its bounds, and the smoothing's part.

        Returns:
            The text (percentages).
        """
        pm = "" if not math.isfinite(self.stderr) else f", ±{100 * self.stderr:.2g} % over the {self.n_runs} starts"
        return (f"{100 * self.ritz:.3g} % of the quadrature weight lies below {self.label or f'{self.threshold:.3g}'} (the estimated "
                f"fraction of eigenvalues there; Gauss-quadrature bounds [{100 * self.lower:.3g} %, "
                f"{100 * self.upper:.3g} %]{pm}); the smoothed curve puts {100 * self.smoothed:.3g} % there, of which "
                f"{100 * self.leakage:+.2g} % is smoothing leakage; the smallest Ritz value is {self.most_negative:.3g} "
                f"({self.most_negative / self.scale if self.scale else 0.0:.2g} of the largest |λ|, {self.scale:.3g})")


@dataclass(frozen=True)
class SpectralDensity(JsonResult):
    """SLQ estimate of a curvature matrix's eigenvalue density.

    Attributes:
        grid: (n_grid,) float64 eigenvalue axis (curvature units).
        density: (n_grid,) float64 on ``grid``, integrating to ≈ 1 (multiply by ``dim`` for an
            eigenvalue count density).
        nodes, weights: (n_runs, n_steps) float64 Gauss quadrature nodes (Ritz values) and weights
            of each run (padded nodes of an early breakdown have weight 0).
        sigma: the Gaussian broadening width (curvature units): the one given, or with the
            adaptive default the weighted median of ``widths``.
        dim: the operator's dimension.
        residuals: (n_runs, n_steps) each Ritz pair's Lanczos residual ‖Mq − θq‖ = β_m |s_m|.
        widths: (n_runs, n_steps) the Gaussian width of each node.
        smoothing: ``"adaptive"`` (widths from spacing and residuals) or ``"fixed"`` (one ``sigma``).
        roundoff: the round-off allowance of the nodes, 10·√m·eps·max|node| (curvature units).

    Example: see :func:`spectral_density`.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    dim: int
    residuals: torch.Tensor | None = None
    widths: torch.Tensor | None = None
    smoothing: str = "fixed"
    roundoff: float = 0.0

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

    def negative_mass(self, below: float | None = None) -> NegativeMass:
        """How much of the spectrum lies below ``below``: the Ritz weight, its quadrature bounds and
        its spread over the runs, and separately the smoothed curve's mass and the leakage.

        Args:
            below: the threshold (curvature units; default −``roundoff``, i.e. negative beyond round-off).

        Returns:
            :class:`NegativeMass` (``describe()`` gives one sentence).

        Example:
            >>> import torch
            >>> from landscape.operators import DiagonalOperator
            >>> sd = spectral_density(DiagonalOperator(torch.tensor([-1.0, 1.0, 2.0, 3.0], dtype=torch.float64)), n_runs=2)
            >>> nm = sd.negative_mass()
            >>> round(nm.ritz, 12), round(nm.lower, 12), round(nm.upper, 12)
            (0.25, 0.0, 0.5)
        """
        t = -self.roundoff if below is None else float(below)
        label = f"0 (beyond round-off {self.roundoff:.1g})" if below is None else f"{t:.3g}"
        ritz, lower, upper = [], [], []
        for r in range(self.nodes.shape[0]):
            keep = self.weights[r] > 0
            x, w = self.nodes[r, keep], self.weights[r, keep]
            k = int((x < t).sum())
            mass = float(w[:k].sum())
            ritz.append(mass)
            lower.append(max(mass - (float(w[k - 1]) if k else 0.0), 0.0))
            upper.append(min(mass + (float(w[k]) if k < w.numel() else 0.0), 1.0))
        n = len(ritz)
        widths = self.widths if self.widths is not None else torch.full_like(self.nodes, self.sigma)
        below_t = torch.special.ndtr((t - self.nodes) / widths)
        smoothed = float((self.weights * below_t).sum(1).mean())
        est = sum(ritz) / n
        stderr = float(torch.tensor(ritz, dtype=torch.float64).std() / math.sqrt(n)) if n > 1 else float("nan")
        active = self.weights > 0
        return NegativeMass(threshold=t, ritz=est, lower=sum(lower) / n, upper=sum(upper) / n, stderr=stderr,
                            smoothed=smoothed, leakage=smoothed - est, n_runs=n, label=label,
                            most_negative=float(self.nodes[active].min()),
                            scale=float(self.nodes[active].abs().max()))

    def plot(self, path: str | Path, *, title: str | None = None, log: bool = True, below: float | None = None,
             dpi: int = 110) -> Path:
        """PNG: the smoothed density (λ < ``below`` shaded, its mass stated) over the Gauss nodes and weights.

        Args:
            path: the PNG. title: its title. log: log-scaled density axis. below: the negative-mass
                threshold (:meth:`negative_mass`). dpi: resolution.

        Returns:
            The path.

        Example (not run: matplotlib takes a second)::

            ls.spectral_density(obj, theta).plot("out/density.png")
        """
        return density_png(self, path, title=title, log=log, note=self.negative_mass(below), dpi=dpi)

    def to_html(self, path: str | Path, *, title: str | None = None, log: bool = True,
                below: float | None = None) -> Path:
        """Offline HTML page (plotly, via :func:`landscape.render.write_html`): the plot of :meth:`plot`.

        Args:
            path: the page. title: its title. log: log-scaled density axis. below: the negative-mass threshold.

        Returns:
            The path.

        Example (not run: it writes plotly.js next to the page)::

            ls.spectral_density(obj, theta).to_html("out/density.html")
        """
        return write_density_html(self, path, title=title, log=log, note=self.negative_mass(below))


def _node_widths(nodes: torch.Tensor, weights: torch.Tensor, residuals: torch.Tensor, floor: float) -> torch.Tensor:
    """Each node's Gaussian width: min(its residual, half the gap to its nearer weighted neighbour), at
    least ``floor``. A converged Ritz value (an outlier eigenvalue) stays sharp; a node standing for a
    stretch of the bulk is spread over its share of it, and a node at the edge of a cluster takes the
    gap inside the cluster, not the empty gap beside it."""
    widths = torch.full_like(nodes, floor)
    for r in range(nodes.shape[0]):
        keep = weights[r] > 0
        x = nodes[r, keep]
        if x.numel() == 0:
            continue
        near = torch.full_like(x, float("inf"))
        if x.numel() > 1:
            gaps = x[1:] - x[:-1]
            near[:-1] = gaps
            near[1:] = torch.minimum(near[1:], gaps)
        widths[r, keep] = torch.minimum(residuals[r, keep], 0.5 * near).clamp(min=floor)
    return widths


def _weighted_median(values: torch.Tensor, weights: torch.Tensor) -> float:
    order = torch.argsort(values.reshape(-1))
    v, w = values.reshape(-1)[order], weights.reshape(-1)[order]
    c = torch.cumsum(w, 0)
    return float(v[int(torch.searchsorted(c, 0.5 * c[-1]))])


def spectral_density(source: Any, theta: torch.Tensor | None = None, n_runs: int = 10, n_steps: int = 80,
                     seed: int = 0, *, n_grid: int = 1000, sigma: float | None = None,
                     reorth: str = "full", operator: Any = None, curvature: str = "hessian",
                     warn: bool = True) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``n_runs`` Rademacher starts of ``n_steps`` steps each.

    Each run's Gauss quadrature (Ritz values θ_i, weights w_i) is smoothed into a curve. By default
    (``sigma=None``) every node gets its own Gaussian width σ_i = min(r_i, g_i/2) (at least the
    round-off allowance), where r_i is the node's Lanczos residual (an upper bound on its distance to
    an eigenvalue) and g_i the gap to its nearer neighbour: converged outliers stay sharp, a bulk node
    is spread over its own share of the spectrum and not beyond, so the curve moves little mass across
    zero (a fixed σ of 1 % of the range put 21 % of a trained CNN's density below zero). The
    ``density`` is then the smoothed measure's mass in each grid cell over the cell's width, so a node
    narrower than a cell keeps its mass (the curve integrates to 1 over the grid).
    :meth:`SpectralDensity.negative_mass` separates the quadrature's weight below zero (with its
    bounds) from the smoothing's leakage. A fixed ``sigma`` smaller than half the nodes' median spacing
    draws the nodes as separate peaks: one :class:`landscape.ConvergenceWarning` says so. Lanczos
    breakdowns restart from a fresh orthogonal direction (an exact invariant subspace: nothing to
    warn about); ``reorth="none"`` loses orthogonality as Ritz values converge, which splits a
    converged node's weight between copies but leaves the quadrature accurate (Greenbaum 1989).

    Args:
        source: a curvature operator, or an :class:`landscape.Objective` (with ``theta``).
        theta: with an objective, the point (dim,); leave it out with an operator.
        n_runs: Rademacher start vectors.
        n_steps: Lanczos steps per run (at most dim), each one operator product.
        seed: seeds the starts (and breakdown restarts).
        n_grid: points of the density grid.
        sigma: one Gaussian width for every node (curvature units); default: per node (above).
        reorth: ``"full"`` reorthogonalisation (default) or ``"none"`` (the plain recurrence).
        operator: with an objective, a prepared operator to use.
        curvature: with an objective, ``"hessian"`` (default), ``"ggn"`` or ``"ef"``.
        warn: warn when a fixed ``sigma`` is finer than the quadrature resolves; ``False`` silences it.

    Returns:
        :class:`SpectralDensity`.

    Example:
        >>> import torch
        >>> from landscape.operators import DiagonalOperator
        >>> sd = spectral_density(DiagonalOperator(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)), n_runs=2)
        >>> round(sd.moment(1), 12), round(sd.mass_between(0.5, 2.5), 6), sd.smoothing
        (2.5, 0.5, 'adaptive')
    """
    if n_runs < 1 or n_steps < 1:
        raise ValueError(f"n_runs and n_steps must be positive, got {n_runs}, {n_steps}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    op = _operator(source, theta, operator, curvature, "spectral_density")
    dim, dtype, device = _space(source)
    gen = torch.Generator().manual_seed(seed)
    steps = min(n_steps, dim)
    nodes = torch.zeros(n_runs, steps, dtype=torch.float64)
    weights = torch.zeros(n_runs, steps, dtype=torch.float64)
    residuals = torch.zeros(n_runs, steps, dtype=torch.float64)
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
        residuals[r, :m] = run.last_beta * S[-1, :].abs()
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    roundoff = roundoff_allowance(steps, torch.finfo(dtype).eps, max(abs(lo), abs(hi)))
    if sigma is None:
        active = weights > 0
        widths = _node_widths(nodes, weights, residuals, max(roundoff, 1e-12 * span))
        lo_w = float((nodes - 5 * widths)[active].min())
        hi_w = float((nodes + 5 * widths)[active].max())
        pad = 2.0 * (hi_w - lo_w) / n_grid  # two empty cells beyond the outermost kernels
        grid = torch.linspace(lo_w - pad, hi_w + pad, n_grid, dtype=torch.float64)
        # Each grid point carries the smoothed measure's mass in its cell (between the midpoints to
        # its neighbours) over the cell's width: a node narrower than a cell keeps its mass.
        h = float(grid[1] - grid[0]) if n_grid > 1 else 1.0
        edges = torch.cat([grid[:1] - 0.5 * h, 0.5 * (grid[1:] + grid[:-1]), grid[-1:] + 0.5 * h])
        cdf = (torch.special.ndtr((edges[:, None, None] - nodes[None]) / widths[None]) * weights[None]).sum(-1).mean(-1)
        density = (cdf[1:] - cdf[:-1]) / (edges[1:] - edges[:-1])
        return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights,
                               sigma=_weighted_median(widths, weights), dim=dim, residuals=residuals, widths=widths,
                               smoothing="adaptive", roundoff=roundoff)
    grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid, dtype=torch.float64)
    kern = torch.exp(-0.5 * ((grid[:, None, None] - nodes[None]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = (kern * weights[None]).sum(-1).mean(-1)
    spacing = _median_spacing(nodes, weights)
    if warn and sigma < 0.5 * spacing:
        warnings.warn(f"spectral_density: sigma={sigma:.3g} is below half the Ritz values' median spacing "
                      f"{spacing:.3g}, so the curve shows the {steps} quadrature nodes of each run as separate peaks, "
                      f"not a density; raise n_steps (the spacing falls about as 1/n_steps), raise sigma, or leave "
                      "sigma=None (per-node widths)", ConvergenceWarning, stacklevel=2)
    return SpectralDensity(grid=grid, density=density, nodes=nodes, weights=weights, sigma=sigma, dim=dim,
                           residuals=residuals, widths=torch.full_like(nodes, sigma), smoothing="fixed",
                           roundoff=roundoff)


def _median_spacing(nodes: torch.Tensor, weights: torch.Tensor) -> float:
    """The median over runs of the median gap between a run's weighted nodes (0 with one node)."""
    per_run = []
    for r in range(nodes.shape[0]):
        x = nodes[r, weights[r] > 0]
        if x.numel() > 1:
            per_run.append(float((x[1:] - x[:-1]).median()))
    return float(torch.tensor(per_run).median()) if per_run else 0.0


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
                       seed: int = 0, warn: bool = True) -> BlockExtremes:
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
        warn: when a block did not converge, one :class:`landscape.ConvergenceWarning` for the call
            naming the blocks and the worst residual against the tol; ``False`` silences it.

    Returns:
        :class:`BlockExtremes`, one entry per block in parameter order; each block's ``residual`` is its
        worst relative residual ‖Hv − λv‖/‖H_block‖ (0 for a 1-parameter block, computed exactly).

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
    failed: list[tuple[str, str]] = []
    full = obj.spec.unflatten(theta)
    for label, patterns in blocks.items():
        sub = obj.restrict(list(patterns), theta)
        t_sub = sub.flatten_params({n: full[n] for n in sub.param_names})
        op = sub.curvature_operator(t_sub, curvature)
        if sub.dim == 1:
            v = torch.ones(1, dtype=sub.dtype, device=sub.device)
            lam = float(op.matvec(v)[0])
            lo = hi = lam
            conv, n_hvp, resid = True, 1, 0.0
        else:
            r = extreme_eigs(op, k=1, which="both", tol=tol, max_iter=max_iter, seed=seed, warn=False)
            lo, hi = float(r.values[0]), float(r.values[-1])
            conv, n_hvp = bool(r.converged.all()), int(r.n_hvp)
            resid = float(r.residuals.to(torch.float64).max()) / max(r.scale, torch.finfo(torch.float64).tiny)
            if not conv:
                failed.append((label, unconverged_message(r, max_iter, what=f"block {label!r}")))
        out.append({"block": label, "params": list(sub.param_names), "dim": sub.dim, "smallest": lo,
                    "largest": hi, "converged": conv, "n_hvp": n_hvp, "residual": resid})
    if warn and failed:
        worst = max(out, key=lambda b: b["residual"] if not b["converged"] else -1.0)
        warnings.warn(f"per_block_extremes: {len(failed)} of {len(out)} blocks did not converge "
                      f"({', '.join(repr(f[0]) for f in failed[:6])}{', ...' if len(failed) > 6 else ''}); worst: "
                      f"{dict(failed)[worst['block']]}", ConvergenceWarning, stacklevel=2)
    return BlockExtremes(blocks=out, curvature=curvature, tol=used_tol)
