"""The loss at many points at once: vmapped over parameter vectors, or one point at a time.

:func:`evaluate_points` evaluates a grid ``origin + coords @ directions`` (what the loss surfaces
of :mod:`landscape.surface` are made of), :func:`evaluate_thetas` a stack of points; both in
chunks, picking vmap or a loop per model (:class:`_Evaluator`).
"""
from __future__ import annotations

import time

import torch
from torch.func import vmap

from .defaults import LOOP_ALWAYS_S as _LOOP_ALWAYS_S
from .defaults import ROWS_PER_CHUNK as _ROWS_PER_CHUNK
from .objective import Objective

STRATEGIES = ("auto", "vmap", "loop")


def _chunk_size(obj: Objective) -> int:
    n = max(int(getattr(obj, "n_examples", 0) or 0), 1)
    return int(max(1, min(256, _ROWS_PER_CHUNK // n)))


def evaluate_points(obj: Objective, origin: torch.Tensor, directions: torch.Tensor, coords: torch.Tensor, *,
                    chunk_size: int | None = None, progress: bool | None = None,
                    desc: str = "surface", strategy: str = "auto", info: dict | None = None) -> torch.Tensor:
    """Loss at ``origin + coords[p] @ directions`` for every row p.

    ``origin`` (dim,), ``directions`` (k, dim), ``coords`` (N, k) → losses (N,) float64.
    Points are evaluated ``chunk_size`` at a time (default: about 2^16 example-rows per chunk) with
    ``vmap`` over the objective's batches; objectives whose function cannot be vmapped fall back
    to one point at a time; ``strategy`` picks vmap / loop / auto (see :class:`_Evaluator`), and the
    one used is written to ``info["strategy"]`` when ``info`` is given. Non-finite losses are
    returned as they are.

    Args:
        obj: the objective. origin: (dim,). directions: (k, dim). coords: (N, k).
        chunk_size: points per evaluation. progress: a progress bar (None: only on a TTY).
        desc: the bar's label. strategy: ``"auto"``, ``"vmap"`` or ``"loop"``. info: receives
            ``strategy`` and ``chunk_size``.

    Returns:
        (N,) float64 losses on the CPU.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> evaluate_points(obj, obj.initial_point(), torch.eye(2, dtype=torch.float64),
        ...                 torch.tensor([[1.0, 2.0], [0.0, 3.0]]), progress=False).tolist()
        [5.0, 9.0]
    """
    origin = obj.check_theta(origin, "origin")
    if directions.ndim != 2 or directions.shape[1] != obj.dim:
        raise ValueError(f"directions must have shape (k, {obj.dim}), got {tuple(directions.shape)}")
    if coords.ndim != 2 or coords.shape[1] != directions.shape[0]:
        raise ValueError(f"coords must have shape (N, {directions.shape[0]}), got {tuple(coords.shape)}")
    D = directions.to(device=obj.device, dtype=obj.dtype)
    C = coords.to(device=obj.device, dtype=obj.dtype)
    chunk = _chunk_size(obj) if chunk_size is None else chunk_size
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    from tqdm.auto import tqdm

    out = torch.empty(C.shape[0], dtype=torch.float64)
    evaluator = _Evaluator(obj, strategy)
    disable = True if progress is False else (False if progress else None)  # None: only on a TTY
    with torch.no_grad(), tqdm(total=C.shape[0], desc=desc, unit="pt", disable=disable, leave=False) as bar:
        for a in range(0, C.shape[0], chunk):
            thetas = torch.addmm(origin.unsqueeze(0), C[a:a + chunk], D)
            out[a:a + thetas.shape[0]] = evaluator(thetas)
            bar.update(thetas.shape[0])
    if info is not None:
        info["strategy"] = evaluator.strategy
        info["chunk_size"] = chunk
    return out


class _Evaluator:
    """Losses of a stack of parameter vectors (P, dim) -> (P,) float64 on the CPU.

    ``strategy="vmap"`` evaluates the stack in one vmapped call (fast for small models, where
    per-call overhead dominates); ``"loop"`` one point at a time (for large models one big
    matrix product per layer beats a batched one on the CPU); ``"auto"`` loops when one point costs
    more than 2 ms, else times both on the first stack and keeps the faster. Functions that cannot be vmapped fall back to the loop.
    """

    def __init__(self, obj: Objective, strategy: str = "auto") -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.obj = obj
        self.batched = vmap(obj.loss_tensor)
        self.strategy = strategy

    def _loop(self, thetas: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.obj.loss_tensor(t).reshape(()) for t in thetas])

    def _vmap(self, thetas: torch.Tensor) -> torch.Tensor | None:
        try:
            return self.batched(thetas)
        except Exception:  # noqa: BLE001 - any non-vmappable function: loop instead
            self.strategy = "loop"
            return None

    def __call__(self, thetas: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            vals = None
            if self.strategy == "auto" and thetas.shape[0] >= 2:
                # A loop costs one forward pass per point plus ~0.1 ms of Python; when a point costs
                # far more than that the loop is within a few % of a plain forward pass and never
                # loses to a batched (bmm) evaluation on the CPU, so vmap is only tried for cheap points.
                n = min(4, thetas.shape[0] - 1)
                t0 = time.perf_counter()
                head = self._loop(thetas[:n])
                t_loop = (time.perf_counter() - t0) / n
                if t_loop > _LOOP_ALWAYS_S:
                    self.strategy = "loop"
                    vals = torch.cat([head, self._loop(thetas[n:])])
                else:
                    t0 = time.perf_counter()
                    tail = self._vmap(thetas[n:])
                    if tail is None:
                        vals = torch.cat([head, self._loop(thetas[n:])])
                    else:
                        t_vmap = (time.perf_counter() - t0) / (thetas.shape[0] - n)
                        self.strategy = "vmap" if t_vmap <= t_loop else "loop"
                        vals = torch.cat([head, tail])
            elif self.strategy in ("vmap", "auto"):
                vals = self._vmap(thetas)
            if vals is None:
                vals = self._loop(thetas)
        return vals.detach().to(device="cpu", dtype=torch.float64)


def evaluate_thetas(obj: Objective, thetas: torch.Tensor, *, chunk_size: int | None = None,
                    strategy: str = "auto") -> torch.Tensor:
    """Losses at the rows of ``thetas``, vmapped in chunks.

    Args:
        obj: the objective. thetas: (T, dim). chunk_size: points per evaluation. strategy: see
            :func:`evaluate_points`.

    Returns:
        (T,) float64 losses on the CPU.

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(2, dtype=torch.float64))
        >>> evaluate_thetas(obj, torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)).tolist()
        [2.0, 4.0]
    """
    if thetas.ndim != 2 or thetas.shape[1] != obj.dim:
        raise ValueError(f"thetas must have shape (T, {obj.dim}), got {tuple(thetas.shape)}")
    thetas = thetas.to(device=obj.device, dtype=obj.dtype)
    chunk = chunk_size or _chunk_size(obj)
    ev = _Evaluator(obj, strategy)
    return torch.cat([ev(thetas[a:a + chunk]) for a in range(0, thetas.shape[0], chunk)])
