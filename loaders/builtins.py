"""SageMaker built-ins that need no ML framework: k-NN (a FAISS index) and BlazingText word vectors.

k-NN (``model_algo-1`` FAISS index + ``model_algo-1.json`` + ``model_algo-1-labels.npy``, see
``artifact_tools/formats/sagemaker_builtins.py``): the stored vectors of a flat index are read natively
(``formats.faiss.read_flat_vectors``) and searched exactly, as ``IndexFlatL2`` (smallest squared L2 distance) or
``IndexFlatIP`` (largest inner product) do; ``k`` and ``predictor_type`` come from ``model_algo-1.json``; the
labels are read with ``formats/npy.py`` (header checked, objects refused). ``predict`` returns the built-in's
``predicted_label``: for a classifier the most frequent label among the k neighbours (a tie goes to the tied label
with the nearest neighbour, artifact-tools' choice: SageMaker does not document one), for a regressor their mean. When
``normalize`` is true, queries are scaled to unit length first, as the stored vectors are. Indexes that are not
flat (IVF, PQ, HNSW) or use a dimension reduction other than ``identity`` are refused (NotLoadable).

BlazingText word2vec (``vectors.bin``, fastText's binary format): ``model`` is a read-only mapping word -> vector
(``formats.fasttext.word_vectors``: the vectors ``FastText::getWordVector`` gives for vocabulary words) and
``predict(words)`` returns their vectors (words / len x dim); a word outside the vocabulary gets zeros, as in
fastText, when the model has no character n-grams. Supervised (text classification) models are refused.

What is refused is decided by ``formats.sagemaker_builtins.not_loadable_reason``, the function inspection reports
``not_loadable_reason`` from, so ``loadable`` and ``load`` agree. ``sample_input()``: two rows of the index's
dimension (k-NN), the first vocabulary words after fastText's ``</s>`` (BlazingText).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable
from artifact_tools.formats import faiss, fasttext, npy
from artifact_tools.formats.sagemaker_builtins import not_loadable_reason

from .base import LoadedModel, parse_options


@dataclass(frozen=True)
class BuiltinOptions:
    """The k-NN and BlazingText built-ins take no loader options."""


OPTIONS = BuiltinOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the k-NN index or BlazingText vectors the report describes (no options)."""
    parse_options(BuiltinOptions, options, "this built-in algorithm")
    entry = next((m for m in report.models if m.format.startswith("sagemaker-")), None)
    summary = entry.summary if entry is not None else {}
    algorithm = summary.get("algorithm")
    reason = not_loadable_reason(summary)  # the same sentence inspection reports as not_loadable_reason
    if reason:
        raise NotLoadable(reason)
    if algorithm == "knn":
        return _knn(root, summary)
    if algorithm == "blazingtext":
        return _blazingtext(root, summary)
    raise NotLoadable(f"artifact-tools cannot load the {algorithm} built-in algorithm without its framework")


# ------------------------------------------------------------------------------------------ k-NN

@dataclass(frozen=True)
class KnnIndex:
    """The k-NN model: stored vectors (n x d float32), their labels, and how to search them."""

    vectors: np.ndarray
    labels: np.ndarray
    k: int
    metric: str  # "L2" or "INNER_PRODUCT"
    predictor_type: str  # "classifier" or "regressor"
    normalize: bool = False

    def search(self, data: Any, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` nearest stored vectors per query row, best first, like FAISS ``search``:
        squared L2 distances (ascending) or inner products (descending)."""
        k = min(self.k if k is None else k, len(self.vectors))
        x = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=np.float32)
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.vectors.shape[1]:
            raise ArtifactError(f"the k-NN model takes rows of {self.vectors.shape[1]} features, "
                                f"not an array of shape {x.shape}")
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        ids = np.empty((len(x), k), dtype=np.int64)
        scores = np.empty((len(x), k), dtype=np.float32)
        base = self.vectors.astype(np.float64)
        chunk = max(1, (1 << 22) // max(1, base.size))
        for start in range(0, len(x), chunk):
            q = x[start:start + chunk].astype(np.float64)
            if self.metric == "L2":
                s = ((q[:, None, :] - base[None]) ** 2).sum(axis=2)
            else:
                s = -(q @ base.T)
            order = np.argsort(s, axis=1, kind="stable")[:, :k]
            ids[start:start + chunk] = order
            got = np.take_along_axis(s, order, axis=1)
            scores[start:start + chunk] = got if self.metric == "L2" else -got
        return scores, ids

    def predict(self, data: Any) -> np.ndarray:
        """The built-in's ``predicted_label`` per query row."""
        _, ids = self.search(data)
        neighbours = self.labels[ids]
        if self.predictor_type == "regressor":
            return neighbours.mean(axis=1)
        out = np.empty(len(neighbours), dtype=self.labels.dtype)
        for i, row in enumerate(neighbours):
            values, first, counts = np.unique(row, return_index=True, return_counts=True)
            tied = counts == counts.max()
            out[i] = values[tied][np.argmin(first[tied])]
        return out


def _knn(root: Path, summary: dict) -> LoadedModel:
    files = summary.get("files") or []
    index_name = files[0]
    labels_name = next(f for f in files if f.endswith("-labels.npy"))  # checked by not_loadable_reason
    vectors = faiss.read_flat_vectors((root / index_name).read_bytes())
    try:
        labels = npy.load((root / labels_name).read_bytes(), labels_name)
    except ValueError as e:
        raise CorruptArtifact(f"{labels_name} cannot be read as a numpy array ({e})") from None
    labels = labels.reshape(-1)
    if len(labels) != len(vectors):
        raise CorruptArtifact(f"{labels_name} holds {len(labels)} labels for {len(vectors)} indexed vectors")
    k = summary.get("k")
    predictor = summary.get("predictor_type")
    if not isinstance(k, int) or k < 1 or predictor not in ("classifier", "regressor"):
        raise CorruptArtifact(f"model_algo-1.json gives k={k!r} and predictor_type={predictor!r}; "
                              "expected a positive k and classifier or regressor")
    index = KnnIndex(vectors, labels, k, summary["metric"], predictor, bool(summary.get("normalize")))
    info = {"algorithm": "knn", "index": index_name, "labels": labels_name, "k": k, "predictor_type": predictor,
            "metric": index.metric, "normalize": index.normalize, "count": len(vectors)}
    dim = vectors.shape[1]
    return LoadedModel(index, "sagemaker-builtin", index.predict, info=info, sample_fn=lambda: _sample_rows(dim))


def _sample_rows(dim: int, rows: int = 2) -> np.ndarray:
    """``rows`` x ``dim`` float32 values in [0, 1), the same every time (a sample built from the width only)."""
    return np.random.default_rng(0).random((rows, dim), dtype=np.float32)


# ------------------------------------------------------------------------------------------ BlazingText

class WordVectors(Mapping):
    """Read-only mapping word -> vector (float32, ``dim`` values) over a vocabulary."""

    def __init__(self, words: list[str], matrix: np.ndarray):
        self.words = words
        self.matrix = matrix
        self._index = {w: i for i, w in enumerate(words)}

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self._index[word]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __len__(self) -> int:
        return len(self.words)


def _blazingtext(root: Path, summary: dict) -> LoadedModel:
    files = summary.get("files") or []
    if not files:
        raise NotLoadable("the BlazingText artifact names no fastText model file")
    words, matrix = fasttext.word_vectors((root / files[0]).read_bytes())
    vectors = WordVectors(words, matrix)
    subwords = bool(summary.get("subwords"))

    def predict(data: Any) -> np.ndarray:
        items = [data] if isinstance(data, str) else list(data)
        out = np.zeros((len(items), vectors.dim), dtype=np.float32)
        for i, word in enumerate(items):
            if word in vectors:
                out[i] = vectors[word]
            elif subwords:
                raise ArtifactError(f"{word!r} is not in the vocabulary; its vector would come from character "
                                    "n-grams, which artifact-tools does not compute")
        return out

    info = {"algorithm": "blazingtext", "file": files[0], "vocab_size": len(words), "dim": vectors.dim,
            "subwords": subwords}
    # fastText's dictionary starts with the end-of-sentence token "</s>" (Dictionary::EOS); real words follow
    sample = [w for w in words if w != "</s>"][:3] or words[:1]
    return LoadedModel(vectors, "sagemaker-builtin", predict, info=info, sample_fn=lambda: list(sample))
