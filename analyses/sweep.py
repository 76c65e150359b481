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

Faults (issue 21, item 6) — a record depends on its job alone, so a run lost to a fault is simply
run again, and the file ends the same, byte for byte:

- *the sweep's own process dies* (``kill -9``, out of memory): the records on disk stay intact (each
  line is fsynced; a torn last line is dropped by ``resume``) and no process is left behind. On
  Linux every worker of the local pool asks the kernel, when it starts, for SIGKILL when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``; no watchdog thread, which could move the last bits of
  results, see :class:`analyses.cli.Heartbeat`); a worker whose parent died before it got that far
  exits at once. The pool's workers are started by the thread that runs :func:`run_sweep` (on
  ``submit``), or by the pool's manager thread, and both outlive the workers, so the signal never
  fires early. multiprocessing's resource tracker ends by itself once the parent and the workers
  are gone (its pipe reaches end of file). Workers of a Dask ``LocalCluster`` (``"local"``) watch
  their parent through a pipe and exit likewise.
- *a worker process of the local pool dies* (``kill -9``, a crash): the pool is broken for every
  job it held; the sweep says so in one line on stderr, starts a fresh pool and reruns the jobs
  whose records had not arrived, at most :data:`WORKER_RESTARTS` times per sweep. After that (a
  job that kills its worker every time), and when a caller's own ``executor`` breaks, it stops
  with :class:`SweepFailed`: one line saying what died and how many runs are saved; the file is
  intact and ``resume=True`` runs the rest.
- *a Dask worker dies*: the scheduler reruns its jobs on the other workers (records identical to
  the process pool's); when Dask gives up on a job (``KilledWorker``, after
  ``distributed.scheduler.allowed-failures`` deaths) the sweep stops with :class:`SweepFailed`.
"""
from __future__ import annotations

import ctypes
import gzip
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from landscape.results import read_jsonl

Job = dict[str, Any]
#: seconds between two progress lines when stderr is not a terminal (and at most, on one)
PROGRESS_EVERY_S = 5.0
#: how often one sweep restarts its local process pool after a worker died (default of ``restarts``)
WORKER_RESTARTS = 3


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_sweep`: ``n_saved`` runs are in ``path``; ``n_total`` were asked for."""

    def __init__(self, n_saved: int, n_total: int, path: Path) -> None:
        super().__init__(f"interrupted: {n_saved} of {n_total} runs saved in {path}")
        self.n_saved, self.n_total, self.path = n_saved, n_total, path


class SweepFailed(RuntimeError):
    """:func:`run_sweep` stopped on a fault it does not survive (worker processes kept dying, a
    caller's executor broke, Dask gave up on a job). ``str(exc)`` is one line: what died, and that
    ``n_saved`` of ``n_total`` runs are in ``path`` (intact; ``resume=True`` runs the rest)."""

    def __init__(self, message: str, n_saved: int, n_total: int, path: Path) -> None:
        super().__init__(message)
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


def write_gzip_copy(path: Path) -> Path:
    """Write a gzipped copy of a file, byte-identical on rerun (no file name, mtime 0): the copy
    ``figures/`` tracks.

    Args:
        path: the file (e.g. ``escape.jsonl``).

    Returns:
        The copy's path, ``path`` + ``.gz``.
    """
    gz = path.with_name(path.name + ".gz")
    with open(gz, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh:
        fh.write(path.read_bytes())
    return gz


def continue_shipped(path: Path, say: Callable[[str], None] | None = None) -> bool:
    """When only the shipped copy ``path``.gz exists (:func:`write_gzip_copy`), unpack it to ``path``
    so that a resumed sweep continues its records.

    Args:
        path: the records file (e.g. ``runs.jsonl``).
        say: told one line when the copy is unpacked (None: silent).

    Returns:
        True when the copy was unpacked.

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "r.jsonl").write_text("{}\\n")
        3
        >>> _ = write_gzip_copy(d / "r.jsonl"); (d / "r.jsonl").unlink()
        >>> continue_shipped(d / "r.jsonl"), (d / "r.jsonl").read_text()
        (True, '{}\\n')
    """
    gz = path.with_name(path.name + ".gz")
    if path.exists() or not gz.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.decompress(gz.read_bytes()))
    if say is not None:
        say(f"{path.parent.name}: continuing the records in {gz} (delete it to rerun every run)")
    return True


def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid``, its parent, dies (module docstring, "Faults").

    On Linux the kernel is asked for SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``,
    through ctypes; no thread is started). The parent may have died before this call: then this
    process has been re-parented already and exits now. Elsewhere only that check is made.

    Args:
        parent_pid: the pid of the process that started this one (the sweep).
    """
    if sys.platform.startswith("linux"):
        try:
            pr_set_pdeathsig = 1  # <linux/prctl.h>
            ctypes.CDLL(None, use_errno=True).prctl(
                pr_set_pdeathsig, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                ctypes.c_ulong(0))
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    """Initializer of a local pool's worker process.

    Workers ignore Ctrl-C (the parent decides: it cancels, terminates and reports once), die with
    the parent (:func:`_die_with_parent`) and run torch on ``threads`` threads.

    Args:
        threads: torch's thread count in this worker.
        parent_pid: the sweep's pid; None skips the parent-death set-up.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        _die_with_parent(parent_pid)
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
    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


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
              log: Callable[[str], None] | None = None, restarts: int = WORKER_RESTARTS) -> list[dict[str, Any]]:
    """Run ``run_fn(job)`` for every job; records stream to ``out_path`` (JSON lines) and are put in
    job order at the end (module docstring: reproducibility and faults).

    Args:
        jobs: the jobs (dicts); their ``key_fields`` must be unique.
        run_fn: a picklable top-level function returning a JSON-able dict that contains the job's
            ``key_fields`` (an optional ``"timing"`` entry goes to the timings side file); it must
            depend on the job alone (a job lost to a fault is run again).
        out_path: the records file (JSON lines); its folder is created.
        key_fields: the fields that name a job (and its record).
        workers: processes (default: cores); ``1`` without ``executor``/``scheduler`` runs in this
            process.
        resume: keep the records already in the file and run only the missing jobs (``log`` is told
            how many were skipped); without it the file starts empty.
        threads_per_worker: torch threads per job.
        desc: the name in progress and fault lines.
        executor: any object with ``submit`` (module docstring); a broken one is not restarted.
        scheduler: a Dask scheduler address ``tcp://HOST:PORT`` or ``"local"``.
        progress: a line on stderr every few seconds.
        log: where the resume and fault lines go (default: stderr).
        restarts: how often the local process pool may be restarted after a worker died.

    Returns:
        The records in job order (also those of other jobs already in a resumed file, after them).

    Raises:
        SweepInterrupted: on Ctrl-C (the file holds every run that finished).
        SweepFailed: on a fault the sweep does not survive (module docstring).
        ValueError: two jobs share one key, or the Dask scheduler cannot be reached.
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

        def n_saved() -> int:
            return len({job_key(r, key_fields) for r in read_records(out_path) if all(f in r for f in key_fields)})

        def interrupted() -> SweepInterrupted:
            return SweepInterrupted(n_saved(), len(jobs), out_path)

        def failed(what: str) -> SweepFailed:
            n = n_saved()
            return SweepFailed(f"{desc}: {what}; {n} of {len(jobs)} runs are saved in {out_path}; resume "
                               "(--resume) runs the rest", n, len(jobs), out_path)

        def run_all(ex: Any, batch: Sequence[Job]) -> list[Job]:
            """Submit ``batch`` to ``ex`` and write each record as it arrives; returns the jobs whose
            futures a broken process pool failed (empty: every record arrived)."""
            futs = {ex.submit(pinned_call, run_fn, job, threads_per_worker): job for job in batch}
            pending, lost = set(futs), []
            while pending:
                finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                errors = []
                for fut in finished:
                    exc = fut.exception()
                    if exc is None:
                        write(fut.result())
                    elif isinstance(exc, BrokenProcessPool):
                        lost.append(futs[fut])
                    else:
                        errors.append(exc)
                for exc in errors:  # after the records that did arrive are saved
                    if type(exc).__name__ == "KilledWorker" and type(exc).__module__.startswith("distributed"):
                        raise failed("Dask gave up on a run: the workers that ran it died (KilledWorker, task "
                                     f"{getattr(exc, 'task', '?')})") from exc
                    raise exc
                bar.tick(0)
            return lost

        client = None
        own_pool = None
        try:
            if executor is None and scheduler is None and (workers <= 1 or len(todo) <= 1):
                for job in todo:
                    write(pinned_call(run_fn, job, threads_per_worker))
            elif executor is not None or scheduler is not None:
                if executor is None:
                    client = make_dask_client(scheduler, workers)
                    executor = client.get_executor(pure=False)
                if run_all(executor, todo):
                    raise failed("a worker process of the given executor died and broke it")
            else:
                _quiet_resource_tracker()
                batch, n_restarts = todo, 0
                while batch:
                    own_pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                                   initializer=_init_worker,
                                                   initargs=(threads_per_worker, os.getpid()))
                    batch = run_all(own_pool, batch)
                    if batch:
                        how = _shut_broken_pool(own_pool)
                        own_pool = None
                        if n_restarts >= restarts:
                            raise failed(f"a worker process died ({how})" if n_restarts == 0 else
                                         f"worker processes died {n_restarts + 1} times (the last {how}; "
                                         f"{restarts} pool restarts allowed)")
                        n_restarts += 1
                        say(f"{desc}: a worker process died ({how}); rerunning the {_runs(len(batch))} not yet "
                            f"saved on a fresh pool (restart {n_restarts} of at most {restarts})")
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


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _quiet_resource_tracker() -> None:
    """Silence multiprocessing's resource-tracker warning about leaked semaphores.

    Terminating workers (Ctrl-C, a broken pool) leaves the pool's queue semaphores to the resource
    tracker, which would warn about them at exit; the tracker is a child interpreter that reads
    ``PYTHONWARNINGS``, so just that message is silenced there.
    """
    quiet = "ignore:resource_tracker:UserWarning"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(x for x in (os.environ.get("PYTHONWARNINGS"), quiet) if x)


def _shut_broken_pool(pool: ProcessPoolExecutor) -> str:
    """Wait until a broken pool has ended every worker (CPython terminates the survivors) and say how
    the dead one ended.

    Args:
        pool: a process pool whose futures failed with ``BrokenProcessPool``.

    Returns:
        ``"killed by SIGKILL"``, ``"exit code 1"`` or ``"cause unknown"``.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=True, cancel_futures=True)
    codes = [p.exitcode for p in procs if p.exitcode is not None and p.exitcode != 0]
    # the survivors were terminated (SIGTERM) by the pool itself: the dead one is the other code
    code = next((c for c in codes if c != -signal.SIGTERM), codes[0] if codes else None)
    if code is None:
        return "cause unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _terminate_pool(pool: ProcessPoolExecutor) -> None:
    """End a process pool now: cancel what has not started, terminate the workers.

    Args:
        pool: the sweep's own process pool.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=1.0)
