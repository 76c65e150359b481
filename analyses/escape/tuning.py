"""Step sizes of the methods whose step does not follow the gradient's size (Adam, RMSprop, sign-GD,
normalised GD), chosen **once per cell on tuning instances** — instance indices from
:data:`analyses.problems.escape_instances.TUNING_OFFSET`, never a test instance — and then fixed in
:data:`analyses.escape.design.TUNED_LR` (``landscape escape --tune`` reruns the choice).

Rule: for each cell and method, every step size of :data:`analyses.escape.design.TUNING_GRID` runs
on :data:`analyses.escape.design.TUNING_INSTANCES` tuning instances; the score of a step size is the
median over them of the steps to the target, a run that missed it (or diverged) counting twice its
horizon; the smallest score wins, ties to the smaller step size.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..problems.escape_instances import MAIN_CELLS
from ..stats import median
from .design import TUNING_INSTANCES, tuning_jobs
from .runner import run_study


def tuning_score(r: dict[str, Any]) -> float:
    """A tuning run's score: its steps to the target, or twice its horizon when it missed it.

    Args:
        r: the run's record.

    Returns:
        The score (steps).

    >>> tuning_score({"reached_target": False, "horizon": 100}), tuning_score({"reached_target": True,
    ...                                                                       "steps_to_target": 7})
    (200.0, 7.0)
    """
    return float(r["steps_to_target"]) if r.get("reached_target") else 2.0 * float(r["horizon"])


def choose(records: Sequence[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """The step size per cell and method (module docstring).

    Args:
        records: the tuning runs' records (part ``"tune"``; ``overrides["_lr"]`` their step size).

    Returns:
        ``(chosen {cell: {method: lr}}, scores {cell: {method: {lr: median score}}})``.

    >>> recs = [{"part": "tune", "cell": "c", "method": "adam", "status": "ok", "overrides": {"_lr": lr},
    ...          "reached_target": True, "steps_to_target": s} for lr, s in ((0.01, 50), (0.1, 20), (0.3, 20))]
    >>> choose(recs)[0]
    {'c': {'adam': 0.1}}
    """
    scores: dict[str, dict[str, dict[float, list[float]]]] = {}
    for r in records:
        if r.get("part") != "tune" or r.get("status") == "error":
            continue
        lr = float(r["overrides"]["_lr"])
        scores.setdefault(r["cell"], {}).setdefault(r["method"], {}).setdefault(lr, []).append(tuning_score(r))
    med = {c: {m: {lr: median(v) for lr, v in sorted(d.items())} for m, d in ms.items()} for c, ms in scores.items()}
    chosen = {c: {m: min(d, key=lambda lr: (d[lr], lr)) for m, d in ms.items()} for c, ms in med.items()}
    return chosen, {c: {m: {f"{lr:g}": v for lr, v in d.items()} for m, d in ms.items()} for c, ms in med.items()}


def run_tuning(out_dir: str | os.PathLike, *, cells: Sequence[str] = MAIN_CELLS, n: int = TUNING_INSTANCES,
               workers: int | None = None, progress: bool = True, log: Any = None) -> dict[str, dict[str, float]]:
    """Run the tuning sweep into ``out_dir/tuning/`` and write ``out_dir/tuning.json``.

    Args:
        out_dir: the study's output folder.
        cells: the cells to tune.
        n: tuning instances per cell.
        workers: processes.
        progress: progress lines.
        log: message sink.

    Returns:
        The chosen step sizes {cell: {method: lr}} (copy them into :data:`analyses.escape.design.TUNED_LR`).
    """
    run = run_study(Path(out_dir) / "tuning", jobs=tuning_jobs(cells, n), workers=workers, resume=True,
                    progress=progress, log=log)
    chosen, scores = choose(run.records)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "tuning.json").write_text(json.dumps({"chosen": chosen, "median_scores": scores}, indent=1,
                                                          sort_keys=True) + "\n", encoding="utf-8")
    return chosen
