"""Curvature matrices beyond the Hessian: generalised Gauss-Newton (GGN) and empirical Fisher (EF).

With f_b(θ) the model's outputs on batch b and ℓ_b(f) the batch's mean loss as a function of those
outputs, the objective is L(θ) = Σ_b w_b ℓ_b(f_b(θ)) and

- Hessian      H = Σ_b w_b [ J_bᵀ ∇²_f ℓ_b J_b + Σ_k (∂ℓ_b/∂f_k) ∇²_θ f_k ]
- GGN          G = Σ_b w_b J_bᵀ ∇²_f ℓ_b J_b      (positive semi-definite when ℓ is convex in f)
- EF           F = c Σ_i g_i g_iᵀ,  g_i = ∇ℓ_i(θ) the unscaled per-example gradients,
               c = 1/N for reduction="mean", 1 for "sum" (the scale of H and G)

so H − G is the part of the curvature that comes from the model's own second derivatives; at a
stall, negative curvature of H can only come from it when G ⪰ 0 (:func:`nongg_negative_curvature`).

"The model's outputs" are the floating tensors the module returns to ``batch_loss`` (every call,
any pytree: tuples, dicts, Hugging Face ``ModelOutput``); the loss of the outputs is ``batch_loss``
replayed with those outputs. A model that computes its loss inside (a scalar output, e.g. HF with
``labels=``) has no separable output and is refused for the GGN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from .objective import NonFiniteError, _FunctionalModel, second_order_safe
from .results import JsonResult

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective

EF_CACHE_BYTES = 256 * 2**20


class _Operator:
    def __init__(self, obj: "Objective", theta: torch.Tensor) -> None:
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()
        self.dim = obj.dim
        self.shape = (obj.dim, obj.dim)
        self.dtype = obj.dtype
        self.device = obj.device
        self.n_matvec = 0

    def _check_v(self, v: torch.Tensor) -> torch.Tensor:
        if v.shape != (self.dim,):
            raise ValueError(f"v must have shape ({self.dim},), got {tuple(v.shape)}")
        self.n_matvec += 1
        return v.to(device=self.device, dtype=self.dtype)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``M @ V`` for ``V`` of shape ``(dim, k)``."""
        return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class GGNOperator(_Operator):
    """The generalised Gauss-Newton matrix at ``theta`` as a symmetric operator.

    Each product streams the data once: per batch, Jv by a double vector-Jacobian product (it needs
    only reverse mode, which every op that has a Hessian supports), ∇²_f ℓ (Jv) by double backward
    through the loss of the outputs, then Jᵀ(·). Distributed objectives all-reduce each product.
    """

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``G @ v`` for ``v`` of shape ``(dim,)``."""
        v = self._check_v(v)
        obj = self.obj
        if obj.module is None:
            raise ValueError("the GGN needs a model objective (from_batches / from_module): a plain function "
                             "has no model output")
        out = torch.zeros_like(self.theta)
        err = None
        v_parts = obj.spec.unflatten(v)
        for j, batch, _, w in obj._indexed():
            gv = self._batch_ggn(batch, v_parts)
            err = obj._vector_error(gv, "GGN-vector product", obj._where(j))
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
            obj._loss_call(_FunctionalModel(obj.module, p, record=calls), batch)  # type: ignore[misc]
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
            loss = obj._loss_call(_FunctionalModel(obj.module, frozen, replay=replay), batch)  # type: ignore[misc]
            gz = torch.autograd.grad(loss.reshape(()), zs, create_graph=True, allow_unused=True, materialize_grads=True)
            if not any(g.requires_grad for g in gz):
                return torch.zeros_like(self.theta)  # loss linear in the outputs
            hjv = torch.autograd.grad([g for g in gz if g.requires_grad], [z for z, g in zip(zs, gz) if g.requires_grad],
                                      [t for t, g in zip(jv, gz) if g.requires_grad], allow_unused=True,
                                      materialize_grads=True)
            res = torch.autograd.grad(outs, plist, list(hjv), allow_unused=True, materialize_grads=True)
        return torch.cat([r.reshape(-1) for r in res]).detach()


class EmpiricalFisherOperator(_Operator):
    """The empirical Fisher ``c Σ_i g_i g_iᵀ`` at ``theta`` (see the module docstring for c).

    The per-example gradients are computed once and kept when they fit in 256 MiB, else recomputed
    chunk by chunk at each product. Distributed objectives all-reduce each product.
    """

    def __init__(self, obj: "Objective", theta: torch.Tensor, *, chunk_size: int | None = None) -> None:
        super().__init__(obj, theta)
        obj._require_examples()
        self.scale = 1.0 / obj.n_examples if obj.reduction == "mean" else 1.0
        self.chunk_size = chunk_size
        size = obj.n_local_examples * obj.dim * torch.finfo(obj.dtype).bits // 8
        self._G = obj.per_example_grads(self.theta, chunk_size) if size <= EF_CACHE_BYTES else None

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``F @ v`` for ``v`` of shape ``(dim,)``."""
        v = self._check_v(v)
        if self._G is not None:
            out = self._G.T @ (self._G @ v)
        else:
            out = torch.zeros_like(v)
            for _, G in self.obj.iter_per_example_grads(self.theta, self.chunk_size):
                out += G.T @ (G @ v)
        return self.obj.all_reduce(self.scale * out)


class DifferenceOperator(_Operator):
    """``A − B`` for two operators on the same space (e.g. H − G)."""

    def __init__(self, a, b) -> None:
        self.a, self.b = a, b
        self.dim = a.dim
        self.shape = (a.dim, a.dim)
        self.dtype = a.dtype
        self.device = a.device
        self.n_matvec = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_matvec += 1
        return self.a.matvec(v) - self.b.matvec(v)


@dataclass
class NonGGNCurvature(JsonResult):
    """How much of the Hessian's most negative curvature at a point comes from H − G.

    ``hessian_min``: λ_min(H) with unit eigenvector v; ``ggn_along`` = vᵀGv and ``residual_along`` =
    vᵀ(H − G)v, which sum to ``hessian_min``; ``residual_share`` = residual_along / hessian_min (≥ 1 when
    λ_min < 0 and G ⪰ 0: all negative curvature, and more, comes from H − G; NaN when λ_min ≥ 0).
    ``ggn_min`` = λ_min(G) (≥ 0 up to round-off for losses convex in the outputs) and ``residual_min`` =
    λ_min(H − G). ``converged``: whether each of the three Lanczos runs met ``tol`` (relative to the
    operator's spectral scale); ``scale`` = max |Ritz value| of H.
    """

    hessian_min: float
    ggn_along: float
    residual_along: float
    residual_share: float
    ggn_min: float
    residual_min: float
    scale: float
    tol: float
    converged: dict[str, bool] = field(default_factory=dict)
    n_matvec: dict[str, int] = field(default_factory=dict)


def nongg_negative_curvature(obj: "Objective", theta: torch.Tensor, *, tol: float | None = None,
                             max_iter: int | None = None, seed: int = 0) -> NonGGNCurvature:
    """Split the Hessian's most negative curvature at ``theta`` into its GGN and non-GGN parts.

    Three Lanczos runs (:func:`landscape.lanczos.extreme_eigs`): λ_min of H (with its vector), of G
    and of H − G; the split along the eigenvector is exact (two products). See :class:`NonGGNCurvature`.
    """
    from .lanczos import extreme_eigs

    H = obj.curvature_operator(theta, "hessian")
    G = obj.curvature_operator(theta, "ggn")
    R = DifferenceOperator(H, G)
    rh = extreme_eigs(obj, theta, 1, "smallest", tol=tol, max_iter=max_iter, seed=seed, operator=H)
    rg = extreme_eigs(obj, theta, 1, "smallest", tol=tol, max_iter=max_iter, seed=seed, operator=G)
    rr = extreme_eigs(obj, theta, 1, "smallest", tol=tol, max_iter=max_iter, seed=seed, operator=R)
    v = rh.vectors[:, 0].to(obj.dtype)
    v = v / torch.linalg.vector_norm(v)
    lam = float(rh.values[0])
    g_along = float(torch.dot(v.double(), G.matvec(v).double()))
    r_along = float(torch.dot(v.double(), R.matvec(v).double()))
    if not all(math.isfinite(x) for x in (lam, g_along, r_along)):
        raise NonFiniteError("non-finite curvature in the H/GGN split")
    used_tol = tol if tol is not None else (1e-8 if obj.dtype == torch.float64 else 1e-4)
    return NonGGNCurvature(
        hessian_min=lam, ggn_along=g_along, residual_along=r_along,
        residual_share=(r_along / lam) if lam < 0 else float("nan"),
        ggn_min=float(rg.values[0]), residual_min=float(rr.values[0]),
        scale=float(getattr(rh, "scale", float("nan"))), tol=used_tol,
        converged={"hessian": bool(rh.converged[0]), "ggn": bool(rg.converged[0]), "residual": bool(rr.converged[0])},
        n_matvec={"hessian": H.n_matvec, "ggn": G.n_matvec, "residual": R.n_matvec},
    )
