"""JSON serialisation and compact reprs shared by every result dataclass.

Tensors and arrays become nested lists, non-finite floats become ``None`` (strict JSON has no
``inf``/``nan``), nested dataclasses become dicts. Files are written with sorted keys and, where a
``digits`` is given, floats rounded to that many significant digits, so that a rerun with the same
seed writes the same bytes (tracked outputs stay byte-identical).

Every :class:`JsonResult` subclass gets a compact ``repr``: arrays, tensors and long lists are
summarised by shape, dtype and range instead of printed element by element.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .defaults import REPR_MAX_ITEMS


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into plain JSON types (recursively).

    Args:
        value: dataclasses, tensors, arrays, numbers, dicts, lists, paths, dtypes, ...

    Returns:
        Plain JSON types; non-finite floats become None.

    Example:
        >>> import torch
        >>> to_jsonable({"a": torch.tensor([1.0, float("nan")]), "b": (1, 2)})
        {'a': [1.0, None], 'b': [1, 2]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    return value


def round_sig(value: Any, digits: int) -> Any:
    """THE significant-digit rounding of landscape's written results.

    Args:
        value: plain JSON types. digits: significant digits.

    Returns:
        ``value`` with every float rounded to ``digits`` significant digits (recursively); ints,
        bools, strings and ``None`` unchanged.

    Example:
        >>> round_sig({"x": 3.14159, "n": [2, 0.000123456]}, 3)
        {'x': 3.14, 'n': [2, 0.000123]}
    """
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if value == 0.0 or not math.isfinite(value):
            return value
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: round_sig(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_sig(v, digits) for v in value]
    return value


def dumps_stable(value: Any, *, digits: int | None = None, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` with sorted keys: the same input always gives the same bytes.

    Args:
        value: anything :func:`to_jsonable` takes. digits: round floats to this many significant
            digits (None: as they are). indent: JSON indentation.

    Returns:
        The text, ending in a newline.

    Example:
        >>> print(dumps_stable({"b": 1.23456, "a": None}, digits=2, indent=None), end="")
        {"a": null, "b": 1.2}
    """
    data = to_jsonable(value)
    if digits is not None:
        data = round_sig(data, digits)
    return json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | Path, value: Any, *, digits: int | None = None) -> Path:
    """Write :func:`dumps_stable` of ``value`` to ``path`` (parents created).

    Args:
        path: the file. value: the content. digits: see :func:`dumps_stable`.

    Returns:
        The path.

    Example:
        >>> import pathlib, tempfile
        >>> p = write_json(pathlib.Path(tempfile.mkdtemp()) / "r.json", {"x": 1.23456}, digits=3)
        >>> print(p.read_text(), end="")
        {
          "x": 1.23
        }
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_stable(value, digits=digits), encoding="utf-8")
    return path




def _summary(value: Any) -> str:
    """A short description of one field value for :meth:`JsonResult.__repr__`."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.numel() <= 1:
            return f"tensor({value.item() if value.numel() else '[]'}, dtype={value.dtype})"
        arr = value.cpu().numpy() if value.dtype == torch.bool else value.double().cpu().numpy()
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}{_range(arr)})"
    if isinstance(value, np.ndarray):
        if value.size <= 1:
            return repr(value.tolist())
        return f"array(shape={value.shape}, dtype={value.dtype}{_range(value)})"
    if isinstance(value, (list, tuple)) and len(value) > REPR_MAX_ITEMS:
        kinds = {type(v).__name__ for v in value}
        kind = kinds.pop() if len(kinds) == 1 else "items"
        nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        rng = _range(np.asarray(nums, dtype=np.float64)) if len(nums) == len(value) else ""
        return f"[{len(value)} {kind}{'s' if not kind.endswith('s') else ''}{rng}]"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (np.ndarray, torch.Tensor)) for v in value):
        inner = ", ".join(_summary(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict) and len(value) > REPR_MAX_ITEMS:
        return f"{{{len(value)} keys: {', '.join(map(str, list(value)[:3]))}, ...}}"
    return repr(value)


def _range(a: np.ndarray) -> str:
    if a.dtype.kind == "b":
        return f", {int(a.sum())} true"
    if a.dtype.kind not in "fiu" or a.size == 0:
        return ""
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if finite.size == 0:
        return ", all non-finite"
    return f", min={float(finite.min()):.4g}, max={float(finite.max()):.4g}"


def _compact_repr(self: Any) -> str:
    if not dataclasses.is_dataclass(self):
        return object.__repr__(self)
    parts = [f"{f.name}={_summary(getattr(self, f.name))}" for f in dataclasses.fields(self) if f.repr]
    return f"{type(self).__name__}({', '.join(parts)})"


class JsonResult:
    """Mixin for result dataclasses: ``to_dict()``, ``save_json(path)`` and a compact ``repr``.

    Example:
        >>> import dataclasses, torch
        >>> @dataclasses.dataclass(frozen=True)
        ... class R(JsonResult):
        ...     x: float
        ...     v: torch.Tensor
        >>> r = R(1.5, torch.zeros(100))
        >>> r.to_dict()["x"], repr(r)
        (1.5, 'R(x=1.5, v=tensor(shape=(100,), dtype=torch.float32, min=0, max=0))')
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Set before @dataclass runs: the decorator keeps a __repr__ already in the class dict, so
        # results holding arrays print their shapes, not their thousands of elements.
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = _compact_repr  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (:func:`to_jsonable`)."""
        return to_jsonable(self)

    def to_json(self, **kwargs: Any) -> str:
        """``json.dumps(self.to_dict(), **kwargs)``."""
        return json.dumps(self.to_dict(), **kwargs)

    def save_json(self, path: str | Path, *, digits: int | None = None) -> Path:
        """Write ``to_dict()`` as strict JSON with sorted keys.

        Args:
            path: the file. digits: round floats to that many significant digits (for tracked
                outputs, so reruns give the same bytes).

        Returns:
            The path.
        """
        return write_json(path, self.to_dict(), digits=digits)


def read_jsonl(path: str | Path) -> list[Any]:
    """Every complete JSON line of ``path`` (missing file → []; blank lines and a line torn by a
    kill are skipped, so a file being appended to can always be read).

    Args:
        path: the file.

    Returns:
        The parsed lines.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
        >>> _ = p.write_text('{"a": 1}' + chr(10) * 2 + '{"a": 2}' + chr(10) + '{"a": 3', encoding="utf-8")  # torn end
        >>> read_jsonl(p)
        [{'a': 1}, {'a': 2}]
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
