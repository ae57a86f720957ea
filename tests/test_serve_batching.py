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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402
from test_endpoint import metrics, total  # noqa: E402

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


def _check_all(port: int, reference, rounds: int, seed: int) -> tuple[int, int]:
    """Send ``rounds`` bursts of requests from ``CLIENTS`` threads at once; every answer must be the forest's own
    answer to that request alone, and every bad request must fail alone with its own sentence. Returns how many
    requests were sent and how many of them were bad."""
    sent = bad = 0
    with ThreadPoolExecutor(CLIENTS) as pool:
        for n in range(rounds):
            reqs = _requests(3 * CLIENTS, seed + n)
            answers = list(pool.map(lambda r: _send(port, r), reqs))
            sent += len(reqs)
            bad += sum(1 for r in reqs if r["kind"] != "good")
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
    return sent, bad


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(artifact, reference, env, tmp_path):
    """One worker, many clients at once: requests are predicted together (``BatchedInvocations_total`` grows), in
    mixed content types and Accepts, and each answer is what the model gives that request alone; a request holding
    infinity, batched with good ones, fails alone with the model's sentence, and its neighbours get their answers."""
    with ServeProcess([str(artifact), "--workers", "1"], env, tmp_path / "serve.log") as server:
        sent, bad = _check_all(server.port, reference, rounds=4, seed=1)
        for n in range(4):  # batches form when requests queue: on a machine busy with other work, more bursts
            if _batched(server.port) > 0:
                break
            more = _check_all(server.port, reference, rounds=1, seed=50 + n)
            sent, bad = sent + more[0], bad + more[1]
        assert _batched(server.port) > 0, "no request was predicted in a batch"
        # the answers of a batch are counted together (one write per figure and bucket): exactly the requests sent
        m = metrics(server.port)
        assert total(m, "Invocations_total") == sent
        assert total(m, "Invocation4XXErrors_total") == bad and total(m, "Invocation5XXErrors_total") == 0
        assert total(m, "OverheadLatency_seconds_count") == sent
        assert total(m, "OverheadLatency_seconds_bucket", le="+Inf") == sent
        model = total(m, "ModelLatency_seconds_count")
        assert sent - bad <= model <= sent and total(m, "ModelLatency_seconds_bucket", le="+Inf") == model
        assert 0 < total(m, "ModelLatency_seconds_sum") < total(m, "OverheadLatency_seconds_sum") + \
            total(m, "ModelLatency_seconds_sum")
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
    assert not serve.batchable(with_code)  # its LogisticRegression: BLAS products (see test_which_sklearn_models)
    assert serve.batchable(replace(with_code, model=forest.model))
    for framework in ("tensorflow", "pytorch", "spark", "mleap", "onnx", "unknown"):
        assert not serve.batchable(replace(forest, framework=framework)), framework
    assert not serve.batchable(replace(forest, invoke_fn=lambda body, ctype, accept: (body, ctype)))
    assert not serve.batchable(replace(forest, report=None))
    text = replace(forest, framework="huggingface", info={"task": "token-classification"})
    assert not serve.batchable(text)  # one answer row per token, not per input
    assert serve.batchable(replace(text, info={"task": "text-classification"}))
    # what batches is what concatenates: numeric arrays of one width and dtype, lists of texts, texts
    assert serve._batch_key(np.zeros((3, 4))) == (("array", (4,), np.zeros(1).dtype.str), 3)
    # a 1-D array is one flat row to the loaders: two half rows joined would make one whole row, predicted once for
    # two requests (the split then finds 1 prediction for "6 rows" and batching was off for the worker's life)
    assert serve._batch_key(np.zeros(3)) is None
    assert serve._batch_key(["a", "b"]) == (("texts",), 2)
    assert serve._batch_key("a") == (("texts",), 1)  # one text, {"inputs": "..."}: a list of one to the loader
    # ... for a text model only: texts sent to the forest are each answered alone (a batch of them could give one
    # error row for two requests, which stopped the worker batching for good)
    app = serve.create_app(forest)
    for body in (b'{"inputs": "a"}', b'{"inputs": ["a", "b"]}', b"[[1, 2, 3, 4, 5]]"):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        assert (app.batcher.prepare(environ) is None) is (b"inputs" in body), body
    assert serve._batch_key(np.array(["a"], dtype=object)) is None
    assert serve._batch_key({"x": np.zeros(2)}) is None
    assert serve._split(np.arange(6), [1, 2, 3])[2].tolist() == [3, 4, 5]
    assert serve._split(np.arange(6), [1, 2]) is None  # not one prediction per input row: not split


def test_which_sklearn_models():
    """scikit-learn models batch only when made of estimators that give a row the same bits in any batch: trees
    and tree ensembles, elementwise preprocessing, pipelines of those. A linear model's or a network's predictions
    move in the last bits with the batch (BLAS takes other kernels for other shapes): shown here with the
    framework's own predict, one row alone against the same row among 63 others."""
    import warnings

    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, IsolationForest
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

    from artifact_tools import serve

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 40))
    y = X @ rng.normal(size=40)
    linear = LinearRegression().fit(X, y)
    T = rng.normal(size=(64, 40))
    alone = np.concatenate([linear.predict(T[i:i + 1]) for i in range(len(T))])
    assert not np.array_equal(alone, linear.predict(T))  # why linear models are not batched
    assert not serve._rows_exact(linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: 5 iterations are enough for a fitted network
        assert not serve._rows_exact(MLPRegressor(max_iter=5).fit(X, y))
    gbr = GradientBoostingRegressor(n_estimators=5).fit(X, y)
    assert serve._rows_exact(gbr)
    assert not serve._rows_exact(GradientBoostingRegressor(n_estimators=5, init=LinearRegression()).fit(X, y))
    assert serve._rows_exact(HistGradientBoostingRegressor(max_iter=5).fit(X, y))
    assert serve._rows_exact(IsolationForest(n_estimators=5).fit(X))
    assert serve._rows_exact(Pipeline([("s", StandardScaler()), ("skip", "passthrough"), ("m", gbr)]))
    assert not serve._rows_exact(Pipeline([("s", StandardScaler()), ("m", linear)]))
    assert not serve._rows_exact(Pipeline([("p", PolynomialFeatures()), ("m", gbr)]))
    ct = ColumnTransformer([("n", StandardScaler(), [0, 1]), ("c", OneHotEncoder(), [2])], remainder="drop")
    ct.fit(np.c_[X[:, :2], rng.integers(0, 3, size=200)])
    assert serve._rows_exact(Pipeline([("ct", ct), ("m", gbr)]))
    assert not serve._rows_exact(object())


def _wide_network(tmp_path_factory) -> Path:
    import warnings

    import joblib
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: 3 iterations are enough for an answer
        model = MLPRegressor(hidden_layer_sizes=(1024, 1024), max_iter=3, random_state=0).fit(X, X.sum(axis=1))
    with tempfile.TemporaryDirectory() as d:
        joblib.dump(model, Path(d) / "model.joblib")
        return make_samples.tar_folder(Path(d), tmp_path_factory.mktemp("batching-net") / "network.tar.gz")


def _burst(port: int, reqs: list[dict]) -> list[tuple[int, dict, bytes]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda r: _send(port, r), reqs))


def test_a_network_answers_each_request_as_alone(tmp_path_factory, env, tmp_path):
    """A scikit-learn network (matrix products, a millisecond per call, so concurrent requests queue): every
    answer under load is, byte for byte, the answer the same request gets alone, and matches the framework's own
    predict on its rows; it is not batched (a batch moved its answers in the last digits)."""
    artifact = _wide_network(tmp_path_factory)
    net = sklearn_reference(artifact)
    rng = np.random.default_rng(12)
    reqs = []
    for _ in range(4 * CLIENTS):
        X = rng.normal(size=(int(rng.integers(1, 4)), 8))
        reqs.append({"X": X, "type": "application/json", "accept": "application/json",
                     "body": json.dumps(X.tolist()).encode()})
    with ServeProcess([str(artifact), "--workers", "1"], env, tmp_path / "net.log") as server:
        alone = [_send(server.port, r) for r in reqs]
        for r, (status, _, body) in zip(reqs, alone):
            assert status == 200, body
            np.testing.assert_allclose(json.loads(body), net.predict(r["X"]), rtol=1e-9)
        for _ in range(2):
            for one, loaded in zip(alone, _burst(server.port, reqs)):
                assert loaded[0] == 200 and loaded[2] == one[2], (loaded[2], one[2])
        assert _batched(server.port) == 0


def test_refused_requests_in_a_batch_keep_their_own_answer(artifact, reference, env, tmp_path):
    """Requests refused while a batch decodes them (an Accept nothing fits: 406; a Content-Type not read: 415;
    broken JSON, an empty body: 400) are answered with the status and sentence they get alone -- their body was
    read once, and not read again as gone ("the request body ended after 0 of N bytes") -- and the good requests
    around them get the forest's answers."""
    rng = np.random.default_rng(31)
    bad = [({"Content-Type": "application/json", "Accept": "image/png"}, None, 406),
           ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415),
           ({"Content-Type": "application/json"}, b"[[1, 2,", 400),
           ({"Content-Type": "text/csv"}, b"", 400)]
    reqs = []
    for i in range(4 * CLIENTS):
        X = rng.normal(size=(int(rng.integers(1, 4)), FEATURES))
        if i % 3 == 1:
            headers, body, status = bad[(i // 3) % len(bad)]
            reqs.append({"headers": headers, "body": body or json.dumps(X.tolist()).encode(), "status": status})
        else:
            reqs.append({"headers": {"Content-Type": "application/json"}, "body": json.dumps(X.tolist()).encode(),
                         "status": 200, "X": X})

    def send(r: dict) -> tuple[int, dict, bytes]:
        return request(server.port, "POST", "/invocations", r["body"], r["headers"])

    with ServeProcess([str(artifact), "--workers", "1"], env, tmp_path / "refused.log") as server:
        alone = [send(r) for r in reqs]
        for n in range(8):  # at least 3 bursts, more while none was batched (a machine busy with other work)
            if n >= 3 and _batched(server.port) > 0:
                break
            with ThreadPoolExecutor(CLIENTS) as pool:
                loaded = list(pool.map(send, reqs))
            for r, one, got in zip(reqs, alone, loaded):
                assert one[0] == r["status"] and got[0] == r["status"], (r["headers"], one[2], got[2])
                if r["status"] == 200:
                    np.testing.assert_array_equal(json.loads(got[2]), reference.predict(r["X"]))
                else:
                    assert got[2] == one[2]
                    assert "ended after" not in json.loads(got[2])["error"]
        assert _batched(server.port) > 0


def test_jobs_taken_together_that_predict_alone_are_timed_for_the_inline_rule():
    """The model thread takes waiting jobs together; one that does not join the batch (here: its batcher leaves it
    out, as a body over BATCH_BODY) runs its own prediction, and a slow one must end the fast streak and start the
    cooldown, as it does when taken alone -- else the next lone request could run a slow prediction on the loop."""
    import asyncio

    from artifact_tools import serve

    def busy(seconds: float):
        def fn() -> None:
            end = time.thread_time() + seconds
            while time.thread_time() < end:
                pass
        return fn

    class LeftOut:  # a batcher that leaves every request out of the batch
        enabled = True

        def prepare(self, environ: dict) -> None:
            return None

    async def run(together: bool) -> tuple[int, bool]:
        model = serve._ModelThread(asyncio.get_running_loop(), 1)
        try:
            for _ in range(serve.INLINE_STREAK + 4):
                await model.submit(busy(0.0001))
            assert model.can_inline(10)
            slow = busy(2 * serve.INLINE_BUDGET)
            jobs = [busy(0.0001), slow, busy(0.0001)] if together else [slow]
            await asyncio.gather(*(model.submit(fn, (LeftOut(), {})) for fn in jobs))
            return model.fast_streak, model.can_inline(10)
        finally:
            model.stop()

    for together in (False, True):
        streak, inline = asyncio.run(run(together))
        assert streak <= 1 and not inline, (together, streak, inline)


def test_a_batch_waits_for_the_requests_it_expects_and_only_for_them(monkeypatch):
    """The model thread waits for as many requests as the last batch saw (taken, and arrived while it ran), within
    its share of the last batch's time, and goes on as soon as they are there; a request that does not come holds
    the batch up no longer than that, and the next batch expects fewer; jobs taken together that all predict
    alone (here: a batcher that leaves them out) give no reason to wait. Recorded here: when each job ran."""
    import asyncio

    from artifact_tools import serve

    monkeypatch.setattr(serve, "GATHER_SHARE", 20.0)  # batches here run 0.1 s or more: waits of up to 1 s
    monkeypatch.setattr(serve, "MAX_GATHER_WAIT", 1.0)

    class Together:  # a batcher that predicts every request with the others (each job then encodes its share)
        enabled = True

        def prepare(self, environ: dict) -> tuple:
            return ("rows",), None, 1

        def predict(self, members: list) -> None:
            for environ, _, _ in members:
                environ[serve.PREDICTED] = None

    class LeftOut:  # a batcher that leaves every request out of the batch: each job predicts alone
        enabled = True

        def prepare(self, environ: dict) -> None:
            return None

    ran: dict = {}

    def job(name: str, seconds: float = 0.0):
        def fn() -> None:
            ran[name] = time.monotonic()
            end = time.thread_time() + seconds
            while time.thread_time() < end:
                pass
        return fn

    async def run() -> dict:
        loop = asyncio.get_running_loop()
        model = serve._ModelThread(loop, 1)

        def submit(name: str, seconds: float = 0.0, batcher: object = Together()):
            return model.submit(job(name, seconds), (batcher, {}))

        async def took(name: str, seconds: float = 0.0, batcher: object = Together()) -> float:
            sent = time.monotonic()
            await submit(name, seconds, batcher)
            return time.monotonic() - sent

        try:
            first = submit("a", 0.1)
            while "a" not in ran:  # "a" runs; b, c, d arrive meanwhile: the batch after it expects 4
                await asyncio.sleep(0.005)
            rest = [submit(n, 0.03) for n in "bcd"]
            await first
            await asyncio.sleep(0.3)
            e_sent = time.monotonic()
            await asyncio.gather(*rest, submit("e", 0.03))  # the fourth, 0.3 s after b, c and d were waiting
            # b, c, d and e saw 4; now only f comes, and nothing more: f waits for 3 that never come, then runs
            f_took = await took("f", 0.1)  # 0.1 s: the next batch may wait 1 s
            g_took = await took("g")  # the last batch saw one request: a lone one does not wait
            # h, i, j taken together but predicted alone: the request after them does not wait for 3 more
            first = submit("h", 0.1, LeftOut())
            while "h" not in ran:
                await asyncio.sleep(0.005)
            rest = [submit(n, 0.03, LeftOut()) for n in "ij"]
            await asyncio.gather(first, *rest)
            k_took = await took("k", 0.0, LeftOut())
            return {"e_sent": e_sent, "f_took": f_took, "g_took": g_took, "k_took": k_took}
        finally:
            model.stop()

    times = asyncio.run(run())
    assert times["e_sent"] <= ran["b"] < times["e_sent"] + 0.5, times  # b, c, d waited for e, and no longer
    assert times["e_sent"] <= ran["d"], times
    assert 0.8 <= times["f_took"] <= 1.9, times  # waited, for at most its share of the last batch's time
    assert times["g_took"] < 0.3, times
    assert times["k_took"] < 0.3, times
