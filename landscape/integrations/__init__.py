"""Optional bridges from training frameworks to :class:`landscape.StallMonitor`.

Each lives in its own submodule and imports its framework only when used, so ``landscape`` needs
none of them:

- :mod:`landscape.integrations.lightning` — ``StallMonitorCallback``, a PyTorch Lightning
  ``Callback`` (``pip install lightning``);
- :mod:`landscape.integrations.huggingface` — ``StallMonitorHFCallback``, a Hugging Face
  ``transformers.TrainerCallback`` (read-only, as HF's callback contract requires);
- :mod:`landscape.integrations.tensorboard` — :class:`~landscape.integrations.tensorboard.TensorBoardSink`,
  the monitor's checks, sharpness rows and stalls as TensorBoard scalars (``pip install tensorboard``).

Importing ``landscape.integrations`` imports no framework.
"""
