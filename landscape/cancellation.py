"""Gradient-cancellation statistics of per-example gradients (SYNAPRUNE.md, "Measuring cancellation").

Notation: n examples, unscaled per-example gradients g_i, μ = mean_i g_i, s_j² = mean_i g_ij²,
a_j = mean_i |g_ij|. Everything is computed from streaming sums (Σg, Σg², Σ|g|, Σ sign g and
per-layer Σ‖g_i‖, Σ‖g_i‖²), so with ``chunk_size`` the n × dim matrix is never held.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .defaults import KAPPA_J_THRESHOLD
from .fast_stats import example_grad_sums
from .results import JsonResult

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


@dataclass(frozen=True)
class CancellationStats(JsonResult):
    """Cancellation of per-example gradients, globally or for one parameter tensor.

    - ``kappa`` = ‖μ‖ / mean_i ‖g_i‖ ∈ [0, 1] (0: total cancellation, 1: all g_i aligned)
    - ``alpha`` = ‖μ‖² / mean_i ‖g_i‖² ∈ [0, 1] (coherence); ``m_coherence`` = n·α;
      ``diversity`` = 1 / (n α) (gradient diversity; inf when μ = 0)
    - ``kappa_j_*``: per-coordinate κ_j = |μ_j| / a_j (coordinates with a_j = 0 excluded);
      ``frac_kappa_j_below`` = share of coordinates with κ_j < 0.1
    - ``gsnr_*``: r_j = μ_j² / (s_j² − μ_j²) (inf where the variance is 0 and μ_j ≠ 0)
    - ``sign_agreement_*``: q_j = |mean_i sign g_ij|
    - ``grad_norm`` = ‖μ‖, ``mean_example_grad_norm`` = mean_i ‖g_i‖
    - ``n`` examples, ``dim`` coordinates; ``per_layer``: the same statistics per parameter tensor

    Example (two per-example gradients at right angles, (−2, 0) and (0, 2): κ = 1/√2, α = 1/2):
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss(), (X, Y))
        >>> s = cancellation_stats(obj, torch.zeros(2, dtype=torch.float64))
        >>> round(s.kappa, 6), round(s.alpha, 12), s.n, list(s.per_layer)
        (0.707107, 0.5, 2, ['weight'])
    """

    n: int
    dim: int
    kappa: float
    alpha: float
    m_coherence: float
    diversity: float
    grad_norm: float
    mean_example_grad_norm: float
    kappa_j_mean: float
    kappa_j_median: float
    frac_kappa_j_below: float
    gsnr_mean: float
    gsnr_median: float
    gsnr_max: float
    sign_agreement_mean: float
    sign_agreement_median: float
    per_layer: dict[str, "CancellationStats"] = field(default_factory=dict)


def _median(x: torch.Tensor) -> float:
    # The usual median (mean of the two middle values for an even count); torch.median returns
    # the lower one.
    xs = x.reshape(-1).sort().values
    n = xs.numel()
    return float(xs[(n - 1) // 2]) if n % 2 else float(0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def _nan_stat(x: torch.Tensor, fn: str) -> float:
    x = x[~torch.isnan(x)]
    if x.numel() == 0:
        return float("nan")
    if fn == "median":
        return _median(x)
    if fn == "max":
        return float(x.max())
    finite = x[torch.isfinite(x)]
    return float(finite.mean()) if finite.numel() == x.numel() else float("inf")


def _stats(n: int, s1: torch.Tensor, s2: torch.Tensor, sabs: torch.Tensor, ssign: torch.Tensor,
           sum_norm: float, sum_norm2: float, per_layer: dict[str, CancellationStats] | None = None
           ) -> CancellationStats:
    mu = s1 / n
    ms = s2 / n
    a = sabs / n
    mu_norm = float(torch.linalg.vector_norm(mu))
    mean_norm = sum_norm / n
    mean_norm2 = sum_norm2 / n
    kappa = mu_norm / mean_norm if mean_norm > 0 else float("nan")
    alpha = mu_norm ** 2 / mean_norm2 if mean_norm2 > 0 else float("nan")
    nz = a > 0
    kappa_j = torch.where(nz, mu.abs() / torch.where(nz, a, torch.ones_like(a)), torch.full_like(a, float("nan")))
    var = (ms - mu ** 2).clamp_min(0)
    # Variance below round-off of s_j² counts as zero.
    var = torch.where(var <= 64 * torch.finfo(var.dtype).eps * ms, torch.zeros_like(var), var)
    with torch.no_grad():
        gsnr = torch.where(var > 0, mu ** 2 / torch.where(var > 0, var, torch.ones_like(var)),
                           torch.where(mu != 0, torch.full_like(mu, float("inf")), torch.full_like(mu, float("nan"))))
    q = (ssign / n).abs()
    valid_kj = kappa_j[~torch.isnan(kappa_j)]
    return CancellationStats(
        n=n, dim=int(s1.numel()), kappa=kappa, alpha=alpha,
        m_coherence=n * alpha, diversity=(1.0 / (n * alpha)) if alpha > 0 else float("inf"),
        grad_norm=mu_norm, mean_example_grad_norm=mean_norm,
        kappa_j_mean=_nan_stat(kappa_j, "mean"), kappa_j_median=_nan_stat(kappa_j, "median"),
        frac_kappa_j_below=float((valid_kj < KAPPA_J_THRESHOLD).double().mean()) if valid_kj.numel() else float("nan"),
        gsnr_mean=_nan_stat(gsnr, "mean"), gsnr_median=_nan_stat(gsnr, "median"), gsnr_max=_nan_stat(gsnr, "max"),
        sign_agreement_mean=float(q.mean()), sign_agreement_median=_median(q), per_layer=per_layer or {},
    )


def cancellation_stats(obj: "Objective", theta: torch.Tensor, chunk_size: int | None = None, *,
                       fast: bool | None = None) -> CancellationStats:
    """Global and per-parameter-tensor cancellation statistics at ``theta``.

    Models made of ``nn.Linear`` layers on (n, features) inputs and ``nn.Conv1d``/``nn.Conv2d``
    layers (groups = 1) take the layer-product path of :mod:`landscape.fast_stats` (matrix
    products of layer inputs and output gradients; for a conv one unfold + bmm per layer; same
    values to round-off); other models, or ``fast=False``, the
    per-example (vmap) path: with ``chunk_size`` the per-example gradients are produced and reduced
    ``chunk_size`` rows at a time (memory ``chunk_size × dim``). ``fast=True`` raises when the model
    is not eligible. The statistics are accumulated in float64. Distributed objectives sum the
    shards' sums, so the statistics are global.

    Args:
        obj: a model objective. theta: the point (dim,).
        chunk_size: examples per chunk on the per-example path (None: one chunk per batch).
        fast: None (the layer-product path where eligible), True (required) or False (never).

    Returns:
        :class:`CancellationStats` with ``per_layer`` statistics.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss(), (X, Y))
        >>> cancellation_stats(obj, torch.ones(2, dtype=torch.float64), fast=False).grad_norm   # g_i = (0, 0), (0, 4)
        2.0
    """
    slices = obj.spec.slices
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    sums = None
    if fast is not False:
        fs = example_grad_sums(obj, theta)
        if fs is not None:
            sums = [fs.sum.to(torch.float64), fs.sum_sq.to(torch.float64), fs.sum_abs.to(torch.float64),
                    fs.sum_sign.to(torch.float64)]
            norm_sum, norm2_sum, n = float(fs.sum_norm), float(fs.sum_norm_sq), int(fs.n)
            layer_norm, layer_norm2 = dict(fs.layer_sum_norm), dict(fs.layer_sum_norm_sq)
        elif fast:
            raise ValueError("fast=True: the model is not eligible for the outer-product path (every trainable "
                             "parameter must belong to an nn.Linear on (n, features) inputs or a groups=1 "
                             "nn.Conv1d/nn.Conv2d)")
    if sums is None:
        sums, norm_sum, norm2_sum, layer_norm, layer_norm2, n = _per_example_sums(obj, theta, chunk_size)
    if getattr(obj, "distributed", False):  # global statistics: sum the shards' sums (issue 11)
        names = list(slices)
        packed = torch.cat([*sums, torch.tensor([norm_sum, norm2_sum, float(n)] + [layer_norm[k] for k in names]
                                                + [layer_norm2[k] for k in names], dtype=torch.float64,
                                               device=sums[0].device)])
        packed = obj.all_reduce(packed)
        sums = list(packed[:4 * obj.dim].view(4, obj.dim))
        norm_sum, norm2_sum, n = float(packed[4 * obj.dim]), float(packed[4 * obj.dim + 1]), int(packed[4 * obj.dim + 2])
        rest = packed[4 * obj.dim + 3:].tolist()
        layer_norm, layer_norm2 = dict(zip(names, rest[:len(names)])), dict(zip(names, rest[len(names):]))
    s1, s2, sabs, ssign = sums  # type: ignore[misc]
    per_layer = {name: _stats(n, s1[sl], s2[sl], sabs[sl], ssign[sl], layer_norm[name], layer_norm2[name])
                 for name, sl in slices.items()}
    return _stats(n, s1, s2, sabs, ssign, norm_sum, norm2_sum, per_layer)


def _per_example_sums(obj: "Objective", theta: torch.Tensor, chunk_size: int | None):
    """The streaming sums of this shard by the per-example (vmap) path, accumulated in float64."""
    slices = obj.spec.slices
    sums = None
    norm_sum = norm2_sum = 0.0
    layer_norm = {name: 0.0 for name in slices}
    layer_norm2 = {name: 0.0 for name in slices}
    n = 0
    for _, G in obj.iter_per_example_grads(theta, chunk_size):
        G = G.detach().to(torch.float64)
        if sums is None:
            sums = [torch.zeros(G.shape[1], dtype=torch.float64, device=G.device) for _ in range(4)]
        sums[0] += G.sum(0)
        sums[1] += (G * G).sum(0)
        sums[2] += G.abs().sum(0)
        sums[3] += torch.sign(G).sum(0)
        sq_total = (G * G).sum(1)
        norm_sum += float(sq_total.sqrt().sum())
        norm2_sum += float(sq_total.sum())
        for name, sl in slices.items():
            sq = (G[:, sl] ** 2).sum(1)
            layer_norm[name] += float(sq.sqrt().sum())
            layer_norm2[name] += float(sq.sum())
        n += G.shape[0]
    return sums, norm_sum, norm2_sum, layer_norm, layer_norm2, n
