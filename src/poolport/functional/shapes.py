"""Reading spatial sizes as Python ints, on purpose: poolport's plans are integer geometry of the
static input size, so a trace is specialised to the traced size. torch.jit warns about exactly that;
the warning is silenced here (Dynamo does not allow warnings filters, so only when jit-tracing)."""

from __future__ import annotations

import warnings

import torch


def static_size(x: torch.Tensor, d: int) -> tuple[int, ...]:
    """The last ``d`` sizes of ``x`` as Python ints (a trace is specialised to them)."""
    if torch.jit.is_tracing():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            return tuple(int(n) for n in x.shape[-d:])
    return tuple(int(n) for n in x.shape[-d:])


def is_symbolic(n) -> bool:
    """Whether a size is symbolic (a SymInt that torch.export or torch.compile keeps dynamic)."""
    if not isinstance(n, torch.SymInt):
        return False
    if torch.compiler.is_dynamo_compiling():
        return True  # Dynamo hands static sizes over as ints, dynamic ones as SymInts
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    return not is_concrete_int(n)
