"""``poolport plan`` on the command line."""

import json
import subprocess
import sys

import pytest

from poolport.cli.main import main


def test_plan_text_shows_windows_plan_ops_and_verdict(capsys):
    assert main(["plan", "9", "7"]) == 0
    out = capsys.readouterr().out
    assert "[0,2) [1,3) [2,4) [3,6) [5,7) [6,8) [7,9)" in out
    assert "3 runs" in out
    assert "ONNX: AveragePool x3, Concat, Slice x3" in out
    assert "WRONG (kernel 3, stride 1): windows 0, 1, 2, 4, 5, 6 differ" in out
    assert "max abs error" in out


def test_plan_exact_formula_case(capsys):
    assert main(["plan", "8x224", "7x7", "--op", "max"]) == 0
    out = capsys.readouterr().out
    assert "one max pool kernel (2, 32) stride (1, 32)" in out
    assert out.count("exact (kernel") == 2


def test_plan_json_is_machine_readable(capsys):
    assert main(["plan", "128x128", "14x14", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"]["onnx_ops"] == {"AveragePool": 4, "Concat": 2, "Slice": 4}
    h = data["axes"][0]
    assert h["windows"][7] == [64, 74]
    assert h["copied_formula"]["exact"] is False
    assert h["copied_formula"]["max_abs_error_on_random_input"] > 0.01


def test_plan_output_larger_than_input(capsys):
    assert main(["plan", "3", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["axes"][0]["copied_formula"]["stride"] is None
    assert data["axes"][0]["copied_formula"]["max_abs_error_on_random_input"] is None


def test_plan_plot_writes_png(tmp_path, capsys):
    png = tmp_path / "w.png"
    assert main(["plan", "10x9", "7x7", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["plan", "9", "0"], "every entry must be >= 1"),
        (["plan", "9x9", "7"], "same number of axes"),
        (["plan", "abc", "7"], "not a size"),
        (["plan", "9x9x9x9", "3x3x3x3"], "1, 2 or 3"),
    ],
)
def test_plan_bad_sizes_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_console_entry_points():
    for cmd in ([sys.executable, "-m", "poolport", "--help"],):
        out = subprocess.run(cmd, capture_output=True, text=True)
        assert out.returncode == 0 and "plan" in out.stdout
