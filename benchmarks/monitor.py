"""``monitor baseline`` throughput and memory against pandas ``describe()`` plus numpy quantiles.

    python benchmarks/monitor.py [--rows 1000000] [--repeat 3] [--skip-rss]

Data: ``--rows`` rows x 20 columns written by this script to a temporary CSV with a header (seed 1): 7 Integral
columns (ages, Poisson counts, 0/1 flags, ids up to 10^7, signed deltas, years, 1 % missing in one), 8 Fractional
(normal, log-normal, uniform, prices; 4-6 decimals; 1 % missing in two), 5 String (4, 12, 50 and 20,000 distinct
values, Zipf-like frequencies, and a code column of 600 values).

Anchor (the issue: "pandas describe() plus numpy quantiles on the same data loaded in memory"): the CSV is read by
``pandas.read_csv`` once, outside the timing; timed is ``df.describe(include="all")`` (count, mean, std, min,
quartiles, max of the numeric columns; count, unique, top, freq of the string columns) plus ``np.quantile`` of every
numeric column's present values at the 11 edges of ten equal-mass buckets (0, 0.1, ..., 1). Ours:
``artifact_tools.monitor.statistics(csv)``, which reads and parses the CSV file as part of the timing (the anchor
does not). Interleaved in one process, median of ``--repeat`` runs each. Also printed, for reference: the CPU
seconds of both (every thread; on a loaded machine the wall-time ratio follows them) and the ratio with the anchor's
``read_csv`` counted.
Target (issue 15): rows/s of ours / rows/s of the anchor >= 1.0.

Memory: the peak RSS (the child's ``VmHWM``) of a child process running ``artifact-tools monitor baseline`` on the
1x file and on a file of 4x the rows.
Target: <= 300 MiB at both sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics as stats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import run_timed  # noqa: E402

RSS_TARGET = 300 * 2**20
CHUNK = 250_000


def _chunk(n: int, rng: np.random.Generator):
    import pyarrow as pa

    def with_missing(values, share):
        arr = pa.array(values)
        if not share:
            return arr
        mask = rng.random(n) < share
        return pa.array(values, mask=mask)

    def strings(vocab: np.ndarray, p=None):
        idx = rng.choice(len(vocab), n, p=p).astype(np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(vocab)).cast(pa.string())

    def zipf(m: int):
        w = 1.0 / np.arange(1, m + 1) ** 1.1
        return w / w.sum()

    cities = np.array([f"city-{i:05d}" for i in range(20_000)])
    codes = np.array([f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}-{i:03d}" for i in range(600)])
    columns = {
        "age": pa.array(rng.integers(18, 91, n)),
        "visits": pa.array(rng.poisson(3.0, n)),
        "flag": pa.array(rng.integers(0, 2, n)),
        "customer_id": pa.array(rng.integers(0, 10_000_000, n)),
        "delta": with_missing(rng.integers(-500, 500, n), 0.01),
        "year": pa.array(rng.integers(1990, 2025, n)),
        "rooms": pa.array(rng.integers(1, 9, n)),
        "income": with_missing(rng.lognormal(10.5, 0.6, n).round(2), 0.01),
        "score": pa.array(rng.normal(0.0, 1.0, n).round(6)),
        "ratio": pa.array(rng.uniform(0.0, 1.0, n).round(5)),
        "price": pa.array(rng.gamma(2.0, 50.0, n).round(2)),
        "lat": pa.array(rng.uniform(-60.0, 70.0, n).round(5)),
        "lon": with_missing(rng.uniform(-180.0, 180.0, n).round(5), 0.01),
        "temp": pa.array(rng.normal(15.0, 8.0, n).round(1)),
        "weight": pa.array(rng.normal(70.0, 12.0, n).round(3)),
        "segment": strings(np.array(["retail", "wholesale", "online", "partner"]), [0.5, 0.2, 0.2, 0.1]),
        "region": strings(np.array([f"region-{i}" for i in range(12)])),
        "product": strings(np.array([f"product-{i:02d}" for i in range(50)]), zipf(50)),
        "city": strings(cities, zipf(len(cities))),
        "code": strings(codes),
    }
    return pa.table(columns)


def write_csv(path: Path, rows: int, seed: int = 1) -> Path:
    """``rows`` rows of the benchmark data as CSV with a header, written chunk by chunk (bounded memory)."""
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        writer = None
        for start in range(0, rows, CHUNK):
            table = _chunk(min(CHUNK, rows - start), rng)
            if writer is None:
                writer = pcsv.CSVWriter(f, table.schema,
                                        write_options=pcsv.WriteOptions(quoting_style="none"))
            writer.write_table(table)
        writer.close()
    tmp.rename(path)
    return path


def anchor(df) -> tuple[float, float]:
    """(wall, CPU) seconds of describe() plus the quantiles."""
    t, c = time.perf_counter(), time.process_time()
    df.describe(include="all")
    for name in df.columns:
        col = df[name]
        if col.dtype.kind in "if":
            np.quantile(col.dropna().to_numpy(dtype=np.float64), np.linspace(0.0, 1.0, 11))
    return time.perf_counter() - t, time.process_time() - c


def ours(path: Path) -> tuple[float, float]:
    """(wall, CPU of every thread) seconds of the baseline statistics of the CSV file."""
    from artifact_tools import monitor

    t, c = time.perf_counter(), time.process_time()
    monitor.statistics(path, header=True)
    return time.perf_counter() - t, time.process_time() - c


CHILD = """
import sys
from artifact_tools.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")))
sys.exit(code)
"""


def peak_rss(path: Path, out: Path) -> int:
    """The child's own high-water RSS (``VmHWM``): ``ru_maxrss`` from ``wait4`` would include this process's
    size at the fork, which Linux carries over the exec."""
    _, _, stdout = run_timed([sys.executable, "-c", CHILD, "-q", "monitor", "baseline", str(path), str(out)])
    return int(stdout.split()[-1])


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        path = write_csv(folder / "data.csv", args.rows)
        print(f"data: {args.rows:,} rows x 20 columns, {path.stat().st_size / 2**20:.0f} MiB CSV "
              f"(written in {time.perf_counter() - t:.1f} s)", flush=True)
        t = time.perf_counter()
        df = pd.read_csv(path)
        read_seconds = time.perf_counter() - t
        a_runs, o_runs = [], []
        for _ in range(args.repeat):
            a_runs.append(anchor(df))
            o_runs.append(ours(path))
        del df
        a, o = (stats.median(r[0] for r in a_runs), stats.median(r[0] for r in o_runs))
        a_cpu, o_cpu = (stats.median(r[1] for r in a_runs), stats.median(r[1] for r in o_runs))
        ratio = (args.rows / o) / (args.rows / a)
        print(f"pandas describe(include='all') + np.quantile, in memory: {a:.2f} s ({args.rows / a:,.0f} rows/s)   "
              f"monitor.statistics from the CSV file: {o:.2f} s ({args.rows / o:,.0f} rows/s)   "
              f"ratio {ratio:.2f} (target >= 1.0: {'met' if ratio >= 1.0 else 'NOT met'})", flush=True)
        print(f"CPU seconds (all threads), for reference: anchor {a_cpu:.2f}, ours {o_cpu:.2f} (rows/CPU-s ratio "
              f"{a_cpu / o_cpu:.2f}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        print(f"for reference, with pandas.read_csv of the file ({read_seconds:.2f} s, once) in the anchor: ratio "
              f"{(a + read_seconds) / o:.2f}", flush=True)
        if args.skip_rss:
            return
        small = peak_rss(path, folder / "out-1x")
        big = folder / "data-x4.csv"
        write_csv(big, 4 * args.rows, seed=2)
        path.unlink()
        large = peak_rss(big, folder / "out-4x")
        worst = max(small, large)
        print(f"peak RSS of 'monitor baseline': {args.rows:,} rows {small / 2**20:.0f} MiB, {4 * args.rows:,} rows "
              f"{large / 2**20:.0f} MiB (target <= 300 MiB: {'met' if worst <= RSS_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
