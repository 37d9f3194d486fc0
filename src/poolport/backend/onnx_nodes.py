"""Plans written as ONNX nodes directly (the legalizer's writer): an ``ExplicitPool`` as
``Pad`` + ``AveragePool``/``MaxPool`` + ``Mul`` by its divisor correction; a ``TapPool`` (dilated pooling)
as ``Pad`` + one ``Slice`` per kernel tap + ``Max``/``Sum`` + a 1-wide strided pool (+ ``Mul``)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.explicit import ExplicitPool
from ..plan.taps import TapPool

ONNX_POOL = {"avg": "AveragePool", "max": "MaxPool"}


def _lowest(dtype) -> float | int:
    """The lowest finite value of ``dtype``."""
    return np.finfo(dtype).min if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _correction(factors, out_size, elem_type: int, name: str):
    """The per-cell divisor factors (per axis; their outer product) as a constant of the pooled output's
    spatial shape, broadcasting over N and C: onnx2tf refuses a (1, 1, Ho, Wo) constant after a pool (it
    transposes it to (1, Ho, 1, Wo)); (Ho, Wo) converts (measured)."""
    grid = np.array(factors[0], dtype=np.float64)
    for f in factors[1:]:
        grid = np.multiply.outer(grid, np.array(f, dtype=np.float64))
    return numpy_helper.from_array(grid.reshape(out_size).astype(helper.tensor_dtype_to_np_dtype(elem_type)), name)


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
        inits.append(_correction(plan.factors, plan.out_size, elem_type, f"{prefix}_correction"))
        nodes.append(helper.make_node("Mul", [pooled, f"{prefix}_correction"], [y], name=f"{prefix}_divisor"))
    return nodes, inits


def tap_nodes(plan: TapPool, x: str, y: str, opset: int, prefix: str,
              elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial) by the tap form ``plan``
    (opset 11 or newer: Pad and Slice take their parameters as inputs)."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    nodes, inits = [], []
    rank = len(plan.kernel)
    padded = x
    if any(plan.pads_before) or any(plan.pads_after):
        padded = f"{prefix}_padded"
        fill = 0 if plan.op == "avg" else _lowest(dtype)
        inits.append(numpy_helper.from_array(np.array([0, 0, *plan.pads_before, 0, 0, *plan.pads_after],
                                                      dtype=np.int64), f"{prefix}_pads"))
        inits.append(numpy_helper.from_array(np.array(fill, dtype=dtype), f"{prefix}_fill"))
        nodes.append(helper.make_node("Pad", [x, f"{prefix}_pads", f"{prefix}_fill"], [padded], name=f"{prefix}_pad",
                                      mode="constant"))
    # contiguous Slices (pnnx leaves strided ones unconverted for ncnn), combined, then subsampled by a
    # 1-wide pooling op with the stride (a no-op where every stride is 1)
    strided = any(s != 1 for s in plan.stride)
    axes = np.arange(2, 2 + rank, dtype=np.int64)
    inits.append(numpy_helper.from_array(axes, f"{prefix}_axes"))
    taps = []
    for t, starts in enumerate(plan.taps()):
        ends = [st + (o - 1) * s + 1 for st, o, s in zip(starts, plan.out_size, plan.stride)]
        inits.append(numpy_helper.from_array(np.array(starts, dtype=np.int64), f"{prefix}_tap{t}_starts"))
        inits.append(numpy_helper.from_array(np.array(ends, dtype=np.int64), f"{prefix}_tap{t}_ends"))
        out = f"{prefix}_tap{t}"
        nodes.append(helper.make_node("Slice", [padded, f"{prefix}_tap{t}_starts", f"{prefix}_tap{t}_ends",
                                                f"{prefix}_axes"], [out], name=f"{prefix}_slice{t}"))
        taps.append(out)
    last = y if plan.op == "max" else f"{prefix}_sum"
    combined = f"{prefix}_combined" if strided else last
    # a chain of two-input Max/Add (pnnx -> ncnn miscomputes variadic Max and Sum)
    op = "Max" if plan.op == "max" else "Add"
    acc = taps[0]
    for t, tap in enumerate(taps[1:], 1):
        out = combined if t == len(taps) - 1 else f"{prefix}_acc{t}"
        nodes.append(helper.make_node(op, [acc, tap], [out], name=f"{prefix}_combine{t}"))
        acc = out
    if len(taps) == 1:
        nodes.append(helper.make_node("Identity", taps, [combined], name=f"{prefix}_combine"))
    if strided:
        nodes.append(helper.make_node("MaxPool", [combined], [last], name=f"{prefix}_subsample",
                                      kernel_shape=[1] * rank, strides=list(plan.stride)))
    if plan.op == "avg":
        inits.append(_correction(plan.factors, plan.out_size, elem_type, f"{prefix}_correction"))
        nodes.append(helper.make_node("Mul", [last, f"{prefix}_correction"], [y], name=f"{prefix}_divisor"))
    return nodes, inits
