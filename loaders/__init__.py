"""Loaders: turn an artifact into a live model object with one uniform ``predict``.

>>> import loaders
>>> m = loaders.load("model.tar.gz")          # inspects, extracts once (cached by content hash), loads
>>> m.predict(X)                               # numpy / pandas in, numpy / pandas out
>>> m.model                                    # the framework's own object

The loader is chosen by what inspection found (``report.framework``), never by file names. Frameworks are
imported only inside the module for the artifact at hand; a missing one raises MissingExtra naming the
``pip install 'artifact-tools[extra]'`` to run. Loading refuses what can run code unless ``trust=True``
(see ``artifact_tools.trust``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from artifact_tools.archive import Limits
from artifact_tools.errors import ArtifactError, NotLoadable
from artifact_tools.trust import check as check_trust

from . import inference_code
from .base import LoadedModel
from .cache import prepare

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "load", "read_input", "format_output"]

LOADER_MODULES = {
    "xgboost": "loaders.xgboost",
    "sklearn": "loaders.sklearn",
    "pickle": "loaders.sklearn",
    "mxnet": "loaders.mxnet",
    "tensorflow": "loaders.tensorflow",
    "huggingface": "loaders.huggingface",
    "spark": "loaders.spark",
    "mleap": "loaders.mleap",
    "sagemaker-builtin": "loaders.builtins",
    "pytorch": "loaders.pytorch",
    "onnx": "loaders.onnx",
    "lightgbm": "loaders.lightgbm",
    "catboost": "loaders.catboost",
    # not a framework inspection reports: any artifact loaded through its own SageMaker inference script
    "inference code (any framework, with trust)": "loaders.inference_code",
}


def load(artifact: Any, trust: bool | str = False, *, limits: Limits | None = None,
         storage_options: dict | None = None, **options) -> LoadedModel:
    """Open ``artifact`` (path, folder, fsspec URI), pick the loader by content and return a LoadedModel.

    ``trust``: False (default) loads only what cannot run code; True also unpickles types outside the
    allowlist and runs Keras Lambda / remote code / the artifact's own SageMaker inference script; ``"all"`` also
    accepts pickles naming dangerous calls. Loader options (``signature=``, ``version=``, ``host=``...) are passed to
    the framework's loader; ``entry_point=`` loads through that script of the artifact (with trust).

    The artifact is read at most once (:func:`loaders.cache.prepare`): the first load lists, audits, hashes and
    extracts it in one streaming pass and stores the report beside the extraction; a later load of the same
    unchanged file (or URI with the same ETag / version id) reads none of its bytes. Either way the trust gate
    runs on the report before the framework's loader is even imported.

    With ``trust=True`` an artifact whose entry point defines its own request handling (``input_fn``,
    ``predict_fn``, ``output_fn``, ``transform_fn``), or whose model file holds only weights that its ``model_fn``
    builds a network for, is loaded through that script as the SageMaker framework container would
    (:mod:`loaders.inference_code`, whose docstring states the rule). The decision reads the script as text with
    :mod:`ast`, after the trust gate and before anything of the artifact is imported.
    """
    if trust not in (True, False, "all"):
        raise ArtifactError(f"trust must be True, False or 'all', not {trust!r}")
    entry_point = options.pop("entry_point", None)

    def gate(report) -> None:  # before any framework reads a byte: loadable, the trust policy, a loader exists
        if not report.loadable:
            raise NotLoadable(report.not_loadable_reason or f"{report.framework} artifacts cannot be loaded")
        check_trust(report.trust, trust)
        if report.framework not in LOADER_MODULES:
            raise NotLoadable(f"artifact-tools has no loader for {report.framework} artifacts "
                              f"({report.layout} layout); `artifact-tools inspect` tells what is inside")

    report, root = prepare(artifact, limits, storage_options, check=gate)
    base = root / report.root_prefix if report.root_prefix else root
    code = inference_code.plan(report, base, entry_point)  # text only: nothing of the artifact is imported here
    why: str | None
    if entry_point is not None:
        if code is None:  # plan() found no entry point to read (entry_point="" and none in the artifact)
            raise ArtifactError(f"entry_point {entry_point!r} is not a .py file of the artifact")
        why = f"entry_point={entry_point} was asked for"
    else:
        why = inference_code.route(report, code, trust, options)
    if why is not None and code is not None:  # route() gives a reason only for a plan
        if options:
            raise ArtifactError(f"options {', '.join(sorted(options))} are for the {report.framework} loader, but "
                                f"the artifact is loaded through {code.entry_point}; pass no entry_point= to use them")
        log.info("loading %s through %s: %s", report.source, code.entry_point, why)
        model = inference_code.load(base, report, trust=trust, entry_point=entry_point)
        model.info["reason"] = why
        model.report = report
        return model
    name = LOADER_MODULES[report.framework]
    log.info("loading %s with %s", report.source, name)
    module = importlib.import_module(name)
    model = module.load(base, report, trust=trust, **options)
    unused = None if model.info.get("kind") == "inference-code" else inference_code.unused_code_warning(code)
    if unused:
        log.info("%s", unused)
        model.info["warning"] = f"{model.info['warning']}; {unused}" if model.info.get("warning") else unused
    model.report = report
    return model


def read_input(path: str):
    """Prediction input from a file (``-``: standard input), its format told by content (CSV with or without a
    header, JSON, JSON Lines, .npy): the rules of :mod:`artifact_tools.codec`."""
    from artifact_tools import codec

    return codec.read_file(path).data


def format_output(out: Any, fmt: str = "json") -> str:
    """Predictions as ``json``, ``csv`` or ``jsonlines`` text (several outputs kept; :mod:`artifact_tools.codec`)."""
    from artifact_tools import codec

    kinds = {"json": codec.JSON, "csv": codec.CSV, "jsonlines": codec.JSONLINES}
    if fmt not in kinds:
        raise ArtifactError(f"output format must be one of {', '.join(kinds)}, not {fmt!r}")
    return codec.encode(out, kinds[fmt])[0].decode("utf-8").rstrip("\n")
