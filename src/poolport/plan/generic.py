"""Adaptive pooling whose input size is known only at run time (a symbolic H/W): the size-generic plan.

A static plan (``pooling.py``) is integer geometry of one input size: kernels and strides are ONNX
attributes, fixed at export, so the graph is right at that size only. When a spatial size is symbolic
(``torch.export`` / the dynamo exporter with ``Dim``s, the TorchScript exporter with ``dynamic_axes``), each
axis is planned by what does not depend on ``n``:

* ``keep``    -- output size ``None``: the axis passes through;
* ``global``  -- ``o == 1``: a mean (max) over the whole axis, whatever ``n`` is;
* ``windows`` -- ``o > 1``: PyTorch's windows computed at run time from ``n`` with ``window_bounds``.

Every form keeps PyTorch's inf/-inf/NaN pattern at every size (one non-finite cell changes only the
windows that hold it) and accumulates half types in float32 as torch does:

* ONNX, both exporters (``backend.onnx_generic``; the dynamo exporter through poolport's translation
  table, ``backend.onnx_translation``): average is a MatMul by the window matrix ``mask / count`` per axis,
  and where its output is not finite (a MatMul spreads one inf or NaN over the plane: ``0 * inf = NaN``)
  an ``If`` recomputes it with one Slice per window (run-time bounds) + ReduceMean + Concat. Max is one
  Slice per window + ReduceMax + Concat (reads the tensor once), and where the input holds a NaN (ONNX
  Runtime's ReduceMax may drop it) an ``If`` takes a NaN-exact form.
* torch ops (``backend.torch_generic``: torch.export for other consumers, torch.compile, eager checks):
  ``sum_j where(M[i, j], x_j, 0) / count_i`` and ``max_j where(M[i, j], x_j, -inf)`` with the window mask
  ``M`` (``o x n``, ``M[i, j] = start_i <= j < end_i``), ``o`` times the tensor in memory per axis.

Why a mask in torch and not one Slice per window (measured with torch 2.14): slicing with symbolic bounds
makes ``torch.export`` guard on every bound (``(i*n)//o <= n``, ``end - start != 1``...), which it cannot
prove for every ``n`` and so refuses the ``Dim``s; the mask is built from ``arange`` and comparisons and
adds no guard. ONNX nodes written directly have no such guards. Exactness: max is bit-exact; average is
exact up to float rounding. Costs: ``docs/bench-dynamic.md``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError

FORMULATION = ("run-time windows (avg: MatMul by mask/count, Slice + ReduceMean per window where not finite; "
               "max: Slice + ReduceMax per window, NaN-exact where NaN)")


def window_bounds(i, n, o: int):
    """PyTorch's window ``i`` of ``o`` over ``n`` as ``(start, end)``: ``floor(i*n/o)`` and
    ``ceil((i+1)*n/o)``, with integer arithmetic only, so ``i`` and ``n`` may be ints, int tensors,
    symbolic sizes or ONNX values alike."""
    return (i * n) // o, ((i + 1) * n + o - 1) // o


@dataclass(frozen=True)
class GenericPlan:
    """Adaptive ``op`` pooling to ``out_size`` (``None`` keeps an axis) for any input size.

    ``kind``: ``identity`` (every axis kept), ``global`` (every axis to 1: one whole-plane reduction) or
    ``axes`` (axis by axis, each ``keep``, ``global`` or ``windows``)."""

    op: str
    out_size: tuple[int | None, ...]
    kind: str

    @property
    def axis_kinds(self) -> tuple[str, ...]:
        return tuple("keep" if o is None else "global" if o == 1 else "windows" for o in self.out_size)

    def order(self, slicing: bool = False) -> tuple[int, ...]:
        """The axes in the order to pool them: global axes (a plain reduction, cheapest) first, then the axis
        with the fewest outputs, so that the others read a smaller tensor. Ties: for a MatMul by the window
        matrix the last axis first; for one Slice per window (``slicing``) the first, whose slices are
        contiguous blocks (4.5x faster for 128x128 -> 14x14 max in ONNX Runtime, measured)."""
        rank = {"keep": 0, "global": 1, "windows": 2}
        side = 1 if slicing else -1
        return tuple(sorted(range(len(self.out_size)),
                            key=lambda k: (rank[self.axis_kinds[k]], self.out_size[k] or 0, side * k)))

    @property
    def formulation(self) -> str:
        """What the graph computes, in words (for reports)."""
        if self.kind == "identity":
            return "identity"
        if self.kind == "global":
            return "whole-plane reduction"
        return FORMULATION if "windows" in self.axis_kinds else "per-axis reduction"

    def onnx_ops(self) -> Counter:
        """The pooling operators of this plan's graph (size arithmetic -- Shape, Range, comparisons -- aside;
        the ``If``'s fallback branch, which runs only on non-finite input, not counted)."""
        ops: Counter = Counter()
        if "global" in self.axis_kinds:  # every axis to 1 in one reduction
            ops["ReduceMean" if self.op == "avg" else "ReduceMax"] += 1
        for kind, o in zip(self.axis_kinds, self.out_size):
            if kind == "windows" and self.op == "avg":
                ops["MatMul"] += 1
            elif kind == "windows":
                ops.update({"Slice": o, "ReduceMax": o, "Concat": 1})
        guarded = "windows" in self.axis_kinds if self.op == "avg" else self.kind != "identity"
        if guarded:  # avg: a MatMul's non-finite output; max: a NaN in the input (backend.onnx_generic)
            ops["If"] += 1
        return ops

    def describe_ops(self) -> str:
        ops = self.onnx_ops()
        body = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(ops.items())) or "none (identity)"
        return f"{body} (+ size arithmetic)" if "windows" in self.axis_kinds else body

    def summary(self) -> str:
        """One line per axis kind, e.g. ``windows(6) x windows(5)``."""
        return " x ".join(k if k != "windows" else f"windows({o})" for k, o in zip(self.axis_kinds, self.out_size))

    def __str__(self) -> str:
        size = "x".join("*" if o is None else str(o) for o in self.out_size)
        return f"adaptive {self.op} pool, any input size -> {size}: {self.summary()} [{self.formulation}]"

    def to_dict(self) -> dict:
        return {"op": self.op, "out_size": list(self.out_size), "kind": self.kind,
                "axes": list(self.axis_kinds), "formulation": self.formulation}


@lru_cache(maxsize=1024)
def plan_generic(op: str, out_size: tuple[int | None, ...]) -> GenericPlan:
    """The size-generic plan of adaptive ``op`` pooling to ``out_size`` (entries >= 1 or ``None``)."""
    if op not in ("avg", "max"):
        raise PoolportError(f"adaptive pooling: op must be 'avg' or 'max', got {op!r}.")
    if not 1 <= len(out_size) <= 3:
        raise PoolportError(f"adaptive pooling: output size {out_size} must have 1, 2 or 3 entries.")
    for o in out_size:
        if o is not None and (isinstance(o, bool) or not isinstance(o, int) or o < 1):
            raise PoolportError(f"adaptive pooling: output size {out_size}: every entry must be >= 1 or None.")
    if all(o is None for o in out_size):
        kind = "identity"
    elif all(o == 1 for o in out_size):
        kind = "global"
    else:
        kind = "axes"
    return GenericPlan(op, tuple(out_size), kind)
