"""The zoo's registry: problem factories by name (each family module registers its own)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Problem

ProblemFactory = Callable[..., Problem]
#: every registered factory by problem name
PROBLEMS: dict[str, ProblemFactory] = {}


def register(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator adding a problem factory to :data:`PROBLEMS`.

    Args:
        name: the problem's name (unique).

    Returns:
        The decorator; it returns the factory ``f(**options) -> Problem`` unchanged.

    Raises:
        ValueError: ``name`` is already registered.
    """
    def deco(factory: ProblemFactory) -> ProblemFactory:
        if name in PROBLEMS:
            raise ValueError(f"problem {name!r} is already registered")
        PROBLEMS[name] = factory
        return factory
    return deco


def get_problem(name: str, **options: Any) -> Problem:
    """Build a problem of the zoo.

    Args:
        name: a registered problem name (:func:`list_problems`).
        **options: keyword options of the problem's factory (sizes, seeds, data files, …).

    Returns:
        A fresh :class:`Problem` (nothing is shared between calls).

    Raises:
        KeyError: unknown name (the message lists the zoo).
    """
    if name not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; known problems: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name](**options)


def list_problems() -> list[str]:
    """Returns:
        The registered problem names, sorted.
    """
    return sorted(PROBLEMS)
