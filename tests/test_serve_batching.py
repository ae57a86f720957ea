"""Dynamic batching in ``artifact-tools serve`` (``artifact_tools.serve._ModelThread``): requests that arrive while
the model is busy are predicted with one call and answered each with its own rows. Real gunicorn servers as
subprocesses, real HTTP on 127.0.0.1 from many threads at once, a scikit-learn forest built here; every expected
answer is the forest's own ``predict`` on that request's rows alone (joblib-loaded from the archive, not through
artifact-tools)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

from helpers import ServeProcess, request, sklearn_reference  # noqa: E402

pytest.importorskip("gunicorn")
pytest.importorskip("sklearn")

FEATURES = 5
CLIENTS = 24


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """A random-forest regressor (continuous outputs, so a row answered with another row's prediction shows) in
    the SageMaker scikit-learn layout; its ``predict`` takes a millisecond or more, so concurrent requests queue."""
    import joblib
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, FEATURES))
    y = X @ rng.normal(size=FEATURES) + rng.normal(scale=0.1, size=400)
    model = RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory() as d:
        joblib.dump(model, Path(d) / "model.joblib")
        return make_samples.tar_folder(Path(d), tmp_path_factory.mktemp("batching") / "forest.tar.gz")


@pytest.fixture(scope="module")
def reference(artifact):
    return sklearn_reference(artifact)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    return {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path_factory.mktemp("batching-cache"))}


def _body(X: np.ndarray, content_type: str) -> bytes:
    if content_type == "text/csv":
        return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()
    if content_type == "application/x-npy":
        buf = io.BytesIO()
        np.save(buf, X)
        return buf.getvalue()
    return json.dumps({"instances": X.tolist()}).encode()


def _answer(body: bytes, accept: str, content_type: str) -> np.ndarray:
    if accept == "text/csv":
        return np.array([float(line) for line in body.decode().splitlines()])
    if accept == "application/jsonlines":
        return np.array([json.loads(line) for line in body.decode().splitlines()], dtype=float)
    if accept == "application/x-npy":
        return np.load(io.BytesIO(body), allow_pickle=False)
    doc = json.loads(body)
    if content_type == "application/json":  # {"instances": ...} is answered as {"predictions": ...}
        doc = doc["predictions"]
    return np.array(doc, dtype=float)


TYPES = ("text/csv", "application/json", "application/x-npy")
ACCEPTS = ("application/json", "text/csv", "application/jsonlines", "application/x-npy")


def _requests(count: int, seed: int) -> list[dict]:
    """``count`` requests of 1 to 4 distinct rows each, in every content type and Accept, with bad ones among them:
    a row holding infinity (the forest refuses it: ``predict`` raises ValueError) and rows of the wrong width."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        X = rng.normal(size=(int(rng.integers(1, 5)), FEATURES))
        kind = "good"
        if i % 11 == 5:
            X[-1, 2] = np.inf
            kind = "infinite"
        elif i % 13 == 7:
            X = X[:, :3]
            kind = "narrow"
        ctype, accept = TYPES[i % len(TYPES)], ACCEPTS[(i // len(TYPES)) % len(ACCEPTS)]
        out.append({"X": X, "kind": kind, "type": ctype, "accept": accept, "body": _body(X, ctype)})
    return out


def _send(port: int, r: dict) -> tuple[int, dict, bytes]:
    return request(port, "POST", "/invocations", r["body"], {"Content-Type": r["type"], "Accept": r["accept"]})


def _batched(port: int) -> float:
    """The endpoint's ``BatchedInvocations_total``, summed over its series (0 when none was counted)."""
    status, _, body = request(port, "GET", "/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith("BatchedInvocations_total"))


def _check_all(port: int, reference, rounds: int, seed: int) -> None:
    """Send ``rounds`` bursts of requests from ``CLIENTS`` threads at once; every answer must be the forest's own
    answer to that request alone, and every bad request must fail alone with its own sentence."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        for n in range(rounds):
            reqs = _requests(3 * CLIENTS, seed + n)
            answers = list(pool.map(lambda r: _send(port, r), reqs))
            for r, (status, headers, body) in zip(reqs, answers):
                if r["kind"] == "good":
                    assert status == 200, body
                    got = _answer(body, r["accept"], r["type"])
                    np.testing.assert_array_equal(got, reference.predict(r["X"]))  # exactly, row for row
                    assert headers["x-amzn-invoked-production-variant"] == "AllTraffic"
                else:
                    assert status == 400, (r["kind"], status, body)
                    error = json.loads(body)["error"]
                    if r["kind"] == "infinite":
                        with pytest.raises(ValueError) as refused:  # the framework's own refusal of that input
                            reference.predict(r["X"])
                        assert "infinity" in str(refused.value)
                        assert error.startswith("the model rejected the input:") and "infinity" in error
                    else:
                        assert f"{FEATURES} features" in error or "features" in error, error


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(artifact, reference, env, tmp_path):
    """One worker, many clients at once: requests are predicted together (``BatchedInvocations_total`` grows), in
    mixed content types and Accepts, and each answer is what the model gives that request alone; a request holding
    infinity, batched with good ones, fails alone with the model's sentence, and its neighbours get their answers."""
    with ServeProcess([str(artifact), "--workers", "1"], env, tmp_path / "serve.log") as server:
        _check_all(server.port, reference, rounds=4, seed=1)
        assert _batched(server.port) > 0, "no request was predicted in a batch"
        # a lone request after the bursts: a batch of one, answered as before
        X = np.random.default_rng(99).normal(size=(3, FEATURES))
        status, _, body = request(server.port, "POST", "/invocations", _body(X, "text/csv"),
                                  {"Content-Type": "text/csv", "Accept": "application/json"})
        assert status == 200 and np.array_equal(np.array(json.loads(body), dtype=float), reference.predict(X))
    assert "Traceback" not in server.log()


def test_row_cap_and_batching_off(artifact, reference, env, tmp_path):
    """``--max-batch-rows 4`` caps the rows of one batched prediction (requests of up to 4 rows still batch, and
    answers stay exact); ``--max-batch-rows 0`` turns batching off: the same load, the same answers, nothing
    counted as batched."""
    with ServeProcess([str(artifact), "--workers", "1", "--max-batch-rows", "4"], env, tmp_path / "cap.log") as srv:
        _check_all(srv.port, reference, rounds=2, seed=20)
    with ServeProcess([str(artifact), "--workers", "1", "--max-batch-rows", "0"], env, tmp_path / "off.log") as srv:
        _check_all(srv.port, reference, rounds=2, seed=40)
        assert _batched(srv.port) == 0


def test_max_batch_rows_must_be_a_count(artifact, env):
    proc = subprocess.run([sys.executable, "-m", "artifact_tools", "serve", str(artifact), "--max-batch-rows", "-1"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("--max-batch-rows must be a whole number of at least 0, "
                                                         "not -1")
    assert "Traceback" not in proc.stderr


def test_which_models_batch(artifact, tmp_path):
    """Decided per framework and per artifact: a scikit-learn model from an audited artifact batches, also when the
    artifact carries inference code the server does not run; the same model as another framework's (a network,
    Spark), served through its own inference code, or not loaded from an audited artifact does not."""
    import loaders
    from artifact_tools import serve

    forest = loaders.load(str(artifact))
    assert serve.batchable(forest)
    with_code = loaders.load(str(make_samples.build_sklearn(tmp_path)))  # code/inference.py, not run without trust
    assert with_code.report.trust["verdict"] == "code"
    assert serve.batchable(with_code)
    for framework in ("tensorflow", "pytorch", "spark", "mleap", "onnx", "unknown"):
        assert not serve.batchable(replace(forest, framework=framework)), framework
    assert not serve.batchable(replace(forest, invoke_fn=lambda body, ctype, accept: (body, ctype)))
    assert not serve.batchable(replace(forest, report=None))
    text = replace(forest, framework="huggingface", info={"task": "token-classification"})
    assert not serve.batchable(text)  # one answer row per token, not per input
    assert serve.batchable(replace(text, info={"task": "text-classification"}))
    # what batches is what concatenates: numeric arrays of one width and dtype, lists of texts
    assert serve._batch_key(np.zeros((3, 4))) == (("array", (4,), np.zeros(1).dtype.str), 3)
    assert serve._batch_key(["a", "b"]) == (("texts",), 2)
    assert serve._batch_key(np.array(["a"], dtype=object)) is None
    assert serve._batch_key({"x": np.zeros(2)}) is None
    assert serve._split(np.arange(6), [1, 2, 3])[2].tolist() == [3, 4, 5]
    assert serve._split(np.arange(6), [1, 2]) is None  # not one prediction per input row: not split
