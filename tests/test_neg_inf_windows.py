"""A max window holding only -inf cells, in poolport's adaptive max plans, per runtime (slow tier).

torch gives -inf. ONNX Runtime's, OpenVINO's and MNN's MaxPool give their lowest finite value instead for
some kernels (docs/runtimes.md), and poolport's plans inherit it: this file pins down what each runtime
returns today, so that a fixed runtime, or an exact form written by poolport, shows up here. Every cell
outside such a window must be bit-exact; inside one, the runtime's known value (KNOWN) or -inf."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import poolport
from poolport.export.torch_onnx import torch_export_to_proto
from poolport.runtimes.registry import available, run_batch

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

# (name, module, input shape)
CASES = [
    ("2d-up-5-to-8", nn.AdaptiveMaxPool2d(8), (1, 4, 5, 5)),
    ("2d-10-to-7", nn.AdaptiveMaxPool2d(7), (1, 4, 10, 10)),
    ("1d-10-to-7", nn.AdaptiveMaxPool1d(7), (1, 4, 10)),
    ("3d-6-to-4", nn.AdaptiveMaxPool3d(4), (1, 4, 6, 6, 6)),
]
LOWEST = float(np.finfo(np.float32).min)
# measured 2026-12-05 (onnxruntime 1.32, openvino 2026.4.1, MNN 3.6.1): the value an all -inf window gets,
# per runtime and case; a case not listed is exact (ncnn and LiteRT: all four)
KNOWN = {
    "onnxruntime": {"2d-10-to-7": LOWEST, "1d-10-to-7": LOWEST, "3d-6-to-4": LOWEST},
    "openvino": {name: LOWEST for name, *_ in CASES},
    "mnn": {name: -16777216.0 for name, *_ in CASES},
}


def _input(shape, seed):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    x[0, 1] = -math.inf  # a whole channel: every window of it all -inf
    x.view(-1)[3] = -math.inf  # one -inf cell among finite ones
    return x


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino", "ncnn", "mnn", "litert"])
def test_all_neg_inf_windows_of_adaptive_max_plans(runtime):
    if not available(runtime):
        pytest.skip(f"{runtime} not installed (pip install 'poolport[runtimes]'; make litert)")
    items, wants = [], []
    for i, (_, module, shape) in enumerate(CASES):
        x = _input(shape, i)
        proto = torch_export_to_proto(poolport.make_portable(module, (x,)), (x,), "dynamo", 18)
        proto.ir_version = 8  # what pnnx's bundled ONNX Runtime loads
        items.append((proto, {proto.graph.input[0].name: x.numpy()}))
        wants.append(module(x).numpy())
    for (name, *_), want, got in zip(CASES, wants, run_batch(runtime, items)):
        got = np.asarray(got[0] if isinstance(got, (list, tuple)) else got)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        differ = got != want
        known = KNOWN.get(runtime, {}).get(name)
        if known is None:
            assert not differ.any(), (name, got[differ][:4], want[differ][:4])
            continue
        # only all -inf windows may differ, each holding the runtime's known value; and some do (else the
        # runtime or poolport has been fixed: update KNOWN and docs/runtimes.md)
        assert differ.any(), f"{runtime} {name}: every all -inf window is -inf now; update KNOWN"
        assert np.all(want[differ] == -np.inf), (name, want[differ][:4])
        assert np.all(got[differ] == known), (name, got[differ][:4])
