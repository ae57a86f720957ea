"""Spark loader: a real pipeline fitted here, saved, packed as model.tar.gz, loaded through loaders.load."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_samples  # noqa: E402

import artifact_tools  # noqa: E402
import loaders  # noqa: E402


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    rng = np.random.default_rng(3)
    rows = [(float(a), float(b), str(c), float(int(a + b > 0)))
            for a, b, c in zip(rng.normal(size=120), rng.normal(size=120), rng.choice(["x", "y", "z"], 120))]
    df = spark.createDataFrame(rows, ["a", "b", "cat", "label"])
    pipe = Pipeline(stages=[StringIndexer(inputCol="cat", outputCol="cat_i", handleInvalid="keep"),
                            VectorAssembler(inputCols=["a", "b", "cat_i"], outputCol="features"),
                            LogisticRegression(maxIter=20)])
    model = pipe.fit(df)
    folder = tmp_path_factory.mktemp("spark") / "model"
    model.write().save(str(folder))
    return model, df, folder


def _spark3_naming(folder: Path) -> None:
    """Rename Spark 4's part-00000-<uuid>-c000.txt metadata files the way Spark 3 names them."""
    for meta in folder.rglob("metadata"):
        for p in meta.glob("part-*"):
            p.rename(meta / "part-00000")
        for p in meta.glob(".*crc"):
            p.unlink()


@pytest.mark.parametrize("naming", ["spark4", "spark3"])
def test_pipeline_round_trip(fitted, tmp_path, naming):
    model, df, folder = fitted
    work = tmp_path / "model"
    shutil.copytree(folder, work)
    if naming == "spark3":
        _spark3_naming(work)
        assert (work / "metadata" / "part-00000").is_file()
    art = make_samples.tar_folder(work, tmp_path / "model.tar.gz")
    report = artifact_tools.inspect(art)
    assert report.framework == "spark"
    loaded = loaders.load(art)
    assert loaded.framework == "spark"
    pdf = df.limit(30).toPandas().drop(columns=["label"])
    got = loaded.predict(pdf)
    want = model.transform(df.limit(30)).toPandas()
    np.testing.assert_array_equal(got["prediction"].to_numpy(), want["prediction"].to_numpy())
    np.testing.assert_allclose(np.stack(got["probability"]), np.stack([v.toArray() for v in want["probability"]]),
                               rtol=0, atol=1e-12)


# --- rows without the model's column names, sample inputs, export of an archive (issue 11) ------------------


def _umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("the umask cannot be read on this system")


@pytest.fixture(scope="module")
def lone_models(spark, tmp_path_factory):
    """A lone LogisticRegressionModel and a lone KMeansModel reading the vector column 'features' (size 4),
    each saved and packed as model.tar.gz, with the rows they were fitted on."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(11)
    x = rng.normal(size=(80, 4))
    df = spark.createDataFrame([(Vectors.dense(r), float(r[0] - r[2] > 0)) for r in x], ["features", "label"])
    root = tmp_path_factory.mktemp("spark_lone")
    out = {"x": x}
    for name, model in (("lr", LogisticRegression(maxIter=10).fit(df)), ("km", KMeans(k=3, seed=5).fit(df))):
        model.write().save(str(root / name))
        out[name] = (model, make_samples.tar_folder(root / name, root / f"{name}.tar.gz"))
    return out


def _spark_predictions(spark, model, rows: np.ndarray) -> np.ndarray:
    from pyspark.ml.linalg import Vectors

    sdf = spark.createDataFrame([(Vectors.dense(r),) for r in rows], ["features"])
    return np.array([r["prediction"] for r in model.transform(sdf).collect()], dtype=float)


@pytest.mark.parametrize("name", ["lr", "km"])
def test_lone_vector_model_scores_numeric_columns_from_the_cli(spark, lone_models, tmp_path, capsys, name):
    from artifact_tools.cli import main

    model, art = lone_models[name]
    rows = lone_models["x"][:12]
    want = _spark_predictions(spark, model, rows)
    header = tmp_path / "header.csv"
    header.write_text("a,b,c,d\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n")
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(",".join(repr(v) for v in r) for r in rows) + "\n")
    objects = tmp_path / "rows.json"
    objects.write_text(json.dumps([dict(zip("abcd", r.tolist())) for r in rows]))
    for path in (header, bare, objects):
        assert main(["load", str(art), "--predict", str(path)]) == 0
        got = json.loads(capsys.readouterr().out)
        np.testing.assert_array_equal([g["prediction"] for g in got], want)
        np.testing.assert_allclose([g["features"] for g in got], rows, rtol=0, atol=1e-12)  # JSON output: 15 digits
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    assert main(["load", str(art), "--predict", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "features (a vector of 4 numbers)" in err and "internal error" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()[-1].split(". ")) == 1  # one sentence


def test_pipeline_rows_missing_a_column_are_named(fitted, tmp_path, capsys):
    from artifact_tools.cli import main

    _, _, folder = fitted
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1.0,2.0\n")
    assert main(["load", str(folder), "--predict", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cat" in err and "cat (text)" in err and "internal error" not in err


def test_sample_input_uses_the_pipelines_own_labels(spark, fitted):
    model, df, folder = fitted
    loaded = loaders.load(folder)
    sample = loaded.sample_input()
    labels = set(model.stages[0].labels)
    assert set(sample.columns) == {"a", "b", "cat"} and set(sample["cat"]) <= labels and len(set(sample["cat"])) > 1
    got = loaded.predict(sample)
    want = model.transform(spark.createDataFrame(sample)).toPandas()  # Spark itself, on the same rows
    np.testing.assert_array_equal(got["prediction"].to_numpy(), want["prediction"].to_numpy())
    assert (got["cat_i"] < len(labels)).all()  # real labels: none fell into the 'keep' bucket


@pytest.mark.parametrize("name", ["lr", "km"])
def test_sample_input_of_a_lone_vector_model(spark, lone_models, name):
    model, art = lone_models[name]
    loaded = loaders.load(art)
    sample = loaded.sample_input()
    assert list(sample.columns) == ["features"] and all(len(v) == 4 for v in sample["features"])
    want = _spark_predictions(spark, model, np.stack(sample["features"]))
    np.testing.assert_array_equal(loaded.predict(sample)["prediction"].to_numpy(dtype=float), want)


def test_export_mleap_from_a_model_tar_gz_without_sample(fitted, tmp_path, capsys):
    from artifact_tools.cli import main
    from artifact_tools.filetree import ZipTree
    from loaders import mleap as scorer

    model, df, folder = fitted
    art = make_samples.tar_folder(folder, tmp_path / "model.tar.gz")
    out = tmp_path / "out"
    assert main(["export", str(art), "--to", "mleap", str(out)]) == 0
    assert "PASSED" in capsys.readouterr().out
    bundle = out / "bundle.zip"
    assert (bundle.stat().st_mode & 0o777) == 0o666 & ~_umask()
    assert (out.stat().st_mode & 0o777) == 0o777 & ~_umask()
    pdf = df.limit(25).toPandas().drop(columns=["label"])
    got = scorer.load(ZipTree(bundle)).predict(pdf)
    want = model.transform(df.limit(25)).toPandas()
    np.testing.assert_array_equal(got["prediction"].to_numpy(), want["prediction"].to_numpy())


def test_unfitted_pipeline_is_not_loadable(spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler

    from artifact_tools.errors import NotLoadable
    from artifact_tools.filetree import DirTree
    from artifact_tools.formats import spark_ml

    Pipeline(stages=[VectorAssembler(inputCols=["a"], outputCol="f")]).write().save(str(tmp_path / "p"))
    reason = spark_ml.not_loadable_reason(spark_ml.summarize(DirTree(tmp_path / "p")))
    assert reason and "unfitted" in reason
    with pytest.raises(NotLoadable, match="unfitted"):
        loaders.load(tmp_path / "p")
