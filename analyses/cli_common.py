"""What every ``landscape`` subcommand shares (issue 13's conventions), below the dispatcher
(:mod:`analyses.cli`) so that subcommand modules import it without pointing back up:

- arguments are validated before any work: a bad one is ONE line on stderr,
  ``landscape <command>: error: <what is wrong>``, and exit code 2, never a traceback
  (:class:`Parser`; a subcommand's ``run`` may raise :class:`UsageError` for checks argparse
  cannot express, e.g. a run directory without ``run.json``);
- ``--help`` shows every default (:class:`HelpFormatter`);
- long work reports progress on stderr, also without a terminal (:class:`Heartbeat`: a line every
  few seconds), and ``--quiet`` silences it (:func:`add_quiet`);
- every command runs under :data:`DETERMINISTIC_ENV`, so reruns write the same bytes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn


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
        """Print ``<prog>: error: <message>`` on one line and exit with code 2.

        Args:
            message: argparse's message (whitespace collapsed).
        """
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---------------------------------------------------------------------------- argument types
def int_at_least(lo: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``lo``.

    Args:
        lo: the smallest value accepted.

    Returns:
        The type function (str → int; ``argparse.ArgumentTypeError`` otherwise).

    >>> int_at_least(3)("4")
    4
    """
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
    """argparse type: a finite float > 0.

    Args:
        text: the argument.

    Returns:
        The value.

    Raises:
        argparse.ArgumentTypeError: not a number, or not finite and > 0.
    """
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def nonnegative_float(text: str) -> float:
    """argparse type: a finite float >= 0.

    Args:
        text: the argument.

    Returns:
        The value.

    Raises:
        argparse.ArgumentTypeError: not a number, or not finite and >= 0.
    """
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def existing_dir(text: str) -> Path:
    """argparse type: a directory that exists.

    Args:
        text: the argument.

    Returns:
        The path.

    Raises:
        argparse.ArgumentTypeError: no such directory.
    """
    p = Path(text)
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    return p


def existing_file(text: str) -> Path:
    """argparse type: a file that exists.

    Args:
        text: the argument.

    Returns:
        The path.

    Raises:
        argparse.ArgumentTypeError: no such file.
    """
    p = Path(text)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return p


def check_output_dir(path: str | Path, option: str) -> Path:
    """Check, before any work, that ``path`` is a folder this process can write in, or can create:
    a file is created and removed in it (or in its nearest existing ancestor, which is then left as
    it was). Every command's output folders pass through it (:func:`analyses.cli.main`).

    Args:
        path: the output folder. option: the option that named it (``"--out"``), for the message.

    Returns:
        The path.

    Raises:
        UsageError: one line naming the folder and why it cannot be written.

    >>> try:
    ...     check_output_dir("/proc/no-such-folder", "--out")
    ... except UsageError as e:
    ...     print(str(e)[:71])
    --out /proc/no-such-folder: cannot be written (creating a file in /proc
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p}: exists and is not a folder")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{option} {p}: cannot be created, {probe} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".landscape-write-check-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot be written (creating a file in {probe} failed: {e.strerror or e}); "
                         f"choose a writable folder with {option}") from None
    return p


def add_quiet(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` / ``-q``: no progress lines on stderr.

    Args:
        p: the subcommand's parser.
    """
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
        """Print ``[name] text`` on stderr now (unless quiet).

        Args:
            text: the line.
        """
        if not self.quiet:
            print(f"[{self.name}] {text}", file=sys.stderr, flush=True)

    def note(self, detail: str) -> None:
        """Say what happens inside the current step (shown in the periodic lines).

        Args:
            detail: a short note.
        """
        self._send("N", detail)

    def step(self, what: str) -> "_Step":
        """A step: a line when it starts and ends, periodic lines while it runs.

        Args:
            what: the step's name.

        Returns:
            A context manager; its ``seconds`` holds the step's wall time after it ends.
        """
        return _Step(self, what)

    def close(self) -> None:
        """Stop the printer process (also on deletion)."""
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
    commands report progress through the heartbeat only.

    Args:
        quiet: the command's ``--quiet`` (ignored).

    Returns:
        False.
    """
    return False


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
