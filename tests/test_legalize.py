"""legalize: rewritten pooling nodes equal the original under the ONNX reference evaluator and ONNX
Runtime; on the real OpenVINO and ncnn (via pnnx) the original patterns are wrong and the rewrite is
right. Runtimes are optional extras: those tests skip when the runtime is not installed."""

import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import poolport
from poolport import PoolportError
from poolport.cli.main import main
from poolport.errors import VerificationError
from poolport.legalizer.probe import ProbeCase, reference
from poolport.legalizer.run import Kept, PoolRewrite, random_feeds
from poolport.runtimes.registry import RUNNERS, available


def pool_model(op, shape, opset=17, dtype=TensorProto.FLOAT, **attrs):
    x = helper.make_tensor_value_info("x", dtype, list(shape))
    y = helper.make_tensor_value_info("y", dtype, ["n", "c"] + [f"d{i}" for i in range(len(shape) - 2)])
    node = helper.make_node(op, ["x"], ["y"], name="pool", **attrs)
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


# (name, op, input shape, attributes, targets whose rules rewrite it)
PATTERNS = [
    ("avg-ceil-include-pad", "AveragePool", (1, 2, 7, 8),
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1), {"openvino", "ncnn"}),
    ("avg-ceil-include-pad-nopad", "AveragePool", (1, 2, 6, 6),
     dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=1), {"openvino", "ncnn"}),
    ("avg-same-upper", "AveragePool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
     {"ncnn", "mnn"}),
    ("avg-same-lower", "AveragePool", (1, 2, 8, 9), dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
     {"ncnn", "mnn", "litert"}),
    ("max-same-lower", "MaxPool", (1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
     {"ncnn", "mnn", "litert"}),
    ("max-asym", "MaxPool", (1, 2, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1]), {"ncnn"}),
    ("avg-asym-include", "AveragePool", (1, 2, 7, 7),
     dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1], count_include_pad=1), {"ncnn", "mnn"}),
    ("max-dilated", "MaxPool", (1, 2, 9, 10), dict(kernel_shape=[3, 3], strides=[1, 2], pads=[1, 1, 1, 1],
                                                    dilations=[2, 2]), {"ncnn", "mnn", "litert"}),
    ("max-dilated-ceil", "MaxPool", (1, 2, 10, 11), dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 3],
                                                         ceil_mode=1), {"ncnn", "mnn", "litert"}),
    ("max-3d-ceil", "MaxPool", (1, 2, 8, 7, 8), dict(kernel_shape=[3, 2, 3], strides=[2, 2, 2], ceil_mode=1),
     {"mnn"}),
    ("avg-3d-unpadded", "AveragePool", (1, 2, 6, 7, 9), dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2]),
     {"mnn", "litert"}),
    ("avg-3d-cube-channels", "AveragePool", (1, 4, 8, 8, 8), dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
     {"mnn"}),
    ("avg-3d-pads", "AveragePool", (1, 2, 7, 6, 7), dict(kernel_shape=[3, 3, 2], strides=[2, 2, 2], pads=[1, 1, 0, 1, 0, 1]),
     {"mnn", "ncnn", "litert"}),
    ("avg-3d-ceil-include", "AveragePool", (1, 2, 8, 8, 7),
     dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], pads=[1] * 6, ceil_mode=1, count_include_pad=1),
     {"mnn", "ncnn", "openvino", "litert"}),
    ("max-same-upper", "MaxPool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
     {"ncnn", "mnn"}),
    ("avg-asym-exclude", "AveragePool", (1, 2, 7, 7), dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]), {"ncnn"}),
    ("avg-1d-ceil", "AveragePool", (1, 3, 10), dict(kernel_shape=[4], strides=[3], pads=[1, 1], ceil_mode=1, count_include_pad=1), {"openvino", "ncnn"}),
    ("avg-3d-same", "AveragePool", (1, 1, 5, 6, 7), dict(kernel_shape=[2, 3, 2], strides=[2, 2, 2], auto_pad="SAME_UPPER"),
     {"ncnn", "mnn", "litert"}),
    # onnx's own node tests averagepool_2d_ceil_last_window_starts_on_pad / maxpool with ceil on 2x2
    ("avg-ceil-window-in-pad", "AveragePool", (1, 2, 2, 2),
     dict(kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1), {"openvino", "ncnn", "mnn"}),
    ("max-ceil-window-in-pad", "MaxPool", (1, 2, 2, 2), dict(kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1),
     {"openvino", "ncnn", "mnn"}),
    # ONNX LpPool (more below: test_lp_*)
    ("lp-pads", "LpPool", (1, 2, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), {"ncnn", "litert"}),
    ("lp-p1-asym", "LpPool", (1, 2, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], p=1),
     {"ncnn", "litert", "mnn"}),
    ("lp-3d", "LpPool", (1, 2, 6, 7, 9), dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2]), {"ncnn", "mnn"}),
]
IDS = [p[0] for p in PATTERNS]
# the patterns --target all refuses (kept: the form the rule writes is wrong on this runtime, measured)
ALL_REFUSES = {"max-dilated": "ncnn", "max-dilated-ceil": "ncnn", "avg-3d-cube-channels": "litert"}


def from_pattern(i):
    _, op, shape, attrs, _ = PATTERNS[i]
    return pool_model(op, shape, **attrs)


@pytest.mark.parametrize("name,op,shape,attrs,targets", PATTERNS, ids=IDS)
@pytest.mark.parametrize("target", ["all", "ncnn", "openvino", "onnxruntime", "mnn", "litert"])
def test_rewrites_equal_the_original(name, op, shape, attrs, targets, target):
    model = pool_model(op, shape, **attrs)
    if target == "all" and name in ALL_REFUSES:
        # no form of it is right on every runtime: --target all keeps it and fails closed, naming the runtime
        with pytest.raises(VerificationError, match=f"wrong on {ALL_REFUSES[name]}"):
            poolport.legalize(model, target)
        return
    result = poolport.legalize(model, target)
    fixed, changes = result.model, result.changes
    rewritten = target == "all" or target in targets
    assert changes and all(isinstance(c, PoolRewrite) for c in changes) if rewritten else changes == []
    ops = [n.op_type for n in fixed.graph.node]
    if rewritten and op == "MaxPool" and attrs.get("auto_pad") and target in ("mnn", "litert"):
        # the "pads" form: the same MaxPool with auto_pad written out as explicit pads (no Pad node: onnx2tf
        # misplaces one where C == H == W)
        (node,) = fixed.graph.node
        a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        assert "auto_pad" not in a and len(a["pads"]) == 2 * (len(shape) - 2)
    elif rewritten:
        assert [n.name for n in fixed.graph.node] != ["pool"]  # the node was replaced by its explicit form
        for node in fixed.graph.node:
            attrs_ = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            assert attrs_.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            if target in ("mnn", "litert"):  # 3-D pooling is gone
                assert node.op_type not in ("AveragePool", "MaxPool") or len(attrs_["kernel_shape"]) < 3
            if node.op_type in ("AveragePool", "MaxPool") and target != "all" and target not in ("mnn", "litert"):
                # the explicit form has no implicit padding left
                assert not any(attrs_.get("pads", [])) and not attrs_.get("ceil_mode", 0)
    else:
        assert ops == [op]
    feeds = random_feeds(model, 1)
    # oracles: numpy from the ONNX definition (onnx 1.23's evaluator gets asymmetric MaxPool pads wrong) and
    # ONNX Runtime on the original
    (want,) = reference(ProbeCase(name, op, tuple(shape), tuple(sorted(attrs.items())), 17), feeds)
    got = RUNNERS["onnxruntime"](fixed, feeds)[0]
    assert want.shape == got.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, RUNNERS["onnxruntime"](model, feeds)[0], rtol=1e-6, atol=1e-6)


def test_float16_models_get_float16_corrections():
    model = pool_model("AveragePool", (1, 2, 7, 7), dtype=TensorProto.FLOAT16,
                       kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])
    fixed = poolport.legalize(model, "ncnn").model
    assert {i.data_type for i in fixed.graph.initializer if i.name.endswith("correction")} == {TensorProto.FLOAT16}


def test_opset_10_pads_as_attributes():
    model = pool_model("AveragePool", (1, 2, 8, 8), opset=10, kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    fixed = poolport.legalize(model, "ncnn").model
    pad = next(n for n in fixed.graph.node if n.op_type == "Pad")
    assert [a.name for a in pad.attribute if a.name == "pads"] == ["pads"]


def test_dynamic_spatial_sizes_are_kept_and_reported():
    model = pool_model("AveragePool", ("n", 2, "h", "w"), kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    result = poolport.legalize(model, "ncnn", keep_unfixed=True)
    fixed, changes = result.model, result.changes
    assert [type(c) for c in changes] == [Kept] and "not static" in str(changes[0])
    assert result.kept == changes and changes[0].rules == ("auto-pad-same-upper",)
    assert [n.op_type for n in fixed.graph.node] == ["AveragePool"]


def _indices_used(auto_pad="SAME_LOWER", shape=(1, 2, 8, 8), **attrs):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    ys = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"]),
          helper.make_tensor_value_info("i", TensorProto.INT64, ["n", "c", "h", "w"])]
    attrs = attrs or dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad=auto_pad)
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], name="argmax", **attrs)
    m = helper.make_model(helper.make_graph([node], "g", [x], ys), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


# nodes a rule for the target matches but no rewrite can be written for: (model, target, node, rule, reason)
KEPT = [
    ("dynamic", lambda: pool_model("AveragePool", ("n", 2, "h", "w"), kernel_shape=[3, 3], strides=[2, 2],
                                   auto_pad="SAME_UPPER"), "ncnn", "pool", "auto-pad-same-upper", "not static"),
    # a used Indices output takes plan.indices' form whatever rule matches (tests/test_legalize_indices.py), except
    # column-major indices (storage_order 1); the form is wrong in LiteRT (measured), so the node stays there
    ("indices", lambda: _indices_used(shape=(1, 2, 2, 2), kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1,
                                      storage_order=1),
     "openvino", "argmax", "ceil-window-in-padding", "storage_order"),
    ("indices-litert", lambda: _indices_used("VALID"), "litert", "argmax", "max-indices", "wrong on litert"),
    ("opset10-dilated", lambda: pool_model("MaxPool", (1, 2, 9, 10), opset=10, kernel_shape=[3, 3], dilations=[2, 2]),
     "litert", "pool", "dilated-pool", "opset 11"),
]


@pytest.mark.parametrize("model,target,node,rule,reason", [k[1:] for k in KEPT], ids=[k[0] for k in KEPT])
def test_a_kept_node_fails_closed_unless_asked(model, target, node, rule, reason, tmp_path, capsys):
    # a node the target computes wrongly, left as it was, is no silent success: exit 1 naming the node, the
    # rule, the reason and how to keep it anyway; --keep-unfixed (keep_unfixed=True) writes it, listed as kept
    model = model()
    with pytest.raises(VerificationError) as e:
        poolport.legalize(model, target)
    for part in (node, rule, reason, "--keep-unfixed", "keep_unfixed=True"):
        assert part in str(e.value)
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    assert main(["legalize", str(src), "-o", str(dst), "--target", target]) == 1
    err = capsys.readouterr().err
    assert node in err and rule in err and reason in err and "--keep-unfixed" in err
    assert not dst.exists()
    assert main(["legalize", str(src), "-o", str(dst), "--target", target, "--keep-unfixed"]) == 0
    out = capsys.readouterr().out
    assert f"{node}: kept" in out and rule in out and "1 pooling node(s) kept as they were" in out
    assert [n.op_type for n in onnx.load(str(dst)).graph.node] == [n.op_type for n in model.graph.node]
    result = poolport.legalize(model, target, keep_unfixed=True)
    assert [c.node for c in result.kept] == [node] and rule in result.kept[0].rules


def _dilated_2x2():
    # ncnn refuses the original loudly (pnnx leaves dilated pooling unconverted); the tap form that MNN and
    # LiteRT need loads in ncnn and returns shape (1, 1, 4, 2) for (1, 1, 2, 2)
    return pool_model("MaxPool", (1, 1, 2, 2), kernel_shape=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2])


def _cube(op, **attrs):
    return lambda: pool_model(op, (1, 8, 8, 8), **attrs)


# for --target all: nodes no form is right for on every runtime (model, the runtime named)
ALL_KEPT = [
    ("dilated-max", _dilated_2x2, "ncnn"),
    ("dilated-avg", lambda: pool_model("AveragePool", (1, 2, 9, 10), opset=19, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                       dilations=[2, 2]), "ncnn"),
    # MaxPool SAME_LOWER where C == H == W: ncnn needs the Pad form, onnx2tf misplaces a Pad node there
    ("max-same-lower-cube", _cube("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"), "litert"),
    # a 3-D pool whose 2-D form has a tensor with all its sizes equal: onnx2tf guesses its layout wrongly
    ("max-3d-ceil-cube", lambda: pool_model("MaxPool", (1, 4, 8, 8, 8), kernel_shape=[3, 3, 3], strides=[2, 2, 2],
                                            ceil_mode=1), "litert"),
]


@pytest.mark.parametrize("model,runtime", [k[1:] for k in ALL_KEPT], ids=[k[0] for k in ALL_KEPT])
def test_target_all_never_writes_a_form_a_runtime_computes_wrongly(model, runtime):
    model = model()
    with pytest.raises(VerificationError, match=f"wrong on {runtime}") as e:
        poolport.legalize(model, "all")
    assert "--keep-unfixed" in str(e.value) and "--target" in str(e.value)
    result = poolport.legalize(model, "all", keep_unfixed=True)
    assert [n.op_type for n in result.model.graph.node] == [model.graph.node[0].op_type]
    assert result.kept and runtime in result.kept[0].runtimes


def test_one_runtime_still_gets_its_form():
    # what --target all refuses for every runtime at once is still written for the runtime that needs it
    assert poolport.legalize(_dilated_2x2(), "mnn").rewritten
    assert poolport.legalize(_cube("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")(),
                             "ncnn").rewritten
    assert poolport.legalize(_cube("MaxPool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")(),
                             "litert").rewritten


@pytest.mark.runtime
def test_target_all_file_is_right_in_ncnn_or_refused_there(tmp_path, capsys):
    # real pnnx -> ncnn: the dilated pool `legalize --target all` used to rewrite into a form ncnn loads and
    # computes with the wrong shape; now the command exits 1, and the file --keep-unfixed writes is refused
    # by ncnn loudly, as the original is
    if not available("ncnn"):
        pytest.skip("ncnn not installed (pip install 'poolport[runtimes]')")
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    model = _dilated_2x2()
    onnx.save(model, str(src))
    assert main(["legalize", str(src), "-o", str(dst), "--target", "all"]) == 1
    assert "ncnn" in capsys.readouterr().err and not dst.exists()
    assert main(["legalize", str(src), "-o", str(dst), "--target", "all", "--keep-unfixed"]) == 0
    feeds = random_feeds(model, 0)
    with pytest.raises(PoolportError):
        RUNNERS["ncnn"](onnx.load(str(dst)), feeds)
    # every other rewrite --target all writes for the PATTERNS is exact in ncnn or refused there
    items = []
    for name, op, shape, attrs, _ in PATTERNS:
        m = pool_model(op, shape, **attrs)
        fixed = poolport.legalize(m, "all", keep_unfixed=True, verify=False).model
        items.append((name, m, fixed, random_feeds(m, 1)))
    from poolport.runtimes.registry import run_batch

    answers = run_batch("ncnn", [(fixed, feeds) for _, _, fixed, feeds in items])
    for (name, m, _, feeds), got in zip(items, answers):
        if isinstance(got, Exception):
            continue
        want = RUNNERS["onnxruntime"](m, feeds)[0]
        assert got[0].size == want.size, f"{name}: ncnn returns {got[0].shape} for {want.shape}"
        np.testing.assert_allclose(np.asarray(got[0]).reshape(want.shape), want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_input_is_never_modified(tmp_path):
    model = from_pattern(0)
    path = tmp_path / "in.onnx"
    onnx.save(model, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    before = model.SerializeToString()
    poolport.legalize(model, "all")
    poolport.legalize(str(path), "all")
    assert model.SerializeToString() == before
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert main(["legalize", str(path), "-o", str(path)]) == 2  # refuses to write over its input
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_cli_writes_report_and_refuses_overwrite(tmp_path, capsys):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(from_pattern(2), str(src))
    assert main(["legalize", str(src), "-o", str(dst), "--target", "ncnn"]) == 0
    out = capsys.readouterr().out
    assert "1 pooling node(s) rewritten, verified" in out and "auto-pad-same" in out
    assert main(["legalize", str(src), "-o", str(dst), "--target", "ncnn"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,match",
    [(b"not a model", "is not an ONNX model"), (None, "does not exist")],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "x.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PoolportError, match=match):
        poolport.legalize(str(path))


def test_unknown_target():
    with pytest.raises(PoolportError, match="target must be one of"):
        poolport.legalize(from_pattern(0), "coreml")


def test_export_onnx_applies_legalize(tmp_path):
    import torch

    model = torch.nn.Sequential(torch.nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=True),
                                torch.nn.AdaptiveAvgPool2d(3))
    report = poolport.export_onnx(model, torch.randn(1, 2, 8, 8), tmp_path / "m.onnx", target="openvino")
    assert report.passed and any("avg-ceil-include-pad" in c for c in report.legalized)


def test_export_onnx_with_a_target_fails_closed_on_a_kept_node(tmp_path):
    import torch

    # a dilated ONNX MaxPool: no legalizer form of it is right on every runtime --target all serves (ncnn
    # computes the tap form with the wrong shape); the export refuses and writes nothing. A scripted model keeps
    # torch's own op, so the legalizer meets the node (an eager one gets poolport's sub-lattice form instead)
    model = torch.nn.MaxPool2d(3, stride=1, padding=1, dilation=2)
    x = torch.randn(1, 2, 9, 10)
    path = tmp_path / "m.onnx"
    with pytest.raises(VerificationError, match="wrong on ncnn") as e:
        poolport.export_onnx(torch.jit.script(model), x, path, target="all", exporter="torchscript")
    assert "without a target" in str(e.value) and not path.exists()
    assert poolport.export_onnx(torch.jit.script(model), x, path, target="mnn", exporter="torchscript").passed
    path.unlink()
    assert poolport.export_onnx(model, x, path, target="all", exporter="torchscript").passed


def _planted(shape):
    """Inputs with non-finite values planted: NaN, +inf and -inf at every cell in turn (padding-adjacent
    cells and window edges included), and an input of -inf with one finite cell at every cell in turn."""
    base = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    base *= np.where(np.indices(shape).sum(axis=0) % 2, -1, 1).astype(np.float32)
    for pos in np.ndindex(*shape):
        for value in (np.nan, np.inf, -np.inf):
            x = base.copy()
            x[pos] = value
            yield f"{value} at {pos}", x
        x = np.full(shape, -np.inf, dtype=np.float32)
        x[pos] = 1.0
        yield f"-inf but 1 at {pos}", x


# MaxPool forms that hold no MaxPool over more than one cell (the tap form: Slice + Max), judged against
# the operator's definition (NaN propagates, padding never wins, a window of -inf is -inf) and torch
TAP_FORMS = [  # (op attributes, input shape, target, torch's call or None)
    (dict(kernel_shape=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2]), (1, 1, 3, 4), "litert",
     lambda t: torch_max_pool(t, 2, 1, 1, 2)),
    (dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 1, 1, 1], dilations=[2, 3], ceil_mode=1), (1, 2, 6, 4),
     "litert", lambda t: torch_max_pool(t, (3, 2), (2, 1), (1, 1), (2, 3), ceil_mode=True)),
    (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 1, 1, 0], dilations=[2, 2]), (1, 1, 4, 5), "litert", None),
    (dict(kernel_shape=[2], strides=[1], pads=[1, 1], dilations=[3]), (1, 1, 3), "litert",
     lambda t: torch_max_pool(t, 2, 1, 1, 3)),
]


def torch_max_pool(t, *args, **kwargs):
    import torch

    f = {3: torch.nn.functional.max_pool1d, 4: torch.nn.functional.max_pool2d}[t.dim()]
    return f(t, *args, **kwargs)


@pytest.mark.parametrize("attrs,shape,target,torch_op", TAP_FORMS, ids=[str(i) for i in range(len(TAP_FORMS))])
def test_tap_forms_keep_nan_and_inf_as_defined(attrs, shape, target, torch_op):
    import torch

    from poolport.testing.reference import onnx_pool

    model = pool_model("MaxPool", shape, opset=17, **attrs)
    fixed = poolport.legalize(model, target).model
    assert "Max" in {n.op_type for n in fixed.graph.node}
    d = len(shape) - 2
    pads = attrs.get("pads", [0] * 2 * d)
    for label, x in _planted(shape):
        got = RUNNERS["onnxruntime"](fixed, {"x": x})[0]
        want = onnx_pool(x, "max", attrs["kernel_shape"], attrs.get("strides", [1] * d), pads[:d], pads[d:],
                         attrs.get("dilations"), bool(attrs.get("ceil_mode", 0))).astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=label)
        if torch_op is not None:
            np.testing.assert_array_equal(got, torch_op(torch.from_numpy(x)).numpy(), err_msg=label)


@pytest.mark.parametrize("name,target", [("max-same-lower", "ncnn"), ("max-same-lower", "mnn"), ("max-asym", "ncnn"),
                                         ("max-same-upper", "ncnn"), ("max-ceil-window-in-pad", "openvino")])
def test_maxpool_forms_keep_infinities_as_the_original(name, target):
    # the Pad form (edge padding) and the pads form keep a MaxPool, whose NaN ONNX Runtime drops depending
    # on where it sits (docs/legalize.md): with inf or -inf planted at every cell they equal the original
    _, op, shape, attrs, _ = next(p for p in PATTERNS if p[0] == name)
    shape = (1, 1) + shape[2:]
    model = pool_model(op, shape, **attrs)
    fixed = poolport.legalize(model, target).model
    assert fixed.graph.node[-1].op_type == "MaxPool"
    base = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    for pos in np.ndindex(*shape):
        for value in (np.inf, -np.inf):
            x = base.copy()
            x[pos] = value
            np.testing.assert_array_equal(RUNNERS["onnxruntime"](fixed, {"x": x})[0],
                                          RUNNERS["onnxruntime"](model, {"x": x})[0], err_msg=f"{value} at {pos}")


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["mnn", "litert"])
def test_tap_forms_with_inf_padding_in_runtime(runtime):
    # the dilated forms pad max pooling with -inf (LiteRT gets the tap form, MNN the sub-lattice form since
    # 2026-12-05): both convert and compute exactly on finite inputs; a window of -inf comes out -2**24 in MNN's
    # MaxPool and -3.4e38 in LiteRT (measured): a large negative number, never a real cell
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.runtimes.registry import run_batch
    from poolport.testing.reference import onnx_pool

    items, wants = [], []
    for attrs, shape, _, _ in TAP_FORMS:
        shape = (1, 7) + shape[2:]  # channel counts unlike the spatial sizes (onnx2tf guesses layouts)
        fixed = poolport.legalize(pool_model("MaxPool", shape, **attrs), runtime).model
        d = len(shape) - 2
        pads = attrs["pads"]
        for x in (np.random.default_rng(0).standard_normal(shape).astype(np.float32),
                  np.where(np.indices(shape).sum(axis=0) % 3, -np.inf, 1.0).astype(np.float32)):
            items.append((fixed, {"x": x}))
            wants.append(onnx_pool(x, "max", attrs["kernel_shape"], attrs.get("strides", [1] * d), pads[:d], pads[d:],
                                   attrs["dilations"], bool(attrs.get("ceil_mode", 0))).astype(np.float32))
    for i, (want, got) in enumerate(zip(wants, run_batch(runtime, items))):
        assert not isinstance(got, Exception), f"item {i}: {got}"
        got = np.asarray(got[0]).reshape(want.shape)
        assert (got[want == -np.inf] <= -2.0 ** 24).all(), f"item {i}"
        np.testing.assert_array_equal(got[want != -np.inf], want[want != -np.inf], err_msg=f"item {i}")


# --- real runtimes: the original pattern is wrong (or fails), the legalized one is right ---

WRONG_TODAY = {  # measured in docs/runtimes.md
    # OpenVINO 2026.4.1 computes avg-ceil-window-in-pad right here; the rule rewrites it for OpenVINO all the
    # same (its MaxPool twin is wrong, and the explicit form is exact there too)
    "openvino": ["avg-ceil-include-pad", "avg-1d-ceil", "max-ceil-window-in-pad"],
    "ncnn": ["avg-ceil-include-pad", "avg-same-upper", "max-same-upper", "avg-asym-exclude", "avg-ceil-window-in-pad",
             "max-ceil-window-in-pad"],
}


@pytest.mark.runtime
@pytest.mark.parametrize("runtime,pattern", [(r, p) for r, ps in WRONG_TODAY.items() for p in ps])
def test_runtime_before_and_after(runtime, pattern):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    _, op, shape, attrs, _ = next(p for p in PATTERNS if p[0] == pattern)
    model = pool_model(op, shape, **attrs)
    feeds = random_feeds(model, 2)
    reference = RUNNERS["onnxruntime"](model, feeds)[0]
    try:
        before = RUNNERS[runtime](model, feeds)[0]
        before_err = (float(np.abs(before.reshape(reference.shape) - reference).max())
                      if before.size == reference.size else float("inf"))  # an extra output cell is wrong too
    except PoolportError:
        before_err = float("inf")  # refused to convert or load: also a failure
    assert before_err > 1e-2, f"{runtime} now computes {pattern} correctly: update WRONG_TODAY"
    fixed = poolport.legalize(model, runtime).model
    after = RUNNERS[runtime](fixed, feeds)[0]
    np.testing.assert_allclose(after.reshape(reference.shape), reference, rtol=1e-5, atol=1e-6)


def test_cli_keeps_external_data_external(tmp_path, capsys):
    """A model whose weights live in a data file comes out the same way, and equals the original."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 2, 3, 3], rng.standard_normal(288).astype(np.float32).tobytes(), raw=True)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src), save_as_external_data=True, location="in.onnx.data", size_threshold=1024)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert main(["legalize", str(src), "-o", str(dst), "--target", "ncnn"]) == 0
    assert "out.onnx + out.onnx.data" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx", "in.onnx.data", "out.onnx", "out.onnx.data"]
    assert {p: hashlib.sha256((tmp_path / p).read_bytes()).hexdigest() for p in digests} == digests
    feeds = {"x": rng.standard_normal((1, 2, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(RUNNERS["onnxruntime"](dst, feeds)[0], RUNNERS["onnxruntime"](src, feeds)[0],
                               rtol=1e-5, atol=1e-6)
    assert "AveragePool" in {n.op_type for n in onnx.load(str(dst)).graph.node}


@pytest.mark.parametrize("target", ["onnxruntime"])
def test_a_target_without_rules_says_so(tmp_path, capsys, target):
    src = tmp_path / "in.onnx"
    onnx.save(from_pattern(0), str(src))
    assert main(["legalize", str(src), "-o", str(tmp_path / "out.onnx"), "--target", target]) == 0
    assert f"no rules for {target}" in capsys.readouterr().out


def test_the_divisor_constant_has_the_pooled_spatial_shape():
    # onnx2tf refuses a (1, 1, Ho, Wo) constant after a pool; (Ho, Wo) converts (docs/runtimes.md)
    fixed = poolport.legalize(from_pattern(0), "ncnn").model
    (correction,) = [i for i in fixed.graph.initializer if i.name.endswith("_correction")]
    assert list(correction.dims) == [4, 5]  # 7x8 input, k3 s2 pads 1 ceil: ceil(6/2)+1 x ceil(7/2)+1


# --- ONNX LpPool: |x| ** p, window sums (zero Pad + AveragePool + Mul by K, or the tap form), ** (1 / p) ---

def lp_model(shape, opset=18, dtype=TensorProto.FLOAT, **attrs):
    return pool_model("LpPool", shape, opset=opset, dtype=dtype, **attrs)


def lp_oracle(x, model):
    from poolport.legalizer.attrs import read_attrs
    from poolport.testing.reference import onnx_lp_pool

    p = read_attrs(model.graph.node[0], tuple(x.shape[2:]))
    return onnx_lp_pool(x, p.norm, p.kernel, p.strides, p.pads_before, p.pads_after, p.dilations, p.ceil_mode)


# (input shape, LpPool attributes): pads, asymmetric pads, SAME_*, ceil_mode (overhang, window in the
# padding), dilations, windows wholly in the padding, 1-D and 3-D, p = 1..4 and 10
LP_ATTRS = [
    ((1, 3, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], p=2)),
    ((1, 3, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], p=1)),
    ((1, 3, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], p=3)),
    ((1, 3, 8, 9), dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER", p=2)),
    ((1, 3, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER", p=4)),
    ((1, 3, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, p=2)),
    ((1, 3, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1], p=3)),
    ((1, 3, 2, 2), dict(kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1, pads=[1, 1, 1, 1], p=2)),
    ((1, 3, 9, 10), dict(kernel_shape=[3, 3], strides=[1, 2], dilations=[2, 2], pads=[1, 1, 1, 1], p=2)),
    ((1, 3, 10, 11), dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 3], ceil_mode=1, p=1)),
    ((1, 3, 3, 4), dict(kernel_shape=[5, 5], strides=[1, 1], pads=[4, 4, 4, 4], p=2)),  # windows of padding only
    ((1, 3, 11), dict(kernel_shape=[3], strides=[2], pads=[1, 1], p=10)),
    ((1, 3, 10), dict(kernel_shape=[3], strides=[2], ceil_mode=1, p=3)),
    ((1, 2, 6, 7, 9), dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2], pads=[1, 0, 1, 0, 1, 1], p=2)),
    ((1, 2, 7, 9, 6), dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], ceil_mode=1, p=1)),
]
LP_IDS = [f"{'x'.join(map(str, s))}-" + "-".join(f"{k}{v}" for k, v in a.items()) for s, a in LP_ATTRS]


@pytest.mark.parametrize("shape,attrs", LP_ATTRS, ids=LP_IDS)
def test_lp_oracle_agrees_with_onnxruntime(shape, attrs):
    model = lp_model(shape, **attrs)
    feeds = random_feeds(model, 4)
    want = lp_oracle(feeds["x"], model)
    got = RUNNERS["onnxruntime"](model, feeds)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lp_oracle_agrees_with_torch_and_the_onnx_suite():
    # torch's lp_pool2d on the zero-padded input is the sum of the real cells too; onnx's own LpPool node
    # tests (pads, SAME_*, strides, dilations, 1-D, 3-D) with their expected outputs
    import torch
    import torch.nn.functional as F
    from onnx.backend.test.case.node import collect_testcases

    x = np.random.default_rng(0).standard_normal((1, 3, 7, 9)).astype(np.float32)
    for p in (1, 2, 3):
        model = lp_model(x.shape, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], p=p)
        padded = torch.nn.functional.pad(torch.from_numpy(x).abs(), (1, 1, 1, 1))
        want = F.lp_pool2d(padded.double(), p, 3, 2).numpy()
        np.testing.assert_allclose(lp_oracle(x, model), want, rtol=1e-7)
    cases = [c for c in collect_testcases(None) if c.name.startswith("test_lppool")]
    assert len(cases) >= 8
    for case in cases:
        for inputs, outputs in case.data_sets:
            np.testing.assert_allclose(lp_oracle(inputs[0], case.model), outputs[0], rtol=case.rtol or 1e-5,
                                       atol=case.atol or 1e-6, err_msg=case.name)


@pytest.mark.parametrize("shape,attrs", LP_ATTRS, ids=LP_IDS)
def test_lp_rewrite_equals_the_oracle(shape, attrs):
    # every LpPool rule's form (lppool matches every node), verified by legalize itself (ONNX Runtime; the
    # evaluator too but for ceil_mode) and here against the oracle
    model = lp_model(shape, **attrs)
    result = poolport.legalize(model, rules=("lppool",))
    assert result.verified and [type(c) for c in result.changes] == [PoolRewrite]
    ops = [n.op_type for n in result.model.graph.node]
    assert "LpPool" not in ops and ("Abs" in ops) == (attrs["p"] % 2 == 1 or attrs["p"] > 8)
    assert ("Sqrt" in ops) == (attrs["p"] == 2) and ("Pow" in ops) == (attrs["p"] > 2)
    feeds = random_feeds(model, 5)
    got = RUNNERS["onnxruntime"](result.model, feeds)[0]
    np.testing.assert_allclose(got, lp_oracle(feeds["x"], model), rtol=1e-5, atol=1e-6)


LP_TARGETS = [  # (shape, attributes, the targets that rewrite it)
    ((1, 3, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2]), {"ncnn"}),
    ((1, 3, 7, 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), {"ncnn", "litert"}),
    ((1, 3, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]), {"ncnn", "litert", "mnn"}),
    ((1, 3, 8, 9), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), {"ncnn", "litert", "mnn"}),
    ((1, 3, 8, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), {"ncnn", "mnn", "openvino"}),
    ((1, 3, 9, 10), dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 2]), {"ncnn", "litert", "mnn"}),
    ((1, 2, 6, 7, 9), dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2]), {"ncnn", "mnn"}),
]


@pytest.mark.parametrize("shape,attrs,targets", LP_TARGETS, ids=[str(i) for i in range(len(LP_TARGETS))])
@pytest.mark.parametrize("target", ["onnxruntime", "openvino", "ncnn", "mnn", "litert"])
def test_lp_rules_match_what_each_runtime_gets_wrong(shape, attrs, targets, target):
    model = lp_model(shape, **attrs)
    if target == "ncnn" and "dilations" in attrs:
        # the tap form is wrong on ncnn (as for AveragePool): kept, and legalize fails closed
        with pytest.raises(VerificationError, match="wrong on ncnn"):
            poolport.legalize(model, target)
        return
    result = poolport.legalize(model, target)
    ops = [n.op_type for n in result.model.graph.node]
    assert (ops != ["LpPool"]) == (target in targets)
    if target == "mnn" and len(shape) == 5:  # its AveragePool was checked again: 3-D pooling is gone
        assert ops.count("AveragePool") == 2 and "Reshape" in ops


def test_lp_fails_closed_where_no_form_is_right():
    # ncnn's Pow is wrong for a zero base: p = 3 has no exact form there (the node is kept, naming ncnn);
    # p = 0 and opset 1's float p = 2.5 have no power-sum form here; a dynamic size none
    p3 = lp_model((1, 3, 7, 9), kernel_shape=[3, 3], strides=[2, 2], p=3)
    for target in ("ncnn", "all"):
        with pytest.raises(VerificationError, match="wrong on ncnn.*Pow") as e:
            poolport.legalize(p3, target)
        assert "--keep-unfixed" in str(e.value)
    result = poolport.legalize(p3, "ncnn", keep_unfixed=True)
    assert [n.op_type for n in result.model.graph.node] == ["LpPool"] and result.kept[0].runtimes == ("ncnn",)
    assert poolport.legalize(p3, "mnn").changes == [] and poolport.legalize(p3, "litert").changes == []
    for model, reason in [(lp_model((1, 3, 7, 9), kernel_shape=[3, 3], p=0), "p is 0"),
                          (lp_model((1, 3, 7, 9), opset=1, kernel_shape=[3, 3], p=2.5), "p is 2.5"),
                          (lp_model(("n", 3, "h", "w"), kernel_shape=[3, 3]), "not static")]:
        with pytest.raises(VerificationError, match=reason):
            poolport.legalize(model, "ncnn")


def test_lp_float16_constants_take_the_input_type():
    model = lp_model((1, 2, 7, 9), dtype=TensorProto.FLOAT16, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                     p=3)
    # each step rounds to float16 (0.0007 of the scale here), beyond legalize's 1e-5 verification: it fails
    # closed, and verify=False writes it
    with pytest.raises(VerificationError, match="changed the model's outputs"):
        poolport.legalize(model, "litert")
    fixed = poolport.legalize(model, "litert", verify=False).model
    assert {i.data_type for i in fixed.graph.initializer if i.data_type != TensorProto.INT64} == {TensorProto.FLOAT16}
    feeds = random_feeds(model, 0)
    got = RUNNERS["onnxruntime"](fixed, feeds)[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, lp_oracle(feeds["x"], model), rtol=3e-3, atol=1e-3)


def _lp_sites(runtime):
    """One model of several LpPool nodes on one input, each a graph output: what ``runtime`` gets wrong."""
    sites = [dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], p=1),
             dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             dict(kernel_shape=[2, 3], strides=[1, 2], auto_pad="SAME_UPPER")]
    if runtime != "ncnn":  # p = 3 needs Pow (wrong on ncnn), the dilated form is the tap form (wrong on ncnn)
        sites += [dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 1, 1, 1], p=3),
                  dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2], pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 9])
    nodes = [helper.make_node("LpPool", ["x"], [f"y{i}"], name=f"lp{i}", **a) for i, a in enumerate(sites)]
    ys = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["n", "c", "h", "w"]) for i in range(len(sites))]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], ys), opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    return m, [lp_model((1, 3, 8, 9), **a) for a in sites]


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
def test_lp_legalized_is_exact_in_the_runtime(runtime):
    # one model per runtime: the original LpPool nodes wrong or refused there, the legalized ones exact; a
    # zero block makes windows whose power sum is 0
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.runtimes.registry import run_batch

    model, singles = _lp_sites(runtime)
    x = np.random.default_rng(6).standard_normal((1, 3, 8, 9)).astype(np.float32)
    x[:, :, :4, :4] = 0
    feeds = {"x": x}
    wants = [lp_oracle(x, m) for m in singles]
    fixed = poolport.legalize(model, runtime).model
    before, after = run_batch(runtime, [(model, feeds), (fixed, feeds)])
    wrong_before = isinstance(before, Exception) or any(
        g.size != w.size or not np.allclose(g.reshape(w.shape), w, rtol=1e-5, atol=1e-6) for g, w in zip(before, wants))
    assert wrong_before, f"{runtime} now computes every LpPool site right: update the lppool rules"
    assert not isinstance(after, Exception), after
    for i, (g, w) in enumerate(zip(after, wants)):
        np.testing.assert_allclose(np.asarray(g).reshape(w.shape), w, rtol=1e-5, atol=1e-6, err_msg=f"site {i}")


@pytest.mark.slow
@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["openvino", "ncnn", "mnn", "litert"])
def test_lp_every_rewrite_in_the_runtime(runtime):
    # the lppool form of every LP_ATTRS node (the 3-D ones split for MNN and LiteRT, as their rules do), run in
    # the runtime whatever its rules say: exact, except where LpForm.wrong_on names it (ncnn: p > 2 with a
    # zero window sum, the padded tap form)
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    from poolport.legalizer.attrs import read_attrs
    from poolport.legalizer.replacements import LP_FORM
    from poolport.runtimes.registry import run_batch

    split = {"mnn": ("pool-3d-as-2d",), "litert": ("avg-3d-as-2d",)}.get(runtime, ())
    items = []
    for shape, attrs in LP_ATTRS:
        model = lp_model(shape, **attrs)
        x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
        x[:, :, :2] = 0
        written = poolport.legalize(model, rules=("lppool",) + split, verify=False)
        wrong = LP_FORM.wrong_on(read_attrs(model.graph.node[0], shape[2:], shape[1]), shape, None)
        items.append((model, written.model, {"x": x}, runtime in wrong))
    answers = run_batch(runtime, [(fixed, feeds) for _, fixed, feeds, _ in items])
    for (model, _, feeds, known_wrong), got, id_ in zip(items, answers, LP_IDS):
        if known_wrong:
            continue
        assert not isinstance(got, Exception), f"{id_}: {got}"
        want = lp_oracle(feeds["x"], model)
        np.testing.assert_allclose(np.asarray(got[0]).reshape(want.shape), want, rtol=1e-5, atol=1e-6, err_msg=id_)
