"""The interface every update rule and baseline implements: :class:`UpdateRule` (options, per-run
setup, one step) and the :class:`StepContext` it is handed at each step.

A new rule: subclass :class:`UpdateRule`, set ``name`` and ``DEFAULTS``, implement :meth:`step`
(and :meth:`validate` / :meth:`prepare` / :meth:`setup` as needed), then register the class in
:data:`synaprune.config.METHODS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .access import DataAccess


@dataclass
class StepContext:
    """What a rule sees at one step.

    Args:
        step: the step index t.
        theta: θ_t, shape (dim,).
        loss: the full-batch loss at θ_t.
        grad: the full-batch gradient at θ_t, shape (dim,).
        lr: the step size.
        access: the data (minibatches, per-example gradients) and cost counters.
        generator: the run's random generator (all of a rule's randomness).
        batch_size: minibatch size (None = full batch).
        info: filled by the rule and read by the trainer (``"perturbed"``, ``"ncd_step"``,
            ``"stop"``, ``"return_theta"``, ``"matched_length_raw"``, ...); the trainer puts the
            detector's ``"grad_tol"`` in it.

    Example:
        >>> import torch
        >>> ctx = StepContext(step=3, theta=torch.zeros(2), loss=1.0, grad=torch.tensor([3.0, 4.0]), lr=0.1,
        ...                   access=None, generator=torch.Generator())
        >>> ctx.grad_norm, ctx.step_grad() is ctx.grad, ctx.example_indices()   # full batch
        (5.0, True, None)
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
        """‖grad‖ (full batch)."""
        return float(torch.linalg.vector_norm(self.grad))

    def step_grad(self) -> torch.Tensor:
        """The gradient a first-order step uses.

        Returns:
            ``grad`` (full batch), or a fresh minibatch's unbiased estimate, shape (dim,).
        """
        if self.batch_size is None or self.batch_size >= self.access.n:
            return self.grad
        idx = self.access.sample(self.batch_size)
        return self.access.minibatch_loss_and_grad(self.theta, idx)[1]

    def example_indices(self) -> torch.Tensor | None:
        """Examples a per-example rule aggregates over.

        Returns:
            None (all examples) or a fresh minibatch's indices, shape (batch_size,).
        """
        if self.batch_size is None or self.batch_size >= self.access.n:
            return None
        return self.access.sample(self.batch_size)


class UpdateRule:
    """One optimisation method. Subclasses set ``name``, ``DEFAULTS`` (their options and default
    values) and implement :meth:`step` returning the next flat parameter vector.

    Args:
        **options: the method's options (keys of ``DEFAULTS``); each becomes an attribute.

    Raises:
        TypeError: an unknown option (the message lists the method's options).
        ValueError: a bad option value (from :meth:`validate`).

    Example:
        >>> class Halve(UpdateRule):
        ...     name, DEFAULTS = "halve", {"factor": 0.5}
        ...     def step(self, ctx):
        ...         return ctx.theta * self.factor
        >>> Halve(factor=0.25).options
        {'factor': 0.25}
    """

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
        """Check option values.

        Raises:
            ValueError: naming the option.
        """

    def reset(self) -> None:
        """Clear internal state (moments, timers): called at construction and at every ``fit``."""

    def prepare(self, access: DataAccess) -> None:
        """Check the model and data once, when the trainer is built.

        Args:
            access: the trainer's data access (model, data, loss).

        Raises:
            TypeError: a model or data the rule cannot handle.
        """

    def setup(self, info: dict[str, Any]) -> None:
        """Called by the trainer at the start of every run, after :meth:`reset` (rules whose
        thresholds depend on the run derive them here).

        Args:
            info: ``lr``, ``grad_tol`` (the detector's gradient threshold at θ_0), ``dim``, ``n``,
                ``loss0`` (L(θ_0)), ``global_min`` and ``hessian_lipschitz`` (1 when unset).
        """

    def derived(self) -> dict[str, Any]:
        """Values the rule derived in :meth:`setup`.

        Returns:
            A JSON-able dict, stored with the options in the run (empty by default).
        """
        return {}

    def step(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - abstract
        """One step.

        Args:
            ctx: the step's context (θ_t, loss, gradient, step size, data, generator).

        Returns:
            θ_{t+1}, shape (dim,), in θ_t's dtype.
        """
        raise NotImplementedError

    def phase_step(self, ctx: StepContext, k: int, limit: float | None) -> torch.Tensor:  # pragma: no cover
        """Step ``k`` of an escape phase, for rules with :attr:`own_phase_scaling` only.

        Args:
            ctx: the step's context.
            k: the phase step (0 at the snapshot θ̃).
            limit: the trainer's step cap, parameter units (None: no cap).

        Returns:
            θ_{k+1}, shape (dim,).
        """
        raise NotImplementedError(f"{self.name!r} does not scale its own phase steps")


def positive(name: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False) -> None:
    """Check an option value.

    Args:
        name: the option's name (for the message).
        value: the value.
        allow_zero: accept 0.
        allow_none: accept None.

    Raises:
        ValueError: ``value`` is not a positive (or, with ``allow_zero``, non-negative) finite
            number.

    Example:
        >>> positive("radius", 0.1); positive("sigma", 0.0, allow_zero=True)
        >>> positive("radius", -1.0)
        Traceback (most recent call last):
        ...
        ValueError: option radius must be a positive number, got -1.0
    """
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"option {name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
