"""The escape study's report, from its records alone (``landscape escape --report DIR``): for each
cause × kind a sentence built from the numbers, where the rules fail, the figures, the tables, the
sub-experiments, the controls and the certificates.

Outputs (in the study's folder): ``escape_report.html`` (+ the shared plotly.js), ``escape_summary.md``,
``escape_analysis.json`` (every number, :func:`analyses.escape.analysis.analyse`) and the PNGs of
:func:`analyses.escape.figures.draw_all` (``answer.png`` first).
"""
from __future__ import annotations

import html as _html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape.render import write_html

from .analysis import analyse, verdict
from .design import BASELINE, CONTROL_OF, HORIZON_MULT, METHODS, NO_REVERT, TUNED_LR
from .figures import TITLES, draw_all, loss_cost_figure
from .records import load_records

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

    >>> num(1.234), num(12.34), num(None), num(0.0123)
    ('1.2', '12', '–', '0.012')
    """
    if x is None:
        return "–"
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
                f"{speed_phrase(c, ctrl)} (Holm-adjusted p {num(p_c)}): the gain is the step length "
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


# ---------------------------------------------------------------------------- tables
def _ci(lo: float | None, hi: float | None) -> str:
    return "" if lo is None else f" [{num(lo)}, {num(hi)}]"


def _speed_cell(c: dict[str, Any] | None) -> str:
    if not c or c.get("ratio") is None:
        return "–"
    lo, hi = c.get("ratio_low"), c.get("ratio_high")
    return f"{num(1 / c['ratio'])}" + ("" if lo is None else f" [{num(1 / hi)}, {num(1 / lo)}]")


def method_table(ca: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The cell's table: one row per method.

    Args:
        ca: the cell's analysis.

    Returns:
        (headers, rows).
    """
    head = ["method", "reached / n", "diverged", "median steps", "median steps / theory", "speed-up vs GD [95 %]",
            "Wilcoxon p (Holm)", "hazard ratio vs GD [95 %]", "cost vs GD [95 %]", "median own cost / cost",
            "stall seen / escaped (by rule)", "median reverted steps"]
    rows = []
    for m, s in ca["methods"].items():
        vs = (ca.get("vs_gd") or {}).get(m, {})
        st, co = vs.get("steps") or {}, vs.get("cost") or {}
        hz = st.get("hazard") or {}
        own = (None if not s["median_cost"] or s["median_own_cost"] is None else s["median_own_cost"] / s["median_cost"])
        rows.append([m, f"{s['reached']}/{s['n']}", str(s["diverged"]), num(s["median_steps"], 3),
                     num(s["median_steps_over_theory"]), "–" if m == BASELINE else _speed_cell(st),
                     "–" if st.get("p") is None else f"{num(st['p'])} ({num(st.get('p_holm'))})",
                     "–" if hz.get("hr") is None else f"{num(hz['hr'])}{_ci(hz['low'], hz['high'])}",
                     "–" if co.get("ratio") is None else f"{num(co['ratio'])}{_ci(co.get('ratio_low'), co.get('ratio_high'))}",
                     num(own), f"{s['stall_detected']} / {s['stall_escaped']} ({s['escaped_by_rule']})",
                     num(s["median_reverted_steps"])])
    return head, rows


def control_table(ca: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Each rule against its whole-phase length-matched control, and against its no-revert variant.

    Args:
        ca: the cell's analysis.

    Returns:
        (headers, rows).
    """
    head = ["rule", "vs its length-matched control: speed-up [95 %]", "cost vs control [95 %]",
            "no-revert variant: speed-up over the rule [95 %]", "rule's median reverted steps"]
    rows = []
    for r in CONTROL_OF:
        if r not in ca["methods"]:
            continue
        c = (ca.get("vs_control") or {}).get(r) or {}
        nr = (ca.get("vs_revert") or {}).get(r)
        rows.append([f"{r} / {CONTROL_OF[r]}", _speed_cell(c.get("steps")),
                     "–" if not c else f"{num(c['cost']['ratio'])}{_ci(c['cost'].get('ratio_low'), c['cost'].get('ratio_high'))}",
                     "–" if not nr else _speed_cell(nr), num(ca["methods"][r]["median_reverted_steps"])])
    return head, rows


def html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain HTML table (cells escaped).

    Args:
        head: the headers.
        rows: the rows.

    Returns:
        The HTML.

    >>> html_table(["a"], [["<1"]])
    "<div style='overflow-x:auto'><table class='escape'><tr><th>a</th></tr><tr><td>&lt;1</td></tr></table></div>"
    """
    h = "".join(f"<th>{_html.escape(x)}</th>" for x in head)
    b = "".join("<tr>" + "".join(f"<td>{_html.escape(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f"<div style='overflow-x:auto'><table class='escape'><tr>{h}</tr>{b}</table></div>"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table.

    Args:
        head: the headers.
        rows: the rows.

    Returns:
        The Markdown.

    >>> md_table(["a", "b"], [["1", "2"]]).splitlines()[2]
    '| 1 | 2 |'
    """
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


# ---------------------------------------------------------------------------- the page
def lead(an: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer, one paragraph per main cell (:func:`cell_paragraph`).

    Args:
        an: :func:`analyses.escape.analysis.analyse`.

    Returns:
        The paragraphs, in the order of the main cells.
    """
    return [cell_paragraph(c, ca, an["theory"].get(c)) for c, ca in an["cells"].items()]


def lead_html(an: dict[str, Any]) -> str:
    """The lead as HTML.

    Args:
        an: the analysis.

    Returns:
        The HTML (no figure).
    """
    parts = []
    for p in lead(an):
        parts.append(f"<p><b>{_html.escape(p['title'])}.</b> " + " ".join(_html.escape(s) for s in p["sentences"])
                     + (" " + _html.escape(p["best"]) if p["best"] else "") + "</p>")
        if p["failures"]:
            parts.append("<p style='margin-left:1.5em'>Where the rules fail: "
                         + _html.escape("; ".join(p["failures"])) + ".</p>")
        for key in ("revert", "theory"):
            if p[key]:
                parts.append(f"<p style='margin-left:1.5em;color:#555'>{_html.escape(p[key])}</p>")
    return "\n".join(parts)


def _design_html() -> str:
    tuned = "; ".join(f"{c}: " + ", ".join(f"{m} {v:g}" for m, v in d.items()) for c, d in TUNED_LR.items())
    return (
        "<p><b>Instances.</b> Each cell draws independent deep linear nets with whitened inputs (mean ½‖Px − y‖²): "
        "fresh inputs, teacher (ŝ₁ ∈ [2, 3], ratios 0.3–0.45), label noise, d ∈ {4, 5, 6}, m ∈ {48, 64, 96}, hidden "
        "widths 2–d, depth H = 1 (strict cells) or H ∈ {2, 3} (non-strict cells), an initialisation scale and draw. "
        "The start, the same for every method, is where the small-initialisation GD trajectory enters the stall's "
        "plateau (the initialisation at W = 0; the first step within 1 % of the gap above L₁ at the rank-1 point). "
        "Each stall is certified at the exact critical point: gradient 0, the least Hessian eigenvalue −ŝ_j (strict) "
        "or a PSD Hessian with the order-(H+1) descent ½q² − qŝ_j along the free path (non-strict), every g_i = 0 "
        "(vanishing) or Σg_i = 0 with mean‖g_i‖ &gt; 0 (cancelling).</p>"
        "<p><b>Target, theory, horizon.</b> Target: halfway in loss from the stall's value to the next critical value "
        "of the saddle-to-saddle sequence. Theory: strict, ln(δ/ε)/ln(1 + lr·ŝ_j) with ε the start's component on "
        "the most negative Hessian eigenspace and δ = √(2(√2 − 1)ŝ_j); order N ≥ 3, the balanced-path model "
        "dw/dt = lr(ŝ_j − w^N)w^(N−1) from w₀ = ‖free-path part of the start‖/√N (optimistic for a misaligned start). "
        f"Horizon: {HORIZON_MULT[2]:g}× theory (strict), {HORIZON_MULT[3]:g}× (order ≥ 3).</p>"
        "<p><b>Methods and step sizes.</b> GD, SGD (batches m/8, m/2), PGD and the SynaPrune rules use the instance's "
        "GD step lr = ½/λ_top (λ_top = N·ŝ₁^(2(N−1)/N), the top curvature of the balanced minimum). The length "
        "controls len-… take at every step the matched rule's step length (after the phase's decay 0.95^k and cap) "
        f"along GD's direction. Tuned once per cell on separate tuning instances: {_html.escape(tuned)}.</p>"
        "<p><b>Statistics.</b> Paired by instance: the Hodges–Lehmann estimate of log(steps_a/steps_b) with its exact "
        "signed-rank 95 % interval (a run that missed the target or diverged is censored: it counts its horizon, a "
        "lower bound of its time, which shrinks the difference — conservative), the Wilcoxon signed-rank p with "
        "Holm's adjustment in two families per cell (every method against GD; every rule against its own "
        "length-matched control; the intervals are unadjusted 95 %), a Cox model stratified by instance where any "
        "run of the pair missed the target. The answer's 'beats' needs both the interval below 1 and the "
        "Holm-adjusted p below 0.05. Cost: example-gradient units as the Trainer counts them (a full-batch gradient every step for "
        "monitoring; 'own cost' leaves it out for SGD and the always-on rules).</p>")


def _sub_experiments_html(an: dict[str, Any]) -> str:
    rows = []
    for cell, ms in (an.get("sweep") or {}).items():
        for m, d in ms.items():
            f = d["fit"]
            rows.append([TITLES.get(cell, cell), m, str(f["n"]), str(d["n_missed"]), num(f.get("slope"), 3) +
                         _ci(f.get("low"), f.get("high")), num(f.get("intercept"), 3), num(f.get("r2"), 3)])
    out = ("<p>log(steps to the target) = a + b·log(theory steps), least squares over the runs that reached the "
           "target (lr factor × initialisation scale × 2 starts); b = 1 means the measured escape time scales as "
           "the theory.</p>" + html_table(["saddle", "method", "runs fitted", "missed", "slope b [95 %]", "intercept a",
                                           "R²"], rows)) if rows else "<p>No sweep in these records.</p>"
    for cell, k in (an.get("kappa") or {}).items():
        if not k.get("comparisons"):
            continue
        lv = ", ".join(f"{lab}: κ = {num(v)}" for lab, v in sorted(k["levels"].items(), key=lambda kv: -kv[1]))
        rows = [[name, str(len(d["points"])), str(d["n_starts"]),
                 num(d["fit"].get("slope"), 3) + _ci(d["fit"].get("low"), d["fit"].get("high")),
                 "–" if d["slope_boot"][0] is None else f"[{num(d['slope_boot'][0])}, {num(d['slope_boot'][1])}]"]
                for name, d in k["comparisons"].items()]
        out += (f"<h3>κ at one {_html.escape(TITLES[cell].replace(' x ', ' × '))}</h3><p>Orthogonal label noise levels "
                f"(rms per example, in units of the clean residual) and κ at the start: {_html.escape(lv)}. The "
                "paired log-ratio of steps regressed on log10(1/κ): a slope whose interval lies below 0 for 'rule vs "
                "control' would mean the rule gains on its length-matched control as cancellation grows.</p>"
                + html_table(["comparison", "points", "starts", "OLS slope [95 %]", "bootstrap over starts [95 %]"],
                             rows))
    return out


def _controls_html(an: dict[str, Any]) -> str:
    rows = []
    for cell, ms in (an.get("controls") or {}).items():
        for m, d in ms.items():
            rows.append([TITLES.get(cell, cell), m, f"{d['reached']}/{d['n']}", str(d["diverged"]),
                         str(d["stall_escaped"]), num(d["median_excess"])])
    if not rows:
        return "<p>No control runs in these records.</p>"
    return ("<p>Minima have nothing below them to escape to by descent: at a global minimum no target exists; below a "
            "spurious minimum the target is halfway to the global value. What the controls measure: whether a method "
            "leaves the minimum (a positive relative excess of the final loss over the minimum's value), diverges, "
            "or is declared to have escaped by the Trainer's stall criterion.</p>"
            + html_table(["cell", "method", "reached target / n", "diverged", "stall 'escaped'",
                          "median (L_final − L_min)/|L_min|"], rows))


def _certificates_html(an: dict[str, Any]) -> str:
    rows = []
    for cell, d in (an.get("certificates") or {}).items():
        rows.append([TITLES[cell], str(d["n"]), f"{d['closed_form_ok']}/{d['n']}", f"{d['kind_ok']}/{d['n']}",
                     f"{d['cause_ok']}/{d['n']}", f"{d['classifier_at_point_agrees']}/{d['n']}",
                     ", ".join(f"{k} {v}" for k, v in sorted(d["classifier_kinds"].items())),
                     f"{d['nearest_agrees']}/{d['n_nearest']}",
                     ", ".join(f"{k} {v}" for k, v in sorted(d["nearest_kinds"].items()))])
    return ("<p>Per instance (GD's runs): the closed-form checks at the exact stall point, and the numerical "
            "classifier — at the exact point, and at the nearest critical point the Trainer finds from GD's first "
            "stall — against the certified kind.</p>"
            + html_table(["cell", "instances", "closed form", "kind", "cause", "classifier at the point agrees",
                          "its kinds", "nearest critical agrees", "its kinds"], rows))


def build_report(out_dir: str | Path, records: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Write the study's report from its records.

    Args:
        out_dir: the study's folder.
        records: the records (default: ``out_dir/escape.jsonl(.gz)``).

    Returns:
        The written file names (the answer figure first among the PNGs).
    """
    out = Path(out_dir)
    if records is None:
        records = load_records(out)
    an = analyse(records)
    pngs = draw_all(records, an, out)
    (out / "escape_analysis.json").write_text(json.dumps(an, indent=1, sort_keys=True, allow_nan=False) + "\n",
                                              encoding="utf-8")
    md = ["# The escape study: does SynaPrune escape stalls better than GD, with step length and cost controlled?", ""]
    for p in lead(an):
        md += [f"## {p['title']}", "", *p["sentences"]] + ([p["best"]] if p["best"] else [])
        md += ([f"Where the rules fail: {'; '.join(p['failures'])}."] if p["failures"] else []) + \
              [p[k] for k in ("revert", "theory") if p[k]] + [""]
        md += [md_table(*method_table(an["cells"][_cell_of(p, an)])), md_table(*control_table(an["cells"][_cell_of(p, an)]))]
    (out / "escape_summary.md").write_text("\n".join(md), encoding="utf-8")
    img = lambda n, alt: f"<p><img src='{n}' alt='{alt}' style='max-width:100%'></p>"  # noqa: E731
    sections: list[tuple[str, Any]] = [("The answer", lead_html(an) + img("answer.png", "speed-ups"))]
    sections.append(("Loss against cost", img("loss_vs_cost.png", "loss against cost")))
    sections.append(("Interactive: loss against cost", loss_cost_figure(records)))
    sections.append(("Time to the target (survival)", img("survival.png", "survival")
                     + "<p>The horizon (dotted) is where every run stops; a curve still above 0 there is the share of "
                       "instances censored at the horizon (not reached yet), which is not the same as never.</p>"))
    for cell, ca in an["cells"].items():
        sections.append((f"Tables: {TITLES[cell]}", html_table(*method_table(ca)) + html_table(*control_table(ca))))
    sections.append(("Theory: the lr × distance sweep and κ", ("" if "sweep.png" not in pngs else img("sweep.png", "sweep"))
                     + ("" if "kappa.png" not in pngs else img("kappa.png", "kappa")) + _sub_experiments_html(an)))
    sections.append(("Controls: minima", ("" if "controls_loss_vs_cost.png" not in pngs else
                                          img("controls_loss_vs_cost.png", "controls")) + _controls_html(an)))
    sections.append(("Certificates and the classifier", _certificates_html(an)))
    sections.append(("Design", _design_html()))
    write_html(out / "escape_report.html", sections, title="Escape study",
               intro_html=f"<p>{an['n_runs']} runs ({an['n_failed']} failed); rebuilt from escape.jsonl by "
                          "<code>landscape escape --report DIR</code>.</p>")
    return [*pngs, "escape_analysis.json", "escape_summary.md", "escape_report.html"]


def _cell_of(p: dict[str, Any], an: dict[str, Any]) -> str:
    return next(c for c in an["cells"] if p["title"].startswith(TITLES[c].replace(" x ", " × ")))


__all__ = ["build_report", "lead", "lead_html", "rule_sentence", "speed_phrase", "cost_phrase", "failures",
           "method_table", "control_table", "num"]
