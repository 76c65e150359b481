"""The examples in landscape's docstrings run and print what they say (issue 20: doctested where cheap)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import landscape

MODULES = ["landscape"] + sorted(m.name for m in pkgutil.walk_packages(landscape.__path__, "landscape."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                             report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_every_public_function_and_class_has_an_example_or_a_pointer_to_one():
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if not (callable(value) and (isinstance(value, type) or hasattr(value, "__code__"))):
                continue
            doc = value.__doc__ or ""
            if "Example" not in doc and not (isinstance(value, type) and issubclass(value, Exception)):
                missing.append(f"{name}.{attr}")
    assert missing == []
