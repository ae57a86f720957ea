"""Damaged real artifacts: inspection and loading must answer with a result or one ArtifactError, never crash.

Bytes are flipped or cut inside the *members* of real corpus archives (the archive is rebuilt around the damaged
member, so every format reader sees it), and in the raw archive bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import artifact_tools
from artifact_tools.errors import ArtifactError

from helpers import pack_tar_gz, tar_members

ENTRIES = [
    "cookbook-knn/model.tar.gz", "cookbook-ll/model.tar.gz", "cookbook-python.custom/model.tar.gz",
    "cookbook-r.custom/model.tar.gz", "cookbook-xgboost-2/model.tar.gz", "ex-ll-adult/ll-adult-prediction-model.tar.gz",
    "movies-kmeans-a/model.tar.gz", "plagiarism-pca/model.tar.gz", "sdk-lmi-falcon/mymodel-7B.tar.gz",
    "sdk-sklearn-ir/sklearn-model.tar.gz", "sdk-sparkml-mleap/mleap_model.tar.gz",
    "sdk-tfs-test-model/tensorflow-serving-test-model.tar.gz",
    "sdk-xgboost-model/xgb_model.tar.gz", "tweetsage-blazingtext/model.tar.gz",
]
FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def artifacts(corpus) -> dict[str, dict[str, bytes]]:
    return {e: tar_members(corpus / e) for e in ENTRIES}


def _inspect_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(data)
    try:
        report = artifact_tools.inspect(path)
    except ArtifactError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    report.to_json()
    str(report)
    report._repr_html_()


def _damage(artifacts, data) -> bytes:
    """An entry's archive rebuilt with one member flipped or cut."""
    entry = data.draw(st.sampled_from(ENTRIES))
    members = dict(artifacts[entry])
    name = data.draw(st.sampled_from(sorted(members)))
    body = bytearray(members[name])
    action = data.draw(st.sampled_from(["flip", "cut", "flip-many"]))
    if action == "cut":
        body = body[: data.draw(st.integers(0, max(len(body) - 1, 0)))]
    else:
        for _ in range(1 if action == "flip" else data.draw(st.integers(2, 12))):
            if body:
                pos = data.draw(st.integers(0, len(body) - 1))
                body[pos] = data.draw(st.integers(0, 255))
    members[name] = bytes(body)
    return pack_tar_gz(members)


@FUZZ
@given(data=st.data())
def test_damaged_members(artifacts, tmp_path, data):
    _inspect_bytes(tmp_path, _damage(artifacts, data))


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_members_load_or_refuse(artifacts, tmp_path, data):
    import loaders

    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(_damage(artifacts, data))
    try:
        model = loaders.load(path)
    except ArtifactError as e:
        assert str(e) and "\n" not in str(e).strip()
        return
    assert model.framework


@FUZZ
@given(data=st.data())
def test_damaged_archives(corpus, tmp_path, data):
    raw = bytearray((corpus / data.draw(st.sampled_from(ENTRIES))).read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    if raw:
        _inspect_bytes(tmp_path, bytes(raw))
