"""LiteRT (TensorFlow Lite's successor): the ONNX model converted by onnx2tf and run in LiteRT's
interpreter, in a worker process (``workers/litert_worker.py``) of LiteRT's own Python environment:
onnx2tf pins old onnx, onnxruntime and numpy.

Where that environment is: ``POOLPORT_LITERT_PYTHON`` (a Python with onnx2tf and ai-edge-litert), else
this Python if it has both, else a ``.venv-litert`` (``make litert`` builds one in the checkout): in the
working folder, beside this Python's environment (``.venv`` and ``.venv-litert`` side by side), or in the
project folder poolport is installed from in editable mode. Found from any working folder."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from ..errors import PoolportError
from .isolated import IsolatedRuntime, worker_version

ENV = "POOLPORT_LITERT_PYTHON"


def venv_candidates() -> list[str]:
    """The Pythons of the ``.venv-litert`` folders looked for, in order: in the working folder, beside this
    Python's environment (``sys.prefix``) and in the project folder of an editable install (a
    ``pyproject.toml`` above ``src/poolport``). Absolute, not resolved (a venv's python is a symlink)."""
    here = Path(os.path.abspath(__file__))
    folders = [Path(os.path.abspath(sys.prefix)).parent]
    with contextlib.suppress(OSError):  # a working folder removed meanwhile has no .venv-litert
        folders.insert(0, Path.cwd())
    project = here.parents[3]  # src/poolport/runtimes/litert_rt.py in a checkout
    if here.parents[2].name == "src" and (project / "pyproject.toml").is_file():
        folders.append(project)
    return list(dict.fromkeys(str(f / ".venv-litert" / "bin" / "python") for f in folders))


def find_litert() -> tuple[str | None, str]:
    """``(the Python that runs onnx2tf and LiteRT, or None; where it was looked for, in words)``."""
    env = os.environ.get(ENV)
    if env:
        if _has_litert(env):
            return env, f"{ENV}={env}"
        why = "does not exist" if not Path(env).exists() else "has no onnx2tf and ai-edge-litert"
        return None, f"{ENV}={env} {why}"
    if find_spec("onnx2tf") is not None and find_spec("ai_edge_litert") is not None:
        return sys.executable, f"this Python ({sys.executable})"
    candidates = venv_candidates()
    for python in candidates:
        if _has_litert(python):
            return python, python
    return None, (f"looked for {ENV} (not set), onnx2tf and ai-edge-litert in this Python ({sys.executable}) and "
                  f"a LiteRT environment at {', '.join(candidates)}")


def litert_python() -> str | None:
    """The Python that runs onnx2tf and LiteRT, or None if there is none (see ``find_litert``)."""
    return find_litert()[0]


@functools.lru_cache(maxsize=None)
def _has_litert(python: str) -> bool:
    """Whether ``python`` exists and has onnx2tf and ai-edge-litert installed (without importing them)."""
    if not Path(python).exists():
        return False
    code = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('onnx2tf') and u.find_spec('ai_edge_litert') else 1)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class LiteRT(IsolatedRuntime):
    """LiteRT through onnx2tf, in LiteRT's own Python environment."""

    def available(self) -> bool:
        """Whether a Python with onnx2tf and ai-edge-litert is there (see the module's docstring)."""
        return litert_python() is not None

    def version(self) -> str:
        """onnx2tf's and ai-edge-litert's versions, as LiteRT's environment reports them ('' if none)."""
        python = litert_python()
        return worker_version(self.worker, python) if python else ""

    def missing(self) -> str:
        """Where LiteRT's environment was looked for, and how to make one."""
        return f"{find_litert()[1]}; {self.install}"

    def python(self) -> str:
        """LiteRT's Python; PoolportError where there is none."""
        python, where = find_litert()
        if python is None:
            raise PoolportError(f"LiteRT was not found ({where}): set {ENV} to a Python with onnx2tf and "
                                "ai-edge-litert (make litert builds one in .venv-litert).")
        return python


RUNTIME = LiteRT("litert", label="LiteRT (onnx2tf)", order=40, aliases=("tflite",), worker="litert_worker",
                 install="make litert, or set POOLPORT_LITERT_PYTHON to a Python with onnx2tf and ai-edge-litert",
                 activity="converting with onnx2tf, running in LiteRT")
