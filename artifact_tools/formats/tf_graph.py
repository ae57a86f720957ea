"""TensorFlow ops in a SavedModel that touch files, processes, the network or Python, and what runs them.

The audit reads ``saved_model.pb`` as data (:mod:`.protobuf`, no TensorFlow) and reports every such op that
something reaches when the model is loaded, served or used. Facts used, with their sources
(tensorflow/tensorflow unless said otherwise):

- Message layouts (field numbers checked against TensorFlow 2.21's generated descriptors):
  ``meta_graph.proto``: ``MetaGraphDef { GraphDef graph_def = 2; SaverDef saver_def = 3;
  map<string, CollectionDef> collection_def = 4; map<string, SignatureDef> signature_def = 5;
  repeated AssetFileDef asset_file_def = 6; SavedObjectGraph object_graph_def = 7; }``, ``CollectionDef {
  NodeList node_list = 1; BytesList bytes_list = 2; AnyList any_list = 5; }``, ``TensorInfo { string name = 1;
  CooSparse coo_sparse = 4 (names 1-3); CompositeTensor composite_tensor = 5 (components = 2); }``;
  ``saver.proto``: ``SaverDef { string filename_tensor_name = 1; string save_tensor_name = 2;
  string restore_op_name = 3; }``; ``graph.proto`` / ``function.proto`` / ``node_def.proto``:
  ``GraphDef { repeated NodeDef node = 1; FunctionDefLibrary library = 2; }``, ``FunctionDef { OpDef signature
  = 1; repeated NodeDef node_def = 3; }``, ``OpDef { string name = 1; repeated ArgDef input_arg = 2; }``,
  ``NodeDef { string name = 1; string op = 2; repeated string input = 3; map<string, AttrValue> attr = 5; }``;
  ``attr_value.proto``: ``AttrValue { ListValue list = 1; bytes s = 2; TensorProto tensor = 8;
  NameAttrList func = 10; }``, ``ListValue { repeated bytes s = 2; repeated NameAttrList func = 9; }``,
  ``NameAttrList { string name = 1; map<string, AttrValue> attr = 2; }``; ``tensor.proto``: ``TensorProto {
  repeated bytes string_val = 8; }``; ``variable.proto``: ``VariableDef { string initializer_name = 2; }``;
  ``saved_object_graph.proto``: ``SavedObjectGraph { repeated SavedObject nodes = 1;
  map<string, SavedConcreteFunction> concrete_functions = 2; }``, ``SavedObject { repeated ObjectReference
  children = 1; SavedAsset asset = 5; SavedFunction function = 6; SavedBareConcreteFunction
  bare_concrete_function = 8; SavedResource resource = 10; map<string, SaveableObject> saveable_objects = 11;
  repeated ObjectReference dependencies = 15; }``, ``ObjectReference { int32 node_id = 1; string local_name
  = 2; }``, ``SavedFunction { repeated string concrete_functions = 1; }``, ``SavedBareConcreteFunction {
  string concrete_function_name = 1; }``, ``SaveableObject { int32 save_function = 2; int32 restore_function
  = 3; }``, ``SavedConcreteFunction { repeated int32 bound_inputs = 2; }``.
- Node inputs are ``name``, ``name:k`` or ``^name`` (control input) in a graph, and ``arg``,
  ``node:output:k`` or ``^node`` inside a function body. A node whose ``op`` names a library function calls
  it; so does every ``func`` / ``list(func)`` attr (``PartitionedCall``/``StatefulPartitionedCall`` ``f``,
  ``If``/``While``/``Case`` branches, dataset ``map_func``...). The audit follows both, generically.
- What runs when (``python/saved_model/loader_impl.py``, ``load_v1_in_v2.py``, ``load.py``; TF Serving's
  C++ ``cc/saved_model/loader.cc`` does the same for graphs): the saver's ``restore_op_name`` runs on load;
  the init op runs on load (``get_init_op``: the ``__saved_model_init_op`` signature, else the
  ``saved_model_main_op`` collection, else ``legacy_init_op``); TF 2 loading a TF 1 model without an init op
  runs ``Scaffold.default_local_init_op`` (local variable initializers and the ``table_initializer``
  collection); TF 2 ``load`` calls every restored resource's ``_initialize`` (and ``_create_resource``;
  ``_destroy_resource`` runs when it is released) and the ``restore_function`` of every saveable object.
  Signatures run on every request; every function of the object graph can be called after loading.
  ``Session.run`` runs only the ancestors of what it fetches, so in the top-level graph only ancestors
  (data and control inputs) of a root are reached; a called function body is taken as run whole (TF 2 runs
  every stateful op of a function body through its control outputs).
- Checkpoint ops are expected where TensorFlow puts them: ``SaveV2``/``MergeV2Checkpoints`` (and TF 1
  ``Save``/``SaveSlices``) under the saver's ``save_tensor_name`` or a saveable's ``save_function``, and
  ``RestoreV2`` (``Restore``/``RestoreSlice``/``DTensorRestoreV2``) under ``restore_op_name`` or a
  ``restore_function``. Anywhere else (a signature, an init op, a resource initializer) they are findings.
- ``InitializeTableFromTextFile(V2)`` (inputs ``table_handle``, ``filename``) reading one of the model's
  own assets is how vocabulary tables load, so it is not a finding when its ``filename`` comes from an asset:
  in a graph a tensor named by ``asset_file_def`` / the ``saved_model_assets`` collection (TF 1 feeds the
  asset's real path there), possibly through ``Identity`` or a variable assigned from it (TF 2 graphs); inside
  a function an argument that every caller feeds from an asset, or that the object graph binds to a
  ``SavedAsset`` (captured inputs are a concrete function's last arguments, in ``bound_inputs`` order). A
  constant or computed path is a finding (the table's contents can be returned by a signature).
- Ops with an attribute deciding whether they touch files: ``PrintV2`` writes a file only when its
  ``output_stream`` starts with ``file://`` (``core/kernels/logging_ops.cc``); ``DecodeProtoV2`` and
  ``EncodeProto`` read a descriptor file unless ``descriptor_source`` is ``local://`` or starts with
  ``bytes://`` (``core/util/proto/descriptors.cc``); ``FixedUnigramCandidateSampler`` reads ``vocab_file``
  when set; ``CacheDataset(V2)`` writes cache files unless its ``filename`` is a constant empty string.

TensorFlow has no graph op that loads a native library (``tf.load_op_library`` is Python); ops the
registry does not know make loading fail, so they are not audited. Ops in functions or graph parts that
nothing reaches never run and are not reported (TF 1 exports often keep an unused second saver).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from ..errors import CorruptArtifact
from .protobuf import Field, Message, decode, map_field, message

# --- which ops ------------------------------------------------------------------------------------------

RISKY_OPS: dict[str, str] = {
    # Derived from TensorFlow 2.21's op registry (all 1910 OpDefs, from TF_GetAllOpList): every op whose name
    # mentions files, readers/writers, records, summaries, checkpoints, snapshots, debug dumps, RPC, Python or
    # aborting, or that has an input/attr naming a file, path, pattern, prefix, directory, URL, stream,
    # address or serialized graph/module, reviewed one by one. tests/test_tf_audit.py re-derives that
    # candidate set from the installed TensorFlow and fails on any op that is neither here, in the
    # checkpoint/table/conditional sets below, nor in its reviewed-harmless list.
    "ReadFile": "reads a file",
    "WriteFile": "writes a file",
    "MatchingFiles": "lists files",
    "ImmutableConst": "maps a file into memory",
    "Skipgram": "reads a text file",
    "GenerateVocabRemapping": "reads vocabulary files",
    "LoadAndRemapMatrix": "reads a checkpoint file",
    "DumpTensor": "writes a file",
    "CalibrationStatisticsSaver": "writes a file",
    "FileSystemSetConfiguration": "reconfigures a file system",
    # TF 1 readers and queued file input
    "TextLineReader": "reads files", "TextLineReaderV2": "reads files",
    "TFRecordReader": "reads files", "TFRecordReaderV2": "reads files",
    "WholeFileReader": "reads files", "WholeFileReaderV2": "reads files",
    "FixedLengthRecordReader": "reads files", "FixedLengthRecordReaderV2": "reads files",
    "LMDBReader": "reads files", "RecordInput": "reads files",
    # tf.data sources and sinks
    "TFRecordDataset": "reads files", "TFRecordDatasetV2": "reads files",
    "TextLineDataset": "reads files",
    "FixedLengthRecordDataset": "reads files", "FixedLengthRecordDatasetV2": "reads files",
    "CSVDataset": "reads files", "CSVDatasetV2": "reads files", "ExperimentalCSVDataset": "reads files",
    "LMDBDataset": "reads files", "ExperimentalLMDBDataset": "reads files",
    "MatchingFilesDataset": "lists files", "ExperimentalMatchingFilesDataset": "lists files",
    "SqlDataset": "opens a database file", "ExperimentalSqlDataset": "opens a database file",
    "LoadDataset": "reads files",
    "SaveDataset": "writes files", "SaveDatasetV2": "writes files",
    "DatasetToTFRecord": "writes a file", "ExperimentalDatasetToTFRecord": "writes a file",
    "SnapshotDataset": "reads and writes files", "SnapshotDatasetV2": "reads and writes files",
    "SnapshotDatasetReader": "reads files", "SnapshotChunkDataset": "reads files",
    "ListSnapshotChunksDataset": "lists files",
    "DatasetFromGraph": "runs a serialized graph this audit cannot see into",
    "MlirPassthroughOp": "runs an MLIR module this audit cannot see into",
    # summaries written to disk or a database
    "CreateSummaryFileWriter": "opens a summary file", "CreateSummaryDbWriter": "opens a summary database",
    "WriteSummary": "writes a summary", "WriteScalarSummary": "writes a summary",
    "WriteHistogramSummary": "writes a summary", "WriteImageSummary": "writes a summary",
    "WriteAudioSummary": "writes a summary", "WriteGraphSummary": "writes a summary",
    "WriteRawProtoSummary": "writes a summary", "ImportEvent": "writes a summary",
    # debugger dumps (file:// or grpc:// debug URLs)
    "DebugIdentity": "dumps tensors to debug URLs", "DebugIdentityV2": "dumps tensors to debug URLs",
    "DebugIdentityV3": "dumps tensors to debug URLs", "DebugNanCount": "dumps tensors to debug URLs",
    "DebugNumericSummary": "dumps tensors to debug URLs",
    # Python, the process, the network
    "PyFunc": "calls back into Python", "PyFuncStateless": "calls back into Python",
    "EagerPyFunc": "calls back into Python",
    "Abort": "terminates the process",
    "RemoteCall": "runs a function on another task",
    "RpcClient": "opens a network connection", "RpcServer": "opens a network server",
    "RpcServerStart": "starts a network server", "RpcServerRegister": "serves a function over the network",
    "RpcCall": "calls over the network",
    "DataServiceDataset": "reads from the network", "DataServiceDatasetV2": "reads from the network",
    "DataServiceDatasetV3": "reads from the network", "DataServiceDatasetV4": "reads from the network",
    "RegisterDataset": "sends a dataset over the network", "RegisterDatasetV2": "sends a dataset over the network",
    "DistributedSave": "writes files through the network",
}
"""Op type -> what it does; reported wherever something reaches it."""

CHECKPOINT_SAVE_OPS = {"SaveV2": "writes a checkpoint", "Save": "writes a checkpoint",
                       "SaveSlices": "writes a checkpoint", "MergeV2Checkpoints": "writes and deletes checkpoint files"}
"""Expected under the saver's save tensor and saveables' save functions; findings anywhere else."""

CHECKPOINT_RESTORE_OPS = {"RestoreV2": "reads a checkpoint", "Restore": "reads a checkpoint",
                          "RestoreSlice": "reads a checkpoint", "DTensorRestoreV2": "reads a checkpoint"}
"""Expected under the saver's restore op and saveables' restore functions; findings anywhere else."""

TABLE_FROM_FILE_OPS = {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"}
"""Fill a lookup table from a text file: fine from an asset, a finding from any other path."""

CONDITIONAL_OPS = {"PrintV2", "DecodeProtoV2", "EncodeProto", "FixedUnigramCandidateSampler", "CacheDataset",
                   "CacheDatasetV2"}
"""Touch files only with some attribute/input values (see the module docstring)."""

_CALL_OPS = {"PartitionedCall", "StatefulPartitionedCall"}
_PASS_THROUGH_OPS = {"Identity", "Snapshot", "StopGradient", "PlaceholderWithDefault"}
_MAX_ORIGIN_DEPTH = 32
_MAX_ROOTS_NAMED = 4
_WORK_PER_NODE, _WORK_BASE = 32, 1_000_000

# --- the project's own schema: only the fields read here -------------------------------------------------

_TENSOR = Message("TensorProto", {8: Field("string_val", "bytes", repeated=True)})
_NAME_ATTR_FIELDS: dict = {1: Field("name", "string")}
_NAME_ATTR_LIST = Message("NameAttrList", _NAME_ATTR_FIELDS)
_LIST_VALUE = Message("AttrValue.ListValue", {2: Field("s", "bytes", repeated=True),
                                              9: message("func", _NAME_ATTR_LIST, repeated=True)})
_ATTR_VALUE = Message("AttrValue", {1: message("list", _LIST_VALUE), 2: Field("s", "bytes"),
                                    8: message("tensor", _TENSOR), 10: message("func", _NAME_ATTR_LIST)})
_NAME_ATTR_FIELDS[2] = map_field("attr", "string", _ATTR_VALUE)  # recursive: NameAttrList.attr holds AttrValues
# NodeDef attrs stay raw bytes, decoded only when needed (func attrs, a few named ones): a Keras SavedModel holds
# ~10 small AttrValue messages per node, and decoding them all would triple the audit's time.
_NODE_DEF = Message("NodeDef", {1: Field("name", "string"), 2: Field("op", "string"),
                                3: Field("input", "string", repeated=True), 5: map_field("attr", "string", "bytes")})
_FUNC_TAGS = (bytes([10 << 3 | 2]), bytes([9 << 3 | 2]))
"""Tags of ``AttrValue.func`` and ``ListValue.func``: an attr whose bytes hold neither calls no function."""
_ARG_DEF = Message("OpDef.ArgDef", {1: Field("name", "string")})
_OP_DEF = Message("OpDef", {1: Field("name", "string"), 2: message("input_arg", _ARG_DEF, repeated=True)})
_FUNCTION_DEF = Message(
    "FunctionDef", {1: message("signature", _OP_DEF), 3: message("node_def", _NODE_DEF, repeated=True)}
)
_LIBRARY = Message("FunctionDefLibrary", {1: message("function", _FUNCTION_DEF, repeated=True)})
_GRAPH_DEF = Message("GraphDef", {1: message("node", _NODE_DEF, repeated=True), 2: message("library", _LIBRARY)})
_SAVER_DEF = Message("SaverDef", {1: Field("filename_tensor_name", "string"), 2: Field("save_tensor_name", "string"),
                                  3: Field("restore_op_name", "string")})
_ANY = Message("google.protobuf.Any", {1: Field("type_url", "string"), 2: Field("value", "bytes")})
_COLLECTION_DEF = Message("CollectionDef", {
    1: message("node_list", Message("NodeList", {1: Field("value", "string", repeated=True)})),
    2: message("bytes_list", Message("BytesList", {1: Field("value", "bytes", repeated=True)})),
    5: message("any_list", Message("AnyList", {1: message("value", _ANY, repeated=True)})),
})
_COO_SPARSE = Message(
    "CooSparse", {1: Field("values", "string"), 2: Field("indices", "string"), 3: Field("dense_shape", "string")}
)
_TENSOR_INFO_FIELDS: dict = {1: Field("name", "string"), 4: message("coo_sparse", _COO_SPARSE)}
_TENSOR_INFO = Message("TensorInfo", _TENSOR_INFO_FIELDS)
_TENSOR_INFO_FIELDS[5] = message(
    "composite_tensor", Message("CompositeTensor", {2: message("components", _TENSOR_INFO, repeated=True)})
)
_SIGNATURE_DEF = Message("SignatureDef", {1: map_field("inputs", "string", _TENSOR_INFO),
                                          2: map_field("outputs", "string", _TENSOR_INFO)})
_ASSET_FILE_DEF = Message("AssetFileDef", {1: message("tensor_info", _TENSOR_INFO), 2: Field("filename", "string")})
_VARIABLE_DEF = Message("VariableDef", {2: Field("initializer_name", "string")})
_OBJECT_REFERENCE = Message("ObjectReference", {1: Field("node_id", "int32"), 2: Field("local_name", "string")})
_SAVED_OBJECT = Message("SavedObject", {
    1: message("children", _OBJECT_REFERENCE, repeated=True),
    15: message("dependencies", _OBJECT_REFERENCE, repeated=True),
    5: Field("asset", "length"),
    6: message("function", Message("SavedFunction", {1: Field("concrete_functions", "string", repeated=True)})),
    8: message("bare_concrete_function",
               Message("SavedBareConcreteFunction", {1: Field("concrete_function_name", "string")})),
    10: Field("resource", "length"),
    11: map_field("saveable_objects", "string", Message("SaveableObject", {2: Field("save_function", "int32"),
                                                                           3: Field("restore_function", "int32")})),
})
_SAVED_OBJECT_GRAPH = Message("SavedObjectGraph", {
    1: message("nodes", _SAVED_OBJECT, repeated=True),
    2: map_field("concrete_functions", "string",
                 Message("SavedConcreteFunction", {2: Field("bound_inputs", "int32", repeated=True)})),
})
_META_GRAPH_DEF = Message("MetaGraphDef", {
    2: message("graph_def", _GRAPH_DEF),
    3: message("saver_def", _SAVER_DEF),
    4: map_field("collection_def", "string", _COLLECTION_DEF),
    5: map_field("signature_def", "string", _SIGNATURE_DEF),
    6: message("asset_file_def", _ASSET_FILE_DEF, repeated=True),
    7: message("object_graph_def", _SAVED_OBJECT_GRAPH),
})
_SAVED_MODEL = Message("SavedModel", {2: message("meta_graphs", _META_GRAPH_DEF, repeated=True)})

# constants of tensorflow/python/saved_model/constants.py and framework/ops.py GraphKeys
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_TRAIN_OP_SIGNATURE = "__saved_model_train_op"
_INIT_OP_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "table_initializer")
_LOCAL_VARIABLES = "local_variables"
_ASSETS_COLLECTION = "saved_model_assets"

# root kinds: what starts running the code a root reaches
SERVE, LOAD, RESTORE, SAVE, CALL = "serve", "load", "restore", "save", "call"
GRAPH = ""  # scope name of the top-level graph (function names are never empty)


def audit(pb: bytes) -> list[str]:
    """One sentence per op in ``saved_model.pb`` that touches files, processes, the network or Python and that
    a signature, an init op, the checkpoint restore/save, a resource initializer or a saved function reaches.

    Raises :class:`CorruptArtifact` for a damaged or hostile protobuf (truncated, nested too deeply...).
    """
    decoded = decode(pb, _SAVED_MODEL, "saved_model.pb")
    meta_graphs = decoded.get("meta_graphs", [])
    if not meta_graphs:
        raise CorruptArtifact("saved_model.pb holds no meta graph, so it is not a usable SavedModel")
    findings: list[str] = []
    for index, mg in enumerate(meta_graphs):
        prefix = f"meta graph {index}: " if len(meta_graphs) > 1 else ""
        for sentence in _MetaGraphAudit(mg).findings():
            if prefix + sentence not in findings:
                findings.append(prefix + sentence)
    return findings


def _node_name(reference: str) -> str:
    """``^name`` / ``name:k`` / ``name:output:k`` -> ``name``."""
    return reference.lstrip("^").split(":", 1)[0]


def _called_functions(node: dict, library: dict) -> Iterable[str]:
    """Names of library functions a node calls: its op, and every func / list(func) attr, nested ones too."""
    if node.get("op") in library:
        yield node["op"]
    stack = [_attr_value(raw) for raw in node.get("attr", {}).values() if any(tag in raw for tag in _FUNC_TAGS)]
    while stack:  # depth is bounded by the decoder's nesting limit
        value = stack.pop()
        funcs = ([value["func"]] if "func" in value else []) + value.get("list", {}).get("func", [])
        for func in funcs:
            if func.get("name") in library:
                yield func["name"]
            stack.extend(func.get("attr", {}).values())


def _attr_value(raw: bytes) -> dict:
    return decode(raw, _ATTR_VALUE, "saved_model.pb node attribute")


def _attr_s(node: dict, name: str) -> bytes | None:
    raw = node.get("attr", {}).get(name)
    return _attr_value(raw).get("s", b"") if raw is not None else None


def _const_strings(node: dict) -> list[bytes]:
    raw = node.get("attr", {}).get("value")
    return _attr_value(raw).get("tensor", {}).get("string_val", []) if raw is not None else []


def _tensor_names(info: dict) -> list[str]:
    """Tensor names a ``TensorInfo`` refers to (dense, sparse parts, composite components)."""
    names, stack = [], [info]
    while stack:
        info = stack.pop()
        if info.get("name"):
            names.append(info["name"])
        names.extend(v for v in info.get("coo_sparse", {}).values() if v)
        stack.extend(info.get("composite_tensor", {}).get("components", []))
    return names


class _MetaGraphAudit:
    def __init__(self, mg: dict):
        self.mg = mg
        graph = mg.get("graph_def", {})
        self.library: dict[str, dict] = {}
        for function in graph.get("library", {}).get("function", []):
            name = function.get("signature", {}).get("name", "")
            if name:
                self.library[name] = function
        self.nodes: dict[str, dict[str, dict]] = {GRAPH: {n.get("name", ""): n for n in graph.get("node", [])}}
        for name, function in self.library.items():
            self.nodes[name] = {n.get("name", ""): n for n in function.get("node_def", [])}
        self.calls: dict[str, set[str]] = {name: {f for n in nodes.values() for f in _called_functions(n, self.library)}
                                           for name, nodes in self.nodes.items() if name != GRAPH}
        self.objects: list[dict] = mg.get("object_graph_def", {}).get("nodes", [])
        self.bound_inputs = {name: cf.get("bound_inputs", []) for name, cf in
                             mg.get("object_graph_def", {}).get("concrete_functions", {}).items()}
        self.asset_tensors = self._asset_tensors()
        self._origin_memo: dict[tuple[str, str], frozenset[str]] = {}
        self._call_sites: dict[str, list[tuple[str, dict]]] | None = None
        self._graph_calls: dict[str, list[str]] = {}
        self._assignment_index: dict[str, dict[str, list[str]]] = {}
        self._reach_memo: dict[tuple[frozenset, frozenset], tuple[set[str], set[str]]] = {}
        # every root may reach the whole graph and library; real models have few roots over large graphs or many
        # (saved functions) over small call graphs, so this bounds a hostile file, not a real one
        size = sum(len(nodes) for nodes in self.nodes.values())
        self._work = _WORK_PER_NODE * size + _WORK_BASE

    # --- roots --------------------------------------------------------------------------------------------

    def roots(self) -> list[tuple[str, str, list[str], list[str]]]:
        """``(kind, description, graph node names, function names)`` of everything that starts code running."""
        roots: list[tuple[str, str, list[str], list[str]]] = []
        mg = self.mg
        for key, sig in sorted(mg.get("signature_def", {}).items()):
            names = [n for info in sig.get("outputs", {}).values() for n in _tensor_names(info)]
            if key == _INIT_OP_SIGNATURE:
                roots.append((LOAD, f"the init op (signature {key}), which runs when the model loads", names, []))
            elif key != _TRAIN_OP_SIGNATURE:  # the train op runs only when someone trains
                roots.append((SERVE, f"signature {key}", names, []))
        collections = mg.get("collection_def", {})
        for key in _INIT_OP_COLLECTIONS:
            names = collections.get(key, {}).get("node_list", {}).get("value", [])
            already = any(kind == LOAD and {_node_name(n) for n in names} == {_node_name(n) for n in known}
                          for kind, _, known, _ in roots)  # TF 2 writes its init op both ways
            if names and not already:
                roots.append((LOAD, f"the init op (collection {key}), which runs when the model loads", names, []))
        initializers = []
        for raw in collections.get(_LOCAL_VARIABLES, {}).get("bytes_list", {}).get("value", []):
            name = decode(raw, _VARIABLE_DEF, "saved_model.pb variable definition").get("initializer_name")
            if name:
                initializers.append(name)
        if initializers:
            roots.append((LOAD, "the local variable initializers, which run when the model loads", initializers, []))
        saver = mg.get("saver_def", {})
        if saver.get("restore_op_name"):
            roots.append((RESTORE, "the checkpoint restore op, which runs when the model loads",
                          [saver["restore_op_name"]], []))
        if saver.get("save_tensor_name"):
            roots.append((SAVE, "the checkpoint save op, which runs when the model is saved",
                          [saver["save_tensor_name"]], []))
        roots.extend(self._object_graph_roots())
        return roots

    def _object_graph_roots(self) -> list[tuple[str, str, list[str], list[str]]]:
        objects = self.objects
        if not objects:
            return []
        paths: dict[int, str] = {0: "root"}
        parents: dict[int, tuple[int, str]] = {}
        queue = deque([0])
        while queue:  # breadth first: each object is named by its shortest path from the root
            current = queue.popleft()
            for ref in objects[current].get("children", []) + objects[current].get("dependencies", []):
                child = ref.get("node_id", 0)
                if 0 <= child < len(objects) and child not in paths:
                    paths[child] = f"{paths[current]}.{ref.get('local_name', '')}"
                    parents[child] = (current, ref.get("local_name", ""))
                    queue.append(child)
        for index, obj in enumerate(objects):  # objects the root does not reach are loaded (and initialized) too
            for ref in obj.get("children", []) + obj.get("dependencies", []):
                child = ref.get("node_id", 0)
                if 0 <= child < len(objects) and child not in parents and child != 0:
                    parents[child] = (index, ref.get("local_name", ""))
        signature_maps = {ref.get("node_id", 0) for ref in objects[0].get("children", [])
                          if ref.get("local_name") == "signatures"}
        kinds: dict[int, tuple[str, str]] = {}
        for index, obj in enumerate(objects):
            for name, saveable in sorted(obj.get("saveable_objects", {}).items()):
                path = paths.get(index, f"object {index}")
                for field, kind, what in (("restore_function", RESTORE, "restore function"),
                                          ("save_function", SAVE, "save function")):
                    target = saveable.get(field)
                    if target is not None and 0 <= target < len(objects):
                        when = "the model loads" if kind == RESTORE else "the model is saved"
                        kinds.setdefault(
                            target, (kind, f"the checkpoint {what} of {path} ({name}), which runs when {when}"))
        roots: list[tuple[str, str, list[str], list[str]]] = []
        for index, obj in enumerate(objects):
            functions = list(obj.get("function", {}).get("concrete_functions", []))
            bare = obj.get("bare_concrete_function", {}).get("concrete_function_name")
            if bare:
                functions.append(bare)
            if not functions:
                continue
            path = paths.get(index, f"object {index} (not reachable from the root object)")
            parent, local = parents.get(index, (None, ""))
            if parent is not None and bare and local.startswith("trace_") and "function" in objects[parent]:
                path = paths.get(parent, path)  # a trace of a saved function: named like the function
                parent, local = parents.get(parent, (None, ""))
            if index in kinds:
                kind, description = kinds[index]
            elif parent is not None and "resource" in objects[parent] and local in ("_create_resource", "_initialize"):
                kind, description = LOAD, f"the resource initializer {path}, which runs when the model loads"
            elif parent is not None and "resource" in objects[parent] and local == "_destroy_resource":
                kind = LOAD
                description = f"the resource destructor {path}, which runs when the loaded model is released"
            elif parent in signature_maps:
                kind, description = SERVE, f"signature {local}"
            else:
                kind, description = CALL, f"the saved function {path}, callable after loading"
            roots.append((kind, description, [], functions))
        return roots

    # --- reach ---------------------------------------------------------------------------------------------

    def reach(self, graph_nodes: list[str], functions: list[str]) -> tuple[set[str], set[str]]:
        """Graph nodes (ancestors of ``graph_nodes``) and functions (called, transitively) a root reaches."""
        key = (frozenset(_node_name(n) for n in graph_nodes), frozenset(functions))
        if key not in self._reach_memo:  # TF 2 names its init op twice, signatures often share outputs
            self._reach_memo[key] = self._reach(graph_nodes, functions)
        return self._reach_memo[key]

    def _reach(self, graph_nodes: list[str], functions: list[str]) -> tuple[set[str], set[str]]:
        graph = self.nodes[GRAPH]
        seen_nodes: set[str] = set()
        todo = [_node_name(n) for n in graph_nodes]
        called = [f for f in functions if f in self.library]
        while todo:
            name = todo.pop()
            if name in seen_nodes or name not in graph:
                continue
            seen_nodes.add(name)
            node = graph[name]
            todo.extend(_node_name(i) for i in node.get("input", []))
            if name not in self._graph_calls:
                self._graph_calls[name] = list(_called_functions(node, self.library))
            called.extend(self._graph_calls[name])
        seen_functions: set[str] = set()
        while called:
            name = called.pop()
            if name not in seen_functions:
                seen_functions.add(name)
                called.extend(self.calls.get(name, ()))
        self._work -= len(seen_nodes) + len(seen_functions) + 1
        if self._work < 0:
            raise CorruptArtifact("saved_model.pb has too many signatures, initializers and functions over too large "
                                  "a graph to audit in bounded time")
        return seen_nodes, seen_functions

    def findings(self) -> list[str]:
        risky = {scope: [(name, reason) for name, node in nodes.items() if (reason := self._risk(scope, node))]
                 for scope, nodes in self.nodes.items()}
        risky = {scope: found for scope, found in risky.items() if found}
        if not risky:
            return []
        reached_by: dict[tuple[str, str], list[str]] = {}
        for kind, description, graph_nodes, functions in self.roots():
            nodes, called = self.reach(graph_nodes, functions)
            for scope, found in risky.items():
                if scope == GRAPH:
                    hits = [(name, reason) for name, reason in found if name in nodes]
                elif scope in called:
                    hits = found
                else:
                    continue
                for name, _reason in hits:
                    op = self.nodes[scope][name].get("op", "")
                    if (kind == SAVE and op in CHECKPOINT_SAVE_OPS) \
                            or (kind == RESTORE and op in CHECKPOINT_RESTORE_OPS):
                        continue
                    sources = reached_by.setdefault((scope, name), [])
                    if description not in sources:
                        sources.append(description)
        sentences = []
        for (scope, name), sources in reached_by.items():
            node = self.nodes[scope][name]
            reason = dict(risky[scope])[name]
            where = f"the graph (node {name})" if scope == GRAPH else f"function {scope} (node {name})"
            named = sources[:_MAX_ROOTS_NAMED]
            more = f" and {len(sources) - len(named)} more" if len(sources) > len(named) else ""
            sentences.append(f"op {node.get('op')} ({reason}) in {where} is reachable from {'; '.join(named)}{more}")
        return sentences

    # --- which nodes are risky -------------------------------------------------------------------------------

    def _risk(self, scope: str, node: dict) -> str | None:
        op = node.get("op", "")
        if op in RISKY_OPS:
            return RISKY_OPS[op]
        if op in CHECKPOINT_SAVE_OPS:
            return CHECKPOINT_SAVE_OPS[op]
        if op in CHECKPOINT_RESTORE_OPS:
            return CHECKPOINT_RESTORE_OPS[op]
        if op in TABLE_FROM_FILE_OPS:
            return self._table_risk(scope, node)
        if op == "PrintV2":
            stream = _attr_s(node, "output_stream") or b""
            return f"prints to {stream.decode('utf-8', 'replace')}" if stream.startswith(b"file://") else None
        if op in ("DecodeProtoV2", "EncodeProto"):
            source = _attr_s(node, "descriptor_source") or b"local://"
            return None if source == b"local://" or source.startswith(b"bytes://") else "reads a descriptor file"
        if op == "FixedUnigramCandidateSampler":
            return "reads a vocabulary file" if _attr_s(node, "vocab_file") else None
        if op in ("CacheDataset", "CacheDatasetV2"):
            inputs = [i for i in node.get("input", []) if not i.startswith("^")]
            if len(inputs) > 1 and self._constant(scope, inputs[1]) == [b""]:
                return None  # an in-memory cache
            return "writes cache files"
        return None

    def _constant(self, scope: str, reference: str) -> list[bytes] | None:
        node = self.nodes[scope].get(_node_name(reference))
        if node is None or node.get("op") != "Const":
            return None
        return _const_strings(node)

    def _table_risk(self, scope: str, node: dict) -> str | None:
        inputs = [i for i in node.get("input", []) if not i.startswith("^")]
        if len(inputs) < 2:
            return "reads a file into a lookup table"
        origins = self._origins(scope, inputs[1], 0)
        if origins <= {"asset"}:
            return None
        constants = sorted(o[len("const:"):] for o in origins if o.startswith("const:"))
        named = f" (path {', '.join(repr(c) for c in constants)})" if constants else ""
        return f"reads a file that is not one of the model's assets into a lookup table{named}"

    # --- where a string input comes from (for table initializers) ------------------------------------------

    def _asset_tensors(self) -> set[str]:
        infos = [d.get("tensor_info", {}) for d in self.mg.get("asset_file_def", [])]
        for item in self.mg.get("collection_def", {}).get(_ASSETS_COLLECTION, {}).get("any_list", {}).get("value", []):
            if item.get("type_url", "").endswith("/tensorflow.AssetFileDef"):
                asset = decode(item.get("value", b""), _ASSET_FILE_DEF, "saved_model.pb asset definition")
                infos.append(asset.get("tensor_info", {}))
        return {_node_name(n) for info in infos for n in _tensor_names(info)}

    def _origins(self, scope: str, reference: str, depth: int) -> frozenset[str]:
        """Where a string tensor comes from: ``asset``, ``const:<value>`` or ``other`` (anything unproven)."""
        key = (scope, reference)
        if key in self._origin_memo:
            return self._origin_memo[key]
        if depth > _MAX_ORIGIN_DEPTH:
            return frozenset({"other"})
        self._origin_memo[key] = frozenset({"other"})  # a cycle is unproven
        result = self._origins_uncached(scope, reference, depth + 1)
        self._origin_memo[key] = result
        return result

    def _origins_uncached(self, scope: str, reference: str, depth: int) -> frozenset[str]:
        name = _node_name(reference)
        nodes = self.nodes[scope]
        if scope != GRAPH and ":" not in reference and name not in nodes:
            return self._argument_origins(scope, name, depth)
        if scope == GRAPH and name in self.asset_tensors:
            return frozenset({"asset"})
        node = nodes.get(name)
        if node is None:
            return frozenset({"other"})
        op = node.get("op")
        inputs = [i for i in node.get("input", []) if not i.startswith("^")]
        if op == "Const":
            values = _const_strings(node)
            return frozenset({"const:" + v.decode("utf-8", "replace") for v in values} or {"other"})
        if op in _PASS_THROUGH_OPS and inputs:
            return self._origins(scope, inputs[0], depth)
        if op == "ReadVariableOp" and inputs:
            handle = _node_name(inputs[0])
            assigned = self._assignments(scope).get(handle, [])
            if handle in nodes and nodes[handle].get("op") == "VarHandleOp" and assigned:
                return frozenset().union(*(self._origins(scope, value, depth) for value in assigned))
        return frozenset({"other"})

    def _assignments(self, scope: str) -> dict[str, list[str]]:
        """Variable handle node -> the values ``AssignVariableOp`` nodes of ``scope`` assign to it."""
        if scope not in self._assignment_index:
            index: dict[str, list[str]] = {}
            for node in self.nodes[scope].values():
                inputs = node.get("input", [])
                if node.get("op") == "AssignVariableOp" and len(inputs) > 1:
                    index.setdefault(_node_name(inputs[0]), []).append(inputs[1])
            self._assignment_index[scope] = index
        return self._assignment_index[scope]

    def _argument_origins(self, function: str, arg: str, depth: int) -> frozenset[str]:
        args = [a.get("name", "") for a in self.library[function].get("signature", {}).get("input_arg", [])]
        if arg not in args:
            return frozenset({"other"})
        position = args.index(arg)
        origins: set[str] = set()
        for caller_scope, call in self.call_sites().get(function, []):
            inputs = [i for i in call.get("input", []) if not i.startswith("^")]
            if call.get("op") not in _CALL_OPS and call.get("op") != function or position >= len(inputs):
                origins.add("other")  # If/While/dataset callers: argument positions are not mapped here
            else:
                origins |= self._origins(caller_scope, inputs[position], depth)
        bound = self.bound_inputs.get(function)
        if bound is not None:  # called by the TF 2 loader with captured inputs last
            first_bound = len(args) - len(bound)
            if position >= first_bound:
                target = bound[position - first_bound]
                is_asset = 0 <= target < len(self.objects) and "asset" in self.objects[target]
                origins.add("asset" if is_asset else "other")
            else:
                origins.add("other")
        return frozenset(origins or {"other"})

    def call_sites(self) -> dict[str, list[tuple[str, dict]]]:
        if self._call_sites is None:
            sites: dict[str, list[tuple[str, dict]]] = {}
            for scope, nodes in self.nodes.items():
                for node in nodes.values():
                    for function in set(_called_functions(node, self.library)):
                        sites.setdefault(function, []).append((scope, node))
            self._call_sites = sites
        return self._call_sites
