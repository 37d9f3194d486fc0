"""FractionalMaxPool2d/3d with fixed ``_random_samples``, written by poolport and run in every runtime against
torch's own op with the same samples: bit-exact, inf/-inf included (a runtime's MaxPool keeps or drops a
NaN by its place, docs/runtimes.md, so NaN is left to tests/test_fractional.py).

The fast tier runs one case in every runtime (one batch per runtime); ``-m slow`` the matrix."""

import math

import numpy as np
import pytest
import torch

import poolport.nn as PN
from poolport.export.torch_onnx import torch_export_to_proto
from poolport.runtimes.registry import available, run_batch

RUNTIMES = ["onnxruntime", "openvino", "ncnn", "mnn", "litert"]


def _x(shape, seed):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    x.view(-1)[3] = -math.inf
    x.view(-1)[x.numel() // 2] = math.inf
    x[..., 0] = -math.inf  # a border column of -inf
    return x


def _samples(shape, seed):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(100 + seed))


# (name, module, input shape)
FAST = [
    ("frac2d", lambda: PN.FractionalMaxPool2d(3, output_size=5, _random_samples=_samples((1, 4, 2), 0)),
     (1, 4, 12, 13)),
]
MATRIX = FAST + [
    ("frac2d-ratio", lambda: PN.FractionalMaxPool2d((2, 3), output_ratio=(0.5, 0.4),
                                                    _random_samples=_samples((1, 6, 2), 1)), (1, 6, 15, 17)),
    ("frac2d-k1", lambda: PN.FractionalMaxPool2d(1, output_size=(7, 9), _random_samples=_samples((1, 3, 2), 2)),
     (1, 3, 10, 12)),
    ("frac2d-one-group", lambda: PN.FractionalMaxPool2d(2, output_size=(6, 4),
                                                        _random_samples=torch.full((1, 5, 2), 0.3)), (1, 5, 11, 9)),
    ("frac3d", lambda: PN.FractionalMaxPool3d(2, output_size=(3, 4, 5), _random_samples=_samples((1, 4, 3), 3)),
     (1, 4, 6, 8, 9)),
]

# measured (pnnx/ncnn 20261020): what the runtime does instead
KNOWN = {
    # one-cell windows are Slices only: a graph of nothing but Slice and Concat gives pnnx no op that shows
    # the batch axis, it keeps 4-D blobs and ncnn cannot run them (behind any layer that does, it is exact)
    ("ncnn", "frac2d-k1"): "refused",
}


def _batch(runtime, cases):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    items, wants = [], []
    for i, (name, make, shape) in enumerate(cases):
        module, x = make().eval(), _x(shape, i)
        proto = torch_export_to_proto(module, (x,), "dynamo", 18)
        proto.ir_version = 8  # what pnnx's bundled ONNX Runtime loads
        assert {n.op_type for n in proto.graph.node} <= {"Slice", "MaxPool", "Concat", "Reshape", "Constant"}
        items.append((proto, {proto.graph.input[0].name: x.numpy()}))
        with torch.no_grad():  # torch's own op with the module's samples: the oracle
            native = torch.nn.functional.fractional_max_pool3d if x.dim() == 5 else \
                torch.nn.functional.fractional_max_pool2d
            wants.append(native(x, module.kernel_size, module.output_size, module.output_ratio,
                                _random_samples=module._random_samples).numpy())
    for (name, *_), want, got in zip(cases, wants, run_batch(runtime, items)):
        if KNOWN.get((runtime, name)) == "refused":
            assert isinstance(got, Exception), f"{name} on {runtime}: runs now; check it and drop it from KNOWN"
            continue
        assert not isinstance(got, Exception), f"{name} on {runtime}: {got}"
        y = np.asarray(got[0]).reshape(want.shape)
        assert np.array_equal(y, want), f"{name} on {runtime}: max abs err {np.nanmax(np.abs(y - want))}"


@pytest.mark.runtime
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fractional_in_runtime(runtime):
    _batch(runtime, FAST)


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fractional_matrix_in_runtime(runtime):
    _batch(runtime, MATRIX)
