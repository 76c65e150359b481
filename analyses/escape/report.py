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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape.render import write_html

from .analysis import analyse
from .design import BASELINE, CONTROL_OF, HORIZON_MULT, TUNED_LR
from .figures import TITLES, draw_all, loss_cost_figure
from .records import load_records
from .sentences import (answer_sentence, cell_paragraph, censoring_sentence, cost_phrase, failures,
                        kappa_sentences, num, rule_sentence, speed_phrase, sweep_sentences)
from .sentences import ci_text as _ci



# ---------------------------------------------------------------------------- tables
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
    for sent in kappa_sentences(an) + sweep_sentences(an):
        parts.append(f"<p>{_html.escape(sent)}</p>")
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
    md += ["## The sub-experiments", "", *kappa_sentences(an), *sweep_sentences(an), ""]
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


__all__ = ["build_report", "lead", "lead_html", "rule_sentence", "answer_sentence", "censoring_sentence",
           "kappa_sentences", "sweep_sentences", "speed_phrase", "cost_phrase", "failures", "method_table",
           "control_table", "num"]
