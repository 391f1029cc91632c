"""Shared model cache: one loaded copy per (file identity, device, dtype), for every caller.

File identity is the resolved path with its size and modification time, so an edited or
replaced file loads afresh. Thread-safe: concurrent requests for one model load it once.
Least recently used models are dropped when the cache holds more than its memory budget
(``PAL_CACHE_MB`` environment variable, default 4096 MiB).

Inside ComfyUI the device comes from ``comfy.model_management`` (so ``--cpu`` and the low-VRAM
modes are respected), and each model is wrapped in ComfyUI's ``ModelPatcher``: ComfyUI then
frees memory for it before it runs (``prepare``) and offloads it when other models need the
room. ComfyUI keeps only weak references to patchers and warns of a leak when a patcher dies
before its model, so each model holds its own patcher (``model.comfy_patcher``): it lives
exactly as long as the model, also after the cache dropped it while a node output still holds
it. Outside ComfyUI the device is CUDA, then MPS, then CPU.
"""

from __future__ import annotations

import inspect
import itertools
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .models.loading import load_model_file
from .models.memory import cache_bytes, model_bytes

# The shipped default detector (PAL-Lite, see weights/README.md).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "pal_lite.safetensors"


def resolve_model_path(path: str | Path | None) -> Path:
    """``None`` or ``"default"`` -> the shipped weights; anything else -> that path."""
    if path is None or str(path) == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"the default model {DEFAULT_WEIGHTS} is missing; reinstall the pack or pass "
                "a checkpoint path"
            )
        return DEFAULT_WEIGHTS
    return Path(path)


def _comfy_mm():
    try:
        import comfy.model_management as mm
    except Exception:  # not inside ComfyUI (or a broken install): plain torch
        return None
    return mm


def default_device() -> torch.device:
    """ComfyUI's torch device when inside ComfyUI; else CUDA, then MPS, then CPU."""
    mm = _comfy_mm()
    if mm is not None:
        return torch.device(mm.get_torch_device())
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PATCHER_ATTR = "comfy_patcher"  # the model's comfy.model_patcher.ModelPatcher inside ComfyUI


@dataclass
class _Entry:
    model: nn.Module
    nbytes: int


def budget_from_env(default_mb: float = 4096) -> int:
    """The cache budget in bytes from ``PAL_CACHE_MB`` (MiB, a number >= 0); a bad value is a
    ``ValueError`` naming the variable, raised when the first cache is made, not at import."""
    text = os.environ.get("PAL_CACHE_MB", "").strip()
    try:
        mb = float(text) if text else default_mb
    except ValueError:
        mb = -1.0
    if not mb >= 0 or mb == float("inf"):
        raise ValueError(
            f"PAL_CACHE_MB={text!r} is not a size in MiB; set it to a number such as 4096 "
            "(or unset it for the default 4096)"
        )
    return int(mb * 2**20)


class ModelCache:
    """LRU cache of loaded detector models under a memory budget (bytes)."""

    @property
    def budget_bytes(self) -> int:
        if self._budget is None:
            self._budget = budget_from_env()
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        self._budget = value

    def __init__(self, budget_bytes: int | None = None, loader: Callable = load_model_file):
        self._budget = budget_bytes  # None: PAL_CACHE_MB, read when first needed
        self._loader = loader
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.loads = 0  # how many times a file was actually read (for tests and reports)

    @staticmethod
    def key(path: str | Path, device: torch.device, dtype: torch.dtype | None) -> tuple:
        p = Path(path).resolve()
        st = p.stat()
        return (str(p), st.st_size, st.st_mtime_ns, str(device), str(dtype))

    def get(
        self,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> nn.Module:
        """The cached model for ``path`` on ``device`` / ``dtype``, loading it at most once."""
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"model file {path} does not exist; pass 'default' for the shipped model, or "
                "the path of a .safetensors / .pth / end2end.pt checkpoint"
            )
        device = torch.device(device) if device is not None else default_device()
        key = self.key(path, device, dtype)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key].model
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key].model
            entry = self._load(path, device, dtype)
            with self._lock:
                self._entries[key] = entry
                self._evict(keep=key)
                self._loading.pop(key, None)
        return entry.model

    def _load(self, path: str | Path, device: torch.device, dtype: torch.dtype | None) -> _Entry:
        mm = _comfy_mm()
        if mm is None:
            model = self._loader(path, device, dtype)
            self.loads += 1
            return _Entry(model, model_bytes(model))
        # Inside ComfyUI: load on the offload device; ComfyUI moves it when it runs.
        from comfy.model_patcher import ModelPatcher

        offload = torch.device(mm.unet_offload_device())
        model = self._loader(path, offload, dtype)
        self.loads += 1
        # ComfyUI's size of the model: weights plus the caches it keeps resident
        size = model_bytes(model) + cache_bytes(model)
        sized = "size" in inspect.signature(ModelPatcher).parameters  # else it sums weights
        extra = {"size": size} if sized else {}
        patcher = ModelPatcher(model, load_device=device, offload_device=offload, **extra)
        # a plain attribute, not a submodule: the model <-> patcher cycle dies as one
        object.__setattr__(model, PATCHER_ATTR, patcher)
        return _Entry(model, model_bytes(model))

    def _evict(self, keep: tuple) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        for key in list(self._entries):
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue
            total -= self._entries.pop(key).nbytes

    def prepare(
        self, model: nn.Module, memory_required: int | Callable[[torch.device], int] = 0
    ) -> torch.device:
        """Make ``model`` ready to run and return the device its weights are on.

        Inside ComfyUI this asks ComfyUI to free ``memory_required`` bytes beyond the
        model's size (a number, or a function of the load device computing it, called only
        there), and to load the model fully: a plain ``nn.Module`` partially loaded by
        ComfyUI's low-VRAM path would keep layers on the offload device, and its forward
        would fail on mixed devices. Should an old ComfyUI still split it, the rest follows
        with a warning. A no-op outside ComfyUI.
        """
        patcher = getattr(model, PATCHER_ATTR, None)
        mm = _comfy_mm()
        if patcher is not None and mm is not None:
            load_device = torch.device(patcher.load_device)
            need = memory_required(load_device) if callable(memory_required) else memory_required
            try:
                params = inspect.signature(mm.load_models_gpu).parameters
                if "force_full_load" in params:
                    mm.load_models_gpu([patcher], memory_required=need, force_full_load=True)
                else:  # before ComfyUI had force_full_load
                    mm.load_models_gpu([patcher], memory_required=need)
            except Exception as exc:  # an incompatible ComfyUI: run where the weights are
                warnings.warn(
                    f"ComfyUI could not load the PAL model ({exc}); running it unmanaged",
                    RuntimeWarning,
                    stacklevel=2,
                )
            _whole_on_one_device(model, load_device)
        first = next(itertools.chain(model.parameters(), model.buffers()), None)
        return first.device if first is not None else torch.device("cpu")  # (weightless)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())


def _whole_on_one_device(model: nn.Module, load_device: torch.device) -> None:
    """Move a model left split across devices (a partial load) wholly to ``load_device``."""
    devices = {t.device for t in [*model.parameters(), *model.buffers()]}
    if len(devices) > 1:
        warnings.warn(
            f"ComfyUI loaded the PAL model partially (weights on {sorted(map(str, devices))}); "
            f"moving all of it to {load_device} (free VRAM or update ComfyUI to avoid this)",
            RuntimeWarning,
            stacklevel=3,
        )
        model.to(load_device)


CACHE = ModelCache()


def load_model(
    path: str | Path | None = "default",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Load a detector through the shared cache: an ``nn.Module`` in eval mode.

    ``path`` ``None`` or ``"default"`` is the shipped model (``DEFAULT_WEIGHTS``).
    ``model(x)`` takes normalised ``[B,3,H,W]`` and returns logits ``[B,2,H,W]``.
    """
    return CACHE.get(resolve_model_path(path), device, dtype)
