"""``landscape bench --monitor``: what :class:`landscape.StallMonitor` costs a researcher's own loop.

The loop (issue 22): a 2 000-step mini-batch Adam run (lr 1e-3, batch 64) of a small digits CNN,
Conv2d(1, 8, 3) → ReLU → Conv2d(8, 16, 3) → ReLU → flatten → Linear(256, 10) (3 818 parameters),
float32, on the first 1 500 of scikit-learn's bundled 8×8 digits (no download). The same seeded
loop runs without and with ``mon.step(loss, batch=...)`` at the monitor's defaults, alternately,
and the table reports

- the loop's wall time without the monitor (median of the plain runs);
- the monitor's detection + scheduled sharpness seconds, as it accounts them (``mon.timings``),
  and the overhead ratio against the loop's own time (target ≤ 10 %);
- the same overhead measured from outside: (monitored wall time − stall analysis − set-up) /
  plain wall time − 1, which also counts the per-step bookkeeping;
- the stalls found, with the seconds each analysis took (not part of the overhead: an analysis
  runs once per stall and is reported per stall);
- for scale, a naive schedule: λ_max every 100 steps (``sharpness_every=100``).

Timings are wall-clock on a possibly shared machine: the plain and monitored runs alternate so
that load affects both alike; the load average and each run's CPU seconds are printed. On a loaded
machine run it on one thread (``landscape bench --monitor --threads 1``, or ``threads=1``): on this
3 818-parameter model one thread is the fastest, and two threads on a loaded 2-core machine spin
against each other (a 2 000-step loop measured at 73–125 s instead of ~3 s), which measures the
machine, not the monitor.
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from landscape.monitor import AnalysisSettings, StallMonitor

from .timing import loadavg


def digits_cnn_problem(n: int = 1500, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The bench's data and model factory.

    Args:
        n: digits to use (the first n of scikit-learn's 1 797).
        seed: the model's initialisation seed.

    Returns:
        ``(X (n, 1, 8, 8) float32 in [0, 1], y (n,) int64, make_model)``; ``make_model()`` returns
        the seeded CNN (3 818 parameters).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(np.asarray(d.data[:n], dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = torch.tensor(np.asarray(d.target[:n], dtype=np.int64))

    def make_model() -> nn.Module:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(16 * 4 * 4, 10))
        torch.random.set_rng_state(gen_state)
        return model

    return X, y, make_model


def _run(X: torch.Tensor, y: torch.Tensor, make_model: Any, steps: int, *, monitor: dict[str, Any] | None,
         batch: int = 64, lr: float = 1e-3, seed: int = 1) -> dict[str, Any]:
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    crit = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    mon = StallMonitor(model, crit, (X, y), optimizer=opt, progress=False, **monitor) if monitor is not None else None
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=gen)
        xb, yb = X[idx], y[idx]
        opt.zero_grad()
        loss = crit(model(xb), yb)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(loss, batch=(xb, yb))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "final_loss": float(loss.detach())}
    if mon is not None:
        tm = mon.timings
        out.update(timings=tm, mode=mon.mode,
                   stalls=[{k: r.get(k) for k in ("step", "loss", "kind", "cause", "analysis_s")} |
                           {"nearest": (r.get("nearest_critical") or {}).get("kind")} for r in mon.stalls],
                   sharpness=[{k: r[k] for k in ("step", "kind", "lambda_max", "residual_max", "n_hvp", "start",
                                                 "threshold", "vs_threshold", "batch_sharpness", "seconds")}
                              for r in mon.sharpness], sharpness_note=mon.sharpness_note)
    return out


def bench_monitor(steps: int = 2000, *, pairs: int = 2, naive: bool = True, progress: bool = True,
                  analysis: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Measure the monitor's overhead on the digits CNN (see the module docstring).

    Args:
        steps: loop steps per run.
        pairs: plain/monitored run pairs (alternating).
        naive: also one run with λ_max every 100 steps.
        progress: progress lines on stderr.
        analysis: run the full at-stall analysis (classification and nearest critical point); by
            default only the cause and the spectrum, since on this CNN the classification alone
            takes about a minute and the nearest critical point several (issue 22; their budgets
            are a separate change) — the overhead ratio does not include analysis either way.
        threads: torch threads for the measure (restored afterwards); None: leave the setting alone.

    Returns:
        ``{"steps", "plain_wall_s" (median), "plain_cpu_s", "monitored_cpu_s", "monitored": [...], "overhead_accounted",
        "overhead_external", "naive": {...} or None, "loadavg"}``.
    """
    show = (lambda msg: print(f"[bench monitor] {msg} (load {loadavg()})", file=sys.stderr, flush=True)) \
        if progress else (lambda msg: None)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _bench(steps, pairs, naive, analysis, show)
    finally:
        torch.set_num_threads(before)


def _bench(steps: int, pairs: int, naive: bool, analysis: bool, show: Any) -> dict[str, Any]:
    X, y, make_model = digits_cnn_problem()
    light = {} if analysis else {"settings": AnalysisSettings(classify=False)}
    plain, monitored = [], []
    for i in range(pairs):
        show(f"pair {i + 1}/{pairs}: plain loop, {steps} steps")
        plain.append(_run(X, y, make_model, steps, monitor=None))
        show(f"pair {i + 1}/{pairs}: with the monitor at its defaults")
        monitored.append(_run(X, y, make_model, steps, monitor=light))
    naive_run = None
    if naive:
        show("naive schedule: λ_max every 100 steps")
        naive_run = _run(X, y, make_model, steps, monitor={"sharpness_every": 100, "budget": 0.0, **light})
    t_plain = statistics.median(r["wall_s"] for r in plain)
    acc = [(r["timings"]["detection_s"] + r["timings"]["sharpness_s"]) / r["timings"]["loop_s"] for r in monitored]
    ext = [(r["wall_s"] - r["timings"]["analysis_s"] - r["timings"]["setup_s"]) / t_plain - 1 for r in monitored]
    out = {"steps": steps, "plain_wall_s": t_plain, "plain_runs_s": [r["wall_s"] for r in plain],
           "plain_cpu_s": [r["cpu_s"] for r in plain], "monitored_cpu_s": [r["cpu_s"] for r in monitored],
           "monitored": monitored, "overhead_accounted": statistics.median(acc),
           "overhead_external": statistics.median(ext), "target": 0.10, "loadavg": loadavg(),
           "threads": torch.get_num_threads()}
    if naive_run is not None:
        tn = naive_run["timings"]
        out["naive"] = {"wall_s": naive_run["wall_s"], "sharpness_s": tn["sharpness_s"], "n": tn["n_sharpness"],
                        "ratio_to_loop": (naive_run["wall_s"] - tn["analysis_s"] - tn["setup_s"]) / t_plain,
                        "rows": naive_run["sharpness"]}
    return out


def format_monitor(r: dict[str, Any]) -> str:
    """The monitor measure as text lines.

    Args:
        r: :func:`bench_monitor`'s result.

    Returns:
        The lines, joined.
    """
    m = r["monitored"][-1]
    tm = m["timings"]
    lines = [
        f"StallMonitor overhead: digits CNN (3 818 parameters, 1 500 digits, float32), Adam lr 1e-3, batch 64, "
        f"{r['steps']} steps, {r['threads']} threads, load {r['loadavg']}",
        f"  loop without the monitor        {r['plain_wall_s']:.2f} s   (runs {', '.join(f'{t:.2f}' for t in r['plain_runs_s'])}; "
        f"CPU {', '.join(f'{t:.2f}' for t in r['plain_cpu_s'])} s; monitored runs' CPU "
        f"{', '.join(f'{t:.2f}' for t in r['monitored_cpu_s'])} s)",
        f"  monitor: detection {tm['detection_s']:.3f} s ({tm['n_checks']} checks), scheduled sharpness "
        f"{tm['sharpness_s']:.3f} s ({tm['n_sharpness_full']} full-batch λ_max, {tm['n_sharpness_batch']} batch "
        f"sharpness rows), loop's own time {tm['loop_s']:.2f} s",
        f"  overhead (monitor's accounting) {100 * r['overhead_accounted']:.1f} %   (target <= {100 * r['target']:.0f} %)",
        f"  overhead (wall, from outside)   {100 * r['overhead_external']:.1f} %   (monitored run less analysis and set-up)",
        f"  stalls: {len(m['stalls'])}" + "".join(
            f"\n    step {s['step']}: {s['kind']}, nearest {s['nearest']}, cause {s['cause']}, analysis {s['analysis_s']:.1f} s"
            for s in m["stalls"]),
    ]
    full = [s for s in m["sharpness"] if s["kind"] == "full"]
    batch = [s for s in m["sharpness"] if s["kind"] == "batch"]
    thr = next((s["threshold"] for s in m["sharpness"] if s["threshold"] is not None), None)
    lines.append(f"  sharpness against the threshold {thr if thr is None else f'{thr:.4g}'}: full-batch λ_max "
                 + (", ".join(f"{s['lambda_max']:.4g}±{s['residual_max']:.2g} at {s['step']} ({s['n_hvp']} HVPs, "
                              f"{s['start']}, {s['vs_threshold']})" for s in full) or "none")
                 + "; batch sharpness " + (", ".join(f"{s['batch_sharpness']:.4g}" for s in batch) or "none"))
    if m.get("sharpness_note"):
        lines.append(f"  note: {m['sharpness_note']}")
    if r.get("naive"):
        n = r["naive"]
        lines.append(f"  naive λ_max every 100 steps: {n['n']} solves, {n['sharpness_s']:.2f} s, "
                     f"run {n['ratio_to_loop']:.2f}x the plain loop")
        lam = [s["lambda_max"] for s in n.get("rows", []) if s["lambda_max"] is not None]
        if lam:
            sides = sorted({str(s["vs_threshold"]) for s in n["rows"]})
            lines.append(f"    λ_max from {min(lam):.4g} to {max(lam):.4g} (first {lam[0]:.4g}, last {lam[-1]:.4g}); "
                         f"HVPs per solve {', '.join(str(s['n_hvp']) for s in n['rows'])}; vs threshold: {', '.join(sides)}")
    return "\n".join(lines)
