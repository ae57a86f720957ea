"""Small helpers shared by the tests: tar archives read and written with Python's own tarfile (an independent
path from the project's archive layer), and the CLI run as a user runs it."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path


class ShortBytes(bytes):
    """Bytes with a short repr, so that Hypothesis reports stay readable."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


def tar_members(path) -> dict[str, bytes]:
    """Every regular file of a tar archive, names without a leading ./, read with the standard library."""
    with tarfile.open(path) as tar:
        return {m.name.removeprefix("./"): ShortBytes(tar.extractfile(m).read())
                for m in tar.getmembers() if m.isfile()}


def untar(archive: Path, dest: Path) -> Path:
    """Extract with the standard library's 'data' filter into ``dest``; return it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    return dest


def pack_tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz holding ``{name: bytes}`` as regular files, written with the standard library."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``python -m artifact_tools ARGS`` in a fresh interpreter, output captured as text."""
    return subprocess.run([sys.executable, "-m", "artifact_tools", *args], capture_output=True, text=True, cwd=cwd)


def sklearn_reference(artifact, member: str = "model.joblib"):
    """The estimator loaded with joblib straight from the archive member: the oracle, not through artifact-tools."""
    import io
    import tarfile

    import joblib

    with tarfile.open(artifact) as tf:
        return joblib.load(io.BytesIO(tf.extractfile(member).read()))
