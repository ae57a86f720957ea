"""The Spark engine of batch transform on ``local[2]``: predictions equal the frameworks' own, for XGBoost and
scikit-learn, the model loaded in the Python workers from the artifact path (never pickled with the tasks)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import booster_predict, sklearn_reference

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import build_sklearn, build_xgboost, make_data, tar_folder  # noqa: E402

from artifact_tools.errors import ArtifactError  # noqa: E402


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    d = tmp_path_factory.mktemp("spark-transform-models")
    return {"xgb": build_xgboost(d), "sk": build_sklearn(d)}


@pytest.fixture(scope="module", autouse=True)
def workers_use_this_python(spark):
    """Python workers run this interpreter (with pyarrow and the frameworks), not the first python3 on PATH.
    (Belongs in conftest's session as ``spark.pyspark.python``; set here until it is.)"""
    sc = spark.sparkContext
    saved = sc.pythonExec
    sc.pythonExec = sys.executable
    yield
    sc.pythonExec = saved


def frame(spark, X, ids=True):
    import pandas as pd

    pdf = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    if ids:
        pdf.insert(0, "id", np.arange(len(X)))
    return spark.createDataFrame(pdf).repartition(3)


def test_xgboost_on_local2(spark, arts):
    from artifact_tools.spark import transform

    X = make_data(n=500, seed=5)[0].astype(np.float64)
    df = frame(spark, X)
    out = transform(df, arts["xgb"], features=["f0", "f1", "f2", "f3"]).toPandas().sort_values("id")
    assert list(out.columns) == ["id", "f0", "f1", "f2", "f3", "prediction"]
    assert np.allclose(out["prediction"].to_numpy(), booster_predict(arts["xgb"], X), atol=1e-6)


def test_sklearn_on_local2_and_files(spark, arts, tmp_path):
    from artifact_tools.spark import transform, transform_files

    X = make_data(n=300, seed=9)[0].astype(np.float64)
    expected = sklearn_reference(arts["sk"]).predict(X)
    out = transform(frame(spark, X, ids=False), arts["sk"]).toPandas()
    order = np.lexsort(X.T[::-1])
    got_order = np.lexsort(out[["f0", "f1", "f2", "f3"]].to_numpy().T[::-1])
    assert np.array_equal(out["prediction"].to_numpy()[got_order], expected[order])
    frame(spark, X).write.parquet(str(tmp_path / "in.parquet"))
    summary = transform_files(spark, arts["sk"], str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"),
                              features=["f0", "f1", "f2", "f3"])
    import pandas as pd

    back = pd.read_parquet(tmp_path / "out.parquet").sort_values("id")
    assert summary["format"] == "parquet" and np.array_equal(back["prediction"].to_numpy(), expected)


def test_fewer_partitions_than_cores_are_spread_over_every_core(spark, arts):
    """One partition on local[2] would leave a core idle: the scored DataFrame has at least defaultParallelism."""
    from artifact_tools.spark import transform

    X = make_data(n=200, seed=2)[0].astype(np.float64)
    df = frame(spark, X).coalesce(1)
    assert df.rdd.getNumPartitions() == 1
    out = transform(df, arts["xgb"], features=["f0", "f1", "f2", "f3"])
    assert out.rdd.getNumPartitions() >= spark.sparkContext.defaultParallelism >= 2
    got = out.toPandas().sort_values("id")
    assert np.allclose(got["prediction"].to_numpy(), booster_predict(arts["xgb"], X), atol=1e-6)


def test_bad_columns_are_one_sentence(spark, arts):
    from artifact_tools.spark import transform

    df = frame(spark, np.zeros((3, 4)))
    with pytest.raises(ArtifactError, match="no column"):
        transform(df, arts["xgb"], features=["nope"])
    with pytest.raises(ArtifactError, match="already has a column"):
        transform(df, arts["xgb"], features=["f0", "f1", "f2", "f3"], prediction_col="id")


def multiclass_xgboost(out: Path) -> Path:
    """An XGBoost ``multi:softprob`` model (three probabilities a row) in the built-in algorithm's layout."""
    import tempfile

    import xgboost as xgb

    X, y = make_data(n=300, classes=3, seed=4)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgb.DMatrix(X, label=y), 8)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
        return tar_folder(Path(d), out / "multiclass.tar.gz")


def test_several_outputs_become_columns_and_other_columns_stay_in_the_jvm(spark, tmp_path):
    """Three probabilities a row: prediction_0..2, each equal to XGBoost's own; a vector column (a Spark ML type
    Arrow cannot carry) is kept as it was since only the features go to Python; keep_input=False gives only the
    predictions."""
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql import types as T

    from artifact_tools.spark import transform

    art = multiclass_xgboost(tmp_path)
    X = make_data(n=400, seed=8)[0].astype(np.float64)
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("v", VectorUDT())]
                          + [T.StructField(f"f{j}", T.DoubleType()) for j in range(4)])
    rows = [(i, Vectors.dense([float(i), -1.0]), *map(float, X[i])) for i in range(len(X))]
    df = spark.createDataFrame(rows, schema).repartition(3)
    expected = booster_predict(art, X)
    assert expected.shape == (400, 3)
    out = transform(df, art, features=["f0", "f1", "f2", "f3"])
    assert udf_eval_types(out) == [ARROW_ITER] and not map_in_arrow(out)  # a vector cannot travel in Arrow
    assert out.columns == ["id", "v", "f0", "f1", "f2", "f3", "prediction_0", "prediction_1", "prediction_2"]
    got = out.toPandas().sort_values("id")
    assert np.allclose(got[["prediction_0", "prediction_1", "prediction_2"]].to_numpy(), expected, atol=1e-6)
    assert [list(v) for v in got["v"]] == [[float(i), -1.0] for i in range(len(X))]
    only = transform(df, art, features=["f0", "f1", "f2", "f3"], keep_input=False)
    assert map_in_arrow(only) and only.columns == ["prediction_0", "prediction_1", "prediction_2"]
    assert np.allclose(np.sort(only.toPandas().to_numpy(), axis=0), np.sort(expected, axis=0), atol=1e-6)


def test_an_artifact_rewritten_in_place_is_loaded_again(spark, arts, tmp_path):
    """The Python workers outlive a call: after the file at the same path holds another model, the next transform
    predicts with the new one (the workers' cache is keyed by the file's size and modification time too)."""
    import os
    import shutil

    from artifact_tools.spark import transform

    X = make_data(n=200, seed=3)[0].astype(np.float64)
    df = frame(spark, X)
    path = tmp_path / "model.tar.gz"
    shutil.copyfile(arts["xgb"], path)
    first = transform(df, path, features=["f0", "f1", "f2", "f3"]).toPandas().sort_values("id")
    assert np.allclose(first["prediction"].to_numpy(), booster_predict(arts["xgb"], X), atol=1e-6)
    other = multiclass_xgboost(tmp_path / "other")
    shutil.copyfile(other, path)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = transform(df, path, features=["f0", "f1", "f2", "f3"]).toPandas().sort_values("id")
    assert np.allclose(second[["prediction_0", "prediction_1", "prediction_2"]].to_numpy(), booster_predict(other, X),
                       atol=1e-6)


# --- Spark ML pipelines run their own transform; local artifacts shipped with addFile (issue 12) ---------------

PYTHON_EVAL = ("ArrowEvalPython", "BatchEvalPython", "MapInPandas", "MapInArrow", "FlatMapGroupsInPandas")


def python_in_plan(df) -> list[str]:
    """The Python-evaluation nodes in the DataFrame's query plan (physical plan included)."""
    plan = df._jdf.queryExecution().toString()
    return [node for node in PYTHON_EVAL if node in plan]


@pytest.fixture(scope="module")
def spark_pipeline(spark, tmp_path_factory):
    """A fitted Spark ML pipeline (StringIndexer, VectorAssembler, LogisticRegression) saved by Spark, its
    model.tar.gz, and rows with an id column the pipeline does not read."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    rng = np.random.default_rng(12)
    n = 400
    a, b, cat = rng.normal(size=n), rng.normal(size=n), rng.choice(["x", "y", "z"], n)
    rows = [(i, float(a[i]), float(b[i]), str(cat[i]), float(int(a[i] - b[i] + (cat[i] == "x") > 0)))
            for i in range(n)]
    df = spark.createDataFrame(rows, ["id", "a", "b", "cat", "label"])
    model = Pipeline(stages=[StringIndexer(inputCol="cat", outputCol="cat_i", handleInvalid="keep"),
                             VectorAssembler(inputCols=["a", "b", "cat_i"], outputCol="features"),
                             LogisticRegression(maxIter=20)]).fit(df)
    d = tmp_path_factory.mktemp("spark-pipeline")
    model.write().save(str(d / "model"))
    return d / "model", tar_folder(d / "model", d / "model.tar.gz"), df.drop("label").repartition(3)


def test_spark_pipeline_runs_its_own_transform_in_the_jvm(spark, spark_pipeline, arts):
    """A Spark ML artifact gives exactly what PipelineModel.load(folder).transform gives, planned with no Python
    evaluation node (a Python model's transform, scored the other way, has one)."""
    from pyspark.ml import PipelineModel

    import artifact_tools
    from artifact_tools.spark import transform

    folder, art, df = spark_pipeline
    assert artifact_tools.inspect(art).framework == "spark"
    out = transform(df, art)
    assert python_in_plan(out) == []
    want = PipelineModel.load(str(folder)).transform(df)
    assert out.columns == want.columns and out.columns[:4] == ["id", "a", "b", "cat"]
    got, want_pd = out.toPandas().sort_values("id"), want.toPandas().sort_values("id")
    assert len(got) == 400
    np.testing.assert_array_equal(got["prediction"].to_numpy(), want_pd["prediction"].to_numpy())
    np.testing.assert_array_equal(np.stack([v.toArray() for v in got["probability"]]),
                                  np.stack([v.toArray() for v in want_pd["probability"]]))
    assert set(want_pd["prediction"]) == {0.0, 1.0}
    only = transform(df, art, keep_input=False)
    assert only.columns == [c for c in want.columns if c not in df.columns] and "prediction" in only.columns
    assert python_in_plan(transform(frame(spark, np.zeros((4, 4))), arts["xgb"], features=["f0", "f1", "f2", "f3"]))


def test_spark_pipeline_passes_the_trust_gate_first(spark, spark_pipeline, tmp_path):
    """A stage class outside Spark ML (user code on the JVM class path) is refused by the audit's verdict, the
    same gate loaders.load applies, before anything is loaded; a Spark refusal of the rows is one sentence."""
    import shutil

    from artifact_tools.errors import TrustRequired
    from artifact_tools.spark import transform

    folder, art, df = spark_pipeline
    work = tmp_path / "model"
    shutil.copytree(folder, work)
    metadata = [m for m in (work / "stages").glob("*/metadata") if "LogisticRegression" in m.parent.name]
    assert len(metadata) == 1
    for part in metadata[0].glob("part-*"):
        text = part.read_text()
        assert "org.apache.spark.ml.classification.LogisticRegressionModel" in text
        part.write_text(text.replace("org.apache.spark.ml.classification.LogisticRegressionModel",
                                     "com.example.EvilModel"))
    for crc in metadata[0].glob(".*crc"):
        crc.unlink()
    evil = tar_folder(work, tmp_path / "evil.tar.gz")
    with pytest.raises(TrustRequired, match="com.example.EvilModel"):
        transform(df, evil)
    with pytest.raises(ArtifactError, match="cannot transform this DataFrame"):
        transform(df.drop("cat"), art)


def test_a_local_artifact_is_shipped_with_addfile_under_its_own_name(spark, arts, tmp_path):
    """The driver registers a local file once per path and version, under a name no other model.tar.gz takes and
    that Spark does not unpack; a worker that does not see the original path opens the SparkFiles copy, one that
    does opens the original."""
    import os
    import shutil

    from pyspark import SparkFiles

    from artifact_tools.spark import _identity, _ship, _worker_path

    sc = spark.sparkContext
    one, two = tmp_path / "one" / "model.tar.gz", tmp_path / "two" / "model.tar.gz"
    for path, src in ((one, arts["xgb"]), (two, arts["sk"])):
        path.parent.mkdir()
        shutil.copyfile(src, path)
    name1 = _ship(sc, str(one), _identity(str(one), None))
    name2 = _ship(sc, str(two), _identity(str(two), None))
    assert name1 != name2 and name1.endswith("-model.tar.gz.artifact") and name2.endswith("-model.tar.gz.artifact")
    assert _ship(sc, str(one), _identity(str(one), None)) == name1
    registered = [f for f in sc.listFiles if f.endswith(name1)]
    assert len(registered) == 1
    copy1, copy2 = SparkFiles.get(name1), SparkFiles.get(name2)
    assert not (Path(SparkFiles.getRootDirectory()) / "xgboost-model").exists()  # shipped whole, never unpacked
    assert Path(copy1).read_bytes() == Path(arts["xgb"]).read_bytes()
    assert Path(copy2).read_bytes() == Path(arts["sk"]).read_bytes()
    assert _worker_path(str(one), name1) == str(one)
    os.rename(one, tmp_path / "moved.tar.gz")
    assert _worker_path(str(one), name1) == copy1
    assert _worker_path(str(one), None) == str(one)  # not shipped: the path as given (a URI, shared storage)
    assert _ship(sc, "s3://bucket/model.tar.gz", ("etag",)) is None
    with pytest.raises(ArtifactError, match="not on this executor"):
        _worker_path(str(one), "0000000000000000-absent.tar.gz")


def test_workers_open_the_shipped_copy_when_the_original_is_gone(spark, arts, tmp_path):
    """End to end on local[2]: the DataFrame is planned while the artifact is at its path, the file is then moved
    away, and the Python workers (which have not loaded this path before) score from the SparkFiles copy."""
    import os
    import shutil

    from artifact_tools.spark import transform

    X = make_data(n=300, seed=21)[0].astype(np.float64)
    path = tmp_path / "shipped" / "model.tar.gz"
    path.parent.mkdir()
    shutil.copyfile(arts["xgb"], path)
    out = transform(frame(spark, X), path, features=["f0", "f1", "f2", "f3"])
    os.rename(path, tmp_path / "elsewhere.tar.gz")
    got = out.toPandas().sort_values("id")
    assert np.allclose(got["prediction"].to_numpy(), booster_predict(arts["xgb"], X), atol=1e-6)


# --- numeric features through an Arrow UDF, other types through a pandas UDF (issue 12) --------------------------

ARROW_ITER, PANDAS_ITER = 251, 204  # pyspark.util.PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF / _PANDAS_ITER_UDF


def udf_eval_types(df) -> list[int]:
    """The eval types of the ``ArrowEvalPython`` nodes of the DataFrame's physical plan (the number Spark prints
    last on the node's line: ``ArrowEvalPython [f(...)], [pythonUDF0#7], 251``)."""
    import re

    plan = df._jdf.queryExecution().executedPlan().toString()
    return [int(m) for m in re.findall(r"ArrowEvalPython \[.*\], (\d+)\s*$", plan, flags=re.M)]


def map_in_arrow(df) -> bool:
    """Whether the DataFrame's physical plan scores through ``mapInArrow`` (a ``MapInArrow`` node)."""
    return "MapInArrow" in df._jdf.queryExecution().executedPlan().toString()


def test_numeric_columns_of_every_kind_and_nulls_go_through_the_arrow_udf(spark, arts):
    """double, bigint, float and decimal features, nulls among them, reach the model as one float64 matrix with
    NaN for null (what XGBoost reads as missing) through ``mapInArrow`` when every column can travel in Arrow and
    through an Arrow UDF when one cannot (a Spark ML vector): the predictions equal XGBoost's own on that matrix
    either way."""
    from decimal import Decimal

    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql import types as T

    from artifact_tools.spark import transform

    X = make_data(n=300, seed=31)[0].astype(np.float64)
    X[:, 1] = np.round(X[:, 1] * 10)  # whole numbers for the bigint column
    X[:, 3] = np.round(X[:, 3], 4)  # four decimals for the decimal column
    X[::7, 0] = np.nan
    X[::11, 1] = np.nan
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("f0", T.DoubleType()),
                           T.StructField("f1", T.LongType()), T.StructField("f2", T.FloatType()),
                           T.StructField("f3", T.DecimalType(12, 4))])
    rows = [(i, None if np.isnan(x[0]) else float(x[0]), None if np.isnan(x[1]) else int(x[1]), float(x[2]),
             Decimal(f"{x[3]:.4f}")) for i, x in enumerate(X)]
    df = spark.createDataFrame(rows, schema).repartition(3)
    expected = X.copy()
    expected[:, 2] = X[:, 2].astype(np.float32)  # what a FloatType column holds
    out = transform(df, arts["xgb"], features=["f0", "f1", "f2", "f3"])
    assert map_in_arrow(out) and udf_eval_types(out) == []
    got = out.toPandas().sort_values("id")
    assert np.allclose(got["prediction"].to_numpy(), booster_predict(arts["xgb"], expected), atol=1e-6)
    with_udt = spark.createDataFrame([(*r, Vectors.dense([0.0])) for r in rows],
                                     T.StructType([*schema.fields, T.StructField("v", VectorUDT())]))
    scalar = transform(with_udt.repartition(3), arts["xgb"], features=["f0", "f1", "f2", "f3"])
    assert udf_eval_types(scalar) == [ARROW_ITER] and not map_in_arrow(scalar)
    got = scalar.toPandas().sort_values("id")
    assert np.allclose(got["prediction"].to_numpy(), booster_predict(arts["xgb"], expected), atol=1e-6)


def one_feature_xgboost(out: Path) -> Path:
    """An XGBoost ``reg:squarederror`` model of one feature, in the built-in algorithm's layout."""
    import tempfile

    import xgboost as xgb

    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 1))
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(x, label=3 * x[:, 0] + 1), 10)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
        return tar_folder(Path(d), out / "one-feature.tar.gz")


def test_one_feature_column_and_a_boolean_one(spark, tmp_path):
    """One feature: a double (through ``mapInArrow``, the other columns being fixed-width) and a boolean (not
    numeric for Spark: a pandas UDF of one column, which gets lone Series, not tuples, and gives the model a
    DataFrame; batches of 16 rows joined into one predict call and cut back per batch) both give XGBoost's own
    predictions."""
    from pyspark.sql import types as T

    from artifact_tools.spark import transform

    art = one_feature_xgboost(tmp_path)
    x = np.linspace(-2, 2, 200)
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("x", T.DoubleType()),
                           T.StructField("flag", T.BooleanType())])
    df = spark.createDataFrame([(i, float(v), bool(v > 0)) for i, v in enumerate(x)], schema).repartition(3)
    by_x = transform(df, art, features=["x"])
    assert map_in_arrow(by_x)
    got = by_x.toPandas().sort_values("id")["prediction"].to_numpy()
    assert np.allclose(got, booster_predict(art, x.reshape(-1, 1)), atol=1e-6)
    by_flag = transform(df, art, features=["flag"])
    assert udf_eval_types(by_flag) == [PANDAS_ITER]
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "16")  # batches joined, results cut back
    try:
        got = by_flag.toPandas().sort_values("id")["prediction"].to_numpy()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert np.allclose(got, booster_predict(art, (x > 0).astype(np.float64).reshape(-1, 1)), atol=1e-6)
    assert len(set(np.round(got, 6))) == 2


@pytest.mark.parametrize("wide", [False, True], ids=["fixed-width", "with-strings-and-nested"])
def test_other_columns_come_back_unchanged_on_either_route(spark, arts, wide):
    """Numeric features beside other columns: fixed-width ones (bigint, dates, timestamps, booleans, decimals,
    floats, nulls among them) go with the rows through ``mapInArrow``; with a string, binary, array, map or struct
    column too the rows stay in the JVM (the scalar UDF). Either way every input column comes back equal to the
    DataFrame's own (Spark's rows, not ours), in order, followed by the prediction; batches of 300 rows joined into
    predict calls; partitions with no rows give none."""
    import datetime
    from decimal import Decimal

    from pyspark.sql import types as T

    from artifact_tools.spark import transform

    X = make_data(n=2500, seed=41)[0].astype(np.float64)
    fields = [T.StructField("id", T.LongType()), T.StructField("f0", T.DoubleType()),
              T.StructField("d", T.DateType()), T.StructField("f1", T.DoubleType()),
              T.StructField("ts", T.TimestampType()), T.StructField("ok", T.BooleanType()),
              T.StructField("dec", T.DecimalType(10, 3)), T.StructField("small", T.FloatType()),
              T.StructField("f2", T.DoubleType()), T.StructField("f3", T.DoubleType())]
    day, t0 = datetime.date(2024, 2, 28), datetime.datetime(2024, 2, 28, 12, 30, 15, 250)
    rows = [(i, float(x[0]), day + datetime.timedelta(days=i), float(x[1]), t0 + datetime.timedelta(seconds=7 * i),
             None if i % 7 == 0 else i % 2 == 0, Decimal(i) / 8, None if i % 5 == 0 else i / 4, float(x[2]),
             float(x[3])) for i, x in enumerate(X)]
    if wide:
        fields += [T.StructField("s", T.StringType()), T.StructField("bin", T.BinaryType()),
                   T.StructField("a", T.ArrayType(T.DoubleType())),
                   T.StructField("m", T.MapType(T.StringType(), T.LongType())),
                   T.StructField("st", T.StructType([T.StructField("x", T.LongType())]))]
        rows = [(*r, None if i % 5 == 0 else f"row {i} é", bytes([i % 256, 0]), [float(i)] if i % 3 else None,
                 {"k": i}, (i,)) for i, r in enumerate(rows)]
    schema = T.StructType(fields)
    df = spark.createDataFrame(rows, schema).repartition(3)
    with_empty = df.union(spark.createDataFrame(spark.sparkContext.parallelize([], 2), schema))
    assert with_empty.rdd.getNumPartitions() == 5  # two of them empty
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "300")
    try:
        out = transform(with_empty, arts["xgb"], features=["f0", "f1", "f2", "f3"])
        # (the union's branches each get the scalar UDF: Spark pushes the projection through the union)
        assert map_in_arrow(out) != wide and set(udf_eval_types(out)) == ({ARROW_ITER} if wide else set())
        assert out.columns == df.columns + ["prediction"]
        assert out.schema.fields[:-1] == df.schema.fields
        got = sorted(out.collect(), key=lambda r: r["id"])
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    want = sorted(df.collect(), key=lambda r: r["id"])
    assert [tuple(r)[:-1] for r in got] == [tuple(r) for r in want]
    assert np.allclose([r["prediction"] for r in got], booster_predict(arts["xgb"], X), atol=1e-6)


def test_nullable_doubles_travel_packed_and_come_back_as_they_were(spark, arts):
    """Nullable double columns go through ``mapInArrow`` as one ``array<double>`` column (Spark measures each Arrow
    batch's size after every row, column by column). Features in another order than the columns, a bigint feature
    beside them, a non-nullable double (travels as itself), nulls and NaN in the doubles, column metadata: the
    columns come back with the DataFrame's own values, types, nullability and metadata, in order; the predictions
    are XGBoost's own on the features (null as NaN, as XGBoost reads missing values); with ``keep_input=False``
    the predictions alone, the same."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from artifact_tools.spark import transform

    X = make_data(n=900, seed=53)[0].astype(np.float64)
    X[:, 3] = np.round(X[:, 3] * 4)  # whole numbers: a bigint feature
    nulls, nans = np.arange(900) % 9 == 0, np.arange(900) % 13 == 0
    schema = T.StructType([T.StructField("id", T.LongType(), False), T.StructField("f2", T.DoubleType()),
                           T.StructField("f0", T.DoubleType(), True, {"ml_attr": {"name": "first"}}),
                           T.StructField("k", T.LongType()), T.StructField("f1", T.DoubleType()),
                           T.StructField("fixed", T.DoubleType(), False)])
    rows = [(i, None if nulls[i] else float(x[2]), float("nan") if nans[i] else float(x[0]), int(x[3]), float(x[1]),
             float(i) / 3) for i, x in enumerate(X)]
    df = spark.createDataFrame(rows, schema).repartition(3)
    features = ["f0", "f1", "f2", "k"]
    out = transform(df, arts["xgb"], features=features)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert map_in_arrow(out) and "array(" in plan and " AS packed#" in plan
    assert out.schema.fields[:-1] == df.schema.fields and out.schema["f0"].metadata == {"ml_attr": {"name": "first"}}
    got = sorted(out.collect(), key=lambda r: r["id"])
    want = sorted(df.collect(), key=lambda r: r["id"])
    same = [all(a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))
                for a, b in zip(tuple(g)[:-1], tuple(w))) for g, w in zip(got, want)]
    assert all(same) and sum(1 for r in got if r["f2"] is None) == nulls.sum()
    expected = X[:, :4].copy()
    expected[nulls, 2] = np.nan
    expected[nans, 0] = np.nan
    reference = booster_predict(arts["xgb"], expected)
    assert np.allclose([r["prediction"] for r in got], reference, atol=1e-6)
    alone = transform(df.select("id", *features, F.lit(1.0).alias("pad")), arts["xgb"], features=features,
                      keep_input=False)
    assert alone.columns == ["prediction"]
    assert np.allclose(sorted(r["prediction"] for r in alone.collect()), sorted(reference), atol=1e-6)


def test_column_names_with_dots_spaces_and_backticks_and_duplicates(spark, arts):
    """Found by review: a column named with a dot (``meta.id``) was read as a struct's field (a Spark
    AnalysisException traceback), and two columns of one name failed the same way. Such names now mean themselves
    on both routes (``mapInArrow``; the scalar UDF, with a string column beside them); two columns of one name are
    one sentence."""
    from pyspark.sql import types as T

    from artifact_tools.errors import ArtifactError
    from artifact_tools.spark import transform

    X = make_data(n=200, seed=61)[0].astype(np.float64)
    names = ["meta.id", "f 0", "f`1", "f.2", "f3"]
    fields = [T.StructField(names[0], T.LongType())] + [T.StructField(n, T.DoubleType()) for n in names[1:]]
    rows = [(i, *map(float, x)) for i, x in enumerate(X)]
    for wide in (False, True):
        schema = T.StructType(fields + ([T.StructField("note", T.StringType())] if wide else []))
        df = spark.createDataFrame([(*r, "n") if wide else r for r in rows], schema).repartition(2)
        out = transform(df, arts["xgb"], features=names[1:])
        assert map_in_arrow(out) != wide and out.columns == df.columns + ["prediction"]
        got = sorted(out.collect(), key=lambda r: r[0])
        assert [tuple(r)[:-1] for r in got] == [tuple(r) for r in sorted(df.collect(), key=lambda r: r[0])]
        assert np.allclose([r["prediction"] for r in got], booster_predict(arts["xgb"], X), atol=1e-6)
    twice = spark.createDataFrame([(1.0, 2.0)], ["a", "b"]).toDF("a", "a")
    with pytest.raises(ArtifactError, match="more than one column named 'a'"):
        transform(twice, arts["xgb"])
