"""The small-map formulations ``benchmarks/per_runtime.py --forms`` times (docs/pooling.md, "Small maps:
formulations measured") compute PyTorch's windows in ONNX Runtime, inf/-inf included (average: NaN too),
and give what poolport's default form gives where a NaN sits under a max (ONNX Runtime's MaxPool drops or
keeps a NaN by its position, docs/runtimes.md): what the docs' comparison rests on. Oracle: torch's native
adaptive pooling."""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import per_runtime  # noqa: E402

CASES = [("avg", (1, 8, 11, 11), 7), ("max", (1, 8, 11, 11), 7), ("avg", (1, 4, 9, 9), 7),
         ("max", (1, 4, 100, 100), 23), ("avg", (1, 3, 16, 13), 7)]


@pytest.mark.parametrize("form", per_runtime.FORMS)
@pytest.mark.parametrize("op,shape,out", CASES, ids=[f"{c[0]}-{c[1][2]}x{c[1][3]}-{c[2]}" for c in CASES])
def test_form_matches_torch_with_non_finite(form, op, shape, out):
    x = torch.randn(*shape)
    x[0, 0, 1, 2], x[0, 1, -1, -1], x[0, 1, 0, 0] = float("inf"), float("-inf"), float("inf")
    if op == "avg":
        x[0, 2, 3, 0] = float("nan")
    native = torch.nn.functional.adaptive_avg_pool2d if op == "avg" else torch.nn.functional.adaptive_max_pool2d
    want = native(x, out).numpy()
    got = run(per_runtime.form_graph(op, shape, out, form), x)
    assert got.shape == want.shape
    if op == "max":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_interleave_streams_cover_the_windows():
    from poolport.plan.windows import adaptive_windows

    for n in range(2, 40):
        for o in range(2, n + 1):
            streams = per_runtime.interleave_streams(n, o)
            if streams is None:
                continue
            got = {}
            for r, (start, kernel, step, count) in enumerate(streams):
                for j in range(count):
                    got[r + j * len(streams)] = (start + j * step, start + j * step + kernel)
            assert [got[i] for i in range(o)] == list(adaptive_windows(n, o)), (n, o)


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("form", per_runtime.FORMS[1:])
def test_max_form_keeps_the_default_forms_nan_pattern(form):
    shape, out = (1, 4, 11, 11), 7
    x = torch.randn(*shape)
    x[0, 0, 1, 2], x[0, 1, 5, 5], x[0, 2, -1, -1] = float("nan"), float("nan"), float("nan")
    np.testing.assert_array_equal(run(per_runtime.form_graph("max", shape, out, form), x),
                                  run(per_runtime.form_graph("max", shape, out, "runs"), x))
