"""The official PAL4VST segmentor: Swin backbone + UPerNet head (mmseg ``EncoderDecoder``).

``SwinUperNet(config)(x)`` takes ``[B,3,H,W]`` normalised RGB (see ``constants``) and returns
2-class logits ``[B,2,H,W]`` at the input resolution: mmseg's ``encode_decode``, i.e. the
head's stride-4 logits resized straight to ``H x W`` (bilinear, align_corners=False).

The auxiliary FCN head (``auxiliary_head.*`` in official checkpoints) only adds a training
loss; it is built when ``config.aux_channels`` is set (for fine-tuning) and otherwise its
weights are dropped on load.

Module names are mmseg's, so an mmseg state_dict loads by name; ``checkpoint_filter_fn`` holds
everything else a foreign checkpoint needs (what to drop). The ``Segmentor`` interface names
``backbone`` as ``encoder`` and ``decode_head.conv_seg`` as ``classifier``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch import Tensor, nn

from .base import Segmentor
from .swin import SwinTransformer
from .uper_head import FCNHead, UPerHead, resize

ARCH = "swin_upernet"


@dataclass(frozen=True)
class SwinUperNetConfig:
    """Hyper-parameters; the defaults are the released PAL4VST model (Swin-B, UPerNet 512)."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 12
    mlp_ratio: int = 4
    patch_size: int = 4
    channels: int = 512
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    num_classes: int = 2
    aux_channels: int | None = None  # auxiliary FCN head width; None = no auxiliary head
    aux_in_index: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SwinUperNetConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("depths", "num_heads", "pool_scales"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


class SwinUperNet(Segmentor):
    """Swin + UPerNet segmentor with mmseg module names (``backbone``, ``decode_head``)."""

    arch = ARCH
    input_resample = "bicubic"  # the official PAL4VST app resizes with PIL's BICUBIC

    def __init__(self, config: SwinUperNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SwinUperNetConfig()
        self.backbone = SwinTransformer(
            config.embed_dim,
            config.depths,
            config.num_heads,
            config.window,
            config.mlp_ratio,
            config.patch_size,
        )
        chans = self.backbone.out_channels
        self.decode_head = UPerHead(chans, config.channels, config.num_classes, config.pool_scales)
        self.auxiliary_head = None
        if config.aux_channels:
            self.auxiliary_head = FCNHead(
                chans[config.aux_in_index], config.aux_channels, config.num_classes
            )

    @property
    def encoder(self) -> SwinTransformer:
        """The Swin backbone (stored as ``backbone``, mmseg's name)."""
        return self.backbone

    @property
    def classifier(self) -> nn.Conv2d:
        """The final 1x1 conv of the decode head (stored as ``decode_head.conv_seg``)."""
        return self.decode_head.conv_seg

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[B,3,H,W]`` -> logits ``[B,num_classes,H,W]``."""
        return resize(self.decode_head(self.backbone(x)), x.shape[2:])

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits at input size and, with an auxiliary head, its logits at stage-3 size."""
        feats = self.backbone(x)
        logits = resize(self.decode_head(feats), x.shape[2:])
        aux = None
        if self.auxiliary_head is not None:
            aux = self.auxiliary_head(feats[self.config.aux_in_index])
        return logits, aux

    def drop_auxiliary_head(self) -> None:
        """Remove the auxiliary FCN head and set ``config.aux_channels`` to None."""
        self.auxiliary_head = None
        self.config = SwinUperNetConfig.from_dict({**self.config.to_dict(), "aux_channels": None})


# mmseg keys that are not weights of this model:
# - data_preprocessor.{mean,std}: mmseg's normalisation, kept by TorchScript exports;
# - *.relative_position_index: a constant of the window size, rebuilt by WindowMSA.
_FOREIGN_PREFIXES = ("data_preprocessor.",)
_DERIVED_SUFFIXES = (".relative_position_index",)
_AUX_PREFIX = "auxiliary_head."


def checkpoint_filter_fn(
    state_dict: dict[str, Tensor], keep_aux: bool = False
) -> dict[str, Tensor]:
    """Map an mmseg (0.x / 1.x ``.pth`` or ``end2end.pt``) state_dict onto this model's keys.

    Every parameter already has mmseg's name, so mapping is dropping: mmseg's normaliser
    buffers, the derived ``relative_position_index`` buffers and, unless ``keep_aux``, the
    training-only ``auxiliary_head.*``. Our own safetensors pass through unchanged (older
    conversions lose their stored index). The input is not modified; values are not copied.
    """
    out = {}
    for key, value in state_dict.items():
        if key.startswith(_FOREIGN_PREFIXES) or key.endswith(_DERIVED_SUFFIXES):
            continue
        if not keep_aux and key.startswith(_AUX_PREFIX):
            continue
        out[key] = value
    return out


def config_from_state_dict(sd: dict[str, Tensor], keep_aux: bool = False) -> SwinUperNetConfig:
    """Infer every hyper-parameter a state_dict determines (pool scales cannot be: 1,2,3,6).

    Raises ``ValueError`` naming the missing key when the dict is not a Swin + UPerNet one.
    """

    def need(key: str) -> Tensor:
        if key not in sd:
            raise ValueError(f"not a Swin + UPerNet state_dict: missing {key!r}")
        return sd[key]

    proj = need("backbone.patch_embed.projection.weight")
    embed = proj.shape[0]
    depths, heads = [], []
    s = 0
    while f"backbone.stages.{s}.blocks.0.norm1.weight" in sd:
        d = 0
        while f"backbone.stages.{s}.blocks.{d}.norm1.weight" in sd:
            d += 1
        depths.append(d)
        table = need(f"backbone.stages.{s}.blocks.0.attn.w_msa.relative_position_bias_table")
        heads.append(table.shape[1])
        s += 1
    if not depths:
        raise ValueError("not a Swin + UPerNet state_dict: no backbone.stages.*.blocks found")
    rows = need("backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table").shape[0]
    window = (math.isqrt(rows) + 1) // 2
    hidden = need("backbone.stages.0.blocks.0.ffn.layers.0.0.weight").shape[0]
    seg = need("decode_head.conv_seg.weight")
    n_pool = sum(
        1 for k in sd if k.startswith("decode_head.psp_modules.") and k.endswith(".conv.weight")
    )
    if n_pool != 4:
        raise ValueError(
            f"found {n_pool} pyramid pooling branches; only the standard 4 (scales 1, 2, 3, 6) "
            "can be inferred from weights - convert with an explicit config"
        )
    pool_scales = (1, 2, 3, 6)
    aux = sd.get("auxiliary_head.convs.0.conv.weight")
    return SwinUperNetConfig(
        embed_dim=embed,
        depths=tuple(depths),
        num_heads=tuple(heads),
        window=window,
        mlp_ratio=hidden // embed,
        patch_size=proj.shape[-1],
        channels=seg.shape[1],
        pool_scales=pool_scales,
        num_classes=seg.shape[0],
        aux_channels=int(aux.shape[0]) if keep_aux and aux is not None else None,
    )
