"""Every tunable constant of :mod:`landscape`, in one place.

The modules that use a constant import it from here (and keep it importable under its old module,
e.g. ``landscape.objective.DEFAULT_HESSIAN_MAX_DIM``). Changing a value here changes the
behaviour of every function that uses it; the numbers are those every shipped result was computed
with. Tolerances that are formulas of the dtype and the spectral scale live in
:mod:`landscape.tolerances`.

Example:
    >>> from landscape import defaults
    >>> defaults.AUTO_DENSE_MAX_DIM, defaults.LANCZOS_MAX_ITER
    (2048, 400)
"""
from __future__ import annotations

# ---------------------------------------------------------------------------- objective and operators
#: dense Hessians are refused above this dimension unless ``max_dim`` is raised (128 MiB in float64)
DEFAULT_HESSIAN_MAX_DIM = 4096
#: the empirical Fisher keeps its per-example gradients when they fit in this many bytes
EF_CACHE_BYTES = 256 * 2**20

# ---------------------------------------------------------------------------- Lanczos (extreme_eigs)
#: the most Lanczos steps of :func:`landscape.extreme_eigs` (all phases) by default
LANCZOS_MAX_ITER = 400
#: default basis allowance: k + this many vectors (or more while the basis fits BASIS_BUDGET_ELEMS)
BASIS_EXTRA = 26
#: default basis budget: the basis may hold this many numbers (2^23: 32 MiB of float32), so small
#: problems keep the whole Krylov space and large ones restart
BASIS_BUDGET_ELEMS = 1 << 23
#: from this tol on, extreme_eigs's verification floor is 4 steps (else 8) and its residuals are the
#: recurrence's (else recomputed explicitly)
LOOSE_TOL = 1e-3

# ---------------------------------------------------------------------------- classification
#: ``classify_point(method="auto")`` takes the dense path up to this many parameters: the documented size
#: above which no analysis forms a dense Hessian by default (classify_point, nearest_critical and the
#: monitor's stall analysis go through Hessian-vector products only, under the budgets below)
AUTO_DENSE_MAX_DIM = 2048
#: problems up to this dimension are classified with one torch thread (thread start-up dominates)
SINGLE_THREAD_MAX_DIM = 512
#: (smallest, largest) eigenpairs computed on the Lanczos path of classify_point
LANCZOS_K = (10, 3)
#: sphere search: starts per radius and Riemannian steps. 8 x 40 found the order-4 descent of every
#: padded H = 3 deep linear point tried (96 cases); order >= 5 paths (H >= 4) competing with positive
#: quartic gauge terms can still be missed
SEARCH_STARTS, SEARCH_ITERS = 8, 40
#: the curvature-uncertainty band is this multiple of the Hessian's change along the Newton continuation
CURVATURE_BAND_FACTOR = 3.0
#: at most this many Newton steps in the continuation towards the nearby critical point (it stops
#: earlier once ‖g‖ has fallen 1e3-fold and the contraction is measured: 5 steps at order 3 (q = 1/2),
#: 6 at order 4, 2-3 at a non-degenerate point; a step that first removes the non-degenerate part adds
#: one or two)
NEWTON_CONTINUATION_STEPS = 12
#: issue 21 (a): the continuation's contraction q is measured only when the last step ratio is at most
#: this multiple of the one before (one regime: linear, ratios equal, or quadratic, ratios shrinking)
REGIME_RATIO_SLACK = 1.25
#: issue 21 (b): in a continuation step, directions curved more than this multiple of the step
#: direction's curvature ‖H p̂‖ are "stiff"; the rest of the step ("soft") must reduce the gradient's soft part
STIFF_FACTOR = 100.0
#: issue 21 (c): a continuation step must bring its gradient measure to at most this fraction of its
#: value (a change at round-off is no step)
SUFFICIENT_DECREASE = 0.9
#: Lanczos steps of the ‖H(b) − H(a)‖₂ estimate on the Lanczos path
CURVATURE_CHANGE_STEPS = 20
#: Krylov dimension of the gradient-flatness estimate on the Lanczos path (an upper bound on the share of g
#: outside range(H); one product per step: H Q = Q T̄ needs no second pass)
FLATNESS_KRYLOV_STEPS = 50
#: the gradient test before the spectrum on the Lanczos path (:mod:`landscape.classify.gradient_test`):
#: Lanczos steps from a seeded random start whose Ritz values bound the spectral scale from below ...
GRADIENT_TEST_STEPS = 12
#: ... and the factor that makes it an upper bound (Kuczyński & Woźniakowski 1992: Λ ≤ 10·max|Ritz| after
#: GRADIENT_TEST_STEPS steps except with probability ≤ 3.3·√dim·e^{−0.67(2k−1)}, 4e-5 at dim 4 000; 20 keeps a
#: margin): a point with ‖g‖ > default_grad_tol·SCALE_BOUND_FACTOR·max|Ritz|·s is not critical, decided
#: without the spectrum
SCALE_BOUND_FACTOR = 20.0
#: default HVP budgets (``max_hvp="auto"``) where products are the cost: on problems above
#: AUTO_DENSE_MAX_DIM parameters (the Lanczos path: no dense Hessian is ever formed there, and each product
#: is a pass over the data) classify_point spends at most CLASSIFY_MAX_HVP products and nearest_critical
#: (search and classification together) at most NEAREST_MAX_HVP, then reports ``inconclusive`` with the
#: reason; at or below AUTO_DENSE_MAX_DIM the default is no limit (a dense Hessian costs dim products there
#: but little time). On the 3 818-parameter digits CNN (float64, 1 500 digits) a product takes ~0.075 CPU s:
#: classify_point decides a point that is not critical in 62 products (~5 s) and stops at a critical one after
#: ~9 s (inconclusive: its spectrum needs more, raise max_hvp); nearest_critical stops within ~27 s.
CLASSIFY_MAX_HVP = 120
NEAREST_MAX_HVP = 350
#: near-null directions whose curves seed the Lanczos path's reduced-function subspace
KRYLOV_DIRS = 16
#: Newton steps of the reduced-function (Lyapunov-Schmidt) probe's inner minimisation
REDUCED_NEWTON_STEPS = 12
#: the layer-product probe follows this many top singular pairs of the end-to-end gradient
LAYER_PRODUCT_PAIRS = 2
#: sweeps of the layer-product probe's minimisation of its direction's curvature over the hidden vectors,
#: done when the hidden widths add up to at most LAYER_PRODUCT_MAX_HIDDEN (each sweep costs that many HVPs)
LAYER_PRODUCT_SWEEPS = 3
LAYER_PRODUCT_MAX_HIDDEN = 64
#: a verdict with more than this share of the computed eigenvalues in the zero band says so (note and
#: ``report.null_space``)
MOSTLY_NULL_SHARE = 0.5

# ---------------------------------------------------------------------------- higher-order probe
#: a probe change counts beyond this multiple of eps·|f| (the loss's round-off)
DEFAULT_REL_THRESHOLD = 1e3
#: the largest probe radius, relative to the parameter scale s = max(1, rms(θ))
PROBE_RADIUS = 1e-1
#: geometric radii of the probe ladder (from 1e-4 of the largest)
PROBE_N_RADII = 13
#: seeded random combinations of the near-null eigenvectors probed
PROBE_RANDOM = 16

# ---------------------------------------------------------------------------- critical-point search
#: a stalled search with this share of ‖g‖ outside range(H) is at a gradient-flat point
GRADIENT_FLAT_SHARE = 0.5
#: Armijo constant and the most halvings of the line search on ½‖g‖²
ARMIJO_C = 1e-4
MAX_BACKTRACK = 40
#: outer iterations of find_critical_point by method
DEFAULT_MAX_ITER = {"newton-mr": 100, "gradient-norm": 2000}
#: MINRES Krylov dimension cap and its relative residual target
MINRES_MAX_K = 200
MINRES_RTOL = 1e-10
#: stagnation: ‖g‖ decreasing by less than this relative amount per step, STAGNATION_ITERS steps running
STAGNATION = 1e-10
STAGNATION_ITERS = 5
#: a search that did not converge is "diverging" when its last three steps each kept at least this ratio of
#: the one before while the loss fell (a degenerate order-k critical point contracts by (k−2)/(k−1): 0.9 at k = 11)
DIVERGING_RATIO = 0.9
#: Lanczos steps of the ‖H‖ estimate at the start of a search
SCALE_STEPS = 20
#: nearest_critical polishes until ‖g‖ <= min(grad_tol, POLISH_FACTOR·‖g_start‖)
POLISH_FACTOR = 1e-6
#: a step is at most MAX_STEP·max(1, ‖θ_start‖) long (a trust cap: min-norm steps through nearly
#: singular directions otherwise jump to far-away critical points, e.g. at blown-up gauges of a
#: deep linear net)
MAX_STEP = 0.5

# ---------------------------------------------------------------------------- cancellation statistics
#: ``frac_kappa_j_below`` counts coordinates with κ_j below this
KAPPA_J_THRESHOLD = 0.1

# ---------------------------------------------------------------------------- loss surfaces
#: per-point time (seconds) above which ``strategy="auto"`` loops without trying vmap
LOOP_ALWAYS_S = 2e-3
#: grid points evaluated together: rows of activations per chunk (points × examples) kept near this
ROWS_PER_CHUNK = 1 << 16

# ---------------------------------------------------------------------------- results
#: lists, tuples and dicts longer than this are summarised in result reprs
REPR_MAX_ITEMS = 8

# ---------------------------------------------------------------------------- deep linear networks
#: the most index sets DeepLinearProblem.enumerate_critical_points enumerates
MAX_ENUMERATED = 4096
