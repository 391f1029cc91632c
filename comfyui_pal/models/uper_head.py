"""UPerNet decode head and FCN auxiliary head, named like mmsegmentation's for loading by name.

``UPerHead`` (Xiao et al., ECCV 2018): a pyramid pooling module on the last stage, a
top-down FPN over all stages, fused at stride 4. ``FCNHead`` is mmseg's auxiliary head on
stage 3: it only adds a training loss, inference never uses it.

Every resize is bilinear with ``align_corners=False`` and an explicit size, as in mmseg.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def resize(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Bilinear resize of ``[B,C,h,w]`` to ``size`` (align_corners=False)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvModule(nn.Module):
    """``conv`` (no bias) -> ``bn`` -> ReLU, as mmcv's ConvModule with BN."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)

    def forward_concat(self, xs: list[Tensor]) -> Tensor:
        """``forward(torch.cat(xs, dim=1))`` without building the concatenation.

        A convolution over stacked channels is the sum of convolutions over each part with
        its slice of the weight; on UPerNet's fused 4 x 512-channel stride-4 map this saves
        copying the largest tensor of the head (~5 % of a 512x512 forward on CPU).
        """
        w = self.conv.weight
        channels = sum(x.shape[1] for x in xs)
        if channels != w.shape[1]:
            raise ValueError(f"{channels} input channels for a conv over {w.shape[1]}")
        y, start = None, 0
        for x in xs:
            part = F.conv2d(x, w[:, start : start + x.shape[1]], padding=self.conv.padding)
            y = part if y is None else y.add_(part)
            start += x.shape[1]
        return F.relu(self.bn(y), inplace=True)


class UPerHead(nn.Module):
    """UPerNet head: ``[f1..f4]`` (strides 4..32) -> class logits at stride 4."""

    def __init__(
        self,
        in_channels: list[int],
        channels: int = 512,
        num_classes: int = 2,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)  # first, as in mmseg's key order
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(in_channels[-1], channels, 1))
            for s in pool_scales
        )
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3)

    def _psp(self, x: Tensor) -> Tensor:
        pooled = [resize(ppm(x), x.shape[2:]) for ppm in self.psp_modules]
        return self.bottleneck.forward_concat([x, *pooled])

    def forward(self, feats: list[Tensor]) -> Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats, strict=False)]
        laterals.append(self._psp(feats[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals, strict=False)]
        outs.append(laterals[-1])
        size = outs[0].shape[2:]
        outs = [outs[0]] + [resize(o, size) for o in outs[1:]]
        return self.conv_seg(self.fpn_bottleneck.forward_concat(outs))


class FCNHead(nn.Module):
    """Auxiliary head (training only): one 3x3 ConvModule and a 1x1 classifier on one stage."""

    def __init__(self, in_channels: int, channels: int = 256, num_classes: int = 2) -> None:
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.convs = nn.Sequential(ConvModule(in_channels, channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_seg(self.convs(x))
