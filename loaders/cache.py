"""The extraction cache: each artifact is unpacked once, keyed by the SHA-256 of its bytes, within a size cap.

Layout of ``$ARTIFACT_TOOLS_CACHE`` (default ``~/.cache/artifact-tools/extracted``):

- ``<sha256>/``: one folder per artifact. It appears atomically: it is filled in a ``.tmp-*`` folder of the cache
  root and renamed into place, so a killed or failed extraction leaves nothing under a hash name, and its
  ``.tmp-*`` folder is removed (at once on failure; by the next publish when the process was killed).
- ``<sha256>.json``: the inspection report of that artifact with what its listing counted (entries, bytes), written
  just before the folder is renamed into place and removed with it.
- ``unzipped/<sha256>/``: nested zips of plain folders (:mod:`loaders.mxnet`), published the same way.
- ``.locks/``: one lock file per entry; ``index.json``: what names an artifact's bytes without reading them ->
  hash: a local file's (device, inode, size, modification time in ns), a URI's ETag or version id with its size
  (``artifact_tools.archive._Source.identity``).

One pass, then none. :func:`prepare` opens an artifact seen before (its identity is in the index, its folder and
report are in the cache) without reading a byte of it: the report comes from ``<sha256>.json``. Otherwise the
artifact is read once: listing, sniffing, the trust audit, hashing and extraction all happen in one streaming
read (``artifact_tools.inspection.inspect_opened``); a URI's object is fetched once. The caller (``loaders.load``)
runs the trust gate on the report either way, before any framework reads a byte.

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
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

import artifact_tools
from artifact_tools.archive import Artifact, Limits, _bomb, _short, _Source
from artifact_tools.errors import ArtifactError, UnsafeArtifact
from artifact_tools.inspection import inspect_opened
from artifact_tools.report import FileInfo, ModelInfo, Report

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, eviction by age only
    fcntl = None

DEFAULT_MAX_BYTES = 20 << 30
RECORD_FORMAT = 1  # layout of <sha256>.json; a record of another format (or artifact-tools version) is redone
STALE_FOREIGN_SECONDS = 24 * 3600  # leftovers of another host's process are removed after a day

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_LEFTOVER = re.compile(r"^\.(tmp|trash|private)-(\d+)-([0-9a-f]{8})-")
_OLD_TMP = re.compile(r"^\.tmp-[a-z0-9_]{8}$")  # publish folders of earlier versions (tempfile.mkdtemp names)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PINS: dict[str, int] = {}  # lock file -> descriptor holding its shared lock for the life of this process
_PRIVATE: list[Path] = []  # folders of this process only, removed when it exits
_FALLBACK: dict[str, Path] = {}  # an unusable cache folder -> the private folder standing in for it
_OWNER = os.getpid()  # forked children (server workers) inherit _PRIVATE and atexit; only this process removes

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache folder: ``$ARTIFACT_TOOLS_CACHE`` (default ``~/.cache/artifact-tools/extracted``), created if
    missing. When it cannot be used (under a regular file, on a read-only file system, not a folder...), loads
    still work: a private temporary folder stands in for it in this process, with one warning, and is removed when
    the process exits."""
    configured = Path(os.environ.get("ARTIFACT_TOOLS_CACHE") or Path.home() / ".cache" / "artifact-tools" / "extracted")
    fallback = _FALLBACK.get(str(configured))
    if fallback is not None:
        return fallback
    try:
        configured.mkdir(parents=True, exist_ok=True)
        if not os.access(configured, os.W_OK | os.X_OK):  # also False on a read-only file system (EROFS)
            raise PermissionError("not writable")
    except OSError as e:
        why = "it is not a folder" if isinstance(e, FileExistsError) else e.strerror or str(e)
        fallback = Path(tempfile.mkdtemp(prefix="artifact-tools-cache-"))
        _FALLBACK[str(configured)] = fallback
        _PRIVATE.append(fallback)
        log.warning("the cache folder %s (ARTIFACT_TOOLS_CACHE) cannot be used (%s): this process extracts to %s "
                    "instead, removed when it exits", configured, why, fallback)
        return fallback
    return configured


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

def _index_path() -> Path:
    return cache_dir() / "index.json"


def _read_index() -> dict[str, str]:
    """Identity -> SHA-256 entry name; an unreadable or malformed index, or any value that is not an entry name,
    counts as absent (a cache miss: the artifact is read again)."""
    try:
        index = json.loads(_index_path().read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(index, dict):
        return {}
    return {k: v for k, v in index.items() if isinstance(v, str) and _DIGEST.fullmatch(v)}


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
    assert fcntl is not None  # the callers lock only where fcntl exists
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
        fd = _flock(Path(lock), shared=True, wait=True)
        if fd is not None:  # always, when waiting
            _PINS[lock] = fd


def _release(root: Path, key: str) -> None:
    """Give up this process's hold on ``key`` after a failed publish; drop its lock file if nobody else holds it."""
    lock = _lock_path(root, key)
    fd = _PINS.pop(str(lock), None)
    if fd is None:
        return
    os.close(fd)
    _remove_orphan_lock(root, key, lock)


def _remove_orphan_lock(root: Path, key: str, lock: Path) -> None:
    """Remove ``key``'s lock file when its entry is gone and nobody holds the lock (taken without waiting)."""
    fd = _flock(lock, shared=False, wait=False)
    if fd is not None:
        if not _entry_path(root, key).exists():
            lock.unlink(missing_ok=True)
        os.close(fd)


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
    _record_path(root, key).unlink(missing_ok=True)
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
        _remove_orphan_lock(root, key, lock)


def _age(p: Path, now: float) -> float:
    try:
        return now - p.lstat().st_mtime
    except OSError:
        return 0.0


def _remove_private() -> None:
    if os.getpid() != _OWNER:
        return
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
        if key is not None and _entry_path(root, key) == dest:
            return _publish(root, key, tmp / "files", max_bytes)
        _rename(tmp / "files", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if key is not None:
        _touch(root, key)
    return dest


def _rename(filled: Path, dest: Path) -> None:
    try:
        os.rename(filled, dest)
    except OSError:  # another process won the race: keep its copy
        if not dest.is_dir():
            raise


def _publish(root: Path, key: str, filled: Path, max_bytes: int | None,
             before: Callable[[], object] | None = None) -> Path:
    """Rename the filled folder into place as entry ``key`` (pinned by the caller) after making room for it; an
    entry larger than the whole cap goes to a private folder instead (returned). ``before()`` runs just before
    the rename (the report record is written there)."""
    dest = _entry_path(root, key)
    cap = cache_max_bytes() if max_bytes is None else max_bytes
    size = _tree_size(filled)
    if size > cap:
        private = root / f".private-{_tag()}-{secrets.token_hex(4)}"
        os.rename(filled, private)
        _PRIVATE.append(private)
        _release(root, key)
        log.info("%d bytes extracted, more than the cache's cap of %d: kept for this process only", size, cap)
        return private
    _make_room(root, size, cap, keep=key)
    if before is not None:
        before()
    _rename(filled, dest)
    _touch(root, key)
    return dest


# ------------------------------------------------------------------------------------------ one pass, then none

def _record_path(root: Path, key: str) -> Path:
    entry = _entry_path(root, key)
    return entry.with_name(entry.name + ".json")


@functools.cache
def inspection_code_version() -> str:
    """The version of the code that wrote a stored report: the release plus a fingerprint (name, size, modification
    time) of every module of the core package, which holds the detectors, the audit and the trust policy. A report
    written by other inspection code -- an upgrade, or a development checkout edited since -- is never reused, so a
    warm load always decides from what the installed audit says (one ``stat`` per module, once per process)."""
    package = Path(artifact_tools.__file__).parent
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        digest.update(f"{path.relative_to(package).as_posix()}:{st.st_size}:{st.st_mtime_ns};".encode())
    return f"{artifact_tools.__version__}+{digest.hexdigest()[:16]}"


def _record(report: Report, art: Artifact) -> dict:
    """What is stored beside an extraction: the report (as JSON) and the listing's counts, so that a later load
    re-checks its own limits without reading the archive."""
    files = [m for m in art.members() if m.is_file]
    return {"format": RECORD_FORMAT, "artifact_tools": inspection_code_version(),
            "report": json.loads(report.to_json(indent=None)), "entries": len(art.members()),
            "bytes": sum(m.size * (1 + m.duplicates + m.conflicts) for m in files), "archive_bytes": art.src.size}


def _write_record(root: Path, key: str, record: dict) -> None:
    path = _record_path(root, key)
    tmp = path.with_name(f".{path.name}.{_tag()}.tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


_COUNTS = ("entries", "bytes", "archive_bytes")


def _read_record(root: Path, key: str) -> dict | None:
    try:
        record = json.loads(_record_path(root, key).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    ok = (isinstance(record, dict) and record.get("format") == RECORD_FORMAT
          and record.get("artifact_tools") == inspection_code_version() and isinstance(record.get("report"), dict)
          and all(type(record.get(k)) is int and record[k] >= 0 for k in _COUNTS))
    return record if ok else None  # anything else is a cache miss: the artifact is inspected again


def report_from_dict(data: dict) -> Report:
    """A :class:`Report` from its JSON form (``Report.from_dict`` when the report module has it)."""
    from_dict = getattr(Report, "from_dict", None)
    if from_dict is not None:
        return from_dict(data)
    fields = {k: v for k, v in data.items() if k != "schema"}
    fields["files"] = [FileInfo(**f) for f in fields.get("files", [])]
    fields["models"] = [ModelInfo(**m) for m in fields.get("models", [])]
    return Report(**fields)


def _report_of(record: dict, label: str) -> Report | None:
    try:
        report = report_from_dict(record["report"])
    except (ArtifactError, TypeError, KeyError, ValueError, AttributeError):
        return None
    report.source = label  # the same bytes may be opened under another name
    return report


def _check_limits(record: dict, limits: Limits, label: str) -> None:
    """The caps of ``limits`` against what the listing counted when the artifact was extracted: a cached artifact
    is refused by stricter limits exactly as reading it again would refuse it."""
    entries, total, size = (record[k] for k in _COUNTS)  # non-negative ints (checked by _read_record)
    if entries > limits.max_members:
        raise UnsafeArtifact(f"{_short(label)} has more than {limits.max_members} entries")
    if total > limits.max_total_bytes:
        raise UnsafeArtifact(f"{_short(label)} holds more than {limits.max_total_bytes} bytes")
    if limits.max_ratio and total > limits.ratio_floor and size and total > limits.max_ratio * size:
        raise UnsafeArtifact(_bomb(label, limits))


def _remember_identity(src: _Source, key: str | None, digest: str) -> None:
    """Remember ``key`` -> ``digest`` unless the file changed while it was read (then the next load reads it)."""
    if key is None:
        return
    if src.fs is None:
        try:
            if _Source(src.path).identity() != key:
                return
        except ArtifactError:
            return
    _remember(key, digest)


def prepare(source, limits: Limits | None = None, storage_options: dict | None = None,
            max_bytes: int | None = None, check: Callable[[Report], object] | None = None) -> tuple[Report, Path]:
    """The inspection report and the folder holding the files of an artifact (path, folder, fsspec URI or an
    opened :class:`Artifact`), reading the artifact at most once.

    Warm (its identity is in the index and its folder and report are in the cache): nothing of the artifact is
    read. Cold: one pass lists, sniffs, audits, hashes and extracts it; the folder and the report are published
    under its SHA-256. A plain local folder is inspected and used in place. Errors are ArtifactErrors.

    ``check(report)`` (``loaders.load``'s trust gate) runs on the report on every path before this returns; its
    refusals come after the listing's and before extraction's, as when inspecting and extracting were two passes.
    A refused artifact that extracted cleanly stays cached with its report (the next load is refused from it).
    """
    check = check or (lambda report: None)
    art = source if isinstance(source, Artifact) else None
    src = art.src if art is not None else _Source(source, storage_options)
    lim = art.limits if art is not None else (limits if limits is not None else Limits.from_env())
    if src.is_dir and src.fs is None:
        with _opened(art, src, lim) as opened:
            report = inspect_opened(opened)
            check(report)
            return report, opened.extract()  # checks every entry, returns the folder in place
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    key = src.identity()
    digest = _read_index().get(key) if key else None
    if digest:
        _pin(root, digest)
        entry = root / digest
        if entry.is_dir():
            record = _read_record(root, digest)
            cached = _report_of(record, src.label) if record is not None else None
            if record is not None and cached is not None:
                _check_limits(record, lim, src.label)
                _touch(root, digest)
                log.info("%s: cached as %s, nothing read", src.label, digest[:12])
                check(cached)
                return cached, entry
            # The folder is there but its report is missing or from another version: inspect again (no extraction).
            with _opened(art, src, lim) as opened:
                report = inspect_opened(opened)
                _write_record(root, digest, _record(report, opened))
            _touch(root, digest)
            report = _report_of(_read_record(root, digest) or {}, src.label) or report
            check(report)
            return report, entry
    with _opened(art, src, lim) as opened:
        report, out = _extract_once(opened, root, key, max_bytes, check)
    check(report)
    return report, out


def _opened(art: Artifact | None, src: _Source, limits: Limits):
    """The caller's artifact (left open: the caller closes it), or one opened here and closed after use."""
    return contextlib.nullcontext(art) if art is not None else Artifact(src, limits)


def _extract_once(art: Artifact, root: Path, key: str | None, max_bytes: int | None,
                  check: Callable[[Report], object]) -> tuple[Report, Path]:
    """The cold path: one pass (list, sniff, audit, hash, extract) into a temp folder of the cache, then published
    under the digest with its report. A failure leaves nothing behind."""
    _sweep(root)
    if fcntl is not None:
        _sweep_locks(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{_tag()}-", dir=root))
    digest: str | None = None
    try:
        t0 = time.perf_counter()
        report = inspect_opened(art, extract_to=tmp / "files", digest=True)
        record = _record(report, art)
        final = _report_of(record, art.label) or report  # the same report a warm load gets
        if art.extract_error is not None:  # listing and inspection were fine; extraction was refused
            check(final)
            raise art.extract_error
        assert art.digest is not None  # inspect_opened(digest=True) hashed the artifact
        digest = _entry_name(art.digest, report)
        _pin(root, digest)
        dest = root / digest
        if dest.is_dir():  # the same bytes under another name (or another process was faster): reuse them
            if _read_record(root, digest) is None:
                _write_record(root, digest, record)
            _touch(root, digest)
            out = dest
        else:
            out = _publish(root, digest, tmp / "files", max_bytes,
                           before=functools.partial(_write_record, root, digest, record))
        log.info("%s: read once and extracted in %.2f s as %s", art.label, time.perf_counter() - t0, digest[:12])
    except BaseException:
        if digest is not None and not (root / digest).exists():
            _release(root, digest)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out == root / digest:
        _remember_identity(art.src, key, digest)
    return final, out


def _entry_name(digest: str, report: Report) -> str:
    """The cache entry of an artifact: its SHA-256, except for a loose (or gzipped) single file, whose extracted
    folder holds it under its own name: there the name is part of the entry, so the same bytes saved under two names
    (``m.ubj`` and ``xgboost-model.ubj``) get two entries, each holding the file its report names."""
    if report.container not in ("file", "gzip-file"):
        return digest
    names = "\0".join(f.path for f in report.files)
    return hashlib.sha256(f"{digest}\0{names}".encode()).hexdigest()


def materialize(art: Artifact, max_bytes: int | None = None) -> Path:
    """A folder holding the artifact's files: the folder itself, or the cached extraction (see the module doc
    for the cap; ``max_bytes`` overrides ``ARTIFACT_TOOLS_CACHE_MAX_BYTES``). Reads the artifact at most once
    (:func:`prepare`), so its report is cached too."""
    if art.container == "directory" and art.src.fs is None:
        return art.extract()  # checks every entry, returns the folder in place
    return prepare(art, max_bytes=max_bytes)[1]
