"""MXNet loader (extra ``mxnet``): SageMaker's MXNet-based built-in algorithms and MXNet framework-container exports.

What is loaded, and how (the way SageMaker's own examples open these artifacts: untar, ``unzip model_algo-1``, then
``gluon.SymbolBlock.imports(symbol, input_names, params)`` or ``mx.nd.load``):

- Linear Learner, Neural Topic Model, Factorization Machines: ``model_algo-<host>`` is a zip (see
  ``artifact_tools/formats/sagemaker_builtins.py``). It is unzipped with the archive layer's checks
  (``nested_entries`` + ``extract_entries``, streamed) into ``.unzipped/<member>`` inside the artifact's own cache
  folder, once (a plain folder loaded in place is never written to: its zips go to
  ``$ARTIFACT_TOOLS_CACHE/unzipped/<sha256>``).
  ``host=`` picks the training host (``1``, ``2`` or ``"model_algo-2"``; default the first).
- image classification: ``<prefix>-symbol.json`` with the highest-epoch ``<prefix>-NNNN.params``; input names from
  ``model-shapes.json``.
- framework-container exports (Gluon ``export`` / Module ``save_checkpoint``): ``X-symbol.json`` with the
  highest-epoch ``X-NNNN.params`` (or the only params file); input names from ``model-shapes.json`` when present,
  else the graph's data inputs (variables that are neither parameters nor labels, ``formats.mxnet.summarize_symbol``).
- k-means and PCA: ``model_algo-1`` is a raw NDArray list, loaded as its arrays (``mx.nd.load``, or
  ``formats.mxnet.load_arrays`` with the numpy backend).

Graphs whose outputs are MXNet loss layers (``LogisticRegressionOutput``, ``SoftmaxOutput``...) take their label
variables as extra inputs; in inference those layers ignore them, so ``predict`` feeds zeros of the shape MXNet
infers. ``model`` is the Gluon ``SymbolBlock`` (inputs: the data inputs, then the labels).

What ``predict`` returns:

- Linear Learner: a DataFrame like the built-in's JSON response: ``score`` (regressor: the output;
  binary classifier: the sigmoid probability, ``predicted_label`` = ``score > threshold`` with the threshold of
  ``additional-params.json``; multiclass: the softmax row, ``predicted_label`` = its argmax).
- k-means: a DataFrame ``closest_cluster``, ``distance_to_cluster`` (Euclidean, not squared).
- PCA: ``(x - mean) @ v`` (no ``mean`` array: ``x @ v``), neither scaled by ``s`` nor reordered: the columns follow
  ``v``, whose singular values ``s`` ascend, so the strongest component is the LAST column.
- NTM: the encoder's ``mean`` layer (the document's latent topic vector). The full graph is the training graph (its
  outputs are losses computed from a random sample); the endpoint's ``topic_weights`` are a normalization of this
  layer that AWS does not document, so it is not reproduced here.
- Factorization Machines: a DataFrame like the built-in's JSON response (``fm-in-formats`` in the SageMaker
  developer guide): ``score`` (regressor: the output; binary classifier: the sigmoid probability, with
  ``predicted_label`` = ``score > 0.5``, the threshold at which SageMaker reports the classifier's accuracy and F1).
  Rows are dense (numpy, pandas) or scipy sparse matrices of ``feature_dim`` columns.
- image classification, exports: the graph's output(s) as numpy (a list when several, one array per output in the
  graph's ``heads`` order, whatever their widths).

Factorization Machines store ``v`` and ``w1_weight`` as ``row_sparse`` arrays and take ``csr`` data, which Gluon's
``SymbolBlock`` refuses (it holds dense parameters only). The Gluon model is therefore built from the same graph
with the storage types dropped and the one sparse-only operator it uses, ``_square_sum(x, axis, keepdims)``
("sum of squares" of a row_sparse array, ``src/operator/tensor/square_sum.cc``), written as
``sum(square(x), axis, keepdims)``; the weights are the stored arrays made dense (rows absent from a row_sparse
array are zeros). tests/test_load_mxnet.py checks it against MXNet's symbol executor running the original sparse
graph on the sparse weights.

``sample_input()`` is built from the artifact's metadata only: ``model-shapes.json`` (batch 1 or 2), else the shape
the graph and the parameter shapes fix (``formats.mxnet.data_input_shapes``; free image sizes are the smallest
MXNet's shape inference accepts with the stored weights), ``feature_dim`` of Linear Learner / Factorization
Machines / PCA, the vocabulary size of NTM, the dimension of k-means.

The k-means and PCA conventions were checked against a real endpoint's answers printed in
udacity/ML_SageMaker_Studies ``Population_Segmentation/Pop_Segmentation_Solution.ipynb`` (the PCA projection of
the first county times ``v`` plus ``mean`` gives back its features; ``distance_to_cluster`` 0.27046 is the
Euclidean distance to centroid 3), with that notebook's ``model_algo-1`` (commit 6bc78414).

Backends: ``backend="mxnet"`` (Gluon), ``backend="numpy"`` (no MXNet import: Linear Learner and Factorization
Machines by evaluating their small graphs in numpy, k-means and PCA), default MXNet when it imports, else numpy for
those four algorithms.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Literal

import numpy as np

from artifact_tools.archive import Limits, extract_entries, nested_entries
from artifact_tools.errors import ArtifactError, CorruptArtifact, MissingExtra, NotLoadable, UnsafeArtifact
from artifact_tools.formats import mxnet as mxformat

from .base import LoadedModel, parse_options, require
from .cache import cache_dir, publish_folder

NUMPY_ALGORITHMS = ("linear-learner", "factorization-machines", "kmeans", "pca")
_UNZIPPED = ".unzipped"
_LOSS_OUTPUTS = {  # MXNet loss layers and what their forward pass computes outside training
    "LinearRegressionOutput": "identity",
    "MAERegressionOutput": "identity",
    "SVMOutput": "identity",
    "LogisticRegressionOutput": "sigmoid",
    "SoftmaxOutput": "softmax",
}


@dataclass(frozen=True)
class MXNetOptions:
    """``backend``: ``"mxnet"`` (Gluon) or ``"numpy"`` (no MXNet import; Linear Learner, Factorization Machines,
    k-means and PCA only),
    default MXNet when it imports; ``host``: the training host of a built-in algorithm (``2`` or
    ``"model_algo-2"``, default the first)."""

    backend: Literal["mxnet", "numpy"] | None = None
    host: int | str | None = None


OPTIONS = MXNetOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the MXNet model the report describes; options: :class:`MXNetOptions`."""
    opts = parse_options(MXNetOptions, options, "MXNet artifacts")
    backend, host = opts.backend, opts.host
    builtin = next((m for m in report.models if m.format.startswith("sagemaker-")), None)
    if builtin is None:
        if host is not None:
            raise ArtifactError("host= only applies to SageMaker built-in algorithms with several training hosts")
        return _export(root, report, _backend(backend, "MXNet framework exports"))
    summary = builtin.summary
    algorithm = summary.get("algorithm")
    if algorithm in ("kmeans", "pca"):
        return _ndarray_list(root, summary, algorithm, _backend(backend, algorithm), _host(summary, host))
    if algorithm in ("linear-learner", "ntm", "factorization-machines"):
        return _zipped(root, summary, algorithm, _backend(backend, algorithm), _host(summary, host))
    if algorithm == "image-classification":
        if host is not None:
            raise ArtifactError("host= does not apply to image classification artifacts")
        return _image_classification(root, summary, _backend(backend, algorithm))
    raise NotLoadable(f"artifact-tools cannot load the {algorithm} built-in algorithm with MXNet")


# ------------------------------------------------------------------------------------------ choices

def _import_mxnet():
    """``import mxnet``, with the ``numpy.bool`` alias it needs present for the import only.

    MXNet 1.9.1 (its last release) evaluates ``numpy.bool`` while it imports (``mxnet/numpy/utils.py``:
    ``bool = onp.bool``); numpy 1.24 removed that alias and numpy 2 brought it back. When it is absent, the alias
    is added for the import and taken away right after, so the process's numpy is left as it was. MXNet reads
    ``numpy.bool`` again later only in its NumPy-compatible interface (``mx.np``: boolean ``full`` fill values,
    boolean-mask indexing of ``mx.np.ndarray``), which the loaders never use: Gluon ``SymbolBlock``s,
    ``mx.nd`` arrays and ``mx.sym`` graphs run without it (tests/test_cli_api.py loads and predicts each MXNet
    layout after the alias is gone). Code that goes on to use ``mx.np`` itself needs ``numpy.bool`` defined.
    """
    if sys.modules.get("mxnet") is not None:  # imported already (None: marked absent)
        return require("mxnet", "mxnet")
    added = "bool" not in np.__dict__
    if added:
        np.bool = bool
    try:
        return require("mxnet", "mxnet")
    finally:
        if added and np.__dict__.get("bool") is bool:
            del np.bool


def _backend(wanted: str | None, what: str):
    """The MXNet module, or None for the numpy backend."""
    numpy_ok = what in NUMPY_ALGORITHMS
    if wanted == "numpy":
        if not numpy_ok:
            raise NotLoadable(f"loading {what} needs MXNet; backend='numpy' covers "
                              f"{', '.join(NUMPY_ALGORITHMS)} only")
        return None
    if wanted == "mxnet" or not numpy_ok:
        return _import_mxnet()
    try:
        return _import_mxnet()
    except MissingExtra:
        return None


def _host(summary: dict, host: int | str | None) -> str:
    hosts = summary.get("hosts") or summary.get("files") or []
    if not hosts:
        raise NotLoadable(f"the report names no model file for the {summary.get('algorithm')} built-in")
    if host is None:
        return hosts[0]
    name = f"model_algo-{host}" if isinstance(host, int) or str(host).isdigit() else str(host)
    for h in hosts:
        if h == name or h.endswith("/" + name):
            return h
    raise ArtifactError(f"host {host!r} is not in this artifact, whose model files are {', '.join(hosts)}")


# ------------------------------------------------------------------------------------------ nested zips

def _in_cache(root: Path) -> bool:
    """True when ``root`` lies in one of the cache's per-artifact folders (named by a SHA-256)."""
    try:
        rel = root.resolve().relative_to(cache_dir().resolve())
    except ValueError:
        return False
    return bool(rel.parts) and re.fullmatch(r"[0-9a-f]{64}", rel.parts[0]) is not None


def _unzip(root: Path, member: str) -> Path:
    """The folder holding ``member`` (a zip inside the artifact) unpacked, extracted on first use only.

    Streamed from the file to disk through the archive module's bounded zip reader: never more than a chunk of
    it in memory.
    """
    path = root / member
    limits = Limits.from_env()
    if path.stat().st_size > limits.max_nested_bytes:
        raise UnsafeArtifact(f"{member} is larger than the nested-archive limit ({limits.max_nested_bytes} bytes)")
    if _in_cache(root):
        dest = root / _UNZIPPED / member
    else:  # a plain folder loaded in place: never write into it
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        dest = cache_dir() / "unzipped" / digest.hexdigest()

    def fill(out: Path) -> None:
        out.mkdir()
        with open(path, "rb") as f:
            extract_entries(nested_entries(f, member, limits), out, limits, member)

    return publish_folder(dest, fill)


# ------------------------------------------------------------------------------------------ graphs

def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)[:300]


def _graph_io(symbol: Path, params: Path, shapes: list[dict] | None) -> tuple[list[str], list[str], dict]:
    """Data inputs (model-shapes.json order when given), labels, and the symbol summary."""
    names = [p.name for p in mxformat.read_params(params.read_bytes()) if p.name is not None]
    summary = mxformat.summarize_symbol(symbol.read_bytes(), names)
    inputs = [s["name"] for s in shapes] if shapes else summary["inputs"]
    if not inputs:
        raise NotLoadable(f"{symbol.name} has no data input: every variable is a parameter or a label")
    labels = [n for n in summary["labels"] if n not in inputs]
    return inputs, labels, summary


def _symbol_block(mx, symbol: Path, params: Path, names: list[str]):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Cannot decide type for the following arguments"
            return mx.gluon.SymbolBlock.imports(str(symbol), names, str(params), ctx=mx.cpu())
    except (AssertionError, ValueError, KeyError, mx.base.MXNetError) as e:
        raise CorruptArtifact(f"MXNet cannot load {symbol.name} with {params.name}: {_first_line(e)}") from None


def _dense_input(value: Any) -> np.ndarray:
    """float32 numpy from numpy, pandas, lists or a scipy sparse matrix (made dense)."""
    if hasattr(value, "toarray") and hasattr(value, "nnz"):  # scipy.sparse
        value = value.toarray()
    elif hasattr(value, "to_numpy"):
        value = value.to_numpy()
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"the input cannot be read as numbers ({_first_line(e)})") from None


def _feed(data: Any, inputs: list[str], shapes: list[dict] | None) -> dict[str, np.ndarray]:
    """Input arrays by name: one array (single input), or a dict / sequence of arrays; a batch axis is added to
    single samples (one fewer dimension than model-shapes.json gives, or a 1-D row)."""
    if isinstance(data, dict):
        missing = [n for n in inputs if n not in data]
        if missing:
            raise ArtifactError(f"input {', '.join(missing)} is missing; the model takes {', '.join(inputs)}")
        values = [data[n] for n in inputs]
    elif len(inputs) > 1:
        if not isinstance(data, (list, tuple)) or len(data) != len(inputs):
            raise ArtifactError(f"the model takes {len(inputs)} inputs ({', '.join(inputs)}): pass a dict or a list")
        values = list(data)
    else:
        values = [data]
    dims = {s["name"]: len(s["shape"]) for s in shapes or []}
    out = {}
    for name, value in zip(inputs, values):
        arr = _dense_input(value)
        if arr.ndim == dims.get(name, 2) - 1:
            arr = arr[None]
        out[name] = arr
    return out


def _gluon_predictor(mx, block, symbol, inputs: list[str], labels: list[str], shapes: list[dict] | None):
    """Run ``block`` on numpy inputs, with zero labels of the shapes MXNet infers; numpy output(s)."""

    def run(data: Any):
        feed = _feed(data, inputs, shapes)
        label_arrays = []
        if labels:
            try:
                arg_shapes, _, _ = symbol.infer_shape_partial(**{n: a.shape for n, a in feed.items()})
            except mx.base.MXNetError as e:
                raise ArtifactError(f"the input does not fit the model: {_first_line(e)}") from None
            by_name = dict(zip(symbol.list_arguments(), arg_shapes))
            label_arrays = [mx.nd.zeros(by_name.get(n) or (len(next(iter(feed.values()))),)) for n in labels]
        try:
            out = block(*[mx.nd.array(feed[n]) for n in inputs], *label_arrays)
        except mx.base.MXNetError as e:
            raise ArtifactError(f"the input does not fit the model: {_first_line(e)}") from None
        if isinstance(out, (list, tuple)):
            return [o.asnumpy() for o in out]
        return out.asnumpy()

    return run


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _flag(attrs: dict, key: str) -> bool:
    return str(attrs.get(key, "false")).lower() in ("true", "1")


def _np_dot(attrs: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.T if _flag(attrs, "transpose_a") else a) @ (b.T if _flag(attrs, "transpose_b") else b)


def _np_fully_connected(attrs: dict, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    x = x.reshape(len(x), -1) if str(attrs.get("flatten", "true")).lower() in ("true", "1") else x
    y = x @ w.T
    return y if b is None or _flag(attrs, "no_bias") else y + b


def _np_loss(kind: str):
    def run(attrs: dict, x: np.ndarray, label: Any = None) -> np.ndarray:
        if kind == "sigmoid":
            return _sigmoid(x)
        if kind == "softmax":
            return _softmax(x, axis=1 if _flag(attrs, "multi_output") else -1)
        return x

    return run


def _axes(attrs: dict, ndim: int) -> tuple[int, ...]:
    """The axes of a reduction (``sum``): MXNet writes ``axis`` as ``"1"``, ``"(1,)"``, ``"()"`` or ``"None"``
    (all axes), and ``exclude`` reduces over the other axes (``src/operator/tensor/broadcast_reduce_op.h``)."""
    text = str(attrs.get("axis", "None")).strip("()[] ")
    axes = tuple(int(a) % ndim for a in text.split(",") if a.strip()) if text not in ("", "None") else ()
    if not axes:
        return tuple(range(ndim))
    return tuple(a for a in range(ndim) if a not in axes) if _flag(attrs, "exclude") else axes


def _np_sum(attrs: dict, x: np.ndarray) -> np.ndarray:
    return x.sum(axis=_axes(attrs, x.ndim), keepdims=_flag(attrs, "keepdims"))


def _scalar(attrs: dict) -> float:
    return float(attrs.get("scalar", 0))


_NUMPY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "dot": _np_dot,
    "FullyConnected": _np_fully_connected,
    "broadcast_add": lambda attrs, a, b: a + b,
    "broadcast_plus": lambda attrs, a, b: a + b,
    "elemwise_add": lambda attrs, a, b: a + b,
    "_plus": lambda attrs, a, b: a + b,
    "broadcast_sub": lambda attrs, a, b: a - b,
    "broadcast_minus": lambda attrs, a, b: a - b,
    "elemwise_sub": lambda attrs, a, b: a - b,
    "_minus": lambda attrs, a, b: a - b,
    "broadcast_mul": lambda attrs, a, b: a * b,
    "elemwise_mul": lambda attrs, a, b: a * b,
    "_mul": lambda attrs, a, b: a * b,
    "_mul_scalar": lambda attrs, x: x * np.float32(_scalar(attrs)),
    "_plus_scalar": lambda attrs, x: x + np.float32(_scalar(attrs)),
    "_minus_scalar": lambda attrs, x: x - np.float32(_scalar(attrs)),
    "negative": lambda attrs, x: -x,
    "square": lambda attrs, x: np.square(x),
    "sum": _np_sum,
    "_square_sum": lambda attrs, x: _np_sum(attrs, np.square(x)),  # sum of squares (tensor/square_sum.cc)
    "Concat": lambda attrs, *xs: np.concatenate(xs, axis=int(attrs.get("dim", 1))),
    "concat": lambda attrs, *xs: np.concatenate(xs, axis=int(attrs.get("dim", 1))),
    **{op: _np_loss(kind) for op, kind in _LOSS_OUTPUTS.items()},
}


def _numpy_graph(graph_bytes: bytes, params: dict[str, np.ndarray], inputs: list[str], labels: list[str]):
    """A numpy evaluator of a small MXNet graph (the ops Linear Learner and Factorization Machines use, and a few
    element-wise ones); NotLoadable for any other op."""
    try:
        graph = json.loads(graph_bytes)
    except (ValueError, RecursionError) as e:
        raise CorruptArtifact(f"MXNet symbol file is not valid JSON ({e})") from None
    nodes, heads = graph["nodes"], graph["heads"]
    if any(e[0] >= i for i, n in enumerate(nodes) for e in n.get("inputs", [])):
        raise CorruptArtifact("the MXNet graph is not in topological order: a node reads a later node")
    unknown = sorted({n["op"] for n in nodes if n["op"] != "null" and n["op"] not in _NUMPY_OPS})
    if unknown:
        raise NotLoadable(f"the numpy backend does not implement MXNet op(s) {', '.join(unknown)}; "
                          "use backend='mxnet'")
    if len(heads) != 1:
        raise NotLoadable(f"the numpy backend evaluates single-output graphs; this one has {len(heads)} outputs")
    for n in nodes:
        if n["op"] == "null" and n["name"] not in params and n["name"] not in inputs and n["name"] not in labels:
            raise CorruptArtifact(f"the MXNet graph needs parameter {n['name']}, which the params file lacks")

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        values: list[Any] = []
        for n in nodes:
            if n["op"] == "null":
                values.append(feed.get(n["name"], params.get(n["name"])))
                continue
            attrs = n.get("attrs") or n.get("attr") or n.get("param") or {}
            args = [values[e[0]] for e in n["inputs"]]
            try:
                values.append(_NUMPY_OPS[n["op"]](attrs, *args))
            except (ValueError, TypeError) as e:
                raise ArtifactError(f"the input does not fit the model (MXNet op {n['op']}: {e})") from None
        return values[heads[0][0]]

    return run


# ------------------------------------------------------------------------------------------ built-ins

def _zipped(root: Path, summary: dict, algorithm: str, mx, host: str) -> LoadedModel:
    folder = _unzip(root, host)
    inner = summary.get("inner_files") or []
    symbol_name = next((n for n in inner if n.endswith("symbol.json")), None)
    params_name = next((n for n in inner if n == "params" or n.endswith(".params")), None)
    if symbol_name is None or params_name is None:
        raise NotLoadable(f"{host} does not hold the symbol and params files of a {algorithm} model")
    for name in (symbol_name, params_name):
        if not (folder / name).is_file():
            raise NotLoadable(f"{host} does not hold the {name} file of a {algorithm} model")
    symbol, params = folder / symbol_name, folder / params_name
    inputs, labels, graph = _graph_io(symbol, params, None)
    info = {"algorithm": algorithm, "host": host, "symbol": symbol_name, "params": params_name,
            "inputs": inputs, "labels": labels, "mxnet_version_saved": graph["mxnet_version"],
            "backend": "numpy" if mx is None else "mxnet"}
    if mx is None:
        weights = {mxformat.strip_prefix(k): v for k, v in mxformat.load_arrays(params.read_bytes()).items()}
        evaluate = _numpy_graph(symbol.read_bytes(), weights, inputs, labels)
        raw, model = (lambda data: evaluate(_feed(data, inputs, None))), weights
    else:
        info["mxnet_version_installed"] = mx.__version__
        if algorithm == "factorization-machines":
            model, sym = _dense_symbol_block(mx, symbol, params, inputs + labels)
        else:
            model, sym = _symbol_block(mx, symbol, params, inputs + labels), mx.sym.load(str(symbol))
        if algorithm == "ntm":
            raw = _ntm_encoder(mx, model, sym)
            info["output"] = "mean"
        else:
            raw = _gluon_predictor(mx, model, sym, inputs, labels, None)
    width = _builtin_width(summary, algorithm, symbol, params)
    info["feature_dim"] = width
    if algorithm == "linear-learner":
        predict = _linear_learner_output(raw, summary)
        info.update(predictor_type=summary.get("predictor_type"), threshold=summary.get("threshold"))
        sample = (lambda: _sample_rows(width)) if width else None
    elif algorithm == "factorization-machines":
        predictor = summary.get("predictor_type")
        predict = _fm_output(raw, predictor)
        info.update(predictor_type=predictor, num_factors=summary.get("num_factors"))
        sample = (lambda: _one_hot_rows(width)) if width else None
        if mx is not None and width:  # the graph runs as rewritten (a sparse-only op left would fail here)
            _check_runs(raw, _one_hot_rows(width), algorithm)
    else:
        predict = raw
        sample = (lambda: _count_rows(width)) if width else None  # NTM: word counts of a bag of words
    return LoadedModel(model, "mxnet", predict, info=info, sample_fn=sample)


def _builtin_width(summary: dict, algorithm: str, symbol: Path, params: Path) -> int | None:
    """The number of input columns: feature_dim (Linear Learner, FM), vocabulary size (NTM), else what the graph
    and the stored parameter shapes fix for the ``data`` input."""
    key = {"linear-learner": "feature_dim", "factorization-machines": "feature_dim", "ntm": "vocab_size"}.get(algorithm)
    width = summary.get(key) if key else None
    if isinstance(width, int) and width > 0:
        return width
    stored = {p.name or "": p.shape for p in mxformat.read_params(params.read_bytes())}
    found = mxformat.data_input_shapes(symbol.read_bytes(), stored, ["data"]).get("data")
    return found[1] if found and len(found) == 2 and isinstance(found[1], int) else None


def _check_runs(predict: Callable[[Any], Any], sample: np.ndarray, what: str) -> None:
    try:
        predict(sample)
    except ArtifactError as e:
        raise NotLoadable(f"MXNet cannot run this {what} graph: {e}") from None


_SPARSE_ONLY = {"sparse_retain", "_sparse_retain", "_contrib_SparseEmbedding", "_contrib_sparse_embedding"}


def _dense_graph(graph_bytes: bytes) -> str:
    """The symbol JSON with variables' ``__storage_type__`` dropped, ``cast_storage`` made a copy and
    ``_square_sum(x)`` written ``sum(square(x))`` (same attributes): a graph Gluon runs on dense arrays."""
    try:
        graph = json.loads(graph_bytes)
    except (ValueError, RecursionError) as e:
        raise CorruptArtifact(f"MXNet symbol file is not valid JSON ({e})") from None
    nodes = graph["nodes"]
    unsupported = sorted({n["op"] for n in nodes} & _SPARSE_ONLY)
    if unsupported:
        raise NotLoadable(f"the graph uses the sparse-only MXNet op(s) {', '.join(unsupported)}, which Gluon cannot "
                          "run on dense parameters")
    out: list[dict] = []
    where: dict[int, int] = {}  # old node index -> new node index

    def entry(e: list) -> list:
        return [where[e[0]], *e[1:]]

    for i, n in enumerate(nodes):
        n = dict(n)
        for key in ("attrs", "attr", "param"):
            if isinstance(n.get(key), dict):
                n[key] = {k: v for k, v in n[key].items() if k != "__storage_type__"}
        inputs = [entry(e) for e in n.get("inputs", [])]
        if n["op"] == "cast_storage":
            n = {"op": "_copy", "name": n["name"], "inputs": inputs}
        elif n["op"] == "_square_sum":
            out.append({"op": "square", "name": f"{n['name']}_square", "inputs": inputs})
            n["op"], inputs = "sum", [[len(out) - 1, 0, 0]]
        n["inputs"] = inputs
        where[i] = len(out)
        out.append(n)
    dense = {**graph, "nodes": out, "arg_nodes": [where[i] for i in graph.get("arg_nodes", [])],
             "heads": [entry(h) for h in graph["heads"]]}
    dense.pop("node_row_ptr", None)  # optional (nnvm recomputes it); the node count changed
    return json.dumps(dense)


def _dense_symbol_block(mx, symbol: Path, params: Path, names: list[str]):
    """A Gluon SymbolBlock of a graph with sparse parameters, run densely (see the module docstring)."""
    try:
        sym = mx.sym.load_json(_dense_graph(symbol.read_bytes()))
        stored = mx.nd.load(str(params))
        if not isinstance(stored, dict):
            raise CorruptArtifact(f"{params.name} holds unnamed arrays; a model's parameters are named")
        dense = {k: (a.tostype("default") if a.stype != "default" else a) for k, a in stored.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Cannot decide type for the following arguments"
            block = mx.gluon.SymbolBlock(sym, [mx.sym.var(n) for n in names])
            block.collect_params().load_dict(dense, ctx=mx.cpu(), cast_dtype=True, dtype_source="saved",
                                             filename=params.name)
    except (AssertionError, ValueError, KeyError, mx.base.MXNetError) as e:
        raise CorruptArtifact(f"MXNet cannot load {symbol.name} with {params.name}: {_first_line(e)}") from None
    return block, sym


def _fm_output(raw: Callable[[Any], np.ndarray], predictor: str | None):
    def predict(data: Any):
        pd = require("pandas", "mxnet")
        score = np.asarray(raw(data))
        score = score.reshape(len(score), -1)[:, 0]
        if predictor == "binary_classifier":
            return pd.DataFrame({"score": score, "predicted_label": (score > 0.5).astype(np.int64)})
        return pd.DataFrame({"score": score})

    return predict


# ------------------------------------------------------------------------------------------ samples

def _sample_rows(dim: int, rows: int = 2) -> np.ndarray:
    """``rows`` x ``dim`` float32 values in [0, 1), the same every time (built from the width only)."""
    return np.random.default_rng(0).random((rows, dim), dtype=np.float32)


def _one_hot_rows(dim: int, rows: int = 2) -> np.ndarray:
    """Rows with two ones each, like the one-hot user/item rows Factorization Machines are trained on."""
    x = np.zeros((rows, dim), dtype=np.float32)
    for i in range(rows):
        x[i, [i % dim, (dim // 2 + i) % dim]] = 1.0
    return x


def _count_rows(dim: int, rows: int = 2) -> np.ndarray:
    """Small word counts (0 to 2) over a vocabulary of ``dim`` words: bag-of-words rows for NTM."""
    return np.random.default_rng(0).integers(0, 3, size=(rows, dim)).astype(np.float32)


def _shaped_sample(shapes: dict[str, list]) -> Any:
    """Arrays of the given shapes (the first dimension, the batch, set to 1, or 2 for rows of features): one array
    for one input, else a dict by input name."""
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in shapes.items():
        dims = [int(d) for d in shape[1:]]
        arrays[name] = rng.random((2 if len(shape) <= 2 else 1, *dims), dtype=np.float32)
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _free_dims_from_mxnet(mx, sym, shapes: dict[str, list], stored: dict[str, tuple]) -> dict[str, list] | None:
    """Fill the free non-batch dimensions (image sizes) with the smallest size for which MXNet's shape inference
    gives every stored parameter its stored shape; None when no size up to 1024 does."""
    if all(d is not None for shape in shapes.values() for d in shape[1:]):
        return shapes
    names = sym.list_arguments() + sym.list_auxiliary_states()
    for size in range(1, 1025):
        trial = {n: [1 if i == 0 else (size if d is None else d) for i, d in enumerate(s)] for n, s in shapes.items()}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                args, _, aux = sym.infer_shape_partial(**{n: tuple(s) for n, s in trial.items()})
        except mx.base.MXNetError:
            continue
        if args is None:
            continue
        inferred = dict(zip(names, list(args) + list(aux or [])))
        if all(tuple(inferred.get(n) or ()) == tuple(shape) for n, shape in stored.items() if n in inferred):
            return trial
    return None


def _export_sample(mx, sym, symbol: Path, params: Path, inputs: list[str], shapes: list[dict] | None):
    """sample_fn of an export: from model-shapes.json, else from the graph and the stored parameter shapes."""
    if shapes:
        by_name = {s["name"]: s["shape"] for s in shapes}
        if all(n in by_name and all(isinstance(d, int) or d is None for d in by_name[n]) for n in inputs):
            fixed = {n: [None, *[d if d else 1 for d in by_name[n][1:]]] for n in inputs}
            return lambda: _shaped_sample(fixed)
    stored = {mxformat.strip_prefix(p.name): p.shape for p in mxformat.read_params(params.read_bytes())
              if p.name and p.shape is not None}
    found = mxformat.data_input_shapes(symbol.read_bytes(), stored, inputs)
    if any(found.get(n) is None for n in inputs):
        return None
    found = {n: found[n] for n in inputs}

    def build():
        filled = _free_dims_from_mxnet(mx, sym, found, stored)
        if filled is None:
            raise ArtifactError(f"no input size up to 1024 fits the weights of {symbol.name}, so no sample input "
                                "can be built")
        return _shaped_sample(filled)

    return build


def _ntm_encoder(mx, block, sym):
    """Predictor on the encoder's ``mean`` layer, sharing the loaded block's parameters."""
    internals = sym.get_internals()
    if "mean_output" not in internals.list_outputs():
        raise NotLoadable("this NTM graph has no 'mean' encoder layer to predict with")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = mx.gluon.SymbolBlock(internals["mean_output"], [mx.sym.var("data")], params=block.collect_params())
    return _gluon_predictor(mx, encoder, internals["mean_output"], ["data"], [], None)


def _linear_learner_output(raw: Callable[[Any], np.ndarray], summary: dict):
    predictor = summary.get("predictor_type")
    threshold = summary.get("threshold")

    def predict(data: Any):
        pd = require("pandas", "mxnet")
        score = np.asarray(raw(data))
        if predictor == "multiclass_classifier":
            return pd.DataFrame({"score": list(score), "predicted_label": score.argmax(axis=1)})
        score = score.reshape(len(score), -1)[:, 0]
        if predictor == "binary_classifier":
            cut = 0.5 if threshold is None else float(threshold)
            return pd.DataFrame({"score": score, "predicted_label": (score > cut).astype(np.int64)})
        return pd.DataFrame({"score": score})

    return predict


def _ndarray_list(root: Path, summary: dict, algorithm: str, mx, host: str) -> LoadedModel:
    path = root / host
    info: dict[str, Any] = {"algorithm": algorithm, "host": host, "backend": "numpy" if mx is None else "mxnet"}
    native: dict[str, Any]
    if mx is None:
        native = mxformat.load_arrays(path.read_bytes())
        arrays = native
    else:
        info["mxnet_version_installed"] = mx.__version__
        try:
            stored = mx.nd.load(str(path))
        except (ValueError, mx.base.MXNetError) as e:  # ValueError: undecodable array names
            raise CorruptArtifact(f"MXNet cannot read {host}: {_first_line(e)}") from None
        native = stored if isinstance(stored, dict) else {str(i): a for i, a in enumerate(stored)}
        arrays = {k: a.asnumpy() for k, a in native.items()}
    if algorithm == "kmeans":
        if len(arrays) != 1 or next(iter(arrays.values())).ndim != 2:
            raise CorruptArtifact(f"{host} should hold one (k x dim) array of k-means centroids")
        centroids = next(iter(arrays.values()))
        k, dim = centroids.shape
        info.update(k=k, dim=dim)
        return LoadedModel(next(iter(native.values())), "mxnet", _kmeans_predictor(centroids), info=info,
                           sample_fn=lambda: _sample_rows(dim))
    if "v" not in arrays or arrays["v"].ndim != 2:
        raise CorruptArtifact(f"{host} has no 2-D PCA component matrix 'v'")
    v = arrays["v"]
    mean = arrays["mean"].reshape(-1) if "mean" in arrays else None
    if mean is not None and mean.shape[0] != v.shape[0]:
        raise CorruptArtifact(f"{host}: the PCA mean has {mean.shape[0]} values for {v.shape[0]} features")
    feature_dim = v.shape[0]
    info.update(feature_dim=feature_dim, num_components=v.shape[1], subtracts_mean=mean is not None)
    return LoadedModel(native, "mxnet", _pca_predictor(v, mean), info=info,
                       sample_fn=lambda: _sample_rows(feature_dim))


def _rows(data: Any, dim: int, what: str) -> np.ndarray:
    x = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ArtifactError(f"the {what} model takes rows of {dim} features, not an array of shape {x.shape}")
    return x


def _kmeans_predictor(centroids: np.ndarray):
    c = centroids.astype(np.float64)
    chunk = max(1, (1 << 22) // max(1, c.size))

    def predict(data: Any):
        pd = require("pandas", "mxnet")
        x = _rows(data, c.shape[1], "k-means")
        index = np.empty(len(x), dtype=np.int64)
        dist = np.empty(len(x), dtype=np.float64)
        for start in range(0, len(x), chunk):
            d2 = ((x[start:start + chunk, None, :] - c[None]) ** 2).sum(axis=2)
            index[start:start + chunk] = d2.argmin(axis=1)
            dist[start:start + chunk] = np.sqrt(d2.min(axis=1))
        return pd.DataFrame({"closest_cluster": index, "distance_to_cluster": dist})

    return predict


def _pca_predictor(v: np.ndarray, mean: np.ndarray | None):
    v64 = v.astype(np.float64)
    m64 = mean.astype(np.float64) if mean is not None else None

    def predict(data: Any):
        x = _rows(data, v.shape[0], "PCA")
        return (x - m64 if m64 is not None else x) @ v64

    return predict


def _image_classification(root: Path, summary: dict, mx) -> LoadedModel:
    files = summary.get("files") or []
    symbol_name = next((f for f in files if f.endswith("-symbol.json")), None)
    params_name = next((f for f in files if f.endswith(".params")), None)
    if symbol_name is None or params_name is None:
        raise NotLoadable("the image classification artifact lacks its symbol or .params file")
    shapes = summary.get("input_shapes")
    symbol, params = root / symbol_name, root / params_name
    inputs, labels, graph = _graph_io(symbol, params, shapes)
    block = _symbol_block(mx, symbol, params, inputs + labels)
    info = {"algorithm": "image-classification", "symbol": symbol_name, "params": params_name,
            "epoch": summary.get("epoch"), "inputs": inputs, "labels": labels, "input_shapes": shapes,
            "mxnet_version_saved": graph["mxnet_version"], "mxnet_version_installed": mx.__version__,
            "backend": "mxnet"}
    sym = mx.sym.load(str(symbol))
    predict = _gluon_predictor(mx, block, sym, inputs, labels, shapes)
    return LoadedModel(block, "mxnet", predict, info=info,
                       sample_fn=_export_sample(mx, sym, symbol, params, inputs, shapes))


# ------------------------------------------------------------------------------------------ exports

def _read_shapes(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    try:
        shapes = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        raise CorruptArtifact(f"{path.name} is not valid JSON") from None
    if not isinstance(shapes, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                               and isinstance(s.get("shape"), list) for s in shapes):
        raise CorruptArtifact(f"{path.name} is not a list of {{'name', 'shape'}} entries")
    return shapes


def _export(root: Path, report, mx) -> LoadedModel:
    chosen = mxformat.export_files([m.path for m in report.models if m.format == "mxnet-symbol"],
                                   [m.path for m in report.models if m.format == "mxnet-params"])
    if chosen.reason:  # the same sentence inspection reports as not_loadable_reason
        raise NotLoadable(chosen.reason)
    symbol_name, params_name = chosen.symbol, chosen.params
    assert symbol_name is not None and params_name is not None  # export_files gives both, or a reason
    folder = PurePosixPath(symbol_name).parent
    shapes = _read_shapes(root / folder / "model-shapes.json")
    symbol, params_path = root / symbol_name, root / params_name
    inputs, labels, graph = _graph_io(symbol, params_path, shapes)
    block = _symbol_block(mx, symbol, params_path, inputs + labels)
    info = {"symbol": symbol_name, "params": params_name, "inputs": inputs, "labels": labels,
            "input_shapes": shapes, "mxnet_version_saved": graph["mxnet_version"],
            "mxnet_version_installed": mx.__version__, "backend": "mxnet"}
    sym = mx.sym.load(str(symbol))
    predict = _gluon_predictor(mx, block, sym, inputs, labels, shapes)
    return LoadedModel(block, "mxnet", predict, info=info,
                       sample_fn=_export_sample(mx, sym, symbol, params_path, inputs, shapes))
