"""Shared fixtures: the real-world corpus (skipped when absent) and one local SparkSession per run."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

np.bool = bool  # MXNet 1.9.1 still refers to np.bool, removed from numpy; must precede `import mxnet`.

# Extraction cache of the whole test run: a fresh temp folder (subprocesses inherit it), removed at exit.
_CACHE = tempfile.mkdtemp(prefix="artifact-tools-test-cache-")
os.environ["ARTIFACT_TOOLS_CACHE"] = _CACHE
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("ARTIFACT_TOOLS_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real SageMaker artifacts (../shared/corpus); tests skip when it is absent."""
    if not (CORPUS / "EXPECTED.tsv").is_file():
        pytest.skip(f"real-artifact corpus not found at {CORPUS} (only present in CI and dev machines)")
    return CORPUS


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole test run (startup costs 8-15 s)."""
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(os.environ.get("ARTIFACT_TOOLS_SPARK_MASTER", "local[2]"))
        .appName("artifact-tools-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)  # the workers run this venv's Python, not the PATH's
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    # spark.pyspark.python is read when the context starts from spark-submit only; a session built in-process takes
    # its workers' interpreter from SparkContext.pythonExec (PYSPARK_PYTHON or "python3" on PATH otherwise)
    session.sparkContext.pythonExec = sys.executable
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto's server mode) on 127.0.0.1: its URL (any access key is accepted)."""
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
