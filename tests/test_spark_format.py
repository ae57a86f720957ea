"""Spark ML saved-model reader: metadata, params and Parquet data read without a Spark session.

Expected values come from the fitted Spark objects themselves (their uids, params, labels,
coefficients, trees), through pyspark's own API.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact
from artifact_tools.filetree import DirTree, MappingTree
from artifact_tools.formats import spark_ml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def saved(spark, tmp_path_factory):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    rng = random.Random(5)
    rows = []
    for _ in range(200):
        a, b = rng.choice("uvw"), rng.choice(["x", "y"])
        f = [rng.gauss(0, 1) for _ in range(6)]
        rows.append((a, b, *f, f[0] * 3 + rng.gauss(0, 0.1), float(f[1] + (a == "u") > 0.5)))
    df = spark.createDataFrame(rows, "a string, b string, f0 double, f1 double, f2 double, f3 double, f4 double, "
                                     "f5 double, target double, label double").cache()
    stages = [
        StringIndexer(inputCols=["a", "b"], outputCols=["a_i", "b_i"], handleInvalid="skip"),
        OneHotEncoder(inputCols=["a_i"], outputCols=["a_oh"]),
        VectorAssembler(inputCols=["a_oh", "b_i", "f0", "f1", "f2", "f3", "f4", "f5"], outputCol="features"),
        # a strong L1 penalty leaves most coefficients at zero: Spark stores them sparse
        LinearRegression(labelCol="target", elasticNetParam=1.0, regParam=0.5, maxIter=10, predictionCol="lin"),
        LogisticRegression(labelCol="label", elasticNetParam=1.0, regParam=0.1, maxIter=10,
                           predictionCol="lp", probabilityCol="lprob", rawPredictionCol="lraw"),
        RandomForestClassifier(labelCol="label", numTrees=2, maxDepth=2, seed=1),
    ]
    model = Pipeline(stages=stages).fit(df)
    path = tmp_path_factory.mktemp("spark_format") / "model"
    model.write().save(str(path))
    return {"model": model, "path": path, "version": spark.version}


def _files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_metadata_and_params_match_spark(saved):
    model = saved["model"]
    root = spark_ml.read_stage(DirTree(saved["path"]))
    assert root.class_name == "org.apache.spark.ml.PipelineModel"
    assert root.uid == model.uid and root.spark_version == saved["version"]
    assert [s.uid for s in root.stages] == [s.uid for s in model.stages]
    assert [s.class_name for s in root.stages] == [s._java_obj.getClass().getName() for s in model.stages]
    # fewer than 10 stages: Spark pads the stage index to one digit
    assert [s.folder for s in root.stages] == [f"stages/{i}_{s.uid}" for i, s in enumerate(model.stages)]
    si, ohe, va, lin, log, rf = root.stages
    assert si.params["handleInvalid"] == model.stages[0].getHandleInvalid() == "skip"
    assert si.params["inputCols"] == model.stages[0].getInputCols()
    assert ohe.params["dropLast"] == model.stages[1].getDropLast()  # from defaultParamMap
    assert "dropLast" not in ohe.explicit_params
    assert va.params["inputCols"] == model.stages[2].getInputCols()
    assert lin.params["regParam"] == model.stages[3].getRegParam()
    assert log.params["probabilityCol"] == model.stages[4].getProbabilityCol()
    assert rf.metadata["numTrees"] == model.stages[5].getNumTrees
    assert rf.metadata["numFeatures"] == model.stages[5].numFeatures


def test_model_data_matches_spark(saved):
    tree, model = DirTree(saved["path"]), saved["model"]
    root = spark_ml.read_stage(tree)
    si, ohe, _, lin, log, rf = root.stages
    assert spark_ml.read_data(tree, si)[0]["labelsArray"] == [list(x) for x in model.stages[0].labelsArray]
    assert spark_ml.read_data(tree, ohe)[0]["categorySizes"] == list(model.stages[1].categorySizes)

    lin_row = spark_ml.read_data(tree, lin)[0]
    assert lin_row["coefficients"]["type"] == 0  # sparse vector layout
    np.testing.assert_array_equal(spark_ml.vector_values(lin_row["coefficients"], "c"),
                                  model.stages[3].coefficients.toArray())
    assert lin_row["intercept"] == model.stages[3].intercept

    log_row = spark_ml.read_data(tree, log)[0]
    np.testing.assert_array_equal(spark_ml.matrix_rows(log_row["coefficientMatrix"], "m"),
                                  model.stages[4].coefficientMatrix.toArray())
    np.testing.assert_array_equal(spark_ml.vector_values(log_row["interceptVector"], "i"),
                                  model.stages[4].interceptVector.toArray())

    nodes = spark_ml.read_data(tree, rf)
    assert len(nodes) == sum(t.numNodes for t in model.stages[5].trees)
    meta = spark_ml.read_data(tree, rf, "treesMetadata")
    assert sorted(r["_1"] for r in meta) == list(range(model.stages[5].getNumTrees))
    assert [r["_3"] for r in sorted(meta, key=lambda r: r["_1"])] == list(model.stages[5].treeWeights)


def test_dense_matrix_layouts():
    """Column-major dense, row-major (transposed) dense and CSC/CSR sparse give the same rows."""
    rows = [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]
    variants = [
        {"type": 1, "numRows": 2, "numCols": 3, "values": [1, 0, 0, 3, 2, 0], "isTransposed": False},
        {"type": 1, "numRows": 2, "numCols": 3, "values": [1, 0, 2, 0, 3, 0], "isTransposed": True},
        {"type": 0, "numRows": 2, "numCols": 3, "colPtrs": [0, 1, 2, 3], "rowIndices": [0, 1, 0], "values": [1, 3, 2],
         "isTransposed": False},
        {"type": 0, "numRows": 2, "numCols": 3, "colPtrs": [0, 2, 3], "rowIndices": [0, 2, 1], "values": [1, 2, 3],
         "isTransposed": True},
    ]
    for m in variants:
        assert spark_ml.matrix_rows(m, "m") == rows
    with pytest.raises(CorruptArtifact):
        spark_ml.matrix_rows({**variants[2], "rowIndices": [0, 7, 0]}, "m")
    with pytest.raises(CorruptArtifact):
        spark_ml.vector_values({"type": 0, "size": 2, "indices": [5], "values": [1.0]}, "v")


def test_spark3_part_file_names(saved, tmp_path):
    """Spark 2/3 write metadata/part-00000 (no uuid, no .txt); the reader takes either."""
    copy = tmp_path / "spark3"
    shutil.copytree(saved["path"], copy)
    for meta in copy.rglob("metadata"):
        parts = [p for p in meta.iterdir() if p.name.startswith("part-")]
        assert len(parts) == 1 and parts[0].name.endswith("-c000.txt")  # the Spark 4 name
        parts[0].rename(meta / "part-00000")
        for extra in meta.iterdir():
            if extra.name != "part-00000":
                extra.unlink()
    a = spark_ml.summarize(DirTree(saved["path"]))
    b = spark_ml.summarize(DirTree(copy))
    assert a == b


def test_summarize_reports_classes_params_and_schemas(saved):
    s = spark_ml.summarize(DirTree(saved["path"]))
    assert s["format"] == "spark_ml" and s["spark_version"] == saved["version"]
    assert [st["class"].rsplit(".", 1)[1] for st in s["stages"]] == [
        "StringIndexerModel", "OneHotEncoderModel", "VectorAssembler", "LinearRegressionModel",
        "LogisticRegressionModel", "RandomForestClassificationModel"]
    si = s["stages"][0]
    assert si["params"]["handleInvalid"] == "skip"
    assert si["data"][0]["columns"][0][0] == "labelsArray" and si["data"][0]["rows"] == 1
    assert "data" not in s["stages"][2]  # VectorAssembler has params only
    rf = s["stages"][5]
    assert {d["folder"] for d in rf["data"]} == {"data", "treesMetadata"}
    assert [c[0] for c in rf["data"][0]["columns"]] == ["treeID", "nodeData"]
    assert rf["extra"]["numTrees"] == 2


def test_reader_runs_without_spark(saved):
    code = (
        "import sys; from artifact_tools.filetree import DirTree; from artifact_tools.formats import spark_ml;"
        f"s = spark_ml.summarize(DirTree({str(saved['path'])!r}));"
        "print(len(s['stages']), 'pyspark' in sys.modules, 'py4j' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "False", "False"]


def test_detection_and_damage(saved):
    files = _files(saved["path"])
    assert spark_ml.is_spark_ml_model(MappingTree(files))
    assert not spark_ml.is_spark_ml_model(MappingTree({"bundle.json": b"{}"}))
    root_meta = next(n for n in files if n.startswith("metadata/part-"))
    with pytest.raises(CorruptArtifact):
        spark_ml.read_stage(MappingTree(dict(files, **{root_meta: files[root_meta][:40]})))
    with pytest.raises(NotAnArtifact):
        spark_ml.read_stage(MappingTree({k: v for k, v in files.items() if not k.startswith("metadata/")}))
    with pytest.raises(CorruptArtifact, match="stage 1"):
        spark_ml.read_stage(MappingTree({k: v for k, v in files.items() if "_OneHotEncoder_" not in k}))
    parquet = next(n for n in files if "_LinearRegression_" in n and n.endswith(".parquet"))
    damaged = MappingTree(dict(files, **{parquet: files[parquet][: len(files[parquet]) // 2]}))
    lin = spark_ml.read_stage(damaged).stages[3]
    with pytest.raises(CorruptArtifact):
        spark_ml.read_data(damaged, lin)
    with pytest.raises(CorruptArtifact):
        spark_ml.summarize(damaged)
    listed_only = MappingTree({k: v for k, v in files.items() if k != parquet}, sizes={parquet: len(files[parquet])})
    with pytest.raises(CorruptArtifact, match="cannot be read"):
        spark_ml.read_data(listed_only, lin)
    rng = random.Random(11)
    for _ in range(100):
        data = bytearray(files[parquet])
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            spark_ml.read_data(MappingTree(dict(files, **{parquet: bytes(data)})), lin)
        except ArtifactError:
            pass
