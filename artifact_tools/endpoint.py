"""A local SageMaker *endpoint*: production variants, multi-model hosting, inference pipelines and metrics, served
by the same gunicorn workers, event loop and model thread as ``artifact-tools serve`` (:mod:`artifact_tools.serve`).

What an endpoint is, in SageMaker's own terms (SageMaker API reference: ``CreateEndpointConfig``,
``ProductionVariant``, ``CreateModel``/``ContainerDefinition``, ``UpdateEndpointWeightsAndCapacities``; runtime API
``InvokeEndpoint``; developer guide "Multi-model endpoints", "Inference pipelines", "Monitor Amazon SageMaker AI with
Amazon CloudWatch"):

- **Production variants.** An endpoint config lists 1 to 10 ``ProductionVariants``, each a ``VariantName`` (the
  name pattern ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``), a ``ModelName`` and an ``InitialVariantWeight`` (a number
  of at least 0, default 1). Traffic is shared in proportion to the weights ("two-thirds of the traffic to Model A"
  for weights 2 and 1). ``InvokeEndpoint``'s ``TargetVariant`` (header ``X-Amzn-SageMaker-Target-Variant``) sends a
  request to one variant whatever its weight; the answer names the variant that served it in
  ``X-Amzn-Invoked-Production-Variant`` (``InvokeEndpoint`` response ``InvokedProductionVariant``).
  ``UpdateEndpointWeightsAndCapacities`` changes the weights of a running endpoint without a restart.
- **Multi-model endpoints.** A model whose container has ``Mode: MultiModel`` and a ``ModelDataUrl`` prefix serves
  every ``model.tar.gz`` under that prefix; ``TargetModel`` (header ``X-Amzn-SageMaker-Target-Model``) is the
  artifact's path relative to the prefix. Models load on their first request and the least recently used are
  unloaded when memory runs short. A target model sent to an endpoint that is not multi-model is a
  ``ValidationError``: "Endpoint NAME is not a multi-model endpoint and does not support target model header."
  (the service's sentence, quoted in aws/amazon-sagemaker-examples issues 1026 and 1216). The header's bytes are
  read as UTF-8, as S3 keys are; a target is a relative path of plain segments (no ``..``, and under a prefix that
  is not local no ``%``, ``?`` or ``#``, which the remote store would decode or drop) else 400; a path where no
  file is 404; a file that is no model, or that the trust audit refuses, 422 with the refusal's sentence.
- **Inference pipelines.** A model with 2 to 5 ``Containers`` is a serial inference pipeline: the first container
  gets the request, each one's response body (with its content type) is the next one's request, and the last one's
  response is the answer. Here a model without its own inference code answers an intermediate step as CSV (JSON
  where CSV cannot carry its output), the rule :mod:`artifact_tools.batch` uses for ``transform --pipeline``
  (:func:`chain_predict`, in ``_pipeline``, is that rule); the last step answers as the client's ``Accept`` asks.
- **Data capture** (``--capture``): each answered request goes to the capture writer of the variant that answered,
  under ``DEST/ENDPOINT_NAME/VARIANT/`` (one writer per variant per worker, made on first use); drops are counted
  in ``/metrics`` as ``CaptureDropped`` (added at the worker's next request). A request refused before a variant
  is chosen (an unknown target variant) is not captured.
- **Metrics.** CloudWatch's endpoint invocation metrics, under their CloudWatch names in the Prometheus text format
  (``GET /metrics``), labelled by ``variant`` and ``model``: ``Invocations``, ``Invocation4XXErrors``,
  ``Invocation5XXErrors`` (counters: ``*_total``), ``ModelLatency`` ("the interval of time taken by a model to
  respond": here decoding, prediction and encoding) and ``OverheadLatency`` (from the request's arrival to its
  answer, less ``ModelLatency``), histograms in seconds (Prometheus' base unit; CloudWatch reports microseconds):
  ``ModelLatency_seconds``, ``OverheadLatency_seconds``; for multi-model endpoints ``LoadedModelCount`` (a gauge),
  ``ModelLoadingTime_seconds`` and ``ModelLoadingWaitTime_seconds`` (histograms; the loading time's count is the
  number of loads) and ``ModelCacheHit_total``; ``BatchedInvocations_total`` (ours, not CloudWatch's) counts the
  invocations predicted together with others in one call of the model (dynamic batching, ``--max-batch-rows``,
  :class:`artifact_tools.serve._ModelThread`); such a request's ``ModelLatency`` is its own decoding and encoding
  plus the whole batch's prediction. Each gunicorn worker writes its figures to files in a private
  temporary folder (``prometheus_client``'s multiprocess mode) and ``/metrics``, answered by any worker, sums them
  over all workers, so the counts are the endpoint's, not one worker's; the loaded-model gauge counts live workers
  only (``livesum``). What is counted follows CloudWatch's definitions ("Invocations: the number of
  InvokeEndpoint requests sent to a model endpoint"; "Invocation4XXErrors: the number of InvokeEndpoint requests
  where the model returned a 4xx HTTP response code", 5XX likewise): an invocation is a ``POST /invocations``
  (what ``InvokeEndpoint`` sends), or a request whose head could not be read (malformed, too large or cut short:
  it may have been one); the error counters count the 4xx / 5xx answers of those only, so they never exceed
  ``Invocations``. Requests for other paths or methods (``/ping``, ``/metrics``, ``/execution-parameters``, a
  404 for an unknown path, a 405 for ``GET /invocations``) are not invocations: they are in the access log only.
  Invocations are counted with their refusals wherever these are made: by the HTTP layer before the request
  reaches a model (400 malformed request, 408, 413, 417, 431, 501, 503), by routing (an unknown variant or target
  model) or by the codec (406, 415). A request refused before a variant was chosen is counted under the variant
  it names (``X-Amzn-SageMaker-Target-Variant``), else the endpoint's only variant, else ``variant=""``; its
  ``model`` label is the variant's model (empty for a multi-model variant, whose target model is not known to
  exist: arbitrary target names never become labels).
- **Access log** (``--access-log PATH``, ``-`` for standard output; off by default, and then nothing is done per
  request): one JSON object a line per answered request, through the ``artifact_tools.access`` logger (the object
  is the record's message, and its fields are the record's ``access`` attribute for other handlers): ``time``
  (ISO 8601 UTC, the request's arrival), ``client`` (address and port), ``method``, ``path`` (with the query, at
  most 1024 characters), ``status``, ``bytes_in`` (request body bytes read), ``bytes_out`` (response body bytes),
  ``variant`` (empty for a request that is no invocation, see Metrics), ``model`` (the target model asked for,
  else the variant's model), ``model_latency_us``,
  ``overhead_latency_us`` (CloudWatch's ``ModelLatency`` and ``OverheadLatency``, in microseconds as CloudWatch
  reports them) and ``pid`` (the worker). Every worker opens the file with ``O_APPEND`` and writes each line with
  one ``write``: the kernel appends each whole at the end of the file, so the workers' lines never interleave
  (a line stays under ``PIPE_BUF``, 4096 bytes, so that holds for a pipe too). The file is opened non-blocking:
  a FIFO that no process reads is refused at startup (one sentence), and a line that cannot be written (a full
  disk, a pipe whose reader lags) is dropped with one warning in the server's log, never failing or delaying a
  request.

How a running endpoint changes (the choice made here): **the endpoint config file is watched.** ``serve
--endpoint-config FILE`` watches FILE; the other forms (``--variant``, ``--multi-model``, ``--pipeline``) write the
equivalent config to a private state folder and watch that, their relative paths made absolute against the current
folder first (a path on the command line means what it means where the command runs). Before it routes a request (and
before it answers ``/ping``, which shows the weights in force), a worker looks at the file's identity (one ``stat``)
when it has not done so for ``WATCH_INTERVAL`` (50 ms), so an atomically replaced file (temporary name + rename)
applies to every request that arrives 50 ms after the rename, in every worker; requests already routed finish on the
variant they got. (A ``stat`` per request cost 2-30 us of a request's 130: the call lets go of the GIL, and the
worker's prediction thread takes it.) A change of weights or the removal of a variant applies at once; a new variant
(or a variant given another model) is loaded in the background first and routed to only once it is loaded (SageMaker's
blue/green update does the same). A file that does not read as a valid config is logged and ignored; the last good
config stays in force. ``artifact-tools endpoint update-weights`` (the ``UpdateEndpointWeightsAndCapacities``
counterpart) rewrites that file and returns once that interval has passed twice, so every request sent after it
returns gets the new weights (when the file names a variant whose model is still loading, from the end of that load;
concurrent updates take turns on an ``flock`` of the file, so none is lost): it finds the file of the endpoint on
``--port`` through the state folder, or takes ``--config FILE``, and sets weights (``NAME=WEIGHT``) or removes
variants (``--remove NAME``). The rewritten file stays a valid ``CreateEndpointConfig`` document (the new weights are
its ``InitialVariantWeight``), so a restart keeps them.

Config file (JSON, the ``CreateEndpointConfig`` request, plus how to find each model's artifact)::

    {"EndpointConfigName": "churn",
     "ProductionVariants": [
        {"VariantName": "A", "ModelName": "churn-v1", "InitialVariantWeight": 3},
        {"VariantName": "B", "ModelDataUrl": "models/churn-v2.tar.gz", "InitialVariantWeight": 1}],
     "Models": {"churn-v1": "s3://bucket/churn-v1/model.tar.gz"}}

``Models`` maps a ``ModelName`` to an artifact, or is a list of ``CreateModel`` requests (``ModelName`` with a
``PrimaryContainer`` or with ``Containers``, each a ``ContainerDefinition`` with ``ModelDataUrl`` and optional
``Mode``). A variant may give ``ModelDataUrl`` itself instead of a ``ModelName``. Relative paths are read from the
config file's folder (not the current folder), so a config file means the same wherever the command runs.
Other fields (``InstanceType``, ``InitialInstanceCount``...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import errno
import gc
import itertools
import json
import logging
import math
import os
import random
import re
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from . import codec, serve
from ._pipeline import MAX_PIPELINE, between, call_input, chain_predict
from ._threads import limit_pools, threads_per_worker
from ._write import write_text_atomic
from .errors import ArtifactError

__all__ = ["EndpointError", "EndpointSpec", "Pipeline", "VariantSpec", "add_endpoint_command", "add_serve_flags",
           "chain_predict", "read_config", "requested", "run", "run_from_args", "single_model", "update_weights"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("artifact_tools.access")  # one JSON line per request, with --access-log

MAX_VARIANTS = 10  # CreateEndpointConfig: ProductionVariants, 1 to 10 items
DEFAULT_VARIANT = "AllTraffic"  # the variant name the SageMaker Python SDK gives a single-model endpoint
DEFAULT_ENDPOINT = "local-endpoint"
VARIANT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # ProductionVariant.VariantName (fullmatch)
MAX_CONFIG = 16 * 1024 * 1024  # bytes of an endpoint config file
WATCH_INTERVAL = 0.05  # seconds between two looks of a worker at its endpoint config file
MAX_TARGET_MODEL = 1024  # InvokeEndpoint TargetModel: length 1 to 1024
INVOKED_HEADER = "X-Amzn-Invoked-Production-Variant"
TARGET_VARIANT = "HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT"  # X-Amzn-SageMaker-Target-Variant in the WSGI environ
TARGET_MODEL = "HTTP_X_AMZN_SAGEMAKER_TARGET_MODEL"  # X-Amzn-SageMaker-Target-Model
_KEY = "artifact_tools.endpoint"  # the environ entry where prepare() leaves its routing for the WSGI app
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
MAX_LOGGED = 1024  # characters of a path or target model in an access log line
LINE_LIMIT = 4000  # bytes of an access log line: under PIPE_BUF (4096), so that one write is atomic on a pipe too
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class EndpointError(ArtifactError):
    """An endpoint config, variant or weight update that cannot be used (one sentence)."""


# ================================================================================================ endpoint config

@dataclass(frozen=True)
class VariantSpec:
    """One production variant: ``artifacts`` is one model, or an inference pipeline of up to five;
    ``multi_model`` a prefix of artifacts (a multi-model variant, ``artifacts`` empty)."""

    name: str
    artifacts: tuple[str, ...] = ()
    weight: float = 1.0
    multi_model: str | None = None
    model_name: str = ""

    @property
    def key(self) -> tuple:
        """What the variant serves (two variants with the same key share their loaded models)."""
        return ("multi", self.multi_model) if self.multi_model else ("models", self.artifacts)

    @property
    def label(self) -> str:
        return self.model_name or (self.multi_model or " -> ".join(self.artifacts))


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    variants: tuple[VariantSpec, ...]
    config: str | None = None  # the config file this endpoint was read from (and is watched)

    def artifacts(self) -> list[str]:
        """Every artifact of the fixed (not multi-model) variants, once each, in order."""
        return list(dict.fromkeys(a for v in self.variants for a in v.artifacts))


def _weight(value: Any, where: str) -> float:
    try:  # (an integer too large for a float raises OverflowError)
        weight = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:
        weight = math.inf
    if not math.isfinite(weight) or weight < 0:
        raise EndpointError(f"{where} must be a finite number of at least 0, not {str(value)[:40]!r}")
    return weight + 0.0  # (-0.0 as 0.0)


def _check_variants(name: str, variants: list[VariantSpec]) -> EndpointSpec:
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise EndpointError(f"an endpoint has 1 to {MAX_VARIANTS} production variants, not {len(variants)}")
    seen: set[str] = set()
    for v in variants:
        if not VARIANT_NAME.fullmatch(v.name):  # (match's "$" lets a final newline through)
            raise EndpointError(f"the variant name {v.name!r} is not valid (letters, digits and inner hyphens, "
                                "at most 63)")
        if v.name in seen:
            raise EndpointError(f"the variant name {v.name!r} is given twice")
        seen.add(v.name)
        if len(v.artifacts) > MAX_PIPELINE:
            raise EndpointError(f"variant {v.name}: an inference pipeline holds at most {MAX_PIPELINE} models, "
                                f"not {len(v.artifacts)}")
    if not any(v.weight > 0 for v in variants):
        raise EndpointError("at least one variant must have a weight above 0")
    return EndpointSpec(name, tuple(variants))


def _resolve(url: str, base: str | None) -> str:
    if "\0" in url:
        raise EndpointError(f"the ModelDataUrl {url[:100]!r} holds a NUL character")
    if base and "://" not in url and not os.path.isabs(url):
        return os.path.normpath(os.path.join(base, url))
    return url


def _containers(model: Any, where: str) -> list[dict]:
    """The container definitions of one ``Models`` entry (``CreateModel`` shape)."""
    if "Containers" in model:
        containers = model["Containers"]
        if not isinstance(containers, list) or not containers:
            raise EndpointError(f"{where}: Containers must be a non-empty list")
        return containers
    container = model.get("PrimaryContainer")
    if not isinstance(container, dict):
        raise EndpointError(f"{where} needs a PrimaryContainer or Containers")
    return [container]


def parse_config(doc: Any, base: str | None = None) -> EndpointSpec:
    """An :class:`EndpointSpec` from a ``CreateEndpointConfig`` document (see the module docstring); relative
    artifact paths are read from ``base``."""
    if not isinstance(doc, dict):
        raise EndpointError("an endpoint config is a JSON object with ProductionVariants")
    name = doc.get("EndpointConfigName") or doc.get("EndpointName") or DEFAULT_ENDPOINT
    if not isinstance(name, str):
        raise EndpointError("EndpointConfigName must be a string")
    models_doc = doc.get("Models", {})
    models: dict[str, tuple[tuple[str, ...], str | None]] = {}  # ModelName -> (artifacts, multi-model prefix)
    if isinstance(models_doc, dict):
        for model_name, url in models_doc.items():
            if not isinstance(url, str) or not url:
                raise EndpointError(f"Models[{model_name!r}] must name an artifact")
            models[model_name] = ((_resolve(url, base),), None)
    elif isinstance(models_doc, list):
        for i, model in enumerate(models_doc):
            where = f"Models[{i}]"
            if not isinstance(model, dict) or not isinstance(model.get("ModelName"), str):
                raise EndpointError(f"{where} needs a ModelName")
            if model["ModelName"] in models:  # (CreateModel names are unique in an account and region)
                raise EndpointError(f"{where}: the model name {model['ModelName']!r} is given twice")
            containers = _containers(model, f"{where} ({model['ModelName']})")
            urls: list[str] = []
            prefix: str | None = None
            for c in containers:
                url = c.get("ModelDataUrl") if isinstance(c, dict) else None
                if not isinstance(url, str) or not url:
                    raise EndpointError(f"{where} ({model['ModelName']}): every container needs a ModelDataUrl")
                if c.get("Mode", "SingleModel") == "MultiModel":
                    if len(containers) > 1:
                        raise EndpointError(f"{where}: a multi-model container cannot be part of a pipeline")
                    prefix = _resolve(url, base)
                elif c.get("Mode", "SingleModel") != "SingleModel":
                    raise EndpointError(f"{where}: Mode is SingleModel or MultiModel, not {c.get('Mode')!r}")
                else:
                    urls.append(_resolve(url, base))
            models[model["ModelName"]] = (tuple(urls), prefix)
    else:
        raise EndpointError("Models must be an object (ModelName: artifact) or a list of CreateModel requests")
    raw = doc.get("ProductionVariants")
    if not isinstance(raw, list):
        raise EndpointError("an endpoint config needs a ProductionVariants list")
    variants = []
    artifacts: tuple[str, ...]
    for i, pv in enumerate(raw):
        if not isinstance(pv, dict) or not isinstance(pv.get("VariantName"), str):
            raise EndpointError(f"ProductionVariants[{i}] needs a VariantName")
        where = f"variant {pv['VariantName']}"
        weight = _weight(pv.get("InitialVariantWeight", 1.0), f"{where}: InitialVariantWeight")
        model_name = pv.get("ModelName")
        if isinstance(pv.get("ModelDataUrl"), str) and pv["ModelDataUrl"]:
            artifacts, prefix = (_resolve(pv["ModelDataUrl"], base),), None
            if pv.get("Mode") == "MultiModel":
                prefix = artifacts[0]
                artifacts = ()
        elif isinstance(model_name, str) and model_name in models:
            artifacts, prefix = models[model_name]
        elif isinstance(model_name, str):
            raise EndpointError(f"{where}: the model {model_name!r} is not in Models")
        else:
            raise EndpointError(f"{where} needs a ModelName or a ModelDataUrl")
        variants.append(VariantSpec(pv["VariantName"], artifacts, weight, prefix, model_name or ""))
    return _check_variants(name, variants)


def read_config(path: str | os.PathLike) -> EndpointSpec:
    """The endpoint config file at ``path`` (JSON), checked; :class:`EndpointError` with one sentence otherwise."""
    path = os.fspath(path)
    try:  # opened without blocking and read only when it is a regular file (a FIFO would hang the worker's loop)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise EndpointError(f"the endpoint config {path} is not a regular file")
            data = f.read(MAX_CONFIG + 1)
        if len(data) > MAX_CONFIG:
            raise EndpointError(f"the endpoint config {path} is over {MAX_CONFIG} bytes")
        doc = json.loads(data)
    except FileNotFoundError:
        raise EndpointError(f"the endpoint config {path} does not exist") from None
    except RecursionError:
        raise EndpointError(f"the endpoint config {path} nests JSON too deeply to be read") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise EndpointError(f"the endpoint config {path} cannot be read as JSON ({serve._sentence(e)})") from None
    spec = parse_config(doc, os.path.dirname(os.path.abspath(path)))
    return EndpointSpec(spec.name, spec.variants, path)


def config_document(spec: EndpointSpec) -> dict:
    """``spec`` as a ``CreateEndpointConfig`` document (each variant's artifacts as a ``Models`` entry)."""
    models, variants = [], []
    for v in spec.variants:
        model_name = v.model_name or f"{v.name}-model"
        if v.multi_model:
            containers = [{"ModelDataUrl": v.multi_model, "Mode": "MultiModel"}]
        else:
            containers = [{"ModelDataUrl": a} for a in v.artifacts]
        models.append({"ModelName": model_name, "Containers": containers})
        variants.append({"VariantName": v.name, "ModelName": model_name, "InitialVariantWeight": v.weight})
    return {"EndpointConfigName": spec.name, "ProductionVariants": variants, "Models": models}


def _absolute(path: str) -> str:
    """``path`` as an absolute path (a URI such as ``s3://...`` or ``file://...`` unchanged)."""
    return path if "://" in path else os.path.abspath(path)


def absolute_paths(spec: EndpointSpec) -> EndpointSpec:
    """``spec`` with every relative artifact path and multi-model prefix made absolute against the current
    folder (what the command line's paths mean); the workers read the endpoint from a config file in
    :func:`state_dir`, where a relative path would mean something else."""
    variants = tuple(replace(v, artifacts=tuple(_absolute(a) for a in v.artifacts),
                             multi_model=_absolute(v.multi_model) if v.multi_model else v.multi_model)
                     for v in spec.variants)
    return replace(spec, variants=variants)


def single_model(artifact: str) -> EndpointSpec:
    """One model as an endpoint: its only variant, ``AllTraffic``, takes every request (``serve ARTIFACT``)."""
    return _check_variants(DEFAULT_ENDPOINT, [VariantSpec(DEFAULT_VARIANT, (artifact,), 1.0)])


def parse_variant_flag(text: str) -> VariantSpec:
    """``NAME=ARTIFACT[:WEIGHT]`` (``serve --variant``); the weight is the part after the last colon when it is a
    number, so ``s3://b/m.tar.gz`` keeps its colon."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise EndpointError(f"--variant takes NAME=ARTIFACT[:WEIGHT], not {text!r}")
    artifact, weight = rest, 1.0
    head, colon, tail = rest.rpartition(":")
    if colon and head:
        try:
            weight = float(tail)
        except ValueError:
            pass
        else:
            artifact = head
    return VariantSpec(name, (artifact,), _weight(weight, f"the weight of variant {name}"))


# ================================================================================================ pipelines

class Pipeline:
    """Loaded models chained as an inference pipeline, usable wherever one loaded model is (``predict``,
    ``framework``, and ``invoke_fn`` when a member brings its own inference code: then the chain runs on bodies,
    each member given the previous one's response body and content type)."""

    def __init__(self, models: list):
        if not 1 <= len(models) <= MAX_PIPELINE:
            raise EndpointError(f"an inference pipeline holds 1 to {MAX_PIPELINE} models, not {len(models)}")
        self.models = list(models)
        self.framework = "pipeline(" + ", ".join(str(getattr(m, "framework", "?")) for m in models) + ")"
        if any(getattr(m, "invoke_fn", None) is not None for m in models):
            self.invoke_fn = self._invoke

    def predict(self, data: Any) -> Any:
        return chain_predict(self.models, data)[0]

    def _invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        style = None
        for i, model in enumerate(self.models):
            last = i + 1 == len(self.models)
            own = getattr(model, "invoke_fn", None)
            if own is not None:
                answer = own(body, content_type, accept if last else codec.CSV)
                body, content_type = answer if isinstance(answer, tuple) and len(answer) == 2 else (answer, accept)
                body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
                continue
            label = "the body" if i == 0 else f"the response of pipeline model {i}"
            request = codec.decode(body, content_type, label)
            style = request.style if i == 0 else style
            out = model.predict(call_input(model, request))
            body, content_type = codec.encode(out, codec.negotiate(accept), style) if last else between(out)
        return body, content_type


# ================================================================================================ worker side

class _Metrics:
    """The endpoint's figures in ``prometheus_client``'s multiprocess store (one set of files per worker)."""

    def __init__(self) -> None:
        from loaders.base import require

        prom = require("prometheus_client", "serve")
        labels = ["variant", "model"]
        self.prom = prom
        self.invocations = prom.Counter("Invocations", "InvokeEndpoint requests", labels, registry=None)
        self.errors_4xx = prom.Counter("Invocation4XXErrors", "requests answered with a 4xx status", labels,
                                       registry=None)
        self.errors_5xx = prom.Counter("Invocation5XXErrors", "requests answered with a 5xx status", labels,
                                       registry=None)
        self.model_latency = prom.Histogram("ModelLatency", "time the model took: decoding, prediction, encoding",
                                            labels, unit="seconds", buckets=LATENCY_BUCKETS, registry=None)
        self.overhead_latency = prom.Histogram("OverheadLatency", "time from the request's arrival to its answer, "
                                               "less ModelLatency", labels, unit="seconds",
                                               buckets=LATENCY_BUCKETS, registry=None)
        self.loaded = prom.Gauge("LoadedModelCount", "models loaded by a multi-model variant", ["variant"],
                                 multiprocess_mode="livesum", registry=None)
        self.loading_time = prom.Histogram("ModelLoadingTime", "time to load a model of a multi-model variant",
                                           labels, unit="seconds", buckets=LOAD_BUCKETS, registry=None)
        self.loading_wait = prom.Histogram("ModelLoadingWaitTime", "time a request waited for its model to load",
                                           labels, unit="seconds", buckets=LOAD_BUCKETS, registry=None)
        self.cache_hits = prom.Counter("ModelCacheHit", "requests to a model already loaded", labels, registry=None)
        self.batched = prom.Counter("BatchedInvocations", "invocations predicted together with others in one call of "
                                    "the model (dynamic batching)", labels, registry=None)
        self.capture_dropped = prom.Counter("CaptureDropped", "data capture records dropped (queue full or write "
                                            "failure), counted at the next request of the worker", ["variant"],
                                            registry=None)

    def exposition(self) -> tuple[str, bytes]:
        from prometheus_client import multiprocess

        registry = self.prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return self.prom.CONTENT_TYPE_LATEST, self.prom.generate_latest(registry)


def _observe_all(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` of each of ``values`` with one write to its sum and one to each bucket that gets
    values: a ``prometheus_client`` Histogram (0.4 and later) keeps its sum and its non-cumulative bucket counts as
    ``_sum`` and ``_buckets`` beside ``_upper_bounds`` (ascending, ``+Inf`` last), and ``observe`` counts a value
    in the first bucket whose bound is at least the value (``prometheus_client/metrics.py``); without those
    attributes, one ``observe`` a value."""
    if not values:
        return
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        i = bisect.bisect_left(bounds, value)
        if i < len(bounds) and value <= bounds[i]:
            counts[i] = counts.get(i, 0) + 1
    total.inc(sum(values))
    for i, n in counts.items():
        buckets[i].inc(n)


class _LineHandler(logging.Handler):
    """Writes each record's message as one line with one ``write`` to a file descriptor opened with ``O_APPEND``
    (whole lines from every worker, never interleaved). A line that cannot be written (a full disk, a pipe whose
    reader lags: the descriptor is non-blocking, so the worker never waits for it) is dropped, with one warning
    until a line is written again: a request never fails, nor waits, for its log line."""

    def __init__(self, fd: int, path: str):
        super().__init__()
        self.fd = fd
        self.path = path
        self.failing = False

    def emit(self, record: logging.LogRecord) -> None:
        data = (record.getMessage() + "\n").encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:
            if not self.failing:
                self.failing = True
                log.warning("the access log %s cannot be written (%s); its lines are dropped until it can",
                            self.path, e.strerror or e)
            return
        self.failing = False

    def close(self) -> None:
        if self.fd > 2:
            try:
                os.close(self.fd)
            except OSError:
                pass
        super().close()


def _open_access_log(path: str) -> int:
    """A descriptor appending to ``path`` (created 0644 less the umask), or a duplicate of standard output for
    ``-``; :class:`EndpointError` with one sentence when it cannot be opened. It is opened non-blocking: a FIFO
    that no process reads is refused at once rather than waited for, and a full pipe drops lines (see
    :class:`_LineHandler`)."""
    if path == "-":
        return os.dup(1)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise EndpointError(f"cannot write the access log {path} (no process reads it)") from None
        raise EndpointError(f"cannot write the access log {path} ({e.strerror or e})") from None


def _iso_time(seconds: float) -> str:
    t = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(seconds % 1 * 1e6):06d}Z"


class _NotFound(Exception):
    pass


class _ModelCache:
    """One worker's models of a multi-model variant: loaded on first use (a request for a model being loaded waits
    for that load), the least recently used unloaded beyond ``max_models`` models or ``max_bytes`` (each model
    counted as the bytes of its artifact's files, what the report lists). Its dictionaries are only touched on the
    event loop's thread; loading runs on the worker's loader thread."""

    def __init__(self, variant: str, prefix: str, make_app: Callable, loader: Any, metrics: _Metrics,
                 max_models: int | None, max_bytes: int | None):
        self.variant = variant
        self.prefix = prefix
        self.make_app = make_app
        self.loader = loader
        self.metrics = metrics
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.loaded: dict[str, tuple[Callable, int]] = {}  # target -> (WSGI app, bytes), least recent first
        self.loading: dict[str, Any] = {}  # target -> asyncio future of the load under way
        self.bytes = 0
        self.local = "://" not in prefix or prefix.startswith("file://")

    def _locate(self, target: str) -> str:
        if self.local:
            root = os.path.realpath(self.prefix[len("file://"):] if self.prefix.startswith("file://") else self.prefix)
            path = os.path.realpath(os.path.join(root, target))
            if not path.startswith(root + os.sep) or not os.path.isfile(path):
                raise _NotFound()
            return path
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.prefix)
        path = root.rstrip("/") + "/" + target
        if not fs.isfile(path):
            raise _NotFound()
        return self.prefix.rstrip("/") + "/" + target

    def _load(self, target: str) -> tuple[Callable, int, float]:
        started = time.monotonic()
        path = self._locate(target)
        app, size = self.make_app((path,))
        return app, size, time.monotonic() - started

    async def get(self, target: str) -> Callable:
        entry = self.loaded.get(target)
        if entry is not None:
            self.loaded[target] = self.loaded.pop(target)  # most recently used now
            self.metrics.cache_hits.labels(self.variant, target).inc()
            return entry[0]
        waited = time.monotonic()
        future = self.loading.get(target)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self.loading[target] = loop.run_in_executor(self.loader, self._load, target)
            future.add_done_callback(lambda f: self._loaded(target, f))
        try:
            app, _, _ = await asyncio.shield(future)
        except _NotFound:
            raise serve._Reject(404, f"there is no model {target!r} under {self.prefix}") from None
        except ArtifactError as e:  # not a model this server may serve (refused by the audit, no model in it)
            raise serve._Reject(422, f"the model {target!r} could not be loaded: {e}") from None
        except Exception as e:
            raise serve._Reject(500, f"the model {target!r} could not be loaded: {type(e).__name__}: "
                                     f"{serve._sentence(e)}") from None
        self.metrics.loading_wait.labels(self.variant, target).observe(time.monotonic() - waited)
        return app

    def _loaded(self, target: str, future: Any) -> None:
        """On the loop, when a load ends: keep the model and unload the least recently used beyond the bounds."""
        self.loading.pop(target, None)
        if future.cancelled() or future.exception() is not None:
            return
        app, size, seconds = future.result()
        self.metrics.loading_time.labels(self.variant, target).observe(seconds)
        self.loaded[target] = (app, size)
        self.bytes += size
        while len(self.loaded) > 1 and ((self.max_models and len(self.loaded) > self.max_models)
                                        or (self.max_bytes is not None and self.bytes > self.max_bytes)):
            oldest = next(iter(self.loaded))
            _, freed = self.loaded.pop(oldest)
            self.bytes -= freed
            log.info("multi-model variant %s: unloaded %s (least recently used)", self.variant, oldest)
        self.metrics.loaded.labels(self.variant).set(len(self.loaded))


class _Live:
    """A variant as one worker serves it."""

    def __init__(self, spec: VariantSpec, app: Callable | None, cache: _ModelCache | None):
        self.spec = spec
        self.name = spec.name
        self.weight = spec.weight
        self.app = app
        self.cache = cache


def _shares(weights: list[float]) -> list[float]:
    """Each weight's share of their sum (at least one above 0: checked), taken over the largest first, so that
    weights of 1e308 still sum and weights of 5e-324 still divide."""
    top = max(weights)
    scaled = [w / top for w in weights]
    total = sum(scaled)
    return [w / total for w in scaled]


class _Routes:
    """The variants in force and a weighted choice among them."""

    def __init__(self, variants: list[_Live]):
        self.variants = variants
        self.by_name = {v.name: v for v in variants}
        self.cumulative = list(itertools.accumulate(_shares([v.weight for v in variants])))
        self.total = self.cumulative[-1]

    def pick(self, rng: random.Random) -> _Live:
        i = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.variants[min(i, len(self.variants) - 1)]


class EndpointApp:
    """The WSGI application of one worker: ``/ping``, ``/execution-parameters``, ``/metrics`` and
    ``/invocations`` routed to a variant. The HTTP front end (:mod:`artifact_tools.serve`) awaits
    :meth:`prepare` on its event loop before handing ``/invocations`` to the model thread (where the variant is
    chosen, a multi-model target loaded, the config file looked at), and calls :meth:`record` with each answer."""

    def __init__(self, config: str, *, trust: bool | str, max_payload: int, workers: int,
                 max_models: int | None = None, max_bytes: int | None = None, capture: dict | None = None,
                 access: str | None = None, max_batch_rows: int = serve.DEFAULT_MAX_BATCH_ROWS):
        from concurrent.futures import ThreadPoolExecutor

        self.access: logging.Logger | None = None  # the access logger, when --access-log is given
        self.handler: _LineHandler | None = None
        if access:  # this worker's own descriptor, opened after the fork
            self.handler = _LineHandler(_open_access_log(access), access)
            access_log.addHandler(self.handler)
            access_log.setLevel(logging.INFO)
            access_log.propagate = False  # the lines go to the access log, not to the server's error log
            self.access = access_log
        self.pid = os.getpid()

        self.capture = capture  # data capture settings (serve.capture_writer); one writer per variant answering
        self.writers: dict[str, Any] = {}
        self.counted: dict[str, int] = {}  # capture drops already added to the CaptureDropped counter

        self.config = config
        self.trust = trust
        self.max_payload = max_payload
        self.workers = workers
        self.pad_texts = max_batch_rows > 0  # (0: no batching, and every text of a request runs alone)
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.rng = random.Random()
        self.metrics = _Metrics()
        self.series: dict[tuple[str, str], tuple] = {}  # (variant, model) -> its labelled metrics (see record)
        threads = threads_per_worker(workers)
        self.loader = ThreadPoolExecutor(1, thread_name_prefix="load", initializer=limit_pools,
                                         initargs=(threads,))
        self.apps: dict[tuple, Any] = {}  # VariantSpec.key -> WSGI app or _ModelCache
        self.seen: tuple | None = None
        self.next_look = 0.0  # time.monotonic() after which the config file is looked at again (see _watch)
        self.deferred: tuple | None = None  # the file's identity read while models loaded, to look at after
        self.pending = False
        spec = read_config(config)
        self.seen = self._identity()
        self._load_missing(spec)
        self._apply(spec)
        self.parameters = json.dumps({"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD",
                                      "MaxPayloadInMB": max(1, max_payload // serve.MIB)}).encode()

    # -- models

    def _make_app(self, artifacts: tuple[str, ...]) -> tuple[Callable, int]:
        import loaders

        models = [loaders.load(a, trust=self.trust) for a in artifacts]
        size = 0
        for m in models:
            report = getattr(m, "report", None)
            size += sum(getattr(f, "size", 0) or 0 for f in getattr(report, "files", None) or [])
        model = models[0] if len(models) == 1 else Pipeline(models)
        return serve.create_app(model, self.max_payload, workers=self.workers, pad_texts=self.pad_texts), size

    def _load_missing(self, spec: EndpointSpec) -> None:
        """Load the models of ``spec``'s variants not loaded yet (in the calling thread)."""
        for v in spec.variants:
            if v.key in self.apps:
                continue
            if v.multi_model:
                _check_prefix(v.multi_model)  # (a reloaded config's new prefix: checked as at startup)
                self.apps[v.key] = _ModelCache(v.name, v.multi_model, self._make_app, self.loader, self.metrics,
                                               self.max_models, self.max_bytes)
            else:
                self.apps[v.key] = self._make_app(v.artifacts)[0]

    def _apply(self, spec: EndpointSpec) -> None:
        """Put ``spec`` in force (its models loaded): its name and its routes."""
        self.name = spec.name
        self.routes = self._routes(spec)

    def _routes(self, spec: EndpointSpec) -> _Routes:
        live = []
        for v in spec.variants:
            held = self.apps[v.key]
            live.append(_Live(v, None, held) if isinstance(held, _ModelCache) else _Live(v, held, None))
        keys, names = {v.key for v in spec.variants}, {v.name for v in spec.variants}
        for key in [k for k in self.apps if k not in keys]:  # removed variants: their models go when unreferenced
            held = self.apps.pop(key)
            gc.unfreeze()  # (a model the worker loaded at start was frozen with it: see serve's worker)
            if isinstance(held, _ModelCache) and held.variant not in names:
                self.metrics.loaded.labels(held.variant).set(0)  # (its gauge would show its last count forever)
        return _Routes(live)

    # -- the watched config

    def _identity(self) -> tuple | None:
        try:
            st = os.stat(self.config)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _watch(self) -> None:
        """Apply a changed config file (on the loop, before routing)."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + WATCH_INTERVAL
        identity = self._identity()
        if identity is None or identity == self.seen or (self.pending and identity == self.deferred):
            return
        try:
            spec = read_config(self.config)
        except Exception as e:  # noqa: BLE001 - whatever the file holds, the last good config stays in force
            self.seen = identity
            log.warning("endpoint config %s ignored, the last good one stays in force: %s", self.config, e)
            return
        if all(v.key in self.apps for v in spec.variants):  # (even while another config's models load)
            self.seen = identity
            self._apply(spec)
            log.info("endpoint config %s applied: %s", self.config,
                     ", ".join(f"{v.name}={v.weight:g}" for v in spec.variants))
            return
        if self.pending:  # models of an earlier config are loading: this one is looked at again after
            self.deferred = identity
            return
        self.seen = identity
        self.pending = True
        future = asyncio.get_running_loop().run_in_executor(self.loader, self._load_missing, spec)

        def done(f: Any) -> None:
            self.pending = False
            if f.exception() is not None:
                log.warning("endpoint config %s not applied: loading its new models failed: %s", self.config,
                            serve._sentence(f.exception()))
                return
            self.seen, self.next_look = None, 0.0  # look again at the next request: the file may have changed

        future.add_done_callback(done)

    # -- the request cycle

    async def prepare(self, environ: dict) -> None:
        """Route one ``POST /invocations`` (on the event loop): the variant, and for a multi-model variant its
        loaded target model. A refusal is left in the environ for the WSGI app to answer."""
        route: dict = {}
        environ[_KEY] = route
        try:
            self._watch()
            routes = self.routes
            forced = environ.get(TARGET_VARIANT)
            if forced is not None:
                variant = routes.by_name.get(forced.strip())
                if variant is None:
                    raise serve._Reject(400, f"Endpoint {self.name} does not have a production variant named "
                                             f"{forced.strip()!r}; its variants are "
                                             f"{', '.join(v.name for v in routes.variants)}.")
            else:
                variant = routes.pick(self.rng)
            route["variant"] = variant.name
            route["model"] = variant.spec.label
            target = environ.get(TARGET_MODEL)
            if variant.cache is None:
                if target is not None:
                    raise serve._Reject(400, f"Endpoint {self.name} is not a multi-model endpoint and does not "
                                             "support target model header.")
                route["app"] = variant.app
                return
            if not target or not target.strip():
                raise serve._Reject(400, "a multi-model endpoint needs the X-Amzn-SageMaker-Target-Model header "
                                         "naming the model's path under its prefix")
            try:  # header bytes come as latin-1 (PEP 3333); a name is UTF-8, as S3 keys are
                target = target.strip().encode("latin-1").decode("utf-8")
            except UnicodeError:
                raise serve._Reject(400, "the target model name is not UTF-8 text") from None
            route["model"] = ""  # until the target is known to exist (see the module docstring)
            if len(target) > MAX_TARGET_MODEL or "\x00" in target or target.startswith("/") or \
                    any(part in ("", ".", "..") for part in target.split("/")) or \
                    (not variant.cache.local and any(c in target for c in "%?#\\")):  # (a URL decodes %2e%2e)
                raise serve._Reject(400, f"the target model {target[:100]!r} is not a relative path under the "
                                         "endpoint's model prefix")
            route["model"] = target
            try:
                route["app"] = await variant.cache.get(target)
            except serve._Reject as r:
                if r.status == 404:  # no such model: its name is no label (see the module docstring)
                    route["model"] = ""
                raise
        except serve._Reject as r:
            route["error"] = r

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        headers: list[tuple[str, str]] = []
        try:
            if path == serve.INVOCATIONS and method == "POST":
                return self._invoke(environ, start_response)
            routes: dict[str, Callable[[], tuple[str, bytes]]] = {
                "/ping": self._ping, "/execution-parameters": lambda: (serve.JSON, self.parameters),
                "/metrics": self.metrics.exposition}
            if path not in routes and path != serve.INVOCATIONS:
                raise serve._Reject(404, f"there is no {path}; this endpoint answers /ping, /invocations, /metrics "
                                         "and /execution-parameters")
            serve._check_method(path, method, "POST" if path == serve.INVOCATIONS else serve.READ)
            status, (ctype, body) = 200, routes[path]()
        except serve._Reject as r:
            status, ctype, body, headers = r.status, serve.JSON, serve._error_body(r.message), list(r.headers)
        start_response(f"{status} {serve.HTTPStatus(status).phrase}",
                       [("Content-Type", ctype), ("Content-Length", str(len(body))), *headers])
        return [body]

    def _ping(self) -> tuple[str, bytes]:
        """The endpoint's state: its variants with their weights as now in force (a changed config file is looked
        at first, as before routing, so weights just updated show here before the next invocation)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # (called outside the front end's event loop: no config is applied from here)
            pass
        else:
            self._watch()
        variants = [{"name": v.name, "weight": v.weight, "model": v.spec.label,
                     **({"loaded_models": len(v.cache.loaded)} if v.cache else
                        {"framework": getattr(v.app, "framework", None)})} for v in self.routes.variants]
        answer: dict = {"status": "ok", "endpoint": self.name}
        if len(variants) == 1 and "framework" in variants[0]:  # one model: as `serve` has always answered
            answer["framework"] = variants[0]["framework"]
        return serve.JSON, json.dumps({**answer, "variants": variants}).encode()

    def _invoke(self, environ: dict, start_response: Callable) -> list[bytes]:
        route = environ.get(_KEY)
        if route is None:
            raise RuntimeError("the endpoint's requests must be prepared by the artifact-tools HTTP front end")
        if "error" in route:
            r = route["error"]
            body = serve._error_body(r.message)
            start_response(f"{r.status} {serve.HTTPStatus(r.status).phrase}",
                           [("Content-Type", serve.JSON), ("Content-Length", str(len(body))), *r.headers])
            return [body]
        name = route["variant"]

        def named(status: str, headers: list, exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (INVOKED_HEADER, name)], exc_info)

        started = time.perf_counter()
        answered: dict = {}

        def seen(status: str, headers: list, exc_info: Any = None) -> Any:
            answered["type"] = next((v for k, v in headers if k.lower() == "content-type"), "")
            return named(status, headers, exc_info)

        try:
            chunks = route["app"](environ, seen if self.capture else named)
        finally:  # with the time spent on it ahead, in a batch (its decoding, the batch's prediction)
            route["seconds"] = time.perf_counter() - started + environ.get(serve.AHEAD, 0.0)
        if self.capture:
            chunks = list(chunks)
            self._capture(name, environ, b"".join(chunks), answered.get("type", ""))
        return chunks

    def batcher_for(self, environ: dict) -> Any:
        """The batcher (:class:`artifact_tools.serve._Batcher`) of the model a prepared ``/invocations`` request
        is routed to, or None (a refused request, a model that does not batch, a pipeline)."""
        route = environ.get(_KEY)
        if route is None or "error" in route:
            return None
        return getattr(route.get("app"), "batcher", None)

    def _capture(self, variant: str, environ: dict, body: bytes, content_type: str) -> None:
        """Hand one answered request to the capture writer of the variant that answered (made on first use)."""
        try:
            writer = self.writers.get(variant)
            if writer is None:
                writer = self.writers[variant] = serve.capture_writer(self.capture, variant)
            writer.capture(environ.get(serve.REQUEST_BODY, b""), environ.get("CONTENT_TYPE") or "", body,
                           content_type)
            dropped = self.metrics.capture_dropped.labels(variant)
            dropped.inc(max(0, writer.dropped - self.counted.get(variant, 0)))
            self.counted[variant] = writer.dropped
        except Exception as e:  # noqa: BLE001 - capture never fails a request
            log.warning("data capture for variant %s failed: %s", variant, serve._sentence(e))

    def close(self) -> None:
        """Close the capture writers (what is queued is written); called by the worker when it stops."""
        for writer in self.writers.values():
            writer.close()
        if self.handler is not None:
            access_log.removeHandler(self.handler)
            self.handler.close()

    def _unrouted(self, environ: dict) -> tuple[str, str]:
        """The labels of a request refused before it was routed: the variant it names, else the only one."""
        routes = self.routes
        forced = environ.get(TARGET_VARIANT)
        variant = routes.by_name.get(forced.strip()) if forced is not None else \
            (routes.variants[0] if len(routes.variants) == 1 else None)
        if variant is None:
            return "", ""
        return variant.name, ("" if variant.cache is not None else variant.spec.label)

    def record(self, environ: dict, status: int, seconds: float, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Count one answered request and write its access log line (called by the front end, on its loop, for
        every request it answers, refusals of its own included; see the module docstring): :meth:`record_many` of
        that one."""
        self.record_many([(environ, status, seconds, bytes_in, bytes_out)])

    def record_many(self, answered: list[tuple[dict, int, float, int, int]]) -> None:
        """Count answered requests (``(environ, status, seconds, bytes_in, bytes_out)`` each: one, or those predicted
        in one batch, counted by the front end before any of their answers is sent) and write their access log
        lines, with one write per figure and histogram bucket of each variant instead of one per request (the
        multiprocess store's writes were 5% of a 100-row XGBoost request's CPU)."""
        groups: dict[tuple[str, str], list] = {}
        for environ, status, seconds, bytes_in, bytes_out in answered:
            labels, model_seconds = self._labels(environ)
            if labels is not None:
                group = groups.get(labels)
                if group is None:
                    group = groups[labels] = [0, 0, 0, 0, [], []]
                group[0] += 1
                group[1] += 1 if environ.get(serve.BATCHED) else 0
                group[2] += 1 if 400 <= status < 500 else 0
                group[3] += 1 if status >= 500 else 0
                if model_seconds is not None:
                    group[4].append(model_seconds)
                    group[5].append(max(0.0, seconds - model_seconds))
                else:
                    group[5].append(seconds)
            if self.access is not None:
                self._log(environ, status, seconds, bytes_in, bytes_out, labels, model_seconds)
        for labels, (count, batched_count, count_4xx, count_5xx, models, overheads) in groups.items():
            invocations, errors_4xx, errors_5xx, model_latency, overhead_latency, batched = self._series(labels)
            invocations.inc(count)
            for counter, n in ((batched, batched_count), (errors_4xx, count_4xx), (errors_5xx, count_5xx)):
                if n:
                    counter.inc(n)
            _observe_all(model_latency, models)
            _observe_all(overhead_latency, overheads)

    def _labels(self, environ: dict) -> tuple[tuple[str, str] | None, float | None]:
        """The (variant, model) labels a request is counted under (None: not an InvokeEndpoint request) and the
        seconds its model took (None: it never reached a model)."""
        route = environ.get(_KEY)
        if route is not None:
            return (route.get("variant", ""), route.get("model", "")), route.get("seconds")
        path = environ.get("PATH_INFO", "")
        if path == "" or (path == serve.INVOCATIONS and environ.get("REQUEST_METHOD") == "POST"):
            return self._unrouted(environ), None  # an invocation (or an unreadable head)
        return None, None  # another path or method: not an InvokeEndpoint request (see the module docstring)

    def _series(self, labels: tuple[str, str]) -> tuple:
        """The labelled metrics of one (variant, model) pair, made once (``labels()`` checks and locks each time)."""
        series = self.series.get(labels)
        if series is None:
            m = self.metrics
            series = self.series[labels] = tuple(metric.labels(*labels) for metric in (
                m.invocations, m.errors_4xx, m.errors_5xx, m.model_latency, m.overhead_latency, m.batched))
        return series

    def _log(self, environ: dict, status: int, seconds: float, bytes_in: int, bytes_out: int,
             labels: tuple[str, str] | None, model_seconds: float | None) -> None:
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        host, port = environ.get("REMOTE_ADDR", ""), environ.get("REMOTE_PORT", "")
        variant, model = labels if labels is not None else ("", "")
        model = (environ.get(TARGET_MODEL) or "").strip() or model  # what was asked for, known or not
        model_us = round(model_seconds * 1e6) if model_seconds is not None else 0
        fields = {"time": _iso_time(time.time() - seconds),
                  "client": (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") if port else host,
                  "method": environ.get("REQUEST_METHOD", ""), "path": path[:MAX_LOGGED], "status": status,
                  "bytes_in": bytes_in, "bytes_out": bytes_out, "variant": variant, "model": model[:MAX_LOGGED],
                  "model_latency_us": model_us, "overhead_latency_us": max(0, round(seconds * 1e6) - model_us),
                  "pid": self.pid}
        line = json.dumps(fields)
        if len(line) > LINE_LIMIT:  # escaped characters (up to 6 each): shorter fields keep the line whole
            fields["path"], fields["model"] = fields["path"][:200], fields["model"][:200]
            line = json.dumps(fields)
        self.access.info(line, extra={"access": fields})  # type: ignore[union-attr]


# ================================================================================================ server

def _check_prefix(prefix: str) -> None:
    if "://" not in prefix or prefix.startswith("file://"):
        local = prefix[len("file://"):] if prefix.startswith("file://") else prefix
        if not os.path.isdir(local):
            raise EndpointError(f"the multi-model prefix {prefix} is not a folder")
        return
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(prefix)
        fs.ls(root)
    except Exception as e:
        raise EndpointError(f"the multi-model prefix {prefix} cannot be listed ({serve._sentence(e)})") from None


def state_dir() -> str:
    """Where running endpoints leave their state file (``endpoint-PORT.json``: the watched config and the server's
    process id): ``$XDG_RUNTIME_DIR/artifact-tools``, else a per-user folder in the temporary directory."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = os.path.join(base, "artifact-tools") if base else \
        os.path.join(tempfile.gettempdir(), f"artifact-tools-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def _state_path(port: int) -> str:
    return os.path.join(state_dir(), f"endpoint-{port}.json")


def run(spec: EndpointSpec, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 2,
        trust: bool | str = False, max_payload: int = serve.DEFAULT_MAX_PAYLOAD, timeout: int | None = None,
        max_models: int | None = None, max_model_bytes: int | None = None, capture: dict | None = None,
        access_log: str | None = None, max_batch_rows: int = serve.DEFAULT_MAX_BATCH_ROWS) -> int:
    """Serve the endpoint ``spec`` on ``host:port`` with ``workers`` gunicorn processes until SIGTERM/SIGINT, as
    :func:`artifact_tools.serve.run` serves one model; returns the exit status. Every artifact of a fixed variant
    is loaded (and audited) once before anything listens; multi-model artifacts are audited as they load.
    ``max_models`` / ``max_model_bytes`` bound each worker's loaded models per multi-model variant (default: no
    count bound, half the machine's memory shared among the workers). ``capture``: data capture settings as
    :func:`artifact_tools.serve.run` takes them; records go under ``dest/endpoint/<variant that answered>/``.
    ``access_log``: a file (``-``: standard output) getting one JSON line per request (see the module docstring).
    ``max_batch_rows``: rows one batched prediction takes at most, 0 for no batching (see
    :class:`artifact_tools.serve._ModelThread`)."""
    if workers < 1:
        raise ArtifactError(f"the number of workers must be at least 1, not {workers}")
    if max_payload < 1:
        raise ArtifactError(f"the payload limit must be at least 1 byte, not {max_payload}")
    if isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int) or max_batch_rows < 0:
        raise EndpointError(f"--max-batch-rows must be a whole number of at least 0, not {max_batch_rows!r}")
    if max_models is not None and max_models < 1:
        raise EndpointError(f"--max-models must be at least 1, not {max_models}")
    if max_model_bytes is not None and max_model_bytes < 1:
        raise EndpointError(f"--max-model-memory must be at least 1 byte, not {max_model_bytes}")
    if max_model_bytes is None:
        try:
            max_model_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2 // workers
        except (ValueError, OSError, AttributeError):
            max_model_bytes = None
    timeout = timeout or serve._timeout_from_env()
    from loaders.base import require

    require("gunicorn", "serve")
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is None:  # not imported here: see PROMETHEUS_MULTIPROC_DIR
        from .errors import MissingExtra

        raise MissingExtra("serve", "prometheus_client")
    worker_class = serve._worker_class(require("gunicorn.workers.base", "serve").Worker, require("httptools", "serve"),
                                       max_payload, max_batch_rows)
    if spec.config is None:  # the command line's paths: relative to this folder, not to the written config's
        spec = absolute_paths(spec)
    for v in spec.variants:
        if v.multi_model:
            _check_prefix(v.multi_model)
    serve.check_capture(capture)
    if access_log:  # a log that cannot be written is one sentence before anything loads or listens
        if access_log != "-":
            access_log = os.path.abspath(access_log)
        os.close(_open_access_log(access_log))
    frameworks = serve.check_loadable(spec.artifacts(), trust)
    listener = serve._listen(host, port)
    bound = listener.getsockname()[1]
    made: list[str] = []
    config = spec.config
    if config is None:  # the flags' endpoint, as a config file the server watches
        config = os.path.join(state_dir(), f"endpoint-{bound}.config.json")
        write_text_atomic(config, json.dumps(config_document(spec), indent=2) + "\n")
        made.append(config)
    config = os.path.abspath(config)
    state = _state_path(bound)
    write_text_atomic(state, json.dumps({"config": config, "pid": os.getpid(), "host": host, "port": bound}) + "\n")
    made.append(state)
    metrics_dir = tempfile.mkdtemp(prefix="artifact-tools-metrics-")
    for v in spec.variants:
        what = f"multi-model {v.multi_model}" if v.multi_model else \
            " -> ".join(f"{a} ({frameworks.get(a, '?')})" for a in v.artifacts)
        print(f"artifact-tools: variant {v.name} (weight {v.weight:g}): {what}", file=sys.stderr)
    print(f"artifact-tools: serving endpoint {spec.name} on http://{host}:{bound} with {workers} worker(s); "
          f"config {config}", file=sys.stderr, flush=True)

    def child_exit(server: Any, worker: Any) -> None:  # a dead worker's loaded-model gauge no longer counts
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, metrics_dir)

    options = {
        "bind": [f"fd://{listener.detach()}"], "workers": workers, "worker_class": worker_class, "timeout": timeout,
        "graceful_timeout": 30, "proc_name": "artifact-tools-endpoint", "accesslog": None, "errorlog": "-",
        "loglevel": "info", "control_socket_disable": True, "child_exit": child_exit,
    }

    def factory() -> EndpointApp:  # in each worker, after the fork
        return EndpointApp(config, trust=trust, max_payload=max_payload, workers=workers, max_models=max_models,
                           max_bytes=max_model_bytes, capture=capture, access=access_log,
                           max_batch_rows=max_batch_rows)

    master = os.getpid()
    status: Any = 0
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus_client when a worker imports it
    try:
        serve._gunicorn_app(options, factory).run()
    except SystemExit as e:
        if os.getpid() != master:
            raise
        status = e.code
    finally:
        if os.getpid() == master:
            if previous is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
            for path in made:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    return 0 if status in (0, None) else 1


# ================================================================================================ weight updates

def _config_of(port: int | None, config: str | None) -> str:
    if config:
        return config
    port = port if port is not None else int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080") or 8080)
    path = _state_path(port)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        raise EndpointError(f"no artifact-tools endpoint is running on port {port} (no live state in {path}); "
                            "give --config FILE to edit an endpoint config file") from None
    return state["config"]


def update_weights(config: str, weights: dict[str, float] | None = None, remove: list[str] | None = None) -> dict:
    """Set variant weights and remove variants in the endpoint config file ``config``, which a running endpoint
    applies to its next requests (``UpdateEndpointWeightsAndCapacities``). The result is checked as a whole (every
    named variant exists, at least one weight above 0) before the file is replaced atomically; returns the new
    weights by variant, after ``2 * WATCH_INTERVAL`` (100 ms), when every worker has looked at the file (a new
    variant's model is routed to once it has loaded, see the module docstring)."""
    weights, remove = dict(weights or {}), list(remove or [])
    config = os.path.realpath(config)  # a symlinked config: the file it names is rewritten, the link stays
    held = _lock_config(config)
    try:
        return _update_locked(config, weights, remove)
    finally:
        os.close(held)


def _lock_config(config: str) -> int:
    """A descriptor of ``config`` holding an exclusive ``flock``, so that two updates never read the same file and
    lose one's change: taken on the file the path names once locked (an update replaces the file by rename, and a
    waiter then holds the replaced one: it tries again)."""
    import fcntl

    while True:
        try:
            fd = os.open(config, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise EndpointError(f"the endpoint config {config} does not exist") from None
        except OSError as e:
            raise EndpointError(f"the endpoint config {config} cannot be opened ({serve._sentence(e)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:  # (a file system without locks)
            os.close(fd)
            raise EndpointError(f"the endpoint config {config} cannot be locked ({serve._sentence(e)})") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(config)):
                return fd
        except FileNotFoundError:  # removed meanwhile: the next open says so
            pass
        os.close(fd)


def _update_locked(config: str, weights: dict, remove: list) -> dict:
    spec = read_config(config)  # the file as it stands must be valid
    with open(config, encoding="utf-8") as f:
        doc = json.load(f)
    names = [pv["VariantName"] for pv in doc["ProductionVariants"]]
    for name in [*weights, *remove]:
        if name not in names:
            raise EndpointError(f"endpoint {spec.name} has no variant named {name!r}; its variants are "
                                f"{', '.join(names)}")
    both = set(weights) & set(remove)
    if both:
        raise EndpointError(f"variant {sorted(both)[0]} is given a weight and removed")
    kept = []
    for pv in doc["ProductionVariants"]:
        if pv["VariantName"] in remove:
            continue
        if pv["VariantName"] in weights:
            pv["InitialVariantWeight"] = _weight(weights[pv["VariantName"]], f"the weight of {pv['VariantName']}")
        kept.append(pv)
    if not kept:
        raise EndpointError("an endpoint keeps at least one variant; removing them all would leave nothing to serve")
    doc["ProductionVariants"] = kept
    checked = parse_config(doc, os.path.dirname(os.path.abspath(config)))
    write_text_atomic(config, json.dumps(doc, indent=2) + "\n")
    time.sleep(2 * WATCH_INTERVAL)  # every worker has looked at the file before its next request (module docstring)
    return {v.name: v.weight for v in checked.variants}


# ================================================================================================ command line

def _bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (a number of bytes, or with K, M, G or T)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """The endpoint flags of ``artifact-tools serve`` (its ``artifact`` positional becomes optional)."""
    g = parser.add_argument_group("endpoint (production variants, multi-model, inference pipelines, /metrics)")
    g.add_argument("--variant", action="append", metavar="NAME=ARTIFACT[:WEIGHT]", default=None,
                   help="a production variant (repeat for each; weight default 1): traffic is shared by weight, "
                        "X-Amzn-SageMaker-Target-Variant picks one")
    g.add_argument("--endpoint-config", metavar="FILE", default=None,
                   help="a CreateEndpointConfig JSON file (ProductionVariants, plus Models naming the artifacts); "
                        "watched: weight changes apply to requests that arrive 50 ms after it is replaced")
    g.add_argument("--multi-model", metavar="DIR_OR_PREFIX", default=None,
                   help="serve every artifact under a folder or fsspec prefix; X-Amzn-SageMaker-Target-Model names "
                        "one by its relative path; loaded on first use")
    g.add_argument("--pipeline", nargs="+", metavar="ARTIFACT", default=None,
                   help="an inference pipeline of up to 5 models: each one's output is the next one's input")
    g.add_argument("--max-models", type=int, metavar="N", default=None,
                   help="multi-model: models kept loaded per worker (least recently used unloaded; default no bound)")
    g.add_argument("--max-model-memory", type=_bytes, metavar="BYTES", default=None,
                   help="multi-model: bytes of artifacts kept loaded per worker (default half the memory / workers)")
    g.add_argument("--max-batch-rows", type=int, metavar="N", default=None,
                   help="requests that arrive while the model is busy are predicted together, up to N rows in one "
                        f"call, for the models that allow it (default {serve.DEFAULT_MAX_BATCH_ROWS}; 0: never, and "
                        "each text of a request to a text classifier runs alone instead of in padded batches)")
    g.add_argument("--access-log", metavar="PATH", default=None,
                   help="write one JSON line per request (time, client, method, path, status, bytes, variant, model, "
                        "latencies) to PATH, or to standard output with '-' (default: no access log)")
    c = parser.add_argument_group("data capture (SageMaker's capture format, for `monitor run`)")
    from .capture import add_capture_flags

    add_capture_flags(c, unit="invocation", variant="VARIANT", default_endpoint=DEFAULT_ENDPOINT)


def requested(args: argparse.Namespace) -> bool:
    """Whether ``serve``'s arguments ask for an endpoint (or name no artifact, which :func:`run_from_args` refuses
    with a sentence) rather than one plain model."""
    return any(getattr(args, k, None) is not None for k in ("variant", "endpoint_config", "multi_model", "pipeline")) \
        or getattr(args, "artifact", None) is None or bool(getattr(args, "capture", None)) \
        or bool(getattr(args, "access_log", None)) or getattr(args, "max_batch_rows", None) is not None


def spec_from_args(args: argparse.Namespace) -> EndpointSpec:
    artifact = getattr(args, "artifact", None)
    given = [k for k in ("variant", "endpoint_config", "multi_model", "pipeline") if getattr(args, k, None)]
    flag = {"variant": "--variant", "endpoint_config": "--endpoint-config", "multi_model": "--multi-model",
            "pipeline": "--pipeline"}
    if len(given) > 1:
        raise EndpointError(f"{flag[given[0]]} and {flag[given[1]]} cannot be combined; an endpoint config file can "
                            "hold variants of every kind")
    if not given:
        if artifact is not None:
            return single_model(artifact)
        raise EndpointError("give the artifact to serve, or --variant, --endpoint-config, --multi-model or --pipeline")
    if artifact is not None and given[0] != "pipeline":
        raise EndpointError(f"an artifact and {flag[given[0]]} cannot be combined; name every model in the variants")
    if given[0] == "endpoint_config":
        return read_config(args.endpoint_config)
    if given[0] == "variant":
        return _check_variants(DEFAULT_ENDPOINT, [parse_variant_flag(v) for v in args.variant])
    if given[0] == "multi_model":
        return _check_variants(DEFAULT_ENDPOINT, [VariantSpec(DEFAULT_VARIANT, (), 1.0, args.multi_model)])
    models = ([artifact] if artifact is not None else []) + list(args.pipeline)
    if len(models) > MAX_PIPELINE:
        raise EndpointError(f"an inference pipeline holds at most {MAX_PIPELINE} models, not {len(models)}")
    return _check_variants(DEFAULT_ENDPOINT, [VariantSpec(DEFAULT_VARIANT, tuple(models), 1.0)])


def run_from_args(args: argparse.Namespace, *, port: int, trust: bool | str) -> int:
    """``serve`` with endpoint flags: the spec from the flags, served by :func:`run`."""
    return run(spec_from_args(args), host=args.host, port=port, workers=args.workers, trust=trust,
               max_payload=args.max_payload, timeout=args.timeout, max_models=getattr(args, "max_models", None),
               max_model_bytes=getattr(args, "max_model_memory", None), capture=capture_from_args(args),
               access_log=getattr(args, "access_log", None), max_batch_rows=_batch_rows(args))


def _batch_rows(args: argparse.Namespace) -> int:
    rows = getattr(args, "max_batch_rows", None)
    return serve.DEFAULT_MAX_BATCH_ROWS if rows is None else rows


def capture_from_args(args: argparse.Namespace) -> dict | None:
    """``serve``'s data capture flags as ``run``'s ``capture`` settings (None without ``--capture``)."""
    dest = getattr(args, "capture", None)
    if not dest:
        return None
    return {"dest": dest, "endpoint": getattr(args, "endpoint_name", None) or DEFAULT_ENDPOINT,
            "percent": getattr(args, "capture_percent", 100.0), "modes": getattr(args, "capture_modes", "Input,Output")}


def add_endpoint_command(subparsers: Any, add_opening: Callable | None = None,
                         add_global: Callable | None = None) -> argparse.ArgumentParser:
    """``artifact-tools endpoint update-weights``: register the ``endpoint`` command group on the CLI's
    subparsers (``add_global`` is the CLI's helper for the global flags; ``add_opening`` is not needed: nothing
    here opens an artifact)."""
    help_ = "change a running local endpoint (as UpdateEndpointWeightsAndCapacities does)"
    e = subparsers.add_parser("endpoint", help=help_, description=help_)
    if add_global is not None:
        add_global(e, sub=True)
    actions = e.add_subparsers(dest="endpoint_action", metavar="ACTION")
    actions.required = True
    help_ = "set variant weights (NAME=WEIGHT) and remove variants of a running endpoint, without dropping a request"
    u = actions.add_parser("update-weights", help=help_, description=help_)
    if add_global is not None:
        add_global(u, sub=True)
    u.add_argument("weights", nargs="*", metavar="NAME=WEIGHT", help="a variant's new weight (at least 0)")
    u.add_argument("--remove", action="append", metavar="NAME", default=[], help="remove a variant")
    u.add_argument("--port", type=int, default=None,
                   help="the endpoint's port (default $SAGEMAKER_BIND_TO_PORT or 8080); its config file is found "
                        "through its state file")
    u.add_argument("--config", metavar="FILE", default=None,
                   help="edit this endpoint config file instead (a server watching it applies the change)")
    u.set_defaults(func=cmd_update_weights)
    return e


def cmd_update_weights(args: argparse.Namespace) -> int:
    weights: dict[str, float] = {}
    for item in args.weights:
        name, sep, value = item.partition("=")
        try:
            weight = float(value) if sep and name else None
        except ValueError:
            weight = None
        if weight is None:
            raise EndpointError(f"a weight is given as NAME=WEIGHT, not {item!r}")
        weights[name] = weight
    if not weights and not args.remove:
        raise EndpointError("give at least one NAME=WEIGHT or --remove NAME")
    config = _config_of(args.port, args.config)
    new = update_weights(config, weights, args.remove)
    print("weights: " + ", ".join(f"{k}={v:g} ({share:.0%})" for (k, v), share in zip(new.items(), _shares(
        list(new.values())))) + f"; written to {config}")
    return 0
