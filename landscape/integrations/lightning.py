"""A PyTorch Lightning ``Callback`` that runs a :class:`landscape.StallMonitor` on ``trainer.fit``.

Usage::

    from landscape.integrations.lightning import StallMonitorCallback
    cb = StallMonitorCallback(nn.CrossEntropyLoss(), (X, y), out="runs/monitor")
    L.Trainer(max_steps=2000, callbacks=[cb]).fit(module, loader)
    cb.monitor.stalls            # the records; cb.monitor.report("runs/monitor/report.html")

The monitor is built in ``on_train_start`` on the ``LightningModule`` (its ``forward`` is the
model; ``loss_fn`` / ``data`` as in :class:`~landscape.StallMonitor`) with the trainer's first
optimizer. ``on_train_batch_end`` passes the step's loss (``outputs["loss"]``, averaged over the
micro-batches of an accumulated step) and batch once per optimizer step (when
``trainer.global_step`` advances). With a ``TensorBoardLogger`` the monitor's scalars go to its
writer too. The class is built on first access, so importing this module does not import
Lightning; ``lightning`` (or ``pytorch_lightning``) must be installed to use it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..monitor.stall_monitor import StallMonitor
from .tensorboard import TensorBoardSink

__all__ = ["StallMonitorCallback"]


def _lightning() -> Any:
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:
            import pytorch_lightning as pl
        except ImportError as exc:
            raise ImportError("StallMonitorCallback needs PyTorch Lightning: pip install lightning") from exc
    return pl


class _Mixin:
    """The callback's behaviour (mixed into a ``Callback`` subclass by :func:`callback_class`)."""

    def __init__(self, loss_fn: Any, data: Any, *, report: str | None = None, tensorboard: bool = True,
                 **monitor_kwargs: Any) -> None:
        super().__init__()
        self.loss_fn, self.data = loss_fn, data
        self.report_path, self.tensorboard = report, tensorboard
        self.monitor_kwargs = monitor_kwargs
        self.monitor: StallMonitor | None = None
        self._pending: list[float] = []
        self._last_step = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        opts = list(getattr(trainer, "optimizers", []) or [])
        kwargs = dict(self.monitor_kwargs)
        sinks = list(kwargs.pop("sinks", ()))
        writer = getattr(getattr(trainer, "logger", None), "experiment", None)
        if self.tensorboard and callable(getattr(writer, "add_scalar", None)):
            sinks.append(TensorBoardSink(writer))
        self.monitor = StallMonitor(pl_module, self.loss_fn, self.data, optimizer=opts[0] if opts else None,
                                    sinks=sinks, **kwargs)
        self._last_step = int(trainer.global_step)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.monitor is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            self._pending.append(float(loss.detach()))
        step = int(trainer.global_step)
        if step <= self._last_step:       # no optimizer step yet (gradient accumulation)
            return
        for _ in range(step - self._last_step):
            value = sum(self._pending) / len(self._pending) if self._pending else None
            self.monitor.step(value, batch=batch if len(self._pending) <= 1 else None)
        self._pending.clear()
        self._last_step = step

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None:
            return
        if self.report_path:
            self.monitor.report(self.report_path)
        self.monitor.close()


_CLASS: list[type] = []


def callback_class() -> type:
    """The ``StallMonitorCallback`` class (built once, importing Lightning).

    Returns:
        A subclass of Lightning's ``Callback``: ``StallMonitorCallback(loss_fn, data, *,
        report=None, tensorboard=True, **StallMonitor keywords)``; after ``fit`` its
        ``.monitor`` is the :class:`~landscape.StallMonitor`.

    Raises:
        ImportError: Lightning is not installed.

    Example (not run: it needs Lightning)::

        StallMonitorCallback = callback_class()
        trainer = L.Trainer(callbacks=[StallMonitorCallback(nn.MSELoss(), (X, Y))])
    """
    if not _CLASS:
        pl = _lightning()
        _CLASS.append(type("StallMonitorCallback", (_Mixin, pl.Callback), {
            "__doc__": "A Lightning Callback running a landscape.StallMonitor (see landscape.integrations.lightning).",
            "__module__": __name__}))
    return _CLASS[0]


def __getattr__(name: str) -> Any:
    if name == "StallMonitorCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
