"""Small helpers shared by the tests: tar archives read and written with Python's own tarfile (an independent
path from the project's archive layer), and the CLI run as a user runs it."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """An uncompressed PAX tar at ``path`` holding ``(name, bytes)`` members in that order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


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


def booster_predict(artifact, X):
    """XGBoost's own prediction, the model read from the archive's ``xgboost-model`` member by XGBoost."""
    import xgboost as xgb

    with tarfile.open(artifact) as tf:
        raw = tf.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster.predict(xgb.DMatrix(X))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
    """One HTTP exchange with 127.0.0.1:``port``: (status, lower-cased headers, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class ServeProcess:
    """``python -m artifact_tools serve ARGS`` as a subprocess, waited for until ``/ping`` answers 200; its output
    goes to ``log_path``. Without ``port``, a free one is chosen and passed as ``--port``. As a context manager it
    stops the server on exit and requires a clean exit."""

    def __init__(self, args: list[str], env: dict, log_path: Path, *, port: int | None = None, wait: float = 120):
        import time

        self.port = port or free_port()
        self.log_path = log_path
        cmd = [sys.executable, "-m", "artifact_tools", "serve", *args]
        if port is None:
            cmd += ["--port", str(self.port)]
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited early:\n{self.log()}"
            try:
                if request(self.port, "GET", "/ping", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not answer /ping within {wait:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        assert self.stop() == 0, self.log()


def with_bad_lines(lines: list, bad: dict) -> tuple[list, list[int]]:
    """``lines`` with ``bad[i]`` inserted before line ``i``; and the 1-based line numbers the bad lines end up at."""
    text, at, n = [], [], 0
    for i, line in enumerate(lines):
        if i in bad:
            text.append(bad[i])
            n += 1
            at.append(n)
        text.append(line)
        n += 1
    return text, at
