"""The extraction cache (loaders/cache.py) never crashes on what it finds on disk, and never stops a load.

- A corrupt ``index.json`` or ``<sha256>.json`` record (wrong JSON type, a value of the wrong type, a count that is
  not a non-negative integer, cut-off JSON) is a cache miss: the artifact is read (and inspected) again and the
  model loads; the rewritten files are well formed again.
- An unusable ``ARTIFACT_TOOLS_CACHE`` (under a regular file, under /proc, /dev/null, a folder this user cannot
  write) does not fail a load: the process extracts to a private temp folder, says so in one warning naming the
  folder and the variable, and removes it when it exits.

Expected predictions come from scikit-learn itself on the fitted estimator, not from our output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import pack_tar_gz

X = np.array([[1.5, 0.5], [3.0, 1.0], [-2.0, 0.25]])


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A SageMaker-style sklearn artifact and what the fitted estimator itself predicts on ``X``."""
    import joblib
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [4.0, 1.0]], [0.0, 1.0, 3.0, 2.5])
    buf = io.BytesIO()
    joblib.dump(model, buf)
    path = tmp_path_factory.mktemp("lin") / "model.tar.gz"
    path.write_bytes(pack_tar_gz({"model.joblib": buf.getvalue()}))
    return path, model.predict(X)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(path))
    return path


def _load_predict(path: Path) -> np.ndarray:
    import loaders

    return np.asarray(loaders.load(path).predict(X))


@pytest.mark.parametrize("index", ["[]", "123", '"text"', "null", "{", '{"k": [1]}', "[[[[" * 5000])
def test_index_that_is_not_an_object_is_a_miss(linear, cache, index):
    path, expected = linear
    np.testing.assert_allclose(_load_predict(path), expected)
    (cache / "index.json").write_text(index)
    np.testing.assert_allclose(_load_predict(path), expected)
    assert isinstance(json.loads((cache / "index.json").read_text()), dict)  # rewritten well formed


@pytest.mark.parametrize("value", [123, None, ["x"], {"a": 1}, "not-a-digest", "../" * 3, "f" * 63])
def test_index_values_that_are_not_entry_names_are_a_miss(linear, cache, value):
    path, expected = linear
    np.testing.assert_allclose(_load_predict(path), expected)
    index = json.loads((cache / "index.json").read_text())
    assert len(index) == 1
    (cache / "index.json").write_text(json.dumps({k: value for k in index}))
    np.testing.assert_allclose(_load_predict(path), expected)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((cache / "index.json").read_text()) == {k: digest for k in index}


@pytest.mark.parametrize("field", ["entries", "bytes", "archive_bytes"])
@pytest.mark.parametrize("value", ["abc", "12", -1, 1.5, True, None, [3], {"n": 1}, "missing"])
def test_record_counts_that_are_not_integers_are_a_miss(linear, cache, field, value):
    path, expected = linear
    np.testing.assert_allclose(_load_predict(path), expected)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = cache / f"{digest}.json"
    good = json.loads(stored.read_text())
    bad = dict(good)
    if value == "missing":
        del bad[field]
    else:
        bad[field] = value
    stored.write_text(json.dumps(bad))
    np.testing.assert_allclose(_load_predict(path), expected)  # inspected again from the archive
    assert json.loads(stored.read_text()) == good  # and the record written again


@pytest.mark.parametrize("text", ["[]", "5", "{", '{"format": 1}', "[" * 100000])
def test_malformed_record_is_a_miss(linear, cache, text):
    path, expected = linear
    np.testing.assert_allclose(_load_predict(path), expected)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = cache / f"{digest}.json"
    good = json.loads(stored.read_text())
    stored.write_text(text)
    np.testing.assert_allclose(_load_predict(path), expected)
    assert json.loads(stored.read_text()) == good


def test_record_whose_report_is_malformed_is_a_miss(linear, cache):
    path, expected = linear
    np.testing.assert_allclose(_load_predict(path), expected)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = cache / f"{digest}.json"
    good = json.loads(stored.read_text())
    stored.write_text(json.dumps({**good, "report": {"files": 7, "models": "x"}}))
    np.testing.assert_allclose(_load_predict(path), expected)
    assert json.loads(stored.read_text()) == good


# ------------------------------------------------------------------------------------------ unusable cache folder

def _cli_load(art: Path, cache: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "in.csv").write_text("".join(",".join(repr(float(v)) for v in row) + "\n" for row in X))
    repo = str(Path(__file__).resolve().parent.parent)  # this checkout, not another installed copy
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": cache,
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "artifact_tools", "load", str(art), "--predict",
                           str(tmp_path / "in.csv")], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)


def _unusable(kind: str, tmp_path: Path) -> str:
    if kind == "under-a-file":
        (tmp_path / "plain").write_text("a file\n")
        return str(tmp_path / "plain" / "cache")
    if kind == "proc":
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        return "/proc/artifact-tools-cache"
    if kind == "dev-null":
        return os.devnull
    if kind == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into a 0555 folder; /proc and a regular file cover the root case")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return str(ro / "cache")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["under-a-file", "proc", "dev-null", "read-only"])
def test_unusable_cache_folder_falls_back_to_a_private_folder(linear, tmp_path, kind):
    path, expected = linear
    configured = _unusable(kind, tmp_path)
    try:
        res = _cli_load(path, configured, tmp_path)
    finally:
        if kind == "read-only":
            (tmp_path / "ro").chmod(0o755)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(json.loads(res.stdout), expected)
    warnings = [line for line in res.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, res.stderr
    assert configured in warnings[0] and "ARTIFACT_TOOLS_CACHE" in warnings[0]
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    used = re.search(r"extracts to (\S+) instead", warnings[0])
    assert used is not None and not Path(used.group(1)).exists()  # removed when the process exited
    assert not Path(configured).is_dir()
