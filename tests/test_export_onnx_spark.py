"""ONNX export of Spark ML pipelines (onnxmltools' sparkml converters, pyspark 4): saved PipelineModel artifacts
are loaded by artifact-tools, exported, and the written model.onnx is run here by onnxruntime (a fresh session)
on rows the export never saw, against the fitted pipeline's own ``transform`` in the same Spark session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loaders
from artifact_tools.errors import ArtifactError

pytest.importorskip("pyspark")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxmltools")
pd = pytest.importorskip("pandas")
import exporters.onnx as onnx_target  # noqa: E402

CITIES = ["lisbon", "oslo", "quito", "lima"]


def _frame(n: int, seed: int, cities: list[str]) -> "pd.DataFrame":
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 3.0,
                          "city": [cities[i % len(cities)] for i in rng.permutation(n)]})
    frame["label"] = ((frame.a + frame.b / 3 + (frame.city == cities[0]) * 0.8) > 0).astype(float)
    return frame


def _run(folder: Path, feeds: dict) -> dict:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _spark_answer(spark, fitted, rows: "pd.DataFrame", column: str) -> np.ndarray:
    out = fitted.transform(spark.createDataFrame(rows)).select(column).collect()
    return np.asarray([r[0].toArray() if hasattr(r[0], "toArray") else r[0] for r in out], dtype=np.float64)


def test_pipeline_with_spark_default_one_hot_encoding_matches_transform(spark, tmp_path):
    """StringIndexer and OneHotEncoder with Spark's defaults (handleInvalid 'error', dropLast true: the combination
    onnxmltools' own OneHotEncoder converter refuses), scaling, logistic regression."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler

    train = _frame(120, 1, CITIES)
    fitted = Pipeline(stages=[
        StringIndexer(inputCol="city", outputCol="city_index"),
        OneHotEncoder(inputCols=["city_index"], outputCols=["city_vec"]),
        VectorAssembler(inputCols=["a", "b", "city_vec"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features", withMean=True),
        LogisticRegression(maxIter=20)]).fit(spark.createDataFrame(train))
    fitted.save(str(tmp_path / "pipeline"))
    result = onnx_target.export(loaders.load(tmp_path / "pipeline"), tmp_path / "out")
    assert result.passed and result.facts["prediction"] == "outputs 'prediction', 'probability'"
    assert {i["name"] for i in result.facts["inputs"]} == {"a", "b", "city"}

    rows = _frame(30, 2, CITIES).drop(columns="label")
    got = _run(tmp_path / "out", {"a": rows[["a"]].to_numpy(np.float32), "b": rows[["b"]].to_numpy(np.float32),
                                  "city": rows[["city"]].to_numpy().astype(object)})
    np.testing.assert_array_equal(got["prediction"], _spark_answer(spark, fitted, rows, "prediction"))
    np.testing.assert_allclose(got["probability"], _spark_answer(spark, fitted, rows, "probability"),
                               rtol=1e-4, atol=1e-5)
    assert len(set(got["prediction"].tolist())) == 2  # the rows reach both classes


def test_keep_invalid_labels_and_categories_as_spark_does(spark, tmp_path):
    """handleInvalid='keep' on both stages, dropLast false: an unseen label gets index len(labels) and its own
    one-hot slot; the index itself and the slots both feed a regression, so each changes the answer."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    train = _frame(80, 3, CITIES[:3])
    train["label"] = train.a * 2 + (train.city == CITIES[1]) * 3.0 - (train.city == CITIES[2])
    fitted = Pipeline(stages=[
        StringIndexer(inputCol="city", outputCol="city_index", handleInvalid="keep"),
        OneHotEncoder(inputCols=["city_index"], outputCols=["city_vec"], handleInvalid="keep", dropLast=False),
        VectorAssembler(inputCols=["a", "city_index", "city_vec"], outputCol="features"),
        LinearRegression(regParam=0.0)]).fit(spark.createDataFrame(train))
    fitted.save(str(tmp_path / "pipeline"))
    onnx_target.export(loaders.load(tmp_path / "pipeline"), tmp_path / "out")

    rows = _frame(12, 4, CITIES).drop(columns="label")  # CITIES[3] was never seen in training
    assert (rows.city == CITIES[3]).any()
    got = _run(tmp_path / "out", {"a": rows[["a"]].to_numpy(np.float32),
                                  "city": rows[["city"]].to_numpy().astype(object)})
    np.testing.assert_allclose(got["prediction"].ravel(), _spark_answer(spark, fitted, rows, "prediction"),
                               rtol=1e-4, atol=1e-4)


def test_stage_without_converter_is_refused_by_name(spark, tmp_path):
    """HashingTF is in onnxmltools' table of Spark operator names but has no converter registered."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import HashingTF, Tokenizer

    frame = pd.DataFrame({"text": ["good film", "bad film", "good plot", "bad acting"] * 5,
                          "label": [1.0, 0.0, 1.0, 0.0] * 5})
    hashing = HashingTF(inputCol="words", outputCol="features", numFeatures=32)
    fitted = Pipeline(stages=[Tokenizer(inputCol="text", outputCol="words"), hashing,
                              LogisticRegression(maxIter=5)]).fit(spark.createDataFrame(frame))
    fitted.save(str(tmp_path / "pipeline"))
    model = loaders.load(tmp_path / "pipeline")
    with pytest.raises(ArtifactError, match=rf"no ONNX converter for the Spark stage HashingTF \({hashing.uid}\)"):
        onnx_target.export(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()
