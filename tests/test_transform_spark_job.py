"""``transform(..., engine="spark")``: the SageMaker Batch Transform job run as Spark tasks on ``local[2]``, objects
split by line cut into byte ranges. Its outputs and summaries are checked against the frameworks' own predictions
and against the local engine's job on the same inputs (byte for byte where the module docstring says they agree),
with ranges made small so that lines, bad records, blank lines and oversized records fall on every side of a cut."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import booster_predict, sklearn_reference

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import build_xgboost, make_data  # noqa: E402
from make_transform_fixtures import build_pipeline_models, write_csv  # noqa: E402

from artifact_tools import batch  # noqa: E402
from artifact_tools.batch import TransformError, recordio_frame, transform  # noqa: E402


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    d = tmp_path_factory.mktemp("spark-job-models")
    return {"xgb": build_xgboost(d), **build_pipeline_models(d / "pipe")}


@pytest.fixture
def small_ranges(monkeypatch):
    """Byte ranges of about 2 KB: a few hundred lines each, so that every input below is cut many times."""
    monkeypatch.setattr(batch, "SPARK_RANGE_BYTES", 2048)
    monkeypatch.setattr(batch, "SPARK_MIN_RANGE_BYTES", 1024)


def cells(row) -> str:
    return ",".join(repr(float(v)) for v in row)


def messy_inputs(folder: Path, X) -> None:
    """Two CSV objects (one in a sub-folder) whose lines fall across range cuts: bad lines, blank lines, CRLF line
    ends, a line longer than the max payload, no newline after the last line."""
    lines = [cells(r) for r in X]
    lines[7] = "1,2,oops,4"  # not a number
    lines[150] = "1,2"  # another width
    lines[151] = ""  # blank: no record
    lines[152] = "  "
    lines[260] = ",".join(["1.5"] * 800)  # longer than the max payload below
    lines[300] += "\r"  # CRLF
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.csv").write_text("\n".join(lines) + "\n")
    (folder / "sub" / "b.csv").write_text("\n".join(lines[:333]))  # no final newline


def outputs(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != batch.SUMMARY}


COUNTS = ("inputs_done", "inputs_failed", "records_in", "records_out", "records_failed", "failed")


@pytest.mark.parametrize("params", [
    {"split_type": "Line", "max_payload_mb": 0.003},
    {"split_type": "Line", "strategy": "SingleRecord", "assemble_with": "Line", "max_payload_mb": 0.003},
    {"split_type": "Line", "max_payload_mb": 0.003, "input_filter": "$[1:]", "join_source": "Input",
     "output_filter": "$[0,-1]"},
], ids=["multi-record", "single-record", "data-processing"])
def test_the_spark_job_writes_what_the_local_job_writes(spark, arts, small_ranges, tmp_path, params):
    X = make_data(n=400, seed=21)[0].astype(np.float64)
    if "input_filter" in params:
        X = np.column_stack([np.arange(len(X)) + 1000.0, X])
    messy_inputs(tmp_path / "in", X)
    local = transform(arts["xgb"], tmp_path / "in", tmp_path / "local", **params)
    on_spark = transform(arts["xgb"], tmp_path / "in", tmp_path / "spark", engine="spark", spark=spark, **params)
    assert on_spark["tasks"] > 2 * 2  # (the ranges are cut: many tasks per object)
    assert on_spark["status"] == "completed" and on_spark["engine"] == "spark"
    assert {k: on_spark[k] for k in COUNTS} == {k: local[k] for k in COUNTS}
    assert [(f["file"], f["line"]) for f in on_spark["failed"]] == \
        [("a.csv", 8), ("a.csv", 151), ("a.csv", 261), ("sub/b.csv", 8), ("sub/b.csv", 151), ("sub/b.csv", 261)]
    assert outputs(tmp_path / "spark") == outputs(tmp_path / "local")
    # and the predictions are XGBoost's own, for every good line in order
    good = [i for i in range(len(X)) if i not in (7, 150, 151, 152, 260)]
    features = X[good][:, 1:] if "input_filter" in params else X[good]
    got = np.loadtxt(tmp_path / "spark" / "a.csv.out", delimiter=",", ndmin=2)
    assert np.allclose(got[:, -1], booster_predict(arts["xgb"], features), atol=1e-6)
    assert not [p for p in (tmp_path / "spark").iterdir() if p.name.startswith(".")]  # no parts, no temporaries


def test_a_line_longer_than_a_range_is_scored_once(spark, arts, small_ranges, tmp_path):
    """A record spanning several ranges (ranges of 2 KB, a line of 6 KB within the payload): the task of the
    range it begins in scores it, the tasks of ranges it only passes through score nothing."""
    X = make_data(n=60, seed=3)[0].astype(np.float64)
    lines = [cells(r) for r in X]
    lines[20] = ",".join([repr(float(v)) + " " * 1500 for v in X[20]])  # cells padded with spaces: 6 KB
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "wide.csv").write_text("\n".join(lines) + "\n")
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", split_type="Line", strategy="SingleRecord",
                  assemble_with="Line", engine="spark", spark=spark)
    assert s["tasks"] >= 4 and s["records_out"] == 60 and s["records_failed"] == 0
    got = np.loadtxt(tmp_path / "out" / "wide.csv.out")
    assert np.allclose(got, booster_predict(arts["xgb"], X), atol=1e-6)


def test_recordio_objects_are_whole_segments_and_a_damaged_one_has_no_output(spark, arts, tmp_path):
    """Objects not split by line are scored whole (small ones packed into one task); a damaged one is reported
    and left without output while the other is written, as the local engine does."""
    X = make_data(n=30, seed=4)[0].astype(np.float32)
    bodies = []
    for row in X:
        import io

        buf = io.BytesIO()
        np.save(buf, row.reshape(1, -1))
        bodies.append(buf.getvalue())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.rec").write_bytes(b"".join(recordio_frame(b) for b in bodies))
    (tmp_path / "in" / "bad.rec").write_bytes(b"".join(recordio_frame(b) for b in bodies[:5]) + b"\x00" * 9)
    kw = dict(content_type="application/x-npy", accept="text/csv", split_type="RecordIO", assemble_with="Line")
    local = transform(arts["xgb"], tmp_path / "in", tmp_path / "local", **kw)
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "spark", engine="spark", spark=spark, **kw)
    assert s["tasks"] == 1 and s["inputs_done"] == 1 and s["inputs_failed"] == 1
    assert {k: s[k] for k in COUNTS} == {k: local[k] for k in COUNTS}
    assert sorted(os.listdir(tmp_path / "spark")) == ["good.rec.out", batch.SUMMARY]
    assert np.allclose(np.loadtxt(tmp_path / "spark" / "good.rec.out"), booster_predict(arts["xgb"], X), atol=1e-6)


def test_fail_fast_names_the_first_bad_line_of_the_object_and_writes_no_output(spark, arts, small_ranges, tmp_path):
    X = make_data(n=400, seed=5)[0].astype(np.float64)
    lines = [cells(r) for r in X]
    lines[350] = "1,2,x,4"  # in a late range
    lines[200] = "1,2"  # the first bad line, in an earlier range
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TransformError, match=r"^rows\.csv, line 201: .*\(stopped: fail fast\)$"):
        transform(arts["xgb"], tmp_path / "in", tmp_path / "out", split_type="Line", max_payload_mb=0.003,
                  fail_fast=True, engine="spark", spark=spark)
    assert os.listdir(tmp_path / "out") == [batch.SUMMARY]
    assert json.loads((tmp_path / "out" / batch.SUMMARY).read_text())["status"] == "stopped"


def test_resume_scores_only_what_is_missing_and_stale_parts_are_removed(spark, arts, small_ranges, tmp_path):
    X = make_data(n=200, seed=6)[0].astype(np.float64)
    for name in ("a", "b", "c"):
        write_csv(tmp_path / "in" / f"{name}.csv", X)
    kw = dict(split_type="Line", engine="spark", spark=spark)
    first = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", **kw)
    assert first["inputs_done"] == 3
    expected = (tmp_path / "out" / "b.csv.out").read_bytes()
    (tmp_path / "out" / "b.csv.out").unlink()
    host = batch._parts_tag().rsplit("-", 2)[0]
    dead = tmp_path / "out" / f"{batch.PARTS}{host}-999999999-0badc0de"  # a killed job's parts (no such process)
    live = tmp_path / "out" / f"{batch.PARTS}{host}-{os.getppid()}-0badc0de"  # a running process's: not ours
    other = tmp_path / "out" / f"{batch.PARTS}another-host-999999999-0badc0de"  # another machine's: not ours
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / ".0000000.part").write_bytes(b"0.5\n")
    again = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", resume=True, **kw)
    assert (again["inputs_skipped"], again["inputs_done"], again["records_out"]) == (2, 1, 200)
    assert (tmp_path / "out" / "b.csv.out").read_bytes() == expected
    assert not dead.exists() and live.exists() and other.exists()


def test_a_pipeline_of_two_models_on_spark(spark, arts, small_ranges, tmp_path):
    X = arts["raw-x"][:300].astype(np.float64)
    src = write_csv(tmp_path / "in" / "rows.csv", X)
    s = transform(None, src, tmp_path / "out", pipeline=[arts["scaler"], arts["xgb-scaled"]], split_type="Line",
                  assemble_with="Line", engine="spark", spark=spark)
    assert s["tasks"] > 2 and s["records_out"] == 300
    scaled = sklearn_reference(arts["scaler"]).transform(np.loadtxt(src, delimiter=","))
    assert np.allclose(np.loadtxt(tmp_path / "out" / "rows.csv.out"), booster_predict(arts["xgb-scaled"], scaled),
                       atol=1e-5)


def test_a_model_the_workers_refuse_to_load_is_one_sentence(spark, tmp_path):
    """A pickle naming ``os.system``: the trust gate in the Spark workers refuses it, and the job says so in the
    refusal's own sentence -- the local engine's -- with no output written."""
    import io
    import tarfile

    from artifact_tools.errors import ArtifactError

    evil = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85q\x01Rq\x02."  # os.system("true"), never run
    art = tmp_path / "evil.tar.gz"
    with tarfile.open(art, "w:gz") as tf:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(evil)
        tf.addfile(info, io.BytesIO(evil))
    src = write_csv(tmp_path / "in" / "rows.csv", make_data(n=20, seed=9)[0])
    with pytest.raises(ArtifactError) as local:
        transform(art, src, tmp_path / "local", split_type="Line")
    with pytest.raises(ArtifactError) as e:
        transform(art, src, tmp_path / "out", split_type="Line", engine="spark", spark=spark)
    assert str(e.value) == str(local.value) and "os.system" in str(e.value) and "\n" not in str(e.value)
    assert os.listdir(tmp_path / "out") == [batch.SUMMARY]


def test_the_command_line_runs_the_job_on_the_active_session(spark, arts, tmp_path, capsys):
    from artifact_tools.cli import main

    X = make_data(n=50, seed=8)[0].astype(np.float64)
    src = write_csv(tmp_path / "in" / "rows.csv", X)
    code = main(["transform", str(arts["xgb"]), str(src), str(tmp_path / "out"), "--split-type", "Line",
                 "--assemble-with", "Line", "--accept", "application/jsonlines", "--engine", "spark"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / batch.SUMMARY).read_text())
    assert summary["engine"] == "spark" and summary["records_out"] == 50
    got = [json.loads(line) for line in (tmp_path / "out" / "rows.csv.out").read_text().splitlines()]
    assert np.allclose(np.ravel([list(g.values()) if isinstance(g, dict) else g for g in got]),
                       booster_predict(arts["xgb"], X), atol=1e-6)


def test_many_small_objects_share_tasks(spark, arts, tmp_path):
    """Thirty objects of a few hundred bytes: packed into tasks of about the range size (here one), each still its
    own output, equal to the local engine's."""
    X = make_data(n=90, seed=12)[0].astype(np.float64)
    for i in range(30):
        write_csv(tmp_path / "in" / f"part-{i:02d}.csv", X[3 * i:3 * i + 3])
    local = transform(arts["xgb"], tmp_path / "in", tmp_path / "local", split_type="Line", assemble_with="Line")
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "spark", split_type="Line", assemble_with="Line",
                  engine="spark", spark=spark)
    assert s["tasks"] == 1 and s["inputs_done"] == 30 and s["records_out"] == 90 == local["records_out"]
    assert outputs(tmp_path / "spark") == outputs(tmp_path / "local")
    got = np.concatenate([np.loadtxt(tmp_path / "spark" / f"part-{i:02d}.csv.out", ndmin=1) for i in range(30)])
    assert np.allclose(got, booster_predict(arts["xgb"], X), atol=1e-6)


def test_failed_records_past_the_kept_ones_are_counted_not_held(spark, arts, small_ranges, monkeypatch, tmp_path):
    """Every third line bad across many ranges, the summary keeping 7: the job counts them all and lists the first
    7 in input order, as the local engine does (the tasks write their failed records beside their responses, so
    neither they nor the driver hold them all)."""
    monkeypatch.setattr(batch, "MAX_FAILURES_KEPT", 7)
    X = make_data(n=300, seed=13)[0].astype(np.float64)
    lines = [cells(r) if i % 3 else "1,bad" for i, r in enumerate(X)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("\n".join(lines) + "\n")
    kw = dict(split_type="Line", assemble_with="Line", max_payload_mb=0.003)
    local = transform(arts["xgb"], tmp_path / "in", tmp_path / "local", **kw)
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "spark", engine="spark", spark=spark, **kw)
    assert s["tasks"] > 4 and s["records_failed"] == 100 == local["records_failed"]
    assert [f["line"] for f in s["failed"]] == [1, 4, 7, 10, 13, 16, 19]
    assert s["failed"] == local["failed"]
    assert outputs(tmp_path / "spark") == outputs(tmp_path / "local")


def test_settings_of_the_local_engine_only_are_refused_before_spark_starts(arts, tmp_path):
    src = write_csv(tmp_path / "in" / "rows.csv", make_data(n=5, seed=1)[0])
    for kw, says in (({"workers": 2}, "workers are the local engine's processes"),
                     ({"capture": str(tmp_path / "cap")}, "data capture is written by the local engine")):
        with pytest.raises(TransformError, match=says):
            transform(arts["xgb"], src, tmp_path / "out", split_type="Line", engine="spark", master="local[3]", **kw)
        assert not (tmp_path / "out").exists() and not (tmp_path / "cap").exists()


def test_a_killed_jobs_parts_inside_the_input_folder_are_no_input(spark, arts, tmp_path):
    """OUTPUT inside INPUT, a killed Spark job's parts folder (with a task's unfinished temporary file) left there:
    neither engine scores it as an input, and the Spark job removes it."""
    X = make_data(n=40, seed=14)[0].astype(np.float64)
    write_csv(tmp_path / "in" / "rows.csv", X)
    host = batch._parts_tag().rsplit("-", 2)[0]
    left = tmp_path / "in" / "out" / f"{batch.PARTS}{host}-999999999-0badc0de"
    left.mkdir(parents=True)
    (left / ".0000001.part.abcd1234.tmp").write_bytes(b"1,2,3,4\n")
    for engine in ("local", "spark"):
        s = transform(arts["xgb"], tmp_path / "in", tmp_path / "in" / "out", split_type="Line",
                      assemble_with="Line", engine=engine, **({"spark": spark} if engine == "spark" else {}))
        assert (s["inputs"], s["records_out"], s["records_failed"]) == (1, 40, 0), engine
    assert not left.exists()
    assert sorted(p.name for p in (tmp_path / "in" / "out").iterdir()) == ["rows.csv.out", batch.SUMMARY]


class _Counted(io.BytesIO):
    """A real in-memory file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, n=-1):
        data = super().read(n)
        self.read_bytes += len(data)
        return data


def test_a_range_inside_a_long_line_reads_only_itself():
    """The first line start of a range is looked for within the range only: a task whose range lies inside a long
    line reads that range and no more (every task reading the rest of the line made one long line cost a quadratic
    number of reads), and the cut rule is unchanged where a line does begin in the range."""
    data = b"x" * 100_000 + b"\n" + b"1,2\n"
    f = _Counted(data)
    assert batch._line_start(f, 10_000, 20_000) == 20_000 and f.read_bytes <= 10_001
    f = _Counted(data)
    assert batch._line_start(f, 90_000, 100_005) == 100_001 and f.read_bytes <= 10_005
    assert batch._line_start(_Counted(data), 10_000) == 100_001  # unbounded: the line's end, as before
    for at in (0, 1, 100_000, 100_001, 100_002, len(data)):
        assert batch._line_start(_Counted(data), at, len(data)) == \
            (at if at == 0 or data[at - 1:at] == b"\n" else min(len(data), data.index(b"\n", at - 1) + 1)), at


def test_a_crashed_python_worker_is_one_sentence_that_says_so(spark):
    """A Python worker that dies in its task (os._exit: as an out-of-memory kill or a crashing native library would
    end it) fails the job with Spark's own words for it, not Py4J's call name."""
    from artifact_tools.spark import failure_reason, run_tasks

    with pytest.raises(Exception) as e:
        run_tasks(spark, ("os", "_exit", ()), [3], "a task whose worker dies")
    reason = failure_reason(e.value)
    assert "Python worker exited unexpectedly" in reason and "\n" not in reason and "collectToPython" not in reason
    assert "faulthandler" not in reason, "Spark's advice on its settings is not the reason"


def test_parquet_refuses_the_batch_transform_settings_it_cannot_honour(arts, tmp_path):
    with pytest.raises(TransformError, match=r"Spark's own reader and writer.*: pipeline, fail fast$"):
        transform(None, tmp_path / "in.parquet", tmp_path / "out", content_type="application/x-parquet",
                  engine="spark", pipeline=[arts["scaler"], arts["xgb-scaled"]], fail_fast=True)
    assert not (tmp_path / "out").exists()


def test_an_input_in_this_process_memory_is_refused(spark, arts, tmp_path):
    import fsspec

    with fsspec.open("memory://spark-job-test/rows.csv", "wb") as f:
        f.write(b"1,2,3,4\n")
    with pytest.raises(TransformError, match="memory:// belongs to this process"):
        transform(arts["xgb"], "memory://spark-job-test/rows.csv", tmp_path / "out", split_type="Line",
                  engine="spark", spark=spark)


def test_a_master_spark_would_refuse_is_one_sentence_and_status_2(arts, tmp_path):
    src = write_csv(tmp_path / "in" / "rows.csv", make_data(n=5, seed=1)[0])
    run = subprocess.run([sys.executable, "-m", "artifact_tools", "transform", str(arts["xgb"]), str(src),
                          str(tmp_path / "out"), "--split-type", "Line", "--engine", "spark", "--master",
                          "nonsense://x"], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip() == "artifact-tools: a Spark master is yarn or starts with spark, k8s or local " \
        "(local[2], spark://host:7077...), not 'nonsense://x'"


def test_object_storage_in_and_out(spark, arts, small_ranges, s3_server, tmp_path):
    """INPUT and OUTPUT on an S3 server (moto's, on 127.0.0.1), the credentials and endpoint in the storage options
    that travel with the job: the tasks read their ranges from the bucket and write their parts there, the driver
    writes each .out there; the outputs are the local engine's (reading the same objects) and no part is left."""
    import boto3

    opts = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": s3_server, "region_name": "us-east-1"}}
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket="scoring")
    X = make_data(n=300, seed=15)[0].astype(np.float64)
    lines = [cells(r) for r in X]
    lines[222] = "1,2"
    s3.put_object(Bucket="scoring", Key="in/a.csv", Body=("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket="scoring", Key="in/sub/b.csv", Body=("\n".join(lines[:50]) + "\n").encode())
    kw = dict(split_type="Line", assemble_with="Line", max_payload_mb=0.003, storage_options=opts)
    local = transform(arts["xgb"], "s3://scoring/in", tmp_path / "local", **kw)
    s = transform(arts["xgb"], "s3://scoring/in", "s3://scoring/out", engine="spark", spark=spark, **kw)
    assert s["tasks"] > 2 and {k: s[k] for k in COUNTS} == {k: local[k] for k in COUNTS}
    assert s["failed"][0]["file"] == "a.csv" and s["failed"][0]["line"] == 223
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="scoring", Prefix="out/")["Contents"])
    assert keys == ["out/a.csv.out", "out/sub/b.csv.out", f"out/{batch.SUMMARY}"]
    for name in ("a.csv.out", "sub/b.csv.out"):
        assert s3.get_object(Bucket="scoring", Key=f"out/{name}")["Body"].read() == \
            (tmp_path / "local" / name).read_bytes()


def test_the_workers_keep_no_scratch_memory_after_the_job(spark, arts, tmp_path):
    """Spark reuses its Python workers for later tasks and jobs: a task frees the scratch memory its work items'
    rows were written into (tens of megabytes with narrow CSV cells), so the workers that ran the job hold none
    afterwards. Oracle: the workers themselves, asked by a task of another job."""
    X = make_data(n=20000, d=4, seed=31)[0]
    (tmp_path / "in").mkdir()
    for k in range(2):
        write_csv(tmp_path / "in" / f"{k}.csv", X)
    s = transform(arts["xgb"], tmp_path / "in", tmp_path / "out", split_type="Line", engine="spark", spark=spark)
    assert s["records_out"] == 2 * len(X)

    def scratch_held(batches):  # in a worker (defined here, so that Spark ships it by value, not by this module's name)
        import os

        import pyarrow as pa

        from artifact_tools import batch as engine

        for _ in batches:
            rows = getattr(engine._SCRATCH, "rows", None)
            yield pa.RecordBatch.from_arrays([pa.array([os.getpid()]), pa.array([0 if rows is None else rows.nbytes])],
                                             names=["pid", "held"])

    frame = spark.createDataFrame(spark.sparkContext.parallelize([(i,) for i in range(8)], 8), "i long")
    held = frame.mapInArrow(scratch_held, "pid long, held long").collect()
    assert held and all(row["held"] == 0 for row in held)
