"""SageMaker layouts: what each framework's SageMaker serving container loads from ``/opt/ml/model``, the
handlers generated for it, the image it runs in, and how each layout is verified. Private: shared by the
``sagemaker`` target (:mod:`exporters.sagemaker`) and the ``git`` target (:mod:`exporters.git_container`,
whose ``model/`` folder is this layout).

Layouts, per framework (what each container reads from ``/opt/ml/model``):

- XGBoost built-in algorithm container: one file ``xgboost-model``. The container unpickles it, and failing that
  calls ``Booster.load_model`` on it (aws/sagemaker-xgboost-container
  ``src/sagemaker_xgboost_container/algorithm_mode/serve_utils.py``, ``get_loaded_booster``). Without a file
  extension XGBoost reads the model through ``Learner::LoadModel(dmlc::Stream*)``, which takes a file starting
  with ``{"`` as JSON (XGBoost >= 1.0) and ``{`` + a UBJSON type letter as UBJSON (XGBoost >= 1.6)
  (dmlc/xgboost ``src/learner.cc`` at v1.0.0, v1.6.0, v1.7.4, v3.0.5). XGBoost >= 3.1 writes ``base_score`` as
  a vector (``"[5E-1]"``) that readers before 3.1 parse as a scalar with ``from_chars`` (``src/learner.cc``
  v3.0.5 ``LearnerModelParamLegacy::FromJson``), so a one-element vector is rewritten as the scalar all
  releases read. For ``text/csv`` the container builds a DMatrix without feature names (``encoder.py``
  ``csv_to_dmatrix``) and predicts with ``validate_features=False`` (``serve_utils.py`` ``predict``), so models
  saved with feature names are served plain rows in their column order. Written as UBJSON (default,
  ``xgboost_format=ubj``: images 1.7-1, 3.0-5, 3.2-0) or JSON (``xgboost_format=json``: the same images; 1.0-1
  to 1.5-1 parse JSON too but are not claimed).
- scikit-learn container: ``model.joblib`` + ``code/inference.py`` (``model_fn``/``input_fn``/``predict_fn``/
  ``output_fn``) + ``code/requirements.txt`` pinning the scikit-learn that pickled the model. ``predict_fn`` calls
  what :mod:`loaders.sklearn` calls: ``predict``, else ``kneighbors`` (indices), else ``transform``.
- SageMaker's MXNet built-in algorithms (Linear Learner, k-means, PCA, NTM, Factorization Machines, image
  classification) are refused: their ``model.tar.gz`` is served as it is by the algorithm's own image, and their
  graphs (training graphs with label inputs, or bare NDArray lists) are not the Gluon export the MXNet framework
  container reads; ``--to onnx`` exports Linear Learner, Factorization Machines, k-means and PCA.
- TensorFlow Serving container: ``<version>/saved_model.pb`` + ``variables/`` (+ ``assets/``), and ``code/``
  when the source had one.
- PyTorch container: the source's files + ``model.pt`` (TorchScript) + ``code/inference.py``.
- Hugging Face container: the model folder (config, weights, tokenizer) at the root + ``code/inference.py``;
  ``HF_TASK`` set in the environment.
- MXNet container: ``model-symbol.json``, ``model-0000.params``, ``model-shapes.json`` (the Gluon export the
  container's default handler reads) + ``code/inference.py``.

Handlers follow the inference toolkit contract (aws/sagemaker-inference-toolkit
``src/sagemaker_inference/transformer.py``: ``model_fn(model_dir)``, ``input_fn(body, content_type)``,
``predict_fn(data, model)``, ``output_fn(prediction, accept)`` returning the body or ``(body, content_type)``);
the environment points the container at them (``SAGEMAKER_PROGRAM=inference.py``,
``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``, as the SageMaker SDK sets after repacking). The generated
handlers need numpy, the framework and ``code/_codec.py``, a verbatim copy of
:mod:`artifact_tools.codec` (the request/response rules ``serve`` and ``load --predict`` use), loaded by its path
(artifact-tools is not installed in the container); a code folder given by the caller whose ``inference.py``
loads ``_codec.py`` gets it too.

Members of a source artifact are streamed into the new archive (:mod:`exporters._tar`), renamed when the
layout needs it, never extracted to disk.

Verification extracts the new archive (as SageMaker does into ``/opt/ml/model``) and re-opens it the way the
container would: the XGBoost file through ``Booster.load_model`` on the bare file name; the handlers imported
from ``code/inference.py`` with importlib and called with ``text/csv`` and ``application/json`` bodies; the
SavedModel's ``serving_default`` signature run in a TensorFlow session as TensorFlow Serving does.

Image versions and registries: aws/sagemaker-python-sdk
``sagemaker-core/src/sagemaker/core/image_uri_config/{xgboost,sklearn,tensorflow,pytorch,mxnet,huggingface}.json``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from artifact_tools.errors import ArtifactError, NotLoadable
from loaders.base import LoadedModel

from ._common import Check, check
from ._savedmodel import SERVING_SIGNATURE, run_signature, save_with_signature
from ._tar import Contents

__all__ = ["BUILDERS", "IMAGES", "Layout", "build_layout", "code_files", "csv_body", "extract_archive", "json_body",
           "keep_all", "manifest", "run_handlers", "sample_count", "source_predictions", "xgboost_model_bytes"]

CODE_DIR = "code"
ARCHIVE = "model.tar.gz"
DEFAULT_REGION = "us-east-1"


# framework -> (ECR repository, us-east-1 registry account, [(image version, tag)], framework versions they hold)
IMAGES: dict[str, dict] = {
    "xgboost": {"repository": "sagemaker-xgboost", "account": "683313688378",
                "versions": {"1.7-1": "1.7-1", "3.0-5": "3.0-5", "3.2-0": "3.2-0"}},
    "sklearn": {"repository": "sagemaker-scikit-learn", "account": "683313688378",
                "versions": {"1.0-1": "1.0-1-cpu-py3", "1.2-1": "1.2-1-cpu-py3", "1.4-2": "1.4-2-cpu-py3"}},
    "tensorflow": {"repository": "tensorflow-inference", "account": "763104351884",
                   "versions": {"2.16.1": "2.16.1-cpu", "2.18.0": "2.18.0-cpu", "2.19.0": "2.19.0-cpu"}},
    "pytorch": {"repository": "pytorch-inference", "account": "763104351884",
                "versions": {"2.4.0": "2.4.0-cpu-py311", "2.5.1": "2.5.1-cpu-py311", "2.6.0": "2.6.0-cpu-py312"}},
    "mxnet": {"repository": "mxnet-inference", "account": "763104351884",
              "versions": {"1.8.0": "1.8.0-cpu-py37", "1.9.0": "1.9.0-cpu-py38"}},
    "huggingface": {"repository": "huggingface-pytorch-inference", "account": "763104351884",
                    "versions": {"4.51.3": "2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04"}},
}
_SDK_NAMES = {"sklearn": "sklearn", "xgboost": "xgboost", "tensorflow": "tensorflow", "pytorch": "pytorch",
              "mxnet": "mxnet", "huggingface": "huggingface"}

@dataclass
class Layout(Contents):
    """What goes into the SageMaker model (:class:`exporters._tar.Contents`), with the image and environment for
    ``CreateModel`` and the verification of the written files."""

    environment: dict[str, str] = field(default_factory=dict)
    image_version: str | None = None
    accepted_images: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verify: Callable[[Path], list[Check]] = lambda model_dir: []


def keep_all(prefix: str = "", drop_code: bool = True) -> Callable[[str], str | None]:
    """Keep every member under ``prefix`` (moved to the root), leaving out ``code/`` when it is replaced."""
    def rename(name: str) -> str | None:
        if prefix:
            if not name.startswith(prefix + "/"):
                return None
            name = name[len(prefix) + 1:]
        if drop_code and (name == CODE_DIR or name.startswith(CODE_DIR + "/")):
            return None
        return name

    return rename


def code_files(folder: Path) -> dict[str, Path]:
    if not (folder / "inference.py").is_file():
        raise ArtifactError(f"the code folder {folder} has no inference.py")
    return {f"{CODE_DIR}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}



def build_layout(loaded: LoadedModel, samples: Any, expected: Any, rtol: float, atol: float, work: Path, *,
                 xgboost_format: str = "ubj", version: Any = None, code: str | os.PathLike | None = None) -> Layout:
    """The SageMaker layout of ``loaded`` (framework savers write into ``work``), with its verification bound to
    ``samples``/``expected``."""
    if loaded.framework not in BUILDERS:
        raise ArtifactError(f"artifact-tools cannot export {loaded.framework} models for SageMaker")
    ctx = _Context(loaded, samples, expected, rtol, atol, work)
    if loaded.framework == "xgboost":
        layout = _xgboost(ctx, xgboost_format)
    elif loaded.framework == "tensorflow":
        layout = _tensorflow(ctx, version)
    else:
        layout = BUILDERS[loaded.framework](ctx)
    if code is not None:
        _use_own_code(layout, Path(code), ctx)
    return layout


def sample_count(samples: Any) -> int:
    if isinstance(samples, dict):
        return len(next(iter(samples.values())))
    return len(samples)


def source_predictions(loaded: LoadedModel, samples: Any) -> Any:
    try:
        return loaded.predict(samples)
    except NotLoadable as e:
        raise ArtifactError(f"the source model cannot predict, so the export cannot be verified: {e}") from None


def extract_archive(archive: Path, dest: Path) -> Path:
    """Unpack the new archive with the same safety checks as any artifact (SageMaker untars into /opt/ml/model)."""
    from artifact_tools.archive import open_artifact

    with open_artifact(archive) as art:
        art.extract(dest)
    return dest


@dataclass
class _Context:
    loaded: LoadedModel
    samples: Any
    expected: Any
    rtol: float
    atol: float
    work: Path

    @property
    def report(self):
        return self.loaded.report

    def member(self, rel: str) -> str:
        """The archive member name of a path relative to the loaded root (adds the extra top folder)."""
        prefix = self.report.root_prefix if self.report is not None else ""
        return f"{prefix}/{rel}" if prefix else rel

    def check(self, name: str, actual: Any, how: str) -> Check:
        return check(name, self.expected, actual, self.rtol, self.atol, how)


def _image(framework: str, installed: str | None) -> tuple[str, list[str]]:
    """The newest image whose framework version is not above ``installed`` (else the oldest), and all known."""
    from packaging.version import Version

    versions = list(IMAGES[framework]["versions"])
    if installed is None:
        return versions[-1], versions
    have = Version(re.sub(r"[+].*$", "", installed))
    fitting = [v for v in versions if Version(v.replace("-", ".")) <= have]
    return (fitting[-1] if fitting else versions[0]), versions


def manifest(layout: Layout, uncompressed: bool) -> dict:
    spec = IMAGES[layout.framework]
    version = layout.image_version or list(spec["versions"])[-1]
    tag = spec["versions"][version]
    uri = f"{spec['account']}.dkr.ecr.{DEFAULT_REGION}.amazonaws.com/{spec['repository']}:{tag}"
    container: dict[str, Any] = {"Image": uri, "Environment": layout.environment}
    if uncompressed:
        container["ModelDataSource"] = {"S3DataSource": {"S3Uri": "s3://<bucket>/<prefix>/", "S3DataType": "S3Prefix",
                                                         "CompressionType": "None"}}
    else:
        container["ModelDataUrl"] = f"s3://<bucket>/<prefix>/{ARCHIVE}"
    return {
        "framework": layout.framework,
        "image": {"repository": spec["repository"], "version": version, "tag": tag, "uri": uri,
                  "region_of_uri": DEFAULT_REGION, "accepted_versions": layout.accepted_images,
                  "other_regions": f"sagemaker.image_uris.retrieve({_SDK_NAMES[layout.framework]!r}, <region>, "
                                   f"version={version!r}, image_scope='inference', instance_type='ml.m5.large')"},
        "environment": layout.environment,
        "create_model": {"PrimaryContainer": container},
        "upload": ("upload the files of model/ under one S3 prefix" if uncompressed
                   else f"upload {ARCHIVE} to S3 and put its URI in ModelDataUrl"),
    }


_HANDLER_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": f"/opt/ml/model/{CODE_DIR}",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}


def _use_own_code(layout: Layout, folder: Path, ctx: _Context) -> None:
    """Replace the generated handlers with the caller's code folder (verified the same way)."""
    if layout.framework in ("xgboost",):
        raise ArtifactError("the XGBoost built-in container runs no inference code; drop the code option")
    layout.files = {k: v for k, v in layout.files.items() if not k.startswith(CODE_DIR + "/")}
    layout.local = {k: v for k, v in layout.local.items() if not k.startswith(CODE_DIR + "/")}
    layout.local.update(code_files(folder))
    if _CODEC_FILE not in layout.local and "_codec.py" in (folder / "inference.py").read_text(errors="replace"):
        layout.files[_CODEC_FILE] = _codec_source()  # handlers started from generated ones load the codec beside them
    layout.environment.update(_HANDLER_ENV)
    if layout.framework == "tensorflow":
        return
    layout.verify = lambda model_dir: _handler_checks(ctx, model_dir, texts=layout.framework == "huggingface")


# ============================================================================================ handler contract

def run_handlers(model_dir: Path, body: bytes, content_type: str, accept: str = "application/json") -> tuple[Any, str]:
    """Serve one request the way the SageMaker inference toolkit does: import ``code/inference.py`` from the model
    folder, ``model_fn(model_dir)``, then ``input_fn`` -> ``predict_fn`` -> ``output_fn``; returns (body, type)."""
    module = _import_handlers(model_dir)
    for name in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not hasattr(module, name):
            raise ArtifactError(f"code/inference.py defines no {name}; the container would use its default "
                                "handler there, which artifact-tools does not reproduce")
    model = module.model_fn(str(model_dir))
    data = module.input_fn(bytearray(body), content_type)
    prediction = module.predict_fn(data, model)
    out = module.output_fn(prediction, accept)
    return out if isinstance(out, tuple) else (out, accept)


def _import_handlers(model_dir: Path):
    code = model_dir / CODE_DIR
    path = code / "inference.py"
    if not path.is_file():
        raise ArtifactError(f"the export has no {CODE_DIR}/inference.py")
    spec = importlib.util.spec_from_file_location(f"_sagemaker_inference_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise ArtifactError(f"{CODE_DIR}/inference.py cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(code))  # the toolkit puts the code folder on sys.path for helper modules
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code))
    return module


def _rows(samples: Any) -> np.ndarray:
    return np.asarray(samples.to_numpy() if hasattr(samples, "to_numpy") else samples, dtype=np.float64)


def csv_body(samples: Any) -> bytes:
    """Rows as a ``text/csv`` body; every float written so that it reads back exactly."""
    rows = _rows(samples)
    rows = rows.reshape(len(rows), -1)
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def json_body(samples: Any) -> bytes:
    return json.dumps({"instances": _rows(samples).tolist()}).encode()


def _text_csv(texts: Any) -> bytes:
    """Texts as a one-column ``text/csv`` body (quoted where a text holds a comma, a quote or a line break)."""
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([t] for t in texts)
    return buf.getvalue().encode()


def _handler_checks(ctx: _Context, model_dir: Path, texts: bool = False) -> list[Check]:
    if texts:
        bodies = [("text/csv", _text_csv(ctx.samples)),
                  ("application/json", json.dumps({"inputs": list(ctx.samples)}).encode())]
    else:
        bodies = [("text/csv", csv_body(ctx.samples)), ("application/json", json_body(ctx.samples))]
    checks = []
    for content_type, body in bodies:
        name = f"code/inference.py with {content_type}"
        try:
            out, _ = run_handlers(model_dir, body, content_type)
            got = json.loads(out)
        except Exception as e:  # a handler failing is a failed check, reported in one line
            first = str(e).splitlines()[0] if str(e) else ""
            checks.append(Check(name, False, f"the handlers raised {type(e).__name__}: {first}"))
            continue
        if texts:
            import pandas as pd

            got = pd.DataFrame([g[0] if isinstance(g, list) else g for g in got])
        checks.append(ctx.check(name, got, "model_fn -> input_fn -> predict_fn -> output_fn(application/json)"))
    return checks


_CODEC_FILE = f"{CODE_DIR}/_codec.py"

# loads the codec copied beside the handlers by its path, so that neither sys.path nor artifact-tools matters
_CODEC_LOADER = '''

def _load_codec():
    """artifact-tools' request/response rules (_codec.py beside this file: numpy and the standard library)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_codec.py")
    spec = importlib.util.spec_from_file_location("_artifact_tools_codec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codec = _load_codec()
'''

_IO_HANDLERS = _CODEC_LOADER + '''

def input_fn(input_data, content_type):
    """The body as model input: text/csv (with or without a header; an empty cell is NaN), application/json (rows,
    {"instances": ...}, {"inputs": ...}, MLflow's dataframe_split / dataframe_records), application/jsonlines,
    application/x-npy or text/plain; the rules are in _codec.py."""
    return codec.decode(input_data, content_type).data


def output_fn(prediction, accept):
    """(body, content type): application/json (also for */* and no Accept), text/csv, application/jsonlines or
    application/x-npy, as Accept asks."""
    return codec.encode(prediction, accept)
'''

_HEADER = '''"""SageMaker {container} handlers, written by artifact-tools {version}.

model_fn(model_dir) -> model; input_fn(body, content_type) -> data; predict_fn(data, model) -> prediction;
output_fn(prediction, accept) -> (body, content_type). Bodies are read and written by _codec.py beside this file.
"""
import json
import os

import numpy as np
'''


def _codec_source() -> bytes:
    """artifact_tools/codec.py as it is, to be copied beside the generated handlers."""
    from artifact_tools import codec

    return Path(codec.__file__).read_bytes()


def _write_handlers(layout: Layout, text: str) -> None:
    """The generated ``code/inference.py`` and the codec it loads (``code/_codec.py``)."""
    layout.files[f"{CODE_DIR}/inference.py"] = text.encode()
    layout.files[_CODEC_FILE] = _codec_source()


def _header(container: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("artifact-tools")
    except PackageNotFoundError:
        ours = "(source tree)"
    return _HEADER.format(container=container, version=ours)


# ============================================================================================ XGBoost

def xgboost_model_bytes(booster: Any, fmt: str = "ubj") -> bytes:
    """The Booster as a JSON or UBJSON model file that XGBoost 1.6 and later read (see the module notes)."""
    if fmt not in ("ubj", "json"):
        raise ArtifactError(f"xgboost_format must be ubj or json, not {fmt!r}")
    raw = bytes(booster.save_raw(fmt))
    return _scalar_base_score_json(raw) if fmt == "json" else _scalar_base_score_ubj(raw)


def _scalar_base_score_json(raw: bytes) -> bytes:
    return re.sub(rb'"base_score":"\[([^\],]*)\]"', rb'"base_score":"\1"', raw, count=1)


_UBJ_LENGTH = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q"}


def _scalar_base_score_ubj(raw: bytes) -> bytes:
    """UBJSON strings are ``S`` + a length (type marker + big-endian integer) + bytes (ubjson.org spec; xgboost
    ``src/common/json.cc`` ``UBJReader``/``UBJWriter``)."""
    import struct

    key = b"base_score"
    at = raw.find(key + b"S")
    if at < 0:
        return raw
    pos = at + len(key) + 1
    marker = raw[pos:pos + 1]
    if marker not in _UBJ_LENGTH:
        return raw
    fmt = _UBJ_LENGTH[marker]
    width = struct.calcsize(fmt)
    length = struct.unpack(fmt, raw[pos + 1:pos + 1 + width])[0]
    start = pos + 1 + width
    value = raw[start:start + length]
    if not (value.startswith(b"[") and value.endswith(b"]") and b"," not in value):
        return raw
    inner = value[1:-1]
    return raw[:pos] + marker + struct.pack(fmt, len(inner)) + inner + raw[start + length:]


def _xgboost(ctx: _Context, fmt: str) -> Layout:
    import xgboost as xgb

    data = xgboost_model_bytes(ctx.loaded.model, fmt)
    image, _ = _image("xgboost", xgb.__version__)
    accepted = ["1.7-1", "3.0-5", "3.2-0"]

    def verify(model_dir: Path) -> list[Check]:
        path = model_dir / "xgboost-model"
        head = path.read_bytes()[:2]
        ok = head[:1] == b"{" and (head[1:2] == b'"' if fmt == "json" else head[1:2].isalpha())
        checks = [Check("file signature", ok, f"{'JSON' if fmt == 'json' else 'UBJSON'} model starting {head!r}, "
                        f"which XGBoost >= {'1.0' if fmt == 'json' else '1.6'} reads without a file extension")]
        booster = xgb.Booster()
        with warnings.catch_warnings():  # XGBoost >= 3.1 warns that it sniffs the format of a bare file name
            warnings.simplefilter("ignore")
            booster.load_model(str(path))  # the container's call, on the bare file name
        body = csv_body(ctx.samples)
        rows = np.loadtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2, dtype=np.float32)
        # the container's text/csv DMatrix has no feature names, and it predicts with validate_features=False
        # (serve_utils.py predict, _predict_with_compat), so a model saved with feature names takes plain rows
        got = booster.predict(xgb.DMatrix(rows, missing=np.nan), validate_features=False)
        checks.append(ctx.check("xgboost-model", got, "Booster().load_model('xgboost-model') as the built-in "
                                "container calls it, fed the text/csv rows with validate_features=False"))
        return checks

    notes = []
    if ctx.loaded.info.get("converted"):
        notes.append("the source model was converted from an older XGBoost format")
    return Layout("xgboost", files={"xgboost-model": data}, image_version=image, accepted_images=accepted,
                  notes=notes, verify=verify,
                  environment={"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"})


# ============================================================================================ scikit-learn

_SKLEARN_HANDLERS = '''
import joblib

MODEL_FILE = "model.joblib"


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, MODEL_FILE))


def predict_fn(input_data, model):
    names = getattr(model, "feature_names_in_", None)
    if names is not None and isinstance(input_data, np.ndarray) and input_data.ndim == 2:
        import pandas as pd

        input_data = pd.DataFrame(input_data, columns=list(names))
    # the method artifact-tools' loader calls: predict; else kneighbors (the neighbours' indices); else transform
    if callable(getattr(model, "predict", None)):
        return model.predict(input_data)
    if callable(getattr(model, "kneighbors", None)):
        return model.kneighbors(input_data, return_distance=False)
    return model.transform(input_data)
'''


def _sklearn(ctx: _Context) -> Layout:
    import joblib
    import sklearn

    saved = ctx.loaded.info.get("sklearn_version_saved") or sklearn.__version__
    image, _ = _image("sklearn", saved)
    layout = Layout("sklearn", environment=dict(_HANDLER_ENV), image_version=image, accepted_images=[image])
    source_file = ctx.loaded.info.get("file")
    if ctx.report is not None and source_file:
        member = ctx.member(source_file)
        keep = keep_all(ctx.report.root_prefix)
        layout.source = ctx.report.source
        layout.rename = lambda name: "model.joblib" if name == member else keep(name)
    else:
        buf = io.BytesIO()
        joblib.dump(ctx.loaded.model, buf)
        layout.files["model.joblib"] = buf.getvalue()
    _write_handlers(layout, _header("scikit-learn container") + _IO_HANDLERS + _SKLEARN_HANDLERS)
    layout.files[f"{CODE_DIR}/requirements.txt"] = f"scikit-learn=={saved}\njoblib\n".encode()
    layout.notes.append(f"code/requirements.txt pins scikit-learn=={saved}, the release that pickled the model "
                        "(pickles are only promised to load in the same release)")
    layout.verify = lambda model_dir: _handler_checks(ctx, model_dir)
    return layout


# ============================================================================================ TensorFlow

def _tensorflow(ctx: _Context, version: Any) -> Layout:
    import tensorflow as tf

    image, known = _image("tensorflow", tf.__version__)
    layout = Layout("tensorflow", image_version=image, accepted_images=known)
    info = ctx.loaded.info
    model_dir = info.get("model_dir")
    if ctx.report is not None and model_dir is not None:
        last = PurePosixPath(model_dir).name
        number = str(version) if version is not None else last if last.isdigit() else str(info.get("version") or 1)
        prefix = ctx.member(model_dir) if model_dir not in ("", ".") else (ctx.report.root_prefix or "")
        code_prefix = ctx.member(CODE_DIR)

        def rename(name: str) -> str | None:
            if prefix and name.startswith(prefix + "/"):
                return f"{number}/{name[len(prefix) + 1:]}"
            if not prefix:
                return f"{number}/{name}"
            if name.startswith(code_prefix + "/"):
                return f"{CODE_DIR}/{name[len(code_prefix) + 1:]}"
            return None

        layout.source, layout.rename = ctx.report.source, rename
        signature = info.get("signature") or SERVING_SIGNATURE
    else:
        number = str(int(version) if version is not None else 1)
        saved = ctx.work / "savedmodel"
        save_with_signature(ctx.loaded.model, saved, ctx.samples)
        layout.local = {f"{number}/{p.relative_to(saved).as_posix()}": p
                        for p in sorted(saved.rglob("*")) if p.is_file()}
        signature = SERVING_SIGNATURE
    layout.notes.append(f"TensorFlow Serving serves the highest numeric folder ({number}); "
                        f"images accept SavedModels from TensorFlow versions up to their own ({', '.join(known)})")

    def verify(model_dir_: Path) -> list[Check]:
        got = run_signature(model_dir_ / str(number), signature, ctx.samples)
        return [ctx.check(f"{number}/ signature {signature!r}", got,
                          "the SavedModel loaded in a TensorFlow session as TensorFlow Serving loads it")]

    layout.verify = verify
    return layout


# ============================================================================================ PyTorch

_PYTORCH_HANDLERS = '''
import torch

MODEL_FILE = "model.pt"


def model_fn(model_dir):
    return torch.jit.load(os.path.join(model_dir, MODEL_FILE), map_location="cpu").eval()


def predict_fn(input_data, model):
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(input_data, dtype="float32"))).numpy()
'''


def _pytorch(ctx: _Context) -> Layout:
    import torch

    image, known = _image("pytorch", torch.__version__)
    model = ctx.loaded.model
    path = ctx.work / "model.pt"
    if isinstance(model, torch.jit.ScriptModule):
        scripted = model
    else:
        with torch.no_grad():
            scripted = torch.jit.trace(model.eval(), torch.as_tensor(_rows(ctx.samples), dtype=torch.float32))
    torch.jit.save(scripted, str(path))
    layout = Layout("pytorch", environment=dict(_HANDLER_ENV), image_version=image, accepted_images=known,
                    local={"model.pt": path})
    if ctx.report is not None:
        layout.source, layout.rename = ctx.report.source, keep_all(ctx.report.root_prefix)
    _write_handlers(layout, _header("PyTorch container") + _IO_HANDLERS + _PYTORCH_HANDLERS)
    layout.notes.append(f"model.pt is TorchScript written by torch {torch.__version__}; TorchScript loads in the "
                        "same or a newer PyTorch")
    layout.verify = lambda model_dir: _handler_checks(ctx, model_dir)
    return layout


# ============================================================================================ Hugging Face

_HF_HANDLERS = '''
from transformers import pipeline

TASK = os.environ.get("HF_TASK", "{task}")


def model_fn(model_dir):
    pipe = pipeline(TASK, model=model_dir, tokenizer=model_dir, device=-1)
    _fit_tokenizer_to_model(pipe)
    return pipe


def _fit_tokenizer_to_model(pipe):
    """Keep the tokenizer from emitting inputs the model's forward does not take (a BERT tokenizer lists
    token_type_ids, which a DistilBERT forward rejects); a forward taking **kwargs accepts every name."""
    import inspect

    tokenizer, model = getattr(pipe, "tokenizer", None), getattr(pipe, "model", None)
    names = list(getattr(tokenizer, "model_input_names", None) or [])
    forward = getattr(model, "forward", None) or getattr(model, "call", None)
    if not names or forward is None:
        return
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) or names[0] not in params:
        return
    tokenizer.model_input_names = [n for n in names if n in params]


def input_fn(input_data, content_type):
    """Texts: application/json ({{"inputs": texts, "parameters": {{...}}}} or a list), text/csv (one column) or
    text/plain (one text per line); the rules are in _codec.py."""
    request = codec.decode(input_data, content_type)
    parameters = {{k: v for k, v in request.params.items() if k != "signature_name"}}
    return {{"inputs": request.data, "parameters": parameters}}


def predict_fn(data, model):
    inputs = data["inputs"]
    return model(inputs if isinstance(inputs, list) else [inputs], **(data.get("parameters") or {{}}))


def output_fn(prediction, accept):
    """The pipeline's answers as the bare JSON list (as the Hugging Face container answers), or as Accept asks."""
    return codec.encode(prediction, accept)
'''


def _huggingface(ctx: _Context) -> Layout:
    import transformers

    task = ctx.loaded.info.get("task") or getattr(ctx.loaded.model, "task", None)
    image, _ = _image("huggingface", transformers.__version__)
    env = {**_HANDLER_ENV, "HF_TASK": str(task)}
    layout = Layout("huggingface", environment=env, image_version=image, accepted_images=[image])
    entry = ctx.report.model("huggingface") if ctx.report is not None else None
    if entry is not None:
        folder = str(PurePosixPath(entry.path).parent)
        prefix = ctx.member(folder) if folder != "." else (ctx.report.root_prefix or "")
        layout.source, layout.rename = ctx.report.source, keep_all(prefix)
    else:
        saved = ctx.work / "hf"
        pipe = ctx.loaded.model
        pipe.model.save_pretrained(saved)
        if pipe.tokenizer is not None:
            pipe.tokenizer.save_pretrained(saved)
        layout.local = {p.relative_to(saved).as_posix(): p for p in sorted(saved.rglob("*")) if p.is_file()}
    _write_handlers(layout, _header("Hugging Face container") + _CODEC_LOADER + _HF_HANDLERS.format(task=task))
    layout.verify = lambda model_dir: _handler_checks(ctx, model_dir, texts=True)
    return layout


# ============================================================================================ MXNet

_MXNET_HANDLERS = '''
if not hasattr(np, "bool"):
    np.bool = bool  # MXNet 1.x refers to np.bool, which numpy >= 1.24 removed

import mxnet as mx


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model-shapes.json")) as f:
        names = [entry["name"] for entry in json.load(f)]
    return mx.gluon.SymbolBlock.imports(os.path.join(model_dir, "model-symbol.json"), names,
                                        os.path.join(model_dir, "model-0000.params"), ctx=mx.cpu())


def predict_fn(input_data, model):
    return model(mx.nd.array(np.asarray(input_data, dtype="float32"))).asnumpy()
'''


# the built-ins the onnx target converts (exporters/onnx.py, _mxnet)
_ONNX_BUILTINS = ("linear-learner", "factorization-machines", "kmeans", "pca")


def _mxnet(ctx: _Context) -> Layout:
    import mxnet as mx

    algorithm = ctx.loaded.info.get("algorithm")
    if algorithm:
        onnx = " or export it with --to onnx" if algorithm in _ONNX_BUILTINS else ""
        raise ArtifactError(f"the {algorithm} model is a SageMaker built-in algorithm artifact, which the built-in "
                            f"{algorithm} image serves from its original model.tar.gz and the MXNet framework "
                            f"container cannot load; deploy the original artifact with the built-in image{onnx}")
    block = ctx.loaded.model
    if not hasattr(block, "export"):
        raise ArtifactError(f"the MXNet source is a {type(block).__name__}, not a Gluon block that can be exported")
    rows = _rows(ctx.samples).astype(np.float32)
    if hasattr(block, "hybridize") and not isinstance(block, mx.gluon.SymbolBlock):
        block.hybridize()
    block(mx.nd.array(rows))  # a hybridized block knows its graph only after one forward pass
    prefix = ctx.work / "model"
    block.export(str(prefix), epoch=0)
    symbol = json.loads((ctx.work / "model-symbol.json").read_text())
    params = mx.nd.load(str(ctx.work / "model-0000.params"))
    stored = {k.split(":", 1)[-1] for k in params}
    inputs = [n["name"] for n in symbol["nodes"] if n["op"] == "null" and n["name"] not in stored]
    if len(inputs) != 1:
        raise ArtifactError(f"the MXNet graph takes {len(inputs)} inputs ({', '.join(inputs)}); one is supported")
    shapes = [{"name": inputs[0], "shape": [1, *rows.shape[1:]]}]
    image, known = _image("mxnet", mx.__version__)
    layout = Layout("mxnet", environment=dict(_HANDLER_ENV), image_version=image, accepted_images=known,
                    local={"model-symbol.json": ctx.work / "model-symbol.json",
                           "model-0000.params": ctx.work / "model-0000.params"})
    layout.files["model-shapes.json"] = json.dumps(shapes).encode()
    _write_handlers(layout, _header("MXNet container") + _IO_HANDLERS + _MXNET_HANDLERS)
    layout.verify = lambda model_dir: _handler_checks(ctx, model_dir)
    return layout


BUILDERS: dict[str, Callable[..., Layout]] = {"xgboost": _xgboost, "sklearn": _sklearn, "tensorflow": _tensorflow,
                                               "pytorch": _pytorch, "huggingface": _huggingface, "mxnet": _mxnet}
