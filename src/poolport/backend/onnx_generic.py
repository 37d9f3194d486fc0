"""A ``GenericPlan`` as ONNX nodes, with every size read from the tensor at run time (``Shape``), so the
graph is exact at every input size its dynamic axes admit -- inf, -inf and NaN included.

One writer, two exporters: the nodes are written against a small ``Builder`` (``op``, ``ints``,
``number``, ``branch``). ``TorchScriptBuilder`` writes them inside torch's TorchScript exporter (``g``
is its graph context); ``backend.onnx_translation`` writes the same nodes with ONNX Script inside the
dynamo exporter. The formulation (measured in ONNX Runtime, ``docs/bench-dynamic.md``):

* average: per axis a MatMul by the window matrix (``mask / count``), the fastest form; a MatMul spreads
  one inf or NaN over its whole plane (``0 * inf = NaN``), so the result is checked (cell 0 of each
  pooled plane tells) and, only if it holds a non-finite value, recomputed by an ``If`` with
  one Slice per window (run-time bounds) + ReduceMean + Concat per axis: a sum per window, PyTorch's
  own semantics (inf stays inf, inf and -inf give NaN). Half types accumulate in float32, as torch does.
* max: one Slice per window + ReduceMax + Concat per axis (reads the tensor once). ONNX Runtime's
  ReduceMax / GlobalMaxPool may drop a NaN (measured, onnxruntime 1.32), PyTorch propagates it: if the
  input holds a NaN (its sum is NaN), an ``If`` takes the NaN-exact form instead (NaN as +inf for the
  maximum, a per-window NaN flag, ``Where``).

Needs opset >= 15 (``Shape`` with ``start``/``end``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..errors import PoolportError
from ..plan.generic import GenericPlan
from ..plan.pooling import ONNX_POOL

MIN_OPSET = 15
FLOAT, INT64, BOOL = 1, 7, 9  # ONNX element types (TensorProto)
HALF = (10, 16)  # FLOAT16, BFLOAT16: average pooling accumulates them in float32, as torch does


class Builder(Protocol):
    """What the size-generic writer needs from an exporter: nodes with one output each."""

    opset: int

    def op(self, name: str, *inputs: Any, **attrs: Any) -> Any:
        """An ONNX node ``name`` with these inputs and attributes (ints, floats, strings, int lists)."""

    def ints(self, values: list[int]) -> Any:
        """A constant 1-D int64 tensor."""

    def number(self, value: float, elem_type: int) -> Any:
        """A constant scalar of ONNX element type ``elem_type``."""

    def branch(self, cond: Any, build: Callable[[Builder], Any], otherwise: Any) -> Any:
        """ONNX ``If``: ``build(sub)`` written with a builder of the then-branch where ``cond`` holds,
        else ``otherwise``."""


def reduce(b: Builder, name: str, x, axes: list[int] | None, keepdims: int):
    """ONNX ``Reduce*`` over ``axes`` (None: every axis), axes as an input from opset 18 (ReduceSum: 13)."""
    if axes is None:
        return b.op(name, x, keepdims=keepdims)
    if b.opset >= 18 or name == "ReduceSum":
        return b.op(name, x, b.ints(axes), keepdims=keepdims)
    return b.op(name, x, axes=axes, keepdims=keepdims)


def _bounds(b: Builder, x, axis: int, o: int):
    """``plan.generic.window_bounds`` written as nodes: ``(start, end)``, each ``[o]`` int64, from the run-time
    size of ``axis`` (``n``: [1] int64; non-negative, so Div floors)."""
    n = b.op("Shape", x, start=axis, end=axis + 1)
    start = b.op("Div", b.op("Mul", b.ints(list(range(o))), n), b.ints([o]))
    end = b.op("Div", b.op("Add", b.op("Mul", b.ints(list(range(1, o + 1))), n), b.ints([o - 1])), b.ints([o]))
    return n, start, end


def _windows(b: Builder, x, axis: int, o: int, name: str, bounds) -> Any:
    """One Slice per window with its run-time bounds, ``name`` (ReduceMean / ReduceMax) over it, Concat."""
    _, start, end = bounds
    axes = b.ints([axis])
    parts = []
    for k in range(o):
        lo = b.op("Slice", start, b.ints([k]), b.ints([k + 1]))
        hi = b.op("Slice", end, b.ints([k]), b.ints([k + 1]))
        parts.append(reduce(b, name, b.op("Slice", x, lo, hi, axes), [axis], 1))
    return b.op("Concat", *parts, axis=axis) if len(parts) > 1 else parts[0]


def _matmul_axis(b: Builder, x, axis: int, rank: int, o: int, work: int):
    """Average along ``axis`` as a MatMul by the window matrix ``mask / count`` (no transposes on the last
    two axes). Exact for finite inputs only (``0 * inf = NaN``): ``generic_graph`` checks its result."""
    n, start, end = _bounds(b, x, axis, o)
    j = b.op("Range", b.number(0, INT64), b.op("Squeeze", n, b.ints([0])), b.number(1, INT64))  # [n]
    row = b.op("Unsqueeze", j, b.ints([0]))  # [1, n]
    mask = b.op("And", b.op("GreaterOrEqual", row, b.op("Unsqueeze", start, b.ints([1]))),
                b.op("Less", row, b.op("Unsqueeze", end, b.ints([1]))))  # [o, n]
    count = b.op("Cast", b.op("Unsqueeze", b.op("Sub", end, start), b.ints([1])), to=work)
    weights = b.op("Div", b.op("Cast", mask, to=work), count)  # [o, n], rows sum to 1
    if axis == rank - 1:
        return b.op("MatMul", x, b.op("Transpose", weights, perm=[1, 0]))
    if axis == rank - 2:
        return b.op("MatMul", weights, x)
    perm = [a for a in range(rank) if a != axis] + [axis]  # a depth axis: bring it last and back
    y = b.op("MatMul", b.op("Transpose", x, perm=perm), b.op("Transpose", weights, perm=[1, 0]))
    return b.op("Transpose", y, perm=[perm.index(a) for a in range(rank)])


def _nan_exact_max(b: Builder, x, axes: list[int], o: int | None, elem_type: int):
    """Max with PyTorch's NaN rule (a window holding a NaN gives NaN), whatever the runtime's ReduceMax does
    with NaN: the maximum with NaN read as +inf, and a per-window NaN flag. ``o``: windows along ``axes[0]``,
    or None for a reduction over all of ``axes``."""
    isnan = b.op("IsNaN", x)
    finite = b.op("Where", isnan, b.number(float("inf"), elem_type), x)
    flag = b.op("Cast", isnan, to=elem_type)
    if o is None:
        top, any_nan = (reduce(b, "ReduceMax", t, axes, 1) for t in (finite, flag))
    else:
        bounds = _bounds(b, x, axes[0], o)
        top, any_nan = (_windows(b, t, axes[0], o, "ReduceMax", bounds) for t in (finite, flag))
    return b.op("Where", b.op("Cast", any_nan, to=BOOL), b.number(float("nan"), elem_type), top)


def _apply(b: Builder, x, plan: GenericPlan, rank: int, elem_type: int, form: str):
    """``plan`` on ``x`` in one ``form``: ``matmul`` (average, finite inputs), ``windows`` (Slice per
    window + ReduceMean/ReduceMax) or ``nan-exact`` (max). Axes to 1 first, all in one reduction (one
    contiguous read; ONNX Runtime's GlobalAveragePool costs 1.5-2.3x that, measured, for its layout change)."""
    first = rank - len(plan.out_size)
    name = "ReduceMean" if plan.op == "avg" else "ReduceMax"
    whole = [first + k for k, o in enumerate(plan.out_size) if o == 1]
    if whole:
        x = _nan_exact_max(b, x, whole, None, elem_type) if form == "nan-exact" else reduce(b, name, x, whole, 1)
    for k in plan.order(slicing=form != "matmul"):
        o = plan.out_size[k]
        if o is None or o == 1:
            continue
        axis = first + k
        if form == "nan-exact":
            x = _nan_exact_max(b, x, [axis], o, elem_type)
        elif form == "matmul":
            x = _matmul_axis(b, x, axis, rank, o, elem_type)
        else:
            x = _windows(b, x, axis, o, name, _bounds(b, x, axis, o))
    return x


def generic_graph(b: Builder, x, plan: GenericPlan, rank: int, elem_type: int):
    """ONNX nodes computing ``plan`` on ``x`` (rank ``rank``: N, C, *spatial; ONNX element type
    ``elem_type``) for any spatial size, with PyTorch's inf/-inf/NaN pattern (see the module's doc)."""
    if plan.kind == "identity":
        return b.op("Identity", x)
    if plan.op == "max":
        fast = _apply(b, x, plan, rank, elem_type, "windows")
        has_nan = b.op("IsNaN", reduce(b, "ReduceSum", x, None, 0))  # NaN in, or both infinities: no matter
        return b.branch(has_nan, lambda sub: _apply(sub, x, plan, rank, elem_type, "nan-exact"), fast)
    work = FLOAT if elem_type in HALF else elem_type
    src = x if work == elem_type else b.op("Cast", x, to=work)
    if "windows" in plan.axis_kinds:
        fast = _apply(b, src, plan, rank, work, "matmul")
        # a MatMul's output is finite iff its input is: then it is the answer, else sum per window. A
        # non-finite input cell makes its whole output line along each MatMul'd axis non-finite, so cell 0
        # of those axes tells (with any kept axes whole); their sum s is finite iff they all are (or on an
        # overflow: the exact branch then, no harm), and s - s is NaN where s is not finite
        first = rank - len(plan.out_size)
        lines = [first + k for k, kind in enumerate(plan.axis_kinds) if kind == "windows"]
        probe = b.op("Slice", fast, b.ints([0] * len(lines)), b.ints([1] * len(lines)), b.ints(lines))
        total = reduce(b, "ReduceSum", probe, None, 0)
        spread = b.op("IsNaN", b.op("Sub", total, total))
        y = b.branch(spread, lambda sub: _apply(sub, src, plan, rank, work, "windows"), fast)
    else:  # sums only (global / kept axes): PyTorch's semantics as they stand
        y = _apply(b, src, plan, rank, work, "windows")
    return y if work == elem_type else b.op("Cast", y, to=elem_type)


class BuilderOps:
    """``execute``'s operations (a static plan: slice, pool without padding, concat, copy) written with a
    ``Builder``."""

    def __init__(self, b: Builder):
        self.b = b

    def slice(self, x, dim: int, start: int, stop: int):
        if self.b.opset < 10:  # the bounds were attributes before opset 10
            return self.b.op("Slice", x, axes=[dim], starts=[start], ends=[stop])
        return self.b.op("Slice", x, self.b.ints([start]), self.b.ints([stop]), self.b.ints([dim]))

    def pool(self, x, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]):
        return self.b.op(ONNX_POOL[op], x, kernel_shape=list(kernel), strides=list(stride))

    def concat(self, parts: list, dim: int):
        return self.b.op("Concat", *parts, axis=dim)

    def copy(self, x):
        return self.b.op("Identity", x)


# ---- inside torch's TorchScript exporter ----------------------------------------------------------

def _ts_internals():
    try:  # torch >= 2.9 keeps the TorchScript exporter's internals here
        from torch.onnx._internal.torchscript_exporter import _type_utils, jit_utils, utils
    except ImportError:
        from torch.onnx import _type_utils, utils
        from torch.onnx._internal import jit_utils
    return _type_utils, jit_utils, utils


def scalar_type(x):
    """The element type of ``x`` as the exporter knows it (a ``JitScalarType``)."""
    JitScalarType = _ts_internals()[0].JitScalarType
    return JitScalarType.from_value(x, JitScalarType.FLOAT)


_SUFFIX = {int: "i", float: "f", str: "s"}


class TorchScriptBuilder:
    """``Builder`` over the TorchScript exporter's graph context ``g``."""

    def __init__(self, g, opset: int):
        self.g, self.opset = g, opset

    def op(self, name: str, *inputs, **attrs):
        named = {}
        for key, value in attrs.items():
            kind = _SUFFIX[type(value[0] if isinstance(value, list) else value)]
            named[f"{key}_{kind}"] = value
        return self.g.op(name, *inputs, **named)

    def ints(self, values: list[int]):
        return self.g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

    def number(self, value: float, elem_type: int):
        dtype = _ts_internals()[0].JitScalarType.from_onnx_type(elem_type).dtype()
        return self.g.op("Constant", value_t=torch.tensor(value, dtype=dtype))

    def branch(self, cond, build, otherwise):
        _, jit_utils, utils = _ts_internals()
        out, (then, orelse), _ = jit_utils.add_op_with_blocks(self.g, "If", cond, n_blocks=2)
        utils._add_output_to_block(then.block, build(TorchScriptBuilder(then, self.opset)))
        utils._add_output_to_block(orelse.block, orelse.op("Identity", otherwise))
        return out


def generic_nodes(g, x, plan: GenericPlan, rank: int, opset: int, where: str):
    """``generic_graph`` inside the TorchScript exporter (``g``: its graph context)."""
    if opset < MIN_OPSET:
        raise PoolportError(
            f"{where} with a dynamic spatial size needs ONNX opset >= {MIN_OPSET} (the window bounds read the "
            f"size with Shape(start, end)); export with opset_version={MIN_OPSET} or higher, or keep the size static."
        )
    return generic_graph(TorchScriptBuilder(g, opset), x, plan, rank, int(scalar_type(x).onnx_type()))
