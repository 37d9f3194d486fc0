"""The operators a plan emits, counted by running it: an ``Ops`` backend that records every slice, pool,
concat and copy ``execute`` asks for and hands back placeholders that only carry a shape.

What ``poolport plan``, the export report and the benchmarks print comes from here, so it is what the
other backends emit by construction: the same walk, in the plan's style. Torch-free."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError
from ..plan import PoolPlan
from ..plan.pooling import ONNX_POOL
from .execute import execute


@dataclass(frozen=True)
class Placeholder:
    """A tensor of ``shape`` that is never computed."""

    shape: tuple[int, ...]


class CountingOps:
    """``execute``'s operations as counts of the ONNX operators the other backends write for them
    (``Slice``, ``AveragePool``/``MaxPool``, ``Concat``, ``Identity``), on ``Placeholder`` shapes. Raises
    PoolportError where a walk would build a tensor of a wrong shape."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def slice(self, x: Placeholder, dim: int, start: int, stop: int) -> Placeholder:
        """One ``Slice``; ``x[start:stop]`` along ``dim``."""
        if not 0 <= start < stop <= x.shape[dim]:
            raise PoolportError(f"counting backend: slice [{start}:{stop}) of an axis of {x.shape[dim]}.")
        self.counts["Slice"] += 1
        return Placeholder(x.shape[:dim] + (stop - start,) + x.shape[dim + 1:])

    def pool(self, x: Placeholder, op: str, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Placeholder:
        """One ``AveragePool``/``MaxPool`` without padding: ``(n - k) // s + 1`` per pooled axis."""
        spatial = x.shape[len(x.shape) - len(kernel):]
        if any(k > n for k, n in zip(kernel, spatial)):
            raise PoolportError(f"counting backend: kernel {kernel} larger than the input {spatial}.")
        self.counts[ONNX_POOL[op]] += 1
        out = tuple((n - k) // s + 1 for n, k, s in zip(spatial, kernel, stride))
        return Placeholder(x.shape[:len(x.shape) - len(kernel)] + out)

    def concat(self, parts: list[Placeholder], dim: int) -> Placeholder:
        """One ``Concat`` of ``parts`` along ``dim`` (every other axis must agree)."""
        others = {p.shape[:dim] + p.shape[dim + 1:] for p in parts}
        if len(others) != 1:
            raise PoolportError(f"counting backend: concat along {dim} of shapes {[p.shape for p in parts]}.")
        self.counts["Concat"] += 1
        first = parts[0].shape
        return Placeholder(first[:dim] + (sum(p.shape[dim] for p in parts),) + first[dim + 1:])

    def copy(self, x: Placeholder) -> Placeholder:
        """One ``Identity``."""
        self.counts["Identity"] += 1
        return x


@lru_cache(maxsize=4096)
def _counted(plan: PoolPlan) -> tuple[tuple[str, int], ...]:
    ops = CountingOps()
    y = execute(plan, Placeholder((1, 1, *plan.in_size)), ops, 2 + plan.ndim)
    if y.shape[2:] != plan.out_size:
        raise PoolportError(f"counting backend: {plan.op} plan {plan.in_size} -> {plan.out_size} computes "
                            f"{y.shape[2:]}.")
    return tuple(sorted(ops.counts.items()))


def count_ops(plan: PoolPlan) -> Counter:
    """The ONNX operators, with their counts, that ``plan`` is written with (in its style): what
    ``execute`` asks any backend for, counted (for the pooling itself; the constants a Slice reads aside)."""
    return Counter(dict(_counted(plan)))


def describe_counts(counts: Counter | dict) -> str:
    """Operator counts as a short text, e.g. ``AveragePool x6, Concat x2, Slice x6``."""
    if not counts:
        return "none"
    return ", ".join(f"{name} x{count}" if count > 1 else name for name, count in sorted(counts.items()))

