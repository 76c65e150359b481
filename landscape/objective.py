"""An objective: loss, gradient, Hessian-vector products and per-example gradients of a flat vector.

Everything is functional: the parameters are one flat 1-D tensor ``theta`` of length ``dim``;
a model is evaluated with ``torch.func.functional_call`` on a private copy, so the user's module
is never touched. Data are read one batch at a time from where the user keeps them
(:class:`landscape.data.BatchSource`); every evaluation runs attention in the math SDPA backend,
the one whose backward is itself differentiable, so HVPs work through attention with no action
from the user.
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from .data import Batch, BatchSource, check_pair, is_single_batch, slice_batch, tensor_leaves, to_device
from .params import ParamSpec, select_parameters

DEFAULT_HESSIAN_MAX_DIM = 4096

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class NonFiniteError(FloatingPointError):
    """The loss, gradient or a curvature product is NaN or infinite."""


# ---------------------------------------------------------------------------- evaluation context
@contextlib.contextmanager
def second_order_safe() -> Iterator[None]:
    """Attention in a form that can be differentiated twice, on every device.

    ``F.scaled_dot_product_attention`` (used by ``nn.MultiheadAttention``, ``nn.TransformerEncoder``
    and Hugging Face's default "sdpa" attention) dispatches to fused flash / memory-efficient
    kernels whose backward has no derivative; the math backend is composed of ordinary matmuls and
    a softmax and supports double backward on CPU and CUDA. The fused fast path of
    ``nn.TransformerEncoderLayer`` in inference mode is switched off too, so the loss, the gradient
    and the Hessian are those of one and the same function.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    mha = getattr(torch.backends, "mha", None)
    toggle = mha is not None and hasattr(mha, "get_fastpath_enabled")
    fast = mha.get_fastpath_enabled() if toggle else None
    if toggle:
        mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        if toggle:
            mha.set_fastpath_enabled(fast)


class _FunctionalModel:
    """The user's module evaluated at given parameters: called like the module, attributes forwarded.

    ``record``: a list that receives every call's output; ``replay``: outputs returned instead of
    running the module (the generalised Gauss-Newton splits a loss into model and loss-of-output).
    """

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor], *, record: list | None = None,
                 replay: list | None = None) -> None:
        self._module = module
        self._params = params
        self._record = record
        self._replay = replay

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._replay is not None:
            if not self._replay:
                raise RuntimeError("batch_loss called the model more often than when its outputs were recorded")
            return self._replay.pop(0)
        out = functional_call(self._module, self._params, args, kwargs)
        if self._record is not None:
            self._record.append((args, kwargs, out))
        return out

    def __getattr__(self, name: str) -> Any:
        if name in ("_module", "_params", "_record", "_replay"):  # not yet set (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self._module, name)


def stochastic_modules(model: nn.Module) -> list[str]:
    """Submodules whose output is random or depends on the other examples of the batch in their
    current mode, as ``"path (Type)"``: Dropout with p > 0 in training, MultiheadAttention and stacked
    RNNs with dropout > 0 in training, BatchNorm in training or without running statistics."""
    out = []
    for name, m in model.named_modules():
        bad = False
        if isinstance(m, _DROPOUT):
            bad = m.training and float(m.p) > 0
        elif isinstance(m, nn.MultiheadAttention):
            bad = m.training and float(m.dropout) > 0
        elif isinstance(m, nn.RNNBase):  # dropout between stacked recurrent layers
            bad = m.training and float(m.dropout) > 0 and m.num_layers > 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            bad = m.training or not m.track_running_stats
        if bad:
            out.append(f"{name or '<model>'} ({type(m).__name__})")
    return out


class _BroadcastGuard(TorchFunctionMode):
    """Refuse an operation that broadcasts a target tensor against another tensor to a shape larger
    than both (``(N, 1)`` outputs minus ``(N,)`` targets gives ``(N, N)``): almost always a shape bug
    that silently changes the loss."""

    def __init__(self, targets: list[torch.Tensor]) -> None:
        super().__init__()
        self.ids = {id(t): t for t in targets}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        for t in tensors:
            if id(t) not in self.ids:
                continue
            for a in tensors:
                if a is t or not a.is_floating_point() or a.shape == t.shape:
                    continue
                try:
                    b = torch.broadcast_shapes(a.shape, t.shape)
                except RuntimeError:
                    continue
                if math.prod(b) > max(a.numel(), t.numel()):
                    name = getattr(func, "__name__", str(func))
                    raise ValueError(
                        f"the loss would broadcast a tensor of shape {tuple(a.shape)} (the model's output) against "
                        f"targets of shape {tuple(t.shape)} to {tuple(b)} (in {name}); make the shapes equal, e.g. "
                        f"targets.reshape{tuple(a.shape)}")
        return func(*args, **kwargs)


class _ReducedLoss(torch.autograd.Function):
    """Sum of a scalar over ranks in the forward pass; its gradient is refused (the gradient of the
    global loss needs the parameter gradient all-reduced: use loss_and_grad / hvp / operators)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        y = x.detach().clone()
        torch.distributed.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        raise RuntimeError("a distributed objective's loss_tensor cannot be differentiated directly; use "
                           "obj.loss_and_grad, obj.hvp or obj.curvature_operator (they all-reduce parameter "
                           "gradients)")


class Objective:
    """A twice-differentiable objective of a flat parameter vector.

    Build one with :meth:`from_batches` (model + per-batch loss + data), :meth:`from_module`
    (model + criterion + ``(inputs, targets)`` data) or :meth:`from_function` (a function of a 1-D
    tensor). All vectors are 1-D tensors of length :attr:`dim` with the objective's ``dtype`` on its
    ``device``. The objective is ``Σ_b w_b · ℓ_b(θ)`` with ``ℓ_b`` the mean loss of batch b and
    ``w_b = n_b / N`` (``reduction="mean"``) or ``n_b`` (``"sum"``), N the (global) number of examples.
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
        self._per_example_mode: str | None = None  # "vmap" or "loop", decided on first use

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
        """
        return cls._build(model, batch_loss, data, dtype=dtype, device=device, reduction=reduction,
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
        """
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")

        def batch_loss(m: Any, b: Batch) -> torch.Tensor:
            return loss_fn(m(b[0]), b[1])

        obj = cls._build(model, batch_loss, data, dtype=dtype, device=device, reduction=reduction, batch_size=None,
                         params=params, distributed=distributed, pairs=True)
        obj.loss_fn = loss_fn
        return obj

    @classmethod
    def _build(cls, model: nn.Module, batch_loss: Callable, data: Any, *, dtype, device, reduction: str,
               batch_size, params, distributed: bool, pairs: bool) -> "Objective":
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(batch_loss):
            raise TypeError(f"batch_loss must be callable (model, batch) -> scalar, got {type(batch_loss).__name__}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        group = None
        if distributed:
            if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                raise RuntimeError("distributed=True needs an initialised torch.distributed process group "
                                   "(torch.distributed.init_process_group, e.g. under torchrun)")
        named = list(model.named_parameters())
        names = select_parameters(named, params)
        if not names:
            raise ValueError("model has no trainable parameters (none with requires_grad=True)"
                             if params is None else f"params={params!r} selects no parameter")
        offenders = stochastic_modules(model)
        if offenders:
            raise ValueError(
                f"model is in train mode with stochastic or batch-dependent modules: {', '.join(offenders)}; "
                "its loss is random or depends on the batch, so curvature is ill-defined. "
                "Call model.eval() (or set their dropout to 0) before building the objective.")
        first = dict(named)[names[0]]
        dtype = dtype or first.dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        device = torch.device(device) if device is not None else first.device

        module = copy.deepcopy(model).to(device=device, dtype=dtype)
        for p in module.parameters():
            p.requires_grad_(False)  # the objective differentiates theta, never the copy's own tensors
        if distributed:
            with torch.no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    torch.distributed.broadcast(t.data, src=0, group=group)
        own = dict(module.named_parameters())
        spec = ParamSpec(names=tuple(names), shapes=tuple(own[n].shape for n in names))
        theta0 = torch.cat([own[n].detach().reshape(-1) for n in names])

        source = BatchSource(data, batch_size=batch_size, validate=check_pair if pairs else None,
                             allow_tensor=not pairs)
        n_local = sum(source.counts)
        n_total = n_local
        if distributed:
            # On the objective's device: NCCL reduces only CUDA tensors.
            t = torch.tensor([float(n_local)], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(t, group=group)
            n_total = int(t.item())
        obj = cls(spec=spec, theta0=theta0, module=module, loss_call=batch_loss, fn=None, source=source,
                  reduction=reduction, n_examples=n_total, distributed=distributed, group=group)
        obj._first_batch_checks(custom_count=batch_size is not None)
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
        """
        if not isinstance(x0, torch.Tensor):
            x0 = torch.as_tensor(x0, dtype=dtype or torch.get_default_dtype())
        if x0.ndim != 1 or x0.numel() == 0:
            raise ValueError(f"x0 must be a non-empty 1-D tensor, got shape {tuple(x0.shape)}")
        dtype = dtype or x0.dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating type, got {dtype}")
        device = torch.device(device) if device is not None else x0.device
        x0 = x0.detach().to(device=device, dtype=dtype)
        probe = fn(x0)
        if not isinstance(probe, torch.Tensor) or probe.numel() != 1:
            raise ValueError("fn must return a scalar tensor")
        spec = ParamSpec(names=("x",), shapes=(torch.Size([x0.numel()]),))
        return cls(spec=spec, theta0=x0, module=None, loss_call=None, fn=fn, source=None, reduction="sum",
                   n_examples=0)

    def restrict(self, params: Any, theta: torch.Tensor | None = None) -> "Objective":
        """The objective as a function of the parameter block ``params`` only (names / globs /
        predicate), the other parameters fixed at their values in ``theta`` (default: the initial
        point). Shares the data; its point is ``sub.initial_point()`` = ``theta`` restricted."""
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
        sub._per_example_mode = self._per_example_mode
        if hasattr(self, "loss_fn"):
            sub.loss_fn = self.loss_fn
        return sub

    def _first_batch_checks(self, custom_count: bool) -> None:
        """On the first batch: the loss is a scalar, does not broadcast targets against outputs, and
        (when the examples are the batches' leading dimension) is a mean over the batch."""
        j, raw, n = next(iter(self._source))  # type: ignore[arg-type]
        batch = to_device(raw, self.dtype, self.device)
        params = self.spec.unflatten(self._theta0)
        calls: list = []
        model = _FunctionalModel(self.module, params, record=calls)  # type: ignore[arg-type]
        with torch.no_grad(), second_order_safe():
            # Targets: floating tensors of the batch that the model was not called with.
            probe_calls: list = []
            probe = _FunctionalModel(self.module, params, record=probe_calls)  # type: ignore[arg-type]
            value = self._loss_call(probe, batch)  # type: ignore[misc]
            fed = {id(t) for a, k, _ in probe_calls for t in tree_flatten((a, k))[0] if isinstance(t, torch.Tensor)}
            targets = [t for t in tensor_leaves(batch) if t.is_floating_point() and id(t) not in fed]
            if not probe_calls:
                raise ValueError("batch_loss never called the model: it must evaluate model(...) on the batch")
            if targets:
                with _BroadcastGuard(targets):
                    self._loss_call(model, batch)  # type: ignore[misc]
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(f"batch_loss must return a scalar tensor (the batch's mean loss), got "
                             f"{type(value).__name__}{'' if not isinstance(value, torch.Tensor) else tuple(value.shape)}"
                             " (for Hugging Face outputs return out.loss)")
        leading_ok = all(t.ndim > 0 and t.shape[0] == n for t in tensor_leaves(batch))
        # A custom batch_size counts something other than the leading rows (tokens, say): then the
        # batch loss is a mean over those units and the two-row check does not apply.
        if n >= 2 and leading_ok and not custom_count:
            with torch.no_grad(), second_order_safe():
                pair = float(self.batch_loss_at(params, slice_batch(batch, 0, 2)))
                single = 0.5 * (float(self.batch_loss_at(params, slice_batch(batch, 0, 1)))
                                + float(self.batch_loss_at(params, slice_batch(batch, 1, 2))))
            if (math.isfinite(pair) and math.isfinite(single)
                    and abs(pair - single) > 1e-4 * max(abs(pair), abs(single), 1e-30)):
                raise ValueError(
                    f"the loss is not a mean over examples: on two examples it gives {pair:.6g}, the mean of the "
                    f"two single-example losses is {single:.6g}. Pass a mean-reduced criterion (e.g. nn.MSELoss()) "
                    "and choose the objective's reduction with reduction='mean' or 'sum'")

    # ------------------------------------------------------------------ basic properties
    @property
    def dim(self) -> int:
        """Number of parameters."""
        return self.spec.dim

    @property
    def dtype(self) -> torch.dtype:
        return self._theta0.dtype

    @property
    def device(self) -> torch.device:
        return self._theta0.device

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.spec.names

    @property
    def param_shapes(self) -> tuple[torch.Size, ...]:
        return self.spec.shapes

    @property
    def batches(self) -> list[Batch]:
        """Every batch on the objective's device, as a list (materialises the data; the objective
        itself never does: use :meth:`iter_batches`)."""
        return [b for b, _, _ in self.iter_batches()]

    def initial_point(self) -> torch.Tensor:
        """The module's parameters at construction (or ``x0``), flat, shape ``(dim,)``."""
        return self._theta0.clone()

    def to_module_params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a flat vector to ``{parameter name: tensor of that parameter's shape}`` (views)."""
        return self.spec.unflatten(self.check_theta(theta))

    def flatten_params(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_module_params`."""
        return self.spec.flatten(tensors).to(device=self.device, dtype=self.dtype)

    def write_to_module(self, model: nn.Module, theta: torch.Tensor) -> None:
        """Copy ``theta`` into ``model``'s selected parameters (the one method that mutates a model)."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.to_module_params(theta).items():
                params[name].copy_(value.to(device=params[name].device, dtype=params[name].dtype))

    def check_theta(self, theta: torch.Tensor, name: str = "theta") -> torch.Tensor:
        """Validate a parameter vector and move it to the objective's device."""
        if not isinstance(theta, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(theta).__name__}")
        if theta.ndim != 1 or theta.numel() != self.dim:
            raise ValueError(f"{name} must be a flat vector of length {self.dim}, got shape {tuple(theta.shape)}")
        if theta.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {theta.dtype} but the objective uses {self.dtype}; "
                            f"convert with {name}.to({self.dtype})")
        return theta.to(self.device)

    # ------------------------------------------------------------------ the stable internal API
    def iter_batches(self) -> Iterator[tuple[Batch, int, float]]:
        """Yield ``(batch, n_examples, weight)`` one batch at a time, the batch on the objective's
        device/dtype; the objective is ``Σ weight · batch_loss_at(params, batch)`` (over all ranks
        when distributed). For :meth:`from_function` objectives: one ``(None, 0, 1.0)``."""
        for _, batch, n, w in self._indexed():
            yield batch, n, w

    def _indexed(self) -> Iterator[tuple[int, Batch, int, float]]:
        if self._source is None:
            yield 0, None, 0, 1.0
            return
        for j, raw, n in self._source:
            yield j, to_device(raw, self.dtype, self.device), n, self._weights[j]

    def batch_loss_at(self, params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """The batch's MEAN loss (scalar tensor), the model evaluated functionally at ``params``
        (``{name: tensor}`` for :attr:`param_names`); module hooks fire; attention in the math
        backend (see :func:`second_order_safe`)."""
        if self._fn is not None:
            return self._fn(params["x"]).reshape(())
        with second_order_safe():
            return self._loss_call(_FunctionalModel(self.module, params), batch).reshape(())  # type: ignore[misc]

    def _batch_value(self, theta: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.batch_loss_at(self.spec.unflatten(theta), batch)

    # ------------------------------------------------------------------ distributed helpers
    def _where(self, j: int) -> str:
        if self._source is None:
            return "the function"
        start, stop = self._starts[j], self._starts[j] + self._counts[j]
        rank = f"rank {self.rank} " if self.distributed else ""
        return f"{rank}batch {j} (examples {start}..{stop - 1})"

    def all_reduce(self, t: torch.Tensor, error: str | None = None) -> torch.Tensor:
        """Sum ``t`` over ranks (identity when not distributed) and raise :class:`NonFiniteError`
        on every rank when any rank passed an ``error`` (so no rank waits in a collective forever)."""
        if not self.distributed:
            if error is not None:
                raise NonFiniteError(error)
            return t
        flag = torch.zeros(1, dtype=t.dtype, device=t.device)
        if error is not None:
            flag += 1
        buf = torch.cat([torch.nan_to_num(t.reshape(-1)), flag])
        torch.distributed.all_reduce(buf, group=self._group)
        if float(buf[-1]) > 0:
            raise NonFiniteError(error or f"non-finite values on {int(buf[-1])} other rank(s)")
        return buf[:-1].view_as(t)

    def _vector_error(self, vec: torch.Tensor, what: str, where: str) -> str | None:
        if bool(torch.isfinite(vec).all()):
            return None
        idx = int((~torch.isfinite(vec)).nonzero()[0, 0])
        return (f"{what} is non-finite on {where}, first in parameter {self.spec.locate(idx)!r} "
                f"(flat index {idx})")

    def _check_vector(self, vec: torch.Tensor, what: str, where: str) -> None:
        err = self._vector_error(vec, what, where)
        if err is not None:
            raise NonFiniteError(err)

    # ------------------------------------------------------------------ pure functions
    def _local_loss_tensor(self, theta: torch.Tensor) -> torch.Tensor:
        total = None
        for _, batch, _, w in self._indexed():
            term = w * self._batch_value(theta, batch)
            total = term if total is None else total + term
        return total  # type: ignore[return-value]

    def loss_tensor(self, theta: torch.Tensor) -> torch.Tensor:
        """Differentiable scalar loss (no finiteness check); usable inside ``torch.func`` transforms.
        Distributed: the global value, not differentiable (use :meth:`loss_and_grad`, :meth:`hvp`)."""
        local = self._local_loss_tensor(theta)
        if self.distributed:
            return _ReducedLoss.apply(local, self._group)
        return local

    def _local_hvp(self, theta: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, str | None]:
        # Reverse-over-reverse (H is symmetric, so vᵀH = Hv): double backward is supported by every
        # built-in loss, while forward-over-reverse fails for some (mse_loss, huber_loss in torch 2.x).
        out = torch.zeros_like(theta)
        for j, batch, _, w in self._indexed():
            hv = vjp(grad(lambda t: w * self._batch_value(t, batch)), theta)[1](v)[0]
            err = self._vector_error(hv, "Hessian-vector product", self._where(j))
            if err is not None:
                return out, err
            out = out + hv
        return out, None

    def _hvp_pure(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        hv, err = self._local_hvp(theta, v)
        return self.all_reduce(hv, err)

    # ------------------------------------------------------------------ public evaluation
    def loss(self, theta: torch.Tensor) -> float:
        """Loss at ``theta`` as a Python float. Raises :class:`NonFiniteError` naming the batch."""
        theta = self.check_theta(theta)
        total = torch.zeros((), dtype=torch.float64, device=self.device if self.distributed else "cpu")
        err = None
        with torch.no_grad():
            for j, batch, _, w in self._indexed():
                value = float(w * self._batch_value(theta, batch))
                if not math.isfinite(value):
                    err = f"loss is {value} on {self._where(j)}"
                    break
                total += value
        return float(self.all_reduce(total, err))

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Loss (float) and gradient (shape ``(dim,)``) in one pass."""
        theta = self.check_theta(theta).detach()
        total, g = 0.0, torch.zeros_like(theta)
        err = None
        # Plain reverse mode, one batch at a time (memory of one batch's graph): for a single
        # gradient it has about half the per-call overhead of torch.func.grad_and_value.
        p = theta.clone().requires_grad_(True)
        for j, batch, _, w in self._indexed():
            with torch.enable_grad():
                li = w * self._batch_value(p, batch)
                # A batch whose loss does not depend on theta contributes a zero gradient.
                gi = (torch.autograd.grad(li, p, allow_unused=True, materialize_grads=True)[0]
                      if li.requires_grad else torch.zeros_like(p))
            value = float(li.detach())
            if not math.isfinite(value):
                err = f"loss is {value} on {self._where(j)}"
                break
            err = self._vector_error(gi, "gradient", self._where(j))
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
        """Gradient at ``theta``, shape ``(dim,)``."""
        return self.loss_and_grad(theta)[1]

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product ``H(theta) @ v`` (reverse-over-reverse), shape ``(dim,)``.

        For many products at one point, :meth:`hvp_operator` reuses the graph and is faster.
        """
        theta = self.check_theta(theta).detach()
        v = self.check_theta(v, "v").detach()
        return self._hvp_pure(theta, v)

    def hvp_operator(self, theta: torch.Tensor, *, cache: bool | None = None) -> "HessianOperator":
        """The Hessian at ``theta`` as a linear operator (see :class:`HessianOperator`). ``cache=None``:
        keep the first-order graph when the data are tensors already in memory, recompute per
        product (memory of one batch) when they stream from a loader."""
        if cache is None:
            cache = self._source is None or self._source.in_memory
        return HessianOperator(self, theta, cache=cache)

    def curvature_operator(self, theta: torch.Tensor, curvature: str = "hessian"):
        """A curvature matrix at ``theta`` as an operator with ``.matvec(v)``, ``.n_matvec``, ``.dim``,
        ``.dtype``, ``.device``: ``"hessian"`` (:class:`HessianOperator`), ``"ggn"`` (generalised
        Gauss-Newton Jᵀ ∇²_f ℓ J) or ``"ef"`` (empirical Fisher), see :mod:`landscape.curvature`."""
        if curvature == "hessian":
            return self.hvp_operator(theta)
        from .curvature import EmpiricalFisherOperator, GGNOperator
        if curvature == "ggn":
            return GGNOperator(self, theta)
        if curvature == "ef":
            return EmpiricalFisherOperator(self, theta)
        raise ValueError(f"curvature must be 'hessian', 'ggn' or 'ef', got {curvature!r}")

    def hessian(self, theta: torch.Tensor, *, max_dim: int | None = None, chunk_size: int = 128) -> torch.Tensor:
        """Dense symmetric Hessian, shape ``(dim, dim)``.

        Refuses when ``dim`` exceeds ``max_dim`` (default :attr:`hessian_max_dim` = 4096: the result
        is 128 MiB in float64, the computation needs about twice that); raise ``max_dim`` to allow more.
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
        for j, batch, _, w in self._indexed():
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
                err = (f"Hessian entry ({a}, {b}) is non-finite on {self._where(j)} (rows {self.spec.locate(a)!r}, "
                       f"columns {self.spec.locate(b)!r})")
                break
            cols += block
        cols = self.all_reduce(cols, err)
        return 0.5 * (cols + cols.T)

    # ------------------------------------------------------------------ per-example gradients
    def _require_examples(self) -> None:
        if self._source is None:
            raise ValueError("per-example gradients need a model + data objective (from_module / from_batches); "
                             "this objective was built from a plain function")

    def _example_loss(self, params: dict[str, torch.Tensor], example: Batch) -> torch.Tensor:
        # One example (leading dimension removed by vmap, or kept by the loop) as a batch of one.
        return self.batch_loss_at(params, example)

    def _vmapped_grads(self, params: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        in_dims = (None, tree_map(lambda t: 0 if isinstance(t, torch.Tensor) else None, batch))

        def one(p: dict[str, torch.Tensor], ex: Batch) -> torch.Tensor:
            return self._example_loss(p, tree_map(lambda t: t.unsqueeze(0) if isinstance(t, torch.Tensor) else t, ex))

        return vmap(grad(one), in_dims=in_dims)(params, batch)

    def _looped_grads(self, params: dict[str, torch.Tensor], batch: Batch, c: int) -> dict[str, torch.Tensor]:
        rows = [grad(self._example_loss)(params, slice_batch(batch, i, i + 1)) for i in range(c)]
        return {name: torch.stack([r[name] for r in rows]) for name in self.spec.names}

    def _chunk_grads(self, params: dict[str, torch.Tensor], batch: Batch, c: int) -> dict[str, torch.Tensor]:
        """Per-example gradients of a chunk of ``c`` examples: vmap over the leading dimension of every
        tensor; where vmap fails on the first chunk (RNN kernels, data-dependent control flow), one
        warning and from then on an example-by-example loop."""
        if self._per_example_mode == "loop":
            return self._looped_grads(params, batch, c)
        if self._per_example_mode == "vmap":
            return self._vmapped_grads(params, batch)
        reason = None
        try:
            gd = self._vmapped_grads(params, batch)
            for name, shape in zip(self.spec.names, self.spec.shapes):
                if tuple(gd[name].shape) != (c, *shape):
                    reason = f"vmapped gradient of {name!r} has shape {tuple(gd[name].shape)}, expected {(c, *shape)}"
                    break
        except Exception as exc:  # noqa: BLE001 - any op without a batching rule
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        if reason is None:
            self._per_example_mode = "vmap"
            return gd
        warnings.warn(f"per-example gradients: vmap is not usable for this model ({reason}); computing them "
                      "one example at a time (slower, same values)", RuntimeWarning, stacklevel=4)
        self._per_example_mode = "loop"
        return self._looped_grads(params, batch, c)

    def _example_chunks(self, theta: torch.Tensor, chunk_size: int | None, out: torch.Tensor | None = None
                        ) -> Iterator[tuple[int, torch.Tensor]]:
        self._require_examples()
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        theta = self.check_theta(theta).detach()
        params = self.spec.unflatten(theta)
        slices = list(self.spec.slices.items())
        for j, batch, n, _ in self._indexed():
            bad = [tuple(t.shape) for t in tensor_leaves(batch) if t.ndim == 0 or t.shape[0] != n]
            if bad:
                raise ValueError(f"per-example gradients slice every tensor of a batch along its leading dimension, "
                                 f"but {self._where(j)} has {n} examples and tensors of shapes {bad}")
            start = self._starts[j]
            step = n if chunk_size is None else chunk_size
            for a in range(0, n, step):
                c = min(step, n - a)
                gd = self._chunk_grads(params, slice_batch(batch, a, a + c), c)
                G = (out[start + a:start + a + c] if out is not None
                     else torch.empty(c, self.dim, dtype=self.dtype, device=self.device))
                for name, sl in slices:
                    G[:, sl] = gd[name].reshape(c, -1)
                del gd
                if not bool(torch.isfinite(G.sum())):  # one cheap reduction; locate only on failure
                    badm = ~torch.isfinite(G)
                    if bool(badm.any()):
                        row, col = (int(t) for t in badm.nonzero()[0])
                        raise NonFiniteError(f"per-example gradient is non-finite for example {start + a + row} "
                                             f"on {self._where(j)}, first in parameter "
                                             f"{self.spec.locate(col)!r} (flat index {col})")
                yield start + a, G

    def iter_per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None
                               ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, G)`` with ``G`` of shape ``(c, dim)``: unscaled gradients of examples
        ``start .. start + c - 1`` (``c <= chunk_size``; ``None`` = one chunk per batch). Distributed:
        this rank's examples, ``start`` counted within the shard."""
        return self._example_chunks(theta, chunk_size)

    def per_example_grads(self, theta: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Unscaled per-example gradients ``g_i = grad l_i(theta)``, shape ``(n, dim)`` (distributed:
        this rank's ``n_local_examples`` rows).

        Their mean is the gradient for ``reduction="mean"``, their sum for ``"sum"``.
        """
        self._require_examples()
        out = torch.empty(self.n_local_examples, self.dim, dtype=self.dtype, device=self.device)
        for _ in self._example_chunks(theta, chunk_size, out=out):
            pass
        return out

    def __repr__(self) -> str:
        src = type(self.module).__name__ if self.module is not None else "function"
        return (f"Objective({src}, dim={self.dim}, n_examples={self.n_examples}, "
                f"dtype={self.dtype}, device={self.device}, reduction={self.reduction!r})")


class HessianOperator:
    """The Hessian at a fixed point as a symmetric linear operator on flat vectors.

    With ``cache=True`` the first-order graph is built once and every product is one
    double-backward pass (memory: the autograd graph of the whole local dataset); with
    ``cache=False`` each product is a fresh reverse-over-reverse pass, one batch at a time.
    :attr:`n_matvec` counts products. Distributed objectives all-reduce every product, so every
    rank sees the same operator. A non-finite product raises :class:`NonFiniteError` naming the batch.
    """

    def __init__(self, obj: Objective, theta: torch.Tensor, *, cache: bool = True) -> None:
        self.obj = obj
        self.theta = obj.check_theta(theta).detach().clone()
        self.shape = (obj.dim, obj.dim)
        self.dim = obj.dim
        self.dtype = obj.dtype
        self.device = obj.device
        self.n_matvec = 0
        self._g: torch.Tensor | None = None
        self._gradient: torch.Tensor | None = None
        self._gradient_reduced = not obj.distributed
        if cache:
            self._p = self.theta.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = obj._local_loss_tensor(self._p)
                self._g = (torch.autograd.grad(loss, self._p, create_graph=True)[0]
                           if loss.requires_grad else torch.zeros_like(self._p))
            self._gradient = self._g.detach()
            if not self._g.requires_grad:  # objective is linear in theta: the Hessian is zero
                self._g = None
                cache = False
        self.cache = cache

    @property
    def gradient(self) -> torch.Tensor | None:
        """The gradient at ``theta`` (dim,), detached, which the cached graph computed anyway (summed
        over ranks when distributed: a collective, every rank must ask); None without a cache.
        :func:`landscape.extreme_eigs` mixes it into its start vector."""
        if self._gradient is not None and not self._gradient_reduced:
            self._gradient = self.obj.all_reduce(self._gradient.clone())
            self._gradient_reduced = True
        return self._gradient

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H @ v`` for ``v`` of shape ``(dim,)``."""
        if v.shape != (self.shape[0],):
            raise ValueError(f"v must have shape ({self.shape[0]},), got {tuple(v.shape)}")
        self.n_matvec += 1
        v = v.to(device=self.device, dtype=self.dtype)
        if self._g is None:
            return self.obj._hvp_pure(self.theta, v).detach()
        hv = torch.autograd.grad(self._g, self._p, v, retain_graph=True)[0].detach()
        err = None
        if not bool(torch.isfinite(hv).all()):
            _, err = self.obj._local_hvp(self.theta, v)  # locate the batch
            err = err or "Hessian-vector product is non-finite on the data"
        return self.obj.all_reduce(hv, err)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H @ V`` for ``V`` of shape ``(dim, k)``."""
        return torch.stack([self.matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    def to_scipy(self):  # -> scipy.sparse.linalg.LinearOperator
        """A SciPy ``LinearOperator`` (float64 NumPy in and out) for SciPy solvers."""
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def mv(x: "np.ndarray") -> "np.ndarray":
            t = torch.as_tensor(np.asarray(x).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np.float64)
