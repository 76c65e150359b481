"""``landscape bench --classify-cnn``: the cost of ``classify_point`` and ``nearest_critical`` on the digits CNN.

Issue 22 item 7's targets: on the bench's digits CNN (:func:`analyses.bench.monitor_overhead.digits_cnn_problem`:
3 818 parameters, taken in float64 on its 1 500 digits, full-batch cross-entropy) ``classify_point`` ≤ 10 s and
``nearest_critical`` ≤ 30 s at their defaults, through Hessian-vector products only (the CNN is above
:data:`landscape.defaults.AUTO_DENSE_MAX_DIM`: no dense Hessian). Measured at the initialisation, after
120 full-batch Adam steps (lr 1e-2; not critical) and after a longer run (``late_steps``, default 600: the
gradient has fallen by orders of magnitude, a point where a training loop would see a stall). Each row: the
verdict, wall and CPU seconds (``time.process_time``, the process's CPU: with one torch thread this is the
analysis's own time even on a loaded machine), Hessian-vector products (counted by
:func:`landscape.budget.hvp_budget`) and gradient evaluations of the search. Timings are printed, never
tracked, and are not a test.

Example:
    >>> r = {"dim": 3818, "threads": 1, "loadavg": "0.5", "targets": TARGETS, "rows": [
    ...     {"point": "init", "analysis": "classify_point", "kind": "not_critical", "grad_norm": 0.128,
    ...      "wall_s": 5.2, "cpu_s": 5.0, "n_hvp": 62, "n_grad": None, "reason": None}]}
    >>> print(format_classify_cnn(r).splitlines()[2])
      init      classify_point    not_critical       0.128     5.2     5.0    62        <= 10 s CPU: ok
"""
from __future__ import annotations

import sys
import time
from typing import Any

import torch
from torch import nn

import landscape as ls
from landscape.budget import hvp_budget

from .monitor_overhead import digits_cnn_problem
from .timing import loadavg

#: the issue's targets (seconds)
TARGETS = {"classify_point": 10.0, "nearest_critical": 30.0}


def _adam_point(make_model: Any, X: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 1e-2) -> nn.Module:
    model = make_model().double()
    if steps:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        crit = nn.CrossEntropyLoss()
        for _ in range(steps):
            opt.zero_grad()
            crit(model(X), y).backward()
            opt.step()
    return model


def _timed(fn: Any) -> tuple[Any, float, float, int]:
    with hvp_budget() as b:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, wall, cpu, b.used


def bench_classify_cnn(*, steps: int = 120, late_steps: int = 600, threads: int = 1, progress: bool = True
                       ) -> dict[str, Any]:
    """Time ``classify_point`` and ``nearest_critical`` (defaults) on the digits CNN at two or three points.

    Args:
        steps: full-batch Adam steps to the second point. late_steps: to the third (0: skip it).
        threads: torch threads during the measure (restored after; 1 makes CPU seconds the analysis's own).
        progress: a line on stderr per analysis.

    Returns:
        ``{"threads", "loadavg", "dim", "targets", "rows": [{"point", "steps", "analysis", "kind", "reason",
        "grad_norm", "wall_s", "cpu_s", "n_hvp", "n_grad"}, ...]}``.
    """
    show = (lambda msg: print(f"[bench classify-cnn] {msg} (load {loadavg()})", file=sys.stderr, flush=True)) \
        if progress else (lambda msg: None)
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        X, y, make_model = digits_cnn_problem()
        X = X.double()
        points = [("init", 0), (f"adam{steps}", steps)] + ([(f"adam{late_steps}", late_steps)] if late_steps else [])
        rows = []
        dim = 0
        for name, n in points:
            model = _adam_point(make_model, X, y, n)
            obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, y))
            theta, dim = obj.initial_point().clone(), obj.dim
            show(f"{name}: classify_point")
            rep, wall, cpu, nh = _timed(lambda: ls.classify_point(obj, theta))
            rows.append({"point": name, "steps": n, "analysis": "classify_point", "kind": rep.kind,
                         "reason": rep.reason, "grad_norm": rep.grad_norm, "wall_s": wall, "cpu_s": cpu,
                         "n_hvp": nh, "n_grad": None})
            show(f"{name}: nearest_critical")
            nc, wall, cpu, nh = _timed(lambda: ls.nearest_critical(obj, theta))
            rows.append({"point": name, "steps": n, "analysis": "nearest_critical", "kind": nc.kind,
                         "reason": nc.reason, "grad_norm": nc.grad_norm, "wall_s": wall, "cpu_s": cpu,
                         "n_hvp": nh, "n_grad": nc.search.n_grad if nc.search is not None else None})
    finally:
        torch.set_num_threads(old)
    return {"threads": int(threads), "loadavg": loadavg(), "dim": dim, "targets": dict(TARGETS), "rows": rows}


def format_classify_cnn(r: dict[str, Any]) -> str:
    """The measure as text lines.

    Args:
        r: :func:`bench_classify_cnn`'s result.

    Returns:
        The lines, joined.
    """
    lines = [f"classify_point / nearest_critical at their defaults: digits CNN ({r['dim']} parameters, float64, "
             f"1 500 digits, HVPs only), {r['threads']} torch thread(s), load {r['loadavg']}",
             f"  {'point':<9} {'analysis':<17} {'kind':<14} {'‖g‖':>9} {'wall s':>7} {'CPU s':>7} {'HVPs':>5} "
             f"{'grads':>5}  target"]
    for w in r["rows"]:
        tgt = r["targets"][w["analysis"]]
        ok = "ok" if w["cpu_s"] <= tgt else "OVER"
        lines.append(f"  {w['point']:<9} {w['analysis']:<17} {w['kind']:<14} {w['grad_norm']:>9.3g} {w['wall_s']:>7.1f} "
                     f"{w['cpu_s']:>7.1f} {w['n_hvp']:>5} {'' if w['n_grad'] is None else w['n_grad']:>5}  "
                     f"<= {tgt:g} s CPU: {ok}")
        if w["reason"]:
            lines.append(f"      reason: {w['reason'][:160]}")
    return "\n".join(lines)
