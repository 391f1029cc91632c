"""One entry point that reads any supported detector checkpoint and builds the model.

Formats, told apart by their bytes (never by extension alone):

- our safetensors: architecture and config in the header metadata (``format: comfyui-pal``);
- mmsegmentation ``.pth`` (a ``torch.save`` zip, or a legacy pre-zip pickle): read as data by
  ``archive`` (never ``torch.load``), ``state_dict`` nested or bare; a pickle that needs
  anything beyond tensors and plain containers is refused;
- TorchScript ``end2end.pt`` (mmdeploy export): read as data by ``archive`` (never
  ``torch.jit.load``: no TorchScript code is loaded, no ``__setstate__`` runs), its
  parameters and buffers named like ``state_dict()``. The traced graph is never run: it was
  traced at 512x512 (on CUDA for the official files) and is wrong on other shapes; our
  native module gives probabilities too.

The architecture and its hyper-parameters are inferred from the weights, so reduced, full
and future variants load without a config file. Mapping foreign keys onto ours is not done
here: each architecture file has one ``checkpoint_filter_fn`` for it, applied to every file
read (ours included, so older conversions holding derived buffers still load).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from . import pal_lite, swin_upernet
from .archive import (
    Archive,
    ArchiveError,
    RefusedObject,
    read_legacy_pickle,
    read_pickle_archive,
    read_torchscript_weights,
)
from .base import Segmentor

FORMAT_TAG = "comfyui-pal"
FORMAT_VERSION = "1"

StateDict = dict[str, Tensor]


class Architecture(NamedTuple):
    """What the loader needs of one architecture; all of it lives in the architecture file."""

    model: type[Segmentor]
    config: type  # dataclass with to_dict() / from_dict()
    config_from_state_dict: Callable[..., object]  # (state_dict, keep_aux) -> config
    checkpoint_filter_fn: Callable[..., StateDict]  # (state_dict, keep_aux) -> our keys


ARCHITECTURES: dict[str, Architecture] = {
    swin_upernet.ARCH: Architecture(
        swin_upernet.SwinUperNet,
        swin_upernet.SwinUperNetConfig,
        swin_upernet.config_from_state_dict,
        swin_upernet.checkpoint_filter_fn,
    ),
    pal_lite.ARCH: Architecture(
        pal_lite.PalLite,
        pal_lite.PalLiteConfig,
        pal_lite.config_from_state_dict,
        pal_lite.checkpoint_filter_fn,
    ),
}


@dataclass
class Checkpoint:
    """Weights read from a file (under our key names), with what was learnt about them."""

    state_dict: dict[str, Tensor]
    arch: str
    config: dict
    source_format: str  # "safetensors" | "mmseg-pth" | "torchscript"
    metadata: dict = field(default_factory=dict)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sniff(path: Path) -> str:
    """'safetensors', 'zip' (torch.save or TorchScript), 'pickle' (legacy torch.save) or ''."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 8:
        return ""
    header_len = int.from_bytes(head[:8], "little")
    if 2 <= header_len < 100_000_000 and head[8:9] == b"{":  # before 0x80: a length can start so
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    return ""


SAFETENSORS_DTYPES = {  # safetensors dtype name -> bytes per element
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1,
}  # fmt: skip
MAX_HEADER_BYTES = 16 * 2**20


def check_safetensors_header(path: Path) -> dict:
    """The header of a safetensors file, checked before any tensor is read: a sane length,
    JSON, known dtypes, shapes of integers >= 0, offsets that match each shape, lie in the
    file and neither overlap nor leave gaps. Raises ``ValueError`` naming the tensor."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"its header claims {n} bytes in a file of {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("its __metadata__ is not an object of strings")
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise ValueError(f"tensor {name!r}: its entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            raise ValueError(
                f"tensor {name!r}: dtype {dtype!r} (known: {sorted(SAFETENSORS_DTYPES)})"
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"tensor {name!r}: shape {shape!r} is not a list of integers >= 0")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise ValueError(f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
        numel = 1
        for d in shape:
            numel *= d
        begin, end = offsets
        if end - begin != numel * SAFETENSORS_DTYPES[dtype] or begin < 0:
            raise ValueError(
                f"tensor {name!r}: {dtype} {shape} needs {numel * SAFETENSORS_DTYPES[dtype]} "
                f"bytes but data_offsets {offsets} span {end - begin}"
            )
        spans.append((begin, end, name))
    data = size - 8 - n
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            what = "overlaps the one before" if begin < at else "leaves a gap before it"
            raise ValueError(f"tensor {name!r}: data_offsets {[begin, end]} {what}")
        at = end
    if at != data:
        raise ValueError(
            f"its tensors need {at} bytes of data but the file holds {data} "
            + ("(truncated)" if at > data else "(trailing bytes)")
        )
    return meta


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict]:
    try:
        check_safetensors_header(path)
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(
            f"cannot read checkpoint {path}: corrupt or truncated safetensors ({exc})"
        ) from exc
    return sd, meta


REFUSED = (
    "refused to load {path}: {why}; unpickling it could run code. If you trust the file, "
    "re-save just its state_dict, then convert it with `python -m comfyui_pal convert`"
)


def _read_pickle(path: Path, archive: Archive | None) -> dict[str, Tensor]:
    """The state_dict of a ``torch.save`` file (mmseg's ``{'meta', 'state_dict'}`` or bare):
    its open zip ``archive``, or a legacy pickle when None."""
    try:
        obj = read_pickle_archive(archive) if archive is not None else read_legacy_pickle(path)
    except RefusedObject as exc:
        raise ValueError(REFUSED.format(path=path, why=exc)) from exc
    except ArchiveError as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: truncated or corrupt ({exc})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} holds a {type(obj).__name__} that is not a state_dict of tensors; "
            "expected an mmseg checkpoint ({'meta', 'state_dict'}) or a bare state_dict"
        )
    return dict(obj)


def _read_torchscript(path: Path, archive: Archive) -> dict[str, Tensor]:
    try:
        return read_torchscript_weights(archive)
    except ArchiveError as exc:
        raise ValueError(f"cannot read TorchScript checkpoint {path}: {exc}") from exc


def _open_archive(path: Path) -> Archive:
    try:
        return Archive(path)
    except ArchiveError as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc


def _strip_ddp_prefix(sd: StateDict) -> StateDict:
    """Undo DistributedDataParallel's ``module.`` prefix (only when every key has it)."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _stored_config(path: Path, meta: dict, spec: Architecture) -> dict:
    """The ``config`` metadata of our safetensors, checked field by field against the types of
    the architecture's defaults (ints >= 0, tuples of them, None where allowed)."""
    try:
        config = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: its metadata field 'config' is not JSON ({exc}); the file was edited or "
            "damaged: convert the original checkpoint again"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: its metadata field 'config' is {config!r:.60}, not an object")

    def count(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    for key, default in spec.config().to_dict().items():
        if key not in config:
            continue
        v = config[key]
        if isinstance(default, (tuple, list)):
            ok, kind = isinstance(v, list) and all(count(x) for x in v), "a list of integers >= 0"
        else:
            ok, kind = count(v) or (v is None and key.startswith("aux")), "an integer >= 0"
        if not ok:
            raise ValueError(
                f"{path}: metadata config field {key!r} is {v!r:.60}; expected {kind} (the file "
                "was edited or damaged: convert the original checkpoint again)"
            )
    return config


def detect_arch(sd: dict[str, Tensor]) -> str:
    """Name the architecture a state_dict belongs to, or raise saying what was found."""
    keys = list(sd)
    if any(k.startswith("backbone.stages.") for k in keys) and any(
        k.startswith("decode_head.psp_modules.") for k in keys
    ):
        return swin_upernet.ARCH
    if any(k.startswith("encoder.blocks.") for k in keys) and "decoder.classifier.weight" in sd:
        return pal_lite.ARCH
    sample = ", ".join(keys[:4]) or "no tensors"
    raise ValueError(
        f"unknown checkpoint layout ({len(keys)} tensors: {sample}, ...); expected a PAL "
        "detector: an official PAL4VST Swin + UPerNet checkpoint (keys backbone.stages.*, "
        "decode_head.*) or a comfyui-pal safetensors file"
    )


def read_checkpoint(path: str | Path, keep_aux: bool = False) -> Checkpoint:
    """Read weights from any supported file and identify their architecture and config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    kind = _sniff(path)
    meta: dict = {}
    if kind == "safetensors":
        sd, meta = _read_safetensors(path)
        fmt = "safetensors"
    elif kind == "zip":  # opened once: TorchScript or a torch.save file
        with _open_archive(path) as archive:
            if archive.scripted:
                sd, fmt = _read_torchscript(path, archive), "torchscript"
            else:
                sd, fmt = _read_pickle(path, archive), "mmseg-pth"
    elif kind == "pickle":
        sd, fmt = _read_pickle(path, None), "mmseg-pth"
    else:
        raise ValueError(
            f"{path} is not a checkpoint this pack reads (found neither safetensors, a torch "
            "zip / pickle nor TorchScript); expected .safetensors, mmseg .pth or end2end.pt"
        )
    sd = _strip_ddp_prefix(sd)
    config: dict | None = None
    if meta.get("format") == FORMAT_TAG:
        arch = meta.get("arch", "")
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"{path} declares architecture {arch!r}; known: {sorted(ARCHITECTURES)}; "
                "it was written by a newer comfyui-pal (update the pack) or edited"
            )
        config = _stored_config(path, meta, ARCHITECTURES[arch])
    else:
        arch = detect_arch(sd)
    spec = ARCHITECTURES[arch]
    sd = spec.checkpoint_filter_fn(sd, keep_aux=keep_aux)
    if config is None:
        config = spec.config_from_state_dict(sd, keep_aux=keep_aux).to_dict()
    if not keep_aux and "aux_channels" in config:
        config["aux_channels"] = None  # its weights were dropped by the filter
    return Checkpoint(sd, arch, config, fmt, meta)


def build_model(ckpt: Checkpoint) -> Segmentor:
    """Instantiate the checkpoint's architecture and load its weights strictly (eval mode)."""
    spec = ARCHITECTURES[ckpt.arch]
    with torch.device("meta"):  # no random init, no second copy of the weights
        model = spec.model(spec.config.from_dict(ckpt.config))
    expected = model.state_dict()
    missing = [k for k in expected if k not in ckpt.state_dict]
    unexpected = [k for k in ckpt.state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in ckpt.state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} with other shapes (e.g. {'; '.join(wrong[:2])})")
        raise ValueError(
            f"weights do not fit the {ckpt.arch} architecture they look like: "
            + ", ".join(parts)
            + "; the file may be truncated, from another model, or edited"
        )
    broken = [
        k for k, v in ckpt.state_dict.items() if v.is_floating_point() and not v.isfinite().all()
    ]
    if broken:
        raise ValueError(
            f"{len(broken)} weight tensor(s) hold NaN or infinity (e.g. {', '.join(broken[:3])}): "
            "the checkpoint is damaged or its training diverged; it would report every image clean"
        )
    sd = {
        k: v.to(expected[k].dtype) if v.is_floating_point() else v
        for k, v in ckpt.state_dict.items()
    }
    model.load_state_dict(sd, strict=True, assign=True)
    model.init_non_persistent_buffers()  # derived buffers are built, not loaded
    return model.eval().requires_grad_(False)


def load_model_file(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Segmentor:
    """Read, build and place a detector without any caching (see ``cache.load_model``)."""
    model = build_model(read_checkpoint(path))
    return model.to(device=device, dtype=dtype) if dtype else model.to(device)


def save_checkpoint(
    model: Segmentor, path: str | Path, *, half: bool = False, extra: dict | None = None
) -> Path:
    """Write ``model`` as our safetensors with architecture + config metadata.

    Only ``state_dict()`` is written, so derived (non-persistent) buffers are not.
    """
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    meta = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "config": json.dumps(model.config.to_dict()),
        "dtype": "float16" if half else "float32",
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(sd, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    half: bool = False,
    keep_aux: bool = False,
    overwrite: bool = False,
) -> Path:
    """Convert any supported checkpoint to our safetensors format (records source + sha256)."""
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"output {dst} must end in .safetensors")
    if dst.exists() and (not overwrite or dst.resolve() == src.resolve()):
        raise FileExistsError(f"{dst} exists; pass --overwrite to replace it (never the input)")
    ckpt = read_checkpoint(src, keep_aux=keep_aux)
    model = build_model(ckpt)
    return save_checkpoint(
        model,
        dst,
        half=half,
        extra={
            "source_file": src.name,
            "source_sha256": sha256_file(src),
            "source_format": ckpt.source_format,
        },
    )
