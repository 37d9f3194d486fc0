"""Generate tests/data/tf_pooling_reference.npz with real TensorFlow: the oracle for poolport's
TF-'SAME'/'VALID' and Keras global pooling (tests/test_tf_reference.py).

TensorFlow pins clash with this project's environment, so run it from a venv of its own:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy
    /tmp/tfvenv/bin/python tests/data/make_tf_reference.py

Each entry is channels first (poolport's layout): ``<key>/x`` (input) and ``<key>/y`` (TensorFlow's
output), with the key naming the op, rank, kernel, stride, padding and input size. Inputs are small and
seeded; TensorFlow computes in NHWC, transposed here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import tensorflow as tf

OUT = Path(__file__).with_name("tf_pooling_reference.npz")
SIZES = {1: [(1,), (2,), (3,), (5,), (7,), (8,), (11,)], 2: [(1, 1), (4, 4), (5, 7), (8, 6), (9, 9)],
         3: [(3, 4, 5), (4, 4, 4), (6, 5, 3)]}


def to_cf(a: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW (any rank)."""
    return np.moveaxis(a, -1, 1)


def main() -> None:
    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {"tensorflow_version": np.array(tf.__version__)}
    for d, op, padding in itertools.product((1, 2, 3), ("avg", "max"), ("SAME", "VALID")):
        for size in SIZES[d]:
            for k, s in itertools.product((1, 2, 3, 4), (1, 2, 3)):
                if d == 3 and (k, s) not in ((2, 2), (3, 2), (3, 1), (2, 1)):
                    continue
                if padding == "VALID" and k > min(size):
                    continue  # TensorFlow refuses it; poolport's error is tested elsewhere
                x = rng.standard_normal((2, *size, 3)).astype(np.float32)  # NHWC, 3 channels
                pool = tf.nn.avg_pool if op == "avg" else tf.nn.max_pool  # (tf.nn.pool refuses stride > window)
                y = pool(x, ksize=[k] * d, strides=[s] * d, padding=padding).numpy()
                key = f"{op}{d}d-k{k}-s{s}-{padding}-{'x'.join(map(str, size))}"
                data[f"{key}/x"], data[f"{key}/y"] = to_cf(x), to_cf(y)
    layers = {("avg", 1): tf.keras.layers.GlobalAveragePooling1D, ("avg", 2): tf.keras.layers.GlobalAveragePooling2D,
              ("avg", 3): tf.keras.layers.GlobalAveragePooling3D, ("max", 1): tf.keras.layers.GlobalMaxPooling1D,
              ("max", 2): tf.keras.layers.GlobalMaxPooling2D, ("max", 3): tf.keras.layers.GlobalMaxPooling3D}
    for (op, d), layer in layers.items():
        for keepdims in (False, True):
            size = SIZES[d][-1]
            x = rng.standard_normal((2, *size, 3)).astype(np.float32)
            y = layer(keepdims=keepdims)(x).numpy()
            key = f"global-{op}{d}d-keepdims{int(keepdims)}"
            data[f"{key}/x"], data[f"{key}/y"] = to_cf(x), to_cf(y) if keepdims else y
    np.savez_compressed(OUT, **data)
    print(f"{OUT}: {sum(1 for k in data if k.endswith('/y'))} configurations, TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
