"""Fault injection (issue 16, item 5): a runtime whose answer is perturbed must fail verification, in every
place poolport verifies: ``export_onnx`` (its ONNX Runtime check, and a runtime asked for with
``runtimes=``), ``poolport check``, ``poolport probe`` and ``legalize``'s own check.

The perturbation wraps what a runtime returns, where poolport asks for it (the runtime registry's ``run``,
``run_batch`` and ``run_sizes``, or ONNX Runtime's ``InferenceSession.run``): the production comparison judges, the
oracle is the runtime's own unperturbed answer, or PyTorch's."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import poolport
from poolport.cli.main import main
from poolport.legalizer import probe
from poolport.runtimes import registry
from poolport.runtimes.onnxruntime_rt import run_onnxruntime


def _slightly(out):
    out[0] = out[0] + np.float32(1e-3) * np.abs(out[0]).max()  # 1e-3 of this output's scale, 1e-9 of the next
    return out


def _one_cell(out):
    out[0].flat[out[0].size // 2] += np.float32(0.5)
    return out


def _set_first(value):
    def perturb(out):
        out[0].flat[0] = value
        return out
    return perturb


def _cut(out):
    out[0] = out[0][..., :-1]
    return out


def _same_size_other_shape(out):
    out[0] = out[0].reshape(*out[0].shape[:-2], -1)  # the same cells, the last two axes flattened
    return out


def _as(dtype):
    def perturb(out):
        out[0] = out[0].astype(dtype)
        return out
    return perturb


def _all_nan(out):
    return [np.full_like(o, np.nan) for o in out]


PERTURBATIONS = {
    "one output slightly wrong": _slightly,
    "one cell wrong": _one_cell,
    "NaN where the reference is finite": _set_first(np.nan),
    "inf where the reference is finite": _set_first(np.inf),
    "-inf where the reference is finite": _set_first(-np.inf),
    "all NaN on both sides": _all_nan,  # with a model (or oracle) whose own answer is all NaN
    "wrong shape": _cut,
    "same cells, another shape": _same_size_other_shape,
    "float64 for float32": _as(np.float64),
    "float16 for float32": _as(np.float16),
    "an output missing": lambda out: out[:-1],
    "an extra output": lambda out: out + [out[0].copy()],
    "zero-size outputs": lambda out: [o[..., :0] for o in out],
}
BOTH_NAN = "all NaN on both sides"


def perturbed(run, perturb, when=lambda model: True):
    """``run(model, feeds)`` with ``perturb`` applied to copies of its outputs (where ``when(model)``)."""
    def wrapped(model, feeds):
        out = [np.array(o) for o in run(model, feeds)]
        return perturb(out) if when(model) else out
    return wrapped


# -- the models ------------------------------------------------------------------------------------

class TwoScales(torch.nn.Module):
    """A pooled map near 1 beside an output in the millions: the first is the one perturbed."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 5), x * 1e6


class AllNaN(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(torch.log(-(x * x) - 1), 5)


def onnx_model(path, all_nan=False):
    """AveragePool with ceil_mode and count_include_pad (every legalize target rewrites it) beside
    x * 1e6; with ``all_nan`` the pool reads log(-(x * x) - 1) and that is the only output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    pooled = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 3, 5, 5])
    big = helper.make_tensor_value_info("big", TensorProto.FLOAT, [1, 3, 8, 8])
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)
    inits = [numpy_helper.from_array(np.array(1e6, np.float32), "c"),
             numpy_helper.from_array(np.array(-1.0, np.float32), "m1")]
    if all_nan:
        nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Neg", ["sq"], ["neg"]),
                 helper.make_node("Add", ["neg", "m1"], ["arg"]), helper.make_node("Log", ["arg"], ["l"]),
                 helper.make_node("AveragePool", ["l"], ["pooled"], **pool)]
        outputs = [pooled]
    else:
        nodes = [helper.make_node("AveragePool", ["x"], ["pooled"], **pool), helper.make_node("Mul", ["x", "c"], ["big"])]
        outputs = [pooled, big]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], outputs, inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


# -- the entry points: each returns (passed, what it said) -----------------------------------------

def _export(model, tmp_path, **kwargs):
    path = tmp_path / "m.onnx"
    x = torch.randn(1, 3, 10, 10)
    try:
        report = poolport.export_onnx(model, x, path, exporter="torchscript", **kwargs)
    except poolport.PoolportError as e:
        assert not path.exists()
        return False, str(e)
    return report.passed and path.exists(), report.table()


def export_onnxruntime(monkeypatch, tmp_path, name):
    """export_onnx's ONNX Runtime check, its session's answers perturbed."""
    run = onnxruntime.InferenceSession.run
    perturb = PERTURBATIONS[name]

    def session_run(self, output_names, input_feed, run_options=None):
        return perturb([np.array(o) for o in run(self, output_names, input_feed, run_options)])

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", session_run)
    return _export(AllNaN() if name == BOTH_NAN else TwoScales(), tmp_path)


def _stand_in(monkeypatch, name, when=lambda model: True, runtime="openvino"):
    """``runtime`` answers what ONNX Runtime answers, perturbed: the registry's runner replaced."""
    runner = perturbed(run_onnxruntime, PERTURBATIONS[name], when)
    monkeypatch.setitem(registry.RUNNERS, runtime, runner)
    run_sizes = registry.run_sizes

    def sizes(rt, model, feeds):  # what export_onnx asks: the model at every size verified, at once
        if rt != runtime:
            return run_sizes(rt, model, feeds)
        return [runner(model, f) for f in feeds], ""

    monkeypatch.setattr(registry, "run_sizes", sizes)
    monkeypatch.setattr(registry, "available", lambda rt: rt in ("onnxruntime", runtime))


def export_runtime(monkeypatch, tmp_path, name):
    """export_onnx(runtimes=[...]): a runtime asked for, perturbed."""
    _stand_in(monkeypatch, name)
    return _export(AllNaN() if name == BOTH_NAN else TwoScales(), tmp_path, runtimes=["openvino"])


def check(monkeypatch, tmp_path, name, capsys):
    """poolport check, a selected runtime perturbed (the reference: the evaluator, or ONNX Runtime where
    the model computes NaN)."""
    _stand_in(monkeypatch, name)
    path = onnx_model(tmp_path / "m.onnx", all_nan=name == BOTH_NAN)
    code = main(["check", str(path), "--runtimes", "openvino", "--json", "-", "--quiet"])
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is (code == 0)
    return code == 0, json.dumps(data["results"])


def probe_entry(monkeypatch, tmp_path, name, capsys):
    """poolport probe: the runtime's batch answers perturbed (for all NaN, ONNX's definition too)."""
    run_batch, perturb = registry.run_batch, PERTURBATIONS[name]

    def batch(rt, items):
        return [a if isinstance(a, Exception) else perturb([np.array(o) for o in a]) for a in run_batch(rt, items)]

    monkeypatch.setattr(registry, "run_batch", batch)
    if name == BOTH_NAN:
        reference = probe.reference
        monkeypatch.setattr(probe, "reference", lambda case, feeds: _all_nan(reference(case, feeds)))
    cases = tuple(c for c in probe.CASES if c.name in ("avg-plain", "max-ceil", "avg-ceil-pads-include"))
    report = probe.run_probe(("onnxruntime",), cases=cases)
    rows = report.results["onnxruntime"]
    assert len(rows) == len(cases)
    return any(r.verdict == "ok" for r in rows), report.text()


def legalize(monkeypatch, tmp_path, name, capsys):
    """poolport legalize's own check: ONNX Runtime's answer for the rewritten model perturbed."""
    _stand_in(monkeypatch, name, when=lambda m: any(n.op_type == "Pad" for n in m.graph.node), runtime="onnxruntime")
    path, out = onnx_model(tmp_path / "m.onnx", all_nan=name == BOTH_NAN), tmp_path / "out.onnx"
    code = main(["legalize", str(path), "-o", str(out), "--target", "all"])
    text = capsys.readouterr()
    assert (code == 0) == out.exists()
    return code == 0, text.out + text.err


ENTRIES = {
    "export (ONNX Runtime check)": lambda mp, tp, name, capsys: export_onnxruntime(mp, tp, name),
    "export (runtimes=)": lambda mp, tp, name, capsys: export_runtime(mp, tp, name),
    "check": check,
    "probe": probe_entry,
    "legalize": legalize,
}


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_every_perturbation_fails_verification(monkeypatch, tmp_path, capsys, entry, name):
    passed, said = ENTRIES[entry](monkeypatch, tmp_path, name, capsys)
    assert not passed, f"{entry} passed a runtime answering with {name}:\n{said}"


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_the_unperturbed_runtime_passes(monkeypatch, tmp_path, capsys, entry):
    # the control: the same wrappers with nothing changed pass, so each failure above is the perturbation's
    monkeypatch.setitem(PERTURBATIONS, "nothing", lambda out: out)
    passed, said = ENTRIES[entry](monkeypatch, tmp_path, "nothing", capsys)
    assert passed, said
