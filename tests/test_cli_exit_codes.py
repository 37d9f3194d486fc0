"""A script calling poolport can tell a verification failure (1), a usage or input error (2) and a bug
in poolport (70) apart; commands that write never overwrite without --force."""

import json

import pytest

from poolport.cli.main import EXIT_INTERNAL, EXIT_USAGE, EXIT_VERIFICATION, build_parser, main

MODEL = "import torch\nfrom torch import nn\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(5))\n"


def test_the_codes_are_documented():
    assert "exit codes: 0" in build_parser().format_help()
    assert (EXIT_VERIFICATION, EXIT_USAGE, EXIT_INTERNAL) == (1, 2, 70)


def test_verification_failure_exits_1_and_leaves_a_failed_report(tmp_path, capsys):
    (tmp_path / "m.py").write_text(MODEL)
    out, rep = tmp_path / "m.onnx", tmp_path / "r.json"
    code = main(["convert", f"{tmp_path / 'm.py'}:build", "--input", "1x3x17x17", "-o", str(out), "--report", str(rep),
                 "--rtol", "1e-15", "--quiet"])
    assert code == 1 and "verification failed" in capsys.readouterr().err
    assert not out.exists() and json.loads(rep.read_text())["status"] == "failed"


def test_a_bug_exits_70_with_one_line(monkeypatch, capsys):
    import poolport.cli.plan_cmd as plan_cmd

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(plan_cmd, "run", broken)
    assert main(["plan", "9", "7"]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err


def test_plot_never_overwrites_and_names_a_missing_folder(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "w.png"
    png.write_bytes(b"mine")
    assert main(["plan", "9", "7", "--plot", str(png)]) == 2
    assert png.read_bytes() == b"mine" and "--force" in capsys.readouterr().err
    assert main(["plan", "9", "7", "--plot", str(png), "--force"]) == 0 and png.read_bytes() != b"mine"
    assert main(["plan", "9", "7", "--plot", str(tmp_path / "nope" / "w.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_model_that_cannot_run_at_the_input_says_where(tmp_path, capsys):
    code = main(["convert", "torchvision.models:alexnet", "--input", "1x3x16x16", "-o", str(tmp_path / "a.onnx"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "1x3x16x16" in err and "features.5 (MaxPool2d)" in err and "Output size is too small." in err


def test_progress_keeps_showing_while_other_libraries_are_silenced(capfd):
    # quiet() sends whatever torch.onnx, pnnx or ncnn write to descriptor 2 elsewhere; the progress display
    # writes through its own copy of that descriptor, so it does not freeze during the export step
    import os

    from poolport.cli.progress import Progress
    from poolport.cli.terminal import quiet

    with Progress() as progress, quiet():
        progress("exporting with the dynamo exporter")
        os.write(2, b"torch noise\n")  # as torch's C++ writes: straight to the descriptor
    err = capfd.readouterr().err
    assert "exporting with the dynamo exporter" in err and "torch noise" not in err


def test_each_runtime_gets_its_own_progress_stage(tmp_path):
    import torch

    import poolport
    from poolport.runtimes.registry import available

    if not available("openvino"):
        pytest.skip("openvino not installed")
    stages = []
    poolport.export_onnx(torch.nn.AdaptiveAvgPool2d(3), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx",
                         runtimes=["openvino"], progress=stages.append)
    assert any("running in openvino" in s for s in stages), stages


# --- user errors never exit 70 ---

BROKEN_FACTORIES = {  # a factory file's own fault, as the user wrote it -> what the one line must name
    "syntax": ("def build(:\n    pass\n", "SyntaxError"),
    "import": ("import no_such_module_anywhere\ndef build():\n    pass\n", "No module named 'no_such_module_anywhere'"),
    "raises at import": ("raise RuntimeError('config not found')\n", "RuntimeError: config not found"),
    "factory raises": ("def build():\n    raise ValueError('num_classes must be > 0')\n",
                       "ValueError: num_classes must be > 0"),
    "factory exits": ("import sys\ndef build():\n    sys.exit(3)\n", "exit(3)"),
}


@pytest.mark.parametrize("kind", list(BROKEN_FACTORIES))
def test_a_broken_factory_file_is_an_input_error(kind, tmp_path, capsys):
    source, needle = BROKEN_FACTORIES[kind]
    (tmp_path / "f.py").write_text(source)
    code = main(["convert", f"{tmp_path / 'f.py'}:build", "--input", "1x3x9x9", "-o", str(tmp_path / "o.onnx"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "internal error" not in err
    assert needle in err and "f.py" in err
    assert not (tmp_path / "o.onnx").exists()


def test_a_module_that_fails_to_import_is_an_input_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "badpkg").mkdir()
    (tmp_path / "badpkg" / "__init__.py").write_text("")
    (tmp_path / "badpkg" / "models.py").write_text("x = undefined_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["convert", "badpkg.models:build", "--input", "1x3x9x9", "-o", str(tmp_path / "o.onnx"), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "NameError: name 'undefined_name' is not defined" in err and "badpkg.models" in err


def test_an_input_too_large_for_memory_is_an_input_error_naming_its_size(tmp_path, capsys):
    (tmp_path / "m.py").write_text(MODEL)
    huge = "1000000x3x10000x10000"  # 3e14 values, 1.1 PiB: more than any address space holds
    code = main(["convert", f"{tmp_path / 'm.py'}:build", "--input", huge, "-o", str(tmp_path / "o.onnx"), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert huge in err and "memory" in err and "internal error" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 120000000000 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_running_out_of_memory_anywhere_names_the_input_sizes(error, tmp_path, monkeypatch, capsys):
    import poolport.cli.convert_cmd as convert_cmd

    def out_of_memory(args):
        raise error

    monkeypatch.setattr(convert_cmd, "run", out_of_memory)
    code = main(["convert", "m.py:build", "--input", "64x3x4096x4096", "-o", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "out of memory with --input 64x3x4096x4096" in err and "internal error" not in err
