"""Batch transform's fast paths give what the plain rules give: several mini-batches of an object predicted in one
call (a bad record among them still reported at its line, every other prediction the framework's own, in order, each
mini-batch still one response), CSV read with pyarrow as Python's ``float`` reads each cell, predictions written as
Python's ``repr`` writes them.

Oracles: XGBoost's Booster and the joblib-loaded estimator read straight from the archives, Python's ``float`` and
``repr`` (and ``csv.writer``) for the texts.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import booster_predict, sklearn_reference, with_bad_lines

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import make_data  # noqa: E402
from make_transform_fixtures import build_joblib, build_xgboost  # noqa: E402

from artifact_tools import batch  # noqa: E402
from artifact_tools.batch import transform  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An XGBoost model and a scikit-learn RandomForest on 6 features (both row-wise: combined calls apply)."""
    from sklearn.ensemble import RandomForestClassifier

    d = tmp_path_factory.mktemp("fast-models")
    X, y = make_data(n=400, d=6, seed=5)
    return {"xgb": build_xgboost(X, y, d / "xgb.tar.gz", rounds=20),
            "rf": build_joblib(RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, y),
                               d / "rf.tar.gz")}


def oracle_predict(name, artifact, X):
    return booster_predict(artifact, X) if name == "xgb" else sklearn_reference(artifact).predict(X)


def csv_text(values) -> bytes:
    """What csv.writer writes for one prediction per row (``str`` of each Python value)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([v] for v in np.asarray(values).tolist())
    return buf.getvalue().encode()


@pytest.mark.parametrize("name", ["xgb", "rf"])
def test_combined_mini_batches_with_bad_lines_in_the_middle(models, name, tmp_path):
    """Many small mini-batches of one file read and predicted together: a text cell, a short row and a value the
    model refuses (infinity: numbers everywhere, so the combined call itself fails) in the middle -- each reported at
    its line, all other rows predicted in order, the bytes those of the framework's own predictions."""
    X = make_data(n=3000, d=6, seed=9)[0].astype(np.float64)
    lines = [",".join(repr(float(v)) for v in row) for row in X]
    bad = {700: "1.5,x,2,3,4,5", 1500: "1.0,2.0", 2300: "1,2,3,inf,5,6"}
    if name == "xgb":
        bad.pop(2300)  # XGBoost takes infinity as a value
    text, expected_lines = with_bad_lines(lines, bad)
    src = tmp_path / "rows.csv"
    src.write_bytes(("\n".join(text) + "\n").encode())
    s = transform(models[name], src, tmp_path / "out", split_type="Line", max_payload_mb=0.01)
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (len(X) + len(bad), len(X), len(bad))
    assert [(f["file"], f["line"]) for f in s["failed"]] == [("rows.csv", n) for n in expected_lines]
    assert all(f["reason"] for f in s["failed"])
    got = (tmp_path / "out" / "rows.csv.out").read_bytes()
    assert got == csv_text(oracle_predict(name, models[name], X))
    # each mini-batch (<= 0.01 MB of lines) is still one response: one JSON array per block with AssembleWith Line
    transform(models[name], src, tmp_path / "json", split_type="Line", max_payload_mb=0.01,
              accept="application/json", assemble_with="Line")
    arrays = [json.loads(x) for x in (tmp_path / "json" / "rows.csv.out").read_text().splitlines()]
    assert len(arrays) > 20 and sum(map(len, arrays)) == len(X)
    assert max(len(a) for a in arrays) * min(len(x) for x in lines) < 0.01 * 1024 * 1024
    assert np.array_equal(np.concatenate(arrays), oracle_predict(name, models[name], X))


def test_combined_and_separate_calls_write_the_same_bytes(models, tmp_path):
    """Two worker processes (groups sent whole to a worker), one process, and mini-batches too large to be grouped
    all give the same output."""
    X = make_data(n=2000, d=6, seed=2)[0].astype(np.float64)
    src = tmp_path / "in" / "rows.csv"
    src.parent.mkdir()
    src.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    one = transform(models["xgb"], src.parent, tmp_path / "one", split_type="Line", max_payload_mb=0.005)
    two = transform(models["xgb"], src.parent, tmp_path / "two", split_type="Line", max_payload_mb=0.005, workers=2)
    whole = transform(models["xgb"], src.parent, tmp_path / "whole", split_type="Line", max_payload_mb=6)
    assert one["records_out"] == two["records_out"] == whole["records_out"] == len(X)
    expected = csv_text(booster_predict(models["xgb"], X))
    for folder in ("one", "two", "whole"):
        assert (tmp_path / folder / "rows.csv.out").read_bytes() == expected


def test_fast_csv_writer_writes_what_repr_writes():
    """pyarrow's cast to text, where it is used, gives the bytes csv.writer writes for ``tolist``'s values."""
    if batch._arrow() is None:
        pytest.skip("pyarrow is not installed: the codec's writer is used")
    rng = np.random.default_rng(3)
    exps = rng.integers(-8, 18, 20000)
    vals = rng.normal(size=20000) * 10.0 ** exps
    vals[::7] = np.round(vals[::7])  # whole numbers
    edges = np.array([1e-4, np.nextafter(1e-4, 0), 1e10, np.nextafter(1e10, 0), 9999999999.5, 0.0, -0.0, 5e-324,
                      np.nan, np.inf, -np.inf, 0.1, 1 / 3, 2 / 3, 1e16, 123.456, -0.00015])
    cases = [np.concatenate([vals, edges]), rng.random(5000), rng.random(5000).astype(np.float32),
             (rng.random(3000) * 1000).astype(np.float16), rng.integers(-2 ** 63, 2 ** 63 - 1, 3000),
             rng.integers(0, 2 ** 64 - 1, 3000, dtype=np.uint64), rng.random((1000, 3)), np.arange(12).reshape(4, 3)]
    written = 0
    for arr in cases:
        rows = arr.tolist() if arr.ndim == 2 else [[v] for v in arr.tolist()]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        got = batch._csv_numbers(arr)
        if got is not None:
            written += 1
            assert got == buf.getvalue().encode(), arr.dtype
    assert written >= 6  # the fast path ran for the plain cases
    assert batch._csv_numbers(np.array([True, False])) is None  # booleans: the codec writes True/False


def test_fast_csv_reader_reads_what_float_reads():
    """An all-number CSV body read by the fast readers is the array of Python's ``float`` of each cell (blank lines
    skipped); bodies the codec reads otherwise are left to it (None)."""
    def floats(text):
        return np.array([[float(c) for c in line.split(",")] for line in text.splitlines() if line.strip()])

    rng = np.random.default_rng(4)
    digits = "\n".join(",".join(repr(float(v)) for v in row) for row in rng.normal(size=(300, 5)) * 1e3)
    long = "0.1000000000000000055511151231257827021181583404541015625,1e-320,1.7976931348623157e308,-0.0,7e22"
    for text in (digits, long, "1,2\r\n\r\n3,4\r\n", " 1.5 ,\t2\n+3,-4e-2\n", "\ufeff1,2\n3,4", "1.,.5\n", "5\n6\n",
                 "nan,1\ninf,2\n"):
        got = batch._numbers(text.encode())
        assert got is not None and got.shape == floats(text.lstrip("\ufeff")).shape, text[:40]
        assert np.array_equal(got, floats(text.lstrip("\ufeff")), equal_nan=True), text[:40]
    for text in ("a,b\n1,2\n", "1,2\n3\n", "1,,2\n", '"1",2\n3,4\n', "1_0,2\n", "nan(1),2\n", "0x10,1\n", ""):
        got = batch._numbers(text.encode())
        if got is not None:  # numpy's reader took it: then as float does
            assert np.array_equal(got, floats(text), equal_nan=True), text
    assert batch._numbers(b"nan(1),2\n") is None  # Arrow takes nan(...), float does not
    assert batch._numbers(b"1,2\n3\n") is None


def _rows_text(X) -> list:
    return [",".join(repr(float(v)) for v in row) for row in X]


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_lines_are_records_never_a_header(models, strategy, tmp_path):
    """With split type Line each line is a record: a first line the codec could take as a CSV header (``NA`` cells,
    a real header) is one record, predicted or reported at its line; a block with ``1_0`` and ``NA`` lines (each fine
    alone) loses none of its good lines. Oracle: XGBoost on each line's values as Python's ``float`` reads them
    (``NA``: a missing value), without the lines that fail."""
    X = make_data(n=300, d=6, seed=11)[0].astype(np.float64)
    lines = _rows_text(X)
    lines[0] = "NA,1,2,3,4,5"
    lines[40] = "1_0,2,3,4,5,6"
    lines[41] = "NA,1,2,3,4,5"
    text = ["f0,f1,f2,f3,f4,f5"] + lines + ["1,abc,3,4,5,6"]
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(text) + "\n")
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line", strategy=strategy)
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (302, 300, 2)
    assert [f["line"] for f in s["failed"]] == [1, 302]
    assert "column 1 holds 'f0'" in s["failed"][0]["reason"]
    assert "column 2 holds 'abc'" in s["failed"][1]["reason"]
    oracle = np.array([[float("nan") if c == "NA" else float(c) for c in line.split(",")] for line in lines])
    got = (tmp_path / "out" / "rows.csv.out").read_bytes()
    assert got == csv_text(booster_predict(models["xgb"], oracle))


def test_bare_carriage_return_is_not_a_row_break(models, tmp_path):
    """A CR inside a line (not before its newline) keeps the line one record: reported at its line as the codec
    reads it, never read by the fast readers as two rows that shift every later prediction."""
    X = make_data(n=300, d=6, seed=12)[0].astype(np.float64)
    lines = _rows_text(X)
    text = lines[:50] + [lines[50] + "\r" + lines[51]] + lines[52:]
    src = tmp_path / "rows.csv"
    src.write_bytes(("\n".join(text) + "\n").encode())
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line")
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (299, 298, 1)
    assert s["failed"][0]["line"] == 51
    kept = np.delete(X, [50, 51], axis=0)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(models["xgb"], kept))


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_a_record_of_exactly_the_max_payload_is_accepted(models, strategy, tmp_path):
    """MaxPayloadInMB is a maximum: a line of exactly that many bytes is sent; one byte more is refused, and the
    message says by how much."""
    X = make_data(n=5, d=6, seed=13)[0].astype(np.float64)
    lines = _rows_text(X)
    limit = 1024  # max_payload_mb = 1/1024

    def padded(line: str, size: int) -> str:  # leading zeros after the sign: the same number, longer text
        sign = "-" if line.startswith("-") else ""
        return sign + "0" * (size - len(line)) + line[len(sign):]

    lines[2], lines[4] = padded(lines[2], limit), padded(lines[4], limit + 1)
    assert (len(lines[2]), len(lines[4])) == (limit, limit + 1)
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(lines) + "\n")
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line", strategy=strategy,
                  max_payload_mb=1 / 1024)
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (5, 4, 1)
    assert s["failed"][0]["line"] == 5
    assert f"has {limit + 1} bytes, more than the {limit} bytes" in s["failed"][0]["reason"]
    expected = csv_text(booster_predict(models["xgb"], X[:4]))
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == expected


def test_lines_after_too_large_lines_are_still_records(models, tmp_path):
    """Two lines larger than the max payload in a row, then short lines that arrive in the same read as them: each
    long line is reported at its line with its own size, and every short line after them is still a record,
    predicted in order (none swallowed into the long line's report). Oracle: XGBoost on the short lines' values;
    the sizes are ``len`` of the long lines."""
    X = make_data(n=40, d=6, seed=14)[0].astype(np.float64)
    lines = _rows_text(X)
    long1, long2 = ",".join(["1"] * 1500), ",".join(["2"] * 700)  # 2999 and 1399 bytes; the limit is 1024
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(lines[:1] + [long1, long2] + lines[1:]) + "\n")
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line", max_payload_mb=1 / 1024)
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (42, 40, 2)
    assert [f["line"] for f in s["failed"]] == [2, 3]
    assert f"has {len(long1)} bytes" in s["failed"][0]["reason"]
    assert f"has {len(long2)} bytes" in s["failed"][1]["reason"]
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(models["xgb"], X))


def _openmp_threads() -> list:
    """The OpenMP thread count of each OpenMP runtime loaded, as the calling thread sees it (threadpoolctl)."""
    import threadpoolctl

    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]


def test_tree_models_predict_on_a_thread_per_core(models, tmp_path):
    """An XGBoost tree model is predicted by one thread per usable core (at most 4), each holding OpenMP to its share
    of the cores for its own calls: the output is XGBoost's own predictions in input order over many small work
    items, and the calling thread's OpenMP thread count is what it was. Oracle: XGBoost's Booster on the rows;
    threadpoolctl for the thread counts, ``os.sched_getaffinity`` for the cores."""
    pytest.importorskip("threadpoolctl")
    import os

    import loaders

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert batch._predict_threads([loaders.load(models["xgb"])]) == (min(cores, 4) if cores > 1 else 1)
    X = make_data(n=6000, d=6, seed=15)[0].astype(np.float64)
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(_rows_text(X)) + "\n")
    before = _openmp_threads()
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line", max_payload_mb=0.02)
    assert _openmp_threads() == before
    assert s["records_out"] == len(X)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(models["xgb"], X))


def test_linear_boosters_and_other_frameworks_predict_on_one_thread(models, tmp_path):
    """XGBoost documents thread-safe prediction for tree boosters only: a ``gblinear`` model, like a scikit-learn
    one, is predicted by one thread (with every core) and still gives XGBoost's own predictions. Oracle: XGBoost's
    Booster trained here."""
    import tempfile

    import xgboost as xgb
    from make_samples import tar_folder

    import loaders

    X, y = make_data(n=300, d=6, seed=16)
    booster = xgb.train({"booster": "gblinear", "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 5)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
        linear = tar_folder(Path(d), tmp_path / "linear.tar.gz")
    assert batch._predict_threads([loaders.load(linear)]) == 1
    assert batch._predict_threads([loaders.load(models["rf"])]) == 1
    X = X.astype(np.float64)
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(_rows_text(X)) + "\n")
    transform(linear, src, tmp_path / "out", split_type="Line", max_payload_mb=0.005)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(linear, X))


def test_single_records_of_a_blas_model_get_the_answer_each_gets_alone(tmp_path):
    """A linear model computes with BLAS matrix products, whose last bits move with the number of rows in the call
    (checked here against scikit-learn itself): SingleRecord records are then predicted one by one, each getting
    exactly the answer scikit-learn gives that row alone -- never joined with their neighbours."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 40))
    model = LinearRegression().fit(X, X @ rng.normal(size=40) + rng.normal(size=300))
    alone = np.array([model.predict(X[i:i + 1])[0] for i in range(len(X))])
    assert (alone != model.predict(X)).any()  # the oracle itself shows the batch effect this test is about
    artifact = build_joblib(model, tmp_path / "linear.tar.gz")
    src = tmp_path / "in" / "rows.csv"
    src.parent.mkdir()
    src.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    out = transform(artifact, src.parent, tmp_path / "out", split_type="Line", strategy="SingleRecord")
    assert out["records_out"] == len(X)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(alone)


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 1, 6 << 20])
def test_newlines_are_counted_as_bytes_count_counts_them(size):
    """Line numbers after each block come from ``_newlines``, counted in steps for large blocks: the count is
    ``bytes.count``'s, newlines at the step boundaries included."""
    rng = np.random.default_rng(size)
    block = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    for i in (0, 65535, 65536, 65537, size - 1):
        if 0 <= i < size:
            block[i] = 10
    block = bytes(block)
    assert batch._newlines(block) == block.count(b"\n")


def _shared(sharing, model, X, helpers: int = 1):
    """``sharing.predict(model, X)`` on this thread while ``helpers`` threads help (:meth:`batch._Sharing.help`),
    as the predicting threads of a job's end do: its result (or its exception), the helpers ended."""
    import threading

    sharing.end()
    with sharing.cond:
        sharing.running += 1  # this thread's work item, which the helpers wait for
    threads = [threading.Thread(target=sharing.help, name=f"helper-{k}") for k in range(helpers)]
    for t in threads:
        t.start()
    try:
        return sharing.predict(model, X)
    finally:
        with sharing.cond:
            sharing.running -= 1
            sharing.cond.notify_all()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)  # the helpers end with the last work item


class _Recorded:
    """A loaded model whose calls are written down (the thread and the number of rows of each), each call slowed
    by 5 ms so that the helpers, woken as the call is offered, are certain to take parts; ``fail`` makes calls from
    threads whose name begins so raise."""

    def __init__(self, model, fail: str | None = None):
        self.model, self.fail, self.calls = model, fail, []

    def predict(self, rows):
        import threading
        import time

        name = threading.current_thread().name
        self.calls.append((name, len(rows)))
        time.sleep(0.005)
        if self.fail is not None and name.startswith(self.fail):
            raise ValueError("this thread's part fails")
        return self.model.predict(rows)


def test_a_call_at_the_jobs_end_is_predicted_in_parts_by_the_idle_threads(models, monkeypatch):
    """Once every input is read, a predict call is cut into parts that the predicting threads left without a work
    item predict too: every row is predicted once, parts on the calling thread and on each helper, and the whole is
    XGBoost's own predictions, bit for bit. Oracle: XGBoost's Booster on the rows."""
    import threading

    import loaders

    monkeypatch.setattr(batch, "SHARED_ROWS", 100)
    X = make_data(n=5040, d=6, seed=21)[0].astype(np.float64)
    model = _Recorded(loaders.load(models["xgb"]))
    got = _shared(batch._Sharing(3), model, X, helpers=2)
    assert got.dtype == np.float32 and np.array_equal(got, booster_predict(models["xgb"], X))
    assert {name for name, _ in model.calls} == {threading.current_thread().name, "helper-0", "helper-1"}
    sizes = [n for _, n in model.calls]
    assert sum(sizes) == len(X)
    # guided self-scheduling: a third of the rows left each time, at least 100, no part under 50
    assert max(sizes) == len(X) // 3 and min(sizes) >= 50 and 8 <= len(sizes) <= 20


def test_a_shared_call_whose_part_fails_is_predicted_whole(models, monkeypatch):
    """A part that fails makes the owner predict the rows whole, as without sharing: its answer when the rows are
    good, and the whole call's own error when they are not. Oracle: XGBoost's Booster on the rows."""
    import loaders

    monkeypatch.setattr(batch, "SHARED_ROWS", 100)
    X = make_data(n=3000, d=6, seed=22)[0].astype(np.float64)
    loaded = loaders.load(models["xgb"])
    model = _Recorded(loaded, fail="helper")
    got = _shared(batch._Sharing(), model, X)
    assert np.array_equal(got, booster_predict(models["xgb"], X))
    assert any(name == "helper-0" for name, _ in model.calls) and model.calls[-1][1] == len(X)  # then whole
    with pytest.raises(Exception) as whole:
        loaded.predict(X[:, :4])
    with pytest.raises(type(whole.value)) as shared:
        _shared(batch._Sharing(), _Recorded(loaded), X[:, :4])
    assert str(shared.value) == str(whole.value)
    assert batch._Sharing().predict(loaded, X[:150]) is None  # fewer rows than two parts: predicted whole


def test_a_job_whose_last_items_are_shared_writes_xgboosts_predictions(models, tmp_path, monkeypatch):
    """A job on predicting threads, its calls cut into parts of 64 rows at its end, over many work items of
    mini-batches of different sizes: the output is XGBoost's own predictions in input order. Oracle: XGBoost's
    Booster on the rows."""
    monkeypatch.setattr(batch, "SHARED_ROWS", 64)
    monkeypatch.setattr(batch, "THREAD_GROUP_BYTES", 64 << 10)
    X = make_data(n=12000, d=6, seed=23)[0].astype(np.float64)
    src = tmp_path / "rows.csv"
    src.write_text("\n".join(_rows_text(X)) + "\n")
    s = transform(models["xgb"], src, tmp_path / "out", split_type="Line", max_payload_mb=0.03)
    assert s["records_out"] == len(X)
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(models["xgb"], X))
