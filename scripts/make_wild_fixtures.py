"""Build artifacts the way real users and SageMaker's containers produce them ("from the wild", issue 11):
``python scripts/make_wild_fixtures.py OUT [NAME...]``.

Each builder trains a tiny model with the real framework, packs it as that producer does (framework-container
``model.tar.gz`` with ``code/``, TF Serving version folders, built-in algorithm file names, archives made by
macOS's ``tar``/Finder, ``tar -C dir .`` with ``./`` prefixes and directory entries, hard and symbolic links,
concatenated gzip members, an archive nested in an archive, uppercase or missing extensions, empty files,
non-ASCII names, code-only artifacts...) and returns a :class:`Case`: the file, what inspection should say, a
few input rows and the predictions the framework's own in-memory model gives for them. Everything is seeded.

SageMaker facts used: the scikit-learn/PyTorch/TensorFlow/Hugging Face framework containers serve
``/opt/ml/model`` with the entry point in ``code/`` (SageMaker Python SDK, "Deploy Models"); TF Serving reads
``<model>/<version>/saved_model.pb`` and serves the highest version (TensorFlow Serving, "SavedModel versions");
the XGBoost container writes ``xgboost-model`` (SageMaker XGBoost algorithm docs); the built-in LightGBM and
CatBoost algorithms (JumpStart-based, script mode) write ``model.pkl`` and ``model`` with their own
``save_model`` text / binary respectively (SageMaker developer guide, "LightGBM", "CatBoost"); DJL/LMI reads
``serving.properties`` and downloads ``option.model_id`` at start-up.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

SEED = 11
MTIME = 1_700_000_000
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Case:
    path: Path
    framework: str
    layout: str
    loadable: bool
    trust: bool = False            # what load needs
    X: Any = None                  # input rows
    expected: Any = None           # the framework's own prediction for X
    reason: str | None = None      # words the refusal (of load, or of predict and --sample) must contain
    kind: str = "array"            # how to compare: array | labels (HF DataFrame label column)
    options: dict = field(default_factory=dict)
    rtol: float = 1e-5


def _info(name: str, size: int = 0, type_=tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.mode, ti.mtime = size, type_, mode, MTIME
    return ti


def _tar_bytes(members: dict[str, bytes], *, dot: bool = False, dirs: bool = False, fmt=tarfile.GNU_FORMAT) -> bytes:
    """A tar of ``{name: bytes}``; ``dot``: names start with ``./``; ``dirs``: directory entries come first,
    as ``tar -C folder .`` writes them."""
    buf = io.BytesIO()
    pre = "./" if dot else ""
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        if dirs:
            tf.addfile(_info(".", type_=tarfile.DIRTYPE, mode=0o755))
            seen = set()
            for name in sorted(members):
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d not in seen:
                        seen.add(d)
                        tf.addfile(_info(pre + d, type_=tarfile.DIRTYPE, mode=0o755))
        for name in sorted(members):
            tf.addfile(_info(pre + name, len(members[name])), io.BytesIO(members[name]))
    return buf.getvalue()


def _write_tgz(path: Path, members: dict[str, bytes], **kw) -> Path:
    path.write_bytes(gzip.compress(_tar_bytes(members, **kw), mtime=0))
    return path


def _rows(n: int = 6, f: int = 4) -> np.ndarray:
    return np.random.default_rng(SEED).normal(size=(n, f)).astype(np.float32)


def _train_xy(n: int = 120, f: int = 4, classes: int = 2):
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(n, f)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) if classes == 2 else np.digitize(X[:, 0], [-0.5, 0.5])
    return X, y


SKLEARN_INFERENCE = '''\
import os
import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "{name}"))
'''


# ------------------------------------------------------------------------------------------ scikit-learn

def sklearn_pkl_code(out: Path) -> Case:
    """The scikit-learn container's output: ``model.pkl`` (pickle.dump) + ``code/inference.py`` + requirements."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = _train_xy()
    clf = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    members = {"model.pkl": pickle.dumps(clf, protocol=4),
               "code/inference.py": SKLEARN_INFERENCE.format(name="model.pkl").encode(),
               "code/requirements.txt": b"scikit-learn\npandas>=1.0\n"}
    Xt = _rows()
    return Case(_write_tgz(out / "sklearn-pkl-code.tar.gz", members), "sklearn", "framework-container", True,
                X=Xt, expected=clf.predict(Xt))


def sklearn_two_pickles(out: Path) -> Case:
    """A compressed-joblib ``Pipeline`` as ``model.joblib`` beside a ``LabelEncoder`` the script also uses."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    X, y = _train_xy(classes=3)
    enc = LabelEncoder().fit(["a", "b", "c"])
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
    buf_m, buf_e = io.BytesIO(), io.BytesIO()
    joblib.dump(pipe, buf_m, compress=3)
    joblib.dump(enc, buf_e)
    members = {"encoder.joblib": buf_e.getvalue(), "model.joblib": buf_m.getvalue(),
               "code/inference.py": (SKLEARN_INFERENCE.format(name="model.joblib")
                                     + "\nENCODER = 'encoder.joblib'\n").encode()}
    Xt = _rows()
    return Case(_write_tgz(out / "sklearn-two-pickles.tar.gz", members), "sklearn", "framework-container", True,
                X=Xt, expected=pipe.predict(Xt))


def sklearn_no_extension(out: Path) -> Case:
    """A bring-your-own container's ``model`` (a pickle without extension) with an empty file beside it."""
    from sklearn.linear_model import Ridge

    X, y = _train_xy()
    reg = Ridge().fit(X, X @ np.arange(4))
    members = {"model": pickle.dumps(reg), "EMPTY": b"", "notes/.keep": b""}
    Xt = _rows()
    return Case(_write_tgz(out / "sklearn-no-extension.tar.gz", members), "sklearn", "custom-container", True,
                X=Xt, expected=reg.predict(Xt))


def macos_archive(out: Path) -> Case:
    """``tar`` on macOS (AppleDouble ``._*`` files) and Finder's zip leftovers (``__MACOSX/``, ``.DS_Store``)."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    X, y = _train_xy()
    clf = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40
    members = {"model.joblib": buf.getvalue(), "._model.joblib": apple,
               ".DS_Store": b"\x00\x00\x00\x01Bud1" + b"\x00" * 60, "__MACOSX/._model.joblib": apple,
               "code/inference.py": SKLEARN_INFERENCE.format(name="model.joblib").encode(),
               "code/._inference.py": apple}
    Xt = _rows()
    return Case(_write_tgz(out / "macos-archive.tar.gz", members, dot=True, dirs=True), "sklearn",
                "framework-container", True, X=Xt, expected=clf.predict(Xt))


def linked_members(out: Path) -> Case:
    """``model.joblib`` a symbolic link to ``models/v3/model.joblib`` and ``latest.joblib`` a hard link to it."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = _train_xy()
    clf = LogisticRegression().fit(X, y)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    data = buf.getvalue()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        tf.addfile(_info("models/v3/model.joblib", len(data)), io.BytesIO(data))
        link = _info("model.joblib", type_=tarfile.SYMTYPE, mode=0o777)
        link.linkname = "models/v3/model.joblib"
        tf.addfile(link)
        hard = _info("models/latest.joblib", type_=tarfile.LNKTYPE)
        hard.linkname = "models/v3/model.joblib"
        tf.addfile(hard)
        code = SKLEARN_INFERENCE.format(name="model.joblib").encode()
        tf.addfile(_info("code/inference.py", len(code)), io.BytesIO(code))
    path = out / "linked-members.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    Xt = _rows()
    return Case(path, "sklearn", "framework-container", True, X=Xt, expected=clf.predict(Xt))


def multi_member_gzip(out: Path) -> Case:
    """A tar.gz made of two gzip members (``cat a.gz b.gz``, as pigz or a split upload leaves it)."""
    import joblib
    from sklearn.linear_model import LinearRegression

    X, _ = _train_xy()
    reg = LinearRegression().fit(X, X[:, 0] * 2 - X[:, 3])
    buf = io.BytesIO()
    joblib.dump(reg, buf)
    raw = _tar_bytes({"model.joblib": buf.getvalue(),
                      "code/inference.py": SKLEARN_INFERENCE.format(name="model.joblib").encode()})
    half = len(raw) // 2
    path = out / "multi-member-gzip.tar.gz"
    path.write_bytes(gzip.compress(raw[:half], mtime=0) + gzip.compress(raw[half:], mtime=0))
    Xt = _rows()
    return Case(path, "sklearn", "framework-container", True, X=Xt, expected=reg.predict(Xt))


def nested_tar_gz(out: Path) -> Case:
    """``model.tar.gz`` holding only another ``model.tar.gz`` (repacked by hand, a common mistake)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = _train_xy()
    buf = io.BytesIO()
    joblib.dump(LogisticRegression(C=0.5).fit(X, y), buf)
    inner = gzip.compress(_tar_bytes({"model.joblib": buf.getvalue()}), mtime=0)
    return Case(_write_tgz(out / "nested-tar-gz.tar.gz", {"model.tar.gz": inner}), "unknown", "custom-container",
                False, reason="model.tar.gz")


def non_ascii_names(out: Path) -> Case:
    """UTF-8 names: a folder ``modèle/`` with ``分类器.joblib`` and a README ``läsmig.txt`` (PAX headers)."""
    import joblib
    from sklearn.naive_bayes import GaussianNB

    X, y = _train_xy()
    clf = GaussianNB().fit(X, y)
    buf = io.BytesIO()
    joblib.dump(clf, buf)
    members = {"modèle/分类器.joblib": buf.getvalue(), "modèle/läsmig.txt": "Modèle entraîné\n".encode()}
    Xt = _rows()
    path = _write_tgz(out / "non-ascii-names.tar.gz", members, fmt=tarfile.PAX_FORMAT)
    return Case(path, "sklearn", "custom-container", True, X=Xt, expected=clf.predict(Xt))


# ------------------------------------------------------------------------------------------ XGBoost

def _xgb_booster():
    import xgboost as xgb

    X, y = _train_xy(f=5)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 1, "nthread": 1},
                     xgb.DMatrix(X, label=y), num_boost_round=6), xgb


def xgboost_ubj(out: Path) -> Case:
    """The XGBoost container's ``xgboost-model`` in UBJSON (XGBoost >= 2 default)."""
    bst, xgb = _xgb_booster()
    Xt = _rows(f=5)
    data = bytes(bst.save_raw("ubj"))
    return Case(_write_tgz(out / "xgboost-ubj.tar.gz", {"xgboost-model": data}), "xgboost", "builtin-algorithm",
                True, X=Xt, expected=bst.predict(xgb.DMatrix(Xt)))


def xgboost_json(out: Path) -> Case:
    """``xgboost-model`` in JSON (``save_model('x.json')`` renamed), loose, not archived."""
    bst, xgb = _xgb_booster()
    Xt = _rows(f=5)
    path = out / "xgboost-model"
    path.write_bytes(bytes(bst.save_raw("json")))
    return Case(path, "xgboost", "loose-file", True, X=Xt, expected=bst.predict(xgb.DMatrix(Xt)))


def xgboost_legacy_binary(out: Path) -> Case | None:
    """The pre-1.0 binary ``xgboost-model`` written by XGBoost 1.7.6 itself (tests/data/xgboost_legacy, built by
    scripts/make_xgboost_legacy_fixtures.py), with the predictions that XGBoost computed."""
    folder = ROOT / "tests" / "data" / "xgboost_legacy"
    manifest = json.loads((folder / "manifest.json").read_text())
    pick = next(e for e in manifest if e["era"] == "legacy-binary" and e["objective"] == "binary:logistic")
    model_file = pick["file"]
    X = np.loadtxt(folder / pick["inputs"], delimiter=",", ndmin=2)
    pred = np.loadtxt(folder / pick["pred"], delimiter=",")
    path = _write_tgz(out / "xgboost-legacy-binary.tar.gz", {"xgboost-model": (folder / model_file).read_bytes()})
    return Case(path, "xgboost", "builtin-algorithm", True, X=X, expected=pred, rtol=1e-5)


# ------------------------------------------------------------------------------------------ LightGBM, CatBoost

def _lgb_booster():
    import lightgbm as lgb

    X, y = _train_xy(n=200)
    return lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": 1, "min_data_in_leaf": 5},
                     lgb.Dataset(X, label=y), num_boost_round=5)


def lightgbm_builtin(out: Path) -> Case:
    """A pickled ``lightgbm.Booster`` as ``model.pkl`` (read as data, never unpickled)."""
    bst = _lgb_booster()
    Xt = _rows()
    return Case(_write_tgz(out / "lightgbm-builtin.tar.gz", {"model.pkl": pickle.dumps(bst)}), "lightgbm",
                "framework-container", True, X=Xt, expected=bst.predict(Xt))


def lightgbm_text_upper(out: Path) -> Case:
    """A LightGBM text model saved as ``MODEL.TXT`` (uppercase extension) in a zip."""
    import zipfile

    bst = _lgb_booster()
    path = out / "lightgbm-text-upper.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("MODEL.TXT", bst.model_to_string())
    Xt = _rows()
    return Case(path, "lightgbm", "framework-container", True, X=Xt, expected=bst.predict(Xt))


def catboost_builtin(out: Path) -> Case:
    """The built-in CatBoost algorithm's ``model`` (CatBoost binary, no extension)."""
    import tempfile

    from catboost import CatBoostRegressor

    X, _ = _train_xy()
    m = CatBoostRegressor(iterations=8, depth=2, random_seed=1, verbose=False, allow_writing_files=False)
    m.fit(X, X[:, 0] - X[:, 2])
    with tempfile.TemporaryDirectory() as d:
        m.save_model(f"{d}/model")
        data = Path(f"{d}/model").read_bytes()
    Xt = _rows()
    return Case(_write_tgz(out / "catboost-builtin.tar.gz", {"model": data}), "catboost", "framework-container", True,
                X=Xt, expected=m.predict(Xt))


# ------------------------------------------------------------------------------------------ ONNX

def onnx_external_data(out: Path) -> Case:
    """An ONNX model whose weights sit in ``model.onnx.data`` (external data), built with onnx's own helpers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    W = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        onnx.save_model(model, f"{d}/model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
        members = {"model.onnx": Path(f"{d}/model.onnx").read_bytes(),
                   "model.onnx.data": Path(f"{d}/model.onnx.data").read_bytes()}
    Xt = _rows()
    return Case(_write_tgz(out / "onnx-external-data.tar.gz", members), "onnx", "framework-container", True,
                X=Xt, expected=Xt @ W + b)


def onnx_uppercase(out: Path) -> Case:
    """``MODEL.ONNX`` from skl2onnx, loose file with an uppercase extension."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    X, _ = _train_xy()
    reg = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5, 3.0]))
    onx = to_onnx(reg, X[:1].astype(np.float32), target_opset=17)
    import onnxruntime

    path = out / "MODEL.ONNX"
    path.write_bytes(onx.SerializeToString())
    Xt = _rows()
    session = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return Case(path, "onnx", "loose-file", True, X=Xt, expected=session.run(None, {"X": Xt})[0])


# ------------------------------------------------------------------------------------------ PyTorch

INFERENCE_TORCHSCRIPT = '''\
import os
import torch


def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, "model.pt"), map_location="cpu").eval()
'''


def _torch_net():
    import torch

    torch.manual_seed(SEED)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval(), torch


def torchscript_code(out: Path) -> Case:
    """The PyTorch container: TorchScript ``model.pt`` + ``code/inference.py`` (loading it needs trust)."""
    net, torch = _torch_net()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buf)
    Xt = _rows()
    with torch.no_grad():
        expected = net(torch.from_numpy(Xt)).numpy()
    members = {"model.pt": buf.getvalue(), "code/inference.py": INFERENCE_TORCHSCRIPT.encode(),
               "code/requirements.txt": b"torchvision==0.15.2\n"}
    return Case(_write_tgz(out / "torchscript-code.tar.gz", members), "pytorch", "framework-container", True,
                trust=True, X=Xt, expected=expected)


def torch_state_dict_alone(out: Path) -> Case:
    """``model.pth`` holding only a state dict and no code: it loads (``module=`` takes the network), and predict
    and ``--sample`` refuse, saying the code defining the network is missing."""
    net, torch = _torch_net()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return Case(_write_tgz(out / "torch-state-dict-alone.tar.gz", {"model.pth": buf.getvalue()}), "pytorch",
                "framework-container", True, reason="weights only")


# ------------------------------------------------------------------------------------------ TensorFlow

def _keras_model():
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    return model, keras


def keras_v3_version_folder(out: Path) -> Case:
    """A Keras 3 ``model.keras`` under ``1/`` in model.tar.gz (users' take on the TF container's version folder)."""
    import tempfile

    model, keras = _keras_model()
    with tempfile.TemporaryDirectory() as d:
        model.save(f"{d}/model.keras")
        data = Path(f"{d}/model.keras").read_bytes()
    Xt = _rows()
    return Case(_write_tgz(out / "keras-v3-version-folder.tar.gz", {"1/model.keras": data}), "tensorflow",
                "framework-container", True, X=Xt, expected=np.asarray(model(Xt)), rtol=1e-4)


def keras_h5_version_folder(out: Path) -> Case:
    """A legacy HDF5 ``model.h5`` under ``1/``."""
    import tempfile

    model, keras = _keras_model()
    with tempfile.TemporaryDirectory() as d:
        model.save(f"{d}/model.h5")
        data = Path(f"{d}/model.h5").read_bytes()
    Xt = _rows()
    return Case(_write_tgz(out / "keras-h5-version-folder.tar.gz", {"1/model.h5": data}), "tensorflow",
                "framework-container", True, X=Xt, expected=np.asarray(model(Xt)), rtol=1e-4)


def tf_serving_two_versions(out: Path) -> Case:
    """TF Serving: ``model/1/`` and ``model/2/`` SavedModels (``tf.saved_model.save``); version 2 is served."""
    import tempfile

    import tensorflow as tf

    Xt = _rows()
    members: dict[str, bytes] = {}
    expected = None
    with tempfile.TemporaryDirectory() as d:
        for version, scale in ((1, 1.0), (2, 3.0)):
            class Scaler(tf.Module):
                def __init__(self, scale: float):
                    super().__init__()
                    self.w = tf.Variable(np.full((4, 1), scale, dtype=np.float32))

                @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
                def serve(self, x):
                    return {"y": tf.matmul(x, self.w)}

            m = Scaler(scale)
            where = Path(d) / "model" / str(version)
            tf.saved_model.save(m, str(where), signatures={"serving_default": m.serve})
            for f in where.rglob("*"):
                if f.is_file():
                    members[str(f.relative_to(d))] = f.read_bytes()
            if version == 2:
                expected = m.serve(tf.constant(Xt))["y"].numpy()
    return Case(_write_tgz(out / "tf-serving-two-versions.tar.gz", members, dirs=True), "tensorflow", "tf-serving",
                True, X=Xt, expected=expected)


# ------------------------------------------------------------------------------------------ Hugging Face

HF_INFERENCE = '''\
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline


def model_fn(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return pipeline("text-classification", model=model, tokenizer=tokenizer)
'''


def hf_bin_tokenizer_code(out: Path) -> Case:
    """A Hugging Face training job's output: ``pytorch_model.bin`` + config + BERT tokenizer files + ``code/``."""
    import tempfile

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    torch.manual_seed(SEED)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "the", "was", "very", "not"]
    config = BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=32, num_labels=2,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    model = BertForSequenceClassification(config).eval()
    texts = ["the movie was very good", "bad movie", "not good"]
    members: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "vocab.txt").write_text("\n".join(words) + "\n")
        tok = BertTokenizer(str(Path(d) / "vocab.txt"), model_max_length=32)
        save = Path(d) / "out"
        model.save_pretrained(save, safe_serialization=False)
        tok.save_pretrained(save)
        for f in save.iterdir():
            members[f.name] = f.read_bytes()
        with torch.no_grad():
            logits = model(**tok(texts, return_tensors="pt", padding=True)).logits
    members["code/inference.py"] = HF_INFERENCE.encode()
    members["code/requirements.txt"] = b"transformers==4.40.0\ndatasets\n"
    labels = [config.id2label[i] for i in logits.argmax(-1).tolist()]
    return Case(_write_tgz(out / "hf-bin-tokenizer-code.tar.gz", members), "huggingface", "framework-container",
                True, X=texts, expected=labels, kind="labels")


HF_HUB_INFERENCE = '''\
import os

from transformers import pipeline

MODEL_ID = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


def model_fn(model_dir):
    return pipeline("text-classification", model=os.environ.get("HF_MODEL_ID", MODEL_ID))
'''

S3_INFERENCE = '''\
import boto3
import torch


def model_fn(model_dir):
    boto3.client("s3").download_file("example-models", "resnet/model.pt", "/tmp/model.pt")
    return torch.jit.load("/tmp/model.pt")
'''


def code_only_hub(out: Path) -> Case:
    """Only ``code/inference.py`` + ``code/requirements.txt``: the model comes from the Hub at start-up."""
    members = {"code/inference.py": HF_HUB_INFERENCE.encode(), "code/requirements.txt": b"transformers\ntorch\n"}
    return Case(_write_tgz(out / "code-only-hub.tar.gz", members), "huggingface", "code-only", False,
                reason="distilbert/distilbert-base-uncased-finetuned-sst-2-english")


def code_only_s3(out: Path) -> Case:
    """A top-level ``inference.py`` that downloads TorchScript from S3 with boto3."""
    members = {"inference.py": S3_INFERENCE.encode(), "requirements.txt": b"boto3\n"}
    return Case(_write_tgz(out / "code-only-s3.tar.gz", members), "pytorch", "code-only", False,
                reason="s3://example-models/resnet/model.pt")


def djl_model_id(out: Path) -> Case:
    """DJL/LMI ``serving.properties`` naming a Hub model, plus a ``model.py``: nothing to load here."""
    members = {"serving.properties": b"engine=Python\noption.model_id=TheBloke/Llama-2-7B-fp16\n"
                                     b"option.tensor_parallel_degree=1\n",
               "model.py": b"from djl_python import Input, Output\n\ndef handle(inputs):\n    return None\n",
               "requirements.txt": b"transformers\n"}
    return Case(_write_tgz(out / "djl-model-id.tar.gz", members), "djl-lmi", "code-only", False,
                reason="TheBloke/Llama-2-7B-fp16")


BUILDERS: dict[str, Callable[[Path], Case]] = {
    f.__name__.replace("_", "-"): f for f in (
        sklearn_pkl_code, sklearn_two_pickles, sklearn_no_extension, macos_archive, linked_members,
        multi_member_gzip, nested_tar_gz, non_ascii_names, xgboost_ubj, xgboost_json, xgboost_legacy_binary,
        lightgbm_builtin, lightgbm_text_upper, catboost_builtin, onnx_external_data, onnx_uppercase,
        torchscript_code, torch_state_dict_alone, keras_v3_version_folder, keras_h5_version_folder,
        tf_serving_two_versions, hf_bin_tokenizer_code, code_only_hub, code_only_s3, djl_model_id)
}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.splitlines()[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    names = argv[1:] or list(BUILDERS)
    for name in names:
        (out / name).mkdir(exist_ok=True)
        case = BUILDERS[name](out / name)
        print(f"{name}: {case.path} ({case.framework}, {case.layout}, loadable={case.loadable})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
