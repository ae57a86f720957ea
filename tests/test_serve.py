"""``artifact-tools serve``: real gunicorn servers started as subprocesses, real HTTP on 127.0.0.1, a real
scikit-learn artifact from ``scripts/make_samples.py``. Expected predictions come from the same model loaded
independently with joblib from the extracted ``model.joblib``."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

from helpers import ServeProcess, free_port, request  # noqa: E402

pytest.importorskip("gunicorn")
pytest.importorskip("sklearn")

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return make_samples.build_sklearn(tmp_path_factory.mktemp("serve-artifact"))


@pytest.fixture(scope="module")
def reference(artifact):
    """The estimator, loaded with joblib straight from the archive member (not through artifact-tools)."""
    from helpers import sklearn_reference

    return sklearn_reference(artifact)


@pytest.fixture(scope="module")
def rows(reference) -> np.ndarray:
    X = np.random.default_rng(11).normal(scale=2.0, size=(12, 4))
    assert len(set(reference.predict(X).tolist())) == 2  # both classes occur, so a constant answer fails
    return X


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory) -> dict:
    return {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path_factory.mktemp("serve-cache"))}


class Server(ServeProcess):
    """The server of one artifact (``serve ARTIFACT ARGS``), waited for until ``/ping`` answers 200."""

    def __init__(self, artifact: Path, env: dict, log_dir: Path, *args: str, port: int | None = None):
        log = log_dir / f"serve-{port or 'free'}-{id(self)}.log"
        super().__init__([str(artifact), *args], env, log, port=port, wait=90)


def invoke(port: int, body: bytes, content_type: str | None, accept: str | None = None, **kw):
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return request(port, "POST", "/invocations", body, headers, **kw)


def raw_exchange(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                block = s.recv(65536)
            except ConnectionResetError:
                break
            if not block:
                break
            chunks.append(block)
    return b"".join(chunks)


def csv_body(X: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()


def npy_body(X: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


def error_of(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def server(artifact, cache_env, tmp_path_factory):
    srv = Server(artifact, cache_env, tmp_path_factory.mktemp("serve-logs"), "--workers", "2")
    yield srv
    assert srv.proc.poll() is None, f"server died during the tests:\n{srv.log()}"
    assert srv.stop() == 0
    assert "Traceback" not in srv.log()  # no 500 and no worker crash in the whole session


def test_ping_and_execution_parameters(server):
    status, headers, body = request(server.port, "GET", "/ping")
    assert status == 200 and json.loads(body)["framework"] == "sklearn"
    status, headers, body = request(server.port, "GET", "/execution-parameters")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    assert request(server.port, "GET", "/nowhere")[0] == 404
    status, headers, _ = request(server.port, "GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = request(server.port, "DELETE", "/ping")
    assert status == 405 and headers["allow"] == "GET, HEAD"  # HEAD as GET: test_serve_hostile


@pytest.mark.parametrize("kind", ["csv", "json-rows", "json-instances", "json-inputs", "jsonlines", "jsonlines-charset",
                                  "npy", "npy-float32-fortran"])
def test_every_content_type(server, reference, rows, kind):
    X = rows
    if kind == "csv":
        body, ctype = csv_body(X), "text/csv"
    elif kind == "json-rows":
        body, ctype = json.dumps(X.tolist()).encode(), "application/json"
    elif kind == "json-instances":
        body, ctype = json.dumps({"instances": X.tolist()}).encode(), "application/json"
    elif kind == "json-inputs":
        body, ctype = json.dumps({"inputs": X.tolist()}).encode(), "application/json"
    elif kind == "jsonlines":
        body, ctype = "\n".join(json.dumps(r) for r in X.tolist()).encode(), "application/jsonlines"
    elif kind == "jsonlines-charset":
        body = ("\n".join(json.dumps(r) for r in X.tolist()) + "\n").encode()
        ctype = "application/jsonlines; charset=utf-8"
    elif kind == "npy":
        body, ctype = npy_body(X), "application/x-npy"
    else:
        X = np.asfortranarray(X.astype(np.float32))
        body, ctype = npy_body(X), "application/x-npy"
    status, headers, payload = invoke(server.port, body, ctype)
    assert status == 200, payload
    assert headers["content-type"] == "application/json"
    expected = reference.predict(X).tolist()
    got = json.loads(payload)
    if kind == "json-instances":
        got = got["predictions"]
    elif kind == "json-inputs":
        got = got["outputs"]
    assert got == expected


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/csv", "application/jsonlines",
                                    "application/x-npy", "text/*", "text/csv;q=0.5, application/x-npy"])
def test_every_accept_type(server, reference, rows, accept):
    expected = reference.predict(rows)
    status, headers, payload = invoke(server.port, csv_body(rows), "text/csv", accept)
    assert status == 200, payload
    ctype = headers["content-type"]
    if ctype == "application/json":
        assert accept in (None, "*/*", "application/json")
        assert json.loads(payload) == expected.tolist()
    elif ctype == "text/csv":
        assert accept in ("text/csv", "text/*")
        assert [int(line) for line in payload.decode().splitlines()] == expected.tolist()
    elif ctype == "application/jsonlines":
        assert accept == "application/jsonlines"
        assert [json.loads(line) for line in payload.decode().splitlines()] == expected.tolist()
    else:
        assert ctype == "application/x-npy" and "x-npy" in accept
        np.testing.assert_array_equal(np.load(io.BytesIO(payload), allow_pickle=False), expected)


def test_unsupported_types(server, rows):
    for ctype in ("application/xml", "application/octet-stream", None, "text/csv; charset=no-such-charset"):
        status, _, payload = invoke(server.port, csv_body(rows), ctype)
        assert status == 415, (ctype, payload)
        error_of(payload)
    for accept in ("application/xml", "image/*", "application/json;q=0"):
        status, _, payload = invoke(server.port, csv_body(rows), "text/csv", accept)
        assert status == 406, (accept, payload)
        assert "application/json" in error_of(payload)


def test_malformed_bodies_are_400(server, reference, rows):
    with pytest.raises(ValueError) as refused:
        reference.predict(rows[:, :3])
    model_message = str(refused.value).splitlines()[0]
    cases = [
        ("text/csv", b"1,2,3,4\n1,2,3"),  # ragged
        ("text/csv", b"\xff\xfe1,2"),  # not utf-8
        ("text/csv", b"\n\n"),  # no rows
        ("application/json", b"[[1, 2, 3, 4],"),  # truncated JSON
        ("application/json", b'{"rows": [[1, 2, 3, 4]]}'),  # neither instances nor inputs
        ("application/json", b'"just a string"'),
        ("application/json", b"[" * 100_000),  # nesting bomb
        ("application/jsonlines", b"[1, 2, 3, 4]\n[1, 2,"),
        ("application/x-npy", b"not an npy file at all"),
        ("application/x-npy", npy_body(rows)[:-8]),  # truncated data
        ("application/x-npy", npy_body(np.array([{"a": 1}], dtype=object))),  # pickled objects
        ("application/json", b"[]"),  # nothing to predict
        ("text/csv", b""),  # empty body
    ]
    for ctype, body in cases:
        status, _, payload = invoke(server.port, body, ctype)
        assert status == 400, (ctype, body[:40], payload)
        error_of(payload)
    # wrong number of features: the model's own message, as a 400, for every input type
    for ctype, body in [("text/csv", csv_body(rows[:, :3])),
                        ("application/json", json.dumps(rows[:, :3].tolist()).encode()),
                        ("application/x-npy", npy_body(rows[:, :3]))]:
        status, _, payload = invoke(server.port, body, ctype)
        assert status == 400 and model_message in error_of(payload), payload


def test_header_csv_mlflow_bodies_and_texts(server, reference, rows):
    """The codec's rules reach the model: a CSV header told by content (read as pandas reads it), MLflow's
    dataframe forms answered with {"predictions": ...}, texts for a model that takes numbers refused by the model."""
    import pandas as pd

    header = ("a,b,c,d\n" + csv_body(rows).decode()).encode()
    status, _, payload = invoke(server.port, header, "text/csv; charset=utf-8")
    assert status == 200, payload
    assert json.loads(payload) == reference.predict(pd.read_csv(io.BytesIO(header)).to_numpy()).tolist()
    split = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": rows.tolist()}}
    status, _, payload = invoke(server.port, json.dumps(split).encode(), "application/json")
    assert status == 200 and json.loads(payload) == {"predictions": reference.predict(rows).tolist()}
    status, _, payload = invoke(server.port, b"a great movie\nan awful one\n", "text/plain")
    assert status == 400 and "the model rejected the input" in error_of(payload)


def test_payload_cap(server, reference, rows):
    # a body of exactly the cap is served (one row followed by blank lines) ...
    row = csv_body(rows[:1])
    status, _, payload = invoke(server.port, row + b"\n" * (6 * MIB - len(row)), "text/csv")
    assert status == 200 and json.loads(payload) == reference.predict(rows[:1]).tolist()
    # ... one byte more is refused on its Content-Length alone, before any of it is sent
    head = (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
            b"Content-Length: %d\r\n\r\n" % (6 * MIB + 1))
    answer = raw_exchange(server.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # a chunked body has no Content-Length: the server counts while reading
    chunk = b"1,2,3,4\n" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6 * MIB // len(chunk) + 1))
    head = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw_exchange(server.port, head + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # and a small chunked body is read whole (Connection: close, so that the server ends the exchange)
    body = csv_body(rows)
    parts = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:]))
    head = head.replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n")
    answer = raw_exchange(server.port, head + parts + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == reference.predict(rows).tolist()


def test_client_disconnecting_mid_body(server, reference, rows):
    partial = [
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n1,2,3",
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 1000000\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"100\r\n1,2,3",
        b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Ty",
    ]
    for data in partial * 2:  # twice, so both workers are likely to meet each kind
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(data)
    for _ in range(4):
        status, _, payload = invoke(server.port, csv_body(rows), "text/csv")
        assert status == 200 and json.loads(payload) == reference.predict(rows).tolist()
    assert server.proc.poll() is None


def test_load_2000_requests_concurrency_16(server, reference):
    rng = np.random.default_rng(5)
    malformed = [("text/csv", b"1,2,x,4"), ("application/json", b"{oops"), ("text/csv", b"1,2,3"),
                 ("application/x-npy", b"\x93NUMPY\x01\x00garbage"), ("application/xml", b"<a/>")]
    jobs = []
    for i in range(2000):
        if i % 10 == 0:
            ctype, body = malformed[(i // 10) % len(malformed)]
            jobs.append((ctype, body, None))
            continue
        X = rng.normal(scale=2.0, size=(int(rng.integers(1, 6)), 4))
        ctype = ("text/csv", "application/json", "application/x-npy")[i % 3]
        body = csv_body(X) if i % 3 == 0 else json.dumps(X.tolist()).encode() if i % 3 == 1 else npy_body(X)
        jobs.append((ctype, body, reference.predict(X).tolist()))

    def call(job):
        ctype, body, expected = job
        status, _, payload = invoke(server.port, body, ctype, timeout=60)
        return job, status, payload

    started = time.monotonic()
    results = []
    with ThreadPoolExecutor(16) as pool:
        for fut in as_completed([pool.submit(call, job) for job in jobs], timeout=180):
            results.append(fut.result())
    elapsed = time.monotonic() - started
    assert len(results) == 2000
    for (ctype, body, expected), status, payload in results:
        if expected is None:
            assert 400 <= status < 500, (ctype, body, status, payload)
        else:
            assert status == 200, (status, payload)
            assert json.loads(payload) == expected
    assert elapsed < 180
    assert server.proc.poll() is None
    assert request(server.port, "GET", "/ping")[0] == 200


def _read_answer(sock: socket.socket) -> bytes:
    """One whole response (with ``Content-Length``) from a kept-alive connection: its body."""
    return _read_response(sock)[1]


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` whole 200 responses (with ``Content-Length``) to pipelined requests: each one's head and body."""
    data = b""
    answers: list[tuple[bytes, bytes]] = []
    while len(answers) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) >= length:
                assert head.startswith(b"HTTP/1.1 200"), head
                answers.append((head, rest[:length]))
                data = rest[length:]
                continue
        block = sock.recv(65536)
        assert block, data
        data += block
    assert not data, data
    return answers


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole 200 response (with ``Content-Length``) from a kept-alive connection: its head and body."""
    return _read_responses(sock, 1)[0]


def _connections_per_worker(port: int, log: Path, message: bytes, expected: list) -> dict[int, int]:
    """Open 16 connections at once, send two requests on each, and count how many each worker (the access log's
    ``pid``, matched by the client's port) answered."""
    start = log.stat().st_size if log.exists() else 0
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(16)]
    try:
        for _ in range(2):
            for s in socks:
                s.sendall(message)
            for s in socks:
                assert json.loads(_read_answer(s)) == expected
        ports = {s.getsockname()[1] for s in socks}
        lines: list[dict] = []
        deadline = time.monotonic() + 10
        while len(lines) < 32 and time.monotonic() < deadline:  # written after each answer is sent
            time.sleep(0.05)
            lines = [json.loads(line) for line in log.read_bytes()[start:].decode().splitlines()]
            lines = [f for f in lines if int(f["client"].rsplit(":", 1)[1]) in ports]
    finally:
        for s in socks:
            s.close()
    assert len(lines) == 32
    by_port: dict[int, set] = {}
    for f in lines:
        by_port.setdefault(int(f["client"].rsplit(":", 1)[1]), set()).add(f["pid"])
    assert all(len(pids) == 1 for pids in by_port.values())  # a connection stays with its worker
    held: dict[int, int] = {}
    for pids in by_port.values():
        held[next(iter(pids))] = held.get(next(iter(pids)), 0) + 1
    time.sleep(0.3)  # the closed connections leave the workers' counts
    return held


def test_kept_alive_connections_spread_evenly_over_the_workers(artifact, cache_env, reference, rows, tmp_path):
    """16 kept-alive connections opened at once, as a load generator opens them, are shared by both workers
    (all workers wait on one listening socket, and on a busy machine the one woken first used to take 15 or 16 of
    them, so the server ran at one worker's speed); six rounds, with processes keeping every core busy as a
    loaded machine is. A worker killed: its replacement takes its part once it serves, and meanwhile the other
    worker takes every connection without delay; those kept alive meanwhile are shared again once the replacement
    serves (the other worker lets its surplus go, their clients reconnect)."""
    log = tmp_path / "access.log"
    srv = Server(artifact, cache_env, tmp_path, "--workers", "2", "--access-log", str(log))

    def serving(count: int) -> list[int]:  # pids of the workers that have loaded the model, once there are count
        deadline = time.monotonic() + 90
        while srv.log().count("model loaded") < count:  # /ping answers once one worker serves: wait for all
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.1)
        return [int(pid) for pid in re.findall(r"Worker (\d+): model loaded", srv.log())]

    try:
        workers = serving(2)
        body = csv_body(rows[:1])
        message = (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        expected = reference.predict(rows[:1]).tolist()
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   for _ in range(len(os.sched_getaffinity(0)) + 1)]
        try:
            for _ in range(6):
                held = _connections_per_worker(srv.port, log, message, expected)
                assert set(held) == set(workers) and max(held.values()) <= 12, held
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
        os.kill(workers[0], signal.SIGKILL)
        started = time.monotonic()
        # kept alive from now on: opened while only one worker serves, so all of them on it
        kept = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(16)]
        try:
            held = _connections_per_worker(srv.port, log, message, expected)
            assert workers[0] not in held and time.monotonic() - started < 5, held
            replacement = serving(3)[2]
            # the worker holding all 16 lets its surplus go once the replacement serves: those clients reconnect
            closed = 0
            held = {}
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                start = log.stat().st_size
                for i, s in enumerate(kept):
                    s.sendall(message * (2 if i == 0 else 1))  # the first pipelines two: it is not let go between
                for i, s in enumerate(kept):
                    if i == 0:  # two answers: the first does not end the connection
                        (first, body), (head, second) = _read_responses(s, 2)
                        assert b"connection: close" not in first.lower(), first
                        assert json.loads(body) == json.loads(second) == expected
                    else:
                        head, body = _read_response(s)
                        assert json.loads(body) == expected
                    if b"connection: close" in head.lower():
                        closed += 1
                        s.close()
                        kept[i] = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
                time.sleep(0.3)  # the access log lines of this round
                ports = {s.getsockname()[1] for s in kept}
                lines = [json.loads(line) for line in log.read_bytes()[start:].decode().splitlines()]
                held = {}
                for f in lines:
                    if int(f["client"].rsplit(":", 1)[1]) in ports:  # the connections still open
                        held[f["pid"]] = held.get(f["pid"], 0) + 1
                if len(held) == 2:
                    break
            assert set(held) == {replacement, workers[1]} and max(held.values()) <= 12, (held, closed)
            assert 4 <= closed <= 12, closed  # let go as many as rebalance them, about half
        finally:
            for s in kept:
                s.close()
        time.sleep(0.3)  # the closed connections leave the workers' counts
        held = _connections_per_worker(srv.port, log, message, expected)
        assert set(held) == {replacement, workers[1]} and max(held.values()) <= 12, held
    finally:
        assert srv.stop() == 0


def test_bind_port_from_env_payload_option_and_timeout(artifact, cache_env, reference, rows, tmp_path):
    port = free_port()
    env = {**cache_env, "SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_TIMEOUT": "4"}
    srv = Server(artifact, env, tmp_path, "--workers", "1", "--max-payload", "1000", port=port)
    try:
        params = json.loads(request(port, "GET", "/execution-parameters")[2])
        assert params["MaxConcurrentTransforms"] == 1
        body = csv_body(rows[:2])
        status, _, payload = invoke(port, body + b"\n" * (1000 - len(body)), "text/csv")
        assert status == 200 and json.loads(payload) == reference.predict(rows[:2]).tolist()
        assert invoke(port, body + b"\n" * (1001 - len(body)), "text/csv")[0] == 413
        # a client stalling mid-body does not hold the only worker: /ping and predictions go on, and the stalled
        # request ends with 408 once the body has been silent for the timeout (4 s here)
        stalled = socket.create_connection(("127.0.0.1", port), timeout=30)
        stalled.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                        b"Content-Length: 500\r\n\r\n1,2,")
        started = time.monotonic()
        time.sleep(0.5)
        assert request(port, "GET", "/ping", timeout=60)[0] == 200
        status, _, payload = invoke(port, body, "text/csv")
        assert status == 200 and json.loads(payload) == reference.predict(rows[:2]).tolist()
        assert time.monotonic() - started < 2
        answer = b""
        while block := stalled.recv(65536):
            answer += block
        stalled.close()
        assert 3.5 < time.monotonic() - started < 15
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        error_of(answer.split(b"\r\n\r\n", 1)[1])
        assert "WORKER TIMEOUT" not in srv.log()
    finally:
        assert srv.stop() == 0


def test_sigterm_finishes_in_flight_request_then_exits_cleanly(artifact, cache_env, reference, rows, tmp_path):
    srv = Server(artifact, cache_env, tmp_path, "--workers", "2")
    body = csv_body(rows)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):  # "100 Continue": a worker has taken the request
            byte = s.recv(1)
            assert byte, interim
            interim += byte
        assert interim.startswith(b"HTTP/1.1 100"), interim
        s.sendall(body[:20])
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        s.sendall(body[20:])
        answer = b""
        while block := s.recv(65536):
            answer += block
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == reference.predict(rows).tolist()
    assert srv.proc.wait(40) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "artifact_tools", "serve", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_refusals_before_serving_exit_2_with_one_line(server, artifact, cache_env, tmp_path):
    missing = cli("missing.tar.gz", "--port", str(free_port()), env=cache_env)
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "missing.tar.gz" in missing.stderr
    not_a_model = tmp_path / "readme.tar.gz"
    with tarfile.open(not_a_model, "w:gz") as tf:
        info = tarfile.TarInfo("README.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    refused = cli(str(not_a_model), "--port", str(free_port()), env=cache_env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    taken = cli(str(artifact), "--port", str(server.port), env=cache_env)
    assert taken.returncode == 2
    assert len(taken.stderr.strip().splitlines()) == 1 and str(server.port) in taken.stderr


class _ToolkitError(Exception):
    """Shaped as the inference toolkit's BaseInferenceToolkitError (status_code, message, phrase)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(status_code, message, message)
        self.status_code, self.message, self.phrase = status_code, message, message


def _wsgi_post(app, body: bytes, content_type: str, accept: str | None = None) -> tuple[int, dict, bytes, str]:
    from artifact_tools import serve

    errors = io.StringIO()
    environ = {"PATH_INFO": "/invocations", "REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.errors": errors}
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    status, headers, payload = serve._call_wsgi(app, environ)
    return status, {k.lower(): v for k, v in headers}, payload, errors.getvalue()


def test_own_inference_code_gets_the_raw_request_and_its_errors_map_as_the_toolkit_maps_them(
        artifact, reference, rows, tmp_path):
    """A model with its own request handling (``invoke_fn``): the body, Content-Type and Accept reach it untouched
    (a missing Accept or */* becomes JSON, the toolkit's default), its (body, type) is the answer; an exception with
    a ``status_code`` answers that status, any other a 500 in one sentence (sagemaker_inference/transformer.py)."""
    import importlib.util

    from artifact_tools import codec, serve
    from loaders.base import LoadedModel

    from helpers import untar

    folder = untar(artifact, tmp_path / "model")
    spec = importlib.util.spec_from_file_location("own_inference_code", folder / "code" / "inference.py")
    own = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(own)
    model = own.model_fn(str(folder))  # the artifact's own model_fn
    seen = []

    def invoke(body: bytes, content_type: str, accept: str):
        seen.append((body, content_type, accept))
        if content_type == "application/x-refuse":
            raise _ToolkitError(422, "these rows are refused")
        if content_type == "application/x-crash":
            raise RuntimeError("the handler broke\nwith a second line")
        request = codec.decode(body, content_type)  # the container's default input_fn / output_fn
        return codec.encode(model.predict(request.data), accept)[0].decode(), "application/json"

    app = serve.create_app(LoadedModel(model, "sklearn", model.predict, invoke_fn=invoke))
    body = csv_body(rows)
    status, headers, payload, _ = _wsgi_post(app, body, "text/csv; charset=utf-8", "*/*")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(payload) == reference.predict(rows).tolist()
    assert seen[-1] == (body, "text/csv; charset=utf-8", "application/json")
    status, _, payload, _ = _wsgi_post(app, b"x", "application/x-refuse", "text/csv")
    assert status == 422 and "these rows are refused" in error_of(payload) and seen[-1][2] == "text/csv"
    status, _, payload, log = _wsgi_post(app, b"x", "application/x-crash")
    assert status == 500 and "RuntimeError: the handler broke" in error_of(payload) and "Traceback" in log
    status, _, payload, _ = _wsgi_post(app, b"<a/>", "application/xml")
    assert status == 415 and "application/xml" in error_of(payload)


def test_relative_artifact_path_from_another_folder(artifact, reference, rows, cache_env, tmp_path):
    """``serve REL/PATH``: the path is relative to the folder the command runs in (the project root here, not the
    artifact's folder nor the state folder where the endpoint config is written), and the workers find it."""
    rel = os.path.relpath(artifact, PROJECT_ROOT)
    assert not os.path.isabs(rel) and not (tmp_path / "run" / rel).exists()
    env = {**cache_env, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    with Server(Path(rel), env, tmp_path, "--workers", "1") as server:
        status, _, body = invoke(server.port, csv_body(rows), "text/csv", "application/json")
        assert status == 200, body
        assert json.loads(body) == reference.predict(rows).tolist()
