"""The escape benchmark: summaries on hand-made records, resume after an interruption, the CLI."""
import json
import math
from pathlib import Path

import pytest

from analyses.escape import (NO_STALL, QUICK_METHODS, QUICK_PROBLEMS, SummaryRow, load_benchmark, run_benchmark,
                             run_one, summarize)
from analyses.problems import list_problems


def _rec(problem, method, seed, events, gap=0.5, n_hvp=0, peg=10, wall=1.0):
    return {"problem": problem, "method": method, "seed": seed, "status": "ok", "gap": gap, "n_hvp": n_hvp,
            "n_per_example_grads": peg, "wall_time_s": wall, "events": events}


def _ev(kind, escaped, steps=None):
    return {"kind": kind, "escaped": escaped, "escape_steps": steps, "kappa": 0.1, "lambda_min": -0.5}


def test_summary_counts_wilson_intervals_and_medians():
    recs = []
    # gd at strict saddles: 7 of 10 escaped, escape steps 10..70 → median 40
    for i in range(10):
        recs.append(_rec("p", "gd", i, [_ev("strict_saddle", i < 7, 10 * (i + 1) if i < 7 else None)],
                         gap=float(i), n_hvp=0, peg=i))
    # ncd: 4 stalls at non-strict saddles in 2 runs, none escaped; costs 100 and 300 HVPs
    recs.append(_rec("p", "ncd", 0, [_ev("non_strict_saddle", False), _ev("non_strict_saddle", False)], gap=1.0,
                     n_hvp=100))
    recs.append(_rec("p", "ncd", 1, [_ev("non_strict_saddle", False), _ev("non_strict_saddle", False)], gap=3.0,
                     n_hvp=300))
    # a failed run and a run without stalls contribute nothing
    recs.append({"problem": "p", "method": "gd", "seed": 99, "status": "error", "error": "boom", "events": []})
    recs.append(_rec("p", "sgd", 0, []))
    rows = {(r.kind, r.method): r for r in summarize(recs)}
    assert set(rows) == {("strict_saddle", "gd"), ("non_strict_saddle", "ncd"), (NO_STALL, "sgd")}
    quiet = rows[(NO_STALL, "sgd")]
    assert (quiet.n_stalls, quiet.n_runs, quiet.escape_rate, quiet.median_gap) == (0, 1, None, 0.5)
    gd = rows[("strict_saddle", "gd")]
    assert (gd.n_stalls, gd.n_runs, gd.n_escaped) == (10, 10, 7) and gd.escape_rate == pytest.approx(0.7)
    assert gd.ci_low == pytest.approx(0.3968, abs=1e-4) and gd.ci_high == pytest.approx(0.8922, abs=1e-4)
    assert gd.median_escape_steps == 40 and gd.median_gap == 4.5 and gd.median_per_example_grads == 4.5
    ncd = rows[("non_strict_saddle", "ncd")]
    assert (ncd.n_stalls, ncd.n_runs, ncd.n_escaped, ncd.escape_rate) == (4, 2, 0, 0.0)
    assert ncd.ci_low == 0.0 and ncd.ci_high == pytest.approx(3.8415 / (4 + 3.8415), abs=1e-4)  # z²/(n+z²)
    assert ncd.median_escape_steps is None and ncd.median_hvp == 200 and ncd.median_gap == 2.0
    assert summarize([]) == []
    json.dumps([r.to_dict() for r in rows.values()])  # nan-free, serialisable


def test_presets_name_real_problems_and_every_method():
    from synaprune import METHODS

    assert set(QUICK_PROBLEMS) <= set(list_problems())
    assert "deep_linear_h2_zero" in QUICK_PROBLEMS and "noisy_regression" in QUICK_PROBLEMS
    assert set(QUICK_METHODS) == set(METHODS)


def test_a_failing_run_is_recorded_not_raised():
    rec = run_one({"problem": "no_such_problem", "method": "gd", "seed": 0, "max_steps": 5})
    assert rec["status"] == "error" and "no_such_problem" in rec["error"] and rec["events"] == []
    with pytest.raises(ValueError, match="unknown method"):
        run_benchmark(["noisy_regression"], ["nope"], 1, "/tmp/never")
    with pytest.raises(ValueError, match="unknown problem"):
        run_benchmark(["nope"], ["gd"], 1, "/tmp/never")


def _close(a, b) -> bool:
    """Equal structures, floats to 1e-8 relative (thread counts differ between in-process and worker
    runs, so reductions may differ in the last bits); every discrete field exactly."""
    if isinstance(a, float) or isinstance(b, float):
        return (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-8, abs_tol=1e-12))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _comparable(rows: list[SummaryRow]) -> list[dict]:
    return [{k: v for k, v in r.to_dict().items() if k != "median_wall_time_s"} for r in rows]


def _strip(records: list[dict]) -> list[dict]:
    drop = {"wall_time_s", "cpu_time_s", "train_wall_time_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


PROBS, METHODS, SEEDS, STEPS = ["noisy_regression"], ["gd", "synaprune-noise", "pgd"], 2, 90


def test_resume_after_interruption_gives_the_same_summary(tmp_path):
    full = run_benchmark(PROBS, METHODS, SEEDS, tmp_path / "full", workers=1, max_steps=STEPS, progress=False,
                         figures=False)
    assert len(full.records) == 6 and all(r["status"] == "ok" for r in full.records)
    kinds = {ev["kind"] for r in full.records for ev in r["events"]}
    assert "global_minimum" in kinds  # the control's stall is at the true minimum
    # simulate a kill: keep two complete lines and half of the third
    part = tmp_path / "part"
    part.mkdir()
    lines = (tmp_path / "full" / "escape.jsonl").read_text().splitlines(keepends=True)
    (part / "escape.jsonl").write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    assert len(load_benchmark(part)) == 2
    resumed = run_benchmark(PROBS, METHODS, SEEDS, part, workers=1, resume=True, max_steps=STEPS, progress=False,
                            figures=False)
    assert len(resumed.records) == 6 and len(load_benchmark(part)) == 6
    assert _close(_comparable(resumed.summary), _comparable(full.summary))
    assert _close(_strip(resumed.records), _strip(full.records))
    # resuming a finished sweep runs nothing and changes nothing
    again = run_benchmark(PROBS, METHODS, SEEDS, part, workers=1, resume=True, max_steps=STEPS, progress=False,
                          figures=False)
    assert _close(_strip(again.records), _strip(full.records))
    # two worker processes give the same records
    par = run_benchmark(PROBS, METHODS, SEEDS, tmp_path / "par", workers=2, max_steps=STEPS, progress=False,
                        figures=False)
    assert _close(_strip(par.records), _strip(full.records))
    assert _close(_comparable(par.summary), _comparable(full.summary))


def test_cli_writes_every_output(tmp_path):
    from analyses.cli import main

    out = tmp_path / "esc"
    rc = main(["escape", "--problems", "noisy_regression", "--methods", "gd,synaprune-rms", "--seeds", "1",
               "--steps", "90", "--workers", "1", "--out", str(out)])
    assert rc == 0
    for name in ("escape.jsonl", "escape_summary.json", "escape_summary.md", "escape_outcome.png",
                 "escape_outcome.html"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "escape_summary.md").read_text()
    assert "| global_minimum | gd | 1 |" in md and "escape rate" in md
    page = (out / "escape_outcome.html").read_text()
    assert "<script src=\"http" not in page and "global_minimum" in page
    summ = json.loads((out / "escape_summary.json").read_text())
    assert summ["problems"] == ["noisy_regression"] and summ["summary"]
    recs = load_benchmark(out)
    assert {r["method"] for r in recs} == {"gd", "synaprune-rms"}
    ev = recs[0]["events"][0]
    assert {"kind", "kappa", "lambda_min", "escaped", "escape_steps", "next_kind"} <= set(ev)
    assert ev["kappa"] < 1e-3 and math.isfinite(recs[0]["gap"]) and recs[0]["gap"] < 1e-6
    assert main(["escape", "--methods", "nope", "--out", str(out)]) == 2
