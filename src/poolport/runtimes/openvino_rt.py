"""OpenVINO (CPU), compiled with ``INFERENCE_PRECISION_HINT=f32``: its default is bf16 on some CPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..onnxfile.files import Model, as_file
from .base import Feeds, Runtime

if TYPE_CHECKING:
    import numpy as np


class OpenVINO(Runtime):
    """OpenVINO's CPU plugin at f32 precision."""

    def run(self, model: Model, feeds: Feeds) -> list[np.ndarray]:
        """``model`` in OpenVINO (CPU, f32 precision hint) on ``feeds``."""
        import numpy as np
        import openvino as ov

        core = ov.Core()
        with as_file(model) as path:
            compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            result = compiled(feeds)
            return [np.asarray(result[out]) for out in compiled.outputs]


RUNTIME = OpenVINO("openvino", label="OpenVINO", install="pip install 'poolport[runtimes]'",
                   activity="running in openvino", order=10, distributions=("openvino",), modules=("openvino",))
