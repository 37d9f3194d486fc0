"""Fractional max pooling (``F.fractional_max_pool2d/3d``) with fixed ``_random_samples``, as plain max
pooling on irregular window starts. Pure integers (and torch's float arithmetic for the starts, emulated).

torch draws each (batch row, channel) plane's windows from one sample ``u`` per axis (``_random_samples``,
shape (N, C, d), uniform in [0, 1) and fresh on every call unless given). Per axis of ``n`` inputs, ``o``
outputs and kernel ``k``, window ``i`` is ``[start_i, start_i + k)`` with (torch's ``generate_intervals``)::

    alpha   = (n - k) / (o - 1)
    start_i = int((i + u) * alpha) - int(u * alpha)     for i < o - 1
    start_{o-1} = n - k

computed in the input's dtype on the CPU (float32 for float32, float16 for float16 with each operation
rounded, ...; on CUDA half and bfloat16 in float32), so ``fractional_starts`` rounds as torch does. With the
samples fixed the output is deterministic: per plane, max pooling with kernel ``k`` on those starts. The
plan groups the planes whose window lists are equal; per group the windows are grouped into runs of
uniform stride (``Run`` of ``plan.axis``: Slice + MaxPool without padding, Concat along the axis), written
as an adaptive ``PoolPlan`` so that ``backend.execute`` walks it as it walks adaptive plans. Each group's
pooling runs over every plane (a pooling of all channels: onnx2tf misreads the layout of a pooling on a
channel Slice of one plane, measured), and the output is the Concat of channel Slices of the groups'
results, in plane order ("pieces"). Every step is a Slice, a MaxPool without padding, a Concat or
(batch > 1) a Reshape.

Which sample drives which axis: ``SAMPLE_AXES`` (2-D: the first sample is W's, the second H's; 3-D: T, H, W).
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError
from .axis import AxisPlan, Run
from .divisor import count_steps
from .pooling import Pass, PoolPlan, axis_names, tuple_str

# the float arithmetic torch's generate_intervals runs in, by its name (the dtype, or float32 for half
# precision on CUDA, whose kernel computes in its accumulation type)
ARITHMETIC = ("float64", "float32", "float16", "bfloat16")

# per spatial axis (in order D/H/W), which entry of a plane's samples torch uses for it
SAMPLE_AXES = {2: (1, 0), 3: (0, 1, 2)}


def _f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def _f16(v: float) -> float:
    return struct.unpack("e", struct.pack("e", _f32(v)))[0]


def _bf16(v: float) -> float:
    bits = struct.unpack("I", struct.pack("f", _f32(v)))[0]
    if (bits & 0x7F800000) != 0x7F800000:  # round to nearest even on the upper 16 bits (finite values)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFFFFFF
    return struct.unpack("f", struct.pack("I", bits & 0xFFFF0000))[0]


_ROUND = {"float64": float, "float32": _f32, "float16": _f16, "bfloat16": _bf16}


@lru_cache(maxsize=65536)
def fractional_starts(sample: float, n: int, o: int, k: int, arithmetic: str = "float32") -> tuple[int, ...]:
    """torch's window starts along one axis: ``o`` windows of ``k`` cells over ``n`` inputs for the sample
    ``sample``, each operation rounded to ``arithmetic`` (one of ``ARITHMETIC``) as torch's kernel does.

    Raises:
        PoolportError: an unknown ``arithmetic``, a non-finite sample.
    """
    if arithmetic not in _ROUND:
        raise PoolportError(f"fractional max pooling: arithmetic must be one of {ARITHMETIC}, got {arithmetic!r}.")
    if not math.isfinite(sample):
        raise PoolportError(f"fractional max pooling: a random sample is {sample}; torch's windows are undefined "
                            f"there. Give _random_samples finite values in [0, 1).")
    r = _ROUND[arithmetic]
    starts = [0] * o
    if o > 1:
        alpha = r(r(n - k) / r(o - 1))
        u = r(sample)
        first = int(r(u * alpha))
        for i in range(o - 1):
            starts[i] = int(r(r(r(i) + u) * alpha)) - first
    if o > 0:
        starts[o - 1] = n - k
    return tuple(starts)


def start_runs(starts: tuple[int, ...], k: int) -> tuple[Run, ...]:
    """Windows ``[s, s + k)`` at ``starts`` as maximal runs of one positive stride of at most ``k`` (a window
    that does not follow its predecessor at the run's stride starts a new run; a single window pools with
    stride k). Measured: LiteRT (onnx2tf) turns +-inf into +-3.4e38 in a MaxPool whose stride exceeds its
    kernel, and OpenVINO (-3.4e38) and MNN (-2^24) return a finite value for a MaxPool window of -inf cells
    only; windows further apart than ``k`` are therefore runs of their own, and one-cell windows
    (``k == 1``) become Slices without a MaxPool."""
    runs: list[Run] = []
    i = 0
    while i < len(starts):
        j, step = i + 1, 0
        while j < len(starts):
            d = starts[j] - starts[j - 1]
            if d <= 0 or d > k or (step and d != step):
                break
            step, j = d, j + 1
        runs.append(Run(starts[i], k, step if j - i > 1 else k, j - i))
        i = j
    return tuple(runs)


def _axis_plan(n: int, k: int, starts: tuple[int, ...]) -> AxisPlan:
    o = len(starts)
    runs = start_runs(starts, k)
    if k == 1 and starts == tuple(range(n)):
        return AxisPlan(n, o, "identity", (Run(0, 1, 1, o),))
    if k == n and o == 1:
        return AxisPlan(n, o, "global", (Run(0, n, n, 1),))
    # one run from cell 0 to the last window: a single pooling op over the whole axis
    if len(runs) == 1 and runs[0].start == 0 and runs[0].stop == n:
        return AxisPlan(n, o, "uniform", runs)
    return AxisPlan(n, o, "runs", runs)


def _axis_pass(sizes: tuple[int, ...], axis: int, plan: AxisPlan) -> PoolPlan:
    """One pass over ``axis`` of a tensor of spatial ``sizes`` (the other axes untouched), as an adaptive
    ``PoolPlan`` that ``backend.execute`` walks: identity, a whole-plane pool, one pool, or the runs."""
    axes = tuple(plan if i == axis else AxisPlan(n, n, "identity", (Run(0, 1, 1, n),)) for i, n in enumerate(sizes))
    out = tuple(plan.o if i == axis else n for i, n in enumerate(sizes))
    if plan.kind == "identity":
        return PoolPlan("max", sizes, out, axes, "identity", ())
    if all(a.o == 1 for a in axes) and plan.kind == "global":
        return PoolPlan("max", sizes, out, axes, "global", ())
    if plan.kind != "runs":
        return PoolPlan("max", sizes, out, axes, "single", (Pass(None, (), (axis,)),))
    return PoolPlan("max", sizes, out, axes, "passes", (Pass(axis, plan.runs, ()),))


@dataclass(frozen=True)
class FractionalGroup:
    """Planes (indices ``n * C + c``, ascending) whose windows are equal: per axis the window ``starts``,
    and ``passes``, one max pooling pass per axis in the plan's ``order`` (a ``PoolPlan`` each)."""

    starts: tuple[tuple[int, ...], ...]
    planes: tuple[int, ...]
    passes: tuple[PoolPlan, ...]

    def segments(self) -> tuple[tuple[int, int], ...]:
        """The group's planes as ``(first, count)`` runs of consecutive planes."""
        out: list[list[int]] = []
        for p in self.planes:
            if out and out[-1][0] + out[-1][1] == p:
                out[-1][1] += 1
            else:
                out.append([p, 1])
        return tuple((a, b) for a, b in out)


@dataclass(frozen=True)
class Piece:
    """``count`` consecutive planes of the output from plane ``first``: those planes of group ``group``'s
    result (its pooling of every plane)."""

    group: int
    first: int
    count: int


@dataclass(frozen=True)
class FractionalPlan:
    """``fractional_max_pool{d}d`` with fixed samples on ``batch`` x ``channels`` planes of ``in_size``;
    see the module's docstring. ``print(plan)`` shows it; ``summary()``/``op_counts()`` are what reports
    print; the torch backend is ``backend.torch_pools.apply_fractional``.

    The axes are pooled one pass each, in ``order``; an operation that several groups ask for on the same
    tensor (a pass over equal windows, one run of a pass) is written once, so groups share what they have in
    common (the backend's ``SharedOps``; ``steps`` counts the same)."""

    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    out_size: tuple[int, ...]
    batch: int
    channels: int
    arithmetic: str
    order: tuple[int, ...]  # the axes in the order they are pooled (most reduction first)
    groups: tuple[FractionalGroup, ...]
    pieces: tuple[Piece, ...]  # the output planes in order, as slices of the groups' outputs
    kind: str = "fractional"
    style: str = "default"  # one form for every target

    @property
    def planes(self) -> int:
        return self.batch * self.channels

    @property
    def folded(self) -> bool:
        """Whether the batch is folded into the channels by a Reshape (batch > 1): the planes are one axis."""
        return self.batch > 1

    def steps(self) -> list[str]:
        """The ONNX operators with their counts (``"Op xN"``): each distinct operation once (``_walk``)."""
        nodes: dict = {}
        for group in self.groups:
            x = "input"
            for one in group.passes:
                x = _walk(one, x, nodes)
        counts = Counter(key[0] for key in nodes)
        steps = ["Reshape"] if self.folded else []
        steps += [f"{op} x{counts[op]}" for op in ("Slice", "MaxPool", "Concat") if counts[op]]
        if len(self.pieces) > 1:
            steps += [f"Slice x{len(self.pieces)}", "Concat"]
        steps += ["Reshape"] if self.folded else []
        return steps

    def op_counts(self) -> Counter:
        """The ONNX operators with their counts."""
        return count_steps(self.steps())

    def summary(self) -> str:
        """One line, e.g. ``k3x3 -> 5x5, 4 window groups over 8 planes, 6 pieces``."""
        return (f"k{'x'.join(map(str, self.kernel))} -> {tuple_str(self.out_size)}, {len(self.groups)} window "
                f"group{'' if len(self.groups) == 1 else 's'} over {self.planes} plane{'' if self.planes == 1 else 's'}"
                f", {len(self.pieces)} piece{'' if len(self.pieces) == 1 else 's'}")

    def __str__(self) -> str:
        names = axis_names(len(self.in_size))
        lines = [f"fractional max pool {tuple_str(self.in_size)} -> {tuple_str(self.out_size)} kernel "
                 f"{tuple_str(self.kernel)} ({self.arithmetic} windows): {self.summary()}"]
        for g, group in enumerate(self.groups):
            planes = ", ".join(f"{a}" if b == 1 else f"{a}-{a + b - 1}" for a, b in group.segments())
            lines.append(f"  group {g} (planes {planes}):")
            for a, plan in zip(self.order, group.passes):
                lines.append(f"    axis {names[a]}: starts {list(group.starts[a])}: {plan.axes[a]}")
        lines.append(f"  operators: {', '.join(self.steps())}")
        return "\n".join(lines)


def _walk(plan: PoolPlan, x, nodes: dict):
    """``backend.execute``'s walk of one axis pass over the tensor named ``x``, each operation named by what
    it does to what (``("Slice", x, dim, start, stop)``, ...) and recorded once in ``nodes``; the result's
    name. An identity pass is the tensor itself."""
    def node(key):
        nodes.setdefault(key, None)
        return key

    if plan.kind == "identity":
        return x
    if plan.kind == "global":
        return node(("MaxPool", x, plan.in_size, plan.in_size))
    p = plan.passes[0]
    if plan.kind == "single":
        return node(("MaxPool", x, *p.pool_params(plan.axes, None)))
    dim, n = 2 + p.runs_axis, plan.axes[p.runs_axis].n
    pieces = []
    for run in p.runs:
        part = x if run.start == 0 and run.stop == n else node(("Slice", x, dim, run.start, run.stop))
        if p.pools(plan.axes, run):
            part = node(("MaxPool", part, *p.pool_params(plan.axes, run)))
        pieces.append(part)
    return node(("Concat", tuple(pieces), dim)) if len(pieces) > 1 else pieces[0]


def check_fractional(where: str, spatial: tuple[int, ...], kernel: tuple[int, ...], out: tuple[int, ...]) -> None:
    """torch's argument checks: a positive kernel, a positive output size, ``out + k - 1 <= n`` per axis
    (2-D; 3-D: ``<``, as torch's kernel checks).

    Raises:
        PoolportError: naming ``where`` and the sizes.
    """
    for name, n, k, o in zip(axis_names(len(spatial)), spatial, kernel, out):
        if k <= 0:
            raise PoolportError(f"{where}: kernel_size must be positive, got {kernel}; torch refuses it too.")
        if o <= 0:
            raise PoolportError(f"{where}: output size {out} has an empty axis; poolport writes no empty output "
                                f"(torch returns an empty tensor). Give every axis at least one cell.")
        if o + k - 1 > n or (len(spatial) == 3 and o + k - 1 == n):
            rule = "<" if len(spatial) == 3 else "<="
            raise PoolportError(f"{where}: axis {name}: {o} windows of {k} cells over {n} inputs: torch requires "
                                f"output + kernel - 1 {rule} input (in {len(spatial)}-D) and refuses it too.")


@lru_cache(maxsize=1024)
def fractional_plan(spatial: tuple[int, ...], kernel: tuple[int, ...], out_size: tuple[int, ...],
                    samples: tuple[tuple[float, ...], ...], channels: int,
                    arithmetic: str = "float32") -> FractionalPlan:
    """The plan of ``fractional_max_pool{d}d`` on ``spatial`` with ``samples``: one tuple of ``d`` samples
    per plane (``n * channels + c``, i.e. ``_random_samples[:N].reshape(-1, d)``), rounded as
    ``arithmetic``.

    Raises:
        PoolportError: torch's argument checks (``check_fractional``), a sample count that is not a
            multiple of ``channels``, a non-finite sample, or windows outside the input (samples far
            outside [0, 1)).
    """
    d = len(spatial)
    where = f"fractional_max_pool{d}d"
    if d not in SAMPLE_AXES or len(kernel) != d or len(out_size) != d:
        raise PoolportError(f"{where}: expected 2 or 3 spatial sizes, kernel and output sizes alike; got "
                            f"{spatial}, {kernel}, {out_size}.")
    check_fractional(where, spatial, kernel, out_size)
    if channels <= 0 or not samples or len(samples) % channels or any(len(s) != d for s in samples):
        raise PoolportError(f"{where}: expected {d} samples per plane for {channels} channels, got "
                            f"{len(samples)} planes of {sorted({len(s) for s in samples})}.")
    keys: dict[tuple[tuple[int, ...], ...], list[int]] = {}
    for plane, sample in enumerate(samples):
        key = tuple(fractional_starts(float(sample[j]), n, o, k, arithmetic)
                    for j, n, o, k in zip(SAMPLE_AXES[d], spatial, out_size, kernel))
        for name, n, k, s in zip(axis_names(d), spatial, kernel, key):
            if min(s) < 0 or max(s) > n - k:
                raise PoolportError(
                    f"{where}: plane {plane}'s sample {sample} puts a window of axis {name} at {min(s)}..{max(s) + k} "
                    f"outside its {n} inputs (torch reads outside the tensor there). Give _random_samples values "
                    f"in [0, 1).")
        if key not in keys:
            keys[key] = []
        keys[key].append(plane)
    order = tuple(sorted(range(d), key=lambda a: (out_size[a] / spatial[a], a)))
    groups = []
    group_of = [0] * len(samples)
    for g, (key, planes) in enumerate(keys.items()):
        sizes, passes = spatial, []
        for a in order:
            passes.append(_axis_pass(sizes, a, _axis_plan(spatial[a], kernel[a], key[a])))
            sizes = passes[-1].out_size
        groups.append(FractionalGroup(key, tuple(planes), tuple(passes)))
        for p in planes:
            group_of[p] = g
    pieces: list[Piece] = []
    for p in range(len(samples)):
        if pieces and pieces[-1].group == group_of[p]:
            pieces[-1] = Piece(group_of[p], pieces[-1].first, pieces[-1].count + 1)
        else:
            pieces.append(Piece(group_of[p], p, 1))
    return FractionalPlan(spatial, kernel, out_size, len(samples) // channels, channels, arithmetic, order,
                          tuple(groups), tuple(pieces))
