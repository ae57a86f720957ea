"""Helpers shared by the benchmark scripts: a cache folder and timing of child processes with peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("ARTIFACT_TOOLS_BENCH_CACHE", Path.home() / ".cache" / "artifact-tools" / "bench"))


def run_timed(cmd: list[str], **kw) -> tuple[float, int, bytes]:
    """Run a command; return (wall seconds, peak RSS in bytes, stdout). Raises on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss * 1024, out


def best_of(n: int, cmd: list[str], **kw) -> tuple[float, int, bytes]:
    runs = [run_timed(cmd, **kw) for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def ensure_xgboost_176(python: Path) -> Path:
    """``python`` of a throwaway venv holding XGBoost 1.7.6 (the last release that writes every legacy format),
    created on first use."""
    if python.exists():
        return python
    venv = python.parent.parent
    print(f"creating {venv} with xgboost 1.7.6 (one time)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "xgboost==1.7.6", "numpy<2"], check=True)
    return python
