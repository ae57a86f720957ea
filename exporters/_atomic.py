"""Atomic outputs: an export is written into a clearly named temp sibling and moved into place in one step.

Rules every exporter follows through :func:`staged`:

- an existing output is refused (one sentence) unless ``force=True``;
- the output is built in ``.<name>.partial-<pid>`` beside the destination (same folder, so same file system) and
  renamed onto the destination only once it is complete and verified: ``os.rename`` of a file or a folder is
  atomic on POSIX, so the destination either does not exist or holds a whole export;
- on an error the temp is removed; a process killed outright (SIGKILL, power loss) cannot clean up, so its temp
  stays, recognisable by name, and the next export beside it removes temps whose process is gone;
- with ``force`` an existing destination is first renamed to ``.<name>.replaced-<pid>``, the new output renamed
  into place, then the old one deleted (a folder cannot be swapped in a single rename on Linux; between the two
  renames the destination is briefly absent, never half-written).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from artifact_tools.errors import ArtifactError

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:partial|replaced)-(?P<pid>\d+)$")


def refuse_existing(out: Path, force: bool) -> None:
    """ArtifactError when ``out`` exists and ``force`` is not set."""
    if (out.exists() or out.is_symlink()) and not force:
        raise ArtifactError(f"{out} already exists; pass force=True (CLI: --force) to overwrite it")


def temp_path(out: Path, tag: str = "partial") -> Path:
    return out.with_name(f".{out.name}.{tag}-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove temps left beside ``out`` by exports whose process no longer runs; returns what was removed."""
    removed: list[Path] = []
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return removed
    for p in parent.iterdir():
        m = _TEMP.match(p.name)
        if not m or m.group("name") != out.name or _alive(int(m.group("pid"))):
            continue
        _remove(p)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def staged(out: str | os.PathLike, force: bool = False, folder: bool = True) -> Iterator[Path]:
    """Yield a temp sibling to write the output into (a created folder, or a file path when ``folder=False``);
    on normal exit it replaces ``out``, on an exception it is removed."""
    out = Path(out).absolute()
    refuse_existing(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = temp_path(out)
    _remove(tmp)
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        publish(tmp, out, force)
    except BaseException:
        _remove(tmp)
        raise


def publish(tmp: Path, out: Path, force: bool) -> None:
    """Move a finished ``tmp`` onto ``out`` (see the module notes for the ``force`` case)."""
    refuse_existing(out, force)  # something may have appeared meanwhile
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        return
    if not tmp.is_dir() and not out.is_dir():
        os.replace(tmp, out)
        return
    old = temp_path(out, "replaced")
    _remove(old)
    os.rename(out, old)
    os.rename(tmp, out)
    _remove(old)
