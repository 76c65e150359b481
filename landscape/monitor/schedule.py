"""What a monitor decides cheaply at every step: is the noisy loss flat, and may it spend time now?

- :func:`trend_test` — a plateau test on a window of the loop's own (possibly mini-batch) losses
  that knows its noise level: the window's older and newer halves are compared by their means,
  and the noise of those means is estimated from successive differences (the von Neumann
  estimator, which a slow trend inside the window does not inflate).
- :class:`LoopClock` and :class:`Budget` — the loop's own time (wall time between two
  ``mon.step`` calls, less the monitor's) and token buckets that let scheduled work spend a fixed
  fraction of it: a measurement runs only when what the monitor has spent so far plus its
  expected cost stays within ``fraction`` × loop time (+ a start credit).

Nothing here touches torch.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TrendResult:
    """One :func:`trend_test` decision and the numbers it rests on (loss units unless stated).

    Args:
        flat: the window is flat (see :func:`trend_test`).
        decrease: D = mean(older half) − mean(newer half).
        noise: σ̂, the per-step loss noise (von Neumann estimate).
        standard_error: SE(D) = σ̂·√(1/n_old + 1/n_new).
        tolerance: max(rel_tol·|mean(older) − floor|, abs_tol).
        level: mean of the older half.
        newer_mean: mean of the newer half.
        n: losses in the window.

    Example: see :func:`trend_test`.
    """

    flat: bool
    decrease: float
    noise: float
    standard_error: float
    tolerance: float
    level: float
    newer_mean: float
    n: int

    def newer_upper(self, z: float) -> float:
        """Upper confidence bound of the newer half's mean: mean + z·σ̂/√n_new (loss units).

        Args:
            z: the number of standard errors.

        Returns:
            The bound.
        """
        n_new = self.n - self.n // 2
        return self.newer_mean + z * self.noise / math.sqrt(max(n_new, 1))


def trend_test(losses: Sequence[float], *, rel_tol: float, abs_tol: float = 0.0, floor: float = 0.0,
               z: float = 2.0) -> TrendResult:
    """Is a window of noisy losses flat? A decrease test that knows its own noise level.

    The window (oldest first) is split into an older half A and a newer half B. With
    D = mean(A) − mean(B), the per-step noise σ̂² = Σ(L_{i+1} − L_i)² / (2(n − 1)) (successive
    differences: a slow trend adds only its squared slope) and SE = σ̂·√(1/|A| + 1/|B|), the
    window is **flat** when D ≤ max(rel_tol·|mean(A) − floor|, abs_tol) + z·SE — the loss has not
    fallen by more than the tolerance, beyond what its noise can explain. Noise-free losses
    (full-batch gradient descent) leave z·SE of order z·|slope|·√(2/n), far below D on any real
    descent; very noisy losses are flat unless they fall clearly, which is why a monitor confirms
    a flat window with an exact (full-batch) check before it calls it a stall.

    Args:
        losses: the window, oldest first (at least 4 finite values).
        rel_tol: relative tolerance on the decrease (dimensionless).
        abs_tol: absolute tolerance (loss units).
        floor: the loss's known lower bound (loss units).
        z: standard errors of slack (default 2).

    Returns:
        A :class:`TrendResult`.

    Raises:
        ValueError: fewer than 4 losses, or a non-finite one.

    Example:
        >>> trend_test([1.0] * 10, rel_tol=1e-3).flat                           # constant: flat
        True
        >>> trend_test([1.0 - 0.01 * i for i in range(20)], rel_tol=1e-3).flat  # falling: not flat
        False
        >>> noisy = [1.0 + (0.3 if i % 2 else -0.3) - 0.002 * i for i in range(20)]
        >>> r = trend_test(noisy, rel_tol=1e-3)                                  # a small fall in big noise
        >>> r.flat, round(r.decrease, 3), round(r.noise, 2)
        (True, 0.02, 0.42)
    """
    n = len(losses)
    if n < 4:
        raise ValueError(f"trend_test needs at least 4 losses, got {n}")
    xs = [float(v) for v in losses]
    if not all(map(math.isfinite, xs)):
        raise ValueError("trend_test got a non-finite loss")
    return trend_of(xs, rel_tol=rel_tol, abs_tol=abs_tol, floor=floor, z=z)


def trend_of(xs: list[float], *, rel_tol: float, abs_tol: float, floor: float, z: float) -> TrendResult:
    """:func:`trend_test` without its checks, for a caller that holds ≥ 4 finite floats (a monitor, every few steps).

    Args:
        xs: the window, oldest first (a list of at least 4 finite floats).
        rel_tol, abs_tol, floor, z: as in :func:`trend_test`.

    Returns:
        A :class:`TrendResult`, the same numbers :func:`trend_test` gives.

    Example:
        >>> trend_of([1.0] * 10, rel_tol=1e-3, abs_tol=0.0, floor=0.0, z=2.0).flat
        True
    """
    n = len(xs)
    half = n // 2
    a, b = xs[:half], xs[half:]
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    # the same sums, in the same order, as the textbook loops (a monitor calls this every few steps)
    noise = math.sqrt(sum([(y - x) ** 2 for x, y in zip(xs, xs[1:])]) / (2 * (n - 1)))
    se = noise * math.sqrt(1 / len(a) + 1 / len(b))
    tol = max(rel_tol * abs(mean_a - floor), abs_tol)
    decrease = mean_a - mean_b
    return TrendResult(flat=decrease <= tol + z * se, decrease=decrease, noise=noise, standard_error=se,
                       tolerance=tol, level=mean_a, newer_mean=mean_b, n=n)


class LoopClock:
    """The loop's own time: wall time between the monitor's calls, less the time inside them.

    Call :meth:`enter` first thing in a monitor call and :meth:`leave` last; :attr:`loop_s` is
    the loop's time so far (seconds) and :attr:`steps` the calls.

    Example:
        >>> clock = LoopClock()
        >>> _ = clock.enter(); clock.leave()
        >>> clock.steps, clock.loop_s >= 0.0
        (1, True)
    """

    def __init__(self) -> None:
        self.loop_s = 0.0
        self.steps = 0
        self._last: float | None = time.perf_counter()

    def enter(self) -> float:
        """Start of a monitor call: add the time since the last call to the loop's time.

        Returns:
            The current ``time.perf_counter()``.
        """
        now = time.perf_counter()
        if self._last is not None:
            self.loop_s += now - self._last
        self.steps += 1
        return now

    def leave(self, now: float | None = None) -> None:
        """End of a monitor call.

        Args:
            now: the caller's ``time.perf_counter()`` at the end of its call (None: read it here).
        """
        self._last = time.perf_counter() if now is None else now

    def restart(self) -> None:
        """Forget the time since the last call (e.g. the loop was paused); the next :meth:`enter` adds nothing."""
        self._last = None

    @property
    def step_s(self) -> float:
        """Mean seconds per loop step (0 before the first call)."""
        return self.loop_s / self.steps if self.steps else 0.0


class Budget:
    """A token bucket: spend at most ``fraction`` of the loop's time (plus ``credit`` seconds).

    Args:
        clock: the loop's clock.
        fraction: the share of the loop's time this kind of work may use (≥ 0).
        credit: seconds allowed before the loop has earned them (a start allowance).

    Example:
        >>> clock = LoopClock()
        >>> b = Budget(clock, 0.05, credit=0.01)
        >>> b.affords(0.005), b.affords(1.0)
        (True, False)
        >>> b.charge(0.005); round(b.spent_s, 3)
        0.005
    """

    def __init__(self, clock: LoopClock, fraction: float, *, credit: float = 0.0) -> None:
        if not (fraction >= 0) or math.isinf(fraction):
            raise ValueError(f"a budget fraction must be a finite non-negative number, got {fraction!r}")
        self.clock = clock
        self.fraction = float(fraction)
        self.credit = float(credit)
        self.spent_s = 0.0
        self.n = 0
        self.costs: deque = deque(maxlen=8)
        self._typical: float | None = None

    @property
    def typical_cost_s(self) -> float | None:
        """The median of the last (up to 8) costs charged, seconds (None before the first): one
        slow measurement (a page fault, a busy machine) does not stall the schedule."""
        return self._typical

    def record(self, seconds: float) -> None:
        """Note one measurement's cost (seconds) for :attr:`typical_cost_s` without charging it."""
        self.costs.append(seconds)
        self._typical = statistics.median(self.costs)

    def allowance(self) -> float:
        """Seconds this bucket may have spent by now: fraction × loop time + credit."""
        return self.fraction * self.clock.loop_s + self.credit

    def affords(self, cost_s: float, overdraft_s: float = 0.0, also_spent_s: float = 0.0) -> bool:
        """Whether spending ``cost_s`` more seconds now stays within :meth:`allowance` (+ ``overdraft_s``).

        Args:
            cost_s: the expected cost (seconds).
            overdraft_s: how far past the allowance this spending may go (seconds; repaid as the
                loop runs on, since later work waits until the allowance has caught up).
            also_spent_s: seconds other work already took from the same allowance (a bucket that
                shares its allowance with other spending).

        Returns:
            True when it fits.
        """
        return (self.spent_s + max(also_spent_s, 0.0) + max(cost_s, 0.0)
                <= self.allowance() + max(overdraft_s, 0.0))

    def charge(self, seconds: float) -> None:
        """Record ``seconds`` spent. Once a cost is known the charge is at most 1.5 times the
        typical (median) cost: on a shared machine one call is now and then preempted for several
        times its length, which slows the loop's own steps as much and must not silence the
        schedule for hundreds of steps (the true seconds are what a monitor reports as timings).

        Args:
            seconds: wall time spent by one measurement.
        """
        typical = self.typical_cost_s
        self.spent_s += min(seconds, 1.5 * typical) if typical is not None else seconds
        self.n += 1
        self.record(seconds)
