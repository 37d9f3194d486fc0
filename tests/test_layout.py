"""The layout is the architecture: imports only run down the layers, no module imports itself back
through a cycle, and the planning layer stays free of torch and numpy (CONTRIBUTING.md explains why).
Read from the source with ``ast``: imports inside functions count too."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "poolport"

# lowest first; a package may import its own layer and the layers below it, never one above
LAYERS = [
    {"errors", "plan", "testing", "demo"},  # integer geometry, oracles, example models
    {"backend"},  # a plan turned into torch ops or ONNX nodes
    {"functional", "nn"},  # the public pooling API, torch names
    {"verify", "runtimes"},  # recording sites against torch; one module per runtime, a registry, its workers
    {"routing"},  # make_portable, patch()
    {"rewrite"},  # rewrite rules on FX graphs
    {"export", "legalizer", "loading"},  # ONNX export, the legalizer, loading MODEL arguments
    {"cli"},  # the command line
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every poolport module ``path`` imports, anywhere in the file, as absolute dotted names."""
    name = module_name(path)
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
            if not target.startswith("poolport"):
                continue
            for alias in node.names:  # `from poolport import nn` imports the module poolport.nn
                sub = f"{target}.{alias.name}"
                as_path = SRC.parent / sub.replace(".", "/")
                found.add(sub if as_path.is_dir() or as_path.with_suffix(".py").exists() else target)
    return found


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}
GRAPH = {m: imports(p) for m, p in MODULES.items()}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None  # poolport/__init__ and __main__ sit on top


def test_every_package_has_a_layer():
    packages = {m.split(".")[1] for m in MODULES if m.count(".") >= 1} - {"__main__"}
    assert packages <= set(LAYER), f"put {sorted(packages - set(LAYER))} into a layer in tests/test_layout.py"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module):
    mine = layer_of(module)
    if mine is None:
        return
    upward = sorted(t for t in GRAPH[module] if (layer_of(t) or -1) > mine)
    assert not upward, f"{module} (layer {mine}) imports {upward} from a higher layer"


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if t not in MODULES or t == "poolport":
                continue
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_the_planning_layer_imports_neither_torch_nor_numpy():
    for path in (SRC / "plan").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not names & {"torch", "numpy", "onnx"}, f"{path.name} imports {names & {'torch', 'numpy', 'onnx'}}"
