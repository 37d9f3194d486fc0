"""Drop-in replacements for ``torch.nn.functional`` pooling calls, exact and portable."""

from .adaptive import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
)
from .pools import (
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool2d,
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
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_unpool2d",
]
