"""ONNX Runtime (CPU): the reference the other runtimes are compared with, and the runtime every export is
verified in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..onnxfile.files import Model
from .base import Feeds, Runtime

if TYPE_CHECKING:
    import numpy as np


def quiet_session_options():
    """Session options whose log severity keeps ONNX Runtime's own warnings (an unused initializer
    removed, an output shape other than the graph declares) off the terminal: errors only. Set per
    session; ONNX Runtime's default logger is left as it is."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return opts


def run_onnxruntime(model: Model, feeds: Feeds) -> list[np.ndarray]:
    """``model`` in ONNX Runtime (CPU) on ``feeds``."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    sess = ort.InferenceSession(source, quiet_session_options(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


class OnnxRuntime(Runtime):
    """ONNX Runtime with its CPU execution provider."""

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` in ONNX Runtime (CPU) on ``feeds``."""
        return run_onnxruntime(model, feeds)


RUNTIME = OnnxRuntime("onnxruntime", label="ONNX Runtime", install="pip install 'poolport[onnx]'",
                      activity="running in onnxruntime", order=0, distributions=("onnxruntime",),
                      modules=("onnxruntime",))
