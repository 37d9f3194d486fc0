"""A ``GenericPlan`` as ONNX nodes inside the TorchScript exporter (``g`` is its graph context), with every
size read from the tensor at run time (``Shape``), so the graph is exact at every input size its dynamic
axes admit. Average is ``torch_generic``'s window-mask MatMul; max slices each window with its run-time
bounds (no torch.export guards here, so no mask needed). Needs opset >= 15 (``Shape`` with ``start``/``end``)."""

from __future__ import annotations

import torch

from ..errors import PoolportError
from ..plan.generic import GenericPlan

MIN_OPSET = 15


class _Nodes:
    def __init__(self, g, opset: int):
        self.g, self.opset = g, opset

    def ints(self, values, scalar: bool = False):
        t = torch.tensor(values if not scalar else values[0], dtype=torch.int64)
        return self.g.op("Constant", value_t=t)

    def reduce(self, name: str, x, axes: list[int], keepdims: int):
        if self.opset >= 18:
            return self.g.op(name, x, self.ints(axes), keepdims_i=keepdims)
        return self.g.op(name, x, axes_i=axes, keepdims_i=keepdims)

    def unsqueeze(self, x, axes: list[int]):
        return self.g.op("Unsqueeze", x, self.ints(axes))


def scalar_type(x):
    """The element type of ``x`` as the exporter knows it (a ``JitScalarType``)."""
    try:  # torch >= 2.9 keeps the TorchScript exporter's internals here
        from torch.onnx._internal.torchscript_exporter._type_utils import JitScalarType
    except ImportError:
        from torch.onnx._type_utils import JitScalarType
    return JitScalarType.from_value(x, JitScalarType.FLOAT)


def _pool_axis(nodes: _Nodes, x, axis: int, rank: int, o: int, op: str, scalar):
    g = nodes.g
    onnx_type = scalar.onnx_type()
    n = g.op("Shape", x, start_i=axis, end_i=axis + 1)  # [1]
    # plan.generic.window_bounds, written as nodes: n is [1] int64, the window numbers a constant [o]
    start = g.op("Div", g.op("Mul", nodes.ints(list(range(o))), n), nodes.ints([o]))  # floor(i*n/o), [o]
    end = g.op("Div", g.op("Add", g.op("Mul", nodes.ints(list(range(1, o + 1))), n), nodes.ints([o - 1])),
               nodes.ints([o]))  # ceil((i+1)*n/o), [o] (non-negative, so Div floors)
    if op == "max":
        # one Slice per window with its run-time bounds, ReduceMax, Concat: written as ONNX there is no
        # guard to fear (torch.export's reason for the mask in torch_generic), and it reads the tensor once
        # where a mask's Where reads it o times (9x faster in ONNX Runtime, measured)
        axes = nodes.ints([axis])
        parts = []
        for k in range(o):
            lo = g.op("Slice", start, nodes.ints([k]), nodes.ints([k + 1]))
            hi = g.op("Slice", end, nodes.ints([k]), nodes.ints([k + 1]))
            parts.append(nodes.reduce("ReduceMax", g.op("Slice", x, lo, hi, axes), [axis], 1))
        return g.op("Concat", *parts, axis_i=axis)
    j = g.op("Range", nodes.ints([0], True), g.op("Squeeze", n, nodes.ints([0])), nodes.ints([1], True))  # [n]
    row = nodes.unsqueeze(j, [0])  # [1, n]
    mask = g.op("And", g.op("GreaterOrEqual", row, nodes.unsqueeze(start, [1])),
                g.op("Less", row, nodes.unsqueeze(end, [1])))  # [o, n]
    half = scalar.dtype() in (torch.float16, torch.bfloat16)
    work = 1 if half else onnx_type  # 1 = FLOAT: half types accumulate in float32
    count = g.op("Cast", nodes.unsqueeze(g.op("Sub", end, start), [1]), to_i=work)
    weights = g.op("Div", g.op("Cast", mask, to_i=work), count)  # [o, n], rows sum to 1
    src = x if work == onnx_type else g.op("Cast", x, to_i=work)
    if axis == rank - 1:
        y = g.op("MatMul", src, g.op("Transpose", weights, perm_i=[1, 0]))
    elif axis == rank - 2:
        y = g.op("MatMul", weights, src)
    else:  # a depth axis: bring it last and back
        perm = [a for a in range(rank) if a != axis] + [axis]
        y = g.op("MatMul", g.op("Transpose", src, perm_i=perm), g.op("Transpose", weights, perm_i=[1, 0]))
        y = g.op("Transpose", y, perm_i=[perm.index(a) for a in range(rank)])
    return y if work == onnx_type else g.op("Cast", y, to_i=onnx_type)


def generic_nodes(g, x, plan: GenericPlan, rank: int, opset: int, where: str):
    """ONNX nodes computing ``plan`` on ``x`` (rank ``rank``: N, C, *spatial) for any spatial size."""
    if opset < MIN_OPSET:
        raise PoolportError(
            f"{where} with a dynamic spatial size needs ONNX opset >= {MIN_OPSET} (the window bounds read the "
            f"size with Shape(start, end)); export with opset_version={MIN_OPSET} or higher, or keep the size static."
        )
    nodes = _Nodes(g, opset)
    d = len(plan.out_size)
    first = rank - d
    if plan.kind == "identity":
        return g.op("Identity", x)
    if plan.kind == "global" and first == 2:
        return g.op("GlobalAveragePool" if plan.op == "avg" else "GlobalMaxPool", x)
    scalar = scalar_type(x)
    name = "ReduceMean" if plan.op == "avg" else "ReduceMax"
    for k in plan.order():
        o = plan.out_size[k]
        if o is None:
            continue
        axis = first + k
        x = nodes.reduce(name, x, [axis], 1) if o == 1 else _pool_axis(nodes, x, axis, rank, o, plan.op, scalar)
    return x
