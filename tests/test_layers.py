"""The layers of docs/architecture.md, checked on the source (ast, nothing is imported): no package
imports one above it, no package-level import cycle, and no module-level import cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import slimlab

ROOT = Path(slimlab.__file__).parent
# The package (its version), the errors, trial identity, locating a user's import paths and the objects
# handed to slimlab.compress: leaves, usable everywhere.
BASE = {"slimlab", "errors", "identity", "imports", "live"}
# Each package and the packages it may import (besides BASE). Imports inside functions count too.
ALLOWED: dict[str, set[str]] = {
    "slimlab": {"api"},  # `slimlab.compress`, imported on first use (PEP 562)
    "errors": set(),
    "plotting": set(),
    "registry": set(),
    "identity": set(),  # Hparams: which config fields enter trial ids (pydantic only)
    "imports": set(),  # locating a user's `module:attr` (model, data, metric factories): a leaf
    "live": set(),  # the objects handed to slimlab.compress, read by the model and data factories
    "data": {"registry"},
    "models": {"registry", "data"},  # data.batches: inputs of any signature
    "stats": {"plotting"},
    "evaluate": {"data", "models", "stats", "plotting", "registry"},
    "bench": {"data", "models", "evaluate", "stats", "plotting", "registry", "identity", "treatments"},
    "train": {"data", "models", "identity"},
    "treatments": {"data", "models", "train", "evaluate", "stats", "registry", "identity"},
    "config": {"data", "models", "train", "treatments", "bench", "evaluate", "registry", "identity"},
    "experiment": {
        "config",
        "data",
        "models",
        "train",
        "treatments",
        "evaluate",
        "stats",
        "bench",
        "registry",
    },
    # A study (slimlab.studies) runs cells as `experiment` runs trials; analysis and report sit above it.
    "studies": {"data", "models", "train", "treatments", "evaluate", "registry"},
    "analysis": {"config", "data", "evaluate", "stats", "bench", "experiment", "plotting", "registry"},
    "report": {"analysis", "plotting", "bench"},
    "serve": {"models", "bench", "experiment", "registry"},
    "cli": {"*"},
    "api": {"*"},  # slimlab.compress, the Python entry point: at the top, beside the CLI
    "__main__": {"cli"},
    "examples": {"models"},  # example user code shipped as package data (a data factory)
}
# Narrower rules inside a permitted package edge: (importer package, imported module prefix allowed).
ONLY = {
    ("analysis", "experiment"): ("slimlab.experiment.record",),  # the record type, never the runner
    ("report", "bench"): ("slimlab.bench.plots",),  # rendering code only
    # The ONNX export of several/dict/integer inputs and ORT's input dtypes, shared with static_int8.
    ("bench", "treatments"): ("slimlab.treatments.static_quant",),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, modules: dict[str, Path], top_level: bool) -> set[str]:
    """slimlab modules imported; with `top_level`, only those run when the module is imported."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if not top_level:
                    visit(child, False)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: never imported at run time
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("slimlab"))
            elif (
                isinstance(child, ast.ImportFrom)
                and child.level == 0
                and (child.module or "").startswith("slimlab")
            ):
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    found.add(full if full in modules else child.module)
            visit(child, top)

    visit(tree, True)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "slimlab"


def _graph(top_level: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(ast.parse(p.read_text()), modules, top_level) for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_no_layer_imports_one_above_it():
    bad = []
    for module, targets in _graph(top_level=False).items():
        here = _package(module)
        allowed = ALLOWED[here] | BASE | {here}
        for target in targets:
            there = _package(target)
            if "*" not in allowed and there not in allowed:
                bad.append(f"{module} imports {target} ({here} -> {there})")
            prefixes = ONLY.get((here, there))
            if prefixes and not target.startswith(prefixes):
                bad.append(f"{module} imports {target}; {here} may import only {prefixes} of {there}")
    assert not bad, "\n".join(sorted(bad))


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} - {"slimlab"} <= set(ALLOWED)


def test_no_package_level_import_cycle():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph(top_level=False).items():
        packages[_package(module)] |= {_package(t) for t in targets} - {_package(module), "slimlab"}
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])


def test_no_module_level_import_cycle():
    cycle = _cycle(_graph(top_level=True))
    assert cycle is None, " -> ".join(cycle or [])
