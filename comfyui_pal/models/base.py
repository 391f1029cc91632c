"""What every detector architecture offers: encoder + decoder + 1x1 classifier, one interface.

Training, calibration and the loaders use only this interface, never module names: the Swin
model keeps mmseg's names (``backbone``, ``decode_head.conv_seg``) so official checkpoints
load by key, and exposes them here as ``encoder`` and ``classifier`` (properties, so no
state_dict key changes).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn


class Segmentor(nn.Module):
    """Base of the 2-class artifact segmentors.

    A subclass provides

    - ``arch``: the architecture name written to and read from our safetensors;
    - ``input_resample``: how ``detect``'s resize mode brings an image to 512x512 for this
      model (``"bicubic"``, PIL's filter, or ``"bilinear"``), i.e. what it was trained with;
    - ``upsamples_input``: whether small images are enlarged to 512x512 too (the released
      PAL4VST models, as the paper's app does), or thumbnails are seen at their own size
      (models trained on native-resolution crops; ``pipelines.detect.work_size``);
    - ``config``: a frozen dataclass with ``to_dict()`` / ``from_dict()``;
    - ``encoder``: the feature extractor (an attribute or a property);
    - ``classifier``: the final ``Conv2d(C, num_classes, 1)``, whose output, resized to the
      input, is the logits;
    - ``forward(x)``: normalised ``[B,3,H,W]`` float -> logits ``[B,num_classes,H,W]``.
    """

    arch: ClassVar[str]
    input_resample: ClassVar[str] = "bicubic"
    upsamples_input: ClassVar[bool] = True
    config: Any
    encoder: nn.Module
    classifier: nn.Conv2d

    def __init__(self) -> None:
        super().__init__()
        self._encoder_frozen = False

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[B,3,H,W]`` -> logits ``[B,num_classes,H,W]`` at the input size."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits ``[B,num_classes,H,W]`` and auxiliary logits ``[B,num_classes,h,w]`` (or
        None) for the training loss; without an auxiliary head it is ``(self(x), None)``."""
        return self(x), None

    def drop_auxiliary_head(self) -> None:
        """Remove training-only heads (and their config entry) before saving; a no-op here."""

    def init_non_persistent_buffers(self) -> None:
        """Recompute derived buffers (never loaded, never saved) on the parameters' device.

        Needed after building on the ``meta`` device and loading with ``assign=True``: the
        load fills parameters and persistent buffers only.
        """
        for module in self.modules():
            init = getattr(module, "init_non_persistent_buffers", None)
            if module is not self and init is not None:
                init()

    def freeze_encoder(self) -> None:
        """Stop training the encoder: no gradients for its parameters, and it stays in eval
        mode (BatchNorm running statistics kept, dropout off) through later ``train()``."""
        self.encoder.requires_grad_(False)
        self._encoder_frozen = True
        self.encoder.eval()

    def train(self, mode: bool = True) -> Segmentor:
        """``nn.Module.train``, except that a frozen encoder stays in eval mode."""
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self
