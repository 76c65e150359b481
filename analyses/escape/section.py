"""The escape study end to end: run the sweep, then draw the report from its records — for
``landscape escape`` (:func:`run_benchmark`) and for the main job's escape part
(:func:`study_section`, the section contract of :mod:`analyses.study`)."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import analyse
from .report import build_report, lead_html
from .runner import StudyRun, run_study


def run_benchmark(out_dir: str | os.PathLike, *, parts: Sequence[str] | None = None, quick: bool = False,
                  instances: int | None = None, methods: Sequence[str] | None = None,
                  cells: Sequence[str] | None = None, first: int = 0, workers: int | None = None,
                  resume: bool = False, progress: bool = True, scheduler: str | None = None, executor: Any = None,
                  log: Any = None, figures: bool = True) -> tuple[StudyRun, list[str]]:
    """Run the study (:func:`analyses.escape.runner.run_study`) and write its report.

    Args:
        out_dir, parts, quick, instances, methods, cells, first, workers, resume, progress, scheduler,
            executor, log: as :func:`analyses.escape.runner.run_study`.
        figures: also write the report (:func:`analyses.escape.report.build_report`).

    Returns:
        (the :class:`~analyses.escape.runner.StudyRun`, the report's file names).

    Raises:
        ValueError: a bad configuration.
        analyses.sweep.SweepInterrupted: on Ctrl-C (the finished runs are saved).
    """
    run = run_study(out_dir, parts=parts, quick=quick, instances=instances, methods=methods, cells=cells, first=first,
                    workers=workers, resume=resume, progress=progress, scheduler=scheduler, executor=executor,
                    log=log)
    outs = build_report(out_dir, run.records) if figures else []
    return run, outs


def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict:
    """``landscape study``'s escape part: the study into ``out_dir/escape``, continuing the shipped
    records (``escape.jsonl.gz``: a record depends only on its job, so continuing gives what a run
    from scratch would), then its report.

    Args:
        out_dir: the main job's output folder.
        quick: the smoke run (a few instances and methods per part).
        seed: the first instance index.

    Returns:
        The report's section: ``title``, ``lead`` (the answer per cause × kind), ``html``,
        ``summary`` (JSON-able numbers), ``figures`` (paths relative to ``out_dir``, the answer first).
    """
    esc = Path(out_dir) / "escape"
    run, outs = run_benchmark(esc, quick=quick, first=seed, resume=True, progress=False,
                              log=lambda msg: print(msg, file=sys.stderr, flush=True))
    an = analyse(run.records)
    figs = [f"escape/{p}" for p in outs if p.endswith(".png")]
    body = ("".join(f"<p><img src='{p}' alt='{p}' style='max-width:100%'></p>" for p in figs[1:3])
            + "<p>The whole report: <a href='escape/escape_report.html'>escape/escape_report.html</a>; records: "
              "escape/escape.jsonl.</p>")
    return {"title": "Does SynaPrune escape stalls? (escape study)", "lead": lead_html(an), "html": body,
            "summary": {"n_runs": len(run.records), "theory": an["theory"], "certificates": an["certificates"],
                        "cells": {c: {m: {k: ca["vs_gd"][m]["steps"].get(k) for k in ("n", "ratio", "ratio_low",
                                                                                      "ratio_high", "p_holm")}
                                      for m in ca.get("vs_gd", {})} for c, ca in an["cells"].items()}},
            "figures": figs}
