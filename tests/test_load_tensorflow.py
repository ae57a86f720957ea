"""TensorFlow loader: SavedModels in every real layout, TF1 graphs, signatures, Keras Lambda trust, Keras files.

Expected values always come from TensorFlow itself in the test: the SavedModel loaded directly with
``tf.saved_model.load`` or a ``tf.compat.v1`` Session, or the Keras model's own ``predict``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, MissingExtra, TrustRequired  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

from helpers import untar  # noqa: E402

SETOSA = [5.1, 3.5, 1.4, 0.2]  # first row of Fisher's iris data: class 0 (setosa)
VIRGINICA = [6.7, 3.0, 5.2, 2.3]  # row 146 of Fisher's iris data: class 2 (virginica)


def _tar(folder: Path, out: Path) -> Path:
    return make_samples.tar_folder(folder, out)


class _Affine(tf.Module):
    """Two signatures: two inputs of different dtypes -> two outputs, and one input -> one output."""

    def __init__(self, k: float):
        super().__init__()
        self.k = tf.Variable(k)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a"),
                                  tf.TensorSpec([None], tf.int32, name="b")])
    def serve(self, a, b):
        return {"total": tf.reduce_sum(a, axis=1) * self.k + tf.cast(b, tf.float32), "scaled": a * self.k}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def negate(self, x):
        return {"y": -x * self.k}


def _save_affine(k: float, path: Path, tensorflow_version: str | None = None) -> Path:
    m = _Affine(k)
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve, "negate": m.negate})
    if tensorflow_version:  # rewrite the recorded writer version, as a newer TensorFlow would have written it
        from tensorflow.core.protobuf import saved_model_pb2

        pb = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        pb.meta_graphs[0].meta_info_def.tensorflow_version = tensorflow_version
        (path / "saved_model.pb").write_bytes(pb.SerializeToString())
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_samples.build_tensorflow(tmp_path_factory.mktemp("tf-sample"))


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> Path:
    """``<name>/<version>/`` layout with versions 1 and 7 of different models, as a model.tar.gz."""
    root = tmp_path_factory.mktemp("versioned")
    _save_affine(1.0, root / "src" / "affine" / "1")
    _save_affine(7.0, root / "src" / "affine" / "7")
    return _tar(root / "src", root / "model.tar.gz")


def test_sample_predictions_equal_the_savedmodel(sample, tmp_path):
    model = loaders.load(sample)
    X = make_samples.make_data(n=6)[0]
    direct = tf.saved_model.load(str(untar(sample, tmp_path) / "1")).signatures["serving_default"]
    (expected,) = direct(features=tf.constant(X)).values()
    assert model.framework == "tensorflow"
    assert model.info["version"] == 1 and model.info["signature"] == "serving_default"
    np.testing.assert_allclose(model.predict(X), expected.numpy(), rtol=1e-6)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X.astype(np.float64), columns=["f0", "f1", "f2", "f3"])  # float64: cast to float32
    np.testing.assert_allclose(model.predict(frame), expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.predict(X[0].tolist()), expected.numpy()[:1], rtol=1e-6)  # one row


def test_highest_version_by_default_and_version_option(versioned, tmp_path):
    src = untar(versioned, tmp_path) / "affine"
    a = np.array([[1.0, 2.0], [3.0, -1.5]])
    b = np.array([4, -2])
    for version, model in ((7, loaders.load(versioned)), (1, loaders.load(versioned, version=1)),
                           (1, loaders.load(versioned, version="affine/1"))):
        direct = tf.saved_model.load(str(src / str(version))).signatures["serving_default"]
        expected = direct(a=tf.constant(a, tf.float32), b=tf.constant(b, tf.int32))
        out = model.predict({"a": a, "b": b.astype(np.float64)})
        assert model.info["version"] == version
        assert set(out) == {"total", "scaled"}
        for key in out:
            np.testing.assert_allclose(out[key], expected[key].numpy(), rtol=1e-6)
    with pytest.raises(ArtifactError, match="version 3 is not in the artifact"):
        loaders.load(versioned, version=3)


def test_signature_option_and_errors(versioned, tmp_path):
    src = untar(versioned, tmp_path) / "affine" / "7"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = loaders.load(versioned, signature="negate")
    expected = tf.saved_model.load(str(src)).signatures["negate"](x=tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(model.predict(x), expected)
    with pytest.raises(ArtifactError, match="no signature 'classify'"):
        loaders.load(versioned, signature="classify")
    with pytest.raises(ArtifactError, match="takes 2 inputs"):
        loaders.load(versioned).predict(x)
    with pytest.raises(ArtifactError, match="lacks b"):
        loaders.load(versioned).predict({"a": x[:, :2]})


def test_export_servo_layout_inside_a_top_folder(tmp_path):
    _save_affine(3.0, tmp_path / "src" / "job" / "export" / "Servo" / "1700000000")
    model = loaders.load(_tar(tmp_path / "src", tmp_path / "model.tar.gz"), signature="negate")
    direct = tf.saved_model.load(str(tmp_path / "src" / "job" / "export" / "Servo" / "1700000000"))
    x = np.ones((1, 3), np.float32)
    assert model.info["model_dir"] == "export/Servo/1700000000"
    np.testing.assert_allclose(model.predict(x), direct.signatures["negate"](x=tf.constant(x))["y"].numpy())


def test_newer_writer_version_is_a_warning_not_a_crash(tmp_path):
    folder = _save_affine(2.0, tmp_path / "5", tensorflow_version="99.1.0")
    model = loaders.load(tmp_path)
    assert "99.1.0" in model.info["warning"]
    direct = tf.saved_model.load(str(folder)).signatures["negate"]
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(loaders.load(tmp_path, signature="negate").predict(x),
                               direct(x=tf.constant(x))["y"].numpy())


def _tf1_reference(model_dir: Path, fetch: str | list[str], feed: dict):
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, ["serve"], str(model_dir))
        return session.run(fetch, feed)


def test_corpus_tfs_test_model_tf1_graph_in_top_folder(corpus, tmp_path):
    archive = corpus / "sdk-tfs-test-model" / "tensorflow-serving-test-model.tar.gz"
    model = loaders.load(archive)
    assert model.report.root_prefix == "tfs-test-model"
    assert model.info["version"] == 123 and model.info["api"] == "tf.compat.v1 Session"
    x = np.array([1.0, 2.0, 5.0])
    expected = _tf1_reference(untar(archive, tmp_path) / "tfs-test-model" / "00000123", "y:0",
                              {"x:0": x.reshape(-1, 1).astype(np.float32)})
    np.testing.assert_allclose(model.predict(x), expected)  # a 1-D batch fills the (None, 1) input
    np.testing.assert_allclose(model.predict({"instances": x.tolist()}), expected)  # TF Serving REST body


def test_corpus_tfs_model_directory(corpus):
    folder = corpus / "sdk-tfs-model-with-inference"
    model = loaders.load(folder)
    assert model.report.entry_point == "code/inference.py"
    assert model.info["version"] == 123
    x = np.array([[0.5], [10.0]], np.float32)
    np.testing.assert_allclose(model.predict(x), _tf1_reference(folder / "00000123", "y:0", {"x:0": x}))


def test_corpus_iris_estimator_export_builds_tf_examples(corpus, tmp_path):
    archive = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    model = loaders.load(archive)
    assert model.info["model_dir"] == "export/Servo/1507144001"
    assert model.info["tensorflow_version_saved"] == "1.3.0"
    out = model.predict(np.array([SETOSA, VIRGINICA]))
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "inputs": tf.train.Feature(float_list=tf.train.FloatList(value=row))})).SerializeToString()
        for row in (SETOSA, VIRGINICA)]
    scores, classes = _tf1_reference(untar(archive, tmp_path) / "export" / "Servo" / "1507144001",
                                     ["dnn/head/predictions/probabilities:0", "dnn/head/Tile:0"],
                                     {"input_example_tensor:0": examples})
    np.testing.assert_allclose(out["scores"], scores)
    assert out["classes"].tolist() == classes.tolist()
    assert out["scores"].argmax(axis=1).tolist() == [0, 2]  # the iris labels of these two rows
    np.testing.assert_allclose(model.predict(np.array(examples, dtype=object))["scores"], scores)  # protos as given


def test_several_outputs_come_in_the_order_of_their_names(tmp_path):
    """A SignatureDef keeps its inputs and outputs in protobuf maps, whose order TensorFlow does not keep (it changed
    from process to process, and a JSON response's keys with it): predict's outputs, and the inputs, come in the
    order of their names, whatever the order they were declared in."""
    names = ["f", "b", "e", "a", "d", "c"]
    folder = tmp_path / "model" / "1"
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        w = tf.compat.v1.placeholder(tf.float32, [None, 2], name="w")
        outs = {n: tf.identity(x * float(i) + w, name=f"out_{n}") for i, n in enumerate(names)}
        with tf.compat.v1.Session(graph=g) as sess:
            builder = tf.compat.v1.saved_model.Builder(str(folder))
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x, "w": w}, outs)
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
    model = loaders.load(_tar(tmp_path / "model", tmp_path / "model.tar.gz"))
    xs, ws = np.array([[1.0, 2.0]], np.float32), np.array([[0.5, 0.25]], np.float32)
    out = model.predict({"x": xs, "w": ws})
    assert list(out) == sorted(names)
    for i, n in enumerate(names):
        np.testing.assert_allclose(out[n], xs * i + ws)
    assert list(model.sample_input()) == ["w", "x"]


def test_a_request_naming_another_signature_is_refused_in_serve_and_transform(versioned, tmp_path):
    """TensorFlow Serving's ``signature_name`` in a request body: the signature the model was loaded with answers;
    another is refused with a sentence naming both (serve: 400; transform: the record fails), never answered by the
    loaded signature."""
    import io
    import json

    from artifact_tools import serve, transform

    model = loaders.load(versioned, signature="negate")
    x = [[1.0, 2.0, 3.0]]
    expected = (-np.array(x, np.float32) * 7.0).tolist()
    app = serve.create_app(model)
    got = []
    for name in ("negate", "serving_default"):
        body = json.dumps({"signature_name": name, "instances": x}).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                   "HTTP_ACCEPT": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr}
        status, _, out = serve._call_wsgi(app, environ)
        got.append((status, out))
    assert got[0][0] == 200 and json.loads(got[0][1])["predictions"] == expected, got[0]
    assert got[1][0] == 400 and b"'serving_default'" in got[1][1] and b"'negate'" in got[1][1], got[1]

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "r.json").write_text(json.dumps({"signature_name": "negate", "instances": x}))
    summary = transform(str(versioned), str(tmp_path / "in"), str(tmp_path / "out"), content_type="application/json")
    assert summary["records_failed"] == 1 and "'negate'" in summary["failed"][0]["reason"], summary


@pytest.fixture(scope="module")
def keras_lambda_savedmodel(tmp_path_factory):
    """A tf-keras (Keras 2) SavedModel with a Lambda layer; its config sits in keras_metadata.pb."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(3)
    net = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,)),
                               tf_keras.layers.Lambda(lambda t: t * 2.0, name="double"),
                               tf_keras.layers.Dense(2)])
    folder = tmp_path_factory.mktemp("keras2") / "1"
    net.save(str(folder), save_format="tf")
    return folder, net


def test_keras_lambda_in_savedmodel_needs_trust(keras_lambda_savedmodel):
    folder, net = keras_lambda_savedmodel
    with pytest.raises(TrustRequired, match="double"):
        loaders.load(folder.parent)
    X = make_samples.make_data(n=5)[0]
    model = loaders.load(folder.parent, trust=True)
    np.testing.assert_allclose(model.predict(X), net.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix,loose", [(".keras", False), (".h5", False), (".keras", True)])
def test_keras_files_with_lambda(tmp_path, suffix, loose):
    """Keras 3 files inside a model.tar.gz, and a loose .keras file (itself a zip, so opened as a container)."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                            keras.layers.Lambda(lambda t: t + 1.0, name="shift"), keras.layers.Dense(2)])
    (tmp_path / "src").mkdir()
    net.save(tmp_path / "src" / f"model{suffix}")
    archive = tmp_path / "src" / f"model{suffix}" if loose else _tar(tmp_path / "src", tmp_path / "model.tar.gz")
    with pytest.raises(TrustRequired, match="shift"):
        loaders.load(archive)
    X = make_samples.make_data(n=5)[0]
    model = loaders.load(archive, trust=True)
    np.testing.assert_allclose(model.predict(X), net.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


def test_missing_tensorflow_raises_missing_extra(sample, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # what `import tensorflow` sees when it is absent
    with pytest.raises(MissingExtra, match=r"artifact-tools\[tensorflow\]"):
        loaders.load(sample)
