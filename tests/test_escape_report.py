"""The escape study's report: its sentences are built from the records' numbers (a changed record
changes the sentence), and the page and figures use only characters the fonts Debian's Chromium has
(DejaVu) can draw."""
import math
import unicodedata
import warnings
from pathlib import Path

import pytest

from analyses.escape.analysis import analyse, cell_analysis
from analyses.escape.report import answer_sentence, build_report, censoring_sentence, failures, lead, rule_sentence

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
#: characters that rendered as empty boxes in Debian's Chromium (issue 23) and the emoji planes
FORBIDDEN = {"\u23e9", "\u23ea"}


def _rec(cell, inst, method, steps, *, horizon=300, theory=100.0, cost_per_step=64.0, diverged=False, part="main"):
    reached = steps is not None and not diverged
    n_run = steps if reached else (7 if diverged else horizon)
    curve = [[t, cost_per_step * (t + 1), 1.0 - 0.6 * t / max(1, n_run)] for t in (0, n_run // 2, n_run)]
    return {"part": part, "cell": cell, "instance": inst, "setting": "-", "method": method,
            "status": "nonfinite" if diverged else "ok", "reached_target": reached,
            "steps_to_target": steps if reached else None, "horizon": horizon, "theory_steps": theory,
            "cost_to_target": cost_per_step * (steps + 1) if reached else None,
            "own_cost_to_target": cost_per_step * (steps + 1) if reached else None, "steps_run": n_run,
            "cost_run": cost_per_step * (n_run + 1), "n_examples": 64, "final_loss": 0.4, "kappa_start": 1e-3,
            "first_stall": {"step": 20, "escaped": True, "censored": False, "escaped_by": "rule", "escape_steps": 5,
                            "reverted_steps": 50 if method == "devarg" else 0},
            "instance_info": {"stall_value": 1.0, "next_value": 0.0, "global_value": 0.0,
                              "certificate": {"kind": "strict_saddle", "cause": "cancelling", "closed_form_ok": True}},
            "curve": curve, "kind": "strict_saddle", "cause": "cancelling"}


def _records(rms_factor=0.5):
    recs = []
    for i in range(10):
        g = 100 + 10 * i
        recs.append(_rec("cancelling_strict", i, "gd", g))
        recs.append(_rec("cancelling_strict", i, "rms", int(round(g * rms_factor)), cost_per_step=128.0))
        recs.append(_rec("cancelling_strict", i, "len-rms", int(round(g * rms_factor)) + 1, cost_per_step=128.0))
        recs.append(_rec("cancelling_strict", i, "devarg", None, diverged=i < 3))
    return recs


def test_sentences_are_built_from_the_numbers():
    recs = _records(0.5)
    ca = cell_analysis(recs, "cancelling_strict")
    s = rule_sentence(ca, "rms")
    assert s.startswith("rms reaches the target 2× faster than GD [")
    assert "than its length-matched control" in s and "GD's cost" in s and "reached 10/10" in s
    # rms's cost: half the steps at twice the cost per step → ~1× GD's cost
    assert "at 1× GD's cost" in s
    fails = failures(ca)
    assert any(f.startswith("devarg diverged in 3 of 10") for f in fails)
    assert any("devarg missed the target within the horizon in 10" in f for f in fails)
    # change the records: rms now takes 4× GD's steps — the sentence follows
    s2 = rule_sentence(cell_analysis(_records(4.0), "cancelling_strict"), "rms")
    assert s2.startswith("rms reaches the target 4× slower than GD [") and s2 != s
    # one record changed: an instance where rms diverges shows up in the counts and the failures
    recs[1] = _rec("cancelling_strict", 0, "rms", None, diverged=True)
    ca3 = cell_analysis(recs, "cancelling_strict")
    assert "reached 9/10, diverged 1" in rule_sentence(ca3, "rms")
    assert any(f.startswith("rms diverged in 1 of 10") for f in failures(ca3))
    p = lead(analyse(recs))[0]
    assert p["title"].startswith("cancelling × strict saddle (10 instances)") and p["sentences"]


def _verdict_records(rms_factor, ctrl_factor, n=12, missed=0):
    """gd takes 100 + 10i steps on instance i; rms rms_factor × that, len-rms ctrl_factor × that (with a
    small instance-dependent jitter so no two differences tie); the first ``missed`` rms runs stop at the
    horizon."""
    recs = []
    for i in range(n):
        g = 100 + 10 * i
        recs.append(_rec("cancelling_strict", i, "gd", g))
        recs.append(_rec("cancelling_strict", i, "rms", None if i < missed else int(round(g * rms_factor)) + i % 3))
        recs.append(_rec("cancelling_strict", i, "len-rms", int(round(g * ctrl_factor)) + (i * 7) % 5))
    return recs


def test_the_answer_sentence_follows_the_records():
    # rms and its length control both ~2× faster than GD: the gain is the step length
    ca = cell_analysis(_verdict_records(0.5, 0.5), "cancelling_strict")
    assert ca["verdict"]["answer"] == "length"
    s = answer_sentence(ca)
    assert s.startswith("No, not by its aggregation: rms reaches the target 2") and "len-rms" in s
    # rms 3× faster than GD and 1.5× faster than its control: yes, with the numbers
    ca = cell_analysis(_verdict_records(1 / 3, 0.5), "cancelling_strict")
    s = answer_sentence(ca)
    assert ca["verdict"]["answer"] == "yes" and s.startswith("Yes: rms reaches the target 2.9× faster than GD [")
    assert "1.5× faster than GD with the same step lengths (len-rms)" in s and "Holm-adjusted" in s
    # rms slower than GD: no
    ca = cell_analysis(_verdict_records(1.5, 1.5), "cancelling_strict")
    assert ca["verdict"]["answer"] == "no" and answer_sentence(ca).startswith("No: no SynaPrune rule")
    # six pairs and Holm over two comparisons: 2·2/2^6 = 0.0625 — nothing can be detected, said so
    ca = cell_analysis(_verdict_records(1 / 3, 0.5, n=6), "cancelling_strict")
    assert ca["verdict"]["answer"] == "undetermined" and "no p-value can fall below 0.05" in answer_sentence(ca)
    # censored runs are counted and said
    ca = cell_analysis(_verdict_records(1 / 3, 0.5, missed=2), "cancelling_strict")
    assert ca["censoring"] == {"runs": 36, "censored": 2, "diverged": 0}
    assert censoring_sentence(ca).startswith("Censoring: 2 of 36 runs stopped at the horizon")
    assert ca["vs_gd"]["rms"]["steps"]["hazard"] is not None


def _undrawable(text: str, cmap: set[int] | None) -> set[str]:
    bad = {c for c in text if c in FORBIDDEN or ord(c) > 0xFFFF or unicodedata.category(c) == "So"
           and c not in "°©"}
    if cmap is not None:
        bad |= {c for c in text if ord(c) >= 0x80 and ord(c) not in cmap and not c.isspace()}
    return bad


def test_report_uses_only_glyphs_the_fonts_have(tmp_path):
    cmap = None
    if FONT.exists():
        ttlib = pytest.importorskip("fontTools.ttLib")
        cmap = set(ttlib.TTFont(str(FONT)).getBestCmap())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = build_report(tmp_path, _records(0.5))
    assert not [w for w in caught if "Glyph" in str(w.message) and "missing" in str(w.message)]
    assert outs[0] == "answer.png" and "escape_report.html" in outs
    for name in ("escape_report.html", "escape_summary.md"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        body = text.split("<body>", 1)[-1] if name.endswith("html") else text
        assert not _undrawable(body, cmap), (name, sorted(_undrawable(body, cmap)))
    # rebuilt from the same records, byte for byte
    before = {n: (tmp_path / n).read_bytes() for n in outs}
    build_report(tmp_path, _records(0.5))
    assert {n: (tmp_path / n).read_bytes() for n in outs} == before


def test_kappa_fit_leaves_out_pairs_without_a_time():
    """Two diverged runs are not a ratio of 1: only pairs where both reached the target are fitted, the
    others are counted and said."""
    from analyses.escape.analysis import kappa_regression
    from analyses.escape.sentences import kappa_sentences

    recs = []
    for r in range(3):
        for j, (noise, kappa) in enumerate(((0, 0.3), (3, 0.03), (30, 0.003))):
            for m, steps in (("rms@always", 40 * 2 ** j + r), ("len-rms@always", 10 + r)):
                rec = _rec("cancelling_strict", 0, m, None if noise == 30 else steps, part="kappa",
                           diverged=noise == 30)
                rec.update(setting=f"noise{noise}_r{r}", kappa_start=kappa)
                recs.append(rec)
    k = kappa_regression(recs)["cancelling_strict"]["comparisons"]["rms@always vs len-rms@always"]
    assert k["missed"] == {"a_only": 0, "b_only": 0, "both": 3} and len(k["points"]) == 6
    # the ratio doubles per decade of 1/κ over the fitted levels (log 2 per decade, up to the +r jitter)
    assert abs(k["fit"]["slope"] - math.log(2)) < 0.05
    s = kappa_sentences({"kappa": {"cancelling_strict": {"levels": {"noise0": 0.3, "noise30": 0.003},
                                                          "comparisons": {"x": k}}}})[0]
    assert "loses ground" in s and "3 where both missed" in s
