"""Links inside artifacts: a tar hard or symbolic link (or a zip symlink) to a regular member inside the artifact
is read and extracted as a copy of that member, as ``tar -x`` (and so SageMaker) would give it; every other link
is refused with one sentence naming the link and its target.

Archives are built here with Python's tarfile / zipfile or with GNU tar itself; the expected contents come from
GNU ``tar -x`` of the same archive (an independent reader), never from our own output.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import artifact_tools
from artifact_tools import Limits, open_artifact
from artifact_tools.archive import MAX_LINK_HOPS, open_nested
from artifact_tools.errors import UnsafeArtifact

GNU_TAR = shutil.which("tar")
needs_tar = pytest.mark.skipif(GNU_TAR is None, reason="GNU tar is not installed")

WEIGHTS = bytes(range(256)) * 300 + b"end"  # 76,803 bytes: more than one 64 KiB head
CONFIG = b'{"layers": 3}'


def _entry(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, target: str = "") -> tuple:
    return name, data, kind, target


def _reg(name: str, data: bytes) -> tuple:
    return _entry(name, data)


def _sym(name: str, target: str) -> tuple:
    return _entry(name, None, tarfile.SYMTYPE, target)


def _hard(name: str, target: str) -> tuple:
    return _entry(name, None, tarfile.LNKTYPE, target)


def _dir(name: str) -> tuple:
    return _entry(name, None, tarfile.DIRTYPE)


def _tar(path: Path, entries, mode: str = "w:gz") -> Path:
    """A tar written by Python's tarfile, one header per entry, in the order given."""
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tf:
        for name, data, kind, target in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = target
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return path


def _gnu_extract(archive: Path, dest: Path) -> dict[str, bytes]:
    """What GNU tar leaves on disk: every path that opens as a regular file (through links), with its bytes."""
    dest.mkdir()
    subprocess.run([GNU_TAR, "-xf", str(archive), "-C", str(dest)], check=True, capture_output=True)
    out = {}
    for p in sorted(dest.rglob("*")):
        if p.is_file():  # follows symbolic links, as a reader of the extracted folder does
            out[p.relative_to(dest).as_posix()] = p.read_bytes()
    return out


def _our_extract(archive: Path, dest: Path) -> dict[str, bytes]:
    with open_artifact(archive) as art:
        art.extract(dest)
    out = {}
    for p in sorted(dest.rglob("*")):
        assert not p.is_symlink(), f"{p} was extracted as a link"
        if p.is_file():
            assert p.stat().st_nlink == 1, f"{p} was extracted as a hard link"
            out[p.relative_to(dest).as_posix()] = p.read_bytes()
    return out


def _listing(archive: Path) -> dict[str, tuple[int, str | None]]:
    with open_artifact(archive) as art:
        return {m.name: (m.size, m.link) for m in art.members() if m.is_file}


def _scanned(archive: Path) -> dict[str, bytes]:
    """Every file's whole bytes as the scan keeps them (what sniffing and the audit read)."""
    with open_artifact(archive) as art:
        return art.scan(lambda m, head: m.size)


ALLOWED = {
    "hard link": [_reg("models/v3/model.bin", WEIGHTS), _hard("models/latest.bin", "models/v3/model.bin")],
    "hard link to a hard link": [_reg("a.bin", WEIGHTS), _hard("b.bin", "a.bin"), _hard("c.bin", "b.bin")],
    "symlink in its folder": [_reg("models/v3/model.bin", WEIGHTS), _sym("models/v3/current.bin", "model.bin")],
    "symlink from the root": [_reg("models/v3/model.bin", WEIGHTS), _sym("model.bin", "models/v3/model.bin")],
    "symlink with ..": [_reg("models/v3/model.bin", WEIGHTS), _dir("code"),
                        _sym("code/model.bin", "../models/./v3//model.bin")],
    "symlink before its target": [_sym("model.bin", "weights/model.bin"), _reg("weights/model.bin", WEIGHTS)],
    "chained symlinks": [_sym("a", "b"), _sym("b", "sub/c"), _reg("sub/c", WEIGHTS), _sym("sub/d", "../a")],
    "symlink to a hard link": [_reg("x/w.bin", WEIGHTS), _hard("y.bin", "x/w.bin"), _sym("z.bin", "y.bin")],
    "links sharing one target": [_reg("config.json", CONFIG), _reg("w.bin", WEIGHTS), _sym("l1", "w.bin"),
                                 _sym("l2", "w.bin"), _hard("l3", "w.bin"), _sym("c", "config.json")],
}


@needs_tar
@pytest.mark.parametrize("mode", ["w", "w:gz"])
@pytest.mark.parametrize("case", list(ALLOWED))
def test_links_inside_the_artifact_read_and_extract_like_gnu_tar(tmp_path, case, mode):
    archive = _tar(tmp_path / "model.tar.gz", ALLOWED[case], mode)
    expected = _gnu_extract(archive, tmp_path / "gnu")
    assert _our_extract(archive, tmp_path / "ours") == expected
    assert _scanned(archive) == expected
    listing = _listing(archive)
    assert {name: size for name, (size, _) in listing.items()} == {n: len(b) for n, b in expected.items()}
    links = {e[0] for e in ALLOWED[case] if e[2] in (tarfile.SYMTYPE, tarfile.LNKTYPE)}
    assert {name for name, (_, link) in listing.items() if link is not None} == links
    for name in links:  # each link names the regular member whose bytes it holds
        target = listing[name][1]
        assert listing[target][1] is None and expected[target] == expected[name]


@needs_tar
@pytest.mark.parametrize("compress", ["", "z"])
def test_archive_written_by_gnu_tar_with_links_and_a_sparse_target(tmp_path, compress):
    src = tmp_path / "src"
    (src / "models" / "v3").mkdir(parents=True)
    (src / "models" / "v3" / "model.bin").write_bytes(WEIGHTS)
    with open(src / "models" / "v3" / "sparse.bin", "wb") as f:  # a hole, data, a hole
        f.seek(3 << 20)
        f.write(b"middle")
        f.truncate(5 << 20)
    os.symlink("models/v3/model.bin", src / "model.bin")
    os.symlink("v3/sparse.bin", src / "models" / "sparse-latest.bin")
    os.link(src / "models" / "v3" / "model.bin", src / "models" / "hard.bin")
    archive = tmp_path / ("m.tar.gz" if compress else "m.tar")
    subprocess.run([GNU_TAR, f"-c{compress}Sf", str(archive), "-C", str(src), "."], check=True)
    expected = _gnu_extract(archive, tmp_path / "gnu")
    assert set(expected) == {"models/v3/model.bin", "models/v3/sparse.bin", "model.bin",
                             "models/sparse-latest.bin", "models/hard.bin"}
    assert _our_extract(archive, tmp_path / "ours") == expected
    assert _scanned(archive) == expected


def test_the_wild_fixture_inspects_with_its_links(tmp_path):
    """The listing shows each link with its target's kind; the report is the one the unlinked files give."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    buf = io.BytesIO()
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), buf)
    archive = _tar(tmp_path / "m.tar.gz", [_reg("models/v3/model.joblib", buf.getvalue()),
                                           _sym("model.joblib", "models/v3/model.joblib"),
                                           _hard("models/latest.joblib", "models/v3/model.joblib")])
    report = artifact_tools.inspect(archive)
    kinds = {f.path: (f.kind, f.size) for f in report.files}
    assert kinds["model.joblib"] == kinds["models/latest.joblib"] == kinds["models/v3/model.joblib"]
    assert kinds["model.joblib"][1] == len(buf.getvalue())
    assert report.framework == "sklearn"


def _dangerous_pickle() -> bytes:
    class Payload:
        def __reduce__(self):
            return os.system, ("echo never-run",)

    return pickle.dumps(Payload(), protocol=2)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_pickle_behind_a_link_is_audited_under_the_link_name(tmp_path, mode, kind):
    data = _dangerous_pickle()
    assert b"system" in data
    link = _sym("model.joblib", "blobs/7f3a") if kind == "symlink" else _hard("model.joblib", "blobs/7f3a")
    archive = _tar(tmp_path / "m.tar.gz", [_reg("blobs/7f3a", data), link], mode)
    report = artifact_tools.inspect(archive)
    assert report.trust["verdict"] == "dangerous"
    verdicts = {m["path"]: m["verdict"] for m in report.trust["members"]}
    assert verdicts.get("model.joblib") == "dangerous", report.trust
    assert any("model.joblib" in f for f in report.trust["findings"])


REFUSED = {
    "absolute": ([_reg("a.bin", WEIGHTS), _sym("evil", "/etc/passwd")], "evil", "/etc/passwd", "absolute"),
    "outside": ([_reg("a.bin", WEIGHTS), _sym("sub/evil", "../../etc/passwd")], "sub/evil", "../../etc/passwd",
                "outside"),
    "outside and back": ([_reg("a.bin", WEIGHTS), _sym("evil", "../x/a.bin")], "evil", "../x/a.bin", "outside"),
    "to a folder": ([_reg("models/a.bin", WEIGHTS), _sym("evil", "models")], "evil", "models", "folder"),
    "to a folder entry": ([_dir("empty"), _sym("evil", "./empty/")], "evil", "./empty/", "folder"),
    "to the root": ([_reg("a.bin", WEIGHTS), _sym("evil", ".")], "evil", ".", "folder"),
    "missing": ([_reg("a.bin", WEIGHTS), _sym("evil", "b.bin")], "evil", "b.bin", "no member"),
    "a file used as a folder": ([_reg("a.bin", WEIGHTS), _sym("evil", "a.bin/x")], "evil", "a.bin/x",
                                "no member"),
    "cycle": ([_reg("a.bin", WEIGHTS), _sym("x", "y"), _sym("y", "x")], "x", "y", "cycle"),
    "self": ([_reg("a.bin", WEIGHTS), _sym("x", "x")], "x", "x", "cycle"),
    "chain into a missing member": ([_sym("x", "y"), _sym("y", "z"), _reg("a.bin", WEIGHTS)], "x", "y",
                                    "no member"),
    "long chain": ([_reg("f", WEIGHTS), *[_sym(f"l{i}", f"l{i + 1}") for i in range(MAX_LINK_HOPS)],
                    _sym(f"l{MAX_LINK_HOPS}", "f")], "l0", "l1", f"more than {MAX_LINK_HOPS} links"),
    "hard link to a later member": ([_hard("h", "a.bin"), _reg("a.bin", WEIGHTS)], "h", "a.bin", "earlier"),
    "hard link to a missing member": ([_reg("a.bin", WEIGHTS), _hard("h", "b.bin")], "h", "b.bin", "earlier"),
    "hard link to a folder": ([_dir("d"), _reg("d/a.bin", WEIGHTS), _hard("h", "d")], "h", "d", "earlier"),
    "hard link to a symlink": ([_reg("a.bin", WEIGHTS), _sym("s", "a.bin"), _hard("h", "s")], "h", "s", "earlier"),
    "hard link outside": ([_reg("a.bin", WEIGHTS), _hard("h", "../a.bin")], "h", "../a.bin", "outside"),
    "hard link absolute": ([_reg("a.bin", WEIGHTS), _hard("h", "/etc/passwd")], "h", "/etc/passwd", "absolute"),
}


@pytest.mark.parametrize("mode", ["w", "w:gz"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_links_that_leave_the_artifact_or_lead_nowhere_are_refused(tmp_path, case, mode):
    entries, link, target, why = REFUSED[case]
    archive = _tar(tmp_path / "evil.tar.gz", entries, mode)
    before = set(os.listdir(tmp_path))
    for action in ("members", "extract", "inspect"):
        with open_artifact(archive) as art:
            with pytest.raises(UnsafeArtifact) as e:
                if action == "members":
                    art.members()
                elif action == "extract":
                    art.extract(tmp_path / "out")
                else:
                    artifact_tools.inspect(art)
        message = str(e.value)
        assert f"{link!r} -> {target!r}" in message and why in message, message
        assert "\n" not in message and len(message) < 300
    assert set(os.listdir(tmp_path)) == before  # a refused extraction leaves nothing behind


def test_a_link_target_longer_than_a_path_is_refused(tmp_path):
    archive = _tar(tmp_path / "evil.tar", [_reg("a.bin", b"x"), _sym("evil", "d/" * 2100 + "a.bin")], "w")
    with pytest.raises(UnsafeArtifact, match="longer than 4096 bytes") as e:
        open_artifact(archive).members()
    assert len(str(e.value)) < 300


# ------------------------------------------------------------------------------------------ budgets

def _link_bomb(path: Path, links: int, size: int = 4 << 20) -> Path:
    """One member of zeros and ``links`` hard links to it: a few KiB of gzip that tar -x expands to
    ``links * size`` bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("zeros.bin")
        ti.size = size
        tf.addfile(ti, io.BytesIO(bytes(size)))
        for i in range(links):
            h = tarfile.TarInfo(f"l/{i}")
            h.type = tarfile.LNKTYPE
            h.linkname = "zeros.bin"
            tf.addfile(h)
    path.write_bytes(gzip.compress(raw.getvalue(), 9, mtime=0))
    return path


def test_many_links_to_one_member_hit_the_ratio_cap_before_anything_is_written(tmp_path):
    bomb = _link_bomb(tmp_path / "bomb.tar.gz", 5000)  # 20 GiB from ~100 KiB
    assert bomb.stat().st_size < 1 << 20
    for action in ("members", "extract"):
        with open_artifact(bomb) as art:
            with pytest.raises(UnsafeArtifact, match="decompression bomb"):
                art.members() if action == "members" else art.extract(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_link_bytes_count_against_the_byte_cap(tmp_path):
    bomb = _link_bomb(tmp_path / "bomb.tar.gz", 40, size=1 << 20)  # 41 MiB once the links are copies
    lim = Limits(max_ratio=0, max_total_bytes=32 << 20)  # the member alone fits, with its links it does not
    with open_artifact(bomb, lim) as art:
        with pytest.raises(UnsafeArtifact, match="holds more than"):
            art.extract(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    symlinks = [_reg("w.bin", bytes(1 << 20)), *[_sym(f"s{i}", "w.bin") for i in range(40)]]
    for mode in ("w", "w:gz"):  # symbolic links are counted when they are resolved, before any is read
        archive = _tar(tmp_path / f"sym{mode[2:]}.tar", symlinks, mode)
        with open_artifact(archive, lim) as art:
            with pytest.raises(UnsafeArtifact, match="holds more than"):
                art.members()
    with open_artifact(bomb, Limits(max_ratio=0, max_total_bytes=64 << 20)) as art:  # within the cap: copies
        out = art.extract(tmp_path / "fits")
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) == 41 << 20


def test_links_count_as_entries(tmp_path):
    bomb = _link_bomb(tmp_path / "bomb.tar.gz", 50, size=10)
    with pytest.raises(UnsafeArtifact, match="more than 20 entries"):
        open_artifact(bomb, Limits(max_members=20)).members()


# ------------------------------------------------------------------------------------------ zip

def _zip(path_or_buf, files: dict[str, bytes], links: dict[str, str]):
    with zipfile.ZipFile(path_or_buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in links.items():  # Info-ZIP's way: Unix mode S_IFLNK, the target as the entry's data
            zi = zipfile.ZipInfo(name)
            zi.create_system = 3
            zi.external_attr = 0o120777 << 16
            zf.writestr(zi, target)
    return path_or_buf


def test_zip_symlinks_inside_the_artifact_read_and_extract_as_copies(tmp_path):
    archive = _zip(tmp_path / "m.zip", {"models/v3/model.bin": WEIGHTS, "config.json": CONFIG},
                   {"model.bin": "models/v3/model.bin", "models/cfg.json": "../config.json"})
    if shutil.which("unzip"):  # Info-ZIP restores these as symbolic links: the oracle
        dest = tmp_path / "unzip"
        subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], check=True)
        assert os.readlink(dest / "model.bin") == "models/v3/model.bin"
        expected = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    else:
        expected = {"models/v3/model.bin": WEIGHTS, "config.json": CONFIG, "model.bin": WEIGHTS,
                    "models/cfg.json": CONFIG}
    assert _our_extract(archive, tmp_path / "ours") == expected
    assert _scanned(archive) == expected
    assert _listing(archive)["model.bin"] == (len(WEIGHTS), "models/v3/model.bin")


@pytest.mark.parametrize("target,why", [("/etc/passwd", "absolute"), ("../x", "outside"), ("nope", "no member"),
                                        ("models", "folder")])
def test_zip_symlinks_elsewhere_are_refused(tmp_path, target, why):
    archive = _zip(tmp_path / "evil.zip", {"models/a.bin": b"x"}, {"link": target})
    with pytest.raises(UnsafeArtifact, match=why) as e:
        open_artifact(archive).extract(tmp_path / "out")
    assert f"'link' -> {target!r}" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_nested_zip_links_follow_the_same_rule():
    inner = _zip(io.BytesIO(), {"model.params": WEIGHTS}, {"latest.params": "model.params"}).getvalue()
    files = dict((m.name, body) for m, body in open_nested(inner, "model_algo-1", Limits()))
    assert files == {"model.params": WEIGHTS, "latest.params": WEIGHTS}
    evil = _zip(io.BytesIO(), {"model.params": WEIGHTS}, {"latest.params": "../../x"}).getvalue()
    with pytest.raises(UnsafeArtifact, match="outside"):
        open_nested(evil, "model_algo-1", Limits())
