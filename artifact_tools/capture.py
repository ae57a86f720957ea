"""Data capture in SageMaker's format: what an endpoint received and answered, one JSON line per invocation.

The format, as SageMaker's data capture writes it (developer guide "Capture data from real-time endpoint",
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html, and the captured files
shown in the Model Monitor example notebooks of aws/amazon-sagemaker-examples, e.g. ``sagemaker_model_monitor/
introduction``; the API's ``DataCaptureConfig`` / ``CaptureContentTypeHeader`` for the settings):

- one record per line (JSON Lines)::

      {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                          "data": "5,3.2,1", "encoding": "CSV"},
                       "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                          "data": "[0.93]", "encoding": "JSON"}},
       "eventMetadata": {"eventId": "<uuid4>", "inferenceTime": "2020-07-30T13:36:30Z"},
       "eventVersion": "0"}

- ``observedContentType`` is the request's ``Content-Type`` (or the response's); ``mode`` is ``INPUT`` or
  ``OUTPUT``; ``encoding`` says how ``data`` holds the body: ``CSV`` or ``JSON`` (the body as text) for the
  content types listed in ``CaptureContentTypeHeader.CsvContentTypes`` / ``JsonContentTypes``, ``BASE64``
  otherwise ("If no headers are specified SageMaker AI will by default base64 encode", ``DataCaptureConfig``).
  Here CSV means ``text/csv`` and JSON ``application/json`` and the JSON Lines types, as the SageMaker Python SDK's
  ``DataCaptureConfig`` lists them by default; a body that is not UTF-8 text is written as BASE64 whatever its type.
- ``eventMetadata.eventId`` is a UUID per invocation; ``inferenceTime`` is UTC, ISO 8601 with a ``Z``;
  ``eventVersion`` is ``"0"`` (the only version SageMaker has written).
- ``CaptureOptions`` modes are ``Input`` and ``Output`` (``CaptureOption.CaptureMode``); a record holds
  ``endpointInput``, ``endpointOutput`` or both. ``InitialSamplingPercentage`` (0-100) is the share of invocations
  captured.
- files live under ``{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh/`` (UTC hour of the records) and are named
  ``{minute}-{second}-{millisecond}-{uuid}.jsonl`` after the file's first record, e.g.
  ``AllTraffic/2020/03/11/12/32-18-648-cee08c3a-02ce-4790-b8ba-3173cfc12813.jsonl`` (the capture key in
  aws-samples' Model Monitor examples); a new file starts with each hour.

:class:`CaptureWriter` writes this format to a folder or an fsspec URI (``s3://bucket/prefix``) from a background
thread behind a bounded queue: :meth:`CaptureWriter.capture` never blocks and never raises; a record that does not
fit in the queue, or cannot be written, is dropped and counted (``.dropped``). Several processes may write to the
same destination (each file name carries a fresh UUID). A local file holds only whole lines after every drained
batch (each line is written in one call and flushed); an object on a remote store appears when its file is closed
(at the hour's end and at :meth:`CaptureWriter.close`).

:func:`read_capture` walks capture files and yields the records of a time window; :func:`observed_rows` rebuilds
the dataset the endpoint received (CSV rows as their cells, JSON rows and objects) from the ``INPUT`` side. A
truncated file, a line that is not JSON, a record of another ``eventVersion`` or with its fields missing is one
sentence (:class:`CaptureError`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as _dt
import io
import json
import logging
import os
import queue
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .errors import ArtifactError

__all__ = ["CaptureError", "CaptureWriter", "EVENT_VERSION", "Record", "observed_rows", "parse_time",
           "read_capture"]

log = logging.getLogger(__name__)

EVENT_VERSION = "0"
CSV_TYPES = ("text/csv",)
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines", "application/jsonl")
MODES = {"input": "INPUT", "output": "OUTPUT"}
MAX_LINE = 64 * 1024 * 1024  # bytes of one capture line read (a 6 MB payload is 8 MB in base64; both sides fit)
_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


def add_capture_flags(parser: Any, *, unit: str, variant: str, default_endpoint: str) -> None:
    """The data-capture flags of ``serve`` and ``transform`` on ``parser`` (an argparse parser or group):
    ``--capture``, ``--capture-percent``, ``--capture-modes``, ``--endpoint-name``. ``unit`` names what one record
    is ("invocation", "mini-batch"), ``variant`` the variant folder in the capture path."""
    parser.add_argument("--capture", metavar="DIR_OR_PREFIX", default=None,
                        help=f"write the request and answer of every {unit} as SageMaker capture files under "
                             f"DIR_OR_PREFIX/ENDPOINT/{variant}/yyyy/mm/dd/hh/ (a folder or fsspec URI)")
    parser.add_argument("--capture-percent", type=float, default=100.0, metavar="PERCENT",
                        help=f"share of {unit}s captured, 0-100 (default 100)")
    parser.add_argument("--capture-modes", default="Input,Output", metavar="MODES",
                        help="what is captured: Input, Output or both (default Input,Output)")
    parser.add_argument("--endpoint-name", default=default_endpoint, metavar="NAME",
                        help=f"the endpoint's name in the capture path (default {default_endpoint})")


class CaptureError(ArtifactError):
    """Capture files that cannot be read: truncated, not JSON, another event version, fields missing."""


# ============================================================================================== writing

def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _side(body: bytes | str | None, content_type: str | None, mode: str, csv_types, json_types) -> dict:
    """One ``endpointInput``/``endpointOutput`` object (see the module notes for the encoding rule)."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    media = _media(content_type)
    encoding = "CSV" if media in csv_types else "JSON" if media in json_types else "BASE64"
    data = None
    if encoding != "BASE64":
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(raw).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": data, "encoding": encoding}


def _parse_modes(modes: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = [m for m in re.split(r"[,\s]+", modes) if m]
    out: list[str] = []
    for m in modes:
        key = m.strip().lower()
        if key in ("inputandoutput", "both"):
            out += ["INPUT", "OUTPUT"]
        elif key in MODES:
            out.append(MODES[key])
        else:
            raise CaptureError(f"capture mode {m!r} is not Input, Output or InputAndOutput")
    if not out:
        raise CaptureError("at least one capture mode (Input, Output) is needed")
    return tuple(dict.fromkeys(out))


class CaptureWriter:
    """Capture invocations in SageMaker's format under ``dest`` (a folder or fsspec URI).

    ``endpoint`` and ``variant`` name the folders (SageMaker: the endpoint name and the production variant,
    ``AllTraffic`` by default); ``percent`` is the sampling percentage (0-100); ``modes`` the sides captured
    (``"Input,Output"``, ``["Input"]``...). ``queue_size`` records wait at most for the writer thread; beyond that
    :meth:`capture` drops the record and counts it. Use as a context manager or call :meth:`close`.
    Counters: ``captured`` (written), ``dropped`` (queue full or write failure), ``sampled_out`` (not chosen).
    """

    def __init__(self, dest: str | os.PathLike, endpoint: str = "local-endpoint", variant: str = "AllTraffic",
                 percent: float = 100.0, modes: Iterable[str] | str = ("Input", "Output"), *,
                 queue_size: int = 1000, csv_types: Iterable[str] = CSV_TYPES,
                 json_types: Iterable[str] = JSON_TYPES, storage_options: dict | None = None):
        import fsspec

        try:
            percent = float(percent)
        except (TypeError, ValueError):
            raise CaptureError(f"the capture percentage must be a number from 0 to 100, not {percent!r}") from None
        if not 0 <= percent <= 100:
            raise CaptureError(f"the capture percentage must be from 0 to 100, not {percent:g}")
        for what, name in (("endpoint", endpoint), ("variant", variant)):
            if not name or "/" in name or name in (".", ".."):
                raise CaptureError(f"the {what} name {name!r} cannot be a folder name")
        self.modes = _parse_modes(modes)
        self.percent = percent
        self.endpoint, self.variant = endpoint, variant
        self._csv = tuple(_media(t) for t in csv_types)
        self._json = tuple(_media(t) for t in json_types)
        try:
            self._fs, root = fsspec.core.url_to_fs(str(dest), **(storage_options or {}))
        except (ValueError, ImportError) as e:
            raise CaptureError(f"capture destination {dest}: {e}") from None
        self._local = "file" in (self._fs.protocol if isinstance(self._fs.protocol, tuple) else (self._fs.protocol,))
        self.root = root.rstrip("/") or root
        self.captured = 0
        self.dropped = 0
        self.sampled_out = 0
        self._count_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self._file: Any = None
        self._file_hour: tuple | None = None
        self.files: list[str] = []  # every file this writer started, in order
        self._warned = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="artifact-tools-capture", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the request path: cheap, never raises
    def capture(self, request_body: bytes | str | None, request_type: str | None,
                response_body: bytes | str | None = None, response_type: str | None = None, *,
                event_id: str | None = None, inference_time: _dt.datetime | None = None) -> bool:
        """Queue one invocation (sampled at ``percent``); True when queued. Never blocks, never raises."""
        try:
            if self._closed:
                self._count("dropped")
                return False
            if self.percent < 100 and random.random() * 100 >= self.percent:
                self._count("sampled_out")
                return False
            when = inference_time or _dt.datetime.now(_dt.timezone.utc)
            self._queue.put_nowait((request_body, request_type, response_body, response_type,
                                    event_id or str(uuid.uuid4()), when))
            return True
        except queue.Full:
            self._count("dropped")
            return False
        except Exception:  # noqa: BLE001 - capture must never fail a request
            self._count("dropped")
            return False

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + n)

    @property
    def metrics(self) -> dict:
        """Counters for a metrics endpoint: captured, dropped, sampled out, waiting in the queue."""
        return {"captured": self.captured, "dropped": self.dropped, "sampled_out": self.sampled_out,
                "queued": self._queue.qsize()}

    # ------------------------------------------------------------------ the writer thread
    def record(self, request_body, request_type, response_body, response_type, event_id: str,
               when: _dt.datetime) -> dict:
        """The capture record of one invocation (the JSON object written as one line)."""
        data: dict = {}
        if "INPUT" in self.modes:
            data["endpointInput"] = _side(request_body, request_type, "INPUT", self._csv, self._json)
        if "OUTPUT" in self.modes:
            data["endpointOutput"] = _side(response_body, response_type, "OUTPUT", self._csv, self._json)
        return {"captureData": data,
                "eventMetadata": {"eventId": event_id, "inferenceTime": format_time(when)},
                "eventVersion": EVENT_VERSION}

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            self._write([b for b in batch if b is not None])
            if stop:
                self._close_file()
            for _ in batch:
                self._queue.task_done()
            if stop:
                return

    def _write(self, batch: list) -> None:
        written = 0
        for request_body, request_type, response_body, response_type, event_id, when in batch:
            try:
                when = when.astimezone(_dt.timezone.utc) if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
                line = (json.dumps(self.record(request_body, request_type, response_body, response_type,
                                               event_id, when), separators=(",", ":")) + "\n").encode("utf-8")
                f = self._file_for(when)
                f.write(line)
                written += 1
            except Exception as e:  # noqa: BLE001 - a full disk or a lost bucket drops records, never requests
                self._count("dropped")
                if not self._warned:
                    self._warned = True
                    log.warning("data capture to %s failed, records are being dropped: %s: %s", self.root,
                                type(e).__name__, e)
                self._close_file()
        try:
            if self._file is not None:
                self._file.flush()
        except Exception:  # noqa: BLE001
            pass
        if written:
            self._count("captured", written)

    def _file_for(self, when: _dt.datetime):
        hour = (when.year, when.month, when.day, when.hour)
        if self._file is not None and hour == self._file_hour:
            return self._file
        self._close_file()
        folder = "/".join([self.root, self.endpoint, self.variant, f"{when.year:04d}", f"{when.month:02d}",
                           f"{when.day:02d}", f"{when.hour:02d}"])
        name = f"{when.minute:02d}-{when.second:02d}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        path = f"{folder}/{name}"
        if self._local:
            os.makedirs(folder, exist_ok=True)
            self._file = open(path, "ab")
        else:
            self._fs.makedirs(folder, exist_ok=True)
            self._file = self._fs.open(path, "wb")
        self._file_hour = hour
        self.files.append(path)
        return self._file

    def _close_file(self) -> None:
        f, self._file, self._file_hour = self._file, None, None
        if f is not None:
            try:
                f.close()
            except Exception as e:  # noqa: BLE001
                log.warning("closing capture file failed: %s: %s", type(e).__name__, e)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is written (True), or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, close the current file, stop the thread."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_time(when: _dt.datetime) -> str:
    """``inferenceTime`` as SageMaker writes it: UTC, seconds, ``Z``."""
    when = when.astimezone(_dt.timezone.utc) if when.tzinfo else when
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | _dt.datetime | None, what: str = "time") -> _dt.datetime | None:
    """An ISO 8601 time (``Z`` or an offset; no zone means UTC) as an aware UTC datetime; None stays None."""
    if value is None or isinstance(value, _dt.datetime):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise CaptureError(f"the {what} {value!r} is not an ISO 8601 time such as 2024-05-01T13:00:00Z") from None
    return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(_dt.timezone.utc)


# ============================================================================================== reading

@dataclass
class Record:
    """One captured invocation: its id, time, and each captured side as ``(content type, body bytes)``."""

    event_id: str
    time: _dt.datetime
    input: tuple[str, bytes] | None
    output: tuple[str, bytes] | None
    source: str
    line: int


def _capture_files(capture: str, storage_options: dict | None) -> tuple[Any, list[str]]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(str(capture), **(storage_options or {}))
    except (ValueError, ImportError) as e:
        raise CaptureError(f"capture location {capture}: {e}") from None
    try:
        if fs.isfile(root):
            return fs, [root]
        if not fs.isdir(root):
            raise CaptureError(f"capture location {capture} does not exist")
        files = sorted(p for p in fs.find(root) if p.endswith(".jsonl"))
    except OSError as e:
        raise CaptureError(f"capture location {capture} cannot be listed: {e}") from None
    return fs, files


def _hour_of(path: str) -> _dt.datetime | None:
    m = _HOUR_PATH.search(path)
    if not m:
        return None
    try:
        year, month, day, hour = (int(g) for g in m.groups())
        return _dt.datetime(year, month, day, hour, tzinfo=_dt.timezone.utc)
    except ValueError:
        return None


def _decode_side(side: Any, where: str) -> tuple[str, bytes]:
    if not isinstance(side, dict) or "data" not in side or "encoding" not in side:
        raise CaptureError(f"{where} has no data/encoding fields (not a SageMaker capture record)")
    data, encoding = side.get("data"), str(side.get("encoding", "")).upper()
    if not isinstance(data, str):
        raise CaptureError(f"{where} holds data that is not a string")
    if encoding == "BASE64":
        try:
            body = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise CaptureError(f"{where} says BASE64 but its data is not base64") from None
    elif encoding in ("CSV", "JSON"):
        body = data.encode("utf-8")
    else:
        raise CaptureError(f"{where} has encoding {side.get('encoding')!r}, not CSV, JSON or BASE64")
    return str(side.get("observedContentType") or ""), body


def _parse_record(text: bytes, where: str, source: str, line: int) -> Record:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CaptureError(f"{where} is not JSON ({e})") from None
    if not isinstance(doc, dict) or "captureData" not in doc:
        raise CaptureError(f"{where} is not a SageMaker capture record (no captureData)")
    version = doc.get("eventVersion")
    if str(version) != EVENT_VERSION:
        raise CaptureError(f"{where} has eventVersion {version!r}; only SageMaker's eventVersion "
                           f"{EVENT_VERSION!r} is understood")
    meta = doc.get("eventMetadata")
    if not isinstance(meta, dict) or "inferenceTime" not in meta:
        raise CaptureError(f"{where} has no eventMetadata.inferenceTime")
    when = parse_time(meta["inferenceTime"], f"inferenceTime of {where}")
    if when is None:  # a JSON null
        raise CaptureError(f"{where} has no eventMetadata.inferenceTime")
    data = doc["captureData"]
    if not isinstance(data, dict):
        raise CaptureError(f"{where} has a captureData that is not an object")
    inp = _decode_side(data["endpointInput"], f"{where} endpointInput") if "endpointInput" in data else None
    out = _decode_side(data["endpointOutput"], f"{where} endpointOutput") if "endpointOutput" in data else None
    return Record(str(meta.get("eventId", "")), when, inp, out, source, line)


def read_capture(capture: str | os.PathLike, start: str | _dt.datetime | None = None,
                 end: str | _dt.datetime | None = None, *,
                 storage_options: dict | None = None) -> Iterator[Record]:
    """The records under ``capture`` (a capture file, or a folder/fsspec prefix searched for ``*.jsonl``) whose
    ``inferenceTime`` is in ``[start, end)``. Files in ``yyyy/mm/dd/hh`` folders outside the window are skipped
    unread. Raises :class:`CaptureError` for a truncated file, a line that is not a capture record, another
    ``eventVersion``."""
    start, end = parse_time(start, "start time"), parse_time(end, "end time")
    if start and end and start >= end:
        raise CaptureError(f"the window is empty: start {format_time(start)} is not before end {format_time(end)}")
    fs, files = _capture_files(str(capture), storage_options)
    for path in files:
        hour = _hour_of(path)
        if hour is not None and ((start and hour + _dt.timedelta(hours=1) <= start) or (end and hour >= end)):
            continue
        name = path.rsplit("/", 1)[-1]
        try:
            with fs.open(path, "rb") as f:
                number = 0
                while True:
                    raw = f.readline(MAX_LINE + 1)
                    if not raw:
                        break
                    number += 1
                    where = f"capture file {name} line {number}"
                    if len(raw) > MAX_LINE:
                        raise CaptureError(f"{where} is longer than {MAX_LINE} bytes")
                    if not raw.endswith(b"\n"):
                        try:
                            json.loads(raw)
                        except ValueError:
                            raise CaptureError(f"capture file {name} is truncated: its last line ({number}) "
                                               "ends in the middle of a record") from None
                    if not raw.strip():
                        continue
                    record = _parse_record(raw, where, path, number)
                    if (start and record.time < start) or (end and record.time >= end):
                        continue
                    yield record
        except OSError as e:
            raise CaptureError(f"capture file {name} cannot be read: {e}") from None


# ============================================================================================== the observed dataset

def _cell(value: Any) -> str | None:
    """A JSON value as the text a CSV cell would hold (null stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value if isinstance(value, str) else repr(value)
    return json.dumps(value, separators=(",", ":"))


def _json_rows(doc: Any) -> list:
    """Rows of a JSON body: a list of rows, one flat row, ``{"instances": [...]}``, an object (one named row)."""
    if isinstance(doc, dict):
        if set(doc) == {"instances"} or "instances" in doc and isinstance(doc["instances"], list):
            return _json_rows(doc["instances"])
        return [doc]
    if isinstance(doc, list):
        if not doc:
            return []
        if all(isinstance(r, (list, dict)) for r in doc):
            return doc
        return [doc]
    return [[doc]]


def rows_of_body(content_type: str, body: bytes) -> tuple[str, list] | None:
    """``("csv", rows of cells)`` or ``("json", rows: lists or objects)`` for a CSV/JSON/JSON Lines body;
    None for any other type (images, .npy...)."""
    media = _media(content_type)
    if media not in CSV_TYPES and media not in JSON_TYPES:
        return None
    text = body.decode("utf-8-sig")
    if media in CSV_TYPES:
        return "csv", [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if media == "application/json":
        return "json", _json_rows(json.loads(text))
    if media in JSON_TYPES:
        return "json", [r for line in text.splitlines() if line.strip() for r in _json_rows(json.loads(line))]
    return None


def observed_rows(records: Iterable[Record], side: str = "input",
                  skipped: list | None = None) -> Iterator[tuple[str, list]]:
    """``(kind, row)`` for every row of every captured body (``side``: ``input`` or ``output``): ``("csv",
    [cells])`` or ``("json", list or dict)``. Bodies of other types, or that do not parse, are skipped and
    logged; each skipped record is appended to ``skipped`` (a list) when given."""
    for record in records:
        part = record.input if side == "input" else record.output
        if part is None:
            continue
        try:
            got = rows_of_body(*part)
        except (ValueError, UnicodeDecodeError, RecursionError, csv.Error) as e:
            log.warning("%s line %d: the %s body does not parse (%s); skipped", record.source.rsplit("/", 1)[-1],
                        record.line, side, e)
            got = None
        if got is None:
            if skipped is not None:
                skipped.append(record)
            continue
        kind, rows = got
        for row in rows:
            yield kind, row
