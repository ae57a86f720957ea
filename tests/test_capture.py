"""Data capture in SageMaker's format (artifact_tools.capture): the writer's records, files and counters, and the
reader's window and errors. Expected records are built here from the format's published fields, not from ours."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("fsspec")

from artifact_tools.capture import CaptureError, CaptureWriter, observed_rows, read_capture  # noqa: E402

UTC = dt.timezone.utc
FILE_NAME = re.compile(r"^\d{2}-\d{2}-\d{3}-"  # minute-second-millisecond of the first record, then a UUID4
                       r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jsonl$")


def _lines(root: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            out.append((path, json.loads(line)))
    return out


def test_records_follow_sagemakers_capture_format(tmp_path):
    when = dt.datetime(2024, 3, 11, 12, 32, 18, 648000, tzinfo=UTC)
    npy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}"
    with CaptureWriter(tmp_path, "my-endpoint", "AllTraffic", 100, "Input,Output") as w:
        assert w.capture(b"5.1,3.5,1.4\n4.9,3.0,1.4", "text/csv", b'[0.25, 0.75]', "application/json",
                         event_id="e-1", inference_time=when)
        assert w.capture(npy, "application/x-npy", b"1\n", "text/csv; charset=utf-8", event_id="e-2",
                         inference_time=when + dt.timedelta(seconds=1))
        assert w.flush()
    assert (w.captured, w.dropped, w.sampled_out) == (2, 0, 0)
    records = _lines(tmp_path)
    assert len(records) == 2
    path, first = records[0]
    rel = path.relative_to(tmp_path).parts
    assert rel[:6] == ("my-endpoint", "AllTraffic", "2024", "03", "11", "12")
    assert FILE_NAME.match(rel[6]) and rel[6].startswith("32-18-648-")
    assert first == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": "5.1,3.5,1.4\n4.9,3.0,1.4", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": "[0.25, 0.75]", "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2024-03-11T12:32:18Z"},
        "eventVersion": "0"}
    second = records[1][1]["captureData"]
    assert second["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(second["endpointInput"]["data"]) == npy
    assert second["endpointOutput"] == {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                                        "data": "1\n", "encoding": "CSV"}
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_files_roll_by_hour_and_modes_and_sampling(tmp_path):
    base = dt.datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC)
    with CaptureWriter(tmp_path / "a", "ep", "v1", 100, ["Input"]) as w:
        for i in range(3):
            w.capture(b"1,2", "text/csv", b"9", "text/csv", inference_time=base + dt.timedelta(seconds=i))
    hours = sorted({p.relative_to(tmp_path / "a").parts[2:6] for p, _ in _lines(tmp_path / "a")})
    assert hours == [("2024", "01", "01", "23"), ("2024", "01", "02", "00")]
    assert all(set(r["captureData"]) == {"endpointInput"} for _, r in _lines(tmp_path / "a"))
    with CaptureWriter(tmp_path / "b", "ep", "v1", 0) as w:
        for _ in range(50):
            assert not w.capture(b"1", "text/csv", b"1", "text/csv")
    assert (w.captured, w.sampled_out) == (0, 50) and not list((tmp_path / "b").rglob("*.jsonl"))
    with CaptureWriter(tmp_path / "c", "ep", "v1", 50) as w:
        for _ in range(2000):
            w.capture(b"1", "text/csv", b"1", "text/csv")
    chosen = w.captured + w.dropped  # under heavy load the bounded queue may drop a few: never blocks
    assert 800 < chosen < 1200 and chosen + w.sampled_out == 2000 and w.dropped < 100
    with pytest.raises(CaptureError, match="percentage"):
        CaptureWriter(tmp_path, percent=120)
    with pytest.raises(CaptureError, match="capture mode"):
        CaptureWriter(tmp_path, modes="Request")


def test_capture_never_blocks_or_raises_and_counts_drops(tmp_path):
    w = CaptureWriter(tmp_path, "ep", queue_size=1)
    started = time.perf_counter()
    results = [w.capture(b"1,2,3", "text/csv", b"1", "text/csv") for _ in range(5000)]
    elapsed = time.perf_counter() - started
    w.close()
    assert elapsed < 5.0
    assert w.dropped > 0 and w.captured + w.dropped == 5000 and sum(results) == w.captured
    assert len(_lines(tmp_path)) == w.captured
    # an unwritable destination (a file where the folders go): records are dropped, the caller never sees it
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with CaptureWriter(blocker, "ep") as bad:
        assert bad.capture(b"1", "text/csv", b"1", "text/csv") is True
        bad.flush()
    assert bad.dropped == 1 and bad.captured == 0
    assert bad.capture(b"1", "text/csv", b"1", "text/csv") is False  # closed: dropped, still no exception


def test_fsspec_destination_and_reader_round_trip():
    import fsspec

    fs = fsspec.filesystem("memory")
    when = dt.datetime(2024, 5, 1, 13, 0, 5, tzinfo=UTC)
    with CaptureWriter("memory://capture-test/prefix", "ep", "AllTraffic") as w:
        w.capture('{"instances": [[1, 2], [3, 4]]}', "application/json", b"[1, 0]", "application/json",
                  inference_time=when)
        w.capture(b"a,b\n", "text/csv", b"x", "text/plain", inference_time=when + dt.timedelta(hours=1))
    assert len(fs.find("/capture-test/prefix/ep/AllTraffic/2024/05/01")) == 2
    got = list(read_capture("memory://capture-test/prefix"))
    assert [r.input for r in got] == [("application/json", b'{"instances": [[1, 2], [3, 4]]}'),
                                      ("text/csv", b"a,b\n")]
    assert got[1].output == ("text/plain", b"x")  # text/plain is neither CSV nor JSON: base64, decoded back
    rows = list(observed_rows(got))
    assert rows == [("json", [1, 2]), ("json", [3, 4]), ("csv", ["a", "b"])]
    window = list(read_capture("memory://capture-test/prefix", start="2024-05-01T14:00:00Z"))
    assert [r.time.hour for r in window] == [14]
    fs.rm("/capture-test", recursive=True)


def _write(path: Path, lines: list[str], end: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + end, encoding="utf-8")


def test_reader_refuses_truncated_files_other_versions_and_non_records(tmp_path):
    good = {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                              "data": "1,2", "encoding": "CSV"}},
            "eventMetadata": {"eventId": "x", "inferenceTime": "2024-01-01T00:00:00Z"}, "eventVersion": "0"}
    line = json.dumps(good)
    _write(tmp_path / "t" / "a.jsonl", [line, line[: len(line) // 2]], end="")
    with pytest.raises(CaptureError, match=r"a\.jsonl is truncated: its last line \(2\)"):
        list(read_capture(tmp_path / "t"))
    _write(tmp_path / "v" / "a.jsonl", [json.dumps({**good, "eventVersion": "1"})])
    with pytest.raises(CaptureError, match="eventVersion '1'"):
        list(read_capture(tmp_path / "v"))
    _write(tmp_path / "n" / "a.jsonl", ['{"hello": 1}'])
    with pytest.raises(CaptureError, match="not a SageMaker capture record"):
        list(read_capture(tmp_path / "n"))
    _write(tmp_path / "b" / "a.jsonl", [json.dumps({**good, "captureData": {"endpointInput": {
        **good["captureData"]["endpointInput"], "encoding": "BASE64", "data": "@@@"}}})])
    with pytest.raises(CaptureError, match="not base64"):
        list(read_capture(tmp_path / "b"))
    with pytest.raises(CaptureError, match="does not exist"):
        list(read_capture(tmp_path / "missing"))
    with pytest.raises(CaptureError, match="not an ISO 8601"):
        list(read_capture(tmp_path / "v", start="yesterday"))
    for err in (CaptureError("x"),):
        assert err.exit_code == 2
