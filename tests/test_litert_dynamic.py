"""LiteRT and ONNX models with symbolic input sizes: a LiteRT model has static sizes, so the worker
converts a dynamic ONNX model at the size it is run with (onnx2tf's overwrite_input_shape), and where
onnx2tf still cannot convert it (poolport's size-generic pooling graph), the refusal says what to do."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import poolport
from poolport.runtimes.registry import available, run_batch

pytestmark = pytest.mark.runtime


def _need_litert():
    if not available("litert"):
        pytest.skip("LiteRT not installed (make litert)")


class Plain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def _dynamic(model, path, exporter="torchscript"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 12, 12),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17)
    return path


def test_a_dynamic_onnx_model_runs_in_litert_at_each_size(tmp_path):
    _need_litert()
    model = Plain().eval()
    path = _dynamic(model, tmp_path / "plain.onnx")
    xs = [torch.randn(1, 3, 12, 12), torch.randn(1, 3, 20, 9)]
    answers = run_batch("litert", [(path, {"x": x.numpy()}) for x in xs])
    for x, got in zip(xs, answers):
        assert not isinstance(got, Exception), got
        want = model(x).detach().numpy()
        np.testing.assert_allclose(np.asarray(got[0]).reshape(want.shape), want, rtol=1e-5, atol=1e-5)


def _run_size_generic_head(runtime, tmp_path):
    """poolport's size-generic graph of AdaptiveAvgPool2d(7) (exported at 15x15), run in ``runtime`` at 20x20:
    what ``run_batch`` returns for it (an exception where the runtime refuses it)."""
    path = tmp_path / "head.onnx"
    h = torch.export.Dim("h", min=8, max=64)
    poolport.export_onnx(poolport.nn.AdaptiveAvgPool2d(7), torch.randn(1, 3, 15, 15), path, exporter="torchscript",
                         dynamic_shapes=({2: h, 3: h},), verify=False)
    (got,) = run_batch(runtime, [(path, {"input0": np.random.default_rng(0).random((1, 3, 20, 20), np.float32)})])
    return got


def test_the_size_generic_pooling_graph_is_refused_with_what_to_do(tmp_path):
    _need_litert()
    got = _run_size_generic_head("litert", tmp_path)
    assert isinstance(got, Exception)
    assert "static H/W for LiteRT" in str(got) and "1,3,20,20" in str(got)


def test_ncnn_refusal_of_the_size_generic_graph_says_what_to_do(tmp_path):
    # pnnx refuses poolport's size-generic graph (its If branches): the message says how to get ncnn at
    # every size
    if not available("ncnn"):
        pytest.skip("ncnn not installed")
    got = _run_size_generic_head("ncnn", tmp_path)
    assert isinstance(got, Exception)
    assert "pnnx and two input shapes" in str(got)
