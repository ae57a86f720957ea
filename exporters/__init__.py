"""Exporters: write a model for another serving system, then prove the output serves the same predictions.

>>> import exporters
>>> result = exporters.export("model.tar.gz", "sagemaker", "out/")      # or a LoadedModel, or a fitted model
>>> print(result.summary())

Targets (``target=``): ``sagemaker`` (:mod:`exporters.sagemaker`; Spark pipelines get the SparkML Serving layout),
``tf-serving`` (:mod:`exporters.tf_serving`), ``git`` (:mod:`exporters.git_container`), ``mleap`` (Spark
pipelines, :mod:`exporters.mleap`), ``mlflow`` (an MLflow Model with the native flavor and python_function,
optionally registered; :mod:`exporters.mlflow`) and ``onnx`` (:mod:`exporters.onnx`: one ``model.onnx`` verified
with onnxruntime; MXNet built-ins and symbol graphs are built without MXNet by ``exporters._onnx_mxnet``). Each target
module is imported only when it is asked for; targets never import each other, only the shared private modules
(``exporters._*``: results and options, atomic publication, the tar writer, the SageMaker layouts, SavedModels,
MLeap bundles, the MXNet ONNX graph builder).

The source is an artifact (path, folder, URI: loaded with :func:`loaders.load`), a :class:`loaders.LoadedModel`,
or a model trained in this process: a scikit-learn estimator, an ``xgboost.Booster`` (or its scikit-learn
wrapper), a Keras model, a ``torch.nn.Module``, a Gluon block, a ``transformers`` pipeline.

Options are typed per target (``OPTIONS`` of each target module, e.g. :class:`exporters.sagemaker.SageMakerOptions`);
text values (``-o KEY=VALUE`` on the command line) are converted to the field's type and an unknown option is
refused, naming the known ones, before anything is loaded.

Every output is a folder that appears atomically (:mod:`exporters._atomic`): an existing one is refused unless
``force=True``. Before it appears, the exporter re-opens what it wrote the way the target would and compares
the predictions with the source model's on sample inputs (``sample=`` an array, DataFrame, list of texts or a
.csv/.json/.npy path; otherwise rows are generated from the input shape the model declares). A failed check
raises :class:`ExportVerificationFailed` and nothing is published. The verification report is printed by
``ExportResult.summary()`` and saved as ``<out>/verification.json``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from artifact_tools.errors import ArtifactError

from ._common import Check, ExportResult, ExportVerificationFailed, as_loaded, compare, sample_inputs, target_options

__all__ = ["TARGETS", "Check", "ExportResult", "ExportVerificationFailed", "as_loaded", "compare", "export",
           "sample_inputs", "target_module"]

TARGETS = ("sagemaker", "tf-serving", "git", "mleap", "onnx", "mlflow")
_MODULES = {"sagemaker": "exporters.sagemaker", "tf-serving": "exporters.tf_serving",
            "git": "exporters.git_container", "mleap": "exporters.mleap", "onnx": "exporters.onnx",
            "mlflow": "exporters.mlflow"}


def target_module(target: str) -> ModuleType:
    """The module of an export target, imported now (its ``export`` function and ``OPTIONS`` dataclass)."""
    if target not in _MODULES:
        raise ArtifactError(f"unknown export target {target!r}; choose one of {', '.join(TARGETS)}")
    return importlib.import_module(_MODULES[target])


def export(loaded_or_path: Any, target: str, out: str | os.PathLike, *, force: bool = False,
           trust: bool | str = False, **options: Any) -> ExportResult:
    """Export a model (artifact path, LoadedModel or live model object) to ``target`` in the folder ``out``.

    Options common to all targets: ``sample`` (inputs for verification), ``rtol``/``atol`` (tolerances, default
    1e-4/1e-5). Target options are the fields of each target's ``OPTIONS`` dataclass; unknown ones are refused.
    """
    module = target_module(target)
    target_options(module.OPTIONS, options, target)  # refused before the model is loaded
    if isinstance(loaded_or_path, (str, os.PathLike)):
        import loaders

        loaded = loaders.load(loaded_or_path, trust=trust)
    else:
        loaded = as_loaded(loaded_or_path)
    if loaded.framework == "pytorch" and not hasattr(loaded.model, "forward"):
        raise ArtifactError("the PyTorch artifact holds weights only; load it with loaders.load(path, "
                            "module=<the network>) and export that LoadedModel")
    return module.export(loaded, Path(out), force=force, **options)
