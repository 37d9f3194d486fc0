"""Models whose weights go to an external data file: asked for, or over protobuf's 2 GB limit."""

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.external_data_helper import uses_external_data
from torch import nn

import poolport
from poolport import PoolportError
from poolport.cli.main import main
from poolport.demo.models import build
from poolport.onnxfile import staging


@pytest.fixture(scope="module")
def vgg():
    return build("vgg_style")


def run_by_path(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def torch_out(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_external_data_on_request(vgg, exporter, tmp_path):
    model, x = vgg
    out = tmp_path / "vgg.onnx"
    report = poolport.export_onnx(model, (x,), out, exporter=exporter, external_data=True)
    data = tmp_path / "vgg.onnx.data"
    assert report.passed and report.external_data == str(data)
    assert sorted(os.listdir(tmp_path)) == ["vgg.onnx", "vgg.onnx.data"]  # no staging folder left
    graph = onnx.load(str(out), load_external_data=False)
    external = [t for t in graph.graph.initializer if uses_external_data(t)]
    assert external and {e.value for t in external for e in t.external_data if e.key == "location"} == {data.name}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert data.stat().st_size >= 0.9 * weights and out.stat().st_size < 0.1 * weights
    onnx.checker.check_model(str(out))
    np.testing.assert_allclose(run_by_path(out, x), torch_out(model, x), rtol=1e-4, atol=1e-5)
    # and the files still load after moving the pair elsewhere (the location is relative)
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("vgg.onnx", "vgg.onnx.data"):
        os.rename(tmp_path / name, moved / name)
    np.testing.assert_allclose(run_by_path(moved / "vgg.onnx", x), torch_out(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_self_contained_by_default(vgg, exporter, tmp_path):
    model, x = vgg
    out = tmp_path / "vgg.onnx"
    report = poolport.export_onnx(model, (x,), out, exporter=exporter)
    assert report.external_data is None and os.listdir(tmp_path) == ["vgg.onnx"]
    proto = onnx.load(str(out), load_external_data=False)
    assert not any(uses_external_data(t) for t in proto.graph.initializer)
    assert proto.ir_version == 8  # the oldest IR that carries the opset, for both exporters
    np.testing.assert_allclose(run_by_path(out, x), torch_out(model, x), rtol=1e-4, atol=1e-5)


def test_over_the_limit_goes_external_automatically(vgg, tmp_path, monkeypatch):
    # the real limit is 2 GB (tests/test_export_external.py::test_a_real_model_over_2gb, marked slow);
    # a lower one here exercises the same decision on a small model
    monkeypatch.setattr(staging, "MAX_PROTO_BYTES", 10_000)
    model, x = vgg
    out = tmp_path / "vgg.onnx"
    report = poolport.export_onnx(model, (x,), out)
    assert report.external_data == str(tmp_path / "vgg.onnx.data")
    np.testing.assert_allclose(run_by_path(out, x), torch_out(model, x), rtol=1e-4, atol=1e-5)


def test_self_contained_refused_over_the_limit(vgg, tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "MAX_PROTO_BYTES", 10_000)
    model, x = vgg
    with pytest.raises(PoolportError, match=r"over protobuf's 2 GB limit.*external_data=True \(--external-data\)"):
        poolport.export_onnx(model, (x,), tmp_path / "vgg.onnx", external_data=False)
    assert os.listdir(tmp_path) == []


def test_existing_data_file_is_kept_without_overwrite(vgg, tmp_path):
    model, x = vgg
    data = tmp_path / "vgg.onnx.data"
    data.write_bytes(b"precious")
    with pytest.raises(PoolportError, match="vgg.onnx.data already exists.*overwrite=True"):
        poolport.export_onnx(model, (x,), tmp_path / "vgg.onnx", external_data=True)
    assert data.read_bytes() == b"precious" and os.listdir(tmp_path) == ["vgg.onnx.data"]
    poolport.export_onnx(model, (x,), tmp_path / "vgg.onnx", external_data=True, overwrite=True)
    np.testing.assert_allclose(run_by_path(tmp_path / "vgg.onnx", x), torch_out(model, x), rtol=1e-4, atol=1e-5)


def test_cli_external_data(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    rc = main(["convert", "poolport.demo.models:vgg_style", "--input", "1x3x100x100", "-o", str(out),
               "--external-data", "--quiet"])
    assert rc == 0 and (tmp_path / "m.onnx.data").is_file()
    assert "m.onnx.data" in capsys.readouterr().out


def test_ir_version_patch_only_touches_a_plain_header(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []), ir_version=9).SerializeToString())
    assert staging._patch_ir_version(f, 8) and onnx.load(str(f)).ir_version == 8
    other = tmp_path / "other.onnx"
    other.write_bytes(b"\x12\x03abc")  # starts with another field: left alone
    assert not staging._patch_ir_version(other, 8) and other.read_bytes() == b"\x12\x03abc"


class Big(nn.Module):
    """2.3 GB of weights behind a non-divisible adaptive pooling (31 -> 5)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3)
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(1600, 360_000)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_real_model_over_2gb(exporter, tmp_path):
    torch.manual_seed(0)
    model, x = Big().eval(), torch.randn(1, 3, 33, 33)
    out = tmp_path / "big.onnx"
    report = poolport.export_onnx(model, (x,), out, exporter=exporter)
    assert report.passed and report.external_data == str(tmp_path / "big.onnx.data")
    assert (tmp_path / "big.onnx.data").stat().st_size > 2**31
    assert report.sites[0].plan.kind == "single" and report.onnx_ops.get("AveragePool") == 1
    onnx.checker.check_model(str(out))
    np.testing.assert_allclose(run_by_path(out, x), torch_out(model, x), rtol=1e-4, atol=1e-4)


def _dangling_input_model():
    """What torch's dynamo exporter wrote for timm gemma4_vit_167m: a Clip reading a value that no node
    and no initializer produces."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["r"], name="node_Relu_0"),
        onnx.helper.make_node("Clip", ["r", "mul_2_min_1"], ["y"], name="node_Clip_4680"),
    ]
    graph = onnx.helper.make_graph(nodes, "g", [x], [y])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])


def test_a_model_failing_the_checker_is_refused_naming_the_node(tmp_path):
    """onnx.checker spreads its finding over lines; the error keeps all of it: which value, which node."""
    proto = _dangling_input_model()
    path = tmp_path / "bad.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(PoolportError, match=r"fails onnx.checker: .*'mul_2_min_1' .*name: node_Clip_4680 "
                       r"OpType: Clip is not output of any previous nodes\.$"):
        staging.check(staging.Staged(path, proto, self_contained=True))
    with pytest.raises(PoolportError, match=r"the input model fails onnx.checker: .*node_Clip_4680"):
        poolport.legalize(proto, target="ncnn")


def test_one_line():
    from poolport.errors import one_line

    assert one_line("a\n  b:\n c.\n") == "a b: c."
    assert one_line("x" * 50, limit=10) == "xxxxxxx..."
    assert one_line("first: " + "x" * 50, limit=10) == "first..."
