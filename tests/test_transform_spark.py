"""The Spark engine of batch transform on ``local[2]``: predictions equal the frameworks' own, for XGBoost and
scikit-learn, the model loaded in the Python workers from the artifact path (never pickled with the tasks)."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers import sklearn_reference

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from make_samples import build_sklearn, build_xgboost, make_data  # noqa: E402

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


def booster_predict(artifact, X):
    import xgboost as xgb

    with tarfile.open(artifact) as tf:
        raw = tf.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster.predict(xgb.DMatrix(X))


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
