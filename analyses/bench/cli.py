"""``landscape bench``: the command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import torch

from landscape.results import to_jsonable

from .classify_cnn import bench_classify_cnn, format_classify_cnn
from .monitor_overhead import bench_monitor, format_monitor
from .run import run_bench
from .table import format_table
from .timing import loadavg, torch_build

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``landscape bench``'s arguments (parsed as strings and validated in :func:`run`, before
    any work, into one-line errors).

    Args:
        parser: the subcommand's parser.
    """
    parser.add_argument("--quick", action="store_true", help="fewer repeats, capped baseline, two accuracy targets (~1 min on 2 cores)")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON (untracked: it holds timings)")
    parser.add_argument("--dtype", default="float32", help="problem dtype: float32 (default) or float64")
    parser.add_argument("--threads", default=None, help="torch threads (default: all CPU cores)")
    parser.add_argument("--tol", default="1e-4", help="relative residual of the headline numbers (default 1e-4)")
    parser.add_argument("--no-peers", action="store_true", help="skip PyHessian, curvlinops, hessian-eigenthings")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile of the HVP (slow to compile)")
    parser.add_argument("--scaling", action="store_true", help="also measure MLPs from 1e5 to 1e7 parameters (~10–15 min on 2 cores)")
    parser.add_argument("--monitor", action="store_true",
                        help="measure only StallMonitor's overhead on a mini-batch Adam loop of the digits CNN "
                             "(issue 22; ~1 min on 2 cores; with --quick one plain/monitored pair and no naive schedule)")
    parser.add_argument("--monitor-steps", default="2000", help="loop steps of --monitor (default 2000)")
    parser.add_argument("--classify-cnn", action="store_true",
                        help="measure only classify_point and nearest_critical at their defaults on the digits CNN "
                             "(issue 22: seconds, CPU seconds and HVPs at three points, ~2 min on 2 cores; with --quick two points)")
    parser.add_argument("--figures", metavar="DIR", default="runs/bench",
                        help="folder for the accuracy/scaling plots; they hold timings, so the default runs/bench is untracked")


def _validate(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """Checked options, or a one-line error naming the bad one."""
    if args.dtype not in _DTYPES:
        return {}, f"--dtype must be one of {sorted(_DTYPES)}, got {args.dtype!r}"
    try:
        tol = float(args.tol)
    except ValueError:
        return {}, f"--tol must be a number, got {args.tol!r}"
    if not (0 < tol < 1):
        return {}, f"--tol must lie in (0, 1), got {args.tol}"
    threads = None
    if args.threads is not None:
        try:
            threads = int(args.threads)
        except ValueError:
            return {}, f"--threads must be a positive integer, got {args.threads!r}"
        if threads < 1:
            return {}, f"--threads must be a positive integer, got {args.threads}"
    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(parent):
            return {}, f"--json: folder {parent} does not exist"
        if os.path.isdir(args.json):
            return {}, f"--json: {args.json} is a folder, not a file"
    if args.figures and os.path.exists(args.figures) and not os.path.isdir(args.figures):
        return {}, f"--figures: {args.figures} exists and is not a folder"
    try:
        monitor_steps = int(getattr(args, "monitor_steps", "2000"))
    except ValueError:
        return {}, f"--monitor-steps must be a positive integer, got {args.monitor_steps!r}"
    if monitor_steps < 1:
        return {}, f"--monitor-steps must be a positive integer, got {monitor_steps}"
    return {"tol": tol, "threads": threads or os.cpu_count() or 1, "dtype": _DTYPES[args.dtype],
            "monitor_steps": monitor_steps}, None


def output_dirs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The folders ``landscape bench`` writes in (checked before any work by :func:`analyses.cli.main`).

    Args:
        args: the parsed arguments.

    Returns:
        ``--figures`` and the folder of ``--json`` (when given and existing; :func:`run` names a
        missing one).
    """
    out = [("--figures", args.figures)] if args.figures else []
    if args.json and os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        out.append(("--json", os.path.dirname(os.path.abspath(args.json))))
    return out


def _write_json(path: str, result: dict) -> None:
    """Write one measure's result (``--classify-cnn``, ``--monitor``) as JSON and say where."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(result), f, indent=1, sort_keys=True)
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    """Run ``landscape bench``: print the table, write ``--json`` when asked.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code: 0, 2 for a bad argument (one line on stderr).
    """
    opts, err = _validate(args)
    if err:
        print(f"landscape bench: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(opts["threads"])
    print(f"[bench] torch {torch.__version__} ({torch_build()}), {torch.get_num_threads()} threads, "
          f"load {loadavg()}", file=sys.stderr)
    if getattr(args, "classify_cnn", False):
        r = bench_classify_cnn(late_steps=0 if args.quick else 600, threads=opts["threads"] if args.threads else 1)
        print(format_classify_cnn(r))
        if args.json:
            _write_json(args.json, r)
        return 0
    if getattr(args, "monitor", False):
        r = bench_monitor(opts["monitor_steps"], pairs=1 if args.quick else 2, naive=not args.quick)
        print(format_monitor(r))
        if args.json:
            _write_json(args.json, r)
        return 0
    result = run_bench(quick=args.quick, dtype=opts["dtype"], tol=opts["tol"], peers=not args.no_peers,
                       compile=args.compile, scaling=args.scaling, figures_dir=args.figures or None)
    print(format_table(result))
    if args.json:
        path = result.save_json(args.json)
        print(f"wrote {path}")
    return 0
