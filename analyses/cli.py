"""The ``landscape`` command line: one subcommand per analysis script.

Each subcommand lives in its own module (or package) of ``analyses`` exposing
``add_arguments(parser)`` and ``run(args) -> int``, listed once in :data:`SUBCOMMANDS`; modules are
imported only when their subcommand runs, so ``--help`` is fast. Each writes under
``figures/<command>/`` by default. The conventions every subcommand follows (one-line errors,
defaults in ``--help``, progress on stderr, deterministic reruns) live in
:mod:`analyses.cli_common`, which the subcommands import.

A new command: a module with ``add_arguments`` and ``run``, one line in :data:`SUBCOMMANDS`, one row
in the README's command table (``tests/test_cli_help.py`` checks that every help and the table agree).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from .cli_common import HelpFormatter, Parser, UsageError, check_output_dir, reexec_deterministic

#: every subcommand, once: name -> (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "study": ("analyses.study", "the main job: escape study, digits plateau, plateaus the literature knows, "
                                "critical-point cut-offs, theorem checks, spectra and surfaces -> report.html"),
    "escape": ("analyses.escape.cli", "escape study: every method from the same starts on independent certified instances, per stall cause x kind"),
    "digits": ("analyses.digits_plateau", "the study's digits part: the seed repository's ReLU autoencoder "
                                          "plateau on real digits, and how every method escapes it"),
    "plateaus": ("analyses.plateaus.section", "plateaus the literature knows (committee machine, saddle-to-saddle, "
                                              "in-context regression, MNIST-1D, digits autoencoder): the monitor's "
                                              "stalls against theory and every method's paired steps to a target"),
    "critical-points": ("analyses.critical_points", "Frye et al. 2021 cut-offs: found vs analytic critical points "
                                                    "of a linear autoencoder"),
    "theorems": ("analyses.theorems.cli", "verify Kawaguchi's deep-linear-network theorems empirically"),
    "spectrum": ("analyses.spectrum_report", "Hessian spectrum report at every stall of a training run"),
    "surface": ("analyses.surface_plots", "loss-surface plots (random, Hessian-eigen, PCA directions)"),
    "bench": ("analyses.bench.cli", "benchmark the curvature engine (HVP, Lanczos, per-example gradients)"),
}


# ---------------------------------------------------------------------------- dispatcher
def _available() -> dict[str, tuple[str, str]]:
    """The subcommands whose module is installed. Only ``analyses.<top>`` is looked up: finding a
    package's submodule would import the package, and ``--help`` would wait for torch."""
    return {name: spec for name, spec in SUBCOMMANDS.items()
            if importlib.util.find_spec(".".join(spec[0].split(".")[:2])) is not None}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The ``landscape`` parser.

    Args:
        argv: the command line (without the program name); only the chosen subcommand's module
            (``argv[0]``) is imported and has its full arguments loaded.

    Returns:
        The parser, one subparser per available subcommand.
    """
    available = _available()
    parser = Parser(prog="landscape", description="Landscape analysis of neural-network losses. "
                    "Every command writes under figures/<command>/ unless told otherwise (--out).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = argv[0] if argv and argv[0] in available else None
    for name, (module, help_text) in available.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def output_dirs(module: object, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``(option, folder)`` pairs a command will write in: its module's ``output_dirs(args)``
    when it has one, else ``--out`` when given.

    Args:
        module: the subcommand's module. args: its parsed arguments.

    Returns:
        The pairs, checked by :func:`~analyses.cli_common.check_output_dir` before the command runs.
    """
    own = getattr(module, "output_dirs", None)
    if own is not None:
        return list(own(args))
    out = getattr(args, "out", None)
    return [("--out", out)] if out else []


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``landscape ARGV``. Started from the command line (``argv`` None), it re-executes itself
    once under :data:`~analyses.cli_common.DETERMINISTIC_ENV` (fixed hash seed, single-threaded
    BLAS, pinned numerical code paths) so that reruns write the same bytes.

    Args:
        argv: the arguments (without the program name); None: ``sys.argv[1:]``.

    Returns:
        The exit code: the subcommand's, 0 for ``--help``, 2 for a bad argument or an output folder
        that cannot be written (one line on stderr, before any work), 130 on Ctrl-C (one line; a
        sweep says how many runs are saved).
    """
    if argv is None:
        try:
            reexec_deterministic(sys.argv[1:])
        except UsageError as e:
            print(f"landscape: error: {e}", file=sys.stderr)
            return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse's --help (0) and errors (2, already printed on one line)
        return int(e.code or 0)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[args.command][0])
        for option, folder in output_dirs(module, args):
            check_output_dir(folder, option)
        return int(module.run(args) or 0)
    except UsageError as e:
        print(f"landscape {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        detail = " ".join(str(e).split())
        print(f"\nlandscape {args.command}: {detail or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # run through the package module, so UsageError raised by a subcommand is this module's class
    from analyses.cli import main as _main

    raise SystemExit(_main())
