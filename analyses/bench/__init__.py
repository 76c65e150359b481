"""``landscape bench``: benchmark of the curvature engine on a fixed MLP problem.

The problem (fixed, seeded): an MLP 64-256-256-10 with ReLU activations at its seeded
initialisation, CrossEntropy loss, 2000 synthetic examples (standard-normal inputs, labels
from a seeded random teacher network 64-32-10 with tanh), float32 by default. It measures

* Hessian-vector product time / gradient time on the full data, for the cached
  ``obj.hvp_operator(theta).matvec`` (the path Lanczos uses) and the stateless ``obj.hvp``;
* accuracy against time for the top-5 eigenpairs + λ_min at residual targets 1e-2, 1e-3, 1e-4
  (‖Hv − λv‖/|λ_max|, recomputed with one operator for every method): :func:`landscape.extreme_eigs`,
  a textbook deflated power iteration (implemented here), curvlinops' ``HessianLinearOperator`` +
  SciPy ``eigsh``, hessian-eigenthings v1's ``lanczos`` (steps raised until the target is met) and
  PyHessian's top-5 (its own tol; it has no residual control), plus PyHessian's defaults against ours
  at the residual they achieve; peers that are not installed give null;
* ``cancellation_stats`` by the outer-product path (:mod:`landscape.fast_stats`) against vmap;
* per-example gradients (``obj.per_example_grads``, vmap) against a Python loop at batch 512;
* optionally ``torch.compile`` of the HVP (``--compile``) and MLPs from 1e5 to 1e7 parameters
  (``--scaling``: gradient, HVP and ``extreme_eigs(k=1, which="both")`` time and peak memory, each
  size in a fresh process; at ~1M also λ_max against curvlinops + eigsh and float32 against float64).

Peers install without replacing torch: ``pip install --no-deps PyHessian==0.1 hessian-eigenthings
curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 einops einconv opt-einsum linear_operator
unfoldNd`` (BackPACK's torchvision requirement is not needed for the Hessian operator).
Every measurement records ``os.getloadavg()``; Times are medians of repeats after a warm-up, all at one fixed ``torch.set_num_threads``.
Timings are wall-clock on a possibly shared machine: read ratios, not absolute numbers.

Modules, imports pointing down the list: :mod:`.problems` (the fixed MLP and CNN, one builder),
:mod:`.timing` (medians, round-robin, machine info), :mod:`.reference` (the power-iteration
eigensolver, measured residuals), :mod:`.measures` (our engine), :mod:`.peers` (PyHessian,
curvlinops, hessian-eigenthings), :mod:`.accuracy`, :mod:`.scaling`, :mod:`.run`
(:class:`BenchResult`, :func:`run_bench`), :mod:`.table`, :mod:`.cli`. A new measurement goes into
:mod:`.measures` (ours) or :mod:`.peers`, and into :func:`run_bench` and the table.
"""
from .accuracy import ACCURACY_TARGETS, bench_accuracy, plot_accuracy
from .measures import bench_cancellation, bench_cancellation_cnn, bench_compile, bench_hvp, bench_ours, bench_per_example
from .peers import bench_curvlinops, bench_eigenthings, bench_pyhessian
from .problems import BenchProblem, make_cnn_problem, make_problem
from .reference import PowerResult, bench_power, deflated_power_iteration, rel_residuals
from .run import TARGETS, BenchResult, run_bench
from .scaling import plot_scaling, run_scaling, scaling_case
from .table import format_table
from .timing import machine_info, time_call, time_interleaved

__all__ = ["BenchProblem", "make_problem", "make_cnn_problem", "time_call", "time_interleaved", "machine_info",
           "PowerResult", "deflated_power_iteration", "rel_residuals", "bench_power", "bench_hvp", "bench_ours",
           "bench_per_example", "bench_cancellation", "bench_cancellation_cnn", "bench_compile", "bench_pyhessian",
           "bench_curvlinops", "bench_eigenthings", "ACCURACY_TARGETS", "bench_accuracy", "plot_accuracy",
           "scaling_case", "run_scaling", "plot_scaling", "TARGETS", "BenchResult", "run_bench", "format_table"]
