"""TensorFlow 'SAME'/'VALID' pooling and Keras global pooling against a numpy reference written from
TensorFlow's definition (poolport.testing.reference.same_pool); TensorFlow itself in an optional test."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import poolport
import poolport.functional as PF
from poolport import PoolportError
from poolport.plan.pads import torch_output, torch_windows
from poolport.plan.same import plan_same, same_padding
from poolport.testing import reference

FUNCS = {
    ("avg", 1): PF.avg_pool1d_same, ("avg", 2): PF.avg_pool2d_same, ("avg", 3): PF.avg_pool3d_same,
    ("max", 1): PF.max_pool1d_same, ("max", 2): PF.max_pool2d_same, ("max", 3): PF.max_pool3d_same,
}


def assert_tf_exact(x, y, op, kernel, stride, padding):
    ref = reference.same_pool(x.double().numpy(), kernel, stride, op, padding)
    assert tuple(y.shape) == ref.shape
    if op == "max":
        np.testing.assert_array_equal(y.double().numpy(), ref)
    else:
        scale = max(float(x.abs().max()), 1e-30)
        assert float(np.abs(y.double().numpy() - ref).max()) <= 1e-6 * scale


def test_same_padding_matches_tensorflows_formula():
    assert same_padding(7, 3, 2) == (1, 1, 4)
    assert same_padding(8, 3, 2) == (0, 1, 4)  # TF pads more at the end
    assert same_padding(5, 4, 1) == (1, 2, 5)
    assert same_padding(3, 7, 1, 1) == (3, 3, 3)
    assert same_padding(10, 3, 1, 2) == (2, 2, 10)  # dilation 2: effective kernel 5
    for n in range(1, 34):
        for k in range(1, 8):
            for s in range(1, 5):
                before, after, out = same_padding(n, k, s)
                assert out == -(-n // s) and before + after == max((out - 1) * s + k - n, 0)
                assert after - before in (0, 1)


def test_torch_ceil_mode_never_counts_the_overhang():
    # n=6, k=3, s=2, ceil: windows [0,3) [2,5) [4,7): the last divides by 2, even with count_include_pad
    w = torch_windows(6, 3, 2, 0, 0, True, True)
    assert [(x.start, x.stop, x.divisor) for x in w] == [(0, 3, 3), (2, 5, 3), (4, 7, 2)]
    # the last window must start inside the input or the left padding
    assert torch_output(5, 2, 2, 1, 1, True) == 3
    assert torch_output(4, 2, 2, 0, 0, True) == 2


@pytest.mark.parametrize("op", ["avg", "max"])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_1d_exhaustive_grid(op, padding):
    g = torch.Generator().manual_seed(0)
    kinds = set()
    for n in range(1, 34):
        x = torch.randn(2, 3, n, generator=g)
        for k in range(1, 8):
            for s in range(1, 5):
                if padding == "VALID" and k > n:
                    with pytest.raises(PoolportError, match="larger than the input"):
                        FUNCS[op, 1](x, k, s, padding)
                    continue
                assert_tf_exact(x, FUNCS[op, 1](x, k, s, padding), op, (k,), (s,), padding)
                kinds.add(plan_same(op, (n,), (k,), (s,), padding).kind)
    assert kinds == ({"plain"} if padding == "VALID" else {"plain", "symmetric", "ceil", "explicit"})


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(1, 33), st.integers(1, 7), st.integers(1, 4)), min_size=2, max_size=3),
    st.sampled_from(["avg", "max"]),
)
def test_2d_3d_sampled(axes, op):
    n = tuple(a[0] for a in axes)
    k = tuple(a[1] for a in axes)
    s = tuple(a[2] for a in axes)
    x = torch.randn(1, 2, *n)
    assert_tf_exact(x, FUNCS[op, len(axes)](x, k, s), op, k, s, "SAME")


def test_timm_avgpool2dsame_is_not_tf_exact_but_poolport_is():
    timm_layers = pytest.importorskip("timm.layers")
    x = torch.ones(1, 1, 7, 7)
    timm_y = timm_layers.AvgPool2dSame(3, 2)(x)
    ours = poolport.nn.AvgPool2dSame(3, 2)(x)
    assert torch.equal(ours, torch.ones(1, 1, 4, 4))  # TF: averages of ones are ones
    assert timm_y[0, 0, 0, 0].item() == pytest.approx(4 / 9)  # timm divides the corner by 9


def test_unbatched_and_module_forms():
    x = torch.randn(3, 10, 11)
    y = poolport.nn.MaxPool2dSame((3, 2), (2, 3))(x)
    assert_tf_exact(x.unsqueeze(0), y.unsqueeze(0), "max", (3, 2), (2, 3), "SAME")


@pytest.mark.parametrize("op", ["avg", "max"])
def test_same_modules_export_to_onnx_and_match_in_onnxruntime(op, tmp_path):
    import onnx
    import onnxruntime as ort

    from poolport.onnxfile.graph import NON_PORTABLE_OPS, PORTABLE_POOLING_OPS, op_counts

    cls = poolport.nn.AvgPool2dSame if op == "avg" else poolport.nn.MaxPool2dSame
    for size, k, s in [((8, 9), 3, 2), ((7, 7), 3, 2), ((10, 5), (4, 2), (3, 1)), ((6, 6), 2, 2)]:
        x = torch.randn(1, 3, *size)
        m = cls(k, s)
        for dynamo in (False, True):
            path = tmp_path / f"m{dynamo}.onnx"
            torch.onnx.export(m, (x,), str(path), dynamo=dynamo)
            ops = set(op_counts(onnx.load(str(path))))
            assert not ops & NON_PORTABLE_OPS
            if dynamo:  # the TorchScript exporter adds shape plumbing (ConstantOfShape, ...) around Pad
                assert ops <= PORTABLE_POOLING_OPS, ops
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
            k2 = (k, k) if isinstance(k, int) else k
            s2 = (s, s) if isinstance(s, int) else s
            assert_tf_exact(x, torch.from_numpy(y), op, k2, s2, "SAME")


@pytest.mark.parametrize("opset", [9, 10])
def test_the_explicit_form_exports_at_opsets_before_11(opset, tmp_path):
    # before opset 11 ONNX's Pad takes its pads as an attribute: the TorchScript exporter's symbolic writes
    # the explicit form (Pad + pool + Mul) that way there, as the legalizer does
    assert plan_same("avg", (8, 8), (2, 2), (1, 1)).kind == plan_same("max", (8, 8), (2, 2), (1, 1)).kind == "explicit"
    for cls in (poolport.nn.AvgPool2dSame, poolport.nn.MaxPool2dSame):
        report = poolport.export_onnx(cls(2, 1).eval(), torch.randn(1, 3, 8, 8), tmp_path / f"{cls.__name__}.onnx",
                                      exporter="torchscript", opset=opset)
        assert report.passed and report.opset == opset


@pytest.mark.parametrize("keepdims,shape", [(False, (2, 3)), (True, (2, 3, 1, 1))])
def test_global_pooling_matches_keras_shapes(keepdims, shape):
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(3))
    y = poolport.nn.GlobalAvgPool(keepdims=keepdims)(x)
    assert y.shape == shape
    # float rounding only: within 1e-6 x max|x| (a mean near zero has no meaningful relative error)
    np.testing.assert_allclose(y.reshape(2, 3).numpy(), x.double().numpy().mean(axis=(2, 3)),
                               rtol=0, atol=1e-6 * float(x.abs().max()))
    m = poolport.nn.GlobalMaxPool(keepdims=keepdims)(x)
    np.testing.assert_array_equal(m.reshape(2, 3).numpy(), x.numpy().max(axis=(2, 3)))
    nhwc = x.permute(0, 2, 3, 1)
    assert torch.equal(poolport.functional.global_max_pool(nhwc, data_format="channels_last"), m.reshape(2, 3))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: PF.avg_pool2d_same(torch.randn(1, 1, 3, 3), 5, 1, "VALID"), r"kernel 5 is larger than the input 3"),
        (lambda: PF.avg_pool2d_same(torch.randn(1, 1, 3, 3), 2, 0), r"stride must be a positive int"),
        (lambda: PF.max_pool1d_same(torch.randn(1, 1, 3), 0), r"kernel size must be a positive int"),
        (lambda: PF.avg_pool2d_same(torch.randn(1, 1, 3, 3), 2, 1, "FULL"), r"'SAME' or 'VALID'"),
        (lambda: PF.avg_pool2d_same(torch.randn(3, 3), 2), r"expected a 3D .* or 4D"),
        (lambda: PF.avg_pool2d_same(torch.ones(1, 1, 3, 3, dtype=torch.int64), 2), r"floating dtype"),
        (lambda: PF.avg_pool2d_same(torch.randn(1, 1, 3, 3), (2, 2, 2)), r"kernel_size must be an int or 2 ints"),
        (lambda: PF.global_avg_pool(torch.randn(3, 3)), r"batch, channel and spatial"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(PoolportError, match=match):
        call()


@pytest.mark.runtime
def test_against_tensorflow_itself():
    """Optional: `pip install tensorflow` in the venv, then `pytest -m runtime tests/test_same_pooling.py`."""
    tf = pytest.importorskip("tensorflow")
    g = np.random.default_rng(0)
    for n, k, s in [(7, 3, 2), (8, 3, 2), (5, 4, 1), (33, 7, 4), (1, 3, 2), (10, 5, 3)]:
        x = g.standard_normal((1, 2, n, n + 1)).astype(np.float32)
        nhwc = tf.constant(x.transpose(0, 2, 3, 1))
        for op, tf_fn in (("avg", tf.nn.avg_pool2d), ("max", tf.nn.max_pool2d)):
            want = tf_fn(nhwc, k, s, "SAME").numpy().transpose(0, 3, 1, 2)
            got = FUNCS[op, 2](torch.from_numpy(x), k, s).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
