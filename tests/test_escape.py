"""The escape study's records and summary: censoring, attribution and one stall per run on constructed
records; event records from trainer-like events; the CLI's validation; records identical across
workers and resume (real runs, small)."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from analyses.escape import (MAIN_METHODS, NO_STALL, QUICK_PROBLEMS, VARIANTS, default_problems, event_record,
                             load_records, run_benchmark, run_one, stall_units, summarize)
from analyses.stats import kaplan_meier, newcombe_difference, wilson_interval

ROOT = Path(__file__).resolve().parents[1]


def _ev(kind, cause, escaped, steps=None, censored=False, by=None, step=10, observed=None, cost=5.0, kappa=1e-3):
    if observed is None:
        observed = steps if escaped else (500 if not censored else 123)
    return {"kind": kind, "cause": cause, "escaped": None if censored else escaped, "censored": censored,
            "escaped_by": by, "escape_steps": steps, "escape_horizon": 500, "observed_steps": observed,
            "step": step, "kappa": kappa, "example_grad_scale": 0.1, "cost_example_grads": cost}


def _rec(problem, method, seed, events, gap=0.5, cost=100.0):
    return {"problem": problem, "method": method, "seed": seed, "status": "ok", "gap": gap,
            "cost_example_grads": cost, "events": events}


def _constructed():
    recs = []
    # gd at a cancelling strict saddle of problem p: 10 runs, 6 escape (steps 10..60), 2 held, 2 censored
    for i in range(10):
        if i < 6:
            ev = _ev("strict_saddle", "cancelling", True, 10 * (i + 1), by="base")
        elif i < 8:
            ev = _ev("strict_saddle", "cancelling", False)
        else:
            ev = _ev("strict_saddle", "cancelling", False, censored=True, observed=50)
        recs.append(_rec("p", "gd", i, [ev], gap=float(i)))
    # rms: 10 runs, 9 escape quickly, 5 of them by the rule; each run also has a SECOND stall in the same
    # cell (dropped: not independent) and one in another cell (vanishing)
    for i in range(10):
        first = (_ev("strict_saddle", "cancelling", True, 3 + i, by="rule" if i < 5 else "base") if i < 9
                 else _ev("strict_saddle", "cancelling", False))
        second = _ev("strict_saddle", "cancelling", False, step=900)
        other = _ev("strict_saddle", "vanishing", True, 40, by="base", step=1000)
        recs.append(_rec("p", "synaprune-rms", i, [first, second, other], cost=300.0))
    # the same cell on another problem must never be pooled with p
    recs.append(_rec("q", "gd", 0, [_ev("strict_saddle", "cancelling", True, 7, by="base")]))
    recs.append({"problem": "p", "method": "gd", "seed": 99, "status": "error", "error": "boom", "events": []})
    recs.append(_rec("p", "pgd", 0, []))
    return recs


def test_rates_exclude_censored_stalls_and_use_one_stall_per_run_and_cell():
    recs = _constructed()
    units = stall_units(recs)
    rms_units = [u for u in units if u["method"] == "synaprune-rms" and u["cause"] == "cancelling"]
    assert len(rms_units) == 10 and all(u["later_in_cell"] == 1 and u["step"] == 10 for u in rms_units)
    rows = {(r.problem, r.kind, r.cause, r.method): r for r in summarize(recs)}
    gd = rows[("p", "strict_saddle", "cancelling", "gd")]
    assert (gd.n_stalls, gd.n_censored, gd.n_known, gd.n_escaped) == (10, 2, 8, 6)
    assert gd.escape_rate == pytest.approx(6 / 8)  # censored are not failures: 6/8, not 6/10
    lo, hi = wilson_interval(6, 8)
    assert (gd.ci_low, gd.ci_high) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    # KM median from the product limit by hand: 10 at risk, escapes at 10..60 each 1/10 -> S(50) = 0.5
    assert gd.median_escape_steps == 50
    assert gd.km_at_horizon == pytest.approx(kaplan_meier(
        [10, 20, 30, 40, 50, 60, 500, 500, 50, 50], [1] * 6 + [0] * 4).at(500), abs=1e-6)
    rms = rows[("p", "strict_saddle", "cancelling", "synaprune-rms")]
    assert (rms.n_stalls, rms.n_known, rms.n_escaped, rms.n_by_rule, rms.n_later_dropped) == (10, 10, 9, 5, 10)
    d, dlo, dhi = newcombe_difference(9, 10, 6, 8)
    assert rms.rate_diff_vs_gd == pytest.approx(d, abs=1e-6) and rms.diff_low == pytest.approx(dlo, abs=1e-6)
    assert rms.logrank_p_vs_gd is not None and rms.holm_p_vs_gd == pytest.approx(rms.logrank_p_vs_gd, abs=1e-6)
    assert rms.median_run_cost == 300 and rms.median_cost_example_grads == 5
    # never pooled: problem q has its own cell; failed runs contribute nothing; stall-free runs are listed
    assert rows[("q", "strict_saddle", "cancelling", "gd")].n_stalls == 1
    assert rows[("p", NO_STALL, "-", "pgd")].n_runs == 1
    assert ("p", "strict_saddle", "vanishing", "synaprune-rms") in rows
    assert summarize([]) == []
    json.dumps([r.to_dict() for r in rows.values()], allow_nan=False)


def test_event_record_censoring_and_attribution_from_trainer_events():
    att = SimpleNamespace(to_dict=lambda: {"accepted": False, "steps": 50})
    base = dict(index=0, step=100, loss=1.0, grad_norm=1e-4, kind="strict_saddle", report=None,
                cancellation=SimpleNamespace(kappa=2e-3, mean_example_grad_norm=0.5), escape_horizon=500,
                attempts=[att], distance_moved=0.1, next_kind=None, next_is_final=True)
    # reverted attempt, then the base optimiser escaped: attributed to "base", not to the rule
    ev = SimpleNamespace(**base, escaped=True, escape_steps=80, censored=False, escaped_by="base", cause="cancelling")
    r = event_record(ev, n_steps=1000)
    assert (r["escaped"], r["censored"], r["escaped_by"], r["observed_steps"]) == (True, False, "base", 80)
    assert r["kappa"] == 2e-3 and r["example_grad_scale"] == 0.5 and r["attempts"][0]["accepted"] is False
    # not escaped and the run ended 300 steps after the stall (< horizon 500): censored, outcome unknown
    ev = SimpleNamespace(**base, escaped=False, escape_steps=None)
    r = event_record(ev, n_steps=400)
    assert (r["censored"], r["escaped"], r["observed_steps"]) == (True, None, 300)
    # not escaped within the horizon: a known failure, followed for the whole horizon
    r = event_record(SimpleNamespace(**base, escaped=False, escape_steps=None), n_steps=1000)
    assert (r["censored"], r["escaped"], r["observed_steps"]) == (False, False, 500)
    for key in ("kind", "nearest_critical", "cause", "kappa", "censored", "escaped", "escaped_by", "escape_steps",
                "cost_example_grads"):
        assert key in r
    # the stall's kind is the kind of the critical point it approaches when that search converged
    near = SimpleNamespace(**{**base, "kind": "inconclusive"}, escaped=False, escape_steps=None,
                           nearest_critical={"kind": "non_strict_saddle", "converged": True})
    r = event_record(near, n_steps=1000)
    assert (r["kind"], r["kind_at_stall"], r["kind_source"]) == ("non_strict_saddle", "inconclusive", "nearest_critical")
    near.nearest_critical = {"kind": "non_strict_saddle", "converged": False}
    r = event_record(near, n_steps=1000)
    assert (r["kind"], r["kind_source"]) == ("inconclusive", "at_stall")
    # at the problem's certified critical value (relative 1e-6 of max(|value|, scale)) the certificate decides
    near.nearest_critical = {"kind": "minimum", "converged": True, "loss": 0.2394640721}
    cert = {"kind": "non_strict_saddle", "critical_value": 0.23946407176, "scale": 2.0}
    r = event_record(near, n_steps=1000, certified=cert)
    assert (r["kind"], r["kind_source"], r["at_certified_point"]) == ("non_strict_saddle", "certificate", True)
    near.nearest_critical = {"kind": "minimum", "converged": True, "loss": 0.2395}
    r = event_record(near, n_steps=1000, certified=cert)
    assert (r["kind"], r["kind_source"], r["at_certified_point"]) == ("minimum", "nearest_critical", False)


def test_study_set_crosses_cause_and_kind():
    cells = {}
    from analyses.problems import get_problem

    for name in default_problems():
        s = get_problem(name).hints["study"]
        cells.setdefault((s["kind"], s["cause"]), []).append(name)
    for kind in ("strict_saddle", "non_strict_saddle", "minimum", "global_minimum"):
        for cause in ("vanishing", "cancelling"):
            assert cells.get((kind, cause)), (kind, cause)
    quick = {get_problem(n).hints["study"]["kind"] + "/" + get_problem(n).hints["study"]["cause"]
             for n in QUICK_PROBLEMS}
    assert any(c.endswith("saddle/cancelling") for c in quick)  # a saddle stall caused by cancellation
    assert {"gd", "gd-matched", "pgd"} <= set(MAIN_METHODS) and set(MAIN_METHODS) <= set(VARIANTS)


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "analyses.cli", "escape", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args,needle", [
    (["--seeds", "0"], "--seeds must be a positive integer"),
    (["--steps", "-5"], "--steps must be a positive integer"),
    (["--workers", "x"], "--workers must be a positive integer"),
    (["--methods", "nope"], "unknown method(s) nope"),
    (["--problems", "nope"], "unknown problem(s) nope"),
    (["--scheduler", "http://x"], "--scheduler must be"),
    (["--report", "/nonexistent/dir"], "not a directory"),
])
def test_cli_bad_argument_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    from analyses.cli import main

    try:
        rc = main(["escape", *args, "--out", str(tmp_path / "o")])
    except SystemExit as exc:  # argparse-level errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # validated before any work


def test_cli_help_shows_defaults():
    res = _cli("--help")
    assert res.returncode == 0 and "default: figures/escape" in res.stdout and "--quiet" in res.stdout


def test_failing_run_is_recorded_not_raised():
    rec = run_one({"problem": "no_such_problem", "method": "gd", "seed": 0, "max_steps": 5})
    assert rec["status"] == "error" and "no_such_problem" in rec["error"] and rec["events"] == []


def test_real_runs_identical_across_workers_and_report_rebuilds(tmp_path):
    kw = dict(max_steps=100, progress=False)
    a = run_benchmark(["noisy_regression"], ["gd", "synaprune-rms"], 1, tmp_path / "a", workers=1, **kw)
    b = run_benchmark(["noisy_regression"], ["gd", "synaprune-rms"], 1, tmp_path / "b", workers=2, figures=False,
                      **kw)
    assert (tmp_path / "a" / "escape.jsonl").read_bytes() == (tmp_path / "b" / "escape.jsonl").read_bytes()
    assert len(a.records) == 2 and all(r["status"] == "ok" for r in a.records)
    ev = a.records[0]["events"][0]
    # the control: a stall at the global minimum of a noisy regression, per-example gradients large
    assert ev["kind"] == "global_minimum" and ev["kappa"] < 1e-3 and ev["example_grad_scale"] > 1.0
    assert abs(a.records[0]["gap"]) <= 1e-6 * a.records[0]["global_min"]
    # the report is rebuilt from escape.jsonl alone, byte for byte (also from a gzip copy)
    md = (tmp_path / "a" / "escape_summary.md").read_bytes()
    table = (tmp_path / "a" / "escape_table.json").read_bytes()
    res = _cli("--report", str(tmp_path / "a"), "--quiet")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "a" / "escape_summary.md").read_bytes() == md
    assert (tmp_path / "a" / "escape_table.json").read_bytes() == table
    import gzip

    gz = tmp_path / "gz"
    gz.mkdir()
    with gzip.open(gz / "escape.jsonl.gz", "wb") as fh:
        fh.write((tmp_path / "a" / "escape.jsonl").read_bytes())
    assert load_records(gz) == load_records(tmp_path / "a")
    rows = json.loads(table)["rows"]
    gd = [r for r in rows if r["method"] == "gd" and r["kind"] == "global_minimum"][0]
    assert gd["n_escaped"] == 0  # nothing escapes a global minimum


def test_ctrl_c_stops_saves_and_resume_equals_an_uninterrupted_run(tmp_path):
    """A sweep in a subprocess gets SIGINT (to its whole process group, as a terminal's Ctrl-C) once a
    run is saved: it exits with 130, says how many runs are saved and that --resume continues, leaves no
    worker behind; --resume then completes to the same bytes as an uninterrupted sweep."""
    import os
    import signal
    import time

    from analyses.cli import main

    # 8 runs: after the first is saved, 7 remain (several seconds on 2 workers) — room for the signal to land
    args = ["--problems", "noisy_regression", "--methods", "gd,synaprune-rms", "--seeds", "4", "--steps", "100"]
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "analyses.cli", "escape", *args, "--workers", "2", "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # a terminal's default: a shell running the suite in the background (nohup, `&`)
                            # leaves SIGINT ignored, and Python keeps an inherited SIG_IGN
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        t_end = time.monotonic() + 120
        while time.monotonic() < t_end and proc.poll() is None:
            if (out / "escape.jsonl").exists() and (out / "escape.jsonl").read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        print(f"exited {time.monotonic() - t0:.2f} s after SIGINT")  # measured, reported; not asserted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "runs are saved" in err and "--resume" in err
    n_saved = len(load_records(out))
    assert 1 <= n_saved < 8 and f"{n_saved} of 8 runs are saved" in err
    assert "leaked" not in err
    for _ in range(100):  # the process group empties: no worker outlives the parent (zombies are reaped)
        alive = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True, text=True).stdout
        if not [s for s in alive.split() if not s.startswith("Z")]:
            break
        time.sleep(0.1)
    assert not [s for s in alive.split() if not s.startswith("Z")], alive
    assert main(["escape", *args, "--workers", "1", "--out", str(out), "--resume", "--quiet"]) == 0
    full = tmp_path / "full"
    assert main(["escape", *args, "--workers", "1", "--out", str(full), "--quiet"]) == 0
    assert (out / "escape.jsonl").read_bytes() == (full / "escape.jsonl").read_bytes()


def test_study_section_for_the_main_report(tmp_path, monkeypatch):
    from analyses.escape import protocol, section
    from analyses.escape.section import study_section

    monkeypatch.setattr(protocol, "QUICK_PROBLEMS", ("noisy_regression",))
    monkeypatch.setattr(protocol, "QUICK_METHODS", ("gd", "synaprune-rms"))
    monkeypatch.setattr(section, "QUICK_SEEDS", 1)
    sec = study_section(tmp_path, quick=True, seed=5)
    assert set(sec) >= {"title", "lead", "html", "summary", "figures"}
    assert sec["figures"] and all((tmp_path / f).is_file() for f in sec["figures"])
    assert "noisy_regression" in sec["lead"] and "<table" in sec["lead"]
    recs = load_records(tmp_path / "escape")
    assert [r["seed"] for r in recs] == [5, 5]  # seeds start at `seed`
    head = sec["summary"]["headline"]
    gd = [c for c in head["cells"] if c["method"] == "gd"][0]
    assert (gd["kind"], gd["cause"], gd["n_escaped"]) == ("global_minimum", "cancelling", 0)
    json.dumps(sec["summary"], allow_nan=False)
    # the gzip copy is deterministic (the file figures/ tracks)
    gz = (tmp_path / "escape" / "escape.jsonl.gz").read_bytes()
    from analyses.escape import write_gzip_copy

    assert write_gzip_copy(tmp_path / "escape" / "escape.jsonl").read_bytes() == gz


def test_resume_refuses_a_different_configuration(tmp_path):
    (tmp_path / "escape.jsonl").write_text(json.dumps({"problem": "noisy_regression", "method": "gd", "seed": 0,
                                                       "max_steps": 5, "status": "ok", "events": []}) + "\n")
    with pytest.raises(ValueError, match="run for 5 steps, this sweep asks for 6"):
        run_benchmark(["noisy_regression"], ["gd"], 1, tmp_path, workers=1, resume=True, max_steps=6, progress=False)
    assert (tmp_path / "escape.jsonl").read_text().count("\n") == 1  # nothing touched
