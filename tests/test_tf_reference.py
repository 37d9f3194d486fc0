"""poolport's TF-'SAME'/'VALID' pooling and Keras global pooling against real TensorFlow: 582
configurations (1d/2d/3d, avg and max, kernels 1-4, strides 1-3, SAME and VALID, global with keepdims)
recorded by tests/data/make_tf_reference.py with TensorFlow 2.21 (run it in a venv of its own).
Also checks the numpy reference, so both poolport and its oracle answer to TensorFlow itself."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import poolport.functional as PF
from poolport.testing import reference

DATA = np.load(Path(__file__).parent / "data" / "tf_pooling_reference.npz")
KEYS = sorted({k.rsplit("/", 1)[0] for k in DATA.files if k.endswith("/y")})
WINDOWED = [k for k in KEYS if not k.startswith("global-")]
GLOBAL = [k for k in KEYS if k.startswith("global-")]


def test_the_file_was_made_by_tensorflow_and_is_complete():
    assert str(DATA["tensorflow_version"]).startswith("2.") and len(KEYS) >= 500
    assert {k[:5] for k in WINDOWED} == {"avg1d", "avg2d", "avg3d", "max1d", "max2d", "max3d"}
    assert any("-SAME-" in k for k in WINDOWED) and any("-VALID-" in k for k in WINDOWED) and len(GLOBAL) == 12


def _check(got: np.ndarray, want: np.ndarray, op: str, key: str):
    assert got.shape == want.shape, (key, got.shape, want.shape)
    if op == "max":
        np.testing.assert_array_equal(got, want, err_msg=key)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(1.0, float(np.abs(want).max())), err_msg=key)


@pytest.mark.parametrize("op,d", [(op, d) for op in ("avg", "max") for d in (1, 2, 3)])
def test_same_and_valid_pooling_equals_tensorflow(op, d):
    keys = [k for k in WINDOWED if k.startswith(f"{op}{d}d-")]
    assert keys
    for key in keys:
        k, s, padding = re.match(r"\w+-k(\d+)-s(\d+)-(SAME|VALID)-", key).groups()
        k, s = int(k), int(s)
        x, want = DATA[f"{key}/x"], DATA[f"{key}/y"]
        got = getattr(PF, f"{op}_pool{d}d_same")(torch.from_numpy(x), k, s, padding).numpy()
        _check(got, want, op, key)
        _check(reference.same_pool(x.astype(np.float64), (k,) * d, (s,) * d, op, padding).astype(np.float32),
               want, op, "numpy reference " + key)


@pytest.mark.parametrize("key", GLOBAL)
def test_global_pooling_equals_keras(key):
    op, keep = key.split("-")[1][:3], key.endswith("1")
    x, want = DATA[f"{key}/x"], DATA[f"{key}/y"]
    got = getattr(PF, f"global_{op}_pool")(torch.from_numpy(x), keepdims=keep).numpy()
    _check(got, want, op, key)
