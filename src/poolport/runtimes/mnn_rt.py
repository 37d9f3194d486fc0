"""MNN (CPU, fp32, ``precision: high``), the ONNX model converted by MNN's converter binding. Both run in a
process of their own (``workers/mnn_worker.py``): the converter and some kernels crash the process on graphs
they do not support."""

from __future__ import annotations

from importlib.util import find_spec

from .isolated import IsolatedRuntime


class MNN(IsolatedRuntime):
    """MNN through its converter's Python binding, in a worker process of this Python."""

    def available(self) -> bool:
        """Whether MNN and its converter binding can be imported here (checked without importing them:
        importing is the worker's job)."""
        return find_spec("MNN") is not None and find_spec("_tools") is not None


RUNTIME = MNN("mnn", label="MNN", install="pip install 'poolport[runtimes]'",
              activity="converting with MNN's converter, running in MNN", order=30, distributions=("MNN",),
              worker="mnn_worker")
