"""artifact-tools: open trained model artifacts, tell what is inside without running any of it,
rebuild the live model objects, and re-export them for other serving systems.

Core API (no ML framework is imported by this package):

>>> import artifact_tools
>>> report = artifact_tools.inspect("model.tar.gz")      # a Report: framework, layout, files, model facts
>>> print(report.to_json())

Loading lives in the ``loaders`` package (``loaders.load(path)``), exporting in ``exporters``. The package is
typed (PEP 561 ``py.typed``); the JSON Schema of ``Report.to_json()`` ships as ``schema/inspect-1.schema.json``
(``artifact_tools.report.json_schema()``). The library only logs (``logging.getLogger(__name__)``); configuring
handlers, levels and framework noise is the application's business (the CLI does it for its own runs).
"""

from __future__ import annotations

from .archive import Artifact, Limits, open_artifact
from .errors import (ArtifactError, CorruptArtifact, MissingExtra, NotAnArtifact, NotLoadable, TrustRequired,
                     UnsafeArtifact)
from .inspection import inspect
from .report import Report

__version__ = "0.1.0"  # written here only: pyproject.toml reads it (tool.setuptools.dynamic)

__all__ = [
    "Artifact", "ArtifactError", "CorruptArtifact", "Limits", "MissingExtra", "NotAnArtifact", "NotLoadable",
    "Report", "TrustRequired", "UnsafeArtifact", "inspect", "open_artifact", "__version__",
]
