"""The digits ReLU autoencoder's plateau (the SynaPrune seed's kind of net, on scikit-learn's
bundled 8×8 digits, no download).

Setup (the project's ``digits_autoencoder`` problem, rebuilt here): all 1 797 images, pixels / 16;
64-h-8-h-64 with h = 32 (or another width), ReLU after every hidden layer, biases, PyTorch's
default initialisation seeded by ``seed``, float64; ``nn.MSELoss()`` (mean over examples and
pixels); full-batch GD at lr 0.1.

Theory. An output that ignores its input is best as the mean image x̄, with loss
(1/64)·Σ_j Var(x_j) (population variance): :func:`mean_image_loss`. Dead or input-blind ReLU
paths put GD there, and it stays while the input-dependent path grows back. The next levels are
the best affine rank-r reconstructions (PCA): (1/(64 n))·Σ_{i>r} σ_i² with σ_i the singular values
of the centred data (:func:`pca_losses`); a loss below the rank-1 PCA loss is clearly past the
plateau.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

import landscape as ls

from ..problems.base import sequential_mlp
from .core import Instance, seeded
from .saddles import digits

CASE = "digits_autoencoder"
WIDTHS: tuple[int, ...] = (64, 32, 8, 32, 64)
LR = 0.1


def images() -> torch.Tensor:
    return digits()[0]


def mean_image_loss(X: torch.Tensor | None = None) -> float:
    X = images() if X is None else X
    return float(((X - X.mean(0)) ** 2).mean())


def pca_losses(X: torch.Tensor | None = None, r_max: int = 8) -> list[float]:
    """MSE (mean over examples and pixels) of the best affine rank-r reconstruction, r = 0..r_max."""
    X = images() if X is None else X
    s = torch.linalg.svdvals(X - X.mean(0))
    tot = X.numel()
    return [float((s[r:] ** 2).sum() / tot) for r in range(r_max + 1)]


def build(seed: int = 0, *, widths: Sequence[int] = WIDTHS, lr: float = LR, steps: int = 4000,
          dtype: torch.dtype = torch.float64) -> Instance:
    """The autoencoder instance (module docstring); ``dtype`` float32 for speed (the project's
    problem is float64)."""
    X = images().to(dtype)
    widths = [int(w) for w in widths]

    model = seeded(lambda: sequential_mlp(widths, nn.ReLU), seed, dtype)
    mse = nn.MSELoss()
    data = (X, X)

    def evaluate(m: nn.Module) -> float:
        with torch.no_grad():
            return float(mse(m(X), X))

    pca = pca_losses(X, 2)
    return Instance(case=CASE, seed=seed, model=model, loss_fn=mse, batch=lambda t: data,
                    optimiser={"name": "gd", "lr": lr, "steps": steps},
                    theory={"mean_image": mean_image_loss(X), "pca_1": pca[1], "pca_2": pca[2]},
                    evaluate=evaluate, objective=lambda m: ls.Objective.from_module(m, mse, data),
                    probe=lambda n, pseed=0: (X[:n], X[:n]), eval_every=1, info={"widths": widths})
