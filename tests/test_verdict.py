"""The verdict cannot lie (issue 16, items 1, 2 and 4): every output is judged on its own scale, nothing
compared is never "verified", a reference that skips NaN does not judge NaN, and a model that changes its
input in place is verified against the input as given.

Oracles: numpy arrays built by hand, torch's own ops, and ONNX Runtime (or a real runtime where marked)."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import poolport
from poolport.cli.main import main
from poolport.errors import VerificationError
from poolport.runtimes.onnxruntime_rt import run_onnxruntime
from poolport.runtimes.registry import available
from poolport.verify.check import check_model
from poolport.verify.compare import compare_arrays

# -- item 1: every output on its own scale -----------------------------------------------------------

def test_a_large_output_does_not_hide_a_wrong_small_one():
    small = np.linspace(0.0, 1.0, 12).reshape(1, 3, 4).astype(np.float32)
    large = (np.arange(6, dtype=np.float32) * 1e6).reshape(1, 6)
    wrong = small.copy()
    wrong[0, 0, 1] += 0.3  # 30% of this output's scale, 5e-8 of the other's
    result = compare_arrays([small, large], [wrong, large.copy()], rtol=1e-4, names=["boxes", "scores"])
    assert not result.passed and result.verdict == "WRONG"
    first, second = result.outputs
    assert (first.name, first.verdict, second.verdict) == ("boxes", "WRONG", "ok")
    assert first.max_abs_error == pytest.approx(0.3, rel=1e-6) and first.max_rel_error == pytest.approx(0.3, rel=1e-6)
    assert "output 0 (boxes)" in result.reason and "scores" not in result.reason
    assert result.max_rel_error == pytest.approx(0.3, rel=1e-6)  # not 0.3 / 5e6


def test_float_rounding_of_a_large_average_stays_within_tolerance():
    # an average over a large plane, summed in float32 in another order: rounding only, judged as right
    x = torch.randn(1, 64, 224, 224)
    want = torch.nn.functional.adaptive_avg_pool2d(x.double(), 1).float().numpy()
    got = x.numpy().astype(np.float32).sum(axis=(2, 3), keepdims=True, dtype=np.float32) / np.float32(224 * 224)
    assert compare_arrays([want], [got], rtol=1e-4).passed


class TwoScales(torch.nn.Module):
    """A detector's shape: a pooled map near 1 beside an output in the millions."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 3), x.sum(1) * 1e6


def test_the_report_lists_each_outputs_error(tmp_path):
    path, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    report = poolport.export_onnx(TwoScales().eval(), torch.randn(1, 3, 9, 9), path, exporter="torchscript",
                                  output_names=["pooled", "sums"], report=rep)
    assert report.passed
    names = [o.name for o in onnx.load(str(path)).graph.output]
    data = json.loads(rep.read_text())
    for check in data["checks"]:
        assert [o["name"] for o in check["outputs"]] == names == ["pooled", "sums"]
        assert all(o["verdict"] == "ok" and o["max_abs_error"] is not None and o["max_rel_error"] <= 1e-4
                   for o in check["outputs"])
    rows = [line for line in report.table().splitlines() if "pooled" in line or "sums" in line]
    assert len(rows) == 2 * len(data["checks"])


def two_output_onnx(path):
    """AveragePool (ceil_mode, count_include_pad) beside x * 1e6, as an ONNX file."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    outs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 3, 5, 5]),
            helper.make_tensor_value_info("big", TensorProto.FLOAT, [1, 3, 8, 8])]
    nodes = [helper.make_node("AveragePool", ["x"], ["pooled"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              ceil_mode=1, count_include_pad=1),
             helper.make_node("Mul", ["x", "c"], ["big"])]
    graph = helper.make_graph(nodes, "g", [x], outs, [numpy_helper.from_array(np.array(1e6, np.float32), "c")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def test_check_reports_each_output(tmp_path, capsys):
    path = two_output_onnx(tmp_path / "m.onnx")
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--json", "-", "--quiet"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert [(o["name"], o["verdict"]) for o in row["outputs"]] == [("pooled", "ok"), ("big", "ok")]
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "per output" in text and "output 0 (pooled)" in text and "output 1 (big)" in text


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["ncnn", "openvino"])
def test_check_catches_a_runtime_wrong_on_the_small_output_only(tmp_path, capsys, runtime):
    # both compute AveragePool with ceil_mode and count_include_pad wrongly (docs/runtimes.md)
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    path = two_output_onnx(tmp_path / "m.onnx")
    assert main(["check", str(path), "--runtimes", runtime, "--json", "-", "--quiet"]) == 1
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["verdict"] == "WRONG" and "output 0 (pooled)" in row["reason"]
    assert [o["verdict"] for o in row["outputs"]] == ["WRONG", "ok"]
    assert row["outputs"][0]["max_abs_error"] > 0.1


@pytest.mark.runtime
def test_export_verified_in_openvino_catches_the_small_output(tmp_path):
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")

    class Detector(torch.nn.Module):
        def forward(self, x):
            pooled = torch.nn.functional.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=True)
            return pooled, x.sum(1) * 1e6

    path = tmp_path / "m.onnx"
    with pytest.raises(VerificationError, match=r"openvino differs.*output 0"):
        poolport.export_onnx(Detector().eval(), torch.randn(1, 3, 8, 8), path, runtimes=["openvino"],
                             exporter="torchscript")
    assert not path.exists()


# -- item 2: nothing compared is never verified -----------------------------------------------------

class LogPool(torch.nn.Module):
    """pool(log(x)): NaN in every window that holds a negative input."""

    def __init__(self, size):
        super().__init__()
        self.pool = poolport.nn.AdaptiveAvgPool2d(size)

    def forward(self, x):
        return self.pool(torch.log(x))


def test_all_nan_outputs_are_not_verified(tmp_path):
    # every 8x8 window of N(0, 1) input holds a negative: every output cell is NaN, in PyTorch and in ONNX Runtime
    x = torch.randn(1, 3, 16, 16)
    assert torch.isnan(LogPool(2)(x)).all()
    path, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    with pytest.raises(VerificationError, match="nothing to compare.*no finite value"):
        poolport.export_onnx(LogPool(2).eval(), x, path, report=rep, exporter="torchscript")
    assert not path.exists()
    data = json.loads(rep.read_text())
    assert data["status"] == "failed" and data["passed"] is False and data["max_abs_error"] is None
    assert data["checks"][0]["outputs"][0]["verdict"] == "not compared"


def test_the_command_line_exits_1_and_says_nothing_was_compared(tmp_path, capsys):
    src = tmp_path / "logpool.py"
    src.write_text("import torch, poolport\n"
                   "class M(torch.nn.Module):\n"
                   "    def forward(self, x):\n"
                   "        return poolport.nn.AdaptiveAvgPool2d(2)(torch.log(x))\n"
                   "def build():\n    return M()\n")
    out = tmp_path / "m.onnx"
    code = main(["convert", f"{src}:build", "--input", "1x3x16x16", "-o", str(out), "--exporter", "torchscript"])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "nothing to compare" in err and "no finite value" in err


def test_partly_nan_outputs_are_compared_cell_by_cell(tmp_path):
    # windows of 2x2: some hold no negative input; NaN where torch has NaN, the finite cells compared
    x = torch.randn(1, 3, 16, 16)
    want = LogPool(8)(x)
    assert torch.isnan(want).any() and torch.isfinite(want).any()
    report = poolport.export_onnx(LogPool(8).eval(), x, tmp_path / "m.onnx", exporter="torchscript")
    assert report.passed and all(o.verdict == "ok" for c in report.checks for o in c.outputs)
    name = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].name
    got = run_onnxruntime(tmp_path / "m.onnx", {name: x.numpy()})[0]
    assert np.array_equal(np.isnan(got), torch.isnan(want).numpy())


def test_every_output_empty_is_nothing_compared():
    empty = np.zeros((1, 3, 0), np.float32)
    alone = compare_arrays([empty], [empty.copy()], rtol=1e-4)
    assert not alone.passed and alone.verdict == "not compared" and "empty" in alone.reason
    assert alone.max_abs_error is None
    beside = compare_arrays([empty, np.ones(3, np.float32)], [empty.copy(), np.ones(3, np.float32)], rtol=1e-4)
    assert beside.passed and [o.verdict for o in beside.outputs] == ["empty", "ok"]
    assert not compare_arrays([], [], rtol=1e-4).passed


def test_one_all_nan_output_beside_a_good_one_is_not_verified():
    nan = np.full((2, 2), np.nan, np.float32)
    result = compare_arrays([np.ones(3, np.float32), nan], [np.ones(3, np.float32), nan.copy()], rtol=1e-4)
    assert not result.passed and [o.verdict for o in result.outputs] == ["ok", "not compared"]
    assert "output 1" in result.reason and "no finite value" in result.reason


def log_pool_onnx(path, shape=(1, 3, 8, 8), square_first=False):
    """Log then AveragePool (ceil_mode, count_include_pad): NaN from every negative input; with
    ``square_first`` the input is -(x * x) - 1 first, so every cell is NaN."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], shape[1], 5, 5])
    nodes, inits, src = [], [], "x"
    if square_first:
        inits = [numpy_helper.from_array(np.array(-1.0, np.float32), "m1")]
        nodes += [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Neg", ["sq"], ["neg"]),
                  helper.make_node("Add", ["neg", "m1"], ["arg"])]
        src = "arg"
    nodes += [helper.make_node("Log", [src], ["l"]),
              helper.make_node("AveragePool", ["l"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                               ceil_mode=1, count_include_pad=1)]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def test_check_does_not_let_a_reference_that_skips_nan_judge(tmp_path, capsys):
    # onnx's reference evaluator pools around NaN; ONNX Runtime carries it through, as PyTorch does
    path = log_pool_onnx(tmp_path / "m.onnx")
    main(["check", str(path), "--runtimes", "onnxruntime", "--json", "-", "--quiet"])
    data = json.loads(capsys.readouterr().out)
    assert data["reference"] == "onnxruntime" and "NaN" in data["reference_note"]
    assert not any(r["verdict"] == "WRONG" for r in data["results"])
    assert main(["check", str(path), "--reference", "evaluator", "--runtimes", "onnxruntime", "--quiet"]) == 2
    assert "cannot judge" in capsys.readouterr().err


def test_check_of_all_nan_outputs_exits_1_and_says_so(tmp_path, monkeypatch, capsys):
    # a runtime that answers exactly what ONNX Runtime answers, all NaN: nothing compared, not "ok"
    from poolport.runtimes import registry

    monkeypatch.setitem(registry.RUNNERS, "openvino", run_onnxruntime)
    monkeypatch.setattr(registry, "available", lambda name: name in ("onnxruntime", "openvino"))
    path = log_pool_onnx(tmp_path / "m.onnx", square_first=True)
    assert main(["check", str(path), "--runtimes", "openvino", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "not compared" in captured.out
    assert "nothing compared" in captured.err and "no finite value" in captured.err


@pytest.mark.runtime
def test_check_of_a_nan_producing_model_passes_openvino(tmp_path):
    # OpenVINO's AveragePool carries NaN through as ONNX Runtime does: judged against ONNX Runtime, it is right
    if not available("openvino"):
        pytest.skip("openvino not installed (pip install 'poolport[runtimes]')")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes = [helper.make_node("Log", ["x"], ["l"]),
             helper.make_node("AveragePool", ["l"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    report = check_model(tmp_path / "m.onnx", runtimes=("openvino",))
    assert report.reference == "onnxruntime" and report.passed, report.table()


def test_legalize_is_judged_by_onnx_runtime_where_the_model_computes_nan(tmp_path):
    path = log_pool_onnx(tmp_path / "m.onnx")
    result = poolport.legalize(path, "all")
    assert result.verified and result.rewritten
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    want, got = run_onnxruntime(path, feeds)[0], run_onnxruntime(result.model, feeds)[0]
    assert np.isnan(want).any() and np.array_equal(np.isnan(want), np.isnan(got))


def test_legalize_of_all_nan_outputs_exits_1_and_writes_nothing(tmp_path, capsys):
    path, out = log_pool_onnx(tmp_path / "m.onnx", square_first=True), tmp_path / "out.onnx"
    assert main(["legalize", str(path), "-o", str(out)]) == 1
    assert not out.exists()
    assert "no finite value" in capsys.readouterr().err
    assert main(["legalize", str(path), "-o", str(out), "--no-verify"]) == 0  # asked for: written unverified


# -- item 4: a model that changes its input in place -------------------------------------------------

class ReluInPlace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.relu = torch.nn.ReLU(inplace=True)
        self.pool = torch.nn.AdaptiveAvgPool2d(3)

    def forward(self, x):
        return self.pool(self.relu(x))


class DoublesItsInput(torch.nn.Module):
    def forward(self, x):
        x.mul_(2)
        return torch.nn.functional.adaptive_max_pool2d(x, 3)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("make", [ReluInPlace, DoublesItsInput])
def test_a_model_that_changes_its_input_is_verified_against_the_input_as_given(tmp_path, make, exporter):
    x = torch.randn(1, 3, 10, 10)
    given = x.clone()
    path = tmp_path / "m.onnx"
    report = poolport.export_onnx(make().eval(), x, path, exporter=exporter)
    assert report.passed and torch.equal(x, given)  # the caller's tensor is untouched
    name = onnx.load(str(path)).graph.input[0].name
    got = run_onnxruntime(path, {name: given.numpy()})[0]
    want = make()(given.clone())
    assert np.allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", [ReluInPlace, DoublesItsInput])
def test_make_portable_verifies_without_changing_the_example(make):
    x = torch.randn(1, 3, 10, 10)
    given = x.clone()
    portable = poolport.make_portable(make().eval(), x)
    assert torch.equal(x, given)
    sites = portable._poolport_sites
    assert sites and all(s.calls == 1 for s in sites)
    with poolport.always_portable():
        assert torch.allclose(portable(given.clone()), make()(given.clone()))
