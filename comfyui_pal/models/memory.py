"""How much memory a detector needs: weights, inference caches, and one forward's activations.

ComfyUI frees room for a model before it runs only as much as it is told. ``model_bytes`` +
``cache_bytes`` is the model's size (what stays resident), ``forward_bytes`` the peak of the
tensors one forward allocates at a given input shape (what must be free on top).

``forward_bytes`` is measured, not guessed: the architecture is rebuilt on the ``meta``
device (no weights, no compute) and run at the requested shape under a dispatch mode that
adds up the storage of every tensor an operator creates and subtracts it when the last
tensor using that storage dies. That peak is an upper bound of the real one (measured on CPU
against glibc's allocator: 1.00x for PAL-Lite, 1.03-1.15x for Swin-UperNet, whose fused
attention runs its unfused reference on ``meta``; ``tests/test_memory.py``). A device's
allocator adds its own workspace and rounding on top, which ComfyUI's reserve covers.
"""

from __future__ import annotations

import threading
import weakref

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def model_bytes(model: nn.Module) -> int:
    """Bytes held by a module's parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def cache_bytes(model: nn.Module) -> int:
    """The most a model's own inference caches hold (e.g. Swin's attention bias tables):
    the sum of ``cache_bytes()`` over its submodules that keep one."""
    return sum(
        m.cache_bytes()
        for m in model.modules()
        if m is not model and callable(getattr(m, "cache_bytes", None))
    )


class LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages created while active (``peak``; ``live`` now).

    An operator output that aliases nothing is a new storage; a view or in-place result
    keeps its source's storage alive, which is freed when the last tensor using it dies.
    Tensors made before the mode (weights, inputs) are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._owner: dict[int, int] = {}  # id(tensor) -> storage number
        self._users: dict[int, int] = {}  # storage number -> live tensors using it
        self._size: dict[int, int] = {}
        self._next = 0

    def _use(self, t: Tensor, s: int) -> None:
        self._users[s] += 1
        self._owner[id(t)] = s
        weakref.finalize(t, self._release, id(t), s)

    def _release(self, tid: int, s: int) -> None:
        if self._owner.get(tid) == s:
            del self._owner[tid]
        self._users[s] -= 1
        if self._users[s] == 0:
            self.live -= self._size.pop(s)
            del self._users[s]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in tree_leaves((args, kwargs)) if isinstance(a, Tensor)]
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for ret, t in zip(func._schema.returns, outs, strict=False):
            if not isinstance(t, Tensor):
                continue
            if ret.alias_info is None:
                s, self._next = self._next, self._next + 1
                self._size[s], self._users[s] = t.untyped_storage().nbytes(), 0
                self.live += self._size[s]
                self.peak = max(self.peak, self.live)
                self._use(t, s)
            else:
                src = next((self._owner[id(a)] for a in inputs if id(a) in self._owner), None)
                if src is not None:
                    self._use(t, src)
        return out


_MEMO: dict[tuple, int] = {}
_MEMO_LOCK = threading.Lock()


def forward_bytes(
    model: nn.Module, shape: tuple[int, int, int, int], dtype: torch.dtype = torch.float32
) -> int:
    """Peak bytes one ``model(x)`` allocates for ``x`` of ``shape`` ``[B,C,H,W]`` computed in
    ``dtype`` (the input itself included, the weights not).

    ``model`` is a ``Segmentor`` (its ``arch`` and ``config`` rebuild it on ``meta``); the
    result is remembered per architecture, configuration, shape and dtype (a dry run costs
    0.1-0.3 s on CPU).
    """
    from .loading import ARCHITECTURES

    config = model.config.to_dict()
    key = (model.arch, repr(sorted(config.items())), tuple(shape), dtype)
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    spec = ARCHITECTURES[model.arch]
    with torch.device("meta"):
        skeleton = spec.model(spec.config.from_dict(config)).to(dtype).eval()
    skeleton.init_non_persistent_buffers()
    counter = LiveBytes()
    with torch.inference_mode(), counter:
        x = torch.empty(shape, dtype=dtype, device="meta")
        skeleton(x)
        del x
    from . import swin

    swin.MASKS.clear(torch.device("meta"))  # the dry run's grids, not a real device's
    swin.ORDERS.clear(torch.device("meta"))
    with _MEMO_LOCK:
        _MEMO[key] = counter.peak
    return counter.peak
