"""One run of the escape study (a sweep job): a method from an instance's start to its target.

The record (:func:`run_job`) holds the job's key, what defines the instance, the primary endpoint —
``reached_target``, ``steps_to_target``, ``cost_to_target`` (example-gradient units as the Trainer
counts them: a full-batch gradient every step for monitoring, plus the method's own evaluations),
``own_cost_to_target`` (without that monitoring gradient for methods whose step does not use it:
SGD and the always-on rules), ``horizon``, ``theory_steps`` — a loss-against-cost curve (≤ 64
points, log-spaced in steps), and the secondary, stall-conditioned endpoint from the Trainer's
first stall event (detected or not, escaped by the Trainer's criterion, by the rule or the base
method, the escape attempts and the steps spent in reverted phases). GD's runs also carry the
classifier's verdicts (at the exact stall point, and the Trainer's nearest critical point), which
verify the certificate. Built from the job alone: byte-identical whatever the workers, order or resume.
"""
from __future__ import annotations

import time
import traceback
import warnings
from typing import Any

import torch

from landscape import classify_point
from landscape.deep_linear import half_sq_error
from synaprune import StallDetector, Trainer

from ..problems.escape_instances import CELLS, PLATEAU_REL, PLATEAU_WINDOW, build_instance, relu_instance
from .design import CONTROL_TUNING, METHODS, RECORD_VERSION, TUNED_LR, horizon_for
from .records import clean, round_finite

#: points of the stored loss-against-cost curve
CURVE_POINTS = 64
#: the Trainer's stall-escape margin (secondary endpoint): this share of the gap to the next critical
#: value (the accept threshold of an escape phase is a tenth of it)
ESCAPE_SHARE = 0.1
#: the stall detector of every run: 20-step window, 1e-3 relative flatness measured from the
#: instance's global value (the loss's floor), scale-free gradient threshold
DETECTOR = {"window": PLATEAU_WINDOW, "rel_tol": PLATEAU_REL}
#: instance fields repeated in every record (the full description is in GD's record)
SHORT_INFO = ("seed", "dims", "lr", "stall_value", "next_value", "global_value", "target", "start_loss",
              "start_step", "eps", "w0", "mu", "order", "mode", "theory_steps", "distance_to_stall")


def _curve_steps(n: int) -> list[int]:
    """≤ CURVE_POINTS distinct steps in 0..n, log-spaced, with 0 and n."""
    if n <= CURVE_POINTS:
        return list(range(n + 1))
    out = {0, n}
    k = CURVE_POINTS - 2
    for i in range(k):
        out.add(int(round((n + 1) ** ((i + 1) / (k + 1)))) - 1)
    return sorted(x for x in out if 0 <= x <= n)


def _setup(job: dict[str, Any]) -> dict[str, Any]:
    """The instance, its start and the trainer settings of a job."""
    cell = CELLS[job["cell"]]
    spec = METHODS[job["method"]]
    ov = {k: v for k, v in (job.get("overrides") or {}).items() if not k.startswith("_")}
    if cell.family == "relu":
        r = relu_instance(cell.name, job["instance"])
        prob, info = r["problem"], dict(r["info"])
        model, loss_fn, data, reduction = prob.make_model(info["seed"]), prob.loss_fn, prob.data, prob.reduction
        start, obj_fn, stall_point = r["theta_start"], (lambda: prob.objective(0)), None
    else:
        inst = build_instance(cell.name, job["instance"], **ov)
        info = inst.describe()
        model, loss_fn, data, reduction = inst.make_model(), None, (inst.X, inst.Y), "mean"
        start, obj_fn, stall_point = inst.theta_start, inst.objective, inst.theta_stall
        info["horizon"] = horizon_for(info.get("theory_steps"), info.get("order"), info.get("horizon", 600))
    lr = info["lr"]
    if spec.lr == "tuned":
        lr = job["overrides"].get("_lr") or TUNED_LR[CONTROL_TUNING.get(cell.name, cell.name)][spec.label]
    n = int(data[0].shape[0])
    gap = (info["stall_value"] - info["next_value"]) if info.get("next_value") is not None else None
    return {"cell": cell, "spec": spec, "info": info, "model": model, "loss_fn": loss_fn, "data": data,
            "reduction": reduction, "start": start, "objective": obj_fn, "stall_point": stall_point, "lr": lr,
            "n": n, "gap": gap}


def _trainer(s: dict[str, Any], job: dict[str, Any]) -> Trainer:
    spec, info = s["spec"], s["info"]
    margin = ESCAPE_SHARE * (s["gap"] if s["gap"] is not None else max(abs(info["stall_value"]), 1e-12))
    opts: dict[str, Any] = dict(spec.options)
    if spec.batch_fraction is not None:
        opts["batch_size"] = max(1, int(round(spec.batch_fraction * s["n"])))
    stall = StallDetector(**DETECTOR, loss_floor=float(info["global_value"]))
    is_gd = spec.label == "gd"
    return Trainer(s["model"], s["loss_fn"] or half_sq_error, s["data"], method=spec.method, lr=s["lr"],
                   seed=int(info["seed"]), stall=stall, classify=is_gd and job["part"] == "main",
                   global_min=float(info["global_value"]), reduction=s["reduction"], dtype=torch.float64,
                   escape_abs=float(margin), escape_rel=0.0, escape_horizon=int(info["horizon"]),
                   classify_final=False, num_threads=1, progress=False, grad_scale_reference="model", **opts)


def _first_event(res: Any, n: int) -> dict[str, Any] | None:
    """The secondary endpoint: the run's first stall event, compact."""
    if not res.events:
        return None
    ev = res.events[0]
    atts = list(ev.attempts or [])
    reverted = [a for a in atts if not a.accepted]
    nc = ev.nearest_critical.to_dict() if hasattr(ev.nearest_critical, "to_dict") else ev.nearest_critical
    return {"step": ev.step, "loss": ev.loss, "kind_at_stall": ev.kind, "cause": ev.cause, "kappa": ev.kappa,
            "example_grad_scale_ratio": ev.example_grad_scale_ratio, "escaped": ev.escaped, "censored": ev.censored,
            "escape_steps": ev.escape_steps, "escaped_by": ev.escaped_by, "resolution": ev.resolution,
            "observed_steps": ev.observed_steps, "n_attempts": len(atts), "n_accepted": len(atts) - len(reverted),
            "reverted_steps": int(sum(a.steps or 0 for a in reverted)),
            "first_step_norm": atts[0].first_step_norm if atts else None,
            "nearest_critical": None if not isinstance(nc, dict) else
            {k: nc.get(k) for k in ("kind", "loss", "distance", "converged", "index")}}


def _kappa_at(s: dict[str, Any]) -> tuple[float | None, float]:
    """κ = ‖mean g_i‖ / mean‖g_i‖ and mean‖g_i‖ at the start (None when every g_i is 0)."""
    G = s["objective"]().per_example_grads(s["start"])
    mean_norm = float(torch.linalg.vector_norm(G, dim=1).mean())
    return (float(torch.linalg.vector_norm(G.mean(0))) / mean_norm if mean_norm > 0 else None), mean_norm


def _classify_stall(s: dict[str, Any]) -> dict[str, Any] | None:
    """The classifier at the exact stall point (GD's runs of the main part)."""
    if s["stall_point"] is None:
        return None
    obj = s["objective"]()
    rep = classify_point(obj, s["stall_point"], global_min=float(s["info"]["global_value"]), seed=0)
    return {"kind": rep.kind, "index": rep.index, "lambda_min": rep.lambda_min}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job of the study (never raises: a failing run is recorded with ``status="error"``).

    Args:
        job: ``{part, cell, instance, setting, method, overrides}`` (:func:`analyses.escape.design.plan`).

    Returns:
        The record (module docstring); wall and CPU times under ``"timing"`` (the sweep moves them
        to its side file).
    """
    rec: dict[str, Any] = {k: job[k] for k in ("part", "cell", "instance", "setting", "method")}
    rec.update(version=RECORD_VERSION, overrides=clean(job.get("overrides") or {}), status="ok", error=None)
    t0, c0 = time.perf_counter(), time.process_time()
    timing: dict[str, Any] = {}
    try:
        s = _setup(job)
        info, spec = s["info"], s["spec"]
        curve: list[tuple[int, float, float]] = []
        tr = _trainer(s, job)
        with warnings.catch_warnings():
            # a run that diverges is data (status "nonfinite"), not a warning on the sweep's terminal
            warnings.simplefilter("ignore", RuntimeWarning)
            res = tr.fit(int(info["horizon"]), theta0=s["start"].clone(),
                         callback=lambda t, st: curve.append((t, st["cost_example_grads"], st["loss"])),
                         stop_below=info.get("target"))
        n, steps, cost = s["n"], res.n_steps, float(res.cost_example_grads)
        reached = res.status == "target_reached"
        own = cost if spec.full_batch_step else cost - n * (steps + 1)
        kappa0, scale0 = _kappa_at(s)
        curve.append((steps, cost, float(res.losses[-1])))
        keep = set(_curve_steps(steps))
        rec.update(
            kind=s["cell"].kind, cause=s["cell"].cause, group=spec.group, base_method=spec.method,
            options=clean(spec.options), lr=round_finite(s["lr"]), n_examples=n,
            instance_info=clean(info if spec.label == "gd" else {k: info.get(k) for k in SHORT_INFO}),
            horizon=int(info["horizon"]), theory_steps=round_finite(info.get("theory_steps")),
            target=round_finite(info.get("target")), train_status=res.status, reached_target=reached,
            steps_to_target=steps if reached else None, cost_to_target=round_finite(cost) if reached else None,
            own_cost_to_target=round_finite(own) if reached else None, steps_run=steps, cost_run=round_finite(cost),
            own_cost_run=round_finite(own), final_loss=round_finite(res.final_loss),
            min_loss=round_finite(float(min(res.losses))),
            curve=[[t, round_finite(c, 6), round_finite(loss, 8)] for t, c, loss in curve if t in keep],
            first_stall=clean(_first_event(res, n)), n_stalls=len(res.events), kappa_start=round_finite(kappa0),
            example_grad_start=round_finite(scale0))
        if res.status == "nonfinite":
            rec["status"] = "nonfinite"
        if spec.label == "gd" and job["part"] == "main":
            t1 = time.process_time()
            rec["classifier_at_stall_point"] = clean(_classify_stall(s))
            timing["classify_cpu_s"] = time.process_time() - t1
        timing["train_wall_time_s"] = res.wall_time_s
    except Exception as exc:  # a failing run is data, not a crash of the sweep
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        timing["traceback"] = traceback.format_exc(limit=6)
    rec["timing"] = {**timing, "wall_time_s": time.perf_counter() - t0, "cpu_time_s": time.process_time() - c0}
    return rec
