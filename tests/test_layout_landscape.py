"""The layout of landscape/ (issue 20): imports point one way, modules stay small, the public face is curated.

The import graph is read from the source (AST), not by importing: an edge a → b for every
``import``/``from ... import`` of a landscape module b in module a, at any depth (inside functions
too), except under ``if TYPE_CHECKING:`` (type-only, never executed). ``from .pkg import name``
counts as an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""
from __future__ import annotations

import ast
import types
from pathlib import Path

import landscape

ROOT = Path(landscape.__file__).resolve().parent
PACKAGE = "landscape"
MAX_LINES = 650


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, bool]]:
    """Every import statement with whether it sits inside a function, skipping TYPE_CHECKING blocks."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def _targets(module: str, is_package: bool, node: ast.stmt, modules: dict[str, Path]) -> list[str]:
    """The landscape modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE and a.name in modules]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        src = ".".join(base + ([node.module] if node.module else []))
    else:
        src = node.module or ""
    if src.split(".")[0] != PACKAGE:
        return []
    out = []
    for alias in node.names:
        sub = f"{src}.{alias.name}"
        out.append(sub if sub in modules else src)
    return out


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    in_function: list[str] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, inside in _imports(tree):
            targets = [t for t in _targets(mod, path.name == "__init__.py", node, modules) if t != mod]
            graph[mod].update(targets)
            if inside and targets:
                in_function.append(f"{mod}: line {node.lineno} imports {', '.join(targets)}")
    return graph, in_function


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_walker_sees_the_edges_it_should():
    graph, _ = _graph()
    assert "landscape.operators.base" in graph["landscape.operators.hessian"]
    assert "landscape.classify.recipe" in graph["landscape.classify"]
    assert "landscape.objective" not in graph["landscape.operators.hessian"]  # type-only import
    assert "landscape.classify" in graph["landscape.critical"]
    # the walker finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_landscape_has_no_import_cycles():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_no_landscape_import_inside_a_function():
    # a lazy import of one landscape module by another would only hide a cycle (third-party lazy
    # imports, e.g. plotly or scipy, are not edges of this graph)
    _, in_function = _graph()
    assert in_function == []


def test_modules_stay_small():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules().items()}
    big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert big == {}, big


def test_public_names_are_what_a_user_needs():
    names = set(landscape.__all__)
    assert len(names) == len(landscape.__all__)
    for name in names:
        value = getattr(landscape, name)
        assert not isinstance(value, types.ModuleType), f"{name} is a module: reach it as landscape.{name}"
    for needed in ("Objective", "HessianOperator", "make_operator", "extreme_eigs", "EigResult", "lanczos",
                   "hessian_trace", "spectral_density", "classify_point", "CriticalPointReport", "PointState",
                   "find_critical_point", "nearest_critical", "NonFiniteError", "surface_2d"):
        assert needed in names
    # research fixtures and submodules stay reachable, not listed
    assert "DeepLinearProblem" not in names
    from landscape.deep_linear import DeepLinearProblem
    assert landscape.DeepLinearProblem is DeepLinearProblem
    for sub in ("deep_linear", "render", "results", "surface", "distributed", "critical", "classify",
                "operators", "linalg", "eigs", "defaults", "tolerances"):
        assert isinstance(getattr(landscape, sub), types.ModuleType)


def test_moved_names_stay_importable_from_the_paths_others_use():
    from landscape.classify import classify_point, dense_hessian, default_grad_tol  # noqa: F401
    from landscape.critical import find_critical_point, minres_solve, nearest_critical  # noqa: F401
    from landscape.linalg import dot64, lanczos, norm64, random_unit  # noqa: F401
    from landscape.eigs import EigResult, extreme_eigs  # noqa: F401
    from landscape.objective import DEFAULT_HESSIAN_MAX_DIM, HessianOperator, NonFiniteError  # noqa: F401
    from landscape.surface import NORMALIZATIONS, eigen_directions, random_directions  # noqa: F401
    assert landscape.lanczos is lanczos and landscape.extreme_eigs is extreme_eigs


def test_results_are_frozen():
    import dataclasses

    from landscape.cancellation import CancellationStats
    from landscape.classify.report import CriticalPointReport
    from landscape.critical import CriticalPointSearch, NearestCritical
    from landscape.deep_linear import AnalyticCriticalPoint
    from landscape.directions import EigenDirections, PCAPlane
    from landscape.eigs import EigResult
    from landscape.gauss_newton import NonGGNCurvature
    from landscape.linalg import LanczosRun
    from landscape.point import PointState
    from landscape.probe import ProbeResult
    from landscape.spectrum import BlockExtremes, SpectralDensity, TraceEstimate
    from landscape.surface import SurfaceResult

    for cls in (CancellationStats, CriticalPointReport, CriticalPointSearch, NearestCritical, AnalyticCriticalPoint,
                EigenDirections, PCAPlane, EigResult, NonGGNCurvature, LanczosRun, PointState, ProbeResult,
                BlockExtremes, SpectralDensity, TraceEstimate, SurfaceResult):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls.__name__
