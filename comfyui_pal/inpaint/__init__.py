"""Built-in inpainters that need no diffusion model."""

from .smooth import smooth_fill

__all__ = ["smooth_fill"]
