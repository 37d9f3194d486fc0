"""Rewrite rules for ONNX pooling nodes whose attributes some runtime computes wrongly.

Each rule: a *pattern* (which AveragePool/MaxPool attribute combinations, for which targets), a
*replacement* (``Rule.form``), and the caller verifies the whole model numerically.

The explicit form of any AveragePool/MaxPool with static spatial sizes:

    Pad(before, after')  ->  pool(kernel, strides, no pads, ceil_mode=0)  [-> Mul(k / divisor)]

Pad uses zeros for average and edge values for max (every window holds a real cell, so replicated edge
values never change a maximum). ``after'`` is chosen so that the plain pool yields exactly the original
output size; the constant Mul turns each window's sum/k into sum/divisor, with the divisor ONNX Runtime
and PyTorch use (padding counted only with count_include_pad, the ceil_mode overhang never).
Dilated pooling takes the tap form instead (``plan.taps.TapPool``), and 3-D pooling for MNN and LiteRT
becomes two 2-D pooling ops (``legalizer.decompose``) that the other rules then check again.

The ``targets`` of each rule are what was measured (docs/runtimes.md, ``poolport probe``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import helper

from ..backend.onnx_nodes import explicit_nodes, tap_nodes
from ..plan.explicit import explicit_torch_pool
from ..plan.pads import ceil_window_in_padding, torch_output
from ..plan.same import onnx_same_pads
from ..plan.taps import tap_pool
from ..runtimes.registry import ALIASES
from .targets import TARGETS  # noqa: F401  (TARGETS re-exported)


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
    channels: int | None = None  # the input's channel count, where static (onnx2tf guesses layouts from shapes)

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
    )


def extents(p: PoolAttrs) -> tuple[int, ...]:
    """Each axis' window extent: the kernel with its dilation, ``(k - 1) * d + 1``."""
    return tuple((k - 1) * d + 1 for k, d in zip(p.kernel, p.dilations))


def overhangs(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """Does some ceil_mode window reach past the padded end (window extents counting dilations)?"""
    if not p.ceil_mode:
        return False
    for n, k, s, b, e in zip(spatial, extents(p), p.strides, p.pads_before, p.pads_after):
        out = torch_output(n, k, s, b, e, True)
        if (out - 1) * s + k > n + b + e:
            return True
    return False


def window_in_padding(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """With ceil_mode, does a last window start in the right padding (window extents counting dilations)?"""
    return p.ceil_mode and any(ceil_window_in_padding(n, k, s, b, e) for n, k, s, b, e in
                               zip(spatial, extents(p), p.strides, p.pads_before, p.pads_after))


@dataclass(frozen=True)
class Rule:
    """A legalizer rule: which attribute combinations (``pattern``) some ``targets`` compute wrongly, and
    why. ``form`` is the replacement: "explicit" (Pad + plain pool + Mul), "taps" (dilated pooling as
    Slices + Max/Add + Mul), "2d" (3-D pooling as two 2-D pooling ops, then checked again) or "pads"
    (auto_pad written out as explicit pads: MaxPool under the auto-pad rules only)."""

    name: str
    targets: frozenset[str]
    why: str
    pattern: Callable[[PoolAttrs, tuple[int, ...]], bool]
    form: str = "explicit"


def unambiguous_avg_3d(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """A 3-D AveragePool without pads, or dilated, whose 2-D form onnx2tf can lay out: no tensor of the form
    (input, folded input, the 2-D halves' outputs, output) has all its non-batch sizes equal (onnx2tf guesses
    channels-first or -last from shapes, and guesses wrong for C == D == H == W, measured)."""
    if len(p.kernel) != 3 or p.op != "AveragePool":
        return False
    if (any(p.pads_before) or any(p.pads_after)) and all(d == 1 for d in p.dilations):
        return False
    if p.channels is None or not spatial:
        return True
    c, (d, h, w) = p.channels, spatial
    do, ho, wo = (torch_output(n, e, s, b, a, p.ceil_mode) for n, e, s, b, a in
                  zip(spatial, extents(p), p.strides, p.pads_before, p.pads_after))
    shapes = [(c, d, h, w), (c * d, h, w), (c * d, ho, wo), (c, d, ho * wo), (c, do, ho * wo), (c, do, ho, wo)]
    return all(len(set(s)) > 1 for s in shapes)


def _same(kind):
    return lambda p, spatial: p.auto_pad == kind


PADS_FORM_RULES = frozenset({"auto-pad-same-upper", "auto-pad-same-lower"})


RULES = (
    Rule("pool-3d-as-2d", frozenset({"mnn"}),
         "MNN 3.6 crashes on a 3-D pool without pads, ignores 3-D ceil_mode and divides 3-D average pooling with "
         "pads wrongly; it computes 2-D pooling right", lambda p, spatial: len(p.kernel) == 3, "2d"),
    Rule("avg-3d-as-2d", frozenset({"litert"}),
         "onnx2tf refuses 3-D AveragePool without pads where the windows do not tile the input and ignores 3-D "
         "dilations; it computes the two 2-D pools (and their dilated tap form) right. Not where a tensor's sizes "
         "are all equal: onnx2tf then guesses the layout of the Reshapes wrongly", unambiguous_avg_3d, "2d"),
    Rule("dilated-pool", frozenset({"mnn", "litert"}),
         "MNN ignores dilations; onnx2tf ignores them for AveragePool and refuses large dilated MaxPool (pnnx "
         "leaves dilated pooling unconverted for ncnn, which refuses it loudly; the tap form is wrong there too). "
         "Not 3-D average pooling: onnx2tf computes its tap form wrongly as well (MNN gets it as 2-D pooling)",
         lambda p, spatial: any(d != 1 for d in p.dilations) and not (p.op == "AveragePool" and len(p.kernel) == 3),
         "taps"),
    # MaxPool under only these two rules takes the "pads" form (explicit pads, no Pad node): MNN and onnx2tf
    # compute asymmetric MaxPool pads right, and onnx2tf misplaces a Pad node where C == H == W (measured);
    # for ncnn, max-asymmetric-pads also matches and the Pad form is written
    Rule("auto-pad-same-upper", frozenset({"ncnn", "mnn"}),
         "pnnx -> ncnn turns auto_pad SAME_UPPER into symmetric padding; MNN pads it wrongly for some kernels "
         "(k2 s1)", _same("SAME_UPPER")),
    Rule("auto-pad-same-lower", frozenset({"ncnn", "mnn", "litert"}),
         "ncnn, MNN and onnx2tf compute auto_pad SAME_LOWER with the wrong padding or output size",
         _same("SAME_LOWER")),
    Rule("avg-asymmetric-exclude-pad", frozenset({"ncnn"}),
         "ncnn cannot load AveragePool with asymmetric pads and count_include_pad=0",
         lambda p, spatial: p.op == "AveragePool" and p.asymmetric and not p.count_include_pad),
    Rule("avg-asymmetric-include-pad", frozenset({"ncnn", "mnn"}),
         "ncnn cannot load AveragePool with asymmetric pads and count_include_pad=1; MNN divides it wrongly",
         lambda p, spatial: p.op == "AveragePool" and p.asymmetric and p.count_include_pad),
    Rule("avg-ceil-include-pad", frozenset({"ncnn", "openvino"}),
         "OpenVINO and ncnn divide the ceil_mode overhang window by the full kernel",
         lambda p, spatial: p.op == "AveragePool" and p.count_include_pad and overhangs(p, spatial)),
    Rule("max-asymmetric-pads", frozenset({"ncnn"}),
         "ncnn computes MaxPool with asymmetric pads with the wrong output size where an axis pads more before "
         "than after, or pads both sides unequally (measured); the Pad form is right",
         lambda p, spatial: p.op == "MaxPool" and p.asymmetric),
    Rule("ceil-window-in-padding", frozenset({"ncnn", "openvino", "mnn"}),
         "with ceil_mode, a last window that starts in the right padding: ONNX drops it, ncnn, OpenVINO and MNN "
         "return an extra output cell", window_in_padding),
)


def case_matches(rule: Rule, case) -> bool:
    """Whether ``rule``'s pattern matches a probe case (``legalizer.probe.ProbeCase``)."""
    if case.op not in ("AveragePool", "MaxPool"):
        return False
    model = case.model()
    spatial = tuple(case.shape[2:])
    return rule.pattern(read_attrs(model.graph.node[0], spatial, case.shape[1]), spatial)


def rules_for(target: str) -> list[Rule]:
    """The rules that apply to ``target`` (every rule for all; ``tflite`` is ``litert``). The sets are what
    was measured (docs/runtimes.md); ``legalize(target="auto")`` probes the installed runtimes instead."""
    target = ALIASES.get(target, target)
    if target == "all":
        return list(RULES)
    return [r for r in RULES if target in r.targets]


def explicit_form(node: onnx.NodeProto, p: PoolAttrs, shape: tuple[int, ...], opset: int, prefix: str,
                  elem_type: int = onnx.TensorProto.FLOAT):
    """Nodes and initializers computing ``node`` as Pad + plain pool (+ Mul): the shared
    ``plan.explicit.ExplicitPool`` plan, written by ``backend.onnx_nodes``. ``shape`` is the full static
    input shape (N, C, *spatial); ``elem_type`` the input's ONNX element type."""
    op = "avg" if p.op == "AveragePool" else "max"
    if any(d != 1 for d in p.dilations):
        plan = tap_pool(op, tuple(shape[2:]), p.kernel, p.strides, p.dilations, p.pads_before, p.pads_after,
                        p.ceil_mode, p.count_include_pad)
        nodes, inits = tap_nodes(plan, node.input[0], node.output[0], max(opset, 11), prefix, elem_type)
        return nodes, inits, " + ".join(plan.steps())
    plan = explicit_torch_pool(op, tuple(shape[2:]), p.kernel, p.strides, p.pads_before, p.pads_after,
                               p.ceil_mode, p.count_include_pad)
    nodes, inits = explicit_nodes(plan, node.input[0], node.output[0], opset, prefix, elem_type)
    return nodes, inits, " + ".join(plan.steps())
