"""LiteRT (TensorFlow Lite's successor): the ONNX model converted by onnx2tf and run in LiteRT's
interpreter, in a worker process (``workers/litert_worker.py``) of LiteRT's own Python environment:
onnx2tf pins old onnx, onnxruntime and numpy.

Where that environment is: ``POOLPORT_LITERT_PYTHON`` (a Python with onnx2tf and ai-edge-litert), else
this Python if it has both, else ``.venv-litert`` in the working folder (``make litert`` builds it)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from ..errors import PoolportError
from .isolated import IsolatedRuntime, worker_version


def litert_python() -> str | None:
    """The Python that runs onnx2tf and LiteRT, or None if there is none."""
    env = os.environ.get("POOLPORT_LITERT_PYTHON")
    if env:
        return env if _has_litert(env) else None
    if find_spec("onnx2tf") is not None and find_spec("ai_edge_litert") is not None:
        return sys.executable
    local = str(Path.cwd() / ".venv-litert" / "bin" / "python")
    return local if _has_litert(local) else None


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

    def python(self) -> str:
        """LiteRT's Python; PoolportError where there is none."""
        python = litert_python()
        if python is None:
            raise PoolportError("LiteRT is not installed: set POOLPORT_LITERT_PYTHON to a Python with onnx2tf and "
                                "ai-edge-litert (make litert builds one in .venv-litert).")
        return python


RUNTIME = LiteRT("litert", label="LiteRT (onnx2tf)", order=40, aliases=("tflite",), worker="litert_worker",
                 install="make litert, or set POOLPORT_LITERT_PYTHON to a Python with onnx2tf and ai-edge-litert",
                 activity="converting with onnx2tf, running in LiteRT")
