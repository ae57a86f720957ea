"""Pickles read as data: the opcode stream interpreted without importing or calling anything.

Format facts (CPython ``Lib/pickletools.py`` opcode table, ``Lib/pickle.py`` ``_Unpickler``):
- A pickle is a sequence of opcodes run by a stack machine; ``STOP`` ends it. Protocol 0/1 pickles (Python 2,
  e.g. SageMaker's py2 XGBoost container) use text opcodes; protocol 2+ start with ``PROTO n`` (``0x80 n``);
  protocol 4+ add ``FRAME`` and ``STACK_GLOBAL``/``MEMOIZE``; 5 adds out-of-band buffers.
- Code can only run through a *global* (``GLOBAL``/``INST``/``STACK_GLOBAL`` name a ``module`` + ``name`` the
  unpickler imports) that is then *called* (``REDUCE``, ``NEWOBJ``, ``NEWOBJ_EX``, ``INST``, ``OBJ``) or given
  state (``BUILD`` may call ``__setstate__``). ``PERSID``/``BINPERSID`` hand an id to ``persistent_load`` (used by
  ``torch.save`` for storages). ``EXT1/2/4`` name globals through the copyreg extension registry.
- joblib (``joblib/numpy_pickle.py``, ``NumpyArrayWrapper.write_array``) writes each numpy array's raw bytes
  *inside* the stream right after the wrapper's ``BUILD``: one padding-length byte, that many ``0xff`` bytes
  (wrappers with ``numpy_array_alignment_bytes``, joblib >= 1.2), then ``prod(shape) * itemsize`` bytes; object
  arrays are a nested pickle instead. joblib files may be compressed whole (zlib ``0x78``, gzip, bz2, xz).

Here the stream is interpreted with plain Python values; globals become :class:`Global`, calls become
:class:`Call` records, so a caller can read the *data* of a pickle (an XGBoost Booster's ``handle`` bytes, a torch
tensor's storage key and shape) and list every global it would import, without running any of it.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zlib
from typing import Any

from .._value import FrozenValue as _FrozenValue
from .._value import Value as _Value
from ..errors import CorruptArtifact

MAX_OPS = 24_000_000  # a pickle of this many opcodes holds ~1-2 GiB of Python values while being read
MAX_DECOMPRESSED = 4 << 30
MAX_NESTING = 16  # joblib object arrays hold nested pickles; deeper nesting than this is refused

_set = object.__setattr__


class Global(_FrozenValue):
    """A global the unpickler would import: ``module.name``."""

    __slots__ = _fields = ("module", "name")
    module: str
    name: str

    def __init__(self, module: str, name: str):
        _set(self, "module", module)
        _set(self, "name", name)

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


class Call(_Value):
    """An object built by calling ``func(*args)`` (REDUCE/NEWOBJ/INST/OBJ); ``state`` is what BUILD set.

    ``items``: APPEND(S) onto a non-list object; ``setitems``: SETITEM(S) onto a non-dict object; ``op``: the
    opcode that made it: REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ."""

    __slots__ = _fields = ("func", "args", "kwargs", "state", "items", "setitems", "op")

    def __init__(self, func: Any, args: tuple = (), kwargs: dict | None = None, state: Any = None,
                 items: list | None = None, setitems: dict | None = None, op: str = "REDUCE"):
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.state = state
        self.items = [] if items is None else items
        self.setitems = {} if setitems is None else setitems
        self.op = op

    @property
    def global_name(self) -> str | None:
        return str(self.func) if isinstance(self.func, Global) else None


class PersistentRef(_FrozenValue):
    """A ``persistent_load`` id (torch storages)."""

    __slots__ = _fields = ("pid",)
    pid: Any

    def __init__(self, pid: Any):
        _set(self, "pid", pid)


class RawArray(_FrozenValue):
    """A joblib ``NumpyArrayWrapper`` payload: dtype string, shape, order, and where its bytes lie in the stream."""

    __slots__ = _fields = ("dtype", "shape", "order", "offset", "nbytes")
    dtype: str
    shape: tuple
    order: str
    offset: int
    nbytes: int

    def __init__(self, dtype: str, shape: tuple, order: str, offset: int, nbytes: int):
        for k, v in zip(self._fields, (dtype, shape, order, offset, nbytes)):
            _set(self, k, v)


class PickleData(_Value):
    """What :func:`read_pickle` found.

    ``globals``: every distinct global, in first-seen order; ``calls``: how many call opcodes (REDUCE, NEWOBJ...)
    ran; ``called``: globals called directly (REDUCE, INST, OBJ: ``f(*args)``), not only via ``cls.__new__``;
    ``nested_pickles``: joblib object arrays and other embedded pickle streams; ``extensions``: EXT1/2/4 codes
    (globals we cannot name); ``end``: the offset just past STOP; ``ops``: opcodes interpreted, nested pickles
    included; ``oddities``: calls no real pickle makes (huge allocations)."""

    __slots__ = _fields = ("value", "protocol", "globals", "calls", "called", "nested_pickles", "persistent_ids",
                           "extensions", "end", "joblib_arrays", "ops", "oddities")

    def __init__(self, value: Any, protocol: int, globals: list[Global], calls: int, called: list[Global],
                 nested_pickles: int, persistent_ids: int, extensions: list[int], end: int,
                 joblib_arrays: list[RawArray], ops: int = 0, oddities: list[str] | None = None):
        self.value = value
        self.protocol = protocol
        self.globals = globals
        self.calls = calls
        self.called = called
        self.nested_pickles = nested_pickles
        self.persistent_ids = persistent_ids
        self.extensions = extensions
        self.end = end
        self.joblib_arrays = joblib_arrays
        self.ops = ops
        self.oddities = [] if oddities is None else oddities


class _Mark:
    pass


_MARK = _Mark()


def decompress_joblib(data: bytes, limit: int = MAX_DECOMPRESSED, max_ratio: float = 250.0) -> bytes:
    """Undo joblib's whole-file compression if present; otherwise return ``data``.

    joblib ``compressor.py`` recognises a compressed file by its first bytes: zlib ``0x78``, gzip ``1f 8b``,
    bz2 ``BZ``, xz ``fd 37 7a 58 5a``, raw LZMA (``.lzma``) ``5d 00``, lz4 frame ``04 22 4d 18``; files from
    joblib < 0.9.3 start with ``ZF`` and keep their arrays in side files, which this reader refuses. At most
    ``limit`` bytes, nor more than ``max_ratio`` times the compressed size (at least 64 MiB), are produced: a small
    file that expands past that is refused, not inflated.
    """
    head = data[:6]
    if max_ratio and max_ratio > 0:
        limit = int(min(limit, max(len(data) * max_ratio, 64 << 20)))
    try:
        if head[:1] == b"\x78" and len(data) > 2 and (data[0] * 256 + data[1]) % 31 == 0:
            out = zlib.decompressobj().decompress(data, limit)
        elif head[:2] == b"\x1f\x8b":
            out = zlib.decompressobj(31).decompress(data, limit)
        elif head[:3] == b"BZh":
            out = bz2.BZ2Decompressor().decompress(data, max_length=limit)
        elif head[:5] == b"\xfd7zXZ":
            out = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data, max_length=limit)
        elif head[:2] == b"\x5d\x00" and len(data) > 13:
            out = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, max_length=limit)
        elif head[:4] == b"\x04\x22\x4d\x18":
            out = _lz4(data, limit)
        elif head[:2] == b"ZF":
            raise CorruptArtifact("the pickle was written by joblib < 0.9.3, whose arrays live in side files; "
                                  "this format is not read")
        else:
            return data
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as e:
        raise CorruptArtifact(f"the compressed pickle cannot be decompressed ({str(e)[:200]})") from None
    except MemoryError:
        raise CorruptArtifact(
            f"the compressed pickle ({len(data)} bytes) expands beyond the memory available") from None
    if len(out) >= limit:
        raise CorruptArtifact(f"the compressed pickle ({len(data)} bytes) expands beyond {limit} bytes")
    return out


def _lz4(data: bytes, limit: int) -> bytes:
    """An lz4 frame, inflated to at most ``limit + 1`` bytes (the lz4 package; joblib needs it for these too)."""
    try:
        import lz4.frame
    except ImportError:
        raise CorruptArtifact("the pickle is lz4-compressed and the lz4 package is not installed "
                              "(pip install lz4); it cannot be read, so it is refused") from None
    d = lz4.frame.LZ4FrameDecompressor()
    out = bytearray(d.decompress(data, max_length=limit + 1))
    while not d.eof and not d.needs_input and len(out) <= limit:
        out += d.decompress(b"", max_length=limit + 1 - len(out))
    return bytes(out)


def _dtype_info(dt: Any) -> tuple[str, int | None, bool] | None:
    """``(dtype string, itemsize, has_objects)`` of a pickled ``numpy.dtype(...)`` call, e.g. ``('<f8', 8, False)``.

    numpy pickles a dtype as ``numpy.dtype(base, align, copy)`` and sets its state with BUILD: ``(version,
    byteorder, subarray, names, fields, elsize, alignment, flags)`` (``numpy/core/src/multiarray/descriptor.c``,
    ``arraydescr_reduce``). Structured dtypes are ``V<n>`` with the size in ``elsize`` and their fields in
    ``fields``; ``flags & 1`` (``NPY_ITEM_HASOBJECT``) says whether any field holds Python objects, which joblib
    then writes as a nested pickle instead of raw bytes.
    """
    if not (isinstance(dt, Call) and isinstance(dt.func, Global) and dt.func.name == "dtype" and dt.args):
        return None
    base = dt.args[0]
    if not isinstance(base, str):
        return None
    state = dt.state if isinstance(dt.state, tuple) else ()
    order = state[1] if len(state) > 1 and isinstance(state[1], str) and state[1] in "<>|=" else "|"
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    has_objects = base.startswith("O") or bool(flags & 1)
    fields = state[4] if len(state) > 4 else None
    if isinstance(fields, dict):
        has_objects = has_objects or any(isinstance(v, tuple) and v and (_dtype_info(v[0]) or ("", 0, False))[2]
                                         for v in fields.values())
    if state[2:3] and state[2] is not None:
        return order + base, None, has_objects  # subarray dtypes are not sized here: refused by the caller
    size = _itemsize(base)
    if base.startswith("V") and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        size = state[5]
    return order + base, size, has_objects


def _itemsize(dtype: str) -> int | None:
    code = dtype.lstrip("<>|=")
    digits = "".join(c for c in code if c.isdigit())
    kind = code[:1]
    if kind == "b" and not digits:
        return 1
    if kind in "biufcSVMm?" and digits:
        return int(digits)
    if kind == "U" and digits:
        return int(digits) * 4
    if code == "?":
        return 1
    return None


def read_pickle(data: bytes, start: int = 0, max_ops: int = MAX_OPS, _depth: int = 0) -> PickleData:
    """Interpret one pickle stream starting at ``start`` as data; raise CorruptArtifact if it is malformed.

    Work is linear in the input: every opcode does a bounded amount of work (no value is ever copied, compared
    deeply or turned into text), at most ``max_ops`` opcodes run in all, nested pickles included. The common
    binary opcodes are decoded inline (their layouts are in ``pickletools``' opcode table); the rest, mostly the
    text opcodes of protocols 0 and 1, are decoded with ``pickletools``' own argument readers.
    """
    if _depth > MAX_NESTING:
        raise CorruptArtifact(f"the pickle nests more than {MAX_NESTING} embedded pickles")
    data = bytes(data) if not isinstance(data, bytes) else data
    end = len(data)
    called: dict[Global, None] = {}
    oddities: list[str] = []
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    seen: dict[Global, None] = {}
    calls = nested = persistent = 0
    extensions: list[int] = []
    arrays: list[RawArray] = []
    protocol = 0
    ops = 0
    pos = start
    unpack_from = struct.unpack_from
    append = stack.append

    def need(n: int) -> None:
        if pos + n > end:
            raise EOFError("truncated")

    try:
        while True:
            if pos >= end:
                break
            op = data[pos]
            pos += 1
            ops += 1
            if op == 0x71 or op == 0x94:  # BINPUT, MEMOIZE
                if op == 0x71:
                    need(1)
                    memo[data[pos]] = stack[-1]
                    pos += 1
                else:
                    memo[len(memo)] = stack[-1]
            elif op == 0x4B:  # BININT1
                need(1)
                append(data[pos])
                pos += 1
            elif op == 0x8C or op == 0x58:  # SHORT_BINUNICODE, BINUNICODE
                if op == 0x8C:
                    need(1)
                    n = data[pos]
                    pos += 1
                else:
                    need(4)
                    n = unpack_from("<I", data, pos)[0]
                    pos += 4
                need(n)
                append(data[pos:pos + n].decode("utf-8", "surrogatepass"))
                pos += n
            elif op == 0x68 or op == 0x6A:  # BINGET, LONG_BINGET
                if op == 0x68:
                    need(1)
                    append(memo[data[pos]])
                    pos += 1
                else:
                    need(4)
                    append(memo[unpack_from("<I", data, pos)[0]])
                    pos += 4
            elif op == 0x28:  # MARK
                metastack.append(stack)
                stack = []
                append = stack.append
            elif op == 0x65 or op == 0x75 or op == 0x74 or op == 0x6C or op == 0x64 or op == 0x91 or op == 0x90 \
                    or op == 0x31 or op == 0x69 or op == 0x6F:
                # APPENDS, SETITEMS, TUPLE, LIST, DICT, FROZENSET, ADDITEMS, POP_MARK, INST, OBJ: pop to the mark
                items = stack
                stack = metastack.pop()
                append = stack.append
                if op == 0x65:
                    _append(stack[-1], items)
                elif op == 0x75:
                    _setitems(stack[-1], items)
                elif op == 0x74:
                    append(tuple(items))
                elif op == 0x6C:
                    append(items)
                elif op == 0x64:
                    append({_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)})
                elif op == 0x91:
                    append(frozenset(_key(x) for x in items))
                elif op == 0x90:
                    if isinstance(stack[-1], set):
                        stack[-1].update(_key(x) for x in items)
                elif op == 0x69:  # INST module\nname\n
                    (module, attr), pos = _two_lines(data, pos)
                    g = Global(module, attr)
                    seen[g] = None
                    called[g] = None
                    calls += 1
                    append(Call(g, tuple(items), op="INST"))
                elif op == 0x6F:
                    if not items:
                        raise IndexError("OBJ without a class")
                    calls += 1
                    if isinstance(items[0], Global):
                        called[items[0]] = None
                    append(Call(items[0], tuple(items[1:]), op="OBJ"))
            elif op == 0x85 or op == 0x86 or op == 0x87:  # TUPLE1-3
                n = op - 0x84
                if len(stack) < n:
                    raise IndexError("tuple from an empty stack")
                top = tuple(stack[-n:])
                del stack[-n:]
                append(top)
            elif op == 0x4D:  # BININT2
                need(2)
                append(data[pos] | data[pos + 1] << 8)
                pos += 2
            elif op == 0x4A:  # BININT
                need(4)
                append(unpack_from("<i", data, pos)[0])
                pos += 4
            elif op == 0x47:  # BINFLOAT
                need(8)
                append(unpack_from(">d", data, pos)[0])
                pos += 8
            elif op == 0x5D:
                append([])
            elif op == 0x7D:
                append({})
            elif op == 0x29:
                append(())
            elif op == 0x4E:
                append(None)
            elif op == 0x88 or op == 0x89:
                append(op == 0x88)
            # SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
            elif op == 0x43 or op == 0x42 or op == 0x8E or op == 0x96:
                if op == 0x43:
                    need(1)
                    n = data[pos]
                    pos += 1
                elif op == 0x42:
                    need(4)
                    n = unpack_from("<I", data, pos)[0]
                    pos += 4
                else:
                    need(8)
                    n = unpack_from("<Q", data, pos)[0]
                    pos += 8
                need(n)
                chunk = data[pos:pos + n]
                append(bytearray(chunk) if op == 0x96 else chunk)
                pos += n
            elif op == 0x61 or op == 0x73:  # APPEND, SETITEM
                if op == 0x61:
                    v = stack.pop()
                    _append(stack[-1], [v])
                else:
                    v = stack.pop()
                    k = stack.pop()
                    _setitems(stack[-1], [k, v])
            elif op == 0x52 or op == 0x81 or op == 0x92:  # REDUCE, NEWOBJ, NEWOBJ_EX
                kwargs = stack.pop() if op == 0x92 else None
                args = stack.pop()
                func = stack.pop()
                calls += 1
                args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
                if op == 0x52:
                    if isinstance(func, Global):
                        called[func] = None
                        _note_indirect_calls(func, args, called, oddities)
                    append(Call(func, args))
                else:
                    append(Call(func, args, kwargs if isinstance(kwargs, dict) else None,
                                op="NEWOBJ" if op == 0x81 else "NEWOBJ_EX"))
            elif op == 0x62:  # BUILD
                state = stack.pop()
                obj = stack[-1]
                if isinstance(obj, Call):
                    obj.state = state
                    if obj.global_name in JOBLIB_WRAPPER_NAMES:
                        skipped, pos = _skip_joblib_array(obj, data, pos, arrays)
                        if skipped == "nested":
                            nested += 1
                            inner = read_pickle(data, pos, max_ops - ops, _depth + 1)
                            seen.update((g2, None) for g2 in inner.globals)
                            called.update((g2, None) for g2 in inner.called)
                            oddities += inner.oddities
                            ops += inner.ops
                            calls += inner.calls
                            pos = inner.end
                            stack[-1] = inner.value
                        else:
                            stack[-1] = skipped
                elif isinstance(obj, dict) and isinstance(state, dict):
                    obj.update(state)
            elif op == 0x93:  # STACK_GLOBAL
                attr = stack.pop()
                module = stack.pop()
                if not isinstance(module, str) or not isinstance(attr, str):
                    raise CorruptArtifact("the pickle's STACK_GLOBAL operands are not strings")
                g = Global(module, attr)
                seen[g] = None
                append(g)
            elif op == 0x63:  # GLOBAL module\nname\n
                (module, attr), pos = _two_lines(data, pos)
                g = Global(module, attr)
                seen[g] = None
                append(g)
            elif op == 0x95:  # FRAME: an 8-byte length; frames carry no meaning of their own here
                need(8)
                pos += 8
            elif op == 0x80:  # PROTO
                need(1)
                protocol = data[pos]
                pos += 1
            elif op == 0x2E:  # STOP
                value = stack.pop()
                return PickleData(value, protocol, list(seen), calls, list(called), nested, persistent,
                                  extensions, pos, arrays, ops, oddities)
            elif op == 0x30:  # POP
                if stack:
                    stack.pop()
                else:
                    stack = metastack.pop()
                    append = stack.append
            elif op == 0x32:  # DUP
                append(stack[-1])
            elif op == 0x8F:
                append(set())
            elif op == 0x51:  # BINPERSID
                persistent += 1
                append(PersistentRef(stack.pop()))
            elif op == 0x72:  # LONG_BINPUT
                need(4)
                memo[unpack_from("<I", data, pos)[0]] = stack[-1]
                pos += 4
            elif op == 0x97:  # NEXT_BUFFER
                append(PersistentRef("out-of-band-buffer"))
            elif op == 0x98:  # READONLY_BUFFER
                pass
            else:  # the rest: text opcodes of protocols 0/1, longs, extensions, PERSID
                spec = (_OPCODES or _opcodes()).get(op)
                if spec is None:
                    raise CorruptArtifact(f"the pickle has an unknown opcode 0x{op:02x} at byte {pos - 1}")
                arg, pos = _read_arg(spec, data, pos)
                name = spec.name
                if name in ("INT", "LONG", "FLOAT", "LONG1", "LONG4"):
                    append(arg)
                elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE"):
                    append(arg)  # Python 2 str: pickletools decodes it as latin-1
                elif name in ("GET", "PUT"):
                    if name == "GET":
                        append(memo[int(arg)])
                    else:
                        memo[int(arg)] = stack[-1]
                elif name in ("EXT1", "EXT2", "EXT4"):
                    extensions.append(int(arg))
                    append(Global("copyreg-extension", str(arg)))
                elif name == "PERSID":
                    persistent += 1
                    append(PersistentRef(arg))
                else:
                    raise CorruptArtifact(f"the pickle uses an opcode this reader does not know ({name})")
            if ops > max_ops:
                raise CorruptArtifact(f"the pickle has more than {max_ops} opcodes")
    except CorruptArtifact:
        raise
    except (ValueError, IndexError, KeyError, TypeError, EOFError, RecursionError, MemoryError, OverflowError,
            UnicodeDecodeError, struct.error) as e:
        detail = str(e)[:200] or type(e).__name__
        raise CorruptArtifact(f"the pickle stream is malformed or truncated ({detail})") from None
    raise CorruptArtifact("the pickle stream ends without a STOP opcode (truncated)")


JOBLIB_WRAPPER_NAMES = (
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
)
_OPCODES: dict = {}  # opcode byte -> pickletools.OpcodeInfo, filled on the first text opcode (_opcodes)


def _opcodes() -> dict:
    """pickletools' opcode table by opcode byte; pickletools (and pickle) are imported on first use only, since
    most pickles are binary (protocol 2+) and are decoded inline."""
    if not _OPCODES:
        import pickletools

        _OPCODES.update({ord(o.code): o for o in pickletools.opcodes})
    return _OPCODES
MAX_LINE = 1 << 16  # a text opcode's argument line; module and class names are short


def _line_end(data: bytes, pos: int) -> int:
    nl = data.find(b"\n", pos, pos + MAX_LINE)
    if nl < 0:
        raise EOFError("a text opcode's line has no end")
    return nl


def _two_lines(data: bytes, pos: int) -> tuple[tuple[str, str], int]:
    """GLOBAL / INST arguments: ``module\\nname\\n`` (pickletools ``read_stringnl_noescape_pair``)."""
    a = _line_end(data, pos)
    b = _line_end(data, a + 1)
    return (data[pos:a].decode("utf-8"), data[a + 1:b].decode("utf-8")), b + 1


def _read_arg(spec, data: bytes, pos: int) -> tuple[Any, int]:
    """One opcode argument read with pickletools' own reader, over at most the bytes it can need."""
    import pickletools  # already loaded by _opcodes, which gave ``spec``

    if spec.arg is None:
        return None, pos
    n = spec.arg.n
    if n >= 0:
        window = n
    elif n == pickletools.UP_TO_NEWLINE:
        window = _line_end(data, pos) + 1 - pos
    elif n == pickletools.TAKEN_FROM_ARGUMENT1:
        window = 1 + (data[pos] if pos < len(data) else 0)
    elif n == pickletools.TAKEN_FROM_ARGUMENT4:
        window = 4 + (int.from_bytes(data[pos:pos + 4], "little") if pos + 4 <= len(data) else 0)
    else:
        window = len(data) - pos
    f = io.BytesIO(data[pos:pos + window])
    arg = spec.arg.reader(f)
    return arg, pos + f.tell()


class _Unhashable:
    """Stands for an unhashable dict key or set member (a list, a dict, a call record). Never built from the
    value's text: a value shared through the memo can describe an exponentially large tree in a few bytes."""

    __slots__ = ("type_name",)

    def __init__(self, value: Any):
        self.type_name = type(value).__name__

    def __repr__(self) -> str:
        return f"<unhashable {self.type_name}>"


# Callables that call one of their arguments: ``copyreg._reconstructor(cls, base, state)`` runs
# ``base.__init__(obj, state)`` (CPython ``Lib/copyreg.py``); numpy's ``__randomstate_ctor`` and ``__generator_ctor``
# call their ``bit_generator_ctor`` argument (``numpy/random/_pickle.py``). The argument counts as called.
_CALLS_ARGUMENT = {("copyreg", "_reconstructor"): 1, ("copy_reg", "_reconstructor"): 1,
                   ("numpy.random._pickle", "__randomstate_ctor"): 1, ("numpy.random._pickle", "__generator_ctor"): 1}
_ALLOCATORS = {("builtins", "bytearray"), ("builtins", "bytes"), ("__builtin__", "bytearray"), ("__builtin__", "bytes"),
               ("builtins", "str"), ("__builtin__", "str")}
MAX_ALLOCATION = 1 << 28


def _note_indirect_calls(func: Global, args: tuple, called: dict, oddities: list[str]) -> None:
    key = (func.module, func.name)
    i = _CALLS_ARGUMENT.get(key)
    if i is not None and len(args) > i and isinstance(args[i], Global) and str(args[i]) not in (
            "builtins.object", "__builtin__.object"):
        called[args[i]] = None
    if key in _ALLOCATORS and any(isinstance(a, int) and not isinstance(a, bool) and a > MAX_ALLOCATION
                                  for a in args):
        oddities.append(f"{func}(...) asks for more than {MAX_ALLOCATION} bytes")


def _key(v: Any) -> Any:
    if isinstance(v, (str, bytes, int, float, bool, type(None), Global)):
        return v
    if isinstance(v, tuple) and all(isinstance(x, (str, bytes, int, float, bool, type(None))) for x in v):
        return v
    return _Unhashable(v)


def _append(target: Any, items: list) -> None:
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, Call):
        target.items.extend(items)


def _setitems(target: Any, items: list) -> None:
    pairs = {_key(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}
    if isinstance(target, dict):
        target.update(pairs)
    elif isinstance(target, Call):
        target.setitems.update(pairs)


def _skip_joblib_array(wrapper: Call, data: bytes, pos: int, arrays: list[RawArray]) -> tuple[Any, int]:
    """Step over the raw bytes joblib wrote after a NumpyArrayWrapper; return a RawArray or "nested".

    joblib >= 1.2 ``NumpyArrayWrapper.read_array``: an array whose dtype holds objects (``dtype.hasobject``:
    an object array *or* a structured dtype with an object field) is a nested pickle; otherwise, when the
    wrapper's ``numpy_array_alignment_bytes`` is set and not None, one byte gives a padding length and that many
    bytes follow, then ``prod(shape) * itemsize`` raw bytes. Anything this cannot size is refused: a reader that
    lost its place in the stream could skip over a hidden pickle.
    """
    state = wrapper.state
    if not isinstance(state, dict):
        raise CorruptArtifact("a joblib array wrapper has no state")
    info = _dtype_info(state.get("dtype"))
    if info is None:
        raise CorruptArtifact("a joblib array wrapper has an unreadable dtype")
    dtype, itemsize, has_objects = info
    if has_objects:
        return "nested", pos
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                               for x in shape):
        raise CorruptArtifact("a joblib array wrapper has an unreadable shape")
    if itemsize is None or itemsize <= 0:
        raise CorruptArtifact(f"a joblib array has a dtype this reader does not size ({dtype})")
    count = 1
    for d in shape:
        count *= d
    if state.get("numpy_array_alignment_bytes") is not None:
        if pos >= len(data):
            raise CorruptArtifact("a joblib array is truncated")
        pos += 1 + data[pos]
    nbytes = count * itemsize
    if pos + nbytes > len(data):
        raise CorruptArtifact("a joblib array is truncated")
    arr = RawArray(dtype, shape, str(state.get("order", "C")), pos, nbytes)
    arrays.append(arr)
    return arr, pos + nbytes


def looks_like_pickle(head: bytes) -> bool:
    """Cheap content test: protocol 2+ header, or a protocol 0/1 stream opening with a global or a mark."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head[:1] == b"c" and b"\n" in head[:200]:
        line = head[1:head.index(b"\n")]
        return line.replace(b"_", b"").replace(b".", b"").isalnum()
    return head[:2] in (b"(d", b"(l", b"(i", b"(t", b"}q", b"]q", b"(c")
