"""Content sniffing: what kind of file a member is, from its first bytes (the name is only a tie-breaker).

Magic numbers used (each from the format's own definition):
- gzip ``1f 8b`` (RFC 1952), bzip2 ``BZh``, xz ``fd 37 7a 58 5a 00``, zip local header ``PK 03 04`` (APPNOTE 4.3.7),
  tar ``ustar`` at offset 257 (POSIX ustar).
- MXNet NDArray list: little-endian uint64 ``0x112`` (``kMXAPINDArrayListMagic``, apache/mxnet src/c_api/c_api.cc).
- numpy ``.npy``: ``\\x93NUMPY`` (numpy/lib/format.py). HDF5: ``\\x89HDF\\r\\n\\x1a\\n``.
  Parquet: ``PAR1`` at both ends.
- safetensors: little-endian uint64 header length N, then a JSON object (``{"``) of N bytes (safetensors docs).
- FAISS: a four-character code such as ``IxF2`` (IndexFlatL2) or ``IxFI`` (IndexFlatIP) (faiss/impl/index_read.cpp).
- fastText: int32 ``793712314`` (``FASTTEXT_FILEFORMAT_MAGIC_INT32``, fastText src/fasttext.h).
- R serialization: ``X\\n`` (XDR), ``A\\n`` (ASCII), ``B\\n`` (native) (R src/main/serialize.c), often gzip-wrapped.
- pickles: ``PROTO`` ``80 02..05``, or protocol 0/1 opcodes (see formats/pickle_data.py); torch's legacy
  ``torch.save`` format is a protocol-2 pickle of the magic long ``0x1950a86a20f9469cfc6c`` (torch/serialization.py).
- PyTorch zip checkpoints: a zip whose first entry is ``<archive>/data.pkl`` (torch/csrc/jit/serialization).
- XGBoost model files: see formats/xgboost.py ``detect_era``.
"""

from __future__ import annotations

import json
import struct
import zlib

from .formats.pickle_data import looks_like_pickle

# The format modules whose checks go beyond a magic number are imported only for a file that shows the magic
# (CatBoost ``CBM1``, ONNX ``08``, LightGBM ``tree``, PMML's root element name; their own is_* functions check the
# rest): listing an archive of other files imports none of them.

MiB = 1 << 20
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."

# How many bytes of a member of each kind inspection keeps (the rest is streamed past).
_KEEP = {
    "json": 32 * MiB, "text": 4 * MiB, "python": 4 * MiB, "properties": MiB, "yaml": 4 * MiB, "csv": MiB,
    "pickle": 256 * MiB, "joblib-compressed": 256 * MiB, "torch-legacy": 256 * MiB, "mxnet-params": 256 * MiB,
    "zip": 256 * MiB, "torch-zip": 512 * MiB, "gzip": 64 * MiB, "rds": 64 * MiB, "xgboost": 512 * MiB,
    "fasttext": 256 * MiB, "faiss": 256 * MiB, "npy": 16 * MiB, "protobuf": 256 * MiB, "parquet": 64 * MiB,
    "keras-zip": 64 * MiB, "hdf5": 256 * MiB, "binary": 0, "tar": 0,
    "onnx": 512 * MiB, "lightgbm": 512 * MiB, "catboost": 512 * MiB, "pmml": 256 * MiB, "mlflow-model": MiB,
    "pbtxt": 4 * MiB,
}


def sniff(name: str, head: bytes, size: int) -> str:
    """The kind of a file from its head bytes; ``name`` only separates look-alike text formats."""
    if not head:
        return "empty"
    if head[:2] == b"\x1f\x8b":
        return _sniff_gzip(head)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _sniff_zip(head)
    if head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x04\x22\x4d\x18" \
            or (head[:2] == b"\x5d\x00" and name.endswith((".lzma", ".pkl", ".joblib", ".sav"))):
        return "joblib-compressed" if _compressed_pickle(head) else "compressed"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:8] == struct.pack("<Q", 0x112):
        return "mxnet-params"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if any(head[o:o + 8] == b"\x89HDF\r\n\x1a\n" for o in (0, 512, 1024, 2048, 4096, 8192, 16384, 32768)):
        return "hdf5"  # the HDF5 signature sits at 0 or, after a user block, at 512, 1024, 2048... (HDF5 spec, II.A)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:4] == b"\xba\x16\x4f\x2f":
        return "fasttext"
    if len(head) >= 4 and head[:2] in (b"Ix", b"Iw", b"IH", b"IB") and head[:4].isalnum():
        return "faiss"
    if head[:2] in (b"X\n", b"A\n", b"B\n") and head[2:6] in (b"\x00\x00\x00\x02", b"\x00\x00\x00\x03", b"2\n", b"3\n"):
        return "rds"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if _is_safetensors(head, size):
        return "safetensors"
    if head[:4] == b"CBM1" and _is_catboost(head):
        return "catboost"
    if head[:1] == b"\x08" and _is_onnx(head):
        return "onnx"
    era = _xgboost_era(head)
    if era and era not in ("json",):
        return "xgboost"
    if looks_like_pickle(head):
        return "pickle"
    if head[:1] == b"\x78" and len(head) > 2 and (head[0] * 256 + head[1]) % 31 == 0 and _zlib_pickle(head):
        return "joblib-compressed"
    text = _as_text(head)
    if text is not None:
        base = name.rsplit("/", 1)[-1]
        if head[:4] == b"tree" and _is_lightgbm(head):
            return "lightgbm"
        if b"PMML" in head[:4096] and _is_pmml(head):
            return "pmml"
        if base == "MLmodel":
            return "mlflow-model"
        if base == "config.pbtxt":
            return "pbtxt"
        stripped = text.lstrip()
        if _json_like(stripped):
            if era == "json":
                return "xgboost"
            return "json"
        if name.endswith(".py") or _looks_python(stripped):
            return "python"
        if name.endswith(".properties") or _looks_properties(stripped):
            return "properties"
        if name.endswith((".yaml", ".yml")):
            return "yaml"
        if name.endswith(".csv"):
            return "csv"
        return "text"
    if _looks_protobuf(head):
        return "protobuf"
    return "binary"


def keep_bytes(kind: str, head: bytes, size: int) -> int:
    """How many leading bytes of a member of this kind inspection needs (capped per kind)."""
    if kind == "safetensors":
        n = struct.unpack("<Q", head[:8])[0]
        return min(size, 8 + n)
    cap = _KEEP.get(kind, 0)
    if cap == 0:
        return min(len(head), 4096)
    return min(size, cap) if size else cap


def _sniff_gzip(head: bytes) -> str:
    try:
        inner = zlib.decompressobj(31).decompress(head, 1024)
    except zlib.error:
        return "gzip"
    if inner[:2] in (b"X\n", b"A\n", b"B\n"):
        return "rds"
    if len(inner) >= 262 and inner[257:262] == b"ustar":
        return "tar"
    if looks_like_pickle(inner):
        return "joblib-compressed"
    return "gzip"


def _sniff_zip(head: bytes) -> str:
    if head[:4] == b"PK\x03\x04" and len(head) >= 30:
        n = struct.unpack("<H", head[26:28])[0]
        first = head[30:30 + n]
        if first.endswith(b"/data.pkl") or first == b"data.pkl" or first.endswith(b"/version") and b"/" in first:
            return "torch-zip"
        if first in (b"metadata.json", b"config.json", b"model.weights.h5"):
            return "keras-zip"
    return "zip"


def zip_model_kind(names: list[str]) -> str | None:
    """'torch-zip' or 'keras-zip' when a zip's entry names say it is one model file, not an archive of files.

    ``torch.save`` / ``torch.jit.save`` write every entry under one top folder with ``data.pkl`` (eager) or
    ``constants.pkl`` + ``code/`` (TorchScript) and a ``version`` record (torch/csrc/jit/serialization); Keras 3
    ``.keras`` files hold ``config.json``, ``metadata.json`` and ``model.weights.h5`` (keras/src/saving/saving_lib.py).
    """
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        top = next(iter(tops))
        inner = {n[len(top) + 1:] for n in names}
        if "data.pkl" in inner or "constants.pkl" in inner or ("version" in inner and any(
                x.startswith("data/") for x in inner)):
            return "torch-zip"
    if {"config.json", "metadata.json"} <= set(names) and any(n.startswith("model.weights") for n in names):
        return "keras-zip"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= min(size - 8 if size else n, 100 * MiB) and head[8:10] in (b'{"', b"{ ", b"{\n")


# Byte strings one of which every XGBoost model file shows early (see _may_be_xgboost).
_XGBOOST_BOOSTERS = (b"gbtree", b"gblinear", b"dart")


def _may_be_xgboost(head: bytes) -> bool:
    """Whether ``formats.xgboost.detect_era`` could recognise ``head``: the necessary conditions of each of its
    cases, so that the XGBoost reader (a large module, with numpy) is imported only for files that may be models.

    From ``detect_era`` (formats/xgboost.py): a pickle counts only when ``xgboost.core`` is in its first 256 bytes;
    a memory snapshot starts ``CONFIG-offset:`` or is a JSON / UBJSON object whose first key, within 64 bytes, is
    ``Config`` or ``Model``; a JSON / UBJSON model document starts ``{`` and holds ``learner`` in its first 64 KiB;
    a legacy binary model starts ``binf`` or with a 136-byte learner header, an objective name of at most 256
    bytes and the booster name (``gbtree``, ``gblinear`` or ``dart``, dmlc-core string encoding: a uint64 length,
    then the bytes), so that name ends within the first 512 bytes.
    """
    if b"xgboost.core" in head[:256] or head[:4] == b"binf" or head[:14] == b"CONFIG-offset:":
        return True
    if head[:1] == b"{" and (b"Config" in head[:64] or b"Model" in head[:64] or b"learner" in head[:65536]):
        return True
    start = head[:512]
    return any(b in start for b in _XGBOOST_BOOSTERS)


def _is_catboost(head: bytes) -> bool:
    from .formats.catboost import is_catboost

    return is_catboost(head)


def _is_onnx(head: bytes) -> bool:
    from .formats.onnx import is_onnx

    return is_onnx(head)


def _is_lightgbm(head: bytes) -> bool:
    from .formats.lightgbm import is_lightgbm

    return is_lightgbm(head)


def _is_pmml(head: bytes) -> bool:
    from .formats.pmml import is_pmml

    return is_pmml(head)


def _xgboost_era(head: bytes) -> str | None:
    if not _may_be_xgboost(head):
        return None
    from .formats.xgboost import detect_era  # pure Python, no xgboost import

    try:
        return detect_era(head)
    except Exception:  # a sniff is a guess; the reader decides later
        return None


def _zlib_pickle(head: bytes) -> bool:
    try:
        return looks_like_pickle(zlib.decompressobj().decompress(head, 64))
    except zlib.error:
        return False


def _compressed_pickle(head: bytes) -> bool:
    """Whether a bz2 / xz / raw-LZMA / lz4 stream (joblib's whole-file compressors) starts with a pickle.

    An lz4 frame cannot be peeked without the lz4 package; it is then taken for a pickle, so that the audit
    reports it as unreadable instead of passing over it.
    """
    import bz2
    import lzma

    try:
        if head[:3] == b"BZh":
            inner = bz2.BZ2Decompressor().decompress(head, max_length=64)
        elif head[:4] == b"\x04\x22\x4d\x18":
            try:
                import lz4.frame
            except ImportError:
                return True
            inner = lz4.frame.LZ4FrameDecompressor().decompress(head, max_length=64)
        else:
            fmt = lzma.FORMAT_XZ if head[:1] == b"\xfd" else lzma.FORMAT_ALONE
            inner = lzma.LZMADecompressor(fmt).decompress(head, max_length=64)
    except (OSError, EOFError, ValueError, lzma.LZMAError, RuntimeError):
        return False
    return looks_like_pickle(inner)


_CONTROL_BYTES = bytes(c for c in range(32) if chr(c) not in "\t\r\n\f")


def _as_text(head: bytes) -> str | None:
    sample = head[:8192]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # only a cut multi-byte character at the end is forgiven
            return None
        text = sample[: e.start].decode("utf-8")
    if not text:
        return None
    # control bytes other than tab, CR, LF, FF mean binary (UTF-8 never encodes other characters with them)
    return text if len(sample.translate(None, _CONTROL_BYTES)) == len(sample) else None


def _json_like(text: str) -> bool:
    """Whether text starts the way a JSON document (or JSON Lines) does: ``{`` then a key or ``}``, ``[`` then a
    value or ``]`` (RFC 8259 grammar). A BERT ``vocab.txt`` starts ``[PAD]``: a bracket, then no JSON value."""
    if text[:1] not in ("{", "["):
        return False
    after = text[1:].lstrip()[:1]
    if text[0] == "{":
        return after in ('"', "}", "")
    return after == "" or after in '"{[]-0123456789tfn'


def _looks_python(text: str) -> bool:
    first = [ln for ln in text.splitlines()[:40] if ln.strip() and not ln.lstrip().startswith("#")]
    return any(ln.startswith(("import ", "from ", "def ", "class ")) for ln in first)


def _looks_properties(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return bool(lines) and all("=" in ln for ln in lines) and not any(ln.startswith(("{", "<")) for ln in lines)


def _looks_protobuf(head: bytes) -> bool:
    """A weak guess: starts with a valid field key of wire type 0 or 2 for field number 1-15."""
    if len(head) < 2:
        return False
    key = head[0]
    return key >> 3 in range(1, 16) and key & 7 in (0, 2)


def parse_json(data: bytes, label: str):
    """Parse JSON bytes or raise CorruptArtifact naming the file and the position."""
    from .errors import CorruptArtifact

    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptArtifact(f"{label} is not valid JSON ({str(e)[:200]})") from None
    except RecursionError:
        raise CorruptArtifact(f"{label} nests JSON too deeply to be read") from None


def check_json_or_lines(data: bytes, label: str) -> str:
    """'json' or 'jsonl' (one JSON value per line, as MLeap tree files and Spark part files are); else
    CorruptArtifact."""
    from .errors import CorruptArtifact

    try:
        json.loads(data)
        return "json"
    except RecursionError:
        raise CorruptArtifact(f"{label} nests JSON too deeply to be read") from None
    except (UnicodeDecodeError, ValueError) as e:
        first_error = e
    lines = [ln for ln in data.splitlines() if ln.strip()]
    try:
        for ln in lines:
            json.loads(ln)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptArtifact(f"{label} is not valid JSON ({first_error})") from None
    return "jsonl"
