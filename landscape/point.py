"""A point's state, computed once: loss, gradient, Hessian (operator or dense), spectrum and scales at θ.

:class:`PointState` is what :func:`landscape.classify_point` builds at θ and hands down through
the Newton continuation, the probes and the Krylov complement, so that nothing is computed twice
at one point: the Hessian operator at θ is built on first use and then reused (each build is a
full gradient pass that keeps its graph), the dense Hessian's eigendecomposition likewise.

Example:
    >>> import torch, landscape as ls
    >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 - x[1] ** 2, torch.tensor([1.0, 0.0], dtype=torch.float64))
    >>> st = PointState.dense(obj, obj.initial_point())
    >>> st.loss, st.grad.tolist(), st.eigenvalues.tolist(), st.spectral_scale
    (1.0, [2.0, 0.0], [-2.0, 2.0], 2.0)
    >>> st.hessian_operator is st.hessian_operator      # built once, on first use
    True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .budget import charge_hvp
from .eigs import EigResult, extreme_eigs
from .errors import NonFiniteError
from .operators import CurvatureOperator, make_operator

if TYPE_CHECKING:  # pragma: no cover
    from .objective import Objective


def loss_grad_dense_hessian(obj: "Objective", theta: torch.Tensor, with_hessian: bool
                            ) -> tuple[float, torch.Tensor, torch.Tensor | None]:
    """Loss, gradient and (if asked) the dense Hessian from one first-order graph.

    All Hessian columns come from one batched double backward (much faster than per-column
    passes for small models); where batched gradients are unsupported, from
    :meth:`landscape.Objective.hessian`. Plain autograd (no ``torch.func.grad``) keeps start-up cheap.

    Args:
        obj: the objective (not distributed: the dense path differentiates ``loss_tensor``).
        theta: the point, shape ``(dim,)``.
        with_hessian: also compute the Hessian (charged as ``dim`` products to an active
            :func:`landscape.budget.hvp_budget`, before it is computed).

    Returns:
        ``(loss, gradient (dim,), Hessian (dim, dim) symmetric or None)``.

    Raises:
        landscape.NonFiniteError: a non-finite loss or gradient.
        landscape.budget.BudgetExhausted: the Hessian would pass an active HVP budget.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: x[0] * x[1], torch.ones(2, dtype=torch.float64))
        >>> loss, g, H = loss_grad_dense_hessian(obj, obj.initial_point(), True)
        >>> loss, g.tolist(), H.tolist()
        (1.0, [1.0, 1.0], [[0.0, 1.0], [1.0, 0.0]])
    """
    theta = obj.check_theta(theta).detach()
    if with_hessian:  # an active HVP budget (landscape.budget) counts a dense Hessian as dim products
        charge_hvp(obj.dim, f"a dense Hessian ({obj.dim} products)")
    p = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        L = obj.loss_tensor(p)
        if not L.requires_grad:  # constant objective
            zero = torch.zeros_like(theta)
            return float(L), zero, (torch.zeros(obj.dim, obj.dim, dtype=obj.dtype, device=obj.device)
                                    if with_hessian else None)
        g = torch.autograd.grad(L, p, create_graph=with_hessian)[0]
    loss = float(L.detach())
    if not math.isfinite(loss):
        raise NonFiniteError(f"loss is {loss} at theta")
    if not bool(torch.isfinite(g).all()):
        raise NonFiniteError("gradient is non-finite at theta")
    if not with_hessian:
        return loss, g.detach(), None
    if not g.requires_grad:  # loss linear in theta
        return loss, g.detach(), torch.zeros(obj.dim, obj.dim, dtype=obj.dtype, device=obj.device)
    try:
        eye = torch.eye(obj.dim, dtype=obj.dtype, device=obj.device)
        H = torch.autograd.grad(g, p, eye, is_grads_batched=True)[0]
        if not bool(torch.isfinite(H).all()):
            raise FloatingPointError
        H = 0.5 * (H + H.T)
    except Exception:  # noqa: BLE001 - e.g. an op without a batching rule: use the reference path
        H = obj.hessian(theta, max_dim=max(obj.dim, obj.hessian_max_dim))
    return loss, g.detach(), H.detach()


def dense_hessian(obj: "Objective", theta: torch.Tensor) -> torch.Tensor:
    """The dense symmetric Hessian at ``theta`` (see :func:`loss_grad_dense_hessian`).

    Args:
        obj: the objective.
        theta: the point, shape ``(dim,)``.

    Returns:
        The Hessian, shape ``(dim, dim)``, the objective's dtype.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 4).sum(), torch.ones(2, dtype=torch.float64))
        >>> dense_hessian(obj, obj.initial_point()).tolist()
        [[12.0, 0.0], [0.0, 12.0]]
    """
    return loss_grad_dense_hessian(obj, theta, True)[2]  # type: ignore[return-value]


class _Memo:
    """What a :class:`PointState` computes on first use (the Hessian operator, the dense eigh)."""

    def __init__(self) -> None:
        self.operator: CurvatureOperator | None = None
        self.eigh: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class PointState:
    """The state of an objective at one point θ, computed once and handed down.

    Build it with :meth:`first_order` (loss and gradient by :meth:`landscape.Objective.loss_and_grad`)
    or :meth:`dense` (loss, gradient and dense Hessian from one graph, and its eigendecomposition),
    and add the extreme eigenpairs with :meth:`with_lanczos_spectrum`. The Hessian operator is built
    on first use of :attr:`hessian_operator` and shared by every copy of the state.

    Attributes:
        obj: the objective.
        theta: the point, shape ``(dim,)``.
        loss: L(θ) (loss units).
        grad: ∇L(θ), shape ``(dim,)``.
        hessian: the dense Hessian (dim, dim) (dense path), else None.
        eigenvalues: ascending; all of them (dense) or the computed ones (Lanczos), else None.
        eigenvectors: unit columns (dim, m) matching ``eigenvalues``, else None.
        eig: the Lanczos :class:`landscape.EigResult` (Lanczos path), else None.
        spectral_scale: Λ = max|λ| (dense), or max(max|computed λ|, the solver's ‖H‖ estimate); NaN
            before a spectrum is known.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.ones(3, dtype=torch.float64))
        >>> st = PointState.first_order(obj, obj.initial_point()).with_lanczos_spectrum((1, 1), seed=0)
        >>> st.loss, st.grad.tolist(), st.eigenvalues.tolist(), st.param_scale
        (3.0, [2.0, 2.0, 2.0], [2.0, 2.0], 1.0)
    """

    obj: "Objective" = field(repr=False)
    theta: torch.Tensor = field(repr=False)
    loss: float
    grad: torch.Tensor = field(repr=False)
    hessian: torch.Tensor | None = field(default=None, repr=False)
    eigenvalues: torch.Tensor | None = None
    eigenvectors: torch.Tensor | None = field(default=None, repr=False)
    eig: EigResult | None = field(default=None, repr=False)
    spectral_scale: float = math.nan
    _memo: _Memo = field(default_factory=_Memo, repr=False, compare=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def first_order(cls, obj: "Objective", theta: torch.Tensor) -> "PointState":
        """Loss and gradient at ``theta`` by :meth:`landscape.Objective.loss_and_grad`.

        Args:
            obj: the objective.
            theta: the point, shape ``(dim,)``.

        Returns:
            The state (no Hessian yet: the operator is built on first use).
        """
        theta = obj.check_theta(theta).detach()
        loss, g = obj.loss_and_grad(theta)
        return cls(obj=obj, theta=theta, loss=loss, grad=g)

    @classmethod
    def with_dense_hessian(cls, obj: "Objective", theta: torch.Tensor) -> "PointState":
        """Loss, gradient and dense Hessian at ``theta`` from one graph (:func:`loss_grad_dense_hessian`).

        Args:
            obj: the objective.
            theta: the point, shape ``(dim,)``.

        Returns:
            The state with :attr:`hessian` (its eigendecomposition computed on first use).
        """
        theta = obj.check_theta(theta).detach()
        loss, g, H = loss_grad_dense_hessian(obj, theta, True)
        return cls(obj=obj, theta=theta, loss=loss, grad=g, hessian=H)

    @classmethod
    def dense(cls, obj: "Objective", theta: torch.Tensor) -> "PointState":
        """:meth:`with_dense_hessian` plus the full spectrum (``eigh``) and the spectral scale.

        Args:
            obj: the objective (dim up to a few thousand).
            theta: the point, shape ``(dim,)``.

        Returns:
            The state with every eigenpair, ascending.
        """
        return cls.with_dense_hessian(obj, theta).with_dense_spectrum()

    def with_dense_spectrum(self) -> "PointState":
        """This state with the dense Hessian's eigenpairs and Λ = max|λ| (the memo is shared).

        Returns:
            A new state (the dense Hessian must be known).
        """
        evals, evecs = self.hessian_eigh()
        return dataclasses.replace(self, eigenvalues=evals, eigenvectors=evecs,
                                   spectral_scale=float(evals.abs().max()))

    def with_lanczos_spectrum(self, k: tuple[int, int], seed: int) -> "PointState":
        """This state with ``k = (smallest, largest)`` extreme eigenpairs of the Hessian operator.

        Args:
            k: pairs at each end (:func:`landscape.extreme_eigs` with ``which="both"``).
            seed: the eigensolver's seed.

        Returns:
            A new state (the memo, and so the operator, is shared) with :attr:`eig`, the computed
            eigenpairs and Λ = max(max|λ|, the solver's scale).
        """
        res = extreme_eigs(self.hessian_operator, k=k, which="both", seed=seed)
        evals = res.values.to(self.obj.dtype)
        return dataclasses.replace(self, eigenvalues=evals, eigenvectors=res.vectors, eig=res,
                                   spectral_scale=max(float(evals.abs().max()), res.scale))

    # ---------------------------------------------------------------- derived, computed once
    @property
    def hessian_operator(self) -> CurvatureOperator:
        """The Hessian operator at θ (:func:`landscape.operators.make_operator`), built on first use."""
        if self._memo.operator is None:
            self._memo.operator = make_operator(self.obj, self.theta, "hessian")
        return self._memo.operator

    def hessian_eigh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``torch.linalg.eigh`` of the dense Hessian, computed on first use.

        Returns:
            ``(eigenvalues (dim,) ascending, eigenvectors (dim, dim))``.
        """
        if self._memo.eigh is None:
            if self.hessian is None:
                raise ValueError("this state has no dense Hessian (build it with PointState.dense)")
            self._memo.eigh = torch.linalg.eigh(self.hessian)
        return self._memo.eigh

    @property
    def dim(self) -> int:
        """The number of parameters."""
        return self.obj.dim

    @property
    def grad_norm(self) -> float:
        """‖∇L(θ)‖."""
        return float(torch.linalg.vector_norm(self.grad))

    @property
    def param_scale(self) -> float:
        """s = max(1, rms(θ)) = max(1, ‖θ‖/√dim): the length scale of probe radii and steps."""
        return max(1.0, float(torch.linalg.vector_norm(self.theta)) / math.sqrt(self.obj.dim))

    def __getstate__(self) -> dict[str, Any]:  # the memo's operator holds an autograd graph
        d = dict(self.__dict__)
        d["_memo"] = _Memo()
        return d
