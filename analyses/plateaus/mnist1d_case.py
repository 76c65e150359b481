"""MNIST-1D (Greydanus 2020, the ``mnist1d`` package): an MLP and a small CNN.

Data: ``mnist1d.data.make_dataset(get_dataset_args())`` — generated procedurally from the
package's ten 1-D templates (seed 42 inside the package; 4 000 training and 1 000 test signals of
length 40), never the download path. The generator seeds numpy's and ``random``'s global state,
so it runs once per process with both saved and restored.

Models (written here; the shapes follow the package's published baselines):
- ``mlp``: 40-100-100-10, ReLU;
- ``cnn``: three Conv1d layers of 25 channels (kernel 5 stride 2 padding 1, then 3/2/1 twice:
  lengths 40 → 19 → 10 → 5), ReLU, then Linear(125, 10).
Published test accuracy: MLP ≈ 68 %, CNN ≈ 94 % (package README).

Training (the baselines' recipe): Adam, lr 1e-2, minibatches of 100 drawn with a seeded generator,
6 000 steps, cross-entropy, float32. ``init`` multiplies PyTorch's default initialisation (a small
initialisation puts the net on the class-prior plateau, at the training labels' entropy).
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import torch
from mnist1d.data import get_dataset_args, make_dataset
from torch import nn

import landscape as ls

from .core import Instance, seeded
from .saddles import class_entropy

CASE = "mnist1d"
PUBLISHED = {"mlp": 0.68, "cnn": 0.94}
DEFAULTS = {"name": "adam", "lr": 1e-2, "steps": 6000, "batch": 100}


@lru_cache(maxsize=1)
def _data_np():
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return d["x"], d["y"], d["x_test"], d["y_test"]


def data(dtype: torch.dtype = torch.float32):
    """(x, y, x_test, y_test) as tensors; x (4000, 40)."""
    x, y, xt, yt = _data_np()
    return (torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=torch.int64),
            torch.as_tensor(xt, dtype=dtype), torch.as_tensor(yt, dtype=torch.int64))


class CNN(nn.Module):
    def __init__(self, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.linear = nn.Linear(channels * 5, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))
        return self.linear(h.flatten(1))


def make_model(arch: str) -> nn.Module:
    if arch == "mlp":
        return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    if arch == "cnn":
        return CNN()
    raise ValueError(f"arch must be 'mlp' or 'cnn', got {arch!r}")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).double().mean())


def build(seed: int = 0, *, arch: str = "mlp", init: float = 1.0, optimiser: dict | None = None,
          dtype: torch.dtype = torch.float32) -> Instance:
    """MNIST-1D instance: ``arch`` ∈ {mlp, cnn}, default init × ``init``, seeded minibatches."""
    x, y, xt, yt = data(dtype)
    opt = {**DEFAULTS, **(optimiser or {})}

    def make() -> nn.Module:
        m = make_model(arch)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(init)
        return m

    model = seeded(make, seed, dtype)
    g = torch.Generator().manual_seed(100_000 + int(seed))
    bs = int(opt["batch"])
    ce = nn.CrossEntropyLoss()

    def batch(t: int):
        idx = torch.randint(0, x.shape[0], (bs,), generator=g)
        return x[idx], y[idx]

    def evaluate(m: nn.Module) -> float:
        with torch.no_grad():
            return float(ce(m(x), y))

    return Instance(case=f"{CASE}_{arch}", seed=seed, model=model, loss_fn=ce, batch=batch, optimiser=opt,
                    theory={"prior_entropy": class_entropy(y), "published_test_acc": PUBLISHED[arch]},
                    evaluate=evaluate,
                    objective=lambda m: ls.Objective.from_module(m, ce, (x, y), dtype=torch.float64),
                    probe=lambda n, pseed=0: (x[:n], y[:n]), online=True, eval_every=250,
                    info={"arch": arch, "test": (xt, yt), "train": (x, y)})
