"""What the endpoint counts and logs for every request it answers, refusals included: requests refused by the HTTP
front end before any model sees them (malformed request, 413, 503, 431, 501, 417), by routing (404, 405) and by the
codec (406, 415) appear in ``/metrics`` (``Invocation4XXErrors`` / ``Invocation5XXErrors`` per variant) in every
endpoint form, and in the access log (``--access-log``), one whole JSON line per request from every worker. Real
servers as subprocesses, real HTTP on 127.0.0.1; the expected counts are the requests this test sent."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_endpoint import Endpoint, artifacts, csv_body, env, metrics, total, work  # noqa: F401 - fixtures (F811 below)

pytest.importorskip("gunicorn")
pytest.importorskip("prometheus_client")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CAP = 16 * 1024 * 1024  # --max-payload: each worker holds at most max(64 MiB, 4 x CAP) = 64 MiB of bodies
TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"


def exchange(port: int, data: bytes, timeout: float = 30) -> int:
    """Send raw bytes, read until the server closes; the status of the (single) answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        answer = bytearray()
        try:
            while block := s.recv(65536):
                answer += block
        except ConnectionResetError:
            pass
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", bytes(answer))
    assert m, bytes(answer[:200])
    return int(m.group(1))


def post(port: int, body: bytes, headers: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/invocations", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def fill_body_budget(port: int) -> list[socket.socket]:
    """Four connections that each send all but one byte of a CAP-byte body: the worker then holds 64 MiB less 4
    bytes of bodies, and any further body is refused with 503. The caller closes them (the worker answers each
    cut-short body with a 400 then)."""
    held = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        held.append(s)
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                  b"Content-Length: %d\r\n\r\n" % CAP)
        s.sendall(b"1" * (CAP - 1))
    time.sleep(2.0)  # the worker reads what was sent
    return held


def small_post(headers: bytes) -> bytes:
    return (b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n" + headers +
            b"Content-Length: 100\r\n\r\n" + b"1" * 100)


FORMS = {
    # name -> (serve arguments, headers for a routed request, variant the unrouted refusals are counted under)
    "plain": (lambda a: [str(a["sklearn"])], {}, "AllTraffic"),
    "variants": (lambda a: ["--variant", f"A={a['sklearn']}:1", "--variant", f"B={a['xgboost']}:1"],
                 {TARGET_VARIANT: "B"}, ""),
    "multi-model": (lambda a: ["--multi-model", str(a["sklearn"].parent / "mme")], {TARGET_MODEL: "m.tar.gz"},
                    "AllTraffic"),
    "pipeline": (lambda a: ["--pipeline", str(a["scaler"]), str(a["xgboost"])], {}, "AllTraffic"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_refusals_before_the_model_are_counted_in_every_endpoint_form(form, artifacts, env, work):  # noqa: F811
    """One worker (the body budget is per worker). Every kind of refusal is sent once, plus one request that
    succeeds; ``/metrics`` then counts as invocations (CloudWatch: InvokeEndpoint requests) the ``POST
    /invocations`` and the requests whose head could not be read, with their 4xx and 5xx; a 404 for another path
    and a 405 for ``GET /invocations`` are no invocations and counted nowhere. Refusals made before routing count
    under the variant the request names, else the only variant, else ``variant=""``; the routed ones (406, 415)
    under the variant that answered."""
    args, routed, unrouted = FORMS[form]
    mme = artifacts["sklearn"].parent / "mme"
    mme.mkdir(exist_ok=True)
    (mme / "m.tar.gz").write_bytes(artifacts["sklearn"].read_bytes())
    row = csv_body([[0.5, -1.0, 2.0, 0.1]])
    with Endpoint(env, work, *args(artifacts), "--workers", "1", "--max-payload", str(CAP)) as server:
        port = server.port
        status, out = post(port, row, {"Content-Type": "text/csv", **routed})
        assert status == 200, out
        before = metrics(port)  # what the readiness checks and the success counted (nothing refused yet)
        assert total(before, "Invocation4XXErrors_total") == 0 and total(before, "Invocations_total") == 1
        unrouted_4xx = [
            exchange(port, b"NOT HTTP AT ALL\r\n\r\n"),  # 400: not HTTP
            exchange(port, b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"  # 413
                           b"Content-Length: %d\r\n\r\n" % (CAP + 1)),
            exchange(port, b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n"),  # 431
            exchange(port, b"POST /invocations HTTP/1.1\r\nHost: t\r\nExpect: x\r\nContent-Length: 1\r\n\r\n1"),
            exchange(port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),  # 404
            exchange(port, b"GET /invocations HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),  # 405
        ]
        assert unrouted_4xx == [400, 413, 431, 417, 404, 405]
        invoked_4xx = 4  # not the 404 and the 405: requests for another path or method are no invocations
        named = {TARGET_VARIANT: "B"} if form == "variants" else {}  # the same refusals naming a variant
        forced = "".join(f"{k}: {v}\r\n" for k, v in named.items()).encode()
        assert exchange(port, b"POST /invocations HTTP/1.1\r\nHost: t\r\n" + forced +
                        b"Content-Length: %d\r\n\r\n" % (CAP + 1)) == 413
        routed_4xx = [post(port, row, {"Content-Type": "application/x-unknown", **routed})[0],  # 415
                      post(port, row, {"Content-Type": "text/csv", "Accept": "image/png", **routed})[0]]  # 406
        assert routed_4xx == [415, 406]
        held = fill_body_budget(port)
        try:
            unrouted_5xx = [exchange(port, b"POST /invocations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip"
                                           b"\r\n\r\n"),
                            exchange(port, small_post(b""))]
            assert unrouted_5xx == [501, 503]
            assert exchange(port, small_post(forced)) == 503
            assert request_ok(port, "/ping") and request_ok(port, "/execution-parameters")  # not counted
            m = metrics(port)
        finally:
            for s in held:
                s.close()
        answered_variant = "B" if form == "variants" else "AllTraffic"
        forced_variant = "B" if form == "variants" else unrouted
        assert total(m, "Invocations_total") == 1 + invoked_4xx + 1 + 2 + 2 + 1
        assert total(m, "Invocation4XXErrors_total") == invoked_4xx + 1 + 2
        assert total(m, "Invocation5XXErrors_total") == 2 + 1
        assert total(m, "Invocation4XXErrors_total", variant=unrouted) == \
            invoked_4xx + (1 if forced_variant == unrouted else 0) + (2 if answered_variant == unrouted else 0)
        assert total(m, "Invocation5XXErrors_total", variant=unrouted) == 2 + (1 if forced_variant == unrouted else 0)
        assert total(m, "Invocation4XXErrors_total", variant=forced_variant) >= 1
        assert total(m, "Invocation5XXErrors_total", variant=forced_variant) >= 1
        assert total(m, "Invocation4XXErrors_total", variant=answered_variant) >= 2
        if form == "multi-model":  # the known target model is a label; refusals before routing have none
            assert total(m, "Invocation4XXErrors_total", model="m.tar.gz") == 2
            assert total(m, "Invocation4XXErrors_total", model="") == invoked_4xx + 1
        # refused requests have no model latency; every counted request has an overhead latency
        assert total(m, "OverheadLatency_seconds_count") == total(m, "Invocations_total")


def request_ok(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    finally:
        conn.close()


def test_access_log_one_whole_json_line_per_request_from_every_worker(artifacts, env, work):  # noqa: F811
    """Two workers appending to one file while 8 kept-alive clients send 600 requests (long paths, so each line
    is over 1 KB and interleaved writes would show): every line is one JSON object; the ``/invocations`` and
    ``/nowhere...`` lines are exactly the requests sent, with their statuses, body sizes both ways, the client's
    own address and port, and latencies; the lines of the refused requests are there too."""
    log = work / "access.log"
    log.unlink(missing_ok=True)
    row = csv_body([[0.5, -1.0, 2.0, 0.1]])
    sent: list[tuple] = []  # (client port, method, path, status, bytes in, bytes out)
    started = time.time()
    with Endpoint(env, work, str(artifacts["sklearn"]), "--workers", "2", "--access-log", str(log)) as server:
        def client(i: int) -> list[tuple]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            mine = []
            try:
                for j in range(75):
                    if j % 3 == 2:
                        path = f"/nowhere/{i}/{j}/" + "x" * 1000
                        conn.request("GET", path)
                    else:
                        path = "/invocations"
                        conn.request("POST", path, body=row, headers={"Content-Type": "text/csv"})
                    resp = conn.getresponse()
                    out = resp.read()
                    mine.append((conn.sock.getsockname()[1], "GET" if j % 3 == 2 else "POST", path, resp.status,
                                 0 if j % 3 == 2 else len(row), len(out)))
            finally:
                conn.close()
            return mine

        with ThreadPoolExecutor(8) as pool:
            sent = [r for part in pool.map(client, range(8)) for r in part]
        assert exchange(server.port, b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n") \
            == 413
        assert exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n") == 400
    ended = time.time()
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert all(set(r) == {"time", "client", "method", "path", "status", "bytes_in", "bytes_out", "variant",
                          "model", "model_latency_us", "overhead_latency_us", "pid"} for r in records)
    logged = sorted((int(r["client"].rsplit(":", 1)[1]), r["method"], r["path"], r["status"], r["bytes_in"],
                     r["bytes_out"]) for r in records
                    if r["status"] in (200, 404) and (r["path"] == "/invocations" or r["path"].startswith("/nowh")))
    assert logged == sorted(sent)
    assert {s for *_, s, _, _ in sent} == {200, 404}
    mine = [r for r in records if r["path"] == "/invocations" or r["path"].startswith("/nowh")]
    assert all(r["client"].startswith("127.0.0.1:") for r in mine)
    assert all(r["variant"] == ("AllTraffic" if r["path"] == "/invocations" else "") for r in mine)  # 404: none
    assert all(r["model_latency_us"] > 0 for r in mine if r["status"] == 200)
    assert all(r["model_latency_us"] == 0 and r["overhead_latency_us"] > 0 for r in mine if r["status"] == 404)
    for r in records:
        at = time.mktime(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert started - 2 <= at <= ended + 1, r["time"]
    assert len({r["pid"] for r in records}) <= 2
    refused = [r for r in records if r["status"] in (400, 413)]
    assert sorted(r["status"] for r in refused) == [400, 413]
    assert all(r["bytes_in"] == 0 for r in refused)


def test_access_log_to_standard_output_and_an_unwritable_log(artifacts, env, work):  # noqa: F811
    """``--access-log -`` writes the lines to standard output; a log that cannot be opened is one sentence and
    exit status 2 before anything listens. Without the flag no line is written."""
    with Endpoint(env, work, str(artifacts["sklearn"]), "--workers", "1", "--access-log", "-") as server:
        assert exchange(server.port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 404
    lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    assert [(r["path"], r["status"]) for r in lines if r["path"] == "/nowhere"] == [("/nowhere", 404)]
    with Endpoint(env, work, str(artifacts["sklearn"]), "--workers", "1") as server:
        assert exchange(server.port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 404
    assert not [x for x in server.log().splitlines() if x.startswith("{")]
    done = subprocess.run([sys.executable, "-m", "artifact_tools", "serve", str(artifacts["sklearn"]),
                           "--access-log", str(work / "no-such-folder" / "access.log")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot write the access log" in done.stderr


def test_access_log_that_fails_drops_lines_with_one_warning(artifacts, env, work):  # noqa: F811
    """``--access-log /dev/full`` (every write fails with ENOSPC): requests are answered as usual, the worker
    warns once and drops the lines, and no traceback is printed; ``/metrics`` still counts every request."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    row = csv_body([[0.5, -1.0, 2.0, 0.1]])
    with Endpoint(env, work, str(artifacts["sklearn"]), "--workers", "1", "--access-log", "/dev/full") as server:
        statuses = [post(server.port, row, {"Content-Type": "text/csv"})[0] for _ in range(5)]
        assert statuses == [200] * 5
        assert total(metrics(server.port), "Invocations_total") == 5
    out = server.log()
    assert out.count("the access log /dev/full cannot be written") == 1, out
    assert "Traceback" not in out and "Logging error" not in out, out


def test_access_log_fifo_without_reader_is_one_sentence_at_once(artifacts, env, work):  # noqa: F811
    """A FIFO that no process reads is refused in one sentence, exit status 2, without waiting for a reader; one
    with a reader gets the lines."""
    fifo = work / "access.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "artifact_tools", "serve", str(artifacts["sklearn"]),
                           "--access-log", str(fifo)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("artifact-tools: cannot write the access log") or \
        "cannot write the access log" in done.stderr
    assert "no process reads it" in done.stderr
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: the log can be opened
    try:
        with Endpoint(env, work, str(artifacts["sklearn"]), "--workers", "1", "--access-log", str(fifo)) as server:
            assert exchange(server.port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 404
            deadline, got = time.monotonic() + 20, b""
            while b"/nowhere" not in got and time.monotonic() < deadline:
                try:
                    got += os.read(reader, 65536)
                except BlockingIOError:
                    time.sleep(0.1)
        lines = [json.loads(x) for x in got.decode().splitlines()]
        assert [(r["path"], r["status"]) for r in lines if r["path"] == "/nowhere"] == [("/nowhere", 404)]
    finally:
        os.close(reader)
