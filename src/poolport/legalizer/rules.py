"""Rewrite rules for ONNX pooling nodes whose attributes some runtime computes wrongly.

Each rule: a *pattern* (which AveragePool/MaxPool attribute combinations, for which targets), one
shared *replacement* (the explicit form below), and the caller verifies the whole model numerically.

The explicit form of any AveragePool/MaxPool with static spatial sizes:

    Pad(before, after')  ->  pool(kernel, strides, no pads, ceil_mode=0)  [-> Mul(k / divisor)]

Pad uses zeros for average and edge values for max (every window holds a real cell, so replicated edge
values never change a maximum). ``after'`` is chosen so that the plain pool yields exactly the original
output size; the constant Mul turns each window's sum/k into sum/divisor, with the divisor ONNX Runtime
and PyTorch use (padding counted only with count_include_pad, the ceil_mode overhang never).
Measured in ``docs/runtimes.md``:

* ``auto_pad`` SAME_UPPER/SAME_LOWER: pnnx -> ncnn pads symmetrically (wrong).
* AveragePool with asymmetric pads and count_include_pad=0: ncnn leaves it unconverted.
* AveragePool with ceil_mode=1 and count_include_pad=1 (where the last window overhangs): OpenVINO and
  ncnn divide that window by the full kernel (wrong).
* MaxPool with asymmetric pads: not measured on ncnn; rewritten for ncnn to stay on measured ground.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import helper

from ..backend.onnx_nodes import explicit_nodes
from ..plan.padding import ceil_window_in_padding, explicit_torch_pool, onnx_same_pads, torch_output
from .targets import TARGETS  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class PoolAttrs:
    """An AveragePool/MaxPool node's attributes, with ``auto_pad`` resolved into explicit pads where the input size is static."""

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
        return f"{self.op}({', '.join(parts)})"


def read_attrs(node: onnx.NodeProto, spatial: tuple[int, ...] | None) -> PoolAttrs:
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
    """A legalizer rule: which attribute combinations (``pattern``) some ``targets`` compute wrongly, and why."""

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
    Rule("ceil-window-in-padding", frozenset({"ncnn", "openvino"}),
         "with ceil_mode, a last window that starts in the right padding: ONNX drops it, ncnn and OpenVINO "
         "return an extra output cell",
         lambda p, spatial: p.ceil_mode and any(
             ceil_window_in_padding(n, k, s, b, e)
             for n, k, s, b, e in zip(spatial, p.kernel, p.strides, p.pads_before, p.pads_after))),
)


def rules_for(target: str) -> list[Rule]:
    """The rules that apply to ``target`` (every rule for all)."""
    if target == "all":
        return list(RULES)
    return [r for r in RULES if target in r.targets]


def explicit_form(node: onnx.NodeProto, p: PoolAttrs, shape: tuple[int, ...], opset: int, prefix: str,
                  elem_type: int = onnx.TensorProto.FLOAT):
    """Nodes and initializers computing ``node`` as Pad + plain pool (+ Mul): the shared
    ``plan.padding.ExplicitPool`` plan, written by ``backend.onnx_nodes``. ``shape`` is the full static
    input shape (N, C, *spatial); ``elem_type`` the input's ONNX element type."""
    op = "avg" if p.op == "AveragePool" else "max"
    plan = explicit_torch_pool(op, tuple(shape[2:]), p.kernel, p.strides, p.pads_before, p.pads_after,
                               p.ceil_mode, p.count_include_pad)
    nodes, inits = explicit_nodes(plan, node.input[0], node.output[0], opset, prefix, elem_type)
    return nodes, inits, " + ".join(plan.steps())
