"""User data as a fixed, re-iterable sequence of batches that stay where the user keeps them.

A *batch* is any nested dict / tuple / list whose leaves are tensors (or other objects, passed
through untouched): an ``(inputs, targets)`` pair, a Hugging Face collator's dict, ``(x, y, w)``.
The objective reads its data through a :class:`BatchSource`: one pass at construction counts the
examples of every batch; afterwards each pass yields the user's batches one at a time, and the
objective moves each to its device just before use and drops it after, so memory beyond one batch
does not grow with the data set.

One fixed objective from a shuffling loader: for a ``torch.utils.data.DataLoader`` over a map-style
dataset the source records the loader's batch index order once (``list(loader.batch_sampler)``,
one integer per example) and replays exactly those batches on every pass, through a loader with
the same dataset, collate function and workers. Every pass therefore sees the same batches in the
same order, so losses, gradients and curvature products are bit-identical between passes. (For a
mean-reduced loss the objective itself, ``(1/N) Σ_i ℓ_i``, does not depend on how the examples are
grouped; fixing the order makes the floating-point sums reproducible too.) Other re-iterable
objects (an ``IterableDataset`` loader, a generator function wrapped in a class) are iterated as
they are and each pass is checked to give the same number of examples per batch; one-shot
iterators are read once and their batches kept as given (they cannot be read twice).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

Batch = Any  # a nested dict/tuple/list of tensors


def _is_tensor_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], torch.Tensor)
        and isinstance(data[1], torch.Tensor)
    )


def is_single_batch(data: Any) -> bool:
    """Whether ``data`` is one batch rather than a sequence of batches.

    Args:
        data: what the user passed.

    Returns:
        True for a dict, or a tuple/list whose elements are all tensors.

    Example:
        >>> import torch
        >>> is_single_batch((torch.ones(2), torch.ones(2))), is_single_batch([(torch.ones(2), torch.ones(2))])
        (True, False)
    """
    if isinstance(data, dict):
        return True
    return isinstance(data, (tuple, list)) and len(data) > 0 and all(isinstance(t, torch.Tensor) for t in data)


def tensor_leaves(batch: Batch) -> list[torch.Tensor]:
    """The tensors of a batch, in pytree order (dicts in insertion order).

    Args:
        batch: a nested dict / tuple / list.

    Returns:
        Its tensor leaves.

    Example:
        >>> import torch
        >>> len(tensor_leaves({"x": torch.ones(2), "meta": "id", "y": (torch.zeros(2),)}))
        2
    """
    return [t for t in tree_flatten(batch)[0] if isinstance(t, torch.Tensor)]


def to_device(batch: Batch, dtype: torch.dtype, device: torch.device) -> Batch:
    """A copy of ``batch`` on ``device``: floating tensors in ``dtype``, others keep theirs (labels, ids,
    masks). Tensors already there in that dtype are returned as they are (no copy).

    Args:
        batch: the batch. dtype: for floating tensors. device: the target device.

    Returns:
        The batch with moved (detached) tensors.

    Example:
        >>> import torch
        >>> b = to_device((torch.ones(2), torch.tensor([1, 2])), torch.float64, torch.device("cpu"))
        >>> b[0].dtype, b[1].dtype
        (torch.float64, torch.int64)
    """
    def move(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        if t.is_floating_point():
            return t.detach().to(device=device, dtype=dtype)
        return t.detach().to(device=device)
    return tree_map(move, batch)


def slice_batch(batch: Batch, start: int, stop: int) -> Batch:
    """Examples ``start .. stop - 1`` of a batch: every tensor sliced along its leading dimension.

    Args:
        batch: the batch. start, stop: the example range.

    Returns:
        The sliced batch (views).
    """
    return tree_map(lambda t: t[start:stop] if isinstance(t, torch.Tensor) else t, batch)


def default_batch_size(batch: Batch) -> int:
    """Examples in a batch: the leading size of its first tensor.

    Args:
        batch: the batch.

    Returns:
        The number of examples.

    Raises:
        TypeError: no tensor in the batch. ValueError: the first tensor is a scalar.
    """
    leaves = tensor_leaves(batch)
    if not leaves:
        raise TypeError(f"batch of type {type(batch).__name__} holds no tensors")
    first = leaves[0]
    if first.ndim == 0:
        raise ValueError("the batch's first tensor is a scalar: it has no leading example dimension "
                         "(pass batch_size=callable to count the examples)")
    return int(first.shape[0])


def check_pair(i: int, batch: Any) -> None:
    """The ``(inputs, targets)`` checks of :meth:`Objective.from_module`.

    Args:
        i: the batch's index (for the message). batch: the batch.

    Raises:
        TypeError: not a pair of tensors. ValueError: no leading example dimension, or mismatched counts.

    Example:
        >>> import torch
        >>> check_pair(0, (torch.ones(3, 2), torch.ones(2)))
        Traceback (most recent call last):
        ...
        ValueError: batch 0: inputs have 3 examples but targets have 2; their first dimensions must match
    """
    if not _is_tensor_pair(batch):
        raise TypeError(f"batch {i} is not an (inputs, targets) pair of tensors (got {type(batch).__name__})")
    x, y = batch
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"batch {i}: inputs and targets need a leading example dimension")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"batch {i}: inputs have {x.shape[0]} examples but targets have {y.shape[0]}; "
            "their first dimensions must match"
        )


class BatchSource:
    """A fixed sequence of batches, read one at a time (see the module docstring).

    ``counts[i]`` is the number of examples of the i-th non-empty batch; iteration yields
    ``(j, batch, n)`` (j the batch index) with the batch as the user holds it (not yet moved to
    the objective's device).

    Args:
        data: the user's data (see :meth:`landscape.Objective.from_batches`).
        batch_size: ``batch -> number of examples`` (default :func:`default_batch_size`).
        validate: ``(i, batch) -> None`` raising on a bad batch (e.g. :func:`check_pair`).
        allow_tensor: accept a single tensor as the one batch.

    Example:
        >>> import torch
        >>> src = BatchSource([(torch.ones(3, 2), torch.ones(3)), (torch.ones(1, 2), torch.ones(1))])
        >>> src.counts, [(j, n) for j, _, n in src], src.in_memory
        ([3, 1], [(0, 3), (1, 1)], True)
    """

    def __init__(self, data: Any, *, batch_size: Callable[[Batch], int] | None = None,
                 validate: Callable[[int, Any], None] | None = None, allow_tensor: bool = False) -> None:
        if data is None:
            raise ValueError("data is None: pass an (inputs, targets) pair of tensors or an iterable of batches")
        self._count_fn = batch_size or default_batch_size
        self._validate = validate
        self._loader = None
        self._held: list[Any] | None = None
        self._iterable: Iterable[Any] | None = None
        if isinstance(data, torch.Tensor):
            if not allow_tensor:
                raise TypeError("data is a single tensor: pass an (inputs, targets) pair of tensors")
            self._held = [data]
        elif _is_tensor_pair(data) or is_single_batch(data):
            self._held = [data]
        else:
            try:
                it = iter(data)
            except TypeError:
                raise TypeError(f"data of type {type(data).__name__} is neither an (inputs, targets) pair "
                                "nor an iterable of batches") from None
            if isinstance(data, torch.utils.data.DataLoader) and not isinstance(
                    data.dataset, torch.utils.data.IterableDataset):
                self._loader = _fixed_order_loader(data)
            elif it is data:  # a one-shot iterator: read once, keep its batches as given
                self._held = list(it)
            elif isinstance(data, (list, tuple)):
                self._held = list(data)
            else:
                self._iterable = data
        self.counts: list[int] = []
        first_pass = it if self._iterable is not None else self._raw()  # type: ignore[possibly-undefined]
        for i, batch in enumerate(first_pass):
            if self._validate is not None:
                self._validate(i, batch)
            n = int(self._count_fn(batch))
            if n < 0:
                raise ValueError(f"batch_size gave {n} examples for batch {i}")
            self.counts.append(n)
        if sum(self.counts) == 0:
            raise ValueError("data is empty: it holds no examples")

    @property
    def in_memory(self) -> bool:
        """True when the batches are tensors the user already holds (a list, a pair, a dict)."""
        return self._held is not None

    def _raw(self) -> Iterator[Any]:
        if self._held is not None:
            return iter(self._held)
        if self._loader is not None:
            return iter(self._loader)
        return iter(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, Any, int]]:
        """Yield ``(j, batch, n)`` for every non-empty batch, ``j`` its index among all batches."""
        counts = self.counts
        j = -1
        for j, batch in enumerate(self._raw()):
            if j >= len(counts):
                raise ValueError(f"the data changed between passes: it now has more than {len(counts)} batches")
            n = counts[j] if self._held is not None else int(self._count_fn(batch))
            if n != counts[j]:
                raise ValueError(f"the data changed between passes: batch {j} had {counts[j]} examples, now {n} "
                                 "(a shuffling iterable cannot define a fixed objective; use a map-style dataset)")
            if n > 0:
                yield j, batch, n
        if j + 1 != len(counts):
            raise ValueError(f"the data changed between passes: {len(counts)} batches, now {j + 1}")

    def __len__(self) -> int:
        return len(self.counts)


def _fixed_order_loader(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """A loader replaying ``loader``'s batch order of one epoch, drawn once (one int per example)."""
    common = dict(num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                  timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                  multiprocessing_context=loader.multiprocessing_context)
    if loader.num_workers > 0:
        common["prefetch_factor"] = loader.prefetch_factor
    if loader.batch_sampler is not None:
        order = [list(b) for b in loader.batch_sampler]
        return torch.utils.data.DataLoader(loader.dataset, batch_sampler=order, **common)
    order = list(loader.sampler)  # batch_size=None: each index is one batch
    return torch.utils.data.DataLoader(loader.dataset, batch_size=None, sampler=order, **common)
