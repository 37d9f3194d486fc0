"""inf, -inf and NaN follow PyTorch at every size: the size-generic graphs (dynamic H/W, both exporters, and
torch ops for torch.export) change only the windows that hold a non-finite cell, exactly as torch's native
op does. Each graph is exported once and run at sizes other than the exported one (non-square ones, and
ones smaller than the output), with inf/-inf/NaN planted in chosen cells; oracle: torch's native
adaptive op at that size on the same input."""


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import NATIVE
from torch import nn

import poolport
from poolport.backend.torch_generic import apply_generic
from poolport.cli.terminal import quiet
from poolport.plan.generic import plan_generic

EXPORTED_AT = 9
# per pooled rank: sizes to run at, other than EXPORTED_AT, non-square, some smaller than the outputs (5)
RUN_AT = {1: [(4,), (13,), (2,), (1,)], 2: [(6, 11), (3, 2), (13, 8), (1, 1)], 3: [(3, 5, 4), (2, 6, 9), (7, 3, 2)]}
OUTPUTS = {1: [1, 2, 3, 5], 2: [1, 2, 3, 5, (None, 3), (1, 4)], 3: [1, 2, 5, (None, 1, 3), (2, 1, 4)]}
CHANNELS = 7  # unlike any spatial size


def plant(x: torch.Tensor) -> torch.Tensor:
    """One channel per pattern: +inf in a corner, -inf in the middle, NaN in the last cell, +inf and -inf at
    opposite corners, NaN beside +inf, +inf and -inf side by side (one window: NaN for avg), all finite."""
    x = x.clone()
    spatial = x.shape[2:]
    first, mid, last = (0,) * len(spatial), tuple(n // 2 for n in spatial), tuple(n - 1 for n in spatial)
    inf, nan = float("inf"), float("nan")
    x[(0, 0, *first)] = inf
    x[(0, 1, *mid)] = -inf
    x[(0, 2, *last)] = nan
    x[(0, 3, *first)], x[(0, 3, *last)] = inf, -inf
    x[(0, 4, *mid)], x[(0, 4, *first)] = nan, inf
    x[(0, 5, *last)] = inf
    x[(0, 5, *last[:-1], max(0, last[-1] - 1))] = -inf  # the same cell where the last axis has size 1: -inf
    return x


def assert_same_pattern(got, want, what):
    """Equal shapes, NaN at the same places, +inf and -inf at the same places, finite values close."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        np.testing.assert_array_equal(test(got), test(want), err_msg=f"{name} cells differ: {what}")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6, err_msg=what)


# torch.export itself specialises a dynamic axis that a native adaptive *max* op keeps with None (its
# schema takes int[] output sizes, not SymInt[]): unmodified models get int sizes there
INT_OUTPUTS = {d: [o for o in sizes if isinstance(o, int) or None not in o] for d, sizes in OUTPUTS.items()}


class ThreeRanks(nn.Module):
    """Adaptive ``op`` pooling (torch's functions: poolport's once made portable) of a 1-D, a 2-D and a 3-D
    input, to every size in ``outputs``."""

    def __init__(self, op, outputs=OUTPUTS):
        super().__init__()
        self.op, self.outputs = op, outputs

    def forward(self, x1, x2, x3):
        return tuple(NATIVE[self.op, d](x, o) for d, x in ((1, x1), (2, x2), (3, x3)) for o in self.outputs[d])


def run_three_ranks(run, op, outputs=OUTPUTS):
    """``run(x1, x2, x3)`` (an exported graph) against torch's native ops, at every size in RUN_AT."""
    for k in range(max(len(v) for v in RUN_AT.values())):
        xs = [plant(torch.randn(1, CHANNELS, *RUN_AT[d][k % len(RUN_AT[d])])) for d in (1, 2, 3)]
        got = iter(run(*xs))
        for d, x in zip((1, 2, 3), xs):
            for o in outputs[d]:
                assert_same_pattern(next(got), NATIVE[op, d](x, o).numpy(), f"{op} {d}d {tuple(x.shape)} -> {o}")


def ort_session(path):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return lambda *xs: sess.run(None, {n: x.numpy() for n, x in zip(names, xs)})


def spatial_dims(d, prefix):
    return {a: torch.export.Dim(f"{prefix}{a}", min=1, max=64) for a in range(2, 2 + d)}


def quietly(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the exporters' warnings and printing off the terminal."""
    with quiet():
        return fn(*args, **kwargs)


@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_onnx_dynamic_graph_keeps_pytorchs_nonfinite_pattern(exporter, op, tmp_path):
    path = tmp_path / "m.onnx"
    args = tuple(torch.randn(1, CHANNELS, *([EXPORTED_AT] * d)) for d in (1, 2, 3))
    dynamic = tuple(spatial_dims(d, f"r{d}_") for d in (1, 2, 3))
    report = quietly(poolport.export_onnx, ThreeRanks(op).eval(), args, path, exporter=exporter,
                     dynamic_shapes=dynamic)
    assert all(s.dynamic for s in report.sites)
    run_three_ranks(ort_session(path), op)


@pytest.mark.parametrize("op", ["avg", "max"])
def test_plain_dynamo_export_of_an_unmodified_model_with_poolports_table(op, tmp_path):
    # torch's own op, no make_portable: the translation table alone makes it exact at every size
    outputs = OUTPUTS if op == "avg" else INT_OUTPUTS
    program = quietly(torch.onnx.export, ThreeRanks(op, outputs).eval(),
                      tuple(torch.randn(1, CHANNELS, *([EXPORTED_AT] * d)) for d in (1, 2, 3)), dynamo=True,
                      dynamic_shapes=tuple(spatial_dims(d, f"r{d}_") for d in (1, 2, 3)),
                      custom_translation_table=poolport.onnx_translations())
    graph = program.model_proto.graph
    assert all(dim.dim_param for i in graph.input for dim in i.type.tensor_type.shape.dim[2:])  # still dynamic
    ops = {n.op_type for n in graph.node}
    assert "If" in ops and "GatherND" not in ops, ops  # poolport's form, not torch's decomposition
    program.save(str(tmp_path / "m.onnx"))
    run_three_ranks(ort_session(tmp_path / "m.onnx"), op, outputs)


def test_plain_dynamo_export_at_static_sizes_takes_the_static_plan(tmp_path):
    # torch alone refuses non-divisible adaptive max pooling (pytorch#183439); with the table it is exact
    model = nn.Sequential(nn.AdaptiveMaxPool2d((7, 3)), nn.AdaptiveAvgPool2d(5)).eval()
    x = torch.randn(1, CHANNELS, 10, 11)
    program = quietly(torch.onnx.export, model, (x,), dynamo=True, custom_translation_table=poolport.onnx_translations())
    ops = {n.op_type for n in program.model_proto.graph.node}
    assert {"MaxPool", "AveragePool"} <= ops and "If" not in ops, ops
    program.save(str(tmp_path / "m.onnx"))
    x[0, 0, 0, 0], x[0, 1, 5, 5] = float("inf"), -float("inf")  # (static MaxPool and NaN: ONNX Runtime's own rule)
    assert_same_pattern(ort_session(tmp_path / "m.onnx")(x)[0], model(x).numpy(), "static")


def test_the_table_refuses_adaptive_max_indices_while_exporting():
    class WithIndices(nn.Module):
        def forward(self, x):
            values, indices = nn.functional.adaptive_max_pool2d(x, 3, return_indices=True)
            return values, indices

    with pytest.raises(Exception) as info:
        quietly(torch.onnx.export, WithIndices(), (torch.randn(1, 2, 9, 9),), dynamo=True,
                custom_translation_table=poolport.onnx_translations())
    assert "indices are not portable" in str(info.value) + str(info.value.__cause__) + "".join(
        str(e) for e in _causes(info.value))


def _causes(e):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def test_the_table_names_an_output_size_computed_at_run_time():
    class HalfH(nn.Module):
        def forward(self, x):
            return nn.functional.adaptive_avg_pool2d(x, (x.shape[2] // 2, 3))

    h = torch.export.Dim("h", min=4, max=64)
    with pytest.raises(Exception) as info:
        quietly(torch.onnx.export, HalfH(), (torch.randn(1, 2, 10, 9),), dynamo=True, dynamic_shapes=({2: h},),
                custom_translation_table=poolport.onnx_translations())
    assert any("computed at run time" in str(e) and "poolport.export_onnx" in str(e) for e in _causes(info.value))


def test_export_onnx_dynamo_writes_the_translated_graph(tmp_path):
    # export_onnx's dynamo path: poolport::adaptive_pool through the table, not the torch ops' mask form
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    quietly(poolport.export_onnx, nn.AdaptiveMaxPool2d(4), torch.randn(1, 3, 9, 9), tmp_path / "m.onnx",
            exporter="dynamo", dynamic_shapes=({2: h, 3: w},))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "If" in ops and "ReduceMax" in ops and "Where" not in ops, ops


# ---- torch ops (torch.export for other consumers, torch.compile, the eager checks) ----------------

@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_torch_formulation_keeps_the_pattern_at_every_size(op, d):
    for o in OUTPUTS[d]:
        out = (o,) * d if isinstance(o, int) else o
        for shape in RUN_AT[d] + [(EXPORTED_AT,) * d]:
            x = plant(torch.randn(1, CHANNELS, *shape))
            assert_same_pattern(apply_generic(x, plan_generic(op, out)), NATIVE[op, d](x, out).numpy(),
                                f"{op} {shape} -> {out}")


def test_torch_export_with_dims_keeps_the_pattern():
    ep = torch.export.export(poolport.make_portable(ThreeRanks("avg")),
                             tuple(torch.randn(1, CHANNELS, *([EXPORTED_AT] * d)) for d in (1, 2, 3)),
                             dynamic_shapes=tuple(spatial_dims(d, f"r{d}_") for d in (1, 2, 3)))
    run_three_ranks(lambda *xs: [y.detach().numpy() for y in ep.module()(*xs)], "avg")


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_half_inputs_accumulate_in_float32_without_overflow(exporter, tmp_path):
    # 60000 + 60000 overflows float16; torch sums half in float32, so must the graph
    model = nn.AdaptiveAvgPool2d(3).eval()
    path = tmp_path / "m.onnx"
    h, w = torch.export.Dim("h", min=1, max=64), torch.export.Dim("w", min=1, max=64)
    quietly(poolport.export_onnx, model, torch.randn(1, 2, 9, 9).half(), path, exporter=exporter,
            dynamic_shapes=({2: h, 3: w},), verify=False)
    for shape in [(7, 5), (4, 11)]:
        x = torch.full((1, 2, *shape), 60000.0).half()
        x[0, 1, 0, 0] = float("inf")
        want = NATIVE["avg", 2](x.float(), 3).half().numpy()
        assert_same_pattern(ort_session(path)(x)[0].astype(np.float32), want.astype(np.float32), str(shape))
        assert_same_pattern(apply_generic(x, plan_generic("avg", (3, 3))).float().numpy(), want.astype(np.float32),
                            f"torch ops {shape}")
