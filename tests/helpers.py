"""Shared oracles for the tests: torch's native ops and poolport's numpy reference; what an exported graph
holds."""

import collections
import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poolport.testing import reference

NATIVE = {
    ("avg", 1): F.adaptive_avg_pool1d,
    ("avg", 2): F.adaptive_avg_pool2d,
    ("avg", 3): F.adaptive_avg_pool3d,
    ("max", 1): F.adaptive_max_pool1d,
    ("max", 2): F.adaptive_max_pool2d,
    ("max", 3): F.adaptive_max_pool3d,
}


def resolved(in_size, out_size):
    return tuple(n if o is None else o for n, o in zip(in_size, out_size))


def assert_matches_oracles(x: torch.Tensor, y: torch.Tensor, out_size, op: str, rtol: float = 1e-6):
    """``y`` (poolport) against torch's native op and the float64 numpy reference.

    max: bit-exact. avg: max abs error <= rtol * scale, where scale = max(|x|) (float rounding only:
    a float32 mean of many cells near zero is off by about eps * |x|, torch's native op as much)."""
    d = len(out_size)
    native = NATIVE[op, d](x, out_size)
    ref = reference.adaptive_pool(x.double().numpy(), resolved(x.shape[-d:], out_size), op)
    assert y.shape == native.shape == ref.shape, (y.shape, native.shape, ref.shape)
    assert y.dtype == x.dtype
    if op == "max":
        assert torch.equal(y, native)
        np.testing.assert_array_equal(y.double().numpy(), ref)
    else:
        scale = max(float(x.double().abs().max()) if x.numel() else 0.0, 1e-30)
        err_ref = float(np.abs(y.double().numpy() - ref).max()) / scale
        err_native = float((y.double() - native.double()).abs().max()) / scale
        assert err_ref <= rtol, f"relative error {err_ref:.3g} against numpy > {rtol}"
        assert err_native <= 2 * rtol, f"relative error {err_native:.3g} against torch > {2 * rtol}"


def ops_per_output(proto) -> list[collections.Counter]:
    """For each output of the ONNX graph ``proto``, the operators (Constants aside) between it and the graph
    inputs: what the graph computes that output with."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found = []
    for output in proto.graph.output:
        counts, seen, todo = collections.Counter(), set(), [output.name]
        while todo:
            node = producer.get(todo.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type != "Constant":
                counts[node.op_type] += 1
            todo.extend(node.input)
        found.append(counts)
    return found


# PyTorch's own edge paths (poolport[edge]); CI requires both (POOLPORT_REQUIRE_RUNTIMES)
HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None
HAS_LITERT_TORCH = importlib.util.find_spec("litert_torch") is not None
needs_executorch = pytest.mark.skipif(not HAS_EXECUTORCH, reason="executorch not installed (pip install 'poolport[edge]')")
HAS_NNCF = importlib.util.find_spec("nncf") is not None
needs_nncf = pytest.mark.skipif(not HAS_NNCF, reason="nncf not installed (pip install 'poolport[nncf]')")
needs_litert_torch = pytest.mark.skipif(not HAS_LITERT_TORCH,
                                        reason="litert-torch not installed (pip install 'poolport[edge]')")


def plant_nonfinite(x: torch.Tensor, *, negative_zero: bool = False, negative_inf_column: bool = False) -> torch.Tensor:
    """A copy of ``x`` with inf, -inf and NaN in a few cells away from each other; optionally a -0.0 in the
    last cell and a first column of -inf (a border the -inf padding must not turn finite)."""
    x = x.clone()
    flat = x.view(-1)
    n = flat.numel()
    flat[n // 7] = math.inf
    flat[(3 * n) // 7] = -math.inf
    flat[(5 * n) // 7] = math.nan
    if negative_zero:
        flat[n - 1] = -0.0
    if negative_inf_column:
        x[..., 0] = -math.inf
    return x


def merge_models(models: list) -> tuple:
    """``models`` (onnx.ModelProto, one opset import set and IR version) as one model computing them all side
    by side (``onnx.compose``), each model's names prefixed ``m{i}_``: ``(merged, inputs, outputs)`` with per
    model its input and output names in the merged graph. One conversion instead of one per model: onnx2tf
    and pnnx take seconds per model."""
    import onnx
    from onnx import compose

    parts = [compose.add_prefix(m, f"m{i}_") for i, m in enumerate(models)]
    merged = parts[0]
    for part in parts[1:]:
        merged = compose.merge_models(merged, part, io_map=[])
    onnx.checker.check_model(merged)
    inits = [{t.name for t in p.graph.initializer} for p in parts]
    return (merged, [[v.name for v in p.graph.input if v.name not in init] for p, init in zip(parts, inits)],
            [[v.name for v in p.graph.output] for p in parts])


def run_merged(runtime: str, items: list, alone=frozenset()) -> list:
    """``registry.run_batch(runtime, items)``, faster: the items of one opset run as one merged model
    (``merge_models``; one IR version too), the indices in ``alone`` each on its own (those expected to be refused). Where the
    merged model is refused as a whole, its items run one by one, so each answer is the item's own. A runtime
    harness that matched outputs by position could hand a case another's output: that fails its comparison,
    it cannot pass one (the LiteRT harness does so only where a name is missing from the signature, seen on
    onnx's node cases, which therefore run unmerged; the probe cases come back bit-identical, measured)."""
    from poolport.runtimes.registry import run_batch

    answers: list = [None] * len(items)
    groups: dict = {}
    for i, (model, _) in enumerate(items):
        key = (model.ir_version, tuple(sorted((o.domain, o.version) for o in model.opset_import)))
        groups.setdefault(("alone", i) if i in alone else key, []).append(i)
    merged_items, layouts, singles = [], [], []
    for key, idx in groups.items():
        if len(idx) == 1:
            singles.append(idx[0])
            continue
        merged, ins, outs = merge_models([items[i][0] for i in idx])
        feeds = {n: items[i][1][orig.name] for k, i in enumerate(idx)
                 for n, orig in zip(ins[k], [v for v in items[i][0].graph.input
                                             if v.name not in {t.name for t in items[i][0].graph.initializer}])}
        merged_items.append((merged, feeds))
        layouts.append((idx, outs))
    for (idx, outs), got in zip(layouts, run_batch(runtime, merged_items)):
        got = [] if isinstance(got, Exception) else list(got)
        if len(got) != sum(map(len, outs)):  # refused as a whole: its parts run one by one
            singles.extend(idx)
            continue
        k = 0
        for i, names in zip(idx, outs):
            answers[i], k = got[k:k + len(names)], k + len(names)
    for i, got in zip(singles, run_batch(runtime, [items[i] for i in singles])):
        answers[i] = got
    return answers

