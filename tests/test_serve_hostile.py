"""``artifact-tools serve`` against hostile and demanding HTTP clients: slow (slowloris) heads, stalled bodies,
pipelining, ``Expect: 100-continue``. A real server subprocess on 127.0.0.1 serving a real scikit-learn model built
here; expected predictions come from the estimator loaded independently with joblib. Every loop is bounded in
count and time, and every socket talks to 127.0.0.1 only.

The server runs with ``SAGEMAKER_MODEL_SERVER_TIMEOUT=4``, so a request head must arrive within 4 s of its first
byte and a body may not stall for 4 s (serve.py: ``READ_TIMEOUT`` capped by the model-server timeout)."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_serve import MIB, Server, csv_body, invoke  # noqa: F401  (fixtures are defined below)

from helpers import request

TIMEOUT = 4  # SAGEMAKER_MODEL_SERVER_TIMEOUT of the server under test
WORKERS = 2
ANSWER_BOUND = 1.5  # seconds within which /ping and a small /invocations must answer while under attack


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    import make_samples

    return make_samples.build_sklearn(tmp_path_factory.mktemp("hostile-artifact"))


@pytest.fixture(scope="module")
def reference(artifact):
    from helpers import sklearn_reference

    return sklearn_reference(artifact)


@pytest.fixture(scope="module")
def rows(reference) -> np.ndarray:
    X = np.random.default_rng(23).normal(scale=2.0, size=(6, 4))
    assert len(set(reference.predict(X).tolist())) == 2  # both classes occur, so a constant answer fails
    return X


@pytest.fixture(scope="module")
def server(artifact, tmp_path_factory):
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path_factory.mktemp("hostile-cache")),
           "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(TIMEOUT)}
    srv = Server(artifact, env, tmp_path_factory.mktemp("hostile-logs"), "--workers", str(WORKERS))
    yield srv
    assert srv.proc.poll() is None, f"server died during the tests:\n{srv.log()}"
    # an idle kept-alive connection must not hold up a graceful stop
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    idle.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_response(idle)[0] == 200
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 10
    idle.close()
    assert "Traceback" not in srv.log()
    assert "WORKER TIMEOUT" not in srv.log()
    # native thread pools get each worker's share of the cores, so workers do not oversubscribe them
    share = max(1, len(os.sched_getaffinity(0)) // WORKERS) if "OMP_NUM_THREADS" not in os.environ else None
    if share is not None:
        assert srv.log().count(f"predictions use {share} thread(s)") == WORKERS


# ---------------------------------------------------------------------------------------------------- raw HTTP

def read_response(sock: socket.socket, buffered: bytearray | None = None) -> tuple[int, dict, bytes]:
    """One response read off ``sock`` (status, lower-case headers, body by Content-Length). ``buffered`` carries
    bytes read past the previous response, for pipelined responses."""
    buf = buffered if buffered is not None else bytearray()
    while b"\r\n\r\n" not in buf:
        block = sock.recv(65536)
        if not block:
            raise ConnectionError(f"connection closed after {bytes(buf[:200])!r}")
        buf += block
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        block = sock.recv(65536)
        if not block:
            raise ConnectionError("connection closed inside a response body")
        body += block
    buf[:] = body[length:]
    return status, headers, bytes(body[:length])


def read_to_close(sock: socket.socket) -> bytes:
    data = bytearray()
    try:
        while block := sock.recv(65536):
            data += block
    except ConnectionResetError:
        pass
    return bytes(data)


def timed(fn, *args, **kw):
    started = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - started


def assert_serving(server, reference, rows) -> None:
    """/ping and one small /invocations answer correctly within ANSWER_BOUND seconds each."""
    (status, _, body), took = timed(request, server.port, "GET", "/ping", timeout=ANSWER_BOUND * 4)
    assert status == 200 and took < ANSWER_BOUND, (status, took)
    (status, _, body), took = timed(invoke, server.port, csv_body(rows), "text/csv", timeout=ANSWER_BOUND * 4)
    assert status == 200 and json.loads(body) == reference.predict(rows).tolist()
    assert took < ANSWER_BOUND, took


# ---------------------------------------------------------------------------------------------------- tests

def test_slowloris_heads_starve_neither_ping_nor_invocations(server, reference, rows):
    """More slow clients than workers x model threads, each dribbling one header line every 0.3 s: /ping and valid
    requests still answer promptly, and every slow client is cut off with 408 once its head has taken TIMEOUT s."""
    n = 4 * WORKERS + 2
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(n)]
    for s in slow:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\n")
    answers: dict[int, bytes] = {}
    stop = threading.Event()

    def dribble() -> None:
        line = 0
        deadline = time.monotonic() + TIMEOUT + 6
        while not stop.is_set() and time.monotonic() < deadline and len(answers) < n:
            line += 1
            for i, s in enumerate(slow):
                if i in answers:
                    continue
                if select.select([s], [], [], 0)[0]:  # the server answered (and half-closed): collect it
                    answers[i] = read_to_close(s)
                    continue
                try:
                    s.sendall(b"X-Slow-%d: %d\r\n" % (line, i))
                except OSError:
                    answers[i] = read_to_close(s)
            stop.wait(0.3)

    driver = threading.Thread(target=dribble, daemon=True)
    started = time.monotonic()
    driver.start()
    try:
        for _ in range(3):  # while the slow heads are being sent
            assert_serving(server, reference, rows)
            time.sleep(0.3)
        assert time.monotonic() - started < TIMEOUT  # those answers came while every slow client was connected
        driver.join(TIMEOUT + 8)
    finally:
        stop.set()
        driver.join(5)
    for i, s in enumerate(slow):
        if i not in answers:
            s.settimeout(5)
            answers[i] = read_to_close(s)
        s.close()
    elapsed = time.monotonic() - started
    for i in range(n):
        assert answers[i].startswith(b"HTTP/1.1 408"), answers[i][:200]
        assert b"did not arrive within" in answers[i]
    assert TIMEOUT - 0.5 < elapsed < TIMEOUT + 8
    assert_serving(server, reference, rows)


def test_stalled_bodies_time_out_and_free_the_workers(server, reference, rows):
    """Clients that announce a body and stop sending it: requests keep being served meanwhile, and each stalled
    request ends with 408 after TIMEOUT seconds of silence."""
    stalled = []
    for _ in range(WORKERS + 2):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT + 10)
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 500\r\n\r\n1,2,")
        stalled.append(s)
    started = time.monotonic()
    assert_serving(server, reference, rows)
    answers = []
    for s in stalled:
        answers.append(read_to_close(s))
        s.close()
    elapsed = time.monotonic() - started
    assert TIMEOUT - 0.5 < elapsed < TIMEOUT + 5, elapsed
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        message = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
        assert message.startswith("the request body did not arrive in time (4 bytes came;")
    assert_serving(server, reference, rows)


def test_51_pipelined_requests_are_all_answered_in_order(server, reference):
    rng = np.random.default_rng(3)
    expected, data = [], []
    for i in range(51):
        if i % 10 == 3:
            data.append(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            expected.append((200, {"status": "ok", "framework": "sklearn"}))
        elif i % 10 == 7:
            data.append(b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
            expected.append((404, None))
        else:
            X = rng.normal(scale=2.0, size=(1 + i % 4, 4))
            body = csv_body(X)
            data.append(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            expected.append((200, reference.predict(X).tolist()))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"".join(data))  # all 51 at once, before reading anything
        buffered = bytearray()
        for i, (status, payload) in enumerate(expected):
            got_status, headers, body = read_response(s, buffered)
            assert got_status == status, (i, got_status, body)
            assert headers.get("connection") != "close" and "date" in headers, i
            if isinstance(payload, dict):  # /ping: its status and the model's framework (and the variant)
                assert {k: json.loads(body).get(k) for k in payload} == payload, i
            elif payload is not None:
                assert json.loads(body) == payload, i
        # the connection is still usable afterwards, and closes when asked to
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(s, buffered)
        assert status == 200 and headers["connection"] == "close"
        assert not buffered and read_to_close(s) == b""


def test_expect_100_continue_over_the_cap_is_413_without_100(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % (6 * MIB + 1))
        answer = read_to_close(s)  # the server answers and closes without waiting for the body
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b" 100 " not in answer and b"Continue" not in answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert "over the 6291456-byte limit" in json.loads(body)["error"]


def test_expect_100_continue_within_the_cap_gets_100_then_200(server, reference, rows):
    body = csv_body(rows)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        for _ in range(2):  # twice on one kept-alive connection
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nExpect: 100-continue\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            interim = b""
            while not interim.endswith(b"\r\n\r\n") and len(interim) < 200:
                byte = s.recv(1)
                assert byte, interim
                interim += byte
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            status, headers, payload = read_response(s)
            assert status == 200 and json.loads(payload) == reference.predict(rows).tolist()


def test_framing_attacks_are_refused_and_the_connection_closed(server):
    cases = [
        # both Content-Length and Transfer-Encoding: the request smuggling ambiguity (RFC 9112 section 6.1)
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 4\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n1,2,3", 400),
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\n1", 417),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ]
    for data, status in cases:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(data)
            answer = read_to_close(s)
        assert answer.startswith(b"HTTP/1.1 %d" % status), (data[:60], answer[:200])
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"connection: close" in head.lower()
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert len(body) == length, answer  # one answer and nothing after it: nothing smuggled was served
        assert json.loads(body)["error"]


def test_malformed_requests_get_one_sentence_and_the_connection_closes(server):
    """What the HTTP parser refuses, each answered with its status and a JSON sentence, then the connection closed
    (RFC 9112: a request line or field it cannot read is 400, section 3.2 the missing Host, section 7.1 a bad chunk;
    RFC 9110 section 15.6.6: 505 for a version it does not speak)."""
    cases = [
        (b"GET /pi ng HTTP/1.1\r\nHost: t\r\n\r\n", 400),  # a space in the target
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nNo-Colon-Here\r\n\r\n", 400),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n", 400),  # obs-fold (section 5.2)
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Bad : a\r\n\r\n", 400),  # whitespace before the colon (5.1)
        (b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Nul: a\x00b\r\n\r\n", 400),
        (b"GET /ping HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 1x\r\n\r\n1", 400),
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\n1,2,\r\nzz\r\n", 400),  # a chunk size that is not hexadecimal
        (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\n1,2,3,4\r\n0\r\n\r\n", 400),  # a chunk longer than its size
        (b"GET /ping HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /ping HTTP/1.1\r\nHost: t\r\n" + b"X-Many: 1\r\n" * 7000 + b"\r\n", 431),  # many small fields
    ]
    for data, status in cases:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            answer = read_to_close(s)
        assert answer.startswith(b"HTTP/1.1 %d " % status), (data[:80], answer[:300])
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"connection: close" in head.lower(), answer[:300]
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert len(body) == length, answer  # one answer, nothing after it
        message = json.loads(body)["error"]
        assert message and "\n" not in message and "Traceback" not in message, message


def test_a_malformed_request_behind_pipelined_ones_is_refused_in_its_turn(server, reference, rows):
    """Two good requests and a bad one sent at once: the good ones are answered first, in order, then the 400,
    then the connection ends; a good request sent after the bad one is never answered."""
    body = csv_body(rows)
    good = (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(good + b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n" + b"GET /ping HTTP/1.1 junk\r\nHost: t\r\n\r\n"
                  + b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        buffered = bytearray()
        status, headers, payload = read_response(s, buffered)
        assert status == 200 and json.loads(payload) == reference.predict(rows).tolist()
        status, headers, payload = read_response(s, buffered)
        assert status == 200 and json.loads(payload)["status"] == "ok"
        status, headers, payload = read_response(s, buffered)
        assert status == 400 and headers["connection"] == "close", payload
        assert "not valid HTTP/1.1" in json.loads(payload)["error"]
        assert bytes(buffered) + read_to_close(s) == b""


def test_http10_head_and_ignored_upgrades_are_served(server, reference, rows):
    """An HTTP/1.0 request is answered and the connection closed (RFC 9112 section 9.3); an answer to HEAD has
    no body (RFC 9110 section 9.3.2); a request asking for a protocol upgrade (an h2c upgrade, as
    ``curl --http2`` sends over http) is served as HTTP/1.1, which RFC 9110 section 7.8 lets a server do -- with
    its Content-Length body read as its body, and the request pipelined after it answered too."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
        answer = read_to_close(s)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower()
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == "ok"

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\nGET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = read_to_close(s)
    first, _, rest = answer.partition(b"\r\n\r\n")  # HEAD: the head GET gets, its length but no body
    length = int(first.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    assert first.startswith(b"HTTP/1.1 200 ") and length > 0, answer[:300]
    assert rest.startswith(b"HTTP/1.1 200 "), answer[:300]  # the next answer follows the head at once
    assert int(rest.lower().split(b"content-length:")[1].split(b"\r\n")[0]) == length  # GET's body: that length

    body = csv_body(rows)
    upgrade = b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n" + upgrade + b"\r\n"
                  + b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n" + upgrade
                  + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                  + b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        buffered = bytearray()
        status, _, payload = read_response(s, buffered)
        assert status == 200 and json.loads(payload)["status"] == "ok"
        status, _, payload = read_response(s, buffered)
        assert status == 200 and json.loads(payload) == reference.predict(rows).tolist(), payload
        status, headers, payload = read_response(s, buffered)
        assert status == 200 and headers["connection"] == "close"
        assert bytes(buffered) + read_to_close(s) == b""


def test_ping_answers_while_every_worker_predicts(server, reference):
    """Large requests keep both workers' models busy for seconds; /ping is answered meanwhile, not after them
    (a sync worker answered it only once the predictions queued ahead of it had ended)."""
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.default_rng(8).normal(scale=2.0, size=(65000, 4))
    body = csv_body(X)
    assert 4 * MIB < len(body) < 6 * MIB
    expected = reference.predict(X).tolist()
    n = 4 * WORKERS
    with ThreadPoolExecutor(n) as pool:
        big = [pool.submit(timed, invoke, server.port, body, "text/csv", timeout=120) for _ in range(n)]
        time.sleep(0.2)  # the bodies are on their way
        pings = []
        deadline = time.monotonic() + 120
        while not all(f.done() for f in big) and time.monotonic() < deadline:
            (status, _, _), took = timed(request, server.port, "GET", "/ping", timeout=60)
            assert status == 200
            pings.append(took)
            time.sleep(0.02)
        durations = []
        for f in big:
            (status, _, payload), took = f.result(timeout=120)
            assert status == 200 and json.loads(payload) == expected
            durations.append(took)
    assert len(pings) >= 5, (pings, durations)  # the predictions took a while, and /ping was answered during them
    assert sorted(pings)[len(pings) // 2] < 0.1, pings
    assert max(pings) < max(1.0, max(durations) / 3), (pings, durations)


def test_connection_flood_evicts_the_oldest_waiting_connections(server, reference, rows):
    """More open connections than the workers hold (1000 each), idle or sending a head slowly: each full worker
    closes the connection that has waited longest, so /ping and predictions are still answered."""
    import resource

    n = WORKERS * 1000 + 300
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < n + 2200:
        pytest.skip("the open-file limit is too low for this many connections (client and server)")
    flood = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:
                s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\n")
            flood.append(s)
        time.sleep(0.5)
        assert_serving(server, reference, rows)
        closed = 0
        for s in flood:
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        assert closed >= n - WORKERS * 1000, closed  # the oldest were closed to make room
    finally:
        for s in flood:
            s.close()


def test_http10_keep_alive_and_trailer_floods_end_the_connection(server, reference, rows):
    """An HTTP/1.0 request asking for keep-alive is answered with ``Connection: close`` and the connection ends
    (this server does not answer 1.0's keep-alive option, RFC 9112 section 9.3; a 1.0 message with
    Transfer-Encoding has faulty framing, section 6.1): what was pipelined after it is never answered. Trailer
    fields streamed without end get a 400 (they were gathered in memory for as long as the body might take)."""
    body = csv_body(rows)
    chunked = b"%x\r\n%s\r\n0\r\n" % (len(body), body)
    for head in (b"POST /invocations HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
                 b"POST /invocations HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: text/csv\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(head + b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            buffered = bytearray()
            status, headers, payload = read_response(s, buffered)
            assert status == 200 and json.loads(payload) == reference.predict(rows).tolist(), payload
            assert headers["connection"] == "close"
            assert bytes(buffered) + read_to_close(s) == b""

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked"
                  b"\r\n\r\n" + chunked)
        try:
            for _ in range(64):  # 4 MiB of trailer fields, at most
                s.sendall(b"X-Trailer: a\r\n" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_to_close(s)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"trailer fields" in answer, answer[:300]
    assert_serving(server, reference, rows)


def test_only_an_absolute_form_target_loses_its_scheme_and_authority(server, reference, rows):
    """RFC 9112 section 3.2: an origin-form target starts with "/" and is the path itself, however much it looks
    like a URI after that ("/ping://x/invocations" once reached the model, past any proxy rule on "/ping"); an
    absolute-form one ("http://host/path?query") keeps its path and query."""
    body = csv_body(rows)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /ping://x/invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                  + b"POST http://t:1/invocations?x=1 HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                  + b"GET http://t?x=/invocations HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        buffered = bytearray()
        status, _, payload = read_response(s, buffered)
        assert status in (404, 405) and "/ping://x/invocations" in json.loads(payload)["error"], payload
        status, _, payload = read_response(s, buffered)
        assert status == 200 and json.loads(payload) == reference.predict(rows).tolist(), payload
        status, _, payload = read_response(s, buffered)
        assert status == 404 and "there is no /;" in json.loads(payload)["error"], payload
