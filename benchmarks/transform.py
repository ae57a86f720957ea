"""Batch transform throughput and memory against the frameworks' own in-memory predict, and on Spark.

    python benchmarks/transform.py [--rows 1000000] [--skip-spark]

One machine (targets from the issue): records/s of ``artifact_tools.transform`` (CSV file in, ``.out`` file
out, one worker, run in a child process) over the framework's own ``predict`` on the whole array already in memory
(the ceiling) >= 0.8, for an XGBoost and a scikit-learn model; the child's peak RSS for 4x the rows within 10%
of that for 1x. Spark: ``artifact_tools.spark.transform`` on ``local[2]`` over ``mlflow.pyfunc.spark_udf`` on the
same session >= 1.5 (printed as unavailable when MLflow is not installed), and ``local[2]`` over ``local[1]``
>= 1.6.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import CACHE, run_timed  # noqa: E402

CHILD = """
import json, sys
from artifact_tools.batch import transform
s = transform(sys.argv[1], sys.argv[2], sys.argv[3], workers=int(sys.argv[4]))
print(json.dumps({"seconds": s["seconds"]["total"] - s["seconds"]["load"], "records": s["records_out"], "failed": s["records_failed"]}))
"""


def models(folder: Path) -> dict:
    from make_samples import build_sklearn, build_xgboost

    folder.mkdir(parents=True, exist_ok=True)
    xgb_art = folder / "xgboost-model.tar.gz"
    sk_art = folder / "sklearn-model.tar.gz"
    if not xgb_art.exists():
        build_xgboost(folder)
    if not sk_art.exists():
        build_sklearn(folder)
    return {"xgboost": xgb_art, "sklearn": sk_art}


def rows_csv(folder: Path, n: int) -> Path:
    path = folder / f"rows-{n}.csv"
    if not path.exists():
        import pandas as pd

        rng = np.random.default_rng(1)
        tmp = path.with_suffix(".part")
        pd.DataFrame(rng.normal(size=(n, 4))).to_csv(tmp, header=False, index=False, float_format="%.6g")
        tmp.rename(path)
    return path


def ceiling(framework: str, artifact: Path, X: np.ndarray) -> float:
    """Records/s of the framework's own predict on the whole in-memory array (model read with the framework)."""
    with tarfile.open(artifact) as tf:
        if framework == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(tf.extractfile("xgboost-model").read()))
            run = lambda: booster.predict(xgb.DMatrix(X))  # noqa: E731
        else:
            import io

            import joblib

            est = joblib.load(io.BytesIO(tf.extractfile("model.joblib").read()))
            run = lambda: est.predict(X)  # noqa: E731
    run()
    best = min(_timed(run) for _ in range(3))
    return len(X) / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ours(artifact: Path, csv: Path, workers: int = 1) -> tuple[float, int]:
    """(records/s measured inside the job, peak RSS of the child in bytes)."""
    with tempfile.TemporaryDirectory() as out:
        _, rss, stdout = run_timed([sys.executable, "-c", CHILD, str(artifact), str(csv), out, str(workers)],
                                   cwd=str(ROOT))
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    assert info["failed"] == 0, info
    return info["records"] / info["seconds"], rss


def one_machine(arts: dict, n: int, folder: Path) -> None:
    import pandas as pd

    small, big = rows_csv(folder, n), rows_csv(folder, 4 * n)
    X = pd.read_csv(small, header=None).to_numpy(dtype=np.float64)
    print(f"one machine, {n:,} CSV rows (4 features):")
    for name, art in arts.items():
        top = ceiling(name, art, X)
        rate, rss1 = ours(art, small)
        _, rss4 = ours(art, big)
        print(f"  {name:8s} transform {rate:12,.0f} rec/s | own predict in memory {top:12,.0f} rec/s | "
              f"ratio {rate / top:.2f} (target >= 0.8)")
        print(f"  {name:8s} peak RSS {rss1 / 2**20:7.1f} MiB for {n:,} rows, {rss4 / 2**20:7.1f} MiB for "
              f"{4 * n:,}: ratio {rss4 / rss1:.2f} (target <= 1.10)")


def spark_rates(arts: dict, n: int, folder: Path) -> None:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        print("Spark: pyspark is not installed; skipped")
        return
    from artifact_tools.spark import transform as spark_transform

    parquet = folder / f"rows-{n}.parquet"
    if not parquet.exists():
        import pandas as pd

        pd.read_csv(rows_csv(folder, n), header=None, names=["f0", "f1", "f2", "f3"]).to_parquet(parquet)
    print(f"Spark, {n:,} rows:")
    results = {}
    for master in ("local[2]", "local[1]"):
        spark = (SparkSession.builder.master(master).appName("bench-transform")
                 .config("spark.ui.enabled", "false").config("spark.pyspark.python", sys.executable)
                 .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
                 .getOrCreate())
        try:
            df = spark.read.parquet(str(parquet)).repartition(4).cache()
            df.count()
            for name, art in arts.items():
                scored = spark_transform(df, art)
                scored.write.format("noop").mode("overwrite").save()  # warm: every worker has loaded the model
                t = _timed(lambda: spark_transform(df, art).write.format("noop").mode("overwrite").save())
                results[(master, name)] = n / t
                line = f"  {master} {name:8s} artifact_tools.spark {n / t:12,.0f} rec/s"
                if master == "local[2]":
                    anchor = _mlflow_rate(spark, df, name, art, n)
                    line += (f" | mlflow.pyfunc.spark_udf {anchor:12,.0f} rec/s | ratio {n / t / anchor:.2f} "
                             "(target >= 1.5)" if anchor else " | mlflow.pyfunc.spark_udf: anchor unavailable "
                             "(import mlflow failed)")
                print(line)
        finally:
            spark.stop()
    for name in arts:
        r = results[("local[2]", name)] / results[("local[1]", name)]
        print(f"  {name:8s} local[2] / local[1] = {r:.2f} (target >= 1.6)")


def _mlflow_rate(spark, df, name: str, art: Path, n: int) -> float | None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    import mlflow.pyfunc

    import loaders

    model = loaders.load(art).model
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "m")
        if name == "xgboost":
            import mlflow.xgboost

            mlflow.xgboost.save_model(model, path)
        else:
            import mlflow.sklearn

            mlflow.sklearn.save_model(model, path)
        udf = mlflow.pyfunc.spark_udf(spark, path, result_type="double")
        cols = [df[c] for c in df.columns]
        df.withColumn("prediction", udf(*cols)).write.format("noop").mode("overwrite").save()
        t = _timed(lambda: df.withColumn("prediction", udf(*cols)).write.format("noop").mode("overwrite").save())
    return n / t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--skip-spark", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this interpreter
    folder = CACHE / "transform"
    folder.mkdir(parents=True, exist_ok=True)
    arts = models(folder / "models")
    one_machine(arts, args.rows, folder)
    if not args.skip_spark:
        spark_rates(arts, args.rows, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
