"""Batch scoring on Spark: :func:`transform` adds prediction columns to a Spark DataFrame.

The model is loaded once per Python worker process, never pickled per task: only the artifact's path or URI
travels with the task, and the worker opens it with :func:`loaders.load`, whose extraction cache (content-hash
folders under ``$ARTIFACT_TOOLS_CACHE``) makes every later load on that machine read no archive bytes. The loaded
model stays in this module's ``_LOADED`` for the life of the worker (PySpark reuses Python workers,
``spark.python.worker.reuse``, default true), keyed by the artifact's path and its identity as the driver saw it
(size, modification time and inode, or the object's ETag...: the batch engine's rule), so that an artifact rewritten
in place is loaded again.

Rows travel to Python as Arrow record batches of at most ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows
(Spark's default 10,000). When the features are numeric and every other column is of a fixed-width type (numbers,
decimals, booleans, dates, timestamps), the whole rows go through ``DataFrame.mapInArrow`` (PySpark >= 3.3): the
worker gives back each record batch's own column arrays untouched (no copy) followed by the prediction arrays, and
the JVM reads the returned Arrow vectors as they are. Otherwise only the feature columns travel, through a scalar
UDF, and only the predictions come back (several prediction columns as one struct, then flattened), the other
columns waiting in the JVM whatever their type: Spark's ``ArrowEvalPython`` keeps a copy of every input row in a
queue and joins the UDF's output to it. Measured on ``local[2]`` (1 million cached rows of 20 doubles, an XGBoost
model; CPU-seconds of the ``java`` process, medians of runs interleaved on a loaded machine), ``mapInArrow`` costs
the JVM about 0.1 s less than the scalar UDF with Spark's ``noop`` sink (of 1.2-1.5 s) and 0.3-0.6 s less with a
Parquet write (of 3.1-3.8 s, 2.1-2.4 s of which the writer takes alone), the Python worker about the same: the
JVM's cost per row is mostly turning the input rows into Arrow (about 0.9 s in its task threads for a
``mapInArrow`` that returns its input), which both routes pay. The nullable double columns travel packed as one
``array<double>`` column (``F.array`` before, ``getItem`` with each column's name and metadata after; two or more of
them, :data:`PACK_MIN`): ``mapInArrow``'s writer measures the Arrow batch's size after every row, column by column,
unless ``spark.sql.execution.arrow.maxBytesPerBatch`` is ``Int.MaxValue`` (Spark 4.3 ``PythonArrowInput``; the
measure took a quarter of the JVM task threads' CPU), and one array column is measured at the cost of one column;
measured on 1 million cached rows of 20 doubles, steady state, the JVM's CPU fell from 1.15-1.50 to 1.00-1.12 s.
The worker reads the array's values as one ``(rows, columns)`` float64 matrix (nulls as NaN), gives the array back
untouched, and Spark cuts it back into the columns. (A user may also set that ``maxBytesPerBatch`` to
2147483647 on their session, which takes the measure away altogether; it is theirs to set, not this module's.)
Non-nullable doubles travel as themselves, as nullability would not survive the array. With Spark 4.3's Arrow cache
(``spark.sql.cache.serializer`` ``ArrowCachedBatchSerializer``), ``mapInArrow`` works where a scalar Arrow or
pandas UDF over the cached rows fails in the JVM (``IndexOutOfBoundsException`` reading the UDF's result;
``mlflow.pyfunc.spark_udf`` too). Numeric features through the scalar UDF go through
an iterator Arrow UDF (``arrow_udf`` with
``Iterator[Tuple[pa.Array, ...]] -> Iterator[pa.Array]``, PySpark >= 4.1); either way each column's Arrow buffer is
copied straight into one C-ordered float64 matrix (nulls as NaN, other numeric types cast by Arrow) and the
predictions go back as Arrow arrays, with no pandas object on the way (a pandas UDF's conversions of every batch to
pandas Series and back cost the worker about twice the Arrow UDF's own 0.25 CPU-second per million rows of 20
doubles, measured on local[2] with a model that returns its input). Other feature types (strings,
booleans, dates...), or an older PySpark, go through an iterator pandas UDF (``Iterator[Tuple[pd.Series, ...]]
-> Iterator[pd.Series]``, PySpark >= 3.0) and reach the model as a pandas DataFrame. Every route joins consecutive
batches into one predict call of up to :data:`CHUNK_ROWS` rows and gives back one output batch per input batch,
in order (Spark's columnar input to Arrow UDFs, ``spark.sql.execution.arrow.pythonUDF.columnarInput.enabled``
over an Arrow-backed source such as ``ArrowCachedBatchSerializer``, requires each output batch to have its input
batch's rows), and a NaN prediction becomes a null, as Spark's pandas conversion makes it.

Parallelism is Spark's: a DataFrame with fewer partitions than the session's ``defaultParallelism`` (the cores of
``local[N]``, or of all executors) is repartitioned to that many, so that every core gets a task; and each task's
model uses ``spark.task.cpus`` threads (default 1: XGBoost's ``nthread``, and the OpenMP/BLAS pools through
``threadpoolctl`` for the length of each batch's ``predict``), so that N tasks do not each start a thread per core.
(PySpark itself starts the workers with ``OMP_NUM_THREADS`` set to ``spark.executor.cores`` when that is set, which
on an executor running several tasks at once is still too many.)

A Spark ML model (a saved ``PipelineModel`` or fitted stage, inspection's ``spark`` framework) is not scored in
Python at all: it is opened on the driver by :func:`loaders.load` (the extraction cache, the trust gate on the
audit's verdict, the JVM class check) in the driver's own session, and :func:`transform` returns the model's own
``transform(df)`` -- the input columns plus every column the stages add (``prediction``, ``probability``...,
named by the pipeline, so ``prediction_col`` does not apply), planned and run in the JVM.

On a cluster the same call runs unchanged, provided artifact-tools is installed on the executors (``pip install``
in the image, or ``spark-submit --py-files artifact_tools.zip``) and the executors can reach the artifact:

- an fsspec URI (``s3://``..., with the ``s3`` extra and credentials on the executors) or a path on storage every
  node mounts: each executor reads it through its own extraction cache::

      spark-submit --master yarn score.py   # score.py: artifact_tools.spark.transform(df, "s3://b/model.tar.gz")

- a file on the driver (``spark-submit --deploy-mode client``, the default): :func:`transform` registers it with
  ``SparkContext.addFile`` once per path, size and modification time, under a name unique to them (two
  ``model.tar.gz`` never clash, and Spark does not unpack it), and a worker that does not see the original path
  opens the copy Spark fetched for it, ``pyspark.SparkFiles.get(name)``. In local mode the workers see the
  original path and open it (``addFile`` still copies the file once into the context's temporary folder). Do not
  add it with ``--files`` yourself: Spark unpacks the ``.tar.gz`` files it fetches. With ``--deploy-mode cluster``
  the driver runs on the cluster too, so give it a URI. A folder artifact is not shipped: put it on shared
  storage or pack it as a ``.tar.gz``.

:func:`transform_files`: Parquet, CSV or JSON in, the same format out, through Spark's own readers and writers
(``artifact-tools transform --engine spark --content-type application/x-parquet``). ``artifact-tools transform
--engine spark`` with any other content type runs the SageMaker Batch Transform job itself as Spark tasks
(:mod:`artifact_tools.batch`, "Spark engine"), through :func:`run_tasks`; :func:`session` is the session every
``--engine spark`` command runs on.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from .errors import ArtifactError

log = logging.getLogger(__name__)

__all__ = ["transform", "transform_files", "session", "run_tasks", "failure_reason"]

_LOADED: dict = {}  # per Python worker: (artifact, trust, identity) -> LoadedModel
_THREADS: dict = {}  # per Python worker: id of a loaded XGBoost Booster -> the nthread it was given
_POOLS: dict = {}  # per Python worker: id of a LoadedModel -> its threadpoolctl.ThreadpoolController (or None)
_SCHEMAS: dict = {}  # per driver: (artifact, trust, identity, features, their types, prediction_col) -> out fields
_SHIPPED: dict = {}  # per driver: (application id, absolute path, identity) -> the name addFile registered it under
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where this package sits, for local workers
FORMATS = ("parquet", "csv", "json")
CHUNK_ROWS = 100_000  # rows per predict call at most (Arrow batches are joined up to this)
CHUNK_BYTES = 32 << 20  # and at most this many bytes of float64 features
PACK_MIN = 2  # nullable double columns that travel packed as one array column through mapInArrow (from this many)


def _identity(artifact: str, storage_options) -> str:
    """What tells a rewritten artifact from the one loaded before under the same path, as the batch engine tells it
    (:func:`artifact_tools.batch.artifact_identity`: a file's size, modification time and inode, every file's of a
    folder, an object's version fields), as a JSON text ("null" when none can be read: the path alone keys the
    cache, as loaders.load would read it)."""
    import json

    from .batch import artifact_identity

    return json.dumps(artifact_identity(artifact, storage_options))


def _load(artifact: str, trust, storage_options, identity: str = "", shipped: str | None = None):
    key = (artifact, str(trust), identity)
    if key not in _LOADED:
        import loaders

        for old in [k for k in _LOADED if k[:2] == key[:2]]:  # the same path rewritten: drop the old model
            _POOLS.pop(id(_LOADED.pop(old)), None)
        _LOADED[key] = loaders.load(_worker_path(artifact, shipped), trust=trust, storage_options=storage_options)
    return _LOADED[key]


def _ship(sc, artifact: str, identity: str) -> str | None:
    """Register the local file ``artifact`` with ``sc.addFile`` (once per application, path and identity) and return
    the name the workers find it under with ``SparkFiles.get``; None for a URI or a folder (not shipped).

    Spark's file server knows a file by its base name only and never replaces one it has registered, and Spark
    unpacks a fetched file whose name ends in ``.tar``, ``.tar.gz`` or ``.tgz`` into the workers' ``SparkFiles``
    folder, which is on their ``sys.path`` (``Utils.fetchFile``, ``worker.py``). So the file is registered through
    a hard link (a copy across file systems; a symbolic link would be resolved back to the original name) named
    ``<digest of path and identity>-<name>.artifact``, made in a folder of the context's own ``SparkFiles`` root
    (removed with the context): two artifacts called ``model.tar.gz``, or one rewritten in place, each get their own
    name, and none is unpacked. The artifact is opened by content, so the name changes nothing else."""
    import hashlib
    import shutil
    import tempfile

    if "://" in artifact or not os.path.isfile(artifact):
        return None
    path = os.path.abspath(artifact)
    key = (sc.applicationId, path, identity)
    if key not in _SHIPPED:
        from pyspark import SparkFiles

        digest = hashlib.sha256(repr((path, identity)).encode()).hexdigest()[:16]
        name = f"{digest}-{os.path.basename(path)}.artifact"
        folder = os.path.join(SparkFiles.getRootDirectory(), "artifact-tools-shipped")
        link = os.path.join(folder, name)
        os.makedirs(folder, exist_ok=True)
        if not os.path.exists(link):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            os.close(fd)
            try:
                os.unlink(tmp)
                try:
                    os.link(path, tmp)
                except OSError:  # another file system (or no hard links): a copy
                    shutil.copyfile(path, tmp)
                os.replace(tmp, link)
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
        sc.addFile(link)
        log.info("shipped %s to the executors as %s", path, name)
        _SHIPPED[key] = name
    return _SHIPPED[key]


def _worker_path(artifact: str, shipped: str | None) -> str:
    """Where a worker opens the artifact: its own path when the worker sees it (local mode, shared storage, a URI),
    else the copy Spark fetched for the worker, ``SparkFiles.get(shipped)``."""
    if shipped is None or os.path.exists(artifact):
        return artifact
    from pyspark import SparkFiles

    copy = SparkFiles.get(shipped)
    if not os.path.isfile(copy):
        raise ArtifactError(f"{artifact} is not on this executor and Spark has no copy of it ({shipped}); put the "
                            "artifact on storage every executor reads (s3://...)")
    return copy


def session(master: str | None = None, app: str = "artifact-tools"):
    """The SparkSession the application's ``--engine spark`` commands run on: the active one when no ``master`` is
    named, else one made (or found) by ``SparkSession.builder`` (``master``; without it ``spark-submit``'s settings,
    else ``local[*]``; Spark's console progress bar off in a session made here, as the commands show their own);
    local workers run this interpreter (its packages) unless ``PYSPARK_PYTHON`` says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ArtifactError("the spark engine needs pyspark: pip install 'artifact-tools[spark]'") from None
    import sys

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    if master is not None and not (master == "yarn" or str(master).startswith(("spark", "k8s", "local"))):
        # spark-submit's own rule (SparkSubmit.prepareSubmitEnvironment), checked before it prints a Java trace
        raise ArtifactError(f"a Spark master is yarn or starts with spark, k8s or local (local[2], "
                            f"spark://host:7077...), not {str(master)[:80]!r}")
    builder = SparkSession.builder.appName(app).config("spark.pyspark.python", sys.executable) \
        .config("spark.ui.showConsoleProgress", "false")  # (the commands show their own progress)
    try:
        made = (builder.master(master) if master else builder).getOrCreate()
    except Exception as e:  # noqa: BLE001 -- a bad master URL, no Java...: one sentence
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        raise ArtifactError(f"Spark could not start{f' on master {master!r}' if master else ''}: "
                            f"{lines[0][:200] if lines else type(e).__name__}") from None
    if not os.environ.get("PYSPARK_PYTHON") and str(made.sparkContext.master).startswith("local"):
        made.sparkContext.pythonExec = sys.executable  # (spark.pyspark.python is read by spark-submit only)
    return made


def run_tasks(spark, target: tuple, tasks: list, description: str) -> list:
    """``function(*arguments, task)`` for each of ``tasks``, ``target`` being ``(module, function name,
    arguments)``, each one Spark task, results in the tasks' order; a progress bar counts the tasks done (Spark's
    status tracker, read every half second while the job runs on a thread of its own).

    The tasks run inside ``DataFrame.mapInArrow`` over a DataFrame of one row per task (its index and the task
    pickled), made from ``parallelize(rows, len(rows))`` so that each partition holds one row: one Spark task per
    task, with no shuffle for adaptive execution to coalesce. Each Python worker runs the task of the row it is
    given and returns its result pickled in one binary cell. Each task travels in its own row, not in the function's
    closure, which every task would unpickle whole (a job of 100,000 tasks would unpickle the list 100,000 times).
    The function is imported by name in the worker, and the arguments pickled here are read there after this
    package's folder is on the worker's path (as the UDFs do): a worker of a local session whose interpreter does
    not have the package installed still finds it."""
    import pickle
    import uuid

    from pyspark import InheritableThread
    from pyspark.sql import types as T

    from . import progress

    sc = spark.sparkContext
    group = f"artifact-tools-{uuid.uuid4().hex}"
    box: dict = {}
    module, name, arguments = target
    packed = pickle.dumps(arguments)
    project = _PROJECT

    def run(batches):
        import importlib
        import pickle
        import sys

        import pyarrow as pa

        if project not in sys.path:
            sys.path.append(project)
        function = getattr(importlib.import_module(module), name)
        args = pickle.loads(packed)
        for batch in batches:
            ids = batch.column(0).to_pylist()
            results = [pickle.dumps(function(*args, pickle.loads(task))) for task in batch.column(1).to_pylist()]
            yield pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), pa.array(results, pa.binary())],
                                             names=["id", "result"])

    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("result", T.BinaryType())])
    given = T.StructType([T.StructField("id", T.LongType()), T.StructField("task", T.BinaryType())])
    rows = [(i, pickle.dumps(task)) for i, task in enumerate(tasks)]

    def collect() -> None:
        try:
            sc.setJobGroup(group, description)  # (this thread's own property: the caller's jobs keep theirs)
            frame = spark.createDataFrame(sc.parallelize(rows, max(1, len(rows))), given)
            got = {row["id"]: pickle.loads(row["result"]) for row in frame.mapInArrow(run, schema).collect()}
            box["results"] = [got[i] for i in range(len(tasks))]
        except BaseException as e:  # noqa: BLE001 -- raised again on the caller's thread
            box["error"] = e

    runner = InheritableThread(target=collect, name="artifact-tools-spark-job", daemon=True)
    done = 0
    with progress.task(description, total=len(tasks), unit="tasks") as advance:
        runner.start()
        try:
            while runner.is_alive():
                runner.join(0.5)
                tracker = sc.statusTracker()
                now = 0
                for job in tracker.getJobIdsForGroup(group):
                    info = tracker.getJobInfo(job)
                    for stage in (info.stageIds if info else []):
                        st = tracker.getStageInfo(stage)
                        now += st.numCompletedTasks if st else 0
                if now > done:
                    advance(now - done)
                    done = now
        except BaseException:  # interrupted: the job's tasks are stopped, not left running
            sc.cancelJobGroup(group)
            raise
        if "results" in box and len(tasks) > done:
            advance(len(tasks) - done)
    if "error" in box:
        raise box["error"]
    return box["results"]


def failure_reason(e: BaseException) -> str:
    """The sentence of a Spark job's failure (what :func:`run_tasks` raised): the last line of the Python error a task
    raised; else what Spark says of the task it lost (``Lost task ... (executor ...): <reason>``, e.g. "Python worker
    exited unexpectedly (crashed)" for a worker killed or out of memory), its Java class name left out; else Spark's
    first line. (Py4J puts ``: `` before the Java lines.)"""
    text = [line.strip().lstrip(":").strip() for line in str(e).strip().splitlines()]
    java = ("org.", "java.", "scala.", "py4j.")
    python = [line for line in text if re.match(r"^\w+(\.\w+)*(Error|Exception): ", line)
              and not line.startswith(java)]
    lost = [line.rsplit("): ", 1)[-1] for line in text if "Lost task" in line and "): " in line]
    if python:
        chosen = python[-1]
    elif lost:  # (Spark 4 adds its advice on faulthandler settings after the reason: left out)
        chosen = re.sub(r"^[\w.$]+(Exception|Error): ", "", lost[-1]).split(". Consider setting ", 1)[0]
    else:
        chosen = text[0] if text and text[0] else type(e).__name__
    return chosen[:300]


def _spark_ml_transform(df, model, keep_input: bool):
    """A Spark ML model's own ``transform(df)``, run in the JVM (see the module docstring); Spark's refusals (a
    missing input column, an output column that exists already) as one sentence."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        out = model.model.transform(df)
    except (PySparkException, Py4JError) as e:
        text = str(e).strip().splitlines()
        raise ArtifactError(f"the Spark ML model cannot transform this DataFrame: "
                            f"{text[0][:300] if text else type(e).__name__}") from None
    return out if keep_input else out.select(*[_ref(out, c) for c in out.columns if c not in df.columns])


def _ref(frame, name: str):
    """The column ``name`` of ``frame``, quoted (a name holding a dot, a space or a backtick means itself, not a
    field of a struct column)."""
    return frame["`" + name.replace("`", "``") + "`"]


def _pools(model):
    """A ``threadpoolctl.ThreadpoolController`` of the worker's native thread pools (OpenMP, BLAS), made once per
    model (made per batch, its scan of the loaded libraries costs milliseconds); None without threadpoolctl."""
    if id(model) not in _POOLS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _POOLS[id(model)] = None
        else:
            _POOLS[id(model)] = ThreadpoolController()
    return _POOLS[id(model)]


def _predict_limited(model, data, threads: int):
    """``model.predict(data)`` using at most ``threads`` threads (see the module docstring)."""
    if model.framework == "xgboost" and _THREADS.get(id(model.model)) != threads:
        try:
            model.model.set_param({"nthread": threads})
        except Exception:  # noqa: BLE001 -- a booster that takes no parameters predicts as it is
            pass
        _THREADS[id(model.model)] = threads
    pools = _pools(model)
    if pools is None:
        return model.predict(data)
    with pools.limit(limits=threads):
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


def _out_fields(df, model, artifact: str, cols: list, prediction_col: str, key: tuple, numeric: bool):
    """The output columns' StructFields, from a prediction on the DataFrame's first rows (made on the driver, once
    per artifact version, features and their types), given to the model as the workers give them: numeric columns
    (decimals too) as one float64 matrix, nulls as NaN."""
    import numpy as np
    from pyspark.sql import types as T

    if key not in _SCHEMAS:
        head = df.select(*[_ref(df, c) for c in cols]).limit(8).toPandas()
        if head.empty:
            raise ArtifactError("the DataFrame has no rows")
        data = head.astype(np.float64).to_numpy() if numeric else _features(head)
        sample = _columns(model.predict(data), len(head), prediction_col)
        _SCHEMAS[key] = [T.StructField(name, _spark_type(values), True) for name, values in sample.items()]
    return _SCHEMAS[key]


def transform(df, artifact: Any, *, features: list | None = None, prediction_col: str = "prediction",
              trust: bool | str = False, storage_options: dict | None = None, keep_input: bool = True):
    """``df`` with prediction column(s) appended: ``prediction_col`` for one value per row, ``<col>_<i>`` for
    several. ``features``: the columns the model reads, in order (default: every column). The output schema is
    taken from a prediction on the first rows, made on the driver. The rows go to Python as Arrow batches through
    ``mapInArrow`` when the features are numeric and the other columns fixed-width, else only the feature columns
    go, through a scalar Arrow or pandas UDF (see the module docstring). A Spark ML artifact gives its model's own
    ``transform(df)`` instead (no Python on the rows); a local file is shipped to the executors with ``addFile``
    (see the module docstring)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    artifact = os.fspath(artifact) if isinstance(artifact, os.PathLike) else str(artifact)
    cols = list(features or df.columns)
    twice = sorted({c for c in df.columns if df.columns.count(c) > 1})
    if twice:
        raise ArtifactError(f"the DataFrame has more than one column named {twice[0]!r}; give its columns distinct "
                            "names")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ArtifactError(f"the DataFrame has no column(s) {', '.join(missing[:8])}")
    if not cols:
        raise ArtifactError("the DataFrame has no columns to predict from")
    identity = _identity(artifact, storage_options)
    model = _load(artifact, trust, storage_options, identity)
    if model.framework == "spark" and hasattr(model.model, "transform"):
        return _spark_ml_transform(df, model, keep_input)
    types_in = tuple(df.schema[c].dataType.simpleString() for c in cols)
    numeric = all(isinstance(df.schema[c].dataType, T.NumericType) for c in cols)
    out_fields = _out_fields(df, model, artifact, cols, prediction_col,
                             (artifact, str(trust), identity, tuple(cols), types_in, prediction_col), numeric)
    clash = [f.name for f in out_fields if keep_input and f.name in df.columns]
    if clash:
        raise ArtifactError(f"the DataFrame already has a column {clash[0]}; choose another prediction_col")
    types = [f.dataType for f in out_fields]
    names = [f.name for f in out_fields]
    session = df.sparkSession
    threads = max(1, int(session.conf.get("spark.task.cpus", "1") or 1))
    cores = session.sparkContext.defaultParallelism
    if df.rdd.getNumPartitions() < cores:
        df = df.repartition(cores)
    shipped = _ship(session.sparkContext, artifact, identity)
    if numeric and hasattr(df, "mapInArrow") and (not keep_input or all(_passes(f.dataType) for f in df.schema)):
        large = str(session.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")).lower() == "true"
        return _map_in_arrow(df if keep_input else df.select(*[_ref(df, c) for c in cols]), out_fields,
                             (artifact, trust, storage_options, identity, shipped), cols, threads, keep_input, large)
    arrow = numeric and hasattr(F, "arrow_udf")
    score = _scorer(artifact, trust, storage_options, identity, shipped, cols, names, types, numeric, threads, arrow)
    one = len(out_fields) == 1
    returns: Any = out_fields[0].dataType if one else T.StructType(out_fields)
    call: Any = (F.arrow_udf if arrow else F.pandas_udf)(score, returns)(*[_ref(df, c) for c in cols])
    if one:
        return df.select(*([_ref(df, c) for c in df.columns] if keep_input else []), call.alias(names[0]))
    inner = "__artifact_tools_prediction"
    while inner in df.columns:
        inner += "_"
    scored = df.select(*([_ref(df, c) for c in df.columns] if keep_input else []), call.alias(inner))
    return scored.select(*([_ref(scored, c) for c in df.columns] if keep_input else []),
                         *[scored[inner].getField(n).alias(n) for n in names])


def _scorer(artifact, trust, options, identity, shipped, cols, names, types, numeric, threads, arrow):
    """The UDF body (Iterator[tuple of Arrow arrays or pandas Series] -> Iterator[Arrow array or pandas Series /
    DataFrame]): it runs in the Python worker, where the model comes from the worker's own cache, and predicts on
    Arrow batches joined up to :data:`CHUNK_ROWS` rows (a forest's predict costs a quarter more on batches of
    Spark's default 10,000 rows)."""
    project = _PROJECT

    def score(batches):
        import sys

        if project not in sys.path:
            sys.path.append(project)
        from artifact_tools import spark as here

        model = here._load(artifact, trust, options, identity, shipped)
        limit = max(1, min(here.CHUNK_ROWS, here.CHUNK_BYTES // (8 * len(cols))))
        chunk = here._score_arrow if arrow else here._score_chunk
        for parts in here._chunks(batches, limit):
            yield from here._split(chunk(model, parts, cols, names, types, numeric, threads), parts)

    # the type hints that make it a SCALAR_ITER UDF, as objects (this module's annotations are strings)
    if arrow:
        import pyarrow as pa

        score.__annotations__ = {"batches": Iterator[tuple[pa.Array, ...]], "return": Iterator[pa.Array]}
    else:
        import pandas as pd

        score.__annotations__ = {"batches": Iterator[tuple[pd.Series, ...]],
                                 "return": Iterator[pd.Series if len(names) == 1 else pd.DataFrame]}
    return score


def _split(result, parts: list):
    """``result`` (an Arrow array or pandas object of the rows of every batch in ``parts``) cut back into one
    result per input batch, in order: Spark's columnar Arrow input (``spark.sql.execution.arrow.pythonUDF.
    columnarInput.enabled`` over an Arrow-backed source) requires each UDF output batch to match its input batch."""
    if len(parts) == 1:
        yield result
        return
    at = 0
    for p in parts:
        m = len(p[0])
        yield result[at:at + m] if hasattr(result, "slice") else result.iloc[at:at + m].reset_index(drop=True)
        at += m


def _passes(spark_type) -> bool:
    """Whether a column that is not a feature goes through ``mapInArrow`` (and back, unchanged) rather than waiting
    in the JVM: the fixed-width types (numbers, decimals, booleans, dates, timestamps), whose trip costs about what
    the scalar UDF's copy of the row costs. Strings, binary, arrays, maps, structs (of any size: a long text or an
    image would cross to Python and back for nothing), Spark ML vectors and other user-defined types, intervals
    and null columns keep the scalar UDF."""
    from pyspark.sql import types as T

    fixed = (T.NumericType, T.BooleanType, T.DateType, T.TimestampType)
    return isinstance(spark_type, fixed + ((T.TimestampNTZType,) if hasattr(T, "TimestampNTZType") else ()))


def _map_in_arrow(df, out_fields: list, source: tuple, cols: list, threads: int, keep_input: bool, large: bool):
    """``df`` scored through ``mapInArrow``: whole Arrow record batches to the Python worker, which gives back each
    batch's own column arrays unchanged (no copy) followed by the prediction arrays (``keep_input``), or the
    predictions alone. See the module docstring for why this costs the JVM less than a scalar UDF, and for the
    nullable double columns travelling packed as one ``array<double>`` (from :data:`PACK_MIN` of them). The columns
    travel under names of their own (``c0``, ``c1``... and ``p0``... for the predictions), given back theirs after:
    PySpark's ``mapInArrow`` refers to the frame's columns by their bare names, which a name holding a dot or a
    backtick breaks."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    names = [f.name for f in out_fields]
    types = [f.dataType for f in out_fields]
    packed = [f.name for f in df.schema if isinstance(f.dataType, T.DoubleType) and f.nullable]
    packed = packed if len(packed) >= PACK_MIN else []
    pack = "packed"
    own = [c for c in df.columns if c not in packed]
    trip = df.select(*[_ref(df, c).alias(f"c{i}") for i, c in enumerate(own)],
                     *([F.array(*[_ref(df, c) for c in packed]).alias(pack)] if packed else []))
    # where each feature is in a batch: ("packed", index in the array) or ("column", index of its own column)
    where = [("packed", packed.index(c)) if c in packed else ("column", own.index(c)) for c in cols]
    at_pack = len(own)
    travel = [T.StructField(f"p{j}", f.dataType, f.nullable, f.metadata) for j, f in enumerate(out_fields)]
    schema = T.StructType((list(trip.schema.fields) if keep_input else []) + travel)
    travel_names = [f.name for f in travel]
    project = _PROJECT

    def score(batches):
        import sys

        if project not in sys.path:
            sys.path.append(project)
        from artifact_tools import spark as here

        model = here._load(*source)
        limit = max(1, min(here.CHUNK_ROWS, here.CHUNK_BYTES // (8 * len(where))))
        split = (lambda b: here._feature_arrays(b, where, at_pack, len(packed))) if packed else \
            (lambda b: tuple(b.column(i) for _, i in where))
        for parts in here._chunks((split(b) + (b,) for b in batches), limit):
            yield from here._score_batches(model, parts, travel_names, types, threads, keep_input, large)

    out = trip.mapInArrow(score, schema)
    fields = {f.name: f for f in df.schema}
    back = [(out[pack][packed.index(c)] if c in packed else out[f"c{own.index(c)}"]).alias(c,
                                                                                          metadata=fields[c].metadata)
            for c in (df.columns if keep_input else [])]
    return out.select(*back, *[out[f"p{j}"].alias(n) for j, n in enumerate(names)])


def _feature_arrays(batch, where: list, at_pack: int, width: int) -> tuple:
    """The feature columns of a record batch whose nullable doubles travel packed (see :func:`_map_in_arrow`):
    the packed ones as float64 numpy columns of the array's values (views of one ``(rows, width)`` matrix, nulls
    as NaN), the others as the batch's own Arrow arrays."""
    import pyarrow as pa

    lists = batch.column(at_pack)
    values = lists.flatten()  # (Spark's arrays of these columns are never null, each holds ``width`` values)
    if len(values) != len(lists) * width:
        raise ArtifactError(f"a packed batch holds {len(values)} values for {len(lists)} rows of {width} columns")
    matrix = values.to_numpy(zero_copy_only=False) if values.type == pa.float64() else \
        values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    matrix = matrix.reshape(len(lists), width)
    if len(where) == width and all(w == ("packed", i) for i, w in enumerate(where)):
        return (matrix,)  # every feature, in order: the matrix itself (one copy into the predict matrix)
    return tuple(matrix[:, i] if kind == "packed" else batch.column(i) for kind, i in where)


def _score_batches(model, parts: list, names: list, types: list, threads: int, keep_input: bool, large: bool):
    """Predictions on record batches (each part: its feature columns, then the batch itself), one output batch
    per input batch: the batch's columns as they came (``keep_input``) and the prediction columns."""
    import pyarrow as pa

    arrays = _arrow_predictions(model, [p[:-1] for p in parts], names, types, threads, large)
    at = 0
    for p in parts:
        batch = p[-1]
        m = batch.num_rows
        own = (batch.columns, batch.schema.names) if keep_input else ([], [])
        yield pa.RecordBatch.from_arrays(own[0] + [a.slice(at, m) for a in arrays], names=own[1] + names)
        at += m


def _chunks(batches, limit: int):
    """Lists of consecutive batches (tuples of columns; a lone column, as PySpark passes a UDF of one argument,
    made a tuple of one) holding about ``limit`` rows each."""
    parts: list = []
    rows = 0
    for batch in batches:
        if not isinstance(batch, tuple):
            batch = (batch,)
        parts.append(batch)
        rows += len(batch[0])
        if rows >= limit:
            yield parts
            parts, rows = [], 0
    if parts:
        yield parts


def _predictions(model, data, n: int, names: list, types: list, threads: int) -> list:
    """The model's predictions on ``data`` (``n`` rows), one array per output column, of the output types."""
    pred = _columns(_predict_limited(model, data, threads), n, "p")
    if len(pred) != len(names):
        raise ArtifactError(f"the model gave {len(pred)} prediction columns, not the {len(names)} of its first "
                            "rows")
    return [_cast(v, t) for v, t in zip(pred.values(), types)]


def _score_arrow(model, parts: list, cols: list, names: list, types: list, numeric: bool, threads: int):
    """Predictions on Arrow batches of numeric columns (see :func:`_arrow_predictions`) as one Arrow array (a
    struct array for several columns)."""
    import pyarrow as pa

    arrays = _arrow_predictions(model, parts, names, types, threads)
    return arrays[0] if len(arrays) == 1 else pa.StructArray.from_arrays(arrays, names)


def _arrow_predictions(model, parts: list, names: list, types: list, threads: int, large: bool = False) -> list:
    """Predictions on Arrow batches of numeric columns (``parts``: per batch, its feature arrays), one Arrow array
    per output column: one C-ordered float64 matrix filled from each column's buffer (a float64 column without
    nulls is read in place; others are cast by Arrow, nulls becoming NaN); NaN predictions as null, as
    ``pa.Array.from_pandas`` makes them in a pandas UDF; strings as Arrow ``large_string`` when ``large``
    (``spark.sql.execution.arrow.useLargeVarTypes``)."""
    import numpy as np
    import pyarrow as pa

    n = sum(len(p[0]) for p in parts)
    width = sum(a.shape[1] if getattr(a, "ndim", 1) == 2 else 1 for a in parts[0]) if parts else 0
    data = np.empty((n, width), dtype=np.float64)
    at = 0
    for p in parts:
        m = len(p[0])
        j = 0
        for arr in p:
            if isinstance(arr, np.ndarray):  # packed doubles: a column, or every feature at once (a matrix)
                if arr.ndim == 2:
                    data[at:at + m, j:j + arr.shape[1]] = arr
                    j += arr.shape[1]
                    continue
            else:
                if arr.type != pa.float64() or arr.null_count:
                    arr = arr.cast(pa.float64(), safe=False)
                arr = arr.to_numpy(zero_copy_only=False)
            data[at:at + m, j] = arr
            j += 1
        at += m
    values = _predictions(model, data, n, names, types, threads) if n else [_cast(np.empty(0), t) for t in types]
    kinds = {"double": pa.float64(), "bigint": pa.int64(), "boolean": pa.bool_(),
             "string": pa.large_string() if large else pa.string()}
    return [pa.array(v, type=kinds[t.simpleString()], from_pandas=True) for v, t in zip(values, types)]


def _score_chunk(model, parts: list, cols: list, names: list, types: list, numeric: bool, threads: int):
    """Predictions on pandas batches (see :func:`_score_arrow`): numeric columns copied into one float64 matrix,
    others joined into one pandas DataFrame."""
    import numpy as np
    import pandas as pd

    n = sum(len(p[0]) for p in parts)
    if n == 0:
        empty = {name: pd.Series(_cast(np.empty(0), t)) for name, t in zip(names, types)}
        return empty[names[0]] if len(names) == 1 else pd.DataFrame(empty)
    if numeric:  # one float64 matrix filled straight from the columns, no DataFrame in between
        data: Any = np.empty((n, len(cols)), dtype=np.float64)
        at = 0
        for p in parts:
            m = len(p[0])
            for j, s in enumerate(p):
                data[at:at + m, j] = s.to_numpy() if s.dtype.kind == "f" else s.to_numpy(np.float64, na_value=np.nan)
            at += m
    else:
        frames = [pd.DataFrame(dict(zip(cols, (s.reset_index(drop=True) for s in p)))) for p in parts]
        data = _features(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
    values = _predictions(model, data, n, names, types, threads)
    if len(names) == 1:
        return pd.Series(values[0])
    return pd.DataFrame(dict(zip(names, values)))


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
