"""Batch transform throughput and memory against the frameworks' own in-memory predict, and on Spark.

    python benchmarks/transform.py [--rows 1000000] [--models xgboost,sklearn-rf,sklearn-hgb] [--skip-spark] [--runs 3]

Models (``scripts/make_transform_fixtures.py`` ``build_bench_models``, trained once on 50,000 rows of 20 numeric
features): XGBoost 300 trees of depth 6 (``binary:logistic``); scikit-learn RandomForestClassifier 100 trees of
depth <= 12 (its predict: one thread); scikit-learn HistGradientBoostingClassifier 200 iterations (its predict:
every core). Rows: 20 standard-normal features rounded to 5 decimals, as CSV (183 bytes a row).

One machine (targets from the issue): records/s of ``artifact_tools.transform`` (CSV file in, ``.out`` file out,
``split_type="Line"``, ``MultiRecord``, 6 MB mini-batches, run in a child process after one job of 10 rows there --
warmed by one call first, as the anchor is: the imports, the extraction cache, the loaded model -- the model load not
counted) over the framework's own ``predict`` on the whole array already in memory (the model read by the framework
from the archive; XGBoost ``Booster.predict(DMatrix(X))``, scikit-learn ``estimator.predict(X)``; anchor call,
1-worker job and 2-worker job alternating, medians of ``--runs`` rounds, default 3) >= 0.8, with 1 worker (the
default: for XGBoost tree models one thread per core, at most 4, each reading, predicting with its share of the cores
and writing, the last items' calls shared among them; for other models reading on a thread while the model predicts)
and with 2 worker processes;
the peak RSS of the 1-worker child for 4x the rows (the same file four times) within 10% of that for 1x. On a shared
machine wall-clock rates follow the other load; records per CPU-second (the 1-worker job's CPU time, its reading
thread included; the predict's process time, all its threads) are printed beside them as the contention-free
comparison.

Spark (targets from the issue), on the same 1 million CSV rows: records/s of the job ``artifact_tools.transform(...,
engine="spark")`` (the CSV file in, its ``.out`` written, ``split_type="Line"``, ``MultiRecord``: Spark tasks each
scoring a byte range of the file with the local engine's code, the model loaded once per Python worker) on
``local[2]`` over the same job written with ``mlflow.pyfunc.spark_udf`` (what users pick today: ``spark.read.csv``
with the 20 double columns' schema, the UDF of the same model saved by ``mlflow.xgboost.save_model`` /
``mlflow.sklearn.save_model``, the prediction column written with ``DataFrame.write.csv``) on the same session
>= 1.5; the job on ``local[2]`` over the job on ``local[1]`` >= 1.6 (``local[1]``: a process of its own with its own
session, idle while the ``local[2]`` sides run, its rounds interleaved with theirs). Beside them, with no target, the
DataFrame API: ``artifact_tools.spark.transform(df)`` over ``spark_udf`` on one cached DataFrame of the rows (4
partitions, Arrow batches of Spark's default 10,000 rows), both written to the ``noop`` sink: there the rows travel from
the JVM to Python and back on both sides, and that JVM work (about 1 CPU-second per million rows) bounds the ratio
(session 7 measured 1.17-1.29). Each side runs ``WARM_RUNS`` (2) times unmeasured (its model loaded in every worker, the
JVM's compilers warmed on its plan), then ``--runs`` measured rounds alternate the sides; medians are compared, and
beside them the median of the ratios of the same rounds. Beside each rate, the JVM's share of the CPU, and the cores
other processes used meanwhile (``/proc/stat``): on a shared machine the rates follow that load. Spark reads the
anchor's CSV in its own splits (two at 1 million rows, about 51% and 49%); ours cuts it in four equal ranges.
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
import json, os, resource, sys, tempfile
from artifact_tools.batch import transform
with tempfile.TemporaryDirectory() as warm:  # warmed by one call first, as the anchor is: a job of 10 rows (imports,
    with open(sys.argv[2], "rb") as f, open(os.path.join(warm, "in.csv"), "wb") as g:  # extraction cache, model)
        g.writelines(next(f) for _ in range(10))
    transform(sys.argv[1], os.path.join(warm, "in.csv"), os.path.join(warm, "out"), split_type="Line",
              workers=int(sys.argv[4]))
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


TICK = os.sysconf("SC_CLK_TCK")
SIDE_MARK = "@side "  # the local[1] side's answers on its stdout, among whatever else is printed there


def tree_cpu(exclude: int | None = None) -> tuple[float, float]:
    """CPU seconds of this process and every process below it (utime, stime and their reaped children's, from
    /proc), and of those the JVM's (the processes whose command name is ``java``); the process ``exclude`` and those
    below it left out."""
    kids: dict = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except (OSError, ValueError):
            continue
        fields = rest.split()
        kids.setdefault(int(fields[1]), []).append((int(pid), sum(map(int, fields[11:15])) / TICK,
                                                    head.split("(", 1)[-1] == "java"))
    total, jvm, stack = time.process_time(), 0.0, list(kids.get(os.getpid(), []))
    while stack:
        pid, used, java = stack.pop()
        if pid == exclude:
            continue
        total += used
        jvm += used if java else 0.0
        stack.extend(kids.get(pid, []))
    return total, jvm


def machine_busy() -> float:
    """CPU-seconds the whole machine has run (idle and I/O wait left out), from ``/proc/stat``."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:8]))
    return (sum(v) - v[3] - v[4]) / TICK


def measure(fn, n: int, exclude: int | None = None) -> tuple[float, float, float, float]:
    """(records/s, records per CPU-second, the JVM's share of that CPU, cores used meanwhile by processes outside
    this process's tree, ``exclude`` among them) of one run of ``fn`` over ``n`` records."""
    (c, j), b, t = tree_cpu(exclude), machine_busy(), time.perf_counter()
    fn()
    (c2, j2), b2, elapsed = tree_cpu(exclude), machine_busy(), time.perf_counter() - t
    used = max(c2 - c, 1e-9)
    return n / elapsed, n / used, (j2 - j) / used, max(0.0, (b2 - b - used) / elapsed)


def spark_session(master: str):
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(master).appName("bench-transform")
             .config("spark.ui.enabled", "false").config("spark.pyspark.python", sys.executable)
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.memory", "2g").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_job(spark, art, csv: Path, out: Path, n: int) -> None:
    """The job measured: ``transform(csv, out, split_type="Line", engine="spark")`` on ``spark``."""
    from artifact_tools import transform

    shutil.rmtree(out, ignore_errors=True)
    done = transform(str(art), str(csv), str(out), split_type="Line", engine="spark", spark=spark)
    assert done["records_out"] == n and not done["records_failed"], done


def spark_side(master: str, n: int, folder: Path) -> int:
    """The other side of :func:`spark_rates`, in a process of its own with its own session on ``master``: for each
    artifact path read from stdin, one measured run of the job, its :func:`measure` tuple printed after
    :data:`SIDE_MARK`; idle meanwhile."""
    csv = rows_csv(folder, n)
    spark = spark_session(master)
    scratch = Path(tempfile.mkdtemp(prefix="bench-transform-side-"))
    try:
        print(SIDE_MARK + "ready", flush=True)
        for line in sys.stdin:
            art = line.strip()
            print(SIDE_MARK + json.dumps(measure(lambda art=art: spark_job(spark, art, csv, scratch / "ours", n), n)),
                  flush=True)
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def spark_rates(arts: dict, n: int, folder: Path, runs: int) -> None:
    """On ``local[2]``, records/s of the job ``transform(csv, ..., engine="spark")`` (:func:`spark_job`), of the
    same CSV scored by the ``mlflow.pyfunc.spark_udf`` job (:func:`_udf_csv_job`) and of the job on ``local[1]``,
    that side run by a process of its own with its own session (:func:`spark_side`, idle while the others run);
    then, on ``local[2]``, the DataFrame API against ``spark_udf`` on one cached DataFrame written to the ``noop``
    sink (no target). Each side is run ``WARM_RUNS`` times unmeasured, then ``runs`` measured rounds alternate the
    sides (in the opposite order every other round), and medians are compared. Beside each rate, records per
    CPU-second of that side's whole Spark tree (the JVM, every Python worker and the driver; /proc, children reaped
    by their parent included) and the JVM's share: on a shared machine the wall-clock rates follow the other load,
    the CPU figures much less."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("Spark: pyspark is not installed; skipped")
        return
    import subprocess

    import pandas as pd

    from artifact_tools.spark import transform as spark_transform

    def timed(*sides) -> tuple[list, list]:
        """For each of ``sides`` (each a call giving one :func:`measure` tuple): the medians of (records/s, per
        CPU-second, JVM share, others' cores) over ``runs`` rounds, after ``WARM_RUNS`` unmeasured runs of each
        (every worker has loaded the model, the JVM has compiled the plan's hot paths); the sides alternate within
        each round, in the opposite order every other round (none always first). Also, for each side after the
        first, the median over the rounds of the first side's rate over its rate in the same round (a load change
        between rounds cancels out)."""
        for _ in range(WARM_RUNS):
            for side in sides:
                side()
        rounds = []
        for r in range(runs):
            order = list(range(len(sides))) if r % 2 == 0 else list(reversed(range(len(sides))))
            got = {k: sides[k]() for k in order}
            rounds.append([got[k] for k in range(len(sides))])
        medians = [tuple(statistics.median(r[k][i] for r in rounds) for i in range(4)) for k in range(len(sides))]
        paired = [statistics.median(r[0][0] / r[k][0] for r in rounds) for k in range(1, len(sides))]
        return medians, paired

    csv = rows_csv(folder, n)
    parquet = folder / f"rows-{n}.parquet"
    if not parquet.exists():
        X = np.loadtxt(csv, delimiter=",", dtype=np.float64)
        pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).to_parquet(parquet)
    print(f"Spark, {n:,} CSV rows, load average {os.getloadavg()[0]:.1f}:", flush=True)
    other = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--spark-side", "local[1]", "--rows",
                              str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))

    def answer() -> str:
        for line in other.stdout:
            if line.startswith(SIDE_MARK):
                return line[len(SIDE_MARK):]
        raise RuntimeError(f"the local[1] side ended (exit status {other.wait()})")

    def on_local1(art) -> tuple:
        other.stdin.write(f"{art}\n")
        other.stdin.flush()
        return tuple(json.loads(answer()))

    scratch = Path(tempfile.mkdtemp(prefix="bench-transform-spark-"))
    try:
        answer()  # its session is up before anything is measured
        spark = spark_session("local[2]")
        try:
            df = spark.read.parquet(str(parquet)).repartition(4).cache()
            df.count()
            print(f"  load average {os.getloadavg()[0]:.1f}", flush=True)
            for name, art in arts.items():
                sides = [lambda art=art: measure(lambda: spark_job(spark, art, csv, scratch / "ours", n), n,
                                                 other.pid)]
                udf = _mlflow_udf(spark, name, art)
                if udf is not None:
                    udf_job = _udf_csv_job(spark, udf, csv, scratch / "anchor")
                    sides.append(lambda udf_job=udf_job: measure(udf_job, n, other.pid))
                sides.append(lambda art=art: on_local1(art))
                measured, paired = timed(*sides)
                rate, per_cpu, jvm, others = measured[0]
                line = (f"  local[2] {name:11s} transform(engine='spark') {rate:10,.0f} rec/s ({per_cpu:8,.0f} "
                        f"per CPU-s, JVM {jvm:.0%} of the CPU, other processes {others:.2f} cores)")
                if udf is not None:  # the anchor wrote every row (its last measured run's output)
                    written = sum(sum(1 for _ in open(p, "rb")) for p in (scratch / "anchor").glob("part-*"))
                    assert written == n, f"the spark_udf job wrote {written:,} rows of {n:,}"
                    anchor = measured[1]
                    line += (f" | spark_udf job {anchor[0]:10,.0f} rec/s ({anchor[1]:8,.0f} per CPU-s, JVM "
                             f"{anchor[2]:.0%}, other processes {anchor[3]:.2f} cores) | ratio "
                             f"{rate / anchor[0]:.2f} (target >= 1.5; paired by round {paired[0]:.2f}), per CPU-s "
                             f"{per_cpu / anchor[1]:.2f}")
                else:
                    line += " | mlflow.pyfunc.spark_udf: unavailable (import mlflow failed)"
                print(line, flush=True)
                one = measured[-1]
                print(f"  local[1] {name:11s} transform(engine='spark') {one[0]:10,.0f} rec/s ({one[1]:8,.0f} "
                      f"per CPU-s, JVM {one[2]:.0%} of the CPU, other processes {one[3]:.2f} cores)", flush=True)
                print(f"  {name:11s} transform(engine='spark') local[2] / local[1] = {rate / one[0]:.2f} (target "
                      f">= 1.6; paired by round {paired[-1]:.2f}), per CPU-s {per_cpu / one[1]:.2f}", flush=True)
                if udf is not None:
                    def frame(df=df, art=art):
                        spark_transform(df, art).write.format("noop").mode("overwrite").save()

                    cols = [df[c] for c in df.columns]

                    def frame_anchor(df=df, udf=udf, cols=cols):
                        df.withColumn("prediction", udf(*cols)).write.format("noop").mode("overwrite").save()

                    ((r, c, j, _), (ar, ac, aj, _)), _ = timed(lambda: measure(frame, n, other.pid),
                                                               lambda: measure(frame_anchor, n, other.pid))
                    print(f"  local[2] {name:11s} DataFrame API, cached rows, noop sink (no target): "
                          f"artifact_tools.spark.transform {r:10,.0f} rec/s ({c:8,.0f} per CPU-s, JVM {j:.0%}) | "
                          f"spark_udf {ar:10,.0f} rec/s ({ac:8,.0f} per CPU-s, JVM {aj:.0%}) | ratio "
                          f"{r / ar:.2f}", flush=True)
        finally:
            spark.stop()
    finally:
        other.stdin.close()
        try:
            other.wait(120)
        except subprocess.TimeoutExpired:
            other.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _udf_csv_job(spark, udf, csv: Path, out: Path):
    """The scoring job a ``spark_udf`` user writes for the CSV file: read with the columns' schema, the UDF over
    every column, the prediction column written as CSV."""
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(f"f{i}", T.DoubleType()) for i in range(20)])

    def run() -> None:
        shutil.rmtree(out, ignore_errors=True)
        df = spark.read.csv(str(csv), schema=schema)
        df.select(udf(*[df[c] for c in df.columns]).alias("prediction")).write.csv(str(out))

    return run


def _mlflow_udf(spark, name: str, art: Path):
    """``mlflow.pyfunc.spark_udf`` of the same model saved with MLflow's own flavor (one double out); None without
    MLflow."""
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
    return mlflow.pyfunc.spark_udf(spark, str(saved), result_type="double", env_manager="local")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated: " + ", ".join(ALL_MODELS))
    p.add_argument("--skip-spark", action="store_true")
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--runs", type=int, default=3, help="interleaved measured rounds, on one machine and on Spark "
                   "(medians)")
    p.add_argument("--spark-side", metavar="MASTER", help=argparse.SUPPRESS)  # spark_rates' other side
    args = p.parse_args(argv)
    from make_transform_fixtures import build_bench_models

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this interpreter
    # scikit-learn's "X has feature names" warning, which the anchor's workers would print for every batch (MLflow
    # passes a pandas frame to a forest fitted on an array): silenced in the workers, which only spares the anchor
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    folder = CACHE / "transform"
    folder.mkdir(parents=True, exist_ok=True)
    if args.spark_side:
        return spark_side(args.spark_side, args.rows, folder)
    built = build_bench_models(folder / "models-v2")
    arts = {k: built[k] for k in args.models.split(",")}
    if not args.skip_local:
        one_machine(arts, args.rows, folder, args.runs)
    if not args.skip_spark:
        spark_rates(arts, args.rows, folder, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
