"""Run many independent jobs on any ``concurrent.futures``-style executor, one JSON line per job.

Reproducibility contract (issue 10, item 7): the records file is the same, byte for byte, whatever
the number of workers, the order jobs finish in, or an interruption and ``resume``:

- every job runs with torch pinned to ``threads_per_worker`` threads (1 by default; reductions of a
  multi-threaded CPU build are not bit-stable) — in worker processes and in this process alike —
  and jobs share no mutable state (``run_fn`` must build everything it uses from the job);
- while the sweep runs, each record is appended, flushed and fsynced as it arrives (a kill loses
  at most the runs in flight); when the sweep ends, the file is rewritten in job order with sorted
  keys, so the arrival order leaves no trace;
- a record's ``"timing"`` entry (wall / CPU seconds, host-dependent) is split off into the side
  file ``<name>.timings.jsonl`` and never enters the records.

Executors: ``"process"`` (a local spawn-context process pool, the default), ``"dask"`` (an existing
``distributed.Client`` passed as ``client``, or ``scheduler="tcp://HOST:PORT"`` / ``"local"`` for a
``LocalCluster`` of ``workers`` single-threaded worker processes), or any object with
``submit(fn, *args) -> concurrent.futures.Future``. Ctrl-C (``KeyboardInterrupt``) cancels the
pending jobs, terminates local workers and raises :class:`SweepInterrupted` carrying how many runs
the file holds; ``resume=True`` then continues.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from landscape.results import read_jsonl

Job = dict[str, Any]
#: seconds between two progress lines when stderr is not a terminal (and at most, on one)
PROGRESS_EVERY_S = 5.0


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_sweep`: ``n_saved`` runs are in ``path``; ``n_total`` were asked for."""

    def __init__(self, n_saved: int, n_total: int, path: Path) -> None:
        super().__init__(f"interrupted: {n_saved} of {n_total} runs saved in {path}")
        self.n_saved, self.n_total, self.path = n_saved, n_total, path


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (missing file → []; a torn final line is skipped)."""
    return read_jsonl(path)


def job_key(job: Job, fields: Sequence[str]) -> tuple:
    return tuple(job[f] for f in fields)


def dumps(record: dict[str, Any]) -> str:
    """The one JSON serialisation of a record (sorted keys, strict JSON: no NaN)."""
    return json.dumps(record, sort_keys=True, allow_nan=False)


def timings_path(out_path: str | Path) -> Path:
    p = Path(out_path)
    return p.with_name(p.name.split(".")[0] + ".timings.jsonl")


def _init_worker(threads: int) -> None:
    # Workers ignore Ctrl-C: the parent decides (cancels, terminates) and reports once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)


def pinned_call(run_fn: Callable[[Job], dict[str, Any]], job: Job, threads: int = 1) -> dict[str, Any]:
    """``run_fn(job)`` with torch limited to ``threads`` threads (restored afterwards)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run_fn(job)
    finally:
        torch.set_num_threads(old)


class _Progress:
    """One line on stderr every :data:`PROGRESS_EVERY_S` seconds (works without a TTY)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.done, self.t0, self.last = 0, time.monotonic(), time.monotonic()

    def tick(self, n: int = 0, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < PROGRESS_EVERY_S):
            return
        self.last = now
        el = now - self.t0
        eta = f", about {el / self.done * (self.total - self.done):.0f} s left" if 0 < self.done < self.total else ""
        print(f"{self.desc}: {self.done}/{self.total} runs done, {el:.0f} s{eta}", file=sys.stderr, flush=True)


def make_dask_client(scheduler: str, workers: int) -> Any:
    """A ``distributed.Client``: ``"local"`` starts a ``LocalCluster`` of ``workers`` processes with
    one thread each; otherwise ``scheduler`` is a ``tcp://HOST:PORT`` address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - optional extra
        raise ValueError("--scheduler needs dask[distributed]: pip install 'landscape-toolkit[cluster]'") from exc
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client._landscape_cluster = cluster
        return client
    return Client(scheduler, timeout=10)


def close_dask_client(client: Any) -> None:
    cluster = getattr(client, "_landscape_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _final_rewrite(out_path: Path, jobs: Sequence[Job], key_fields: Sequence[str]) -> list[dict[str, Any]]:
    """Rewrite ``out_path`` in job order (first record per key; records of other jobs after, by key)."""
    order = {job_key(j, key_fields): i for i, j in enumerate(jobs)}
    seen: dict[tuple, dict] = {}
    for r in read_records(out_path):
        if all(f in r for f in key_fields):
            seen.setdefault(job_key(r, key_fields), r)
    keys = sorted(seen, key=lambda k: (0, order[k], ()) if k in order else (1, 0, tuple(map(str, k))))
    records = [seen[k] for k in keys]
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, out_path)
    return records


def run_sweep(jobs: Sequence[Job], run_fn: Callable[[Job], dict[str, Any]], out_path: str | Path, *,
              key_fields: Sequence[str], workers: int | None = None, resume: bool = False,
              threads_per_worker: int = 1, desc: str = "sweep", executor: Any = None,
              scheduler: str | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run ``run_fn(job)`` for every job; records stream to ``out_path`` (JSON lines) and are put in
    job order at the end (module docstring). Returns the records in job order.

    ``run_fn`` must be a picklable top-level function returning a JSON-able dict that contains the
    job's ``key_fields`` (an optional ``"timing"`` entry goes to the timings side file). ``resume``
    keeps the records already in the file and runs only the missing jobs (``log`` is told how many
    were skipped); without it the file starts empty. ``workers`` (default: cores) processes;
    ``workers=1`` without ``executor``/``scheduler`` runs in this process. ``executor``: any object
    with ``submit`` (see the module docstring); ``scheduler``: a Dask scheduler address or
    ``"local"``. ``progress``: a line on stderr every few seconds. Ctrl-C → :class:`SweepInterrupted`.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    keys = [job_key(j, key_fields) for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("two jobs share one key; keys must be unique")
    tpath = timings_path(out_path)
    if resume:
        existing = read_records(out_path)
        done = {job_key(r, key_fields) for r in existing if all(f in r for f in key_fields)}
        # Rewrite without a torn last line so that appends start on a fresh line.
        out_path.write_text("".join(dumps(r) + "\n" for r in existing), encoding="utf-8")
    else:
        done = set()
        out_path.write_text("", encoding="utf-8")
        tpath.write_text("", encoding="utf-8")
    todo = [j for j in jobs if job_key(j, key_fields) not in done]
    if resume:
        skipped = sum(1 for k in keys if k in done)
        say(f"{desc}: resume: {skipped} of {len(jobs)} runs already in {out_path} were skipped; "
            f"{len(todo)} to run")
    workers = workers or os.cpu_count() or 1
    bar = _Progress(len(todo), desc, progress)
    n_written = [len(jobs) - len(todo)]

    with open(out_path, "a", encoding="utf-8") as fh, open(tpath, "a", encoding="utf-8") as th:
        def write(record: dict[str, Any]) -> None:
            timing = record.pop("timing", None)
            fh.write(dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            if timing is not None:
                th.write(json.dumps({**{f: record.get(f) for f in key_fields}, **timing}, sort_keys=True) + "\n")
                th.flush()
            n_written[0] += 1
            bar.tick(1)

        def interrupted() -> SweepInterrupted:
            return SweepInterrupted(len({job_key(r, key_fields) for r in read_records(out_path)
                                         if all(f in r for f in key_fields)}), len(jobs), out_path)

        client = None
        own_pool = None
        try:
            if executor is None and scheduler is None and (workers <= 1 or len(todo) <= 1):
                for job in todo:
                    write(pinned_call(run_fn, job, threads_per_worker))
            else:
                if executor is None and scheduler is not None:
                    client = make_dask_client(scheduler, workers)
                    executor = client.get_executor(pure=False)
                elif executor is None:
                    own_pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                                   initializer=_init_worker, initargs=(threads_per_worker,))
                    executor = own_pool
                pending: set[Future] = {executor.submit(pinned_call, run_fn, job, threads_per_worker)
                                        for job in todo}
                while pending:
                    finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        write(fut.result())
                    bar.tick(0)
        except KeyboardInterrupt:
            if own_pool is not None:
                _terminate_pool(own_pool)
                own_pool = None
            raise interrupted() from None
        finally:
            if own_pool is not None:
                own_pool.shutdown(wait=True, cancel_futures=True)
            if client is not None:
                close_dask_client(client)
    if todo and bar.last < bar.t0 + 1e-9 or (todo and time.monotonic() - bar.last > 0.5):
        bar.tick(0, force=True)
    return _final_rewrite(out_path, jobs, key_fields)


def _terminate_pool(pool: ProcessPoolExecutor) -> None:
    """End a process pool now: cancel what has not started, terminate the workers."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=1.0)
