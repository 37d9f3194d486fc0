"""torch's plain pooling that runtimes cannot take natively (issue 21), written by poolport and run in every
runtime: average pooling with ``divisor_override``, LPPool and dilated max pooling, 1-D/2-D/3-D, against
torch's own op. Exact (max bit-exact with its inf/-inf cells, average and LPPool within float rounding),
or, where a runtime has no exact form, the measured failure asserted (so a fixed runtime shows up here).

``-m slow`` runs the matrix (one batch per runtime). The fast tier's case per op runs through ``export_onnx`` with
a target instead: tests/test_plain_pools_runtimes.py."""

import math

import numpy as np
import pytest
import torch

import poolport.nn as PN
from poolport.export.torch_onnx import torch_export_to_proto
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


@pytest.mark.runtime
def test_segnet_indices_and_unpool_exact_in_ncnn_and_openvino(tmp_path):
    # MaxPool2d(2, 2, return_indices=True) + MaxUnpool2d: ncnn cannot load torch's own export (ScatterND);
    # poolport's form (target ncnn) verifies in ncnn and OpenVINO against PyTorch, ties and all
    for runtime in ("ncnn", "openvino"):
        if not available(runtime):
            pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]')")
    from test_torch_pools import _SegNetBlock

    import poolport

    x = _x((1, 4, 12, 12), 0, "")
    x[..., :4, :4] = 0.5  # ties: the first maximum wins
    report = poolport.export_onnx(_SegNetBlock().eval(), (x,), tmp_path / "m.onnx", target="ncnn",
                                  runtimes=("ncnn", "openvino"), random_checks=1)
    checks = {c.runtime: c.passed for c in report.checks}
    assert checks.get("ncnn") and checks.get("openvino") and all(checks.values()), report.checks
