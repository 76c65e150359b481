"""The generalised Gauss-Newton matrix G = Σ_b w_b J_bᵀ ∇²_f ℓ_b J_b as an operator.

With f_b(θ) the model's outputs on batch b and ℓ_b(f) the batch's mean loss as a function of those
outputs, the objective is L(θ) = Σ_b w_b ℓ_b(f_b(θ)) and its Hessian is
H = G + Σ_b w_b Σ_k (∂ℓ_b/∂f_k) ∇²_θ f_k; G is positive semi-definite when ℓ is convex in f.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from .._functional import FunctionalModel, second_order_safe
from .base import CurvatureOperator

if TYPE_CHECKING:  # pragma: no cover
    from ..objective import Objective


class GGNOperator(CurvatureOperator):
    """The generalised Gauss-Newton matrix at ``theta`` as a symmetric operator.

    Each product streams the data once: per batch, Jv by a double vector-Jacobian product (it needs
    only reverse mode, which every op that has a Hessian supports), ∇²_f ℓ (Jv) by double backward
    through the loss of the outputs, then Jᵀ(·). Distributed objectives all-reduce each product.
    "The model's outputs" are the floating tensors the module returns to ``batch_loss`` (every
    call, any pytree); the loss of the outputs is ``batch_loss`` replayed with those outputs. A
    model that computes its loss inside (a scalar output) has no separable output and is refused.

    Args:
        obj: a model objective (``from_module`` / ``from_batches``).
        theta: the point, shape ``(dim,)`` (copied).

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
        >>> model = torch.nn.Linear(2, 1, bias=False).double()
        >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
        >>> G = obj.curvature_operator(obj.initial_point(), "ggn")   # = H for a linear model
        >>> (G @ torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
        [1.0, 0.0]
    """

    curvature = "ggn"

    def __init__(self, obj: "Objective", theta: torch.Tensor) -> None:
        super().__init__(obj.dim, obj.dtype, obj.device)
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        obj = self.obj
        if obj.module is None:
            raise ValueError("the GGN needs a model objective (from_batches / from_module): a plain function "
                             "has no model output")
        out = torch.zeros_like(self.theta)
        err = None
        v_parts = obj.spec.unflatten(v)
        for j, batch, _, w in obj.iter_indexed_batches():
            gv = self._batch_ggn(batch, v_parts)
            err = obj.nonfinite_error(gv, "GGN-vector product", obj.batch_location(j))
            if err is not None:
                break
            out += w * gv
        return obj.all_reduce(out, err)

    def _batch_ggn(self, batch: Any, v_parts: dict[str, torch.Tensor]) -> torch.Tensor:
        obj = self.obj
        names = obj.spec.names
        p = {n: t.detach().clone().requires_grad_(True) for n, t in obj.spec.unflatten(self.theta).items()}
        plist = [p[n] for n in names]
        calls: list = []
        with torch.enable_grad(), second_order_safe():
            obj.call_batch_loss(FunctionalModel(obj.module, p, record=calls), batch)
            structs = [tree_flatten(out) for _, _, out in calls]
            slots = [(c, k) for c, (leaves, _) in enumerate(structs) for k, t in enumerate(leaves)
                     if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad]
            outs = [structs[c][0][k] for c, k in slots]
            if any(o.ndim == 0 for o in outs):
                raise ValueError("the model returns a scalar (a loss computed inside the model, e.g. a Hugging Face "
                                 "model called with labels=): the GGN needs the loss outside the model; compute it "
                                 "in batch_loss from the model's logits")
            if not outs:
                return torch.zeros_like(self.theta)
            # Jv = d/du [Jᵀu]·v at u = 0 (Jᵀu is linear in u).
            us = [torch.zeros_like(o, requires_grad=True) for o in outs]
            jtu = torch.autograd.grad(outs, plist, us, create_graph=True, allow_unused=True, materialize_grads=True)
            jv = torch.autograd.grad(jtu, us, [v_parts[n] for n in names], allow_unused=True, materialize_grads=True)
            # ∇²_f ℓ (Jv): double backward through the loss replayed on detached outputs.
            zs = [o.detach().requires_grad_(True) for o in outs]
            replay = []
            for c, (leaves, spec) in enumerate(structs):
                leaves = list(leaves)
                for (cc, k), z in zip(slots, zs):
                    if cc == c:
                        leaves[k] = z
                replay.append(tree_unflatten(leaves, spec))
            frozen = {n: t.detach() for n, t in p.items()}
            loss = obj.call_batch_loss(FunctionalModel(obj.module, frozen, replay=replay), batch)
            gz = torch.autograd.grad(loss.reshape(()), zs, create_graph=True, allow_unused=True, materialize_grads=True)
            if not any(g.requires_grad for g in gz):
                return torch.zeros_like(self.theta)  # loss linear in the outputs
            hjv = torch.autograd.grad([g for g in gz if g.requires_grad], [z for z, g in zip(zs, gz) if g.requires_grad],
                                      [t for t, g in zip(jv, gz) if g.requires_grad], allow_unused=True,
                                      materialize_grads=True)
            res = torch.autograd.grad(outs, plist, list(hjv), allow_unused=True, materialize_grads=True)
        return torch.cat([r.reshape(-1) for r in res]).detach()
