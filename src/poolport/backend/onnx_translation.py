"""poolport's translation table for torch's dynamo ONNX exporter (``torch.onnx.export(..., dynamo=True,
custom_translation_table=...)``): ONNX Script functions for PyTorch's adaptive pooling ops and for
``poolport::adaptive_pool``.

A registered op skips torch's decomposition, which branches in Python on ``shape % out`` (so symbolic
H/W specialise) and refuses non-divisible max pooling. Here every op is written as poolport writes it:

* every pooled size static -> the static plan (``plan.pooling``: one pooling op where windows are
  uniform, else Slice + pool per run + Concat), exact, at that size;
* any pooled size symbolic (``Dim``) -> the size-generic graph (``onnx_generic.generic_graph``), the same
  nodes the TorchScript exporter gets: run-time windows, exact at every size, inf/-inf/NaN included.

``torch.export`` keeps ``aten.adaptive_*`` ops with symbolic sizes as they are (no guard), so a plain
``torch.onnx.export(model, args, dynamo=True, dynamic_shapes=..., custom_translation_table=
poolport.onnx_translations())`` of an unmodified model is exact at every size. ``export_onnx`` passes this
table and has poolport's own layers record ``poolport::adaptive_pool`` where sizes are symbolic
(``traced_op.onnx_translation``). Adaptive max pooling's argmax indices are not portable: a graph that
uses them is refused while it is exported.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from ..errors import PoolportError
from ..plan import plan_pool
from ..plan.generic import plan_generic
from .execute import execute
from .onnx_generic import BuilderOps, generic_graph
from .traced_op import translated_adaptive_pool  # noqa: F401  (registers poolport::adaptive_pool)

OPSET = 18  # the opset of the ONNX Script ops written here (the exporter converts to the one asked for)
_NAMES = itertools.count()  # branch values get names of their own: the exporter names the rest val_N per graph
FLOAT, FLOAT16, BFLOAT16 = 1, 10, 16  # ONNX element types
_NUMPY = {1: np.float32, 10: np.float16, 11: np.float64, 7: np.int64}  # ONNX element type -> numpy


def _constant(value, elem_type: int):
    """``(array, cast_to)``: ``value`` as a numpy array numpy can hold, and the element type to Cast it
    to afterwards (None if none; bfloat16 has no numpy type)."""
    if elem_type in _NUMPY:
        return np.array(value, dtype=_NUMPY[elem_type]), None
    return np.array(value, dtype=np.float32), elem_type


class GraphBuilder:
    """``onnx_generic.Builder`` writing nodes into an ONNX IR subgraph (the branches of an ``If``), which
    may read values of the graph around it."""

    opset = OPSET

    def __init__(self):
        from onnxscript import ir

        self.ir, self.nodes = ir, []

    def op(self, name: str, *inputs, **attrs):
        ir = self.ir
        node = ir.Node("", name, list(inputs), attributes=ir.convenience.convert_attributes(attrs), version=OPSET)
        node.outputs[0].name = f"poolport_branch_{next(_NAMES)}"
        self.nodes.append(node)
        return node.outputs[0]

    def _tensor(self, array: np.ndarray):
        return self.op("Constant", value=self.ir.tensor(array))

    def ints(self, values: list[int]):
        return self._tensor(np.array(values, dtype=np.int64))

    def number(self, value: float, elem_type: int):
        array, cast = _constant(value, elem_type)
        out = self._tensor(array)
        return out if cast is None else self.op("Cast", out, to=cast)

    def branch(self, cond, build, otherwise):
        raise PoolportError("poolport writes no If inside an If branch.")  # never needed

    def graph(self, output, name: str):
        """The nodes written so far as a graph with one output."""
        return self.ir.Graph((), [output], nodes=self.nodes, name=name)


class ScriptBuilder(GraphBuilder):
    """``onnx_generic.Builder`` over ONNX Script ops, inside a translation function of the dynamo
    exporter (the exporter records every node)."""

    def __init__(self):
        super().__init__()
        from onnxscript import opset18

        self.ops = opset18

    def op(self, name: str, *inputs, **attrs):
        out = getattr(self.ops, name)(*inputs, **attrs)
        return out[0] if isinstance(out, tuple) else out  # MaxPool's optional indices: unused

    def branch(self, cond, build, otherwise):
        then, orelse = GraphBuilder(), GraphBuilder()
        then_graph = then.graph(build(then), "poolport_exact")
        else_graph = orelse.graph(orelse.op("Identity", otherwise), "poolport_fast")
        return self.ops.If(cond, then_branch=then_graph, else_branch=else_graph)


def _kept(entry, x, axis: int) -> bool:
    """Whether an output-size entry that is not an int is the run-time size of ``x``'s ``axis`` (torch
    resolves a None entry to that size): ``Squeeze(Shape(v, start=a, end=a + 1))`` of a value whose dim
    ``a`` is the same symbol as ``x``'s."""
    squeeze = entry.producer() if hasattr(entry, "producer") else None
    shape = squeeze.inputs[0].producer() if squeeze is not None and squeeze.op_type == "Squeeze" else None
    if shape is None or shape.op_type != "Shape":
        return False
    start, end = (shape.attributes.get(k) for k in ("start", "end"))
    if start is None or end is None or end.value != start.value + 1:
        return False
    source = shape.inputs[0].shape
    if source is None or not -len(source) <= start.value < len(source):
        return False
    mine, theirs = x.shape[axis], source[start.value]
    return not isinstance(mine, int) and str(mine) == str(theirs)


def pool_nodes(x, output_size, op: str, where: str, style: str = "default"):
    """Adaptive ``op`` pooling of ``x`` (an exporter value: ``(N, C, *spatial)`` or ``(C, *spatial)``) to
    ``output_size`` (ints, ``-1`` keeps an axis; an entry that is the axis's own run-time size keeps it too),
    written with ONNX Script ops; a static plan in ``style`` (``plan.pooling.STYLES``)."""
    d = len(output_size)
    rank, elem_type = len(x.shape), int(x.dtype)  # read before any node: new values carry no type yet
    size = []
    for k, o in enumerate(output_size):
        if isinstance(o, int):
            size.append(None if o < 0 else o)
        elif _kept(o, x, rank - d + k):
            size.append(None)
        else:
            raise PoolportError(
                f"{where}: output size entry {k} is computed at run time and is not the size of that axis; "
                f"poolport plans adaptive pooling for int output sizes (None keeps an axis): export with "
                f"poolport.export_onnx, or give that axis an int."
            )
    b = ScriptBuilder()
    spatial = tuple(x.shape[rank - d:])
    unbatched = rank == d + 1
    if unbatched:  # ONNX pooling wants (N, C, ...)
        x, rank = b.op("Unsqueeze", x, b.ints([0])), rank + 1
    if all(isinstance(n, int) for n in spatial):
        resolved = tuple(n if o is None else o for n, o in zip(spatial, size))
        plan = plan_pool(op, spatial, resolved, style)
        # half precision: several average passes accumulate in float32, rounded once (as torch does)
        upcast = op == "avg" and len(plan.passes) > 1 and elem_type in (FLOAT16, BFLOAT16)
        src = b.op("Cast", x, to=FLOAT) if upcast else x
        y = execute(plan, src, BuilderOps(b), rank)
        y = b.op("Cast", y, to=elem_type) if upcast else y
    else:
        y = generic_graph(b, x, plan_generic(op, tuple(size)), rank, elem_type)
    return b.op("Squeeze", y, b.ints([0])) if unbatched else y


class ValuesOnly(tuple):
    """What an adaptive max translation returns for ``(values, indices)``: the values; asking for the
    indices stops the export with the reason."""

    where = "adaptive max pooling"

    def __getitem__(self, index):
        if index != 0:
            raise PoolportError(
                f"{self.where}(return_indices=True): the argmax indices are not portable (they need "
                f"data-dependent index arithmetic that ncnn and LiteRT cannot run, and adaptive windows overlap). "
                f"Use the values only, or export this model without poolport's translation table."
            )
        return tuple.__getitem__(self, 0)


def _aten(op: str, d: int) -> Callable:
    where = f"adaptive_{op}_pool{d}d"

    def translate(x, output_size):
        y = pool_nodes(x, list(output_size), op, where)
        if op == "avg":
            return y
        out = ValuesOnly((y,))
        out.where = where
        return out

    translate.__name__ = f"poolport_{where}"
    translate.__doc__ = f"``aten.{where}`` as poolport writes it (``backend.onnx_translation``)."
    return translate


def _fractional(d: int) -> Callable:
    where = f"fractional_max_pool{d}d"

    def translate(x, kernel_size, output_size, random_samples):
        shape = "x".join("?" if not isinstance(n, int) else str(n) for n in (x.shape or ()))
        raise PoolportError(
            f"{where} (input {shape}, kernel {tuple(kernel_size)}, output {tuple(output_size)}) reached the dynamo "
            f"exporter as torch's own op (a torch.export program, or a call poolport did not route): poolport "
            f"writes fractional max pooling from the PyTorch model, where it reads the _random_samples. Export the "
            f"nn.Module (poolport.export_onnx, or `poolport convert package.module:factory`) with the samples fixed "
            f"as the `_random_samples` buffer of nn.FractionalMaxPool{d}d; random samples (drawn on each call) no "
            f"graph can equal: use AdaptiveMaxPool{d}d.")

    translate.__name__ = f"poolport_{where}"
    translate.__doc__ = f"``aten.{where}``: refused with the reason (see ``poolport.plan.fractional``)."
    return translate


def _poolport_op(x, output_size, op, style="default"):
    """``poolport::adaptive_pool(x, output_size, op, style)`` (``-1`` keeps an axis)."""
    return pool_nodes(x, list(output_size), op, f"adaptive_{op}_pool{len(output_size)}d", style)


def onnx_translations() -> dict:
    """poolport's ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.

    Keys: ``torch.ops.aten.adaptive_{avg,max}_pool{1,2,3}d.default``, ``aten._adaptive_avg_pool{2,3}d``
    and poolport's own ``poolport.adaptive_pool``; values: ONNX Script functions writing poolport's exact
    formulation (static plan at static sizes, the size-generic graph at symbolic sizes, see this module).
    Merge it with a table of your own with ``{**poolport.onnx_translations(), **yours}``.

    Example::

        >>> h = torch.export.Dim("h", min=1, max=1024)
        >>> torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({2: h, 3: h},),
        ...                   custom_translation_table=poolport.onnx_translations())

    Returns:
        a new dict (torch op overload -> translation function).

    Raises:
        PoolportError: while exporting, for a model that uses adaptive max pooling's indices, or an output
            size computed at run time (other than an axis's own size, which a None entry gives).
    """
    aten = torch.ops.aten
    table: dict = {}
    for op in ("avg", "max"):
        for d in (1, 2, 3):
            table[getattr(aten, f"adaptive_{op}_pool{d}d").default] = _aten(op, d)
    table[aten._adaptive_avg_pool2d.default] = table[aten.adaptive_avg_pool2d.default]
    table[aten._adaptive_avg_pool3d.default] = table[aten.adaptive_avg_pool3d.default]
    table[torch.ops.poolport.adaptive_pool.default] = _poolport_op
    for d in (2, 3):  # its windows are drawn from samples this graph cannot hold: refused with the reason
        table[getattr(aten, f"fractional_max_pool{d}d").default] = _fractional(d)
    return table
