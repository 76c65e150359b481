"""Plateaus the literature knows (``landscape plateaus``, a section of the main study): seeded
generators of data, model and training loop for five families of cases, each with theory's numbers,
run through :class:`landscape.StallMonitor` and the paired protocol (:mod:`.protocol`, :mod:`.run`,
:mod:`.report`, :mod:`.section`).

- :mod:`.committee` — the soft committee machine's symmetric plateau (Saad & Solla 1995)
- :mod:`.saddles` — saddle-to-saddle from a small initialisation: a deep linear net (plateaus at the
  best low-rank losses) and a 64-8-8-8-10 tanh net on the digits (plateau at the class-prior entropy)
- :mod:`.icl` — in-context linear regression with separate-key/query linear attention
  (Zhang, Singh, Latham & Saxe 2025): one principal component per stage
- :mod:`.mnist1d_case` — an MLP and a small CNN on MNIST-1D (Greydanus 2020)
- :mod:`.autoencoder` — the digits ReLU autoencoder's mean-image plateau

Each case module has ``build(seed, **options) -> Instance`` (:mod:`.core`) and theory functions;
:func:`.core.train` is the plain loop with a per-step callback. ``python3 -m analyses.plateaus.survey``
prints every measured number.
"""
from .core import Instance, StepInfo, Trace, flat_params, load_flat, make_optimizer, train

__all__ = ["Instance", "StepInfo", "Trace", "flat_params", "load_flat", "make_optimizer", "train"]
