"""Shared model cache: one copy per file / device / dtype, thread-safe, LRU under a budget."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import types
import weakref

import pytest
import torch
from torch import nn

from comfyui_pal import cache as cache_mod
from comfyui_pal.cache import ModelCache
from comfyui_pal.models.memory import model_bytes


def _slow_loader(calls: list):
    def load(path, device, dtype):
        calls.append(str(path))
        time.sleep(0.05)  # widen the race window
        return nn.Linear(256, 256).to(device)

    return load


@pytest.fixture
def weight_files(tmp_path):
    files = []
    for i in range(3):
        p = tmp_path / f"m{i}.safetensors"
        p.write_bytes(b"x" * (i + 1))
        files.append(p)
    return files


def test_eight_threads_asking_for_one_model_load_it_once(weight_files):
    calls: list = []
    c = ModelCache(loader=_slow_loader(calls))
    got = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        got[i] = c.get(weight_files[0], "cpu")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and c.loads == 1
    assert all(m is got[0] for m in got)


def test_device_and_dtype_are_part_of_the_key(weight_files):
    calls: list = []
    c = ModelCache(loader=_slow_loader(calls))
    a = c.get(weight_files[0], "cpu")
    b = c.get(weight_files[0], "cpu", torch.float16)
    assert a is not b and c.get(weight_files[0], "cpu") is a and len(calls) == 2


def test_a_changed_file_is_loaded_again(weight_files):
    calls: list = []
    c = ModelCache(loader=_slow_loader(calls))
    first = c.get(weight_files[0], "cpu")
    weight_files[0].write_bytes(b"different size now")
    st = weight_files[0].stat()
    os.utime(weight_files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert c.get(weight_files[0], "cpu") is not first and len(calls) == 2


def test_least_recently_used_models_are_evicted_past_the_budget(weight_files):
    one = 256 * 256 * 4 + 256 * 4
    c = ModelCache(budget_bytes=2 * one, loader=_slow_loader([]))
    m0 = c.get(weight_files[0], "cpu")
    c.get(weight_files[1], "cpu")
    assert c.get(weight_files[0], "cpu") is m0  # touch m0: m1 is now the oldest
    c.get(weight_files[2], "cpu")
    assert len(c) == 2 and c.nbytes <= 2 * one
    assert c.get(weight_files[0], "cpu") is m0  # kept
    assert c.loads == 3


def test_a_model_larger_than_the_budget_is_still_served(weight_files):
    c = ModelCache(budget_bytes=10, loader=_slow_loader([]))
    assert isinstance(c.get(weight_files[0], "cpu"), nn.Linear) and len(c) == 1


def test_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ModelCache().get(tmp_path / "nope.safetensors")


def test_outside_comfyui_the_device_is_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(cache_mod, "_comfy_mm", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert cache_mod.default_device() == torch.device("cpu")


def _fake_comfy(monkeypatch, log: list):
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")

    def load_models_gpu(patchers, memory_required=0, force_full_load=False):
        log.append(("load_models_gpu", patchers, memory_required, force_full_load))

    mm.load_models_gpu = load_models_gpu
    mp = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0):
            log.append(("patcher", load_device, offload_device, size))
            self.model, self.load_device, self.size = model, load_device, size

    mp.ModelPatcher = ModelPatcher
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.model_patcher = mm, mp
    for name, mod in {
        "comfy": comfy,
        "comfy.model_management": mm,
        "comfy.model_patcher": mp,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)


def test_inside_comfyui_models_are_wrapped_so_comfyui_manages_their_memory(
    monkeypatch, weight_files
):
    log: list = []
    _fake_comfy(monkeypatch, log)
    c = ModelCache(loader=_slow_loader([]))
    model = c.get(weight_files[0])
    assert log[0] == ("patcher", torch.device("cpu"), torch.device("cpu"), model_bytes(model))
    assert c.prepare(model) == torch.device("cpu")
    assert log[-1][0] == "load_models_gpu" and log[-1][1][0].model is model


def test_inside_comfyui_a_model_evicted_while_in_use_stays_managed_and_then_frees(
    monkeypatch, weight_files
):
    # ComfyUI holds patchers weakly and reports a leak when a patcher dies before its model:
    # a model a node output still holds must keep its patcher after our cache dropped it
    log: list = []
    _fake_comfy(monkeypatch, log)
    c = ModelCache(budget_bytes=1, loader=_slow_loader([]))
    first = c.get(weight_files[0])
    patcher = weakref.ref(getattr(first, cache_mod.PATCHER_ATTR))
    c.get(weight_files[1])
    assert len(c) == 1
    gc.collect()
    assert patcher() is not None
    c.prepare(first)
    assert log[-1][0] == "load_models_gpu" and log[-1][1][0] is patcher()
    model = weakref.ref(first)
    log.clear()
    del first
    gc.collect()
    assert model() is None and patcher() is None
