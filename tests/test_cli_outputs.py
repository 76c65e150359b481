"""Issue 21 item 4: every command fails on an output folder it cannot write with ONE line on stderr and
exit code 2, before any work; a sweep whose workers kept dying ends escape, digits and the study with
one line, not a traceback."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import analyses.digits_plateau
import analyses.escape.cli
import analyses.study
from analyses.cli import SUBCOMMANDS, main
from analyses.sweep import SweepFailed

UNWRITABLE = "/proc/landscape-no-such-folder/out"   # /proc refuses new files, even to root

ARGS = {
    "study": ["--quick", "--out", UNWRITABLE],
    "escape": ["--quick", "--out", UNWRITABLE],
    "digits": ["--quick", "--out", UNWRITABLE],
    "critical-points": ["--quick", "--out", UNWRITABLE],
    "theorems": ["--quick", "--out", UNWRITABLE],
    "spectrum": ["--problem", "xor", "--method", "gd", "--out", UNWRITABLE],
    "surface": ["--problem", "xor", "--out", UNWRITABLE],
    "bench": ["--quick", "--no-peers", "--figures", UNWRITABLE],
    "plateaus": ["--quick", "--out", UNWRITABLE],
}


def test_every_subcommand_is_covered():
    assert set(ARGS) == set(SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(ARGS))
def test_unwritable_output_folder_is_one_line_and_exit_2_before_any_work(command, capsys):
    t0 = time.perf_counter()
    assert main([command, *ARGS[command]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    option = "--figures" if command == "bench" else "--out"
    assert err.startswith(f"landscape {command}: error: {option} {UNWRITABLE}: cannot be written")
    assert time.perf_counter() - t0 < 30  # nothing ran (the import of the command's module is all)


@pytest.mark.parametrize("command", ["study", "theorems", "surface"])
def test_output_under_a_file_is_one_line(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = [a if a != UNWRITABLE else str(blocker / "sub") for a in ARGS[command]]
    assert main([command, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder" in err
    assert blocker.read_text() == "x"


def _sweep_failed(*args, **kwargs):
    raise SweepFailed("escape sweep: worker processes died 4 times (restarted 3 times); 5 of 12 runs are saved in "
                      "X/escape.jsonl; resume with --resume", 5, 12, Path("X/escape.jsonl"))


def test_sweep_failure_ends_escape_and_digits_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(analyses.escape.cli, "run_benchmark", _sweep_failed)
    monkeypatch.setattr(analyses.digits_plateau, "run_part", _sweep_failed)
    for command in ("escape", "digits"):
        assert main([command, "--quick", "--quiet", "--out", str(tmp_path / command)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"landscape {command}: error: escape sweep: worker processes died") and "5 of 12" in err


def test_sweep_failure_in_a_study_part_is_one_line(monkeypatch, tmp_path, capfd):
    mod = tmp_path / "fake_sweep_part.py"
    mod.write_text("from analyses.sweep import SweepFailed\n"
                   "def study_section(out, *, quick, seed):\n"
                   "    raise SweepFailed('sweep: worker processes died 4 times; 0 of 3 runs are saved', 0, 3, out)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{Path(analyses.study.__file__).resolve().parents[1]}")
    monkeypatch.setitem(analyses.study.SECTIONS, "fake_sweep_part", "fake_sweep_part:study_section")
    assert main(["study", "--only", "fake_sweep_part", "--out", str(tmp_path / "out"), "--quiet"]) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert failed == ["FAILED fake_sweep_part: SweepFailed: sweep: worker processes died 4 times; "
                      "0 of 3 runs are saved"]
