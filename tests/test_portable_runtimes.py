"""The portable formulations themselves, run in the real OpenVINO (f32) and ncnn (via pnnx, fp16=0):
runs of Slice + pool + Concat, uniform single ops, whole-plane global pooling, repeats for output
larger than input, 1d and 3d. Optional extras; skipped when a runtime is not installed."""

import functools

import numpy as np
import onnx
import pytest
import torch
from helpers import run_merged

import poolport
from poolport.export.torch_onnx import torch_export_to_proto
from poolport.runtimes.registry import RUNNERS, available

CASES = [
    ("avg", (1, 8, 9, 9), 7),  # runs x runs
    ("max", (1, 8, 9, 9), 7),
    ("avg", (1, 4, 128, 128), 14),  # two runs of k10 s9 per axis
    ("max", (1, 4, 15, 15), (6, 2)),  # runs x uniform (folded)
    ("avg", (1, 4, 10, 10), 1),  # global: whole-plane AveragePool (a keepdims ReduceMean fails in ncnn)
    ("max", (1, 4, 10, 10), 1),  # global: whole-plane MaxPool (ncnn cannot load ReduceMax)
    ("avg", (1, 4, 3, 4), (7, 9)),  # output larger than input: repeats
    ("max", (1, 4, 2, 5), (5, 3)),
]


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
@pytest.mark.parametrize("op,shape,out", CASES, ids=[f"{c[0]}-{'x'.join(map(str, c[1][2:]))}-{c[2]}" for c in CASES])
def test_adaptive_plans_in_runtime(runtime, op, shape, out):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    cls = poolport.nn.AdaptiveAvgPool2d if op == "avg" else poolport.nn.AdaptiveMaxPool2d
    native = torch.nn.AdaptiveAvgPool2d if op == "avg" else torch.nn.AdaptiveMaxPool2d
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    proto = torch_export_to_proto(cls(out).eval(), (x,), "dynamo", 18)
    proto.ir_version = 8  # what pnnx's bundled ONNX Runtime loads
    (y,) = RUNNERS[runtime](proto, {proto.graph.input[0].name: x.numpy()})
    want = native(out)(x).numpy()
    y = np.asarray(y).reshape(want.shape)
    if op == "max":
        np.testing.assert_array_equal(y, want)
    else:
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
@pytest.mark.parametrize("op", ["avg", "max"])
def test_same_pooling_in_runtime(runtime, op):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.runtimes.registry import run_batch
    from poolport.testing import reference

    cls = poolport.nn.AvgPool2dSame if op == "avg" else poolport.nn.MaxPool2dSame
    items, wants = [], []
    for size, k, s in [((8, 9), 3, 2), ((7, 7), 3, 2), ((6, 6), 2, 2)]:
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
        proto = torch_export_to_proto(cls(k, s).eval(), (x,), "dynamo", 18)
        proto.ir_version = 8
        items.append((proto, {proto.graph.input[0].name: x.numpy()}))
        wants.append(reference.same_pool(x.double().numpy(), (k, k), (s, s), op))
    # one worker and one merged model for LiteRT (helpers.run_merged), one batch elsewhere
    answers = run_merged(runtime, items) if runtime == "litert" else run_batch(runtime, items)
    for want, got in zip(wants, answers):
        assert not isinstance(got, Exception), got
        (y,) = got
        np.testing.assert_allclose(np.asarray(y).reshape(want.shape), want, rtol=1e-5, atol=1e-6)


# the fully convolutional demo model at its example size and five others (prime, smaller, large, flat)
SIZES = [(120, 120), (160, 184), (248, 72), (56, 320), (24, 16), (113, 97)]


def _inputs():
    return [torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w)) for h, w in SIZES]


@pytest.mark.runtime
def test_patch_around_openvino_convert_model_is_exact_at_every_size():
    # OpenVINO makes the inputs dynamic and computes adaptive pooling exactly with its own op: patch()
    # must leave that op alone (a static plan traced in would be wrong at every other size)
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")
    import openvino as ov

    from poolport.demo.models import build

    model, x = build("pspnet_style")
    with poolport.patch(model):
        converted = ov.convert_model(model, example_input=x)
    assert converted.inputs[0].get_partial_shape().is_dynamic
    assert any(op.get_type_name().startswith("AdaptiveAvgPool") for op in converted.get_ops())
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for xx in _inputs():
        y = np.asarray(compiled(xx.numpy())[compiled.outputs[0]])
        with torch.no_grad():
            want = model(xx).numpy()
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5, err_msg=str(tuple(xx.shape)))


@pytest.mark.runtime
def test_patch_around_pnnx_export_to_ncnn_is_exact_at_every_size(tmp_path, monkeypatch):
    # pnnx with a second input shape makes the model dynamic and keeps ncnn's own adaptive pooling
    if not available("ncnn"):
        pytest.skip("ncnn/pnnx not installed (pip install 'poolport[runtimes]')")
    import pnnx

    from poolport.demo.models import build
    from poolport.runtimes.ncnn_rt import run_ncnn_files

    model, x = build("pspnet_style")
    monkeypatch.chdir(tmp_path)  # pnnx writes its files next to the .pt
    classes = [type(m) for m in model.modules()]
    x2 = torch.randn(1, 3, 96, 136)
    with poolport.patch(model):
        pnnx.export(model, str(tmp_path / "m.pt"), (x,), (x2,), fp16=False)
    assert [type(m) for m in model.modules()] == classes  # restored
    assert not hasattr(model.ppm.stages[0][0], "_poolport_site")
    for xx in _inputs():
        (y,) = run_ncnn_files(tmp_path / "m.ncnn.param", tmp_path / "m.ncnn.bin", [xx.numpy()])
        with torch.no_grad():
            want = model(xx).numpy()
        np.testing.assert_allclose(y.reshape(want.shape), want, rtol=1e-4, atol=1e-5, err_msg=str(tuple(xx.shape)))


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn"])
def test_same_plan_never_uses_a_ceil_window_that_starts_in_the_padding(runtime):
    # AvgPool2dSame((1, 3), (2, 2)) on 4x8 once exported a ceil_mode plan whose last window starts in the
    # padding: ONNX drops it, ncnn returned shape (1, 1, 3, 4) instead of (1, 1, 2, 4)
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.testing import reference

    x = torch.randn(1, 1, 4, 8, generator=torch.Generator().manual_seed(3))
    proto = torch_export_to_proto(poolport.nn.AvgPool2dSame((1, 3), (2, 2)).eval(), (x,), "dynamo", 18)
    proto.ir_version = 8
    (y,) = RUNNERS[runtime](proto, {proto.graph.input[0].name: x.numpy()})
    want = reference.same_pool(x.double().numpy(), (1, 3), (2, 2), "avg")
    assert np.asarray(y).size == want.size
    np.testing.assert_allclose(np.asarray(y).reshape(want.shape), want, rtol=1e-5, atol=1e-6)


# 1-D and 3-D plans, adaptive and SAME (symmetric, ceil, explicit kinds), in every runtime: legalized for that
# runtime first (export_onnx(target=...) does the same), as a user targeting it would
PLANS_1D_3D = [
    ("adaptive", "avg", (1, 4, 17), 5), ("adaptive", "max", (1, 4, 17), 5),
    ("adaptive", "avg", (1, 2, 5, 9, 7), (3, 4, 5)), ("adaptive", "max", (1, 2, 5, 9, 7), (3, 4, 5)),
    ("same", "avg", (1, 5, 11), 3), ("same", "max", (1, 5, 10), 3),
    ("same", "avg", (1, 3, 7, 7, 7), 3), ("same", "max", (1, 3, 7, 7, 7), 3),
    ("same", "avg", (1, 3, 8, 9, 10), 3), ("same", "max", (1, 3, 8, 9, 10), 3),
    # the other plan kinds at 1-D and 3-D: identity, uniform, global, repeats (output larger than input)
    ("adaptive", "avg", (1, 4, 9), 9), ("adaptive", "max", (1, 4, 12), 4), ("adaptive", "avg", (1, 4, 12), 1),
    ("adaptive", "max", (1, 4, 3), 7),
    ("adaptive", "avg", (1, 2, 4, 6, 8), (4, 3, 2)), ("adaptive", "max", (1, 2, 4, 6, 8), 1),
    ("adaptive", "avg", (1, 2, 2, 3, 3), (5, 4, 7)), ("adaptive", "max", (1, 2, 5, 6, 7), (5, 6, 7)),
]


def _module(kind, op, shape, arg):
    d = len(shape) - 2
    if kind == "adaptive":
        name = f"Adaptive{'Avg' if op == 'avg' else 'Max'}Pool{d}d"
        return getattr(poolport.nn, name)(arg)
    return getattr(poolport.nn, f"{'Avg' if op == 'avg' else 'Max'}Pool{d}dSame")(arg, 2)


@functools.lru_cache(maxsize=1)
def _plans_1d_3d_exported() -> tuple:
    """Each of PLANS_1D_3D exported (ONNX bytes), its input and the numpy reference: exported once per worker
    for the four runtimes."""
    from poolport.testing import reference

    out = []
    for kind, op, shape, arg in PLANS_1D_3D:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)))
        module = _module(kind, op, shape, arg)
        size = (arg,) * (len(shape) - 2) if isinstance(arg, int) else tuple(arg)
        identity = kind == "adaptive" and size == tuple(shape[2:])
        if identity:  # a graph of one Identity node is no model to pnnx (its ONNX Runtime refuses it): add a Relu
            module = torch.nn.Sequential(module, torch.nn.ReLU())
        proto = torch_export_to_proto(module.eval(), (x,), "dynamo", 18)
        proto.ir_version = 8
        d = len(shape) - 2
        if kind == "adaptive":
            want = reference.adaptive_pool(x.double().numpy(), (arg,) * d if isinstance(arg, int) else arg, op)
            want = np.maximum(want, 0) if identity else want
        else:
            want = reference.same_pool(x.double().numpy(), (arg,) * d, (2,) * d, op)
        out.append((proto.SerializeToString(), x.numpy(), want))
    return tuple(out)


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
def test_1d_and_3d_plans_in_runtime(runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.runtimes.registry import run_batch

    items, wants = [], []
    for data, x, want in _plans_1d_3d_exported():
        proto = poolport.legalize(onnx.load_from_string(data), runtime).model
        items.append((proto, {proto.graph.input[0].name: x}))
        wants.append(want)
    # one merged model for LiteRT and ncnn (helpers.run_merged): one onnx2tf/pnnx conversion, not one per plan
    answers = run_merged(runtime, items) if runtime in ("litert", "ncnn") else run_batch(runtime, items)
    for (kind, op, shape, arg), want, got in zip(PLANS_1D_3D, wants, answers):
        assert not isinstance(got, Exception), f"{kind} {op} {shape}: {got}"
        (y,) = got
        np.testing.assert_allclose(np.asarray(y).reshape(want.shape), want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{kind} {op} {shape} on {runtime}")


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
def test_demo_models_verify_in_runtime(runtime, tmp_path):
    # the three demo models, exported by poolport and verified in the runtime against PyTorch
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.demo.models import DEMOS, build

    for name in DEMOS:
        model, x = build(name)
        report = poolport.export_onnx(model, (x,), tmp_path / f"{name}.onnx", runtimes=(runtime,), random_checks=0)
        checks = [c for c in report.checks if c.runtime == runtime]
        assert checks and all(c.passed for c in checks), (name, checks)
