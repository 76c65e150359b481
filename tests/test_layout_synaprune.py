"""Layout of synaprune/ and landscape/monitor/ (issue 20): imports point one way, modules and
functions stay readable, the examples in the docstrings run, the settings are one frozen record,
and the trainer's stall analysis is exactly the monitor's."""
from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import json
import math
import pickle
from pathlib import Path

import pytest
import torch

import landscape
import synaprune
from landscape import Objective
from landscape.deep_linear import DeepLinearProblem, half_sq_error
from landscape.monitor import (AnalysisSettings, ReferenceScale, StallDetector, analyse_stall, reference_grad_scale,
                               stall_cause)
from synaprune import TIMING_FIELDS, Trainer, TrainerConfig
from synaprune.base import UpdateRule

ROOT = Path(__file__).resolve().parents[1]
OWNED = ("synaprune", "landscape/monitor")
MAX_MODULE_LINES = 650
MAX_FUNCTION_LINES = 80


# ---------------------------------------------------------------------- the import graph
def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, int]]:
    """Every import statement with its nesting depth (0 = module level), ``if TYPE_CHECKING:``
    blocks skipped; imports inside functions are counted."""
    out: list[tuple[ast.stmt, int]] = []

    def visit(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                for sub in child.orelse:        # the else branch runs
                    visit_stmt(sub, depth)
                continue
            visit_stmt(child, depth)

    def visit_stmt(child: ast.AST, depth: int) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            out.append((child, depth))
        inner = depth + 1 if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else depth
        visit(child, inner)

    visit(tree, 0)
    return out


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module → the project modules it imports (AST only; nothing is executed).

    ``import a.b`` → a.b; ``from a import x`` → a.x when that is a module, else a; relative
    imports resolved against the importing module's package. Implicit parent-package
    initialisation is not an edge (a package importing its own submodules is no cycle).
    """
    files = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node, _ in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in files else prefix for a in node.names]
            graph[mod].update(t for t in targets if t in files and t != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
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
        for w in sorted(graph[v]):
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


def _owned(mod: str) -> bool:
    return mod == "synaprune" or mod.startswith("synaprune.") or mod.startswith("landscape.monitor")


def test_the_walker_finds_a_cycle_hidden_in_a_function_and_ignores_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g()\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n"
                              "def g():\n    return 1\nfrom pkg import a\n")
    (pkg / "c.py").write_text("from . import b\nclass C: ...\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.b"} and "pkg.c" not in graph["pkg.b"]
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle_through_synaprune_or_the_monitor():
    graph = import_graph(ROOT, ("landscape", "synaprune"))
    assert any(_owned(m) for m in graph) and "landscape.monitor.analysis" in graph
    bad = [c for c in cycles(graph) if any(_owned(m) for m in c)]
    assert bad == []
    # imports point one way: the monitor never imports synaprune, nor landscape's top level
    # (which imports the monitor), and nothing in landscape imports synaprune
    assert not any(t.startswith("synaprune") for m, ts in graph.items() if m.startswith("landscape") for t in ts)
    assert not any("landscape" in graph[m] for m in graph if m.startswith("landscape.monitor"))


def test_project_imports_in_owned_modules_are_at_module_level():
    for pkg in OWNED:
        for path in (ROOT / pkg).rglob("*.py"):
            for node, depth in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or "."]
                project = node.level if isinstance(node, ast.ImportFrom) else 0
                project = project or any(n.split(".")[0] in ("landscape", "synaprune", "analyses") for n in names)
                assert not (project and depth), f"{path.relative_to(ROOT)}:{node.lineno} imports inside a function"


def test_modules_and_functions_stay_small():
    for pkg in OWNED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            assert len(text.splitlines()) <= MAX_MODULE_LINES, path
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    assert n <= MAX_FUNCTION_LINES, f"{path.relative_to(ROOT)}:{node.name} has {n} lines"
    assert len((ROOT / "synaprune" / "trainer.py").read_text().splitlines()) <= 600


def _public(module) -> list:
    out = []
    for name in dir(module):
        obj = getattr(module, name)
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if isinstance(obj, type) or callable(obj):
            out.append((name, obj))
    return out


OWNED_MODULES = ["synaprune.access", "synaprune.base", "synaprune.baselines", "synaprune.config",
                 "synaprune.controls", "synaprune.escape_phase", "synaprune.events", "synaprune.hebbian", "synaprune.rules",
                 "synaprune.trainer", "landscape.monitor.analysis", "landscape.monitor.cause",
                 "landscape.monitor.detector"]


@pytest.mark.parametrize("name", OWNED_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", OWNED_MODULES)
def test_public_functions_and_classes_document_args_returns_and_an_example(name):
    module = importlib.import_module(name)
    for attr, obj in _public(module):
        doc = obj.__doc__ or ""
        assert "Example" in doc, f"{name}.{attr}: no example"
        if isinstance(obj, type):
            if issubclass(obj, UpdateRule):
                takes_args = bool(obj.DEFAULTS)
            else:
                try:
                    takes_args = bool(inspect.signature(obj).parameters)
                except (TypeError, ValueError):  # builtin-derived (ReadOnlyDict): dict's signature
                    takes_args = False
        else:
            takes_args = bool(inspect.signature(obj).parameters)
            returns = inspect.signature(obj).return_annotation
            assert ("Returns:" in doc or "Yields:" in doc or returns in ("None", None)), f"{name}.{attr}: no Returns:"
        assert "Args:" in doc or not takes_args, f"{name}.{attr}: no Args:"


# ---------------------------------------------------------------------- exports
def test_exports_keep_working():
    assert synaprune.StallDetector is landscape.StallDetector is StallDetector
    assert synaprune.stall_cause is landscape.stall_cause is stall_cause
    assert landscape.analyse_stall is analyse_stall and "StallDetector" in landscape.__all__
    assert synaprune.CAUSE_DEFAULTS == {"kappa_max": 0.1, "ratio_max": 0.1}
    assert synaprune.TRANSITIONS[("escape", "timeout")] == "wait"
    assert synaprune.__version__ == "0.1.0"


# ---------------------------------------------------------------------- the frozen config
def _linear_problem():
    X = torch.linspace(-1, 1, 16, dtype=torch.float64).unsqueeze(1)
    return torch.nn.Linear(1, 1).double(), torch.nn.MSELoss(), (X, 3 * X + 1)


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in TIMING_FIELDS}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def test_config_is_frozen_validated_and_equivalent_to_the_keywords(tmp_path):
    cfg = TrainerConfig(method="synaprune-rms", lr=0.2, seed=3, classify=False, progress=False,
                        method_options={"t_wait": 5, "p": 1})
    assert cfg.mode == "at_stalls" and cfg.escape["t_wait"] == 5 and dict(cfg.rule_options) == {"p": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(TypeError, match="frozen"):
        cfg.escape["t_wait"] = 1
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert dataclasses.replace(cfg, seed=4).escape == cfg.escape
    assert TrainerConfig(method="adam").lr == 1e-3 and TrainerConfig(method="gd").mode is None
    model, loss, data = _linear_problem()
    a = Trainer(model, loss, data, config=cfg).fit(60)
    b = Trainer(model, loss, data, method="synaprune-rms", lr=0.2, seed=3, classify=False, progress=False,
                t_wait=5, p=1).fit(60)
    assert json.dumps(_strip(a.to_dict())) == json.dumps(_strip(b.to_dict()))
    with pytest.raises(TypeError, match="not both"):
        Trainer(model, loss, data, lr=0.1, config=cfg)
    with pytest.raises(TypeError, match="not both"):
        Trainer(model, loss, data, config=cfg, progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.status = "x"
    assert not hasattr(a.events[0], "_cost0") if a.events else True


@pytest.mark.parametrize("kw, match", [
    ({"method": "newton"}, "unknown method"), ({"lr": 0.0}, "lr"), ({"seed": 1.5}, "seed"),
    ({"stall": "x"}, "StallDetector"), ({"escape_horizon": 0}, "escape_horizon"),
    ({"classify_grad_tol": 0.0}, "classify_grad_tol"), ({"classify_method": "x"}, "classify_method"),
    ({"cause_kappa_max": 2.0}, "cause_kappa_max"), ({"grad_scale_reference": "x"}, "grad_scale_reference"),
    ({"num_threads": 0}, "num_threads"), ({"batch_size": 0}, "batch_size"),
    ({"method_options": {"t_wait": -1}}, "t_wait"), ({"method": "gd", "method_options": {"mode": "always"}}, "SynaPrune"),
    ({"method_options": {"mode": "always", "t_wait": 3}}, "at_stalls"),
])
def test_config_names_the_bad_setting(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainerConfig(**kw)


def test_run_json_keys_unchanged():
    model, loss, data = _linear_problem()
    tr = Trainer(model, loss, data, method="gd", classify=False, progress=False)
    assert list(tr.config()) == [
        "method", "mode", "lr", "batch_size", "options", "escape_phase", "seed", "dtype", "device", "reduction",
        "dim", "n_examples", "param_names", "param_shapes", "model", "stall_detector", "escape_criterion",
        "classify", "classify_grad_tol", "classify_eig_tol", "hessian_lipschitz", "classify_method",
        "classify_probe_floor", "classify_global_tol", "classify_nearest", "global_min", "cause_thresholds",
        "grad_scale_reference", "num_threads", "versions", "meta"]


# ---------------------------------------------------------------------- one analysis path
def test_trainer_and_a_plain_loop_with_the_monitor_give_the_same_stall_analysis():
    # 4 → 2 → 3 linear net at 1e-4·N(0, 1), ½Σ‖·‖², GD lr 0.05: the W = 0 strict saddle stalls the
    # run (test_stall.py). The trainer, and a plain GD loop on the same objective that feeds the
    # monitor's detector and calls analyse_stall, must record the same stall bit for bit.
    dl = DeepLinearProblem.random(4, 3, [2], 64, seed=0)
    theta0 = 1e-4 * torch.randn(dl.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    thresholds = {}

    def note(t, state):
        if state["events"] and state["events"][-1].step == t:
            thresholds[t] = tr.stall.grad_threshold()

    tr = Trainer(dl.module(seed=0), half_sq_error, (dl.X, dl.Y), method="gd", lr=0.05, reduction="sum",
                 dtype=torch.float64, progress=False, global_min=dl.global_min())
    res = tr.fit(120, theta0=theta0, callback=note)
    ev = res.events[0]
    assert ev.kind == "strict_saddle" and ev.step in thresholds

    # the user's loop: its own objective, detector and GD steps; the monitor's functions only
    obj = Objective.from_module(dl.module(seed=0), half_sq_error, (dl.X, dl.Y), dtype=torch.float64, reduction="sum")
    det = StallDetector()
    settings = AnalysisSettings(global_min=dl.global_min())
    reference = reference_grad_scale(obj, theta0, "default_init", seed=0)   # the Trainer's default, its seed
    assert reference.to_dict() == res.example_grad_scale_reference
    theta, found = theta0.clone(), None
    for t in range(ev.step + 1):
        loss, g = obj.loss_and_grad(theta)
        gn = float(torch.linalg.vector_norm(g))
        if det.update(t, loss, gn):
            found = analyse_stall(obj, theta, grad_norm=gn, detector_threshold=det.grad_threshold(),
                                  settings=settings, reference=reference, seed=tr.seed + 0)
            break
        theta = theta - 0.05 * g
    assert found is not None and t == ev.step and loss == ev.loss and gn == ev.grad_norm
    assert torch.equal(theta, ev.theta) and det.grad_threshold() == thresholds[ev.step]
    record = ev.to_dict()
    mine = {"kind": found.kind, "classify_tolerances": found.tolerances, "nearest_critical": found.nearest_critical,
            "kappa": found.kappa, "example_grad_scale": found.example_grad_scale,
            "example_grad_scale_ratio": found.example_grad_scale_ratio, "cause": found.cause,
            "cause_thresholds": found.cause_thresholds, "classify_error": found.error}
    assert json.dumps({k: record[k] for k in mine}) == json.dumps(landscape.to_jsonable(mine))
    assert json.dumps(found.report.to_dict(), default=str) == json.dumps(ev.report.to_dict(), default=str)
    assert found.grad_tol == ev.classify_tolerances["grad_tol"] == max(ev.grad_norm, thresholds[ev.step])


def test_analysis_reports_failures_instead_of_raising():
    obj = Objective.from_function(lambda w: (w ** 2).sum(), torch.ones(2, dtype=torch.float64))
    a = analyse_stall(obj, torch.ones(2, dtype=torch.float64), grad_norm=None, detector_threshold=1e-3,
                      settings=AnalysisSettings(nearest=False))
    # the stall rule counts the point as critical (grad_tol = max(‖g‖, threshold)): a convex bowl
    assert a.kind == "minimum" and a.cancellation is None and a.cause is None
    assert "cancellation failed" in a.error and a.n_per_example_grads == 0
    assert a.grad_tol == pytest.approx(2 * math.sqrt(2))      # max(‖g‖ = 2√2, threshold)
    assert a.cause_thresholds["reference"] == {"source": "none", "value": None}
    with pytest.raises(ValueError, match="method"):
        AnalysisSettings(method="qr")
    assert ReferenceScale("given", 2.0).to_dict() == {"source": "given", "value": 2.0}
