"""``poolport check``: every installed runtime against a reference, a table and JSON, non-zero exit when a
runtime is wrong or refuses, and a model file that is never touched."""

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from poolport.cli.main import main
from poolport.runtimes.registry import available
from poolport.verify import check as check_mod
from poolport.verify.check import check_model
from poolport.verify.compare import compare_arrays


def pool_model(op, shape, opset=17, dynamic=False, **attrs):
    dims = ["N", shape[1]] + ["H", "W", "D"][: len(shape) - 2] if dynamic else list(shape)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_every_runtime_computes_passes_with_a_table_and_json(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("AveragePool", (1, 5, 9, 11), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), path)
    before = digest(path)
    out = tmp_path / "r.json"
    code = main(["check", str(path), "--runtimes", "onnxruntime", "--json", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "onnx reference evaluator" in text and "onnxruntime" in text and " ok" in text
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["inputs"] == {"x": [1, 5, 9, 11]}
    (row,) = data["results"]
    assert row["runtime"] == "onnxruntime" and row["verdict"] == "ok" and row["max_rel_error"] < 1e-6
    assert digest(path) == before


def test_wrong_numbers_fail_the_check(tmp_path, monkeypatch, capsys):
    # a runtime that answers with a slightly wrong value: WRONG, exit 1 (the runner is replaced here to
    # test the verdict; the real runtimes' wrong answers are in the runtime-marked tests below)
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("MaxPool", (1, 3, 8, 8), kernel_shape=[2, 2], strides=[2, 2]), path)
    from poolport.runtimes import registry as runtimes
    from poolport.runtimes.onnxruntime_rt import run_onnxruntime

    def off_by_a_bit(model, feeds):
        (y,) = run_onnxruntime(model, feeds)
        y[0, 0, 0, 0] += 0.01
        return [y]

    def nan(model, feeds):
        (y,) = run_onnxruntime(model, feeds)
        y[0, 1, 1, 1] = np.nan
        return [y]

    def refuses(model, feeds):
        raise RuntimeError("Unsupported operator MaxPool")

    for runner, verdict in [(off_by_a_bit, "WRONG"), (nan, "WRONG"), (refuses, "refused")]:
        monkeypatch.setitem(runtimes.RUNNERS, "onnxruntime", runner)
        code = main(["check", str(path), "--runtimes", "onnxruntime", "--json", "-", "--quiet"])
        data = json.loads(capsys.readouterr().out)
        assert code == 1 and data["passed"] is False
        assert data["results"][0]["verdict"] == verdict, data
    assert "Unsupported operator MaxPool" in data["results"][0]["reason"]


def test_nothing_checked_is_not_a_pass(tmp_path, monkeypatch, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("MaxPool", (1, 3, 8, 8), kernel_shape=[2, 2]), path)
    monkeypatch.setattr("poolport.runtimes.registry.available", lambda name: False)
    assert main(["check", str(path), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "nothing was checked" in captured.err
    assert captured.out.count("not installed") == 5


def test_dynamic_inputs_need_a_size_and_name_the_input(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("AveragePool", (1, 4, 0, 0), dynamic=True, kernel_shape=[2, 2]), path)
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--quiet"]) == 2
    assert "input x has dynamic dimensions (?x4x?x?)" in capsys.readouterr().err
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--input", "x=2x4x9x7", "--quiet"]) == 0
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--input", "2x4x9x7", "--quiet"]) == 0
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--input", "2x3x9x7", "--quiet"]) == 2
    assert "fixed at ?x4x?x?" in capsys.readouterr().err
    assert main(["check", str(path), "--input", "y=1x4x9x9", "--quiet"]) == 2
    assert "no input named y" in capsys.readouterr().err


def test_missing_external_data_is_refused(tmp_path, capsys):
    # MNN reads zeros for weights it cannot find: check refuses the model instead of checking it
    w = np.random.default_rng(0).standard_normal((4, 4, 1, 1)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2])]
    graph = helper.make_graph(nodes, "g", [x], [y], [onnx.numpy_helper.from_array(w, "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    onnx.save(m, path, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    assert main(["check", str(path), "--runtimes", "onnxruntime", "--quiet"]) == 0
    (tmp_path / "m.onnx.data").unlink()
    assert main(["check", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "m.onnx.data (missing)" in err and "read zeros" in err


def test_bad_files_and_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert main(["check", str(bad), "--quiet"]) == 2
    assert "is not an ONNX model" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "none.onnx"), "--quiet"]) == 2
    good = tmp_path / "m.onnx"
    onnx.save(pool_model("MaxPool", (1, 3, 8, 8), kernel_shape=[2, 2]), good)
    assert main(["check", str(good), "--runtimes", "tensorrtx", "--quiet"]) == 2
    assert "unknown runtime tensorrtx" in capsys.readouterr().err
    assert main(["check", str(good), "--json", str(good), "--quiet"]) == 2


def test_compare_arrays_fails_closed():
    r = [np.ones((1, 2, 3, 3))]
    assert compare_arrays(r, [np.ones((1, 2, 3, 3))], rtol=1e-4, unit_dims=True).passed
    assert compare_arrays(r, [np.ones((2, 3, 3))], rtol=1e-4, unit_dims=True).passed  # ncnn drops the batch axis
    assert "shape" in compare_arrays(r, [np.ones((1, 2, 3, 4))], rtol=1e-4, unit_dims=True).reason
    assert "shape" in compare_arrays(r, [np.ones((1, 2, 9))], rtol=1e-4, unit_dims=True).reason  # same size
    assert "outputs" in compare_arrays(r, [], rtol=1e-4, unit_dims=True).reason
    got = np.ones((1, 2, 3, 3))
    got[0, 0, 0, 0] = np.inf
    assert "non-finite" in compare_arrays(r, [got], rtol=1e-4, unit_dims=True).reason


def test_large_graphs_use_onnxruntime_as_the_reference(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("MaxPool", (1, 3, 8, 8), kernel_shape=[2, 2]), path)
    monkeypatch.setattr(check_mod, "EVALUATOR_MAX_NODES", 0)
    report = check_model(path, runtimes=("onnxruntime",))
    assert report.reference == "onnxruntime"
    assert report.results[0].verdict == "reference"
    assert not report.passed  # ONNX Runtime against itself proves nothing: no runtime was checked


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["mnn", "litert"])
def test_isolated_runtimes_convert_a_copy_and_report_what_they_get_wrong(tmp_path, runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    # 3 channels: onnx2tf would download a calibration file for this input; it must not need to
    ok = tmp_path / "ok.onnx"
    onnx.save(pool_model("AveragePool", (1, 3, 10, 12), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         ceil_mode=1), ok)
    before = digest(ok)
    report = check_model(ok, runtimes=(runtime,))
    assert report.passed, report.table()
    assert report.results[0].converted and report.results[0].version
    assert digest(ok) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ok.onnx"]
    if runtime == "mnn":
        # measured: MNN 3.6.1 divides a 3-D average pool with pads wrongly (no error): WRONG, exit 1
        wrong = tmp_path / "wrong.onnx"
        onnx.save(pool_model("AveragePool", (1, 4, 7, 7, 7), kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6),
                  wrong)
        assert main(["check", str(wrong), "--runtimes", "mnn", "--quiet"]) == 1


def test_asymmetric_maxpool_is_not_judged_by_the_evaluator(tmp_path, capsys):
    # onnx 1.23's reference evaluator reads MaxPool pads per axis pair: a SAME_UPPER MaxPool gets the wrong
    # output size there, so check takes ONNX Runtime as the reference (and says so)
    path = tmp_path / "m.onnx"
    onnx.save(pool_model("MaxPool", (1, 5, 8, 9), kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), path)
    report = check_model(path, runtimes=("onnxruntime", "openvino") if available("openvino") else ("onnxruntime",))
    assert report.reference == "onnxruntime"
    assert main(["check", str(path), "--reference", "evaluator", "--quiet"]) == 2
    assert "asymmetric pads wrongly" in capsys.readouterr().err
