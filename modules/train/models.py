"""CIFAR models: ResNet-20/32/56/110 (He et al. 2016), VGG-11/13/16/19 with batch norm, WRN-d-k (Zagoruyko &
Komodakis 2016)."""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions; the shortcut subsamples and zero-pads channels (the paper's option A, no weights)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def scaled(channels: int, factor: float) -> int:
    """A layer's channel count times the width factor, at least one."""
    return max(1, round(channels * factor))


class ResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2: three stages of n blocks with 16, 32 and 64 channels (times `width_factor`)."""

    def __init__(self, depth: int, classes: int = 10, width_factor: float = 1.0) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110), not {depth}")
        n = (depth - 2) // 6
        first = scaled(16, width_factor)
        self.conv = nn.Conv2d(3, first, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(first)
        layers, cin = [], first
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_ResidualBlock(cin, scaled(width, width_factor), stride if i == 0 else 1))
                cin = scaled(width, width_factor)
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


VGG_LAYERS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG with batch norm for 32x32 inputs: the convolutional stack, then one linear classifier."""

    def __init__(self, depth: int, classes: int = 10, width_factor: float = 1.0) -> None:
        super().__init__()
        if depth not in VGG_LAYERS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_LAYERS)}, not {depth}")
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG_LAYERS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                cout = scaled(int(item), width_factor)
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class _WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3; a 1x1 convolution when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, self.dropout, self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-d-k: depth d = 6n+4, widths 16k, 32k and 64k."""

    def __init__(self, depth: int, width: int, classes: int = 10, dropout: float = 0.0,
                 width_factor: float = 1.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet has depth 6n+4 (16, 22, 28, 40), not {depth}")
        n = (depth - 4) // 6
        cin = scaled(16, width_factor)
        self.conv = nn.Conv2d(3, cin, 3, 1, 1, bias=False)
        layers = []
        for channels, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
            for i in range(n):
                layers.append(_WideBlock(cin, scaled(channels, width_factor), stride if i == 0 else 1, dropout))
                cin = scaled(channels, width_factor)
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_model(name: str, classes: int = 10, dropout: float = 0.0, width_factor: float = 1.0) -> nn.Module:
    """`resnet56`, `vgg19`, `wrn16-8` (also `wrn-16-8`), case-insensitive; `width_factor` scales every layer."""
    if not width_factor > 0:
        raise ValueError(f"width_factor must be above 0, not {width_factor}")
    key = name.lower().replace("_", "")
    if match := re.fullmatch(r"resnet-?(\d+)", key):
        return ResNet(int(match.group(1)), classes, width_factor)
    if match := re.fullmatch(r"vgg-?(\d+)(?:bn)?", key):
        return VGG(int(match.group(1)), classes, width_factor)
    if match := re.fullmatch(r"wrn-?(\d+)-(\d+)", key):
        return WideResNet(int(match.group(1)), int(match.group(2)), classes, dropout, width_factor)
    raise ValueError(f"unknown model {name!r}: use resnet20/32/44/56/110, vgg11/13/16/19 or wrn<depth>-<width>")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
