"""Construction-time checks of a model objective (what :meth:`Objective.from_batches` refuses, and why).

Private to :mod:`landscape`: :class:`landscape.Objective` calls :func:`build_model_objective`.
"""
from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ._functional import BroadcastGuard, FunctionalModel, RandomOpRecorder, second_order_safe, stochastic_modules
from .data import BatchSource, check_pair, slice_batch, tensor_leaves
from .errors import NonFiniteError
from .params import ParamSpec, select_parameters

#: half-precision dtypes: accepted with one warning saying what they cannot certify
HALF_DTYPES = (torch.float16, torch.bfloat16)


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
        raise ValueError(stochastic_refusal(model, offenders))
    first = dict(named)[names[0]]
    dtype = dtype or first.dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating type, got {dtype}")
    warn_half(dtype)
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


def stochastic_refusal(model: nn.Module, offenders: list[str]) -> str:
    """The one-line refusal of a model with random or batch-dependent modules, and its fix per kind.

    Args:
        model: the user's model. offenders: :func:`landscape.stochastic_modules` of it.

    Returns:
        The message: which modules are random in train mode (Dropout, RReLU, attention/RNN dropout),
        which depend on the batch in train mode (BatchNorm) or in every mode (BatchNorm without
        running statistics), and what fixes each.

    Example:
        >>> from torch import nn
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> msg = stochastic_refusal(m, ["1 (BatchNorm1d)"])
        >>> "1 (BatchNorm1d)" in msg, "running statistics" in msg, "dropout" in msg
        (True, True, False)
    """
    bad = set(offenders)
    random_, batch, nostats = [], [], []
    dropout = rrelu = False
    for name, m in model.named_modules():
        label = f"{name or '<model>'} ({type(m).__name__})"
        if label not in bad:
            continue
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            (batch if m.track_running_stats else nostats).append(label)
        else:
            random_.append(label)
            rrelu = rrelu or isinstance(m, nn.RReLU)
            dropout = dropout or not isinstance(m, nn.RReLU)
    what = " and ".join(x for x in ("random" if random_ else "", "depend on the batch" if batch or nostats else "") if x)
    parts = ([f"random in train mode: {', '.join(random_)}"] if random_ else []) + (
        [f"normalised by the batch in train mode: {', '.join(batch)}"] if batch else []) + (
        [f"normalised by the batch in every mode (track_running_stats=False): {', '.join(nostats)}"] if nostats else [])
    fixes = []
    if random_ or batch:
        effects = [x for x, on in (("Dropout then passes its input through", dropout),
                                   ("RReLU uses its mean slope", rrelu),
                                   ("BatchNorm uses its running statistics", bool(batch))) if on]
        fixes.append(f"call model.eval() before building the objective ({', '.join(effects)})")
    if dropout:
        fixes.append("or set those dropout probabilities to 0")
    if nostats:
        fixes.append("rebuild the BatchNorm layers without running statistics with track_running_stats=True "
                     "(and fitted statistics) or replace them (GroupNorm, LayerNorm)")
    return (f"model has modules that make its loss {what}: {'; '.join(parts)}; the objective must be one fixed "
            f"function of the parameters, so curvature is ill-defined. Fix: {'; '.join(fixes)}.")


def warn_half(dtype: torch.dtype) -> None:
    """One ``RuntimeWarning`` for a half-precision objective: what it cannot certify.

    Args:
        dtype: the objective's dtype (nothing happens unless float16 or bfloat16).

    Example:
        >>> import warnings, torch
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     warn_half(torch.float16)
        >>> "cannot be certified" in str(w[0].message)
        True
    """
    if dtype not in HALF_DTYPES:
        return
    eps = torch.finfo(dtype).eps
    warnings.warn(
        f"dtype={dtype} (machine epsilon {eps:.1e}): losses, gradients and curvature products carry relative "
        f"round-off of ~{eps:.0e}, so eigenpairs cannot be certified below a residual of ~{eps:.0e}·‖H‖ (the "
        "default tol 1e-4 is out of reach: extreme_eigs reports such pairs unconverged), curvature below that "
        "level cannot be told from zero in classify_point, and traces and densities carry that error. For "
        "certified results pass dtype=torch.float32 or torch.float64 (the objective evaluates a copy of the "
        "model; yours stays in half precision).", RuntimeWarning, stacklevel=4)


class _WatchedModel(FunctionalModel):
    """A :class:`FunctionalModel` that remembers the arguments of a call in progress (``entered`` is
    None between calls), so an error raised inside the model can be described."""

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor], record: list) -> None:
        super().__init__(module, params, record=record)
        self.entered: tuple | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered = (args, kwargs)
        out = super().__call__(*args, **kwargs)
        self.entered = None
        return out


def _desc(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return f"{str(t.dtype).replace('torch.', '')} {tuple(t.shape)}"
    if isinstance(t, dict):
        return f"{type(t).__name__} with keys {list(t)[:6]}"
    if isinstance(t, (tuple, list)):
        return f"{type(t).__name__} of {len(t)}: " + ", ".join(_desc(x) for x in list(t)[:4])
    return type(t).__name__


def _raised(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def _diagnose(exc: Exception, obj: Any, batch: Any, model: _WatchedModel, calls: list, where: str) -> Exception:
    """A one-line error naming the batch and the cause of an exception raised by the first evaluation."""
    raised = _raised(exc)
    if model.entered is not None:  # raised inside the model
        ins = [t for t in tree_flatten(model.entered)[0] if isinstance(t, torch.Tensor)]
        ints = [t for t in ins if not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)]
        text = str(exc).lower()
        if ints and any(k in text for k in ("dtype", "type", "long", "int")):
            return TypeError(
                f"{where}: the model got an integer input ({', '.join(_desc(t) for t in ints)}) but computes in "
                f"{obj.dtype} ({raised}); convert that input to floating point in your data (e.g. x.float()): the "
                "objective passes integer tensors as they are (token ids, class labels), floating ones in its dtype")
        return RuntimeError(f"{where}: the model raised {raised} on inputs {', '.join(_desc(t) for t in ins) or '()'}")
    if not calls:
        return RuntimeError(f"{where}: batch_loss raised {raised} before calling the model")
    out = calls[-1][2]
    if not isinstance(out, torch.Tensor):
        pick = (f"out[{next(iter(out))!r}]" if isinstance(out, dict) and len(out) else "out[0]")
        return TypeError(
            f"{where}: the model returns a {_desc(out)}, not a tensor, and the loss raised {raised}; pick the "
            f"output the loss takes: from_module(model, lambda out, y: criterion({pick}, y), data), or "
            f"from_batches(model, lambda m, b: criterion(m(b[0]){pick[3:]}, b[1]), data)")
    fed = {id(t) for a, k, _ in calls for t in tree_flatten((a, k))[0] if isinstance(t, torch.Tensor)}
    targets = [t for t in tensor_leaves(batch) if id(t) not in fed]
    hint = ""
    text = str(exc).lower()
    for t in targets:
        if "target" not in text or out.ndim < 2:
            break
        if t.is_floating_point() and t.ndim == out.ndim - 1:
            hint = "; class-index targets (CrossEntropyLoss, NLLLoss) must be integers: pass targets.long()"
        elif not t.is_floating_point() and t.ndim == out.ndim and t.shape[-1] == 1:
            hint = (f"; class-index targets must have shape {tuple(t.shape[:-1])}, not {tuple(t.shape)}: "
                    "pass targets.reshape(-1)" if t.ndim == 2 else "; pass targets.squeeze(-1)")
    return ValueError(f"{where}: the loss raised {raised} (model output {_desc(out)}; "
                      f"targets {', '.join(_desc(t) for t in targets) or 'none'}){hint}")


def _bits(v: torch.Tensor) -> bytes:
    return bytes(v.detach().reshape(-1).cpu().contiguous().view(torch.uint8).tolist())


def _check_fixed_function(first: torch.Tensor, second: torch.Tensor, seen: list[str], where: str) -> None:
    """Two evaluations at one θ must agree bit for bit (module docstring of :mod:`landscape._functional`)."""
    if _bits(first) == _bits(second):
        return
    a, b = float(first), float(second)
    if seen:
        ops = ", ".join(sorted(set(seen)))
        raise ValueError(
            f"the loss is random: two evaluations at the same parameters on {where} gave {a:.6g} and {b:.6g}, and "
            f"random operations ran in the model or the loss ({ops}); the objective must be one fixed function of "
            "the parameters. Call model.eval() before building it and pass training=self.training to functional "
            "calls (F.dropout defaults to training=True), or remove the randomness")
    rel = abs(a - b) / max(abs(a), abs(b), torch.finfo(torch.float64).tiny)
    eps = torch.finfo(first.dtype).eps
    if math.isfinite(rel) and rel <= 1e3 * eps:
        warnings.warn(f"the loss is not bit-reproducible: two evaluations at the same parameters on {where} differ "
                      f"by {rel:.1e} relative (non-deterministic kernels, e.g. atomics on a GPU); every value carries "
                      "that noise. torch.use_deterministic_algorithms(True) removes it", RuntimeWarning, stacklevel=5)
        return
    raise ValueError(
        f"the loss is not a fixed function of the parameters: two evaluations at the same parameters on {where} "
        f"gave {a!r} and {b!r} and no torch random operation ran (random numbers from another library, e.g. "
        "numpy or random, or state that forward updates?); make the model's forward and the loss deterministic")


def _fixed_weight_error(obj: Any) -> str | None:
    """The first non-finite model weight that is not part of θ (NaN/inf parameter, NaN buffer), or None."""
    names = set(obj.spec.names)
    for name, p in obj.module.named_parameters():
        if name not in names and p.is_floating_point() and not bool(torch.isfinite(p).all()):
            return (f"the model's parameter {name!r} (not part of theta: params= leaves it fixed) holds "
                    f"{'nan' if bool(p.isnan().any()) else 'inf'}, so the loss is non-finite at every theta; "
                    "fix the model's weights or include it in params=")
    for name, t in obj.module.named_buffers():
        if t.is_floating_point() and bool(t.isnan().any()):
            return (f"the model's buffer {name!r} holds nan, so the loss is non-finite at every theta; "
                    "fix the model (e.g. reload its state_dict)")
    return None


def first_batch_checks(obj: Any, custom_count: bool) -> None:
    """On the first batch, with at most one evaluation more than the loss itself: the model and the
    loss run (an error names the batch and the cause: integer inputs, a tuple or dict output, class
    targets of the wrong type or shape); the loss is a scalar; it is one fixed function of θ (two
    evaluations agree bit for bit: a random op such as ``F.dropout`` in train mode is named); it does
    not broadcast targets against outputs; a non-finite fixed weight is named; and (when the
    examples are the batches' leading dimension) it is a mean over the batch (checked on two
    examples, to a relative 1e-4 or 64·eps for half precision).

    Args:
        obj: the objective just built.
        custom_count: the examples are counted by a user's ``batch_size`` (then the two-row mean
            check does not apply).

    Raises:
        ValueError, TypeError, RuntimeError, NonFiniteError: one line naming the problem and the fix.

    Example:
        >>> import torch, landscape as ls
        >>> X, Y = torch.ones(4, 2, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
        >>> ls.Objective.from_module(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(reduction="sum"), (X, Y))
        Traceback (most recent call last):
        ...
        ValueError: the loss is not a mean over examples: ...
    """
    j, batch, n, _ = next(iter(obj.iter_indexed_batches()))
    where = obj.batch_location(j)
    params = obj.spec.unflatten(obj.initial_point())
    calls: list = []
    probe = _WatchedModel(obj.module, params, calls)
    recorder = RandomOpRecorder()
    with torch.no_grad(), second_order_safe():
        try:
            with recorder:
                value = obj.call_batch_loss(probe, batch)
        except Exception as exc:  # noqa: BLE001 - described with the batch, chained to the original
            raise _diagnose(exc, obj, batch, probe, calls, where) from exc
        if not calls:
            raise ValueError("batch_loss never called the model: it must evaluate model(...) on the batch")
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError(f"batch_loss must return a scalar tensor (the batch's mean loss), got "
                             f"{type(value).__name__}{'' if not isinstance(value, torch.Tensor) else tuple(value.shape)}"
                             " (for Hugging Face outputs return out.loss)")
        # Targets: the batch's tensors (floating or integer) that the model was not called with.
        fed = {id(t) for a, k, _ in calls for t in tree_flatten((a, k))[0] if isinstance(t, torch.Tensor)}
        targets = [t for t in tensor_leaves(batch) if id(t) not in fed]
        with BroadcastGuard(targets):
            again = obj.call_batch_loss(FunctionalModel(obj.module, params), batch)
    _check_fixed_function(value, again, recorder.seen, where)
    if not bool(torch.isfinite(value).all()):
        err = _fixed_weight_error(obj)
        if err is not None:
            raise NonFiniteError(err)
    leading_ok = all(t.ndim > 0 and t.shape[0] == n for t in tensor_leaves(batch))
    # A custom batch_size counts something other than the leading rows (tokens, say): then the
    # batch loss is a mean over those units and the two-row check does not apply.
    if n >= 2 and leading_ok and not custom_count:
        with torch.no_grad(), second_order_safe():
            pair = float(obj.batch_loss_at(params, slice_batch(batch, 0, 2)))
            single = 0.5 * (float(obj.batch_loss_at(params, slice_batch(batch, 0, 1)))
                            + float(obj.batch_loss_at(params, slice_batch(batch, 1, 2))))
        rel = max(1e-4, 64 * torch.finfo(obj.dtype).eps)
        if (math.isfinite(pair) and math.isfinite(single)
                and abs(pair - single) > rel * max(abs(pair), abs(single), 1e-30)):
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
    warn_half(dtype)
    device = torch.device(device) if device is not None else x0.device
    x0 = x0.detach().to(device=device, dtype=dtype)
    probe = fn(x0)
    if not isinstance(probe, torch.Tensor) or probe.numel() != 1:
        raise ValueError("fn must return a scalar tensor")
    spec = ParamSpec(names=("x",), shapes=(torch.Size([x0.numel()]),))
    return cls(spec=spec, theta0=x0, module=None, loss_call=None, fn=fn, source=None, reduction="sum", n_examples=0)
