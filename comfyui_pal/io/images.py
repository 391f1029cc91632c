"""Reading and writing image files for the CLI: float tensors in, atomic writes out."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # training data
INPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".gif")  # what the commands read (an animated one: an error)
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit grey (and 32-bit int) images


def _open(path: str | Path, what: str) -> Image.Image:
    """The still picture in ``path`` as displayed (EXIF orientation applied), fully read.

    Raises ``ValueError`` naming the file for what cannot be read, what Pillow refuses as a
    decompression bomb (above ~179 MP), and animations (more than one frame)."""
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise ValueError(
                    f"{what} {path} is animated ({frames} frames); comfyui-pal reads still "
                    f"images: extract the frames first (e.g. ffmpeg -i {Path(path).name} "
                    "frame_%04d.png)"
                )
            im.load()
            return ImageOps.exif_transpose(im)
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"{what} {path} is too large to read safely ({exc}); downscale it first"
        ) from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read {what} {path}: {exc}") from exc


def _grey_wide(im: Image.Image) -> np.ndarray:
    """HxW float32 0..1 of a 16-bit (or 32-bit int) grey image, scaled by 65535, not clipped."""
    return np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0, 1).astype(np.float32)


def load_image(path: str | Path) -> Tensor:
    """Load a still image file as RGB ``[1,3,H,W]`` float32 0..1, as it is displayed (EXIF
    orientation applied); alpha dropped, grey expanded, 16-bit grey scaled (not clipped)."""
    im = _open(path, "image")
    if im.mode in WIDE_MODES:
        grey = torch.from_numpy(_grey_wide(im))
        return grey.expand(1, 3, *grey.shape).contiguous()
    rgb = torch.from_numpy(np.array(im.convert("RGB")))  # [H,W,3] uint8 (writable), no float
    out = torch.empty(1, 3, *rgb.shape[:2])
    out[0].copy_(rgb.permute(2, 0, 1))  # one float32 allocation for any size
    return out.div_(255.0)


def load_mask(path: str | Path) -> Tensor:
    """Load a mask file as ``[1,H,W]`` float32 0..1: its luminance, or its alpha channel when
    that is the only signal (a transparent PNG whose colour is uniform)."""
    im = _open(path, "mask")
    if im.mode in WIDE_MODES:
        return torch.from_numpy(_grey_wide(im))[None]
    grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    if "A" in im.getbands() or "transparency" in im.info:
        alpha = np.asarray(im.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        if grey.min() == grey.max() and alpha.min() != alpha.max():
            grey = alpha
    return torch.from_numpy(grey)[None]


def to_uint8(x: Tensor) -> np.ndarray:
    """``[C,H,W]`` or ``[H,W]`` float 0..1 -> HxWxC (or HxW) uint8, rounded."""
    arr = x.detach().float().clamp(0, 1).mul_(255.0).round_().to(torch.uint8).cpu().numpy()
    return arr.transpose(1, 2, 0) if arr.ndim == 3 else arr


_UMASK = os.umask(0o022)  # read the process umask once (it can only be read by setting it)
os.umask(_UMASK)


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename, so
    nobody ever reads half a file and an interrupted write leaves the old one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600): not ours
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_image(x: Tensor, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``[C,H,W]`` (or ``[H,W]``) float 0..1 to ``path`` atomically (temp file + rename).

    Refuses to replace an existing file unless ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format of {path}; use .png, .jpg or .webp")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, format=fmt)
    write_atomic(path, buf.getvalue())
    return path


def list_images(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in folders, sorted per folder.
    Only regular files are read (a FIFO or device named ``x.png`` in a folder is skipped: it
    would block); a named input that is missing or not a regular file is an error."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(
                p for p in item.iterdir() if p.suffix.lower() in INPUT_SUFFIXES and p.is_file()
            )
        elif item.is_file():
            files.append(item)
        elif item.exists():
            raise ValueError(f"input {item} is not a regular file (a FIFO or device?)")
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    return files
