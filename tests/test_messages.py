"""Messages that say what holds (issue 16, item 11): each wrong or useless request is answered with what
is wrong with it, and what a command reports is what it measured."""

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import poolport
from poolport.cli.main import build_parser, main

FACTORIES = '''
import torch
from torch import nn


def flat():
    return nn.Linear(10, 4).eval()


class Mixed(nn.Module):
    def forward(self, x, v):
        return nn.functional.adaptive_avg_pool2d(x, 3) * v.sum()


def mixed():
    return Mixed().eval()


def pools():
    return nn.Sequential(nn.MaxPool2d(2), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(3)).eval()
'''


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return path


def in_ort(path, *xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)})


# --- --dynamic-spatial ---

def test_dynamic_spatial_on_inputs_without_a_spatial_axis_says_so(factories, tmp_path, capsys):
    out = tmp_path / "f.onnx"
    code = main(["convert", f"{factories}:flat", "--input", "1x10", "-o", str(out), "--dynamic-spatial", "--quiet"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "--dynamic-spatial" in err and "input 0 (1x10) has no spatial axis" in err, err


def test_dynamic_spatial_names_the_input_it_leaves_static(factories, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = main(["convert", f"{factories}:mixed", "--input", "1x2x9x9", "--input", "1x5", "-o", str(out),
                 "--dynamic-spatial", "--exporter", "torchscript", "--quiet"])
    assert code == 0
    assert "input 1 (1x5) has no spatial axis; it stays static" in capsys.readouterr().out
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(out)).graph.input]
    assert isinstance(dims[0][2], str) and isinstance(dims[0][3], str) and dims[1] == [1, 5]
    x, v = torch.randn(1, 2, 13, 7), torch.randn(1, 5)  # another size, against torch's native op
    want = torch.nn.functional.adaptive_avg_pool2d(x, 3) * v.sum()
    np.testing.assert_allclose(in_ort(out, x, v)[0], want.numpy(), rtol=1e-5, atol=1e-6)


# --- --rtol ---

def commands_with(option):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return [name for name, p in sub.choices.items() if any(option in a.option_strings for a in p._actions)]


@pytest.mark.parametrize("value", ["-1", "nan", "-1e-9", "inf"])
def test_a_negative_or_nan_rtol_is_refused_by_every_command(value, tmp_path, capsys):
    commands = commands_with("--rtol")
    assert {"convert", "check"} <= set(commands)
    model = tmp_path / "m.onnx"
    for command in commands:
        output = ["-o", str(tmp_path / "o.onnx")] if command in commands_with("-o") else []
        with pytest.raises(SystemExit) as exit_:
            main([command, str(model), "--input", "1x3x8x8", *output, f"--rtol={value}"])
        assert exit_.value.code == 2
        assert "--rtol" in capsys.readouterr().err
        assert not (tmp_path / "o.onnx").exists()
    args = build_parser().parse_args(["check", str(model), "--rtol", "2e-4"])
    assert args.rtol == 2e-4 and math.isfinite(args.rtol)


# --- --no-verify ---

def test_no_verify_reports_no_error_figure(tmp_path, capsys):
    out, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    code = main(["convert", "torch.nn:AdaptiveAvgPool2d", "--kwargs", '{"output_size": 3}', "--input", "1x2x10x10",
                 "-o", str(out), "--no-verify", "--exporter", "torchscript", "--report", str(rep), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "max abs error 0" not in text and "not verified" in text, text
    data = json.loads(rep.read_text())
    assert data["status"] == "unverified" and data["max_abs_error"] is None and data["max_rel_error"] is None
    x = torch.randn(1, 2, 10, 10)  # the file itself is what it should be: torch's native op
    np.testing.assert_allclose(in_ort(out, x)[0], torch.nn.functional.adaptive_avg_pool2d(x, 3).numpy(),
                               rtol=1e-5, atol=1e-6)


# --- a folder ---

@pytest.mark.parametrize("command", ["check", "legalize"])
def test_check_and_legalize_on_a_folder_say_it_is_a_folder(command, tmp_path, capsys):
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    argv = [command, str(folder)] + (["-o", str(tmp_path / "o.onnx")] if command == "legalize" else [])
    assert main(argv + ([] if command == "legalize" else ["--quiet"])) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "does not exist" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.onnx"]


# --- corrupt or empty .pt files, and the report when loading fails ---

def pt_files(folder):
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(3))
    scripted, saved = folder / "s.bin", folder / "p.bin"
    torch.jit.script(model).save(str(scripted))
    torch.save(model, str(saved))
    files = {
        "empty.pt": b"",
        "noise.pt": np.random.default_rng(0).bytes(300),
        "text.pt": b"hello, not a model\n",
        "cut-torchscript.pt": scripted.read_bytes()[: scripted.stat().st_size // 2],
        "cut-torch-save.pt": saved.read_bytes()[: saved.stat().st_size // 2],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return list(files)


def test_a_corrupt_or_empty_pt_is_not_answered_with_trust_pickle(tmp_path, capsys):
    for name in pt_files(tmp_path):
        for trust in ([], ["--trust-pickle"]):
            rep = tmp_path / f"{name}.json"
            code = main(["convert", str(tmp_path / name), "--input", "1x1x8x8", "-o", str(tmp_path / "o.onnx"),
                         "--report", str(rep), "--force", "--quiet", *trust])
            err = capsys.readouterr().err
            assert code == 2 and "--trust-pickle" not in err and "pickled" not in err, (name, err)
            assert any(w in err for w in ("empty", "corrupt", "damaged")), (name, err)
            assert not (tmp_path / "o.onnx").exists()
    # a pickled nn.Module is still told about --trust-pickle, naming what it holds
    torch.save(torch.nn.AdaptiveAvgPool2d(3), str(tmp_path / "module.pt"))
    assert main(["convert", str(tmp_path / "module.pt"), "--input", "1x1x8x8", "-o", str(tmp_path / "o.onnx"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and "AdaptiveAvgPool2d" in err


@pytest.mark.parametrize("model", ["no.such.module:build", "EMPTY"])
def test_the_report_is_written_when_loading_the_model_fails(model, tmp_path, capsys):
    if model == "EMPTY":
        model = str(tmp_path / "empty.pt")
        (tmp_path / "empty.pt").write_bytes(b"")
    rep = tmp_path / "r.json"
    assert main(["convert", model, "--input", "1x3x8x8", "-o", str(tmp_path / "o.onnx"), "--report", str(rep),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    data = json.loads(rep.read_text())
    assert data["status"] == "failed" and data["passed"] is False and data["output"] is None
    assert data["error"] and data["error"] in err and data["max_abs_error"] is None
    assert not (tmp_path / "o.onnx").exists()


# --- dynamic sizes ---

@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_an_example_outside_the_declared_dim_range_is_explained(exporter, tmp_path):
    h = torch.export.Dim("h", min=64, max=512)
    with pytest.raises(poolport.PoolportError, match=r"axis 2 is 32 in the example.*outside the declared range of "
                                                     r"Dim 'h', \[64, 512\]"):
        poolport.export_onnx(torch.nn.AdaptiveAvgPool2d(3), torch.randn(1, 2, 32, 70), tmp_path / "m.onnx",
                             exporter=exporter, dynamic_shapes=({2: h},))
    assert list(tmp_path.iterdir()) == []


def runs_in_torch(model, h, w):
    try:
        with torch.no_grad():
            model(torch.randn(1, 2, h, w))
    except RuntimeError:
        return False
    return True


def test_the_dynamic_report_states_the_files_names_and_the_sizes_it_accepts(factories, tmp_path, capsys):
    # two 2x2 max pools: the model runs from 4 pixels on, not from 1; the dynamo exporter names its own
    # symbols (s16) in the file, which the report must use
    out, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    assert main(["convert", f"{factories}:pools", "--input", "1x2x20x24", "-o", str(out), "--dynamic-spatial",
                 "--report", str(rep), "--quiet"]) == 0
    data = json.loads(rep.read_text())
    dims = [d.dim_param for d in onnx.load(str(out), load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
    import importlib.util

    spec = importlib.util.spec_from_file_location("factories", factories)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.pools()
    lowest = next(n for n in range(1, 20) if runs_in_torch(model, n, n))  # the oracle: eager PyTorch
    assert lowest == 4
    want = [f"input 0 axis 2: {dims[2]} in [{lowest}, 65536]", f"input 0 axis 3: {dims[3]} in [{lowest}, 65536]"]
    assert data["dynamic_axes"] == want, (data["dynamic_axes"], dims)
    verified = [[int(n) for n in s.split("x")] for s in data["sizes_verified"]]
    assert len(verified) >= 3 and all(min(s[2:]) >= lowest for s in verified)
    # the file is exact at the smallest size it claims, against the eager model
    x = torch.randn(1, 2, lowest, lowest + 3)
    with torch.no_grad():
        np.testing.assert_allclose(in_ort(out, x)[0], model(x).numpy(), rtol=1e-6, atol=1e-6)


# --- ONNX Runtime's log lines ---

def test_legalize_keeps_onnxruntime_log_lines_off_the_terminal(tmp_path, capfd):
    # an unused initializer: ONNX Runtime warns "Removing initializer ..." on stderr for every session
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 9, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 5, 5])
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    unused = numpy_helper.from_array(np.ones(3, np.float32), "unused")
    m = helper.make_model(helper.make_graph([node], "g", [x], [y], [unused]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "in.onnx")
    assert main(["legalize", str(tmp_path / "in.onnx"), "-o", str(tmp_path / "out.onnx"), "--target", "ncnn"]) == 0
    captured = capfd.readouterr()
    assert "1 pooling node(s) rewritten" in captured.out
    assert "onnxruntime" not in captured.err and "Removing initializer" not in captured.err, captured.err
    # the rewritten model still computes the original (ONNX's reference evaluator as the oracle)
    from onnx.reference import ReferenceEvaluator

    feed = {"x": np.random.default_rng(0).standard_normal((1, 1, 9, 9)).astype(np.float32)}
    want = ReferenceEvaluator(m).run(None, feed)[0]
    np.testing.assert_allclose(in_ort(tmp_path / "out.onnx", torch.from_numpy(feed["x"]))[0], want, rtol=1e-5,
                               atol=1e-6)
