"""The monitor's objective: the user's model, loss and data (or a fixed probe subset of them).

:func:`monitor_objective` turns what a researcher's loop already has into a
:class:`landscape.Objective`, with one explicit rule for the loss's form (no guessing):

- ``loss_form="criterion"`` (default): ``loss_fn(outputs, targets)`` on ``(inputs, targets)``
  batches, as :meth:`landscape.Objective.from_module`;
- ``loss_form="batch"``: ``loss_fn(model, batch) -> mean loss`` on any batches, as
  :meth:`landscape.Objective.from_batches` (Hugging Face models: ``lambda m, b: m(**b).loss``).

A model in training mode with Dropout or BatchNorm is analysed in evaluation mode (its loss is
otherwise random or batch-dependent): the flags are switched for the copy the objective takes and
switched back at once, and a warning says so. ``probe=N`` keeps a fixed subset of N examples,
drawn once without replacement by a seeded generator (the caller's random state untouched).

:class:`LoopLosses` keeps what the loop gives at each step, read lazily (one device
synchronisation per flush, not one per step).
"""
from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from .._functional import stochastic_modules
from ..data import is_single_batch, tensor_leaves
from ..objective import Objective

#: the accepted values of ``loss_form``
LOSS_FORMS: tuple[str, ...] = ("criterion", "batch")


def _index(batch: Any, idx: torch.Tensor) -> Any:
    return tree_map(lambda t: t[idx.to(t.device)] if isinstance(t, torch.Tensor) and t.ndim > 0 else t, batch)


def _concat(batches: list[Any]) -> Any:
    """One batch from in-memory batches of the same structure (tensors concatenated along dim 0)."""
    if len(batches) == 1:
        return batches[0]
    flat0, spec0 = torch.utils._pytree.tree_flatten(batches[0])
    cols = [[] for _ in flat0]
    for b in batches:
        flat, spec = torch.utils._pytree.tree_flatten(b)
        if spec != spec0:
            raise ValueError("probe= needs batches of one structure (the same keys / tuple layout in every batch)")
        for c, leaf in zip(cols, flat):
            c.append(leaf)
    leaves = [torch.cat(c) if isinstance(c[0], torch.Tensor) and c[0].ndim > 0 else c[0] for c in cols]
    return torch.utils._pytree.tree_unflatten(leaves, spec0)


def probe_subset(data: Any, n: int, seed: int = 0) -> tuple[Any, int]:
    """A fixed subset of ``n`` examples of in-memory data, drawn once without replacement.

    Args:
        data: an ``(inputs, targets)`` pair, one batch (dict / tuple of tensors with a common
            leading dimension), a list of such batches, or a ``DataLoader`` over a map-style
            dataset (then ``n`` items of the dataset, collated by the loader's ``collate_fn``).
        n: examples to keep (positive).
        seed: the generator's seed (a private ``torch.Generator``; the global state is untouched).

    Returns:
        ``(batch, total)``: the subset as one batch, and the number of examples it was drawn from.

    Raises:
        ValueError / TypeError: data that cannot be indexed, or a bad ``n``.

    Example:
        >>> import torch
        >>> X, Y = torch.arange(10.0).unsqueeze(1), torch.arange(10.0)
        >>> (x, y), total = probe_subset((X, Y), 4, seed=0)
        >>> tuple(x.shape), total, bool(torch.equal(x[:, 0], y))
        ((4, 1), 10, True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"probe must be a positive number of examples, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    if isinstance(data, torch.utils.data.DataLoader):
        ds = data.dataset
        if isinstance(ds, torch.utils.data.IterableDataset):
            raise TypeError("probe= needs a map-style dataset; an IterableDataset cannot be subsampled")
        total = len(ds)
        idx = torch.randperm(total, generator=gen)[: min(n, total)].sort().values
        return data.collate_fn([ds[int(i)] for i in idx]), total
    if is_single_batch(data):
        batch = data
    elif isinstance(data, (list, tuple)) and data and all(is_single_batch(b) for b in data):
        batch = _concat(list(data))
    else:
        raise TypeError(f"probe= needs data held in memory (a pair, a batch, a list of batches or a DataLoader "
                        f"over a map-style dataset), got {type(data).__name__}")
    leaves = [t for t in tensor_leaves(batch) if t.ndim > 0]
    if not leaves:
        raise ValueError("probe=: the data hold no tensor with a leading example dimension")
    total = int(leaves[0].shape[0])
    idx = torch.randperm(total, generator=gen)[: min(n, total)].sort().values
    return _index(batch, idx), total


def monitor_objective(model: nn.Module, loss_fn: Callable, data: Any, *, loss_form: str = "criterion",
                      probe: int | None = None, seed: int = 0, dtype: torch.dtype | None = None,
                      device: torch.device | str | None = None, reduction: str = "mean",
                      params: Any = None) -> tuple[Objective, dict[str, Any]]:
    """The objective a :class:`StallMonitor` evaluates (see the module docstring for the rules).

    Args:
        model: the user's model (read, never written; training flags restored at once).
        loss_fn: a criterion ``(outputs, targets) -> mean loss`` (``loss_form="criterion"``) or a
            ``(model, batch) -> mean loss`` (``loss_form="batch"``).
        data: the data the monitor evaluates: a pair, batches or a ``DataLoader``.
        loss_form: ``"criterion"`` or ``"batch"``.
        probe: keep a seeded subset of this many examples (None: all of ``data``).
        seed: the subset's seed.
        dtype, device, reduction, params: as in :meth:`landscape.Objective.from_batches`.

    Returns:
        ``(objective, info)`` with info ``{"loss_form", "probe", "n_examples", "n_total",
        "eval_mode": [modules switched to eval]}``.

    Raises:
        ValueError / TypeError: naming what is wrong (an unknown ``loss_form``; data that do not fit it).

    Example:
        >>> import torch
        >>> X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
        >>> obj, info = monitor_objective(torch.nn.Linear(3, 1).double(), torch.nn.MSELoss(), (X, Y), probe=8)
        >>> obj.n_examples, info["n_total"], info["loss_form"]
        (8, 20, 'criterion')
    """
    if loss_form not in LOSS_FORMS:
        raise ValueError(f"loss_form must be one of {LOSS_FORMS}, got {loss_form!r}: 'criterion' for "
                         "loss_fn(outputs, targets) on (inputs, targets) data, 'batch' for loss_fn(model, batch)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    n_total = None
    if probe is not None:
        data, n_total = probe_subset(data, probe, seed)
    switched = stochastic_modules(model)
    flags = {m: m.training for m in model.modules()}
    try:
        if switched:
            model.eval()
            warnings.warn(f"the monitor analyses the evaluation-mode loss: {', '.join(switched)} "
                          "switched to eval for its private copy (training flags restored)", stacklevel=3)
        try:
            if loss_form == "criterion":
                obj = Objective.from_module(model, loss_fn, data, dtype=dtype, device=device, reduction=reduction,
                                            params=params)
            else:
                obj = Objective.from_batches(model, loss_fn, data, dtype=dtype, device=device, reduction=reduction,
                                             params=params)
        except (TypeError, ValueError) as exc:
            hint = (" (loss_fn(model, batch)? pass loss_form='batch')" if loss_form == "criterion"
                    else " (a criterion loss_fn(outputs, targets)? pass loss_form='criterion')")
            raise type(exc)(f"{exc}{hint}") from exc
    finally:
        for m, flag in flags.items():
            m.training = flag
    info = {"loss_form": loss_form, "probe": probe, "n_examples": obj.n_examples,
            "n_total": n_total if n_total is not None else obj.n_examples, "eval_mode": switched}
    return obj, info


def sync_buffers(obj: Objective, model: nn.Module) -> None:
    """Copy ``model``'s buffers (e.g. BatchNorm running statistics) into the objective's private copy.

    Args:
        obj: the monitor's objective (built from ``model``).
        model: the user's model.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).double().eval()
        >>> obj, _ = monitor_objective(m, torch.nn.MSELoss(), (torch.randn(4, 2, dtype=torch.float64),
        ...                                                   torch.randn(4, 2, dtype=torch.float64)))
        >>> _ = m[1].running_mean.fill_(3.0); sync_buffers(obj, m)
        >>> obj.module[1].running_mean.tolist()
        [3.0, 3.0]
    """
    if obj.module is None:
        return
    own = dict(obj.module.named_buffers())
    if not own:
        return
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name in own and own[name].shape == buf.shape:
                own[name].copy_(buf.detach().to(device=own[name].device, dtype=own[name].dtype))


class LoopLosses:
    """The loop's losses as a monitor keeps them: ``values`` (one per step) and the trend ``window``.

    :meth:`add` reads a loss at once (a float, or None when missing or non-finite); :meth:`keep`
    only holds it (a detached tensor: no device synchronisation, no graph kept alive) and
    :meth:`flush` reads every held loss with one ``torch.stack(...).tolist()`` — on a GPU one
    synchronisation per flush instead of one per step. Same numbers either way.

    Args:
        maxlen: the trend window's length (the newest losses it keeps).
        warn: called with a message for a non-finite loss (the monitor warns once per run).

    Example:
        >>> import torch
        >>> log = LoopLosses(3, warn=print)
        >>> for v in (1.0, 2.0, float("nan"), 4.0):
        ...     log.keep(torch.tensor(v))
        >>> log.flush()
        the loop's loss is nan at step 2: the monitor skips it
        >>> log.values, list(log.window)
        ([1.0, 2.0, None, 4.0], [1.0, 2.0, 4.0])
    """

    def __init__(self, maxlen: int, warn: Callable[[str], None]) -> None:
        self.values: list[float | None] = []
        self.window: deque = deque(maxlen=maxlen)
        self._pending: list[Any] = []
        self._warn = warn

    def _read(self, v: Any) -> float | None:
        value = None if v is None else float(v)
        if value is not None and not math.isfinite(value):
            self._warn(f"the loop's loss is {value} at step {len(self.values)}: the monitor skips it")
            value = None
        self.values.append(value)
        return value

    def add(self, loss: Any, *, windowed: bool) -> float | None:
        """Read one step's loss now (tensor, number or None).

        Args:
            loss: the loop's loss. windowed: also append it to the trend window.

        Returns:
            The float, or None (missing or non-finite).
        """
        self.flush()
        value = self._read(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        if windowed and value is not None:
            self.window.append(value)
        return value

    def keep(self, loss: Any) -> None:
        """Hold one step's loss unread until :meth:`flush` (a loss on the CPU is read at once: no sync to save).

        Args:
            loss: the loop's loss (tensor, number or None).
        """
        if isinstance(loss, torch.Tensor):
            loss = loss.item() if loss.is_cpu else loss.detach()
        self._pending.append(loss)

    def flush(self) -> None:
        """Read the held losses (one synchronisation) into :attr:`values` and the window, in step order."""
        pend = self._pending
        if not pend:
            return
        self._pending = []
        tens = [v for v in pend if isinstance(v, torch.Tensor)]
        if tens:
            try:
                read = iter(torch.stack([v.reshape(()) for v in tens]).tolist())
                pend = [next(read) if isinstance(v, torch.Tensor) else v for v in pend]
            except (RuntimeError, TypeError, ValueError):   # mixed devices or dtypes: one at a time below
                pass
        values, window, isfinite = self.values, self.window, math.isfinite
        for v in pend:
            if v.__class__ is float and isfinite(v):
                values.append(v)
                window.append(v)
            elif self._read(v) is not None:
                window.append(values[-1])
