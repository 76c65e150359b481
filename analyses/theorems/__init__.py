"""``landscape theorems``: verify Kawaguchi's (2016) four deep-linear-network statements empirically.

For depths H = 1, 2, 3, each with a bottleneck and a wide configuration (THEORY.md §3):

1. non-convex and non-concave: a point whose Hessian has eigenvalues of both signs, and two
   chords, one violating convexity (the midpoint of two global minima related by flipping the
   signs of W_1 and W_2 is W_1 = W_2 = 0), one violating concavity (θ* ± δ v₊);
2. every local minimum is global: ``n_init`` random (LeCun) initialisations per configuration (100;
   25 with ``--quick``),
   each run by L-BFGS to ‖g‖ ≤ 1e-8 (or its round-off floor / an iteration cap); the distribution
   of L_final − L*; runs ending above L* (gap > 10√ε·max(1, L*)) are classified, plus a sample of
   the others;
3. every non-global critical point is a saddle: every enumerated analytic critical point (all
   index sets, random gauge) classified; loss, index and nullity against the formulas;
4. bad saddles: W = 0 and the rank-deficient leading point S = {0} for H = 1 vs H ≥ 2 (λ_min, kind,
   probe order), and the escape time of gradient descent from ε-perturbations of W = 0 against ε
   (log for H = 1, power law ε^{−(H−1)} for H ≥ 2).

Escape times are in gradient-flow time units: T = Σ_k η_k with adaptive explicit-Euler steps
η_k = min(η_max, ρ‖θ‖/‖g‖) (ρ = 0.01, i.e. at most 1 % relative change per step), on whitened
data scaled so that σ_1(XᵀY) = 1 (hence λ_1(Σ) = 1). Escape = the first time L(0) − L(t) ≥ λ_1/4,
half of the first drop L(0) − L({u_1}) = λ_1/2.

Round-off: quantities that are zero in exact arithmetic and measured at round-off level — gaps
L_final − L*, ‖g‖ and |L − formula| at the analytic critical points — are reported as 0 when
within the configuration's round-off floor ``roundoff_floor`` = 1000·ε·max(1, tr YᵀY) (ε the
float64 machine epsilon; L* = ½(tr YᵀY − Σλ) alone carries an error of order ε·tr YᵀY), and an
eigenvalue λ_min within the classifier's zero tolerance ``eig_tol`` is reported as 0; the report
then says "≤ floor". Their last bits are not reproducible across BLAS builds or CPUs, so no noise
digits reach the tracked outputs.

Outputs in ``--out`` (default ``figures/theorems``): ``theorems.json``, ``theorems.md``,
``escape_time.png``, ``gap_hist.png``, ``index_vs_loss.png`` and ``theorems.html`` (the three
figures as interactive plotly, plotly.js inlined once).

Modules, imports pointing down the list: :mod:`.numerics` (NumPy deep linear loss, L-BFGS, escape
times and fits), :mod:`.statements` (the checks on one configuration, round-off rules),
:mod:`.report` (:class:`TheoremReport`, figures, markdown), :mod:`.run` (the driver and verdicts),
:mod:`.section` (the main job's part), :mod:`.cli`.
"""
from .report import Settings, TheoremReport
from .run import run_theorems
from .section import study_section

__all__ = ["run_theorems", "TheoremReport", "Settings", "study_section"]
