"""Dynamic input sizes for ``export_onnx``: the caller's ``dynamic_shapes`` in torch.onnx.export's own
format, translated for each exporter, and the other sizes verification runs at.

Accepted: a tuple/list with one entry per positional argument, or a dict keyed by ``forward``'s parameter
names; each entry ``None`` (static), a dict ``{axis: Dim or name}`` or a list/tuple with one ``Dim``/name/
``None`` per axis. A ``torch.export.Dim`` carries its range; a name is dynamic from 1 up. The same name on
two axes means the same size. A derived ``Dim`` (``32 * h``, ``2 * h + 1``: torch.export's ``A * root + B``)
allows only those sizes: verification picks them, and axes derived from one root change together.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ..errors import PoolportError
from ..plan.pooling import plan_pool

UNBOUNDED = 1 << 16  # upper bound given to a name's Dim, and of the sizes verification picks
VERIFIED_SIZES = 4  # other sizes a dynamic model is verified at (the rest of those picked are spares)


@dataclass(frozen=True)
class DynamicAxis:
    """Axis ``axis`` of tensor input ``input`` (its position among the tensor arguments) is dynamic."""

    input: int
    axis: int
    name: str
    min: int
    max: int
    dim: object = None  # the caller's torch.export.Dim, if one was given
    fixed: bool = False  # the exporter made the axis static (at ``min`` == ``max``)
    step: int = 1  # the sizes allowed are ``step * k + offset`` (a derived Dim: ``32 * h``)
    offset: int = 0
    root: str = ""  # the name of the Dim the size derives from: axes with one root change together

    @property
    def spatial(self) -> bool:
        return self.axis >= 2

    @property
    def group(self) -> str:
        """Axes of one group take their sizes together (from one root value)."""
        return self.root or self.name

    def k_range(self) -> tuple[int, int]:
        """The root values ``k`` whose size ``step * k + offset`` lies in ``[min, max]`` (empty: lo > hi)."""
        return -((self.offset - self.min) // self.step), (self.max - self.offset) // self.step

    def size_at(self, k: int) -> int:
        """The axis's size for root value ``k``."""
        return self.step * k + self.offset

    def k_of(self, size: int) -> int:
        """The root value whose size is nearest ``size`` (within ``k_range``)."""
        lo, hi = self.k_range()
        return min(max(round((size - self.offset) / self.step), lo), hi)

    def allows(self, size: int) -> bool:
        """Whether ``size`` is one of the axis's sizes."""
        return self.min <= size <= self.max and (size - self.offset) % self.step == 0

    def __str__(self) -> str:
        where = f"input {self.input} axis {self.axis}"
        if self.fixed:
            return f"{where}: fixed at {self.min} by the exporter"
        return f"{where}: {self.name} in [{self.min}, {self.max}]" + (f" step {self.step}" if self.step > 1 else "")


def _dim_range(dim) -> tuple[int, int]:
    lo, hi = getattr(dim, "min", 1), getattr(dim, "max", UNBOUNDED)
    lo = 1 if not isinstance(lo, int) else max(lo, 1)
    hi = UNBOUNDED if not isinstance(hi, int) or hi > UNBOUNDED else hi
    return lo, hi


def _check_example_in_range(dim, name: str, position: int, axis: int, size: int) -> None:
    """A ``Dim`` whose declared range leaves out the example's size: torch.export refuses such a call
    (and the range would claim sizes the example does not show), so say so before exporting."""
    lo, hi = getattr(dim, "min", None), getattr(dim, "max", None)
    below = isinstance(lo, int) and size < lo
    above = isinstance(hi, int) and size > hi
    if below or above:
        declared = f"[{lo if isinstance(lo, int) else 0}, {hi if isinstance(hi, int) else 'unbounded'}]"
        raise PoolportError(
            f"dynamic_shapes: input {position} axis {axis} is {size} in the example inputs, outside the declared "
            f"range of Dim {name!r}, {declared}: give example inputs of a size inside the range, or widen the "
            f"Dim's {'min' if below else 'max'}."
        )


def _linear(dim) -> tuple[int, int, str] | None:
    """A derived ``Dim`` (torch.export's ``A * root + B``, A > 0) as ``(A, B, root name)``; None for any
    other ``Dim``."""
    root, fn = getattr(dim, "root", None), getattr(dim, "fn", None)
    if root is None or not callable(fn):
        return None
    try:
        b = int(fn(0))
        a = int(fn(1)) - b
    except Exception:  # not the linear form torch.export documents: treated as a plain range
        return None
    if a < 1:
        return None
    return a, b, getattr(root, "__name__", None) or str(root)


def parse_dynamic_shapes(dynamic_shapes, args: tuple, model, dynamic_batch: bool = False) -> list[DynamicAxis]:
    """The dynamic axes of ``args`` (tensors numbered in order) from ``dynamic_shapes`` and ``dynamic_batch``."""
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    per_arg: list = [None] * len(args)
    if isinstance(dynamic_shapes, dict):
        try:
            params = list(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):
            params = []
        for key, value in dynamic_shapes.items():
            if key not in params[: len(args)]:
                raise PoolportError(f"dynamic_shapes names {key!r}, which is not one of the model's inputs {params[: len(args)]}.")
            per_arg[params.index(key)] = value
    elif isinstance(dynamic_shapes, (tuple, list)):
        if len(dynamic_shapes) != len(args):
            raise PoolportError(
                f"dynamic_shapes has {len(dynamic_shapes)} entries for {len(args)} inputs; give one per input "
                f"(None for a static one)."
            )
        per_arg = list(dynamic_shapes)
    elif dynamic_shapes is not None:
        raise PoolportError(
            f"dynamic_shapes must be a tuple (one entry per input) or a dict by input name, got "
            f"{type(dynamic_shapes).__name__}; e.g. ({{2: 'h', 3: 'w'}},)."
        )
    axes: list[DynamicAxis] = []
    for position, spec in enumerate(per_arg):
        if spec is None:
            continue
        if position not in tensors:
            raise PoolportError(f"dynamic_shapes gives axes for input {position}, which is not a tensor.")
        t = tensors.index(position)
        rank = args[position].dim()
        items = spec.items() if isinstance(spec, dict) else enumerate(spec)
        for axis, dim in items:
            if dim is None:
                continue
            if not isinstance(axis, int) or not -rank <= axis < rank:
                raise PoolportError(f"dynamic_shapes: input {position} has {rank} axes, no axis {axis!r}.")
            axis %= rank
            if isinstance(dim, str):
                axes.append(DynamicAxis(t, axis, dim, 1, UNBOUNDED, root=dim))
            else:
                name = getattr(dim, "__name__", None) or f"input{t}_dim{axis}"
                size = args[position].shape[axis]
                _check_example_in_range(dim, name, position, axis, size)
                lo, hi = _dim_range(dim)
                step, offset, root = _linear(dim) or (1, 0, name)
                if (size - offset) % step:
                    form = f"{step}k" + (f" + {offset}" if offset else "")
                    raise PoolportError(
                        f"dynamic_shapes: input {position} axis {axis} is {size} in the example inputs, which Dim "
                        f"{name!r} does not allow (its sizes are {form}): give example inputs of such a size."
                    )
                axes.append(DynamicAxis(t, axis, name, lo, hi, dim, step=step, offset=offset, root=root))
    if dynamic_batch:
        taken = {(a.input, a.axis) for a in axes}
        axes += [DynamicAxis(t, 0, "batch", 1, UNBOUNDED, root="batch") for t, i in enumerate(tensors)
                 if args[i].dim() > 0 and (t, 0) not in taken]
    return axes


def for_dynamo(axes: list[DynamicAxis], args: tuple):
    """torch.export's ``dynamic_shapes``: one dict per argument, one ``Dim`` per name."""
    dims: dict[str, object] = {}
    for a in axes:
        if a.name not in dims:
            dims[a.name] = a.dim if a.dim is not None else torch.export.Dim(a.name, min=a.min, max=a.max)
    tensors = [i for i, x in enumerate(args) if isinstance(x, torch.Tensor)]
    shapes: list = [None] * len(args)
    for a in axes:
        position = tensors[a.input]
        shapes[position] = shapes[position] or {}
        shapes[position][a.axis] = dims[a.name]
    return tuple(shapes)


def exporter_ranges(program, axes: list[DynamicAxis]) -> dict[tuple[int, int], tuple[int, int]]:
    """The sizes the dynamo exporter accepted for each of ``axes``, as ``{(input, axis): (min, max)}``: the
    range torch.export derived from the model's own guards (two 2x2 max pools: from 4, not from 1), or
    ``(n, n)`` where it made the axis static. Empty for the TorchScript exporter (``program``
    None), which derives no range; an axis it cannot tell is left out."""
    ep = getattr(program, "exported_program", None)
    if ep is None or not axes:
        return {}
    try:
        from torch.export.graph_signature import InputKind

        nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        vals = [nodes[spec.arg.name].meta.get("val") for spec in ep.graph_signature.input_specs
                if spec.kind == InputKind.USER_INPUT and getattr(spec.arg, "name", None) in nodes]
        tensors = [v for v in vals if isinstance(v, torch.Tensor)]
        ranges = {}
        for a in axes:
            if a.input >= len(tensors) or a.axis >= tensors[a.input].dim():
                continue
            size = tensors[a.input].shape[a.axis]
            if isinstance(size, int):
                ranges[(a.input, a.axis)] = (size, size)
                continue
            expr = size.node.expr
            bounds = ep.range_constraints.get(expr)
            if bounds is not None:
                ranges[(a.input, a.axis)] = (_whole(bounds.lower, 1), _whole(bounds.upper, UNBOUNDED))
            elif len(expr.free_symbols) == 1:  # a derived size (32 * s0): its root's range, mapped (increasing)
                symbol = next(iter(expr.free_symbols))
                bounds = ep.range_constraints.get(symbol)
                if bounds is not None:
                    ranges[(a.input, a.axis)] = (_whole(expr.subs(symbol, bounds.lower), 1),
                                                 _whole(expr.subs(symbol, bounds.upper), UNBOUNDED))
        return ranges
    except Exception:  # torch's internals moved: the declared ranges stand
        return {}


def _whole(bound, default: int) -> int:
    try:
        return int(bound)
    except Exception:  # torch's int_oo raises AttributeError
        return default


def file_axes(axes: list[DynamicAxis], proto, ranges: dict[tuple[int, int], tuple[int, int]]) -> list[DynamicAxis]:
    """``axes`` as the exported ONNX file ``proto`` has them: named as the file names the input dimension
    (the dynamo exporter names its own symbols, ``s53``), within the sizes the exporter accepted
    (``exporter_ranges``) and the declared range, and ``fixed`` where the file made the axis static.
    Verification then picks its other sizes inside that range, and the report states it."""
    import dataclasses

    weights = {t.name for t in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in weights]
    out = []
    for a in axes:
        name, lo, hi, fixed = a.name, a.min, a.max, False
        dims = inputs[a.input].type.tensor_type.shape.dim if a.input < len(inputs) else []
        if a.axis < len(dims):
            d = dims[a.axis]
            if d.HasField("dim_param") and d.dim_param:
                name = d.dim_param
            elif d.HasField("dim_value") and d.dim_value > 0:
                lo = hi = d.dim_value
                fixed = True
        if not fixed and (a.input, a.axis) in ranges:
            accepted_lo, accepted_hi = ranges[(a.input, a.axis)]
            fixed = accepted_lo == accepted_hi
            if max(lo, accepted_lo) <= min(hi, accepted_hi):  # within the declared range too
                lo, hi = max(lo, accepted_lo), min(hi, accepted_hi)
        if not fixed and a.step > 1:  # the ends on the axis's own sizes (step * k + offset)
            k_lo, k_hi = dataclasses.replace(a, min=lo, max=hi).k_range()
            if k_lo <= k_hi:
                lo, hi = a.size_at(k_lo), a.size_at(k_hi)
        out.append(dataclasses.replace(a, name=name, min=lo, max=hi, fixed=fixed))
    return out


def for_torchscript(axes: list[DynamicAxis], input_names: list[str]) -> dict:
    """The TorchScript exporter's ``dynamic_axes`` for the inputs."""
    out: dict[str, dict[int, str]] = {}
    for a in axes:
        out.setdefault(input_names[a.input], {})[a.axis] = a.name
    return out


def _next_prime(n: int) -> int:
    def prime(k: int) -> bool:
        return k > 1 and all(k % p for p in range(2, int(k**0.5) + 1))

    while not prime(n):
        n += 1
    return n


def _ks_from(axis: DynamicAxis, k: int, direction: int, limit: int = 256):
    """Root values from ``k`` on in ``direction`` (+1 or -1), inside the axis's range, at most ``limit``."""
    lo, hi = axis.k_range()
    for i in range(limit):
        j = k + direction * i
        if not lo <= j <= hi:
            return
        yield j


def candidate_sizes(axis: DynamicAxis, example: int, sites: list) -> list[int]:
    """Other sizes for ``axis`` (example size ``example``), most telling first: one that gives some
    pooling site non-uniform windows, one where a site's input is smaller than its output, a large
    prime, an odd size in between, one more and about half; all among the axis's sizes (within its range,
    and ``step * k + offset`` for a derived Dim: the nearest such size where a pick is not one)."""
    picks: list[int] = []
    k0 = axis.k_of(example)
    if axis.spatial:
        for site in sites:  # sites recorded at the example size: scale from the model's axis to the site's
            d = len(site.output_size)
            rank_offset = axis.axis - (len(site.input_shape) - d)  # the site axis that this model axis feeds
            if not 0 <= rank_offset < d:
                continue
            m, o = site.input_shape[len(site.input_shape) - d + rank_offset], site.output_size[rank_offset]
            if m is None or o is None or m <= 0 or example % m:  # a dynamic site (TorchScript file): no scale
                continue
            f = example // m  # the model's axis is f times the site's
            for k in _ks_from(axis, k0 + 1, +1):  # non-uniform windows at this site
                n = axis.size_at(k)
                if n % f == 0 and plan_pool("avg", (n // f,), (o,)).kind == "passes":
                    picks.append(n)
                    break
            if o >= 2:  # the site sees fewer inputs than it outputs
                for k in _ks_from(axis, axis.k_of(f * (o - 1)), -1):
                    n = axis.size_at(k)
                    if n // f < o:
                        picks.append(n)
                        break
    picks += [_next_prime(2 * example + 1), example + example // 2 + 1 + (example % 2 == 0), example + 1,
              example // 2 + 1]
    seen, out = {example}, []
    for n in picks:
        n = axis.size_at(axis.k_of(n))
        if n == example and n + axis.step <= axis.max:  # "one more": the next size the axis allows
            n += axis.step
        if n not in seen and axis.allows(n):
            seen.add(n)
            out.append(n)
    return out


def verification_shapes(axes: list[DynamicAxis], args: tuple, sites: list, count: int = 8) -> list[list[tuple]]:
    """Up to ``count`` sets of input shapes (one shape per tensor input), each changing every dynamic
    axis, most telling first (verification runs the first ``VERIFIED_SIZES`` the model accepts); axes of one group (the same name, or derived from one root Dim) change together, each to its
    own ``step * k + offset``, and H and W take different sizes."""
    import dataclasses

    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    groups: dict[str, list[DynamicAxis]] = {}
    for a in axes:
        groups.setdefault(a.group, []).append(a)
    options: dict[str, list[int]] = {}  # group -> root values k to verify at
    example_k: dict[str, int] = {}
    for group, members in groups.items():
        first = members[0]
        ranges = [m.k_range() for m in members]
        lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
        example = tensors[first.input].shape[first.axis]
        example_k[group] = first.k_of(example)
        if lo > hi:
            options[group] = []
            continue
        narrowed = dataclasses.replace(first, min=first.size_at(lo), max=first.size_at(hi))
        options[group] = [narrowed.k_of(n) for n in candidate_sizes(narrowed, example, sites)]
    sets = []
    for i in range(count):
        shapes = [list(t.shape) for t in tensors]
        changed = False
        for j, (group, ks) in enumerate(options.items()):
            if not ks:
                continue
            k = ks[(i + j * (1 + i // len(ks))) % len(ks)]  # shift by group so that H and W differ
            changed |= k != example_k[group]
            for a in groups[group]:
                shapes[a.input][a.axis] = a.size_at(k)
        if changed and shapes not in sets:
            sets.append(shapes)
    return [[tuple(s) for s in shapes] for shapes in sets]
