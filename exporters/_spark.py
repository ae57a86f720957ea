"""Spark ML pipelines for the ``mleap`` target (``bundle.zip``) and the ``sagemaker`` target (the SparkML Serving
layout), both verified by scoring the written bundle with :mod:`loaders.mleap` against the Spark model's own
``transform``. Private: shared by :mod:`exporters.mleap` and :mod:`exporters.sagemaker`.

The pipeline may come from any artifact whose content is a saved Spark model (a folder, a ``model.tar.gz``
holding one...): it is converted from the folder the Spark loader read. Without ``sample=`` the rows come from
:meth:`LoadedModel.sample_input` (built from the pipeline's own stages).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from artifact_tools.archive import open_artifact
from artifact_tools.errors import ArtifactError
from artifact_tools.filetree import DirTree, ZipTree
from loaders.base import LoadedModel

from . import _mleap_bundle as bundle
from ._atomic import staged
from ._common import ExportResult, check, sample_inputs

SPARK_FRAMEWORKS = ("spark", "mleap")


def _saved_folder(loaded: LoadedModel) -> Path:
    """The folder Spark saved the model in, as the loader opened it: the artifact's own folder, or where
    :func:`loaders.cache.prepare` extracted an archive holding one (``info["model_dir"]``)."""
    folder = loaded.info.get("model_dir")
    if folder is None and loaded.report is not None:  # a LoadedModel built before the loader recorded it
        folder = Path(loaded.report.source) / (loaded.report.root_prefix or "")
    if folder is None or not Path(folder).is_dir():
        raise ArtifactError("this Spark model was not loaded from a saved Spark ML folder or an archive holding "
                            "one; load it with loaders.load(path) and export that")
    return Path(folder)


def export_spark(loaded: LoadedModel, target: str, out: Path, force: bool, sample: Any, rtol: float, atol: float,
                 output_column: str | None) -> ExportResult:
    """Write the Spark pipeline ``loaded`` was loaded from for ``target`` (``mleap`` or ``sagemaker``) into the
    folder ``out`` and verify it."""
    if loaded.framework != "spark":
        raise ArtifactError(f"{loaded.framework} models export to mleap or sagemaker only from the Spark pipeline "
                            "they came from")
    source = _saved_folder(loaded)
    frame = sample_inputs(loaded, sample) if sample is not None else loaded.sample_input()
    expected = loaded.predict(frame)
    result = ExportResult(target, "spark", out, samples=len(frame))
    import loaders.mleap as scorer

    with staged(out, force) as tmp:
        if target == "mleap":
            bundle.export_pipeline(source, tmp / "bundle.zip")
            result.files = ["bundle.zip"]
            column = output_column or "prediction"
            got = scorer.load(ZipTree(tmp / "bundle.zip")).predict(frame)
        else:
            serving = bundle.write_sparkml_serving(source, tmp, output_column)
            result.files = ["model.tar.gz", "sparkml_schema.json"]
            result.facts["environment"] = serving.environment
            column = serving.schema["output"]["name"]
            unpacked = tmp / ".opt-ml-model"  # the container unpacks model.tar.gz into /opt/ml/model
            with open_artifact(serving.archive) as art:
                art.extract(unpacked)
            got = scorer.load(DirTree(unpacked)).predict(frame)
            shutil.rmtree(unpacked)
        result.checks.append(check(f"MLeap scoring of column {column!r}", expected[[column]], got[[column]],
                                   rtol, atol, "the bundle scored by loaders.mleap against Spark's transform"))
        result.require_passed()
        result.write(tmp)
    return result
