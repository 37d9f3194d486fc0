"""poolport convert and poolport demo on the command line: every MODEL kind, errors, no overwrite."""

import json
import tempfile

import onnx
import pytest
import torch
from torch import nn

from poolport.cli.main import main
from poolport.demo.models import build


def test_convert_factory_with_kwargs_and_report(tmp_path, capsys):
    out, rep = tmp_path / "v.onnx", tmp_path / "r.json"
    code = main(["convert", "poolport.demo.models:vgg_style", "--kwargs", '{"num_classes": 3}',
                 "--input", "1x3x200x200", "-o", str(out), "--report", str(rep), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "avgpool" in text and "adaptive_avg_pool2d" in text and "runs(" in text
    data = json.loads(rep.read_text())
    assert data["passed"] and data["sites"][0]["input_shape"] == [1, 64, 6, 6]
    assert onnx.load(str(out)).graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3


def test_convert_refuses_to_overwrite_then_force(tmp_path, capsys):
    out = tmp_path / "v.onnx"
    out.write_text("keep me")
    args = ["convert", "poolport.demo.models:maxpool_style", "--input", "1x3x52x52", "-o", str(out), "--quiet"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(args + ["--force"]) == 0


def test_convert_torch_export_archive(tmp_path, capsys):
    model, x = build("pspnet_style")
    archive = tmp_path / "psp.pt2"
    torch.export.save(torch.export.export(model, (x,)), str(archive))
    before = archive.read_bytes()
    out = tmp_path / "psp.onnx"
    assert main(["convert", str(archive), "-o", str(out), "--quiet"]) == 0  # shapes from the archive
    text = capsys.readouterr().out
    assert "node adaptive_avg_pool2d_3" in text and "rewritten" in text
    assert archive.read_bytes() == before


def test_convert_torchscript_file(tmp_path, capsys):
    model, x = build("maxpool_style")
    ts = tmp_path / "m.pt"
    torch.jit.trace(model, (x,)).save(str(ts))
    out = tmp_path / "m.onnx"
    assert main(["convert", str(ts), "--input", "1x3x52x52", "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "torchscript exporter" in text and "model-level" in text
    assert main(["convert", str(ts), "--input", "1x3x52x52", "-o", str(tmp_path / "n.onnx"),
                 "--exporter", "dynamo", "--quiet"]) == 2
    assert "torchscript exporter only" in capsys.readouterr().err


def test_convert_refuses_pickles_unless_trusted(tmp_path, capsys):
    model, _ = build("maxpool_style")
    pkl = tmp_path / "m.pth"
    torch.save(model, str(pkl))
    out = tmp_path / "m.onnx"
    assert main(["convert", str(pkl), "--input", "1x3x52x52", "-o", str(out), "--quiet"]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert not out.exists()
    assert main(["convert", str(pkl), "--input", "1x3x52x52", "-o", str(out), "--quiet", "--trust-pickle"]) == 0


def test_convert_state_dict_gets_a_clear_refusal(tmp_path, capsys):
    sd = tmp_path / "w.pt"
    torch.save(nn.Linear(2, 2).state_dict(), str(sd))
    assert main(["convert", str(sd), "--input", "1x2", "-o", str(tmp_path / "o.onnx")]) == 2
    assert "state_dict" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["convert", "no.such.module:f", "--input", "1x3x8x8"], "cannot import"),
        (["convert", "poolport.demo.models:nothing", "--input", "1x3x8x8"], "has no attribute"),
        (["convert", "poolport.demo.models:vgg_style", "--kwargs", "{bad", "--input", "1x3x8x8"], "not valid JSON"),
        (["convert", "poolport.demo.models:vgg_style"], "--input"),
        (["convert", "poolport.demo.models:vgg_style", "--input", "1x3xAx8"], "not a size"),
        (["convert", "missing.pt2", "--input", "1x3x8x8"], "does not exist"),
    ],
)
def test_convert_errors_are_one_clear_line(argv, message, tmp_path, capsys):
    assert main(argv + ["-o", str(tmp_path / "o.onnx"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_demo_runs_every_embedded_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    text = capsys.readouterr().out
    for name in ("vgg_style", "pspnet_style", "maxpool_style"):
        assert (tmp_path / f"{name}.onnx").is_file()
    assert text.count("FAILS (output size not a factor of input size)") >= 3
    assert "no ONNX function for aten.adaptive_max_pool" in text
    assert "GatherND" in text
    assert text.count("  verified in onnxruntime") == 3  # the summary rows
    # a second run into the same folder refuses to replace the files
    assert main(["demo", "--out", str(tmp_path), "--quiet", "--only", "vgg_style"]) == 2


def test_demo_leaves_no_temporary_folder(tmp_path, monkeypatch, capsys):
    # without --out the ONNX files go to a temporary folder that is removed at the end: after a run, and after
    # an interrupted one (Ctrl-C), the temporary directory holds nothing from poolport (torch's dynamo exporter
    # keeps its inductor cache there, torchinductor_<user>: a cache shared by every run, not ours to remove)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def left_behind():
        return [p.name for p in tmp_path.iterdir() if not p.name.startswith("torchinductor_")]

    assert main(["demo", "--only", "maxpool_style", "--quiet", "--no-runtimes"]) == 0
    assert "now removed" in capsys.readouterr().out
    assert left_behind() == []

    def interrupted(*args, **kwargs):
        assert [n for n in left_behind() if n.startswith("poolport-demo-")]  # the folder exists by now
        raise KeyboardInterrupt

    monkeypatch.setattr("poolport.cli.demo_cmd.try_plain_export", interrupted)
    assert main(["demo", "--only", "maxpool_style", "--quiet", "--no-runtimes"]) == 130
    assert left_behind() == []


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("demo", "convert", "plan"):
        assert cmd in out


def test_export_of_a_scripted_model_leaves_it_in_its_mode(tmp_path):
    import poolport

    model, x = build("maxpool_style")
    scripted = torch.jit.trace(model, (x,))
    scripted.train()
    poolport.export_onnx(scripted, x, tmp_path / "m.onnx", exporter="torchscript")
    assert scripted.training
