"""SavedModel / Keras readers and the protobuf decoder, checked against real TensorFlow and protobuf.

Models are built at test time (once per session) with TensorFlow 2, tf-keras and Keras 3; what our
pure readers decode is compared with what TensorFlow itself reports (``tf.saved_model.load``
signatures, the v1 loader's MetaGraphDef, ``saved_model_pb2`` parsing) and with the live models.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact, NotAnArtifact
from artifact_tools.formats import protobuf, savedmodel

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")


# ---------------------------------------------------------------------------------------------
# fixtures: tiny real models, built once per session
# ---------------------------------------------------------------------------------------------


class _Scorer(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[1.0], [2.0], [3.0]])

    @tf.function(
        input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features"), tf.TensorSpec([], tf.int64, name="k")],
        autograph=False,
    )
    def predict(self, features, k):
        return {"scores": tf.matmul(features, self.w), "k2": k * 2}

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="text"),
                                  tf.TensorSpec([0, 2], tf.float64, name="empty")], autograph=False)
    def echo(self, text, empty):
        return {"length": tf.strings.length(text), "total": tf.reduce_sum(empty)}


@pytest.fixture(scope="session")
def tf_models(tmp_path_factory) -> dict:
    """Paths of the SavedModels and Keras files, plus the Lambda layer names of the Keras models."""
    import keras
    tf_keras = pytest.importorskip("tf_keras")

    root = tmp_path_factory.mktemp("tf_models")
    out: dict = {}

    scorer = _Scorer()
    tf.saved_model.save(scorer, str(root / "module"), signatures={"predict_v2": scorer.predict, "echo": scorer.echo})
    out["module"] = root / "module"

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        label = tf.compat.v1.placeholder(tf.string, None, name="label")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant([[1.0], [2.0]]))
        y = tf.identity(tf.matmul(x, w), name="y")
        (root / "vocab.txt").write_text("a\nb\n")
        asset = tf.constant(str(root / "vocab.txt"), name="asset_path")
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(root / "tf1"))
            builder.add_meta_graph_and_variables(
                sess,
                ["serve", "gpu"],
                signature_def_map={
                    "serving_default": tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
                    "echo": tf.compat.v1.saved_model.predict_signature_def({"label": label},
                                                                           {"same": tf.identity(label)}),
                },
                assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
            )
            builder.save()
    out["tf1"] = root / "tf1"

    k2 = tf_keras.Sequential(
        [
            tf_keras.layers.InputLayer(input_shape=(4,)),
            tf_keras.layers.Dense(3),
            tf_keras.layers.Lambda(lambda t: t * 2.0, name="double"),
            tf_keras.layers.Dense(2),
        ]
    )
    k2.save(str(root / "k2_savedmodel"), save_format="tf")
    tf.saved_model.save(k2, str(root / "k2_tf_save"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": the legacy file is what we want
        k2.save(str(root / "k2.h5"))
    k2.save(str(root / "k2.keras"))
    out["k2_lambdas"] = [layer.name for layer in k2.layers if isinstance(layer, tf_keras.layers.Lambda)]
    out["k2_layers"] = [(layer.name, type(layer).__name__) for layer in k2.layers]

    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    scaled = keras.layers.Lambda(lambda t: t + 1.0, name="shift")(hidden)
    k3 = keras.Model(inputs, keras.layers.Dense(2, name="head")(scaled), name="functional_k3")
    k3.export(str(root / "k3_export"), verbose=False)
    k3.save(str(root / "k3.keras"))
    k3.save(str(root / "k3.h5"))
    out["k3_lambdas"] = [layer.name for layer in k3.layers if isinstance(layer, keras.layers.Lambda)]
    out["k3_layers"] = [(layer.name, type(layer).__name__) for layer in k3.layers]
    out["k3_version"] = keras.__version__
    out.update({name: root / name for name in ("k2_savedmodel", "k2_tf_save", "k2.h5", "k2.keras", "k3_export",
                                               "k3.keras", "k3.h5")})
    return out


def _read(directory: Path) -> tuple[bytes, bytes | None]:
    metadata = directory / "keras_metadata.pb"
    return (directory / "saved_model.pb").read_bytes(), metadata.read_bytes() if metadata.exists() else None


def _dtype_name(dtype) -> str:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)


def _spec(t) -> dict:
    shape = None if t.shape.rank is None else [-1 if d is None else d for d in t.shape.as_list()]
    return {"dtype": _dtype_name(t.dtype), "shape": shape}


def _signatures_from_tf_load(directory: Path) -> dict:
    """What TensorFlow's own loader reports: {key: {"inputs": {k: spec}, "outputs": {k: spec}}}."""
    loaded = tf.saved_model.load(str(directory))
    out = {}
    for key, fn in loaded.signatures.items():
        args, kwargs = fn.structured_input_signature
        assert not args
        out[key] = {
            "inputs": {k: _spec(v) for k, v in kwargs.items()},
            "outputs": {k: _spec(v) for k, v in fn.structured_outputs.items()},
        }
    return out


def _ours_without_names(summary_meta_graph: dict) -> dict:
    return {
        key: {side: {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in sig[side].items()}
              for side in ("inputs", "outputs")}
        for key, sig in summary_meta_graph["signatures"].items()
    }


def _expected_from_proto(pb: bytes) -> list[dict]:
    """The same facts parsed by TensorFlow's generated protobuf classes."""
    from tensorflow.core.protobuf import saved_model_pb2

    def info(t):
        if t.WhichOneof("encoding") == "name":
            name = t.name
        else:
            name = None
        return {"name": name, "dtype": _dtype_name(t.dtype), "shape": _proto_shape(t)}

    out = []
    for mg in saved_model_pb2.SavedModel.FromString(pb).meta_graphs:
        out.append(
            {
                "tags": list(mg.meta_info_def.tags),
                "tensorflow_version": mg.meta_info_def.tensorflow_version or None,
                "tensorflow_git_version": mg.meta_info_def.tensorflow_git_version or None,
                "op_count": len(mg.graph_def.node),
                "function_count": len(mg.graph_def.library.function),
                "tf1_style": not mg.HasField("object_graph_def"),
                "signatures": {
                    key: {
                        "method_name": sig.method_name,
                        "inputs": {k: info(v) for k, v in sig.inputs.items()},
                        "outputs": {k: info(v) for k, v in sig.outputs.items()},
                    }
                    for key, sig in mg.signature_def.items()
                    if not key.startswith("__saved_model_")
                },
            }
        )
    return out


def _comparable(meta_graph: dict) -> dict:
    return {k: v for k, v in meta_graph.items() if k != "assets"}


# ---------------------------------------------------------------------------------------------
# SavedModel summaries vs TensorFlow
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["module", "tf1", "k2_savedmodel", "k2_tf_save", "k3_export"])
def test_summary_matches_tensorflow(tf_models, name):
    pb, keras_metadata = _read(tf_models[name])
    summary = savedmodel.summarize(pb, keras_metadata)
    assert summary["saved_model_schema_version"] == 1
    assert [_comparable(m) for m in summary["meta_graphs"]] == _expected_from_proto(pb)
    assert _ours_without_names(summary["meta_graphs"][0]) == _signatures_from_tf_load(tf_models[name])
    assert savedmodel.is_saved_model(pb[:64])


def test_tf1_builder_model_is_flagged_tf1_with_its_asset(tf_models):
    pb, _ = _read(tf_models["tf1"])
    (meta_graph,) = savedmodel.summarize(pb)["meta_graphs"]
    assert meta_graph["tf1_style"] is True
    assert sorted(meta_graph["tags"]) == ["gpu", "serve"]
    assert meta_graph["assets"] == [p.name for p in (tf_models["tf1"] / "assets").iterdir()]
    assert meta_graph["signatures"]["echo"]["inputs"]["label"]["shape"] is None  # unknown rank


def test_tf2_module_signature_details(tf_models):
    pb, _ = _read(tf_models["module"])
    (meta_graph,) = savedmodel.summarize(pb)["meta_graphs"]
    assert meta_graph["tf1_style"] is False
    assert set(meta_graph["signatures"]) == set(tf.saved_model.load(str(tf_models["module"])).signatures)
    # the graph tensor names in the signature are the ones TensorFlow resolves
    assert meta_graph["signatures"]["predict_v2"]["inputs"]["features"]["name"].startswith("predict_v2_features")


def test_keras_lambda_layers_from_keras_metadata(tf_models):
    summary = savedmodel.summarize(*_read(tf_models["k2_savedmodel"]))
    assert summary["keras_lambda_layers"] == tf_models["k2_lambdas"] == ["double"]
    keras_info = summary["keras"]
    assert keras_info["source"] == "keras_metadata.pb"
    assert keras_info["model_class"] == "Sequential"
    layers = [(layer["name"], layer["class_name"]) for layer in keras_info["layers"]
              if layer["class_name"] != "InputLayer"]
    assert layers == tf_models["k2_layers"]


def test_keras_objects_without_saved_configs_leave_lambdas_unknown(tf_models):
    from tensorflow.core.protobuf import saved_model_pb2

    pb, keras_metadata = _read(tf_models["k2_tf_save"])
    assert keras_metadata is None
    nodes = saved_model_pb2.SavedModel.FromString(pb).meta_graphs[0].object_graph_def.nodes
    keras_objects = [n.user_object for n in nodes if n.user_object.identifier.startswith("_tf_keras_")]
    assert keras_objects and not any(o.metadata for o in keras_objects)  # the premise, per TensorFlow
    summary = savedmodel.summarize(pb)
    assert summary["keras_lambda_layers"] is None
    assert summary["keras"]["config_saved"] is False


def test_keras3_export_has_no_keras_metadata(tf_models):
    from tensorflow.core.protobuf import saved_model_pb2

    pb, _ = _read(tf_models["k3_export"])
    nodes = saved_model_pb2.SavedModel.FromString(pb).meta_graphs[0].object_graph_def.nodes
    assert not any(n.user_object.identifier.startswith("_tf_keras_") for n in nodes)
    summary = savedmodel.summarize(pb)
    assert "keras" not in summary and summary["keras_lambda_layers"] == []


@pytest.mark.parametrize("name", ["k2.keras", "k2.h5", "k3.keras", "k3.h5"])
def test_keras_files(tf_models, name):
    summary = savedmodel.summarize_keras(tf_models[name].read_bytes())
    family = name.split(".")[0]
    assert summary["format"] == ("keras-zip" if name.endswith(".keras") else "hdf5")
    assert summary["lambda_layers"] == tf_models[f"{family}_lambdas"]
    layers = [(layer["name"], layer["class_name"]) for layer in summary["layers"]
              if layer["class_name"] != "InputLayer"]
    assert layers == [layer for layer in tf_models[f"{family}_layers"] if layer[1] != "InputLayer"]
    if name == "k3.keras":
        assert summary["keras_version"] == tf_models["k3_version"]
        assert summary["model_class"] == "Functional"


def test_keras_h5_weights_only_has_no_config(tf_models, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "w.weights.h5"
    model.save_weights(str(path))
    summary = savedmodel.summarize_keras(path.read_bytes())
    assert summary["config_saved"] is False and summary["lambda_layers"] is None


def test_keras_file_errors(tmp_path):
    with pytest.raises(NotAnArtifact):
        savedmodel.summarize_keras(b"not a model at all")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", "{not json")
    with pytest.raises(CorruptArtifact):
        savedmodel.summarize_keras(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(NotAnArtifact):
        savedmodel.summarize_keras(buf.getvalue())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_keras_files_never_escape_artifact_errors(tf_models, data):
    blob = bytearray(tf_models[data.draw(st.sampled_from(["k3.keras", "k2.h5"]))].read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        summary = savedmodel.summarize_keras(bytes(blob))
    except (CorruptArtifact, NotAnArtifact):
        return
    assert summary["format"] in ("keras-zip", "hdf5")


# ---------------------------------------------------------------------------------------------
# the real corpus
# ---------------------------------------------------------------------------------------------


def _v1_loader_meta_graph(directory: Path):
    with tf.compat.v1.Session(graph=tf.Graph()) as sess:
        return tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(directory))


def _proto_shape(tensor_info):
    """TF 1.0 wrote no ``tensor_shape`` at all: that is an unrecorded (unknown) shape, not a scalar."""
    if not tensor_info.HasField("tensor_shape") or tensor_info.tensor_shape.unknown_rank:
        return None
    return [d.size for d in tensor_info.tensor_shape.dim]


def _proto_signatures(meta_graph_def) -> dict:
    return {
        key: {
            side: {k: {"name": v.name, "dtype": _dtype_name(v.dtype), "shape": _proto_shape(v)}
                   for k, v in getattr(sig, side).items()}
            for side in ("inputs", "outputs")
        }
        for key, sig in meta_graph_def.signature_def.items()
    }


def test_corpus_tfs_test_model_tarball(corpus, tmp_path):
    with tarfile.open(corpus / "sdk-tfs-test-model" / "tensorflow-serving-test-model.tar.gz") as tar:
        pb = tar.extractfile("tfs-test-model/00000123/saved_model.pb").read()
        asset_names = [Path(m.name).name for m in tar.getmembers() if m.isfile() and "/assets/" in m.name]
        tar.extractall(tmp_path, filter="data")
    assert savedmodel.is_saved_model(pb[:64])
    (meta_graph,) = savedmodel.summarize(pb)["meta_graphs"]
    expected = _v1_loader_meta_graph(tmp_path / "tfs-test-model" / "00000123")
    ours = {k: {side: v[side] for side in ("inputs", "outputs")} for k, v in meta_graph["signatures"].items()}
    assert ours == _proto_signatures(expected)
    assert meta_graph["tags"] == list(expected.meta_info_def.tags)
    assert meta_graph["tensorflow_version"] == expected.meta_info_def.tensorflow_version
    assert meta_graph["op_count"] == len(expected.graph_def.node)
    assert meta_graph["tf1_style"] is True
    assert meta_graph["assets"] == asset_names


def test_corpus_tfs_model_directory(corpus):
    directory = corpus / "sdk-tfs-model-with-inference" / "00000123"
    pb = (directory / "saved_model.pb").read_bytes()
    (meta_graph,) = savedmodel.summarize(pb)["meta_graphs"]
    expected = _v1_loader_meta_graph(directory)
    ours = {k: {side: v[side] for side in ("inputs", "outputs")} for k, v in meta_graph["signatures"].items()}
    assert ours == _proto_signatures(expected)
    assert meta_graph["assets"] == sorted(p.name for p in (directory / "assets").iterdir())


def test_corpus_tf_iris_estimator_export(corpus, tmp_path):
    with tarfile.open(corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        flagged = sorted(m.name for m in members if savedmodel.is_saved_model(tar.extractfile(m).read(64)))
        tar.extractall(tmp_path, filter="data")
    assert flagged == [m.name for m in members
                       if m.name.startswith("export/Servo/") and m.name.endswith("/saved_model.pb")]
    export = tmp_path / Path(flagged[0]).parent
    pb = (export / "saved_model.pb").read_bytes()
    summary = savedmodel.summarize(pb)
    assert [_comparable(m) for m in summary["meta_graphs"]] == _expected_from_proto(pb)
    assert _ours_without_names(summary["meta_graphs"][0]) == _signatures_from_tf_load(export)
    assert summary["meta_graphs"][0]["tf1_style"] is True


def test_is_saved_model_rejects_other_protobufs(tf_models, tmp_path):
    from tensorflow.core.framework import graph_pb2

    with tf.Graph().as_default() as g:
        tf.constant(1.0, name="c")
        graph_def = g.as_graph_def()
    assert isinstance(graph_def, graph_pb2.GraphDef)
    assert not savedmodel.is_saved_model(graph_def.SerializeToString())
    index = next((tf_models["module"] / "variables").glob("*.index")).read_bytes()
    assert not savedmodel.is_saved_model(index)
    assert not savedmodel.is_saved_model((tf_models["module"] / "fingerprint.pb").read_bytes())
    assert not savedmodel.is_saved_model(b"")
    assert not savedmodel.is_saved_model(b"\x08\x01\x12")


# ---------------------------------------------------------------------------------------------
# robustness
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def module_pb(tf_models) -> bytes:
    return (tf_models["module"] / "saved_model.pb").read_bytes()


def test_truncated_saved_model_raises_corrupt(module_pb):
    for cut in (1, 7, len(module_pb) // 2):
        with pytest.raises(CorruptArtifact):
            savedmodel.summarize(module_pb[:-cut])
    with pytest.raises(NotAnArtifact):
        savedmodel.summarize(b"")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_saved_model_never_escapes_corrupt_artifact(module_pb, data):
    pb = bytearray(module_pb)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(pb) - 1))
        pb[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(pb)))
    try:
        summary = savedmodel.summarize(bytes(pb[:cut]))
    except (CorruptArtifact, NotAnArtifact):
        return
    assert isinstance(summary["meta_graphs"], list)


def test_deep_nesting_is_refused():
    nested = b""
    for _ in range(200):
        nested = bytes([0x0A]) + _varint(len(nested)) + nested
    schema = protobuf.Message("Loop")
    schema.fields[1] = protobuf.message("child", schema)
    with pytest.raises(CorruptArtifact):
        protobuf.decode(nested, schema)


# ---------------------------------------------------------------------------------------------
# the protobuf decoder vs Google's protobuf runtime
# ---------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@pytest.fixture(scope="session")
def all_types_class():
    """A message class made by Google's protobuf runtime from a descriptor holding every scalar type."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="artifact_tools_test.proto", package="att", syntax="proto3")
    inner = fdp.message_type.add(name="Inner")
    inner.field.add(name="s", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=1)
    msg = fdp.message_type.add(name="All")
    t = descriptor_pb2.FieldDescriptorProto
    scalars = ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "fixed32", "fixed64",
               "sfixed32", "sfixed64", "float", "double", "string", "bytes"]
    for i, kind in enumerate(scalars, start=1):
        msg.field.add(name=kind, number=i, type=getattr(t, f"TYPE_{kind.upper()}"), label=t.LABEL_OPTIONAL)
    msg.field.add(name="packed_sint64", number=20, type=t.TYPE_SINT64, label=t.LABEL_REPEATED)
    msg.field.add(name="packed_double", number=21, type=t.TYPE_DOUBLE, label=t.LABEL_REPEATED)
    unpacked = msg.field.add(name="unpacked_int32", number=22, type=t.TYPE_INT32, label=t.LABEL_REPEATED)
    unpacked.options.packed = False
    msg.field.add(name="inner", number=23, type=t.TYPE_MESSAGE, type_name=".att.Inner", label=t.LABEL_REPEATED)
    entry = msg.nested_type.add(name="MEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=t.TYPE_STRING, label=t.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=t.TYPE_INT64, label=t.LABEL_OPTIONAL)
    msg.field.add(name="m", number=24, type=t.TYPE_MESSAGE, type_name=".att.All.MEntry", label=t.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("att.All")), scalars


def _our_schema(scalars: list[str]) -> protobuf.Message:
    fields = {i: protobuf.Field(kind, kind) for i, kind in enumerate(scalars, start=1)}
    fields[20] = protobuf.Field("packed_sint64", "sint64", repeated=True)
    fields[21] = protobuf.Field("packed_double", "double", repeated=True)
    fields[22] = protobuf.Field("unpacked_int32", "int32", repeated=True)
    fields[23] = protobuf.message("inner", protobuf.Message("Inner", {1: protobuf.Field("s", "string")}), repeated=True)
    fields[24] = protobuf.map_field("m", "string", "int64")
    return protobuf.Message("All", fields)


_I32 = st.integers(-(2**31), 2**31 - 1)
_I64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {
            "int32": _I32, "int64": _I64, "uint32": st.integers(0, 2**32 - 1), "uint64": st.integers(0, 2**64 - 1),
            "sint32": _I32, "sint64": _I64, "bool": st.booleans(), "fixed32": st.integers(0, 2**32 - 1),
            "fixed64": st.integers(0, 2**64 - 1), "sfixed32": _I32, "sfixed64": _I64,
            "float": st.floats(width=32, allow_nan=False), "double": st.floats(allow_nan=False),
            "string": st.text(max_size=20), "bytes": st.binary(max_size=20),
        }
    ),
    packed_sint64=st.lists(_I64, max_size=5),
    packed_double=st.lists(st.floats(allow_nan=False), max_size=5),
    unpacked_int32=st.lists(_I32, max_size=5),
    inner=st.lists(st.text(max_size=5), max_size=3),
    mapping=st.dictionaries(st.text(max_size=5), _I64, max_size=3),
)
def test_decoder_agrees_with_protobuf_runtime(all_types_class, values, packed_sint64, packed_double, unpacked_int32,
                                              inner, mapping):
    cls, scalars = all_types_class
    msg = cls(**values, packed_sint64=packed_sint64, packed_double=packed_double, unpacked_int32=unpacked_int32)
    for s in inner:
        msg.inner.add(s=s)
    for k, v in mapping.items():
        msg.m[k] = v
    ours = protobuf.decode(msg.SerializeToString(), _our_schema(scalars))
    for kind in scalars:
        # proto3 omits default values on the wire; the runtime reads them back as defaults
        assert ours.get(kind, getattr(cls(), kind)) == getattr(msg, kind), kind
    assert ours.get("packed_sint64", []) == list(msg.packed_sint64)
    assert ours.get("packed_double", []) == list(msg.packed_double)
    assert ours.get("unpacked_int32", []) == list(msg.unpacked_int32)
    assert [i.get("s", "") for i in ours.get("inner", [])] == [i.s for i in msg.inner]
    assert ours.get("m", {}) == dict(msg.m)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 2**64 - 1))
def test_zigzag_matches_protobuf(n):
    from google.protobuf.internal import wire_format

    assert protobuf.zigzag(n) == wire_format.ZigZagDecode(n)


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_corrupt(all_types_class, blob):
    _, scalars = all_types_class
    try:
        protobuf.decode(blob, _our_schema(scalars))
    except CorruptArtifact:
        pass


def test_decoder_rejects_bad_wire_data():
    schema = protobuf.Message("M", {1: protobuf.Field("n", "int64"), 2: protobuf.Field("s", "string")})
    cases = {
        "varint cut": b"\x08\x80",
        "varint over 64 bits": b"\x08" + b"\xff" * 9 + b"\x02",
        "length past end": b"\x12\x05abc",
        "field number 0": b"\x00\x01",
        "group wire type": b"\x0b",
        "invalid wire type": b"\x0e",
        "wrong wire type for schema": b"\x0a\x01x",
        "bad utf-8": b"\x12\x02\xff\xfe",
        "fixed64 cut": b"\x19\x01\x02",
    }
    for label, blob in cases.items():
        try:
            protobuf.decode(blob, schema)
        except CorruptArtifact:
            continue
        pytest.fail(f"{label}: accepted")
    assert protobuf.decode(b"\x08\x96\x01\x12\x02hi\x18\x05", schema) == {"n": 150, "s": "hi"}


# ---------------------------------------------------------------------------------------------
# no framework is imported by the readers
# ---------------------------------------------------------------------------------------------


def test_readers_import_no_framework(tf_models):
    script = f"""
import json, sys
from pathlib import Path
from artifact_tools.formats import savedmodel
for name in ("module", "tf1", "k2_savedmodel", "k3_export"):
    d = Path({str(tf_models["module"].parent)!r}) / name
    meta = d / "keras_metadata.pb"
    savedmodel.summarize((d / "saved_model.pb").read_bytes(), meta.read_bytes() if meta.exists() else None)
for name in ("k2.keras", "k3.h5"):
    savedmodel.summarize_keras((Path({str(tf_models["module"].parent)!r}) / name).read_bytes())
heavy = {{"tensorflow", "keras", "tf_keras", "torch", "transformers", "jax", "google.protobuf", "h5py"}}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
