"""One small file written whole: the application commands' state and report files (endpoint configs, migration
state and reports) appear complete or not at all."""

from __future__ import annotations

import os
import uuid


def write_text_atomic(path: str, text: str) -> None:
    """``text`` into ``path`` through a temporary name beside it and a rename (``os.replace`` is atomic on POSIX);
    the folder is created when missing, the file with the umask's normal mode; the temporary is removed on any
    error."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
