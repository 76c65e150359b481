"""What every plateau case provides, and the plain training loop they share.

A case module exposes ``build(seed, **options) -> Instance``: a fresh model, its mean-reduced loss,
where its batches come from (a fixed full batch, or a fresh sample each step for online learning),
the optimiser settings the case is defined with, an exact evaluation of the loss (full data or a
closed-form population loss), an exact :class:`landscape.Objective` for classifying points, a
probe batch for per-example gradient statistics, and theory's numbers. Everything is drawn from
``seed`` through private generators (no global RNG state is read or changed).

:func:`train` is a plain loop: one optimiser step per batch, then ``callback(StepInfo)``; a callback
that returns ``True`` stops the run (the hook for a stall monitor or an escape rule later).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import landscape as ls

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepInfo:
    """What the loop hands the callback after each optimiser step.

    ``loss``: the loss of the batch the step used, at the parameters before the step;
    ``grad_norm``: ‖∇‖ of that batch loss (same point); ``eval_loss``: the exact loss after the step
    when it was evaluated at this step (every ``eval_every`` steps), else None."""

    step: int
    loss: float
    grad_norm: float
    eval_loss: float | None
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass
class Instance:
    """One seeded problem instance of a plateau case (see the module docstring)."""

    case: str
    seed: int
    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batch: Callable[[int], Batch]
    optimiser: dict[str, Any]
    theory: dict[str, float]
    evaluate: Callable[[nn.Module], float]
    objective: Callable[[nn.Module], ls.Objective]
    probe: Callable[[int], Batch]
    online: bool = False
    eval_every: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def flat(self) -> torch.Tensor:
        """The model's parameters as one vector (the order of :meth:`objective`'s θ)."""
        return flat_params(self.model)

    def probe_objective(self, n: int, seed: int | None = None) -> ls.Objective:
        """Objective of the model's current parameters on ``n`` probe examples (per-example stats)."""
        x, y = self.probe(n) if seed is None else self.probe(n, seed)  # type: ignore[call-arg]
        return ls.Objective.from_module(self.model, self.loss_fn, (x, y))


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def load_flat(model: nn.Module, theta: torch.Tensor) -> None:
    """Write the vector ``theta`` into ``model``'s parameters (in ``model.parameters()`` order)."""
    i = 0
    with torch.no_grad():
        for p in model.parameters():
            k = p.numel()
            p.copy_(theta[i:i + k].view_as(p))
            i += k
    if i != theta.numel():
        raise ValueError(f"theta has {theta.numel()} entries, the model {i}")


def seeded(builder: Callable[[], nn.Module], seed: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    """``builder()`` under ``torch.manual_seed(seed)`` without touching the caller's RNG state
    (PyTorch's default initialisation, reproducible per seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return builder().to(dtype)


def make_optimizer(params, settings: dict[str, Any]) -> torch.optim.Optimizer:
    """``settings``: ``{"name": "gd"|"sgd"|"momentum"|"adam", "lr": …, "momentum": …, "betas": …}``."""
    name = settings.get("name", "gd")
    lr = float(settings["lr"])
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=float(settings.get("momentum", 0.9)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(settings.get("betas", (0.9, 0.999))))
    raise ValueError(f"unknown optimiser {name!r} (gd, sgd, momentum, adam)")


@dataclass
class Trace:
    """A run's record: per-step batch loss and gradient norm, exact loss every ``eval_every`` steps."""

    steps: int
    loss: list[float]
    grad_norm: list[float]
    eval_steps: list[int]
    eval_loss: list[float]
    seconds: float
    stopped_early: bool = False
    #: CPU time of this process over the run (single-threaded: the wall time it would take on an idle core)
    cpu_seconds: float = 0.0

    def first_below(self, level: float) -> int | None:
        """First evaluated step whose exact loss is ≤ ``level`` (None if never)."""
        for s, v in zip(self.eval_steps, self.eval_loss):
            if v <= level:
                return s
        return None


def train(inst: Instance, steps: int | None = None, *, optimiser: dict[str, Any] | None = None,
          optimizer: torch.optim.Optimizer | None = None, callback: Callable[[StepInfo], Any] | None = None,
          eval_every: int | None = None, stop_below: float | None = None) -> Trace:
    """Train ``inst.model`` in place for ``steps`` (default ``inst.optimiser["steps"]``).

    ``optimiser``: settings overriding the case's (:func:`make_optimizer`), or ``optimizer``: a ready
    torch optimiser over ``inst.model.parameters()`` (e.g. a SynaPrune rule). The exact loss is
    evaluated at step 0 and after every ``eval_every`` steps; ``stop_below``: stop once it is ≤ this.
    ``callback(StepInfo)`` runs after every step; returning True stops the run."""
    settings = dict(inst.optimiser)
    if optimiser:
        settings.update(optimiser)
    steps = int(settings["steps"] if steps is None else steps)
    every = int(eval_every or inst.eval_every)
    opt = optimizer or make_optimizer(inst.model.parameters(), settings)
    params = [p for p in inst.model.parameters() if p.requires_grad]
    tr = Trace(steps=0, loss=[], grad_norm=[], eval_steps=[0], eval_loss=[inst.evaluate(inst.model)], seconds=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(steps):
        x, y = inst.batch(t)
        opt.zero_grad(set_to_none=True)
        loss = inst.loss_fn(inst.model(x), y)
        loss.backward()
        gn = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
        opt.step()
        tr.loss.append(loss.item())
        tr.grad_norm.append(gn)
        tr.steps = t + 1
        ev = None
        if (t + 1) % every == 0 or t + 1 == steps:
            ev = inst.evaluate(inst.model)
            tr.eval_steps.append(t + 1)
            tr.eval_loss.append(ev)
        if callback is not None and callback(StepInfo(t + 1, tr.loss[-1], gn, ev, inst.model, opt)):
            tr.stopped_early = True
            break
        if ev is not None and stop_below is not None and ev <= stop_below:
            tr.stopped_early = True
            break
    tr.seconds = time.perf_counter() - t0
    tr.cpu_seconds = time.process_time() - c0
    return tr


def plateau_span(steps: list[int] | torch.Tensor, values: list[float] | torch.Tensor, level: float, *,
                 enter: float = 1.1, leave: float = 0.5) -> tuple[int | None, int | None]:
    """(entry, exit) of a plateau at loss ``level`` on a loss trace: entry = first step with loss
    ≤ enter·level, exit = first later step with loss ≤ leave·level (None when not reached). For a
    loss with an offset (a floor L* > 0) pass the gap to the floor."""
    entry = exit_ = None
    for s, v in zip(list(steps), [float(v) for v in values]):
        if entry is None and v <= enter * level:
            entry = int(s)
        if entry is not None and v <= leave * level:
            exit_ = int(s)
            break
    return entry, exit_


def plateau_level(steps, values, *, lo: float, hi: float, window: int = 5) -> tuple[float, int]:
    """The loss where the trace is flattest among the points with lo < loss < hi: the value at the
    smallest |Δloss| over ``window`` evaluation points (central difference). Returns (value, step).

    Theory-free: it reads the plateau off the trace and never looks at theory's number."""
    s = [int(a) for a in steps]
    v = [float(a) for a in values]
    best, at = math.inf, -1
    for i in range(window, len(v) - window):
        if not (lo < v[i] < hi):
            continue
        d = abs(v[i + window] - v[i - window])
        if d < best:
            best, at = d, i
    if at < 0:
        raise ValueError("no evaluation point between lo and hi")
    return v[at], s[at]
