"""Detector architectures and checkpoint loading."""

from .base import Segmentor
from .loading import Checkpoint, build_model, convert, load_model_file, read_checkpoint
from .pal_lite import PalLite, PalLiteConfig
from .swin_upernet import SwinUperNet, SwinUperNetConfig

__all__ = [
    "Checkpoint",
    "PalLite",
    "PalLiteConfig",
    "Segmentor",
    "SwinUperNet",
    "SwinUperNetConfig",
    "build_model",
    "convert",
    "load_model_file",
    "read_checkpoint",
]
