"""torch's plain pooling that runtimes cannot take natively (issue 21), written by poolport and run in every
runtime: average pooling with ``divisor_override``, LPPool and dilated max pooling, 1-D/2-D/3-D, against
torch's own op. Exact (max bit-exact with its inf/-inf cells, average and LPPool within float rounding),
or, where a runtime has no exact form, the measured failure asserted (so a fixed runtime shows up here).

``-m slow`` runs the matrix (one batch per runtime). The fast tier's case per op runs through ``export_onnx`` with
a target instead: tests/test_plain_pools_runtimes.py."""

import math

import numpy as np
import onnx
import pytest
import torch

import poolport.nn as PN
from poolport.export.torch_onnx import torch_export_to_proto
from poolport.functional.pools import _float_indices
from poolport.runtimes.registry import available, run_batch

RUNTIMES = ["onnxruntime", "openvino", "ncnn", "mnn", "litert"]


def _x(shape, seed, kind):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    if kind == "inf":  # max pooling: the runtimes' MaxPool drops or keeps a NaN by its place (docs/runtimes.md)
        x.view(-1)[3] = -math.inf
        x.view(-1)[x.numel() // 2] = math.inf
        x[..., 0] = -math.inf  # a border column of -inf: the -inf padding must not turn into a finite value
    elif kind == "zeros":  # LPPool: all-zero windows (0 ** p)
        x[..., :3] = 0
    return x


# (name, module, input shape, input kind)
FAST = [
    ("div2d", lambda: PN.AvgPool2d(3, 2, padding=1, divisor_override=5), (1, 4, 12, 12), ""),
    ("lp2", lambda: PN.LPPool2d(2, 3, 2), (1, 4, 12, 12), "zeros"),
    ("dil2d-s1", lambda: PN.MaxPool2d(3, 1, 1, dilation=2), (1, 4, 12, 12), "inf"),
]
MATRIX = FAST + [
    ("div2d-ceil-exclude", lambda: PN.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=7),
     (1, 4, 12, 12), ""),
    ("div2d-ceil-include", lambda: PN.AvgPool2d((3, 2), (2, 1), (1, 0), ceil_mode=True, divisor_override=-3),
     (1, 4, 11, 9), ""),
    ("div3d", lambda: PN.AvgPool3d(3, 2, padding=1, divisor_override=5), (1, 4, 6, 8, 8), ""),
    ("lp1", lambda: PN.LPPool2d(1, 3, 2), (1, 4, 12, 12), "zeros"),
    ("lp3", lambda: PN.LPPool2d(3, 3, 2), (1, 4, 12, 12), "zeros"),
    ("lpinf", lambda: PN.LPPool2d(math.inf, 3, 2), (1, 4, 12, 12), "zeros"),
    ("lp2-ceil", lambda: PN.LPPool2d(2, 3, 2, ceil_mode=True), (1, 4, 12, 12), "zeros"),
    ("lp2-1d", lambda: PN.LPPool1d(2, 3, 2), (1, 4, 17), "zeros"),
    ("lp2-3d", lambda: PN.LPPool3d(2, 2, 2), (1, 4, 6, 8, 8), "zeros"),
    ("dil2d-lattice", lambda: PN.MaxPool2d(3, 2, 1, dilation=2), (1, 4, 12, 12), "inf"),
    ("dil2d-s3-ceil", lambda: PN.MaxPool2d(2, 3, 1, dilation=2, ceil_mode=True), (1, 4, 12, 13), "inf"),
    ("dil2d-mixed", lambda: PN.MaxPool2d((3, 2), (1, 2), (1, 0), dilation=(2, 1)), (1, 4, 12, 12), "inf"),
    ("dil1d", lambda: PN.MaxPool1d(3, 1, 1, dilation=2), (1, 4, 17), "inf"),
    ("dil3d", lambda: PN.MaxPool3d(2, 1, 1, dilation=2), (1, 4, 6, 8, 8), "inf"),
    ("dil3d-odd", lambda: PN.MaxPool3d(2, 1, 1, dilation=2), (1, 4, 5, 6, 7), "inf"),
]

# measured not exact (pnnx/ncnn 20261020, onnx2tf 1.29.24): what the runtime does instead
KNOWN = {
    ("ncnn", "lp3"): "wrong",  # ncnn's Pow: 2.4e38 for 0 ** (1/3), no NaN for a negative base
}


def _batch(runtime, cases):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    items, wants = [], []
    for i, (name, make, shape, kind) in enumerate(cases):
        module, x = make().eval(), _x(shape, i, kind)
        proto = torch_export_to_proto(module, (x,), "dynamo", 18)
        proto.ir_version = 8  # what pnnx's bundled ONNX Runtime loads
        assert not {"LpPool"} & {n.op_type for n in proto.graph.node}
        items.append((proto, {proto.graph.input[0].name: x.numpy()}))
        native = getattr(torch.nn, type(module).__name__)  # poolport's classes subclass torch's: same state
        reference = native.__new__(native)
        reference.__dict__ = dict(module.__dict__)
        with torch.no_grad():
            wants.append(reference(x).numpy())
    for (name, *_), want, got in zip(cases, wants, run_batch(runtime, items)):
        known = KNOWN.get((runtime, name))
        if known == "refused":
            assert isinstance(got, Exception), f"{name} on {runtime}: converts now; check it and drop it from KNOWN"
            continue
        assert not isinstance(got, Exception), f"{name} on {runtime}: {got}"
        y = np.asarray(got[0]).reshape(want.shape)
        if known == "wrong":
            assert not _exact(name, y, want), f"{name} on {runtime} is exact now: drop it from KNOWN"
            continue
        assert _exact(name, y, want), f"{name} on {runtime}: max abs err {np.nanmax(np.abs(y - want))}"


def _exact(name, y, want) -> bool:
    if not np.array_equal(np.isnan(y), np.isnan(want)):
        return False
    if name.startswith("dil") or name == "lpinf":  # max: bit-exact
        return np.array_equal(y, want, equal_nan=True)
    return np.allclose(y, want, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_matrix_in_runtime(runtime):
    _batch(runtime, MATRIX)


class _Indices(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.pool = torch.nn.Conv2d(4, 4, 1), torch.nn.MaxPool2d(3, 2, 1, return_indices=True)

    def forward(self, x):
        return self.pool(self.conv(x))


@pytest.mark.runtime
def test_indices_as_a_model_output_are_torchs_int64(tmp_path):
    # the indices leave the graph as torch's int64 (MNN holds them as int32: its harness widens them back);
    # ncnn has no integer tensors: the Cast is refused there, loudly
    for runtime in ("mnn", "ncnn"):
        if not available(runtime):
            pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    import poolport
    from poolport.errors import VerificationError

    x = _x((1, 4, 11, 9), 0, "")
    report = poolport.export_onnx(_Indices().eval(), (x,), tmp_path / "m.onnx", target="mnn",
                                  runtimes=("mnn",), random_checks=1, rtol=1e-3)
    assert all(c.passed for c in report.checks) and {c.runtime for c in report.checks} >= {"onnxruntime", "mnn"}
    graph = onnx.load(tmp_path / "m.onnx").graph
    assert graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert not {n.op_type for n in graph.node} & {"ScatterND", "ScatterElements", "MaxUnpool"}
    with pytest.raises(VerificationError, match="Tensor.to is not an ncnn layer"):
        poolport.export_onnx(_Indices().eval(), (x,), tmp_path / "n.onnx", target="ncnn", runtimes=("ncnn",),
                             random_checks=1, rtol=1e-3)


@pytest.mark.runtime
def test_segnet_indices_and_unpool_exact_in_ncnn_mnn_and_openvino(tmp_path):
    # MaxPool2d(2, 2, return_indices=True) + MaxUnpool2d: ncnn cannot load torch's own export (ScatterND), MNN
    # computes it wrongly; poolport's form (target ncnn) verifies in ncnn, MNN and OpenVINO against PyTorch
    runtimes = ("ncnn", "mnn", "openvino")
    for runtime in runtimes:
        if not available(runtime):
            pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    from test_torch_pools import _SegNetBlock

    import poolport

    x = _x((1, 4, 12, 12), 0, "")
    x[..., :4, :4] = 0.5  # ties: the first maximum wins
    # rtol 1e-3: MNN's convolutions alone differ from torch by 1.2e-4 x the output's scale here (measured); a
    # misplaced index would move a whole value (the matrix below checks the pooling bit for bit)
    report = poolport.export_onnx(_SegNetBlock().eval(), (x,), tmp_path / "m.onnx", target="ncnn",
                                  runtimes=runtimes, random_checks=1, rtol=1e-3)
    checks = {c.runtime: c.passed for c in report.checks}
    assert all(checks.get(r) for r in runtimes) and all(checks.values()), report.checks


class _PoolUnpool(torch.nn.Module):
    """poolport's max_pool{d}d(return_indices=True), then its values, its indices (the float32 the form computes) or the
    unpooling of other values at them."""

    def __init__(self, d, args, out):
        super().__init__()
        self.d, self.args, self.out = d, args, out
        self.y = None

    def forward(self, x):
        import poolport.functional as PF

        k, s, p, dil, ceil = self.args
        values, index = getattr(PF, f"max_pool{self.d}d")(x, k, s, p, dil, ceil, return_indices=True)
        if self.out != "unpool":  # the indices as the form computes them, before their Cast to int64
            return values if self.out == "values" else _float_indices(index)
        return getattr(PF, f"max_unpool{self.d}d")(values * 2 + self.y, index, k, s, p, output_size=x.shape[-self.d:])


# (d, input shape, (kernel, stride, padding, dilation, ceil_mode)); channel counts unlike the spatial sizes
INDEX_MATRIX = [
    (2, (1, 5, 13, 11), (3, 2, 1, 1, False)),
    (2, (1, 5, 13, 11), (3, 2, 0, 1, True)),
    (2, (1, 5, 12, 12), (3, 1, 1, 1, False)),
    (2, (1, 5, 16, 15), (6, 3, 0, 1, False)),
    (1, (1, 5, 17), (3, 2, 1, 1, False)),
    (3, (1, 5, 6, 7, 8), (2, 2, 0, 1, False)),
    (3, (1, 5, 5, 6, 7), (3, 2, 1, 1, False)),
]


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn", "mnn"])
def test_indices_and_unpool_matrix_in_runtime(runtime):
    # overlapping windows, padding, ceil_mode, 1-D and 3-D: values bit-exact (+-inf, all -inf windows, ties),
    # indices exact, unpooling exact with several windows writing one cell (the last one wins, as in torch)
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    import torch.nn.functional as F

    import poolport
    from poolport.functional.pools import deploying_to

    items, wants = [], []
    for n, (d, shape, args) in enumerate(INDEX_MATRIX):
        x = _x(shape, n, "inf")
        x[0, 1] = -math.inf
        x[0, 2] = torch.round(x[0, 2])
        values, index = getattr(F, f"max_pool{d}d")(x, *args, True)
        y = torch.randn(values.shape, generator=torch.Generator().manual_seed(50 + n))
        for out in ("values", "index", "unpool"):
            module = _PoolUnpool(d, args, out).eval()
            module.y = y
            with poolport.always_portable(), deploying_to(["ncnn"]):
                proto = torch_export_to_proto(module, (x,), "dynamo", 18)
            proto.ir_version = 8
            items.append((proto, {proto.graph.input[0].name: x.numpy()}))
            k, s, p, _, _ = args
            want = {"values": values, "index": index.float(),
                    "unpool": getattr(F, f"max_unpool{d}d")(values * 2 + y, index, k, s, p, output_size=shape[2:])}
            wants.append(((d, shape, args, out), want[out].numpy()))
    for (case, want), got in zip(wants, run_batch(runtime, items)):
        assert not isinstance(got, Exception), f"{case} on {runtime}: {got}"
        y = np.asarray(got[0]).reshape(want.shape)
        assert np.array_equal(y, want), f"{case} on {runtime}: {int((y != want).sum())} cells differ"
