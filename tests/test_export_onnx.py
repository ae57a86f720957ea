"""ONNX export: every written model.onnx is re-run here with onnxruntime (a fresh session, not the exporter's) and
compared with the source framework's own predictions: scikit-learn, XGBoost (current and a legacy SageMaker
pickle), LightGBM, CatBoost, Keras (tf2onnx), a TensorFlow SavedModel artifact, a Hugging Face text classifier,
a PyTorch module, and the MXNet built-ins and Gluon exports of the corpus against MXNet itself (backend="mxnet").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import exporters.onnx as onnx_target
import loaders
from artifact_tools.errors import ArtifactError
from exporters import as_loaded

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from helpers import untar  # noqa: E402

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run(folder: Path, feeds: dict) -> dict:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def _rows(n: int = 40, width: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ MXNet built-ins

BUILTINS = {
    "cookbook-ll": "cookbook-ll/model.tar.gz",
    "ex-ll-adult": "ex-ll-adult/ll-adult-prediction-model.tar.gz",
    "movies-kmeans-a": "movies-kmeans-a/model.tar.gz",
    "plagiarism-pca": "plagiarism-pca/model.tar.gz",
    "sm-fm-recsys": "sm-fm-recsys/model.tar.gz",
    "covid-ntm": "covid-ntm/downloaded_model.tar.gz",
}


def _builtin_rows(name: str, width: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    if name == "covid-ntm":  # word counts of a bag of words
        return rng.poisson(0.05, size=(6, width)).astype(np.float32)
    if name == "sm-fm-recsys":  # one-hot user and item, as Factorization Machines are trained
        x = np.zeros((6, width), dtype=np.float32)
        for i in range(6):
            x[i, [rng.integers(0, width // 2), rng.integers(width // 2, width)]] = 1.0
        return x
    return rng.normal(size=(6, width)).astype(np.float32) * 3


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_mxnet_builtins_match_mxnet(corpus, tmp_path, name):
    pytest.importorskip("mxnet")
    model = loaders.load(corpus / BUILTINS[name], backend="mxnet")  # predictions computed by MXNet
    width = model.info.get("feature_dim") or model.info.get("dim")
    x = _builtin_rows(name, width)
    expected = model.predict(x)
    result = onnx_target.export(model, tmp_path / "out", sample=x)
    assert result.passed and (tmp_path / "out" / "model.onnx").is_file()
    got = _run(tmp_path / "out", {"data": x})
    if isinstance(expected, np.ndarray):  # PCA's projection, NTM's encoder mean
        np.testing.assert_allclose(got["mean" if name == "covid-ntm" else "projection"], expected, rtol=1e-4,
                                   atol=1e-5)
        return
    for column in expected.columns:
        want = expected[column].to_numpy()
        if want.dtype.kind in "iu":
            np.testing.assert_array_equal(got[column], want)
        else:
            np.testing.assert_allclose(got[column], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["sdk-mxnet-mnist", "mxnet-gluon-py2-headpose"])
def test_mxnet_gluon_exports_match_mxnet(corpus, tmp_path, name):
    pytest.importorskip("mxnet")
    model = loaders.load(corpus / name / "model.tar.gz")
    x = np.asarray(model.sample_input(), dtype=np.float32)
    expected = model.predict(x)
    expected = expected if isinstance(expected, list) else [expected]
    onnx_target.export(model, tmp_path / "out", sample=x)
    got = list(_run(tmp_path / "out", {model.info["inputs"][0]: x}).values())
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ tabular

def test_sklearn_pipeline_labels_and_column_transformer(tmp_path):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = _rows()
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    clf = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    result = onnx_target.export(as_loaded(clf), tmp_path / "clf", sample=x[:5])
    assert result.facts["prediction"] == "output 'label'"
    np.testing.assert_array_equal(_run(tmp_path / "clf", {"input": x})["label"], clf.predict(x))

    frame = pd.DataFrame({"city": ["a", "b", "c", "a"] * 10, "size": x[:, 0].astype(np.float64)})
    reg = make_pipeline(ColumnTransformer([("city", OneHotEncoder(), ["city"]), ("size", "passthrough", ["size"])]),
                        Ridge()).fit(frame, x[:, 1])
    onnx_target.export(as_loaded(reg), tmp_path / "reg", sample=frame.head(4))
    got = _run(tmp_path / "reg", {"city": frame[["city"]].to_numpy().astype(object),
                                  "size": frame[["size"]].to_numpy().astype(np.float32)})
    np.testing.assert_allclose(got["variable"].ravel(), reg.predict(frame), rtol=1e-4, atol=1e-5)


def test_xgboost_binary_and_multiclass(tmp_path):
    xgb = pytest.importorskip("xgboost")
    x = _rows(60)
    binary = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=(x[:, 0] > 0)), 8)
    onnx_target.export(as_loaded(binary), tmp_path / "bin")
    got = _run(tmp_path / "bin", {"input": x})["probabilities"][:, 1]
    np.testing.assert_allclose(got, binary.predict(xgb.DMatrix(x)), rtol=1e-4, atol=1e-5)

    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, label=labels), 8)
    onnx_target.export(as_loaded(multi), tmp_path / "multi")
    got = _run(tmp_path / "multi", {"input": x})["probabilities"]
    np.testing.assert_allclose(got, multi.predict(xgb.DMatrix(x)), rtol=1e-4, atol=1e-5)


def test_legacy_sagemaker_xgboost_goes_through_the_current_booster(corpus, tmp_path):
    xgb = pytest.importorskip("xgboost")
    model = loaders.load(corpus / "xgbcontainer-pickled")
    assert model.info.get("converted")
    x = np.asarray(model.sample_input(), dtype=np.float32)
    result = onnx_target.export(model, tmp_path / "out")
    assert any("converted to the current Booster" in n for n in result.notes)
    got = _run(tmp_path / "out", {"input": x})
    want = model.model.predict(xgb.DMatrix(x))  # the converted Booster itself
    key = result.facts["prediction"]
    value = got["probabilities"][:, 1] if key == "probabilities[:, 1]" else got[key.split("[")[0]]
    np.testing.assert_allclose(np.asarray(value).reshape(want.shape), want, rtol=1e-4, atol=1e-5)


def test_lightgbm_multiclass(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    x = _rows(90)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 5},
                        lgb.Dataset(x, label=labels), 6)
    from loaders.base import LoadedModel

    loaded = LoadedModel(booster, "lightgbm", lambda d: booster.predict(np.asarray(d, dtype=np.float64)))
    onnx_target.export(loaded, tmp_path / "out", sample=x[:5])
    np.testing.assert_allclose(_run(tmp_path / "out", {"input": x})["probabilities"], booster.predict(x),
                               rtol=1e-4, atol=1e-5)


def test_catboost_classifier_and_categorical_refusal(tmp_path):
    catboost = pytest.importorskip("catboost")
    pd = pytest.importorskip("pandas")
    from loaders.base import LoadedModel

    x = _rows(60)
    labels = (x[:, 0] > 0).astype(int)
    model = catboost.CatBoostClassifier(iterations=10, depth=3, verbose=0, allow_writing_files=False).fit(x, labels)
    loaded = LoadedModel(model, "catboost", lambda d: model.predict_proba(np.asarray(d)), info={"kind": "classifier"})
    onnx_target.export(loaded, tmp_path / "out", sample=x[:5])
    got = _run(tmp_path / "out", {"features": x})["probabilities"]
    got = np.asarray([[row[k] for k in sorted(row)] for row in got])
    np.testing.assert_allclose(got, model.predict_proba(x), rtol=1e-4, atol=1e-5)

    frame = pd.DataFrame({"c": ["a", "b"] * 30, "v": x[:, 0]})
    with_cat = catboost.CatBoostClassifier(iterations=3, verbose=0, cat_features=[0],
                                           allow_writing_files=False).fit(frame, labels)
    loaded = LoadedModel(with_cat, "catboost", lambda d: with_cat.predict_proba(d), info={"kind": "classifier"})
    with pytest.raises(ArtifactError, match="only models with numeric features"):
        onnx_target.export(loaded, tmp_path / "cat", sample=frame.head(2))
    assert not (tmp_path / "cat").exists()


# ------------------------------------------------------------------------------------------------ networks

def test_keras_model_through_tf2onnx(tmp_path):
    pytest.importorskip("tf2onnx")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    x = _rows(8)
    result = onnx_target.export(as_loaded(model), tmp_path / "out", sample=x)
    got = _run(tmp_path / "out", {result.facts["inputs"][0]["name"]: x})
    np.testing.assert_allclose(next(iter(got.values())), np.asarray(model(x)), rtol=1e-4, atol=1e-5)


def test_tensorflow_savedmodel_artifact_through_the_tf2onnx_cli(tmp_path):
    pytest.importorskip("tf2onnx")
    tf = pytest.importorskip("tensorflow")
    artifact = make_samples.build_tensorflow(tmp_path / "src")
    model = loaders.load(artifact)
    x = model.sample_input()
    result = onnx_target.export(model, tmp_path / "out")
    assert result.passed
    folder = loaders.cache.prepare(artifact)[1] / model.info["model_dir"]
    fn = tf.saved_model.load(str(folder)).signatures[model.info["signature"]]
    (key, spec), = fn.structured_input_signature[1].items()
    want = next(iter(fn(**{key: tf.constant(np.asarray(x), dtype=spec.dtype)}).values())).numpy()
    feeds = {result.facts["inputs"][0]["name"]: np.asarray(x, dtype=np.float32)}
    np.testing.assert_allclose(next(iter(_run(tmp_path / "out", feeds).values())), want, rtol=1e-4, atol=1e-5)


def _tf1_session_run(folder: Path, feeds: dict) -> dict:
    """TensorFlow's own answer: the SavedModel's serving_default signature in a TF 1 session."""
    tf = pytest.importorskip("tensorflow")
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        sig = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(folder)).signature_def["serving_default"]
        return sess.run({k: v.name for k, v in sig.outputs.items()},
                        {sig.inputs[k].name: v for k, v in feeds.items()})


def test_tf1_savedmodel_whose_input_is_computed_from_a_proto_parser(corpus, tmp_path):
    """TF Serving's half_plus_two (TF 1.0): x is an Identity of a ParseExample output, and a second signature parses a
    scalar string, on which the tf2onnx CLI (TF 2's v1 loader) fails; the graph is cut at x instead."""
    pytest.importorskip("tf2onnx")
    art = corpus / "sdk-tfs-test-model" / "tensorflow-serving-test-model.tar.gz"
    result = onnx_target.export(loaders.load(art), tmp_path / "out")
    assert [i["name"] for i in result.facts["inputs"]] == ["x"]
    x = np.linspace(-3, 5, 9, dtype=np.float32).reshape(-1, 1)
    want = _tf1_session_run(next(untar(art, tmp_path / "files").rglob("00000123")), {"x": x})["y"]
    np.testing.assert_allclose(_run(tmp_path / "out", {"x": x})["y"], want, rtol=1e-6)


def test_tf1_estimator_taking_tf_examples_takes_the_features(corpus, tmp_path):
    pytest.importorskip("tf2onnx")
    tf = pytest.importorskip("tensorflow")
    art = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    result = onnx_target.export(loaders.load(art), tmp_path / "out")
    assert [i["name"] for i in result.facts["inputs"]] == ["inputs"] and any("tf.Example" in n for n in result.notes)
    rows = np.random.default_rng(4).normal(loc=3.0, scale=2.0, size=(12, 4)).astype(np.float32)
    protos = np.asarray([tf.train.Example(features=tf.train.Features(feature={"inputs": tf.train.Feature(
        float_list=tf.train.FloatList(value=r.tolist()))})).SerializeToString() for r in rows], dtype=object)
    folder = next(p.parent for p in untar(art, tmp_path / "files").rglob("saved_model.pb"))
    want = _tf1_session_run(folder, {"inputs": protos})
    got = _run(tmp_path / "out", {"inputs": rows})
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-4, atol=1e-6)
    assert got["classes"].astype(bytes).tolist() == want["classes"].tolist()
    assert len(set(want["scores"].argmax(axis=1).tolist())) > 1  # the rows reach more than one class


def test_huggingface_text_classifier_with_its_tokenizer(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    artifact = make_samples.build_huggingface(tmp_path / "src")
    model = loaders.load(artifact)
    texts = ["a great movie", "the movie is awful", "good"]
    result = onnx_target.export(model, tmp_path / "out", sample=texts)
    assert result.files == ["model.onnx", "tokenizer/"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out" / "tokenizer"))
    enc = tokenizer(texts, padding=True, return_tensors="np")
    feeds = {i["name"]: enc[i["name"]].astype(np.int64) for i in result.facts["inputs"]}
    with torch.no_grad():
        want = model.model(**{k: torch.as_tensor(v) for k, v in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(_run(tmp_path / "out", feeds)["logits"], want, rtol=1e-3, atol=1e-5)


def test_pytorch_module(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    x = _rows(7)
    onnx_target.export(as_loaded(net), tmp_path / "out", sample=x)
    with torch.no_grad():
        want = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(_run(tmp_path / "out", {"input": x})["output"], want, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------------------------------ rules

def test_existing_output_refused_and_nothing_left_behind(corpus, tmp_path):
    model = loaders.load(corpus / BUILTINS["plagiarism-pca"])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArtifactError, match="already exists"):
        onnx_target.export(model, out)
    result = onnx_target.export(model, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "verification.json"]
    assert result.facts["tolerance"] == {"rtol": 1e-4, "atol": 1e-5}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert oct((out / "model.onnx").stat().st_mode & 0o777) != "0o600"


def test_unknown_option_and_unsupported_framework_are_one_sentence(tmp_path):
    from loaders.base import LoadedModel

    with pytest.raises(ArtifactError, match="unknown option"):
        onnx_target.export(LoadedModel(None, "sklearn", lambda d: d), tmp_path / "a", colour="red")
    with pytest.raises(ArtifactError, match="no converter turns an MLeap bundle into ONNX"):
        onnx_target.export(LoadedModel(None, "mleap", lambda d: d), tmp_path / "b")
    with pytest.raises(ArtifactError, match="k-NN built-in holds a FAISS index, for which no ONNX converter"):
        onnx_target.export(LoadedModel(None, "sagemaker-builtin", lambda d: d, info={"algorithm": "knn"}),
                           tmp_path / "c")


def test_onnx_artifact_with_external_data_is_written_whole(tmp_path):
    import make_wild_fixtures

    (tmp_path / "src").mkdir()
    case = make_wild_fixtures.onnx_external_data(tmp_path / "src")
    result = onnx_target.export(loaders.load(case.path), tmp_path / "out", sample=case.X)
    assert result.passed and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx",
                                                                                      "verification.json"]
    got = _run(tmp_path / "out", {"x": np.asarray(case.X, dtype=np.float32)})["y"]
    np.testing.assert_allclose(got, case.expected, rtol=1e-5, atol=1e-6)  # numpy's x @ W + b


def test_image_classification_builtin_resnet_graph(corpus, tmp_path):
    """The image classification built-in's real ResNet-50 graph (tempe-graffiti-ic ships no params: seeded random
    ones of the shapes MXNet infers, aux statistics positive), translated and compared with MXNet's forward."""
    mx = pytest.importorskip("mxnet")
    src = corpus / "tempe-graffiti-ic"
    folder = tmp_path / "ic"
    folder.mkdir()
    for name in ("image-classification-symbol.json", "model-shapes.json"):
        (folder / name).write_bytes((src / name).read_bytes())
    sym = mx.sym.load(str(folder / "image-classification-symbol.json"))
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, 224, 224))
    rng = np.random.default_rng(0)
    params = {f"arg:{n}": mx.nd.array(rng.normal(scale=0.05, size=s).astype(np.float32))
              for n, s in zip(sym.list_arguments(), arg_shapes) if n not in ("data", "softmax_label")}
    params.update({f"aux:{n}": mx.nd.array(rng.uniform(0.5, 1.5, size=s).astype(np.float32))
                   for n, s in zip(sym.list_auxiliary_states(), aux_shapes)})
    mx.nd.save(str(folder / "image-classification-0000.params"), params)
    model = loaders.load(folder)
    assert model.info["algorithm"] == "image-classification"
    x = rng.normal(size=(2, 3, 224, 224)).astype(np.float32)
    result = onnx_target.export(model, tmp_path / "out", sample=x)
    assert result.passed
    exe = sym.bind(mx.cpu(), {"data": mx.nd.array(x), "softmax_label": mx.nd.zeros((2,)),
                              **{k[4:]: v for k, v in params.items() if k.startswith("arg:")}},
                   aux_states={k[4:]: v for k, v in params.items() if k.startswith("aux:")})
    want = exe.forward(is_train=False)[0].asnumpy()
    (got,) = _run(tmp_path / "out", {"data": x}).values()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name, words", [
    ("x176-gblinear.model", "tree boosters (gbtree) only; this model uses the gblinear booster"),
    ("x090-dart.model", "this model uses the dart booster"),
    ("x176-rank-pairwise.model", "no XGBoost conversion for the rank:pairwise objective"),
    ("x176-survival-aft.model", "no XGBoost conversion for the survival:aft objective")])
def test_xgboost_models_onnxmltools_cannot_convert_are_refused_by_name(tmp_path, name, words):
    pytest.importorskip("xgboost")
    model = loaders.load(ROOT / "tests" / "data" / "xgboost_legacy" / name)
    with pytest.raises(ArtifactError, match=words.replace("(", r"\(").replace(")", r"\)")):
        onnx_target.export(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
