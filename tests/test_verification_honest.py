"""Verification cannot pass by accident: NaN or inf where the other side is finite fails and says where,
and a report with nothing checked is 'unverified', never 'passed' (issue: honest to the last digit)."""

import json

import numpy as np
import pytest
import torch

import poolport
from poolport.plan import plan_pool
from poolport.verify.compare import compare, difference
from poolport.verify.in_pytorch import site_problems
from poolport.verify.recorder import SiteRecorder


def test_nan_in_the_runtime_output_fails_and_says_where():
    check = compare([torch.tensor([1.0, 2.0, 3.0])], [np.array([1.0, 2.5, np.nan])], 1e-4, "example inputs", "ort")
    assert not check.passed and check.max_abs_error == float("inf")
    assert "index (2,)" in check.note and "nan" in check.note


def test_inf_where_the_reference_is_finite_fails():
    err, _, problem = difference(np.array([[1.0, 2.0]]), np.array([[1.0, np.inf]]))
    assert err == float("inf") and "(0, 1)" in problem


def test_matching_non_finite_cells_are_not_an_error():
    err, scale, problem = difference(np.array([1.0, np.inf, np.nan]), np.array([1.0, np.inf, np.nan]))
    assert (err, scale, problem) == (0.0, 1.0, "")


def test_a_site_whose_portable_result_has_nan_fails():
    rec = SiteRecorder()
    x = torch.randn(1, 1, 9, 9)
    native = torch.nn.functional.adaptive_avg_pool2d(x, 7)
    portable = native.clone()
    portable[0, 0, 3, 3] = float("nan")
    rec.record("head", "adaptive_avg_pool2d", x, (7, 7), plan_pool("avg", (9, 9), (7, 7)), portable, native)
    problems = site_problems(rec.ordered())
    assert problems and "non-finite" in problems[0] and "head" in problems[0]


def test_nothing_checked_is_unverified_not_passed(tmp_path):
    report = poolport.export_onnx(torch.nn.AdaptiveAvgPool2d(3), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx",
                                  verify=False, report=tmp_path / "r.json")
    assert report.status == "unverified" and not report.passed
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["status"] == "unverified" and data["passed"] is False and data["checks"] == []


@pytest.mark.parametrize("external", [False, True])
def test_target_legalizes_a_model_with_weights_under_the_dynamo_exporter(tmp_path, external):
    # the staged dynamo export keeps its weights in a data file: legalize must read the graph with them
    # (it failed onnx.checker on every model with weights: "... should be stored in m.onnx.data")
    import onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1),  # 6.9 kB of weights: external
                                torch.nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True)).eval()
    x = torch.randn(1, 3, 8, 8)
    path = tmp_path / "m.onnx"
    report = poolport.export_onnx(model, x, path, exporter="dynamo", target="ncnn", external_data=external or None)
    assert report.passed and any("avg-ceil-include-pad" in c for c in report.legalized)
    assert (report.external_data is not None) == external
    graph = onnx.load(str(path))  # loads its data file, if any, from beside it
    assert "Pad" in [n.op_type for n in graph.graph.node]
    assert {i.name for i in graph.graph.initializer} >= {"0.weight", "0.bias"}


def test_a_failed_export_still_writes_its_report(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(5)).eval()
    out, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    with pytest.raises(poolport.PoolportError, match="verification failed"):
        poolport.export_onnx(model, torch.randn(1, 3, 17, 17), out, report=rep, rtol=1e-15)  # no float is that exact
    assert not out.exists()
    data = json.loads(rep.read_text())
    assert data["status"] == "failed" and "verification failed" in data["error"]
    assert data["checks"] and not all(c["passed"] for c in data["checks"]) and data["sites"]


def test_the_report_never_takes_the_models_path(tmp_path):
    with pytest.raises(poolport.PoolportError, match="report and the model"):
        poolport.export_onnx(torch.nn.AdaptiveAvgPool2d(3), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx",
                             report=tmp_path / "m.onnx")


def test_the_report_says_what_ran_and_with_what(tmp_path):
    rep = tmp_path / "r.json"
    poolport.export_onnx(torch.nn.AdaptiveMaxPool2d(3), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx", report=rep)
    data = json.loads(rep.read_text())
    assert data["schema"].startswith("poolport.report/")
    assert data["versions"]["torch"] == torch.__version__.split("+")[0] and "onnxruntime" in data["versions"]
    assert data["input_shapes"] == [[1, 2, 9, 9]] and data["input_dtypes"] == ["float32"]
    seeds = [c["seed"] for c in data["checks"]]
    assert seeds[0] is None and isinstance(seeds[1], int)  # the example, then fresh inputs with their seed


def _conv_pool(dtype):
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(5)).to(dtype).eval()


def test_float16_models_are_checked_at_their_own_precision(tmp_path):
    x = torch.randn(1, 3, 17, 17, dtype=torch.float16)
    report = poolport.export_onnx(_conv_pool(torch.float16), x, tmp_path / "m.onnx", exporter="torchscript")
    assert report.passed and report.tolerance == 1e-2 and report.max_rel_error > 0


def test_a_model_onnx_runtime_cannot_run_is_a_clear_error(tmp_path):
    x = torch.randn(1, 3, 17, 17, dtype=torch.float64)
    with pytest.raises(poolport.PoolportError, match="ONNX Runtime cannot load.*model.float()"):
        poolport.export_onnx(_conv_pool(torch.float64), x, tmp_path / "m.onnx", exporter="torchscript")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.runtime
def test_ncnn_that_cannot_load_says_why(tmp_path):
    from poolport.runtimes.ncnn_rt import run_ncnn_files
    from poolport.runtimes.registry import available

    if not available("ncnn"):
        pytest.skip("ncnn/pnnx not installed (pip install 'poolport[runtimes]')")
    param = tmp_path / "m.param"
    param.write_text("7767517\n2 2\nInput in0 0 1 in0\nTensor.reshape reshape_0 1 1 in0 out0 0=4\n")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(poolport.PoolportError, match="Tensor.reshape is not an ncnn layer"):
        run_ncnn_files(param, tmp_path / "m.bin", [np.zeros((1, 2, 3, 4), np.float32)])


def test_a_runtime_that_could_not_run_is_not_reported_as_a_number():
    from poolport.export.report import Report
    from poolport.verify.compare import Check

    reason = "ncnn cannot load the converted model: layer type Tensor.reshape is not an ncnn layer " + "x" * 100
    report = Report(model="m", output=None, exporter="dynamo",
                    checks=[Check("example inputs", "onnxruntime", 1e-7, 1e-7, True),
                            Check("example inputs", "ncnn", float("inf"), float("inf"), False, reason, ran=False)])
    table = report.table()
    assert "could not run" in table and reason in table  # the whole reason, not cut
    assert "inf" not in table.split("could not load")[0].split("ncnn", 1)[1]
    data = report.to_dict()
    assert data["status"] == "failed" and data["checks"][1]["ran"] is False and data["checks"][1]["note"] == reason


def _model_for_opsets():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), poolport.nn.AdaptiveMaxPool2d(5)).eval()


def test_torchscript_export_at_opset_9_adapts_the_slices(tmp_path):
    import onnx

    report = poolport.export_onnx(_model_for_opsets(), torch.randn(1, 3, 11, 11), tmp_path / "m.onnx",
                                  exporter="torchscript", opset=9)
    graph = onnx.load(str(tmp_path / "m.onnx"))
    assert report.passed and report.opset == 9 and [o.version for o in graph.opset_import if o.domain == ""] == [9]
    assert any(n.op_type == "Slice" and any(a.name == "starts" for a in n.attribute) for n in graph.graph.node)


@pytest.mark.parametrize("opset,match", [(0, "7 or newer"), (7, "asked for, but the dynamo exporter wrote opset 18")])
def test_an_opset_the_exporter_does_not_write_is_refused(tmp_path, opset, match):
    with pytest.raises(poolport.PoolportError, match=match):
        poolport.export_onnx(_model_for_opsets(), torch.randn(1, 3, 11, 11), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()
