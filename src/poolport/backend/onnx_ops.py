"""ONNX nodes written once for both ways poolport writes them: inside torch's TorchScript exporter
(``onnx_symbolic``, ``g.op``) and directly with ``onnx.helper`` (``onnx_nodes``, the legalizer's writer).

Each way is an ``Emitter`` (one node, an int64 constant, a constant of the input's element type);
``OnnxOps`` writes the steps ``execute``, ``execute_explicit`` and ``execute_dilated`` walk (pool, pad, the
divisor correction, slice, reshape, -inf padding) as ONNX operators on any emitter.
"""

from __future__ import annotations

from typing import Any, Protocol

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
