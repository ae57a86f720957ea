"""Benchmark: convert + load a 500-tree, depth-8 legacy XGBoost model vs XGBoost loading the same model as UBJSON.

The legacy model is written by the real XGBoost 1.7.6 (``save_model`` binary, and the same model as
JSON), run in a throwaway interpreter under /tmp that this script creates when missing
(``python -m venv`` + ``pip install xgboost==1.7.6 'numpy<2'``); the models are cached under
~/.cache/artifact-tools/bench/xgboost-legacy. The measured ratio, both sides run alternately (medians), is

    (read the legacy bytes + convert + ``Booster.load_model``) / (current XGBoost loading the UBJSON file)

and is printed as ``ratio: X.XX (target <= 2.0)``; loading the JSON file is printed for reference.
benchmarks/xgboost_load.py measures the same on 2,000 trees, with current UBJSON and cold loads. Usage::

    python benchmarks/xgboost_legacy.py [--python /tmp/xgb176/bin/python] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from artifact_tools.formats import xgboost as xgb_format  # noqa: E402
from loaders.xgboost import load_booster  # noqa: E402

from _util import CACHE as BENCH_CACHE  # noqa: E402
from _util import ensure_xgboost_176  # noqa: E402

CACHE = BENCH_CACHE / "xgboost-legacy"
TREES, DEPTH = 500, 8
TRAIN = f"""
import numpy as np, xgboost as xgb, sys
rng = np.random.RandomState(0)
X = rng.normal(size=(20000, 20)).astype(np.float32)
X[rng.uniform(size=X.shape) < 0.05] = np.nan
y = np.sin(np.nan_to_num(X[:, 0]) * 3) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) \\
    + 0.1 * rng.normal(size=len(X))
params = {{"max_depth": {DEPTH}, "tree_method": "hist", "eta": 0.05, "seed": 1, "nthread": 2}}
booster = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), {TREES})
booster.save_model(sys.argv[1] + "/model.bin")
booster.save_model(sys.argv[1] + "/model.json")
booster.save_model(sys.argv[1] + "/model.ubj")
np.save(sys.argv[1] + "/rows.npy", X[:1000])
np.save(sys.argv[1] + "/margins.npy", booster.predict(xgb.DMatrix(X[:1000], missing=np.nan),
                                                      output_margin=True))
"""


def ensure_model(python: Path) -> Path:
    if not (CACHE / "model.ubj").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"training {TREES} trees of depth {DEPTH} with XGBoost 1.7.6 ...")
        subprocess.run([str(python), "-c", TRAIN, str(CACHE)], check=True)
    return CACHE


def median_times(repeat: int, **funcs) -> dict[str, float]:
    """The median time of each function, run alternately ``repeat`` times after one warm-up each."""
    for func in funcs.values():
        func()
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", type=Path, default=Path("/tmp/xgb176/bin/python"),
                        help="an interpreter with xgboost 1.7.6 (created when missing)")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    folder = ensure_model(ensure_xgboost_176(args.python))
    import xgboost as xgb

    legacy_path, json_path, ubj_path = folder / "model.bin", folder / "model.json", folder / "model.ubj"
    model = xgb_format.read_model(legacy_path.read_bytes())
    print(f"legacy binary {legacy_path.stat().st_size / 1e6:.1f} MB, UBJSON {ubj_path.stat().st_size / 1e6:.1f} MB, "
          f"JSON {json_path.stat().st_size / 1e6:.1f} MB, {model.num_trees} trees, {model.forest.num_nodes} nodes")

    medians = median_times(args.repeat,
                           converted=lambda: load_booster(legacy_path.read_bytes(), configure=False),
                           ubj=lambda: xgb.Booster().load_model(bytearray(ubj_path.read_bytes())),
                           json=lambda: xgb.Booster().load_model(bytearray(json_path.read_bytes())))
    booster, _ = load_booster(legacy_path.read_bytes())
    rows = np.load(folder / "rows.npy")
    expected = np.load(folder / "margins.npy")
    got = booster.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True)
    error = float(np.abs(got - expected).max())
    print(f"convert + load: {medians['converted'] * 1000:.1f} ms (median of {args.repeat})")
    print(f"XGBoost {xgb.__version__} loading the UBJSON file: {medians['ubj'] * 1000:.1f} ms, "
          f"the JSON file: {medians['json'] * 1000:.1f} ms")
    print(f"max |margin - XGBoost 1.7.6 margin| = {error:.2e}")
    print(f"ratio: {medians['converted'] / medians['ubj']:.2f} (target <= 2.0; "
          f"{medians['converted'] / medians['json']:.2f} of loading the JSON file)")


if __name__ == "__main__":
    main()
