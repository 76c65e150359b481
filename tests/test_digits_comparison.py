"""The digits method comparison with the escape study's protocol: its statistics on records the
test builds (hand values: Wilson, Kaplan–Meier medians, a log-rank statistic summed by hand, Holm),
censoring and attribution, and the resumable record file on a small net."""
import math

import pytest
from scipy.stats import chi2

from analyses import digits_comparison as cmpmod
from analyses import digits_plateau as plateau
from analyses.escape import records as escape_records
from analyses.escape import run as escape_run
from analyses.problems import digits as digits_problem

Z = 1.959963984540054  # the standard normal's 97.5 % quantile


def _ev(steps, *, escaped=True, censored=False, by=None, cost=100.0, cause="cancelling", step=400):
    return {"kind": "unclassified", "cause": cause, "step": step, "censored": censored,
            "escaped": None if censored else escaped, "escaped_by": by if escaped and not censored else None,
            "escape_steps": steps if escaped and not censored else None, "observed_steps": steps,
            "escape_horizon": 1000, "cost_example_grads": cost}


def _run(method, seed, events, cost=1e6):
    return {"problem": "digits_autoencoder", "method": method, "seed": seed, "status": "ok", "events": events,
            "cost_example_grads": cost, "gap": None}


def _records():
    gd = [_run("gd", s, [_ev(t, by="base", cost=c)]) for s, (t, c) in enumerate([(100, 500), (200, 600), (300, 700),
                                                                                 (400, 800)])]
    gd.append(_run("gd", 4, [_ev(1000, escaped=False, cost=1000)]))       # held for the whole horizon
    gd[0]["events"].append(_ev(50, by="base", step=900))                 # a later stall of the same cell: dropped
    rms = [_run("synaprune-rms", s, [_ev(t, by=b, cost=c)])
           for s, (t, b, c) in enumerate([(10, "rule", 100), (20, "rule", 200), (30, "base", 300), (40, "rule", 400)])]
    rms.append(_run("synaprune-rms", 4, [_ev(50, censored=True, cost=50)]))  # the run ended inside the horizon
    rms[1]["events"].append(_ev(5, by="base", cause="vanishing", step=1500))  # another cell
    matched = [_run("gd-matched", s, [_ev(t, by="rule")]) for s, t in enumerate([15, 25, 35, 45])]
    matched.append(_run("gd-matched", 4, []))                             # never stalled
    return gd + rms + matched


def _logrank_chi2(a, b):
    """Two-sample log-rank χ² summed by hand: a, b lists of (time, event)."""
    times = sorted({t for t, e in a + b if e})
    o = e_ = v = 0.0
    for t in times:
        na = sum(1 for s, _ in a if s >= t)
        nb = sum(1 for s, _ in b if s >= t)
        d = sum(1 for s, ev in a + b if ev and s == t)
        n = na + nb
        o += sum(1 for s, ev in a if ev and s == t)
        e_ += d * na / n
        v += d * (na / n) * (1 - na / n) * (n - d) / (n - 1) if n > 1 else 0.0
    return (o - e_) ** 2 / v


def test_comparison_statistics_against_hand_values():
    cmp = cmpmod.comparison_summary(_records())
    assert cmp["cell"] == ["unclassified", "cancelling"]
    rows = {d["method"]: d for d in cmp["main"]}
    gd, rms, m = rows["gd"], rows["synaprune-rms"], rows["gd-matched"]
    # censoring: the stall whose run ended is excluded from the rate, not a failure
    assert (gd["n_stalls"], gd["n_known"], gd["n_escaped"], gd["n_censored"]) == (5, 5, 4, 0)
    assert (rms["n_stalls"], rms["n_known"], rms["n_escaped"], rms["n_censored"]) == (5, 4, 4, 1)
    # attribution: the rule's own accepted phase vs the base method after a revert
    assert rms["n_by_rule"] == 3 and gd["n_by_rule"] == 0
    # one stall per run and cell: GD's later stall of the same cell is dropped
    assert gd["n_later_dropped"] == 1 and gd["n_runs"] == 5
    # Wilson 95 % by hand: 4/5 and 4/4
    n, p = 5, 0.8
    c = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    h = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    assert gd["ci_low"] == pytest.approx(c - h, rel=1e-5) and gd["ci_high"] == pytest.approx(c + h, rel=1e-5)
    assert gd["ci_low"] == pytest.approx(0.3755, abs=1e-4) and gd["ci_high"] == pytest.approx(0.9638, abs=1e-4)
    assert rms["ci_low"] == pytest.approx(4 / (4 + Z * Z), rel=1e-5) and rms["ci_high"] == 1.0
    assert rms["half_width"] == pytest.approx((1 - 4 / (4 + Z * Z)) / 2, rel=1e-5)
    # Kaplan–Meier medians, the first time S ≤ ½: S = 0.8, 0.6, 0.4 (five stalls) → the third escape
    # time; S = 0.75, 0.5 (gd-matched's four) → the second
    assert gd["median_escape_steps"] == 300 and rms["median_escape_steps"] == 30 and m["median_escape_steps"] == 25
    # log-rank against GD, χ² summed by hand, then Holm over the two tests of the cell
    g = [(100, True), (200, True), (300, True), (400, True), (1000, False)]
    p_rms = float(chi2.sf(_logrank_chi2([(10, True), (20, True), (30, True), (40, True), (50, False)], g), 1))
    p_m = float(chi2.sf(_logrank_chi2([(15, True), (25, True), (35, True), (45, True)], g), 1))
    assert _logrank_chi2([(10, True), (20, True), (30, True), (40, True), (50, False)], g) == pytest.approx(6.1316,
                                                                                                           rel=1e-4)
    assert rms["logrank_p_vs_gd"] == pytest.approx(p_rms, rel=1e-4)
    assert m["logrank_p_vs_gd"] == pytest.approx(p_m, rel=1e-4)
    lo, hi = sorted([p_rms, p_m])
    holm = {lo: min(1, 2 * lo), hi: max(min(1, 2 * lo), min(1, hi))}
    assert rms["holm_p_vs_gd"] == pytest.approx(holm[p_rms], rel=1e-4)
    assert m["holm_p_vs_gd"] == pytest.approx(holm[p_m], rel=1e-4)
    assert gd["logrank_p_vs_gd"] is None and gd["verdict"] == "reference"
    # Newcombe difference to GD: 4/4 − 4/5 = 0.2
    assert rms["rate_diff_vs_gd"] == pytest.approx(0.2, rel=1e-9)
    # cost per stall relative to GD's (medians 200 and 700 example gradients)
    assert rms["cost_vs_gd"] == pytest.approx(200 / 700, rel=1e-6)
    # the other cell and the stall-free run are reported, not pooled
    assert any(r["cause"] == "vanishing" and r["method"] == "synaprune-rms" for r in cmp["rows"])
    assert cmp["quiet"] == [{"method": "gd-matched", "runs": 1, "median_run_cost": 1e6}]
    text = cmpmod.methods_text(cmp)
    assert "gd: 4/5 [0.38, 0.96]" in text and "synaprune-rms: 4/4 [0.51, 1], 3 by the rule's own phase, 1 censored" in text
    assert "best" not in text
    html = cmpmod.methods_table(cmp)
    assert html.count("<tr>") == len(cmp["rows"]) + 1


def test_main_cell_without_gd_stalls():
    recs = [_run("gd", 0, []), _run("synaprune-rms", 0, [_ev(10)])]
    recs[1].update(train_status="nonfinite", n_steps=77)
    cmp = cmpmod.comparison_summary(recs)
    assert cmp["cell"] is None and cmp["main"] == []
    assert cmp["stopped"] == ["synaprune-rms/0: nonfinite at step 77"]
    assert "GD never stalled" in cmpmod.methods_text(cmp)


def test_run_comparison_resumes_continues_shipped_records_and_reruns_changed_ones(tmp_path, monkeypatch):
    """On a small net (100 digits, 64-4-2-4-64): the seed draws the initialisation, 1 and 2 workers
    write the same bytes, a second call runs nothing and leaves the file byte-identical, the gzipped
    copy is continued, and a changed configuration is rerun."""
    monkeypatch.setattr(digits_problem, "DIGITS_STALL", {"window": 5, "rel_tol": 1.0, "grad_rel": 1.0})
    opts = {"n": 100, "widths": (64, 4, 2, 4, 64)}
    jobs = cmpmod.comparison_jobs(("gd", "synaprune-rms"), [0, 1], 30, opts)
    path = tmp_path / "runs.jsonl"
    recs = cmpmod.run_comparison(jobs, path, workers=1)
    assert [(r["method"], r["seed"]) for r in recs] == [("gd", 0), ("gd", 1), ("synaprune-rms", 0),
                                                         ("synaprune-rms", 1)]
    assert all(r["status"] == "ok" and r["events"] for r in recs)
    assert recs[0]["initial_loss"] != recs[1]["initial_loss"]  # another seed, another initialisation
    assert recs[0]["initial_loss"] == recs[2]["initial_loss"]  # the same start for every method
    assert recs[0]["problem_options"]["stall"] == digits_problem.DIGITS_STALL
    assert recs[0]["options"] == cmpmod.RUN_OPTIONS
    first = path.read_bytes()
    # the same records, byte for byte, from two worker processes (the jobs carry the detector)
    assert cmpmod.run_comparison(jobs, tmp_path / "w2.jsonl", workers=2) == recs
    assert (tmp_path / "w2.jsonl").read_bytes() == first
    calls = []
    real = escape_run.run_one
    monkeypatch.setattr(escape_run, "run_one", lambda job: calls.append(job) or real(job))
    assert cmpmod.run_comparison(jobs, path, workers=1) == recs and calls == [] and path.read_bytes() == first
    escape_records.write_gzip_copy(path)
    path.unlink()
    assert cmpmod.run_comparison(jobs, path, workers=1) == recs and calls == [] and path.read_bytes() == first
    changed = cmpmod.comparison_jobs(("gd",), [0], 31, opts)
    out = cmpmod.run_comparison(changed, path, workers=1)
    assert len(calls) == 1 and out[0]["max_steps"] == 31


def test_stored_records_match_their_jobs_configuration():
    """A variant's own options (gd-matched-devarg's ``match``) are part of its record's options:
    the record still matches its job; another step count, detector or a failed run does not."""
    job = cmpmod.comparison_jobs(("gd-matched-devarg",), [3], 100, {"n": 50})[0]
    rec = {"status": "ok", "max_steps": 100, "options": {"match": "synaprune-devarg", **cmpmod.RUN_OPTIONS},
           "problem_options": {"n": 50, "stall": dict(digits_problem.DIGITS_STALL)}}
    assert cmpmod._same_config(rec, job)
    assert not cmpmod._same_config({**rec, "max_steps": 101}, job)
    assert not cmpmod._same_config({**rec, "status": "error"}, job)
    assert not cmpmod._same_config({**rec, "problem_options": {"n": 50, "stall": {"window": 5}}}, job)
    assert not cmpmod._same_config({**rec, "options": dict(cmpmod.RUN_OPTIONS)}, job)


def test_default_section_ships_gzipped_records_and_continues_them(tmp_path, monkeypatch):
    """The default preset's path (shrunk: a small net, one method, one seed, 40 steps): the section
    writes runs.jsonl.gz; with only the gz left, a second call continues it without running
    anything and writes a byte-identical digits.json."""
    monkeypatch.setitem(plateau.PRESETS, "default", (40, 1, 1, 5))
    monkeypatch.setitem(cmpmod.ESCAPE_METHODS, "default", ("gd",))
    monkeypatch.setitem(cmpmod.OPTIONAL_METHODS, "default", ())
    monkeypatch.setitem(cmpmod.ESCAPE_SEEDS, "default", 1)
    monkeypatch.setitem(cmpmod.ESCAPE_STEPS, "default", 40)
    monkeypatch.setattr(digits_problem, "DIGITS_STALL", {"window": 5, "rel_tol": 1.0, "grad_rel": 1.0})
    opts = {"n": 100, "widths": (64, 4, 2, 4, 64)}
    sec = plateau.study_section(tmp_path, quick=False, workers=1, problem_options=opts)
    sub = tmp_path / "digits"
    assert sec["summary"]["records"] == "runs.jsonl.gz" and (sub / "runs.jsonl.gz").exists()
    first = (sub / "digits.json").read_bytes()
    (sub / "runs.jsonl").unlink()
    calls = []
    real = escape_run.run_one
    monkeypatch.setattr(escape_run, "run_one", lambda job: calls.append(job) or real(job))
    plateau.study_section(tmp_path, quick=False, workers=1, problem_options=opts)
    assert calls == [] and (sub / "digits.json").read_bytes() == first
