"""The HTTP/1.1 request parser of ``artifact-tools serve`` (``artifact_tools.serve._Parser``, llhttp through
httptools) on its own, sans I/O: bytes in, events out, as the front end reads them. What a request must give is
stated by RFC 9112 (message syntax and framing) and RFC 9110 (semantics); the real server is tested end to end in
test_serve.py and test_serve_hostile.py."""

from __future__ import annotations

import asyncio
import sys

import pytest

from artifact_tools import serve

httptools = pytest.importorskip("httptools")


def events(*chunks: bytes, eof: bool = False) -> list:
    """Every event the parser gives for ``chunks`` fed one by one: heads as (method, target, version, fields,
    keep-alive), bodies joined per request, END, and a refusal as ("refused", status, sentence)."""
    parser = serve._Parser(httptools)
    out: list = []
    for chunk in chunks:
        parser.receive_data(chunk)
    if eof:
        parser.receive_data(b"")
    body = b""
    while True:
        try:
            event = parser.next_event()
        except serve._Reject as r:
            out.append(("refused", r.status, r.message))
            return out
        if event is serve.NEED_DATA or event is serve.CLOSED:
            return out
        if isinstance(event, serve._Head):
            out.append((event.method, event.target, event.http_version, event.headers, event.keep_alive))
        elif isinstance(event, bytes):
            body += event
        elif event is serve.END:
            out += [body, serve.END] if body else [serve.END]
            body = b""


def test_pipelined_requests_come_out_whole_and_in_order_however_the_bytes_are_cut():
    data = (b"POST /invocations?x=1 HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: 5\r\n\r\n1,2,3"
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n4,\r\n1\r\n5\r\n0\r\n\r\n"
            b"GET /ping HTTP/1.0\r\n\r\n")
    want = [(b"POST", b"/invocations?x=1", b"1.1", [(b"host", b"t"), (b"content-type", b"text/csv"),
                                                   (b"content-length", b"5")], True), b"1,2,3", serve.END,
            (b"POST", b"/invocations", b"1.1", [(b"host", b"t"), (b"transfer-encoding", b"chunked")], True),
            b"4,5", serve.END,
            (b"GET", b"/ping", b"1.0", [], False), serve.END]
    assert events(data) == want
    assert events(*[data[i:i + 1] for i in range(len(data))]) == want  # one byte at a time
    assert events(data[:37], data[37:90], data[90:]) == want


def test_connection_close_ends_keep_alive():
    assert events(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, close\r\n\r\n")[0][4] is False
    assert events(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")[0][4] is True


@pytest.mark.parametrize("data, status", [
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n", 400),  # obs-fold, RFC 9112 section 5.2
    (b"GET /ping HTTP/1.1\r\nHost: t\r\nX : a\r\n\r\n", 400),  # whitespace before the colon, section 5.1
    (b"GET /ping HTTP/1.1\r\nX: a\r\n\r\n", 400),  # no Host, section 3.2
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),  # 6.1
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n1234", 400),  # section 6.3
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),  # RFC 9112 section 6.1
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 400),  # a chunk size, section 7.1
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),  # HTTP/2 is not spoken over this connection
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * (serve.MAX_HEAD + 1) + b"\r\n\r\n", 431),
])
def test_malformed_requests_are_refused_with_a_status_and_a_sentence(data, status):
    got = events(data)
    assert got[-1][:2] == ("refused", status), got
    assert got[-1][2] and "\n" not in got[-1][2]


def test_an_endless_head_is_refused_before_it_is_held():
    """A head that never ends is refused once it passes MAX_HEAD (and one read), not buffered without bound."""
    parser = serve._Parser(httptools)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\nX: ")
    fed = 0
    while not parser.failed:
        parser.receive_data(b"a" * 4096)
        fed += 4096
        assert fed <= serve.MAX_HEAD + serve.READ_BLOCK + 4096
    with pytest.raises(serve._Reject) as e:
        parser.next_event()
    assert e.value.status == 431
    parser.receive_data(b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")  # nothing after a refusal is parsed
    assert parser.next_event() is serve.NEED_DATA


def test_a_refusal_comes_after_the_requests_before_it():
    got = events(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1 x\r\nHost: t\r\n\r\n"
                 b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [e[1] for e in got[:-1] if isinstance(e, tuple)] == [b"/a"]
    assert got[-1][:2] == ("refused", 400)


def test_the_end_of_the_stream_inside_a_request_is_refused_and_between_requests_closes():
    assert events(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n", eof=True)[-1] is serve.END
    parser = serve._Parser(httptools)
    parser.receive_data(b"")
    assert parser.next_event() is serve.CLOSED
    assert events(b"GET /ping HTTP/1.1\r\nHo", eof=True)[-1][:2] == ("refused", 400)
    assert events(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n1,2", eof=True)[-1][:2] == ("refused", 400)


def test_upgrade_requests_are_read_as_plain_requests_body_included():
    """llhttp stops at the head of a request asking for a protocol upgrade; the server ignores upgrades (RFC 9110
    section 7.8), so the head's Content-Length body is its body and what follows is the next request."""
    up = b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAA\r\n"
    data = (b"GET /ping HTTP/1.1\r\nHost: t\r\n" + up + b"\r\n"
            + b"POST /i HTTP/1.1\r\nHost: t\r\n" + up + b"Content-Length: 7\r\n\r\n1,2,3,4"
            + b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n")
    for chunks in ([data], [data[i:i + 5] for i in range(0, len(data), 5)]):
        got = events(*chunks)
        assert [e[1] if isinstance(e, tuple) else e for e in got] == [
            b"/ping", serve.END, b"/i", b"1,2,3,4", serve.END, b"/last", serve.END], got
    chunked = b"POST /i HTTP/1.1\r\nHost: t\r\n" + up + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
    assert events(chunked)[-1][:2] == ("refused", 400)


def test_expect_100_continue_is_due_until_body_bytes_arrive():
    parser = serve._Parser(httptools)
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    head = parser.next_event()
    assert head.expect_continue and not head.body_seen
    parser.receive_data(b"1,2")
    assert head.body_seen and parser.next_event() == b"1,2" and parser.next_event() is serve.END
    old = serve._Parser(httptools)
    old.receive_data(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert not old.next_event().expect_continue  # an HTTP/1.0 client is sent no 100 (RFC 9110 section 10.1.1)


def test_response_fields_that_could_split_a_response_are_refused():
    serve._check_fields([(b"X-Amzn-Invoked-Production-Variant", b"A-1"), (b"Content-Type", b"application/json")])
    for bad in [(b"X Bad", b"v"), (b"X-Bad", b"a\r\nSet-Cookie: x"), (b"X-Bad", b"a\nb"), (b"X-Bad", b" padded"),
                (b"", b"v"), (b"X-Bad:", b"v"), (b"Content-Length", b"12a")]:
        with pytest.raises(ValueError):
            serve._check_fields([bad])


def test_the_worker_loop_falls_back_to_asyncio_without_uvloop(monkeypatch):
    loop = serve._new_loop()
    try:
        assert type(loop).__module__.split(".")[0] in ("uvloop", "asyncio")
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed: the import fails
    loop = serve._new_loop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop) and type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
    assert asyncio.get_event_loop_policy().__class__.__module__.startswith("asyncio")  # the policy is untouched


def test_an_http10_request_ends_the_connection_even_when_it_asks_for_keep_alive():
    """This server does not answer HTTP/1.0's ``keep-alive`` option, so a 1.0 client cannot know the connection
    stays open (RFC 9112 section 9.3); and a 1.0 message with Transfer-Encoding has faulty framing, after which the
    connection must close (section 6.1): a request pipelined after it must not be read as the next one."""
    assert events(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")[0][4] is False
    got = events(b"POST /invocations HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"1\r\nx\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got[0][4] is False


def test_trailer_fields_are_discarded_and_bounded():
    """RFC 9112 section 7.1.2: a server may discard trailer fields. httptools gathers each field in memory, so
    a client could send trailer fields (or one endless trailer value) for as long as the body may take: chunked
    framing that brings no body byte is bounded as a head is."""
    start = b"POST /invocations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    got = events(start + b"X-Trailer: 1\r\n\r\n")  # a small trailer: the body is whole and the field not a header
    assert got[0][3] == [(b"host", b"t"), (b"transfer-encoding", b"chunked")] and got[1:] == [b"abc", serve.END]

    parser = serve._Parser(httptools)
    parser.receive_data(start)
    fed = 0
    while not parser.failed and fed < 16 * serve.MAX_HEAD:  # many trailer fields, 64 KiB a read
        parser.receive_data(b"X-T: a\r\n" * 8192)
        fed += 8 * 8192
    assert parser.failed and fed <= serve.MAX_HEAD + 2 * serve.READ_BLOCK
    parser.next_event(), parser.next_event()  # the head and the body came before
    with pytest.raises(serve._Reject) as refused:
        parser.next_event()
    assert refused.value.status == 400 and "trailer" in refused.value.message

    for flood in (b"X: " + b"a" * serve.READ_BLOCK, b"a" * serve.READ_BLOCK):  # one endless value or extension
        parser = serve._Parser(httptools)
        parser.receive_data(start if flood.startswith(b"X") else start[:-3] + b";")
        for _ in range(16):
            parser.receive_data(flood)
        assert parser.failed
        assert [e for e in parser.events if isinstance(e, serve._Reject)][0].status == 400


def test_many_one_byte_chunks_are_not_taken_for_framing_without_data():
    data = b"1\r\nx\r\n" * 100_000
    got = events(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", data, b"0\r\n\r\n")
    assert got[1:] == [b"x" * 100_000, serve.END]
    got = events(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                 *[data[i:i + serve.READ_BLOCK] for i in range(0, len(data), serve.READ_BLOCK)], b"0\r\n\r\n")
    assert got[1:] == [b"x" * 100_000, serve.END]
