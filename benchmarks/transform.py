"""Batch transform throughput and memory against the frameworks' own in-memory predict, and on Spark.

    python benchmarks/transform.py [--rows 1000000] [--models xgboost,sklearn-rf,sklearn-hgb] [--skip-spark] [--runs 3]

Models (``scripts/make_transform_fixtures.py`` ``build_bench_models``, trained once on 50,000 rows of 20 numeric
features): XGBoost 300 trees of depth 6 (``binary:logistic``); scikit-learn RandomForestClassifier 100 trees of
depth <= 12 (its predict: one thread); scikit-learn HistGradientBoostingClassifier 200 iterations (its predict:
every core). Rows: 20 standard-normal features rounded to 5 decimals, as CSV (183 bytes a row).

One machine (targets from the issue): records/s of ``artifact_tools.transform`` (CSV file in, ``.out`` file out,
``split_type="Line"``, ``MultiRecord``, 6 MB mini-batches, run in a child process, the model load not counted) over
the framework's own ``predict`` on the whole array already in memory (the model read by the framework from the
archive; XGBoost ``Booster.predict(DMatrix(X))``, scikit-learn ``estimator.predict(X)``; anchor call, 1-worker job and
2-worker job alternating, medians of ``--runs`` rounds, default 3) >= 0.8, with 1 worker (the default: for XGBoost
tree models one thread per core, at most 4, each reading, predicting with its share of the cores and writing; for
other models reading on a thread while the model predicts) and with 2 worker processes;
the peak RSS of the 1-worker child for 4x the rows (the same file four times) within 10% of that for 1x. On a shared
machine wall-clock rates follow the other load; records per CPU-second (the 1-worker job's CPU time, its reading
thread included; the predict's process time, all its threads) are printed beside them as the contention-free
comparison.

Spark: ``artifact_tools.spark.transform`` (the model loaded once per Python worker, Arrow batches of
``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, Spark's default 10,000, left as it is for both) on
``local[2]`` over ``mlflow.pyfunc.spark_udf`` of the same model saved by ``mlflow.xgboost.save_model`` /
``mlflow.sklearn.save_model``, on the same session and cached DataFrame (4 partitions) >= 1.5; ``local[2]`` over
``local[1]`` >= 1.6. Each side runs ``WARM_RUNS`` (2) times unmeasured (its model loaded in every worker, the JVM's
compilers warmed on its plan: on 1 million rows the JVM's CPU per run kept falling over the first three runs), then
``--runs`` measured rounds alternate ours and the anchor; medians are compared.
Beside each rate, the JVM's share of the CPU: turning rows into Arrow batches and joining the predictions back is
JVM work both sides pay alike, and on ``local[1]`` the JVM runs beside the one Python worker, so ``local[1]``
already uses more than one core when that share is large (the bound on ``local[2]`` / ``local[1]`` is then about
2 x the Python share).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
import json, resource, sys
import loaders
from artifact_tools.batch import transform
loaders.load(sys.argv[1])  # framework imports and the extraction cache warm, outside the CPU count below
def cpu():
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                          resource.RUSAGE_CHILDREN)))
c = cpu()
s = transform(sys.argv[1], sys.argv[2], sys.argv[3], split_type="Line", workers=int(sys.argv[4]))
c = cpu() - c
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps({"seconds": s["seconds"]["total"] - s["seconds"]["load"], "records": s["records_out"],
                  "failed": s["records_failed"], "peak_rss": hwm[0] if hwm else None, "cpu": c}))
"""
ALL_MODELS = ("xgboost", "sklearn-rf", "sklearn-hgb")
WARM_RUNS = 2  # unmeasured Spark runs of each side before the measured rounds


def rows_csv(folder: Path, n: int) -> Path:
    """``n`` benchmark rows as CSV (built once; 4x files are the 1x file four times)."""
    from make_transform_fixtures import bench_data

    from artifact_tools import codec

    path = folder / f"rows-{n}.csv"
    if path.exists():
        return path
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        X, _ = bench_data(n, seed=1)
        for start in range(0, n, 100_000):
            f.write(codec.encode(X[start:start + 100_000], "text/csv")[0])
    tmp.rename(path)
    return path


def times_four(path: Path) -> Path:
    big = path.with_name(path.stem + "-x4.csv")
    if not big.exists():
        tmp = big.with_suffix(".part")
        with open(tmp, "wb") as out:
            for _ in range(4):
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)
        tmp.rename(big)
    return big


def native(name: str, artifact: Path):
    """The model read with the framework itself from the archive member."""
    with tarfile.open(artifact) as tf:
        if name == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(tf.extractfile("xgboost-model").read()))
            return booster
        import io

        import joblib

        return joblib.load(io.BytesIO(tf.extractfile("model.joblib").read()))


def ceiling(name: str, model, X: np.ndarray) -> tuple[float, float]:
    """(records/s, records per CPU-second) of one call of the framework's own predict on the whole in-memory
    array."""
    if name == "xgboost":
        import xgboost as xgb

        run = lambda: model.predict(xgb.DMatrix(X))  # noqa: E731
    else:
        run = lambda: model.predict(X)  # noqa: E731
    c = time.process_time()
    wall = _timed(run)
    return len(X) / wall, len(X) / (time.process_time() - c)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ours(artifact: Path, csv: Path, workers: int) -> tuple[float, int, float]:
    """(records/s measured inside the job without the model load, peak RSS of the child process in bytes: its own
    ``VmHWM``, since the ``ru_maxrss`` of a forked child starts at its parent's; records per CPU-second of the job,
    its worker processes included)."""
    with tempfile.TemporaryDirectory() as out:
        _, rss, stdout = run_timed([sys.executable, "-c", CHILD, str(artifact), str(csv), out, str(workers)],
                                   cwd=str(ROOT))
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    assert info["failed"] == 0, info
    return info["records"] / info["seconds"], info["peak_rss"] or rss, info["records"] / info["cpu"]


def one_machine(arts: dict, n: int, folder: Path, runs: int) -> None:
    """Per model, ``runs`` rounds, each one anchor call, one 1-worker job and one 2-worker job in turn; the medians
    of each are compared (the anchor warmed by one call first, as the job's child loads its model before it is
    timed)."""
    small = rows_csv(folder, n)
    big = times_four(small)
    X = np.loadtxt(small, delimiter=",", dtype=np.float64)
    print(f"one machine, {n:,} CSV rows x 20 features ({small.stat().st_size / 2**20:.0f} MiB), "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, median of {runs} interleaved rounds:",
          flush=True)
    med = statistics.median
    for name, art in arts.items():
        model = native(name, art)
        ceiling(name, model, X)
        rounds = [(ceiling(name, model, X), ours(art, small, 1), ours(art, small, 2)) for _ in range(runs)]
        top, top_cpu = med(r[0][0] for r in rounds), med(r[0][1] for r in rounds)
        rate1, rss1, cpu1 = (med(r[1][i] for r in rounds) for i in range(3))
        rate2 = med(r[2][0] for r in rounds)  # (its workers are the forkserver's children: CPU not counted)
        _, rss4, _ = ours(art, big, 1)
        print(f"  {name:11s} own predict in memory {top:9,.0f} rec/s | transform 1 worker {rate1:9,.0f} rec/s, "
              f"ratio {rate1 / top:.2f} | 2 workers {rate2:9,.0f} rec/s, ratio {rate2 / top:.2f} (target >= 0.8)")
        print(f"  {name:11s} per CPU-second: own predict {top_cpu:9,.0f} rec | transform 1 worker {cpu1:9,.0f} rec, "
              f"ratio {cpu1 / top_cpu:.2f}")
        print(f"  {name:11s} peak RSS {rss1 / 2**20:7.1f} MiB for {n:,} rows, {rss4 / 2**20:7.1f} MiB for "
              f"{4 * n:,}: ratio {rss4 / rss1:.2f} (target <= 1.10)", flush=True)


def spark_rates(arts: dict, n: int, folder: Path, runs: int) -> None:
    """Records/s of ``artifact_tools.spark.transform`` and of ``mlflow.pyfunc.spark_udf`` (each run ``WARM_RUNS``
    times unmeasured, then ``runs`` measured rounds alternating the two, medians; the same session and cached
    DataFrame, both written to the ``noop`` sink), and records per CPU-second of the whole Spark side (the JVM,
    every Python worker and this driver; /proc, children reaped by their parent included): on a shared machine the
    wall-clock rates follow the other load, the CPU figures much less."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        print("Spark: pyspark is not installed; skipped")
        return
    import pandas as pd

    from artifact_tools.spark import transform as spark_transform

    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> tuple[float, float]:
        """CPU seconds of this process and every process below it (utime, stime and their reaped children's), and
        of those the JVM's (the processes whose command name is ``java``)."""
        kids: dict = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
            except (OSError, ValueError):
                continue
            fields = rest.split()
            kids.setdefault(int(fields[1]), []).append((int(pid), sum(map(int, fields[11:15])) / tick,
                                                        head.split("(", 1)[-1] == "java"))
        total, jvm, stack = time.process_time(), 0.0, list(kids.get(os.getpid(), []))
        while stack:
            pid, used, java = stack.pop()
            total += used
            jvm += used if java else 0.0
            stack.extend(kids.get(pid, []))
        return total, jvm

    def once(fn) -> tuple[float, float, float]:
        """(records/s, records per CPU-second, the JVM's share of that CPU) of one run of ``fn``."""
        (c, j), t = cpu(), time.perf_counter()
        fn()
        (c2, j2), elapsed = cpu(), time.perf_counter() - t
        return n / elapsed, n / max(c2 - c, 1e-9), (j2 - j) / max(c2 - c, 1e-9)

    def timed(*fns) -> list[tuple[float, float, float]]:
        """For each of ``fns``: the medians of (records/s, per CPU-second, JVM share) over ``runs`` rounds, the
        functions alternating within each round, after ``WARM_RUNS`` unmeasured runs of each (every worker has
        loaded the model, the JVM has compiled the plan's hot paths)."""
        for _ in range(WARM_RUNS):
            for fn in fns:
                fn()
        rounds = [[once(fn) for fn in fns] for _ in range(runs)]
        return [tuple(statistics.median(r[k][i] for r in rounds) for i in range(3)) for k in range(len(fns))]

    parquet = folder / f"rows-{n}.parquet"
    if not parquet.exists():
        X = np.loadtxt(rows_csv(folder, n), delimiter=",", dtype=np.float64)
        pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).to_parquet(parquet)
    print(f"Spark, {n:,} rows (Parquet, cached, 4 partitions), load average {os.getloadavg()[0]:.1f}:", flush=True)
    results = {}
    for master in ("local[2]", "local[1]"):
        spark = (SparkSession.builder.master(master).appName("bench-transform")
                 .config("spark.ui.enabled", "false").config("spark.pyspark.python", sys.executable)
                 .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.memory", "2g").config("spark.ui.showConsoleProgress", "false")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        try:
            df = spark.read.parquet(str(parquet)).repartition(4).cache()
            df.count()
            for name, art in arts.items():
                def run(df=df, art=art):
                    spark_transform(df, art).write.format("noop").mode("overwrite").save()

                anchor_run = _mlflow_run(spark, df, name, art) if master == "local[2]" else None
                measured = timed(run, anchor_run) if anchor_run else timed(run)
                rate, per_cpu, jvm = measured[0]
                results[(master, name)] = rate
                line = (f"  {master} {name:11s} artifact_tools.spark {rate:10,.0f} rec/s ({per_cpu:8,.0f} per CPU-s, "
                        f"JVM {jvm:.0%} of the CPU)")
                if master == "local[2]":
                    anchor = measured[1] if anchor_run else None
                    line += (f" | mlflow.pyfunc.spark_udf {anchor[0]:10,.0f} rec/s ({anchor[1]:8,.0f} per CPU-s, "
                             f"JVM {anchor[2]:.0%}) | "
                             f"ratio {rate / anchor[0]:.2f} (target >= 1.5), per CPU-s {per_cpu / anchor[1]:.2f}"
                             if anchor else " | mlflow.pyfunc.spark_udf: unavailable (import mlflow failed)")
                print(line, flush=True)
        finally:
            spark.stop()
    for name in arts:
        r = results[("local[2]", name)] / results[("local[1]", name)]
        print(f"  {name:11s} local[2] / local[1] = {r:.2f} (target >= 1.6)")


def _mlflow_run(spark, df, name: str, art: Path):
    """One run of ``mlflow.pyfunc.spark_udf`` of the same model saved with MLflow's own flavor (every column in, one
    double out, written to the ``noop`` sink), as a function; None without MLflow."""
    try:
        import mlflow.pyfunc
    except ImportError:
        return None
    model = native(name, art)
    saved = CACHE / "transform" / "mlflow" / name  # (kept while the session's workers may read it)
    shutil.rmtree(saved, ignore_errors=True)
    saved.parent.mkdir(parents=True, exist_ok=True)
    if name == "xgboost":
        import mlflow.xgboost

        mlflow.xgboost.save_model(model, str(saved))
    else:
        import mlflow.sklearn

        # MLflow 3 writes skops by default, and refuses the tree types of a forest on loading unless trusted
        mlflow.sklearn.save_model(model, str(saved), serialization_format="pickle")
    udf = mlflow.pyfunc.spark_udf(spark, str(saved), result_type="double", env_manager="local")
    cols = [df[c] for c in df.columns]
    return lambda: df.withColumn("prediction", udf(*cols)).write.format("noop").mode("overwrite").save()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated: " + ", ".join(ALL_MODELS))
    p.add_argument("--skip-spark", action="store_true")
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--runs", type=int, default=3, help="interleaved measured rounds, on one machine and on Spark "
                   "(medians)")
    args = p.parse_args(argv)
    from make_transform_fixtures import build_bench_models

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this interpreter
    folder = CACHE / "transform"
    folder.mkdir(parents=True, exist_ok=True)
    built = build_bench_models(folder / "models-v2")
    arts = {k: built[k] for k in args.models.split(",")}
    if not args.skip_local:
        one_machine(arts, args.rows, folder, args.runs)
    if not args.skip_spark:
        spark_rates(arts, args.rows, folder, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
