"""Applying legalizer rules to a graph: each AveragePool/MaxPool node a rule matches is replaced by the
rule's form (3-D pooling split into 2-D nodes is checked again). No checking or verification here: that is
``legalize``'s; ``probe`` uses this to measure what each rule's rewrite does in a runtime."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import onnx
from onnx import helper, shape_inference

from ..onnxfile.graph import opset_of
from .decompose import pool_3d_as_2d
from .rules import PADS_FORM_RULES, explicit_form, read_attrs

POOL_OPS = ("AveragePool", "MaxPool")


@dataclass(frozen=True)
class PoolRewrite:
    """A pooling node the legalizer replaced by its explicit form, and the rules that asked for it."""

    node: str
    rules: tuple[str, ...]
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.node}: {self.before} -> {self.after} [{', '.join(self.rules)}]"


@dataclass(frozen=True)
class Kept:
    """A pooling node a rule matched but the legalizer left as it was, and why."""

    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node}: kept ({self.reason})"


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[tuple[int | None, ...], int]]:
    inferred = shape_inference.infer_shapes(proto)
    table = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            table[vi.name] = (dims, t.elem_type)
    return table


def apply_rules(original: onnx.ModelProto, rules) -> tuple[onnx.ModelProto, list]:
    """A rewritten copy of ``original`` and, per matched node, what was done (PoolRewrite or Kept)."""
    proto = copy.deepcopy(original)
    shapes = _shapes(proto)
    opset = opset_of(proto, 1)
    writer = _Writer(rules, opset, proto)
    for i, node in enumerate(list(proto.graph.node)):
        if node.op_type not in POOL_OPS or not rules:
            writer.nodes.append(node)
            continue
        name = node.name or node.output[0]
        shape, elem_type = shapes.get(node.input[0], (None, onnx.TensorProto.FLOAT))
        spatial = tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None
        if spatial is None or any(n is None for n in spatial) or any(n is None for n in shape[1:]):
            attrs = read_attrs(node, None)
            hit = [r.name for r in rules if r.pattern(attrs, ())]
            if hit:
                writer.changes.append(Kept(name, f"matches {', '.join(hit)} but its input size is not static"))
            writer.nodes.append(node)
            continue
        prefix = f"poolport_{i}_{name}".replace("/", "_").replace(":", "_")
        writer.nodes.extend(writer.rewrite(node, tuple(shape), elem_type, prefix, name))
    del proto.graph.node[:]
    proto.graph.node.extend(writer.nodes)
    proto.graph.initializer.extend(writer.inits)
    return proto, writer.changes


class _Writer:
    """Collects the rewritten graph: nodes, new initializers and what was done per node."""

    def __init__(self, rules, opset: int, proto: onnx.ModelProto):
        self.rules, self.opset, self.proto = rules, opset, proto
        self.nodes, self.inits, self.changes = [], [], []

    def rewrite(self, node, shape: tuple, elem_type: int, prefix: str, name: str) -> list:
        """``node`` as it stays, or its replacement (3-D pooling split into 2-D nodes checked again)."""
        spatial = tuple(shape[2:])
        attrs = read_attrs(node, spatial, shape[1])
        hit = [r for r in self.rules if r.pattern(attrs, spatial)]
        if not hit:
            return [node]
        names = ", ".join(r.name for r in hit)
        if len(node.output) > 1 and node.output[1]:
            self.changes.append(Kept(name, f"matches {names} but its Indices output is used"))
            return [node]
        if any(r.form == "2d" for r in hit):
            nodes, inits, pools = pool_3d_as_2d(node, attrs, shape, prefix)
            self.inits.extend(inits)
            self.changes.append(PoolRewrite(name, tuple(r.name for r in hit), attrs.describe(),
                                            "Reshape + 2-D pool (H, W) + Reshape + 2-D pool (D) + Reshape"))
            again = {id(p): s for p, s in pools}
            out = []
            for nd in nodes:
                if id(nd) in again:
                    out.extend(self.rewrite(nd, again[id(nd)], elem_type, nd.name, f"{name} ({nd.name})"))
                else:
                    out.append(nd)
            return out
        if attrs.op == "MaxPool" and {r.name for r in hit} <= PADS_FORM_RULES:
            keep = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
            pads = list(attrs.pads_before) + list(attrs.pads_after)
            new = helper.make_node(node.op_type, list(node.input), list(node.output), name=node.name or prefix)
            new.attribute.extend(keep + [helper.make_attribute("pads", pads)])
            self.changes.append(PoolRewrite(name, tuple(r.name for r in hit), attrs.describe(),
                                            f"MaxPool(pads={pads})"))
            return [new]
        if any(d != 1 for d in attrs.dilations) and self.opset < 11:
            self.changes.append(Kept(name, f"matches {names} but a dilated pool is rewritten with opset 11 or newer "
                                           f"(the model has {self.opset})"))
            return [node]
        nodes, inits, summary = explicit_form(node, attrs, shape, self.opset, prefix, elem_type)
        self.inits.extend(inits)
        self.changes.append(PoolRewrite(name, tuple(r.name for r in hit), attrs.describe(), summary))
        return nodes
