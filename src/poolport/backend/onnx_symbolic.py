"""A plan emitted as ONNX nodes inside torch's TorchScript exporter (a custom symbolic for
``aten::adaptive_*``): how TorchScript files, whose graphs Python cannot intercept, get poolport's
portable formulation."""

from __future__ import annotations

import contextlib

import torch

from ..errors import PoolportError
from ..plan import plan_pool
from ..plan.pooling import ONNX_POOL
from .execute import execute


class SymbolicOps:
    """``execute``'s operations as ONNX nodes in a TorchScript export graph ``g``."""

    def __init__(self, g, opset: int):
        self.g, self.opset = g, opset

    def _ints(self, values):
        return self.g.op("Constant", value_t=torch.tensor(list(values), dtype=torch.int64))

    def slice(self, x, dim, start, stop):
        """ONNX Slice with constant bounds."""
        return self.g.op("Slice", x, self._ints([start]), self._ints([stop]), self._ints([dim]))

    def pool(self, x, op, kernel, stride):
        """AveragePool/MaxPool without padding."""
        return self.g.op(ONNX_POOL[op], x, kernel_shape_i=list(kernel), strides_i=list(stride))

    def concat(self, parts, dim):
        """ONNX Concat."""
        return self.g.op("Concat", *parts, axis_i=dim)

    def copy(self, x):
        """ONNX Identity."""
        return self.g.op("Identity", x)


OPS = [(f"adaptive_{op}_pool{d}d", op, d) for op in ("avg", "max") for d in (1, 2, 3)]


def _make_symbolic(op: str, d: int, opset: int, sites: list):
    from torch.onnx import symbolic_helper as sh

    def symbolic(g, x, output_size):
        sizes = sh._get_tensor_sizes(x)
        out = sh._parse_arg(output_size, "is")
        name = f"adaptive_{op}_pool{d}d"
        if sizes is None or any(s is None for s in sizes[-d:]):
            raise PoolportError(f"{name} in a TorchScript model: the input sizes must be static, got {sizes}.")
        in_size = tuple(sizes[-d:])
        out = tuple(n if o is None else o for n, o in zip(in_size, out))
        plan = plan_pool(op, in_size, out)
        sites.append((name, tuple(sizes), out, plan))
        y = execute(plan, x, SymbolicOps(g, opset), len(sizes))
        return (y, None) if op == "max" else y

    return symbolic


@contextlib.contextmanager
def portable_symbolics(opset: int):
    """Register poolport's symbolics for every aten adaptive op during a TorchScript ONNX export;
    yields the list of (op, input shape, output size, plan) the export emitted."""
    sites: list = []
    registered = []
    try:
        for name, op, d in OPS:
            torch.onnx.register_custom_op_symbolic(f"aten::{name}", _make_symbolic(op, d, opset, sites), 9)
            registered.append(name)
        yield sites
    finally:
        for name in registered:
            torch.onnx.unregister_custom_op_symbolic(f"aten::{name}", 9)
