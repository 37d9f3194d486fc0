"""Applying legalizer rules to a graph: each AveragePool/MaxPool node some rules match (their patterns) is
replaced by the strongest of their replacements (``replacements``: the highest rank), where its check
passes; else kept, with the reason. The nodes a replacement asks to check again (3-D pooling split into
2-D nodes) go through the rules again. No checking of the model or verification here: that is
``legalize``'s; ``probe`` uses this to measure what each rule's rewrite does in a runtime."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import onnx
from onnx import shape_inference

from ..onnxfile.graph import opset_of
from .attrs import read_attrs

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


def _static(shape: tuple[int | None, ...] | None) -> tuple[int, ...] | None:
    """``shape`` (N, C, *spatial) where C and every spatial size are known (N may not be), else None."""
    if shape is None or len(shape) < 3 or any(n is None for n in shape[1:]):
        return None
    return tuple(shape)


def apply_rules(original: onnx.ModelProto, rules) -> tuple[onnx.ModelProto, list]:
    """A rewritten copy of ``original`` and, per matched node, what was done (PoolRewrite or Kept)."""
    proto = copy.deepcopy(original)
    shapes = _shapes(proto)
    writer = _Writer(rules, opset_of(proto, 1))
    for i, node in enumerate(list(proto.graph.node)):
        if node.op_type not in POOL_OPS or not rules:
            writer.nodes.append(node)
            continue
        name = node.name or node.output[0]
        shape, elem_type = shapes.get(node.input[0], (None, onnx.TensorProto.FLOAT))
        prefix = f"poolport_{i}_{name}".replace("/", "_").replace(":", "_")
        writer.nodes.extend(writer.rewrite(node, _static(shape), elem_type, prefix, name))
    del proto.graph.node[:]
    proto.graph.node.extend(writer.nodes)
    proto.graph.initializer.extend(writer.inits)
    return proto, writer.changes


class _Writer:
    """Collects the rewritten graph: nodes, new initializers and what was done per node."""

    def __init__(self, rules, opset: int):
        self.rules, self.opset = rules, opset
        self.nodes, self.inits, self.changes = [], [], []

    def rewrite(self, node, shape: tuple | None, elem_type: int, prefix: str, name: str) -> list:
        """``node`` as it stays, or its replacement (with the nodes it asks to check again, checked again).
        ``shape`` is the static input shape, None where it is not static."""
        if shape is None:  # patterns see no spatial size, and auto_pad stays unresolved
            spatial, attrs = (), read_attrs(node, None)
        else:
            spatial = tuple(shape[2:])
            attrs = read_attrs(node, spatial, shape[1])
        hit = [r for r in self.rules if r.matches(attrs, spatial)]
        if not hit:
            return [node]
        # the strongest replacement among the rules that match serves them all (replacements: rank)
        rule = max(hit, key=lambda r: r.replacement_for(attrs).rank)
        reason = rule.check(node, attrs, shape, self.opset)
        if reason is not None:
            self.changes.append(Kept(name, f"matches {', '.join(r.name for r in hit)} but {reason}"))
            return [node]
        written = rule.rewrite(node, attrs, shape, self.opset, prefix, elem_type)
        self.inits.extend(written.inits)
        self.changes.append(PoolRewrite(name, tuple(r.name for r in hit), attrs.describe(), written.summary))
        again = {id(p): s for p, s in written.again}
        out = []
        for nd in written.nodes:
            if id(nd) in again:
                out.extend(self.rewrite(nd, again[id(nd)], elem_type, nd.name, f"{name} ({nd.name})"))
            else:
                out.append(nd)
        return out
