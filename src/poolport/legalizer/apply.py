"""Applying legalizer rules to a graph: each pooling node some rules match (their patterns) is
replaced by the strongest of their replacements (``replacements``: the highest rank), where its check
passes and no runtime served is known to compute it wrongly (else by its ``alternative``, where it has one
that is right there); else kept, with the reason. The nodes a
replacement asks to check again (3-D pooling split into 2-D nodes) go through the rules again. No checking
of the model or verification here: that is ``legalize``'s (which refuses kept nodes unless asked to keep
them); ``probe`` uses this, serving no runtime, to measure what each rule's rewrite does in a runtime."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import onnx
from onnx import numpy_helper, shape_inference

from ..onnxfile.graph import opset_of
from .attrs import POOL_OPS, read_attrs  # noqa: F401  (POOL_OPS re-exported)


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
    """A pooling node a rule matched but the legalizer left as it was, and why: ``rules`` (the rules that
    matched it) and ``runtimes`` (where the rewrite is known wrong, if that is why)."""

    node: str
    reason: str
    rules: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()

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


@dataclass
class Graph:
    """What a replacement that reads the graph around its node (MaxUnpool's, which looks for
    the MaxPool its indices come from) may ask: the node writing each tensor (``producers``), the inferred
    shapes and element types, constant values, and ``planes``: per MaxPool Indices tensor rewritten, the
    per-plane float32 index its replacement wrote (so that a MaxUnpool of it reuses it)."""

    producers: dict[str, onnx.NodeProto]
    shapes: dict[str, tuple[tuple[int | None, ...], int]]
    constants: dict[str, onnx.TensorProto]
    planes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, proto: onnx.ModelProto, shapes: dict) -> Graph:
        g = proto.graph
        constants = {t.name: t for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                constants[node.output[0]] = node.attribute[0].t
        return cls({o: n for n in g.node for o in n.output if o}, shapes, constants)

    def elem_type(self, name: str) -> int | None:
        """The ONNX element type of tensor ``name`` (None where not inferred)."""
        return self.shapes.get(name, (None, None))[1]

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        """``name``'s shape where C and its spatial sizes are static (N may not be), else None."""
        return _static(self.shapes.get(name, (None, None))[0])

    def constant(self, name: str):
        """The value of constant ``name`` as a numpy array, None where it is not a constant."""
        t = self.constants.get(name)
        return None if t is None else numpy_helper.to_array(t)


def _inputs(nodes) -> set[str]:
    """Every tensor ``nodes`` read, those their subgraphs (If, Loop, Scan bodies) read from outside included."""
    read = set()
    for n in nodes:
        read.update(n.input)
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                read |= _inputs(g.node)
    return read


def _prune(nodes: list, written: set[int], outputs: set[str]) -> list:
    """``nodes`` without the nodes a replacement wrote (ids in ``written``) whose outputs nothing reads: the
    index form a MaxUnpool's replacement writes again computes values no one reads, and the int64 indices of
    a MaxPool whose only reader was a rewritten MaxUnpool."""
    while True:
        read = outputs | _inputs(nodes)
        keep = [n for n in nodes if id(n) not in written or any(o and o in read for o in n.output)]
        if len(keep) == len(nodes):
            return keep
        nodes = keep


def apply_rules(original: onnx.ModelProto, rules, serves: tuple[str, ...] = (),
                measured: dict[str, dict[str, str]] | None = None) -> tuple[onnx.ModelProto, list]:
    """A rewritten copy of ``original`` and, per matched node, what was done (PoolRewrite or Kept).

    ``serves``: the runtimes the result is for; a rewrite known to be wrong on one of them
    (``Replacement.wrong_on``, or ``measured``: per rule name, runtime -> why, from a probe) is not
    written, the node is kept with the reason. Empty: every rewrite is written (the probe measures them)."""
    proto = copy.deepcopy(original)
    shapes = _shapes(proto)
    writer = _Writer(rules, opset_of(proto, 1), tuple(serves), measured or {}, Graph.of(proto, shapes))
    kinds = frozenset().union(*(r.ops for r in rules)) if rules else frozenset()
    original_nodes = list(proto.graph.node)
    for i, node in enumerate(original_nodes):
        if node.op_type not in kinds:
            writer.nodes.append(node)
            continue
        name = node.name or node.output[0]
        shape, elem_type = shapes.get(node.input[0], (None, onnx.TensorProto.FLOAT))
        prefix = f"poolport_{i}_{name}".replace("/", "_").replace(":", "_")
        writer.nodes.extend(writer.rewrite(node, _static(shape), elem_type, prefix, name))
    written = {id(n) for n in writer.nodes} - {id(n) for n in original_nodes}
    nodes = _prune(writer.nodes, written, {o.name for o in proto.graph.output})
    read = _inputs(nodes)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    proto.graph.initializer.extend(t for t in writer.inits if t.name in read)
    # an initializer only a replaced node read (a rewritten MaxUnpool's output_shape), unless a graph input
    gone = {i for n in original_nodes for i in n.input} - read - {i.name for i in proto.graph.input}
    kept = [t for t in proto.graph.initializer if t.name not in gone]
    if len(kept) < len(proto.graph.initializer):
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)
    return proto, writer.changes


class _Writer:
    """Collects the rewritten graph: nodes, new initializers and what was done per node."""

    def __init__(self, rules, opset: int, serves: tuple[str, ...] = (), measured: dict | None = None,
                 graph: Graph | None = None):
        self.rules, self.opset, self.serves, self.measured = rules, opset, serves, measured or {}
        self.graph = graph
        self.nodes, self.inits, self.changes = [], [], []

    def wrong_on(self, hit, replacement, attrs, shape, written) -> dict[str, str]:
        """The runtimes served where ``written`` (``replacement`` of a node the rules ``hit`` match) is
        known to be wrong, and why."""
        wrong = dict(replacement.wrong_on(attrs, shape, written))
        for r in hit:
            for rt, why in self.measured.get(r.name, {}).items():
                wrong.setdefault(rt, why)
        return {rt: why for rt, why in wrong.items() if rt in self.serves}

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
        # the strongest replacement among the rules that match serves them all (replacements: rank); where it is
        # known wrong on a runtime served, its alternative (a form that removes as much), if it has one
        rule = max(hit, key=lambda r: r.replacement_for(attrs).rank)
        names = tuple(r.name for r in hit)
        reason = rule.check(node, attrs, shape, self.opset, self.graph)
        if reason is not None:
            self.changes.append(Kept(name, f"matches {', '.join(names)} but {reason}", names))
            return [node]
        start, inits = len(self.changes), len(self.inits)
        planes = dict(self.graph.planes) if self.graph is not None else {}
        replacement, whys, runtimes = rule.replacement_for(attrs), [], {}
        while True:
            written = replacement.write(node, attrs, shape, self.opset, prefix, elem_type, self.graph)
            wrong = self.wrong_on(hit, replacement, attrs, shape, written)
            if not wrong:
                break
            if self.graph is not None:
                self.graph.planes = dict(planes)  # what it registered is not written
            whys.append(f"its {replacement.name} form is " + "; ".join(f"wrong on {rt} ({w})" for rt, w in wrong.items()))
            runtimes.update(wrong)
            replacement = replacement.alternative
            if replacement is None or replacement.check(node, attrs, shape, self.opset, self.graph) is not None:
                # no form is right on every runtime served: the node stays as it was
                self.changes.append(Kept(name, f"matches {', '.join(names)} but " + "; ".join(whys), names,
                                         tuple(runtimes)))
                return [node]
        self.inits.extend(written.inits)
        self.changes.append(PoolRewrite(name, names, attrs.describe(), written.summary))
        again = {id(p): s for p, s in written.again}
        out = []
        for nd in written.nodes:
            if id(nd) in again:
                out.extend(self.rewrite(nd, again[id(nd)], elem_type, nd.name, f"{name} ({nd.name})"))
            else:
                out.append(nd)
        kept = [c for c in self.changes[start:] if isinstance(c, Kept)]
        if kept:  # a node of the replacement stays wrong somewhere: keep the original node instead, whole
            del self.changes[start:], self.inits[inits:]
            runtimes = tuple(dict.fromkeys(rt for c in kept for rt in c.runtimes))
            self.changes.append(Kept(name, f"matches {', '.join(names)} but in its {replacement.name} form "
                                     + "; ".join(c.reason for c in kept), names, runtimes))
            if self.graph is not None:
                self.graph.planes = planes
            return [node]
        return out
