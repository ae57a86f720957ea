"""Offline scoring with SageMaker Batch Transform's semantics: ``artifact-tools transform`` and :func:`transform`.

The parameters mean what they mean in SageMaker's ``CreateTransformJob`` (API reference: ``TransformInput``,
``TransformOutput``, ``DataProcessing``; developer guide "Associate Prediction Results with Input Records",
https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html; the SageMaker Python SDK's
``Transformer.transform`` names the same fields in snake case):

- INPUT is one file, a folder or fsspec prefix (every object under it, as an ``S3Prefix`` data source), or a
  SageMaker manifest file (``ManifestFile``: a JSON list ``[{"prefix": "s3://b/p/"}, "rel1", "rel2", ...]``, each
  entry an object under the prefix; a file is taken for a manifest only when it begins ``[{"prefix":``, and an
  entry named twice, a folder, or a path leaving the prefix is refused). Local inputs must be regular files (a FIFO
  would be waited on forever). OUTPUT receives ``<relative path>.out`` per input object (SageMaker appends
  ``.out`` to the input's key) and ``transform-summary.json``; when OUTPUT is (inside) an input folder, the files a
  job writes there (``*.out``, the summary) are not inputs of the next run.
- ``split_type`` (``TransformInput.SplitType``, default ``None``: "The default value for SplitType is None, which
  indicates that input data files are not split, and request payloads contain the entire contents of an input
  object", API reference ``TransformInput``): ``None`` sends each whole object as one request; ``Line`` splits it
  at newlines; ``RecordIO`` at MXNet RecordIO record boundaries; ``TFRecord`` at TFRecord record boundaries.
- ``strategy`` (``BatchStrategy``): ``SingleRecord`` sends one record per request, ``MultiRecord`` as many as fit
  in ``max_payload_mb``; it applies only when objects are split. (With ``Line`` and a row-wise model, consecutive
  single records are predicted in one call and each record's response cut out of it: the response it gets alone.)
  The API reference states no default
  (``CreateTransformJob``: "Required: No"; the SDK's ``Transformer(strategy=None)`` leaves it out, and SageMaker
  then asks the container's optional ``GET /execution-parameters``); ours is ``MultiRecord``, the strategy the API
  reference describes for splitting input "into whatever payload size is specified".
- ``max_payload_mb`` (``MaxPayloadInMB``, 0 to 100, default 6: "The default value is 6 MB. The value of
  MaxPayloadInMB cannot be greater than 100 MB", ``CreateTransformJob``): a request never exceeds it (a line of
  exactly that size is sent with its newline); a record larger than it is a failed record (a RecordIO or TFRecord
  record is read past, never held, whatever length its header claims). 0 means no limit,
  which SageMaker allows only for whole objects (HTTP chunked encoding; ``split_type=None``).
- ``assemble_with`` (``TransformOutput.AssembleWith``, default ``None``: the API reference lists ``None | Line``,
  "Required: No", and the SDK's ``Transformer(assemble_with=None)`` sends none): ``None`` concatenates the
  responses as they are ("to concatenate the results in binary format, specify None"); ``Line`` ends each response
  with a newline.
- ``input_filter`` / ``join_source`` / ``output_filter`` (``DataProcessing``): JSONPath expressions of the subset
  SageMaker documents (``$``, ``.name``, ``['name','name']``, ``[n]``, ``[n,m]``, ``[start:end]``, ``*``), read
  with ``jsonpath-ng``. For CSV each record is taken as a JSON array of its cells; for JSON Lines as the JSON value
  of the line. ``join_source="Input"`` joins each input record with its prediction: CSV rows get the prediction's
  values appended; a JSON object gets them under ``SageMakerOutput``; any other JSON value becomes
  ``{"SageMakerInput": ..., "SageMakerOutput": ...}``. ``output_filter`` then selects from the joined record.
  Data processing needs one prediction per record, so it applies to CSV and JSON (Lines) records split by line.

Framing facts: MXNet RecordIO (dmlc-core ``include/dmlc/recordio.h``): each part is the magic ``0xced7230a``
(uint32 little endian), a uint32 whose top 3 bits are a continuation flag (0 whole record, 1 first, 2 middle,
3 last part; a record is split wherever it contains the magic, which is put back between parts when reading)
and whose low 29 bits are the part's length, the bytes, then zero padding to a multiple of 4. TFRecord
(TensorFlow ``tensorflow/core/lib/io/record_writer.cc``): uint64 length (little endian), uint32 masked CRC32C of
those 8 bytes, the data, uint32 masked CRC32C of the data; the mask is ``((crc >> 15 | crc << 17) + 0xa282ead8)``
modulo 2**32 (``tensorflow/core/lib/hash/crc32c.h``).

Request bodies are decoded and predictions encoded by :mod:`artifact_tools.codec` (the rules ``serve`` uses). Each
record of a RecordIO or TFRecord object is one body of ``content_type``; a mini-batch of them is the rows of all.
With ``Line`` and ``MultiRecord`` (and no data processing) an object is cut into byte blocks of whole lines, each at
most ``max_payload_mb`` -- the mini-batch bodies -- without looking at single lines; an all-number CSV block is read
by one call of pyarrow's CSV reader when pyarrow is installed, else of numpy's C text reader (both read numbers as
Python's ``float`` does, so as the codec does), any other block by the codec. Consecutive blocks of one object (about
16 MB of them, ``GROUP_BYTES``; 4 MB, ``THREAD_GROUP_BYTES``, for predicting threads and worker processes) of a
row-wise model (:mod:`artifact_tools.row_wise`, the rule ``serve`` batches by: XGBoost, LightGBM, CatBoost, the
scikit-learn estimators computed row by row; each row's answer the same bits in any call) are
predicted in one call and the predictions cut back into each block's, so that
each mini-batch still gets the response it would get alone (and is one response in the output and the capture);
when that call fails each block is sent alone, and only a block that fails alone -- or gives a number of predictions
other than its number of lines, as when the codec takes its first line for a CSV header -- is taken apart into its
lines to find and report the bad records: the lines that cannot be decoded or have another number of values, then
the rest sent in halves, and halves of those, so that every line that succeeds alone is predicted. A body holding a
carriage return that does not end a line is read by the codec, never by the fast readers (which take it as a row
break). Number predictions are written as CSV by pyarrow's cast to text where it gives
``repr``'s text (:func:`_csv_numbers`), else by the codec.

Behaviour: streamed (at most two work items per worker or predicting thread -- one mini-batch, or one group of
blocks -- in flight, so memory does not grow with the input; with one worker and an XGBoost tree model, whose
predictions may be made on several threads at once, one thread per core (at most 4) reads, predicts with its share
of the cores and encodes whole work items (:func:`_predict_threads`), and once every input is read the last items'
predict calls are cut into parts that the threads left without an item predict too (:class:`_Sharing`), so the cores
stay busy to the end; with any other model the next blocks are
parsed on a thread while the model predicts with every core, which most frameworks do outside Python's global
interpreter lock), records written in input order, a bad record (undecodable, a wrong column count, rejected by the
model) is reported in the summary with its file, line (or record number) and reason and left out while the job goes
on (``fail_fast`` stops at the first instead), each ``.out`` written to a temporary name and renamed when complete,
so a killed job leaves none partial and ``resume`` skips the inputs whose ``.out`` exists and is not older than the
input (an input changed since its output was written is scored again). ``resume`` continues the same job only: the job
summary (written when the job starts, status ``running``, and again when it ends) names the job -- each artifact's real
path with its size, modification time and inode (a folder: every file's; an object: its ETag, Last-Modified,
generation... as its file system tells them), the input's real path or URI, and every parameter but ``workers`` -- and
the time its first run started, on the output file system's clock; a resume whose job differs (another model, a model
rewritten since, another content type...) is refused with the difference named, rather than leaving outputs of two
models side by side, and an output older than the job's first start (left by another job that this one had not reached
when it stopped) is scored again. ``workers`` > 1 runs that many processes (``forkserver``/``spawn``), each loading the
model(s) once through :func:`loaders.load` and its extraction cache. ``pipeline`` (at most 5 artifacts, as a SageMaker
inference pipeline): each model's predictions, encoded as CSV (JSON when CSV cannot carry them), are the next one's
request body.

Spark engine (``engine="spark"``, ``--engine spark``): the same job -- every parameter, the same ``.out`` files and
summary -- run as Spark tasks rather than worker processes, for inputs larger than one machine should score. The driver
lists the inputs, skips the complete ones (``resume``), and cuts each object split by line into byte ranges
(:data:`SPARK_RANGE_BYTES` at most, :data:`SPARK_TASKS_PER_CORE` tasks per core of the session when the input allows; an
object split otherwise is one segment, whole): a range holds the lines that begin in it, its task reading past its end
to finish its last line and the next task skipping that line (Hadoop's ``LineRecordReader`` rule, :func:`_line_start`),
so every line is scored exactly once whatever the cut. Consecutive small segments (many small objects) share a task, up
to the range size. Each task (:func:`artifact_tools.spark.run_tasks`: one partition of ``mapInArrow`` each) opens its
objects itself by path or URI -- the records never pass through the JVM or the driver -- and scores each segment with
the local engine's own code (:func:`_items`, :func:`_work`: the same mini-batches within the segment, the same decoding,
model calls and encoding; consecutive mini-batches of a row-wise model predicted in calls of about :data:`GROUP_BYTES`,
as with one predicting thread: measured with two tasks at once on 2 cores, a forest predicts 3% faster in calls of 64 MB
but XGBoost 8% slower, its rows no longer sharing the cache well, than in 16 MB calls), the model loaded once per Python
worker (Spark reuses its workers) and predicting on ``spark.task.cpus`` native threads; it writes its responses to one
part file under OUTPUT (``.transform-parts-<host>-<pid>-<hex>/``; to a temporary name renamed when complete, so a
retried or speculative attempt writes the same bytes), its failed records after them (numbered within the range), and
returns per segment its counts, its number of lines and where its responses and failed records lie in the part. The
driver then writes each input's ``.out`` from its segments in order (to a temporary name, renamed when complete),
numbering each failed record as a line of the whole object and reading back only the first :data:`MAX_FAILURES_KEPT` of
them, and removes the parts (and those of killed jobs of this machine; another machine's are never touched). A segment's
error (an input a task cannot read, a model its worker cannot load) stops the job at that segment, the inputs before it
written, as the local engine stops. So the outputs are the local engine's byte for byte wherever a response does not
depend on where the mini-batches are cut: with ``MultiRecord`` a range's last mini-batch ends with the range, as an
object's last one ends with the object, so a format that wraps each response (``application/json``'s ``{"predictions":
[...]}``) is cut at other records than one machine cuts it (SageMaker's own cuts depend on its instance count the same
way), and a bad record a cut leaves alone in its mini-batch may be reported in the model's words rather than by its
width compared with its neighbours' (its line and count are the same). ``fail_fast`` stops each task at its first bad
record and the job at the first in input order. Not on this engine: data capture (written by the local engine) and
``workers`` (the session's cores do the work), both refused in one sentence. On a cluster, the artifact is shipped to
the executors as :mod:`artifact_tools.spark` ships it, and INPUT and OUTPUT must be storage every executor reads and
writes (``s3://...``, a shared file system; ``memory://`` is refused, being one process's): an input a task or a part
file the driver cannot find is one sentence naming that.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import functools
import io
import json
import logging
import math
import os
import posixpath
import re
import stat
import struct
import sys
import threading
import time
import uuid
from typing import Any, Iterator

from . import codec, progress
from ._pipeline import MAX_PIPELINE, call_input, chain_predict
from ._threads import size_worker_process, threads_per_worker
from .archive import Limits
from .errors import ArtifactError
from .row_wise import batchable

log = logging.getLogger(__name__)

__all__ = ["TransformError", "transform", "add_transform_command", "cmd_transform"]

SPLIT_TYPES = ("None", "Line", "RecordIO", "TFRecord")
STRATEGIES = ("SingleRecord", "MultiRecord")
ASSEMBLE = ("None", "Line")
JOIN_SOURCES = ("None", "Input")
MAX_PAYLOAD_MB = 100  # MaxPayloadInMB's upper bound
SUMMARY = "transform-summary.json"
PARQUET = ("application/x-parquet", "application/vnd.apache.parquet")  # scored by Spark's own reader and writer
MAX_FAILURES_KEPT = 10_000  # failed records listed in the summary (all are counted)
GROUP_BYTES = 16 << 20  # consecutive mini-batches of one object read and predicted together, up to about this size
RECORDIO_MAGIC = 0xCED7230A


class TransformError(ArtifactError):
    """A transform job that cannot run or was stopped (``fail_fast``), in one sentence."""


# ============================================================================================ settings

@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything a worker needs (picklable: sent once to each worker process)."""

    artifacts: tuple
    trust: Any
    limits: Any
    storage_options: Any
    content_type: str
    accept: str
    split_type: str
    assemble_with: str
    input_filter: str
    join_source: str
    output_filter: str
    identity: str = ""  # the artifacts' real paths and artifact_identity (JSON): a model rewritten is loaded again


def _choice(name: str, value, allowed: tuple) -> str:
    value = "None" if value is None else str(value)
    for a in allowed:
        if a.lower() == value.lower():
            return a
    raise TransformError(f"{name} must be one of {', '.join(allowed)}, not {value[:60]!r}")


# ============================================================================================ JSONPath

_EXPR_CACHE: dict = {}
_INDEX = r"""(?:-?\d+|-?\d*\s*:\s*-?\d*|'[^']*'|"[^"]*")"""  # n, start:end (either may go), 'name'
_SUBSET = re.compile(rf"""\$(?:\.(?:\*|[A-Za-z_][\w-]*)|\[\s*(?:\*|{_INDEX}(?:\s*,\s*{_INDEX})*)\s*\])*\Z""")
# SageMaker's subset (developer guide, "Associate Prediction Results with Input Records"): $, .name, .*, [*], [n],
# [n,m], [start:end] and unions of them, ['name','other']; no recursive descent, filters, scripts or operators
MAX_UNION_PATHS = 64  # JSONPaths one filter may union through slices ($[0,2:][1,3:] is 4): 3 ** 8 of them, in 57
# characters, cost one 20 KB record a minute and gigabytes


def _expand_unions(expr: str) -> list[str]:
    """``$[0,5:]`` as ``["$[0]", "$[5:]"]``: jsonpath-ng reads unions of indexes and unions of names but not a
    union holding a slice, which SageMaker's examples use."""
    m = re.search(r"\[([^\]'\"]*,[^\]'\"]*)\]", expr)
    if not m or ":" not in m.group(1):
        return [expr]
    out = []
    for part in m.group(1).split(","):
        out += _expand_unions(expr[:m.start()] + f"[{part.strip()}]" + expr[m.end():])
    return out


def _compile(expr: str, what: str):
    """``(parsers, single)`` for a JSONPath of SageMaker's subset; ``single`` when it selects one value."""
    if expr in _EXPR_CACHE:
        return _EXPR_CACHE[expr]
    from jsonpath_ng import parse
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

    if not _SUBSET.match(expr) or len(expr) > 63:
        raise TransformError(f"{what} {expr[:70]!r} is not a JSONPath of the subset SageMaker supports ($, .name, "
                             "['a','b'], [n], [n,m], [start:end], *; at most 63 characters)")
    paths = 1  # the expressions _expand_unions makes: each union of slices multiplies them
    for m in re.finditer(r"\[([^\]'\"]*,[^\]'\"]*)\]", expr):
        paths *= len(m.group(1).split(",")) if ":" in m.group(1) else 1
    if paths > MAX_UNION_PATHS:
        raise TransformError(f"{what} {expr[:70]!r} unions {paths} paths through slices; at most {MAX_UNION_PATHS} "
                             "are read (each one is matched against every record)")
    try:
        parsers = [parse(e) for e in _expand_unions(expr)]
    except (JsonPathLexerError, JsonPathParserError, Exception) as e:
        raise TransformError(f"{what} {expr[:70]!r} is not valid JSONPath ({str(e).splitlines()[0][:120]})") from None
    single = len(parsers) == 1 and not re.search(r"[*:,]", expr)
    _EXPR_CACHE[expr] = (parsers, single)
    return parsers, single


def _select(expr: str, value, what: str):
    """The part of ``value`` that ``expr`` selects: one value, a list, or (names of an object) an object."""
    if expr == "$":
        return value
    parsers, single = _compile(expr, what)
    matches = [m for p in parsers for m in p.find(value)]
    if single:
        if not matches:
            raise ValueError(f"{what} {expr} selects nothing in this record")
        return matches[0].value
    if isinstance(value, dict) and re.fullmatch(r"\$\[\s*'[^']*'(\s*,\s*'[^']*')*\s*\]", expr):
        return {str(m.path.fields[0]): m.value for m in matches}
    if not matches and re.search(r"\[-?\d+(,-?\d+)*\]$", expr):
        raise ValueError(f"{what} {expr} is outside this record")
    return [m.value for m in matches]


# ============================================================================================ input

def _fs(url: str, storage_options):
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except Exception as e:  # noqa: BLE001 -- ValueError, ImportError, and a file system's own (TypeError...)
        raise TransformError(f"{url} cannot be opened ({_sentence(e)})") from None


_MANIFEST_HEAD = re.compile(rb'\A\[\s*\{\s*"prefix"\s*:')  # how a manifest file begins


def _manifest(fs, path: str) -> list | None:
    """The entries of a SageMaker manifest file, or None when the file is data. Only a file beginning as a manifest
    does (``[{"prefix":``) is parsed as JSON: a JSON data file is never read whole here, nor a deeply nested one
    parsed."""
    try:
        if fs.size(path) > 64 << 20:
            return None
        with fs.open(path, "rb") as f:
            head = f.read(4096)
            if not _MANIFEST_HEAD.match(head):
                return None
            doc = json.loads(head + f.read())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not (isinstance(doc, list) and doc and isinstance(doc[0], dict) and set(doc[0]) == {"prefix"}):
        return None
    if not all(isinstance(e, str) for e in doc[1:]) or not isinstance(doc[0]["prefix"], str):
        raise TransformError(f"manifest {path} must list a {{\"prefix\": ...}} object then relative object names")
    return doc


def _check_object(fs, path: str, name: str) -> None:
    """Raise unless a local input is a regular file (after symbolic links): reading a FIFO would wait for a writer
    forever, a device would never end, and a broken link cannot be read; objects of other file systems are files."""
    if not _is_local(fs):
        return
    try:
        st = os.stat(path)
    except OSError as e:
        raise TransformError(f"input {name} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TransformError(f"input {name} is not a regular file (a FIFO, socket or device), so it is no object "
                             "to score")
    kernel = _kernel_file_systems().get(st.st_dev)
    if kernel:  # /proc/self/environ is a "regular file": a manifest's prefix must not read such into OUTPUT
        raise TransformError(f"input {name} is in {kernel}, the kernel's view of this machine, not data to score")


@functools.cache
def _kernel_file_systems() -> dict:
    """``{device: folder}`` of /proc, /sys and /dev where each is a file system of its own (procfs, sysfs,
    devtmpfs): a file there is no data, whatever its name or the links to it (its device tells, with no more system
    calls than the stat each input gets). Found once per process."""
    try:
        root = os.stat("/").st_dev
    except OSError:
        root = None
    found = {}
    for top in ("/proc", "/sys", "/dev"):
        try:
            dev = os.stat(top).st_dev
        except OSError:
            continue
        if dev != root:
            found[dev] = top
    return found


def _inputs(source: str, storage_options) -> list:
    """``[(fs, path, relative name)]`` for INPUT: a file, every object under a folder/prefix, or a manifest."""
    fs, path = _fs(source, storage_options)
    if not fs.exists(path):
        raise TransformError(f"input {source} does not exist")
    if fs.isdir(path):
        base = path.rstrip("/")
        found = sorted(p for p in fs.find(base) if not fs.isdir(p))
        out = [(fs, p, posixpath.relpath(p, base)) for p in found]
        if not out:
            raise TransformError(f"input folder {source} holds no files")
        for _, p, rel in out:
            _check_object(fs, p, rel)
        return out
    _check_object(fs, path, source)
    entries = _manifest(fs, path)
    if entries is None:
        return [(fs, path, posixpath.basename(path))]
    prefix = entries[0]["prefix"]
    pfs, ppath = _fs(prefix, storage_options)
    out = []
    seen: set = set()
    for rel in entries[1:]:
        if rel.startswith("/") or ".." in rel.split("/") or posixpath.normpath(rel or ".") == ".":
            raise TransformError(f"manifest {source} names {rel[:100]!r}, which is not a path under its prefix")
        if posixpath.normpath(rel) in seen:  # one output per object: a second would overwrite the first
            raise TransformError(f"manifest {source} names {rel[:100]!r} twice")
        seen.add(posixpath.normpath(rel))
        full = ppath.rstrip("/") + "/" + rel if ppath else rel
        if not pfs.exists(full):
            raise TransformError(f"manifest {source} names {rel[:100]}, which does not exist under {prefix}")
        if pfs.isdir(full):
            raise TransformError(f"manifest {source} names {rel[:100]}, which is a folder under {prefix}, not an "
                                 "object")
        _check_object(pfs, full, rel)
        out.append((pfs, full, rel))
    if not out:
        raise TransformError(f"manifest {source} names no objects")
    return out


def _check_not_written(inputs: list, out_fs, out_root: str) -> None:
    """Refuse a job that would write over one of its inputs: an input that is the job summary's path, or the
    ``.out`` of another input (INPUT ``a.csv`` and ``a.csv.out`` with OUTPUT their folder)."""
    root = out_root.rstrip("/")
    where = os.path.abspath if _is_local(out_fs) else posixpath.normpath  # (no system call a path: 100k inputs)
    written = {where(f"{root}/{SUMMARY}" if root else SUMMARY): "the job summary"}
    written.update({where(_final(out_root, rel)): f"the output of {rel}" for _, _, rel in inputs})
    for fs, path, rel in inputs:
        what = written.get(where(path)) if type(fs) is type(out_fs) else None
        if what:
            raise TransformError(f"input {rel} is where the job writes {what}; give another output folder")


def _without_outputs(inputs: list, out_fs, out_root: str, source: str) -> list:
    """``inputs`` less the files a transform job writes (``*.out``, the summary, ``.part`` files, the Spark engine's
    parts folders) under OUTPUT when OUTPUT is INPUT or inside it: a second run (``resume`` after a kill) would
    otherwise score the first's outputs."""
    root = out_root.rstrip("/")
    kept = []
    for fs, path, rel in inputs:
        under = type(fs) is type(out_fs) and path.startswith(root + "/")
        name = posixpath.basename(path)
        if under and (name.endswith(".out") or path == f"{root}/{SUMMARY}"
                      or (name.startswith(".") and name.endswith(".part"))
                      or path[len(root) + 1:].startswith(PARTS)):
            log.info("input %s is an output of a transform job into %s: not scored", rel, out_root)
            continue
        kept.append((fs, path, rel))
    if not kept:
        raise TransformError(f"input {source} holds only the outputs of a transform job")
    return kept


class _Damaged(Exception):
    """The framing of a RecordIO/TFRecord object is broken at this point: nothing after it can be read."""


def _read_exact(f, n: int, what: str, offset: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Damaged(f"the object ends inside a {what} at byte {offset}")
    return data


def _skip(f, n: int, what: str, offset: int) -> None:
    """Read past ``n`` bytes of a record too large to send (never held whole), or raise where the object ends."""
    while n > 0:
        got = len(f.read(min(n, 1 << 20)))
        if not got:
            raise _Damaged(f"the object ends inside a {what} at byte {offset}")
        n -= got


def _too_large(size: int, max_bytes: int) -> str:
    return f"the record has {size} bytes, more than the {max_bytes} bytes of max payload (raise max_payload_mb)"


def _records(f, split_type: str, max_record: int | None) -> Iterator[tuple]:
    """``(record number or line, bytes or None, reason)`` for each record of an open object."""
    if split_type == "None":
        data = f.read((max_record or codec.MAX_BYTES) + 1)  # no max payload: still no more than a body may hold
        if max_record and len(data) > max_record:
            yield 1, None, (f"the object is larger than the {max_record} bytes of max payload (split it, or raise "
                            "max_payload_mb)")
        elif len(data) > codec.MAX_BYTES:
            yield 1, None, f"the object is larger than {codec.MAX_BYTES} bytes, the most one request body may hold"
        else:
            yield 1, data, None
        return
    if split_type == "Line":
        yield from _lines(f, max_record)
        return
    if split_type == "RecordIO":
        yield from _recordio(f, max_record)
        return
    yield from _tfrecord(f, max_record)


def _lines(f, max_record: int | None) -> Iterator[tuple]:
    """The non-blank lines of an object, each without its line end; one longer than ``max_record`` bytes is read
    past in bounded pieces, never held whole (a failed record, as :func:`_batches` reports a longer line)."""
    limit = max_record + 2 if max_record else -1  # the line, and a CR LF
    from fsspec.spec import AbstractBufferedFile

    if isinstance(f, AbstractBufferedFile):  # its readline takes no size (it reads to the newline, however far)
        reader = io.BufferedReader(f, 1 << 20)  # (it has readinto, as a raw file has)
        try:
            yield from _lines(reader, max_record)
        finally:
            reader.detach()  # the object is the caller's to close
        return
    n = 0
    while True:
        line = f.readline(limit)
        if not line:
            return
        n += 1
        if limit > 0 and len(line) == limit and not line.endswith(b"\n"):  # longer still: counted, not kept
            size = len(line)
            while not line.endswith(b"\n"):
                line = f.readline(1 << 20)
                if not line:
                    break
                size += len(line)
            size -= 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0
            yield n, None, _too_large(size, max_record or 0)
            continue
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield n, line, None


def _recordio(f, max_record: int | None = None) -> Iterator[tuple]:
    """The records of a RecordIO object; one (with its parts) larger than ``max_record`` is read past, never held
    (a failed record), so that a lying or huge length costs no memory."""
    offset, number = 0, 0
    parts: list | None = None  # the parts of a split record being read (None: not inside one)
    size, big = 0, False  # bytes of the record being read (magics between parts counted); larger than max_record
    magic = struct.pack("<I", RECORDIO_MAGIC)
    while True:
        head = f.read(8)
        if not head:
            if parts is not None:
                raise _Damaged(f"the object ends inside a split RecordIO record at byte {offset}")
            return
        if len(head) < 8:
            raise _Damaged(f"the object ends inside a RecordIO header at byte {offset}")
        word, lrec = struct.unpack("<II", head)
        if word != RECORDIO_MAGIC:
            raise _Damaged(f"no RecordIO magic at byte {offset}")
        flag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        if flag > 3 or (flag in (2, 3) and parts is None):
            raise _Damaged(f"a RecordIO continuation part without its first part at byte {offset}")
        whole = size + 4 + length if flag in (2, 3) else length
        data = None
        if max_record and whole > max_record:
            _skip(f, length + (-length) % 4, "RecordIO record", offset)
        else:
            data = _read_exact(f, length, "RecordIO record", offset)
            if length % 4:
                _read_exact(f, (-length) % 4, "RecordIO record", offset)
        offset += 8 + length + (-length) % 4
        if flag == 0:
            number += 1
            yield (number, data, None) if data is not None else (number, None, _too_large(whole, max_record or 0))
            continue
        if flag == 1:
            parts, big = [], False
        size = whole
        if data is None:
            parts, big = [], True  # the parts read so far are dropped: the record is failed whatever follows
        elif not big and parts is not None:
            parts.append(data)
        if flag == 3:
            number += 1
            yield (number, None, _too_large(size, max_record or 0)) if big else (number, magic.join(parts or []), None)
            parts, size, big = None, 0, False


def _tfrecord(f, max_record: int | None = None) -> Iterator[tuple]:
    """The records of a TFRecord object; one larger than ``max_record`` is read past, never held (a failed record)."""
    offset, number = 0, 0
    while True:
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise _Damaged(f"the object ends inside a TFRecord header at byte {offset}")
        length, crc = struct.unpack("<QI", head)
        if _masked_crc(head[:8]) != crc:
            raise _Damaged(f"the TFRecord length at byte {offset} fails its CRC32C check")
        number += 1
        if max_record and length > max_record:
            _skip(f, length + 4, "TFRecord record", offset)
            yield number, None, _too_large(length, max_record)
            offset += 16 + length
            continue
        data = _read_exact(f, length, "TFRecord record", offset)
        (dcrc,) = struct.unpack("<I", _read_exact(f, 4, "TFRecord record", offset))
        if _masked_crc(data) != dcrc:
            yield number, None, f"record {number} fails its CRC32C check (damaged data)"
        else:
            yield number, data, None
        offset += 16 + length


def _crc32c_table() -> list:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli polynomial, reflected
        table.append(c)
    return table


_CRC_TABLE: list = []


def _crc32c(data: bytes) -> int:
    try:
        import google_crc32c  # optional: the C implementation, when installed

        return google_crc32c.value(data)
    except ImportError:
        pass
    if not _CRC_TABLE:
        _CRC_TABLE.extend(_crc32c_table())
    table, crc = _CRC_TABLE, 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def recordio_frame(data: bytes) -> bytes:
    """``data`` as one MXNet RecordIO record: split where the magic number sits at a 4-byte aligned offset, as
    dmlc-core's ``RecordIOWriter::WriteRecord`` does (the reader puts the magic back between the parts)."""
    magic = struct.pack("<I", RECORDIO_MAGIC)
    cuts = [i for i in range(0, len(data) - 3, 4) if data[i:i + 4] == magic]
    bounds = [0] + [c for c in cuts] + [len(data)]
    parts = [data[bounds[0]:cuts[0]]] if cuts else [data]
    for k, c in enumerate(cuts):
        parts.append(data[c + 4:bounds[k + 2]])
    out = bytearray()
    for i, part in enumerate(parts):
        flag = 0 if len(parts) == 1 else 1 if i == 0 else 3 if i == len(parts) - 1 else 2
        out += magic + struct.pack("<I", (flag << 29) | len(part)) + part + b"\0" * ((-len(part)) % 4)
    return bytes(out)


def tfrecord_frame(data: bytes) -> bytes:
    """``data`` as one TFRecord record (length, masked CRC32C of the length, data, masked CRC32C of the data)."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", _masked_crc(head)) + data + struct.pack("<I", _masked_crc(data))


# ============================================================================================ worker side

_MODELS: dict = {}  # per process: the loaded models of the job (one load per worker)


def _models(job: _Job) -> list:
    key = (job.artifacts, str(job.trust), job.identity)
    if key not in _MODELS:
        import loaders

        _MODELS.clear()
        _NOT_ROW_WISE.clear()
        _MODELS[key] = [loaders.load(a, trust=job.trust, limits=job.limits, storage_options=job.storage_options)
                        for a in job.artifacts]
    return _MODELS[key]


def _sentence(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not isinstance(e, (ArtifactError, ValueError)) or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _plain_csv(content_type: str) -> bool:
    """Whether bodies of ``content_type`` are CSV in UTF-8 (or ASCII), which :func:`_numbers` can read."""
    kind, params = codec.media_type(content_type)
    return kind == codec.CSV and params.get("charset", "utf-8").lower() in ("utf-8", "utf8", "us-ascii", "ascii")


_ARROW: list = []  # [pyarrow modules or None], decided once per process by _arrow()


def _arrow():
    """``(pyarrow, pyarrow.compute, pyarrow.csv)`` when pyarrow >= 12 is installed and its float-to-text cast gives
    Python's ``repr`` for the probe values :func:`_arrow_texts` relies on; else None (numpy's reader and the codec's
    writer are used instead). pyarrow is optional: the ``spark``, ``mleap`` and ``monitor`` extras bring it."""
    if not _ARROW:
        found = None
        try:
            import numpy as np
            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.csv as pcsv

            if int(pa.__version__.split(".")[0]) >= 12:
                found = (pa, pc, pcsv)
                probe = np.array([0.1, 1 / 3, -2 / 3 * 1e-3, 123456.789, 0.30000000000000004, 1e-4, 9999999999.5,
                                  -1234567.125, 1.0000000000000002, float(np.float32(0.1)),
                                  float(np.float32(-7.3e-4)), 0.5, 1.5e-4])
                if _arrow_texts(found, probe) != [repr(v) for v in probe.tolist()]:
                    log.debug("pyarrow %s writes floats unlike repr; its fast paths are not used", pa.__version__)
                    found = None
        except Exception:  # noqa: BLE001 -- not installed, or unusable: the numpy/codec paths
            found = None
        _ARROW.append(found)
    return _ARROW[0]


def _arrow_texts(arrow, values) -> list:
    pa = arrow[0]
    return pa.array(values).cast(pa.string()).to_pylist()


def _numbers(body: bytes):
    """The float64 rows of an all-number CSV body, or None when the body is anything else -- a header, a text or
    empty cell, ragged rows, a byte order mark -- for the codec to read by its rules. Where a body is read here, the
    codec reads it as the same array: each cell parsed as Python's ``float`` does (correctly rounded), empty lines
    skipped, one row per non-blank line.

    Read by pyarrow's CSV reader when installed (:func:`_arrow_columns`), else by numpy's C text reader
    (numpy >= 1.23 ``loadtxt`` converts with ``PyOS_string_to_double``, correctly rounded, as ``float`` does)."""
    import numpy as np

    if not body or body.isspace() or _bare_cr(body):
        return None
    cols = _arrow_columns(body)
    if cols is not None:
        return np.column_stack(cols)
    return _loadtxt(body)


def _bare_cr(body: bytes) -> bool:
    """Whether ``body`` holds a carriage return that does not end a line (not before a newline): the fast readers
    take it as a row break, the codec as a character of its line, so such a body is left to the codec."""
    if b"\r" not in body:  # memchr: the usual case costs nothing, the counts below scan the body twice
        return False
    return body.count(b"\r") != body.count(b"\r\n")


def _loadtxt(body: bytes):
    import numpy as np

    try:
        return np.loadtxt(io.BytesIO(body), delimiter=",", comments=None, dtype=np.float64, ndmin=2)
    except Exception:  # noqa: BLE001 -- not all numbers (or not one table): the codec's rules and sentences
        return None


ARROW_MAX_COLUMNS = 4096  # wider tables are read by numpy: Arrow's CSV reader holds ~4.7 KB a column (a 6 MB row
# of 3 million columns took 14 GB and aborted the process with std::bad_alloc), numpy's a few bytes a value


def _arrow_columns(body: bytes):
    """The columns (float64 arrays, one per CSV column) of an all-number CSV body read by pyarrow's CSV reader, or
    None when pyarrow is not available or the body is not one it reads exactly as :func:`codec.decode` would.

    Exactly: every column is forced to float64 (``ConvertOptions.column_types``; no null values, so an empty or
    ``NA`` cell fails) and Arrow converts each cell with a correctly rounded decimal-to-binary conversion (its
    ``StringToFloat``, fast_float), as Python's ``float`` is; the column count is the first line's (another count
    fails: "Expected N columns"); quoting is left to the codec (a body holding ``"`` is not read here); a
    non-finite value is left to numpy's reader (Arrow also takes ``nan(...)``, which ``float`` refuses). Arrow skips
    empty lines and a UTF-8 byte order mark and trims spaces and tabs around a cell, as the codec does (``csv``
    cells stripped before ``float``)."""
    arrow = _arrow()
    if arrow is None or b'"' in body:
        return None
    import numpy as np

    pa, _, pcsv = arrow
    start = 3 if body.startswith(b"\xef\xbb\xbf") else 0
    end = body.find(b"\n", start)
    width = body.count(b",", start, end if end >= 0 else len(body)) + 1
    if width > ARROW_MAX_COLUMNS:
        return None  # numpy's reader: Arrow's memory grows by kilobytes a column, whatever the rows
    names = [str(i) for i in range(width)]
    try:
        table = pcsv.read_csv(
            pa.py_buffer(body),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=len(body) + 1),
            parse_options=pcsv.ParseOptions(delimiter=",", quote_char=False, newlines_in_values=False,
                                            ignore_empty_lines=True),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.float64() for n in names}, null_values=[],
                                                strings_can_be_null=False, quoted_strings_can_be_null=False),
            memory_pool=pa.system_memory_pool())  # malloc's: freed with the block, not kept by Arrow's own pool
    except Exception:  # noqa: BLE001 -- ArrowInvalid: not a table of numbers; numpy's reader or the codec decide
        return None
    cols = [col.to_numpy() for col in table.columns]
    if not table.num_rows or any(not np.isfinite(c).all() for c in cols):
        return None
    return cols


def _decode(body: bytes, content_type: str, label: str):
    """The model input in ``body``: :func:`codec.decode`, all-number CSV read at once by :func:`_numbers`."""
    if _plain_csv(content_type) and len(body) > 4096:
        arr = _numbers(body)
        if arr is not None:
            return codec.Request(arr)
    return codec.decode(body, content_type, label)


def _concat(parts: list):
    """Decoded record bodies as one model input (arrays stacked, frames concatenated, lists joined)."""
    if len(parts) == 1:
        return parts[0]
    import numpy as np

    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate([p if p.ndim > 1 or first.ndim == 1 else p.reshape(1, -1) for p in parts])
    if hasattr(first, "columns"):
        import pandas as pd

        return pd.concat(parts, ignore_index=True)
    if isinstance(first, list):
        return [x for p in parts for x in p]
    raise ValueError(f"records decoded as {type(first).__name__} cannot be sent together; use SingleRecord")


def _filter_record(job: _Job, rec: bytes, kind: str) -> tuple:
    """``(parsed record, filtered record bytes)`` under the input filter (CSV: an array of cells; JSON: the value)."""
    if kind == codec.CSV:
        try:
            value = next(csv.reader([rec.decode("utf-8")]), [])
        except UnicodeDecodeError as e:
            raise ValueError(f"the record is not valid utf-8 text (bad byte at offset {e.start})") from None
    else:
        try:
            value = json.loads(rec)
        except RecursionError:
            raise ValueError("the record nests JSON too deeply to be read") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"the record is not valid utf-8 text (bad byte at offset {e.start})") from None
    if job.input_filter == "$":
        return value, rec
    chosen = _select(job.input_filter, value, "input filter")
    if kind == codec.CSV:
        chosen = chosen if isinstance(chosen, list) else [chosen]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(chosen)
        return value, buf.getvalue().encode("utf-8")
    return value, json.dumps(chosen).encode("utf-8")


def _predict(job: _Job, models: list, data, style):
    sharing = getattr(_THREAD, "sharing", None)
    if sharing is not None and sharing.ending and len(models) == 1:
        out = sharing.predict(models[0], data)
        if out is not None:
            return out, style
    return chain_predict(models, data, style)  # the serial inference pipeline, as serve --pipeline runs it


def _encode(out, accept: str, style) -> bytes:
    """The response body for predictions ``out``: :func:`codec.encode`'s bytes, a number array as CSV written by
    :func:`_csv_numbers` when it can."""
    if codec.negotiate(accept) == codec.CSV:
        fast = _csv_numbers(out)
        if fast is not None:
            return fast
    return codec.encode(out, accept, style)[0]


def _csv_numbers(arr):
    """The bytes :func:`codec.encode` writes as ``text/csv`` for a 1-D or 2-D integer or float array -- each cell
    ``str`` of the Python number ``tolist`` gives (``repr`` for a float: the shortest text that reads back as the
    same double, CPython ``Objects/floatobject.c`` ``float_repr``), cells joined by ``,``, rows ended by ``\\n`` --
    written by pyarrow's cast to text and joins (C++ loops) instead of one ``str`` call per value; None when pyarrow
    is not available or the array is anything else (booleans, objects, 3-D), for the codec to write.

    Arrow's cast of a double writes its shortest round-trip digits too (the double-conversion ``ToShortest``
    algorithm), in positional notation for decimal exponents -6 to 9 (``arrow/util/formatting.cc``), as ``repr`` does
    for -4 to 15 (Python's ``'r'`` format), so the two agree on magnitudes from 1e-4 up to 1e10 that are not whole
    numbers; every other value (zero, whole numbers, smaller or larger magnitudes, NaN and infinities, which ``repr``
    writes as ``1.0``, ``1e-05``, ``1e+16``, ``nan``) takes ``repr`` itself. Integers are cast to decimal text as
    ``str`` writes them. :func:`_arrow` checks the notation on probe values
    once per process before this is used."""
    import numpy as np

    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf" or arr.ndim not in (1, 2) \
            or not 0 < arr.size < 1 << 28:
        return None
    arrow = _arrow()
    if arrow is None:
        return None
    pa, pc, _ = arrow
    flat = arr.reshape(-1)
    try:
        if arr.dtype.kind == "f":
            values = flat.astype(np.float64, copy=False)  # float16/32 to double is exact, as tolist() does
            size = np.abs(values)
            other = ~((size >= 1e-4) & (size < 1e10) & (np.floor(size) != size))  # NaN compares False: other
            texts = pa.array(values).cast(pa.string())
            count = int(np.count_nonzero(other))
            if count * 8 > len(values):
                return None  # mostly whole numbers or far magnitudes: the codec's repr loop
            if count:
                texts = pc.replace_with_mask(texts, pa.array(other),
                                             pa.array([repr(v) for v in values[other].tolist()], pa.string()))
        else:
            texts = pa.array(flat).cast(pa.string())
        if arr.ndim == 2 and arr.shape[1] > 1:
            offsets = pa.array(np.arange(0, len(texts) + 1, arr.shape[1], dtype=np.int32))
            texts = pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ",")
        lines = pc.binary_join_element_wise(texts, "", "\n")  # each text and a newline, end to end in one buffer
        _, offsets, data = lines.buffers()
        start, end = np.frombuffer(offsets, np.int32)[[lines.offset, lines.offset + len(lines)]].tolist()
        return data.slice(start, end - start).to_pybytes()
    except Exception:  # noqa: BLE001 -- e.g. more text than Arrow's 32-bit offsets hold: the codec writes it
        return None


def _rows(out) -> list:
    """One JSON-ready value per predicted row (the codec's JSON Lines rows)."""
    body, _ = codec.encode(out, codec.JSONLINES)
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def _joined_lines(job: _Job, kind: str, values: list, out) -> bytes:
    """Data processing output: each record joined with its prediction (``Input``) or alone, then filtered."""
    rows = _rows(out)
    if len(rows) != len(values):
        raise ValueError(f"the model gave {len(rows)} predictions for {len(values)} records, so they cannot be "
                         "associated with their records")
    accept = codec.negotiate(job.accept)
    lines = []
    for value, row in zip(values, rows):
        joined: Any
        if job.join_source == "Input":
            if kind == codec.CSV:
                joined = list(value) + (row if isinstance(row, list) else [row])
            elif isinstance(value, dict):
                joined = {**value, "SageMakerOutput": row}
            else:
                joined = {"SageMakerInput": value, "SageMakerOutput": row}
        else:
            joined = row
        chosen = _select(job.output_filter, joined, "output filter")
        as_csv = kind == codec.CSV if job.join_source == "Input" else accept == codec.CSV
        if as_csv:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(chosen if isinstance(chosen, list) else [chosen])
            lines.append(buf.getvalue())
        else:
            lines.append(json.dumps(chosen))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _processing(job: _Job) -> bool:
    """Whether the job filters or joins records (SageMaker's ``DataProcessing``)."""
    return job.input_filter != "$" or job.join_source == "Input" or job.output_filter != "$"


def _batch(job: _Job, records: list, models: list) -> bytes:
    """The response for one mini-batch of records, or an exception."""
    kind, _ = codec.media_type(job.content_type)
    processing = _processing(job)
    values = None
    if processing:
        pairs = [_filter_record(job, r, kind) for r in records]
        values = [p[0] for p in pairs]
        records = [p[1] for p in pairs]
        if kind == codec.JSON:  # each line is one JSON record: read them as JSON Lines
            kind = codec.JSONLINES
    if job.split_type in ("RecordIO", "TFRecord"):
        decoded = [codec.decode(r, job.content_type, "the record") for r in records]
        data, style = _concat([d.data for d in decoded]), decoded[0].style
    else:
        body = records[0] if job.split_type == "None" else b"\n".join(records) + b"\n"
        request = _decode(body, kind if processing else job.content_type, "the record" if len(records) == 1
                          else "the mini-batch")
        data, style = call_input(models[0], request), request.style
    out, style = _predict(job, models, data, style)
    if processing:
        return _joined_lines(job, kind, values if values is not None else [], out)
    if job.split_type == "Line":
        _check_count(out, len(records))
    return _payload(job, out, style)


def _check_count(out, records: int) -> None:
    """Raise unless the model gave one prediction per record of a mini-batch of several lines (a table's rows,
    a list's items; other outputs are not checked): a line taken as a CSV header by the codec, or a model that
    does not answer row by row, would otherwise shift or drop predictions."""
    if records < 2:
        return
    count = len(out) if isinstance(out, list) or getattr(out, "ndim", 0) >= 1 else None
    if count is not None and count != records:
        raise ValueError(f"the model gave {count} predictions for {records} records")


def _payload(job: _Job, out, style) -> bytes:
    """The response body of one mini-batch: the predictions encoded as ``accept`` asks (:func:`_encode`), ended by a
    newline when ``assemble_with`` is ``Line``."""
    payload = _encode(out, job.accept, style)
    if job.assemble_with == "Line" and not payload.endswith(b"\n"):
        payload += b"\n"
    return payload


def _request_bodies(job: _Job, item: tuple) -> list:
    """The request body of each mini-batch of a work item, as a container would have received it (for data
    capture)."""
    if item[0] == "blocks":
        return [block for _, block in item[1]]
    if item[0] == "singles":
        return [record + b"\n" for record in item[2]]
    records = item[2]
    if job.split_type == "None":
        return [records[0]]
    if job.split_type == "Line":
        return [b"\n".join(records) + b"\n"]
    frame = recordio_frame if job.split_type == "RecordIO" else tfrecord_frame
    return [b"".join(frame(r) for r in records)]


def _width(job: _Job, record: bytes):
    """The number of values in one record as the model would get it (None when it is no table row), or raise
    the reason it cannot be decoded."""
    kind, _ = codec.media_type(job.content_type)
    processing = job.input_filter != "$" or job.join_source == "Input" or job.output_filter != "$"
    if processing:
        _, record = _filter_record(job, record, kind)
        kind = codec.JSONLINES if kind == codec.JSON else kind
    data = codec.decode(record, kind if processing else job.content_type, "the record").data
    shape = getattr(data, "shape", None)
    return shape[-1] if shape is not None and len(shape) >= 1 else None


def _run(job: _Job, models: list, numbers: list, records: list) -> tuple:
    """``("ok", output bytes, [(record number, reason)], records)`` for one mini-batch of records. A failing batch
    is taken apart to find its bad records -- undecodable alone, a number of values other than most records of the
    batch, or failing alone in the model (found by :func:`_bisect`) -- and the others predicted."""
    out, bad = _run_records(job, models, records)
    return ("ok", out, [(numbers[i], reason) for i, reason in bad], len(records))


def _run_records(job: _Job, models: list, records: list) -> tuple:
    try:
        return _batch(job, records, models), []
    except Exception as e:  # noqa: BLE001 -- any model or codec failure is this batch's
        if len(records) == 1:
            return b"", [(0, _model_reason(job, records[0], e))]
    bad, widths = {}, {}
    for i, rec in enumerate(records):
        try:
            widths[i] = _width(job, rec)
        except Exception as e:  # noqa: BLE001
            bad[i] = _sentence(e)
    counts = collections.Counter(w for w in widths.values() if w is not None)
    odd: dict = {}  # records of another number of values than most: bad, unless the model takes none of those
    if len(counts) > 1:
        usual = counts.most_common(1)[0][0]
        for i, w in widths.items():
            if w is not None and w != usual:
                odd[i] = f"the record has {w} values where the other records have {usual}"
    good = [i for i in range(len(records)) if i not in bad and i not in odd]
    parts: list = []
    _bisect(job, models, records, good, parts, bad)
    if odd and all(i in bad for i in good):  # the usual width is not the model's (most records are bad): the next
        second = counts.most_common(2)[1][0]
        chosen = sorted(i for i in odd if widths[i] == second)
        for i in chosen:
            del odd[i]
        _bisect(job, models, records, chosen, parts, bad)  # nothing predicted before: the output order is kept
    bad.update(odd)
    return b"".join(parts), sorted(bad.items())


def _bisect(job: _Job, models: list, records: list, chosen: list, parts: list, bad: dict) -> None:
    """Predict the records at indexes ``chosen`` as one request, else each half of them the same way, so that
    every record that succeeds alone is predicted (``parts``: the responses, in order) and only those that fail
    alone are reported (``bad``)."""
    if not chosen:
        return
    try:
        parts.append(_batch(job, [records[i] for i in chosen], models))
        return
    except Exception as e:  # noqa: BLE001 -- some records fail in the model (or only together): halve
        if len(chosen) == 1:
            bad[chosen[0]] = _model_reason(job, records[chosen[0]], e)
            return
    half = len(chosen) // 2
    _bisect(job, models, records, chosen[:half], parts, bad)
    _bisect(job, models, records, chosen[half:], parts, bad)


_NA_CELLS = {"", "na", "nan", "n/a", "null", "none", "-nan", "#n/a", "<na>", "-1.#ind", "1.#ind", "1.#qnan",
             "#n/a n/a", "-1.#qnan", "#na"}  # read as missing values (pandas read_csv's defaults)


def _model_reason(job: _Job, record: bytes, e: BaseException) -> str:
    """The reason one record failed: for a CSV record with a cell that is not a number, where the model complains
    about types, a sentence naming that cell; else the error's own sentence."""
    text = _sentence(e)
    if codec.media_type(job.content_type)[0] != codec.CSV or not re.search(r"dtype|could not convert|float", text):
        return text
    try:
        cells = next(csv.reader([record.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        return text
    for j, cell in enumerate(cells, 1):
        value = cell.strip()
        if value.lower() in _NA_CELLS:
            continue
        try:
            float(value)
        except ValueError:
            return f"column {j} holds {value[:40]!r}, which is not a number (the model takes numbers)"
    return text


def _run_block(job: _Job, models: list, first: int, block: bytes, rows) -> tuple:
    """``("ok", output bytes, [(line, reason)], records)`` for one block of whole lines starting at line ``first``:
    sent as one mini-batch (``rows``: the block already read by :func:`_numbers`, or None); only when that fails
    is it cut into its lines and handled as records by :func:`_run`."""
    try:
        if rows is not None:
            data, style, count = rows, None, len(rows)
        else:
            request = codec.decode(block, job.content_type, "the mini-batch")
            data, style = call_input(models[0], request), request.style
            count = sum(1 for line in block.split(b"\n") if line.strip())
        out, style = _predict(job, models, data, style)
        _check_count(out, count)  # a line the codec took as a header: each line by itself instead
        return ("ok", _payload(job, out, style), [], count)
    except Exception:  # noqa: BLE001 -- find the bad lines
        pass
    numbers, records = [], []
    for i, line in enumerate(block.split(b"\n")):
        line = line.rstrip(b"\r\n")
        if line.strip():
            numbers.append(first + i)
            records.append(line)
    if not records:
        return ("ok", b"", [], 0)
    return _run(job, models, numbers, records)


def _row_wise(models: list) -> bool:
    """Whether consecutive mini-batches may be predicted in one call: one model (no pipeline) whose answer for a
    row is the same bits whatever other rows share the call -- the rule ``serve`` batches requests by
    (:func:`artifact_tools.row_wise.batchable`: XGBoost, LightGBM, CatBoost, the scikit-learn estimators computed
    row by row, no code of the artifact's own), Hugging Face pipelines left out -- and not found to answer
    otherwise (:func:`_run_combined`)."""
    return (len(models) == 1 and getattr(models[0], "framework", None) != "huggingface" and batchable(models[0])
            and id(models[0]) not in _NOT_ROW_WISE)


_NOT_ROW_WISE: set = set()  # per process: ids of loaded models that did not give one prediction per row


def _read_block(block: bytes):
    """An all-number CSV block as columns (:func:`_arrow_columns`) or a 2-D array (numpy's reader), or None."""
    if not block or block.isspace() or _bare_cr(block):
        return None
    cols = _arrow_columns(block)
    return cols if cols is not None else _loadtxt(block)


def _runs(blocks: list, reuse: bool = False) -> list:
    """Consecutive all-number CSV blocks of the same width read into one float64 array:
    ``[(first block, end block, rows, [rows of each block])]``; a block that is not all numbers is a run of its own
    with rows None (the codec decides). Each block is read alone, so that one that is not all numbers leaves the
    others to the fast readers. With ``reuse``, the first run's rows are written into this thread's scratch array
    (:func:`_scratch`), which the caller is done with before the thread prepares its next work item."""
    import numpy as np

    runs: list = []
    current: list = []  # [(block index, columns or 2-D array)] of the run being gathered

    def shape(p) -> tuple:
        return (len(p[0]), len(p)) if isinstance(p, list) else p.shape

    def flush() -> None:
        if not current:
            return
        counts = [shape(p)[0] for _, p in current]
        size = (sum(counts), shape(current[0][1])[1])
        rows = _scratch(size) if reuse and not runs else np.empty(size, dtype=np.float64)
        at = 0
        for (_, p), n in zip(current, counts):
            if isinstance(p, list):
                for j, col in enumerate(p):
                    rows[at:at + n, j] = col
            else:
                rows[at:at + n] = p
            at += n
        runs.append((current[0][0], current[-1][0] + 1, rows, counts))
        current.clear()

    for i, block in enumerate(blocks):
        parsed = _read_block(block)
        if parsed is None:
            flush()
            runs.append((i, i + 1, None, [None]))
            continue
        if current and shape(parsed)[1] != shape(current[0][1])[1]:
            flush()
        current.append((i, parsed))
    flush()
    return runs


_SCRATCH = threading.local()  # per thread: .rows, the float64 memory its work items' rows are written into


def _scratch(shape: tuple):
    """A float64 array of ``shape`` in this thread's scratch memory, kept for its next work items (grown a quarter
    beyond the need, so that the next items' rows, a few more or fewer, fit): a fresh array of each item's
    megabytes of rows costs the kernel's zeroing of each of its pages and a fault per page (about 1% of an XGBoost
    job's CPU over the benchmark rows, in a profile and in interleaved runs)."""
    import numpy as np

    need = shape[0] * shape[1]
    buf = getattr(_SCRATCH, "rows", None)
    if buf is None or buf.size < need:
        buf = _SCRATCH.rows = np.empty(need + need // 4, dtype=np.float64)
    return buf[:need].reshape(shape)


def _prepare(job: _Job, item: tuple, reuse: bool = False):
    """The part of a work item that needs no model: the all-number CSV blocks of a ``blocks`` item read into runs
    (:func:`_runs`; with ``reuse``, into this thread's scratch memory, for a caller that completes the item before
    it prepares another on this thread), or None."""
    if item[0] == "blocks" and _plain_csv(job.content_type):
        return _runs([block for _, block in item[1]], reuse)
    return None


def _run_blocks(job: _Job, models: list, blocks: list, runs) -> list:
    """The results of a ``blocks`` item, one :func:`_run_block` result per block (mini-batch), in order. The blocks
    of a run are predicted in one call when the model is row-wise (:func:`_run_combined`), else (or when that call
    fails) each alone."""
    if runs is None:
        runs = [(i, i + 1, None, [None]) for i in range(len(blocks))]
    results: list = []
    for start, end, rows, counts in runs:
        if rows is not None and end - start > 1 and _row_wise(models):
            done = _run_combined(job, models, rows, counts)
            if done is not None:
                results += done
                continue
        at = 0
        for (first, block), n in zip(blocks[start:end], counts):
            results.append(_run_block(job, models, first, block, None if rows is None else rows[at:at + n]))
            at += n or 0
    return results


def _run_combined(job: _Job, models: list, rows, counts: list):
    """The results of consecutive blocks predicted in one call on all their ``rows`` and the predictions cut back
    into each block's (``counts`` rows each): each block's response is the one it gets alone, since the model's
    rows are independent (:func:`_row_wise`), and each is still one mini-batch of at most the max payload in the
    output and the data capture. None when the call fails (then each block is sent alone, and the bad lines of a
    failing one are found as ever) or does not give one prediction per row (then the model is not combined again
    in this process)."""
    import numpy as np

    try:
        out, style = _predict(job, models, rows, None)
    except Exception:  # noqa: BLE001 -- a bad block among them: each block alone, by the usual rules
        return None
    if not isinstance(out, np.ndarray) or out.ndim < 1 or len(out) != len(rows):
        _NOT_ROW_WISE.add(id(models[0]))
        return None
    results: list = []
    at = 0
    try:
        for n in counts:
            results.append(("ok", _payload(job, out[at:at + n], style), [], n))
            at += n
    except Exception:  # noqa: BLE001 -- predictions the accept type cannot carry: each block alone says so
        return None
    return results


def _complete(job: _Job, item: tuple, prepared) -> list:
    """The results of one work item, one per mini-batch (:func:`_run_blocks` or :func:`_run`), or
    ``[("load-error", sentence, [], 0)]`` when the model cannot be loaded."""
    try:
        models = _models(job)
    except Exception as e:  # noqa: BLE001 -- reported to the parent as one sentence
        return [("load-error", _sentence(e), [], 0)]
    if item[0] == "blocks":
        return _run_blocks(job, models, item[1], prepared)
    if item[0] == "singles":
        return _run_singles(job, models, item[1], item[2])
    return [_run(job, models, item[1], item[2])]


def _run_singles(job: _Job, models: list, numbers: list, records: list) -> list:
    """The results of a ``singles`` item, one :func:`_run` result per single-record mini-batch, in order. With a
    row-wise model (:func:`_row_wise`) the records that decode as one table row of the common width are predicted
    in one call and the predictions cut back into each record's response -- the one it gets alone, since the model's
    rows are independent; the others, and all of them when that call fails, are sent alone."""
    import numpy as np

    results: list = [None] * len(records)
    if _row_wise(models) and len(records) > 1:
        rows: dict = {}
        table = _numbers(b"\n".join(records) + b"\n") if _plain_csv(job.content_type) else None
        if table is not None and len(table) == len(records):  # all numbers, one width: as the codec reads each
            rows = {i: table[i:i + 1] for i in range(len(records))}
            records_to_decode: list = []
        else:
            records_to_decode = records
        for i, record in enumerate(records_to_decode):
            try:
                request = _decode(record + b"\n", job.content_type, "the record")
            except Exception:  # noqa: BLE001 -- sent alone below, which reports it
                continue
            data = request.data
            if isinstance(data, np.ndarray) and data.ndim == 2 and len(data) == 1 and data.dtype == np.float64 \
                    and request.style is None and not request.params:
                rows[i] = data
        widths = collections.Counter(r.shape[1] for r in rows.values())
        if widths:
            width = widths.most_common(1)[0][0]
            chosen = [i for i, r in rows.items() if r.shape[1] == width]
            try:
                data = table if len(chosen) == len(records) and table is not None \
                    else np.concatenate([rows[i] for i in chosen])
                out, style = _predict(job, models, data, None)
                if isinstance(out, np.ndarray) and out.ndim >= 1 and len(out) == len(chosen):
                    for i, payload in zip(chosen, _row_payloads(job, out, style)):
                        results[i] = ("ok", payload, [], 1)
            except Exception:  # noqa: BLE001 -- a record the model refuses: each alone, by the usual rules
                results = [None] * len(records)
    for i, record in enumerate(records):
        if results[i] is None:
            results[i] = _run(job, models, [numbers[i]], [record])
    return results


def _row_payloads(job: _Job, out, style) -> list:
    """The response to each row of predictions ``out`` sent alone (:func:`_payload` of ``out[k:k + 1]``). A CSV of
    numbers is written once and cut at its newlines: each row is one line, written as it would be alone (each cell
    ``repr``'s text, :func:`_csv_numbers`)."""
    if codec.negotiate(job.accept) == codec.CSV and out.ndim in (1, 2) and out.dtype.kind in "iuf":
        lines = _encode(out, job.accept, style).splitlines(keepends=True)
        if len(lines) == len(out):
            return lines
    return [_payload(job, out[k:k + 1], style) for k in range(len(out))]


def _work(job: _Job, item: tuple) -> list:
    """One work item in a worker process, a predicting thread or a Spark task: read, predicted, encoded (its rows
    in the thread's scratch memory, which nothing holds once its responses are encoded)."""
    return _complete(job, item, _prepare(job, item, reuse=True))


_LOAD_ERROR: list = []  # per worker process: the sentence of a model that could not be loaded


def _start_worker(job: _Job, threads: int) -> None:
    """Pool initializer: at most ``threads`` OpenMP/BLAS threads in this worker process (the cores shared among the
    workers, :mod:`artifact_tools._threads`; the process is the job's own and ends with it), then the model(s)
    loaded once. A load failure is kept for :func:`_loaded` to report (an initializer that raises would be
    restarted by the pool forever)."""
    size_worker_process(threads)
    try:
        _models(job)
        if _plain_csv(job.content_type):
            _arrow()
    except Exception as e:  # noqa: BLE001
        _LOAD_ERROR.append(_sentence(e))


def _loaded(_: int) -> str | None:
    """Called once per worker after its start: the load failure, or None."""
    time.sleep(0.05)  # long enough for each worker to take one of these calls
    return _LOAD_ERROR[0] if _LOAD_ERROR else None


# ============================================================================================ parent side

class _Output:
    """One ``.out`` written to a temporary name beside it and renamed when complete (or removed)."""

    def __init__(self, out_fs, final: str):
        self.fs, self.final = out_fs, final
        self.local = _is_local(out_fs)
        folder, name = posixpath.split(final)
        if self.local:
            try:
                os.makedirs(folder or ".", exist_ok=True)
            except OSError as e:  # a path too long, a folder that is a file...
                raise TransformError(f"{final} cannot be written ({e.strerror or e})") from None
            for stale in os.listdir(folder or "."):  # left by a killed job (not one of a running job's)
                if stale.startswith(f".{name}.") and stale.endswith(".part") \
                        and not _writer_alive(stale[len(name) + 2:-5]):
                    try:
                        os.unlink(os.path.join(folder, stale))
                    except OSError:
                        pass
            self.tmp = os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
        else:
            import tempfile

            fd, self.tmp = tempfile.mkstemp(suffix=".part")
            os.close(fd)
        try:
            self.f = open(self.tmp, "wb" if not self.local else "xb")
        except OSError as e:  # a name too long with the temporary suffix, a folder that is a file...
            raise TransformError(f"{final} cannot be written ({e.strerror or e})") from None
        self.records_out = 0

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def commit(self) -> None:
        self.f.close()
        if self.local:
            os.replace(self.tmp, self.final)
        else:
            self.fs.put_file(self.tmp, self.final)
            os.unlink(self.tmp)

    def abort(self) -> None:
        if not self.f.closed:
            self.f.close()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def _writer_alive(tag: str) -> bool:
    """Whether the process that named a ``.part`` file ``<pid>-<hex>`` (:class:`_Output`) is still running: its file
    is then being written (by this job or another one writing into the same folder) and is not removed."""
    pid = tag.split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # exists, not ours to signal
    return True


def _stale(in_fs, path: str, out_fs, final: str) -> bool:
    """Whether an existing output is older than its input (the input was changed after the output was written), so
    that ``resume`` scores it again; False when a file system does not tell modification times."""
    try:
        return in_fs.modified(path).timestamp() > out_fs.modified(final).timestamp()
    except Exception:  # noqa: BLE001 -- NotImplementedError and the like: the output counts as complete
        return False


CLOCK_SLACK = 2.0  # seconds an output's time may lie before its job's start and still count as the job's


def _written_since(out_fs, final: str, started: float | None) -> bool:
    """Whether an existing output was written by the job resumed (not before it first started: an output left by
    another job that this one, run without resume and stopped, had not reached yet); True when unknown."""
    if started is None:
        return True
    try:
        return out_fs.modified(final).timestamp() >= started - CLOCK_SLACK
    except Exception:  # noqa: BLE001 -- no modification times here: the output counts as the job's
        return True


def _protocol(fs) -> str:
    """An fsspec file system's protocol (the first of its names)."""
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def _is_local(fs) -> bool:
    return _protocol(fs) in ("file", "local")


def _job_identity(artifacts: list, input: str, storage_options, parameters: dict) -> dict:
    """What makes two runs one job for ``resume`` (see the module docstring), as JSON values: each artifact's real
    path (symbolic links resolved; a ``file://`` URI as its path) with its :func:`artifact_identity`, the input's
    real path or URI, and the parameters (all but ``workers``)."""
    models = [{"artifact": _real(str(a)), "seen": artifact_identity(str(a), storage_options)} for a in artifacts]
    shaping = {k: v for k, v in parameters.items() if k != "workers"}
    return json.loads(json.dumps({"models": models, "input": _real(str(input)), "parameters": shaping}))


def artifact_identity(path: str, storage_options=None) -> Any:
    """What tells the artifact at ``path`` (a local path or an fsspec URI) from another one written there before,
    as JSON values, without reading it: :func:`_seen_local` of its real path, or :func:`_seen` of the object; None
    when none can be read (the load says why). The batch and Spark engines both key their loaded models on it."""
    try:
        real = _real(path)
        if "://" not in real:
            return _seen_local(real)
        import fsspec

        fs, key = fsspec.core.url_to_fs(real, **(storage_options or {}))
        return _seen(fs, key)
    except Exception:  # noqa: BLE001 -- unreadable here: the load already said so, or the path alone names it
        return None


def _real(path: str) -> str:
    """A local path (or ``file://`` URI) as its real path, symbolic links resolved; any other URI as it is. (A path
    without ``://`` is local whatever it holds: fsspec would read ``::`` in it as a chained URL.)"""
    if path.startswith("file://"):
        path = path[len("file://"):]
    return os.path.realpath(path) if "://" not in path else path


_SEEN_FILES = 20_000  # files of a folder artifact looked at for its identity, at most


def _seen_local(path: str) -> list:
    """A local artifact's identity: a file's size, modification time and inode (a file replaced by a rename has
    another; the change time is left out, as a hard link made to the file changes it); a folder's, a digest of every
    file's relative path, size and modification time (a file rewritten inside changes neither the folder's size nor
    its time), up to :data:`_SEEN_FILES` files."""
    import hashlib

    st = os.stat(path)
    if not os.path.isdir(path):
        return [st.st_size, st.st_mtime_ns, st.st_ino]
    digest, count = hashlib.sha256(), 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                f = os.stat(full)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(full, path)}\0{f.st_size}\0{f.st_mtime_ns}\n".encode())
            count += 1
            if count >= _SEEN_FILES:
                return [digest.hexdigest(), count, "truncated"]
    return [digest.hexdigest(), count]


_SEEN_KEYS = ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "size", "mtime", "LastModified",
              "last_modified", "Last-Modified", "updated", "created")  # what tells an object's version, where given


def _seen(fs, key: str) -> Any:
    """An fsspec artifact's identity: the entries of its ``info`` that tell its version (:data:`_SEEN_KEYS`: S3's
    ETag and VersionId, GCS's generation and md5Hash, HTTP's ETag and Last-Modified, the size and times), a fixed
    list because the other entries differ with where ``info`` comes from (s3fs answers from its listing cache with
    other fields than from a HEAD request); for a prefix (a folder), those of every object under it, up to
    :data:`_SEEN_FILES` objects."""
    def version(info: dict) -> dict:
        return {k: str(info[k]) for k in _SEEN_KEYS if info.get(k) is not None}

    info = fs.info(key)
    if info.get("type") != "directory":
        return version(info)
    seen: dict = {}
    for root, _, files in fs.walk(key, detail=True):
        for name in sorted(files):
            seen[f"{root}/{name}"] = version(files[name])
            if len(seen) >= _SEEN_FILES:
                return seen
    return seen


def _check_resumable(out_fs, summary_path: str, job: dict) -> float | None:
    """Refuse to resume into an output folder whose job summary names another job (see the module docstring);
    return the time the job resumed first started (its summary's ``started``), None for a folder without a readable
    summary of this job (its outputs are taken as they are)."""
    try:
        with out_fs.open(summary_path, "rb") as f:
            earlier = json.loads(f.read(1 << 24))
    except Exception:  # noqa: BLE001 -- none, or not ours: nothing to compare
        return None
    before: Any = earlier.get("job") if isinstance(earlier, dict) else None
    if not isinstance(before, dict):
        return None
    if before == job:
        started = earlier.get("started")
        if not isinstance(started, (int, float)) or isinstance(started, bool):
            return None
        try:
            when = float(started)
        except OverflowError:  # an integer of hundreds of digits: no time
            return None
        return when if math.isfinite(when) else None
    was, now = before.get("models"), job["models"]
    if was != now:
        names = [m.get("artifact") if isinstance(m, dict) else m for m in (was if isinstance(was, list) else [])]
        what = (f"another model ({', '.join(map(str, names))[:300]})" if names != [m["artifact"] for m in now]
                else "the same model path, rewritten since")
    elif before.get("input") != job["input"]:
        what = f"another input ({str(before.get('input'))[:300]})"
    else:
        params = before.get("parameters")
        old = params if isinstance(params, dict) else {}
        changed = sorted(k for k in job["parameters"] if old.get(k) != job["parameters"][k])
        what = "other parameters (" + ", ".join(f"{k} {old.get(k)!r}, now {job['parameters'][k]!r}"
                                                for k in changed[:4])[:300] + ")"
    raise TransformError(f"the output folder holds the outputs of another job, made with {what}; resume continues "
                         "the same job only: give another output folder, or run without resume to score every "
                         "input again")


def _write_json_atomic(out_fs, path: str, doc: dict) -> None:
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    out = _Output(out_fs, path)
    out.write(data)
    out.commit()


def _batches(records: Iterator[tuple], strategy: str, max_bytes: int | None, sep: int) -> Iterator[tuple]:
    """``(records, numbers, failures)`` mini-batches: SingleRecord one each; MultiRecord as many as keep the body
    within ``max_bytes`` (each record counted with ``sep`` separator bytes)."""
    batch: list = []
    numbers: list = []
    size = 0
    for number, data, reason in records:
        if reason is None and max_bytes and len(data) > max_bytes:  # MaxPayloadInMB: at most, newline aside
            reason = _too_large(len(data), max_bytes)
        if reason is not None:
            if batch:
                yield batch, numbers, None
                batch, numbers, size = [], [], 0
            yield [], [number], reason
            continue
        if batch and (strategy == "SingleRecord" or (max_bytes and size + len(data) + sep > max_bytes)):
            yield batch, numbers, None
            batch, numbers, size = [], [], 0
        batch.append(data)
        numbers.append(number)
        size += len(data) + sep
    if batch:
        yield batch, numbers, None


def _line_blocks(f, max_bytes: int) -> Iterator[tuple]:
    """``(first line number, block, None)`` for each block of whole lines of at most ``max_bytes`` (a last line
    without its newline counted with one), as many lines as fit; ``(line number, None, reason)`` for a line that
    alone is larger (read past, never held whole).

    The object is read into one reused buffer (``max_bytes`` + 1 bytes, or the object's size when fsspec tells it
    and it is smaller; grown as the object proves larger), each block copied out of it once: fresh multi-megabyte
    buffers per read would cost a page fault per page on top of each copy."""
    limit = max_bytes + 1
    known = getattr(f, "size", None)
    buf = bytearray(min(limit, max(1 << 16, known + 1 if isinstance(known, int) else 0)))
    have, eof, line = 0, False, 1
    while True:
        while not eof and have < limit:
            if have == len(buf):
                buf.extend(bytes(min(len(buf), limit - len(buf))))
            got = _read_into(f, buf, have)
            if not got:
                eof = True
            have += got
        if not have:
            return
        if eof and have + (0 if buf[have - 1] == 10 else 1) <= max_bytes:
            cut = have
        else:
            cut = buf.rfind(b"\n", 0, min(max_bytes, have)) + 1
            if not cut and have > max_bytes and buf[max_bytes] == 10:
                cut = max_bytes + 1  # one line of exactly max_bytes (MaxPayloadInMB is a maximum), its newline
            elif not cut and eof and have == max_bytes:
                cut = max_bytes  # the last line, of exactly max_bytes, without a newline
        if cut:
            with memoryview(buf) as view:
                block = bytes(view[:cut])
            buf[:have - cut] = buf[cut:have]
            have -= cut
            yield line, block, None
            line += _newlines(block)
            continue
        # no newline within max_bytes: one record too large; its end is in the buffer or read to
        end = buf.find(b"\n", 0, have)
        rest: bytes | bytearray = b""
        if end >= 0:
            size, rest = end, buf[end + 1:have]
        else:
            size = have
            while end < 0:
                more = f.read(1 << 20)
                if not more:
                    break
                end = more.find(b"\n")
                size += end if end >= 0 else len(more)
            rest = more[end + 1:] if end >= 0 else b""
            eof = end < 0
        if len(rest) > len(buf):
            buf.extend(bytes(len(rest) - len(buf)))
        buf[:len(rest)] = rest
        have = len(rest)
        yield line, None, (f"the record has {size} bytes, more than the {max_bytes} bytes of max payload "
                           "(raise max_payload_mb)")
        line += 1


def _read_into(f, buf: bytearray, start: int) -> int:
    """Read from ``f`` into ``buf[start:]``; the number of bytes read (0 at the end of the object)."""
    readinto = getattr(f, "readinto", None)
    if readinto is not None:
        with memoryview(buf) as view, view[start:] as part:
            return readinto(part) or 0
    data = f.read(len(buf) - start)
    buf[start:start + len(data)] = data
    return len(data)


NEWLINE_STEP = 1 << 16  # bytes _newlines compares at a time


def _newlines(block: bytes | memoryview) -> int:
    """The number of newline bytes in ``block``: numpy's comparison and count run about five times faster than
    ``bytes.count`` of one byte (a plain loop in CPython), taken ``NEWLINE_STEP`` bytes at a time so that the
    comparison's result is a small reused allocation (a 6 MB block compared whole made a fresh 6 MB array each
    time, page faults included: 76 ms of CPU per million benchmark rows, against 13 ms)."""
    if len(block) < NEWLINE_STEP:
        return bytes(block).count(b"\n")
    import numpy as np

    view = np.frombuffer(block, np.uint8)
    return sum(int(np.count_nonzero(view[i:i + NEWLINE_STEP] == 10)) for i in range(0, len(view), NEWLINE_STEP))


def _items(f, job: _Job, strategy: str, max_bytes: int | None, blocks: bool,
           group_bytes: int = GROUP_BYTES) -> Iterator[tuple]:
    """The work items of one open object: ``("blocks", [(first line, bytes), ...])`` (consecutive mini-batches
    of whole lines, together at most about ``group_bytes``), ``("records", numbers, records)`` (one mini-batch) or
    ``("failed", number, reason)``."""
    if blocks:
        group: list = []
        size = 0
        for first, block, reason in _line_blocks(f, max_bytes or MAX_PAYLOAD_MB << 20):
            if reason is not None:
                if group:
                    yield ("blocks", group)
                    group, size = [], 0
                yield ("failed", first, reason)
                continue
            group.append((first, block))
            size += len(block)
            if size >= group_bytes:
                yield ("blocks", group)
                group, size = [], 0
        if group:
            yield ("blocks", group)
        return
    if strategy == "SingleRecord" and job.split_type == "Line" and not _processing(job) and max_bytes:
        yield from _single_lines(f, max_bytes, group_bytes)
        return
    sep = 1 if job.split_type == "Line" else 0
    for batch, numbers, reason in _batches(_records(f, job.split_type, max_bytes), strategy, max_bytes, sep):
        yield ("failed", numbers[0], reason) if reason is not None else ("records", numbers, batch)


SINGLES_PER_ITEM = 4096  # single-record mini-batches of one work item at most


def _single_lines(f, max_bytes: int, group_bytes: int) -> Iterator[tuple]:
    """The SingleRecord mini-batches of an object's lines (:func:`_records` and :func:`_batches`), gathered into
    ``("singles", line numbers, lines)`` work items of at most ``SINGLES_PER_ITEM`` lines (about ``group_bytes``), so
    that one work item -- and for a row-wise model one predict call (:func:`_run_singles`) -- serves many requests
    of one record each; ``("failed", line, reason)`` for a line larger than ``max_bytes``."""
    numbers: list = []
    records: list = []
    size = 0
    for batch, at, reason in _batches(_records(f, "Line", max_bytes), "SingleRecord", max_bytes, 1):
        if reason is not None:
            if records:
                yield ("singles", numbers, records)
                numbers, records, size = [], [], 0
            yield ("failed", at[0], reason)
            continue
        numbers.append(at[0])
        records.append(batch[0])
        size += len(batch[0])
        if size >= group_bytes or len(records) >= SINGLES_PER_ITEM:
            yield ("singles", numbers, records)
            numbers, records, size = [], [], 0
    if records:
        yield ("singles", numbers, records)


CONCURRENT = ("xgboost",)  # frameworks whose predict may run on several threads at once (see _predict_threads)
MAX_PREDICT_THREADS = 4  # predicting threads of one process at most (more cores: more OpenMP threads each)
THREAD_GROUP_BYTES = 4 << 20  # work items of predicting threads and worker processes: about this size


def _predict_threads(models: list) -> int:
    """How many threads of this process run whole work items (read, predict, write the response) when the job has
    one worker: one per usable core, at most ``MAX_PREDICT_THREADS`` (each then predicting with its share of the
    cores, :func:`_native_threads`), for one row-wise model whose predict is documented as safe to call from
    several threads at once -- XGBoost's ``gbtree`` and ``dart`` boosters (XGBoost's "Prediction" documentation,
    "Thread Safety": since 1.4 every prediction function is thread safe for these boosters; ``gblinear`` is not) --
    when ``threadpoolctl`` can size each thread's OpenMP pool; else 1 (the next work item read on one thread while
    the model predicts with every core)."""
    from ._threads import usable_cores

    cores = usable_cores()
    if cores < 2 or not _row_wise(models) or getattr(models[0], "framework", None) not in CONCURRENT:
        return 1
    try:
        from threadpoolctl import ThreadpoolController  # noqa: F401 -- 3.0 or later (_Runner.load makes one)
    except ImportError:  # no way to size each thread's OpenMP pool: one predicting thread
        return 1
    from loaders.xgboost import booster_kind

    try:
        kind = booster_kind(models[0].model)
    except Exception:  # noqa: BLE001 -- not a Booster we can ask: one predicting thread
        return 1
    return min(cores, MAX_PREDICT_THREADS) if kind in ("gbtree", "dart") else 1


_THREAD = threading.local()  # per predicting thread of a one-worker job: .sharing, the job's _Sharing


def _native_threads(pools, threads: int, sharing: _Sharing) -> None:
    """Initializer of a predicting thread: OpenMP (the pools of XGBoost, scikit-learn, LightGBM) runs this thread's
    calls on at most ``threads`` threads, so that the predicting threads together use the cores once. OpenMP's
    thread count is a per-thread setting (the OpenMP specification's ``omp_set_num_threads`` sets the
    ``nthreads-var`` of the calling thread's task); XGBoost sizes each call by its caller's ``omp_get_max_threads``
    (``OmpGetNumThreads``, ``src/common/threading_utils.cc``). Other threads of the process, the caller's included,
    keep theirs; BLAS pools, which are process-wide, are left alone. ``pools`` is the job's
    ``threadpoolctl.ThreadpoolController``, made once as the model loads: its scan of the loaded libraries costs
    milliseconds, which each predicting thread would otherwise spend, one after another, as the job starts.
    ``sharing`` is the job's :class:`_Sharing`, which this thread's predict calls offer in parts at the job's
    end."""
    pools.limit(limits=threads, user_api="openmp")
    _THREAD.sharing = sharing


SHARED_ROWS = 4096  # rows of a part of a predict call shared among the predicting threads at a job's end, at least


class _Sharing:
    """The end of a job run by predicting threads (:func:`_predict_threads`): once every input is read
    (:meth:`end`), a thread's predict call on rows of numbers is cut into parts, which the threads left without a
    work item (:meth:`help`) predict too, so that the cores stay busy to the end instead of one thread finishing the
    last item alone (the job's last item took a whole item's time on one core while the others idled). Parts are
    taken as guided self-scheduling takes them (Polychronopoulos and Kuck, 1987): each one ``1/threads`` of the rows
    left, at least ``SHARED_ROWS``, so that a call no helper joins costs a few calls more, not dozens, and the last
    parts are small. Each row's prediction is the one it gets in the whole call, as the model is row-wise
    (:func:`_row_wise`, which :func:`_predict_threads` requires) and documented as safe to call from several
    threads at once; the parts' predictions are put back together in order. A part that fails, or that does not
    give one prediction per row, makes the owner's call run whole, as without sharing, for its answer or its
    error."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = max(2, threads)  # the predicting threads: each part takes this share of the rows left
        self.cond = threading.Condition()
        self.calls: list = []  # [_SharedCall] being predicted now, parts left or not
        self.ending = False  # every input read: predict calls are shared from now on
        self.running = 0  # work items being scored now (not helpers)

    def end(self) -> None:
        with self.cond:
            self.ending = True
            self.cond.notify_all()

    def item(self, job: _Job, item: tuple) -> list:
        """:func:`_work`, counted as running, so that helpers wait for the items that may still share a call."""
        with self.cond:
            self.running += 1
        try:
            return _work(job, item)
        finally:
            with self.cond:
                self.running -= 1
                self.cond.notify_all()

    def predict(self, model, rows):
        """``model``'s predictions for ``rows`` computed in parts by this thread and any helper, or None when
        ``rows`` is no 2-D array of at least two parts (the caller predicts them whole)."""
        import numpy as np

        if not isinstance(rows, np.ndarray) or rows.ndim != 2 or len(rows) < 2 * SHARED_ROWS:
            return None
        call = _SharedCall(model, rows, self.threads)
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()
        try:
            while True:
                with self.cond:
                    part = call.take()
                if part is None:
                    break
                self._run(call, part)
            with self.cond:
                while call.done < len(call.outs):
                    self.cond.wait()
        finally:
            with self.cond:
                self.calls.remove(call)
        if call.failed:
            return model.predict(rows)
        return np.concatenate([call.outs[start] for start in sorted(call.outs)])

    def help(self) -> None:
        """Predict the parts of other threads' calls until no work item is left running."""
        while True:
            with self.cond:
                while True:
                    found = next(((c, p) for c in self.calls for p in [c.take()] if p is not None), None)
                    if found is not None or not self.running:
                        break
                    self.cond.wait(0.1)
            if found is None:
                return
            self._run(*found)

    def _run(self, call: _SharedCall, part: tuple) -> None:
        import numpy as np

        start, end = part
        out, ok = None, False
        try:
            out = call.model.predict(call.rows[start:end])
            ok = isinstance(out, np.ndarray) and out.ndim >= 1 and len(out) == end - start
        except Exception:  # noqa: BLE001 -- the owner predicts the rows whole: its answer or its error
            pass
        finally:  # whatever happened, the part is settled, so that its owner never waits for it forever
            with self.cond:
                call.outs[start] = out if ok else None
                call.failed = call.failed or not ok
                call.done += 1
                self.cond.notify_all()


class _SharedCall:
    """One predict call of :class:`_Sharing` cut into parts as they are taken: the rows not taken yet, the parts
    taken and done, their predictions by first row."""

    def __init__(self, model, rows, threads: int):
        self.model, self.rows, self.threads = model, rows, threads
        self.outs: dict = {}  # first row of each part taken: its predictions (None until done, or when it failed)
        self.next, self.done, self.failed = 0, 0, False

    def take(self) -> tuple | None:
        """``(start, end)`` of the next part -- ``1/threads`` of the rows left, at least ``SHARED_ROWS``, and the rest
        with it when fewer than half of ``SHARED_ROWS`` would be left -- or None when none is left or a part failed
        (called with the sharing's lock held)."""
        left = len(self.rows) - self.next
        if left <= 0 or self.failed:
            return None
        size = min(left, max(SHARED_ROWS, left // self.threads))
        if left - size < SHARED_ROWS // 2:
            size = left
        start, self.next = self.next, self.next + size
        self.outs[start] = None
        return start, self.next


class _Runner:
    """Runs work items in this process or in a pool of worker processes; results come back in order.

    One worker: with a model that may predict on several threads at once (:func:`_predict_threads`), one thread per
    core (at most 4) runs whole work items (read, predict with its share of the cores, encode), so that the cores are
    busy without a native pool waiting at its barriers for a core the reading thread holds, and shares its predict
    calls at the job's end (:meth:`end`, :class:`_Sharing`); else the model-free
    first stage (:func:`_prepare`) runs on one thread, so that reading the next blocks overlaps predicting this one
    with every core. Several workers: each process does whole work items, so that they overlap one another."""

    def __init__(self, job: _Job, workers: int):
        self.job, self.workers, self.pool, self.threads = job, workers, None, 1
        self.thread: Any = None  # the ThreadPoolExecutor of a one-worker job, made by load()
        self.sharing: _Sharing | None = None  # the predicting threads' end of the job, made by load()
        if workers > 1:
            import multiprocessing

            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            threads = threads_per_worker(workers)
            self.pool = ctx.Pool(workers, initializer=_start_worker, initargs=(job, threads))

    @property
    def in_flight(self) -> int:
        """Work items submitted and not yet settled, beyond the one being settled: each worker process or
        predicting thread has one running and one waiting; one reading thread reads the next one."""
        return 2 * max(self.workers, self.threads) if self.workers > 1 or self.threads > 1 else 1

    @property
    def group_bytes(self) -> int:
        """The size of a ``blocks`` work item: smaller for predicting threads and worker processes, which each
        predict whole items with their share of the cores (so that the last items end about together), than for
        one predict call using every core (fewer calls, each paying the native pool's start)."""
        return THREAD_GROUP_BYTES if self.threads > 1 or self.workers > 1 else GROUP_BYTES

    def load(self) -> None:
        """Load the model(s) in this process, or wait for the workers to have loaded them; raise if one cannot."""
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            models = _models(self.job)
            if _plain_csv(self.job.content_type):
                _arrow()  # imported now, with the model, rather than while the first blocks are read
            self.threads = _predict_threads(models)
            if self.threads > 1:
                from threadpoolctl import ThreadpoolController

                from ._threads import usable_cores

                self.sharing = _Sharing(self.threads)
                self.thread = ThreadPoolExecutor(self.threads, thread_name_prefix="transform-predict",
                                                 initializer=_native_threads,
                                                 initargs=(ThreadpoolController(),
                                                           max(1, usable_cores() // self.threads), self.sharing))
            else:
                self.thread = ThreadPoolExecutor(1, thread_name_prefix="transform-read")
            return
        for error in self.pool.map(_loaded, range(self.workers), chunksize=1):
            if error:
                raise TransformError(error)

    def submit(self, item: tuple):
        if self.pool is None:
            assert self.thread is not None
            if self.sharing is not None:  # predicting threads
                return None, self.thread.submit(self.sharing.item, self.job, item)
            return item, self.thread.submit(_prepare, self.job, item)
        return self.pool.apply_async(_work, (self.job, item))

    def result(self, handle) -> list:
        if self.pool is None:
            item, future = handle
            out = future.result() if item is None else _complete(self.job, item, future.result())
        else:
            out = handle.get()
        if out and out[0][0] == "load-error":
            raise TransformError(out[0][1])
        return out

    def end(self) -> None:
        """Every input is read: the predicting threads share the predict calls of the last work items, each thread
        left without an item helping the others (:class:`_Sharing`)."""
        if self.sharing is not None:
            self.sharing.end()
            for _ in range(self.threads - 1):
                self.thread.submit(self.sharing.help)

    def close(self, ok: bool) -> None:
        if self.thread is not None:
            self.thread.shutdown(wait=True, cancel_futures=True)
        if self.pool is not None:
            if ok:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()


# ============================================================================================ Spark engine

SPARK_RANGE_BYTES = 64 << 20  # an object split by line is scored in byte ranges of about this size at most
SPARK_MIN_RANGE_BYTES = 4 << 20  # and at least this size (smaller inputs: fewer tasks than cores)
SPARK_TASKS_PER_CORE = 2  # tasks per core of the session when the ranges' size allows
PARTS = ".transform-parts-"  # the job's folder of task outputs under OUTPUT: PARTS + "<host>-<pid>-<hex>"


def _line_start(f, at: int, limit: int | None = None) -> int:
    """The offset of the first line of the open object ``f`` that begins at or after ``at``: ``at`` itself when
    the byte before it is a newline, else just past the next newline (the object's size when none follows; with
    ``limit``, ``limit`` when none comes before it: the bytes from ``at`` to ``limit`` then begin no line, and no
    more is read). Two neighbouring byte ranges of an object, each taken from the line start of its own first byte
    to that of the next range's, so hold every line exactly once (Hadoop's ``LineRecordReader`` rule): the task of
    a range reads past its end to finish its last line and the next one skips that line. A task looks for its first
    line only within its own range, so a line longer than many ranges is read by the one task it begins in, not by
    every task it passes through (an object of one long line would make the tasks read it a quadratic number of
    times)."""
    if at <= 0:
        return 0
    f.seek(at - 1)
    pos = at - 1
    while limit is None or pos < limit - 1:
        want = 1 << 16 if limit is None else min(1 << 16, limit - 1 - pos)
        chunk = f.read(want)
        if not chunk:
            return pos
        cut = chunk.find(b"\n")
        if cut >= 0:
            return pos + cut + 1
        pos += len(chunk)
    return limit


class _LineRange(io.RawIOBase):
    """The bytes ``[start, start + length)`` of the open object ``f`` as a readable stream, counting the newlines
    it gives (the lines of the range, for numbering the next range's lines)."""

    def __init__(self, f, start: int, length: int):
        super().__init__()
        self.f, self.left, self.newlines = f, length, 0
        f.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        with memoryview(b) as view:
            want = min(len(view), self.left)
            if want <= 0:
                return 0
            with view[:want] as part:
                readinto = getattr(self.f, "readinto", None)
                if readinto is not None:
                    got = readinto(part) or 0
                else:
                    data = self.f.read(want)
                    got = len(data)
                    part[:got] = data
                self.left -= got
                if got:
                    with part[:got] as given:
                        self.newlines += _newlines(given)
        return got


def _score_task(job: _Job, settings: tuple, task: tuple) -> list:
    """One Spark task of a job run with ``engine="spark"``, in a Spark Python worker: its segments -- whole objects,
    or the lines beginning in one byte range of an object -- each read, predicted and encoded by the rules and code
    of the local engine (:func:`_items`, :func:`_work`), the responses written in order to the task's part file under
    OUTPUT (to a temporary name, renamed when complete: a second attempt of the task, retried or speculative, writes
    the same bytes), then its failed records, one JSON line ``[number, reason]`` each (numbered within the range: the
    driver adds the lines of the ranges before), spooled to a temporary file meanwhile: however many records fail,
    neither the task nor the driver holds them (the driver reads the first :data:`MAX_FAILURES_KEPT` in input
    order). Returns per segment its counts, its line count, where its responses and its failed records lie in the
    part file, and a damaged object's, unreadable input's or unloadable model's sentence."""
    import shutil
    import tempfile

    from .spark import _worker_path

    strategy, max_bytes, blocks, fail_fast, threads, shipped = settings
    part, segments = task

    job = dataclasses.replace(job, artifacts=tuple(_worker_path(a, s) for a, s in zip(job.artifacts, shipped)))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the pools as they are
        import contextlib

        limits: Any = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=threads)
    out_fs, part_path = _fs(part, job.storage_options)
    tmp = f"{part_path}.{uuid.uuid4().hex[:8]}.tmp"
    results: list = []
    try:
        with limits, tempfile.TemporaryFile(prefix="artifact-tools-failed-") as spool:
            with out_fs.open(tmp, "wb") as w:
                at = 0
                for rel, source, start, end in segments:
                    result = _score_segment(job, (strategy, max_bytes, blocks, fail_fast), rel, source, start, end,
                                            w, spool)
                    result["at"] = at
                    at += result["size"]
                    results.append(result)
                    if result["error"] or (fail_fast and (result["failed"] or result["damaged"])):
                        break
                spool.seek(0)
                shutil.copyfileobj(spool, w, 1 << 20)
            out_fs.mv(tmp, part_path)
    finally:  # Spark reuses its Python workers for other tasks and jobs: the scratch memory is not kept for them
        _SCRATCH.__dict__.pop("rows", None)
    for result in results:
        result["failed_at"] += at
    return results


def _score_segment(job: _Job, settings: tuple, rel: str, source: str, start, end, w, spool) -> dict:
    """One segment of a Spark task (:func:`_score_task`): its responses written to ``w``, its failed records to
    ``spool``."""
    strategy, max_bytes, blocks, fail_fast = settings
    result: dict[str, Any] = {"records_in": 0, "records_out": 0, "failed": 0, "lines": 0, "damaged": None,
                              "error": None, "size": 0, "failed_at": spool.tell(), "failed_size": 0}

    def failed(number, reason: str) -> None:
        line = (json.dumps([number, reason]) + "\n").encode()
        spool.write(line)
        result["failed"] += 1
        result["failed_size"] += len(line)

    in_fs, path = _fs(source, job.storage_options)
    lines = None
    try:
        with in_fs.open(path, "rb") as f:
            reader = f
            if start is not None:
                first = _line_start(f, start, end)
                lines = _LineRange(f, first, (_line_start(f, end) if first < end else first) - first)
                reader = io.BufferedReader(lines, 1 << 20)
            try:
                for item in _items(reader, job, strategy, max_bytes, blocks, GROUP_BYTES):
                    if item[0] == "failed":
                        result["records_in"] += 1
                        failed(item[1], item[2])
                    else:
                        out = _work(job, item)
                        if out and out[0][0] == "load-error":
                            result["error"] = out[0][1]
                            break
                        for _, _, bad, count in out:
                            result["records_in"] += count
                            result["records_out"] += count - len(bad)
                            for number, reason in bad:
                                failed(number, reason)
                        data = b"".join(r[1] for r in out)
                        w.write(data)
                        result["size"] += len(data)
                    if fail_fast and result["failed"]:
                        break
            except _Damaged as e:
                result["damaged"] = str(e)
    except FileNotFoundError:
        result["error"] = (f"input {rel} is not there for the Spark task that reads it: INPUT must be storage every "
                           "executor reads (s3://..., a shared file system)")
    except OSError as e:
        result["error"] = f"input {rel} cannot be read ({e.strerror or e})"
    result["lines"] = lines.newlines if lines is not None else 0
    return result


def _spark_tasks(inputs: list, split_type: str, parallelism: int, parts: str, part_fs) -> tuple[list, list]:
    """The Spark tasks of the inputs ``[(fs, path, rel)]``, each ``(part file, [(rel, path or URI, start, end),
    ...])``, with ``[(input index, task index, segment index)]`` for each segment in input order. Each object split
    by line is cut in byte ranges of a size (at most :data:`SPARK_RANGE_BYTES`, at least
    :data:`SPARK_MIN_RANGE_BYTES`) that gives the job :data:`SPARK_TASKS_PER_CORE` tasks per core of
    ``parallelism`` when it can; any other object is one segment (start and end None). Consecutive segments are
    packed into one task up to that size, so that many small objects do not cost a task each."""
    try:
        sizes = [fs.size(path) for fs, path, _ in inputs]
    except OSError as e:
        raise TransformError(f"an input cannot be read ({e.strerror or e})") from None
    step = min(SPARK_RANGE_BYTES,
               max(SPARK_MIN_RANGE_BYTES, -(-sum(sizes) // max(1, SPARK_TASKS_PER_CORE * parallelism))))
    tasks: list = []
    where: list = []
    segments: list = []
    held = 0

    def close() -> None:
        nonlocal segments, held
        if segments:
            name = posixpath.join(parts, f".{len(tasks):07d}.part")
            tasks.append((name if _is_local(part_fs) else part_fs.unstrip_protocol(name), segments))
            segments, held = [], 0

    for k, ((fs, path, rel), size) in enumerate(zip(inputs, sizes)):
        source = path if _is_local(fs) else fs.unstrip_protocol(path)
        pieces: list = [(a, min(a + step, size)) for a in range(0, size, step)] or [(0, 0)] \
            if split_type == "Line" else [(None, None)]
        for start, end in pieces:
            length = size if start is None else end - start
            if segments and held + length > step:
                close()
            where.append((k, len(tasks), len(segments)))
            segments.append((rel, source, start, end))
            held += length
    close()
    return tasks, where


class _Parts:
    """The tasks' part files as the driver reads them, one open at a time: the segments of one task come one after
    another in input order, so each part is opened once however many small objects its task scored (on object
    storage, one request per part rather than one per segment)."""

    def __init__(self, out_fs, storage_options):
        self.fs, self.options, self.name, self.f = out_fs, storage_options, None, None

    def open(self, part: str):
        if part != self.name:
            self.close()
            path = part if _is_local(self.fs) else _fs(part, self.options)[1]
            try:
                self.f = self.fs.open(path, "rb")
            except FileNotFoundError:
                raise TransformError(f"a Spark task's output {part} is not there: on a cluster OUTPUT must be storage "
                                     "every executor writes and the driver reads (s3://..., a shared file system)"
                                     ) from None
            self.name = part
        return self.f

    def copy(self, part: str, at: int, size: int, into: "_Output") -> None:
        """A segment's responses (``size`` bytes at ``at`` of its task's part file) appended to its input's
        output."""
        f = self.open(part)
        f.seek(at)
        while size > 0:
            chunk = f.read(min(size, 16 << 20))
            if not chunk:
                raise TransformError(f"a Spark task's output {part} is shorter than its task said")
            into.write(chunk)
            size -= len(chunk)

    def failures(self, part: str, at: int, size: int) -> Iterator[tuple]:
        """The failed records a segment's task wrote (``size`` bytes of JSON lines at ``at`` of its part file), as
        ``(number, reason)``, read a line at a time."""
        for line in io.BufferedReader(_LineRange(self.open(part), at, size), 1 << 16):
            number, reason = json.loads(line)
            yield number, reason

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
        self.name, self.f = None, None


def _parts_host() -> str:
    """This machine's name as a parts folder names it: its characters other than letters, digits, dots and
    underscores as ``_`` (so that the folder name splits at its last two ``-``)."""
    import socket

    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname())[:64] or "host"


def _parts_tag() -> str:
    """This job's parts folder name after :data:`PARTS`: :func:`_parts_host`, this process's id, a random tag."""
    return f"{_parts_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _remove_parts(out_fs, out_root: str, own: str | None) -> None:
    """Remove the job's own folder of task outputs, and those left under OUTPUT by killed jobs of this machine
    (named for this machine and a process that no longer runs, :func:`_writer_alive`; another machine's, as on
    shared storage, are never touched: its process ids are not ours to ask)."""
    folders = [own] if own else []
    if _is_local(out_fs) and os.path.isdir(out_root or "."):
        host = _parts_host()
        for n in os.listdir(out_root or "."):
            tag = n[len(PARTS):].rsplit("-", 2)
            if n.startswith(PARTS) and len(tag) == 3 and tag[0] == host and not _writer_alive("-".join(tag[1:])):
                folders.append(os.path.join(out_root, n))
    for folder in folders:
        try:
            out_fs.rm(folder, recursive=True)
        except OSError:  # gone already (FileNotFoundError), or not ours to remove
            pass


def transform(artifact, input: str, output: str, *, content_type: str = "text/csv", accept: str | None = None,
              split_type: str | None = "None", strategy: str = "MultiRecord", max_payload_mb: float = 6,
              assemble_with: str | None = "None", input_filter: str = "$", join_source: str | None = "None",
              output_filter: str = "$", workers: int = 1, fail_fast: bool = False, resume: bool = False,
              trust: bool | str = False, limits: Limits | None = None, storage_options: dict | None = None,
              pipeline: list | None = None, engine: str = "local", master: str | None = None,
              capture: str | None = None, capture_percent: float = 100.0, capture_modes: str = "Input,Output",
              endpoint_name: str = "local-transform", spark=None) -> dict:
    """Run a batch transform job (rules in the module docstring) and return its summary (also written to
    ``OUTPUT/transform-summary.json``). ``artifact`` is one artifact, or None with ``pipeline=[art1, art2, ...]``.

    ``engine="spark"`` runs the same job as Spark tasks on ``spark`` (a SparkSession; else the active one, else one
    on ``master``, default ``local[*]``): every parameter means what it means here and OUTPUT receives the same
    files (module docstring, "Spark engine"); ``workers`` is refused there (Spark's cores do the work). A Parquet
    INPUT (``content_type="application/x-parquet"``, not a Batch Transform content type of the codec) is scored
    with :func:`artifact_tools.spark.transform_files` instead: Spark's own reader and writer, Parquet out.

    ``capture``: a folder or fsspec URI receiving each mini-batch's request and response bodies as SageMaker data
    capture records (:mod:`artifact_tools.capture`) under ``capture/endpoint_name/AllTraffic/yyyy/mm/dd/hh/``
    (``capture_percent`` of the mini-batches, ``capture_modes`` Input, Output or both); written by this process,
    closed when the job ends."""
    started = time.perf_counter()
    if engine not in ("local", "spark"):
        raise TransformError(f"engine must be local or spark, not {str(engine)[:40]!r}")
    if engine == "spark" and codec.media_type(str(content_type))[0] in PARQUET:
        batch_only = [name for name, given in (
            ("pipeline", bool(pipeline)), ("accept", accept not in (None, content_type)),
            ("split type", str(split_type) != "None"), ("strategy", strategy != "MultiRecord"),
            ("max payload", max_payload_mb != 6), ("assemble with", str(assemble_with) != "None"),
            ("input filter", input_filter != "$"), ("join source", str(join_source) != "None"),
            ("output filter", output_filter != "$"), ("workers", workers != 1), ("fail fast", fail_fast),
            ("resume", resume), ("capture", bool(capture))) if given]
        if batch_only:
            raise TransformError("Parquet is scored with Spark's own reader and writer, where these Batch Transform "
                                 f"settings do not apply: {', '.join(batch_only)}")
        from . import spark as spark_engine

        return spark_engine.transform_files(spark or spark_engine.session(master, "artifact-tools transform"),
                                            artifact, str(input), str(output), fmt="parquet", trust=trust,
                                            storage_options=storage_options)
    if engine == "spark" and capture:
        raise TransformError("data capture is written by the local engine; run the job without --engine spark")
    if engine == "spark" and workers != 1:
        raise TransformError("workers are the local engine's processes; on Spark the session's cores do the work "
                             "(leave workers out, or set --master local[N])")
    artifacts = list(pipeline) if pipeline else [artifact]
    if pipeline and artifact is not None and artifact != pipeline[0]:
        artifacts = [artifact] + list(pipeline)
    if not artifacts or any(a is None for a in artifacts):
        raise TransformError("give the artifact to score with, or pipeline=[artifact, ...]")
    if len(artifacts) > MAX_PIPELINE:
        raise TransformError(f"an inference pipeline holds at most {MAX_PIPELINE} models, not {len(artifacts)}")
    split_type = _choice("split type", split_type, SPLIT_TYPES)
    strategy = _choice("batch strategy", strategy, STRATEGIES)
    assemble_with = _choice("assemble with", assemble_with, ASSEMBLE)
    join_source = _choice("join source", join_source, JOIN_SOURCES)
    accept = accept or content_type
    kind, _ = codec.media_type(content_type)
    if kind not in codec.DECODES:
        raise TransformError(f"content type {content_type[:80]!r} is not one the codec reads "
                             f"({', '.join(codec.DECODES)})")
    try:
        codec.negotiate(accept)
    except codec.CodecError as e:
        raise TransformError(str(e)) from None
    if not isinstance(max_payload_mb, (int, float)) or isinstance(max_payload_mb, bool) \
            or not 0 <= max_payload_mb <= MAX_PAYLOAD_MB:
        raise TransformError(f"max payload must be 0 to {MAX_PAYLOAD_MB} MB, not {max_payload_mb!r}")
    if max_payload_mb == 0 and split_type != "None":
        raise TransformError("max payload 0 (no limit) is only for whole objects (split type None)")
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 256:
        raise TransformError(f"workers must be a whole number from 1 to 256, not {workers!r}")
    processing = input_filter != "$" or join_source == "Input" or output_filter != "$"
    for expr, what in ((input_filter, "input filter"), (output_filter, "output filter")):
        if not isinstance(expr, str):
            raise TransformError(f"{what} must be a JSONPath text such as '$[1:]'")
        if expr != "$":
            _compile(expr, what)
    if processing:
        if kind not in (codec.CSV, codec.JSON, codec.JSONLINES):
            raise TransformError("input filter, join source and output filter work on CSV and JSON records only "
                                 f"(content type {kind})")
        if split_type != "Line":
            raise TransformError("input filter, join source and output filter need records split by line "
                                 "(split type Line), so that each prediction has its record")
    job = _Job(tuple(str(a) if isinstance(a, os.PathLike) else a for a in artifacts), trust, limits,
               storage_options, content_type, accept, split_type, assemble_with, input_filter, join_source,
               output_filter)
    if capture:  # bad capture settings are refused before anything is read or written
        from .capture import CaptureWriter

        CaptureWriter(capture, endpoint_name, "AllTraffic", capture_percent, capture_modes,
                      storage_options=storage_options).close()
    try:
        inputs = _inputs(str(input), storage_options)
    except TransformError:
        raise
    except Exception as e:  # noqa: BLE001 -- the file system's own: credentials, connection, a missing archive...
        raise TransformError(f"input {input} cannot be listed ({_sentence(e)})") from None
    out_fs, out_root = _fs(str(output), storage_options)
    if len(inputs) > 1 or inputs[0][2] != posixpath.basename(inputs[0][1]):  # a folder's files (or a manifest's)
        inputs = _without_outputs(inputs, out_fs, out_root, str(input))
    _check_not_written(inputs, out_fs, out_root)
    if _is_local(out_fs):
        if os.path.exists(out_root) and not os.path.isdir(out_root):
            raise TransformError(f"output {output} exists and is not a folder")
        try:
            os.makedirs(out_root, exist_ok=True)
        except OSError as e:
            raise TransformError(f"output folder {output} cannot be made ({e.strerror or e})") from None
    max_bytes = max(1, int(max_payload_mb * 1024 * 1024)) if max_payload_mb else None  # a byte at least
    blocks = split_type == "Line" and strategy == "MultiRecord" and not processing
    summary: dict[str, Any] = {
        "schema": "artifact-tools.transform/1", "artifacts": [str(a) for a in artifacts], "input": str(input),
        "output": str(output), "parameters": {
            "content_type": content_type, "accept": accept, "split_type": split_type, "strategy": strategy,
            "max_payload_mb": max_payload_mb, "assemble_with": assemble_with, "input_filter": input_filter,
            "join_source": join_source, "output_filter": output_filter, "workers": workers},
        "inputs": len(inputs), "inputs_done": 0, "inputs_skipped": 0, "inputs_failed": 0,
        "records_in": 0, "records_out": 0, "records_failed": 0, "failed": [], "status": "running"}
    summary["job"] = _job_identity(artifacts, str(input), storage_options, summary["parameters"])
    job = dataclasses.replace(job, identity=json.dumps(summary["job"]["models"]))
    summary_path = posixpath.join(out_root.rstrip("/"), SUMMARY) if out_root else SUMMARY
    first_started = _check_resumable(out_fs, summary_path, summary["job"]) if resume else None
    # the job's first run's start, on the output file system's clock (set when the summary is first written); a
    # resume of a folder whose summary says nothing of it takes every output there (0)
    summary["started"] = first_started if first_started is not None else (0.0 if resume else None)
    failed = summary["failed"]
    writer = None
    if capture:
        from .capture import CaptureWriter

        writer = CaptureWriter(capture, endpoint_name, "AllTraffic", capture_percent, capture_modes,
                               storage_options=storage_options)

    def fail(rel: str, number, reason: str) -> None:
        summary["records_failed"] += 1
        if len(failed) < MAX_FAILURES_KEPT:
            failed.append({"file": rel, "line" if split_type == "Line" else "record": number, "reason": reason})
        if fail_fast:
            where = "" if number is None else f", line {number}" if split_type == "Line" else f", record {number}"
            raise TransformError(f"{rel}{where}: {reason} (stopped: fail fast)")  # None: the whole object

    if engine == "spark":
        return _on_spark(job, (strategy, max_bytes, blocks, fail_fast), inputs, out_fs, out_root, summary,
                         summary_path, fail, (resume, first_started), spark, master, started)
    load_start = time.perf_counter()
    try:
        runner = _Runner(job, workers)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    try:  # load now (in every worker), so that a model that cannot load fails before any input is read
        runner.load()
    except BaseException:
        runner.close(False)
        if writer is not None:
            writer.close()
        raise
    load_seconds = time.perf_counter() - load_start
    _announce(out_fs, summary_path, summary)
    pending: collections.deque = collections.deque()
    limit = runner.in_flight
    ok = False
    current: _Output | None = None
    open_outputs: list[_Output] = []

    def settle(entry) -> None:
        kind_, out, rel, payload, item = entry
        if kind_ == "close":
            out.commit()
            open_outputs.remove(out)
            summary["inputs_done"] += 1
            return
        results = runner.result(payload)
        bodies = _request_bodies(job, item) if writer is not None else None
        done = 0
        for k, (_, data, bad, count) in enumerate(results):
            if writer is not None and bodies is not None:
                writer.capture(bodies[k], content_type, data, accept)
            summary["records_in"] += count
            for number, reason in bad:
                fail(rel, number, reason)
            done += count - len(bad)
        out.write(b"".join(r[1] for r in results))  # one write per work item (thousands of responses in "singles")
        summary["records_out"] += done
        advance(done)

    try:
        with progress.task(f"transform {len(inputs)} input(s)", total=None, unit="records") as advance:
            for in_fs, path, rel in inputs:
                final = _final(out_root, rel)
                if _complete_already(resume, first_started, in_fs, path, out_fs, final):
                    summary["inputs_skipped"] += 1
                    continue
                current = _Output(out_fs, final)
                open_outputs.append(current)
                try:
                    with in_fs.open(path, "rb") as f:
                        for item in _items(f, job, strategy, max_bytes, blocks, runner.group_bytes):
                            if item[0] == "failed":
                                while pending:  # earlier mini-batches' failures first, in line order
                                    settle(pending.popleft())
                                summary["records_in"] += 1
                                fail(rel, item[1], item[2])
                                continue
                            pending.append(("batch", current, rel, runner.submit(item), item))
                            while len(pending) > limit:
                                settle(pending.popleft())
                except _Damaged as e:
                    while pending:
                        settle(pending.popleft())
                    current.abort()
                    open_outputs.remove(current)
                    summary["inputs_failed"] += 1
                    fail(rel, None, f"{e}; the object is left without output")
                    continue
                except OSError as e:
                    raise TransformError(f"input {rel} cannot be read ({e.strerror or e})") from None
                pending.append(("close", current, rel, None, None))
                while len(pending) > limit:
                    settle(pending.popleft())
            runner.end()
            while pending:
                settle(pending.popleft())
        ok = True
    finally:
        runner.close(ok)
        if writer is not None:
            writer.close()
            summary["capture"] = writer.metrics
        for out in list(open_outputs):
            out.abort()
        _finish(out_fs, summary_path, summary, ok, load_seconds, started)
    return summary


def _final(out_root: str, rel: str) -> str:
    """Where the output of the input ``rel`` goes: ``<rel>.out`` under OUTPUT."""
    return posixpath.join(out_root.rstrip("/"), rel + ".out") if out_root else rel + ".out"


def _complete_already(resume: bool, first_started, in_fs, path: str, out_fs, final: str) -> bool:
    """Whether ``resume`` skips this input: its output exists, is not older than the input, and was written by
    this job (not before its first start)."""
    return bool(resume and out_fs.exists(final) and not _stale(in_fs, path, out_fs, final)
                and _written_since(out_fs, final, first_started))


def _announce(out_fs, summary_path: str, summary: dict) -> None:
    """The job named in its output folder from the start (status ``running``), so that a killed job's resume finds
    it; ``started`` set to the summary's time on the output file system's clock when not known already."""
    try:
        _write_json_atomic(out_fs, summary_path, summary)
        if summary["started"] is None:
            try:
                summary["started"] = out_fs.modified(summary_path).timestamp()
            except Exception:  # noqa: BLE001 -- no modification times here: this machine's clock
                summary["started"] = time.time()
            _write_json_atomic(out_fs, summary_path, summary)
    except OSError as e:
        log.warning("the job summary could not be written: %s", e)


def _finish(out_fs, summary_path: str, summary: dict, ok: bool, load_seconds: float, started: float) -> None:
    """The summary's status, timings and rate, written again as the job ends (completed or stopped)."""
    total = time.perf_counter() - started
    summary["status"] = "completed" if ok else "stopped"
    summary["seconds"] = {"load": round(load_seconds, 3), "total": round(total, 3)}
    summary["records_per_second"] = round(summary["records_out"] / total, 1) if total > 0 else None
    try:
        _write_json_atomic(out_fs, summary_path, summary)
    except OSError as e:
        log.warning("the job summary could not be written: %s", e)


def _on_spark(job: _Job, settings: tuple, inputs: list, out_fs, out_root: str, summary: dict, summary_path: str,
              fail, resuming: tuple, spark, master, started: float) -> dict:
    """:func:`transform` with ``engine="spark"`` once its arguments are checked: the inputs not complete already
    cut into Spark tasks (:func:`_spark_tasks`), each scored in a Spark Python worker by :func:`_score_task`, then
    each input's output assembled here from its tasks' parts in order (written to a temporary name and renamed),
    the failed records numbered as in the whole object, and the summary written as the local engine writes it."""
    from . import spark as spark_engine

    resume, first_started = resuming
    fail_fast = settings[3]
    for fs, what in [(fs, "input") for fs, _, _ in inputs[:1]] + [(out_fs, "output")]:
        if _protocol(fs) == "memory":
            raise TransformError(f"the Spark engine's tasks open the {what} themselves, and memory:// belongs to this "
                                 "process: use storage every executor reaches")
    session = spark or spark_engine.session(master, "artifact-tools transform")
    sc = session.sparkContext
    summary["engine"] = "spark"
    todo = []
    for in_fs, path, rel in inputs:
        if _complete_already(resume, first_started, in_fs, path, out_fs, _final(out_root, rel)):
            summary["inputs_skipped"] += 1
        else:
            todo.append((in_fs, path, rel))
    _announce(out_fs, summary_path, summary)
    parts = posixpath.join(out_root.rstrip("/"), PARTS + _parts_tag()) if out_root else PARTS + _parts_tag()
    _remove_parts(out_fs, out_root, None)
    ok, current, reader = False, None, None
    threads = max(1, int(sc.getConf().get("spark.task.cpus", "1") or 1))
    shipped = tuple(spark_engine._ship(sc, str(a), json.dumps(artifact_identity(str(a), job.storage_options)))
                    for a in job.artifacts)
    try:
        out_fs.makedirs(parts, exist_ok=True)
        tasks, where = _spark_tasks(todo, job.split_type, sc.defaultParallelism, parts, out_fs)
        summary["tasks"] = len(tasks)
        work = (__name__, "_score_task", (job, settings[:4] + (threads, shipped)))
        try:
            results = spark_engine.run_tasks(session, work, tasks, f"transform {len(todo)} input(s) on Spark") \
                if tasks else []
        except TransformError:
            raise
        except Exception as e:  # noqa: BLE001 -- a task that failed outside the job's rules: one sentence
            raise TransformError(f"the Spark job failed: {spark_engine.failure_reason(e)}") from None
        reader = _Parts(out_fs, job.storage_options)
        by_input: dict = collections.defaultdict(list)
        for k, t, g in where:
            by_input[k].append((tasks[t][0], results[t][g] if g < len(results[t]) else None))
        for k, (_, _, rel) in enumerate(todo):
            current = _Output(out_fs, _final(out_root, rel))
            lines, damaged = 0, None
            for part, res in by_input[k]:
                if res is None:  # after a bad record or an error in its task: raised at that segment
                    continue
                if res["error"]:  # (in input order, as the local engine stops: the inputs before it are written)
                    raise TransformError(res["error"])
                summary["records_in"] += res["records_in"]
                summary["records_out"] += res["records_out"]
                taken = 0
                if res["failed"] and (len(summary["failed"]) < MAX_FAILURES_KEPT or fail_fast):
                    for number, reason in reader.failures(part, res["failed_at"], res["failed_size"]):
                        fail(rel, number + lines if number is not None and job.split_type == "Line" else number,
                             reason)
                        taken += 1
                        if len(summary["failed"]) >= MAX_FAILURES_KEPT:
                            break
                summary["records_failed"] += res["failed"] - taken
                damaged = damaged or res["damaged"]
                reader.copy(part, res["at"], res["size"], current)
                lines += res["lines"]
            if damaged:
                current.abort()
                summary["inputs_failed"] += 1
                fail(rel, None, f"{damaged}; the object is left without output")
            else:
                current.commit()
                summary["inputs_done"] += 1
            current = None
        ok = True
    finally:
        if current is not None:
            current.abort()
        if reader is not None:
            reader.close()
        _remove_parts(out_fs, out_root, parts)
        _finish(out_fs, summary_path, summary, ok, 0.0, started)
    return summary


# ============================================================================================ command line

def add_transform_command(subparsers, add_opening=None, add_global=None) -> argparse.ArgumentParser:
    """``artifact-tools transform``: register it on the CLI's subparsers (``add_opening``/``add_global`` are the
    CLI's own helpers for the trust/limit and global flags)."""
    help_ = "score input files offline with SageMaker Batch Transform's parameters and output layout"
    s = subparsers.add_parser("transform", help=help_, description=help_)
    if add_global is not None:
        add_global(s, sub=True)
    s.add_argument("artifact", help="the model artifact (with --pipeline: the first model)")
    s.add_argument("input", help="a file, a folder or fsspec prefix (every object under it), or a manifest file")
    s.add_argument("output", help="folder (or fsspec prefix) receiving <relative path>.out and transform-summary.json")
    s.add_argument("--pipeline", nargs="+", metavar="ARTIFACT", default=None,
                   help="further models: each one's output is the next one's input (at most 5 models in all)")
    s.add_argument("--content-type", default="text/csv", help="MIME type of the records (default text/csv)")
    s.add_argument("--accept", default=None, help="MIME type of the output (default: the content type)")
    s.add_argument("--split-type", default="None", choices=SPLIT_TYPES,
                   help="how objects are cut into records (default None: each whole object is one request, "
                        "SageMaker's default)")
    s.add_argument("--strategy", default="MultiRecord", choices=STRATEGIES,
                   help="records per request when split (default MultiRecord: as many as fit in --max-payload)")
    s.add_argument("--max-payload", type=float, default=6, metavar="MB",
                   help="largest request, 0-100 MB (default 6, SageMaker's MaxPayloadInMB default)")
    s.add_argument("--assemble-with", default="None", choices=ASSEMBLE,
                   help="how responses are put together (default None: concatenated as they are, SageMaker's "
                        "default; Line: each ends with a newline)")
    s.add_argument("--input-filter", default="$", metavar="JSONPATH", help="part of each record sent to the model")
    s.add_argument("--join-source", default="None", choices=JOIN_SOURCES, help="Input: join records with predictions")
    s.add_argument("--output-filter", default="$", metavar="JSONPATH", help="part of the joined record written")
    s.add_argument("--workers", type=int, default=1, help="worker processes, each loading the model once")
    s.add_argument("--fail-fast", action="store_true", help="stop at the first bad record instead of skipping it")
    s.add_argument("--resume", action="store_true", help="skip inputs whose .out is already complete")
    s.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="spark: run the job as Spark tasks, the same parameters and outputs (--master URL, default "
                        "local[*]); with --content-type application/x-parquet, Parquet in and out")
    s.add_argument("--master", default=None, help="Spark master URL for --engine spark")
    from .capture import add_capture_flags

    add_capture_flags(s, unit="mini-batch", variant="AllTraffic", default_endpoint="local-transform")
    if add_opening is not None:
        add_opening(s)
    else:
        s.add_argument("--trust", action="store_true")
        s.add_argument("--trust-all", action="store_true")
    s.set_defaults(func=cmd_transform)
    return s


def cmd_transform(args) -> int:
    from .cli import limits_from_args, trust_from_args

    trust, limits = trust_from_args(args), limits_from_args(args)
    summary = transform(args.artifact, args.input, args.output, content_type=args.content_type, accept=args.accept,
                        split_type=args.split_type, strategy=args.strategy, max_payload_mb=args.max_payload,
                        assemble_with=args.assemble_with, input_filter=args.input_filter,
                        join_source=args.join_source, output_filter=args.output_filter, workers=args.workers,
                        fail_fast=args.fail_fast, resume=args.resume, trust=trust, limits=limits,
                        pipeline=[args.artifact, *args.pipeline] if args.pipeline else None,
                        capture=args.capture, capture_percent=args.capture_percent,
                        capture_modes=args.capture_modes, endpoint_name=args.endpoint_name, engine=args.engine,
                        master=args.master)
    if "format" in summary:  # Parquet, through Spark's reader and writer
        print(f"scored {args.input} on Spark into {summary['output']} in {summary['seconds']:.1f} s", file=sys.stderr)
        return 0
    damaged = f", {summary['inputs_failed']} input(s) damaged" if summary["inputs_failed"] else ""
    print(f"transformed {summary['records_out']} of {summary['records_in']} records from {summary['inputs_done']} "
          f"input(s) ({summary['inputs_skipped']} skipped as complete, {summary['records_failed']} records "
          f"failed{damaged}) "
          f"in {summary['seconds']['total']:.1f} s; summary in {posixpath.join(str(args.output), SUMMARY)}",
          file=sys.stderr)
    return 0
