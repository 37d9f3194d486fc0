"""export_onnx: verification, the report, atomic and non-destructive writes."""

import json
import os

import onnx
import pytest
import torch
from torch import nn

import poolport
from poolport import PoolportError
from poolport.demo.models import build
from poolport.onnxfile.graph import NON_PORTABLE_OPS, PORTABLE_POOLING_OPS, op_counts


@pytest.fixture(scope="module")
def psp():
    return build("pspnet_style")


def test_report_per_site_and_model_level(psp, tmp_path):
    model, x = psp
    out = tmp_path / "psp.onnx"
    report = poolport.export_onnx(model, (x,), out, report=tmp_path / "r.json", name="psp", random_checks=2)
    assert out.is_file() and report.passed and report.output == str(out) and report.external_data is None
    assert [s.where for s in report.sites] == [f"ppm.stages.{i}.0" for i in range(4)]
    assert [s.output_size for s in report.sites] == [(1, 1), (2, 2), (3, 3), (6, 6)]
    assert report.sites[3].plan.kind == "passes" and "Slice x6" in report.sites[3].onnx_ops
    assert all(s.max_rel_error < 1e-6 for s in report.sites)
    assert [c.inputs for c in report.checks] == ["example inputs", "random inputs #1", "random inputs #2"]
    assert report.max_rel_error < 1e-4
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] and data["sites"][3]["onnx_ops"] == {"AveragePool": 6, "Concat": 2, "Slice": 6}
    text = report.table()
    assert "ppm.stages.3.0" in text and "random inputs #2" in text
    proto = onnx.load(str(out))
    assert proto.ir_version == 8  # loads in older runtimes (pnnx's ORT accepts <= 13)
    assert not set(op_counts(proto)) & NON_PORTABLE_OPS


def test_torchscript_exporter_too(psp, tmp_path):
    model, x = psp
    report = poolport.export_onnx(model, x, tmp_path / "psp.onnx", exporter="torchscript")
    assert report.passed and report.opset == 17 and len(report.sites) == 4


def test_existing_file_is_never_replaced_without_overwrite(psp, tmp_path):
    model, x = psp
    out = tmp_path / "psp.onnx"
    out.write_bytes(b"precious")
    with pytest.raises(PoolportError, match="already exists.*overwrite=True"):
        poolport.export_onnx(model, (x,), out)
    assert out.read_bytes() == b"precious"
    poolport.export_onnx(model, (x,), out, overwrite=True)
    assert onnx.load(str(out)).graph.node


class Noisy(nn.Module):
    """Exports fine but computes something else in ONNX Runtime: random noise differs per run."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 5) + torch.rand_like(x[..., :5, :5])


def test_failed_verification_raises_and_writes_nothing(tmp_path):
    out = tmp_path / "noisy.onnx"
    with pytest.raises(PoolportError, match="verification failed, nothing written"):
        poolport.export_onnx(Noisy(), (torch.randn(1, 2, 9, 9),), out)
    assert os.listdir(tmp_path) == []  # no half-written file, no temporary left behind


def test_original_model_untouched_and_still_in_training_mode(tmp_path):
    model, x = build("vgg_style")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    poolport.export_onnx(model, (x,), tmp_path / "v.onnx")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.avgpool) is nn.AdaptiveAvgPool2d


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"exporter": "tflite"}, "exporter must be one of"),
        ({"f": "missing-dir/x.onnx"}, "does not exist"),
    ],
)
def test_bad_arguments(psp, tmp_path, kwargs, match):
    model, x = psp
    f = kwargs.pop("f", tmp_path / "a.onnx")
    with pytest.raises(PoolportError, match=match):
        poolport.export_onnx(model, (x,), f, **kwargs)


def test_bad_example_inputs(psp, tmp_path):
    model, _ = psp
    with pytest.raises(PoolportError, match="example inputs must be"):
        poolport.export_onnx(model, "not a tensor", tmp_path / "a.onnx")


def test_pooling_site_errors_name_the_layer(tmp_path):
    # a too-small input for the pooling layer: the PoolportError names the function and the sizes
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(0))
    with pytest.raises(PoolportError, match=r"adaptive_avg_pool2d: output size 0x0 for input 7x7"):
        poolport.export_onnx(model, torch.randn(1, 3, 9, 9), tmp_path / "a.onnx")


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_pooling_sites_emit_only_portable_operators(tmp_path, exporter):
    # read from the exported graph itself, not from what the plan says it emits
    model, x = build("maxpool_style")
    report = poolport.export_onnx(model, x, tmp_path / "m.onnx", exporter=exporter)
    ops = op_counts(onnx.load(str(tmp_path / "m.onnx")))
    assert not set(ops) & NON_PORTABLE_OPS, ops
    assert ops["MaxPool"] + ops["AveragePool"] >= len(report.sites), ops
    model_ops = {"Conv", "Relu", "BatchNormalization", "Gemm", "Flatten", "Reshape", "Shape", "Constant"}
    assert set(ops) <= PORTABLE_POOLING_OPS | model_ops, set(ops) - PORTABLE_POOLING_OPS - model_ops


@pytest.mark.runtime
def test_verify_in_openvino_and_ncnn(tmp_path):
    from poolport.runtimes.registry import available

    if not (available("openvino") and available("ncnn")):
        pytest.skip("pip install 'poolport[runtimes]'")
    model, x = build("maxpool_style")
    report = poolport.export_onnx(model, x, tmp_path / "m.onnx", runtimes=("openvino", "ncnn"))
    assert {c.runtime for c in report.checks} == {"onnxruntime", "openvino", "ncnn"}
    assert report.passed


class ReduceMaxHead(nn.Module):
    def forward(self, x):
        return x.amax(dim=(2, 3))  # ReduceMax: ncnn (via pnnx) cannot load it


@pytest.mark.runtime
def test_a_runtime_that_refuses_the_model_fails_verification(tmp_path):
    from poolport.runtimes.registry import available

    if not available("ncnn"):
        pytest.skip("pip install 'poolport[runtimes]'")
    out = tmp_path / "m.onnx"
    with pytest.raises(PoolportError, match="nothing written.*ncnn could not load, convert or run the model.*ReduceMax is not an ncnn layer"):
        poolport.export_onnx(ReduceMaxHead(), torch.randn(1, 3, 5, 5), out, runtimes=("ncnn",))
    assert not out.exists()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_dynamic_batch(exporter, tmp_path):
    import onnxruntime as ort

    model, x = build("maxpool_style")
    out = tmp_path / "m.onnx"
    report = poolport.export_onnx(model, x, out, exporter=exporter, dynamic_batch=True)
    assert "random inputs at 3x3x52x52" in [c.inputs for c in report.checks] and report.passed
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x5 = torch.randn(5, *x.shape[1:])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x5.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), model(x5), rtol=1e-4, atol=1e-5)


@torch.library.custom_op("poolport_test::opaque", mutates_args=())
def _opaque(x: torch.Tensor) -> torch.Tensor:
    """An operator no ONNX exporter knows: the part of a model poolport cannot help with."""
    return x * 2


@_opaque.register_fake
def _(x):
    return torch.empty_like(x)


class _PoolThenOpaque(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(3)

    def forward(self, x):
        return _opaque(self.pool(x))


@pytest.mark.parametrize(
    "exporter,cause",
    [
        ("dynamo", r"DispatchError: No ONNX function found for .*poolport_test\.opaque"),
        ("torchscript", r"UnsupportedOperatorError: .*poolport_test::opaque"),
    ],
)
def test_an_exporter_failure_elsewhere_names_its_root_cause(exporter, cause, tmp_path):
    """The dynamo exporter's ConversionError opens with generic advice in terminal colours; the error
    must name the operator that failed, and write nothing."""
    out = tmp_path / "m.onnx"
    with pytest.raises(PoolportError, match=rf"\({exporter} exporter\) failed on a part of the model poolport "
                       rf"does not rewrite: {cause}") as info:
        poolport.export_onnx(_PoolThenOpaque().eval(), torch.randn(1, 2, 7, 7), out, exporter=exporter)
    message = str(info.value)
    assert "\x1b[" not in message and ".." not in message and "Try --exporter" in message
    assert not out.exists() and os.listdir(tmp_path) == []


def test_exporter_failure_reports_the_first_cause_of_a_chain():
    from poolport.export.torch_onnx import exporter_failure

    chained = RuntimeError(
        "Failed to convert the exported program. \x1b[96mThis is step 3/3\x1b[0m. Next steps:\n"
        "- If there is a missing ONNX function, implement it.\n"
        "<class 'AssertionError'>: only 4D query, key, and value are supported\n"
        "<class 'torch.onnx._internal.exporter._errors.ConversionError'>: Error when translating node"
    )
    assert exporter_failure(chained) == "AssertionError: only 4D query, key, and value are supported."
    assert exporter_failure(ValueError("bad shape.\nmore detail")) == "ValueError: bad shape."
    assert exporter_failure(KeyError()) == "KeyError."
