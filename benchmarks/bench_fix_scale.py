"""The fix loop at scale (not a test): crop planning and many regions, old and new in one run.

    python benchmarks/bench_fix_scale.py [--regions 5000] [--fix-regions 100] [--repeats 3]

1. Crop planning (``regions.plan_crops``) of N small regions on a 2048x2048 mask, with the
   default context (everything chains into few crops) and with a tight one (a slow cascade
   of merges): the tensor sweep of ``_merge_groups`` against the pairwise Python loop it
   replaced (kept below as the baseline), same masks, same run; the groups must agree.
2. ``fix`` of a 2048x2048 image with K planted magenta discs, the built-in smooth fill and
   PatchMatch, with a stand-in detector that flags magenta (so the time is the loop's own,
   not a network's): seconds, and seconds per region. Targets (issue 14): 5,000 regions
   planned in <= 1 s; 100 regions on 2048x2048 fixed in <= 10 s.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from comfyui_pal.constants import MEAN_RGB, STD_RGB
from comfyui_pal.core import masks as M
from comfyui_pal.core import regions as R
from comfyui_pal.pipelines.fix import FixOptions, fix
from comfyui_pal.training.datasets import procedural_image


def old_merge_groups(boxes: list, factor: float, min_context: int) -> list[list[int]]:
    """The planner's previous grouping: pairwise overlap tests in Python, until stable."""

    def overlap(a, b):
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    def union(a, b):
        return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])

    groups = [[i] for i in range(len(boxes))]
    gboxes = list(boxes)
    changed = True
    while changed and len(groups) > 1:
        changed = False
        ctx = [R.context_box(b, factor, min_context) for b in gboxes]
        k = 0
        while k < len(groups):
            j = k + 1
            while j < len(groups):
                if overlap(ctx[k], ctx[j]):
                    groups[k] += groups.pop(j)
                    gboxes[k] = union(gboxes[k], gboxes.pop(j))
                    ctx.pop(j)
                    ctx[k] = R.context_box(gboxes[k], factor, min_context)
                    changed = True
                    j = k + 1
                else:
                    j += 1
            k += 1
    return [sorted(g) for g in groups]


def dots(n: int, size: int = 2048, seed: int = 0) -> torch.Tensor:
    """``[1,size,size]`` mask of ``n`` random 3x3 squares."""
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(1, size, size)
    for y, x in torch.randint(0, size - 4, (n, 2), generator=g).tolist():
        m[0, y : y + 3, x : x + 3] = 1
    return m


def planning(n: int) -> None:
    mask = dots(n)
    labels, counts = M.label(mask > 0)
    boxes = [r.box for r in M.regions_from_labels(labels, counts)]
    print(f"\n## planning {len(boxes)} regions on 2048x2048\n")
    print("| context | old s | new s | ratio | new plan_crops s | crops |")
    print("|---|---|---|---|---|---|")
    for factor, ctx in ((2.0, 32), (1.2, 4)):
        t = time.perf_counter()
        old = old_merge_groups(boxes, factor, ctx)
        t_old = time.perf_counter() - t
        t = time.perf_counter()
        new = R._merge_groups(boxes, factor, ctx)
        t_new = time.perf_counter() - t
        assert sorted(old) == sorted(new), "the groups differ"
        t = time.perf_counter()
        plan = R.plan_crops(mask, context_factor=factor, min_context=ctx)
        t_plan = time.perf_counter() - t
        print(
            f"| x{factor}, {ctx} px | {t_old:.2f} | {t_new:.2f} | {t_old / t_new:.1f}x "
            f"| {t_plan:.2f} | {len(plan.used_crops)} |"
        )


class Magenta(nn.Module):
    """Flags saturated magenta pixels (p 0.99), nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
        std = torch.tensor(STD_RGB).view(1, 3, 1, 1)
        v = (x * std + mean) / 255
        hit = (v[:, 0] > 0.8) & (v[:, 2] > 0.8) & (v[:, 1] < 0.2)
        logit = torch.where(hit, 5.0, -7.0)
        return torch.stack([torch.zeros_like(logit), logit], 1)


def many_regions(k: int, repeats: int) -> None:
    size = 2048
    img = procedural_image(3, size, size)[None] * 0.6 + 0.2
    g = torch.Generator().manual_seed(1)
    spots = torch.zeros(1, size, size)
    side = int(k**0.5 + 0.999)
    step = size // side
    cells = torch.randperm(side * side, generator=g)[:k].tolist()
    for c in cells:  # one disc per grid cell: k separate regions
        cy, cx = (c // side) * step + step // 2, (c % side) * step + step // 2
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        spots[0] = torch.maximum(spots[0], (((yy - cy) ** 2 + (xx - cx) ** 2) < 36).float())
    img = torch.where(spots[:, None] > 0, torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1), img)
    print(f"\n## fix of {k} regions on {size}x{size} (stand-in detector, tiled detection)\n")
    print("| inpainter | protect | seconds (best of n) | s per region | regions repainted |")
    print("|---|---|---|---|---|")
    for inpainter in ("smooth", "patchmatch"):
        for protect in (False, True):
            opts = FixOptions(
                inpainter=inpainter,
                protect=protect,
                max_iterations=1,
                mode="tiled",
                tta=False,
                grow=2,
                min_confidence=0.3,  # the tiled mode fuses a blurred global pass
                max_regions=max(64, k),
            )
            best, fixed_n = float("inf"), 0
            for _ in range(repeats):
                t = time.perf_counter()
                _out, _final, history = fix(Magenta(), img, opts)
                best = min(best, time.perf_counter() - t)
                fixed_n = len(history[0]["fixed"])
            print(f"| {inpainter} | {protect} | {best:.2f} | {best / k:.3f} | {fixed_n} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regions", type=int, default=5000)
    ap.add_argument("--fix-regions", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    planning(args.regions)
    many_regions(args.fix_regions, args.repeats)


if __name__ == "__main__":
    main()
