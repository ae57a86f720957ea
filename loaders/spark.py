"""Spark ML loader (extra ``spark``): ``PipelineModel.load`` (or the saved stage's own class) from the unpacked folder.

Spark's saved format (``mllib/src/main/scala/org/apache/spark/ml/util/ReadWrite.scala``): ``metadata/`` holds one
JSON line (``class``, ``timestamp``, ``sparkVersion``, ``uid``, ``paramMap``...) in a text part file — Spark 3 names
it ``part-00000``, Spark 4 ``part-00000-<uuid>-c000.txt``; Spark reads either, since it reads the whole folder.
A pipeline keeps its stages under ``stages/<index>_<uid>/``. The JVM class named in ``metadata`` decides the
Python wrapper class (``org.apache.spark.ml.X`` -> ``pyspark.ml.X``); a class outside ``org.apache.spark.ml`` would
need user code on the JVM classpath, so it is refused unless ``trust=True``.

One local SparkSession is shared by every load in the process (starting one costs 8-15 s); its master is
``local[*]`` unless ``master=`` or ``$ARTIFACT_TOOLS_SPARK_MASTER`` says otherwise.

Input columns: Spark saves no input schema, so the raw input columns of a model and what they hold are derived
from the stages that first read them (:func:`input_columns`): a StringIndexer's labels, a OneHotEncoder's
category sizes, a Bucketizer's splits, the feature count of a predictor (``numFeatures``) or of KMeans' centres,
the sizes of scalers' statistics, a VectorSizeHint's size; a VectorAssembler's inputs produced by no earlier
stage are numbers. :func:`loaders._columns.frame_for` maps rows given without those names onto them (numeric
columns assembled into the one vector column of a lone predictor), cells of vector columns become ML vectors,
and :meth:`LoadedModel.sample_input` builds rows from these facts. Spark's own errors on bad rows come back as
one :class:`ValueError` sentence.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_tools.errors import NotLoadable, TrustRequired
from artifact_tools.sniff import parse_json

from ._columns import InputColumn, frame_for, sample_frame
from .base import LoadedModel, parse_options, require

SAMPLE_VALUES = 3  # distinct recorded values (labels, categories, buckets) a sample row cycles through

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
    if not hasattr(model, "transform"):
        raise NotLoadable(f"the saved {jvm_class.rsplit('.', 1)[-1]} is unfitted (an estimator, no transform); "
                          "fit it and save the fitted model" if jvm_class != "org.apache.spark.ml.Pipeline" else
                          "this is an unfitted Spark Pipeline (an estimator); fit it and save the PipelineModel")

    columns = input_columns(model)

    def predict(data):
        return _transform(spark, model, columns, data)

    summary = entry.summary if entry else {}
    info = {"class": jvm_class, "spark_version_saved": summary.get("spark_version"),
            "spark_version_installed": spark.version, "inputs": [c.name for c in columns],
            "model_dir": str(model_dir)}
    saved = str(summary.get("spark_version") or "")
    if saved and saved.split(".")[0] > spark.version.split(".")[0]:
        info["warning"] = f"saved by Spark {saved}, loaded with Spark {spark.version}"
    return LoadedModel(model, "spark", predict, info=info,
                       sample_fn=lambda: sample_frame(columns, f"Spark {type(model).__name__}"))


def _transform(spark, model, columns: list[InputColumn], data):
    """``model.transform`` of ``data`` (rows mapped onto the input columns) as pandas; Spark's own errors about
    the rows as one ValueError sentence."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    from pyspark.ml.linalg import DenseVector, Vector

    pdf = frame_for(data, columns)
    vectors = [c.name for c in columns if c.kind == "vector" and c.name in pdf.columns]
    if vectors:
        pdf = pdf.copy()
        for name in vectors:
            try:
                pdf[name] = [v if isinstance(v, Vector) else DenseVector([float(x) for x in v]) for v in pdf[name]]
            except (TypeError, ValueError):
                raise ValueError(f"column {name} does not hold vectors of numbers") from None
    try:
        return to_pandas(model.transform(_spark_frame(spark, pdf, vectors)))
    except (PySparkException, Py4JError) as e:
        text = str(e).strip().splitlines()
        raise ValueError(f"Spark rejected the rows: {text[0][:300] if text else type(e).__name__}") from None


def _spark_frame(spark, pdf, vectors: list[str]):
    """A Spark DataFrame of ``pdf``; with ML vector columns the schema is given (Arrow cannot infer vectors)."""
    if not vectors:
        return spark.createDataFrame(pdf)
    import pandas as pd
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import types as T

    fields = []
    for name in pdf.columns:
        col = pdf[name]
        kind: T.DataType
        if name in vectors:
            kind = VectorUDT()
        elif pd.api.types.is_bool_dtype(col):
            kind = T.BooleanType()
        elif pd.api.types.is_integer_dtype(col):
            kind = T.LongType()
        elif pd.api.types.is_float_dtype(col):
            kind = T.DoubleType()
        elif all(v is None or isinstance(v, str) for v in col):
            kind = T.StringType()
        else:  # other Python objects: let Spark infer every column from the rows
            return spark.createDataFrame([tuple(r) for r in pdf.astype(object).itertuples(index=False)],
                                         list(map(str, pdf.columns)))
        fields.append(T.StructField(str(name), kind, True))
    return spark.createDataFrame(pdf, schema=T.StructType(fields))


def _param(stage, name: str):
    """A param's value (set or default), or None when the stage has no such param or it is unset."""
    try:
        if stage.hasParam(name) and stage.isDefined(stage.getParam(name)):
            return stage.getOrDefault(name)
    except Exception:  # noqa: BLE001 - a wrapper without the param machinery
        return None
    return None


def _flat_stages(model) -> list:
    stages = getattr(model, "stages", None)
    if isinstance(stages, list):
        return [s for st in stages for s in _flat_stages(st)]
    return [model]


def _in_out(stage) -> tuple[list[str], list[str]]:
    ins = _param(stage, "inputCols") or ([_param(stage, "inputCol")] if _param(stage, "inputCol") else [])
    outs = _param(stage, "outputCols") or ([_param(stage, "outputCol")] if _param(stage, "outputCol") else [])
    return list(ins), list(outs)


def _vector_size(stage) -> int | None:
    """The feature-vector size a stage records (predictors, clustering, scalers, PCA, VectorSizeHint)."""
    for attr in ("numFeatures",):
        n = getattr(stage, attr, None)
        if isinstance(n, int) and n >= 0 and not isinstance(n, bool):
            return n
    try:
        if hasattr(stage, "clusterCenters"):
            centers = stage.clusterCenters()
            return len(centers[0]) if centers else None
        for attr in ("mean", "std", "originalMin", "maxAbs", "scalingVec", "idf"):
            v = getattr(stage, attr, None)
            if v is not None and hasattr(v, "size") and not callable(v):
                return int(v.size)
        pc = getattr(stage, "pc", None)
        if pc is not None and hasattr(pc, "numRows"):
            return int(pc.numRows)
    except Exception:  # noqa: BLE001 - an attribute the saved model does not have data for
        return None
    size = _param(stage, "size")
    return size if type(stage).__name__ == "VectorSizeHint" and isinstance(size, int) else None


def _bucket_values(splits: list) -> tuple:
    inf = float("inf")
    values = []
    for a, b in zip(splits, splits[1:]):
        values.append(b - 1.0 if a == -inf and b != inf else a + 1.0 if b == inf and a != -inf
                      else 0.0 if a == -inf else (a + b) / 2)
    return tuple(values[:SAMPLE_VALUES])


def input_columns(model) -> list[InputColumn]:
    """The raw input columns of a fitted Spark model or PipelineModel, in the order the stages read them."""
    produced: set[str] = set()
    out: dict[str, InputColumn] = {}

    def need(col: InputColumn) -> None:
        if col.name and col.name not in produced and col.name not in out:
            out[col.name] = col

    for stage in _flat_stages(model):
        kind = type(stage).__name__
        label = f"{kind} {getattr(stage, 'uid', '')}".strip()
        ins, outs = _in_out(stage)
        if kind == "StringIndexerModel":
            arrays = getattr(stage, "labelsArray", None) or [getattr(stage, "labels", [])]
            for i, c in enumerate(ins):
                labels = tuple(arrays[i]) if i < len(arrays) else ()
                need(InputColumn(c, "text", values=labels[:SAMPLE_VALUES], reader=label))
        elif kind == "OneHotEncoderModel":
            sizes = list(getattr(stage, "categorySizes", []) or [])
            for i, c in enumerate(ins):
                size = sizes[i] if i < len(sizes) else 1
                need(InputColumn(c, "number", values=tuple(float(k) for k in range(min(max(size, 1), SAMPLE_VALUES))),
                                 reader=label))
        elif kind == "Bucketizer":
            arrays = _param(stage, "splitsArray") or [_param(stage, "splits") or []]
            for i, c in enumerate(ins):
                need(InputColumn(c, "number", values=_bucket_values(list(arrays[i]) if i < len(arrays) else []),
                                 reader=label))
        elif kind in ("Tokenizer", "RegexTokenizer"):
            for c in ins:
                need(InputColumn(c, "text", values=("a sample text",), reader=label))
        elif kind in ("VectorAssembler", "ImputerModel", "IndexToString", "Binarizer", "SQLTransformer"):
            for c in ins:
                need(InputColumn(c, "number" if kind != "SQLTransformer" else "unknown", reader=label))
        elif _param(stage, "featuresCol") and not ins:
            need(InputColumn(_param(stage, "featuresCol"), "vector", _vector_size(stage), reader=label))
        elif kind in ("VectorSizeHint", "StandardScalerModel", "MinMaxScalerModel", "MaxAbsScalerModel", "PCAModel",
                      "ElementwiseProduct", "Normalizer", "IDFModel", "PolynomialExpansion", "VectorSlicer",
                      "ChiSqSelectorModel", "UnivariateFeatureSelectorModel", "VarianceThresholdSelectorModel"):
            for c in ins:
                need(InputColumn(c, "vector", _vector_size(stage), reader=label))
        else:
            for c in ins:
                need(InputColumn(c, "unknown", reader=label))
        produced.update(outs)
        for p in ("predictionCol", "probabilityCol", "rawPredictionCol"):
            v = _param(stage, p)
            if v:
                produced.add(v)
    return list(out.values())
