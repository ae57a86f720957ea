"""R serialized objects (``saveRDS`` files) summarized without R.

Facts from R's ``src/main/serialize.c`` (r-devel/r-svn; ``R_Serialize``, ``R_Unserialize``, ``ReadItem``,
``ReadBC``, ``PackFlags``):

- the file may be compressed whole: gzip (``saveRDS`` default), bzip2 or xz;
- the serialization header: ``X\\n`` (XDR, big-endian, the default), ``B\\n`` (native binary) or ``A\\n``
  (text); then ``int version`` (2, 3 or 4), ``int writer R version``, ``int minimal reader R version`` (packed
  ``major * 65536 + minor * 256 + patch``); version 3/4 add ``int nelen`` and the native encoding name;
- each item starts with ``int flags``: type = ``flags & 0xFF``, is-object bit ``1 << 8``, has-attributes bit
  ``1 << 9``, has-tag bit ``1 << 10``; vectors then store their length (``-1`` + two ints for long vectors) and
  elements; pairlists/closures/promises store attributes, tag, CAR, then the CDR as the next item; other items
  store their attributes *after* their content, so the class of a list (``"lm"``) is only reachable by walking
  the whole object. References (``REFSXP``, ``index << 8 | 255``) point back to symbols, environments and other
  reference objects in read order.

The walk below reads items as data (symbol names, short strings, attribute lists) and skips everything else by
length; it gives up quietly on a depth, size or item budget, or on text-format streams, leaving ``class`` unknown.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from typing import Any

from ..errors import CorruptArtifact

_MAX_DECOMPRESSED = 256 << 20
_MAX_DEPTH = 150
_MAX_ITEMS = 2_000_000
_KEEP_STRINGS = 64

_TYPES = {
    0: "NULL",
    1: "symbol",
    2: "pairlist",
    3: "closure",
    4: "environment",
    5: "promise",
    6: "language",
    7: "special",
    8: "builtin",
    9: "char",
    10: "logical",
    13: "integer",
    14: "double",
    15: "complex",
    16: "character",
    17: "...",
    19: "list",
    20: "expression",
    21: "bytecode",
    22: "externalptr",
    23: "weakref",
    24: "raw",
    25: "S4",
}
# serialize.c "Administrative SXP values"
_REFSXP, _NILVALUE, _GLOBALENV, _UNBOUNDVALUE, _MISSINGARG, _BASENAMESPACE = 255, 254, 253, 252, 251, 250
_NAMESPACESXP, _PACKAGESXP, _PERSISTSXP = 249, 248, 247  # 246/245 (class/generic refs) R itself cannot read
_BCREPDEF, _BCREPREF, _EMPTYENV, _BASEENV, _ATTRLANGSXP, _ATTRLISTSXP, _ALTREP = 244, 243, 242, 241, 240, 239, 238
_SPECIAL_NAMES = {
    _NILVALUE: "NULL",
    _GLOBALENV: "environment",
    _UNBOUNDVALUE: "unbound",
    _MISSINGARG: "missing",
    _BASENAMESPACE: "environment",
    _EMPTYENV: "environment",
    _BASEENV: "environment",
}
_PAIRLISTS = {2, 3, 5, 6, 17}  # LISTSXP, CLOSXP, PROMSXP, LANGSXP, DOTSXP
_ITEMSIZE = {10: 4, 13: 4, 14: 8, 15: 16, 24: 1}


class _GiveUp(Exception):
    """The walk stops (budget, unsupported construct); the header facts stay valid."""


class _Sym(str):
    """A symbol's print name."""


def _decompress(data: bytes) -> tuple[bytes, str]:
    try:
        if data[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            out = d.decompress(data, _MAX_DECOMPRESSED)
            return out, "gzip"
        if data[:3] == b"BZh":
            return bz2.BZ2Decompressor().decompress(data, _MAX_DECOMPRESSED), "bzip2"
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.LZMADecompressor().decompress(data, _MAX_DECOMPRESSED), "xz"
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
        raise CorruptArtifact(f"R data file: its compressed stream is damaged ({e})") from None
    return bytes(data), "none"


def _r_version(packed: int) -> str | None:
    if packed < 0:
        return None
    return f"{packed // 65536}.{packed // 256 % 256}.{packed % 256}"


class _Walker:
    def __init__(self, data: bytes, pos: int, big_endian: bool):
        self.data = data
        self.pos = pos
        self.e = ">" if big_endian else "<"
        self.refs: list = []
        self.items = 0

    def i32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise CorruptArtifact("R data file is truncated inside its object")
        v = struct.unpack_from(self.e + "i", self.data, self.pos)[0]
        self.pos += 4
        return v

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptArtifact("R data file is truncated inside its object")
        self.pos += n

    def length(self) -> int:
        n = self.i32()
        if n == -1:
            hi, lo = self.i32(), self.i32()
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        if n < 0:
            raise CorruptArtifact("R data file is corrupt: a vector has a negative length")
        return n

    def item(self, depth: int = 0):
        return self.read(self.i32(), depth)

    def read(self, flags: int, depth: int):
        """Read one item whose flags are given; return a symbol name, strings, an attribute dict or None."""
        self.items += 1
        if depth > _MAX_DEPTH or self.items > _MAX_ITEMS:
            raise _GiveUp
        t = flags & 0xFF
        has_attr = flags & (1 << 9)
        if t in _SPECIAL_NAMES:
            return None
        if t == _REFSXP:
            i = flags >> 8 or self.i32()
            if not 1 <= i <= len(self.refs):
                raise CorruptArtifact("R data file is corrupt: a reference points to no earlier object")
            return self.refs[i - 1]
        if t in (_PERSISTSXP, _PACKAGESXP, _NAMESPACESXP):
            self.strvec(depth)
            self.refs.append(None)
            return None
        if t == _ALTREP:
            self.item(depth + 1)
            self.item(depth + 1)
            self.item(depth + 1)
            return None
        if t == 1:  # SYMSXP: its print name follows as a CHARSXP
            slot = len(self.refs)
            self.refs.append(None)
            name = self.item(depth + 1)
            self.refs[slot] = _Sym(name if isinstance(name, str) else "")
            return self.refs[slot]
        if t == 4:  # ENVSXP: registered before its content
            self.i32()  # locked
            self.refs.append(None)
            for _ in range(4):  # enclosure, frame, hash table, attributes
                self.item(depth + 1)
            return None
        if t in _PAIRLISTS:
            return self.pairlist(flags, depth)
        value: str | list | None = None
        if t in (22, 23):  # EXTPTRSXP, WEAKREFSXP are reference objects
            self.refs.append(None)
            if t == 22:
                self.item(depth + 1)
                self.item(depth + 1)
        elif t in (7, 8):  # SPECIALSXP, BUILTINSXP: a short name
            self.skip(self.i32())
        elif t == 9:  # CHARSXP
            n = self.i32()
            if n < -1:
                raise CorruptArtifact("R data file is corrupt: a string has a negative length")
            if n >= 0:
                start = self.pos
                self.skip(n)
                value = self.data[start : self.pos].decode("utf-8", errors="replace")
        elif t in _ITEMSIZE:
            n = self.length()
            if n > (len(self.data) - self.pos) // _ITEMSIZE[t]:
                raise CorruptArtifact("R data file is truncated inside a vector")
            self.skip(n * _ITEMSIZE[t])
        elif t == 16:  # STRSXP
            n = self.length()
            if n > (len(self.data) - self.pos) // 4:
                raise CorruptArtifact("R data file is truncated inside a character vector")
            strings = [self.item(depth + 1) for _ in range(n)]
            value = strings[:_KEEP_STRINGS]
        elif t in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            if n > (len(self.data) - self.pos) // 4:
                raise CorruptArtifact("R data file is truncated inside a list")
            for _ in range(n):
                self.item(depth + 1)
        elif t == 21:  # BCODESXP
            self.i32()  # number of shared cells
            self.bytecode(depth + 1)
        elif t == 25:  # OBJSXP/S4SXP: only attributes
            pass
        else:
            raise _GiveUp
        if has_attr:
            attrs = self.item(depth + 1)
            if t != 9:
                return _Attributed(value, attrs if isinstance(attrs, dict) else {})
        return value

    def pairlist(self, flags: int, depth: int):
        out: dict = {}
        while (flags & 0xFF) in _PAIRLISTS:
            self.items += 1
            if self.items > _MAX_ITEMS:
                raise _GiveUp
            if flags & (1 << 9):
                self.item(depth + 1)
            tag = self.item(depth + 1) if flags & (1 << 10) else None
            car = self.item(depth + 1)
            if isinstance(tag, str):
                out[str(tag)] = car
            flags = self.i32()
        self.read(flags, depth)  # the final CDR, normally NULL
        return out

    def strvec(self, depth: int) -> None:
        if self.i32() != 0:
            raise _GiveUp
        for _ in range(self.length()):
            self.item(depth + 1)

    def bytecode(self, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _GiveUp
        self.item(depth + 1)  # code
        n = self.i32()
        if n < 0:
            raise CorruptArtifact("R data file is corrupt: bytecode with a negative constant count")
        for _ in range(n):
            t = self.i32()
            if t == 21:
                self.bytecode(depth + 1)
            elif t in (6, 2, _BCREPDEF, _BCREPREF, _ATTRLANGSXP, _ATTRLISTSXP):
                self.bclang(t, depth + 1)
            else:
                self.item(depth + 1)

    def bclang(self, t: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _GiveUp
        if t == _BCREPREF:
            self.i32()
            return
        if t in (_BCREPDEF, 6, 2, _ATTRLANGSXP, _ATTRLISTSXP):
            if t == _BCREPDEF:
                self.i32()
                t = self.i32()
            if t in (_ATTRLANGSXP, _ATTRLISTSXP):
                self.item(depth + 1)
            self.item(depth + 1)  # tag
            self.bclang(self.i32(), depth + 1)  # car
            self.bclang(self.i32(), depth + 1)  # cdr
            return
        self.item(depth + 1)


class _Attributed:
    def __init__(self, value, attrs: dict):
        self.value = value
        self.attrs = attrs


def _strings(v) -> list[str] | None:
    if isinstance(v, _Attributed):
        v = v.value
    if isinstance(v, list) and all(isinstance(s, str) or s is None for s in v):
        return [s for s in v if s is not None]
    return None


def summarize(data: bytes) -> dict:
    """Compression, serialization format and versions, and the top-level object's type, class and names."""
    raw, compression = _decompress(bytes(data))
    fmt = raw[:2]
    formats = {b"X\n": "xdr", b"B\n": "binary", b"A\n": "ascii"}
    if fmt not in formats:
        raise CorruptArtifact("not an R data file: no R serialization header (X/B/A) after any decompression")
    out: dict[str, Any] = {"format": "rds", "compression": compression, "serialization": formats[fmt]}
    if fmt == b"A\n":
        return out  # text streams would need a tokenizer; knowing the format is enough to report an R object
    w = _Walker(raw, 2, big_endian=fmt == b"X\n")
    version, writer, reader = w.i32(), w.i32(), w.i32()
    if version not in (2, 3, 4):
        raise CorruptArtifact(f"R data file has serialization version {version}; R writes 2, 3 or 4")
    out.update(version=version, r_version=_r_version(writer), min_reader_version=_r_version(reader))
    if version >= 3:
        n = w.i32()
        if not 0 <= n <= 64:
            raise CorruptArtifact("R data file is corrupt: the native encoding name has a bad length")
        w.skip(n)
        out["native_encoding"] = raw[w.pos - n : w.pos].decode("latin-1")
    flags = w.i32()
    t = flags & 0xFF
    out["type"] = _TYPES.get(t, _SPECIAL_NAMES.get(t, f"type {t}"))
    out["is_object"] = bool(flags & (1 << 8))
    out["class"] = None
    if compression != "none" and len(raw) >= _MAX_DECOMPRESSED:
        out["note"] = "the object is too large to walk for its class"
        return out
    try:
        value = w.read(flags, 0)
    except (_GiveUp, RecursionError):
        out["note"] = "the object is too complex to walk for its class"
        return out
    attrs = value.attrs if isinstance(value, _Attributed) else {}
    out["class"] = _strings(attrs.get("class"))
    names = _strings(attrs.get("names"))
    if names is not None:
        out["names"] = names
    return out
