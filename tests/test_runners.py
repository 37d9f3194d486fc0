"""Runners say what happened (issue 16, item 9): the isolated runtimes (MNN, LiteRT) take a model named
relative to the caller's working folder; a refusal is reported as a refusal with the converter's own
words; LiteRT's environment is found from any working folder, and ``check`` names where it looked."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from poolport.cli.main import main
from poolport.runtimes import litert_rt
from poolport.runtimes.registry import available

ROOT = Path(__file__).resolve().parents[1]


def pool_model(op="AveragePool", shape=(1, 3, 10, 12), **attrs):
    attrs = attrs or {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def check_json(argv, capsys):
    code = main(["check", *argv, "--json", "-", "--quiet"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["mnn", "litert"])
def test_a_model_named_relative_to_the_working_folder_runs_in_the_isolated_runtimes(runtime, tmp_path, monkeypatch,
                                                                                    capsys):
    # the worker runs in a temporary folder: "r.onnx" was refused there (LiteRT: FileNotFoundError)
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    onnx.save(pool_model(), tmp_path / "r.onnx")
    monkeypatch.chdir(tmp_path)
    code, data, err = check_json(["r.onnx", "--runtimes", runtime], capsys)
    (row,) = data["results"]
    assert code == 0 and row["verdict"] == "ok" and row["converted"], (row, err)
    # and the relative path answers exactly what the absolute one does (against the reference evaluator)
    code, absolute, _ = check_json([str(tmp_path / "r.onnx"), "--runtimes", runtime], capsys)
    assert code == 0 and absolute["results"][0]["max_abs_error"] == row["max_abs_error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.onnx"]


@pytest.mark.runtime
def test_a_converter_refusal_quotes_what_the_converter_printed(tmp_path, monkeypatch, capsys):
    # MNN's converter says why on its standard output ("These Op Not Support: ONNX::Hardmax"), which the
    # worker's captured output used to swallow while the reason said "see its output above"
    if not available("mnn"):
        pytest.skip("mnn not installed (pip install 'poolport[runtimes]')")
    onnx.save(pool_model("Hardmax", (1, 1, 8, 8), axis=-1), tmp_path / "h.onnx")
    monkeypatch.chdir(tmp_path)
    code, data, err = check_json(["h.onnx", "--runtimes", "mnn"], capsys)
    (row,) = data["results"]
    assert code == 1 and row["verdict"] == "refused" and not row["converted"]
    assert "Hardmax" in row["reason"] and "above" not in row["reason"], row["reason"]
    assert "mnn refused the model" in err and "Hardmax" in err and "nothing was checked" not in err, err
    # ONNX Runtime, the reference, computes the same file: the refusal is MNN's, not the model's
    code, data, _ = check_json(["h.onnx", "--runtimes", "onnxruntime"], capsys)
    assert code == 0 and data["results"][0]["verdict"] == "ok"


def test_a_refusal_is_reported_as_a_refusal_with_its_reason(tmp_path, monkeypatch, capsys):
    # the summary said "nothing was checked: no selected runtime is installed" for an installed runtime
    # that refused the model
    from poolport.runtimes import registry

    def refuses(model, feeds):
        raise RuntimeError("Unsupported operator AveragePool")

    onnx.save(pool_model(), tmp_path / "m.onnx")
    monkeypatch.setitem(registry.RUNNERS, "onnxruntime", refuses)
    code, data, err = check_json([str(tmp_path / "m.onnx"), "--runtimes", "onnxruntime"], capsys)
    assert code == 1 and data["results"][0]["verdict"] == "refused"
    assert "onnxruntime refused the model" in err and "Unsupported operator AveragePool" in err, err
    assert "not installed" not in err


def test_check_names_where_it_looked_for_litert(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no-such-env" / "bin" / "python"
    monkeypatch.setenv("POOLPORT_LITERT_PYTHON", str(missing))
    onnx.save(pool_model(), tmp_path / "m.onnx")
    code, data, err = check_json([str(tmp_path / "m.onnx"), "--runtimes", "litert"], capsys)
    (row,) = data["results"]
    assert code == 1 and row["verdict"] == "not installed"
    assert str(missing) in row["reason"] and "POOLPORT_LITERT_PYTHON" in row["reason"], row
    assert "litert is not installed" in err and str(missing) in err, err

    monkeypatch.delenv("POOLPORT_LITERT_PYTHON")
    monkeypatch.setattr(litert_rt, "venv_candidates", lambda: [str(tmp_path / "a" / ".venv-litert" / "bin" / "python")])
    monkeypatch.setattr(litert_rt, "find_spec", lambda name: None)  # this Python has no onnx2tf
    code, data, err = check_json([str(tmp_path / "m.onnx"), "--runtimes", "litert"], capsys)
    reason = data["results"][0]["reason"]
    assert code == 1 and str(tmp_path / "a" / ".venv-litert") in reason and "not set" in reason, reason


def fake_litert_python(folder: Path) -> Path:
    """A stand-in for a Python with onnx2tf and ai-edge-litert: it answers the probe with exit 0."""
    python = folder / ".venv-litert" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    return python


def test_litert_is_found_beside_this_pythons_environment_from_any_folder(tmp_path, monkeypatch):
    # `make litert` builds .venv-litert beside .venv; it was only looked for in the working folder
    python = fake_litert_python(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.delenv("POOLPORT_LITERT_PYTHON", raising=False)
    monkeypatch.setattr(litert_rt, "find_spec", lambda name: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "project" / ".venv"))
    monkeypatch.chdir(elsewhere)
    assert litert_rt.litert_python() == str(python)
    assert litert_rt.RUNTIME.available()


@pytest.mark.runtime
def test_the_checkouts_litert_is_found_from_another_folder(tmp_path, monkeypatch):
    # the real environment `make litert` built in this checkout, found with no variable set, from elsewhere
    built = ROOT / ".venv-litert" / "bin" / "python"
    if not built.exists() or not os.path.exists(os.path.realpath(built)):
        pytest.skip("no .venv-litert in this checkout (make litert)")
    monkeypatch.delenv("POOLPORT_LITERT_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)
    found = litert_rt.litert_python()
    assert found is not None and Path(found).parent.parent.name == ".venv-litert"
    # and it runs a model: a 2x2 average pool of a ramp, against numpy
    onnx.save(pool_model("AveragePool", (1, 1, 4, 4), kernel_shape=[2, 2], strides=[2, 2]), tmp_path / "m.onnx")
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    (got,) = litert_rt.RUNTIME.run("m.onnx", {"x": x})
    want = x.reshape(1, 1, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, rtol=1e-6)
