"""Issue 21 item 2: every input that used to give a silent wrong number or a misleading error is now
a correct result or ONE line naming the problem and the fix (checked once, on the first batch)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import landscape as ls

F64 = torch.float64


def xy(n=8, out=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=F64), torch.randn(n, out, generator=g, dtype=F64)


def linear(out=1):
    torch.manual_seed(0)
    return nn.Linear(3, out).double()


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------- integer targets
def test_integer_targets_are_checked_for_broadcasting_like_floating_ones():
    X, _ = xy()
    labels = torch.arange(8) % 3                        # int64 (8,) against outputs (8, 1)
    model = linear()
    for loss in (nn.MSELoss(), lambda o, t: F.mse_loss(o, t.to(o.dtype)), lambda o, t: ((o - t.float()) ** 2).mean()):
        with pytest.raises(ValueError, match=r"shape \(8, 1\).*targets of shape \(8,\) to \(8, 8\)") as e:
            ls.Objective.from_module(model, loss, (X, labels))
        one_line(e)
    # the case the mean-over-examples check never saw: examples counted by a custom batch_size
    with pytest.raises(ValueError, match=r"targets of shape \(8,\)"):
        ls.Objective.from_batches(model, lambda m, b: F.mse_loss(m(b[0]), b[1].to(F64)), (X, labels),
                                  batch_size=lambda b: int(b[0].shape[0]))
    # the fix the message names gives the right number
    obj = ls.Objective.from_module(model, lambda o, t: F.mse_loss(o, t.to(o.dtype)), (X, labels.reshape(8, 1)))
    want = float(((model(X) - labels.reshape(8, 1).to(F64)) ** 2).mean())
    assert obj.loss(obj.initial_point()) == pytest.approx(want, rel=1e-14)
    # class-index targets stay fine
    ls.Objective.from_module(linear(3), nn.CrossEntropyLoss(), (X, labels))


# ---------------------------------------------------------------------- randomness
class FunctionalDropout(nn.Module):
    def __init__(self, respect_mode: bool):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.respect_mode = respect_mode

    def forward(self, x):
        return F.dropout(self.lin(x), 0.5, training=self.training if self.respect_mode else True)


@pytest.mark.parametrize("n", [8, 1])
def test_a_random_forward_is_refused_with_the_true_reason(n):
    X, Y = xy(n=n, out=2)
    with pytest.raises(ValueError, match=r"the loss is random: two evaluations .* on batch 0 .*\(dropout\)") as e:
        ls.Objective.from_module(FunctionalDropout(respect_mode=False).eval(), nn.MSELoss(), (X, Y))
    assert "not a mean over examples" not in one_line(e) and "training=self.training" in str(e.value)
    # the fix it names: dropout that follows the module's mode, in eval mode, is one fixed function
    obj = ls.Objective.from_module(FunctionalDropout(respect_mode=True).eval(), nn.MSELoss(), (X, Y))
    th = obj.initial_point()
    assert obj.loss(th) == obj.loss(th)


def test_rrelu_in_train_mode_is_named_and_eval_mode_accepted():
    X, Y = xy(out=2)
    model = nn.Sequential(nn.Linear(3, 2), nn.RReLU()).double()
    with pytest.raises(ValueError, match=r"random in train mode: 1 \(RReLU\).*model\.eval\(\)") as e:
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    assert "dropout" not in one_line(e)
    ls.Objective.from_module(model.eval(), nn.MSELoss(), (X, Y))


def test_randomness_in_the_loss_is_named_or_said_to_come_from_elsewhere():
    X, Y = xy()
    noisy = lambda o, y: (((o - y) ** 2) * (1 + torch.rand(1, dtype=o.dtype))).mean()  # noqa: E731
    with pytest.raises(ValueError, match=r"random operations ran .*\(rand\)"):
        ls.Objective.from_module(linear(), noisy, (X, Y))
    rng = np.random.default_rng(0)
    elsewhere = lambda o, y: ((o - y) ** 2).mean() * float(1 + rng.random())  # noqa: E731
    with pytest.raises(ValueError, match=r"no torch random operation ran .*numpy") as e:
        ls.Objective.from_module(linear(), elsewhere, (X, Y))
    one_line(e)


# ---------------------------------------------------------------------- non-finite weights
def test_nan_in_the_models_weights_is_named_not_blamed_on_a_batch():
    X, Y = xy()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        model[0].weight[1, 2] = float("nan")
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    with pytest.raises(ls.NonFiniteError, match=r"theta is non-finite: nan at flat index 5, in parameter "
                                                r"'0\.weight' \(the model's own weights") as e:
        obj.loss(obj.initial_point())
    assert "batch" not in one_line(e)
    # a weight that is not part of theta (params=) poisons every theta: refused at construction
    with pytest.raises(ls.NonFiniteError, match=r"parameter '0\.weight' \(not part of theta") as e:
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y), params="2.*")
    one_line(e)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double().eval()
    bn[1].running_var[0] = float("nan")
    with pytest.raises(ls.NonFiniteError, match=r"buffer '1\.running_var' holds nan"):
        ls.Objective.from_module(bn, nn.MSELoss(), (X, Y))


# ---------------------------------------------------------------------- outputs and inputs of the wrong kind
class TupleOut(nn.Module):
    def __init__(self, as_dict: bool):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()
        self.as_dict = as_dict

    def forward(self, x):
        out = self.lin(x)
        return {"logits": out, "hidden": x} if self.as_dict else (out, x)


@pytest.mark.parametrize("as_dict,pick", [(False, "out[0]"), (True, "out['logits']")])
def test_tuple_or_dict_outputs_are_refused_with_what_to_write_and_work_through_loss_fn(as_dict, pick):
    X, Y = xy()
    model = TupleOut(as_dict)
    with pytest.raises(TypeError, match=r"batch 0 \(examples 0\.\.7\): the model returns a (tuple|dict).*not a "
                                        r"tensor.*" + pick.replace("[", r"\[").replace("]", r"\]")) as e:
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    one_line(e)
    key = "logits" if as_dict else 0
    obj = ls.Objective.from_module(model, lambda out, y: F.mse_loss(out[key], y), (X, Y))
    assert obj.loss(obj.initial_point()) == pytest.approx(float(F.mse_loss(model.lin(X), Y)), rel=1e-14)


def test_integer_inputs_are_named_with_the_batch():
    _, Y = xy()
    Xi = torch.randint(0, 3, (8, 3))
    with pytest.raises(TypeError, match=r"batch 0 \(examples 0\.\.7\): the model got an integer input "
                                        r"\(int64 \(8, 3\)\) but computes in torch\.float64") as e:
        ls.Objective.from_module(linear(), nn.MSELoss(), (Xi, Y))
    assert "x.float()" in one_line(e)


def test_cross_entropy_with_float_or_column_targets_is_named_with_the_fix():
    X, _ = xy()
    labels = torch.arange(8) % 3
    with pytest.raises(ValueError, match=r"batch 0 .*targets float64 \(8,\).*must be integers: pass targets\.long\(\)") as e:
        ls.Objective.from_module(linear(3), nn.CrossEntropyLoss(), (X, labels.double()))
    one_line(e)
    with pytest.raises(ValueError, match=r"batch 0 .*must have shape \(8,\), not \(8, 1\): pass targets\.reshape\(-1\)"):
        ls.Objective.from_module(linear(3), nn.CrossEntropyLoss(), (X, labels[:, None]))


# ---------------------------------------------------------------------- precision and batch norm
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_warned_once_with_what_it_cannot_certify(dtype):
    X, Y = xy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = ls.Objective.from_module(nn.Linear(3, 1), nn.MSELoss(), (X.float(), Y.float()), dtype=dtype)
    mine = [w for w in caught if "cannot be certified" in str(w.message)]
    assert len(mine) == 1 and issubclass(mine[0].category, RuntimeWarning)
    assert "dtype=torch.float32" in str(mine[0].message) and obj.dtype == dtype


def test_batchnorm_refusal_names_its_own_fix():
    X, Y = xy()
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()
    with pytest.raises(ValueError, match=r"1 \(BatchNorm1d\).*model\.eval\(\).*running statistics") as e:
        ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    assert "dropout" not in one_line(e)
    no_stats = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"every mode.*track_running_stats=True"):
        ls.Objective.from_module(no_stats.double().eval(), nn.MSELoss(), (X, Y))
