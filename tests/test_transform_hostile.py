"""Batch transform on hostile inputs: every bad input is a clear sentence (a failed record or a ``TransformError``),
never a traceback, a hang, an allocation the size of a lying header, a lost or clobbered output, or a stale output
taken as complete by ``resume``.

Oracles: XGBoost's own Booster read straight from the archive, TensorFlow's framing facts as written by the
independent CRC32C of ``google_crc32c`` when installed (else the table-driven one), Python's ``repr``/``csv`` for
texts. Anything that could hang or exhaust memory runs in a child process with a timeout and ``RLIMIT_AS``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import booster_predict, with_bad_lines

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import make_data  # noqa: E402
from make_transform_fixtures import build_xgboost  # noqa: E402

from artifact_tools import batch  # noqa: E402
from artifact_tools.batch import TransformError, tfrecord_frame, transform  # noqa: E402

GOOD = b"1.5,2.5,3.5,4.5\n-1.25,0.5,7.0,2.0\n"


@pytest.fixture(scope="module")
def xgb(tmp_path_factory):
    X, y = make_data(n=300, d=4, seed=7)
    return build_xgboost(X, y, tmp_path_factory.mktemp("hostile-models") / "xgb.tar.gz", rounds=8)


def csv_text(values) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([v] for v in np.asarray(values).tolist())
    return buf.getvalue().encode()


def rows_of(text: bytes) -> np.ndarray:
    return np.array([[float(c) for c in line.split(b",")] for line in text.splitlines() if line.strip()])


CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from artifact_tools.batch import transform
from artifact_tools.errors import ArtifactError
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return r.ru_utime + r.ru_stime
try:
    start = cpu()
    s = transform(sys.argv[1], sys.argv[2], sys.argv[3], **json.loads(sys.argv[4]))
    # its own VmHWM: ru_maxrss keeps, across exec, the peak of the process forked from (here the test's worker)
    peak = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(json.dumps({"summary": s, "cpu_seconds": cpu() - start, "peak_rss": peak}))
except ArtifactError as e:
    print(json.dumps({"error": str(e)}))
"""


def in_child(artifact, input, output, timeout=120, **kw) -> dict:
    """``transform`` in a child process (4 GiB of address space, ``timeout`` seconds): its summary and the CPU
    seconds it took, or its error sentence; a hang, a crash or a traceback fails the test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(artifact), str(input), str(output), json.dumps(kw)],
                              env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"transform did not finish within {timeout} s")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ INPUT

def test_a_deeply_nested_json_object_is_a_failed_record_not_a_recursion_error(xgb, tmp_path):
    """A JSON data file beginning with ``[`` was parsed whole as a possible manifest, and 100,000 nested brackets
    raised RecursionError out of the job; it is data (a manifest begins ``[{"prefix":``)."""
    src = tmp_path / "deep.json"
    src.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    s = transform(xgb, src, tmp_path / "out", content_type="application/json")
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (1, 0, 1)
    assert "too deeply" in s["failed"][0]["reason"]
    lines = tmp_path / "deep.jsonl"
    lines.write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n[1.5,2.5,3.5,4.5]\n")
    s = transform(xgb, lines, tmp_path / "out2", content_type="application/jsonlines", split_type="Line",
                  join_source="Input")
    assert (s["records_out"], s["records_failed"]) == (1, 1)
    assert [f["line"] for f in s["failed"]] == [1] and "too deeply" in s["failed"][0]["reason"]
    bad_text = tmp_path / "bad.csv"
    bad_text.write_bytes(b"1.5,2.5,3.5,4.5\n\xff,2,3,4\n")
    s = transform(xgb, bad_text, tmp_path / "out3", split_type="Line", join_source="Input")
    assert [(f["line"], f["reason"]) for f in s["failed"]] == [(2, "the record is not valid utf-8 text (bad byte at "
                                                                   "offset 0)")]


def test_a_fifo_in_the_input_folder_is_refused_not_waited_on(xgb, tmp_path):
    """Reading a FIFO waits for a writer forever: the job is refused with a sentence, before anything is written."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(GOOD)
    os.mkfifo(folder / "pipe")
    got = in_child(xgb, folder, tmp_path / "out", timeout=90, split_type="Line")
    assert "pipe" in got["error"] and "not a regular file" in got["error"]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_given_as_input_is_refused_not_read_forever(xgb, tmp_path):
    """/dev/zero split by line has no end and no newline: it was read a megabyte at a time forever."""
    got = in_child(xgb, "/dev/zero", tmp_path / "out", timeout=90, split_type="Line")
    assert "not a regular file" in got["error"]


def test_a_manifest_naming_an_object_twice_is_refused(xgb, tmp_path):
    """Two entries with one output: the second ``.part`` writer removed the first's file and the job died with
    FileNotFoundError. Spellings of one key (``./a.csv``) count as the same object."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_bytes(GOOD)
    (tmp_path / "data" / "sub").mkdir()
    for i, entries in enumerate((["a.csv", "a.csv"], ["a.csv", "./a.csv"])):
        manifest = tmp_path / f"m{i}.json"
        manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data") + "/"}] + entries))
        with pytest.raises(TransformError, match="twice"):
            transform(xgb, manifest, tmp_path / f"out{i}", split_type="Line")
        assert not list((tmp_path / f"out{i}").glob("*.out"))
    manifest = tmp_path / "folder.json"
    manifest.write_text(json.dumps([{"prefix": str(tmp_path / "data") + "/"}, "a.csv", "sub"]))
    with pytest.raises(TransformError, match="sub, which is a folder"):
        transform(xgb, manifest, tmp_path / "out3", split_type="Line")
    assert not list((tmp_path / "out3").glob("*.out"))


def test_a_running_writers_part_file_is_left_alone(tmp_path):
    """A ``.part`` file of a live process (another job writing into the same OUTPUT) is not taken for one left by
    a killed job; one of a process that no longer runs is removed."""
    import fsspec

    fs = fsspec.filesystem("file")
    live = tmp_path / f".a.csv.out.{os.getpid()}-0000aaaa.part"
    live.write_bytes(b"being written")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / f".a.csv.out.{child.pid}-0000bbbb.part"
    dead.write_bytes(b"left by a killed job")
    out = batch._Output(fs, str(tmp_path / "a.csv.out"))
    out.write(b"x\n")
    out.commit()
    assert live.exists() and not dead.exists()
    assert (tmp_path / "a.csv.out").read_bytes() == b"x\n"


# ------------------------------------------------------------------------------------------ framing

def test_a_tfrecord_length_larger_than_the_object_costs_no_memory(xgb, tmp_path):
    """A length field of 2**62 with a valid CRC: the reader tried to allocate it (MemoryError). A record larger than
    the max payload is now read past: failed, and the records after it scored."""
    head = struct.pack("<Q", 1 << 62)
    lying = head + struct.pack("<I", batch._masked_crc(head)) + b"1,2,3,4"
    src = tmp_path / "lying.tfrecord"
    src.write_bytes(tfrecord_frame(b"1.5,2.5,3.5,4.5") + lying)
    got = in_child(xgb, src, tmp_path / "out", split_type="TFRecord")
    s = got["summary"]
    assert (s["inputs_failed"], s["records_failed"]) == (1, 1) and "ends inside" in s["failed"][0]["reason"]
    assert not (tmp_path / "out" / "lying.tfrecord.out").exists()
    big = tmp_path / "big.tfrecord"
    rows = [b"1.5,2.5,3.5,4.5", b"0.5," * 400_000 + b"1", b"-1.25,0.5,7.0,2.0"]
    big.write_bytes(b"".join(tfrecord_frame(r) for r in rows))
    s = transform(xgb, big, tmp_path / "out2", split_type="TFRecord", max_payload_mb=1, assemble_with="Line")
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (3, 2, 1)
    assert s["failed"][0]["record"] == 2 and "max payload" in s["failed"][0]["reason"]
    expected = booster_predict(xgb, rows_of(rows[0] + b"\n" + rows[2]))
    assert np.allclose(np.loadtxt(tmp_path / "out2" / "big.tfrecord.out", delimiter=","), expected, atol=1e-6)


def test_a_split_recordio_record_over_the_max_payload_is_failed_and_the_next_scored(xgb, tmp_path):
    """A record split into parts (MXNet's continuation flags) whose parts together exceed the max payload: failed
    as one record, never assembled; the records around it scored."""
    magic = struct.pack("<I", batch.RECORDIO_MAGIC)

    def part(flag, data):
        return magic + struct.pack("<I", (flag << 29) | len(data)) + data + b"\0" * ((-len(data)) % 4)

    chunk = b"7" * (400 * 1024)
    body = (batch.recordio_frame(b"1.5,2.5,3.5,4.5") + part(1, chunk) + part(2, chunk) + part(3, chunk)
            + batch.recordio_frame(b"-1.25,0.5,7.0,2.0"))
    src = tmp_path / "split.rec"
    src.write_bytes(body)
    s = transform(xgb, src, tmp_path / "out", split_type="RecordIO", max_payload_mb=1, assemble_with="Line")
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (3, 2, 1)
    assert s["failed"][0]["record"] == 2 and "max payload" in s["failed"][0]["reason"]
    expected = booster_predict(xgb, rows_of(GOOD))
    assert np.allclose(np.loadtxt(tmp_path / "out" / "split.rec.out", delimiter=","), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------ resume

def test_resume_scores_again_an_input_changed_after_its_output(xgb, tmp_path):
    """``resume`` skipped every input with an output, even one changed since (its output stale)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(GOOD)
    (folder / "b.csv").write_bytes(GOOD)
    transform(xgb, folder, tmp_path / "out", split_type="Line")
    changed = b"9.0,9.0,9.0,9.0\n"
    (folder / "b.csv").write_bytes(changed)  # after its output: as if the output were written an hour ago
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "out" / "b.csv.out", (hour_ago, hour_ago))
    s = transform(xgb, folder, tmp_path / "out", split_type="Line", resume=True)
    assert (s["inputs_skipped"], s["inputs_done"]) == (1, 1)
    assert (tmp_path / "out" / "b.csv.out").read_bytes() == csv_text(booster_predict(xgb, rows_of(changed)))
    s = transform(xgb, folder, tmp_path / "out", split_type="Line", resume=True)
    assert (s["inputs_skipped"], s["inputs_done"]) == (2, 0)



def test_resume_continues_the_same_job_only(xgb, tmp_path):
    """``resume`` into a folder holding another job's outputs kept them beside the new model's: a resume with
    another model, the same model file rewritten, or another parameter that shapes the outputs is now one sentence
    naming the difference, and nothing is written; the same job resumes (also after a kill, whose summary says
    ``running``); without ``resume`` the other job's outputs are scored again."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.csv").write_bytes(GOOD)
    first = transform(xgb, folder, out, split_type="Line")
    assert first["job"]["models"][0]["artifact"] == str(xgb.resolve()) and first["status"] == "completed"
    X, y = make_data(n=300, d=4, seed=8)
    other = build_xgboost(X, y, tmp_path / "other.tar.gz", rounds=5)
    before = (out / "a.csv.out").read_bytes()
    with pytest.raises(TransformError, match=r"outputs of another job, made with another model \(.*xgb\.tar\.gz\)"):
        transform(other, folder, out, split_type="Line", resume=True)
    with pytest.raises(TransformError, match=r"other parameters \(accept 'text/csv', now 'application/json'\)"):
        transform(xgb, folder, out, split_type="Line", accept="application/json", resume=True)
    assert (out / "a.csv.out").read_bytes() == before
    assert json.loads((out / "transform-summary.json").read_text())["status"] == "completed"  # left as it was

    # a killed job of the same model: its summary (written when it started) says running; the resume goes on
    summary = json.loads((out / "transform-summary.json").read_text())
    (out / "transform-summary.json").write_text(json.dumps({**summary, "status": "running"}))
    s = transform(xgb, folder, out, split_type="Line", resume=True, workers=1)
    assert (s["inputs_skipped"], s["inputs_done"]) == (1, 0)

    rewritten = tmp_path / "copy.tar.gz"
    rewritten.write_bytes(xgb.read_bytes())
    transform(rewritten, folder, tmp_path / "out2", split_type="Line")
    rewritten.write_bytes(other.read_bytes())  # the same path, another model
    with pytest.raises(TransformError, match="the same model path, rewritten since"):
        transform(rewritten, folder, tmp_path / "out2", split_type="Line", resume=True)
    s = transform(rewritten, folder, tmp_path / "out2", split_type="Line")  # not resumed: scored again
    assert (s["inputs_done"], (tmp_path / "out2" / "a.csv.out").read_bytes()) == \
        (1, csv_text(booster_predict(other, rows_of(GOOD))))



def test_resume_after_another_jobs_outputs_and_of_folder_and_linked_artifacts(xgb, tmp_path):
    """Found by review: (1) job X completes, job Y (another model) runs into the same folder without resume and
    stops part-way, and resuming Y kept X's outputs of the inputs Y had not reached; they are now scored again
    (older than Y's first start). (2) A folder artifact whose file is rewritten inside kept its identity (the
    folder's own size and time do not change). (3) The same file through a symbolic link or a ``file://`` URI was
    refused as another model. (4) A refused resume left a data capture writer's thread running."""
    import threading

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.csv").write_bytes(GOOD)
    transform(xgb, folder, out, split_type="Line")  # job X
    hours_ago = time.time() - 7200
    os.utime(folder / "c.csv", (hours_ago, hours_ago))  # X's output of c: older than Y, newer than its input
    os.utime(out / "c.csv.out", (hours_ago + 3600, hours_ago + 3600))
    X, y = make_data(n=300, d=4, seed=9)
    other = build_xgboost(X, y, tmp_path / "y.tar.gz", rounds=4)
    (folder / "b.csv").write_bytes(GOOD + b"1.0,oops,2.0,3.0\n")  # Y stops there (fail fast)
    with pytest.raises(TransformError, match="fail fast"):
        transform(other, folder, out, split_type="Line", fail_fast=True)
    s = transform(other, folder, out, split_type="Line", resume=True)
    assert (s["inputs_skipped"], s["inputs_done"]) == (1, 2)  # a: Y's own; b and c scored by Y
    ours = csv_text(booster_predict(other, rows_of(GOOD)))
    assert all((out / f"{n}.csv.out").read_bytes().startswith(ours) for n in ("a", "b", "c"))

    model_dir = tmp_path / "model-dir"
    model_dir.mkdir()
    import tarfile

    with tarfile.open(xgb) as tf:
        (model_dir / "xgboost-model").write_bytes(tf.extractfile("xgboost-model").read())
    transform(model_dir, folder / "a.csv", tmp_path / "out-dir", split_type="Line")
    with tarfile.open(other) as tf:
        (model_dir / "xgboost-model").write_bytes(tf.extractfile("xgboost-model").read())  # rewritten inside
    with pytest.raises(TransformError, match="the same model path, rewritten since"):
        transform(model_dir, folder / "a.csv", tmp_path / "out-dir", split_type="Line", resume=True)
    s = transform(model_dir, folder / "a.csv", tmp_path / "out-dir", split_type="Line")  # and loaded again
    assert (tmp_path / "out-dir" / "a.csv.out").read_bytes() == ours

    link = tmp_path / "latest.tar.gz"
    link.symlink_to(xgb)
    transform(xgb, folder / "a.csv", tmp_path / "out-link", split_type="Line")
    for same in (link, f"file://{xgb}"):
        s = transform(same, folder / "a.csv", tmp_path / "out-link", split_type="Line", resume=True)
        assert s["inputs_skipped"] == 1, same

    def capture_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("artifact-tools-capture"))

    before = capture_threads()
    for _ in range(3):
        with pytest.raises(TransformError, match="another job"):
            transform(other, folder / "a.csv", tmp_path / "out-link", split_type="Line", resume=True,
                      capture=str(tmp_path / "capture"))
    assert capture_threads() == before



def test_resume_refuses_another_input_and_reads_local_paths_with_double_colons(xgb, tmp_path):
    """Found by review: a resume from another input folder holding files of the same names skipped them all (the
    input was not part of the job); a local artifact path holding ``::`` (fsspec's chained-URL mark) lost its
    identity, so another model at such a path resumed silently."""
    first, second, out = tmp_path / "day1", tmp_path / "day2", tmp_path / "out"
    for folder, text in ((first, GOOD), (second, b"9.0,9.0,9.0,9.0\n")):
        folder.mkdir()
        (folder / "part-0.csv").write_bytes(text)
    transform(xgb, first, out, split_type="Line")
    with pytest.raises(TransformError, match=r"made with another input \(.*day1\)"):
        transform(xgb, second, out, split_type="Line", resume=True)

    X, y = make_data(n=300, d=4, seed=10)
    odd = tmp_path / "m::v1.tar.gz"
    odd.write_bytes(xgb.read_bytes())
    transform(odd, first, tmp_path / "out-odd", split_type="Line")
    odd.write_bytes(build_xgboost(X, y, tmp_path / "v2.tar.gz", rounds=3).read_bytes())
    with pytest.raises(TransformError, match="the same model path, rewritten since"):
        transform(odd, first, tmp_path / "out-odd", split_type="Line", resume=True)


# ------------------------------------------------------------------------------------------ SingleRecord at scale

def test_single_record_over_many_lines_is_bounded_and_exact(xgb, tmp_path):
    """SingleRecord sends one record per request; 100,000 lines took one predict call each (26 CPU-seconds measured,
    minutes on a busy machine; a million lines, ten times that). Consecutive records of a row-wise model are now
    predicted together and each record's response cut out -- the bytes of each record predicted alone (XGBoost's own
    predictions), bad lines reported at their line -- in about a CPU-second."""
    X = np.round(make_data(n=100_000, d=4, seed=3)[0].astype(np.float64), 6)
    lines = [",".join(repr(float(v)) for v in row).encode() for row in X]
    bad = {10: b"1.5,x,2,3", 50_000: b"1.0,2.0", 99_990: b"\xff,1,2,3"}
    text, failed_lines = with_bad_lines(lines, bad)
    src = tmp_path / "rows.csv"
    src.write_bytes(b"\n".join(text) + b"\n")
    got = in_child(xgb, src, tmp_path / "out", timeout=240, split_type="Line", strategy="SingleRecord")
    s = got["summary"]
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (len(X) + 3, len(X), 3)
    assert [f["line"] for f in s["failed"]] == failed_lines
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(xgb, X))
    assert got["cpu_seconds"] < 12, got["cpu_seconds"]
    small = tmp_path / "small.csv"
    small.write_bytes(b"\n".join(text[:40]) + b"\n")
    for workers in (1, 2):  # each record alone, as JSON responses: one per line with AssembleWith Line
        s = transform(xgb, small, tmp_path / f"json{workers}", split_type="Line", strategy="SingleRecord",
                      accept="application/json", assemble_with="Line", workers=workers)
        got_lines = (tmp_path / f"json{workers}" / "small.csv.out").read_text().splitlines()
        assert len(got_lines) == s["records_out"] == 39
        assert np.allclose([json.loads(x) for x in got_lines], booster_predict(xgb, X[:39]).reshape(-1, 1),
                           atol=1e-7)


@pytest.mark.parametrize("inside", ["OUT", "."])
def test_outputs_written_into_the_input_folder_are_not_scored_by_the_next_run(xgb, tmp_path, inside):
    """OUTPUT inside INPUT (or INPUT itself): a second run -- ``resume`` after a kill, or a rerun -- listed the first
    run's ``.out`` files and summary as inputs and scored them (``a.csv.out.out``, failed summary lines)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_bytes(GOOD)
    (folder / "sub" / "b.csv").write_bytes(GOOD)
    out = folder / inside
    first = transform(xgb, folder, out, split_type="Line")
    assert (first["inputs"], first["records_failed"]) == (2, 0)
    again = transform(xgb, folder, out, split_type="Line", resume=True)
    assert (again["inputs"], again["inputs_skipped"], again["records_failed"]) == (2, 2, 0)
    rerun = transform(xgb, folder, out, split_type="Line")
    assert (rerun["inputs"], rerun["inputs_done"], rerun["records_failed"]) == (2, 2, 0)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.out")) == ["a.csv.out", "sub/b.csv.out"]


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_good_records_among_more_bad_records_of_another_width_are_predicted(xgb, tmp_path, strategy):
    """A mini-batch whose records mostly have a number of values the model does not take: the few good records were
    failed as "the record has 4 values where the other records have 2"; they are predicted, the others reported."""
    rows = [b"1.5,2.5,3.5,4.5", b"1,2", b"3,4", b"-1.25,0.5,7.0,2.0", b"5,6", b"7,8"]
    src = tmp_path / "rows.csv"
    src.write_bytes(b"\n".join(rows) + b"\n")
    s = transform(xgb, src, tmp_path / "out", split_type="Line", strategy=strategy)
    assert (s["records_in"], s["records_out"], s["records_failed"]) == (6, 2, 4)
    assert [f["line"] for f in s["failed"]] == [2, 3, 5, 6]
    assert (tmp_path / "out" / "rows.csv.out").read_bytes() == csv_text(booster_predict(xgb, rows_of(GOOD)))


def test_a_max_payload_under_one_byte_is_a_limit_not_no_limit(xgb, tmp_path):
    """``max_payload_mb=1e-9`` rounded to 0 bytes, which meant no limit at all: every record is larger than it."""
    src = tmp_path / "rows.csv"
    src.write_bytes(GOOD)
    for split in ("Line", "None"):
        s = transform(xgb, src, tmp_path / split, split_type=split, max_payload_mb=1e-9)
        assert s["records_out"] == 0 and s["records_failed"] == s["records_in"] >= 1
        assert all("max payload" in f["reason"] for f in s["failed"])


# ------------------------------------------------------------------------------------------ red team, session 11

def test_a_csv_row_of_millions_of_columns_is_a_failed_record_in_bounded_memory(xgb, tmp_path):
    """A 6 MB CSV row of 3 million numbers: Arrow's CSV reader, which holds kilobytes a column, aborted the whole
    process (std::bad_alloc: no sentence, no summary); numpy's reader takes such a row, and the model refuses it. A
    row of 3 million text cells (a pandas table of 3 million columns: 85 s and 2 GB) is refused by the codec. Either
    is one failed record; the good file beside them is scored."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "wide.csv").write_text(",".join(["1"] * 3_000_000) + "\n")
    (folder / "texts.csv").write_text(",".join(["a"] * 3_000_000) + "\n")
    (folder / "good.csv").write_bytes(GOOD)
    for split in ("None", "Line"):
        got = in_child(xgb, folder, tmp_path / f"out-{split}", timeout=90, split_type=split)
        s = got["summary"]
        assert (s["records_out"], s["records_failed"]) == (1 if split == "None" else 2, 2), s
        reasons = {f["file"]: f["reason"] for f in s["failed"]}
        assert "3000000" in reasons["wide.csv"] and "3000000 columns" in reasons["texts.csv"], reasons
        assert got["peak_rss"] < 1.5 * 2**30, got["peak_rss"]
        want = csv_text(booster_predict(xgb, rows_of(GOOD)))
        assert (tmp_path / f"out-{split}" / "good.csv.out").read_bytes() == want


def test_an_endless_line_is_read_past_in_bounded_memory_record_by_record(xgb, tmp_path):
    """Split by line with SingleRecord (or a filter), each line was read whole before its size was checked: a 256 MB
    line with no newline took its size in memory twice over. It is read past in pieces and reported too large, at its
    line; the lines around it are scored."""
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    (small / "a.csv").write_bytes(GOOD)
    with open(big / "a.csv", "wb") as f:
        f.write(GOOD.splitlines(keepends=True)[0])
        chunk = b"1.0," * (1 << 18)
        for _ in range(256):
            f.write(chunk)
        f.write(b"\n" + GOOD.splitlines(keepends=True)[1])
    base = in_child(xgb, small, tmp_path / "o1", split_type="Line", strategy="SingleRecord")["peak_rss"]
    got = in_child(xgb, big, tmp_path / "o2", split_type="Line", strategy="SingleRecord")
    s = got["summary"]
    assert (s["records_out"], [(f["line"], "more than the 6291456 bytes" in f["reason"]) for f in s["failed"]]) == \
        (2, [(2, True)]), s
    assert (tmp_path / "o2" / "a.csv.out").read_bytes() == (tmp_path / "o1" / "a.csv.out").read_bytes()
    assert got["peak_rss"] - base < 100 * 2**20, (got["peak_rss"], base)


def test_a_filter_unioning_thousands_of_slices_is_refused_at_once(xgb, tmp_path):
    """Eight unions of three slices, in 57 characters, made 3 ** 8 JSONPaths, each matched against every record (a
    minute and gigabytes for one 20 KB record); more than MAX_UNION_PATHS are refused before anything is read."""
    (tmp_path / "r.jsonl").write_text("[[1, 2], [3, 4]]\n")
    started = time.monotonic()
    with pytest.raises(TransformError, match="unions 6561 paths through slices; at most 64"):
        transform(xgb, tmp_path / "r.jsonl", tmp_path / "out", content_type="application/jsonlines",
                  split_type="Line", input_filter="$" + "[:,:,:]" * 8)
    assert time.monotonic() - started < 5 and not (tmp_path / "out").exists()


def test_inputs_from_the_kernels_file_systems_are_refused(xgb, tmp_path):
    """A manifest's prefix may name any folder: ``/proc/self/`` with the entry ``environ`` read the process's
    environment into the failed records' reasons in OUTPUT. Local inputs under /proc, /sys and /dev are refused."""
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"prefix": "/proc/self/"}, "environ"]))
    for source in (manifest, "/proc/cpuinfo"):
        with pytest.raises(TransformError, match="in /proc, the kernel's view of this machine"):
            transform(xgb, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_input_where_the_job_writes_is_refused_and_kept(xgb, tmp_path):
    """INPUT ``out/transform-summary.json`` with OUTPUT ``out``: the job's summary replaced the input before it was
    read, and the job then scored its own summary. Refused, the input untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "transform-summary.json").write_bytes(GOOD)
    with pytest.raises(TransformError, match="is where the job writes the job summary"):
        transform(xgb, out / "transform-summary.json", out)
    assert (out / "transform-summary.json").read_bytes() == GOOD


@pytest.mark.parametrize("url", ["reference://", "zip://", "tar://x::file:///nonexistent-archive.tar"])
def test_a_url_its_file_system_cannot_open_is_one_sentence(xgb, tmp_path, url):
    """File systems raise their own errors (TypeError, IsADirectoryError, FileNotFoundError...) for URLs they cannot
    open; each was an internal error. As INPUT or OUTPUT it is one sentence naming the URL, and exit status 2."""
    with pytest.raises(TransformError, match="cannot be opened|cannot be listed"):
        transform(xgb, url, tmp_path / "out")
    (tmp_path / "a.csv").write_bytes(GOOD)
    with pytest.raises(TransformError, match="cannot be opened"):
        transform(xgb, tmp_path / "a.csv", url)
    proc = subprocess.run([sys.executable, "-m", "artifact_tools", "transform", str(xgb), url, str(tmp_path / "o")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
        proc.stderr


def test_an_output_name_too_long_is_one_sentence(xgb, tmp_path):
    """An input whose name fits the file system but not with the temporary output's suffix: one sentence."""
    src = tmp_path / ("n" * 244)
    src.write_bytes(GOOD)
    with pytest.raises(TransformError, match="cannot be written \\(File name too long\\)"):
        transform(xgb, src, tmp_path / "out")


def test_resume_with_a_start_time_no_float_holds(xgb, tmp_path):
    """A summary whose ``started`` is an integer of 400 digits (or not finite) raised OverflowError on resume; it
    is taken as a summary that says nothing of the start, whose outputs are taken as they are (module docstring)."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "a.csv").write_bytes(GOOD)
    transform(xgb, folder, out, split_type="Line")
    text = (out / "transform-summary.json").read_text()
    summary = json.loads(text)
    for started in ("9" * 400, "1e999", "NaN"):
        (out / "transform-summary.json").write_text(text.replace(f'"started": {json.dumps(summary["started"])}',
                                                                 f'"started": {started}'))
        s = transform(xgb, folder, out, split_type="Line", resume=True)
        assert s["status"] == "completed" and (s["inputs_done"], s["inputs_skipped"]) == (0, 1), s


def test_no_max_payload_still_reads_no_more_than_a_body_holds(xgb, tmp_path, monkeypatch):
    """With no max payload (0) and no split, an object was read whole however large; it is read up to the codec's
    largest body and failed beyond it (here the cap lowered to 100 bytes)."""
    from artifact_tools import codec

    monkeypatch.setattr(codec, "MAX_BYTES", 100)
    (tmp_path / "big.csv").write_bytes(GOOD * 10)
    s = transform(xgb, tmp_path / "big.csv", tmp_path / "out", max_payload_mb=0)
    assert s["records_failed"] == 1 and "larger than 100 bytes" in s["failed"][0]["reason"], s


@pytest.mark.parametrize("expr", ["$|$", "$ where $", "$.`this`", "$.a&$.b", "$[1:2:3]", "$[]"])
def test_jsonpath_beyond_sagemakers_subset_is_refused(xgb, tmp_path, expr):
    """jsonpath-ng reads more than SageMaker's subset (unions of whole paths, ``where``, named operators, steps);
    such a filter is refused before anything is read, as SageMaker refuses it."""
    (tmp_path / "a.csv").write_bytes(GOOD)
    with pytest.raises(TransformError, match="is not a JSONPath of the subset SageMaker supports"):
        transform(xgb, tmp_path / "a.csv", tmp_path / "out", split_type="Line", input_filter=expr)
    assert not (tmp_path / "out").exists()


def test_lines_of_an_object_in_s3_one_by_one_and_one_too_long(xgb, tmp_path, s3_server):
    """SingleRecord over an S3 object (fsspec's buffered file, whose readline takes no size): its lines are scored
    one by one, and one longer than the max payload is read past and reported at its line, as for a local file."""
    import boto3

    opts = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": s3_server, "region_name": "us-east-1"}}
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket="lines")
    first, second = GOOD.splitlines(keepends=True)
    body = first + b"1.0," * 3000 + b"1.0\n" + second
    s3.put_object(Bucket="lines", Key="in/a.csv", Body=body)
    (tmp_path / "a.csv").write_bytes(body)
    kw = dict(split_type="Line", strategy="SingleRecord", max_payload_mb=0.01)
    remote = transform(xgb, "s3://lines/in/a.csv", tmp_path / "remote", storage_options=opts, **kw)
    local = transform(xgb, tmp_path / "a.csv", tmp_path / "local", **kw)
    assert (remote["records_out"], [f["line"] for f in remote["failed"]]) == (2, [2]), remote
    assert remote["failed"] == local["failed"]
    assert (tmp_path / "remote" / "a.csv.out").read_bytes() == (tmp_path / "local" / "a.csv.out").read_bytes() \
        == csv_text(booster_predict(xgb, rows_of(GOOD)))
