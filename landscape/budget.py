"""Budgets of Hessian-vector products: an analysis that runs out stops and says so.

An analysis (:func:`landscape.classify_point`, :func:`landscape.nearest_critical`,
:func:`landscape.find_critical_point`) given ``max_hvp`` runs inside :func:`hvp_budget`. Every
product of a curvature operator (:meth:`landscape.operators.CurvatureOperator.matvec`, one per
column of a ``matmat``) is charged one, and a dense Hessian (:func:`landscape.point.loss_grad_dense_hessian`)
is charged ``dim`` — the products it stands for. A charge that would take the count past the limit
raises :class:`BudgetExhausted` *before* the work is done, so the count never exceeds the limit;
the analysis catches it and returns ``inconclusive`` (or a search that did not converge) with the
reason. Budgets nest: a charge counts against every active budget (a search inside
:func:`landscape.nearest_critical` spends the caller's budget too). Without a limit the budget only
counts (``report.n_hvp``).

Loss and gradient evaluations are not charged (the probe's ladder, the reduced function's inner
steps): a budget of products bounds the curvature work, which dominates on large models.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass


class BudgetExhausted(RuntimeError):
    """Raised by :func:`charge_hvp` when a charge would exceed an active budget's limit.

    Attributes:
        limit: the budget's limit. used: products already spent. wanted: the charge refused.
        what: what the charge was for.

    Example:
        >>> str(BudgetExhausted(20, 18, 5, "a dense Hessian"))
        'HVP budget of 20 spent: 18 used, a dense Hessian needs 5 more'
    """

    def __init__(self, limit: int, used: int, wanted: int, what: str) -> None:
        self.limit, self.used, self.wanted, self.what = limit, used, wanted, what
        super().__init__(f"HVP budget of {limit} spent: {used} used, {what} needs {wanted} more")


@dataclass
class HvpBudget:
    """A count of Hessian-vector products with an optional limit.

    Attributes:
        limit: the most products allowed (None: count only). used: products charged so far.

    Example:
        >>> b = HvpBudget(3)
        >>> b.charge(2, "x"); b.used, b.left
        (2, 1)
    """

    limit: int | None = None
    used: int = 0

    @property
    def left(self) -> float:
        """Products left (``inf`` without a limit)."""
        return math.inf if self.limit is None else self.limit - self.used

    def charge(self, n: int, what: str) -> None:
        """Spend ``n`` products, or raise :class:`BudgetExhausted` (spending nothing) if that passes the limit.

        Args:
            n: products. what: what they are for (named in the error).
        """
        if self.limit is not None and self.used + n > self.limit:
            raise BudgetExhausted(self.limit, self.used, n, what)
        self.used += n


_ACTIVE: contextvars.ContextVar[tuple[HvpBudget, ...]] = contextvars.ContextVar("landscape_hvp_budgets", default=())


def check_max_hvp(max_hvp: int | None) -> None:
    """Raise ValueError unless ``max_hvp`` is None or a non-negative integer.

    Example:
        >>> check_max_hvp(-1)
        Traceback (most recent call last):
        ...
        ValueError: max_hvp must be None or a non-negative integer, got -1
    """
    if max_hvp is not None and (isinstance(max_hvp, bool) or not isinstance(max_hvp, int) or max_hvp < 0):
        raise ValueError(f"max_hvp must be None or a non-negative integer, got {max_hvp!r}")


@contextlib.contextmanager
def hvp_budget(limit: int | None = None) -> Iterator[HvpBudget]:
    """Charge every Hessian-vector product inside the block to a new budget (and to the enclosing ones).

    Args:
        limit: the most products (None: count only).

    Yields:
        The :class:`HvpBudget` (``used`` is the count when the block ends).

    Example:
        >>> import torch, landscape as ls
        >>> obj = ls.Objective.from_function(lambda v: (v ** 4).sum(), torch.ones(3, dtype=torch.float64))
        >>> H = obj.hvp_operator(obj.initial_point())
        >>> with hvp_budget(2) as b:
        ...     _ = H @ torch.ones(3, dtype=torch.float64); _ = H @ torch.ones(3, dtype=torch.float64)
        ...     try:
        ...         _ = H @ torch.ones(3, dtype=torch.float64)
        ...     except BudgetExhausted as exc:
        ...         print(exc)
        HVP budget of 2 spent: 2 used, a curvature-operator product needs 1 more
        >>> b.used
        2
    """
    check_max_hvp(limit)
    budget = HvpBudget(limit)
    token = _ACTIVE.set(_ACTIVE.get() + (budget,))
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


def charge_hvp(n: int, what: str = "a curvature-operator product") -> None:
    """Charge ``n`` products to every active budget; raise :class:`BudgetExhausted` (charging none) if
    one of them would pass its limit. A no-op outside :func:`hvp_budget`.

    Args:
        n: products. what: what they are for (named in the error).

    Example:
        >>> with hvp_budget(5) as outer, hvp_budget() as inner:
        ...     charge_hvp(4, "x")
        >>> outer.used, inner.used
        (4, 4)
    """
    budgets = _ACTIVE.get()
    for b in budgets:
        if b.limit is not None and b.used + n > b.limit:
            raise BudgetExhausted(b.limit, b.used, n, what)
    for b in budgets:
        b.used += n
