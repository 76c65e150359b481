"""The escape study end to end: run the sweep, then draw the report from its records — for
``landscape escape`` (:func:`run_benchmark`) and for the main job's escape part
(:func:`study_section`, the section contract of :mod:`analyses.study`)."""
from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .protocol import DEFAULT_SEEDS, QUICK_SEEDS
from .report import build_report, lead_html, summary_html
from .run import EscapeBenchmark, run_escape_sweep
from .summary import classifier_agreement, findings, headline


def run_benchmark(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int],
                  out_dir: str | os.PathLike, *, workers: int | None = None, resume: bool = False,
                  max_steps: int | None = None, progress: bool | None = None, quick: bool = False,
                  figures: bool = True, scheduler: str | None = None, executor: Any = None,
                  log: Any = None) -> EscapeBenchmark:
    """Run the study and write its outputs: ``escape.jsonl`` (+ ``.gz``), with ``figures`` the
    report (:func:`analyses.escape.report.build_report`), and ``escape_summary.json``.

    Args:
        problems, methods, seeds, out_dir, workers, resume, max_steps, progress, quick, scheduler,
            executor, log: as :func:`analyses.escape.run.run_escape_sweep`.
        figures: also draw the report's tables and figures.

    Returns:
        The :class:`~analyses.escape.run.EscapeBenchmark`, ``outputs`` listing the report's files.

    Raises:
        ValueError: a bad configuration.
        analyses.sweep.SweepInterrupted: on Ctrl-C (the finished runs are saved).
    """
    bench = run_escape_sweep(problems, methods, seeds, out_dir, workers=workers, resume=resume, max_steps=max_steps,
                             progress=progress, quick=quick, scheduler=scheduler, executor=executor, log=log)
    out = Path(out_dir)
    if figures:
        bench.outputs = build_report(out, records=bench.records)
    bench.save_json(out / "escape_summary.json")
    return bench


def study_section(out_dir: Path, *, quick: bool, seed: int = 0) -> dict:
    """``landscape study``'s escape part: run the study into ``out_dir/escape``, continuing the
    shipped records (``escape.jsonl.gz``), then its report.

    Args:
        out_dir: the main job's output folder.
        quick: the smoke run (:data:`~analyses.escape.protocol.QUICK_SEEDS` seeds, the quick
            problems and methods); else the default study (:data:`~analyses.escape.protocol.DEFAULT_SEEDS`).
        seed: the first seed; the runs use ``seed, seed+1, …``.

    Returns:
        The report's section: ``title``, ``lead`` (the answer: the main cells × methods),
        ``html``, ``summary`` (JSON-able numbers), ``figures`` (paths relative to ``out_dir``).
    """
    out_dir = Path(out_dir)
    n = QUICK_SEEDS if quick else DEFAULT_SEEDS
    esc = out_dir / "escape"
    jsonl, gz = esc / "escape.jsonl", esc / "escape.jsonl.gz"
    if not jsonl.exists() and gz.exists():
        # Continue the shipped records: a run's record depends only on (problem, method, seed) and is
        # byte-identical whatever the workers, order or resume (tests/test_stats_sweep.py), so resuming
        # gives the same report as a run from scratch (delete escape.jsonl.gz for that: ~30 min).
        jsonl.write_bytes(gzip.decompress(gz.read_bytes()))
        print(f"escape: continuing the records in {gz} (delete it to rerun every run)", file=sys.stderr)
    bench = run_benchmark(None, None, [seed + i for i in range(n)], esc, quick=quick, progress=False, resume=True)
    rows = bench.summary
    figs = [f"escape/{p}" for p in bench.outputs if p.endswith(".png")]
    body = ("".join(f"<p><img src='{p}' alt='{p}' style='max-width:100%'></p>" for p in figs)
            + summary_html(rows) + "<p>Interactive: <a href='escape/escape_report.html'>escape/escape_report.html</a>; "
            "records: escape/escape.jsonl.</p>")
    return {"title": "Does SynaPrune escape stalls? (escape study)", "lead": lead_html(rows, bench.records),
            "html": body,
            "summary": {"problems": bench.problems, "methods": bench.methods, "n_seeds": len(bench.seeds),
                        "n_runs": len(bench.records), "headline": headline(rows), "findings": findings(rows),
                        "classifier_agreement": classifier_agreement(bench.records)},
            "figures": figs}
