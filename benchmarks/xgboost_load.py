"""XGBoost loading, each case measured side by side with its anchor in one run (interleaved, medians).

One model of 2,000 trees (depth 6, 20 features) is trained once by the real XGBoost 1.7.6 -- in a
throwaway interpreter under /tmp that this script creates when missing (``python -m venv`` +
``pip install xgboost==1.7.6 'numpy<2'``) -- and saved as a legacy binary (``save_model`` without a
.json/.ubj name) and as UBJSON, with 1.7.6's own margins for 1,000 rows; the current XGBoost writes the
same model as a current UBJSON file. Everything is cached under ~/.cache/artifact-tools/bench/xgboost-load.

Cases, each printed as ``ratio: X.XX (target <= T)``:

1. current UBJSON: ``loaders.xgboost.load(bytes)`` (the checks XGBoost's reading relies on, then XGBoost
   reads the file itself while the other checks run) over ``xgboost.Booster().load_model(bytearray)`` of
   the same bytes. Target <= 1.2.
2. legacy convert + load: ``loaders.xgboost.load(legacy bytes)`` over XGBoost loading the same model
   as UBJSON (the 1.7.6 ``.ubj``). Target <= 2.0; the margins of the converted model are compared with
   1.7.6's own.
3. cold first prediction, each side in a fresh Python process: ``loaders.load(model.tar.gz)`` +
   ``predict`` over ``tar -xzf`` + ``Booster.load_model`` + ``predict``. Target <= 1.15.

Usage::

    python benchmarks/xgboost_load.py [--python /tmp/xgb176/bin/python] [--repeat 25] [--cold-repeat 7] [--cases 1,2,3]

On a shared machine wall times vary by +-15 % from run to run; the CPU time ratio printed with cases 1
and 2 varies much less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from _util import CACHE as BENCH_CACHE  # noqa: E402
from _util import ensure_xgboost_176, run_timed  # noqa: E402

CACHE = BENCH_CACHE / "xgboost-load"
TREES, DEPTH, FEATURES = 2000, 6, 20
TRAIN = f"""
import numpy as np, xgboost as xgb, sys
rng = np.random.RandomState(0)
X = rng.normal(size=(20000, {FEATURES})).astype(np.float32)
X[rng.uniform(size=X.shape) < 0.05] = np.nan
signal = np.sin(np.nan_to_num(X[:, 0]) * 3) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2])
y = (signal + 0.3 * rng.normal(size=len(X)) > 0).astype(np.float32)
params = {{"objective": "binary:logistic", "max_depth": {DEPTH}, "tree_method": "hist", "eta": 0.05,
          "seed": 1, "nthread": 2}}
booster = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), {TREES})
booster.save_model(sys.argv[1] + "/model.bin")
booster.save_model(sys.argv[1] + "/model-1.7.6.ubj")
np.save(sys.argv[1] + "/rows.npy", X[:1000])
np.save(sys.argv[1] + "/margins.npy", booster.predict(xgb.DMatrix(X[:1000], missing=np.nan),
                                                      output_margin=True))
"""


def ensure_models(python: Path) -> Path:
    import xgboost as xgb

    if not (CACHE / "margins.npy").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"training {TREES} trees of depth {DEPTH} with XGBoost 1.7.6 ...", flush=True)
        subprocess.run([str(ensure_xgboost_176(python)), "-c", TRAIN, str(CACHE)], check=True)
    current = CACHE / f"model-{xgb.__version__}.ubj"
    if not current.exists():
        booster = xgb.Booster(model_file=str(CACHE / "model-1.7.6.ubj"))
        current.write_bytes(bytes(booster.save_raw("ubj")))
    archive = CACHE / f"model-{xgb.__version__}.tar.gz"
    if not archive.exists():
        with tarfile.open(archive.with_suffix(".part"), "w:gz") as tar:
            tar.add(current, arcname="xgboost-model")
        os.replace(archive.with_suffix(".part"), archive)
    return CACHE


def side_by_side(repeat: int, ours, anchor) -> tuple[float, float, float]:
    """Medians of ``ours`` and ``anchor`` (wall time), run alternately ``repeat`` times after one warm-up each,
    and the ratio of their median CPU times (all threads of the process: shown because wall time on a busy
    machine depends on the other processes)."""
    ours(), anchor()
    wall: dict[str, list[float]] = {"ours": [], "anchor": []}
    cpu: dict[str, list[float]] = {"ours": [], "anchor": []}
    for _ in range(repeat):
        for name, func in (("ours", ours), ("anchor", anchor)):
            start, start_cpu = time.perf_counter(), time.process_time()
            func()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return (statistics.median(wall["ours"]), statistics.median(wall["anchor"]),
            statistics.median(cpu["ours"]) / statistics.median(cpu["anchor"]))


def report(label: str, ours: float, anchor: float, ours_name: str, anchor_name: str,
           target: float, unit: float = 1000, suffix: str = "ms", cpu: float | None = None) -> None:
    extra = f"; CPU time ratio {cpu:.2f}" if cpu is not None else ""
    print(f"{label}: {ours_name} {ours * unit:.1f} {suffix}, {anchor_name} {anchor * unit:.1f} {suffix}, "
          f"ratio: {ours / anchor:.2f} (target <= {target}){extra}", flush=True)


def cold(folder: Path, repeat: int) -> tuple[float, float]:
    archive = folder / f"model-{__import__('xgboost').__version__}.tar.gz"
    work = Path(tempfile.mkdtemp(prefix="xgboost-cold-"))
    rows = f"np.load({str(folder / 'rows.npy')!r})[:32]"
    anchor = (f"import subprocess, numpy as np, xgboost as xgb\n"
              f"d = {str(work / 'unpacked')!r}\n"
              f"subprocess.run(['mkdir', '-p', d], check=True)\n"
              f"subprocess.run(['tar', '-xzf', {str(archive)!r}, '-C', d], check=True)\n"
              f"b = xgb.Booster(); b.load_model(d + '/xgboost-model')\n"
              f"b.predict(xgb.DMatrix({rows}, missing=np.nan))\n")
    ours = (f"import numpy as np, loaders\n"
            f"loaders.load({str(archive)!r}).predict({rows})\n")
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    times: dict[str, list[float]] = {"ours": [], "anchor": []}
    try:
        for _ in range(repeat):
            shutil.rmtree(work / "unpacked", ignore_errors=True)
            times["anchor"].append(run_timed([sys.executable, "-c", anchor], env=env)[0])
            shutil.rmtree(work / "cache", ignore_errors=True)  # cold: inspect, extract, check, load
            times["ours"].append(run_timed([sys.executable, "-c", ours], env=env)[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(times["ours"]), statistics.median(times["anchor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", type=Path, default=Path("/tmp/xgb176/bin/python"),
                        help="an interpreter with xgboost 1.7.6 (created when missing)")
    parser.add_argument("--repeat", type=int, default=25, help="in-process runs of each side")
    parser.add_argument("--cold-repeat", type=int, default=7, help="fresh-process runs of each side")
    parser.add_argument("--cases", default="1,2,3", help="which cases to run (comma-separated numbers)")
    args = parser.parse_args()
    cases = {int(c) for c in args.cases.split(",")}
    import xgboost as xgb

    from artifact_tools.formats import xgboost as xgb_format
    from loaders import xgboost as xgb_loader

    folder = ensure_models(args.python)
    current = (folder / f"model-{xgb.__version__}.ubj").read_bytes()
    legacy = (folder / "model.bin").read_bytes()
    old_ubj = (folder / "model-1.7.6.ubj").read_bytes()
    model = xgb_format.read_model(legacy)
    print(f"{model.num_trees} trees, {model.forest.num_nodes} nodes; current UBJSON "
          f"{len(current) / 1e6:.1f} MB, legacy binary {len(legacy) / 1e6:.1f} MB; "
          f"XGBoost {xgb.__version__}, 2 threads per load as XGBoost chooses", flush=True)

    def xgboost_loads(data: bytes):
        return lambda: xgb.Booster().load_model(bytearray(data))

    if 1 in cases:
        ours, anchor, cpu = side_by_side(args.repeat, lambda: xgb_loader.load(current), xgboost_loads(current))
        report("current UBJSON", ours, anchor, "loaders.xgboost.load", "Booster.load_model", 1.2, cpu=cpu)
    if 2 in cases:
        ours, anchor, cpu = side_by_side(args.repeat, lambda: xgb_loader.load(legacy), xgboost_loads(old_ubj))
        report("legacy convert + load", ours, anchor, "loaders.xgboost.load(legacy binary)",
               "Booster.load_model(the same model as UBJSON)", 2.0, cpu=cpu)
        rows, expected = np.load(folder / "rows.npy"), np.load(folder / "margins.npy")
        got = xgb_loader.load(legacy).model.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True)
        print(f"  max |margin - XGBoost 1.7.6's margin| = {float(np.abs(got - expected).max()):.2e}")
    if 3 in cases:
        ours, anchor = cold(folder, args.cold_repeat)
        report("cold first prediction (model.tar.gz)", ours, anchor, "loaders.load + predict",
               "tar -xzf + Booster.load_model + predict", 1.15, unit=1, suffix="s")


if __name__ == "__main__":
    main()
