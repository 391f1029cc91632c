"""The training base images: a reproducible set built from installed packages' files.

``build_bases(out)`` (``comfyui-pal data``) reads the images that Debian packages and Python
packages installed on this machine ship (never the network), and writes::

    OUT/train/<source>/<name>.png     training bases (long side <= ``max_side``; ``.webp``
                                      with ``webp=Q``: a twelfth of the size, for machines
                                      the set must travel to)
    OUT/heldout/<source>/<name>.png   never trained on: the benchmark's clean sources
    OUT/manifest.json                 every file: source, package, version, licence, split,
                                      the original path and its sha256

Besides the files as shipped it makes two kinds of composite bases, deterministically from
the seed: painted portraits (cut-outs with alpha) placed at several scales over landscapes
and wallpapers of the same split, and *text scenes*, real typeset words (installed fonts,
words from the installed licence texts) on signs, pages and labels over a base. Each split
composites only its own split's files, so no held-out pixel reaches training.

``SOURCES`` is the one list of what is used and under which licence; ``weights/README.md``
repeats it for the model card. None of these files is redistributed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

IMAGE_RE = re.compile(r"\.(png|jpe?g|webp)$", re.IGNORECASE)
HELD_SHARE = 0.12  # share of each source's files held out (stable hash of source/name)
HELD_NAMES = frozenset(  # held out since the first model; the examples are made from them
    {"astronaut", "chelsea", "coffee", "rocket", "Storm", "LadyBird", "TwoWings", "wood-l"}
)


@dataclass(frozen=True)
class Source:
    """One package's images: ``pattern`` filters the package's files (regex on the path)."""

    name: str
    package: str  # Debian package, or "python:<module>" for a Python package's data folder
    licence: str
    content: str
    pattern: str = r"."
    min_side: int = 320  # smaller images (icons, thumbnails) are skipped
    one_per_folder: bool = False  # KDE ships one picture at many sizes: keep the largest
    cutout: bool = False  # RGBA cut-outs composited over bases (portraits)


SOURCES: tuple[Source, ...] = (
    Source(
        "skimage",
        "python:skimage",
        "CC0 / public domain",
        "photographs",
        r"/data/(astronaut|chelsea|coffee|rocket|motorcycle_left|motorcycle_right|"
        r"hubble_deep_field|ihc|retina|brick|grass|gravel|camera|moon)\.",
        min_side=256,
    ),
    Source(
        "plasma",
        "plasma-workspace-wallpapers",
        "GPL-2+",
        "photographs, renders",
        r"/contents/images/",
        one_per_folder=True,
    ),
    Source("ukui", "ukui-wallpapers", "CC-BY-SA-3.0", "photographs"),
    Source("lomiri", "lomiri-wallpapers", "CC-BY-SA-3.0 / CC-BY-4.0 / CC0-1.0", "photographs"),
    Source("lomiri16", "lomiri-wallpapers-16.04", "CC-BY-SA / CC-BY-4.0 / CC0-1.0", "photographs"),
    Source(
        "lomiri20",
        "lomiri-wallpapers-20.04",
        "CC-BY-SA / CC-BY-4.0 / CC0-1.0",
        "photographs, renders",
    ),
    Source("gnome", "gnome-backgrounds", "CC-BY-SA-3.0", "renders, photographs"),
    Source("mate", "mate-backgrounds", "GPL-2+ / CC-BY-SA-4.0", "photographs, abstract art"),
    Source("xfce", "xfdesktop4-data", "GPL-2+", "renders, abstract art"),
    Source(
        "debian",
        "desktop-base",
        "GPL-2+ / CC-BY-SA-3.0",
        "renders, graphic art",
        r"/wallpaper/|/background",
        min_side=480,
    ),
    Source("sway", "sway-backgrounds", "Expat / LGPL-2.1+", "renders"),
    Source(
        "wesnoth", "wesnoth-1.16-data", "GPL-2+", "paintings: landscapes, scenes", r"/images/story/"
    ),
    Source(
        "portraits",
        "wesnoth-1.16-data",
        "GPL-2+",
        "paintings: faces, people, animals (cut-outs)",
        r"/images/portraits/",
        min_side=200,
        cutout=True,
    ),
    Source(
        "paper",
        "mypaint-data-extras",
        "CC0-1.0 / CC-BY-3.0 / GPL-2+",
        "paper and canvas textures",
        r"/backgrounds/",
    ),
)
FONT_PACKAGES = ("fonts-dejavu-core", "fonts-liberation2", "fonts-noto-core")
WORDS_FILES = ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0")


def _python_module(package: str):
    """The module of a ``python:<module>`` package name, or None when not installed."""
    try:
        return __import__(package.split(":", 1)[1])
    except ImportError:
        return None


def _dpkg_query(*args: str) -> str | None:
    """``dpkg-query ARGS`` output, or None (no dpkg, or the package is not installed)."""
    try:
        res = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return res.stdout if res.returncode == 0 else None


def package_files(package: str) -> list[Path]:
    """Files a package installed: ``dpkg-query -L`` for Debian, the data folder for Python."""
    if package.startswith("python:"):
        mod = _python_module(package)
        if mod is None:
            return []
        root = Path(mod.__file__).parent / "data"
        return sorted(p for p in root.rglob("*") if p.is_file())
    listing = _dpkg_query("-L", package) or ""
    return sorted(Path(line) for line in listing.splitlines() if Path(line).is_file())


def package_version(package: str) -> str | None:
    """Installed version of a Debian or Python package, or None."""
    if package.startswith("python:"):
        mod = _python_module(package)
        return None if mod is None else mod.__version__
    version = (_dpkg_query("-W", "-f=${Version}", package) or "").strip()
    return version or None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_of(source: str, name: str, held_share: float = HELD_SHARE) -> str:
    """``train`` or ``heldout``, stable for a (source, name): a hash, plus ``HELD_NAMES``."""
    if name in HELD_NAMES:
        return "heldout"
    return (
        "heldout" if zlib.crc32(f"{source}/{name}".encode()) % 1000 < held_share * 1000 else "train"
    )


def source_files(src: Source) -> list[Path]:
    """The image files ``src`` uses from its package (one per folder where asked)."""
    rx = re.compile(src.pattern)
    files = [p for p in package_files(src.package) if IMAGE_RE.search(p.name) and rx.search(str(p))]
    if src.one_per_folder:
        best: dict[Path, Path] = {}
        for p in files:
            folder = p.parent.parent if p.parent.name == "images" else p.parent
            if folder not in best or p.stat().st_size > best[folder].stat().st_size:
                best[folder] = p
        files = sorted(best.values())
    return files


def _name(src: Source, path: Path) -> str:
    if src.one_per_folder and path.parent.name == "images":
        return path.parent.parent.parent.name  # .../<Wallpaper>/contents/images/WxH.png
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)
    return f"{path.parent.name}-{stem}" if src.cutout else stem


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    return img


def fonts() -> list[Path]:
    """Installed Latin text fonts (DejaVu, Liberation, Noto Sans / Serif / Mono)."""
    out = []
    for pkg in FONT_PACKAGES:
        for p in package_files(pkg):
            n = p.name
            if p.suffix == ".ttf" and (
                pkg != "fonts-noto-core" or re.match(r"Noto(Sans|Serif|SansMono)-", n)
            ):
                out.append(p)
    return out


def words() -> list[str]:
    """Words of the installed licence texts (real English text to typeset)."""
    found: list[str] = []
    for f in WORDS_FILES:
        if Path(f).exists():
            found += re.findall(r"[A-Za-z][A-Za-z'-]{1,14}", Path(f).read_text(errors="ignore"))
    return found or ["PAL", "artifact", "image", "quality", "text", "Sample", "OPEN", "2026"]


def composite_portrait(cut: Image.Image, base: Image.Image, rng: random.Random) -> Image.Image:
    """An RGBA cut-out placed at a random scale and spot over an RGB base (same size)."""
    base = base.convert("RGB").copy()
    side = rng.uniform(0.45, 0.95) * min(base.size)
    scale = side / max(cut.size)
    cut = cut.resize(
        (max(1, round(cut.width * scale)), max(1, round(cut.height * scale))), Image.LANCZOS
    )
    if rng.random() < 0.5:
        cut = cut.transpose(Image.FLIP_LEFT_RIGHT)
    x = rng.randint(0, max(0, base.width - cut.width))
    y = (
        base.height - cut.height
        if rng.random() < 0.6
        else rng.randint(0, max(0, base.height - cut.height))
    )
    base.paste(cut, (x, max(0, y)), cut)
    return base


def text_scene(
    base: Image.Image, rng: random.Random, font_files: list[Path], vocab: list[str]
) -> Image.Image:
    """Typeset words over a base: signs, labels, a page, a caption (antialiased, 2x drawn)."""
    w, h = base.size
    big = base.convert("RGB").resize((w * 2, h * 2), Image.BICUBIC)
    draw = ImageDraw.Draw(big)
    for _ in range(rng.randint(1, 5)):
        font = ImageFont.truetype(str(rng.choice(font_files)), rng.randint(14, 90) * 2)
        lines = [
            " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 5)))
            for _ in range(rng.randint(1, 6))
        ]
        text = "\n".join(lines).upper() if rng.random() < 0.3 else "\n".join(lines)
        _, _, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font, spacing=8)
        pad = rng.randint(6, 40)
        x = rng.randint(-x1 // 4, max(0, 2 * w - x1 // 2))
        y = rng.randint(-y1 // 4, max(0, 2 * h - y1 // 2))
        ink = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.7:  # a sign / label / page behind the text
            paper = tuple(255 - c if rng.random() < 0.8 else rng.randint(0, 255) for c in ink)
            draw.rounded_rectangle(
                (x - pad, y - pad, x + x1 + pad, y + y1 + pad),
                radius=rng.randint(0, 30),
                fill=paper,
            )
        draw.multiline_text((x, y), text, font=font, fill=ink, spacing=8)
    return big.resize((w, h), Image.LANCZOS)


def _store(img: Image.Image, stem: Path, webp: int | None) -> Path:
    """Write ``img`` as ``stem.png``, or as ``stem.webp`` at quality ``webp``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if webp is None:
        dst = stem.parent / f"{stem.name}.png"  # names may hold dots
        img.save(dst)
    else:
        dst = stem.parent / f"{stem.name}.webp"
        img.save(dst, "WEBP", quality=webp, method=4)
    return dst


def build_bases(
    out: str | Path,
    *,
    max_side: int = 1024,
    webp: int | None = None,
    composites_per_portrait: int = 3,
    text_scenes: int = 400,
    seed: int = 0,
    sources: tuple[Source, ...] = SOURCES,
    log=print,
) -> dict:
    """Write the base set to ``out`` (see the module docstring); returns the manifest.

    ``sources`` defaults to ``SOURCES``; packages that are not installed are skipped and named.
    ``webp`` (a quality, 1..100) stores the training split as lossy WebP; the held-out split
    stays lossless, so benchmarks read the same pixels either way.
    """
    if webp is not None and not 1 <= webp <= 100:
        raise ValueError(f"webp quality {webp} is not in 1..100; pass e.g. 80, or leave it out")
    out = Path(out)
    quality = {"train": webp, "heldout": None}  # WebP quality per split (None: PNG)
    manifest_path = out / "manifest.json"
    rng = random.Random(seed)
    entries: list[dict] = []
    seen: set[str] = set()
    kept: dict[str, list[Path]] = {"train": [], "heldout": []}
    cutouts: dict[str, list[tuple[Path, str]]] = {"train": [], "heldout": []}
    missing = []
    for src in sources:
        files = source_files(src)
        if not files:
            missing.append(src.package)
            continue
        version = package_version(src.package)
        n = 0
        for path in files:
            digest = _sha256(path)
            if digest in seen:
                continue
            try:
                img = Image.open(path)
                img.load()
            except OSError:
                continue
            if min(img.size) < src.min_side:
                continue
            seen.add(digest)
            name = _name(src, path)
            split = split_of(src.name, name)
            if src.cutout:
                cutouts[split].append((path, name))
            else:
                fitted = _fit(img.convert("RGB"), max_side)
                dst = _store(fitted, out / split / src.name / name, quality[split])
                kept[split].append(dst)
            entries.append(
                {
                    "file": None if src.cutout else str(dst.relative_to(out)),
                    "source": src.name,
                    "package": src.package,
                    "version": version,
                    "licence": src.licence,
                    "split": split,
                    "original": str(path),
                    "sha256": digest,
                }
            )
            n += 1
        log(f"{src.name:10s} {src.package:28s} {n:4d} images")
    font_files, vocab = fonts(), words()
    for split in ("train", "heldout"):
        bases = kept[split]
        if not bases:
            continue
        q = quality[split]
        for path, name in cutouts[split]:
            cut = Image.open(path).convert("RGBA")
            for k in range(composites_per_portrait):
                base = Image.open(rng.choice(bases))
                img = composite_portrait(cut, _fit(base, 768), rng)
                dst = _store(img, out / split / "portraits" / f"{name}-{k}", q)
                kept_entry = {
                    "file": str(dst.relative_to(out)),
                    "source": "portraits",
                    "package": "composite",
                    "version": None,
                    "licence": "composite of the files above",
                    "split": split,
                    "original": str(path),
                    "sha256": None,
                }
                entries.append(kept_entry)
        count = round(text_scenes * (HELD_SHARE if split == "heldout" else 1 - HELD_SHARE))
        if font_files:
            for k in range(count):
                base = _fit(Image.open(rng.choice(bases)), 768)
                img = text_scene(base, rng, font_files, vocab)
                dst = _store(img, out / split / "text" / f"text-{k:04d}", q)
                entries.append(
                    {
                        "file": str(dst.relative_to(out)),
                        "source": "text",
                        "package": ",".join(FONT_PACKAGES),
                        "version": None,
                        "licence": "fonts: Bitstream Vera / OFL-1.1; ours",
                        "split": split,
                        "original": None,
                        "sha256": None,
                    }
                )
        log(
            f"{split}: {len(bases)} files, {len(cutouts[split]) * composites_per_portrait} "
            f"portrait composites, {count if font_files else 0} text scenes"
        )
    manifest = {
        "seed": seed,
        "max_side": max_side,
        "webp": webp,
        "missing_packages": missing,
        "sources": [asdict(s) for s in sources],
        "images": entries,
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(manifest_path)
    if missing:
        log(
            "not installed (skipped): "
            + " ".join(missing)
            + "\n  apt-get install -y "
            + " ".join(m for m in missing if ":" not in m)
        )
    return manifest


def summarize(manifest: dict) -> dict[str, dict[str, int]]:
    """Images per source and split."""
    out: dict[str, dict[str, int]] = {}
    for e in manifest["images"]:
        if e["file"] is None:
            continue
        d = out.setdefault(e["source"], {"train": 0, "heldout": 0})
        d[e["split"]] += 1
    return out
