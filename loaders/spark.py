"""Spark ML loader (extra ``spark``): ``PipelineModel.load`` (or the saved stage's own class) from the unpacked folder.

Spark's saved format (``mllib/src/main/scala/org/apache/spark/ml/util/ReadWrite.scala``): ``metadata/`` holds one
JSON line (``class``, ``timestamp``, ``sparkVersion``, ``uid``, ``paramMap``...) in a text part file — Spark 3 names
it ``part-00000``, Spark 4 ``part-00000-<uuid>-c000.txt``; Spark reads either, since it reads the whole folder.
A pipeline keeps its stages under ``stages/<index>_<uid>/``. The JVM class named in ``metadata`` decides the
Python wrapper class (``org.apache.spark.ml.X`` -> ``pyspark.ml.X``); a class outside ``org.apache.spark.ml`` would
need user code on the JVM classpath, so it is refused unless ``trust=True``.

One local SparkSession is shared by every load in the process (starting one costs 8-15 s); its master is
``local[*]`` unless ``master=`` or ``$ARTIFACT_TOOLS_SPARK_MASTER`` says otherwise.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_tools.errors import NotLoadable, TrustRequired
from artifact_tools.sniff import parse_json

from .base import LoadedModel, parse_options, require

_session = None


def spark_session(master: str | None = None):
    """The shared local SparkSession (created on first use, reused afterwards)."""
    global _session
    require("pyspark", "spark")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        _session = active
    if _session is None:
        _session = (SparkSession.builder
                    .master(master or os.environ.get("ARTIFACT_TOOLS_SPARK_MASTER", "local[*]"))
                    .appName("artifact-tools")
                    .config("spark.ui.enabled", "false")
                    .config("spark.sql.shuffle.partitions", "4")
                    .config("spark.driver.host", "127.0.0.1")
                    .config("spark.driver.bindAddress", "127.0.0.1")
                    .getOrCreate())
    return _session


def _metadata_class(model_dir: Path) -> str:
    meta = model_dir / "metadata"
    parts = sorted(p for p in meta.iterdir() if p.name.startswith("part-")) if meta.is_dir() else []
    if not parts:
        raise NotLoadable(f"{model_dir} has no metadata/part-* file, so it is not a saved Spark ML model")
    line = parts[0].read_bytes().splitlines()[0] if parts[0].stat().st_size else b""
    return str(parse_json(line, f"{parts[0].name}").get("class", ""))


def python_class(jvm_class: str, trust: bool | str = False):
    """The pyspark wrapper class for a saved JVM class name."""
    if not jvm_class.startswith("org.apache.spark.ml.") and not trust:
        raise TrustRequired(f"the saved model class {jvm_class} is not part of Spark ML; it needs user code on the "
                            "JVM classpath, pass trust=True to try loading it")
    module, _, name = jvm_class.replace("org.apache.spark.ml", "pyspark.ml").rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        try:  # e.g. org.apache.spark.ml.feature.StringIndexerModel lives in pyspark.ml.feature too
            return getattr(importlib.import_module(".".join(module.split(".")[:3])), name)
        except (ImportError, AttributeError):
            raise NotLoadable(f"pyspark has no Python class for {jvm_class}") from None


def to_pandas(df):
    """Spark DataFrame -> pandas, with ML vectors turned into numpy arrays."""
    import numpy as np

    pdf = df.toPandas()
    for col in pdf.columns:
        if len(pdf) and hasattr(pdf[col].iloc[0], "toArray"):
            pdf[col] = [np.asarray(v.toArray()) for v in pdf[col]]
    return pdf


@dataclass(frozen=True)
class SparkOptions:
    """``master``: the Spark master of the shared session when this load starts it (default ``local[*]`` or
    ``$ARTIFACT_TOOLS_SPARK_MASTER``)."""

    master: str | None = None


OPTIONS = SparkOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the saved Spark ML model the report names; options: :class:`SparkOptions`."""
    master = parse_options(SparkOptions, options, "Spark ML artifacts").master
    entry = report.model("spark-ml")
    model_dir = root if entry is None or entry.path in (".", "") else root / entry.path
    jvm_class = _metadata_class(model_dir)
    cls = python_class(jvm_class, trust)
    spark = spark_session(master)
    model = cls.load(str(model_dir))

    def predict(data):
        import pandas as pd

        if isinstance(data, dict):
            data = [data]
        pdf = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        return to_pandas(model.transform(spark.createDataFrame(pdf)))

    summary = entry.summary if entry else {}
    info = {"class": jvm_class, "spark_version_saved": summary.get("spark_version"),
            "spark_version_installed": spark.version}
    saved = str(summary.get("spark_version") or "")
    if saved and saved.split(".")[0] > spark.version.split(".")[0]:
        info["warning"] = f"saved by Spark {saved}, loaded with Spark {spark.version}"
    return LoadedModel(model, "spark", predict, info=info)
