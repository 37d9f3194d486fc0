"""Ctrl-C at any moment of a command: exit 130, one line ("interrupted"), no traceback, and nothing left
behind (no output, no report, no staging folder, no half-written file). A real ``poolport convert`` is
interrupted with SIGINT at each of its phases, found by reading its progress lines, not by guessing
times; the phases no signal can be timed into (a library that catches the interrupt and raises an
error of its own; publishing) are driven in-process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import poolport
from poolport.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(poolport.__file__).resolve().parents[1]
FACTORY = "from torch import nn\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(5))\n"


def is_progress(line: str) -> bool:
    return line.lstrip().startswith("[") and "s] " in line


def left_behind(folder: Path) -> list[str]:
    """Everything in ``folder`` but the model's source: outputs, reports, staging folders, temporary files."""
    return sorted(p.name for p in folder.iterdir() if p.name != "m.py")


class Convert:
    """``poolport convert`` in a process of its own (``python -m poolport``, the console script's code),
    its standard error read line by line as it comes."""

    def __init__(self, folder: Path, *extra: str):
        (folder / "m.py").write_text(FACTORY)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "poolport", "convert", "m.py:build", "--input", "1x3x64x64", "-o", "out.onnx",
             "--report", "out.json", *extra],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None and not self._reader.is_alive():
                pytest.fail(f"the command ended before {text!r}:\n" + "\n".join(self.lines))
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {text!r} after {timeout} s:\n" + "\n".join(self.lines))
            time.sleep(0.02)

    def interrupt(self) -> tuple[int, list[str]]:
        assert self.proc.poll() is None, "the command ended before the signal:\n" + "\n".join(self.lines)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(timeout=30)
        self.proc.stdout.close()
        return self.proc.returncode, self.lines


def assert_interrupted(code: int, lines: list[str], folder: Path) -> None:
    text = "\n".join(lines)
    assert code == 130, text
    assert "Traceback" not in text, text
    assert [line for line in lines if not is_progress(line)] == ["interrupted"], text
    assert left_behind(folder) == [], text


@pytest.mark.parametrize("phase,delay", [
    ("importing", 0.5),  # the command line still loading torch (convert's own imports: its parser imports none)
    ("checking every pooling site", 0.0),
    ("exporting with the dynamo exporter", 0.0),  # the exporter importing torch._dynamo
    ("exporting with the dynamo exporter", 1.0),
    ("verifying in ONNX Runtime", 0.2),
])
def test_ctrl_c_at_each_phase_of_convert(phase, delay, tmp_path):
    run = Convert(tmp_path, "--random-checks", "200")
    if phase == "importing":
        time.sleep(delay)
        assert not run.lines, "the command was past its imports after 0.5 s:\n" + "\n".join(run.lines)
    else:
        run.wait_for(phase)
        time.sleep(delay)
    assert_interrupted(*run.interrupt(), tmp_path)


def test_the_console_script_is_the_light_entry_point():
    # the installed `poolport` runs poolport.cli.console:main, which catches Ctrl-C around the imports too
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    assert re.findall(r'^poolport\s*=\s*"([^"]+)"', scripts, re.MULTILINE) == ["poolport.cli.console:main"]
    probe = "import sys, poolport.cli.console; print(sorted(m for m in ('torch', 'onnx', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)}).stdout
    assert out.strip() == "[]"


# --- in-process: what no signal from outside can be timed into ---

def test_an_interrupt_a_library_turns_into_its_own_error_stays_an_interrupt(tmp_path, monkeypatch):
    # torch's dynamo exporter, interrupted while it imports torch._dynamo, ends in "AttributeError: module
    # 'torch._dynamo' has no attribute 'exc'" raised while handling the KeyboardInterrupt, wrapped in its
    # own error: that is Ctrl-C, not a model torch.onnx cannot export, and no failure report is written
    def interrupted_export(*args, **kwargs):
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise AttributeError("module 'torch._dynamo' has no attribute 'exc'")  # noqa: B904
        except AttributeError as e:
            raise RuntimeError("Failed to export the model with torch.export") from e

    monkeypatch.setattr(torch.onnx, "export", interrupted_export)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3))
    with pytest.raises(KeyboardInterrupt):
        poolport.export_onnx(model, torch.randn(1, 3, 9, 9), tmp_path / "m.onnx", report=tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_says_interrupted_for_such_an_error(tmp_path, monkeypatch, capsys):
    import poolport.cli.plan_cmd as plan_cmd

    def run(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("a library's own error, raised while handling Ctrl-C")  # noqa: B904

    monkeypatch.setattr(plan_cmd, "run", run)
    assert main(["plan", "9", "7"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_ctrl_c_while_publishing_leaves_no_weights_without_their_graph(tmp_path, monkeypatch):
    # publishing with external data moves the weights into place first, then the graph: Ctrl-C in between
    # must not leave the weights file alone
    from poolport.onnxfile import staging

    place = staging._place

    def interrupted_place(src, dst, overwrite):
        if dst.suffix == ".onnx":
            raise KeyboardInterrupt
        place(src, dst, overwrite)

    monkeypatch.setattr(staging, "_place", interrupted_place)
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.AdaptiveAvgPool2d(3))
    with pytest.raises(KeyboardInterrupt):
        poolport.export_onnx(model, torch.randn(1, 3, 9, 9), tmp_path / "m.onnx", external_data=True,
                             exporter="torchscript", report=tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_drawing_a_plot_leaves_no_half_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def interrupted_savefig(self, fname, **kwargs):
        if isinstance(fname, (str, os.PathLike)):
            Path(fname).write_bytes(b"\x89PNG half")
        else:
            fname.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted_savefig)
    assert main(["plan", "9", "7", "--plot", str(tmp_path / "w.png")]) == 130
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_that_cuts_an_import_short_is_an_interrupt_whatever_error_follows(tmp_path):
    # a KeyboardInterrupt landing inside an import can be swallowed, and the half-imported module then fails
    # in its own way (seen: RecursionError from torch, exit 70 "a bug in poolport"): the console script
    # remembers the SIGINT, so the command still ends as interrupted
    factory = tmp_path / "m.py"
    factory.write_text(
        "import os, signal, time\n"
        "def build():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(5)\n"
        "    except BaseException:\n"
        "        pass  # what a library's import machinery may do with it\n"
        "    raise RecursionError('maximum recursion depth exceeded')\n")
    proc = subprocess.run([sys.executable, "-m", "poolport", "convert", f"{factory}:build", "-o",
                           str(tmp_path / "m.onnx"), "--input", "1x3x8x8"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.onnx").exists()
