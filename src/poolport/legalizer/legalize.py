"""The legalizer driver: find pooling nodes that match a rule for the target, replace each by its
explicit form, check with onnx.checker, and verify against the original model with the ONNX reference
evaluator and ONNX Runtime on random inputs. The input model (or file) is never modified."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from ..errors import PoolportError, one_line
from ..export.graph import opset_of
from .rules import TARGETS, explicit_form, read_attrs, rules_for

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


@dataclass
class LegalizeResult:
    """What ``legalize`` returns: the legalized model and, per matched node, what was done with it."""

    model: onnx.ModelProto
    changes: list  # PoolRewrite | Kept, in graph order
    target: str
    verified: bool  # compared with the original under the reference evaluator and ONNX Runtime

    @property
    def rewritten(self) -> list[PoolRewrite]:
        """The nodes replaced by their explicit form."""
        return [c for c in self.changes if isinstance(c, PoolRewrite)]

    @property
    def kept(self) -> list[Kept]:
        """The nodes a rule matched but that were left as they were."""
        return [c for c in self.changes if isinstance(c, Kept)]


def load(model) -> onnx.ModelProto:
    """A copy of ``model`` (a ModelProto or a path) with its weights loaded."""
    if isinstance(model, onnx.ModelProto):
        return copy.deepcopy(model)
    path = Path(model)
    if not path.is_file():
        raise PoolportError(f"{path} does not exist.")
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise PoolportError(f"{path} is not an ONNX model: {type(e).__name__}: {str(e)[:200]}") from None
    if not proto.graph.node and not proto.graph.input:
        raise PoolportError(f"{path} is not an ONNX model (no graph).")
    return proto


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[tuple[int | None, ...], int]]:
    inferred = shape_inference.infer_shapes(proto)
    table = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            table[vi.name] = (dims, t.elem_type)
    return table


def legalize(model: onnx.ModelProto | str | Path, target: str = "all", *, verify: bool = True,
             seed: int = 0) -> LegalizeResult:
    """Rewrite the AveragePool/MaxPool nodes of ``model`` (a ModelProto or a path; never modified) that
    ``target`` ("all", "onnxruntime", "openvino", "tflite", "ncnn", "mnn") computes wrongly into explicit
    equivalent forms.

    Returns a ``LegalizeResult``: ``.model`` (a new ModelProto), ``.changes`` (each node rewritten, or
    kept and why). With ``verify`` (default) the result is compared with the original under the ONNX
    reference evaluator and ONNX Runtime on random inputs.

    Raises:
        PoolportError: unknown target, a file that is not an ONNX model, a model that fails
            onnx.checker, or a legalized model that differs from the original.
    """
    if target not in TARGETS:
        raise PoolportError(f"target must be one of {TARGETS}, got {target!r}.")
    original = load(model)
    try:
        onnx.checker.check_model(original)
    except onnx.checker.ValidationError as e:
        raise PoolportError(f"the input model fails onnx.checker: {one_line(e)}") from e
    proto = copy.deepcopy(original)
    rules = rules_for(target)
    shapes = _shapes(proto)
    opset = opset_of(proto, 1)
    changes: list = []
    new_nodes = []
    for i, node in enumerate(proto.graph.node):
        if node.op_type not in POOL_OPS or not rules:
            new_nodes.append(node)
            continue
        name = node.name or node.output[0]
        shape, elem_type = shapes.get(node.input[0], (None, onnx.TensorProto.FLOAT))
        spatial = tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None
        if spatial is None or any(n is None for n in spatial):
            attrs = read_attrs(node, None)
            hit = [r.name for r in rules if r.pattern(attrs, ())]
            if hit:
                changes.append(Kept(name, f"matches {', '.join(hit)} but its spatial input size is not static"))
            new_nodes.append(node)
            continue
        attrs = read_attrs(node, spatial)
        hit = [r.name for r in rules if r.pattern(attrs, spatial)]
        if not hit:
            new_nodes.append(node)
            continue
        if any(d != 1 for d in attrs.dilations):
            changes.append(Kept(name, f"matches {', '.join(hit)} but uses dilations {list(attrs.dilations)}"))
            new_nodes.append(node)
            continue
        if len(node.output) > 1 and node.output[1]:
            changes.append(Kept(name, f"matches {', '.join(hit)} but its Indices output is used"))
            new_nodes.append(node)
            continue
        prefix = f"poolport_{i}_{name}".replace("/", "_").replace(":", "_")
        nodes, inits, summary = explicit_form(node, attrs, tuple(shape), opset, prefix, elem_type)
        new_nodes.extend(nodes)
        proto.graph.initializer.extend(inits)
        changes.append(PoolRewrite(name, tuple(hit), attrs.describe(), summary))
    del proto.graph.node[:]
    proto.graph.node.extend(new_nodes)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise PoolportError(f"legalized model fails onnx.checker: {one_line(e)}") from e
    verified = verify and any(isinstance(c, PoolRewrite) for c in changes)
    if verified:
        verify_equivalent(original, proto, seed)
    return LegalizeResult(proto, changes, target, verified)


def random_feeds(proto: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Random inputs for every graph input (dynamic dimensions as 1)."""
    rng = np.random.default_rng(seed)
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, dims).astype(dtype)
    return feeds


def verify_equivalent(original: onnx.ModelProto, rewritten: onnx.ModelProto, seed: int = 0, rtol: float = 1e-5) -> float:
    """Max relative difference of the two models under the ONNX reference evaluator and ONNX Runtime."""
    from onnx.reference import ReferenceEvaluator

    feeds = random_feeds(original, seed)
    worst = 0.0
    runners = [("onnx reference evaluator", lambda m: ReferenceEvaluator(m).run(None, feeds))]
    try:
        import onnxruntime as ort

        def run_ort(m):
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            return sess.run(None, feeds)

        runners.append(("onnxruntime", run_ort))
    except ImportError:
        pass
    for label, run in runners:
        want, got = run(original), run(rewritten)
        for w, g in zip(want, got):
            w, g = np.asarray(w, dtype=np.float64), np.asarray(g, dtype=np.float64)
            if w.shape != g.shape:
                raise PoolportError(f"legalize changed an output shape under {label}: {w.shape} -> {g.shape}")
            finite = np.isfinite(w)
            if not np.array_equal(finite, np.isfinite(g)):
                raise PoolportError(f"legalize changed which outputs are finite under {label}")
            if finite.any():
                scale = max(float(np.abs(w[finite]).max()), 1e-30)
                err = float(np.abs(w[finite] - g[finite]).max()) / scale
                worst = max(worst, err)
                if err > rtol:
                    raise PoolportError(f"legalized model differs from the original under {label}: relative {err:.3g}")
    return worst
