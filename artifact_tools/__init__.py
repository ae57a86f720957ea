"""artifact-tools: open trained model artifacts, tell what is inside without running any of it,
rebuild the live model objects, and re-export them for other serving systems.

Core API (no ML framework is imported by this package):

>>> import artifact_tools
>>> report = artifact_tools.inspect("model.tar.gz")      # a Report: framework, layout, files, model facts
>>> print(report.to_json())

Offline scoring with SageMaker Batch Transform's parameters: ``artifact_tools.transform(artifact, input, output,
...)`` (:func:`artifact_tools.batch.transform`, imported when first used; on Spark: ``artifact_tools.spark``).

Loading lives in the ``loaders`` package (``loaders.load(path)``), exporting in ``exporters``. The package is
typed (PEP 561 ``py.typed``); the JSON Schema of ``Report.to_json()`` ships as ``schema/inspect-1.schema.json``
(``artifact_tools.report.json_schema()``). The library only logs (``logging.getLogger(__name__)``); configuring
handlers, levels and framework noise is the application's business (the CLI does it for its own runs).
"""

from __future__ import annotations

from .archive import Artifact, Limits, open_artifact
from .errors import (
    ArtifactError,
    CorruptArtifact,
    MissingExtra,
    NotAnArtifact,
    NotLoadable,
    TrustRequired,
    UnsafeArtifact,
)
from .inspection import inspect
from .report import Report

__version__ = "0.1.0"  # written here only: pyproject.toml reads it (tool.setuptools.dynamic)



def __getattr__(name: str):
    """``artifact_tools.transform``: the batch command of the application layer, imported only when asked for, so
    ``import artifact_tools`` stays framework- and loader-free (PEP 562)."""
    if name == "transform":
        from .batch import transform

        return transform
    raise AttributeError(f"module 'artifact_tools' has no attribute {name!r}")


__all__ = [
    "Artifact", "ArtifactError", "CorruptArtifact", "Limits", "MissingExtra", "NotAnArtifact", "NotLoadable",
    "Report", "TrustRequired", "UnsafeArtifact", "inspect", "open_artifact", "transform", "__version__",
]
