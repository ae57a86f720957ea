"""``artifact-tools serve``: the SageMaker inference-container HTTP contract, served by gunicorn worker processes.

The contract (what SageMaker hosting and Batch Transform expect of a container), as implemented by AWS's own
containers — aws/sagemaker-xgboost-container ``src/sagemaker_xgboost_container/algorithm_mode/serve.py`` (gunicorn
``BaseApplication``, model loaded per worker, 6 MB body cap, ``/execution-parameters``) and
aws/sagemaker-inference-toolkit ``src/sagemaker_inference/parameters.py`` (the ``SAGEMAKER_BIND_TO_PORT`` and
``SAGEMAKER_MODEL_SERVER_TIMEOUT`` variables):

- ``GET /ping``: 200 with ``{"status": "ok", "framework": ..., ...}`` once a worker holding the model answers.
- The model is served as an endpoint of one production variant (``AllTraffic``, :mod:`artifact_tools.endpoint`):
  ``GET /metrics`` (Prometheus: invocations, 4xx/5xx, model and overhead latency, every refusal below included)
  and, with ``--access-log``, one JSON line per request, are the endpoint's.
- ``POST /invocations``: the body read by ``Content-Type`` and the predictions written as ``Accept`` asks, with the
  rules of :mod:`artifact_tools.codec` (shared with ``load --predict`` and the exported handlers): ``text/csv``
  (with or without a header, told by content; an empty cell is NaN), ``application/json`` (a list of rows,
  ``{"instances": ...}``, ``{"inputs": ...}``, MLflow's ``dataframe_split`` / ``dataframe_records``),
  ``application/jsonlines``, ``application/x-npy``, ``text/plain`` (texts); answers in ``application/json``
  (default; ``{"predictions": ...}`` for ``instances`` and dataframe requests, ``{"outputs": ...}`` for
  ``inputs``), ``text/csv``, ``application/jsonlines``, ``application/x-npy``. Several outputs (a dict, or a list
  of arrays of different widths) are kept in every format that can carry them. When the model brings its own
  inference code (``LoadedModel.invoke_fn``), the raw body goes to it instead (see :func:`_own_code`).
- ``HEAD`` is answered wherever ``GET`` is, with GET's head and no body (RFC 9110 section 9.3.2).
- Errors are JSON ``{"error": "<one sentence>"}``: 404/405 wrong path or method, 413 body over the cap (checked on
  ``Content-Length`` before reading, and counted while reading a chunked body), 415 unsupported Content-Type or
  charset, 406 unsupported Accept (or predictions that cannot take the asked form), 400 malformed body or input
  the model rejects (its ``ValueError``/``TypeError``/``KeyError``/``IndexError`` message), 500 anything else.
  From the HTTP layer: 400 malformed request (also both ``Content-Length`` and ``Transfer-Encoding``, refused as
  RFC 9112 section 6.1 allows), 408 a head or body that does not arrive in time, 417 an ``Expect`` other than
  ``100-continue``, 431 a head over 64 KiB, 501 a transfer coding other than chunked, 503 (``Retry-After: 1``)
  when a worker already holds ``max(64 MiB, 4 x cap)`` of request bodies. These close the connection.
- ``GET /execution-parameters``: ``{"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD",
  "MaxPayloadInMB": cap in MiB}`` for Batch Transform.
- Data capture (``run(capture=...)``, ``serve --capture``): every ``/invocations`` request and its answer, errors
  included (the body as far as it was read), in SageMaker's capture format (:mod:`artifact_tools.capture`) under
  ``DEST/ENDPOINT/AllTraffic/``. Each worker makes its own writer after the fork and closes it when it stops, so a
  graceful stop leaves whole files; a record that does not fit the writer's queue is dropped, never the request.

HTTP/1.1 (RFC 9110, RFC 9112): connections are kept alive (SageMaker's front end and most clients reuse them)
until ``Connection: close``, an HTTP/1.0 request, an error answer, 65 s without a request, or a stop. Pipelined
requests are answered one after another, in order (RFC 9112 section 9.3.2). ``Expect: 100-continue`` gets
``100 Continue`` only when the body will be read: an announced body over the cap gets the 413 at once (RFC 9110
section 10.1.1). Deadlines: a request head must arrive within 10 s of its first byte; a body may not pause for
10 s and must arrive within the timeout (the 10 s are capped by the timeout). A worker holds up to 1000
connections; when full it closes the one that has waited longest without a request being predicted. A
connection closed while the client may still be sending is half-closed first and read for up to 2 s, so that
the client reads the answer instead of a reset (RFC 9112 section 9.6).

Process model (a deliberate choice):
1. ``run`` first loads the model once in a fresh interpreter (a short-lived child process): a bad artifact fails
   there with one sentence before any socket opens, and the extraction cache is filled for the workers.
2. ``run`` binds the listening socket itself (a taken port is one clear sentence) and hands it to gunicorn.
3. The gunicorn master never imports a framework. Each worker process loads the model once, after fork and
   before it accepts a connection, so ``/ping`` is only ever answered by a worker that holds the model. Loading
   in the master and forking (``preload_app``) would share memory, but forking a process whose TensorFlow,
   PyTorch or OpenMP runtime is already running can deadlock the children; per-worker loading is what SageMaker's
   XGBoost container does too. Cost: one model copy per worker. Processes (2 by default) give parallel compute.
4. Inside a worker, connections are not tied to a process or thread (gunicorn's ``sync`` worker holds one
   connection per process, so two clients sending one header line a second stopped ``/ping``; its ``gthread``
   worker reads a head in a pool thread too, so pool size + 1 slow clients do the same). One asyncio event loop
   per worker (uvloop's when installed, :func:`_new_loop`) reads every connection, llhttp parses (through
   httptools, :class:`_Parser`; strict, it rejects ambiguous framing), and only a complete request is acted on:
   ``/ping`` and the other constant-time routes are answered on the loop itself, ``POST /invocations`` goes to
   the worker's single model thread, so predictions never overlap within a process (the model is never called
   concurrently) and do not delay ``/ping``. Small
   requests to a model whose predictions have proven fast run on the loop directly, which saves two thread
   switches (see :class:`_ModelThread` for the bound this keeps). Measured with the sklearn sample model, 1 row per
   request, 2 workers on a shared 2-core machine, against the sync workers: one client opening a connection per
   request within 10%, 16 such clients 1.4x the requests/s, kept-alive clients 1.3x (1) and 1.7x (16); and
   ``/ping`` answers in milliseconds with hundreds of slow clients connected. All workers wait on the one
   listening socket; a worker that holds its share of the server's connections leaves new ones to the others for
   a moment (:class:`_Share`), so kept-alive clients spread evenly over the workers (without it one worker took 15
   or 16 of 16 connections opened at once, and the server ran at one worker's speed); one that holds more than its
   share (connections opened while the others still loaded their model) lets the surplus go, its clients to
   reconnect to the others.
5. Native thread pools are sized per worker (:mod:`artifact_tools._threads`): before the model loads, a worker
   sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and the other pools' variables (unless
   already set) to its share of the usable cores (cores // workers, at least 1), and its model thread applies the
   same limit with threadpoolctl (OpenMP's thread count is per calling thread, and numpy's OpenBLAS started in the
   master before any variable could be set). The master's environment is left as it is.
6. The worker timeout (``SAGEMAKER_MODEL_SERVER_TIMEOUT``, default 60 s): a worker stops its heartbeat while one
   prediction runs longer, so the master replaces it, as it did a stuck sync worker; while a worker loads the
   model a heartbeat thread keeps the master from taking the load time for a hang.
7. SIGTERM is gunicorn's graceful stop: listening ends, idle connections close, requests under way finish (up to
   30 s) and are answered with ``Connection: close``, exit status 0.
8. Dynamic batching (``--max-batch-rows N``, default ``DEFAULT_MAX_BATCH_ROWS``; 0 turns it off): requests to one
   model that arrive while it predicts are predicted together in one call of at most N rows, each answered with
   its own rows, in its own Accept type (:class:`_ModelThread`; which models may:
   :func:`artifact_tools.row_wise.batchable`, the rule ``transform`` joins records by too). Nothing
   waits for a batch to fill, so a lone request is answered as before. Measured on 2 busy shared cores with 16
   kept-alive clients (``benchmarks/serve.py``'s models), server CPU per 1-row request, off -> on: scikit-learn
   forest 2.5 -> 0.44 ms and XGBoost 0.41 -> 0.33 ms (2 workers; for XGBoost the HTTP front end is most of what
   is left), the Hugging Face text classifier 4.2 -> 1.9 ms (1 worker). Then llhttp (httptools) for h11, uvloop,
   one loop wake-up per batch and the codec's short paths, server CPU per request on 2 busy shared cores, 16
   requests sent at once on kept-alive connections (medians of interleaved rounds): XGBoost 1 row 0.18 -> 0.086 ms
   (1 worker; h11 -> llhttp alone 0.18 -> 0.094; uvloop against asyncio's loop 0.132 -> 0.120 at 8 requests),
   XGBoost 100 rows 0.51 -> 0.39 ms and the text classifier 1.8 -> 1.55 ms (2 workers). The texts of one request to
   a Hugging Face text classifier run as padded batches too, ordered by length (:meth:`_Batcher.predict_alone`;
   100 texts 125 -> 87 ms on one core); not with ``--max-batch-rows 0``, where each text runs alone.
9. A worker freezes what it holds when it starts serving (``gc.freeze``: the server's objects and the models
   loaded at start are skipped by every later collection). A cold model loaded by a multi-model worker spent 0.21 s
   in collections scanning them, against 0.09 s for the same load in a bare interpreter; its first request over a
   plain load went from 1.13 to 1.05 (``benchmarks/serve.py --models forest --cold-runs 5``). In steady serving it
   changed nothing measurable (interleaved, 2 workers: the text classifier 1 row at concurrency 1, 2.16-2.29 ms of
   CPU per request frozen against 2.32-2.38 not; XGBoost 1 row at concurrency 16, 92-100 against 95 us). An
   earlier measurement of a third less XGBoost throughput came from ``--quick`` rounds of under 0.1 s. An endpoint
   unfreezes when a variant is removed, so that the removed model can be collected.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import io
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from . import codec
from ._pipeline import call_input
from ._threads import limit_pools, size_worker_process, threads_per_worker
from .errors import ArtifactError
from .row_wise import EXACT_SKLEARN, ROW_WISE, ROW_WISE_TASKS, batchable  # noqa: F401 - serve's batching rule
from .row_wise import rows_exact as _rows_exact  # noqa: F401

__all__ = ["DEFAULT_MAX_PAYLOAD", "create_app", "run"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_PAYLOAD = 6 * MIB
DEFAULT_TIMEOUT = 60
READ_BLOCK = 64 * 1024
JSON = codec.JSON
REQUEST_BODY = "artifact_tools.request_body"  # the environ entry holding the /invocations body once read
DECODED = "artifact_tools.decoded"  # ... its decoded body and response type, once decoded
PREDICTED = "artifact_tools.predicted"  # ... its share of a batch's predictions, when predicted in a batch
AHEAD = "artifact_tools.ahead_seconds"  # ... seconds spent on it before the app's call (batch decoding, predict)
BATCHED = "artifact_tools.batched"  # ... how many requests the batch it was predicted in held
DEFAULT_MAX_BATCH_ROWS = 1024  # rows one batched prediction takes at most (serve --max-batch-rows; 0: no batching)
MAX_BATCH_JOBS = 64  # requests one batch takes at most
GATHER_SHARE = 0.25  # a batch waits for the requests expected at most this share of the last batch's time...
MAX_GATHER_WAIT = 0.002  # ... and at most this many seconds
MIN_GATHER_WAIT = 0.0001  # ... and not at all when that share is shorter (a thread's wake-up takes about as long)
BATCH_BODY = 256 * 1024  # bytes of body a request may have to join a batch (larger ones gain nothing from one)
_NOTHING = object()


class _Reject(Exception):
    """An HTTP error answer: status and one sentence."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


# ---------------------------------------------------------------------------------------------------- request body

def _read_body(environ: dict, cap: int) -> bytes:
    """The request body, refusing more than ``cap`` bytes (announced or actually sent)."""
    stream = environ["wsgi.input"]
    announced = environ.get("CONTENT_LENGTH") or ""
    if announced:
        try:
            expected = int(announced)
        except ValueError:
            raise _Reject(400, f"Content-Length {announced!r} is not a number") from None
        if expected > cap:
            raise _Reject(413, f"the body of {expected} bytes is over the {cap}-byte limit")
    else:
        expected = None
    parts: list[bytes] = []
    got = 0
    while expected is None or got < expected:
        want = READ_BLOCK if expected is None else min(READ_BLOCK, expected - got)
        try:
            block = stream.read(want)
        except Exception as e:  # each server signals a broken or cut body its own way (gunicorn: ParseException)
            raise _Reject(400, f"the request body could not be read ({type(e).__name__})") from None
        if not block:
            break
        got += len(block)
        if got > cap:
            raise _Reject(413, f"the body is over the {cap}-byte limit")
        parts.append(block)
    if expected is not None and got < expected:
        raise _Reject(400, f"the request body ended after {got} of the {expected} bytes announced")
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------------- WSGI app

def _sentence(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0].strip() if text else type(e).__name__
    return first if len(first) <= 300 else first[:297] + "..."


def _own_code(invoke: Callable, body: bytes, content_type: str, accept: str, environ: dict) -> tuple[str, bytes]:
    """``/invocations`` through the artifact's own inference code (``LoadedModel.invoke_fn``: its ``input_fn`` ->
    ``predict_fn`` -> ``output_fn``), given the raw body, Content-Type and Accept as the SageMaker inference toolkit
    gives them (a missing Accept or ``*/*`` becomes its default, JSON). Errors are answered as the toolkit does
    (aws/sagemaker-inference-toolkit ``src/sagemaker_inference/transformer.py``, ``transform``): an exception
    carrying an HTTP ``status_code`` (its ``BaseInferenceToolkitError``) gets that status, any other a 500; the
    codec's own refusals (the container's default handlers, where the code defines none) keep their 4xx. The
    traceback of a 500 goes to the server log."""
    if not accept.strip() or accept.strip() == "*/*":
        accept = JSON
    try:
        answer = invoke(body, content_type, accept)
    except codec.CodecError as e:
        raise _Reject(e.status, str(e)) from None
    except Exception as e:
        status = getattr(e, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            message = getattr(e, "message", None) or _sentence(e)
            raise _Reject(status, f"the artifact's inference code refused the request: {_sentence(Exception(message))}"
                          ) from None
        traceback.print_exc(file=environ["wsgi.errors"])
        raise _Reject(500, f"the artifact's inference code failed: {type(e).__name__}: {_sentence(e)}") from None
    payload, ctype = answer if isinstance(answer, tuple) and len(answer) == 2 else (answer, accept)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    elif isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        raise _Reject(500, f"the artifact's inference code answered with a {type(payload).__name__}, not bytes or text")
    return str(ctype or accept), payload


# ---------------------------------------------------------------------------------------------------- batching

TEXT_BATCH = 32  # texts run as one padded batch of a Hugging Face text pipeline (see row_wise.ROW_WISE_TASKS)


READ = "GET, HEAD"  # the methods a read-only route answers (HEAD: GET's head and no body, RFC 9110 section 9.3.2)


def _check_method(path: str, method: str, allowed: str) -> None:
    """Refuse (405, with ``Allow``) a request whose method is not one of ``allowed`` ("POST", or :data:`READ`)."""
    if method not in allowed.split(", "):
        raise _Reject(405, f"{path} answers {allowed} only", (("Allow", allowed),))


def _batch_key(data: Any) -> tuple | None:
    """(what must match for two inputs to be concatenated, rows) of a decoded input, or None when it is not a
    shape that batches: a numeric array (same trailing shape and dtype), a list of texts or one text."""
    import numpy as np

    if isinstance(data, np.ndarray):  # (1-D: one flat row to the loaders, so not rows to concatenate)
        if data.ndim >= 2 and data.shape[0] > 0 and data.dtype.kind in "biuf":
            return ("array", data.shape[1:], data.dtype.str), data.shape[0]
        return None
    if isinstance(data, list) and data and all(type(x) is str for x in data):
        return ("texts",), len(data)
    if type(data) is str:  # one text ({"inputs": "..."}, the usual Hugging Face body): a list of one to the loader
        return ("texts",), 1
    return None


def _split(out: Any, sizes: list[int]) -> list | None:
    """The predictions of concatenated inputs cut back into one part per input (``sizes`` rows each), or None
    when they do not have one row per input row."""
    import numpy as np

    total = sum(sizes)
    cut: Any
    if isinstance(out, np.ndarray):
        if out.ndim < 1 or out.shape[0] != total:
            return None
        cut = out
    elif hasattr(out, "iloc") and hasattr(out, "columns") and len(out) == total:  # a pandas DataFrame
        cut = out.iloc
    elif isinstance(out, list) and len(out) == total:
        cut = out
    else:
        return None
    parts, start = [], 0
    for n in sizes:
        parts.append(cut[start:start + n])
        start += n
    return parts


class _Batcher:
    """Dynamic batching for one loaded model (see :class:`_ModelThread`): several requests decoded, their rows
    concatenated, one ``predict``, the predictions split back. Each request's decoded body and share of the
    predictions are left in its environ (``DECODED``, ``PREDICTED``), where the app's normal request path picks
    them up: it encodes each answer as its own ``Accept`` and request style ask, counts it, captures it. When the
    batch's ``predict`` fails (one bad input among good ones, a NaN the model refuses), nothing is left and each
    request is predicted alone, so a bad request fails alone, with its own sentence. A model whose predictions
    turn out not to have one row per input row is not batched again."""

    def __init__(self, model: Any, decoded: Callable[[dict], tuple[Any, str]], pad_texts: bool = True):
        self.model = model
        self.decoded = decoded
        self.enabled = True
        # texts run as padded batches (above) unless the server batches nothing (``pad_texts``), and only when the
        # model is told where the padding is (the tokenizer gives an attention mask); without one, padding moves
        # every score (measured 1.6e-4 on a small classifier)
        info = getattr(model, "info", None)
        self.padded = pad_texts and getattr(model, "framework", None) == "huggingface" and isinstance(info, dict) \
            and bool(info.get("masked_padding"))
        # texts batch for a text model only: another that gets texts answers each alone (a tabular model whose
        # batch of bad texts gave one answer row for two requests stopped batching for the worker's life)
        self.texts = getattr(model, "framework", None) == "huggingface"

    def prepare(self, environ: dict) -> tuple | None:
        """Decode one request ahead: (key, data, rows), or None when it does not batch (or does not decode: its
        normal path answers the error)."""
        try:
            request, _ = self.decoded(environ)
        except _Reject:
            return None
        found = _batch_key(request.data)
        if found is None or (found[0] == ("texts",) and not self.texts) or request.params:
            return None  # call parameters of its own (or a signature named): answered alone, by the normal path
        return found[0], request.data, found[1]

    def predict_alone(self, data: Any) -> Any:
        """One request's own prediction; its texts, when it sends several, as :meth:`_texts` runs them."""
        if type(data) is list and all(type(t) is str for t in data):
            return self._texts(data)
        return self.model.predict(data)

    def _texts(self, texts: list) -> Any:
        """The model's answer to a list of texts: the pipeline's padded batches while the model pads (see
        ``TEXT_BATCH``; the loader orders the texts by length: 100 texts in 87 ms instead of 125 ms one by one).
        A call that fails padded runs again unpadded; when that succeeds, the pipeline cannot pad (a tokenizer
        without a pad token) and the model is not padded again; a bad input fails both ways, with its own error."""
        if not self.padded or len(texts) < 2:
            return self.model.predict(texts)
        try:
            return self.model.predict({"inputs": texts, "parameters": {"batch_size": min(len(texts), TEXT_BATCH)}})
        except Exception:  # noqa: BLE001 - told apart from a bad input below
            out = self.model.predict(texts)
            self.padded = False
            return out

    def predict(self, members: list[tuple[dict, Any, int]]) -> None:
        """Predict the inputs of ``members`` (environ, data, rows) together and leave each its share."""
        import numpy as np

        started = time.perf_counter()
        datas = [data for _, data, _ in members]
        try:
            if isinstance(datas[0], np.ndarray):
                out = self.model.predict(np.concatenate(datas))
            else:
                out = self._texts([t for d in datas for t in ([d] if type(d) is str else d)])
            parts = _split(out, [rows for _, _, rows in members])
        except Exception:  # noqa: BLE001 - each request is predicted alone and answers its own error
            return
        if parts is None:
            self.enabled = False
            return
        took = time.perf_counter() - started
        for (environ, _, _), part in zip(members, parts):
            environ[PREDICTED] = part
            environ[AHEAD] = environ.get(AHEAD, 0.0) + took
            environ[BATCHED] = len(members)


def create_app(loaded_model: Any, max_payload: int = DEFAULT_MAX_PAYLOAD, *, workers: int = 1,
               capture: Any = None, pad_texts: bool = True) -> Callable:
    """A WSGI application serving ``loaded_model`` (anything with ``.predict`` and ``.framework``) with the
    SageMaker contract described in this module's docstring. ``workers`` is what ``/execution-parameters``
    reports as ``MaxConcurrentTransforms``. ``capture``: a :class:`artifact_tools.capture.CaptureWriter` given
    every ``/invocations`` request and its answer (errors too; the body as far as it was read); the app then has a
    ``close()`` that closes it. The app's ``batcher`` is a :class:`_Batcher` when the model's predictions may be
    batched across requests (:func:`batchable`), else None. ``pad_texts``: several texts (of one request, or of a
    batch) may run as padded batches; False where the server batches nothing (``--max-batch-rows 0``), so that
    every text runs alone, as a single call answers it."""
    parameters = json.dumps({"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD",
                             "MaxPayloadInMB": max(1, max_payload // MIB)}).encode()
    ping = json.dumps({"status": "ok", "framework": getattr(loaded_model, "framework", None)}).encode()

    invoke = getattr(loaded_model, "invoke_fn", None)
    batcher: _Batcher | None = None

    def decoded(environ: dict) -> tuple[Any, str]:
        """The request's decoded body and the response type, once per request (a batch decodes it ahead)."""
        ahead = environ.get(DECODED)
        if isinstance(ahead, Exception):  # the body, read once, failed when a batch decoded it: the same error
            raise ahead
        if ahead is not None:
            return ahead
        try:
            body = _read_body(environ, max_payload)
            environ[REQUEST_BODY] = body
            try:
                request = codec.decode(body, environ.get("CONTENT_TYPE") or "", "the body", max_payload)
                accept = codec.negotiate(environ.get("HTTP_ACCEPT") or "")
            except codec.CodecError as e:
                raise _Reject(e.status, str(e)) from None
        except Exception as e:  # the body is read: a second call must not read it again (it would find it gone)
            environ[DECODED] = e
            raise
        environ[DECODED] = request, accept
        return request, accept

    def invocations(environ: dict) -> tuple[str, bytes]:
        if invoke is not None:
            body = _read_body(environ, max_payload)
            environ[REQUEST_BODY] = body
            return _own_code(invoke, body, environ.get("CONTENT_TYPE") or "", environ.get("HTTP_ACCEPT") or "",
                             environ)
        request, accept = decoded(environ)
        out = environ.pop(PREDICTED, _NOTHING)  # this request's share of a batch's predictions
        if out is _NOTHING:
            try:
                data = call_input(loaded_model, request)
                out = loaded_model.predict(data) if batcher is None or data is not request.data \
                    else batcher.predict_alone(data)
            except (ArtifactError, ValueError, TypeError, KeyError, IndexError) as e:
                raise _Reject(400, f"the model rejected the input: {_sentence(e)}") from None
        try:
            payload, ctype = codec.encode(out, accept, request.style)
        except codec.CodecError as e:
            raise _Reject(e.status, str(e)) from None
        return ctype, payload

    if invoke is None and batchable(loaded_model):
        batcher = _Batcher(loaded_model, decoded, pad_texts)
    routes = {"/ping": (READ, lambda env: (JSON, ping)),
              "/execution-parameters": (READ, lambda env: (JSON, parameters)),
              "/invocations": ("POST", invocations)}

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        headers: tuple[tuple[str, str], ...] = ()
        try:
            if path not in routes:
                raise _Reject(404, f"there is no {path}; this server answers /ping, /invocations and "
                                   "/execution-parameters")
            allowed, handler = routes[path]
            _check_method(path, method, allowed)
            status, (ctype, body) = 200, handler(environ)
        except _Reject as r:
            status, ctype, headers = r.status, JSON, r.headers
            body = json.dumps({"error": r.message}).encode()
        except Exception as e:  # a model or encoder failure that is not the client's doing
            traceback.print_exc(file=environ["wsgi.errors"])
            status, ctype = 500, JSON
            body = json.dumps({"error": f"prediction failed: {type(e).__name__}: {_sentence(e)}"}).encode()
        if capture is not None and path == "/invocations" and method == "POST":
            capture.capture(environ.get(REQUEST_BODY, b""), environ.get("CONTENT_TYPE") or "", body, ctype)
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers])
        return [body]

    app.framework = getattr(loaded_model, "framework", None)  # type: ignore[attr-defined]
    app.batcher = batcher  # type: ignore[attr-defined]
    if capture is not None:
        app.close = capture.close  # type: ignore[attr-defined]
    return app


def capture_writer(capture: dict | None, variant: str = "AllTraffic") -> Any:
    """A :class:`artifact_tools.capture.CaptureWriter` from ``run``'s ``capture`` settings (``dest``, and
    optionally ``endpoint``, ``percent``, ``modes``) for ``variant``, or None without settings. Made in each
    worker process after the fork (its writer thread would not survive one)."""
    if not capture:
        return None
    from .capture import CaptureWriter

    return CaptureWriter(capture["dest"], capture.get("endpoint") or "local-endpoint", variant,
                         capture.get("percent", 100.0), capture.get("modes", "Input,Output"))


def check_capture(capture: dict | None) -> None:
    """Refuse bad capture settings (percentage, modes, names, destination) with one sentence before anything
    listens: a writer is made and closed at once (its thread ends before gunicorn forks; no file is written)."""
    writer = capture_writer(capture)
    if writer is not None:
        writer.close()


# ---------------------------------------------------------------------------------------------------- HTTP front end

KEEPALIVE_TIMEOUT = 65.0  # idle seconds (no request begun) before a connection is closed
READ_TIMEOUT = 10.0  # seconds for a whole request head, and the longest silence inside a body
LINGER = 2.0  # seconds a closing connection keeps reading (and discarding) what the client still sends
MAX_HEAD = 64 * 1024  # bytes of request line and headers (while the head is incomplete: one read more, _Parser)
MAX_CONNECTIONS = 1000  # open connections per worker
HIGH_WATER = 256 * 1024  # unparsed bytes buffered per connection before reading from it pauses
ACCEPT_BATCH = 8  # connections accepted per wake-up at most
SHARE_SLOTS = 64  # workers (of one server) whose connection counts are shared; later ones accept unbalanced
SHARE_STALE = 3.0  # seconds without a heartbeat after which a worker's count no longer counts
SHARE_RETRY = 0.001  # seconds a worker over its share waits before it looks again
SHARE_WAIT = 0.1  # seconds a worker over its share leaves waiting connections to the others, at most
INLINE_BUDGET = 0.01  # a prediction this fast may run on the event loop itself (see _ModelThread.can_inline)
INLINE_WALL = 0.1  # ... and this fast in wall-clock time (which catches predictions that wait, not compute)
INLINE_BODY = 64 * 1024  # ... when its body is at most this big
INLINE_STREAK = 16  # ... after this many consecutive fast predictions
INLINE_COOLDOWN = 100  # ... and not within this many times a slower one's duration, after it
INVOCATIONS = "/invocations"


class _Timeout(Exception):
    """A read or write deadline passed."""


class _Gone(Exception):
    """The client closed or reset the connection, or the worker is stopping and the connection was idle."""


def _call_wsgi(app: Callable, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run a WSGI application on a fully read request; its status, headers and whole body."""
    answer: list = []

    def write(data: bytes) -> None:
        raise NotImplementedError("the WSGI write() callable is not supported; return the body instead")

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        if exc_info and answer:
            raise exc_info[1].with_traceback(exc_info[2])
        answer[:] = [status, headers]
        return write

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    status, headers = answer
    return int(status[:3]), headers, body


_NO_BODY = io.BytesIO(b"")  # wsgi.input until the body is read (only the read body replaces it)
_ENVIRON_KEYS: dict[bytes, str] = {}  # request header name (lower case) -> its WSGI environ key
_CHECKED_FIELDS: set[tuple[bytes, bytes]] = set()  # response header fields already checked (see _respond)
_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


_date_cache: list = [0, b""]


def _http_date() -> bytes:
    """The ``Date`` field value (RFC 9110 section 6.6.1: an origin server with a clock sends it), made once a
    second."""
    now = int(time.time())
    if _date_cache[0] != now:
        from email.utils import formatdate

        _date_cache[:] = [now, formatdate(now, usegmt=True).encode()]
    return _date_cache[1]


class _Head:
    """A request head as :class:`_Parser` read it: method, target and version as sent (bytes), header fields with
    lower-case names, whether the connection stays open after it, and its body's progress."""

    __slots__ = ("method", "target", "http_version", "headers", "keep_alive", "expect_continue", "body_seen", "done",
                 "length")

    def __init__(self, method: bytes, target: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]],
                 keep_alive: bool, length: int | None):
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = False
        self.body_seen = False  # body bytes (or the body's end) arrived: no 100 Continue is due any more
        self.done = False  # the whole request, body included, arrived
        self.length = length  # the announced Content-Length


NEED_DATA = object()  # _Parser.next_event: nothing complete yet
END = object()  # ... the current request's body is complete
CLOSED = object()  # ... the client ended the stream between requests
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Parser:
    """HTTP/1.1 request parsing (RFC 9112) with httptools, the Python binding of llhttp (Node.js's parser, in C;
    strict by default: it refuses obs-fold, whitespace before a colon, bad characters, duplicate or malformed
    Content-Length, and Content-Length together with Transfer-Encoding). Sans-I/O: :meth:`receive_data` takes the
    bytes read and :meth:`next_event` hands out, in order, a :class:`_Head`, its body as ``bytes`` parts, then
    ``END``; ``NEED_DATA`` when nothing complete waits; ``CLOSED`` at the end of the stream between requests; a
    malformed request raises :class:`_Reject` when its turn comes (requests pipelined before it are answered
    first), and nothing after it is parsed. On top of llhttp, as RFC 9112 and RFC 9110 ask: a head over
    ``MAX_HEAD`` bytes is 431, an HTTP/1.1 request without exactly one ``Host`` 400 (RFC 9112 section 3.2), a
    transfer coding other than chunked 501 (RFC 9112 section 6.1), a version other than 1.0 and 1.1 505; an
    HTTP/1.0 request ends its connection (llhttp keeps one with ``Connection: keep-alive`` open, but this server
    neither answers that option nor may keep a 1.0 message with Transfer-Encoding, RFC 9112 sections 6.1 and
    9.3); and more than ``MAX_HEAD`` + ``READ_BLOCK`` bytes of chunked framing in a row that carry no body byte
    (chunk extensions, trailer fields: llhttp skips the first, but httptools gathers each trailer field in
    memory, by repeated concatenation) are 400, as a head is bounded; trailer fields are discarded (RFC 9112
    section 7.1.2). A protocol upgrade (``Upgrade`` with ``Connection: upgrade``) is ignored, as RFC 9110
    section 7.8 lets a server do: llhttp stops at such a head, so a Content-Length body after it is passed
    through here and parsing goes on after it (a chunked one is refused)."""

    def __init__(self, httptools: Any):
        self.mod = httptools
        self.parser = httptools.HttpRequestParser(self)
        self.events: Any = collections.deque()
        self.failed = False  # a refusal is queued: nothing after it is parsed
        self.eof = False
        self.in_message = False  # between a request's first byte and its end
        self.in_head = False
        self.head: _Head | None = None  # the request being parsed, once its head is complete
        self.head_fed = 0  # bytes fed while a head was incomplete
        self.url = b""
        self.fields: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.raw_left = 0  # body bytes of an upgrade request, which llhttp leaves unparsed
        self.framing = 0  # bytes fed in a row, after the current head, that gave no body byte
        self.progress = False  # a body byte or the message's end came during the current feed
        self.error: _Reject | None = None  # a refusal raised inside a callback

    # -- llhttp's callbacks (during feed_data)

    def on_message_begin(self) -> None:
        self.in_message = self.in_head = True
        self.head = None
        self.url = b""
        self.fields = []
        self.head_size = self.head_fed = self.framing = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head is not None:  # a trailer field (RFC 9112 section 7.1.2): discarded, bounded in receive_data
            return
        self.fields.append((name.lower(), value))
        self.head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version().encode()
        try:
            if len(method) + len(self.url) + 12 + self.head_size > MAX_HEAD:
                raise _Reject(431, f"the request head is over {MAX_HEAD} bytes")
            if version not in (b"1.1", b"1.0"):
                raise _Reject(505, f"HTTP/{version.decode()} is not supported; this server speaks HTTP/1.1 and 1.0")
            hosts = length = coding = None
            asks_continue = False
            for name, value in self.fields:
                if name == b"host":
                    hosts = (hosts or 0) + 1
                elif name == b"content-length":
                    length = int(value)  # llhttp checked its digits
                elif name == b"transfer-encoding":
                    coding = value if coding is None else coding + b"," + value
                elif name == b"expect" and value.strip().lower() == b"100-continue":
                    asks_continue = True
            if version == b"1.1" and hosts != 1:
                raise _Reject(400, "the request is not valid HTTP/1.1 (an HTTP/1.1 request carries exactly one Host "
                                   "header field)")
            if coding is not None and coding.strip().lower() != b"chunked":
                raise _Reject(501, f"the transfer coding {coding.decode('latin-1')[:100]!r} is not supported; only "
                                   "chunked is")
            if parser.should_upgrade() and coding is not None:
                raise _Reject(400, "a request asking for a protocol upgrade must not carry a chunked body")
        except _Reject as r:
            self.error = r
            raise
        keep_alive = version == b"1.1" and parser.should_keep_alive()  # (an HTTP/1.0 request ends the connection)
        head = self.head = _Head(method, self.url, version, self.fields, keep_alive, length)
        head.expect_continue = version == b"1.1" and asks_continue
        if parser.should_upgrade() and length:  # llhttp leaves its body unparsed (see receive_data)
            self.raw_left = length
        self.events.append(head)

    def on_body(self, body: bytes) -> None:
        self.progress = True
        if self.head is not None:
            self.head.body_seen = True
        self.events.append(body)

    def on_message_complete(self) -> None:
        if self.raw_left:  # an upgrade request's body follows, unparsed (see receive_data)
            return
        self._complete()

    def _complete(self) -> None:
        self.in_message = False
        self.progress = True
        if self.head is not None:
            self.head.body_seen = self.head.done = True
        self.events.append(END)

    # -- the connection's side

    def receive_data(self, data: bytes) -> None:
        """Parse ``data`` (``b""``: the end of the stream)."""
        if self.failed:
            return
        if not data:
            self.eof = True
            return
        if self.raw_left:
            take = data[:self.raw_left]
            self.raw_left -= len(take)
            self.events.append(take)
            if self.head is not None:
                self.head.body_seen = True
            if self.raw_left:
                return
            self._complete()
            data = data[len(take):]
            if not data:
                return
        try:
            self.parser.feed_data(data)
        except self.mod.HttpParserUpgrade as e:  # an upgrade request's head ended: it is served as any other
            rest = data[int(e.args[0]) if e.args else len(data):]
            if rest:
                self.receive_data(rest)
            return
        except self.mod.HttpParserError as e:
            self._fail(self.error or _Reject(400, f"the request is not valid HTTP/1.1 ({_sentence(e)})"))
            return
        if self.in_head:
            self.head_fed += len(data)
            if self.head_fed > MAX_HEAD + READ_BLOCK:  # (one read may hold the end of the request before it)
                self._fail(_Reject(431, f"the request head is over {MAX_HEAD} bytes"))
        elif self.in_message and self.head is not None:  # in a body: chunked framing must lead to data
            self.framing = 0 if self.progress else self.framing + len(data)
            if self.framing > MAX_HEAD + READ_BLOCK:
                self._fail(_Reject(400, f"the chunked body carries over {MAX_HEAD} bytes of chunk extensions or "
                                        "trailer fields without data"))
        self.progress = False

    def _fail(self, reject: _Reject) -> None:
        self.failed = True
        self.events.append(reject)

    def next_event(self) -> Any:
        if self.events:
            event = self.events.popleft()
            if isinstance(event, _Reject):
                raise event
            return event
        if self.eof:
            if self.in_message or self.raw_left:
                raise _Reject(400, "the request is not valid HTTP/1.1 (the client ended the connection in the "
                                   "middle of a request)")
            return CLOSED
        return NEED_DATA


def _check_fields(fields: list[tuple[bytes, bytes]]) -> None:
    """Refuse a response header field with a bad name or value (RFC 9110 section 5: a name is a token, a value
    has no CR, LF or NUL and no whitespace at its ends): the app's fields must not split the response."""
    for name, value in fields:
        if not name or not all(c in _TOKEN for c in name):
            raise ValueError(f"the response header name {name!r} is not a token")
        if b"\r" in value or b"\n" in value or b"\0" in value or value != value.strip(b" \t") or (
                name.lower() == b"content-length" and not value.isdigit()):
            raise ValueError(f"the response header {name.decode('latin-1')} has an illegal value {value[:100]!r}")


class _ModelThread:
    """The one thread per worker that runs ``/invocations``: predictions never overlap (the model is never called
    concurrently, as with the former sync workers), and the event loop stays free to read requests and answer
    ``/ping`` meanwhile. A daemon thread, so a stuck prediction cannot hold the process at exit.

    Handing a request to this thread and back costs two thread wake-ups and GIL hand-overs (0.1-0.2 ms on a busy
    2-core machine, a fifth of a small model's whole request; up to a millisecond of latency measured at concurrency
    1 for 2 ms predictions -- a scikit-learn forest, a small text classifier -- on a quiet one). So a prediction
    runs on the event loop itself when nothing else needs the loop and that cannot hold it up for long: the worker
    has no other connection open (with several clients the thread is faster: reading and predicting overlap), the
    thread is idle, the body is small (``INLINE_BODY``), the last ``INLINE_STREAK`` predictions each took under
    ``INLINE_BUDGET`` of CPU time (and ``INLINE_WALL`` of wall-clock time), and the last slower one ended more than
    ``INLINE_COOLDOWN`` times its duration ago (the first prediction on each of the two threads starts no such wait:
    a framework's first call in a thread initialises lazily, 70-90 ms for XGBoost and scikit-learn, which tells
    nothing of the calls after it). A surprisingly slow input can thus delay this worker's other connections (a new
    one, a ``/ping``) by one prediction of at most ``INLINE_BUDGET``, and such delays fill at most 1% of the time;
    slow or stalled clients never can, as only complete requests are predicted.

    Dynamic batching (as Triton, TorchServe and TF Serving do): when this thread takes a job and finds more waiting
    (requests that arrived while it predicted), it takes them all (up to ``MAX_BATCH_JOBS``). It also waits a little
    for the requests it expects, as those servers' queue delay does, but only when it has reason to: a batch
    expects as many requests as the last batch saw -- those it took and those that arrived while it ran (clients
    answered send their next request; a lone client is a batch of one and expects nothing more) -- and waits for
    them at most ``GATHER_SHARE`` of the last batch's time (its decoding, predict and encoding), at most
    ``MAX_GATHER_WAIT``, not at all below ``MIN_GATHER_WAIT``; when they do not all come, the next batch expects
    only those that came; when the last jobs taken together did not predict together (requests that do not
    batch: a DataFrame, a flat row, a body over ``BATCH_BODY``), waiting would only hold their answers back, and
    the next batch does not wait. Arrivals that follow no client's answer (open-loop traffic) make some waits
    end in vain, each within those bounds. A small text classifier, 2 workers, 16 clients: batches of 2-4 texts
    became batches of about 8, CPU per request 1.55 -> 1.41 ms, 1,141-1,276 -> 1,345-1,388 requests/s; 100-row
    XGBoost requests 8,241-8,536 -> 8,713-8,759/s; 1-row XGBoost (batches of well under a millisecond: little or
    no wait) unchanged. Then it decodes
    those whose model can batch (:class:`_Batcher`) and whose body is at most
    ``BATCH_BODY`` (a large request gains nothing from a batch), and predicts the inputs of each
    model that match (same trailing shape and dtype, or texts) with one ``predict`` of at most ``max_batch_rows``
    rows (a request larger than that goes alone); then it runs each request's app as before, which encodes the
    request's own share of the predictions; the answers of all the jobs taken go back to the loop in one wake-up
    (``call_soon_threadsafe`` once, not once a job). A lone request (concurrency 1) is a batch of one: nothing
    changes for it. ``max_batch_rows`` 0 turns batching off."""

    def __init__(self, loop: Any, threads: int, max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS):
        import queue

        self.loop = loop
        self.max_batch_rows = max_batch_rows
        self.jobs: Any = queue.SimpleQueue()
        self.pending = 0  # jobs submitted and not finished; only touched on the event loop's thread
        self.busy_since: float | None = None  # when the running prediction started; None while idle
        self.finished = 0  # predictions done
        self.fast_streak = 0
        self.slow_until = 0.0
        self.warmed: set[int] = set()  # the threads that have predicted (the loop's and this one's)
        self.expected = 1  # requests the last batch saw (taken, and come while it ran): what the next may wait for
        self.gather_wait = 0.0  # seconds the next batch may wait for them
        self.together = True  # whether the last jobs taken together predicted together (else waiting gains nothing)
        # the front end's: told the answers of jobs taken together, on the loop, before any of them is handed back
        self.on_batch: Callable[[list], None] | None = None
        self.thread = threading.Thread(target=self._main, args=(threads,), name="predict", daemon=True)
        self.thread.start()

    def can_inline(self, body_size: int) -> bool:
        return (self.pending == 0 and body_size <= INLINE_BODY and self.fast_streak >= INLINE_STREAK
                and time.monotonic() >= self.slow_until)

    def run(self, fn: Callable[[], Any], count: bool = True) -> Any:
        """Run one prediction in the calling thread, timing it (``count``: as a prediction, for the inline rule)."""
        started = self.busy_since = time.monotonic()
        cpu = time.thread_time() if count else 0.0
        try:
            return fn()
        finally:
            if count:
                self._timed(started, cpu)
            self.busy_since = None
            self.finished += 1

    def _timed(self, started: float, cpu: float) -> None:
        """Count work that began at ``started`` (``time.monotonic``) and ``cpu`` (``time.thread_time``) for the
        inline rule."""
        took = time.monotonic() - started
        ident = threading.get_ident()
        if time.thread_time() - cpu > INLINE_BUDGET or took > INLINE_WALL:
            self.fast_streak = 0
            if ident in self.warmed:  # not a thread's first call (see the class docstring)
                self.slow_until = started + took * (1 + INLINE_COOLDOWN)
        else:
            self.fast_streak += 1
        if ident not in self.warmed:
            self.warmed.add(ident)

    def submit(self, fn: Callable[[], Any], batch: tuple[_Batcher, dict] | None = None, tag: Any = None) -> Any:
        """Run ``fn`` on this thread; ``batch``: the request's batcher and environ, when it may join a batch;
        ``tag``: what :attr:`on_batch` is given with the job's answer."""
        future = self.loop.create_future()
        self.pending += 1
        self.jobs.put((fn, future, batch if self.max_batch_rows > 0 else None, tag))
        return future

    def _main(self, threads: int) -> None:
        limit_pools(threads)
        stopping = False
        while not stopping:
            jobs = [self.jobs.get()]
            if jobs[0][0] is None:
                return
            started, short = None, False
            if jobs[0][2] is not None:  # take what else waits (and what is expected soon), to predict together
                stopping, short = self._gather(jobs)
                started = time.monotonic()
                if len(jobs) > 1:
                    try:
                        self._batch(jobs)
                    except Exception:  # noqa: BLE001 - never a reason to fail the requests: each runs alone
                        pass
            done = []
            alone = len(jobs) == 1
            together = False
            for fn, future, batch, tag in jobs:
                # timed for the inline rule when the job predicts itself; not when it only encodes its share of
                # the batch's predictions (left in its environ)
                count = alone or batch is None or PREDICTED not in batch[1]
                together = together or not count
                try:
                    result, ok = self.run(fn, count=count), True
                except BaseException as e:  # handed to the waiting connection, which answers 500
                    result, ok = e, False
                done.append((future, ok, result, tag))
            if started is not None:  # what the next batch may wait for: the requests seen while this one ran
                if not alone:
                    self.together = together
                self.expected = len(jobs) if short else len(jobs) + self.jobs.qsize()
                self.gather_wait = min(GATHER_SHARE * (time.monotonic() - started), MAX_GATHER_WAIT) \
                    if self.together else 0.0
            try:  # one wake-up of the loop for the whole batch
                self.loop.call_soon_threadsafe(self._finish, done)
            except RuntimeError:  # the loop is closed: the worker is exiting
                return

    def _gather(self, jobs: list) -> tuple[bool, bool]:
        """Add to ``jobs`` the jobs waiting, and those expected soon (see the class docstring); (whether the stop
        came among them, whether the wait ended without all it expected)."""
        import queue

        want = min(self.expected, MAX_BATCH_JOBS)
        deadline = time.monotonic() + self.gather_wait if self.gather_wait >= MIN_GATHER_WAIT else 0.0
        while len(jobs) < MAX_BATCH_JOBS:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic() if len(jobs) < want else 0.0
                if left <= 0:
                    break
                try:
                    job = self.jobs.get(timeout=left)
                except queue.Empty:
                    return False, True
            if job[0] is None:
                return True, False
            jobs.append(job)
        return False, False

    def _batch(self, jobs: list) -> None:
        """Decode the batchable requests of ``jobs`` and predict those that match together (see the class)."""
        groups: dict[tuple, list] = {}
        for _, _, batch, _ in jobs:
            if batch is None or not batch[0].enabled:
                continue
            batcher, environ = batch
            started = time.perf_counter()
            prepared = self.run(functools.partial(batcher.prepare, environ), count=False)  # (heartbeat: progress)
            environ[AHEAD] = time.perf_counter() - started
            if prepared is not None:
                key, data, rows = prepared
                groups.setdefault((id(batcher), key), [batcher]).append((environ, data, rows))
        for batcher, *members in groups.values():
            chunk: list = []
            rows = 0
            for member in [*members, None]:
                if member is None or (chunk and rows + member[2] > self.max_batch_rows):
                    if len(chunk) > 1:
                        self.run(functools.partial(batcher.predict, chunk), count=False)
                    chunk, rows = [], 0
                if member is not None:
                    chunk.append(member)
                    rows += member[2]

    def _finish(self, done: list) -> None:
        self.pending -= len(done)
        if len(done) > 1 and self.on_batch is not None:
            try:
                self.on_batch([(tag, result) for _, ok, result, tag in done if ok and tag is not None])
            except Exception:  # noqa: BLE001 - never a reason to fail the requests (each is then counted alone)
                log.exception("counting a batch of answers failed")
        for future, ok, result, _ in done:
            if not future.done():
                future.set_result(result) if ok else future.set_exception(result)

    def stop(self) -> None:
        self.jobs.put((None, None, None, None))


class _Share:
    """How many connections each serving worker of one server holds, so that they spread evenly.

    All workers wait on the one listening socket, and whichever wakes first accepts: on a busy machine one worker
    took 15 or 16 of 16 connections opened at once, and as kept-alive connections never move, the server then ran at
    one worker's speed. So each worker publishes its count of open connections, and one that holds its share
    (total / serving workers, rounded up, counting the connection it would accept) or more leaves the waiting
    connections to the others: it stops watching the listening socket for ``SHARE_RETRY`` and looks again; when
    connections have waited ``SHARE_WAIT`` without the others accepting them, it accepts them all (a worker that
    is slow to wake or stuck holds no client back for longer).

    The counts live in anonymous shared memory (``mmap``) made in the gunicorn master, which the workers inherit
    at the fork: two doubles a slot, the count and the time (``time.monotonic``, one clock for every process) of
    the worker's last heartbeat, 0 when it does not serve. The master gives each new worker a slot no living
    worker holds (:meth:`assign`, when gunicorn makes the worker object, before the fork); a worker that died or
    stopped serving drops out of the sums ``SHARE_STALE`` seconds after its last heartbeat at the latest, so a
    dead or still-loading worker never holds connections back.

    Connections opened while only some workers served (the others still loading their model, or replacing one
    that died) would stay where they are as long as their clients keep them alive. So at each heartbeat a worker
    holding more than its share (:meth:`surplus`) lets that many go: the next answers on its kept-alive
    connections (not one with a pipelined request already arriving) say ``Connection: close`` (RFC 9112 section
    9.6), and their clients reconnect -- to the workers under their share, as this one, over it, leaves new
    connections to them; a connection let go counts no more while it lingers. A pipelining client whose next
    request was still unsent when the answer said ``close`` sends it again on a new connection (RFC 9112 section
    9.3.2: which it cannot do by itself for a POST). The shares count open connections, idle ones included, so a
    worker that also holds idle connections may let go more of its busy ones than an even spread of the busy ones
    would."""

    def __init__(self, slots: int = SHARE_SLOTS):
        import mmap

        self.memory = mmap.mmap(-1, 16 * slots)  # MAP_SHARED | MAP_ANONYMOUS: one copy for the forked workers
        self.cells = memoryview(self.memory).cast("d")
        self.owners: dict[int, Any] = {}  # in the master: slot -> the worker object given it
        self.slot: int | None = None  # in a worker: its own slot

    def assign(self, worker: Any) -> int | None:
        """In the master: a slot for a new worker (None when all are held), zeroed."""
        for slot in range(len(self.cells) // 2):
            owner = self.owners.get(slot)
            if owner is None or not _alive(getattr(owner, "pid", None)):
                self.owners[slot] = worker
                self.cells[2 * slot] = self.cells[2 * slot + 1] = 0.0
                return slot
        return None

    def publish(self, count: int, serving: bool = True) -> None:
        """In a worker: its count of open connections, and a heartbeat (or that it no longer serves)."""
        if self.slot is not None:
            self.cells[2 * self.slot] = float(count)
            self.cells[2 * self.slot + 1] = time.monotonic() if serving else 0.0

    def _sums(self, count: int) -> tuple[int, int]:
        """(serving workers, connections they hold) with this worker holding ``count``."""
        cells, fresh = self.cells, time.monotonic() - SHARE_STALE
        live = total = 0
        for slot in range(len(cells) // 2):
            if slot == self.slot:
                live, total = live + 1, total + count
            elif cells[2 * slot + 1] > fresh:
                live, total = live + 1, total + int(cells[2 * slot])
        return live, total

    def over(self, count: int) -> bool:
        """In a worker holding ``count`` connections: whether accepting one more would exceed its share."""
        if self.slot is None:
            return False
        live, total = self._sums(count)
        return count * live >= total + 1  # count + 1 > ceil((total + 1) / live)

    def surplus(self, count: int) -> int:
        """In a worker holding ``count`` connections: how many more than its share (the connections of all serving
        workers over their number, rounded up) it holds."""
        if self.slot is None:
            return 0
        live, total = self._sums(count)
        return max(0, count - -(-total // live))


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (a reused pid): taken to be alive, another slot is used
        pass
    return True


class _FrontEnd:
    """One worker's HTTP/1.1 server: an asyncio event loop reads whole requests (:class:`_Parser`) under deadlines,
    answers ``/ping`` and the other cheap routes itself and hands ``POST /invocations`` to :class:`_ModelThread`."""

    def __init__(self, app: Callable, loop: Any, model: _ModelThread, *, max_payload: int, timeout: float,
                 log: Any, server_name: tuple[str, int]):
        self.app = app
        self.loop = loop
        self.model = model
        self.max_payload = max_payload
        self.timeout = float(timeout)
        self.read_timeout = min(READ_TIMEOUT, self.timeout)
        self.budget = max(64 * MIB, 4 * max_payload)  # request body bytes held at once by this worker
        self.held = 0
        self.log = log
        self.server_name = server_name
        # the app's record(environ, status, seconds, bytes_in, bytes_out), called once for every answered request
        # (an endpoint's metrics and access log), refusals of the HTTP layer included
        self.record: Callable | None = getattr(app, "record", None)
        # ... and record_many(answers), the same for the answers of a batch, counted together before any is sent
        self.record_many: Callable | None = getattr(app, "record_many", None)
        if self.record is not None and self.record_many is not None:
            model.on_batch = self._record_batch
        self.connections: set[_Connection] = set()
        self.share: _Share | None = None  # the server's shared connection counts, told of each change
        self.stopping = False
        self.shed = 0  # connections to let go, over this worker's share (see _Share); set at each heartbeat
        self.leaving = 0  # connections let go and not closed yet (lingering): no longer counted as held
        self.closed = asyncio.Event()

    def _record_batch(self, answered: list) -> None:
        """Count the answers of jobs taken together (``(connection, (status, headers, body))``) with the app's
        ``record_many``, on the loop before any of them is handed back, so that ``/metrics`` holds every answer
        sent; each connection then leaves out its own count (see :meth:`_Connection._exchange`)."""
        now = time.perf_counter()
        entries, counted = [], []
        for conn, (status, _, out) in answered:
            environ = conn.environ
            if conn.lost or environ is None:  # (a client gone is not answered, nor counted)
                continue
            entries.append((environ, status, now - conn.began, int(environ.get("CONTENT_LENGTH") or 0), len(out)))
            counted.append(conn)
        if entries and self.record_many is not None:
            self.record_many(entries)
            for conn in counted:
                conn.counted = True

    def batch_of(self, environ: dict) -> tuple[_Batcher, dict] | None:
        """The batcher of the model a routed ``/invocations`` request goes to, with its environ, or None."""
        if self.model.max_batch_rows <= 0 or int(environ.get("CONTENT_LENGTH") or 0) > BATCH_BODY:
            return None
        find = getattr(self.app, "batcher_for", None)
        batcher = find(environ) if find is not None else getattr(self.app, "batcher", None)
        return (batcher, environ) if batcher is not None and batcher.enabled else None

    def evict_one(self) -> bool:
        """At the connection limit: close the connection that has waited longest without a request in the
        model's hands (idle, or sending its head or body slowly). False when every connection is busy."""
        waiting = [c for c in self.connections if c.phase in ("idle", "head", "body")]
        if not waiting:
            return False
        min(waiting, key=lambda c: c.phase_since).abort()
        return True

    def stop(self) -> None:
        """Graceful stop: idle connections close now; those inside a request finish it, answering with
        ``Connection: close``."""
        self.stopping = True
        for conn in list(self.connections):
            if conn.phase == "idle":
                conn.abort()

    def holding(self) -> int:
        """The connections this worker holds, for its share: the open ones less those let go (lingering)."""
        return len(self.connections) - self.leaving

    def let_go(self, conn: "_Connection") -> bool:
        """Whether ``conn`` ends after its answer, its client to reconnect to a worker holding fewer connections
        (see :class:`_Share`): one of the ``shed`` this worker holds over its share (checked again, as connections
        may have ended since the heartbeat), unless it closes anyway or a pipelined request of its own has begun
        to arrive."""
        if self.shed <= 0 or not conn.keep_alive or conn.parser.events or conn.parser.in_message:
            return False
        if self.share is not None and self.share.surplus(self.holding()) <= 0:
            self.shed = 0
            return False
        self.shed -= 1
        self.leaving += 1
        return True

    def forget(self, conn: "_Connection") -> None:
        if conn in self.connections and conn.released:
            self.leaving -= 1
        self.connections.discard(conn)
        if self.share is not None:
            self.share.publish(self.holding(), not self.stopping)
        if not self.connections:
            self.closed.set()


class _Connection:
    """One client connection on a non-blocking socket watched by the event loop. Requests are answered one after
    another, so pipelined requests get their responses in order (RFC 9112 section 9.3.2)."""

    def __init__(self, front: _FrontEnd, httptools: Any, sock: socket.socket, peer: Any):
        self.front = front
        self.parser = _Parser(httptools)
        self.responding = False  # an answer to the current request has begun (no error answer may follow)
        self.closing = False  # the last answer said Connection: close
        self.released = False  # ... because this worker let the connection go (see _Share)
        self.keep_alive = True  # the current request lets the connection stay open
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.waiter: Any = None  # what the request cycle waits on: more input, or the output drained
        self.out = bytearray()  # output the socket did not take yet
        self.shut_after_flush = False
        self.reading = False
        self.eof = False
        self.unparsed = 0
        self.lost = False
        self.counted = False  # the answer under way was counted with its batch's (_FrontEnd._record_batch)
        self.closed = False
        self.lingering = False
        self.held = 0
        self.phase = "idle"
        self.phase_since = time.monotonic()
        self.method = b""
        self.environ: dict | None = None  # the request being answered (its head), for the record of its answer
        self.began = 0.0  # when it arrived (perf_counter): its whole head, or its first byte for a bad head
        self.got = 0  # bytes of its body read
        self.base: dict | None = None  # the environ entries all its requests share
        sock.setblocking(False)
        front.connections.add(self)
        front.closed.clear()

    # -- socket events (all on the event loop's thread)

    def _read_on(self) -> None:
        if not self.reading and not self.eof and not self.closed:
            self.reading = True
            self.front.loop.add_reader(self.fd, self._readable)

    def _read_off(self) -> None:
        if self.reading:
            self.reading = False
            self.front.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        self._recv()

    def _recv(self) -> bool:
        """Read what the socket holds; False when it holds nothing yet."""
        try:
            data = self.sock.recv(READ_BLOCK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset by the client
            self._lose()
            return True
        if not data:  # end of stream; the write side stays open: a half-closed client may await its answer
            self.eof = True
            self._read_off()
            if not self.lingering:
                self.parser.receive_data(b"")
            self._wake(None)
            return True
        if not self.lingering:
            self.parser.receive_data(data)
            self.unparsed += len(data)
            if self.unparsed > HIGH_WATER:
                self._read_off()
        self._wake(None)
        return True

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lose()
            return
        del self.out[:sent]
        if not self.out:
            self.front.loop.remove_writer(self.fd)
            if self.shut_after_flush:
                self._shutdown_write()
            self._wake(None)

    def _lose(self) -> None:
        self.lost = True
        self._wake(_Gone())
        self.close()

    def _wake(self, error: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error) if error else self.waiter.set_result(None)

    def _shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._read_off()
        if self.out:
            self.front.loop.remove_writer(self.fd)
        self.sock.close()
        self.front.forget(self)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_since = time.monotonic()

    def abort(self) -> None:
        """Close now (eviction, or an idle connection at a graceful stop)."""
        self.lost = True
        self._wake(_Gone())
        self.close()

    # -- waiting with deadlines

    async def _wait(self, deadline: float) -> None:
        future = self.waiter = self.front.loop.create_future()
        handle = self.front.loop.call_at(deadline, lambda: future.done() or future.set_exception(_Timeout()))
        try:
            await future
        finally:
            handle.cancel()
            self.waiter = None

    async def _receive(self, deadline: float) -> None:
        """Wait until more bytes (or the end of the stream) arrive, at most until ``deadline``."""
        if self.lost:
            raise _Gone()
        if self.front.loop.time() >= deadline:
            raise _Timeout()
        self.unparsed = 0  # the parser has handed out every event: what it holds is at most a partial line
        # often the bytes are there already; while the socket is watched, its reader takes them as they come
        if not self.reading and not self.eof and not self.lingering and self._recv():
            if self.lost:
                raise _Gone()
            return
        self._read_on()
        await self._wait(deadline)

    async def _write(self, data: bytes) -> None:
        """Send ``data``; what the socket does not take at once is sent as the client reads, within the model
        timeout (a client that does not read its answers is dropped then)."""
        if self.lost or self.closed:
            raise _Gone()
        if not self.out:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lose()
                raise _Gone() from None
            if sent == len(data):
                return
            self.out += memoryview(data)[sent:]
            self.front.loop.add_writer(self.fd, self._writable)
        else:
            self.out += data
        deadline = self.front.loop.time() + self.front.timeout
        while self.out:
            await self._wait(deadline)

    # -- the request cycle

    async def serve(self) -> None:
        linger = False
        try:
            while True:
                request = await self._read_head()
                if request is None:
                    break
                if not await self._exchange(request):  # an error answer ended the connection
                    linger = not request.done
                    break
                if self.closing:
                    linger = self.front.stopping or self.released  # we close: the client may have sent more already
                    break
                if self.parser.events:  # pipelined: let other connections' ready work run before this one's next
                    await asyncio.sleep(0)
        except _Reject as r:  # a malformed or late head
            linger = await self._answer_error(r)
        except (_Gone, _Timeout, ConnectionError):
            pass
        except Exception as e:  # a bug here must not take the worker down, but it must be seen
            self.front.log.exception("artifact-tools serve: unexpected error on a connection")
            linger = await self._answer_error(_Reject(500, f"the server failed: {type(e).__name__}: {_sentence(e)}"))
        finally:
            self._release()
            await self._close(linger)

    async def _read_head(self) -> Any:
        """The next request's head, or None when the client closes (or stays idle) between requests."""
        loop, parser = self.front.loop, self.parser
        self.method = b""
        self.environ = None
        self.got = 0
        self.responding = False
        self.keep_alive = True
        self.began = time.perf_counter()  # for a bad head already buffered (pipelined); else its first byte's time
        self.set_phase("idle")
        deadline = loop.time() + KEEPALIVE_TIMEOUT
        while True:
            event = parser.next_event()  # (a malformed head raises its _Reject)
            if event is NEED_DATA:
                if self.front.stopping and self.phase == "idle":
                    return None
                try:
                    await self._receive(deadline)
                except _Timeout:
                    if self.phase == "idle":
                        return None  # nothing of a request arrived: just close
                    raise _Reject(408, f"the request head did not arrive within {self.front.read_timeout:g} "
                                       "seconds") from None
                if self.phase == "idle":  # the first bytes of a request: its whole head must follow in time
                    self.set_phase("head")
                    self.began = time.perf_counter()
                    deadline = loop.time() + self.front.read_timeout
                continue
            if isinstance(event, _Head):
                return event
            return None  # CLOSED between requests

    async def _exchange(self, request: Any) -> bool:
        """Answer one request; False when an error answer ended the connection."""
        front = self.front
        began = self.began = time.perf_counter()  # the request's arrival, for OverheadLatency and the access log
        self.counted = False
        self.method = request.method
        self.keep_alive = request.keep_alive
        headers: dict[bytes, bytes] = {}
        for name, value in request.headers:
            headers[name] = headers[name] + b"," + value if name in headers else value
        environ = self.environ = self._environ(request, headers)
        try:
            if b"transfer-encoding" in headers and b"content-length" in headers:
                raise _Reject(400, "a request must not carry both Transfer-Encoding and Content-Length")
            expect = headers.get(b"expect")
            if expect is not None and expect.strip().lower() != b"100-continue":
                raise _Reject(417, f"the expectation {expect.decode('latin-1')!r} is not supported; "
                                   "only 100-continue is")
            announced = int(headers[b"content-length"]) if b"content-length" in headers else None
            if announced is not None and announced > front.max_payload:  # before any 100 Continue (RFC 9110 10.1.1)
                raise _Reject(413, f"the body of {announced} bytes is over the {front.max_payload}-byte limit")
            if announced and front.held + announced > front.budget:
                raise _Reject(503, "the server is holding as many request bodies as it may; retry shortly",
                              (("Retry-After", "1"),))
            self.set_phase("body")
            if request.expect_continue and not request.body_seen and (announced or b"transfer-encoding" in headers):
                await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await self._read_body()
        except _Reject as r:
            await self._answer_error(r)
            return False
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        if environ["PATH_INFO"] == INVOCATIONS and environ["REQUEST_METHOD"] == "POST":
            self.set_phase("model")
            if hasattr(front.app, "prepare"):  # an endpoint routes (and may load a model) on the loop first
                await front.app.prepare(environ)
            lost = self  # a request whose client left while it waited is not predicted

            def job() -> tuple[int, list[tuple[str, str]], bytes]:
                if lost.lost:
                    return 499, [], b""
                return _call_wsgi(front.app, environ)

            try:
                if len(front.connections) == 1 and front.model.can_inline(len(body)):  # a lone client
                    status, response_headers, out = front.model.run(job)
                else:
                    status, response_headers, out = await front.model.submit(job, front.batch_of(environ), self)
            except Exception as e:  # _call_wsgi itself failed: the app answers its own errors with a status
                front.log.error("artifact-tools serve: the application failed: %s: %s", type(e).__name__, e)
                status, response_headers = 500, [("Content-Type", JSON)]
                out = _error_body(f"prediction failed: {type(e).__name__}: {_sentence(e)}")
        else:
            status, response_headers, out = _call_wsgi(front.app, environ)
        self._release()
        if self.lost:
            raise _Gone()
        if front.record is not None and not self.counted:  # an endpoint's metrics and access log
            front.record(environ, status, time.perf_counter() - began, len(body), len(out))
        self.environ = None
        self.set_phase("write")
        self.released = not front.stopping and front.let_go(self)
        await self._respond(request.method, status, response_headers, out, close=front.stopping or self.released)
        return True

    async def _read_body(self) -> bytes:
        front, loop, parser = self.front, self.front.loop, self.parser
        parts: list[bytes] = []
        got = since_yield = 0
        end = loop.time() + front.timeout
        while True:
            event = parser.next_event()  # (a malformed body raises its _Reject)
            if event is NEED_DATA:
                try:
                    await self._receive(min(end, loop.time() + front.read_timeout))
                except _Timeout:
                    raise _Reject(408, f"the request body did not arrive in time ({got} bytes came; a body may pause "
                                       f"for at most {front.read_timeout:g} s and take at most {front.timeout:g} s)"
                                  ) from None
                continue
            if isinstance(event, bytes):
                got += len(event)
                self.got = got
                if got > front.max_payload:
                    raise _Reject(413, f"the body is over the {front.max_payload}-byte limit")
                self.held += len(event)
                front.held += len(event)
                if front.held > front.budget:
                    raise _Reject(503, "the server is holding as many request bodies as it may; retry shortly",
                                  (("Retry-After", "1"),))
                parts.append(event)
                since_yield += len(event)
                if since_yield > HIGH_WATER:  # a fast large body must not keep the loop from other connections
                    since_yield = 0
                    await asyncio.sleep(0)
            elif event is END:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            else:  # (not reached: the end of the stream mid-body raises its _Reject)
                raise _Gone()

    def _release(self) -> None:
        self.front.held -= self.held
        self.held = 0

    def _environ(self, request: Any, headers: dict[bytes, bytes]) -> dict:
        """The WSGI environ (PEP 3333) of a request head; its body (``wsgi.input``, ``CONTENT_LENGTH``) is set
        once read."""
        target = request.target
        if target[:1] != b"/" and b"://" in target:  # absolute-form (RFC 9112 section 3.2.2): keep path and query
            # (origin-form starts with "/" and is kept whole: "/ping://x/invocations" is no way to /invocations)
            rest = target.split(b"://", 1)[1]
            cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
            target = rest[cut:] if rest[cut:cut + 1] == b"/" else b"/" + rest[cut:]
        path, _, query = target.partition(b"?")
        if b"%" in path:
            from urllib.parse import unquote_to_bytes

            path = unquote_to_bytes(path)
        if self.base is None:  # what every request of this connection shares
            self.base = {
                "SCRIPT_NAME": "",
                "SERVER_NAME": self.front.server_name[0],
                "SERVER_PORT": str(self.front.server_name[1]),
                "REMOTE_ADDR": self.peer[0] if self.peer else "",
                "REMOTE_PORT": str(self.peer[1]) if self.peer and len(self.peer) > 1 else "",
                "CONTENT_LENGTH": "0",
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": _NO_BODY,
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
            }
        environ = self.base.copy()
        environ["REQUEST_METHOD"] = request.method.decode("latin-1")
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version.decode("latin-1")
        keys = _ENVIRON_KEYS
        for name, value in headers.items():
            key = keys.get(name)
            if key is None:
                if b"_" in name or name in (b"content-length", b"transfer-encoding"):
                    continue  # underscores would alias dashes in the environ key
                key = name.decode("latin-1").upper().replace("-", "_")
                key = key if key == "CONTENT_TYPE" else "HTTP_" + key
                if len(keys) < 256:
                    keys[name] = key
            environ[key] = value.decode("latin-1")
        return environ

    async def _respond(self, method: bytes, status: int, headers: list, body: bytes, close: bool) -> None:
        """Send one answer: the app's fields (checked once, :func:`_check_fields`), ``Date``, and ``Connection:
        close`` when the connection ends after it (asked, an HTTP/1.0 client, a stop); no body for ``HEAD``."""
        self.responding = True
        fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        seen = _CHECKED_FIELDS
        fresh = [f for f in fields if f not in seen and (f[0] != b"Content-Length" or not f[1].isdigit())]
        if fresh:
            _check_fields(fresh)  # raises ValueError for a bad field: the connection's 500
            if len(seen) < 1024:  # (a Content-Length is checked by its digits, never kept)
                seen.update(fresh)
        phrase = _PHRASES.get(status)
        if phrase is None:
            try:
                phrase = HTTPStatus(status).phrase.encode()
            except ValueError:
                phrase = b""
        lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
        lines += [name + b": " + value for name, value in fields]
        if not any(name.lower() == b"content-length" for name, _ in fields):
            lines.append(b"Content-Length: %d" % len(body))
        lines.append(b"Date: " + _http_date())
        if close or not self.keep_alive:
            self.closing = True
            lines.append(b"Connection: close")
        lines.append(b"\r\n")
        data = b"\r\n".join(lines)
        if body and method != b"HEAD":
            data += body
        await self._write(data)

    async def _answer_error(self, r: _Reject) -> bool:
        """Send an error answer that ends the connection; True when the client may still be sending."""
        if self.lost or self.responding:
            return False
        body = _error_body(r.message)
        headers = [("Content-Type", JSON), ("Content-Length", str(len(body))), *r.headers]
        if self.front.record is not None:  # refused before (or instead of) the app: counted all the same
            environ = self.environ
            if environ is None:  # a malformed or late head: what is known of it
                environ = {"REQUEST_METHOD": self.method.decode("latin-1"), "PATH_INFO": "",
                           "REMOTE_ADDR": self.peer[0] if self.peer else "",
                           "REMOTE_PORT": str(self.peer[1]) if self.peer and len(self.peer) > 1 else ""}
            self.environ = None
            self.front.record(environ, r.status, time.perf_counter() - self.began, self.got, len(body))
        try:
            await self._respond(self.method, r.status, headers, body, close=True)
        except (_Gone, _Timeout, ConnectionError):
            return False
        return True

    async def _close(self, linger: bool) -> None:
        """Close, first half-closing and reading on for a moment when the client may still be sending, so that
        closing with unread input does not reset the connection before it reads the answer (RFC 9112 section
        9.6)."""
        if self.closed:
            return
        if linger and not self.lost:
            self.lingering = True
            if self.out:
                self.shut_after_flush = True
            else:
                self._shutdown_write()
            end = self.front.loop.time() + LINGER
            try:
                while not self.eof:  # until the client's end of stream, or LINGER seconds
                    await self._receive(end)
            except (_Gone, _Timeout):
                pass
        self.close()


# ---------------------------------------------------------------------------------------------------- gunicorn worker

def _new_loop() -> asyncio.AbstractEventLoop:
    """The worker's event loop: uvloop's (libuv, in C) when it is installed, else asyncio's own; made directly, so
    the process's event loop policy stays as it is."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _worker_class(base: Any, httptools: Any, max_payload: int, max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
                  ) -> type:
    """A gunicorn worker class (``base`` is ``gunicorn.workers.base.Worker``) that runs :class:`_FrontEnd`."""

    share = _Share()  # made in the master, inherited by every worker

    class EventLoopWorker(base):
        """Loads the model once (per process), then serves with one event loop and one model thread.

        gunicorn's master still does what it did for the sync workers: it forks the workers, replaces one that
        dies or stops sending heartbeats for ``timeout`` seconds (this worker stops sending them while a single
        prediction has run longer than that), and stops them gracefully on SIGTERM. The workers spread the
        connections among themselves (:class:`_Share`)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:  # in the master, before the fork
            super().__init__(*args, **kwargs)
            self.share_slot = share.assign(self)

        def init_process(self) -> None:
            # before anything loads a framework in this process (the master never does): OpenMP runtimes
            # (libgomp/libomp under XGBoost, scikit-learn, PyTorch) read these when they start
            self.threads = threads_per_worker(self.cfg.workers)
            size_worker_process(self.threads)
            super().init_process()

        def load_wsgi(self) -> None:
            done = threading.Event()

            def heartbeat() -> None:  # loading can take longer than the timeout; the master must not kill us
                while not done.wait(1.0):
                    self.notify()

            threading.Thread(target=heartbeat, name="load-heartbeat", daemon=True).start()
            try:
                super().load_wsgi()
            finally:
                done.set()

        def run(self) -> None:
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(loop))
            finally:
                loop.close()

        async def _serve(self, loop: Any) -> None:
            limit_pools(self.threads)  # for predictions run on the loop (OpenMP's limit is per thread)
            # what the worker holds now (the server, the models loaded at start) lives as long as the worker: later
            # collections of the garbage collector skip it (a cold multi-model load spent 0.21 s in collections
            # scanning these objects, against 0.09 s for the same load in a bare interpreter); an endpoint lets go
            # of this when a variant loaded at start is removed (EndpointApp._routes)
            gc.freeze()
            model = _ModelThread(loop, self.threads, max_batch_rows)
            timeout = self.cfg.timeout  # (self.timeout is half of it: gunicorn's hint for how often to notify)
            front = _FrontEnd(self.wsgi, loop, model, max_payload=max_payload, timeout=timeout,
                              log=self.log, server_name=self.sockets[0].getsockname()[:2])
            self.log.info("Worker %s: model loaded; predictions use %d thread(s)", os.getpid(), self.threads)
            share.slot = self.share_slot
            front.share = share
            share.publish(0)
            listeners = [s.sock for s in self.sockets]
            limit = MAX_CONNECTIONS
            try:
                import resource

                limit = max(16, min(limit, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64))
            except (ImportError, ValueError, OSError):
                pass
            watching: set[int] = set()
            tasks: set[Any] = set()
            stop = asyncio.Event()
            deferring: dict[int, float] = {}  # listener -> since when it has been left to the other workers

            def watch(listener: socket.socket) -> None:
                if not front.stopping and listener.fileno() not in watching:
                    watching.add(listener.fileno())
                    loop.add_reader(listener.fileno(), accept, listener)

            def unwatch(listener: socket.socket) -> None:
                if listener.fileno() in watching:
                    watching.discard(listener.fileno())
                    loop.remove_reader(listener.fileno())

            def look_again(listener: socket.socket) -> None:
                waiting = select.poll()
                waiting.register(listener.fileno(), select.POLLIN)
                if not waiting.poll(0):  # another worker took them: that wait is over
                    deferring.pop(listener.fileno(), None)
                watch(listener)

            def accept(listener: socket.socket) -> None:
                for _ in range(ACCEPT_BATCH):
                    if front.stopping:
                        return
                    if share.over(front.holding()):  # let a worker with fewer connections take it
                        since = deferring.setdefault(listener.fileno(), time.monotonic())
                        if time.monotonic() - since < SHARE_WAIT:
                            unwatch(listener)
                            loop.call_later(SHARE_RETRY, look_again, listener)
                            return
                        # the others left them waiting too long: accept until none waits
                    else:
                        deferring.pop(listener.fileno(), None)
                    if len(front.connections) >= limit and not front.evict_one():
                        unwatch(listener)  # every connection is busy with the model: accept when one ends
                        loop.call_later(0.05, accept, listener)
                        return
                    try:
                        sock, peer = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        deferring.pop(listener.fileno(), None)
                        break
                    except OSError as e:  # out of file descriptors or buffers: back off, the other worker serves
                        self.log.warning("Worker %s: accept failed (%s); pausing for 0.5 s", os.getpid(), e)
                        unwatch(listener)
                        loop.call_later(0.5, watch, listener)
                        return
                    if sock.family in (socket.AF_INET, socket.AF_INET6):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    task = loop.create_task(_Connection(front, httptools, sock, peer).serve())
                    share.publish(front.holding())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                watch(listener)

            wake_fd = self.PIPE[0]  # gunicorn's signal handlers write here (signal.set_wakeup_fd)

            def woken() -> None:
                try:
                    while os.read(wake_fd, 512):
                        pass
                except (BlockingIOError, OSError):
                    pass
                if not self.alive:
                    stop.set()

            loop.add_reader(wake_fd, woken)
            for listener in listeners:
                listener.setblocking(False)
                watch(listener)
            tick = max(0.1, min(1.0, timeout / 4))
            finished = model.finished
            reported = None
            while self.alive:
                # heartbeat while the model is idle or has finished a prediction since the last tick: a single
                # prediction running longer than the timeout gets this worker replaced, as a sync worker would be
                busy_since = model.busy_since
                share.publish(front.holding())
                front.shed = share.surplus(front.holding())
                if busy_since is None or model.finished != finished:
                    self.notify()
                elif busy_since != reported and time.monotonic() - busy_since > timeout / 2:
                    self.log.warning("Worker %s: a prediction has run for %.0f s; the worker is replaced at %s s",
                                     os.getpid(), time.monotonic() - busy_since, timeout)
                    reported = busy_since
                finished = model.finished
                if self.ppid != os.getppid():
                    self.log.info("Worker %s: the master is gone; stopping", os.getpid())
                    break
                try:  # a signal wakes the loop through wake_fd
                    await asyncio.wait_for(stop.wait(), timeout=tick)
                except asyncio.TimeoutError:
                    pass
            # graceful stop: no new connections; requests under way finish within graceful_timeout
            for listener in listeners:
                unwatch(listener)
            front.stop()
            share.publish(front.holding(), serving=False)
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while front.connections and time.monotonic() < deadline:
                self.notify()
                try:
                    await asyncio.wait_for(front.closed.wait(), timeout=0.2)
                except asyncio.TimeoutError:
                    front.stop()  # connections that finished a request meanwhile and went idle
            for conn in list(front.connections):
                conn.abort()
            if tasks:  # let the aborted connections finish their coroutines
                await asyncio.wait(set(tasks), timeout=1.0)
            model.stop()
            close = getattr(self.wsgi, "close", None)
            if close is not None:  # data capture: what is queued is written
                try:
                    close()
                except Exception as e:  # noqa: BLE001 - a stop must finish
                    self.log.warning("Worker %s: closing the app failed: %s", os.getpid(), _sentence(e))
            for listener in listeners:
                listener.close()
            loop.remove_reader(wake_fd)

    return EventLoopWorker


# ---------------------------------------------------------------------------------------------------- server

_CHECK_CODE = ("import sys; sys.path.append(sys.argv[1]); from artifact_tools.serve import _report_loads; "
               "_report_loads(sys.argv[2], sys.argv[3], int(sys.argv[4]))")


def _report_loads(artifacts_json: str, trust_json: str, fd: int) -> None:
    """Child side of :func:`check_loadable`: load each artifact once, write the outcomes as JSON to ``fd``."""
    import loaders

    outcome: dict = {"frameworks": {}}
    try:
        for artifact in json.loads(artifacts_json):
            outcome["frameworks"][artifact] = loaders.load(artifact, trust=json.loads(trust_json)).framework
    except ArtifactError as e:
        outcome = {"error": str(e)}
    except Exception as e:
        outcome = {"internal": f"{type(e).__name__}: {_sentence(e)}"}
    with os.fdopen(fd, "w") as f:
        json.dump(outcome, f)


def check_loadable(artifacts: list[str], trust: bool | str) -> dict[str, str]:
    """Load every artifact once in a fresh interpreter (audited as any load is) before anything listens: a bad one
    fails with its loader's sentence. Returns each artifact's framework (used by ``serve`` and the endpoint)."""
    if not artifacts:
        return {}
    project = str(Path(__file__).resolve().parent.parent)
    what = ", ".join(artifacts)
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _CHECK_CODE, project, json.dumps(artifacts),
                                 json.dumps(trust), str(write_end)], pass_fds=(write_end,), stdin=subprocess.DEVNULL)
    finally:
        os.close(write_end)
    with os.fdopen(read_end) as f:
        answer = f.read()
    code = proc.wait()
    try:
        outcome = json.loads(answer)
    except ValueError:
        raise ArtifactError(f"loading {what} crashed the loading process (exit status {code})") from None
    if "error" in outcome:
        raise ArtifactError(outcome["error"])
    if "internal" in outcome:
        raise RuntimeError(f"loading {what} failed: {outcome['internal']}")
    return outcome["frameworks"]


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except (OSError, OverflowError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ArtifactError(f"cannot listen on {host}:{port} ({reason})") from None


def _timeout_from_env() -> int:
    raw = os.environ.get("SAGEMAKER_MODEL_SERVER_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ArtifactError(f"SAGEMAKER_MODEL_SERVER_TIMEOUT must be a whole number of seconds, not {raw!r}")
    return value


def _gunicorn_app(options: dict, factory: Callable[[], Callable]) -> Any:
    """The gunicorn application: each worker serves the WSGI app ``factory()`` makes (an endpoint,
    :mod:`artifact_tools.endpoint`), after the fork."""
    from loaders.base import require

    application: Any = require("gunicorn.app.base", "serve").BaseApplication

    class Server(application):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # settings an older gunicorn lacks are skipped
                    self.cfg.set(key, value)

        def load(self) -> Callable:  # in each worker process, after the fork
            return factory()

    return Server()


def run(artifact: str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 2, trust: bool | str = False,
        max_payload: int = DEFAULT_MAX_PAYLOAD, timeout: int | None = None, capture: dict | None = None,
        access_log: str | None = None, max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS) -> int:
    """Check that ``artifact`` loads, then serve it on ``host:port`` with ``workers`` gunicorn processes until
    SIGTERM/SIGINT; returns the exit status (0 after a clean stop). A bad artifact, port or setting raises
    :class:`ArtifactError` before anything listens. ``timeout``: seconds one request may take before its worker
    is replaced (default ``$SAGEMAKER_MODEL_SERVER_TIMEOUT`` or 60). ``capture``: data capture settings
    (``{"dest": folder or fsspec URI, "endpoint": name, "percent": 0-100, "modes": "Input,Output"}``): each
    worker writes SageMaker capture files under ``dest/endpoint/AllTraffic/`` (:mod:`artifact_tools.capture`),
    closed when it stops. ``access_log``: a file (or ``-``, standard output) that gets one JSON line per request.
    ``max_batch_rows``: rows one batched prediction takes at most (requests that arrive while the model is busy
    are predicted together, :class:`_ModelThread`); 0 turns batching off.

    The model is served as an endpoint of one production variant, ``AllTraffic`` (what the SageMaker Python SDK
    names a single model's variant), so ``/metrics`` and the access log are those of
    :func:`artifact_tools.endpoint.run`."""
    from . import endpoint

    spec = endpoint.single_model(str(artifact))
    return endpoint.run(spec, host=host, port=port, workers=workers, trust=trust, max_payload=max_payload,
                        timeout=timeout, capture=capture, access_log=access_log, max_batch_rows=max_batch_rows)
