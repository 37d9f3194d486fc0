"""Drop-in ``torch.nn`` pooling modules, exact and portable."""

from .adaptive import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
)
from .pools import (
    AvgPool2d,
    AvgPool3d,
    FractionalMaxPool2d,
    FractionalMaxPool3d,
    LPPool1d,
    LPPool2d,
    LPPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from .same import (
    AvgPool1dSame,
    AvgPool2dSame,
    AvgPool3dSame,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1dSame,
    MaxPool2dSame,
    MaxPool3dSame,
)

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1dSame",
    "AvgPool2dSame",
    "AvgPool3dSame",
    "MaxPool1dSame",
    "MaxPool2dSame",
    "MaxPool3dSame",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
]
