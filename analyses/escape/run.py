"""The escape study's runs: one run (:func:`run_one`, a job of the sweep) and the sweep over every
problem × method × seed (:func:`run_escape_sweep`, through :func:`analyses.sweep.run_sweep`:
bit-identical records whatever ``--workers``, job order, executor or ``--resume``; timings go to
the untracked ``escape.timings.jsonl``)."""
from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from landscape.results import JsonResult

from ..problems import get_problem
from ..sweep import read_records, run_sweep
from .protocol import KEY_FIELDS, VARIANTS, plan
from .records import clean, event_record, round_finite, write_gzip_copy
from .summary import SummaryRow, summarize


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One run of the study. Never raises on a failing run: ``status="error"`` and the message are
    recorded (a failing run is data, not a crash of the sweep).

    Args:
        job: ``{"problem", "method" (a VARIANTS label), "seed", "max_steps"}``, optionally
            ``"options"`` (Trainer / method options on top of the variant's, recorded as
            ``options``) and ``"problem_options"`` (to the problem's factory, recorded when given).

    Returns:
        The run's record (:mod:`analyses.escape.records`): deterministic fields only; wall and CPU
        time under ``"timing"``, which the sweep moves to its side file.
    """
    rec: dict[str, Any] = {k: job[k] for k in KEY_FIELDS}
    rec.update(max_steps=job["max_steps"], status="ok", error=None, events=[])
    if job.get("problem_options"):
        rec["problem_options"] = clean(job["problem_options"])
    t0, c0 = time.perf_counter(), time.process_time()
    timing: dict[str, Any] = {}
    try:
        if job["method"] not in VARIANTS:
            raise ValueError(f"unknown method variant {job['method']!r}")
        method, vopts = VARIANTS[job["method"]]
        # built afresh: no state shared between jobs
        p = get_problem(job["problem"], **(job.get("problem_options") or {}))
        eps = p.hints.get("eps", 1e-2)
        opts = {**vopts, **(job.get("options") or {})}
        study = p.hints.get("study") or {}
        certified = None
        if study.get("critical_value") is not None:
            obj0 = p.objective(job["seed"])
            certified = {"kind": study["kind"], "critical_value": study["critical_value"],
                         "scale": abs(obj0.loss(obj0.initial_point()))}
        torch.manual_seed(job["seed"])
        tr = p.trainer(method, job["seed"], meta={"eps": eps}, **opts)
        res = tr.fit(job["max_steps"], theta0=p.init(job["seed"], eps))
        d = res.to_dict()
        rec.update(
            base_method=method, options=clean(opts), lr=round_finite(tr.lr), eps=round_finite(eps), global_min=round_finite(p.global_min),
            train_status=res.status, message=res.message or None, n_steps=res.n_steps,
            initial_loss=round_finite(res.losses[0]) if len(res.losses) else None, final_loss=round_finite(res.final_loss),
            gap=None if p.global_min is None else round_finite(res.final_loss - p.global_min), final_kind=res.final_kind,
            cost_example_grads=round_finite(d.get("cost_example_grads")), hvp_over_grad=round_finite(d.get("hvp_over_grad")),
            n_hvp=res.n_hvp, n_classify_hvp=res.n_classify_hvp, n_per_example_grads=res.n_per_example_grads,
            n_grad_evals=res.n_grad_evals, n_minibatch_grads=res.n_minibatch_grads, n_loss_evals=res.n_loss_evals,
            method_options=clean(d.get("method_options")),
            events=[event_record(e, res.n_steps, certified) for e in res.events])
        timing = {"train_wall_time_s": res.wall_time_s, "classify_time_s": d.get("classify_time_s")}
        if res.status == "nonfinite":
            rec["status"] = "nonfinite"
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        timing["traceback"] = traceback.format_exc(limit=6)
    rec["timing"] = {**timing, "wall_time_s": time.perf_counter() - t0, "cpu_time_s": time.process_time() - c0}
    return rec


@dataclass
class EscapeBenchmark(JsonResult):
    """A finished study: the configuration, ``records`` (one dict per run, as in ``escape.jsonl``),
    the ``summary`` rows and the output paths (relative to ``out_dir``)."""

    problems: list[str]
    methods: list[str]
    seeds: list[int]
    max_steps: dict[str, int]
    records: list[dict[str, Any]] = field(repr=False)
    summary: list[SummaryRow]
    workers: int
    jsonl: str
    wall_time_s: float = 0.0
    outputs: list[str] = field(default_factory=list)
    out_dir: str = ""

    def to_dict(self) -> dict:
        """The study's summary for ``escape_summary.json``.

        Returns:
            The content: no records, timings, paths or worker count (nothing that depends on the machine).
        """
        d = super().to_dict()
        # nothing that depends on the machine: no timings, no paths, no --workers
        for k in ("records", "wall_time_s", "out_dir", "workers"):
            d.pop(k, None)
        return d

    def _path(self, name: str) -> str | None:
        return str(Path(self.out_dir) / name) if name in self.outputs else None

    @property
    def png(self) -> str | None:
        """The stall map (absolute path), for callers of the former benchmark API."""
        return self._path("stall_map.png")

    @property
    def html(self) -> str | None:
        """The report page (absolute path), None when no report was drawn."""
        return self._path("escape_report.html")

    @property
    def summary_md(self) -> str | None:
        """The Markdown summary (absolute path), None when no report was drawn."""
        return self._path("escape_summary.md")


def run_escape_sweep(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int],
                  out_dir: str | os.PathLike, *, workers: int | None = None, resume: bool = False,
                  max_steps: int | None = None, progress: bool | None = None, quick: bool = False,
                  figures: bool = True, scheduler: str | None = None, executor: Any = None,
                  log: Any = None) -> EscapeBenchmark:
    """Run every method × problem × seed into ``out_dir/escape.jsonl`` (and its gzipped copy) and
    summarise the runs; no report (:func:`analyses.escape.section.run_benchmark` adds it).

    Args:
        problems: zoo problem names; None → :func:`~analyses.escape.protocol.default_problems`
            (``quick``: :data:`~analyses.escape.protocol.QUICK_PROBLEMS`).
        methods: variant labels; None → :data:`~analyses.escape.protocol.MAIN_METHODS`
            (``quick``: :data:`~analyses.escape.protocol.QUICK_METHODS`).
        seeds: a count N → seeds 0..N−1, or a list.
        out_dir: the output folder (created).
        workers: processes (default: the cores; 1 = in this process).
        resume: keep the runs already in ``escape.jsonl`` (their steps must match the jobs').
        max_steps: steps per run (default: each problem's hint).
        progress: progress lines on stderr (None/True on, False off).
        quick: the smoke run's defaults.
        scheduler: a Dask scheduler address or ``"local"``.
        executor: any ``submit``-able executor (instead of the process pool).
        log: a callable receiving the sweep's messages.

    Returns:
        :class:`EscapeBenchmark` with the records of these jobs (job order) and their summary rows.

    Raises:
        ValueError: a bad configuration, or ``resume`` over runs of other lengths.
        analyses.sweep.SweepInterrupted: on Ctrl-C (the finished runs are saved).
    """
    jobs, steps, problems, methods, seed_list = plan(problems, methods, seeds, max_steps=max_steps, quick=quick)
    workers = workers or os.cpu_count() or 1
    out = Path(out_dir)
    if resume:  # a resumed sweep must continue the same configuration
        steps_of = {tuple(j[k] for k in KEY_FIELDS): j["max_steps"] for j in jobs}
        for r in read_records(out / "escape.jsonl"):
            k = tuple(r.get(f) for f in KEY_FIELDS)
            if k in steps_of and r.get("max_steps") != steps_of[k]:
                raise ValueError(f"--resume: {out / 'escape.jsonl'} holds {'/'.join(map(str, k))} run for "
                                 f"{r.get('max_steps')} steps, this sweep asks for {steps_of[k]}; use the same --steps "
                                 "or a fresh --out")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    all_records = run_sweep(jobs, run_one, out / "escape.jsonl", key_fields=KEY_FIELDS, workers=workers,
                            resume=resume, desc="escape", progress=progress is not False, scheduler=scheduler,
                            executor=executor, log=log)
    wanted = {tuple(j[k] for k in KEY_FIELDS) for j in jobs}
    records = [r for r in all_records if tuple(r.get(k) for k in KEY_FIELDS) in wanted]
    write_gzip_copy(out / "escape.jsonl")
    rows = summarize(records)
    bench = EscapeBenchmark(problems=problems, methods=methods, seeds=seed_list, max_steps=steps, records=records,
                            summary=rows, workers=workers, jsonl="escape.jsonl", wall_time_s=time.perf_counter() - t0,
                            out_dir=str(out))
    return bench
