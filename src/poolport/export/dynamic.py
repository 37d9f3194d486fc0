"""Dynamic input sizes for ``export_onnx``: the caller's ``dynamic_shapes`` in torch.onnx.export's own
format, translated for each exporter, and the other sizes verification runs at.

Accepted: a tuple/list with one entry per positional argument, or a dict keyed by ``forward``'s parameter
names; each entry ``None`` (static), a dict ``{axis: Dim or name}`` or a list/tuple with one ``Dim``/name/
``None`` per axis. A ``torch.export.Dim`` carries its range; a name is dynamic from 1 up. The same name on
two axes means the same size.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ..errors import PoolportError
from ..plan.pooling import plan_pool

UNBOUNDED = 1 << 16  # upper bound given to a name's Dim, and of the sizes verification picks


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

    @property
    def spatial(self) -> bool:
        return self.axis >= 2

    def __str__(self) -> str:
        where = f"input {self.input} axis {self.axis}"
        if self.fixed:
            return f"{where}: fixed at {self.min} by the exporter"
        return f"{where}: {self.name} in [{self.min}, {self.max}]"


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
                axes.append(DynamicAxis(t, axis, dim, 1, UNBOUNDED))
            else:
                name = getattr(dim, "__name__", None) or f"input{t}_dim{axis}"
                _check_example_in_range(dim, name, position, axis, args[position].shape[axis])
                lo, hi = _dim_range(dim)
                axes.append(DynamicAxis(t, axis, name, lo, hi, dim))
    if dynamic_batch:
        taken = {(a.input, a.axis) for a in axes}
        axes += [DynamicAxis(t, 0, "batch", 1, UNBOUNDED) for t, i in enumerate(tensors)
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
            bounds = ep.range_constraints.get(size.node.expr)
            if bounds is not None:
                ranges[(a.input, a.axis)] = (_whole(bounds.lower, 1), _whole(bounds.upper, UNBOUNDED))
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


def candidate_sizes(axis: DynamicAxis, example: int, sites: list) -> list[int]:
    """Other sizes for ``axis`` (example size ``example``), most telling first: one that gives some
    pooling site non-uniform windows, one where a site's input is smaller than its output, a large
    prime, an odd size in between, one more and about half; all within the axis's range."""
    picks: list[int] = []
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
            for step in range(1, 2 * o + 2):  # non-uniform windows at this site
                if plan_pool("avg", (m + step,), (o,)).kind == "passes":
                    picks.append(f * (m + step))
                    break
            if o >= 2:
                picks.append(f * (o - 1))  # the site sees fewer inputs than it outputs
    picks += [_next_prime(2 * example + 1), example + example // 2 + 1 + (example % 2 == 0), example + 1,
              example // 2 + 1]
    seen, out = {example}, []
    for n in picks:
        n = min(max(n, axis.min), axis.max)
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


def verification_shapes(axes: list[DynamicAxis], args: tuple, sites: list, count: int = 4) -> list[list[tuple]]:
    """Up to ``count`` sets of input shapes (one shape per tensor input), each changing every dynamic
    axis; axes with the same name change together, and H and W take different sizes."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    example = {a.name: tensors[a.input].shape[a.axis] for a in axes}
    first = {}
    for a in axes:
        first.setdefault(a.name, a)
    options = {name: candidate_sizes(a, example[name], sites) for name, a in first.items()}
    sets = []
    for i in range(count):
        shapes = [list(t.shape) for t in tensors]
        changed = False
        for k, (name, sizes) in enumerate(options.items()):
            if not sizes:
                continue
            value = sizes[(i + k) % len(sizes)]  # shift by axis so that H and W differ
            changed |= value != example[name]
            for a in axes:
                if a.name == name:
                    shapes[a.input][a.axis] = value
        if changed and shapes not in sets:
            sets.append(shapes)
    return [[tuple(s) for s in shapes] for shapes in sets]
