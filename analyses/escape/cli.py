"""``landscape escape``: the command line of the escape study."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..problems.escape_instances import CELLS
from ..sweep import SweepFailed, SweepInterrupted
from .design import METHODS, N_INSTANCES, PARTS, QUICK, plan
from .analysis import analyse as analyse_records
from .budget import budget_line, estimate, read_timings
from .report import build_report, kappa_sentences, lead, sweep_sentences
from .section import run_benchmark
from .tuning import run_tuning


def _csv(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _positive_int(name: str):
    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {s!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer (>= 1), got {v}")
        return v
    return conv


_SCHEDULER = re.compile(r"^(local|tcp://[^\s:/]+:\d{1,5})$")


def _scheduler(s: str) -> str:
    if not _SCHEDULER.match(s):
        raise argparse.ArgumentTypeError(f"--scheduler must be 'local' or tcp://HOST:PORT, got {s!r}")
    return s


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option whose default is a value (None defaults are
    described in the option's help text: they mean "chosen from other options")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``landscape escape``'s arguments (defaults shown by ``--help``; a bad argument is one
    line on stderr and exit code 2).

    Args:
        parser: the subcommand's parser.
    """
    parser.formatter_class = _DefaultsFormatter

    def error(message: str) -> None:
        print(f"landscape escape: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]
    parser.add_argument("--parts", default=None,
                        help=f"comma-separated parts (default: all of {','.join(PARTS)})")
    parser.add_argument("--cells", default=None,
                        help=f"comma-separated cells of the main and control parts (default: all); known: "
                             f"{','.join(CELLS)}")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated methods of the main and control parts (default: all); known: "
                             f"{','.join(METHODS)}")
    parser.add_argument("--instances", type=_positive_int("--instances"), default=None,
                        help=f"instances per main cell (default: {N_INSTANCES}; with --quick: {QUICK['instances']})")
    parser.add_argument("--workers", type=_positive_int("--workers"), default=None,
                        help="worker processes (default: the number of cores)")
    parser.add_argument("--scheduler", type=_scheduler, default=None,
                        help="run on Dask: 'local' (a LocalCluster of --workers processes) or tcp://HOST:PORT "
                             "(default: the local process pool)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in OUT/escape.jsonl (default: start afresh)")
    parser.add_argument("--quick", action="store_true", help="the smoke run, ~1–3 min on 2 cores (default: off)")
    parser.add_argument("--tune", action="store_true",
                        help="choose the step sizes of adam, rmsprop, sign-gd and normalized-gd on the tuning "
                             "instances (writes OUT/tuning.json; default: off)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr (default: a line every few seconds)")
    parser.add_argument("--out", default="figures/escape", help="output directory")
    parser.add_argument("--budget", metavar="DIRS", default=None,
                        help="price the full design (CPU time and minutes on --workers cores, default 2) from the "
                             "runs measured in these comma-separated study folders' escape.timings.jsonl, and run "
                             "nothing (default: print the price after every run, from that run)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="rebuild every table and figure from DIR/escape.jsonl(.gz) and run nothing "
                             "(default: run the study)")


def output_dirs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The folders ``landscape escape`` writes in (checked before any work by :func:`analyses.cli.main`).

    Args:
        args: the parsed arguments.

    Returns:
        ``[]`` for ``--budget`` (writes nothing), ``[("--report", DIR)]`` when rebuilding a report (an
        existing folder; checked by :func:`run` otherwise), else ``[("--out", OUT)]``.
    """
    if args.budget is not None:
        return []
    if args.report is not None:
        return [("--report", args.report)] if Path(args.report).is_dir() else []
    return [("--out", args.out)]


def _fail(msg: str) -> int:
    print(f"landscape escape: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run ``landscape escape`` (the study, or ``--report DIR``: rebuild its report from the records).

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code: 0, 2 for a bad argument (one line on stderr), 1 when the sweep's workers kept
        dying (one line: how many runs are saved; ``--resume`` continues), 130 when interrupted.
    """
    if args.budget is not None:
        timings = read_timings(_csv(args.budget) or [])
        if not timings:
            return _fail(f"--budget {args.budget}: no escape.timings.jsonl with measured runs there")
        print(budget_line(estimate(timings, plan(), workers=args.workers or 2)))
        return 0
    if args.report is not None:
        d = Path(args.report)
        if not d.is_dir():
            return _fail(f"--report {d}: not a directory")
        if not any((d / n).exists() for n in ("escape.jsonl", "escape.jsonl.gz")):
            return _fail(f"--report {d}: holds neither escape.jsonl nor escape.jsonl.gz")
        outs = build_report(d)
        if not args.quiet:
            print(f"rebuilt {len(outs)} files in {d}: {', '.join(outs)}")
        return 0
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out}: exists and is not a directory")
    try:
        plan(_csv(args.parts), quick=args.quick, instances=args.instances, methods=_csv(args.methods),
             cells=_csv(args.cells))
    except ValueError as exc:
        return _fail(str(exc))
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return _fail("--scheduler needs dask[distributed]: pip install 'landscape-toolkit[cluster]'")
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        if args.tune:
            chosen = run_tuning(out, workers=args.workers, progress=not args.quiet, log=log)
            print(chosen)
            return 0
        run, _ = run_benchmark(out, parts=_csv(args.parts), quick=args.quick, instances=args.instances,
                               methods=_csv(args.methods), cells=_csv(args.cells), workers=args.workers,
                               resume=args.resume, progress=not args.quiet, scheduler=args.scheduler, log=log)
    except SweepInterrupted as exc:
        print(f"\nlandscape escape: interrupted; {exc.n_saved} of {exc.n_total} runs are saved in {exc.path}; "
              f"run the same command with --resume to continue", file=sys.stderr, flush=True)
        return 130
    except SweepFailed as exc:
        print(f"landscape escape: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 1
    except ValueError as exc:
        return _fail(str(exc))
    if not args.quiet:
        an = analyse_records(run.records)
        for p in lead(an):
            print(f"{p['title']}: " + " ".join(p["sentences"]))
        for sent in kappa_sentences(an) + sweep_sentences(an):
            print(sent)
        print(f"{len(run.records)} runs ({run.n_reused} reused) in {run.wall_time_s:.1f} s -> {out}")
        timings = read_timings([out])
        if timings:
            print(budget_line(estimate(timings, plan(), workers=2),
                              "the full design, priced from this folder's runs (CPU time; under load too)"))
    return 0
