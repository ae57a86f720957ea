"""k-NN and BlazingText loaders: the corpus artifacts (cookbook-knn, tweetsage-blazingtext) and small artifacts
written here in the same layouts with faiss-cpu and fastText. Expected values come from those libraries: FAISS
searching the same index file, fastText reading the same model file, and the artifact's own vectors.txt."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

import artifact_tools  # noqa: E402
import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, NotLoadable  # noqa: E402
from loaders.builtins import KnnIndex, WordVectors  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

from helpers import untar  # noqa: E402

KNN = "cookbook-knn/model.tar.gz"
BLAZINGTEXT = "tweetsage-blazingtext/model.tar.gz"


# ------------------------------------------------------------------------------------ k-NN

def _faiss_predict(index, labels: np.ndarray, x: np.ndarray, k: int, regressor: bool) -> np.ndarray:
    """FAISS neighbours, then the vote (ties: the tied label met first, i.e. nearest) or the mean."""
    _, ids = index.search(x.astype(np.float32), k)
    out = []
    for row in labels[ids]:
        if regressor:
            out.append(row.mean())
            continue
        counts = {v: int((row == v).sum()) for v in row}
        best = max(counts.values())
        out.append(next(v for v in row if counts[v] == best))
    return np.array(out)


def test_knn_corpus_artifact_agrees_with_faiss(corpus, tmp_path):
    files = untar(corpus / KNN, tmp_path / "files")
    index = faiss.read_index(str(files / "model_algo-1"))
    labels = np.load(files / "model_algo-1-labels.npy")
    meta = json.loads((files / "model_algo-1.json").read_text())
    x = np.random.default_rng(0).random((200, index.d)).astype(np.float32)
    expected_d, expected_i = index.search(x, meta["k"])

    m = loaders.load(corpus / KNN)
    assert m.framework == "sagemaker-builtin" and isinstance(m.model, KnnIndex)
    assert (m.info["k"], m.info["predictor_type"], m.info["metric"]) == (meta["k"], meta["predictor_type"], "L2")
    d, i = m.model.search(x)
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_allclose(d, expected_d, rtol=1e-4, atol=1e-5)
    predicted = m.predict(x)
    np.testing.assert_array_equal(predicted, _faiss_predict(index, labels, x, meta["k"], regressor=False))
    assert len(set(predicted.tolist())) == 2


def _knn_artifact(folder: Path, index, labels: np.ndarray, meta: dict) -> Path:
    folder.mkdir()
    faiss.write_index(index, str(folder / "model_algo-1"))
    np.save(folder / "model_algo-1-labels.npy", labels)
    (folder / "model_algo-1.json").write_text(json.dumps(meta))
    return make_samples.tar_folder(folder, folder.with_suffix(".tar.gz"))


def test_knn_regressor_means_the_neighbour_labels(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    index = faiss.IndexFlatL2(8)
    index.add(vectors)
    labels = rng.normal(size=300)
    meta = {"k": 7, "predictor_type": "regressor", "normalize": False,
            "dimension_reduction": {"type": "identity", "input_dim": 8}, "version": "1.0"}
    artifact = _knn_artifact(tmp_path / "reg", index, labels, meta)
    x = rng.normal(size=(50, 8))

    m = loaders.load(artifact)
    np.testing.assert_allclose(m.predict(x), _faiss_predict(index, labels, x, 7, regressor=True), rtol=1e-12)


def test_knn_inner_product_index_with_normalized_queries(tmp_path):
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(150, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(6)
    index.add(vectors)
    labels = rng.integers(0, 4, size=150).astype(np.float64)
    meta = {"k": 4, "predictor_type": "classifier", "normalize": True}
    artifact = _knn_artifact(tmp_path / "ip", index, labels, meta)
    x = rng.normal(size=(60, 6)) * 5
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)

    m = loaders.load(artifact)
    assert m.info["metric"] == "INNER_PRODUCT" and m.info["normalize"] is True
    scores, ids = m.model.search(x)
    expected_scores, expected_ids = index.search(unit.astype(np.float32), 4)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)  # cosines: queries were normalized
    np.testing.assert_array_equal(m.predict(x), _faiss_predict(index, labels, unit, 4, regressor=False))


def test_knn_ivf_index_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 4)).astype(np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(4), 4, 4, faiss.METRIC_L2)
    index.train(vectors)
    index.add(vectors)
    artifact = _knn_artifact(tmp_path / "ivf", index, np.zeros(200), {"k": 3, "predictor_type": "classifier"})
    with pytest.raises(NotLoadable, match="IndexIVFFlat") as refused:
        loaders.load(artifact)
    assert _inspected_reason(artifact) == str(refused.value)  # inspection says the same sentence


def _inspected_reason(artifact: Path) -> str | None:
    report = artifact_tools.inspect(artifact)
    return report.models[0].summary["not_loadable_reason"]


# ------------------------------------------------------------------------------------ BlazingText

def _text_vectors(path: Path) -> dict[str, np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()
    count, dim = map(int, lines[0].split())
    out = {}
    for line in lines[1:]:
        parts = line.rstrip().split(" ")
        out[parts[0]] = np.array(parts[1:], dtype=np.float64)
    assert len(out) == count and all(len(v) == dim for v in out.values())
    return out


def test_blazingtext_vectors_match_vectors_txt_and_fasttext(corpus, tmp_path):
    fasttext = pytest.importorskip("fasttext")
    files = untar(corpus / BLAZINGTEXT, tmp_path / "files")
    text = _text_vectors(files / "vectors.txt")
    ft = fasttext.load_model(str(files / "vectors.bin"))

    m = loaders.load(corpus / BLAZINGTEXT)
    assert isinstance(m.model, WordVectors)
    assert set(m.model) == set(text) == set(ft.words) and len(m.model) == len(text)
    words = sorted(text)
    got = m.predict(words)
    np.testing.assert_allclose(got, np.array([text[w] for w in words]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, np.array([ft.get_word_vector(w) for w in words]), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m.model[words[0]], got[0])
    np.testing.assert_array_equal(m.predict("zzz-not-a-word"), ft.get_word_vector("zzz-not-a-word")[None])


@pytest.fixture(scope="module")
def training_text(tmp_path_factory) -> Path:
    rng = np.random.default_rng(4)
    vocab = ["river", "water", "boat", "stone", "mountain", "valley", "cloud", "rain", "storm", "field"]
    path = tmp_path_factory.mktemp("ft") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(vocab, size=12)) for _ in range(200)) + "\n")
    return path


def _fasttext_artifact(model, folder: Path, name: str) -> Path:
    folder.mkdir()
    model.save_model(str(folder / name))
    return make_samples.tar_folder(folder, folder.with_suffix(".tar.gz"))


def test_blazingtext_with_subwords_matches_fasttext(training_text, tmp_path):
    fasttext = pytest.importorskip("fasttext")
    model = fasttext.train_unsupervised(str(training_text), model="skipgram", dim=8, epoch=1, minCount=1,
                                        minn=2, maxn=4, bucket=1000, thread=1, verbose=0)
    m = loaders.load(_fasttext_artifact(model, tmp_path / "sub", "vectors.bin"))
    assert m.info["subwords"] is True
    words = [w for w in model.words if w != "</s>"]
    np.testing.assert_allclose(m.predict(words), np.array([model.get_word_vector(w) for w in words]),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ArtifactError, match="not in the vocabulary"):
        m.predict(["rivers"])


def test_blazingtext_supervised_model_is_refused(training_text, tmp_path):
    fasttext = pytest.importorskip("fasttext")
    labelled = tmp_path / "labelled.txt"
    lines = training_text.read_text().splitlines()
    labelled.write_text("\n".join(f"__label__{i % 2} {line}" for i, line in enumerate(lines)) + "\n")
    model = fasttext.train_supervised(str(labelled), dim=4, epoch=1, thread=1, verbose=0)
    artifact = _fasttext_artifact(model, tmp_path / "sup", "model.bin")
    with pytest.raises(NotLoadable, match="supervised") as refused:
        loaders.load(artifact)
    assert _inspected_reason(artifact) == str(refused.value)


# ------------------------------------------------------------------------------------ sample inputs

def test_sample_input_of_every_builtin_corpus_entry(corpus, tmp_path):
    """k-NN: rows as wide as the FAISS index (read by faiss); BlazingText: words of its own vectors.txt."""
    seen = set()
    for table in ("EXPECTED.tsv", "EXPECTED-wild.tsv"):
        for line in (corpus / table).read_text().splitlines()[1:]:
            entry, file, framework = line.split("\t")[:3]
            if framework != "sagemaker-builtin":
                continue
            artifact = corpus / entry / file
            assert artifact_tools.inspect(artifact).loadable, entry
            m = loaders.load(artifact)
            sample = m.sample_input()
            files = untar(artifact, tmp_path / entry)
            if m.info["algorithm"] == "knn":
                index = faiss.read_index(str(files / "model_algo-1"))
                assert sample.dtype == np.float32 and sample.ndim == 2 and sample.shape[1] == index.d
                assert len(m.predict(sample)) == len(sample)
            else:
                vocabulary = _text_vectors(files / "vectors.txt")
                assert sample and all(w in vocabulary for w in sample)
                np.testing.assert_allclose(m.predict(sample), np.array([vocabulary[w] for w in sample]),
                                           rtol=1e-4, atol=1e-5)
            seen.add(m.info["algorithm"])
    assert seen == {"knn", "blazingtext"}
