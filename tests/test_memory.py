"""What a detector asks ComfyUI for: its size with caches, one forward's peak, a full load.

The forward estimate (a dry run on ``meta``) is checked against the bytes glibc's allocator
really holds during a CPU forward; the caches against what a forward leaves behind; and the
arguments ``detect`` hands to ``comfy.model_management.load_models_gpu`` on a stand-in.
"""

from __future__ import annotations

import ctypes
import sys

import comfy_stand_in
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from comfyui_pal import cache as cache_mod
from comfyui_pal.models import swin
from comfyui_pal.models.memory import cache_bytes, forward_bytes, model_bytes
from comfyui_pal.models.pal_lite import PalLite, PalLiteConfig
from comfyui_pal.models.swin_upernet import SwinUperNet, SwinUperNetConfig
from comfyui_pal.pipelines.detect import DetectOptions, detect, detect_bytes

REDUCED_SWIN = SwinUperNetConfig(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def _mallinfo():
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None

    class Info(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks "
            "keepcost".split()
        ]

    fn.restype = Info
    return lambda: (lambda m: m.uordblks + m.hblkhd)(fn())


IN_USE = _mallinfo()


class _Poll(TorchDispatchMode):
    """Peak of the allocator's bytes in use, read after every operator."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, IN_USE())
        return out


def _built(model_cls, config):
    with torch.device("meta"):
        model = model_cls(config)
    model = model.to_empty(device="cpu")
    model.init_non_persistent_buffers()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    for m in model.modules():  # to_empty left the running statistics uninitialised
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    return model.eval()


def _measured(model, shape) -> int:
    x = torch.rand(shape)
    with torch.inference_mode():
        model(x)  # warm: caches and the allocator's pools are filled, as in a real session
        base, poll = IN_USE(), _Poll()
        with poll:
            model(x)
    return poll.peak - base + x.nbytes


@pytest.mark.skipif(IN_USE is None, reason="needs glibc's mallinfo2 to read the allocator")
@pytest.mark.parametrize("arch", ["pal_lite", "swin"])
@pytest.mark.parametrize("shape", [(1, 3, 256, 320), (2, 3, 384, 384)])
def test_the_forward_estimate_bounds_the_real_peak_closely(arch, shape):
    torch.set_num_threads(1)  # one thread allocates: the main arena sees every tensor
    model = (
        _built(PalLite, PalLiteConfig())
        if arch == "pal_lite"
        else _built(SwinUperNet, REDUCED_SWIN)
    )
    est, real = forward_bytes(model, shape), _measured(model, shape)
    # an upper bound (up to the allocator's own headers), and not so loose that ComfyUI
    # would unload a diffusion model for nothing
    assert 0.99 * real <= est <= 1.6 * real, (est, real)


def test_the_estimate_grows_with_batch_and_pixels_and_halves_in_half_precision():
    model = PalLite(PalLiteConfig()).eval()
    one = forward_bytes(model, (1, 3, 256, 256))
    assert forward_bytes(model, (2, 3, 256, 256)) == pytest.approx(2 * one, rel=0.05)
    assert forward_bytes(model, (1, 3, 512, 512)) == pytest.approx(4 * one, rel=0.05)
    assert forward_bytes(model, (1, 3, 256, 256), torch.bfloat16) == pytest.approx(one / 2, rel=0.1)


def test_swin_caches_are_counted_and_freed_when_the_model_moves():
    model = _built(SwinUperNet, REDUCED_SWIN)
    with torch.inference_mode():
        model(torch.rand(1, 3, 200, 200))
    cpu = torch.device("cpu")
    held = [m._bias_cache[1] for m in model.modules() if isinstance(m, swin.WindowMSA)]
    assert held and sum(t.nbytes for t in held) == cache_bytes(model)
    assert swin.MASKS.nbytes(cpu) > 0 and swin.ORDERS.nbytes(cpu) > 0
    model.to(cpu)  # what ComfyUI's unload does (to the offload device)
    assert all(m._bias_cache is None for m in model.modules() if isinstance(m, swin.WindowMSA))
    assert swin.MASKS.nbytes(cpu) == 0 and swin.ORDERS.nbytes(cpu) == 0
    with torch.inference_mode():  # and they are rebuilt on use
        model(torch.rand(1, 3, 200, 200))
    assert swin.MASKS.nbytes(cpu) > 0


def test_inside_comfyui_detect_asks_for_a_full_load_and_its_memory(monkeypatch, tmp_path):
    log = comfy_stand_in.install(monkeypatch)
    from comfyui_pal.models.loading import save_checkpoint

    path = save_checkpoint(_built(SwinUperNet, REDUCED_SWIN), tmp_path / "swin.safetensors")
    model = cache_mod.ModelCache().get(path)
    patcher = getattr(model, cache_mod.PATCHER_ATTR)
    assert patcher.size == model_bytes(model) + cache_bytes(model) > model_bytes(model)
    image = torch.rand(1, 3, 300, 200)
    detect(model, image, mode="tiled", tile=256, batch_size=2)
    patchers, need, full = log["load_models_gpu"][-1]
    opts = DetectOptions(mode="tiled", tile=256, batch_size=2)
    assert patchers == [patcher] and full is True
    assert need == detect_bytes(model, 300, 200, opts, torch.device("cpu"))
    # the batch's model call at 512 px dominates; the full-size maps are on top
    assert need > forward_bytes(model, (2, 3, 512, 512)) + 2 * 2 * 2 * 300 * 200 * 4


def test_an_older_comfyui_without_force_full_load_is_still_asked_for_the_memory(monkeypatch):
    calls = []
    comfy_stand_in.install(monkeypatch)
    mm = sys.modules["comfy.model_management"]
    monkeypatch.setattr(mm, "load_models_gpu", lambda p, memory_required=0: calls.append(p))
    model = torch.nn.Linear(2, 2)
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(model, "cpu", "cpu")
    object.__setattr__(model, cache_mod.PATCHER_ATTR, patcher)
    assert cache_mod.CACHE.prepare(model, 123) == torch.device("cpu") and calls == [[patcher]]


def test_a_model_left_split_across_devices_is_moved_whole_with_a_warning(monkeypatch):
    comfy_stand_in.install(monkeypatch)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    patcher = sys.modules["comfy.model_patcher"].ModelPatcher(model, "cpu", "cpu")
    object.__setattr__(model, cache_mod.PATCHER_ATTR, patcher)
    # a partial load as ComfyUI's low-VRAM path leaves it: one layer elsewhere ("meta"
    # stands in for the offload device here, so moving it back is recorded, not copied)
    model[1].to("meta")
    moved = []
    monkeypatch.setattr(model, "to", lambda device: moved.append(device))
    with pytest.warns(RuntimeWarning, match="loaded the PAL model partially"):
        cache_mod.CACHE.prepare(model)
    assert moved == [torch.device("cpu")]
