"""The escape study's records: one JSON line per run, written by :func:`analyses.escape.run.run_one`.

Every stall event carries (from the trainer's :class:`synaprune.StallEvent`): ``kind`` (of the
critical point it approaches: the problem's certified kind when that point's loss is the certified
critical value, else ``nearest_critical["kind"]`` when that search converged, else the trainer's
approximate kind at the stall point, ``kind_at_stall``; ``kind_source`` says which),
``nearest_critical``, ``cause`` (``"cancelling"`` / ``"vanishing"``), ``kappa``,
``example_grad_scale`` (mean‖g_i‖) and its ratio to the run's reference scale, ``censored`` (the run
ended before the escape horizon), ``escaped`` (True / False / None when censored), ``escaped_by``
(``"rule"`` / ``"base"``), ``escape_steps``, ``cost_example_grads`` and the escape ``attempts``.

Floats are rounded to :data:`RECORD_DIGITS` significant digits by the one rounding rule,
:func:`landscape.results.round_sig` (the tracked records carry no last-bit noise), and non-finite
ones are None (JSON has no nan). Records are byte-identical whatever the workers, job order,
executor or resume; ``escape.jsonl.gz`` is the copy ``figures/`` ships.
"""
from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path
from typing import Any

from landscape.results import round_sig, to_jsonable

from ..sweep import read_records, write_gzip_copy  # noqa: F401 - re-exported (escape's API)

#: significant digits kept for floats in the records (removes last-bit noise from the tracked file)
RECORD_DIGITS = 10


def round_finite(x: Any, digits: int = RECORD_DIGITS) -> float | None:
    """A number as a float rounded to ``digits`` significant digits, or None.

    Args:
        x: a number (int, float, NumPy scalar, 0-d tensor …), or anything else.
        digits: significant digits (:func:`landscape.results.round_sig`).

    Returns:
        The rounded float; None for None, bools, non-numbers and non-finite values.

    >>> round_finite(2 / 3, 4), round_finite(float("nan")), round_finite(True)
    (0.6667, None, None)
    """
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return round_sig(x, digits)


def clean(v: Any) -> Any:
    """A JSON-able copy of a value for a record.

    Args:
        v: any value :func:`landscape.results.to_jsonable` converts (dataclasses, tensors, arrays,
            dicts, lists …).

    Returns:
        Plain JSON types, floats rounded by :func:`round_finite` (non-finite ones None), dict keys
        strings.
    """
    v = to_jsonable(v)
    if isinstance(v, float):
        return round_finite(v)
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


def attempt_record(a: Any) -> dict[str, Any]:
    """Args:
        a: one escape attempt (an object with ``to_dict()``, or a mapping).

    Returns:
        Its record (:func:`clean`).
    """
    d = a.to_dict() if hasattr(a, "to_dict") else dict(a)
    return clean(d)


#: a stall is at its problem's certified critical point when the loss of the critical point it
#: approaches matches the certified value to this relative tolerance (relative to the larger of the
#: value and the loss at the model's seeded initialisation, so a value of 0 is handled)
CERTIFIED_REL_TOL = 1e-6


def event_record(ev: Any, n_steps: int, certified: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record of one trainer stall event (fields in the module docstring).

    Fields the trainer does not provide stay None; ``censored`` falls back to "not escaped and the
    run ended before the horizon", and ``escaped`` is None for a censored stall. A stall whose
    nearest critical point (converged search) has the certified loss within
    :data:`CERTIFIED_REL_TOL`·max(|value|, scale) takes the certified kind (``kind_source``
    ``"certificate"``; the analytic truth outranks the numerical classifier, whose verdicts stay in
    ``kind_at_stall`` and ``nearest_critical``).

    Args:
        ev: a :class:`synaprune.StallEvent` (or any object with its attributes).
        n_steps: the run's number of steps (for the censoring fallback).
        certified: the problem's analytic certificate ``{"kind", "critical_value", "scale"}``
            (scale: |loss| at the model's seeded initialisation), or None.

    Returns:
        The event's record, floats rounded by :func:`clean`.
    """
    rep, canc = getattr(ev, "report", None), getattr(ev, "cancellation", None)
    horizon = getattr(ev, "escape_horizon", None)
    escaped = getattr(ev, "escaped", None)
    censored = getattr(ev, "censored", None)
    if censored is None:
        censored = (not escaped) and horizon is not None and (n_steps - ev.step) < horizon
    nc = getattr(ev, "nearest_critical", None)
    if nc is not None and hasattr(nc, "to_dict"):
        nc = nc.to_dict()
    # THEORY.md §4: a stall is identified by the critical point it approaches, not by the
    # (indefinite-looking) Hessian at the stall point itself
    converged = isinstance(nc, dict) and bool(nc.get("converged"))
    kind, source = ev.kind or "unclassified", "at_stall"
    if converged and nc.get("kind"):
        kind, source = nc["kind"], "nearest_critical"
    at_cert = None
    if certified is not None and certified.get("critical_value") is not None and converged \
            and nc.get("loss") is not None:
        value = float(certified["critical_value"])
        at_cert = abs(float(nc["loss"]) - value) <= CERTIFIED_REL_TOL * max(abs(value), float(certified["scale"]))
        if at_cert:
            kind, source = certified["kind"], "certificate"
    return clean({
        "index": ev.index, "step": ev.step, "loss": ev.loss, "grad_norm": ev.grad_norm,
        "kind": kind, "kind_source": source, "at_certified_point": at_cert,
        "kind_at_stall": ev.kind, "nearest_critical": nc,
        "cause": getattr(ev, "cause", None),
        "kappa": getattr(ev, "kappa", None) if getattr(ev, "kappa", None) is not None else getattr(canc, "kappa", None),
        "example_grad_scale": (getattr(ev, "example_grad_scale", None) if getattr(ev, "example_grad_scale", None)
                               is not None else getattr(canc, "mean_example_grad_norm", None)),
        "example_grad_scale_ratio": getattr(ev, "example_grad_scale_ratio", None),
        "cause_thresholds": getattr(ev, "cause_thresholds", None),
        "lambda_min": getattr(rep, "lambda_min", None), "morse_index": getattr(rep, "index", None),
        "censored": bool(censored), "escaped": None if censored else bool(escaped),
        "escaped_by": getattr(ev, "escaped_by", None) if not censored else None,
        "escape_steps": ev.escape_steps if escaped else None, "escape_horizon": horizon,
        "observed_steps": (getattr(ev, "observed_steps", None) if getattr(ev, "observed_steps", None) is not None
                           else ev.escape_steps if escaped else (horizon if not censored else n_steps - ev.step)),
        "resolution": getattr(ev, "resolution", None),
        "cost_example_grads": getattr(ev, "cost_example_grads", None),
        "analysis_cost_example_grads": getattr(ev, "analysis_cost_example_grads", None),
        "attempts": [attempt_record(a) for a in (getattr(ev, "attempts", None) or [])],
        "distance_moved": getattr(ev, "distance_moved", None), "next_kind": getattr(ev, "next_kind", None),
        "next_is_final": getattr(ev, "next_is_final", None),
    })


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a study's records.

    Args:
        path: ``escape.jsonl`` or ``escape.jsonl.gz``, or a directory holding one of them (the
            plain file preferred).

    Returns:
        One dict per run, in file order (torn or blank lines skipped).

    Raises:
        FileNotFoundError: no such file, or the directory holds neither.
    """
    p = Path(path)
    if p.is_dir():
        cands = [p / "escape.jsonl", p / "escape.jsonl.gz"]
        found = [c for c in cands if c.exists()]
        if not found:
            raise FileNotFoundError(f"{p} holds neither escape.jsonl nor escape.jsonl.gz")
        p = found[0]
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if p.suffix == ".gz":
        out = []
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return out
    return read_records(p)


def load_benchmark(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Args:
        out_dir: a study's output folder.

    Returns:
        The records of ``out_dir/escape.jsonl`` (complete lines only; [] when there is none).
    """
    return read_records(Path(out_dir) / "escape.jsonl")
