"""Swin Transformer backbone, laid out so an mmsegmentation state_dict loads by name.

Plain ``nn.Module`` code for the PAL4VST backbone (Liu et al., ICCV 2021, as implemented in
mmseg 0.x / 1.x ``SwinTransformer``). Module names follow mmseg: ``patch_embed``,
``stages.{i}.blocks.{j}.{norm1,attn.w_msa,norm2,ffn}``, ``stages.{i}.downsample``,
``norm{i}``. Any input size works: the patch embedding, every window attention and every
patch merging zero-pad at the bottom / right as mmseg does.

Shapes: tokens ``[B, H*W, C]``; outputs ``[B, C_i, H_i, W_i]`` with ``H_1 = ceil(H/4)`` and
``H_{i+1} = ceil(H_i/2)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

MASK_FILL = -100.0  # value mmseg adds to attention logits across shifted-window borders


class DeviceCache:
    """Least recently used derived tensors (shift masks, window orders) by key, ``size`` at
    most. Keys end with the device; ``clear(device)`` drops one device's entries (a model
    offloaded by ComfyUI must not leave GPU tensors behind) and ``nbytes`` says what they
    hold."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[Tensor, ...]] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = build()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self, device: torch.device | None = None) -> None:
        with self._lock:
            for key in [k for k in self._entries if device is None or k[-1] == device]:
                del self._entries[key]

    def nbytes(self, device: torch.device | None = None) -> int:
        with self._lock:
            return sum(
                t.nbytes
                for k, v in self._entries.items()
                if device is None or k[-1] == device
                for t in v
            )


MASKS = DeviceCache(8)  # shift masks up to MASK_CACHE_ELEMENTS each
ORDERS = DeviceCache(32)  # window partition gathers


class PatchEmbed(nn.Module):
    """Zero-pad to a multiple of the patch, ``Conv2d(3, C, p, stride p)``, LayerNorm."""

    def __init__(self, embed_dim: int, patch_size: int = 4, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        p = self.patch_size
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


def relative_position_index(window: int) -> Tensor:
    """``[window^2, window^2]`` int64 index into the ``(2w-1)^2`` relative-bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        # derived from the window size: built, never loaded or saved (mmseg stores a copy;
        # the checkpoint filter drops it and a stored one is ignored, see _load_from_state_dict)
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self._bias_cache: tuple[tuple, Tensor] | None = None

    def init_non_persistent_buffers(self) -> None:
        """Rebuild ``relative_position_index`` on the bias table's device (after a meta build)."""
        device = self.relative_position_bias_table.device
        self.relative_position_index = relative_position_index(self.window).to(device)
        self._bias_cache = None

    def _apply(self, fn, *args, **kwargs):
        self._bias_cache = None  # moved or cast (e.g. offloaded by ComfyUI): rebuilt on use
        return super()._apply(fn, *args, **kwargs)

    def cache_bytes(self) -> int:
        """The most the inference bias cache holds: ``[heads, N, N]`` float32."""
        n = self.relative_position_index.shape[0]
        return self.num_heads * n * n * 4

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # older files (mmseg, our conversions before the buffer became non-persistent) hold a
        # relative_position_index: it is derived, so the stored copy is ignored, not loaded
        state_dict.pop(f"{prefix}relative_position_index", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def position_bias(self, dtype: torch.dtype) -> Tensor:
        """``[heads, N, N]`` relative position bias of one window.

        Without autograd it is kept until the table changes (in place or replaced), so
        inference does not gather it again for every call.
        """
        table = self.relative_position_bias_table
        n = self.relative_position_index.shape[0]
        if torch.is_grad_enabled():
            bias = table[self.relative_position_index.view(-1)]
            return bias.view(n, n, -1).permute(2, 0, 1).to(dtype)
        # an inference tensor (weights loaded under inference_mode) has no version counter
        version = None if table.is_inference() else table._version
        key = (table.data_ptr(), version, table.device, dtype)
        if self._bias_cache is None or self._bias_cache[0] != key:
            bias = table[self.relative_position_index.view(-1)]
            self._bias_cache = (key, bias.view(n, n, -1).permute(2, 0, 1).to(dtype).contiguous())
        return self._bias_cache[1]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` ``[B*nW, N, C]``; ``mask`` ``[nW, N, N]`` (0 or MASK_FILL) or None.

        ``softmax(q k^T * scale + bias (+ mask)) v`` through PyTorch's fused attention, which
        never materialises the attention maps of all windows at once.
        """
        bw, n, c = x.shape
        qkv = rearrange(self.qkv(x), "b n (k h d) -> k b h n d", k=3, h=self.num_heads)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.position_bias(q.dtype)  # [heads, N, N]
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], scale=self.scale)
        else:  # one call per image so the [nW, heads, N, N] mask is shared, not copied
            nw = mask.shape[0]
            m = bias[None] + mask[:, None].to(q.dtype)
            outs = [
                F.scaled_dot_product_attention(
                    q[i : i + nw], k[i : i + nw], v[i : i + nw], attn_mask=m, scale=self.scale
                )
                for i in range(0, bw, nw)
            ]
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


MASK_CACHE_ELEMENTS = 4 * 2**20  # cache shift masks up to 16 MB each (8 sizes at most)


def _shift_mask(hp: int, wp: int, ws: int, s: int, device: torch.device) -> Tensor:
    """``[nW, N, N]`` mask (0 / MASK_FILL) of a shifted window grid.

    A constant of the padded size, so masks up to ``MASK_CACHE_ELEMENTS`` are cached: every
    shifted block of a stage, every tile of a tiled detection and every call at the same size
    reuse one.
    """
    if (hp // ws) * (wp // ws) * (ws * ws) ** 2 <= MASK_CACHE_ELEMENTS:
        key = (hp, wp, ws, s, device)
        return MASKS.get(key, lambda: (_build_shift_mask(hp, wp, ws, s, device),))[0]
    return _build_shift_mask(hp, wp, ws, s, device)


def _build_shift_mask(hp: int, wp: int, ws: int, s: int, device: torch.device) -> Tensor:
    # built outside inference mode, so a cached mask may serve training too
    with torch.inference_mode(False), torch.no_grad():
        img = torch.zeros(hp, wp, device=device)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[hs, wsl] = cnt
                cnt += 1
        ids = rearrange(img, "(h p) (w q) -> (h w) (p q)", p=ws, q=ws)
        diff = ids[:, None, :] - ids[:, :, None]
        return torch.where(diff != 0, MASK_FILL, 0.0)


def _window_order(h: int, w: int, ws: int, s: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Token gathers (cached in ``ORDERS``) of the (shifted) window partition of an
    ``h x w`` grid padded to whole windows ``hp x wp``.

    ``order`` ``[hp*wp]``: for each token in window order (window by window, row-major inside)
    its flat index in the padded grid after rolling it by ``-s`` on both axes. ``back``
    ``[h*w]``: for each unpadded grid position, where its token sits in window order. One
    gather in replaces the roll and partition copies, one gather out the reverse partition,
    roll and crop.
    """
    return ORDERS.get((h, w, ws, s, device), lambda: _build_window_order(h, w, ws, s, device))


def _build_window_order(
    h: int, w: int, ws: int, s: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    hp, wp = h + (-h) % ws, w + (-w) % ws
    with torch.inference_mode(False), torch.no_grad():  # cached: may serve training too
        rows = (torch.arange(hp, device=device) + s) % hp
        cols = (torch.arange(wp, device=device) + s) % wp
        grid = rows[:, None] * wp + cols[None, :]
        order = rearrange(grid, "(h p) (w q) -> (h w p q)", p=ws, q=ws)
        back = torch.empty_like(order)
        back[order] = torch.arange(order.numel(), device=device)
        return order, back.view(hp, wp)[:h, :w].reshape(-1)


class ShiftWindowMSA(nn.Module):
    """Pad to whole windows, optionally roll by half a window, attend per window, undo."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.w_msa = WindowMSA(dim, num_heads, window)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        h, w = hw
        b, _, c = x.shape
        ws = self.window
        hp, wp = h + (-h) % ws, w + (-w) % ws
        if (hp, wp) != (h, w):  # zero tokens to whole windows, as the reference pads
            x = F.pad(x.view(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h)).view(b, hp * wp, c)
        order, back = _window_order(h, w, ws, self.shift, x.device)
        mask = _shift_mask(hp, wp, ws, self.shift, x.device) if self.shift else None
        win = x.index_select(1, order).view(-1, ws * ws, c)
        win = self.w_msa(win, mask)
        return win.view(b, hp * wp, c).index_select(1, back)


class FFN(nn.Module):
    """``Linear -> GELU -> Linear`` named like mmcv's FFN (``layers.0.0`` and ``layers.1``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class SwinBlock(nn.Module):
    """``x + attn(LN(x))`` then ``x + ffn(LN(x))``; odd blocks use shifted windows."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: bool, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftWindowMSA(dim, num_heads, window, window // 2 if shift else 0)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FFN(dim, dim * mlp_ratio)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return x + self.ffn(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhoods to one token: pad to even, unfold (channel-major), LN, Linear."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        h, w = hw
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        x = F.pad(x, (0, w % 2, 0, h % 2))
        # mmseg uses nn.Unfold(2, stride=2): feature index = c*4 + kh*2 + kw
        x = rearrange(x, "b c (h kh) (w kw) -> b (h w) (c kh kw)", kh=2, kw=2)
        return self.reduction(self.norm(x)), ((h + 1) // 2, (w + 1) // 2)


class SwinStage(nn.Module):
    def __init__(
        self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: int, downsample: bool
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, shift=j % 2 == 1, mlp_ratio=mlp_ratio)
            for j in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, hw: tuple[int, int]) -> tuple[Tensor, tuple[int, int]]:
        for block in self.blocks:
            x = block(x, hw)
        return x, hw


class SwinTransformer(nn.Module):
    """Swin backbone returning the four normalised stage outputs ``[B, C*2^i, H_i, W_i]``."""

    def __init__(
        self,
        embed_dim: int = 128,
        depths: tuple[int, ...] = (2, 2, 18, 2),
        num_heads: tuple[int, ...] = (4, 8, 16, 32),
        window: int = 12,
        mlp_ratio: int = 4,
        patch_size: int = 4,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        self.patch_embed = PatchEmbed(embed_dim, patch_size)
        n = len(depths)
        dims = [embed_dim * 2**i for i in range(n)]
        self.stages = nn.ModuleList(
            SwinStage(dims[i], depths[i], num_heads[i], window, mlp_ratio, i < n - 1)
            for i in range(n)
        )
        for i, d in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(d))
        self.out_channels = dims

    def _apply(self, fn, *args, **kwargs):
        # moved or cast (ComfyUI offloading it, .to(dtype)): the grids built on the device it
        # leaves go with it
        device = self.patch_embed.projection.weight.device
        MASKS.clear(device)
        ORDERS.clear(device)
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: Tensor) -> list[Tensor]:
        x, hw = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, hw = stage(x, hw)
            out = getattr(self, f"norm{i}")(x)
            outs.append(rearrange(out, "b (h w) c -> b c h w", h=hw[0], w=hw[1]))
            if stage.downsample is not None:
                x, hw = stage.downsample(x, hw)
        return outs
