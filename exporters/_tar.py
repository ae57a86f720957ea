"""Writing a model's files as a streamed ``model.tar.gz`` (or into a plain folder). Private: shared by the export
targets.

:class:`Contents` says what goes in: members of a source artifact (streamed straight from its decompressor,
renamed or left out by ``rename``, never extracted to disk), generated files (bytes) and files on disk.
:func:`write_contents` writes them. The archive is a PAX tar (Python's ``tarfile``) compressed with ISA-L
(``compresslevel`` 0-9, default 6, mapped onto ISA-L's levels 0-3) in a second thread, so reading and
re-framing the source overlaps with compressing the output.
"""

from __future__ import annotations

import io
import queue
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from artifact_tools.errors import ArtifactError

__all__ = ["CHUNK", "DEFAULT_LEVEL", "Contents", "isal_level", "write_contents"]

DEFAULT_LEVEL = 6
CHUNK = 1 << 20


def isal_level(level: int) -> int:
    """Our 0-9 compression level on ISA-L's 0-3 (0 -> 0, 1-3 -> 1, 4-6 -> 2, 7-9 -> 3)."""
    if not 0 <= level <= 9:
        raise ArtifactError(f"compresslevel must be between 0 and 9, not {level}")
    return 0 if level == 0 else (level + 2) // 3


class _GzipSink(io.RawIOBase):
    """A write-only file that gzip-compresses in a second thread (ISA-L releases the GIL while it works),
    so reading and re-framing the source overlaps with compressing the output."""

    def __init__(self, path: Path, level: int):
        from isal import isal_zlib

        self._file = open(path, "wb")
        self._z = isal_zlib.compressobj(isal_level(level), isal_zlib.DEFLATED, 31)
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._buf = bytearray()
        self._error: BaseException | None = None
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="gzip-writer", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def _run(self) -> None:
        try:
            while (block := self._q.get()) is not None:
                self._file.write(self._z.compress(block))
            self._file.write(self._z.flush())
        except BaseException as e:  # reported to the writer on its next call
            self._error = e
            while self._q.get() is not None:  # drain so the producer never blocks
                pass

    def write(self, data) -> int:
        if self._error:
            raise self._error
        self._buf += data
        self._written += len(data)
        if len(self._buf) >= CHUNK:
            self._q.put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buf:
                self._q.put(bytes(self._buf))
            self._q.put(None)
            self._thread.join()
            self._file.close()
            if self._error:
                raise self._error
        finally:
            super().close()


class _Exact(io.RawIOBase):
    """Reads that return exactly what was asked until the end (``tarfile`` treats a short read as truncation)."""

    def __init__(self, f: IO[bytes]):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._f.read()
        parts, left = [], n
        while left:
            block = self._f.read(left)
            if not block:
                break
            parts.append(block)
            left -= len(block)
        return b"".join(parts)


class TarWriter:
    """Adds members to a new ``model.tar.gz`` (streaming) or to a plain folder."""

    def __init__(self, target: Path, archive: bool, level: int):
        self.archive = archive
        self.names: list[str] = []
        self._dirs: set[str] = set()
        self.mtime = int(time.time())
        if archive:
            self._sink = _GzipSink(target, level)
            self._tar = tarfile.open(fileobj=self._sink, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                                     copybufsize=CHUNK)
        else:
            self.root = target
            target.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "TarWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.archive:
            try:
                self._tar.close()
            finally:
                self._sink.close()

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                if self.archive:
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, self.mtime
                    self._tar.addfile(ti)

    def add_dir(self, name: str) -> None:
        self._parents(name + "/")
        if not self.archive:
            (self.root / name).mkdir(parents=True, exist_ok=True)

    def add(self, name: str, stream: IO[bytes], size: int) -> None:
        if name in self.names:
            raise ArtifactError(f"the export would hold {name} twice")
        self._parents(name)
        self.names.append(name)
        if self.archive:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = size, 0o644, self.mtime
            self._tar.addfile(ti, _Exact(stream))
            return
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            shutil.copyfileobj(stream, f, CHUNK)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as f:
            self.add(name, f, path.stat().st_size)



@dataclass
class Contents:
    """What goes into a model: streamed source members, generated files and files on disk."""

    framework: str
    source: str | None = None  # artifact whose members are streamed in
    rename: Callable[[str], str | None] = lambda name: None  # source member -> new name, or None to leave out
    files: dict[str, bytes] = field(default_factory=dict)
    local: dict[str, Path] = field(default_factory=dict)  # new name -> file written by a framework saver


def write_contents(contents: Contents, target: Path, *, archive: bool = True,
                   compresslevel: int = DEFAULT_LEVEL) -> list[str]:
    """Write ``contents`` as a ``.tar.gz`` at ``target`` (or into the folder ``target``); returns member names."""
    with TarWriter(target, archive, compresslevel) as w:
        if contents.source is not None:
            _stream_members(contents.source, contents.rename, w, set(contents.files) | set(contents.local))
        for name, path in sorted(contents.local.items()):
            w.add_file(name, path)
        for name, data in sorted(contents.files.items()):
            w.add_bytes(name, data)
        return list(w.names)


def _stream_members(source: str, rename: Callable[[str], str | None], w: TarWriter, replaced: set[str]) -> None:
    from artifact_tools.archive import open_artifact

    with open_artifact(source) as art:
        for m, stream in art.iter_entries():
            if m.ignored or (stream is None and m.type != "dir"):
                continue
            new = rename(m.name)
            if stream is None:
                if new is not None:
                    w.add_dir(new)
                continue
            if new is None or new in replaced:
                continue
            if new in w.names:  # an identical duplicate (the archive layer refuses differing ones on extraction)
                continue
            w.add(new, stream, m.size)
