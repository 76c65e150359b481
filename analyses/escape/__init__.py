"""The escape study, ``landscape escape``: does a SynaPrune rule escape stalls more often or sooner
than gradient descent, per stall cause × kind, per problem?

The data go one way, down this list's imports:

- :mod:`.protocol` — the method variants, the problem set, seeds and jobs;
- :mod:`.records` — one JSON record per run (the one rounding rule, gz copies, loading);
- :mod:`.summary` — the statistics, from records alone (one stall per run and cell, Wilson,
  Kaplan–Meier, log-rank with Holm, Newcombe; verdicts);
- :mod:`.run` — one run (a sweep job) and the sweep over problem × method × seed;
- :mod:`.report` — tables, figures and the HTML page, drawn from the records alone;
- :mod:`.section` — run then report: ``landscape escape`` and the main job's escape part;
- :mod:`.cli` — the command line.

A new method variant goes into :data:`.protocol.VARIANTS`; a new problem joins the study by a
``study`` hint in its zoo factory (:mod:`analyses.problems`).
"""
from .protocol import (BASELINE, CONTROLS, DEFAULT_SEEDS, KEY_FIELDS, MAIN_METHODS, MATCHED, NO_STALL,
                       QUICK_METHODS, QUICK_PROBLEMS, QUICK_SEEDS, VARIANTS, available_variants, default_problems,
                       plan)
from .records import event_record, load_records, write_gzip_copy
from .report import build_report
from .run import EscapeBenchmark, run_escape_sweep, run_one
from .section import run_benchmark, study_section
from .summary import SummaryRow, stall_units, summarize

__all__ = ["VARIANTS", "BASELINE", "MATCHED", "CONTROLS", "MAIN_METHODS", "QUICK_PROBLEMS", "QUICK_METHODS",
           "QUICK_SEEDS", "DEFAULT_SEEDS", "KEY_FIELDS", "NO_STALL", "available_variants", "default_problems", "plan",
           "event_record", "load_records", "write_gzip_copy", "summarize", "stall_units", "SummaryRow", "run_one",
           "run_escape_sweep", "EscapeBenchmark", "build_report", "run_benchmark", "study_section"]
