"""Plans written as ONNX nodes directly (the legalizer's writer): an ``ExplicitPool`` as
``Pad`` + ``AveragePool``/``MaxPool`` + ``Mul`` by its divisor correction."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.padding import ExplicitPool

ONNX_POOL = {"avg": "AveragePool", "max": "MaxPool"}


def explicit_nodes(plan: ExplicitPool, x: str, y: str, opset: int, prefix: str,
                   elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial) by ``plan``. ``elem_type`` is
    the input's ONNX element type (the correction constant takes it)."""
    nodes, inits = [], []
    padded = x
    if plan.padded:
        pads = [0, 0, *plan.pads_before, 0, 0, *plan.pads_after]
        padded = f"{prefix}_padded"
        mode = "constant" if plan.op == "avg" else "edge"
        if opset >= 11:
            inits.append(numpy_helper.from_array(np.array(pads, dtype=np.int64), f"{prefix}_pads"))
            nodes.append(helper.make_node("Pad", [x, f"{prefix}_pads"], [padded], name=f"{prefix}_pad", mode=mode))
        else:
            nodes.append(helper.make_node("Pad", [x], [padded], name=f"{prefix}_pad", mode=mode, pads=pads))
    pooled = f"{prefix}_pooled" if plan.corrected else y
    nodes.append(helper.make_node(ONNX_POOL[plan.op], [padded], [pooled], name=f"{prefix}_pool",
                                  kernel_shape=list(plan.kernel), strides=list(plan.stride)))
    if plan.corrected:
        grid = np.array(plan.factors[0], dtype=np.float64)
        for f in plan.factors[1:]:
            grid = np.multiply.outer(grid, np.array(f, dtype=np.float64))
        # the correction has the pooled output's spatial shape and broadcasts over N and C: onnx2tf refuses a
        # (1, 1, Ho, Wo) constant after a pool (it transposes it to (1, Ho, 1, Wo)); (Ho, Wo) converts (measured)
        correction = grid.reshape(plan.out_size).astype(helper.tensor_dtype_to_np_dtype(elem_type))
        inits.append(numpy_helper.from_array(correction, f"{prefix}_correction"))
        nodes.append(helper.make_node("Mul", [pooled, f"{prefix}_correction"], [y], name=f"{prefix}_divisor"))
    return nodes, inits
