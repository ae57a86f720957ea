"""MLflow export: native flavors, the artifact-tools python_function, `mlflow models serve`, registration.

Expected predictions come from the source framework objects themselves (the model trained in the test, a
reference loaded without artifact-tools, or the corpus' golden predictions of XGBoost 1.7), never from the
exporter. The exported folders are re-opened here with MLflow's own API (``mlflow.pyfunc.load_model``, the native
``mlflow.<flavor>.load_model``, YAML of ``MLmodel``), served by a real ``mlflow models serve`` subprocess, and
registered in a real ``mlflow server`` with a SQLite store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import loaders
from artifact_tools.errors import ArtifactError
from exporters import as_loaded
from exporters import mlflow as target

mlflow = pytest.importorskip("mlflow")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import make_samples  # noqa: E402

from helpers import sklearn_reference, untar  # noqa: E402

MLFLOW_BIN = Path(sys.executable).with_name("mlflow")
ROWS = np.random.default_rng(11).normal(size=(7, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("samples")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = make_samples.BUILDERS[name](out)
        return built[name]

    return get


def _mlmodel(folder: Path) -> dict:
    return yaml.safe_load((folder / "MLmodel").read_text())


def _requirements(folder: Path) -> dict[str, str]:
    lines = [ln for ln in (folder / "requirements.txt").read_text().splitlines() if ln.strip()]
    return dict(ln.split("==", 1) for ln in lines)


def _installed(dist: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(dist).split("+")[0]


def _pyfunc(folder: Path, data):
    return mlflow.pyfunc.load_model(str(folder)).predict(data)


def _tar(folder: Path, out: Path) -> Path:
    return make_samples.tar_folder(folder, out)


# ------------------------------------------------------------------------------------------ native flavors

def test_sklearn_artifact_native_flavor_signature_example_and_pins(samples, tmp_path):
    art = samples("sklearn")
    out = tmp_path / "model"
    result = target.export(loaders.load(art), out, sample=ROWS[:3])
    assert result.passed and result.facts["flavor"] == "sklearn"
    meta = _mlmodel(out)
    assert set(meta["flavors"]) == {"sklearn", "python_function"}
    assert meta["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    [spec] = json.loads(meta["signature"]["inputs"])
    assert spec["tensor-spec"]["shape"] == [-1, 4]
    assert json.loads((out / "input_example.json").read_text())  # the sample is the input example
    pins = _requirements(out)
    assert pins["scikit-learn"] == _installed("scikit-learn") and pins["mlflow"] == mlflow.__version__
    reference = sklearn_reference(art)  # joblib straight from the archive
    np.testing.assert_array_equal(np.asarray(_pyfunc(out, ROWS)), reference.predict(ROWS))
    native = mlflow.sklearn.load_model(str(out))
    np.testing.assert_array_equal(native.predict(ROWS), reference.predict(ROWS))
    assert json.loads((out / "verification.json").read_text())["passed"] is True
    assert oct((out / "MLmodel").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp left beside it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_xgboost_live_booster(tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 5)
    out = tmp_path / "model"
    assert target.export(as_loaded(booster), out).passed
    assert _mlmodel(out)["flavors"]["xgboost"]["model_format"] == "ubj"
    want = booster.predict(xgb.DMatrix(ROWS))
    np.testing.assert_allclose(np.asarray(_pyfunc(out, ROWS)), want, rtol=1e-6)
    np.testing.assert_allclose(mlflow.xgboost.load_model(str(out)).predict(xgb.DMatrix(ROWS)), want, rtol=1e-6)


def test_legacy_xgboost_is_saved_as_the_current_booster(corpus, tmp_path):
    pytest.importorskip("xgboost")
    golden = corpus / "golden"
    rows = np.loadtxt(golden / "cookbook-xgboost-1.inputs.csv", delimiter=",", ndmin=2).astype(np.float32)
    want = np.loadtxt(golden / "cookbook-xgboost-1.pred.csv", delimiter=",", ndmin=1)  # XGBoost 1.7.6's own
    loaded = loaders.load(corpus / "cookbook-xgboost-1" / "model.tar.gz")
    out = tmp_path / "model"
    result = target.export(loaded, out, sample=rows)
    assert result.passed and result.facts["flavor"] == "xgboost"
    assert _mlmodel(out)["metadata"]["artifact_tools"]["era"] == loaded.info["era"]
    assert (out / "model.ubj").read_bytes()[:1] == b"{"  # UBJSON: the current format, not the legacy binary
    np.testing.assert_allclose(np.asarray(_pyfunc(out, rows)).ravel(), want.ravel(), rtol=0, atol=1e-5)


def test_xgboost_with_categorical_features_exports_and_predicts_categories(tmp_path, capsys):
    """`artifact-tools export --to mlflow` of a booster trained on a pandas category column (MLflow's xgboost
    flavor refuses its category dtype): MLflow's python_function takes the category values and predicts what
    XGBoost itself predicts on the categorical frame, every category and a missing one included."""
    xgb = pytest.importorskip("xgboost")
    pd = pytest.importorskip("pandas")
    from mlflow.pyfunc.scoring_server import invocations

    from artifact_tools.cli import main

    rng = np.random.default_rng(5)
    colours = np.array(["red", "green", "blue"])
    names = colours[rng.integers(0, 3, 240)]
    x = rng.normal(size=240).astype(np.float32)
    y = x + np.select([names == "red", names == "green"], [2.0, -1.5], 0.5)
    frame = pd.DataFrame({"x": x, "colour": pd.Categorical(names)})
    booster = xgb.train({"max_depth": 3, "max_cat_to_onehot": 1, "seed": 1},
                        xgb.DMatrix(frame, label=y, enable_categorical=True), 8)
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "xgboost-model").write_bytes(bytes(booster.save_raw("json")))
    art = _tar(folder, tmp_path / "model.tar.gz")
    out = tmp_path / "mlflow"

    assert main(["-q", "export", str(art), "--to", "mlflow", str(out)]) == 0, capsys.readouterr().err
    inputs = {c["name"]: c["type"] for c in json.loads(_mlmodel(out)["signature"]["inputs"])}
    assert inputs == {"x": "float", "colour": "string"}

    rows = ["blue", "red", "green", "red", None]
    xs = np.float32([0.3, -1.2, 0.8, 1.5, 0.1])
    # XGBoost's own predictions on the categorical frame (categories listed in another order: it re-codes them)
    source = pd.DataFrame({"x": xs, "colour": pd.Categorical(rows, categories=["red", "blue", "green"])})
    want = booster.predict(xgb.DMatrix(source, enable_categorical=True))
    assert len(set(np.round(want[:3], 4))) == 3  # the three categories do predict differently
    got = _pyfunc(out, pd.DataFrame({"x": xs, "colour": rows}))
    np.testing.assert_allclose(np.asarray(got).ravel(), want, rtol=1e-6)

    pyfunc = mlflow.pyfunc.load_model(str(out))  # the JSON request `mlflow models serve` handles
    body = json.dumps({"dataframe_split": {"columns": ["x", "colour"], "data": [[float(a), b] for a, b in
                                                                               zip(xs, rows)]}})
    answer = invocations(body, "application/json", pyfunc, pyfunc.metadata.get_input_schema())
    assert answer.status == 200, answer.response
    np.testing.assert_allclose(np.ravel(json.loads(answer.response)["predictions"]), want, rtol=1e-6)


def test_legacy_xgboost_with_categorical_features_takes_category_codes(tmp_path):
    """An XGBoost 1.7.6 pickle trained on a categorical column records no categories: it predicts from category
    codes, which the MLflow model takes as numbers (NaN: missing); expected: XGBoost 1.7.6's own predictions."""
    pytest.importorskip("xgboost")
    pd = pytest.importorskip("pandas")
    data = ROOT / "tests" / "data" / "xgboost_legacy"
    rows = np.loadtxt(data / "x176-categorical.inputs.csv", delimiter=",", ndmin=2)
    want = np.loadtxt(data / "x176-categorical.pred.csv", delimiter=",", ndmin=1)
    assert np.isnan(rows[:, 1]).any() and len(set(rows[~np.isnan(rows[:, 1]), 1])) > 2
    loaded = loaders.load(data / "x176-categorical.p4.pkl")

    frame_out = tmp_path / "frame"  # verified on the loader's own sample: a categorical frame
    result = target.export(loaded, frame_out)
    assert result.passed and result.facts["flavor"] == "artifact-tools", result.summary()
    frame = pd.DataFrame({"num": rows[:, 0].astype(np.float32), "colour": rows[:, 1]})
    np.testing.assert_allclose(np.asarray(_pyfunc(frame_out, frame)).ravel(), want, rtol=0, atol=1e-5)

    array_out = tmp_path / "array"  # verified on an array of rows, codes in the categorical column
    assert target.export(loaded, array_out, sample=rows.astype(np.float32)).passed
    np.testing.assert_allclose(np.asarray(_pyfunc(array_out, rows.astype(np.float32))).ravel(), want, rtol=0,
                               atol=1e-5)


def test_lightgbm_booster(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    X, y = make_samples.make_data()
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(X, label=y), num_boost_round=5)
    folder = tmp_path / "src"
    folder.mkdir()
    booster.save_model(str(folder / "model.txt"))
    out = tmp_path / "model"
    result = target.export(loaders.load(_tar(folder, tmp_path / "lgb.tar.gz")), out, sample=ROWS)
    assert result.passed and "lightgbm" in _mlmodel(out)["flavors"]
    want = booster.predict(ROWS.astype(np.float64))
    np.testing.assert_allclose(np.asarray(_pyfunc(out, ROWS)), want, rtol=1e-6)


def test_catboost_classifier_labels_and_probabilities(tmp_path):
    cb = pytest.importorskip("catboost")
    X, y = make_samples.make_data()
    model = cb.CatBoostClassifier(iterations=5, depth=2, verbose=False, random_seed=0,
                                  allow_writing_files=False).fit(X, y)
    folder = tmp_path / "src"
    folder.mkdir()
    model.save_model(str(folder / "model.cbm"))
    out = tmp_path / "model"
    result = target.export(loaders.load(_tar(folder, tmp_path / "cb.tar.gz")), out, sample=ROWS)
    assert result.passed and [c.name for c in result.checks][-1] == "mlflow.catboost.load_model"
    np.testing.assert_array_equal(np.asarray(_pyfunc(out, ROWS)).ravel(), model.predict(ROWS).ravel())
    np.testing.assert_allclose(mlflow.catboost.load_model(str(out)).predict_proba(ROWS), model.predict_proba(ROWS),
                               rtol=1e-6)


def test_keras_model(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="softmax")])
    out = tmp_path / "model"
    result = target.export(as_loaded(model), out, sample=ROWS)
    assert result.passed and result.facts["flavor"] == "tensorflow"
    np.testing.assert_allclose(np.asarray(_pyfunc(out, ROWS)), np.asarray(model(ROWS)), rtol=1e-5, atol=1e-6)


def test_pytorch_module_is_saved_as_an_exported_program(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).eval()
    out = tmp_path / "model"
    result = target.export(as_loaded(net), out, sample=ROWS[:3])
    assert result.passed and result.facts["flavor"] == "pytorch"
    assert not list(out.rglob("*.pth"))  # a torch.export program, not a pickled module
    with torch.no_grad():
        want = net(torch.as_tensor(ROWS)).numpy()
    np.testing.assert_allclose(np.asarray(_pyfunc(out, ROWS)), want, rtol=1e-5, atol=1e-6)


def test_onnx_artifact(tmp_path):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression

    X, y = make_samples.make_data()
    data = skl2onnx.to_onnx(LogisticRegression().fit(X, y), X[:1], options={"zipmap": False}).SerializeToString()
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(data)
    out = tmp_path / "model"
    result = target.export(loaders.load(_tar(folder, tmp_path / "onnx.tar.gz")), out, sample=ROWS)
    assert result.passed and result.facts["flavor"] == "onnx"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {session.get_inputs()[0].name: ROWS})
    got = _pyfunc(out, ROWS)
    np.testing.assert_array_equal(np.asarray(got["label"]), label)
    np.testing.assert_allclose(np.asarray(got["probabilities"]), proba, rtol=1e-6)


def test_huggingface_pipeline(samples, tmp_path):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    art = samples("huggingface")
    out = tmp_path / "model"
    result = target.export(loaders.load(art), out)
    assert result.passed and result.facts["flavor"] == "transformers"
    texts = ["good movie", "awful movie", "the movie is bad"]
    got = _pyfunc(out, texts)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = untar(art, tmp_path / "hf")
    model, tok = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        probs = torch.softmax(model(**tok(texts, return_tensors="pt", padding=True)).logits, -1).numpy()
    assert list(got["label"]) == [model.config.id2label[i] for i in probs.argmax(1)]
    np.testing.assert_allclose(got["score"].to_numpy(), probs.max(1), rtol=1e-4)


def test_spark_pipeline(spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression as SparkLR
    from pyspark.ml.feature import VectorAssembler

    X, y = make_samples.make_data(n=60)
    names = ["a", "b", "c", "d"]
    frame = spark.createDataFrame([(*map(float, row), float(label)) for row, label in zip(X, y)], [*names, "label"])
    fitted = Pipeline(stages=[VectorAssembler(inputCols=names, outputCol="features"),
                              SparkLR(maxIter=5)]).fit(frame)
    fitted.save(str(tmp_path / "pipeline"))
    out = tmp_path / "model"
    result = target.export(loaders.load(tmp_path / "pipeline"), out)
    assert result.passed and result.facts["flavor"] == "spark"
    import pandas as pd

    rows = pd.DataFrame(ROWS.astype(np.float64), columns=names)
    want = [r.prediction for r in fitted.transform(spark.createDataFrame(rows)).select("prediction").collect()]
    np.testing.assert_array_equal(np.asarray(_pyfunc(out, rows)).ravel(), want)


# ------------------------------------------------------------------------------ artifact-tools python_function

def test_mxnet_builtin_loads_through_artifact_tools(corpus, tmp_path):
    mx = pytest.importorskip("mxnet")
    import zipfile

    from mxnet import gluon

    art = corpus / "cookbook-ll" / "model.tar.gz"
    rows = np.random.default_rng(3).normal(size=(6, 1)).astype(np.float32)
    out = tmp_path / "model"
    result = target.export(loaders.load(art), out, sample=rows)
    assert result.passed and result.facts["flavor"] == "artifact-tools"
    meta = _mlmodel(out)
    assert set(meta["flavors"]) == {"python_function"}
    assert meta["flavors"]["python_function"]["loader_module"] == "exporters.mlflow"
    copied = out / meta["flavors"]["python_function"]["data"] / "source" / "model.tar.gz"
    assert copied.read_bytes() == art.read_bytes()  # the original artifact, byte for byte
    pins = _requirements(out)
    assert any(k.startswith("artifact-tools[mxnet]") for k in pins) and pins["mxnet"] == _installed("mxnet")
    files = untar(art, tmp_path / "files")  # the expected scores: MXNet's own SymbolBlock on the built-in's files
    with zipfile.ZipFile(files / "model_algo-1") as zf:
        zf.extractall(tmp_path / "inner")
    block = gluon.SymbolBlock.imports(str(tmp_path / "inner" / "mx-mod-symbol.json"), ["data", "out_label"],
                                      str(tmp_path / "inner" / "mx-mod-0000.params"), ctx=mx.cpu())
    want = block(mx.nd.array(rows), mx.nd.zeros((len(rows),))).asnumpy().ravel()
    got = _pyfunc(out, rows)
    np.testing.assert_allclose(got["score"].to_numpy(), want, rtol=1e-5, atol=1e-30)


def test_tensorflow_savedmodel_loads_through_artifact_tools(samples, tmp_path):
    tf = pytest.importorskip("tensorflow")
    art = samples("tensorflow")
    out = tmp_path / "model"
    result = target.export(loaders.load(art), out, sample=ROWS)
    assert result.passed and result.facts["flavor"] == "artifact-tools"
    assert any(k.startswith("artifact-tools[tensorflow]") for k in _requirements(out))
    fn = tf.saved_model.load(str(untar(art, tmp_path / "files") / "1")).signatures["serving_default"]
    [name] = fn.structured_input_signature[1]
    want = next(iter(fn(**{name: tf.constant(ROWS)}).values())).numpy()
    np.testing.assert_allclose(np.asarray(_pyfunc(out, ROWS)), want, rtol=1e-5, atol=1e-6)


def test_live_model_without_flavor_or_artifact_is_refused(tmp_path):
    mx = pytest.importorskip("mxnet")
    net = mx.gluon.nn.Dense(2, in_units=4)
    net.initialize()
    with pytest.raises(ArtifactError, match="MLflow has no flavor for a live mxnet model"):
        target.export(as_loaded(net), tmp_path / "model", sample=ROWS)
    assert not (tmp_path / "model").exists() and list(tmp_path.iterdir()) == []


def test_existing_output_and_unknown_options_are_refused(samples, tmp_path):
    art = samples("xgboost")
    (tmp_path / "model").mkdir()
    with pytest.raises(ArtifactError, match="already exists"):
        target.export(loaders.load(art), tmp_path / "model")
    with pytest.raises(ArtifactError, match="unknown option.*registry_uri"):
        target.export(loaders.load(art), tmp_path / "other", registery_uri="http://x")
    with pytest.raises(ArtifactError, match="pass registry_uri"):
        target.export(loaders.load(art), tmp_path / "other", tracking_uri="http://127.0.0.1:1")
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------------------ real servers (slow)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{MLFLOW_BIN.parent}{os.pathsep}{env.get('PATH', '')}"  # an activated venv: uvicorn is found
    # the served model's loader_module (exporters.mlflow) from this checkout, whatever the install points at
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_mlflow_models_serve_answers_invocations(samples, tmp_path):
    """The artifact-tools python_function (an MXNet Gluon sample) served by `mlflow models serve`."""
    pytest.importorskip("mxnet")
    art = samples("mxnet")
    loaded = loaders.load(art)
    out = tmp_path / "model"
    assert target.export(loaded, out, sample=ROWS[:2]).passed
    port = _free_port()
    proc = _start([str(MLFLOW_BIN), "models", "serve", "-m", str(out), "--env-manager", "local", "-h", "127.0.0.1",
                   "-p", str(port)], tmp_path)
    try:
        _wait_http(f"http://127.0.0.1:{port}/ping", proc)
        body = {"dataframe_split": {"columns": list(range(4)), "data": ROWS.tolist()}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.loads(r.read())
    finally:
        _stop(proc)
    import mxnet as mx
    from mxnet import gluon

    files = untar(art, tmp_path / "files")
    block = gluon.SymbolBlock.imports(str(files / "model-symbol.json"), ["data"], str(files / "model-0000.params"),
                                      ctx=mx.cpu())
    want = block(mx.nd.array(ROWS)).asnumpy()
    np.testing.assert_allclose(np.asarray(answer["predictions"], dtype=np.float64), want, rtol=1e-5, atol=1e-6)


def test_registration_in_a_real_mlflow_server(samples, tmp_path):
    xgb = pytest.importorskip("xgboost")
    art = samples("xgboost")
    port = _free_port()
    proc = _start([str(MLFLOW_BIN), "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                   "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1"], tmp_path)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{uri}/health", proc)
        out = tmp_path / "model"
        result = target.export(loaders.load(art), out, registry_uri=uri, name="abalone", sagemaker_model="sm-abalone",
                               sagemaker_job="train-abalone-1")
        assert result.passed and result.facts["registered_model"] == "abalone"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = client.get_model_version("abalone", result.facts["model_version"])
        tags = version.tags
        import hashlib

        assert tags["artifact_tools.source_sha256"] == hashlib.sha256(art.read_bytes()).hexdigest()
        assert tags["sagemaker.model_name"] == "sm-abalone" and tags["sagemaker.training_job"] == "train-abalone-1"
        assert tags["artifact_tools.framework"] == "xgboost" and tags["artifact_tools.era"]
        assert version.source.endswith("/model") and version.run_id == result.facts["run_id"]
        logged = client.download_artifacts(version.run_id, "model", str(tmp_path / "downloaded"))
        model = mlflow.pyfunc.load_model(logged)
        with tarfile.open(art) as tf:
            booster = xgb.Booster()
            booster.load_model(bytearray(tf.extractfile("xgboost-model").read()))
        np.testing.assert_allclose(np.asarray(model.predict(ROWS)), booster.predict(xgb.DMatrix(ROWS)), rtol=1e-6)
        again = target.export(loaders.load(art), tmp_path / "model2", registry_uri=uri, name="abalone")
        assert again.facts["model_version"] == str(int(version.version) + 1)
    finally:
        _stop(proc)
    assert not (tmp_path / "mlruns").exists() and not Path("mlruns").exists()


# ------------------------------------------------------------------------------------------------ hostile input

def _cli_env(tmp: Path) -> dict:
    """The checkout's own code, a private TMPDIR (for the exporter's scratch folder)."""
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}


def test_state_sharing_references_is_refused_in_one_sentence_and_leaves_nothing(tmp_path):
    """make_hostile.py's c7-repr-bomb-in-model, built with that script's own helpers: a working LogisticRegression
    whose state holds 150 levels of (x, x) tuples, which skops would write as 2**150 nodes."""
    import make_hostile

    ctx = make_hostile.Ctx(tmp_path / "hostile", tmp_path / "canaries")
    bomb = make_hostile.Raw(b"]" + b"2\x86" * 150)  # EMPTY_LIST, then (DUP, TUPLE2) 150 times
    art = ctx.out / ctx.sklearn_tar("c7-repr-bomb-in-model",
                                    make_hostile.joblib_bytes(make_hostile.with_hidden(ctx.logistic(), "_tree", bomb)))
    work = tmp_path / "work"
    work.mkdir()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "artifact_tools", "export", str(art), "--to", "mlflow",
                           str(work / "out")], capture_output=True, text=True, timeout=120, cwd=work,
                          env=_cli_env(tmp_path / "tmp"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert time.monotonic() - start < 60
    assert len(proc.stderr.strip().splitlines()) == 1 and "skops" in proc.stderr and "Traceback" not in proc.stderr
    assert list(work.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_state_expanding_past_the_bound_is_refused_before_skops(samples, tmp_path):
    """20 levels of shared tuples (2**20 leaves, within skops' recursion depth): refused by size; the same
    model without them exports."""
    loaded = loaders.load(samples("sklearn"))
    x: object = ()
    for _ in range(20):
        x = (x, x)
    loaded.model.__dict__["_shared"] = x
    with pytest.raises(ArtifactError, match="expands to") as refused:
        target.export(loaded, tmp_path / "model", sample=ROWS[:3])
    nodes = int(str(refused.value).split("expands to ")[1].split(" ")[0].replace(",", ""))
    assert 2**21 - 1 < nodes < 2**21 + 200  # the tuples' full tree (2**21 - 1 nodes) and the estimator's state
    assert list(tmp_path.iterdir()) == []
    del loaded.model.__dict__["_shared"]
    assert target.export(loaded, tmp_path / "model", sample=ROWS[:3]).passed


def test_sigterm_through_the_cli_leaves_no_temp_behind(samples, tmp_path):
    art = samples("sklearn")
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "artifact_tools", "export", str(art), "--to", "mlflow",
                             str(work / "out"), "-o", "sample=" + str(_sample_csv(tmp_path))], cwd=tmp_path,
                            env=_cli_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        # both temps exist from the moment the exporter starts writing until it publishes
        while not (list(work.glob(".out.partial-*")) and list(tmp.glob("artifact-tools-mlflow-*"))):
            assert proc.poll() is None and time.monotonic() < deadline, "the export ended before it was stopped"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, err
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == [], err


def _sample_csv(folder: Path) -> Path:
    path = folder / "sample.csv"
    np.savetxt(path, ROWS[:3], delimiter=",")
    return path
