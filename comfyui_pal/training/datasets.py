"""Training and benchmark data: licensed source images, procedural images, synthetic
artifacts on the fly, and folders in the PAL dataset layout (``images/`` + ``masks/``).

Sources (never committed): the base set that ``comfyui-pal data`` builds from installed
packages (``sources.py``: ``train/`` and ``heldout/`` folders with a manifest), found at
``$PAL_DATA`` or ``runs/data``; without it, scikit-image's sample photographs and Debian's
mate / gnome wallpapers as installed; and procedural images made here from a seed.

``HELD_OUT`` names source images that never appear in training, and so does everything under
a ``heldout/`` folder; the held-out benchmark and the examples are made from them.
"""

from __future__ import annotations

import io
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from ..io.images import IMAGE_SUFFIXES, load_image, load_mask
from .sources import HELD_NAMES
from .synth import FAMILIES, corrupt

HELD_OUT = HELD_NAMES
DEFAULT_DATA = Path("runs/data")
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "ihc",
    "retina",
    "brick",
    "grass",
    "gravel",
    "camera",
    "moon",
)
DEBIAN_DIRS = ("/usr/share/backgrounds/mate", "/usr/share/backgrounds/gnome")
MAX_SOURCE_SIDE = 1024


def skimage_sources() -> list[Path]:
    """scikit-image's sample photographs, when scikit-image is installed."""
    try:
        import skimage
    except ImportError:
        return []
    data = Path(skimage.__file__).parent / "data"
    return sorted(
        p for p in data.iterdir() if p.stem in SKIMAGE_PHOTOS and p.suffix.lower() in IMAGE_SUFFIXES
    )


def debian_sources() -> list[Path]:
    """Raster wallpapers from Debian's background packages, when installed."""
    out = []
    for d in map(Path, DEBIAN_DIRS):
        if d.is_dir():
            out += sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return out


def data_dir() -> Path | None:
    """The built base set (``$PAL_DATA``, else ``runs/data``) when it exists."""
    d = Path(os.environ.get("PAL_DATA", DEFAULT_DATA))
    return d if (d / "manifest.json").is_file() else None


def find_sources(dirs: list[str | Path] | None = None) -> list[Path]:
    """All source images: given folders, else the built base set (``data_dir()``), else
    scikit-image + Debian wallpapers as installed."""
    if not dirs:
        built = data_dir()
        if built is None:
            return skimage_sources() + debian_sources()
        dirs = [built]
    found = []
    for d in map(Path, dirs):
        found += sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return found


def is_held_out(path: Path) -> bool:
    """True for a ``HELD_OUT`` stem or a file under a ``heldout/`` folder."""
    return path.stem in HELD_OUT or "heldout" in path.parts


def split_sources(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training, held-out) by ``is_held_out``; a file is in exactly one of them."""
    train = [p for p in paths if not is_held_out(p)]
    held = [p for p in paths if is_held_out(p)]
    return train, held


def load_source(path: Path) -> Tensor:
    """RGB ``[3,H,W]`` float 0..1, long side at most ``MAX_SOURCE_SIDE`` (area downscale)."""
    img = load_image(path)[0]
    h, w = img.shape[1:]
    scale = MAX_SOURCE_SIDE / max(h, w)
    if scale < 1:
        img = F.interpolate(img[None], size=(round(h * scale), round(w * scale)), mode="area")[0]
    return img


def load_source_u8(path: Path) -> Tensor:
    """``load_source`` kept as uint8 ``[3,H,W]`` (a quarter of the memory, for training)."""
    return (load_source(path) * 255).round().to(torch.uint8)


def draw_hard_structures(img: Tensor, g: torch.Generator) -> Tensor:
    """Real structures the detector must leave alone, drawn into a clean view: thin bright or
    dark lines and towers (wires, masts), specular highlights, rings (glasses, wheels),
    saturated shapes with sharp edges, hair-like bundles of thin curves."""
    from PIL import ImageDraw

    _, h, w = img.shape
    arr = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    big = Image.fromarray(arr).resize((w * 2, h * 2), Image.BICUBIC)
    draw = ImageDraw.Draw(big)

    def r(lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def colour(bright: bool | None = None) -> tuple[int, int, int]:
        if bright is None:
            return tuple(int(r(0, 255)) for _ in range(3))
        base = r(200, 255) if bright else r(0, 50)
        return tuple(int(min(255, max(0, base + r(-25, 25)))) for _ in range(3))

    for _ in range(int(r(1, 4))):
        kind = int(r(0, 5))
        x, y = r(0, 2 * w), r(0, 2 * h)
        if kind == 0:  # masts, wires, towers
            for _ in range(int(r(1, 4))):
                x2, y2 = x + r(-0.2, 0.2) * w, y + r(-1, 1) * h
                draw.line((x, y, x2, y2), fill=colour(r() < 0.5), width=int(r(1, 7)))
                x += r(-30, 30)
        elif kind == 1:  # specular highlights
            for _ in range(int(r(1, 6))):
                s = r(2, 14)
                cx, cy = x + r(-40, 40), y + r(-40, 40)
                draw.ellipse((cx - s, cy - s * r(0.4, 1), cx + s, cy + s), fill=colour(True))
        elif kind == 2:  # rings and frames
            s = r(0.04, 0.18) * 2 * min(h, w)
            draw.ellipse(
                (x - s, y - s * r(0.5, 1), x + s, y + s), outline=colour(), width=int(r(2, 9))
            )
        elif kind == 3:  # saturated flat shapes
            s = r(0.04, 0.2) * 2 * min(h, w)
            c = [0, 0, 0]
            c[int(r(0, 3))] = 255
            c[int(r(0, 3))] = int(r(0, 255))
            draw.polygon(
                [
                    (x + s * math.cos(a), y + s * math.sin(a))
                    for a in sorted(r(0, 2 * math.pi) for _ in range(int(r(3, 8))))
                ],
                fill=tuple(c),
            )
        else:  # hair: a bundle of thin curves
            c = colour()
            for _ in range(int(r(8, 30))):
                pts, hx, hy, a = [], x + r(-20, 20), y + r(-20, 20), r(0, 2 * math.pi)
                for _ in range(8):
                    pts.append((hx, hy))
                    a += r(-0.3, 0.3)
                    hx, hy = hx + 12 * math.cos(a), hy + 12 * math.sin(a)
                draw.line(
                    pts,
                    fill=tuple(int(min(255, max(0, v + r(-30, 30)))) for v in c),
                    width=int(r(1, 3)),
                )
    out = np.asarray(big.resize((w, h), Image.LANCZOS), dtype=np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def procedural_image(seed: int, h: int, w: int) -> Tensor:
    """A procedural scene ``[3,h,w]``: gradient sky, noise texture, discs, stripes, edges."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    c0, c1 = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
    t = yy * float(torch.rand((), generator=g)) + xx * float(torch.rand((), generator=g))
    img = c0 * (1 - t) + c1 * t
    for octave in (4, 9, 23):
        n = torch.randn(1, 3, octave, octave, generator=g)
        img = (
            img
            + 0.08
            / math.sqrt(octave / 4)
            * F.interpolate(n, size=(h, w), mode="bicubic", align_corners=False)[0]
        )
    for _ in range(int(torch.randint(2, 9, (), generator=g))):
        cx, cy, r = torch.rand(3, generator=g).tolist()
        col = torch.rand(3, 1, 1, generator=g)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < (0.02 + 0.2 * r) ** 2
        img = torch.where(disc[None], col, img)
    if float(torch.rand((), generator=g)) < 0.5:
        period = float(torch.randint(4, 24, (), generator=g))
        stripes = ((yy * h / period).floor() % 2)[None]
        band = (xx > 0.6) & (xx < 0.9)
        img = torch.where(band[None], img * (0.7 + 0.3 * stripes), img)
    return img.clamp(0, 1)


def _jpeg(img: Tensor, quality: int) -> Tensor:
    arr = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(out / 255.0).permute(2, 0, 1)


def random_view(src: Tensor, size: int, g: torch.Generator) -> Tensor:
    """Augmented ``[3,size,size]`` view: random scale, crop, flip, colour, JPEG."""
    _, h, w = src.shape
    short = min(h, w)
    target_short = float(torch.empty(()).uniform_(size, max(size, 2.5 * size), generator=g))
    scale = target_short / short
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = F.interpolate(
        src[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
    )[0]
    y = int(torch.randint(0, nh - size + 1, (), generator=g))
    x = int(torch.randint(0, nw - size + 1, (), generator=g))
    img = img[:, y : y + size, x : x + size]
    if float(torch.rand((), generator=g)) < 0.5:
        img = img.flip(2)
    gain = 1 + 0.25 * (float(torch.rand((), generator=g)) * 2 - 1)
    bias = 0.08 * (torch.rand(3, 1, 1, generator=g) * 2 - 1)
    img = ((img - 0.5) * gain + 0.5 + bias).clamp(0, 1)
    if float(torch.rand((), generator=g)) < 0.5:
        img = _jpeg(img, int(torch.randint(55, 96, (), generator=g)))
    return img.contiguous()


# share of draws per kind of base: composites are many files but few distinct scenes
GROUP_SHARES = {"portraits": 0.2, "text": 0.15}


def source_weights(paths: list[Path]) -> Tensor:
    """Sampling weight per file: ``GROUP_SHARES`` of the draws go to the composite folders
    (``portraits/``, ``text/``), the rest to the other files, evenly within each group."""
    groups = [p.parent.name if p.parent.name in GROUP_SHARES else "" for p in paths]
    present = {gname for gname in groups}
    rest = 1 - sum(GROUP_SHARES[gname] for gname in present if gname)
    share = {**GROUP_SHARES, "": max(rest, 0.0)} if "" in present else GROUP_SHARES
    total = sum(share[gname] for gname in present)
    counts = {gname: groups.count(gname) for gname in present}
    return torch.tensor([share[gname] / total / counts[gname] for gname in groups])


class SyntheticArtifacts(IterableDataset):
    """Endless (image, mask) pairs: augmented source views with synthetic artifacts planted.

    Yields ``[3,size,size]`` float 0..1 and ``[size,size]`` float 0/1. ``procedural`` is the
    share of procedural images; ``clean`` the share of samples left without artifacts;
    ``hard`` the share of views that get real thin / bright / saturated / hair structures
    drawn in before any artifact (never masked: the detector must leave them alone).
    """

    def __init__(
        self,
        sources: list[Path],
        size: int = 256,
        seed: int = 0,
        families: tuple[str, ...] = FAMILIES,
        procedural: float = 0.2,
        clean: float = 0.35,
        hard: float = 0.3,
    ) -> None:
        self.sources, self.size, self.seed = list(sources), size, seed
        self.families, self.procedural, self.clean, self.hard = families, procedural, clean, hard

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = get_worker_info()
        wid = info.id if info is not None else 0
        g = torch.Generator().manual_seed(self.seed * 1000 + wid)
        images = [load_source_u8(p) for p in self.sources]
        weights = source_weights(self.sources) if images else None

        def pick() -> Tensor:
            if not images or float(torch.rand((), generator=g)) < self.procedural:
                seed = int(torch.randint(0, 2**31, (), generator=g))
                return procedural_image(seed, self.size * 2, self.size * 2)
            return images[int(torch.multinomial(weights, 1, generator=g))].float() / 255

        while True:
            view = random_view(pick(), self.size, g)
            if float(torch.rand((), generator=g)) < self.hard:
                view = draw_hard_structures(view, g)
            if float(torch.rand((), generator=g)) < self.clean:
                yield view, torch.zeros(self.size, self.size)
                continue
            seed = int(torch.randint(0, 2**31, (), generator=g))
            donor = random_view(pick(), self.size, g)
            out, mask, _ = corrupt(view, seed, families=self.families, donor=donor)
            yield out, mask


def benchmark_samples(
    sources: list[Path],
    count: int,
    size: int = 384,
    seed: int = 2023,
    families: tuple[str, ...] = FAMILIES,
) -> Iterator[tuple[str, Tensor, Tensor]]:
    """A fixed, reproducible benchmark: ``count`` (name, image, mask) from ``sources``."""
    images = [(p.stem, load_source_u8(p)) for p in sources]
    g = torch.Generator().manual_seed(seed)
    for k in range(count):
        if images and k % 4 != 3:
            name, src = images[k % len(images)][0], images[k % len(images)][1].float() / 255
        else:
            name, src = "procedural", procedural_image(10_000_000 + k, size * 2, size * 2)
        view = random_view(src, size, g)
        donor_src = images[(k * 7 + 3) % len(images)][1].float() / 255 if images else src.flip(2)
        donor = random_view(donor_src, size, g)
        out, mask, _ = corrupt(view, seed * 100_000 + k, families=families, donor=donor)
        yield f"{name}_{k:04d}", out, mask


def pal_folder(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of a folder in the PAL layout: ``images/X.*`` with ``masks/X.png``."""
    root = Path(root)
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise ValueError(f"{root} needs images/ and masks/ subfolders (PAL dataset layout)")
    pairs = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = masks / f"{p.stem}.png"
        if not m.exists():
            raise ValueError(f"{p} has no mask {m}; every image needs a binary PNG mask")
        pairs.append((p, m))
    return pairs


class FolderDataset(IterableDataset):
    """Endless augmented crops from a PAL-layout folder (random crop + flip, same for both)."""

    def __init__(self, pairs: list[tuple[Path, Path]], size: int = 256, seed: int = 0) -> None:
        self.pairs, self.size, self.seed = pairs, size, seed

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(self.seed + zlib.crc32(b"folder"))
        data = [(load_image(a)[0], (load_mask(b)[0] > 0.5).float()) for a, b in self.pairs]
        while True:
            img, mask = data[int(torch.randint(0, len(data), (), generator=g))]
            _, h, w = img.shape
            if min(h, w) < self.size:
                s = self.size / min(h, w)
                img = F.interpolate(img[None], scale_factor=s, mode="bilinear")[0]
                mask = (F.interpolate(mask[None, None], size=img.shape[1:])[0, 0] > 0.5).float()
                _, h, w = img.shape
            y = int(torch.randint(0, h - self.size + 1, (), generator=g))
            x = int(torch.randint(0, w - self.size + 1, (), generator=g))
            ci = img[:, y : y + self.size, x : x + self.size]
            cm = mask[y : y + self.size, x : x + self.size]
            if float(torch.rand((), generator=g)) < 0.5:
                ci, cm = ci.flip(2), cm.flip(1)
            yield ci.contiguous(), cm.contiguous()
