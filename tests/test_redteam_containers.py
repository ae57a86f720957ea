"""Red-team regressions for the container layer: inputs that two readers see differently, so that what inspection
audits is not what a container (GNU ``tar -x``, torch's miniz) gets, and inputs that cost unbounded work.

Each ambiguity test first shows, with the other reader itself as the oracle (GNU tar, Python's ``tarfile``,
``torch.load``), that the two readers really disagree on the bytes, then that artifact-tools refuses them (or,
for torch records, audits what torch reads). Every archive is built here, byte by byte where the standard
writers cannot produce it.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest

import artifact_tools
from artifact_tools.archive import open_artifact
from artifact_tools.errors import ArtifactError, CorruptArtifact, UnsafeArtifact

from helpers import PROJECT_ROOT

GNU_TAR = shutil.which("tar")
needs_gnu_tar = pytest.mark.skipif(GNU_TAR is None, reason="GNU tar (the reader SageMaker uses) is not installed")


# ----------------------------------------------------------------------------------------------- tar builders

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 512)


def header(name: str, size: int = 0, typ: bytes = tarfile.REGTYPE, linkname: str = "",
           patch: dict[int, bytes] | None = None) -> bytes:
    """One ustar header block written by the standard library, optionally with bytes overwritten at offsets
    (the checksum is then computed again, as POSIX defines it: the sum of all bytes, the field read as spaces)."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname = size, typ, linkname
    block = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    for off, val in (patch or {}).items():
        block[off:off + len(val)] = val
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def member(name: str, data: bytes = b"data", **kw) -> bytes:
    return header(name, len(data), **kw) + _pad(data)


def pax(records: list[tuple[str, str]], typ: bytes = tarfile.XHDTYPE) -> bytes:
    """A pax extended header: records "%d %s=%s\\n", the length counting itself (POSIX pax, "pax Extended
    Header")."""
    body = b""
    for key, value in records:
        kv = f" {key}={value}\n".encode()
        n = len(kv) + 1
        while len(str(n)) + len(kv) != n:
            n += 1
        body += str(n).encode() + kv
    return header("PaxHeader", len(body), typ) + _pad(body)


def gnu_long(name: str, typ: bytes = tarfile.GNUTYPE_LONGNAME) -> bytes:
    body = name.encode() + b"\0"
    return header("././@LongLink", len(body), typ) + _pad(body)


END = b"\0" * 1024


def gnu_tar_names(path) -> list[str]:
    out = subprocess.run([GNU_TAR, "--quoting-style=literal", "-tf", str(path)], capture_output=True, text=True,
                         errors="replace")
    return out.stdout.splitlines()


def tarfile_names(path) -> list[str]:
    with tarfile.open(path) as tf:
        return [m.name for m in tf.getmembers()]


def listing(path) -> list[str]:
    with open_artifact(path) as art:
        return [m.name for m in art.members()]


# ----------------------------------------------------------------------------------------------- tar ambiguity

CHAINS = {
    "two-pax-headers": pax([("path", "notes.txt")]) + pax([("path", "evil.pkl")]) + member("x") + END,
    "two-gnu-long-names": gnu_long("notes.txt") + gnu_long("evil.pkl") + member("x") + END,
    "long-name-then-pax": gnu_long("notes.txt") + pax([("path", "evil.pkl")]) + member("x") + END,
}


@needs_gnu_tar
@pytest.mark.parametrize("case", sorted(CHAINS))
def test_chained_name_records_that_tar_readers_resolve_differently_are_refused(tmp_path, case):
    p = tmp_path / f"{case}.tar"
    p.write_bytes(CHAINS[case])
    assert gnu_tar_names(p) == ["evil.pkl"]  # GNU tar: the last record names the entry
    assert tarfile_names(p) == ["notes.txt"]  # tarfile: the first one
    with pytest.raises(UnsafeArtifact, match="tar readers disagree on which one names it"):
        listing(p)


@needs_gnu_tar
@pytest.mark.parametrize("magic", [b"ustar  \0", b"\0" * 8], ids=["old-gnu", "v7"])
def test_name_prefix_outside_posix_headers_is_refused(tmp_path, magic):
    p = tmp_path / "prefix.tar"
    p.write_bytes(member("inference.py", patch={257: magic, 345: b"junk\0"}) + END)
    assert gnu_tar_names(p) == ["inference.py"]  # GNU tar reads the prefix only after the POSIX magic
    assert tarfile_names(p) == ["junk/inference.py"]
    with pytest.raises(UnsafeArtifact, match="name prefix field"):
        listing(p)
    posix = tmp_path / "posix.tar"  # the same prefix after the POSIX magic means one thing to both
    posix.write_bytes(member("inference.py", patch={345: b"code\0"}) + END)
    assert gnu_tar_names(posix) == tarfile_names(posix) == listing(posix) == ["code/inference.py"]


@needs_gnu_tar
def test_damaged_header_after_the_first_is_refused_not_taken_as_the_end(tmp_path):
    p = tmp_path / "damaged.tar"
    p.write_bytes(member("model.json", b"{}") + b"\x01" * 512 + member("evil.pkl") + END)
    assert "evil.pkl" in gnu_tar_names(p)  # GNU tar skips the damaged block and extracts what follows
    assert tarfile_names(p) == ["model.json"]  # tarfile silently ends the archive there
    with pytest.raises(CorruptArtifact, match="damaged tar header at byte 1024"):
        listing(p)
    gz = tmp_path / "damaged.tar.gz"  # the same through the streaming (compressed) reader
    import gzip

    gz.write_bytes(gzip.compress(p.read_bytes()))
    with pytest.raises(CorruptArtifact, match="damaged tar header"):
        listing(gz)


@needs_gnu_tar
@pytest.mark.parametrize("typ,name,linkname", [(tarfile.SYMTYPE, "s", "t.txt"), (tarfile.AREGTYPE, "d/", ""),
                                                (tarfile.FIFOTYPE, "p", "")], ids=["symlink", "areg-dir", "fifo"])
def test_special_entry_declaring_data_is_refused(tmp_path, typ, name, linkname):
    """tarfile reads the next header right after such an entry, GNU tar after the data it declares: a header
    hidden in that data is an entry to one reader and bytes to the other."""
    hidden = member("hidden.pkl", b"evil")
    p = tmp_path / "special.tar"
    p.write_bytes(member("t.txt") + header(name, len(hidden), typ, linkname) + hidden + member("after.txt") + END)
    assert "hidden.pkl" not in gnu_tar_names(p)
    assert "hidden.pkl" in tarfile_names(p)
    with pytest.raises(UnsafeArtifact, match="declares 1024 bytes of data"):
        listing(p)


@pytest.mark.parametrize("value", ["abc", "1_0", " 4", "+4"])
def test_pax_size_that_is_not_a_plain_number_is_refused(tmp_path, value):
    p = tmp_path / "pax-size.tar"
    p.write_bytes(pax([("size", value)]) + member("a.txt", b"x" * 600) + member("b.txt") + END)
    with tarfile.open(p) as tf:  # tarfile takes it (as 0, or as Python's int() reads it): no error to rely on
        assert tf.getmembers()[0].size in (0, 4, 10)
    with pytest.raises(CorruptArtifact, match="not a decimal number"):
        listing(p)


def test_negative_base256_size_is_refused(tmp_path):
    p = tmp_path / "negative.tar"
    p.write_bytes(member("a.txt", patch={124: b"\xff" * 12}) + member("b.txt") + END)
    with pytest.raises(CorruptArtifact, match="negative size"):
        listing(p)


def test_tar_that_is_also_a_zip_is_refused(tmp_path):
    """A tar whose first header's name field holds a whole zip entry, the zip's directory after the tar's end:
    a zip reader sees evil.pkl, tar -x sees model.json."""
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("evil.pkl", pickle.dumps(1))
    zd = zb.getvalue()
    local_end = zd.index(b"PK\x01\x02")
    first = header("x", patch={0: zd[:local_end].ljust(100, b"\0")})
    body = first + member("model.json", b"{}") + END
    eocd = bytearray(zd[zd.rindex(b"PK\x05\x06"):])
    struct.pack_into("<L", eocd, 16, len(body))
    p = tmp_path / "polyglot.tar"
    p.write_bytes(body + zd[local_end:zd.rindex(b"PK\x05\x06")] + bytes(eocd))
    assert zipfile.ZipFile(p).namelist() == ["evil.pkl"]
    assert tarfile_names(p)[1:] == ["model.json"]
    with pytest.raises(UnsafeArtifact, match="both a zip archive and a tar archive"):
        open_artifact(p)


# ----------------------------------------------------------------------------------------------- torch records

def _torch_zip(records: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def _pid_pickle(length: int | None = None) -> bytes:
    """A pickle calling ``posix.getpid()``: harmless when run, and a dangerous call to the audit (module ``os``).
    Padded with STOP opcodes after the first to ``length`` bytes (an unpickler stops at the first)."""
    data = b"\x80\x02cposix\ngetpid\n)R."
    return data if length is None else data + b"." * (length - len(data))


@pytest.fixture(scope="module")
def torch_records():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf)
    z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    return torch, [(n, z.read(n)) for n in z.namelist()]


def _inspect_verdict(tmp_path, data: bytes) -> str:
    p = tmp_path / "model.pth"
    p.write_bytes(data)
    return artifact_tools.inspect(str(p)).trust["verdict"]


def test_torch_record_found_by_torch_under_another_case_is_audited(tmp_path, torch_records):
    torch, records = torch_records
    data = _torch_zip(records + [("archive/DATA.PKL", _pid_pickle())])  # miniz compares names ignoring case
    assert torch.load(io.BytesIO(data), weights_only=False) == os.getpid()  # the oracle: torch ran it
    assert _inspect_verdict(tmp_path, data) != "safe"


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_torch_zip_with_two_records_of_one_name_is_refused(tmp_path, torch_records):
    torch, records = torch_records
    pkl = next(n for n, _ in records if n.endswith("/data.pkl"))
    good = dict(records)[pkl]
    rest = [(n, d) for n, d in records if n != pkl]
    hidden = 0
    for at in range(len(rest) + 1):  # the evil copy first, the good one at every later place
        data = _torch_zip([(pkl, _pid_pickle())] + rest[:at] + [(pkl, good)] + rest[at:])
        assert zipfile.ZipFile(io.BytesIO(data)).read(pkl) == good  # zipfile (the old audit) reads the last copy
        hidden += torch.load(io.BytesIO(data), weights_only=False) == os.getpid()  # miniz: the one its search meets
        with pytest.raises(CorruptArtifact, match="two entries named 'archive/data.pkl'"):
            _inspect_verdict(tmp_path, data)
    assert hidden  # the oracle: in some layout torch unpickles the copy the old audit never read


def test_zip_whose_directory_is_not_where_its_end_record_says_is_refused(tmp_path, torch_records):
    """Two torch zips of one layout: the evil one, and in its archive comment the good one, whose end record
    (the file's last) gives its directory offset relative to its own start. zipfile finds that directory just
    before the end record and shifts every offset by the difference; miniz takes the offset as it is, which is
    the evil zip's directory."""
    torch, records = torch_records
    pkl = next(n for n, _ in records if n.endswith("/data.pkl"))
    good = _torch_zip(records)
    evil = _torch_zip([(n, _pid_pickle(len(d)) if n == pkl else d) for n, d in records])
    end = evil.rindex(b"PK\x05\x06")
    data = evil[:end + 20] + struct.pack("<H", len(good)) + good
    assert zipfile.ZipFile(io.BytesIO(data)).read(pkl) == dict(records)[pkl]
    assert torch.load(io.BytesIO(data), weights_only=False) == os.getpid()
    with pytest.raises(CorruptArtifact, match="central directory is not at the offset"):
        _inspect_verdict(tmp_path, data)


def test_zip_entry_named_otherwise_in_its_local_header_is_refused(tmp_path):
    data = bytearray(_torch_zip([("model.json", b"{}"), ("evil.pkl", pickle.dumps(1))]))
    first = data.index(b"evil.pkl")  # the local header comes before the central directory
    assert first < data.index(b"PK\x01\x02")
    data[first:first + 8] = b"xxxx.pkl"
    p = tmp_path / "names.zip"
    p.write_bytes(bytes(data))
    with pytest.raises(zipfile.BadZipFile, match="differ"):  # zipfile's own reader refuses it too
        zipfile.ZipFile(p).read("evil.pkl")
    with pytest.raises(CorruptArtifact, match="another name in its local header"):
        listing(p)


# ----------------------------------------------------------------------------------------------- bounded work

def test_entry_nested_thousands_of_folders_deep_is_refused(tmp_path):
    """2,000 folders fit in 4,096 bytes; pathlib's mkdir and shutil.rmtree recurse once per folder."""
    p = tmp_path / "deep.tar"
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("a/" * 2000 + "model.json")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"{}"))
    with pytest.raises(UnsafeArtifact, match="nested more than 256 folders deep"):
        listing(p)
    ok = tmp_path / "ok.tar"  # 200 folders: still an artifact
    with tarfile.open(ok, "w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("a/" * 200 + "model.json")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"{}"))
    assert listing(ok) == ["a/" * 200 + "model.json"]


def _small_tar() -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo("model.json")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"{}"))
    return b.getvalue()


def test_empty_gzip_members_cannot_stall_reading(tmp_path):
    import gzip

    p = tmp_path / "empty-members.tar.gz"
    p.write_bytes(gzip.compress(_small_tar()) + gzip.compress(b"", mtime=0) * 200_000)  # 4 MB
    start = time.process_time()
    with pytest.raises(UnsafeArtifact, match="concatenated gzip streams"):
        listing(p)
    assert time.process_time() - start < 2  # was 8 s of CPU for these 4 MB (40 us per member)


def test_multi_member_gzip_with_a_tiny_first_member_is_a_tar(tmp_path):
    import gzip

    raw = _small_tar()
    p = tmp_path / "two-members.tar.gz"
    p.write_bytes(gzip.compress(raw[:100]) + gzip.compress(raw[100:]))  # as `cat a.gz b.gz` makes
    assert tarfile_names(p) == ["model.json"]
    with open_artifact(p) as art:
        assert art.container == "tar.gz"
        assert [m.name for m in art.members()] == ["model.json"]


# ----------------------------------------------------------------------------------------------- URIs, via the CLI

def _cli(*args: str, cache) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = dict(os.environ, ARTIFACT_TOOLS_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "artifact_tools", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, preexec_fn=limit, timeout=120)


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1:1/model.tar.gz", "github://", "reference://",
                                 "zip::memory://absent.zip"])
def test_file_systems_that_fail_when_made_give_one_sentence(tmp_path, uri):
    r = _cli("inspect", uri, cache=tmp_path / "cache")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("artifact-tools: cannot open") and r.stderr.count("\n") == 1, r.stderr


def test_caching_file_system_uri_is_read(tmp_path):
    p = tmp_path / "model.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "{}")
    r = _cli("inspect", "--json", f"simplecache::file://{p}", cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr  # was an internal error: the cached file has no ``size``
    assert '"config.json"' in r.stdout


def test_uri_folder_that_cannot_be_listed_gives_one_sentence(tmp_path):
    pytest.importorskip("s3fs")
    r = _cli("inspect", "s3://", cache=tmp_path / "cache")
    assert r.returncode == 2 and r.stderr.startswith("artifact-tools: cannot list"), r.stderr
    assert r.stderr.count("\n") == 1


def test_load_refuses_what_inspect_refuses(tmp_path):
    """The same refusal on both paths (load lists in its own one-pass scan)."""
    p = tmp_path / "x.tar"
    p.write_bytes(CHAINS["two-pax-headers"])
    for cmd in ("inspect", "load"):
        r = _cli(cmd, str(p), cache=tmp_path / "cache")
        assert r.returncode == 2 and "tar readers disagree" in r.stderr, (cmd, r.stderr)
    with pytest.raises(ArtifactError):
        listing(p)


# ----------------------------------------------------------------------------------------------- every copy audited

def _evil_pickle() -> bytes:
    return _pid_pickle()


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()


@needs_gnu_tar
def test_every_copy_of_a_name_is_audited_not_only_the_last(tmp_path):
    """``x\\model.pkl`` and ``x/model.pkl`` are one name to artifact-tools (backslashes read as folder
    separators) but two files to GNU tar; ``./a`` and ``a`` are one file to both. The copy that a later one
    replaces is still audited, so the verdict is never 'safe' while a dangerous pickle sits in the archive."""
    benign = pickle.dumps({"a": 1}, protocol=2)
    for names in (("x\\model.pkl", "x/model.pkl"), ("./model.pkl", "model.pkl")):
        p = tmp_path / "copies.tar"
        p.write_bytes(_tar_bytes([(names[0], _evil_pickle()), (names[1], benign)]))
        if "\\" in names[0]:
            assert sorted(gnu_tar_names(p)) == sorted(names)  # the oracle: two files for tar -x
        report = artifact_tools.inspect(str(p))
        assert [f.path for f in report.files] == [names[1].removeprefix("./")]
        assert report.trust["verdict"] == "dangerous", report.trust
        assert any("earlier copy" in f for f in report.trust["findings"])


def test_every_copy_of_a_nested_zip_entry_is_audited(tmp_path):
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("model.pkl", _evil_pickle())
        z.writestr("model.pkl", pickle.dumps({"a": 1}, protocol=2))
    p = tmp_path / "nested.tar"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name"
        p.write_bytes(_tar_bytes([("model.joblib", _sk_model()), ("extra.zip", zb.getvalue())]))
    try:
        verdict = artifact_tools.inspect(str(p)).trust["verdict"]
    except CorruptArtifact as e:  # a reader of nested zips refuses the duplicate name outright
        assert "two entries named 'model.pkl'" in str(e)
    else:
        assert verdict == "dangerous"


def _sk_model() -> bytes:
    import joblib
    from sklearn.linear_model import LinearRegression

    buf = io.BytesIO()
    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), buf)
    return buf.getvalue()
