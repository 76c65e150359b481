"""Picklable top-level jobs for the sweep fault tests (``tests/test_sweep_faults.py``).

Worker processes import this module by name (``_sweep_jobs``): spawn workers get the parent's
``sys.path``, Dask workers started by a test get ``tests/`` on their ``PYTHONPATH``.

A job is a dict ``{"i": int, "dir": str | None, "hold": bool, "steps": int}``; its record depends on
``i`` and ``steps`` only, never on where, when or how often the job ran. With ``dir`` set, each
start of the job leaves a marker file ``dir/start-<i>-<pid>`` (the tests read which process runs
which job from it, and how many times a job ran); with ``hold`` it then waits until ``dir/go``
exists, so that a test can kill the process while the job is known to be running.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

#: the longest a held job waits for its ``go`` file before it gives up (an orphan never hangs)
HOLD_LIMIT_S = 120.0


def started(d: str | os.PathLike, i: int) -> list[int]:
    """The process ids that started job ``i`` so far, from the markers in ``d``.

    Args:
        d: the job's marker directory.
        i: the job's index.

    Returns:
        The pids, in no particular order (one per start of the job).
    """
    return [int(p.name.rsplit("-", 1)[1]) for p in Path(d).glob(f"start-{i}-*")]


def torch_job(job: dict[str, Any]) -> dict[str, Any]:
    """A small deterministic training run: a few steps of full-batch gradient descent on a
    two-layer float32 network seeded by ``job["i"]`` (matmuls and reductions that torch could
    spread over threads, so the record is bit-stable only when the sweep pins the thread count).

    Args:
        job: ``{"i": int, "steps": int (default 20), "dir": str | None, "hold": bool}`` (module
            docstring).

    Returns:
        ``{"i", "steps", "loss", "weight_sum", "threads"}`` plus a host-dependent ``"timing"`` entry
        (the sweep moves it to the timings side file).
    """
    import torch

    t0 = time.perf_counter()
    d = job.get("dir")
    if d:
        Path(d, f"start-{job['i']}-{os.getpid()}").touch()
        if job.get("hold"):
            go, t_end = Path(d, "go"), time.monotonic() + HOLD_LIMIT_S
            while not go.exists() and time.monotonic() < t_end:
                time.sleep(0.02)
    g = torch.Generator().manual_seed(job["i"])
    x = torch.randn(256, 64, generator=g)
    y = torch.randn(256, 1, generator=g)
    w1 = (torch.randn(64, 128, generator=g) / 8).requires_grad_()
    w2 = (torch.randn(128, 1, generator=g) / 11).requires_grad_()
    loss = torch.zeros(())
    for _ in range(job.get("steps", 20)):
        loss = ((torch.tanh(x @ w1) @ w2 - y) ** 2).mean()
        g1, g2 = torch.autograd.grad(loss, (w1, w2))
        with torch.no_grad():
            w1 -= 0.1 * g1
            w2 -= 0.1 * g2
    return {"i": job["i"], "steps": job.get("steps", 20), "loss": float(loss.detach()).hex(),
            "weight_sum": float((w1.sum() + w2.sum()).detach()).hex(), "threads": torch.get_num_threads(),
            "timing": {"wall_time_s": time.perf_counter() - t0}}
