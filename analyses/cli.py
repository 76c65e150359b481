"""The ``landscape`` command line: one subcommand per analysis script.

Each subcommand lives in its own module of ``analyses`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``--help`` is fast.

Conventions every subcommand follows (issue 13):

- arguments are validated before any work: a bad one is ONE line on stderr,
  ``landscape <command>: error: <what is wrong>``, and exit code 2, never a traceback
  (:class:`Parser`; a subcommand's ``run`` may raise :class:`UsageError` for checks argparse
  cannot express, e.g. a run directory without ``run.json``);
- ``--help`` shows every default (:class:`HelpFormatter`);
- each writes under ``figures/<command>/`` by default;
- long work reports progress on stderr, also without a terminal (:class:`Heartbeat`: a line every
  few seconds), and ``--quiet`` silences it.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

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
EXTRA_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "critical-points": ("analyses.critical_points", "find and classify the critical points near a run's stalls"),
    "digits": ("analyses.digits", "how many digits each curvature quantity carries in float32 vs float64"),
}
SUBCOMMANDS.update(EXTRA_SUBCOMMANDS)


class UsageError(Exception):
    """A bad argument found after parsing (still before any work): reported like argparse's
    own errors, one line and exit code 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option's help, unless the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default" in text.lower() or d is None or d is False or d == argparse.SUPPRESS \
                or not action.option_strings or action.nargs == 0:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``landscape spectrum: error: --steps must be >= 1, got -5``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------- argument types
def int_at_least(lo: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``lo``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def nonnegative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def existing_dir(text: str) -> Path:
    """argparse type: a directory that exists."""
    p = Path(text)
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    return p


def existing_file(text: str) -> Path:
    """argparse type: a file that exists."""
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return p


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


# ---------------------------------------------------------------------------- progress
_PRINTER = r"""
import os, select, sys, time
name, every = sys.argv[1], float(sys.argv[2])
what, detail, t0, buf, fd = None, "", 0.0, b"", sys.stdin.fileno()
while True:
    ready, _, _ = select.select([fd], [], [], every)
    if ready:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd, text = line[:1].decode(), line[1:].decode("utf-8", "replace")
            if cmd == "S":
                what, detail, t0 = text, "", time.monotonic()
            elif cmd == "N":
                detail = text
            elif cmd == "E":
                what = None
    elif what is not None:
        extra = ": " + detail if detail else ""
        print("[%s] %s%s (%.0f s)" % (name, what, extra, time.monotonic() - t0), file=sys.stderr, flush=True)
"""


class Heartbeat:
    """Progress on stderr that works without a terminal: ``[study] spectra (12 s)`` every
    ``every`` seconds while a step runs, plus a line when a step starts and ends; ``quiet=True``
    prints nothing. Use :meth:`step` as a context manager and :meth:`note` to say what happens
    inside it.

    The periodic lines come from a small printer *process*: a timer thread in the computing
    process would allocate memory at timing-dependent moments, which shifts array alignment and
    with it the last bits of BLAS results, so reruns would not be byte-identical."""

    def __init__(self, name: str, *, quiet: bool = False, every: float = 5.0) -> None:
        self.name, self.quiet, self.every = name, quiet, every
        self._proc: subprocess.Popen | None = None

    def _send(self, cmd: str, text: str = "") -> None:
        if self.quiet:
            return
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-c", _PRINTER, self.name, str(self.every)],
                                          stdin=subprocess.PIPE, text=True)
        try:
            self._proc.stdin.write(cmd + " ".join(text.split()) + "\n")  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            pass

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.name}] {text}", file=sys.stderr, flush=True)

    def note(self, detail: str) -> None:
        self._send("N", detail)

    def step(self, what: str) -> "_Step":
        return _Step(self, what)

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
            self._proc = None

    def __del__(self) -> None:
        self.close()


class _Step:
    def __init__(self, hb: Heartbeat, what: str) -> None:
        self.hb, self.what = hb, what
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> "_Step":
        self._t0 = time.perf_counter()
        self.hb.say(f"{self.what} ...")
        self.hb._send("S", self.what)
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.hb._send("E")
        self.seconds = time.perf_counter() - self._t0
        if exc_type is None:
            self.hb.say(f"{self.what} done in {self.seconds:.1f} s")


def show_bars(quiet: bool) -> bool:
    """The ``progress`` argument for tqdm-based inner loops: always False. Bars redraw at
    timing-dependent moments inside the computing process (see :class:`Heartbeat`), so the
    commands report progress through the heartbeat only."""
    return False


# ---------------------------------------------------------------------------- dispatcher
def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in SUBCOMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Parser whose chosen subcommand (``argv[0]``) has its full arguments loaded."""
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


#: the hash seed every command runs under: string hashing decides set/dict layouts and with them
#: the allocation sequence, hence array alignment and the last bits of BLAS results; a fixed
#: seed makes reruns byte-identical (measured: three seeds, three different theorems.md)
HASH_SEED = "0"
#: single-threaded BLAS/OpenMP for the analyses (their problems are small): multithreaded OpenBLAS
#: and MKL split work by load, so on a busy machine the last bits of results changed from run to
#: run (measured: 3 different theorems.md and 4 different spectrum_report.json in 4 concurrent
#: runs; identical once pinned). `landscape bench` keeps its own thread settings.
DETERMINISTIC_ENV = {"PYTHONHASHSEED": HASH_SEED, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``landscape ARGV``; returns the exit code (2 for a bad argument). Started from the
    command line, it re-executes itself once under :data:`DETERMINISTIC_ENV` (fixed hash seed,
    single-threaded BLAS) so that reruns write the same bytes."""
    if argv is None and os.environ.get("LANDSCAPE_NO_REEXEC") != "1":
        want = {"PYTHONHASHSEED": HASH_SEED} if sys.argv[1:2] == ["bench"] else DETERMINISTIC_ENV
        if any(os.environ.get(k) != v for k, v in want.items()):
            env = dict(os.environ, LANDSCAPE_NO_REEXEC="1", **want)
            os.execve(sys.executable, [sys.executable, "-m", "analyses.cli", *sys.argv[1:]], env)
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
        return int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)
    except UsageError as e:
        print(f"landscape {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # run through the package module, so UsageError raised by a subcommand is this module's class
    from analyses.cli import main as _main

    raise SystemExit(_main())
