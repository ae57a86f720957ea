"""Bounded work on hostile archives, and the extraction cache's size cap.

Every bomb is built from code (scripts/make_archive_bombs.py, a few KiB each) and opened in a fresh interpreter
under an address-space limit (RLIMIT_AS) and a time limit, with TMPDIR and the cache pointed into the test's
folder: inspection, loading and extraction must each end with one ArtifactError sentence (or, for extraction of
an archive whose only hazard is a nested zip, a bounded success), and nothing may be left behind.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

import artifact_tools
from artifact_tools import Limits, open_artifact
from artifact_tools.archive import nested_entries, open_nested
from artifact_tools.errors import ArtifactError, CorruptArtifact, UnsafeArtifact
from artifact_tools.filetree import ZipTree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_archive_bombs as bombs  # noqa: E402

MiB = 1 << 20
MEMORY_LIMIT = 1 << 30  # address space of the child interpreter: it imports no ML framework
TIME_LIMIT = 60  # seconds before the child is killed; every bomb must be refused well within it
REFUSE_WITHIN = 20  # seconds

# What each bomb's refusal must say (a regular expression); None: extraction may succeed (see NESTED).
EXPECTED = {
    "nested-zip-in-tar.tar.gz": r"expands more than 250:1",
    "nested-zip-in-plain-tar.tar": r"model_algo-1 expands more than 250:1",
    "nested-bzip2-zip-in-tar.tar.gz": r"expands more than 250:1",
    "zip-in-zip.zip": r"expands more than 250:1",
    "zip-in-zip-in-zip.zip": r"expands more than 250:1",
    "nested-overlap-in-tar.tar.gz": r"overlaps another entry",
    "nested-full-overlap-in-tar.tar.gz": r"overlaps another entry",
    "long-name-gnu.tar.gz": r"GNU long-name record of 7340033 bytes",
    "long-link-gnu.tar.gz": r"GNU long-link record of 7340033 bytes",
    "long-deep-name-gnu.tar.gz": r"GNU long-name record of 734003\d bytes",
    "long-deep-name-pax-under-cap.tar.gz": r"name longer than 4096 bytes",
    "long-name-pax.tar.gz": r"pax header of \d+ bytes",
    "long-name-pax-under-cap.tar.gz": r"name longer than 4096 bytes",
    "long-name-chain.tar.gz": r"header records take more than|tar readers disagree on which one names it",
    "pax-global-chain.tar.gz": r"too many chained header records",
    "many-long-names.tar.gz": r"entry names of .* take more than",
    "long-name.zip": r"name longer than 4096 bytes",
    "sparse-old-gnu.tar.gz": r"expands more than 250:1",
    "sparse-old-gnu-extended.tar.gz": r"expands more than 250:1",
    "sparse-old-gnu-huge-map.tar.gz": r"header records take more than",
    "sparse-pax-0.0.tar.gz": r"expands more than 250:1",
    "sparse-pax-0.1.tar.gz": r"expands more than 250:1",
    "sparse-pax-1.0.tar.gz": r"expands more than 250:1",
    "sparse-pax-1.0-long-map.tar.gz": r"header records take more than",
    "sparse-old-gnu.tar.xz": r"expands more than 250:1",
    "small-entries-deflate.zip": r"expands more than 250:1",
    "small-entries-bzip2.zip": r"expands more than 250:1",
    "small-entries-lzma.zip": r"expands more than 250:1",
    "lying-size.zip": r"more than the 1000 bytes its header declares",
    "overlap-full.zip": r"overlaps another entry",
    "overlap-quoted.zip": r"overlaps another entry",
    "overlap-partial.zip": r"overlaps another entry",
    "overlap-local-extra.zip": r"overlaps another entry",
    "overlap-central-directory.zip": r"overlaps another entry",
}
# The hazard of these is one level down: extracting the outer archive only writes the nested zip as a file.
NESTED = {"nested-zip-in-tar.tar.gz", "nested-zip-in-plain-tar.tar", "nested-bzip2-zip-in-tar.tar.gz",
          "zip-in-zip.zip", "zip-in-zip-in-zip.zip", "nested-overlap-in-tar.tar.gz",
          "nested-full-overlap-in-tar.tar.gz"}

CHILD = r"""
import json, resource, sys
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from artifact_tools.errors import ArtifactError
import artifact_tools, loaders
from artifact_tools import open_artifact
from loaders.cache import materialize

path, results = sys.argv[1], {}

def extract():
    with open_artifact(path) as art:
        out = art.extract()
        return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

ops = {"inspect": lambda: artifact_tools.inspect(path), "load": lambda: loaders.load(path), "extract": extract,
       "materialize": lambda: materialize(open_artifact(path))}
for op in sys.argv[2].split(","):
    try:
        value = ops[op]()
        results[op] = {"ok": value if isinstance(value, int) else str(value)}
    except ArtifactError as e:
        results[op] = {"error": type(e).__name__, "message": str(e)}
    except MemoryError:
        results[op] = {"crash": "MemoryError"}
    except BaseException as e:
        results[op] = {"crash": f"{type(e).__name__}: {str(e)[:300]}"}
print(json.dumps(results))
"""


def run_bounded(path: Path, ops: str, work: Path, env: dict | None = None) -> tuple[dict, float]:
    """Run ``ops`` on ``path`` in a fresh interpreter under the memory and time limits; TMPDIR and the cache
    live under ``work``. Returns the per-operation outcomes and the elapsed time."""
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "TMPDIR": str(work / "tmp"), "ARTIFACT_TOOLS_CACHE": str(work / "cache"),
                "PYTHONPATH": str(ROOT), **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), ops, str(MEMORY_LIMIT)], env=full_env,
                          capture_output=True, text=True, timeout=TIME_LIMIT)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), elapsed


def leftovers(work: Path) -> list[str]:
    """Files or folders left under the temp dir and the cache (the cache root and its lock folder excepted)."""
    out = [str(p.relative_to(work)) for p in (work / "tmp").rglob("*")]
    cache = work / "cache"
    if cache.exists():
        out += [str(p.relative_to(work)) for p in cache.rglob("*") if p != cache / ".locks"]
    return out


def assert_one_sentence(message: str) -> None:
    assert len(message) < 300, message
    assert "\n" not in message and "Traceback" not in message


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bombs")
    for name, build in bombs.BOMBS.items():
        (folder / name).write_bytes(build())
    return folder


def test_every_bomb_is_small_and_listed():
    assert set(EXPECTED) == set(bombs.BOMBS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bomb_is_refused_quickly_in_bounded_memory(bomb_dir, tmp_path, name):
    path = bomb_dir / name
    assert path.stat().st_size < 4 * MiB
    results, elapsed = run_bounded(path, "inspect,load,extract,materialize", tmp_path)
    assert elapsed < REFUSE_WITHIN, f"{name} took {elapsed:.1f}s"
    for op in ("inspect", "load"):
        r = results[op]
        assert "error" in r, f"{op} of {name}: {r}"
        assert_one_sentence(r["message"])
        assert re.search(EXPECTED[name], r["message"]), r["message"]
    for op in ("extract", "materialize"):
        r = results[op]
        assert "crash" not in r, f"{op} of {name}: {r}"
        if name in NESTED:
            continue  # the outer archive is harmless: it holds the nested zip as one file
        assert "error" in r, f"{op} of {name}: {r}"
        assert_one_sentence(r["message"])
    left = leftovers(tmp_path)
    if name in NESTED and "ok" in results["materialize"]:  # the harmless outer archive was published, once
        entry = Path(results["materialize"]["ok"])
        assert entry.parent == tmp_path / "cache" and len(entry.name) == 64
        left = [p for p in left if not (tmp_path / p).is_relative_to(entry)
                and p not in ("cache/index.json", f"cache/.locks/{entry.name}.lock")]
    assert left == [], left


# ------------------------------------------------------------------------------------------ zip entries

def test_small_entries_are_counted_together_and_max_ratio_zero_disables(tmp_path):
    p = tmp_path / "three.zip"
    p.write_bytes(bombs.zip_of_zeros(3))  # 48 MiB from ~50 KB: each entry alone stays under the 16 MiB floor
    with pytest.raises(UnsafeArtifact, match="expands more than 250:1"):
        open_artifact(p).members()
    with open_artifact(p, Limits(max_ratio=0)) as art:
        assert [m.size for m in art.members()] == [bombs.UNDER_FLOOR] * 3
    with open_artifact(p, Limits(max_ratio=5000)) as art:  # a raised limit is honoured too
        assert len(art.members()) == 3


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_methods_read_back_exactly(tmp_path, method):
    """Written by the standard library's zipfile, read by our own bounded reader."""
    rng = random.Random(method)
    members = {f"m{i}.bin": rng.randbytes(n) + b"\0" * n
               for i, n in enumerate([0, 1, 5000, 300_000])}
    p = tmp_path / "m.zip"
    with zipfile.ZipFile(p, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with open_artifact(p) as art:
        assert art.scan(lambda m, head: m.size) == {n: d for n, d in members.items() if d}  # empty: nothing kept
        assert {m.name: m.size for m in art.members()} == {n: len(d) for n, d in members.items()}
        out = art.extract()
        assert {f.name: f.read_bytes() for f in out.iterdir()} == members
    tree = ZipTree(p.read_bytes(), "m.zip")
    assert tree.read("m3.bin") == members["m3.bin"] and tree.read_head("m3.bin", 10) == members["m3.bin"][:10]


def test_damaged_zip_entry_is_corrupt(tmp_path):
    data = bytearray(bombs.deflated_zip({"a.bin": os.urandom(2000) * 3}))
    data[60] ^= 0xFF  # inside the deflate data
    p = tmp_path / "bad.zip"
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact, match="a.bin is damaged"):
        open_artifact(p).members()


def test_zip_entry_count_is_capped_before_parsing(tmp_path):
    p = tmp_path / "many.zip"
    p.write_bytes(bombs.stored_zip({f"f{i}": b"" for i in range(50)}))
    with pytest.raises(UnsafeArtifact, match="more than 20 entries"):
        open_artifact(p, Limits(max_members=20)).members()


# ------------------------------------------------------------------------------------------ nested archives

def test_nested_levels_share_the_outer_budget(tmp_path):
    """Each level is harmless on its own; only all levels' bytes against the outer file's size give it away."""
    inner = bombs.stored_zip({f"zeros{i}.bin": bytes(MiB) for i in range(15)})  # 15 MiB, stored: ratio 1
    outer = bombs.deflated_zip({"model_algo-1": inner})  # ~15 KB; 15 MiB out is still under the 16 MiB floor
    assert len(outer) < 64 << 10
    (tmp_path / "inner.zip").write_bytes(inner)
    artifact_tools.inspect(tmp_path / "inner.zip")
    assert len(open_nested(inner, "model_algo-1", Limits())) == 15  # opened on its own: fine
    (tmp_path / "outer.zip").write_bytes(outer)
    with pytest.raises(UnsafeArtifact, match="outer.zip expands more than 250:1"):
        artifact_tools.inspect(tmp_path / "outer.zip")


def test_open_nested_holds_a_bounded_amount(tmp_path):
    blobs = {f"part{i}": os.urandom(MiB) for i in range(3)}
    data = bombs.deflated_zip(blobs)
    with pytest.raises(UnsafeArtifact, match="nested-archive limit of 1500000 bytes"):
        open_nested(data, "model_algo-1", Limits(max_nested_bytes=1_500_000))
    asked = []

    def keep(member, head):
        asked.append((member.name, head))
        return 1000 if member.name != "part1" else 70_000

    heads = open_nested(data, "model_algo-1", Limits(max_nested_bytes=1_500_000), keep=keep)
    assert asked == [(n, b[:64 << 10]) for n, b in blobs.items()]
    assert [(m.name, m.size, body) for m, body in heads] == [
        ("part0", MiB, blobs["part0"][:1000]), ("part1", MiB, blobs["part1"][:70_000]),
        ("part2", MiB, blobs["part2"][:1000])]
    whole = open_nested(data, "model_algo-1", Limits())
    assert {m.name: body for m, body in whole} == blobs


def test_nested_entries_stream_into_extraction(tmp_path):
    from artifact_tools.archive import extract_entries

    blobs = {"a/x.bin": os.urandom(300_000), "b.json": b"{}"}
    out = tmp_path / "out"
    out.mkdir()
    extract_entries(nested_entries(bombs.deflated_zip(blobs), "inner.zip", Limits()), out, Limits(), "inner.zip")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == blobs


def test_nested_zip_with_a_link_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zi = zipfile.ZipInfo("link")
        zi.external_attr = 0o120777 << 16
        zf.writestr(zi, "/etc/passwd")
    with pytest.raises(UnsafeArtifact, match="symlink"):
        open_nested(buf.getvalue(), "model_algo-1", Limits())


# ------------------------------------------------------------------------------------------ tar headers

def test_long_names_are_refused_with_a_short_sentence(tmp_path):
    p = tmp_path / "long.tar"
    p.write_bytes(bombs.long_name_gnu(5000))  # a GNU 'L' record under its cap, a name over PATH_MAX
    with pytest.raises(UnsafeArtifact, match="longer than 4096 bytes") as e:
        open_artifact(p).members()
    assert_one_sentence(str(e.value))
    ti = tarfile.TarInfo("s" * 4000)  # a name under the cap on a symlink: the refusal quotes it shortened
    ti.type = tarfile.SYMTYPE
    ti.linkname = "/etc/passwd"
    p2 = tmp_path / "link.tar"
    with tarfile.open(p2, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(ti)
    with pytest.raises(UnsafeArtifact, match="symlink") as e:
        open_artifact(p2).members()
    assert_one_sentence(str(e.value))


def test_ordinary_long_names_still_work(tmp_path):
    names = {"d" * 200 + "/model.json": b"{}", "x/" + "e" * 250: b"1"}  # GNU 'L' and pax records, both legal
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        p = tmp_path / f"ok{fmt}.tar.gz"
        with tarfile.open(p, "w:gz", format=fmt) as tf:
            for n, d in names.items():
                ti = tarfile.TarInfo(n)
                ti.size = len(d)
                tf.addfile(ti, io.BytesIO(d))
        with open_artifact(p) as art:
            assert art.scan(lambda m, h: m.size) == names


def test_legitimate_sparse_member_is_expanded_and_counted(tmp_path):
    """A small old-GNU sparse file: the stdlib's tarfile (an independent reader) and ours agree byte for byte."""
    data = os.urandom(512)
    real = 3 * MiB
    fields = {386: bombs._num(MiB, 12) + bombs._num(512, 12), 483: bombs._num(real, 12)}
    raw = bombs.tar_header(b"weights.bin", 512, b"S", gnu=True, fields=fields) + data + bombs.end_of_tar()
    p = tmp_path / "sparse.tar"
    p.write_bytes(raw)
    with tarfile.open(p) as tf:
        expected = tf.extractfile("weights.bin").read()
    assert len(expected) == real and expected[MiB:MiB + 512] == data
    with open_artifact(p) as art:
        assert art.scan(lambda m, h: m.size) == {"weights.bin": expected}
        assert (art.extract() / "weights.bin").read_bytes() == expected
    with pytest.raises(UnsafeArtifact, match="expands more than 250:1"):  # 3 MiB from 2.5 KB, floor lowered
        open_artifact(p, Limits(ratio_floor=MiB)).members()


def test_inconsistent_sparse_map_is_corrupt(tmp_path):
    fields = {386: bombs._num(4096, 12) + bombs._num(512, 12) + bombs._num(0, 12) + bombs._num(512, 12),
              483: bombs._num(8192, 12)}
    p = tmp_path / "bad-sparse.tar"
    p.write_bytes(bombs.tar_header(b"w.bin", 1024, b"S", gnu=True, fields=fields) + bytes(1024) + bombs.end_of_tar())
    with pytest.raises(CorruptArtifact, match="sparse map of w.bin is inconsistent"):
        open_artifact(p).members()


# ------------------------------------------------------------------------------------------ limits

def test_limits_are_validated():
    with pytest.raises(ArtifactError, match="max_ratio limit must be a number of 0 or more"):
        Limits(max_ratio=-1)
    with pytest.raises(ArtifactError, match="max_ratio limit"):
        Limits(max_ratio=float("nan"))


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("ARTIFACT_TOOLS_MAX_RATIO", "0")
    assert Limits.from_env().max_ratio == 0
    monkeypatch.setenv("ARTIFACT_TOOLS_MAX_RATIO", "lots")
    with pytest.raises(ArtifactError, match="ARTIFACT_TOOLS_MAX_RATIO must be a number"):
        Limits.from_env()


# ------------------------------------------------------------------------------------------ failed extraction

def _tar_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("entries, message", [
    ([("big.bin", os.urandom(2 * MiB)), ("model.pth", b"first"), ("model.pth", b"other")], "two different files"),
    ([("big.bin", os.urandom(2 * MiB)), ("a/" + "n" * 300, b"x")], "cannot extract"),  # a name over NAME_MAX
])
def test_failed_extraction_leaves_nothing(tmp_path, entries, message):
    p = tmp_path / "bad.tar.gz"
    p.write_bytes(_tar_bytes(entries))
    results, _ = run_bounded(p, "extract,materialize", tmp_path / "work")
    for op in ("extract", "materialize"):
        assert "error" in results[op] and message in results[op]["message"], results[op]
        assert_one_sentence(results[op]["message"])
    assert leftovers(tmp_path / "work") == []


# ------------------------------------------------------------------------------------------ the cache cap

MATERIALIZE = r"""
import sys
from artifact_tools import open_artifact
from loaders.cache import materialize
for p in sys.argv[1:]:
    print(materialize(open_artifact(p)))
"""


def _materialize(paths, cache: Path, cap: int | str, wait: bool = False):
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(cache), "ARTIFACT_TOOLS_CACHE_MAX_BYTES": str(cap),
           "PYTHONPATH": str(ROOT)}
    code = MATERIALIZE + ("\nsys.stdout.flush()\nsys.stdin.read()\n" if wait else "")
    if wait:
        return subprocess.Popen([sys.executable, "-c", code, *map(str, paths)], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, paths)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [Path(line) for line in proc.stdout.split()]


@pytest.fixture
def small_artifacts(tmp_path):
    """Four real model.tar.gz files of ~300 KB each (a random payload, so they do not compress)."""
    out = {}
    for name in "abcd":
        payload = {"model.json": json.dumps({"name": name}).encode(), "weights.bin": os.urandom(300_000)}
        p = tmp_path / f"{name}.tar.gz"
        p.write_bytes(bombs.gz(bombs.tar_of(payload)))
        out[name] = (p, payload)
    return out


def _published(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_cache_evicts_least_recently_used(tmp_path, small_artifacts):
    cache = tmp_path / "cache"
    a, b, c = (small_artifacts[k][0] for k in "abc")
    [pa] = _materialize([a], cache, 700_000)
    time.sleep(0.05)
    [pb] = _materialize([b], cache, 700_000)
    time.sleep(0.05)
    assert _materialize([a], cache, 700_000) == [pa]  # a used again: b is now the least recently used
    time.sleep(0.05)
    [pc] = _materialize([c], cache, 700_000)
    assert _published(cache) == {pa.name, pc.name}
    assert not pb.exists()
    for p, (_, payload) in ((pa, small_artifacts["a"]), (pc, small_artifacts["c"])):
        assert {f.name: f.read_bytes() for f in p.iterdir()} == payload
    assert [p.name for p in cache.iterdir() if p.name.startswith((".tmp-", ".trash-", ".private-"))] == []
    assert _materialize([b], cache, 700_000)[0].name == pb.name  # re-extracted on demand


def test_cache_never_evicts_an_entry_in_use(tmp_path, small_artifacts):
    cache = tmp_path / "cache"
    a, b, c = (small_artifacts[k][0] for k in "abc")
    holder = _materialize([a], cache, 400_000, wait=True)  # keeps running: a is in use
    try:
        pa = Path(holder.stdout.readline().strip())
        [pb] = _materialize([b], cache, 400_000)  # over the cap, but a may not go
        assert pa.is_dir() and pb.is_dir()
    finally:
        holder.communicate("", timeout=60)
    [pc] = _materialize([c], cache, 400_000)  # a's holder exited; a and b are evicted, oldest first
    assert _published(cache) == {pc.name}


def test_entry_larger_than_the_cap_is_private_and_removed_at_exit(tmp_path, small_artifacts):
    cache = tmp_path / "cache"
    a, payload = small_artifacts["a"]
    holder = _materialize([a], cache, "100K", wait=True)
    try:
        private = Path(holder.stdout.readline().strip())
        assert private.name.startswith(".private-") and private.parent == cache
        assert {f.name: f.read_bytes() for f in private.iterdir()} == payload
        assert _published(cache) == set()
    finally:
        holder.communicate("", timeout=60)
    assert not private.exists()
    assert [p for p in cache.rglob("*") if p.is_file() or p.name.startswith(".private-")] == []


def test_killed_publish_is_swept(tmp_path, small_artifacts):
    cache = tmp_path / "cache"
    code = ("import os\nfrom pathlib import Path\nfrom loaders.cache import publish_folder, cache_dir\n"
            "def fill(out):\n    out.mkdir()\n    (out / 'half.bin').write_bytes(b'x' * 1000)\n    os._exit(9)\n"
            "publish_folder(cache_dir() / ('0' * 64), fill)\n")
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 9
    [left] = [p for p in cache.iterdir() if p.name.startswith(".tmp-")]  # what a killed process leaves
    assert (cache / ".locks" / ("0" * 64 + ".lock")).exists()
    _materialize([small_artifacts["a"][0]], cache, "20G")
    assert not left.exists() and not (cache / ".locks" / ("0" * 64 + ".lock")).exists()
    assert "0" * 64 not in _published(cache)


def test_cache_cap_must_be_a_size(tmp_path, small_artifacts):
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path / "cache"), "ARTIFACT_TOOLS_CACHE_MAX_BYTES": "big",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", MATERIALIZE, str(small_artifacts["a"][0])], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "ARTIFACT_TOOLS_CACHE_MAX_BYTES must be a number of bytes" in proc.stderr


def test_reuse_changes_nothing_but_the_lock_access_time(tmp_path, small_artifacts):
    cache = tmp_path / "cache"
    a = small_artifacts["a"][0]
    [pa] = _materialize([a], cache, "20G")
    snap = {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*")}
    lock = next((cache / ".locks").iterdir())
    before = lock.stat().st_atime_ns
    time.sleep(0.05)
    assert _materialize([a], cache, "20G") == [pa]
    assert {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*")} == snap
    assert lock.stat().st_atime_ns > before


def test_crc_of_zeros_helper_matches_zlib():
    """The fixture builder computes CRCs of gigabytes of zeros without writing them; check it on small sizes."""
    for n in (0, 1, 1000, MiB, MiB + 3, 5 * MiB + 17):
        assert bombs.crc32_zeros(n) == zlib.crc32(bytes(n))
