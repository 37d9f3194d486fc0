"""legalize of a MaxPool whose Indices output is used (rule max-indices) and of a MaxUnpool fed straight by
it (rule max-unpool, SegNet's pair): the written forms against a numpy oracle from the ONNX operator
definition (``testing.reference``, itself checked against torch), in ONNX Runtime over a matrix with ties,
+-inf and all -inf windows, and in ncnn and MNN (one combined case; ``-m slow``: the matrix, OpenVINO too).
What is left alone fails closed: indices from anywhere else, an output shape the indices would land
elsewhere in, a dynamic batch. torch's own exporters write no MaxUnpool node (the dynamo exporter writes
ScatterND, the TorchScript one fails): the SegNet file here is written with onnx.helper."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

import poolport
from poolport.cli.main import main
from poolport.errors import VerificationError
from poolport.legalizer.apply import apply_rules
from poolport.legalizer.rules import rules_for
from poolport.runtimes.registry import available, run_batch
from poolport.testing.reference import onnx_max_pool_indices, onnx_max_unpool


def _attrs(k, s, pads, dil=None, ceil=0):
    a = dict(kernel_shape=list(k), strides=list(s), pads=list(pads))
    if dil:
        a["dilations"] = list(dil)
    if ceil:
        a["ceil_mode"] = 1
    return a


def _out(name, elem_type, rank):
    return helper.make_tensor_value_info(name, elem_type, [f"{name}{j}" for j in range(rank)])


def pair_model(shape, unpool=True, output_shape=False, values_only_unpool=False, opset=17, batch=None,
               unpool_attrs=None, **attrs):
    """MaxPool(x) -> (y, i); with ``unpool`` the outputs are MaxUnpool(y * 2, i) (SegNet: other values at the
    indices), else y and i."""
    d = len(shape) - 2
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch or shape[0], *shape[1:]])
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], name="pool", **attrs)]
    inits = []
    if not unpool:
        outs = [_out("y", TensorProto.FLOAT, d + 2), _out("i", TensorProto.INT64, d + 2)]
    else:
        inits.append(helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]))
        nodes.append(helper.make_node("Mul", ["y", "two"], ["y2"], name="mid"))
        ins = ["y2", "i"]
        if output_shape:
            inits.append(helper.make_tensor("out_shape", TensorProto.INT64, [d + 2], list(shape)))
            ins.append("out_shape")
        keep = unpool_attrs or {k: v for k, v in attrs.items() if k in ("kernel_shape", "strides", "pads")}
        nodes.append(helper.make_node("MaxUnpool", ins, ["z"], name="unpool", **keep))
        outs = [_out("z", TensorProto.FLOAT, d + 2)]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], outs, initializer=inits),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def oracle(x, attrs, unpool):
    d = x.ndim - 2
    pads = attrs.get("pads", [0] * 2 * d)
    y, i = onnx_max_pool_indices(x, attrs["kernel_shape"], attrs["strides"], pads[:d], pads[d:],
                                 attrs.get("dilations"), bool(attrs.get("ceil_mode", 0)))
    return [onnx_max_unpool(y * 2, i, x.shape[2:])] if unpool else [y, i]


def data(shape, seed, special=True):
    """Values with ties (multiples of 0.5), +inf and -inf cells and one all -inf plane (every window of it
    all -inf), or plain normal values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if special:
        x = np.round(x * 2) / 2
        flat = x.reshape(-1)
        flat[::7], flat[3::11] = np.inf, -np.inf
        x.reshape(shape[0] * shape[1], -1)[1] = -np.inf
    return x


# (id, input shape, MaxPool attributes, whether the pair's MaxUnpool is rewritten: its default output shape is
# the MaxPool's input shape, or output_shape gives it)
MATRIX = [
    ("1d-k3s2p1", (2, 3, 11), _attrs([3], [2], [1, 1])),
    ("2d-k2s2", (2, 3, 8, 10), _attrs([2, 2], [2, 2], [0] * 4)),
    ("2d-k3s2p1", (2, 3, 7, 9), _attrs([3, 3], [2, 2], [1] * 4)),
    ("2d-k3s1p1", (2, 3, 6, 7), _attrs([3, 3], [1, 1], [1] * 4)),
    ("2d-asym-pads", (2, 3, 7, 8), _attrs([3, 2], [2, 2], [1, 0, 0, 1])),
    ("2d-k3s2-ceil", (2, 3, 8, 8), _attrs([3, 3], [2, 2], [0] * 4, ceil=1)),
    ("2d-k3s3-ceil-pads", (2, 3, 7, 7), _attrs([3, 3], [3, 3], [1] * 4, ceil=1)),
    ("3d-k2s2", (2, 3, 4, 6, 6), _attrs([2, 2, 2], [2, 2, 2], [0] * 6)),
    ("3d-k3s2p1", (2, 3, 5, 5, 7), _attrs([3, 3, 3], [2, 2, 2], [1] * 6)),
]
DILATED = [("2d-dilated", (2, 3, 9, 10), _attrs([3, 3], [1, 2], [1] * 4, dil=[2, 2])),
           ("1d-dilated-ceil", (2, 3, 12), _attrs([2], [2], [0, 0], dil=[3], ceil=1))]


def _ort(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def _equal(want, got, label):
    assert len(want) == len(got), label
    for w, g in zip(want, got):
        g = np.asarray(g)
        assert g.dtype == w.dtype and g.shape == w.shape, f"{label}: {g.dtype} {g.shape} for {w.dtype} {w.shape}"
        assert np.array_equal(g, w, equal_nan=True), f"{label}: {int((g != w).sum())} of {w.size} cells differ"


def test_the_oracle_is_torchs_op_with_the_plane_offset():
    # independent of poolport's forms: torch's max_pool{d}d(return_indices=True) counts per plane; ONNX adds
    # (n * C + c) * prod(spatial). Unpooling: torch's max_unpool at the same indices
    for name, shape, a in MATRIX + DILATED:
        d = len(shape) - 2
        pads = a["pads"]
        if pads[:d] != pads[d:]:
            continue  # torch pads symmetrically
        x = data(shape, 1)
        t = torch.from_numpy(x)
        args = (a["kernel_shape"], a["strides"], pads[:d], a.get("dilations", [1] * d), bool(a.get("ceil_mode")))
        v, i = getattr(F, f"max_pool{d}d")(t, *args, return_indices=True)
        planes = np.arange(shape[0] * shape[1]).reshape(shape[0], shape[1], *[1] * d) * int(np.prod(shape[2:]))
        y, idx = onnx_max_pool_indices(x, a["kernel_shape"], a["strides"], pads[:d], pads[d:], a.get("dilations"),
                                       bool(a.get("ceil_mode")))
        _equal([v.numpy(), i.numpy() + planes], [y, idx], name)
        if "dilations" not in a:
            z = getattr(F, f"max_unpool{d}d")(v * 2, i, a["kernel_shape"], a["strides"], pads[:d], output_size=shape)
            _equal([z.numpy()], [onnx_max_unpool(y * 2, idx, shape[2:])], name)


@pytest.mark.parametrize("name,shape,attrs", MATRIX + DILATED, ids=[m[0] for m in MATRIX + DILATED])
@pytest.mark.parametrize("target", ["ncnn", "mnn"])
def test_legalized_indices_and_unpool_equal_the_oracle_in_onnxruntime(name, shape, attrs, target):
    for unpool in (False, True):
        if unpool and "dilations" in attrs:
            continue  # a MaxUnpool's windows are undilated: the pair is no SegNet pair
        for output_shape in ((False, True) if unpool else (False,)):
            model = pair_model(shape, unpool, output_shape, **attrs)
            fixed, changes = apply_rules(model, rules_for(target), serves=(target,))
            kinds = [type(c).__name__ for c in changes]
            default = [(n - 1) * s + k - b - e for n, s, k, b, e in zip(
                oracle(np.zeros(shape, np.float32), attrs, False)[0].shape[2:], attrs["strides"],
                attrs["kernel_shape"], attrs["pads"][:len(shape) - 2], attrs["pads"][len(shape) - 2:])]
            lands = all(d <= n for d, n in zip(default, shape[2:])) if output_shape else default == list(shape[2:])
            assert kinds == (["PoolRewrite", "PoolRewrite" if lands else "Kept"] if unpool else ["PoolRewrite"])
            if unpool and not lands:
                continue  # kept: its indices would land elsewhere, or ONNX Runtime refuses its output_shape
            assert not {"MaxPool", "MaxUnpool"} & {n.op_type for n in fixed.graph.node}
            for seed, special in ((0, True), (1, False)):
                x = data(shape, seed, special)
                _equal(oracle(x, attrs, unpool), _ort(fixed, x), f"{name} unpool={unpool} shape={output_shape}")


def test_the_pair_reuses_the_maxpools_index_and_drops_unread_int64_indices():
    model = pair_model((2, 3, 8, 10), **_attrs([2, 2], [2, 2], [0] * 4))
    fixed, _ = apply_rules(model, rules_for("ncnn"), serves=("ncnn",))
    ops = [n.op_type for n in fixed.graph.node]
    # one index form (4 tap planes: 4 Slices; the unpooling 2, its one candidate of values and of indices),
    # read by the unpooling; the int64 indices (Cast + plane offsets) unread and dropped
    assert ops.count("Slice") == 4 + 2 and "Cast" not in ops and "MaxUnpool" not in ops
    planes = [o for n in fixed.graph.node for o in n.output if o.endswith("plane_index")]
    assert len(planes) == 1 and any(planes[0] in n.input for n in fixed.graph.node)
    names = {i.name for i in fixed.graph.initializer}
    assert "two" in names and all(i in names for n in fixed.graph.node for i in n.input
                                  if i.startswith("poolport") and not any(i in m.output for m in fixed.graph.node))
    # OpenVINO computes MaxPool with Indices (not MaxUnpool): the MaxPool stays, the unpooling writes the index
    # form again from the MaxPool's input, whose values nothing reads
    fixed, changes = apply_rules(model, rules_for("openvino"), serves=("openvino",))
    ops = [n.op_type for n in fixed.graph.node]
    assert [c.node for c in changes] == ["unpool"] and ops.count("MaxPool") == 1 and "MaxUnpool" not in ops
    x = data((2, 3, 8, 10), 2)
    _equal(oracle(x, _attrs([2, 2], [2, 2], [0] * 4), True), _ort(fixed, x), "openvino form")


def test_indices_read_only_inside_a_subgraph_are_kept():
    # the int64 indices of a rewritten MaxPool that only an If branch reads are not pruned as unread
    attrs = _attrs([2, 2], [2, 2], [0] * 4)
    shape = (2, 3, 8, 10)
    branch = lambda name, op: helper.make_graph(  # noqa: E731
        [helper.make_node(op, ["i"], [f"{name}_out"], name=f"{name}_node")], name, [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.INT64, None)])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "i"], name="pool", **attrs),
             helper.make_node("If", ["flag"], ["j"], name="branch", then_branch=branch("then", "Identity"),
                              else_branch=branch("else", "Neg"))]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, flag], [_out("y", TensorProto.FLOAT, 4),
                                                                       _out("j", TensorProto.INT64, 4)]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fixed, changes = apply_rules(model, rules_for("mnn"), serves=("mnn",))
    assert [c.node for c in changes] == ["pool"] and "MaxPool" not in [n.op_type for n in fixed.graph.node]
    onnx.checker.check_model(fixed, full_check=True)
    xs = data(shape, 3)
    y, i = oracle(xs, attrs, False)
    sess = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": xs, "flag": np.array(True)})
    _equal([y, i], got, "indices read in a branch")


def test_any_rule_matching_a_maxpool_with_indices_writes_the_index_form():
    # OpenVINO returns an extra cell for a ceil_mode window that starts in the padding (ceil-window-in-padding):
    # with its Indices used, the node takes the index form (which drops that window, as ONNX does)
    a = _attrs([1, 1], [2, 2], [0] * 4, ceil=1)
    fixed, changes = apply_rules(pair_model((2, 3, 6, 7), False, **a), rules_for("openvino"), serves=("openvino",))
    assert [c.rules for c in changes] == [("ceil-window-in-padding",)] and "Cast" in {n.op_type for n in fixed.graph.node}
    x = data((2, 3, 6, 7), 4)
    _equal(oracle(x, a, False), _ort(fixed, x), "ceil window in the padding")


def _unpool_of_input():
    # a MaxUnpool whose indices are a graph input: no MaxPool to rewrite them from
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    i = helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 4, 4])
    z = _out("z", TensorProto.FLOAT, 4)
    node = helper.make_node("MaxUnpool", ["y", "i"], ["z"], name="unpool", kernel_shape=[2, 2], strides=[2, 2])
    m = helper.make_model(helper.make_graph([node], "g", [y, i], [z]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _dynamic_width():
    m = pair_model((1, 2, 8, 8), unpool=False, **_attrs([2, 2], [2, 2], [0] * 4))
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    return m


def test_a_dynamic_batch_gets_plane_offsets_that_follow_it():
    # ONNX's indices count the batch: with N dynamic the offsets come from the indices' own shape (CumSum)
    a = _attrs([3, 3], [2, 2], [1] * 4)
    for unpool in (False, True):
        model = pair_model((2, 3, 7, 9), unpool, batch="n", **a)
        fixed, changes = apply_rules(model, rules_for("mnn"), serves=("mnn",))
        assert all(type(c).__name__ == "PoolRewrite" for c in changes)
        assert ("CumSum" in {n.op_type for n in fixed.graph.node}) == (not unpool)
        for n in (1, 3):
            x = data((n, 3, 7, 9), n)
            _equal(oracle(x, a, unpool), _ort(fixed, x), f"N = {n}, unpool={unpool}")


# (id, model, target, kept node, rule, reason)
KEPT = [
    ("indices-from-input", _unpool_of_input, "ncnn", "unpool", "max-unpool", "straight from a MaxPool"),
    # unpooled to the same shape, but by other windows than the MaxPool's
    ("other-kernel", lambda: pair_model((1, 2, 8, 8), unpool_attrs=dict(kernel_shape=[2, 2], strides=[2, 2]),
                                        **_attrs([3, 3], [2, 2], [1] * 4)), "mnn", "unpool", "max-unpool", "differ"),
    ("lands-elsewhere", lambda: pair_model((1, 2, 8, 8), **_attrs([3, 3], [2, 2], [0] * 4, ceil=1)), "openvino",
     "unpool", "max-unpool", "land elsewhere"),
    ("dynamic-width", lambda: _dynamic_width(), "mnn", "pool", "max-indices", "not static"),
    # a last ceil_mode window that starts in the padding: ONNX Runtime drops it, onnx's shape inference keeps it
    ("ceil-window-in-padding", lambda: pair_model((1, 2, 7, 8), output_shape=True,
                                                  **_attrs([3, 3], [3, 3], [1] * 4, ceil=1)),
     "ncnn", "unpool", "max-unpool", "shape inference"),
    ("opset-10", lambda: pair_model((1, 2, 8, 8), unpool=False, opset=10, **_attrs([2, 2], [2, 2], [0] * 4)),
     "mnn", "pool", "max-indices", "opset 11"),
]


@pytest.mark.parametrize("model,target,node,rule,reason", [k[1:] for k in KEPT], ids=[k[0] for k in KEPT])
def test_what_has_no_form_is_kept_and_fails_closed(model, target, node, rule, reason):
    model = model()
    with pytest.raises(VerificationError) as e:
        poolport.legalize(model, target)
    for part in (node, rule, reason, "--keep-unfixed"):
        assert part in str(e.value)
    result = poolport.legalize(model, target, keep_unfixed=True)
    assert [c.node for c in result.kept] == [node] and rule in result.kept[0].rules


def test_litert_and_all_keep_both_nodes():
    # the index form is wrong in LiteRT (measured: indices and -inf values), the unpooling refused there
    model = pair_model((2, 3, 8, 10), **_attrs([2, 2], [2, 2], [0] * 4))
    for target in ("litert", "all"):
        result = poolport.legalize(model, target, keep_unfixed=True)
        assert [c.node for c in result.kept] == ["pool", "unpool"]
        assert all("litert" in c.runtimes for c in result.kept)


def segnet_model(shape=(2, 3, 12, 12)):
    """A SegNet block as a foreign ONNX file holds it: Conv + Relu + MaxPool (k2 s2, Indices) + Conv on the
    values + MaxUnpool (output_shape) + Conv. Random weights."""
    rng = np.random.default_rng(5)
    c = shape[1]
    w = [helper.make_tensor(f"w{j}", TensorProto.FLOAT, [c, c, 3, 3], rng.standard_normal((c, c, 3, 3)).ravel())
         for j in range(3)]
    out_shape = helper.make_tensor("out_shape", TensorProto.INT64, [4], list(shape))
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "w0"], ["e"], name="enc", **conv),
             helper.make_node("Relu", ["e"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "w1"], ["m"], name="mid", **conv),
             helper.make_node("MaxUnpool", ["m", "idx", "out_shape"], ["u"], name="unpool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Conv", ["u", "w2"], ["y"], name="dec", **conv)]
    g = helper.make_graph(nodes, "segnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [_out("y", TensorProto.FLOAT, 4)], initializer=w + [out_shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("target", ["ncnn", "mnn"])
def test_segnet_file_legalizes_for_ncnn_and_mnn(target, tmp_path, capsys):
    src, dst = tmp_path / "segnet.onnx", tmp_path / "fixed.onnx"
    onnx.save(segnet_model(), str(src))
    assert main(["legalize", str(src), "-o", str(dst), "--target", target]) == 0
    out = capsys.readouterr().out
    assert "max-indices" in out and "max-unpool" in out
    fixed = onnx.load(str(dst))
    assert not {"MaxPool", "MaxUnpool", "ScatterND", "Cast"} & {n.op_type for n in fixed.graph.node}
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(_ort(fixed, x)[0], _ort(segnet_model(), x)[0])


# -- in the runtimes ---------------------------------------------------------------------------------------------

def _runtime_items(runtime, cases):
    items, wants, labels = [], [], []
    for name, shape, a, unpool, output_shape, special in cases:
        model = poolport.legalize(pair_model(shape, unpool, output_shape, **a), runtime).model
        x = data(shape, 7, special)
        items.append((model, {"x": x}))
        wants.append(oracle(x, a, unpool))
        labels.append(f"{name} unpool={unpool} output_shape={output_shape} special={special}")
    return items, wants, labels


def _check_runtime(runtime, cases):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    items, wants, labels = _runtime_items(runtime, cases)
    for label, want, got in zip(labels, wants, run_batch(runtime, items)):
        assert not isinstance(got, Exception), f"{label} refused on {runtime}: {got}"
        got = [np.asarray(g).reshape(w.shape) for g, w in zip(got, want)]  # ncnn drops the batch axis of N = 1 only
        _equal(want, [g.astype(w.dtype) if w.dtype == np.int64 else g for g, w in zip(got, want)],
               f"{label} on {runtime}")


# one combined case per runtime (fast tier): a padded 2-D pair with ties, +-inf and an all -inf plane; MNN
# also the int64 indices (ncnn has no int64: pnnx leaves the Cast unconverted, loudly)
FAST = {"ncnn": [("2d-k3s2p1", (2, 3, 7, 9), _attrs([3, 3], [2, 2], [1] * 4), True, False, True)],
        "mnn": [("2d-k3s2p1", (2, 3, 7, 9), _attrs([3, 3], [2, 2], [1] * 4), True, False, True),
                ("2d-k3s2p1", (2, 3, 7, 9), _attrs([3, 3], [2, 2], [1] * 4), False, False, True)]}


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["ncnn", "mnn"])
def test_legalized_pair_exact_in_runtime(runtime):
    _check_runtime(runtime, FAST[runtime])


def _slow_cases(runtime):
    cases = []
    for name, shape, a in MATRIX + DILATED:
        d = len(shape) - 2
        default = [(n - 1) * s + k - b - e for n, s, k, b, e in zip(
            oracle(np.zeros(shape, np.float32), a, False)[0].shape[2:], a["strides"], a["kernel_shape"],
            a["pads"][:d], a["pads"][d:])]
        if runtime == "mnn":  # ncnn: no int64 (refused loudly); OpenVINO computes MaxPool's indices itself
            cases.append((name, shape, a, False, False, True))
        if "dilations" not in a:
            if all(d <= n for d, n in zip(default, shape[2:])):  # ONNX Runtime refuses a smaller output_shape
                cases.append((name, shape, a, True, True, True))
            if default == list(shape[2:]):
                cases.append((name, shape, a, True, False, False))
    return cases


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["ncnn", "mnn", "openvino"])
def test_legalized_matrix_exact_in_runtime(runtime):
    _check_runtime(runtime, _slow_cases(runtime))


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["ncnn", "mnn"])
def test_legalized_segnet_file_in_runtime(runtime):
    # the whole block (convolutions around the pair) against ONNX Runtime's run of the original file
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    fixed = poolport.legalize(segnet_model(), runtime).model
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    (got,) = run_batch(runtime, [(fixed, {"x": x})])
    assert not isinstance(got, Exception), got
    want = _ort(segnet_model(), x)[0]
    np.testing.assert_allclose(np.asarray(got[0]).reshape(want.shape), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
