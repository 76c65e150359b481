"""What a monitor writes: one JSON record per stall (streamed to ``events.jsonl``), sharpness rows,
check rows, and the one-line progress messages.

:func:`stall_record` runs the at-stall analysis — :func:`landscape.monitor.analyse_stall` (the
same function, settings and seed rule as the SynaPrune trainer), then the extreme eigenpairs with
residuals and the per-layer extremes at the stall point — and assembles the record. Failures
never raise: a piece that fails leaves its fields None and its message in ``error``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..eigs import extreme_eigs
from ..results import to_jsonable
from ..spectrum import per_block_extremes
from .analysis import AnalysisSettings, analyse_stall
from .cause import ReferenceScale

if TYPE_CHECKING:
    from ..objective import Objective

#: relative residual of the extreme eigenpairs at a stall (per dtype: float64, float32 and others)
STALL_EIG_TOL: dict[torch.dtype, float] = {torch.float64: 1e-6, torch.float32: 1e-3}


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def spectrum_at(obj: Objective, theta: torch.Tensor, *, per_layer: bool, seed: int) -> dict[str, Any]:
    """λ_min and λ_max with residuals at θ (and, with ``per_layer``, each layer's extremes).

    Args:
        obj: the objective.
        theta: the point, shape (dim,).
        per_layer: also :func:`landscape.per_block_extremes` (one block per module).
        seed: the eigensolvers' seed.

    Returns:
        ``{"lambda_min", "lambda_max", "lambda_residuals": [r_min, r_max] (‖Hv − λv‖, curvature
        units), "lambda_converged", "lambda_tol", "per_layer": [...] or None, "spectrum_n_hvp",
        "spectrum_error"}``.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda w: w[0] ** 2 - 3 * w[1] ** 2, torch.zeros(2, dtype=torch.float64))
        >>> s = spectrum_at(obj, obj.initial_point(), per_layer=False, seed=0)
        >>> round(s["lambda_min"], 9), round(s["lambda_max"], 9), s["lambda_converged"]
        (-6.0, 2.0, True)
    """
    tol = STALL_EIG_TOL.get(obj.dtype, 1e-3)
    out: dict[str, Any] = {"lambda_min": None, "lambda_max": None, "lambda_residuals": None, "lambda_converged": None,
                           "lambda_tol": tol, "per_layer": None, "spectrum_n_hvp": 0, "spectrum_error": None}
    try:
        if obj.dim >= 2:
            r = extreme_eigs(obj, theta, k=1, which="both", tol=tol, seed=seed, warn=False)
            vals, res = r.values.tolist(), r.residuals.tolist()
            out.update(lambda_min=vals[0], lambda_max=vals[-1], lambda_residuals=[res[0], res[-1]],
                       lambda_converged=bool(r.all_converged), spectrum_n_hvp=int(r.n_hvp))
        else:
            lam = float(obj.hvp(theta, torch.ones(1, dtype=obj.dtype, device=obj.device))[0])
            out.update(lambda_min=lam, lambda_max=lam, lambda_residuals=[0.0, 0.0], lambda_converged=True,
                       spectrum_n_hvp=1)
        if per_layer and obj.module is not None:
            blocks = per_block_extremes(obj, theta, tol=tol, seed=seed, warn=False)
            out["per_layer"] = [{k: b[k] for k in ("block", "dim", "smallest", "largest", "converged", "n_hvp")}
                                for b in blocks.blocks]
            out["spectrum_n_hvp"] += sum(int(b["n_hvp"]) for b in blocks.blocks)
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not kill training
        out["spectrum_error"] = f"{type(exc).__name__}: {exc}"
    return out


def stall_record(obj: Objective, theta: torch.Tensor, *, index: int, step: int, loss: float, grad_norm: float,
                 detector_threshold: float, settings: AnalysisSettings, reference: ReferenceScale, seed: int,
                 per_layer: bool, extra: dict[str, Any],
                 progress: Callable[[str], None] | None = None,
                 critical_obj: Objective | None = None) -> dict[str, Any]:
    """The record of one stall: the analysis the trainer runs, then the spectrum at the stall point.

    Args:
        obj: the monitor's objective.
        theta: the stall point θ_s, shape (dim,).
        index: the stall's number in the run (0, 1, ...).
        step: the loop's step at the stall.
        loss: L(θ_s) on the monitor's data (loss units).
        grad_norm: ‖∇L(θ_s)‖ (gradient units).
        detector_threshold: the gradient threshold in force when the stall fired.
        settings: the analysis settings.
        reference: the reference per-example gradient scale.
        seed: the run's seed (the analysis uses ``seed + index``, as the trainer does).
        per_layer: also per-layer extremes.
        extra: fields added as they are (mode, point, lr, ...).
        progress: called with a one-line message before each piece of the analysis (or None).
        critical_obj: the loss the stall is classified against (None: ``obj``; see
            :func:`landscape.monitor.analyse_stall`); λ_min/λ_max and per-layer extremes are its too.

    Returns:
        A JSON-able dict with ``index``, ``step``, ``loss``, ``grad_norm``, ``kind``, ``grad_tol``,
        ``eig_tol``, ``tolerances``, ``nearest_critical``, ``kappa``, ``example_grad_scale``,
        ``grad_scale_ratio``, ``cause``, ``cause_thresholds``, ``lambda_min``, ``lambda_max``,
        ``lambda_residuals``, ``per_layer``, ``detector_threshold``, ``error``, ``n_hvp``,
        ``analysis_s`` and the ``extra`` fields.

    Example: :class:`landscape.monitor.StallMonitor` calls it at each stall (see there).
    """
    t0 = time.perf_counter()
    a = analyse_stall(obj, theta, grad_norm=grad_norm, detector_threshold=detector_threshold, settings=settings,
                      reference=reference, seed=seed + index, progress=progress, critical_obj=critical_obj)
    if progress is not None:
        progress(f"λ_min, λ_max{' and per-layer extremes' if per_layer else ''} "
                 f"({time.perf_counter() - t0:.1f} s so far)")
    spec = spectrum_at(obj if critical_obj is None else critical_obj, theta, per_layer=per_layer, seed=seed + index)
    error = a.error
    if spec.pop("spectrum_error"):
        error = (error + "; " if error else "") + "spectrum failed"
    rec = {"index": index, "step": step, "loss": _f(loss), "grad_norm": _f(grad_norm), "kind": a.kind,
           "grad_tol": a.grad_tol, "eig_tol": a.eig_tol, "tolerances": a.tolerances,
           "nearest_critical": a.nearest_critical, "kappa": a.kappa, "example_grad_scale": a.example_grad_scale,
           "grad_scale_ratio": a.example_grad_scale_ratio, "cause": a.cause, "cause_thresholds": a.cause_thresholds,
           "detector_threshold": detector_threshold, "error": error,
           "classified_on": "data" if critical_obj is None else "critical_objective",
           "n_hvp": int(a.n_hvp) + int(spec.pop("spectrum_n_hvp")), "n_per_example_grads": a.n_per_example_grads,
           **spec, **extra}
    rec["analysis_s"] = time.perf_counter() - t0
    return to_jsonable(rec)


def unconverged_parts(rec: dict[str, Any]) -> list[str]:
    """What in a stall record did not converge, each named with its residual (for one warning per stall).

    Args:
        rec: a stall record (:func:`stall_record`).

    Returns:
        One phrase per unconverged piece (empty when everything converged): the nearest-critical
        search (its reason and ‖∇L‖ at its end point), λ_min / λ_max (residual ‖Hv − λv‖ against
        the tol × spectral scale) and each per-layer block.

    Example:
        >>> unconverged_parts({"nearest_critical": {"converged": False, "reason": "max_iter", "grad_norm": 0.01},
        ...                    "lambda_converged": True})
        ['nearest critical point search (max_iter; ‖∇L‖ = 0.01 at its end)']
    """
    out = []
    nc = rec.get("nearest_critical")
    if nc is not None and nc.get("converged") is False:
        gn = nc.get("grad_norm")
        out.append(f"nearest critical point search ({nc.get('reason') or 'not converged'}"
                   + (f"; ‖∇L‖ = {gn:.3g} at its end)" if gn is not None else ")"))
    if rec.get("lambda_converged") is False:
        res = rec.get("lambda_residuals") or [None, None]
        out.append("λ_min/λ_max (residuals " + ", ".join("?" if r is None else f"{r:.2e}" for r in res)
                   + f" vs tol {rec.get('lambda_tol')} relative)")
    for b in rec.get("per_layer") or []:
        if b.get("converged") is False:
            out.append(f"block {b.get('block')} extremes")
    return out


class EventLog:
    """Streams a monitor's records under ``out``: ``events.jsonl`` (one stall per line, written
    and flushed as it happens), ``sharpness.jsonl``, and ``stall_<k>.npz`` with θ_s.

    Args:
        out: the folder (created), or None for no files.

    Example:
        >>> import tempfile, pathlib
        >>> log = EventLog(tempfile.mkdtemp())
        >>> log.stall({"index": 0, "step": 3}, None); log.close()
        >>> (log.out / "events.jsonl").read_text()
        '{"index": 0, "step": 3}\\n'
    """

    def __init__(self, out: str | Path | None) -> None:
        self.out = None if out is None else Path(out)
        self._files: dict[str, Any] = {}
        if self.out is not None:
            if self.out.exists() and not self.out.is_dir():
                raise ValueError(f"out={str(self.out)!r} exists and is not a folder")
            self.out.mkdir(parents=True, exist_ok=True)
            for name in ("events.jsonl", "sharpness.jsonl"):
                (self.out / name).write_text("", encoding="utf-8")

    def _write(self, name: str, row: dict[str, Any]) -> None:
        if self.out is None:
            return
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(self.out / name, "a", encoding="utf-8")
        f.write(json.dumps(to_jsonable(row), sort_keys=True) + "\n")
        f.flush()

    def stall(self, record: dict[str, Any], theta: torch.Tensor | None) -> None:
        """Append one stall record (and save θ_s).

        Args:
            record: the record. theta: the stall point, or None.
        """
        self._write("events.jsonl", record)
        if self.out is not None and theta is not None:
            np.savez(self.out / f"stall_{int(record['index']):03d}.npz", theta=theta.detach().cpu().numpy())

    def sharpness(self, row: dict[str, Any]) -> None:
        """Append one sharpness row.

        Args:
            row: the row.
        """
        self._write("sharpness.jsonl", row)

    def close(self) -> None:
        """Close the files (records already written stay)."""
        for f in self._files.values():
            f.close()
        self._files.clear()


def progress_line(message: str, enabled: bool | None) -> None:
    """One progress line on stderr, ``[monitor] message`` (nothing when ``enabled`` is False).

    Args:
        message: the text. enabled: False silences it.

    Example:
        >>> progress_line("hello", False)
    """
    if enabled is False:
        return
    print(f"[monitor] {message}", file=sys.stderr, flush=True)


def describe_stall(rec: dict[str, Any]) -> str:
    """A one-line summary of a stall record (for progress lines and the report).

    Args:
        rec: a stall record.

    Returns:
        E.g. ``"stall 0 at step 20: strict_saddle, nearest strict_saddle (index 3, loss 0.5737), cause vanishing"``.

    Example:
        >>> describe_stall({"index": 0, "step": 20, "kind": "strict_saddle", "cause": "vanishing",
        ...                 "nearest_critical": {"kind": "strict_saddle", "index": 3, "loss": 0.57375}})
        'stall 0 at step 20: strict_saddle, nearest strict_saddle (index 3, loss 0.57375), cause vanishing'
    """
    nc = rec.get("nearest_critical") or {}
    near = (f", nearest {nc.get('kind')} (index {nc.get('index')}, loss {nc.get('loss'):.6g})"
            if nc.get("kind") is not None and nc.get("loss") is not None else "")
    return f"stall {rec.get('index')} at step {rec.get('step')}: {rec.get('kind')}{near}, cause {rec.get('cause')}"
