"""Reading and writing image files for the CLI: float tensors in, atomic writes out."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def load_image(path: str | Path) -> Tensor:
    """Load an image file as RGB ``[1,3,H,W]`` float32 0..1 (alpha dropped, grey expanded)."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    arr = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def load_mask(path: str | Path) -> Tensor:
    """Load a mask file as ``[1,H,W]`` float32 0..1 (luminance; alpha if it is the only signal)."""
    try:
        with Image.open(path) as im:
            im.load()
            grey = im.convert("L")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read mask {path}: {exc}") from exc
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]


def to_uint8(x: Tensor) -> np.ndarray:
    """``[C,H,W]`` or ``[H,W]`` float 0..1 -> HxWxC (or HxW) uint8, rounded."""
    arr = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
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
    """Image files named directly or found (non-recursively) in folders, sorted per folder."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    return files
