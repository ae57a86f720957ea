"""MXNet artifacts read natively: the NDArray-list ``.params`` file and the symbol JSON graph.

NDArray list (``mx.nd.save``, Module/Gluon checkpoints, SageMaker built-ins), all little-endian, as written by
``NDArray::Save(dmlc::Stream*, data, names)`` in apache/mxnet ``src/ndarray/ndarray.cc``:

- ``uint64 kMXAPINDArrayListMagic = 0x112``, ``uint64 reserved = 0``;
- the arrays as a dmlc vector: ``uint64 count``, then each ``NDArray::Save``;
- the names as a dmlc vector of strings: ``uint64 count`` (0 for an unnamed list, else equal to the array
  count), each ``uint64 length`` + bytes. Module/Gluon ``export`` names are prefixed ``arg:`` or ``aux:``.

One NDArray (``NDArray::Save`` / ``NDArray::Load`` / ``LegacyLoad``):

- ``uint32 magic``: ``0xF993FAC9`` (V2, storage type), ``0xF993FACA`` (V3, numpy shape semantics),
  ``0xF993FAC8`` (V1, int64 shape, no storage type); any other value is the ``ndim`` of a legacy array whose
  dims follow as ``uint32``;
- V2/V3: ``int32 stype`` (``NDArrayStorageType`` in ``include/mxnet/ndarray.h``: 0 default, 1 row_sparse,
  2 csr); sparse arrays then write their *storage* shape (when it is empty, the loader derives it from the aux
  shapes: row count of the row indices, or the length of the csr indices);
- the shape (``Tuple::Save`` in ``include/mxnet/tuple.h``): ``int32 ndim`` then ``ndim`` x ``int64``. An
  empty placeholder array stops here (ndim 0 outside numpy semantics, ndim -1 or an unknown dim in V3);
- the context (``Context::Save`` in ``include/mxnet/base.h``): ``int32 dev_type`` (1 cpu, 2 gpu,
  3 cpu_pinned, 5 cpu_shared), ``int32 dev_id``;
- ``int32 type_flag``: mshadow ``TypeFlag`` (``3rdparty/mshadow/mshadow/base.h``): 0 float32, 1 float64,
  2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool, 8 int16, 9 uint16, 10 uint32, 11 uint64, 12 bfloat16;
- sparse only: for each aux array (row_sparse: 1 = row indices; csr: 2 = indptr, indices) ``int32 type_flag``
  and its shape;
- the raw data, C order (storage-shape elements for sparse arrays), then each aux array's raw data.

Symbol JSON (``mx.sym.Symbol.save`` / ``tojson``): ``nodes`` (each ``op``, ``name``, ``attrs`` -- ``attr`` or
``param`` in files written before MXNet 0.9 -- and ``inputs`` as ``[node, output, version]``), ``arg_nodes``
(the variables, ``op == "null"``), ``heads`` (the outputs) and ``attrs.mxnet_version`` (``["int", 10301]`` for
1.3.1).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..errors import CorruptArtifact, NotLoadable

if TYPE_CHECKING:  # numpy is imported where arrays are read: summaries need none of it
    import numpy as np

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
_MAX_NDIM = 32  # mshadow/MXNet never go near this; anything above is corruption
_MAX_DIM = 1 << 40  # no real array has this many elements, even ignoring zero dims; more is corruption
_MAX_DENSE_BYTES = 4 << 30  # sparse arrays are densified on load only up to this size

# mshadow TypeFlag -> (name, itemsize); bfloat16 has no numpy dtype and is widened to float32 on load.
_TYPE_FLAGS = {
    0: ("float32", 4),
    1: ("float64", 8),
    2: ("float16", 2),
    3: ("uint8", 1),
    4: ("int32", 4),
    5: ("int8", 1),
    6: ("int64", 8),
    7: ("bool", 1),
    8: ("int16", 2),
    9: ("uint16", 2),
    10: ("uint32", 4),
    11: ("uint64", 8),
    12: ("bfloat16", 2),
}
_STORAGE = {0: "default", 1: "row_sparse", 2: "csr"}
_NUM_AUX = {"default": 0, "row_sparse": 1, "csr": 2}
_DEVICES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
_FORMATS = {V1_MAGIC: "v1", V2_MAGIC: "v2", V3_MAGIC: "v3"}

# Ops whose second input is a label, not a parameter (the loss "Output" layers of MXNet's symbol API).
_LABEL_OPS = {
    "SoftmaxOutput",
    "LinearRegressionOutput",
    "LogisticRegressionOutput",
    "MAERegressionOutput",
    "SVMOutput",
}
# Attributes MXNet puts on variables created for parameters (Gluon ``Parameter.var()``, ``mx.sym.Variable``).
_PARAM_ATTRS = {"__shape__", "__dtype__", "__lr_mult__", "__wd_mult__", "__init__"}


@dataclass(frozen=True)
class AuxInfo:
    """One auxiliary array of a sparse NDArray (row indices, csr indptr/indices)."""

    dtype: str
    shape: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class ParamInfo:
    """One array of an NDArray list, located without copying its data.

    ``name`` is the stored name (``arg:fc0_weight``), ``None`` in an unnamed list; ``shape`` and ``dtype`` are
    ``None`` for an empty placeholder array. ``offset`` and ``nbytes`` span the array's raw bytes in the file. For
    sparse arrays ``shape`` is the dense shape, the values (``storage_shape`` elements) come first and ``aux``
    locates the index arrays that follow them.
    """

    name: str | None
    dtype: str | None
    shape: tuple[int, ...] | None
    offset: int
    nbytes: int
    storage: str = "default"
    format: str = "v2"
    context: str = "cpu(0)"
    storage_shape: tuple[int, ...] | None = None
    aux: tuple[AuxInfo, ...] = ()

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape) if self.shape is not None else None,
            "storage": self.storage,
            "offset": self.offset,
            "nbytes": self.nbytes,
        }
        if self.storage != "default":
            out["storage_shape"] = list(self.storage_shape or ())
        return out


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.remaining():
            raise CorruptArtifact(
                f"MXNet NDArray file is truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"only {self.remaining()} remain"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def values(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def unpack(self, fmt: str, what: str) -> Any:
        values = self.values(fmt, what)
        return values[0] if len(values) == 1 else values


def is_params(head: bytes) -> bool:
    """True when ``head`` (the first 16+ bytes of a file) starts an MXNet NDArray list."""
    return len(head) >= 16 and struct.unpack_from("<QQ", head) == (LIST_MAGIC, 0)


def _shape(r: _Reader, what: str) -> tuple[int, ...] | None:
    ndim = r.unpack("i", f"{what} ndim")
    if ndim == -1:
        return None
    if not 0 <= ndim <= _MAX_NDIM:
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} has {ndim} dimensions")
    return _checked(r.values(f"{ndim}q", what), what)


def _checked(dims: tuple[int, ...], what: str) -> tuple[int, ...]:
    if any(d < -1 or d > _MAX_DIM for d in dims) or _count(max(d, 1) for d in dims) > _MAX_DIM:
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} has an impossible shape {dims}")
    return dims


def _count(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _dtype(r: _Reader, what: str) -> tuple[str, int]:
    flag = r.unpack("i", f"{what} type flag")
    if flag not in _TYPE_FLAGS:
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} has unknown type flag {flag}")
    return _TYPE_FLAGS[flag]


def _read_array(r: _Reader, index: int) -> ParamInfo:
    what = f"array {index}"
    magic = r.unpack("I", f"{what} magic")
    fmt = _FORMATS.get(magic, "legacy")
    storage = "default"
    storage_shape = None
    if fmt in ("v2", "v3"):
        stype = r.unpack("i", f"{what} storage type")
        if stype not in _STORAGE:
            raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} has unknown storage type {stype}")
        storage = _STORAGE[stype]
        if storage != "default":
            storage_shape = _shape(r, f"{what} storage shape")
    shape: tuple[int, ...] | None
    if fmt == "legacy":
        if magic > _MAX_NDIM:
            raise CorruptArtifact(
                f"MXNet NDArray file is corrupt: {what} starts with 0x{magic:08x}, not an NDArray magic number"
            )
        shape = _checked(r.values(f"{magic}I", f"{what} shape"), f"{what} shape")
    else:
        shape = _shape(r, f"{what} shape")
    # An empty placeholder NDArray: nothing follows the shape.
    if shape is None or (fmt != "v3" and len(shape) == 0) or any(d < 0 for d in shape):
        return ParamInfo(None, None, None, r.pos, 0, storage, fmt)
    dev_type, dev_id = r.unpack("ii", f"{what} context")
    context = f"{_DEVICES.get(dev_type, f'device{dev_type}')}({dev_id})"
    dtype, itemsize = _dtype(r, what)
    aux_layout = []
    for i in range(_NUM_AUX[storage]):
        aux_dtype, aux_size = _dtype(r, f"{what} aux {i}")
        aux_shape = _shape(r, f"{what} aux {i} shape")
        if aux_shape is None or len(aux_shape) != 1 or aux_shape[0] < 0:
            raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} aux {i} has an unknown shape")
        aux_layout.append((aux_dtype, aux_size, aux_shape))
    stored_shape = storage_shape if storage != "default" else shape
    if storage != "default" and stored_shape is not None and _count(stored_shape) == 0 and shape:
        # NDArray's sparse constructor (src/ndarray/ndarray.cc) ignores an empty storage shape and derives it
        # from the aux shapes; MXNet does write such files (a storage shape saved before it was computed).
        stored_shape = (aux_layout[0][2][0],) + shape[1:] if storage == "row_sparse" else aux_layout[1][2]
        storage_shape = stored_shape
    if stored_shape is None or any(d < 0 for d in stored_shape):
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {what} has an unknown storage shape")
    offset = r.pos
    r.take(_count(stored_shape) * itemsize, f"{what} data")
    aux = []
    for aux_dtype, aux_size, aux_shape in aux_layout:
        aux.append(AuxInfo(aux_dtype, aux_shape, r.pos))
        r.take(_count(aux_shape) * aux_size, f"{what} aux data")
    return ParamInfo(
        None, dtype, shape, offset, r.pos - offset, storage, fmt, context, storage_shape, tuple(aux)
    )


def read_params(data: bytes) -> list[ParamInfo]:
    """Every array of an NDArray list file with its name, dtype, shape and byte location."""
    if not is_params(data[:16]):
        raise CorruptArtifact("not an MXNet NDArray file: the list header 0x112 is missing")
    r = _Reader(data)
    r.pos = 16
    count = r.unpack("Q", "array count")
    if count > r.remaining() // 8:
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: it claims {count} arrays in {len(data)} bytes")
    arrays = [_read_array(r, i) for i in range(count)]
    n_names = r.unpack("Q", "name count")
    if n_names not in (0, count):
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {n_names} names for {count} arrays")
    names = []
    for i in range(n_names):
        length = r.unpack("Q", f"name {i} length")
        raw = bytes(r.take(length, f"name {i}"))
        names.append(raw.decode("utf-8", errors="replace"))
    return [replace(a, name=n) for n, a in zip(names, arrays)] if names else arrays


def _raw(data: bytes, dtype: str, shape: tuple[int, ...], offset: int) -> np.ndarray:
    import numpy as np


    count = _count(shape)
    if dtype == "bfloat16":
        raw = np.frombuffer(data, dtype="<u2", count=count, offset=offset).astype(np.uint32) << 16
        return raw.view(np.float32).reshape(shape)
    little = np.dtype(dtype).newbyteorder("<")
    return np.frombuffer(data, dtype=little, count=count, offset=offset).reshape(shape).copy()


def _dense(data: bytes, p: ParamInfo) -> np.ndarray:
    import numpy as np


    if p.shape is None or p.dtype is None:  # an empty placeholder has neither
        return np.empty((0,), dtype=np.float32)
    if p.storage == "default":
        return _raw(data, p.dtype, p.shape, p.offset)
    if p.storage_shape is None:  # read_params always gives a sparse array its storage shape
        raise CorruptArtifact(f"MXNet NDArray {p.name} is corrupt: a {p.storage} array without a storage shape")
    values = _raw(data, p.dtype, p.storage_shape, p.offset)
    index = [_raw(data, a.dtype, a.shape, a.offset).astype(np.int64) for a in p.aux]
    if p.storage == "row_sparse":
        (rows,) = index
        ok = (
            len(p.shape) >= 1
            and values.shape[1:] == p.shape[1:]
            and len(rows) == len(values)
            and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < p.shape[0]))
        )
    else:
        indptr, cols = index
        ok = (
            len(p.shape) == 2
            and values.ndim == 1
            and len(indptr) == p.shape[0] + 1
            and len(cols) == len(values)
            and indptr[0] == 0
            and indptr[-1] == len(values)
            and bool(np.all(np.diff(indptr) >= 0))
            and (len(cols) == 0 or (cols.min() >= 0 and cols.max() < p.shape[1]))
        )
    if not ok:
        raise CorruptArtifact(f"MXNet NDArray file is corrupt: {p.storage} array {p.name} has inconsistent indices")
    if _count(p.shape) * values.itemsize > _MAX_DENSE_BYTES:
        raise NotLoadable(f"sparse MXNet array {p.name} of shape {p.shape} is too large to load densely")
    out = np.zeros(p.shape, dtype=values.dtype)
    if p.storage == "row_sparse":
        out[rows] = values
    else:
        out[np.repeat(np.arange(p.shape[0]), np.diff(indptr)), cols] = values
    return out


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an NDArray list as numpy, keyed by their stored names (``"0"``, ``"1"``... when unnamed).

    Sparse arrays (row_sparse, csr) come back dense (:class:`NotLoadable` beyond 4 GiB); bfloat16 comes back as
    float32; an empty placeholder array comes back as an empty float32 array.
    """
    out: dict[str, np.ndarray] = {}
    for i, p in enumerate(read_params(data)):
        out[p.name if p.name is not None else str(i)] = _dense(data, p)
    return out


def strip_prefix(name: str) -> str:
    """``arg:fc0_weight`` -> ``fc0_weight`` (the ``arg:``/``aux:`` prefixes of Module and Gluon exports)."""
    return name[4:] if name.startswith(("arg:", "aux:")) else name


def _node_attrs(node: dict) -> dict:
    attrs = node.get("attrs", node.get("attr", node.get("param")))
    return attrs if isinstance(attrs, dict) else {}


def _load_graph(data: bytes | str | dict) -> dict:
    if isinstance(data, dict):
        graph = data
    else:
        try:
            graph = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise CorruptArtifact(f"MXNet symbol file is not valid JSON ({e})") from None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if not isinstance(nodes, list) or not nodes or not all(
        isinstance(n, dict) and isinstance(n.get("op"), str) and isinstance(n.get("name"), str) for n in nodes
    ):
        raise CorruptArtifact("MXNet symbol file has no list of nodes with 'op' and 'name'")
    for n in nodes:
        inputs = n.get("inputs", [])
        if not isinstance(inputs, list) or not all(
            isinstance(e, list) and len(e) >= 2 and isinstance(e[0], int) and 0 <= e[0] < len(nodes) for e in inputs
        ):
            raise CorruptArtifact(f"MXNet symbol node {n['name']!r} has malformed inputs")
    heads = graph.get("heads", [])
    if not isinstance(heads, list) or not all(
        isinstance(h, list) and len(h) >= 2 and isinstance(h[0], int) and 0 <= h[0] < len(nodes) for h in heads
    ):
        raise CorruptArtifact("MXNet symbol file has malformed heads")
    return graph


def is_symbol_json(data: bytes | str) -> bool:
    """True when ``data`` is an MXNet symbol graph (JSON with nodes of op/name/inputs and heads)."""
    try:
        graph = _load_graph(data)
    except CorruptArtifact:
        return False
    return "heads" in graph and ("arg_nodes" in graph or "node_row_ptr" in graph)


def _version(graph: dict) -> str | None:
    attrs = graph.get("attrs")
    v = attrs.get("mxnet_version") if isinstance(attrs, dict) else None
    if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
        v = v[1]
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return None


def summarize_symbol(data: bytes | str | dict, param_names: Iterable[str] | None = None) -> dict:
    """Facts of a symbol graph: version, op counts, layer names, data inputs, labels, parameters, outputs.

    A variable is a parameter when ``param_names`` (names from the matching ``.params`` file, prefixes
    allowed) lists it; without that list, when it carries parameter attributes (``__shape__``, ``__init__``...)
    or feeds an operator at a non-first input position. Variables feeding the label input of a loss output
    (``SoftmaxOutput``...) or named ``*label`` are labels. The remaining variables are the data inputs.
    """
    graph = _load_graph(data)
    nodes = graph["nodes"]
    variables = [i for i, n in enumerate(nodes) if n["op"] == "null"]
    used_at: dict[int, set[int]] = {i: set() for i in variables}
    label_ids: set[int] = set()
    for n in nodes:
        for pos, entry in enumerate(n.get("inputs", [])):
            src = entry[0]
            if src in used_at:
                used_at[src].add(pos)
                if n["op"] in _LABEL_OPS and pos >= 1:
                    label_ids.add(src)
    known = {strip_prefix(p) for p in param_names if p} if param_names is not None else None
    inputs, labels, params = [], [], []
    for i in variables:
        name = nodes[i]["name"]
        if known is not None:
            is_param = name in known
        else:
            is_param = bool(_PARAM_ATTRS & set(_node_attrs(nodes[i]))) or any(p > 0 for p in used_at[i])
        if i in label_ids or (name.endswith("label") and not (known and name in known)):
            labels.append(name)
        elif is_param:
            params.append(name)
        else:
            inputs.append(name)
    ops: dict[str, int] = {}
    for n in nodes:
        if n["op"] != "null":
            ops[n["op"]] = ops.get(n["op"], 0) + 1
    input_attrs = {
        nodes[i]["name"]: _node_attrs(nodes[i])
        for i in variables
        if nodes[i]["name"] in inputs and _node_attrs(nodes[i])
    }
    return {
        "mxnet_version": _version(graph),
        "num_nodes": len(nodes),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "layers": [n["name"] for n in nodes if n["op"] != "null"],
        "inputs": inputs,
        "input_attrs": input_attrs,
        "labels": labels,
        "parameters": params,
        "parameters_from": "params file" if known is not None else "graph",
        "outputs": [
            {"name": nodes[h[0]]["name"], "op": nodes[h[0]]["op"], "index": h[1]} for h in graph.get("heads", [])
        ],
    }



# ------------------------------------------------------------------------------------------ exports

def _epoch_of(symbol: str, params: str) -> int | None:
    """The epoch of ``params`` when it is ``X-NNNN.params`` beside ``X-symbol.json`` (Gluon ``export`` and Module
    ``save_checkpoint`` name their files ``'%s-symbol.json' % prefix`` and ``'%s-%04d.params' % (prefix, epoch)``,
    ``python/mxnet/gluon/block.py`` / ``python/mxnet/model.py``), else None."""
    if not symbol.endswith("-symbol.json") or not params.endswith(".params"):
        return None
    prefix = symbol[: -len("-symbol.json")] + "-"
    digits = params[len(prefix): -len(".params")] if params.startswith(prefix) else ""
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True)
class ExportFiles:
    """The symbol and params file an MXNet export is loaded from, or why it cannot be (``reason``)."""

    symbol: str | None
    params: str | None
    reason: str | None = None


def export_files(symbols: Iterable[str], params: Iterable[str]) -> ExportFiles:
    """Which symbol graph and which params file make the model of an MXNet export (Gluon or Module checkpoint).

    The first symbol (sorted by path) is taken, with its highest-epoch ``X-NNNN.params``; when no params file
    carries its prefix, the only params file there is. ``reason`` (one sentence) says why no pair can be chosen:
    the graph alone holds no weights, a params file alone holds no network (Gluon ``save_parameters`` needs the
    code that builds the network), or several params files none of which belongs to the graph by name.
    """
    symbols, params = sorted(symbols), sorted(params)
    if not symbols and not params:
        return ExportFiles(None, None, "an MXNet model needs a symbol graph (*-symbol.json) and a .params file")
    if not params:
        return ExportFiles(symbols[0], None, f"no .params file next to {symbols[0]}: the symbol graph alone holds "
                                             "no weights")
    if not symbols:
        return ExportFiles(None, params[0], f"{params[0]} holds weights without a symbol graph (*-symbol.json): "
                                            "rebuilding the network needs the code that defines it")
    symbol = symbols[0]
    epochs = sorted((e, p) for p in params if (e := _epoch_of(symbol, p)) is not None)
    if epochs:
        return ExportFiles(symbol, epochs[-1][1])
    if len(params) == 1:
        return ExportFiles(symbol, params[0])
    return ExportFiles(symbol, None, f"cannot tell which of {', '.join(params)} holds the weights of {symbol}")


# Ops that keep their input's shape: a data input seen through them still has the shape of the op that follows.
_SHAPE_KEEPING = {"Cast", "cast", "BatchNorm", "Activation", "relu", "sigmoid", "tanh", "Dropout", "identity", "_copy",
                  "_mul_scalar", "_div_scalar", "_plus_scalar", "_minus_scalar", "_rminus_scalar", "LeakyReLU"}


def data_input_shapes(graph: bytes | str | dict, param_shapes: Mapping[str, tuple[int, ...] | None],
                      inputs: Iterable[str]) -> dict[str, list[int | None] | None]:
    """The shape each data input must have, as far as the graph and the parameter shapes fix it.

    ``None`` in a shape is a free dimension (the batch, always the first, and spatial sizes); ``None`` for a
    whole input means nothing fixes its rank. Read from the first operator that consumes the input at position 0
    (past shape-keeping ops such as ``Cast``, ``BatchNorm``, ``Activation``), with MXNet's operator semantics
    (``src/operator/nn/fully_connected.cc``, ``convolution.cc``, ``tensor/dot.cc``, ``tensor/indexing_op.cc``):

    - ``FullyConnected`` with weight ``(num_hidden, k)``: ``[None, k]`` (the input is flattened to ``k`` columns);
    - ``dot(x, w)``: ``[None, w.shape[0]]`` (``w.shape[1]`` when ``transpose_b``);
    - ``Convolution`` with weight ``(num_filter, C / num_group, *kernel)``: ``[None, C, None...]``, one free
      dimension per kernel dimension;
    - ``Embedding``: ``[None, None]`` (token ids; any sequence length).

    ``param_shapes`` maps parameter names (prefixes ``arg:``/``aux:`` allowed) to their stored shapes.
    """
    g = _load_graph(graph)
    nodes = g["nodes"]
    shapes = {strip_prefix(k): v for k, v in param_shapes.items()}
    index = {n["name"]: i for i, n in enumerate(nodes) if n["op"] == "null"}
    consumers: dict[int, list[tuple[int, int]]] = {}
    for i, n in enumerate(nodes):
        for pos, e in enumerate(n.get("inputs", [])):
            consumers.setdefault(e[0], []).append((i, pos))

    def param_shape(node: dict, pos: int) -> tuple[int, ...] | None:
        inputs = node.get("inputs", [])
        if pos >= len(inputs):
            return None
        src = nodes[inputs[pos][0]]
        return shapes.get(src["name"]) if src["op"] == "null" else None

    def shape_from(i: int, depth: int = 0) -> list[int | None] | None:
        for j, pos in consumers.get(i, []):
            node = nodes[j]
            op, attrs = node["op"], _node_attrs(node)
            if pos != 0:
                continue
            if op in _SHAPE_KEEPING and depth < 16:
                found = shape_from(j, depth + 1)
                if found is not None:
                    return found
                continue
            w = param_shape(node, 1)
            if op == "FullyConnected" and w is not None and len(w) == 2:
                return [None, w[1]]
            if op == "dot" and w is not None and len(w) == 2 and not _true(attrs.get("transpose_a")):
                return [None, w[1] if _true(attrs.get("transpose_b")) else w[0]]
            if op == "Convolution" and w is not None and len(w) >= 3:
                groups = int(attrs.get("num_group", "1")) if str(attrs.get("num_group", "1")).isdigit() else 1
                return [None, w[1] * groups] + [None] * (len(w) - 2)
            if op == "Embedding":
                return [None, None]
        return None

    return {name: shape_from(index[name]) if name in index else None for name in inputs}


def _true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1")
