"""Stall events, run results, the streaming run log and its reader.

Log directory layout (everything a later tool needs to rebuild the run):

- ``run.json``       config (method, lr, options, seed, dtype, device, stall-detector thresholds,
  escape criterion, versions, caller's ``meta``) plus ``status``/``message``/``cost`` (rewritten
  atomically at the start and at the end of the run).
- ``events.jsonl``   one JSON object per stall event, written and flushed the moment it happens
  (its escape outcome is not known yet: those fields are null there).
- ``updates.jsonl``  later facts about an event, one flushed object per line:
  ``{"event": i, ...fields}`` (escape attempts, ``escaped``, ``escape_steps``, ``distance_moved``,
  ``next_kind`` ...). :func:`load_run` merges them into the events.
- ``curves.csv``     ``step,loss,grad_norm,phase`` (phase 0 = base method, 1 = escape phase),
  appended and flushed every ``checkpoint_every`` steps and at every stall.
- ``stall_thetas/stall_0003.npy``  θ at stall 3 (float64, shape (dim,)); ``..._escape_direction.npy``
  the classifier's escape direction where it gave one.
- ``final.npz``      ``final_theta``, ``initial_theta``, ``losses``, ``grad_norms``, ``phases``
  (also written, with the last good θ, when a run stops on a non-finite loss or is interrupted).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import JsonResult, to_jsonable
from landscape.results import read_jsonl


@dataclass
class EscapeAttempt(JsonResult):
    """One escape phase at a stall (synaprune/README.md, "Escape-phase protocol").

    A live record: :class:`synaprune.escape_phase.EscapeProtocol` creates it when the phase starts
    and fills in the outcome when it ends (each state is streamed to ``updates.jsonl``).

    Args:
        rule: the method.
        start_step: the step whose θ is the snapshot θ̃.
        loss_before: L(θ̃), loss units.
        f_thres: accept when L ≤ L(θ̃) − f_thres (loss units).
        end_step: the step at which the phase was accepted or reverted (None while it runs).
        steps: rule steps taken.
        accepted: True: the phase's point is kept; False: θ̃ was restored; None while it runs.
        loss_after: the loss when the phase ended, before a revert.
        first_step_norm: ‖Δθ‖ of the phase's first step after decay and cap (the length the
            step-matched control ``gd-matched`` copies), parameter units.
        first_step_norm_raw: the same before the cap.
        n_capped: steps the cap shortened.

    Example:
        >>> EscapeAttempt(rule="synaprune-rms", start_step=20, loss_before=1.5, f_thres=0.015).to_dict()["steps"]
        0
    """

    rule: str
    start_step: int
    loss_before: float
    f_thres: float
    end_step: int | None = None
    steps: int = 0
    accepted: bool | None = None
    loss_after: float | None = None
    first_step_norm: float | None = None
    first_step_norm_raw: float | None = None
    n_capped: int = 0


#: run-level and event-level fields that hold wall-clock times (not reproducible: drop them from
#: records that must be byte-identical on rerun)
TIMING_FIELDS: tuple[str, ...] = ("wall_time_s", "classify_time_s", "analysis_time_s")


@dataclass
class StallEvent(JsonResult):
    """One detected stall: what :func:`landscape.monitor.analyse_stall` found there, and what happened next.

    A live record: the trainer builds it at detection (streamed to ``events.jsonl`` at once) and
    fills in the escape outcome, attempts and the next stall's kind as the run goes on (each
    streamed to ``updates.jsonl``); after ``fit`` it is final. Field order is the JSON key order.

    Args:
        index: 0-based (detection and analysis fields first). step, loss, grad_norm: at detection (loss and gradient units).
        kind: the approximate kind at the stall point; report: its ``CriticalPointReport`` (None
            when ``classify=False`` or the classifier failed: see ``classify_error``);
            classify_tolerances: the tolerances it used.
        nearest_critical: the refined nearby critical point (:data:`landscape.monitor.NEAREST_FIELDS`
            of :func:`landscape.nearest_critical`).
        cancellation: ``CancellationStats`` at θ_s.
        theta: θ_s, shape (dim,), kept out of the JSON (saved to ``stall_thetas/``).

    Cause (synaprune/README.md, "Stall cause"): ``kappa`` = ‖mean g_i‖ / mean‖g_i‖,
    ``example_grad_scale`` = mean_i ‖g_i‖ (unscaled per-example gradients ∇ℓ_i),
    ``example_grad_scale_ratio`` = that over the run's reference scale, ``cause``
    ("cancelling" | "vanishing" | None) and the ``cause_thresholds`` used.

    Escape (SYNAPRUNE.md, "Escape measurement"): ``attempts`` (escape phases, mode
    ``"at_stalls"``), ``escape_accepted`` (some phase was accepted); ``escaped`` (True: the loss
    reached ``escape_target`` = loss − max(δ_abs, δ_rel·|loss|) within ``escape_horizon`` steps;
    False: it did not, or the method gave up / diverged; None: ``censored``, the run ended first),
    ``escaped_by`` ("rule": an accepted phase of the rule — or the rule itself in mode
    ``"always"`` — preceded the escape; "base": the base method escaped after reverted phases or
    none; None when not escaped), ``escape_steps`` (steps from the stall to the escape),
    ``observed_steps`` (steps from the stall to its resolution: escape, horizon or end),
    ``resolution`` ("escaped" | "horizon" | "end_of_run" | "stopped" | "nonfinite"),
    ``resolved_step``, ``distance_moved`` (‖θ − θ_stall‖ at the resolution), ``next_kind`` /
    ``next_step`` (the next stall's kind, or the final point's kind: ``next_is_final``).

    Cost (example-gradient units, README "Cost"): ``cost_example_grads`` spent by the method from
    the stall to its resolution; ``analysis_cost_example_grads`` spent on analysing the stall
    (classification, cancellation statistics).

    Example:
        >>> ev = StallEvent(index=0, step=20, loss=0.25, grad_norm=1e-6)
        >>> ev.to_dict()["resolution"], "theta" in ev.to_dict()
        (None, False)
    """

    index: int
    step: int
    loss: float
    grad_norm: float
    kind: str | None = None
    report: Any = None
    cancellation: Any = None
    classify_error: str | None = None
    nearest_critical: dict | None = None
    classify_tolerances: dict | None = None
    escape_target: float | None = None
    escape_horizon: int | None = None
    kappa: float | None = None
    example_grad_scale: float | None = None
    example_grad_scale_ratio: float | None = None
    cause: str | None = None
    cause_thresholds: dict | None = None
    attempts: list[EscapeAttempt] = field(default_factory=list)
    escape_accepted: bool | None = None
    escaped: bool | None = None
    censored: bool = False
    escaped_by: str | None = None
    escape_steps: int | None = None
    observed_steps: int | None = None
    resolution: str | None = None
    resolved_step: int | None = None
    distance_moved: float | None = None
    cost_example_grads: float | None = None
    analysis_cost_example_grads: float | None = None
    next_kind: str | None = None
    next_step: int | None = None
    next_is_final: bool | None = None
    theta: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The record as JSON types (``report`` without its escape direction; no ``theta``)."""
        d = {k: to_jsonable(v) for k, v in self.__dict__.items()
             if k not in ("theta", "report") and not k.startswith("_")}
        d["report"] = report_to_dict(self.report)
        return d


def report_to_dict(report: Any) -> dict | None:
    """A ``CriticalPointReport`` as JSON, without the (dim,) escape direction.

    Args:
        report: the report (anything with ``to_dict()`` or JSON-able), or None.

    Returns:
        Its dict with ``escape_direction`` replaced by the file pattern it is saved under (or
        None), or None.

    Example:
        >>> report_to_dict({"kind": "minimum", "escape_direction": None}), report_to_dict(None)
        ({'kind': 'minimum', 'escape_direction': None}, None)
    """
    if report is None:
        return None
    d = report.to_dict() if hasattr(report, "to_dict") else to_jsonable(report)
    if isinstance(d, dict) and "escape_direction" in d:
        d["escape_direction"] = None if d["escape_direction"] is None else "stall_thetas/*_escape_direction.npy"
    return d


@dataclass(frozen=True)
class TrainResult(JsonResult):
    """Outcome of :meth:`Trainer.fit` (frozen: built once, at the end of the run).

    Args:
        method, mode: the method and its mode (None for baselines).
        status: ``"completed"``, ``"target_reached"`` (``fit(stop_below=…)``), ``"second_order_stationary"``
            (PGD's test ended the run),
            ``"nonfinite"`` (stopped at the last finite state; see ``message``) or ``"interrupted"``.
        message: why the run stopped early ("" when completed).
        n_steps: steps taken.
        losses, grad_norms, phases: shape (n_steps + 1,): full-batch values at θ_0 … θ_final
            (phase 1 = inside an escape phase).
        events: the :class:`StallEvent` records.
        final_loss, final_grad_norm, final_kind, final_report: at the final point.
        n_hvp, n_classify_hvp, n_per_example_grads, n_grad_evals, n_minibatch_grads, n_loss_evals:
            counts (the method's HVPs; the classifier's; the method's own per-example gradients,
            analysis not included; full-batch gradients; minibatch gradients; extra losses).
        wall_time_s, classify_time_s, analysis_time_s: seconds (whole fit; classifier; classifier
            + cancellation statistics + reference) — :data:`TIMING_FIELDS`, not reproducible.
        cost_example_grads: the method's training cost in example-gradient equivalents (README
            "Cost": a per-example gradient 1, a full-batch gradient n, an HVP ``hvp_over_grad``·n,
            a full-batch loss ``loss_over_grad``·n).
        analysis_cost_example_grads: classification, cancellation statistics, the cause reference.
        hvp_over_grad, loss_over_grad, cost_ratio_source: the ratios and ``"flop_count"`` /
            ``"default"``.
        method_options: options with derived thresholds (e.g. PGD's); escape_phase: the
            escape-phase options; example_grad_scale_reference: ``{source, value}``;
            cause_thresholds; seed; log_dir: configuration echoed for records.
        final_theta, initial_theta: shape (dim,), kept out of the JSON.

    Example:
        >>> import numpy as np
        >>> r = TrainResult(method="gd", mode=None, status="completed", message="", n_steps=0,
        ...                 losses=np.zeros(1), grad_norms=np.zeros(1), phases=np.zeros(1, np.int8), events=[],
        ...                 final_loss=0.0, final_grad_norm=0.0)
        >>> r.n_stalls, r.to_dict()["events"]
        (0, [])
    """

    method: str
    mode: str | None
    status: str
    message: str
    n_steps: int
    losses: np.ndarray
    grad_norms: np.ndarray
    phases: np.ndarray
    events: list[StallEvent]
    final_loss: float
    final_grad_norm: float
    final_kind: str | None = None
    final_report: Any = None
    n_hvp: int = 0
    n_classify_hvp: int = 0
    n_per_example_grads: int = 0
    n_grad_evals: int = 0
    n_minibatch_grads: int = 0
    n_loss_evals: int = 0
    wall_time_s: float = 0.0
    classify_time_s: float = 0.0
    analysis_time_s: float = 0.0
    cost_example_grads: float = 0.0
    analysis_cost_example_grads: float = 0.0
    hvp_over_grad: float | None = None
    loss_over_grad: float | None = None
    cost_ratio_source: str | None = None
    method_options: dict = field(default_factory=dict)
    escape_phase: dict | None = None
    example_grad_scale_reference: dict | None = None
    cause_thresholds: dict | None = None
    seed: int | None = None
    log_dir: str | None = None
    final_theta: torch.Tensor | None = field(default=None, repr=False)
    initial_theta: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_stalls(self) -> int:
        """Stall events recorded."""
        return len(self.events)

    def to_dict(self) -> dict:
        """The result as JSON types (events as their records; no θ vectors)."""
        d = {k: to_jsonable(v) for k, v in self.__dict__.items()
             if k not in ("final_theta", "initial_theta", "events", "final_report")}
        d["events"] = [e.to_dict() for e in self.events]
        d["final_report"] = report_to_dict(self.final_report)
        return d


def _np(t: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().to(torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunLogger:
    """Streams a run to ``log_dir`` (layout in the module docstring); every method is a no-op
    without a directory.

    Args:
        log_dir: the run directory (created; earlier run files in it are removed), or None.
        config: the run's configuration (``run.json``; statuses and costs are added to it).
        checkpoint_every: curve points buffered before a flush (≥ 1).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = RunLogger(d, {"method": "gd"}, checkpoint_every=2)
        ...     log.curve_point(0, 1.0, 0.5, 0); log.curve_point(1, 0.5, 0.25, 0)   # flushed at 2 rows
        ...     log.close()
        ...     Path(d, "curves.csv").read_text().splitlines()[-1]
        '1,0.5,0.25,0'
    """

    def __init__(self, log_dir: str | os.PathLike | None, config: dict, checkpoint_every: int = 50) -> None:
        self.dir = Path(log_dir) if log_dir is not None else None
        self.config = to_jsonable(config)
        self.checkpoint_every = max(1, int(checkpoint_every))
        self._pending: list[tuple[int, float, float, int]] = []
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "stall_thetas").mkdir(exist_ok=True)
        for name in ("events.jsonl", "updates.jsonl", "curves.csv", "final.npz"):
            if (self.dir / name).exists():
                (self.dir / name).unlink()
        for old in (self.dir / "stall_thetas").glob("stall_*.npy"):
            old.unlink()
        self._events = open(self.dir / "events.jsonl", "a", encoding="utf-8")
        self._updates = open(self.dir / "updates.jsonl", "a", encoding="utf-8")
        self._curves = open(self.dir / "curves.csv", "a", encoding="utf-8", newline="")
        self._curves.write("step,loss,grad_norm,phase\n")
        self._curves.flush()
        self.write_run_json(status="running", message="")

    @property
    def enabled(self) -> bool:
        """Whether a directory is written."""
        return self.dir is not None

    def write_run_json(self, **extra: Any) -> None:
        """Rewrite ``run.json`` atomically: the config plus ``extra`` (status, message, costs, ...)."""
        if self.dir is None:
            return
        _atomic_write_text(self.dir / "run.json", json.dumps({**self.config, **to_jsonable(extra)}, indent=2))

    def curve_point(self, step: int, loss: float, grad_norm: float, phase: int) -> None:
        """Buffer one ``curves.csv`` row (flushed every ``checkpoint_every`` rows and at events).

        Args:
            step: the step. loss, grad_norm: full batch at that step. phase: 1 inside an escape phase.
        """
        if self.dir is None:
            return
        self._pending.append((step, loss, grad_norm, phase))
        if len(self._pending) >= self.checkpoint_every:
            self.flush_curves()

    def flush_curves(self) -> None:
        """Append the buffered curve rows (floats as ``repr``, i.e. exactly) and flush."""
        if self.dir is None or not self._pending:
            return
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for step, loss, gn, phase in self._pending:
            w.writerow([step, repr(float(loss)), repr(float(gn)), phase])
        self._curves.write(buf.getvalue())
        self._curves.flush()
        self._pending.clear()

    def event(self, event: StallEvent) -> None:
        """Save θ_s (and the escape direction) and append the event's line to ``events.jsonl``."""
        if self.dir is None:
            return
        stem = self.dir / "stall_thetas" / f"stall_{event.index:04d}"
        if event.theta is not None:
            np.save(f"{stem}.npy", _np(event.theta))
        direction = getattr(event.report, "escape_direction", None)
        if direction is not None:
            np.save(f"{stem}_escape_direction.npy", _np(direction))
        self.flush_curves()
        self._events.write(json.dumps(event.to_dict()) + "\n")
        self._events.flush()

    def update(self, index: int, **fields: Any) -> None:
        """Append ``{"event": index, **fields}`` to ``updates.jsonl`` (later facts about an event)."""
        if self.dir is None:
            return
        self._updates.write(json.dumps({"event": index, **to_jsonable(fields)}) + "\n")
        self._updates.flush()

    def final(self, *, final_theta: torch.Tensor, initial_theta: torch.Tensor, losses: list[float],
              grad_norms: list[float], phases: list[int]) -> None:
        """Write ``final.npz`` atomically (θ vectors float64, shape (dim,); curves (n_steps + 1,))."""
        if self.dir is None:
            return
        self.flush_curves()
        tmp = self.dir / "final.tmp.npz"
        np.savez(tmp, final_theta=_np(final_theta), initial_theta=_np(initial_theta),
                 losses=np.asarray(losses, dtype=np.float64), grad_norms=np.asarray(grad_norms, dtype=np.float64),
                 phases=np.asarray(phases, dtype=np.int8))
        os.replace(tmp, self.dir / "final.npz")

    def close(self) -> None:
        """Flush the curves and close the files."""
        if self.dir is None:
            return
        self.flush_curves()
        for f in (self._events, self._updates, self._curves):
            if not f.closed:
                f.close()


@dataclass
class RunLog:
    """What :func:`load_run` reads back.

    Args:
        log_dir: the directory.
        config: ``run.json``.
        events: event dicts, ``updates.jsonl`` merged in.
        steps, losses, grad_norms, phases: ``curves.csv`` up to the last checkpoint, shape (rows,).
        stall_thetas: {event index: θ_s, shape (dim,)}.
        escape_directions: {event index: the classifier's escape direction, shape (dim,)}.
        final: ``final.npz`` arrays, or None if the run never finished.

    Example: see :func:`load_run`.
    """

    log_dir: str
    config: dict
    events: list[dict]
    steps: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    phases: np.ndarray
    stall_thetas: dict[int, np.ndarray]
    escape_directions: dict[int, np.ndarray]
    final: dict[str, np.ndarray] | None

    @property
    def status(self) -> str:
        """``run.json``'s status (``"running"`` for a run killed mid-way)."""
        return str(self.config.get("status", "unknown"))


def load_run(log_dir: str | os.PathLike) -> RunLog:
    """Read a run directory written by the trainer (also one interrupted or killed mid-way).

    Args:
        log_dir: the directory.

    Returns:
        A :class:`RunLog`.

    Raises:
        FileNotFoundError: no directory, or no ``run.json`` in it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     RunLogger(d, {"method": "gd"}).close()
        ...     run = load_run(d)
        >>> run.status, run.config["method"], len(run.events)
        ('running', 'gd', 0)
    """
    d = Path(log_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"no run directory at {d}")
    if not (d / "run.json").exists():
        raise FileNotFoundError(f"{d} has no run.json: not a SynaPrune run directory")
    config = json.loads((d / "run.json").read_text(encoding="utf-8"))
    events = read_jsonl(d / "events.jsonl")
    by_index = {e["index"]: e for e in events}
    for upd in read_jsonl(d / "updates.jsonl"):
        ev = by_index.get(upd.pop("event", None))
        if ev is None:
            continue
        attempt = upd.pop("attempt", None)
        if attempt is not None:
            pos = upd.pop("attempt_index", len(ev["attempts"]))
            if pos < len(ev["attempts"]):
                ev["attempts"][pos] = attempt
            else:
                ev["attempts"].append(attempt)
        ev.update(upd)
    steps, losses, grads, phases = [], [], [], []
    curves = d / "curves.csv"
    if curves.exists():
        with open(curves, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if len(row) != 4:
                    break
                try:
                    steps.append(int(row[0]))
                    losses.append(float(row[1]))
                    grads.append(float(row[2]))
                    phases.append(int(row[3]))
                except ValueError:
                    break
    thetas, directions = {}, {}
    for p in sorted((d / "stall_thetas").glob("stall_*.npy")):
        parts = p.stem.split("_")
        try:
            idx = int(parts[1])
        except (IndexError, ValueError):
            continue
        (directions if p.stem.endswith("_escape_direction") else thetas)[idx] = np.load(p)
    final = None
    if (d / "final.npz").exists():
        with np.load(d / "final.npz") as z:
            final = {k: z[k] for k in z.files}
    return RunLog(log_dir=str(d), config=config, events=events, steps=np.asarray(steps, dtype=np.int64),
                  losses=np.asarray(losses, dtype=np.float64), grad_norms=np.asarray(grads, dtype=np.float64),
                  phases=np.asarray(phases, dtype=np.int8), stall_thetas=thetas, escape_directions=directions,
                  final=final)
