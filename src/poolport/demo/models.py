"""Small models that reproduce real deployment failures, shipped with poolport (random weights).

* ``vgg_style``   -- torchvision's VGG layout (5 conv stages, ``AdaptiveAvgPool2d(7)``, MLP head),
  slimmed; at 320x320 the head pools 10x10 -> 7x7, which torch.onnx's TorchScript exporter refuses.
* ``pspnet_style`` -- PSPNet's pyramid pooling module: bins 1, 2, 3 and 6 over a 15x15 feature map,
  each a 1x1 conv, upsampled and concatenated.
* ``maxpool_style`` -- adaptive max pooling, as a module and as timm's concatenated avg+max head:
  neither torch exporter supports it at non-divisible sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGStyle(nn.Module):
    """torchvision's VGG layout, slimmed: five conv stages, ``AdaptiveAvgPool2d(7)``, an MLP head."""

    def __init__(self, num_classes: int = 10, widths=(16, 32, 64, 64, 64)):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [_conv(cin, w), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(nn.Linear(cin * 49, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes))

    def forward(self, x):
        """Logits (N, num_classes)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: adaptive average bins, 1x1 convs, upsampled and concatenated."""

    def __init__(self, cin: int, bins=(1, 2, 3, 6)):
        super().__init__()
        cout = cin // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
            for b in bins
        )

    def forward(self, x):
        """The input and every upsampled bin, concatenated on channels."""
        h, w = x.shape[-2:]
        pyramid = [F.interpolate(s(x), size=(h, w), mode="bilinear", align_corners=False) for s in self.stages]
        return torch.cat([x, *pyramid], 1)


class PyramidHead(nn.Module):
    """A PSPNet-style pooling head on its own: adaptive average bins 1, 2, 3, 6 and an adaptive max (3, 5),
    each upsampled back to the input's size and concatenated with it. Fully convolutional: it runs at
    every input size, which is what the dynamic-size tests and benchmarks need."""

    def __init__(self):
        super().__init__()
        self.bins = nn.ModuleList(nn.AdaptiveAvgPool2d(b) for b in (1, 2, 3, 6))
        self.max = nn.AdaptiveMaxPool2d((3, 5))

    def forward(self, x):
        """(N, C, H, W) -> (N, 6C, H, W)."""
        size = x.shape[-2:]
        pooled = [*(b(x) for b in self.bins), self.max(x)]
        return torch.cat([x, *(F.interpolate(p, size=size, mode="nearest") for p in pooled)], 1)


class PSPNetStyle(nn.Module):
    """A small backbone, PSPNet's pyramid pooling head and a per-pixel classifier."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.backbone = nn.Sequential(_conv(3, 16, 2), _conv(16, 32, 2), _conv(32, 64, 2))
        self.ppm = PyramidPooling(64)
        self.head = nn.Conv2d(128, num_classes, 1)

    def forward(self, x):
        """Per-pixel logits at the input's size."""
        size = x.shape[-2:]
        return F.interpolate(self.head(self.ppm(self.backbone(x))), size=size, mode="bilinear", align_corners=False)


class MaxPoolStyle(nn.Module):
    """Adaptive max pooling as a module and timm's 'catavgmax' head."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(_conv(3, 16, 2), _conv(16, 32, 2))
        self.pool = nn.AdaptiveMaxPool2d((5, 5))
        self.fc = nn.Linear(32 * 25 + 64, num_classes)

    def forward(self, x):
        """Logits (N, num_classes)."""
        f = self.features(x)
        local = self.pool(f).flatten(1)
        # timm's 'catavgmax' head: global average and max, concatenated
        head = torch.cat([F.adaptive_avg_pool2d(f, 1), F.adaptive_max_pool2d(f, 1)], 1).flatten(1)
        return self.fc(torch.cat([local, head], 1))


def vgg_style(**kwargs) -> nn.Module:
    """A ``VGGStyle`` model (random weights)."""
    return VGGStyle(**kwargs)


def pspnet_style(**kwargs) -> nn.Module:
    """A ``PSPNetStyle`` model (random weights)."""
    return PSPNetStyle(**kwargs)


def maxpool_style(**kwargs) -> nn.Module:
    """A ``MaxPoolStyle`` model (random weights)."""
    return MaxPoolStyle(**kwargs)


# name -> (factory, example input shape, what it shows)
DEMOS = {
    "vgg_style": (vgg_style, (1, 3, 320, 320), "VGG-style classifier at 320x320: AdaptiveAvgPool2d(7) on 10x10"),
    "pspnet_style": (pspnet_style, (1, 3, 120, 120), "PSPNet pyramid pooling: bins 1, 2, 3, 6 on a 15x15 map"),
    "maxpool_style": (maxpool_style, (1, 3, 52, 52), "adaptive max pooling 13x13 -> 5x5 and a catavgmax head"),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """Demo model ``name`` in eval mode (seeded weights) and its example input."""
    factory, shape, _ = DEMOS[name]
    torch.manual_seed(0)
    model = factory().eval()
    return model, torch.randn(*shape, generator=torch.Generator().manual_seed(1))
