"""Read torch zip archives (``torch.save`` files and TorchScript ``.pt``) as data, never as code.

Legacy (pre-zip, torch < 1.6) ``torch.save`` files are read the same way. Neither
``torch.load`` nor ``torch.jit.load`` is called: ``torch.load(weights_only=True)`` ran
code before torch 2.6 (CVE-2025-32434) and could corrupt memory before 2.10 (CVE-2026-24747),
and ``torch.jit.load`` deserialises a program (its ``__setstate__`` methods run). Here the zip
is opened with ``zipfile``, its sizes are checked before anything is inflated, and ``data.pkl``
is unpickled by a restricted unpickler that rebuilds only tensors (bounds-checked views of the
archive's raw storages), ``OrderedDict`` and the plain types pickle makes on its own. A
TorchScript module becomes a tree of inert ``ScriptObject`` records whose state is kept, not
run; its parameters and buffers are named by their attribute paths, like ``state_dict()``.
The ``code/`` folder of a TorchScript file is read as text only, for its ``__parameters__`` /
``__buffers__`` declarations.
"""

from __future__ import annotations

import ast
import io
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

MAX_PICKLE_BYTES = 256 * 2**20  # a data.pkl larger than this is refused before inflating it
STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class ArchiveError(ValueError):
    """The archive is corrupt, too large for its size, or holds something beyond tensors."""


class RefusedObject(ArchiveError, pickle.UnpicklingError):
    """The pickle names a Python object that is not a tensor or a plain container."""


class ScriptObject:
    """An inert stand-in for a TorchScript object: its class name and its pickled state."""

    qualname = "?"

    def __setstate__(self, state: object) -> None:  # pickle's BUILD: keep, never run
        self.state = state


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ArchiveError(f"a tensor's {what} is {value!r}, not a tuple of integers >= 0")
    return value


def _rebuild(storage: Tensor, offset: int, size: tuple, stride: tuple, *_rest) -> Tensor:
    """A view of ``storage`` after checking that it stays inside it."""
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not isinstance(storage, Tensor) or not isinstance(offset, int) or offset < 0:
        raise ArchiveError("a tensor does not point at one of the archive's storages")
    if len(size) != len(stride):
        raise ArchiveError(f"a tensor's size {size} and stride {stride} differ in length")
    if all(size):
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel():
            raise ArchiveError(
                f"a tensor of size {size} at offset {offset} reaches past its storage of "
                f"{storage.numel()} elements (a corrupt or edited file)"
            )
    return storage.as_strided(size, stride, offset)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_rest) -> Tensor:
    if not isinstance(dtype, torch.dtype) or storage.dtype != torch.uint8:
        raise ArchiveError("a tensor names a dtype that does not fit its storage")
    if storage.numel() % dtype.itemsize:
        raise ArchiveError(f"a storage of {storage.numel()} bytes does not hold whole {dtype}")
    return _rebuild(storage.view(dtype), offset, size, stride)


def _parameter(data: Tensor, *_rest) -> Tensor:
    if not isinstance(data, Tensor):
        raise ArchiveError("a parameter does not hold a tensor")
    return data


SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild,
    ("torch._utils", "_rebuild_tensor"): _rebuild,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_v3,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", str(d).split(".")[1]): d for d in set(STORAGE_DTYPES.values())},
}


class _Unpickler(pickle.Unpickler):
    """Rebuilds tensors from ``storage(key, dtype, numel)`` and nothing but SAFE_GLOBALS (and
    inert ``ScriptObject`` records for ``__torch__`` classes when ``scripted``)."""

    def __init__(self, file: BinaryIO, storage: Callable[[str, torch.dtype, int], Tensor],
                 scripted: bool = False) -> None:  # fmt: skip
        super().__init__(file)
        self.storage, self.scripted = storage, scripted
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return _StorageType(name)
        if self.scripted and (module == "__torch__" or module.startswith("__torch__.")):
            qualname = f"{module}.{name}"
            if qualname not in self.classes:
                self.classes[qualname] = type(
                    "ScriptObject", (ScriptObject,), {"qualname": qualname}
                )
            return self.classes[qualname]
        raise RefusedObject(f"it names {module}.{name}, which is not a tensor or a plain container")

    def persistent_load(self, pid: object) -> Tensor:
        if (
            not isinstance(pid, tuple)
            or len(pid) < 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
            or pid[4] < 0
            or (
                len(pid) > 5 and pid[5] is not None
            )  # legacy storage views: never written since 2018
        ):
            raise ArchiveError(f"a tensor points at {pid!r:.80}, not at a storage of the archive")
        return self.storage(pid[2], pid[1].dtype, pid[4])


class Archive:
    """A torch zip archive opened for reading its pickles and raw storages."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.zip = zipfile.ZipFile(self.path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ArchiveError(f"truncated or corrupt zip ({exc})") from exc
        try:
            self._check(infos)
        except BaseException:
            self.zip.close()  # a refused file is not held open
            raise

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        """Index the records and refuse what is not a torch archive, before inflating."""
        self.infos = {i.filename: i for i in infos}
        pickles = [n for n in self.infos if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ArchiveError("no single <name>/data.pkl record: not a torch archive")
        self.prefix = pickles[0][: -len("data.pkl")]
        stored = self.path.stat().st_size
        declared = sum(i.file_size for i in infos)
        if declared > 2 * stored + 2**24:  # torch writes records uncompressed (ratio 1)
            raise ArchiveError(
                f"its records claim {declared / 2**20:.0f} MiB inflated from a "
                f"{stored / 2**20:.1f} MiB file (a zip bomb?); refused before inflating"
            )
        order = self._record("byteorder", 16, missing_ok=True)
        if order not in (None, b"little"):
            raise ArchiveError(f"its byte order is {order!r}; only little-endian files are read")
        self.scripted = any(
            n.startswith(self.prefix + "code/") or n == self.prefix + "constants.pkl"
            for n in self.infos
        )
        self.storages: dict[str, Tensor] = {}

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()  # storages were copied out: nothing read depends on the file

    def _record(self, name: str, limit: int, missing_ok: bool = False) -> bytes | None:
        info = self.infos.get(self.prefix + name)
        if info is None:
            if missing_ok:
                return None
            raise ArchiveError(f"the record {self.prefix}{name} is missing")
        if info.file_size > limit:
            raise ArchiveError(f"the record {info.filename} is {info.file_size} bytes")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise ArchiveError(f"cannot read {info.filename} ({exc})") from exc

    def storage(self, key: str, dtype: torch.dtype, numel: int) -> Tensor:
        """The raw storage ``data/<key>`` as a 1-D tensor of ``numel`` ``dtype`` elements."""
        if key not in self.storages:
            nbytes = numel * dtype.itemsize
            info = self.infos.get(f"{self.prefix}data/{key}")
            if info is None or info.file_size != nbytes:
                found = "missing" if info is None else f"{info.file_size} bytes"
                raise ArchiveError(
                    f"storage {key} should hold {nbytes} bytes ({numel} x {dtype}) but is "
                    f"{found} (a truncated or edited file)"
                )
            raw = bytearray(self._record(f"data/{key}", nbytes))
            flat = (
                torch.frombuffer(raw, dtype=torch.uint8)
                if raw
                else torch.empty(0, dtype=torch.uint8)
            )
            self.storages[key] = flat.view(dtype) if dtype != torch.uint8 else flat
        storage = self.storages[key]
        if storage.dtype != dtype:
            raise ArchiveError(f"storage {key} is read as both {storage.dtype} and {dtype}")
        return storage

    def load(self) -> object:
        """The unpickled ``data.pkl`` (tensors, containers, ``ScriptObject`` records)."""
        data = self._record("data.pkl", MAX_PICKLE_BYTES)
        unpickler = _Unpickler(io.BytesIO(data), self.storage, self.scripted)
        return _guarded("its data.pkl", unpickler.load)

    def declared_tensors(self) -> dict[str, tuple[set[str], set[str]]]:
        """Per TorchScript class (qualified name): (parameter names, buffer names), read as
        text from the ``code/`` records' ``__parameters__`` / ``__buffers__`` lines."""
        out: dict[str, tuple[set[str], set[str]]] = {}
        code = self.prefix + "code/"
        for name in self.infos:
            if not (name.startswith(code) and name.endswith(".py")):
                continue
            module = name[len(code) : -3].replace("/", ".")
            text = (self._record(name[len(self.prefix) :], 64 * 2**20) or b"").decode(
                "utf-8", "replace"
            )
            for block in re.split(r"^class ", text, flags=re.M)[1:]:
                cls = block.split("(", 1)[0].split(":", 1)[0].strip()
                lists = [_names(block, "__parameters__"), _names(block, "__buffers__")]
                out[f"{module}.{cls}"] = (lists[0], lists[1])
        return out


UNPICKLE_ERRORS = (
    pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
    KeyError, RuntimeError, MemoryError, RecursionError, OverflowError,
)  # fmt: skip


def _guarded(what: str, load: Callable[[], object]) -> object:
    """``load()`` with pickle's own errors turned into an ``ArchiveError`` naming ``what``."""
    try:
        return load()
    except ArchiveError:
        raise
    except UNPICKLE_ERRORS as exc:
        raise ArchiveError(f"{what} is corrupt ({type(exc).__name__}: {exc})") from exc


LEGACY_MAGIC, LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


def read_legacy_pickle(path: str | Path) -> object:
    """The object a legacy (pre-zip, torch < 1.6) ``torch.save`` file holds, read as data.

    Layout: pickles of the magic number, the protocol, a sys_info dict and the object (its
    storages as persistent ids), then a pickle of the storage keys, then per key an int64
    element count and the raw bytes. Every storage's size is checked against the file before
    it is allocated."""
    path = Path(path)
    size = path.stat().st_size
    storages: dict[str, Tensor] = {}

    def storage(key: str, dtype: torch.dtype, numel: int) -> Tensor:
        if key not in storages:
            if numel * dtype.itemsize > size:
                raise ArchiveError(
                    f"storage {key} claims {numel} x {dtype} in a file of {size} bytes"
                )
            storages[key] = torch.empty(numel, dtype=dtype)
        if storages[key].dtype != dtype:
            raise ArchiveError(f"storage {key} is read as both {storages[key].dtype} and {dtype}")
        return storages[key]

    with open(path, "rb") as f:
        plain = _Unpickler(f, storage)  # also refuses any global in the preamble
        head = [_guarded("its header", plain.load) for _ in range(3)]
        if head[0] != LEGACY_MAGIC or head[1] != LEGACY_PROTOCOL or not isinstance(head[2], dict):
            raise ArchiveError("not a torch.save file (its magic number or protocol differ)")
        if not head[2].get("little_endian", True):
            raise ArchiveError("it was written on a big-endian machine; only little-endian is read")
        obj = _guarded("its pickle", _Unpickler(f, storage).load)
        keys = _guarded("its storage list", _Unpickler(f, storage).load)
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
            raise ArchiveError("its storage list does not match the storages its tensors use")
        for key in keys:
            t = storages[key]
            count = int.from_bytes(f.read(8), "little")
            raw = t.view(torch.uint8) if t.numel() else t
            if count != t.numel() or f.readinto(memoryview(raw.numpy())) != raw.numel():
                raise ArchiveError(f"storage {key} is truncated or its size differs")
    return obj


def _names(block: str, field: str) -> set[str]:
    m = re.search(rf"^\s+{field} = (\[.*?\])\s*$", block, flags=re.M)
    if not m:
        return set()
    try:
        value = ast.literal_eval(m.group(1))  # a literal list of strings; nothing is run
    except (ValueError, SyntaxError):
        return set()
    return {v for v in value if isinstance(v, str)}


def read_pickle_archive(source: str | Path | Archive) -> object:
    """The object a ``torch.save`` zip file (a path, or an open ``Archive``) holds, rebuilt
    from tensors and plain data only."""
    if not isinstance(source, Archive):
        with Archive(source) as archive:
            return read_pickle_archive(archive)
    if source.scripted:
        raise ArchiveError("it is TorchScript, not a torch.save file")
    return source.load()


def read_torchscript_weights(source: str | Path | Archive) -> dict[str, Tensor]:
    """``state_dict()`` of a TorchScript module file (a path, or an open ``Archive``):
    parameters and buffers by attribute path, read as data: no TorchScript code is loaded or
    run."""
    if not isinstance(source, Archive):
        with Archive(source) as archive:
            return read_torchscript_weights(archive)
    archive = source
    root = archive.load()
    if not isinstance(root, ScriptObject):
        raise ArchiveError("its data.pkl does not hold a TorchScript module")
    declared = archive.declared_tensors()
    out: dict[str, Tensor] = {}
    seen: set[int] = set()

    def walk(obj: ScriptObject, prefix: str) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        state = getattr(obj, "state", None)
        if not isinstance(state, dict):
            return
        params, buffers = declared.get(obj.qualname, (None, None))
        for name, value in state.items():
            if isinstance(value, ScriptObject):
                walk(value, f"{prefix}{name}.")
            elif isinstance(value, Tensor) and (params is None or name in params | buffers):
                out[f"{prefix}{name}"] = value

    walk(root, "")
    return out


def read_torch_save(path: str | Path) -> object:
    """What ``torch.load(path, weights_only=True)`` would give, for a zip or a legacy file,
    read as data (never through ``torch.load``)."""
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    return read_pickle_archive(path) if zipped else read_legacy_pickle(path)
