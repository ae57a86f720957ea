"""``LoadedModel.sample_input()`` for TensorFlow, ONNX, LightGBM, CatBoost and Hugging Face (issue 11), and the
exporters verifying with it when no sample is given.

Every sample is checked against what the framework itself reports about the model's inputs (TensorFlow's graph
tensors and ParseExample op, onnxruntime's ``get_inputs()``, ``Booster.num_feature()`` / ``feature_name()``,
CatBoost's feature index getters, the tokenizer's vocabulary), read here independently of the loaders, and the
loaded model must predict on it what the framework's own object predicts on the same values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exporters
import loaders
from artifact_tools.errors import ArtifactError

from helpers import untar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_samples  # noqa: E402

RNG = np.random.default_rng(21)
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(string)": np.object_}


def _dims_agree(declared, actual: tuple, symbols: dict | None = None) -> bool:
    """Known dims as declared; unknown ones (None, negative, a symbol) filled with a small positive size, the same
    size wherever a symbol recurs."""
    if len(declared) != len(actual):
        return False
    for d, a in zip(declared, actual):
        if isinstance(d, int) and d >= 0:
            if d != a:
                return False
        elif not 1 <= a <= 4:
            return False
        elif isinstance(d, str) and symbols is not None and symbols.setdefault(d, a) != a:
            return False
    return True


# ============================================================================================== TensorFlow

tf = pytest.importorskip("tensorflow")


def _graph_inputs(model_dir: Path, signature: str = "serving_default"):
    """Signature input name -> (numpy dtype, shape) from the graph TensorFlow loads, and the session/graph."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(model_dir))
    sig = meta.signature_def[signature]
    tensors = {k: graph.get_tensor_by_name(v.name) for k, v in sig.inputs.items()}
    return {k: (t.dtype.as_numpy_dtype, t.shape.as_list()) for k, t in tensors.items()}, tensors, session


@pytest.mark.parametrize("entry,model_dir", [
    ("sdk-tfs-test-model/tensorflow-serving-test-model.tar.gz", "tfs-test-model/00000123"),
    ("sdk-tfs-model-with-inference", "00000123"),
])
def test_corpus_tf_serving_models_sample_the_signature(corpus, tmp_path, entry, model_dir):
    source = corpus / entry
    folder = source if source.is_dir() else untar(source, tmp_path)
    declared, tensors, session = _graph_inputs(folder / model_dir)
    model = loaders.load(source)
    sample = model.sample_input()
    (name, (dtype, shape)), = declared.items()
    assert sample.dtype == np.dtype(dtype) and _dims_agree(shape, sample.shape)
    expected = session.run(session.graph.get_tensor_by_name("y:0"), {tensors[name]: sample})
    np.testing.assert_allclose(model.predict(sample), expected)


def test_corpus_iris_estimator_sample_holds_the_parsed_features(corpus, tmp_path):
    archive = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    model_dir = untar(archive, tmp_path) / "export" / "Servo" / "1507144001"
    declared, tensors, session = _graph_inputs(model_dir)
    (placeholder,) = tensors.values()
    parse = next(op for op in placeholder.consumers() if op.type.startswith("ParseExample"))
    n_sparse = parse.get_attr("Nsparse")
    keys = [k.decode() for k in session.run(list(parse.inputs[2 + n_sparse:2 + n_sparse + parse.get_attr("Ndense")]))]
    shapes = [tf.TensorShape(s).as_list() for s in parse.get_attr("dense_shapes")]
    assert keys == ["inputs"] and shapes == [[4]]  # what the estimator's graph parses (facts read from TF)
    model = loaders.load(archive)
    sample = model.sample_input()
    assert sample.shape[1:] == (4,) and sample.dtype == np.dtype(parse.get_attr("Tdense")[0].as_numpy_dtype)
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "inputs": tf.train.Feature(float_list=tf.train.FloatList(value=row.tolist()))})).SerializeToString()
        for row in sample]
    scores = session.run(session.graph.get_tensor_by_name("dnn/head/predictions/probabilities:0"),
                         {placeholder: examples})
    np.testing.assert_allclose(model.predict(sample)["scores"], scores)


def test_keras_file_with_two_inputs(tmp_path):
    keras = pytest.importorskip("keras")
    a = keras.Input(shape=(3,), name="numbers")
    b = keras.Input(shape=(2, 5), name="grid")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, keras.layers.Flatten()(b)]))
    net = keras.Model([a, b], out)
    net.save(tmp_path / "model.keras")
    model = loaders.load(tmp_path / "model.keras")
    sample = model.sample_input()
    own = keras.models.load_model(tmp_path / "model.keras")
    assert set(sample) == {t.name for t in own.inputs}
    for t in own.inputs:
        assert _dims_agree(list(t.shape), sample[t.name].shape) and sample[t.name].dtype == np.dtype(t.dtype)
    np.testing.assert_allclose(model.predict(sample), own.predict(sample, verbose=0), rtol=1e-6)


# ============================================================================================== ONNX

@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory):
    """A graph with a symbolic batch shared by three inputs, a second symbolic dim, an unnamed unknown dim, a bool
    scalar and a string input, written with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    folder = tmp_path_factory.mktemp("onnx")
    nodes = [helper.make_node("Identity", ["x"], ["x_out"]), helper.make_node("Identity", ["ids"], ["ids_out"]),
             helper.make_node("Not", ["flag"], ["flag_out"]), helper.make_node("Identity", ["name"], ["name_out"])]
    graph = helper.make_graph(
        nodes, "samples",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
         helper.make_tensor_value_info("name", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("x_out", TensorProto.FLOAT, ["batch", 3, None]),
         helper.make_tensor_value_info("ids_out", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("flag_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("name_out", TensorProto.STRING, ["batch"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    return folder


def test_onnx_sample_follows_onnxruntime_inputs(onnx_folder):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(onnx_folder / "model.onnx"), providers=["CPUExecutionProvider"])
    model = loaders.load(onnx_folder)
    sample = model.sample_input()
    declared = session.get_inputs()
    assert list(sample) == [i.name for i in declared]
    symbols: dict = {}
    for i in declared:
        value = sample[i.name]
        assert value.dtype == np.dtype(_ORT_DTYPES[i.type]), i.name
        assert _dims_agree(i.shape, value.shape, symbols), (i.name, i.shape, value.shape)
    expected = session.run(None, sample)
    got = model.predict(sample)
    for out, want in zip(session.get_outputs(), expected):
        assert np.array_equal(got[out.name], want)


def test_onnx_skl2onnx_classifier_sample(tmp_path):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X = RNG.normal(size=(60, 5)).astype(np.float32)
    (tmp_path / "model.onnx").write_bytes(to_onnx(LogisticRegression().fit(X, X[:, 0] > 0), X[:1]).SerializeToString())
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    model = loaders.load(tmp_path)
    sample = model.sample_input()
    (declared,) = session.get_inputs()
    assert sample.shape[1] == declared.shape[1] == 5 and sample.dtype == np.float32
    assert np.array_equal(model.predict(sample)["output_label"], session.run(None, {declared.name: sample})[0])


# ============================================================================================== LightGBM

def test_lightgbm_samples(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    X = pd.DataFrame(RNG.normal(size=(200, 4)), columns=["age", "income", "score", "height"])
    X["city"] = pd.Categorical(RNG.choice(["paris", "oslo", "lima"], 200))
    y = (X["age"] > 0).astype(int)
    common = {"verbose": -1, "min_data_in_leaf": 5}
    boosters = {
        "pandas-categorical": lgb.train({**common, "objective": "binary"}, lgb.Dataset(X, y), 4),
        "numpy": lgb.train({**common, "objective": "multiclass", "num_class": 3},
                           lgb.Dataset(X.drop(columns="city").to_numpy(), RNG.integers(0, 3, 200)), 3),
        "numpy-categorical": lgb.train({**common, "objective": "regression"},
                                       lgb.Dataset(np.column_stack([X["age"], X["city"].cat.codes]), X["income"],
                                                   categorical_feature=[1]), 3),
    }
    for which, trained in boosters.items():
        folder = tmp_path / which
        folder.mkdir()
        trained.save_model(str(folder / "model.txt"))
        own = lgb.Booster(model_file=str(folder / "model.txt"))
        model = loaders.load(folder)
        sample = model.sample_input()
        assert list(sample.columns) == own.feature_name() and sample.shape[1] == own.num_feature(), which
        if which == "pandas-categorical":
            assert list(sample["city"].cat.categories) == own.pandas_categorical[0]
        np.testing.assert_array_equal(model.predict(sample), own.predict(sample))


# ============================================================================================== CatBoost

def test_catboost_samples(tmp_path):
    cb = pytest.importorskip("catboost")
    X = pd.DataFrame(RNG.normal(size=(150, 3)), columns=["a", "b", "c"])
    X["colour"] = RNG.choice(["red", "green", "blue"], 150)
    X["note"] = RNG.choice(["good day", "bad day", "so so day"], 150)
    kw = {"verbose": 0, "allow_writing_files": False, "random_seed": 0, "thread_count": 1, "iterations": 3}
    built = {
        "text": (cb.CatBoostClassifier(**kw), X, (X["a"] > 0).astype(int),
                 {"cat_features": ["colour"], "text_features": ["note"]}),
        "numeric": (cb.CatBoostRegressor(**kw), X[["a", "b"]].to_numpy(), X["c"].to_numpy(), {}),
    }
    for which, (estimator, data, target, fit) in built.items():
        estimator.fit(data, target, **fit)
        folder = tmp_path / which
        folder.mkdir()
        estimator.save_model(str(folder / "model.cbm"))
        own = type(estimator)().load_model(str(folder / "model.cbm"))
        model = loaders.load(folder)
        sample = model.sample_input()
        assert list(sample.columns) == own.feature_names_, which
        strings = set(own.get_cat_feature_indices()) | set(own.get_text_feature_indices())
        for i, column in enumerate(sample.columns):
            assert (sample[column].dtype == object) == (i in strings), column
        method = "predict_proba" if which == "text" else "predict"
        np.testing.assert_array_equal(model.predict(sample), getattr(own, method)(sample))


# ============================================================================================== Hugging Face

def test_huggingface_sample_texts_come_from_the_vocabulary(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    archive = make_samples.build_huggingface(tmp_path)
    folder = untar(archive, tmp_path / "folder")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    vocab = set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens)
    model = loaders.load(archive)
    texts = model.sample_input()
    assert texts and all(isinstance(t, str) and t for t in texts)
    assert all(word in vocab for t in texts for word in t.split())
    direct = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels = []
    for text in texts:
        with torch.no_grad():
            labels.append(direct.config.id2label[int(direct(**tokenizer(text, return_tensors="pt")).logits.argmax())])
    assert model.predict(texts)["label"].tolist() == labels


def test_huggingface_fill_mask_sample_holds_the_mask_token(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "the", "is", "a"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    tokenizer.save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=16)
    transformers.BertForMaskedLM(config).eval().save_pretrained(tmp_path)
    model = loaders.load(tmp_path, task="fill-mask")
    texts = model.sample_input()
    assert all(t.count(tokenizer.mask_token) == 1 for t in texts)
    assert all(w in words for t in texts for w in t.split())
    out = model.predict(texts)
    assert set(out["input"]) == set(range(len(texts))) and set(out["token_str"]) <= set(words)


# ============================================================================================== exporters

def test_sagemaker_export_verifies_with_the_artifacts_own_sample(corpus, tmp_path):
    archive = corpus / "sdk-tfs-test-model" / "tensorflow-serving-test-model.tar.gz"
    model = loaders.load(archive)
    result = exporters.export(model, "sagemaker", tmp_path / "out")
    assert result.passed and result.unverified is None
    assert result.samples == len(model.sample_input())


def test_export_without_a_buildable_sample_says_so(tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["good movie", "bad movie", "great film", "awful film"] * 5
    pipeline = make_pipeline(CountVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 5)
    result = exporters.export(pipeline, "sagemaker", tmp_path / "out")
    assert result.checks == [] and not result.passed
    assert "no sample input can be built" in result.unverified
    import json

    record = json.loads((tmp_path / "out" / "verification.json").read_text())
    assert record["unverified"] == result.unverified and "NOT RUN" in result.summary()
    assert (tmp_path / "out" / "model.tar.gz").is_file()


def test_export_that_needs_a_sample_to_be_built_refuses_without_one(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    with pytest.raises(ArtifactError, match="TorchScript") as e:
        exporters.export(net, "sagemaker", tmp_path / "out")
    assert "sample=" in str(e.value) and not (tmp_path / "out").exists()
