"""The interface every update rule and baseline implements."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .access import DataAccess


@dataclass
class StepContext:
    """What a rule sees at one step.

    ``theta`` (dim,), full-batch ``loss`` and ``grad`` (dim,) at ``theta``; ``lr`` the step size;
    ``batch_size`` (None = full batch); ``info`` is filled by the rule (e.g. ``"perturbed"``,
    ``"stop"``, ``"return_theta"``) and read by the trainer.
    """

    step: int
    theta: torch.Tensor
    loss: float
    grad: torch.Tensor
    lr: float
    access: DataAccess
    generator: torch.Generator
    batch_size: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def grad_norm(self) -> float:
        return float(torch.linalg.vector_norm(self.grad))

    def step_grad(self) -> torch.Tensor:
        """The gradient a first-order step uses: full batch, or a fresh minibatch's estimate."""
        if self.batch_size is None or self.batch_size >= self.access.n:
            return self.grad
        idx = self.access.sample(self.batch_size)
        return self.access.minibatch_loss_and_grad(self.theta, idx)[1]

    def example_indices(self) -> torch.Tensor | None:
        """Examples a per-example rule aggregates over: all (None) or a fresh minibatch."""
        if self.batch_size is None or self.batch_size >= self.access.n:
            return None
        return self.access.sample(self.batch_size)


class UpdateRule:
    """One optimisation method. Subclasses set ``name``, ``DEFAULTS`` (their options and default
    values) and implement :meth:`step` returning the next flat parameter vector."""

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: True for rules that aggregate per-example gradients (their cost is counted per example)
    per_example: ClassVar[bool] = False
    #: True for SynaPrune rules (they support mode="at_stalls" / "always")
    synaprune: ClassVar[bool] = False
    #: True for escape-phase controls that scale their own phase steps (:meth:`phase_step`): the
    #: trainer then applies neither decay nor cap (``gd-matched``)
    own_phase_scaling: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            allowed = ", ".join(sorted(self.DEFAULTS)) or "none"
            raise TypeError(f"method {self.name!r} got unknown option(s) {unknown}; its options are: {allowed}")
        self.options = {**self.DEFAULTS, **options}
        for key, value in self.options.items():
            setattr(self, key, value)
        self.validate()
        self.reset()

    def validate(self) -> None:
        """Check option values (raise ``ValueError`` naming the option)."""

    def reset(self) -> None:
        """Clear internal state (moments, timers)."""

    def prepare(self, access: DataAccess) -> None:
        """Check the model/data once before training (raise on models the rule cannot handle)."""

    def setup(self, info: dict[str, Any]) -> None:
        """Called by the trainer at the start of every run, after :meth:`reset`, with ``lr``,
        ``grad_tol``, ``dim``, ``n``, ``loss0`` (L(θ_0)), ``global_min`` and ``hessian_lipschitz``
        (rules whose thresholds depend on the run derive them here)."""

    def derived(self) -> dict[str, Any]:
        """Values the rule derived in :meth:`setup` (stored with its options in the run)."""
        return {}

    def step(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def phase_step(self, ctx: StepContext, k: int, limit: float | None) -> torch.Tensor:  # pragma: no cover
        """Step ``k`` of an escape phase, for rules with :attr:`own_phase_scaling` only."""
        raise NotImplementedError(f"{self.name!r} does not scale its own phase steps")


def positive(name: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive (or non-negative) finite number."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"option {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
