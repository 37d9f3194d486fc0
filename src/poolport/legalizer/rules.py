"""Rewrite rules for ONNX pooling nodes whose attributes some runtime computes wrongly.

Each rule: a *pattern* (which AveragePool/MaxPool attribute combinations, for which targets), one
shared *replacement* (the explicit form below), and the caller verifies the whole model numerically.

The explicit form of any AveragePool/MaxPool with static spatial sizes:

    Pad(before, after')  ->  pool(kernel, strides, no pads, ceil_mode=0)  [-> Mul(k / divisor)]

Pad uses zeros for average and edge values for max (every window holds a real cell, so replicated edge
values never change a maximum). ``after'`` is chosen so that the plain pool yields exactly the original
output size; the constant Mul turns each window's sum/k into sum/divisor, with the divisor ONNX Runtime
and PyTorch use (padding counted only with count_include_pad, the ceil_mode overhang never).
Measured in ``../shared/notes/runtimes.md``:

* ``auto_pad`` SAME_UPPER/SAME_LOWER: pnnx -> ncnn pads symmetrically (wrong).
* AveragePool with asymmetric pads and count_include_pad=0: ncnn leaves it unconverted.
* AveragePool with ceil_mode=1 and count_include_pad=1 (where the last window overhangs): OpenVINO and
  ncnn divide that window by the full kernel (wrong).
* MaxPool with asymmetric pads: not measured on ncnn; rewritten for ncnn to stay on measured ground.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..plan.padding import torch_output, torch_windows

from ..targets import TARGETS  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class PoolAttrs:
    op: str  # "AveragePool" | "MaxPool"
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    auto_pad: str
    ceil_mode: bool
    count_include_pad: bool
    dilations: tuple[int, ...]

    @property
    def asymmetric(self) -> bool:
        return self.pads_before != self.pads_after

    def describe(self) -> str:
        parts = [f"k={list(self.kernel)}", f"s={list(self.strides)}"]
        if self.auto_pad not in ("NOTSET", ""):
            parts.append(f"auto_pad={self.auto_pad}")
        if any(self.pads_before) or any(self.pads_after):
            parts.append(f"pads={list(self.pads_before) + list(self.pads_after)}")
        if self.ceil_mode:
            parts.append("ceil_mode=1")
        if self.op == "AveragePool" and self.count_include_pad:
            parts.append("count_include_pad=1")
        return f"{self.op}({', '.join(parts)})"


def read_attrs(node: onnx.NodeProto, spatial: tuple[int, ...] | None) -> PoolAttrs:
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    kernel = tuple(a["kernel_shape"])
    d = len(kernel)
    strides = tuple(a.get("strides", [1] * d))
    pads = tuple(a.get("pads", [0] * (2 * d)))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    before, after = pads[:d], pads[d:]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and spatial is not None:
        b, e = [], []
        for n, k, s in zip(spatial, kernel, strides):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            small = total // 2
            b.append(small if auto_pad == "SAME_UPPER" else total - small)
            e.append(total - b[-1])
        before, after = tuple(b), tuple(e)
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
        dilations=tuple(a.get("dilations", [1] * d)),
    )


def overhangs(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """Does some ceil_mode window reach past the padded end?"""
    if not p.ceil_mode:
        return False
    for n, k, s, b, e in zip(spatial, p.kernel, p.strides, p.pads_before, p.pads_after):
        out = torch_output(n, k, s, b, e, True)
        if (out - 1) * s + k > n + b + e:
            return True
    return False


@dataclass(frozen=True)
class Rule:
    name: str
    targets: frozenset[str]
    why: str
    pattern: Callable[[PoolAttrs, tuple[int, ...]], bool]


RULES = (
    Rule("auto-pad-same", frozenset({"ncnn"}), "pnnx -> ncnn turns auto_pad SAME_* into symmetric padding",
         lambda p, spatial: p.auto_pad in ("SAME_UPPER", "SAME_LOWER")),
    Rule("avg-asymmetric-exclude-pad", frozenset({"ncnn"}),
         "ncnn cannot load AveragePool with asymmetric pads and count_include_pad=0",
         lambda p, spatial: p.op == "AveragePool" and p.asymmetric and not p.count_include_pad),
    Rule("avg-ceil-include-pad", frozenset({"ncnn", "openvino"}),
         "OpenVINO and ncnn divide the ceil_mode overhang window by the full kernel",
         lambda p, spatial: p.op == "AveragePool" and p.count_include_pad and overhangs(p, spatial)),
    Rule("max-asymmetric-pads", frozenset({"ncnn"}), "asymmetric MaxPool pads are not measured on ncnn",
         lambda p, spatial: p.op == "MaxPool" and p.asymmetric),
)


def rules_for(target: str) -> list[Rule]:
    if target == "all":
        return list(RULES)
    return [r for r in RULES if target in r.targets]


def explicit_form(node: onnx.NodeProto, p: PoolAttrs, shape: tuple[int, ...], opset: int, prefix: str,
                  elem_type: int = onnx.TensorProto.FLOAT):
    """Nodes and initializers computing ``node`` as Pad + plain pool (+ Mul). ``shape`` is the full
    static input shape (N, C, *spatial); ``elem_type`` the input's ONNX element type."""
    spatial = shape[2:]
    outs, after_new, factors = [], [], []
    for n, k, s, b, e in zip(spatial, p.kernel, p.strides, p.pads_before, p.pads_after):
        out = torch_output(n, k, s, b, e, p.ceil_mode)
        outs.append(out)
        after_new.append(max((out - 1) * s + k - n - b, 0))
        if p.op == "AveragePool":
            windows = torch_windows(n, k, s, b, e, p.ceil_mode, p.count_include_pad)
            factors.append(np.array([k / w.divisor for w in windows], dtype=np.float64))
    x, y = node.input[0], node.output[0]
    nodes, inits = [], []
    pads = [0, 0, *p.pads_before, 0, 0, *after_new]
    padded = f"{prefix}_padded"
    mode = "constant" if p.op == "AveragePool" else "edge"
    if any(pads):
        if opset >= 11:
            pads_name = f"{prefix}_pads"
            inits.append(numpy_helper.from_array(np.array(pads, dtype=np.int64), pads_name))
            nodes.append(helper.make_node("Pad", [x, pads_name], [padded], name=f"{prefix}_pad", mode=mode))
        else:
            nodes.append(helper.make_node("Pad", [x], [padded], name=f"{prefix}_pad", mode=mode, pads=pads))
    else:
        padded = x
    correction = None
    if factors:
        grid = factors[0]
        for f in factors[1:]:
            grid = np.multiply.outer(grid, f)
        if not np.allclose(grid, 1.0, rtol=0, atol=0):
            correction = grid.reshape((1, 1, *outs))
    pooled = f"{prefix}_pooled" if correction is not None else y
    nodes.append(helper.make_node(p.op, [padded], [pooled], name=f"{prefix}_pool",
                                  kernel_shape=list(p.kernel), strides=list(p.strides)))
    if correction is not None:
        c_name = f"{prefix}_correction"
        np_type = helper.tensor_dtype_to_np_dtype(elem_type)
        inits.append(numpy_helper.from_array(correction.astype(np_type), c_name))
        nodes.append(helper.make_node("Mul", [pooled, c_name], [y], name=f"{prefix}_divisor"))
    return nodes, inits, f"{'Pad + ' if any(pads) else ''}{p.op}{' + Mul' if correction is not None else ''}"
