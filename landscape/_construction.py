"""Construction-time checks of a model objective (what :meth:`Objective.from_batches` refuses, and why).

Private to :mod:`landscape`: :class:`landscape.Objective` calls :func:`build_model_objective`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ._functional import BroadcastGuard, FunctionalModel, second_order_safe, stochastic_modules
from .data import BatchSource, check_pair, slice_batch, tensor_leaves
from .params import ParamSpec, select_parameters


def build_model_objective(cls: type, model: nn.Module, batch_loss: Callable, data: Any, *, dtype: torch.dtype | None,
                          device: torch.device | str | None, reduction: str, batch_size: Callable | None, params: Any,
                          distributed: bool, pairs: bool) -> Any:
    """An objective of class ``cls`` for a model and a per-batch loss, after every check.

    What :meth:`landscape.Objective.from_batches` and :meth:`~landscape.Objective.from_module` do
    (see there for the arguments; ``pairs``: the data are ``(inputs, targets)`` pairs). Copies
    the model to ``dtype``/``device``, selects the parameters, reads the data once (counts),
    all-reduces the example count when distributed and runs :func:`first_batch_checks`.

    Args:
        cls: the objective class. model, batch_loss, data, dtype, device, reduction, batch_size,
            params, distributed: as in ``from_batches``. pairs: the data are ``(inputs, targets)``.

    Returns:
        The objective (an instance of ``cls``).

    Raises:
        TypeError, ValueError, RuntimeError: naming what is wrong (see ``from_batches``).

    Example: ``Objective.from_batches(...)`` and ``Objective.from_module(...)`` call it.
    """
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
    first_batch_checks(obj, custom_count=batch_size is not None)
    return obj


def first_batch_checks(obj: Any, custom_count: bool) -> None:
    """On the first batch: the loss is a scalar, does not broadcast targets against outputs, and
    (when the examples are the batches' leading dimension) is a mean over the batch.

    Args:
        obj: the objective just built.
        custom_count: the examples are counted by a user's ``batch_size`` (then the two-row mean
            check does not apply).

    Raises:
        ValueError: naming the problem.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.ones(4, 2, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
        >>> ls.Objective.from_module(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(reduction="sum"), (X, Y))
        Traceback (most recent call last):
        ...
        ValueError: the loss is not a mean over examples: ...
    """
    _, batch, n, _ = next(iter(obj.iter_indexed_batches()))
    params = obj.spec.unflatten(obj.initial_point())
    calls: list = []
    model = FunctionalModel(obj.module, params, record=calls)
    with torch.no_grad(), second_order_safe():
        # Targets: floating tensors of the batch that the model was not called with.
        probe_calls: list = []
        probe = FunctionalModel(obj.module, params, record=probe_calls)
        value = obj.call_batch_loss(probe, batch)
        fed = {id(t) for a, k, _ in probe_calls for t in tree_flatten((a, k))[0] if isinstance(t, torch.Tensor)}
        targets = [t for t in tensor_leaves(batch) if t.is_floating_point() and id(t) not in fed]
        if not probe_calls:
            raise ValueError("batch_loss never called the model: it must evaluate model(...) on the batch")
        if targets:
            with BroadcastGuard(targets):
                obj.call_batch_loss(model, batch)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError(f"batch_loss must return a scalar tensor (the batch's mean loss), got "
                         f"{type(value).__name__}{'' if not isinstance(value, torch.Tensor) else tuple(value.shape)}"
                         " (for Hugging Face outputs return out.loss)")
    leading_ok = all(t.ndim > 0 and t.shape[0] == n for t in tensor_leaves(batch))
    # A custom batch_size counts something other than the leading rows (tokens, say): then the
    # batch loss is a mean over those units and the two-row check does not apply.
    if n >= 2 and leading_ok and not custom_count:
        with torch.no_grad(), second_order_safe():
            pair = float(obj.batch_loss_at(params, slice_batch(batch, 0, 2)))
            single = 0.5 * (float(obj.batch_loss_at(params, slice_batch(batch, 0, 1)))
                            + float(obj.batch_loss_at(params, slice_batch(batch, 1, 2))))
        if (math.isfinite(pair) and math.isfinite(single)
                and abs(pair - single) > 1e-4 * max(abs(pair), abs(single), 1e-30)):
            raise ValueError(
                f"the loss is not a mean over examples: on two examples it gives {pair:.6g}, the mean of the "
                f"two single-example losses is {single:.6g}. Pass a mean-reduced criterion (e.g. nn.MSELoss()) "
                "and choose the objective's reduction with reduction='mean' or 'sum'")


def build_function_objective(cls: type, fn: Callable[[torch.Tensor], torch.Tensor], x0: Any, *,
                             dtype: torch.dtype | None, device: torch.device | str | None) -> Any:
    """What :meth:`landscape.Objective.from_function` does.

    Args:
        cls: the objective class. fn, x0, dtype, device: as in ``from_function``.

    Example: ``Objective.from_function(fn, x0)`` calls it.

    Returns:
        The objective (an instance of ``cls``).

    Raises:
        ValueError: ``x0`` is not a non-empty 1-D tensor, or ``fn`` does not return a scalar tensor.
        TypeError: a non-floating dtype.
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
    return cls(spec=spec, theta0=x0, module=None, loss_call=None, fn=fn, source=None, reduction="sum", n_examples=0)
