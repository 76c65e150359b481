"""The escape study's sweep: every job of :func:`analyses.escape.design.plan` through
:func:`analyses.sweep.run_sweep` into ``escape.jsonl`` (one record per job, built from the job alone:
byte-identical whatever ``--workers``, job order, executor or ``--resume``; timings go to the
untracked ``escape.timings.jsonl``) and its gzipped copy ``escape.jsonl.gz`` (the file
``figures/escape/`` ships and the main job continues).
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sweep import continue_shipped, dumps, job_key, read_records, run_sweep
from .design import KEY_FIELDS, RECORD_VERSION, plan
from .job import run_job
from .records import write_gzip_copy


@dataclass
class StudyRun:
    """A finished sweep: the jobs' ``records`` (job order), where they are, and the wall time.

    Args:
        records: one dict per job.
        path: ``escape.jsonl``.
        n_reused: records kept from an earlier run (``resume``).
        wall_time_s: the sweep's wall time.

    Example:
        >>> StudyRun(records=[], path="escape.jsonl").n_reused
        0
    """

    records: list[dict[str, Any]] = field(repr=False)
    path: str
    n_reused: int = 0
    wall_time_s: float = 0.0


def _keep_current(path: Path, say: Any) -> set[tuple]:
    """Drop stored records made by another version of the design (they are rerun); returns the keys
    of those kept."""
    if not path.exists():
        return set()
    recs = read_records(path)
    kept = [r for r in recs if r.get("version") == RECORD_VERSION and r.get("status") != "error"]
    if len(kept) != len(recs):
        say(f"escape: {len(recs) - len(kept)} stored run(s) in {path} come from another version of the design "
            f"or failed; rerunning them")
        path.write_text("".join(dumps(r) + "\n" for r in kept), encoding="utf-8")
    return {tuple(r.get(k) for k in KEY_FIELDS) for r in kept}


def run_study(out_dir: str | os.PathLike, *, parts: Sequence[str] | None = None, quick: bool = False,
              instances: int | None = None, methods: Sequence[str] | None = None, cells: Sequence[str] | None = None,
              first: int = 0, workers: int | None = None, resume: bool = False, progress: bool = True,
              scheduler: str | None = None, executor: Any = None, log: Any = None,
              jobs: Sequence[dict[str, Any]] | None = None) -> StudyRun:
    """Run the study's jobs into ``out_dir/escape.jsonl`` (and its ``.gz`` copy).

    Args:
        out_dir: the output folder (created).
        parts, quick, instances, methods, cells, first: as :func:`analyses.escape.design.plan`.
        workers: processes (default: the cores; 1 = in this process).
        resume: keep the runs already stored (a ``.gz`` alone is unpacked first), except those of
            another design version or that failed.
        progress: progress lines on stderr.
        scheduler: a Dask scheduler address or ``"local"``.
        executor: any ``submit``-able executor.
        log: a callable receiving the sweep's messages.
        jobs: run these jobs instead of the plan (the tuning).

    Returns:
        :class:`StudyRun` with the records of these jobs in job order.

    Raises:
        ValueError: a bad configuration.
        analyses.sweep.SweepInterrupted: on Ctrl-C (the finished runs are saved).
    """
    say = log or (lambda msg: None)
    jobs = list(jobs) if jobs is not None else plan(parts, quick=quick, instances=instances, methods=methods,
                                                     cells=cells, first=first)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "escape.jsonl"
    stored: set[tuple] = set()
    if resume:
        continue_shipped(path, say)
        stored = _keep_current(path, say)
    t0 = time.perf_counter()
    all_records = run_sweep(jobs, run_job, path, key_fields=KEY_FIELDS, workers=workers or os.cpu_count() or 1,
                            resume=resume, desc="escape", progress=progress, scheduler=scheduler, executor=executor,
                            log=log)
    wanted = {job_key(j, KEY_FIELDS) for j in jobs}
    records = [r for r in all_records if tuple(r.get(k) for k in KEY_FIELDS) in wanted]
    write_gzip_copy(path)
    return StudyRun(records=records, path=str(path), n_reused=len(stored & wanted),
                    wall_time_s=time.perf_counter() - t0)
