"""PyTorch's adaptive pooling windows along one axis, and the widely copied formula that approximates them.

Pure integer geometry: no torch, no numpy.

Window ``i`` of ``o`` windows over ``n`` inputs is ``[floor(i*n/o), ceil((i+1)*n/o))`` (ATen's
``start_index``/``end_index``). When ``n % o != 0`` neighbouring windows overlap and window lengths
take two values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import PoolportError

Window = tuple[int, int]  # half-open [start, stop)


def check_axis_sizes(n: int, o: int, *, where: str = "adaptive pooling") -> None:
    """Raise a PoolportError unless ``n`` and ``o`` are positive integers."""
    for name, v in (("input size", n), ("output size", o)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise PoolportError(f"{where}: {name} must be an int, got {v!r} ({type(v).__name__}).")
    if n <= 0:
        raise PoolportError(
            f"{where}: input size {n} is empty; every pooled dimension needs at least one element "
            f"(check the model's input resolution)."
        )
    if o <= 0:
        raise PoolportError(f"{where}: output size must be >= 1, got {o} for an input of size {n}.")


@lru_cache(maxsize=4096)
def adaptive_windows(n: int, o: int) -> tuple[Window, ...]:
    """PyTorch's ``o`` adaptive windows over an axis of ``n`` elements, as ``(start, stop)`` pairs."""
    check_axis_sizes(n, o)
    return tuple(((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o))


@dataclass(frozen=True)
class CopiedFormula:
    """Verdict on ``stride = n // o; kernel = n - (o - 1) * stride`` for one axis.

    That formula (Torch-TensorRT, torch2trt, many blog posts) is exact only when PyTorch's windows
    are uniform *and* the formula happens to land on them.
    """

    n: int
    o: int
    kernel: int | None  # None when the formula is undefined (o > n gives stride 0)
    stride: int | None
    differing: tuple[int, ...]  # output indices whose window differs from PyTorch's

    @property
    def defined(self) -> bool:
        """False when the formula is undefined (output larger than input)."""
        return self.stride is not None and self.stride > 0

    @property
    def exact(self) -> bool:
        """Whether the formula lands on PyTorch's windows."""
        return self.defined and not self.differing

    def windows(self) -> tuple[Window, ...]:
        """The formula's windows (empty when undefined)."""
        if not self.defined:
            return ()
        return tuple((i * self.stride, i * self.stride + self.kernel) for i in range(self.o))

    def verdict(self) -> str:
        """The verdict in words."""
        if not self.defined:
            return f"undefined: stride = {self.n} // {self.o} = 0 (output larger than input)"
        if self.exact:
            return f"exact (kernel {self.kernel}, stride {self.stride})"
        shown = ", ".join(str(i) for i in self.differing[:12])
        more = "" if len(self.differing) <= 12 else f", ... ({len(self.differing)} in all)"
        return (
            f"WRONG (kernel {self.kernel}, stride {self.stride}): windows {shown}{more} "
            f"differ from PyTorch's"
        )


@lru_cache(maxsize=4096)
def copied_formula(n: int, o: int) -> CopiedFormula:
    """Analyse the copied ``stride = n // o`` formula against PyTorch's windows."""
    true = adaptive_windows(n, o)
    stride = n // o
    if stride == 0:
        return CopiedFormula(n, o, None, None, tuple(range(o)))
    kernel = n - (o - 1) * stride
    differing = tuple(
        i for i, (a, b) in enumerate(true) if (a, b) != (i * stride, i * stride + kernel)
    )
    return CopiedFormula(n, o, kernel, stride, differing)
