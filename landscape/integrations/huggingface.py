"""A Hugging Face ``transformers.TrainerCallback`` that runs a :class:`landscape.StallMonitor`.

Usage::

    from landscape.integrations.huggingface import StallMonitorHFCallback
    cb = StallMonitorHFCallback(lambda m, b: m(**b).loss, eval_batches, loss_form="batch")
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    cb.monitor.stalls

Read-only, as HF's callback contract requires: it never touches ``control``, the model, the
optimizer or the data. The monitor is built in ``on_train_begin`` on the trainer's model and
optimizer. HF calls ``on_step_end`` after ``model.zero_grad()`` and passes no loss, so the
callback reads the training loss from the model's own outputs: a forward hook (which returns
nothing, so the outputs are untouched) records ``outputs.loss`` of every forward pass in
training mode with gradients on, and ``on_step_end`` hands their mean over the step's
micro-batches to ``monitor.step``. A model whose outputs carry no loss (a custom
``compute_loss``) gives the monitor no loop loss: it then detects from its own checks only
(slower to notice a plateau; a warning says so once). The class is built on first access, so
importing this module does not import ``transformers``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..monitor.stall_monitor import StallMonitor

__all__ = ["StallMonitorHFCallback"]


def _loss_of(outputs: Any) -> torch.Tensor | None:
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None


class _Mixin:
    """The callback's behaviour (mixed into a ``TrainerCallback`` subclass by :func:`callback_class`)."""

    def __init__(self, loss_fn: Any, data: Any, *, report: str | None = None, **monitor_kwargs: Any) -> None:
        super().__init__()
        self.loss_fn, self.data, self.report_path = loss_fn, data, report
        self.monitor_kwargs = monitor_kwargs
        self.monitor: StallMonitor | None = None
        self._losses: list[float] = []
        self._hook: Any = None
        self._warned = False

    def _record(self, module: Any, args: Any, outputs: Any) -> None:
        if module.training and torch.is_grad_enabled():
            loss = _loss_of(outputs)
            if loss is not None:
                self._losses.append(float(loss.detach()))

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        if model is None:
            raise ValueError("StallMonitorHFCallback: the trainer passed no model to on_train_begin")
        self.monitor = StallMonitor(model, self.loss_fn, self.data, optimizer=optimizer, **self.monitor_kwargs)
        self._hook = model.register_forward_hook(self._record)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is None:
            return
        value = sum(self._losses) / len(self._losses) if self._losses else None
        if value is None and not self._warned:
            self._warned = True
            warnings.warn("StallMonitorHFCallback: the model's outputs carry no loss; the monitor detects from its "
                          "own checks only", RuntimeWarning, stacklevel=2)
        self._losses.clear()
        self.monitor.step(value)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.monitor is not None:
            if self.report_path:
                self.monitor.report(self.report_path)
            self.monitor.close()


_CLASS: list[type] = []


def callback_class() -> type:
    """The ``StallMonitorHFCallback`` class (built once, importing ``transformers``).

    Returns:
        A subclass of ``transformers.TrainerCallback``: ``StallMonitorHFCallback(loss_fn, data, *,
        report=None, **StallMonitor keywords)``; after ``train`` its ``.monitor`` is the
        :class:`~landscape.StallMonitor`.

    Raises:
        ImportError: transformers is not installed.

    Example (not run: it needs transformers)::

        StallMonitorHFCallback = callback_class()
        Trainer(model=model, args=args, train_dataset=ds, callbacks=[StallMonitorHFCallback(loss, batches,
                                                                                            loss_form="batch")])
    """
    if not _CLASS:
        try:
            from transformers import TrainerCallback
        except ImportError as exc:
            raise ImportError("StallMonitorHFCallback needs transformers: pip install transformers") from exc
        _CLASS.append(type("StallMonitorHFCallback", (_Mixin, TrainerCallback), {
            "__doc__": "A transformers TrainerCallback running a landscape.StallMonitor "
                       "(see landscape.integrations.huggingface).",
            "__module__": __name__}))
    return _CLASS[0]


def __getattr__(name: str) -> Any:
    if name == "StallMonitorHFCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
