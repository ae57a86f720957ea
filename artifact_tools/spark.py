"""Batch scoring on Spark: :func:`transform` adds prediction columns to a Spark DataFrame.

The model is loaded once per Python worker process, never pickled per task: only the artifact's path or URI
travels with the task, and the worker opens it with :func:`loaders.load`, whose extraction cache (content-hash
folders under ``$ARTIFACT_TOOLS_CACHE``) makes every later load on that machine read no archive bytes. The loaded
model stays in this module's ``_LOADED`` for the life of the worker (PySpark reuses Python workers,
``spark.python.worker.reuse``, default true). Rows travel as Arrow record batches through
``DataFrame.mapInPandas`` (PySpark >= 3.0) -- at most ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows each
(Spark's default 10,000; set it on the session for larger batches) -- each batch predicted with the model's
``predict`` on its feature columns.

Parallelism is Spark's: a DataFrame with fewer partitions than the session's ``defaultParallelism`` (the cores of
``local[N]``, or of all executors) is repartitioned to that many, so that every core gets a task; and each task's
model uses ``spark.task.cpus`` threads (default 1: XGBoost's ``nthread``, and the OpenMP/BLAS pools through
``threadpoolctl`` for the length of each batch's ``predict``), so that N tasks do not each start a thread per core.

On a cluster the same call runs unchanged when the artifact is reachable from every executor -- an ``s3://`` URI
(with the ``s3`` extra and credentials on the executors) or a path on shared storage -- and artifact-tools is
installed on the executors (``pip install`` in the image, or ``spark-submit --py-files artifact_tools.zip``)::

    spark-submit --master yarn score.py   # score.py: artifact_tools.spark.transform(df, "s3://b/model.tar.gz")

:func:`transform_files` is ``artifact-tools transform --engine spark``: Parquet, CSV or JSON in, the same format out.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .errors import ArtifactError

log = logging.getLogger(__name__)

__all__ = ["transform", "transform_files"]

_LOADED: dict = {}  # per Python worker: (artifact, trust) -> LoadedModel
_THREADS: dict = {}  # per Python worker: id of a loaded XGBoost Booster -> the nthread it was given
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where this package sits, for local workers
FORMATS = ("parquet", "csv", "json")


def _load(artifact: str, trust, storage_options):
    key = (artifact, str(trust))
    if key not in _LOADED:
        import loaders

        _LOADED[key] = loaders.load(artifact, trust=trust, storage_options=storage_options)
    return _LOADED[key]


def _predict_limited(model, data, threads: int):
    """``model.predict(data)`` using at most ``threads`` threads (see the module docstring)."""
    if model.framework == "xgboost" and _THREADS.get(id(model.model)) != threads:
        try:
            model.model.set_param({"nthread": threads})
        except Exception:  # noqa: BLE001 -- a booster that takes no parameters predicts as it is
            pass
        _THREADS[id(model.model)] = threads
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return model.predict(data)
    with threadpool_limits(limits=threads):
        return model.predict(data)


def _columns(pred, n: int, name: str):
    """The prediction as ``{column: 1-D array}`` (one column, or ``name_0..`` for several outputs per row)."""
    import numpy as np

    if hasattr(pred, "columns"):
        return {f"{name}_{c}": pred[c].to_numpy() for c in pred.columns}
    if isinstance(pred, dict):
        out = {}
        for k, v in pred.items():
            out.update(_columns(np.asarray(v), n, f"{name}_{k}"))
        return out
    arr = np.asarray(pred)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ArtifactError(f"the model gave {arr.shape[0] if arr.ndim else 1} predictions for {n} rows")
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        return {name: arr.reshape(n)}
    flat = arr.reshape(n, -1)
    return {f"{name}_{i}": flat[:, i] for i in range(flat.shape[1])}


def _spark_type(values):
    from pyspark.sql import types as T

    kind = getattr(values, "dtype", None)
    kind = kind.kind if kind is not None else "O"
    return {"f": T.DoubleType(), "i": T.LongType(), "u": T.LongType(), "b": T.BooleanType()}.get(kind, T.StringType())


def _cast(values, spark_type):
    import numpy as np
    from pyspark.sql import types as T

    if isinstance(spark_type, T.DoubleType):
        return np.asarray(values, dtype=np.float64)
    if isinstance(spark_type, T.LongType):
        return np.asarray(values, dtype=np.int64)
    if isinstance(spark_type, T.BooleanType):
        return np.asarray(values, dtype=bool)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def transform(df, artifact: Any, *, features: list | None = None, prediction_col: str = "prediction",
              trust: bool | str = False, storage_options: dict | None = None, keep_input: bool = True):
    """``df`` with prediction column(s) appended: ``prediction_col`` for one value per row, ``<col>_<i>`` for
    several. ``features``: the columns the model reads, in order (default: every column). The output schema is
    taken from a prediction on the first rows, made on the driver."""
    from pyspark.sql import types as T

    artifact = os.fspath(artifact) if isinstance(artifact, os.PathLike) else str(artifact)
    cols = list(features or df.columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ArtifactError(f"the DataFrame has no column(s) {', '.join(missing[:8])}")
    if not cols:
        raise ArtifactError("the DataFrame has no columns to predict from")
    head = df.select(*cols).limit(8).toPandas()
    if head.empty:
        raise ArtifactError("the DataFrame has no rows")
    model = _load(artifact, trust, storage_options)
    sample = _columns(model.predict(_features(head)), len(head), prediction_col)
    out_fields = [T.StructField(name, _spark_type(values), True) for name, values in sample.items()]
    clash = [f.name for f in out_fields if keep_input and f.name in df.columns]
    if clash:
        raise ArtifactError(f"the DataFrame already has a column {clash[0]}; choose another prediction_col")
    schema = T.StructType((list(df.schema.fields) if keep_input else []) + out_fields)
    types = {f.name: f.dataType for f in out_fields}
    project, trust_, options = _PROJECT, trust, storage_options
    session = df.sparkSession
    threads = max(1, int(session.conf.get("spark.task.cpus", "1") or 1))
    cores = session.sparkContext.defaultParallelism
    if df.rdd.getNumPartitions() < cores:
        df = df.repartition(cores)

    def score(batches):  # runs in the Python worker: the model comes from the worker's own cache
        import sys

        if project not in sys.path:
            sys.path.append(project)
        from artifact_tools import spark as here

        for pdf in batches:
            if pdf.empty:
                continue
            m = here._load(artifact, trust_, options)
            pred = here._columns(here._predict_limited(m, here._features(pdf[cols]), threads), len(pdf),
                                 prediction_col)
            out = pdf if keep_input else pdf.iloc[:, :0]
            out = out.assign(**{k: here._cast(v, types[k]) for k, v in pred.items()})
            yield out

    return df.mapInPandas(score, schema)


def _features(pdf):
    """The feature columns as the model's input: a float64 array when every column is numeric, else the frame."""
    import numpy as np

    if all(np.issubdtype(t, np.number) for t in pdf.dtypes):
        return pdf.to_numpy(dtype=np.float64)
    return pdf


def transform_files(spark, artifact: Any, input: str, output: str, *, fmt: str | None = None,
                    features: list | None = None, trust: bool | str = False, storage_options: dict | None = None,
                    header: bool = False) -> dict:
    """Read ``input`` (Parquet, CSV or JSON, told by ``fmt`` or the file extension), append predictions, write
    ``output`` in the same format (Spark's own committed, atomic-per-job writer); return counts and timings."""
    import time

    fmt = (fmt or _format_of(str(input))).lower()
    if fmt not in FORMATS:
        raise ArtifactError(f"the Spark engine reads {', '.join(FORMATS)}, not {fmt!r}")
    start = time.perf_counter()
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", str(header).lower()).option("inferSchema", "true")
    df = getattr(reader, fmt)(str(input))
    scored = transform(df, artifact, features=features, trust=trust, storage_options=storage_options)
    writer = scored.write.mode("errorifexists")
    if fmt == "csv":
        writer = writer.option("header", str(header).lower())
    getattr(writer, fmt)(str(output))
    return {"engine": "spark", "format": fmt, "output": str(output), "seconds": round(time.perf_counter() - start, 3)}


def _format_of(path: str) -> str:
    base = path.rstrip("/").lower()
    for ext, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".json", "json"), (".jsonl", "json")):
        if base.endswith(ext):
            return fmt
    raise ArtifactError(f"tell the format of {path} (parquet, csv or json): its name does not end with one")
