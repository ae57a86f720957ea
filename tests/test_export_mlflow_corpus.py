"""MLflow export of real artifacts whose shapes the sample models lack: a TF 1 estimator answering bytes (the
scoring server sends them as base64), a Gluon export with four outputs, and a scikit-learn artifact whose
``inference.py`` loading did not run (the exported model must reload the same model file, not the script).

Expected values come from the frameworks themselves (TensorFlow's session on the SavedModel, MXNet's SymbolBlock,
scikit-learn's estimator), never from the exporter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import loaders
from exporters import mlflow as target

mlflow = pytest.importorskip("mlflow")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import untar  # noqa: E402


def _served(folder: Path, body: dict) -> dict:
    """What `mlflow models serve` answers for ``body``: MLflow's own request handler on the loaded model."""
    from mlflow.models import Model
    from mlflow.pyfunc.scoring_server import invocations

    model = mlflow.pyfunc.load_model(str(folder))
    answer = invocations(json.dumps(body), "application/json", model, Model.load(str(folder)).get_input_schema())
    assert answer.status == 200, answer.response
    return json.loads(answer.response)


def test_tf1_estimator_bytes_output_through_the_scoring_server(corpus, tmp_path):
    tf = pytest.importorskip("tensorflow")
    import base64

    art = corpus / "sdk-tf-iris" / "tf-iris-model.tar.gz"
    out = tmp_path / "model"
    result = target.export(loaders.load(art), out)
    assert result.passed, result.summary()
    rows = np.random.default_rng(5).normal(loc=3.0, size=(4, 4)).astype(np.float32)
    folder = next(p.parent for p in untar(art, tmp_path / "files").rglob("saved_model.pb"))
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(folder))
        sig = meta.signature_def["serving_default"]
        protos = [tf.train.Example(features=tf.train.Features(feature={"inputs": tf.train.Feature(
            float_list=tf.train.FloatList(value=row.tolist()))})).SerializeToString() for row in rows]
        want = sess.run({k: v.name for k, v in sig.outputs.items()},
                        {sig.inputs["inputs"].name: np.asarray(protos, dtype=object)})
    got = mlflow.pyfunc.load_model(str(out)).predict(rows)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)
    served = _served(out, {"instances": rows.tolist()})["predictions"]
    classes = [[base64.decodebytes(c.encode()) for c in row] for row in served["classes"]]
    assert classes == want["classes"].tolist()  # bytes, sent as base64 text by MLflow's JSON encoder


def test_gluon_export_with_four_outputs_gives_named_outputs(corpus, tmp_path):
    mx = pytest.importorskip("mxnet")
    model = loaders.load(corpus / "mxnet-gluon-py2-headpose" / "model.tar.gz")
    x = np.asarray(model.sample_input(), dtype=np.float32)
    out = tmp_path / "model"
    assert target.export(model, out, sample=x).passed
    heads = model.model(mx.nd.array(x))  # MXNet's own SymbolBlock forward
    want = [h.asnumpy() for h in heads]
    got = mlflow.pyfunc.load_model(str(out)).predict(x)
    assert sorted(got) == [f"output_{i}" for i in range(len(want))] and len(want) == 4
    for i, w in enumerate(want):
        np.testing.assert_allclose(np.asarray(got[f"output_{i}"]), w, rtol=1e-5, atol=1e-6)
    served = _served(out, {"instances": x.tolist()})["predictions"]
    for i, w in enumerate(want):
        np.testing.assert_allclose(np.asarray(served[f"output_{i}"]), w, rtol=1e-5, atol=1e-6)


def test_unused_inference_script_does_not_make_the_reload_run_it(corpus, tmp_path):
    """The audit's verdict is ``code`` (inference.py), but loading read model.joblib without running the script:
    the MLflow model must reload model.joblib the same way (trust=True would route it through the script)."""
    pytest.importorskip("sklearn")
    model = loaders.load(corpus / "sklearn-multi-pickles" / "model.tar.gz")
    assert model.report.trust["verdict"] == "code" and model.info["file"] == "model.joblib"
    out = tmp_path / "model"
    assert target.export(model, out).passed
    [config] = [json.loads(p.read_text()) for p in out.rglob("artifact-tools.json")]
    assert config["trust"] is False
    x = np.asarray(model.sample_input(), dtype=np.float64)
    rng = np.random.default_rng(2)
    x = np.vstack([x, x + rng.normal(scale=0.1, size=x.shape)])
    want = model.model.kneighbors(x, return_distance=False)  # scikit-learn's own answer: the neighbours' rows
    np.testing.assert_array_equal(np.asarray(mlflow.pyfunc.load_model(str(out)).predict(x)), want)
