"""ONNX export: one ``model.onnx`` any ONNX runtime serves, verified with onnxruntime against the source model.

Output folder ``<out>/``: ``model.onnx``, ``verification.json`` and, for Hugging Face text models, ``tokenizer/``
(the model takes token ids; ``AutoTokenizer.from_pretrained`` reads that folder). ``ExportResult.facts`` names the
converter and its version, the opsets, the graph inputs and outputs, and ``prediction``: which output (and column)
holds what the source model's ``predict`` returns.

Converters, by the source's framework:

- scikit-learn: ``skl2onnx.convert_sklearn``; classifiers without ZipMap (``zipmap: False``), so probabilities are a
  tensor. Numeric rows are one float32 input ``input``; a DataFrame with text or categorical columns, or a model
  holding a ``ColumnTransformer``, one input per column (skl2onnx's convention for named columns).
- XGBoost (every era: the loader has already converted legacy files to a current Booster,
  ``artifact_tools.formats.xgboost``), LightGBM: ``onnxmltools.convert_xgboost`` / ``convert_lightgbm``.
  Binary classifiers give ``probabilities[:, 1]`` (what ``Booster.predict`` returns), multiclass ones
  ``probabilities``, ``multi:softmax`` the ``label``, regressors ``variable``. Categorical features are refused.
- CatBoost: CatBoost's own ``save_model(format="onnx")``; models with categorical or text features are refused
  (CatBoost's ONNX export takes numeric features only, catboost.ai "Export models: ONNX").
- Spark ML pipelines: ``onnxmltools.convert_sparkml`` when it has a converter for every stage, else refused naming
  the first stage it lacks.
- TensorFlow: ``tf2onnx`` (a SavedModel of the artifact through ``python -m tf2onnx.convert --saved-model``; a live
  Keras model through ``tf2onnx.convert.from_function`` on a signature shaped like the sample).
- Hugging Face text classification and PyTorch modules: ``torch.onnx.export`` (the TorchScript-based exporter,
  ``dynamo=False``: the dynamo exporter needs onnxscript), batch and sequence axes dynamic.
- MXNet (no MXNet needed): Linear Learner, Factorization Machines, Neural Topic Model (its encoder), k-means, PCA
  and Gluon/Module symbol graphs,
  built from the project's MXNet readers with ``onnx.helper`` (:mod:`exporters._onnx_mxnet`, whose notes give the
  outputs and the operator semantics followed).

Verification, before the folder appears: ``onnx.checker.check_model`` on the written file, then an onnxruntime
session (CPU) runs the sample (``sample=``, else ``LoadedModel.sample_input()``) and its outputs are compared with
the source model's ``predict``. Tolerances, unless ``rtol``/``atol`` are given: rtol 1e-4 / atol 1e-5 (float32
graphs against float32 or float64 sources), except torch.onnx exports (Hugging Face, PyTorch): rtol 1e-3 /
atol 1e-5, the comparison PyTorch's ONNX export tutorial makes ("Export a PyTorch model to ONNX":
``np.testing.assert_allclose(..., rtol=1e-03, atol=1e-05)``). Labels must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artifact_tools.errors import ArtifactError, NotLoadable
from loaders.base import LoadedModel, require

from . import _onnx_mxnet as mxonnx
from ._atomic import refuse_existing, staged
from ._common import Check, ExportResult, SampleOptions, check, target_options, verification_sample

__all__ = ["MODEL_FILE", "OPTIONS", "OnnxOptions", "export"]

MODEL_FILE = "model.onnx"
TOKENIZER_DIR = "tokenizer"
TORCH_RTOL, TORCH_ATOL = 1e-3, 1e-5
DEFAULT_RTOL, DEFAULT_ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class OnnxOptions(SampleOptions):
    """``opset``: the ONNX opset to convert to (default: the converter's own choice); ``rtol``/``atol``: the
    tolerances of the comparison (default: the converter's stated precision, see the module notes)."""

    rtol: float | None = None
    atol: float | None = None
    opset: int | None = None


OPTIONS = OnnxOptions


@dataclass
class Converted:
    """A converted model and how to check it: ``feeds`` turns the sample into onnxruntime inputs, ``select`` turns
    the outputs (by name) into what the source's ``predict`` returns, described by ``prediction``."""

    model: Any  # onnx.ModelProto
    converter: str
    feeds: Callable[[Any], dict]
    select: Callable[[dict], Any]
    prediction: str
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    tolerance: str = "float32 graph: rtol 1e-4, atol 1e-5"
    expected: Callable[[Any], Any] | None = None  # the source's answer, when not loaded.predict(sample)
    folders: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # extra output folders and writers
    notes: list[str] = field(default_factory=list)


def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Write ``loaded`` as ``<out>/model.onnx`` and verify it (options: :class:`OnnxOptions`)."""
    opts = target_options(OnnxOptions, options, "onnx")
    out = Path(out)
    convert = _CONVERTERS.get(loaded.framework)
    if convert is None:
        raise NotLoadable(_no_converter(loaded))
    refuse_existing(out, force)
    samples, missing = verification_sample(loaded, opts.sample)
    converted = convert(loaded, samples, opts)
    rtol = opts.rtol if opts.rtol is not None else converted.rtol
    atol = opts.atol if opts.atol is not None else converted.atol
    result = ExportResult("onnx", loaded.framework, out, samples=_count(samples))
    result.notes += converted.notes
    with staged(out, force=force) as tmp:
        path = tmp / MODEL_FILE
        _save(converted.model, path)
        for name, write in converted.folders.items():
            write(tmp / name)
        result.files = [MODEL_FILE] + [f"{name}/" for name in converted.folders]
        result.checks.append(_structure(path))
        session = _session(path)
        result.facts.update(_facts(converted, session, path, rtol, atol))
        if samples is None:
            result.unverified = f"{missing}, so the ONNX model's answers were not compared with the source model's"
        else:
            expected = converted.expected(samples) if converted.expected else loaded.predict(samples)
            try:
                names = [o.name for o in session.get_outputs()]
                got = converted.select(dict(zip(names, session.run(None, converted.feeds(samples)))))
            except (RuntimeError, ValueError, TypeError, KeyError) as e:
                result.checks.append(Check("onnxruntime", False, f"onnxruntime could not run the sample: "
                                                                  f"{_first_line(e)}"))
            else:
                result.checks.append(check(f"onnxruntime {converted.prediction}", _comparable(expected),
                                           _comparable(got), rtol, atol,
                                           f"model.onnx run by onnxruntime against the source's predict "
                                           f"({converted.tolerance})"))
        result.require_passed()
        result.write(tmp)
    return result


# ------------------------------------------------------------------------------------------------ shared

def _no_converter(loaded: LoadedModel) -> str:
    """The sentence refusing a framework no ONNX converter covers, naming what is missing."""
    algorithm = loaded.info.get("algorithm")
    if loaded.framework == "mleap":
        return ("no converter turns an MLeap bundle into ONNX (onnxmltools converts live Spark ML pipelines, not "
                "MLeap bundles); export the Spark PipelineModel it was serialized from instead")
    if algorithm == "knn":
        return ("the SageMaker k-NN built-in holds a FAISS index, for which no ONNX converter exists (artifact-tools "
                "builds ONNX graphs for Linear Learner, Factorization Machines, NTM, k-means and PCA)")
    if algorithm == "blazingtext":
        return ("the BlazingText artifact holds word vectors (a fastText model), for which no ONNX converter "
                "exists")
    what = f"the {algorithm} built-in" if algorithm else f"{loaded.framework} models"
    return f"artifact-tools has no ONNX converter for {what}"


def _onnx():
    return require("onnx", "onnx")


def _save(model: Any, path: Path) -> None:
    if isinstance(model, (bytes, bytearray)):
        path.write_bytes(model)
    else:
        path.write_bytes(model.SerializeToString())


def _structure(path: Path) -> Check:
    onnx = _onnx()
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        return Check("onnx.checker", False, f"the ONNX model is invalid: {_first_line(e)}")
    return Check("onnx.checker", True, f"check_model (full_check) passed; onnx {onnx.__version__}")


def _session(path: Path):
    ort = require("onnxruntime", "onnx")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except (RuntimeError, ValueError) as e:
        raise ArtifactError(f"onnxruntime {ort.__version__} cannot load the converted model: "
                            f"{_first_line(e)}") from None


def _facts(converted: Converted, session: Any, path: Path, rtol: float, atol: float) -> dict:
    onnx = _onnx()
    model = onnx.load(str(path), load_external_data=False)
    return {"converter": converted.converter, "prediction": converted.prediction,
            "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
            "ir_version": model.ir_version,
            "inputs": [{"name": i.name, "type": i.type, "shape": list(i.shape)} for i in session.get_inputs()],
            "outputs": [{"name": o.name, "type": o.type, "shape": list(o.shape) if o.shape is not None else None}
                        for o in session.get_outputs()],
            "tolerance": {"rtol": rtol, "atol": atol}}


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def _count(samples: Any) -> int:
    if samples is None:
        return 0
    if isinstance(samples, dict):
        return len(next(iter(samples.values())))
    return len(samples)


def _tensor(value: Any) -> Any:
    """An onnxruntime output as an array: a ZipMap sequence of {class: probability} maps becomes a 2-D array in
    the maps' class order."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return np.asarray([[row[k] for k in value[0]] for row in value], dtype=np.float64)
    return np.asarray(value)


def _comparable(value: Any) -> Any:
    """Predictions in the form :func:`exporters._common.compare` takes: a DataFrame as a dict of columns (a
    column of per-row arrays stacked), a list of outputs as a dict by position."""
    if hasattr(value, "columns"):
        out = {}
        for col in value.columns:
            values = value[col].to_numpy()
            if values.dtype == object and len(values) and isinstance(values[0], (list, np.ndarray)):
                values = np.stack([np.asarray(v) for v in values])
            out[str(col)] = values
        return out
    if isinstance(value, (list, tuple)) and value and all(hasattr(v, "shape") for v in value):
        return {str(i): np.asarray(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        return {str(k): _tensor(v) for k, v in value.items()}
    return _tensor(value)


def _numeric(samples: Any, names: list[str] | None = None) -> np.ndarray:
    """float32 rows from an array, list or DataFrame (columns put in ``names`` order when it holds them all)."""
    if hasattr(samples, "columns"):
        if names and set(names) <= set(map(str, samples.columns)):
            samples = samples[names]
        if any(str(t) in ("category", "object", "string") for t in samples.dtypes):
            raise ArtifactError("the sample has text or categorical columns; this ONNX converter takes numeric "
                                "features only")
        samples = samples.to_numpy()
    arr = np.asarray(samples, dtype=np.float32)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def _need(samples: Any, what: str) -> Any:
    if samples is None:
        raise ArtifactError(f"converting a {what} to ONNX needs a sample input to fix its input types; pass "
                            "sample=<rows> (an array, or a .csv/.json/.npy file)")
    return samples


def _version(module: Any) -> str:
    return f"{module.__name__} {getattr(module, '__version__', '')}".strip()


# ------------------------------------------------------------------------------------------------ scikit-learn

def _sklearn(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    skl2onnx = require("skl2onnx", "onnx")
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.base import is_classifier

    model = loaded.model
    samples = _need(samples, "scikit-learn model")
    estimators = _estimators(model)
    per_column = hasattr(samples, "columns") and (
        any(str(t) in ("category", "object", "string", "bool") for t in samples.dtypes)
        or any(type(e).__name__ == "ColumnTransformer" for e in estimators))
    if per_column:
        initial = []
        for col, dtype in zip(samples.columns, samples.dtypes):
            kind = np.dtype(dtype).kind if str(dtype) not in ("category", "string") else "O"
            tp = FloatTensorType if kind == "f" else Int64TensorType if kind in "iub" else StringTensorType
            initial.append((str(col), tp([None, 1])))

        def feeds(data: Any) -> dict:
            out = {}
            for name, tp in initial:
                col = data[name].to_numpy().reshape(-1, 1)
                out[name] = (col.astype(np.float32) if isinstance(tp, FloatTensorType) else col.astype(np.int64)
                             if isinstance(tp, Int64TensorType) else col.astype(str).astype(object))
            return out
    else:
        width = _numeric(samples).shape[1]
        initial = [("input", FloatTensorType([None, width]))]

        def feeds(data: Any) -> dict:
            return {"input": _numeric(data)}
    options = {id(e): {"zipmap": False} for e in estimators if is_classifier(e)}
    try:
        proto = skl2onnx.convert_sklearn(model, initial_types=initial, options=options or None,
                                         target_opset=opts.opset)
    except (RuntimeError, ValueError, TypeError, KeyError, NotImplementedError) as e:
        raise NotLoadable(f"skl2onnx {skl2onnx.__version__} cannot convert the {type(model).__name__}: "
                          f"{_first_line(e)}") from None
    first = proto.graph.output[0].name
    return Converted(proto, _version(skl2onnx), feeds, lambda r: r[first], f"output {first!r}")


def _estimators(model: Any) -> list:
    """The model and every estimator nested in it (Pipeline steps, ColumnTransformer transformers...)."""
    found: list = []
    stack = [model]
    while stack:
        e = stack.pop()
        if id(e) in {id(f) for f in found} or not hasattr(e, "get_params"):
            continue
        found.append(e)
        for attr in ("steps", "transformers_", "transformer_list"):
            for item in getattr(e, attr, None) or []:
                stack.append(item[1] if isinstance(item, tuple) else item)
        for attr in ("estimator", "final_estimator_", "base_estimator"):
            if getattr(e, attr, None) is not None:
                stack.append(getattr(e, attr))
    return found


# ------------------------------------------------------------------------------------------------ boosters

def _class_outputs(kind: str) -> tuple[Callable[[dict], Any], str]:
    if kind == "binary":
        return (lambda r: _tensor(r["probabilities"])[:, 1]), "probabilities[:, 1]"
    if kind == "multiclass":
        return (lambda r: _tensor(r["probabilities"])), "probabilities"
    if kind == "label":
        return (lambda r: r["label"]), "label"
    return (lambda r: r["variable"]), "variable"


def _xgboost(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    onnxmltools = require("onnxmltools", "onnx")
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = loaded.model
    if booster.feature_types and "c" in booster.feature_types:
        raise NotLoadable("the XGBoost model has categorical features, which onnxmltools does not convert")
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    kind_of_booster = learner.get("gradient_booster", {}).get("name", "gbtree")
    if kind_of_booster != "gbtree":  # onnxmltools reads gbtree_model_param and the trees' dump
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} converts XGBoost tree boosters (gbtree) only; this "
                          f"model uses the {kind_of_booster} booster")
    # the objectives onnxmltools' XGBoost converter builds outputs for (onnxmltools convert/xgboost/_parse.py and
    # operator_converters/XGBoost.py): regression ("reg:*", count:poisson) and classification
    if not (objective.startswith("reg:") or objective in ("count:poisson", "binary:logistic", "binary:hinge",
                                                          "multi:softprob", "multi:softmax")):
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} has no XGBoost conversion for the {objective} "
                          "objective")
    names = list(booster.feature_names or [])
    plain = booster.copy()  # onnxmltools reads the features of the dump as f<index>
    plain.feature_names, plain.feature_types = None, None
    width = booster.num_features()
    try:
        proto = onnxmltools.convert_xgboost(plain, initial_types=[("input", FloatTensorType([None, width]))],
                                            target_opset=opts.opset)
    except (RuntimeError, ValueError, TypeError, KeyError, NotImplementedError, AttributeError) as e:
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} cannot convert the XGBoost {objective} model: "
                          f"{_first_line(e)}") from None
    kind = ("binary" if objective == "binary:logistic" else "multiclass" if objective == "multi:softprob"
            else "label" if objective in ("multi:softmax", "binary:hinge") else "variable")
    if kind == "variable" and "variable" not in {o.name for o in proto.graph.output}:
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} converted the XGBoost {objective} model into a "
                          "graph without the regression output 'variable'")
    select, prediction = _class_outputs(kind)
    era = loaded.info.get("era")
    notes = [f"the {era} model was converted to the current Booster format first (artifact_tools.formats.xgboost)"
             ] if loaded.info.get("converted") else []
    return Converted(proto, _version(onnxmltools), lambda d: {"input": _numeric(d, names)}, select, prediction,
                     notes=notes)


def _lightgbm(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    onnxmltools = require("onnxmltools", "onnx")
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = loaded.model
    dump = booster.dump_model(num_iteration=0)
    if dump.get("pandas_categorical") or booster.params.get("categorical_feature"):
        raise NotLoadable("the LightGBM model has categorical features, which artifact-tools does not convert "
                          "to ONNX")
    objective = str(dump.get("objective", "")).split(" ")[0]
    names = booster.feature_name()
    try:
        proto = onnxmltools.convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, len(names)]))],
                                             target_opset=opts.opset, zipmap=False)
    except (RuntimeError, ValueError, TypeError, KeyError, NotImplementedError, AttributeError) as e:
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} cannot convert the LightGBM {objective} model: "
                          f"{_first_line(e)}") from None
    kind = ("binary" if objective in ("binary", "cross_entropy") else "multiclass"
            if objective in ("multiclass", "multiclassova", "softmax", "ova") else "variable")
    if kind != "variable" and "probabilities" not in {o.name for o in proto.graph.output}:
        kind = "variable"
    select, prediction = _class_outputs(kind)
    return Converted(proto, _version(onnxmltools), lambda d: {"input": _numeric(d, names)}, select, prediction)


def _catboost(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    catboost = require("catboost", "catboost")
    onnx = _onnx()
    model = loaded.model
    special = list(model.get_cat_feature_indices()) + list(model.get_text_feature_indices()) + list(
        model.get_embedding_feature_indices())
    if special:
        raise NotLoadable("CatBoost exports to ONNX only models with numeric features; this one has categorical, "
                          "text or embedding features")
    names = list(model.feature_names_ or [])
    with tempfile.TemporaryDirectory(prefix="artifact-tools-catboost-") as work:
        path = Path(work) / MODEL_FILE
        try:
            model.save_model(str(path), format="onnx")
        except catboost.CatBoostError as e:
            raise NotLoadable(f"CatBoost {catboost.__version__} cannot export this model to ONNX: "
                              f"{_first_line(e)}") from None
        proto = onnx.load(str(path))
    outputs = {o.name for o in proto.graph.output}
    if loaded.info.get("kind") == "classifier" and "probabilities" in outputs:
        select, prediction = (lambda r: _tensor(r["probabilities"])), "probabilities"
    else:
        first = proto.graph.output[0].name
        select, prediction = (lambda r: np.asarray(r[first]).reshape(-1)), f"output {first!r}"
    return Converted(proto, f"catboost {catboost.__version__} save_model(format='onnx')",
                     lambda d: {proto.graph.input[0].name: _numeric(d, names)}, select, prediction)


# ------------------------------------------------------------------------------------------------ Spark

def _spark(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    """A Spark ML model through onnxmltools' sparkml converters (:mod:`exporters._onnx_spark` says which stages
    convert, the graph inputs, and the converters replaced). Compared: ``prediction`` and, when the graph has it,
    ``probability``, against the Spark model's own ``transform``."""
    onnxmltools = require("onnxmltools", "onnx")
    from loaders.spark import frame_for, input_columns, spark_session

    from . import _onnx_spark

    model = loaded.model
    _onnx_spark.check_stages(model, onnxmltools.__version__)
    from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType

    columns = input_columns(model)
    frame = frame_for(_need(samples, "Spark pipeline"), columns)
    initial: list[tuple[str, Any]] = []
    for col in columns:
        values = frame[col.name].tolist() if col.name in frame.columns else []
        if col.kind == "text" or (values and isinstance(values[0], str)):
            initial.append((col.name, StringTensorType([None, 1])))
        elif col.kind == "vector" or (values and hasattr(values[0], "__len__")):
            size = col.size or (len(values[0]) if values else None)
            if size is None:
                raise ArtifactError(f"the size of the vector column {col.name} is not recorded; pass sample= rows")
            initial.append((col.name, FloatTensorType([None, int(size)])))
        else:
            initial.append((col.name, FloatTensorType([None, 1])))
    functions, shapes = _onnx_spark.custom_converters()
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxmltools' linear classifier pprints its attributes
            proto = onnxmltools.convert_sparkml(model, "spark-pipeline", initial, spark_session=spark_session(),
                                                target_opset=opts.opset, custom_conversion_functions=functions,
                                                custom_shape_calculators=shapes)
    except NotLoadable:
        raise
    except Exception as e:  # onnxmltools raises many types for one cause: a stage it cannot convert as set
        raise NotLoadable(f"onnxmltools {onnxmltools.__version__} cannot convert the Spark pipeline: "
                          f"{_first_line(e)}") from None
    kinds = {name: type(tp).__name__ for name, tp in initial}

    def feeds(data: Any) -> dict:
        rows = frame_for(data, columns)
        out = {}
        for name, kind in kinds.items():
            cells = rows[name].tolist()
            if kind == "StringTensorType":
                out[name] = np.asarray([str(c) for c in cells], dtype=object).reshape(-1, 1)
            elif cells and hasattr(cells[0], "__len__"):
                out[name] = np.stack([np.asarray(c.toArray() if hasattr(c, "toArray") else c, dtype=np.float32)
                                      for c in cells])
            else:
                out[name] = np.asarray(cells, dtype=np.float32).reshape(-1, 1)
        return out

    graph_outputs = {o.name for o in proto.graph.output}
    if "prediction" not in graph_outputs:
        raise NotLoadable(f"the ONNX graph onnxmltools wrote has no prediction output (outputs: "
                          f"{', '.join(sorted(graph_outputs))})")
    compared = [c for c in ("prediction", "probability") if c in graph_outputs]

    def expected(data: Any) -> dict:
        answer = loaded.predict(data)
        return {c: _stack(answer[c]) for c in compared}

    def select(results: dict) -> dict:
        return {c: np.asarray(results[c]) for c in compared}

    notes = [f"the StringIndexer {s.uid} drops rows with unseen labels (handleInvalid='skip'); the ONNX model "
             "gives them the index -1 instead" for s in _onnx_spark.flat_stages(model)
             if type(s).__name__ == "StringIndexerModel" and s.getHandleInvalid() == "skip"]
    return Converted(proto, _version(onnxmltools), feeds, select, "outputs " + ", ".join(repr(c) for c in compared),
                     expected=expected, notes=notes)


def _stack(column: Any) -> np.ndarray:
    """A pandas column as an array: a column of vectors (arrays) as a 2-D array."""
    values = column.tolist()
    if values and hasattr(values[0], "__len__"):
        return np.stack([np.asarray(v, dtype=np.float64) for v in values])
    return np.asarray(values)


# ------------------------------------------------------------------------------------------------ TensorFlow

def _tensorflow(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    tf2onnx = require("tf2onnx", "onnx")
    onnx = _onnx()
    model_dir = loaded.info.get("model_dir")
    notes = []
    with tempfile.TemporaryDirectory(prefix="artifact-tools-tf2onnx-") as work:
        path = Path(work) / MODEL_FILE
        if loaded.report is not None and model_dir is not None:
            from loaders.cache import prepare

            _, root = prepare(loaded.report.source)
            folder = root / (loaded.report.root_prefix or "") / model_dir
            signature = loaded.info.get("signature") or "serving_default"
            if loaded.info.get("api") == "tf.compat.v1 Session":
                _tf1_graph(folder, loaded.info.get("tags") or ["serve"], signature, path, opts.opset,
                           bool(loaded.info.get("example_features")))
                if loaded.info.get("example_features"):
                    notes.append("the signature parses serialized tf.Example protos, which ONNX has no operator "
                                 "for: model.onnx takes the parsed feature values, one input per feature")
            else:
                _tf2onnx_cli(folder, signature, path, opts.opset)
        else:
            samples = _need(samples, "Keras model")
            tf = require("tensorflow", "tensorflow")
            x = _numeric(samples)
            spec = (tf.TensorSpec((None, *x.shape[1:]), tf.float32, name="input"),)
            fn = tf.function(lambda t: loaded.model(t))
            try:
                proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opts.opset)
            except Exception as e:  # tf2onnx raises many types for one cause: an op it cannot convert
                raise NotLoadable(f"tf2onnx {tf2onnx.__version__} cannot convert the Keras model: "
                                  f"{_first_line(e)}") from None
            path.write_bytes(proto.SerializeToString())
        proto = onnx.load(str(path))
    initialized = {init.name for init in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in initialized]
    input_names = [i.name for i in graph_inputs]
    input_types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph_inputs}
    output_names = [o.name for o in proto.graph.output]

    def typed(name: str, value: Any) -> np.ndarray:
        want = input_types[name]
        return np.asarray(value).astype(want if want.kind != "U" else object)

    def feeds(data: Any) -> dict:
        if isinstance(data, dict):
            return {n: typed(n, data[_plain(n, data)]) for n in input_names}
        if hasattr(data, "columns") and len(input_names) > 1:
            return {n: typed(n, data[_plain(n, {str(c): None for c in data.columns})].to_numpy())
                    for n in input_names}
        if len(input_names) != 1:
            raise ArtifactError(f"the ONNX model takes {len(input_names)} inputs ({', '.join(input_names)})")
        if input_types[input_names[0]].kind == "f":
            return {input_names[0]: typed(input_names[0], _numeric(data))}
        return {input_names[0]: typed(input_names[0], data)}

    def select(results: dict) -> Any:
        if len(output_names) == 1:
            return results[output_names[0]]
        return {_strip(n): v for n, v in results.items()}

    return Converted(proto, _version(tf2onnx), feeds, select,
                     "output " + ", ".join(repr(n) for n in output_names), notes=notes)


def _strip(name: str) -> str:
    return name.split(":")[0]


def _plain(onnx_name: str, data: dict) -> str:
    """The sample key an ONNX input of a tf2onnx conversion stands for (``x:0`` / ``serving_default_x:0`` -> x)."""
    base = _strip(onnx_name)
    for key in data:
        if base in (key, f"serving_default_{key}"):
            return key
    raise ArtifactError(f"the sample has no value for the ONNX input {onnx_name}")


def _tf1_graph(folder: Path, tags: list[str], signature: str, path: Path, opset: int | None,
               examples: bool) -> None:
    """A TensorFlow 1 SavedModel through :mod:`exporters._tf1_onnx` in a child process (why not the tf2onnx CLI,
    and how the graph is cut at the signature's inputs: that module's notes)."""
    from . import _tf1_onnx

    request = path.parent / "request.json"
    request.write_text(json.dumps({"folder": str(folder), "tags": list(tags), "signature": signature,
                                   "output": str(path), "opset": opset, "examples": examples}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # run by path from a scratch folder: the script's own folder first on sys.path would shadow the onnx package
    # with exporters/onnx.py
    run = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", run, str(Path(_tf1_onnx.__file__)), str(request)],
                          capture_output=True, text=True, env=env, timeout=1800, cwd=str(path.parent))
    lines = done.stdout.splitlines()
    if done.returncode != 0 or not path.is_file():
        error = next((line[len("ERROR: "):] for line in lines if line.startswith("ERROR: ")), None)
        if error is None:
            tail = [line for line in done.stderr.splitlines() if "Error" in line or "error" in line]
            error = f"tf2onnx cannot convert the SavedModel: {(tail or ['the converter process failed'])[-1].strip()}"
        raise NotLoadable(error[:400])


def _tf2onnx_cli(folder: Path, signature: str, path: Path, opset: int | None) -> None:
    """``python -m tf2onnx.convert --saved-model`` in a child process (TensorFlow's graph state stays there)."""
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(folder), "--signature_def", signature,
           "--output", str(path)] + (["--opset", str(opset)] if opset else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0 or not path.is_file():
        errors = [line for line in done.stderr.splitlines() if "Error" in line or "error" in line]
        raise NotLoadable(f"tf2onnx cannot convert the SavedModel: {(errors or ['it failed'])[-1].strip()[:300]}")


# ------------------------------------------------------------------------------------------------ torch

def _torch_export(module: Any, args: tuple, input_names: list[str], output_names: list[str],
                  dynamic: dict, opset: int | None) -> Any:
    torch = require("torch", "pytorch")
    onnx = _onnx()
    with tempfile.TemporaryDirectory(prefix="artifact-tools-torch-onnx-") as work:
        path = Path(work) / MODEL_FILE
        try:
            with torch.no_grad():
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                    torch.onnx.export(module.eval(), args, str(path), input_names=input_names,
                                      output_names=output_names, dynamic_axes=dynamic, dynamo=False,
                                      **({"opset_version": opset} if opset else {}))
        except Exception as e:  # torch.onnx raises many types for one cause: an op it cannot export
            raise NotLoadable(f"torch.onnx {torch.__version__} cannot export the {type(module).__name__}: "
                              f"{_first_line(e)}") from None
        return onnx.load(str(path))


def _huggingface(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    torch = require("torch", "pytorch")
    model, tokenizer = _hf_parts(loaded)
    task = loaded.info.get("task")
    if task not in ("text-classification", "sentiment-analysis"):
        raise NotLoadable(f"artifact-tools exports Hugging Face text-classification models to ONNX, not {task}")
    if "torch" not in {c.__module__.split(".")[0] for c in type(model).__mro__}:
        raise NotLoadable("the Hugging Face model is not a PyTorch model; torch.onnx exports PyTorch models only")
    texts = list(_need(samples, "Hugging Face model"))
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

    module_base: Any = torch.nn.Module  # (torch is imported lazily, so its classes are values here)

    class Logits(module_base):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(names, tensors))).logits

    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic["logits"] = {0: "batch"}
    proto = _torch_export(Logits(model), tuple(enc[n] for n in names), names, ["logits"], dynamic, opts.opset)
    labels = model.config.id2label

    def feeds(data: Any) -> dict:
        tokens = tokenizer(list(data), padding=True, truncation=True, return_tensors="np")
        return {n: tokens[n].astype(np.int64) for n in names}

    def select(results: dict) -> Any:
        import pandas as pd

        logits = np.asarray(results["logits"], dtype=np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        top = probs.argmax(axis=1)
        return pd.DataFrame({"label": [labels[int(i)] for i in top], "score": probs.max(axis=1)})

    return Converted(proto, f"torch.onnx {torch.__version__} (TorchScript exporter)", feeds, select,
                     "softmax of 'logits': top label and score", TORCH_RTOL, TORCH_ATOL,
                     "torch.onnx export: rtol 1e-3, atol 1e-5 (PyTorch's ONNX export tutorial)",
                     folders={TOKENIZER_DIR: lambda p: tokenizer.save_pretrained(str(p))},
                     notes=["model.onnx takes token ids: tokenize with the tokenizer/ folder "
                            "(AutoTokenizer.from_pretrained), then softmax the logits"])


def _hf_parts(loaded: LoadedModel) -> tuple[Any, Any]:
    """(model, tokenizer) of a Hugging Face source: a live pipeline's, or the loaded model and the tokenizer files
    beside it in the artifact."""
    if hasattr(loaded.model, "tokenizer") and hasattr(loaded.model, "model"):
        return loaded.model.model, loaded.model.tokenizer
    from pathlib import PurePosixPath

    from transformers import AutoTokenizer

    from loaders.cache import prepare

    entry = loaded.report.model("huggingface") if loaded.report is not None else None
    if entry is None:
        raise ArtifactError("the Hugging Face model has no tokenizer files to export with it")
    _, root = prepare(loaded.report.source)
    folder = root / (loaded.report.root_prefix or "") / PurePosixPath(entry.path).parent
    return loaded.model, AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _pytorch(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    torch = require("torch", "pytorch")
    x = _numeric(_need(samples, "PyTorch module"))
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    proto = _torch_export(loaded.model, (torch.as_tensor(x),), ["input"], ["output"], dynamic, opts.opset)
    return Converted(proto, f"torch.onnx {torch.__version__} (TorchScript exporter)",
                     lambda d: {"input": _numeric(d)}, lambda r: r["output"], "output 'output'", TORCH_RTOL,
                     TORCH_ATOL, "torch.onnx export: rtol 1e-3, atol 1e-5 (PyTorch's ONNX export tutorial)")


# ------------------------------------------------------------------------------------------------ MXNet

def _mxnet(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    report = loaded.report
    if report is None:
        raise NotLoadable("artifact-tools converts MXNet models to ONNX from their artifact (the symbol graph and "
                          "params files); export a Gluon block with block.export() and pass that artifact")
    from artifact_tools.filetree import ZipTree
    from artifact_tools.formats import mxnet as mxformat
    from loaders.cache import prepare

    _, root = prepare(report.source)
    base = root / (report.root_prefix or "")
    producer = _producer()
    algorithm = loaded.info.get("algorithm")
    summary: dict = next((m.summary for m in report.models if m.format.startswith("sagemaker-")), {})
    if algorithm in ("linear-learner", "factorization-machines"):
        host = loaded.info["host"]
        inner = ZipTree((base / host).read_bytes(), label=host)
        symbol, params = inner.read(loaded.info["symbol"]), inner.read(loaded.info["params"])
        dim = mxonnx.require_dims(loaded.info.get("feature_dim"), algorithm)
        if algorithm == "linear-learner":
            built = mxonnx.linear_learner(symbol, params, dim, summary.get("predictor_type"),
                                          summary.get("threshold"), producer)
        else:
            built = mxonnx.factorization_machines(symbol, params, dim, summary.get("predictor_type"), producer)
    elif algorithm == "ntm":
        host = loaded.info["host"]
        inner = ZipTree((base / host).read_bytes(), label=host)
        built = mxonnx.ntm(inner.read(loaded.info["symbol"]), inner.read(loaded.info["params"]),
                           mxonnx.require_dims(loaded.info.get("feature_dim"), algorithm), producer)
    elif algorithm == "kmeans":
        arrays = mxformat.load_arrays((base / loaded.info["host"]).read_bytes())
        built = mxonnx.kmeans(next(iter(arrays.values())), producer)
    elif algorithm == "pca":
        arrays = mxformat.load_arrays((base / loaded.info["host"]).read_bytes())
        mean = arrays["mean"].reshape(-1) if "mean" in arrays else None
        built = mxonnx.pca(arrays["v"], mean, producer)
    elif algorithm in (None, "image-classification") and loaded.info.get("symbol"):  # Gluon / Module graphs
        inputs = loaded.info.get("inputs") or []
        samples = _need(samples, "MXNet graph")
        by_name = samples if isinstance(samples, dict) else {inputs[0]: samples} if len(inputs) == 1 else None
        if by_name is None:
            raise ArtifactError(f"the MXNet graph takes {len(inputs)} inputs; pass sample= as a dict by input name")
        shapes = {n: [None, *np.asarray(by_name[n]).shape[1:]] for n in inputs}
        built = mxonnx.symbol_graph((base / loaded.info["symbol"]).read_bytes(),
                                    (base / loaded.info["params"]).read_bytes(), shapes, producer)
    else:
        raise NotLoadable(f"artifact-tools does not convert the MXNet {algorithm or 'model'} to ONNX")
    input_names = [i.name for i in built.model.graph.input]
    outputs = built.outputs

    def feeds(data: Any) -> dict:
        if isinstance(data, dict):
            return {n: _dense(data[n]) for n in input_names}
        return {input_names[0]: _dense(data)}

    def select(results: dict) -> Any:
        if algorithm in ("linear-learner", "factorization-machines", "kmeans"):
            return {n: results[n] for n in outputs}
        if len(outputs) == 1:
            return results[outputs[0]]
        return [results[n] for n in outputs]

    what = ("columns " + ", ".join(outputs)) if algorithm in ("linear-learner", "factorization-machines",
                                                              "kmeans") else "output " + ", ".join(outputs)
    return Converted(built.model, f"artifact-tools {producer} (onnx.helper from the MXNet files)", feeds, select,
                     what, notes=built.notes)


def _dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray") and hasattr(value, "nnz"):
        value = value.toarray()
    arr = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def _producer() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("artifact-tools")
    except PackageNotFoundError:
        return "dev"


# ------------------------------------------------------------------------------------------------ ONNX

def _onnx_artifact(loaded: LoadedModel, samples: Any, opts: OnnxOptions) -> Converted:
    """An artifact that already holds an ONNX model: the model itself (external data files read into it), checked
    and verified as any conversion; ``opset=`` is refused (artifact-tools does not convert between opsets)."""
    onnx = _onnx()
    if opts.opset is not None:
        raise ArtifactError("the artifact already holds an ONNX model; artifact-tools writes it as it is, so "
                            "opset= does not apply")
    if loaded.report is None or not loaded.info.get("file"):
        raise ArtifactError("the ONNX model's file is not known; pass the artifact that holds it")
    from loaders.cache import prepare

    _, root = prepare(loaded.report.source)
    path = root / (loaded.report.root_prefix or "") / loaded.info["file"]
    try:
        proto = onnx.load(str(path))  # external data is read from the model's folder
    except (OSError, ValueError) as e:
        raise NotLoadable(f"onnx {onnx.__version__} cannot read {loaded.info['file']}: {_first_line(e)}") from None
    initialized = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initialized]
    types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
             if i.type.HasField("tensor_type") else None for i in inputs}
    outputs = [o.name for o in proto.graph.output]

    def cast(name: str, value: Any) -> Any:
        want = types[name]
        if want is None:
            return value
        arr = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
        return arr.astype(want if want.kind != "U" else object)

    def feeds(data: Any) -> dict:
        if isinstance(data, dict):
            return {n: cast(n, data[n]) for n in types}
        if hasattr(data, "columns") and len(types) > 1:
            return {n: cast(n, data[n].to_numpy().reshape(-1, 1)) for n in types}
        (name,) = types
        return {name: cast(name, data)}

    def select(results: dict) -> Any:
        return results[outputs[0]] if len(outputs) == 1 else {n: results[n] for n in outputs}

    return Converted(proto, f"the artifact's own ONNX model ({loaded.info['file']})", feeds, select,
                     "output " + ", ".join(repr(n) for n in outputs))


_CONVERTERS: dict[str, Callable[[LoadedModel, Any, OnnxOptions], Converted]] = {
    "onnx": _onnx_artifact,
    "sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm, "catboost": _catboost, "spark": _spark,
    "tensorflow": _tensorflow, "huggingface": _huggingface, "pytorch": _pytorch, "mxnet": _mxnet,
}
