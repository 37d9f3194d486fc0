"""Plans written as ONNX nodes directly (the legalizer's writer): an ``ExplicitPool`` as
``Pad`` + ``AveragePool``/``MaxPool`` + ``Mul`` by its divisor correction; a ``TapPool`` (dilated pooling)
as ``Pad`` + one ``Slice`` per kernel tap + ``Max``/``Sum`` + a 1-wide strided pool (+ ``Mul``); a
``DilatedPlan`` (dilated pooling on sub-lattices) by ``execute_dilated``, the walk torch's form takes too; an
``LpPlan`` (ONNX LpPool) as ``Abs`` + its power, either of the first two for the window sums, and its root."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.dilated import DilatedPlan
from ..plan.explicit import ExplicitPool
from ..plan.lppool import LpPlan
from ..plan.taps import TapPool
from .execute import execute_dilated, execute_explicit
from .onnx_ops import OnnxOps


class NodeEmitter:
    """An ``onnx_ops.Emitter`` that writes ``onnx.helper`` nodes and initializers, each named
    ``{prefix}_{name}`` (``_2``, ``_3``... appended to a name written before); ``finish(y)`` names the last
    node's output ``y``."""

    def __init__(self, prefix: str, opset: int, elem_type: int = onnx.TensorProto.FLOAT):
        self.prefix, self.opset = prefix, opset
        self.dtype = helper.tensor_dtype_to_np_dtype(elem_type)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.used: dict[str, int] = {}

    def _unique(self, name: str) -> str:
        """``{prefix}_{name}``, numbered where a node, output or initializer had that name already."""
        name = f"{self.prefix}_{name}"
        self.used[name] = self.used.get(name, 0) + 1
        return name if self.used[name] == 1 else f"{name}_{self.used[name]}"

    def op(self, op_type: str, inputs: list, name: str, out: str, **attrs) -> str:
        """A node ``{prefix}_{name}`` whose output is ``{prefix}_{out}``."""
        node = helper.make_node(op_type, inputs, [self._unique(out)], name=self._unique(name), **attrs)
        self.nodes.append(node)
        return node.output[0]

    @property
    def floating(self) -> bool:
        """Whether the input's element type is a float type."""
        return bool(np.issubdtype(self.dtype, np.floating))

    @property
    def lowest(self) -> float | int:
        """What max pooling's padding holds in the input's element type (``_lowest``)."""
        return _lowest(self.dtype)

    def _init(self, array: np.ndarray, name: str) -> str:
        self.inits.append(numpy_helper.from_array(array, self._unique(name)))
        return self.inits[-1].name

    def ints(self, values, name: str) -> str:
        """An int64 initializer ``{prefix}_{name}``."""
        return self._init(np.array(values, dtype=np.int64), name)

    def tensor(self, values, shape: tuple[int, ...], name: str) -> str:
        """An initializer ``{prefix}_{name}`` of the input's element type."""
        return self._init(np.array(values).reshape(shape).astype(self.dtype), name)

    def finish(self, y: str) -> tuple[list, list]:
        """``(nodes, initializers)``, the last node writing ``y``."""
        self.nodes[-1].output[0] = y
        return self.nodes, self.inits


def _lowest(dtype) -> float | int:
    """What max pooling's padding holds: -inf for a float ``dtype`` (padding never wins, and a window of -inf
    stays -inf, as in the operator's definition and PyTorch), the lowest value for an integer one."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def explicit_nodes(plan: ExplicitPool, x: str, y: str, opset: int, prefix: str,
                   elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial) by ``plan``. ``elem_type`` is
    the input's ONNX element type (the correction constant takes it)."""
    emit = NodeEmitter(prefix, opset, elem_type)
    execute_explicit(plan, x, OnnxOps(emit))
    return emit.finish(y)


def tap_nodes(plan: TapPool, x: str, y: str, opset: int, prefix: str,
              elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial) by the tap form ``plan``
    (opset 11 or newer: Pad and Slice take their parameters as inputs)."""
    emit = NodeEmitter(prefix, opset, elem_type)
    rank = len(plan.kernel)
    padded = x
    if plan.padded:
        fill = 0 if plan.op == "avg" else _lowest(emit.dtype)
        pads = emit.ints([0, 0, *plan.pads_before, 0, 0, *plan.pads_after], "pads")
        padded = emit.op("Pad", [x, pads, emit.tensor(fill, (), "fill")], "pad", "padded", mode="constant")
    # contiguous Slices (pnnx leaves strided ones unconverted for ncnn), combined, then subsampled by a
    # 1-wide pooling op with the stride (a no-op where every stride is 1)
    strided = any(s != 1 for s in plan.stride)
    axes = emit.ints(list(range(2, 2 + rank)), "axes")
    taps = []
    for t, starts in enumerate(plan.taps()):
        ends = [st + (o - 1) * s + 1 for st, o, s in zip(starts, plan.out_size, plan.stride)]
        bounds = [emit.ints(starts, f"tap{t}_starts"), emit.ints(ends, f"tap{t}_ends")]
        taps.append(emit.op("Slice", [padded, *bounds, axes], f"slice{t}", f"tap{t}"))
    # the output of the last step is named y by finish()
    combined = "combined" if strided else "sum"
    # a chain of two-input Max/Add (pnnx -> ncnn miscomputes variadic Max and Sum)
    op = "Max" if plan.op == "max" else "Add"
    acc = taps[0]
    for t, tap in enumerate(taps[1:], 1):
        acc = emit.op(op, [acc, tap], f"combine{t}", combined if t == len(taps) - 1 else f"acc{t}")
    if len(taps) == 1:
        acc = emit.op("Identity", taps, "combine", combined)
    if strided:
        acc = emit.op("MaxPool", [acc], "subsample", "sum", kernel_shape=[1] * rank, strides=list(plan.stride))
    if plan.op == "avg":
        OnnxOps(emit).scale(acc, plan.factors)
    return emit.finish(y)


def _raise_to(emit: NodeEmitter, x: str, how: tuple[str, float], name: str) -> str:
    """``x`` to a power as ``LpPlan.power``/``root`` say (``p`` >= 1: no Reciprocal): unchanged, Sqrt,
    repeated Muls, or one Pow by a constant of the input's element type."""
    kind, e = how
    if kind == "sqrt":
        return emit.op("Sqrt", [x], name, name)
    if kind == "mul":
        y = x
        for i in range(int(e) - 1):
            y = emit.op("Mul", [y, x], f"{name}{i}", f"{name}{i}")
        return y
    if kind == "pow":
        return emit.op("Pow", [x, emit.tensor(e, (), f"{name}_exponent")], name, name)
    return x


def lp_nodes(plan: LpPlan, x: str, y: str, opset: int, prefix: str,
             elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial) by an ONNX LpPool plan
    (``plan.lppool.onnx_lp_plan``): ``Abs`` where it takes one, the power, the window sums written by
    ``explicit_nodes`` or ``tap_nodes`` (names ``{prefix}_sum_*``), the root."""
    emit = NodeEmitter(prefix, opset, elem_type)
    v = emit.op("Abs", [x], "abs", "abs") if plan.takes_abs else x
    v = _raise_to(emit, v, plan.power, "power")
    sums = y if plan.root[0] == "" else f"{prefix}_sums"
    writer = tap_nodes if isinstance(plan.pool, TapPool) else explicit_nodes
    nodes, inits = writer(plan.pool, v, sums, opset, f"{prefix}_sum", elem_type)
    emit.nodes.extend(nodes)
    emit.inits.extend(inits)
    if plan.root[0] == "":
        return emit.nodes, emit.inits
    _raise_to(emit, sums, plan.root, "root")
    return emit.finish(y)


def dilated_nodes(plan: DilatedPlan, x: str, y: str, opset: int, prefix: str, channels: int,
                  elem_type: int = onnx.TensorProto.FLOAT) -> tuple[list, list]:
    """Nodes and initializers computing ``y`` from ``x`` (N, C, *spatial; N may be symbolic, C is
    ``channels``) by the sub-lattice form ``plan``, walked by ``execute_dilated`` as
    ``torch_pools.apply_dilated`` walks it (opset 11 or newer: Pad and Slice take their parameters as inputs)."""
    emit = NodeEmitter(prefix, opset, elem_type)
    execute_dilated(plan, x, OnnxOps(emit), channels)
    return emit.finish(y)
