"""Objective: loss, gradient, HVP, dense Hessian and per-example gradients against analytic truth.

All numerical checks run in float64. References are closed forms (quadratics, linear regression,
a deep linear network at W = 0), central finite differences, or an independent plain-autograd
loop over examples, never the objective's own output.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape as ls

F64 = torch.float64


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-300))


def quadratic(eigs, seed: int = 0):
    """f(x) = ½ xᵀAx + bᵀx with A = Q diag(eigs) Qᵀ for a random orthogonal Q."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    A = Q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ Q.T
    A = 0.5 * (A + A.T)
    b = torch.randn(n, generator=g, dtype=F64)
    x0 = torch.randn(n, generator=g, dtype=F64)
    obj = ls.Objective.from_function(lambda x: 0.5 * x @ (A @ x) + b @ x, x0)
    return obj, A, b


def mlp(d_in=4, hidden=(6, 5), d_out=3, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    layers, d = [], d_in
    for h in hidden:
        layers += [nn.Linear(d, h), nn.Tanh()]
        d = h
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers).double()


def mlp_data(n=20, d_in=4, d_out=3, task="mse", seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=g, dtype=F64)
    if task == "mse":
        Y = torch.randn(n, d_out, generator=g, dtype=F64)
    else:
        Y = torch.randint(0, d_out, (n,), generator=g)
    return X, Y


def mlp_objective(task="mse", seed=0, n=20, reduction="mean"):
    model = mlp(seed=seed)
    X, Y = mlp_data(n=n, task=task, seed=seed + 100)
    loss_fn = nn.MSELoss() if task == "mse" else nn.CrossEntropyLoss()
    return ls.Objective.from_module(model, loss_fn, (X, Y), reduction=reduction), model, X, Y, loss_fn


# ---------------------------------------------------------------------- quadratics
@pytest.mark.parametrize("eigs", [
    [1.0, 2.0, 3.0, 4.0, 10.0],                   # definite
    [-3.0, -1.0, 0.5, 2.0, 7.0, 7.0],             # indefinite, repeated
    [0.0, 0.0, 1.0, -2.0, 5.0],                   # singular
])
def test_quadratic_loss_grad_hvp_hessian(eigs):
    obj, A, b = quadratic(eigs, seed=len(eigs))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(obj.dim, generator=g, dtype=F64)
    v = torch.randn(obj.dim, generator=g, dtype=F64)
    assert obj.dim == len(eigs) and obj.dtype == F64
    assert obj.loss(x) == pytest.approx(float(0.5 * x @ A @ x + b @ x), rel=1e-13)
    loss, grad = obj.loss_and_grad(x)
    assert loss == pytest.approx(obj.loss(x), rel=1e-14)
    assert rel(grad, A @ x + b) <= 1e-13
    assert rel(obj.grad(x), A @ x + b) <= 1e-13
    assert rel(obj.hvp(x, v), A @ v) <= 1e-13
    assert rel(obj.hvp_operator(x).matvec(v), A @ v) <= 1e-13
    assert rel(obj.hvp_operator(x, cache=False).matvec(v), A @ v) <= 1e-13
    H = obj.hessian(x)
    assert H.shape == (obj.dim, obj.dim)
    assert float((H - A).abs().max()) <= 1e-13 * float(A.abs().max())
    # the spectrum we put in comes back
    assert torch.allclose(torch.linalg.eigvalsh(H), torch.tensor(sorted(eigs), dtype=F64), atol=1e-12)


def test_function_objective_basics():
    x0 = torch.tensor([1.0, -2.0], dtype=F64)
    obj = ls.Objective.from_function(lambda x: x[0] ** 2 * x[1] + torch.sin(x[1]), x0)
    x = obj.initial_point()
    assert torch.equal(x, x0) and x is not x0
    # analytic gradient and Hessian of x²y + sin y
    a, c = 1.0, -2.0
    assert rel(obj.grad(x), torch.tensor([2 * a * c, a ** 2 + math.cos(c)], dtype=F64)) <= 1e-14
    H_true = torch.tensor([[2 * c, 2 * a], [2 * a, -math.sin(c)]], dtype=F64)
    assert float((obj.hessian(x) - H_true).abs().max()) <= 1e-14
    # a linear function has a zero Hessian (the cached operator must cope with a constant gradient)
    lin = ls.Objective.from_function(lambda x: 3 * x.sum(), torch.zeros(4, dtype=F64))
    hv = lin.hvp_operator(lin.initial_point()).matvec(torch.ones(4, dtype=F64))
    assert torch.equal(hv, torch.zeros(4, dtype=F64))
    assert torch.equal(lin.hessian(lin.initial_point()), torch.zeros(4, 4, dtype=F64))


# ---------------------------------------------------------------------- MLP: HVP vs dense vs FD
@pytest.mark.parametrize("task", ["mse", "ce"])
def test_mlp_hvp_matches_dense_and_finite_differences(task):
    obj, *_ = mlp_objective(task, seed=3)
    g = torch.Generator().manual_seed(11)
    theta = obj.initial_point() + 0.1 * torch.randn(obj.dim, generator=g, dtype=F64)
    H = obj.hessian(theta)
    # columns from independent HVPs, not symmetrised: the raw Hessian must be symmetric
    cols = obj.hvp_operator(theta) @ torch.eye(obj.dim, dtype=F64)
    assert float((cols - cols.T).abs().max()) <= 1e-12 * float(cols.abs().max())
    assert float((cols - H).abs().max()) <= 1e-12 * float(H.abs().max())
    op = obj.hvp_operator(theta)
    for _ in range(3):
        v = torch.randn(obj.dim, generator=g, dtype=F64)
        hv = obj.hvp(theta, v)
        assert rel(hv, H @ v) <= 1e-12
        assert rel(op.matvec(v), hv) <= 1e-12
        # central differences of the gradient: error O(h²) + O(eps/h)
        h = 1e-5
        fd = (obj.grad(theta + h * v) - obj.grad(theta - h * v)) / (2 * h)
        assert rel(hv, fd) <= 1e-7
    # central differences of the loss for the gradient
    v = torch.randn(obj.dim, generator=g, dtype=F64)
    h = 1e-5
    fd = (obj.loss(theta + h * v) - obj.loss(theta - h * v)) / (2 * h)
    assert float(obj.grad(theta) @ v) == pytest.approx(fd, rel=1e-7)
    assert op.n_matvec == 3
    V = torch.randn(obj.dim, 2, generator=g, dtype=F64)
    assert rel(op @ V, H @ V) <= 1e-12


def test_scipy_operator_matches_dense():
    obj, *_ = mlp_objective("ce", seed=4)
    theta = obj.initial_point()
    H = obj.hessian(theta).numpy()
    A = obj.hvp_operator(theta).to_scipy()
    import numpy as np
    v = np.random.default_rng(0).standard_normal(obj.dim)
    assert A.shape == (obj.dim, obj.dim)
    assert np.linalg.norm(A.matvec(v) - H @ v) <= 1e-12 * np.linalg.norm(H @ v)


# ---------------------------------------------------------------------- closed-form Hessians
def test_linear_regression_closed_form():
    """nn.Linear + MSELoss: L = 1/(n d_out) Σ‖W x_i + c − y_i‖²; H = (2/(n d_out)) I_out ⊗ X̃ᵀX̃."""
    n, d_in, d_out = 17, 4, 3
    g = torch.Generator().manual_seed(5)
    X = torch.randn(n, d_in, generator=g, dtype=F64)
    Y = torch.randn(n, d_out, generator=g, dtype=F64)
    model = nn.Linear(d_in, d_out).double()
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    assert obj.param_names == ("weight", "bias")
    theta = obj.initial_point()
    W, c = model.weight.detach(), model.bias.detach()
    R = X @ W.T + c - Y
    s = 2.0 / (n * d_out)
    assert obj.loss(theta) == pytest.approx(float((R ** 2).sum()) / (n * d_out), rel=1e-13)
    g_true = torch.cat([(s * R.T @ X).reshape(-1), s * R.sum(0)])
    assert rel(obj.grad(theta), g_true) <= 1e-13
    # layout: weight (o, i) row-major, then bias (o)
    I = torch.eye(d_out, dtype=F64)
    H_true = torch.zeros(obj.dim, obj.dim, dtype=F64)
    nw = d_out * d_in
    H_true[:nw, :nw] = s * torch.kron(I, X.T @ X)
    H_true[:nw, nw:] = s * torch.kron(I, X.sum(0).reshape(d_in, 1))
    H_true[nw:, :nw] = H_true[:nw, nw:].T
    H_true[nw:, nw:] = s * n * I
    H = obj.hessian(theta)
    assert float((H - H_true).abs().max()) <= 1e-13 * float(H_true.abs().max())
    # the Hessian is constant: same at another point
    assert float((obj.hessian(theta + 1.0) - H_true).abs().max()) <= 1e-13 * float(H_true.abs().max())


def deep_linear_zero(d_x=4, d_1=3, d_y=2, m=12, depth_hidden=1, seed=6):
    """Deep linear net without bias at W = 0 with the sum loss ½ Σ_i ‖P x_i − y_i‖² (THEORY.md §2)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, d_x, generator=g, dtype=F64)
    Y = torch.randn(m, d_y, generator=g, dtype=F64)
    dims = [d_x] + [d_1] * depth_hidden + [d_y]
    model = nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])]).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    loss_fn = lambda out, y: 0.5 * ((out - y) ** 2).sum(-1).mean()  # noqa: E731  mean-reduced ½‖·‖²
    obj = ls.Objective.from_module(model, loss_fn, (X, Y), reduction="sum")
    return obj, X, Y


def test_deep_linear_zero_hessian_spectrum():
    """H = 1 at W = 0: eigenvalues ±σ_i(XᵀY), each d_1 times, the rest zero; gradient zero."""
    d_x, d_1, d_y = 4, 3, 2
    obj, X, Y = deep_linear_zero(d_x, d_1, d_y)
    theta = obj.initial_point()
    assert obj.dim == d_1 * d_x + d_y * d_1
    assert float(theta.abs().max()) == 0.0
    assert obj.loss(theta) == pytest.approx(0.5 * float((Y ** 2).sum()), rel=1e-14)
    assert float(obj.grad(theta).abs().max()) == 0.0
    sig = torch.linalg.svdvals(X.T @ Y)
    true = torch.cat([sig.repeat(d_1), -sig.repeat(d_1), torch.zeros(obj.dim - 2 * d_1 * d_y, dtype=F64)])
    ev = torch.linalg.eigvalsh(obj.hessian(theta))
    assert torch.allclose(ev, true.sort().values, atol=1e-12 * float(sig[0]))
    # H = 2 hidden layers: the Hessian at W = 0 is exactly zero
    obj2, *_ = deep_linear_zero(depth_hidden=2)
    assert float(obj2.hessian(obj2.initial_point()).abs().max()) == 0.0


# ---------------------------------------------------------------------- reductions, per-example grads
def loop_per_example_grads(model, loss_fn, X, Y, theta_dict):
    """Reference: plain autograd on an independent copy, one example at a time."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name in theta_dict:
                p.copy_(theta_dict[name])
    rows = []
    for i in range(X.shape[0]):
        ref.zero_grad()
        loss_fn(ref(X[i:i + 1]), Y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in ref.parameters() if p.requires_grad]))
    return torch.stack(rows)


@pytest.mark.parametrize("task", ["mse", "ce"])
def test_per_example_grads_vs_loop_and_reductions(task):
    n = 13
    obj, model, X, Y, loss_fn = mlp_objective(task, seed=2, n=n)
    g = torch.Generator().manual_seed(3)
    theta = obj.initial_point() + 0.05 * torch.randn(obj.dim, generator=g, dtype=F64)
    ref = loop_per_example_grads(model, loss_fn, X, Y, obj.to_module_params(theta))
    for chunk in (None, 1, 4, n, 100):
        G = obj.per_example_grads(theta, chunk_size=chunk)
        assert G.shape == (n, obj.dim)
        assert rel(G, ref) <= 1e-13
    starts = [s for s, _ in obj.iter_per_example_grads(theta, chunk_size=4)]
    assert starts == [0, 4, 8, 12]
    G = obj.per_example_grads(theta)
    assert rel(G.mean(0), obj.grad(theta)) <= 1e-13
    per_loss = torch.stack([loss_fn(torch.func.functional_call(model, obj.to_module_params(theta), (X[i:i + 1],)),
                                    Y[i:i + 1]) for i in range(n)])
    assert obj.loss(theta) == pytest.approx(float(per_loss.mean()), rel=1e-13)
    obj_sum = ls.Objective.from_module(model, loss_fn, (X, Y), reduction="sum")
    assert obj_sum.loss(theta) == pytest.approx(n * obj.loss(theta), rel=1e-13)
    assert obj_sum.loss(theta) == pytest.approx(float(per_loss.sum()), rel=1e-13)
    assert rel(obj_sum.grad(theta), G.sum(0)) <= 1e-13
    assert rel(obj_sum.per_example_grads(theta), G) <= 1e-14
    v = torch.randn(obj.dim, generator=g, dtype=F64)
    assert rel(obj_sum.hvp(theta, v), n * obj.hvp(theta, v)) <= 1e-13


# ---------------------------------------------------------------------- DataLoader == one batch
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dataloader_equals_single_batch(reduction):
    n = 23
    model = mlp(seed=8)
    X, Y = mlp_data(n=n, task="ce", seed=9)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(X, Y), batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(0))
    a = ls.Objective.from_module(model, loss_fn, (X, Y), reduction=reduction)
    b = ls.Objective.from_module(model, loss_fn, loader, reduction=reduction)
    assert len(b.batches) == 5 and b.batches[-1][0].shape[0] == 3  # uneven last batch
    assert a.n_examples == b.n_examples == n
    g = torch.Generator().manual_seed(1)
    theta = a.initial_point() + 0.1 * torch.randn(a.dim, generator=g, dtype=F64)
    v = torch.randn(a.dim, generator=g, dtype=F64)
    assert b.loss(theta) == pytest.approx(a.loss(theta), rel=1e-13)
    assert rel(b.grad(theta), a.grad(theta)) <= 1e-13
    assert rel(b.hvp(theta, v), a.hvp(theta, v)) <= 1e-12
    assert rel(b.hvp_operator(theta).matvec(v), a.hvp(theta, v)) <= 1e-12
    assert float((b.hessian(theta) - a.hessian(theta)).abs().max()) <= 1e-12
    Ga, Gb = a.per_example_grads(theta), b.per_example_grads(theta, chunk_size=2)
    # same rows up to the loader's permutation: compare permutation-invariant statistics
    assert rel(Gb.sum(0), Ga.sum(0)) <= 1e-12
    assert rel(Gb.T @ Gb, Ga.T @ Ga) <= 1e-12
    sa, sb = ls.cancellation_stats(a, theta), ls.cancellation_stats(b, theta, chunk_size=3)
    for f in ("kappa", "alpha", "diversity", "kappa_j_mean", "gsnr_median", "sign_agreement_mean"):
        assert getattr(sb, f) == pytest.approx(getattr(sa, f), rel=1e-10), f


def test_list_of_batches_is_data():
    model = mlp(seed=1)
    X, Y = mlp_data(n=10, seed=2)
    a = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    b = ls.Objective.from_module(model, nn.MSELoss(), [(X[:3], Y[:3]), (X[3:], Y[3:])])
    th = a.initial_point()
    assert b.loss(th) == pytest.approx(a.loss(th), rel=1e-14)


# ---------------------------------------------------------------------- the user's model is untouched
def test_model_never_mutated_and_param_maps():
    model = mlp(seed=5)
    model.train()  # no Dropout/BatchNorm: train mode is harmless and must be preserved
    X, Y = mlp_data(n=12, task="ce", seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), (X, Y))
    theta = obj.initial_point() + 0.3
    obj.loss(theta); obj.grad(theta); obj.hvp(theta, theta); obj.hessian(theta)
    obj.per_example_grads(theta, chunk_size=5)
    ls.extreme_eigs(obj, theta, k=2)
    ls.hessian_trace(obj, theta, n_samples=3)
    ls.spectral_density(obj, theta, n_runs=2, n_steps=10)
    ls.cancellation_stats(obj, theta, chunk_size=4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert obj.module is not model

    # flat vector <-> named tensors
    params = obj.to_module_params(theta)
    assert list(params) == [n for n, _ in model.named_parameters()]
    for (name, p), shape in zip(model.named_parameters(), obj.param_shapes):
        assert params[name].shape == p.shape == shape
        assert torch.equal(params[name].reshape(-1), theta[obj.spec.slices[name]])
    assert torch.equal(obj.flatten_params(params), theta)
    assert obj.spec.locate(0) == obj.param_names[0]
    assert obj.spec.locate(obj.dim - 1) == obj.param_names[-1]
    assert torch.equal(obj.initial_point(), torch.cat([p.detach().reshape(-1) for p in model.parameters()]))

    # write_to_module is the one mutating call: it writes theta, and the model then computes obj.loss
    target = copy.deepcopy(model)
    obj.write_to_module(target, theta)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in target.parameters()]), theta)
    with torch.no_grad():
        out = target(X)
    assert float(nn.CrossEntropyLoss()(out, Y)) == pytest.approx(obj.loss(theta), rel=1e-14)


def test_frozen_parameters_are_excluded():
    model = mlp(seed=0)
    model[0].weight.requires_grad_(False)
    X, Y = mlp_data(n=8, seed=0)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    assert "0.weight" not in obj.param_names
    assert obj.dim == sum(p.numel() for p in model.parameters() if p.requires_grad)
    ref = loop_per_example_grads(model, nn.MSELoss(), X, Y, obj.to_module_params(obj.initial_point()))
    G = obj.per_example_grads(obj.initial_point())
    assert rel(G, ref) <= 1e-13


# ---------------------------------------------------------------------- dtype / device
def test_float32_path_and_dtype_cast():
    model32 = mlp(seed=2).float()
    X, Y = mlp_data(n=16, task="ce", seed=3)
    obj32 = ls.Objective.from_module(model32, nn.CrossEntropyLoss(), (X.float(), Y))
    assert obj32.dtype == torch.float32
    obj64 = ls.Objective.from_module(model32, nn.CrossEntropyLoss(), (X.float(), Y), dtype=F64)
    assert obj64.dtype == F64 and all(p.dtype == F64 for p in obj64.module.parameters())
    assert model32[0].weight.dtype == torch.float32  # the user's model keeps its dtype
    th64 = obj64.initial_point()
    th32 = obj32.initial_point()
    assert th32.dtype == torch.float32 and torch.equal(th32.double(), th64)
    v = torch.randn(obj64.dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert obj32.loss(th32) == pytest.approx(obj64.loss(th64), rel=1e-5)
    assert rel(obj32.grad(th32).double(), obj64.grad(th64)) <= 1e-4
    assert rel(obj32.hvp(th32, v.float()).double(), obj64.hvp(th64, v)) <= 1e-4
    assert obj32.per_example_grads(th32).dtype == torch.float32
    r32 = ls.extreme_eigs(obj32, th32, k=1)
    ev = torch.linalg.eigvalsh(obj64.hessian(th64))
    assert r32.tol == 1e-4 and r32.all_converged
    assert torch.allclose(r32.values.double(), torch.stack([ev[0], ev[-1]]), rtol=0, atol=1e-4 * float(ev.abs().max()))


def test_device_cpu_honoured():
    model = mlp(seed=0)
    X, Y = mlp_data(n=6, seed=0)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y), device="cpu")
    assert obj.device == torch.device("cpu")
    th = obj.initial_point()
    assert th.device.type == "cpu" and obj.grad(th).device.type == "cpu"
    assert obj.hvp(th, th).device.type == "cpu"
    assert all(b[0].device.type == "cpu" for b in obj.batches)
    f = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.ones(3), dtype=F64, device="cpu")
    assert f.dtype == F64 and f.device.type == "cpu"
    assert rel(f.grad(f.initial_point()), 2 * torch.ones(3, dtype=F64)) == 0.0


def test_works_under_no_grad():
    """Users often call analysis code inside torch.no_grad(); curvature must still be exact."""
    obj, A, b = quadratic([-1.0, 0.0, 2.0, 3.0], seed=9)
    x = obj.initial_point()
    v = torch.ones(obj.dim, dtype=F64)
    with torch.no_grad():
        assert rel(obj.grad(x), A @ x + b) <= 1e-13
        assert rel(obj.hvp(x, v), A @ v) <= 1e-13
        assert rel(obj.hvp_operator(x).matvec(v), A @ v) <= 1e-13
        res = ls.extreme_eigs(obj, x, k=1)
    assert torch.allclose(res.values, torch.tensor([-1.0, 3.0], dtype=F64), atol=1e-12)


# ---------------------------------------------------------------------------- issue 11: data
import gc  # noqa: E402
import weakref  # noqa: E402

from torch.utils.data import DataLoader, Dataset  # noqa: E402


class _CountingData(Dataset):
    """A map-style dataset whose collate function tracks every batch tensor it creates."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(n)
        self.X = torch.randn(n, 3, generator=g, dtype=torch.float64)
        self.Y = torch.randn(n, 2, generator=g, dtype=torch.float64)
        self.live: weakref.WeakSet = weakref.WeakSet()
        self.peak = 0
        self.created = 0

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, i: int):
        return self.X[i], self.Y[i]

    def collate(self, items):
        x = torch.stack([a for a, _ in items])
        y = torch.stack([b for _, b in items])
        self.live.add(x)
        self.live.add(y)
        self.created += 1
        self.peak = max(self.peak, len(self.live) // 2)
        return x, y


def _counted_objective(n_batches: int):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    ds = _CountingData(4 * n_batches)
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=ds.collate,
                        generator=torch.Generator().manual_seed(1))
    return ls.Objective.from_module(model, nn.MSELoss(), loader), ds


def test_streaming_memory_does_not_grow_with_the_data():
    for n_batches in (3, 12):
        obj, ds = _counted_objective(n_batches)
        gc.collect()
        assert len(ds.live) == 0  # the objective keeps no batch after construction
        ds.peak = 0
        th = obj.initial_point()
        obj.loss(th)
        obj.loss_and_grad(th)
        op = obj.hvp_operator(th)  # streaming data: no cached whole-data graph
        assert not op.cache
        op.matvec(th)
        ls.hessian_trace(obj, th, n_samples=2)
        obj.curvature_operator(th, "ggn").matvec(th)
        ls.cancellation_stats(obj, th, chunk_size=2)
        assert ds.peak <= 2, (n_batches, ds.peak)  # the batch in use and the next one being collated
        gc.collect()
        assert len(ds.live) == 0


def test_shuffling_loader_defines_one_fixed_objective():
    obj, ds = _counted_objective(5)
    th = obj.initial_point()
    first = [b[0].clone() for b, _, _ in obj.iter_batches()]
    second = [b[0].clone() for b, _, _ in obj.iter_batches()]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(torch.cat(first), ds.X)  # the loader did shuffle, once
    l1, g1 = obj.loss_and_grad(th)
    l2, g2 = obj.loss_and_grad(th)
    assert l1 == l2 and torch.equal(g1, g2)  # bit-identical between passes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    ref = ls.Objective.from_module(model, nn.MSELoss(), (ds.X, ds.Y))
    assert l1 == pytest.approx(ref.loss(th), rel=1e-14)


def test_data_stays_where_it_lives():
    X = torch.randn(6, 3, dtype=torch.float64)
    Y = torch.randn(6, 2, dtype=torch.float64)
    obj = ls.Objective.from_module(nn.Linear(3, 2).double(), nn.MSELoss(), [(X[:3], Y[:3]), (X[3:], Y[3:])])
    (x0, _), n, w = next(obj.iter_batches())
    assert x0.data_ptr() == X.data_ptr() and n == 3 and w == 0.5  # no copy on the same device and dtype
    assert obj.hvp_operator(obj.initial_point()).cache  # in-memory data: the graph may be kept


def test_one_shot_iterator_and_changing_iterables():
    X = torch.randn(6, 3, dtype=torch.float64)
    Y = torch.randn(6, 2, dtype=torch.float64)
    gen = ((X[i:i + 2], Y[i:i + 2]) for i in range(0, 6, 2))
    obj = ls.Objective.from_module(nn.Linear(3, 2).double(), nn.MSELoss(), gen)
    assert obj.n_examples == 6 and obj.loss(obj.initial_point()) == obj.loss(obj.initial_point())

    class Growing:
        def __init__(self) -> None:
            self.calls = 0

        def __iter__(self):
            self.calls += 1
            k = 2 if self.calls == 1 else 3
            return iter([(X[:k], Y[:k])])

    with pytest.raises(ValueError, match="changed between passes: batch 0 had 2 examples, now 3"):
        ls.Objective.from_module(nn.Linear(3, 2).double(), nn.MSELoss(), Growing())


def test_dict_batches_batch_size_and_non_tensor_leaves():
    torch.manual_seed(3)
    model = nn.Linear(3, 1).double()
    X = torch.randn(5, 3, dtype=torch.float64)
    Y = torch.randn(5, 1, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)

    def loss(m, b):
        assert b["tag"] == "train"
        return ((m(b["x"] * b["w"]) - b["y"]) ** 2).mean()

    batch = {"w": w, "x": X, "y": Y, "tag": "train"}
    obj = ls.Objective.from_batches(model, loss, batch, batch_size=lambda b: b["y"].shape[0])
    assert obj.n_examples == 5
    ref = float(((model(X * w) - Y) ** 2).mean().detach())
    assert obj.loss(obj.initial_point()) == pytest.approx(ref, rel=1e-14)
    with pytest.raises(ValueError, match=r"leading dimension.*\(3,\)"):
        obj.per_example_grads(obj.initial_point())
    # Without the shared tensor, per-example gradients vmap over every tensor and pass the tag through.
    obj2 = ls.Objective.from_batches(model, lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean() if b["tag"] else None,
                                     {"x": X, "y": Y, "tag": "t"})
    G = obj2.per_example_grads(obj2.initial_point())
    params = list(model.parameters())
    ref_G = torch.stack([torch.cat([t.reshape(-1) for t in torch.autograd.grad(((model(X[i:i + 1]) - Y[i:i + 1]) ** 2).mean(),
                                                                            params)]) for i in range(5)])
    assert float((G - ref_G).norm() / ref_G.norm()) < 1e-13


def test_token_counts_give_the_global_token_mean():
    """Padded language-model batches: counting tokens with batch_size makes the objective the mean over
    all real tokens of the data set (a token-mean per batch weighted by its token count)."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 6)).double().eval()
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append(1))
    ids = torch.randint(0, 6, (5, 4))
    labels = ids.clone()
    labels[0, 2:] = -100  # padding
    labels[3, 1:] = -100
    batches = [{"ids": ids[:2], "labels": labels[:2]}, {"ids": ids[2:], "labels": labels[2:]}]

    def loss(m, b):
        return nn.functional.cross_entropy(m(b["ids"]).reshape(-1, 6), b["labels"].reshape(-1), ignore_index=-100)

    obj = ls.Objective.from_batches(model, loss, batches, batch_size=lambda b: int((b["labels"] != -100).sum()))
    assert obj.n_examples == int((labels != -100).sum())
    ref = nn.functional.cross_entropy(model(ids).reshape(-1, 6), labels.reshape(-1), ignore_index=-100)
    calls.clear()
    assert obj.loss(obj.initial_point()) == pytest.approx(float(ref.detach()), rel=1e-14)
    assert len(calls) == 2  # module hooks fire, once per batch
