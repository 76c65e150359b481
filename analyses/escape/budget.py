"""What a design of the escape study costs, measured: the CPU time of runs already made
(``escape.timings.jsonl``, one line per run, written by the sweep) extrapolated to a plan's jobs.

Each job of the plan takes the mean CPU time of the measured runs that match it most closely — the
same part, cell and method; else the same part and cell; else the same part; else every run — so a
quick run (4 methods) prices the 19 methods of the full design at its cells' means, and a run with
every method (a pilot, or a partial full run) prices them one by one. ``measured_share`` says how
many jobs were priced by their own (part, cell, method). CPU time, not wall time: it hardly depends on
the load of a shared machine. The wall time on W workers is CPU / W (the runs are independent; an
instance is built inside the first run that needs it on a worker, so builds are in the CPU times).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..sweep import timings_path


def read_timings(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The timing lines of one or more study folders (or ``escape.timings.jsonl`` files).

    Args:
        paths: folders holding ``escape.timings.jsonl``, or the files themselves (missing ones skipped).

    Returns:
        The lines with a ``cpu_time_s``, in file order.
    """
    out = []
    for p in paths:
        p = Path(p)
        f = timings_path(p / "escape.jsonl") if p.is_dir() else p
        if not f.exists():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                t = json.loads(line)
                if isinstance(t.get("cpu_time_s"), (int, float)):
                    out.append(t)
    return out


def estimate(timings: Sequence[dict[str, Any]], jobs: Sequence[dict[str, Any]], workers: int = 2
             ) -> dict[str, Any]:
    """The CPU time of ``jobs`` extrapolated from measured runs (module docstring).

    Args:
        timings: measured runs (``part``, ``cell``, ``method``, ``cpu_time_s``), e.g. :func:`read_timings`.
        jobs: the plan's jobs (:func:`analyses.escape.design.plan`).
        workers: the processes the wall time is given for.

    Returns:
        ``cpu_s`` (total), ``wall_s`` (``cpu_s / workers``), ``workers``, ``jobs``, ``measured_runs``,
        ``measured_share`` (jobs priced by their own part, cell and method), ``by_part`` {part: cpu_s}.

    Raises:
        ValueError: no measured run.

    >>> t = [{"part": "main", "cell": "c", "method": "gd", "cpu_time_s": 1.0},
    ...      {"part": "main", "cell": "c", "method": "rms", "cpu_time_s": 3.0}]
    >>> jobs = [{"part": "main", "cell": "c", "method": m} for m in ("gd", "rms", "adam")]
    >>> e = estimate(t, jobs, workers=2)
    >>> e["cpu_s"], e["wall_s"], round(e["measured_share"], 3)     # adam at the cell's mean, 2 s
    (6.0, 3.0, 0.667)
    """
    if not timings:
        raise ValueError("no measured run to extrapolate from")
    sums: dict[tuple, list[float]] = {}
    for t in timings:
        key = (t.get("part"), t.get("cell"), t.get("method"))
        for k in (key, key[:2], key[:1], ()):
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += float(t["cpu_time_s"])
            acc[1] += 1
    total, exact, by_part = 0.0, 0, {}
    for j in jobs:
        key = (j.get("part"), j.get("cell"), j.get("method"))
        for depth, k in enumerate((key, key[:2], key[:1], ())):
            if k in sums:
                s, n = sums[k]
                cost = s / n
                exact += depth == 0
                break
        total += cost
        by_part[j.get("part")] = by_part.get(j.get("part"), 0.0) + cost
    return {"cpu_s": total, "wall_s": total / max(1, int(workers)), "workers": int(workers), "jobs": len(jobs),
            "measured_runs": len(timings), "measured_share": exact / len(jobs) if jobs else 1.0, "by_part": by_part}


def budget_line(e: dict[str, Any], what: str = "the full design") -> str:
    """One line saying what :func:`estimate` found.

    Args:
        e: its result.
        what: what was priced.

    Returns:
        The line.

    >>> budget_line({"cpu_s": 1800.0, "wall_s": 900.0, "workers": 2, "jobs": 10, "measured_runs": 4,
    ...              "measured_share": 0.5, "by_part": {"main": 1800.0}})
    'the full design: 10 runs, ~30 CPU-min, ~15 min on 2 cores (main 30 min CPU); priced from 4 measured runs, 50 % of the jobs by their own cell and method'
    """
    parts = ", ".join(f"{p} {v / 60:.0f} min CPU" for p, v in e["by_part"].items())
    return (f"{what}: {e['jobs']} runs, ~{e['cpu_s'] / 60:.0f} CPU-min, ~{e['wall_s'] / 60:.0f} min on "
            f"{e['workers']} cores ({parts}); priced from {e['measured_runs']} measured runs, "
            f"{100 * e['measured_share']:.0f} % of the jobs by their own cell and method")
