"""artifact_tools.codec: every decoding and encoding rule once. Expected values come from independent readers of
the same bytes (numpy.genfromtxt as the SageMaker inference toolkit reads text/csv, pandas.read_csv as MLflow's
scoring server does, json, numpy.load, pandas.read_json) and from MLflow's documented request examples, written
here as literal bodies."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifact_tools import codec
from artifact_tools.errors import ArtifactError

ROOT = Path(__file__).resolve().parent.parent


def refused(kind: type, body, content_type, status: int) -> str:
    with pytest.raises(kind) as e:
        codec.decode(body, content_type)
    assert e.value.status == status and isinstance(e.value, ArtifactError)
    message = str(e.value)
    assert message and "\n" not in message and len(message) < 400
    return message


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# ============================================================================================ text/csv

def test_csv_without_header_reads_as_the_toolkit_does_with_empty_cells_as_nan():
    body = b"1.5,2,-3e-2\n4,,6\n\n7,8,nan\n"
    got = codec.decode(body, "text/csv").data
    want = np.genfromtxt(io.BytesIO(body), delimiter=",")  # sagemaker_inference/decoder.py's reader
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_csv_header_is_told_by_content_and_read_as_pandas_reads_it():
    body = b"age,city,income\n31,paris,\n45,,52000.5\n"
    got = codec.decode(body, "text/csv").data
    pd.testing.assert_frame_equal(got, pd.read_csv(io.BytesIO(body)))  # MLflow's text/csv reader
    numeric = b"a,b\n1,2\n3,4\n"
    pd.testing.assert_frame_equal(codec.decode(numeric, "text/csv").data, pd.read_csv(io.BytesIO(numeric)))


def test_csv_of_texts_one_column_is_a_list_several_a_table():
    body = b'a great movie\n"bad, really bad"\n\nfine\n'
    assert codec.decode(body, "text/csv").data == [r[0] for r in csv.reader(io.StringIO(body.decode())) if r]
    table = b"red,small\nblue,large\n"
    pd.testing.assert_frame_equal(codec.decode(table, "text/csv").data, pd.read_csv(io.BytesIO(table), header=None))


def test_csv_refusals():
    assert "has 2 values where the first row has 3" in refused(codec.BadBody, b"1,2,3\n4,5\n", "text/csv", 400)
    refused(codec.BadBody, b"\n \n", "text/csv", 400)
    refused(codec.BadBody, b"\xff\xfe1,2", "text/csv", 400)
    refused(codec.BadBody, b'"' + b"x" * 200_000 + b'"', "text/csv", 400)  # over csv's field size limit


def test_charset_and_byte_order_mark():
    text = "1.5,2\n3,4\n"
    want = np.genfromtxt(io.StringIO(text), delimiter=",")
    np.testing.assert_array_equal(codec.decode(text.encode("utf-16"), "text/csv; charset=UTF-16").data, want)
    np.testing.assert_array_equal(codec.decode(b"\xef\xbb\xbf" + text.encode(), "text/csv").data, want)
    assert "charset" in refused(codec.UnsupportedType, text.encode(), "text/csv; charset=no-such", 415)


# ============================================================================================ application/json

def test_json_list_of_rows_and_nulls():
    body = b"[[1, 2.5], [3, null]]"
    got = codec.decode(body, "application/json")
    assert got.style is None
    np.testing.assert_array_equal(got.data, np.array(json.loads(body), dtype=np.float64))
    ints = codec.decode(b"[[1, 2], [3, 4]]", "application/json").data
    np.testing.assert_array_equal(ints, np.array(json.loads(b"[[1, 2], [3, 4]]")))  # the toolkit's np.array(...)


def test_tf_serving_row_and_columnar_formats():
    rows = {"instances": [[1.0, 2.0], [3.0, 4.0]]}
    got = codec.decode(json.dumps(rows).encode(), "application/json")
    assert got.style == "instances"
    np.testing.assert_array_equal(got.data, np.array(rows["instances"]))
    named = {"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
    frame = codec.decode(json.dumps(named).encode(), "application/json").data
    pd.testing.assert_frame_equal(frame, pd.read_json(io.StringIO(json.dumps(named["instances"])), orient="records"))
    columnar = {"inputs": {"tokens": [[1, 2, 3]], "mask": [[1, 1, 0]]}, "signature_name": "serving_default"}
    got = codec.decode(json.dumps(columnar).encode(), "application/json")
    assert got.style == "inputs" and got.params == {"signature_name": "serving_default"}
    assert set(got.data) == {"tokens", "mask"}
    for name, value in columnar["inputs"].items():
        np.testing.assert_array_equal(got.data[name], np.array(value))


def test_mlflow_documented_request_examples():
    # the four request forms of MLflow's scoring protocol, as its "Deploy MLflow models" docs write them
    split = b'{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}'
    records = b'{"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]}'
    instances = b'{"instances": [{"a": "s1", "b": 1}, {"a": "s2", "b": 2}, {"a": "s3", "b": 3}]}'
    inputs = b'{"inputs": {"a": ["s1", "s2", "s3"], "b": [1, 2, 3], "c": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}}'
    want = pd.read_json(io.StringIO(json.dumps(json.loads(split)["dataframe_split"])), orient="split")
    got = codec.decode(split, "application/json")
    assert got.style == "dataframe_split"
    pd.testing.assert_frame_equal(got.data, want)
    got = codec.decode(records, "application/json")
    assert got.style == "dataframe_records"
    pd.testing.assert_frame_equal(got.data, want)
    frame = codec.decode(instances, "application/json").data
    assert frame.to_dict(orient="list") == {"a": ["s1", "s2", "s3"], "b": [1, 2, 3]}
    got = codec.decode(inputs, "application/json").data
    assert got["a"] == ["s1", "s2", "s3"]  # texts stay texts
    np.testing.assert_array_equal(got["c"], np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    with_params = b'{"inputs": ["good movie"], "params": {"top_k": 2}}'
    got = codec.decode(with_params, "application/json")
    assert got.data == ["good movie"] and got.params == {"top_k": 2}


def test_json_refusals():
    refused(codec.BadBody, b"[[1, 2],", "application/json", 400)
    refused(codec.BadBody, b'"just a string"', "application/json", 400)
    refused(codec.BadBody, b"[]", "application/json", 400)
    refused(codec.BadBody, b'{"rows": [[1]]}', "application/json", 400)
    refused(codec.BadBody, b'{"instances": [[1]], "inputs": [[1]]}', "application/json", 400)
    assert "extra" in refused(codec.BadBody, b'{"instances": [[1]], "extra": 1}', "application/json", 400)
    refused(codec.BadBody, b'{"dataframe_split": {"data": [[1, 2]], "columns": ["a"]}}', "application/json", 400)
    started = time.monotonic()
    refused(codec.BadBody, b"[" * 100_000, "application/json", 400)
    nested = b"[" * (codec.MAX_DEPTH + 1) + b"1" + b"]" * (codec.MAX_DEPTH + 1)
    assert "levels deep" in refused(codec.BadBody, nested, "application/json", 400)
    assert time.monotonic() - started < 2


# ============================================================================================ other types

def test_jsonlines_rows_and_aliases():
    rows = [[1.0, 2.0], [3.0, 4.5]]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    for ctype in ("application/jsonlines", "application/x-jsonlines; charset=utf-8", "application/jsonl"):
        np.testing.assert_array_equal(codec.decode(body, ctype).data, np.array([json.loads(line)
                                                                                for line in body.splitlines()]))
    assert "line 2" in refused(codec.BadBody, b"[1, 2]\n[1, 2,", "application/jsonlines", 400)


def test_npy_read_as_numpy_reads_it_and_checked_first():
    arr = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4) / 7)
    got = codec.decode(npy(arr), "application/x-npy").data
    want = np.load(io.BytesIO(npy(arr)), allow_pickle=False)
    assert got.dtype == want.dtype and got.flags.writeable
    np.testing.assert_array_equal(got, want)
    assert "pickle" in refused(codec.BadBody, npy(np.array([{"a": 1}], dtype=object)), "application/x-npy", 400)
    refused(codec.BadBody, npy(arr)[:-8], "application/x-npy", 400)
    refused(codec.BadBody, b"not an npy file at all", "application/x-npy", 400)
    # a header announcing a terabyte over a few bytes of data is refused before anything is allocated
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 11,)})
    started = time.monotonic()
    assert "announces" in refused(codec.BadBody, header.getvalue() + b"\0" * 64, "application/x-npy", 400)
    assert time.monotonic() - started < 1


def test_text_plain_is_texts_one_per_line():
    body = "good movie\n\nbad, awful movie\r\n".encode()
    assert codec.decode(body, "text/plain; charset=utf-8").data == [t for t in body.decode().splitlines() if t]


def test_unsupported_and_empty():
    refused(codec.UnsupportedType, b"<a/>", "application/xml", 415)
    refused(codec.UnsupportedType, b"1,2", None, 415)
    refused(codec.BadBody, b"", "text/csv", 400)
    with pytest.raises(codec.BadBody):
        codec.decode(b"1,2\n" * 10, "text/csv", max_bytes=8)


# ============================================================================================ negotiation

@pytest.mark.parametrize("accept,want", [
    (None, codec.JSON), ("", codec.JSON), ("*/*", codec.JSON), ("application/json", codec.JSON),
    ("text/*", codec.CSV), ("text/csv;q=0.5, application/x-npy", codec.NPY), ("application/*", codec.JSON),
    ("application/xml, text/csv;q=0.1", codec.CSV), ("application/x-jsonlines", codec.JSONLINES)])
def test_negotiate(accept, want):
    assert codec.negotiate(accept) == want


@pytest.mark.parametrize("accept", ["application/xml", "image/*", "application/json;q=0"])
def test_negotiate_refuses(accept):
    with pytest.raises(codec.NotAcceptable) as e:
        codec.negotiate(accept)
    assert e.value.status == 406 and "application/json" in str(e.value)


def test_media_type_parameters():
    assert codec.media_type('Text/CSV; Charset="UTF-8"; header=present') == ("text/csv",
                                                                            {"charset": "UTF-8", "header": "present"})


# ============================================================================================ encoding

def test_json_keeps_the_request_style():
    pred = np.array([0.25, 1.0])
    assert json.loads(codec.encode(pred, "application/json")[0]) == pred.tolist()
    assert json.loads(codec.encode(pred, None, "instances")[0]) == {"predictions": pred.tolist()}
    assert json.loads(codec.encode(pred, "*/*", "inputs")[0]) == {"outputs": pred.tolist()}
    assert json.loads(codec.encode(pred, None, "dataframe_split")[0]) == {"predictions": pred.tolist()}
    frame = pd.DataFrame({"label": ["a", "b"], "score": [0.5, 0.25]})
    assert json.loads(codec.encode(frame, None)[0]) == frame.to_dict(orient="records")
    texts = np.array([b"yes", b"no"])
    assert json.loads(codec.encode(texts, None)[0]) == ["yes", "no"]


def test_csv_and_jsonlines_and_npy_of_one_array():
    pred = np.random.default_rng(0).normal(size=(5, 3))
    body, ctype = codec.encode(pred, "text/csv")
    assert ctype == "text/csv"
    np.testing.assert_array_equal(np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2), pred)  # exact round trip
    labels = np.array([0, 1, 1])
    assert codec.encode(labels, "text/csv")[0].decode().splitlines() == ["0", "1", "1"]
    lines = codec.encode(pred, "application/jsonlines")[0].decode().splitlines()
    assert [json.loads(line) for line in lines] == pred.tolist()
    back = np.load(io.BytesIO(codec.encode(pred.astype(np.float32), "application/x-npy")[0]), allow_pickle=False)
    np.testing.assert_array_equal(back, pred.astype(np.float32))
    frame = pd.DataFrame({"label": ["a,b", "c"], "score": [0.5, 0.25]})
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(codec.encode(frame, "text/csv")[0])), frame)
    with pytest.raises(codec.NotAcceptable):
        codec.encode(np.zeros((2, 2, 2)), "text/csv")
    with pytest.raises(codec.NotAcceptable):
        codec.encode([{"a": 1}, "x"], "application/x-npy")


def test_several_outputs_of_different_widths():
    rng = np.random.default_rng(1)
    outs = [rng.normal(size=(4, w)).astype(np.float32) for w in (1, 3, 2, 5)]  # as a 4-output Gluon network gives
    got = json.loads(codec.encode(outs, "application/json")[0])
    assert got == [o.tolist() for o in outs]
    csv_rows = np.loadtxt(io.BytesIO(codec.encode(outs, "text/csv")[0]), delimiter=",", ndmin=2)
    np.testing.assert_array_equal(csv_rows, np.hstack(outs).astype(np.float64))
    lines = [json.loads(line) for line in codec.encode(outs, "application/jsonlines")[0].decode().splitlines()]
    assert lines == [[o[i].tolist() for o in outs] for i in range(4)]
    with pytest.raises(codec.NotAcceptable, match="4 outputs"):
        codec.encode(outs, "application/x-npy")
    with pytest.raises(codec.NotAcceptable, match="different numbers of rows"):
        codec.encode([np.zeros((4, 2)), np.zeros((1, 2))], "text/csv")


def test_named_outputs():
    named = {"probabilities": np.array([[0.25, 0.75], [0.5, 0.5]]), "classes": np.array([1, 0])}
    assert json.loads(codec.encode(named, None, "inputs")[0]) == {"outputs": {k: v.tolist() for k, v in named.items()}}
    table = pd.read_csv(io.BytesIO(codec.encode(named, "text/csv")[0]))
    assert list(table.columns) == ["probabilities_0", "probabilities_1", "classes"]
    np.testing.assert_array_equal(table.to_numpy(), np.hstack([named["probabilities"], named["classes"][:, None]]))
    lines = [json.loads(line) for line in codec.encode(named, "application/jsonlines")[0].decode().splitlines()]
    assert lines == [{"probabilities": [0.25, 0.75], "classes": 1}, {"probabilities": [0.5, 0.5], "classes": 0}]


def test_records_as_a_pipeline_gives_them():
    records = [{"label": "POSITIVE", "score": np.float32(0.75)}, {"label": "NEGATIVE", "score": np.float32(0.5)}]
    assert json.loads(codec.encode(records, None)[0]) == [{"label": "POSITIVE", "score": 0.75},
                                                           {"label": "NEGATIVE", "score": 0.5}]
    table = pd.read_csv(io.BytesIO(codec.encode(records, "text/csv")[0]))
    assert table.to_dict(orient="records") == [{"label": "POSITIVE", "score": 0.75},
                                               {"label": "NEGATIVE", "score": 0.5}]


# ============================================================================================ files and the copy

def test_read_file_tells_the_format_by_content(tmp_path):
    rows = np.random.default_rng(2).normal(size=(3, 2))
    cases = {"a.data": npy(rows), "b.data": json.dumps({"instances": rows.tolist()}).encode(),
             "c.data": "".join(json.dumps(r) + "\n" for r in rows.tolist()).encode(),
             "d.data": "\n".join(",".join(repr(v) for v in r) for r in rows.tolist()).encode()}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        np.testing.assert_array_equal(codec.read_file(str(tmp_path / name)).data, rows)
    assert codec.read_file(str(tmp_path / "b.data")).style == "instances"
    with pytest.raises(ArtifactError, match="does not exist"):
        codec.read_file(str(tmp_path / "missing.csv"))
    with pytest.raises(ArtifactError, match="not a file"):
        codec.read_file(str(tmp_path))
    (tmp_path / "bad.json").write_bytes(b"[[1, 2], [3")
    with pytest.raises(codec.BadBody, match="bad.json is not valid JSON"):
        codec.read_file(str(tmp_path / "bad.json"))


def test_the_file_works_alone_as_exports_copy_it(tmp_path):
    """The codec needs only the standard library and numpy: a verbatim copy runs where artifact-tools is absent."""
    (tmp_path / "_codec.py").write_bytes((ROOT / "artifact_tools" / "codec.py").read_bytes())
    script = ("import sys\nsys.modules['artifact_tools'] = None\nsys.modules['pandas'] = None\n"
              "import _codec\n"
              "assert _codec._Base.__bases__ == (Exception,)\n"
              "print(_codec.decode(b'1,2\\n3,', 'text/csv').data.tolist())\n"
              "print(_codec.encode([[1.5]], '*/*'))\n"
              "try:\n    _codec.decode(b'a,b\\n1,2\\n', 'text/csv')\nexcept _codec.BadBody as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[[1.0, 2.0], [3.0, nan]]"
    assert lines[1] == "(b'[[1.5]]', 'application/json')"
    assert "needs pandas" in lines[2]


def test_json_rows_of_numbers_read_as_json_and_numpy_read_them():
    """Bodies of numeric rows (decoded on a short path, codec._numbers) give exactly numpy's array of json's
    values, dtype included; everything around them (nulls, texts, ragged rows, records, parameters, nesting too
    deep) still follows the general rules."""
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(7, 3)).tolist()
    ints = rng.integers(-(2**40), 2**40, size=(4, 2)).tolist()
    for doc, style in [(rows, None), ({"inputs": rows}, "inputs"), ({"instances": ints}, "instances"),
                       ({"inputs": [True, False]}, "inputs"), ({"instances": [[[1, 2], [3, 4]]]}, "instances"),
                       ([[1, 2.5], [1e308, -0.0]], None)]:
        body = json.dumps(doc).encode()
        got = codec.decode(body, "application/json")
        want = np.asarray(json.loads(body)[style] if style else json.loads(body))
        assert got.style == style and got.params == {}
        assert isinstance(got.data, np.ndarray) and got.data.dtype == want.dtype and got.data.shape == want.shape
        assert np.array_equal(got.data, want) and np.array_equal(np.signbit(got.data), np.signbit(want))
    assert codec.decode(b'{"inputs": [[1, 2]], "parameters": {"top_k": 2}}', codec.JSON).params == {"top_k": 2}
    nulls = codec.decode(b'{"inputs": [[1, null]]}', codec.JSON).data
    assert nulls.dtype == np.float64 and nulls[0, 0] == 1 and np.isnan(nulls[0, 1])
    big = codec.decode(b"[[100000000000000000000000000, 1]]", codec.JSON).data  # past int64: as floats
    assert big.dtype == np.float64 and big.tolist() == [[float(10**26), 1.0]]
    assert codec.decode(b'[["a", 1]]', codec.JSON).data == [["a", 1]]
    assert codec.decode(b'[[1], [2, 3]]', codec.JSON).data == [[1], [2, 3]]
    assert isinstance(codec.decode(b'{"inputs": [{"a": 1}]}', codec.JSON).data, pd.DataFrame)
    assert "nests JSON more than" in refused(codec.BadBody, b"[" * 70 + b"]" * 70, codec.JSON, 400)
    assert "holds no rows" in refused(codec.BadBody, b'{"inputs": []}', codec.JSON, 400)


def test_frames_are_written_as_pandas_writes_their_records():
    """A DataFrame answer (codec._records) writes the JSON of pandas' own ``to_dict(orient="records")``, for numpy
    columns of every kind and for the frames that take pandas' path (nullable integers, dates, repeated names)."""
    import warnings

    frames = [
        pd.DataFrame({"label": ["LABEL_0", "LABEL_1"], "score": np.array([0.1, 0.7], dtype=np.float32)}),
        pd.DataFrame({"i": np.array([1, -2], dtype=np.int8), "u": np.array([3, 2**63], dtype=np.uint64),
                      "b": [True, False], "f": [np.nan, 1.5], 7: ["x", None]}),
        pd.DataFrame({"o": [np.float32(1.5), "s", np.int64(3), None, [1, 2]]}),
        pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "t": pd.to_datetime(["2020-01-01", "2021-02-03"])}),
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
    ]
    for frame in frames:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas warns of the repeated column names
            want = json.dumps({"predictions": frame.to_dict(orient="records")}, default=codec._default)
            body, ctype = codec.encode(frame, codec.JSON, "instances")
            lines, _ = codec.encode(frame, codec.JSONLINES)
        assert ctype == codec.JSON and body.decode() == want
        records = json.loads(want)["predictions"]
        assert lines.decode().splitlines() == [json.dumps(r, default=codec._default) for r in records]


def _same_json(a, b) -> bool:
    """Equal documents with equal types at every level (``1 == 1.0`` and ``nan != nan`` would mislead ``==``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


JSON_EDGES = ["1E400", "-1E400", '{"a":1,"a":2}', "[1e-400]", "-0", "[-0.0]", "18446744073709551615",
              "18446744073709551616", "-9223372036854775809", "9223372036854775808", '"\\ud800"', '"\\u0000"',
              "[1.7976931348623157e308]", "[4.9e-324]", "[1,]", "01", "[.5]", "NaN", "[Infinity, -Infinity]",
              "1.5e+999999999999", "123456789012345678901234567890.5", "0.1000000000000000055511151231257827",
              '"\\uD834\\uDD1E"', "[true,false,null]", '{"":1}', "9007199254740993", " [1] ", "[" * 2000 + "]" * 2000,
              '["\ud800"]', "[\u0661]", '["\u00e9", 1234567890123456789]', "[1234567890123456789]",
              "[123456789012345678]", '["x1234567890123456789"]']


@pytest.mark.parametrize("text", JSON_EDGES)
def test_json_is_read_as_the_standard_library_reads_it(text):
    """Whichever parser reads a body (orjson when installed), the document is ``json.loads``'s, types included, and
    what ``json`` refuses is refused."""
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            codec._loads(text)
        return
    assert _same_json(codec._loads(text), expected), text[:80]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
                    max_leaves=30))
def test_any_json_document_reads_back_as_json_reads_it(doc):
    text = json.dumps(doc)
    assert _same_json(codec._loads(text), json.loads(text)), text[:200]


@pytest.mark.parametrize("body", [b"5,\x006,7,8\n", b"a,b\n1,x\x00y\n", b"x,1\ny,2\n\x00,3\n"])
def test_a_nul_byte_in_a_csv_table_is_refused_not_read_as_missing(body):
    """pandas does not read a cell holding a NUL byte as sent (NaN, or the text cut at the NUL; checked here, so
    the test follows pandas): such a body is refused with its line, never predicted with another value."""
    sent = [c for row in csv.reader(io.StringIO(body.decode())) for c in row if "\0" in c]
    read = pd.read_csv(io.BytesIO(body), header=None).to_numpy().ravel().tolist()
    assert sent and not any(c in read for c in sent)
    with pytest.raises(codec.BadBody, match="line [0-9]+ of the request body holds a NUL byte"):
        codec.decode(body, "text/csv")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["float64", "float32", "float16", "int64", "uint64", "uint8", "bool"]),
       st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=2),
       st.sampled_from([None, "inputs", "instances"]), st.integers(min_value=0, max_value=2 ** 32 - 1))
def test_json_answers_are_the_documents_json_writes(dtype, shape, style, seed):
    """Whichever writer writes a JSON answer (orjson for arrays of finite numbers, when installed), the answer
    reads back as the standard library's ``json.dumps`` of the same predictions (``tolist``, wrapped as the
    request style asks); NaN and infinities are written as ``json`` writes them."""
    rng = np.random.default_rng(seed)
    values = np.asarray(rng.normal(size=shape) * 10.0 ** rng.integers(-30, 30, size=shape))  # (0-d for shape [])
    if dtype == "bool":
        arr = values > 0
    elif dtype.startswith(("int", "uint")):
        bounds = np.iinfo(dtype)
        arr = np.asarray(rng.integers(bounds.min, bounds.max, size=shape, dtype=dtype, endpoint=True))
    else:
        arr = values.astype(dtype)
        if arr.size and rng.random() < 0.3:
            arr.flat[rng.integers(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
    listed = arr.tolist()
    wrapped = {"outputs": listed} if style == "inputs" else {"predictions": listed} if style else listed
    body, ctype = codec.encode(arr, "application/json", style)
    assert ctype == "application/json"
    expected = json.dumps(wrapped)
    assert _same_json(json.loads(body), json.loads(expected)), (body[:200], expected[:200])
    for word in ("NaN", "Infinity"):
        assert (word in body.decode()) == (word in expected)


@pytest.mark.parametrize("offset", [-30, -19, -10, -1, 0, 1])
def test_a_long_integer_across_the_digit_run_step_is_read_as_json_reads_it(offset):
    """The 19-digit runs that keep a body from orjson are looked for a megabyte at a time: a long integer whose
    digits straddle a step's end is still found, and read exactly, as ``json`` reads it."""
    head = "[" + "1," * ((codec._RUN_STEP + offset) // 2)
    text = head + "12345678901234567890123" + "]"
    assert len(head) <= codec._RUN_STEP + offset + 1
    assert _same_json(codec._loads(text), json.loads(text))


@pytest.mark.parametrize("text", [
    '[[123456789012345678901, 2], [3]]',  # ragged: no array, the document as json reads it
    '{"instances": [[1.5, -123456789012345678901234], [2.5]]}',
    '[[1.5, 123456789012345678901]]',  # an array of floats holding an integer outside 64 bits
    '{"inputs": [[18446744073709551616, 0.25]]}',
    '[[9223372036854775807, -9223372036854775808]]',  # the int64 bounds: integers, read exactly
    '[[0.1, 9.3e18, -9.3e18]]',  # floats of 2**63 and more: the text is looked at again, and read the same
])
def test_rows_read_by_orjson_are_those_json_reads(text):
    """Rows of numbers are read by orjson without the look for 19-digit runs, and looked at again only when the
    array holds a float of 2**63 or more (an integer orjson made a float of): what ``decode`` gives is what it makes
    of ``json.loads``' document -- exact Python integers where no array is made."""
    got = codec.decode(text.encode(), "application/json").data
    doc = json.loads(text)
    rows = doc if isinstance(doc, list) else next(iter(doc.values()))
    if isinstance(got, np.ndarray):
        assert got.tolist() == np.asarray(rows, dtype=got.dtype).tolist()
        assert got.dtype == (np.int64 if all(type(v) is int for r in rows for v in r) else np.float64)
    else:
        assert got == rows and all(type(a) is type(b) for r, s in zip(got, rows) for a, b in zip(r, s))
