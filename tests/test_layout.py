"""The layout is the architecture: imports only run down the layers, packages of one layer never import
each other, no module imports itself back through a cycle, and the planning layer stays free of torch and
numpy (CONTRIBUTING.md explains why). Read from the source with ``ast``: imports inside functions count
too, and so do ``importlib.import_module("poolport....")`` calls.

The checks are functions of a source tree, so the last tests run them on mutated copies of this tree and
require each mutation to be caught: a layout test that cannot fail is no test."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "poolport"

# lowest first; a package may import the layers below it, never its own layer's other packages nor a layer
# above. The package root (poolport/__init__.py, __main__.py) is the top layer: no package imports it.
LAYERS = [
    {"errors", "version"},  # the one error type; the version string
    {"plan"},  # pure integer geometry
    {"backend", "onnxfile"},  # a plan turned into torch ops or ONNX nodes; ONNX files, staging, paths
    {"functional"},  # the public pooling functions, torch names
    {"nn"},  # the public pooling modules, torch names
    {"runtimes"},  # one module per inference runtime, and their isolated workers
    {"verify"},  # recording sites against torch, comparing exported models with PyTorch
    {"testing"},  # numpy oracles, above what they check
    {"routing"},  # make_portable, patch(), FX graph rewriting
    {"legalizer", "loading", "quantization"},  # the ONNX legalizer; loading MODEL arguments; int8 recipes
    {"export"},  # export_onnx
    {"demo"},  # the embedded example models
    {"cli"},  # the command line
]
ROOT_LAYER = len(LAYERS)


def layer_table(layers: list[set[str]]) -> dict[str, int]:
    return {pkg: i for i, layer in enumerate(layers) for pkg in layer}


def module_name(src: Path, path: Path) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(src: Path, target: str, names: list[str]) -> set[str]:
    found = set()
    for name in names:  # `from poolport import nn` imports the module poolport.nn
        sub = f"{target}.{name}"
        as_path = src.parent / sub.replace(".", "/")
        found.add(sub if as_path.is_dir() or as_path.with_suffix(".py").exists() else target)
    return found


def imports(src: Path, path: Path) -> set[str]:
    """Every poolport module ``path`` imports, anywhere in the file, as absolute dotted names."""
    name = module_name(src, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("poolport")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("poolport"):
                found |= _resolve(src, target, [a.name for a in node.names])
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("poolport"):
                found.add(arg.value)
    return found


def _is_import_module(func: ast.expr) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)`` or ``__import__(...)``."""
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


class Tree:
    """The modules of one source tree and what each imports."""

    def __init__(self, src: Path, layers: list[set[str]] = LAYERS):
        self.src = src
        self.layer = layer_table(layers)
        self.modules = {module_name(src, p): p for p in src.rglob("*.py")}
        self.graph = {m: imports(src, p) for m, p in self.modules.items()}

    def layer_of(self, module: str) -> int:
        """The layer of ``module``; the package root and unknown packages sit on top."""
        parts = module.split(".")
        return self.layer.get(parts[1], ROOT_LAYER) if len(parts) > 1 else ROOT_LAYER

    def package_of(self, module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else ""

    def unlayered(self) -> list[str]:
        packages = {self.package_of(m) for m in self.modules if m.count(".") >= 1} - {"__main__"}
        return sorted(packages - set(self.layer))

    def violations(self, module: str) -> list[str]:
        """Imports of ``module`` that go up a layer, or sideways into another package of its layer."""
        mine = self.layer_of(module)
        if mine == ROOT_LAYER:
            return []
        found = []
        for target in sorted(self.graph[module]):
            theirs = self.layer_of(target)
            if theirs > mine:
                found.append(f"{module} (layer {mine}) imports {target} from a higher layer")
            elif theirs == mine and self.package_of(target) != self.package_of(module):
                found.append(f"{module} imports {target}, another package of its own layer {mine}")
        return found

    def all_violations(self) -> list[str]:
        return [v for m in sorted(self.modules) for v in self.violations(m)]

    def cycle(self) -> list[str] | None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(m: str) -> list[str] | None:
            state[m] = 1
            stack.append(m)
            for t in sorted(self.graph.get(m, ())):
                if t not in self.modules or t == "poolport":
                    continue
                if state.get(t) == 1:
                    return stack[stack.index(t):] + [t]
                if t not in state and (found := visit(t)):
                    return found
            stack.pop()
            state[m] = 2
            return None

        for m in sorted(self.modules):
            if m not in state and (found := visit(m)):
                return found
        return None

    def planning_layer_imports(self) -> set[str]:
        """Third-party packages among torch/numpy/onnx that ``plan/`` imports."""
        bad = set()
        for path in (self.src / "plan").rglob("*.py"):
            tree = ast.parse(path.read_text())
            names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                      if isinstance(n, ast.ImportFrom) and not n.level}
            bad |= names & {"torch", "numpy", "onnx"}
        return bad


TREE = Tree(SRC)


def test_every_package_has_a_layer():
    assert not TREE.unlayered(), f"put {TREE.unlayered()} into a layer in tests/test_layout.py"


@pytest.mark.parametrize("module", sorted(TREE.modules))
def test_imports_run_down_the_layers(module):
    assert not TREE.violations(module)


def test_no_import_cycles():
    cycle = TREE.cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_planning_layer_imports_neither_torch_nor_numpy():
    assert not TREE.planning_layer_imports()


# --- the checks catch what they are for: each mutation of a copy of this tree must be found ---

def _mutated(tmp_path: Path, relpath: str, line: str) -> Tree:
    copy = tmp_path / "poolport"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / relpath
    target.write_text(target.read_text() + f"\n\ndef _mutation():\n    {line}\n")
    return Tree(copy)


MUTATIONS = {
    # a package importing a sibling package of its own layer
    "sibling": ("legalizer/rules.py", "from ..loading import loaders"),
    # a lower layer importing the package root, which sits above every layer
    "package root": ("verify/compare.py", "from poolport import export_onnx"),
    # an import written as a call
    "import_module": ("plan/pooling.py", "importlib.import_module('poolport.backend.execute')"),
    # the planning layer importing the test oracle
    "plan imports testing": ("plan/windows.py", "from ..testing import reference"),
    # an arrow back up
    "upward": ("onnxfile/graph.py" if (SRC / "onnxfile" / "graph.py").exists() else "plan/axis.py",
               "from ..export import onnx_export"),
}


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_each_mutation_is_caught(tmp_path, kind):
    relpath, line = MUTATIONS[kind]
    assert not Tree(SRC).all_violations(), "the unmutated tree must be clean for this test to mean anything"
    found = _mutated(tmp_path, relpath, line).all_violations()
    assert found, f"the layout checks missed a {kind} import: {line} in {relpath}"


def test_a_cycle_is_caught(tmp_path):
    # plan/pooling.py imports errors; errors importing plan back closes a cycle
    assert _mutated(tmp_path, "errors.py", "from .plan import pooling").cycle()


def test_a_torch_import_in_the_planning_layer_is_caught(tmp_path):
    assert _mutated(tmp_path, "plan/axis.py", "import torch").planning_layer_imports() == {"torch"}
