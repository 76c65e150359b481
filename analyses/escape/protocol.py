"""The escape study's protocol: the method variants, the problem set, the seeds and the jobs.

A *job* trains one method *variant* (:data:`VARIANTS`: a method of :data:`synaprune.METHODS` plus
options, e.g. ``synaprune-rms@always`` = rms with ``mode="always"``) on one zoo problem
(:mod:`analyses.problems`) from ``problem.init(seed, hints["eps"])`` for ``hints["max_steps"]``
steps (``hints["quick_steps"]`` with ``--quick``), with the problem's stall detector and step size
(the same for every method, so stalls are comparable). Jobs are keyed by :data:`KEY_FIELDS`.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from synaprune import METHODS

from ..problems import PROBLEMS, get_problem, list_problems

#: method variants: label -> (method of synaprune.METHODS, options)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gd": ("gd", {}), "gd-matched": ("gd-matched", {}), "sgd": ("sgd", {}), "adam": ("adam", {}),
    "pgd": ("pgd", {}), "pgd-fixed": ("pgd-fixed", {}), "ncd": ("ncd", {}), "sfn": ("sfn", {}),
    "synaprune-rms": ("synaprune-rms", {}), "synaprune-devarg": ("synaprune-devarg", {}),
    "synaprune-noise": ("synaprune-noise", {}), "synaprune-penalty": ("synaprune-penalty", {}),
    "synaprune-hebbian": ("synaprune-hebbian", {}),
    "gd-matched-devarg": ("gd-matched", {"match": "synaprune-devarg"}),
    "synaprune-rms@always": ("synaprune-rms", {"mode": "always"}),
    "synaprune-devarg@always": ("synaprune-devarg", {"mode": "always"}),
}
#: the reference method every comparison is made against, and the step-length-matched control
BASELINE, MATCHED = "gd", "gd-matched"
#: each rule's own step-length-matched control (gd-matched copies rms's first step by default)
MATCHED_FOR: dict[str, str] = {"synaprune-devarg": "gd-matched-devarg", "synaprune-devarg@always": "gd-matched-devarg"}
CONTROLS = ("gd", "gd-matched", "gd-matched-devarg")
#: the default study's methods: GD, its step-matched control, PGD (Jin et al.), the SynaPrune rules
#: at stalls and rms always on
MAIN_METHODS: tuple[str, ...] = ("gd", "gd-matched", "gd-matched-devarg", "pgd", "synaprune-rms", "synaprune-devarg",
                                 "synaprune-noise", "synaprune-rms@always")
#: the quick smoke run: few problems, fewer methods, few seeds
QUICK_PROBLEMS: tuple[str, ...] = ("deep_linear_h1_zero", "deep_linear_h2_padded", "noisy_regression")
QUICK_METHODS: tuple[str, ...] = ("gd", "gd-matched", "synaprune-rms")
QUICK_SEEDS = 4
#: 48 seeds: with one stall per run a cell has up to 48 stalls, and a Wilson 95 % interval at 48
#: has half-width ≤ 0.136 at any rate (worst at 1/2); a difference of two rates near 0 or 1 (what the
#: study meets) has a Newcombe half-width below 0.15, one of two rates near 1/2 would need ~86 —
#: the report flags every headline interval wider than HALF_WIDTH_TARGET
DEFAULT_SEEDS = 48
HALF_WIDTH_TARGET = 0.15
KEY_FIELDS = ("problem", "method", "seed")
NO_STALL = "(no stall)"


def default_problems() -> list[str]:
    """The study's problem set.

    Returns:
        Every zoo problem with a ``study`` hint (a (kind, cause) cell it certifies), sorted.
    """
    return [n for n in list_problems() if get_problem(n).hints.get("study")]


def available_variants() -> list[str]:
    """Returns:
        The :data:`VARIANTS` labels whose method this SynaPrune trainer provides, in table order.
    """
    return [v for v, (m, _) in VARIANTS.items() if m in METHODS]


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return out


def plan(problems: Sequence[str] | None, methods: Sequence[str] | None, seeds: int | Sequence[int], *,
         max_steps: int | None = None, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, int], list[str],
                                                                     list[str], list[int]]:
    """Validate a study's configuration and list its jobs.

    Args:
        problems: zoo problem names; None → :func:`default_problems` (``quick``:
            :data:`QUICK_PROBLEMS`).
        methods: :data:`VARIANTS` labels; None → :data:`MAIN_METHODS` (``quick``:
            :data:`QUICK_METHODS`) less the variants this trainer lacks (said on stderr).
        seeds: a count N (seeds 0..N−1) or a list of distinct seeds.
        max_steps: steps of every run; None → each problem's ``max_steps`` hint (``quick_steps``
            with ``quick``).
        quick: the smoke run's defaults.

    Returns:
        ``(jobs, steps, problems, methods, seeds)``: the jobs ``{"problem", "method", "seed",
        "max_steps"}`` problem-major, then method, then seed; the steps per problem; the resolved
        lists.

    Raises:
        ValueError: naming the first bad item.
    """
    problems = list(problems) if problems else (list(QUICK_PROBLEMS) if quick else default_problems())
    avail = available_variants()
    lacking: list[str] = []
    if methods:
        methods = list(methods)
    else:  # the default list, less the variants this trainer lacks (said on stderr)
        wanted = list(QUICK_METHODS if quick else MAIN_METHODS)
        methods = [m for m in wanted if m in avail]
        lacking = [m for m in wanted if m not in avail]
    bad = [p for p in problems if p not in PROBLEMS]
    if bad:
        raise ValueError(f"unknown problem(s) {', '.join(bad)}; known: {', '.join(sorted(PROBLEMS))}")
    bad = [m for m in methods if m not in avail]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(avail)}")
    if len(set(problems)) != len(problems) or len(set(methods)) != len(methods):
        raise ValueError("a problem or method is listed twice")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"--steps must be a positive integer, got {max_steps!r}")
    seed_list = _seed_list(seeds)
    steps = {}
    for name in problems:
        h = get_problem(name).hints
        steps[name] = max_steps or int(h.get("quick_steps" if quick else "max_steps", h.get("max_steps", 1000)))
    jobs = [{"problem": p, "method": m, "seed": s, "max_steps": steps[p]}
            for p in problems for m in methods for s in seed_list]
    if lacking:
        print(f"landscape escape: note: this trainer lacks {', '.join(lacking)}; running the other default methods",
              file=sys.stderr)
    return jobs, steps, problems, methods, seed_list
