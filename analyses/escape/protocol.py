"""The stall-conditioned protocol's method variants (the digits comparison runs them through
:func:`analyses.escape.run.run_one`): a *variant* (:data:`VARIANTS`) is a method of
:data:`synaprune.METHODS` plus options, e.g. ``synaprune-rms@always`` = rms with ``mode="always"``,
trained on one zoo problem with the problem's stall detector and step size. Jobs are keyed by
:data:`KEY_FIELDS`. The zoo problems with a ``study`` hint (:func:`default_problems`) carry a
certified (kind, cause) cell (``tests/test_problem_certificates.py``); the escape study itself now
draws its instances from :mod:`analyses.problems.escape_instances` (:mod:`analyses.escape.design`).
"""
from __future__ import annotations

from typing import Any

from synaprune import METHODS

from ..problems import get_problem, list_problems

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
