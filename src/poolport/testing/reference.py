"""Plain numpy references written from the definitions, used by the tests as an oracle independent of
both torch and poolport's planner. Slow on purpose: loops over output cells, float64 accumulation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _adaptive_window(i: int, n: int, o: int) -> slice:
    # PyTorch: start = floor(i * n / o), end = ceil((i + 1) * n / o)
    return slice(math.floor(i * n / o), math.ceil((i + 1) * n / o))


def adaptive_pool(x: np.ndarray, output_size: tuple[int, ...], op: str) -> np.ndarray:
    """Adaptive ``op`` ("avg" or "max") pooling over the last ``len(output_size)`` axes of ``x``."""
    d = len(output_size)
    spatial = x.shape[-d:]
    lead = x.shape[:-d]
    out = np.empty(lead + tuple(output_size), dtype=np.float64 if op == "avg" else x.dtype)
    for idx in itertools.product(*(range(o) for o in output_size)):
        window = tuple(_adaptive_window(i, n, o) for i, n, o in zip(idx, spatial, output_size))
        cell = x[(Ellipsis,) + window].reshape(lead + (-1,))
        if op == "avg":
            out[(Ellipsis,) + idx] = cell.astype(np.float64).mean(axis=-1)
        else:
            out[(Ellipsis,) + idx] = cell.max(axis=-1)
    return out


def same_pool(x: np.ndarray, kernel, stride, op: str, padding: str = "SAME") -> np.ndarray:
    """TensorFlow's ``tf.nn.pool`` with ``padding`` 'SAME' or 'VALID' over the last ``len(kernel)``
    axes: output size ceil(n/s) ('SAME') or ceil((n-k+1)/s) ('VALID'); 'SAME' pads
    max((out-1)*s + k - n, 0) in total, half (rounded down) before; average divides by the number
    of real cells in the window, max ignores the padding."""
    d = len(kernel)
    spatial = x.shape[-d:]
    lead = x.shape[:-d]
    outs, befores = [], []
    for n, k, s in zip(spatial, kernel, stride):
        if padding == "SAME":
            o = -(-n // s)
            total = max((o - 1) * s + k - n, 0)
            befores.append(total // 2)
        else:
            o = -(-(n - k + 1) // s)
            befores.append(0)
        outs.append(o)
    out = np.empty(lead + tuple(outs), dtype=np.float64 if op == "avg" else x.dtype)
    for idx in itertools.product(*(range(o) for o in outs)):
        window = []
        for i, n, k, s, b in zip(idx, spatial, kernel, stride, befores):
            lo = i * s - b
            window.append(slice(max(lo, 0), min(lo + k, n)))
        cell = x[(Ellipsis,) + tuple(window)].reshape(lead + (-1,))
        if op == "avg":
            out[(Ellipsis,) + idx] = cell.astype(np.float64).mean(axis=-1)
        else:
            out[(Ellipsis,) + idx] = cell.max(axis=-1)
    return out
