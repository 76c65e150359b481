"""Turning user data into a list of validated ``(inputs, targets)`` batches on one device."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


def _is_tensor_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], torch.Tensor)
        and isinstance(data[1], torch.Tensor)
    )


def _cast(t: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Floating tensors follow the objective's dtype; integer class labels keep theirs.
    if t.is_floating_point():
        return t.detach().to(device=device, dtype=dtype)
    return t.detach().to(device=device)


def as_batches(data: Any, *, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    """Validate ``data`` and return it as a list of batches.

    ``data`` is an ``(inputs, targets)`` pair of tensors or any iterable of such pairs (a
    ``DataLoader``). Inputs and targets of each batch must have the same leading size. The data
    are materialised once, so a shuffling loader still defines one fixed objective.
    """
    if data is None:
        raise ValueError("data is None: pass an (inputs, targets) pair of tensors or an iterable of batches")
    if _is_tensor_pair(data):
        raw: Iterable[Any] = [data]
    elif isinstance(data, torch.Tensor):
        raise TypeError("data is a single tensor: pass an (inputs, targets) pair of tensors")
    else:
        try:
            raw = iter(data)
        except TypeError:
            raise TypeError(
                f"data of type {type(data).__name__} is neither an (inputs, targets) pair nor an iterable of batches"
            ) from None
    batches: list[Batch] = []
    for i, batch in enumerate(raw):
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
        if x.shape[0] == 0:
            continue
        batches.append((_cast(x, dtype, device), _cast(y, dtype, device)))
    if not batches:
        raise ValueError("data is empty: it holds no examples")
    return batches
