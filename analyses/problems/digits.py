"""The SynaPrune seed repository's autoencoder on real digits: the zoo problem ``digits_autoencoder``
and its data loaders.

The public repository behind the SynaPrune seed trains a 784-100-28-100-784 ReLU autoencoder (with
biases) on 1 000 MNIST images by full-batch gradient descent at lr 1 under MSE and reports the loss
creeping from 0.0627 to 0.0623 over 100 epochs: "stuck". MNIST cannot be downloaded here, but
scikit-learn ships 1 797 real 8×8 handwritten digits inside its package
(:func:`sklearn.datasets.load_digits`, no network), so the zoo problem ``digits_autoencoder`` is the
same experiment scaled to 64 inputs:

- data: every digit image, pixel values 0..16 scaled to [0, 1], shape (1797, 64);
- model: 64-32-8-32-64, ReLU after every hidden layer, biases, PyTorch's default initialisation
  seeded by ``seed`` (float64);
- loss: ``nn.MSELoss()`` (mean over examples and pixels), full-batch GD at lr 0.1 — the step size at
  which the plateau is long (at lr 1, the seed's, it lasts ~150 steps; at 0.1 ~800; see
  :data:`PLATEAU_LR`).

A user's own data (``mnist.npz`` with ``x_train`` as Keras ships it, or any ``(n, d)`` array in an
``.npz``/``.npy`` file) loads with :func:`load_array_file` and builds the seed repository's shape
(d-100-28-100-d: 784-100-28-100-784 for MNIST) with ``get_problem("digits_autoencoder",
data_file=...)``: the first 1 000 rows, lr 1, as in the seed. What the plateau is, and how every
method escapes it, is :mod:`analyses.digits_plateau`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import Problem, init_reference, seeded_module, sequential_mlp
from .registry import register

#: the digits problem's architecture (inputs, hidden…, outputs)
DIGITS_WIDTHS: tuple[int, ...] = (64, 32, 8, 32, 64)
#: the seed repository's MNIST architecture, hidden part (the input/output width is the data's)
SEED_HIDDEN: tuple[int, ...] = (100, 28, 100)
#: GD step size of the digits problem: the plateau after the first drop lasts ~800 steps (seed 0)
PLATEAU_LR = 0.1
#: the seed repository's step size and number of images (used for a user's own data file)
SEED_LR = 1.0
SEED_N = 1000
#: the digits problem's stall detector (scale-free): loss down by at most 0.2 % over 50 steps with
#: every ‖g‖ in the window ≤ 5 % of the run's own gradient scale (the run starts at ‖g‖ ≈ 0.15 and
#: sits at ≈ 3e-3 on the plateau: 2–3 % of it; the detector's default 1 % would miss the plateau).
#: On the plateau GD's loss still falls 0.1–0.2 % per 50 steps on most initialisations: at 0.1 %
#: the detector fired on 2 of 8 seeds (0, 1), at 0.2 % on 6 of seeds 0, 2–7 (all but 6), measured
#: over 1 200 GD steps — the method comparison needs the plateau of every initialisation that has one
DIGITS_STALL = {"window": 50, "rel_tol": 2e-3, "grad_rel": 0.05}
#: array names tried, in order, when a .npz file is given without a key
NPZ_KEYS: tuple[str, ...] = ("X", "x_train", "x", "data", "images")


# ---------------------------------------------------------------------------- data
def load_digits_data(n: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """scikit-learn's bundled 8×8 digits (no download).

    Args:
        n: keep the first n images, 2 ≤ n ≤ 1 797 (default: all).
        dtype: the result's dtype.

    Returns:
        Pixels /16 → [0, 1], shape (n, 64).

    Raises:
        ValueError: ``n`` out of range or not an integer.
    """
    from sklearn.datasets import load_digits

    data = load_digits().data  # (1797, 64), integer values 0..16 stored as float
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= data.shape[0]:
            raise ValueError(f"n must be an integer in 2..{data.shape[0]}, got {n!r}")
        data = data[: int(n)]
    return torch.as_tensor(data / 16.0, dtype=dtype)


def _scale_unit(arr: np.ndarray) -> np.ndarray:
    """Values to [0, 1]: unsigned-integer images divide by their type's full scale (uint8: 255);
    other data outside [0, 1] are min–max scaled; data already inside [0, 1] are kept."""
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    out = arr.astype(np.float64)
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    if hi == lo:
        raise ValueError(f"the data are constant ({lo}); nothing to autoencode")
    return (out - lo) / (hi - lo)


def load_array_file(path: str | os.PathLike, key: str | None = None, *, n: int | None = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A user's data matrix from ``.npz`` / ``.npy``, flattened to (n, d) and scaled to [0, 1].

    Args:
        path: the ``.npz`` or ``.npy`` file.
        key: the array in an ``.npz``; default the first of :data:`NPZ_KEYS` present (Keras's
            ``mnist.npz`` holds ``x_train`` (60000, 28, 28) uint8), else the only array.
        n: keep the first n rows (≥ 2; default all).
        dtype: the result's dtype.

    Returns:
        The data (n, a·b·…) for an array of shape (n, a, b, …), scaled by :func:`_scale_unit`
        (uint8 pixels /255).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the problem: unreadable file, missing key, empty /
            non-numeric / non-finite array, bad ``n``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a readable .npz/.npy file: {exc}") from exc
    if isinstance(f, np.lib.npyio.NpzFile):
        with f:
            keys = list(f.keys())
            if key is not None:
                if key not in keys:
                    raise ValueError(f"{path!r} has no array {key!r} (arrays present: {', '.join(keys) or 'none'})")
                chosen = key
            else:
                found = [k for k in NPZ_KEYS if k in keys]
                if found:
                    chosen = found[0]
                elif len(keys) == 1:
                    chosen = keys[0]
                else:
                    raise ValueError(f"{path!r} holds several arrays ({', '.join(keys) or 'none'}) and none is named "
                                     f"{' / '.join(NPZ_KEYS)}; pass key=")
            try:
                arr = f[chosen]
            except ValueError as exc:
                raise ValueError(f"array {chosen!r} in {path!r} cannot be read without pickle: {exc}") from exc
    else:
        if key is not None:
            raise ValueError(f"{path!r} is a single .npy array; key={key!r} applies to .npz files only")
        chosen, arr = "(npy)", f
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or arr.dtype == np.bool_:
        raise ValueError(f"array {chosen!r} in {path!r} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim < 2 or arr.shape[0] < 2 or int(np.prod(arr.shape[1:])) < 2:
        raise ValueError(f"array {chosen!r} in {path!r} must be (n examples, d features…) with n >= 2 and d >= 2, "
                         f"got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        arr = arr[: int(n)]
    if not np.isfinite(arr).all():
        raise ValueError(f"array {chosen!r} in {path!r} has non-finite entries")
    return torch.as_tensor(_scale_unit(arr), dtype=dtype)


# ---------------------------------------------------------------------------- model
def relu_autoencoder(widths: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A ReLU autoencoder: Linear layers with biases and ReLU between them (none after the output).

    Args:
        widths: (d, h_1, …, d), at least three widths, all ≥ 1.
        seed: seed of PyTorch's default initialisation.
        dtype: the parameters' dtype.

    Returns:
        ``nn.Sequential`` with parameter names ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, …

    Raises:
        ValueError: fewer than three widths or a width < 1.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 3 or min(widths) < 1:
        raise ValueError(f"widths must list at least input, one hidden and output width (all >= 1), got {widths}")

    return seeded_module(lambda: sequential_mlp(widths, nn.ReLU), seed, dtype)


def hidden_activations(model: nn.Sequential, X: torch.Tensor) -> list[torch.Tensor]:
    """Every hidden layer's activations.

    Args:
        model: a :func:`relu_autoencoder`.
        X: inputs (n, d).

    Returns:
        The post-ReLU activations of every hidden layer, each (n, width), then the output (n, d).
    """
    acts = []
    h = X
    with torch.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                acts.append(h)
    return acts + [h]


@register("digits_autoencoder")
def _digits_autoencoder(n: int | None = None, lr: float | None = None, seed: int = 0,
                        data_file: str | None = None, key: str | None = None,
                        widths: Sequence[int] | None = None, steps: int = 3000,
                        stall: dict[str, Any] | None = None) -> Problem:
    """ReLU autoencoder with biases on real handwritten digits, full-batch GD, MSE (module docstring).

    Default: scikit-learn's 1 797 digits, 64-32-8-32-64, lr :data:`PLATEAU_LR`. ``data_file``: a
    user's ``.npz``/``.npy`` (:func:`load_array_file`), first ``n`` (default 1 000) rows, the seed
    repository's shape d-100-28-100-d and lr 1. ``widths`` overrides the architecture (input and
    output widths must equal the data's d). ``steps``: the run length the analyses use. ``stall``:
    the stall detector's options (default :data:`DIGITS_STALL`; the method comparison passes it
    explicitly so that worker processes and the records carry the configuration used)."""
    if data_file is not None:
        X = load_array_file(data_file, key, n=SEED_N if n is None else n)
        source = f"{X.shape[0]} rows of {data_file}" + (f" [{key}]" if key else "")
        default_widths = (int(X.shape[1]), *SEED_HIDDEN, int(X.shape[1]))
        default_lr = SEED_LR
    else:
        X = load_digits_data(n)
        source = f"{X.shape[0]} scikit-learn digits (8×8, pixels/16)"
        default_widths, default_lr = DIGITS_WIDTHS, PLATEAU_LR
    widths = tuple(int(w) for w in (widths if widths is not None else default_widths))
    d = int(X.shape[1])
    if widths[0] != d or widths[-1] != d:
        raise ValueError(f"autoencoder widths {widths} must start and end with the data width d = {d}")
    lr = default_lr if lr is None else float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")

    def make_model(seed: int = 0) -> nn.Module:
        return relu_autoencoder(widths, seed)

    mean_loss = float(((X - X.mean(0)) ** 2).mean())
    return Problem(
        name="digits_autoencoder",
        description=(f"ReLU autoencoder {'-'.join(map(str, widths))} with biases on {source}, MSE, full-batch GD "
                     f"at lr {lr:g}; the constant mean image scores {mean_loss:.4g}; global minimum unknown"),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, X.clone()), reference=init_reference(make_model),
        global_min=None, dtype=torch.float64, reduction="mean", reference_kind="init",
        # no "max_steps" hint: the problem stays out of the escape benchmark's default problem set
        # (3 000 steps of a 4 744-parameter net per method and seed); its study section runs it
        hints={"lr": lr, "eps": 0.0, "span": 1.0, "normalization": "filter", "steps": int(steps),
               "stall": dict(DIGITS_STALL if stall is None else stall)},
        extra={"widths": widths, "mean_image_loss": mean_loss, "data_file": data_file, "key": key},
    )
