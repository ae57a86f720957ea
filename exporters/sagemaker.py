"""SageMaker export target: a ``model.tar.gz`` in the layout the framework's SageMaker serving container loads, plus
``sagemaker-model.json`` (image family/version/URI and the environment for ``CreateModel``), verified.

Output folder ``<out>/``: ``model.tar.gz`` (or ``model/``, the same files uncompressed, with ``uncompressed=True``:
for ``CreateModel``'s ``ModelDataSource`` with ``S3DataType=S3Prefix`` and ``CompressionType=None``),
``sagemaker-model.json`` and ``verification.json``. Spark ML pipelines get the SparkML Serving layout instead
(``model.tar.gz`` holding the MLeap bundle, and ``sparkml_schema.json``; :mod:`exporters._spark`).

The layouts, their handlers, images and verification are described in :mod:`exporters._sagemaker_layout`; the
streamed archive writer in :mod:`exporters._tar`; the atomic publication in :mod:`exporters._atomic`.
:func:`repack` replaces the ``code/`` of an existing ``model.tar.gz``, streaming every other member.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel

from ._atomic import staged
from ._common import (
    ExportOptions,
    ExportResult,
    require_sample_for_build,
    signature_sample,
    target_options,
    verification_sample,
)
from ._sagemaker_layout import (
    ARCHIVE,
    BUILDERS,
    IMAGES,
    Layout,
    build_layout,
    code_files,
    csv_body,
    extract_archive,
    json_body,
    keep_all,
    manifest,
    run_handlers,
    sample_count,
    source_predictions,
    xgboost_model_bytes,
)
from ._spark import SPARK_FRAMEWORKS, export_spark
from ._tar import DEFAULT_LEVEL, isal_level, write_contents

__all__ = ["IMAGES", "Layout", "OPTIONS", "SageMakerOptions", "build_layout", "csv_body", "export", "isal_level",
           "json_body", "repack", "run_handlers", "write_layout", "xgboost_model_bytes"]

FOLDER = "model"
MANIFEST = "sagemaker-model.json"
write_layout = write_contents  # the name the layouts were written with before exporters._tar


@dataclass(frozen=True)
class SageMakerOptions(ExportOptions):
    """``compresslevel`` (0-9), ``uncompressed`` (write ``model/`` instead of ``model.tar.gz``), ``code`` (a folder
    with your own ``inference.py`` to use instead of the generated one), ``xgboost_format``, ``version`` (the
    TensorFlow version folder), ``output_column`` (Spark pipelines: the column SparkML Serving returns)."""

    compresslevel: int = DEFAULT_LEVEL
    uncompressed: bool = False
    code: str | os.PathLike | None = field(default=None, metadata={"describe": "a folder"})
    xgboost_format: Literal["ubj", "json"] = "ubj"
    version: int | str | None = None
    output_column: str | None = None


OPTIONS = SageMakerOptions


def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Export ``loaded`` for its SageMaker serving container into the folder ``out`` and verify it (options:
    :class:`SageMakerOptions`)."""
    opts = target_options(SageMakerOptions, options, "sagemaker")
    out = Path(out)
    if loaded.framework in SPARK_FRAMEWORKS:
        return export_spark(loaded, "sagemaker", out, force, opts.sample, opts.rtol, opts.atol, opts.output_column)
    isal_level(opts.compresslevel)
    if loaded.framework not in BUILDERS:
        raise ArtifactError(f"artifact-tools cannot export {loaded.framework} models for SageMaker")
    samples, missing = verification_sample(loaded, opts.sample)
    if samples is None:
        require_sample_for_build(loaded, "sagemaker", missing)
    samples = signature_sample(loaded, samples)  # TensorFlow Serving is fed what the signature takes
    expected = source_predictions(loaded, samples) if samples is not None else None
    result = ExportResult("sagemaker", loaded.framework, out,
                          samples=sample_count(samples) if samples is not None else 0)
    with staged(out, force) as tmp:
        work = tmp / ".work"
        work.mkdir()
        layout = build_layout(loaded, samples, expected, opts.rtol, opts.atol, work,
                              xgboost_format=opts.xgboost_format, version=opts.version, code=opts.code)
        target = tmp / (FOLDER if opts.uncompressed else ARCHIVE)
        result.files = [target.name, MANIFEST]
        names = write_contents(layout, target, archive=not opts.uncompressed, compresslevel=opts.compresslevel)
        result.facts["members"] = len(names)
        model_dir = target if opts.uncompressed else extract_archive(target, work / "opt-ml-model")
        if samples is not None:
            result.checks = layout.verify(model_dir)
        else:
            result.unverified = f"{missing}, so the export was not compared with the source model's predictions"
        shutil.rmtree(work, ignore_errors=True)
        container = manifest(layout, opts.uncompressed)
        (tmp / MANIFEST).write_text(json.dumps(container, indent=2) + "\n")
        result.facts.update({"image_uri": container["image"]["uri"], "image_version": container["image"]["version"],
                             "accepted_image_versions": ", ".join(layout.accepted_images),
                             "environment": layout.environment})
        result.notes += layout.notes + ([str(loaded.info["warning"])] if loaded.info.get("warning") else [])
        result.require_passed()
        result.write(tmp)
    return result


def repack(source: str | os.PathLike, out: str | os.PathLike, *, code: str | os.PathLike | None = None,
           compresslevel: int = DEFAULT_LEVEL, force: bool = False) -> Path:
    """A new ``model.tar.gz`` at ``out`` holding ``source``'s members with its ``code/`` replaced by the files of
    the folder ``code`` (when given), streamed member by member; atomic, refuses an existing ``out``."""
    isal_level(compresslevel)
    layout = Layout("any", source=str(source), rename=keep_all(drop_code=code is not None))
    if code is not None:
        layout.local = code_files(Path(code))
    with staged(out, force, folder=False) as tmp:
        write_contents(layout, tmp, compresslevel=compresslevel)
    return Path(out)
