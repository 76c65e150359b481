"""The embedded problem zoo: small, seeded, download-free problems with known structure.

A :class:`Problem` (:mod:`.base`) bundles a model factory, a loss, the data, a reference point (a
known critical point where theory gives one, else the seeded default initialisation) with an
ε-perturbed start ``init(seed, eps)``, and the global minimum value where theory gives it.
Problems are built on demand by name: :func:`get_problem` looks the factory up in
:data:`PROBLEMS` (:mod:`.registry`). One module per family registers its problems with the
:func:`register` decorator (keyword options of :func:`get_problem` go to the factory):

- :mod:`.deep_linear` — deep linear nets at W = 0 and at analytic Baldi–Hornik points;
- :mod:`.mlp` — a tanh regression MLP and a two-layer teacher–student;
- :mod:`.relu` — two-unit ReLU teacher–student at the teacher, a spurious and a dead minimum;
- :mod:`.xor` — the XOR 2-2-1 sigmoid net near W = 0;
- :mod:`.autoencoder` — the linear bottleneck autoencoder near a PCA saddle;
- :mod:`.regression` — noisy linear regression (a global minimum with cancelling gradients);
- :mod:`.digits` — the seed repository's ReLU autoencoder on scikit-learn's real digits.

The escape study draws independent, certified instances per cause × kind cell from
:mod:`.escape_instances` (deep linear nets with whitened inputs, built from the closed forms of
:mod:`.escape_theory`; the zoo's ReLU minima on fresh inputs as controls). The zoo problems whose hints
carry ``study`` (the (kind, cause) cell their reference point certifies, checked by
``tests/test_problem_certificates.py``) were its earlier problem set and remain for the other parts:

    kind \\ cause        vanishing (every g_i → 0)          cancelling (g_i large, mean → 0)
    strict saddle       deep_linear_h1_zero  (W = 0, H = 1) deep_linear_h1_saddle (Baldi–Hornik S = (0, 2))
    non-strict saddle   deep_linear_h2_zero  (W = 0, H = 2) deep_linear_h2_padded (padded leading S = (0, 1))
    spurious local min  relu_dead (every unit dead)          relu_spurious (one unit dead, one fitted)
    global minimum      relu_teacher (realizable teacher)    noisy_regression (least squares, noise)

A new problem goes into its family's module (or a new one imported below) as a factory decorated
with ``@register("name")``.
"""
from . import autoencoder, deep_linear, digits, mlp, regression, relu, xor  # noqa: F401  (register the zoo)
from .autoencoder import load_npz_matrix, pca_autoencoder_min
from .base import OWN_LR, Data, Problem, init_reference, seeded_module, stall_detector
from .deep_linear import DEEP_LINEAR_STALL, deep_linear_problem
from .mlp import teacher_point
from .registry import PROBLEMS, ProblemFactory, get_problem, list_problems, register
from .relu import relu_active_fit

__all__ = ["Problem", "Data", "OWN_LR", "PROBLEMS", "ProblemFactory", "register", "get_problem", "list_problems",
           "seeded_module", "init_reference", "stall_detector", "deep_linear_problem", "DEEP_LINEAR_STALL",
           "teacher_point", "relu_active_fit", "load_npz_matrix", "pca_autoencoder_min"]
