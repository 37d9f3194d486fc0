"""Walk a ``PoolPlan`` against any backend: the one place that knows how passes, runs, repeats and
folded axes turn into slice / pool / concat calls. Backends only implement those (and copy)."""

from __future__ import annotations

from typing import Any, Protocol

from ..plan import PoolPlan


class Ops(Protocol):
    """What a backend implements for ``execute``: slice, pool (no padding), concat and copy."""

    def slice(self, x: Any, dim: int, start: int, stop: int) -> Any:
        """``x[start:stop]`` along ``dim``."""

    def pool(self, x: Any, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Any:
        """``op`` pooling with ``kernel``/``stride`` per spatial axis, no padding."""

    def concat(self, parts: list, dim: int) -> Any:
        """Concatenate ``parts`` along ``dim``."""

    def copy(self, x: Any) -> Any:
        """``x`` unchanged (an identity plan)."""


def execute(plan: PoolPlan, x: Any, ops: Ops, rank: int) -> Any:
    """Run ``plan`` on ``x`` of rank ``rank`` = 2 + plan.ndim (batch, channels, spatial...)."""
    first = rank - plan.ndim  # dim of spatial axis 0
    if plan.kind == "identity":
        return ops.copy(x)
    if plan.kind == "global":
        # a pooling op over the whole plane: ncnn via pnnx cannot load ReduceMax and returns a wrong
        # shape for a keepdims ReduceMean at the graph output (measured); pooling loads everywhere
        return ops.pool(x, plan.op, plan.in_size, plan.in_size)
    for p in plan.passes:
        if p.runs_axis is None:
            kernel, stride = p.pool_params(plan.axes, None)
            x = ops.pool(x, plan.op, kernel, stride)
            continue
        dim = first + p.runs_axis
        n = plan.axes[p.runs_axis].n
        pieces = []
        for run in p.runs:
            part = x if run.start == 0 and run.stop == n else ops.slice(x, dim, run.start, run.stop)
            if p.pools(plan.axes, run):
                kernel, stride = p.pool_params(plan.axes, run)
                part = ops.pool(part, plan.op, kernel, stride)
            pieces.extend([part] * run.copies)
        x = ops.concat(pieces, dim) if len(pieces) > 1 else pieces[0]
    return x
