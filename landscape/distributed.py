"""Data parallel objectives on ``torch.distributed`` (gloo on CPU, NCCL on GPU).

``Objective.from_batches(..., distributed=True)`` (or ``from_module``) on every rank of an
initialised process group makes each rank's ``data`` its shard. The objective is the global one,

    L(θ) = Σ_r Σ_{b ∈ shard r} w_b ℓ_b(θ),   w_b = n_b / N  (mean)  or  n_b  (sum),

with N the GLOBAL number of examples (all-reduced once at construction), so uneven shards are
weighted correctly (dividing each rank's sum by its own example count would not be). Loss,
gradient, Hessian-, GGN- and Fisher-vector products and the dense Hessian are computed on the
local shard and summed with one ``all_reduce`` each; the module's parameters and buffers are
broadcast from rank 0 at construction. Seeded Lanczos / SLQ / Hutchinson draw the same probes on
every rank and see the same all-reduced products, so every rank returns identical results.
A non-finite value on one rank raises :class:`landscape.NonFiniteError` on every rank (the culprit
names its batch), so no rank is left waiting in a collective.

Per-example gradients (``per_example_grads``) are the local shard's rows; statistics built from
their sums (``cancellation_stats``) are global. ``loss_tensor`` gives the global value but cannot be
differentiated (use ``loss_and_grad`` / ``hvp`` / operators), so autograd-based dense paths of
``classify_point`` are not distributed.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch.distributed as dist


def shard_range(n: int, rank: int, world_size: int, sizes: list[int] | None = None) -> range:
    """Indices of one rank's contiguous shard of ``n`` examples.

    Args:
        n: the number of examples. rank: this rank. world_size: the number of ranks.
        sizes: one size per rank, summing to n (None: as even as possible, the first
            ``n % world_size`` ranks get one more).

    Returns:
        The rank's ``range`` of example indices.

    Example:
        >>> [shard_range(10, r, 3) for r in range(3)]
        [range(0, 4), range(4, 7), range(7, 10)]
    """
    if sizes is None:
        base, extra = divmod(n, world_size)
        sizes = [base + (r < extra) for r in range(world_size)]
    if len(sizes) != world_size or sum(sizes) != n:
        raise ValueError(f"shard sizes {sizes} do not split {n} examples over {world_size} ranks")
    start = sum(sizes[:rank])
    return range(start, start + sizes[rank])


def free_port() -> int:
    """A free TCP port on localhost (for a local test group).

    Returns:
        The port number.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world_size: int, port: int, backend: str, fn: Callable, args: tuple) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def spawn_local(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo") -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes joined in a localhost process
    group (``torch.multiprocessing.spawn``); ``fn`` must be importable (a module-level function).

    Args:
        fn: ``fn(rank, world_size, *args)``. world_size: processes. args: passed on.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (GPU).

    Example (not run here: it starts processes)::

        spawn_local(my_module.check_objective, 2)   # tests/test_distributed.py does this
    """
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world_size, free_port(), backend, fn, args), nprocs=world_size, join=True)
