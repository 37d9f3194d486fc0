"""Inputs at the edges get a right answer or a PoolportError, never a raw torch error or a graph that
ONNX Runtime refuses (issue: honest to the last digit, item 12)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

import poolport
import poolport.functional as PF
from poolport.testing import reference


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_channels_last_global_pooling_exports_and_runs(tmp_path, keepdims, exporter):
    x = torch.randn(2, 7, 9, 5)  # (N, H, W, C)
    m = poolport.nn.GlobalAvgPool(keepdims=keepdims, data_format="channels_last")
    report = poolport.export_onnx(m, x, tmp_path / "g.onnx", exporter=exporter)
    assert report.passed
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    want = x.mean(dim=(1, 2), keepdim=keepdims).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_half_precision_3d_same_and_global_average_on_cpu():
    x = torch.randn(1, 2, 5, 6, 7).half()
    y = PF.avg_pool3d_same(x, 3, 2)
    want = reference.same_pool(x.double().numpy(), (3, 3, 3), (2, 2, 2), "avg")
    assert y.dtype == torch.float16
    np.testing.assert_allclose(y.double().numpy(), want, rtol=2e-3, atol=2e-3)
    g = PF.global_avg_pool(x)
    np.testing.assert_allclose(g.double().numpy(), x.double().mean(dim=(2, 3, 4)).numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("call,match", [
    (lambda: PF.global_avg_pool(torch.randn(1, 2, 3, 3, 3, 3)), "4 spatial axes.*1 to 3"),
    (lambda: PF.max_pool2d_same(torch.ones(1, 1, 4, 4, dtype=torch.bool), 2), "bool input cannot be pooled"),
    (lambda: PF.adaptive_max_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.bool), 2), "bool input cannot be pooled"),
])
def test_unsupported_inputs_are_refused_clearly(call, match):
    for forced in (False, True):
        with pytest.raises(poolport.PoolportError, match=match):
            if forced:
                with poolport.always_portable():
                    call()
            else:
                call()
