"""ONNX nodes written once for both ways poolport writes them: inside torch's TorchScript exporter
(``onnx_symbolic``, ``g.op``) and directly with ``onnx.helper`` (``onnx_nodes``, the legalizer's writer).

Each way is an ``Emitter`` (one node, an int64 constant, a constant of the input's element type);
``OnnxOps`` writes the steps ``execute``, ``execute_explicit`` and ``execute_dilated`` walk (pool, pad, the
divisor correction, slice, reshape, -inf padding) as ONNX operators on any emitter.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..plan.pooling import ONNX_POOL


class Emitter(Protocol):
    """Writes ONNX nodes and constants in one API (``g.op`` or ``onnx.helper``); ``opset`` is the
    opset being written."""

    opset: int

    def op(self, op_type: str, inputs: list, name: str, out: str, **attrs: Any) -> Any:
        """A node ``op_type`` of ``inputs`` with ONNX attributes ``attrs``; returns its output. ``name`` and
        ``out`` name the node and its output, where the emitter names things."""

    def ints(self, values: list[int], name: str) -> Any:
        """A constant 1-D int64 tensor of ``values``."""

    def tensor(self, values: tuple, shape: tuple[int, ...], name: str) -> Any:
        """A constant of ``shape`` (``values`` row-major) in the element type of the input."""


class OnnxOps:
    """The steps of ``execute``/``execute_explicit`` as ONNX operators, written by ``emit``."""

    def __init__(self, emit: Emitter):
        self.emit = emit

    def pool(self, x, op: str, kernel, stride):
        """AveragePool/MaxPool without padding."""
        return self.emit.op(ONNX_POOL[op], [x], "pool", "pooled", kernel_shape=list(kernel), strides=list(stride))

    def pad(self, x, before, after, mode: str):
        """ONNX Pad of the spatial axes (pads as an input from opset 11 on, an attribute before)."""
        pads = [0, 0, *before, 0, 0, *after]
        if self.emit.opset >= 11:
            return self.emit.op("Pad", [x, self.emit.ints(pads, "pads")], "pad", "padded", mode=mode)
        return self.emit.op("Pad", [x], "pad", "padded", mode=mode, pads=pads)

    def slice(self, x, dim, start, stop):
        """ONNX Slice with constant bounds (attributes before opset 10, inputs from 10 on)."""
        if self.emit.opset < 10:
            return self.emit.op("Slice", [x], "slice", "sliced", axes=[dim], starts=[start], ends=[stop])
        bounds = [self.emit.ints([start], "starts"), self.emit.ints([stop], "ends"), self.emit.ints([dim], "axes")]
        return self.emit.op("Slice", [x, *bounds], "slice", "sliced")

    def crop(self, x, stops):
        """One Slice keeping ``[0, stop)`` of each spatial axis (opset 10 or newer)."""
        axes = list(range(2, 2 + len(stops)))
        bounds = [self.emit.ints([0] * len(stops), "crop_starts"), self.emit.ints(list(stops), "crop_ends"),
                  self.emit.ints(axes, "crop_axes")]
        return self.emit.op("Slice", [x, *bounds], "crop", "cropped")

    def reshape(self, x, shape):
        """ONNX Reshape to a constant ``shape`` (-1 first: the batch, which may be symbolic)."""
        return self.emit.op("Reshape", [x, self.emit.ints(list(shape), "shape")], "reshape", "reshaped")

    def pad_lowest(self, x, before, after, lengths, channels):
        """-inf padding as ``torch_pools.pad_lowest`` writes it: a zero Pad + a constant mask (-0.0 on real
        cells, -inf on padding) added to it, since ncnn cannot parse a Pad value of -inf (``v + -0.0`` is
        ``v`` for every v); the mask is (1, L) in 1-D, (H, W) in 2-D, (1, C, D, H, W) in 3-D. An integer
        input (``emit.floating`` false) is padded with its lowest value by the Pad itself (opset 11 or newer)."""
        if not getattr(self.emit, "floating", True):
            pads = self.emit.ints([0, 0, *before, 0, 0, *after], "pads")
            fill = self.emit.tensor(self.emit.lowest, (), "fill")
            return self.emit.op("Pad", [x, pads, fill], "pad", "padded", mode="constant")
        x = self.pad(x, before, after, "constant")
        cells = (-0.0,)
        for b, a, length in zip(before, after, lengths):
            axis = [float("-inf")] * b + [-0.0] * (length - b - a) + [float("-inf")] * a
            cells = tuple(c + v for c in cells for v in axis)
        shape = {1: (1, *lengths), 2: tuple(lengths)}.get(len(lengths), (1, 1, *lengths))
        if len(lengths) == 3:
            cells, shape = cells * channels, (1, channels, *lengths)
        return self.emit.op("Add", [x, self.emit.tensor(cells, shape, "mask")], "mask", "masked")

    def scale(self, x, factors):
        """Mul by the per-cell product of the per-axis ``factors``, a constant of the pooled output's spatial
        shape, broadcasting over N and C: onnx2tf refuses a (1, 1, Ho, Wo) constant after a pool (it transposes
        it to (1, Ho, 1, Wo)); (Ho, Wo) converts (measured)."""
        shape = tuple(len(axis) for axis in factors)
        return self.emit.op("Mul", [x, self.emit.tensor(outer(factors), shape, "correction")], "divisor", "divided")


def outer(factors: tuple[tuple[float, ...], ...]) -> tuple[float, ...]:
    """Per-axis factors multiplied into one factor per cell of their grid, row-major (the last axis fastest),
    axis by axis from the first, in float64 (as ``torch_ops.TorchOps.scale`` multiplies them)."""
    cells = (1.0,)
    for axis in factors:
        cells = tuple(c * f for c in cells for f in axis)
    return cells


class OnnxIndexOps:
    """The steps of ``execute_argmax``/``execute_unpool`` as ONNX operators (opset 11 or newer: Pad, Slice, Clip
    and Resize take their parameters as inputs), written by ``emit``; Python floats become scalar constants
    of the input's element type. Each node gets a name of its own."""

    def __init__(self, emit: Emitter):
        self.emit, self.count, self.scalars = emit, 0, {}

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def _op(self, op_type: str, inputs: list, **attrs):
        self.count += 1
        return self.emit.op(op_type, inputs, f"{op_type.lower()}{self.count}", f"t{self.count}", **attrs)

    def _value(self, v):
        if not isinstance(v, (int, float)):
            return v
        key = repr(float(v))  # -0.0 and 0.0 apart
        if key not in self.scalars:
            self.scalars[key] = self.emit.tensor(float(v), (), self._name("scalar"))
        return self.scalars[key]

    def window(self, x, first, starts, stops):
        axes = list(range(first, first + len(starts)))
        return self._op("Slice", [x, self.emit.ints(list(starts), self._name("starts")),
                                  self.emit.ints(list(stops), self._name("stops")),
                                  self.emit.ints(axes, self._name("axes"))])

    def pad(self, x, before, after, value):
        lead = [0] * 2  # the padded tensors are (N, C, *spatial) or 4-D with the last two padded
        pads = self.emit.ints([*lead, *before, *lead, *after], self._name("pads"))
        return self._op("Pad", [x, pads, self._value(value)], mode="constant")

    def pool(self, x, op, kernel, stride):
        return self._op(ONNX_POOL[op], [x], kernel_shape=list(kernel), strides=list(stride))

    def reshape(self, x, shape):
        return self._op("Reshape", [x, self.emit.ints(list(shape), self._name("shape"))])

    def constant(self, rows, channels, shape=None):
        grid = np.array(rows, dtype=np.float64)
        full = np.broadcast_to(grid, (1, channels, *grid.shape))
        return self.emit.tensor(tuple(full.reshape(-1)), tuple(shape or full.shape), self._name("const"))

    def _binary(self, op_type, a, b):
        return self._op(op_type, [self._value(a), self._value(b)])

    def add(self, a, b):
        return self._binary("Add", a, b)

    def sub(self, a, b):
        return self._binary("Sub", a, b)

    def mul(self, a, b):
        return self._binary("Mul", a, b)

    def maximum(self, a, b):
        return self._binary("Max", a, b)

    def minimum(self, a, b):
        return self._binary("Min", a, b)

    def clip(self, x, low, high):
        return self._op("Clip", [x, self._value(low), self._value(high)])

    def relu(self, x):
        return self._op("Relu", [x])

    def abs(self, x):
        return self._op("Abs", [x])

    def upsample(self, x, scale):
        scales = self.emit.tensor((1.0, 1.0, *map(float, scale)), (4,), self._name("scales"))
        roi = self.emit.tensor((), (0,), self._name("roi"))
        return self._op("Resize", [x, roi, scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                        nearest_mode="floor")
