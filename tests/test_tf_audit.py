"""Trust audit of TensorFlow SavedModels and Keras files, read as data (``savedmodel.audit_saved_model`` /
``audit_keras``, rules in ``formats/tf_graph.py``), checked against real TensorFlow, tf-keras and Keras 3.

Hostile models are built here with the frameworks' own APIs; every payload only writes a canary file inside
the test's temp folder, and building never runs it (checked). A fresh interpreter then loads them with
TensorFlow's / Keras' own loaders and the canaries appear: what the audit flags is what those loaders run.
Keras ``Lambda`` payloads only act when ``ARTIFACT_TOOLS_TEST_PAYLOAD`` is set (building a functional model
calls the function once), which only that interpreter does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact
from artifact_tools.formats import savedmodel, tf_graph

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

PAYLOAD_ENV = "ARTIFACT_TOOLS_TEST_PAYLOAD"
assert PAYLOAD_ENV not in os.environ, "the Keras payloads must stay inert while the test builds them"


def _quiet_subprocess(script: str, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------
# SavedModels, hostile and clean, built once per session
# ---------------------------------------------------------------------------------------------

_X = tf.TensorSpec([None], tf.float32, name="x")


class _WritesOnServe(tf.Module):
    def __init__(self, canary: str):
        super().__init__()
        self.canary = canary
        self.w = tf.Variable(2.0)

    @tf.function(input_signature=[_X])
    def serve(self, x):
        tf.io.write_file(self.canary, "payload")
        return {"y": x * self.w}


class _PrintsToFile(tf.Module):
    def __init__(self, canary: str):
        super().__init__()
        self.canary = canary

    @tf.function(input_signature=[_X])
    def serve(self, x):
        tf.print("leaked", x, output_stream="file://" + self.canary)
        return {"y": x + 1.0}


class _WritingResource(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer (run by tf.saved_model.load, never while saving) writes the canary."""

    def __init__(self, canary: str):
        self.canary = canary
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="audit_test_resource")

    def _initialize(self):
        tf.io.write_file(self.canary, "payload")
        return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)


class _WithResource(tf.Module):
    def __init__(self, resource):
        super().__init__()
        self.r = resource

    @tf.function(input_signature=[_X])
    def serve(self, x):
        return {"y": x + tf.raw_ops.ReadVariableOp(resource=self.r.resource_handle, dtype=tf.float32)}


class _WritingTable(tf.lookup.experimental.MutableHashTable):
    """A table whose checkpoint restore function (run by tf.saved_model.load) also writes the canary."""

    canary = ""

    def _restore_from_tensors(self, restored_tensors):
        with tf.control_dependencies([tf.io.write_file(self.canary, "payload")]):
            return super()._restore_from_tensors(restored_tensors)


class _WithTable(tf.Module):
    def __init__(self, table):
        super().__init__()
        self.t = table

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
    def serve(self, x):
        return {"y": self.t.lookup(x)}


class _ConstantPathTable(tf.saved_model.experimental.TrackableResource):
    """A table filled, on load, from a constant path that is not an asset of the model."""

    def __init__(self, path: str):
        self.path = path
        super().__init__()

    def _create_resource(self):
        return tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64, shared_name="audit_test_table")

    def _initialize(self):  # keys: whole lines (-2), values: line numbers (-1)
        return tf.raw_ops.InitializeTableFromTextFileV2(table_handle=self.resource_handle,
                                                        filename=tf.constant(self.path), key_index=-2, value_index=-1)

    def lookup(self, keys):
        return tf.raw_ops.LookupTableFindV2(table_handle=self.resource_handle, keys=keys,
                                            default_value=tf.constant(-1, tf.int64))


class _Clean(tf.Module):
    def __init__(self, vocab: str):
        super().__init__()
        self.w = tf.Variable([1.0, 2.0])
        init = tf.lookup.TextFileInitializer(vocab, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                             tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        self.table = tf.lookup.StaticHashTable(init, -1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
    def serve(self, x):
        tf.print("request", x)  # PrintV2 to stderr: logging, not a file
        return {"ids": self.table.lookup(x), "w": tf.reduce_sum(self.w)}


def _tf1_model(path: Path, canary: str, variant: str, vocab: Path) -> None:
    """A TF 1 SavedModelBuilder export; ``variant`` picks where the canary write hides (or none)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        w = tf.compat.v1.get_variable("w", initializer=2.0)
        y = tf.identity(x * w, name="y")
        outputs = {"y": y}
        write = tf.io.write_file(canary, "payload", name="payload") if canary else None
        kwargs: dict = {}
        if variant == "main_op":
            kwargs["main_op"] = tf.group(write, name="init_all")
        elif variant == "legacy_init_op":
            tf.compat.v1.add_to_collection("legacy_init_op", tf.group(write, name="legacy_init"))
        elif variant == "restore_op":
            saver = tf.compat.v1.train.Saver(sharded=True)
            restore = graph.get_operation_by_name(saver.saver_def.restore_op_name)
            saver.saver_def.restore_op_name = tf.group(restore, write, name="restore_and_write").name
            kwargs["saver"] = saver
        elif variant in ("table_asset", "table_constant"):
            init = tf.lookup.TextFileInitializer(str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                 tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
            table = tf.lookup.StaticHashTable(init, -1)
            label = tf.compat.v1.placeholder(tf.string, [None], name="label")
            outputs["id"] = tf.identity(table.lookup(label), name="id")
            if variant == "table_constant":  # the path stays a constant: not registered as an asset
                graph.clear_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS)
            kwargs["main_op"] = tf.compat.v1.tables_initializer()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            inputs = {"x": x, "label": label} if variant.startswith("table") else {"x": x}
            builder.add_meta_graph_and_variables(
                sess, ["serve"],
                signature_def_map={"serving_default": tf.compat.v1.saved_model.predict_signature_def(inputs, outputs)},
                assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
                **kwargs,
            )
            builder.save()


# name -> (what the loader must do to run the payload, op the audit must name, phrase naming what reaches it)
HOSTILE_SAVED_MODELS = {
    "tf2_signature_write": ("call", "WriteFile", "signature serving_default"),
    "tf2_signature_print_to_file": ("call", "PrintV2", "signature serving_default"),
    "tf2_resource_initializer": ("load", "WriteFile", "the resource initializer root.r._initialize"),
    "tf2_table_restore_function": ("load", "WriteFile", "the checkpoint restore function of root.t"),
    "tf1_main_op": ("load", "WriteFile", "the init op (collection saved_model_main_op)"),
    "tf1_legacy_init_op": ("load", "WriteFile", "the init op (collection legacy_init_op)"),
    "tf1_restore_op": ("load", "WriteFile", "the checkpoint restore op"),
}


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict:
    """{name: (SavedModel folder, canary path or None)} for the hostile and clean models."""
    root = tmp_path_factory.mktemp("audit_saved_models")
    canaries = root / "canaries"
    canaries.mkdir()
    vocab = root / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    secret = root / "secret.txt"
    secret.write_text("not an asset\n")
    out: dict = {}

    def canary(name: str) -> str:
        return str(canaries / name)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _WritesOnServe(canary("tf2_signature_write"))
        tf.saved_model.save(m, str(root / "tf2_signature_write"), signatures={"serving_default": m.serve})
        m = _PrintsToFile(canary("tf2_signature_print_to_file"))
        tf.saved_model.save(m, str(root / "tf2_signature_print_to_file"), signatures={"serving_default": m.serve})
        m = _WithResource(_WritingResource(canary("tf2_resource_initializer")))
        tf.saved_model.save(m, str(root / "tf2_resource_initializer"), signatures={"serving_default": m.serve})
        table = _WritingTable(tf.string, tf.float32, default_value=0.0)
        table.canary = canary("tf2_table_restore_function")
        m = _WithTable(table)
        tf.saved_model.save(m, str(root / "tf2_table_restore_function"), signatures={"serving_default": m.serve})
        for variant in ("main_op", "legacy_init_op", "restore_op"):
            _tf1_model(root / f"tf1_{variant}", canary(f"tf1_{variant}"), variant, vocab)
        # lookup tables filled on load from a file that is not one of the model's assets (flagged, not run here)
        m = _WithTable(_ConstantPathTable(str(secret)))
        tf.saved_model.save(m, str(root / "tf2_table_constant_path"), signatures={"serving_default": m.serve})
        _tf1_model(root / "tf1_table_constant", "", "table_constant", secret)
        # clean
        m = _Clean(str(vocab))
        tf.saved_model.save(m, str(root / "tf2_clean"), signatures={"serving_default": m.serve})
        _tf1_model(root / "tf1_table_asset", "", "table_asset", vocab)
        _tf1_model(root / "tf1_plain", "", "plain", vocab)
    for name in HOSTILE_SAVED_MODELS:
        out[name] = (root / name, Path(canary(name)))
    for name in ("tf2_table_constant_path", "tf1_table_constant", "tf2_clean", "tf1_table_asset", "tf1_plain"):
        out[name] = (root / name, None)
    out["secret"] = secret
    out["canaries"] = canaries
    return out


def _audit(folder: Path) -> list[str]:
    return savedmodel.audit_saved_model((folder / "saved_model.pb").read_bytes())


@pytest.mark.parametrize("name", sorted(HOSTILE_SAVED_MODELS))
def test_hostile_saved_model_is_flagged_by_op_and_by_what_reaches_it(saved_models, name):
    folder, canary = saved_models[name]
    assert not canary.exists(), "building the model must not run its payload"
    _, op, reached_from = HOSTILE_SAVED_MODELS[name]
    findings = _audit(folder)
    assert findings, name
    matching = [f for f in findings if f.startswith(f"op {op} ") and reached_from in f]
    assert matching, findings
    if op == "PrintV2":
        assert "file://" in matching[0]


def test_tensorflow_runs_every_flagged_payload(saved_models, tmp_path):
    """tf.saved_model.load (and one call of the serving signature where the payload serves) in a fresh
    interpreter writes every canary: the flagged ops are what TensorFlow itself runs."""
    jobs = {str(saved_models[n][0]): action for n, (action, _, _) in HOSTILE_SAVED_MODELS.items()}
    for name in HOSTILE_SAVED_MODELS:
        assert not saved_models[name][1].exists()
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        for path, action in json.loads({json.dumps(json.dumps(jobs))}).items():
            loaded = tf.saved_model.load(path)
            if action == "call":
                loaded.signatures["serving_default"](x=tf.constant([1.0, 2.0]))
    """)
    result = _quiet_subprocess(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    written = {name for name in HOSTILE_SAVED_MODELS if saved_models[name][1].exists()}
    assert written == set(HOSTILE_SAVED_MODELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written where the loader ran
    for name in written:
        saved_models[name][1].unlink()


def test_table_filled_from_a_path_that_is_not_an_asset_is_flagged(saved_models):
    secret = str(saved_models["secret"])
    for name in ("tf2_table_constant_path", "tf1_table_constant"):
        findings = _audit(saved_models[name][0])
        assert len(findings) == 1, findings
        assert findings[0].startswith("op InitializeTableFromTextFileV2 ")
        assert repr(secret) in findings[0]
        assert "which runs when the model loads" in findings[0]


@pytest.mark.parametrize("name", ["tf2_clean", "tf1_table_asset", "tf1_plain"])
def test_clean_saved_models_have_no_findings(saved_models, name):
    """Checkpoint save/restore functions, vocabulary tables read from assets and tf.print to stderr are normal."""
    folder = saved_models[name][0]
    pb = (folder / "saved_model.pb").read_bytes()
    from tensorflow.core.protobuf import saved_model_pb2

    ops = {n.op for mg in saved_model_pb2.SavedModel.FromString(pb).meta_graphs
           for n in list(mg.graph_def.node) + [n for f in mg.graph_def.library.function for n in f.node_def]}
    assert {"SaveV2", "RestoreV2"} <= ops  # the normal checkpoint ops are there, and not findings
    if name != "tf1_plain":
        assert "InitializeTableFromTextFileV2" in ops
    assert _audit(folder) == []


def test_keras_savedmodel_with_many_functions_is_clean(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(4,)), tf_keras.layers.Dense(3),
                                 tf_keras.layers.Dropout(0.1), tf_keras.layers.Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    model.save(str(tmp_path / "k"), save_format="tf")
    assert _audit(tmp_path / "k") == []


def _corpus_saved_model(corpus: Path, name: str) -> bytes:
    folder = corpus / name
    direct = list(folder.rglob("saved_model.pb"))
    if direct:
        return direct[0].read_bytes()
    archive = next(folder.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("saved_model.pb"))
        return tar.extractfile(member).read()


@pytest.mark.parametrize("name", ["sdk-tf-iris", "sdk-tfs-test-model", "sdk-tfs-model-with-inference"])
def test_corpus_saved_models_have_no_findings(corpus, name):
    pb = _corpus_saved_model(corpus, name)
    assert savedmodel.audit_saved_model(pb) == []


def test_unreached_write_is_not_a_finding_but_the_same_op_reached_is(saved_models):
    """Reachability, checked by rewiring a real TF 1 model with TensorFlow's own protobuf classes: the canary
    write of tf1_main_op left out of every init op is reported by nothing; fetched by a signature, it is."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((saved_models["tf1_main_op"][0] / "saved_model.pb").read_bytes())
    mg = sm.meta_graphs[0]
    del mg.collection_def["saved_model_main_op"]
    assert savedmodel.audit_saved_model(sm.SerializeToString()) == []
    mg.signature_def["serving_default"].outputs["leak"].name = "payload:0"
    findings = savedmodel.audit_saved_model(sm.SerializeToString())
    assert findings == ["op WriteFile (writes a file) in the graph (node payload) is reachable from signature "
                        "serving_default"]


def test_checkpoint_ops_outside_the_saver_are_findings(saved_models):
    """SaveV2 is expected under the saver's save tensor; fetched by a signature it writes on every request."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel.FromString((saved_models["tf1_plain"][0] / "saved_model.pb").read_bytes())
    mg = sm.meta_graphs[0]
    save_node = next(n.name for n in mg.graph_def.node if n.op == "SaveV2")
    mg.signature_def["serving_default"].outputs["save"].name = save_node
    findings = savedmodel.audit_saved_model(sm.SerializeToString())
    assert len(findings) == 1 and findings[0].startswith("op SaveV2 (writes a checkpoint)")
    assert "signature serving_default" in findings[0] and "save op" not in findings[0]


def test_many_roots_over_a_long_graph_stay_bounded():
    """3000 signatures over a 3000-node chain ending in a WriteFile: sharing one output they cost one walk;
    each fetching its own node they would cost n**2/2 visits, which the work bound refuses quickly."""
    import time

    from tensorflow.core.protobuf import saved_model_pb2

    def chain(distinct_outputs: bool) -> bytes:
        sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
        mg = sm.meta_graphs.add()
        mg.graph_def.node.add(name="w", op="WriteFile")
        for i in range(3000):
            mg.graph_def.node.add(name=f"n{i}", op="Identity", input=[f"n{i - 1}" if i else "^w"])
            mg.signature_def[f"s{i}"].outputs["y"].name = f"n{i if distinct_outputs else 2999}:0"
        return sm.SerializeToString()

    started = time.perf_counter()
    findings = savedmodel.audit_saved_model(chain(False))
    assert len(findings) == 1 and findings[0].startswith("op WriteFile (writes a file) in the graph (node w)")
    assert findings[0].endswith("and 2996 more")
    with pytest.raises(CorruptArtifact, match="bounded time"):
        savedmodel.audit_saved_model(chain(True))
    assert time.perf_counter() - started < 20


# ---------------------------------------------------------------------------------------------
# the op lists against TensorFlow's own op registry
# ---------------------------------------------------------------------------------------------

_CANDIDATE_NAME = re.compile(r"File|Reader|Writer|Save|Restore|Checkpoint|PyFunc|Debug|Rpc|Record|TextLine|CSV|LMDB|"
                             r"Sql|Snapshot|Abort|Event|Dump|Remote|DataService|Library|Summary|Print|Cache")
_CANDIDATE_ARGS = {"filename", "filenames", "file_pattern", "pattern", "patterns", "prefix", "path", "directory",
                   "logdir", "log_dir_path", "file_name", "output_file_path", "vocab_file", "new_vocab_file",
                   "old_vocab_file", "ckpt_path", "memory_region_name", "descriptor_source", "debug_urls",
                   "output_stream", "address", "server_address", "target", "shard_dir", "chunk_file", "snapshot_path",
                   "destination_prefix", "checkpoint_prefixes", "writer", "data_source_name", "graph_def",
                   "mlir_module"}

REVIEWED_HARMLESS = {
    # regular expressions, not file patterns
    "RegexFullMatch", "RegexReplace", "StaticRegexFullMatch", "StaticRegexReplace",
    # string formatting of checkpoint file names
    "ShardedFilename", "ShardedFilespec",
    # summaries returned as serialized protos (only the Write*/Create* ops write them)
    "AudioSummary", "AudioSummaryV2", "HistogramSummary", "ImageSummary", "MergeSummary", "ScalarSummary",
    "TensorSummary", "TensorSummaryV2", "ExperimentalStatsAggregatorSummary", "StatsAggregatorSummary",
    # act on a summary writer, which only the flagged Create*SummaryWriter ops open
    "SummaryWriter", "FlushSummaryWriter", "CloseSummaryWriter", "StatsAggregatorSetSummaryWriter",
    # act on a reader handle, which only the flagged *Reader ops open; IdentityReader reads no file
    "ReaderRead", "ReaderReadV2", "ReaderReadUpTo", "ReaderReadUpToV2", "ReaderReset", "ReaderResetV2",
    "ReaderRestoreState", "ReaderRestoreStateV2", "ReaderSerializeState", "ReaderSerializeStateV2",
    "ReaderNumRecordsProduced", "ReaderNumRecordsProducedV2", "ReaderNumWorkUnitsCompleted",
    "ReaderNumWorkUnitsCompletedV2", "IdentityReader", "IdentityReaderV2",
    # in-process only: gradients, numeric checks, copies (the debug spec only gates gRPC copies), memory caches
    "DebugGradientIdentity", "DebugGradientRefIdentity", "DebugNumericSummaryV2", "Copy", "CopyHost", "Snapshot",
    "AnonymousMemoryCache", "DeleteMemoryCache", "DummyMemoryCache", "SnapshotNestedDatasetReader",
    # futures of the flagged RPC client
    "RpcCheckStatus", "RpcGetValue", "DeleteRpcFutureResource",
    # dataset options that name nothing on disk
    "SetStatsAggregatorDataset", "ExperimentalSetStatsAggregatorDataset",
    # stderr/log printing (tf.compat.v1.Print)
    "Print",
    # XLA custom calls name a compiled-in target
    "XlaCustomCall", "XlaCustomCallV2",
    # TPU compilation (no TPU serves these models)
    "_TPUCompileMlir",
    # tensors in, tensors out: CSV parsing of strings, boosted-trees statistics and debug protos
    "DecodeCSV", "BoostedTreesMakeStatsSummary", "BoostedTreesExampleDebugOutputs",
}


def _registry() -> dict:
    """Every registered OpDef (``TF_GetAllOpList``: also ops ``tf.raw_ops`` does not expose)."""
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session as c_api

    op_list = op_def_pb2.OpList.FromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    return {op.name: op for op in op_list.op}


def test_op_lists_cover_every_candidate_in_tensorflows_registry():
    """Re-derive the candidates (op names and input/attr names about files, streams, networks, Python) from the
    installed TensorFlow: each must be classified, and every op the audit names must exist."""
    registry = _registry()
    assert len(registry) > 1000
    classified = (set(tf_graph.RISKY_OPS) | set(tf_graph.CHECKPOINT_SAVE_OPS) | set(tf_graph.CHECKPOINT_RESTORE_OPS)
                  | tf_graph.TABLE_FROM_FILE_OPS | tf_graph.CONDITIONAL_OPS)
    candidates = {
        name for name, op in registry.items()
        if _CANDIDATE_NAME.search(name)
        or {a.name for a in list(op.input_arg) + list(op.attr)} & _CANDIDATE_ARGS
    }
    unreviewed = sorted(candidates - classified - REVIEWED_HARMLESS)
    assert unreviewed == [], unreviewed
    assert sorted(classified - set(registry)) == []
    assert sorted(REVIEWED_HARMLESS - set(registry)) == []
    assert not classified & REVIEWED_HARMLESS


# ---------------------------------------------------------------------------------------------
# damaged protobufs
# ---------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_deeply_nested_function_attrs_are_a_corrupt_artifact():
    """NameAttrList.attr holds AttrValues, which hold NameAttrLists...: 500 levels in the func attr of a node of a
    library function."""
    value = _len_field(1, b"f")  # NameAttrList.name
    for _ in range(500):
        attr_value = _len_field(10, value)  # AttrValue.func
        value = _len_field(2, _len_field(1, b"k") + _len_field(2, attr_value))  # NameAttrList.attr entry
    attr = _len_field(1, b"f") + _len_field(2, _len_field(10, value))  # NodeDef.attr entry "f": AttrValue.func
    node = _len_field(1, b"n") + _len_field(2, b"PartitionedCall") + _len_field(5, attr)
    function = _len_field(1, _len_field(1, b"fn")) + _len_field(3, node)  # FunctionDef: signature.name, node_def
    graph = _len_field(2, _len_field(1, function))  # GraphDef.library.function
    pb = b"\x08\x01" + _len_field(2, _len_field(2, graph))  # SavedModel.meta_graphs[0].graph_def
    with pytest.raises(CorruptArtifact, match="too deeply"):
        savedmodel.audit_saved_model(pb)


def test_truncated_and_empty_saved_models_are_corrupt_artifacts(saved_models):
    pb = (saved_models["tf2_resource_initializer"][0] / "saved_model.pb").read_bytes()
    for cut in (len(pb) - 1, len(pb) // 2, 7):
        with pytest.raises(CorruptArtifact):
            savedmodel.audit_saved_model(pb[:cut])
    with pytest.raises(CorruptArtifact):
        savedmodel.audit_saved_model(b"")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_saved_models_give_findings_or_one_corrupt_artifact(saved_models, data):
    pb = bytearray((saved_models["tf2_table_restore_function"][0] / "saved_model.pb").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pb[data.draw(st.integers(0, len(pb) - 1))] = data.draw(st.integers(0, 255))
    try:
        findings = savedmodel.audit_saved_model(bytes(pb))
    except CorruptArtifact as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert all(isinstance(f, str) for f in findings)


# ---------------------------------------------------------------------------------------------
# Keras files
# ---------------------------------------------------------------------------------------------


def _payload(canary: Path):
    """A function that touches ``canary`` only when the payload variable is set (inert while building). The path
    is a constant of the code object (Keras 3 rebuilds lambdas with list defaults, which Python rejects)."""
    return eval(f"lambda t: (__import__('os').environ.get({PAYLOAD_ENV!r}) "
                f"and open({str(canary)!r}, 'w').close(), t)[1]")


def _h5_attrs(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def _decoy_h5(source: Path, clean: Path, target: Path, layout: str) -> None:
    """Copy ``source`` (whose model_config has a Lambda) with the clean model's config added as a decoy.

    ``vlen-decoy-first``: the decoy is a variable-length attribute created before model_config, so it is the
    first JSON in the global heap; ``fixed``: model_config becomes a fixed-length string stored inline in the
    object header, so the global heap holds only the decoy; ``dense``: as ``fixed`` with enough attributes
    to move them all into dense (fractal heap) storage; ``userblock``: the HDF5 file starts after a 512-byte
    user block, and the decoy is a dataset attribute.
    """
    import h5py

    attrs = _h5_attrs(source)
    decoy = _h5_attrs(clean)["model_config"]
    kwargs = {"libver": "latest"} if layout == "dense" else {}
    if layout == "userblock":
        kwargs["userblock_size"] = 512
    with h5py.File(source, "r") as src, h5py.File(target, "w", **kwargs) as dst:
        src.copy(src["model_weights"], dst, "model_weights")
        if layout == "dense":
            for i in range(12):
                dst.attrs[f"padding_{i}"] = np.bytes_(f"attribute {i}")
        if layout == "userblock":
            dst["model_weights"].attrs["model_config"] = decoy
        else:
            dst.attrs["decoy_config"] = decoy
        for key, value in attrs.items():
            if key == "model_config" and layout in ("fixed", "dense"):
                dst.attrs[key] = np.bytes_(value.encode("utf-8"))
            else:
                dst.attrs[key] = value
    if layout == "userblock":
        with open(target, "r+b") as f:
            f.write(b"#!junk user block " + b"{" * 100)


HOSTILE_KERAS = {
    # name -> (layer or thing the finding must name)
    "k3_lambda.keras": "Keras Lambda layer 'lam'",
    "k3_lambda.h5": "Keras Lambda layer 'lam'",
    "tk_lambda.h5": "Keras Lambda layer 'lam'",
    "tk_lambda.keras": "Keras Lambda layer 'lam'",
    "decoy_vlen.h5": "Keras Lambda layer 'lam'",
    "decoy_fixed.h5": "Keras Lambda layer 'lam'",
    "decoy_dense.h5": "Keras Lambda layer 'lam'",
    "decoy_userblock.h5": "Keras Lambda layer 'lam'",
    "lambda_loss.h5": "serialized Python lambda (class_name __lambda__)",
    "tfoplambda_read_file.h5": "calls TensorFlow API tf.io.read_file",
    "module_os.keras": "names Python module 'os'",
}


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory) -> dict:
    import keras

    tf_keras = pytest.importorskip("tf_keras")
    root = tmp_path_factory.mktemp("audit_keras")
    canaries = root / "canaries"
    canaries.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in ("keras", "h5"):
            inputs = keras.Input((3,), name="features")
            hidden = keras.layers.Dense(2, name="dense")(inputs)
            lam = keras.layers.Lambda(_payload(canaries / f"k3_lambda.{fmt}"), name="lam")
            model = keras.Model(inputs, lam(hidden))
            model.save(str(root / f"k3_lambda.{fmt}"))
            inputs = tf_keras.Input((3,), name="features")
            hidden = tf_keras.layers.Dense(2, name="dense")(inputs)
            lam = tf_keras.layers.Lambda(_payload(canaries / f"tk_lambda.{fmt}"), name="lam")
            model = tf_keras.Model(inputs, lam(hidden))
            model.save(str(root / f"tk_lambda.{fmt}"))
            inputs = keras.Input((3,), name="features")
            model = keras.Model(inputs, keras.layers.Dense(2, name="dense", activation="relu")(inputs))
            model.compile(loss="mse", optimizer="adam")
            model.save(str(root / f"k3_clean.{fmt}"))
            inputs = tf_keras.Input((3,), name="features")
            hidden = tf_keras.layers.Dense(2, name="dense")(inputs)
            model = tf_keras.Model(inputs, tf.reshape(hidden + 1.0, [-1, 2]))  # TFOpLambda layers doing math
            model.compile(loss="mse", optimizer="adam")
            model.save(str(root / f"tk_clean.{fmt}"))
        for layout in ("vlen", "fixed", "dense", "userblock"):
            _decoy_h5(root / "k3_lambda.h5", root / "k3_clean.h5", root / f"decoy_{layout}.h5", layout)
    import h5py

    # a loss serialized as a Python lambda in training_config (bytecode need not be valid: never run here)
    (root / "lambda_loss.h5").write_bytes((root / "k3_clean.h5").read_bytes())
    with h5py.File(root / "lambda_loss.h5", "r+") as f:
        training = json.loads(f.attrs["training_config"])
        training["loss"] = {"class_name": "__lambda__", "config": {"value": ["YQ==", None, None]}}
        f.attrs["training_config"] = json.dumps(training)
    # a TFOpLambda switched from tf.reshape to tf.io.read_file
    (root / "tfoplambda_read_file.h5").write_bytes((root / "tk_clean.h5").read_bytes())
    with h5py.File(root / "tfoplambda_read_file.h5", "r+") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace('"function": "reshape"', '"function": "io.read_file"')
    # a layer whose config names a non-Keras module
    with zipfile.ZipFile(root / "k3_clean.keras") as src, zipfile.ZipFile(root / "module_os.keras", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                data = data.replace(b'"module": "keras.layers", "class_name": "Dense"',
                                    b'"module": "os", "class_name": "Dense"')
            dst.writestr(info, data)
    return {"root": root, "canaries": canaries}


@pytest.mark.parametrize("name", sorted(HOSTILE_KERAS))
def test_hostile_keras_file_is_flagged(keras_files, name):
    assert list(keras_files["canaries"].iterdir()) == [], "building must not run the Lambda payloads"
    findings = savedmodel.audit_keras((keras_files["root"] / name).read_bytes())
    assert any(HOSTILE_KERAS[name] in f for f in findings), findings


def test_decoys_hide_the_lambda_from_a_first_config_reader_but_not_from_the_audit(keras_files):
    """The decoys are real: Keras' model_config (read with h5py) has the Lambda, the first JSON config in the
    file's global heap is the clean decoy; the summary's lambda_layers (which the loader refuses on) and the
    audit both still see the Lambda."""
    for layout in ("vlen", "fixed", "dense", "userblock"):
        path = keras_files["root"] / f"decoy_{layout}.h5"
        assert _h5_attrs(path)["model_config"].count('"class_name": "Lambda"') == 1, layout
        data = path.read_bytes()
        first = savedmodel._hdf5_model_config(data[data.find(b"\x89HDF"):])
        assert first is not None and '"Lambda"' not in json.dumps(first), layout
        if layout != "userblock":  # inspection sniffs HDF5 by its signature at offset 0
            assert savedmodel.summarize_keras(data)["lambda_layers"] == ["lam"], layout


def test_fractal_heaps_hold_dense_attributes_and_a_filtered_one_is_reported(keras_files):
    """decoy_dense.h5 keeps its attributes in a fractal heap (``FRHP``) without filters, read like any other
    bytes; a heap header declaring I/O filters (compressed objects) is reported since nothing can be ruled out."""
    data = (keras_files["root"] / "decoy_dense.h5").read_bytes()
    assert b"FRHP" in data
    assert not any("fractal heap" in f for f in savedmodel.audit_keras(data))
    heap = b"FRHP" + b"\x00" + (8).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\x00" * 64
    findings = savedmodel.audit_keras(b"\x89HDF\r\n\x1a\n" + b"\x00" * 56 + heap)
    assert len(findings) == 1 and "compressed (filtered) fractal heap" in findings[0]


def test_keras_runs_the_flagged_lambdas(keras_files, tmp_path):
    """Keras 3 (safe_mode off, as with trust) and tf-keras load the files in a fresh interpreter with the payload
    switch on: each Lambda's canary appears — including the decoy file's, whose model_config Keras reads."""
    root, canaries = keras_files["root"], keras_files["canaries"]
    script = textwrap.dedent(f"""
        import keras, tf_keras
        keras.saving.load_model({str(root / "k3_lambda.keras")!r}, safe_mode=False)
        keras.saving.load_model({str(root / "decoy_fixed.h5")!r}, safe_mode=False)
        tf_keras.models.load_model({str(root / "tk_lambda.h5")!r})
    """)
    result = _quiet_subprocess(script, cwd=tmp_path, env_extra={PAYLOAD_ENV: "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    # decoy_fixed.h5 is a copy of k3_lambda.h5's model, so its Lambda writes k3_lambda.h5's canary
    assert sorted(p.name for p in canaries.iterdir()) == ["k3_lambda.h5", "k3_lambda.keras", "tk_lambda.h5"]
    for p in canaries.iterdir():
        p.unlink()


@pytest.mark.parametrize("name", ["k3_clean.keras", "k3_clean.h5", "tk_clean.h5", "tk_clean.keras"])
def test_clean_keras_files_have_no_findings(keras_files, name):
    assert savedmodel.audit_keras((keras_files["root"] / name).read_bytes()) == []


def test_tfoplambda_names_are_judged_against_tensorflows_api():
    """Every top-level TensorFlow API symbol implemented in I/O, logging, script (Python), library-loading,
    graph/module or RPC code is reported; plain math is not."""
    from tensorflow.python.util import tf_export

    risky_module = re.compile(r"io_ops|script_ops|logging_ops|lib\.io|load_library|summary|gfile|file_io|"
                              r"saved_model|checkpoint|profiler|lookup_ops|rpc|preemption|framework\.ops$|"
                              r"polymorphic_function|wrap_function|module\.module|eager\.context|tf_logging")
    missed = []
    for name, symbol in tf_export._NAME_TO_SYMBOL_MAPPING.items():
        bare = name.removeprefix("compat.v1.").removeprefix("compat.v2.")
        if "." not in bare and risky_module.search(getattr(symbol, "__module__", "") or ""):
            if not savedmodel._risky_tf_symbol(name):
                missed.append(name)
    assert missed == [], missed
    for safe in ("reshape", "concat", "__operators__.add", "__operators__.getitem", "math.add", "nn.relu",
                 "compat.v1.shape", "RaggedTensor.from_row_splits"):
        assert not savedmodel._risky_tf_symbol(safe), safe
    for risky in ("io.write_file", "compat.v1.py_func", "print", "load_op_library", "debugging.enable_check_numerics"):
        assert savedmodel._risky_tf_symbol(risky), risky


def test_damaged_keras_configs_are_corrupt_artifacts(tmp_path):
    def keras_zip(config: bytes) -> bytes:
        path = tmp_path / "m.keras"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("metadata.json", "{}")
            z.writestr("config.json", config)
        return path.read_bytes()

    with pytest.raises(CorruptArtifact, match="config.json is not valid JSON"):
        savedmodel.audit_keras(keras_zip(b'{"class_name": "Functional", "config": '))
    with pytest.raises(CorruptArtifact, match="too deeply"):
        savedmodel.audit_keras(keras_zip(b'{"a":' * 5000 + b"1" + b"}" * 5000))
    with pytest.raises(CorruptArtifact, match="too deeply"):  # parses, but deeper than the walk accepts
        savedmodel.audit_keras(b'{"a":' * 300 + b"1" + b"}" * 300)
    with pytest.raises(CorruptArtifact, match="too deeply"):  # an HDF5-like blob with an unbalanced deep JSON
        savedmodel.audit_keras(b"\x89HDF\r\n\x1a\n" + b"\x00" * 8 + b'{"a":' * 5000)


def test_keras_scan_stays_bounded_on_adversarial_fragments():
    """900 nested objects then 8 MiB without a closing quote: every start would rescan the tail."""
    import time

    data = b'{"a":' * 900 + b'"' + b"x" * (8 << 20)
    started = time.perf_counter()
    with pytest.raises(CorruptArtifact, match="overlapping JSON fragments"):
        savedmodel.audit_keras(data)
    assert time.perf_counter() - started < 10
    noise = np.random.default_rng(0).integers(0, 256, 16 << 20, dtype=np.uint8).tobytes()
    started = time.perf_counter()
    assert savedmodel.audit_keras(noise) == []
    assert time.perf_counter() - started < 10
