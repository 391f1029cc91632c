"""Command line: ``python -m comfyui_pal <command>`` (also installed as ``comfyui-pal``).

Commands:
  fix      the main job: detect artifacts and inpaint them away, iterating until clean
  detect   find artifacts with the default (or any) model: masks, overlays, PAR report
  rank     copy images best first as NNN_parX.XXX_<name> with ranking.csv (resumable)
  queue    run an API-format workflow on a ComfyUI server per image or seed; PAR report
  demo     zoom-in crop -> built-in smooth fill -> stitch, on images with masks beside them
  convert  any supported detector checkpoint -> our safetensors (architecture in metadata)
  train    train the default model, or fine-tune any checkpoint, on synthetic / folder data
  eval     precision / recall / F1 / IoU / mIoU / PAR correlation of a model on data
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..core import regions
from ..io.images import list_images, load_image, load_mask, save_image, write_atomic
from ..pipelines.inpaint import smooth_fill


def _find_mask(image_path: Path) -> Path | None:
    """The mask of ``dir/name.ext``: ``dir/masks/name.png`` or ``dir/name_mask.png``."""
    for cand in (
        image_path.parent / "masks" / f"{image_path.stem}.png",
        image_path.with_name(f"{image_path.stem}_mask.png"),
    ):
        if cand.exists():
            return cand
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Crop every masked region, fill it with the smooth inpainter at work size, stitch back."""
    out_dir = Path(args.out)
    files = [p for p in list_images(args.inputs) if not p.stem.endswith("_mask")]
    report, failed = [], 0
    for path in files:
        mask_path = _find_mask(path)
        if mask_path is None:
            print(f"skip {path}: no mask (expected masks/{path.stem}.png beside it)")
            continue
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            mask = load_mask(mask_path)
            crops, crop_masks, plan = regions.crop_regions(
                image, mask, target_size=args.target_size, context_factor=args.context_factor
            )
            filled = smooth_fill(crops, crop_masks)
            fixed = regions.stitch(image, filled, plan, blend_radius=args.blend_radius)
            save_image(fixed[0], out_dir / f"{path.stem}_fixed.png", args.overwrite)
            save_image(
                torch.cat(list(filled), dim=2), out_dir / f"{path.stem}_crops.png", args.overwrite
            )
        except (ValueError, FileExistsError) as exc:
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        secs = time.perf_counter() - t0
        crops_used = len(plan.used_crops)
        print(
            f"{path.name}: {crops_used} crop(s) at {plan.work_size[1]}x{plan.work_size[0]}, "
            f"{len(plan.report)} region(s), {secs * 1000:.0f} ms -> {out_dir}"
        )
        report.append(
            {
                "image": str(path),
                "mask": str(mask_path),
                "seconds": secs,
                "plan": plan.to_dict(include_masks=False),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


def _inputs(args: argparse.Namespace, out_dir: Path) -> list[Path]:
    """Image files named on the command line, never any inside the output folder."""
    return [p for p in list_images(args.inputs) if out_dir.resolve() not in p.resolve().parents]


def _write_reports(out_dir: Path, rows: list[dict], fields: list[str]) -> None:
    """``report.json`` and ``report.csv`` (``fields`` per row), each written atomically."""
    import csv
    import io

    write_atomic(out_dir / "report.json", json.dumps(rows, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "report.csv", buf.getvalue())


def _fix_one(path: Path, out_dir: Path, model, opts, overwrite: bool) -> dict:
    from ..core.preview import overlay
    from ..pipelines.detect import detect, par
    from ..pipelines.fix import fix

    t0 = time.perf_counter()
    image = load_image(path)
    probs = detect(model, image, mode=opts.mode, tta=opts.tta)
    fixed, final, history = fix(model, image, opts, probs=probs)
    before = float(par(probs, opts.threshold)[0])
    after = float(par(final, 0.5)[0])
    found = (probs[0] > opts.threshold).float()
    # before | artifacts found (tinted) | after
    compare = torch.cat([image[0], overlay(image, probs, opts.threshold)[0], fixed[0]], dim=2)
    from ..pipelines.fix import change_patches

    _, (repainted,) = change_patches(image, fixed)
    save_image(fixed[0], out_dir / f"{path.stem}_fixed.png", overwrite)
    save_image(found, out_dir / f"{path.stem}_mask.png", overwrite)
    save_image(compare, out_dir / f"{path.stem}_compare.png", overwrite)
    rounds = [h for h in history if "iteration" in h]
    return {
        "image": str(path),
        "par_before": round(before, 6),
        "par_after": round(after, 6),
        "regions_tried": sum(len(h["fixed"]) for h in rounds),
        "regions_repainted": repainted,
        "regions_skipped": sum(len(h["skipped"]) for h in rounds),
        "rounds": len(rounds) - 1,
        "seconds": round(time.perf_counter() - t0, 3),
        "history": rounds,
    }


def cmd_fix(args: argparse.Namespace) -> int:
    """Detect and fix artifacts in files / folders; resumable, never overwriting."""
    from ..cache import load_model
    from ..pipelines.fix import FixOptions

    out_dir = Path(args.out)
    files = _inputs(args, out_dir)
    opts = FixOptions(
        threshold=args.threshold,
        target_par=args.target_par,
        max_iterations=args.max_iterations,
        min_confidence=args.min_confidence,
        grow=args.grow,
        tta=args.tta,
        inpainter=args.inpainter,
        seed=args.seed,
        mode=args.mode,
    )
    model = load_model(args.model, "cpu" if args.cpu else None)
    report_path = out_dir / "report.json"
    rows = json.loads(report_path.read_text()) if args.resume and report_path.exists() else []
    done = {r["image"] for r in rows}
    failed = 0
    for k, path in enumerate(files, 1):
        if args.resume and str(path) in done and (out_dir / f"{path.stem}_fixed.png").exists():
            print(f"[{k}/{len(files)}] {path.name}: done before, skipped (--resume)")
            continue
        try:
            row = _fix_one(path, out_dir, model, opts, args.overwrite)
        except (ValueError, FileExistsError) as exc:
            print(f"[{k}/{len(files)}] FAILED {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        rows = [r for r in rows if r["image"] != row["image"]] + [row]
        print(
            f"[{k}/{len(files)}] {path.name}: PAR {row['par_before']:.4f} -> "
            f"{row['par_after']:.4f}, {row['regions_repainted']} region(s) repainted, "
            f"{row['seconds']:.1f} s",
            flush=True,
        )
    fields = [
        "image",
        "par_before",
        "par_after",
        "regions_tried",
        "regions_repainted",
        "regions_skipped",
        "rounds",
        "seconds",
    ]
    _write_reports(out_dir, rows, fields)
    return 1 if failed else 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Detect artifacts in files / folders; write mask + overlay per image and a PAR report."""

    from ..cache import load_model
    from ..core.preview import overlay
    from ..pipelines.detect import detect, par

    out_dir = Path(args.out)
    files = _inputs(args, out_dir)
    model = load_model(args.model, "cpu" if args.cpu else None)
    rows, failed = [], 0
    for k, path in enumerate(files, 1):
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            probs = detect(model, image, mode=args.mode, tta=args.tta)
            score = float(par(probs, args.threshold)[0])
            save_image(
                (probs[0] > args.threshold).float(),
                out_dir / f"{path.stem}_mask.png",
                args.overwrite,
            )
            save_image(
                overlay(image, probs, args.threshold)[0],
                out_dir / f"{path.stem}_overlay.png",
                args.overwrite,
            )
        except (ValueError, FileExistsError) as exc:
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        secs = time.perf_counter() - t0
        rows.append({"image": str(path), "par": round(score, 6), "seconds": round(secs, 3)})
        print(f"[{k}/{len(files)}] {path.name}: PAR {score:.4f} ({secs * 1000:.0f} ms)")
    _write_reports(out_dir, rows, ["image", "par", "seconds"])
    return 1 if failed else 0


def cmd_rank(args: argparse.Namespace) -> int:
    """Rank image files by PAR into renamed copies plus ranking.csv; resumable."""
    from ..cache import load_model
    from ..io.ranking import score_files, write_ranking
    from ..pipelines.detect import detect, par

    out_dir = Path(args.out)
    files = _inputs(args, out_dir)
    model = load_model(args.model, "cpu" if args.cpu else None)

    def score(path: Path) -> float:
        probs = detect(model, load_image(path), mode=args.mode)
        return float(par(probs, args.threshold)[0])

    scores, failed = score_files(files, out_dir, score, args.resume)
    try:
        rows = write_ranking(scores, out_dir, args.overwrite)
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if rows:
        print(f"best: {rows[0]['copy'].name}; ranking of {len(rows)} in {out_dir / 'ranking.csv'}")
    return 1 if failed else 0


def cmd_queue(args: argparse.Namespace) -> int:
    """Fill a workflow per image / seed, run it on a ComfyUI server, collect outputs and PAR."""
    from ..io.comfy_client import Client, Job, QueueError, load_workflow, parse_seeds, run_queue

    out_dir = Path(args.out)
    try:
        workflow = load_workflow(Path(args.workflow))
        if args.images:
            jobs = [Job(p.stem, image=p) for p in list_images([args.images])]
        else:
            jobs = [Job(f"seed{s}", seed=s) for s in parse_seeds(args.seeds)]
        client = Client(args.server, retries=args.retries)
        done = run_queue(workflow, jobs, out_dir, client, args.concurrency, args.resume)
    except (QueueError, ValueError, FileNotFoundError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    rows = [{"job": j.name, "output": o} for j in done for o in j.outputs]
    if args.score and rows:
        from ..cache import load_model
        from ..pipelines.detect import detect, par

        model = load_model(args.model, "cpu" if args.cpu else None)
        for r in rows:
            probs = detect(model, load_image(out_dir / r["output"]))
            r["par"] = round(float(par(probs)[0]), 6)
    _write_reports(out_dir, rows, ["job", "output", "par"])
    print(f"{len(done)}/{len(jobs)} job(s) done, {len(rows)} output(s) in {out_dir}")
    return 0 if len(done) == len(jobs) else 1


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert an mmseg .pth / TorchScript end2end.pt / safetensors to our safetensors."""
    from ..models.loading import convert

    try:
        out = convert(
            args.src, args.dst, half=args.half, keep_aux=args.keep_aux, overwrite=args.overwrite
        )
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"convert failed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train or fine-tune; resumes from WORKDIR/last.pt when present."""
    from ..training.synth import FAMILIES
    from ..training.train import TrainConfig, train

    families = tuple(args.families.split(",")) if args.families else FAMILIES
    cfg = TrainConfig(
        out=Path(args.out),
        workdir=Path(args.workdir),
        steps=args.steps,
        batch=args.batch,
        size=args.size,
        lr=args.lr,
        init=Path(args.init) if args.init else None,
        decoder_only=args.decoder_only,
        sources=[Path(p) for p in args.sources],
        data=[Path(p) for p in args.data],
        synthetic=not args.no_synthetic,
        families=families,
        clean=args.clean,
        seed=args.seed,
        workers=args.workers,
        resume=not args.restart,
        half=not args.fp32,
    )
    if cfg.out.exists() and not args.overwrite:
        print(f"{cfg.out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    print(f"wrote {train(cfg, log=lambda m: print(m, flush=True))}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a model on PAL-layout folders and/or the synthetic held-out benchmark."""
    from ..cache import load_model
    from ..training.evaluate import evaluate

    if not args.data and not args.synthetic:
        print("nothing to evaluate: pass --data FOLDER and/or --synthetic N", file=sys.stderr)
        return 2
    model = load_model(args.model, "cpu")
    report = evaluate(
        model,
        args.data,
        args.synthetic,
        size=args.size,
        seed=args.seed,
        mode=args.mode,
        threshold=args.threshold,
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Bake the F1-best validation threshold into a checkpoint's classifier bias."""
    from ..training.calibrate import calibrate

    if Path(args.dst).exists() and not args.overwrite:
        print(f"{args.dst} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    t, f1 = calibrate(args.src, args.dst, args.count)
    print(f"F1 by threshold: {json.dumps(f1)}\nbest {t}: wrote {args.dst}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="comfyui-pal", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    fx = sub.add_parser("fix", help="the main job: find and inpaint artifacts")
    fx.add_argument("inputs", nargs="+", help="image files or folders")
    fx.add_argument("--out", default="pal_out", help="output folder (default: pal_out)")
    fx.add_argument("--model", default="default", help="checkpoint (default: shipped model)")
    fx.add_argument("--inpainter", default="patchmatch", choices=["patchmatch", "smooth"])
    fx.add_argument("--max-iterations", type=int, default=2)
    fx.add_argument(
        "--target-par",
        type=float,
        default=0.0005,
        help="stop when the artifact area ratio is at most this",
    )
    fx.add_argument("--threshold", type=float, default=0.5)
    fx.add_argument(
        "--min-confidence",
        type=float,
        default=0.85,
        help="leave regions whose mean artifact probability is lower (default: 0.85)",
    )
    fx.add_argument("--grow", type=int, default=6, help="grow regions by this many px first")
    fx.add_argument(
        "--no-tta",
        dest="tta",
        action="store_false",
        help="detect without the mirrored pass (faster, more false alarms)",
    )
    fx.add_argument("--mode", default="resize", choices=["resize", "tiled"])
    fx.add_argument("--seed", type=int, default=0)
    fx.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    fx.add_argument("--resume", action="store_true", help="skip images already fixed")
    fx.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    fx.set_defaults(func=cmd_fix)

    det = sub.add_parser("detect", help="find artifacts: masks, overlays, PAR report")
    det.add_argument("inputs", nargs="+", help="image files or folders")
    det.add_argument("--out", default="pal_out", help="output folder (default: pal_out)")
    det.add_argument("--model", default="default", help="checkpoint (default: shipped model)")
    det.add_argument("--mode", default="resize", choices=["resize", "tiled"])
    det.add_argument("--threshold", type=float, default=0.5)
    det.add_argument("--tta", action="store_true", help="average with a mirrored pass")
    det.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    det.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    det.set_defaults(func=cmd_detect)

    rk = sub.add_parser("rank", help="copy images best first by PAR, with ranking.csv")
    rk.add_argument("inputs", nargs="+", help="image files or folders")
    rk.add_argument("--out", default="pal_ranked", help="output folder (default: pal_ranked)")
    rk.add_argument("--model", default="default", help="checkpoint (default: shipped model)")
    rk.add_argument("--mode", default="resize", choices=["resize", "tiled"])
    rk.add_argument("--threshold", type=float, default=0.5)
    rk.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    rk.add_argument("--resume", action="store_true", help="reuse scores of an earlier run")
    rk.add_argument("--overwrite", action="store_true", help="replace clashing copies")
    rk.set_defaults(func=cmd_rank)

    qu = sub.add_parser("queue", help="run a workflow on a ComfyUI server per image or seed")
    qu.add_argument("workflow", help="API-format workflow JSON (examples/api/)")
    qu.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI address")
    src = qu.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images, uploaded into every LoadImage node")
    src.add_argument("--seeds", help="seeds a..b (inclusive) or a,b,c for every seed widget")
    qu.add_argument("--out", default="pal_queue", help="output folder (default: pal_queue)")
    qu.add_argument("--concurrency", type=int, default=2, help="prompts in flight at once")
    qu.add_argument("--retries", type=int, default=3, help="retries of a failed request")
    qu.add_argument("--resume", action="store_true", help="skip jobs finished before")
    qu.add_argument(
        "--no-score", dest="score", action="store_false", help="skip PAR of the outputs"
    )
    qu.add_argument("--model", default="default", help="detector for the PAR report")
    qu.add_argument("--cpu", action="store_true", help="score on the CPU even with a GPU")
    qu.set_defaults(func=cmd_queue)

    demo = sub.add_parser("demo", help="crop -> smooth fill -> stitch on images with masks")
    demo.add_argument(
        "inputs",
        nargs="*",
        default=["examples/images"],
        help="image files or folders (masks in masks/NAME.png beside them)",
    )
    demo.add_argument("--out", default="pal_out", help="output folder (default: pal_out)")
    demo.add_argument("--target-size", type=int, default=512)
    demo.add_argument("--context-factor", type=float, default=2.0)
    demo.add_argument("--blend-radius", type=float, default=16)
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.set_defaults(func=cmd_demo)
    conv = sub.add_parser("convert", help="convert a detector checkpoint to safetensors")
    conv.add_argument("src", help="official .pth, end2end.pt or .safetensors")
    conv.add_argument("dst", help="output .safetensors")
    conv.add_argument("--half", action="store_true", help="store float weights as fp16")
    conv.add_argument(
        "--keep-aux",
        action="store_true",
        help="keep the auxiliary FCN head (only useful for fine-tuning)",
    )
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output")
    conv.set_defaults(func=cmd_convert)

    tr = sub.add_parser("train", help="train / fine-tune a detector")
    tr.add_argument("--out", required=True, help="output .safetensors")
    tr.add_argument("--workdir", default="runs/train", help="checkpoints (resumable)")
    tr.add_argument("--init", help="checkpoint to fine-tune (default: ImageNet Lite0)")
    tr.add_argument("--decoder-only", action="store_true", help="freeze the encoder")
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--batch", type=int, default=8)
    tr.add_argument("--size", type=int, default=256, help="training crop size in px")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument(
        "--sources",
        nargs="*",
        default=[],
        help="folders of clean photos (default: scikit-image + Debian wallpapers)",
    )
    tr.add_argument("--data", nargs="*", default=[], help="PAL-layout folders (images/, masks/)")
    tr.add_argument("--no-synthetic", action="store_true", help="train on --data only")
    tr.add_argument("--families", help="comma-separated synthetic families (default: all)")
    tr.add_argument(
        "--clean", type=float, default=0.1, help="share of synthetic samples left clean"
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=1, help="data-loading processes")
    tr.add_argument("--restart", action="store_true", help="ignore WORKDIR/last.pt")
    tr.add_argument("--fp32", action="store_true", help="write fp32 instead of fp16 weights")
    tr.add_argument("--overwrite", action="store_true")
    tr.set_defaults(func=cmd_train)

    cal = sub.add_parser("calibrate", help="bake the F1-best threshold into a checkpoint")
    cal.add_argument("src")
    cal.add_argument("dst")
    cal.add_argument("--count", type=int, default=200, help="validation images")
    cal.add_argument("--overwrite", action="store_true")
    cal.set_defaults(func=cmd_calibrate)

    ev = sub.add_parser("eval", help="evaluate a detector")
    ev.add_argument(
        "model", nargs="?", default="default", help="checkpoint (default: the shipped model)"
    )
    ev.add_argument("--data", nargs="*", default=[], help="PAL-layout folders")
    ev.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="also score N images of the held-out synthetic benchmark",
    )
    ev.add_argument("--size", type=int, default=384, help="synthetic benchmark image size")
    ev.add_argument("--seed", type=int, default=2023, help="synthetic benchmark seed")
    ev.add_argument("--mode", default="resize", choices=["resize", "tiled"])
    ev.add_argument("--threshold", type=float, default=0.5)
    ev.add_argument("--json", help="also write the report here")
    ev.set_defaults(func=cmd_eval)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
