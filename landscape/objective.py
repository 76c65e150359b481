"""An objective: loss, gradient, Hessian-vector products and per-example gradients of a flat vector.

Everything is functional: the parameters are one flat 1-D tensor ``theta`` of length ``dim``;
a model is evaluated with ``torch.func.functional_call`` on a private copy, so the user's module
is never touched. Data are read one batch at a time from where the user keeps them
(:class:`landscape.data.BatchSource`); every evaluation runs attention in the math SDPA backend,
the one whose backward is itself differentiable, so HVPs work through attention with no action
from the user.

Layout: the model wrappers are in :mod:`landscape._functional`, the construction-time checks in
:mod:`landscape._construction`, the per-example gradient machinery in :mod:`landscape._per_example`
and the curvature operators in :mod:`landscape.operators`; the operators use only the public
"operator API" section of :class:`Objective`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import grad, vjp, vmap

from ._construction import build_function_objective, build_model_objective
from ._functional import ReducedLoss, second_order_safe, stochastic_modules
from ._operator_api import OperatorAPI
from ._per_example import PerExampleGradients
from .data import Batch, BatchSource
from .defaults import DEFAULT_HESSIAN_MAX_DIM
from .errors import NonFiniteError, NonFiniteInputError
from .operators import CurvatureOperator, HessianOperator, make_operator
from .params import ParamSpec, select_parameters

__all__ = ["Objective", "NonFiniteError", "HessianOperator", "second_order_safe", "stochastic_modules",
           "DEFAULT_HESSIAN_MAX_DIM"]


class Objective(OperatorAPI):
    """A twice-differentiable objective of a flat parameter vector.

    Build one with :meth:`from_batches` (model + per-batch loss + data), :meth:`from_module`
    (model + criterion + ``(inputs, targets)`` data) or :meth:`from_function` (a function of a 1-D
    tensor). All vectors are 1-D tensors of length :attr:`dim` with the objective's ``dtype`` on its
    ``device``. The objective is ``Σ_b w_b · ℓ_b(θ)`` with ``ℓ_b`` the mean loss of batch b and
    ``w_b = n_b / N`` (``reduction="mean"``) or ``n_b`` (``"sum"``), N the (global) number of examples.

    Methods by purpose: values (:meth:`loss`, :meth:`loss_and_grad`, :meth:`grad`,
    :meth:`loss_tensor`), curvature (:meth:`hvp`, :meth:`hvp_operator`, :meth:`curvature_operator`,
    :meth:`hessian`), per-example gradients (:meth:`per_example_grads`,
    :meth:`iter_per_example_grads`), parameters (:meth:`initial_point`, :meth:`to_module_params`,
    :meth:`flatten_params`, :meth:`write_to_module`, :meth:`restrict`) and the operator API
    (:meth:`iter_indexed_batches`, :meth:`batch_loss_at`, :meth:`call_batch_loss`,
    :meth:`local_loss_tensor`, :meth:`local_hvp`, :meth:`all_reduce`, :meth:`nonfinite_error`,
    :meth:`batch_location`, :meth:`example_range`, :meth:`require_examples`) that operators and
    algorithms build on.

    Args (of the constructor; use the ``from_*`` class methods instead):
        spec: names and shapes of the parameters. theta0: the initial point (dim,).
        module: the private model copy (None for a function). loss_call: ``batch_loss(model, batch)``.
        fn: the plain function (from_function). source: the data. reduction: "mean" or "sum".
        n_examples: the global number of examples. distributed, group: torch.distributed settings.
        hessian_max_dim: the largest dense Hessian allowed by default.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> obj.loss_and_grad(obj.initial_point())
        (5.0, tensor([2., 4.], dtype=torch.float64))
    """

    module: nn.Module | None
    n_examples: int

    def __init__(self, *, spec: ParamSpec, theta0: torch.Tensor, module: nn.Module | None,
                 loss_call: Callable[[Any, Batch], torch.Tensor] | None, fn: Callable | None,
                 source: BatchSource | None, reduction: str, n_examples: int, distributed: bool = False,
                 group: Any = None, hessian_max_dim: int = DEFAULT_HESSIAN_MAX_DIM) -> None:
        self.spec = spec
        self._theta0 = theta0.detach().clone()
        self.module = module
        self._loss_call = loss_call
        self._fn = fn
        self._source = source
        self.reduction = reduction
        self.hessian_max_dim = hessian_max_dim
        self.distributed = distributed
        self._group = group
        self.rank = torch.distributed.get_rank(group) if distributed else 0
        self.n_examples = n_examples
        counts = source.counts if source is not None else [0]
        self.n_local_examples = sum(counts)
        self._starts = [sum(counts[:j]) for j in range(len(counts))]
        self._counts = list(counts)
        if source is None:
            self._weights = [1.0]
        else:
            scale = 1.0 / n_examples if reduction == "mean" else 1.0
            self._weights = [scale * n for n in counts]
        self._examples = PerExampleGradients(self)  # vmap or loop, decided on first use

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_batches(
        cls,
        model: nn.Module,
        batch_loss: Callable[[Any, Batch], torch.Tensor],
        data: Any,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        reduction: str = "mean",
        batch_size: Callable[[Batch], int] | None = None,
        params: Any = None,
        distributed: bool = False,
    ) -> "Objective":
        """Objective of ``model``'s parameters from a per-batch loss.

        ``batch_loss(model, batch)`` returns the batch's MEAN loss (a scalar tensor); ``model`` is called
        like the user's module (``model(x)``, ``model(**batch)``; attributes such as ``model.config`` are
        forwarded) and is evaluated functionally at θ. ``data``: one batch, a list of batches, a
        ``DataLoader`` or any re-iterable of batches, where a batch is any nested dict / tuple / list of
        tensors (what Hugging Face collators give). Examples per batch = the leading size of the batch's
        first tensor unless ``batch_size(batch)`` says otherwise. Batches stay where the user keeps
        them and are moved to ``device`` one at a time; a shuffling ``DataLoader`` is replayed in the
        order of one epoch drawn at construction (see :mod:`landscape.data`).

        ``params``: which parameters the objective is a function of (default: those with
        ``requires_grad``; or names / glob patterns / a predicate ``(name, param) -> bool``, see
        :func:`landscape.params.select_parameters`); the others stay fixed at their current values.
        ``distributed=True`` (a ``torch.distributed`` process group must be initialised): ``data`` is
        this rank's shard, every value is the global one, weighted by global example counts, and
        the module's parameters and buffers are broadcast from rank 0.

        Refused: Dropout (p > 0) / BatchNorm in training mode (named by path and type), a loss that is
        not a mean over the batch's examples, and losses that broadcast targets against outputs.

        Args:
            model: the network (copied to ``dtype``/``device``; never modified).
            batch_loss: ``(model, batch) -> scalar tensor``, the batch's mean loss.
            data: one batch, a list of batches, a ``DataLoader`` or a re-iterable of batches.
            dtype, device: of the objective (default: those of the first selected parameter).
            reduction: ``"mean"`` (w_b = n_b/N) or ``"sum"`` (w_b = n_b).
            batch_size: ``batch -> number of examples`` (default: the leading size).
            params: the parameters θ is made of (default: those with ``requires_grad``).
            distributed: ``data`` is this rank's shard of a ``torch.distributed`` job.

        Returns:
            The objective; ``dim`` = the number of selected parameters.

        Example:
            >>> import torch, landscape as ls
            >>> model = torch.nn.Linear(2, 1).double()
            >>> data = [{"x": torch.ones(4, 2, dtype=torch.float64), "y": torch.zeros(4, 1, dtype=torch.float64)}]
            >>> obj = ls.Objective.from_batches(model, lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean(), data)
            >>> obj.dim, obj.n_examples
            (3, 4)
        """
        return build_model_objective(cls, model, batch_loss, data, dtype=dtype, device=device, reduction=reduction,
                                     batch_size=batch_size, params=params, distributed=distributed, pairs=False)

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        reduction: str = "mean",
        params: Any = None,
        distributed: bool = False,
    ) -> "Objective":
        """Objective of ``model``'s parameters with a criterion on ``(inputs, targets)`` batches.

        ``loss_fn(outputs, targets)`` is a mean-reduced criterion (``nn.MSELoss()``,
        ``nn.CrossEntropyLoss()``, ...); ``data`` is an ``(inputs, targets)`` pair of tensors or an
        iterable of such pairs (a ``DataLoader``). The same as :meth:`from_batches` with
        ``batch_loss = lambda m, b: loss_fn(m(b[0]), b[1])``. ``dtype``/``device`` default to those of
        the model's first parameter; the model is copied, never modified.

        Args:
            model: the network. loss_fn: ``(outputs, targets) -> scalar``, mean-reduced.
            data: an ``(inputs, targets)`` pair or an iterable of pairs.
            dtype, device, reduction, params, distributed: as in :meth:`from_batches`.

        Returns:
            The objective (``obj.loss_fn`` is ``loss_fn``).

        Example:
            >>> import torch, landscape as ls
            >>> X, Y = torch.eye(3, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)
            >>> model = torch.nn.Linear(3, 1, bias=False).double()
            >>> obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y))
            >>> obj.loss(torch.zeros(3, dtype=torch.float64))
            1.0
        """
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")

        def batch_loss(m: Any, b: Batch) -> torch.Tensor:
            return loss_fn(m(b[0]), b[1])

        obj = build_model_objective(cls, model, batch_loss, data, dtype=dtype, device=device, reduction=reduction,
                                    batch_size=None, params=params, distributed=distributed, pairs=True)
        obj.loss_fn = loss_fn
        return obj

    @classmethod
    def from_function(
        cls,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x0: torch.Tensor,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> "Objective":
        """Objective of a plain function ``fn``: 1-D tensor of shape ``(dim,)`` -> scalar tensor.

        ``fn`` must be written in torch operations (it is differentiated with ``torch.func``).
        It has no per-example structure, so per-example gradients are unavailable.

        Args:
            fn: ``(dim,) tensor -> scalar tensor``.
            x0: the initial point (anything ``torch.as_tensor`` takes), 1-D and non-empty.
            dtype, device: of the objective (default: those of ``x0``).

        Returns:
            The objective, ``dim = x0.numel()``, one parameter named ``"x"``.

        Example:
            >>> import torch, landscape as ls
            >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), [1.0, 2.0], dtype=torch.float64)
            >>> obj.dim, obj.loss(obj.initial_point())
            (2, 5.0)
        """
        return build_function_objective(cls, fn, x0, dtype=dtype, device=device)

    def restrict(self, params: Any, theta: torch.Tensor | None = None) -> "Objective":
        """The objective as a function of one parameter block, the other parameters fixed.

        Args:
            params: names / glob patterns / a predicate selecting the block.
            theta: the point (dim,) whose values fix the other parameters (default: the initial point).

        Returns:
            An objective sharing the data, whose ``initial_point()`` is ``theta`` restricted to the block.

        Example:
            >>> import torch, landscape as ls
            >>> X, Y = torch.eye(2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64)
            >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(), (X, Y))
            >>> obj.restrict("bias").param_names
            ('bias',)
        """
        if self.module is None:
            raise ValueError("restrict needs a model objective (from_batches / from_module)")
        theta = self._theta0 if theta is None else self.check_theta(theta)
        module = copy.deepcopy(self.module)
        own = dict(module.named_parameters())
        with torch.no_grad():
            for name, value in self.spec.unflatten(theta).items():
                own[name].copy_(value)
        names = select_parameters(list(module.named_parameters()), params)
        if not names:
            raise ValueError(f"params={params!r} selects no parameter")
        spec = ParamSpec(names=tuple(names), shapes=tuple(own[n].shape for n in names))
        theta0 = torch.cat([own[n].detach().reshape(-1) for n in names])
        sub = type(self)(spec=spec, theta0=theta0, module=module, loss_call=self._loss_call, fn=None,
                         source=self._source, reduction=self.reduction, n_examples=self.n_examples,
                         distributed=self.distributed, group=self._group, hessian_max_dim=self.hessian_max_dim)
        sub._examples.mode = self._examples.mode
        if hasattr(self, "loss_fn"):
            sub.loss_fn = self.loss_fn
        return sub

    # ------------------------------------------------------------------ basic properties
    @property
    def dim(self) -> int:
        """Number of parameters."""
        return self.spec.dim

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of every vector of the objective."""
        return self._theta0.dtype

    @property
    def device(self) -> torch.device:
        """The device of every vector of the objective."""
        return self._theta0.device

    @property
    def param_names(self) -> tuple[str, ...]:
        """The selected parameters' names, in flat order."""
        return self.spec.names

    @property
    def param_shapes(self) -> tuple[torch.Size, ...]:
        """The selected parameters' shapes, in flat order."""
        return self.spec.shapes

    @property
    def batches(self) -> list[Batch]:
        """Every batch on the objective's device, as a list (materialises the data; the objective
        itself never does: use :meth:`iter_batches`)."""
        return [b for b, _, _ in self.iter_batches()]

    def initial_point(self) -> torch.Tensor:
        """The module's parameters at construction (or ``x0``).

        Returns:
            A copy, shape ``(dim,)``.
        """
        return self._theta0.clone()

    def to_module_params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a flat vector to named parameter tensors.

        Args:
            theta: shape ``(dim,)``.

        Returns:
            ``{parameter name: view of theta with that parameter's shape}``.
        """
        return self.spec.unflatten(self.check_theta(theta))

    def flatten_params(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_module_params`.

        Args:
            tensors: ``{parameter name: tensor}`` for every selected parameter.

        Returns:
            The flat vector (dim,) in the objective's dtype and device.
        """
        return self.spec.flatten(tensors).to(device=self.device, dtype=self.dtype)

    def write_to_module(self, model: nn.Module, theta: torch.Tensor) -> None:
        """Copy ``theta`` into ``model``'s selected parameters (the one method that mutates a model).

        Args:
            model: a module with the same parameter names (e.g. the user's original).
            theta: shape ``(dim,)``.
        """
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.to_module_params(theta).items():
                params[name].copy_(value.to(device=params[name].device, dtype=params[name].dtype))

    def check_theta(self, theta: torch.Tensor, name: str = "theta") -> torch.Tensor:
        """Validate a parameter vector and move it to the objective's device.

        Args:
            theta: the vector to check. name: its name in error messages.

        Returns:
            ``theta`` on the objective's device.

        Raises:
            TypeError: not a tensor, or the wrong dtype. ValueError: not of shape ``(dim,)``.
            NonFiniteInputError: ``theta`` holds NaN or inf (named with the first such parameter); a
                :class:`NonFiniteError` and a ``ValueError``.

        Example:
            >>> import torch, landscape as ls
            >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
            >>> obj.loss(torch.tensor([0.0, float("nan")], dtype=torch.float64))
            Traceback (most recent call last):
            ...
            landscape.errors.NonFiniteInputError: theta is non-finite: nan at flat index 1, in parameter 'x'...
        """
        if not isinstance(theta, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(theta).__name__}")
        if theta.ndim != 1 or theta.numel() != self.dim:
            raise ValueError(f"{name} must be a flat vector of length {self.dim}, got shape {tuple(theta.shape)}")
        if theta.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {theta.dtype} but the objective uses {self.dtype}; "
                            f"convert with {name}.to({self.dtype})")
        if not bool(torch.isfinite(theta).all()):  # one reduction; named here, not blamed on a batch
            i = int((~torch.isfinite(theta)).nonzero()[0, 0])
            origin = (" (the model's own weights: obj.initial_point() holds them)"
                      if name == "theta" and self.module is not None and torch.equal(
                          theta.isfinite().cpu(), self._theta0.isfinite().cpu()) else "")
            raise NonFiniteInputError(f"{name} is non-finite: {float(theta[i])} at flat index {i}, in parameter "
                                 f"{self.spec.locate(i)!r}{origin}; the loss cannot be evaluated there")
        return theta.to(self.device)

    # ------------------------------------------------------------------ values and curvature
    def loss_tensor(self, theta: torch.Tensor) -> torch.Tensor:
        """Differentiable scalar loss (no finiteness check); usable inside ``torch.func`` transforms.

        Distributed: the global value, not differentiable (use :meth:`loss_and_grad`, :meth:`hvp`).

        Args:
            theta: shape ``(dim,)`` (may be batched by ``vmap``).

        Returns:
            A scalar tensor.
        """
        local = self.local_loss_tensor(theta)
        if self.distributed:
            return ReducedLoss.apply(local, self._group)
        return local

    def loss(self, theta: torch.Tensor) -> float:
        """Loss at ``theta`` as a Python float (accumulated in float64 over batches).

        Args:
            theta: shape ``(dim,)``.

        Returns:
            L(θ) (loss units).

        Raises:
            NonFiniteError: naming the batch where the loss is NaN or infinite.
        """
        theta = self.check_theta(theta)
        total = torch.zeros((), dtype=torch.float64, device=self.device if self.distributed else "cpu")
        err = None
        with torch.no_grad():
            for j, batch, _, w in self.iter_indexed_batches():
                value = float(w * self._batch_value(theta, batch))
                if not math.isfinite(value):
                    err = f"loss is {value} on {self.batch_location(j)}"
                    break
                total += value
        return float(self.all_reduce(total, err))

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Loss and gradient in one pass (one batch's graph in memory at a time).

        Args:
            theta: shape ``(dim,)``.

        Returns:
            ``(L(θ) as a float, ∇L(θ) of shape (dim,))``.

        Raises:
            NonFiniteError: naming the batch (and parameter) of a non-finite loss or gradient.
        """
        theta = self.check_theta(theta).detach()
        total, g = 0.0, torch.zeros_like(theta)
        err = None
        # Plain reverse mode, one batch at a time (memory of one batch's graph): for a single
        # gradient it has about half the per-call overhead of torch.func.grad_and_value.
        p = theta.clone().requires_grad_(True)
        for j, batch, _, w in self.iter_indexed_batches():
            with torch.enable_grad():
                li = w * self._batch_value(p, batch)
                # A batch whose loss does not depend on theta contributes a zero gradient.
                gi = (torch.autograd.grad(li, p, allow_unused=True, materialize_grads=True)[0]
                      if li.requires_grad else torch.zeros_like(p))
            value = float(li.detach())
            if not math.isfinite(value):
                err = f"loss is {value} on {self.batch_location(j)}"
                break
            err = self.nonfinite_error(gi, "gradient", self.batch_location(j))
            if err is not None:
                break
            total += value
            g += gi
        if self.distributed:
            buf = self.all_reduce(torch.cat([g, torch.tensor([total], dtype=g.dtype, device=g.device)]), err)
            return float(buf[-1]), buf[:-1].clone()
        self.all_reduce(g, err)
        return total, g

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Gradient at ``theta`` (:meth:`loss_and_grad`'s).

        Args:
            theta: shape ``(dim,)``.

        Returns:
            ∇L(θ), shape ``(dim,)``.
        """
        return self.loss_and_grad(theta)[1]

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product ``H(theta) @ v`` (reverse-over-reverse), shape ``(dim,)``.

        For many products at one point, :meth:`hvp_operator` reuses the graph and is faster.

        Args:
            theta: the point (dim,). v: the vector (dim,).

        Returns:
            ``H(θ) v``, shape ``(dim,)``.
        """
        theta = self.check_theta(theta).detach()
        v = self.check_theta(v, "v").detach()
        return self.all_reduce(*self.local_hvp(theta, v))

    def hvp_operator(self, theta: torch.Tensor, *, cache: bool | None = None) -> HessianOperator:
        """The Hessian at ``theta`` as a linear operator (see :class:`landscape.operators.HessianOperator`).

        Args:
            theta: the point, shape ``(dim,)``.
            cache: keep the first-order graph (None: when the data are tensors already in memory;
                recompute per product, memory of one batch, when they stream from a loader).

        Returns:
            The operator (``matvec``, ``matmat``, ``@``, ``n_matvec``, ``gradient``).
        """
        return make_operator(self, theta, "hessian", cache=cache)  # type: ignore[return-value]

    def curvature_operator(self, theta: torch.Tensor, curvature: str = "hessian") -> CurvatureOperator:
        """A curvature matrix at ``theta`` as an operator (:func:`landscape.operators.make_operator`).

        Args:
            theta: the point, shape ``(dim,)``.
            curvature: ``"hessian"``, ``"ggn"`` (generalised Gauss-Newton Jᵀ ∇²_f ℓ J) or ``"ef"``
                (empirical Fisher).

        Returns:
            The operator, with ``.matvec(v)``, ``.matmat(V)``, ``@``, ``.n_matvec``, ``.dim``, ``.dtype``, ``.device``.

        Example:
            >>> import torch, landscape as ls
            >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 * x[1], torch.ones(2, dtype=torch.float64))
            >>> obj.curvature_operator(obj.initial_point()).matmat(torch.eye(2, dtype=torch.float64)).tolist()
            [[2.0, 2.0], [2.0, 0.0]]
        """
        return make_operator(self, theta, curvature)

    def hessian(self, theta: torch.Tensor, *, max_dim: int | None = None, chunk_size: int = 128) -> torch.Tensor:
        """Dense symmetric Hessian, shape ``(dim, dim)``.

        Refuses when ``dim`` exceeds ``max_dim`` (default :attr:`hessian_max_dim` = 4096: the result
        is 128 MiB in float64, the computation needs about twice that); raise ``max_dim`` to allow more.

        Args:
            theta: shape ``(dim,)``.
            max_dim: the largest dimension allowed (default :attr:`hessian_max_dim`).
            chunk_size: Hessian columns per vmapped pullback.

        Returns:
            The symmetrised Hessian ½(H + Hᵀ), shape ``(dim, dim)``.

        Example:
            >>> import torch, landscape as ls
            >>> obj = ls.Objective.from_function(lambda x: x[0] ** 2 * x[1], torch.ones(2, dtype=torch.float64))
            >>> obj.hessian(obj.initial_point()).tolist()
            [[2.0, 2.0], [2.0, 0.0]]
        """
        limit = self.hessian_max_dim if max_dim is None else max_dim
        if self.dim > limit:
            raise ValueError(f"dense Hessian of dim {self.dim} exceeds max_dim={limit} "
                             f"({self.dim ** 2 * self._theta0.element_size() / 2**20:.0f} MiB); "
                             "use hvp/extreme_eigs, or pass a larger max_dim")
        theta = self.check_theta(theta).detach()
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        cols = torch.zeros(self.dim, self.dim, dtype=self.dtype, device=self.device)
        err = None
        for j, batch, _, w in self.iter_indexed_batches():
            # Reverse-over-reverse: one linearisation of the gradient per batch, pulled back
            # through the identity in vmapped chunks.
            _, pullback = vjp(grad(lambda t: w * self._batch_value(t, batch)), theta)
            try:
                block = vmap(lambda e: pullback(e)[0], chunk_size=chunk_size)(eye)
            except Exception:  # noqa: BLE001 - an op without a batching rule (RNNs): column by column
                block = torch.stack([pullback(eye[i])[0] for i in range(self.dim)])
            bad = ~torch.isfinite(block)
            if bool(bad.any()):
                a, b = (int(x) for x in bad.nonzero()[0])
                err = (f"Hessian entry ({a}, {b}) is non-finite on {self.batch_location(j)} (rows {self.spec.locate(a)!r}, "
                       f"columns {self.spec.locate(b)!r})")
                break
            cols += block
        cols = self.all_reduce(cols, err)
        return 0.5 * (cols + cols.T)

    # ------------------------------------------------------------------ per-example gradients
    def iter_per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None
                               ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, G)`` with ``G`` of shape ``(c, dim)``: unscaled gradients of examples
        ``start .. start + c - 1`` (``c <= chunk_size``; ``None`` = one chunk per batch). Distributed:
        this rank's examples, ``start`` counted within the shard.

        Args:
            theta: shape ``(dim,)``. chunk_size: examples per chunk.

        Returns:
            An iterator of ``(start, G)``.
        """
        return self._examples.chunks(theta, chunk_size)

    def per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Unscaled per-example gradients ``g_i = grad l_i(theta)``, shape ``(n, dim)`` (distributed:
        this rank's ``n_local_examples`` rows).

        Their mean is the gradient for ``reduction="mean"``, their sum for ``"sum"``.

        Args:
            theta: shape ``(dim,)``. chunk_size: examples per vmapped chunk (memory ``chunk_size × dim``).

        Returns:
            Shape ``(n, dim)``.

        Example:
            >>> import torch, landscape as ls
            >>> X, Y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
            >>> obj = ls.Objective.from_module(torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss(), (X, Y))
            >>> obj.per_example_grads(torch.ones(2, dtype=torch.float64)).tolist()
            [[2.0, 0.0], [0.0, 2.0]]
        """
        self.require_examples()
        out = torch.empty(self.n_local_examples, self.dim, dtype=self.dtype, device=self.device)
        for _ in self._examples.chunks(theta, chunk_size, out=out):
            pass
        return out

    def __repr__(self) -> str:
        src = type(self.module).__name__ if self.module is not None else "function"
        return (f"Objective({src}, dim={self.dim}, n_examples={self.n_examples}, "
                f"dtype={self.dtype}, device={self.device}, reduction={self.reduction!r})")
