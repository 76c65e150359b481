"""The empirical Fisher F = c Σ_i g_i g_iᵀ as an operator.

g_i = ∇ℓ_i(θ) are the unscaled per-example gradients and c = 1/N for ``reduction="mean"``, 1 for
``"sum"`` (the scale of the Hessian and the GGN).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..defaults import EF_CACHE_BYTES
from .base import CurvatureOperator

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


class EmpiricalFisherOperator(CurvatureOperator):
    """The empirical Fisher ``c Σ_i g_i g_iᵀ`` at ``theta`` (see the module docstring for c).

    The per-example gradients are computed once and kept when they fit in
    :data:`landscape.defaults.EF_CACHE_BYTES` (256 MiB), else recomputed chunk by chunk at each
    product. Distributed objectives all-reduce each product.

    Args:
        obj: a model objective with per-example structure (``from_module`` / ``from_batches``).
        theta: the point, shape ``(dim,)`` (copied).
        chunk_size: examples per chunk when the gradients are recomputed (None: one chunk per batch).

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> torch.nn.init.zeros_(model.weight)  # doctest: +ELLIPSIS
        Parameter containing:...
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> F = obj.curvature_operator(obj.initial_point(), "ef")   # g_1 = (-2, 0), g_2 = (0, -2), c = 1/2
        >>> (F @ torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
        [2.0, 0.0]
    """

    curvature = "ef"

    def __init__(self, obj: "Objective", theta: torch.Tensor, *, chunk_size: int | None = None) -> None:
        super().__init__(obj.dim, obj.dtype, obj.device)
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()
        obj.require_examples()
        self.scale = 1.0 / obj.n_examples if obj.reduction == "mean" else 1.0
        self.chunk_size = chunk_size
        size = obj.n_local_examples * obj.dim * torch.finfo(obj.dtype).bits // 8
        self._G = obj.per_example_grads(self.theta, chunk_size) if size <= EF_CACHE_BYTES else None

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        if self._G is not None:
            out = self._G.T @ (self._G @ v)
        else:
            out = torch.zeros_like(v)
            for _, G in self.obj.iter_per_example_grads(self.theta, self.chunk_size):
                out += G.T @ (G @ v)
        return self.obj.all_reduce(self.scale * out)
