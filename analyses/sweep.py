"""Run many independent jobs in worker processes, streaming one JSON line per finished job.

An interrupted sweep loses nothing: every record is flushed and fsynced as it arrives, and
``resume=True`` skips the jobs whose key is already in the file (a torn last line is ignored).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from landscape.results import read_jsonl

Job = dict[str, Any]


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (missing file → []; a torn final line is skipped)."""
    return read_jsonl(path)


def job_key(job: Job, fields: Sequence[str]) -> tuple:
    return tuple(job[f] for f in fields)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_sweep(jobs: Sequence[Job], run_fn: Callable[[Job], dict[str, Any]], out_path: str | Path, *,
              key_fields: Sequence[str], workers: int | None = None, resume: bool = False,
              threads_per_worker: int = 1, desc: str = "sweep") -> list[dict[str, Any]]:
    """Run ``run_fn(job)`` for every job, appending each returned record to ``out_path`` (JSON lines).

    ``run_fn`` must be a picklable top-level function; its record should contain the job's key
    fields. With ``resume`` the jobs already recorded are skipped; without it the file starts empty.
    ``workers`` defaults to the number of cores; ``workers=1`` runs in this process.
    Returns all records of the file (old and new).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        existing = read_records(out_path)
        done = {job_key(r, key_fields) for r in existing if all(f in r for f in key_fields)}
        # Rewrite without a torn last line so that appends start on a fresh line.
        out_path.write_text("".join(json.dumps(r) + "\n" for r in existing))
    else:
        done = set()
        out_path.write_text("")
    todo = [j for j in jobs if job_key(j, key_fields) not in done]
    workers = workers or os.cpu_count() or 1
    with open(out_path, "a") as fh, tqdm(total=len(todo), desc=desc, disable=None) as bar:
        def write(record: dict[str, Any]) -> None:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(1)

        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                write(run_fn(job))
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(threads_per_worker,)) as pool:
                futures = [pool.submit(run_fn, job) for job in todo]
                for fut in as_completed(futures):
                    write(fut.result())
    return read_records(out_path)
