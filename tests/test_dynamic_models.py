"""Real models with non-global adaptive pooling, exported once with H/W dynamic through every path, run at
other sizes against the eager model (torch's native ops). Slow: ``make test-slow``.

torchvision vgg11 (AdaptiveAvgPool2d(7): non-uniform windows at most sizes) and timm csatv2 (adaptive
average pooling inside; it needs H and W to be multiples of 8, hence a derived Dim)."""

import numpy as np
import onnx
import pytest
import torch
from test_dynamic_sizes import ort_runner, quiet_export

import poolport
from poolport.runtimes.registry import RUNNERS, available

pytestmark = pytest.mark.slow


def vgg11():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None, num_classes=10).eval()


def csatv2():
    import timm

    torch.manual_seed(0)
    return timm.create_model("csatv2", pretrained=False, num_classes=10).eval()


def vgg_dims():
    # from 32 vgg11's head sees 1 x 1 and the exported ONNX graphs are exact there (measured at 40x40,
    # 32x63, 63x33); plain torch.export assumes a dynamic size is never 1, refuses 32..63 and asks for min=64
    return torch.export.Dim("h", min=64, max=512), torch.export.Dim("w", min=64, max=512)


def csat_dims():
    return 8 * torch.export.Dim("_h", min=16, max=48), 8 * torch.export.Dim("_w", min=16, max=48)


# (factory, export size, dims, six other sizes: divisible, non-divisible, prime-ish, smaller than 7 at the
# pooling site, large, flat)
MODELS = {
    "vgg11": (vgg11, 224, vgg_dims, [(224, 224), (193, 257), (320, 96), (97, 131), (448, 320), (64, 383)]),
    "csatv2": (csatv2, 224, csat_dims, [(224, 224), (256, 256), (320, 128), (136, 200), (384, 256), (128, 384)]),
}


def check(run, model, sizes):
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
        with torch.no_grad():
            want = model(x).numpy()
        got = np.asarray(run(x)).reshape(want.shape)
        err = float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-30)
        assert err <= 1e-5, ((h, w), err)


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    factory, size, dims, sizes = MODELS[request.param]
    return factory(), torch.randn(1, 3, size, size), dims, sizes


@pytest.fixture
def name(request):
    return request.node.callspec.params["case"]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_export_onnx(case, exporter, tmp_path):
    model, x, dims, sizes = case
    h, w = dims()
    path = tmp_path / "m.onnx"
    runtimes = ["openvino"] if available("openvino") else []
    report = poolport.export_onnx(model, x, path, exporter=exporter, dynamic_shapes=({2: h, 3: w},),
                                  runtimes=runtimes)
    assert len(report.sizes_verified) >= 3 and any(s.dynamic for s in report.sites)
    check(ort_runner(path), model, sizes)
    if runtimes:
        name = onnx.load(str(path), load_external_data=False).graph.input[0].name
        check(lambda t: RUNNERS["openvino"](path, {name: t.numpy()})[0], model, sizes)


def test_raw_torch_onnx_export_both_ways(case, tmp_path):
    model, x, dims, sizes = case
    portable = poolport.make_portable(model)
    ts = tmp_path / "ts.onnx"
    quiet_export(portable, (x,), str(ts), dynamo=False, input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
    check(ort_runner(ts), model, sizes)
    h, w = dims()
    dy = tmp_path / "dy.onnx"
    quiet_export(portable, (x,), dynamo=True, dynamic_shapes=({2: h, 3: w},)).save(str(dy))
    check(ort_runner(dy), model, sizes)


def test_torch_export(case):
    model, x, dims, sizes = case
    h, w = dims()
    ep = torch.export.export(poolport.make_portable(model), (x,), dynamic_shapes=({2: h, 3: w},))
    check(lambda t: ep.module()(t).detach().numpy(), model, sizes)


@pytest.mark.runtime
def test_patch_openvino_convert_model(case):
    if not available("openvino"):
        pytest.skip("openvino not installed")
    import openvino as ov

    model, x, _, sizes = case
    with poolport.patch(model):
        converted = ov.convert_model(model, example_input=x)
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    check(lambda t: compiled(t.numpy())[compiled.outputs[0]], model, sizes)


@pytest.mark.runtime
def test_patch_pnnx_two_shapes_to_ncnn(case, name, tmp_path, monkeypatch):
    if not available("ncnn"):
        pytest.skip("ncnn/pnnx not installed")
    if name == "csatv2":
        pytest.skip("pnnx 20261020 cannot convert timm csatv2 with or without poolport: its generated "
                    "m_pnnx.py holds an unconverted aten::addcmul (measured)")
    import pnnx

    from poolport.runtimes.ncnn_rt import run_ncnn_files

    model, x, _, sizes = case
    monkeypatch.chdir(tmp_path)
    with poolport.patch(model):
        pnnx.export(model, str(tmp_path / "m.pt"), (x,), (torch.randn(1, 3, 256, 320),), fp16=False)
    check(lambda t: run_ncnn_files(tmp_path / "m.ncnn.param", tmp_path / "m.ncnn.bin", [t.numpy()])[0], model, sizes)
