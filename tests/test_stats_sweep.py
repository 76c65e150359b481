import json
import math

import pytest

from analyses.stats import median, wilson_interval
from analyses.sweep import read_records, run_sweep


def test_wilson_known_values():
    # Classic values (Wilson 1927; Newcombe 1998, Table I): 0/10 -> (0, 0.2775), 5/10 -> (0.2366, 0.7634),
    # 10/10 -> (0.7225, 1); 81/263 -> (0.2553, 0.3662).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=5e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-5)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    lo, hi = wilson_interval(0, 0)
    assert math.isnan(lo) and math.isnan(hi)


def test_wilson_bad_input():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.5)


def test_median():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2.5
    assert median([float("nan"), 1.0]) == 1.0
    assert math.isnan(median([]))


def square_job(job):
    return {"a": job["a"], "b": job["b"], "value": job["a"] ** 2 + job["b"]}


def test_sweep_streams_and_resumes(tmp_path):
    jobs = [{"a": a, "b": b} for a in range(4) for b in range(3)]
    out = tmp_path / "sweep.jsonl"
    full = run_sweep(jobs, square_job, out, key_fields=("a", "b"), workers=1)
    assert sorted((r["a"], r["b"], r["value"]) for r in full) == sorted((a, b, a * a + b) for a in range(4) for b in range(3))

    # Simulate an interruption: keep 5 records and a torn sixth line.
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:5]) + "\n" + lines[5][:7])
    calls = []

    def counting(job):
        calls.append(job)
        return square_job(job)

    resumed = run_sweep(jobs, counting, out, key_fields=("a", "b"), workers=1, resume=True)
    assert len(calls) == len(jobs) - 5
    assert sorted(json.dumps(r, sort_keys=True) for r in resumed) == sorted(json.dumps(r, sort_keys=True) for r in full)
    assert len(read_records(out)) == len(jobs)


def test_sweep_in_worker_processes(tmp_path):
    jobs = [{"a": a, "b": 0} for a in range(3)]
    recs = run_sweep(jobs, square_job, tmp_path / "s.jsonl", key_fields=("a", "b"), workers=2)
    assert sorted(r["value"] for r in recs) == [0, 1, 4]


def torch_job(job):
    """A job whose value goes through a multi-threadable torch reduction (bit-stable only when pinned)."""
    import torch

    g = torch.Generator().manual_seed(job["a"])
    x = torch.randn(20000, dtype=torch.float64, generator=g)
    return {"a": job["a"], "b": job["b"], "value": float((x * x.flip(0)).sum()), "threads": torch.get_num_threads(),
            "timing": {"wall_time_s": 0.1 * job["a"]}}


def test_sweep_file_identical_whatever_workers_job_order_or_resume(tmp_path):
    from analyses.sweep import SweepInterrupted, timings_path

    jobs = [{"a": a, "b": b} for a in range(4) for b in range(2)]
    one = tmp_path / "one.jsonl"
    recs = run_sweep(jobs, torch_job, one, key_fields=("a", "b"), workers=1, progress=False)
    assert [(r["a"], r["b"]) for r in recs] == [(j["a"], j["b"]) for j in jobs]  # job order
    assert all(r["threads"] == 1 and "timing" not in r for r in recs)  # pinned; timings split off
    times = read_records(timings_path(one))
    assert sorted((t["a"], t["wall_time_s"]) for t in times) == sorted((j["a"], 0.1 * j["a"]) for j in jobs)
    two = tmp_path / "two.jsonl"
    run_sweep(jobs, torch_job, two, key_fields=("a", "b"), workers=2, progress=False)
    assert two.read_bytes() == one.read_bytes()
    # a shuffled job list runs in another order; the file is put in the order of the job list given
    shuffled = tmp_path / "shuffled.jsonl"
    run_sweep(jobs[::-1], torch_job, shuffled, key_fields=("a", "b"), workers=1, progress=False)
    assert sorted(shuffled.read_text().splitlines()) == sorted(one.read_text().splitlines())
    run_sweep(jobs, torch_job, shuffled, key_fields=("a", "b"), workers=1, resume=True, progress=False)
    assert shuffled.read_bytes() == one.read_bytes()
    # Ctrl-C after three runs: SweepInterrupted says what is saved; resume completes to the same bytes
    part = tmp_path / "part.jsonl"
    calls = []

    def interrupting(job):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(job)
        return torch_job(job)

    with pytest.raises(SweepInterrupted) as info:
        run_sweep(jobs, interrupting, part, key_fields=("a", "b"), workers=1, progress=False)
    assert (info.value.n_saved, info.value.n_total) == (3, 8) and len(read_records(part)) == 3
    said = []
    run_sweep(jobs, torch_job, part, key_fields=("a", "b"), workers=1, resume=True, progress=False, log=said.append)
    assert part.read_bytes() == one.read_bytes()
    assert said and "3 of 8" in said[0] and "skipped" in said[0]
    with pytest.raises(ValueError, match="share one key"):
        run_sweep(jobs + jobs[:1], torch_job, tmp_path / "dup.jsonl", key_fields=("a", "b"), workers=1)
