"""A pooling node's attributes as the legalizer reads them (``PoolAttrs``): what rules' patterns match on
and what replacements are written from, with ``auto_pad`` resolved into explicit pads where the input
size is static."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

from ..plan.same import onnx_same_pads

POOL_OPS = ("AveragePool", "MaxPool")  # what rules match unless they name other node kinds (``Rule.ops``)


@dataclass(frozen=True)
class PoolAttrs:
    """A pooling node's attributes (AveragePool, MaxPool, LpPool: what rules match), with ``auto_pad`` resolved into explicit pads where the input size is static."""

    op: str  # "AveragePool" | "MaxPool"
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    auto_pad: str
    ceil_mode: bool
    count_include_pad: bool
    dilations: tuple[int, ...]
    channels: int | None = None  # the input's channel count, where static (onnx2tf guesses layouts from shapes)
    indices: bool = False  # whether a MaxPool's Indices output is used
    norm: int = 2  # an LpPool's p

    @property
    def asymmetric(self) -> bool:
        """Whether some axis pads differently before and after."""
        return self.pads_before != self.pads_after

    def describe(self) -> str:
        """The attributes as a short text for reports."""
        parts = [f"k={list(self.kernel)}", f"s={list(self.strides)}"]
        if self.auto_pad not in ("NOTSET", ""):
            parts.append(f"auto_pad={self.auto_pad}")
        if any(self.pads_before) or any(self.pads_after):
            parts.append(f"pads={list(self.pads_before) + list(self.pads_after)}")
        if self.ceil_mode:
            parts.append("ceil_mode=1")
        if self.op == "AveragePool" and self.count_include_pad:
            parts.append("count_include_pad=1")
        if self.op == "LpPool":
            parts.append(f"p={self.norm}")
        return f"{self.op}({', '.join(parts)})"


def read_attrs(node: onnx.NodeProto, spatial: tuple[int, ...] | None, channels: int | None = None) -> PoolAttrs:
    """The attributes of ``node``; ``spatial`` (the static input size) resolves ``auto_pad`` SAME_*."""
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    kernel = tuple(a["kernel_shape"])
    d = len(kernel)
    strides = tuple(a.get("strides", [1] * d))
    pads = tuple(a.get("pads", [0] * (2 * d)))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    before, after = pads[:d], pads[d:]
    dilations = tuple(a.get("dilations", [1] * d))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and spatial is not None:
        pairs = [onnx_same_pads(n, k, s, auto_pad, dl) for n, k, s, dl in zip(spatial, kernel, strides, dilations)]
        before, after = tuple(b for b, _ in pairs), tuple(e for _, e in pairs)
    elif auto_pad == "VALID":
        before, after = (0,) * d, (0,) * d
    return PoolAttrs(
        op=node.op_type,
        kernel=kernel,
        strides=strides,
        pads_before=tuple(before),
        pads_after=tuple(after),
        auto_pad=auto_pad,
        ceil_mode=bool(a.get("ceil_mode", 0)),
        count_include_pad=bool(a.get("count_include_pad", 0)),
        dilations=dilations,
        channels=channels,
        indices=len(node.output) > 1 and bool(node.output[1]),
        norm=int(a.get("p", 2)),
    )


def extents(p: PoolAttrs) -> tuple[int, ...]:
    """Each axis' window extent: the kernel with its dilation, ``(k - 1) * d + 1``."""
    return tuple((k - 1) * d + 1 for k, d in zip(p.kernel, p.dilations))
