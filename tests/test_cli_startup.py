"""Tools that start at once: ``poolport --help``, ``--version``, every ``poolport COMMAND --help`` and
``poolport plan`` (every option) import neither torch nor onnx nor any runtime (issue 17: each call used to
import torch, 2-9 s). Each runs the console script's code in a fresh interpreter and reads ``sys.modules``
as it ends; the plan it prints is compared with what the planning layer says."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import poolport
from poolport.backend.counting import count_ops
from poolport.cli.main import COMMANDS
from poolport.plan import adaptive_windows, plan_pool
from poolport.routing.targets import style_for

SRC = Path(poolport.__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "onnxruntime", "onnxscript", "openvino", "ncnn", "pnnx", "MNN", "tensorflow",
         "matplotlib")
# argparse alone: not even numpy (``plan`` uses it for the copied formula's error on a random input)
PARSER_ONLY = (*HEAVY, "numpy")

RUN = """
import sys
from poolport.cli.console import main
sys.argv = ["poolport", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
sys.stdout.flush()
print("\\n@@" + repr((code, sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}))))
"""


def run_poolport(*argv: str) -> tuple[int, str, list[str]]:
    """``poolport ARGV`` through ``poolport.cli.console:main`` in a fresh interpreter: exit code, standard
    output and which of PARSER_ONLY's packages (and their submodules) it imported."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", RUN.format(heavy=set(PARSER_ONLY)), *argv], capture_output=True,
                          text=True, env=env, timeout=120)
    out, _, tail = proc.stdout.rpartition("\n@@")
    assert tail, proc.stderr
    code, imported = ast.literal_eval(tail)
    return code, out, imported


@pytest.mark.parametrize("argv", [["--version"], ["--help"], [], *[[m.__name__.split(".")[-1][:-4], "--help"]
                                                                  for m in COMMANDS]], ids=" ".join)
def test_help_and_version_import_nothing_heavy(argv):
    code, out, imported = run_poolport(*argv)
    assert code in (0, 2) and out.strip()
    assert imported == [], f"poolport {' '.join(argv)} imported {imported}"


PLANS = [
    ("128", "14", "avg", None),
    ("9", "7", "max", "litert"),
    ("128x128", "14x14", "avg", "tflite"),
    ("8x224", "7x7", "max", "onnxruntime"),
    ("16x32x32", "5x7x3", "avg", "all"),
    ("224x224", "7x7", "avg", "auto"),
    ("3", "7", "avg", "edge"),
]


def plan_argv(n, o, op, target, *extra):
    return ["plan", n, o, "--op", op, *(["--target", target] if target else []), *extra]


def sizes(text):
    return tuple(int(s) for s in text.split("x"))


@pytest.mark.parametrize("n,o,op,target", PLANS)
def test_plan_text_imports_nothing_heavy_and_prints_the_planning_layers_plan(n, o, op, target):
    code, out, imported = run_poolport(*plan_argv(n, o, op, target))
    assert code == 0
    assert [m for m in imported if m.split(".")[0] != "numpy"] == []
    plan = plan_pool(op, sizes(n), sizes(o), style_for(target))
    assert out.startswith(str(plan) + "\n")
    for size_n, size_o in zip(sizes(n), sizes(o)):
        shown = " ".join(f"[{s},{e})" for s, e in adaptive_windows(size_n, size_o)[:16])
        assert f"({size_n} -> {size_o}): {shown}" in out


@pytest.mark.parametrize("n,o,op,target", PLANS)
def test_plan_json_imports_nothing_heavy_and_is_the_planning_layers_plan(n, o, op, target):
    code, out, imported = run_poolport(*plan_argv(n, o, op, target, "--json", "--seed", "3"))
    assert code == 0
    assert [m for m in imported if m.split(".")[0] != "numpy"] == []
    data = json.loads(out)
    plan = plan_pool(op, sizes(n), sizes(o), style_for(target))
    got = dict(data["plan"])
    assert got.pop("target") == target
    assert got.pop("onnx_ops") == dict(count_ops(plan))
    assert set(got.pop("onnx_ops_per_style")) == {"default", "edge"}
    assert got == json.loads(json.dumps(plan.to_dict()))
    assert [a["windows"] for a in data["axes"]] == [[list(w) for w in adaptive_windows(a, b)]
                                                   for a, b in zip(sizes(n), sizes(o))]


def test_a_bad_plan_argument_is_still_a_usage_error_without_torch():
    code, _, imported = run_poolport("plan", "9x9", "7")
    assert code == 2 and imported == []
