"""Rewrite rules for ONNX pooling nodes whose attributes some runtime computes wrongly.

Each rule, as onnxscript's rewriter has them, is a *pattern*, a *check* and a *replacement*:

* ``pattern``: which AveragePool/MaxPool attribute combinations (``attrs.PoolAttrs``) its ``targets``
  compute wrongly, and ``why`` (what was measured: docs/runtimes.md, ``poolport probe``);
* ``check``: whether the replacement can be written for a node, and the reason where it cannot (the
  node is then kept and reported);
* ``replacement``: what is written instead (``replacements``: the explicit Pad + pool + Mul form, the
  dilated tap form, auto_pad written out as pads, or 3-D pooling as two 2-D pooling ops that the other
  rules then check again).

The explicit form of any AveragePool/MaxPool with static spatial sizes:

    Pad(before, after')  ->  pool(kernel, strides, no pads, ceil_mode=0)  [-> Mul(k / divisor)]

Pad uses zeros for average and edge values for max (every window holds a real cell, so replicated edge
values never change a maximum). ``after'`` is chosen so that the plain pool yields exactly the original
output size; the constant Mul turns each window's sum/k into sum/divisor, with the divisor ONNX Runtime
and PyTorch use (padding counted only with count_include_pad, the ceil_mode overhang never).
``apply.apply_rules`` applies rules to a graph; the caller verifies the whole model numerically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

from ..plan.pads import ceil_window_in_padding, torch_output
from ..runtimes.registry import ALIASES
from .attrs import POOL_OPS, PoolAttrs, extents, read_attrs
from .decompose import layout_ambiguous
from .replacements import ARGMAX, AS_2D, EXPLICIT, LATTICE, LP_FORM, PADS, TAPS, UNPOOL, Replacement, Written
from .targets import TARGETS  # noqa: F401  (TARGETS re-exported)


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
    """A legalizer rule: the attribute combinations (``pattern``) some ``targets`` compute wrongly, and
    ``why``; its ``replacement`` (``replacements.EXPLICIT`` by default) and that replacement's check.

    ``pattern(p, spatial)`` takes a node's attributes and its static spatial input size (``()`` where it
    is not static); it is asked only of nodes whose kind is in ``ops``."""

    name: str
    targets: frozenset[str]
    why: str
    pattern: Callable[[PoolAttrs, tuple[int, ...]], bool]
    replacement: Replacement = EXPLICIT
    ops: frozenset[str] = frozenset(POOL_OPS)

    def matches(self, p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
        """Whether a node with attributes ``p`` on input ``spatial`` is one the targets compute wrongly."""
        return p.op in self.ops and self.pattern(p, spatial)

    def replacement_for(self, p: PoolAttrs) -> Replacement:
        """What this rule writes for a node with attributes ``p`` (``Replacement.resolve``); a MaxPool whose
        Indices output is used takes the index form whatever the rule (the other forms compute values only)."""
        if p.op == "MaxPool" and p.indices:
            return ARGMAX
        return self.replacement.resolve(p)

    def check(self, node: onnx.NodeProto, p: PoolAttrs, shape: tuple | None, opset: int,
              graph=None) -> str | None:
        """Why the replacement cannot be written for ``node`` (input ``shape``, None where not static; the
        model's ``opset``; ``graph``, an ``apply.Graph``, for a replacement that reads the graph around the
        node), or None where it can."""
        return self.replacement_for(p).check(node, p, shape, opset, graph)

    def rewrite(self, node: onnx.NodeProto, p: PoolAttrs, shape: tuple, opset: int, prefix: str,
                elem_type: int = onnx.TensorProto.FLOAT, graph=None) -> Written:
        """``node`` written as the replacement (after ``check``): new names start with ``prefix``, constants
        take the input's ONNX ``elem_type``."""
        return self.replacement_for(p).write(node, p, shape, opset, prefix, elem_type, graph)


def avg_3d_for_litert(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """A 3-D AveragePool, unless a tensor of its 2-D form has all its sizes equal (``decompose.layout_ambiguous``):
    onnx2tf refuses 3-D average pooling with pads (except count_include_pad=1 without ceil_mode: "Index out of
    range using input dim 5") or without pads where the windows do not tile the input, and ignores 3-D
    dilations; it computes the 2-D form right. Where the 2-D form is layout-ambiguous, onnx2tf lays it out
    wrongly: a dilated node is then kept (``As2d.wrong_on``: the legalizer fails closed), an undilated one
    left alone (onnx2tf refuses it loudly or computes it right, measured)."""
    if len(p.kernel) != 3 or p.op != "AveragePool":
        return False
    if any(d != 1 for d in p.dilations):
        return True
    return p.channels is None or not spatial or not layout_ambiguous(p, p.channels, spatial)


def _lp_padded_or_dilated(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """Some padding (auto_pad SAME_* included) or some dilation."""
    return (any(p.pads_before) or any(p.pads_after) or p.auto_pad.startswith("SAME")
            or any(d != 1 for d in p.dilations))


def _lp_for_mnn(p: PoolAttrs, spatial: tuple[int, ...]) -> bool:
    """Asymmetric pads (auto_pad SAME_* included), ceil_mode, dilations or 3-D."""
    return (p.asymmetric or p.auto_pad.startswith("SAME") or p.ceil_mode or any(d != 1 for d in p.dilations)
            or len(p.kernel) == 3)


def _same(kind):
    return lambda p, spatial: p.auto_pad == kind


RULES = (
    Rule("pool-3d-as-2d", frozenset({"mnn"}),
         "MNN 3.6 crashes on a 3-D pool without pads, ignores 3-D ceil_mode and divides 3-D average pooling with "
         "pads wrongly; it computes 2-D pooling right", lambda p, spatial: len(p.kernel) == 3, AS_2D),
    Rule("avg-3d-as-2d", frozenset({"litert"}),
         "onnx2tf refuses 3-D AveragePool with pads (but count_include_pad=1 without ceil_mode) or without pads "
         "where the windows do not tile the input, and ignores 3-D dilations; it computes the two 2-D pools (and "
         "their dilated tap form) right, except where a tensor's sizes are all equal: onnx2tf then guesses the layout of the Reshapes wrongly (a dilated node is kept, an "
         "undilated one left alone)",
         avg_3d_for_litert, AS_2D),
    Rule("dilated-pool", frozenset({"litert"}),
         "onnx2tf ignores dilations for AveragePool and refuses large dilated MaxPool; it computes the tap form "
         "right, the sub-lattice form (dilated-pool-lattice) wrongly at some sizes. "
         "Not 3-D average pooling: onnx2tf computes its tap form wrongly as well (avg-3d-as-2d makes it 2-D)",
         lambda p, spatial: any(d != 1 for d in p.dilations) and not (p.op == "AveragePool" and len(p.kernel) == 3),
         TAPS),
    # a MaxPool these two rules match gets its auto_pad written out as pads (no Pad node): MNN and onnx2tf
    # compute asymmetric MaxPool pads right, and onnx2tf misplaces a Pad node where C == H == W (measured);
    # for ncnn, max-asymmetric-pads also matches and its explicit form (the Pad form) is written
    Rule("auto-pad-same-upper", frozenset({"ncnn", "mnn"}),
         "pnnx -> ncnn turns auto_pad SAME_UPPER into symmetric padding; MNN pads it wrongly for some kernels "
         "(k2 s1)", _same("SAME_UPPER"), PADS),
    Rule("auto-pad-same-lower", frozenset({"ncnn", "mnn", "litert"}),
         "ncnn, MNN and onnx2tf compute auto_pad SAME_LOWER with the wrong padding or output size",
         _same("SAME_LOWER"), PADS),
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
    # written as plan.indices' form (replacements.ARGMAX); LiteRT keeps the node (that form is wrong there too)
    Rule("max-indices", frozenset({"mnn", "litert", "ncnn"}),
         "MNN and onnx2tf compute MaxPool's Indices output wrongly on a batch of 2 (measured 2026-12-05: MNN most "
         "indices without the plane offset and its padded values wrong, 3-D crashes; onnx2tf most indices); pnnx "
         "leaves it unconverted for ncnn", lambda p, spatial: p.op == "MaxPool" and p.indices, ARGMAX),
    Rule("ceil-window-in-padding", frozenset({"ncnn", "openvino", "mnn"}),
         "with ceil_mode, a last window that starts in the right padding: ONNX drops it, ncnn, OpenVINO and MNN "
         "return an extra output cell", window_in_padding),
    Rule("dilated-pool-lattice", frozenset({"ncnn", "mnn"}),
         "pnnx leaves dilated pooling unconverted (ncnn refuses it loudly) and ncnn computes the tap form with the "
         "wrong output shape; MNN ignores dilations. The sub-lattice form (Reshape + contiguous Slice + plain "
         "pools) is exact on both, and on MNN faster than the tap form (measured)",
         lambda p, spatial: any(d != 1 for d in p.dilations), LATTICE),
    # ONNX LpPool nodes (measured 2026-12-05, docs/runtimes.md): written as |x| ** p, window sums, ** (1 / p)
    Rule("lppool", frozenset({"ncnn"}), "pnnx leaves LpPool unconverted: ncnn cannot load it",
         lambda p, spatial: True, LP_FORM, frozenset({"LpPool"})),
    Rule("lppool-pads", frozenset({"litert"}),
         "onnx2tf computes LpPool with pads wrongly (0.14-0.64 of the output's scale; also SAME_UPPER/SAME_LOWER) "
         "and refuses some dilated ones", _lp_padded_or_dilated, LP_FORM, frozenset({"LpPool"})),
    Rule("lppool-mnn", frozenset({"mnn"}),
         "MNN computes LpPool with asymmetric pads (and SAME_UPPER/SAME_LOWER) or ceil_mode wrongly, ignores its "
         "dilations and refuses 3-D LpPool", _lp_for_mnn, LP_FORM, frozenset({"LpPool"})),
    Rule("lppool-ceil", frozenset({"openvino"}), "OpenVINO computes LpPool's ceil_mode overhang window wrongly",
         overhangs, LP_FORM, frozenset({"LpPool"})),
    Rule("max-unpool", frozenset({"openvino", "ncnn", "mnn", "litert"}),
         "OpenVINO and pnnx (ncnn) cannot convert MaxUnpool, onnx2tf refuses it with a pads attribute or at 3-D; "
         "MNN computes it wrongly (measured 2026-12-05: 1-D to 3-D, with and without output_shape)",
         lambda p, spatial: True, UNPOOL,
         frozenset({"MaxUnpool"})),
)


def case_matches(rule: Rule, case) -> bool:
    """Whether ``rule``'s pattern matches a probe case (``legalizer.probe.ProbeCase``)."""
    if case.op not in rule.ops:
        return False
    model = case.model()
    spatial = tuple(case.shape[2:])
    return rule.matches(read_attrs(model.graph.node[0], spatial, case.shape[1]), spatial)


def rules_for(target: str) -> list[Rule]:
    """The rules that apply to ``target`` (every rule for all; ``tflite`` is ``litert``). The sets are what
    was measured (docs/runtimes.md); ``legalize(target="auto")`` probes the installed runtimes instead."""
    target = ALIASES.get(target, target)
    if target == "all":
        return list(RULES)
    return [r for r in RULES if target in r.targets]
