"""Every ``landscape`` subcommand's ``--help`` works (in-process: exit code 0, one usage, no
traceback), the README's command table lists every subcommand once, and every time a help states
agrees with the table's.

A *stated time* is ``~N unit`` or a range ``N–M unit`` (unit s, min or h), e.g. ``~2.5 min``,
``6–8.5 min``, ``~1–1.5 min``; in the table it belongs to the flag written just before it
(``(`--quick` ~10 s)``), else to the command's default run; in a help, to the option whose help
holds it (the description: the default run). Vague times ("about half a minute") are refused.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from analyses.cli import SUBCOMMANDS, build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
NUMBER = r"\d+(?:\.\d+)?"
DURATION = re.compile(rf"(?:~\s*({NUMBER}(?:\s*[–-]\s*{NUMBER})?)|({NUMBER}\s*[–-]\s*{NUMBER}))\s*(s|min|h)\b")
FLAG_BEFORE = re.compile(r"`(--[a-z][a-z-]*)`\s*$")
VAGUE = re.compile(r"\b(about|under|over|around|roughly|half)\s+(an?\s+)?(minute|hour|second)s?\b", re.I)


def _times(text: str, *, flags: bool) -> dict[str | None, set[str]]:
    """Stated times in ``text`` by flag (None: the default run); ``flags``: read the flag from the
    text just before each time (the README's form)."""
    out: dict[str | None, set[str]] = {}
    for m in DURATION.finditer(text):
        value = re.sub(r"\s+", "", (m.group(1) or m.group(2))).replace("-", "–") + " " + m.group(3)
        flag = None
        if flags:
            f = FLAG_BEFORE.search(text[:m.start()])
            flag = f.group(1) if f else None
        out.setdefault(flag, set()).add(value)
    return out


def _readme_rows() -> dict[str, str]:
    """command -> the table's time cell, from the README's section "The `landscape` command"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## The `landscape` command", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `landscape "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        command = cells[0].split()[1].rstrip("`")
        assert command not in rows, f"{command} is listed twice in the README's command table"
        rows[command] = cells[2]
    return rows


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _help_times(command: str) -> dict[str | None, set[str]]:
    p = _subparser(command)
    out = {k: v for k, v in _times(p.description or "", flags=False).items()}
    for action in p._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or not action.help:
            continue
        for _, values in _times(action.help, flags=False).items():
            out.setdefault(longs[0], set()).update(values)
    return out


def _help_text(command: str) -> str:
    return _subparser(command).format_help()


def test_the_parser_of_the_time_rule():
    assert _times("6–8.5 min continuing (`--quick` ~2.5 min)", flags=True) == {None: {"6–8.5 min"},
                                                                             "--quick": {"2.5 min"}}
    assert _times("~50 min (measured 3 140 s; `--quick` ~1–1.5 min)", flags=True) == {None: {"50 min"},
                                                                                    "--quick": {"1–1.5 min"}}
    assert _times("`--quick` ~1 min; `--scaling` ~10 - 15 min", flags=True) == {"--quick": {"1 min"},
                                                                             "--scaling": {"10–15 min"}}
    assert _times("seconds", flags=True) == {} and VAGUE.search("a reduced run (about half a minute)")


def test_top_level_help_lists_every_subcommand_once(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.count("usage: landscape") == 1
    listed = re.findall(r"^ {4}(\S+)", out.split("positional arguments:", 1)[1], re.M)
    assert sorted(listed) == sorted(SUBCOMMANDS) and len(listed) == len(set(listed))


def test_the_readme_table_lists_every_subcommand():
    assert sorted(_readme_rows()) == sorted(SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_works_and_its_times_agree_with_the_readme(command, capsys):
    assert main([command, "--help"]) == 0
    cap = capsys.readouterr()
    assert cap.out.count("usage: ") == 1 and cap.out.startswith(f"usage: landscape {command}")
    assert "Traceback" not in cap.err and cap.err == ""
    text = _help_text(command)
    assert not VAGUE.search(text), f"landscape {command} --help states a vague time: {VAGUE.search(text).group(0)}"
    table = _times(_readme_rows()[command], flags=True)
    helps = _help_times(command)
    options = {o for a in _subparser(command)._actions for o in a.option_strings}
    for flag, values in helps.items():
        assert values == table.get(flag, set()), (
            f"landscape {command} --help states {sorted(values)} for {flag or 'the default run'}; the README's "
            f"table says {sorted(table.get(flag, set()))}")
    for flag, values in table.items():
        if flag is not None and flag in options:
            assert helps.get(flag) == values, (
                f"the README's table states {sorted(values)} for `landscape {command} {flag}`; its --help "
                f"says {sorted(helps.get(flag, set()))}")
