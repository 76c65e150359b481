"""landscape.integrations (issue 22 item 5): the monitor inside the real Lightning and Hugging Face
trainers, on tiny models. Each trainer runs twice, with and without the callback, from the same
seed: the trained parameters must be bit-identical (the callback is read-only and leaves every
random state as it found it — a shuffling loader would otherwise draw other batches), and the
monitor must have seen every optimizer step and analysed the stall at the end of training.
"""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import landscape.integrations  # noqa: F401  (imports no framework)


def _regression(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)


def test_importing_integrations_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, landscape, landscape.integrations.lightning, landscape.integrations.huggingface, "
            "landscape.integrations.tensorboard; "
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="lightning not installed")
def test_lightning_callback_sees_every_step_and_changes_nothing(tmp_path):
    import lightning.pytorch as pl

    from landscape.integrations.lightning import StallMonitorCallback

    X, Y = _regression()

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 1)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(callbacks):
        pl.seed_everything(0, verbose=False)
        module = Module()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=16, shuffle=True)
        trainer = pl.Trainer(max_steps=300, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                             default_root_dir=tmp_path)
        trainer.fit(module, loader)
        return module

    cb = StallMonitorCallback(nn.MSELoss(), (X, Y), report=str(tmp_path / "report.html"), progress=False)
    with_cb, without = fit([cb]), fit([])
    for a, b in zip(with_cb.parameters(), without.parameters()):
        assert torch.equal(a, b)
    mon = cb.monitor
    assert isinstance(cb, pl.Callback) and mon.t == 300 and mon.mode == "stochastic"
    assert mon.stalls and mon.stalls[-1]["nearest_critical"]["kind"] in ("minimum", "global_minimum")
    assert (tmp_path / "report.html").exists()


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None or importlib.util.find_spec("accelerate") is None,
                    reason="transformers (with accelerate, which its Trainer needs) not installed")
def test_huggingface_callback_sees_every_step_and_changes_nothing(tmp_path):
    from transformers import Trainer, TrainingArguments

    from landscape.integrations.huggingface import StallMonitorHFCallback

    X, Y = _regression()

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 1)

        def forward(self, x, labels=None):
            out = self.net(x)
            return {"loss": nn.functional.mse_loss(out, labels), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return X.shape[0]

        def __getitem__(self, i):
            return {"x": X[i], "labels": Y[i]}

    def train(callbacks):
        torch.manual_seed(0)
        model = Model()
        args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=300, per_device_train_batch_size=16,
                                 learning_rate=0.1, lr_scheduler_type="constant", optim="sgd", use_cpu=True,
                                 report_to=[], save_strategy="no", logging_strategy="no", seed=0,
                                 dataloader_num_workers=0, disable_tqdm=True, max_grad_norm=0.0)
        Trainer(model=model, args=args, train_dataset=Data(), callbacks=callbacks).train()
        return model

    cb = StallMonitorHFCallback(lambda m, b: m(**b)["loss"], {"x": X, "labels": Y}, loss_form="batch",
                                progress=False)
    with_cb, without = train([cb]), train([])
    for a, b in zip(with_cb.parameters(), without.parameters()):
        assert torch.equal(a, b)
    mon = cb.monitor
    assert mon.t == 300 and mon.mode == "stochastic" and all(v is not None for v in mon.losses)
    assert mon.stalls and mon.stalls[-1]["nearest_critical"]["kind"] in ("minimum", "global_minimum")
    assert cb._hook is None                           # the forward hook is gone after training


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_sink_writes_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import landscape as ls
    from landscape.integrations.tensorboard import TensorBoardSink

    X, Y = _regression()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = TensorBoardSink(tmp_path / "tb")
    mon = ls.StallMonitor(model, nn.MSELoss(), (X, Y), optimizer=opt, sinks=[sink], sharpness_every=20,
                          progress=False)
    for _ in range(100):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), Y)
        loss.backward()
        opt.step()
        mon.step(loss)
    mon.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"monitor/sharpness", "monitor/sharpness_threshold", "monitor/check_loss", "monitor/stall_loss"} <= tags
    rows = acc.Scalars("monitor/sharpness_threshold")
    assert len(rows) == 5 and rows[0].value == pytest.approx(2 / 0.1)
