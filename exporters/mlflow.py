"""MLflow export target: an MLflow Model folder that ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` load,
with the framework's native flavor where MLflow has one, optionally registered in a model registry.

Output folder ``<out>/`` (facts: mlflow ``docs/source/model/index.rst`` "Storage Format", ``mlflow/models/model.py``
``Model``, ``mlflow/pyfunc/__init__.py`` "python_function" flavor): ``MLmodel`` (the YAML naming the flavors, the
signature and the input example), the flavor's files, ``requirements.txt`` / ``python_env.yaml`` /
``conda.yaml``, ``input_example.json`` and ``serving_input_example.json``, and ``verification.json``.

Flavors, written by MLflow's own ``mlflow.<flavor>.save_model`` (each adds ``python_function``):

- ``sklearn`` (the loader's prediction method becomes ``pyfunc_predict_fn``: predict, predict_proba...; skops
  writes every shared reference in full, so a state whose full tree would pass 10M nodes, 100 nodes per distinct
  object, 100 levels or a cycle is refused before skops sees it: ``_check_skops_size``),
  ``xgboost`` (the current Booster as UBJSON; an artifact of any legacy era was converted by
  :mod:`loaders.xgboost` when it was loaded, so the MLflow model holds the converted booster), ``lightgbm``,
  ``catboost`` (MLflow's ``python_function`` of a classifier returns ``predict``'s class labels, artifact-tools'
  own ``predict`` the probabilities: both are checked), ``tensorflow`` (Keras models), ``transformers`` (the
  task's pipeline), ``spark`` (``PipelineModel``; serving starts a local Spark), ``onnx`` (the artifact's ONNX
  file) and ``pytorch`` (an ``nn.Module`` as a ``torch.export`` program, ``pt2``: a graph, no pickle; a
  ``ScriptModule`` as TorchScript).
- Everything MLflow has no flavor for — MXNet (built-in algorithms, Gluon), MLeap bundles, SageMaker's k-NN and
  BlazingText, TensorFlow SavedModels (MLflow's ``tensorflow`` flavor calls a module, not a named signature) —
  gets a ``python_function`` model whose ``loader_module`` is this module: the original artifact is copied
  byte for byte into ``artifact-tools/source/`` (a remote one: its extracted files) and loaded with
  :func:`loaders.load`, with the trust its audit verdict needs, recorded in ``artifact-tools/artifact-tools.json``;
  the requirements name ``artifact-tools[<extra>]``. A live model of such a framework (no artifact) is refused,
  and so is a model loaded through the artifact's own SageMaker inference script.
- An XGBoost model with categorical features, which MLflow's xgboost flavor cannot take: the same
  python_function, holding the booster (UBJSON) and turning the category columns back into pandas categories
  (``_xgboost_categorical`` says why and how).

Signature and example: ``mlflow.models.infer_signature`` of the sample input (``sample=``, else
``LoadedModel.sample_input()``) and the source model's predictions on it; the sample is the input example.
Requirements are written explicitly (no dependency inference, which would load the model in a subprocess): the
installed distributions that provide the flavor's modules, pinned with ``==`` to their installed versions (a
local version label such as ``+cpu`` dropped, as package indexes do not serve them), plus ``mlflow`` itself.

Verification, before anything is published: the folder is re-read as an ``mlflow.models.Model``; it is loaded with
``mlflow.pyfunc.load_model`` and predicts the sample; and ``serving_input_example.json`` goes through
``mlflow.pyfunc.scoring_server.invocations``, the request handler ``mlflow models serve`` runs (JSON parsing,
schema enforcement, prediction, JSON encoding). Each must give the source model's predictions within
``rtol``/``atol``.

Registration (``registry_uri=``, with ``tracking_uri=`` defaulting to it): an explicit
``mlflow.MlflowClient(tracking_uri, registry_uri)``, never the process's global MLflow settings nor a default
``./mlruns``. The verified folder is logged as the artifact ``model`` of a run in the experiment ``experiment``
(default ``artifact-tools``), and a version of the registered model ``name`` is created from it with tags: the
source, its SHA-256 (local files), the framework and its era, the SageMaker training job (given, or read from an
S3 key ``.../<job>/output/model.tar.gz``, the layout SageMaker writes training output in) and SageMaker model name
when known, and the verification result. A failed registration publishes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel, require

from ._atomic import staged
from ._common import Check, ExportOptions, ExportResult, compare, target_options, verification_sample

__all__ = ["OPTIONS", "MLflowOptions", "export", "requirements_for"]

log = logging.getLogger(__name__)

CONFIG = "artifact-tools.json"  # beside the copied artifact, for the artifact-tools python_function
SOURCE_DIR = "source"
LOADER_MODULE = __name__
DEFAULT_EXPERIMENT = "artifact-tools"
_SKLEARN_PYFUNC_METHODS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score")
# the artifact-tools extra that loads each framework through the artifact-tools python_function
_EXTRAS = {"mxnet": "mxnet", "mleap": "mleap", "tensorflow": "tensorflow", "huggingface": "huggingface",
           "spark": "spark", "pytorch": "pytorch", "sklearn": "sklearn", "pickle": "sklearn", "xgboost": "xgboost",
           "lightgbm": "lightgbm", "catboost": "catboost", "onnx": "onnx"}
# the modules each framework's model needs at load time (their distributions are pinned)
_MODULES = {"sklearn": ["sklearn", "numpy", "pandas", "scipy", "skops"],
            "xgboost": ["xgboost", "numpy", "pandas"], "lightgbm": ["lightgbm", "numpy", "pandas"],
            "catboost": ["catboost", "numpy", "pandas"], "tensorflow": ["tensorflow", "keras", "numpy", "pandas"],
            "transformers": ["transformers", "torch", "tokenizers", "safetensors", "numpy", "pandas"],
            "spark": ["pyspark", "numpy", "pandas"], "onnx": ["onnx", "onnxruntime", "numpy", "pandas"],
            "pytorch": ["torch", "numpy", "pandas"], "mxnet": ["mxnet", "numpy", "pandas"],
            "mleap": ["numpy", "pandas"], "sagemaker-builtin": ["numpy", "pandas"]}


@dataclass(frozen=True)
class MLflowOptions(ExportOptions):
    """``registry_uri`` (register a model version there), ``tracking_uri`` (where the run holding the model is
    logged, default ``registry_uri``), ``name`` (the registered model, default the artifact's name),
    ``experiment``, ``sagemaker_job`` / ``sagemaker_model`` (tags, when known)."""

    registry_uri: str | None = None
    tracking_uri: str | None = None
    name: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    sagemaker_job: str | None = None
    sagemaker_model: str | None = None


OPTIONS = MLflowOptions


@dataclass
class _Flavor:
    """How one LoadedModel is written: the MLflow flavor, the function writing it, what its python_function
    returns for the sample (default: the source's predictions) and extra checks of the native flavor."""

    name: str
    save: Callable[..., None]
    modules: list[str]
    expected: Any = None
    native_checks: list[Callable[[Path], Check]] | None = None
    note: str | None = None
    inputs: Any = None  # the sample as MLflow takes it (signature, input example, verification); default: as is


# ------------------------------------------------------------------------------------------------ export

def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Write ``loaded`` as an MLflow Model in the folder ``out``, verify it, optionally register it (options:
    :class:`MLflowOptions`)."""
    opts = target_options(MLflowOptions, options, "mlflow")
    mlflow = require("mlflow", "mlflow")
    out = Path(out)
    if opts.tracking_uri and not opts.registry_uri:
        raise ArtifactError("tracking_uri= is where a registration logs its run; pass registry_uri= too")
    samples, missing = verification_sample(loaded, opts.sample)
    if samples is None:
        raise ArtifactError(f"{missing}; the MLflow signature and input example are inferred from a sample input: "
                            "pass sample=<rows> (an array, or a .csv/.json/.npy file)")
    samples = _plain(samples)
    expected = loaded.predict(samples)
    result = ExportResult("mlflow", loaded.framework, out, samples=_count(samples))
    with staged(out, force) as tmp:
        with tempfile.TemporaryDirectory(prefix="artifact-tools-mlflow-") as scratch:  # scratch files, removed
            work = Path(scratch)
            flavor = _flavor(loaded, samples, work, expected)
            want = expected if flavor.expected is None else flavor.expected
            if flavor.name == "artifact-tools":
                want = _named_outputs(want)
            inputs = samples if flavor.inputs is None else flavor.inputs
            from mlflow.models import infer_signature

            signature = infer_signature(inputs, _signature_output(want))
            from mlflow.exceptions import MlflowException

            pins = requirements_for(flavor.modules, loaded if flavor.name == "artifact-tools" else None)
            try:
                flavor.save(str(tmp), signature=signature, input_example=inputs, pip_requirements=pins,
                            metadata={"artifact_tools": _provenance(loaded, opts)})
            except MlflowException as e:
                raise ArtifactError(f"MLflow {mlflow.__version__} cannot save this {loaded.framework} model with its "
                                    f"{flavor.name} flavor: {_first_line(e)}") from None
        result.checks = _verify(mlflow, tmp, flavor, inputs, want, opts.rtol, opts.atol)
        result.checks += [c(tmp) for c in flavor.native_checks or []]
        result.files = sorted(p.name + ("/" if p.is_dir() else "") for p in tmp.iterdir())
        result.facts.update({"flavor": flavor.name, "mlflow_version": mlflow.__version__,
                             "serve": f'mlflow models serve -m "{out.absolute()}" --env-manager local -p 5000'})
        result.notes += [n for n in (flavor.note, loaded.info.get("warning")) if n]
        result.require_passed()
        result.files.append("verification.json")
        if opts.registry_uri:
            result.facts.update(_register(mlflow, tmp, loaded, opts, result))
        result.write(tmp)
    return result


def _verify(mlflow: Any, folder: Path, flavor: _Flavor, samples: Any, expected: Any, rtol: float,
            atol: float) -> list[Check]:
    from mlflow.models import Model

    checks = []
    model = Model.load(str(folder))
    flavors = sorted(model.flavors)
    reqs = (folder / "requirements.txt").read_text().split() if (folder / "requirements.txt").is_file() else []
    ok = "python_function" in model.flavors and (flavor.name == "artifact-tools" or flavor.name in model.flavors)
    ok = ok and model.signature is not None and model.saved_input_example_info is not None and bool(reqs)
    checks.append(Check("MLmodel", ok, f"flavors {', '.join(flavors)}; signature "
                        f"{'present' if model.signature is not None else 'MISSING'}; input example "
                        f"{'present' if model.saved_input_example_info else 'MISSING'}; {len(reqs)} pinned "
                        "requirement(s)"))
    try:
        pyfunc = mlflow.pyfunc.load_model(str(folder))
        got = pyfunc.predict(samples)
    except Exception as e:  # MLflow and the frameworks raise many types for one cause: it does not load or run
        checks.append(Check("mlflow.pyfunc.load_model", False, f"loading or predicting failed: {_first_line(e)}"))
        return checks
    ok, diff, why = _matches(expected, got, rtol, atol)
    loader = model.flavors["python_function"].get("loader_module")
    checks.append(Check("mlflow.pyfunc.load_model", ok, f"python_function ({loader}) on the sample; {why}", diff))
    body_path = folder / "serving_input_example.json"
    if not body_path.is_file():
        checks.append(Check("scoring server", False, "no serving_input_example.json was written"))
        return checks
    from mlflow.pyfunc.scoring_server import invocations

    answer = invocations(body_path.read_text(), "application/json", pyfunc, model.get_input_schema())
    if answer.status != 200:
        checks.append(Check("scoring server", False, f"/invocations answered {answer.status}: "
                            f"{str(answer.response)[:300]}"))
        return checks
    served = _binary_as_sent(expected, _decoded_predictions(json.loads(answer.response)))
    ok, diff, why = _matches(expected, served, rtol, atol)
    checks.append(Check("scoring server", ok, f"serving_input_example.json through mlflow.pyfunc.scoring_server."
                        f"invocations (what `mlflow models serve` runs); {why}", diff))
    return checks


def _decoded_predictions(body: Any) -> Any:
    """Predictions of a scoring-server response: ``{"predictions": ...}`` (a list of records for a DataFrame,
    a list, or a dict of lists for several outputs)."""
    import numpy as np
    import pandas as pd

    value = body.get("predictions", body) if isinstance(body, dict) else body
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return pd.DataFrame(value)
    if isinstance(value, dict):
        return {k: np.asarray(v) for k, v in value.items()}
    return np.asarray(value)


def _binary_as_sent(expected: Any, served: Any) -> Any:
    """``served`` with the base64 text of binary values decoded where the source answered bytes: the scoring
    server's JSON encoder writes a numpy bytes array as ``base64.encodebytes`` text (mlflow
    ``mlflow/utils/proto_json_utils.py``, ``NumpyEncoder``), e.g. the ``classes`` of a TensorFlow estimator."""
    import base64
    import binascii

    import numpy as np

    def decoded(want: Any, got: Any) -> Any:
        want_arr = np.asarray(want)
        if want_arr.dtype.kind != "S" and not (want_arr.dtype == object and want_arr.size
                                                and isinstance(want_arr.flat[0], bytes)):
            return got
        got_arr = np.asarray(got)
        if got_arr.dtype.kind not in "UO":
            return got
        try:
            return np.vectorize(lambda t: base64.decodebytes(str(t).encode("ascii")), otypes=[object])(got_arr)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return got

    if isinstance(expected, dict) and isinstance(served, dict):
        return {k: decoded(expected[k], v) if k in expected else v for k, v in served.items()}
    if hasattr(expected, "columns") and hasattr(served, "columns"):
        served = served.copy()
        for col in expected.columns:
            if col in served.columns:
                served[col] = list(decoded(expected[col].to_numpy(), served[col].to_numpy()))
        return served
    if isinstance(expected, dict) or hasattr(expected, "columns") or isinstance(served, dict):
        return served
    return decoded(expected, served)


def _matches(expected: Any, got: Any, rtol: float, atol: float) -> tuple[bool, float | None, str]:
    want, have = _stacked(expected), _stacked(_aligned(expected, got))
    if hasattr(expected, "columns") and isinstance(have, dict):  # extra output columns are no difference
        have = {k: v for k, v in have.items() if k in want}
    return compare(want, have, rtol, atol)


def _stacked(value: Any) -> Any:
    """A DataFrame whose cells are vectors (Spark and MLeap vector columns) with each such column as one 2-D
    array, so that it is compared number by number."""
    import numpy as np

    if not hasattr(value, "columns") or not len(value):
        return value
    columns = {}
    for col in value.columns:
        cells = value[col].tolist()
        if all(isinstance(c, (list, tuple, np.ndarray)) for c in cells):
            try:
                columns[col] = np.stack([np.asarray(c, dtype=np.float64) for c in cells])
                continue
            except (TypeError, ValueError):
                pass
        columns[col] = value[col].to_numpy()
    return columns


def _aligned(expected: Any, got: Any) -> Any:
    """``got`` in the shape of ``expected`` where MLflow wraps it: a one-output dict or one-column DataFrame for an
    array, a DataFrame of output columns for a dict of outputs."""
    import numpy as np

    if not isinstance(expected, dict) and not hasattr(expected, "columns"):
        if isinstance(got, dict) and len(got) == 1:
            return np.asarray(next(iter(got.values())))
        if hasattr(got, "columns"):
            return got.to_numpy()
    if isinstance(expected, dict) and hasattr(got, "columns"):
        return {k: np.asarray(got[k].tolist()) for k in got.columns}
    return got


# ------------------------------------------------------------------------------------------------ flavors

def _flavor(loaded: LoadedModel, samples: Any, work: Path, expected: Any) -> _Flavor:
    """The flavor ``loaded`` is written with: MLflow's native one where it has one for the object, else the
    artifact-tools python_function (which needs the artifact the model came from)."""
    fw, model = loaded.framework, loaded.model
    import mlflow

    if fw == "sklearn":
        method = loaded.info.get("method", "predict")
        if method in _SKLEARN_PYFUNC_METHODS:
            _check_skops_size(model)
            return _Flavor("sklearn", _with(mlflow.sklearn.save_model, model, pyfunc_predict_fn=method,
                                            **_skops_settings(model)), _MODULES["sklearn"])
    if fw == "xgboost" and "c" in (getattr(model, "feature_types", None) or []):
        return _xgboost_categorical(loaded, samples, work)
    if fw == "xgboost":
        note = (f"the {loaded.info['era']} XGBoost model was converted to the current format (UBJSON)"
                if loaded.info.get("converted") or str(loaded.info.get("era", "")).startswith(("legacy", "pickle"))
                else None)
        return _Flavor("xgboost", _with(mlflow.xgboost.save_model, model, model_format="ubj"), _MODULES["xgboost"],
                       note=note)
    if fw == "lightgbm":
        return _Flavor("lightgbm", _with(mlflow.lightgbm.save_model, model), _MODULES["lightgbm"])
    if fw == "catboost":
        return _catboost(loaded, samples)
    if fw == "tensorflow" and _is_keras3(model):
        return _Flavor("tensorflow", _with(mlflow.tensorflow.save_model, model), _MODULES["tensorflow"])
    if fw == "huggingface":
        pipe = _hf_pipeline(loaded)
        if pipe is not None:
            return _Flavor("transformers", _with(mlflow.transformers.save_model, pipe), _MODULES["transformers"])
    if fw == "onnx" and loaded.report is not None and loaded.info.get("file"):
        import onnx

        path = _artifact_root(loaded) / loaded.info["file"]
        return _Flavor("onnx", _with(mlflow.onnx.save_model, onnx.load(str(path))), _MODULES["onnx"])
    if fw == "pytorch" and hasattr(model, "forward"):
        return _pytorch(loaded, model)
    if fw == "spark" and hasattr(model, "stages"):
        return _spark(loaded, work, expected)
    return _artifact_tools(loaded, work)


def _skops_settings(model: Any) -> dict[str, Any]:
    """How MLflow 3 should serialise a scikit-learn model: skops (its default, no pickle) with exactly the types
    skops does not trust by default but artifact-tools' own allowlist admits (``sklearn.tree._tree.Tree`` and the
    like: the model was loaded under that policy), or cloudpickle when the model holds a type the allowlist does not
    name (a class of the user's, admitted with trust=True), which skops would refuse to load."""
    import skops.io

    from artifact_tools.trust import classify

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    allowed = [t for t in untrusted if "." in t and classify(*t.rsplit(".", 1)) == "allowed"]
    if len(allowed) < len(untrusted):
        return {"serialization_format": "cloudpickle"}
    return {"serialization_format": "skops", "skops_trusted_types": allowed} if allowed else {}


# skops (skops/io/_utils.py ``get_state``) writes every reference in full, recursing once per level: a state
# sharing its parts (x = (x, x) 150 times: a few hundred bytes of pickle) would be written as 2**150 nodes
_SKOPS_MAX_NODES = 10_000_000  # a TF-IDF vocabulary of 1M words is about 2M nodes (~7 us each in skops 0.16)
_SKOPS_MAX_EXPANSION = 100  # nodes written per distinct object, past _SKOPS_EXPANSION_FLOOR nodes
_SKOPS_EXPANSION_FLOOR = 100_000
_SKOPS_MAX_DEPTH = 100  # levels of nesting (skops recurses ~4 frames per level; real estimators nest ~20)
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), type, range, slice)


def _state_children(obj: Any) -> list:
    """What skops serialises under ``obj``: items of containers, the elements of an object array, an object's
    ``__getstate__`` (skops/io/_general.py ``object_get_state``, ``reduce_get_state``); nothing under atoms,
    numeric arrays, functions and types."""
    import types

    if isinstance(obj, _LEAVES) or isinstance(obj, (types.FunctionType, types.BuiltinFunctionType,
                                                    types.MethodType, types.ModuleType)):
        return []
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            return list(obj.ravel()) if obj.dtype == object else []
        if isinstance(obj, (np.generic, np.dtype)):
            return []
    try:
        state = obj.__getstate__()
    except Exception:  # skops reports an object it cannot read itself
        return []
    if isinstance(state, dict):
        return [*state.keys(), *state.values()]
    if isinstance(state, tuple):
        return list(state)
    return [] if state is None else [state]


def _check_skops_size(model: Any) -> None:
    """Refuse (one sentence) a scikit-learn model skops would write forever: its state's tree (shared references
    written out in full, as skops does) is counted on the object graph, each distinct object visited once."""
    size: dict[int, int] = {}  # id -> nodes skops writes for it
    keep: list = []  # every walked object stays alive, so that no id is reused during the walk
    on_path: set[int] = set()
    stack: list[tuple[Any, list | None, int]] = [(model, None, 1)]
    why = None
    while stack and why is None:
        obj, kids, level = stack[-1]
        oid = id(obj)
        if kids is None:
            if oid in size:
                stack.pop()
                continue
            if oid in on_path:
                why = "refers to itself (skops would recurse without end)"
                break
            if level > _SKOPS_MAX_DEPTH:
                why = f"nests more than {_SKOPS_MAX_DEPTH} levels deep"
                break
            kids = _state_children(obj)
            keep.append(kids)
            on_path.add(oid)
            stack[-1] = (obj, kids, level)
            stack.extend((k, None, level + 1) for k in kids if id(k) not in size)
            if len(size) + len(stack) > _SKOPS_MAX_NODES:
                why = f"holds more than {_SKOPS_MAX_NODES:,} objects"
            continue
        stack.pop()
        on_path.discard(oid)
        size[oid] = 1 + sum(size[id(k)] for k in kids)
        if size[oid] > _SKOPS_MAX_NODES:
            why = (f"expands to more than {_SKOPS_MAX_NODES:,} nodes once its shared references are written out "
                   f"in full, from {len(size):,} distinct objects")
    if why is None and size[id(model)] > max(_SKOPS_EXPANSION_FLOOR, _SKOPS_MAX_EXPANSION * len(size)):
        why = (f"expands to {size[id(model)]:,} nodes once its shared references are written out in full, from "
               f"{len(size):,} distinct objects")
    if why is not None:
        raise ArtifactError(f"this scikit-learn model cannot be written in skops, MLflow's scikit-learn format, "
                            f"without unbounded work: its state {why}")


def _with(save: Callable, model: Any, **fixed: Any) -> Callable[..., None]:
    def write(path: str, **common: Any) -> None:
        save(model, path, **common, **fixed)

    return write


def _is_keras3(model: Any) -> bool:
    roots = {c.__module__.split(".")[0] for c in type(model).__mro__}
    return "keras" in roots and hasattr(model, "save") and hasattr(model, "layers")


def _catboost(loaded: LoadedModel, samples: Any) -> _Flavor:
    import mlflow

    model = loaded.model
    if loaded.info.get("kind", "classifier" if hasattr(model, "predict_proba") else "") != "classifier":
        return _Flavor("catboost", _with(mlflow.catboost.save_model, model), _MODULES["catboost"])
    import numpy as np

    source_proba = loaded.predict(samples)

    def native(folder: Path) -> Check:
        restored = mlflow.catboost.load_model(str(folder))
        ok, diff, why = compare(source_proba, np.asarray(restored.predict_proba(samples)))
        return Check("mlflow.catboost.load_model", ok, f"predict_proba of the native flavor; {why}", diff)

    return _Flavor("catboost", _with(mlflow.catboost.save_model, model), _MODULES["catboost"],
                   expected=np.asarray(model.predict(samples)), native_checks=[native],
                   note="MLflow's python_function of a CatBoost classifier returns class labels (CatBoost "
                        "predict); mlflow.catboost.load_model(...).predict_proba gives the probabilities "
                        "artifact-tools predicts")


def _pytorch(loaded: LoadedModel, model: Any) -> _Flavor:
    import mlflow

    scripted = "ScriptModule" in {c.__name__ for c in type(model).__mro__}
    fmt = "pickle" if scripted else "pt2"  # TorchScript is saved with torch.jit; a module as an exported graph

    def write(path: str, **common: Any) -> None:
        import numpy as np

        example = common.pop("input_example")
        if not scripted:
            example = np.asarray(example, dtype=np.float32)
        mlflow.pytorch.save_model(model.eval(), path, input_example=example, serialization_format=fmt, **common)

    return _Flavor("pytorch", write, _MODULES["pytorch"])


def _spark(loaded: LoadedModel, work: Path, expected: Any) -> _Flavor:
    """MLflow's spark python_function returns the ``prediction`` column of ``transform`` (mlflow
    ``mlflow/spark/__init__.py``, ``_PyFuncModelWrapper``); artifact-tools' predict the whole output frame."""
    import mlflow

    def write(path: str, **common: Any) -> None:
        mlflow.spark.save_model(loaded.model, path, dfs_tmpdir=str(work / "spark-dfs"), **common)

    if not hasattr(expected, "columns") or "prediction" not in expected.columns:
        raise ArtifactError("MLflow's spark flavor serves a pipeline's prediction column, and this pipeline "
                            "writes none")
    return _Flavor("spark", write, _MODULES["spark"], expected=expected["prediction"].to_numpy(),
                   note="MLflow's spark python_function returns the pipeline's prediction column")


def _hf_pipeline(loaded: LoadedModel) -> Any:
    """The transformers pipeline of a Hugging Face source: a live pipeline, or rebuilt from the loaded model and
    the tokenizer of the artifact's folder; None when there is no tokenizer."""
    if hasattr(loaded.model, "task") and hasattr(loaded.model, "model"):
        return loaded.model
    entry = loaded.report.model("huggingface") if loaded.report is not None else None
    task = loaded.info.get("task")
    if entry is None or not task or not entry.summary.get("tokenizer_files"):
        return None
    import transformers

    folder = _artifact_root(loaded) / PurePosixPath(entry.path).parent
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return transformers.pipeline(task, model=loaded.model, tokenizer=tokenizer,
                                 framework=loaded.info.get("framework", "pt"))


def _artifact_root(loaded: LoadedModel) -> Path:
    """The extracted folder of the artifact ``loaded`` came from (the loaders' cache; nothing is extracted twice)."""
    from artifact_tools.archive import open_artifact
    from loaders.cache import materialize

    with open_artifact(loaded.report.source) as art:
        root = materialize(art)
    return root / loaded.report.root_prefix if loaded.report.root_prefix else root


# ------------------------------------------------------------------------------ artifact-tools python_function

def _artifact_tools(loaded: LoadedModel, work: Path) -> _Flavor:
    """The python_function model that loads the original artifact with artifact-tools."""
    if loaded.report is None:
        raise ArtifactError(f"MLflow has no flavor for a live {loaded.framework} model ({type(loaded.model).__name__})"
                            "; save it as an artifact first and export that, which MLflow then loads through "
                            "artifact-tools")
    if loaded.info.get("kind") == "inference-code":
        raise ArtifactError("the model is loaded through the artifact's own SageMaker inference script; MLflow "
                            "would run that script on every load, so the mlflow target refuses it")
    import mlflow

    data = work / "artifact-tools"
    data.mkdir()
    source = loaded.report.source
    local = Path(source)
    if local.is_file():
        _copy_file(local, data / SOURCE_DIR / local.name)
        name = local.name
    elif local.is_dir():
        _copy_tree(local, data / SOURCE_DIR / (local.name or "artifact"))
        name = local.name or "artifact"
    else:  # a remote URI: its extracted files (already in the loaders' cache)
        name = PurePosixPath(source.rstrip("/")).name or "artifact"
        _copy_tree(_artifact_root(loaded), data / SOURCE_DIR / name)
    config = {"source": f"{SOURCE_DIR}/{name}", "trust": _trust_of(loaded), "options": _load_options(loaded),
              "framework": loaded.framework, "input": _input_kind(loaded), "original": source}
    (data / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def write(path: str, **common: Any) -> None:
        mlflow.pyfunc.save_model(path, loader_module=LOADER_MODULE, data_path=str(data), **common)

    return _Flavor("artifact-tools", write, _MODULES.get(loaded.framework, ["numpy", "pandas"]),
                   note=f"MLflow has no flavor for this {loaded.framework} model: its python_function loads the "
                        "original artifact with artifact-tools")


def _xgboost_categorical(loaded: LoadedModel, samples: Any, work: Path) -> _Flavor:
    """An XGBoost model with categorical features (``feature_types`` ``c``) as the artifact-tools python_function,
    because MLflow's xgboost flavor cannot take them (mlflow 3.17): schema enforcement has no type for a pandas
    ``category`` column and refuses to convert one (``mlflow/models/utils.py``, ``_enforce_mlflow_datatype``:
    "Can not safely convert category to int64" for the ``long`` ``infer_signature`` gives it), and the flavor's
    python_function hands the frame to ``xgb.DMatrix(data)`` without ``enable_categorical``
    (``mlflow/xgboost/__init__.py``, ``_wrapped_xgboost_model_predict_fn``), which XGBoost refuses for category
    and text columns alike.

    Here the signature declares each categorical column by value: its category values (``string`` for text)
    when the booster records its training categories (XGBoost 3.1+, ``Booster.get_categories``), else the
    category code as a ``double`` (NaN: missing), what a model without recorded categories was trained on. The
    python_function turns those columns back into pandas categories with exactly the training categories before
    XGBoost predicts; a value outside them becomes missing, which is what XGBoost makes of an unseen category.
    The booster is written in the current format (UBJSON) to ``artifact-tools/source/xgboost/`` (an artifact of a
    legacy era is thereby converted) and loaded again with :func:`loaders.load`, which needs no trust."""
    import mlflow
    import numpy as np
    import pandas as pd

    from loaders.xgboost import recorded_categories

    xgb = require("xgboost", "xgboost")
    booster = loaded.model
    recorded = recorded_categories(xgb, booster)
    kinds = dict(zip(booster.feature_names or [], booster.feature_types or []))
    categories = {name: recorded.get(name) for name, kind in kinds.items() if kind == "c"}
    inputs = samples
    if hasattr(samples, "columns"):
        inputs = samples.copy()
        for name, values in categories.items():
            if name in inputs.columns and isinstance(inputs[name].dtype, pd.CategoricalDtype):
                col = inputs[name]
                if values is None:  # the codes XGBoost predicts from
                    inputs[name] = col.cat.codes.to_numpy(np.float64)
                    inputs.loc[col.isna().to_numpy(), name] = np.nan
                else:
                    inputs[name] = np.asarray(col.astype(object).where(col.notna(), None), dtype=object)
    data = work / "artifact-tools"
    # a folder, which loaders.load reads in place (a loose file would go through the extraction cache)
    (data / SOURCE_DIR / "xgboost").mkdir(parents=True)
    (data / SOURCE_DIR / "xgboost" / "xgboost-model.ubj").write_bytes(bytes(booster.save_raw("ubj")))
    config = {"source": f"{SOURCE_DIR}/xgboost", "trust": False, "options": {}, "framework": "xgboost",
              "input": "auto", "categories": categories,
              "original": loaded.report.source if loaded.report is not None else None}
    (data / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def write(path: str, **common: Any) -> None:
        mlflow.pyfunc.save_model(path, loader_module=LOADER_MODULE, data_path=str(data), **common)

    return _Flavor("artifact-tools", write, _MODULES["xgboost"], inputs=inputs,
                   note="MLflow's xgboost flavor cannot take categorical features: the python_function loads the "
                        "booster (UBJSON) with artifact-tools and turns the categorical columns ("
                        + ", ".join(categories) + ") back into the training categories")


def _as_categories(data: Any, categories: dict[str, list | None] | None) -> Any:
    """``data`` with the categorical features as pandas categories again (see :func:`_xgboost_categorical`):
    values become categories of the training categories (another value: missing); codes (``None``: the model
    records no categories) become categories whose codes they are."""
    if not categories or not hasattr(data, "columns"):
        return data
    import numpy as np
    import pandas as pd

    data = data.copy()
    for name, values in categories.items():
        if name not in data.columns:
            continue
        if values is not None:
            data[name] = pd.Categorical(data[name], categories=values)
            continue
        codes = pd.to_numeric(data[name], errors="coerce").to_numpy(np.float64)
        valid = np.isfinite(codes) & (codes >= 0) & (codes == np.floor(codes))
        ints = np.where(valid, codes, -1).astype(np.int64)
        width = max(int(ints.max(initial=-1)) + 1, 1)
        data[name] = pd.Categorical.from_codes(ints.tolist(), categories=pd.RangeIndex(width))
    return data


def _trust_of(loaded: LoadedModel) -> bool | str:
    """The trust the artifact needs to load again *the way it was loaded*: what loading acts on
    (:func:`artifact_tools.trust.required_level`: a dangerous finding anywhere, code that loading runs), and
    ``True`` when the member the loader read holds types outside the allowlist (the loader's own check, which
    ``required_level`` leaves to it). Not the audit verdict alone: a ``code`` verdict from an inference script that
    loading did not run would, with ``trust=True``, route the reload through that script instead of the model file
    the source was loaded from."""
    from artifact_tools.trust import required_level

    if loaded.report is None:
        return False
    trust = loaded.report.trust
    need = required_level(trust)
    if need == "all":
        return "all"
    if need == "true":
        return True
    file = str(loaded.info.get("file") or "")
    prefix = f"{loaded.report.root_prefix}/" if loaded.report.root_prefix else ""
    for member in trust.get("members", []):
        if any(f.get("level") == "unknown-types" for f in member.get("findings", [])):
            path = str(member.get("path", ""))
            if not file or path in (file, prefix + file) or path.endswith("/" + file):
                return True
    return False


def _load_options(loaded: LoadedModel) -> dict:
    """The loader options that choose what the source loaded where the artifact holds several candidates: the
    SavedModel signature (and version folder, when there are several), the training host of a built-in."""
    info, report = loaded.info, loaded.report
    options: dict[str, Any] = {}
    if loaded.framework == "tensorflow" and info.get("signature"):
        options["signature"] = info["signature"]
        saved = [m for m in report.models if m.format == "tensorflow-savedmodel"] if report is not None else []
        if len(saved) > 1 and info.get("model_dir"):
            options["version"] = info["model_dir"]
    if loaded.framework == "mxnet" and info.get("algorithm") and info.get("host"):
        options["host"] = info["host"]
    return options


def _input_kind(loaded: LoadedModel) -> str:
    return "frame" if loaded.framework in ("mleap", "spark") else "auto"


def _copy_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)  # contents only: the new file gets a new file's mode


def _copy_tree(src: Path, dest: Path) -> None:
    for p in sorted(src.rglob("*")):
        target = dest / p.relative_to(src)
        if p.is_symlink():
            continue  # loaders refuse links out of an artifact; a copy holds regular files only
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            _copy_file(p, target)


class ArtifactToolsModel:
    """The python_function of an artifact MLflow has no flavor for: ``loaders.load`` of the copied artifact."""

    def __init__(self, loaded: LoadedModel, config: dict):
        self.loaded, self.config = loaded, config

    def predict(self, data: Any, params: dict | None = None) -> Any:
        del params
        data = _as_categories(data, self.config.get("categories"))
        return _named_outputs(self.loaded.predict(_model_input(data, self.config.get("input", "auto"))))


def _named_outputs(predictions: Any) -> Any:
    """A list of output arrays (an MXNet graph with several heads) as ``{"output_<i>": array}``: MLflow's
    signatures and scoring server take named outputs (a dict of arrays), not a list of differently shaped ones."""
    if isinstance(predictions, (list, tuple)) and predictions and all(hasattr(p, "shape") for p in predictions):
        return {f"output_{i}": p for i, p in enumerate(predictions)}
    return predictions


def _model_input(data: Any, kind: str) -> Any:
    """What the scoring server hands over (a DataFrame for column signatures) as the loader takes it: numeric
    columns become one array, one text column a list of texts; MLeap and Spark keep the frame."""

    if kind == "frame" or not hasattr(data, "columns"):
        return data
    if len(data.columns) == 1 and data.dtypes.iloc[0].kind == "O":
        return data.iloc[:, 0].tolist()
    if all(dt.kind in "biuf" for dt in data.dtypes) and all(isinstance(c, int) for c in data.columns):
        return data.to_numpy()
    return data


def _load_pyfunc(data_path: str) -> ArtifactToolsModel:
    """MLflow's ``loader_module`` entry point (``mlflow.pyfunc.load_model`` calls it with the model's data folder)."""
    import loaders

    folder = Path(data_path)
    config = json.loads((folder / CONFIG).read_text())
    options = config.get("options") or {}
    return ArtifactToolsModel(loaders.load(str(folder / config["source"]), trust=config["trust"], **options), config)


# ------------------------------------------------------------------------------------------------ requirements

def requirements_for(modules: list[str], artifact_tools: LoadedModel | None = None) -> list[str]:
    """``dist==version`` of the installed distributions providing ``modules`` (and mlflow), in that order; with
    ``artifact_tools`` (the source of an artifact-tools python_function) first ``artifact-tools[extra]``."""
    providers = _providers()
    found: list[str] = []
    if artifact_tools is not None:
        extra = _EXTRAS.get(artifact_tools.framework)
        found.append(_pin("artifact-tools", f"[{extra}]" if extra else ""))
    for module in [*modules, "mlflow"]:
        dists = providers.get(module, [])
        if module == "mlflow":
            dists = [d for d in ("mlflow", "mlflow-skinny") if _version(d)][:1]
        for dist in dists[:1]:
            pin = _pin(dist)
            if pin and pin not in found:
                found.append(pin)
    return [p for p in found if p]


@functools.lru_cache(maxsize=1)
def _providers() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions providing it, read once per process: scanning every
    installed distribution's file list costs about 0.15 s, a third of a small model's export in a migration.
    MLflow's ``save_model`` makes the same scan for its own requirement inference and keeps the result
    (``mlflow.utils.requirements_utils._init_modules_to_packages_map``, MLflow 2.x-3.x: ``packages_distributions()``
    plus keys for MLflow's extras and Databricks namespaces, which no top-level module here is), so that map is
    taken when this MLflow has it; the scan itself otherwise."""
    try:
        from mlflow.utils import requirements_utils as mlflow_requirements

        mlflow_requirements._init_modules_to_packages_map()
        known = mlflow_requirements._MODULES_TO_PACKAGES
        if isinstance(known, dict) and known:
            return {k: list(v) for k, v in known.items()}
    except Exception:  # noqa: BLE001 -- another MLflow: the same scan, made here
        pass
    return dict(importlib.metadata.packages_distributions())


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pin(dist: str, extra: str = "") -> str:
    version = _version(dist)
    if version is None:
        return f"{dist}{extra}"
    return f"{dist}{extra}=={version.split('+')[0]}"


# ------------------------------------------------------------------------------------------------ samples

def _plain(samples: Any) -> Any:
    """The sample as MLflow takes an input example: texts as a list, arrays as numpy."""
    import numpy as np

    if isinstance(samples, tuple):
        samples = list(samples)
    if isinstance(samples, list) and samples and not all(isinstance(s, str) for s in samples):
        return np.asarray(samples)
    return samples


def _signature_output(predictions: Any) -> Any:
    import numpy as np

    if isinstance(predictions, dict):
        return {k: np.asarray(v) for k, v in predictions.items()}
    return predictions


def _count(samples: Any) -> int:
    if isinstance(samples, dict):
        return len(next(iter(samples.values())))
    return len(samples)


# ------------------------------------------------------------------------------------------------ registration

_JOB_KEY = re.compile(r"(?:^|/)(?P<job>[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))/output/model\.tar\.gz$")


def _provenance(loaded: LoadedModel, opts: MLflowOptions) -> dict:
    """Where the model came from, for the MLmodel metadata and the registry tags (strings only)."""
    import artifact_tools

    facts = {"version": getattr(artifact_tools, "__version__", "") or (_version("artifact-tools") or ""),
             "framework": loaded.framework}
    report = loaded.report
    if report is not None:
        facts["source"] = report.source
        facts["layout"] = report.layout
        if report.algorithm:
            facts["algorithm"] = report.algorithm
        local = Path(report.source)
        if local.is_file():
            facts["source_sha256"] = _sha256(local)
        match = _JOB_KEY.search(report.source.split("?")[0])
        if match and report.source.startswith("s3://"):
            facts["sagemaker_job"] = match.group("job")
    era = _era(loaded)
    if era:
        facts["era"] = era
    if opts.sagemaker_job:
        facts["sagemaker_job"] = opts.sagemaker_job
    if opts.sagemaker_model:
        facts["sagemaker_model"] = opts.sagemaker_model
    return facts


def _era(loaded: LoadedModel) -> str | None:
    """The framework era the artifact was written in: XGBoost's era, else the version that saved it."""
    info = loaded.info
    if info.get("era"):
        return str(info["era"])
    for key, value in info.items():
        if key.endswith("_version_saved") and value:
            return f"{key.removesuffix('_version_saved')} {value}"
    for key in ("mleap_version",):
        if info.get(key):
            return f"mleap {info[key]}"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _registered_name(loaded: LoadedModel, name: str | None) -> str:
    if name:
        return name
    source = loaded.report.source if loaded.report is not None else ""
    stem = PurePosixPath(source.rstrip("/")).name if source else ""
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        stem = stem.removesuffix(suffix)
    if stem in ("", "model", "output"):  # s3://.../<job>/output/model.tar.gz: the job names the model
        match = _JOB_KEY.search(source)
        stem = match.group("job") if match else f"{loaded.framework}-model"
    return stem


def _register(mlflow: Any, folder: Path, loaded: LoadedModel, opts: MLflowOptions, result: ExportResult) -> dict:
    """Log ``folder`` as a run's ``model`` artifact and create a registered model version from it, with tags."""
    from mlflow.exceptions import MlflowException

    tracking = opts.tracking_uri or opts.registry_uri
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=opts.registry_uri)
    name = _registered_name(loaded, opts.name)
    facts = _provenance(loaded, opts)
    tags = {f"artifact_tools.{k}": str(v) for k, v in facts.items() if k not in ("sagemaker_job", "sagemaker_model")}
    if facts.get("sagemaker_job"):
        tags["sagemaker.training_job"] = facts["sagemaker_job"]
    if facts.get("sagemaker_model"):
        tags["sagemaker.model_name"] = facts["sagemaker_model"]
    tags["artifact_tools.verification"] = "passed" if result.passed else "unverified"
    max_diff = max((c.max_abs_diff for c in result.checks if c.max_abs_diff is not None), default=None)
    if max_diff is not None:
        tags["artifact_tools.max_abs_diff"] = f"{max_diff:.3g}"
    try:
        experiment = client.get_experiment_by_name(opts.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(opts.experiment)
        run = client.create_run(experiment_id, tags={"mlflow.runName": f"export {name}",
                                                     **{k: v for k, v in tags.items()}})
        run_id = run.info.run_id
        result.write(folder)  # the logged copy carries its verification report
        client.log_artifacts(run_id, str(folder), artifact_path="model")
        client.set_terminated(run_id)
        try:
            client.create_registered_model(name, description="exported by artifact-tools")
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run_id,
                                              tags=tags)
    except MlflowException as e:
        raise ArtifactError(f"registering the model in {opts.registry_uri} failed: {_first_line(e)}") from None
    except OSError as e:  # connection refused, DNS...
        raise ArtifactError(f"registering the model in {opts.registry_uri} failed: {e}") from None
    return {"registered_model": name, "model_version": str(version.version),
            "model_uri": f"models:/{name}/{version.version}", "run_id": run_id}


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return lines[0][:300]
