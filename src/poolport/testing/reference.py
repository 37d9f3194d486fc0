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


def onnx_pool(x: np.ndarray, op: str, kernel, strides, pads_before, pads_after, dilations=None,
              ceil_mode: bool = False, count_include_pad: bool = False) -> np.ndarray:
    """ONNX AveragePool/MaxPool from the operator definition, in float64, one output cell at a time.

    Output size per axis: floor or ceil of (n + pads - ((k - 1) * d + 1)) / s + 1, minus a last ceil_mode
    window that would start in the right padding. A window's taps are ``i * s - before + j * d``; max takes
    the real taps, average divides their sum by the real taps, or with ``count_include_pad`` by the taps
    inside the padded extent (never the ceil_mode overhang). Written for small test graphs, not speed."""
    spatial = x.shape[2:]
    d = len(spatial)
    dilations = tuple(dilations or (1,) * d)
    outs = []
    for n, k, s, b, e, dl in zip(spatial, kernel, strides, pads_before, pads_after, dilations):
        extent = (k - 1) * dl + 1
        span = n + b + e - extent
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + b:
            out -= 1
        outs.append(out)
    y = np.empty(x.shape[:2] + tuple(outs), dtype=np.float64)
    for idx in np.ndindex(*outs):
        taps_per_axis, counted = [], 1
        for i, n, k, s, b, e, dl in zip(idx, spatial, kernel, strides, pads_before, pads_after, dilations):
            taps = [i * s - b + j * dl for j in range(k)]
            real = [t for t in taps if 0 <= t < n]
            taps_per_axis.append(real)
            counted *= sum(-b <= t < n + e for t in taps) if count_include_pad else len(real)
        if any(not t for t in taps_per_axis):
            y[(...,) + idx] = -np.inf if op == "max" else 0.0
            continue
        window = x[np.ix_(range(x.shape[0]), range(x.shape[1]), *taps_per_axis)].astype(np.float64)
        flat = window.reshape(x.shape[0], x.shape[1], -1)
        y[(...,) + idx] = flat.max(axis=-1) if op == "max" else flat.sum(axis=-1) / counted
    return y


def onnx_max_pool_indices(x: np.ndarray, kernel, strides, pads_before, pads_after, dilations=None,
                          ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ONNX MaxPool with its Indices output (storage_order 0), from the operator definition: each window's
    maximum over its real cells and the flat index of its first maximum (row-major in the window, as torch
    and ONNX Runtime pick it) over the whole N x C x spatial tensor, so it includes the plane's offset
    ``(n * C + c) * prod(spatial)``. A window of -inf cells gives its first real cell; NaN wins at once.
    Output sizes as ``onnx_pool``. Written for small test graphs, not speed."""
    n_, c_, *spatial = x.shape
    d = len(spatial)
    dilations = tuple(dilations or (1,) * d)
    values = onnx_pool(x, "max", kernel, strides, pads_before, pads_after, dilations, ceil_mode)
    outs = values.shape[2:]
    plane = int(np.prod(spatial))
    flat = x.reshape(n_ * c_, plane)
    index = np.empty((n_ * c_,) + tuple(outs), dtype=np.int64)
    y = np.empty((n_ * c_,) + tuple(outs), dtype=x.dtype)
    for o in np.ndindex(*outs):
        taps = [[i * s - b + j * dl for j in range(k) if 0 <= i * s - b + j * dl < n]
                for i, s, b, k, dl, n in zip(o, strides, pads_before, kernel, dilations, spatial)]
        cells = [int(np.ravel_multi_index(t, spatial)) for t in np.ndindex(*map(len, taps))
                 for t in [tuple(a[j] for a, j in zip(taps, t))]]
        for p in range(n_ * c_):
            best = cells[0]
            for cell in cells:
                v = flat[p, cell]
                if np.isnan(v):
                    best = cell
                    break
                if v > flat[p, best]:
                    best = cell
            index[(p,) + o] = p * plane + best
            y[(p,) + o] = flat[p, best]
    return y.reshape(values.shape), index.reshape(values.shape)


def onnx_max_unpool(y: np.ndarray, index: np.ndarray, out_spatial) -> np.ndarray:
    """ONNX MaxUnpool from the operator definition: zeros of (N, C, *out_spatial), each value of ``y`` written
    at its flat ``index`` over the whole output tensor."""
    out = np.zeros(y.shape[:2] + tuple(out_spatial), dtype=y.dtype)
    out.reshape(-1)[index.reshape(-1)] = y.reshape(-1)
    return out
def onnx_lp_pool(x: np.ndarray, p: int, kernel, strides, pads_before, pads_after, dilations=None,
                 ceil_mode: bool = False) -> np.ndarray:
    """ONNX LpPool from the operator definition, in float64, one output cell at a time: the Lp norm of each
    window's real cells, ``(sum |x| ** p) ** (1 / p)``; padding and the ceil_mode overhang hold nothing
    (they add 0 to the sum), so a window with no real cell is 0.

    Output size per axis as ``onnx_pool``: floor or ceil of (n + pads - ((k - 1) * d + 1)) / s + 1, minus a
    last ceil_mode window that would start in the right padding (ONNX Runtime 1.32 drops it too). A window's
    taps are ``i * s - before + j * d``. (onnx 1.23's reference evaluator instead multiplies an average
    over the real cells by the kernel's cell count, which differs wherever a window holds padding.)"""
    spatial = x.shape[2:]
    dilations = tuple(dilations or (1,) * len(spatial))
    outs = []
    for n, k, s, b, e, dl in zip(spatial, kernel, strides, pads_before, pads_after, dilations):
        span = n + b + e - ((k - 1) * dl + 1)
        out = (-(-span // s) if ceil_mode else span // s) + 1
        outs.append(out - 1 if ceil_mode and (out - 1) * s >= n + b else out)
    powered = np.abs(x.astype(np.float64)) ** p
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=np.float64)
    for idx in np.ndindex(*outs):
        taps = [[t for t in (i * s - b + j * dl for j in range(k)) if 0 <= t < n]
                for i, n, k, s, b, dl in zip(idx, spatial, kernel, strides, pads_before, dilations)]
        if all(taps):
            window = powered[np.ix_(range(x.shape[0]), range(x.shape[1]), *taps)]
            y[(...,) + idx] = window.reshape(x.shape[0], x.shape[1], -1).sum(axis=-1) ** (1.0 / p)
    return y
