"""Drop-in replacements for ``torch.nn.functional`` pooling calls, exact and portable."""

from .adaptive import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
)
from .same import (
    avg_pool1d_same,
    avg_pool2d_same,
    avg_pool3d_same,
    global_avg_pool,
    global_max_pool,
    max_pool1d_same,
    max_pool2d_same,
    max_pool3d_same,
)

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d_same",
    "avg_pool2d_same",
    "avg_pool3d_same",
    "max_pool1d_same",
    "max_pool2d_same",
    "max_pool3d_same",
    "global_avg_pool",
    "global_max_pool",
]
