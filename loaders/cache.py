"""The extraction cache: each artifact is unpacked once, keyed by the SHA-256 of its bytes, within a size cap.

Layout of ``$ARTIFACT_TOOLS_CACHE`` (default ``~/.cache/artifact-tools/extracted``):

- ``<sha256>/``: one folder per artifact. It appears atomically: it is filled in a ``.tmp-*`` folder of the cache
  root and renamed into place, so a killed or failed extraction leaves nothing under a hash name, and its
  ``.tmp-*`` folder is removed (at once on failure; by the next publish when the process was killed).
- ``unzipped/<sha256>/``: nested zips of plain folders (:mod:`loaders.mxnet`), published the same way.
- ``.locks/``: one lock file per entry; ``index.json``: (path, size, mtime, inode) -> hash, so a second ``load``
  of an unchanged local file does not even re-read it.

Nothing from an artifact is written anywhere else. Plain local folders are used in place (after the same safety
checks), never copied.

Size cap and eviction. Published entries may take ``ARTIFACT_TOOLS_CACHE_MAX_BYTES`` bytes in all (default
20 GiB; a ``K``/``M``/``G``/``T`` suffix means KiB...TiB; the ``max_bytes`` argument overrides it). Before a new
entry is renamed into place, the least recently used entries are removed until it fits; using an entry (finding
it in :func:`materialize` or :func:`publish_folder`) sets the access time of its lock file (nothing else in the
cache changes when an entry is reused).

An entry is in use while a process holds a shared ``flock`` on its lock file: it is taken before the entry is
looked up or published and kept until the process exits (a server keeps reading its model files). Eviction takes
the exclusive lock without waiting, so it skips every entry another process (or this one) is publishing or using,
then renames the entry away before deleting it. The cap is therefore a target: entries in use are kept even when
together they exceed it.

An artifact whose extracted files alone exceed the cap is not cached: its extraction is moved to a private
``.private-*`` folder of the cache root, used by this process only and removed when it exits (or by the next
publish, when it was killed).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

from artifact_tools.archive import Artifact
from artifact_tools.errors import ArtifactError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, eviction by age only
    fcntl = None

DEFAULT_MAX_BYTES = 20 << 30
STALE_FOREIGN_SECONDS = 24 * 3600  # leftovers of another host's process are removed after a day

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_LEFTOVER = re.compile(r"^\.(tmp|trash|private)-(\d+)-([0-9a-f]{8})-")
_OLD_TMP = re.compile(r"^\.tmp-[a-z0-9_]{8}$")  # publish folders of earlier versions (tempfile.mkdtemp names)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PINS: dict[str, int] = {}  # lock file -> descriptor holding its shared lock for the life of this process
_PRIVATE: list[Path] = []


def cache_dir() -> Path:
    return Path(os.environ.get("ARTIFACT_TOOLS_CACHE", Path.home() / ".cache" / "artifact-tools" / "extracted"))


def cache_max_bytes() -> int:
    """The cache cap: ``ARTIFACT_TOOLS_CACHE_MAX_BYTES`` (bytes, or with a K/M/G/T suffix), else 20 GiB."""
    text = os.environ.get("ARTIFACT_TOOLS_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if not m:
        raise ArtifactError(f"ARTIFACT_TOOLS_CACHE_MAX_BYTES must be a number of bytes such as 20G, not {text[:40]!r}")
    return int(float(m.group(1)) * (1 << (10 * " KMGT".index(m.group(2).upper() or " "))))


def _tag() -> str:
    return f"{os.getpid()}-{_HOST}"


# ------------------------------------------------------------------------------------------ index

def _quick_key(art: Artifact) -> str | None:
    if art.src.fs is not None or art.container == "directory":
        return None
    st = os.stat(art.src.path)
    return f"{os.path.realpath(art.src.path)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _index_path() -> Path:
    return cache_dir() / "index.json"


def _read_index() -> dict:
    try:
        return json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return {}


def _remember(key: str, digest: str) -> None:
    index = _read_index()
    index[key] = digest
    if len(index) > 2000:  # keep the index small: drop the oldest half
        index = dict(list(index.items())[-1000:])
    tmp = _index_path().with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(index))
        os.replace(tmp, _index_path())
    except OSError:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ locks

def _entry_key(root: Path, path: Path) -> str | None:
    """The cache entry ``path`` is (or lies in): ``<sha>`` or ``unzipped/<sha>``; None outside the cache."""
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    if not parts or parts[0].startswith("."):
        return None
    if parts[0] == "unzipped":
        return f"unzipped/{parts[1]}" if len(parts) > 1 and not parts[1].startswith(".") else None
    return parts[0]


def _entry_path(root: Path, key: str) -> Path:
    return root.joinpath(*key.split("/"))


def _lock_path(root: Path, key: str) -> Path:
    return root / ".locks" / (key.replace("/", "--") + ".lock")


def _flock(path: Path, shared: bool, wait: bool) -> int | None:
    """A descriptor of ``path`` locked shared or exclusive; None when ``wait`` is False and the lock is taken.

    Eviction unlinks a lock file while holding it exclusively, so after locking, the path must still name the
    locked file; otherwise the lock is on a dead file and the whole step is retried.
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _pin(root: Path, key: str) -> None:
    """Mark ``key`` in use by this process until it exits (no eviction can take it meanwhile)."""
    if fcntl is None:
        return
    lock = str(_lock_path(root, key))
    if lock not in _PINS:
        _PINS[lock] = _flock(Path(lock), shared=True, wait=True)


def _release(root: Path, key: str) -> None:
    """Give up this process's hold on ``key`` after a failed publish; drop its lock file if nobody else holds it."""
    lock = _lock_path(root, key)
    fd = _PINS.pop(str(lock), None)
    if fd is None:
        return
    os.close(fd)
    ex = _flock(lock, shared=False, wait=False)
    if ex is not None:
        if not _entry_path(root, key).exists():
            lock.unlink(missing_ok=True)
        os.close(ex)


def _touch(root: Path, key: str) -> None:
    """Record a use of ``key``: the access time of its lock file is set to now (its modification time, and so
    every time stamp inside the cache that a reader may compare, is left alone)."""
    lock = _lock_path(root, key)
    try:
        os.utime(lock, ns=(time.time_ns(), lock.stat().st_mtime_ns))
    except OSError:
        pass


def _last_use(root: Path, key: str, path: Path) -> float:
    try:
        return _lock_path(root, key).stat().st_atime
    except OSError:  # an entry published before locks existed
        return path.stat().st_mtime


# ------------------------------------------------------------------------------------------ sizes and eviction

def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path, followlinks=False):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:  # removed meanwhile by an eviction
                pass
    return total


def _entries(root: Path) -> list[tuple[str, Path]]:
    out = []
    for base, prefix in ((root, ""), (root / "unzipped", "unzipped/")):
        try:
            children = list(base.iterdir())
        except OSError:
            continue
        for p in children:  # only folders named by a SHA-256: nothing else in the folder is ever removed
            if _DIGEST.fullmatch(p.name) and p.is_dir():
                out.append((prefix + p.name, p))
    return out


def _evict(root: Path, key: str, path: Path) -> bool:
    """Remove one entry unless a process holds it; True when it was removed."""
    lock = _lock_path(root, key)
    if str(lock) in _PINS:
        return False
    fd = _flock(lock, shared=False, wait=False) if fcntl is not None else None
    if fcntl is not None and fd is None:
        return False
    trash = root / f".trash-{_tag()}-{secrets.token_hex(4)}"
    try:
        os.rename(path, trash)
    except OSError:  # already gone
        return False
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _make_room(root: Path, need: int, cap: int, keep: str) -> None:
    """Evict least recently used entries (never ``keep``, never one in use) until ``need`` more bytes fit."""
    sized = []
    for key, path in _entries(root):
        if key == keep:
            continue
        try:
            used = _last_use(root, key, path)
        except OSError:
            continue
        sized.append((used, key, path, _tree_size(path)))
    total = sum(s for *_, s in sized)
    for _, key, path, size in sorted(sized):
        if total + need <= cap:
            break
        if _evict(root, key, path):
            total -= size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def _sweep(root: Path) -> None:
    """Remove what killed processes left: ``.tmp-*``/``.trash-*``/``.private-*`` folders and index temp files."""
    now = time.time()
    for base in (root, root / "unzipped"):
        try:
            children = list(base.iterdir())
        except OSError:
            continue
        for p in children:
            name = p.name
            m = _LEFTOVER.match(name)
            idx = re.fullmatch(r"index\.(\d+)\.tmp", name)
            if m:
                pid, host = int(m.group(2)), m.group(3)
                stale = (not _alive(pid)) if host == _HOST else _age(p, now) > STALE_FOREIGN_SECONDS
            elif idx:
                stale = not _alive(int(idx.group(1)))
            elif _OLD_TMP.match(name) and p.is_dir():  # no owner recorded: give it a day
                stale = _age(p, now) > STALE_FOREIGN_SECONDS
            else:
                continue
            if stale:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)


def _sweep_locks(root: Path) -> None:
    """Remove lock files of entries that do not exist and that no process holds (failed or killed publishes)."""
    try:
        locks = list((root / ".locks").iterdir())
    except OSError:
        return
    for lock in locks:
        key = lock.name.removesuffix(".lock").replace("--", "/")
        if str(lock) in _PINS or _entry_path(root, key).exists():
            continue
        fd = _flock(lock, shared=False, wait=False)
        if fd is not None:
            if not _entry_path(root, key).exists():
                lock.unlink(missing_ok=True)
            os.close(fd)


def _age(p: Path, now: float) -> float:
    try:
        return now - p.lstat().st_mtime
    except OSError:
        return 0.0


def _remove_private() -> None:
    for p in _PRIVATE:
        shutil.rmtree(p, ignore_errors=True)
    _PRIVATE.clear()


atexit.register(_remove_private)


# ------------------------------------------------------------------------------------------ publishing

def publish_folder(dest: Path, fill: Callable[[Path], object], max_bytes: int | None = None) -> Path:
    """The folder ``dest``, filled by ``fill(folder)`` in a temp folder and renamed into place, once; returns it.

    An existing ``dest`` is reused (and marked used); if another process publishes it first, its copy is kept; a
    failed or killed fill leaves nothing (a killed one's ``.tmp-*`` folder is swept later). When ``dest`` is a
    cache entry, least recently used entries are evicted first to keep the cache under its cap; a fill larger
    than the cap alone is moved to a private folder, removed at exit, and that folder is returned instead.
    """
    dest = Path(dest)
    root = cache_dir()
    key = _entry_key(root, dest)
    if key is not None:
        root.mkdir(parents=True, exist_ok=True)
        _pin(root, key)
    if dest.is_dir():
        if key is not None:
            _touch(root, key)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if key is not None:
        _sweep(root)
        if fcntl is not None:
            _sweep_locks(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{_tag()}-", dir=root if key is not None else dest.parent))
    try:
        try:
            fill(tmp / "files")
        except BaseException:
            if key is not None and not _entry_path(root, key).exists():
                _release(root, key)
            raise
        is_entry = key is not None and _entry_path(root, key) == dest
        if is_entry:
            cap = cache_max_bytes() if max_bytes is None else max_bytes
            size = _tree_size(tmp / "files")
            if size > cap:
                private = root / f".private-{_tag()}-{secrets.token_hex(4)}"
                os.rename(tmp / "files", private)
                _PRIVATE.append(private)
                _release(root, key)
                return private
            _make_room(root, size, cap, keep=key)
        try:
            os.rename(tmp / "files", dest)
        except OSError:  # another process won the race: keep its copy
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if key is not None:
        _touch(root, key)
    return dest


def materialize(art: Artifact, max_bytes: int | None = None) -> Path:
    """A folder holding the artifact's files: the folder itself, or the cached extraction (see the module doc
    for the cap; ``max_bytes`` overrides ``ARTIFACT_TOOLS_CACHE_MAX_BYTES``)."""
    if art.container == "directory" and art.src.fs is None:
        return art.extract()  # checks every entry, returns the folder in place
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = _quick_key(art)
    digest = _read_index().get(key) if key else None
    if digest and _DIGEST.fullmatch(digest):
        _pin(root, digest)
        if (root / digest).is_dir():
            _touch(root, digest)
            return root / digest
    digest = art.fingerprint()
    final = publish_folder(root / digest, art.extract, max_bytes)
    if key and final == root / digest:
        _remember(key, digest)
    return final
