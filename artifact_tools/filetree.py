"""A read-only view of a set of files, the common input of every format reader.

Format readers (``artifact_tools.formats.*``) never touch archives or disks themselves: they take a
:class:`FileTree` and read the few files they need by relative POSIX path. Three implementations
cover every case: an in-memory mapping (inspection reads small members once while streaming the
archive), a directory on disk (an extracted artifact), and a zip file (nested zips, MLeap bundles,
torch.save files), read with the same bounds as any archive (no overlapping entries, counted inflation).
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterable, Mapping, Protocol

from .errors import CorruptArtifact

# Everything zipfile lets escape from a damaged or hostile archive (not only BadZipFile): bad offsets give
# ValueError/OverflowError, bad names UnicodeDecodeError/IndexError, bad data zlib.error/EOFError, unknown
# methods NotImplementedError, encrypted entries RuntimeError.
ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, NotImplementedError, IndexError,
              OverflowError, struct.error, zlib.error)


class FileTree(Protocol):
    def names(self) -> list[str]:
        """Relative POSIX paths of the regular files in the tree."""

    def read(self, name: str) -> bytes:
        """The whole content of one file; ``KeyError`` when it is absent or not held whole."""

    def read_head(self, name: str, n: int) -> bytes:
        """The first ``n`` bytes of one file (fewer if it is shorter), without reading the rest."""

    def size(self, name: str) -> int:
        """The size in bytes of one file."""


def _norm(name: str) -> str:
    """``name`` as a relative POSIX path: backslashes as slashes, no empty or ``.`` segments, no leading slash;
    ``..`` is kept (what ``str(PurePosixPath(name)).lstrip("/")`` gives, ``""`` for ``""`` and ``"."``), in
    string operations only: every member of a 100,000-entry archive passes here."""
    if "\\" not in name and "//" not in name and "/." not in name and not name.startswith(("/", "./")) \
            and not name.endswith("/") and name != ".":
        return name  # already normal (the common case)
    if name in ("", "."):
        return ""
    name = name.replace("\\", "/")
    parts = [p for p in name.split("/") if p and p != "."]
    if parts:
        return "/".join(parts)
    return "" if name.startswith("/") else "."


class MappingTree:
    """Files held in memory: ``{relative_path: bytes}``. ``sizes`` may list files not held, or held only in part
    (inspection keeps the first bytes of large members): ``read`` refuses those, ``read_head`` serves the part."""

    def __init__(self, files: Mapping[str, bytes], sizes: Mapping[str, int] | None = None):
        self._files = {_norm(k): v for k, v in files.items()}
        self._sizes = {_norm(k): v for k, v in (sizes or {}).items()}
        for k, v in self._files.items():
            self._sizes.setdefault(k, len(v))

    def names(self) -> list[str]:
        return sorted(self._sizes)

    def read(self, name: str) -> bytes:
        key = _norm(name)
        data = self._files[key]
        if len(data) != self._sizes[key]:
            raise KeyError(f"{name}: only the first {len(data)} of {self._sizes[key]} bytes are held")
        return data

    def read_head(self, name: str, n: int) -> bytes:
        key = _norm(name)
        data = self._files[key]
        if len(data) < min(n, self._sizes[key]):
            raise KeyError(f"{name}: only the first {len(data)} bytes are held")
        return data[:n]

    def size(self, name: str) -> int:
        return self._sizes[_norm(name)]


class DirTree:
    """Files under a directory on disk; symlinks are not followed and not listed."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def names(self) -> list[str]:
        # one scandir per folder; an entry's type comes from the folder listing (no stat per file)
        out: list[str] = []
        stack = [("", str(self.root))]
        while stack:
            rel, path = stack.pop()
            try:
                it = os.scandir(path)
            except OSError:  # as os.walk: an unreadable folder is skipped
                continue
            with it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append((f"{rel}{e.name}/", e.path))
                        elif e.is_file(follow_symlinks=False):
                            out.append(rel + e.name)
                    except OSError:
                        continue
        return sorted(out)

    def _path(self, name: str) -> Path:
        p = self.root / _norm(name)
        if p.is_symlink() or not p.is_file():
            raise KeyError(name)
        return p

    def read(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def read_head(self, name: str, n: int) -> bytes:
        with open(self._path(name), "rb") as f:
            return f.read(n)

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size


class ZipTree:
    """Files inside a zip archive (a path, or bytes already read), read through the archive layer's checked zip
    reader (``artifact_tools.archive``): overlapping entries are refused and every read is inflated in bounded
    steps, counted against ``limits`` (by default ``Limits.from_env()``; an artifact's ``art.limits`` makes the
    reads share that artifact's budget). Two entries of one name (``a`` and ``./a`` count as one) are refused:
    Python's ``zipfile`` reads the last of them, torch's miniz whichever its binary search over the sorted
    central directory meets (``mz_zip_reader_locate_file``), so what is audited could differ from what is loaded."""

    def __init__(self, source: str | os.PathLike | bytes, label: str = "zip", limits=None):
        import io

        from .archive import Limits, _Spent, _ZipArchive

        limits = limits if limits is not None else Limits.from_env()
        self._file: IO[bytes]
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._file = io.BytesIO(source)
        else:
            try:
                self._file = open(source, "rb")
            except OSError as e:
                raise CorruptArtifact(f"{label} cannot be opened ({e.strerror})") from None
        spent = _Spent(limits, label, parent=getattr(limits, "_spent", None))
        self._zip = _ZipArchive(self._file, label, limits, spent)
        self._label = label
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infos:
            if info.is_dir():
                continue
            key = _norm(info.filename)
            if key in self._infos:  # zipfile reads the last entry of a name, torch's miniz one found by bisection
                raise CorruptArtifact(f"{label} has two entries named {key[:100]!r}; zip readers disagree on "
                                      "which one they read")
            self._infos[key] = info

    def names(self) -> list[str]:
        return sorted(self._infos)

    def read(self, name: str) -> bytes:
        return self.read_head(name, -1)

    def read_head(self, name: str, n: int) -> bytes:
        key = _norm(name)
        info = self._infos[key]
        return self._zip.open(info, key).read(n)

    def size(self, name: str) -> int:
        return self._infos[_norm(name)].file_size


class SubTree:
    """The files of another tree below one folder, with that folder prefix removed."""

    def __init__(self, tree: FileTree, prefix: str):
        self._tree = tree
        self._prefix = _norm(prefix).rstrip("/") + "/" if _norm(prefix) else ""

    def names(self) -> list[str]:
        n = len(self._prefix)
        return [x[n:] for x in self._tree.names() if x.startswith(self._prefix)]

    def read(self, name: str) -> bytes:
        return self._tree.read(self._prefix + _norm(name))

    def read_head(self, name: str, n: int) -> bytes:
        return self._tree.read_head(self._prefix + _norm(name), n)

    def size(self, name: str) -> int:
        return self._tree.size(self._prefix + _norm(name))


def folders(names: Iterable[str]) -> set[str]:
    """Every folder path implied by a list of file paths (without trailing slash)."""
    out: set[str] = set()
    for n in names:
        parts = n.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out
