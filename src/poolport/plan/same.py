"""TensorFlow 'SAME' and 'VALID' pooling, per axis, and the plan that maps it onto native pooling ops
(``plan_same``). Pure integers.

* TensorFlow 'SAME': out = ceil(n / s); total pad = max((out - 1) * s + k - n, 0), total // 2 before,
  the rest after; average divides by the number of real cells; max ignores padding.
* TensorFlow 'VALID': out = ceil((n - k + 1) / s), no padding.
* ONNX ``auto_pad`` SAME_UPPER is TensorFlow's 'SAME'; SAME_LOWER puts the extra cell at the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError
from .explicit import ExplicitPool, explicit_pool
from .pads import Window, ceil_window_in_padding, check_pool_args, torch_windows
from .pooling import ONNX_POOL


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
            return [ONNX_POOL[self.op]]
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
