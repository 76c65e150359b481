"""The command line: a bad argument is one line on stderr and exit code 2, before any work;
--help shows defaults; `spectrum` needs an explicit --method; an empty report says why."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyses.cli import main

REPO = Path(__file__).resolve().parents[1]

BAD = [
    (["nope"], "invalid choice: 'nope'"),
    (["spectrum", "--method", "nope", "--problem", "xor"], "argument --method: invalid choice: 'nope'"),
    (["spectrum", "--from", "/nonexistent"], "argument --from: no such directory: /nonexistent"),
    (["spectrum", "--problem", "xor", "--method", "gd", "--steps", "-5"], "argument --steps: must be >= 1, got -5"),
    (["spectrum", "--problem", "xor"], "--problem needs --method"),
    (["spectrum", "--problem", "xor", "--method", "gd", "--k", "0"], "argument --k: must be >= 1, got 0"),
    (["spectrum"], "one of the arguments --problem --from is required"),
    (["study", "--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["study", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["study", "--bogus"], "unrecognized arguments: --bogus"),
    (["study", "--only", "nope"], "argument --only: unknown part 'nope'"),
    (["theorems", "--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
    (["surface", "--problem", "nope"], "argument --problem: invalid choice: 'nope'"),
    (["surface", "--problem", "xor", "--steps", "2"], "argument --steps: must be >= 3, got 2"),
    (["surface", "--problem", "xor", "--span", "-1"], "argument --span: must be a finite number > 0, got -1"),
    (["surface", "--problem", "xor", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
    (["surface", "--replot", "/nonexistent.npz"], "argument --replot: no such file: /nonexistent.npz"),
    (["surface"], "give --problem NAME"),
    (["surface", "--problem", "xor", "--bench"], "give one of --problem, --replot, --bench"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("landscape") and ": error: " in lines[0]
    assert message in lines[0]
    assert "Traceback" not in cap.err and cap.out == ""


def test_from_dir_without_run_json_is_refused(tmp_path, capsys):
    assert main(["spectrum", "--from", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"landscape spectrum: error: {tmp_path} holds no run.json: not a trainer run directory"


def test_bad_argument_from_the_installed_entry_point_has_no_traceback():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "analyses.cli", "spectrum", "--problem", "xor"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "--problem needs --method" in res.stderr


@pytest.mark.parametrize("command,expected", [
    ("study", ["(default: figures)", "(default: 0)"]),
    ("spectrum", ["(default: 1500)", "(default: 5)", "no default"]),
    ("surface", ["(default: 21)", "(default: figures/surface)", "(default: random)"]),
    ("theorems", ["(default: figures/theorems)"]),
])
def test_help_shows_defaults(command, expected, capsys):
    with pytest.raises(SystemExit) as e:
        from analyses.cli import build_parser

        build_parser([command]).parse_args([command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for piece in expected:
        assert piece in text, piece


def test_spectrum_of_a_run_without_stalls_says_why(tmp_path, capsys):
    # 3 steps of GD on XOR: the stall detector's window never fills, so there is no stall
    assert main(["spectrum", "--problem", "xor", "--method", "gd", "--steps", "3", "--out", str(tmp_path),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 stall(s) reported" in out and "the run had no stall" in out and "never fired in 3 steps" in out
    page = (tmp_path / "spectrum_report.html").read_text()
    assert "No stall to report: the run had no stall" in page


HEARTBEAT = """
import time
from analyses.cli_common import Heartbeat
hb = Heartbeat("x", every=0.2, quiet={quiet})
with hb.step("working"):
    hb.note("half way")
    time.sleep(1.5)
hb.close()
"""


def test_progress_lines_without_a_terminal_and_quiet():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", HEARTBEAT.format(quiet=False)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)   # stderr is a pipe: no terminal
    lines = res.stderr.splitlines()
    assert res.returncode == 0 and lines[0] == "[x] working ..." and lines[-1].startswith("[x] working done in")
    beats = [line for line in lines[1:-1] if line.startswith("[x] working: half way (")]
    assert len(beats) >= 2, res.stderr
    res = subprocess.run([sys.executable, "-c", HEARTBEAT.format(quiet=True)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == ""
