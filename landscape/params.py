"""The map between a flat parameter vector and named parameter tensors."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and flat offsets of a model's trainable parameters.

    The flat order is the order of ``model.named_parameters()``; each tensor is laid out
    row-major (``tensor.reshape(-1)``).
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def dim(self) -> int:
        return sum(self.numels)

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, n in zip(self.names, self.numels):
            out[name] = slice(start, start + n)
            start += n
        return out

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``theta`` (shape ``(dim,)``) with each parameter's shape."""
        # torch.split (not slicing) keeps forward-over-reverse AD working through functional_call.
        parts = torch.split(theta, self.numels)
        return {name: part.view(shape) for name, shape, part in zip(self.names, self.shapes, parts)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate named tensors into one flat vector in this spec's order."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"missing parameters: {missing}")
        for name, shape in zip(self.names, self.shapes):
            if tuple(tensors[name].shape) != tuple(shape):
                raise ValueError(f"parameter {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(shape)}")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def locate(self, index: int) -> str:
        """Name of the parameter tensor holding flat coordinate ``index``."""
        for name, sl in self.slices.items():
            if sl.start <= index < sl.stop:
                return name
        raise IndexError(index)
