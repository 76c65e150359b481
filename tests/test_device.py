"""``device`` is honoured end to end: a CPU model analysed on CUDA gives the CPU numbers (float64).

Skipped without CUDA.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import landscape as ls

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
F64 = torch.float64


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(21, 4, generator=g, dtype=F64), torch.randint(0, 3, (21,), generator=g)
    cpu = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, Y), device="cpu")
    gpu = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, Y), device="cuda")
    return model, cpu, gpu


def test_cuda_objective_matches_cpu():
    model, cpu, gpu = _setup()
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    assert next(model.parameters()).device.type == "cpu"  # the user's model stays where it was
    th = cpu.initial_point()
    tg = gpu.initial_point()
    assert tg.device.type == "cuda" and torch.equal(tg.cpu(), th)
    v = torch.randn(cpu.dim, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert gpu.loss(tg) == pytest.approx(cpu.loss(th), rel=1e-12)
    g = gpu.grad(tg)
    assert g.device.type == "cuda" and torch.allclose(g.cpu(), cpu.grad(th), rtol=1e-10, atol=1e-14)
    hv = gpu.hvp(tg, v.cuda())
    assert hv.device.type == "cuda" and torch.allclose(hv.cpu(), cpu.hvp(th, v), rtol=1e-10, atol=1e-14)
    assert torch.allclose(gpu.hvp_operator(tg).matvec(v.cuda()).cpu(), cpu.hvp(th, v), rtol=1e-10, atol=1e-14)
    H = gpu.hessian(tg)
    assert H.device.type == "cuda"
    ev = torch.linalg.eigvalsh(cpu.hessian(th))
    G = gpu.per_example_grads(tg, chunk_size=5)
    assert G.device.type == "cuda" and torch.allclose(G.cpu(), cpu.per_example_grads(th), rtol=1e-10, atol=1e-14)
    res = ls.extreme_eigs(gpu, tg, k=2)
    assert res.vectors.device.type == "cuda" and res.all_converged
    truth = torch.cat([ev[:2], ev[-2:]])
    assert float((res.values - truth).abs().max()) <= 1e-8 * float(ev.abs().max())
    s_gpu, s_cpu = ls.cancellation_stats(gpu, tg, chunk_size=4), ls.cancellation_stats(cpu, th)
    assert s_gpu.kappa == pytest.approx(s_cpu.kappa, rel=1e-10)
    assert s_gpu.gsnr_mean == pytest.approx(s_cpu.gsnr_mean, rel=1e-8)
    t_gpu = ls.hessian_trace(gpu, tg, n_samples=5, seed=0)
    t_cpu = ls.hessian_trace(cpu, th, n_samples=5, seed=0)
    assert t_gpu.estimate == pytest.approx(t_cpu.estimate, rel=1e-10)
    d = ls.spectral_density(gpu, tg, n_runs=2, n_steps=gpu.dim, seed=0)
    assert d.moment(1) == pytest.approx(ls.spectral_density(cpu, th, n_runs=2, n_steps=cpu.dim, seed=0).moment(1),
                                        rel=1e-8)
    with pytest.raises((ValueError, TypeError, RuntimeError)):
        gpu.write_to_module(model, th.float())


def test_cuda_function_objective():
    A = torch.diag(torch.tensor([-1.0, 2.0, 5.0], dtype=F64)).cuda()
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x), torch.zeros(3, dtype=F64), device="cuda")
    assert obj.device.type == "cuda"
    res = ls.extreme_eigs(obj, obj.initial_point(), k=1)
    assert torch.allclose(res.values, torch.tensor([-1.0, 5.0], dtype=F64), atol=1e-12)
