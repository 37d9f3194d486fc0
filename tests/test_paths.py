"""One place decides every path a command writes (``poolport.onnxfile.paths.WritePlan``): no command
writes over a file it reads (the model, its external data, a factory's source, a .pt2 or TorchScript
file), with or without --force; no two outputs of one command land on one file; no existing file is
replaced without --force. Each refusal comes before any work, exits 2, and leaves every file byte for byte
as it was (the oracle: the files' own bytes, read before and after)."""

import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import poolport
from poolport import PoolportError
from poolport.cli.main import main
from poolport.onnxfile.paths import WritePlan

FACTORY = "import torch\nfrom torch import nn\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3))\n"


def snapshot(folder):
    """Every file under ``folder`` (hidden ones and those in sub-folders too) with the digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "link"
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def refused(argv, folder, capsys, *needles):
    """Run the command line; it must exit 2 with one line naming ``needles``, and leave ``folder`` as it was."""
    before = snapshot(folder)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert snapshot(folder) == before
    return err


def onnx_with_weights(path, location):
    """A Conv + AveragePool model saved with its weights in the external data file ``location``; returns
    what ONNX Runtime computes with it on a fixed input (the oracle that the weights are intact)."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 2, 3, 3], rng.standard_normal(144).astype(np.float32).tobytes(),
                           raw=True)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path), save_as_external_data=True, location=location, size_threshold=16)
    assert (path.parent / location).is_file()
    return in_ort(path)


def in_ort(path):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.linspace(-1, 1, 128, dtype=np.float32).reshape(1, 2, 8, 8)})[0]


# --- the plan itself ---

def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"model")
    (tmp_path / "link.pt").symlink_to(model)
    os.link(model, tmp_path / "hard.pt")
    for out in (model, tmp_path / "link.pt", tmp_path / "hard.pt", tmp_path / "sub" / ".." / "m.pt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        for overwrite in (False, True):
            plan = WritePlan(overwrite)
            plan.reads(model, "MODEL")
            plan.writes(out, "-o")
            with pytest.raises(PoolportError, match="which this command reads"):
                plan.check()
    plan = WritePlan(True)
    plan.reads(tmp_path / "link.pt", "MODEL")  # the input named through a link, the output by its real name
    plan.writes(model, "-o")
    with pytest.raises(PoolportError, match="never replaces an input"):
        plan.check()
    assert model.read_bytes() == b"model"


def test_the_external_data_an_onnx_input_names_is_an_input(tmp_path):
    (tmp_path / "weights").mkdir()
    onnx_with_weights(tmp_path / "m.onnx", "weights/w.bin")
    plan = WritePlan(True)
    plan.reads_model(tmp_path / "m.onnx", "MODEL.onnx")
    plan.writes(tmp_path / "weights" / "w.bin", "--json")
    with pytest.raises(PoolportError, match=r"w.bin \(the external data of MODEL.onnx"):
        plan.check()


def test_two_outputs_on_one_file_are_refused(tmp_path):
    for data, report in ((True, "m.onnx.data"), (None, "m.onnx.data"), (False, "m.onnx"), (False, "./m.onnx")):
        plan = WritePlan(True)
        plan.writes(tmp_path / "m.onnx", "-o", data=data)
        plan.writes(tmp_path / report, "--report")
        with pytest.raises(PoolportError, match="would both be"):
            plan.check()
    plan = WritePlan(True)
    plan.writes(tmp_path / "m.onnx", "-o", data=False)
    plan.writes(tmp_path / "m.onnx.data", "--report")
    plan.check()  # no data file is written beside m.onnx: no clash


def test_an_existing_file_needs_overwrite(tmp_path):
    (tmp_path / "m.onnx.data").write_bytes(b"old")
    plan = WritePlan(False)
    plan.writes(tmp_path / "m.onnx", "-o", data=True)
    with pytest.raises(PoolportError, match="m.onnx.data already exists"):
        plan.check()
    plan.overwrite = True
    plan.check()


# --- convert: every kind of input x every output ---

def scripted(tmp_path):
    path = tmp_path / "s.pt"
    torch.jit.trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3)), torch.randn(1, 3, 9, 9)).save(str(path))
    return str(path), path


def archive(tmp_path):
    path = tmp_path / "s.pt2"
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3))
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 9, 9),)), str(path))
    return str(path), path


def factory_file(tmp_path):
    path = tmp_path / "f.py"
    path.write_text(FACTORY)
    return f"{path}:build", path


def factory_module(tmp_path, monkeypatch):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mypkg.models:build", package / "models.py"


MODELS = {"torchscript": scripted, "pt2": archive, "factory.py": factory_file, "package module": factory_module}


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("option", ["-o", "--report"])
def test_convert_never_writes_over_its_model(kind, option, tmp_path, monkeypatch, capsys):
    make = MODELS[kind]
    spec, path = make(tmp_path, monkeypatch) if kind == "package module" else make(tmp_path)
    outputs = {"-o": str(tmp_path / "o.onnx"), "--report": str(tmp_path / "r.json")}
    outputs[option] = str(path)
    argv = ["convert", spec, "--input", "1x3x9x9", "-o", outputs["-o"], "--report", outputs["--report"], "--quiet"]
    refused(argv, tmp_path, capsys, f"{option} {path}", "MODEL", "which this command reads")
    refused(argv + ["--force"], tmp_path, capsys, "--force never replaces an input file")
    link = tmp_path / "link"
    link.symlink_to(path)
    outputs[option] = str(link)
    refused(["convert", spec, "--input", "1x3x9x9", "-o", outputs["-o"], "--report", outputs["--report"], "--quiet",
             "--force"], tmp_path, capsys, "the same file")


def test_convert_report_on_the_models_own_weights_file(tmp_path, capsys):
    spec, _ = factory_file(tmp_path)
    out = tmp_path / "ext.onnx"
    refused(["convert", spec, "--input", "1x3x9x9", "-o", str(out), "--external-data", "--report", f"{out}.data",
             "--quiet", "--force"], tmp_path, capsys, "would both be", f"{out}.data")


# --- legalize ---

def test_legalize_never_writes_over_its_input_or_its_weights(tmp_path, capsys):
    src = tmp_path / "in.onnx"
    expected = onnx_with_weights(src, "in.onnx.data")
    for out in (src, tmp_path / "in.onnx.data"):
        for force in ([], ["--force"]):
            refused(["legalize", str(src), "-o", str(out), "--target", "ncnn"] + force, tmp_path, capsys,
                    "which this command reads")
    np.testing.assert_array_equal(in_ort(src), expected)


def test_legalize_never_writes_its_data_file_over_the_inputs_weights(tmp_path, capsys):
    # in.onnx keeps its weights in out.onnx.data: legalizing to out.onnx would write its data file there
    src = tmp_path / "in.onnx"
    expected = onnx_with_weights(src, "out.onnx.data")
    refused(["legalize", str(src), "-o", str(tmp_path / "out.onnx"), "--target", "ncnn", "--force"], tmp_path, capsys,
            "the weights file beside -o", "the external data of the input")
    np.testing.assert_array_equal(in_ort(src), expected)


def test_legalize_weights_in_a_sub_folder_are_inputs_too(tmp_path, capsys):
    (tmp_path / "w").mkdir()
    src = tmp_path / "in.onnx"
    expected = onnx_with_weights(src, "w/weights.bin")
    refused(["legalize", str(src), "-o", str(tmp_path / "w" / "weights.bin"), "--force"], tmp_path, capsys,
            "which this command reads")
    np.testing.assert_array_equal(in_ort(src), expected)


# --- check ---

def test_check_json_never_writes_over_the_model_or_its_weights(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    expected = onnx_with_weights(src, "m.onnx.data")
    for target in (src, tmp_path / "m.onnx.data"):
        for force in ([], ["--force"]):
            refused(["check", str(src), "--runtimes", "onnxruntime", "--json", str(target), "--quiet"] + force,
                    tmp_path, capsys, "which this command reads")
    np.testing.assert_array_equal(in_ort(src), expected)


def test_check_json_replaces_an_existing_file_only_with_force(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx_with_weights(src, "m.onnx.data")
    out = tmp_path / "r.json"
    out.write_text("mine")
    argv = ["check", str(src), "--runtimes", "onnxruntime", "--json", str(out), "--quiet"]
    refused(argv, tmp_path, capsys, "already exists", "--force")
    assert main(argv + ["--force"]) == 0
    assert json.loads(out.read_text())["passed"] is True


def test_check_json_in_a_folder_it_cannot_write_is_refused_before_the_work(tmp_path, monkeypatch, capsys):
    src = tmp_path / "m.onnx"
    onnx_with_weights(src, "m.onnx.data")

    def never(*args, **kwargs):
        raise AssertionError("the check ran before the --json path was checked")

    monkeypatch.setattr("poolport.verify.check.check_model", never)
    refused(["check", str(src), "--json", str(tmp_path / "nope" / "r.json"), "--quiet"], tmp_path, capsys,
            "folder", "does not exist")
    (tmp_path / "file").write_text("")
    refused(["check", str(src), "--json", str(tmp_path / "file" / "r.json"), "--quiet"], tmp_path, capsys,
            "is a file")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        refused(["check", str(src), "--json", str(locked / "r.json"), "--quiet"], tmp_path, capsys, "cannot write")


# --- probe, demo (plan --plot has no input; its refusals: tests/test_cli_exit_codes.py) ---

def test_probe_json_replaces_an_existing_file_only_with_force(tmp_path, monkeypatch, capsys):
    out = tmp_path / "p.json"
    out.write_text("mine")

    def never(*args, **kwargs):
        raise AssertionError("the probe ran before the --json path was checked")

    monkeypatch.setattr("poolport.legalizer.probe.run_probe", never)
    refused(["probe", "--runtimes", "onnxruntime", "--json", str(out), "--quiet"], tmp_path, capsys, "already exists")
    refused(["probe", "--runtimes", "onnxruntime", "--json", str(tmp_path / "no" / "p.json"), "--quiet"], tmp_path,
            capsys, "does not exist")


def test_demo_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "e").write_bytes(b"mine")
    refused(["demo", "--out", str(tmp_path / "e"), "--only", "maxpool_style", "--quiet"], tmp_path, capsys,
            "is a file, not a folder")
    refused(["demo", "--out", str(tmp_path / "e" / "sub"), "--only", "maxpool_style", "--quiet"], tmp_path, capsys,
            "is a file")


def test_demo_out_refuses_every_existing_file_before_converting_any(tmp_path, capsys):
    (tmp_path / "maxpool_style.onnx").write_bytes(b"mine")
    refused(["demo", "--out", str(tmp_path), "--only", "vgg_style", "--only", "maxpool_style", "--quiet",
             "--no-runtimes"], tmp_path, capsys, "maxpool_style.onnx already exists")


# --- the library: export_onnx takes the same decision ---

def test_export_onnx_refuses_a_report_on_its_own_data_file(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3))
    with pytest.raises(PoolportError, match="the report and the weights file beside the model .* would both be"):
        poolport.export_onnx(model, torch.randn(1, 3, 9, 9), tmp_path / "m.onnx", external_data=True,
                             report=tmp_path / "m.onnx.data", overwrite=True)
    assert list(tmp_path.iterdir()) == []
