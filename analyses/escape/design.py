"""The escape study's design (issue 23): the methods, the parts, the horizons and the job plan.

**Parts.** ``main``: the four cause × kind cells (:data:`analyses.problems.escape_instances.MAIN_CELLS`),
:data:`N_INSTANCES` independent instances each, every method of :data:`METHODS` from the same start
(paired by ``instance``). ``control``: the four control cells (minima: nothing below to escape to
by descent; what they measure is whether a method leaves a minimum or is declared to "escape" it),
:data:`N_CONTROL_INSTANCES` each. ``sweep``: on the two W = 0 saddles, GD's step factor × the
initialisation scale (the distance to the saddle) — :data:`SWEEP` — for the fit of log(steps)
against log(theory). ``kappa``: one fixed cancelling saddle of each kind (:data:`KAPPA_CELLS`), label noise orthogonal to
the inputs at :data:`KAPPA_LEVELS` (the GD trajectory and the saddle are unchanged; κ falls as the
noise grows).

**Methods** (:class:`Method`): GD and minibatch SGD at the instance's step size from theory
(lr·λ_max = ½); the SynaPrune rules at stalls, always on and without revert; each length rule's
whole-phase length-matched control (``len-…``: every phase step has the rule's length after its decay
and cap, along GD's direction); Adam, RMSprop, sign-GD and normalised GD at step sizes chosen once
per cell on separate tuning instances (:data:`TUNED_LR`, :mod:`analyses.escape.tuning`); PGD with
Jin et al.'s thresholds.

**Horizon** = :data:`HORIZON_MULT` × the instance's theoretical escape time (3× at strict saddles,
where the theory matches GD to ~1 %; 10× at order ≥ 3, where the balanced-path theory is optimistic
for a misaligned start: GD took 0.8–7.6 × it in 200 pilot instances), never below
:data:`MIN_HORIZON` steps.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..problems.escape_instances import (CELLS, CONTROL_CELLS, MAIN_CELLS, TUNING_OFFSET, draw_design,
                                         build_instance, instance_seed)


@dataclass(frozen=True)
class Method:
    """One method of the study.

    Args:
        label: its name in records and figures.
        method: the :data:`synaprune.METHODS` key.
        options: trainer / method options on top of the study's.
        group: ``"baseline"``, ``"rule"``, ``"control"`` or ``"variant"``.
        control_of: for a length control, the rule it matches.
        lr: ``"gd"`` (the instance's theory step size) or ``"tuned"`` (:data:`TUNED_LR`).
        batch_fraction: minibatch size as a share of the examples (SGD), else None.
        full_batch_step: whether its step uses the full-batch gradient the trainer computes every step
            anyway (else that gradient is monitoring only: ``own_cost`` leaves it out).

    Example:
        >>> METHODS["len-rms"].control_of, METHODS["adam"].lr
        ('rms', 'tuned')
    """

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    group: str = "baseline"
    control_of: str | None = None
    lr: str = "gd"
    batch_fraction: float | None = None
    full_batch_step: bool = True


METHODS: dict[str, Method] = {m.label: m for m in (
    Method("gd", "gd"),
    Method("rms", "synaprune-rms", group="rule"),
    Method("devarg", "synaprune-devarg", group="rule"),
    Method("noise", "synaprune-noise", group="rule"),
    Method("rms@always", "synaprune-rms", {"mode": "always"}, group="rule", full_batch_step=False),
    Method("devarg@always", "synaprune-devarg", {"mode": "always"}, group="rule", full_batch_step=False),
    Method("len-rms", "gd-length-matched", {"match": "synaprune-rms"}, group="control", control_of="rms"),
    Method("len-devarg", "gd-length-matched", {"match": "synaprune-devarg"}, group="control", control_of="devarg"),
    Method("len-rms@always", "gd-length-matched", {"match": "synaprune-rms", "mode": "always"}, group="control",
           control_of="rms@always"),
    Method("len-devarg@always", "gd-length-matched", {"match": "synaprune-devarg", "mode": "always"},
           group="control", control_of="devarg@always"),
    Method("rms-norevert", "synaprune-rms", {"revert": False}, group="variant"),
    Method("devarg-norevert", "synaprune-devarg", {"revert": False}, group="variant"),
    Method("adam", "adam", lr="tuned"),
    Method("rmsprop", "rmsprop", lr="tuned"),
    Method("sign-gd", "sign-gd", lr="tuned"),
    Method("normalized-gd", "normalized-gd", lr="tuned"),
    Method("sgd-m/8", "sgd", batch_fraction=0.125, full_batch_step=False),
    Method("sgd-m/2", "sgd", batch_fraction=0.5, full_batch_step=False),
    Method("pgd", "pgd"),
)}
BASELINE = "gd"
#: rule → its whole-phase length-matched control
CONTROL_OF = {m.control_of: label for label, m in METHODS.items() if m.control_of}
#: the no-revert variant of a rule
NO_REVERT = {"rms": "rms-norevert", "devarg": "devarg-norevert"}
#: methods whose step size is chosen on tuning instances, and the grid they are chosen from
TUNED = tuple(label for label, m in METHODS.items() if m.lr == "tuned")
TUNING_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
TUNING_INSTANCES = 4
#: the step sizes chosen by ``landscape escape --tune`` (:mod:`analyses.escape.tuning`: the grid
#: value with the smallest median steps to the target over the tuning instances, counting a run
#: that missed it as twice its horizon; ties to the smaller step)
TUNED_LR: dict[str, dict[str, float]] = {
    "cancelling_strict": {"adam": 0.1, "rmsprop": 0.01, "sign-gd": 0.01, "normalized-gd": 0.3},
    "cancelling_nonstrict": {"adam": 0.03, "rmsprop": 0.003, "sign-gd": 0.03, "normalized-gd": 0.3},
    "vanishing_strict": {"adam": 0.3, "rmsprop": 0.03, "sign-gd": 0.3, "normalized-gd": 1.0},
    "vanishing_nonstrict": {"adam": 0.3, "rmsprop": 0.01, "sign-gd": 0.1, "normalized-gd": 1.0},
}
#: controls take the tuned step sizes of the main cell of the same family and kind of data
CONTROL_TUNING = {"cancelling_global": "cancelling_strict", "vanishing_global": "vanishing_strict",
                  "cancelling_spurious": "cancelling_strict", "vanishing_spurious": "vanishing_strict"}

N_INSTANCES, N_CONTROL_INSTANCES = 40, 6
HORIZON_MULT = {2: 3.0, 3: 10.0, 4: 10.0}
MIN_HORIZON = 100
PARTS = ("main", "control", "sweep", "kappa")
#: stored in every record; a stored record of another version is rerun (``--resume``, the main job)
RECORD_VERSION = "escape-2"
KEY_FIELDS = ("part", "cell", "instance", "setting", "method")

#: the sweep: per W = 0 saddle (cell, H): GD's step factor and the initialisation scale, two starts each
SWEEP = {"vanishing_strict": {"H": 1, "lr_factor": (0.125, 0.25, 0.5), "init": (1e-8, 1e-6, 1e-4, 1e-2)},
         "vanishing_nonstrict": {"H": 2, "lr_factor": (0.125, 0.25, 0.5), "init": (0.02, 0.04, 0.08)}}
SWEEP_REPLICATES = 2
SWEEP_METHODS = ("gd", "rms", "len-rms", "rms@always", "len-rms@always", "adam", "sign-gd")
#: the κ experiment: at one fixed cancelling saddle of each kind (the cell's base instance of depth H),
#: orthogonal label noise (rms per example) as a multiple of the clean residual rms at the stall;
#: six starts (initial draws) per level
KAPPA_CELLS = {"cancelling_strict": 1, "cancelling_nonstrict": 2}
KAPPA_LEVELS, KAPPA_REPLICATES = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), 6
KAPPA_METHODS = ("gd", "rms", "len-rms", "devarg", "len-devarg", "rms@always", "len-rms@always")

#: the smoke run (``--quick``)
QUICK = {"instances": 8, "control_instances": 1, "methods": ("gd", "rms", "len-rms", "adam"),
         "sweep_init": 2, "sweep_lr": 2, "sweep_replicates": 1, "kappa_levels": (0.0, 3.0, 30.0), "kappa_replicates": 1,
         "kappa_methods": ("gd", "rms", "len-rms")}


def horizon_for(theory_steps: float | None, order: int | None, default: int) -> int:
    """A run's horizon from its instance's theory.

    Args:
        theory_steps: the theoretical escape time (None for the controls).
        order: the escape path's order N (2: strict).
        default: the horizon when there is no theory.

    Returns:
        ⌈:data:`HORIZON_MULT`[N] × theory⌉, at least :data:`MIN_HORIZON`; ``default`` without theory.

    >>> horizon_for(40.0, 2, 600), horizon_for(200.25, 3, 600), horizon_for(None, None, 600)
    (120, 2003, 600)
    """
    if theory_steps is None:
        return int(default)
    return max(MIN_HORIZON, math.ceil(HORIZON_MULT[order] * theory_steps))


def sweep_base_index(cell: str, H: int) -> int:
    """The base instance of a cell for the sweep and κ: the first index whose draw has depth H.

    Args:
        cell: a W = 0 cell.
        H: the depth wanted.

    Returns:
        The index.

    >>> sweep_base_index("vanishing_strict", 1)
    0
    """
    for i in range(1000):
        if draw_design(CELLS[cell], instance_seed(cell, i), {})["H"] == H:
            return i
    raise ValueError(f"no instance of {cell} has H = {H}")


def kappa_noise_unit(cell: str, index: int) -> float:
    """The κ experiment's noise unit: the rms per example of the residual at the stall, √(2·L_1).

    Args:
        cell: a cell of :data:`KAPPA_CELLS`.
        index: its base instance.

    Returns:
        The rms (output units).
    """
    # with an override (here a zero one) an instance is never redrawn: the same draw as the experiment's
    return math.sqrt(2.0 * build_instance(cell, index, orth_noise=0.0).info["stall_value"])


def _job(part: str, cell: str, instance: int, setting: str, method: str, overrides: dict | None = None
         ) -> dict[str, Any]:
    return {"part": part, "cell": cell, "instance": int(instance), "setting": setting, "method": method,
            "overrides": dict(overrides or {})}


def plan(parts: Sequence[str] | None = None, *, quick: bool = False, instances: int | None = None,
         methods: Sequence[str] | None = None, cells: Sequence[str] | None = None, first: int = 0
         ) -> list[dict[str, Any]]:
    """The study's jobs, instance-major within each part (so a worker reuses its cached instance).

    Args:
        parts: a subset of :data:`PARTS` (None: all).
        quick: the smoke run (:data:`QUICK`).
        instances: instances per main cell (None: :data:`N_INSTANCES`, quick 2).
        methods: restrict the main and control parts to these labels (None: all).
        cells: restrict the main and control parts to these cells (None: all).
        first: the first instance index (``landscape study --seed``).

    Returns:
        Job dicts ``{part, cell, instance, setting, method, overrides}``.

    Raises:
        ValueError: an unknown part, cell or method.

    >>> len(plan(["main"], instances=2, methods=["gd", "rms"], cells=["vanishing_strict"]))
    4
    """
    parts = list(parts or PARTS)
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise ValueError(f"unknown part(s) {', '.join(bad)}; known: {', '.join(PARTS)}")
    labels = list(methods) if methods else (list(QUICK["methods"]) if quick else list(METHODS))
    bad = [m for m in labels if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; known: {', '.join(METHODS)}")
    wanted = list(cells) if cells else list(MAIN_CELLS + CONTROL_CELLS)
    bad = [c for c in wanted if c not in CELLS]
    if bad:
        raise ValueError(f"unknown cell(s) {', '.join(bad)}; known: {', '.join(CELLS)}")
    n_main = instances or (QUICK["instances"] if quick else N_INSTANCES)
    n_ctrl = QUICK["control_instances"] if quick else N_CONTROL_INSTANCES
    jobs: list[dict[str, Any]] = []
    if "main" in parts:
        for cell in (c for c in MAIN_CELLS if c in wanted):
            jobs += [_job("main", cell, first + i, "-", m) for i in range(n_main) for m in labels]
    if "control" in parts:
        for cell in (c for c in CONTROL_CELLS if c in wanted):
            jobs += [_job("control", cell, first + i, "-", m) for i in range(n_ctrl) for m in labels]
    if "sweep" in parts:
        sm = [m for m in SWEEP_METHODS if not quick or m in QUICK["methods"]]
        for cell, spec in SWEEP.items():
            base = sweep_base_index(cell, spec["H"])
            lrs = spec["lr_factor"][-QUICK["sweep_lr"]:] if quick else spec["lr_factor"]
            inits = spec["init"][:QUICK["sweep_init"]] if quick else spec["init"]
            reps = QUICK["sweep_replicates"] if quick else SWEEP_REPLICATES
            for f in lrs:
                for x in inits:
                    for r in range(reps):
                        ov = {"lr_factor": f, "init": x, "init_seed": instance_seed(cell, base) + 1000 * (r + 1)}
                        jobs += [_job("sweep", cell, base, f"lr{f:g}_init{x:g}_r{r}", m, ov) for m in sm]
    if "kappa" in parts:
        levels = QUICK["kappa_levels"] if quick else KAPPA_LEVELS
        reps = QUICK["kappa_replicates"] if quick else KAPPA_REPLICATES
        km = QUICK["kappa_methods"] if quick else KAPPA_METHODS
        for cell, H in KAPPA_CELLS.items():
            if quick and cell != "cancelling_strict":
                continue
            base = sweep_base_index(cell, H)
            unit = kappa_noise_unit(cell, base)
            for r in range(reps):
                for a in levels:
                    ov = {"orth_noise": a * unit, "init_seed": instance_seed(cell, base) + 1000 * (r + 1)}
                    jobs += [_job("kappa", cell, base, f"noise{a:g}_r{r}", m, ov) for m in km]
    return jobs


def tuning_jobs(cells: Sequence[str] = MAIN_CELLS, n: int = TUNING_INSTANCES) -> list[dict[str, Any]]:
    """The tuning runs: every tuned method × :data:`TUNING_GRID` × ``n`` tuning instances per cell
    (indices from :data:`TUNING_OFFSET`: never a test instance).

    Args:
        cells: the main cells to tune.
        n: tuning instances per cell.

    Returns:
        Job dicts (part ``"tune"``; ``setting`` names the step size).

    >>> {j["instance"] for j in tuning_jobs(["vanishing_strict"], 2)} == {100000, 100001}
    True
    """
    return [_job("tune", cell, TUNING_OFFSET + i, f"lr{lr:g}", m, {"_lr": lr})
            for cell in cells for i in range(n) for m in TUNED for lr in TUNING_GRID]
