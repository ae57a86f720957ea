"""Batch transform (``artifact_tools.transform``) against the behaviour SageMaker documents for each parameter.

Expected predictions come from the frameworks themselves (XGBoost's Booster and the joblib-loaded estimators read
straight from the archives), framings from MXNet's and TensorFlow's own record writers, joins from ``json``/pandas.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import booster_predict, sklearn_reference

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import build_sklearn, build_xgboost, make_data  # noqa: E402
from make_transform_fixtures import build_pipeline_models, write_csv  # noqa: E402

from artifact_tools.batch import TransformError, add_transform_command, recordio_frame, tfrecord_frame, transform  # noqa: E402


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    d = tmp_path_factory.mktemp("transform-models")
    return {"xgb": build_xgboost(d), "sk": build_sklearn(d), **build_pipeline_models(d / "pipe")}


@pytest.fixture(scope="module")
def X():
    return make_data(n=300, seed=11)[0].astype(np.float64)


def by_line(artifact, input, output, **kw):
    """A job with records split by line and each response ended by a newline (SageMaker's defaults are neither)."""
    kw.setdefault("split_type", "Line")
    kw.setdefault("assemble_with", "Line")
    return transform(artifact, input, output, **kw)


def csv_values(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=1)


def json_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ defaults

def test_defaults_are_sagemakers(arts, X, tmp_path):
    """SplitType None (the whole object is one request), AssembleWith None (responses concatenated as they are),
    MaxPayloadInMB 6 -- the defaults the SageMaker API reference states -- in the function and on the command line."""
    import argparse
    import inspect

    params = inspect.signature(transform).parameters
    assert (params["split_type"].default, params["assemble_with"].default, params["max_payload_mb"].default) == \
        ("None", "None", 6)
    parser = argparse.ArgumentParser()
    add_transform_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["transform", "a", "b", "c"])
    assert (args.split_type, args.assemble_with, args.max_payload, args.strategy) == ("None", "None", 6, "MultiRecord")
    write_csv(tmp_path / "in" / "a.csv", X[:40])
    write_csv(tmp_path / "in" / "b.csv", X[40:50])
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", accept="application/json")
    for name, rows in (("a.csv", X[:40]), ("b.csv", X[40:50])):
        raw = (tmp_path / "out" / f"{name}.out").read_bytes()
        assert not raw.endswith(b"\n")  # AssembleWith None adds nothing
        assert np.allclose(json.loads(raw), booster_predict(arts["xgb"], rows), atol=1e-6)  # one request per object
    assert s["records_in"] == 2 and s["records_out"] == 2  # a whole object is one record


# ------------------------------------------------------------------------------------------ split & batching

def test_line_multirecord_predictions_match_the_framework(arts, X, tmp_path):
    src = write_csv(tmp_path / "in" / "rows.csv", X)
    write_csv(tmp_path / "in" / "deeper" / "more.csv", X[:7])
    s = by_line(arts["xgb"], tmp_path / "in", tmp_path / "out")
    assert np.allclose(csv_values(tmp_path / "out" / "rows.csv.out"), booster_predict(arts["xgb"], X), atol=1e-6)
    assert np.allclose(csv_values(tmp_path / "out" / "deeper" / "more.csv.out"), booster_predict(arts["xgb"], X[:7]),
                       atol=1e-6)
    assert (s["records_in"], s["records_out"], s["records_failed"], s["inputs_done"]) == (307, 307, 0, 2)
    on_disk = json.loads((tmp_path / "out" / "transform-summary.json").read_text())
    assert on_disk["records_out"] == 307 and on_disk["status"] == "completed"
    assert oct((tmp_path / "out" / "rows.csv.out").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert src.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_mini_batches_never_exceed_max_payload(arts, X, tmp_path):
    src = write_csv(tmp_path / "rows.csv", X)
    lines = src.read_bytes().splitlines()
    limit_mb = 0.002  # 2097 bytes
    by_line(arts["xgb"], src, tmp_path / "out", accept="application/json", max_payload_mb=limit_mb)
    batches = json_lines(tmp_path / "out" / "rows.csv.out")  # one JSON array per request (AssembleWith Line)
    assert len(batches) > 5
    sizes, at = [], 0
    for b in batches:
        body = sum(len(line) + 1 for line in lines[at:at + len(b)])
        sizes.append(body)
        at += len(b)
    assert at == len(lines) and max(sizes) <= int(limit_mb * 1024 * 1024)
    # MultiRecord packs as many as fit: adding the next record would have gone over
    at = 0
    for b, size in zip(batches[:-1], sizes):
        at += len(b)
        assert size + len(lines[at]) + 1 > int(limit_mb * 1024 * 1024)
    assert np.allclose(np.concatenate(batches), booster_predict(arts["xgb"], X), atol=1e-6)


def test_single_record_sends_one_record_per_request(arts, X, tmp_path):
    src = write_csv(tmp_path / "rows.csv", X[:20])
    by_line(arts["xgb"], src, tmp_path / "out", accept="application/json", strategy="SingleRecord")
    batches = json_lines(tmp_path / "out" / "rows.csv.out")
    assert [len(b) for b in batches] == [1] * 20
    assert np.allclose([b[0] for b in batches], booster_predict(arts["xgb"], X[:20]), atol=1e-6)


def test_split_none_sends_the_whole_object_and_refuses_one_over_the_payload(arts, X, tmp_path):
    write_csv(tmp_path / "in" / "small.csv", X[:50])
    write_csv(tmp_path / "in" / "big.csv", np.repeat(X, 20, axis=0))  # > 0.1 MB
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", split_type="None", accept="application/json",
                  max_payload_mb=0.1)
    batches = json_lines(tmp_path / "out" / "small.csv.out")
    assert len(batches) == 1 and np.allclose(batches[0], booster_predict(arts["xgb"], X[:50]), atol=1e-6)
    assert s["records_failed"] == 1 and s["failed"][0]["file"] == "big.csv"
    assert "max payload" in s["failed"][0]["reason"]
    assert (tmp_path / "out" / "big.csv.out").read_bytes() == b""


def test_assemble_with_none_concatenates_responses(arts, X, tmp_path):
    src = write_csv(tmp_path / "rows.csv", X[:30])
    by_line(arts["xgb"], src, tmp_path / "out", accept="application/json", strategy="SingleRecord",
              assemble_with="None")
    raw = (tmp_path / "out" / "rows.csv.out").read_text()
    assert "\n" not in raw and raw.count("][") == 29
    values = json.loads("[" + raw.replace("][", "],[") + "]")
    assert np.allclose([v[0] for v in values], booster_predict(arts["xgb"], X[:30]), atol=1e-6)


def test_recordio_records_written_by_mxnet(arts, X, tmp_path):
    np.bool = bool
    mx = pytest.importorskip("mxnet")
    rows = X[:40].astype(np.float32)
    rows[3, :] = np.frombuffer(struct.pack("<I", 0xCED7230A) * 4, dtype=np.float32)  # the magic inside a record
    path = tmp_path / "in.rec"
    writer = mx.recordio.MXRecordIO(str(path), "w")
    bodies = []
    for row in rows:
        buf = io.BytesIO()
        np.save(buf, row.reshape(1, -1))
        bodies.append(buf.getvalue())
        writer.write(bodies[-1])
    writer.close()
    assert path.read_bytes() == b"".join(recordio_frame(b) for b in bodies)  # our framing is MXNet's
    s = transform(arts["xgb"], path, tmp_path / "out", content_type="application/x-npy", accept="text/csv",
                  split_type="RecordIO", max_payload_mb=0.001)
    assert s["records_out"] == 40
    assert np.allclose(csv_values(tmp_path / "out" / "in.rec.out"), booster_predict(arts["xgb"], rows), atol=1e-6)


def test_tfrecord_records_written_by_tensorflow(arts, X, tmp_path):
    tf = pytest.importorskip("tensorflow")
    rows = X[:25]
    path = tmp_path / "in.tfrecord"
    bodies = [(",".join(repr(float(v)) for v in row) + "\n").encode() for row in rows]
    with tf.io.TFRecordWriter(str(path)) as w:
        for b in bodies:
            w.write(b)
    assert path.read_bytes() == b"".join(tfrecord_frame(b) for b in bodies)  # our framing is TensorFlow's
    s = transform(arts["sk"], path, tmp_path / "out", split_type="TFRecord")
    assert s["records_out"] == 25
    assert np.array_equal(csv_values(tmp_path / "out" / "in.tfrecord.out"),
                          sklearn_reference(arts["sk"]).predict(rows))
    damaged = bytearray(path.read_bytes())
    damaged[len(tfrecord_frame(bodies[0])) + 14] ^= 0xFF  # a data byte of the second record
    (tmp_path / "bad.tfrecord").write_bytes(bytes(damaged))
    s = transform(arts["sk"], tmp_path / "bad.tfrecord", tmp_path / "out2", split_type="TFRecord")
    assert s["records_out"] == 24 and s["failed"][0]["record"] == 2 and "CRC32C" in s["failed"][0]["reason"]


def test_blocks_of_whole_lines_with_bad_lines_inside(arts, tmp_path):
    """Many mini-batches cut as byte blocks: CRLF and blank lines, bad lines in the middle of blocks, a record larger
    than the payload -- each bad one reported at its line, every other prediction the framework's own, in order."""
    X = make_data(n=3000, seed=4)[0].astype(np.float64)
    lines = [",".join(repr(float(v)) for v in row) for row in X]
    bad = {57: "1.0,2.0", 1200: "x,1,2,3", 2999: "1.0,,2.0,3.0,4.0,5.0"}
    huge_at = 2000
    out_lines, numbers, good = [], {}, []
    for i, line in enumerate(lines):
        if i in bad:
            out_lines.append(bad[i])
            numbers[len(out_lines)] = "bad"
        if i == huge_at:
            out_lines.append(",".join(["1.5"] * 20000))  # > 0.05 MB on its own
            numbers[len(out_lines)] = "huge"
        if i % 500 == 3:
            out_lines.append("")  # blank lines are no records
        out_lines.append(line)
        good.append(i)
    src = tmp_path / "rows.csv"
    src.write_bytes(("\r\n".join(out_lines) + "\r\n").encode())
    s = by_line(arts["xgb"], src, tmp_path / "out", max_payload_mb=0.05)
    assert s["records_failed"] == 4 and s["records_out"] == len(X)
    assert [f["line"] for f in s["failed"]] == sorted(numbers)
    assert "max payload" in s["failed"][[f["line"] for f in s["failed"]].index(
        next(n for n, k in numbers.items() if k == "huge"))]["reason"]
    got = csv_values(tmp_path / "out" / "rows.csv.out")
    assert np.allclose(got, booster_predict(arts["xgb"], X), atol=1e-6)
    # the same lines in one process and in two worker processes give the same bytes
    two = by_line(arts["xgb"], src, tmp_path / "two", max_payload_mb=0.05, workers=2)
    assert two["failed"] == s["failed"]
    assert (tmp_path / "two" / "rows.csv.out").read_bytes() == (tmp_path / "out" / "rows.csv.out").read_bytes()


def test_vectorised_csv_encoding_gives_csv_writer_bytes():
    """The codec writes number arrays without a per-row writer; the bytes are those ``csv.writer`` writes for the
    values ``tolist`` gives (the oracle: the standard library's writer)."""
    import csv as csv_module

    from artifact_tools import codec

    def oracle(rows, header=None):
        buf = io.StringIO()
        w = csv_module.writer(buf, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
        return buf.getvalue().encode()

    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(size=400) * 10.0 ** rng.integers(-30, 30, 400),
                           [np.nan, np.inf, -np.inf, -0.0, 1e16, 1e-5, 0.1, 1 / 3]])
    for arr in (vals, vals.astype(np.float32), np.arange(-50, 50, dtype=np.int64), np.arange(10, dtype=np.uint8),
                vals > 0):
        for shaped in (arr, arr[: len(arr) // 2 * 2].reshape(-1, 2), arr[:1]):
            rows = shaped.tolist() if shaped.ndim == 2 else [[v] for v in shaped.tolist()]
            assert codec.encode(shaped, "text/csv")[0] == oracle(rows)
    p, q = vals.astype(np.float32), vals.reshape(-1, 1)
    assert codec.encode({"p": p, "q": q}, "text/csv")[0] == oracle([[a, b] for a, b in zip(p.tolist(), vals.tolist())],
                                                                   ["p", "q"])


# ------------------------------------------------------------------------------------------ data processing

def test_input_filter_join_and_output_filter_on_csv(arts, X, tmp_path):
    ids = np.arange(1000, 1000 + len(X))
    frame = pd.DataFrame(X)
    frame.insert(0, "id", ids)
    src = tmp_path / "rows.csv"
    frame.to_csv(src, header=False, index=False)
    s = by_line(arts["xgb"], src, tmp_path / "out", input_filter="$[1:]", join_source="Input",
                  output_filter="$[0,-1]")
    assert s["records_out"] == len(X)
    out = pd.read_csv(tmp_path / "out" / "rows.csv.out", header=None)
    assert out.shape == (len(X), 2)
    assert out[0].tolist() == ids.tolist()
    assert np.allclose(out[1], booster_predict(arts["xgb"], X), atol=1e-6)
    # join without filters: the input's columns, then the prediction
    by_line(arts["xgb"], src, tmp_path / "out2", input_filter="$[1:]", join_source="Input")
    joined = pd.read_csv(tmp_path / "out2" / "rows.csv.out", header=None)
    assert joined.shape == (len(X), 6) and np.allclose(joined.iloc[:, 1:5], X)


def test_json_lines_features_joined_under_sagemaker_output(arts, X, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "features": row.tolist()}) + "\n" for i, row in enumerate(X)))
    by_line(arts["xgb"], src, tmp_path / "out", content_type="application/jsonlines", input_filter="$.features",
              join_source="Input", output_filter="$['id','SageMakerOutput']")
    got = json_lines(tmp_path / "out" / "rows.jsonl.out")
    assert [g["id"] for g in got] == [f"r{i}" for i in range(len(X))]
    assert set(got[0]) == {"id", "SageMakerOutput"}
    assert np.allclose([g["SageMakerOutput"] for g in got], booster_predict(arts["xgb"], X), atol=1e-6)
    # an input that is no object is kept under SageMakerInput
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(row.tolist()) + "\n" for row in X[:5]))
    by_line(arts["xgb"], plain, tmp_path / "out2", content_type="application/jsonlines", join_source="Input")
    got = json_lines(tmp_path / "out2" / "plain.jsonl.out")
    assert [g["SageMakerInput"] for g in got] == X[:5].tolist()


def test_data_processing_refused_where_records_cannot_be_associated(arts, X, tmp_path):
    src = write_csv(tmp_path / "rows.csv", X[:5])
    with pytest.raises(TransformError, match="split type Line"):
        transform(arts["xgb"], src, tmp_path / "out", split_type="None", join_source="Input")
    with pytest.raises(TransformError, match="JSONPath"):
        transform(arts["xgb"], src, tmp_path / "out", input_filter="$..x")


# ------------------------------------------------------------------------------------------ bad records

def _with_bad_lines(tmp_path: Path, X) -> Path:
    lines = [",".join(repr(float(v)) for v in row) for row in X[:10]]
    lines.insert(3, "1.0,2.0")  # wrong column count: line 4
    lines.insert(7, "a,b,c,d")  # not numbers: line 8
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_records_are_reported_and_skipped(arts, X, tmp_path):
    src = _with_bad_lines(tmp_path, X)
    s = by_line(arts["xgb"], src, tmp_path / "out")
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (12, 10, 2)
    assert [(f["file"], f["line"]) for f in s["failed"]] == [("rows.csv", 4), ("rows.csv", 8)]
    assert all(f["reason"] for f in s["failed"])
    assert np.allclose(csv_values(tmp_path / "out" / "rows.csv.out"), booster_predict(arts["xgb"], X[:10]),
                       atol=1e-6)


def test_fail_fast_stops_and_leaves_no_output(arts, X, tmp_path):
    src = _with_bad_lines(tmp_path, X)
    with pytest.raises(TransformError, match="rows.csv, line 4"):
        by_line(arts["xgb"], src, tmp_path / "out", fail_fast=True)
    assert not (tmp_path / "out" / "rows.csv.out").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]
    assert json.loads((tmp_path / "out" / "transform-summary.json").read_text())["status"] == "stopped"


def test_fail_fast_on_a_damaged_object_names_the_object(arts, X, tmp_path):
    """A RecordIO object whose framing breaks fails as a whole (no record number): fail fast names the object and
    the break, with no record number of None in the sentence."""
    body = (",".join(repr(float(v)) for v in X[0]) + "\n").encode()
    (tmp_path / "bad.rec").write_bytes(recordio_frame(body) + recordio_frame(body)[:6])
    with pytest.raises(TransformError) as e:
        transform(arts["xgb"], tmp_path / "bad.rec", tmp_path / "out", split_type="RecordIO", fail_fast=True)
    assert str(e.value).startswith("bad.rec: the object ends inside") and "None" not in str(e.value)
    assert str(e.value).endswith("; the object is left without output (stopped: fail fast)")
    assert not (tmp_path / "out" / "bad.rec.out").exists()


def test_bad_job_settings_are_one_sentence(arts, X, tmp_path):
    src = write_csv(tmp_path / "rows.csv", X[:5])
    for kw, match in [({"split_type": "Words"}, "split type"), ({"strategy": "Some"}, "batch strategy"),
                      ({"max_payload_mb": 101}, "max payload"), ({"content_type": "image/png"}, "content type"),
                      ({"accept": "image/png"}, "Accept"), ({"workers": 0}, "workers")]:
        with pytest.raises(TransformError, match=match):
            transform(arts["xgb"], src, tmp_path / "out", **kw)
    with pytest.raises(TransformError, match="does not exist"):
        transform(arts["xgb"], tmp_path / "missing.csv", tmp_path / "out")
    with pytest.raises(TransformError, match="at most 5"):
        transform(None, src, tmp_path / "out", pipeline=[arts["scaler"]] * 6)


# ------------------------------------------------------------------------------------------ inputs & workers

def test_manifest_lists_the_objects_under_its_prefix(arts, X, tmp_path):
    write_csv(tmp_path / "data" / "a.csv", X[:5])
    write_csv(tmp_path / "data" / "part" / "b.csv", X[5:9])
    write_csv(tmp_path / "data" / "c.csv", X[9:12])  # not in the manifest
    manifest = tmp_path / "input.manifest"
    manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data") + "/"}, "a.csv", "part/b.csv"]))
    s = by_line(arts["xgb"], manifest, tmp_path / "out")
    assert s["inputs"] == 2 and not (tmp_path / "out" / "c.csv.out").exists()
    assert np.allclose(csv_values(tmp_path / "out" / "part" / "b.csv.out"), booster_predict(arts["xgb"], X[5:9]),
                       atol=1e-6)


def test_two_workers_write_what_one_writes(arts, X, tmp_path):
    for i in range(4):
        write_csv(tmp_path / "in" / f"f{i}.csv", X[i * 50:(i + 1) * 50 + 20])
    one = by_line(arts["sk"], tmp_path / "in", tmp_path / "one", max_payload_mb=0.001)
    two = by_line(arts["sk"], tmp_path / "in", tmp_path / "two", max_payload_mb=0.001, workers=2)
    assert one["records_out"] == two["records_out"] == 280
    for i in range(4):
        assert (tmp_path / "one" / f"f{i}.csv.out").read_bytes() == (tmp_path / "two" / f"f{i}.csv.out").read_bytes()
    assert np.array_equal(csv_values(tmp_path / "two" / "f3.csv.out"),
                          sklearn_reference(arts["sk"]).predict(X[150:220]))


# ------------------------------------------------------------------------------------------ pipelines

def test_pipeline_of_two_models(arts, tmp_path):
    X = arts["raw-x"][:100].astype(np.float64)
    src = write_csv(tmp_path / "rows.csv", X)
    by_line(None, src, tmp_path / "out", pipeline=[arts["scaler"], arts["xgb-scaled"]])
    scaled = sklearn_reference(arts["scaler"]).transform(np.loadtxt(src, delimiter=","))
    assert np.allclose(csv_values(tmp_path / "out" / "rows.csv.out"), booster_predict(arts["xgb-scaled"], scaled),
                       atol=1e-5)


def test_pipeline_of_three_models(arts, tmp_path):
    from sklearn.pipeline import make_pipeline

    X = arts["raw-x"][:100].astype(np.float64)
    src = write_csv(tmp_path / "rows.csv", X)
    by_line(None, src, tmp_path / "out", pipeline=[arts["scaler"], arts["pca"], arts["logreg3"]])
    oracle = make_pipeline(*(sklearn_reference(arts[k]) for k in ("scaler", "pca", "logreg3")))
    assert np.array_equal(csv_values(tmp_path / "out" / "rows.csv.out"), oracle.predict(np.loadtxt(src, delimiter=",")))


# ------------------------------------------------------------------------------------------ kill & resume

KILL_SCRIPT = """
import sys
from artifact_tools.batch import transform
transform(sys.argv[1], sys.argv[2], sys.argv[3], max_payload_mb=0.0005, strategy="MultiRecord", split_type="Line")
"""


def test_resume_after_a_kill_leaves_no_partial_output(arts, tmp_path):
    X = make_data(n=4000, seed=3)[0].astype(np.float64)
    for i in range(6):
        write_csv(tmp_path / "in" / f"f{i}.csv", X)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(arts["xgb"]), str(tmp_path / "in"), str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("f*.csv.out")):
        assert proc.poll() is None, proc.stderr.read().decode()[-500:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in out.glob("f*.csv.out"))
    assert 1 <= len(done) < 6, "the job should have been killed mid-way"
    expected = booster_predict(arts["xgb"], X)
    for name in done:  # whatever exists is complete
        assert np.allclose(csv_values(out / name), expected, atol=1e-6)
    # the same job (its parameters as the killed one's; another job would be refused), resumed
    s = transform(arts["xgb"], tmp_path / "in", out, max_payload_mb=0.0005, strategy="MultiRecord", split_type="Line",
                  resume=True)
    assert s["inputs_skipped"] == len(done) and s["inputs_done"] == 6 - len(done)
    for i in range(6):
        assert np.allclose(csv_values(out / f"f{i}.csv.out"), expected, atol=1e-6)
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------ command line

def test_command_line_wiring(arts, X, tmp_path):
    import argparse

    src = write_csv(tmp_path / "rows.csv", X[:12])
    parser = argparse.ArgumentParser()
    add_transform_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["transform", str(arts["xgb"]), str(src), str(tmp_path / "out"), "--accept",
                              "application/jsonlines", "--strategy", "SingleRecord", "--split-type", "Line"])
    assert args.func(args) == 0
    assert np.allclose(json_lines(tmp_path / "out" / "rows.csv.out"), booster_predict(arts["xgb"], X[:12]),
                       atol=1e-6)
    args = parser.parse_args(["transform", str(arts["xgb"]), str(src), str(tmp_path / "out2"), "--max-payload",
                              "500"])
    with pytest.raises(TransformError, match="max payload"):
        args.func(args)
