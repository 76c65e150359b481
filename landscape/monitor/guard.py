"""Leave the user's process as the monitor found it.

A monitor runs inside someone else's training loop: whatever it computes must not change what
the loop does next. :func:`preserved_state` saves and restores every random-number state a loop
may draw from (torch's CPU generator, every initialised CUDA device's generator, NumPy's global
``RandomState`` and Python's ``random``) and torch's grad mode, so a loop with a monitor draws the
same mini-batches, dropout masks and augmentations as the loop without it. Parameters, their
``.grad`` and their ``requires_grad`` flags are never written by the monitor (it reads
``p.detach()`` and evaluates a private copy of the model); :func:`process_state` and
:func:`same_state` let a test check all of it bit for bit.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn


def _cuda_states() -> list[torch.Tensor] | None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.get_rng_state_all()
    return None


@contextmanager
def preserved_state() -> Iterator[None]:
    """Run a block with every global RNG state and the grad mode restored afterwards.

    Saved on entry and restored on exit (also when the block raises): ``torch.get_rng_state()``,
    ``torch.cuda.get_rng_state_all()`` when CUDA is initialised, ``numpy.random.get_state()``,
    ``random.getstate()`` and ``torch.is_grad_enabled()``. Inside, grad mode is on (the monitor's
    gradients and Hessian-vector products need it even when the loop calls it under
    ``torch.no_grad()``).

    Yields:
        None.

    Example:
        >>> import torch
        >>> before = torch.get_rng_state()
        >>> with torch.no_grad(), preserved_state():
        ...     _ = torch.rand(3)                       # draws from the global generator
        ...     inside = torch.is_grad_enabled()
        >>> bool(torch.equal(before, torch.get_rng_state())), inside
        (True, True)
    """
    cpu = torch.get_rng_state()
    cuda = _cuda_states()
    np_state = np.random.get_state()
    py_state = random.getstate()
    grad = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(True)
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_grad_enabled(grad)


def process_state(model: nn.Module) -> dict[str, Any]:
    """Everything a monitor promises to leave unchanged, copied (for a bit-for-bit comparison).

    Args:
        model: the user's model.

    Returns:
        ``{"params", "grads", "requires_grad", "training", "torch_rng", "cuda_rng", "numpy_rng",
        "python_rng", "grad_enabled"}``: parameter and gradient copies by name (a gradient that is
        None stays None), the flags, and the RNG states.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 1)
        >>> s = process_state(m)
        >>> same_state(s, process_state(m))
        []
    """
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "grads": {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "torch_rng": torch.get_rng_state(), "cuda_rng": _cuda_states(),
        "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
        "grad_enabled": torch.is_grad_enabled(),
    }


def _same_tensor(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))


def same_state(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two :func:`process_state` snapshots (bit for bit).

    Args:
        a, b: two snapshots.

    Returns:
        The names of what differs (empty when everything is identical), e.g.
        ``["grads: 0.weight", "numpy_rng"]``.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 1)
        >>> s = process_state(m)
        >>> _ = torch.rand(1)
        >>> same_state(s, process_state(m))
        ['torch_rng']
    """
    out = []
    for key in ("params", "grads"):
        if a[key].keys() != b[key].keys():
            out.append(f"{key}: names")
        out += [f"{key}: {n}" for n in a[key] if n in b[key] and not _same_tensor(a[key][n], b[key][n])]
    for key in ("requires_grad", "training", "grad_enabled"):
        if a[key] != b[key]:
            out.append(key)
    if not bool(torch.equal(a["torch_rng"], b["torch_rng"])):
        out.append("torch_rng")
    ca, cb = a["cuda_rng"], b["cuda_rng"]
    if (ca is None) != (cb is None) or (ca is not None and not all(torch.equal(x, y) for x, y in zip(ca, cb))):
        out.append("cuda_rng")
    na, nb = a["numpy_rng"], b["numpy_rng"]
    if na[0] != nb[0] or not np.array_equal(na[1], nb[1]) or tuple(na[2:]) != tuple(nb[2:]):
        out.append("numpy_rng")
    if a["python_rng"] != b["python_rng"]:
        out.append("python_rng")
    return out
