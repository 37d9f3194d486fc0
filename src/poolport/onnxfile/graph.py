"""Reading exported ONNX graphs: which operators they use, and which of those are portable."""

from __future__ import annotations

from collections import Counter

# Operators a poolport pooling site may export to (measured correct on ONNX Runtime, OpenVINO,
# LiteRT via onnx2tf, ncnn via pnnx and MNN: docs/runtimes.md), plus the glue torch adds.
PORTABLE_POOLING_OPS = frozenset(
    {
        "Slice",
        "AveragePool",
        "MaxPool",
        "Concat",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Pad",
        "Mul",
        "Unsqueeze",
        "Squeeze",
        "Cast",
        "Identity",
        "Constant",
    }
)

# Operators some runtime cannot load or computes wrongly in pooling formulations.
# ReduceMax: ncnn via pnnx cannot load it (found by poolport's runtime tests, 2026-11-25). ReduceMean
# loads, but a keepdims one at the graph output came back with a wrong shape; pooling sites avoid both.
NON_PORTABLE_OPS = frozenset({"Gather", "GatherND", "GatherElements", "MatMul", "Where", "ScatterND", "ReduceMax"})


def op_counts(model) -> Counter:
    """Operator counts of an ``onnx.ModelProto``, including nodes inside local functions."""
    counts: Counter = Counter(n.op_type for n in model.graph.node)
    for f in model.functions:
        counts.update(n.op_type for n in f.node)
    return counts


def opset_of(model, default: int | None = None) -> int | None:
    """The default-domain ("" / "ai.onnx") opset an ``onnx.ModelProto`` imports, or ``default``."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default)


def output_types(model) -> list[tuple[str, str | None]]:
    """``(name, numpy dtype name)`` of each graph output of an ``onnx.ModelProto``, in order; the dtype is
    None where the graph does not declare it."""
    from onnx import helper

    found = []
    for vi in model.graph.output:
        elem = vi.type.tensor_type.elem_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(elem).name if elem else None
        except (KeyError, TypeError, ValueError):  # a type numpy does not have
            dtype = None
        found.append((vi.name, dtype))
    return found
