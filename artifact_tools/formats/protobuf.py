"""A minimal, bounds-checked protobuf wire-format decoder driven by small declarative schemas.

Wire format facts (protobuf documentation, "Encoding", protocolbuffers/protobuf
``docs/design`` and ``src/google/protobuf/wire_format_lite.h``):

- A message is a sequence of fields; each field starts with a *tag* varint ``(number << 3) | wire_type``.
  Field number 0 is invalid; numbers are at most ``2**29 - 1``.
- Wire types: 0 VARINT (int32/int64/uint32/uint64/sint32/sint64/bool/enum), 1 I64 (fixed64, sfixed64,
  double; 8 bytes little-endian), 2 LEN (varint length then that many bytes: string, bytes, embedded
  message, packed repeated scalars), 3/4 SGROUP/EGROUP (deprecated groups), 5 I32 (fixed32, sfixed32,
  float; 4 bytes little-endian). 6 and 7 are invalid.
- A varint is at most 10 bytes, 7 bits per byte, least significant group first, high bit = "more".
  int32/int64 negative values are sign-extended to 64 bits (10 bytes); sint32/sint64 use zig-zag
  encoding, ``(n >> 1) ^ -(n & 1)``.
- Repeated scalar numeric fields may be *packed*: one LEN field holding the concatenated values.
  Parsers must accept both packed and unpacked forms.
- Map fields are repeated embedded messages with key = field 1 and value = field 2.
- Unknown fields are skipped. For a singular field seen more than once, the last value wins (this
  decoder also takes the last occurrence for singular embedded messages instead of merging them,
  which writers never rely on).

The project writes its own schemas (``Message``/``Field``) with only the fields it needs; everything
else is skipped without being copied. Every length is checked against the bytes actually present and
nesting is limited, so damaged input raises :class:`~artifact_tools.errors.CorruptArtifact`, never
``IndexError``/``RecursionError``/``MemoryError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator, NoReturn

from ..errors import CorruptArtifact

VARINT, I64, LEN, I32 = 0, 1, 2, 5

MAX_DEPTH = 64
"""Deepest nesting of embedded messages decoded (protobuf's own default recursion limit is 100)."""

_VARINT_KINDS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"}
_I64_KINDS = {"fixed64", "sfixed64", "double"}
_I32_KINDS = {"fixed32", "sfixed32", "float"}
_NUMERIC_KINDS = _VARINT_KINDS | _I64_KINDS | _I32_KINDS
_LEN_KINDS = {"string", "bytes", "length", "message", "map"}
_STRUCT = {"fixed64": "<Q", "sfixed64": "<q", "double": "<d", "fixed32": "<I", "sfixed32": "<i", "float": "<f"}


@dataclass(frozen=True)
class Field:
    """One field of a schema.

    ``kind`` is a protobuf scalar type name (``"int64"``, ``"string"``, ``"enum"``...), ``"message"``
    (with ``message``), ``"map"`` (``key`` kind and ``value``: a kind name or a :class:`Message`), or
    ``"length"``: a length-delimited field whose byte length alone is kept (to count or size big
    sub-messages without decoding them).
    """

    name: str
    kind: str
    repeated: bool = False
    message: Message | None = None
    key: str = "string"
    value: str | Message | None = None

    def __post_init__(self) -> None:
        if self.kind not in _NUMERIC_KINDS | _LEN_KINDS:
            raise ValueError(f"unknown protobuf field kind {self.kind!r}")
        if self.kind in ("message", "map") and self.message is None:
            raise ValueError(f"a {self.kind} field needs its message schema")


@dataclass(frozen=True)
class Message:
    """A message schema: field number -> :class:`Field`. Fields not listed are skipped."""

    name: str
    fields: dict[int, Field] = field(default_factory=dict)


def message(name: str, schema: Message, repeated: bool = False) -> Field:
    """An embedded-message field."""
    return Field(name, "message", repeated=repeated, message=schema)


def map_field(name: str, key: str, value: str | Message) -> Field:
    """A ``map<key, value>`` field, decoded to a dict (entries are messages: key = 1, value = 2)."""
    value_field = message("value", value) if isinstance(value, Message) else Field("value", value)
    entry = Message(f"{name} entry", {1: Field("key", key), 2: value_field})
    return Field(name, "map", repeated=True, message=entry, key=key, value=value)


def zigzag(n: int) -> int:
    """Decode a zig-zag encoded unsigned integer (sint32/sint64) to its signed value."""
    return (n >> 1) ^ -(n & 1)


def _varint(buf: memoryview, pos: int, end: int, what: str) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise CorruptArtifact(f"{what} is truncated inside a varint")
        b = buf[pos]
        pos += 1
        if shift == 63 and b > 1:
            raise CorruptArtifact(f"{what} holds a varint longer than 64 bits")
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def iter_fields(data: bytes | memoryview,
                what: str = "protobuf message") -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)`` for each top-level field of one message.

    ``value`` is an ``int`` for VARINT/I64/I32 (raw unsigned bits) and a ``memoryview`` slice for LEN.
    Groups and invalid wire types raise :class:`CorruptArtifact` (the formats read here never use
    groups), as does any length running past the end of ``data``.
    """
    buf = data if isinstance(data, memoryview) else memoryview(data)
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end, what)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number >= 1 << 29:
            raise CorruptArtifact(f"{what} holds an invalid field number {number}")
        if wire == VARINT:
            value, pos = _varint(buf, pos, end, what)
            yield number, wire, value
        elif wire == LEN:
            length, pos = _varint(buf, pos, end, what)
            if length > end - pos:
                raise CorruptArtifact(f"{what} is truncated: field {number} needs {length} bytes, {end - pos} remain")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if size > end - pos:
                raise CorruptArtifact(f"{what} is truncated inside fixed-width field {number}")
            yield number, wire, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise CorruptArtifact(f"{what} holds field {number} with unsupported wire type {wire}")


def decode(data: bytes | memoryview, schema: Message, what: str = "protobuf message",
           max_depth: int = MAX_DEPTH) -> dict:
    """Decode one message with ``schema`` into a dict of the fields present.

    Repeated fields become lists, maps become dicts, ``"length"`` fields their byte length; absent
    fields are absent (proto3 defaults are the caller's business). Raises :class:`CorruptArtifact`
    for truncated or malformed bytes, a wire type that contradicts the schema, invalid UTF-8 in a
    ``string`` field, or nesting deeper than ``max_depth``.
    """
    return _decode(data if isinstance(data, memoryview) else memoryview(data), schema, what, max_depth)


def _decode(buf: memoryview, schema: Message, what: str, depth: int) -> dict:
    if depth <= 0:
        raise CorruptArtifact(f"{what} nests embedded messages too deeply")
    out: dict = {}
    for number, wire, raw in iter_fields(buf, what):
        spec = schema.fields.get(number)
        if spec is None:
            continue
        if spec.kind == "map":
            if wire != LEN or not isinstance(raw, memoryview):  # iter_fields: LEN values, and only they, are views
                _wrong_wire(what, schema, spec, wire)
            assert spec.message is not None  # Field.__post_init__: a map field has its entry schema
            entry = _decode(raw, spec.message, what, depth - 1)
            key = entry.get("key", _default(spec.key))
            out.setdefault(spec.name, {})[key] = entry.get("value", _default(spec.value))
        elif spec.repeated and wire == LEN and isinstance(raw, memoryview) and spec.kind in _NUMERIC_KINDS:
            out.setdefault(spec.name, []).extend(_packed(raw, spec, what))
        else:
            value = _value(raw, wire, spec, schema, what, depth)
            if spec.repeated:
                out.setdefault(spec.name, []).append(value)
            else:
                out[spec.name] = value
    return out


def _default(kind: str | Message | None):
    if isinstance(kind, Message):
        return {}
    if kind == "string":
        return ""
    if kind == "bytes":
        return b""
    if kind in ("float", "double"):
        return 0.0
    return False if kind == "bool" else 0


def _wrong_wire(what: str, schema: Message, spec: Field, wire: int) -> NoReturn:
    raise CorruptArtifact(f"{what} has field {schema.name}.{spec.name} with wire type {wire}, which its type forbids")


def _value(raw, wire: int, spec: Field, schema: Message, what: str, depth: int):
    kind = spec.kind
    if kind in _VARINT_KINDS:
        if wire != VARINT:
            _wrong_wire(what, schema, spec, wire)
        return _scalar_from_varint(raw, kind)
    if kind in _I64_KINDS or kind in _I32_KINDS:
        if wire != (I64 if kind in _I64_KINDS else I32):
            _wrong_wire(what, schema, spec, wire)
        size = 8 if kind in _I64_KINDS else 4
        return struct.unpack(_STRUCT[kind], raw.to_bytes(size, "little"))[0]
    if wire != LEN:
        _wrong_wire(what, schema, spec, wire)
    if kind == "message":
        assert spec.message is not None  # Field.__post_init__: a message field has its schema
        return _decode(raw, spec.message, what, depth - 1)
    if kind == "length":
        return len(raw)
    if kind == "bytes":
        return bytes(raw)
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise CorruptArtifact(f"{what} has invalid UTF-8 in string field {schema.name}.{spec.name}") from None


def _scalar_from_varint(n: int, kind: str):
    if kind in ("int64", "enum", "int32"):
        n &= (1 << 64) - 1
        if kind == "int64":
            return n - (1 << 64) if n >> 63 else n
        n &= 0xFFFFFFFF
        return n - (1 << 32) if n >> 31 else n
    if kind == "uint32":
        return n & 0xFFFFFFFF
    if kind in ("sint32", "sint64"):
        return zigzag(n)
    if kind == "bool":
        return n != 0
    return n  # uint64


def _packed(raw: memoryview, spec: Field, what: str) -> list:
    kind = spec.kind
    if kind in _VARINT_KINDS:
        out, pos, end = [], 0, len(raw)
        while pos < end:
            n, pos = _varint(raw, pos, end, what)
            out.append(_scalar_from_varint(n, kind))
        return out
    size = 8 if kind in _I64_KINDS else 4
    if len(raw) % size:
        raise CorruptArtifact(f"{what} has a packed {kind} field {spec.name} whose length is not a multiple of {size}")
    return [v[0] for v in struct.iter_unpack(_STRUCT[kind], raw)]
