"""The legalizer's sub-lattice form of dilated MaxPool/AveragePool (rule ``dilated-pool-lattice``,
``replacements.Lattice``, the walk ``backend.execute.execute_dilated`` that torch's dilated max pooling takes
too): against the numpy oracle of ONNX's definition (``testing.reference.onnx_pool``) in ONNX Runtime over
1-D/2-D/3-D, strides the dilation divides and not, symmetric, asymmetric and large pads (windows of only
padding), ceil_mode, count_include_pad and infinities; in ncnn, MNN and OpenVINO (runtime)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import poolport
from poolport.legalizer.attrs import read_attrs
from poolport.plan.dilated import dilated_onnx_plan
from poolport.runtimes.registry import RUNNERS, available, run_batch
from poolport.testing.reference import onnx_pool

CASES = [  # (op, shape, kernel, strides, dilations, pads, ceil_mode, count_include_pad)
    ("max", (2, 3, 17), [3], [1], [2], [1, 1], 0, 0),
    ("max", (2, 3, 13), [2], [3], [2], [1, 2], 1, 0),  # d does not divide s, asymmetric pads
    ("max", (2, 3, 12), [3], [4], [2], [0, 0], 0, 0),  # d divides s, the input cropped
    ("max", (2, 3, 11), [2], [1], [3], [4, 1], 0, 0),  # the first window holds only padding: -inf
    ("avg", (2, 3, 17), [3], [2], [2], [1, 1], 1, 1),
    ("avg", (2, 3, 11), [2], [1], [3], [4, 1], 0, 0),  # a window without a real cell: 0
    ("avg", (2, 3, 11), [2], [1], [3], [4, 1], 0, 1),
    ("max", (2, 3, 9, 10), [3, 3], [1, 1], [2, 2], [1, 1, 1, 1], 0, 0),
    ("max", (2, 3, 10, 11), [2, 2], [2, 2], [2, 2], [0, 0, 0, 0], 1, 0),
    ("max", (2, 3, 12, 13), [3, 2], [2, 3], [2, 3], [0, 1, 2, 0], 1, 0),
    ("max", (2, 3, 12, 12), [3, 2], [1, 2], [2, 1], [1, 0, 1, 0], 0, 0),  # W undilated: one plain pool
    ("max", (2, 3, 11, 9), [2, 3], [1, 2], [3, 1], [4, 1, 1, 1], 0, 0),  # windows of only padding
    ("avg", (2, 3, 9, 10), [3, 3], [1, 1], [2, 2], [1, 1, 1, 1], 0, 0),
    ("avg", (2, 3, 9, 10), [3, 3], [1, 1], [2, 2], [1, 1, 1, 1], 0, 1),
    ("avg", (2, 3, 12, 13), [2, 2], [3, 3], [2, 2], [1, 1, 1, 1], 1, 1),
    ("avg", (2, 3, 12, 13), [2, 3], [3, 2], [2, 1], [1, 0, 2, 1], 1, 0),
    ("max", (2, 3, 7, 8, 9), [2, 2, 2], [1, 1, 1], [2, 2, 2], [0] * 6, 0, 0),
    ("max", (2, 3, 5, 6, 7), [2, 2, 2], [2, 1, 3], [2, 1, 2], [1, 0, 1, 0, 1, 1], 1, 0),
    ("max", (2, 3, 7, 8, 9), [2, 2, 2], [1, 1, 1], [2, 1, 1], [0] * 6, 0, 0),  # dilated on D only
    ("avg", (2, 3, 7, 8, 9), [2, 2, 2], [1, 2, 3], [2, 2, 2], [1] * 6, 0, 1),
    ("avg", (2, 3, 5, 6, 7), [2, 2, 2], [2, 1, 3], [2, 1, 2], [1, 0, 1, 0, 1, 1], 1, 0),
]
IDS = [f"{c[0]}-{len(c[1]) - 2}d-{i}" for i, c in enumerate(CASES)]
FAST = [1, 9, 14, 19]  # what the fast runtime tier runs: 1-D, 2-D ceil, 2-D average, 3-D average


def case_model(op, shape, kernel, strides, dilations, pads, ceil, include, batch="n"):
    """One dilated pooling node (opset 19: AveragePool has dilations), its batch symbolic."""
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations, pads=pads, ceil_mode=ceil)
    if op == "avg":
        attrs["count_include_pad"] = include
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *shape[1:]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, shape[1]] + [f"o{i}" for i in range(len(shape) - 2)])
    node = helper.make_node("AveragePool" if op == "avg" else "MaxPool", ["x"], ["y"], name="pool", **attrs)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def case_input(op, shape, seed):
    """N(0, 1) with +inf and -inf at a few cells (max), +inf at one cell (average)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = np.inf
    if op == "max":
        flat[rng.integers(0, flat.size, 3)] = -np.inf
    return x


def want(case, x):
    op, _, kernel, strides, dilations, pads, ceil, include = case
    d = len(kernel)
    return onnx_pool(x, op, kernel, strides, pads[:d], pads[d:], dilations, bool(ceil), bool(include))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lattice_form_is_the_definition_in_onnxruntime(case):
    model = case_model(*case)
    result = poolport.legalize(model, "ncnn", verify=False)
    (change,) = result.rewritten  # other ncnn rules may match too (asymmetric pads, ceil_mode): one form serves
    assert "dilated-pool-lattice" in change.rules
    nodes = result.model.graph.node
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in result.model.graph.initializer}
    for n in nodes:  # plain pools only; every Reshape leaves the batch to -1 (it is symbolic here)
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert not any(attrs.get("pads", [])) and not attrs.get("ceil_mode") and "dilations" not in attrs
        if n.op_type == "Reshape":
            assert inits[n.input[1]][0] == -1
    # the nodes are the plan's steps (-inf padding adds its mask after the Pad)
    op, shape = case[0], case[1]
    p = read_attrs(model.graph.node[0], shape[2:], shape[1])
    plan = dilated_onnx_plan(op, shape[2:], p.kernel, p.strides, p.dilations, p.pads_before, p.pads_after,
                             p.ceil_mode, p.count_include_pad)
    assert [n.op_type for n in nodes if not (n.op_type == "Add" and plan.masked)] == plan.steps()
    for seed in range(2):
        x = case_input(op, shape, seed)
        got = RUNNERS["onnxruntime"](result.model, {"x": x})[0]
        if op == "max":  # bit-exact, -inf windows included
            np.testing.assert_array_equal(got, want(case, x).astype(np.float32))
        else:
            np.testing.assert_allclose(got, want(case, x), rtol=1e-5, atol=1e-6)


def test_each_target_gets_its_dilated_form():
    # ncnn and MNN the sub-lattice form (ncnn cannot load the tap form right; on MNN it is faster); LiteRT the
    # tap form (onnx2tf lays out the sub-lattice form's Reshapes wrongly at some sizes); --target all neither:
    # the sub-lattice form is wrong on LiteRT, the tap form on ncnn, and the node is kept
    model = case_model(*CASES[7])
    for target, op in (("ncnn", "Reshape"), ("mnn", "Reshape"), ("litert", "Max")):
        ops = {n.op_type for n in poolport.legalize(model, target).model.graph.node}
        assert op in ops and "Max" not in ops - {op}, target
    result = poolport.legalize(model, "all", keep_unfixed=True)
    assert [n.op_type for n in result.model.graph.node] == ["MaxPool"]
    assert {"litert", "ncnn"} <= set(result.kept[0].runtimes)
    assert "lattice form is wrong on litert" in result.kept[0].reason
    assert "taps form is wrong on ncnn" in result.kept[0].reason


def _runtime_cases(runtime, indices):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    items, wants = [], []
    for i in indices:
        case = CASES[i]
        model = case_model(*case, batch=case[1][0])
        # ncnn and MNN as legalize writes for them (MNN: 3-D pooling as 2-D first); OpenVINO the form itself
        fixed = (poolport.legalize(model, runtime, verify=False) if runtime != "openvino"
                 else poolport.legalize(model, rules=("dilated-pool-lattice",), verify=False)).model
        for seed in range(2):
            x = case_input(case[0], case[1], seed)
            items.append((fixed, {"x": x}))
            wants.append((IDS[i], case[0], want(case, x)))
    for (name, op, w), got in zip(wants, run_batch(runtime, items)):
        assert not isinstance(got, Exception), f"{name} on {runtime}: {got}"
        got = np.asarray(got[0]).reshape(w.shape)
        if op == "avg":
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6, err_msg=name)
            continue
        w = w.astype(np.float32)
        if runtime == "ncnn":
            np.testing.assert_array_equal(got, w, err_msg=name)
        else:  # OpenVINO's and MNN's MaxPool turn a window of -inf into -3.4e38 / -2**24 (docs/runtimes.md)
            assert (got[w == -np.inf] <= -2.0 ** 24).all(), name
            np.testing.assert_array_equal(got[w != -np.inf], w[w != -np.inf], err_msg=name)


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", ["ncnn", "mnn", "openvino"])
def test_lattice_form_in_runtime(runtime):
    _runtime_cases(runtime, FAST)


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["ncnn", "mnn", "openvino"])
def test_lattice_form_in_runtime_sweep(runtime):
    _runtime_cases(runtime, range(len(CASES)))
