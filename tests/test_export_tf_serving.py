"""TensorFlow Serving export: repository layout, models.config for several models and versions, signatures.

The exported SavedModels are re-opened here with ``tf.saved_model.load`` (not the exporter's session path) and
``models.config`` is parsed with tensorflow-serving-api; expected values come from the source models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import exporters
import loaders
from artifact_tools.errors import ArtifactError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tf_artifact(tmp_path_factory):
    return make_samples.build_tensorflow(tmp_path_factory.mktemp("tf"))


def _config(repo: Path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse((repo / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())


def _serving_default(folder: Path, inputs: dict):
    fn = tf.saved_model.load(str(folder)).signatures["serving_default"]
    out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def test_artifact_to_repository_then_add_models_and_versions(tf_artifact, tmp_path):
    repo = tmp_path / "repo"
    result = exporters.export(tf_artifact, "tf-serving", repo, name="iris")
    assert result.passed
    assert (repo / "iris" / "1" / "saved_model.pb").is_file() and (repo / "iris" / "1" / "variables").is_dir()
    config = _config(repo)
    [entry] = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("iris", "/models/iris", "tensorflow")
    assert list(entry.model_version_policy.specific.versions) == [1]
    assert "tensorflow/serving" in (repo / "docker-run.sh").read_text()
    assert f'"{repo.absolute()}:/models"' in result.facts["docker"]

    body = json.loads((repo / "iris.predict.json").read_text())
    assert body["signature_name"] == "serving_default" and len(body["instances"]) == result.samples
    rows = np.asarray(body["instances"], dtype=np.float32)
    loaded = loaders.load(tf_artifact)
    [name] = loaded.info["inputs"]
    got = _serving_default(repo / "iris" / "1", {name: rows})
    np.testing.assert_allclose(next(iter(got.values())), loaded.predict(rows), rtol=1e-5, atol=1e-6)

    with pytest.raises(ArtifactError, match="already exists"):
        exporters.export(tf_artifact, "tf-serving", repo, name="iris")
    exporters.export(tf_artifact, "tf-serving", repo, name="iris", version=2, add=True)
    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(2)])
    exporters.export(model, "tf-serving", repo, name="other", add=True)
    with pytest.raises(ArtifactError, match="iris/2 already exists"):
        exporters.export(tf_artifact, "tf-serving", repo, name="iris", version=2, add=True)
    versions = {c.name: list(c.model_version_policy.specific.versions) for c in _config(repo).model_config_list.config}
    assert versions == {"iris": [1, 2], "other": [1]}
    assert (repo / "iris" / "1" / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_keras_models_get_an_explicit_serving_signature(flavour, tmp_path):
    keras = pytest.importorskip(flavour)
    model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    result = exporters.export(model, "tf-serving", tmp_path / "repo", name="clf")
    assert result.passed
    folder = tmp_path / "repo" / "clf" / "1"
    fn = tf.saved_model.load(str(folder)).signatures["serving_default"]
    _, specs = fn.structured_input_signature
    [spec] = specs.values()
    assert spec.shape.as_list() == [None, 5] and spec.dtype == tf.float32
    rows = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    got = next(iter(fn(**{next(iter(specs)): tf.constant(rows)}).values())).numpy()
    np.testing.assert_allclose(got, np.asarray(model(rows)), rtol=1e-5, atol=1e-6)


def test_huggingface_model_is_served_as_tensorflow(tmp_path):
    pytest.importorskip("tf_keras")
    art = make_samples.build_huggingface(tmp_path)
    result = exporters.export(art, "tf-serving", tmp_path / "repo", name="sentiment")
    assert result.passed
    body = json.loads((tmp_path / "repo" / "sentiment.predict.json").read_text())
    assert set(body["instances"][0]) == {"input_ids", "attention_mask"}
    inputs = {k: np.asarray([row[k] for row in body["instances"]], dtype=np.int32) for k in body["instances"][0]}
    logits = _serving_default(tmp_path / "repo" / "sentiment" / "1", inputs)["logits"]
    import torch

    source = loaders.load(art).model
    with torch.no_grad():
        want = source(input_ids=torch.as_tensor(inputs["input_ids"], dtype=torch.long),
                      attention_mask=torch.as_tensor(inputs["attention_mask"], dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)


def test_non_tensorflow_models_are_refused(tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = make_samples.make_data()
    with pytest.raises(ArtifactError, match="TensorFlow Serving serves TensorFlow models"):
        exporters.export(LinearRegression().fit(X, y), "tf-serving", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_corpus_tfs_test_model(corpus, tmp_path):
    art = next((corpus / "sdk-tfs-test-model").glob("*.tar.gz"))
    result = exporters.export(art, "tf-serving", tmp_path / "repo")
    assert result.passed
    folder = tmp_path / "repo" / "tfs-test-model" / "00000123"
    assert (folder / "saved_model.pb").is_file() and (folder / "assets" / "foo.txt").is_file()
    [entry] = _config(tmp_path / "repo").model_config_list.config
    assert entry.name == "tfs-test-model" and list(entry.model_version_policy.specific.versions) == [123]
    body = json.loads((tmp_path / "repo" / "tfs-test-model.predict.json").read_text())
    rows = np.asarray(body["instances"], dtype=np.float32)
    exported = loaders.load(tmp_path / "repo" / "tfs-test-model").predict(rows)
    np.testing.assert_allclose(exported, loaders.load(art).predict(rows), rtol=1e-6)


def test_corpus_iris_estimator_without_a_sample_sends_base64_examples(corpus, tmp_path):
    """The estimator's signature parses serialized tf.Example protos: the artifact's own sample (feature values)
    is sent as those protos, base64-encoded as the REST API requires for binary strings."""
    import base64

    art = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    result = exporters.export(art, "tf-serving", tmp_path / "repo", name="iris")
    assert result.passed and result.unverified is None and result.samples == 2
    body = json.loads((tmp_path / "repo" / "iris.predict.json").read_text())
    protos = [base64.b64decode(row["b64"]) for row in body["instances"]]
    rows = []
    for proto in protos:
        example = tf.train.Example.FromString(proto)
        rows.append(list(example.features.feature["inputs"].float_list.value))
    assert np.asarray(rows).shape == (2, 4)
    source = loaders.load(art)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:  # TF 1.3 graph: loaded as the server's C++ loader does
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"],
                                                        str(tmp_path / "repo" / "iris" / "1507144001"))
        sig = meta.signature_def["serving_default"]
        scores = session.run(sig.outputs["scores"].name, {sig.inputs["inputs"].name: protos})
    np.testing.assert_allclose(scores, source.predict(np.asarray(rows, np.float32))["scores"], rtol=1e-6)
