"""Request and response bodies: the one set of rules shared by ``artifact-tools serve``, ``load --predict`` and the
handlers generated into SageMaker exports.

This file is also copied verbatim into exported models as ``code/_codec.py`` and loaded there by the generated
``code/inference.py``, inside a SageMaker container that has no artifact-tools. So it needs only the standard
library and numpy (pandas is imported only for a CSV body with a header, a table without one, and the MLflow
dataframe forms; orjson, when installed, reads JSON bodies, see :func:`_loads`), and it runs on Python 3.7 and
numpy 1.16 onwards (the oldest framework images still listed).

Decoding, :func:`decode` (body, Content-Type) -> :class:`Request` (``data`` for the model, the request ``style``,
``params``):

- ``text/csv``: rows of cells (``csv`` module quoting). Lines without any non-blank cell are skipped. An empty cell
  is NaN. The first row is a header when it is followed by other rows and some column has a non-number in the first
  row and only numbers (or empty cells) below it -- the type test ``csv.Sniffer.has_header`` uses (CPython
  ``Lib/csv.py``). Numbers only and no header: a float64 array (the SageMaker inference toolkit reads ``text/csv``
  with ``numpy.genfromtxt(delimiter=",")``, ``sagemaker_inference/decoder.py``; MLflow's scoring server with
  ``pandas.read_csv``, ``mlflow/pyfunc/scoring_server/__init__.py``). With a header: ``pandas.read_csv`` of the
  body (its own NaN rules). Text cells without a header: one column is a list of texts, several a DataFrame read
  with ``pandas.read_csv(header=None)``.
- ``application/json``: a list of rows (the toolkit's ``np.array(json.loads(body))``), or an object with exactly
  one of ``instances`` (TensorFlow Serving's row format: a list of rows, or of objects naming the inputs),
  ``inputs`` (its columnar format: a tensor, or an object of named tensors), ``dataframe_split`` (pandas' ``split``
  orient: ``columns``, ``data``, optional ``index``) or ``dataframe_records`` (a list of objects) -- the four keys
  of MLflow's scoring protocol (``SUPPORTED_FORMATS`` in the scoring server above; TensorFlow Serving REST API,
  https://www.tensorflow.org/tfx/serving/api_rest). Beside it, ``params`` (MLflow), ``parameters`` (Hugging Face
  inference toolkit) and ``signature_name`` (TensorFlow Serving) are kept in ``Request.params``; any other key is
  refused. Numeric values become a numpy array (``null`` is NaN), a list of objects a pandas DataFrame, texts stay
  a list of ``str``, named inputs a dict of arrays.
- ``application/jsonlines`` (also ``application/x-jsonlines``, ``application/jsonl``): one JSON row or object per
  line, read as the list of those rows (SageMaker Batch Transform splits such files by line).
- ``application/x-npy``: one ``.npy`` array (numpy ``numpy/lib/format.py``: magic, version, header dict, data). The
  header is parsed with numpy's own header reader and checked against the bytes present before anything is
  allocated; object arrays (pickles) are refused.
- ``text/plain``: texts for text models, one per non-blank line.

``charset`` (default UTF-8; a byte order mark is dropped) applies to every text type. Bounds: a body over
``MAX_BYTES``, JSON nested deeper than ``MAX_DEPTH`` levels and an ``.npy`` header over ``MAX_NPY_HEADER`` bytes are
refused, each with one sentence.

Encoding, :func:`encode` (prediction, Accept, style) -> (body, content type), the type chosen by :func:`negotiate`:
highest ``q`` first, a missing Accept and ``*/*`` mean JSON (the toolkit's default accept), ``text/*`` CSV.

- ``application/json``: the predictions as JSON values (numpy arrays as lists, a DataFrame as a list of records as
  MLflow answers, bytes as UTF-8 text); wrapped as the request was asked: ``{"predictions": ...}`` for
  ``instances`` and the MLflow dataframe forms, ``{"outputs": ...}`` for ``inputs`` (TensorFlow Serving's answers
  to its row and columnar formats), bare otherwise (the toolkit's ``json.dumps``, ``sagemaker_inference/encoder.py``).
- ``text/csv``: one line per row, no header for arrays (the toolkit writes ``numpy.savetxt(delimiter=",")``);
  with a header for a DataFrame, a list of records and named outputs.
- ``application/jsonlines``: one JSON value per row.
- ``application/x-npy``: ``numpy.save`` without pickles.

Several outputs -- a dict by name, or a list/tuple of arrays of different widths (a multi-output network) -- are
kept in JSON (an object by name, or a list of per-output arrays), and written to CSV and JSON Lines as one group of
columns (or one value) per output when every output has the same number of rows; where a format cannot carry them
(``.npy``; CSV of outputs of more than 2 dimensions or unequal row counts) :class:`NotAcceptable` says so in one
sentence.

Errors: :class:`BadBody` (HTTP 400), :class:`UnsupportedType` (415), :class:`NotAcceptable` (406), all
:class:`CodecError`, an ``ArtifactError`` where artifact-tools is installed.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os

import numpy as np

try:  # a C JSON parser, 4-8x the standard library's on rows of numbers; optional (see _loads)
    import orjson as _orjson
except ImportError:
    _orjson = None  # type: ignore[assignment]

try:  # artifact-tools' own error type, so that its CLI prints one sentence and exits 2
    from artifact_tools.errors import ArtifactError as _Base
except ImportError:  # inside an exported model's container, where artifact-tools is not installed
    class _Base(Exception):  # type: ignore[no-redef]
        exit_code = 2

__all__ = ["BadBody", "CodecError", "CSV", "JSON", "JSONLINES", "NPY", "NotAcceptable", "Request", "TEXT",
           "UnsupportedType", "decode", "encode", "media_type", "negotiate", "read_file"]

JSON = "application/json"
CSV = "text/csv"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
TEXT = "text/plain"
ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES}
DECODES = (CSV, JSON, JSONLINES, NPY, TEXT)
ENCODES = (JSON, CSV, JSONLINES, NPY)

MAX_BYTES = 1024 ** 3  # a body (or an input file) larger than this is refused
MAX_COLUMNS = 65536  # columns of a table read as a DataFrame (pandas spends ~30 us and ~0.7 KB on each: a 6 MB row
# of 3 million text cells took 85 s and 2 GB); an all-number table is a numpy array, which has no such cost
MAX_DEPTH = 64  # JSON nesting levels (numpy arrays have at most 32 dimensions in numpy 1.x, 64 in 2.x)
MAX_NPY_HEADER = 10_000  # bytes of .npy header dict (numpy >= 1.24's own default limit)
FORMAT_KEYS = ("instances", "inputs", "dataframe_split", "dataframe_records")
PARAM_KEYS = ("params", "parameters", "signature_name")


class CodecError(_Base):
    """A body that cannot be read or a prediction that cannot be written as asked; ``status`` is the HTTP answer."""

    status = 400


class BadBody(CodecError):
    """The body is damaged or has no shape the rules accept."""

    status = 400


class UnsupportedType(CodecError):
    """The Content-Type (or its charset) is not one the codec reads."""

    status = 415


class NotAcceptable(CodecError):
    """The Accept header names no type the codec writes, or the predictions cannot take the type asked."""

    status = 406


class Request:
    """A decoded body: ``data`` for the model, ``style`` (``"instances"``, ``"inputs"``, ``"dataframe_split"``,
    ``"dataframe_records"`` or None) to answer in, ``params`` (inference parameters given beside the data)."""

    __slots__ = ("data", "style", "params")

    def __init__(self, data, style=None, params=None):
        self.data = data
        self.style = style
        self.params = params or {}

    def __repr__(self) -> str:
        return f"Request(style={self.style!r}, data={type(self.data).__name__}, params={sorted(self.params)})"


# ============================================================================================ media types

def media_type(header) -> tuple:
    """``(type/subtype, {parameter: value})`` of a Content-Type or one Accept element, lower case, aliases
    resolved."""
    kind, _, rest = (header or "").partition(";")
    params = {}
    for part in rest.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"')
    kind = kind.strip().lower()
    return ALIASES.get(kind, kind), params


_NEGOTIATED: dict = {}  # Accept header -> its response type: a server sees the same few headers again and again
_NEGOTIATED_MAX = 256  # headers remembered at most (the memory stays bounded whatever clients send)


def negotiate(accept) -> str:
    """The response type for an Accept header (RFC 9110 section 12.5.1): the supported range with the highest
    ``q``, in the order given on ties; none, empty or ``*/*`` is JSON. :class:`NotAcceptable` when nothing fits."""
    known = _NEGOTIATED.get(accept) if isinstance(accept, str) else None
    if known is not None:
        return known
    kind = _negotiate(accept)
    if isinstance(accept, str) and len(accept) <= 200:
        if len(_NEGOTIATED) >= _NEGOTIATED_MAX:
            _NEGOTIATED.clear()
        _NEGOTIATED[accept] = kind
    return kind


def _negotiate(accept) -> str:
    if not (accept or "").strip():
        return JSON
    ranges = []
    for i, element in enumerate(accept.split(",")):
        kind, params = media_type(element)
        if not kind:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, i, kind))
    for _, _, kind in sorted(ranges):
        if kind in ENCODES:
            return kind
        if kind == "*/*":
            return JSON
        if kind.endswith("/*"):
            for known in ENCODES:
                if known.startswith(kind[:-1]):
                    return known
    raise NotAcceptable(f"Accept {accept[:200]!r} names no type these predictions can be sent as; ask for "
                        f"{', '.join(ENCODES)}")


# ============================================================================================ decoding

def decode(body, content_type, label: str = "the request body", max_bytes: int = MAX_BYTES) -> Request:
    """The model input in ``body`` (bytes, or text already decoded) sent as ``content_type`` (the header, with
    parameters); the rules are in the module docstring."""
    kind, params = media_type(content_type)
    if kind not in DECODES:
        raise UnsupportedType(f"Content-Type {kind or '(none)'!r} is not supported; send one of {', '.join(DECODES)}")
    if len(body) > max_bytes:
        raise BadBody(f"{label} has {len(body)} bytes, more than the {max_bytes} accepted")
    if kind == NPY:
        if isinstance(body, str):
            raise BadBody(f"{label} is text, not the bytes of a .npy array")
        return Request(_npy(bytes(body), label))
    text = _text(body, params.get("charset"), label)
    if not text.strip():
        raise BadBody(f"{label} is empty")
    if kind == CSV:
        return Request(_csv(text, label))
    if kind == TEXT:
        return Request([line for line in text.splitlines() if line.strip()])
    if kind == JSONLINES:
        rows = [_json(line, f"line {n} of {label}") for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        return Request(_values(rows, label))
    looked = len(text) < _LOOK_AFTER  # a short text is looked at for long digit runs first (cheaper than after)
    doc = _json(text, label, checked=False, runs=looked)
    fast = _numbers(doc, label)
    if not looked and (fast is None or not _int64_safe(fast.data)) and _orjson is not None and \
            _long_digit_run(text):
        doc = _json(text, label, checked=False)  # (orjson may have read an integer outside 64 bits: see _loads)
        fast = _numbers(doc, label)
    if fast is not None:
        return fast
    _check_depth(doc, label)
    return _json_request(doc, label)


def _numbers(doc, label: str):
    """The Request :func:`_json_request` makes of ``doc`` when it is rows of numbers only -- a list of rows, or an
    object whose one key is ``inputs`` or ``instances`` and holds them --, else None (any other body takes the
    general path). Such a body needs no walk for its depth: numpy reads it into a numeric array of ``ndim``
    dimensions only when every number sits ``ndim`` lists deep, so its depth is known from the array (a 100-row
    body: a sixth of its decoding time saved)."""
    if type(doc) is dict:
        if len(doc) != 1:
            return None
        style = next(iter(doc))
        if style != "inputs" and style != "instances":
            return None
        value, depth = doc[style], 1
    else:
        style, value, depth = None, doc, 0
    if type(value) is not list or not value or type(value[0]) is dict:
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in "biuf":
        return None
    if depth + arr.ndim > MAX_DEPTH:
        raise BadBody(f"{label} nests JSON more than {MAX_DEPTH} levels deep")
    return Request(arr, style, {}) if style else Request(arr)


def read_file(path: str, max_bytes: int = MAX_BYTES) -> Request:
    """A prediction input file (``-`` for standard input), its format told by its content: a ``.npy`` magic, JSON
    (then JSON Lines when it holds several documents), else CSV."""
    if path == "-":
        import sys

        raw = sys.stdin.buffer.read(max_bytes + 1)
        label = "standard input"
    else:
        label = os.path.basename(path) or path
        if not os.path.exists(path):
            raise _Base(f"input file {path} does not exist")
        if not os.path.isfile(path):
            raise _Base(f"input {path} is not a file (give a .csv, .json, .jsonl or .npy file)")
        if os.path.getsize(path) > max_bytes:
            raise BadBody(f"{label} has {os.path.getsize(path)} bytes, more than the {max_bytes} accepted")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    if raw[:6] == b"\x93NUMPY":
        return decode(raw, NPY, label, max_bytes)
    head = raw[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        try:
            return decode(raw, JSON, label, max_bytes)
        except BadBody as e:
            if "Extra data" not in str(e):  # several documents: JSON Lines
                raise
        return decode(raw, JSONLINES, label, max_bytes)
    return decode(raw, CSV, label, max_bytes)


def _text(body, charset, label: str) -> str:
    if isinstance(body, str):
        return body.lstrip("\ufeff")
    try:
        return bytes(body).decode(charset or "utf-8").lstrip("\ufeff")
    except LookupError:
        raise UnsupportedType(f"charset {charset[:100]!r} is not supported") from None
    except UnicodeDecodeError as e:
        raise BadBody(f"{label} is not valid {charset or 'utf-8'} text (bad byte at offset {e.start})") from None


_DIGIT_MARKS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # bytes.translate: each digit "0", the rest " "
_LONG_RUN = b"0" * 19  # 19 digits in a row: a number orjson may read otherwise than json (see _loads)
_RUN_STEP = 1 << 20  # characters of text looked at a time for such a run


def _loads(text: str, runs: bool = True):
    """``json.loads(text)``. orjson reads it when installed and it gives the same document: orjson and ``json``
    both read RFC 8259 JSON (correctly rounded floats, the last of repeated keys); where they differ orjson refuses
    (``NaN`` and ``Infinity``, floats out of range such as ``1e400``, lone surrogates, nesting past 1024), so the
    text then goes to ``json`` with its own answer and message -- except integers outside 64 bits, which orjson
    turns into floats: text with 19 digits in a row never goes to orjson (:func:`_long_digit_run`), unless
    ``runs`` is false: then the caller looks for such integers in what orjson made (see :func:`_int64_safe`)."""
    if _orjson is not None and not (runs and _long_digit_run(text)):
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _long_digit_run(text: str) -> bool:
    """Whether ``text`` holds 19 ASCII digits in a row: the digits marked by ``bytes.translate`` and the run found by
    one substring search, both C loops (a regular expression took 80 us on a 100-row body, six times orjson's
    parse), a megabyte of text at a time (pieces overlapping by 18 characters), so a large body is not copied
    whole."""
    for start in range(0, len(text), _RUN_STEP):
        piece = text[start:start + _RUN_STEP + len(_LONG_RUN) - 1].encode("utf-8", "surrogatepass")
        if _LONG_RUN in piece.translate(_DIGIT_MARKS):
            return True
    return False


def _int64_safe(arr) -> bool:
    """Whether the numbers of ``arr`` (read from JSON by orjson without the look for long digit runs) are those
    ``json`` reads: integers (orjson reads every integer within 64 bits exactly, and makes a float of any other)
    or floats all smaller in magnitude than 2**63 (an integer orjson made a float of is at least that large), so
    an array of ordinary floats needs no second look at its text (on a 100-row body that look cost half the
    parse)."""
    if arr.dtype.kind != "f" or not arr.size:
        return True
    return bool(arr.max() < _2_POW_63 and arr.min() > -_2_POW_63)


_2_POW_63 = float(2**63)
_LOOK_AFTER = 2048  # characters of JSON from which rows of numbers are looked at after orjson's read, not before


def _json(text: str, label: str, checked: bool = True, runs: bool = True):
    try:
        doc = _loads(text, runs)
    except ValueError as e:  # JSONDecodeError; its msg is one line
        msg = getattr(e, "msg", str(e))
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise BadBody(f"{label} is not valid JSON ({msg}{where})") from None
    except RecursionError:
        raise BadBody(f"{label} nests JSON too deeply to be read") from None
    if checked:
        _check_depth(doc, label)
    return doc


def _check_depth(doc, label: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, walking containers without recursion (``json.loads`` makes exact
    lists and dicts). The types of a container's items are collected at C speed (``set(map(type, ...))``), and a
    list of rows holding no container is checked as a whole: a 100-row body takes a third of the time a Python
    loop over every number took."""
    too_deep = f"{label} nests JSON more than {MAX_DEPTH} levels deep"
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadBody(too_deep)
        children = node if type(node) is list else node.values() if type(node) is dict else ()
        kinds = set(map(type, children))
        if list not in kinds and dict not in kinds:
            continue
        if kinds == {list}:  # rows: their items all at once
            inner = set(map(type, itertools.chain.from_iterable(children)))
            if list not in inner and dict not in inner:
                if depth + 1 > MAX_DEPTH:
                    raise BadBody(too_deep)
                continue
        stack.extend((c, depth + 1) for c in children if type(c) is list or type(c) is dict)


def _json_request(doc, label: str) -> Request:
    if isinstance(doc, list):
        return Request(_values(doc, label))
    if not isinstance(doc, dict):
        raise BadBody(f"{label} must be a JSON list of rows or an object with one of {', '.join(FORMAT_KEYS)}, "
                      f"not a {type(doc).__name__}")
    found = [k for k in FORMAT_KEYS if k in doc]
    if len(found) != 1:
        raise BadBody(f"{label} must be a JSON object with exactly one of {', '.join(FORMAT_KEYS)} "
                      f"(it has {', '.join(map(str, list(doc)[:8])) or 'no keys'})")
    other = [k for k in doc if k not in FORMAT_KEYS and k not in PARAM_KEYS]
    if other:
        raise BadBody(f"{label} has keys the request formats do not define: {', '.join(map(str, other[:8]))}")
    params = {}
    for key in ("params", "parameters"):
        if key in doc:
            if not isinstance(doc[key], dict):
                raise BadBody(f'"{key}" in {label} must be a JSON object')
            params.update(doc[key])
    if "signature_name" in doc:
        params["signature_name"] = doc["signature_name"]
    style = found[0]
    value = doc[style]
    if style == "dataframe_split":
        return Request(_frame_split(value, label), style, params)
    if style == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise BadBody(f'"dataframe_records" in {label} must be a list of objects')
        return Request(_frame(value, label), style, params)
    if style == "instances" and not isinstance(value, list):
        raise BadBody(f'"instances" in {label} must be a list of rows')
    if style == "inputs" and isinstance(value, dict):
        if not value:
            raise BadBody(f'"inputs" in {label} names no inputs')
        return Request({str(k): _values(v, label, allow_scalar=True) for k, v in value.items()}, style, params)
    return Request(_values(value, label, allow_scalar=style == "inputs"), style, params)


def _values(value, label: str, allow_scalar: bool = False):
    """JSON values as model input: numbers as an array (null is NaN), objects as a DataFrame, anything else as is."""
    if not isinstance(value, list):
        if allow_scalar:
            return value
        raise BadBody(f"{label} holds a {type(value).__name__} where rows were expected")
    if not value:
        raise BadBody(f"{label} holds no rows")
    if all(isinstance(r, dict) for r in value):
        return _frame(value, label, required=False)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged rows: the model judges them
        return value
    if arr.dtype.kind in "biuf":
        return arr
    if arr.dtype.kind == "O":  # numbers with nulls
        try:
            return np.asarray(value, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            return value
    return value  # texts and mixed values stay as given


def _pandas(needed_for: str):
    try:
        import pandas as pd
    except ImportError:
        raise BadBody(f"reading {needed_for} needs pandas, which is not installed (pip install pandas)") from None
    return pd


def _check_columns(count: int, label: str) -> None:
    if count > MAX_COLUMNS:
        raise BadBody(f"{label} is a table of {count} columns; a table with text cells, names or a header is read "
                      f"with at most {MAX_COLUMNS}")


def _frame(records: list, label: str, required: bool = True):
    names: set = set()
    for record in records:
        if isinstance(record, dict):
            names.update(record)
            _check_columns(len(names), label)
    try:
        import pandas as pd
    except ImportError:
        if required:
            raise BadBody(f"reading the records in {label} needs pandas, which is not installed") from None
        return records
    return pd.DataFrame.from_records(records)


def _frame_split(value, label: str):
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadBody(f'"dataframe_split" in {label} must be an object with a "data" list (and "columns")')
    unknown = [k for k in value if k not in ("columns", "data", "index")]
    if unknown:
        raise BadBody(f'"dataframe_split" in {label} has keys pandas\' split orient does not define: '
                      f"{', '.join(map(str, unknown[:8]))}")
    columns = value.get("columns")
    _check_columns(max([len(columns) if isinstance(columns, list) else 0]
                       + [len(row) for row in value["data"] if isinstance(row, (list, dict))]), label)
    pd = _pandas("a dataframe_split body")
    try:
        return pd.DataFrame(data=value["data"], columns=columns, index=value.get("index"))
    except (ValueError, TypeError, AssertionError) as e:
        raise BadBody(f'"dataframe_split" in {label} does not form a table ({_first_line(e)})') from None


def _number(cell: str):
    """The cell as a float (empty is NaN), or None when it is not a number."""
    text = cell.strip()
    if not text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def _csv(text: str, label: str):
    reader = csv.reader(io.StringIO(text))
    rows, lines = [], []
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append(cells)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise BadBody(f"{label} is not valid CSV at line {reader.line_num} ({e})") from None
    if not rows:
        raise BadBody(f"{label} holds no CSV rows")
    values = [[_number(c) for c in row] for row in rows]
    width = len(rows[0])
    numeric = all(v is not None for row in values for v in row)
    header = (not numeric and len(rows) > 1 and any(
        values[0][j] is None and all(j >= len(row) or row[j] is not None for row in values[1:])
        for j in range(width)))
    if numeric or header:
        body = values[1:] if header else values
        for row, line in zip(body, lines[1:] if header else lines):
            if len(row) != width:
                raise BadBody(f"line {line} of {label} has {len(row)} values where the first row has {width}")
        if not header:
            return np.array(values, dtype=np.float64)
        return _read_csv(text, label, 0, width)
    if width == 1 and all(len(row) == 1 for row in rows):
        return [row[0] for row in rows]  # one column of texts: the inputs of a text model
    return _read_csv(text, label, None, max(len(row) for row in rows))


def _read_csv(text: str, label: str, header, width: int):
    _check_columns(width, label)
    nul = text.find("\0")
    if nul >= 0:  # pandas' C parser ends a cell at a NUL byte and reads the rest of it as missing (NaN)
        raise BadBody(f"line {text.count(chr(10), 0, nul) + 1} of {label} holds a NUL byte, which a CSV table cannot "
                      "carry")
    pd = _pandas("a CSV body with a header or text cells")
    try:
        return pd.read_csv(io.StringIO(text), header=header, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise BadBody(f"{label} cannot be read as a CSV table ({_first_line(e)})") from None


def _npy(data: bytes, label: str) -> np.ndarray:
    fmt = np.lib.format
    f = io.BytesIO(data)
    try:
        version = fmt.read_magic(f)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0,
                  (3, 0): fmt.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"version {version[0]}.{version[1]} is not supported")
        try:
            # numpy's stubs omit max_header_size, which numpy >= 1.24 takes
            shape, fortran, dtype = reader(f, max_header_size=MAX_NPY_HEADER)  # type: ignore[call-arg]
        except TypeError:  # numpy < 1.24 has no max_header_size (its headers are short by construction)
            f.seek(0)
            fmt.read_magic(f)
            shape, fortran, dtype = reader(f)
    except Exception as e:  # numpy raises ValueError, SyntaxError, EOFError... for damaged headers
        raise BadBody(f"{label} is not a readable .npy array ({_first_line(e)[:120]})") from None
    if dtype.hasobject:
        raise BadBody(f"{label} holds Python objects (a pickle), which are refused")
    count = 1
    for n in shape:
        count *= int(n)
    have = len(data) - f.tell()
    if count * dtype.itemsize != have:
        raise BadBody(f"{label}: the .npy header announces {count * dtype.itemsize} bytes of data but {have} follow")
    if dtype.itemsize == 0:
        raise BadBody(f"{label} holds an array of empty items")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C").copy()


# ============================================================================================ encoding

def encode(prediction, accept=None, style=None) -> tuple:
    """``(body bytes, content type)``: ``prediction`` written as ``accept`` asks (an Accept header or a type),
    JSON wrapped as the request ``style`` was (rules in the module docstring)."""
    kind = negotiate(accept)
    shape, value = _outputs(prediction)
    if kind == JSON:
        return _encode_json(shape, value, style), JSON
    if kind == CSV:
        return _encode_csv(shape, value), CSV
    if kind == JSONLINES:
        return _encode_jsonlines(shape, value), JSONLINES
    return _encode_npy(shape, value), NPY


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__array__"))


def _outputs(pred) -> tuple:
    """What the model gave: ``("frame", df)``, ``("named", {name: value})``, ``("several", [arrays])``,
    ``("records", [dicts])`` or ``("one", value)``."""
    if hasattr(pred, "columns") and hasattr(pred, "to_dict"):
        return "frame", pred
    if isinstance(pred, dict):
        return "named", {str(k): v for k, v in pred.items()}
    if isinstance(pred, (list, tuple)) and pred:
        if all(_is_array(p) for p in pred):
            return "several", list(pred)
        if all(isinstance(p, dict) for p in pred):
            return "records", list(pred)
    return "one", pred


def _default(o):
    """JSON for what ``json`` does not know: arrays and numpy scalars, pandas objects, bytes, dates."""
    if hasattr(o, "columns") and hasattr(o, "to_dict"):
        return _records(o)
    if isinstance(o, (bytes, np.bytes_)):
        return bytes(o).decode("utf-8", "replace")
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"a {type(o).__name__} cannot be written as JSON")


def _records(frame) -> list:
    """The rows of a DataFrame for JSON, as ``frame.to_dict(orient="records")`` gives them: one dict per row, numbers
    as Python's own (pandas' ``maybe_box_native``). Built from each column's ``tolist`` (numpy columns of booleans,
    numbers and objects, which it unwraps the same way; an object column's numpy scalars it leaves as they are, and
    they write the same JSON) and zipped: a 1-row frame, as a text classifier answers one request, in a tenth of the
    time of pandas' row-by-row path. Other frames (extension dtypes such as nullable integers, whose missing values
    ``to_dict`` makes None; dates; repeated or no column names) take pandas' own path."""
    columns = list(frame.columns)
    if not columns or not frame.columns.is_unique or not all(
            isinstance(dtype, np.dtype) and dtype.kind in "biufO" for dtype in frame.dtypes):
        return frame.to_dict(orient="records")
    return [dict(zip(columns, row)) for row in zip(*[frame[c].tolist() for c in columns])]


def _dumps(value) -> str:
    try:
        return json.dumps(value, default=_default)
    except (TypeError, ValueError) as e:
        raise NotAcceptable(f"the predictions cannot be written as JSON ({_first_line(e)})") from None


def _encode_json(shape: str, value, style) -> bytes:
    """The JSON answer. An array of booleans, integers or finite floats is written by orjson when installed: the
    same document, as ``json.loads`` reads it back, in a tenth of the time (``json`` spends 0.4 us on each float's
    ``repr``; orjson's shortest round-trip digits are the same digits, some exponents spelled otherwise, ``1e-7``
    for ``1e-07``). NaN and infinities are left to ``json``, which writes them as ``NaN`` and ``Infinity``
    where orjson would write null."""
    quick = (_orjson is not None and shape == "one" and isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
             and value.dtype.itemsize <= 8 and (value.dtype.kind != "f" or bool(np.isfinite(value).all())))
    if quick:
        value = value.tolist()
    elif shape == "frame":
        value = _records(value)
    if style in ("instances", "dataframe_split", "dataframe_records"):
        value = {"predictions": value}
    elif style == "inputs":
        value = {"outputs": value}
    return _orjson.dumps(value) if quick else _dumps(value).encode("utf-8")


def _array(value) -> np.ndarray:
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise NotAcceptable("the predictions are not a rectangular array, so they can only be sent as "
                            "application/json") from None


def _columns(named: dict) -> tuple:
    """Named or several outputs as (header, 2-D blocks) with equal row counts, or NotAcceptable."""
    names, blocks = [], []
    for name, out in named.items():
        arr = _array(out)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        elif arr.ndim > 2:
            raise NotAcceptable(f"output {name} has {arr.ndim} dimensions, which text/csv cannot carry; ask for "
                                "application/json")
        names += [name] if arr.shape[1] == 1 else [f"{name}_{i}" for i in range(arr.shape[1])]
        blocks.append(arr)
    counts = sorted({b.shape[0] for b in blocks})
    if len(counts) > 1:
        raise NotAcceptable(f"the {len(blocks)} outputs have different numbers of rows "
                            f"({', '.join(str(b.shape[0]) for b in blocks)}), so they cannot be written row by row; "
                            "ask for application/json")
    return names, blocks


def _csv_cell(v) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _write_csv(rows, header=None) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        row = [bytes(v).decode("utf-8", "replace") if isinstance(v, bytes) else v for v in row]
        if not all(_csv_cell(v) for v in row):
            raise NotAcceptable("the predictions hold nested values, which text/csv cannot carry; ask for "
                                "application/json")
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def _encode_csv(shape: str, value) -> bytes:
    if shape == "frame":
        return value.to_csv(index=False).encode("utf-8")
    if shape == "records":
        keys = list(dict.fromkeys(k for r in value for k in r))
        return _write_csv(([_plain(r.get(k)) for k in keys] for r in value), [str(k) for k in keys])
    if shape in ("named", "several"):
        named = value if shape == "named" else {f"output{i}": v for i, v in enumerate(value)}
        names, blocks = _columns(named)
        kinds = {b.dtype.kind for b in blocks}
        if kinds == {"f"} or len({b.dtype for b in blocks}) == 1:  # one kind of number: same cells as one array
            fast = _numbers_csv(np.concatenate(blocks, axis=1))
            if fast is not None:
                return (_write_csv([], names) if shape == "named" else b"") + fast
        rows = np.concatenate([b.astype(object) for b in blocks], axis=1).tolist()
        return _write_csv(([_plain(v) for v in row] for row in rows), names if shape == "named" else None)
    arr = _array(value)
    if arr.ndim > 2:
        raise NotAcceptable(f"predictions with {arr.ndim} dimensions cannot be sent as text/csv; ask for "
                            "application/json or application/x-npy")
    fast = _numbers_csv(arr)
    if fast is not None:
        return fast
    rows = arr.tolist() if arr.ndim == 2 else [[v] for v in arr.tolist()] if arr.ndim == 1 else [[arr.item()]]
    return _write_csv(rows)


def _numbers_csv(arr):
    """The bytes :func:`_write_csv` gives for a 1-D or 2-D array of booleans, integers or floats, or None for any
    other array. The same cells -- ``str`` of each Python number ``tolist`` gives (``repr`` for a float, as
    ``csv.writer`` writes it, CPython ``Modules/_csv.c``), none needing quotes -- joined by C-level ``str.join``
    over the whole array instead of one ``writerow`` per row."""
    if arr.dtype.kind not in "biuf" or arr.ndim not in (1, 2) or arr.size == 0:
        return None
    cells = list(map(str, arr.ravel().tolist()))
    width = arr.shape[1] if arr.ndim == 2 else 1
    if width == 1:
        return ("\n".join(cells) + "\n").encode("ascii")
    out = [""] * (2 * len(cells))
    out[0::2] = cells
    out[1::2] = ([","] * (width - 1) + ["\n"]) * arr.shape[0]
    return "".join(out).encode("ascii")


def _plain(v):
    """One value as JSON/CSV-ready Python (numpy scalars unwrapped, bytes decoded)."""
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _rows_of(shape: str, value) -> list:
    """The predictions as one JSON-ready value per row (for JSON Lines)."""
    if shape == "frame":
        return _records(value)
    if shape == "records":
        return value
    if shape in ("named", "several"):
        arrays = [_array(v) for v in (value.values() if shape == "named" else value)]
        arrays = [a.reshape(1) if a.ndim == 0 else a for a in arrays]
        counts = {len(a) for a in arrays}
        if len(counts) > 1:
            raise NotAcceptable(f"the {len(arrays)} outputs have different numbers of rows "
                                f"({', '.join(str(len(a)) for a in arrays)}), so they cannot be written row by "
                                "row; ask for application/json")
        if shape == "named":
            return [dict(zip(value, row)) for row in zip(*arrays)]
        return [list(row) for row in zip(*arrays)]
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if hasattr(value, "tolist"):
        rows = value.tolist()
        return rows if isinstance(rows, list) else [rows]
    return [value]


def _encode_jsonlines(shape: str, value) -> bytes:
    return "".join(_dumps(r) + "\n" for r in _rows_of(shape, value)).encode("utf-8")


def _encode_npy(shape: str, value) -> bytes:
    if shape in ("named", "several"):
        names = list(value) if shape == "named" else [f"output{i}" for i in range(len(value))]
        raise NotAcceptable(f"the model gives {len(names)} outputs ({', '.join(names[:8])}), which one "
                            "application/x-npy array cannot hold; ask for application/json")
    arr = _array(value)
    if arr.dtype.hasobject:
        raise NotAcceptable("the predictions are not a plain numeric or text array, so they cannot be sent as "
                            "application/x-npy; ask for application/json")
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    line = lines[0].strip() if lines else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."
