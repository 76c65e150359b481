"""Outer-product per-example statistics against the per-example (vmap) path, float64.

Reference: ``obj.per_example_grads`` (one gradient per example by autograd) reduced directly, and
``synaprune.rules.aggregate`` on that matrix for the SynaPrune aggregations.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import landscape as ls
from landscape.fast_stats import (aggregate_from_sums, example_grad_sums, example_grad_sums_for, fast_aggregate,
                                  layer_layout)
from synaprune.rules import aggregate

F64 = torch.float64


def _mlp(task: str, seed: int = 0, batches: int = 3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    g = torch.Generator().manual_seed(10 + seed)
    X = torch.randn(37, 4, generator=g, dtype=F64)
    if task == "mse":
        Y, loss = torch.randn(37, 3, generator=g, dtype=F64), nn.MSELoss()
    else:
        Y, loss = torch.randint(0, 3, (37,), generator=g), nn.CrossEntropyLoss()
    cuts = torch.linspace(0, 37, batches + 1).round().long().tolist()
    data = [(X[a:b], Y[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    return ls.Objective.from_module(model, loss, data), model, loss, X, Y


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-12) -> bool:
    return float((a - b).abs().max()) <= rtol * max(float(b.abs().max()), 1e-300)


@pytest.mark.parametrize("task", ["mse", "ce"])
def test_sums_match_per_example_path(task):
    obj, *_ = _mlp(task)
    theta = obj.initial_point() + 0.3 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(1), dtype=F64)
    G = obj.per_example_grads(theta)
    s = example_grad_sums(obj, theta, p_values=(1.0, 3.0, 0.5), devarg=True)
    assert s is not None and s.n == G.shape[0]
    assert _close(s.sum, G.sum(0)) and _close(s.sum_sq, (G * G).sum(0)) and _close(s.sum_abs, G.abs().sum(0))
    assert torch.equal(s.sum_sign, torch.sign(G).sum(0))
    for q in (1.0, 3.0, 0.5):
        assert _close(s.sum_pow[q], G.abs().pow(q).sum(0)), q
    norms2 = (G * G).sum(1)
    assert s.sum_norm == pytest.approx(float(norms2.sqrt().sum()), rel=1e-12)
    assert s.sum_norm_sq == pytest.approx(float(norms2.sum()), rel=1e-12)
    for name, sl in obj.spec.slices.items():
        sq = (G[:, sl] ** 2).sum(1)
        assert s.layer_sum_norm[name] == pytest.approx(float(sq.sqrt().sum()), rel=1e-12)
        assert s.layer_sum_norm_sq[name] == pytest.approx(float(sq.sum()), rel=1e-12)
    am, arg = G.abs().max(0)
    # (the batched and single-example passes round b_i differently in the last bits)
    assert _close(s.absmax, am)
    assert _close(s.signed_max, G.gather(0, arg[None]).squeeze(0))
    # the mean of the per-example gradients is the objective's gradient
    assert _close(s.sum / s.n, obj.grad(theta), rtol=1e-12)


def test_cancellation_stats_fast_equals_vmap():
    obj, *_ = _mlp("ce", seed=2)
    theta = obj.initial_point()
    fast = ls.cancellation_stats(obj, theta, fast=True)
    slow = ls.cancellation_stats(obj, theta, fast=False)
    auto = ls.cancellation_stats(obj, theta)
    assert auto == fast
    for key, value in slow.to_dict().items():
        if key == "per_layer":
            continue
        got = fast.to_dict()[key]
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-12, abs=1e-300), key
        else:
            assert got == value, key
    for layer in slow.per_layer:
        assert fast.per_layer[layer].kappa == pytest.approx(slow.per_layer[layer].kappa, rel=1e-12)
        assert fast.per_layer[layer].gsnr_median == pytest.approx(slow.per_layer[layer].gsnr_median, rel=1e-10)


def test_ties_and_signs_follow_the_lowest_index():
    """Bias-free Linear with loss = mean output: g_i = x_i, so ties are chosen by construction."""
    X = torch.tensor([[1.0, -2.0, 0.0], [-1.0, 2.0, 0.0], [0.5, -2.0, 0.0], [-1.0, 1.0, 0.0]], dtype=F64)
    obj = ls.Objective.from_module(nn.Linear(3, 1, bias=False).double(), lambda o, y: o.mean(),
                                   [(X[:2], torch.zeros(2, 1, dtype=F64)), (X[2:], torch.zeros(2, 1, dtype=F64))])
    s = example_grad_sums(obj, obj.initial_point(), devarg=True)
    assert torch.equal(s.signed_max, torch.tensor([1.0, -2.0, 0.0], dtype=F64))  # example 0 wins both ties
    assert torch.equal(s.sum_sign, torch.tensor([0.0, 0.0, 0.0], dtype=F64))
    for rule, p, tb in [("gd", 2, "argmax"), ("rms", 2, "argmax"), ("rms", 1, "zero"), ("rms", math.inf, "argmax"),
                        ("devarg", 2, "argmax")]:
        ref = aggregate(X, rule, p=p, tie_break=tb)
        got = aggregate_from_sums(example_grad_sums(obj, obj.initial_point(), p_values=() if math.isinf(p) else (p,),
                                                    devarg=True), rule, p=p, tie_break=tb)
        assert torch.equal(got, ref), (rule, p, tb)


@pytest.mark.parametrize("rule,p,tb", [("gd", 2, "argmax"), ("rms", 1, "argmax"), ("rms", 2, "zero"),
                                       ("rms", math.inf, "argmax"), ("devarg", 2, "argmax")])
def test_trainer_path_matches_rules_aggregate(rule, p, tb):
    obj, model, loss, X, Y = _mlp("mse", seed=3, batches=1)
    theta = obj.initial_point()
    idx = torch.tensor([0, 3, 4, 9, 20, 21, 30])
    G = obj.per_example_grads(theta)[idx]
    ref = aggregate(G, rule, p=p, tie_break=tb)
    got = fast_aggregate(obj.module, obj.param_names, obj.param_shapes, loss, X[idx], Y[idx], theta, rule,
                         p=p, tie_break=tb, chunk_size=3)
    assert _close(got, ref)


def test_ineligible_models_return_none_and_fall_back():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(12, 2, 5, 5, generator=g, dtype=F64)
    Y = torch.randn(12, 2, generator=g, dtype=F64)
    conv = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(18, 2)).double()  # grouped
    obj = ls.Objective.from_module(conv, nn.MSELoss(), (X, Y))
    assert example_grad_sums(obj, obj.initial_point()) is None
    with pytest.raises(ValueError, match="not eligible"):
        ls.cancellation_stats(obj, obj.initial_point(), fast=True)
    s = ls.cancellation_stats(obj, obj.initial_point())  # the vmap path
    G = obj.per_example_grads(obj.initial_point())
    assert s.grad_norm == pytest.approx(float(G.mean(0).norm()), rel=1e-12)
    # a trainable LayerNorm, a shared weight, and a 3-D input to a Linear are refused too
    ln = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    assert layer_layout(ln, tuple(n for n, _ in ln.named_parameters())) is None
    a, b = nn.Linear(4, 4).double(), nn.Linear(4, 4).double()
    b.weight = a.weight
    tied = nn.Sequential(a, nn.Tanh(), b)
    assert layer_layout(tied, tuple(n for n, _ in tied.named_parameters())) is None
    seq = nn.Sequential(nn.Linear(5, 3), nn.Flatten(), nn.Linear(15, 2)).double()
    Xs = torch.randn(12, 5, 5, generator=g, dtype=F64)
    obj3 = ls.Objective.from_module(seq, nn.MSELoss(), (Xs, Y))
    assert example_grad_sums(obj3, obj3.initial_point()) is None


class _LeakyUse(nn.Module):
    """Uses its Linear's weight outside the Linear call as well (invisible to the outer products)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) + 0.1 * (self.lin.weight ** 2).sum()


def test_parameters_used_outside_the_layers_are_refused():
    g = torch.Generator().manual_seed(5)
    X, Y = torch.randn(9, 4, generator=g, dtype=F64), torch.randn(9, 3, generator=g, dtype=F64)
    obj = ls.Objective.from_module(_LeakyUse().double(), nn.MSELoss(), (X, Y))
    assert layer_layout(obj.module, obj.param_names) is not None  # structurally it looks eligible
    assert example_grad_sums(obj, obj.initial_point()) is None     # the gradient guard catches it
    s = ls.cancellation_stats(obj, obj.initial_point())
    assert s.grad_norm == pytest.approx(float(obj.grad(obj.initial_point()).norm()), rel=1e-12)
    with pytest.raises(ValueError, match="p_values"):
        example_grad_sums(obj, obj.initial_point(), p_values=(math.inf,))


@pytest.mark.parametrize("rule,p", [("rms", 2), ("rms", 1), ("devarg", 2), ("gd", 2)])
def test_wiring_for_the_trainer_matches_aggregate_direction(rule, p):
    """The call the trainer's rules make (synaprune.rules.aggregate_direction) on its DataAccess."""
    from synaprune.access import DataAccess
    from synaprune.rules import aggregate_direction

    obj, model, loss, X, Y = _mlp("ce", seed=7, batches=2)
    access = DataAccess(obj, loss, torch.Generator().manual_seed(0))
    theta = obj.initial_point()
    idx = torch.tensor([1, 2, 5, 8, 13, 34])
    ref = aggregate_direction(access, theta, rule, idx=idx, p=p)
    Xi, Yi = access.X[idx], access.Y[idx]
    got = fast_aggregate(access.module, access.spec.names, access.spec.shapes, access.loss_fn, Xi, Yi, theta, rule, p=p)
    assert _close(access.scale * got, ref.double())


class _SmallCNN(nn.Module):
    """Conv2d (stride 2, padding 1, dilation 2) + ReLU + Conv1d ('same', dilation 2, no bias) over
    the rows + Tanh + Linear: every conv option the unfold path handles."""

    def __init__(self) -> None:
        super().__init__()
        self.c2 = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2)
        self.c1 = nn.Conv1d(3, 2, 2, padding="same", dilation=2, bias=False)
        self.fc = nn.Linear(2 * 9, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c2(x))                         # (n, 3, 3, 3)
        h = torch.tanh(self.c1(h.flatten(2)))              # (n, 2, 9)
        return self.fc(h.flatten(1))


def _cnn(task: str = "ce", n: int = 23):
    torch.manual_seed(6)
    model = _SmallCNN().double()
    g = torch.Generator().manual_seed(8)
    X = torch.randn(n, 2, 7, 7, generator=g, dtype=F64)
    if task == "ce":
        Y, loss = torch.randint(0, 4, (n,), generator=g), nn.CrossEntropyLoss()
    else:
        Y, loss = torch.randn(n, 4, generator=g, dtype=F64), nn.MSELoss()
    return ls.Objective.from_module(model, loss, [(X[:10], Y[:10]), (X[10:], Y[10:])]), loss, X, Y


@pytest.mark.parametrize("task", ["ce", "mse"])
def test_conv_sums_match_per_example_path(task):
    obj, *_ = _cnn(task)
    assert set(layer_layout(obj.module, obj.param_names).values()) >= {("c2", "weight"), ("c1", "weight")}
    theta = obj.initial_point() + 0.2 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(2), dtype=F64)
    G = obj.per_example_grads(theta)
    s = example_grad_sums(obj, theta, p_values=(1.0, 2.0, 0.5), devarg=True)
    assert s is not None and s.n == G.shape[0]
    assert _close(s.sum, G.sum(0)) and _close(s.sum_sq, (G * G).sum(0)) and _close(s.sum_abs, G.abs().sum(0))
    for q in (1.0, 2.0, 0.5):
        assert _close(s.sum_pow[q], G.abs().pow(q).sum(0)), q
    norms2 = (G * G).sum(1)
    assert s.sum_norm == pytest.approx(float(norms2.sqrt().sum()), rel=1e-12)
    assert s.sum_norm_sq == pytest.approx(float(norms2.sum()), rel=1e-12)
    for name, sl in obj.spec.slices.items():
        sq = (G[:, sl] ** 2).sum(1)
        assert s.layer_sum_norm_sq[name] == pytest.approx(float(sq.sum()), rel=1e-12), name
    am, arg = G.abs().max(0)
    assert _close(s.absmax, am) and _close(s.signed_max, G.gather(0, arg[None]).squeeze(0))
    # signs: a conv-weight entry is a sum over positions, so its sign is only defined where it is
    # not at round-off; compare exactly on the columns where every g_ij is 0 (a dead ReLU) or clearly nonzero
    clear = ((G == 0) | (G.abs() > 1e-9 * float(G.abs().max()))).all(0)
    assert int(clear.sum()) > 0.9 * obj.dim
    assert torch.equal(s.sum_sign[clear], torch.sign(G).sum(0)[clear])
    assert _close(s.sum / s.n, obj.grad(theta))
    c = ls.cancellation_stats(obj, theta, fast=True)
    v = ls.cancellation_stats(obj, theta, fast=False)
    assert c.kappa == pytest.approx(v.kappa, rel=1e-12) and c.grad_norm == pytest.approx(v.grad_norm, rel=1e-12)


@pytest.mark.parametrize("rule,p,tb", [("gd", 2, "argmax"), ("rms", 1, "argmax"), ("rms", 2, "zero"),
                                       ("rms", math.inf, "argmax"), ("devarg", 2, "argmax")])
def test_conv_trainer_aggregation_matches_vmap(rule, p, tb):
    from synaprune.access import DataAccess
    from synaprune.rules import aggregate_direction

    obj, loss, X, Y = _cnn("ce")
    access = DataAccess(obj, loss, torch.Generator().manual_seed(0))
    theta = obj.initial_point()
    idx = torch.tensor([0, 2, 3, 7, 11, 19, 22])
    for i in (None, idx):
        ref = aggregate_direction(access, theta, rule, idx=i, p=p, tie_break=tb, fast=False)
        got = aggregate_direction(access, theta, rule, idx=i, p=p, tie_break=tb, fast=True, chunk_size=4)
        assert _close(got, ref), (rule, p, tb)


def test_rms_with_dead_units_skips_the_tie_pass_and_matches_aggregate():
    """A ReLU unit dead on every example has g_ij = 0 for all i: μ_j = 0 is a tie whose aggregate
    is 0 whatever the tie-break, so ``fast_aggregate`` needs no devarg pass for it (the sums
    carry no ``signed_max``), gives bit for bit what the pass with the devarg max gives, and agrees
    with ``aggregate`` on the explicit per-example gradients to round-off."""
    obj, model, loss, X, Y = _mlp("mse", seed=3, batches=1)
    with torch.no_grad():
        model[2].bias.fill_(-1e3)   # the ReLU after the second layer is dead on every example
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    G = obj.per_example_grads(theta)
    dead = (G == 0).all(0)
    assert int(dead.sum()) > 0
    got = fast_aggregate(obj.module, obj.param_names, obj.param_shapes, loss, X, Y, theta, "rms", p=2)
    assert _close(got, aggregate(G, "rms", p=2, tie_break="argmax"))
    assert torch.equal(got[dead], torch.zeros(int(dead.sum()), dtype=F64))
    sums = example_grad_sums_for(obj.module, obj.param_names, obj.param_shapes, loss, X, Y, theta, p_values=(2.0,))
    full = example_grad_sums_for(obj.module, obj.param_names, obj.param_shapes, loss, X, Y, theta, p_values=(2.0,),
                                 devarg=True)
    assert sums.signed_max is None
    assert torch.equal(aggregate_from_sums(sums, "rms"), got) and torch.equal(aggregate_from_sums(full, "rms"), got)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_without_moments_the_other_sums_are_the_same_floats(arch):
    """``moments=False`` (what the rules ask for) leaves Σ g² and Σ sign g out and every other field
    unchanged bit for bit; over several chunks, against the per-example path too."""
    if arch == "mlp":
        obj, model, loss, X, Y = _mlp("ce")
    else:
        obj, loss, X, Y = _cnn("mse")
        model = obj.module
    theta = obj.initial_point() + 0.3 * torch.randn(obj.dim, generator=torch.Generator().manual_seed(4), dtype=F64)
    args = (model, obj.param_names, obj.param_shapes, loss, X, Y, theta)
    full = example_grad_sums_for(*args, p_values=(2.0,), devarg=True, chunk_size=9)
    lean = example_grad_sums_for(*args, p_values=(2.0,), devarg=True, chunk_size=9, moments=False)
    assert lean.sum_sq is None and lean.sum_sign is None and full.sum_sq is not None
    for f in ("sum", "sum_abs", "absmax", "signed_max"):
        assert torch.equal(getattr(lean, f), getattr(full, f)), f
    assert torch.equal(lean.sum_pow[2.0], full.sum_pow[2.0])
    assert (lean.sum_norm, lean.sum_norm_sq, lean.n) == (full.sum_norm, full.sum_norm_sq, full.n)
    G = obj.per_example_grads(theta)
    assert _close(lean.sum_pow[2.0], (G * G).sum(0)) and _close(lean.sum, G.sum(0))
