"""``inspect(p).loadable`` predicts ``loaders.load(p)``: True exactly when loading succeeds, and a False always comes
with one sentence, for every line of the corpus (EXPECTED.tsv and EXPECTED-wild.tsv) and for fixtures built here."""

from __future__ import annotations

import csv
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import artifact_tools
import loaders
from artifact_tools.errors import ArtifactError, TrustRequired

from conftest import CORPUS
from helpers import pack_tar_gz, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_samples  # noqa: E402

# The trust each line's artifact needs to load, judged from its line: none of them carries code that loading runs
# (sklearn-multi-pickles' inference.py is only run with trust=True, and its model.joblib loads as data).
TRUST: dict[str, bool] = {}


def _rows() -> list[tuple[str, dict]]:
    rows = []
    for tsv in ("EXPECTED.tsv", "EXPECTED-wild.tsv"):
        path = CORPUS / tsv
        if path.is_file():
            with open(path, newline="") as f:
                rows += [(tsv, row) for row in csv.DictReader(f, delimiter="\t")]
    return rows


def _paths(row: dict) -> list[Path]:
    folder = CORPUS / row["entry"]
    if row["file"] == "(directory)":
        return [folder]
    if row["file"] == "*.zip":
        return sorted(folder.glob("*.zip"))
    return [folder / f.strip() for f in row["file"].split(",")]


CASES = [pytest.param(row["entry"], p, id=f"{row['entry']}/{p.name}") for _, row in _rows() for p in _paths(row)]


def _agree(path: Path, trust: bool | str = False, check_sample: bool = False) -> tuple[bool, str | None]:
    """Inspect, then load; fail unless they agree (and with ``check_sample``, predict on ``sample_input()``).
    Returns (loadable, the refusal's sentence)."""
    report = artifact_tools.inspect(path)
    assert report.loadable in (True, False)
    if not report.loadable:
        reason = report.not_loadable_reason
        assert isinstance(reason, str) and reason.strip() and "\n" not in reason, reason
    try:
        model = loaders.load(path, trust=trust)
    except TrustRequired as e:
        pytest.fail(f"{path.name} needs another trust level than {trust!r}: {e}")
    except ArtifactError as e:  # a refusal: inspection must have said so
        assert not report.loadable, f"inspect says loadable, load says: {e}"
        assert "\n" not in str(e)
        return False, report.not_loadable_reason
    assert report.loadable, f"load succeeded, inspect said: {report.not_loadable_reason}"
    # `load --sample`: every loadable artifact predicts on an input built from its own metadata -- except weights
    # without their network (a state dict whose network only the artifact's own code builds: nothing to predict with)
    if check_sample and model.info.get("kind") not in ("state_dict", "checkpoint"):
        out = model.predict(model.sample_input())
        assert out is not None and len(out) > 0
    return True, None


@pytest.mark.skipif(not CASES, reason=f"real-artifact corpus not found at {CORPUS}")
@pytest.mark.parametrize("entry,path", CASES or [pytest.param("none", None, id="no-corpus")])
def test_corpus_loadable_agrees_with_load(corpus, entry, path):
    _agree(path, TRUST.get(entry, False), check_sample=True)


@pytest.mark.parametrize("entry", ["cookbook-xgboost-1", "sm-fm-recsys", "sdk-sparkml-mleap", "sdk-tfs-test-model"])
def test_cli_load_sample_predicts(corpus, entry):
    path = next(p for e, p in ((c.values[0], c.values[1]) for c in CASES) if e == entry)
    r = run_cli("load", str(path), "--sample")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "no predictions printed"


def test_both_expected_files_are_read(corpus):
    names = {tsv for tsv, _ in _rows()}
    assert names == {"EXPECTED.tsv", "EXPECTED-wild.tsv"}


# ------------------------------------------------------------------------------------------ fixtures

def _joblib(obj) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def _saved_model(signature: bool, op: bool = False) -> bytes:
    """A ``saved_model.pb`` written with TensorFlow's own protobuf classes: one ``serve`` meta graph whose graph is
    empty (or holds one placeholder), with or without a ``serving_default`` signature."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    mg = sm.meta_graphs.add()
    mg.meta_info_def.tags.append("serve")
    mg.meta_info_def.tensorflow_version = "1.15.0"
    if op:
        node = mg.graph_def.node.add()
        node.name, node.op = "x", "Placeholder"
    if signature:
        sig = mg.signature_def["serving_default"]
        sig.method_name = "tensorflow/serving/predict"
        sig.inputs["x"].name, sig.inputs["x"].dtype = "x:0", 1
        sig.outputs["y"].name, sig.outputs["y"].dtype = "x:0", 1
    return sm.SerializeToString()


def test_several_pickles_fixture(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import LabelEncoder

    X, y = make_samples.make_data()
    art = tmp_path / "multi.tar.gz"
    art.write_bytes(pack_tar_gz({
        "a_encoder.pkl": _joblib(LabelEncoder().fit(["x", "y"])),
        "clf.joblib": _joblib(LogisticRegression(max_iter=200).fit(X, y)),
        "code/inference.py": b"import joblib, os\n\ndef model_fn(model_dir):\n"
                             b"    return joblib.load(os.path.join(model_dir, 'clf.joblib'))\n"}))
    assert _agree(art) == (True, None)


def test_pickled_dict_fixture(tmp_path):
    art = tmp_path / "dict.tar.gz"
    art.write_bytes(pack_tar_gz({"model.pkl": pickle.dumps({"coef": [1.0, 2.0]})}))
    loadable, reason = _agree(art)
    assert not loadable and "dict" in reason


@pytest.mark.parametrize("signature,op", [(False, False), (True, False), (False, True)],
                         ids=["no-signature-empty-graph", "signature-empty-graph", "no-signature"])
def test_tf_export_without_anything_to_call(tmp_path, signature, op):
    pytest.importorskip("tensorflow")
    art = tmp_path / "tf.tar.gz"
    art.write_bytes(pack_tar_gz({"1/saved_model.pb": _saved_model(signature, op)}))
    loadable, reason = _agree(art)
    assert not loadable and "1/saved_model.pb" in reason
    assert ("empty" in reason) == (not op) and ("no signature" in reason) == (not signature)


def test_tf_export_that_loads(tmp_path):
    pytest.importorskip("tensorflow")
    art = make_samples.build_tensorflow(tmp_path)
    assert _agree(art) == (True, None)


def test_conflicting_copies_fixture(tmp_path):
    import tarfile

    X, y = make_samples.make_data()
    from sklearn.linear_model import LogisticRegression

    art = tmp_path / "dup.tar.gz"
    with tarfile.open(art, "w:gz") as tf:
        for c in (1.0, 0.01):
            data = _joblib(LogisticRegression(C=c, max_iter=200).fit(X, y))
            ti = tarfile.TarInfo("model.joblib")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    loadable, reason = _agree(art)
    assert not loadable and "model.joblib" in reason


def test_unknown_files_fixture(tmp_path):
    art = tmp_path / "unknown.tar.gz"
    art.write_bytes(pack_tar_gz({"notes.txt": b"hello\n", "weights.bin": np.arange(64, dtype=np.uint8).tobytes()}))
    loadable, reason = _agree(art)
    assert not loadable and reason
