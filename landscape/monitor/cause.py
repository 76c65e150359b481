"""Why the mean gradient is small at a stall: its per-example gradients cancel, or they vanish.

At a stall the per-example gradients g_i = ∇ℓ_i (unscaled) give κ = ‖mean g_i‖ / mean‖g_i‖ and
the scale s = mean_i ‖g_i‖; against a *reference scale* r (mean‖g_i‖ at a generic point of the
same model) the ratio s/r says whether the g_i themselves have shrunk. Since
‖mean g_i‖ = κ · (s/r) · r exactly, κ and s/r split the orders of magnitude by which the mean
gradient lies below r; :func:`stall_cause` names the larger share (synaprune/README.md, "Stall
cause"). This module holds THE rule (:func:`stall_cause`, thresholds :data:`KAPPA_MAX`,
:data:`RATIO_MAX`), the reference scale (:func:`reference_grad_scale`) and the step from
cancellation statistics to a cause (:func:`estimate_cause`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..cancellation import cancellation_stats
from ..results import JsonResult

if TYPE_CHECKING:
    from ..objective import Objective

#: κ at or below this is "cancelling" (when κ is also the larger share): one order of magnitude
KAPPA_MAX = 0.1
#: mean‖g_i‖ / r at or below this is "vanishing" (when it is the larger share): one order of magnitude
RATIO_MAX = 0.1
#: where the reference scale may come from (besides a stated positive number, source "given")
REFERENCE_SOURCES: tuple[str, ...] = ("model", "initial", "default_init")


def stall_cause(kappa: float | None, ratio: float | None, *, kappa_max: float = KAPPA_MAX,
                ratio_max: float = RATIO_MAX) -> str | None:
    """Why the mean gradient is small at a stall (synaprune/README.md, "Stall cause").

    ‖mean g_i‖ = κ · ratio · r exactly (κ = ‖mean g_i‖/mean‖g_i‖, ratio = mean‖g_i‖/r for the
    reference scale r), so κ and ratio split the orders of magnitude by which the mean gradient
    lies below r. The cause is the factor that contributes more, if it is itself small.

    Args:
        kappa: κ ∈ [0, 1] (dimensionless), or None / nan when undefined (all g_i zero).
        ratio: mean‖g_i‖ / r (dimensionless), or None without a reference scale.
        kappa_max: threshold on κ (default :data:`KAPPA_MAX` = 0.1).
        ratio_max: threshold on the ratio (default :data:`RATIO_MAX` = 0.1).

    Returns:
        ``"cancelling"`` if κ ≤ ``kappa_max`` and κ ≤ ratio; ``"vanishing"`` if
        ratio ≤ ``ratio_max`` and ratio < κ; None otherwise (neither factor is an order of
        magnitude small). Without a reference (ratio None) only cancelling can be told. All-zero
        per-example gradients (ratio = 0, κ undefined) are vanishing.

    Example:
        >>> stall_cause(1e-3, 0.5), stall_cause(0.6, 2e-4), stall_cause(0.5, 0.5)
        ('cancelling', 'vanishing', None)
    """
    if ratio is not None and ratio == 0.0:
        return "vanishing"
    if kappa is None or not math.isfinite(kappa):
        return None
    if ratio is None or not math.isfinite(ratio):
        return "cancelling" if kappa <= kappa_max else None
    if kappa <= kappa_max and kappa <= ratio:
        return "cancelling"
    if ratio <= ratio_max and ratio < kappa:
        return "vanishing"
    return None


@dataclass(frozen=True)
class ReferenceScale(JsonResult):
    """The reference per-example gradient scale r of a run.

    Args:
        source: where r was measured: ``"model"`` (the model's own parameters, i.e. its
            initialisation), ``"initial"`` (the run's θ_0), ``"default_init"`` (a copy of the
            model re-initialised by its modules' ``reset_parameters``) or ``"given"`` (a stated
            number).
        value: r = mean_i ‖∇ℓ_i‖ there, in gradient units; None when it is unknown (not computed,
            or 0 at every point tried).
        n_per_example_grads: per-example gradients spent finding it (n per point tried).
        detail: for ``"default_init"``, which modules were re-initialised and which parameters
            kept their values (not part of :meth:`to_dict`, which is the records' form).

    ``to_dict()`` is the record's ``{"source", "value"}`` (run.json ``example_grad_scale_reference``
    and every event's ``cause_thresholds["reference"]``).

    Example:
        >>> ReferenceScale("given", 0.5).to_dict()
        {'source': 'given', 'value': 0.5}
    """

    source: str
    value: float | None
    n_per_example_grads: int = 0
    detail: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "value": self.value}


def default_init_point(obj: Objective, seed: int = 0) -> tuple[torch.Tensor, str]:
    """The objective's parameters as the model's own default initialisation would set them.

    A copy of the objective's model has every module that defines ``reset_parameters()``
    re-initialised (PyTorch's defaults for ``nn.Linear``, ``nn.Conv*``, ``nn.Embedding``,
    ``nn.LayerNorm``, ...), in module order, with the torch generator seeded by ``seed`` inside
    ``torch.random.fork_rng`` — the caller's random state is left as it was. Parameters owned by
    modules without ``reset_parameters`` keep their values (``detail`` names them).

    Args:
        obj: a model objective.
        seed: the seed of the re-initialisation.

    Returns:
        ``(theta, detail)``: the flat point, shape (dim,), and a one-line account of what was reset.

    Raises:
        ValueError: the objective has no model (a plain function).

    Example:
        >>> import torch, landscape as ls
        >>> m = torch.nn.Linear(4, 2).double()
        >>> with torch.no_grad():
        ...     _ = m.weight.mul_(1e-6)
        >>> obj = ls.Objective.from_module(m, torch.nn.MSELoss(), (torch.ones(3, 4, dtype=torch.float64),
        ...                                                          torch.ones(3, 2, dtype=torch.float64)))
        >>> theta, detail = default_init_point(obj)
        >>> bool(theta[:8].abs().max() > 1e-3), detail      # back at nn.Linear's own scale
        (True, 'reset_parameters of 1 module (Linear); every parameter re-initialised')
    """
    if obj.module is None:
        raise ValueError("default_init needs a model objective (from_module / from_batches)")
    module = copy.deepcopy(obj.module)
    reset: list[str] = []
    owned: set[str] = set()
    devices = sorted({p.device.index for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for name, m in module.named_modules():
            fn = getattr(m, "reset_parameters", None)
            if callable(fn):
                fn()
                reset.append(type(m).__name__)
                owned.update(f"{name}.{n}" if name else n for n, _ in m.named_parameters())
    params = dict(module.named_parameters())
    kept = [n for n in obj.param_names if n not in owned]
    kinds = sorted(set(reset))
    detail = (f"reset_parameters of {len(reset)} module{'s' if len(reset) != 1 else ''} ({', '.join(kinds)}); "
              + ("every parameter re-initialised" if not kept else f"kept as given: {', '.join(kept)}"))
    return obj.flatten_params({n: params[n] for n in obj.param_names}), detail


def reference_grad_scale(obj: Objective, theta0: torch.Tensor, source: str | float = "model", *,
                         chunk_size: int | None = None, seed: int = 0) -> ReferenceScale:
    """The reference per-example gradient scale r (synaprune/README.md, "Stall cause").

    With ``source="model"`` r = mean_i ‖∇ℓ_i‖ at the objective's own parameters
    (:meth:`Objective.initial_point`: a generic point at the architecture's initialisation scale);
    if that is 0 or non-finite (e.g. an all-zero model), at ``theta0``; value None if that is 0 too.
    ``"initial"`` measures at ``theta0`` only. ``"default_init"`` measures at
    :func:`default_init_point` (the model re-initialised by its modules' ``reset_parameters``,
    seeded by ``seed``): the scale the architecture's own initialisation gives, whatever scale the
    user started from (a run started at a small initialisation would otherwise call its own tiny
    gradients the reference, and a vanishing-gradient stall there would not read as one); if no
    module could be reset or the value is 0 there, it falls back like ``"model"``. A number is
    taken as r itself (source ``"given"``, nothing computed). Each point tried costs n
    per-example gradients.

    Args:
        obj: the objective (per-example gradients through :func:`landscape.cancellation_stats`).
        theta0: the run's initial point, shape (dim,).
        source: ``"model"``, ``"initial"``, ``"default_init"`` or a positive number (gradient units).
        chunk_size: per-example gradients per chunk (None: the objective's default).
        seed: the seed of ``"default_init"``'s re-initialisation.

    Returns:
        A :class:`ReferenceScale` (source actually used, value, per-example gradients spent).

    Example:
        >>> reference_grad_scale(None, None, 0.25)
        ReferenceScale(source='given', value=0.25, n_per_example_grads=0)
    """
    if not isinstance(source, str):
        return ReferenceScale("given", float(source))
    if source not in REFERENCE_SOURCES:
        raise ValueError(f"source must be one of {REFERENCE_SOURCES} or a positive number, got {source!r}")
    tried: list[tuple[str, torch.Tensor, str | None]] = []
    if source == "default_init":
        point, detail = default_init_point(obj, seed)
        if not detail.startswith("reset_parameters of 0 "):
            tried.append(("default_init", point, detail))
    if source in ("model", "default_init"):
        tried.append(("model", obj.initial_point(), None))
    tried.append(("initial", theta0, None))
    spent = 0
    for name, point, detail in tried:
        value = float(cancellation_stats(obj, point, chunk_size).mean_example_grad_norm)
        spent += obj.n_examples
        if value > 0 and math.isfinite(value):
            return ReferenceScale(name, value, spent, detail)
    return ReferenceScale(source, None, spent)


class _Cancellation(Protocol):
    kappa: float
    mean_example_grad_norm: float


@dataclass(frozen=True)
class CauseEstimate(JsonResult):
    """The cause of one stall and the numbers it rests on.

    Args:
        kappa: κ = ‖mean g_i‖ / mean‖g_i‖ (None when undefined: all g_i zero).
        example_grad_scale: s = mean_i ‖g_i‖, gradient units.
        example_grad_scale_ratio: s / r (None without a reference scale r).
        cause: :func:`stall_cause` of (κ, s/r): ``"cancelling"``, ``"vanishing"`` or None.

    Example: see :func:`estimate_cause`.
    """

    kappa: float | None
    example_grad_scale: float
    example_grad_scale_ratio: float | None
    cause: str | None


def estimate_cause(cancellation: _Cancellation, reference: float | None, *, kappa_max: float = KAPPA_MAX,
                   ratio_max: float = RATIO_MAX) -> CauseEstimate:
    """κ, the per-example scale, its ratio to the reference and the cause at one point.

    Args:
        cancellation: statistics at the point (a :class:`landscape.CancellationStats`, or anything
            with ``kappa`` and ``mean_example_grad_norm``).
        reference: the reference scale r (gradient units; :attr:`ReferenceScale.value`), or
            None / 0 when there is none.
        kappa_max: threshold on κ for :func:`stall_cause`.
        ratio_max: threshold on the ratio for :func:`stall_cause`.

    Returns:
        A :class:`CauseEstimate`.

    Example:
        >>> from types import SimpleNamespace
        >>> estimate_cause(SimpleNamespace(kappa=0.6, mean_example_grad_norm=2e-5), 0.1).cause
        'vanishing'
    """
    kappa = float(cancellation.kappa) if math.isfinite(cancellation.kappa) else None
    scale = float(cancellation.mean_example_grad_norm)
    ratio = None if not reference else scale / reference
    return CauseEstimate(kappa, scale, ratio, stall_cause(kappa, ratio, kappa_max=kappa_max, ratio_max=ratio_max))
