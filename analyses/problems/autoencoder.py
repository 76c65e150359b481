"""The bias-free linear bottleneck autoencoder near a PCA saddle, on synthetic data or a user's ``.npz``."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from landscape.deep_linear import DeepLinearProblem, half_sq_error

from .base import Problem, seeded_module, stall_detector
from .registry import register

AUTOENCODER_KEY = "X"


def load_npz_matrix(path: str, key: str = AUTOENCODER_KEY) -> torch.Tensor:
    """Load a data matrix from an ``.npz`` file.

    Args:
        path: the ``.npz`` file.
        key: the array's name in it (default ``"X"``).

    Returns:
        The matrix (n examples, d features) as float64, n, d ≥ 2.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, a single ``.npy``, a missing key (the keys present are
            listed), a non-2-D, too small or non-numeric array, or non-finite entries.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"autoencoder data file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a readable .npz file: {exc}") from exc
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is a single .npy array, not an .npz archive; save it with "
                         f"numpy.savez(path, {key}=matrix)")
    with f:
        keys = list(f.keys())
        if key not in keys:
            raise ValueError(f"{path!r} has no array {key!r} (arrays present: {', '.join(keys) or 'none'}); "
                             f"store the data matrix (n examples × d features) under {key!r}")
        try:
            arr = f[key]
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise ValueError(f"array {key!r} in {path!r} cannot be read without pickle: {exc}") from exc
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"array {key!r} in {path!r} must be 2-D (n examples × d features, n >= 2, d >= 2), "
                         f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"array {key!r} in {path!r} must be real numbers, got dtype {arr.dtype}")
    out = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    if not torch.isfinite(out).all():
        raise ValueError(f"array {key!r} in {path!r} has non-finite entries")
    return out


def pca_autoencoder_min(X: torch.Tensor, k: int) -> float:
    """Eckart–Young value of the bias-free linear autoencoder x ↦ W₂W₁x with bottleneck k under the
    mean-over-examples loss ½‖W₂W₁x − x‖².

    Args:
        X: data (n, d).
        k: the bottleneck width.

    Returns:
        min = (1/2n) Σ_{i>k} σ_i(X)²: the (uncentred) energy outside the top-k principal
        directions of XᵀX/n, halved.

    >>> pca_autoencoder_min(torch.eye(3), 2)
    0.16666666666666666
    """
    s = torch.linalg.svdvals(X.to(torch.float64))
    return 0.5 * float((s[k:] ** 2).sum()) / X.shape[0]


def _ae_product(theta: torch.Tensor, d: int, k: int) -> torch.Tensor:
    """W₂W₁ (d, d) from the flat autoencoder weights [W₁ (k, d), W₂ (d, k)]."""
    return theta[d * k:].reshape(d, k) @ theta[:d * k].reshape(k, d)


@register("autoencoder")
def _autoencoder(d: int = 8, k: int = 2, rank: int = 3, n: int = 128, noise: float = 0.05, seed: int = 0,
                 data_file: str | None = None, key: str = AUTOENCODER_KEY) -> Problem:
    """Bias-free linear bottleneck autoencoder d-k-d on synthetic low-rank-plus-noise data
    (X = Z·A + noise, Z (n, rank), rank > k, singular values spread), or on the user's own data:
    ``data_file`` an ``.npz`` holding the (n, d) matrix under ``key`` (default ``"X"``; d is then
    the file's). Loss: mean over examples of ½‖x̂ − x‖²; started near the PCA critical point that
    keeps principal components 1..k−1 and k+1 (a strict saddle of index 1 whose small negative
    curvature, ∝ σ_k² − σ_{k+1}², makes plain GD plateau). Global value (Eckart–Young):
    ½·(1/n)·Σ_{i>k} σ_i(X)².
    """
    if data_file is not None:
        X = load_npz_matrix(str(data_file), key)
        source = f"data file {data_file} [{key}]"
    else:
        if not (isinstance(rank, int) and 1 <= rank <= d):
            raise ValueError(f"rank must be an integer in 1..d = {d}, got {rank!r}")
        g = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.linspace(2.0, 0.8, rank,
                                                                                     dtype=torch.float64)
        A = torch.linalg.qr(torch.randn(d, rank, generator=g, dtype=torch.float64)).Q.T  # (rank, d) orthonormal rows
        X = Z @ A + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
        source = f"synthetic rank-{rank} + {noise} noise"
    n, d = (int(s) for s in X.shape)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < d:
        raise ValueError(f"bottleneck k must be an integer in 1..d-1 = {d - 1}, got {k!r}")
    dim = 2 * d * k
    # Reference: the PCA critical point that keeps components 1..k-1 and k+1 (skips the k-th), a
    # strict saddle of index 1 (Baldi–Hornik; the deep linear construction with Y = X, H = 1).
    # Data breaking its assumptions (repeated singular values, n < d) fall back to W = 0.
    S = tuple(range(k - 1)) + (k,)
    try:
        cp = DeepLinearProblem(X, X, [k]).critical_point(S)
        ref_theta, ref_kind, where = cp.theta, cp.kind, f"the PCA saddle S = {S} (0-based components)"
    except ValueError:
        ref_theta, ref_kind, where = torch.zeros(dim, dtype=torch.float64), "strict_saddle", "W = 0"
    ref_loss = 0.5 * float(((X @ _ae_product(ref_theta, d, k).T - X) ** 2).sum()) / n

    def make_model(seed: int = 0) -> nn.Module:
        return seeded_module(lambda: nn.Sequential(nn.Linear(d, k, bias=False), nn.Linear(k, d, bias=False)),
                              seed, torch.float64)

    return Problem(
        name="autoencoder",
        description=(f"linear bottleneck autoencoder {d}-{k}-{d} (no biases) on {source}, {n} examples, loss mean "
                     f"½‖x̂ − x‖², started near {where}; global value from PCA (Eckart–Young)"),
        make_model=make_model, loss_fn=half_sq_error, data=(X, X.clone()),
        reference=lambda seed=0: ref_theta.clone(), global_min=pca_autoencoder_min(X, k),
        dtype=torch.float64, reduction="mean", reference_kind=ref_kind, reference_loss=ref_loss,
        hints={"lr": 0.1, "span": 1.0, "normalization": "none", "eps": 1e-4,
               "stall": stall_detector(**{"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}), "max_steps": 1500,
               "quick_steps": 400},
        extra={"k": k, "data_file": data_file, "key": key},
    )
