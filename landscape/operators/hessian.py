"""The Hessian of an objective at a fixed point, as an operator (reverse-over-reverse products)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .base import CurvatureOperator

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


class HessianOperator(CurvatureOperator):
    """The Hessian at a fixed point as a symmetric linear operator on flat vectors.

    With ``cache=True`` the first-order graph is built once (one gradient pass that keeps its
    graph) and every product is one double-backward pass (memory: the autograd graph of the whole
    local dataset); with ``cache=False`` each product is a fresh reverse-over-reverse pass, one
    batch at a time. :attr:`n_matvec` counts products. Distributed objectives all-reduce every
    product, so every rank sees the same operator. A non-finite product raises
    :class:`landscape.NonFiniteError` naming the batch. Build it through
    :meth:`landscape.Objective.hvp_operator` (or :func:`landscape.operators.make_operator`).

    Args:
        obj: the objective.
        theta: the point, shape ``(dim,)`` (copied).
        cache: keep the first-order graph (None: when the data are tensors already in memory,
            see :attr:`landscape.Objective.data_in_memory`).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 3).sum(), torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> H = obj.hvp_operator(obj.initial_point())
        >>> (H @ torch.tensor([1.0, 1.0], dtype=torch.float64)).tolist(), H.n_matvec
        ([6.0, 12.0], 1)
    """

    curvature = "hessian"

    def __init__(self, obj: "Objective", theta: torch.Tensor, *, cache: bool | None = True) -> None:
        super().__init__(obj.dim, obj.dtype, obj.device)
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()
        if cache is None:
            cache = obj.data_in_memory
        self._g: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None
        self._gradient_reduced = not obj.distributed
        if cache:
            self._p = self.theta.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = obj.local_loss_tensor(self._p)
                self._g = (torch.autograd.grad(loss, self._p, create_graph=True)[0]
                           if loss.requires_grad else torch.zeros_like(self._p))
            self._gradient = self._g.detach()
            if not self._g.requires_grad:  # objective is linear in theta: the Hessian is zero
                self._g = None
                cache = False
        self.cache = cache

    @property
    def gradient(self) -> torch.Tensor | None:
        """The gradient at ``theta`` that the cached graph computed anyway, or None without a cache.

        Shape ``(dim,)``, detached; summed over ranks when distributed (a collective: every rank
        must ask). :func:`landscape.extreme_eigs` mixes it into its start vector.
        """
        if self._gradient is not None and not self._gradient_reduced:
            self._gradient = self.obj.all_reduce(self._gradient.clone())
            self._gradient_reduced = True
        return self._gradient

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        obj = self.obj
        if self._g is None:
            hv, err = obj.local_hvp(self.theta, v)
            return obj.all_reduce(hv, err).detach()
        hv = torch.autograd.grad(self._g, self._p, v, retain_graph=True)[0].detach()
        err = None
        if not bool(torch.isfinite(hv).all()):
            _, err = obj.local_hvp(self.theta, v)  # locate the batch
            err = err or "Hessian-vector product is non-finite on the data"
        return obj.all_reduce(hv, err)
