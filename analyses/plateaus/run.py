"""One job of the plateau study (a sweep job: the record depends on the job alone) and the sweep.

Every job is a plain training loop (:func:`.core.train`): the case's model, batches and optimiser
(or a method's, :func:`.methods.make_method`), one step per batch, the exact loss every
``eval_every`` steps. A ``monitor`` job adds ``mon.step(loss)`` of :class:`landscape.StallMonitor`
after each step (fixed check schedule, no scheduled sharpness: the records are the same on a
rerun); a ``paired`` job stops at the target; a run whose loss stops being finite is stopped and
recorded as diverged (not reached; its time counts as the horizon).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

import landscape as ls
from landscape.monitor import AnalysisSettings, StallDetector
from landscape.results import round_sig

from ..sweep import continue_shipped, run_sweep
from . import mnist1d_case
from .core import Instance, train
from .methods import make_method
from .protocol import KEY_FIELDS, Case, cases, n_instances
from .replicas import train_replicas

#: significant digits of the floats in a record
DIGITS = 10
#: what a monitor record keeps of each stall (the rest of the monitor's record is left out)
STALL_FIELDS = ("index", "step", "loss", "grad_norm", "kind", "grad_tol", "eig_tol", "kappa", "example_grad_scale",
                "grad_scale_ratio", "cause", "cause_thresholds", "lambda_min", "lambda_max", "mode", "point", "error",
                "classified_on")
NEAREST_FIELDS = ("kind", "index", "loss", "distance", "n_zero", "lambda_min", "lambda_max", "converged", "reason",
                  "degenerate")


def _r(x: Any) -> Any:
    """Round floats (recursively) to :data:`DIGITS` significant digits; non-finite floats become None."""
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return round_sig(x, DIGITS) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _r(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_r(v) for v in x]
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return _r(float(x))
    return str(x)


def _recording(inst: Instance, holder: dict) -> None:
    """Make ``inst.batch`` also leave its batch in ``holder["batch"]`` (for the rules' optimiser)."""
    batch = inst.batch

    def rec(t: int):
        holder["batch"] = batch(t)
        return holder["batch"]

    inst.batch = rec


def _stall_row(rec: dict[str, Any]) -> dict[str, Any]:
    row = {k: rec.get(k) for k in STALL_FIELDS}
    nc = rec.get("nearest_critical") or {}
    row["nearest"] = {k: nc.get(k) for k in NEAREST_FIELDS} if nc else None
    tol = nc.get("tolerances") or {}
    row["nearest_tolerances"] = {k: tol.get(k) for k in ("grad_tol", "eig_tol", "curvature_band", "n_in_band",
                                                         "n_in_band_confirmed")} if tol else None
    return row


def run_paired(case: Case, job: dict[str, Any]) -> dict[str, Any]:
    """A ``paired`` job: one method from the seed's start to the target or the horizon.

    Args:
        case: the case. job: ``{"case", "kind", "method", "seed", "quick"}``.

    Returns:
        The record: ``reached``, ``steps`` (first evaluated step at or below the target; the
        horizon when not reached), ``final_loss``, ``min_loss``, ``diverged``, ``steps_run``,
        ``first_step_length`` (‖Δθ‖ of the first step) and ``timing`` (CPU and wall seconds).
    """
    inst = case.build(int(job["seed"]))
    holder: dict[str, Any] = {}
    _recording(inst, holder)
    opt = make_method(job["method"], inst.model, inst.loss_fn, holder, {**inst.optimiser, "adam_lr": case.adam_lr})
    theta0 = inst.flat().clone()
    first: dict[str, float] = {}
    state = {"diverged": False}

    def cb(si) -> bool:
        if si.step == 1:
            first["len"] = float((inst.flat() - theta0).norm())
        if not math.isfinite(si.loss) or (si.eval_loss is not None and not math.isfinite(si.eval_loss)):
            state["diverged"] = True
            return True
        return False

    tr = train(inst, case.horizon, optimizer=opt, callback=cb, eval_every=case.eval_every, stop_below=case.target)
    hit = tr.first_below(case.target)
    finite = [v for v in tr.eval_loss if math.isfinite(v)]
    return _r({**job, "reached": hit is not None, "steps": hit if hit is not None else case.horizon,
               "horizon": case.horizon, "target": case.target, "final_loss": tr.eval_loss[-1],
               "min_loss": min(finite) if finite else None, "diverged": state["diverged"], "steps_run": tr.steps,
               "first_step_length": first.get("len"),
               "timing": {"cpu_s": tr.cpu_seconds, "wall_s": tr.seconds}})


def run_paired_block(case: Case, job: dict[str, Any]) -> dict[str, Any]:
    """A ``paired_block`` job (the committee machine): one method on every seed at once
    (:func:`.replicas.train_replicas`), each seed's record as :func:`run_paired` would give it.

    Args:
        case: a case with ``replicas``. job: ``{"case", "kind", "method", "seed" (the first), "quick"}``.

    Returns:
        ``{**job, "seeds", "runs": [per-seed records], "steps_run", "timing"}`` (the block's CPU
        and wall seconds: the seeds share them; :func:`expand_blocks` turns it into ``paired`` rows).
    """
    n = n_instances(bool(job["quick"]))
    seeds = list(range(int(job["seed"]), int(job["seed"]) + n))
    rp = case.replicas
    r = train_replicas(seeds, K=rp["K"], N=rp["N"], method=job["method"],
                       settings={"lr": rp["eta"], "adam_lr": case.adam_lr}, horizon=case.horizon,
                       target=case.target, eval_every=case.eval_every)
    runs = [{**run, "horizon": case.horizon, "target": case.target} for run in r["runs"]]
    return _r({**job, "seeds": seeds, "runs": runs, "steps_run": r["steps_run"],
               "timing": {"cpu_s": r["cpu_s"], "wall_s": r["wall_s"]}})


def expand_blocks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with every ``paired_block`` record replaced by one ``paired`` record per seed.

    Args:
        records: the sweep's records.

    Returns:
        The same records, blocks expanded in place (their seeds in order).

    Example:
        >>> expand_blocks([{"case": "c", "kind": "paired_block", "method": "gd", "seed": 0, "quick": True,
        ...                 "runs": [{"seed": 0, "steps": 5}, {"seed": 1, "steps": 7}]}])[1]
        {'case': 'c', 'kind': 'paired', 'method': 'gd', 'seed': 1, 'quick': True, 'steps': 7, 'block': True}
    """
    out = []
    for r in records:
        if r.get("kind") != "paired_block":
            out.append(r)
            continue
        for run in r["runs"]:
            out.append({"case": r["case"], "kind": "paired", "method": r["method"], "seed": run["seed"],
                        "quick": r["quick"], **{k: v for k, v in run.items() if k != "seed"}, "block": True})
    return out


def run_monitor(case: Case, job: dict[str, Any]) -> dict[str, Any]:
    """A ``monitor`` job: the case's base method with :class:`landscape.StallMonitor` in the loop.

    Args:
        case: the case. job: as for :func:`run_paired`.

    Returns:
        The record: the monitor's mode, every stall (:data:`STALL_FIELDS`, the nearest critical
        point's :data:`NEAREST_FIELDS` and tolerances), the exact loss trace every ``eval_every``
        steps (``trace``: [step, loss] pairs, at most ~400), and ``timing`` (loop, monitor
        detection and analysis seconds).
    """
    inst = case.build(int(job["seed"]))
    data = inst.batch(0) if case.monitor_data is None else case.monitor_data(inst)
    opt = make_method("gd", inst.model, inst.loss_fn, {}, inst.optimiser)
    settings = AnalysisSettings(**case.analysis)
    exact = inst.objective(inst.model) if case.exact_critical else None
    mon = ls.StallMonitor(inst.model, inst.loss_fn, data, optimizer=opt, seed=int(job["seed"]), per_layer=False,
                          detector=StallDetector(**case.detector), sharpness_every=0, check_every=case.check_every,
                          settings=settings, progress=False, critical_objective=exact)
    t0 = time.process_time()
    tr = train(inst, case.horizon, optimizer=opt, callback=lambda si: bool(mon.step(si.loss, grad_norm=si.grad_norm))
               and False, eval_every=case.eval_every)
    cpu = time.process_time() - t0
    stride = max(1, len(tr.eval_steps) // 400)
    trace = [[s, v] for s, v in list(zip(tr.eval_steps, tr.eval_loss))[::stride]]
    tm = mon.timings
    return _r({**job, "mode": mon.mode, "mode_reason": mon.mode_reason, "stalls": [_stall_row(s) for s in mon.stalls],
               "trace": trace, "final_loss": tr.eval_loss[-1], "steps_run": tr.steps,
               "timing": {"cpu_s": cpu, "loop_s": tm.get("loop_s"), "analysis_s": tm.get("analysis_s"),
                          "detection_s": tm.get("detection_s")}})


def run_accuracy(case: Case, job: dict[str, Any]) -> dict[str, Any]:
    """An ``accuracy`` job: MNIST-1D's published recipe (:data:`.mnist1d_case.DEFAULTS`) at the
    default initialisation; test accuracy against the published one.

    Args:
        case: the MNIST-1D case (its architecture is read from the name). job: as above.

    Returns:
        The record: ``test_acc``, ``published``, ``final_loss`` and ``timing``.
    """
    arch = case.name.split("_")[-1]
    inst = mnist1d_case.build(int(job["seed"]), arch=arch)
    tr = train(inst, eval_every=1000)
    xt, yt = inst.info["test"]
    return _r({**job, "test_acc": mnist1d_case.accuracy(inst.model, xt, yt), "published": mnist1d_case.PUBLISHED[arch],
               "final_loss": tr.eval_loss[-1], "steps_run": tr.steps, "timing": {"cpu_s": tr.cpu_seconds}})


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job of :func:`.protocol.plan` (a top-level function: the sweep pickles it).

    Args:
        job: ``{"case", "kind", "method", "seed", "quick"}``.

    Returns:
        Its record (JSON-able; ``timing`` goes to the sweep's side file).
    """
    case = cases(bool(job["quick"]))[job["case"]]
    kind = job["kind"]
    if kind == "paired":
        return run_paired(case, job)
    if kind == "paired_block":
        return run_paired_block(case, job)
    if kind == "monitor":
        return run_monitor(case, job)
    if kind == "accuracy":
        return run_accuracy(case, job)
    raise ValueError(f"unknown job kind {kind!r}")


def run_all(jobs: list[dict[str, Any]], out: Path, *, workers: int | None = None, resume: bool = True,
            progress: bool = True) -> list[dict[str, Any]]:
    """Every job through :func:`analyses.sweep.run_sweep` into ``out/runs.jsonl`` (streamed,
    resumable: a rerun continues the file; when only the shipped ``runs.jsonl.gz`` is there, it is
    unpacked and continued).

    Args:
        jobs: from :func:`.protocol.plan`. out: the output folder.
        workers: processes (None: the number of cores). resume: keep the records already there.
        progress: a line on stderr every few seconds.

    Returns:
        The records in job order.
    """
    path = out / "runs.jsonl"
    if resume:   # the shipped records: continue them
        continue_shipped(path, (lambda m: print(m, file=sys.stderr, flush=True)) if progress else None)
    return run_sweep(jobs, run_job, path, key_fields=KEY_FIELDS, workers=workers, resume=resume,
                     desc="plateaus", progress=progress)
