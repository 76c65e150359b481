"""The map between a flat parameter vector and named parameter tensors."""
from __future__ import annotations

from dataclasses import dataclass

from fnmatch import fnmatchcase

import torch


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and flat offsets of a model's trainable parameters.

    The flat order is the order of ``model.named_parameters()``; each tensor is laid out
    row-major (``tensor.reshape(-1)``).

    Attributes:
        names: parameter names in flat order. shapes: their shapes.

    Example:
        >>> import torch
        >>> spec = ParamSpec(names=("w", "b"), shapes=(torch.Size([2, 3]), torch.Size([2])))
        >>> spec.dim, spec.slices["b"], spec.locate(6)
        (8, slice(6, 8, None), 'b')
        >>> spec.unflatten(torch.arange(8.0))["w"].tolist()
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        """Number of entries of each parameter."""
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def dim(self) -> int:
        """Total number of entries (the flat vector's length)."""
        return sum(self.numels)

    @property
    def slices(self) -> dict[str, slice]:
        """``{name: slice of the flat vector}``."""
        out, start = {}, 0
        for name, n in zip(self.names, self.numels):
            out[name] = slice(start, start + n)
            start += n
        return out

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector with each parameter's shape.

        Args:
            theta: shape ``(dim,)``.

        Returns:
            ``{name: view}`` in flat order.
        """
        # torch.split (not slicing) keeps forward-over-reverse AD working through functional_call.
        parts = torch.split(theta, self.numels)
        return {name: part.view(shape) for name, shape, part in zip(self.names, self.shapes, parts)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate named tensors into one flat vector in this spec's order.

        Args:
            tensors: ``{name: tensor of that parameter's shape}`` (extra names ignored).

        Returns:
            Shape ``(dim,)``.

        Raises:
            KeyError: a missing name. ValueError: a wrong shape.
        """
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"missing parameters: {missing}")
        for name, shape in zip(self.names, self.shapes):
            if tuple(tensors[name].shape) != tuple(shape):
                raise ValueError(f"parameter {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(shape)}")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def locate(self, index: int) -> str:
        """Name of the parameter tensor holding a flat coordinate.

        Args:
            index: a flat index in [0, dim).

        Returns:
            The parameter's name.
        """
        for name, sl in self.slices.items():
            if sl.start <= index < sl.stop:
                return name
        raise IndexError(index)


def select_parameters(named: list[tuple[str, "torch.nn.Parameter"]], params) -> list[str]:
    """Names of the parameters an objective is a function of, in ``named`` order.

    ``named``: ``model.named_parameters()`` as a list (tied parameters appear once, under their first
    name). ``params``: ``None`` (every parameter with ``requires_grad=True``), a name or glob pattern
    (``"fc.*"``, ``"*.bias"``; matched with :func:`fnmatch.fnmatchcase` against the full dotted name,
    and a bare module path ``"fc"`` also selects everything below it), an iterable of those, or a
    predicate ``(name, parameter) -> bool``. An explicit selection may include parameters with
    ``requires_grad=False``; a pattern that matches nothing is an error.

    Args:
        named: ``list(model.named_parameters())``.
        params: None, a pattern, patterns, or a predicate (see above).

    Returns:
        The selected names.

    Example:
        >>> from torch import nn
        >>> named = list(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)).named_parameters())
        >>> select_parameters(named, "*.bias"), select_parameters(named, "1")
        (['0.bias', '1.bias'], ['1.weight', '1.bias'])
    """
    if params is None:
        return [n for n, p in named if p.requires_grad]
    if callable(params) and not isinstance(params, str):
        return [n for n, p in named if bool(params(n, p))]
    patterns = [params] if isinstance(params, str) else list(params)
    if not all(isinstance(s, str) for s in patterns):
        raise TypeError("params must be None, a name/glob pattern, a list of them, or a predicate (name, param) -> bool")
    chosen = set()
    for pat in patterns:
        hits = [n for n, _ in named if fnmatchcase(n, pat) or n.startswith(pat + ".")]
        if not hits:
            raise ValueError(f"params pattern {pat!r} matches no parameter (names look like "
                             f"{', '.join(n for n, _ in named[:4])})")
        chosen.update(hits)
    return [n for n, _ in named if n in chosen]
