"""Models nobody here wrote, against plain autograd on the module's own parameters (issue 11).

References are independent of the objective's functional path: the module is called normally,
its own ``nn.Parameter``s are differentiated with ``torch.autograd.grad`` (double backward for
Hessian-vector products), under the math attention kernel where the default CPU kernel has no
double backward.
"""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import landscape as ls

F64 = torch.float64
EPS = torch.finfo(F64).eps


def plain_reference(model: nn.Module, loss_of_model, v_flat: torch.Tensor | None = None):
    """Loss, gradient and (optionally) H v by ordinary autograd on model's own parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    with sdpa_kernel([SDPBackend.MATH]):
        L = loss_of_model(model)
        g = torch.autograd.grad(L, params, create_graph=v_flat is not None)
        gflat = torch.cat([t.reshape(-1) for t in g])
        hv = None
        if v_flat is not None:
            hv = torch.autograd.grad(gflat, params, v_flat)
            hv = torch.cat([t.reshape(-1) for t in hv])
    return float(L.detach()), gflat.detach(), hv


def dense_plain_hessian(model: nn.Module, loss_of_model) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    with sdpa_kernel([SDPBackend.MATH]):
        g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss_of_model(model), params, create_graph=True)])
        rows = []
        for i in range(g.numel()):
            r = torch.autograd.grad(g[i], params, retain_graph=True, allow_unused=True, materialize_grads=True)
            rows.append(torch.cat([t.reshape(-1) for t in r]))
    return torch.stack(rows)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------------------- CNN + BatchNorm (eval)
def test_cnn_with_batchnorm_in_eval_matches_dense_plain_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).double()
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    X = torch.randn(10, 1, 5, 5, dtype=F64)
    y = torch.randint(0, 3, (10,))
    obj = ls.Objective.from_module(model, nn.CrossEntropyLoss(), [(X[:4], y[:4]), (X[4:], y[4:])])
    theta = obj.initial_point()
    H_ref = dense_plain_hessian(model, lambda m: F.cross_entropy(m(X), y))
    H = obj.hessian(theta)
    assert rel(H, H_ref) < 1e3 * EPS
    L_ref, g_ref, _ = plain_reference(model, lambda m: F.cross_entropy(m(X), y))
    L, g = obj.loss_and_grad(theta)
    assert abs(L - L_ref) <= 1e2 * EPS * abs(L_ref)
    assert rel(g, g_ref) < 1e3 * EPS


def test_train_mode_check_names_only_real_offenders():
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(18, 1)).double()
    X, Y = torch.randn(4, 1, 5, 5, dtype=F64), torch.randn(4, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"1 \(BatchNorm2d\)"):
        ls.Objective.from_module(bn, nn.MSELoss(), (X, Y))
    wrapper = nn.Sequential(nn.Module(), bn.eval())  # fresh wrapper in train mode around an eval model
    wrapper[0] = nn.Identity()
    assert wrapper.training and not bn.training
    ls.Objective.from_module(wrapper, nn.MSELoss(), (X, Y))
    drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.0), nn.Linear(3, 1), nn.Dropout(0.1)).double()
    with pytest.raises(ValueError, match=r"3 \(Dropout\)") as info:
        ls.Objective.from_module(drop, nn.MSELoss(), (torch.randn(4, 3, dtype=F64), torch.randn(4, 1, dtype=F64)))
    assert "1 (Dropout)" not in str(info.value)  # p = 0 is deterministic
    with pytest.raises(ValueError, match=r"<model> \(LSTM\)"):
        ls.Objective.from_batches(nn.LSTM(3, 3, num_layers=2, dropout=0.2).double(), lambda m, b: m(b)[0].mean(),
                                  torch.randn(4, 2, 3, dtype=F64))
    enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    assert enc.training
    ls.Objective.from_batches(enc.double(), lambda m, b: m(b).pow(2).mean(), torch.randn(3, 4, 8, dtype=F64))


# ---------------------------------------------------------------------------- attention
def _encoder(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
    return nn.Sequential(enc, nn.Flatten(), nn.Linear(8 * 5, 1)).double().eval()


def test_transformer_encoder_default_attention_hvp_matches_double_backward():
    model = _encoder()
    X = torch.randn(6, 5, 8, dtype=F64)
    Y = torch.randn(6, 1, dtype=F64)
    # The user's default attention really has no double backward on this CPU (the bug being fixed).
    params = list(model.parameters())
    g = torch.autograd.grad(F.mse_loss(model(X), Y), params, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.autograd.grad(sum((t * t).sum() for t in g), params)
    obj = ls.Objective.from_module(model, nn.MSELoss(), [(X[:2], Y[:2]), (X[2:], Y[2:])])
    theta = obj.initial_point()
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(1), dtype=F64)
    L_ref, g_ref, hv_ref = plain_reference(model, lambda m: F.mse_loss(m(X), Y), v)
    assert abs(obj.loss(theta) - L_ref) <= 1e3 * EPS * abs(L_ref)
    assert rel(obj.grad(theta), g_ref) < 1e3 * EPS
    assert rel(obj.hvp(theta, v), hv_ref) < 1e3 * EPS
    assert rel(obj.hvp_operator(theta).matvec(v), hv_ref) < 1e3 * EPS
    assert rel(obj.hvp_operator(theta, cache=False).matvec(v), hv_ref) < 1e3 * EPS


def test_multihead_attention_hessian_matches_torch_func_hessian():
    torch.manual_seed(2)

    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(4, 2, batch_first=True)
            self.out = nn.Linear(4, 1)

        def forward(self, x):
            a, _ = self.mha(x, x, x, need_weights=False)
            return self.out(a.mean(1))

    model = Attn().double().eval()
    X, Y = torch.randn(5, 3, 4, dtype=F64), torch.randn(5, 1, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach() for n, p in model.named_parameters()}

    def loss_flat(t):
        parts = dict(zip(names, torch.split(t, [base[n].numel() for n in names])))
        ps = {n: parts[n].view(base[n].shape) for n in names}
        return F.mse_loss(torch.func.functional_call(model, ps, (X,)), Y)

    with sdpa_kernel([SDPBackend.MATH]):
        H_ref = torch.func.hessian(loss_flat)(obj.initial_point())
    assert rel(obj.hessian(obj.initial_point()), H_ref) < 1e3 * EPS


# ---------------------------------------------------------------------------- RNN per-example fallback
def test_lstm_per_example_grads_fall_back_with_one_warning():
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(3, 4, batch_first=True)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    model = Net().double().eval()
    X, Y = torch.randn(7, 5, 3, dtype=F64), torch.randn(7, 1, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), [(X[:4], Y[:4]), (X[4:], Y[4:])])
    theta = obj.initial_point()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        G = obj.per_example_grads(theta, chunk_size=3)
        stats = ls.cancellation_stats(obj, theta)
    fallback = [w for w in caught if "one example at a time" in str(w.message)]
    assert len(fallback) == 1
    params = list(model.parameters())
    ref = torch.stack([torch.cat([t.reshape(-1) for t in torch.autograd.grad(F.mse_loss(model(X[i:i + 1]), Y[i:i + 1]),
                                                                            params)]) for i in range(7)])
    assert rel(G, ref) < 1e3 * EPS
    mu = ref.mean(0)
    assert abs(stats.kappa - float(mu.norm() / ref.norm(dim=1).mean())) < 1e3 * EPS
    # The mean of the per-example gradients is the gradient.
    assert rel(G.mean(0), obj.grad(theta)) < 1e3 * EPS


# ---------------------------------------------------------------------------- frozen and tied parameters
def test_frozen_and_tied_parameters_match_plain_autograd():
    torch.manual_seed(4)

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Linear(4, 3, bias=False)
            self.mid = nn.Linear(3, 3)
            self.dec = nn.Linear(3, 4, bias=False)
            self.dec.weight = nn.Parameter(self.emb.weight.T.contiguous())  # replaced below by a true tie

        def forward(self, x):
            h = torch.tanh(self.mid(self.emb(x)))
            return h @ self.emb.weight  # decoder tied to the encoder's weight

    model = Tied().double()
    del model.dec
    model.mid.bias.requires_grad_(False)  # frozen
    X, Y = torch.randn(9, 4, dtype=F64), torch.randn(9, 4, dtype=F64)
    obj = ls.Objective.from_module(model, nn.MSELoss(), (X, Y))
    assert obj.param_names == ("emb.weight", "mid.weight")
    theta = obj.initial_point()
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(5), dtype=F64)
    _, g_ref, hv_ref = plain_reference(model, lambda m: F.mse_loss(m(X), Y), v)
    assert rel(obj.grad(theta), g_ref) < 1e3 * EPS
    assert rel(obj.hvp(theta, v), hv_ref) < 1e3 * EPS


def test_module_level_weight_tying_counts_once():
    torch.manual_seed(6)

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(7, 4)
            self.head = nn.Linear(4, 7, bias=False)
            self.head.weight = self.wte.weight  # the Hugging Face way of tying

        def forward(self, ids):
            return self.head(torch.tanh(self.wte(ids)))

    model = LM().double().eval()
    ids = torch.randint(0, 7, (6, 3))
    tgt = torch.randint(0, 7, (6, 3))
    obj = ls.Objective.from_batches(model, lambda m, b: F.cross_entropy(m(b["ids"]).reshape(-1, 7), b["tgt"].reshape(-1)),
                                    {"ids": ids, "tgt": tgt})
    assert obj.dim == 28
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(7), dtype=F64)
    _, g_ref, hv_ref = plain_reference(model, lambda m: F.cross_entropy(m(ids).reshape(-1, 7), tgt.reshape(-1)), v)
    theta = obj.initial_point()
    assert rel(obj.grad(theta), g_ref) < 1e3 * EPS
    assert rel(obj.hvp(theta, v), hv_ref) < 1e3 * EPS


# ---------------------------------------------------------------------------- Hugging Face GPT-2
def test_gpt2_from_batches_with_dict_batches():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install "
                                       "'landscape-toolkit[models]'): the GPT-2 check needs it")
    torch.manual_seed(8)
    cfg = transformers.GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    lm = transformers.GPT2LMHeadModel(cfg).double()  # fresh: train mode, dropout 0, default (sdpa) attention
    ids = torch.randint(0, 11, (6, 5))
    loader = torch.utils.data.DataLoader([{"input_ids": r, "labels": r} for r in ids], batch_size=4, shuffle=True)
    # The README's three-liner. HF's causal-LM loss casts the logits to float32 (transformers'
    # ForCausalLMLoss), so this objective is float32-accurate whatever the model's dtype.
    hf = ls.Objective.from_batches(lm, lambda m, b: m(**b).loss, loader)
    assert hf.n_examples == 6
    assert hf.dim == sum(p.numel() for p in lm.parameters())  # lm_head tied to wte: counted once
    theta = hf.initial_point()
    v = torch.randn(hf.dim, generator=torch.Generator().manual_seed(9), dtype=F64)
    batches = list(hf.iter_batches())
    assert [n for _, n, _ in batches] == [4, 2]
    L_ref, g_ref, hv_ref = plain_reference(lm, lambda m: sum(w * m(**b).loss for b, _, w in batches), v)
    f32 = 1e2 * torch.finfo(torch.float32).eps
    assert abs(hf.loss(theta) - L_ref) <= f32 * abs(L_ref)
    assert rel(hf.grad(theta), g_ref) < f32
    assert rel(hf.hvp(theta, v), hv_ref) < f32
    with pytest.raises(ValueError, match="loss computed inside the model"):
        hf.curvature_operator(theta, "ggn").matvec(v)

    # The same model with the shifted cross-entropy in float64: exact to round-off.
    def shifted_ce(m, b):
        logits = m(input_ids=b["input_ids"]).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, 11), b["input_ids"][:, 1:].reshape(-1))

    obj = ls.Objective.from_batches(lm, shifted_ce, loader)
    batches = list(obj.iter_batches())
    L_ref, g_ref, hv_ref = plain_reference(lm, lambda m: sum(w * shifted_ce(m, b) for b, _, w in batches), v)
    assert abs(obj.loss(theta) - L_ref) <= 1e3 * EPS * abs(L_ref)
    assert rel(obj.grad(theta), g_ref) < 1e3 * EPS
    assert rel(obj.hvp(theta, v), hv_ref) < 1e3 * EPS
    # Per-example gradients through HF's code: their mean is the gradient.
    G = obj.per_example_grads(theta)
    assert G.shape == (6, obj.dim)
    assert rel(G.mean(0), g_ref) < 1e3 * EPS
    # from_module with (ids, ids) pairs and a criterion reading out.logits (the two-row mean check slices
    # the batch, never the model's output).
    pairs = ls.Objective.from_module(lm, lambda out, t: F.cross_entropy(out.logits[:, :-1].reshape(-1, 11),
                                                                       t[:, 1:].reshape(-1)), (ids, ids))
    assert pairs.loss(theta) == pytest.approx(float(shifted_ce(lm, {"input_ids": ids}).detach()), rel=1e-14)
    Gv = obj.curvature_operator(theta, "ggn").matvec(v)  # logits are a separable output
    assert float(torch.dot(v, Gv)) >= -1e3 * EPS * float(v.norm() * Gv.norm())  # G is PSD for cross-entropy
