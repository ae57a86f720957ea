"""Seek, don't read; one pass, then none (issue 10).

- Listing a plain tar or a zip (stored or deflated) reads headers, the central directory and the first bytes of
  each member, never the rest of a member's data: the archive is served through an fsspec file system whose files
  record every range read and refuse the data region of the large member; in a fresh interpreter, the bytes the
  process reads (``/proc/self/io`` ``rchar``) while inspecting local files stay under 1% of each file.
- ``loaders.load`` reads an artifact once (its digest, report and extraction come from the same pass; over HTTP on
  127.0.0.1 the server sends each byte once) and a second load reads none of it: the archive's bytes are replaced
  by garbage of the same size with the same modification time, and the second load still gives the same model.
  A file whose size or modification time changed is read again.
- The trust gate runs on the stored report: a hostile scikit-learn joblib (a pickled ``__reduce__`` tuple calling
  ``os.system`` on a canary path, built without running it) is refused on the first and on the warm load alike,
  and the canary never appears.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import artifact_tools
from artifact_tools import open_artifact
from artifact_tools.errors import ArtifactError, CorruptArtifact, TrustRequired

from helpers import pack_tar_gz, write_tar

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
HEAD = 64 << 10
CONFIG = json.dumps({"model_type": "demo", "hidden_size": 8}).encode()


def _random(n: int, seed: int) -> bytes:
    """``n`` pseudo-random bytes after 16 zero bytes (no magic number, not a protobuf field key: kind 'binary')."""
    return bytes(16) + hashlib.shake_256(seed.to_bytes(4, "little")).digest(n - 16)


# ------------------------------------------------------------------------------------------ archives

def _zip(path: Path, members: list[tuple[str, bytes]], method: int) -> Path:
    level = 1 if method == zipfile.ZIP_DEFLATED else None
    with zipfile.ZipFile(path, "w", compression=method, compresslevel=level) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _data_region(path: Path, name: str) -> tuple[int, int]:
    """Where member ``name``'s stored bytes lie in the archive, found with the standard library."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            ti = tf.getmember(name)
            return ti.offset_data, ti.offset_data + ti.size
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        info = zf.getinfo(name)
        f.seek(info.header_offset + 26)
        n, extra = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        start = info.header_offset + 30 + n + extra
        return start, start + info.compress_size


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict[str, Path]:
    """A plain tar, a stored zip and a deflated zip of the same files: a 4 MiB random ``weights.bin`` between
    two small files, so listing must get past its data to reach the last one."""
    d = tmp_path_factory.mktemp("containers")
    members = [("config.json", CONFIG), ("weights.bin", _random(4 * MiB, 1)), ("vocab.txt", b"a\nb\nc\n")]
    return {"tar": write_tar(d / "m.tar", members),
            "zip-stored": _zip(d / "stored.zip", members, zipfile.ZIP_STORED),
            "zip-deflated": _zip(d / "deflated.zip", members, zipfile.ZIP_DEFLATED)}


# An fsspec file system over local files that records what is read and refuses one region of each file.

class _Guarded(io.RawIOBase):
    def __init__(self, path: Path, forbidden: tuple[int, int], log: list):
        self._f = open(path, "rb")
        self.size = path.stat().st_size
        self._forbidden, self._log = forbidden, log

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, n: int = -1) -> bytes:
        start = self._f.tell()
        data = self._f.read(n)
        self._log.append((start, start + len(data)))
        lo, hi = self._forbidden
        if start < hi and start + len(data) > lo:
            raise AssertionError(f"read [{start}, {start + len(data)}) inside the refused region [{lo}, {hi})")
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


@pytest.fixture
def guarded():
    """Registers ``guarded://NAME``: ``serve(name, path, forbidden)`` exposes a local file; returns the read log."""
    import fsspec

    files: dict[str, tuple[Path, tuple[int, int]]] = {}
    log: list[tuple[int, int]] = []

    class GuardedFS(fsspec.AbstractFileSystem):
        protocol = "guarded"
        cachable = False

        def info(self, path, **kwargs):
            name = self._strip_protocol(path)
            if name not in files:
                raise FileNotFoundError(path)
            p = files[name][0]
            st = p.stat()
            return {"name": name, "size": st.st_size, "type": "file", "ETag": f'"{st.st_ino}-{st.st_mtime_ns}"'}

        def _open(self, path, mode="rb", **kwargs):
            p, forbidden = files[self._strip_protocol(path)]
            return _Guarded(p, forbidden, log)

    fsspec.register_implementation("guarded", GuardedFS, clobber=True)

    def serve(name: str, path: Path, forbidden: tuple[int, int] = (0, 0)) -> str:
        files[name] = (path, forbidden)
        return f"guarded://{name}"

    serve.log = log
    return serve


@pytest.mark.parametrize("kind", ["tar", "zip-stored", "zip-deflated"])
def test_listing_never_reads_member_data_beyond_its_head(containers, guarded, kind):
    path = containers[kind]
    start, end = _data_region(path, "weights.bin")
    # A deflated head may need a little more than 64 KiB of compressed input; nothing past 256 KiB is needed. The
    # last 4 KiB are allowed: tarfile reads the byte before the next header (to notice a truncated archive), and
    # the search for a zip's end record reads the file's last kilobyte.
    uri = guarded(path.name, path, (start + 4 * HEAD, end - 4096))
    report = artifact_tools.inspect(uri)
    assert [(f.path, f.size, f.kind) for f in report.files] == [
        ("config.json", len(CONFIG), "json"), ("weights.bin", 4 * MiB, "binary"), ("vocab.txt", 6, "text")]
    local = artifact_tools.inspect(path)  # read from disk: the same report
    assert [(f.path, f.size, f.kind) for f in local.files] == [(f.path, f.size, f.kind) for f in report.files]
    read = sum(b - a for a, b in guarded.log)
    assert read < 0.1 * path.stat().st_size, read


CHILD = r"""
import json, sys
import artifact_tools

def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])

out = {}
for path in sys.argv[1:]:
    artifact_tools.inspect(path)  # imports whatever inspecting this kind needs
    before = rchar()
    artifact_tools.inspect(path)
    out[path] = rchar() - before
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_inspect_reads_under_one_percent_of_large_local_containers(tmp_path):
    members = [("config.json", CONFIG), ("model.safetensors", _safetensors(16 * MiB)), ("vocab.txt", b"a\nb\n")]
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in members:
        (folder / name).write_bytes(data)
    paths = [write_tar(tmp_path / "m.tar", members), _zip(tmp_path / "s.zip", members, zipfile.ZIP_STORED),
             _zip(tmp_path / "d.zip", members, zipfile.ZIP_DEFLATED)]
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths), str(folder)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    read = json.loads(proc.stdout)
    for p in paths:
        assert read[str(p)] < 0.01 * p.stat().st_size, (p.name, read[str(p)])
    assert read[str(folder)] < 0.01 * 16 * MiB, read[str(folder)]


def _safetensors(size: int) -> bytes:
    """A safetensors file of ``size`` bytes: one uint8 tensor after a JSON header (safetensors format docs)."""
    n = size - 8 - 128
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode().ljust(128)
    return len(header).to_bytes(8, "little") + header + _random(n, 2)


def _zip_entries(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A stored zip that may repeat a name (zipfile warns about duplicates but writes them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _zip(path, members, zipfile.ZIP_STORED)


@pytest.mark.parametrize("build", [write_tar, _zip_entries], ids=["tar", "zip"])
def test_large_duplicates_are_compared_by_reading_them_again(tmp_path, build):
    """Duplicate names in a container read by seeking: both copies are read whole to tell identical from
    different (their heads and sizes are the same; only the bytes past the head differ)."""
    big = _random(300_000, 3)
    other = big[:200_000] + _random(100_000, 4)
    same = build(tmp_path / "same", [("w.bin", big), ("a.txt", b"x"), ("w.bin", big)])
    with open_artifact(same) as art:
        [m] = [m for m in art.members() if m.name == "w.bin"]
        assert (m.duplicates, m.conflicts, m.size) == (1, 0, len(big))
    diff = build(tmp_path / "diff", [("w.bin", big), ("w.bin", other)])
    with open_artifact(diff) as art:
        [m] = art.members()  # keeps nothing: only the heads were read before the names met
        assert (m.duplicates, m.conflicts) == (0, 1)
    with open_artifact(diff) as art:
        assert art.scan(lambda m, h: m.size)["w.bin"] == other  # the last copy, as tar -x leaves it


def test_plain_tar_cut_inside_member_data_is_corrupt(containers, tmp_path):
    data = containers["tar"].read_bytes()
    start, end = _data_region(containers["tar"], "weights.bin")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: (start + end) // 2])
    with pytest.raises(CorruptArtifact, match="truncated or damaged"):
        artifact_tools.inspect(cut)


@pytest.mark.parametrize("kind", ["tar", "zip-stored", "zip-deflated", "tar.gz", "file"])
def test_one_pass_extracts_and_hashes_like_two(containers, tmp_path, kind):
    """scan(extract_to=, digest=True) gives the files extract() writes and the fingerprint() of the file."""
    if kind == "tar.gz":
        path = tmp_path / "m.tar.gz"
        with tarfile.open(containers["tar"]) as tf:
            path.write_bytes(pack_tar_gz({m.name: tf.extractfile(m).read() for m in tf.getmembers()}))
    elif kind == "file":
        path = tmp_path / "weights.bin"
        path.write_bytes(_random(3 * MiB, 5))
    else:
        path = containers[kind]
    with open_artifact(path) as art:
        art.scan(lambda m, h: 0, extract_to=tmp_path / "one", digest=True)
        assert art.extract_error is None
        assert art.digest == hashlib.sha256(path.read_bytes()).hexdigest() == art.fingerprint()
        two = art.extract(tmp_path / "two")
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    assert one == {p.relative_to(two): p.read_bytes() for p in two.rglob("*") if p.is_file()} and one


# ------------------------------------------------------------------------------------------ loading

@pytest.fixture(scope="module")
def sklearn_models(tmp_path_factory) -> dict[str, Path]:
    """Two different fitted LogisticRegression models, each as model.joblib in a tar.gz (written by joblib)."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    d = tmp_path_factory.mktemp("sk")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    out = {}
    for name, flip in (("a", 1.0), ("b", -1.0)):
        model = LogisticRegression().fit(x, (flip * x[:, 0] > 0).astype(int))
        buf = io.BytesIO()
        joblib.dump(model, buf)
        p = d / f"{name}.tar.gz"
        p.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
        out[name] = p
    out["x"] = x
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(path))
    return path


def _garble_keeping_identity(path: Path) -> None:
    """Overwrite the file's bytes in place (same inode, same size) and put its modification time back."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(b"\xa5" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_ino == st.st_ino


def test_warm_load_reads_no_archive_byte(sklearn_models, cache, tmp_path):
    import loaders

    path = tmp_path / "model.tar.gz"
    path.write_bytes(sklearn_models["a"].read_bytes())
    x = sklearn_models["x"]
    cold = loaders.load(path)
    expected = cold.predict(x)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (cache / digest / "model.joblib").is_file()
    stored = json.loads((cache / f"{digest}.json").read_text())
    assert stored["report"]["framework"] == "sklearn" and stored["report"]["trust"]["verdict"] == "safe"
    (cache / f"{digest}.json").unlink()  # an extraction without its report (an older cache): inspected again
    assert (loaders.load(path).predict(x) == expected).all()
    assert json.loads((cache / f"{digest}.json").read_text()) == stored
    _garble_keeping_identity(path)  # any read of the archive now sees garbage
    warm = loaders.load(path)
    assert (warm.predict(x) == expected).all()
    assert warm.report.source == str(path) and warm.report.to_dict() == cold.report.to_dict()


def test_changed_file_is_read_again(sklearn_models, cache, tmp_path):
    import loaders

    path = tmp_path / "model.tar.gz"
    path.write_bytes(sklearn_models["a"].read_bytes())
    x = sklearn_models["x"]
    first = loaders.load(path).predict(x)
    st = path.stat()
    _garble_keeping_identity(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # only the modification time differs
    with pytest.raises(ArtifactError):
        loaders.load(path)  # read again: the garbage is not an artifact
    path.write_bytes(sklearn_models["b"].read_bytes())  # another model (another size) under the same name
    second = loaders.load(path).predict(x)
    assert (second != first).any()
    path.write_bytes(sklearn_models["a"].read_bytes())  # new inode or mtime, same bytes: the cached copy serves
    assert (loaders.load(path).predict(x) == first).all()


def test_same_loose_file_under_two_names_loads_under_each(cache, tmp_path):
    """A loose model file's extraction holds it under its own name: the same bytes saved under another name (a
    loose ``m.ubj``, then ``xgboost-model.ubj`` elsewhere) must load from a folder that has the second name too."""
    xgb = pytest.importorskip("xgboost")
    import numpy as np

    import loaders

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    booster = xgb.train({"max_depth": 3}, xgb.DMatrix(x, label=x[:, 0] * 2 + x[:, 1]), 8)
    first, second = tmp_path / "a" / "m.ubj", tmp_path / "b" / "xgboost-model.ubj"
    for path in (first, second):
        path.parent.mkdir()
        booster.save_model(str(path))
    assert first.read_bytes() == second.read_bytes()
    expected = booster.predict(xgb.DMatrix(x))
    for path in (first, second, first):
        loaded = loaders.load(path)
        assert [f.path for f in loaded.report.files] == [path.name]
        np.testing.assert_array_equal(loaded.predict(x), expected)


class _Evil:
    """Pickles as ``os.system(command)``: ``__reduce__`` only returns the tuple; nothing runs while pickling."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_trust_gate_refuses_on_the_warm_path_from_the_stored_report(sklearn_models, cache, tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    import loaders

    canary = tmp_path / "canary"
    x = sklearn_models["x"]
    model = LogisticRegression().fit(x, (x[:, 1] > 0).astype(int))
    model.hook_ = _Evil(f"touch {canary}")  # a loadable model (a predicting estimator) carrying the payload
    buf = io.BytesIO()
    joblib.dump(model, buf)
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
    with pytest.raises(TrustRequired, match="system") as cold:
        loaders.load(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((cache / f"{digest}.json").read_text())["report"]["trust"]["verdict"] == "dangerous"
    _garble_keeping_identity(path)  # the warm refusal can only come from the stored report
    for trust in (False, True):
        with pytest.raises(TrustRequired, match="system") as warm:
            loaders.load(path, trust=trust)
    assert str(warm.value) == str(cold.value)
    assert not canary.exists()


# ------------------------------------------------------------------------------------------ a URI, once

class _RangeHandler(BaseHTTPRequestHandler):
    """Serves one file with HEAD (size, ETag) and GET with or without a single Range; counts body bytes sent."""

    data = b""
    sent = 0

    def log_message(self, *args):
        pass

    def _headers(self, code: int, length: int, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", '"%s"' % hashlib.md5(self.data).hexdigest())
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):
        self._headers(200, len(self.data))

    def do_GET(self):
        rng = self.headers.get("Range")
        start, end = 0, len(self.data) - 1
        if rng:
            a, _, b = rng.removeprefix("bytes=").partition("-")
            start, end = int(a), min(int(b) if b else end, len(self.data) - 1)
        body = self.data[start:end + 1]
        extra = {"Content-Range": f"bytes {start}-{end}/{len(self.data)}"} if rng else None
        self._headers(206 if rng else 200, len(body), extra)
        self.wfile.write(body)
        type(self).sent += len(body)


def test_uri_is_fetched_once_then_not_at_all(sklearn_models, cache):
    pytest.importorskip("aiohttp")
    import loaders

    # 20 MiB of incompressible padding next to the model: several 8 MiB blocks to fetch.
    with tarfile.open(sklearn_models["a"]) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    members["padding.bin"] = _random(20 * MiB, 6)
    handler = type("Handler", (_RangeHandler,), {"data": pack_tar_gz(members), "sent": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/model.tar.gz"
        x = sklearn_models["x"]
        expected = loaders.load(sklearn_models["a"]).predict(x)
        assert (loaders.load(url).predict(x) == expected).all()
        assert handler.sent == len(handler.data)  # every byte once: one pass lists, hashes and extracts
        assert (loaders.load(url).predict(x) == expected).all()
        assert handler.sent == len(handler.data)  # warm: only the metadata request
    finally:
        server.shutdown()


def test_a_report_stored_by_other_inspection_code_is_not_reused(tmp_path, monkeypatch):
    """A warm load reuses the stored report only when the same inspection code wrote it: editing (or upgrading)
    the core -- its detectors, audit or trust policy -- makes the next load inspect the artifact again."""
    import json

    import loaders
    from loaders import cache

    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path / "cache"))
    art = tmp_path / "model.tar.gz"
    import joblib
    from sklearn.linear_model import LinearRegression

    buf = io.BytesIO()
    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), buf)
    art.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
    loaders.load(art)
    stored = next(p for p in (tmp_path / "cache").rglob("*.json") if '"report"' in p.read_text())
    record = json.loads(stored.read_text())
    assert record["artifact_tools"] == cache.inspection_code_version()
    record["artifact_tools"] = "0.0.0+an-older-inspection"
    record["report"]["framework"] = "r"  # what that older code said: the next load must not believe it
    stored.write_text(json.dumps(record))
    assert loaders.load(art).framework == "sklearn"


def test_gzipped_loose_model_file_is_named_as_such(tmp_path, cache):
    """``gzip -c xgboost-model > m.gz``: one gzip-compressed file, not a tar archive (SageMaker would fail to
    unpack it). The refusal says so and names what is inside (sniffed from the decompressed head); the
    decompressed file itself loads and predicts as the booster does."""
    import gzip

    xgb = pytest.importorskip("xgboost")
    import numpy as np

    import loaders
    from artifact_tools import inspect

    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3))
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=x[:, 0]), 4)
    raw = bytes(booster.save_raw("ubj"))
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(raw))
    report = inspect(path)
    assert report.container == "gzip-file" and not report.loadable
    reason = report.not_loadable_reason or ""
    assert "m.gz is one gzip-compressed file (xgboost inside)" in reason and "another archive" not in reason
    with pytest.raises(ArtifactError, match="gzip-compressed file"):
        loaders.load(path)
    plain = tmp_path / "xgboost-model"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    np.testing.assert_allclose(loaders.load(plain).predict(x), booster.predict(xgb.DMatrix(x)), rtol=1e-6)


def test_special_files_and_unreachable_urls_are_named_for_what_they_are(tmp_path):
    """A device or a named pipe is no artifact (and is never read: a pipe without writer would block); a URL whose
    server refuses the connection could not be fetched, which is not the same as a 404's "does not exist"."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "a character device"), (str(fifo), "a named pipe")):
        with pytest.raises(ArtifactError, match=f"is not a regular file \\({kind}\\)"):
            artifact_tools.inspect(path)

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_error(404)

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ArtifactError, match="does not exist"):
            artifact_tools.inspect(f"http://127.0.0.1:{server.server_port}/model.tar.gz")
    finally:
        server.shutdown()
        server.server_close()
    refused = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    port = refused.server_port
    refused.server_close()  # nothing listens there now
    with pytest.raises(ArtifactError, match="could not be fetched"):
        artifact_tools.inspect(f"http://127.0.0.1:{port}/model.tar.gz")
