"""The portable modules trace, export and run in ONNX Runtime with only portable operators."""


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import NATIVE

import poolport
from poolport.onnxfile.graph import NON_PORTABLE_OPS, PORTABLE_POOLING_OPS, op_counts

CASES = [
    # (d, op, input shape, output size): non-uniform, uniform-not-divisible, global, output > input
    (2, "avg", (1, 8, 9, 9), 7),
    (2, "max", (1, 8, 9, 9), 7),
    (2, "avg", (1, 4, 128, 128), 14),
    (2, "max", (2, 4, 60, 60), (6, None)),
    (2, "avg", (1, 4, 8, 13), (7, 6)),
    (2, "avg", (1, 4, 10, 10), 1),
    (2, "max", (1, 4, 3, 4), (5, 9)),
    (1, "avg", (1, 4, 17), 5),
    (1, "max", (1, 4, 17), 5),
    (3, "avg", (1, 2, 9, 10, 11), (7, 4, None)),
    (3, "max", (1, 2, 9, 10, 11), (7, 4, 1)),
]

MODULES = {
    ("avg", 1): poolport.nn.AdaptiveAvgPool1d,
    ("avg", 2): poolport.nn.AdaptiveAvgPool2d,
    ("avg", 3): poolport.nn.AdaptiveAvgPool3d,
    ("max", 1): poolport.nn.AdaptiveMaxPool1d,
    ("max", 2): poolport.nn.AdaptiveMaxPool2d,
    ("max", 3): poolport.nn.AdaptiveMaxPool3d,
}

IDS = [f"{op}{d}d-{'x'.join(map(str, s[2:]))}-{o}" for d, op, s, o in CASES]


def _setup(d, op, shape, out):
    torch.manual_seed(0)
    m = MODULES[op, d](out).eval()
    x = torch.randn(*shape)
    expected = NATIVE[op, d](x, out)
    return m, x, expected


def _check(y, expected, op):
    y = torch.as_tensor(np.asarray(y))
    assert y.shape == expected.shape
    if op == "max":
        assert torch.equal(y, expected)
    else:
        assert (y - expected).abs().max().item() <= 1e-6 * max(1.0, expected.abs().max().item())


def _other_size(shape):
    """The same batch and channels, every spatial size changed (prime or odd, some smaller)."""
    return (*shape[:2], *[n + 6 if n < 8 else n * 2 + 3 for n in shape[2:]])


@pytest.mark.parametrize("d,op,shape,out", CASES, ids=IDS)
def test_jit_trace_keeps_torchs_op_and_is_exact_at_other_sizes(d, op, shape, out):
    # A plain trace (OpenVINO and pnnx trace like this) cannot tell whether its sizes will be dynamic:
    # poolport leaves torch's own op, which those tools compute exactly at every size. A static plan
    # in the trace would be silently wrong at every other size.
    m, x, expected = _setup(d, op, shape, out)
    traced = torch.jit.trace(m, (x,))
    assert f"aten::adaptive_{op}_pool{d}d" in str(traced.inlined_graph)
    _check(traced(x), expected, op)
    other = torch.randn(*_other_size(shape))
    _check(traced(other), NATIVE[op, d](other, out), op)


@pytest.mark.parametrize("d,op,shape,out", CASES, ids=IDS)
@pytest.mark.parametrize("strict", [False, True])
def test_torch_export(d, op, shape, out, strict):
    m, x, expected = _setup(d, op, shape, out)
    ep = torch.export.export(m, (x,), strict=strict)
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert not any("adaptive" in t for t in targets), targets
    _check(ep.module()(x), expected, op)


@pytest.mark.parametrize("d,op,shape,out", CASES, ids=IDS)
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_export_is_portable_and_exact_in_onnxruntime(d, op, shape, out, dynamo, tmp_path):
    m, x, expected = _setup(d, op, shape, out)
    path = tmp_path / "m.onnx"
    torch.onnx.export(m, (x,), str(path), dynamo=dynamo, opset_version=17 if not dynamo else 18)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = op_counts(model)
    assert not set(ops) & NON_PORTABLE_OPS, ops
    assert set(ops) <= PORTABLE_POOLING_OPS, ops
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    _check(y, expected, op)


def test_native_module_export_fails_where_poolport_succeeds(tmp_path):
    """The problem poolport solves, as the oracle sees it today."""
    x = torch.randn(1, 8, 9, 9)
    with pytest.raises(Exception, match="factor"):
        torch.onnx.export(torch.nn.AdaptiveAvgPool2d(7), (x,), str(tmp_path / "a.onnx"), dynamo=False)
    with pytest.raises(Exception, match="adaptive_max_pool2d"):
        torch.onnx.export(torch.nn.AdaptiveMaxPool2d(7).eval(), (x,), str(tmp_path / "b.onnx"), dynamo=True)
