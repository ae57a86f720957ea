"""TensorFlow SavedModel (``saved_model.pb``) and Keras model files, read as data.

Facts used, with their sources (tensorflow/tensorflow unless said otherwise):

- ``tensorflow/core/protobuf/saved_model.proto``: ``SavedModel { int64 saved_model_schema_version = 1;
  repeated MetaGraphDef meta_graphs = 2; }``. Every writer sets the schema version to 1.
- ``tensorflow/core/protobuf/meta_graph.proto``: ``MetaGraphDef { MetaInfoDef meta_info_def = 1;
  GraphDef graph_def = 2; SaverDef saver_def = 3; map<string, CollectionDef> collection_def = 4;
  map<string, SignatureDef> signature_def = 5; repeated AssetFileDef asset_file_def = 6;
  SavedObjectGraph object_graph_def = 7; }``; ``MetaInfoDef { string meta_graph_version = 1;
  OpList stripped_op_list = 2; Any any_info = 3; repeated string tags = 4; string tensorflow_version = 5;
  string tensorflow_git_version = 6; ... }``; ``SignatureDef { map<string, TensorInfo> inputs = 1;
  map<string, TensorInfo> outputs = 2; string method_name = 3; ... }``; ``TensorInfo { oneof encoding
  { string name = 1; CooSparse coo_sparse = 4; CompositeTensor composite_tensor = 5; } DataType dtype = 2;
  TensorShapeProto tensor_shape = 3; }``; ``CooSparse { string values_tensor_name = 1; ... }``;
  ``AssetFileDef { TensorInfo tensor_info = 1; string filename = 2; }``; ``CollectionDef { oneof kind
  { ... AnyList any_list = 5; } }``, ``AnyList { repeated google.protobuf.Any value = 1; }``. TF 1
  builders stored assets as ``AssetFileDef`` values in the ``saved_model_assets`` collection
  (``tensorflow/python/saved_model/constants.py``: ``ASSETS_KEY``); newer ones use ``asset_file_def``.
- protocolbuffers/protobuf ``src/google/protobuf/any.proto``: ``Any { string type_url = 1; bytes value = 2; }``.
- ``tensorflow/core/framework/graph.proto``: ``GraphDef { repeated NodeDef node = 1; FunctionDefLibrary
  library = 2; ... }``; ``node_def.proto``: ``NodeDef { string name = 1; string op = 2; ... }``;
  ``function.proto``: ``FunctionDefLibrary { repeated FunctionDef function = 1; ... }``.
- ``tensorflow/core/framework/tensor_shape.proto``: ``TensorShapeProto { repeated Dim dim = 2;
  bool unknown_rank = 3; }``, ``Dim { int64 size = 1; string name = 2; }``; size -1 = unknown.
- ``tensorflow/core/framework/types.proto``: the ``DataType`` enum (names below).
- ``tensorflow/core/protobuf/saved_object_graph.proto``: ``SavedObjectGraph { repeated SavedObject
  nodes = 1; ... }``; ``SavedObject { repeated ObjectReference children = 1; oneof kind {
  SavedUserObject user_object = 4; ... } }``; ``SavedUserObject { string identifier = 1;
  VersionDef version = 2; string metadata = 3; }``. TF 2.0-2.4 Keras put each layer's JSON metadata
  in ``metadata``; later versions leave it empty and write ``keras_metadata.pb`` instead.
  The object graph exists only in SavedModels written by TF 2 ``tf.saved_model.save``; TF 1 builders
  (``SavedModelBuilder``, estimators) write none, so its absence marks a TF1-style graph SavedModel
  (``method_name`` does not tell them apart: TF 2 also writes ``tensorflow/serving/predict``).
- ``tensorflow/python/saved_model/signature_constants.py`` / ``constants.py``: signature keys starting
  with ``__saved_model_`` (``__saved_model_init_op``, ``__saved_model_train_op``) are internal ops, not
  callable signatures; they are left out of ``signatures``.
- keras-team/tf-keras ``tf_keras/protobuf/saved_metadata.proto``: ``SavedMetadata { repeated
  SavedObject nodes = 1; }``, ``SavedObject { int32 node_id = 2; string node_path = 3;
  string identifier = 4; string metadata = 5; VersionDef version = 6; }``; ``metadata`` is the
  layer's JSON (``class_name``, ``name``, ``config``...).
- Keras ``Lambda`` layers serialize their Python function as marshalled bytecode (base64) inside
  their config: tf-keras ``tf_keras/layers/core/lambda_layer.py`` (``function``, ``function_type``
  "lambda") and keras-team/keras ``keras/src/layers/core/lambda_layer.py`` / ``keras/src/saving/
  serialization_lib.py`` (``{"class_name": "__lambda__", "config": {"code": ...}}``). Loading one runs
  that bytecode, so they are reported by name; the bytecode is never decoded.
- The ``.keras`` format is a zip with ``config.json`` (the model config), ``metadata.json``
  (``keras_version``) and ``model.weights.h5`` (keras-team/keras ``keras/src/saving/saving_lib.py``).
- Legacy Keras HDF5 files hold the model config JSON in the root attribute ``model_config``
  (tf-keras ``tf_keras/src/saving/legacy/hdf5_format.py``), which h5py stores as a variable-length
  string in an HDF5 *global heap collection*. No HDF5 reader is used: the file signature is checked
  (``\\x89HDF\\r\\n\\x1a\\n``) and every global heap collection is walked as described by the HDF5 File
  Format Specification 3.0, "Global Heap" (``GCOL``, version 1, 3 reserved bytes, 8-byte collection
  size; objects: 2-byte index (0 = free space, ends the list), 2-byte reference count, 4 reserved,
  8-byte size, data padded to 8 bytes; 8-byte lengths as h5py writes them). The first heap object
  that is a JSON object with ``class_name`` and ``config`` gives the model summary; Lambda layers are
  collected from every JSON object in the file, since a decoy config can come first and Keras reads
  ``model_config`` by name, wherever its value is stored (see :func:`audit_keras`).

Trust audit: :func:`audit_saved_model` (ops that touch files, processes, the network or Python, and what
reaches them; rules in :mod:`.tf_graph`) and :func:`audit_keras` (code a Keras file makes Keras run or import).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any, Iterable, Iterator

from ..errors import CorruptArtifact, NotAnArtifact
from ..filetree import ZIP_ERRORS, ZipTree
from . import tf_graph
from .protobuf import LEN, VARINT, Field, Message, decode, map_field, message

DATA_TYPES = {
    0: "DT_INVALID", 1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 5: "DT_INT16",
    6: "DT_INT8", 7: "DT_STRING", 8: "DT_COMPLEX64", 9: "DT_INT64", 10: "DT_BOOL", 11: "DT_QINT8",
    12: "DT_QUINT8", 13: "DT_QINT32", 14: "DT_BFLOAT16", 15: "DT_QINT16", 16: "DT_QUINT16",
    17: "DT_UINT16", 18: "DT_COMPLEX128", 19: "DT_HALF", 20: "DT_RESOURCE", 21: "DT_VARIANT",
    22: "DT_UINT32", 23: "DT_UINT64", 24: "DT_FLOAT8_E5M2", 25: "DT_FLOAT8_E4M3FN",
    26: "DT_FLOAT8_E4M3FNUZ", 27: "DT_FLOAT8_E4M3B11FNUZ", 28: "DT_FLOAT8_E5M2FNUZ", 29: "DT_INT4",
    30: "DT_UINT4", 31: "DT_INT2", 32: "DT_UINT2", 33: "DT_FLOAT4_E2M1FN",
}
"""``DataType`` enum of ``tensorflow/core/framework/types.proto``; ``*_REF`` types are value + 100."""

# --- the project's own schema: only the fields read here -------------------------------------

_DIM = Message("TensorShapeProto.Dim", {1: Field("size", "int64")})
_SHAPE = Message("TensorShapeProto", {2: message("dim", _DIM, repeated=True), 3: Field("unknown_rank", "bool")})
_COO_SPARSE = Message("TensorInfo.CooSparse", {1: Field("values_tensor_name", "string")})
_TENSOR_INFO = Message(
    "TensorInfo",
    {
        1: Field("name", "string"),
        2: Field("dtype", "enum"),
        3: message("tensor_shape", _SHAPE),
        4: message("coo_sparse", _COO_SPARSE),
        5: Field("composite_tensor", "length"),
    },
)
_SIGNATURE_DEF = Message(
    "SignatureDef",
    {
        1: map_field("inputs", "string", _TENSOR_INFO),
        2: map_field("outputs", "string", _TENSOR_INFO),
        3: Field("method_name", "string"),
    },
)
_META_INFO_DEF = Message(
    "MetaInfoDef",
    {
        1: Field("meta_graph_version", "string"),
        4: Field("tags", "string", repeated=True),
        5: Field("tensorflow_version", "string"),
        6: Field("tensorflow_git_version", "string"),
    },
)
_NODE_DEF = Message("NodeDef", {2: Field("op", "string")})
_FUNCTION_LIBRARY = Message("FunctionDefLibrary", {1: Field("function", "length", repeated=True)})
_GRAPH_DEF = Message(
    "GraphDef", {1: message("node", _NODE_DEF, repeated=True), 2: message("library", _FUNCTION_LIBRARY)}
)
_ASSET_FILE_DEF = Message("AssetFileDef", {2: Field("filename", "string")})
_ANY = Message("google.protobuf.Any", {1: Field("type_url", "string"), 2: Field("value", "bytes")})
_COLLECTION_DEF = Message(
    "CollectionDef", {5: message("any_list", Message("AnyList", {1: message("value", _ANY, repeated=True)}))}
)
_SAVED_USER_OBJECT = Message("SavedUserObject", {1: Field("identifier", "string"), 3: Field("metadata", "string")})
_SAVED_OBJECT = Message("SavedObject", {4: message("user_object", _SAVED_USER_OBJECT)})
_SAVED_OBJECT_GRAPH = Message("SavedObjectGraph", {1: message("nodes", _SAVED_OBJECT, repeated=True)})
_META_GRAPH_DEF = Message(
    "MetaGraphDef",
    {
        1: message("meta_info_def", _META_INFO_DEF),
        2: message("graph_def", _GRAPH_DEF),
        4: map_field("collection_def", "string", _COLLECTION_DEF),
        5: map_field("signature_def", "string", _SIGNATURE_DEF),
        6: message("asset_file_def", _ASSET_FILE_DEF, repeated=True),
        7: message("object_graph_def", _SAVED_OBJECT_GRAPH),
    },
)
_SAVED_MODEL = Message(
    "SavedModel",
    {1: Field("saved_model_schema_version", "int64"), 2: message("meta_graphs", _META_GRAPH_DEF, repeated=True)},
)
_KERAS_SAVED_OBJECT = Message(
    "SavedMetadata.SavedObject",
    {2: Field("node_id", "int32"), 3: Field("node_path", "string"), 4: Field("identifier", "string"),
     5: Field("metadata", "string")},
)
_KERAS_SAVED_METADATA = Message("SavedMetadata", {1: message("nodes", _KERAS_SAVED_OBJECT, repeated=True)})

_META_INFO_WIRE = {1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: LEN, 7: VARINT, 8: LEN}
"""Field number -> wire type of every ``MetaInfoDef`` field (used by :func:`is_saved_model`)."""

_INTERNAL_SIGNATURE_PREFIX = "__saved_model_"
_ASSETS_COLLECTION = "saved_model_assets"
_KERAS_IDENTIFIER_PREFIX = "_tf_keras_"
_MAX_JSON_NESTING = 200
_MAX_KERAS_JSON_BYTES = 64 * 1024 * 1024


def is_saved_model(pb_head: bytes) -> bool:
    """Whether bytes (the first 64 bytes of a file suffice) look like a binary ``SavedModel`` message.

    Every TensorFlow writer starts the message with ``saved_model_schema_version`` = 1 (field 1,
    varint: ``08 01``), then the first ``meta_graphs`` entry (field 2, length-delimited: ``12 <len>``)
    whose first field is ``meta_info_def`` (field 1, length-delimited: ``0a <len>``) beginning with a
    valid ``MetaInfoDef`` field. Other protobufs (ONNX, a bare GraphDef, checkpoint indexes) do not.
    """
    head = bytes(pb_head[:64])
    if head[:3] != b"\x08\x01\x12":
        return False
    try:
        pos = _skip_varint(head, 3)
        if head[pos] != (1 << 3 | LEN):
            return False
        tag = head[_skip_varint(head, pos + 1)]
    except IndexError:
        return False
    return _META_INFO_WIRE.get(tag >> 3) == tag & 7


def _skip_varint(head: bytes, pos: int) -> int:
    for i in range(pos, min(pos + 10, len(head))):
        if head[i] < 0x80:
            return i + 1
    raise IndexError("varint runs past the head")


def summarize(pb: bytes, keras_metadata: bytes | None = None) -> dict:
    """Describe a ``saved_model.pb`` (and its sibling ``keras_metadata.pb`` when given).

    Returns ``{"saved_model_schema_version", "meta_graphs": [{"tags", "tensorflow_version",
    "tensorflow_git_version", "signatures": {key: {"method_name", "inputs": {k: {"name", "dtype",
    "shape"}}, "outputs": {...}}}, "op_count", "function_count", "assets", "tf1_style"}],
    "keras_lambda_layers": [...], "keras": {...}}``.

    Shapes are lists with -1 for unknown dims and ``None`` for unknown rank or when no shape was
    recorded (TF 1.0 wrote ``TensorInfo`` without ``tensor_shape``; protobuf defaults would misread
    that as a scalar). Dtypes are ``DataType`` enum names (``"DT_FLOAT"``). A sparse or composite
    tensor has ``"encoding"`` and no ``name``. ``op_count`` counts the nodes of the top-level graph
    (TF 2 keeps most ops in its function library: ``function_count``). ``keras`` is present only
    when Keras objects are found; ``keras_lambda_layers`` is ``None`` when Keras objects exist but
    their configs were not saved (Lambda layers can then be neither found nor ruled out).
    """
    if not pb:
        raise NotAnArtifact("saved_model.pb is empty")
    decoded = decode(pb, _SAVED_MODEL, "saved_model.pb")
    if not decoded.get("meta_graphs"):
        raise CorruptArtifact("saved_model.pb holds no meta graph, so it is not a usable SavedModel")
    meta_graphs = [_meta_graph(mg) for mg in decoded["meta_graphs"]]

    keras_nodes: list[dict] = []
    identifiers: list[str] = []
    source = None
    if keras_metadata is not None:
        keras_nodes = decode(keras_metadata, _KERAS_SAVED_METADATA, "keras_metadata.pb").get("nodes", [])
        source = "keras_metadata.pb"
    for mg in decoded["meta_graphs"]:
        for node in mg.get("object_graph_def", {}).get("nodes", []):
            user = node.get("user_object")
            if user and user.get("identifier", "").startswith(_KERAS_IDENTIFIER_PREFIX):
                identifiers.append(user["identifier"])
                if keras_metadata is None and user.get("metadata"):
                    keras_nodes.append(user)
                    source = "object graph"

    out: dict[str, Any] = {
        "saved_model_schema_version": decoded.get("saved_model_schema_version", 0),
        "meta_graphs": meta_graphs,
        "keras_lambda_layers": [],
    }
    described = [(n, _json(n["metadata"], "Keras layer metadata")) for n in keras_nodes if n.get("metadata")]
    if described:
        configs = [config for _, config in described]
        root = next((c for n, c in described if n.get("node_path", "root") == "root"), configs[0])
        keras = _keras_summary(root, configs, source)
        out["keras"] = keras
        out["keras_lambda_layers"] = keras["lambda_layers"]
    elif identifiers:
        out["keras"] = {"source": "object graph", "model_class": None, "layers": [], "lambda_layers": None,
                        "config_saved": False}
        out["keras_lambda_layers"] = None
    return out


def serving_meta_graph(summary: dict) -> dict:
    """The meta graph a loader runs: the one tagged ``serve`` (``tensorflow/python/saved_model/tag_constants.py``
    ``SERVING``, the tag set TF Serving and ``saved_model_cli`` load by default), else the first."""
    graphs = summary.get("meta_graphs") or []
    return next((g for g in graphs if "serve" in (g.get("tags") or [])), graphs[0] if graphs else {})


def not_callable_reason(summary: dict, path: str = "saved_model.pb") -> str | None:
    """One sentence saying why a summarized SavedModel has nothing to call, or None when it has.

    Facts: a signature is what a SavedModel is called through (``signature_def``, internal ``__saved_model_*``
    keys aside; ``tf.saved_model.load(...).signatures`` and the TF 1 loader expose exactly these); a signature's
    tensors are nodes of ``graph_def`` (TF 1) or are computed by its function library (TF 2), so a meta graph
    whose graph has no node and no function cannot run any signature it declares.
    """
    meta = serving_meta_graph(summary)
    if not meta:
        return f"{path} holds no meta graph, so there is nothing to load"
    empty = not meta.get("op_count") and not meta.get("function_count")
    tags = ",".join(meta.get("tags") or []) or "untagged"
    if not meta.get("signatures"):
        what = "and its graph is empty (no ops, no functions)" if empty else "so no function of it can be called"
        return f"{path} declares no signature in its {tags} meta graph, {what}"
    if empty:
        return (f"{path}'s {tags} meta graph is empty (no ops, no functions), so its signature(s) "
                f"{', '.join(sorted(meta['signatures']))} name tensors that do not exist")
    return None


def summarize_keras(data: bytes) -> dict:
    """Describe a Keras model file: a ``.keras`` zip (``config.json``) or a legacy HDF5 ``.h5``.

    Returns ``{"format": "keras-zip" | "hdf5", "source", "model_class", "keras_version",
    "layers": [{"name", "class_name"}], "lambda_layers": [...], "config_saved": bool}``. An HDF5 file
    without a ``model_config`` (weights only) gives ``config_saved`` False and ``lambda_layers`` None.
    """
    if data[:4] == b"PK\x03\x04":
        return _summarize_keras_zip(data)
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        # Lambda layers come from every JSON config in the file, not only the first: a decoy config stored
        # before the real model_config (or a model_config kept outside the global heap) must not hide one.
        configs = [c for _, c in _scan_json_objects(data, "the HDF5 Keras file")]
        config = _hdf5_model_config(data) or next(
            (c for c in configs if "class_name" in c and "config" in c), None)
        if config is None:
            return {"format": "hdf5", "source": "hdf5", "model_class": None, "keras_version": None,
                    "layers": [], "lambda_layers": None, "config_saved": False}
        return {"format": "hdf5", **_keras_summary(config, [config, *configs], "hdf5 model_config")}
    raise NotAnArtifact("the file is neither a .keras zip nor an HDF5 Keras model")


def _summarize_keras_zip(data: bytes) -> dict:
    try:
        zf = ZipTree(data, label="the .keras zip")  # the archive layer's bounded reader: sizes may lie
        raw_config = _zip_member(zf, "config.json")
        raw_meta = _zip_member(zf, "metadata.json") or b"{}"
    except ZIP_ERRORS as e:
        raise CorruptArtifact(f"the .keras zip cannot be read ({str(e)[:200]})") from None
    if raw_config is None:
        raise NotAnArtifact("the zip has no config.json, so it is not a .keras model")
    config = _json(raw_config, ".keras config.json")
    meta = _json(raw_meta, ".keras metadata.json")
    summary = _keras_summary(config, [config], "config.json")
    if isinstance(meta, dict) and isinstance(meta.get("keras_version"), str):
        summary["keras_version"] = meta["keras_version"]
    return {"format": "keras-zip", **summary}


def _zip_member(zf: ZipTree, name: str) -> bytes | None:
    if name not in zf.names():
        return None
    if zf.size(name) > _MAX_KERAS_JSON_BYTES:
        raise CorruptArtifact(f".keras {name} claims {zf.size(name)} bytes, too large for a model config")
    return zf.read(name)


def _meta_graph(mg: dict) -> dict:
    info = mg.get("meta_info_def", {})
    graph = mg.get("graph_def", {})
    signatures = {
        key: {
            "method_name": sig.get("method_name", ""),
            "inputs": {k: _tensor_info(v) for k, v in sorted(sig.get("inputs", {}).items())},
            "outputs": {k: _tensor_info(v) for k, v in sorted(sig.get("outputs", {}).items())},
        }
        for key, sig in sorted(mg.get("signature_def", {}).items())
        if not key.startswith(_INTERNAL_SIGNATURE_PREFIX)
    }
    return {
        "tags": info.get("tags", []),
        "tensorflow_version": info.get("tensorflow_version") or None,
        "tensorflow_git_version": info.get("tensorflow_git_version") or None,
        "signatures": signatures,
        "op_count": len(graph.get("node", [])),
        "function_count": len(graph.get("library", {}).get("function", [])),
        "assets": _assets(mg),
        "tf1_style": "object_graph_def" not in mg,
    }


def _assets(mg: dict) -> list[str]:
    """Asset file names: ``asset_file_def`` (TF >= 1.x late) or the TF1 ``saved_model_assets`` collection."""
    defs = list(mg.get("asset_file_def", []))
    collection = mg.get("collection_def", {}).get(_ASSETS_COLLECTION, {})
    for item in collection.get("any_list", {}).get("value", []):
        if item.get("type_url", "").endswith("/tensorflow.AssetFileDef"):
            defs.append(decode(item.get("value", b""), _ASSET_FILE_DEF, "saved_model.pb asset definition"))
    names: list[str] = []
    for d in defs:
        if d.get("filename") and d["filename"] not in names:
            names.append(d["filename"])
    return names


def _tensor_info(info: dict) -> dict:
    dtype = info.get("dtype", 0)
    base = DATA_TYPES.get(dtype - 100 if dtype > 100 else dtype)
    name = f"{base}_REF" if base and dtype > 100 else base
    shape_proto = info.get("tensor_shape")
    if shape_proto is None or shape_proto.get("unknown_rank"):
        shape = None
    else:
        shape = [d.get("size", 0) for d in shape_proto.get("dim", [])]
    out: dict[str, Any] = {"name": info.get("name"), "dtype": name or f"DataType({dtype})", "shape": shape}
    if "coo_sparse" in info:
        out["encoding"] = "coo_sparse"
    elif "composite_tensor" in info:
        out["encoding"] = "composite_tensor"
    return out


def _json(raw: bytes | str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise CorruptArtifact(f"{what} is not valid JSON ({str(e)[:80]})") from None


def _keras_summary(root: Any, configs: Iterable[Any], source: str | None) -> dict:
    """Model class, top-level layers and Lambda layer names from Keras config JSON objects."""
    root = root if isinstance(root, dict) else {}
    inner = root.get("config")
    if not isinstance(inner, dict):
        inner = {}
    layers = inner.get("layers")
    if not isinstance(layers, list):
        layers = []
    lambdas: list[str] = []
    for config in configs:
        for name in _lambda_layer_names(config):
            if name not in lambdas:
                lambdas.append(name)
    return {
        "source": source,
        "model_class": root.get("class_name") if isinstance(root.get("class_name"), str) else None,
        "keras_version": root.get("keras_version") if isinstance(root.get("keras_version"), str) else None,
        "layers": [{"name": _layer_name(layer), "class_name": layer.get("class_name")}
                   for layer in layers if isinstance(layer, dict)],
        "lambda_layers": lambdas,
        "config_saved": True,
    }


def _layer_name(layer: dict) -> str | None:
    config = layer.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    name = name if name is not None else layer.get("name")
    return name if isinstance(name, str) else None


def _lambda_layer_names(config: Any) -> list[str]:
    """Names of every object with ``class_name == "Lambda"`` anywhere in a Keras config (iterative walk)."""
    found: list[str] = []
    stack = [(config, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > _MAX_JSON_NESTING:
            raise CorruptArtifact("Keras config JSON nests too deeply")
        if isinstance(obj, dict):
            if obj.get("class_name") == "Lambda":
                found.append(_layer_name(obj) or "<unnamed>")
            stack.extend((v, depth + 1) for v in reversed(list(obj.values())))
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in reversed(obj))
    return found


def _hdf5_model_config(data: bytes) -> dict | None:
    pos = data.find(b"GCOL")
    while pos != -1:
        for obj in _gcol_objects(data, pos):
            if obj[:1] == b"{":
                try:
                    value = json.loads(obj)
                except (ValueError, RecursionError):
                    continue
                if isinstance(value, dict) and "class_name" in value and "config" in value:
                    return value
        pos = data.find(b"GCOL", pos + 4)
    return None


def _gcol_objects(data: bytes, start: int) -> list[bytes]:
    """The objects of the HDF5 global heap collection at ``start`` (empty when it is not one)."""
    if len(data) < start + 16 or data[start + 4] != 1:
        return []
    size = int.from_bytes(data[start + 8 : start + 16], "little")
    end = min(start + size, len(data))
    pos, objects = start + 16, []
    while pos + 16 <= end:
        index = int.from_bytes(data[pos : pos + 2], "little")
        length = int.from_bytes(data[pos + 8 : pos + 16], "little")
        if index == 0 or length > end - pos - 16:
            break
        objects.append(data[pos + 16 : pos + 16 + length])
        pos += 16 + (length + 7) // 8 * 8
    return objects


# --- trust audit: code that loading or serving would run ------------------------------------------------


def audit_saved_model(pb: bytes) -> list[str]:
    """One sentence per op in ``saved_model.pb`` that touches files, processes, the network or Python and that
    loading, serving or calling the model reaches, e.g. ``op WriteFile (writes a file) in function
    __inference_serve_12 (node WriteFile) is reachable from signature serving_default``. Empty when none.

    The rules (which ops, what reaches what, the checkpoint and vocabulary-table exceptions) and their
    sources are in :mod:`artifact_tools.formats.tf_graph`. Raises :class:`CorruptArtifact` on a damaged
    protobuf.
    """
    return tf_graph.audit(pb)


def audit_keras(data: bytes) -> list[str]:
    """One sentence per piece of Python a Keras model file would run or import when loaded.

    ``data`` is a ``.keras`` zip, a legacy HDF5 model (with or without an HDF5 user block) or a bare JSON
    config. What carries code (keras-team/tf-keras and keras-team/keras sources, read at tf-keras 2.21 and
    Keras 3.15):

    - every ``Lambda`` layer (``tf_keras/src/layers/core/lambda_layer.py``: ``function_type`` ``"lambda"``
      is marshalled bytecode, ``"function"`` a function looked up by name; ``keras/src/layers/core/
      lambda_layer.py``: ``function`` / ``output_shape`` as ``{"class_name": "__lambda__"}``; Keras 3's
      legacy HDF5 loader turns a list ``[code, defaults, closure]`` into one, ``keras/src/legacy/saving/
      saving_utils.py``);
    - any ``{"class_name": "__lambda__"}`` object (``serialization_lib.py`` of both: bytecode, deserialized
      wherever a config holds an object, e.g. an activation or a loss);
    - any ``<name>_type: "lambda"`` pair (tf-keras RNN cell wrappers, ``tf_keras/src/layers/rnn/
      cell_wrappers.py``: ``residual_fn_type``, ``dropout_fn_type``);
    - ``TFOpLambda`` / ``SlicingOpLambda`` / ``ClassMethod`` layers (``tf_keras/src/layers/core/
      tf_op_layer.py``) resolve a TensorFlow API name with ``get_symbol_from_name`` and call it while the
      model is rebuilt; reported when that name is outside TensorFlow's math namespaces or is a top-level
      API touching files, Python, the process or the graph (``tf.io.write_file``, ``tf.print``,
      ``tf.py_function``, ``tf.load_library``...). No bytecode, but a call chosen by the file;
    - an object naming a Python ``module`` outside Keras (tf-keras ``serialization_lib._retrieve_class_or_fn``
      imports any module a config names; Keras before 3.9 did too, CVE-2025-1550).

    Every JSON config in the file is read, not only the one a loader uses: Keras reads the root attributes
    ``model_config`` and ``training_config`` (tf-keras ``tf_keras/src/saving/legacy/hdf5_format.py``,
    Keras 3 ``keras/src/legacy/saving/legacy_h5_format.py``), and an attribute's value may sit in an HDF5
    global heap (variable-length strings), inline in an object header (fixed-length strings) or in a fractal
    heap (dense attribute storage), so a decoy stored first proves nothing. Those values are UTF-8 JSON
    (both loaders decode bytes as UTF-8; JSON forbids raw NUL bytes), stored uncompressed, so the whole file
    is scanned for JSON objects (``{`` then a key or ``}``), each parsed with :mod:`json`; an object nested
    inside one already parsed is walked as part of it (a key cannot start inside a string, whose quotes
    would be its own). A fractal heap with I/O filters (``FRHP`` header, HDF5 File Format Specification
    3.0 III.G: version 0, then a 2-byte heap ID length and the 2-byte filter information length) could hold
    compressed attributes, which is reported. In a ``.keras`` zip each ``*.json`` member is parsed as Keras
    does (``json.loads`` of the bytes) and scanned, and so are other members up to 64 MiB (256 MiB in all);
    larger ones are weights, from which Keras reads no config.

    Raises :class:`CorruptArtifact` for an unreadable zip, a ``config.json`` that is not JSON, JSON nested
    too deeply, or a file with more overlapping JSON fragments than can be audited in bounded time.
    """
    configs: dict[str, tuple[str, Any]] = {}

    def add(where: str, config: Any) -> None:
        if isinstance(config, dict):
            try:
                key = json.dumps(config, sort_keys=True, default=str)
            except (ValueError, RecursionError):
                raise CorruptArtifact(f"the Keras config in {where} nests too deeply to audit") from None
            configs.setdefault(key, (where, config))

    findings: list[str] = []
    filtered_heap = _has_filtered_fractal_heap(data)
    if _is_zip(data):
        for name, member in _zip_members(data):
            filtered_heap = filtered_heap or _has_filtered_fractal_heap(member)
            if name.lower().endswith(".json"):
                try:
                    add(f"{name} of the .keras zip", json.loads(member))
                except RecursionError:
                    raise CorruptArtifact(f".keras {name} nests too deeply to audit") from None
                except ValueError as e:
                    if name == "config.json":
                        raise CorruptArtifact(f".keras config.json is not valid JSON ({str(e)[:80]})") from None
            for offset, config in _scan_json_objects(member, f".keras member {name}"):
                add(f"{name} of the .keras zip (byte {offset})", config)
    for offset, config in _scan_json_objects(data, "the Keras file"):
        add(f"the JSON config at byte {offset}", config)
    if filtered_heap:
        findings.append("the HDF5 file keeps objects in a compressed (filtered) fractal heap, where attributes "
                        "cannot be read without an HDF5 library, so Keras Lambda layers cannot be ruled out")
    for where, config in configs.values():
        for sentence in _code_carriers(config, where):
            if sentence not in findings:
                findings.append(sentence)
    return findings


_KERAS_MEMBER_LIMIT = 64 * 1024 * 1024
_KERAS_ZIP_TOTAL_LIMIT = 256 * 1024 * 1024
_JSON_OBJECT_START = re.compile(rb'\{[ \t\n\r]*["}]')
_HDF5_FILTERED_HEAP = re.compile(rb"FRHP\x00..(?!\x00\x00)..", re.DOTALL)
_OP_LAMBDA_CLASSES = {"TFOpLambda", "SlicingOpLambda", "ClassMethod"}
_SAFE_TF_NAMESPACES = {"math", "nn", "linalg", "signal", "bitwise", "sparse", "ragged", "strings", "image", "dtypes",
                       "__operators__", "random", "sets", "quantization", "RaggedTensor", "SparseTensor", "Tensor"}
"""First segment of a ``TFOpLambda`` symbol (after ``compat.v1.`` / ``compat.v2.``) that names pure tensor math."""
_RISKY_TF_TOP_LEVEL = re.compile(
    r"(?i)file|read|writ|print|py_?func|numpy_function|library|function|module|graph|session|logger|collection|"
    r"eager|device|container|scope|control_dependencies|rpc|preemption|initializ|summary|checkpoint|saver|dataset|"
    r"gradient|colocate|symbolic|timestamp|serialize"
)
"""A top-level TensorFlow API name (``tf.X``) that is not plain tensor math; tests/test_tf_audit.py checks it
against every top-level symbol TensorFlow's own API registry maps to I/O, logging, script, library-loading,
graph or module code."""
_SAFE_MODULE_PACKAGES = {"keras", "tf_keras", "keras_hub", "keras_cv", "keras_nlp", "builtins"}


def _is_zip(data: bytes) -> bool:
    try:
        return zipfile.is_zipfile(io.BytesIO(data))
    except ZIP_ERRORS:
        return False


def _zip_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every ``*.json`` zip member and of the other members up to 64 MiB while they total
    at most 256 MiB (weights; Keras reads no config from them). Reads stay bounded even when sizes lie."""
    total = 0
    try:
        zf = ZipTree(data, label="the .keras zip")  # the archive layer's bounded reader: sizes may lie
        for name in zf.names():
            size = zf.size(name)
            is_json = name.lower().endswith(".json")
            too_big = size > _KERAS_MEMBER_LIMIT or total + size > _KERAS_ZIP_TOTAL_LIMIT
            if name.endswith("/") or (too_big and not is_json):
                continue
            if size > _KERAS_MEMBER_LIMIT:
                raise CorruptArtifact(f".keras member {name[:100]} holds more than 64 MiB, too large for a config")
            member = zf.read(name)
            total += len(member)
            yield name, member
    except ZIP_ERRORS as e:
        raise CorruptArtifact(f"the .keras zip cannot be read ({str(e)[:200]})") from None


def _scan_json_objects(data: bytes, what: str) -> Iterator[tuple[int, dict]]:
    """``(byte offset, object)`` of every JSON object in ``data`` that is not inside another one found.

    The text is decoded as Latin-1 (one character per byte, so offsets stay exact) to find and parse
    candidates; a match is parsed again as UTF-8 for exact string values. Parsing stops at a NUL byte
    (never part of JSON text). Work is bounded: the characters examined by failed and successful parses
    may not exceed 4 times the input plus 64 MiB.
    """
    decoder = json.JSONDecoder()
    budget = 4 * len(data) + 64 * 1024 * 1024
    region: tuple[int, int, str] | None = None
    pos = 0
    while True:
        match = _JSON_OBJECT_START.search(data, pos)
        if match is None:
            return
        start = match.start()
        if region is None or not region[0] <= start < region[1]:
            end = data.find(b"\x00", start)
            end = len(data) if end == -1 else end
            region_start = data.rfind(b"\x00", 0, start) + 1
            region = (region_start, end, data[region_start:end].decode("latin-1"))
        region_start, region_end, text = region
        index = start - region_start
        try:
            value, stop = decoder.raw_decode(text, index)
        except RecursionError:
            raise CorruptArtifact(f"a JSON text in {what} nests too deeply to audit") from None
        except ValueError as e:
            failed_at = getattr(e, "pos", index)
            if str(getattr(e, "msg", "")).startswith("Unterminated string"):
                failed_at = len(text)  # the error names where the string starts; the scan went to the end
            budget -= max(failed_at - index, 1)
            pos = start + 1
        else:
            budget -= stop - index
            pos = region_start + stop
            try:
                value = json.loads(data[start:region_start + stop].decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                pass  # not UTF-8: Keras could not read it either; keep the Latin-1 reading
            if isinstance(value, dict):
                yield start, value
        if budget < 0:
            raise CorruptArtifact(f"{what} holds too many overlapping JSON fragments to audit in bounded time")


def _has_filtered_fractal_heap(data: bytes) -> bool:
    return _HDF5_FILTERED_HEAP.search(data) is not None


def _code_carriers(config: Any, where: str) -> list[str]:
    """Sentences for the code-carrying objects of one Keras config (iterative walk, nesting bounded)."""
    found: list[str] = []
    # stack entries: (value, depth, inside a Lambda layer already reported)
    stack: list[tuple[Any, int, bool]] = [(config, 0, False)]
    while stack:
        obj, depth, in_lambda = stack.pop()
        if depth > _MAX_JSON_NESTING:
            raise CorruptArtifact(f"the Keras config in {where} nests too deeply")
        if isinstance(obj, list):
            stack.extend((v, depth + 1, in_lambda) for v in reversed(obj))
            continue
        if not isinstance(obj, dict):
            continue
        class_name = obj.get("class_name")
        name = _layer_name(obj)
        label = f"'{name}'" if name else "(unnamed)"
        if class_name == "Lambda" and not in_lambda:
            found.append(f"Keras Lambda layer {label} in {where} runs Python code from the file{_lambda_detail(obj)}")
            in_lambda = True
        elif class_name == "__lambda__" and not in_lambda:
            found.append(f"a serialized Python lambda (class_name __lambda__) in {where} carries bytecode that "
                         "Keras runs when it deserializes the config")
        elif class_name in _OP_LAMBDA_CLASSES and not in_lambda:
            symbol = _op_lambda_symbol(obj)
            if symbol is None or _risky_tf_symbol(symbol):
                found.append(f"Keras {class_name} layer {label} in {where} calls TensorFlow API "
                             f"{'tf.' + symbol if symbol else 'named by a non-string'}, which is not plain tensor math")
        if not in_lambda:
            for key, value in obj.items():
                if isinstance(key, str) and key.endswith("_type") and value == "lambda":
                    found.append(f"{class_name or 'a config object'} {label} in {where} stores its "
                                 f"{key[:-len('_type')]} as Python bytecode")
            module = obj.get("module")
            if isinstance(module, str) and isinstance(class_name, str) \
                    and module.split(".")[0] not in _SAFE_MODULE_PACKAGES:
                found.append(f"{class_name} {label} in {where} names Python module {module!r}, which tf-keras "
                             "(and Keras before 3.9) import to rebuild it")
        stack.extend((v, depth + 1, in_lambda) for v in reversed(list(obj.values())))
    return found


def _lambda_detail(layer: dict) -> str:
    config = layer.get("config")
    if not isinstance(config, dict):
        config = {}
    function = config.get("function")
    if config.get("function_type") == "lambda" or isinstance(function, list) or (
            isinstance(function, dict) and function.get("class_name") == "__lambda__"):
        return " (marshalled bytecode)"
    if isinstance(function, (str, dict)):
        return " (a Python function named in the config)"
    return ""


def _op_lambda_symbol(layer: dict) -> str | None:
    config = layer.get("config")
    if not isinstance(config, dict):
        config = {}
    if layer.get("class_name") == "ClassMethod":  # calls cls_symbol.method_name
        symbol, method = config.get("cls_symbol"), config.get("method_name")
        return f"{symbol}.{method}" if isinstance(symbol, str) and isinstance(method, str) else None
    symbol = config.get("function")
    return symbol if isinstance(symbol, str) else None


def _risky_tf_symbol(symbol: str) -> bool:
    """Whether a ``TFOpLambda`` TensorFlow API name may touch files, Python, the process or the graph."""
    for prefix in ("compat.v1.", "compat.v2."):
        if symbol.startswith(prefix):
            symbol = symbol[len(prefix):]
    head, _, rest = symbol.partition(".")
    if rest:
        return head not in _SAFE_TF_NAMESPACES
    return bool(_RISKY_TF_TOP_LEVEL.search(symbol)) or symbol[:1].isupper()
