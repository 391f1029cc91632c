"""Built-in inpainters that need no diffusion model."""

from .patchmatch import patchmatch_fill
from .smooth import smooth_fill

__all__ = ["patchmatch_fill", "smooth_fill"]
