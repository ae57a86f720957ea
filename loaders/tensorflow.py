"""TensorFlow loader (extra ``tensorflow``): SavedModels written by any TensorFlow release, and Keras files.

Layouts (all found by inspection from ``saved_model.pb`` content, see ``artifact_tools/inspection.py``):
TensorFlow Serving's ``<version>/`` and ``<name>/<version>/`` (the server serves the highest numeric version,
tensorflow/serving ``tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc``), the legacy
SageMaker TensorFlow estimator's ``export/Servo/<timestamp>/`` and a SavedModel inside an extra top folder.
The highest version is loaded unless ``version=`` names another one (a number, or the SavedModel's folder).

Two ways in, chosen by what ``saved_model.pb`` holds (``formats/savedmodel.py``, ``tf1_style``):

- TensorFlow 2 SavedModels (with an object graph) load with ``tf.saved_model.load``; the signature is a
  concrete function whose ``structured_input_signature`` gives input names, dtypes and shapes.
- TensorFlow 1 SavedModels (``SavedModelBuilder``, estimators) load into a ``tf.compat.v1.Session`` with
  ``tf.compat.v1.saved_model.loader.load``; the signature's ``TensorInfo`` names the graph tensors fed and
  fetched. TF 2's own v1 wrapper is not used: it trusts ``TensorInfo.tensor_shape``, which TF 1.0 did not write,
  and then refuses graphs whose tensors are not scalars (tensorflow ``python/saved_model/load_v1_in_v2.py``).

The signature is chosen by name (``signature=``, default ``serving_default``: tensorflow
``python/saved_model/signature_constants.py`` ``DEFAULT_SERVING_SIGNATURE_DEF_KEY``). ``predict`` accepts a numpy
array or list (single-input signatures), a dict of arrays or a pandas DataFrame (one column per input, or the
whole frame for a single input); values are cast to the signature's dtypes and reshaped to its static shape
when that is unambiguous (``(None, 1)`` turns ``[1, 2, 3]`` into a column, ``(None, 4)`` turns a 4-vector into
one row). It returns a numpy array for a single output, else a dict of arrays.

Estimator ``classify``/``regress`` signatures take serialized ``tf.Example`` protos. Given numbers instead of
bytes, the TF 1 path builds the protos itself from the graph's ``ParseExample``/``ParseExampleV2`` op fed by
the input placeholder: its ``dense_keys`` name the features and ``Tdense`` their types (op inputs in order
serialized, names, sparse_keys, dense_keys[, ragged_keys], dense_defaults: tensorflow
``core/ops/parsing_ops.cc``). Sparse features are not built.

Keras Lambda layers (reported by inspection, or read here from ``keras_metadata.pb`` which the report does not
cover) hold Python bytecode, so they need ``trust=True``. Keras files (``.keras`` zips, HDF5 models) load with
Keras 3 (``safe_mode`` off only with trust) or, for ``.keras`` files written by Keras 2, with ``tf_keras``.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from artifact_tools.errors import ArtifactError, NotLoadable, TrustRequired
from artifact_tools.formats import savedmodel

from .base import LoadedModel, newer_version_warning, parse_options, require

DEFAULT_SIGNATURE = "serving_default"
_KERAS_ZIP_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")


@dataclass(frozen=True)
class TensorFlowOptions:
    """``version``: the SavedModel to load, a version number or its folder (default: the highest version);
    ``signature``: the signature ``predict`` runs."""

    version: int | str | None = None
    signature: str = DEFAULT_SIGNATURE


OPTIONS = TensorFlowOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the chosen SavedModel (or the Keras file) the report names; options: :class:`TensorFlowOptions`."""
    opts = parse_options(TensorFlowOptions, options, "TensorFlow artifacts")
    saved = [m for m in report.models if m.format == "tensorflow-savedmodel"]
    if saved:
        return _load_saved_model(root, _choose(saved, opts.version, report.root_prefix), opts.signature, trust)
    keras = [m for m in report.models if m.format == "keras"]
    if keras:
        if opts != TensorFlowOptions():
            raise ArtifactError(f"version= and signature= choose among SavedModels; {keras[0].path} is a Keras "
                                "file, which has neither")
        return _load_keras(root, keras[0].path, trust)
    raise NotLoadable("the report names no TensorFlow SavedModel or Keras file to load")


def _import_tf():
    return require("tensorflow", "tensorflow")  # its C++ log level is the application's choice (the CLI's)


# ----------------------------------------------------------------------------------- SavedModels

def _choose(entries: list, version: int | str | None, root_prefix: str = ""):
    """The SavedModel entry to load: the highest version, or the one ``version`` names (a number, or the
    folder as the report lists it or as the archive does, with the extra top folder)."""
    def label(e) -> str:
        return e.summary.get("model_dir") or "."

    if version is None:
        numbered = [e for e in entries if e.summary.get("version") is not None]
        if numbered:
            top = max(e.summary["version"] for e in numbered)
            entries = [e for e in numbered if e.summary["version"] == top]
        if len(entries) > 1:
            raise ArtifactError(f"the artifact holds {len(entries)} SavedModels ({', '.join(map(label, entries))}); "
                                "pass version=<folder> to choose one")
        return entries[0]
    wanted = str(version)
    matches = [e for e in entries if wanted.strip("/") in (label(e), f"{root_prefix}/{label(e)}")]
    if not matches and wanted.isdigit():
        matches = [e for e in entries if e.summary.get("version") == int(wanted)]
    if len(matches) != 1:
        found = ", ".join(label(e) for e in entries)
        raise ArtifactError(f"version {version} {'is ambiguous' if matches else 'is not in the artifact'} "
                            f"(SavedModels: {found})")
    return matches[0]


def _load_saved_model(root: Path, entry, signature: str, trust: bool | str) -> LoadedModel:
    summary = entry.summary
    model_dir = root / PurePosixPath(entry.path).parent
    graphs = summary.get("meta_graphs") or []
    meta = next((g for g in graphs if "serve" in g.get("tags", [])), graphs[0] if graphs else {})
    lambdas = _lambda_layers(root / entry.path, summary)
    if lambdas and not trust:
        raise TrustRequired(f"{entry.path} has Keras Lambda layer(s) {', '.join(lambdas)}, which carry Python "
                            "bytecode; pass trust=True (CLI: --trust) to load it",
                            [f"Keras Lambda layer {name}" for name in lambdas])
    tf = _import_tf()
    import numpy as np

    saved_with = meta.get("tensorflow_version")
    info: dict[str, Any] = {"model_dir": str(PurePosixPath(entry.path).parent), "version": summary.get("version"),
                            "tags": meta.get("tags", []), "tensorflow_version_saved": saved_with,
                            "tensorflow_version_installed": tf.__version__}
    if lambdas is None:
        info["note"] = "the Keras layer configs were not saved, so Lambda layers could not be ruled out"
    warning = newer_version_warning("TensorFlow", saved_with, tf.__version__)
    if warning:
        info["warning"] = warning
    try:
        if meta.get("tf1_style"):
            model, name, inputs, run, examples = _tf1(tf, model_dir, meta.get("tags") or ["serve"], signature)
            info["api"] = "tf.compat.v1 Session"
        else:
            model, name, inputs, run = _tf2(tf, model_dir, meta.get("tags") or None, signature)
            examples = None
            info["api"] = "tf.saved_model.load"
    except ArtifactError:
        raise
    except Exception as e:  # TensorFlow raises many types (NotFoundError, ValueError, ...) for one cause: cannot load
        raise NotLoadable(_reason(e, entry.path, "TensorFlow", saved_with, tf.__version__)) from None
    info["signature"] = name
    info["inputs"] = {k: {"dtype": np.dtype(d).name, "shape": s} for k, (d, s) in inputs.items()}
    specs: dict[str, tuple[Any, list | None]]
    if examples is not None:
        info["example_features"] = {k: {"dtype": np.dtype(t.as_numpy_dtype).name, "shape": shape}
                                    for k, (t, shape) in examples[1].items()}
        specs = {k: (t.as_numpy_dtype, [None, *(shape or [1])]) for k, (t, shape) in examples[1].items()}
    else:
        specs = inputs
    return LoadedModel(model, "tensorflow", _predictor(tf, inputs, run, examples, name), info=info,
                       sample_fn=lambda: _sample(specs))


def _lambda_layers(pb_path: Path, summary: dict) -> list[str] | None:
    """Lambda layer names; ``keras_metadata.pb`` (tf-keras SavedModels) is read here when present."""
    metadata = pb_path.parent / "keras_metadata.pb"
    if metadata.is_file():
        return savedmodel.summarize(pb_path.read_bytes(), metadata.read_bytes()).get("keras_lambda_layers")
    return summary.get("keras_lambda_layers")


def _signature_name(wanted: str, available: list[str]) -> str:
    if wanted in available:
        return wanted
    if wanted == DEFAULT_SIGNATURE and len(available) == 1:
        return available[0]
    raise ArtifactError(f"the SavedModel has no signature {wanted!r}; it has {', '.join(sorted(available)) or 'none'}")


def _tf2(tf, model_dir: Path, tags, signature: str):
    obj = tf.saved_model.load(str(model_dir), tags=tags)
    signatures = dict(obj.signatures)
    name = _signature_name(signature, list(signatures))
    fn = signatures[name]
    _, specs = fn.structured_input_signature
    inputs = {k: (spec.dtype.as_numpy_dtype, None if spec.shape.rank is None else spec.shape.as_list())
              for k, spec in sorted(specs.items())}
    dtypes = {k: spec.dtype for k, spec in specs.items()}

    def run(feeds: dict) -> dict:
        out = fn(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in feeds.items()})
        return {k: out[k].numpy() for k in sorted(out)}  # (see _tf1: one order in every process)

    return obj, name, inputs, run


def _tf1(tf, model_dir: Path, tags: list[str], signature: str):
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, tags, str(model_dir))
    name = _signature_name(signature, [k for k in meta.signature_def if not k.startswith("__saved_model_")])
    sig = meta.signature_def[name]
    for key, ti in list(sig.inputs.items()) + list(sig.outputs.items()):
        if not ti.name:
            raise NotLoadable(f"signature {name!r} uses a sparse or composite tensor ({key}), "
                              "which predict cannot feed")
    # A SignatureDef's inputs and outputs are protobuf maps, whose order is not kept (it changed from process to
    # process: a JSON response's keys with it); taken in the order of their names, the same in every process.
    feeds = {k: graph.get_tensor_by_name(ti.name) for k, ti in sorted(sig.inputs.items())}
    fetches = {k: graph.get_tensor_by_name(ti.name) for k, ti in sorted(sig.outputs.items())}
    # The graph's tensors know their dtypes and shapes even where the TensorInfo does not record them.
    inputs = {k: (t.dtype.as_numpy_dtype, None if t.shape.rank is None else t.shape.as_list())
              for k, t in feeds.items()}

    def run(values: dict) -> dict:
        out = session.run(fetches, {feeds[k]: v for k, v in values.items()})
        return {k: out[k] for k in fetches}

    examples = None
    if len(feeds) == 1:
        (key, placeholder), = feeds.items()
        if placeholder.dtype == tf.string:
            features = _example_features(session, placeholder)
            if features:
                examples = (key, features)
    return session, name, inputs, run, examples


def _example_features(session, placeholder) -> dict[str, Any]:
    """Dense feature name -> (TF dtype, shape of one example's value or None) of the ParseExample op that parses
    ``placeholder`` (its ``Tdense`` and ``dense_shapes`` attributes, tensorflow ``core/ops/parsing_ops.cc``)."""
    import tensorflow as tf

    for op in placeholder.consumers():
        if op.type == "ParseExample":
            n_sparse, n_dense = op.get_attr("Nsparse"), op.get_attr("Ndense")
            keys = session.run(list(op.inputs[2 + n_sparse:2 + n_sparse + n_dense]))
        elif op.type == "ParseExampleV2":
            keys = list(session.run(op.inputs[3]))
        else:
            continue
        try:
            shapes = [tf.TensorShape(s) for s in op.get_attr("dense_shapes")]
        except (ValueError, TypeError):
            shapes = []
        shapes = [s.as_list() if s.rank is not None else None for s in shapes]
        shapes += [None] * (len(keys) - len(shapes))
        return {k.decode(): (t, shape) for k, t, shape in zip(keys, op.get_attr("Tdense"), shapes)}
    return {}


def _reason(e: Exception, path: str, what: str, saved_with: str | None, installed: str) -> str:
    text = str(e)
    op = re.search(r"Op type not registered '([^']+)'", text)
    if op:
        return (f"{path} uses the TensorFlow op {op.group(1)}, which TensorFlow {installed} does not provide "
                f"(saved with TensorFlow {saved_with or 'unknown'})")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    return f"{what} {installed} cannot load {path}: {first[:300]}"


# ------------------------------------------------------------------------------------ samples

SAMPLE_BATCH = 2  # rows in a sample; an unknown batch (first) dimension becomes this
SAMPLE_DIM = 1  # an unknown dimension after the first becomes this


def sample_shape(shape: list | None) -> tuple[int, ...]:
    """The concrete shape of a sample for a signature input shape: unknown dims (None or negative) become
    :data:`SAMPLE_BATCH` on the first axis and :data:`SAMPLE_DIM` elsewhere; an unknown rank is one value per
    row."""
    if shape is None:
        return (SAMPLE_BATCH,)
    return tuple((SAMPLE_BATCH if i == 0 else SAMPLE_DIM) if d is None or d < 0 else int(d)
                 for i, d in enumerate(shape))


def sample_values(dtype, shape: tuple[int, ...], seed: int = 0):
    """Values of ``dtype`` (a numpy type): seeded normal numbers for floats, 0/1 for integers (token ids and
    indices stay in range), False for booleans, the word ``b"a"`` for strings."""
    import numpy as np

    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind == "f" or dt.kind == "c":
        return rng.normal(size=shape).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 2, size=shape).astype(dt)
    if dt.kind == "b":
        return np.zeros(shape, dtype=bool)
    return np.full(shape, b"a", dtype=object)


def _sample(specs: dict[str, tuple[Any, list | None]]) -> Any:
    """A sample for the signature inputs (name -> (numpy dtype, shape)): one array, or a dict for several."""
    values = {k: sample_values(dtype, sample_shape(shape), seed=i)
              for i, (k, (dtype, shape)) in enumerate(specs.items())}
    return next(iter(values.values())) if len(values) == 1 else values


# ------------------------------------------------------------------------------------ prediction

def _unwrap_rest(data: Any, names: list[str]) -> Any:
    """The tensors of a TensorFlow Serving REST body (``{"instances": [...]}`` or ``{"inputs": ...}``,
    tensorflow/serving ``tensorflow_serving/g3doc/api_rest.md``); row-format instances (a list of dicts)
    become columns. Anything else is returned unchanged."""
    keys = set(data) if isinstance(data, dict) else set()
    if len(keys) != 1 or not keys <= {"instances", "inputs"} or keys & set(names):
        return data
    data = next(iter(data.values()))
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return {k: [row.get(k) for row in data] for k in data[0]}
    return data


def _columns(data: Any, names: list[str]) -> dict[str, Any]:
    """Split the caller's input into one value per input name."""
    if isinstance(data, dict) or hasattr(data, "columns"):
        keys = list(data.keys()) if isinstance(data, dict) else list(data.columns)
        if len(names) == 1 and names[0] not in keys:
            return {names[0]: data.to_numpy() if hasattr(data, "to_numpy") else data}
        missing = [n for n in names if n not in keys]
        if missing:
            raise ArtifactError(f"the input lacks {', '.join(missing)}; the signature takes {', '.join(names)}")
        return {n: data[n].to_numpy() if hasattr(data[n], "to_numpy") else data[n] for n in names}
    if len(names) != 1:
        raise ArtifactError(f"the signature takes {len(names)} inputs ({', '.join(names)}); pass a dict or DataFrame")
    return {names[0]: data}


def _fit(value: Any, dtype, shape: list | None):
    """Cast to the input's dtype; reshape to its static shape when exactly one dimension is unknown."""
    import numpy as np

    arr = np.asarray(value, dtype=object if dtype is object else dtype)
    if shape is not None and arr.ndim != len(shape):
        target = [-1 if d is None or d < 0 else d for d in shape]
        if target.count(-1) <= 1:
            try:
                arr = arr.reshape(target)
            except ValueError:
                pass  # left as given: TensorFlow names the mismatch
    return arr


def _serialized_examples(tf, data: Any, features: dict[str, Any]):
    """Serialized ``tf.train.Example`` protos, one per row, built from numbers."""
    import numpy as np

    names = list(features)
    columns = _columns(data, names)
    arrays = {}
    for n in names:
        arr = np.atleast_1d(np.asarray(columns[n], dtype=features[n][0].as_numpy_dtype))
        arrays[n] = arr.reshape(len(arr), -1) if arr.ndim > 1 or len(names) > 1 else arr.reshape(1, -1)
    rows = {len(a) for a in arrays.values()}
    if len(rows) != 1:
        raise ArtifactError("every feature must have the same number of rows")

    def feature(values, dtype):
        if dtype == tf.string:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))
        if dtype.is_integer:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))

    return np.array([tf.train.Example(features=tf.train.Features(feature={
        n: feature(arrays[n][i], features[n][0]) for n in names})).SerializeToString() for i in range(rows.pop())],
        dtype=object)


def serialized_examples(loaded: LoadedModel, data: Any):
    """The serialized ``tf.Example`` protos (an object array) that ``loaded``'s signature parses, built from feature
    values as ``predict`` builds them; for a signature that takes protos (``info["example_features"]``), e.g. to
    feed the SavedModel as TensorFlow Serving is fed. Protos given as they are are returned unchanged."""
    import numpy as np

    features = loaded.info.get("example_features")
    if not features:
        raise ArtifactError("the signature does not take serialized tf.Example protos")
    names = list(loaded.info.get("inputs") or [])
    if len(names) == 1 and _serialized(data, names[0]):
        value = data[names[0]] if isinstance(data, dict) else data
        return np.asarray(value, dtype=object)
    tf = _import_tf()
    return _serialized_examples(tf, data, {k: (tf.as_dtype(np.dtype(v["dtype"])), v["shape"])
                                           for k, v in features.items()})


def _serialized(data: Any, name: str) -> bool:
    """Whether the caller passed the serialized protos themselves rather than feature values."""
    import numpy as np

    if isinstance(data, dict) or hasattr(data, "columns"):
        if name not in (data.keys() if isinstance(data, dict) else data.columns):
            return False
        data = data[name]
    return np.asarray(data).dtype.kind in "OSU"


def _predictor(tf, inputs: dict, run: Callable[[dict], dict], examples, signature: str):
    names = list(inputs)

    def predict(data: Any):
        data = _unwrap_rest(data, names)
        try:
            if examples is not None and not _serialized(data, examples[0]):
                data = {examples[0]: _serialized_examples(tf, data, examples[1])}
            out = run({k: _fit(v, *inputs[k]) for k, v in _columns(data, names).items()})
        except (tf.errors.OpError, ValueError, TypeError) as e:
            detail = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ArtifactError(f"signature {signature!r} rejected the input: {detail[:300]}") from None
        return next(iter(out.values())) if len(out) == 1 else out

    return predict


# ------------------------------------------------------------------------------------ Keras files

def _load_keras(root: Path, rel: str, trust: bool | str) -> LoadedModel:
    path = root / rel
    siblings = [path.parent / n for n in _KERAS_ZIP_MEMBERS]
    unpacked = PurePosixPath(rel).name == "model.weights.h5" and (path.parent / "config.json").is_file()
    data = _zip_bytes([p for p in siblings if p.is_file()]) if unpacked else path.read_bytes()
    summary = savedmodel.summarize_keras(data)
    if not summary.get("config_saved"):
        raise NotLoadable(f"{rel} holds Keras weights without the model config, so the network cannot be rebuilt")
    lambdas = summary.get("lambda_layers") or []
    if lambdas and not trust:
        raise TrustRequired(f"{rel} has Keras Lambda layer(s) {', '.join(lambdas)}, which carry Python bytecode; "
                            "pass trust=True (CLI: --trust) to load it",
                            [f"Keras Lambda layer {name}" for name in lambdas])
    _import_tf()
    saved_with = summary.get("keras_version")
    keras2 = summary["format"] == "keras-zip" and str(saved_with or "").startswith("2.")
    keras = require("tf_keras" if keras2 else "keras", "tensorflow")
    suffix = ".keras" if summary["format"] == "keras-zip" else ".h5"
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / f"model{suffix}"
        target.write_bytes(data)  # Keras picks its reader by file suffix, which the artifact's name may lack
        try:
            model = keras.models.load_model(str(target), compile=False, safe_mode=not trust)
        except Exception as e:  # Keras raises ValueError/TypeError/OSError... for one cause: cannot rebuild
            raise NotLoadable(_reason(e, rel, "Keras", saved_with, keras.__version__)) from None
    info = {"file": rel, "keras_version_saved": saved_with, "keras_version_installed": keras.__version__}
    warning = newer_version_warning("Keras", saved_with, keras.__version__)
    if warning:
        info["warning"] = warning

    def predict(data: Any):
        import numpy as np

        if hasattr(data, "to_numpy"):
            data = data.to_numpy()
        elif not isinstance(data, dict):
            data = np.asarray(data)
        try:
            return model.predict(data, verbose=0)
        except (ValueError, TypeError) as e:
            detail = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ArtifactError(f"the Keras model rejected the input: {detail[:300]}") from None

    return LoadedModel(model, "tensorflow", predict, info=info, sample_fn=lambda: _keras_sample(model))


def _keras_sample(model: Any) -> Any:
    """A sample for the model's ``inputs`` (Keras tensors with a shape and dtype): one array, or a dict by input
    name for several."""
    import numpy as np

    tensors = list(getattr(model, "inputs", None) or [])
    if not tensors:
        raise ArtifactError("no sample input can be built: the Keras model declares no inputs (a subclassed model "
                            "that was never called)")
    specs = {}
    for t in tensors:
        shape = t.shape
        dims = None if getattr(shape, "rank", 0) is None else list(shape)
        dtype = getattr(t.dtype, "as_numpy_dtype", None) or np.dtype(str(t.dtype))
        specs[str(t.name).split(":")[0]] = (dtype, dims)
    return _sample(specs)


def _zip_bytes(files: list[Path]) -> bytes:
    """A ``.keras`` zip rebuilt from its unpacked members (an artifact that was a ``.keras`` file itself)."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f.name)
    return buf.getvalue()
