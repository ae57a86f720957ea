"""``artifact-tools serve`` as a SageMaker endpoint (:mod:`artifact_tools.endpoint`): real gunicorn servers started as
subprocesses, real HTTP on 127.0.0.1, artifacts trained here (``scripts/make_samples.py`` and in-test scikit-learn
transformers). Expected predictions come from the models themselves (joblib and XGBoost loading the archive
members directly, or the fitted objects kept in memory), never from artifact-tools; the routing bound comes from
the binomial distribution."""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

from helpers import ServeProcess, free_port, pack_tar_gz, request, sklearn_reference  # noqa: E402

pytest.importorskip("gunicorn")
pytest.importorskip("sklearn")
pytest.importorskip("xgboost")
pytest.importorskip("prometheus_client")

CSV = {"Content-Type": "text/csv"}


# ---------------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("endpoint")


@pytest.fixture(scope="module")
def env(work) -> dict:
    # a private state folder, so that the test's endpoints never meet another's state files
    return {**os.environ, "ARTIFACT_TOOLS_CACHE": str(work / "cache"), "XDG_RUNTIME_DIR": str(work / "run")}


@pytest.fixture(scope="module")
def artifacts(work) -> dict:
    """sklearn (LogisticRegression) and XGBoost samples, and two scikit-learn transformers for pipelines."""
    import joblib
    from sklearn.preprocessing import Binarizer, StandardScaler

    out = {"sklearn": make_samples.build_sklearn(work), "xgboost": make_samples.build_xgboost(work)}
    X, _ = make_samples.make_data()
    scaler = StandardScaler().fit(X * 2 - 0.3)
    binarizer = Binarizer(threshold=0.5)
    for name, obj in (("scaler", scaler), ("binarizer", binarizer)):
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        path = work / f"{name}.tar.gz"
        path.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
        out[name] = path
    out["objects"] = {"scaler": scaler, "binarizer": binarizer}
    return out


@pytest.fixture(scope="module")
def oracle(artifacts) -> dict:
    """Each model as its own framework loads it from the archive member: ``name -> predict(rows)``."""
    import xgboost as xgb

    forest = sklearn_reference(artifacts["sklearn"])
    with tarfile.open(artifacts["xgboost"]) as tf:
        booster = xgb.Booster()
        booster.load_model(bytearray(tf.extractfile("xgboost-model").read()))
    return {"A": lambda X: forest.predict(X), "B": lambda X: booster.predict(xgb.DMatrix(np.asarray(X))),
            "scaler": artifacts["objects"]["scaler"].transform,
            "binarizer": artifacts["objects"]["binarizer"].transform}


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(5).normal(scale=2.0, size=(8, 4))


def csv_body(X) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in np.atleast_2d(X)).encode()


class Endpoint(ServeProcess):
    """``serve ARGS`` (variants, a config, multi-model, a pipeline), waited for until ``/ping`` answers 200."""

    def __init__(self, env: dict, log_dir: Path, *args: str):
        super().__init__(list(args), env, log_dir / f"endpoint-{id(self)}.log")


class Client:
    """One kept-alive connection (as SageMaker's front end and most clients use)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def invoke(self, body: bytes, headers: dict | None = None) -> tuple[int, dict, bytes]:
        self.conn.request("POST", "/invocations", body=body, headers={**CSV, **(headers or {})})
        resp = self.conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()

    def close(self) -> None:
        self.conn.close()


def metrics(port: int) -> dict[tuple[str, tuple], float]:
    """``/metrics`` parsed: ``(sample name, sorted labels) -> value`` (the Prometheus text format: one sample a
    line, ``name{label="value",...} number``)."""
    status, headers, body = request(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, x) in ls for k, x in labels.items()))


def binomial_bounds(n: int, p: float, alpha: float = 1e-6) -> tuple[int, int]:
    """The central ``1 - alpha`` range of a Binomial(n, p) count, from its exact probabilities."""
    log_pmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
               + (n - k) * math.log1p(-p) for k in range(n + 1)]
    cdf, lo, hi = 0.0, None, n
    for k, lp in enumerate(log_pmf):
        cdf += math.exp(lp)
        if lo is None and cdf > alpha / 2:
            lo = k
        if cdf >= 1 - alpha / 2:
            hi = k
            break
    return lo, hi


# ---------------------------------------------------------------------------------------------------- variants

def test_weighted_routing_forced_variants_and_metrics(artifacts, oracle, env, work, rows):
    """Weights 3:1 over 2,000 requests from 8 kept-alive clients on 2 workers: the count routed to B lies in
    Binomial(2000, 1/4)'s central 1 - 1e-6 range; every answer is the prediction of the variant it names; a
    forced variant always gets the request; an unknown one and a target model are 400 with SageMaker's sentence;
    ``/metrics`` counts exactly the requests made, summed over both workers."""
    n, clients = 2000, 8
    expected = {name: oracle[name](rows[:1]).tolist() for name in ("A", "B")}
    body = csv_body(rows[:1])
    with Endpoint(env, work, "--variant", f"A={artifacts['sklearn']}:3", "--variant", f"B={artifacts['xgboost']}:1",
                  "--workers", "2") as server:
        def burst(count: int, headers: dict | None = None) -> list[str]:
            client, seen = Client(server.port), []
            try:
                for _ in range(count):
                    status, headers_, out = client.invoke(body, headers)
                    assert status == 200, out
                    variant = headers_["x-amzn-invoked-production-variant"]
                    assert np.allclose(json.loads(out), expected[variant], rtol=1e-6), (variant, out)
                    seen.append(variant)
            finally:
                client.close()
            return seen

        with ThreadPoolExecutor(clients) as pool:
            seen = [v for part in pool.map(burst, [n // clients] * clients) for v in part]
        assert len(seen) == n and set(seen) == {"A", "B"}
        lo, hi = binomial_bounds(n, 0.25)
        assert lo <= seen.count("B") <= hi, (seen.count("B"), lo, hi)

        target = "X-Amzn-SageMaker-Target-Variant"
        forced = burst(40, {target: "B"}) + burst(10, {target: "A"})
        assert forced == ["B"] * 40 + ["A"] * 10

        status, headers, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Variant": "C"})
        assert status == 400 and "x-amzn-invoked-production-variant" not in headers
        assert json.loads(out)["error"] == ("Endpoint local-endpoint does not have a production variant named 'C'; "
                                            "its variants are A, B.")
        status, _, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Model": "m.tar.gz",
                                                     "X-Amzn-SageMaker-Target-Variant": "A"})
        assert status == 400 and json.loads(out)["error"] == (
            "Endpoint local-endpoint is not a multi-model endpoint and does not support target model header.")
        status, headers, out = invoke(server.port, b"1,2\n", {"X-Amzn-SageMaker-Target-Variant": "A"})
        assert status == 400 and headers["x-amzn-invoked-production-variant"] == "A"  # the model refused it

        m = metrics(server.port)
        routed = {"A": seen.count("A") + 10 + 2, "B": seen.count("B") + 40}
        for variant in ("A", "B"):
            assert total(m, "Invocations_total", variant=variant) == routed[variant]
            count = routed[variant] - (1 if variant == "A" else 0)  # the target-model refusal never met the model
            assert total(m, "ModelLatency_seconds_count", variant=variant) == count
            assert total(m, "OverheadLatency_seconds_count", variant=variant) == routed[variant]
        assert total(m, "Invocations_total") == n + 50 + 3
        assert total(m, "Invocation4XXErrors_total") == 3
        assert total(m, "Invocation4XXErrors_total", variant="A") == 2
        assert total(m, "Invocation5XXErrors_total") == 0
        assert total(m, "ModelLatency_seconds_bucket", variant="B", le="+Inf") == routed["B"]


def invoke(port: int, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    return request(port, "POST", "/invocations", body, {**CSV, **headers})


def update_weights(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "artifact_tools", "endpoint", "update-weights", *args],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_weights_change_and_variant_removed_under_load(artifacts, oracle, env, work, rows):
    """An endpoint config file with A (weight 1) and B (weight 0); 6 clients send requests without pause while
    ``endpoint update-weights`` moves all traffic to B and then removes A: no request fails, every request sent
    after the command returned goes to B, and A can no longer be forced."""
    folder = work / "config"
    folder.mkdir()
    shutil.copy(artifacts["sklearn"], folder / "a.tar.gz")
    config = folder / "endpoint.json"
    config.write_text(json.dumps({
        "EndpointConfigName": "churn",
        "ProductionVariants": [{"VariantName": "A", "ModelName": "model-a", "InitialVariantWeight": 1,
                                "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
                               {"VariantName": "B", "ModelDataUrl": str(artifacts["xgboost"]),
                                "InitialVariantWeight": 0}],
        "Models": [{"ModelName": "model-a", "PrimaryContainer": {"ModelDataUrl": "a.tar.gz"}}]}))
    body = csv_body(rows[:2])
    expected = {name: oracle[name](rows[:2]).tolist() for name in ("A", "B")}
    with Endpoint(env, work, "--endpoint-config", str(config), "--workers", "2") as server:
        stop = threading.Event()
        log: list[tuple[float, int, str]] = []
        failures: list[str] = []

        def load() -> None:
            client = Client(server.port)
            try:
                while not stop.is_set():
                    sent = time.monotonic()
                    status, headers, out = client.invoke(body)
                    variant = headers.get("x-amzn-invoked-production-variant", "")
                    if status != 200 or not np.allclose(json.loads(out), expected[variant], rtol=1e-6):
                        failures.append(f"{status} {variant} {out[:200]!r}")
                    log.append((sent, status, variant))
            except Exception as e:  # a dropped connection is a failure too
                failures.append(repr(e))
            finally:
                client.close()

        threads = [threading.Thread(target=load) for _ in range(6)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0)
            asked = time.monotonic()
            done = update_weights("--config", str(config), "A=0", "B=1", env=env)
            assert done.returncode == 0, done.stderr
            moved = time.monotonic()
            time.sleep(1.0)
            done = update_weights("--port", str(server.port), "--remove", "A", env=env)  # found through the state file
            assert done.returncode == 0, done.stderr
            removed = time.monotonic()
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not failures, failures[:5]
        before = [v for sent, _, v in log if sent < asked]
        after = [v for sent, _, v in log if sent >= moved]
        assert before and set(before) == {"A"}, set(before)
        assert len(after) > 20 and set(after) == {"B"}, set(after)
        assert sum(1 for sent, _, _ in log if sent >= removed) > 10

        status, _, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Variant": "A"})
        assert status == 400 and "its variants are B." in json.loads(out)["error"]
        doc = json.loads(config.read_text())  # still a CreateEndpointConfig document, with the weights now in force
        assert [(v["VariantName"], v["InitialVariantWeight"]) for v in doc["ProductionVariants"]] == [("B", 1.0)]
        assert doc["ProductionVariants"][0]["ModelDataUrl"] == str(artifacts["xgboost"])

        bad = update_weights("--config", str(config), "--remove", "B", env=env)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "at least one variant" in bad.stderr
        bad = update_weights("--config", str(config), "Z=1", env=env)
        assert bad.returncode == 2 and "has no variant named 'Z'" in bad.stderr
    gone = update_weights("--port", str(server.port), "B=1", env=env)  # the stopped endpoint left no state behind
    assert gone.returncode == 2 and "no artifact-tools endpoint is running" in gone.stderr



def test_ping_shows_weights_updated_before_any_invocation(artifacts, env, work):
    """``/ping`` reports the weights in force: right after ``update-weights`` returns, with no invocation in between,
    every worker's ``/ping`` shows the new weights (a worker looks at the config file before answering it, as
    before routing)."""
    with Endpoint(env, work, "--variant", f"A={artifacts['sklearn']}:3", "--variant", f"B={artifacts['sklearn']}:1",
                  "--workers", "2") as server:
        def weights() -> dict:
            status, _, out = request(server.port, "GET", "/ping")
            assert status == 200, out
            return {v["name"]: v["weight"] for v in json.loads(out)["variants"]}

        assert weights() == {"A": 3.0, "B": 1.0}
        done = update_weights("--port", str(server.port), "A=1", "B=3", env=env)
        assert done.returncode == 0, done.stderr
        seen = [weights() for _ in range(8)]  # new connections: both workers answer some
        assert all(w == {"A": 1.0, "B": 3.0} for w in seen), seen


# ---------------------------------------------------------------------------------------------------- multi-model

def test_multi_model_loads_once_and_evicts_least_recently_used(artifacts, oracle, env, work, rows):
    """Models of two frameworks under one folder, one worker keeping at most 2: 16 concurrent first requests for
    one model load it once; a third model unloads the least recently used, which loads again when asked; an
    unknown model is 404 and a missing header 400, each with one sentence."""
    folder = work / "models"
    (folder / "team").mkdir(parents=True)
    shutil.copy(artifacts["sklearn"], folder / "forest.tar.gz")
    shutil.copy(artifacts["xgboost"], folder / "team" / "boost.tar.gz")
    shutil.copy(artifacts["sklearn"], folder / "team" / "forest-2.tar.gz")
    body = csv_body(rows)
    expected = {"forest.tar.gz": oracle["A"](rows).tolist(), "team/boost.tar.gz": oracle["B"](rows).tolist(),
                "team/forest-2.tar.gz": oracle["A"](rows).tolist()}
    with Endpoint(env, work, "--multi-model", str(folder), "--max-models", "2", "--workers", "1") as server:
        def ask(target: str) -> None:
            status, headers, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Model": target})
            assert status == 200, out
            assert headers["x-amzn-invoked-production-variant"] == "AllTraffic"
            assert np.allclose(json.loads(out), expected[target], rtol=1e-6)

        barrier = threading.Barrier(16)

        def first(_: int) -> None:
            barrier.wait(30)
            ask("team/boost.tar.gz")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(first, range(16)))
        m = metrics(server.port)
        assert total(m, "ModelLoadingTime_seconds_count", model="team/boost.tar.gz") == 1
        assert total(m, "Invocations_total", model="team/boost.tar.gz") == 16
        assert total(m, "LoadedModelCount") == 1

        ask("forest.tar.gz")
        ask("team/boost.tar.gz")  # now the most recently used: forest.tar.gz is the one to go
        ask("team/forest-2.tar.gz")
        m = metrics(server.port)
        assert total(m, "LoadedModelCount") == 2
        assert total(m, "ModelCacheHit_total", model="team/boost.tar.gz") == 1
        ask("team/boost.tar.gz")  # still loaded
        ask("forest.tar.gz")  # was unloaded: loads again
        m = metrics(server.port)
        assert total(m, "ModelLoadingTime_seconds_count", model="team/boost.tar.gz") == 1
        assert total(m, "ModelLoadingTime_seconds_count", model="forest.tar.gz") == 2
        assert total(m, "ModelLoadingTime_seconds_count", model="team/forest-2.tar.gz") == 1
        assert total(m, "LoadedModelCount") == 2

        status, _, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Model": "team/none.tar.gz"})
        assert status == 404 and json.loads(out)["error"] == f"there is no model 'team/none.tar.gz' under {folder}"
        status, _, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Model": "../models/forest.tar.gz"})
        assert status == 400 and "not a relative path" in json.loads(out)["error"]
        status, _, out = invoke(server.port, body, {})
        assert status == 400 and "X-Amzn-SageMaker-Target-Model" in json.loads(out)["error"]
        m = metrics(server.port)
        assert total(m, "Invocation4XXErrors_total") == 3
        assert total(m, "Invocations_total") == 16 + 5 + 3


# ---------------------------------------------------------------------------------------------------- pipelines

def test_pipelines_of_two_and_three_models(artifacts, oracle, env, work, rows):
    """scikit-learn scaler -> XGBoost, and scaler -> XGBoost -> scikit-learn binarizer: the endpoint's answer is
    the composition of the models' own predictions. The 3-model pipeline comes from ``--pipeline``, the 2-model
    one is a variant of an endpoint config whose model has two ``Containers``."""
    body = csv_body(rows)
    two = oracle["B"](oracle["scaler"](rows))
    three = oracle["binarizer"](two.reshape(-1, 1))
    assert 0 < three.sum() < len(rows)  # both outcomes occur, so a constant answer fails
    config = work / "pipelines.json"
    config.write_text(json.dumps({
        "ProductionVariants": [{"VariantName": "Two", "ModelName": "p2"},
                               {"VariantName": "Plain", "ModelName": "boost", "InitialVariantWeight": 0}],
        "Models": [{"ModelName": "p2", "Containers": [{"ModelDataUrl": str(artifacts["scaler"])},
                                                       {"ModelDataUrl": str(artifacts["xgboost"])}]},
                   {"ModelName": "boost", "PrimaryContainer": {"ModelDataUrl": str(artifacts["xgboost"])}}]}))
    with Endpoint(env, work, "--endpoint-config", str(config), "--workers", "1") as server:
        for accept in ("application/json", "text/csv"):
            status, headers, out = invoke(server.port, body, {"Accept": accept})
            assert status == 200 and headers["x-amzn-invoked-production-variant"] == "Two", out
            got = json.loads(out) if accept == "application/json" else np.loadtxt(io.BytesIO(out), delimiter=",")
            assert np.allclose(got, two, rtol=1e-6)
        status, headers, out = invoke(server.port, body, {"X-Amzn-SageMaker-Target-Variant": "Plain"})
        assert status == 200 and np.allclose(json.loads(out), oracle["B"](rows), rtol=1e-6)
        assert not np.allclose(two, oracle["B"](rows))  # the scaler step matters
    with Endpoint(env, work, "--pipeline", str(artifacts["scaler"]), str(artifacts["xgboost"]),
                  str(artifacts["binarizer"]), "--workers", "1") as server:
        status, headers, out = invoke(server.port, body, {})
        assert status == 200 and headers["x-amzn-invoked-production-variant"] == "AllTraffic", out
        assert np.array_equal(np.asarray(json.loads(out)).reshape(three.shape), three)
        status, _, out = invoke(server.port, b"1,2\n", {})
        assert status == 400 and len(json.loads(out)["error"].splitlines()) == 1


def test_bad_endpoint_arguments_are_one_sentence(artifacts, env, work):
    """Refused before anything listens: exit status 2 and one line on stderr."""
    cases = [
        (["--variant", f"A={artifacts['sklearn']}:0"], "at least one variant must have a weight above 0"),
        (["--variant", f"A={artifacts['sklearn']}", "--variant", f"A={artifacts['xgboost']}"], "given twice"),
        (["--variant", f"bad_name={artifacts['sklearn']}"], "is not valid"),
        (["--pipeline", *[str(artifacts["scaler"])] * 6], "at most 5 models"),
        (["--multi-model", str(work / "nowhere")], "is not a folder"),
        (["--endpoint-config", str(work / "none.json")], "does not exist"),
        ([], "give the artifact to serve"),
        ([str(artifacts["sklearn"]), "--variant", f"A={artifacts['sklearn']}"], "cannot be combined"),
    ]
    for args, sentence in cases:
        done = subprocess.run([sys.executable, "-m", "artifact_tools", "serve", *args, "--port", str(free_port())],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and sentence in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)


@pytest.mark.parametrize("form", ["variant", "multi-model", "pipeline"])
def test_relative_paths_in_every_flag_form(form, artifacts, oracle, env, work, rows):
    """Relative artifact paths and multi-model prefixes given as flags are relative to the folder the command
    runs in (the project root for these subprocesses), not to the state folder where the endpoint config the
    workers read is written."""
    rel = os.path.relpath(artifacts["sklearn"], PROJECT_ROOT)
    mme = artifacts["sklearn"].parent / "mme-relative"
    mme.mkdir(exist_ok=True)
    (mme / "m.tar.gz").write_bytes(artifacts["sklearn"].read_bytes())
    args = {"variant": ["--variant", f"A={rel}:1"],
            "multi-model": ["--multi-model", os.path.relpath(mme, PROJECT_ROOT)],
            "pipeline": ["--pipeline", os.path.relpath(artifacts["scaler"], PROJECT_ROOT),
                         os.path.relpath(artifacts["xgboost"], PROJECT_ROOT)]}[form]
    headers = {"X-Amzn-SageMaker-Target-Model": "m.tar.gz"} if form == "multi-model" else {}
    with Endpoint(env, work, *args, "--workers", "1") as server:
        status, _, out = invoke(server.port, csv_body(rows), {"Accept": "application/json", **headers})
        assert status == 200, out
    expected = oracle["B"](oracle["scaler"](rows)) if form == "pipeline" else oracle["A"](rows)
    assert np.allclose(np.asarray(json.loads(out)).reshape(np.shape(expected)), expected, rtol=1e-6)


def test_observations_counted_together_are_those_observe_makes():
    """A batch's latencies go into a histogram with one write per bucket (``endpoint._observe_all``): the bucket
    counts, count and sum are those of ``prometheus_client``'s own ``observe`` of each value, bounds included."""
    import prometheus_client as prom

    from artifact_tools import endpoint

    rng = np.random.default_rng(3)
    bounds = endpoint.LATENCY_BUCKETS
    values = [*bounds, 0.0, 1e-9, 1e6, *np.nextafter(bounds, 1.0), *(10.0 ** rng.uniform(-5, 2, size=300))]
    registries = []
    for bulk in (False, True):
        registry = prom.CollectorRegistry()
        child = prom.Histogram("h", "h", ["v"], buckets=bounds, registry=registry).labels("x")
        if bulk:
            endpoint._observe_all(child, [float(v) for v in values])
        else:
            for v in values:
                child.observe(float(v))
        registries.append({(s.name, tuple(sorted(s.labels.items()))): s.value
                           for metric in registry.collect() for s in metric.samples if not s.name.endswith("_created")})
    alone, together = registries
    assert alone.keys() == together.keys()
    for key, value in alone.items():
        assert together[key] == pytest.approx(value, rel=1e-12), key
    assert alone[("h_count", (("v", "x"),))] == len(values)
