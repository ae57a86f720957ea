"""Benchmark the pure-Python MLeap scorer on MLeap's airbnb LR and RF reference pipelines.

Prints, for each pipeline: the median single-row latency of ``score_row`` (and of ``predict`` on a
dict, which also builds a one-row DataFrame), the 10k-row throughput of ``score_frame`` (returning
every produced column, and returning only the prediction), and the ratio of that throughput to
Spark's ``transform`` on the same 10k rows, measured in the same run.

Spark cannot read MLeap bundles, so the Spark anchor is a pipeline of the same structure fitted on
the same rows (string indexers, one-hot encoders, assembler + std scaler, then the same linear model
or a 20-tree forest of the reference depth).  That Spark pipeline is also exported with our
exporter and scored by our scorer, which gives the like-for-like ratio on identical models.
Two Spark timings are printed (best of 3, after a warm-up, Arrow enabled):

- end to end: pandas rows -> ``createDataFrame`` -> ``transform`` -> predictions ``toPandas()``,
  what scoring rows with Spark costs a Python caller; the throughput target is checked on this one;
- JVM only: ``transform`` of an already cached DataFrame, predictions summed inside Spark.

Targets: single row <= 100 us median; throughput >= 10x Spark local (end to end).
Usage: python benchmarks/mleap_scoring.py [--rows 10000] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from artifact_tools.filetree import ZipTree  # noqa: E402
from artifact_tools.formats import mleap_bundle  # noqa: E402
from loaders import mleap  # noqa: E402

CORPUS = Path(os.environ.get("ARTIFACT_TOOLS_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus"))
CATEGORICAL = ["state", "room_type", "host_is_superhost", "cancellation_policy", "instant_bookable"]
CONTINUOUS = ["bathrooms", "bedrooms", "security_deposit", "cleaning_fee", "extra_people", "number_of_reviews",
              "square_feet", "review_scores_rating"]


def median_us(fn, arg, n: int) -> float:
    for _ in range(min(200, n)):
        fn(arg)
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        fn(arg)
        times.append(clock() - t)
    return statistics.median(times) / 1000.0


def best_seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def make_rows(base: dict, labels: dict[str, list[str]], n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        r = dict(base)
        for c in CATEGORICAL:
            r[c] = rng.choice(labels[c])
        for c in CONTINUOUS:
            r[c] = round(base[c] * rng.uniform(0.3, 2.0), 2)
        rows.append(r)
    return rows


def spark_anchor(kind: str, frame, depth: int, num_trees: int, workdir: Path) -> dict[str, float]:
    """Rows/s of a same-structure Spark pipeline (end to end, JVM only) and of our export of it."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression, RandomForestRegressor
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from exporters import mleap as exporter

    spark = (SparkSession.builder.master(os.environ.get("ARTIFACT_TOOLS_SPARK_MASTER", "local[2]"))
             .appName("mleap-benchmark").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    train = frame.copy()
    train["price"] = train["bathrooms"] * 40 + train["bedrooms"] * 25 + train["square_feet"] * 0.05
    cached = spark.createDataFrame(train).cache()
    cached.count()
    stages = [StringIndexer(inputCols=CATEGORICAL, outputCols=[f"{c}_index" for c in CATEGORICAL],
                            handleInvalid="keep"),
              VectorAssembler(inputCols=CONTINUOUS, outputCol="unscaled"),
              StandardScaler(inputCol="unscaled", outputCol="scaled", withMean=False)]
    if kind == "lr":
        stages.append(OneHotEncoder(inputCols=[f"{c}_index" for c in CATEGORICAL],
                                    outputCols=[f"{c}_oh" for c in CATEGORICAL]))
        stages.append(VectorAssembler(inputCols=[f"{c}_oh" for c in CATEGORICAL] + ["scaled"], outputCol="features"))
        stages.append(LinearRegression(labelCol="price", predictionCol="price_prediction", maxIter=10))
    else:
        stages.append(VectorAssembler(inputCols=[f"{c}_index" for c in CATEGORICAL] + ["scaled"], outputCol="features"))
        stages.append(RandomForestRegressor(labelCol="price", predictionCol="price_prediction", numTrees=num_trees,
                                            maxDepth=depth, seed=1))
    model = Pipeline(stages=stages).fit(cached)

    def end_to_end():
        return model.transform(spark.createDataFrame(frame)).select("price_prediction").toPandas()

    jvm_only = model.transform(cached).agg(F.sum("price_prediction"))
    end_to_end()
    jvm_only.collect()
    path = workdir / f"spark_{kind}"
    model.write().overwrite().save(str(path))
    ours = mleap.load(ZipTree(exporter.export_pipeline(path, workdir / f"spark_{kind}.zip"))).model
    n = len(frame)
    return {"end_to_end": n / best_seconds(end_to_end), "jvm_only": n / best_seconds(lambda: jvm_only.collect()),
            "ours": n / best_seconds(lambda: ours.score_frame(frame))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=5_000, help="timed single-row calls")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark anchor")
    args = parser.parse_args()

    ref = CORPUS / "mleap-reference"
    if not (ref / "airbnb.model.lr.zip").is_file() or not (ref / "frame.airbnb.json").is_file():
        print(f"skipped: the MLeap reference bundles are not in {ref} (the corpus is only on CI and dev machines)")
        return 0
    import pandas as pd

    frame_json = json.loads((ref / "frame.airbnb.json").read_text())
    base = dict(zip([f["name"] for f in frame_json["schema"]["fields"]], frame_json["rows"][0]))
    spark_ok = not args.no_spark
    if spark_ok:
        try:
            import pyspark  # noqa: F401
        except ImportError:
            print("pyspark is not installed: no Spark anchor")
            spark_ok = False

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("lr", "rf"):
            bundle = mleap_bundle.read_bundle(ZipTree(ref / f"airbnb.model.{kind}.zip"))
            labels = {c: n.attributes["labels"] for n in bundle.nodes() for c in CATEGORICAL
                      if n.op == "string_indexer" and n.inputs[0][1] == c}
            rows = make_rows(base, labels, args.rows)
            frame = pd.DataFrame(rows)
            model = mleap.load(ZipTree(ref / f"airbnb.model.{kind}.zip"))
            pipeline = model.model
            row_us = median_us(pipeline.score_row, base, args.single)
            predict_us = median_us(model.predict, base, max(200, args.single // 10))
            all_s = best_seconds(lambda p=pipeline, f=frame: p.score_frame(f))
            pred_s = best_seconds(lambda p=pipeline, f=frame: p.score_frame(f, ["price_prediction"]))
            ours_rps = len(frame) / all_s
            print(f"airbnb {kind.upper()}: single row {row_us:.1f} us median (score_row), "
                  f"{predict_us:.0f} us (predict on a dict -> DataFrame)")
            print(f"  {args.rows} rows: {all_s * 1000:.1f} ms = {ours_rps:,.0f} rows/s returning every column; "
                  f"{pred_s * 1000:.1f} ms = {len(frame) / pred_s:,.0f} rows/s returning the prediction only")
            ok = row_us <= 100
            failures += not ok
            print(f"  target single row <= 100 us: {'met' if ok else 'MISSED'}")
            if spark_ok:
                trees = [n for n in bundle.nodes() if n.op == "random_forest_regression"]
                depth = num_trees = 0
                if trees:
                    names = trees[0].attributes["trees"]
                    num_trees = len(names)
                    depth = max(mleap_bundle.read_decision_tree(bundle, f"{trees[0].folder}/{t}").depth for t in names)
                spark = spark_anchor(kind, frame, depth, num_trees, Path(tmp))
                e2e, jvm = spark["end_to_end"], spark["jvm_only"]
                print(f"  Spark (same-structure pipeline, same rows): end to end {e2e:,.0f} rows/s, "
                      f"JVM only {jvm:,.0f} rows/s")
                print(f"  ratio, reference bundle (every column): {ours_rps / e2e:.1f}x end to end, "
                      f"{ours_rps / jvm:.1f}x JVM only")
                print(f"  ratio, our export of that Spark pipeline ({spark['ours']:,.0f} rows/s, every column): "
                      f"{spark['ours'] / e2e:.1f}x end to end, {spark['ours'] / jvm:.1f}x JVM only")
                ok = min(ours_rps, spark["ours"]) / e2e >= 10
                failures += not ok
                print(f"  target throughput >= 10x Spark (end to end): {'met' if ok else 'MISSED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
