"""The escape study, ``landscape escape`` (issue 23): does a SynaPrune rule escape stalls caused by
cancelling per-example gradients better than gradient descent, with step length and cost controlled?

Cells are a stall's cause × kind; every cell has independent, certified instances
(:mod:`analyses.problems.escape_instances`), and every method runs on every instance from the same
start (paired). The data go one way, down this list's imports:

- :mod:`.design` — the methods, the parts (main cells, controls, the lr × distance sweep, κ), the
  horizons, the tuned step sizes and the job plan;
- :mod:`.records` — the one rounding rule, gz copies, loading;
- :mod:`.job` — one run: a method from an instance's start to its target (the primary endpoint),
  with the Trainer's first stall event (the secondary endpoint);
- :mod:`.runner` — the sweep over the plan (bit-identical whatever the workers, order or resume);
- :mod:`.analysis` — the numbers from the records (paired statistics, Holm, hazard ratios, fits);
- :mod:`.figures`, :mod:`.report` — the figures and the page, from the records alone;
- :mod:`.tuning` — the step sizes of Adam, RMSprop, sign-GD and normalised GD, chosen once on
  tuning instances;
- :mod:`.section`, :mod:`.cli` — ``landscape escape`` and the main job's escape part.

The stall-conditioned protocol on the zoo problems that the digits comparison still uses lives in
:mod:`.protocol`, :mod:`.run`, :mod:`.summary` and :mod:`.stall_report`.
"""
from .analysis import analyse, cell_analysis, compare
from .design import KEY_FIELDS, METHODS, PARTS, plan
from .job import run_job
from .protocol import VARIANTS, available_variants, default_problems
from .records import event_record, load_records, write_gzip_copy
from .report import build_report
from .runner import StudyRun, run_study
from .section import run_benchmark, study_section

__all__ = ["METHODS", "PARTS", "KEY_FIELDS", "plan", "run_job", "run_study", "StudyRun", "analyse", "cell_analysis",
           "compare", "build_report", "run_benchmark", "study_section", "load_records", "write_gzip_copy",
           "event_record", "VARIANTS", "available_variants", "default_problems"]
