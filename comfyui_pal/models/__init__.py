"""Detector architectures and checkpoint loading."""

from .loading import Checkpoint, build_model, convert, load_model_file, read_checkpoint
from .swin_upernet import SwinUperNet, SwinUperNetConfig

__all__ = [
    "Checkpoint",
    "SwinUperNet",
    "SwinUperNetConfig",
    "build_model",
    "convert",
    "load_model_file",
    "read_checkpoint",
]
