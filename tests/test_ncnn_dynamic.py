"""``--verify-in ncnn`` for a model with dynamic sizes converts it with pnnx once, for dynamic sizes
(``inputshape`` + ``inputshape2``), and runs that at every size verification picks (issue 17: pnnx ran once
per size, 5 min for vgg11); where pnnx refuses that conversion, each size is converted on its own and the
report says so. The conversions are counted around the real pnnx call; the results are compared with
torch's native pooling (max pooling: bit-exact)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poolport import export_onnx
from poolport.runtimes import ncnn_rt
from poolport.runtimes.registry import available, run_sizes

pytestmark = pytest.mark.runtime

SIZES = [(1, 3, 40, 36), (1, 3, 67, 50), (1, 3, 23, 71), (1, 3, 32, 32)]


@pytest.fixture(autouse=True)
def _ncnn():
    if not available("ncnn"):
        pytest.skip("ncnn/pnnx not installed")


@pytest.fixture
def conversions(monkeypatch):
    """Every pnnx conversion: the shapes it was given (``shapes2`` None for one fixed size); the real
    function runs."""
    calls = []
    real = ncnn_rt.convert_with_pnnx

    def counted(path, shapes, shapes2=None):
        calls.append((shapes, shapes2))
        return real(path, shapes, shapes2)

    monkeypatch.setattr(ncnn_rt, "convert_with_pnnx", counted)
    return calls


def pools() -> nn.Module:
    return nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(3, stride=2, padding=1), nn.MaxPool2d((2, 3))).eval()


def spatial() -> dict:
    return {2: torch.export.Dim("h", min=16, max=256), 3: torch.export.Dim("w", min=16, max=256)}


def dynamic_onnx(tmp_path, batch: bool = False) -> str:
    model, x = pools(), torch.randn(SIZES[0])
    path = tmp_path / "pools.onnx"
    export_onnx(model, (x,), path, dynamic_shapes=(spatial(),), dynamic_batch=batch, verify=False)
    return str(path)


def test_a_dynamic_model_is_converted_once_and_exact_at_every_size(tmp_path, conversions):
    path = dynamic_onnx(tmp_path)
    xs = [torch.randn(s) for s in SIZES]
    answers, note = run_sizes("ncnn", path, [{"input": x.numpy()} for x in xs])
    assert [shapes2 for _, shapes2 in conversions] == [[SIZES[1]]], conversions  # one conversion, two shapes
    assert note == ""
    for x, got in zip(xs, answers):
        assert not isinstance(got, Exception), got
        expected = pools()(x).numpy()
        assert [d for d in got[0].shape if d != 1] == [d for d in expected.shape if d != 1]  # ncnn: unit axes
        assert (got[0].reshape(expected.shape) == expected).all()


def test_export_verifies_in_ncnn_at_every_size_with_one_conversion(tmp_path, conversions):
    model, x = pools(), torch.randn(SIZES[0])
    report = export_onnx(model, (x,), tmp_path / "m.onnx", dynamic_shapes=(spatial(),), runtimes=("ncnn",))
    ncnn = [c for c in report.checks if c.runtime == "ncnn"]
    sized = [c for c in ncnn if c.shapes is not None]
    assert len(sized) >= 3 and len(conversions) == 1 and conversions[0][1] is not None
    assert all(c.passed and c.max_abs_error == 0.0 and not c.note for c in ncnn)  # max pooling: bit-exact


def test_sizes_that_differ_in_the_batch_are_converted_one_by_one(tmp_path, conversions):
    path = dynamic_onnx(tmp_path, batch=True)
    answers, note = run_sizes("ncnn", path, [{"input": torch.randn(1, 3, 40, 36).numpy()},
                                             {"input": torch.randn(2, 3, 67, 50).numpy()}])
    assert [shapes2 for _, shapes2 in conversions] == [None, None] and note == ""
    assert not isinstance(answers[0], Exception)


def test_where_pnnx_refuses_the_dynamic_conversion_each_size_is_converted_and_the_report_says_so(
        tmp_path, monkeypatch):
    # fault injection: pnnx refusing inputshape2 (the real converter runs for every fixed size)
    real, calls = ncnn_rt.convert_with_pnnx, []

    def refuses_dynamic(path, shapes, shapes2=None):
        calls.append(shapes2)
        if shapes2 is not None:
            raise ncnn_rt.PoolportError("pnnx could not convert the model: refused for the test")
        return real(path, shapes)

    monkeypatch.setattr(ncnn_rt, "convert_with_pnnx", refuses_dynamic)
    model, x = pools(), torch.randn(SIZES[0])
    report = export_onnx(model, (x,), tmp_path / "m.onnx", dynamic_shapes=(spatial(),), runtimes=("ncnn",))
    ncnn = [c for c in report.checks if c.runtime == "ncnn"]
    assert calls[0] is not None and calls[1:] == [None] * len(ncnn)
    assert all(c.passed and c.max_abs_error == 0.0 for c in ncnn)
    assert "pnnx could not convert the model for dynamic sizes (" in ncnn[0].note
    assert "it was converted at each size instead" in report.table()


def test_once_pnnx_refuses_a_size_too_the_sizes_after_it_are_not_tried(tmp_path, monkeypatch):
    calls = []

    def refuses(path, shapes, shapes2=None):
        calls.append(shapes2)
        raise ncnn_rt.PoolportError("pnnx could not convert the model: refused for the test")

    monkeypatch.setattr(ncnn_rt, "convert_with_pnnx", refuses)
    answers, _ = run_sizes("ncnn", dynamic_onnx(tmp_path), [{"input": torch.randn(s).numpy()} for s in SIZES])
    assert calls == [[SIZES[1]], None]  # the dynamic conversion, then the first size
    assert all(isinstance(a, ncnn_rt.PoolportError) for a in answers)
    assert "refused for the test" in str(answers[0])
    assert all(str(a) == "not converted: pnnx refused the model at 1x3x40x36." for a in answers[1:])
