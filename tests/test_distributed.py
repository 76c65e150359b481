"""Two gloo processes on uneven shards against one process on the union (issue 11).

float64; every global value must agree with the single-process objective to 1e-10 relative, and
the two ranks must return bit-identical Lanczos / SLQ / Hutchinson results.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import landscape as ls
from landscape.distributed import shard_range, spawn_local

F64 = torch.float64
N = 13
SIZES = [4, 9]  # uneven shards
TOL = 1e-10


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double().eval()


def _data():
    g = torch.Generator().manual_seed(11)
    return torch.randn(N, 3, generator=g, dtype=F64), torch.randint(0, 3, (N,), generator=g)


def _batches(X, y, idx: range, bs: int):
    a, b = idx.start, idx.stop
    return [(X[i:min(i + bs, b)], y[i:min(i + bs, b)]) for i in range(a, b, bs)]


def _measure(obj: ls.Objective) -> dict:
    theta = obj.initial_point()
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(5), dtype=F64)
    loss, g = obj.loss_and_grad(theta)
    eig = ls.extreme_eigs(obj, theta, 1, "both")
    tr = ls.hessian_trace(obj, theta, n_samples=4, seed=2)
    sd = ls.spectral_density(obj, theta, n_runs=2, n_steps=12, seed=3)
    cs = ls.cancellation_stats(obj, theta, chunk_size=3)
    return {
        "n": obj.n_examples, "loss": loss, "loss_only": obj.loss(theta), "grad": g, "hvp": obj.hvp(theta, v),
        "hessian": obj.hessian(theta), "eig": eig.values, "eigvec": eig.vectors, "trace": torch.tensor(tr.samples),
        "sd_nodes": sd.nodes, "sd_weights": sd.weights, "kappa": cs.kappa, "alpha": cs.alpha, "gsnr": cs.gsnr_mean,
        "ggn": obj.curvature_operator(theta, "ggn").matvec(v), "ef": obj.curvature_operator(theta, "ef").matvec(v),
        "theta": theta,
    }


def _rank_main(rank: int, world_size: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    X, y = _data()
    idx = shard_range(N, rank, world_size, SIZES)
    model = _model(0 if rank == 0 else 99)  # rank 1 starts elsewhere: the objective broadcasts rank 0's
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), _batches(X, y, idx, 3 if rank == 0 else 5),
                                   distributed=True)
    res = _measure(obj)
    Xb = X.clone()
    if rank == 1:
        Xb[idx.start + 6] = float("nan")  # in rank 1's second batch
    bad = ls.Objective.from_module(model, nn.CrossEntropyLoss(), _batches(Xb, y, idx, 5), distributed=True)
    msgs = []
    for f in (lambda: bad.loss(bad.initial_point()), lambda: bad.grad(bad.initial_point()),
              lambda: ls.hessian_trace(bad, bad.initial_point(), n_samples=2)):
        try:
            f()
            msgs.append("no error")
        except ls.NonFiniteError as exc:
            msgs.append(str(exc))
    res["errors"] = msgs
    torch.save(res, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_gloo_ranks_on_uneven_shards_match_one_process(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))  # the spawned ranks import this module by name
    spawn_local(_rank_main, 2, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    X, y = _data()
    single = ls.Objective.from_module(_model(0), nn.CrossEntropyLoss(), _batches(X, y, range(0, N), 4))
    ref = _measure(single)
    assert r0["n"] == r1["n"] == N
    for key in ("loss", "loss_only", "grad", "hvp", "hessian", "eig", "trace", "ggn", "ef", "theta", "kappa", "alpha",
                "gsnr"):
        a, b = torch.as_tensor(r0[key], dtype=F64), torch.as_tensor(ref[key], dtype=F64)
        assert float((a - b).norm()) <= TOL * float(b.norm()), key
    # SLQ nodes agree with the single process up to the Lanczos run's own round-off.
    scale = float(ref["eig"].abs().max())
    assert float((r0["sd_nodes"] - ref["sd_nodes"]).abs().max()) <= 1e-8 * scale
    # Every rank returns the same numbers, bit for bit.
    for key in ("loss", "grad", "hvp", "hessian", "eig", "eigvec", "trace", "sd_nodes", "sd_weights", "kappa", "ggn", "ef"):
        assert torch.equal(torch.as_tensor(r0[key]), torch.as_tensor(r1[key])), key
    # A NaN on one rank raises on both; the culprit names its batch.
    assert all("rank 1 batch 1 (examples 5..8)" in m for m in r1["errors"]), r1["errors"]
    assert all("other rank" in m for m in r0["errors"]), r0["errors"]


def test_distributed_needs_a_process_group():
    X, y = _data()
    with pytest.raises(RuntimeError, match="process group"):
        ls.Objective.from_module(_model(0), nn.CrossEntropyLoss(), (X, y), distributed=True)
