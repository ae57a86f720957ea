"""ONNX models (``ModelProto``, usually ``model.onnx``) read as data with the project's own protobuf reader.

Facts used, with their sources (onnx/onnx ``onnx/onnx.in.proto``, the ``onnx.proto`` shipped in the onnx
package; field numbers are the wire numbers):

- ``ModelProto { int64 ir_version = 1; string producer_name = 2; string producer_version = 3; string domain = 4;
  int64 model_version = 5; string doc_string = 6; GraphProto graph = 7; repeated OperatorSetIdProto
  opset_import = 8; repeated StringStringEntryProto metadata_props = 14; repeated TrainingInfoProto
  training_info = 20; repeated FunctionProto functions = 25; repeated DeviceConfigurationProto
  configuration = 26; }``; ``OperatorSetIdProto { string domain = 1; int64 version = 2; }`` (an empty domain is
  the default ``ai.onnx`` operator set); ``StringStringEntryProto { string key = 1; string value = 2; }``.
- ``GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5;
  string doc_string = 10; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13; repeated SparseTensorProto sparse_initializer = 15; }``.
  Before IR version 4 every initializer also had to be listed as a graph input; the inputs a caller feeds are
  the graph inputs that are not initializers (which is what onnxruntime's ``get_inputs`` lists).
- ``NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4;
  repeated AttributeProto attribute = 5; string domain = 7; }``; ``AttributeProto { string name = 1;
  GraphProto g = 6; repeated GraphProto graphs = 11; ... }``: the bodies of ``If``/``Loop``/``Scan`` are
  graphs held in attributes.
- ``ValueInfoProto { string name = 1; TypeProto type = 2; }``; ``TypeProto { oneof value { Tensor tensor_type = 1;
  Sequence sequence_type = 4; Map map_type = 5; Opaque opaque_type = 7; SparseTensor sparse_tensor_type = 8;
  Optional optional_type = 9; } }``; ``Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }`` (same
  numbers for ``SparseTensor``); ``Sequence { TypeProto elem_type = 1; }``; ``Map { int32 key_type = 1;
  TypeProto value_type = 2; }``; ``Optional { TypeProto elem_type = 1; }``; ``Opaque { string domain = 1;
  string name = 2; }``. ``TensorShapeProto { repeated Dimension dim = 1; }``, ``Dimension { oneof value
  { int64 dim_value = 1; string dim_param = 2; } }``: a dimension is a number, a symbolic name, or unknown;
  a ``Tensor`` without ``shape`` has an unknown rank.
- ``TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13; DataLocation data_location = 14; }`` with
  ``DataLocation { DEFAULT = 0; EXTERNAL = 1; }``; for external data the keys are ``location`` (a path
  relative to the model file's folder), ``offset``, ``length``, ``checksum``. ``SparseTensorProto
  { TensorProto values = 1; TensorProto indices = 2; repeated int64 dims = 3; }``.
- ``TensorProto.DataType``: the element-type names below. Type strings follow onnxruntime's spelling
  (``tensor(float)``, ``seq(map(int64,tensor(float)))``: ``onnxruntime/core/framework/data_types.cc``).

Nothing is executed and no tensor data is copied: initializers are counted and sized from their ``dims``.
"""

from __future__ import annotations

from collections import Counter

from ..errors import CorruptArtifact, NotAnArtifact
from .protobuf import I32, I64, LEN, VARINT, Field, Message, decode, message

DATA_TYPES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
    27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}
"""``TensorProto.DataType`` of ``onnx/onnx.in.proto``."""

MAX_SUBGRAPH_DEPTH = 16
"""Deepest nesting of graphs inside node attributes (``If`` inside ``Loop``...) that is walked for op counts."""

# --- the project's own schema: only the fields read here -------------------------------------

_ENTRY = Message("StringStringEntryProto", {1: Field("key", "string"), 2: Field("value", "string")})
_OPSET = Message("OperatorSetIdProto", {1: Field("domain", "string"), 2: Field("version", "int64")})
_DIMENSION = Message("TensorShapeProto.Dimension", {1: Field("dim_value", "int64"), 2: Field("dim_param", "string")})
_SHAPE = Message("TensorShapeProto", {1: message("dim", _DIMENSION, repeated=True)})
_TYPE = Message("TypeProto")
_TENSOR_TYPE = Message("TypeProto.Tensor", {1: Field("elem_type", "int32"), 2: message("shape", _SHAPE)})
_TYPE.fields.update({
    1: message("tensor_type", _TENSOR_TYPE),
    4: message("sequence_type", Message("TypeProto.Sequence", {1: message("elem_type", _TYPE)})),
    5: message("map_type", Message("TypeProto.Map", {1: Field("key_type", "int32"), 2: message("value_type", _TYPE)})),
    7: message("opaque_type", Message("TypeProto.Opaque", {1: Field("domain", "string"), 2: Field("name", "string")})),
    8: message("sparse_tensor_type", Message("TypeProto.SparseTensor", _TENSOR_TYPE.fields)),
    9: message("optional_type", Message("TypeProto.Optional", {1: message("elem_type", _TYPE)})),
})
_VALUE_INFO = Message("ValueInfoProto", {1: Field("name", "string"), 2: message("type", _TYPE)})
_TENSOR = Message(
    "TensorProto",
    {
        1: Field("dims", "int64", repeated=True),
        2: Field("data_type", "int32"),
        8: Field("name", "string"),
        9: Field("raw_data", "length"),
        13: message("external_data", _ENTRY, repeated=True),
        14: Field("data_location", "enum"),
    },
)
_SPARSE_TENSOR = Message("SparseTensorProto", {1: message("values", _TENSOR), 3: Field("dims", "int64", repeated=True)})
_GRAPH = Message("GraphProto")
_ATTRIBUTE = Message("AttributeProto", {1: Field("name", "string"), 6: message("g", _GRAPH),
                                        11: message("graphs", _GRAPH, repeated=True)})
_NODE = Message("NodeProto", {4: Field("op_type", "string"), 5: message("attribute", _ATTRIBUTE, repeated=True),
                              7: Field("domain", "string")})
_GRAPH.fields.update({
    1: message("node", _NODE, repeated=True),
    2: Field("name", "string"),
    5: message("initializer", _TENSOR, repeated=True),
    11: message("input", _VALUE_INFO, repeated=True),
    12: message("output", _VALUE_INFO, repeated=True),
    15: message("sparse_initializer", _SPARSE_TENSOR, repeated=True),
})
_FUNCTION = Message("FunctionProto", {1: Field("name", "string"), 10: Field("domain", "string")})
_MODEL = Message(
    "ModelProto",
    {
        1: Field("ir_version", "int64"),
        2: Field("producer_name", "string"),
        3: Field("producer_version", "string"),
        4: Field("domain", "string"),
        5: Field("model_version", "int64"),
        6: Field("doc_string", "string"),
        7: message("graph", _GRAPH),
        8: message("opset_import", _OPSET, repeated=True),
        14: message("metadata_props", _ENTRY, repeated=True),
        20: Field("training_info", "length", repeated=True),
        25: message("functions", _FUNCTION, repeated=True),
    },
)

_MODEL_WIRE = {1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN, 14: LEN, 20: LEN, 25: LEN, 26: LEN}
"""Field number -> wire type of every ``ModelProto`` field (used by :func:`is_onnx`)."""

_MAX_IR_VERSION = 64  # IR version 11 is current (onnx 1.18+); far above it is no ONNX file
_MAX_DOC = 500


def is_onnx(head: bytes) -> bool:
    """Whether bytes (the first few KiB of a file suffice) look like a binary ONNX ``ModelProto``.

    Every writer (protobuf's C++ and Python serializers, which the onnx package and exporters use) emits the
    fields in field-number order, so a model starts with ``ir_version`` (field 1, varint: ``08 <n>``), and
    every later top-level field of the head must be a ``ModelProto`` field with its wire type. At least one
    such field must follow, and a ``graph`` or ``opset_import`` must appear before the head ends or be cut by
    it (or, in a head of 4 KiB or more, three valid fields end in one cut by the head: a long doc string).
    A TensorFlow ``SavedModel`` also starts with ``08 01`` (``saved_model_schema_version``) followed by a
    length-delimited field 2; it is told apart by its content (``meta_info_def`` first, not text).
    """
    head = bytes(head[:65536])
    if len(head) < 4 or head[0] != 0x08:
        return False
    from .savedmodel import is_saved_model

    if is_saved_model(head):
        return False
    seen: list[int] = []
    cut = False
    try:
        for number, wire, value in _walk_head(head):
            cut = value is None
            if _MODEL_WIRE.get(number) != wire:
                return False
            if number == 1 and (seen or not 1 <= value <= _MAX_IR_VERSION):
                return False
            if number in (2, 3, 4) and value is not None:
                try:
                    str(value, "utf-8")
                except UnicodeDecodeError:
                    return False
            seen.append(number)
    except ValueError:
        return False
    if len(seen) < 2 or seen[0] != 1:
        return False
    return 7 in seen or 8 in seen or (cut and len(head) >= 4096 and len(seen) >= 3)


def _walk_head(head: bytes):
    """Top-level ``(number, wire, value)`` of a possibly cut message: a LEN field cut by the end of the head
    ends the walk (its value ``None``); anything malformed raises ValueError."""
    pos, end = 0, len(head)

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise ValueError("varint")
            b = head[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while pos < end:
        start = pos
        try:
            tag = varint()
        except ValueError:
            if end - start < 10:
                return  # the head ends inside a tag
            raise
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field 0")
        if wire == VARINT:
            try:
                value = varint()
            except ValueError:
                if end - pos < 10:
                    return
                raise
            yield number, wire, value
        elif wire == LEN:
            try:
                length = varint()
            except ValueError:
                if end - pos < 10:
                    return
                raise
            if length > end - pos:
                yield number, wire, None
                return
            yield number, wire, head[pos:pos + length]
            pos += length
        elif wire in (I64, I32):
            pos += 8 if wire == I64 else 4
            if pos > end:
                return
            yield number, wire, 0
        else:
            raise ValueError("wire type")


def summarize(data: bytes) -> dict:
    """Describe an ONNX model file.

    Returns ``{"ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string",
    "opsets": {domain: version} ("" = ai.onnx), "graph_name", "inputs": [value], "outputs": [value],
    "op_counts": {op: n}, "node_count", "subgraph_op_counts": {op: n}, "initializer_count",
    "sparse_initializer_count", "parameter_count", "external_data": [location, ...],
    "external_tensor_count", "metadata": {key: value}, "functions": [name, ...], "training_info": bool}``.

    A value is ``{"name", "type", "elem_type", "shape"}``: ``type`` in onnxruntime's spelling
    (``tensor(float)``), ``elem_type`` the ``DataType`` name for tensors (else None), ``shape`` a list whose
    items are ints (fixed), strings (symbolic ``dim_param``) or None (unknown), or None when no shape was
    recorded. ``inputs`` leaves out graph inputs that are initializers. Op names are ``op_type`` for the
    default domain (``""`` or ``ai.onnx``) and ``domain:op_type`` otherwise; ``op_counts`` counts the main
    graph's nodes, ``subgraph_op_counts`` those of graphs inside attributes (``If``/``Loop``/``Scan``
    bodies). ``parameter_count`` is the element count of every dense initializer plus the stored values
    of sparse ones. ``external_data`` lists the files the tensors name (relative to the model's folder, as
    written: whether they exist, or escape the folder, is the caller's business).
    """
    if not data:
        raise NotAnArtifact("the ONNX model file is empty")
    decoded = decode(data, _MODEL, "ONNX model")
    if "ir_version" not in decoded:
        raise CorruptArtifact("the ONNX model has no ir_version, so it is not a valid ModelProto")
    graph = decoded.get("graph")
    if graph is None:
        raise CorruptArtifact("the ONNX model has no graph")
    initializers = graph.get("initializer", [])
    init_names = {t.get("name", "") for t in initializers}
    params = 0
    external: dict[str, int] = {}
    external_count = 0
    for t in initializers:
        params += _elements(t.get("dims", []))
        if t.get("data_location") == 1:
            external_count += 1
            location = next((e.get("value", "") for e in t.get("external_data", []) if e.get("key") == "location"), "")
            external[location] = external.get(location, 0) + 1
    sparse = graph.get("sparse_initializer", [])
    for s in sparse:
        values = s.get("values", {})
        dims = values.get("dims", [])
        params += _elements(dims) if dims else 0
        init_names.add(values.get("name", ""))
    op_counts = Counter(_op_name(n) for n in graph.get("node", []))
    nested: Counter = Counter()
    _count_subgraphs(graph.get("node", []), nested, MAX_SUBGRAPH_DEPTH)
    doc = decoded.get("doc_string", "")
    return {
        "ir_version": decoded["ir_version"],
        "producer_name": decoded.get("producer_name", ""),
        "producer_version": decoded.get("producer_version", ""),
        "domain": decoded.get("domain", ""),
        "model_version": decoded.get("model_version", 0),
        "doc_string": doc if len(doc) <= _MAX_DOC else doc[:_MAX_DOC] + "...",
        "opsets": {o.get("domain", ""): o.get("version", 0) for o in decoded.get("opset_import", [])},
        "graph_name": graph.get("name", ""),
        "inputs": [_value(v) for v in graph.get("input", []) if v.get("name", "") not in init_names],
        "outputs": [_value(v) for v in graph.get("output", [])],
        "op_counts": dict(sorted(op_counts.items())),
        "node_count": sum(op_counts.values()),
        "subgraph_op_counts": dict(sorted(nested.items())),
        "initializer_count": len(initializers),
        "sparse_initializer_count": len(sparse),
        "parameter_count": params,
        "external_data": sorted(external),
        "external_tensor_count": external_count,
        "metadata": {e.get("key", ""): e.get("value", "") for e in decoded.get("metadata_props", [])},
        "functions": [f"{f.get('domain', '')}:{f.get('name', '')}" if f.get("domain") else f.get("name", "")
                      for f in decoded.get("functions", [])],
        "training_info": bool(decoded.get("training_info")),
    }


def _elements(dims: list[int]) -> int:
    n = 1
    for d in dims:
        if d < 0:
            raise CorruptArtifact(f"an ONNX initializer has a negative dimension {d}")
        n *= d
    return n


def _op_name(node: dict) -> str:
    domain = node.get("domain", "")
    op = node.get("op_type", "")
    return op if domain in ("", "ai.onnx") else f"{domain}:{op}"


def _count_subgraphs(nodes: list[dict], into: Counter, depth: int) -> None:
    for node in nodes:
        for attr in node.get("attribute", []):
            graphs = ([attr["g"]] if "g" in attr else []) + attr.get("graphs", [])
            for g in graphs:
                if depth <= 0:
                    raise CorruptArtifact(f"the ONNX model nests subgraphs more than {MAX_SUBGRAPH_DEPTH} deep")
                inner = g.get("node", [])
                into.update(_op_name(n) for n in inner)
                _count_subgraphs(inner, into, depth - 1)


def _value(v: dict) -> dict:
    t = v.get("type")
    tensor = (t or {}).get("tensor_type")
    elem = DATA_TYPES.get(tensor.get("elem_type", 0), f"type {tensor.get('elem_type')}") if tensor is not None else None
    shape = None
    if tensor is not None and "shape" in tensor:
        shape = [d["dim_value"] if "dim_value" in d else d.get("dim_param") or None
                 for d in tensor["shape"].get("dim", [])]
    return {"name": v.get("name", ""), "type": type_string(t), "elem_type": elem, "shape": shape}


def type_string(t: dict | None, depth: int = 0) -> str | None:
    """A decoded ``TypeProto`` in onnxruntime's spelling: ``tensor(float)``, ``seq(tensor(int64))``,
    ``map(string,tensor(float))``, ``optional(...)``, ``sparse_tensor(float)``, ``opaque(domain,name)``."""
    if not t or depth > 32:
        return None
    if "tensor_type" in t:
        return f"tensor({_elem(t['tensor_type'])})"
    if "sparse_tensor_type" in t:
        return f"sparse_tensor({_elem(t['sparse_tensor_type'])})"
    if "sequence_type" in t:
        return f"seq({type_string(t['sequence_type'].get('elem_type'), depth + 1)})"
    if "map_type" in t:
        m = t["map_type"]
        key = DATA_TYPES.get(m.get("key_type", 0), "undefined").lower()
        return f"map({key},{type_string(m.get('value_type'), depth + 1)})"
    if "optional_type" in t:
        return f"optional({type_string(t['optional_type'].get('elem_type'), depth + 1)})"
    if "opaque_type" in t:
        o = t["opaque_type"]
        return f"opaque({o.get('domain', '')},{o.get('name', '')})"
    return None


def _elem(tensor: dict) -> str:
    return DATA_TYPES.get(tensor.get("elem_type", 0), f"type{tensor.get('elem_type')}").lower()

