"""The per-axis plan: how to compute PyTorch's adaptive windows along one axis with plain pooling.

In order of preference:

* ``identity`` -- ``n == o``: nothing to do.
* ``global``   -- ``o == 1``: the whole axis is one window (a kernel the size of the axis).
* ``uniform``  -- every window has one length ``k`` and consecutive windows start ``s`` apart:
  one pooling op with kernel ``k``, stride ``s`` and no padding. This covers far more than
  ``n % o == 0`` (8 -> 7 is kernel 2 stride 1, 13 -> 6 is kernel 3 stride 2).
* ``runs``     -- otherwise: the windows grouped into maximal runs of equal length and constant
  step; each run is one Slice plus one no-padding pooling op with stride = step, and the runs are
  concatenated along the axis. Output larger than the input (``o > n``) lands here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .windows import Window, adaptive_windows, check_axis_sizes


@dataclass(frozen=True)
class Run:
    """``count`` consecutive output cells whose windows all have length ``kernel`` and start
    ``stride`` apart, the first at ``start``. Computed as ``pool(x[start:stop], kernel, stride)``.

    ``stride == 0`` is a *repeat* (only when the output is larger than the input): ``count``
    identical windows, pooled once and concatenated ``count`` times.
    """

    start: int
    kernel: int
    stride: int
    count: int

    @property
    def stop(self) -> int:
        """One past the last input the run reads."""
        return self.start + (self.count - 1) * self.stride + self.kernel

    @property
    def pool_stride(self) -> int:
        """The stride of the pooling op (a repeat pools a single window)."""
        return self.stride if self.stride > 0 else self.kernel

    @property
    def copies(self) -> int:
        """How many times the pooled result enters the Concat."""
        return 1 if self.stride > 0 else self.count

    def windows(self) -> tuple[Window, ...]:
        """The run's windows as ``(start, stop)`` pairs."""
        return tuple(
            (self.start + j * self.stride, self.start + j * self.stride + self.kernel)
            for j in range(self.count)
        )

    def __str__(self) -> str:
        if self.copies > 1:
            return f"slice [{self.start}:{self.stop}) -> pool k={self.kernel} -> 1 out, repeated {self.count}x"
        return (
            f"slice [{self.start}:{self.stop}) -> pool k={self.kernel} s={self.stride} "
            f"-> {self.count} out"
        )


@dataclass(frozen=True)
class AxisPlan:
    """How one axis of ``n`` inputs pools to ``o`` outputs: ``kind`` and the runs (see the module docstring)."""

    n: int
    o: int
    kind: str  # "identity" | "global" | "uniform" | "runs"
    runs: tuple[Run, ...]  # one run for identity/global/uniform; several for "runs"

    @property
    def windows(self) -> tuple[Window, ...]:
        """PyTorch's windows for this axis."""
        return adaptive_windows(self.n, self.o)

    @property
    def single_op(self) -> bool:
        """True when the whole axis is one pooling op with no slicing (everything but ``runs``)."""
        return self.kind != "runs"

    @property
    def kernel(self) -> int:
        """Kernel of the single op (meaningful when ``single_op``)."""
        return self.runs[0].kernel

    @property
    def stride(self) -> int:
        """Stride of the single op (meaningful when ``single_op``)."""
        return self.runs[0].stride

    def __str__(self) -> str:
        if self.kind == "identity":
            return f"{self.n} -> {self.o}: identity"
        if self.kind == "global":
            return f"{self.n} -> {self.o}: global (one window over the whole axis)"
        if self.kind == "uniform":
            return f"{self.n} -> {self.o}: uniform, one pool k={self.kernel} s={self.stride}"
        body = "; ".join(str(r) for r in self.runs)
        runs = f"{len(self.runs)} run{'' if len(self.runs) == 1 else 's'}"
        return f"{self.n} -> {self.o}: {runs}: {body}"


def group_runs(windows: tuple[Window, ...]) -> tuple[Run, ...]:
    """Greedy maximal runs of windows with equal length and a constant step (0 = repeats)."""
    runs: list[Run] = []
    i = 0
    while i < len(windows):
        a, b = windows[i]
        k = b - a
        count, step = 1, 0
        j = i + 1
        while j < len(windows):
            c, d = windows[j]
            this_step = c - windows[j - 1][0]
            if d - c != k or (count > 1 and this_step != step):
                break
            step = this_step
            count += 1
            j += 1
        # a single window pools with stride == kernel (any stride gives one output)
        runs.append(Run(start=a, kernel=k, stride=step if count > 1 else k, count=count))
        i = j
    return tuple(runs)


@lru_cache(maxsize=4096)
def plan_axis(n: int, o: int) -> AxisPlan:
    """Plan one axis of adaptive pooling from ``n`` inputs to ``o`` outputs."""
    check_axis_sizes(n, o)
    if n == o:
        return AxisPlan(n, o, "identity", (Run(0, 1, 1, o),))
    if o == 1:
        return AxisPlan(n, o, "global", (Run(0, n, n, 1),))
    runs = group_runs(adaptive_windows(n, o))
    if len(runs) == 1 and runs[0].stride > 0:
        return AxisPlan(n, o, "uniform", runs)
    return AxisPlan(n, o, "runs", runs)
