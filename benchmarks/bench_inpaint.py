"""Built-in inpainters (not a test): quality inside punched holes and time, in one run.

    python benchmarks/bench_inpaint.py [--holes 3] [--repeats 3] [--only chelsea,bricks]
        [--quick] [--threads N] [--device cpu] [--sheet PATH] [--readme-sheet]

Clean held-out photographs (``examples/images/clean``), 3 procedural scenes and 3 periodic
textures (bricks, checks, weave) are resized to 512x512. Each gets ``--holes`` holes,
alternately a random blob and a random polygon, each 14.7-15.3 % of the crop (``_shape``'s
polygons come out smaller than asked, so the asked area is rescaled, and the hole grown pixel by
pixel where clipping at the border stops that). The holes are filled by the smooth fill,
by PatchMatch and, when OpenCV is installed (``pip install -e ".[bench]"``), by OpenCV's
Telea and Navier-Stokes inpainting (radius 3, on the 8-bit image; timed with the
conversions). The smooth fill and PatchMatch run on ``--device`` (``cpu``, ``cuda``,
``cuda:1``, ...): image and mask are moved there before the timer starts and the fill is
scored back on the CPU; on CUDA the device is synchronised before each timer is read. OpenCV
always runs on the CPU. Scores inside the hole:

- PSNR and SSIM (11 px window) against the original.
- grad err: mean |grad filled - grad original|.
- detail: |1 - mean |grad filled| / mean |grad original||: 1 for a blur, 0 for a fill as
  detailed as the original, whatever the exact alignment. Pixel-aligned scores favour blur
  wherever a plausible texture is not the exact one that was removed; the next two do not.
- texture dist: how far the fill's texture statistics are from those of its surroundings,
  a ring of known pixels up to 16 px from the hole. The sum of (a) the L1 distance between
  the normalised histograms of luma gradient magnitude (central differences, 32 bins over
  0..0.2, the last bin open) in the hole and in the ring (0..2), and (b) the mean absolute
  difference, in decades, between the radially averaged log power spectra (8 radial bins,
  DC left out, the power of 8-bit rounding noise added as a floor) of Hann-windowed 16x16
  luma patches lying wholly in the hole and of fully known patches centred in the ring.
  Fills are scored as 8-bit images, each method rounded alike. Lower is better; each hole's
  best method wins it, and the win % is the share of holes a method wins.
- continuity: the share of the edges entering the hole that go on in the fill. Edge pixels
  are the original's known pixels within 3 px of the hole whose (sigma 1 smoothed, Sobel)
  luma gradient is above the image's 90th percentile; from each, 6 points are sampled 4-9 px
  along the edge's tangent into the hole. The edge goes on in an image where at least half
  of those points inside the hole have an edge as strong as half the start's (3x3 max) with
  an orientation (3x3 structure tensor) within 30 degrees of it. Counted over the edges that
  go on in the original; higher is better, the original itself scores 1.

Reported overall and on textured holes (the periodic textures and the holes with
above-median gradient energy in the original), with the median time per fill (the first hole
of each image is filled ``--repeats`` times and its median kept), PatchMatch's time as a
multiple of Telea's in the same run, and PatchMatch's time on one image at 5, 15 and 30 %
holes. On a machine that is busy elsewhere, ``--threads 1`` keeps torch's threads from
waiting on each other. Targets, printed with PASS or MISS: PatchMatch <= 300 ms per 512x512
crop with a 15 % hole on this CPU (with a GPU ``--device``: <= 30 ms on that GPU); the best
mean PSNR and SSIM; the best texture fidelity on >= 80 % of the holes.

``--sheet`` writes a JPEG contact sheet (original | hole | each method) of about 6 holes;
``--readme-sheet`` also writes the copy the README shows, ``examples/inpaint_sheet.jpg``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d, spatial_gradient
from kornia.metrics import ssim
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from comfyui_pal.io.images import load_image
from comfyui_pal.pipelines.inpaint import patchmatch_fill, smooth_fill
from comfyui_pal.training.datasets import procedural_image
from comfyui_pal.training.synth import _shape

ROOT = Path(__file__).resolve().parents[1]
CLEAN = ROOT / "examples" / "images" / "clean"
SHEET = ROOT / "benchmarks" / "out" / "inpaint_sheet.jpg"
README_SHEET = ROOT / "examples" / "inpaint_sheet.jpg"
SIZE = 512
AREA = 0.15
AREA_TOL = 0.02  # a hole's area is within +-2 % of the asked one: 14.7-15.3 % for 15 %
RING = 16  # px of known surroundings the texture is compared with
HIST_BINS, HIST_MAX = 32, 0.2
SPEC_PATCH, SPEC_STRIDE = 16, 4
EDGE_QUANTILE, EDGE_BAND, EDGE_STEPS = 0.9, 3, range(4, 10)
COS_30 = math.cos(math.radians(30))
REGULAR = ("bricks", "checks", "weave")
QUICK = ("chelsea", "coffee", "bricks", "procedural0")
SHEET_ROWS = ("coffee", "chelsea", "bricks", "checks", "procedural0", "astronaut")
TIMING_IMAGE = "chelsea"
TILE, PAD, HEAD = 192, 4, 22
README_MAX_BYTES = 300_000
KEYS = ("psnr", "ssim", "grad", "detail", "texture", "continuity", "ms")

Fill = Callable[[Tensor, Tensor, int], Tensor]
CPU = torch.device("cpu")
TORCH_FILLS = ("smooth", "patchmatch")  # run on --device; OpenCV's stay on the CPU


def _grad(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def _luma(x: Tensor) -> Tensor:
    """``[1,1,H,W]`` luma of an RGB ``[1,3,H,W]`` image."""
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def _dilate(m: Tensor, r: int) -> Tensor:
    """Bool ``[H,W]`` mask grown by ``r`` px (square)."""
    return F.max_pool2d(m[None, None].float(), 2 * r + 1, 1, r)[0, 0] > 0


def _erode(m: Tensor, r: int) -> Tensor:
    return ~_dilate(~m, r)


def punch_hole(seed: int, kind: str, frac: float) -> Tensor:
    """Bool ``[SIZE,SIZE]`` blob or polygon covering ``frac`` of the crop, within AREA_TOL.

    The same random shape is redrawn with the asked area rescaled by asked / got until it is
    that close (the closest of 8 tries is kept); should clipping at the border stop that, it
    is grown or shrunk by 1 px steps.
    """
    target = frac * SIZE * SIZE
    lo, hi = target * (1 - AREA_TOL), target * (1 + AREA_TOL)
    scale, hole, err = 1.0, None, math.inf
    for _ in range(8):
        shape = _shape(torch.Generator().manual_seed(seed), kind, SIZE, SIZE, target * scale)
        got = int(shape.sum())
        if abs(got - target) < err:
            hole, err = shape, abs(got - target)
        if err <= AREA_TOL * target:
            return hole
        scale = min(scale * target / max(got, 1), 50.0)
    for _ in range(64):
        got = int(hole.sum())
        if got < lo:
            hole = _dilate(hole, 1)
        elif got > hi:
            hole = _erode(hole, 1)
        else:
            break
    return hole


def _grad_mag(x: Tensor) -> Tensor:
    """``[H,W]`` luma gradient magnitude (central differences)."""
    g = spatial_gradient(_luma(x), mode="diff", normalized=False)[0, 0] / 2
    return g.norm(dim=0)


def _hist(v: Tensor) -> Tensor:
    v = v.clamp(max=HIST_MAX * (1 - 1e-6))
    return torch.histc(v, HIST_BINS, 0, HIST_MAX) / max(v.numel(), 1)


def _spectrum_setup() -> tuple[Tensor, Tensor]:
    """Hann window and radial bin index (0 = DC or beyond the Nyquist circle) of a patch."""
    w = torch.hann_window(SPEC_PATCH, periodic=False)
    f = torch.fft.fftfreq(SPEC_PATCH) * SPEC_PATCH
    r = (f[:, None] ** 2 + f[None, :] ** 2).sqrt().round().long()
    return w[:, None] * w[None, :], torch.where(r <= SPEC_PATCH // 2, r, 0)


WINDOW, RADIUS = _spectrum_setup()
# the power of 8-bit rounding noise in a windowed patch: the floor below which nothing counts
SPEC_FLOOR = float(WINDOW.square().sum()) / (12 * 255**2)


def _log_spectrum(x: Tensor, sel: Tensor) -> Tensor | None:
    """Radially averaged log10 power spectrum of the ``sel`` patches of ``x``'s luma."""
    if not sel.any():
        return None
    p = F.unfold(_luma(x), SPEC_PATCH, stride=SPEC_STRIDE)[0][:, sel].T
    p = p.reshape(-1, SPEC_PATCH, SPEC_PATCH)
    p = (p - p.mean((1, 2), keepdim=True)) * WINDOW
    power = torch.fft.fft2(p).abs().square().mean(0)
    bins = torch.zeros(SPEC_PATCH // 2 + 1).index_add_(0, RADIUS.flatten(), power.flatten())
    counts = torch.bincount(RADIUS.flatten(), minlength=SPEC_PATCH // 2 + 1)
    return torch.log10(bins[1:] / counts[1:] + SPEC_FLOOR)


def _edge_field(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Smoothed luma edges ``[H,W]``: magnitude, its 3x3 max, orientation (structure tensor)."""
    s = gaussian_blur2d(_luma(x), (5, 5), (1.0, 1.0))
    g = spatial_gradient(s, mode="sobel")[0, 0]
    gx, gy = g[0], g[1]
    mag = (gx**2 + gy**2).sqrt()
    j = torch.stack([gx * gx, gx * gy, gy * gy])[None]
    j = F.avg_pool2d(j, 3, 1, 1, count_include_pad=False)[0]
    theta = 0.5 * torch.atan2(2 * j[1], j[0] - j[2])
    return mag, F.max_pool2d(mag[None, None], 3, 1, 1)[0, 0], theta


class HoleRef:
    """What the scores of one hole need from the original, computed once."""

    def __init__(self, ref: Tensor, hole: Tensor) -> None:
        self.ref, self.hole = ref, hole
        self.ring = _dilate(hole, RING) & ~hole
        self.ring_hist = _hist(_grad_mag(ref)[self.ring])
        # spectrum patches: wholly inside the hole, or fully known and centred in the ring
        inside = F.unfold(hole[None, None].float(), SPEC_PATCH, stride=SPEC_STRIDE)[0].sum(0)
        n = SIZE - SPEC_PATCH
        c = SPEC_PATCH // 2
        centred = self.ring[c : c + n + 1 : SPEC_STRIDE, c : c + n + 1 : SPEC_STRIDE].flatten()
        self.hole_patches = inside == SPEC_PATCH**2
        self.ring_spectrum = _log_spectrum(ref, (inside == 0) & centred)
        # edges entering the hole: strong edges on its outer band, stepping along the tangent
        mag, mag_max, theta = _edge_field(ref)
        band = _dilate(hole, EDGE_BAND) & ~hole
        py, px = torch.nonzero(band & (mag > torch.quantile(mag, EDGE_QUANTILE)), as_tuple=True)
        self.p_mag, self.p_theta = mag[py, px], theta[py, px]
        tx, ty = -torch.sin(self.p_theta), torch.cos(self.p_theta)
        steps = torch.tensor(list(EDGE_STEPS), dtype=torch.float32)[:, None]
        best = None
        for sign in (1.0, -1.0):
            qx = (px + sign * steps * tx).round().long().clamp(0, SIZE - 1)
            qy = (py + sign * steps * ty).round().long().clamp(0, SIZE - 1)
            cand = (qy, qx, hole[qy, qx])
            if best is None:
                best = cand
            else:
                more = cand[2].sum(0) > best[2].sum(0)
                best = tuple(torch.where(more, a, b) for a, b in zip(cand, best, strict=True))
        self.qy, self.qx, self.q_in = best
        self.ref_goes_on = self._goes_on(mag_max, theta)

    def _goes_on(self, mag_max: Tensor, theta: Tensor) -> Tensor:
        """Per edge pixel: does the edge go on, in the image with these edge fields?"""
        m, t = mag_max[self.qy, self.qx], theta[self.qy, self.qx]
        ok = self.q_in & (m >= 0.5 * self.p_mag) & ((t - self.p_theta).cos().abs() >= COS_30)
        n_in = self.q_in.sum(0)
        return (n_in >= 2) & (2 * ok.sum(0) >= n_in)

    def texture(self, out: Tensor) -> float:
        """Histogram L1 + log-spectrum distance between the fill and its ring (lower = better)."""
        d = float((_hist(_grad_mag(out)[self.hole]) - self.ring_hist).abs().sum())
        spec = _log_spectrum(out, self.hole_patches)
        if spec is not None and self.ring_spectrum is not None:
            d += float((spec - self.ring_spectrum).abs().mean())
        return d

    def continuity(self, out: Tensor) -> float:
        """Share of the original's edges going on into the hole that go on in ``out``."""
        n = int(self.ref_goes_on.sum())
        if n == 0:
            return float("nan")
        _, mag_max, theta = _edge_field(out)
        return float((self._goes_on(mag_max, theta) & self.ref_goes_on).sum()) / n


def scores(out: Tensor, ref: Tensor, hole: Tensor, hr: HoleRef) -> dict[str, float]:
    """All scores of one fill, inside the hole."""
    mse = ((out - ref) ** 2)[0][:, hole].mean()
    s = ssim(out, ref, 11)[0].mean(0)[hole].mean()
    gx, gy = _grad(out)
    rx, ry = _grad(ref)
    ge = ((gx - rx).abs()[0][:, hole[:, 1:]].mean() + (gy - ry).abs()[0][:, hole[1:, :]].mean()) / 2
    # detail kept: mean gradient magnitude inside the hole relative to the original's there
    # (a blur scores ~1, a fill as detailed as the original 0, whatever the exact alignment)
    energy = (gx.abs()[0][:, hole[:, 1:]].mean() + gy.abs()[0][:, hole[1:, :]].mean()) / (
        rx.abs()[0][:, hole[:, 1:]].mean() + ry.abs()[0][:, hole[1:, :]].mean()
    )
    return {
        "psnr": float(10 * torch.log10(1 / mse)),
        "ssim": float(s),
        "grad": float(ge),
        "detail": float((1 - energy).abs()),
        "texture": hr.texture(out),
        "continuity": hr.continuity(out),
    }


def regular_texture(kind: str, size: int = 512, seed: int = 0) -> torch.Tensor:
    """``[1,3,size,size]`` periodic texture with grain: bricks, checks or weave."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if kind == "bricks":
        row = yy // 24
        shift = (row % 2) * 24
        mortar = ((yy % 24) < 3) | (((xx + shift) % 48) < 3)
        base = torch.where(mortar, 0.85, 0.45 + 0.1 * ((xx + shift) // 48 % 3)).float()
        img = torch.stack([base, base * 0.6, base * 0.45])
    elif kind == "checks":
        cell = ((yy // 20) + (xx // 20)) % 2
        img = torch.stack([cell * 0.7 + 0.1, cell * 0.3 + 0.3, 0.6 - cell * 0.4]).float()
    else:  # weave
        a = torch.sin(xx / 3.0) * torch.sin(yy / 5.0)
        img = torch.stack([0.5 + 0.3 * a, 0.4 + 0.2 * a, 0.3 - 0.1 * a]).float()
    grain = 0.04 * torch.randn(1, size, size, generator=g)
    return (img + grain).clamp(0, 1)[None]


def load_images(only: list[str] | None) -> list[tuple[str, Tensor]]:
    """The benchmark's images as 512x512 ``[1,3,H,W]``, restricted to ``only`` if given."""
    sources: dict[str, Callable[[], Tensor]] = {
        p.stem: (lambda p=p: load_image(p)) for p in sorted(CLEAN.glob("*.png"))
    }
    for i in range(3):
        sources[f"procedural{i}"] = lambda i=i: procedural_image(90 + i, SIZE, SIZE)[None]
    for i, k in enumerate(REGULAR):
        sources[k] = lambda i=i, k=k: regular_texture(k, SIZE, seed=i)
    if only:
        unknown = [n for n in only if n not in sources]
        if unknown:
            raise SystemExit(f"unknown image(s) {unknown}; choose from {', '.join(sources)}")
        sources = {n: sources[n] for n in only}
    out = []
    for name, make in sources.items():
        img = F.interpolate(make(), size=(SIZE, SIZE), mode="bilinear", antialias=True)
        out.append((name, img.clamp(0, 1)))
    return out


def methods(cv2) -> dict[str, Fill]:
    """The inpainters compared, OpenCV's first when it is there: ``fill(image, mask, seed)``."""
    fills: dict[str, Fill] = {}
    if cv2 is not None:

        def opencv(flag: int) -> Fill:
            def fill(img: Tensor, mask: Tensor, seed: int) -> Tensor:
                rgb = (img[0].permute(1, 2, 0) * 255).round().byte().contiguous().numpy()
                m = (mask[0] > 0).byte().numpy() * 255
                out = cv2.inpaint(rgb, m, 3, flag)
                return torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255

            return fill

        fills["telea"] = opencv(cv2.INPAINT_TELEA)
        fills["ns"] = opencv(cv2.INPAINT_NS)
    fills["smooth"] = lambda img, mask, seed: smooth_fill(img, mask)
    fills["patchmatch"] = lambda img, mask, seed: patchmatch_fill(img, mask, seed=seed)
    return fills


def _sync(device: torch.device) -> None:
    """Wait for the work queued on ``device``, so that a timer read now counts all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: torch.device) -> str:
    """``device`` with the accelerator's model, e.g. ``cuda:0 (NVIDIA H200)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def timed(
    fn: Fill, img: Tensor, hole: Tensor, seed: int, repeats: int, device: torch.device = CPU
) -> tuple[Tensor, float]:
    """The fill as an 8-bit image would hold it (known pixels put back) and its median time.

    ``img`` and ``hole`` are moved to ``device`` before the timer starts; the fill comes back
    on ``img``'s device. Every method is rounded to 8 bits alike: OpenCV's fills come that
    way, and rounding noise would otherwise pass for fine texture in the spectra.
    """
    x, mask = img.to(device), hole[None].float().to(device)
    runs = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        out = fn(x, mask, seed)
        _sync(device)
        runs.append(time.perf_counter() - t0)
    out = (out.to(img).clamp(0, 1) * 255).round() / 255
    return torch.where(hole[None, None], out, img), statistics.median(runs)


def _tile(x: Tensor) -> Image.Image:
    arr = (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    return Image.fromarray(arr).resize((TILE, TILE), Image.Resampling.LANCZOS)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(rows: list[tuple[str, Tensor, Tensor, dict[str, Tensor]]]) -> Image.Image:
    """Grid, one row per ``(name, original, hole, fills)``: original | hole | each fill."""
    cols = ["original", "hole (magenta)", *rows[0][3]]
    sheet = Image.new(
        "RGB", (PAD + len(cols) * (TILE + PAD), HEAD + len(rows) * (TILE + PAD)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font, small = _font(15), _font(13)
    for c, label in enumerate(cols):
        x = PAD + c * (TILE + PAD) + (TILE - draw.textlength(label, font=font)) / 2
        draw.text((x, 3), label, fill="black", font=font)
    magenta = torch.tensor([1.0, 0.0, 1.0])[:, None]
    for r, (name, img, hole, fills) in enumerate(rows):
        shown = img.clone()
        shown[0][:, hole] = magenta
        tiles = [img, shown, *fills.values()]
        y = HEAD + r * (TILE + PAD)
        for c, t in enumerate(tiles):
            sheet.paste(_tile(t), (PAD + c * (TILE + PAD), y))
        box = draw.textbbox((PAD + 4, y + 3), name, font=small)
        draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill="black")
        draw.text((PAD + 4, y + 3), name, fill="white", font=small)
    return sheet


def save_jpeg(img: Image.Image, path: Path, max_bytes: int | None = None) -> tuple[int, int]:
    """Write ``img`` at quality 85, lower in steps of 5 until under ``max_bytes``: size, quality."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for quality in range(85, 40, -5):
        img.save(path, "JPEG", quality=quality, optimize=True)
        size = path.stat().st_size
        if max_bytes is None or size < max_bytes:
            break
    return size, quality


def _mean(vals: list[float]) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def _median_ms(vals: list[float]) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--holes", type=int, default=None, help="holes per image (3; --quick 1)")
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed fills of each image's first hole (3)"
    )
    ap.add_argument("--only", default=None, help="comma-separated image names, e.g. chelsea,bricks")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 images x 1 hole, 1 repeat")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch and OpenCV threads (torch's default)"
    )
    ap.add_argument(
        "--device", default="cpu", help="device of the smooth fill and PatchMatch: cpu, cuda, ..."
    )
    ap.add_argument("--sheet", type=Path, default=SHEET, help="contact sheet JPEG to write")
    ap.add_argument(
        "--readme-sheet", action="store_true", help=f"also write {README_SHEET.relative_to(ROOT)}"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    holes = args.holes or (1 if args.quick else 3)
    repeats = args.repeats or (1 if args.quick else 3)
    only = args.only.split(",") if args.only else (list(QUICK) if args.quick else None)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise SystemExit(f"--device {args.device!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device} but torch sees no CUDA device; use --device cpu")

    try:
        import cv2
    except ImportError:
        cv2 = None
        print('OpenCV not installed: Telea and NS skipped (pip install -e ".[bench]")')
    else:
        cv2.setNumThreads(torch.get_num_threads())
    print(f"{torch.get_num_threads()} torch thread(s) on {os.cpu_count()} CPU(s)")
    print(f"smooth and patchmatch on {device_name(device)}; OpenCV on the CPU")
    fills = methods(cv2)
    on = {m: device if m in TORCH_FILLS else CPU for m in fills}
    images = load_images(only)
    # one-off start-up costs stay out of the timings; on an accelerator also those of the
    # first full-size crop (kernels for its shapes, the memory allocator growing)
    warm_sizes = (128,) if device.type == "cpu" else (128, SIZE)
    for side in warm_sizes:
        warm, warm_hole = regular_texture("checks", side), torch.zeros(1, side, side)
        warm_hole[:, 3 * side // 8 : 5 * side // 8, 3 * side // 8 : 5 * side // 8] = 1
        for m, fn in fills.items():
            fn(warm.to(on[m]), warm_hole.to(on[m]), 0)
        _sync(device)

    sheet_pick = [n for n in SHEET_ROWS if n in dict(images)]
    sheet_pick += [n for n, _ in images if n not in sheet_pick][: max(0, 6 - len(sheet_pick))]
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in fills}
    areas, textured, sheet_rows, winners = [], [], [], []
    for name, img in images:
        for k in range(holes):
            kind = ("blob", "polygon")[k % 2]
            hole = punch_hole(zlib.crc32(f"{name}/{k}".encode()), kind, AREA)
            areas.append(float(hole.float().mean()))
            gx, gy = _grad(img)
            energy = float(gx.abs()[0][:, hole[:, 1:]].mean() + gy.abs()[0][:, hole[1:, :]].mean())
            textured.append((name in REGULAR, energy))
            hr = HoleRef(img, hole)
            outs: dict[str, Tensor] = {}
            for m, fn in fills.items():
                try:
                    out, t = timed(fn, img, hole, k, repeats if k == 0 else 1, on[m])
                    if not torch.isfinite(out).all():
                        raise ValueError("non-finite pixels")
                except Exception as exc:  # report and go on: one broken fill must not hide the rest
                    print(f"  {m} failed on {name} hole {k}: {exc!r}")
                    rows[m].append(dict.fromkeys(KEYS, float("nan")))
                    continue
                rows[m].append(scores(out, img, hole, hr) | {"ms": t * 1e3})
                outs[m] = out
            tex = {m: rows[m][-1]["texture"] for m in outs}
            winners.append(min(tex, key=tex.get) if tex else "-")
            pick = name in sheet_pick and k == sheet_pick.index(name) % min(holes, 2)
            if pick and len(outs) == len(fills):  # a failed fill would shift the columns
                sheet_rows.append((f"{name} ({kind})", img, hole, outs))
        print(f"{name}: texture best {', '.join(winners[-holes:])}", flush=True)

    # texture wins: per hole, the method whose fill is closest to its surroundings
    n_holes = len(areas)
    wins = {m: [w == m for w in winners] for m in fills}
    # textured: the periodic textures and the holes with above-median detail
    median_energy = statistics.median(e for _, e in textured)
    is_textured = [periodic or e > median_energy for periodic, e in textured]

    print(
        f"\n{n_holes} holes in {len(images)} 512x512 crops ({sum(is_textured)} textured), "
        f"area mean {100 * statistics.mean(areas):.1f} % "
        f"(min {100 * min(areas):.1f}, max {100 * max(areas):.1f})"
    )
    header = (
        f"{'holes':<9} {'method':<11} {'PSNR':>6} {'SSIM':>6} {'grad err':>8} {'detail':>6} "
        f"{'texture dist':>12} {'texture win %':>13} {'continuity':>10} {'median ms':>9}"
    )
    print(header)
    summary: dict[str, dict[str, float]] = {}
    for label, sel in (("all", [True] * n_holes), ("textured", is_textured)):
        print("-" * len(header))
        n_sel = max(1, sum(sel))
        for m in fills:
            r = [row for row, s in zip(rows[m], sel, strict=True) if s]
            mean = {key: _mean([row[key] for row in r]) for key in r[0] if key != "ms"}
            mean["win"] = 100 * sum(w for w, s in zip(wins[m], sel, strict=True) if s) / n_sel
            mean["ms"] = _median_ms([row["ms"] for row in r])
            if label == "all":
                summary[m] = mean
            print(
                f"{label:<9} {m:<11} {mean['psnr']:6.2f} {mean['ssim']:6.3f} {mean['grad']:8.4f} "
                f"{mean['detail']:6.3f} {mean['texture']:12.3f} {mean['win']:13.0f} "
                f"{mean['continuity']:10.3f} {mean['ms']:9.0f}"
            )

    pm_ms = summary["patchmatch"]["ms"]
    others = ", ".join(f"{m} {summary[m]['ms']:.0f} ms" for m in fills if m != "patchmatch")
    if "telea" in summary:
        ratio = f" = {pm_ms / summary['telea']['ms']:.1f}x Telea"
    else:
        ratio = " (no Telea to compare with)"
    print(f"\ntime per fill, 15 % holes (median): patchmatch {pm_ms:.0f} ms{ratio}; {others}")
    timing_name = TIMING_IMAGE if TIMING_IMAGE in dict(images) else images[0][0]
    timing_img = dict(images)[timing_name]
    cost = []
    for frac in (0.05, 0.15, 0.30):
        hole = punch_hole(zlib.crc32(f"{timing_name}/size".encode()), "blob", frac)
        t = timed(fills["patchmatch"], timing_img, hole, 0, repeats, device)[1]
        line = f"{100 * float(hole.float().mean()):.0f} % {t * 1e3:.0f} ms"
        if "telea" in fills:
            t = timed(fills["telea"], timing_img, hole, 0, repeats)[1]
            line += f" (telea {t * 1e3:.0f})"
        cost.append(line)
    print(f"patchmatch by hole area on {timing_name}: {', '.join(cost)}")

    def best(key: str) -> str:
        """The method with the best mean ``key`` and the runner-up, as text."""
        ranked = sorted(summary, key=lambda m: -summary[m][key])
        fmt = ".2f" if key == "psnr" else ".3f"
        return ", ".join(f"{m} {summary[m][key]:{fmt}}" for m in ranked[:2])

    if device.type == "cpu":
        speed = (
            pm_ms <= 300,
            f"patchmatch <= 300 ms per 512x512 crop with a 15 % hole: {pm_ms:.0f} ms",
        )
    else:
        speed = (
            pm_ms <= 30,
            f"patchmatch <= 30 ms per 512x512 crop with a 15 % hole on a GPU "
            f"({device_name(device)}): {pm_ms:.0f} ms",
        )
    checks = [
        speed,
        (best("psnr").startswith("patchmatch"), f"best mean PSNR (dB): {best('psnr')}"),
        (best("ssim").startswith("patchmatch"), f"best mean SSIM: {best('ssim')}"),
        (
            summary["patchmatch"]["win"] >= 80,
            f"best texture fidelity on >= 80 % of holes: patchmatch "
            f"{summary['patchmatch']['win']:.0f} %",
        ),
    ]
    print("\ntargets:")
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}")

    if sheet_rows:
        sheet = contact_sheet(sheet_rows)
        size, q = save_jpeg(sheet, args.sheet)
        dims = f"{sheet.width}x{sheet.height}, {len(sheet_rows)} holes"
        print(f"\ncontact sheet: {args.sheet} ({dims}, {size // 1024} KB at quality {q})")
        if args.readme_sheet:
            size, q = save_jpeg(sheet, README_SHEET, README_MAX_BYTES)
            print(f"README sheet: {README_SHEET} ({size // 1024} KB at quality {q})")


if __name__ == "__main__":
    main()
