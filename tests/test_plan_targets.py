"""Plans per target: LiteRT's and ExecuTorch's constraints (at most 5 inputs per Concat, no Concat listing one
tensor twice) apply to the targets that have them -- the edge style -- and to no other. ``export_onnx``,
``convert --target`` and ``plan --target`` choose by target (the default form without one); ``make_portable``
and ``patch``, used ahead of torch-side converters, write the edge style unless told otherwise. Every report
names each site's style, and its operator counts are the graph's."""

import io
import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_oracles, ops_per_output
from torch import nn

import poolport
from poolport.backend.counting import count_ops
from poolport.cli.main import main
from poolport.errors import PoolportError
from poolport.functional.adaptive import adaptive_pool
from poolport.functional.dispatch import emitting
from poolport.plan import plan_pool
from poolport.plan.pooling import MAX_CONCAT_INPUTS
from poolport.routing.targets import TARGETS, style_for
from poolport.runtimes.registry import available, run_batch


@pytest.mark.parametrize("target,style", [
    (None, "default"), ("onnxruntime", "default"), ("openvino", "default"), ("ncnn", "default"), ("mnn", "default"),
    ("litert", "edge"), ("tflite", "edge"), ("executorch", "edge"), ("litert-torch", "edge"), ("all", "edge"),
    ("default", "default"), ("edge", "edge"),
])
def test_each_target_gets_its_style(target, style):
    assert style_for(target) == style


def test_auto_decides_by_the_runtimes_in_question():
    assert style_for("auto", ["onnxruntime", "openvino", "ncnn", "mnn"]) == "default"
    assert style_for("auto", ["openvino", "litert"]) == "edge"
    assert style_for("auto", []) == "default"
    assert style_for("auto") == ("edge" if available("litert") else "default")  # every installed runtime


def test_unknown_targets_are_refused_by_name():
    with pytest.raises(PoolportError, match="unknown target 'tensorrt'.*litert-torch"):
        style_for("tensorrt")
    with pytest.raises(PoolportError, match="unknown target"):
        poolport.make_portable(nn.AdaptiveAvgPool2d(7), target="tensorrt")
    with pytest.raises(PoolportError, match="unknown target"):
        with poolport.patch(target="tensorrt"):
            pass
    assert {"litert", "tflite", "executorch", "litert-torch", "auto", "all"} <= set(TARGETS)


def test_a_plan_knows_its_style():
    plan = plan_pool("avg", (11, 11), (7, 7), "edge")
    assert plan.style == "edge" and plan.to_dict()["style"] == "edge" and "(edge style)" in str(plan)
    assert plan_pool("avg", (11, 11), (7, 7)).style == "default"
    with pytest.raises(PoolportError, match="unknown plan style 'fast'"):
        plan_pool("avg", (9,), (7,), "fast")
    with pytest.raises(PoolportError, match="unknown plan style"):
        with emitting("fast"):
            pass


@pytest.mark.parametrize("op", ["avg", "max"])
def test_the_edge_style_is_exact_too(op):
    # the portable path in eager mode, as tests/test_functional_exact.py checks the default form: every 1-D
    # pair up to 32 (1x1 pools, concat trees, repeats) and 2-D shapes with both
    with poolport.always_portable(), emitting("edge"):
        for n in range(1, 33):
            x = torch.randn(2, 3, n)
            for o in range(1, 33):
                assert_matches_oracles(x, adaptive_pool(x, o, op, 1), (o,), op)
        for size, out in [((11, 11), (7, 7)), ((20, 20), (14, 14)), ((3, 4), (7, 9)), ((64, 3), (5, 40))]:
            x = torch.randn(2, 3, *size)
            assert_matches_oracles(x, adaptive_pool(x, out, op, 2), out, op)


class Head(nn.Module):
    """Three ways a model pools: a torch module (swapped), a functional call (the function mode) and one of
    poolport's own modules (the style context). 11 -> 7 has 7 runs per axis; 3 -> 7 repeats windows."""

    def __init__(self):
        super().__init__()
        self.torch_pool = nn.AdaptiveAvgPool2d(7)
        self.own_pool = poolport.nn.AdaptiveAvgPool2d((7, 9))

    def forward(self, x, small):
        return self.torch_pool(x), F.adaptive_max_pool2d(x, 7), self.own_pool(small)


X, SMALL = torch.randn(1, 3, 11, 11), torch.randn(1, 3, 3, 4)
SITES = [("avg", (11, 11), (7, 7)), ("max", (11, 11), (7, 7)), ("avg", (3, 4), (7, 9))]


def counted(style: str, sites=SITES) -> list[dict]:
    """The counting backend's operators for each of ``sites`` written in ``style``."""
    return [dict(count_ops(plan_pool(op, n, o, style))) for op, n, o in sites]


def output_ops(proto) -> list[dict]:
    """Per graph output, its operators (Constants aside)."""
    return [dict(c) for c in ops_per_output(proto)]


def torchscript_export(model) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (X, SMALL), f, dynamo=False, opset_version=17)
    return onnx.load_from_string(f.getvalue())


def assert_style(proto, style):
    assert output_ops(proto) == counted(style)


def test_make_portable_writes_the_edge_style_by_default():
    # what goes ahead of ExecuTorch and litert-torch keeps their delegate guarantees (tests/test_edge.py)
    assert_style(torchscript_export(poolport.make_portable(Head().eval())), "edge")
    assert_style(torchscript_export(poolport.make_portable(Head().eval(), target="executorch")), "edge")


def test_make_portable_for_an_onnx_runtime_writes_the_default_form():
    portable = poolport.make_portable(Head().eval(), target="onnxruntime")
    assert_style(torchscript_export(portable), "default")
    # a copy of that copy takes its own target
    assert_style(torchscript_export(poolport.make_portable(portable, target="litert")), "edge")


def test_patch_writes_the_edge_style_by_default_and_restores_the_model():
    model = Head().eval()
    with poolport.patch(model):
        assert_style(torchscript_export(model), "edge")
    with poolport.patch(model, target="openvino"):
        assert_style(torchscript_export(model), "default")
    assert type(model.torch_pool) is nn.AdaptiveAvgPool2d and "_poolport_style" not in vars(model.torch_pool)


def test_bare_poolport_modules_write_the_default_form():
    class Own(nn.Module):
        def forward(self, x, small):
            return (poolport.functional.adaptive_avg_pool2d(x, 7), poolport.functional.adaptive_max_pool2d(x, 7),
                    poolport.nn.AdaptiveAvgPool2d((7, 9))(small))

    assert_style(torchscript_export(Own()), "default")


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("target", [None, "litert"])
def test_export_onnx_writes_and_reports_the_targets_style(exporter, target, tmp_path):
    style = style_for(target)
    report = poolport.export_onnx(Head().eval(), (X, SMALL), tmp_path / "m.onnx", exporter=exporter, target=target,
                                  random_checks=0, report=tmp_path / "r.json")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert output_ops(proto) == counted(style)
    assert [s.plan.style for s in report.sites] == [style] * 3
    # the report's counts are the graph's
    assert [s.op_counts() for s in report.sites] == output_ops(proto)
    data = json.loads((tmp_path / "r.json").read_text())
    assert [s["style"] for s in data["sites"]] == [style] * 3
    assert [s["onnx_ops"] for s in data["sites"]] == output_ops(proto)
    if style == "edge":
        assert all("[edge]" in s.onnx_ops for s in report.sites)
        fan_in = [len(n.input) for n in proto.graph.node if n.op_type == "Concat"]
        assert max(fan_in) <= MAX_CONCAT_INPUTS


def test_a_torchscript_file_is_written_in_the_targets_style_too(tmp_path):
    # aten::adaptive_* of a scripted model go through poolport's symbolics: the style travels with them
    scripted = torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(7)))
    for target, style in [(None, "default"), ("litert", "edge")]:
        path = tmp_path / f"{style}.onnx"
        report = poolport.export_onnx(scripted, (X,), path, exporter="torchscript", target=target, random_checks=0)
        assert report.sites[0].plan.style == style
        assert output_ops(onnx.load(str(path))) == counted(style, SITES[:1]) == [report.sites[0].op_counts()]


def test_convert_target_chooses_the_style(tmp_path, capsys):
    factory = tmp_path / "head.py"
    factory.write_text("import torch\n\ndef build():\n    return torch.nn.AdaptiveMaxPool2d(7)\n")
    out, rep = tmp_path / "h.onnx", tmp_path / "r.json"
    assert main(["convert", f"{factory}:build", "--input", "1x3x11x11", "-o", str(out), "--report", str(rep),
                 "--exporter", "torchscript", "--target", "tflite", "--random-checks", "0", "--quiet"]) == 0
    assert "[edge]" in capsys.readouterr().out
    assert json.loads(rep.read_text())["sites"][0]["style"] == "edge"
    assert output_ops(onnx.load(str(out))) == counted("edge", SITES[1:2])


def test_plan_target_prints_that_targets_operators(capsys):
    assert main(["plan", "11x11", "7x7"]) == 0
    assert "ONNX: AveragePool x14, Concat x2, Slice x14" in capsys.readouterr().out
    assert main(["plan", "11x11", "7x7", "--target", "litert"]) == 0
    assert "ONNX (edge style, for litert): AveragePool x18, Concat x6, Slice x14" in capsys.readouterr().out
    assert main(["plan", "30x34", "14x10", "--target", "executorch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["plan"]
    assert data["target"] == "executorch" and data["style"] == "edge"
    assert data["onnx_ops"] == {"AveragePool": 9, "Concat": 3, "Slice": 8}
    assert data["onnx_ops_per_style"]["default"] == {"AveragePool": 8, "Concat": 2, "Slice": 8}
    assert main(["plan", "9", "7", "--target", "auto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["style"] == style_for("auto")
    with pytest.raises(SystemExit):
        main(["plan", "9", "7", "--target", "tensorrt"])


class Repeats(nn.Module):
    """Output larger than the input: repeated windows, which the default form lists twice in one Concat."""

    def forward(self, x):
        return (poolport.functional.adaptive_avg_pool2d(x, (7, 9)), poolport.functional.adaptive_max_pool2d(x, (5, 3)),
                poolport.functional.adaptive_avg_pool2d(x, (2, 10)))


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn", "mnn"])
def test_a_concat_listing_one_tensor_twice_is_exact_in_onnx_runtimes(runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    from poolport.export.torch_onnx import torch_export_to_proto

    x = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    items = []
    for exporter, opset in [("dynamo", 18), ("torchscript", 17)]:
        proto = torch_export_to_proto(Repeats().eval(), (x,), exporter, opset)
        proto.ir_version = 8  # what pnnx's bundled ONNX Runtime loads
        listed_twice = [n for n in proto.graph.node if n.op_type == "Concat" and len(set(n.input)) < len(n.input)]
        assert listed_twice, "the default form lists a repeated window twice"
        items.append((proto, {proto.graph.input[0].name: x.numpy()}))
    with torch.no_grad():
        want = [y.numpy() for y in (F.adaptive_avg_pool2d(x, (7, 9)), F.adaptive_max_pool2d(x, (5, 3)),
                                    F.adaptive_avg_pool2d(x, (2, 10)))]
    for got in run_batch(runtime, items):
        assert not isinstance(got, Exception), got
        for y, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(y).reshape(w.shape), w, rtol=1e-5, atol=1e-6)
