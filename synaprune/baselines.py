"""Baselines: GD, SGD, Adam, RMSprop, sign-GD, normalised GD, PGD (Jin et al.'s thresholds, and
fixed ones), NCD, SFN (SYNAPRUNE.md, "Baselines").

RMSprop, sign-GD and normalised GD take steps whose length does not follow the gradient's size
(per coordinate, or of fixed length), so their ``lr`` is not the GD step size: the escape study
chooses it on tuning instances (:mod:`analyses.escape.tuning`).

Every threshold is an option with a documented default. Defaults of ``None`` for gradient
thresholds mean "the stall detector's ``grad_tol``", so the baselines and the stall detector agree
on what a small gradient is.
"""
from __future__ import annotations

import math

import torch

from landscape import extreme_eigs, lanczos

from .base import StepContext, UpdateRule, positive


class GD(UpdateRule):
    """``gd``: θ ← θ − lr·∇L (full batch; minibatch when the trainer has ``batch_size``). No options.

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.ones(2), loss=1.0, grad=torch.tensor([1.0, -2.0]), lr=0.5,
        ...                   access=None, generator=torch.Generator())
        >>> GD().step(ctx)
        tensor([0.5000, 2.0000])
    """

    name = "gd"

    def step(self, ctx: StepContext) -> torch.Tensor:
        return ctx.theta - ctx.lr * ctx.step_grad()


class SGD(UpdateRule):
    """``sgd``: minibatch SGD with optional heavy-ball momentum, b ← μ·b + g, θ ← θ − lr·b. The
    trainer's ``batch_size`` sets the minibatch (default for this method: min(32, n)).

    Args:
        momentum: μ ∈ [0, 1) (default 0).

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.zeros(1), loss=0.0, grad=torch.ones(1), lr=0.1, access=None,
        ...                   generator=torch.Generator())
        >>> rule = SGD(momentum=0.5)        # Trainer(..., method="sgd", momentum=0.5)
        >>> rule.step(ctx), rule.step(ctx)  # b = g, then b = 0.5·b + g
        (tensor([-0.1000]), tensor([-0.1500]))
    """

    name = "sgd"
    DEFAULTS = {"momentum": 0.0}

    def validate(self) -> None:
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"option momentum must lie in [0, 1), got {self.momentum!r}")

    def reset(self) -> None:
        self._buf: torch.Tensor | None = None

    def step(self, ctx: StepContext) -> torch.Tensor:
        g = ctx.step_grad()
        if self.momentum:
            self._buf = g if self._buf is None else self.momentum * self._buf + g
            g = self._buf
        return ctx.theta - ctx.lr * g


class Adam(UpdateRule):
    """``adam`` (Kingma & Ba) with bias correction, as ``torch.optim.Adam``; full batch unless the
    trainer has ``batch_size``.

    Args:
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε added to √v̂ (default 1e-8, gradient units).

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.zeros(1), loss=0.0, grad=torch.ones(1), lr=0.1, access=None,
        ...                   generator=torch.Generator())
        >>> Adam().step(ctx)                # the first step is lr·sign(g) (up to ε)
        tensor([-0.1000])
    """

    name = "adam"
    DEFAULTS = {"betas": (0.9, 0.999), "eps": 1e-8}

    def validate(self) -> None:
        b1, b2 = self.betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"option betas must lie in [0, 1), got {self.betas!r}")
        positive("eps", self.eps)

    def reset(self) -> None:
        self._m: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._t = 0

    def step(self, ctx: StepContext) -> torch.Tensor:
        g = ctx.step_grad()
        b1, b2 = self.betas
        if self._m is None:
            self._m, self._v = torch.zeros_like(g), torch.zeros_like(g)
        self._t += 1
        self._m = b1 * self._m + (1 - b1) * g
        self._v = b2 * self._v + (1 - b2) * g * g
        mhat = self._m / (1 - b1 ** self._t)
        vhat = self._v / (1 - b2 ** self._t)
        return ctx.theta - ctx.lr * mhat / (vhat.sqrt() + self.eps)


class RMSprop(UpdateRule):
    """``rmsprop`` (Tieleman & Hinton 2012) as ``torch.optim.RMSprop`` with its defaults (no
    momentum, not centred): v ← α·v + (1 − α)·g², θ ← θ − lr·g/(√v + ε). There is no bias
    correction, so the first step moves each coordinate by lr/√(1 − α) = 10·lr (α = 0.99) and a
    coordinate whose gradient stays constant moves by lr per step in the long run: the step size is
    per coordinate, in parameter units, whatever the gradient's scale (chosen by tuning, not from
    the loss's curvature).

    Args:
        alpha: α ∈ [0, 1) (default 0.99).
        eps: ε added to √v (default 1e-8, gradient units).

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.zeros(1), loss=0.0, grad=torch.ones(1), lr=0.1, access=None,
        ...                   generator=torch.Generator())
        >>> RMSprop().step(ctx)             # 0.1 · 1 / √0.01 = 1.0
        tensor([-1.0000])
    """

    name = "rmsprop"
    DEFAULTS = {"alpha": 0.99, "eps": 1e-8}

    def validate(self) -> None:
        if not (0 <= self.alpha < 1):
            raise ValueError(f"option alpha must lie in [0, 1), got {self.alpha!r}")
        positive("eps", self.eps)

    def reset(self) -> None:
        self._v: torch.Tensor | None = None

    def step(self, ctx: StepContext) -> torch.Tensor:
        g = ctx.step_grad()
        self._v = (1 - self.alpha) * g * g if self._v is None else self.alpha * self._v + (1 - self.alpha) * g * g
        return ctx.theta - ctx.lr * g / (self._v.sqrt() + self.eps)


class SignGD(UpdateRule):
    """``sign-gd``: θ ← θ − lr·sign(∇L) (signSGD with a full batch; Bernstein et al. 2018). Every
    coordinate with a non-zero gradient moves by exactly lr (parameter units), so the step's length
    is lr·√(#non-zero coordinates), independent of the gradient's size: lr is chosen by tuning.

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.zeros(3), loss=0.0, grad=torch.tensor([2.0, -1e-9, 0.0]), lr=0.1,
        ...                   access=None, generator=torch.Generator())
        >>> SignGD().step(ctx)
        tensor([-0.1000,  0.1000,  0.0000])
    """

    name = "sign-gd"

    def step(self, ctx: StepContext) -> torch.Tensor:
        return ctx.theta - ctx.lr * torch.sign(ctx.step_grad())


class NormalizedGD(UpdateRule):
    """``normalized-gd``: θ ← θ − lr·∇L/‖∇L‖ (normalised gradient descent; Nesterov 1984, Murray
    et al. 2019 for saddles): every step has length exactly lr (parameter units) along the negative
    gradient, however small the gradient (no step where ∇L = 0 exactly). lr is chosen by tuning.

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> ctx = StepContext(step=0, theta=torch.zeros(2), loss=0.0, grad=torch.tensor([3e-9, 4e-9]), lr=0.5,
        ...                   access=None, generator=torch.Generator())
        >>> NormalizedGD().step(ctx)
        tensor([-0.3000, -0.4000])
    """

    name = "normalized-gd"

    def step(self, ctx: StepContext) -> torch.Tensor:
        g = ctx.step_grad()
        n = float(torch.linalg.vector_norm(g))
        return ctx.theta if n == 0.0 else ctx.theta - (ctx.lr / n) * g


def uniform_ball(dim: int, radius: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """A point uniform in the ball of ``radius`` in R^dim (drawn in float64 on the CPU).

    Args:
        dim: the dimension.
        radius: the ball's radius (parameter units).
        generator: the source of randomness (two draws: a direction, a radius).
        like: the output takes this tensor's dtype and device.

    Returns:
        ξ, shape (dim,), ‖ξ‖ ≤ radius.

    Example:
        >>> import torch
        >>> xi = uniform_ball(5, 0.1, torch.Generator().manual_seed(0), torch.zeros(5))
        >>> xi.shape, bool(torch.linalg.vector_norm(xi) <= 0.1)
        (torch.Size([5]), True)
    """
    d = torch.randn(dim, generator=generator, dtype=torch.float64)
    d = d / torch.linalg.vector_norm(d)
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return (radius * u ** (1.0 / dim) * d).to(like)


class PGDFixed(UpdateRule):
    """``pgd-fixed``: perturbed gradient descent (Jin et al. 2017, Algorithm 2) with fixed thresholds.

    When ‖∇L‖ ≤ ``g_thres`` and no perturbation happened in the last ``t_thres`` steps, the step
    replaces θ by θ̃ + ξ, ξ uniform in the ball of radius ``radius`` (the gradient step resumes
    at the next iteration, from the perturbed point). ``t_thres`` steps after a perturbation, if
    L has not dropped by ``f_thres`` below L(θ̃), θ̃ is declared second-order stationary: with
    ``stop_at_sosp`` (default True) the run ends there and returns θ̃. Defaults: ``g_thres`` =
    the stall detector's ``grad_tol``, ``t_thres`` = 50, ``radius`` = 1e-2, ``f_thres`` = 1e-4.
    At W = 0 of a deep linear net with H ≥ 2 the Hessian is 0 and escape is polynomially slow, so
    this test returns W = 0 as second-order stationary (a known limitation). These fixed defaults
    are the project's earlier choice; ``pgd`` derives them from stated ℓ, ρ, ε instead.

    Args:
        g_thres: gradient threshold (None: the stall detector's threshold).
        t_thres: steps between perturbations and before the stationarity test (default 50).
        radius: perturbation radius (default 1e-2, parameter units).
        f_thres: required loss decrease after a perturbation (default 1e-4, loss units).
        stop_at_sosp: end the run at a declared second-order stationary point (default True).

    Example:
        >>> import torch
        >>> from synaprune.base import StepContext
        >>> zero = torch.zeros(3, dtype=torch.float64)
        >>> ctx = StepContext(step=0, theta=zero, loss=0.0, grad=zero, lr=0.1, access=None,
        ...                   generator=torch.Generator().manual_seed(0))
        >>> new = PGDFixed(g_thres=1e-3, radius=1e-2).step(ctx)       # ‖g‖ ≤ g_thres: perturb
        >>> ctx.info["perturbed"], bool(torch.linalg.vector_norm(new) <= 1e-2)
        (True, True)
    """

    name = "pgd-fixed"
    DEFAULTS = {"g_thres": None, "t_thres": 50, "radius": 1e-2, "f_thres": 1e-4, "stop_at_sosp": True}

    def validate(self) -> None:
        positive("g_thres", self.g_thres, allow_none=True)
        positive("radius", self.radius)
        positive("f_thres", self.f_thres, allow_zero=True)
        if isinstance(self.t_thres, bool) or not isinstance(self.t_thres, int) or self.t_thres < 1:
            raise ValueError(f"option t_thres must be a positive integer, got {self.t_thres!r}")

    def reset(self) -> None:
        self.t_noise: int | None = None
        self.theta_tilde: torch.Tensor | None = None
        self.loss_tilde = math.nan
        self.n_perturbations = 0

    def step(self, ctx: StepContext) -> torch.Tensor:
        t = ctx.step
        if self.theta_tilde is not None and self.t_noise is not None and t - self.t_noise >= self.t_thres:
            if ctx.loss - self.loss_tilde > -self.f_thres:
                ctx.info["sosp"] = True
                if self.stop_at_sosp:
                    ctx.info["stop"] = "second_order_stationary"
                    ctx.info["return_theta"] = self.theta_tilde.clone()
                    return ctx.theta
            self.theta_tilde = None
        g_thres = self.g_thres if self.g_thres is not None else ctx.info.get("grad_tol", 1e-3)
        quiet = self.t_noise is None or t - self.t_noise > self.t_thres
        if ctx.grad_norm <= g_thres and quiet:
            self.theta_tilde = ctx.theta.clone()
            self.loss_tilde = ctx.loss
            self.t_noise = t
            self.n_perturbations += 1
            ctx.info["perturbed"] = True
            return ctx.theta + uniform_ball(ctx.theta.numel(), self.radius, ctx.generator, ctx.theta)
        return ctx.theta - ctx.lr * ctx.step_grad()


class PGD(PGDFixed):
    """``pgd``: perturbed gradient descent with the thresholds of Jin et al. 2017 (Algorithm 2),
    computed at the start of each run from stated constants (stored in ``thresholds``):

        χ = 3·max(ln(d·ℓ·Δf / (c·ε²·δ)), 4),   r = (√c/χ²)·ε/ℓ,   g_thres = (√c/χ²)·ε,
        f_thres = (c/χ³)·√(ε³/ρ),                t_thres = ⌈(χ/c²)·ℓ/√(ρ·ε)⌉

    with d the dimension and the options ``ell`` (ℓ, gradient Lipschitz constant; default c/lr,
    so that Jin's step η = c/ℓ is the run's lr), ``rho`` (Hessian Lipschitz constant; default the
    trainer's ``hessian_lipschitz``, 1 when unset), ``eps`` (target ε of the ε-second-order
    stationary point; default the stall detector's gradient threshold at θ_0), ``c`` (Jin's absolute constant; default 1),
    ``delta`` (failure probability; default 0.1), ``delta_f`` (Δf ≥ L(θ_0) − L*; default
    L(θ_0) − L* with L* the known global minimum, else L(θ_0) − 0, i.e. a non-negative loss is
    assumed). If d·ℓ·Δf/(c·ε²·δ) ≤ 1 the logarithm term is replaced by its floor 4. The step is
    the trainer's lr (equal to Jin's η = c/ℓ with the default ℓ). Everything else as ``pgd-fixed``.

    Args:
        ell: ℓ (None: c/lr).
        rho: ρ (None: the trainer's ``hessian_lipschitz``, or 1).
        eps: ε (None: the detector's gradient threshold at θ_0).
        c: Jin's constant (default 1).
        delta: failure probability in (0, 1) (default 0.1).
        delta_f: Δf (None: L(θ_0) − L*).
        stop_at_sosp: as ``pgd-fixed``.

    Example:
        >>> rule = PGD()
        >>> rule.setup({"lr": 0.05, "grad_tol": 1e-2, "dim": 10, "n": 64, "loss0": 1.0, "global_min": 0.0,
        ...             "hessian_lipschitz": 1.0})
        >>> th = rule.derived()["thresholds"]
        >>> round(th["chi"], 2), f"{th['g_thres']:.2e}", th["t_thres"]
        (50.43, '3.93e-06', 10087)
    """

    name = "pgd"
    DEFAULTS = {"ell": None, "rho": None, "eps": None, "c": 1.0, "delta": 0.1, "delta_f": None,
                "stop_at_sosp": True}

    def validate(self) -> None:
        for key in ("ell", "rho", "eps", "delta_f"):
            positive(key, getattr(self, key), allow_none=True, allow_zero=(key == "delta_f"))
        positive("c", self.c)
        if not (0 < self.delta < 1):
            raise ValueError(f"option delta must lie in (0, 1), got {self.delta!r}")
        self.thresholds: dict | None = None
        self.g_thres = self.radius = self.f_thres = None
        self.t_thres = 1

    def setup(self, info: dict) -> None:
        """Derive the thresholds from the run and the stated constants.

        Args:
            info: ``lr``, ``grad_tol``, ``dim``, ``loss0`` (L(θ_0)), ``global_min`` and
                ``hessian_lipschitz`` (see :meth:`UpdateRule.setup`).

        Raises:
            ValueError: ρ or ε is not positive.
        """
        c, delta, d = float(self.c), float(self.delta), int(info["dim"])
        ell = float(self.ell) if self.ell is not None else c / float(info["lr"])
        rho = float(self.rho) if self.rho is not None else float(info["hessian_lipschitz"])
        eps = float(self.eps) if self.eps is not None else float(info["grad_tol"])
        if not (rho > 0 and eps > 0):
            raise ValueError(f"pgd needs positive rho and eps (got rho={rho!r}, eps={eps!r}); state them as options")
        f_star = info.get("global_min")
        delta_f = (float(self.delta_f) if self.delta_f is not None
                   else max(float(info["loss0"]) - (0.0 if f_star is None else float(f_star)), 0.0))
        arg = d * ell * delta_f / (c * eps ** 2 * delta)
        chi = 3.0 * max(math.log(arg) if arg > 0 else -math.inf, 4.0)
        self.radius = math.sqrt(c) / chi ** 2 * eps / ell
        self.g_thres = math.sqrt(c) / chi ** 2 * eps
        self.f_thres = c / chi ** 3 * math.sqrt(eps ** 3 / rho)
        self.t_thres = max(1, math.ceil(chi / c ** 2 * ell / math.sqrt(rho * eps)))
        self.thresholds = {"ell": ell, "rho": rho, "eps": eps, "c": c, "delta": delta, "delta_f": delta_f,
                           "dim": d, "chi": chi, "eta": c / ell, "radius": self.radius, "g_thres": self.g_thres,
                           "f_thres": self.f_thres, "t_thres": self.t_thres}

    def derived(self) -> dict:
        """``{"thresholds": {ell, rho, eps, c, delta, delta_f, dim, chi, eta, radius, g_thres, f_thres,
        t_thres}}`` once :meth:`setup` ran, else {}."""
        return {} if self.thresholds is None else {"thresholds": dict(self.thresholds)}

    def step(self, ctx: StepContext) -> torch.Tensor:
        if self.thresholds is None:
            raise RuntimeError("pgd: thresholds not derived; the trainer calls setup() at the start of a run")
        return super().step(ctx)


class NCD(UpdateRule):
    """``ncd``: negative-curvature descent.

    If ‖∇L‖ ≤ ``eps_g`` (default: the stall detector's ``grad_tol``) and Lanczos
    (:func:`landscape.extreme_eigs`, tolerance ``lanczos_tol``) finds λ_min < −``eps_h`` with unit
    vector v, step θ ← θ + α·s, s = −sign(⟨v, ∇L⟩)·v (s = v when ⟨v, ∇L⟩ = 0), starting from
    α = |λ_min|/``rho`` and halving (at most ``max_backtracks`` times) until the actual decrease is
    at least half the quadratic model's, −(α⟨g, s⟩ + ½α²λ_min)/2. Otherwise a GD step.
    Defaults: eps_h = 1e-3, rho = 1.0, lanczos_tol = 1e-6, max_backtracks = 30.

    Args:
        eps_g: gradient threshold (None: the stall detector's threshold).
        eps_h: curvature threshold (≥ 0, curvature units).
        rho: ρ in the first trial step |λ_min|/ρ.
        lanczos_tol: tolerance of :func:`landscape.extreme_eigs`.
        lanczos_max_iter: its iteration cap (None: its default).
        max_backtracks: halvings of the step at most.

    Example:
        >>> NCD(eps_h=1e-4).options["rho"]      # Trainer(..., method="ncd", eps_h=1e-4)
        1.0
    """

    name = "ncd"
    DEFAULTS = {"eps_g": None, "eps_h": 1e-3, "rho": 1.0, "lanczos_tol": 1e-6, "lanczos_max_iter": None,
                "max_backtracks": 30}

    def validate(self) -> None:
        positive("eps_g", self.eps_g, allow_none=True)
        positive("eps_h", self.eps_h, allow_zero=True)
        positive("rho", self.rho)
        positive("lanczos_tol", self.lanczos_tol)

    def step(self, ctx: StepContext) -> torch.Tensor:
        eps_g = self.eps_g if self.eps_g is not None else ctx.info.get("grad_tol", 1e-3)
        if ctx.grad_norm <= eps_g:
            eig = extreme_eigs(ctx.access.obj, ctx.theta, k=1, which="smallest", tol=self.lanczos_tol,
                               max_iter=self.lanczos_max_iter, seed=ctx.step)
            ctx.access.cost.n_hvp += eig.n_hvp
            lam = float(eig.values[0])
            ctx.info["lambda_min"] = lam
            if lam < -self.eps_h:
                v = eig.vectors[:, 0].to(ctx.theta)
                vg = float(v @ ctx.grad)
                s = -v if vg > 0 else v
                gs = float(ctx.grad @ s)
                alpha = abs(lam) / self.rho
                for _ in range(self.max_backtracks + 1):
                    cand = ctx.theta + alpha * s
                    model_drop = alpha * gs + 0.5 * alpha ** 2 * lam  # < 0
                    try:
                        new_loss = ctx.access.loss(cand)
                    except FloatingPointError:
                        new_loss = math.inf
                    if new_loss <= ctx.loss + 0.5 * model_drop:
                        ctx.info["ncd_step"] = alpha
                        return cand
                    alpha *= 0.5
        return ctx.theta - ctx.lr * ctx.step_grad()


class SFN(UpdateRule):
    """``sfn``: saddle-free Newton (Dauphin et al. 2014) in a Krylov subspace.

    Lanczos (:func:`landscape.linalg.lanczos`, full reorthogonalisation) from ∇L builds a
    ``krylov_dim``-dimensional subspace containing ∇L; with its Ritz pairs (λ_k, v_k),
    Δθ(δ) = −Σ_k ⟨v_k, g⟩ v_k / (|λ_k| + δ·max|λ|) and θ ← θ + lr·Δθ(δ) for the damping δ in
    ``dampings`` (relative to the spectral scale; default 1e-4 … 1) that gives the lowest loss
    (the line search over the damping). If no candidate lowers the loss, a GD step. At a point
    with ‖∇L‖ ≤ ``perturb_tol`` (an exact critical point, where the Krylov space is empty) θ is
    first moved by a seeded uniform-ball perturbation of radius ``perturb_radius`` (default 1e-6).

    Args:
        krylov_dim: Lanczos steps (default 20).
        dampings: relative dampings tried (default 1e-4, 1e-3, 1e-2, 1e-1, 1).
        perturb_tol: gradient norm at or below which θ is perturbed first (default 1e-12).
        perturb_radius: that perturbation's radius (default 1e-6, parameter units).

    Example:
        >>> SFN(krylov_dim=5).options["dampings"]      # Trainer(..., method="sfn", krylov_dim=5)
        (0.0001, 0.001, 0.01, 0.1, 1.0)
    """

    name = "sfn"
    DEFAULTS = {"krylov_dim": 20, "dampings": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "perturb_tol": 1e-12,
                "perturb_radius": 1e-6}

    def validate(self) -> None:
        if isinstance(self.krylov_dim, bool) or not isinstance(self.krylov_dim, int) or self.krylov_dim < 1:
            raise ValueError(f"option krylov_dim must be a positive integer, got {self.krylov_dim!r}")
        if not self.dampings:
            raise ValueError("option dampings must list at least one relative damping")
        for d in self.dampings:
            positive("dampings", d)
        positive("perturb_radius", self.perturb_radius)
        positive("perturb_tol", self.perturb_tol, allow_zero=True)

    def step(self, ctx: StepContext) -> torch.Tensor:
        theta, loss, g = ctx.theta, ctx.loss, ctx.grad
        access = ctx.access
        if float(torch.linalg.vector_norm(g)) <= self.perturb_tol:
            theta = theta + uniform_ball(theta.numel(), self.perturb_radius, ctx.generator, theta)
            loss, g = access.loss_and_grad(theta)
            ctx.info["perturbed"] = True
            if float(torch.linalg.vector_norm(g)) == 0.0:
                return theta
        op = access.obj.hvp_operator(theta)
        run = lanczos(op.matvec, g.clone(), self.krylov_dim, reorth="full", generator=ctx.generator)
        access.cost.n_hvp += op.n_matvec
        vals, S = torch.linalg.eigh(run.tridiagonal())
        V = run.Q.T @ S.to(run.Q)  # (dim, m) Ritz vectors
        c = V.T @ g
        scale = max(float(vals.abs().max()), torch.finfo(theta.dtype).tiny)
        best, best_loss = None, loss
        for d in self.dampings:
            step = -(V @ (c / (vals.abs().to(c) + d * scale)))
            cand = theta + ctx.lr * step
            try:
                cand_loss = access.loss(cand)
            except FloatingPointError:
                continue
            if cand_loss < best_loss:
                best, best_loss = cand, cand_loss
                ctx.info["sfn_damping"] = d
        if best is not None:
            return best
        return theta - ctx.lr * g
