"""MLeap export target: a saved Spark ML pipeline (a folder, or any artifact holding one) as an MLeap bundle
(``<out>/bundle.zip``), verified.

The bundle is written in pure Python (no JVM, no MLeap JARs) by :mod:`exporters._mleap_bundle`, whose notes give
the MLeap encodings it follows; the verification scores the bundle with :mod:`loaders.mleap` and compares the
output column with Spark's own ``transform`` on the sample rows (:mod:`exporters._spark`). The converter's API
(``export_pipeline``, ``write_sparkml_serving``) is available here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel

from ._common import ExportOptions, ExportResult, target_options
from ._mleap_bundle import MLEAP_VERSION, SparkMLServing, export_pipeline, write_sparkml_serving
from ._spark import SPARK_FRAMEWORKS, export_spark

__all__ = ["MLEAP_VERSION", "MLeapOptions", "OPTIONS", "SparkMLServing", "export", "export_pipeline",
           "write_sparkml_serving"]


@dataclass(frozen=True)
class MLeapOptions(ExportOptions):
    """``output_column``: the column the verification compares (default ``prediction``); ``sample``: rows with the
    pipeline's input columns (default: rows built from the pipeline's own stages, ``LoadedModel.sample_input``)."""

    output_column: str | None = None


OPTIONS = MLeapOptions


def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Write the Spark pipeline of ``loaded`` as ``<out>/bundle.zip`` and verify it (options: :class:`MLeapOptions`)."""
    opts = target_options(MLeapOptions, options, "mleap")
    if loaded.framework not in SPARK_FRAMEWORKS:
        raise ArtifactError(f"the mleap target takes Spark ML pipelines, not {loaded.framework} models")
    return export_spark(loaded, "mleap", Path(out), force, opts.sample, opts.rtol, opts.atol, opts.output_column)
