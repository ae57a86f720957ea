"""Every artifact of the real-world corpus that loads, scored by ``transform`` on both engines: its own sample input
(built by its loader from the artifact's metadata) written as one input object, the job run with ``split_type=None``
(the object is one request, as SageMaker sends it), and the ``.out`` compared byte for byte with the model's answer
to that body sent once (decoded, predicted and encoded as ``serve`` answers an invocation), on the local engine and on
Spark ``local[2]``. Frameworks whose answers are dicts, frames or several outputs (TensorFlow estimators, MLeap,
BlazingText, KNN) are among them; the predictions themselves are checked against the frameworks elsewhere."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from artifact_tools import codec
from artifact_tools.batch import transform

_SKIPPED = {"golden"}


def _candidates(corpus: Path) -> list:
    """(entry, path) pairs: each entry's files in name order, then the entry's folder itself."""
    out = []
    for entry in sorted(p for p in corpus.iterdir() if p.is_dir() and p.name not in _SKIPPED):
        files = sorted(p for p in entry.iterdir() if p.suffix not in (".md", ".txt"))
        out += [(entry.name, p) for p in files] + [(entry.name, entry)]
    return out


@pytest.fixture(scope="module")
def cases(corpus) -> list:
    """Per corpus entry, its first artifact that loads (with trust: the corpus is public, and pickles of every era
    are among it): (entry, path, content type, request body, the answer to it as application/json)."""
    import loaders

    found: dict = {}
    for entry, path in _candidates(corpus):
        if entry in found:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = loaders.load(path, trust=True)
                sample = model.sample_input()
            except Exception:  # noqa: BLE001 -- not loadable here (what each loads is EXPECTED.tsv's concern)
                continue
            numbers = isinstance(sample, np.ndarray) and sample.ndim <= 2 and sample.dtype.kind in "iuf"
            content_type = "text/csv" if numbers else "application/json"
            body = codec.encode(sample, content_type)[0]
            request = codec.decode(body, content_type, "the sample")
            answer = codec.encode(model.predict(request.data), "application/json", request.style)[0]
        found[entry] = (entry, path, content_type, body, answer)
    assert len(found) >= 15, f"only {sorted(found)} of the corpus loaded"
    return list(found.values())


def _run(cases: list, tmp_path: Path, **engine) -> dict:
    wrong = {}
    for entry, path, content_type, body, answer in cases:
        src, out = tmp_path / entry / "in", tmp_path / entry / "out"
        src.mkdir(parents=True)
        (src / ("sample.csv" if content_type == "text/csv" else "sample.json")).write_bytes(body)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = transform(str(path), str(src), str(out), content_type=content_type, accept="application/json",
                                trust=True, **engine)
        got = [p.read_bytes() for p in out.glob("*.out")]
        if summary["records_failed"] or got != [answer]:
            wrong[entry] = (summary["records_failed"], summary.get("failures"), got[:1], answer[:200])
    return wrong


def test_every_loadable_corpus_artifact_transforms_as_it_answers_one_request(cases, tmp_path):
    assert not _run(cases, tmp_path)


def test_every_loadable_corpus_artifact_transforms_alike_on_spark(cases, spark, tmp_path):
    assert not _run(cases, tmp_path, engine="spark", spark=spark)
