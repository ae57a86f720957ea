"""scikit-learn / pickle loading and the trust policy, plus loading every loadable corpus entry."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_samples  # noqa: E402

import artifact_tools  # noqa: E402
import loaders  # noqa: E402
from artifact_tools.errors import NotLoadable, TrustRequired  # noqa: E402

from helpers import pack_tar_gz, run_cli, untar  # noqa: E402


def _pack(tmp_path: Path, name: str, data: bytes) -> Path:
    out = tmp_path / f"{name}.tar.gz"
    out.write_bytes(pack_tar_gz({name: data}))
    return out


class Scaler2:
    """A user class the allowlist does not know (pickled by reference to this test module)."""

    def __init__(self):
        self.k = 2.0

    def predict(self, x):
        return np.asarray(x) * self.k


class Sneaky:
    """Unpickling this calls os.getcwd: harmless, but exactly the shape of an attack (a call into `os`)."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_sample_round_trip(tmp_path):
    art = make_samples.build_sklearn(tmp_path)
    X, _ = make_samples.make_data(seed=11)
    model = loaders.load(art)
    direct = joblib.load(untar(art, tmp_path / "files") / "model.joblib")
    assert model.framework == "sklearn" and type(model.model).__name__ == "LogisticRegression"
    np.testing.assert_array_equal(model.predict(X), direct.predict(X))
    np.testing.assert_array_equal(model.predict(X.tolist()), direct.predict(X))
    assert model.report.trust["verdict"] == "code"  # code/inference.py is present, never run


def test_compressed_joblib_and_plain_pickle(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_samples.make_data()
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    buf = io.BytesIO()
    joblib.dump(rf, buf, compress=3)
    for name, data in (("model.joblib", buf.getvalue()), ("model.pkl", pickle.dumps(rf, protocol=5))):
        model = loaders.load(_pack(tmp_path, name, data))
        np.testing.assert_array_equal(model.predict(X), rf.predict(X))


def test_unknown_type_needs_trust(tmp_path):
    art = _pack(tmp_path, "model", pickle.dumps(Scaler2()))
    report = artifact_tools.inspect(art)
    assert report.trust["verdict"] == "unknown-types"
    with pytest.raises(TrustRequired, match="Scaler2"):
        loaders.load(art)
    model = loaders.load(art, trust=True)
    np.testing.assert_array_equal(model.predict([[1.0, 2.0]]), [[2.0, 4.0]])


def test_dangerous_call_refused_even_with_trust(tmp_path):
    hidden = Scaler2()
    hidden.k = Sneaky()  # a model object whose state hides the call
    art = _pack(tmp_path, "model.pkl", pickle.dumps(hidden))
    report = artifact_tools.inspect(art)
    assert report.trust["verdict"] == "dangerous" and report.loadable
    assert any("os.getcwd" in f or "posix.getcwd" in f for f in report.trust["findings"])
    for trust in (False, True):
        with pytest.raises(TrustRequired, match="getcwd"):
            loaders.load(art, trust=trust)
    # trust="all" lets it through: the call ran, as unpickling it anywhere would run it
    assert loaders.load(art, trust="all").model.k == os.getcwd()


def test_a_pickled_dict_is_not_loadable_and_says_why(tmp_path):
    art = _pack(tmp_path, "model.pkl", pickle.dumps({"weights": [1.0, 2.0]}))
    report = artifact_tools.inspect(art)
    assert report.loadable is False and "model.pkl holds a plain dict" in report.not_loadable_reason
    with pytest.raises(NotLoadable, match="plain dict"):
        loaders.load(art)


def test_restricted_find_class_blocks_functions_of_allowed_packages(tmp_path):
    from loaders.sklearn import unpickle

    # GLOBAL numpy.load + REDUCE: numpy is an allowlisted package, but only its classes may be named
    evil = b"cnumpy\nload\n(S'/etc/passwd'\ntR."
    with pytest.raises(TrustRequired, match="numpy.load"):
        unpickle(evil, trust=True, label="evil")


def test_missing_extra_names_the_install(tmp_path):
    art = make_samples.build_sklearn(tmp_path)
    code = ("import sys\nsys.modules['sklearn'] = None\nimport loaders\n"
            f"from artifact_tools.errors import MissingExtra\ntry:\n    loaders.load({str(art)!r})\n"
            "except MissingExtra as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'artifact-tools[sklearn]'" in out


def test_cli_load_predict(tmp_path):
    art = make_samples.build_sklearn(tmp_path)
    X, _ = make_samples.make_data(n=6, seed=5)
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(",".join(str(v) for v in r) for r in X.tolist()))
    res = run_cli("load", str(art), "--predict", str(rows))
    assert res.returncode == 0, res.stderr
    direct = joblib.load(untar(art, tmp_path / "files") / "model.joblib")
    assert json.loads(res.stdout) == direct.predict(X.astype(np.float64)).tolist()


# ------------------------------------------------------------------------------------------ the corpus

def _rows(corpus: Path):
    with open(corpus / "EXPECTED.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_corpus_pickles_load_without_trust(corpus):
    """The allowlist covers what the real scikit-learn artifacts import."""
    for entry, name in (("cookbook-python.custom", "model.tar.gz"), ("sdk-sklearn-ir", "sklearn-model.tar.gz"),
                        ("sdk-marketplace-iris", "model-artifacts.joblib")):
        model = loaders.load(corpus / entry / name)
        n = model.model.n_features_in_
        out = model.predict(np.zeros((3, n)))
        assert len(out) == 3
        assert model.info["sklearn_version_saved"] and model.info.get("warning")


@pytest.mark.parametrize("entry,file,words", [
    ("cookbook-r.custom", "model.tar.gz", "R models cannot be loaded from Python"),
    ("sdk-lmi-falcon", "mymodel-7B.tar.gz", "no weights inside"),
])
def test_corpus_not_loadable_says_why(corpus, entry, file, words):
    with pytest.raises(NotLoadable, match=words):
        loaders.load(corpus / entry / file)


def test_cli_not_loadable_exit_2(corpus):
    res = run_cli("load", str(corpus / "cookbook-r.custom" / "model.tar.gz"))
    assert res.returncode == 2 and "R models cannot be loaded" in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------------------------------ several pickles

MULTI = ("sklearn-multi-pickles", "model.tar.gz")


def test_corpus_several_pickles_load_the_one_inference_py_loads(corpus, tmp_path):
    import re

    from sklearn.neighbors import NearestNeighbors

    from helpers import tar_members

    path = corpus.joinpath(*MULTI)
    files = tar_members(path)
    script = files["inference.py"].decode()
    # the artifact's own model_fn says which file is the model
    [named] = re.findall(r"def model_fn.*?joblib\.load\(os\.path\.join\(model_dir, '([^']+)'\)\)", script, re.S)
    report = artifact_tools.inspect(path)
    model_entry = report.model("pickle")
    assert model_entry.path == named and model_entry.summary["role"] == "model"
    assert "inference.py" in model_entry.summary["chosen_because"]
    others = sorted(n for n in files if n.endswith(".pkl"))
    assert sorted(m.path for m in report.models if m.summary.get("role") == "other pickle") == others
    assert any(named in w and all(o in w for o in others) for w in report.warnings)

    # model.joblib names scikit-learn 0.23's spelling of allowlisted classes (sklearn.neighbors._dist_metrics);
    # loaded as data, without trust (trust=True would run inference.py's own model_fn instead)
    model = loaders.load(path)
    assert isinstance(model.model, NearestNeighbors) and model.info["file"] == named
    assert sorted(model.info["other_pickles"]) == others
    # predict is what the script's predict_fn calls: kneighbors' indices, checked against brute force in numpy
    fit_x = np.asarray(model.model._fit_X)
    rows = fit_x[:6] + np.random.default_rng(0).normal(0, 1e-3, (6, fit_x.shape[1]))
    dist = ((rows[:, None, :] - fit_x[None, :, :]) ** 2).sum(axis=-1)
    want = np.argsort(dist, axis=1, kind="stable")[:, :model.model.n_neighbors]
    np.testing.assert_array_equal(model.predict(rows), want)
    # the sample: as many columns as the features the script's predict_fn passes to kneighbors
    [features] = re.findall(r"def predict_fn.*?features = \[(.*?)\]", script, re.S)
    sample = model.sample_input()
    assert sample.shape == (2, len(re.findall(r"'[a-z_]+'", features)))
    assert model.predict(sample).shape == (2, model.model.n_neighbors)


def test_corpus_several_pickles_member_picks_another(corpus, tmp_path):
    from helpers import untar

    path = corpus.joinpath(*MULTI)
    folder = untar(path, tmp_path / "files")
    with open(folder / "scaler.pkl", "rb") as f:
        reference = pickle.load(f)  # a known corpus file, read by Python's own pickle as the oracle
    model = loaders.load(path, member="scaler.pkl")
    assert type(model.model).__name__ == "StandardScaler" and model.info["method"] == "transform"
    sample = model.sample_input()
    assert list(sample.columns) == list(reference.feature_names_in_)
    np.testing.assert_allclose(model.predict(sample), reference.transform(sample))
    encoder = loaders.load(path, member="./genre_encoder.pkl")
    with open(folder / "genre_encoder.pkl", "rb") as f:
        reference = pickle.load(f)
    labels = encoder.sample_input()
    assert set(labels) <= set(reference.classes_)
    np.testing.assert_array_equal(encoder.predict(labels), reference.transform(labels))
    for member, words in (("nope.pkl", "is not in the artifact"), ("inference.py", "not a pickle")):
        with pytest.raises(artifact_tools.ArtifactError, match=words) as err:
            loaders.load(path, member=member)
        assert "model.joblib" in str(err.value) and "scaler.pkl" in str(err.value)
        assert "\n" not in str(err.value)


def _multi(tmp_path: Path, members: dict[str, object], extra: dict[str, bytes] | None = None) -> Path:
    files = {name: _joblib_bytes(obj) for name, obj in members.items()}
    files.update(extra or {})
    out = tmp_path / "multi.tar.gz"
    out.write_bytes(pack_tar_gz(files))
    return out


def _joblib_bytes(obj) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_model_chosen_by_script_name_then_convention_then_predict(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    X, y = make_samples.make_data()
    clf = LogisticRegression(max_iter=200).fit(X, y)
    other = LogisticRegression(max_iter=200, C=0.01).fit(X, y)
    enc = LabelEncoder().fit(["a", "b"])
    # (1) the entry point names it, through a module constant, in a subfolder
    script = b"import os, joblib\nNAME = 'clf.bin'\n\ndef model_fn(model_dir):\n" \
             b"    return joblib.load(os.path.join(model_dir, 'models', NAME))\n"
    art = _multi(tmp_path, {"model.joblib": other, "models/clf.bin": clf, "enc.pkl": enc},
                 {"code/inference.py": script})
    loaded = loaders.load(art)
    assert loaded.info["file"] == "models/clf.bin"
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    # (2) no script: the conventional name wins over the first in name order
    art = _multi(tmp_path, {"a_other.joblib": other, "model.pkl": clf, "enc.pkl": enc})
    assert loaders.load(art).info["file"] == "model.pkl"
    # (3) neither: the pickle whose object predicts (a pipeline ending in a classifier), not the encoders
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
    art = _multi(tmp_path, {"a_enc.pkl": enc, "b_scaler.pkl": StandardScaler().fit(X), "c_pipe.pkl": pipe})
    loaded = loaders.load(art)
    assert loaded.info["file"] == "c_pipe.pkl"
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))


def test_module_renamed_by_scikit_learn_loads_as_the_allowlisted_class(tmp_path):
    """scikit-learn 0.22 made ``sklearn.linear_model.logistic`` private (``_logistic``); pickles of older releases
    name the public module. The pickle here is today's, with that one name written the old way."""
    from sklearn.linear_model import LogisticRegression

    X, y = make_samples.make_data()
    clf = LogisticRegression(max_iter=200).fit(X, y)
    data = pickle.dumps(clf, protocol=2)  # GLOBAL opcodes: module and name as text lines
    assert b"sklearn.linear_model._logistic\n" in data
    old = data.replace(b"sklearn.linear_model._logistic\n", b"sklearn.linear_model.logistic\n")
    art = _pack(tmp_path, "model.pkl", old)
    np.testing.assert_array_equal(loaders.load(art).predict(X), clf.predict(X))
    # a made-up sklearn name is no renamed class: refused without trust, and with trust it names what is missing
    art = _pack(tmp_path, "made-up.pkl", data.replace(b"sklearn.linear_model._logistic\n",
                                                      b"sklearn.linear_model.made_up\n"))
    with pytest.raises(TrustRequired, match="made_up.*trust=True"):
        loaders.load(art)
    with pytest.raises(NotLoadable, match="sklearn.linear_model.made_up") as err:
        loaders.load(art, trust=True)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------ sample_input

def test_sample_from_feature_names_and_categories(tmp_path):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 60), "size": rng.normal(size=60),
                          "weight": rng.normal(size=60)})
    target = (frame["size"] > 0).astype(int)
    pipe = Pipeline([("prep", ColumnTransformer([("cat", OneHotEncoder(), ["colour"]),
                                                 ("num", StandardScaler(), ["size", "weight"])])),
                     ("clf", LogisticRegression())]).fit(frame, target)
    model = loaders.load(_pack(tmp_path, "model.joblib", _joblib_bytes(pipe)))
    sample = model.sample_input()
    assert list(sample.columns) == list(frame.columns) and len(sample) == 2
    assert set(sample["colour"]) <= {"red", "green", "blue"}
    np.testing.assert_array_equal(model.predict(sample), pipe.predict(sample))


def test_sample_from_feature_count(tmp_path):
    art = make_samples.build_sklearn(tmp_path)
    direct = joblib.load(untar(art, tmp_path / "files") / "model.joblib")
    model = loaders.load(art)
    sample = model.sample_input()
    assert sample.shape == (2, direct.n_features_in_) and sample.dtype == np.float64
    np.testing.assert_array_equal(model.predict(sample), direct.predict(sample))


def test_sample_for_text_uses_the_vocabulary(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["good film", "great story", "bad plot", "awful acting", "good acting", "bad film"]
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 1, 0, 0, 1, 0])
    model = loaders.load(_pack(tmp_path, "model.joblib", _joblib_bytes(pipe)))
    sample = model.sample_input()
    vocabulary = set(pipe[0].vocabulary_)
    assert len(sample) == 2 and all(w in vocabulary for s in sample for w in s.split())
    np.testing.assert_array_equal(model.predict(sample), pipe.predict(sample))
    np.testing.assert_array_equal(model.predict(["good story"]), pipe.predict(["good story"]))


def test_corpus_sklearn_samples_predict(corpus, tmp_path):
    for entry, name, member in (("cookbook-python.custom", "model.tar.gz", "model"),
                                ("sdk-sklearn-ir", "sklearn-model.tar.gz", "model.joblib")):
        path = corpus / entry / name
        model = loaders.load(path)
        direct = joblib.load(untar(path, tmp_path / entry) / member)  # known corpus files: joblib is the oracle
        sample = model.sample_input()
        assert np.asarray(sample).shape == (2, direct.n_features_in_)
        np.testing.assert_array_equal(model.predict(sample), direct.predict(sample))
    # a tree of scikit-learn 1.0, which current joblib cannot read: the iris data set has 4 features
    model = loaders.load(corpus / "sdk-marketplace-iris" / "model-artifacts.joblib")
    sample = model.sample_input()
    assert np.asarray(sample).shape == (2, 4)
    assert set(model.predict(sample)) <= set(model.model.classes_)
