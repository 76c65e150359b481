"""The escape study's sentences, built from its numbers alone (:mod:`analyses.escape.analysis`): the
answer per cause × kind (:func:`answer_sentence`), each rule against GD and its length-matched
control (:func:`rule_sentence`), where the rules fail, censoring, the κ experiment and the sweep.
:mod:`analyses.escape.report` puts them on the page."""
from __future__ import annotations

import math
from typing import Any

from .analysis import verdict
from .design import BASELINE, CONTROL_OF, METHODS, NO_REVERT
from .figures import TITLES

#: the rules whose sentences lead each cell, in order
LEAD_RULES = ("rms", "devarg", "rms@always", "devarg@always")
#: every SynaPrune rule and variant checked in "where the rules fail"
RULES = ("rms", "devarg", "noise", "rms@always", "devarg@always", "rms-norevert", "devarg-norevert")


def num(x: float | None, digits: int = 2) -> str:
    """A number with ``digits`` significant digits (``"–"`` for None).

    Args:
        x: the number.
        digits: significant digits.

    Returns:
        The text.

    >>> num(1.234), num(12.34), num(None), num(0.0123), num(1234.5)
    ('1.2', '12', '–', '0.012', '1234')
    """
    if x is None:
        return "–"
    if 100 <= abs(x) < 1e7:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def speed_phrase(c: dict[str, Any] | None, other: str) -> str:
    """"X× faster than <other> [lo, hi]" (or slower) from a paired comparison of steps (a over b).

    Args:
        c: :func:`analyses.escape.analysis.compare`'s result (``ratio`` = a's steps / b's).
        other: how to name b.

    Returns:
        The phrase; "(no detectable difference)" is added when the interval contains 1.

    >>> speed_phrase({"ratio": 0.5, "ratio_low": 0.4, "ratio_high": 0.625}, "GD")
    '2× faster than GD [1.6, 2.5]'
    >>> speed_phrase({"ratio": 1.25, "ratio_low": 0.8, "ratio_high": 2.0}, "GD")
    '1.2× slower than GD [0.8, 2] (no detectable difference)'
    >>> speed_phrase({"ratio": 1.0, "ratio_low": 1.0, "ratio_high": 1.0}, "GD")
    'as fast as GD [1, 1]'
    """
    if not c or c.get("ratio") is None:
        return f"not comparable with {other} (no paired runs)"
    r, lo, hi = c["ratio"], c.get("ratio_low"), c.get("ratio_high")
    if 0.9 < r < 1.1 or (lo is not None and 0.9 < lo <= hi < 1.1):
        return _near_one_phrase(r, lo, hi, other)
    if abs(math.log(r)) < 0.005:
        text = f"as fast as {other}"
        ci = "" if lo is None else f" [{num(1 / hi)}, {num(1 / lo)}]"
    elif r <= 1:
        text = f"{num(1 / r)}× faster than {other}"
        ci = "" if lo is None else f" [{num(1 / hi)}, {num(1 / lo)}]"
    else:
        text = f"{num(r)}× slower than {other}"
        ci = "" if lo is None else f" [{num(lo)}, {num(hi)}]"
    none = "" if lo is None or not (lo <= 1 <= hi) or text.startswith("as fast") else " (no detectable difference)"
    return text + ci + none


def _near_one_phrase(r: float, lo: float | None, hi: float | None, other: str) -> str:
    """A ratio near 1, with three significant digits (so 1.04 is not printed "1× slower")."""
    if abs(math.log(r)) < 0.005:
        text = f"as fast as {other}"
    elif r < 1:
        text = f"{num(1 / r, 3)}× faster than {other}"
    else:
        text = f"{num(r, 3)}× slower than {other}"
    if lo is None:
        return text
    if r < 1 or text.startswith("as fast"):
        ci = f" [{num(1 / hi, 3)}, {num(1 / lo, 3)}]"
    else:
        ci = f" [{num(lo, 3)}, {num(hi, 3)}]"
    none = " (no detectable difference)" if lo <= 1 <= hi and not text.startswith("as fast") else ""
    return text + ci + none


def answer_sentence(ca: dict[str, Any]) -> str:
    """The cell's answer in words (:func:`analyses.escape.analysis.verdict`), with its numbers: the rule
    against GD, against its own whole-phase length-matched control, and its cost.

    Args:
        ca: :func:`analyses.escape.analysis.cell_analysis` of a main cell.

    Returns:
        One sentence starting "Yes", "No" or "Undetermined".

    >>> c = lambda r, lo, hi, p: {"ratio": r, "ratio_low": lo, "ratio_high": hi, "p": p, "p_holm": p, "n": 8}
    >>> ca = {"n_instances": 8, "vs_gd": {"rms": {"steps": c(0.4, 0.3, 0.5, 0.01), "cost": c(0.5, 0.4, 0.6, 0)},
    ...                                  "len-rms": {"steps": c(0.38, 0.3, 0.5, 0.01)}},
    ...       "vs_control": {"rms": {"control": "len-rms", "steps": c(1.0, 0.9, 1.1, 0.9)}}}
    >>> answer_sentence(ca)[:90]
    'No, not by its aggregation: rms reaches the target 2.5× faster than GD [2, 3.3], but GD wi'
    """
    v = ca.get("verdict") or verdict(ca)
    rule, ctrl = v.get("rule"), v.get("control")
    vs_gd, vs_c = ca.get("vs_gd") or {}, ca.get("vs_control") or {}
    if rule is None:
        return "Undetermined: no SynaPrune rule with a length-matched control ran in this cell."
    g = vs_gd[rule]
    c = (vs_c.get(rule) or {}).get("steps")
    p_g, p_c = g["steps"].get("p_holm"), (c or {}).get("p_holm")
    if v["answer"] == "undetermined":
        why = (f"{v['n']} paired instance(s) are too few for a 95 % interval (at least 6 are needed)"
               if not v.get("powerless") or v["n"] < 6 else
               f"with {v['n']} paired instances and Holm over {v['family']} comparisons with GD no p-value can fall "
               f"below 0.05 (the exact signed-rank test's smallest is 2/2^{v['n']})")
        return (f"Undetermined: {why}; so far {rule} is {speed_phrase(g['steps'], 'GD')} and "
                f"{speed_phrase(c, 'its length-matched control')}.")
    if v["answer"] == "yes":
        return (f"Yes: {rule} reaches the target {speed_phrase(g['steps'], 'GD')} and "
                f"{speed_phrase(c, f'GD with the same step lengths ({ctrl})')}, at {cost_phrase(g.get('cost'), 'GD')} "
                f"(Holm-adjusted Wilcoxon p {num(p_g)} against GD, {num(p_c)} against the control).")
    if v["answer"] == "length":
        cg = (vs_gd.get(ctrl) or {}).get("steps")
        return (f"No, not by its aggregation: {rule} reaches the target {speed_phrase(g['steps'], 'GD')}, but GD with "
                f"the same step lengths ({ctrl}) is {speed_phrase(cg, 'GD')}, and against it {rule} is "
                f"{speed_phrase(c, ctrl)}, Holm-adjusted p {num(p_c)}: the gain is the step length "
                f"({rule} at {cost_phrase(g.get('cost'), 'GD')}).")
    return (f"No: no SynaPrune rule is detectably faster than GD here; the best, {rule}, is "
            f"{speed_phrase(g['steps'], 'GD')}, Holm-adjusted p {num(p_g)}, and "
            f"{speed_phrase(c, 'its length-matched control')}.")


def censoring_sentence(ca: dict[str, Any]) -> str | None:
    """How censoring was handled in the cell (None when every run reached the target).

    Args:
        ca: the cell's analysis (``censoring``).

    Returns:
        The sentence.

    >>> censoring_sentence({"censoring": {"runs": 10, "censored": 2, "diverged": 1}})[:40]
    'Censoring: 2 of 10 runs stopped at the h'
    """
    cz = ca.get("censoring") or {}
    if not cz.get("censored") and not cz.get("diverged"):
        return None
    return (f"Censoring: {cz['censored']} of {cz['runs']} runs stopped at the horizon before the target and "
            f"{cz['diverged']} diverged; each counts its horizon as its time, a lower bound, so a ratio against it "
            "understates the difference (conservative), and a Cox hazard ratio stratified by instance is given "
            "wherever a pair has such a run.")


def cost_phrase(c: dict[str, Any] | None, other: str) -> str:
    """"Z× <other>'s cost [lo, hi]" from a paired comparison of costs to the target.

    Args:
        c: :func:`analyses.escape.analysis.compare` with ``measure="cost"``.
        other: how to name b.

    Returns:
        The phrase.

    >>> cost_phrase({"ratio": 1.5, "ratio_low": 1.2, "ratio_high": 1.9}, "GD")
    "1.5× GD's cost [1.2, 1.9]"
    """
    if not c or c.get("ratio") is None:
        return f"cost not comparable with {other}"
    ci = "" if c.get("ratio_low") is None else f" [{num(c['ratio_low'])}, {num(c['ratio_high'])}]"
    return f"{num(c['ratio'])}× {other}'s cost{ci}"


def rule_sentence(ca: dict[str, Any], rule: str) -> str | None:
    """The cell's sentence for one rule: against GD, against its own length-matched control, cost.

    Args:
        ca: :func:`analyses.escape.analysis.cell_analysis` of the cell.
        rule: a rule label.

    Returns:
        The sentence, or None when the rule did not run in the cell.
    """
    vs = (ca.get("vs_gd") or {}).get(rule)
    if vs is None:
        return None
    ctrl = (ca.get("vs_control") or {}).get(rule)
    mine = ca["methods"][rule]
    if 2 * mine["reached"] < mine["n"]:
        s = (f"{rule} reached the target in only {mine['reached']}/{mine['n']} instances"
             + (f" (diverged in {mine['diverged']})" if mine["diverged"] else "")
             + f"; counting the horizon as its time, it is {speed_phrase(vs['steps'], 'GD')}")
    else:
        s = f"{rule} reaches the target {speed_phrase(vs['steps'], 'GD')}"
    if ctrl:
        s += f" and {speed_phrase(ctrl['steps'], 'its length-matched control')}"
    s += f", at {cost_phrase(vs['cost'], 'GD')}"
    s += f" (reached {mine['reached']}/{mine['n']}"
    if mine["diverged"]:
        s += f", diverged {mine['diverged']}"
    return s + ")."


def failures(ca: dict[str, Any]) -> list[str]:
    """Where the SynaPrune rules fail in a cell: divergence, targets GD reached but the rule did not
    within the horizon, a speed-up interval wholly below 1, and at-stalls rules that never acted
    (no stall detected, so they ran as GD).

    Args:
        ca: :func:`analyses.escape.analysis.cell_analysis`.

    Returns:
        One phrase per failure (empty: none).
    """
    out = []
    for rule in RULES:
        m = ca["methods"].get(rule)
        vs = (ca.get("vs_gd") or {}).get(rule)
        if m is None or vs is None:
            continue
        st = vs["steps"]
        if m["diverged"]:
            out.append(f"{rule} diverged in {m['diverged']} of {m['n']} instances")
        if st["only_b"]:
            out.append(f"{rule} missed the target within the horizon in {st['only_b']} instance(s) where GD reached it")
        if st.get("ratio_low") is not None and st["ratio_low"] > 1:
            out.append(f"{rule} is slower than GD ({speed_phrase(st, 'GD')})")
        if METHODS[rule].options.get("mode") != "always" and m["stall_detected"] < m["n"]:
            out.append(f"{rule} saw no stall in {m['n'] - m['stall_detected']} of {m['n']} instances (there it is GD)")
    return out


def cell_paragraph(cell: str, ca: dict[str, Any], theory: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the lead says about one cell.

    Args:
        cell: the cell.
        ca: its analysis.
        theory: its :func:`analyses.escape.analysis.theory_check` entry.

    Returns:
        ``title``, ``sentences`` (the rules'), ``failures``, ``best`` (the fastest method against GD), ``theory``.
    """
    sents = [answer_sentence(ca)] + [s for s in (rule_sentence(ca, r) for r in LEAD_RULES) if s]
    cz = censoring_sentence(ca)
    if cz:
        sents.append(cz)
    best = None
    vs = ca.get("vs_gd") or {}
    ranked = sorted((c["steps"]["ratio"], m) for m, c in vs.items() if c["steps"].get("ratio") is not None)
    if ranked:
        m = ranked[0][1]
        best = f"Fastest: {m}, {speed_phrase(vs[m]['steps'], 'GD')}, at {cost_phrase(vs[m]['cost'], 'GD')}."
    rev = []
    for r, v in NO_REVERT.items():
        m = ca["methods"].get(r)
        if m is None or not m["stall_detected"]:
            continue
        c = (ca.get("vs_revert") or {}).get(r)
        rev.append(f"{r} spent {m['total_reverted_steps']} steps in reverted phases ({m['runs_with_revert']} of "
                   f"{m['stall_detected']} runs with a stall; median {num(m['median_reverted_steps'])} per run)"
                   + ("" if not c else f"; its no-revert variant is {speed_phrase(c, r)}"))
    th = None
    if theory:
        th = (f"GD reached the target within the horizon ({num(theory['horizon_mult'])}× theory) in "
              f"{theory['reached']}/{theory['n']} instances; GD's steps / theory: median {num(theory['ratio_median'], 3)}, "
              f"range {num(theory['ratio_min'], 3)}–{num(theory['ratio_max'], 3)}.")
    return {"title": f"{TITLES[cell].replace(' x ', ' × ')} ({ca['n_instances']} instances)", "sentences": sents,
            "failures": failures(ca), "best": best, "theory": th,
            "revert": ("Revert overhead: " + "; ".join(rev) + ".") if rev else None}


def kappa_sentences(an: dict[str, Any]) -> list[str]:
    """The κ experiment in words: per saddle, whether each rule's steps relative to its length-matched
    control change as cancellation grows (the slope of the paired log-ratio on log10(1/κ), with the
    bootstrap interval over the starts, or the OLS interval when there is one start).

    Args:
        an: :func:`analyses.escape.analysis.analyse`.

    Returns:
        One sentence per saddle with a rule-vs-control comparison.
    """
    out = []
    for cell, k in (an.get("kappa") or {}).items():
        comps = {n: d for n, d in (k.get("comparisons") or {}).items() if d["b"] == CONTROL_OF.get(d["a"])}
        if not comps:
            continue
        lv = sorted((k.get("levels") or {}).values())
        parts = []
        for name, d in comps.items():
            f = d["fit"]
            lo, hi = d["slope_boot"] if d["slope_boot"][0] is not None else (f.get("low"), f.get("high"))
            if f.get("slope") is None:
                continue
            trend = ("no detectable trend" if lo is None or lo <= 0 <= hi else
                     "the rule gains on its control as cancellation grows" if hi < 0 else
                     "the rule loses ground to its control as cancellation grows")
            ms = d.get("missed") or {}
            left = ""
            if any(ms.values()):
                left = (f"; left out: {ms.get('a_only', 0)} start(s) where {d['a']} missed the target (diverged or "
                        f"censored) and {d['b']} reached it, {ms.get('b_only', 0)} the reverse, "
                        f"{ms.get('both', 0)} where both missed")
            xr = d.get("x_range")
            span = "" if not xr else f" over κ {num(10 ** -xr[0])}–{num(10 ** -xr[1])}"
            parts.append(f"{d['a']} / {d['b']} ×{num(math.exp(f['slope']), 3)} per decade of 1/κ{span} "
                         f"[{num(math.exp(lo), 3) if lo is not None else '–'}, "
                         f"{num(math.exp(hi), 3) if hi is not None else '–'}] ({trend}{left})")
        if parts and lv:
            out.append(f"κ at one {TITLES[cell].replace(' x ', ' × ')} (κ from {num(lv[-1])} down to {num(lv[0])}, "
                       f"label noise orthogonal to the inputs, {max(d['n_starts'] for d in comps.values())} start(s) "
                       f"per level; fitted where both runs reached the target), the ratio of a rule's steps to its "
                       f"length-matched control's changes by "
                       + "; ".join(parts) + ".")
    return out


def sweep_sentences(an: dict[str, Any]) -> list[str]:
    """The lr × distance sweep in words: GD's escape time against the theory (slope 1 = as predicted).

    Args:
        an: the analysis.

    Returns:
        One sentence per saddle where GD ran.
    """
    out = []
    for cell, ms in (an.get("sweep") or {}).items():
        d = ms.get(BASELINE)
        if not d or d["fit"].get("slope") is None:
            continue
        f = d["fit"]
        out.append(f"{TITLES[cell].replace(' x ', ' × ')}: GD's steps to the target scale as theory^{num(f['slope'], 3)}"
                   f"{ci_text(f.get('low'), f.get('high'))} over {f['n']} runs of the lr × distance sweep"
                   + (f" ({d['n_missed']} missed the target)" if d["n_missed"] else "") + ".")
    return out


def ci_text(lo: float | None, hi: float | None) -> str:
    """" [lo, hi]" with two significant digits ("" when there is no interval).

    Args:
        lo, hi: the interval's ends.

    Returns:
        The text.

    >>> ci_text(0.123, 4.56), ci_text(None, None)
    (' [0.12, 4.6]', '')
    """
    return "" if lo is None else f" [{num(lo)}, {num(hi)}]"
