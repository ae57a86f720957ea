"""``torch.save`` files (``.pth``/``.pt``) read as data: tensor names, shapes, dtypes and storages, no unpickling.

Facts from pytorch/pytorch ``torch/serialization.py`` (``_save``, ``_legacy_save``, ``_load``, ``_legacy_load``),
``torch/_utils.py`` (``_rebuild_tensor_v2``, ``_rebuild_parameter``) and ``torch/storage.py``
(``_dtype_to_storage_type_map``):

- zip format (the default since PyTorch 1.6): every record lives under one top folder ``<archive>/``:
  ``data.pkl`` (the object, pickled), ``data/<key>`` (one raw little- or big-endian storage per key),
  ``version`` (or ``.data/version``), ``byteorder`` (``little``/``big``, since 1.12), ``.format_version``,
  ``.storage_alignment``; TorchScript archives add ``code/`` and ``constants.pkl``;
- legacy format (before 1.6, still written with ``_use_new_zipfile_serialization=False``): five things in a row
  -- a pickled magic number ``0x1950A86A20F9469CFC6C``, a pickled protocol version ``1001``, a pickled ``sys_info``
  dict (``little_endian``, ``type_sizes``), the object pickle, a pickled list of storage keys -- then for each
  key, in that order, ``int64 numel`` and ``numel * element_size`` raw bytes;
- in both, storages are *persistent ids* (``BINPERSID``) ``("storage", torch.<Type>Storage, key, location,
  numel[, view_metadata])`` and tensors are ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
  stride, requires_grad, backward_hooks[, metadata])`` (``_rebuild_parameter(tensor, requires_grad, hooks)``
  wraps Parameters); a state dict is a ``collections.OrderedDict`` built by ``REDUCE`` + ``SETITEMS``.

The pickles are interpreted as data by formats/pickle_data.py (globals become names, calls become records,
nothing is imported or called); this module turns torch's records into storages and tensors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptArtifact
from ..filetree import ZIP_ERRORS, FileTree, ZipTree
from .pickle_data import Call, Global, PersistentRef, read_pickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# pickle protocol 2 of int LEGACY_MAGIC: PROTO 2, LONG1 with 10 bytes little-endian, STOP.
_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little") + b"."
_MAX_OPS = 5_000_000

STORAGE_DTYPES = {
    "DoubleStorage": ("float64", 8),
    "FloatStorage": ("float32", 4),
    "HalfStorage": ("float16", 2),
    "BFloat16Storage": ("bfloat16", 2),
    "LongStorage": ("int64", 8),
    "IntStorage": ("int32", 4),
    "ShortStorage": ("int16", 2),
    "CharStorage": ("int8", 1),
    "ByteStorage": ("uint8", 1),
    "BoolStorage": ("bool", 1),
    "ComplexDoubleStorage": ("complex128", 16),
    "ComplexFloatStorage": ("complex64", 8),
    "QInt8Storage": ("qint8", 1),
    "QInt32Storage": ("qint32", 4),
    "QUInt8Storage": ("quint8", 1),
    "QUInt4x2Storage": ("quint4x2", 1),
    "QUInt2x4Storage": ("quint2x4", 1),
    "UntypedStorage": ("uint8", 1),
}
_TENSOR_REBUILDERS = {"_rebuild_tensor", "_rebuild_tensor_v2"}
_PARAM_REBUILDERS = {"_rebuild_parameter", "_rebuild_parameter_with_state"}


@dataclass(frozen=True)
class _Storage:
    type_name: str
    key: str
    location: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    shape: tuple[int, ...]
    storage: _Storage
    offset: int


@dataclass
class _Pickle:
    value: Any
    end: int  # offset just after STOP
    globals: set[str]
    storages: dict[str, _Storage]  # every persistent storage id reachable from the value


def _run_pickle(data: bytes, start: int = 0) -> _Pickle:
    """Interpret one pickle as data (formats/pickle_data.py), then turn torch's records into storages and tensors."""
    pk = read_pickle(data, start, max_ops=_MAX_OPS)
    if pk.extensions:
        raise CorruptArtifact("torch pickle uses the copyreg extension registry, which torch never writes")
    storages: dict[str, _Storage] = {}
    value = _Converter(storages).convert(pk.value)
    return _Pickle(value, pk.end, {str(g) for g in pk.globals}, storages)


class _Converter:
    """Rewrites a pickle_data value tree: storage ids -> _Storage, tensor rebuild calls -> _Tensor,
    OrderedDict calls -> dicts. Shared (memoised) objects are converted once; cycles are cut."""

    def __init__(self, storages: dict[str, _Storage]):
        self.storages = storages
        self.done: dict[int, Any] = {}

    def convert(self, obj: Any, depth: int = 0) -> Any:
        if depth > 200:
            raise CorruptArtifact("torch pickle is nested too deeply to inspect")
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if isinstance(obj, PersistentRef):
            out = _persistent(self.convert(obj.pid, depth + 1))
            if isinstance(out, _Storage):
                self.storages.setdefault(out.key, out)
        elif isinstance(obj, Call):
            self.done[key] = None  # a reference back to an object being converted stays unresolved
            args = tuple(self.convert(a, depth + 1) for a in obj.args)
            out = _reduce(obj.func, args)
            if isinstance(out, dict):  # OrderedDict(): its items arrived by SETITEMS
                out.update((k, self.convert(v, depth + 1)) for k, v in obj.setitems.items())
            elif isinstance(out, Call):
                out.state = self.convert(obj.state, depth + 1)
        elif isinstance(obj, dict):
            out = {}
            self.done[key] = out
            out.update((k, self.convert(v, depth + 1)) for k, v in obj.items())
        elif isinstance(obj, list):
            out = []
            self.done[key] = out
            out.extend(self.convert(v, depth + 1) for v in obj)
        elif isinstance(obj, tuple):
            out = tuple(self.convert(v, depth + 1) for v in obj)
        else:
            return obj
        self.done[key] = out
        return out


def _persistent(pid: Any) -> Any:
    if (
        isinstance(pid, tuple)
        and len(pid) >= 5
        and pid[0] == "storage"
        and isinstance(pid[1], Global)
        and isinstance(pid[4], int)
    ):
        return _Storage(pid[1].name, str(pid[2]), str(pid[3]), pid[4])
    return Call(Global("persistent_load", "id"), (pid,))


def _reduce(func: Any, args: tuple) -> Any:
    if isinstance(func, Global):
        if func.module == "collections" and func.name == "OrderedDict":
            return {}
        if func.module == "torch._utils" and func.name in _TENSOR_REBUILDERS and len(args) >= 3:
            storage, offset, size = args[:3]
            if (
                isinstance(storage, _Storage)
                and isinstance(offset, int)
                and isinstance(size, tuple)
                and all(isinstance(d, int) and d >= 0 for d in size)
            ):
                dtype = STORAGE_DTYPES.get(storage.type_name, (storage.type_name, 1))[0]
                return _Tensor(dtype, size, storage, offset)
        if func.module == "torch._utils" and func.name in _PARAM_REBUILDERS and args and isinstance(args[0], _Tensor):
            return args[0]
        if func.module == "torch" and func.name == "Size" and args and isinstance(args[0], tuple):
            return args[0]
    return Call(func, args)


def _walk(obj: Any, prefix: str, out: dict, depth: int = 0) -> None:
    if depth > 50:
        return
    if isinstance(obj, _Tensor):
        out[prefix or "<root>"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{prefix}.{i}" if prefix else str(i), out, depth + 1)
    elif isinstance(obj, Call):
        _walk(obj.args, prefix, out, depth + 1)
        _walk(obj.state, prefix, out, depth + 1)


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return "dict"
    if isinstance(obj, _Tensor):
        return "tensor"
    if isinstance(obj, Call):
        return str(obj.func)
    return type(obj).__name__


def _summary(p: _Pickle) -> dict:
    tensors: dict[str, _Tensor] = {}
    _walk(p.value, "", tensors)
    return {
        "object": _describe(p.value),
        "tensors": [
            {
                "name": name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "storage": t.storage.key,
                "storage_offset": t.offset,
                "device": t.storage.location,
            }
            for name, t in tensors.items()
        ],
        "storages": {
            k: {"type": s.type_name, "numel": s.numel, "location": s.location} for k, s in p.storages.items()
        },
        "globals": sorted(p.globals),
    }


def is_legacy(data: bytes) -> bool:
    """True when ``data`` starts with the pickled magic number of the pre-1.6 ``torch.save`` format."""
    return bytes(data[: len(_LEGACY_PREFIX)]) == _LEGACY_PREFIX


def _archive_prefix(tree: FileTree) -> str | None:
    for name in tree.names():
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl":
            return parts[0] + "/"
    return None


def is_torch_zip(tree_or_bytes: FileTree | bytes) -> bool:
    """True for a zip (bytes or tree) with ``<archive>/data.pkl`` beside ``<archive>/version`` or ``byteorder``."""
    if isinstance(tree_or_bytes, (bytes, bytearray, memoryview)):
        if bytes(tree_or_bytes[:4]) != b"PK\x03\x04":
            return False
        try:
            tree: FileTree = _open_zip(tree_or_bytes)
        except (CorruptArtifact, *ZIP_ERRORS):
            return False
    else:
        tree = tree_or_bytes
    prefix = _archive_prefix(tree)
    if prefix is None:
        return False
    names = set(tree.names())
    return any(prefix + r in names for r in ("version", ".data/version", "byteorder"))


def _torchscript_1_0(tree: FileTree) -> dict | None:
    """TorchScript as torch 1.0-1.2 wrote it (``torch/csrc/jit/export.cpp`` of those releases): ``<archive>/model.json``
    (the ``ModelDef`` protobuf as JSON: ``producerVersion``, ``mainModule``, ``tensors`` with ``dims``, ``dataType``
    and ``data.key``), ``<archive>/code/*.py``, ``<archive>/tensors/<n>`` raw storages; no ``data.pkl``. torch 1.3
    replaced it with the pickle-based format, and current torch cannot load it."""
    names = tree.names()
    model_json = next((n for n in names if n.count("/") == 1 and n.endswith("/model.json")), None)
    if model_json is None:
        return None
    prefix = model_json[: -len("model.json")]
    from ..sniff import parse_json

    doc = parse_json(tree.read(model_json), model_json)
    if not isinstance(doc, dict):
        raise CorruptArtifact(f"{model_json} is not a TorchScript model definition")
    tensors = []
    for t in doc.get("tensors") or []:
        if isinstance(t, dict):
            ref = t.get("data")
            tensors.append({"dtype": t.get("dataType"),
                            "shape": [int(d) for d in t.get("dims", []) if str(d).isdigit()],
                            "storage": ref.get("key") if isinstance(ref, dict) else None})
    main = doc.get("mainModule")
    if not isinstance(main, dict):
        main = {}
    return {"format": "torchscript-1.0", "archive": prefix[:-1], "torchscript": True,
            "producer_version": doc.get("producerVersion"), "main_module": main.get("name"),
            "code_files": sorted(n[len(prefix):] for n in names if n.startswith(prefix + "code/")),
            "tensor_count": len(tensors), "tensors": tensors[:200],
            "note": "TorchScript of torch 1.0-1.2 (model.json + tensors/): current torch cannot load this format"}


def _summarize_zip(tree: FileTree) -> dict:
    prefix = _archive_prefix(tree)
    if prefix is None:
        old = _torchscript_1_0(tree)
        if old is not None:
            return old
        raise CorruptArtifact("torch zip archive has no <archive>/data.pkl record")
    names = set(tree.names())
    pickled = _run_pickle(tree.read(prefix + "data.pkl"))
    out: dict[str, Any] = {"format": "torch-zip", "archive": prefix[:-1]}
    for record, key in (("version", "version"), (".data/version", "version"), ("byteorder", "byteorder")):
        if prefix + record in names:
            out[key] = tree.read(prefix + record).decode("ascii", errors="replace").strip()
    out.setdefault("byteorder", "little")
    out["torchscript"] = prefix + "constants.pkl" in names or any(n.startswith(prefix + "code/") for n in names)
    out.update(_summary(pickled))
    missing = [k for k in out["storages"] if prefix + "data/" + k not in names]
    for k, s in out["storages"].items():
        record = prefix + "data/" + k
        s["nbytes"] = tree.size(record) if record in names else None
    out["missing_storages"] = missing
    return out


def _summarize_legacy(data: bytes) -> dict:
    magic = _run_pickle(data)
    protocol = _run_pickle(data, magic.end)
    if magic.value != LEGACY_MAGIC or protocol.value != LEGACY_PROTOCOL:
        raise CorruptArtifact(
            f"legacy torch file has magic {magic.value!r} and protocol {protocol.value!r}, not torch's"
        )
    sys_info = _run_pickle(data, protocol.end)
    pickled = _run_pickle(data, sys_info.end)
    listed = _run_pickle(data, pickled.end)
    keys, pos = listed.value, listed.end
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CorruptArtifact("legacy torch file is corrupt: its storage key list is not a list of strings")
    out = {"format": "torch-legacy", "protocol_version": protocol.value}
    if isinstance(sys_info.value, dict):
        out["little_endian"] = sys_info.value.get("little_endian")
    out.update(_summary(pickled))
    order = "<" if out.get("little_endian", True) is not False else ">"
    declared = out["storages"]
    for key in keys:
        if key not in declared:
            raise CorruptArtifact(f"legacy torch file is corrupt: storage {key} is listed but never used")
        if pos + 8 > len(data):
            raise CorruptArtifact(f"legacy torch file is truncated before storage {key}")
        (numel,) = struct.unpack_from(order + "q", data, pos)
        itemsize = STORAGE_DTYPES.get(declared[key]["type"], ("", 1))[1]
        if numel < 0 or pos + 8 + numel * itemsize > len(data):
            raise CorruptArtifact(f"legacy torch file is truncated inside storage {key}")
        declared[key]["nbytes"] = numel * itemsize
        declared[key]["offset"] = pos + 8
        pos += 8 + numel * itemsize
    out["missing_storages"] = [k for k in declared if k not in keys]
    return out


def summarize(data: bytes | FileTree) -> dict:
    """Format, version, byte order, tensors (name, dtype, shape, storage key) and storages of a torch.save file."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if is_legacy(data):
            return _summarize_legacy(bytes(data))
        if bytes(data[:4]) != b"PK\x03\x04":
            raise CorruptArtifact("not a torch.save file: neither a zip archive nor the legacy magic number")
    try:
        return _summarize_zip(_open_zip(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)
    except ZIP_ERRORS as e:
        raise CorruptArtifact(f"torch archive is damaged ({type(e).__name__}: {e})") from None


def _open_zip(data: bytes) -> ZipTree:
    return ZipTree(bytes(data), label="torch archive")
