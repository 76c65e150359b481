"""Controls that separate a SynaPrune rule's step *length* from its *direction*.

- ``gd-matched`` (:class:`synaprune.rules.GDMatched`): only the first step of an escape phase has
  the rule's length (the earlier control, kept for the digits comparison).
- ``gd-length-matched`` (:class:`LengthMatchedGD`): **every** step has the length the matched rule
  would take at the current point, along GD's direction. In mode ``"at_stalls"`` its phase steps go
  through the same decay and cap as the rule's (:meth:`synaprune.escape_phase.EscapeProtocol.step`),
  so step k of a phase has exactly the rule's length after decay and cap at that point; in mode
  ``"always"`` every step is lr·‖A(θ)‖ along −∇L/‖∇L‖. A rule that beats this control does so by
  its direction, not by its step length.
"""
from __future__ import annotations

import torch

from .base import StepContext, UpdateRule
from .rules import TIE_BREAKS, _check_p, aggregate_direction, step_of_length


class LengthMatchedGD(UpdateRule):
    """``gd-length-matched``: the whole-phase step-length control of an aggregation rule.

    Each step computes the matched rule's aggregated direction A(θ) at the current point
    (:func:`synaprune.rules.aggregate_direction`: ``match`` = ``"synaprune-rms"`` (default, with
    ``p`` and ``tie_break``) or ``"synaprune-devarg"``) and moves lr·‖A(θ)‖ along −∇L(θ)/‖∇L(θ)‖
    (a seeded random unit direction when ∇L = 0 exactly). Inside an escape phase the trainer then
    applies the rule's decay and cap to this step, as it does to the rule's own (module docstring).
    The n per-example gradients of every step are counted in its cost, as the rule's are.

    Args:
        match: ``"synaprune-rms"`` (default) or ``"synaprune-devarg"``.
        p: the matched rms rule's exponent (default 2).
        tie_break: the matched rule's tie-break (default ``"argmax"``).
        chunk_size: examples per chunk for A (None: all at once).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import Objective
        >>> from synaprune.access import DataAccess
        >>> from synaprune.base import StepContext
        >>> X = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        >>> Y = torch.tensor([[3.0], [-1.0]], dtype=torch.float64)
        >>> obj = Objective.from_module(nn.Linear(1, 1, bias=False).double(), nn.MSELoss(), (X, Y))
        >>> acc = DataAccess(obj, nn.MSELoss(), torch.Generator())
        >>> th = torch.zeros(1, dtype=torch.float64)
        >>> loss, g = obj.loss_and_grad(th)
        >>> ctx = StepContext(step=0, theta=th, loss=loss, grad=g, lr=0.1, access=acc, generator=torch.Generator())
        >>> new = LengthMatchedGD().step(ctx)   # g_i = −6, −2: rms length √20 = 4.47, GD's direction +1
        >>> round(float(new), 4), round(ctx.info["matched_length"], 4)
        (0.4472, 0.4472)
    """

    name = "gd-length-matched"
    synaprune = True
    per_example = True
    DEFAULTS = {"match": "synaprune-rms", "p": 2, "tie_break": "argmax", "chunk_size": None}
    MATCHABLE = {"synaprune-rms": "rms", "synaprune-devarg": "devarg"}

    def validate(self) -> None:
        if self.match not in self.MATCHABLE:
            raise ValueError(f"option match must be one of {sorted(self.MATCHABLE)}, got {self.match!r}")
        self.p = _check_p(self.p)
        if self.tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {self.tie_break!r}; choose one of {TIE_BREAKS}")

    def matched_length(self, ctx: StepContext) -> float:
        """The matched rule's step length at ``ctx.theta``, lr·‖A(θ)‖ (before any decay or cap).

        Args:
            ctx: the step's context.

        Returns:
            The length, parameter units.

        Example:
            >>> LengthMatchedGD.MATCHABLE["synaprune-devarg"]
            'devarg'
        """
        A = aggregate_direction(ctx.access, ctx.theta, self.MATCHABLE[self.match], idx=ctx.example_indices(),
                                p=self.p, tie_break=self.tie_break, generator=ctx.generator,
                                chunk_size=self.chunk_size)
        return ctx.lr * float(torch.linalg.vector_norm(A))

    def step(self, ctx: StepContext) -> torch.Tensor:
        length = self.matched_length(ctx)
        ctx.info["matched_length"] = length
        return step_of_length(ctx, length)
