"""torch.jit.script works on poolport's modules and on make_portable copies, as on timm's layers: the
scripted module runs torch's native op (TorchScript cannot hold poolport's Python), and exporting the
scripted model writes it portably through poolport's ONNX symbolics."""

import warnings

import onnx
import pytest
import torch
from helpers import NATIVE

import poolport
from poolport.onnxfile.graph import NON_PORTABLE_OPS, op_counts

MODULES = [("avg", 1), ("avg", 2), ("avg", 3), ("max", 1), ("max", 2), ("max", 3)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of torch.compile
        yield


@pytest.mark.parametrize("op,d", MODULES)
def test_modules_script_to_torchs_op(op, d):
    cls = getattr(poolport.nn, f"Adaptive{op.capitalize()}Pool{d}d")
    scripted = torch.jit.script(cls(5))
    x = torch.randn(2, 3, *([9] * d))
    assert torch.equal(scripted(x), NATIVE[op, d](x, 5))


def test_a_portable_model_scripts_and_exports_portably(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveMaxPool2d(5), torch.nn.AdaptiveAvgPool2d(3))
    portable = poolport.make_portable(model.eval())
    scripted = torch.jit.script(portable)
    x = torch.randn(1, 3, 13, 13)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))
        other = torch.randn(2, 3, 22, 17)  # scripted, torch's own op: exact at any size
        assert torch.equal(scripted(other), model(other))
    assert len(portable._forward_pre_hooks) == 1  # the copy keeps its routing
    report = poolport.export_onnx(scripted, x, tmp_path / "s.onnx", exporter="torchscript")
    assert report.passed
    ops = op_counts(onnx.load(str(tmp_path / "s.onnx")))
    assert not set(ops) & NON_PORTABLE_OPS and ops["MaxPool"] >= 1, ops
