"""The layout of analyses/ (issue 20): no import cycles, imports pointing one way, no borrowed
private names, no first-party imports inside functions, no module over 650 lines — and the one
significant-digit rounding rule equal to the rules it replaced.

The import graph is read from the source (AST), not by importing: an edge A -> B for every
``import``/``from ... import`` in A that names a module B of analyses/ (``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg``). Imports under ``if TYPE_CHECKING:``
and under ``if __name__ == "__main__":`` (script entry points) are left out; imports inside
functions are counted.
"""
from __future__ import annotations

import ast
import struct
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "analyses"
MAX_LINES = 650
#: third-party packages a function may import lazily: optional extras or heavy imports that only
#: their function needs (figures, peers of the benchmark, the survival statistics, Dask)
LAZY_OK = {"matplotlib", "plotly", "sklearn", "scipy", "lifelines", "pandas", "distributed", "dask", "pyhessian",
           "curvlinops", "hessian_eigenthings", "torch"}
FIRST_PARTY = {"analyses", "landscape", "synaprune"}
#: the bottom layer: imports nothing of analyses outside itself (problems: outside its package)
BOTTOM = ("analyses.problems", "analyses.stats", "analyses.sweep", "analyses.outputs", "analyses.cli_common")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(pkg: Path = PKG) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(pkg.rglob("*.py"))}


def _skipped(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:`` / ``if __name__ == "__main__":``."""
    src = ast.unparse(test)
    return src in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or src.replace("'", '"') == '__name__ == "__main__"'


def _imports(tree: ast.AST):
    """(node, inside_function) for every import not under a skipped ``if``."""
    out = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _skipped(child.test):
                for sub in child.orelse:
                    visit_stmt(sub, in_func)
                continue
            visit_stmt(child, in_func)

    def visit_stmt(child: ast.AST, in_func: bool) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            out.append((child, in_func))
        visit(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


def _targets(name: str, path: Path, node: ast.AST, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """The modules an import names, each with the names taken from it: [(module, [names])]."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names]
    if node.level:
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    out = []
    for a in node.names:
        sub = f"{mod}.{a.name}"
        out.append((sub, []) if sub in modules else (mod, [a.name]))
    return out


def _graph(modules: dict[str, Path]):
    edges: dict[str, set[str]] = {m: set() for m in modules}
    lazy: list[str] = []
    privates: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, in_func in _imports(tree):
            for target, names in _targets(name, path, node, modules):
                top = target.split(".")[0]
                if in_func and (top in FIRST_PARTY or top not in LAZY_OK):
                    lazy.append(f"{name}:{node.lineno} imports {target} inside a function")
                if target in modules and target != name:
                    edges[name].add(target)
                    privates += [f"{name}:{node.lineno} takes {target}.{n}" for n in names
                                 if n.startswith("_") and not n.startswith("__")]
    return edges, lazy, privates


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_the_walker_sees_a_cycle_and_a_lazy_import(tmp_path):
    """The walker itself, on a made-up package: a -> b -> a is a cycle, b's import inside a
    function is flagged, and an import under ``if TYPE_CHECKING:`` is not an edge."""
    pkg = tmp_path / "analyses"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from .a import _y\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        edges, lazy, privates = _graph(_modules(pkg))
    finally:
        ROOT = old
    assert _cycles(edges) == [["analyses.a", "analyses.b"]]
    assert lazy == ["analyses.b:2 imports analyses.a inside a function"]
    assert privates == ["analyses.b:2 takes analyses.a._y"]
    assert edges["analyses.c"] == set()


def test_no_import_cycles_and_no_lazy_first_party_imports():
    modules = _modules()
    edges, lazy, privates = _graph(modules)
    assert sum(len(e) for e in edges.values()) > 50  # the walker sees the package
    assert _cycles(edges) == []
    assert lazy == [], "imports inside functions (only optional/heavy third-party ones may be lazy)"
    assert privates == [], "private names taken from another module"


def test_imports_point_one_way():
    """Nothing imports the dispatcher or the main job (except the packages' ``__main__`` entry
    points); the bottom layer imports nothing above it; landscape/ and synaprune/ never import
    analyses."""
    modules = _modules()
    edges, _, _ = _graph(modules)
    top = {"analyses.cli", "analyses.study"}
    assert not [(a, b) for a, es in edges.items() for b in es if b in top and not a.endswith(".__main__")]
    for a, es in edges.items():
        for bottom in BOTTOM:
            if a == bottom or a.startswith(bottom + "."):
                assert all(b.startswith(bottom) for b in es), (a, sorted(es))
    for other in ("landscape", "synaprune"):
        for path in sorted((ROOT / other).rglob("*.py")):
            for node, _ in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.split(".")[0] == "analyses" for m in mods if not getattr(node, "level", 0)), path


def test_no_module_over_650_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert not {n: s for n, s in sizes.items() if s > MAX_LINES}


# ---------------------------------------------------------------------------- one rounding rule
def _old_fin(x, digits):
    """escape.py's former ``_fin`` (records)."""
    return float(f"{x:.{digits}g}")


def _old_sig(x, digits):
    """digits.py's and critical_points.py's former ``_sig`` / ``round_sig`` (summaries, arrays)."""
    return x if x == 0 else float(f"{x:.{digits - 1}e}")


def test_the_one_rounding_rule_equals_the_rules_it_replaced():
    """landscape.results.round_sig (through analyses' round_finite and round_array) gives the same
    bits as the three former rules on 400 000 floats: random bit patterns and every magnitude."""
    from analyses.escape.records import round_finite
    from analyses.outputs import round_array
    from landscape.results import round_sig

    rng = np.random.default_rng(20)
    bits = rng.integers(0, 2 ** 64, size=300_000, dtype=np.uint64).view(np.float64)
    xs = np.concatenate([bits[np.isfinite(bits)], rng.standard_normal(100_000) * 10.0 ** rng.integers(-300, 300, 100_000),
                         [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.5, 2.5e-7, 1 / 3]]).tolist()
    same = lambda a, b: struct.pack("<d", a) == struct.pack("<d", b)  # noqa: E731 (bitwise, -0.0 too)
    for d in (6, 8, 10, 12):
        assert all(same(round_sig(x, d), _old_fin(x, d)) for x in xs)
        assert all(same(round_sig(x, d), _old_sig(x, d)) for x in xs[::4])
    assert all(same(round_finite(x), _old_fin(x, 10)) for x in xs[::4])
    arr = np.asarray(xs[:5000])
    assert round_array(arr).tobytes() == np.asarray([_old_sig(x, 12) for x in arr.tolist()]).tobytes()
    assert round_finite(float("inf")) is None and round_finite(True) is None and round_finite(7) == 7.0


@pytest.mark.parametrize("module", ["analyses.escape", "analyses.bench", "analyses.theorems", "analyses.problems"])
def test_packages_keep_their_public_names(module):
    """Each package's ``__all__`` names exist (the curated entry points of the refactor)."""
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__ and all(hasattr(mod, n) for n in mod.__all__)


def test_docstring_examples_run():
    """The short examples in analyses' docstrings (pure Python / numpy / torch on tiny inputs)."""
    import doctest
    import importlib

    with_examples = [name for name, path in _modules().items()
                     if ">>> " in path.read_text(encoding="utf-8") and not name.endswith("__main__")]
    assert len(with_examples) >= 8
    for name in with_examples:
        res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert res.failed == 0 and res.attempted > 0, name
