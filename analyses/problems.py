"""The embedded problem zoo: small, seeded, download-free problems with known structure.

A :class:`Problem` bundles a model factory, a loss, the data, a reference point (a known critical
point where theory gives one, else the seeded default initialisation) with an ε-perturbed start
``init(seed, eps)``, and the global minimum value where theory gives it. Problems are built on
demand by name: :func:`get_problem` looks the factory up in :data:`PROBLEMS`; new problems join
the zoo with the :func:`register` decorator (keyword options of :func:`get_problem` go to the
factory).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from landscape import Objective
from landscape.deep_linear import DeepLinearProblem, half_sq_error

Data = tuple[torch.Tensor, torch.Tensor]
#: methods that keep their own default step size instead of the problem's GD learning rate
OWN_LR = ("adam", "sfn")


@dataclass
class Problem:
    """One problem of the zoo.

    ``make_model(seed)`` → a fresh ``nn.Module`` (seeded default initialisation); ``loss_fn(outputs,
    targets)`` a mean-reduced criterion; ``data`` an ``(X, Y)`` pair; ``reduction`` how the
    :class:`~landscape.Objective` combines examples (``"sum"`` for the deep linear nets, whose
    theory uses ½Σ‖·‖², else ``"mean"``). ``reference(seed)`` → flat point (dim,) the problem is
    about (an analytic critical point, or the model's seeded initialisation); ``init(seed, eps)``
    = reference + eps·N(0, I) (seeded). ``global_min``: the global minimum value of the objective
    when theory gives it (else ``None``). ``reference_kind``: the kind of the reference point
    (``"non_strict_saddle"``, ``"strict_saddle"``, ``"init"``, …). ``hints``: defaults for
    analyses (``lr`` for gradient descent, ``span`` and ``normalization`` for surfaces).
    """

    name: str
    description: str
    make_model: Callable[[int], nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    data: Data
    reference: Callable[[int], torch.Tensor]
    global_min: float | None = None
    dtype: torch.dtype = torch.float64
    reduction: str = "mean"
    reference_kind: str = "init"
    reference_loss: float | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def objective(self, seed: int = 0, device: torch.device | str | None = None) -> Objective:
        """The problem's :class:`~landscape.Objective` (model built by ``make_model(seed)``)."""
        return Objective.from_module(self.make_model(seed), self.loss_fn, self.data, dtype=self.dtype,
                                     device=device, reduction=self.reduction)

    def init(self, seed: int = 0, eps: float = 1e-2) -> torch.Tensor:
        """Start point: ``reference(seed) + eps·N(0, I)``, the noise drawn from ``seed``; shape (dim,)."""
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        ref = self.reference(seed).to(self.dtype)
        g = torch.Generator().manual_seed(int(seed) + 7919)
        return ref + eps * torch.randn(ref.shape, generator=g, dtype=torch.float64).to(self.dtype)

    @property
    def n_examples(self) -> int:
        return int(self.data[0].shape[0])

    def trainer(self, method: str, seed: int = 0, *, lr: float | None = None, stall: Any = None,
                log_dir: str | None = None, progress: bool | None = False, meta: dict | None = None,
                **method_options: Any) -> Any:
        """A :class:`synaprune.Trainer` on this problem: model ``make_model(seed)``, the data,
        reduction, dtype and global value. ``lr`` defaults to ``hints["lr"]`` except for methods with
        a step size of their own (:data:`OWN_LR`); ``stall`` to a fresh copy of ``hints["stall"]``
        (detectors carry state); Trainer options to ``hints["trainer"]`` (every method), method options to ``hints["method_options"][method]``, updated by
        ``method_options``. ``meta`` (stored in ``run.json``) always records the problem and seed."""
        from synaprune import StallDetector, Trainer

        if lr is None and method not in OWN_LR:
            lr = self.hints.get("lr")
        if stall is None and self.hints.get("stall") is not None:
            hint = self.hints["stall"]
            stall = StallDetector(**(hint.config() if isinstance(hint, StallDetector) else dict(hint)))
        opts = {**(self.hints.get("trainer") or {}), **(self.hints.get("method_options") or {}).get(method, {}),
                **method_options}
        return Trainer(self.make_model(seed), self.loss_fn, self.data, method=method, lr=lr, seed=seed, stall=stall,
                       global_min=self.global_min, log_dir=None if log_dir is None else str(log_dir),
                       reduction=self.reduction, dtype=self.dtype, progress=progress,
                       meta={"problem": self.name, "problem_seed": seed, **(meta or {})}, **opts)


ProblemFactory = Callable[..., Problem]
PROBLEMS: dict[str, ProblemFactory] = {}


def register(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator adding a factory ``f(**options) -> Problem`` to :data:`PROBLEMS` under ``name``."""
    def deco(factory: ProblemFactory) -> ProblemFactory:
        if name in PROBLEMS:
            raise ValueError(f"problem {name!r} is already registered")
        PROBLEMS[name] = factory
        return factory
    return deco


def get_problem(name: str, **options: Any) -> Problem:
    """Build the problem ``name`` (options go to its factory). Unknown names list the zoo."""
    if name not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; known problems: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name](**options)


def list_problems() -> list[str]:
    return sorted(PROBLEMS)


# ---------------------------------------------------------------------------- deep linear nets
def deep_linear_problem(name: str, dl: DeepLinearProblem, *, reference_theta: torch.Tensor, reference_kind: str,
                        reference_loss: float, description: str, hints: dict[str, Any] | None = None) -> Problem:
    """Wrap a :class:`~landscape.deep_linear.DeepLinearProblem` with a fixed reference point."""
    ref = reference_theta.to(torch.float64).clone()

    def make_model(seed: int = 0) -> nn.Module:
        return dl.module(seed=seed)

    return Problem(
        name=name, description=description, make_model=make_model, loss_fn=half_sq_error, data=(dl.X, dl.Y),
        reference=lambda seed=0: ref.clone(), global_min=dl.global_min(), dtype=torch.float64,
        reduction="sum", reference_kind=reference_kind, reference_loss=reference_loss,
        hints=dict(hints or {}), extra={"deep_linear": dl},
    )


@register("deep_linear_h2_zero")
def _deep_linear_h2_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 2 deep linear net near W = 0: a non-strict saddle (zero Hessian, cubic descent)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    return deep_linear_problem(
        "deep_linear_h2_zero", dl, reference_theta=dl.zero_point(), reference_kind="non_strict_saddle",
        reference_loss=dl.loss_of(dl.zero_point()),
        description=(f"deep linear net {d_x}-{width}-{width}-{d_y} (H = 2), {m} examples, started near W = 0: "
                     "a non-strict saddle (Hessian exactly 0, loss decreases at third order)"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-2},
    )


@register("deep_linear_h1_saddle")
def _deep_linear_h1_saddle(d_x: int = 4, d_y: int = 3, width: int = 2, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 2)) -> Problem:
    """H = 1 deep linear net near a Baldi–Hornik saddle (index set S not the leading one)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h1_saddle", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {d_x}-{width}-{d_y} (H = 1), {m} examples, started near the Baldi–Hornik "
                     f"critical point S = {cp.S}: a {cp.kind.replace('_', ' ')} of index {cp.index}"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-2, "index": cp.index},
    )


# ---------------------------------------------------------------------------- small nonlinear nets
def _seeded_module(builder: Callable[[], nn.Module], seed: int, dtype: torch.dtype) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return builder().to(dtype)


def _init_reference(make_model: Callable[[int], nn.Module]) -> Callable[[int], torch.Tensor]:
    def reference(seed: int = 0) -> torch.Tensor:
        model = make_model(seed)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])
    return reference


@register("tanh_mlp")
def _tanh_mlp(d_in: int = 2, width: int = 8, m: int = 128, seed: int = 0, dtype: torch.dtype = torch.float64
              ) -> Problem:
    """A small tanh MLP d_in-width-width-1 regressing a smooth target y = sin(2x₁)·cos(x₂)+…"""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.rand(m, d_in, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.sin(2 * X[:, :1]) * torch.cos(X[:, 1:2] if d_in > 1 else X[:, :1]) + 0.1 * X.sum(1, keepdim=True)

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width),
                                                    nn.Tanh(), nn.Linear(width, 1)), seed, dtype)

    return Problem(
        name="tanh_mlp", description=f"tanh MLP {d_in}-{width}-{width}-1 regressing a smooth function, {m} examples, "
                                     "MSE; global minimum unknown",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=_init_reference(make_model), global_min=None, dtype=dtype, reduction="mean",
        reference_kind="init", hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0},
    )


@register("teacher_student")
def _teacher_student(d_in: int = 4, k_teacher: int = 3, k_student: int = 3, m: int = 256, seed: int = 0,
                     activation: str = "tanh", dtype: torch.dtype = torch.float64) -> Problem:
    """Two-layer teacher–student regression: y = a·σ(Vx) from a fixed teacher with ``k_teacher``
    units; the student has ``k_student`` units (≥ k_teacher makes it realizable: global min 0)."""
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(m, d_in, generator=g, dtype=torch.float64)
    V = torch.randn(k_teacher, d_in, generator=g, dtype=torch.float64) / math.sqrt(d_in)
    a = torch.ones(1, k_teacher, dtype=torch.float64)
    act = acts[activation]()
    y = act(X @ V.T) @ a.T

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d_in, k_student, bias=False), acts[activation](),
                                                    nn.Linear(k_student, 1, bias=False)), seed, dtype)

    realizable = k_student >= k_teacher
    return Problem(
        name="teacher_student",
        description=(f"two-layer {activation} teacher-student, d = {d_in}, teacher {k_teacher} units, student "
                     f"{k_student} units, {m} Gaussian inputs, MSE; global minimum "
                     + ("0 (realizable)" if realizable else "unknown (under-parameterised)")),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=_init_reference(make_model), global_min=0.0 if realizable else None, dtype=dtype,
        reduction="mean", reference_kind="init",
        hints={"lr": 0.1, "span": 1.0, "normalization": "filter", "eps": 0.0},
        extra={"teacher": {"V": V, "a": a}},
    )


def teacher_point(problem: Problem) -> torch.Tensor:
    """The teacher's weights as a student point (realizable case): a global minimum (loss 0)."""
    t = problem.extra.get("teacher")
    if t is None:
        raise ValueError(f"problem {problem.name!r} has no teacher")
    model = problem.make_model(0)
    shapes = [p.shape for p in model.parameters()]
    V, a = t["V"], t["a"]
    if shapes[0][0] < V.shape[0]:
        raise ValueError("the student has fewer units than the teacher; the teacher is not a student point")
    Vs = torch.zeros(shapes[0], dtype=torch.float64)
    As = torch.zeros(shapes[1], dtype=torch.float64)
    Vs[:V.shape[0]] = V
    As[:, :a.shape[1]] = a
    return torch.cat([Vs.reshape(-1), As.reshape(-1)]).to(problem.dtype)


# ============================================================================ zoo extension (issue 6)
# Additive: more deep linear nets, XOR, a ReLU teacher-student, a bottleneck autoencoder with an .npz
# loader, and the noisy-regression control. ``hints`` used by the escape benchmark: ``lr``, ``eps``,
# ``max_steps`` (a benchmark run's length), ``quick_steps`` (the reduced benchmark's) and ``stall``
# (keyword arguments of :class:`synaprune.StallDetector`, tuned so the detector sees the problem's
# plateaus; the detector's default grad_tol = 1e-3 is absolute, too strict for the sum-reduced
# deep linear losses whose plateaus sit at ‖g‖ ≈ 1e-3 … 1e-2).
from synaprune import StallDetector  # noqa: E402  (analyses may depend on synaprune)

#: stall-detector settings for sum-reduced deep linear nets (loss scale ≈ 10, m = 64 examples)
DEEP_LINEAR_STALL: dict[str, Any] = {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-2}


def _stall(**kwargs: Any) -> StallDetector:
    """A fresh :class:`synaprune.StallDetector` (``hints["stall"]``; copy it per run)."""
    return StallDetector(**kwargs)


def _add_default_hints(name: str, **defaults: Any) -> None:
    """Give an already registered factory extra default hints (hints it sets itself win)."""
    factory = PROBLEMS[name]

    def wrapped(**options: Any) -> Problem:
        p = factory(**options)
        for k, v in defaults.items():
            if k not in p.hints:
                p.hints[k] = _stall(**v) if k == "stall" else v
        return p

    wrapped.__doc__ = factory.__doc__
    PROBLEMS[name] = wrapped


_add_default_hints("deep_linear_h2_zero", stall=DEEP_LINEAR_STALL, max_steps=1500, quick_steps=900)
_add_default_hints("deep_linear_h1_saddle", stall=DEEP_LINEAR_STALL, max_steps=600, quick_steps=300)
_add_default_hints("tanh_mlp", stall={"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}, max_steps=1500,
                   quick_steps=500)
_add_default_hints("teacher_student", stall={"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}, max_steps=1500,
                   quick_steps=500)


def _dl_zero(name: str, widths: list[int], *, d_x: int = 4, d_y: int = 3, m: int = 64, seed: int = 0,
             eps: float = 1e-2, lr: float = 0.05, max_steps: int = 1500, extra_text: str = "") -> Problem:
    dl = DeepLinearProblem.random(d_x, d_y, widths, m, seed)
    H = len(widths)
    kind = "strict_saddle" if H == 1 else "non_strict_saddle"
    arch = "-".join(str(d) for d in dl.dims)
    why = ("a strict saddle (Hessian [[0, -M], [-M, 0]]-type block with negative eigenvalues)" if H == 1 else
           "a non-strict saddle (Hessian exactly 0, loss decreases at order H + 1)")
    return deep_linear_problem(
        name, dl, reference_theta=dl.zero_point(), reference_kind=kind, reference_loss=dl.loss_of(dl.zero_point()),
        description=f"deep linear net {arch} (H = {H}{extra_text}), {m} examples, started near W = 0: {why}",
        hints={"lr": lr, "span": 1.0, "normalization": "none", "eps": eps, "stall": _stall(**DEEP_LINEAR_STALL),
               "max_steps": max_steps, "quick_steps": max_steps // 2})


@register("deep_linear_h1_zero")
def _deep_linear_h1_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 1 deep linear net near W = 0: a strict saddle (loss ½‖Y‖², negative curvature ±σ(XᵀY))."""
    return _dl_zero("deep_linear_h1_zero", [width], d_x=d_x, d_y=d_y, m=m, seed=seed, eps=1e-6, max_steps=800)


@register("deep_linear_h3_zero")
def _deep_linear_h3_zero(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0) -> Problem:
    """H = 3 deep linear net near W = 0: a non-strict saddle of order 4 (every derivative up to the third vanishes)."""
    return _dl_zero("deep_linear_h3_zero", [width] * 3, d_x=d_x, d_y=d_y, m=m, seed=seed, eps=0.2, max_steps=1500)


@register("deep_linear_h2_bottleneck_zero")
def _deep_linear_h2_bottleneck_zero(d_x: int = 4, d_y: int = 3, width: int = 1, m: int = 64, seed: int = 0
                                    ) -> Problem:
    """H = 2 deep linear net with a width-1 bottleneck (p < d_y: rank-1 global minimum) near W = 0."""
    return _dl_zero("deep_linear_h2_bottleneck_zero", [width, width], d_x=d_x, d_y=d_y, m=m, seed=seed,
                    eps=1e-2, max_steps=1500, extra_text=f", bottleneck width {width} < d_y = {d_y}")


@register("deep_linear_h2_wide_zero")
def _deep_linear_h2_wide_zero(d_x: int = 4, d_y: int = 3, width: int = 8, m: int = 64, seed: int = 0) -> Problem:
    """H = 2 deep linear net with wide hidden layers (width 8 > d_x) near W = 0."""
    return _dl_zero("deep_linear_h2_wide_zero", [width, width], d_x=d_x, d_y=d_y, m=m, seed=seed,
                    eps=1e-2, max_steps=1500, extra_text=f", wide: hidden width {width}")


@register("deep_linear_h2_saddle")
def _deep_linear_h2_saddle(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 2)) -> Problem:
    """H = 2 deep linear net near the analytic critical point for a non-leading S: a strict saddle."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h2_saddle", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {'-'.join(map(str, dl.dims))} (H = 2), {m} examples, started near the "
                     f"analytic critical point S = {cp.S} (loss ½(tr YᵀY − Σ_S λ_i)): a "
                     f"{cp.kind.replace('_', ' ')}"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-5, "stall": _stall(**DEEP_LINEAR_STALL),
               "max_steps": 800, "quick_steps": 300})


@register("deep_linear_h2_padded")
def _deep_linear_h2_padded(d_x: int = 4, d_y: int = 3, width: int = 3, m: int = 64, seed: int = 0,
                           S: tuple[int, ...] = (0, 1)) -> Problem:
    """H = 2 deep linear net near the leading, zero-padded critical point S = (0, 1) (s < r): a
    non-strict saddle (PSD Hessian, descent at third order through the padded unit)."""
    dl = DeepLinearProblem.random(d_x, d_y, [width, width], m, seed)
    cp = dl.critical_point(S)
    return deep_linear_problem(
        "deep_linear_h2_padded", dl, reference_theta=cp.theta, reference_kind=cp.kind, reference_loss=cp.loss,
        description=(f"deep linear net {'-'.join(map(str, dl.dims))} (H = 2), {m} examples, started near the "
                     f"zero-padded leading critical point S = {cp.S}: a {cp.kind.replace('_', ' ')} of index 0"),
        hints={"lr": 0.05, "span": 1.0, "normalization": "none", "eps": 1e-2, "stall": _stall(**DEEP_LINEAR_STALL),
               "max_steps": 1500, "quick_steps": 800})


# ---------------------------------------------------------------------------- XOR 2-2-1
@register("xor")
def _xor(dtype: torch.dtype = torch.float64) -> Problem:
    """The XOR 2-2-1 sigmoid net (with biases) under MSE, started near all-zero weights.

    W = 0 is a critical point (every hidden unit outputs ½, the output ½; the four errors ±½ sum to
    zero and the hidden units carry no signal) with loss ¼ and a PSD Hessian of rank 1 (eigenvalue
    3/16, along the output offset b₂ + ½(v₁ + v₂)): a degenerate point. Near W = 0 the output is, to
    leading order, ½ plus an affine function of x (σ(z) = ½ + z/4 + O(z³)), and no affine function fits
    XOR better than the constant ½, so the loss can fall only through higher-order terms: a long
    plateau. The XOR surface is known for such plateaus and saddles (Sprinkhuizen-Kuyper & Boers
    1999; Hamey 1998: the 2-2-1 XOR surface has no strict local minima at finite weights, its traps
    lie at infinity). Global value: the infimum 0, approached as the
    weights grow (a sigmoid output never reaches 0 or 1 exactly).
    """
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]], dtype=torch.float64)

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid()),
                              seed, dtype)

    return Problem(
        name="xor", description="XOR 2-2-1 sigmoid net (biases), 4 examples, MSE, started near W = 0 (loss ¼, a "
                                "plateau); global value 0 (an infimum, reached only as weights grow)",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X.to(dtype), y.to(dtype)),
        reference=lambda seed=0: torch.zeros(9, dtype=torch.float64), global_min=0.0, dtype=dtype,
        reduction="mean", reference_kind="degenerate", reference_loss=0.25,
        hints={"lr": 2.0, "span": 4.0, "normalization": "none", "eps": 0.1,
               "stall": _stall(**{"window": 50, "rel_tol": 1e-3, "grad_tol": 1e-3}), "max_steps": 2000,
               "quick_steps": 1000})


# ---------------------------------------------------------------------------- bottleneck autoencoder
AUTOENCODER_KEY = "X"


def load_npz_matrix(path: str, key: str = AUTOENCODER_KEY) -> torch.Tensor:
    """Load the data matrix ``key`` (default ``"X"``) of shape (n examples, d features) from an
    ``.npz`` file as float64. Clear ``ValueError``/``FileNotFoundError`` for a missing file, a
    missing key (the keys present are listed), a non-2-D or empty array, or non-finite entries."""
    import os

    import numpy as np

    if not os.path.exists(path):
        raise FileNotFoundError(f"autoencoder data file {path!r} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path!r} is not a readable .npz file: {exc}") from exc
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is a single .npy array, not an .npz archive; save it with "
                         f"numpy.savez(path, {key}=matrix)")
    with f:
        keys = list(f.keys())
        if key not in keys:
            raise ValueError(f"{path!r} has no array {key!r} (arrays present: {', '.join(keys) or 'none'}); "
                             f"store the data matrix (n examples × d features) under {key!r}")
        try:
            arr = f[key]
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise ValueError(f"array {key!r} in {path!r} cannot be read without pickle: {exc}") from exc
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"array {key!r} in {path!r} must be 2-D (n examples × d features, n >= 2, d >= 2), "
                         f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"array {key!r} in {path!r} must be real numbers, got dtype {arr.dtype}")
    out = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    if not torch.isfinite(out).all():
        raise ValueError(f"array {key!r} in {path!r} has non-finite entries")
    return out


def pca_autoencoder_min(X: torch.Tensor, k: int) -> float:
    """Eckart–Young value of the bias-free linear autoencoder x ↦ W₂W₁x with bottleneck k under the
    mean-over-examples loss ½‖W₂W₁x − x‖²: min = (1/2n) Σ_{i>k} σ_i(X)² — the (uncentred) energy
    outside the top-k principal directions of XᵀX/n, halved."""
    s = torch.linalg.svdvals(X.to(torch.float64))
    return 0.5 * float((s[k:] ** 2).sum()) / X.shape[0]


def _ae_product(theta: torch.Tensor, d: int, k: int) -> torch.Tensor:
    """W₂W₁ (d, d) from the flat autoencoder weights [W₁ (k, d), W₂ (d, k)]."""
    return theta[d * k:].reshape(d, k) @ theta[:d * k].reshape(k, d)


@register("autoencoder")
def _autoencoder(d: int = 8, k: int = 2, rank: int = 3, n: int = 128, noise: float = 0.05, seed: int = 0,
                 data_file: str | None = None, key: str = AUTOENCODER_KEY) -> Problem:
    """Bias-free linear bottleneck autoencoder d-k-d on synthetic low-rank-plus-noise data
    (X = Z·A + noise, Z (n, rank), rank > k, singular values spread), or on the user's own data:
    ``data_file`` an ``.npz`` holding the (n, d) matrix under ``key`` (default ``"X"``; d is then
    the file's). Loss: mean over examples of ½‖x̂ − x‖²; started near the PCA critical point that
    keeps principal components 1..k−1 and k+1 (a strict saddle of index 1 whose small negative
    curvature, ∝ σ_k² − σ_{k+1}², makes plain GD plateau). Global value (Eckart–Young):
    ½·(1/n)·Σ_{i>k} σ_i(X)².
    """
    if data_file is not None:
        X = load_npz_matrix(str(data_file), key)
        source = f"data file {data_file} [{key}]"
    else:
        if not (isinstance(rank, int) and 1 <= rank <= d):
            raise ValueError(f"rank must be an integer in 1..d = {d}, got {rank!r}")
        g = torch.Generator().manual_seed(int(seed))
        Z = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.linspace(2.0, 0.8, rank,
                                                                                     dtype=torch.float64)
        A = torch.linalg.qr(torch.randn(d, rank, generator=g, dtype=torch.float64)).Q.T  # (rank, d) orthonormal rows
        X = Z @ A + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
        source = f"synthetic rank-{rank} + {noise} noise"
    n, d = (int(s) for s in X.shape)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < d:
        raise ValueError(f"bottleneck k must be an integer in 1..d-1 = {d - 1}, got {k!r}")
    dim = 2 * d * k
    # Reference: the PCA critical point that keeps components 1..k-1 and k+1 (skips the k-th), a
    # strict saddle of index 1 (Baldi–Hornik; the deep linear construction with Y = X, H = 1).
    # Data breaking its assumptions (repeated singular values, n < d) fall back to W = 0.
    S = tuple(range(k - 1)) + (k,)
    try:
        cp = DeepLinearProblem(X, X, [k]).critical_point(S)
        ref_theta, ref_kind, where = cp.theta, cp.kind, f"the PCA saddle S = {S} (0-based components)"
    except ValueError:
        ref_theta, ref_kind, where = torch.zeros(dim, dtype=torch.float64), "strict_saddle", "W = 0"
    ref_loss = 0.5 * float(((X @ _ae_product(ref_theta, d, k).T - X) ** 2).sum()) / n

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d, k, bias=False), nn.Linear(k, d, bias=False)),
                              seed, torch.float64)

    return Problem(
        name="autoencoder",
        description=(f"linear bottleneck autoencoder {d}-{k}-{d} (no biases) on {source}, {n} examples, loss mean "
                     f"½‖x̂ − x‖², started near {where}; global value from PCA (Eckart–Young)"),
        make_model=make_model, loss_fn=half_sq_error, data=(X, X.clone()),
        reference=lambda seed=0: ref_theta.clone(), global_min=pca_autoencoder_min(X, k),
        dtype=torch.float64, reduction="mean", reference_kind=ref_kind, reference_loss=ref_loss,
        hints={"lr": 0.1, "span": 1.0, "normalization": "none", "eps": 1e-4,
               "stall": _stall(**{"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}), "max_steps": 1500,
               "quick_steps": 400},
        extra={"k": k, "data_file": data_file, "key": key},
    )


# ---------------------------------------------------------------------------- noisy regression control
@register("noisy_regression")
def _noisy_regression(d: int = 5, n: int = 200, noise: float = 1.0, seed: int = 0) -> Problem:
    """Linear regression y = w·x + b + noise·ε with heavy noise: at the least-squares optimum the
    mean gradient is 0 but every example's gradient is large (cancellation κ ≈ 0 at a true global
    minimum) — the failure-mode control. Loss: MSE (mean of (ŷ − y)²); global value in closed form
    (least squares on [X, 1]): ‖r‖²/n with r the least-squares residual. Convex: the only stall is
    the global minimum."""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, 1, generator=g, dtype=torch.float64)
    y = X @ w + 0.5 + noise * torch.randn(n, 1, generator=g, dtype=torch.float64)
    A = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(A, y, driver="gelsd").solution  # gelsy (the default) is not deterministic
    L_star = float(((A @ sol - y) ** 2).mean())

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(d, 1)), seed, torch.float64)

    return Problem(
        name="noisy_regression",
        description=(f"noisy linear regression, d = {d}, {n} examples, noise σ = {noise}, MSE; convex, global value "
                     "by least squares; at the optimum the per-example gradients are large and cancel (κ ≈ 0)"),
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, y), reference=_init_reference(make_model),
        global_min=L_star, dtype=torch.float64, reduction="mean", reference_kind="init",
        hints={"lr": 0.1, "span": 1.0, "normalization": "none", "eps": 0.0,
               "stall": _stall(**{"window": 20, "rel_tol": 1e-4, "grad_tol": 1e-3}), "max_steps": 400,
               "quick_steps": 250},
        extra={"lstsq": sol.reshape(-1)},
    )


# ============================================================================ the escape study's set (issue 10)
# Problems crossing stall cause × kind, each with an analytic certificate (critical value, kind,
# per-example gradient scale at the reference point) checked by tests/test_problem_certificates.py.
# ``hints["study"]`` = {"kind", "cause", "certificate"}: the cell the problem's reference point
# certifies; :func:`analyses.escape.default_problems` runs every problem carrying it.
# ``hints["trainer"]``: Trainer options for every method (the escape horizon).
#
#   kind \ cause        vanishing (every g_i → 0)          cancelling (g_i large, mean → 0)
#   strict saddle       deep_linear_h1_zero  (W = 0, H = 1) deep_linear_h1_saddle (Baldi–Hornik S = (0, 2))
#   non-strict saddle   deep_linear_h2_zero  (W = 0, H = 2) deep_linear_h2_padded (padded leading S = (0, 1))
#   spurious local min  relu_dead (every unit dead)          relu_spurious (one unit dead, one fitted)
#   global minimum      relu_teacher (realizable teacher)    noisy_regression (least squares, noise)
#
# Step sizes: lr·λ_max < 2 at the reference point and at the end of a GD run of max_steps (λ_max of
# the dense Hessian), checked by the certificate tests; the values below keep lr·λ_max ≤ 1.

def _relu_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs x ~ N(0, I₂) (n, 2) and the two-unit ReLU teacher y = Σ_k relu(t_k·x + c_k) (n, 1)."""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, 2, generator=g, dtype=torch.float64)
    T = torch.tensor([[1.0, 0.5], [-0.6, 1.0]], dtype=torch.float64)
    c = torch.tensor([0.2, -0.1], dtype=torch.float64)
    y = torch.relu(X @ T.T + c).sum(1, keepdim=True)
    return X, y, T, c


def relu_active_fit(X: torch.Tensor, y: torch.Tensor, start: torch.Tensor, max_iter: int = 50
                    ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The one-active-unit critical point of ``y ≈ a·relu(w·x + b)``: the fixed point of "fit
    u = a·(w, b) by least squares on the examples where u·(x, 1) > 0, recompute that set".
    Returns ``(u (3,), active mask (n,), margin)`` with margin = min_i |u·(x_i, 1)| / ‖u‖ (the
    activation pattern cannot change under perturbations of θ smaller than about that)."""
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
    mask = (Xt @ start) > 0
    for _ in range(max_iter):
        u = torch.linalg.lstsq(Xt[mask], y[mask], driver="gelsd").solution.reshape(-1)  # gelsy: not deterministic
        new = (Xt @ u) > 0
        if torch.equal(new, mask):
            margin = float((Xt @ u).abs().min() / u.norm())
            return u, mask, margin
        mask = new
    raise ValueError("the active-set iteration did not settle")


def _relu_problem(name: str, start: str, n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU student (Linear(2, 2) with biases → ReLU → Linear(2, 1) without bias) of the
    two-unit teacher :func:`_relu_data`, MSE (mean). Realizable: the global value is 0.

    ``start``: ``"teacher"`` the teacher's weights (global minimum; residuals and so every
    per-example gradient vanish); ``"spurious"`` unit 1 dead (w = 0, b = −1: relu is 0 on every
    example, so its three parameters get no gradient and small moves leave the loss unchanged) and
    unit 0 the least-squares fit on its own active set (:func:`relu_active_fit`): gradient 0, and
    the loss depends locally only on u = a·(w, b) through a convex quadratic, so the point is a
    (non-strict) local minimum with loss L_s = mean over examples of the residual² > 0 = L*: a
    spurious local minimum whose per-example gradients (residual × input on the active set) are
    large and cancel; ``"dead"`` both units dead: the loss is constant, mean y², on a
    neighbourhood (a flat spurious local minimum) and every per-example gradient is exactly 0.
    """
    X, y, T, c = _relu_data(n, seed)

    def make_model(seed: int = 0) -> nn.Module:
        return _seeded_module(lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1, bias=False)),
                              seed, torch.float64)

    if start == "teacher":
        W, b, a = T.clone(), c.clone(), torch.ones(2, dtype=torch.float64)
        kind, cause, loss, margin = "global_minimum", "vanishing", 0.0, None
        cert = "the teacher's weights: loss 0 = L*, every residual and per-example gradient 0"
    elif start == "spurious":
        u, mask, margin = relu_active_fit(X, y, torch.cat([T[0], c[:1]]))
        s = float(u.norm()) ** 0.5
        W = torch.stack([u[:2] / s, torch.zeros(2, dtype=torch.float64)])
        b = torch.tensor([float(u[2]) / s, -1.0], dtype=torch.float64)
        a = torch.tensor([s, 0.5], dtype=torch.float64)
        Xt = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1)
        pred = torch.where(mask, Xt @ u, torch.zeros(n, dtype=torch.float64))
        loss = float(((pred - y.reshape(-1)) ** 2).mean())
        kind, cause = "minimum", "cancelling"
        cert = (f"unit 1 dead, unit 0 the least-squares fit on its {int(mask.sum())} active examples (pattern "
                f"margin {margin:.3g}): a spurious local minimum, loss {loss:.6g} > L* = 0")
    elif start == "dead":
        W = torch.zeros(2, 2, dtype=torch.float64)
        b = torch.tensor([-1.0, -1.0], dtype=torch.float64)
        a = torch.tensor([0.5, 0.5], dtype=torch.float64)
        loss, margin = float((y ** 2).mean()), 1.0
        kind, cause = "minimum", "vanishing"
        cert = f"both units dead: the loss is constant, mean y² = {loss:.6g}, near the point; every g_i = 0"
    else:
        raise ValueError(f"start must be 'teacher', 'spurious' or 'dead', got {start!r}")
    ref = torch.cat([W.reshape(-1), b, a])
    stall = {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-3}
    return Problem(
        name=name, description=f"two-unit ReLU teacher-student (biases), {n} Gaussian inputs in 2-D, MSE, started near "
                               f"{cert}",
        make_model=make_model, loss_fn=nn.MSELoss(), data=(X, y), reference=lambda seed=0: ref.clone(),
        global_min=0.0, dtype=torch.float64, reduction="mean", reference_kind=kind, reference_loss=loss,
        hints={"lr": 0.15, "span": 1.0, "normalization": "none", "eps": 1e-3, "stall": _stall(**stall),
               "max_steps": 1100, "quick_steps": 800, "trainer": {"escape_horizon": 500},
               "study": {"kind": kind, "cause": cause, "certificate": cert, "critical_value": loss}},
        extra={"teacher": {"T": T, "c": c}, "margin": margin})


@register("relu_teacher")
def _relu_teacher(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near the teacher: a global minimum whose per-example gradients vanish."""
    p = _relu_problem("relu_teacher", "teacher", n, seed)
    # the loss decays geometrically to its round-off floor and the scale-free detector fires only
    # there (step ≈ 980): run long enough for that stall's horizon to end inside the run
    p.hints.update(max_steps=1600, quick_steps=1600)
    return p


@register("relu_spurious")
def _relu_spurious(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near a spurious local minimum (one dead unit): cancelling gradients."""
    return _relu_problem("relu_spurious", "spurious", n, seed)


@register("relu_dead")
def _relu_dead(n: int = 64, seed: int = 0) -> Problem:
    """Two-unit ReLU teacher-student near the all-dead flat spurious local minimum: vanishing gradients."""
    return _relu_problem("relu_dead", "dead", n, seed)


#: the study cell each existing problem's reference point certifies ("kind", "cause", "certificate"),
#: and under "overrides" the study's changes to its benchmark hints: step sizes with lr·λ_max ≤ 1
#: along a GD run (the deep linear nets' curvature grows to ~30 near their global minima, so 0.05
#: gave lr·λ_max ≈ 1.5 and GD's loss rose on deep_linear_h2_saddle), starts close enough to the
#: saddle that the detector sees it, runs long enough that the first stall's horizon ends inside
#: the run; non-strict saddles get a longer horizon (escape times grow polynomially, THEORY.md §2).
_STUDY: dict[str, dict[str, Any]] = {
    "deep_linear_h1_zero": {
        "kind": "strict_saddle", "cause": "vanishing",
        "certificate": "W = 0 with H = 1: Hessian ±σ_i(XᵀY); every per-example gradient is a "
                       "product containing the other zero layer, so g_i = 0",
        "overrides": {"lr": 0.03, "eps": 1e-6, "max_steps": 1200, "quick_steps": 900}},
    "deep_linear_h1_saddle": {
        "kind": "strict_saddle", "cause": "cancelling",
        "certificate": "Baldi–Hornik point S = (0, 2), loss ½(tr YᵀY − λ₁ − λ₃), index 1; "
                       "targets not fitted, so the residuals and g_i are non-zero",
        "overrides": {"lr": 0.03, "eps": 1e-6, "max_steps": 1200, "quick_steps": 900,
                      "stall": {"window": 20, "rel_tol": 1e-3, "grad_tol": 1e-2}}},
    "deep_linear_h2_zero": {
        "kind": "non_strict_saddle", "cause": "vanishing",
        "certificate": "W = 0 with H = 2: Hessian exactly 0, cubic descent; g_i = 0",
        "overrides": {"lr": 0.03, "eps": 1e-2, "max_steps": 1100, "quick_steps": 1100,
                      "trainer": {"escape_horizon": 1000}}},
    "deep_linear_h2_padded": {
        "kind": "non_strict_saddle", "cause": "cancelling",
        "certificate": "zero-padded leading point S = (0, 1): PSD Hessian, third-order descent "
                       "through the padded unit; residuals non-zero",
        "overrides": {"lr": 0.03, "eps": 1e-2, "max_steps": 1100, "quick_steps": 1100,
                      "trainer": {"escape_horizon": 1000}}},
    "noisy_regression": {
        "kind": "global_minimum", "cause": "cancelling",
        "certificate": "least-squares optimum of a noisy regression: loss ‖r‖²/n = L*, "
                       "per-example gradients 2 r_i (x_i, 1) large",
        "overrides": {"lr": 0.1, "max_steps": 700, "quick_steps": 600}},
}


def _add_study_hints(name: str) -> None:
    factory = PROBLEMS[name]

    def wrapped(**options: Any) -> Problem:
        p = factory(**options)
        cell = {k: v for k, v in _STUDY[name].items() if k != "overrides"}
        over = dict(_STUDY[name].get("overrides", {}))
        if "stall" in over:
            over["stall"] = _stall(**over["stall"])
        p.hints.update(over)
        p.hints.setdefault("trainer", {"escape_horizon": 500})
        p.hints["study"] = cell
        # the certified critical value: the reference point's loss (the global value for the control)
        p.hints["study"]["critical_value"] = (p.reference_loss if p.reference_loss is not None else p.global_min)
        return p

    wrapped.__doc__ = factory.__doc__
    PROBLEMS[name] = wrapped


for _name in _STUDY:
    _add_study_hints(_name)

# ---------------------------------------------------------------------------- problems in other modules
# Further problems live in their own modules and register themselves on import (one line each):
from . import digits  # noqa: E402,F401  (registers digits_autoencoder)
