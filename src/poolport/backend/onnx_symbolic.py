"""Adaptive pooling emitted as ONNX nodes inside torch's TorchScript exporter, where the exporter knows
which input sizes are dynamic. One symbolic serves two callers:

* ``poolport::adaptive_pool`` (``traced_op``): what poolport's own code puts into the exporter's trace;
* ``aten::adaptive_*`` of TorchScript files, whose graphs Python cannot intercept (registered only
  for the duration of ``poolport.export_onnx``, by ``portable_symbolics``).

Static pooled sizes get the static plan (``execute`` over ``SymbolicOps``); dynamic ones the
size-generic plan (``onnx_generic``), exact at every size.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import PoolportError
from ..plan import plan_pool
from ..plan.generic import plan_generic
from ..plan.pooling import ONNX_POOL, check_style
from .execute import execute, execute_explicit
from .onnx_generic import generic_nodes, scalar_type
from .onnx_ops import OnnxOps

# the TorchScript exporter's attribute suffixes: ints (and lists of ints), floats, strings
_SUFFIX = {int: "i", float: "f", str: "s"}


class SymbolicEmitter:
    """An ``onnx_ops.Emitter`` that writes into a TorchScript export graph ``g`` (which names things
    itself); ``dtype`` is the torch dtype of the input (for ``tensor``)."""

    def __init__(self, g, opset: int, dtype: torch.dtype = torch.float32):
        self.g, self.opset, self.dtype = g, opset, dtype

    def op(self, op_type: str, inputs: list, name: str, out: str, **attrs):
        """``g.op``, each attribute with the exporter's type suffix."""
        typed = {}
        for key, value in attrs.items():
            first = value[0] if isinstance(value, list) else value
            typed[f"{key}_{_SUFFIX[type(first)]}"] = value
        return self.g.op(op_type, *inputs, **typed)

    def ints(self, values, name: str):
        """An int64 Constant."""
        return self.g.op("Constant", value_t=torch.tensor(list(values), dtype=torch.int64))

    def tensor(self, values, shape: tuple[int, ...], name: str):
        """A Constant of the input's dtype (``values`` rounded once, from float64)."""
        t = torch.tensor(values, dtype=torch.float64).reshape(shape)
        return self.g.op("Constant", value_t=t.to(self.dtype))


class SymbolicOps(OnnxOps):
    """``execute``'s and ``execute_explicit``'s operations as ONNX nodes in a TorchScript export graph ``g``
(``OnnxOps``' slice, pool, pad and scale; concat and copy)."""

    def __init__(self, g, opset: int, dtype: torch.dtype = torch.float32):
        super().__init__(SymbolicEmitter(g, opset, dtype))

    def concat(self, parts, dim):
        """ONNX Concat."""
        return self.emit.op("Concat", parts, "concat", "concatenated", axis=dim)

    def copy(self, x):
        """ONNX Identity."""
        return self.emit.op("Identity", [x], "copy", "copied")


def export_opset() -> int:
    """The opset the running TorchScript export writes."""
    try:  # torch >= 2.9
        from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    except ImportError:  # older torch
        from torch.onnx._globals import GLOBALS
    return GLOBALS.export_onnx_opset_version


FLOAT = 1  # ONNX TensorProto.FLOAT

# what each export emitted, for the report: (op name, input sizes (None = dynamic), output size, plan)
_emitted: list | None = None
# the style of ``aten::adaptive_*`` sites (TorchScript files) during ``portable_symbolics``
_style = "default"


def emit(g, x, op: str, out_size: tuple[int | None, ...], style: str):
    """Nodes for adaptive ``op`` pooling of ``x`` to ``out_size`` (``None`` keeps an axis); a static plan
    written in ``style`` (``plan.pooling.STYLES``)."""
    from torch.onnx import symbolic_helper as sh

    d = len(out_size)
    name = f"adaptive_{op}_pool{d}d"
    sizes = sh._get_tensor_sizes(x)
    opset = export_opset()
    if sizes is None:
        raise PoolportError(f"{name}: the TorchScript exporter does not know the rank of its input; give the "
                            f"model an example input of the shape it runs at.")
    spatial = tuple(sizes[-d:])
    if all(isinstance(n, int) for n in spatial):
        resolved = tuple(n if o is None else o for n, o in zip(spatial, out_size))
        plan = plan_pool(op, spatial, resolved, style)
        elem = scalar_type(x)
        # a half-precision average of several passes accumulates in float32 and rounds once at the end, as
        # torch's native op (and poolport's torch ops) do; rounding after every pass loses more
        upcast = op == "avg" and len(plan.passes) > 1 and elem.dtype() in (torch.float16, torch.bfloat16)
        src = g.op("Cast", x, to_i=FLOAT) if upcast else x
        y = execute(plan, src, SymbolicOps(g, opset), len(sizes))
        y = g.op("Cast", y, to_i=elem.onnx_type()) if upcast else y
    else:
        plan = plan_generic(op, tuple(out_size))
        y = generic_nodes(g, x, plan, len(sizes), opset, name)
    if _emitted is not None:
        _emitted.append((name, tuple(sizes), tuple(out_size), plan))
    return y


_registered: list[bool] = []


def ensure_custom_op_symbolic() -> None:
    """Register the symbolics of ``poolport::adaptive_pool`` and ``poolport::pool_same`` (once;
    poolport's own namespace, so nothing torch exports on its own changes)."""
    if not _registered:
        torch.onnx.register_custom_op_symbolic("poolport::adaptive_pool", custom_op_symbolic, 9)
        torch.onnx.register_custom_op_symbolic("poolport::pool_same", same_symbolic, 9)
        _registered.append(True)


def same_symbolic(g, x, kernel, stride, padding, op):
    """Symbolic of ``poolport::pool_same``: the static ``SamePlan`` where the sizes are static, else ONNX
    pooling with ``auto_pad`` SAME_UPPER (average: ``count_include_pad=0``), TF's 'SAME' at any size."""
    from torch.onnx import symbolic_helper as sh

    from ..plan.same import plan_same

    k, s = list(sh._parse_arg(kernel, "is")), list(sh._parse_arg(stride, "is"))
    padding, op = sh._parse_arg(padding, "s"), sh._parse_arg(op, "s")
    sizes = sh._get_tensor_sizes(x)
    pool = ONNX_POOL[op]
    extra = {"count_include_pad_i": 0} if op == "avg" else {}
    spatial = tuple(sizes[-len(k):]) if sizes is not None else (None,)
    if not all(isinstance(n, int) for n in spatial):
        if padding == "VALID":
            return g.op(pool, x, kernel_shape_i=k, strides_i=s)
        return g.op(pool, x, kernel_shape_i=k, strides_i=s, auto_pad_s="SAME_UPPER", **extra)
    plan = plan_same(op, spatial, tuple(k), tuple(s), padding)
    if plan.kind == "explicit":
        return execute_explicit(plan.explicit(), x, SymbolicOps(g, export_opset(), scalar_type(x).dtype()))
    pads, ceil = plan.pool_args()
    attrs = {"kernel_shape_i": k, "strides_i": s}
    if any(pads) or ceil:  # only what differs from ONNX's defaults
        attrs.update(extra, pads_i=list(pads) * 2, ceil_mode_i=int(ceil))
    return g.op(pool, x, **attrs)


def custom_op_symbolic(g, x, output_size, op, style):
    """Symbolic of ``poolport::adaptive_pool(x, output_size, op, style)``."""
    from torch.onnx import symbolic_helper as sh

    size = tuple(None if o < 0 else o for o in sh._parse_arg(output_size, "is"))
    return emit(g, x, sh._parse_arg(op, "s"), size, sh._parse_arg(style, "s"))


OPS = [(f"adaptive_{op}_pool{d}d", op, d) for op in ("avg", "max") for d in (1, 2, 3)]


def _aten_symbolic(op: str, d: int):
    from torch.onnx import symbolic_helper as sh

    def symbolic(g, x, output_size):
        out = tuple(sh._parse_arg(output_size, "is"))
        y = emit(g, x, op, out, _style)
        return (y, None) if op == "max" else y

    return symbolic


def _fractional_symbolic(d: int):
    def symbolic(g, x, kernel_size, output_size, random_samples):
        raise PoolportError(
            f"fractional_max_pool{d}d in a TorchScript model: poolport writes fractional max pooling (with fixed "
            f"_random_samples; random ones no graph can equal) from the PyTorch module, not from a TorchScript "
            f"file. Export the nn.Module (poolport.export_onnx, or `poolport convert package.module:factory`).")

    return symbolic


@contextlib.contextmanager
def portable_symbolics(style: str = "default"):
    """During a TorchScript export: poolport's symbolics for every ``aten::adaptive_*`` op (TorchScript
    files; their static plans written in ``style``, ``plan.pooling.STYLES``) and a record of every site
    emitted (yielded: a list of (op, sizes, output size, plan))."""
    global _emitted, _style
    ensure_custom_op_symbolic()
    sites: list = []
    previous, _emitted = _emitted, sites
    previous_style, _style = _style, check_style(style)
    registered = []
    try:
        for name, op, d in OPS:
            torch.onnx.register_custom_op_symbolic(f"aten::{name}", _aten_symbolic(op, d), 9)
            registered.append(name)
        for d in (2, 3):  # torch has no symbolic for it: refused with the reason
            torch.onnx.register_custom_op_symbolic(f"aten::fractional_max_pool{d}d", _fractional_symbolic(d), 9)
            registered.append(f"fractional_max_pool{d}d")
        yield sites
    finally:
        _emitted, _style = previous, previous_style
        for name in registered:
            torch.onnx.unregister_custom_op_symbolic(f"aten::{name}", 9)
