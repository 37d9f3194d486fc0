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
as an adaptive ``PoolPlan`` so that ``backend.execute`` walks it as it walks adaptive plans. The planes
of a group are gathered by channel Slices + Concat, and the groups' outputs put back in plane order the
same way. Every step is a Slice, a MaxPool without padding, a Concat or (batch > 1) a Reshape.

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
    """Windows ``[s, s + k)`` at ``starts`` as maximal runs of one positive stride (a window that does not
    follow its predecessor at the run's stride starts a new run; a single window pools with stride k)."""
    runs: list[Run] = []
    i = 0
    while i < len(starts):
        j, step = i + 1, 0
        while j < len(starts):
            d = starts[j] - starts[j - 1]
            if d <= 0 or (step and d != step):
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


def _pool_plan(in_size: tuple[int, ...], out_size: tuple[int, ...], axes: tuple[AxisPlan, ...]) -> PoolPlan:
    """``axes`` composed into passes as ``plan.pooling.plan_pool`` composes adaptive axes (the single-op
    axes folded into the first pass; the runs axes by how much they shrink the tensor)."""
    if all(a.kind == "identity" for a in axes):
        return PoolPlan("max", in_size, out_size, axes, "identity", ())
    if all(a.kind in ("global", "identity") and a.o == 1 for a in axes):
        return PoolPlan("max", in_size, out_size, axes, "global", ())
    single = tuple(i for i, a in enumerate(axes) if a.single_op and a.kind != "identity")
    runs_axes = sorted((i for i, a in enumerate(axes) if a.kind == "runs"), key=lambda i: (axes[i].o / axes[i].n, i))
    if not runs_axes:
        return PoolPlan("max", in_size, out_size, axes, "single", (Pass(None, (), single),))
    passes = tuple(Pass(axis, axes[axis].runs, single if j == 0 else ()) for j, axis in enumerate(runs_axes))
    return PoolPlan("max", in_size, out_size, axes, "passes", passes)


@dataclass(frozen=True)
class FractionalGroup:
    """Planes (indices ``n * C + c``, ascending) whose windows are equal: per axis the window ``starts``,
    and ``pool``, the max pooling on them (a ``PoolPlan`` whose axes hold these starts' runs)."""

    starts: tuple[tuple[int, ...], ...]
    planes: tuple[int, ...]
    pool: PoolPlan

    def segments(self) -> tuple[tuple[int, int], ...]:
        """The group's planes as ``(first, count)`` runs of consecutive planes."""
        return _segments(self.planes)


def _segments(planes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for p in planes:
        if out and out[-1][0] + out[-1][1] == p:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return tuple((a, b) for a, b in out)


@dataclass(frozen=True)
class Piece:
    """``count`` consecutive planes of the output, from ``first``: rows ``offset:offset + count`` of group
    ``group``'s output."""

    group: int
    first: int
    count: int
    offset: int


@dataclass(frozen=True)
class FractionalPlan:
    """``fractional_max_pool{d}d`` with fixed samples on ``batch`` x ``channels`` planes of ``in_size``;
    see the module's docstring. ``print(plan)`` shows it; ``summary()``/``op_counts()`` are what reports
    print; the torch backend is ``backend.torch_pools.apply_fractional``."""

    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    out_size: tuple[int, ...]
    batch: int
    channels: int
    arithmetic: str
    groups: tuple[FractionalGroup, ...]
    pieces: tuple[Piece, ...]  # the output planes in order, as slices of the groups' outputs
    kind: str = "fractional"
    style: str = "default"  # one form for every target (the groups' plans are written in the default style)

    @property
    def planes(self) -> int:
        return self.batch * self.channels

    @property
    def folded(self) -> bool:
        """Whether the batch is folded into the channels by a Reshape (batch > 1): the planes are one axis."""
        return self.batch > 1

    def group_input(self, g: int) -> tuple[tuple[int, int], ...]:
        """The ``(first, count)`` channel slices (of the planes) that make group ``g``'s input; one slice
        covering every plane means the input itself."""
        return self.groups[g].segments()

    def group_output_sliced(self, g: int) -> bool:
        """Whether group ``g``'s output is sliced into pieces (it is more than one piece)."""
        return sum(1 for p in self.pieces if p.group == g) > 1

    def steps(self) -> list[str]:
        """The ONNX operators with their counts, in the order the backend asks for them (``"Op xN"``)."""
        steps = ["Reshape"] if self.folded else []
        for g, group in enumerate(self.groups):
            segs = self.group_input(g)
            if segs != ((0, self.planes),):
                steps.append(f"Slice x{len(segs)}")
                steps += ["Concat"] if len(segs) > 1 else []
            counts = _count_pool(group.pool, self.planes)
            steps += [f"{op} x{n}" for op, n in sorted(counts.items())]
            if self.group_output_sliced(g):
                steps.append(f"Slice x{sum(1 for p in self.pieces if p.group == g)}")
        steps += ["Concat"] if len(self.pieces) > 1 else []
        steps += ["Reshape"] if self.folded else []
        return steps

    def op_counts(self) -> Counter:
        """The ONNX operators with their counts."""
        from .divisor import count_steps

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
            for name, a, s in zip(names, group.pool.axes, group.starts):
                lines.append(f"    axis {name}: starts {list(s)}: {a}")
        lines.append(f"  operators: {', '.join(self.steps())}")
        return "\n".join(lines)


def _count_pool(plan: PoolPlan, planes: int) -> Counter:
    """The operators ``backend.execute`` writes for ``plan`` (counted by walking it, as the counting
    backend does; plan/ cannot import the backend, so the walk is mirrored here on the runs)."""
    counts: Counter = Counter()
    if plan.kind == "identity":
        counts["Identity"] += 1
        return counts
    if plan.kind == "global":
        counts["MaxPool"] += 1
        return counts
    for p in plan.passes:
        if p.runs_axis is None:
            counts["MaxPool"] += 1
            continue
        n = plan.axes[p.runs_axis].n
        for run in p.runs:
            if not (run.start == 0 and run.stop == n):
                counts["Slice"] += 1
            if p.pools(plan.axes, run):
                counts["MaxPool"] += 1
        counts["Concat"] += 1 if len(p.runs) > 1 else 0
    return counts


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
    groups = []
    group_of = [0] * len(samples)
    offset_in = [0] * len(samples)
    for g, (key, planes) in enumerate(keys.items()):
        axes = tuple(_axis_plan(n, k, s) for n, k, s in zip(spatial, kernel, key))
        groups.append(FractionalGroup(key, tuple(planes), _pool_plan(spatial, out_size, axes)))
        for i, p in enumerate(planes):
            group_of[p], offset_in[p] = g, i
    pieces: list[Piece] = []
    for p in range(len(samples)):
        last = pieces[-1] if pieces else None
        if last and last.group == group_of[p] and last.offset + last.count == offset_in[p]:
            pieces[-1] = Piece(last.group, last.first, last.count + 1, last.offset)
        else:
            pieces.append(Piece(group_of[p], p, 1, offset_in[p]))
    return FractionalPlan(spatial, kernel, out_size, len(samples) // channels, channels, arithmetic,
                          tuple(groups), tuple(pieces))
