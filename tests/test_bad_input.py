"""Every bad input named in issue 2 gets a clear error that names the problem."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape as ls

F64 = torch.float64


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)


def good_objective():
    return ls.Objective.from_module(small_model(), nn.MSELoss(), data())


# ---------------------------------------------------------------------- non-finite values
def test_nonfinite_loss_names_the_batch():
    X, Y = data(n=10)
    X[7, 1] = float("nan")
    obj = ls.Objective.from_module(small_model(), nn.MSELoss(), [(X[:5], Y[:5]), (X[5:], Y[5:])])
    th = obj.initial_point()
    with pytest.raises(ls.NonFiniteError, match=r"loss is nan on batch 1 \(examples 5\.\.9\)"):
        obj.loss(th)
    with pytest.raises(ls.NonFiniteError, match="batch 1"):
        obj.grad(th)
    with pytest.raises(ls.NonFiniteError, match=r"per-example gradient is non-finite for example 7 on batch 1 "
                                                r"\(examples 5\.\.9\), first in parameter '0\.weight'"):
        obj.per_example_grads(th)
    with pytest.raises(ls.NonFiniteError, match="for example 7"):
        ls.cancellation_stats(obj, th, chunk_size=1)
    with pytest.raises(ls.NonFiniteError):
        obj.hvp(th, th)
    with pytest.raises(ls.NonFiniteError, match="Hessian entry"):
        obj.hessian(th)
    assert issubclass(ls.NonFiniteError, FloatingPointError)


def test_infinite_loss_from_theta():
    obj = ls.Objective.from_function(lambda x: torch.exp(x).sum(), torch.zeros(2, dtype=F64))
    with pytest.raises(ls.NonFiniteError, match="loss is inf on the function"):
        obj.loss(torch.tensor([1e4, 0.0], dtype=F64))


class SqrtScale(nn.Module):
    """out = x · √w: the loss is finite at w = 0 but its gradient is infinite."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=F64))
        self.lin = nn.Linear(3, 2).double()

    def forward(self, x):
        return self.lin(x) * torch.sqrt(self.w)


def test_nonfinite_gradient_names_the_parameter():
    model = SqrtScale()
    obj = ls.Objective.from_module(model, nn.MSELoss(), data())
    th = obj.initial_point()
    assert obj.param_names[0] == "w"
    # loss is finite
    assert obj.loss(th) == pytest.approx(float((data()[1] ** 2).mean()))
    with pytest.raises(ls.NonFiniteError, match=r"gradient is non-finite on batch 0.*parameter 'w' \(flat index 0\)"):
        obj.grad(th)
    f = ls.Objective.from_function(lambda x: torch.sqrt(x).sum(), torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.raises(ls.NonFiniteError, match=r"parameter 'x' \(flat index 1\)"):
        f.grad(f.initial_point())


def test_nonfinite_curvature():
    # x^1.5: finite loss and gradient at 0, infinite second derivative
    f = ls.Objective.from_function(lambda x: (x ** 1.5).sum(), torch.tensor([1.0, 0.0], dtype=F64))
    th = f.initial_point()
    assert torch.equal(f.grad(th), torch.tensor([1.5, 0.0], dtype=F64))
    with pytest.raises(ls.NonFiniteError, match="Hessian-vector product"):
        f.hvp(th, torch.ones(2, dtype=F64))
    with pytest.raises(ls.NonFiniteError, match=r"Hessian entry \(\d, 1\) is non-finite"):
        f.hessian(th)


# ---------------------------------------------------------------------- models
def test_no_trainable_parameters():
    model = small_model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        ls.Objective.from_module(model, nn.MSELoss(), data())
    with pytest.raises(ValueError, match="no trainable parameters"):
        ls.Objective.from_module(nn.Tanh(), nn.MSELoss(), data())
    with pytest.raises(TypeError, match="nn.Module"):
        ls.Objective.from_module(lambda x: x, nn.MSELoss(), data())


@pytest.mark.parametrize("layer", [nn.Dropout(0.1), nn.BatchNorm1d(4)])
def test_train_mode_dropout_batchnorm_refused(layer):
    model = nn.Sequential(nn.Linear(3, 4), layer, nn.Tanh(), nn.Linear(4, 2)).double()
    model.train()
    with pytest.raises(ValueError, match=r"train mode.*model\.eval\(\)"):
        ls.Objective.from_module(model, nn.MSELoss(), data())
    model.eval()
    obj = ls.Objective.from_module(model, nn.MSELoss(), data())  # eval mode: fine, and deterministic
    th = obj.initial_point()
    assert obj.loss(th) == obj.loss(th)
    assert not model.training


# ---------------------------------------------------------------------- data
def test_empty_data():
    for bad in [(torch.empty(0, 3, dtype=F64), torch.empty(0, 2, dtype=F64)), [],
                DataLoader(TensorDataset(torch.empty(0, 3), torch.empty(0, 2)), batch_size=4)]:
        with pytest.raises(ValueError, match="data is empty"):
            ls.Objective.from_module(small_model(), nn.MSELoss(), bad)
    with pytest.raises(ValueError, match="data is None"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), None)


def test_batch_sizes_differ():
    X, Y = data()
    with pytest.raises(ValueError, match="inputs have 8 examples but targets have 7"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), (X, Y[:7]))
    with pytest.raises(ValueError, match="batch 1: inputs have 4 examples but targets have 3"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), [(X[:4], Y[:4]), (X[4:], Y[4:7])])


def test_malformed_data():
    X, Y = data()
    with pytest.raises(TypeError, match="single tensor"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), X)
    with pytest.raises(TypeError, match="batch 0 is not an"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), [X])
    with pytest.raises(TypeError, match="neither"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), 3)
    with pytest.raises(ValueError, match="reduction"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), (X, Y), reduction="max")
    with pytest.raises(TypeError, match="floating"):
        ls.Objective.from_module(small_model(), nn.MSELoss(), (X, Y), dtype=torch.int64)


# ---------------------------------------------------------------------- theta and vectors
def test_theta_wrong_length_or_dtype():
    obj = good_objective()
    th = obj.initial_point()
    for call in (obj.loss, obj.grad, obj.per_example_grads, obj.to_module_params, obj.hessian,
                 lambda t: obj.hvp(t, th), obj.hvp_operator, lambda t: ls.extreme_eigs(obj, t)):
        with pytest.raises(ValueError, match=f"theta must be a flat vector of length {obj.dim}"):
            call(th[:-1])
        with pytest.raises(ValueError, match="flat vector"):
            call(th.reshape(1, -1))
        with pytest.raises(TypeError, match=r"theta has dtype torch.float32 but the objective uses torch.float64"):
            call(th.float())
        with pytest.raises(TypeError, match="must be a torch.Tensor"):
            call(th.tolist())
    with pytest.raises(ValueError, match="v must be a flat vector"):
        obj.hvp(th, th[:3])
    with pytest.raises(ValueError, match="x0 must be a non-empty 1-D tensor"):
        ls.Objective.from_function(lambda x: x.sum(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="scalar"):
        ls.Objective.from_function(lambda x: x * 2, torch.zeros(3))


# ---------------------------------------------------------------------- eigen-solver arguments
def test_eigs_bad_arguments():
    obj = good_objective()
    th = obj.initial_point()
    with pytest.raises(ValueError, match=f"asked for {obj.dim + 1} eigenpairs.*dim {obj.dim}"):
        ls.extreme_eigs(obj, th, k=obj.dim + 1, which="largest")
    with pytest.raises(ValueError, match="dim"):
        ls.extreme_eigs(obj, th, k=(obj.dim, 1))
    with pytest.raises(ValueError, match="k must be positive"):
        ls.extreme_eigs(obj, th, k=0)
    with pytest.raises(ValueError, match="k must be positive"):
        ls.extreme_eigs(obj, th, k=(-1, 2))
    with pytest.raises(ValueError, match="which"):
        ls.extreme_eigs(obj, th, which="top")
    with pytest.raises(ValueError, match="needs which='both'"):
        ls.extreme_eigs(obj, th, k=(1, 2), which="largest")
    for tol in (0.0, 1.0, -1e-3, 2.0):
        with pytest.raises(ValueError, match=r"tol must lie in \(0, 1\)"):
            ls.extreme_eigs(obj, th, tol=tol)
    with pytest.raises(ValueError, match="max_iter"):
        ls.extreme_eigs(obj, th, k=3, max_iter=5)


# ---------------------------------------------------------------------- dense Hessian limit
def test_dense_hessian_size_limit():
    obj = good_objective()  # dim 26
    th = obj.initial_point()
    with pytest.raises(ValueError, match=r"dense Hessian of dim 26 exceeds max_dim=10.*larger max_dim"):
        obj.hessian(th, max_dim=10)
    obj.hessian_max_dim = 20
    with pytest.raises(ValueError, match="max_dim=20"):
        obj.hessian(th)
    H = obj.hessian(th, max_dim=26)  # raising the limit allows it
    assert H.shape == (26, 26)
    big = ls.Objective.from_module(nn.Linear(100, 50).double(), nn.MSELoss(),
                                   (torch.randn(4, 100, dtype=F64), torch.randn(4, 50, dtype=F64)))
    assert big.dim == 5050 > ls.objective.DEFAULT_HESSIAN_MAX_DIM
    with pytest.raises(ValueError, match="dense Hessian of dim 5050 exceeds max_dim=4096"):
        big.hessian(big.initial_point())


def test_per_example_misuse():
    obj = good_objective()
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        obj.per_example_grads(obj.initial_point(), chunk_size=0)
    f = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="per-example gradients need a model"):
        f.per_example_grads(f.initial_point())


def test_good_input_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        obj = good_objective()
        th = obj.initial_point()
        obj.loss(th), obj.grad(th), obj.hvp(th, th), obj.per_example_grads(th, chunk_size=3)


# ---------------------------------------------------------------- added after review
def test_sum_reduced_criterion_is_refused():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="not a mean over examples"):
        ls.Objective.from_module(model, torch.nn.MSELoss(reduction="sum"), (X, Y))
    # The mean-reduced criterion with reduction="sum" gives the sum of the per-example losses.
    obj = ls.Objective.from_module(model, torch.nn.MSELoss(), (X, Y), reduction="sum")
    theta = obj.initial_point()
    per_example = ((model(X) - Y) ** 2).mean(1)
    assert obj.loss(theta) == pytest.approx(float(per_example.sum()), rel=1e-12)


def test_hvp_operator_checks_vector_shape():
    obj = ls.Objective.from_function(lambda x: (x ** 2).sum(), torch.zeros(3, dtype=torch.float64))
    op = obj.hvp_operator(obj.initial_point())
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        op.matvec(torch.ones(4, dtype=torch.float64))


def test_lanczos_rejects_zero_start_and_no_steps():
    mv = lambda v: 2.0 * v  # noqa: E731
    with pytest.raises(ValueError, match="non-zero start vector"):
        ls.lanczos(mv, torch.zeros(4, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="max_steps"):
        ls.lanczos(mv, torch.ones(4, dtype=torch.float64), 0)


def test_gradient_of_a_constant_objective_is_zero():
    obj = ls.Objective.from_function(lambda x: torch.tensor(3.0, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    loss, g = obj.loss_and_grad(obj.initial_point())
    assert loss == 3.0 and torch.equal(g, torch.zeros(2, dtype=torch.float64))


# ---------------------------------------------------------------------- issue 11: NaN in every function
def test_nan_in_the_data_raises_naming_the_batch_everywhere():
    X, Y = data(n=10)
    X[7, 1] = float("nan")
    obj = ls.Objective.from_module(small_model(), nn.MSELoss(), [(X[:5], Y[:5]), (X[5:], Y[5:])])
    th = obj.initial_point()
    where = r"batch 1 \(examples 5\.\.9\)"
    calls = {
        "hvp": lambda: obj.hvp(th, th),
        "operator": lambda: obj.hvp_operator(th).matvec(th),
        "uncached operator": lambda: obj.hvp_operator(th, cache=False).matvec(th),
        "hessian_trace": lambda: ls.hessian_trace(obj, th, n_samples=3),
        "hessian_trace ggn": lambda: ls.hessian_trace(obj, th, n_samples=3, curvature="ggn"),
        "spectral_density": lambda: ls.spectral_density(obj, th, n_runs=1, n_steps=5),
        "extreme_eigs": lambda: ls.extreme_eigs(obj, th, 1, "both"),
        "ggn": lambda: obj.curvature_operator(th, "ggn").matvec(th),
        "ef": lambda: obj.curvature_operator(th, "ef"),
        "surface_1d": lambda: ls.surface_1d(obj, th, steps=3),
        "surface_2d": lambda: ls.surface_2d(obj, th, steps=3),
        "hessian": lambda: obj.hessian(th),
        "per_block_extremes": lambda: ls.per_block_extremes(obj, th),
    }
    for name, call in calls.items():
        with pytest.raises(ls.NonFiniteError, match=where):
            call()


def test_nan_theta_raises_in_trace_density_and_surfaces():
    obj = good_objective()
    th = obj.initial_point()
    th[3] = float("nan")
    # issue 21: a NaN in theta is named as such (parameter and flat index), not blamed on a batch
    for call in (lambda: ls.hessian_trace(obj, th, n_samples=2), lambda: ls.spectral_density(obj, th, n_runs=1, n_steps=3),
                 lambda: ls.surface_1d(obj, th, steps=3), lambda: ls.surface_2d(obj, th, steps=3),
                 lambda: obj.loss(th), lambda: obj.grad(th), lambda: ls.extreme_eigs(obj, th, k=1)):
        with pytest.raises(ls.NonFiniteError, match=r"theta is non-finite: nan at flat index 3, in parameter '0\.weight'"):
            call()


# ---------------------------------------------------------------------- issue 11: shapes that would broadcast
def test_broadcasting_targets_are_refused_naming_both_shapes():
    X, Y = data()
    Y1 = Y[:, :1]  # model output is (8, 2); build a 1-output model
    model = nn.Sequential(nn.Linear(3, 1)).double()
    for loss in (nn.MSELoss(), lambda o, y: ((o - y) ** 2).mean(), nn.L1Loss()):
        with pytest.raises(ValueError, match=r"shape \(8, 1\).*targets of shape \(8,\) to \(8, 8\)"):
            ls.Objective.from_module(model, loss, (X, Y1.reshape(-1)))
    with pytest.raises(ValueError, match=r"shape \(8, 1\).*\(8,\)"):
        ls.Objective.from_batches(model, lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean(), {"x": X, "y": Y1.reshape(-1)})
    # Legitimate shape differences pass: class indices, targets squeezed by the loss, equal shapes.
    ls.Objective.from_module(small_model(), nn.CrossEntropyLoss(), (X, torch.randint(0, 2, (8,))))
    obj = ls.Objective.from_module(model, lambda o, y: ((o.squeeze(-1) - y) ** 2).mean(), (X, Y1.reshape(-1)))
    ref = float(((model(X).squeeze(-1) - Y1.reshape(-1)) ** 2).mean())
    assert obj.loss(obj.initial_point()) == pytest.approx(ref, rel=1e-14)
    ls.Objective.from_module(model, nn.MSELoss(), (X, Y1))


def test_from_batches_bad_input():
    X, Y = data()
    model = small_model()
    with pytest.raises(ValueError, match="scalar tensor"):
        ls.Objective.from_batches(model, lambda m, b: m(b[0]), (X, Y))
    with pytest.raises(ValueError, match="never called the model"):
        ls.Objective.from_batches(model, lambda m, b: b[0].sum() * 0, (X, Y))
    with pytest.raises(TypeError, match="batch_loss must be callable"):
        ls.Objective.from_batches(model, None, (X, Y))
    with pytest.raises(ValueError, match="not a mean over examples"):
        ls.Objective.from_batches(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).sum(), (X, Y))
