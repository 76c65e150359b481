"""``landscape theorems``: the command line."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_common import Heartbeat, add_quiet, show_bars
from .run import run_theorems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``landscape theorems``'s arguments.

    Args:
        parser: the subcommand's parser.
    """
    parser.add_argument("--quick", action="store_true", help="fewer initialisations and a smaller escape sweep (~6 s on 2 cores)")
    parser.add_argument("--out", default="figures/theorems", help="output folder (default: figures/theorems)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG/HTML figures")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape theorems``: print each verdict and its evidence.

    Args:
        args: the parsed arguments (:func:`add_arguments`).

    Returns:
        The exit code: 0 when all four statements are confirmed, else 1.
    """
    hb = Heartbeat("theorems", quiet=args.quiet)
    with hb.step("verifying the four statements" + (" (quick)" if args.quick else "")):
        report = run_theorems(quick=args.quick, seed=args.seed, out=args.out, figures=not args.no_figures,
                              progress=show_bars(args.quiet))
    for key, d in report.verdicts.items():
        print(f"[{d['verdict']}] {d['statement']}")
        print(f"    {d['evidence']}")
    print(f"wrote {Path(args.out) / 'theorems.json'}, theorems.md and figures in {report.timings_s['total']:.1f} s")
    return 0 if all(d["pass"] for d in report.verdicts.values()) else 1
