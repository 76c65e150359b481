"""Property tests of the classifier (issue 21, item 1): never a wrong definite kind.

f = c·g(Q(x − x₀)) + b over families whose kind is known in closed form (``classify_cases.py``): random
orthogonal Q, c log-uniform in [1e-4, 1e4], offsets b relative to the loss scale, 2–8 dimensions
(quadratic padding of either sign), classified at the critical point x₀ and 1e-6 (relative to the
length scale) from it, on the dense and the Lanczos path. Only the public API is used.

Assertion: the kind is right (strict saddles with the right index: exact on the dense path, a lower
bound on the Lanczos path) unless the case is near-degenerate beyond the probe's resolution: the
closed-form margin between the two candidate kinds at the largest probe radius t_max (the reduced
function's largest descent for a saddle, its smallest rise for a minimum) is at most
RESOLUTION_FACTOR = 10 times the probe's own threshold there, max(rel·ε·|f|, abs, quad·t_max²), read
from the report's ``tolerances``. Such a case may be ``inconclusive`` — and only such a case. Under
the strict reading of "never confidently wrong" (the classifier says ``inconclusive`` when a probed
direction neither rises nor falls beyond the threshold), the kind a probe that resolves nothing used
to report ("minimum": no descent found within the radius) is a wrong definite kind and fails.
The larger sweep is ``scripts/classify_sweep.py``.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import landscape as ls
from classify_cases import (FAMILIES, RESOLUTION_FACTOR, Draw, make_case, probe_threshold_at_max_radius,
                            verdict)

# 7 families × 2 paths × EXAMPLES cases, each classified at x₀ and near it: ≈ 30 s of CPU
EXAMPLES = 16


class HypothesisDraw(Draw):
    def __init__(self, data) -> None:
        self.data = data

    def uniform(self, lo: float, hi: float) -> float:
        return self.data.draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


def _classify(case, near: bool, method: str, seed: int):
    theta = case.point(near, seed=seed)
    obj = ls.Objective.from_function(case.fn, theta)
    return ls.classify_point(obj, theta, method=method)


@pytest.mark.parametrize("method", ["dense", "lanczos"])
@pytest.mark.parametrize("family", FAMILIES)
@settings(deadline=None, derandomize=True, max_examples=EXAMPLES, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_wrong_definite_kind(family, method, data):
    case = make_case(family, HypothesisDraw(data))
    seed = data.draw(st.integers(0, 2 ** 31 - 1))
    for near in (False, True):
        rep = _classify(case, near, method, seed)
        v = verdict(case, rep)
        assert v in ("right", "inconclusive_resolution"), (
            f"{v} {'near' if near else 'at'} x0 on the {method} path: {case.describe()} -> {rep.kind}/{rep.index} "
            f"{rep.reason or ''}")


ISSUE_CASES = [
    # (f, point, kind): the issue's wrong definite kinds at a point 1e-6 from the critical point
    (lambda v: v[1] ** 2 + v[0] ** 3, (-1e-6, 1e-6), "non_strict_saddle"),
    (lambda v: v[1] ** 2 - v[0] ** 3, (1e-6, 1e-6), "non_strict_saddle"),
    (lambda v: v[1] ** 2 - v[0] ** 4 + v[0] ** 3 * v[1], (1e-6, 1e-6), "non_strict_saddle"),
    (lambda v: v[1] ** 2 - 0.3 * v[0] ** 4 - 0.7 * v[0] ** 3 * v[1] - 0.75 * v[0] * v[1] ** 2, (1e-6, 1e-6),
     "non_strict_saddle"),
    (lambda v: v[0] ** 4 + v[1] ** 4 - 3 * v[0] ** 2 * v[1] ** 2, (1e-6, 1e-6), "non_strict_saddle"),
    (lambda v: v[0] ** 4 + v[1] ** 4 - 1.9 * v[0] ** 2 * v[1] ** 2, (1e-6, 1e-6), "minimum"),
]


@pytest.mark.parametrize("method", ["dense", "lanczos"])
@pytest.mark.parametrize("i", range(len(ISSUE_CASES)))
def test_issue_cases_and_their_scaled_copies(i, method):
    f, point, kind = ISSUE_CASES[i]
    x = torch.tensor(point, dtype=torch.float64)
    for c, b in ((1.0, 0.0), (1e-4, 3.0), (1e4, -2e4)):
        obj = ls.Objective.from_function(lambda v: c * f(v) + b, x)
        rep = ls.classify_point(obj, x, method=method)
        assert rep.kind == kind and rep.index == 0, (i, c, b, rep.kind, rep.reason)


@settings(deadline=None, derandomize=True, max_examples=8, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(delta=st.floats(-12.0, -1.0), side=st.sampled_from([1.0, -1.0]), near=st.booleans(),
       method=st.sampled_from(["dense", "lanczos"]))
def test_the_resolution_rule_at_the_edge_of_a_kind(delta, side, near, method):
    # a·z⁴ + d·y² + e·z²·y with e² = 4ad(1 + side·10^delta): a saddle (side > 0) or a minimum whose
    # reduced quartic a·(1 − e²/4ad)·z⁴ is as weak as the sampled relative distance to the boundary.
    # Resolvable cases must be right; beyond the probe's resolution the answer is right or inconclusive.
    a, d = 1.0, 1.0
    r = 1.0 + side * 10.0 ** delta
    e = math.sqrt(4 * a * d * r)
    x = torch.tensor([1e-6, 1e-6] if near else [0.0, 0.0], dtype=torch.float64)
    obj = ls.Objective.from_function(lambda v: a * v[0] ** 4 + d * v[1] ** 2 + e * v[0] ** 2 * v[1], x)
    rep = ls.classify_point(obj, x, method=method)
    truth = "non_strict_saddle" if side > 0 else "minimum"
    t = rep.tolerances["probe_radius_max"]
    margin = abs(a * (1 - r)) * t ** 4
    resolved = margin > RESOLUTION_FACTOR * probe_threshold_at_max_radius(rep, margin)
    if resolved:
        assert rep.kind == truth, (delta, side, near, method, rep.kind, rep.reason)
    else:
        assert rep.kind in (truth, "inconclusive"), (delta, side, near, method, rep.kind)
