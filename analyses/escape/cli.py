"""``landscape escape``: the command line of the escape study."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..sweep import SweepFailed, SweepInterrupted
from .protocol import DEFAULT_SEEDS, MAIN_METHODS, QUICK_METHODS, QUICK_PROBLEMS, QUICK_SEEDS, VARIANTS, plan
from .report import build_report, summary_markdown
from .section import run_benchmark


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
    parser.add_argument("--problems", default=None,
                        help="comma-separated zoo problems (default: every problem with a 'study' hint; "
                             f"with --quick: {','.join(QUICK_PROBLEMS)})")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated method variants (default: {','.join(MAIN_METHODS)}; with --quick: "
                             f"{','.join(QUICK_METHODS)}); known: {','.join(VARIANTS)}")
    parser.add_argument("--seeds", type=_positive_int("--seeds"), default=None,
                        help=f"seeds per (problem, method) (default: {DEFAULT_SEEDS}; with --quick: {QUICK_SEEDS})")
    parser.add_argument("--steps", type=_positive_int("--steps"), default=None,
                        help="steps per run (default: each problem's max_steps hint, quick_steps with --quick)")
    parser.add_argument("--workers", type=_positive_int("--workers"), default=None,
                        help="worker processes (default: the number of cores)")
    parser.add_argument("--scheduler", type=_scheduler, default=None,
                        help="run on Dask: 'local' (a LocalCluster of --workers processes) or tcp://HOST:PORT "
                             "(default: the local process pool)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in OUT/escape.jsonl (default: start afresh)")
    parser.add_argument("--quick", action="store_true", help="the smoke run, ~1–1.5 min on 2 cores (default: off)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr (default: a line every few seconds)")
    parser.add_argument("--out", default="figures/escape", help="output directory")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="rebuild every table and figure from DIR/escape.jsonl(.gz) and run nothing "
                             "(default: run the study)")


def output_dirs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The folders ``landscape escape`` writes in (checked before any work by :func:`analyses.cli.main`).

    Args:
        args: the parsed arguments.

    Returns:
        ``[("--report", DIR)]`` when rebuilding a report (an existing folder; checked by :func:`run`
        otherwise), else ``[("--out", OUT)]``.
    """
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
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            return _fail("--scheduler needs dask[distributed]: pip install 'landscape-toolkit[cluster]'")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out}: exists and is not a directory")
    try:
        plan(_csv(args.problems), _csv(args.methods), seeds, max_steps=args.steps, quick=args.quick)
    except ValueError as exc:
        return _fail(str(exc))
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        bench = run_benchmark(_csv(args.problems), _csv(args.methods), seeds, out, workers=args.workers,
                              resume=args.resume, max_steps=args.steps, quick=args.quick,
                              progress=not args.quiet, scheduler=args.scheduler, log=log)
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
        print(summary_markdown(bench.summary, bench.records))
        print(f"{len(bench.records)} runs in {bench.wall_time_s:.1f} s -> {out}")
    return 0
