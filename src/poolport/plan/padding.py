"""Padding arithmetic of pooling in TensorFlow, PyTorch and ONNX, per axis. Pure integers.

The common currency is the list of *windows* an op computes: for each output cell, the half-open range
of positions it covers (negative or >= n inside padding) and its *divisor* for average pooling.

* TensorFlow 'SAME': out = ceil(n / s); total pad = max((out - 1) * s + k - n, 0), total // 2 before,
  the rest after; average divides by the number of real cells; max ignores padding.
* TensorFlow 'VALID': out = ceil((n - k + 1) / s), no padding.
* PyTorch / ONNX explicit pads (before, after) and ``ceil_mode``: the last window exists only if it
  starts inside the input or the left padding, its overhang past the padded end is never counted;
  ``count_include_pad`` counts padding cells (not the overhang) in the divisor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError


@dataclass(frozen=True)
class Window:
    """One output cell's window: positions ``[start, stop)`` (possibly in padding) and its average's divisor."""

    start: int  # may be negative (in the padding before)
    stop: int  # may exceed n (in the padding after, or the ceil_mode overhang)
    divisor: int  # what an average divides the window's sum by

    def real(self, n: int) -> tuple[int, int]:
        """The part of the window inside the input."""
        return max(self.start, 0), min(self.stop, n)


def check_pool_args(n: int, k: int, s: int, where: str, d: int = 1) -> None:
    """Raise a PoolportError unless kernel, stride and dilation are positive ints and ``n`` is not empty."""
    for name, v in (("kernel size", k), ("stride", s), ("dilation", d)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise PoolportError(f"{where}: {name} must be a positive int, got {v!r}.")
    if n <= 0:
        raise PoolportError(f"{where}: input size {n} is empty.")


@lru_cache(maxsize=4096)
def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int, int]:
    """TensorFlow 'SAME': ``(pad_before, pad_after, out)`` for input ``n``, kernel ``k``, stride ``s``,
    dilation ``d``."""
    check_pool_args(n, k, s, "same_padding", d)
    ke = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + ke - n, 0)
    return total // 2, total - total // 2, out


@lru_cache(maxsize=4096)
def valid_output(n: int, k: int, s: int, d: int = 1) -> int:
    """TensorFlow 'VALID': the output size; raises if the kernel does not fit."""
    check_pool_args(n, k, s, "valid pooling", d)
    ke = (k - 1) * d + 1
    if ke > n:
        raise PoolportError(
            f"'VALID' pooling: kernel {k}{f' (dilated to {ke})' if d > 1 else ''} is larger than the input {n}; "
            f"use 'SAME' padding or a smaller kernel."
        )
    return -(-(n - ke + 1) // s)


@lru_cache(maxsize=4096)
def tf_windows(n: int, k: int, s: int, padding: str) -> tuple[Window, ...]:
    """TensorFlow's windows ('SAME' or 'VALID'); divisors count real cells only."""
    if padding == "SAME":
        before, _, out = same_padding(n, k, s)
    elif padding == "VALID":
        before, out = 0, valid_output(n, k, s)
    else:
        raise PoolportError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
    windows = []
    for i in range(out):
        a = i * s - before
        windows.append(Window(a, a + k, min(a + k, n) - max(a, 0)))
    return tuple(windows)


@lru_cache(maxsize=4096)
def torch_output(n: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    """Output size of PyTorch/ONNX pooling with explicit pads (ONNX allows before != after)."""
    check_pool_args(n, k, s, "pooling")
    span = n + before + after - k
    if span < 0:
        raise PoolportError(f"pooling: kernel {k} is larger than the padded input {n + before + after}.")
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + before:
        out -= 1  # the last window must start inside the input or the left padding
    return out


@lru_cache(maxsize=4096)
def ceil_window_in_padding(n: int, k: int, s: int, before: int, after: int) -> bool:
    """Does ``ceil_mode`` reach a last window that starts in the right padding (or past it)? ONNX, ONNX
    Runtime and PyTorch drop that window; ncnn and OpenVINO return it as an extra output cell (measured)."""
    check_pool_args(n, k, s, "pooling")
    span = n + before + after - k
    if span < 0:
        return False
    return -(-span // s) + 1 > torch_output(n, k, s, before, after, True)


@lru_cache(maxsize=4096)
def torch_windows(
    n: int, k: int, s: int, before: int, after: int, ceil_mode: bool, count_include_pad: bool
) -> tuple[Window, ...]:
    """PyTorch's (and ONNX Runtime's) windows: the overhang past the padded end is never counted;
    padding cells are counted only with ``count_include_pad``."""
    out = torch_output(n, k, s, before, after, ceil_mode)
    windows = []
    for i in range(out):
        a = i * s - before
        b = a + k
        if count_include_pad:
            divisor = min(b, n + after) - a
        else:
            divisor = min(b, n) - max(a, 0)
        windows.append(Window(a, b, divisor))
    return tuple(windows)


@dataclass(frozen=True)
class ExplicitPool:
    """Any pooling with static sizes written as three plain steps, the form every runtime computes:

    ``Pad(before, after)`` (zeros for average, edge values for max: every window holds a real cell, so a
    replicated edge never changes a maximum) -> a pooling op with ``kernel``/``stride`` and no padding
    -> for average, a constant per-cell factor ``k / divisor`` (per axis; the factors multiply), which
    turns each window's sum / k into sum / divisor.

    ``after`` is chosen so that the plain pool yields exactly ``out_size`` cells.
    """

    op: str  # "avg" | "max"
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    out_size: tuple[int, ...]
    factors: tuple[tuple[float, ...], ...]  # per axis, per output cell: k / divisor (avg); () for max

    @property
    def padded(self) -> bool:
        """Whether a Pad step is needed."""
        return any(self.pads_before) or any(self.pads_after)

    @property
    def corrected(self) -> bool:
        """Whether the divisor correction is needed (some factor is not 1)."""
        return any(f != 1.0 for axis in self.factors for f in axis)

    def steps(self) -> list[str]:
        """The ONNX operators of this form, in order."""
        pool = "AveragePool" if self.op == "avg" else "MaxPool"
        return (["Pad"] if self.padded else []) + [pool] + (["Mul"] if self.corrected else [])


def explicit_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                  windows: tuple[tuple[Window, ...], ...]) -> ExplicitPool:
    """The explicit form of a pooling whose windows (per axis, as ``tf_windows``/``torch_windows`` give
    them) start at ``-before`` and step by the stride."""
    before, after, outs, factors = [], [], [], []
    for n, k, s, axis in zip(spatial, kernel, stride, windows):
        b, out = -axis[0].start, len(axis)
        before.append(b)
        outs.append(out)
        after.append(max((out - 1) * s + k - n - b, 0))
        if op == "avg":
            factors.append(tuple(k / w.divisor for w in axis))
    return ExplicitPool(op, tuple(kernel), tuple(stride), tuple(before), tuple(after), tuple(outs), tuple(factors))


@lru_cache(maxsize=4096)
def explicit_torch_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                        pads_before: tuple[int, ...], pads_after: tuple[int, ...], ceil_mode: bool,
                        count_include_pad: bool) -> ExplicitPool:
    """The explicit form of PyTorch/ONNX pooling with explicit pads and ``ceil_mode`` (divisors as
    ``torch_windows``: padding counted only with ``count_include_pad``, the overhang never)."""
    windows = tuple(
        torch_windows(n, k, s, b, e, ceil_mode, count_include_pad)
        for n, k, s, b, e in zip(spatial, kernel, stride, pads_before, pads_after)
    )
    return explicit_pool(op, spatial, kernel, stride, windows)


@dataclass(frozen=True)
class SameAxis:
    """How one axis of TF 'SAME'/'VALID' pooling maps onto a native pooling op."""

    n: int
    k: int
    s: int
    before: int
    after: int
    out: int

    @property
    def symmetric(self) -> bool:
        """Whether the axis pads as much before as after."""
        return self.before == self.after

    def ceil_mode_matches(self) -> bool:
        """Does ``pool(padding=before, ceil_mode=True, count_include_pad=False)`` give TF's windows?"""
        if 2 * self.before > self.k:  # PyTorch's limit on implicit padding
            return False
        if self.n + 2 * self.before < self.k:
            return False  # torch refuses a kernel larger than the padded input
        torch_w = torch_windows(self.n, self.k, self.s, self.before, self.before, True, False)
        return torch_w == tf_windows(self.n, self.k, self.s, "SAME")

    def ceil_portable(self, pads: int) -> bool:
        """The ceil_mode form with ``pads`` on each side computes the same everywhere: no last window that
        starts in the padding (ncnn and OpenVINO would return it as an extra cell)."""
        return not ceil_window_in_padding(self.n, self.k, self.s, pads, pads)

    def windows(self, padding: str) -> tuple[Window, ...]:
        """TF's windows for this axis under ``padding``."""
        return tf_windows(self.n, self.k, self.s, padding)


@dataclass(frozen=True)
class SamePlan:
    """TF-style pooling over 1-3 axes as portable ops, in order of preference:

    * ``plain``     -- no padding anywhere: one pooling op.
    * ``symmetric`` -- equal padding before and after on every axis: one pooling op with
      ``padding=before`` (average: ``count_include_pad=False``).
    * ``ceil``      -- ``padding=before`` with ``ceil_mode=True`` reproduces TF's windows on every axis
      (PyTorch never counts the ceil overhang): one pooling op.
    * ``explicit``  -- Pad (zeros for average, edge values for max), one pooling op without padding,
      and for average a constant per-cell correction k/real-cells (Mul).
    """

    op: str
    padding: str
    axes: tuple[SameAxis, ...]
    kind: str

    @property
    def kernel(self) -> tuple[int, ...]:
        """Kernel size per axis."""
        return tuple(a.k for a in self.axes)

    @property
    def stride(self) -> tuple[int, ...]:
        """Stride per axis."""
        return tuple(a.s for a in self.axes)

    @property
    def out_size(self) -> tuple[int, ...]:
        """Output size per axis."""
        return tuple(a.out for a in self.axes)

    def pool_args(self) -> tuple[tuple[int, ...], bool]:
        """``(padding per axis, ceil_mode)`` of the single pooling op of a ``plain``, ``symmetric`` or
        ``ceil`` plan (average pools also take ``count_include_pad=False``). A max ceil plan pads nothing:
        it is one only where no axis pads before (see ``plan_same``)."""
        if self.kind == "plain":
            return (0,) * len(self.axes), False
        if self.kind == "symmetric":
            return tuple(a.before for a in self.axes), False
        if self.kind == "ceil":
            return tuple(a.before if self.op == "avg" else 0 for a in self.axes), True
        raise PoolportError(f"a '{self.kind}' plan is Pad + pool (+ Mul), not one pooling op: use explicit().")

    def explicit(self) -> ExplicitPool:
        """This pooling as Pad + plain pool (+ divisor correction): see ``ExplicitPool``."""
        windows = tuple(a.windows(self.padding) for a in self.axes)
        return explicit_pool(self.op, tuple(a.n for a in self.axes), self.kernel, self.stride, windows)

    def onnx_ops(self) -> list[str]:
        """The ONNX operators this plan exports to."""
        if self.kind != "explicit":
            return ["AveragePool" if self.op == "avg" else "MaxPool"]
        return self.explicit().steps()

    def __str__(self) -> str:
        axes = ", ".join(f"{a.n}: k{a.k} s{a.s} pad ({a.before}, {a.after}) -> {a.out}" for a in self.axes)
        return f"TF '{self.padding}' {self.op} pool [{axes}]: {self.kind} ({' + '.join(self.onnx_ops())})"


@lru_cache(maxsize=4096)
def onnx_same_pads(n: int, k: int, s: int, auto_pad: str, d: int = 1) -> tuple[int, int]:
    """ONNX ``auto_pad`` SAME_UPPER / SAME_LOWER: ``(before, after)``. SAME_UPPER is TensorFlow's 'SAME'
    (the extra cell at the end); SAME_LOWER puts it at the start."""
    before, after, _ = same_padding(n, k, s, d)
    return (before, after) if auto_pad == "SAME_UPPER" else (after, before)


@lru_cache(maxsize=4096)
def plan_same(op: str, in_size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
              padding: str = "SAME") -> SamePlan:
    """Plan TF-style ``padding`` ('SAME' or 'VALID') ``op`` pooling over ``in_size``; see ``SamePlan``."""
    if op not in ("avg", "max"):
        raise PoolportError(f"op must be 'avg' or 'max', got {op!r}.")
    padding = padding.upper() if isinstance(padding, str) else padding
    if padding not in ("SAME", "VALID"):
        raise PoolportError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
    if not (len(in_size) == len(kernel) == len(stride)):
        raise PoolportError(f"input {in_size}, kernel {kernel} and stride {stride} need one entry per axis.")
    axes = []
    for n, k, s in zip(in_size, kernel, stride):
        if padding == "SAME":
            before, after, out = same_padding(n, k, s)
        else:
            before, after, out = 0, 0, valid_output(n, k, s)
        axes.append(SameAxis(n, k, s, before, after, out))
    axes = tuple(axes)
    # ATen's 3d pooling checks the *unpadded* input against the kernel: implicit padding cannot help there
    implicit_ok = len(axes) < 3 or all(a.n >= a.k for a in axes)
    if all(a.before == a.after == 0 for a in axes):
        kind = "plain"
    elif not implicit_ok:
        kind = "explicit"
    elif all(a.symmetric and 2 * a.before <= a.k for a in axes) and (len(axes) < 3 or op == "max"):
        # MNN 3.6 divides 3-D average pooling with pads wrongly (measured): 3-D average takes Pad + plain pool
        kind = "symmetric"
    elif (len(axes) < 3 and all(a.ceil_mode_matches() for a in axes) and (op == "avg" or all(a.before == 0 for a in axes))
          and all(a.ceil_portable(a.before if op == "avg" else 0) for a in axes)):
        # never at 3-D: MNN ignores 3-D ceil_mode (wrong shape) and onnx2tf refuses 3-D AveragePool with it
        # measured portable: AveragePool pads + ceil_mode + count_include_pad=0, MaxPool ceil_mode without pads
        kind = "ceil"
    else:
        kind = "explicit"
    return SamePlan(op, padding, axes, kind)


@dataclass(frozen=True)
class TapPool:
    """Pooling with dilations (or any pooling) written as its kernel taps, for runtimes that refuse or
    miscompute dilated pooling: ``Pad(before, after)`` (zeros for average; the lowest finite value for max,
    since a dilated window need not hold the edge cell a replicated edge would copy), then per kernel tap
    one contiguous ``Slice`` (start ``j * dilation`` per axis), combined by ``Max`` or ``Sum``, subsampled
    by a 1-wide ``MaxPool`` with the stride (where a stride is not 1), and for average a constant per-cell
    factor ``1 / divisor`` (per axis; the factors multiply).

    The taps of output cell i on an axis are ``i * s - before + j * d`` for j < k; the divisor counts the
    real taps, or with ``count_include_pad`` the taps inside the padded extent (never the ceil overhang).
    """

    op: str  # "avg" | "max"
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads_before: tuple[int, ...]
    pads_after: tuple[int, ...]
    out_size: tuple[int, ...]
    factors: tuple[tuple[float, ...], ...]  # per axis, per output cell: 1 / divisor (avg); () for max

    def taps(self) -> list[tuple[int, ...]]:
        """Each tap's start per axis in the padded input, in row-major order."""
        starts = [()]
        for k, d in zip(self.kernel, self.dilation):
            starts = [t + (j * d,) for t in starts for j in range(k)]
        return starts

    def steps(self) -> list[str]:
        """The ONNX operators of this form."""
        n = len(self.taps())
        pad = ["Pad"] if any(self.pads_before) or any(self.pads_after) else []
        combine = [] if n == 1 else ["Max" if self.op == "max" else "Sum"]
        subsample = ["MaxPool (1-wide, strided)"] if any(s != 1 for s in self.stride) else []
        return pad + [f"Slice x{n}"] + combine + subsample + (["Mul"] if self.op == "avg" else [])


@lru_cache(maxsize=4096)
def tap_pool(op: str, spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...], pads_before: tuple[int, ...], pads_after: tuple[int, ...], ceil_mode: bool,
             count_include_pad: bool) -> TapPool:
    """The tap form of ONNX pooling with dilations, explicit pads and ``ceil_mode``; see ``TapPool``."""
    outs, afters, factors = [], [], []
    for n, k, s, d, b, e in zip(spatial, kernel, stride, dilation, pads_before, pads_after):
        check_pool_args(n, k, s, "pooling", d)
        extent = (k - 1) * d + 1
        out = torch_output(n, extent, s, b, e, ceil_mode)
        outs.append(out)
        afters.append(max((out - 1) * s + extent - n - b, 0))
        if op == "avg":
            divisors = []
            for i in range(out):
                taps = [i * s - b + j * d for j in range(k)]
                lo, hi = (-b, n + e) if count_include_pad else (0, n)
                divisors.append(sum(lo <= t < hi for t in taps))
            if min(divisors) == 0:
                raise PoolportError(f"pooling: a dilated average window over {n} cells holds no cell to divide by.")
            factors.append(tuple(1.0 / c for c in divisors))
    return TapPool(op, tuple(kernel), tuple(stride), tuple(dilation), tuple(pads_before), tuple(afters),
                   tuple(outs), tuple(factors))
