"""Safe archive access: every container type, normalisation, and every hostile-archive rule."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from artifact_tools import Limits, open_artifact
from artifact_tools.errors import CorruptArtifact, NotAnArtifact, UnsafeArtifact


def _tar(path: Path, entries, mode="w:gz", fmt=tarfile.GNU_FORMAT):
    """entries: list of (TarInfo-kwargs dict, bytes|None)."""
    with tarfile.open(path, mode, format=fmt) as tf:
        for info, data in entries:
            ti = tarfile.TarInfo(info.pop("name"))
            for k, v in info.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return path


def _file(name, data=b"x"):
    return ({"name": name}, data)


def test_tar_gz_listing_and_reading(tmp_path):
    p = _tar(tmp_path / "model.tar.gz", [_file("a.json", b"{}"), _file("sub/b.bin", os.urandom(3000))])
    with open_artifact(p) as art:
        assert art.container == "tar.gz"
        names = {m.name: m.size for m in art.members() if m.is_file}
        assert names == {"a.json": 2, "sub/b.bin": 3000}
        kept = art.scan(lambda m, head: m.size)
        with tarfile.open(p) as tf:
            assert kept["sub/b.bin"] == tf.extractfile("sub/b.bin").read()


@pytest.mark.parametrize("mode,container", [("w", "tar"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz")])
def test_other_tar_compressions(tmp_path, mode, container):
    p = _tar(tmp_path / "odd-name.bin", [_file("x.txt", b"hello")], mode=mode)
    with open_artifact(p) as art:
        assert art.container == container
        assert [m.name for m in art.members()] == ["x.txt"]


def test_detects_by_content_not_name(tmp_path):
    z = tmp_path / "model.tar.gz"  # a zip with a misleading name
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("inner.txt", "hi")
    assert open_artifact(z).container == "zip"


def test_normalisation_prefixes_junk_and_extra_root(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [
        ({"name": "./", "type": tarfile.DIRTYPE}, None),
        _file("./tfs-test-model/00000123/saved_model.pb", b"\x08\x01"),
        _file("./tfs-test-model/._saved_model.pb", b"junk"),
        _file("./tfs-test-model/.DS_Store", b"junk"),
    ], fmt=tarfile.PAX_FORMAT)
    with open_artifact(p) as art:
        ms = {m.name: m for m in art.members()}
        assert "tfs-test-model/00000123/saved_model.pb" in ms
        assert ms["tfs-test-model/._saved_model.pb"].ignored and ms["tfs-test-model/.DS_Store"].ignored
        assert art.root_prefix == "tfs-test-model"
        out = art.extract()
        assert (out / "tfs-test-model/00000123/saved_model.pb").read_bytes() == b"\x08\x01"
        assert not (out / "tfs-test-model/.DS_Store").exists()


def test_numeric_version_folder_is_not_stripped(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("00000123/saved_model.pb"), _file("00000123/variables/v.index")])
    assert open_artifact(p).root_prefix == ""


def test_identical_duplicates_tolerated_and_reported(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("model.pth", b"same"), _file("model.pth", b"same")])
    with open_artifact(p) as art:
        [m] = [m for m in art.members() if m.is_file]
        assert m.duplicates == 1 and m.conflicts == 0
        out = art.extract()
        assert (out / "model.pth").read_bytes() == b"same"


def test_differing_duplicates_listed_but_never_extracted(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("model.pth", b"first"), _file("model.pth", b"other")])
    with open_artifact(p) as art:
        [m] = [m for m in art.members() if m.is_file]
        assert m.conflicts == 1
        assert art.scan(lambda m, h: m.size)["model.pth"] == b"other"  # what tar -x would leave
        with pytest.raises(UnsafeArtifact, match="two different files named model.pth"):
            art.extract()


@pytest.mark.parametrize("entry,message", [
    ({"name": "/etc/passwd"}, "absolute path"),
    ({"name": "../../evil"}, r"climbs out"),
    ({"name": "a/../../evil"}, r"climbs out"),
    ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "symlink"),
    ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "missing.txt"}, "hardlink"),
    ({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "device"),
    ({"name": "fifo", "type": tarfile.FIFOTYPE}, "fifo"),
])
def test_hostile_tar_members_refused(tmp_path, entry, message):
    data = b"x" if entry.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else None
    p = _tar(tmp_path / "evil.tar.gz", [_file("a.txt"), (dict(entry), data)])
    before = set(os.listdir(tmp_path))
    with open_artifact(p) as art:
        with pytest.raises(UnsafeArtifact, match=message):
            art.members()
        with pytest.raises(UnsafeArtifact, match=message):
            art.extract()
    assert set(os.listdir(tmp_path)) == before
    assert not Path("/tmp/evil").exists() or Path("/tmp/evil").stat().st_mtime < time.time() - 60


def test_hostile_zip_members_refused(tmp_path):
    p = tmp_path / "evil.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escape.txt", "bad")
    with pytest.raises(UnsafeArtifact, match="climbs out"):
        open_artifact(p).members()
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        zi = zipfile.ZipInfo("l")
        zi.external_attr = (0o120777 << 16)
        zf.writestr(zi, "/etc/passwd")
    with pytest.raises(UnsafeArtifact, match="symlink"):
        open_artifact(link).extract()


def test_gzip_bomb_refused(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    ti = tarfile.TarInfo("zeros.bin")
    ti.size = 1 << 30  # 1 GiB of zeros compresses ~1000:1
    with gzip.open(bomb, "wb", compresslevel=9) as gz:
        gz.write(ti.tobuf(tarfile.GNU_FORMAT))
        chunk = b"\0" * (1 << 20)
        for _ in range(1024):
            gz.write(chunk)
    ratio = (1 << 30) / bomb.stat().st_size
    assert ratio > 900
    t0 = time.monotonic()
    with pytest.raises(UnsafeArtifact, match="decompression bomb"):
        open_artifact(bomb).members()
    assert time.monotonic() - t0 < 5  # stopped early, not after inflating the whole gigabyte


def test_member_count_and_size_caps(tmp_path):
    p = _tar(tmp_path / "many.tar.gz", [_file(f"f{i}") for i in range(20)])
    with pytest.raises(UnsafeArtifact, match="more than 10 entries"):
        open_artifact(p, Limits(max_members=10)).members()
    big = _tar(tmp_path / "big.tar.gz", [_file("a", os.urandom(5000))])
    with pytest.raises(UnsafeArtifact, match="1000-byte limit|more than 1000 bytes"):
        open_artifact(big, Limits(max_total_bytes=1000)).members()


def test_truncated_gzip_is_a_clear_error(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("a.bin", os.urandom(200_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CorruptArtifact, match="truncated"):
        open_artifact(cut).members()


def test_corrupt_gzip_crc_is_detected(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("a.txt", b"hello world" * 100)])
    data = bytearray(p.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC32 trailer
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact):
        open_artifact(bad).members()


def test_empty_and_missing_inputs(tmp_path):
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    with pytest.raises(NotAnArtifact, match="empty"):
        open_artifact(empty)
    with pytest.raises(NotAnArtifact, match="does not exist"):
        open_artifact(tmp_path / "nope.tar.gz")


def test_loose_file_and_directory(tmp_path):
    f = tmp_path / "xgboost-model"
    f.write_bytes(b"\x00\x00\x00?binary")
    with open_artifact(f) as art:
        assert art.container == "file"
        assert [m.name for m in art.members()] == ["xgboost-model"]
    d = tmp_path / "dir"
    (d / "code").mkdir(parents=True)
    (d / "code" / "inference.py").write_text("def model_fn(d): pass\n")
    (d / "model.bin").write_bytes(b"\1\2")
    with open_artifact(d) as art:
        assert art.container == "directory"
        assert sorted(m.name for m in art.members() if m.is_file) == ["code/inference.py", "model.bin"]
    os.symlink("/etc/passwd", d / "escape")
    with pytest.raises(UnsafeArtifact, match="symlink"):
        open_artifact(d).extract()


def test_nested_zip_rules(tmp_path):
    from artifact_tools.archive import open_nested

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../x", "bad")
    with pytest.raises(UnsafeArtifact, match="climbs out"):
        open_nested(buf.getvalue(), "model_algo-1", Limits())


def test_extract_never_writes_outside(tmp_path):
    p = _tar(tmp_path / "m.tar.gz", [_file("a/b.txt", b"1"), ({"name": "a/../../../x"}, b"2")])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArtifact):
        open_artifact(p).extract(dest)
    assert not (tmp_path / "x").exists() and not dest.exists()


def test_s3_uri(tmp_path, s3_server, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    p = _tar(tmp_path / "model.tar.gz", [_file("model.json", b'{"a": 1}')])
    s3.upload_file(str(p), "models", "job-1/output/model.tar.gz")
    s3.put_object(Bucket="models", Key="unpacked/code/inference.py", Body=b"import os\n")
    opts = {"client_kwargs": {"endpoint_url": s3_server}}
    with open_artifact("s3://models/job-1/output/model.tar.gz", storage_options=opts) as art:
        assert art.container == "tar.gz"
        assert art.scan(lambda m, h: m.size) == {"model.json": b'{"a": 1}'}
    with open_artifact("s3://models/unpacked", storage_options=opts) as art:
        assert art.container == "directory"
        assert [m.name for m in art.members()] == ["code/inference.py"]
    with pytest.raises(NotAnArtifact, match="does not exist"):
        open_artifact("s3://models/nothing-here.tar.gz", storage_options=opts)
