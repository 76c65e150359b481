"""One run of the stall-conditioned protocol on a zoo problem (:func:`run_one`): the job the digits
comparison (:mod:`analyses.digits_comparison`) sweeps. The escape study's own runs are
:func:`analyses.escape.job.run_job`."""
from __future__ import annotations

import time
import traceback
from typing import Any

import torch

from ..problems import get_problem
from .protocol import KEY_FIELDS, VARIANTS
from .records import clean, event_record, round_finite


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One run of the study. Never raises on a failing run: ``status="error"`` and the message are
    recorded (a failing run is data, not a crash of the sweep).

    Args:
        job: ``{"problem", "method" (a VARIANTS label), "seed", "max_steps"}``, optionally
            ``"options"`` (Trainer / method options on top of the variant's, recorded as
            ``options``) and ``"problem_options"`` (to the problem's factory, recorded when given).

    Returns:
        The run's record (:mod:`analyses.escape.records`): deterministic fields only; wall and CPU
        time under ``"timing"``, which the sweep moves to its side file.
    """
    rec: dict[str, Any] = {k: job[k] for k in KEY_FIELDS}
    rec.update(max_steps=job["max_steps"], status="ok", error=None, events=[])
    if job.get("problem_options"):
        rec["problem_options"] = clean(job["problem_options"])
    t0, c0 = time.perf_counter(), time.process_time()
    timing: dict[str, Any] = {}
    try:
        if job["method"] not in VARIANTS:
            raise ValueError(f"unknown method variant {job['method']!r}")
        method, vopts = VARIANTS[job["method"]]
        # built afresh: no state shared between jobs
        p = get_problem(job["problem"], **(job.get("problem_options") or {}))
        eps = p.hints.get("eps", 1e-2)
        opts = {**vopts, **(job.get("options") or {})}
        study = p.hints.get("study") or {}
        certified = None
        if study.get("critical_value") is not None:
            obj0 = p.objective(job["seed"])
            certified = {"kind": study["kind"], "critical_value": study["critical_value"],
                         "scale": abs(obj0.loss(obj0.initial_point()))}
        torch.manual_seed(job["seed"])
        tr = p.trainer(method, job["seed"], meta={"eps": eps}, **opts)
        res = tr.fit(job["max_steps"], theta0=p.init(job["seed"], eps))
        d = res.to_dict()
        rec.update(
            base_method=method, options=clean(opts), lr=round_finite(tr.lr), eps=round_finite(eps), global_min=round_finite(p.global_min),
            train_status=res.status, message=res.message or None, n_steps=res.n_steps,
            initial_loss=round_finite(res.losses[0]) if len(res.losses) else None, final_loss=round_finite(res.final_loss),
            gap=None if p.global_min is None else round_finite(res.final_loss - p.global_min), final_kind=res.final_kind,
            cost_example_grads=round_finite(d.get("cost_example_grads")), hvp_over_grad=round_finite(d.get("hvp_over_grad")),
            n_hvp=res.n_hvp, n_classify_hvp=res.n_classify_hvp, n_per_example_grads=res.n_per_example_grads,
            n_grad_evals=res.n_grad_evals, n_minibatch_grads=res.n_minibatch_grads, n_loss_evals=res.n_loss_evals,
            method_options=clean(d.get("method_options")),
            events=[event_record(e, res.n_steps, certified) for e in res.events])
        timing = {"train_wall_time_s": res.wall_time_s, "classify_time_s": d.get("classify_time_s")}
        if res.status == "nonfinite":
            rec["status"] = "nonfinite"
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        timing["traceback"] = traceback.format_exc(limit=6)
    rec["timing"] = {**timing, "wall_time_s": time.perf_counter() - t0, "cpu_time_s": time.process_time() - c0}
    return rec
