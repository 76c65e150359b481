"""The monitor's records as TensorBoard scalars: :class:`TensorBoardSink`.

Pass it to a monitor (``StallMonitor(..., sinks=[TensorBoardSink("runs/tb")])``) or let the
Lightning callback make one from a ``TensorBoardLogger``. Scalars (``prefix`` = ``"monitor"``):
``monitor/check_loss`` and ``monitor/check_grad_norm`` at each check; ``monitor/sharpness``,
``monitor/sharpness_threshold`` and ``monitor/batch_sharpness`` at each sharpness row;
``monitor/stall_loss`` and ``monitor/stall_nearest_loss`` at each stall, with a text entry
``monitor/stall`` describing it. ``torch.utils.tensorboard`` (which needs the ``tensorboard``
package) is imported only when the sink makes its own writer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..monitor.records import describe_stall


class TensorBoardSink:
    """Write a monitor's checks, sharpness rows and stalls to TensorBoard.

    Args:
        target: a log folder (a ``torch.utils.tensorboard.SummaryWriter`` is made there) or any
            writer with ``add_scalar(tag, value, step)`` (and optionally ``add_text``, ``flush``,
            ``close``), e.g. a Lightning ``TensorBoardLogger.experiment``.
        prefix: the tag prefix (default ``"monitor"``).

    Raises:
        ImportError: a folder was given and ``tensorboard`` is not installed.

    Example:
        >>> class Writer:                       # anything with add_scalar works
        ...     def __init__(self): self.rows = []
        ...     def add_scalar(self, tag, value, step): self.rows.append((tag, value, step))
        >>> sink = TensorBoardSink(Writer())
        >>> sink.on_check({"step": 3, "loss": 0.5, "grad_norm": 0.01}); sink.writer.rows
        [('monitor/check_loss', 0.5, 3), ('monitor/check_grad_norm', 0.01, 3)]
    """

    def __init__(self, target: Any, prefix: str = "monitor") -> None:
        self._own = isinstance(target, (str, Path))
        if self._own:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("TensorBoardSink needs the tensorboard package: pip install tensorboard") from exc
            self.writer = SummaryWriter(str(target))
        else:
            if not callable(getattr(target, "add_scalar", None)):
                raise TypeError(f"target must be a folder or a writer with add_scalar, got {type(target).__name__}")
            self.writer = target
        self.prefix = prefix

    def _scalar(self, name: str, value: Any, step: int) -> None:
        if value is not None:
            self.writer.add_scalar(f"{self.prefix}/{name}", float(value), int(step))

    def on_check(self, row: dict[str, Any]) -> None:
        """A monitor check (loss and gradient norm at the checked point).

        Args:
            row: the check row.
        """
        self._scalar("check_loss", row.get("loss"), row["step"])
        self._scalar("check_grad_norm", row.get("grad_norm"), row["step"])

    def on_sharpness(self, row: dict[str, Any]) -> None:
        """A sharpness row.

        Args:
            row: the row.
        """
        self._scalar("sharpness", row.get("lambda_max"), row["step"])
        self._scalar("sharpness_threshold", row.get("threshold"), row["step"])
        self._scalar("batch_sharpness", row.get("batch_sharpness"), row["step"])

    def on_stall(self, record: dict[str, Any]) -> None:
        """A stall record.

        Args:
            record: the record.
        """
        self._scalar("stall_loss", record.get("loss"), record["step"])
        self._scalar("stall_nearest_loss", (record.get("nearest_critical") or {}).get("loss"), record["step"])
        add_text = getattr(self.writer, "add_text", None)
        if callable(add_text):
            add_text(f"{self.prefix}/stall", describe_stall(record), int(record["step"]))

    def close(self) -> None:
        """Flush (and close a writer this sink made)."""
        flush = getattr(self.writer, "flush", None)
        if callable(flush):
            flush()
        if self._own:
            self.writer.close()
