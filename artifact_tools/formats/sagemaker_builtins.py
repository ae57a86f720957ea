"""Amazon SageMaker built-in algorithm artifacts, identified by their content and summarized.

What each built-in leaves in ``model.tar.gz`` (one ``model_algo-<host>`` per training host for the
distributed ones), as seen in real artifacts (the project's corpus: Linear Learner, NTM with two hosts, k-means,
PCA, image classification, k-NN, BlazingText, Factorization Machines) and the public notebooks that open the
Factorization Machines model (``mx.module.Module.load`` on ``symbol.json``/``params``, then ``v``, ``w1_weight``,
``w0_weight``):

- Linear Learner: ``model_algo-1`` is a zip holding an MXNet Module checkpoint (``mx-mod-symbol.json``,
  ``mx-mod-0000.params``), ``manifest.json`` and ``additional-params.json`` (``predictor_type``,
  ``threshold``, ``loss_type``); the weight ``fc0_weight`` is (feature_dim x outputs);
- Neural Topic Model: each ``model_algo-N`` is a zip of ``meta.json`` (``training_parameters``: ``num_topics``,
  ``feature_dim``...; ``epoch_number``), ``symbol.json`` and ``params``;
- Factorization Machines: the same zip layout (``meta.json`` with ``training_parameters``: ``feature_dim``,
  ``num_factors``, ``predictor_type``...), with parameters ``v`` (feature_dim x num_factors), ``w1_weight``
  (feature_dim x 1, linear terms) and ``w0_weight`` (bias); ``v`` and ``w1_weight`` are stored ``row_sparse``
  and the graph's ``data`` input is ``csr`` (``__storage_type__`` 1 and 2 on the variables); the output layer is
  ``LinearRegressionOutput`` (regressor) or ``LogisticRegressionOutput`` (binary classifier). ``use_bias`` /
  ``use_linear`` false leave out ``w0_weight`` / ``w1_weight``;
- k-means: ``model_algo-1`` is a raw NDArray list with one unnamed (k x dim) array of centroids, beside
  ``state_<uuid>`` training-state lists;
- PCA: ``model_algo-1`` is a raw NDArray list with named arrays ``s`` (singular values), ``v``
  (feature_dim x num_components) and, when the mean is subtracted, ``mean``;
- image classification: ``image-classification-symbol.json``, ``model-shapes.json`` (the input shapes,
  ``[{"shape": [batch, 3, h, w], "name": "data"}]``) and ``image-classification-<epoch, 4 digits>.params``;
- k-NN: ``model_algo-1`` is a FAISS index (``artifact_tools.formats.faiss``), ``model_algo-1.json``
  (``k``, ``predictor_type``, ``normalize``, ``dimension_reduction``) and ``model_algo-1-labels.npy``;
- BlazingText: ``vectors.bin`` (word2vec modes) or ``model.bin`` (supervised) in fastText's binary format,
  with ``vectors.txt`` word vectors for the word2vec modes.

Files are recognized by their bytes (zip, NDArray list, FAISS, fastText magic numbers, JSON structure); names
only say which file plays which role once the content has matched.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from ..errors import CorruptArtifact
from ..filetree import ZIP_ERRORS, FileTree, ZipTree
from . import faiss, fasttext, mxnet, npy

_MAX_READ = 512 << 20  # members larger than this are never read to identify the artifact
_MAX_SNIFF = 64 << 20  # members larger than this are read only when their name fits a built-in's role
_ROLE = re.compile(r"(?:^|/)(?:model_algo-\d+|vectors\.bin|vectors\.txt|model\.bin|[^/]*-\d{4}\.params)$")
_HOST = re.compile(r"(?:^|/)model_algo-(\d+)$")


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


class _Files:
    """The artifact's members, read at most once each; junk (``._*``, ``.DS_Store``) left out.

    FileTree reads whole files, so large members are read only when their name fits a built-in's role
    (``model_algo-N``, ``vectors.bin``...); their content still decides what they are.
    """

    def __init__(self, tree: FileTree):
        self.tree = tree
        self.names = sorted(
            (n for n in tree.names() if not n.rsplit("/", 1)[-1].startswith("._") and not n.endswith(".DS_Store")),
            key=_natural,
        )
        self._cache: dict[str, bytes | None] = {}

    def read(self, name: str) -> bytes | None:
        if name not in self._cache:
            try:
                size = self.tree.size(name)
                wanted = size <= _MAX_SNIFF or (size <= _MAX_READ and _ROLE.search(name) is not None)
                self._cache[name] = self.tree.read(name) if wanted else None
            except KeyError:  # listed with its size only (not held in memory by the caller)
                self._cache[name] = None
        return self._cache[name]

    def held(self, name: str) -> bytes:
        """The content of a member that :meth:`read` returned (so held in the cache), as :meth:`matching` lists."""
        data = self.read(name)
        if data is None:
            raise KeyError(name)
        return data

    def matching(self, test: Callable[[bytes], bool]) -> list[str]:
        return [n for n in self.names if (data := self.read(n)) is not None and test(data)]

    def sibling(self, name: str, suffix: str) -> str | None:
        return name + suffix if name + suffix in self.names else None


def _json(data: bytes | None, what: str) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise CorruptArtifact(f"{what} is not valid JSON") from None


def _hosts(names: list[str]) -> list[str]:
    return [n for n in names if _HOST.search(n)]


def _params(data: bytes) -> list[dict]:
    return [p.to_dict() for p in mxnet.read_params(data)]


def _by_name(params: list[dict]) -> dict[str, dict]:
    return {mxnet.strip_prefix(p["name"]): p for p in params if p["name"] is not None}


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return None


# --- BlazingText -----------------------------------------------------------------------------------------


def _blazingtext(files: _Files) -> dict | None:
    models = files.matching(lambda d: fasttext.is_model(d[:8]))
    if not models:
        return None
    header = fasttext.read_header(files.held(models[0]))
    out = {
        "algorithm": "blazingtext",
        "framework": "sagemaker-builtin",
        "hosts": [],
        "files": list(models),
        "mode": header["model"],
        "model_code": header["model_code"],
        "vocab_size": header["vocab_size"],
        "dim": header["dim"],
        "nlabels": header["nlabels"],
        "labels": header["labels"],
        "quantized": header["quantized"],
        "subwords": header["args"]["maxn"] > 0,
        "fasttext_version": header["version"],
    }
    for name in files.names:
        data = files.read(name) if name not in models else None
        if data is None:
            continue
        try:
            count, dim = fasttext.read_text_header(data)
        except CorruptArtifact:
            continue
        if dim == header["dim"]:
            out["files"].append(name)
            out["text_vectors"] = {"file": name, "count": count, "dim": dim}
            break
    return out


# --- k-NN ----------------------------------------------------------------------------------------------


def _npy_header(data: bytes | None) -> dict | None:
    if data is None or not data.startswith(b"\x93NUMPY"):
        return None
    h = npy.read_header(data, "the k-NN labels file")
    return {"shape": list(h.shape), "dtype": str(h.dtype)}


def _knn(files: _Files) -> dict | None:
    indexes = files.matching(lambda d: faiss.is_index(d[:4]))
    if not indexes:
        return None
    main = indexes[0]
    header = faiss.read_header(files.held(main))
    meta_name = files.sibling(main, ".json")
    meta = _json(files.read(meta_name), meta_name) if meta_name else None
    meta = meta if isinstance(meta, dict) else {}
    labels_name = files.sibling(main, "-labels.npy")
    labels = _npy_header(files.read(labels_name)) if labels_name else None
    return {
        "algorithm": "knn",
        "framework": "sagemaker-builtin",
        "hosts": _hosts(indexes),
        "files": [n for n in (main, meta_name, labels_name) if n],
        "index_type": header["index_type"],
        "fourcc": header["fourcc"],
        "metric": header["metric_type"],
        "dimension": header["d"],
        "row_count": header["ntotal"],
        "k": _int(meta.get("k")),
        "predictor_type": meta.get("predictor_type"),
        "normalize": meta.get("normalize"),
        "dimension_reduction": meta.get("dimension_reduction"),
        "labels": labels,
    }


# --- zipped MXNet modules: Linear Learner, NTM, Factorization Machines ---------------------------------


def _zip_facts(name: str, data: bytes) -> dict | None:
    inner = ZipTree(data, label=name)
    names = set(inner.names())

    def read(n: str) -> bytes:  # only names listed in `names` are read
        return inner.read(n)

    symbols = sorted(n for n in names if n.endswith("-symbol.json"))
    if "additional-params.json" in names and symbols:
        prefix = symbols[0][: -len("-symbol.json")]
        params_files = sorted(n for n in names if re.fullmatch(re.escape(prefix) + r"-\d{4}\.params", n))
        symbol, params_data = read(symbols[0]), read(params_files[-1]) if params_files else None
        if params_data is None or not mxnet.is_params(params_data[:16]) or not mxnet.is_symbol_json(symbol):
            return None
        extra = _json(read("additional-params.json"), f"{name}: additional-params.json")
        return _linear_learner(prefix, params_files[-1], _params(params_data), symbol, extra)
    if {"symbol.json", "params"} <= names:
        symbol, params_data = read("symbol.json"), read("params")
        if not mxnet.is_params(params_data[:16]) or not mxnet.is_symbol_json(symbol):
            return None
        meta = _json(read("meta.json"), f"{name}: meta.json") if "meta.json" in names else None
        return _ntm_or_fm(_params(params_data), symbol, meta if isinstance(meta, dict) else {})
    return None


def _linear_learner(prefix: str, params_file: str, params: list[dict], symbol: bytes, extra: Any) -> dict:
    extra = extra if isinstance(extra, dict) else {}
    weights = [p for n, p in _by_name(params).items() if n.endswith("_weight") and len(p["shape"] or ()) == 2]
    feature_dim, outputs = (weights[0]["shape"] if weights else (None, None))
    predictor = extra.get("predictor_type")
    num_classes = outputs if predictor == "multiclass_classifier" else 2 if predictor == "binary_classifier" else None
    return {
        "algorithm": "linear-learner",
        "inner_files": [f"{prefix}-symbol.json", params_file, "manifest.json", "additional-params.json"],
        "predictor_type": predictor,
        "threshold": extra.get("threshold"),
        "loss_type": extra.get("loss_type"),
        "feature_dim": feature_dim,
        "num_outputs": outputs,
        "num_classes": num_classes,
        "params": params,
        "symbol": mxnet.summarize_symbol(symbol, [p["name"] for p in params]),
    }


def _ntm_or_fm(params: list[dict], symbol: bytes, meta: dict) -> dict | None:
    named = _by_name(params)
    summary = mxnet.summarize_symbol(symbol, [p["name"] for p in params])
    training = meta.get("training_parameters")
    hyper: dict = training if isinstance(training, dict) else {}
    is_fm = "w1_weight" in named or "w0_weight" in named or "num_factors" in hyper
    if "v" in named and is_fm and len(named["v"]["shape"] or ()) == 2:
        outputs = {o["op"] for o in summary["outputs"]}
        predictor = (
            "binary_classifier"
            if "LogisticRegressionOutput" in outputs
            else "regressor" if "LinearRegressionOutput" in outputs else hyper.get("predictor_type")
        )
        return {
            "algorithm": "factorization-machines",
            "inner_files": ["symbol.json", "params"] + (["meta.json"] if meta else []),
            "feature_dim": named["v"]["shape"][0],
            "num_factors": named["v"]["shape"][1],
            "predictor_type": predictor,
            "hyperparameters": hyper,
            "params": params,
            "symbol": summary,
        }
    projection = named.get("projection_weight", {}).get("shape") or (None, None)
    if "num_topics" not in hyper and projection[0] is None:
        return None
    return {
        "algorithm": "ntm",
        "inner_files": ["meta.json", "symbol.json", "params"],
        "num_topics": _int(hyper.get("num_topics")) or projection[1],
        "vocab_size": _int(hyper.get("feature_dim")) or projection[0],
        "epoch": meta.get("epoch_number"),
        "hyperparameters": hyper,
        "params": params,
        "symbol": summary,
    }


def _zipped_mxnet(files: _Files) -> dict | None:
    zips = files.matching(lambda d: d[:4] == b"PK\x03\x04")
    try:
        found = [(n, f) for n in zips if (f := _zip_facts(n, files.held(n))) is not None]
    except ZIP_ERRORS as e:
        raise CorruptArtifact(f"a zipped model member is damaged ({type(e).__name__}: {e})") from None
    if not found:
        return None
    algorithm = found[0][1]["algorithm"]
    hosts = [n for n, f in found if f["algorithm"] == algorithm]
    return {"algorithm": algorithm, "framework": "mxnet", "hosts": hosts, "files": hosts, **found[0][1]}


# --- raw NDArray lists: k-means, PCA ------------------------------------------------------------------


def _raw_ndarray(files: _Files) -> dict | None:
    lists = {n: _params(files.held(n)) for n in files.matching(lambda d: mxnet.is_params(d[:16]))}
    pca = [n for n, ps in lists.items() if {"s", "v"} <= set(_by_name(ps))]
    kmeans = [
        n for n, ps in lists.items() if len(ps) == 1 and ps[0]["name"] is None and len(ps[0]["shape"] or ()) == 2
    ]
    if pca:
        named = _by_name(lists[pca[0]])
        facts = {
            "algorithm": "pca",
            "num_components": named["s"]["shape"][0] if named["s"]["shape"] else None,
            "feature_dim": named["v"]["shape"][0] if named["v"]["shape"] else None,
            "subtracts_mean": "mean" in named,
        }
        chosen = pca
    elif kmeans:
        k, dim = lists[kmeans[0]][0]["shape"]
        facts = {"algorithm": "kmeans", "k": k, "dim": dim}
        chosen = kmeans
    else:
        return None
    return {
        "algorithm": facts["algorithm"],
        "framework": "mxnet",
        "hosts": _hosts(chosen) or chosen,
        "files": chosen,
        **facts,
        "state_files": [n for n in lists if n not in chosen],
        "params": lists[chosen[0]],
    }


# --- image classification ------------------------------------------------------------------------------


def _input_shapes(data: bytes | None) -> list[dict] | None:
    shapes = _json(data, "model-shapes.json")
    if not isinstance(shapes, list) or not all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("shape"), list) for s in shapes
    ):
        return None
    return shapes


def _image_classification(files: _Files) -> dict | None:
    shapes_name = next((n for n in files.names if n.rsplit("/", 1)[-1] == "model-shapes.json"), None)
    shapes = _input_shapes(files.read(shapes_name)) if shapes_name else None
    symbols = [n for n in files.names if n.endswith("-symbol.json")]
    symbols = [n for n in symbols if (d := files.read(n)) is not None and mxnet.is_symbol_json(d)]
    if shapes is None or not symbols:
        return None
    symbol_name = symbols[0]
    prefix = symbol_name[: -len("-symbol.json")]
    graph = json.loads(files.held(symbol_name))
    if not any(n.get("op") == "SoftmaxOutput" for n in graph["nodes"]):
        return None
    epochs = sorted(
        (int(m.group(1)), n) for n in files.names if (m := re.fullmatch(re.escape(prefix) + r"-(\d{4})\.params", n))
    )
    out: dict[str, Any] = {
        "algorithm": "image-classification",
        "framework": "mxnet",
        "hosts": [],
        "files": [symbol_name, shapes_name],
        "epoch": None,
        "missing_params": None,
    }
    param_names = None
    if epochs:
        out["epoch"], params_name = epochs[-1]
        out["files"].append(params_name)
        data = files.read(params_name)
        if data is not None:
            if not mxnet.is_params(data[:16]):
                raise CorruptArtifact(f"{params_name} is not an MXNet NDArray file")
            out["params"] = _params(data)
            param_names = [p["name"] for p in out["params"]]
    else:
        out["missing_params"] = f"{prefix.rsplit('/', 1)[-1]}-NNNN.params"
    summary = mxnet.summarize_symbol(graph, param_names)
    nodes = graph["nodes"]
    fcs = [n for n in nodes if n["op"] == "FullyConnected"]
    convs = [n for n in nodes if n["op"] == "Convolution" and not n["name"].endswith("_sc")]
    data_shape = next((s["shape"] for s in shapes if s["name"] == "data"), shapes[0]["shape"] if shapes else None)
    out.update(
        num_classes=_int((fcs[-1].get("attrs") or fcs[-1].get("attr") or fcs[-1].get("param") or {}).get("num_hidden"))
        if fcs
        else None,
        num_layers=len(convs) + len(fcs) if convs else None,
        input_shape=data_shape[1:] if data_shape else None,
        batch_size=data_shape[0] if data_shape else None,
        input_shapes=shapes,
        symbol=summary,
    )
    return out


_DETECTORS = (_blazingtext, _knn, _zipped_mxnet, _raw_ndarray, _image_classification)
_FLAT_INDEXES = ("IndexFlatL2", "IndexFlatIP", "IndexFlat")


def not_loadable_reason(facts: dict) -> str | None:
    """Why artifact-tools' loaders cannot rebuild the built-in these facts describe (one sentence), else None.

    The loaders (``loaders/mxnet.py``, ``loaders/builtins.py``) refuse exactly these cases, so inspection's
    ``loadable`` and ``load`` agree: an image classifier without its ``.params`` file, a k-NN model without its
    labels file, with a FAISS index that is not flat, a metric other than L2 / inner product or a dimension
    reduction, a supervised BlazingText classifier (only word2vec vectors are loaded), an NTM graph without
    its encoder's ``mean`` layer.
    """
    algorithm = facts.get("algorithm")
    if algorithm == "image-classification" and facts.get("missing_params"):
        return f"the parameters file {facts['missing_params']} is missing from the artifact"
    if algorithm == "knn":
        files = facts.get("files") or []
        if not any(f.endswith("-labels.npy") for f in files):
            return "the k-NN artifact has no labels file (model_algo-1-labels.npy) next to its index"
        if facts.get("index_type") not in _FLAT_INDEXES:
            return (f"the k-NN index is a FAISS {facts.get('index_type')}; artifact-tools reads flat indexes "
                    "(index_type='faiss.Flat') only")
        if facts.get("metric") not in ("L2", "INNER_PRODUCT"):
            return f"the k-NN index uses the {facts.get('metric')} metric; only L2 and inner product are supported"
        reduction = facts.get("dimension_reduction") or {}
        if isinstance(reduction, dict) and reduction.get("type") not in (None, "identity"):
            return (f"the k-NN model reduces dimensions with {reduction.get('type')!r}, which artifact-tools does "
                    "not reproduce")
    if algorithm == "blazingtext" and facts.get("nlabels"):
        return ("this BlazingText model is a supervised text classifier; artifact-tools loads word2vec vectors "
                "only (fastText's fasttext.load_model reads model.bin)")
    if algorithm == "ntm" and "mean" not in ((facts.get("symbol") or {}).get("layers") or []):
        return "this NTM graph has no 'mean' encoder layer to predict with"
    return None


def identify(tree: FileTree) -> dict | None:
    """Which SageMaker built-in algorithm produced these files, with its facts; ``None`` when none did.

    Always present: ``algorithm``, ``framework`` ("mxnet" for the MXNet-based built-ins, "sagemaker-builtin"
    for k-NN and BlazingText), ``hosts`` (the ``model_algo-N`` members, one per training host), ``files``
    (the members that make the model) and ``not_loadable_reason`` (:func:`not_loadable_reason`). The other keys
    depend on the algorithm.
    """
    files = _Files(tree)
    for detect in _DETECTORS:
        result = detect(files)
        if result is not None:
            result["not_loadable_reason"] = not_loadable_reason(result)
            return result
    return None
