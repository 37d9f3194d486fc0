"""ONNX Runtime (CPU): the reference the other runtimes are compared with, and the runtime every export is
verified in."""

from __future__ import annotations

import os

import numpy as np

from ..onnxfile.files import Model
from .base import Feeds, Runtime


def run_onnxruntime(model: Model, feeds: Feeds) -> list[np.ndarray]:
    """``model`` in ONNX Runtime (CPU) on ``feeds``."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


class OnnxRuntime(Runtime):
    """ONNX Runtime with its CPU execution provider."""

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` in ONNX Runtime (CPU) on ``feeds``."""
        return run_onnxruntime(model, feeds)


RUNTIME = OnnxRuntime("onnxruntime", label="ONNX Runtime", install="pip install 'poolport[onnx]'",
                      activity="running in onnxruntime", order=0, distributions=("onnxruntime",),
                      modules=("onnxruntime",))
