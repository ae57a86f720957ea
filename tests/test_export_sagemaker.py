"""SageMaker export: every framework's layout, the handler contract, streaming repack, atomic outputs.

Expected predictions come from the frameworks themselves (the model trained in the test, or the artifact loaded
by its loader), never from the exporter; the exported files are re-opened here independently of the exporter's
own verification (tarfile, joblib/xgboost/torch/TensorFlow, the handler module imported by path).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import exporters
import loaders
from artifact_tools.errors import ArtifactError
from exporters import sagemaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Sample artifacts built once for the module (only those a test asks for)."""
    out = tmp_path_factory.mktemp("samples")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = make_samples.BUILDERS[name](out)
        return built[name]

    return get


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def _unpack(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    return dest


def _handlers(model_dir: Path):
    spec = importlib.util.spec_from_file_location(f"handlers_{id(model_dir)}", model_dir / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve_csv(model_dir: Path, rows: np.ndarray):
    """What the inference toolkit does with one text/csv request."""
    h = _handlers(model_dir)
    model = h.model_fn(str(model_dir))
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()
    out, ctype = h.output_fn(h.predict_fn(h.input_fn(body, "text/csv"), model), "application/json")
    assert ctype == "application/json"
    return np.asarray(json.loads(out))


def test_sklearn_artifact(samples, tmp_path):
    art = samples("sklearn")
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed and [c.name for c in result.checks] == [
        "code/inference.py with text/csv", "code/inference.py with application/json"]
    files = _members(tmp_path / "out" / "model.tar.gz")
    assert set(files) == {"model.joblib", "code/inference.py", "code/requirements.txt", "code/_codec.py"}
    import sklearn

    assert f"scikit-learn=={sklearn.__version__}" in files["code/requirements.txt"].decode()
    manifest = json.loads((tmp_path / "out" / "sagemaker-model.json").read_text())
    container = manifest["create_model"]["PrimaryContainer"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Image"].endswith("/sagemaker-scikit-learn:" + manifest["image"]["tag"])
    assert json.loads((tmp_path / "out" / "verification.json").read_text())["passed"] is True
    rows = np.random.default_rng(1).normal(size=(7, 4))
    got = _serve_csv(_unpack(tmp_path / "out" / "model.tar.gz", tmp_path / "x"), rows)
    np.testing.assert_array_equal(got, loaders.load(art).model.predict(rows))


def test_local_estimator_with_feature_names_and_uncompressed(tmp_path):
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor

    X, y = make_samples.make_data()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(frame, y)
    result = exporters.export(model, "sagemaker", tmp_path / "out", uncompressed=True)
    assert result.passed
    folder = tmp_path / "out" / "model"
    assert (folder / "model.joblib").is_file() and (folder / "code" / "inference.py").is_file()
    manifest = json.loads((tmp_path / "out" / "sagemaker-model.json").read_text())
    source = manifest["create_model"]["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
    assert source["S3DataType"] == "S3Prefix" and source["CompressionType"] == "None"
    got = _serve_csv(folder, X[:6].astype(np.float64))
    np.testing.assert_allclose(got, model.predict(frame.head(6)))


@pytest.mark.parametrize("fmt", ["ubj", "json"])
def test_xgboost_artifact_writes_a_model_old_containers_read(samples, tmp_path, fmt):
    import xgboost as xgb

    art = samples("xgboost")
    result = exporters.export(art, "sagemaker", tmp_path / "out", xgboost_format=fmt)
    assert result.passed
    files = _members(tmp_path / "out" / "model.tar.gz")
    assert list(files) == ["xgboost-model"]
    data = files["xgboost-model"]
    if fmt == "json":
        doc = json.loads(data)
        assert not doc["learner"]["learner_model_param"]["base_score"].startswith("[")
        float(doc["learner"]["learner_model_param"]["base_score"])  # the scalar form XGBoost < 3.1 parses
    else:
        assert data[:1] == b"{" and data[1:2].isalpha()
        assert b"base_scoreSL" in data and b"[" not in data[data.index(b"base_scoreSL"):][:20]
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    X = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    source = loaders.load(art).model
    np.testing.assert_allclose(booster.predict(xgb.DMatrix(X)), source.predict(xgb.DMatrix(X)), rtol=1e-6)
    manifest = json.loads((tmp_path / "out" / "sagemaker-model.json").read_text())
    assert "1.7-1" in manifest["image"]["accepted_versions"]
    assert manifest["create_model"]["PrimaryContainer"]["Image"].split(":")[-1] == manifest["image"]["tag"]


def test_tensorflow_artifact_and_keras_model(samples, tmp_path):
    import tensorflow as tf

    art = samples("tensorflow")
    result = exporters.export(art, "sagemaker", tmp_path / "a")
    assert result.passed
    names = set(_members(tmp_path / "a" / "model.tar.gz"))
    assert {"1/saved_model.pb", "1/variables/variables.index"} <= names
    X = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    unpacked = _unpack(tmp_path / "a" / "model.tar.gz", tmp_path / "ax")
    fn = tf.saved_model.load(str(unpacked / "1")).signatures["serving_default"]
    got = next(iter(fn(tf.constant(X)).values())).numpy()
    np.testing.assert_allclose(got, loaders.load(art).predict(X), rtol=1e-5, atol=1e-6)

    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(2)])
    result = exporters.export(model, "sagemaker", tmp_path / "k", version=7)
    assert result.passed
    assert "7/saved_model.pb" in _members(tmp_path / "k" / "model.tar.gz")


def test_pytorch_module_and_state_dict_artifact(samples, tmp_path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    result = exporters.export(net, "sagemaker", tmp_path / "live")
    assert result.passed
    unpacked = _unpack(tmp_path / "live" / "model.tar.gz", tmp_path / "lx")
    rows = np.random.default_rng(4).normal(size=(5, 4))
    with torch.no_grad():
        want = net(torch.as_tensor(rows, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(_serve_csv(unpacked, rows), want, rtol=1e-5, atol=1e-6)

    art = samples("pytorch")  # a state dict: exporting needs the network's code
    with pytest.raises(ArtifactError, match="module="):
        exporters.export(art, "sagemaker", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    result = exporters.export(loaders.load(art, module=fresh), "sagemaker", tmp_path / "sd")
    assert result.passed
    assert {"model.pth", "model.pt", "code/inference.py"} <= set(_members(tmp_path / "sd" / "model.tar.gz"))


def test_huggingface_artifact(samples, tmp_path):
    art = samples("huggingface")
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed
    files = _members(tmp_path / "out" / "model.tar.gz")
    assert {"config.json", "model.safetensors", "tokenizer.json", "code/inference.py"} <= set(files)
    manifest = json.loads((tmp_path / "out" / "sagemaker-model.json").read_text())
    assert manifest["environment"]["HF_TASK"] == "text-classification"
    unpacked = _unpack(tmp_path / "out" / "model.tar.gz", tmp_path / "x")
    h = _handlers(unpacked)
    os.environ["HF_TASK"] = "text-classification"
    try:
        out, _ = h.output_fn(h.predict_fn(h.input_fn(b'{"inputs": ["good movie"]}', "application/json"),
                                          h.model_fn(str(unpacked))), "application/json")
    finally:
        del os.environ["HF_TASK"]
    want = loaders.load(art).predict(["good movie"])
    assert json.loads(out)[0]["label"] == want["label"][0]
    assert abs(json.loads(out)[0]["score"] - want["score"][0]) < 1e-5


def test_mxnet_gluon_block_and_artifact(samples, tmp_path):
    import mxnet as mx
    from mxnet import gluon

    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(5, activation="relu"), gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    rows = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    want = net(mx.nd.array(rows)).asnumpy()
    result = exporters.export(net, "sagemaker", tmp_path / "live", sample=rows)
    assert result.passed
    files = _members(tmp_path / "live" / "model.tar.gz")
    assert {"model-symbol.json", "model-0000.params", "model-shapes.json", "code/inference.py"} <= set(files)
    assert json.loads(files["model-shapes.json"]) == [{"name": "data", "shape": [1, 6]}]
    unpacked = _unpack(tmp_path / "live" / "model.tar.gz", tmp_path / "lx")
    np.testing.assert_allclose(_serve_csv(unpacked, rows), want, rtol=1e-5, atol=1e-6)

    result = exporters.export(samples("mxnet"), "sagemaker", tmp_path / "art")
    assert result.passed


def test_own_code_folder_replaces_the_generated_handlers(samples, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    generated = tmp_path / "gen"
    exporters.export(samples("sklearn"), "sagemaker", generated)
    text = _members(generated / "model.tar.gz")["code/inference.py"].decode()
    wrong = ("def predict_fn(input_data, model):\n    return model.predict(input_data) * 0 - 1\n\n\n"
             "def unused(input_data, model):")
    (code / "inference.py").write_text(text.replace("def predict_fn(input_data, model):", wrong))
    with pytest.raises(exporters.ExportVerificationFailed, match="does not reproduce"):
        exporters.export(samples("sklearn"), "sagemaker", tmp_path / "bad", code=code)
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad.")]


def test_repack_streams_members_and_replaces_code(samples, tmp_path):
    art = samples("huggingface")
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    (code / "requirements.txt").write_text("transformers\n")
    out = sagemaker.repack(art, tmp_path / "new.tar.gz", code=code, compresslevel=1)
    old, new = _members(art), _members(out)
    assert {k: v for k, v in new.items() if not k.startswith("code/")} == old
    assert new["code/inference.py"] == (code / "inference.py").read_bytes()
    with pytest.raises(ArtifactError, match="already exists"):
        sagemaker.repack(art, out, code=code)


def test_existing_output_is_refused_unless_forced(samples, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="already exists"):
        exporters.export(samples("xgboost"), "sagemaker", out)
    assert (out / "keep.txt").read_text() == "mine"
    exporters.export(samples("xgboost"), "sagemaker", out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.tar.gz", "sagemaker-model.json", "verification.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_export_prints_the_summary(samples, tmp_path, capsys):
    from artifact_tools.cli import main

    code = main(["export", str(samples("xgboost")), "--to", "sagemaker", str(tmp_path / "out"),
                 "-o", "compresslevel=9", "-o", "xgboost_format=json"])
    text = capsys.readouterr().out
    assert code == 0 and "verification: PASSED" in text and "sagemaker-xgboost" in text
    assert main(["export", str(samples("xgboost")), "--to", "sagemaker", str(tmp_path / "out")]) == 2


def test_killed_export_leaves_nothing_at_the_destination(tmp_path):
    """SIGKILL mid-export: no output, only the clearly named temp, which the next export removes."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = make_samples.make_data()
    folder = tmp_path / "src"
    folder.mkdir()
    joblib.dump(LogisticRegression().fit(X, y), folder / "model.joblib")
    with open(folder / "vocabulary.bin", "wb") as f:  # incompressible bulk makes the repack take seconds
        f.write(np.random.default_rng(0).bytes(400 << 20))
    out = tmp_path / "exported"
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "artifact_tools", "export", str(folder), "--to", "sagemaker",
                             str(out), "-o", "compresslevel=9"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    temp = tmp_path / f".exported.partial-{proc.pid}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        archive = temp / "model.tar.gz"
        if archive.exists() and archive.stat().st_size > (20 << 20):
            break
        assert proc.poll() is None, "the export ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [temp.name]
    (folder / "vocabulary.bin").unlink()
    exporters.export(folder, "sagemaker", out)
    assert out.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_xgboost_model_with_feature_names_takes_plain_csv_rows(tmp_path):
    """The built-in container feeds text/csv rows as a DMatrix without names, predicting with
    validate_features=False (sagemaker-xgboost-container serve_utils.predict); the export must verify that way."""
    import xgboost as xgb

    X, y = make_samples.make_data()
    names = ["age", "income", "score", "x3"]
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(X, label=y, feature_names=names), num_boost_round=4)
    booster.save_model(str(tmp_path / "model.json"))
    result = exporters.export(tmp_path / "model.json", "sagemaker", tmp_path / "out", sample=X[:5])
    assert result.passed
    assert "validate_features=False" in next(c for c in result.checks if c.name == "xgboost-model").detail
    exported = xgb.Booster()
    exported.load_model(bytearray(_members(tmp_path / "out" / "model.tar.gz")["xgboost-model"]))
    assert exported.feature_names == names
    rows = np.random.default_rng(4).normal(size=(9, 4)).astype(np.float32)
    np.testing.assert_allclose(exported.predict(xgb.DMatrix(rows), validate_features=False),
                               booster.predict(xgb.DMatrix(rows, feature_names=names)), rtol=1e-6)


def test_legacy_xgboost_file_with_feature_names(tmp_path):
    art = ROOT / "tests" / "data" / "xgboost_legacy" / "x176-binary-logistic.json"
    if not art.is_file():
        pytest.skip(f"{art} is not built")
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed and [c.name for c in result.checks] == ["file signature", "xgboost-model"]


@pytest.mark.parametrize("kind", ["scaler", "neighbors"])
def test_sklearn_transformer_and_neighbors_use_the_loaders_method(tmp_path, kind):
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    X, _ = make_samples.make_data()
    model = StandardScaler().fit(X) if kind == "scaler" else NearestNeighbors(n_neighbors=2).fit(X)
    import joblib

    joblib.dump(model, tmp_path / "model.joblib")
    result = exporters.export(tmp_path / "model.joblib", "sagemaker", tmp_path / "out", sample=X[:5])
    assert result.passed, result.checks
    rows = np.random.default_rng(6).normal(size=(5, X.shape[1]))
    got = _serve_csv(_unpack(tmp_path / "out" / "model.tar.gz", tmp_path / "x"), rows)
    want = model.transform(rows) if kind == "scaler" else model.kneighbors(rows, return_distance=False)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ real artifacts

def test_corpus_sklearn_ir(corpus, tmp_path):
    art = next((corpus / "sdk-sklearn-ir").glob("*.tar.gz"))
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed
    files = _members(tmp_path / "out" / "model.tar.gz")
    assert {"model.joblib", "inference.py", "code/inference.py"} <= set(files)
    import pandas as pd

    model = loaders.load(art).model
    rows = np.random.default_rng(0).normal(size=(6, model.n_features_in_))
    got = _serve_csv(_unpack(tmp_path / "out" / "model.tar.gz", tmp_path / "x"), rows)
    names = getattr(model, "feature_names_in_", None)
    want = model.predict(rows if names is None else pd.DataFrame(rows, columns=list(names)))
    np.testing.assert_array_equal(got, want)


def test_corpus_legacy_xgboost_becomes_a_current_model(corpus, tmp_path):
    import xgboost as xgb

    art = corpus / "cookbook-xgboost-1" / "model.tar.gz"
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed
    data = _members(tmp_path / "out" / "model.tar.gz")["xgboost-model"]
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    golden = corpus / "golden"
    inputs = np.loadtxt(golden / "cookbook-xgboost-1.inputs.csv", delimiter=",", ndmin=2, dtype=np.float32)
    want = np.loadtxt(golden / "cookbook-xgboost-1.pred.csv", delimiter=",")
    np.testing.assert_allclose(booster.predict(xgb.DMatrix(inputs, missing=np.nan)).ravel(), want.ravel(),
                               rtol=1e-5, atol=1e-5)


def test_corpus_tfs_test_model_keeps_its_version_and_assets(corpus, tmp_path):
    art = next((corpus / "sdk-tfs-test-model").glob("*.tar.gz"))
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed
    names = set(_members(tmp_path / "out" / "model.tar.gz"))
    assert "00000123/saved_model.pb" in names and "00000123/assets/foo.txt" in names


def test_spark_pipeline_routes_to_mleap_and_sparkml_serving(spark, tmp_path):
    import pandas as pd
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    frame = pd.DataFrame({"color": ["red", "blue", "red", "green"] * 5, "size": np.arange(20.0),
                          "label": [0.0, 1.0, 0.0, 1.0] * 5})
    stages = [StringIndexer(inputCol="color", outputCol="color_ix"),
              VectorAssembler(inputCols=["color_ix", "size"], outputCol="features"),
              LogisticRegression(maxIter=5)]
    Pipeline(stages=stages).fit(spark.createDataFrame(frame)).write().save(str(tmp_path / "pipeline"))
    sample = frame[["color", "size"]].head(6)
    r = exporters.export(tmp_path / "pipeline", "mleap", tmp_path / "nope")  # verified with sample_input()
    assert r.passed and r.samples == 3
    result = exporters.export(tmp_path / "pipeline", "mleap", tmp_path / "bundle", sample=sample)
    assert result.passed and (tmp_path / "bundle" / "bundle.zip").is_file()
    result = exporters.export(tmp_path / "pipeline", "sagemaker", tmp_path / "serving", sample=sample)
    assert result.passed and "SAGEMAKER_SPARKML_SCHEMA" in result.facts["environment"]
    want = loaders.load(tmp_path / "pipeline").predict(sample)["prediction"].to_numpy()
    from artifact_tools.filetree import ZipTree
    from loaders import mleap as scorer

    got = scorer.load(ZipTree(tmp_path / "bundle" / "bundle.zip")).predict(sample)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, want)


def test_corpus_iris_estimator_exported_without_a_sample(corpus, tmp_path):
    """No sample given: the artifact's own (feature values from its ParseExample op) verifies the export, fed to
    the SavedModel as the serialized tf.Example protos its signature takes."""
    tf = pytest.importorskip("tensorflow")
    art = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    result = exporters.export(art, "sagemaker", tmp_path / "out")
    assert result.passed and result.unverified is None and result.samples == 2
    model_dir = _unpack(tmp_path / "out" / "model.tar.gz", tmp_path / "x") / "1507144001"
    rows = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    protos = [tf.train.Example(features=tf.train.Features(feature={"inputs": tf.train.Feature(
        float_list=tf.train.FloatList(value=r.tolist()))})).SerializeToString() for r in rows]
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(model_dir))
        sig = meta.signature_def["serving_default"]
        scores = session.run(sig.outputs["scores"].name, {sig.inputs["inputs"].name: protos})
    np.testing.assert_allclose(loaders.load(art).predict(rows)["scores"], scores, rtol=1e-6)


@pytest.mark.parametrize("name, algorithm, onnx", [("cookbook-ll", "linear-learner", True),
                                                   ("movies-kmeans-a", "kmeans", True)])
def test_corpus_builtin_algorithms_are_refused_in_one_sentence(corpus, tmp_path, capsys, name, algorithm, onnx):
    from artifact_tools import cli

    art = corpus / name / "model.tar.gz"
    with pytest.raises(ArtifactError) as caught:
        exporters.export(art, "sagemaker", tmp_path / "out")
    message = str(caught.value)
    assert f"the {algorithm} model is a SageMaker built-in algorithm artifact" in message
    assert ("--to onnx" in message) is onnx and "\n" not in message
    assert not (tmp_path / "out").exists()
    assert cli.main(["export", str(art), "--to", "sagemaker", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "built-in algorithm artifact" in err and "Traceback" not in err and "internal error" not in err
