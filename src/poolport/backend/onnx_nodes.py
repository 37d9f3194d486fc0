"""Plans written as ONNX nodes directly (the legalizer's writer): an ``ExplicitPool`` as
``Pad`` + ``AveragePool``/``MaxPool`` + ``Mul`` by its divisor correction; a ``TapPool`` (dilated pooling)
as ``Pad`` + one ``Slice`` per kernel tap + ``Max``/``Sum`` + a 1-wide strided pool (+ ``Mul``); a
``DilatedPlan`` (dilated pooling on sub-lattices) by ``execute_dilated``, an ``ArgmaxPlan``/``UnpoolPlan``
(MaxPool's indices, MaxUnpool) by ``execute_argmax``/``execute_unpool``: the walks torch's forms take too;
an ``LpPlan`` (ONNX LpPool) as ``Abs`` + its power, the explicit or tap form for the window sums, and its root."""

from __future__ import annotations

from math import prod

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.dilated import DilatedPlan
from ..plan.explicit import ExplicitPool
from ..plan.indices import ArgmaxPlan, UnpoolPlan
from ..plan.lppool import LpPlan
from ..plan.taps import TapPool
from .execute import execute_argmax, execute_dilated, execute_explicit, execute_unpool
from .onnx_ops import OnnxIndexOps, OnnxOps


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

    def rename(self, names: dict[str, str]) -> None:
        """Name the tensors ``names`` maps (outputs of nodes written here) as it says."""
        for node in self.nodes:
            node.input[:] = [names.get(n, n) for n in node.input]
            node.output[:] = [names.get(n, n) for n in node.output]

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


def argmax_nodes(plan: ArgmaxPlan, x: str, values: str, plane_index: str, shape: tuple[int, ...], prefix: str,
                 opset: int, onnx_index: str = "") -> tuple[list, list]:
    """Nodes and initializers computing, from float32 ``x`` of ``shape`` (N, C, *spatial), MaxPool's
    ``values`` and each window's first maximum as a float32 flat index within its plane (``plane_index``, as
    torch's indices), by ``execute_argmax``; with ``onnx_index``, ONNX's int64 Indices too: the plane index
    plus the plane's offset ``(n * C + c) * prod(spatial)``, a constant where N (``shape[0]``) is static, else
    computed from the indices' own shape (a CumSum of ones along N: no Shape operator)."""
    emit = NodeEmitter(prefix, opset)
    v, i = execute_argmax(plan, x, OnnxIndexOps(emit), shape[1])
    emit.rename({v: values, i: plane_index})
    if onnx_index:
        n, c = shape[:2]
        unit = [1] * len(plan.axes)
        cast = emit.op("Cast", [plane_index], "cast", "index_int64", to=onnx.TensorProto.INT64)
        if n is not None:
            planes = np.arange(n * c, dtype=np.int64) * prod(shape[2:])
            offsets = emit._init(planes.reshape(n, c, *unit), "plane_offsets")
        else:  # the batch index without Shape: a running sum of ones along N (CumSum), from the indices' own shape
            ones = emit.op("Add", [emit.op("Mul", [cast, emit.ints([0], "zero")], "zeros", "zeros"),
                                   emit.ints([1], "one")], "ones", "ones")
            batch = emit.op("Sub", [emit.op("CumSum", [ones, emit._init(np.array(0, np.int64), "axis")], "cumsum",
                                            "counts"), emit.ints([1], "one_again")], "batch", "batch")
            channel = emit._init((np.arange(c, dtype=np.int64) * prod(shape[2:])).reshape(1, c, *unit),
                                 "channel_offsets")
            offsets = emit.op("Add", [emit.op("Mul", [batch, emit.ints([c * prod(shape[2:])], "batch_stride")],
                                              "batch_offsets", "batch_offsets"), channel], "offsets", "offsets")
        emit.op("Add", [cast, offsets], "offset", "onnx_index")
        emit.rename({emit.nodes[-1].output[0]: onnx_index})
    return emit.nodes, emit.inits


def unpool_nodes(plan: UnpoolPlan, y: str, plane_index: str, out: str, channels: int, prefix: str,
                 opset: int) -> tuple[list, list]:
    """Nodes and initializers computing MaxUnpool's ``out`` from float32 ``y`` (N, ``channels``, *pooled) at
    the float32 per-plane flat ``plane_index`` of ``argmax_nodes``, by ``execute_unpool``."""
    emit = NodeEmitter(prefix, opset)
    z = execute_unpool(plan, y, plane_index, OnnxIndexOps(emit), channels)
    emit.rename({z: out})
    return emit.nodes, emit.inits
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
