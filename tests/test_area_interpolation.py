"""``F.interpolate(..., mode="area")`` is adaptive average pooling (torch computes it as
``adaptive_avg_pool{d}d``): a pooling site wherever adaptive pooling is one (issue 19 item 3). Oracle:
torch's own area interpolation, eager; exported graphs run in ONNX Runtime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from helpers import NATIVE

import poolport
from poolport.functional.dispatch import observing


class Area(torch.nn.Module):
    """Area interpolation by ``size`` (smp's PSPNet pools its pyramid so while exporting to ONNX)."""

    def __init__(self, size=(3, 3)):
        super().__init__()
        self.size = size

    def forward(self, x):
        return F.interpolate(x, size=self.size, mode="area") * 2


class Upsample(torch.nn.Module):
    """``nn.Upsample`` in area mode, by scale factor."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.Upsample(scale_factor=0.3, mode="area")

    def forward(self, x):
        return self.up(x) + 1


def calls(model, x) -> list:
    """The pooling calls poolport sees while ``model`` runs on ``x``, portable path forced."""
    seen = []

    def observer(site, where, inp, out_size, plan, out):
        seen.append((where, tuple(out_size)))
        return out

    with observing(observer), poolport.always_portable(), torch.no_grad():
        model(x)
    return seen


@pytest.mark.parametrize("d", [1, 2, 3])
def test_make_portable_routes_area_interpolation_exactly(d):
    x = torch.randn(2, 3, *[13, 10, 7][:d])
    size = (4, 3, 5)[:d]
    model = Area(size)
    portable = poolport.make_portable(model)
    assert calls(portable, x) == [(f"adaptive_avg_pool{d}d", size)]
    with poolport.always_portable(), torch.no_grad():
        got = portable(x)
    want = model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(got, NATIVE["avg", d](x, size) * 2, rtol=0, atol=1e-6)


def test_upsample_area_by_scale_factor_is_a_site_with_torchs_output_size():
    x = torch.randn(1, 2, 23, 17)
    model = Upsample()
    want = model(x)
    assert calls(poolport.make_portable(model), x) == [("adaptive_avg_pool2d", tuple(want.shape[2:]))]
    with poolport.patch(), torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_patch_routes_area_interpolation_and_leaves_other_modes():
    x = torch.randn(1, 2, 20, 22)
    seen = []

    def observer(site, where, inp, out_size, plan, out):
        seen.append(where)
        return out

    with poolport.patch(), observing(observer), torch.no_grad():
        F.interpolate(x, size=(3, 3), mode="area")
        F.interpolate(x, size=(30, 30), mode="bilinear", align_corners=False)
        F.interpolate(x, scale_factor=2, mode="nearest")
    assert seen == ["adaptive_avg_pool2d"]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_static_export_reports_the_site_and_writes_poolports_plan(exporter, tmp_path):
    x = torch.randn(1, 2, 20, 22)
    report = poolport.export_onnx(Area(), (x,), tmp_path / "m.onnx", exporter=exporter)
    assert [s.op for s in report.sites] == ["adaptive_avg_pool2d"], report.table()
    assert "GatherND" not in report.onnx_ops and "Gather" not in report.onnx_ops, report.onnx_ops
    assert "AveragePool" in report.onnx_ops


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_dynamic_export_is_exact_at_other_sizes(exporter, tmp_path):
    x = torch.randn(1, 2, 20, 22)
    path = tmp_path / "m.onnx"
    report = poolport.export_onnx(Area((3, 5)), (x,), path, exporter=exporter,
                                  dynamic_shapes=({2: "h", 3: "w"},))
    assert [s.dynamic for s in report.sites] == [True] and len(report.sizes_verified) >= 3
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = onnx.load(str(path), load_external_data=False).graph.input[0].name
    for h, w in [(7, 31), (40, 9), (3, 5), (64, 64)]:
        t = torch.randn(1, 2, h, w)
        want = F.interpolate(t, size=(3, 5), mode="area").numpy() * 2
        got = sess.run(None, {name: t.numpy()})[0]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), (h, w)
