"""The seed's Model Monitor scenario end to end on the real local endpoint: ``artifact-tools serve --capture`` as a
subprocess on 127.0.0.1 answering CSV requests with a scikit-learn model trained here; a baseline from the training
CSV (:func:`artifact_tools.monitor.baseline`); good traffic, then traffic with the first feature multiplied by
10,000, the last one negated and fractions sent to an integer feature; the server stopped (its capture files
closed); :func:`artifact_tools.monitor.run` over the capture folder names exactly those features and checks.
Also: the variant that answered names the capture folder (``--variant``), and ``transform --capture``."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("datasketches")
pytest.importorskip("gunicorn")
pytest.importorskip("sklearn")

from artifact_tools import monitor  # noqa: E402
from artifact_tools.capture import read_capture  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import ServeProcess, pack_tar_gz, request  # noqa: E402

FEATURES = ["crim", "rooms", "chas", "dist"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "crim": rng.lognormal(0.0, 1.0, n).round(5),  # Fractional, positive (the first feature)
        "rooms": rng.integers(3, 10, n),  # Integral
        "chas": rng.integers(0, 2, n),  # Integral 0/1
        "dist": rng.gamma(2.0, 2.0, n).round(4) + 0.5,  # Fractional, positive (the last feature)
    })


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    path = tmp_path_factory.mktemp("training") / "train.csv"
    df = _frame(4000, 7)
    df.to_csv(path, index=False)
    return path, df


@pytest.fixture(scope="module")
def model_artifact(training, tmp_path_factory) -> tuple[Path, object]:
    """A LinearRegression trained on the training CSV, packed as a SageMaker scikit-learn model.tar.gz."""
    import joblib
    from sklearn.linear_model import LinearRegression

    df = training[1]
    X = df[FEATURES].to_numpy(dtype=float)
    model = LinearRegression().fit(X, 3 * X[:, 0] - X[:, 1] + X[:, 3])
    buf = io.BytesIO()
    joblib.dump(model, buf)
    path = tmp_path_factory.mktemp("model") / "model.tar.gz"
    path.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
    return path, model


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    return {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path_factory.mktemp("cache"))}


def _rows(n: int, seed: int, change=None) -> list[list[str]]:
    df = _frame(n, seed)
    rows = [[repr(float(r.crim)), str(int(r.rooms)), str(int(r.chas)), repr(float(r.dist))] for r in df.itertuples()]
    return [change(i, row) for i, row in enumerate(rows)] if change else rows


def _broken(i: int, row: list[str]) -> list[str]:
    """The seed's bugs: the first feature x 10,000 (a unit bug), fractions for the integer ``rooms`` in a quarter of
    the rows, the last feature negated."""
    rooms = f"{int(row[1]) + 0.5}" if i % 4 == 0 else row[1]
    return [repr(float(row[0]) * 10_000), rooms, row[2], repr(-float(row[3]))]


def _send(port: int, model, rows: list[list[str]], per_request: int = 5) -> int:
    """POST the rows a few at a time; every answer is checked against the model itself. Returns the requests."""
    sent = 0
    for i in range(0, len(rows), per_request):
        chunk = rows[i:i + per_request]
        status, headers, body = request(port, "POST", "/invocations", "\n".join(",".join(r) for r in chunk).encode(),
                                         {"Content-Type": "text/csv", "Accept": "application/json"})
        assert status == 200, body
        expected = model.predict(np.array([[float(v) for v in r] for r in chunk]))
        got = np.asarray(json.loads(body), dtype=float).ravel()
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
        sent += 1
    return sent


def _next_second() -> dt.datetime:
    """Wait for the next whole second and return it (capture times have a resolution of one second)."""
    now = dt.datetime.now(dt.timezone.utc)
    boundary = now.replace(microsecond=0) + dt.timedelta(seconds=1)
    time.sleep((boundary - now).total_seconds() + 0.05)
    return boundary


def _found(result: dict) -> set:
    return {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}


def test_the_seed_scenario_on_the_local_endpoint(training, model_artifact, env, tmp_path):
    artifact, model = model_artifact
    baseline_dir = tmp_path / "baseline"
    monitor.baseline(training[0], baseline_dir)
    capture = tmp_path / "capture"
    server = ServeProcess([str(artifact), "--workers", "2", "--capture", str(capture)], env, tmp_path / "serve.log")
    try:
        start = _next_second()
        good = _send(server.port, model, _rows(400, 101))
        middle = _next_second()
        bad = _send(server.port, model, _rows(400, 102, _broken))
        end = _next_second()
    finally:
        status = server.stop()
    assert status == 0, server.log()
    assert "Traceback" not in server.log()

    records = list(read_capture(capture))  # every request, written by the workers as they stopped
    assert len(records) == good + bad
    assert {Path(r.source).relative_to(capture).parts[:2] for r in records} == {("local-endpoint", "AllTraffic")}
    for r in records:
        assert r.input[0] == "text/csv" and r.output[0] == "application/json"

    normal = monitor.run(capture, baseline_dir, tmp_path / "report-normal", start, middle)
    assert normal["item_count"] == 400 and _found(normal) == set()
    broken = monitor.run(capture, baseline_dir, tmp_path / "report-broken", middle, end)
    assert broken["item_count"] == 400
    assert _found(broken) == {("crim", "baseline_drift_check"), ("dist", "baseline_drift_check"),
                              ("rooms", "data_type_check")}
    assert broken["details"]["rooms"]["type_match"] == pytest.approx(0.75)
    written = json.loads((tmp_path / "report-broken" / "constraint_violations.json").read_text())
    assert written == {"violations": broken["violations"]}


def test_the_variant_that_answered_names_the_capture_folder(model_artifact, env, tmp_path):
    artifact, model = model_artifact
    capture = tmp_path / "capture"
    server = ServeProcess(["--variant", f"Blue={artifact}:1", "--variant", f"Green={artifact}:1", "--workers", "1",
                      "--capture", str(capture), "--endpoint-name", "housing", "--capture-modes", "Input"],
                     env, tmp_path / "serve.log")
    sent = {"Blue": 0, "Green": 0}
    try:
        for i, variant in enumerate(["Green", "Blue", "Green"]):
            body = ",".join(_rows(1, 200 + i)[0]).encode()
            status, headers, answer = request(server.port, "POST", "/invocations", body,
                                               {"Content-Type": "text/csv",
                                                "X-Amzn-SageMaker-Target-Variant": variant})
            assert status == 200, answer
            assert headers["x-amzn-invoked-production-variant"] == variant
            sent[variant] += 1
        status, _, answer = request(server.port, "POST", "/invocations", b"1,2", {"Content-Type": "text/csv",
                                                                                    "X-Amzn-SageMaker-Target-Variant":
                                                                                    "Blue"})
        assert status == 400  # errors are captured too
        sent["Blue"] += 1
    finally:
        assert server.stop() == 0, server.log()
    by_variant: dict[str, int] = {}
    for r in read_capture(capture):
        endpoint, variant = Path(r.source).relative_to(capture).parts[:2]
        assert endpoint == "housing"
        assert r.input is not None and r.output is None  # --capture-modes Input
        by_variant[variant] = by_variant.get(variant, 0) + 1
    assert by_variant == sent


def test_transform_captures_each_mini_batch(training, model_artifact, tmp_path):
    from artifact_tools.batch import transform

    artifact, model = model_artifact
    rows = _rows(30, 300)
    source = tmp_path / "in" / "data.csv"
    source.parent.mkdir()
    source.write_text("".join(",".join(r) + "\n" for r in rows))
    capture = tmp_path / "capture"
    summary = transform(artifact, source, tmp_path / "out", split_type="Line", strategy="SingleRecord",
                        accept="application/json", capture=capture)
    assert summary["records_out"] == 30
    records = list(read_capture(capture))
    assert len(records) == 30
    assert {Path(r.source).relative_to(capture).parts[:2] for r in records} == {("local-transform", "AllTraffic")}
    sent = sorted(r.input[1].decode().strip() for r in records)
    assert sent == sorted(",".join(r) for r in rows)
    for r in records:
        x = np.array([[float(v) for v in r.input[1].decode().split(",")]])
        np.testing.assert_allclose(np.asarray(json.loads(r.output[1]), dtype=float).ravel(), model.predict(x))
