"""The ``landscape`` command line: one subcommand per analysis script.

Each subcommand lives in its own module of ``analyses`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "study": ("analyses.study", "the main job: escape study, theorem checks, spectra and surfaces -> report.html"),
    "bench": ("analyses.bench", "benchmark the curvature engine (HVP, Lanczos, per-example gradients)"),
    "theorems": ("analyses.theorems", "verify Kawaguchi's deep-linear-network theorems empirically"),
    "surface": ("analyses.surface_plots", "loss-surface plots (random, Hessian-eigen, PCA directions)"),
    "spectrum": ("analyses.spectrum_report", "Hessian spectrum report at every stall of a training run"),
    "escape": ("analyses.escape", "escape benchmark: every method x problem x seed"),
    "critical-points": ("analyses.critical_points", "Frye et al. 2021 cut-offs: found vs analytic critical points of a linear autoencoder"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in SUBCOMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Parser whose chosen subcommand (``argv[0]``) has its full arguments loaded."""
    available = _available()
    parser = argparse.ArgumentParser(prog="landscape", description="Landscape analysis of neural-network losses.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in available else None
    for name, (module, help_text) in available.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
