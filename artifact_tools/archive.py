"""Safe access to model artifacts: archives, folders, loose files and fsspec URIs.

What an artifact can be (decided by content, never by the file name):
- a gzip stream (``1f 8b``) holding a tar (``ustar`` at offset 257 of the first 512-byte header, or a v7 header
  with a valid checksum) — SageMaker's ``model.tar.gz``; a plain tar; bzip2 (``BZh``) or xz (``fd 37 7a 58 5a 00``)
  tars; a zip (``PK\\x03\\x04`` or the empty-archive ``PK\\x05\\x06``); a plain folder; any other single file
  (a loose ``xgboost-model`` or ``model.joblib``); and the same behind an fsspec URI (``s3://``, ``file://``...).
- Seek, don't read: a plain tar is listed by jumping from header to header (``tarfile`` on a seekable file moves
  over member data without reading it), a zip from its central directory; of each member only its head (64 KiB,
  for sniffing) and the bytes inspection keeps are read. A member whose head reaches its end is read to the end,
  so that its size (and a zip entry's CRC-32) is checked. Folders and loose files are read the same way.
- A compressed tar is read once from start to end: gzip is inflated in large chunks with isal's
  ``IgzipDecompressor`` when installed (the same inflate loop as ``python -m isal.igzip -d``, checking each gzip
  member's CRC-32 and length), else zlib; member data is skipped, never held whole; peak memory stays flat.
- One pass: :meth:`Artifact.scan` can also write every file into a folder and compute the artifact's SHA-256
  (:meth:`Artifact.fingerprint`) while it lists, so loading reads the archive once (``loaders.cache``).

Normalisation of what real artifacts contain: ``./`` prefixes and an empty-named root entry are dropped;
AppleDouble ``._*`` files and ``.DS_Store`` are listed but marked ignored; PAX/GNU headers are handled by
``tarfile``; a single extra top-level folder (``tfs-test-model/00000123/...``) is reported as ``root_prefix`` so
layout detection looks below it (numeric version folders are never stripped).

Safety rules (our own checks; ``tarfile.data_filter`` is applied as a second layer on extraction):
only regular files, folders and links to regular files inside the artifact (below); no absolute paths, drive
letters, ``..`` components or NUL bytes; no devices or FIFOs; duplicates of one name must be byte-identical
(tolerated and reported, as in real PyTorch artifacts) or the archive is refused; caps on member count, total size
and compression ratio, counted on the real bytes produced, not on header claims. Nested archives (``model_algo-1``
zips) follow the same rules.

Links, as ``tar -x`` (and so SageMaker) resolves them, become copies of the member they point to: listed under
their own name with that member's size, read (sniffed, audited, extracted) as that member's bytes, written on
extraction as a regular file, never as a link. A tar hard link (``LNKTYPE``) names an *earlier* member by its
archive path (POSIX ustar ``linkname``; GNU tar manual, "Hard Links"); it must be an earlier regular file (or an
earlier accepted hard link). A symbolic link (tar ``SYMTYPE``, or a zip entry whose Unix mode in the high 16 bits
of its external attributes is ``S_IFLNK``, its data being the target path, as Info-ZIP stores it) is resolved
relative to its own folder, lexically normalised, never climbing above the artifact root, through at most
:data:`MAX_LINK_HOPS` chained links, and must end at a regular file; it may point forward, so symbolic links are
resolved once the whole listing is known and their entries come after the archive's other entries. Absolute
targets, targets outside the artifact, missing targets, folders, cycles and over-long chains are refused with one
sentence naming the link and its target. Each link's bytes count against the budgets below like any member's
(the artifact's declared total, checked before any link is read, and the bytes produced and written), so many
links to one large member cannot multiply it past the caps. A compressed tar cannot seek back: its links are read
in a second pass over the archive (a target that several links share is copied once to a temporary spool).

Bounded work on hostile input (each cap below is checked before the work it bounds is done):

- Every byte an artifact produces counts against one budget per pass (:class:`Limits`): entries, total bytes and
  the ratio of bytes produced to bytes read from the source, checked as the bytes come out once 16 MiB came out.
  Nested zips opened inside an artifact (:func:`nested_entries`, :func:`open_nested`) report to the budget of the
  artifact they came from, so a small archive cannot hide a bomb one level down; what a nested zip yields is read
  in chunks, and :func:`open_nested` holds at most ``max_nested_bytes`` (or what its ``keep`` asks) in memory.
- zip: the central directory is walked (entry count, total name bytes) before ``zipfile`` parses it; entries may
  not overlap (each entry's local header plus compressed data must end before the next entry's local header and
  the central directory, APPNOTE 4.3.6 — overlapping entries are how "A better zip bomb", Fifield 2019, reuses one
  kernel thousands of times); entries are inflated by our own bounded reader (stored, deflate, bzip2, LZMA), each
  one checked for its own ratio and for producing exactly its declared size and CRC-32; declared sizes are
  never trusted for the budget.
- tar: a GNU long-name/long-link record (``L``/``K``) may hold at most 64 KiB and a pax header 1 MiB; all header
  records of one entry (chained records, sparse maps) at most 4 MiB; an entry name at most 4096 bytes (Linux
  PATH_MAX) and :data:`MAX_NAME_DEPTH` folders deep (Python's own folder creation and removal recurse once
  per level); all names of an artifact together at most 64 MiB. Sparse members (old GNU ``S``, pax
  ``GNU.sparse.*`` 0.0/0.1/1.0, GNU tar manual "Sparse Formats") count their holes at their expanded size.
- Error sentences quote names and labels shortened to at most 100 characters.
- ``max_ratio`` 0 turns the ratio checks off (the other caps stay).
"""

from __future__ import annotations

import bz2
import contextlib
import io
import logging
import lzma
import math
import os
import shutil
import stat
import struct
import tarfile
import threading
import types
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, NoReturn, Protocol, cast

from ._value import Value
from .errors import ArtifactError, CorruptArtifact, NotAnArtifact, UnsafeArtifact
from .filetree import ZIP_ERRORS
from .progress import task

if TYPE_CHECKING:
    from .report import Container

_fast_zlib: types.ModuleType  # zlib's API: isal's when installed
_igzip_lib: types.ModuleType | None
try:  # isal inflates gzip 2-4x faster than zlib; same API.
    from isal import igzip_lib as _isal_igzip_lib
    from isal import isal_zlib as _isal_zlib

    _fast_zlib, _igzip_lib = _isal_zlib, _isal_igzip_lib
except ImportError:  # pragma: no cover - isal is a core dependency, but stay usable without it
    _fast_zlib, _igzip_lib = zlib, None

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Decompressed data moves through Python in pieces below glibc malloc's mmap threshold (128 KiB): a fresh 1 MiB
# bytes object per call is mmap-ed and unmapped each time, and its page faults cost a third of an inflate.
PIECE = 96 << 10
HEAD = 64 << 10
MAX_NAME_BYTES = 4096  # PATH_MAX on Linux (<linux/limits.h>): no file system path can be longer
MAX_NAME_DEPTH = 256  # folders in one entry name: pathlib's mkdir and shutil.rmtree recurse once per level
MAX_NAMES_TOTAL = 64 << 20  # all entry names of one artifact (with its nested archives) together
MAX_LONG_RECORD = 64 << 10  # one GNU 'L'/'K' long-name / long-link record
MAX_PAX_HEADER = 1 << 20  # one pax extended ('x') or global ('g') header
MAX_ENTRY_HEADERS = 4 << 20  # every header block read for one tar entry: chained records, sparse maps
# Concatenated compressed streams (gzip members, bzip2/xz streams): each one starts a new decoder (about 40 us), so
# a file of empty gzip members (20 bytes each) would take 40 s per 20 MB. Real multi-member files (BGZF: 64 KiB
# blocks; ``cat a.gz b.gz``) stay far below one stream per MIN_STREAM_BYTES of output.
MAX_STREAMS = 1000
MIN_STREAM_BYTES = 4096
MAX_LINK_HOPS = 8  # symbolic links followed from one link to its file (Linux follows 40; artifacts use one)
_SHORT = 100


def _sha256():
    """A fresh SHA-256; hashlib (OpenSSL, 2 ms to load) is imported only by the passes that hash."""
    import hashlib

    return hashlib.sha256()


def _is_real(v: object) -> bool:
    """A real number that is not a bool (``numbers.Real``, imported only for types other than int and float)."""
    if isinstance(v, (int, float)):
        return not isinstance(v, bool)
    import numbers

    return isinstance(v, numbers.Real)


def _short(text: object, limit: int = _SHORT) -> str:
    """``text`` for an error sentence: control characters escaped, at most ``limit`` characters."""
    t = str(text)
    if not t.isprintable():
        t = t.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(t) > limit:
        t = f"{t[: limit - 30]}...({len(t)} characters)"
    return t


class _Readable(Protocol):
    """What the readers here need of a byte stream: ``read(n)``, possibly returning fewer bytes."""

    def read(self, n: int = -1, /) -> bytes: ...


def _as_file(reader: io.RawIOBase) -> IO[bytes]:
    """One of the readers below as the binary file object it is, for the public ``IO[bytes]`` signatures:
    typeshed models ``io.RawIOBase`` apart from ``typing.IO`` (and its ``read`` as possibly returning None,
    which these readers never do)."""
    return cast(IO[bytes], reader)


class Limits(Value):
    """Caps applied while reading or extracting. Ratios are checked once ``ratio_floor`` bytes came out.

    ``max_ratio`` 0 turns the ratio checks off; the other caps stay. An :class:`Artifact` works on its own copy
    (``limits.replace()``) and records in it what the current pass has spent, so passing ``art.limits`` to
    :func:`open_nested` makes the nested archive share that budget.
    """

    _fields = ("max_members", "max_total_bytes", "max_ratio", "ratio_floor", "max_nested_bytes")

    def __init__(self, max_members: int = 100_000, max_total_bytes: int = 200 << 30, max_ratio: float = 250.0,
                 ratio_floor: int = 16 << 20, max_nested_bytes: int = 1 << 30):
        self.max_members = max_members
        self.max_total_bytes = max_total_bytes
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor
        self.max_nested_bytes = max_nested_bytes  # most bytes of a nested archive held in memory (and opened)
        # What the current pass has spent (set by Artifact.iter_entries; not a limit, not copied by replace()).
        self._spent: _Spent | None = None
        self._check()

    def _check(self) -> None:
        for attr in self._fields:
            v = getattr(self, attr)
            if not _is_real(v) or math.isnan(v) or v < 0:
                raise ArtifactError(f"the {attr} limit must be a number of 0 or more, not {_short(repr(v), 40)}")

    @classmethod
    def from_env(cls) -> Limits:
        lim = cls()
        for attr, var in (("max_members", "ARTIFACT_TOOLS_MAX_MEMBERS"),
                          ("max_total_bytes", "ARTIFACT_TOOLS_MAX_BYTES"), ("max_ratio", "ARTIFACT_TOOLS_MAX_RATIO")):
            text = os.environ.get(var)
            if text:
                try:
                    value = type(getattr(lim, attr))(float(text))
                except (ValueError, OverflowError):
                    raise ArtifactError(f"{var} must be a number, not {_short(repr(text), 40)}") from None
                setattr(lim, attr, value)
        lim._check()
        return lim


def _bomb(label: str, lim: Limits) -> str:
    return (f"{_short(label)} expands more than {lim.max_ratio:g}:1 (a decompression bomb?); "
            "raise the limit with --max-ratio if this is expected")


class _Spent:
    """What one pass over an archive has produced so far, checked against its :class:`Limits` at every step.

    ``consumed`` is how many bytes of the archive itself were read (a callable for streams); a nested archive's
    budget has its parent's as ``parent``, so every entry and byte also counts against the enclosing artifact.
    """

    def __init__(self, limits: Limits, label: str, consumed: Callable[[], int] | None = None,
                 parent: "_Spent | None" = None):
        self.limits, self.label, self.parent = limits, label, parent
        self._consumed_fn = consumed
        self._consumed = 0
        self.members = 0
        self.names = 0
        self.produced = 0

    def consume(self, n: int) -> None:
        self._consumed += n

    @property
    def consumed(self) -> int:
        return self._consumed_fn() if self._consumed_fn is not None else self._consumed

    def member(self, name: str) -> None:
        lim = self.limits
        self.members += 1
        self.names += len(name)
        if self.members > lim.max_members:
            raise UnsafeArtifact(f"{_short(self.label)} has more than {lim.max_members} entries")
        if self.names > MAX_NAMES_TOTAL:
            raise UnsafeArtifact(f"the entry names of {_short(self.label)} take more than {MAX_NAMES_TOTAL} bytes")
        if self.parent is not None:
            self.parent.member(name)

    def name_bytes(self, n: int) -> None:
        """Text held for an entry besides its name (a link's target) counts against the same cap as names."""
        self.names += n
        if self.names > MAX_NAMES_TOTAL:
            raise UnsafeArtifact(f"the entry names of {_short(self.label)} take more than {MAX_NAMES_TOTAL} bytes")
        if self.parent is not None:
            self.parent.name_bytes(n)

    def produce(self, n: int) -> None:
        lim = self.limits
        self.produced += n
        if self.produced > lim.max_total_bytes:
            raise UnsafeArtifact(f"{_short(self.label)} expands beyond the {lim.max_total_bytes}-byte limit")
        if (lim.max_ratio and self.produced > lim.ratio_floor
                and self.produced > lim.max_ratio * max(self.consumed, 1)):
            raise UnsafeArtifact(_bomb(self.label, lim))
        if self.parent is not None:
            self.parent.produce(n)


class Member(Value):
    """One entry of an artifact, as listed (names normalised to relative POSIX paths).

    ``type``: file | dir | symlink | hardlink | device | fifo | other; ``ignored``: AppleDouble ``._*`` and
    ``.DS_Store`` junk; ``duplicates``: extra identical copies of this name found in the archive; ``conflicts``:
    extra *different* copies (listing reports them, the last one wins as with ``tar -x``; extraction refuses);
    ``link``: for a hard or symbolic link, the regular member whose bytes it stands for.
    """

    _fields = ("name", "size", "type", "ignored", "duplicates", "conflicts", "crc32", "link")

    def __init__(self, name: str, size: int, type: str = "file", ignored: bool = False, duplicates: int = 0,
                 conflicts: int = 0, crc32: int | None = None, link: str | None = None):
        self.name = name
        self.size = size
        self.type = type
        self.ignored = ignored
        self.duplicates = duplicates
        self.conflicts = conflicts
        self.crc32 = crc32
        self.link = link

    @property
    def is_file(self) -> bool:
        return self.type == "file"


def is_junk(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("._") or base == ".DS_Store" or name.startswith("__MACOSX/")


def normalize_name(raw: str) -> str:
    """Relative POSIX path of an archive entry, or UnsafeArtifact for absolute/parent/NUL/over-long names."""
    if len(raw) > MAX_NAME_BYTES // 4 and len(raw.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise UnsafeArtifact(f"archive entry {_short(raw)!r} has a name longer than {MAX_NAME_BYTES} bytes")
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise UnsafeArtifact(f"archive entry {_short(raw)!r} contains a NUL byte")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArtifact(f"archive entry {_short(raw)!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArtifact(f"archive entry {_short(raw)!r} climbs out of the archive with '..'")
    if len(parts) > MAX_NAME_DEPTH:  # within 4096 bytes a name can be 2048 folders deep
        raise UnsafeArtifact(f"archive entry {_short(raw)!r} is nested more than {MAX_NAME_DEPTH} folders deep")
    return "/".join(parts)


# --------------------------------------------------------------------------------------------------- links

class _Links:
    """The links of one archive and what they resolve to (the rules are in the module docstring).

    Fed in archive order with every regular file (``source`` is whatever reads its bytes again: a tar position, a
    ``ZipInfo``), folder and link; :meth:`resolve` then gives, for every link in archive order, the regular member
    whose bytes it stands for, or refuses the archive naming the first link that cannot be resolved. Hard links
    are checked when they are met (their target must already be there); symbolic links at the end.
    """

    def __init__(self, label: str):
        self.label = label
        self.files: dict[str, tuple[object, int]] = {}  # regular member -> (source, size) of its latest copy
        self.dirs: set[str] = set()  # folders with an entry of their own (others are implied by member names)
        self.symlinks: dict[str, str] = {}  # symbolic link -> its target text (its latest copy)
        self.hard: dict[str, tuple[str, object, int]] = {}  # accepted hard link -> (file, source, size)
        self.order: list[tuple[str, str, str]] = []  # (name, "symlink" | "hardlink", target text) in archive order
        self._hard_at: list[tuple[str, object, int]] = []  # what each hard link in ``order`` resolved to, in order
        self._names: list[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.order)

    def _refuse(self, kind: str, name: str, target: str, why: str) -> UnsafeArtifact:
        return UnsafeArtifact(f"{_short(self.label, 80)} has a {kind} {_short(name, 80)!r} -> {_short(target, 80)!r} "
                              f"that {why}; only links to regular files inside the artifact are accepted")

    def file(self, name: str, source: object, size: int) -> None:
        self.files[name] = (source, size)

    def folder(self, name: str) -> None:
        self.dirs.add(name)

    @staticmethod
    def _check_text(kind: str, name: str, target: str, refuse: Callable[[str, str, str, str], UnsafeArtifact]
                    ) -> str:
        if len(target) > MAX_NAME_BYTES // 4 and len(target.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise refuse(kind, name, target, f"is longer than {MAX_NAME_BYTES} bytes")
        if "\x00" in target:
            raise refuse(kind, name, target, "contains a NUL byte")
        if not target:
            raise refuse(kind, name, target, "is empty")
        text = target.replace("\\", "/")  # as entry names are read (normalize_name)
        if text.startswith("/") or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
            raise refuse(kind, name, target, "is an absolute path")
        return text

    def hardlink(self, name: str, target: str) -> tuple[str, object, int]:
        """Record a hard link; its target must be an earlier regular file (or accepted hard link)."""
        text = self._check_text("hardlink", name, target, self._refuse)
        try:
            path = normalize_name(text)  # an archive path, as member names are written
        except UnsafeArtifact:
            raise self._refuse("hardlink", name, target, "points outside the artifact") from None
        if path in self.files:
            source, size = self.files[path]
            got: tuple[str, object, int] = (path, source, size)
        elif path in self.hard:
            got = self.hard[path]
        else:
            raise self._refuse("hardlink", name, target, "does not name an earlier regular file of the artifact")
        self.hard[name] = got
        self.order.append((name, "hardlink", target))
        self._hard_at.append(got)
        self._names = None
        return got

    def symlink(self, name: str, target: str) -> None:
        """Record a symbolic link (resolved by :meth:`resolve`); absolute and malformed targets are refused now."""
        self._check_text("symlink", name, target, self._refuse)
        self.symlinks[name] = target
        self.order.append((name, "symlink", target))
        self._names = None

    def _is_dir(self, path: str) -> bool:
        """A folder of the artifact: the root, a folder entry, or a parent of any entry's name."""
        if path == "" or path in self.dirs:
            return True
        if self._names is None:
            self._names = sorted({*self.files, *self.symlinks, *self.hard, *self.dirs})
        import bisect

        prefix = path + "/"
        i = bisect.bisect_left(self._names, prefix)
        return i < len(self._names) and self._names[i].startswith(prefix)

    def _follow(self, name: str, target: str) -> tuple[str, object, int]:
        """The regular file symbolic link ``name`` -> ``target`` resolves to (lexically: as the kernel would,
        since a link to a folder is refused, no folder on the way can be a link)."""
        seen = {name}
        link, text = name, target
        for _ in range(MAX_LINK_HOPS):
            parts = link.split("/")[:-1]  # the link's own folder
            for comp in text.replace("\\", "/").split("/"):
                if comp == "..":
                    if not parts:
                        raise self._refuse("symlink", name, target, "points outside the artifact")
                    parts.pop()
                elif comp not in ("", "."):
                    parts.append(comp)
            path = "/".join(parts)
            wants_dir = text.endswith(("/", "/.", "/..")) or text in (".", "..")
            if not wants_dir and path in self.files:
                source, size = self.files[path]
                return path, source, size
            if not wants_dir and path in self.hard:
                return self.hard[path]
            if not wants_dir and path in self.symlinks:
                if path in seen:
                    raise self._refuse("symlink", name, target, "forms a cycle of links")
                seen.add(path)
                link, text = path, self.symlinks[path]
                continue
            if wants_dir or self._is_dir(path):
                raise self._refuse("symlink", name, target, "points to a folder, not a file")
            raise self._refuse("symlink", name, target, "points to no member of the artifact")
        raise self._refuse("symlink", name, target, f"goes through more than {MAX_LINK_HOPS} links")

    def resolve(self) -> list[tuple[str, str, object, int]]:
        """(link, file it stands for, that file's source, its size) for every link, in archive order."""
        out = []
        hard = iter(self._hard_at)
        for name, kind, target in self.order:
            path, source, size = next(hard) if kind == "hardlink" else self._follow(name, target)
            out.append((name, path, source, size))
        return out


# --------------------------------------------------------------------------------------------------- sources

def _is_uri(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


class _Source:
    """Where the bytes come from: a local path or an fsspec URI (file or prefix).

    Creating one reads no content: a local path is ``stat``-ed, a URI asked for its metadata once (``fs.info``).
    ``identity`` says which bytes these are without reading them (see :meth:`identity`). A URI's object is
    opened once and every reader gets its own position over that one handle (fsspec's block cache then serves
    re-reads of the first block), so one pass over an archive fetches it once.
    """

    def __init__(self, source: str | os.PathLike, storage_options: dict | None = None):
        self.label = str(source)
        self.fs = None
        self.path: str
        self.info: dict = {}
        self.stat: os.stat_result | None = None
        self._handle = None
        text = os.fspath(source)
        if isinstance(text, str) and text.startswith("file://"):
            text = text[len("file://"):]
        if isinstance(text, str) and _is_uri(text):
            try:
                import fsspec
            except ImportError:  # pragma: no cover
                raise ArtifactError(f"opening {text} needs fsspec: pip install fsspec") from None
            try:
                self.fs, self.path = fsspec.core.url_to_fs(text, **(storage_options or {}))
            except (ImportError, ValueError) as e:
                raise ArtifactError(f"cannot open {_short(text)}: {_short(e)}") from None
            except Exception as e:  # a file system that connects or opens its target when made (ftp, zip::...)
                raise ArtifactError(f"cannot open {_short(text)}: {type(e).__name__}: {_short(e)}") from None
            try:
                info = self.fs.info(self.path)
            except FileNotFoundError as e:
                cause = e.__cause__ or e.__context__  # fsspec's HTTP files say "not found" for any failed request
                if cause is not None and not isinstance(cause, FileNotFoundError) \
                        and getattr(cause, "status", None) not in (404, 410):
                    raise ArtifactError(f"{text} could not be fetched ({type(cause).__name__}: {cause})") from None
                raise NotAnArtifact(f"{text} does not exist") from None
            except Exception as e:  # network / credentials: one sentence
                raise ArtifactError(f"cannot reach {text}: {type(e).__name__}: {e}") from None
            self.info = dict(info)
            self.is_dir = info.get("type") == "directory"
            self.size = int(info.get("size") or 0)
        else:
            p = Path(text)
            try:
                st = p.stat()
            except FileNotFoundError:
                raise NotAnArtifact(f"{text} does not exist") from None
            except OSError as e:
                raise ArtifactError(f"cannot open {text}: {e.strerror or e}") from None
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                         (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))
                kind = next((name for test, name in kinds if test(st.st_mode)), "a special file")
                raise NotAnArtifact(f"{text} is not a regular file ({kind})")
            self.path = str(p)
            self.is_dir = stat.S_ISDIR(st.st_mode)
            self.stat = st
            self.size = 0 if self.is_dir else st.st_size

    def identity(self) -> str | None:
        """A key naming these exact bytes without reading them, or None when there is none.

        A local file: its device, inode, size and modification time in nanoseconds (a rewrite changes the
        modification time, a replacement the inode). A URI: the object's ETag or version id (S3 ``ETag`` /
        ``VersionId``, GCS ``generation``, HTTP ``ETag``) with its size; without one, None. Folders: None.
        """
        if self.is_dir:
            return None
        if self.fs is None:
            st = self.stat
            if st is None:  # pragma: no cover - a local file is always stat-ed (__init__)
                return None
            return f"local:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        tags = {k.lower().replace("_", ""): v for k, v in self.info.items()}
        found = [f"{k}={tags[k]}" for k in ("versionid", "generation", "etag") if tags.get(k) not in (None, "")]
        if not found:
            return None
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path}|{'|'.join(found)}|size={self.size}"

    def open(self) -> IO[bytes]:
        if self.fs is not None:
            if self._handle is None:
                # 8 MiB read-ahead blocks: a sequential pass fetches each byte once (fsspec's "bytes" cache trims
                # what it holds too eagerly and fetches some blocks twice); the size is known, which spares the
                # second metadata request some file systems make in open().
                try:
                    self._handle = self.fs.open(self.path, "rb", block_size=8 << 20, size=self.size,
                                                cache_type="readahead")
                except TypeError:
                    self._handle = self.fs.open(self.path, "rb", block_size=8 << 20)
            return _as_file(_View(self._handle, self.size))
        return open(self.path, "rb", buffering=0)

    def head(self, n: int = 1024) -> bytes:
        with self.open() as f:
            return f.read(n)

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None


class _View(io.RawIOBase):
    """A reader with its own position over a shared file handle (closing the view leaves the handle open).
    ``size`` is the handle's length, for seeks from the end (not every fsspec file has a ``size``: caching
    file systems hand out plain local files)."""

    def __init__(self, f, size: int | None = None):
        self._f, self._pos = f, 0
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            size = self._size if self._size is not None else getattr(self._f, "size", None)
            if size is None:
                size = self._f.seek(0, 2)
            self._pos = size + offset
        else:
            self._pos = offset if whence == 0 else self._pos + offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        self._f.seek(self._pos)
        data = self._f.read(n if n is not None else -1)
        self._pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


# --------------------------------------------------------------------------------------------------- inflate

class _Inflater(io.RawIOBase):
    """A read-only, forward-only decompressing stream with ratio/total caps and truncation detection.

    gzip goes through isal's ``IgzipDecompressor`` (RFC 1952 member by member: it checks each member's CRC-32 and
    ISIZE trailer and keeps its own input buffer, so no unconsumed input is copied between calls) when isal is
    installed, else through zlib's ``decompressobj`` with its ``unconsumed_tail``. Concatenated streams are read
    on, at most :data:`MAX_STREAMS` plus one per :data:`MIN_STREAM_BYTES` of output.
    """

    def __init__(self, raw: IO[bytes], kind: str, limits: Limits, label: str):
        self._raw = raw
        self._kind = kind
        self._limits = limits
        self._label = label
        self._zlib_tail = kind == "gzip" and _igzip_lib is None
        self._new_decoder()
        self._in = 0
        self._out = 0
        self._eof = False
        self._pending = b""
        self._streams = 1

    def _new_decoder(self):
        if self._kind == "gzip":
            self._d = (_igzip_lib.IgzipDecompressor(_igzip_lib.DECOMP_GZIP) if _igzip_lib is not None
                       else zlib.decompressobj(31))
        elif self._kind == "bzip2":
            self._d = bz2.BZ2Decompressor()
        else:
            self._d = lzma.LZMADecompressor()

    def readable(self) -> bool:
        return True

    def _decode(self, data: bytes, n: int) -> bytes:
        if self._zlib_tail:
            out = self._d.decompress(data, n)
            self._pending = self._d.unconsumed_tail
            return out
        out = self._d.decompress(data, n)
        self._pending = b""
        return out

    _MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}

    def _fill(self, want: int) -> bytes:
        """Produce up to ``want`` new bytes (possibly fewer); b'' only at a verified end of stream."""
        while True:
            if self._d.eof:
                rest = self._d.unused_data or self._raw.read(CHUNK)
                if rest is not self._d.unused_data:
                    self._in += len(rest)
                if rest.startswith(self._MAGIC[self._kind]):
                    self._streams += 1
                    if self._streams > MAX_STREAMS + self._out // MIN_STREAM_BYTES:
                        raise UnsafeArtifact(
                            f"{_short(self._label)} is made of more than {self._streams - 1} concatenated {self._kind} "
                            f"streams for {self._out} bytes of data; each costs a new decoder (a slow-down attack?)")
                    self._new_decoder()  # a concatenated (multi-member) stream continues
                    self._pending = rest
                else:  # end of data; like GNU tar, trailing padding after the stream is ignored
                    self._eof = True
                    return b""
            data = self._pending
            if not data and (self._zlib_tail or self._d.needs_input):
                data = self._raw.read(CHUNK)
                self._in += len(data)
                if not data:
                    raise CorruptArtifact(f"{_short(self._label)} is truncated: the compressed stream ends early")
            try:
                out = self._decode(data, min(want, PIECE))
            except Exception as e:  # zlib.error, isal's IsalError, OSError, EOFError, lzma.LZMAError
                raise CorruptArtifact(
                    f"{_short(self._label)} is not a valid {self._kind} stream ({_short(e)})") from None
            if out:
                self._out += len(out)
                lim = self._limits
                if self._out > lim.max_total_bytes:
                    raise UnsafeArtifact(f"{_short(self._label)} expands beyond the {lim.max_total_bytes}-byte limit")
                if lim.max_ratio and self._out > lim.ratio_floor and self._out > lim.max_ratio * max(self._in, 1):
                    raise UnsafeArtifact(_bomb(self._label, lim))
                return out

    def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        if n is None or n < 0:
            chunks: list[bytes] = []
            while True:
                c = self._fill(CHUNK)
                if not c:
                    return b"".join(chunks)
                chunks.append(c)
        return self._fill(n) if n else b""

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    @property
    def bytes_in(self) -> int:
        return self._in


class _ForwardFile(io.RawIOBase):
    """Gives ``tarfile`` a seekable-looking file over a forward-only stream (seeks skip ahead in big chunks).

    While :meth:`meter` is set, reads (not skips) are counted against it: that is how the header blocks read for
    one tar entry are capped, whatever record types ``tarfile`` chains together.
    """

    def __init__(self, stream: _Readable, label: str = "the archive"):
        self._s = stream
        self._pos = 0
        self.label = label
        self._meter: int | None = None

    def meter(self, budget: int | None) -> None:
        self._meter = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if self._meter is not None:
            if n is None or n < 0 or n > self._meter:
                raise UnsafeArtifact(f"{_short(self.label)} has an entry whose tar header records take more than "
                                     f"{MAX_ENTRY_HEADERS} bytes")
            self._meter -= n
        if n is None or n < 0:
            data = self._s.read()
        else:
            parts, left = [], n
            while left > 0:
                c = self._s.read(left)
                if not c:
                    break
                parts.append(c)
                left -= len(c)
            data = b"".join(parts)
        self._pos += len(data)
        return data

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes, at least one unless the stream ended: member data is read this way, so that no
        chunk is copied to make up an exact length."""
        data = self._s.read(n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self._pos + offset if whence == 1 else None
        if target is None or target < self._pos:
            raise io.UnsupportedOperation("the archive stream can only move forward")
        while self._pos < target:
            c = self._s.read(min(CHUNK, target - self._pos))
            if not c:
                break
            self._pos += len(c)
        return self._pos


class _SeekFile(_ForwardFile):
    """The same interface over a file that can be read at any offset (a plain tar on disk or behind fsspec):
    seeks move without reading, so ``tarfile`` goes from header to header over the member data."""

    def __init__(self, stream: IO[bytes], label: str = "the archive"):
        super().__init__(stream, label)
        self._file = stream

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._file.seek(offset, whence)
        return self._pos


class _TarData(NamedTuple):
    """Where a tar member's bytes are: its first header block and its data in the (uncompressed) tar stream."""

    offset: int
    data_offset: int
    size: int
    sparse: tarfile.TarInfo | None  # a sparse member's header (tarfile reads its map), else None


class _MemberData(io.RawIOBase):
    """The ``size`` bytes of a tar member stored at ``start`` of a :class:`_ForwardFile` / :class:`_SeekFile`
    (non-sparse members: the data follows the header block as it is). Reads may return fewer bytes than asked."""

    def __init__(self, f: _ForwardFile, start: int, size: int):
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        where = self._start + self._pos
        if self._f.tell() != where:
            self._f.seek(where)
        data = self._f.read_some(min(n, PIECE))
        self._pos += len(data)
        return data


_CHAINED = {tarfile.XHDTYPE: "pax extended", tarfile.SOLARIS_XHDTYPE: "pax extended",
            tarfile.GNUTYPE_LONGNAME: "GNU long-name", tarfile.GNUTYPE_LONGLINK: "GNU long-link"}
_PAX_SIZES = ("size", "GNU.sparse.size", "GNU.sparse.realsize")


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses oversized GNU long-name/long-link records and pax headers before ``tarfile`` reads them, and every
    header that ``tarfile`` and GNU tar (``tar -x``, which SageMaker runs) would read differently, so that the
    entries inspection audits are the files a container gets:

    - two records of one kind before one entry (two pax extended headers, two GNU long names or long links), or a
      pax extended header together with a GNU long name or link: ``tarfile`` takes the first, GNU tar the last;
    - a header without the POSIX magic ``ustar\\0`` (old GNU, v7) with bytes in the ustar ``prefix`` field
      (offset 345): ``tarfile`` prepends them to the name, GNU tar reads them as times (old GNU) or ignores them;
    - a damaged header block after the first (bad checksum or numbers): ``tarfile`` ends the archive there, GNU
      tar skips to the next valid header and extracts what follows;
    - a pax ``size`` (or ``GNU.sparse.size`` / ``realsize``) that is not a plain decimal number, which
      ``tarfile`` reads as 0 (or as Python's ``int()`` does: ``1_0``, ``+5``, spaces), and a negative size
      (base-256 numbers can be negative); where the next header starts then differs.

    ``_proc_member`` is the documented hook for subclasses (tarfile.py: "The entry point is _proc_member() which
    can be overridden in a subclass"); ``self.size`` is the record's length from its header block.
    """

    @classmethod
    def fromtarfile(cls, tarfile_):
        fileobj = tarfile_.fileobj
        label = _short(getattr(fileobj, "label", "the archive"))
        at = fileobj.tell()
        buf = fileobj.read(tarfile.BLOCKSIZE)
        try:
            obj = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
        except tarfile.InvalidHeaderError as e:
            if at == 0:  # not a tar at all: tarfile's own error says so
                raise
            raise CorruptArtifact(f"{label} has a damaged tar header at byte {at} ({_short(e)}); tar readers "
                                  "disagree on what follows it (GNU tar skips it and reads on)") from None
        if buf[345] and buf[257:263] != b"ustar\0" and obj.type not in tarfile.GNU_TYPES:
            raise UnsafeArtifact(f"{label} has a tar header at byte {at} that is not POSIX ustar but has a name "
                                 "prefix field, which tar readers read differently (the entry's name is ambiguous)")
        if obj.size < 0:
            raise CorruptArtifact(f"{label} has a tar header at byte {at} with a negative size")
        obj.offset = at
        return obj._proc_member(tarfile_)

    def _apply_pax_info(self, pax_headers, encoding, errors):
        for key in _PAX_SIZES:
            value = pax_headers.get(key)
            if value is not None and not (value.isascii() and value.isdigit()):
                raise CorruptArtifact(f"a pax header gives {key}={_short(value, 40)!r}, not a decimal number of "
                                      "bytes; tar readers disagree on where the next entry starts")
        super()._apply_pax_info(pax_headers, encoding, errors)

    def _proc_member(self, tarfile_):
        label = _short(getattr(tarfile_.fileobj, "label", "the archive"))
        kind = _CHAINED.get(self.type)
        if kind is not None:
            chain: list[str] = tarfile_.__dict__.setdefault("_chained", [])
            if kind in chain or (chain and "pax extended" in (kind, *chain)):
                raise UnsafeArtifact(f"{label} has an entry with a {chain[-1]} header followed by a {kind} header "
                                     f"(at byte {self.offset}); tar readers disagree on which one names it")
            chain.append(kind)
            try:
                return self._proc_checked(tarfile_, label)
            finally:
                chain.clear()
        return self._proc_checked(tarfile_, label)

    def _proc_checked(self, tarfile_, label):
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) and self.size > MAX_LONG_RECORD:
            what = "name" if self.type == tarfile.GNUTYPE_LONGNAME else "link"
            raise UnsafeArtifact(f"{label} has a GNU long-{what} record of {self.size} bytes "
                                 f"(at most {MAX_LONG_RECORD} are accepted)")
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > MAX_PAX_HEADER:
            raise UnsafeArtifact(f"{label} has a pax header of {self.size} bytes "
                                 f"(at most {MAX_PAX_HEADER} are accepted)")
        return super()._proc_member(tarfile_)


class _TarReader(tarfile.TarFile):
    """``tarfile``'s reader with :class:`_CheckedTarInfo` headers, keeping no list of the headers it read
    (``TarFile.next`` appends each to ``members``; a pass over 100,000 entries needs none of them again)."""

    tarinfo = _CheckedTarInfo
    members: list[tarfile.TarInfo]  # tarfile's own attribute (not in its stubs)

    def next(self) -> tarfile.TarInfo | None:
        ti = super().next()
        del self.members[:]
        if ti is not None and ti.size and not ti.isreg() and ti.type in tarfile.SUPPORTED_TYPES:
            # tarfile reads the next header right after a folder, link, device or FIFO header, GNU tar after the
            # data its size announces (for links, FIFOs, devices, and a '\0'-type name ending in '/'): bytes one
            # reader takes as data the other takes as entries
            raise UnsafeArtifact(f"{_short(getattr(self.fileobj, 'label', 'the archive'))} has a "
                                 f"{_TYPE_NAMES.get(ti.type, 'special')} entry {_short(ti.name)!r} that declares "
                                 f"{ti.size} bytes of data; tar readers disagree on where the next entry starts")
        return ti


# Everything tarfile lets escape from a damaged header besides its own errors: bad numbers and sparse maps give
# ValueError/IndexError/KeyError/OverflowError, undecodable pax records UnicodeError, chained records RecursionError.
_TAR_ERRORS = (tarfile.ReadError, tarfile.HeaderError, EOFError, ValueError, IndexError, KeyError, OverflowError,
               UnicodeError, RecursionError, struct.error, zlib.error)


# --------------------------------------------------------------------------------------------------- sniffing

def container_kind(head: bytes) -> str:
    """'gzip', 'bzip2', 'xz', 'zip', 'tar' or 'file' from the first bytes of a stream."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if _is_tar_header(head):
        return "tar"
    return "file"


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:  # v7 tar: no magic, but the header checksum must match
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
        return True
    except (tarfile.HeaderError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------- artifact

_TYPE_NAMES = {tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "device",
               tarfile.BLKTYPE: "device", tarfile.FIFOTYPE: "fifo", tarfile.DIRTYPE: "dir"}


class Artifact:
    """An opened artifact. Use :func:`open_artifact`.

    ``container`` is one of 'tar.gz', 'tar', 'tar.bz2', 'tar.xz', 'zip', 'directory', 'file', 'gzip-file'.
    ``digest`` is the SHA-256 computed by the last ``scan(..., digest=True)`` (the :meth:`fingerprint`), else None.
    """

    def __init__(self, source: str | os.PathLike | _Source, limits: Limits | None = None,
                 storage_options: dict | None = None):
        # Our own copy of the limits: it carries the budget of the current pass (see Limits).
        self.limits = limits.replace() if limits is not None else Limits.from_env()
        self.src = source if isinstance(source, _Source) else _Source(source, storage_options)
        self.label = self.src.label
        self.container: Container
        self.digest: str | None = None
        self._digest: _Digest | None = None  # the hash the current pass feeds
        self.extract_error: ArtifactError | None = None  # why the last scan(extract_to=...) stopped extracting
        self._members: list[Member] | None = None
        # (member, the bytes scan kept of it) of every copy a later, different copy of its name replaced
        self.replaced: list[tuple[Member, bytes]] = []
        self._tmpdirs: list[str] = []
        self._compression: str | None = None
        self._zip_dir: _ZipDirectory | None = None  # a zip's central directory, parsed once when it is recognised
        if self.src.is_dir:
            self.container = "directory"
            return
        if self.src.size == 0:
            raise NotAnArtifact(f"{_short(self.label)} is an empty file")
        head = self.src.head(1024)
        kind = container_kind(head)
        if kind in ("gzip", "bzip2", "xz"):
            with self.src.open() as raw:
                # (read until 1024 bytes came: one call returns at most one stream's bytes, and a multi-member
                # gzip's first member may hold a few bytes only)
                inner = _read_exact(_as_file(_Inflater(raw, kind, self.limits, self.label)), 1024)
            tar_kinds: dict[str, Container] = {"gzip": "tar.gz", "bzip2": "tar.bz2", "xz": "tar.xz"}
            if _is_tar_header(inner[:512]) or (len(inner) >= 512 and inner[:512] == b"\0" * 512):
                self.container = tar_kinds[kind]
            else:
                self.container = "gzip-file" if kind == "gzip" else "file"
        elif kind == "zip":
            if _is_tar_header(head[:512]):  # SageMaker's tar -x would unpack other files than a zip reader
                raise UnsafeArtifact(f"{_short(self.label)} is both a zip archive and a tar archive (a tar header "
                                     "whose name starts with a zip signature); readers disagree on its files")
            self.container = "file" if self._zip_is_one_model_file() else "zip"
        elif kind == "tar":
            self.container = "tar"
        else:
            self.container = "file"
        self._compression = kind if self.container.startswith("tar.") else None
        log.debug("%s: %s, %d bytes", self.label, self.container, self.src.size)

    def _zip_is_one_model_file(self) -> bool:
        """A torch.save / .keras file is a zip, but it is one model file, not an archive of an artifact's files."""
        from .sniff import zip_model_kind

        try:
            with self.src.open() as f:
                self._zip_dir = _read_zip_directory(f, self.label, self.limits)
        except ZIP_ERRORS:
            return False  # listing will report the damage
        return zip_model_kind([i.filename for i in self._zip_dir.infos]) is not None

    # ---------------------------------------------------------------- context / cleanup
    def __enter__(self) -> "Artifact":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for d in self._tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        self._tmpdirs.clear()
        self.src.close()

    def __repr__(self) -> str:
        return f"Artifact({self.label!r}, container={self.container!r})"

    @contextlib.contextmanager
    def _open_raw(self, buffered: bool = False) -> Iterator[IO[bytes]]:
        """The source's bytes; while a pass computes the digest, every byte read is also hashed (once)."""
        f = open(self.src.path, "rb") if buffered and self.src.fs is None else self.src.open()
        try:
            yield _as_file(_HashingFile(f, self._digest)) if self._digest is not None else f
        finally:
            f.close()

    # ---------------------------------------------------------------- streaming
    def iter_entries(self) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """Every entry in archive order with a stream of its bytes (files only), after the safety checks.

        Hostile entries raise UnsafeArtifact; junk entries are yielded with ``ignored=True``. Streams must be
        consumed (or abandoned) before advancing. Each pass starts a fresh budget (see :class:`Limits`). Links to
        regular members (tar and zip) come after the other entries as files with ``link`` set and the bytes of
        the member they point to (see the module docstring).
        """
        spent = _Spent(self.limits, self.label)
        self.limits._spent = spent  # nested archives opened with these limits report to this pass
        for member, stream in self._raw_entries(spent):
            if member.link is None:  # a link was counted when its header was read
                spent.member(member.name)
            if member.type in ("symlink", "hardlink", "device", "fifo", "other"):
                raise UnsafeArtifact(f"{_short(self.label)} contains a {member.type} entry ({_short(member.name)}); "
                                     "only regular files and folders are accepted")
            yield member, stream

    def _raw_entries(self, spent: _Spent) -> Iterator[tuple[Member, IO[bytes] | None]]:
        c = self.container
        if c.startswith("tar"):
            yield from self._tar_entries(spent)
        elif c == "zip":
            yield from self._zip_entries(spent)
        elif c == "directory":
            yield from self._dir_entries(spent)
        else:
            name = PurePosixPath(self.src.path.rstrip("/")).name or "artifact"
            spent.consume(self.src.size)
            spent.produce(self.src.size)
            with self._open_raw() as f:
                yield Member(name, self.src.size, ignored=False), f

    def _tar_entries(self, spent: _Spent):
        label = _short(self.label)
        with self._open_raw() as raw:
            f: _ForwardFile
            if self._compression:
                inflater = _Inflater(raw, self._compression, self.limits, self.label)
                f = _ForwardFile(inflater, self.label)
                spent._consumed_fn = lambda: inflater.bytes_in
            else:  # read at any offset: tarfile seeks from header to header
                f = _SeekFile(raw, self.label)
                spent._consumed_fn = f.tell
            try:
                f.meter(MAX_ENTRY_HEADERS)  # tarfile.open reads the first entry's headers
                tf = _TarReader.open(fileobj=f, mode="r:", ignore_zeros=False)
            except io.UnsupportedOperation:
                raise CorruptArtifact(f"{label} has an inconsistent tar layout") from None
            except _TAR_ERRORS as e:
                raise CorruptArtifact(f"{label} is not a readable tar archive ({_tar_error(e)})") from None
            finally:
                f.meter(None)
            total = 0
            links = _Links(self.label)
            resolved: list[tuple[str, str, object, int]] = []
            try:
                while True:
                    f.meter(MAX_ENTRY_HEADERS)
                    try:
                        ti = tf.next()
                    except io.UnsupportedOperation:
                        raise CorruptArtifact(f"{label} has an inconsistent tar layout") from None
                    except _TAR_ERRORS as e:
                        raise CorruptArtifact(f"{label} is truncated or damaged ({_tar_error(e)})") from None
                    finally:
                        f.meter(None)
                    if ti is None:
                        break
                    name = normalize_name(ti.name)
                    if ti.isreg():
                        mtype = "file"
                    else:
                        mtype = _TYPE_NAMES.get(ti.type, "other")
                    if name == "":
                        if mtype in ("dir",):
                            continue
                        raise UnsafeArtifact(f"{label} has an entry with an empty name")
                    if mtype in ("symlink", "hardlink"):  # held until the end (below): counted now
                        spent.member(name)
                        spent.name_bytes(len(ti.linkname))
                        if mtype == "symlink":
                            links.symlink(name, ti.linkname)
                            continue
                        target_size = links.hardlink(name, ti.linkname)[2]
                        total += target_size
                        if total > self.limits.max_total_bytes:
                            raise UnsafeArtifact(f"{label} holds more than {self.limits.max_total_bytes} bytes")
                        continue
                    m = Member(name, ti.size if mtype == "file" else 0, mtype, ignored=is_junk(name))
                    total += m.size
                    if total > self.limits.max_total_bytes:
                        raise UnsafeArtifact(f"{label} holds more than {self.limits.max_total_bytes} bytes")
                    if mtype != "file":
                        if mtype == "dir":
                            links.folder(name)
                        yield m, None
                        continue
                    src = _TarData(ti.offset, ti.offset_data, ti.size, ti if ti.sparse is not None else None)
                    links.file(name, src, ti.size)
                    stored = m.size
                    if ti.sparse is not None:  # holes come out as zeros without reading anything: count them now
                        stored = _sparse_stored(ti, self.label, name)
                        spent.produce(m.size - stored)

                    def member_stream(src: _TarData = src, name: str = name, stored: int = stored) -> _CountingReader:
                        return _CountingReader(_member_data(tf, f, src), src.size, self.label, name, spent, stored)

                    stream = member_stream()
                    if not self._compression:
                        stream.reopen = member_stream  # read again from the start (to compare duplicates)
                    yield m, _as_file(stream)
                if self._compression:  # read to the end so the stream's checksum and length are verified
                    while f.read(CHUNK):
                        pass
                if links:
                    resolved = self._check_links(links, total, spent)
                    if not self._compression:
                        for link, path, source, size in resolved:
                            assert isinstance(source, _TarData)

                            def link_stream(src: _TarData = source, link: str = link) -> _CountingReader:
                                return _CountingReader(_member_data(tf, f, src), src.size, self.label, link, spent)

                            stream = link_stream()
                            stream.reopen = link_stream
                            yield Member(link, size, ignored=is_junk(link), link=path), _as_file(stream)
            finally:
                tf.close()
        if links and self._compression:
            yield from self._tar_link_pass(resolved, spent)

    def _check_links(self, links: _Links, total: int, spent: _Spent) -> list[tuple[str, str, object, int]]:
        """Resolve the links of a pass (refusing the archive at the first bad one) and check, before any link is
        read, what they add: the archive's declared total against the byte cap and against the ratio cap."""
        resolved = links.resolve()
        total += sum(r[3] for (_, kind, _), r in zip(links.order, resolved) if kind == "symlink")  # hard: counted
        # What the archive's bytes came to: from here on, links read members again, which reads no new bytes.
        consumed = spent.consumed
        spent._consumed_fn = lambda: consumed
        _check_declared(total, consumed, self.label, self.limits)
        return resolved

    def _tar_link_pass(self, resolved: list[tuple[str, str, object, int]], spent: _Spent
                       ) -> Iterator[tuple[Member, IO[bytes] | None]]:
        """The links of a compressed tar, read in a second pass over the archive: each one when its target's
        data comes by (a target several links share is copied once to a temporary spool)."""
        import tempfile

        label = _short(self.label)
        wanted: dict[int, list[tuple[str, str, int]]] = {}
        for link, path, source, size in resolved:
            assert isinstance(source, _TarData)
            wanted.setdefault(source.offset, []).append((link, path, size))
        changed = CorruptArtifact(f"{label} changed while it was being read")
        with self.src.open() as raw:
            assert self._compression is not None
            f = _ForwardFile(_Inflater(raw, self._compression, self.limits, self.label), self.label)
            try:
                f.meter(MAX_ENTRY_HEADERS)
                tf = _TarReader.open(fileobj=f, mode="r:", ignore_zeros=False)
            except (io.UnsupportedOperation, *_TAR_ERRORS):
                raise changed from None
            finally:
                f.meter(None)
            try:
                while wanted:
                    f.meter(MAX_ENTRY_HEADERS)
                    try:
                        ti = tf.next()
                    except (io.UnsupportedOperation, *_TAR_ERRORS):
                        raise changed from None
                    finally:
                        f.meter(None)
                    if ti is None:
                        raise changed
                    group = wanted.pop(ti.offset, None)
                    if group is None:
                        continue
                    path, size = group[0][1], group[0][2]
                    if not ti.isreg() or ti.size != size or normalize_name(ti.name) != path:
                        raise changed
                    data = _member_data(tf, f, _TarData(ti.offset, ti.offset_data, ti.size,
                                                        ti if ti.sparse is not None else None))
                    if len(group) == 1:
                        link = group[0][0]
                        yield (Member(link, size, ignored=is_junk(link), link=path),
                               _as_file(_CountingReader(data, size, self.label, link, spent)))
                        continue
                    with tempfile.SpooledTemporaryFile(max_size=16 << 20, prefix="artifact-tools-link-") as spool:
                        reader = _CountingReader(data, size, self.label, path)  # checks the size, counts nothing
                        while chunk := reader.read(PIECE):
                            spool.write(chunk)
                        for link, path, size in group:
                            yield (Member(link, size, ignored=is_junk(link), link=path),
                                   _as_file(_CountingReader(_View(spool), size, self.label, link, spent)))
            finally:
                tf.close()

    def _zip_entries(self, spent: _Spent):
        with self._open_raw(buffered=True) as f:
            yield from zip_entries(f, self.label, self.limits, spent, directory=self._zip_dir)

    def _dir_entries(self, spent: _Spent):
        def counted(size: int) -> None:  # a folder's files come out as they are: read and produced alike
            spent.consume(size)
            spent.produce(size)

        if self.src.fs is not None:
            fs, top = self.src.fs, self.src.path.rstrip("/")

            def remote(what: str, call: Callable, *args):
                try:
                    return call(*args)
                except Exception as e:  # network, credentials, a file system that cannot list its root
                    raise ArtifactError(f"cannot {what} {_short(self.label)}: {type(e).__name__}: {_short(e)}") \
                        from None

            for path in sorted(remote("list", fs.find, top)):
                rel = normalize_name(path[len(top):].lstrip("/"))
                size = int(remote("read", fs.info, path).get("size") or 0)
                counted(size)
                with remote("read", fs.open, path, "rb") as f:
                    yield Member(rel, size, ignored=is_junk(rel)), f
            return
        root = Path(self.src.path)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            base = Path(dirpath)
            for d in list(dirnames):
                p = base / d
                if p.is_symlink():
                    yield Member(p.relative_to(root).as_posix(), 0, "symlink"), None
            rel_dir = base.relative_to(root).as_posix()
            if rel_dir != ".":
                yield Member(rel_dir, 0, "dir"), None
            prefix = "" if rel_dir == "." else rel_dir + "/"
            for fn in sorted(filenames):  # (string paths: a folder may hold 100,000 files)
                path = os.path.join(dirpath, fn)
                rel = prefix + fn
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    yield Member(rel, 0, "symlink"), None
                elif not stat.S_ISREG(st.st_mode):
                    yield Member(rel, 0, "fifo" if stat.S_ISFIFO(st.st_mode) else "device"), None
                elif not st.st_size:  # nothing to read: no open and close (a folder may hold 100,000 empty files)
                    yield Member(rel, 0, ignored=is_junk(rel)), io.BytesIO(b"")
                else:
                    counted(st.st_size)
                    with open(path, "rb") as f:
                        yield Member(rel, st.st_size, ignored=is_junk(rel)), f

    # ---------------------------------------------------------------- listing
    def members(self) -> list[Member]:
        """All entries (files and folders), duplicates folded into one entry with ``duplicates`` counted."""
        if self._members is None:
            self.scan(lambda m, head: 0)
        return list(self._members or [])

    def scan(self, keep: Callable[[Member, bytes], int], *, extract_to: str | os.PathLike | None = None,
             digest: bool = False) -> dict[str, bytes]:
        """One pass: list every entry, and keep the first ``keep(member, head)`` bytes of each file.

        ``head`` is the first 64 KiB (less for smaller files). Where the container can be read at any offset (a
        plain tar, a zip, a folder, a loose file) only the head and the kept bytes of a member are read; a member
        whose head or kept bytes reach its declared end is read to the end (its size, and a zip entry's CRC-32,
        are checked). A compressed tar is read from start to end once.

        ``extract_to``: every file (junk excepted) is also written under this folder in the same pass, with the
        checks of :func:`extract_entries`. A refusal of extraction does not stop the listing (whose own refusals
        come first, as when listing and extracting are two passes): it is left in ``self.extract_error`` and
        extraction stops there. The caller removes the folder when it is incomplete or this raises. ``digest``: the
        SHA-256 of the artifact (:meth:`fingerprint`) is computed from the bytes this pass reads (the rest of the
        file, if any, is read at the end) and left in ``self.digest``.

        Identical duplicates are folded (compared by size + CRC-32; a copy not read whole is read again for
        that; extraction compares bytes). Differing duplicates are counted in ``conflicts`` and the last copy is
        kept, which is what ``tar -x`` (and so SageMaker) would leave on disk; extraction refuses them. What was
        kept of each earlier copy is left in ``self.replaced`` (names that differ only in spelling, ``./a`` and
        ``a`` or ``a\\b`` and ``a/b``, are one name here but may be two files to another reader, so every copy
        is audited).
        """
        kept: dict[str, bytes] = {}
        self.replaced = []
        listing: dict[str, Member] = {}
        reopen: dict[str, Callable[[], _Readable] | None] = {}
        crc = _fast_zlib.crc32
        extractor = _Extractor(Path(extract_to), self.limits, self.label) if extract_to is not None else None
        self.extract_error = None
        random_access = self._compression is None
        folder_hash = _sha256() if digest and self.container == "directory" else None
        self.digest = None
        self._digest = _Digest() if digest and folder_hash is None else None
        what = "extracting" if extractor is not None else "reading"
        try:
            with task(f"{what} {_short(self.label, 60)}", total=self.src.size or None, unit="bytes") as advance:
                shown = 0

                def progress() -> None:
                    nonlocal shown
                    spent = self.limits._spent  # this pass's (set when iter_entries starts)
                    now = spent.consumed if spent is not None else 0
                    if now > shown:
                        advance(now - shown)
                        shown = now

                for m, stream in self.iter_entries():
                    if stream is None:
                        if m.name in listing and listing[m.name].type != m.type and m.type != "dir":
                            raise UnsafeArtifact(
                                f"{_short(self.label)} lists {_short(m.name)} both as a folder and as a file")
                        if extractor is not None and m.type == "dir" and not m.ignored:
                            try:
                                extractor.folder(m)
                            except ArtifactError as e:
                                self.extract_error, extractor = e, None
                        listing.setdefault(m.name, m)
                        continue
                    head = _read_exact(stream, min(HEAD, m.size) if m.size else HEAD)
                    want = keep(m, head) if not m.ignored else 0
                    sink = None
                    if extractor is not None and not m.ignored:
                        try:
                            sink = extractor.file(m)
                        except ArtifactError as e:
                            self.extract_error, extractor = e, None
                    h = folder_hash if folder_hash is not None and not m.ignored else None
                    whole = (not random_access or sink is not None or h is not None
                             or len(head) >= m.size or want >= m.size)
                    try:
                        if h is not None:
                            h.update(m.name.encode() + b"\0")
                            h.update(head)
                        if sink is not None:
                            sink = self._sink_write(sink, head)
                        c = crc(head)
                        parts = [head] if want > len(head) else None
                        got = len(head)
                        while whole or got < want:
                            chunk = stream.read(PIECE if whole else min(PIECE, want - got))
                            if not chunk:
                                break
                            c = crc(chunk, c)
                            if sink is not None:
                                sink = self._sink_write(sink, chunk)
                            if h is not None:
                                h.update(chunk)
                            if parts is not None and got < want:
                                parts.append(chunk[: want - got])
                            got += len(chunk)
                            progress()
                    except BaseException:
                        if sink is not None:
                            sink.abort()
                        raise
                    if sink is not None:
                        try:
                            sink.close()
                        except ArtifactError as e:
                            self.extract_error = e
                    if self.extract_error is not None:
                        extractor = None
                    progress()
                    if whole:
                        if got < m.size:  # the stream ended inside the member: a truncated archive
                            raise CorruptArtifact(
                                f"{_short(self.label)} is truncated: {_short(m.name)} should hold {m.size} bytes "
                                f"but the archive ends after {got}")
                        m.size, m.crc32 = got, c
                    prev = listing.get(m.name)
                    if prev is not None:
                        if prev.type != "file":
                            raise UnsafeArtifact(
                                f"{_short(self.label)} lists {_short(m.name)} both as a folder and as a file")
                        if prev.size == m.size:
                            was = _whole_crc(prev, reopen.get(m.name))
                            if was is not None and was == _whole_crc(m, getattr(stream, "reopen", None)):
                                prev.duplicates += 1
                                continue
                        m.duplicates, m.conflicts = prev.duplicates, prev.conflicts + 1
                        earlier = kept.pop(m.name, None)
                        if earlier is not None:  # still audited: tar readers need not agree on which copy wins
                            self.replaced.append((prev, earlier))
                    listing[m.name] = m
                    reopen[m.name] = None if m.crc32 is not None else getattr(stream, "reopen", None)
                    if want:
                        kept[m.name] = b"".join(parts) if parts is not None else head[:want]
                if folder_hash is not None:
                    self.digest = folder_hash.hexdigest()
                elif self._digest is not None:
                    self.digest = self._digest.finish(self.src)
        finally:
            if self._digest is not None:
                self._digest.cancel()
                self._digest = None
        self._members = list(listing.values())
        log.info("%s: %d entries listed, %d bytes of the source read", self.label, len(self._members),
                 self.limits._spent.consumed if self.limits._spent is not None else 0)
        return kept

    def _sink_write(self, sink, data: bytes):
        """Write to an extraction sink; on a refusal, keep it in ``extract_error`` and stop extracting."""
        try:
            sink.write(data)
            return sink
        except ArtifactError as e:
            sink.abort()
            self.extract_error = e
            return None

    @property
    def root_prefix(self) -> str:
        """A single extra top-level folder holding everything (e.g. ``tfs-test-model``), else ''."""
        files = [m.name for m in self.members() if m.is_file and not m.ignored]
        return common_root(files)

    # ---------------------------------------------------------------- extraction
    def extract(self, dest: str | os.PathLike | None = None) -> Path:
        """Extract into ``dest`` (created, must be empty) or a fresh temp dir; return it.

        A local folder without ``dest`` is returned as it is, once its entries passed the checks."""
        if self.container == "directory" and self.src.fs is None and dest is None:
            for _entry in self.iter_entries():  # refuses links/devices inside the folder
                pass
            return Path(self.src.path)
        if dest is None:
            import tempfile

            out = Path(tempfile.mkdtemp(prefix="artifact-tools-"))
            self._tmpdirs.append(str(out))
        else:
            out = Path(dest)
            out.mkdir(parents=True, exist_ok=True)
            if any(out.iterdir()):
                raise ArtifactError(f"extraction folder {_short(out)} is not empty")
        try:
            with task(f"extracting {_short(self.label, 60)}", total=None, unit="files") as advance:
                def counted():
                    for entry in self.iter_entries():
                        yield entry
                        advance(1)

                extract_entries(counted(), out, self.limits, self.label)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the artifact's bytes (of every file's path and bytes for a folder)."""
        h = _sha256()
        if self.container == "directory":
            for m, stream in self.iter_entries():
                if stream is not None and not m.ignored:
                    h.update(m.name.encode() + b"\0")
                    while chunk := stream.read(CHUNK):
                        h.update(chunk)
            return h.hexdigest()
        with self.src.open() as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    """``n`` bytes of ``stream`` (fewer only at its end): member readers may return short reads."""
    data = stream.read(n)
    if len(data) >= n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _whole_crc(m: Member, reopen: Callable[[], _Readable] | None) -> int | None:
    """The member's CRC-32, reading it again from the start when the pass did not read it whole (a duplicate
    name in a container read by seeking); None when it cannot be read again."""
    if m.crc32 is not None:
        return m.crc32
    if reopen is None:
        return None
    stream, c, got = reopen(), 0, 0
    while chunk := stream.read(CHUNK):
        c = _fast_zlib.crc32(chunk, c)
        got += len(chunk)
    m.size, m.crc32 = got, c
    return c


_DIGEST_PIECE = 64 << 10


class _Digest:
    """SHA-256 of a byte stream fed in order, computed on a helper thread (hashlib releases the GIL while it
    hashes large buffers, so hashing overlaps inflating). At most 16 chunks wait in its queue. The thread only
    ever sees bytes objects, never a file, so nothing the caller opens or closes can break it.

    ``mark`` is how many leading bytes of the source have been hashed.
    """

    def __init__(self) -> None:
        import queue

        self._h = _sha256()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._t = threading.Thread(target=self._run, name="artifact-tools-digest", daemon=True)
        self._t.start()
        self._done = False
        self._small = bytearray()  # pieces smaller than _DIGEST_PIECE not yet handed to the thread
        self.mark = 0

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            self._h.update(item)

    def update(self, data: bytes) -> None:
        # small pieces (headers, tiny members) are gathered into one chunk: a queue hand-off costs more than
        # hashing a few bytes, and an archive of 100,000 tiny members reads 200,000 pieces
        if len(data) >= _DIGEST_PIECE:
            if self._small:
                self._q.put(bytes(self._small))
                self._small.clear()
            self._q.put(data)
        elif data:
            self._small += data
            if len(self._small) >= _DIGEST_PIECE:
                self._q.put(bytes(self._small))
                self._small.clear()

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            if self._small:
                self._q.put(bytes(self._small))
                self._small.clear()
            self._q.put(None)
            self._t.join()

    def finish(self, src: _Source) -> str:
        """Hash whatever the pass did not read (from ``mark`` to the end of the source) and return the digest."""
        if self.mark < src.size:
            with src.open() as f:
                f.seek(self.mark)
                while chunk := f.read(CHUNK):
                    self.update(chunk)
                    self.mark += len(chunk)
        self.cancel()
        return self._h.hexdigest()


class _HashingFile(io.RawIOBase):
    """A file whose bytes are fed to a :class:`_Digest` in order as they are read, each byte once: a read just
    ahead of what was hashed (at most 1 MiB: tar padding skipped by a seek) first hashes the gap; a read further
    ahead (a zip's central directory, read first at the end of the file) or behind feeds nothing, and the pass
    goes on hashing from where it stopped; :meth:`_Digest.finish` reads whatever no read reached."""

    def __init__(self, f: IO[bytes], digest: _Digest):
        self._f, self._d = f, digest
        self._pos = f.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def _fill(self, upto: int) -> None:
        d = self._d
        self._f.seek(d.mark)
        while d.mark < upto:
            chunk = self._f.read(min(CHUNK, upto - d.mark))
            if not chunk:
                break
            d.update(chunk)
            d.mark += len(chunk)
        self._f.seek(self._pos)

    def read(self, n: int = -1) -> bytes:
        d = self._d
        if d.mark < self._pos <= d.mark + CHUNK:
            self._fill(self._pos)
        data = self._f.read(n if n is not None else -1)
        end = self._pos + len(data)
        if end > d.mark >= self._pos:
            d.update(data if d.mark == self._pos else data[d.mark - self._pos:])
            d.mark = end
        self._pos = end
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _CountingReader(io.RawIOBase):
    """Reads one tar member, checks that exactly the declared number of bytes arrive, and reports the first
    ``stored`` of them to the budget (a sparse member's holes were counted when its header was read).

    ``read(n)`` may return fewer than ``n`` bytes (at least one before the end); ``read()`` returns the rest."""

    reopen: "Callable[[], _CountingReader] | None" = None  # reads the same bytes again from the start

    def __init__(self, f: _Readable, size: int, label: str, name: str, spent: _Spent | None = None,
                 stored: int | None = None):
        self._f, self._left, self._label, self._name = f, size, label, name
        self._spent = spent
        self._uncounted = size if stored is None else stored

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self._read(self._left):
                parts.append(chunk)
            return b"".join(parts)
        return self._read(n)

    def readinto(self, b) -> int:
        data = self._read(len(b))
        b[: len(data)] = data
        return len(data)

    def _read(self, n: int) -> bytes:
        if self._left <= 0:
            return b""
        n = min(n, self._left)
        try:
            data = self._f.read(n)
        except io.UnsupportedOperation:
            raise CorruptArtifact(f"{_short(self._label)} has an inconsistent tar layout in "
                                  f"{_short(self._name)}") from None
        except (tarfile.ReadError, EOFError, OSError) as e:
            raise CorruptArtifact(f"{_short(self._label)} is truncated inside {_short(self._name)} "
                                  f"({_short(e)})") from None
        if not data:
            raise CorruptArtifact(f"{_short(self._label)} is truncated inside {_short(self._name)}")
        self._left -= len(data)
        if self._spent is not None and self._uncounted > 0:
            n_count = min(len(data), self._uncounted)
            self._uncounted -= n_count
            self._spent.produce(n_count)
        return data


def _member_data(tf: _TarReader, f: _ForwardFile, src: _TarData) -> _Readable:
    """A tar member's bytes: a sparse member's through ``tarfile`` (which expands its holes), any other's straight
    from the file, where they follow its header as they are."""
    if src.sparse is not None:
        data = tf.extractfile(src.sparse)
        if data is None:  # pragma: no cover - only regular members are passed here
            raise CorruptArtifact(f"{_short(getattr(f, 'label', 'the archive'))} has an unreadable sparse member")
        return data
    return _MemberData(f, src.data_offset, src.size)


def _sparse_stored(ti: tarfile.TarInfo, label: str, name: str) -> int:
    """Bytes a sparse member really stores, after checking its map: chunks in order, inside the real size."""
    end, stored = 0, 0
    # tarfile sets ``sparse`` to a list of (offset, size) pairs (its stubs say bytes)
    for offset, numbytes in cast("list[tuple[int, int]]", ti.sparse):
        if numbytes == 0:  # GNU tar's empty slots and its (real size, 0) end marker
            continue
        if offset < end or numbytes < 0 or offset + numbytes > ti.size:
            raise CorruptArtifact(f"{_short(label)}: the sparse map of {_short(name)} is inconsistent")
        end = offset + numbytes
        stored += numbytes
    return stored


def _check_declared(total: int, size: int, label: str, lim: Limits) -> None:
    """What an archive's entries declare together (links counted at their target's size) against the byte cap,
    and against the ratio cap for an archive of ``size`` bytes: refused before the entries are read."""
    if total > lim.max_total_bytes:
        raise UnsafeArtifact(f"{_short(label)} holds more than {lim.max_total_bytes} bytes")
    if lim.max_ratio and total > lim.ratio_floor and total > lim.max_ratio * max(size, 1):
        raise UnsafeArtifact(_bomb(label, lim))


def _tar_error(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "too many chained header records"
    return _short(e) or type(e).__name__


# --------------------------------------------------------------------------------------------------- zip

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (APPNOTE 4.3.16)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (APPNOTE 4.3.14)
_CDH = struct.Struct("<4s6H3L5H2L")  # central directory file header, fixed part (APPNOTE 4.3.12)


def _check_central_directory(f: IO[bytes], size: int, label: str, limits: Limits) -> None:
    """Count the central directory's entries and name bytes before ``zipfile`` builds an object per entry.

    Only the caps are checked here; a malformed directory is left for ``zipfile`` to report.
    """
    for most in (_EOCD.size + 20 + _EOCD64.size + 1024, _EOCD.size + 0xFFFF + 20 + _EOCD64.size):
        tail_len = min(size, most)  # most zips have no archive comment: a short tail first, the longest one after
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        i = tail.rfind(b"PK\x05\x06")
        if i >= 0 and len(tail) - i >= _EOCD.size and (i >= 20 + _EOCD64.size or tail_len == size):
            break  # (with room before it for the zip64 records)
        if tail_len == size:
            return
    else:
        return
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, i)
    end = size - tail_len + i  # where the central directory must end (it is followed by the end records)
    if (count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF) and i >= 20 + _EOCD64.size \
            and tail[i - 20:i - 16] == b"PK\x06\x07":
        rec = tail[i - 20 - _EOCD64.size:i - 20]
        if rec[:4] == b"PK\x06\x06":
            count, cd_size = _EOCD64.unpack(rec)[7:9]
            end -= 20 + _EOCD64.size
    if count > limits.max_members:
        raise UnsafeArtifact(f"{_short(label)} has more than {limits.max_members} entries")
    start = end - cd_size
    if start < 0 or cd_size < 0:
        return
    f.seek(start)
    n = names = 0
    buf, pos, left = b"", 0, cd_size
    while True:
        if len(buf) - pos < _CDH.size:
            more = f.read(min(CHUNK, left)) if left > 0 else b""
            left -= len(more)
            buf, pos = buf[pos:] + more, 0
            if len(buf) < _CDH.size:
                return
        if buf[pos:pos + 4] != b"PK\x01\x02":
            return
        fields = _CDH.unpack_from(buf, pos)
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        n += 1
        names += name_len
        if n > limits.max_members:
            raise UnsafeArtifact(f"{_short(label)} has more than {limits.max_members} entries")
        if names > MAX_NAMES_TOTAL:
            raise UnsafeArtifact(f"the entry names of {_short(label)} take more than {MAX_NAMES_TOTAL} bytes")
        skip = _CDH.size + name_len + extra_len + comment_len
        if pos + skip <= len(buf):
            pos += skip
        else:  # the record runs past what is buffered: jump over its rest
            jump = pos + skip - len(buf)
            if jump > left:
                return
            f.seek(jump, 1)
            left -= jump
            buf, pos = b"", 0


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    """The entry's name as the central directory stores it (UTF-8 with flag bit 11, else code page 437)."""
    try:
        return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    except UnicodeError:
        return b""


class _ZipDirectory(NamedTuple):
    """A zip's central directory as ``zipfile`` parsed it: the entries, where zipfile found the directory, where
    the end record says it is (None without an end record), and the file's size."""
    infos: list[zipfile.ZipInfo]
    start_dir: int
    recorded_start: int | None
    size: int


def _read_zip_directory(f: IO[bytes], label: str, limits: Limits) -> _ZipDirectory:
    """The central directory (caps checked first, see :func:`_check_central_directory`); raises what ``zipfile``
    raises (:data:`ZIP_ERRORS`) on a damaged one."""
    size = f.seek(0, 2)
    _check_central_directory(f, size, label, limits)
    zf = zipfile.ZipFile(f)
    end = cast(Any, zipfile)._EndRecData(f)  # the end record zipfile used (private, long stable)
    return _ZipDirectory(zf.infolist(), zf.start_dir, None if end is None else end[cast(Any, zipfile)._ECD_OFFSET],
                         size)


class _ZipArchive:
    """A zip's central directory, read with the caps above and checked for overlapping entries, for a central
    directory that is not where the end record says, and (in :meth:`open`) for a local header naming its entry
    otherwise than the central directory: where zip readers would see different entries, the zip is refused.

    Entries must not share bytes (APPNOTE 4.3.6: local header, then the entry's data, one entry after another).
    The check runs twice: here with the local headers' smallest possible extent (30 bytes + the name; the local
    extra field is unknown until read), and exactly in :meth:`open`, before the entry's data is read.
    """

    def __init__(self, f: IO[bytes], label: str, limits: Limits, spent: _Spent,
                 directory: _ZipDirectory | None = None):
        """``directory``: the same file's central directory, already read (the file is not parsed again)."""
        self.f, self.label, self.limits, self.spent = f, label, limits, spent
        if directory is None:
            try:
                directory = _read_zip_directory(f, label, limits)
            except ZIP_ERRORS as e:
                raise CorruptArtifact(f"{_short(label)} is not a readable zip archive ({_short(e)})") from None
        self.infos, start_dir, recorded, self.size = directory
        if recorded is not None and start_dir != recorded:
            # zipfile reads the central directory just before the end record and shifts every offset by the
            # difference ("concat", for data prepended to the zip); readers that take the recorded offset as it
            # is (torch's miniz) then read another directory, with other entries
            raise CorruptArtifact(f"{_short(label)}: its central directory is not at the offset its end record "
                                  "gives (data before the archive, or a second directory); zip readers disagree on "
                                  "its entries")
        if len(self.infos) > limits.max_members:
            raise UnsafeArtifact(f"{_short(label)} has more than {limits.max_members} entries")
        order = sorted(self.infos, key=lambda i: i.header_offset)
        self._limit: dict[int, int] = {}  # id(info) -> offset where its bytes must end
        self._raw: dict[int, bytes] = {}  # id(info) -> its name's bytes in the central directory
        for k, info in enumerate(order):
            nxt = order[k + 1].header_offset if k + 1 < len(order) else start_dir
            raw = self._raw[id(info)] = _raw_name(info)
            if info.header_offset < 0 or info.header_offset + 30 + len(raw) + info.compress_size > nxt:
                self._overlap(info)
            self._limit[id(info)] = nxt

    def _overlap(self, info: zipfile.ZipInfo) -> NoReturn:
        # CorruptArtifact: overlapping entries break the format whatever the intent (one flipped size does it).
        raise CorruptArtifact(f"{_short(self.label)}: zip entry {_short(info.filename)} overlaps another entry or "
                              "the central directory (a damaged archive, or a zip bomb)")

    def open(self, info: zipfile.ZipInfo, name: str) -> "_ZipEntryReader":
        label = _short(self.label)
        if info.flag_bits & 0x1:
            raise UnsafeArtifact(f"{label}: {_short(name)} is encrypted")
        try:
            self.f.seek(info.header_offset)
            head = self.f.read(30)
        except ZIP_ERRORS as e:
            raise CorruptArtifact(f"{label}: {_short(name)} cannot be read ({_short(e)})") from None
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise CorruptArtifact(f"{label}: {_short(name)} has no local header where the central directory says")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.compress_size > self._limit[id(info)]:
            self._overlap(info)
        raw = self._raw[id(info)]
        if name_len != len(raw) or self.f.read(name_len) != raw:
            # zipfile refuses this too ("File name in directory ... and header ... differ"); readers that stream
            # local headers (bsdtar, Java's ZipInputStream) would name the entry differently
            raise CorruptArtifact(f"{label}: {_short(name)} has another name in its local header than in the "
                                  "central directory")
        self.spent.consume(30 + name_len + extra_len)
        return _ZipEntryReader(self.f, start, info, self.label, name, self.limits, self.spent)


class _ZipEntryReader(io.RawIOBase):
    """One zip entry inflated in bounded steps (stored, deflate, bzip2, LZMA), whatever its headers claim.

    Every call decompresses at most what it returns; the output is counted against the entry's own ratio and the
    archive's budget, must not exceed the declared size, and must match the declared size and CRC-32 at the end.
    zipfile's own reader trusts the declared size and inflates bzip2/LZMA data in unbounded steps.
    """

    reopen: "Callable[[], _ZipEntryReader] | None" = None  # reads the same bytes again from the start

    def __init__(self, f: IO[bytes], start: int, info: zipfile.ZipInfo, label: str, name: str, limits: Limits,
                 spent: _Spent):
        self._f, self._pos, self._left_in = f, start, info.compress_size
        self._info, self._label, self._name, self._limits, self._spent = info, label, name, limits, spent
        self._out = 0
        self._crc = 0
        self._pending = b""
        self._done = False
        self._step = HEAD  # compressed bytes read at a time: 64 KiB first (a head needs little), then doubling
        method = info.compress_type
        # deflate: the standard zlib (decompress(data, max_length) is bounded, flush() is not); bzip2 and LZMA:
        # decompressors with needs_input; stored: neither
        self._inflate = zlib.decompressobj(-15) if method == zipfile.ZIP_DEFLATED else None
        self._d: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if method == zipfile.ZIP_BZIP2:
            self._d = bz2.BZ2Decompressor()
        elif method == zipfile.ZIP_LZMA:
            self._d = self._lzma()
        elif method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptArtifact(f"{_short(label)}: {_short(name)} uses zip compression method {method}, "
                                  "which cannot be read")

    def _lzma(self) -> lzma.LZMADecompressor:
        """APPNOTE 5.8.8: 2-byte LZMA SDK version, 2-byte properties size, then the LZMA1 properties (one byte
        ``(pb * 5 + lp) * 9 + lc`` and a 4-byte dictionary size, lzma-specification.txt), then raw LZMA1 data."""
        head = self._raw(4)
        if len(head) < 4:
            self._corrupt("its LZMA header is truncated")
        props_len = struct.unpack("<H", head[2:4])[0]
        props = self._raw(props_len)
        if props_len != 5 or len(props) != 5 or props[0] >= 9 * 5 * 5:
            self._corrupt("its LZMA properties are invalid")
        d, dict_size = props[0], struct.unpack("<I", props[1:5])[0]
        filt = {"id": lzma.FILTER_LZMA1, "lc": d % 9, "lp": (d // 9) % 5, "pb": d // 45, "dict_size": dict_size}
        try:
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        except (lzma.LZMAError, ValueError) as e:
            self._corrupt(f"its LZMA properties are invalid ({_short(e)})")

    def _corrupt(self, what: str) -> NoReturn:
        raise CorruptArtifact(f"{_short(self._label)}: {_short(self._name)} is damaged: {what}")

    def readable(self) -> bool:
        return True

    def _raw(self, n: int) -> bytes:
        n = min(n, self._left_in)
        if n <= 0:
            return b""
        try:
            self._f.seek(self._pos)
            data = self._f.read(n)
        except ZIP_ERRORS as e:
            raise CorruptArtifact(f"{_short(self._label)}: {_short(self._name)} cannot be read ({_short(e)})") from None
        if not data:
            self._corrupt("the archive ends inside it")
        self._pos += len(data)
        self._left_in -= len(data)
        self._spent.consume(len(data))
        return data

    def _next_step(self) -> int:
        step = self._step
        self._step = min(step * 2, CHUNK)
        return step

    def _decode(self, want: int) -> bytes:
        """Up to ``want`` new bytes; b'' when the entry's data is used up."""
        z, d = self._inflate, self._d
        try:
            while True:
                if z is not None:
                    if z.eof:
                        return b""
                    if not self._pending:
                        self._pending = self._raw(self._next_step())
                    out = z.decompress(self._pending, want)
                    self._pending = z.unconsumed_tail
                    if not out and not self._pending and self._left_in <= 0:
                        return b""  # input used up; a truncated stream shows as a size mismatch
                elif d is None:
                    return self._raw(min(want, CHUNK))
                else:
                    if d.eof:
                        return b""
                    data = b""
                    if d.needs_input:
                        data = self._raw(self._next_step())
                        if not data:
                            return b""
                    out = d.decompress(data, max_length=want)
                if out:
                    return out
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
            self._corrupt(f"its compressed data is invalid ({_short(e)})")

    def _next(self, want: int) -> bytes:
        if self._done:
            return b""
        info, lim = self._info, self._limits
        out = self._decode(min(want, info.file_size - self._out + 1))  # one byte more reveals an overrun
        if not out:
            self._done = True
            if self._out != info.file_size:
                self._corrupt(f"it holds {self._out} bytes, not the {info.file_size} its header declares")
            if self._crc != info.CRC:
                self._corrupt("its CRC-32 does not match")
            return b""
        self._out += len(out)
        if self._out > info.file_size:
            self._corrupt(f"it inflates to more than the {info.file_size} bytes its header declares")
        if lim.max_ratio and self._out > lim.ratio_floor and self._out > lim.max_ratio * max(info.compress_size, 1):
            raise UnsafeArtifact(f"{_short(self._label)}: {_short(self._name)} expands more than "
                                 f"{lim.max_ratio:g}:1 (a decompression bomb?)")
        self._spent.produce(len(out))
        self._crc = _fast_zlib.crc32(out, self._crc)
        return out

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (exactly ``n`` unless the entry ends first); everything left when ``n`` < 0."""
        whole = n is None or n < 0
        parts, got = [], 0
        while whole or got < n:
            chunk = self._next(CHUNK if whole else min(n - got, CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def zip_entries(f: IO[bytes], label: str, limits: Limits, spent: _Spent | None = None, *,
                directory: _ZipDirectory | None = None) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """Entries of a zip archive (a seekable file): non-overlapping, bounded, counted on the bytes they produce.
    ``directory``: its central directory, when already read."""
    spent = spent if spent is not None else _Spent(limits, label)
    z = _ZipArchive(f, label, limits, spent, directory)
    # What all entries declare together against the archive's size: an early refusal of many small entries that
    # are each under the ratio floor, before any is read (listing reads only their first bytes; the real count is
    # still taken on the bytes produced).
    declared = sum(i.file_size for i in z.infos if not i.is_dir())
    if limits.max_ratio and declared > limits.ratio_floor and declared > limits.max_ratio * max(z.size, 1):
        raise UnsafeArtifact(_bomb(label, limits))
    total = 0
    links = _Links(label)
    for info in z.infos:
        name = normalize_name(info.filename)
        mode = info.external_attr >> 16
        if info.is_dir():
            if name:
                links.folder(name)
                yield Member(name, 0, "dir"), None
            continue
        if stat.S_ISLNK(mode):  # held until the end (below): counted now
            spent.member(name)
            target = _zip_link_target(z, info, name, label)
            spent.name_bytes(len(target))
            links.symlink(name, target)
            continue
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            yield Member(name, 0, "device" if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) else "fifo"), None
            continue
        total += info.file_size  # declared sizes: an early refusal only, the real count is on the bytes produced
        if total > limits.max_total_bytes:
            raise UnsafeArtifact(f"{_short(label)} holds more than {limits.max_total_bytes} bytes")
        if (limits.max_ratio and info.file_size > limits.ratio_floor
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            raise UnsafeArtifact(f"{_short(label)}: {_short(name)} expands more than {limits.max_ratio:g}:1 "
                                 "(a decompression bomb?)")
        links.file(name, info, info.file_size)
        stream = z.open(info, name)
        stream.reopen = lambda info=info, name=name: z.open(info, name)  # to read it again from the start
        yield Member(name, info.file_size, ignored=is_junk(name)), _as_file(stream)
    if links:
        resolved = links.resolve()
        _check_declared(declared + sum(r[3] for r in resolved), z.size, label, limits)
        for link, path, source, size in resolved:
            assert isinstance(source, zipfile.ZipInfo)
            stream = z.open(source, path)
            stream.reopen = lambda info=source, path=path: z.open(info, path)
            yield Member(link, size, ignored=is_junk(link), link=path), _as_file(stream)


def _zip_link_target(z: "_ZipArchive", info: zipfile.ZipInfo, name: str, label: str) -> str:
    """The target of a zip symbolic link: the entry's data, as Info-ZIP stores it (read whole, so its size and
    CRC-32 are checked; at most a path's length)."""
    if info.file_size > MAX_NAME_BYTES:
        raise UnsafeArtifact(f"{_short(label, 80)} has a symlink {_short(name, 80)!r} whose target is longer than "
                             f"{MAX_NAME_BYTES} bytes; only links to regular files inside the artifact are accepted")
    return z.open(info, name).read().decode("utf-8", "surrogateescape")


def common_root(files: list[str]) -> str:
    """The single top-level folder all files share, unless it is a numeric version folder or ``code``; else ''."""
    tops = {f.split("/", 1)[0] for f in files}
    if len(tops) != 1 or any("/" not in f for f in files):
        return ""
    top = next(iter(tops))
    # a numeric version folder (TF Serving) and SageMaker's ``code/`` (the inference script's folder) are never
    # an extra top-level folder: they mean something where they are
    return "" if top.isdigit() or top == "code" else top


def extract_entries(entries, out: Path, limits: Limits, label: str) -> list[str]:
    """Write entries under ``out`` with every safety check; returns names of identical duplicates skipped.

    The caller removes ``out`` when this raises (:meth:`Artifact.extract` and the cache do).
    """
    ex = _Extractor(Path(out), limits, label)
    for m, stream in entries:
        if m.ignored:
            continue
        if m.type == "dir":
            ex.folder(m)
            continue
        sink = ex.file(m)
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                sink.write(chunk)
        except BaseException:
            sink.abort()
            raise
        sink.close()
    return ex.duplicates


class _Extractor:
    """Writes an archive's entries under one folder, one entry at a time, with every safety check: ``tarfile``'s
    ``data_filter`` as a second layer, nothing outside the folder, no name used both as a file and as a folder,
    a repeated name only when its bytes are identical, new files created exclusively without following links,
    and at most ``limits.max_total_bytes`` written in all.

    The cost per entry stays flat however many there are: each folder level is checked (``data_filter``, whose
    ``realpath`` looks at every level of the path, and ``lstat``: a real folder, not a file) and made once, then
    remembered; a file is created with ``O_EXCL | O_NOFOLLOW`` in a folder so checked, its name being one path
    segment (entry names are normalised: no ``..``, no empty or ``.`` segments, no leading ``/``), so it cannot
    land outside the folder either."""

    def __init__(self, out: Path, limits: Limits, label: str):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out.resolve()
        self._root = str(self.out)
        self.limits = limits
        self.short = _short(label)
        self.written = 0
        self.seen: set[str] = set()
        self.duplicates: list[str] = []
        self._dirs: set[str] = {""}  # folders (relative) checked to be real folders inside ``out``

    def _fail(self, name: str, e: OSError) -> NoReturn:  # a name the file system refuses (too long...), a full disk
        raise ArtifactError(f"cannot extract {_short(name)} from {self.short}: {e.strerror or _short(e)}") from None

    def _filter(self, name: str) -> None:
        """``tarfile.data_filter`` on a folder entry, and a name that is already normal (:func:`normalize_name`)."""
        short = self.short
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        try:
            tarfile.data_filter(ti, self._root)
        except tarfile.FilterError as e:
            raise UnsafeArtifact(f"{short}: entry {_short(name)} refused ({_short(e)})") from None
        if not name or normalize_name(name) != name:
            raise UnsafeArtifact(f"{short}: entry {_short(name)} would be written outside the extraction folder")

    def _folder(self, rel: str) -> None:
        """Make ``rel`` and the folders above it, each checked and made at most once."""
        if rel in self._dirs:
            return
        up = rel.rpartition("/")[0]
        if up not in self._dirs:
            self._folder(up)  # (depth <= MAX_NAME_DEPTH: names are normalised)
        self._filter(rel)
        path = os.path.join(self._root, rel)
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):  # (a link is followed here: data_filter checked it stays inside)
                raise UnsafeArtifact(f"{self.short} uses {_short(rel)} both as a file and as a folder") from None
        self._dirs.add(rel)

    def folder(self, m: Member) -> None:
        try:
            self._folder(m.name)
        except OSError as e:
            self._fail(m.name, e)

    def file(self, m: Member) -> "_FileSink | _SameContent":
        """A sink for the bytes of file ``m``: a new file, or (for a name already written) a comparison."""
        name = m.name
        try:
            if name in self.seen:
                return _SameContent(self, open(os.path.join(self._root, name), "rb"), name)
            if not name or normalize_name(name) != name:  # (data_filter vetted the folder it goes in)
                raise UnsafeArtifact(f"{self.short}: entry {_short(name)} would be written outside the extraction "
                                     "folder")
            parent = name.rpartition("/")[0]
            if parent:
                self._folder(parent)
            if name in self._dirs:
                raise UnsafeArtifact(f"{self.short} uses {_short(name)} both as a file and as a folder")
            try:
                fd = os.open(os.path.join(self._root, name),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except FileExistsError:
                raise UnsafeArtifact(f"{self.short} uses {_short(name)} both as a file and as a folder") from None
            self.seen.add(name)
            return _FileSink(self, os.fdopen(fd, "wb"), name)
        except OSError as e:
            self._fail(name, e)


class _FileSink:
    def __init__(self, ex: _Extractor, f: IO[bytes], name: str):
        self._ex, self._f, self._name = ex, f, name

    def write(self, chunk: bytes) -> None:
        ex = self._ex
        ex.written += len(chunk)
        if ex.written > ex.limits.max_total_bytes:
            raise UnsafeArtifact(f"{ex.short} expands beyond the {ex.limits.max_total_bytes}-byte limit")
        try:
            self._f.write(chunk)
        except OSError as e:
            self._ex._fail(self._name, e)

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as e:
            self._ex._fail(self._name, e)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()


class _SameContent:
    """A repeated name: its bytes must equal the copy already written (real PyTorch artifacts repeat files)."""

    def __init__(self, ex: _Extractor, f: IO[bytes], name: str):
        self._ex, self._f, self._name = ex, f, name

    def _differs(self) -> NoReturn:
        self.abort()
        raise UnsafeArtifact(f"{self._ex.short} contains two different files named {_short(self._name)}")

    def write(self, chunk: bytes) -> None:
        if self._f.read(len(chunk)) != chunk:
            self._differs()

    def close(self) -> None:
        if self._f.read(1) != b"":
            self._differs()
        self._f.close()
        self._ex.duplicates.append(self._name)

    def abort(self) -> None:
        self._f.close()


def open_artifact(source: str | os.PathLike | Artifact, limits: Limits | None = None,
                  storage_options: dict | None = None) -> Artifact:
    """Open a path, folder or fsspec URI as an :class:`Artifact` (content decides the container type)."""
    if isinstance(source, Artifact):
        return source
    return Artifact(source, limits, storage_options)


# --------------------------------------------------------------------------------------------------- nested

def nested_entries(data: bytes | IO[bytes], label: str, limits: Limits) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """Entries of a zip found inside an artifact (``model_algo-1``), streamed with every rule of the outer one.

    ``data`` is the zip's bytes or a seekable file. Entries and bytes count against ``limits``' current budget
    too when ``limits`` is an artifact's (``art.limits``); the nested zip's own ratio is checked against its size.
    Links to regular files inside it come out as copies of them (see the module docstring); other links, devices
    and FIFOs are refused. Use it with :func:`extract_entries` to unpack without holding the bytes.
    """
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    spent = _Spent(limits, label, parent=limits._spent)
    for m, stream in zip_entries(f, label, limits, spent):
        if m.link is None:  # a link was counted when its entry was read
            spent.member(m.name)
        if m.type in ("symlink", "hardlink", "device", "fifo", "other"):
            raise UnsafeArtifact(f"{_short(label)} contains a {m.type} entry ({_short(m.name)})")
        yield m, stream


def open_nested(data: bytes | IO[bytes], label: str, limits: Limits, *,
                keep: Callable[[Member, bytes], int] | None = None) -> list[tuple[Member, bytes]]:
    """Files of a nested zip with their bytes: all of them, or only the first ``keep(member, head)`` bytes of
    each (``head`` is its first 64 KiB; junk files keep nothing), as :meth:`Artifact.scan` does. ``size`` is
    always the real size. At most ``limits.max_nested_bytes`` are held in all; see :func:`nested_entries`."""
    out: list[tuple[Member, bytes]] = []
    held = 0
    for m, stream in nested_entries(data, label, limits):
        if stream is None:
            continue
        room = limits.max_nested_bytes - held
        head = stream.read(HEAD)
        if keep is None:
            want = room + 1  # everything; more than the room is refused below
        else:
            want = min(keep(m, head) if not m.ignored else 0, room)
        parts, got = [head[:want]], len(head)
        while True:
            if keep is None and got > room:
                raise UnsafeArtifact(f"{_short(label)} holds more than the nested-archive limit of "
                                     f"{limits.max_nested_bytes} bytes")
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            if got < want:
                parts.append(chunk[: want - got])
            got += len(chunk)
        body = b"".join(parts)
        held += len(body)
        m.size = got
        out.append((m, body))
    return out
