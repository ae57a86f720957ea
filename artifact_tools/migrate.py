"""Fleet migration off SageMaker: ``artifact-tools migrate SOURCE --to TARGET OUT`` and :func:`migrate`.

Every model found under SOURCE is inspected, audited, loaded, exported to TARGET (any target of
:func:`exporters.export`: ``mlflow``, ``onnx``, ``tf-serving``, ``git``, ``sagemaker``, ``mleap``; looked up in
``exporters.TARGETS`` at run time) and verified by the exporter on a sample input (the artifact's own
``sample_input()``), each into ``OUT/models/<name>/``. SOURCE is only ever read. The outcome of every model is
written to ``OUT/migration-report.json`` (schema ``artifact-tools.migration-report/1``, JSON Schema in
``artifact_tools/schema/migration-report-1.schema.json``, :func:`json_schema`), ``migration-report.csv`` and
``migration-report.html`` (self-contained: counts, a chart by framework and outcome as inline SVG, one row per
model), each written to a temporary name and renamed.

What SOURCE can be
  - one artifact file, or a folder / fsspec prefix / glob of them. A folder or prefix is walked: each file is
    told by its first bytes (:func:`artifact_tools.sniff.sniff`): archives (tar, gzip, zip) and self-contained
    model files (pickles, joblib, XGBoost, ONNX, LightGBM, CatBoost, PMML, HDF5, R, torch and Keras zips) are one
    model each; any other file (a SavedModel's protobuf, an MXNet graph, configs...) belongs to a model folder:
    the highest folder below SOURCE holding no archive nor model file, which is migrated whole. Hidden files
    (``.name``, AppleDouble ``._name``) and the OUT folder itself are never taken, nor opened are devices, named
    pipes and sockets (a device never ends, a pipe blocks); files that belong to no model are listed in the
    report's ``ignored``.
  - SageMaker model descriptions: JSON files holding the response of ``DescribeModel`` or the request of
    ``CreateModel`` (a list of them is read too), told from other JSON by their ``PrimaryContainer`` or
    ``Containers`` key. Shapes, from the SageMaker API reference (``API_DescribeModel``, ``API_CreateModel``,
    ``API_ContainerDefinition``, ``API_InferenceExecutionConfig``): ``ModelName``; ``PrimaryContainer`` or
    ``Containers`` (an inference pipeline: the containers in order; ``InferenceExecutionConfig.Mode`` ``Serial``,
    the default, chains them, ``Direct`` calls each alone), each a ``ContainerDefinition`` with ``Image`` (the
    ECR URI ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>``: the repository names the framework
    or built-in algorithm, the tag its version), ``ModelDataUrl`` (``s3://.../model.tar.gz``) or
    ``ModelDataSource.S3DataSource`` (``S3Uri``, ``S3DataType`` ``S3Object``/``S3Prefix``, ``CompressionType``
    ``Gzip``/``None``: an uncompressed prefix is a model folder), ``Environment`` (``SAGEMAKER_PROGRAM``: the
    inference script; ``SAGEMAKER_SUBMIT_DIRECTORY``: where the container fetches it from), ``Mode``
    (``SingleModel``/``MultiModel``), ``ContainerHostname``, ``ModelPackageName``. A ``ModelDataUrl`` that is a
    relative path is taken relative to the description file (a local mirror of the bucket). A single container
    migrates as one model; a pipeline migrates as one unit: each container's model exported into
    ``OUT/models/<name>/<n>-<hostname>/`` and ``pipeline.json`` listing the steps in order; the unit is migrated
    only when every step is. A JSON file that does not parse (cut off, malformed) and was meant as one (named
    ``*.json``, or naming a description's keys) fails as a model of its own, naming the parse error, unless it
    lies in a model folder. Multi-model containers (``Mode: MultiModel``, a prefix of many archives) and
    containers from a model package (``ModelPackageName``, no model data) are reported as not supported.

Per model
  inspect and audit in one streamed pass (:func:`loaders.cache.prepare`; nothing runs), the trust verdict taken
  from the report and the policy of :mod:`artifact_tools.trust` applied (``trust=False`` refuses anything that
  could run code), :func:`loaders.load` (from the extraction cache), :func:`exporters.export` with verification.
  Outcomes: ``migrated`` (exported and its predictions match the source's), ``unverified`` (exported, no sample
  input could be built), ``refused`` (the audit), ``unsupported`` (not loadable, a missing framework, a container
  kind migration does not handle), ``failed`` (damaged input, a load, export or verification failure); ``stage``
  says where it stopped and ``reason`` why, in one sentence. One model's failure never stops the others.

Parallel and resumable
  The models run in ``jobs`` long-lived worker processes (``forkserver``, else ``spawn``; also with ``jobs=1``, so
  that a crash never takes this process down), each migrating one model at a time and importing its frameworks once.
  The workers start before SOURCE is listed and meanwhile import what every model's export to TARGET needs (the
  exporter and its library, e.g. mlflow), each framework only when a model needs it; those beyond the number of models
  to run are let go. Each worker sizes the native thread pools (OpenMP, OpenBLAS/MKL, TensorFlow's intra-op pool) to
  ``cores // jobs`` before any framework loads, so that the jobs share the cores instead of each starting a thread per
  core. A worker that dies (a crash inside a framework) is replaced and its model run once more in a new worker; a
  model that kills its worker twice is reported failed, and only it. ``OUT/migrate-state.json`` records every finished
  model (by its source's identity: size and modification time or ETag), where and when it ran (worker process id,
  start and end time, CPU seconds), written whole when a run starts and ends and meanwhile appended to
  ``OUT/migrate-state.jsonl`` one line per finished model, so a re-run with ``resume=True`` (even after a killed run)
  skips models already migrated (``resumed`` in the report) and retries the others. ``engine="spark"`` runs the models
  as Spark tasks, one task per model (``sparkContext.parallelize(tasks, len(tasks)).map(...)``), in waves so that the
  state file keeps up; a wave whose Spark job fails (a task's Python worker crashed) runs again one model per job,
  and a model whose own job fails too is reported failed, and only it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import hashlib
import html
import io
import json
import logging
import os
import posixpath
import re
import sys
import time
import warnings
from typing import Any, Iterator

from . import __version__, progress
from ._threads import size_worker_process, threads_per_worker
from ._write import write_text_atomic
from .archive import Limits
from .errors import ArtifactError, MissingExtra, NotAnArtifact, NotLoadable, TrustRequired

log = logging.getLogger(__name__)

__all__ = ["MigrateError", "OUTCOMES", "SCHEMA", "add_migrate_command", "cmd_migrate", "json_schema", "migrate",
           "read_descriptions"]

SCHEMA = "artifact-tools.migration-report/1"
SCHEMA_FILE = "schema/migration-report-1.schema.json"  # inside the package
STATE_SCHEMA = "artifact-tools.migrate-state/1"
STATE = "migrate-state.json"
STATE_JOURNAL = "migrate-state.jsonl"
_RUN = "_run"  # key of a worker's record holding where and when it ran (kept in the state file, not the report)
MAX_TASKS_PER_WORKER = 250  # then the worker is replaced: bounded memory, and the cache entries it pinned released
_WORKER_THREADS: list = []  # in a worker process: the native threads it was given
REPORT_JSON, REPORT_CSV, REPORT_HTML = "migration-report.json", "migration-report.csv", "migration-report.html"
MODELS = "models"
PIPELINE_MANIFEST = "pipeline.json"
OUTCOMES = ("migrated", "unverified", "refused", "unsupported", "failed")  # best to worst
DONE = ("migrated", "unverified")  # what a resumed run skips
MAX_CONTAINERS = 15  # an inference pipeline holds 2 to 15 containers (CreateModel: Containers, max 15 items)
MAX_DESCRIPTION_BYTES = 16 << 20
HEAD_BYTES = 64 << 10
STANDALONE_KINDS = frozenset({
    "tar", "gzip", "zip", "compressed", "joblib-compressed", "pickle", "torch-legacy", "torch-zip", "keras-zip",
    "xgboost", "onnx", "lightgbm", "catboost", "pmml", "hdf5", "rds"})
CSV_COLUMNS = ("id", "source", "kind", "model_name", "framework", "era", "layout", "algorithm", "trust_verdict",
               "target", "outcome", "stage", "verified", "max_abs_diff", "samples", "seconds", "resumed", "output",
               "reason")

# ECR repository names of SageMaker's images -> the framework they serve (SageMaker Python SDK
# ``image_uri_config/*.json`` names the repositories; built-in algorithms use the algorithm's name).
_IMAGE_FRAMEWORKS = (
    (r"(^|/)sagemaker-xgboost$|(^|/)xgboost$", "xgboost"),
    (r"(^|/)sagemaker-scikit-learn$", "sklearn"),
    (r"(^|/)sagemaker-sparkml-serving$", "mleap"),
    (r"huggingface-", "huggingface"),
    (r"(^|/)(sagemaker-)?tensorflow(-serving|-inference|-serving-eia|-inference-eia)?$", "tensorflow"),
    (r"(^|/)(sagemaker-)?pytorch(-inference|-serving)?(-eia)?$", "pytorch"),
    (r"(^|/)(sagemaker-)?mxnet(-inference|-serving)?(-eia)?$", "mxnet"),
    (r"(^|/)(linear-learner|kmeans|pca|factorization-machines|ntm|image-classification|object-detection|"
     r"knn|blazingtext|lda|randomcutforest|ipinsights|semantic-segmentation|seq2seq|forecasting-deepar|"
     r"object2vec)$", "sagemaker-builtin"),
    (r"djl-inference|lmi|tgi-inference|text-generation-inference", "djl-lmi"),
)


class MigrateError(ArtifactError):
    """A migration that cannot start (bad SOURCE, OUT, target or options), in one sentence."""


# ============================================================================================ tasks

@dataclasses.dataclass(frozen=True)
class _Step:
    """One model to migrate: an artifact, or one container of a SageMaker model description."""

    source: str  # what loaders open: a path or fsspec URI
    sagemaker: dict | None = None  # model_name, description, container, hostname, image..., environment


@dataclasses.dataclass(frozen=True)
class _Task:
    """One unit of migration (one model, or a pipeline of several), with everything a worker needs (picklable)."""

    id: str
    kind: str  # artifact | sagemaker-model | pipeline
    steps: tuple
    identity: str
    out: str  # OUT/models/<name> (absolute)
    rel_out: str
    target: str
    trust: Any
    limits: Any
    storage_options: Any
    options: tuple  # target options as (key, value) pairs
    unsupported: str | None = None  # a reason known before anything is opened
    mode: str | None = None  # a pipeline's InferenceExecutionConfig mode
    failure: str | None = None  # why it failed before anything could be migrated (a malformed description)


def _sentence(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not isinstance(e, (ArtifactError, ValueError, OSError)) or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."


# ============================================================================================ discovery

def _fs(url: str, storage_options):
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ValueError, ImportError) as e:
        raise MigrateError(f"{url} cannot be opened ({str(e).splitlines()[0][:200]})") from None


def _url(fs, path: str) -> str:
    """A path of ``fs`` as something loaders open: a local path as is, else ``protocol://path``."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return path
    return fs.unstrip_protocol(path)


def _identity(fs, path: str) -> str:
    """What tells a changed source from the same one: size and modification time, or the ETag / version."""
    try:
        if fs.isdir(path):
            found = sorted(p for p in fs.find(path) if not fs.isdir(p))
            parts = [_identity(fs, p) for p in found[:10_000]]
            return "dir:" + hashlib.sha256("\n".join(found + parts).encode()).hexdigest()[:32]
        info = fs.info(path)
    except Exception:  # noqa: BLE001 -- network, credentials (botocore), a missing package: the model's own
        return "unknown"  # migration says what is wrong, for that model alone
    tag = info.get("ETag") or info.get("etag") or info.get("VersionId") or info.get("mtime") \
        or info.get("LastModified") or info.get("last_modified") or info.get("created")
    return f"{info.get('size')}:{tag}"


def _source_identity(source: str, storage_options) -> str:
    try:
        return _identity(*_fs(source, storage_options))
    except Exception:  # noqa: BLE001 -- e.g. a protocol whose package is missing, no credentials: the model's own
        return "unknown"  # migration will say so


def _head(fs, path: str, n: int = HEAD_BYTES) -> bytes:
    try:
        with fs.open(path, "rb") as f:
            return f.read(n)
    except Exception:  # noqa: BLE001 -- unreadable (network, credentials): nothing to tell it by
        return b""


def _special_kind(mode: int) -> str | None:
    """What a file that is neither a regular file nor a folder is (``stat`` mode), else None."""
    import stat

    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "a special file"


def _special(fs, path: str) -> str | None:
    """What a local path that is neither a regular file nor a folder is (read from it, a device never ends and a
    named pipe blocks), else None (also for remote paths and those that do not exist)."""
    if _url(fs, path) != path:
        return None
    try:
        return _special_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part in ("__MACOSX",) for part in rel.split("/") if part)


def _description_docs(fs, path: str, head: bytes) -> list | None:
    """The SageMaker model descriptions in a JSON file, or None when the file is no description."""
    return _parse_description(fs, path, head)[0]


def _parse_description(fs, path: str, head: bytes) -> tuple[list | None, str | None]:
    """``(descriptions, None)``; ``(None, why)`` for a file that starts as JSON but does not parse (cut off,
    malformed: ``why`` names the parse error); ``(None, None)`` for anything else."""
    if head.lstrip()[:1] not in (b"{", b"["):
        return None, None
    try:
        if fs.size(path) > MAX_DESCRIPTION_BYTES:
            return None, None
        with fs.open(path, "rb") as f:
            data = f.read()
    except Exception:  # noqa: BLE001 -- unreadable (network, credentials): told apart by its own migration
        return None, None
    try:
        doc = json.loads(data)
    except RecursionError:
        return None, "JSON nested too deeply"
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text ({e.reason} at byte {e.start})"
    except ValueError as e:
        return None, f"JSON parse error: {str(e).splitlines()[0][:200]}"
    docs = doc if isinstance(doc, list) else [doc]
    if docs and all(isinstance(d, dict) and ("PrimaryContainer" in d or "Containers" in d) for d in docs):
        return docs, None
    return None, None


def _looks_like_description(path: str, head: bytes) -> bool:
    """A file that does not parse yet was meant as JSON: named ``*.json``, or naming a description's keys."""
    return path.lower().endswith(".json") or any(k in head for k in (b'"PrimaryContainer"', b'"Containers"',
                                                                      b'"ModelDataUrl"'))


def _malformed(path: str, why: str) -> str:
    return f"{path} is a malformed model description ({why})"


def read_descriptions(path: str, storage_options: dict | None = None) -> list[dict]:
    """The SageMaker model descriptions (``DescribeModel`` responses / ``CreateModel`` requests) of one JSON file;
    MigrateError when it holds none."""
    fs, p = _fs(path, storage_options)
    docs, why = _parse_description(fs, p, _head(fs, p))
    if why is not None:
        raise MigrateError(_malformed(path, why))
    if docs is None:
        raise MigrateError(f"{path} is not a SageMaker model description (a DescribeModel or CreateModel JSON "
                           "with PrimaryContainer or Containers)")
    return docs


def _image_facts(image: str | None) -> dict:
    """``{"uri", "repository", "tag", "framework", "version"}`` of a container image URI (framework None when the
    repository is not one of SageMaker's)."""
    if not image or not isinstance(image, str):
        return {"uri": None, "repository": None, "tag": None, "framework": None, "version": None}
    name = image.split("@", 1)[0]
    _, _, rest = name.partition("/") if "/" in name else ("", "", name)
    repo, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    framework = None
    for pattern, fw in _IMAGE_FRAMEWORKS:
        if re.search(pattern, repo):
            framework = fw
            break
    version = None
    if tag:
        m = re.match(r"(\d+(?:\.\d+)*(?:-\d+)?)", tag)
        version = m.group(1) if m else tag
    return {"uri": image, "repository": repo, "tag": tag or None, "framework": framework, "version": version}


def _environment(env: Any) -> dict:
    """The container environment as the report keeps it: ``SAGEMAKER_*`` values, other variables by name only
    (their values may be secrets)."""
    if not isinstance(env, dict):
        return {}
    return {str(k): (str(v)[:500] if str(k).startswith("SAGEMAKER_") else "<set>") for k, v in env.items()}


def _get(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...`` or None where any level is missing or not an object (descriptions are user input)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _container_source(c: dict, base_fs, base_dir: str) -> tuple[str | None, str | None]:
    """``(source to open, reason it is not supported)`` of one ContainerDefinition."""
    if c.get("ModelPackageName"):
        return None, (f"the container comes from model package {str(c['ModelPackageName'])[:120]}, whose model data "
                      "the description does not give; describe the package's containers instead")
    if str(c.get("Mode", "SingleModel")) == "MultiModel":
        return None, ("a multi-model container (Mode MultiModel) serves every archive under its prefix; migrate that "
                      "prefix as a folder instead")
    url = c.get("ModelDataUrl") or _get(c, "ModelDataSource", "S3DataSource", "S3Uri")
    if not url or not isinstance(url, str):
        return None, "the container has no model data (no ModelDataUrl nor ModelDataSource): nothing to migrate"
    if "://" not in url and not url.startswith("/"):  # relative: a local mirror beside the description
        return _url(base_fs, posixpath.normpath(posixpath.join(base_dir, url))), None
    return url, None


def _str_or_none(v: Any) -> str | None:
    return None if v is None else str(v)[:1000]


def _tasks_of_description(doc: dict, label: str, fs, path: str) -> tuple[str, list, str | None, str | None]:
    """``(kind, steps, unsupported reason, mode)`` of one model description."""
    name = str(doc.get("ModelName") or "")
    containers = doc.get("Containers") or ([doc["PrimaryContainer"]] if doc.get("PrimaryContainer") else [])
    mode = "Direct" if _get(doc, "InferenceExecutionConfig", "Mode") == "Direct" else "Serial"
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        return "sagemaker-model", [], f"model {name or label} lists no containers", None
    if len(containers) > MAX_CONTAINERS:
        return "pipeline", [], (f"an inference pipeline holds at most {MAX_CONTAINERS} containers, and model "
                                f"{name or label} lists {len(containers)}"), mode
    base_dir = posixpath.dirname(path)
    steps, reasons = [], []
    for i, c in enumerate(containers):
        source, reason = _container_source(c, fs, base_dir)
        env = c.get("Environment") or {}
        facts = {"model_name": name or None, "description": label, "container": i,
                 "hostname": _str_or_none(c.get("ContainerHostname") or None), "image": _image_facts(c.get("Image")),
                 "environment": _environment(env), "program": _str_or_none(_get(env, "SAGEMAKER_PROGRAM")),
                 "model_data": _str_or_none(c.get("ModelDataUrl") or _get(c, "ModelDataSource", "S3DataSource",
                                                                          "S3Uri")),
                 "unsupported": reason}
        steps.append(_Step(source or "", facts))
        if reason:
            reasons.append(f"container {i + 1}: {reason}" if len(containers) > 1 else reason)
    kind = "pipeline" if len(containers) > 1 else "sagemaker-model"
    return kind, steps, ("; ".join(reasons) if len(containers) == 1 and reasons else None), \
        (mode if kind == "pipeline" else None)


def _slug(text: str, used: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80] or "model"
    name = base
    if name in used:
        name = f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    n = 2
    while name in used:
        name = f"{base}-{n}"
        n += 1
    used.add(name)
    return name


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _discover(sources: list[str], storage_options, out_abs: str | None) -> tuple[list, list]:
    """``([(id, kind, steps, identity, unsupported, mode, name hint, failure)], [ignored {"source", "reason"}])``.

    Nothing raised by the storage (network, credentials, a missing fsspec package) while looking at one model
    stops the others: its identity is then ``unknown`` and its own migration reports the problem. SOURCE itself
    unreadable is a MigrateError."""
    units: list = []
    ignored: list = []
    seen: set = set()

    def add_malformed(fs, path: str, label: str, why: str) -> None:
        if label not in seen:
            seen.add(label)
            units.append((label, "sagemaker-model", [_Step(_url(fs, path))], _identity(fs, path), None, None, label,
                          _malformed(label, why)))

    def add_file(fs, path: str, label: str, head: bytes | None = None) -> None:
        head = _head(fs, path) if head is None else head
        docs, why = _parse_description(fs, path, head)
        if why is not None and _looks_like_description(path, head):
            add_malformed(fs, path, label, why)
            return
        if docs is None:
            if label not in seen:
                seen.add(label)
                units.append((label, "artifact", [_Step(_url(fs, path))], _identity(fs, path), None, None,
                              label, None))
            return
        ident = _identity(fs, path)
        for k, doc in enumerate(docs):
            name = str(doc.get("ModelName") or "") or (f"{k + 1}" if len(docs) > 1 else "")
            uid = f"{label}#{name}" if name else label
            if uid in seen:
                continue
            seen.add(uid)
            kind, steps, reason, mode = _tasks_of_description(doc, label, fs, path)
            step_ids = [_source_identity(s.source, storage_options) if s.source else "" for s in steps]
            units.append((uid, kind, steps, ident + "|" + "|".join(step_ids), reason, mode, name or label, None))

    def inside_out(fs, path: str) -> bool:
        if out_abs is None:
            return False
        full = os.path.abspath(path) if _url(fs, path) == path else path
        return full == out_abs or full.startswith(out_abs.rstrip("/") + "/")

    def walk(fs, root: str, label_root: str) -> None:
        root = root.rstrip("/") or "/"
        files = sorted(p for p in fs.find(root) if not fs.isdir(p))
        standalone_dirs: set = set()
        kinds = {}
        malformed: dict = {}  # path -> parse error of a JSON file that does not parse
        from .sniff import sniff

        for p in files:
            rel = posixpath.relpath(p, root)
            if _hidden(rel) or inside_out(fs, p):
                continue
            special = _special(fs, p)
            if special:
                ignored.append({"source": posixpath.join(label_root, rel) if label_root else rel,
                                "reason": f"not a regular file ({special})"})
                continue
            head = _head(fs, p)
            kind = sniff(posixpath.basename(p), head, len(head))
            if kind == "json" or p.lower().endswith(".json"):
                docs, why = _parse_description(fs, p, head)
                if docs is not None:
                    kind = "description"
                elif why is not None and _looks_like_description(p, head):
                    malformed[p] = why
                    if b'"PrimaryContainer"' in head or b'"Containers"' in head:
                        kind = "description"  # a model of its own, failing with its parse error
            kinds[p] = (kind, head, rel)
            if kind in STANDALONE_KINDS or kind == "description":
                d = posixpath.dirname(rel)
                while d:
                    standalone_dirs.add(d)
                    d = posixpath.dirname(d)
        loose_is_model = not any(k[0] in STANDALONE_KINDS or k[0] == "description" for k in kinds.values())

        def folder_of(rel: str) -> str | None:
            """The model folder a file that is no model of its own belongs to (``""``: SOURCE), or None."""
            parts = rel.split("/")[:-1]
            if not parts:
                return "" if loose_is_model else None
            for i in range(1, len(parts) + 1):
                cand = "/".join(parts[:i])
                if cand not in standalone_dirs:
                    return cand
            return None

        folders: dict = {}
        for p, (kind, head, rel) in kinds.items():
            label = posixpath.join(label_root, rel) if label_root else rel
            if p in malformed and (kind == "description" or not folder_of(rel)):
                add_malformed(fs, p, label, malformed[p])
                continue
            if kind in STANDALONE_KINDS or kind == "description":
                add_file(fs, p, label, head)
                continue
            if kind == "empty":
                ignored.append({"source": label, "reason": "the file is empty"})
                continue
            top = folder_of(rel)
            if top is None:
                ignored.append({"source": label, "reason": f"a {kind} file beside the artifacts, not a model"})
                continue
            folders.setdefault(top, []).append(p)
        for top in sorted(folders):
            folder = posixpath.join(root, top) if top else root
            label = (posixpath.join(label_root, top) if label_root else top) or label_root or posixpath.basename(root)
            if label not in seen:
                seen.add(label)
                units.append((label, "artifact", [_Step(_url(fs, folder))], _identity(fs, folder), None, None, label,
                              None))

    def add_source(fs, path: str, source: str) -> None:
        if _is_glob(path):
            matches = sorted(fs.glob(path))
            if not matches:
                raise MigrateError(f"no file matches {source}")
            for m in matches:
                if _hidden(posixpath.basename(m)) or inside_out(fs, m):
                    continue
                label = posixpath.basename(m) if len(matches) == 1 else _rel_label(m, path)
                special = _special(fs, m)
                if special:
                    ignored.append({"source": label, "reason": f"not a regular file ({special})"})
                elif fs.isdir(m):
                    walk(fs, m, posixpath.basename(m.rstrip("/")))
                else:
                    add_file(fs, m, label)
            return
        if not fs.exists(path):
            raise MigrateError(f"{source} does not exist")
        special = _special(fs, path)
        if special:
            raise MigrateError(f"{source} is not a regular file ({special})")
        if fs.isdir(path):
            walk(fs, path, "")
        else:
            add_file(fs, path, posixpath.basename(path))

    for source in sources:
        source = str(source)
        fs, path = _fs(source, storage_options)
        try:
            add_source(fs, path, source)
        except ArtifactError:
            raise
        except Exception as e:  # noqa: BLE001 -- network, credentials, permissions: SOURCE cannot be read
            raise MigrateError(f"{source} cannot be read ({_sentence(e)})") from None
    return units, ignored


def _rel_label(match: str, pattern: str) -> str:
    """A glob match named relative to the glob's fixed leading folder."""
    fixed = pattern
    while _is_glob(fixed):
        fixed = posixpath.dirname(fixed)
    return posixpath.relpath(match, fixed) if fixed else match


# ============================================================================================ one model

def _era(report, info: dict) -> str | None:
    """The framework era of a model: an XGBoost file's era (and the version it points to), the version a pickle or
    graph was saved with, or a built-in algorithm's name."""
    for m in getattr(report, "models", []) or []:
        s = m.summary or {}
        if s.get("era"):
            hint = s.get("version_hint")
            return f"{s['era']} ({hint})" if hint else str(s["era"])
        for key in ("sklearn_version", "mxnet_version", "tensorflow_version", "torch_version", "transformers_version",
                    "spark_version", "mleap_version", "keras_version", "version"):
            if s.get(key) and isinstance(s[key], (str, int, float)):
                return f"{key.replace('_version', '') if key != 'version' else m.format} {s[key]}"
    for key, value in (info or {}).items():
        if key.endswith("_version_saved") and value:
            return f"{key[:-len('_version_saved')]} {value}"
    if getattr(report, "algorithm", None):
        return f"built-in {report.algorithm}"
    return None


def _options_for(target: str, given: dict, sagemaker: dict | None) -> dict:
    """Target options plus what the target knows how to record (``sagemaker_model``: the model's name)."""
    import exporters

    options = dict(given)
    if sagemaker and sagemaker.get("model_name"):
        fields = {f.name for f in dataclasses.fields(exporters.target_module(target).OPTIONS)}
        if "sagemaker_model" in fields and "sagemaker_model" not in options:
            options["sagemaker_model"] = sagemaker["model_name"]
    return options


def _verification(result) -> dict:
    checks = [{"name": c.name, "passed": bool(c.passed), "detail": str(c.detail)[:500],
               "max_abs_diff": c.max_abs_diff} for c in result.checks]
    diffs = [c["max_abs_diff"] for c in checks if c["max_abs_diff"] is not None]
    return {"passed": bool(result.passed) if not result.unverified else all(c["passed"] for c in checks),
            "samples": int(result.samples or 0), "max_abs_diff": max(diffs) if diffs else None,
            "unverified": result.unverified, "checks": checks}


def _record(step: _Step, target: str, kind: str) -> dict:
    return {"id": "", "source": step.source, "kind": kind, "sagemaker": step.sagemaker, "framework": None,
            "era": None, "layout": None, "algorithm": None, "trust": {"verdict": None, "findings": []},
            "target": target, "output": None, "outcome": "failed", "stage": "inspect", "reason": None,
            "verification": None, "seconds": {"inspect": None, "load": None, "export": None, "total": 0.0},
            "resumed": False, "warnings": [], "steps": None}


def _migrate_step(step: _Step, task: _Task, out: str, rel_out: str, kind: str) -> dict:
    """Inspect, audit, load, export and verify one model into ``out``; a record, never an exception."""
    rec = _record(step, task.target, kind)
    started = time.perf_counter()
    sm = step.sagemaker or {}
    try:
        if sm.get("unsupported"):
            rec.update(outcome="unsupported", stage="discover", reason=sm["unsupported"])
            return rec
        if "://" not in step.source or step.source.startswith("file://"):
            local = step.source[len("file://"):] if step.source.startswith("file://") else step.source
            try:
                special = _special_kind(os.stat(local).st_mode)
            except (OSError, ValueError):
                special = None  # does not exist: the loaders say so
            if special:
                raise NotAnArtifact(f"{step.source} is not a regular file ({special})")
        import loaders
        from loaders.cache import prepare

        from .trust import check as check_trust

        seen: dict = {}

        def gate(report) -> None:  # the trust gate loaders.load applies, keeping the report when it refuses
            seen["report"] = report
            if not report.loadable:
                raise NotLoadable(report.not_loadable_reason or f"{report.framework} artifacts cannot be loaded")
            check_trust(report.trust, task.trust)

        t0 = time.perf_counter()
        try:
            prepare(step.source, task.limits, task.storage_options, check=gate)
        finally:
            rec["seconds"]["inspect"] = round(time.perf_counter() - t0, 3)
            report = seen.get("report")
            if report is not None:
                rec.update(framework=report.framework, layout=report.layout, algorithm=report.algorithm,
                           era=_era(report, {}))
                rec["trust"] = {"verdict": report.trust.get("verdict"),
                                "findings": [str(f)[:300] for f in report.trust.get("findings", [])][:20]}
                rec["warnings"] = [str(w)[:300] for w in report.warnings][:20]
        image_fw = (sm.get("image") or {}).get("framework")
        if image_fw and rec["framework"] and image_fw != rec["framework"] and not (
                image_fw == "sagemaker-builtin" and rec["algorithm"]) and not (
                image_fw == "xgboost" and rec["framework"] == "xgboost"):
            rec["warnings"].append(f"the image {sm['image'].get('repository')} serves {image_fw}, but the model data "
                                   f"holds a {rec['framework']} model")
        rec["stage"] = "load"
        load_options = {}
        program = sm.get("program")
        if program and task.trust and report is not None and report.entry_point \
                and posixpath.basename(report.entry_point) == posixpath.basename(program):
            load_options["entry_point"] = report.entry_point
        elif program:
            rec["warnings"].append(f"the container runs {program} (SAGEMAKER_PROGRAM); migrated with the framework's "
                                   "own loader" + ("" if task.trust else " (running the script needs trust)"))
        t0 = time.perf_counter()
        loaded = loaders.load(step.source, trust=task.trust, limits=task.limits,
                              storage_options=task.storage_options, **load_options)
        rec["seconds"]["load"] = round(time.perf_counter() - t0, 3)
        rec["era"] = _era(loaded.report, loaded.info) or rec["era"]
        rec["stage"] = "export"
        import exporters

        t0 = time.perf_counter()
        if task.target == "mlflow" and loaded.framework == "sklearn" and _WORKER_THREADS:  # our own worker only
            _import_skops()
        try:
            result = exporters.export(loaded, task.target, out, force=True, trust=task.trust,
                                      **_options_for(task.target, dict(task.options), sm))
        finally:
            rec["seconds"]["export"] = round(time.perf_counter() - t0, 3)
        rec["verification"] = _verification(result)
        rec["output"] = rel_out
        rec["stage"] = "done"
        rec["outcome"] = "unverified" if result.unverified else "migrated"
        if result.unverified:
            rec["reason"] = str(result.unverified)[:400]
    except TrustRequired as e:
        rec.update(outcome="refused", stage="audit", reason=_sentence(e))
    except (NotLoadable, MissingExtra) as e:
        rec.update(outcome="unsupported", reason=_sentence(e))
    except ArtifactError as e:
        if type(e).__name__ == "ExportVerificationFailed":
            rec["stage"] = "verify"
        reason = _sentence(e)
        if rec["stage"] == "inspect" and reason.endswith("does not exist") and "://" in step.source:
            reason = _fetch_problem(step.source, task.storage_options) or reason
        rec.update(outcome="failed", reason=reason)
    except Exception as e:  # noqa: BLE001 -- any failure is this model's, in one sentence
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        rec.update(outcome="failed", reason=f"internal error: {type(e).__name__}" + (f": {text}" if text else ""))
        log.debug("migrating %s failed", step.source, exc_info=True)
    finally:
        rec["seconds"]["total"] = round(time.perf_counter() - started, 3)
    return rec


# What importing skops.io needs not import (:func:`_import_skops`): module -> the library it stands for. scikit-learn's
# vendored array-API wrappers of other array libraries (sklearn/externals/array_api_compat/<lib>/__init__.py imports
# <lib>), and pytest (sklearn/utils/_testing.py imports it for its test markers, within ``try: ... except
# ImportError``).
_SKOPS_NEEDS_NOT = {**{f"sklearn.externals.array_api_compat.{lib}": lib for lib in ("torch", "cupy", "dask")},
                    "pytest": "pytest"}


class _Unimportable:
    """A meta path finder (``sys.meta_path``) for which the named modules do not exist."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None  # not ours: the next finder looks


def _import_skops() -> None:
    """Import ``skops.io`` (MLflow's scikit-learn flavor saves and loads with it: ``exporters.mlflow``) as it imports
    where torch, CuPy, Dask and pytest are not installed, once per worker.

    Facts (skops 0.16 ``skops/io/_trusted_types.py``, scikit-learn 1.9 ``sklearn/utils/discovery.py``, CPython
    ``pkgutil.walk_packages``): importing ``skops.io`` lists the estimator types skops trusts by default with
    ``sklearn.utils.all_estimators()``, which imports ``sklearn.utils._testing`` (which imports pytest when it can)
    and walks scikit-learn with ``pkgutil.walk_packages``. That imports every package it walks into, also those whose
    classes ``all_estimators`` then ignores (``externals``), among them ``sklearn.externals.array_api_compat.torch``,
    whose ``__init__`` imports torch: about 1 s of CPU per worker when torch is installed, for no estimator.
    ``walk_packages`` without ``onerror`` skips a package whose import raises ImportError, and scikit-learn works
    without pytest, so with those modules hidden during this one import skops trusts the same types (checked by
    ``tests/test_migrate.py``) and neither torch nor pytest is imported; afterwards the wrappers import as always
    (scikit-learn imports one when it gets that library's arrays). Nothing is hidden whose library is imported
    already. Called only in the migration's own worker processes (:func:`_worker_main`), never in a caller's
    interpreter or a Spark task, whose import system is not ours to touch, even for one import."""
    if "skops.io" in sys.modules:
        return
    finder = _Unimportable(name for name, lib in _SKOPS_NEEDS_NOT.items() if lib not in sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        import skops.io  # noqa: F401
    except Exception:  # noqa: BLE001 -- missing or broken: the exporter's own import says so, for this model
        pass
    finally:
        sys.meta_path.remove(finder)


def _fetch_problem(source: str, storage_options) -> str | None:
    """Why a URI the loaders found missing could not be fetched, when it is not a plain "no such object": fsspec's
    HTTP filesystem turns every failed request (connection refused, DNS, 403, 500) into FileNotFoundError, the
    request's own error kept as its cause."""
    try:
        fs, path = _fs(source, storage_options)
        fs.info(path)
    except MigrateError as e:
        return str(e)
    except FileNotFoundError as e:
        cause = e.__cause__ or e.__context__
        if cause is None or isinstance(cause, FileNotFoundError):
            return None
        return f"{source} could not be fetched ({_sentence(cause)})"
    except Exception as e:  # noqa: BLE001 -- network, credentials: said in one sentence
        return f"{source} could not be fetched ({_sentence(e)})"
    return None


def _worst(outcomes: list[str]) -> str:
    return max(outcomes, key=OUTCOMES.index) if outcomes else "failed"


def _run_task(task: _Task) -> dict:
    """Migrate one unit; the record of it (a pipeline: one record holding a record per step)."""
    started, wall0, cpu0 = time.perf_counter(), time.time(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # frameworks' version notices; the loaders' own warnings are recorded
        if task.failure:
            rec = _record(task.steps[0] if task.steps else _Step("", None), task.target, task.kind)
            rec.update(outcome="failed", stage="discover", reason=task.failure)
        elif task.unsupported or not task.steps:
            step = task.steps[0] if task.steps else _Step("", None)
            rec = _record(step, task.target, task.kind)
            rec.update(outcome="unsupported", stage="discover", reason=task.unsupported or "nothing to migrate")
        elif task.kind != "pipeline":
            rec = _migrate_step(task.steps[0], task, task.out, task.rel_out, task.kind)
        else:
            rec = _migrate_pipeline(task)
    rec["id"] = task.id
    rec["seconds"]["total"] = round(time.perf_counter() - started, 3)
    rec[_RUN] = {"pid": os.getpid(), "started": round(wall0, 4), "ended": round(time.time(), 4),
                 "cpu": round(time.process_time() - cpu0, 3), "process_cpu": round(time.process_time(), 3),
                 "threads": _WORKER_THREADS[0] if _WORKER_THREADS else None}
    return rec


def _migrate_pipeline(task: _Task) -> dict:
    """Each container of an inference pipeline exported into its own folder of the unit, then ``pipeline.json``."""
    steps = []
    used: set = set()
    for i, step in enumerate(task.steps):
        host = (step.sagemaker or {}).get("hostname") or f"container-{i + 1}"
        name = _slug(f"{i + 1}-{host}", used)
        out = os.path.join(task.out, name)
        rec = _migrate_step(step, task, out, posixpath.join(task.rel_out, name), "sagemaker-model")
        rec["id"] = f"{task.id}/{i + 1}"
        steps.append(rec)
    rec = _record(task.steps[0], task.target, "pipeline")
    first = task.steps[0].sagemaker or {}
    rec["sagemaker"] = {"model_name": first.get("model_name"), "description": first.get("description"),
                        "containers": len(task.steps), "mode": task.mode}
    rec["source"] = first.get("description") or task.id
    rec["steps"] = steps
    rec["framework"] = "pipeline"
    rec["era"] = " -> ".join(s["framework"] or "?" for s in steps)
    verdicts = [s["trust"]["verdict"] for s in steps if s["trust"]["verdict"]]
    from .trust import worst

    rec["trust"] = {"verdict": worst(verdicts) if verdicts else None,
                    "findings": [f for s in steps for f in s["trust"]["findings"]][:20]}
    rec["outcome"] = _worst([s["outcome"] for s in steps])
    bad = [(i, s) for i, s in enumerate(steps) if s["outcome"] not in DONE]
    rec["stage"] = bad[0][1]["stage"] if bad else "done"
    rec["reason"] = "; ".join(f"container {i + 1}: {s['reason']}" for i, s in bad) or None
    diffs = [s["verification"]["max_abs_diff"] for s in steps if s["verification"]
             and s["verification"]["max_abs_diff"] is not None]
    if all(s["verification"] for s in steps):
        rec["verification"] = {"passed": all(s["verification"]["passed"] for s in steps),
                               "samples": sum(s["verification"]["samples"] for s in steps),
                               "max_abs_diff": max(diffs) if diffs else None, "unverified": None, "checks": []}
    for key in ("inspect", "load", "export"):
        vals = [s["seconds"][key] for s in steps if s["seconds"][key] is not None]
        rec["seconds"][key] = round(sum(vals), 3) if vals else None
    if not bad:
        manifest = {"schema": "artifact-tools.migrated-pipeline/1", "model_name": first.get("model_name"),
                    "mode": task.mode or "Serial", "target": task.target,
                    "note": ("Serial: each container's response is the next container's request, in this order"
                             if (task.mode or "Serial") == "Serial" else
                             "Direct: each container is invoked on its own (multi-container endpoint)"),
                    "steps": [{"index": i + 1, "hostname": (t.sagemaker or {}).get("hostname"),
                               "image": (t.sagemaker or {}).get("image"), "framework": s["framework"],
                               "environment": (t.sagemaker or {}).get("environment"),
                               "output": posixpath.basename(s["output"] or "")}
                              for i, (t, s) in enumerate(zip(task.steps, steps))]}
        write_text_atomic(os.path.join(task.out, PIPELINE_MANIFEST), json.dumps(manifest, indent=2) + "\n")
        rec["output"] = task.rel_out
    return rec


# ============================================================================================ output files

def _read_state(out: str, target: str) -> dict:
    """The models of an earlier run: the snapshot ``migrate-state.json``, then the journal of a run that did not
    finish (``migrate-state.jsonl``: a header line, then one line per finished model; a torn last line is
    skipped)."""
    models: dict = {}
    path = os.path.join(out, STATE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            log.warning("%s cannot be read; every model is migrated again", path)
            doc = None
        if isinstance(doc, dict) and doc.get("schema") == STATE_SCHEMA and isinstance(doc.get("models"), dict):
            _check_target(out, doc, target)
            models = {k: v for k, v in doc["models"].items() if isinstance(k, str) and _usable_entry(v)}
    path = os.path.join(out, STATE_JOURNAL)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        header = _json_line(lines[0]) if lines else None
        if header is not None and header.get("schema") == STATE_SCHEMA:
            _check_target(out, header, target)
            for line in lines[1:]:
                entry = _json_line(line)
                if entry is not None and isinstance(entry.get("id"), str):
                    uid = entry.pop("id")
                    if _usable_entry(entry):
                        models[uid] = entry
                    else:  # a later line that makes no sense: no state for this model
                        models.pop(uid, None)
    return models


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,120}")


def _usable_entry(entry: Any) -> bool:
    """Whether a state entry can be trusted: a name that is one plain folder name (it is joined to OUT/models),
    and a record the report writers can take as is; anything else means no state for that model."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
            or not _NAME.fullmatch(entry["name"]) or not isinstance(entry.get("identity"), (str, type(None))):
        return False
    return _usable_record(entry.get("record"))


def _usable_record(rec: Any, depth: int = 0) -> bool:
    """The types the report (JSON, CSV, HTML) relies on, for one record and its steps."""
    if not isinstance(rec, dict) or rec.get("outcome") not in OUTCOMES or depth > 1:
        return False
    text = (str, type(None))
    if not all(isinstance(rec.get(k), str) for k in ("id", "source", "kind", "target", "stage")) \
            or not all(isinstance(rec.get(k), text) for k in ("framework", "era", "layout", "algorithm", "output",
                                                               "reason")) \
            or not isinstance(rec.get("resumed"), bool):
        return False
    trust, seconds, sm, ver = rec.get("trust"), rec.get("seconds"), rec.get("sagemaker"), rec.get("verification")
    if not isinstance(trust, dict) or not isinstance(trust.get("verdict"), text) \
            or not isinstance(trust.get("findings"), list):
        return False
    if not isinstance(seconds, dict) or not all(isinstance(seconds.get(k), (int, float, type(None))) and
                                                not isinstance(seconds.get(k), bool)
                                                for k in ("inspect", "load", "export", "total")) \
            or seconds.get("total") is None:
        return False
    if sm is not None and (not isinstance(sm, dict) or not isinstance(sm.get("image"), (dict, type(None)))):
        return False
    if ver is not None and (not isinstance(ver, dict) or not isinstance(ver.get("samples", 0), int)
                            or not isinstance(ver.get("max_abs_diff"), (int, float, type(None)))
                            or isinstance(ver.get("max_abs_diff"), bool)):
        return False
    if not isinstance(rec.get("warnings", []), list):
        return False
    steps = rec.get("steps")
    return steps is None or (isinstance(steps, list) and all(_usable_record(s, depth + 1) for s in steps))


def _json_line(line: str) -> dict | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _check_target(out: str, doc: dict, target: str) -> None:
    if doc.get("target") != target:
        raise MigrateError(f"{out} holds a migration to {doc.get('target')}, not {target}; use another OUT folder")


def _write_state(out: str, target: str, models: dict) -> None:
    write_text_atomic(os.path.join(out, STATE), json.dumps({"schema": STATE_SCHEMA, "target": target, "models": models},
                                                     indent=1, default=str) + "\n")


class _Journal:
    """The state file kept as models finish: ``migrate-state.json`` written whole when the run starts and when it
    ends, and meanwhile one line appended to ``migrate-state.jsonl`` per finished model (constant work per model,
    where rewriting the whole state each time grows with the fleet); :func:`_read_state` replays the journal of a
    run that was killed."""

    def __init__(self, out: str, target: str, models: dict):
        self.out, self.target = out, target
        _write_state(out, target, models)
        self.path = os.path.join(out, STATE_JOURNAL)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)
        self._append({"schema": STATE_SCHEMA, "target": target})

    def _append(self, doc: dict) -> None:
        data = (json.dumps(doc, default=str) + "\n").encode()
        while data:  # one write per line in practice (a regular file); looped for a short write
            data = data[os.write(self.fd, data):]

    def add(self, uid: str, entry: dict) -> None:
        self._append({"id": uid, **entry})

    def close(self, models: dict | None) -> None:
        """Stop appending; with ``models``, write the snapshot and drop the journal (else the journal stays, to be
        replayed by the next run)."""
        os.close(self.fd)
        if models is not None:
            _write_state(self.out, self.target, models)
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _counts(records: list) -> dict:
    counts = {o: 0 for o in OUTCOMES}
    for r in records:
        counts[r["outcome"]] += 1
    counts["total"] = len(records)
    counts["resumed"] = sum(1 for r in records if r["resumed"])
    return counts


def _by_framework(records: list) -> dict:
    table: dict = {}
    for r in records:
        fw = r["framework"] or "unknown"
        table.setdefault(fw, {o: 0 for o in OUTCOMES})[r["outcome"]] += 1
    return dict(sorted(table.items()))


def _csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report["models"]:
        v = r["verification"] or {}
        w.writerow([r["id"], r["source"], r["kind"], (r["sagemaker"] or {}).get("model_name") or "", r["framework"]
                    or "", r["era"] or "", r["layout"] or "", r["algorithm"] or "", r["trust"]["verdict"] or "",
                    r["target"], r["outcome"], r["stage"], "" if not v else ("yes" if v.get("passed") and not
                                                                               v.get("unverified") else "no"),
                    "" if v.get("max_abs_diff") is None else repr(v["max_abs_diff"]), v.get("samples", ""),
                    r["seconds"]["total"], "yes" if r["resumed"] else "no", r["output"] or "", r["reason"] or ""])
    return buf.getvalue()


_COLORS = {"migrated": "#2e7d32", "unverified": "#9e9d24", "refused": "#c62828", "unsupported": "#6d4c41",
           "failed": "#ef6c00"}


def _svg_chart(by_fw: dict) -> str:
    """A horizontal stacked bar per framework, one segment per outcome (inline SVG)."""
    e = html.escape
    rows = list(by_fw.items())
    most = max([sum(v.values()) for _, v in rows] + [1])
    label_w, bar_w, row_h, top = 150, 420, 26, 34
    height = top + row_h * max(len(rows), 1) + 10
    width = label_w + bar_w + 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="models by framework and outcome">',
             "<title>Models by framework and outcome</title>"]
    x = 0.0
    for o in OUTCOMES:  # legend
        parts.append(f'<rect x="{x:.0f}" y="4" width="12" height="12" fill="{_COLORS[o]}"/>'
                     f'<text x="{x + 16:.0f}" y="15" font-size="12">{o}</text>')
        x += 16 + 8 * len(o) + 16
    for i, (fw, counts) in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end">{e(fw)}</text>')
        x = float(label_w)
        for o in OUTCOMES:
            n = counts.get(o, 0)
            if not n:
                continue
            w = bar_w * n / most
            parts.append(f'<rect class="bar" data-framework="{e(fw)}" data-outcome="{o}" data-count="{n}" '
                         f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 6}" fill="{_COLORS[o]}">'
                         f"<title>{e(fw)}: {n} {o}</title></rect>")
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{sum(counts.values())}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html(report: dict) -> str:
    e = html.escape
    c = report["counts"]

    def row(r: dict, sub: bool = False) -> str:
        v = r["verification"] or {}
        if not v:
            ver = "—"
        elif v.get("unverified"):
            ver = "not run: " + e(str(v["unverified"]))
        else:
            diff = v.get("max_abs_diff")
            ver = ("passed" if v.get("passed") else "FAILED") \
                + (f", max |diff| {diff:.3g}" if diff is not None else "") + f" ({v.get('samples', 0)} samples)"
        sm = r["sagemaker"] or {}
        name = f'<div class="sub">{e(str(sm["model_name"]))}</div>' if sm.get("model_name") and not sub else ""
        image = (sm.get("image") or {}).get("repository")
        era = e(r["era"] or "") + (f'<div class="sub">image {e(image)}:{e(str(sm["image"].get("tag") or ""))}</div>'
                                   if image else "")
        cls = f'model outcome-{r["outcome"]}' + (" step" if sub else "")
        return (f'<tr class="{cls}" data-id="{e(r["id"] or r["source"])}" data-outcome="{r["outcome"]}">'
                f'<td title="{e(r["source"])}">{"↳ " if sub else ""}{e(r["id"] or r["source"])}{name}</td>'
                f'<td>{e(r["framework"] or "?")}</td>'
                f'<td>{era}</td><td>{e(r["trust"]["verdict"] or "?")}</td><td>{e(r["target"])}</td>'
                f'<td class="outcome">{r["outcome"]}</td><td>{ver}</td><td class="time">{r["seconds"]["total"]:.2f} s'
                f'{" (resumed)" if r["resumed"] else ""}</td><td>{e(r["reason"] or "")}</td></tr>')

    body = []
    for r in report["models"]:
        body.append(row(r))
        for s in r["steps"] or []:
            body.append(row(s, sub=True))
    ignored = "".join(f"<li>{e(i['source'])}: {e(i['reason'])}</li>" for i in report["ignored"])
    summary = "".join(f'<div class="count" data-outcome="{o}"><b>{c[o]}</b> {o}</div>' for o in OUTCOMES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Migration report: {e(report['target'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} .meta {{ color: #555; font-size: 13px; }}
.counts {{ display: flex; gap: 18px; margin: 14px 0; }} .count {{ font-size: 14px; }} .count b {{ font-size: 22px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 5px 7px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} .sub {{ color: #666; font-size: 11px; }} tr.step td {{ background: #fafafa; }}
td.outcome {{ font-weight: 600; }} td.time {{ white-space: nowrap; }}
{''.join(f'tr.outcome-{o} td.outcome {{ color: {col}; }}' for o, col in _COLORS.items())}
</style></head><body>
<h1>Migration to {e(report['target'])}: {c['total']} model(s)</h1>
<p class="meta">source {e(', '.join(report['source']))} &middot; output {e(report['out'])} &middot; started
{e(report['started'])} &middot; {report['seconds']:.1f} s &middot; jobs {report['jobs']} &middot; engine
{e(report['engine'])} &middot; artifact-tools {e(report['tool_version'])} &middot; {c['resumed']} resumed</p>
<div class="counts" id="counts">{summary}</div>
{_svg_chart(report['by_framework'])}
<table id="models"><thead><tr><th>source</th><th>framework</th><th>era</th><th>trust</th><th>target</th>
<th>outcome</th><th>verification</th><th>time</th><th>reason</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
{f'<h2>Ignored files</h2><ul id="ignored">{ignored}</ul>' if ignored else ''}
</body></html>
"""


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``migration-report.json``."""
    from importlib import resources

    return json.loads(resources.files("artifact_tools").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def _write_reports(out: str, report: dict) -> None:
    write_text_atomic(os.path.join(out, REPORT_JSON), json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(os.path.join(out, REPORT_CSV), _csv(report))
    write_text_atomic(os.path.join(out, REPORT_HTML), _html(report))


# ============================================================================================ runners

# Libraries every export to a target imports before anything else (``exporters/<target>.py``: ``require``).
_TARGET_LIBRARIES = {"mlflow": ("mlflow",), "onnx": ("onnx", "onnxruntime")}


def _warm_up(target: str | None) -> None:
    """In a worker, before its first task: what every model's migration to ``target`` imports (the loaders, the
    target's exporter module and the libraries its every export imports), so that a worker started while the parent
    still lists the fleet imports them meanwhile. Frameworks are left to the models that need them. A library that
    is missing or broken is left for each model's own migration to report."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("loaders", "loaders.cache", "exporters"):
            importlib.import_module(name)
        if not target:
            return
        try:
            importlib.import_module("exporters").target_module(target)
            for name in _TARGET_LIBRARIES.get(target, ()):
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 -- e.g. a missing extra: the export says so, model by model
            log.debug("warming up for %s", target, exc_info=True)


# The cyclic garbage collector's thresholds in a worker while it imports (:func:`_worker_main`). CPython's default,
# (700, 10, 10), runs it after every 700 net container allocations, and a worker importing mlflow, scikit-learn and
# XGBoost (about 250,000 objects that live as long as it does) collected about 750 times (5 of them full
# collections, each traversing every object), about 0.5 s of CPU; with (10_000, 10, 10), about 50 times and 0.2 s.
STARTUP_GC_THRESHOLD = (10_000, 10, 10)


def _worker_main(conn, threads: int, target: str | None = None) -> None:
    """A worker process: migrate the tasks received on ``conn`` one at a time, sending each record back, until
    None or the parent goes away. Its native thread pools are sized first, before any framework loads
    (:func:`artifact_tools._threads.size_worker_process`: a variable the user set is kept), then what every task to
    ``target`` imports is imported (:func:`_warm_up`). While it starts (until a task imports no new module), the
    garbage collector runs less often (``STARTUP_GC_THRESHOLD``: at most 10,000 container objects wait to be
    collected instead of 700); then CPython's thresholds are back. This process is the migration's own and ends with
    it."""
    import gc

    size_worker_process(threads)
    _WORKER_THREADS[:] = [threads]
    default_gc: tuple | None = gc.get_threshold()
    gc.set_threshold(*STARTUP_GC_THRESHOLD)
    _warm_up(target)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        modules = len(sys.modules)
        try:
            rec = _run_task(task)
        except BaseException as e:  # noqa: BLE001 -- e.g. SystemExit from a framework: this model's failure
            rec = _record(task.steps[0] if task.steps else _Step(""), task.target, task.kind)
            rec.update(id=task.id, reason=f"internal error: {_sentence(e)}", stage="load")
        if default_gc is not None and len(sys.modules) == modules:  # started: imports nothing new any more
            gc.set_threshold(*default_gc)
            default_gc = None
        try:
            conn.send(rec)
        except (EOFError, OSError):
            return
        except Exception as e:  # noqa: BLE001 -- a record that cannot be pickled
            rec = _record(task.steps[0] if task.steps else _Step(""), task.target, task.kind)
            rec.update(id=task.id, reason=f"internal error: {_sentence(e)}")
            conn.send(rec)


def _death(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


class _Worker:
    """One long-lived worker process and the task it is running (None: idle)."""

    def __init__(self, ctx, threads: int, target: str | None):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, threads, target), name="artifact-tools-migrate")
        self.proc.start()
        child.close()
        self.task: _Task | None = None
        self.done = 0

    def ask_to_stop(self) -> None:
        """Tell the worker to end once it is idle (no wait)."""
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass

    def stop(self, wait: float) -> None:
        """Ask it to stop, wait up to ``wait`` seconds, then end it."""
        self.ask_to_stop()
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class _Pool:
    """``jobs`` long-lived worker processes (``forkserver``, else ``spawn``), started when the pool is made, so that
    their start and the imports every task to ``target`` needs (:func:`_warm_up`) overlap the parent's listing of
    the fleet; with ``jobs=1`` too, so that a framework that crashes takes a worker down, never this process. Each
    worker gets ``cores // jobs`` native threads (:func:`_worker_main`). :meth:`close` stops them (idempotent)."""

    def __init__(self, jobs: int, target: str | None):
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        self.ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self.jobs, self.target = jobs, target
        self.threads = threads_per_worker(jobs)
        self.workers: list[_Worker] = []
        self.retired: list[_Worker] = []
        try:
            for _ in range(jobs):
                self.workers.append(self._start())
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Worker:
        return _Worker(self.ctx, self.threads, self.target)

    def _retire(self, w: _Worker) -> None:
        """Let an idle worker go without waiting for it (joined by :meth:`close`)."""
        w.ask_to_stop()
        self.workers.remove(w)
        self.retired.append(w)

    def results(self, tasks: list) -> Iterator[dict]:
        """Records as the tasks finish, each task run by one worker at a time. A worker that dies is replaced and its
        task run again once; a task that kills its worker twice is reported failed, alone. A worker is also replaced
        after ``MAX_TASKS_PER_WORKER`` tasks. Workers beyond the number of tasks are ended at once."""
        import collections
        from multiprocessing.connection import wait

        for w in self.workers[len(tasks):]:  # never to get a task: ended now, not left to finish its imports
            w.proc.terminate()
            self._retire(w)
        pending = collections.deque(tasks)
        deaths: dict = {}
        workers = self.workers
        while pending or any(w.task is not None for w in workers):
            idle = [w for w in workers if w.task is None]
            while len(idle) < len(pending) and len(workers) < self.jobs:  # a replacement, when tasks wait
                idle.append(self._start())
                workers.append(idle[-1])
            for w in idle[:len(pending)]:
                w.task = pending.popleft()
                try:
                    w.conn.send(w.task)
                except (OSError, ValueError):  # died idle: found below through its sentinel
                    pass
            busy = [w for w in workers if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                task = w.task
                assert task is not None
                rec = None
                if w.conn in ready:
                    try:
                        rec = w.conn.recv()
                    except (EOFError, OSError):
                        rec = None
                    except Exception as e:  # noqa: BLE001 -- a record that cannot be unpickled here
                        rec = _record(task.steps[0] if task.steps else _Step(""), task.target, task.kind)
                        rec.update(id=task.id, reason=f"internal error: {_sentence(e)}")
                if rec is not None:
                    w.task = None
                    w.done += 1
                    if w.done >= MAX_TASKS_PER_WORKER:
                        self._retire(w)  # replaced if tasks remain
                    yield rec
                    continue
                w.proc.join(5)
                why = _death(w.proc.exitcode)
                w.stop(0)
                workers.remove(w)
                deaths[task.id] = deaths.get(task.id, 0) + 1
                log.warning("the worker migrating %s died (%s)", task.id, why)
                if deaths[task.id] < 2:
                    pending.appendleft(task)  # once more, in a new worker: a second death is this model's own
                    continue
                rec = _record(task.steps[0] if task.steps else _Step(""), task.target, task.kind)
                rec.update(id=task.id, stage="load", reason=f"the process migrating this model died twice ({why}): "
                           "a crash inside the framework loading or running it")
                yield rec
        for w in list(workers):  # all done: they end while the parent writes the state and the reports
            self._retire(w)

    def close(self) -> None:
        """Stop every worker: one that never got a task at once (it may still be importing: nothing of it is
        needed), an idle one when told (all told first), a busy one (an interrupted run) without waiting for its
        task."""
        everyone = self.workers + self.retired
        for w in everyone:
            if w.task is None and w.done == 0:
                w.proc.terminate()
            elif w.task is None:
                w.ask_to_stop()
        for w in everyone:
            w.stop(30 if w.task is None else 0)
        self.workers, self.retired = [], []


def _spark_results(tasks: list, master: str | None) -> Iterator[dict]:
    """Records from Spark tasks, one task per model, in waves of twice the default parallelism. A model's failure is
    its record (:func:`_run_task`); a wave whose Spark job fails all the same -- a task's Python worker crashed inside
    a framework, was killed out of memory or exited -- is run again one model per job, so that, as with the local
    engine's workers, only the model whose job fails a second time is reported failed, with Spark's reason."""
    from .spark import failure_reason, session

    sc = session(master, "artifact-tools migrate").sparkContext
    wave = max(2 * sc.defaultParallelism, 1)
    for i in range(0, len(tasks), wave):
        chunk = tasks[i:i + wave]
        try:
            records = sc.parallelize(chunk, len(chunk)).map(_run_task).collect()
        except Exception as e:  # noqa: BLE001 -- Py4JJavaError: a task's worker died; each model of the wave alone
            log.warning("a Spark job migrating %d model(s) failed (%s): each runs again in a job of its own",
                        len(chunk), failure_reason(e))
            records = (_spark_alone(sc, task, failure_reason) for task in chunk)
        yield from records


def _spark_alone(sc, task: _Task, failure_reason) -> dict:
    """The record of ``task`` run as a Spark job of its own, or of its failure when that job fails too."""
    try:
        return sc.parallelize([task], 1).map(_run_task).collect()[0]
    except Exception as e:  # noqa: BLE001 -- the second failure: this model's own
        rec = _record(task.steps[0] if task.steps else _Step(""), task.target, task.kind)
        rec.update(id=task.id, stage="load", reason=f"the Spark task migrating this model failed twice "
                   f"({failure_reason(e)}): a crash inside the framework loading or running it")
        return rec


# ============================================================================================ entry point

def migrate(source, target: str, out, *, jobs: int = 1, resume: bool = True, trust: bool | str = False,
            limits: Limits | None = None, storage_options: dict | None = None, engine: str = "local",
            master: str | None = None, options: dict | None = None) -> dict:
    """Migrate every model under ``source`` (a path, folder, glob, fsspec prefix or SageMaker model description;
    or a list of them) to ``target`` into the folder ``out``; return the migration report (also written to
    ``out/migration-report.{json,csv,html}``). ``options``: target options (``exporters.export``'s keywords), the
    same for every model. Rules in the module docstring."""
    import exporters

    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    if target not in exporters.TARGETS:
        raise MigrateError(f"unknown target {str(target)[:40]!r}; choose one of {', '.join(exporters.TARGETS)}")
    if trust not in (True, False, "all"):
        raise MigrateError(f"trust must be True, False or 'all', not {trust!r}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 256:
        raise MigrateError(f"jobs must be a whole number from 1 to 256, not {jobs!r}")
    if engine not in ("local", "spark"):
        raise MigrateError(f"engine must be local or spark, not {str(engine)[:40]!r}")
    options = dict(options or {})
    if "force" in options or "trust" in options:
        raise MigrateError("force and trust are not target options; migrate always rewrites what it has not finished")
    from exporters._common import target_options

    target_options(exporters.target_module(target).OPTIONS, options, target)  # refused before anything is read
    sources = [str(s) for s in source] if isinstance(source, (list, tuple)) else [str(source)]
    if not sources:
        raise MigrateError("give at least one SOURCE")
    out = str(out)
    if "://" in out and not out.startswith("file://"):
        raise MigrateError("OUT must be a local folder (the exporters write and verify there)")
    out = os.path.abspath(out[len("file://"):] if out.startswith("file://") else out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise MigrateError(f"{out} exists and is not a folder")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise MigrateError(f"the output folder {out} cannot be created ({e.strerror or e})") from None

    pool = _Pool(jobs, target) if engine == "local" else None  # starting while the fleet is listed
    try:
        return _migrate_fleet(pool, sources, target, out, jobs=jobs, resume=resume, trust=trust, limits=limits,
                              storage_options=storage_options, engine=engine, master=master, options=options,
                              started=started, started_at=started_at)
    finally:
        if pool is not None:
            pool.close()


def _migrate_fleet(pool: _Pool | None, sources: list, target: str, out: str, *, jobs: int, resume: bool,
                   trust: bool | str, limits: Limits | None, storage_options: dict | None, engine: str,
                   master: str | None, options: dict, started: float, started_at: datetime.datetime) -> dict:
    """:func:`migrate` once its arguments are checked and ``out`` exists: ``pool`` runs the models (None: Spark)."""
    units, ignored = _discover(sources, storage_options, out)
    state = _read_state(out, target) if resume else {}
    used: set = set()
    for entry in state.values():
        if entry.get("name"):
            used.add(entry["name"])
    tasks, records, names = [], {}, {}
    for uid, kind, steps, ident, unsupported, mode, hint, failure in units:
        prior = state.get(uid)
        name = prior["name"] if prior and prior.get("name") else _slug(hint, used)
        names[uid] = name
        if prior and prior.get("identity") == ident and prior.get("record") and prior["record"]["outcome"] in DONE \
                and os.path.isdir(os.path.join(out, MODELS, name)):
            rec = dict(prior["record"])
            rec["resumed"] = True
            records[uid] = rec
            continue
        tasks.append(_Task(uid, kind, tuple(steps), ident, os.path.join(out, MODELS, name),
                           posixpath.join(MODELS, name), target, trust, limits, storage_options,
                           tuple(sorted(options.items())), unsupported, mode, failure))
    new_state = {uid: entry for uid, entry in state.items()}
    order = [u[0] for u in units]
    log.info("migrating %d model(s) to %s (%d already done)", len(tasks), target, len(records))
    results: Iterator[dict] = pool.results(tasks) if pool is not None else \
        _spark_results(tasks, master) if tasks else iter(())
    idents = {t.id: t.identity for t in tasks}
    try:
        journal = _Journal(out, target, new_state)
    except OSError as e:
        raise MigrateError(f"the output folder {out} cannot be written to ({e.strerror or e})") from None
    finished = False
    try:
        with progress.task(f"migrate {len(order)} model(s) to {target}", total=len(tasks), unit="models") as advance:
            for rec in results:
                entry = {"identity": idents.get(rec["id"]), "name": names.get(rec["id"]), "record": rec,
                         "run": rec.pop(_RUN, None)}
                records[rec["id"]] = rec
                new_state[rec["id"]] = entry
                journal.add(rec["id"], entry)
                advance(1)
        finished = True
    finally:
        getattr(results, "close", lambda: None)()  # an interrupted run stops its workers now
        journal.close(new_state if finished else None)
    models = [records[uid] for uid in order if uid in records]
    report = {
        "schema": SCHEMA, "tool_version": __version__, "source": sources, "target": target, "out": out,
        "engine": engine, "jobs": jobs, "trust": trust if trust == "all" else bool(trust),
        "options": {k: str(v) for k, v in options.items()},
        "started": started_at.isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - started, 3),
        "counts": _counts(models), "by_framework": _by_framework(models), "models": models, "ignored": ignored}
    try:
        _write_reports(out, report)
    except OSError as e:
        raise MigrateError(f"the migration report cannot be written to {out} ({e.strerror or e})") from None
    return report


# ============================================================================================ command line

def add_migrate_command(subparsers, add_opening=None, add_global=None) -> argparse.ArgumentParser:
    """``artifact-tools migrate``: register it on the CLI's subparsers (``add_opening``/``add_global`` are the CLI's
    own helpers for the trust/limit and global flags)."""
    help_ = "migrate every model of a folder, prefix, glob or SageMaker model description to another serving system"
    s = subparsers.add_parser("migrate", help=help_, description=help_)
    if add_global is not None:
        add_global(s, sub=True)
    s.add_argument("source", nargs="+", help="artifacts: a file, folder, glob or fsspec prefix, or SageMaker model "
                                             "descriptions (DescribeModel / CreateModel JSON)")
    s.add_argument("--to", required=True, dest="to", help="export target (mlflow, onnx, tf-serving, git, sagemaker, "
                                                          "mleap: those installed)")
    s.add_argument("out", help="folder receiving models/, the state file and the migration report")
    s.add_argument("--jobs", type=int, default=1, help="models migrated at once, each in its own process")
    s.add_argument("--no-resume", action="store_true", help="migrate every model again, even those already done")
    s.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="spark: run the models as Spark tasks (--master URL, default local[*])")
    s.add_argument("--master", default=None, help="Spark master URL for --engine spark")
    s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="target option, for every model")
    if add_opening is not None:
        add_opening(s)
    else:
        s.add_argument("--trust", action="store_true")
        s.add_argument("--trust-all", action="store_true")
    s.set_defaults(func=cmd_migrate)
    return s


def cmd_migrate(args) -> int:
    """Run ``artifact-tools migrate``: exit 0 when the run completed, whatever each model's outcome (the report and
    the line printed on stderr count them); 2 when it cannot start."""
    from .cli import limits_from_args, trust_from_args

    trust, limits = trust_from_args(args), limits_from_args(args)
    options = {}
    for kv in getattr(args, "option", None) or []:
        if "=" not in kv or not kv.split("=", 1)[0].strip():
            raise MigrateError(f"option {kv!r} must look like KEY=VALUE")
        k, v = kv.split("=", 1)
        options[k.strip()] = v
    report = migrate(args.source, args.to, args.out, jobs=args.jobs, resume=not args.no_resume, trust=trust,
                     limits=limits, engine=args.engine, master=args.master, options=options)
    c = report["counts"]
    print(f"migrated {c['migrated']} of {c['total']} model(s) to {report['target']} ({c['unverified']} unverified, "
          f"{c['refused']} refused, {c['unsupported']} unsupported, {c['failed']} failed, {c['resumed']} resumed) in "
          f"{report['seconds']:.1f} s; report in {os.path.join(report['out'], REPORT_HTML)}", file=sys.stderr)
    return 0
