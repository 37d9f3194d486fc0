"""The planning layer: pure integer geometry, no torch, no numpy; every result is cached and printable.

* ``windows``  -- PyTorch's adaptive windows and the copied ``stride = n // o`` formula's verdict.
* ``axis``     -- the per-axis plan (identity, global, uniform, runs).
* ``pooling``  -- per-axis plans composed into passes for a 1d/2d/3d pooling call.
* ``same``     -- TF 'SAME'/'VALID' padding and the plan that maps it onto native pooling ops.
* ``pads``     -- PyTorch/ONNX explicit pads and ``ceil_mode``: output sizes, windows and divisors.
* ``explicit`` -- the explicit form: Pad + a pooling op without padding + a divisor correction.
* ``taps``     -- the tap form: a (dilated) pooling as its kernel taps.
* ``generic``  -- the size-generic plan for symbolic sizes.
"""

from .axis import AxisPlan, Run, plan_axis
from .pooling import Pass, PoolPlan, plan_pool
from .windows import CopiedFormula, adaptive_windows, copied_formula

__all__ = [
    "AxisPlan",
    "CopiedFormula",
    "Pass",
    "PoolPlan",
    "Run",
    "adaptive_windows",
    "copied_formula",
    "plan_axis",
    "plan_pool",
]
