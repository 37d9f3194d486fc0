"""Exact at every input size the artefact accepts: a graph poolport produces is either static (and
refuses other sizes loudly) or size-generic (exact at every size). Each path is exported once and run at
sizes other than the one it was exported at, against torch's native op."""

import logging
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import NATIVE
from torch import nn

import poolport
from poolport.backend.torch_generic import apply_generic
from poolport.demo.models import PyramidHead
from poolport.plan import adaptive_windows
from poolport.plan.generic import plan_generic, window_bounds
from poolport.runtimes.registry import RUNNERS, available

EXPORTED_AT = (15, 15)
# divisible, non-divisible, prime, smaller than every output, large, flat and tall
SIZES = [(15, 15), (20, 23), (31, 9), (64, 64), (7, 40), (3, 2), (97, 13), (1, 1)]


def inputs(channels=5):
    # channel count unlike any spatial size (onnx2tf-style layout guesses must not matter here)
    return [torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(h * 100 + w)) for h, w in SIZES]


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    return PyramidHead().eval()


def dims():
    return torch.export.Dim("h", min=1, max=512), torch.export.Dim("w", min=1, max=512)


def assert_exact_at_every_size(run, model):
    """``run(x)`` (an exported artefact) against the eager model with torch's native ops."""
    for x in inputs():
        with torch.no_grad():
            want = model(x).numpy()
        got = np.asarray(run(x)).reshape(want.shape)
        scale = max(float(np.abs(want).max()), 1e-30)
        assert float(np.abs(got - want).max()) / scale <= 1e-5, tuple(x.shape)


def ort_runner(path):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def quiet_export(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            return torch.onnx.export(*args, **kwargs)
        finally:
            logging.disable(logging.NOTSET)


# ---- the planning layer ---------------------------------------------------------------------------

def test_window_bounds_are_pytorchs_windows():
    for n in range(1, 80):
        for o in range(1, 40):
            assert tuple(window_bounds(i, n, o) for i in range(o)) == adaptive_windows(n, o)


def test_generic_plan_is_printable_data():
    plan = plan_generic("max", (6, None))
    assert plan.axis_kinds == ("windows", "keep")
    assert "windows(6) x keep" in str(plan) and plan.to_dict()["kind"] == "axes"
    assert plan_generic("avg", (1, 1)).kind == "global" and plan_generic("avg", (None,)).kind == "identity"


# ---- the size-generic formulation in eager torch, forced (no shortcut to the native op) ----------

@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_torch_formulation_equals_native_for_every_size(op, d):
    for o in (1, 2, 3, 5, 7, 16) + ((None,) if d > 1 else ()):  # torch's 1d functions take no None
        out = (o,) * d if o is not None else (None,) + (4,) * (d - 1)
        for n in range(1, 33 if d < 3 else 12):
            x = torch.randn(2, 3, *([n] * (d - 1)), n + 2)
            got = apply_generic(x, plan_generic(op, out))
            want = NATIVE[op, d](x, out)
            assert got.shape == want.shape
            if op == "max":
                assert torch.equal(got, want), (n, out)
            else:
                torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * max(1.0, float(x.abs().max())))


def test_size_generic_context_takes_that_path_in_eager(head):
    x = inputs()[1]
    calls = []
    import poolport.functional.adaptive as mod

    real = mod.apply_generic
    mod.apply_generic = lambda x, plan: calls.append(plan) or real(x, plan)
    try:
        with torch.no_grad(), poolport.functional.dispatch.size_generic():
            got = poolport.make_portable(head)(x)
    finally:
        mod.apply_generic = real
    assert len(calls) == 5
    with torch.no_grad():
        torch.testing.assert_close(got, head(x), rtol=0, atol=1e-6)


# ---- every path of the issue, exported once at 15x15 ----------------------------------------------

@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_onnx_with_dynamic_shapes(head, exporter, tmp_path):
    path = tmp_path / "head.onnx"
    x = torch.randn(1, 5, *EXPORTED_AT)
    report = poolport.export_onnx(head, x, path, exporter=exporter, dynamic_shapes=({2: dims()[0], 3: dims()[1]},))
    assert all(s.dynamic for s in report.sites) and len(report.sites) == 5
    assert len(report.sizes_verified) >= 3  # example + at least three other sizes
    data = report.to_dict()
    assert data["sites"][0]["size"] == "dynamic" and data["sizes_verified"] == report.sizes_verified
    graph = onnx.load(str(path))
    dims_in = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims_in[2], str) and isinstance(dims_in[3], str), dims_in
    assert_exact_at_every_size(ort_runner(path), head)


def test_raw_torchscript_export_with_dynamic_axes(head, tmp_path):
    path = tmp_path / "ts.onnx"
    quiet_export(poolport.make_portable(head), (torch.randn(1, 5, *EXPORTED_AT),), str(path), dynamo=False,
                 input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
    assert_exact_at_every_size(ort_runner(path), head)


def test_raw_dynamo_export_with_dims(head, tmp_path):
    path = tmp_path / "dy.onnx"
    h, w = dims()
    program = quiet_export(poolport.make_portable(head), (torch.randn(1, 5, *EXPORTED_AT),), dynamo=True,
                           dynamic_shapes=({2: h, 3: w},))
    program.save(str(path))
    assert_exact_at_every_size(ort_runner(path), head)


def test_torch_export_with_dims(head):
    # non-strict (torch.export's default, and what the dynamo ONNX exporter uses): sizes arrive as
    # SymInts and poolport writes the size-generic formulation, with no guard
    h, w = dims()
    ep = torch.export.export(poolport.make_portable(head), (torch.randn(1, 5, *EXPORTED_AT),),
                             dynamic_shapes=({2: h, 3: w},))
    assert_exact_at_every_size(lambda x: ep.module()(x).detach().numpy(), head)


def test_strict_torch_export_with_dims_refuses_loudly(head):
    # strict mode (Dynamo) shows poolport a dynamic size as its example value, so the static plan is
    # taken; reading it specialises the size and torch.export refuses the Dims: loud, never wrong
    h, w = dims()
    with pytest.raises(Exception, match="Constraints violated"):
        with poolport.patch():
            torch.export.export(poolport.make_portable(head), (torch.randn(1, 5, *EXPORTED_AT),),
                                dynamic_shapes=({2: h, 3: w},), strict=True)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_static_exports_refuse_other_sizes_loudly(head, exporter, tmp_path):
    path = tmp_path / "static.onnx"
    poolport.export_onnx(head, torch.randn(1, 5, *EXPORTED_AT), path, exporter=exporter)
    run = ort_runner(path)
    for x in inputs()[1:]:
        with pytest.raises(Exception, match="(?i)invalid dimensions|dimension"):
            run(x)
    if available("openvino"):  # the static graph in OpenVINO: refused too, never silently wrong
        name = onnx.load(str(path)).graph.input[0].name  # the right name, so only the size can be refused
        RUNNERS["openvino"](path, {name: inputs()[0].numpy()})  # the exported size runs
        with pytest.raises(Exception):
            RUNNERS["openvino"](path, {name: inputs()[1].numpy()})


@pytest.mark.runtime
def test_dynamic_export_in_openvino_at_every_size(head, tmp_path):
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")
    path = tmp_path / "head.onnx"
    h, w = dims()
    poolport.export_onnx(head, torch.randn(1, 5, *EXPORTED_AT), path, exporter="torchscript",
                         dynamic_shapes=({2: h, 3: w},), runtimes=["openvino"])
    name = onnx.load(str(path)).graph.input[0].name
    assert_exact_at_every_size(lambda x: RUNNERS["openvino"](path, {name: x.numpy()})[0], head)


def test_dynamic_shapes_errors_name_the_input():
    m = nn.AdaptiveAvgPool2d(3)
    x = torch.randn(1, 2, 9, 9)
    with pytest.raises(poolport.PoolportError, match="1 inputs"):
        poolport.export_onnx(m, x, "unused.onnx", dynamic_shapes=({2: "h"}, {2: "w"}))
    with pytest.raises(poolport.PoolportError, match="no axis 7"):
        poolport.export_onnx(m, x, "unused.onnx", dynamic_shapes=({7: "h"},))


def test_cli_dynamic_spatial(tmp_path, capsys):
    from poolport.cli.main import main

    model_file = tmp_path / "models.py"
    model_file.write_text("import torch\nfrom torch import nn\n"
                          "def build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(6))\n")
    out = tmp_path / "m.onnx"
    code = main(["convert", f"{model_file}:build", "--input", "1x3x15x15", "-o", str(out), "--dynamic-spatial",
                 "--exporter", "torchscript", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "dynamic: input 0 axis 2" in text and "verified at: example; " in text
    graph = onnx.load(str(out))
    assert all(d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim[2:])


# ---- the property test: one exported graph per output size, run at every input size ---------------

class EveryOutput(nn.Module):
    """Adaptive pooling to every o in 1..16 at once (one output each): one export covers them all."""

    def __init__(self, op, d):
        super().__init__()
        cls = {("avg", 1): poolport.nn.AdaptiveAvgPool1d, ("avg", 2): poolport.nn.AdaptiveAvgPool2d,
               ("avg", 3): poolport.nn.AdaptiveAvgPool3d, ("max", 1): poolport.nn.AdaptiveMaxPool1d,
               ("max", 2): poolport.nn.AdaptiveMaxPool2d, ("max", 3): poolport.nn.AdaptiveMaxPool3d}[op, d]
        self.pools = nn.ModuleList(cls(o) for o in range(1, 17))

    def forward(self, x):
        return tuple(p(x) for p in self.pools)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_size_generic_graph_for_every_o_at_every_n(d, op, exporter, tmp_path):
    model = EveryOutput(op, d).eval()
    x = torch.randn(1, 2, *([9] * d))
    path = tmp_path / "every.onnx"
    spatial = {axis: torch.export.Dim(f"n{axis}", min=1, max=128) for axis in range(2, 2 + d)}
    if exporter == "dynamo":
        quiet_export(model, (x,), dynamo=True, dynamic_shapes=(spatial,)).save(str(path))
    else:
        quiet_export(model, (x,), str(path), dynamo=False, input_names=["x"],
                     dynamic_axes={"x": {a: f"n{a}" for a in spatial}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for n in range(1, 65):
        shape = [n] * d if d < 3 else [n, max(1, n // 4), 3]  # 3d: every n on one axis, others small
        if d == 2:
            shape = [n, 65 - n]  # every n, and never square
        x = torch.randn(1, 2, *shape)
        got = sess.run(None, {name: x.numpy()})
        for o, y in zip(range(1, 17), got):
            want = NATIVE[op, d](x, o).numpy()
            assert y.shape == want.shape, (n, o)
            if op == "max":
                np.testing.assert_array_equal(y, want, err_msg=f"n={shape} o={o}")
            else:
                np.testing.assert_allclose(y, want, rtol=0, atol=2e-6 * max(1.0, float(x.abs().max())),
                                           err_msg=f"n={shape} o={o}")


# ---- TF-'SAME' pooling: its padding depends on the size -------------------------------------------

SAME_CASES = [("avg", 1, 3, 2), ("max", 1, 4, 3), ("avg", 2, 3, 2), ("max", 2, 3, 2), ("avg", 3, 2, 2), ("max", 3, 3, 1)]


@pytest.mark.parametrize("op,d,k,s", SAME_CASES)
def test_same_pooling_torchscript_dynamic_axes_exact_at_every_size(op, d, k, s, tmp_path):
    from poolport.testing import reference

    cls = getattr(poolport.nn, f"{op.capitalize()}Pool{d}dSame")
    path = tmp_path / "same.onnx"
    quiet_export(cls(k, s).eval(), (torch.randn(1, 3, *([8] * d)),), str(path), dynamo=False, input_names=["x"],
                 dynamic_axes={"x": {a: f"n{a}" for a in range(2, 2 + d)}})
    run = ort_runner(path)
    for n in (8, 9, 7, 13, 5, 20):
        x = torch.randn(1, 3, *([n] * (d - 1)), n + 1)
        want = reference.same_pool(x.double().numpy(), (k,) * d, (s,) * d, op)
        np.testing.assert_allclose(run(x), want, rtol=1e-5, atol=1e-6, err_msg=str(tuple(x.shape)))


def test_same_pooling_static_torchscript_export_keeps_the_static_plan(tmp_path):
    path = tmp_path / "same.onnx"
    quiet_export(poolport.nn.AvgPool2dSame(3, 2).eval(), (torch.randn(1, 3, 8, 9),), str(path), dynamo=False)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    attrs = {a.name for n in onnx.load(str(path)).graph.node for a in n.attribute}
    assert "AveragePool" in ops and "auto_pad" not in attrs  # ncnn computes auto_pad SAME wrongly
    with pytest.raises(Exception, match="(?i)invalid dimensions"):
        ort_runner(path)(torch.randn(1, 3, 9, 9))


def test_same_pooling_refuses_symbolic_sizes_under_dynamo():
    h = torch.export.Dim("h", min=2, max=64)
    with pytest.raises(poolport.PoolportError, match="dynamic.*TorchScript exporter"):
        torch.export.export(poolport.nn.MaxPool2dSame(3, 2), (torch.randn(1, 3, 8, 8),), dynamic_shapes=({2: h},))


def test_same_pooling_in_a_plain_trace_is_poolports_op():
    # a converter that traces (OpenVINO, pnnx) cannot load it: it refuses the model instead of baking
    # size-dependent padding into a graph it then runs at other sizes
    traced = torch.jit.trace(poolport.nn.AvgPool2dSame(3, 2), (torch.randn(1, 3, 8, 8),))
    assert "poolport::pool_same" in str(traced.inlined_graph)
    if available("openvino"):
        import openvino as ov

        with pytest.raises(Exception, match="pool_same"):
            ov.convert_model(poolport.nn.AvgPool2dSame(3, 2), example_input=torch.randn(1, 3, 8, 8))


# ---- the tools that trace: their own adaptive op, left alone by patch() ---------------------------

@pytest.mark.runtime
def test_patch_openvino_convert_model_head_exact_at_every_size(head):
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")
    import openvino as ov

    with poolport.patch(head):
        converted = ov.convert_model(head, example_input=torch.randn(1, 5, *EXPORTED_AT))
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert_exact_at_every_size(lambda x: compiled(x.numpy())[compiled.outputs[0]], head)


@pytest.mark.runtime
def test_patch_pnnx_two_shapes_head_exact_at_every_size(head, tmp_path, monkeypatch):
    if not available("ncnn"):
        pytest.skip("ncnn/pnnx not installed (pip install 'poolport[runtimes]')")
    import pnnx

    from poolport.runtimes.ncnn_rt import run_ncnn_files

    monkeypatch.chdir(tmp_path)
    with poolport.patch(head):
        pnnx.export(head, str(tmp_path / "m.pt"), (torch.randn(1, 5, *EXPORTED_AT),), (torch.randn(1, 5, 24, 31),),
                    fp16=False)
    files = tmp_path / "m.ncnn.param", tmp_path / "m.ncnn.bin"
    assert_exact_at_every_size(lambda x: run_ncnn_files(*files, [x.numpy()])[0], head)


def test_cli_torchscript_file_with_dynamic_spatial(head, tmp_path, capsys):
    # a TorchScript file keeps torch's adaptive ops: the exporter's symbolics write them size-generic
    from poolport.cli.main import main

    torch.jit.trace(head, (torch.randn(1, 5, *EXPORTED_AT),)).save(str(tmp_path / "head.pt"))
    out = tmp_path / "head.onnx"
    code = main(["convert", str(tmp_path / "head.pt"), "--input", "1x5x15x15", "-o", str(out), "--dynamic-spatial",
                 "--report", str(tmp_path / "r.json"), "--quiet"])
    assert code == 0
    import json

    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["sizes_verified"]) >= 3 and all(s["size"] == "dynamic" for s in data["sites"])
    assert "1x5x?x?" in capsys.readouterr().out
    assert_exact_at_every_size(ort_runner(out), head)


def test_torch_compile_is_exact_at_every_size(head):
    compiled = torch.compile(poolport.make_portable(head))
    with torch.no_grad():
        assert_exact_at_every_size(lambda x: compiled(x).numpy(), head)


def test_a_dynamic_export_with_no_other_size_to_check_fails_closed(tmp_path, monkeypatch):
    # no other size to check (torch refuses a Dim with min == max, so the candidates are emptied here):
    # "verified" must never mean "checked at the example only"
    import poolport.export.onnx_export as export_module

    monkeypatch.setattr(export_module, "verification_shapes", lambda axes, args, sites: [])
    with pytest.raises(poolport.PoolportError, match="other sizes"):
        poolport.export_onnx(nn.AdaptiveAvgPool2d(4), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx",
                             exporter="torchscript", dynamic_shapes=({2: "h"},))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("op", ["avg", "max"])
def test_static_torchscript_same_exports_every_plan_kind_exactly(op, tmp_path):
    # the symbolic writes plain / symmetric / ceil / explicit SAME plans from SamePlan.pool_args() and explicit()
    from poolport.plan.same import plan_same
    from poolport.testing import reference

    cases = [((8, 8), 2, 2), ((7, 7), 3, 1), ((7, 9), 3, 2), ((4, 8), (1, 3), (2, 2)), ((6, 5), 4, 3)]
    kinds = set()
    for i, (size, k, s) in enumerate(cases):
        k2, s2 = (k, k) if isinstance(k, int) else k, (s, s) if isinstance(s, int) else s
        kinds.add(plan_same(op, size, k2, s2).kind)
        x = torch.randn(1, 3, *size)
        path = tmp_path / f"s{i}.onnx"
        cls = poolport.nn.AvgPool2dSame if op == "avg" else poolport.nn.MaxPool2dSame
        quiet_export(cls(k, s).eval(), (x,), str(path), dynamo=False)
        want = reference.same_pool(x.double().numpy(), k2, s2, op)
        np.testing.assert_allclose(ort_runner(path)(x), want, rtol=1e-5, atol=1e-6, err_msg=str((size, k, s)))
    assert {"plain", "symmetric", "explicit"} <= kinds and (op == "max" or "ceil" in kinds), kinds
