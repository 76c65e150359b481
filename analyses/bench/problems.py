"""The benchmark's fixed problems: a seeded MLP and a seeded small CNN, CrossEntropy on synthetic data."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import landscape as ls


@dataclass
class BenchProblem:
    """The benchmark's model, data and objective (``theta`` is the seeded initial point)."""

    model: nn.Module
    loss_fn: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    obj: ls.Objective
    theta: torch.Tensor
    description: str


def seeded_problem(build_model: Callable[[], nn.Module], inputs: torch.Tensor, targets: torch.Tensor, *, seed: int,
                   dtype: torch.dtype, describe: Callable[[int], str]) -> BenchProblem:
    """A benchmark problem: the model built with PyTorch's default initialisation drawn from
    ``seed`` (the global random state left as it was), in eval mode, CrossEntropy on the data.

    Args:
        build_model: builds the model (float32 parameters; cast to ``dtype`` here).
        inputs: inputs (n, …), any float dtype (cast to ``dtype``).
        targets: class labels (n,).
        seed: the seed of the model's initialisation.
        dtype: the problem's dtype.
        describe: the description from the parameter count.

    Returns:
        :class:`BenchProblem` at the seeded initial point. Nothing is trained.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model().to(dtype).eval()
    inputs = inputs.to(dtype)
    loss_fn = nn.CrossEntropyLoss()
    obj = ls.Objective.from_module(model, loss_fn, (inputs, targets))
    return BenchProblem(model=model, loss_fn=loss_fn, inputs=inputs, targets=targets, obj=obj,
                        theta=obj.initial_point(), description=describe(obj.dim))


def make_problem(
    n_examples: int = 2000,
    sizes: tuple[int, ...] = (64, 256, 256, 10),
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> BenchProblem:
    """Seeded MLP ``sizes`` (ReLU) + CrossEntropy on synthetic examples.

    Args:
        n_examples: examples; inputs standard normal, shape (n_examples, sizes[0]).
        sizes: layer widths, input first; labels (``sizes[-1]`` classes) are the argmax of a random
            tanh teacher network with 32 hidden units.
        dtype: the problem's dtype.
        seed: seed of the data and of the model's initialisation.

    Returns:
        :class:`BenchProblem` at the seeded initialisation. Nothing is trained.

    Raises:
        ValueError: fewer than two sizes, a size < 1 or ``n_examples`` < 1.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least an input and an output width, got {sizes}")
    if n_examples < 1:
        raise ValueError(f"n_examples must be positive, got {n_examples}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_examples, sizes[0], generator=gen, dtype=torch.float64)
    w1 = torch.randn(sizes[0], 32, generator=gen, dtype=torch.float64) / math.sqrt(sizes[0])
    w2 = torch.randn(32, sizes[-1], generator=gen, dtype=torch.float64) / math.sqrt(32)
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)

    def build() -> nn.Module:
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    return seeded_problem(build, x, y, seed=seed, dtype=dtype, describe=lambda dim: (
        f"MLP {'-'.join(map(str, sizes))} (ReLU), CrossEntropy, {n_examples} synthetic examples "
        f"(teacher labels), seeded init (seed={seed}), {str(dtype).replace('torch.', '')}, dim={dim}"))


def make_cnn_problem(n_examples: int = 2000, *, dtype: torch.dtype = torch.float32, seed: int = 0) -> BenchProblem:
    """Seeded small CNN on 16×16 three-channel images: Conv2d(3, 16, 3, padding 1) + ReLU +
    Conv2d(16, 32, 3, stride 2) + ReLU + Linear(32·7·7, 10), CrossEntropy (dim 20 778).

    Args:
        n_examples: images, standard normal; labels the argmax of a random linear teacher.
        dtype: the problem's dtype.
        seed: seed of the data and of the model's initialisation.

    Returns:
        :class:`BenchProblem` at the seeded initialisation. Nothing is trained.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_examples, 3, 16, 16, generator=gen, dtype=torch.float64)
    y = (x.flatten(1) @ torch.randn(3 * 16 * 16, 10, generator=gen, dtype=torch.float64)).argmax(dim=1)
    return seeded_problem(
        lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10)),
        x, y, seed=seed, dtype=dtype, describe=lambda dim: (
            f"CNN conv3x3(3->16, pad 1)-ReLU-conv3x3(16->32, stride 2)-ReLU-linear(1568->10), CrossEntropy, "
            f"{n_examples} synthetic 3x16x16 images, seed={seed}, {str(dtype).replace('torch.', '')}, dim={dim}"))
