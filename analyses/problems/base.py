"""What every zoo problem is made of: :class:`Problem`, and the seeded-model helpers its factories share."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from landscape import Objective
from synaprune import StallDetector, Trainer

Data = tuple[torch.Tensor, torch.Tensor]
#: methods that keep their own default step size instead of the problem's GD learning rate
OWN_LR = ("adam", "sfn")


@dataclass
class Problem:
    """One problem of the zoo.

    ``make_model(seed)`` → a fresh ``nn.Module`` (seeded default initialisation); ``loss_fn(outputs,
    targets)`` a mean-reduced criterion; ``data`` an ``(X, Y)`` pair; ``reduction`` how the
    :class:`~landscape.Objective` combines examples (``"sum"`` for the deep linear nets, whose
    theory uses ½Σ‖·‖², else ``"mean"``). ``reference(seed)`` → flat point (dim,) the problem is
    about (an analytic critical point, or the model's seeded initialisation); ``init(seed, eps)``
    = reference + eps·N(0, I) (seeded). ``global_min``: the global minimum value of the objective
    when theory gives it (else ``None``). ``reference_kind``: the kind of the reference point
    (``"non_strict_saddle"``, ``"strict_saddle"``, ``"init"``, …). ``hints``: defaults for
    analyses (``lr`` for gradient descent, ``span`` and ``normalization`` for surfaces; for the
    escape study ``eps``, ``max_steps``, ``quick_steps``, ``stall`` (a :class:`synaprune.StallDetector`),
    ``trainer`` (Trainer options of every method) and ``study`` (the (kind, cause) cell the
    reference point certifies, with its ``certificate`` and ``critical_value``)).
    """

    name: str
    description: str
    make_model: Callable[[int], nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    data: Data
    reference: Callable[[int], torch.Tensor]
    global_min: float | None = None
    dtype: torch.dtype = torch.float64
    reduction: str = "mean"
    reference_kind: str = "init"
    reference_loss: float | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def objective(self, seed: int = 0, device: torch.device | str | None = None) -> Objective:
        """The problem's objective.

        Args:
            seed: seed of the model's initialisation (``make_model(seed)``; its weights are not
                used by the objective's functions of θ, only its structure).
            device: where the data and computations live (default: the CPU).

        Returns:
            :class:`~landscape.Objective` over the problem's data, in its dtype and reduction.
        """
        return Objective.from_module(self.make_model(seed), self.loss_fn, self.data, dtype=self.dtype,
                                     device=device, reduction=self.reduction)

    def init(self, seed: int = 0, eps: float = 1e-2) -> torch.Tensor:
        """A start point near the reference point.

        Args:
            seed: seed of the reference (for problems whose reference is the seeded initialisation)
                and of the perturbation (drawn from ``seed + 7919``).
            eps: the perturbation's scale, a finite number ≥ 0 (0: the reference itself).

        Returns:
            ``reference(seed) + eps·N(0, I)``, shape (dim,), in the problem's dtype.

        Raises:
            ValueError: ``eps`` is negative, not finite or not a number.
        """
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        ref = self.reference(seed).to(self.dtype)
        g = torch.Generator().manual_seed(int(seed) + 7919)
        return ref + eps * torch.randn(ref.shape, generator=g, dtype=torch.float64).to(self.dtype)

    @property
    def n_examples(self) -> int:
        """The number of examples (rows of ``data[0]``)."""
        return int(self.data[0].shape[0])

    def trainer(self, method: str, seed: int = 0, *, lr: float | None = None, stall: Any = None,
                log_dir: str | None = None, progress: bool | None = False, meta: dict | None = None,
                **method_options: Any) -> Trainer:
        """A SynaPrune trainer on this problem.

        Args:
            method: a method of :data:`synaprune.METHODS` (``"gd"``, ``"synaprune-rms"``, …).
            seed: seed of the model (``make_model(seed)``) and of the trainer.
            lr: step size; default ``hints["lr"]``, except for methods with a step size of their
                own (:data:`OWN_LR`).
            stall: a :class:`synaprune.StallDetector`; default a fresh copy of ``hints["stall"]``
                (detectors carry state).
            log_dir: folder of the run's streaming log (default: none).
            progress: the trainer's progress bar.
            meta: extra fields for ``run.json``; the problem and seed are always recorded.
            **method_options: Trainer / method options, on top of ``hints["trainer"]`` (every
                method) and ``hints["method_options"][method]``.

        Returns:
            :class:`synaprune.Trainer` with the problem's model, data, reduction, dtype and global value.
        """
        if lr is None and method not in OWN_LR:
            lr = self.hints.get("lr")
        if stall is None and self.hints.get("stall") is not None:
            hint = self.hints["stall"]
            stall = StallDetector(**(hint.config() if isinstance(hint, StallDetector) else dict(hint)))
        # the model as given is the cause's reference here (the shipped records were made so)
        opts = {"grad_scale_reference": "model", **(self.hints.get("trainer") or {}),
                **(self.hints.get("method_options") or {}).get(method, {}), **method_options}
        return Trainer(self.make_model(seed), self.loss_fn, self.data, method=method, lr=lr, seed=seed, stall=stall,
                       global_min=self.global_min, log_dir=None if log_dir is None else str(log_dir),
                       reduction=self.reduction, dtype=self.dtype, progress=progress,
                       meta={"problem": self.name, "problem_seed": seed, **(meta or {})}, **opts)


def sequential_mlp(widths: list[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    """Linear layers of ``widths`` with ``activation()`` between them (none after the last), built
    in order (so a seeded RNG initialises them in order).

    Args:
        widths: input, hidden and output widths, e.g. ``[64, 32, 8, 32, 64]``.
        activation: a module class or factory, e.g. ``nn.ReLU``.

    Returns:
        The ``nn.Sequential``.

    Example:
        >>> sequential_mlp([3, 4, 2], nn.Tanh)
        Sequential(
          (0): Linear(in_features=3, out_features=4, bias=True)
          (1): Tanh()
          (2): Linear(in_features=4, out_features=2, bias=True)
        )
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def seeded_module(builder: Callable[[], nn.Module], seed: int, dtype: torch.dtype) -> nn.Module:
    """Build a module with PyTorch's default initialisation drawn from ``seed``, leaving the global
    random state as it was.

    Args:
        builder: a function building the module (its parameters drawn from the global generator).
        seed: the seed the global generator is set to while ``builder`` runs.
        dtype: the module's parameter dtype.

    Returns:
        The module, cast to ``dtype``.

    >>> m = seeded_module(lambda: nn.Linear(2, 1), 0, torch.float64)
    >>> torch.equal(m.weight, seeded_module(lambda: nn.Linear(2, 1), 0, torch.float64).weight)
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return builder().to(dtype)


def init_reference(make_model: Callable[[int], nn.Module]) -> Callable[[int], torch.Tensor]:
    """The reference point of a problem without an analytic one: the model's seeded initialisation.

    Args:
        make_model: the problem's ``make_model(seed)``.

    Returns:
        ``reference(seed)`` → the trainable parameters of ``make_model(seed)``, flattened in
        parameter order, shape (dim,).
    """
    def reference(seed: int = 0) -> torch.Tensor:
        model = make_model(seed)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])
    return reference


def stall_detector(**options: Any) -> StallDetector:
    """A fresh stall detector for a problem's ``hints["stall"]`` (callers copy it per run).

    Args:
        **options: keyword arguments of :class:`synaprune.StallDetector` (``window``, ``rel_tol``,
            ``grad_tol``, ``grad_rel``, …).

    Returns:
        The detector.
    """
    return StallDetector(**options)
